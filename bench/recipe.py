"""Benchmark: time to quality -- our training vs the transformers QA recipe, on the demo corpus.

    python bench/recipe.py --out DIR [--limit N] [--threads N] [--mixed-precision no|bf16]
                           [--sides ours,recipe,recipe-our-lr] [--keep-run] [--smoke]
                           [key=value ...]

The real run: fp32 (--mixed-precision no, the default: the 2-core development CPU has no bf16
units), the threads torch uses by default, the whole demo corpus. Measured on that machine,
alone on it (2026-11-29/30): ours 18 min, recipe 1.7 h, recipe-our-lr 2.4 h (~4.4 h in all; a
busy machine makes it several times longer; runs/ is git-ignored):

    python bench/recipe.py --out runs/recipe
    python bench/recipe.py --out runs/recipe --sides recipe-our-lr    # redo one side
    python bench/recipe.py --out runs/recipe --keep-run               # keep ours' run folder

A side's results are kept in DIR/side-<name>.json; the report (DIR/results.json, DIR/table.md,
DIR/recipe.svg) combines every side file in DIR run with the same settings, so a side can be run
or re-run on its own. `--smoke` (the test's run): a tiny random BERT, 30 posts, 2 symptoms,
one epoch per side.

One machine, one torch thread count, one precision (--mixed-precision, default "no" = fp32, for
all sides), the same corpus (demo.toml's data/demo, --limit = data.limit, the first N posts), the
same examples and split (lib.data.dataset.build_dataset: one example per (post, symptom), the
"criterion" question, negatives "all", split by post hash), the same base checkpoint
(model.name, demo.toml: minilm-l6) and the same windows (features.max_length 256,
features.doc_stride 64). key=value overrides apply to demo.toml, so to all sides' data, model and
windows, and to ours' training; train.metric is fixed to sentence_f1. Each side runs in its own
process, one after the other (so neither sees the other's allocator settings or threads).

  ours           lib.training.trainer.train(cfg) with demo.toml's settings: lr 2e-4, 3 epochs,
                 batch 16, 10% warm-up, windows with evidence + a fresh 10% of the others each
                 epoch, length-grouped batches, our span loss, attention dropout 0, CPU speed-ups,
                 validation after every epoch (null threshold tuned on it, best model kept), test
                 on the best model. Per validation: elapsed_s (wall seconds since set-up ended,
                 this validation included) and sentence_f1 from train()'s history.
  recipe         transformers' examples/pytorch/question-answering as run_qa.py (Trainer) /
                 run_qa_no_trainer.py apply it to SQuAD v2 data: AutoTokenizer (fast),
                 prepare_train_features' windows (truncation="only_second",
                 return_overflowing_tokens, return_offsets_mapping, padding="max_length"), one
                 training example per (post, symptom) labelled with its FIRST gold span only
                 (the recipe reads answers["answer_start"][0]; our spans are sorted, so the
                 earliest in the post), a window without it -> [CLS] (also every window of a
                 no-evidence example, SQuAD v2 style), every window every epoch, shuffled,
                 BertForQuestionAnswering(attn_implementation="sdpa") from the same checkpoint
                 with its own dropout (0.1 hidden and attention), its built-in loss, fused AdamW
                 (Trainer's default optim for torch >= 2.8) with weight decay 0, linear schedule
                 without warm-up, clipping at 1.0, the README's SQuAD hyper-parameters: lr 3e-5,
                 2 epochs, batch 12. Evaluation: prepare_validation_features' windows, batch 8
                 (TrainingArguments' default), utils_qa.postprocess_qa_predictions (SQuAD v2):
                 per example the best start+end over the top-20 starts x top-20 ends of every
                 window (decode.max_answer_length tokens at most, both inside the post), null
                 score = min over windows of the [CLS] score, "no evidence" when null - best > 0,
                 one span, not snapped to sentences. Validation after every epoch (timed, as
                 ours is), test on the final model.
  recipe-our-lr  the recipe at our learning rate and epochs (train.lr, train.epochs: 2e-4, 3),
                 batch 12 still, so that only the schedule's length and height change.

Both sides' predictions are scored by OUR metrics (lib.evaluation.metrics.compute_metrics:
sentence_f1, SQuAD exact, ...), on the same validation and test examples.

Windows. run_qa.py passes --doc_stride as the tokenizer's `stride`, the number of tokens that
neighbouring windows share; our features.doc_stride is the same overlap (lib/data/features.py:
window k starts at post token k * (size - doc_stride)), so stride = features.doc_stride and the
window counts are identical (results.json "data": windows vs lib_windows; the run warns if not).
Ours cuts questions at features.max_question_length (64); the recipe never cuts them, which
matters only for a question over 64 tokens (none here).

Reported: per evaluation of each side, cumulative wall seconds and validation sentence_f1; the
first evaluation of ours at or above each recipe variant's best validation sentence_f1, and the
ratio (recipe's time to its best) / (ours' time to that level); test sentence_f1 and exact.

Caveats:
- Ours' validation scores use the null threshold tuned on that same validation split
  (decode.tune_null_threshold), the recipe's a fixed 0 (run_qa's null_score_diff_threshold
  default): each ours point is a little optimistic. Test numbers are clean: ours applies the
  threshold chosen on validation to test.
- Ours decodes several spans snapped to whole sentences (decode.multi_span,
  decode.snap_to_sentence); the recipe one raw span. That is part of the policy measured, and it
  moves sentence_f1 by itself; the time axis does not depend on it.
- Ours tests its best validation epoch, the recipe its last (run_qa has no
  load_best_model_at_end by default).
- Wall time starts once data, tokenisation and the model are loaded (both sides; "setup_s" and
  "total_s" give the rest). Ours' includes writing its best model and epoch checkpoints (about a
  second each for MiniLM); the recipe writes nothing (Trainer would save every 500 steps).
- With --mixed-precision bf16, ours validates a bf16 copy of its weights (as it always does),
  the recipe under autocast (Trainer's default, without bf16_full_eval).
- One run, one seed: on a shared or busy machine timings drift (the load average before the run
  is recorded).
"""

