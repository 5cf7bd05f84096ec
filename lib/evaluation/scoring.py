"""Logits -> spans -> null threshold -> metrics for one split: the evaluation step that training
(validation, test) and evaluate.py share, so both give the same numbers to the last digit.

Each step is its own module, and imports point down the chain: lib.evaluation.decoding (the
windows' n-best spans, merged per example, and the spans kept at a threshold),
lib.evaluation.null_threshold (the exact sweep over thresholds), lib.evaluation.metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from lib.data.corpus import Example
from lib.data.features import Features
from lib.errors import RunError
from lib.evaluation.decoding import (
    Prediction,
    select_predictions,
    sentence_scores,
    span_candidates,
)
from lib.evaluation.metrics import compute_metrics, covered_sentences
from lib.evaluation.null_threshold import best_threshold, threshold_changes, threshold_curve
from lib.evaluation.ranking import MEAN_NAMES, SentenceId, ranking_metrics

SentenceScores = dict[str, list[float | None]]  # example_id -> one score per post sentence


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, float]
    predictions: dict[str, Prediction]
    null_threshold: float
    sentence_scores: SentenceScores
    curve: list[tuple[float, float]] | None = None  # (null threshold, curve_metric), if asked
    curve_metric: str | None = None


def by_symptom(
    examples: Sequence[Example],
    scores: SentenceScores,
    sentences: Mapping[str, Sequence[tuple[int, int]]],
) -> tuple[dict[str, dict[SentenceId, float]], dict[str, set[SentenceId]]]:
    """The sentence rankings' inputs: per symptom, every scored sentence's score (sentences with
    no score are not ranked) and the gold evidence sentences (the metric's coverage rule)."""
    ranked: dict[str, dict[SentenceId, float]] = {}
    relevant: dict[str, set[SentenceId]] = {}
    for ex in examples:
        symptom_scores = ranked.setdefault(ex.symptom, {})
        for index, score in enumerate(scores[ex.example_id]):
            if score is not None:
                symptom_scores[(ex.post_id, index)] = score
        gold = covered_sentences([(s.start, s.end) for s in ex.answers], sentences[ex.post_id])
        relevant.setdefault(ex.symptom, set()).update((ex.post_id, i) for i in gold)
    return ranked, relevant


def check_logits(start_logits: torch.Tensor, end_logits: torch.Tensor) -> None:
    """NaN or +inf logits (-inf marks padding) make every comparison of the decoding false: a
    RunError that says so, not a crash deep in the ranking."""
    for logits in (start_logits, end_logits):
        bad = int((logits.isnan() | logits.isposinf()).any(dim=-1).sum())
        if bad:
            raise RunError(
                f"the model's logits are NaN or infinite in {bad} of {len(logits)} windows "
                "(damaged weights, or an overflow in reduced precision)"
            )


def evaluate_examples(
    examples: Sequence[Example],
    features: Features,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    *,
    decode_cfg,
    sentences: Mapping[str, Sequence[tuple[int, int]]],
    metric: str,
    tune_threshold: bool,
    curve: bool = False,
) -> EvalResult:
    """Decode, optionally pick the null threshold that maximises `metric`, and score; with
    `curve`, also `metric` at every null threshold (sentence_f1 when `metric` is a ranking
    metric, which the threshold does not move).

    The windows' n-best spans are searched and merged once, for the sweep and the predictions."""
    check_logits(start_logits, end_logits)
    candidates = span_candidates(
        examples,
        features,
        start_logits,
        end_logits,
        n_best=decode_cfg.n_best,
        max_answer_length=decode_cfg.max_answer_length,
    )
    threshold = decode_cfg.null_threshold
    has_negatives = any(not ex.answers for ex in examples)
    # A ranking metric does not depend on the threshold (scores are relative to the null).
    tune = tune_threshold and has_negatives and metric not in MEAN_NAMES.values()
    changes = None
    if tune or curve:  # the per-example predictions at every threshold: once, for both uses
        changes = threshold_changes(
            examples,
            candidates,
            multi_span=decode_cfg.multi_span,
            snap_to_sentence=decode_cfg.snap_to_sentence,
            sentences=sentences,
        )
    if tune:
        threshold = best_threshold(examples, changes, sentences, metric=metric)
    predictions = select_predictions(
        examples,
        candidates,
        null_threshold=threshold,
        multi_span=decode_cfg.multi_span,
        snap_to_sentence=decode_cfg.snap_to_sentence,
        sentences=sentences,
    )
    scores = {
        ex.example_id: sentence_scores(
            cand, sentences[ex.post_id], snap_to_sentence=decode_cfg.snap_to_sentence
        )
        for ex, cand in zip(examples, candidates)
    }
    metrics = compute_metrics(examples, predictions, sentences)
    metrics.update(ranking_metrics(*by_symptom(examples, scores, sentences)))
    if not curve:
        return EvalResult(metrics, predictions, threshold, scores)
    curve_metric = "sentence_f1" if metric in MEAN_NAMES.values() else metric
    points = threshold_curve(examples, changes, sentences, metric=curve_metric)
    return EvalResult(metrics, predictions, threshold, scores, points, curve_metric)
