"""train(cfg): learning, resume exactness, kill-safe checkpoints, precision/compile paths,
gradient accumulation, NaN handling, and the run directory's interoperability."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from safetensors.torch import load_file

from lib.data.batching import TrainingBatches
from lib.errors import UserError
from lib.training.trainer import TrainingError, train

ROOT = Path(__file__).resolve().parent.parent


def _final_weights(run_dir):
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*"))
    return load_file(checkpoints[-1] / "model.safetensors")


def test_loss_falls_and_f1_rises_on_a_tiny_slice(tmp_path, make_cfg):
    from lib.evaluation.evaluate_run import evaluate_run

    always_answer = ["decode.tune_null_threshold=false", "decode.null_threshold=1000.0"]
    short = train(make_cfg(tmp_path / "short", "train.max_steps=2", *always_answer))
    long = train(make_cfg(tmp_path / "long", "train.epochs=8", *always_answer))
    losses = [h["train_loss"] for h in long["history"]]
    assert losses[-1] < 0.3 * losses[0] and losses == sorted(losses, reverse=True)
    f1 = {
        run["run_dir"]: evaluate_run(run["run_dir"], split="train")[0]["f1"]
        for run in (short, long)
    }
    assert f1[long["run_dir"]] > f1[short["run_dir"]] + 5.0  # it learned the slice


def test_run_directory_contents(tmp_path, make_cfg):
    metrics = train(make_cfg(tmp_path, "train.epochs=2"))
    run = tmp_path / "run"
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "config.toml",
        "metrics.json",
        "alignment.json",
        "train.log",
    ):
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"] == metrics["test"]
    assert saved["val"][saved["metric"]] == max(h[saved["metric"]] for h in saved["history"])
    assert (
        "step 2" in (run / "train.log").read_text()
        or "val sentence_f1" in (run / "train.log").read_text()
    )


def test_training_batches_keep_answers_and_sample_the_rest(tmp_path, make_cfg, tiny_qa_dir):
    from lib.data.dataset import build_dataset
    from lib.data.features import build_features
    from lib.model.pretrained import load_tokenizer

    cfg = make_cfg(tmp_path, "data.negatives=all")
    examples = build_dataset(cfg.data).splits["train"]
    feats = build_features(
        examples, load_tokenizer(tiny_qa_dir), max_length=64, doc_stride=16, max_question_length=24
    )
    batches = TrainingBatches(feats, batch_size=3, grad_accum=2, no_answer_fraction=0.25, seed=1)
    answer = {int(w) for w in batches.answer}
    seen = []
    for epoch in range(3):
        batches.set_epoch(epoch)
        epoch_batches = list(batches)
        assert len(epoch_batches) == len(batches)  # constant: the scheduler relies on it
        assert all(1 <= len(b) <= 3 for b in epoch_batches)
        windows = [w for b in epoch_batches for w in b]
        assert len(windows) == len(set(windows)) == len(answer) + batches.n_no_answer
        assert answer <= set(windows)
        seen.append(set(windows) - answer)
        batches.set_epoch(epoch)
        assert list(batches) == epoch_batches  # deterministic per (seed, epoch)
    assert seen[0] != seen[1]  # a fresh sample of no-answer windows each epoch

    # Sharded across 2 processes as Accelerate's prepare does it, every window of the epoch is
    # still trained on, wherever the shuffle put the short micro-batch (with grad_accum=1 it
    # lands on either process's turn; a shard that took `batch_size` for every batch's size
    # dropped the round that ended in it).
    batches = TrainingBatches(feats, batch_size=4, grad_accum=1, no_answer_fraction=0.25, seed=1)
    assert (len(batches.answer) + batches.n_no_answer) % 4  # an epoch has a short micro-batch
    short_on_rank_1 = 0
    for epoch in range(12):
        batches.set_epoch(epoch)
        sizes = [len(b) for b in batches]
        short_on_rank_1 += any(size < 4 and i % 2 for i, size in enumerate(sizes))
        whole = {w for b in batches for w in b}
        dealt = set()
        for rank in range(2):
            shard = BatchSamplerShard(batches, num_processes=2, process_index=rank)
            dealt |= {w for b in shard for w in b}
        assert dealt == whole
    assert short_on_rank_1  # the case that lost windows is exercised


RESUME_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import lib.training.trainer as training
    from lib.config import load_config

    kill_at, mode = int(sys.argv[1]), sys.argv[2]
    original = training.finish_checkpoint

    def finish_then_maybe_die(run_dir, step, state, keep):
        if mode == "during" and step == kill_at:  # the state is on disk, not yet renamed
            os.kill(os.getpid(), signal.SIGKILL)
        path = original(run_dir, step, state, keep)
        if mode == "after" and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return path

    training.finish_checkpoint = finish_then_maybe_die
    training.train(load_config(overrides=sys.argv[3:]))
    """
)