from __future__ import annotations

import argparse
import collections
import html
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tiny_model import save_tiny_qa_base  # noqa: E402
from lib.config import load_config, with_overrides  # noqa: E402
from lib.data.corpus import Example  # noqa: E402
from lib.data.dataset import build_dataset  # noqa: E402
from lib.data.sentences import split_sentences  # noqa: E402
from lib.evaluation.decoding import Prediction, ScoredSpan  # noqa: E402
from lib.evaluation.metrics import compute_metrics  # noqa: E402
from lib.evaluation.null_threshold import threshold_curve  # noqa: E402
from lib.files import write_json_atomic, write_text_atomic  # noqa: E402
from lib.model.hf_weights import read_config  # noqa: E402
from lib.model.pretrained import resolve_model_dir  # noqa: E402
from lib.training.optimization import new_accelerator  # noqa: E402

SIDES = ("ours", "recipe", "recipe-our-lr")
LABELS = {"ours": "ours", "recipe": "recipe", "recipe-our-lr": "recipe, our lr/epochs"}
# transformers' question-answering README (SQuAD): lr 3e-5, 2 epochs, batch 12; the rest are
# TrainingArguments' defaults (weight decay 0, no warm-up, clipping at 1.0, eval batch 8).
RECIPE = {"lr": 3e-5, "epochs": 2, "batch_size": 12, "eval_batch_size": 8, "max_grad_norm": 1.0}
COLORS = ("#0969da", "#bc4c00", "#1a7f37")  # lib.evaluation.svg_charts' palette
SUMMARY = ("sentence_f1", "sentence_precision", "sentence_recall", "exact", "f1")
# --smoke: bench/tiny_model.py's tiny random BERT.
SMOKE_OVERRIDES = [
    "data.symptoms=['SLEEP_ISSUES', 'FATIGUE']",
    "data.semantic_model=none",  # no sentence encoder to load
    "features.max_length=128",
    "features.doc_stride=32",
    "features.max_question_length=32",
    "train.epochs=1",
    "train.patience=0",
]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


# ---------------------------------------------------------------- settings


def bench_overrides(args, threads: int) -> list[str]:
    """demo.toml overrides for every side: smoke settings, the user's, then the bench's own."""
    overrides = [*SMOKE_OVERRIDES, f"model.name={args.out / 'smoke-model'}"] if args.smoke else []
    return [
        *overrides,
        *args.overrides,
        f"data.limit={args.limit}",
        f"train.mixed_precision={args.mixed_precision}",
        f"train.threads={threads}",
        "train.metric=sentence_f1",
    ]


def common_settings(args, threads: int) -> dict:
    """What every side file of one comparison must share."""
    return {
        "limit": args.limit,
        "threads": threads,
        "mixed_precision": args.mixed_precision,
        "smoke": args.smoke,
        "overrides": list(args.overrides),
    }


