"""lib/model/bert.py: parity with transformers' BertModel, attention, dropout, checkpointing; the
file is the plain architecture, with no device- or compile-specific branch."""

from __future__ import annotations

import pytest
import torch
import transformers
from tiny import TINY, max_diff_on_tokens, random_batch

from lib import load_encoder, load_tokenizer
from lib.model.bert import BertConfig, BertForQuestionAnswering, BertModel

PAIRS = [
    ("How do you sleep?", "I can't sleep at night; I wake up at 4am and lie there until dawn."),
    ("Tired?", "Exhausted."),
    ("Appetite?", "I barely eat — café crêpes don't tempt me, nothing does, I've lost 5 kg 😞."),
    ("Mood", "Everything feels pointless and grey, every single day, since my dad died in May."),
    ("", "I feel worthless."),
]


def batch_from(encodings) -> dict[str, torch.Tensor]:
    """Right-padded (B, T) tensors from tokenizers encodings."""
    length = max(len(e.ids) for e in encodings)
    ids = torch.zeros(len(encodings), length, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        types[row, : len(e.ids)] = torch.tensor(e.type_ids)
        mask[row, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def test_minilm_matches_transformers(minilm_dir):
    tokenizer = load_tokenizer("minilm-l6")
    batch = batch_from(tokenizer.encode_batch(PAIRS))
    assert batch["token_type_ids"].any() and not batch["attention_mask"].all()
    ours = load_encoder("minilm-l6")
    theirs = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="eager")
    theirs.eval()
    with torch.no_grad():
        diff = max_diff_on_tokens(
            ours(**batch), theirs(**batch).last_hidden_state, batch["attention_mask"]
        )
    assert diff <= 1e-5


def test_tiny_random_bert_matches_transformers(tiny_bert_dir):
    ours = load_encoder(tiny_bert_dir)
    theirs = transformers.BertModel.from_pretrained(tiny_bert_dir, attn_implementation="eager")
    theirs.eval()
    batch = random_batch(ours.config)
    with torch.no_grad():
        expected = theirs(**batch).last_hidden_state
        assert max_diff_on_tokens(ours(**batch), expected, batch["attention_mask"]) <= 1e-5
        # token_type_ids omitted = all zeros, as in transformers
        no_types = {k: v for k, v in batch.items() if k != "token_type_ids"}
        expected = theirs(**no_types).last_hidden_state
        assert max_diff_on_tokens(ours(**no_types), expected, batch["attention_mask"]) <= 1e-5


def test_padding_content_and_full_mask_do_not_matter():
    torch.manual_seed(0)
    model = BertModel(TINY).eval()
    batch = random_batch(TINY)
    changed = dict(batch, input_ids=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 7))
    with torch.no_grad():
        out, out_changed = model(**batch), model(**changed)
        assert max_diff_on_tokens(out, out_changed, batch["attention_mask"]) <= 1e-6
        ones = torch.ones_like(batch["attention_mask"])
        assert torch.equal(model(batch["input_ids"], ones), model(batch["input_ids"]))


def loss_and_grads(model: BertForQuestionAnswering, batch, seed: int):
    torch.manual_seed(seed)
    start, end = model(**batch)
    weights = torch.linspace(-1, 1, start.numel()).view_as(start)
    loss = (start * weights).sum() + (end * weights.flip(-1)).sum()
    model.zero_grad()
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_activation_checkpointing_changes_nothing(dropout):
    torch.manual_seed(0)
    plain = BertForQuestionAnswering(TINY, dropout=dropout, attention_dropout=dropout).train()
    recomputed = BertForQuestionAnswering(
        TINY, gradient_checkpointing=True, dropout=dropout, attention_dropout=dropout
    ).train()
    recomputed.load_state_dict(plain.state_dict())
    batch = random_batch(TINY)
    loss, grads = loss_and_grads(plain, batch, seed=11)
    loss_ckpt, grads_ckpt = loss_and_grads(recomputed, batch, seed=11)
    assert abs(loss.item() - loss_ckpt.item()) <= 1e-6
    for name, grad in grads.items():
        assert (grad - grads_ckpt[name]).abs().max().item() <= 1e-6, name


def test_dropout_only_in_train_mode():
    torch.manual_seed(0)
    model = BertForQuestionAnswering(TINY, dropout=0.3, attention_dropout=0.3)
    assert model.config.hidden_dropout_prob == 0.3  # the override reached the config
    batch = random_batch(TINY)
    with torch.no_grad():
        model.eval()
        first, second = model(**batch)[0], model(**batch)[0]
        assert torch.equal(first, second)
        model.train()
        assert not torch.equal(model(**batch)[0], model(**batch)[0])
        no_dropout = BertForQuestionAnswering(TINY).train()
        no_dropout.load_state_dict(model.state_dict())
        assert (no_dropout(**batch)[0] - first).abs().max().item() <= 1e-6


def test_qa_logits_are_float32_per_token():
    torch.manual_seed(0)
    model = BertForQuestionAnswering(TINY).eval()
    assert model.qa_outputs.bias.abs().sum() == 0
    batch = random_batch(TINY)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        start, end = model(**batch)
    assert start.shape == end.shape == (3, 13)
    assert start.dtype == end.dtype == torch.float32


def test_config_round_trip_ignores_unknown_keys():
    values = {**TINY.to_dict(), "architectures": ["BertModel"], "model_type": "bert"}
    assert BertConfig.from_dict(values) == TINY


def test_extra_padding_changes_no_output_or_gradient():
    """Gradient accumulation over differently padded micro-batches relies on this."""
    torch.manual_seed(0)
    model = BertForQuestionAnswering(TINY).train()
    batch = random_batch(TINY)
    padded = {
        name: torch.nn.functional.pad(tensor, (0, 8), value=0) for name, tensor in batch.items()
    }
    results = []
    for inputs in (batch, padded):
        start, end = model(**inputs)
        real = inputs["attention_mask"].bool()
        weights = torch.arange(real.sum().item(), dtype=torch.float32)
        loss = (start[real] * weights).sum() + (end[real] * weights.flip(0)).sum()
        model.zero_grad()
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss, grads), (loss_padded, grads_padded) = results
    assert abs(loss - loss_padded) <= 1e-4 * max(1.0, abs(loss))
    for name, grad in grads.items():  # fp32 rounding only, relative to the gradient's size
        scale = max(1.0, grad.abs().max().item())
        assert (grad - grads_padded[name]).abs().max().item() <= 1e-6 * scale, name


def test_the_model_file_is_plain():
    """CPU speed-ups live in lib/model/cpu_speedups.py; the model branches on no device or compiler."""
    import inspect

    import lib.model.bert

    source = inspect.getsource(lib.model.bert)
    for branch in ("device.type", "is_compiling", "torch.compiler", "cuda", "random_keep_mask"):
        assert branch not in source, branch
