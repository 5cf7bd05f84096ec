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
from lib.evaluation.decoding import Prediction, select_predictions, span_candidates
from lib.evaluation.metrics import compute_metrics
from lib.evaluation.null_threshold import best_null_threshold


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, float]
    predictions: dict[str, Prediction]
    null_threshold: float


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
) -> EvalResult:
    """Decode, optionally pick the null threshold that maximises `metric`, and score.

    The windows' n-best spans are searched and merged once, for the sweep and the predictions."""
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
    if tune_threshold and has_negatives:
        threshold = best_null_threshold(
            examples,
            candidates,
            multi_span=decode_cfg.multi_span,
            snap_to_sentence=decode_cfg.snap_to_sentence,
            sentences=sentences,
            metric=metric,
        )
    predictions = select_predictions(
        examples,
        candidates,
        null_threshold=threshold,
        multi_span=decode_cfg.multi_span,
        snap_to_sentence=decode_cfg.snap_to_sentence,
        sentences=sentences,
    )
    metrics = compute_metrics(examples, predictions, sentences)
    return EvalResult(metrics=metrics, predictions=predictions, null_threshold=threshold)