def summary(metrics: dict) -> dict:
    return {key: float(metrics[key]) for key in SUMMARY}


# ---------------------------------------------------------------- ours


def run_ours(cfg, out: Path, keep_run: bool) -> dict:
    """train(cfg) in a run folder under `out` (kept with --keep-run, else removed)."""
    from lib.training.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        runs = out / "ours-runs" if keep_run else Path(scratch)
        cfg = with_overrides(cfg, {"train.output_dir": str(runs), "train.run_name": ""})
        begin = time.perf_counter()
        metrics = train(cfg)
        total = time.perf_counter() - begin
    rows = [
        {
            "epoch": h["epoch"],
            "step": h["step"],
            "elapsed_s": h["elapsed_s"],
            "val_sentence_f1": h["sentence_f1"],
            "train_loss": h["train_loss"],
        }
        for h in metrics["history"]
    ]
    t = cfg.train
    checkpoint = read_config(resolve_model_dir(cfg.model.name))  # "checkpoint" dropout rates
    rates = checkpoint.hidden_dropout_prob, checkpoint.attention_probs_dropout_prob
    return {
        "hparams": {
            "lr": t.lr,
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "warmup_ratio": t.warmup_ratio,
            "weight_decay": t.weight_decay,
            "no_answer_fraction": t.no_answer_fraction,
            "dropout": rates[0] if cfg.model.dropout == "checkpoint" else cfg.model.dropout,
            "attention_dropout": (
                rates[1]
                if cfg.model.attention_dropout == "checkpoint"
                else cfg.model.attention_dropout
            ),
            "steps": metrics["steps"],
        },
        "epochs": rows,
        "best_step": metrics["best_step"],
        "test": summary(metrics["test"]),
        "test_model": "best validation epoch, null threshold tuned on validation",
        "total_s": total,
        "setup_s": total - rows[-1]["elapsed_s"],  # set-up, and the test scoring at the end
        "run_dir": metrics["run_dir"] if keep_run else None,
    }


# ---------------------------------------------------------------- the recipe's data