@pytest.mark.parametrize("mode", ["after", "during"])
def test_killed_run_resumes_to_the_same_weights(tmp_path, make_cfg, tiny_overrides, mode):
    """SIGKILL mid-epoch right after a checkpoint (or while writing one), resume with
    train.resume=<dir>: the final weights equal an uninterrupted run's (dropout on)."""
    extra = [
        "train.checkpoint_every=3",
        "train.epochs=2",
        "model.dropout=0.1",
        "model.attention_dropout=0.1",
        "train.keep_checkpoints=5",
    ]
    straight = train(make_cfg(tmp_path / "a", *extra))
    args = [*tiny_overrides(tmp_path / "b"), *extra]
    child = subprocess.run(
        [sys.executable, "-c", RESUME_CHILD, "6", mode, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    run_b = tmp_path / "b" / "run"
    steps = sorted(p.name for p in (run_b / "checkpoints").iterdir())
    if mode == "during":
        assert ".tmp-step-00000006" in steps and "step-00000003" in steps
    else:
        assert steps[-1] == "step-00000006"
    resumed = subprocess.run(
        [sys.executable, "train.py", *args, f"train.resume={run_b}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.strip().splitlines()[-1] == f"run: {run_b}"
    a, b = _final_weights(tmp_path / "a" / "run"), _final_weights(run_b)
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    resumed_metrics = json.loads((run_b / "metrics.json").read_text())
    assert resumed_metrics["test"] == straight["test"]


def test_gradient_accumulation_matches_a_big_batch(tmp_path, make_cfg, tiny_qa_dir):
    """4 micro-batches of 2 accumulated = one batch of 8: the same windows, the same update.

    Compared after one optimizer step: qa_outputs.bias and the last LayerNorm bias only shift every
    start/end logit of a window by the same amount, which softmax ignores, so their true gradient
    is exactly zero and AdamW turns rounding noise into +-lr steps; later steps feed such noise
    back into every weight. One step compares the accumulated gradient itself."""
    common = ["train.max_steps=1", "train.checkpoint_every=0"]
    big = train(make_cfg(tmp_path / "big", *common, "train.batch_size=8", "train.grad_accum=1"))
    acc = train(make_cfg(tmp_path / "acc", *common, "train.batch_size=2", "train.grad_accum=4"))
    a, b = _final_weights(tmp_path / "big" / "run"), _final_weights(tmp_path / "acc" / "run")
    shift_only = {"qa_outputs.bias", "bert.encoder.layer.1.output.LayerNorm.bias"}
    assert max((a[k] - b[k]).abs().max().item() for k in a if k not in shift_only) <= 1e-5
    initial = load_file(tiny_qa_dir / "model.safetensors")["embeddings.LayerNorm.weight"]
    assert (a["bert.embeddings.LayerNorm.weight"] - initial).abs().max() > 1e-3  # it trained
    # the same 8 windows: the mean loss of 4 micro-batches of 2 = the loss of the batch of 8
    assert acc["history"][0]["train_loss"] == pytest.approx(big["history"][0]["train_loss"], 1e-6)


@pytest.mark.parametrize("extra", [["train.mixed_precision=bf16"], ["train.compile=true"]])
def test_bf16_and_compile_paths_run(tmp_path, make_cfg, tiny_qa_dir, extra):
    metrics = train(make_cfg(tmp_path, "train.max_steps=3", *extra))
    assert np.isfinite(metrics["history"][-1]["train_loss"])
    assert metrics["steps"] == 3


def test_nan_loss_stops_with_the_step(tmp_path, make_cfg, tiny_qa_dir):
    from safetensors.torch import save_file

    broken = tmp_path / "nan_model"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (broken / name).write_bytes((tiny_qa_dir / name).read_bytes())
    tensors = load_file(tiny_qa_dir / "model.safetensors")
    key = next(k for k in tensors if k.endswith("embeddings.LayerNorm.weight"))
    # finite (NaN weights are refused when they load) but overflowing in the first forward
    tensors[key] = torch.full_like(tensors[key], 3e38)
    save_file(tensors, broken / "model.safetensors")
    with pytest.raises(TrainingError, match="loss is nan at step 1 "):
        train(make_cfg(tmp_path, model_dir=broken))


def test_run_dir_is_refused_twice_and_bad_data_writes_nothing(tmp_path, make_cfg, tiny_qa_dir):
    train(make_cfg(tmp_path, "train.max_steps=1"))
    with pytest.raises(UserError, match="already exists"):
        train(make_cfg(tmp_path, "train.max_steps=1"))
    bad = tmp_path / "bad.csv"
    bad.write_text("post_id,txt\n1,hello\n")
    with pytest.raises(UserError, match="bad.csv"):
        train(make_cfg(tmp_path, f"data.posts={bad}", "train.run_name=other"))
    assert not (tmp_path / "other").exists()


def test_run_dir_loads_in_transformers_with_the_same_logits(tmp_path, make_cfg, tiny_qa_dir):
    transformers = pytest.importorskip("transformers")
    from lib.model.pretrained import load_qa_model

    train(make_cfg(tmp_path, "train.max_steps=2"))
    run = tmp_path / "run"
    ours = load_qa_model(run, require_head=True).eval()
    theirs = transformers.BertForQuestionAnswering.from_pretrained(run).eval()
    ids = torch.randint(5, 1000, (3, 13))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    with torch.no_grad():
        start, end = ours(ids, mask, types)
        out = theirs(input_ids=ids, attention_mask=mask, token_type_ids=types)
    real = mask.bool()
    assert (start - out.start_logits)[real].abs().max() <= 1e-5
    assert (end - out.end_logits)[real].abs().max() <= 1e-5


def test_cli_error_is_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--config",
            "demo.toml",
            "data.posts=/nonexistent.csv",
            f"train.output_dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "/nonexistent.csv" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_a_ranking_metric_selects_the_model(tmp_path, make_cfg):
    metrics = train(make_cfg(tmp_path / "r", "train.epochs=2", "train.metric=ranking_map"))
    assert metrics["metric"] == "ranking_map"
    values = [h["ranking_map"] for h in metrics["history"]]
    best = metrics["history"][values.index(max(values))]["step"]
    assert metrics["best_step"] == best and metrics["val"]["ranking_map"] == max(values)
    assert 0.0 <= metrics["test"]["ranking_ndcg_1000"] <= 1.0


def test_ranking_metric_names_are_checked(tmp_path, make_cfg):
    from lib.errors import UserError

    with pytest.raises(UserError, match=r"did you mean ranking_map\?"):
        make_cfg(tmp_path / "x", "train.metric=ranking_mapp")
