"""`python evaluate.py RUN_DIR`: score a trained run, or predict evidence on new posts (DESIGN §7).

A run directory is self-contained (lib.run_dir): its config.toml says which data, features and
decoding (with the validation-tuned null threshold) the model was selected with, so evaluating its
test split here repeats the numbers train.py stored, to the last digit: same features, same eval
batches, same precision, same decoding code (lib.evaluation.inference).

Outputs, under `--out` (default RUN_DIR/eval-<split>/):
  metrics.json       (annotated data only) the flat metric dict of lib.evaluation.metrics
  predictions.jsonl  one line per (post, symptom): post_id, symptom, spans [{start, end, text,
                     score}], null_score, best_score, evidence_sentences (indices of the post's
                     sentences the spans count for) and, when annotated, gold [{start, end, text}]
                     and gold_sentences -- enough to recompute every metric from this file alone
  report.html        (--html) the evidence report of lib.evaluation.html_report
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from lib.config import Config, load_config, with_overrides
from lib.data.corpus import Example, Post, load_posts
from lib.data.dataset import build_dataset
from lib.data.examples import build_examples
from lib.data.features import build_features
from lib.data.sentences import split_sentences
from lib.errors import UserError
from lib.evaluation.decoding import Prediction
from lib.evaluation.inference import eval_loader, predict_logits
from lib.evaluation.metrics import covered_sentences
from lib.evaluation.scoring import evaluate_examples
from lib.files import json_line, write_json_atomic, write_text_atomic
from lib.model.cpu_speedups import apply_cpu_speedups
from lib.model.pretrained import load_qa_model, load_tokenizer
from lib.run_dir import (
    MANIFEST,
    check_writable_dir,
    claim_dir,
    is_ours,
    refuse_unless_ours,
    verify_model_files,
)
from lib.training.optimization import new_accelerator, resolve_mixed_precision

log = logging.getLogger("lib.evaluation.evaluate_run")

RUN_FILES = ("config.toml", "config.json", "model.safetensors", "tokenizer.json")


@dataclass(frozen=True)
class EvalData:
    name: str  # used for the default output folder: eval-<name>
    posts: Mapping[str, Post]
    examples: list[Example]
    annotated: bool


def load_run_config(run_dir: Path, overrides: Sequence[str]) -> Config:
    """The run's own config; only decoding and evaluation settings may be overridden."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run directory (a folder written by train.py)")
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise UserError(f"{run_dir} is not a complete run directory: missing {', '.join(missing)}")
    if is_ours(run_dir) or (run_dir / MANIFEST).exists():
        verify_model_files(run_dir)
    else:  # written before runs carried a marker and a manifest: nothing to verify against
        log.warning("%s has no %s: its files cannot be verified", run_dir, MANIFEST)
    for text in overrides:
        key = text.split("=", 1)[0]
        if not key.startswith("decode.") and key != "train.eval_batch_size":
            raise UserError(
                f"override {key}: evaluate.py accepts only decode.* and "
                "train.eval_batch_size (the model was trained with the rest)"
            )
    return load_config(run_dir / "config.toml", overrides, base=None)


def select_data(
    cfg: Config,
    *,
    split: str,
    data: Sequence[str] | None,
    predict: str | None,
    symptoms: Sequence[str] | None,
) -> EvalData:
    """The examples to evaluate: a split of the run's data, other annotated files, or new posts."""
    d = cfg.data
    if symptoms:
        try:  # checked as the config checks data.symptoms (known, distinct, with a question)
            d = with_overrides(cfg, {"data.symptoms": [s.strip() for s in symptoms]}).data
        except UserError as err:
            raise UserError(f"--symptoms: {err}") from None
    if predict is not None:
        posts = load_posts(predict)
        examples, _ = build_examples(
            posts,
            [],
            symptoms=d.symptoms,
            question_mode=d.question,
            criteria=d.criteria,
            negatives="all",
        )
        return EvalData("predict", posts, examples, annotated=False)
    if data is not None:
        d, split = replace(d, posts=data[0], annotations=data[1], split=[1.0, 0.0, 0.0]), "train"
    dataset = build_dataset(d)
    if split == "all":
        examples = [ex for name in ("train", "val", "test") for ex in dataset.splits[name]]
    else:
        examples = dataset.splits[split]
    if not examples:
        raise UserError(f"the {split} split of {d.posts} has no examples")
    return EvalData("data" if data is not None else split, dataset.posts, examples, True)