def tokenize(tokenizer, examples: list[Example], *, max_length: int, stride: int):
    """The tokenizer call of run_qa.py's prepare_train_features / prepare_validation_features
    (question first: BERT pads on the right)."""
    return tokenizer(
        [ex.question.lstrip() for ex in examples],
        [ex.context for ex in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
        return_tensors="np",
    )


def context_mask(encoding) -> np.ndarray:
    """(W, L) bool: the post's tokens (sequence id 1), as the recipe tests sequence_ids."""
    return np.array(
        [[sid == 1 for sid in encoding.sequence_ids(w)] for w in range(len(encoding["input_ids"]))]
    )


def first_span_positions(encoding, examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """prepare_train_features' labels, line for line: the example's first answer if the window
    holds all of it, else [CLS] (index 0); no answer -> [CLS]."""
    context = context_mask(encoding)
    starts, ends = [], []
    for w, sample in enumerate(encoding["overflow_to_sample_mapping"].tolist()):
        answers = examples[sample].answers
        offsets = encoding["offset_mapping"][w].tolist()
        inside = np.flatnonzero(context[w])
        token_start, token_end = int(inside[0]), int(inside[-1])
        if answers:
            start_char = answers[0].start
            end_char = start_char + len(answers[0].text)
        if not answers or not (
            offsets[token_start][0] <= start_char and offsets[token_end][1] >= end_char
        ):
            starts.append(0)
            ends.append(0)
            continue
        while token_start < len(offsets) and offsets[token_start][0] <= start_char:
            token_start += 1
        starts.append(token_start - 1)
        while offsets[token_end][1] >= end_char:
            token_end -= 1
        ends.append(token_end + 1)
    return np.asarray(starts), np.asarray(ends)


@dataclass
class RecipeEval:
    """One evaluation split as prepare_validation_features leaves it."""

    examples: list[Example]
    inputs: dict[str, torch.Tensor]  # input_ids, attention_mask, token_type_ids (W, L)
    sample: np.ndarray  # (W,) example index of each window
    context: np.ndarray  # (W, L) bool
    offsets: np.ndarray  # (W, L, 2) character offsets


def model_inputs(encoding) -> dict[str, torch.Tensor]:
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {key: torch.from_numpy(encoding[key].astype(np.int64)) for key in keys}


def recipe_eval(tokenizer, examples: list[Example], *, max_length: int, stride: int) -> RecipeEval:
    encoding = tokenize(tokenizer, examples, max_length=max_length, stride=stride)
    return RecipeEval(
        examples=examples,
        inputs=model_inputs(encoding),
        sample=encoding["overflow_to_sample_mapping"],
        context=context_mask(encoding),
        offsets=encoding["offset_mapping"],
    )


def window_geometry(cfg, splits: dict, recipe_windows: dict) -> dict:
    """Our windows of the same examples (lib.data.features), to check the geometry is the same,
    and how many training windows ours draws per epoch (lib.data.batching.TrainingBatches)."""
    from lib.data.batching import TrainingBatches
    from lib.data.features import build_features
    from lib.model.pretrained import load_tokenizer

    f, t = cfg.features, cfg.train
    tokenizer = load_tokenizer(cfg.model.name)
    ours = {
        split: build_features(
            examples,
            tokenizer,
            max_length=f.max_length,
            doc_stride=f.doc_stride,
            max_question_length=f.max_question_length,
        )
        for split, examples in splits.items()
    }
    batches = TrainingBatches(
        ours["train"],
        batch_size=t.batch_size,
        grad_accum=t.grad_accum,
        no_answer_fraction=t.no_answer_fraction,
        seed=t.seed,
    )
    lib_windows = {split: len(features) for split, features in ours.items()}
    if lib_windows != recipe_windows:
        print(f"warning: windows differ: ours {lib_windows}, recipe {recipe_windows}", flush=True)
    return {
        "examples": {split: len(examples) for split, examples in splits.items()},
        "windows": recipe_windows,
        "lib_windows": lib_windows,
        "ours_windows_per_epoch": len(batches.answer) + batches.n_no_answer,
    }


# ---------------------------------------------------------------- the recipe's evaluation


@torch.inference_mode()
def recipe_logits(model, inputs: dict, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Start/end logits of every window in order (Trainer.evaluation_loop, padded batches)."""
    model.eval()
    starts, ends = [], []
    for i in range(0, len(inputs["input_ids"]), batch_size):
        out = model(**{key: value[i : i + batch_size] for key, value in inputs.items()})
        starts.append(out.start_logits.float().cpu())
        ends.append(out.end_logits.float().cpu())
    model.train()
    return torch.cat(starts).numpy(), torch.cat(ends).numpy()


def best_span(split: RecipeEval, windows: list[int], start_logits, end_logits, *, n_best: int,
              max_answer_length: int) -> tuple[float, tuple[float, int, int] | None]:  # fmt: skip
    """utils_qa.postprocess_qa_predictions' search for one example: (null score, best (score,
    start char, end char) or None). Ties keep the first found, as its stable sort does."""
    null, best = math.inf, None
    for w in windows:
        start, end = start_logits[w], end_logits[w]
        null = min(null, float(start[0] + end[0]))
        context, offsets = split.context[w], split.offsets[w]
        for s in np.argsort(start)[-1 : -n_best - 1 : -1].tolist():
            for e in np.argsort(end)[-1 : -n_best - 1 : -1].tolist():
                if not (context[s] and context[e]) or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start[s] + end[e])
                if best is None or score > best[0]:
                    best = (score, int(offsets[s][0]), int(offsets[e][1]))
    return null, best


def recipe_predictions(split: RecipeEval, start_logits, end_logits, *, n_best: int,
                       max_answer_length: int, null_threshold: float) -> dict[str, Prediction]:  # fmt: skip
    """example_id -> our Prediction: the recipe's one span, or none when null - best >
    null_threshold (version_2_with_negative)."""
    windows = collections.defaultdict(list)
    for w, sample in enumerate(split.sample.tolist()):
        windows[sample].append(w)
    predictions = {}
    for index, ex in enumerate(split.examples):
        null, best = best_span(
            split, windows[index], start_logits, end_logits, n_best=n_best,
            max_answer_length=max_answer_length,
        )  # fmt: skip
        spans = ()
        if best is not None and null - best[0] <= null_threshold:
            score, start, end = best
            spans = (ScoredSpan(start, end, ex.context[start:end], score),)
        best_score = best[0] if best is not None else -math.inf
        predictions[ex.example_id] = Prediction(spans, null_score=null, best_score=best_score)
    return predictions


def score_recipe(model, split: RecipeEval, *, cfg, sentences: dict, batch_size: int):
    """Logits -> the recipe's predictions -> our metrics on one split; also (untimed) the
    predictions at every null threshold, for `tuned_sentence_f1`."""
    start, end = recipe_logits(model, split.inputs, batch_size)
    always = recipe_predictions(
        split, start, end, n_best=cfg.decode.n_best,
        max_answer_length=cfg.decode.max_answer_length, null_threshold=math.inf,
    )  # fmt: skip
    return compute_metrics(split.examples, at_threshold(always, 0.0), sentences), always


def at_threshold(always: dict[str, Prediction], null_threshold: float) -> dict[str, Prediction]:
    """The recipe's rule on always-answering predictions: no span when null - best > threshold."""
    return {
        key: p if p.null_score - p.best_score <= null_threshold else replace(p, spans=())
        for key, p in always.items()
    }


def tuned_sentence_f1(always: dict[str, Prediction], examples, sentences) -> float:
    """Not the recipe -- a diagnostic: the best sentence_f1 over every null threshold, as ours
    tunes it on validation (lib.evaluation.null_threshold's one-pass sweep), from the same
    predictions. An example's prediction changes once, at null - best, from no span to its span;
    >= the recipe's own threshold-0 value by construction."""
    changes = [
        [(p.null_score - p.best_score, p)] if p.spans else []
        for p in (always[ex.example_id] for ex in examples)
    ]
    curve = threshold_curve(examples, changes, sentences, metric="sentence_f1")
    if not curve:  # no example has a span: every threshold predicts nothing
        return compute_metrics(examples, always, sentences)["sentence_f1"]
    return max(value for _, value in curve)


# ---------------------------------------------------------------- the recipe's training


def recipe_hparams(side: str, cfg, smoke: bool) -> dict:
    hparams = dict(RECIPE)
    if side == "recipe-our-lr":
        hparams.update(lr=cfg.train.lr, epochs=cfg.train.epochs)
    elif smoke:
        hparams["epochs"] = 1
    return hparams


def recipe_setup(cfg, hp: dict, encoding, labels, accelerator):
    """(model, optimizer, loader, scheduler), prepared: what Trainer builds for run_qa."""
    import transformers
    from accelerate.utils import set_seed

    set_seed(cfg.train.seed)
    folder = resolve_model_dir(cfg.model.name)
    model = transformers.BertForQuestionAnswering.from_pretrained(
        folder, attn_implementation="sdpa"
    )
    inputs = model_inputs(encoding)
    dataset = torch.utils.data.TensorDataset(
        inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"],
        torch.from_numpy(labels[0]), torch.from_numpy(labels[1]),
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=hp["batch_size"], shuffle=True,
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=0.0, fused=True)
    scheduler = transformers.get_linear_schedule_with_warmup(
        optimizer, 0, hp["epochs"] * len(loader)
    )
    return accelerator.prepare(model, optimizer, loader, scheduler)


def recipe_epoch(model, loader, optimizer, scheduler, accelerator, max_grad_norm: float) -> float:
    """One pass over every window (Trainer.training_step + its optimizer step); mean loss."""
    from tqdm.auto import tqdm

    model.train()
    total, count = torch.zeros(()), 0
    interval = 0.5 if sys.stderr.isatty() else 30.0
    for ids, mask, types, starts, ends in tqdm(loader, desc="train", mininterval=interval):
        out = model(
            input_ids=ids, attention_mask=mask, token_type_ids=types,
            start_positions=starts, end_positions=ends,
        )  # fmt: skip
        accelerator.backward(out.loss)
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        total, count = total + out.loss.detach().float(), count + 1
    return float(total) / max(1, count)


def recipe_data(cfg, tokenizer) -> dict:
    """Examples, windows, labels and sentences; everything the recipe side needs before the
    clock starts."""
    splits = build_dataset(cfg.data).splits
    f = cfg.features
    window = {"max_length": f.max_length, "stride": f.doc_stride}
    encoding = tokenize(tokenizer, splits["train"], **window)
    labels = first_span_positions(encoding, splits["train"])
    evals = {name: recipe_eval(tokenizer, splits[name], **window) for name in ("val", "test")}
    posts = {ex.post_id: ex.context for examples in splits.values() for ex in examples}
    windows = {"train": len(labels[0])} | {k: len(v.sample) for k, v in evals.items()}
    return {
        "encoding": encoding,
        "labels": labels,
        "evals": evals,
        "sentences": {pid: split_sentences(text) for pid, text in posts.items()},
        "geometry": window_geometry(cfg, splits, windows),
    }


def run_recipe(cfg, side: str, smoke: bool) -> dict:
    """Set up, then epochs of training each followed by a timed validation; test at the end."""
    import transformers

    transformers.logging.set_verbosity_error()
    begin = time.perf_counter()
    hp = recipe_hparams(side, cfg, smoke)
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        resolve_model_dir(cfg.model.name), use_fast=True
    )
    data = recipe_data(cfg, tokenizer)
    accelerator = new_accelerator(mixed_precision=cfg.train.mixed_precision)
    model, optimizer, loader, scheduler = recipe_setup(
        cfg, hp, data["encoding"], data["labels"], accelerator
    )
    score = partial(
        score_recipe, model, cfg=cfg, sentences=data["sentences"], batch_size=hp["eval_batch_size"]
    )
    started = time.perf_counter()
    rows = []
    for epoch in range(1, hp["epochs"] + 1):
        loss = recipe_epoch(model, loader, optimizer, scheduler, accelerator, hp["max_grad_norm"])
        val, always = score(data["evals"]["val"])
        elapsed = time.perf_counter() - started
        val_examples = data["evals"]["val"].examples
        tuned = tuned_sentence_f1(always, val_examples, data["sentences"])
        started = time.perf_counter() - elapsed  # the diagnostic is off the clock
        rows.append(
            {
                "epoch": epoch,
                "step": epoch * len(loader),
                "elapsed_s": elapsed,
                "val_sentence_f1": val["sentence_f1"],
                "val_exact": val["exact"],
                "val_sentence_f1_tuned_threshold": tuned,
                "train_loss": loss,
            }
        )
        print(f"{side} epoch {epoch}: {json.dumps(rows[-1])}", flush=True)
    test = summary(score(data["evals"]["test"])[0])
    dropout = model.config.hidden_dropout_prob, model.config.attention_probs_dropout_prob
    total = time.perf_counter() - begin
    return {
        "hparams": {
            **hp,
            "weight_decay": 0.0,
            "warmup_ratio": 0.0,
            "steps": rows[-1]["step"],
            "dropout": dropout[0],
            "attention_dropout": dropout[1],
        },
        "epochs": rows,
        "test": test,
        "test_model": "last epoch, null threshold 0",
        "total_s": total,
        "setup_s": total - rows[-1]["elapsed_s"],  # set-up, and the test scoring at the end
        "data": data["geometry"],
    }


