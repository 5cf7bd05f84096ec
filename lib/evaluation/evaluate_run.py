"""`python evaluate.py RUN_DIR`: score a trained run on annotated data (DESIGN §7); predicting on
new posts (--predict) streams them through lib.evaluation.predict_stream.

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
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from lib.config import Config, load_config, with_overrides
from lib.data.corpus import Example, Post
from lib.data.dataset import build_dataset
from lib.data.features import build_features
from lib.data.sentences import split_sentences
from lib.errors import UserError
from lib.evaluation.inference import eval_loader, predict_logits
from lib.evaluation.metrics import RANKING_MEANS, covered_sentences
from lib.evaluation.scoring import EvalResult, by_symptom, evaluate_examples
from lib.evaluation.trec import qrels_lines, run_lines
from lib.files import json_line, read_json_object, write_json_atomic, write_text_atomic
from lib.model.cpu_speedups import apply_cpu_speedups
from lib.model.pretrained import load_checkpoint_weights, load_qa_model, load_tokenizer
from lib.run_dir import (
    CHECKPOINTS,
    MANIFEST,
    check_writable_dir,
    claim_dir,
    is_ours,
    manifest_problem,
    refuse_unless_ours,
    sha256,
    verify_model_files,
)
from lib.training.optimization import evaluation_precision, new_accelerator

log = logging.getLogger("lib.evaluation.evaluate_run")

RUN_FILES = ("config.toml", "config.json", "model.safetensors", "tokenizer.json")
FOLDER_KIND = "evaluation"  # the kind claim_dir marks an evaluation's output folder with


@dataclass(frozen=True)
class EvalData:
    name: str  # used for the default output folder: eval-<name>
    posts: Mapping[str, Post]
    examples: list[Example]
    annotated: bool
    # example_id -> (start, end, explanation) of its aligned evidence rows, for the report
    explanations: Mapping[str, list[tuple[int, int, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """What evaluate.py scores: a run's best model, or one of its training checkpoints (the
    weights from the checkpoint; config, tokenizer and decoding from the run)."""

    run_dir: Path
    checkpoint: Path | None

    @property
    def weights(self) -> str:
        if self.checkpoint is None:
            return "the best model"
        return f"checkpoint {self.checkpoint.name}"

    @property
    def tag(self) -> str:
        """One token naming the scored weights: the TREC run tag and file name."""
        name = "_".join(self.run_dir.resolve().name.split()) or "run"
        return name if self.checkpoint is None else f"{name}-{self.checkpoint.name}"


def resolve_target(path: str | Path) -> Target:
    """A run directory, or RUN/checkpoints/step-N (verified by its manifest, as resume does)."""
    path = Path(path)
    if path.parent.name == CHECKPOINTS and (path.parent.parent / "config.toml").is_file():
        if not path.is_dir():
            raise UserError(f"checkpoint {path} does not exist")
        problem = manifest_problem(path)
        if problem is not None:
            raise UserError(f"checkpoint {path} cannot be used: {problem}")
        if not (path / "model.safetensors").is_file():
            raise UserError(f"checkpoint {path} has no model.safetensors")
        return Target(path.parent.parent, path)
    return Target(path, None)


def _explanations(dataset) -> dict[str, list[tuple[int, int, str]]]:
    aligned = {r.row: r for r in dataset.report.rows if r.rule is not None and r.status == 1}
    out: dict[str, list[tuple[int, int, str]]] = {}
    for ann in dataset.annotations:
        row = aligned.get(ann.row)
        if row is not None and ann.explanation.strip():
            out.setdefault(f"{ann.post_id}::{ann.symptom}", []).append(
                (row.start, row.end, ann.explanation)
            )
    return out


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


def chosen_symptoms(cfg: Config, symptoms: Sequence[str] | None) -> tuple[str, ...]:
    """--symptoms, checked as the config checks data.symptoms, or the run's own."""
    if not symptoms:
        return tuple(cfg.data.symptoms)
    try:  # known, distinct, with a question
        return tuple(
            with_overrides(cfg, {"data.symptoms": [s.strip() for s in symptoms]}).data.symptoms
        )
    except UserError as err:
        raise UserError(f"--symptoms: {err}") from None


def select_data(
    cfg: Config,
    *,
    split: str,
    data: Sequence[str] | None,
    symptoms: Sequence[str] | None,
) -> EvalData:
    """The annotated examples to evaluate: a split of the run's data, or other annotated files."""
    d = replace(cfg.data, symptoms=list(chosen_symptoms(cfg, symptoms)))
    if data is not None:
        # all of the given files: the run's data.limit subsetted its training corpus, not these
        d = replace(d, posts=data[0], annotations=data[1], split=[1.0, 0.0, 0.0], limit=0)
        split = "train"
    dataset = build_dataset(d)
    if split == "all":
        examples = [ex for name in ("train", "val", "test") for ex in dataset.splits[name]]
    else:
        examples = dataset.splits[split]
    if not examples:
        raise UserError(f"the {split} split of {d.posts} has no examples")
    name = "data" if data is not None else split
    return EvalData(name, dataset.posts, examples, True, _explanations(dataset))


def load_target_model(target: Target):
    """(tokenizer, QA model) of a run, with a checkpoint's weights when the target is one."""
    tokenizer = load_tokenizer(target.run_dir)
    model = load_qa_model(target.run_dir, require_head=True)
    if target.checkpoint is not None:
        load_checkpoint_weights(model, target.checkpoint / "model.safetensors")
    return tokenizer, model