def prediction_records(
    data: EvalData, predictions: Mapping[str, Prediction], sentences: Mapping[str, list]
) -> list[dict]:
    records = []
    for ex in data.examples:
        pred = predictions[ex.example_id]
        spans = [(s.start, s.end) for s in pred.spans]
        record = {
            "post_id": ex.post_id,
            "symptom": ex.symptom,
            "spans": [
                {"start": s.start, "end": s.end, "text": s.text, "score": s.score}
                for s in pred.spans
            ],
            "null_score": pred.null_score,
            "best_score": pred.best_score,
            "evidence_sentences": sorted(covered_sentences(spans, sentences[ex.post_id])),
        }
        if data.annotated:
            gold = [(s.start, s.end) for s in ex.answers]
            record["gold"] = [{"start": s.start, "end": s.end, "text": s.text} for s in ex.answers]
            record["gold_sentences"] = sorted(covered_sentences(gold, sentences[ex.post_id]))
        records.append(record)
    return records


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    data: Sequence[str] | None = None,
    predict: str | None = None,
    symptoms: Sequence[str] | None = None,
    out: str | Path | None = None,
    html: bool = False,
    precision: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[dict[str, float] | None, Path]:
    """Evaluate (or predict with) a run; returns (metrics or None, output folder)."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    chosen = select_data(cfg, split=split, data=data, predict=predict, symptoms=symptoms)
    tokenizer = load_tokenizer(run_dir)
    model = load_qa_model(run_dir, require_head=True)
    out = Path(out) if out is not None else run_dir / f"eval-{chosen.name}"
    check_writable_dir(out, "--out")
    refuse_unless_ours(out, "the output folder", "evaluation")

    features = build_features(
        chosen.examples,
        tokenizer,
        max_length=cfg.features.max_length,
        doc_stride=cfg.features.doc_stride,
        max_question_length=cfg.features.max_question_length,
    )
    loader = eval_loader(
        features,
        batch_size=cfg.train.eval_batch_size,
        pad_id=tokenizer.token_to_id("[PAD]"),
        pad_to_multiple_of=cfg.features.pad_to_multiple_of,
    )
    # The precision the run was evaluated with during training, unless asked otherwise.
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    accelerator = new_accelerator(
        mixed_precision=resolve_mixed_precision(precision or cfg.train.mixed_precision, device)
    )
    if accelerator.device.type == "cpu":
        apply_cpu_speedups(model)
    model, loader = accelerator.prepare(model, loader)
    start, end = predict_logits(model, loader, accelerator, len(features))
    sentences = {pid: split_sentences(post.text) for pid, post in chosen.posts.items()}
    result = evaluate_examples(
        chosen.examples,
        features,
        start,
        end,
        decode_cfg=cfg.decode,
        sentences=sentences,
        metric=cfg.train.metric,
        tune_threshold=False,
    )
    metrics = result.metrics if chosen.annotated else None
    if accelerator.is_main_process:
        claim_dir(out, "evaluation")
        records = prediction_records(chosen, result.predictions, sentences)
        write_text_atomic(out / "predictions.jsonl", "".join(json_line(r) for r in records))
        if metrics is not None:
            write_json_atomic(out / "metrics.json", metrics)
        if html:
            from lib.evaluation.html_report import render_report

            page = render_report(
                chosen.posts,
                chosen.examples,
                result.predictions,
                title=f"Evidence: {run_dir.name} ({chosen.name})",
                annotated=chosen.annotated,
            )
            write_text_atomic(out / "report.html", page)
    return metrics, out


def format_metrics(metrics: Mapping[str, float]) -> str:
    """A plain-text table: overall, HasAns/NoAns, then one row per symptom."""
    lines = [f"{'':24}{'exact':>8}{'f1':>8}{'n':>7}"]
    for prefix, name in (("", "overall"), ("HasAns_", "has evidence"), ("NoAns_", "no evidence")):
        lines.append(
            f"{name:24}{metrics[prefix + 'exact']:8.2f}{metrics[prefix + 'f1']:8.2f}"
            f"{int(metrics[prefix + 'total']):7d}"
        )
    lines.append("")
    lines.append(f"{'sentence-level':24}{'P':>8}{'R':>8}{'F1':>8}{'gold':>7}")
    p, r, f = (metrics[f"sentence_{k}"] for k in ("precision", "recall", "f1"))
    lines.append(f"{'all symptoms':24}{p:8.3f}{r:8.3f}{f:8.3f}")
    symptoms = sorted(k.split("/")[0] for k in metrics if k.endswith("/support"))
    for s in symptoms:
        p, r, f = (metrics[f"{s}/sentence_{k}"] for k in ("precision", "recall", "f1"))
        lines.append(f"{s:24}{p:8.3f}{r:8.3f}{f:8.3f}{int(metrics[f'{s}/support']):7d}")
    return "\n".join(lines)