# ---------------------------------------------------------------- the report


def time_to_quality(ours: list[dict], recipe: list[dict]) -> dict:
    """The recipe's best validation sentence_f1 (its first evaluation there), the first
    evaluation of ours at or above it, and recipe time / ours time (None: ours never got there)."""
    best = max(recipe, key=lambda row: row["val_sentence_f1"])
    hit = next((row for row in ours if row["val_sentence_f1"] >= best["val_sentence_f1"]), None)
    return {
        "recipe_best_val_sentence_f1": best["val_sentence_f1"],
        "recipe_epoch": best["epoch"],
        "recipe_time_s": best["elapsed_s"],
        "ours_epoch": hit["epoch"] if hit else None,
        "ours_time_s": hit["elapsed_s"] if hit else None,
        "ratio": best["elapsed_s"] / hit["elapsed_s"] if hit else None,
    }


def chart(sides: dict, *, width: int = 640, height: int = 320) -> str:
    """recipe.svg: validation sentence_f1 (0..1) against wall minutes from 0, one line with a
    marker per evaluation for each side. Hand-written (lib.evaluation.svg_charts' line chart
    starts its axes at the data, and time to quality is read from 0); every label escaped."""
    left, top, right, bottom = 64, 52, width - 16, height - 48
    longest = max((r["elapsed_s"] for side in sides.values() for r in side["epochs"]), default=60)
    x_max = longest / 60 * 1.05 or 1.0

    def xy(row: dict) -> tuple[float, float]:
        x = left + (right - left) * row["elapsed_s"] / 60 / x_max
        return x, bottom - (bottom - top) * min(max(row["val_sentence_f1"], 0.0), 1.0)

    text = 'font-family="sans-serif" font-size="12" fill="#1f2328"'
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" {text} font-weight="bold">'
        "Time to quality: validation sentence_f1 against wall time</text>",
    ]
    for k in range(6):  # grid and ticks: y at 0.2 steps, x at fifths of the time axis
        y, x = bottom - (bottom - top) * k / 5, left + (right - left) * k / 5
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {text}>{k / 5:.1f}</text>'
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#d0d7de"/>'
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" {text}>'
            f"{x_max * k / 5:.3g}</text>"
        )
    parts.append(
        f'<text x="{(left + right) / 2}" y="{height - 12}" text-anchor="middle" {text}>'
        "wall time (minutes, validation included)</text>"
        f'<text x="16" y="{(top + bottom) / 2}" text-anchor="middle" {text} '
        f'transform="rotate(-90 16 {(top + bottom) / 2})">validation sentence_f1</text>'
    )
    for index, (name, side) in enumerate(sides.items()):
        color, key_x = COLORS[index % len(COLORS)], left + 180 * index
        points = [xy(row) for row in side["epochs"]]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>' for x, y in points]
        parts.append(
            f'<line x1="{key_x}" y1="34" x2="{key_x + 18}" y2="34" stroke="{color}" '
            f'stroke-width="2"/><text x="{key_x + 24}" y="38" {text}>'
            f"{html.escape(LABELS[name], quote=True)}</text>"
        )
    return "".join(parts) + "</svg>\n"