def output_folder(
    target: Target, name: str, out: str | Path | None, kind: str = FOLDER_KIND
) -> Path:
    """--out, or RUN/eval-<name>[-<checkpoint>]; checked writable and not someone else's, nor a
    folder of ours of another kind (an evaluation's files are not a prediction's)."""
    default = f"eval-{name}" + (f"-{target.checkpoint.name}" if target.checkpoint else "")
    out = Path(out) if out is not None else target.run_dir / default
    check_writable_dir(out, "--out")
    refuse_unless_ours(out, "the output folder", kind)
    return out


def prediction_records(
    data: EvalData, result: EvalResult, sentences: Mapping[str, list]
) -> list[dict]:
    records = []
    for ex in data.examples:
        pred = result.predictions[ex.example_id]
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
            "sentence_scores": result.sentence_scores[ex.example_id],
            "sentences": [[start, end] for start, end in sentences[ex.post_id]],
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
    symptoms: Sequence[str] | None = None,
    out: str | Path | None = None,
    html: bool = False,
    precision: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[dict[str, float] | None, Path]:
    """Evaluate a run or one of its checkpoints on annotated data; returns (metrics, output
    folder). Prediction on unannotated posts: lib.evaluation.predict_stream."""
    target = resolve_target(run_dir)
    cfg = load_run_config(target.run_dir, overrides)
    chosen = select_data(cfg, split=split, data=data, symptoms=symptoms)
    tokenizer, model = load_target_model(target)
    out = output_folder(target, chosen.name, out)
    log.info("scoring %s of %s", target.weights, target.run_dir)

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
        mixed_precision=evaluation_precision(precision, cfg.train.mixed_precision, device)
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
        curve=html and chosen.annotated,
    )
    metrics = result.metrics if chosen.annotated else None
    if accelerator.is_main_process:
        claim_dir(out, FOLDER_KIND)
        write_outputs(out, target, cfg, chosen, result, sentences, html=html)
    return metrics, out


def write_outputs(
    out: Path,
    target: Target,
    cfg: Config,
    chosen: EvalData,
    result: EvalResult,
    sentences: Mapping[str, list],
    *,
    html: bool,
) -> None:
    """predictions.jsonl, metrics.json (annotated), the TREC run file <tag>.trec (and qrels.txt
    when annotated) and, with `html`, report.html. Of these, the ones this evaluation does not
    write are removed, so that a folder evaluated again never shows an earlier evaluation's
    report or metrics beside the new predictions (the folder is ours: claim_dir checked it)."""
    stale = [] if html else ["report.html"]
    stale += [] if chosen.annotated else ["metrics.json", "qrels.txt"]
    for name in stale:
        (out / name).unlink(missing_ok=True)
    records = prediction_records(chosen, result, sentences)
    write_text_atomic(out / "predictions.jsonl", "".join(json_line(r) for r in records))
    if chosen.annotated:
        write_json_atomic(out / "metrics.json", result.metrics)
    ranked, relevant = by_symptom(chosen.examples, result.sentence_scores, sentences)
    write_text_atomic(out / f"{target.tag}.trec", _lines(run_lines(ranked, target.tag)))
    if chosen.annotated:
        write_text_atomic(out / "qrels.txt", _lines(qrels_lines(relevant)))
    if html:
        from lib.evaluation.html_report import render_report

        run_metrics = read_run_metrics(target.run_dir)
        page = render_report(
            chosen.posts,
            chosen.examples,
            result.predictions,
            title=f"Evidence: {target.run_dir.name} ({chosen.name})",
            annotated=chosen.annotated,
            header=report_header(target, cfg, run_metrics),
            metrics=result.metrics if chosen.annotated else None,
            history=run_metrics.get("history") or None,
            metric_name=cfg.train.metric,
            threshold_curve=result.curve,
            chosen_threshold=result.null_threshold if result.curve else None,
            curve_label=f"{chosen.name} {result.curve_metric}",
            explanations=chosen.explanations,
            sentence_scores=result.sentence_scores,
            sentences=sentences,
            null_threshold=result.null_threshold,
        )
        write_text_atomic(out / "report.html", page)


def _lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def read_run_metrics(run_dir: Path) -> dict:
    """The run's metrics.json (best step, history), or {} when it is missing or unreadable: the
    report then leaves those parts out rather than failing."""
    try:
        return read_json_object(run_dir / "metrics.json")
    except (UserError, OSError):
        return {}


def report_header(target: Target, cfg: Config, run_metrics: Mapping) -> dict[str, str]:
    """The report's header: which run and weights, the base model, best step, threshold and the
    hash of the run's config.toml (two reports with the same hash came from the same settings)."""
    return {
        "run": str(target.run_dir),
        "weights scored": target.weights,
        "base model": str(cfg.model.name),
        "best step": str(run_metrics.get("best_step", "unknown")),
        "null threshold": f"{cfg.decode.null_threshold:g}",
        "config.toml sha256": sha256(target.run_dir / "config.toml"),
    }


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
    if "ranking_map" in metrics:
        lines.append("")
        lines.append(f"{'sentence ranking':24}{'AP':>8}{'R-Prec':>8}{'P@10':>8}{'NDCG':>8}")
        names = ("ap", "r_precision", "p_at_10", "ndcg_1000")
        means = (metrics[k] for k in RANKING_MEANS)
        lines.append(f"{'mean over symptoms':24}" + "".join(f"{v:8.3f}" for v in means))
        for s in symptoms:
            if f"{s}/ranking_ap" in metrics:
                values = (metrics[f"{s}/ranking_{n}"] for n in names)
                lines.append(f"{s:24}" + "".join(f"{v:8.3f}" for v in values))
    return "\n".join(lines)
