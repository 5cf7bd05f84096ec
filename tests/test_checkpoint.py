"""lib/model/hf_weights.py + lib/model/pretrained.py: interop with transformers, legacy files, clear errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from tiny import max_diff_on_tokens, random_batch

from lib import load_encoder, load_qa_model, load_tokenizer
from lib.errors import UserError
from lib.model.pretrained import resolve_model_dir, save_qa_model


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(folder, target)
    return target


def rewrite_weights(folder: Path, change) -> None:
    """Apply change(dict of tensors) to the folder's model.safetensors."""
    tensors = load_file(folder / "model.safetensors")
    change(tensors)
    save_file(tensors, folder / "model.safetensors")


def one_line_error(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_our_saved_qa_model_loads_in_transformers(tiny_bert_dir, tmp_path):
    torch.manual_seed(0)
    ours = load_qa_model(tiny_bert_dir)
    save_qa_model(ours, load_tokenizer(tiny_bert_dir), tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    theirs = transformers.BertForQuestionAnswering.from_pretrained(tmp_path / "run").eval()
    reloaded = load_qa_model(tmp_path / "run", require_head=True)
    batch = random_batch(ours.config)
    with torch.no_grad():
        expected = theirs(**batch)
        for model in (ours, reloaded):
            start, end = model(**batch)
            mask = batch["attention_mask"]
            assert max_diff_on_tokens(start, expected.start_logits, mask) <= 1e-5
            assert max_diff_on_tokens(end, expected.end_logits, mask) <= 1e-5


def test_transformers_qa_model_loads_in_ours(tiny_bert_dir, tmp_path):
    torch.manual_seed(1)
    theirs = transformers.BertForQuestionAnswering.from_pretrained(tiny_bert_dir).eval()
    with torch.no_grad():
        theirs.qa_outputs.bias.normal_()
    theirs.save_pretrained(tmp_path / "theirs")
    shutil.copy(tiny_bert_dir / "vocab.txt", tmp_path / "theirs")
    ours = load_qa_model(tmp_path / "theirs", require_head=True)
    batch = random_batch(ours.config, seed=4)
    with torch.no_grad():
        expected = theirs(**batch)
        start, end = ours(**batch)
    mask = batch["attention_mask"]
    assert max_diff_on_tokens(start, expected.start_logits, mask) <= 1e-5
    assert max_diff_on_tokens(end, expected.end_logits, mask) <= 1e-5


def test_encoder_without_head_gets_fresh_head_or_error(tiny_bert_dir):
    model = load_qa_model(tiny_bert_dir)
    assert model.qa_outputs.weight.std() > 0 and not model.qa_outputs.bias.any()
    message = one_line_error(lambda: load_qa_model(tiny_bert_dir, require_head=True))
    assert "qa_outputs.weight" in message and "missing" in message


def test_legacy_fp16_pickle_with_gamma_beta_and_prefix(tiny_bert_dir, tmp_path):
    """SpanBERT's layout: fp16 pytorch_model.bin, `bert.` prefix, gamma/beta, vocab.txt only."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(tiny_bert_dir / "config.json", legacy)
    shutil.copy(tiny_bert_dir / "vocab.txt", legacy)
    state = {}
    for name, tensor in load_file(tiny_bert_dir / "model.safetensors").items():
        if name.startswith("pooler."):
            continue
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma")
        name = name.replace("LayerNorm.bias", "LayerNorm.beta")
        state[f"bert.{name}"] = tensor.half()
    state["cls.predictions.bias"] = torch.zeros(3)
    state["bert.embeddings.position_ids"] = torch.arange(41)[None]
    torch.save(state, legacy / "pytorch_model.bin")

    theirs = transformers.BertModel.from_pretrained(tiny_bert_dir).eval()
    batch = random_batch(theirs.config)
    with torch.no_grad():
        expected = theirs(**batch).last_hidden_state
        for _ in range(2):  # the second load reads the converted model.safetensors
            ours = load_encoder(legacy)
            assert max_diff_on_tokens(ours(**batch), expected, batch["attention_mask"]) <= 1e-2
            assert (legacy / "model.safetensors").is_file()
            assert ours.embeddings.word_embeddings.weight.dtype == torch.float32
    assert not list(legacy.glob("*.tmp"))
    converted = load_file(legacy / "model.safetensors")
    assert converted["bert.embeddings.LayerNorm.gamma"].dtype == torch.float16
    tokenizer = load_tokenizer(legacy)  # cased, from vocab.txt
    assert tokenizer.encode("Sleep sleep", add_special_tokens=False).tokens == ["Sleep", "sleep"]


def test_a_converted_pickle_never_hides_the_pickle(tiny_bert_dir, tmp_path):
    """pytorch_model.bin is converted to model.safetensors only once it loaded, and a conversion
    of a .bin that has been replaced since is not read instead of the new one."""
    folder = copy_of(tiny_bert_dir, tmp_path)
    good = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    name = "encoder.layer.0.output.dense.weight"
    torch.save({**good, name: good[name][:, :3].contiguous()}, folder / "pytorch_model.bin")
    assert name in one_line_error(lambda: load_encoder(folder))
    assert not (folder / "model.safetensors").exists()  # a .bin that failed is not converted

    torch.save(good, folder / "pytorch_model.bin")
    first = load_encoder(folder)
    assert (folder / "model.safetensors").is_file()
    changed = {**good, name: good[name] + 1.0}
    torch.save(changed, folder / "pytorch_model.bin")  # the user replaces the checkpoint
    os.utime(folder / "pytorch_model.bin", ns=(1, 1))  # even within the same mtime tick
    second = load_encoder(folder)
    weight = second.encoder.layer[0].output.dense.weight
    assert torch.equal(weight, changed[name]) and not torch.equal(
        weight, first.encoder.layer[0].output.dense.weight
    )
    assert torch.equal(load_file(folder / "model.safetensors")[name], changed[name])


def test_missing_tensor(tiny_bert_dir, tmp_path):
    folder = copy_of(tiny_bert_dir, tmp_path)
    rewrite_weights(folder, lambda t: t.pop("encoder.layer.1.attention.self.key.bias"))
    message = one_line_error(lambda: load_encoder(folder))
    assert "model.safetensors" in message and "encoder.layer.1.attention.self.key.bias" in message


def test_unexpected_tensor(tiny_bert_dir, tmp_path):
    folder = copy_of(tiny_bert_dir, tmp_path)
    rewrite_weights(
        folder,
        lambda t: t.update(
            {"encoder.layer.2.output.dense.weight": t["pooler.dense.weight"].clone()}
        ),
    )
    message = one_line_error(lambda: load_encoder(folder))
    assert "unexpected" in message and "encoder.layer.2.output.dense.weight" in message


def test_wrong_shape(tiny_bert_dir, tmp_path):
    folder = copy_of(tiny_bert_dir, tmp_path)
    name = "encoder.layer.0.intermediate.dense.weight"
    rewrite_weights(folder, lambda t: t.update({name: t[name][:, :35].contiguous()}))
    message = one_line_error(lambda: load_encoder(folder))
    assert name in message and "(37, 35)" in message and "(37, 36)" in message


@pytest.mark.parametrize(
    "dtype, value, message",
    [
        (torch.int8, None, "is torch.int8, not floating point"),
        (torch.bool, None, "is torch.bool, not floating point"),
        (torch.float32, float("nan"), "holds NaN or infinite values"),
        (torch.float16, float("inf"), "holds NaN or infinite values"),
    ],
)
def test_weights_that_are_not_finite_floats_are_refused(
    tiny_bert_dir, tmp_path, dtype, value, message
):
    """copy_ would cast an int8/bool tensor of the right shape into the parameter silently."""
    folder = copy_of(tiny_bert_dir, tmp_path)
    name = "encoder.layer.0.output.dense.weight"

    def damage(tensors):
        tensor = tensors[name].clone()
        if value is not None:
            tensor[0, 0] = value
        tensors[name] = tensor.to(dtype)

    rewrite_weights(folder, damage)
    error = one_line_error(lambda: load_encoder(folder))
    assert name in error and message in error


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_attention_heads": 0}, "num_attention_heads must be a whole number from 1"),
        ({"hidden_size": -36}, "hidden_size must be a whole number from 1"),
        ({"hidden_size": 36.0}, "hidden_size must be a whole number"),
        ({"vocab_size": None}, "vocab_size must be a whole number"),
        ({"vocab_size": 0}, "vocab_size must be a whole number from 1"),
        ({"max_position_embeddings": 10**12}, "max_position_embeddings must be a whole number"),
        ({"num_attention_heads": 5}, "not a multiple of num_attention_heads 5"),
        ({"pad_token_id": 10**6}, "pad_token_id must be a token id below vocab_size"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be a number in [0.0, 1.0)"),
        ({"layer_norm_eps": 0}, "layer_norm_eps must be a number in (0, 1)"),
    ],
)
def test_config_json_values_no_model_can_have_are_one_line(
    tiny_bert_dir, tmp_path, change, message
):
    folder = copy_of(tiny_bert_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    error = one_line_error(lambda: load_encoder(folder))
    assert "config.json: invalid BERT config" in error and message in error


def test_missing_config(tiny_bert_dir, tmp_path):
    folder = copy_of(tiny_bert_dir, tmp_path)
    (folder / "config.json").unlink()
    assert "config.json" in one_line_error(lambda: load_encoder(folder))


def test_truncated_safetensors(tiny_bert_dir, tmp_path):
    folder = copy_of(tiny_bert_dir, tmp_path)
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:5000])
    message = one_line_error(lambda: load_encoder(folder))
    assert str(path) in message and "truncated or corrupt" in message


def test_unsupported_architecture(tiny_bert_dir, tmp_path):
    folder = copy_of(tiny_bert_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "position_embedding_type": "relative_key"})
    )
    assert "absolute" in one_line_error(lambda: load_encoder(folder))


def test_unknown_name_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = one_line_error(lambda: resolve_model_dir("no-such-owner-xyz/no-such-model"))
    assert "HF_HUB_OFFLINE=1" in message and "minilm-l6" in message
    message = one_line_error(lambda: resolve_model_dir("minilm-l12"))
    assert "'minilm-l12'" in message and "minilm-l6" in message
    assert "does not exist" in one_line_error(lambda: resolve_model_dir("./no/such/folder"))


def test_minilm_alias_resolves(minilm_dir):
    assert resolve_model_dir("minilm-l6") == minilm_dir


def test_hub_id_served_from_offline_cache(tiny_bert_dir, tmp_path, monkeypatch):
    """A Hub id resolves through huggingface_hub's cache layout with no network."""
    import huggingface_hub.constants

    snapshot = tmp_path / "models--some-owner--tiny-bert" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_bert_dir, snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_dir("some-owner/tiny-bert") == snapshot
    assert load_encoder("some-owner/tiny-bert").config.hidden_size == 36


def test_corrupt_pickle(tiny_bert_dir, tmp_path):
    folder = copy_of(tiny_bert_dir, tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    message = one_line_error(lambda: load_encoder(folder))
    assert "pytorch_model.bin: unreadable checkpoint" in message


def test_unwritable_folder_still_loads_legacy_pickle(tiny_bert_dir, tmp_path, monkeypatch):
    import lib.files

    folder = copy_of(tiny_bert_dir, tmp_path)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()

    def refuse(*args, **kwargs):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(lib.files.tempfile, "mkstemp", refuse)
    assert load_encoder(folder).config.num_hidden_layers == 2
    assert not (folder / "model.safetensors").exists()


def test_a_model_folder_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    """Path.is_dir raises PermissionError (not False) for a folder behind one we may not enter
    (a root-owned home, chmod 000); and "~nosuchuser" has no home to expand."""
    real = Path.is_dir

    def denied(self):
        if "locked" in str(self):
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "is_dir", denied)
    error = one_line_error(lambda: resolve_model_dir(tmp_path / "locked" / "model"))
    assert "locked/model: cannot read the model folder (Permission denied)" in error
    assert "~nosuchuser" in one_line_error(lambda: resolve_model_dir("~nosuchuser/model"))


def test_a_hub_repo_that_is_no_bert_is_refused_before_its_weights_download(tmp_path, monkeypatch):
    """config.json (and the tokenizer) come down first; a GPT-2 never costs its weights. An
    error of the HTTP client (not an OSError) is one line too."""
    import huggingface_hub

    asked = []

    def fake_download(repo_id, allow_patterns, local_files_only):
        asked.append(list(allow_patterns))
        if repo_id == "owner/flaky":
            raise RuntimeError("connection reset by peer")  # e.g. an httpx error
        folder = tmp_path / "snapshot"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    assert "model_type 'gpt2' is not 'bert'" in one_line_error(
        lambda: resolve_model_dir("owner/gpt2")
    )
    assert asked == [["config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"]]
    assert "connection reset by peer" in one_line_error(lambda: resolve_model_dir("owner/flaky"))