def header_lines(results: dict) -> list[str]:
    m, s = results["machine"], results["settings"]
    lines = [
        "# Time to quality: ours vs the transformers QA recipe",
        "",
        f"machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({s['threads']} threads), "
        f"transformers {m['transformers']}; load average {m['load_before']:.2f} before the run",
        f"precision: {'fp32' if s['mixed_precision'] == 'no' else s['mixed_precision']}; "
        f"posts: {'all' if not s['limit'] else s['limit']}"
        + (" (smoke: tiny random model)" if s["smoke"] else "")
        + (f"; overrides: {' '.join(s['overrides'])}" if s["overrides"] else ""),
    ]
    data = next((side["data"] for side in results["sides"].values() if "data" in side), None)
    if data:
        lines.append(
            f"examples train/val/test: {'/'.join(str(n) for n in data['examples'].values())}; "
            f"windows: {'/'.join(str(n) for n in data['windows'].values())} (ours the same: "
            f"{'yes' if data['windows'] == data['lib_windows'] else 'NO'}); windows trained per "
            f"epoch: ours {data['ours_windows_per_epoch']}, recipe {data['windows']['train']}"
        )
    return lines


def markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    rule = "|---|" + "---:|" * (len(header) - 1)
    return ["", "| " + " | ".join(header) + " |", rule] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def ttq_row(name: str, ttq: dict) -> list[str]:
    recipe = [
        LABELS[name],
        f"{ttq['recipe_best_val_sentence_f1']:.4f} (epoch {ttq['recipe_epoch']})",
        f"{ttq['recipe_time_s']:.0f}",
    ]
    if ttq["ours_time_s"] is None:
        return [*recipe, "not reached", "", ""]
    ours = [f"epoch {ttq['ours_epoch']}", f"{ttq['ours_time_s']:.0f}", f"**{ttq['ratio']:.2f}×**"]
    return recipe + ours


def table(results: dict) -> str:
    """table.md: settings per side, the validation curve, time to quality, test."""
    sides = results["sides"]
    setup = [
        [
            LABELS[name],
            f"{side['hparams']['lr']:g}",
            str(side["hparams"]["epochs"]),
            str(side["hparams"]["batch_size"]),
            f"{side['hparams']['dropout']} / {side['hparams']['attention_dropout']}",
            str(side["hparams"]["steps"]),
            f"{side['setup_s']:.0f}",
        ]
        for name, side in sides.items()
    ]
    curve = [
        [LABELS[name], str(row["epoch"]), f"{row['elapsed_s']:.0f}",
         f"{row['elapsed_s'] / 60:.1f}", f"{row['val_sentence_f1']:.4f}",
         f"{row['val_sentence_f1_tuned_threshold']:.4f}"
         if "val_sentence_f1_tuned_threshold" in row else "–"]
        for name, side in sides.items()
        for row in side["epochs"]
    ]  # fmt: skip
    test = [
        [LABELS[name], f"{side['test']['sentence_f1']:.4f}", f"{side['test']['exact']:.2f}",
         f"{side['test']['f1']:.2f}", side["test_model"]]
        for name, side in sides.items()
    ]  # fmt: skip
    lines = header_lines(results)
    lines += markdown(
        ["side", "lr", "epochs", "batch", "dropout (hidden / attention)", "steps",
         "set-up + test (s)"], setup,
    )  # fmt: skip
    lines += markdown(
        ["side", "epoch", "wall time (s)", "(min)", "val sentence_f1",
         "(diagnostic) at the best null threshold"], curve,
    )  # fmt: skip
    lines += [
        "",
        "The diagnostic column is not the recipe (which keeps null threshold 0): its predictions at "
        "the null threshold that maximises validation sentence_f1, as ours picks its threshold "
        "(ours' own column is already that), computed off the clock.",
    ]
    lines += markdown(
        ["recipe side", "its best val sentence_f1", "at (s)", "ours first at or above it",
         "at (s)", "recipe time / ours time"],
        [ttq_row(name, ttq) for name, ttq in results["time_to_quality"].items()],
    )  # fmt: skip
    lines += markdown(["side", "test sentence_f1", "test exact", "test f1", "model tested"], test)
    return "\n".join(lines) + "\n"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def report(out: Path, common: dict, load_before: float) -> dict:
    """Combine the side files in `out` made with `common` settings; write the three outputs."""
    sides = {}
    for name in SIDES:
        path = out / f"side-{name}.json"
        if path.is_file():
            side = json.loads(path.read_text(encoding="utf-8"))
            if side["common"] == common:
                sides[name] = side
            else:
                print(f"{path}: other settings ({side['common']}), left out", file=sys.stderr)
    results = {
        "machine": {
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "transformers": version("transformers"),
            "load_before": load_before,
        },
        "settings": common,
        "sides": sides,
        "time_to_quality": {
            name: time_to_quality(sides["ours"]["epochs"], sides[name]["epochs"])
            for name in SIDES[1:]
            if name in sides and "ours" in sides
        },
    }
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "table.md", table(results))
    write_text_atomic(out / "recipe.svg", chart(sides))
    return results


# ---------------------------------------------------------------- processes


def worker(args) -> None:
    """Run one side in this process and write its side file."""
    torch.set_num_threads(args.threads)
    cfg = load_config(ROOT / "demo.toml", bench_overrides(args, args.threads))
    side = args.worker
    if side == "ours":
        result = run_ours(cfg, args.out, args.keep_run)
    else:
        result = run_recipe(cfg, side, args.smoke)
    result = {"side": side, "common": common_settings(args, args.threads), **result}
    write_json_atomic(args.out / f"side-{side}.json", result)


def run_side(side: str, args, threads: int) -> None:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", side]
    command += ["--out", str(args.out), "--threads", str(threads), "--limit", str(args.limit)]
    command += ["--mixed-precision", args.mixed_precision]
    command += ["--smoke"] * args.smoke + ["--keep-run"] * args.keep_run + list(args.overrides)
    env = dict(os.environ, TRANSFORMERS_VERBOSITY="error")
    print(f"--- {side} ---", flush=True)
    done = subprocess.run(command, cwd=ROOT, env=env)
    if done.returncode:
        raise SystemExit(f"the {side} side failed (exit status {done.returncode}); see above")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--limit", type=int, default=0, help="first N posts (data.limit); 0 = all")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's")
    parser.add_argument("--mixed-precision", choices=("no", "bf16"), default="no")
    parser.add_argument(
        "--sides", default=",".join(SIDES), help="comma-separated, of " + ", ".join(SIDES)
    )
    parser.add_argument("--keep-run", action="store_true", help="keep ours' run folder in --out")
    parser.add_argument("--smoke", action="store_true", help="tiny random model, seconds")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="demo.toml overrides key=value")
    args = parser.parse_args()
    args.out = args.out.resolve()
    if args.smoke and not args.limit:
        args.limit = 30  # posts: enough for non-empty validation and test splits
    unknown = set(args.sides.split(",")) - set(SIDES)
    if unknown:
        parser.error(f"--sides: unknown {', '.join(sorted(unknown))} (choose from {SIDES})")
    return args


def main() -> None:
    args = parse_args()
    os.chdir(ROOT)  # demo.toml's data paths are relative to the repository
    if args.worker:
        return worker(args)
    args.out.mkdir(parents=True, exist_ok=True)
    threads = args.threads or torch.get_num_threads()
    load_before = os.getloadavg()[0]
    if args.smoke and not (args.out / "smoke-model" / "config.json").is_file():
        save_tiny_qa_base(args.out / "smoke-model", TOKENIZER_FILES)
    for side in (s for s in SIDES if s in args.sides.split(",")):
        run_side(side, args, threads)
    results = report(args.out, common_settings(args, threads), load_before)
    print(table(results))
    print(f"written: {args.out / 'results.json'}, table.md, recipe.svg")


if __name__ == "__main__":
    main()
