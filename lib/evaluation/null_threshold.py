"""Choosing decode.null_threshold on validation data (DESIGN §4).

The SQuAD v2 recipe (the official evaluation script's `find_best_thresh`): predict "no evidence"
when null - best > threshold and take the threshold that maximises the metric. It is exact here:
an example's prediction changes only at the thresholds null - score of the spans it would take
(lib/decoding.select_spans), so those are the only candidates, and lib.evaluation.metrics.best_threshold
sweeps them all in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lib.data.corpus import Example
from lib.evaluation.decoding import SpanCandidates, select_spans
from lib.evaluation.metrics import MetricAggregator, score_example


def _answer_thresholds(candidates: SpanCandidates, *, multi_span: bool) -> list[float]:
    """The thresholds at which this example's prediction changes (ascending, distinct)."""
    taken: list[tuple[int, int]] = []
    thresholds: list[float] = []
    for start, end, score in zip(
        candidates.starts.tolist(), candidates.ends.tolist(), candidates.scores.tolist()
    ):
        if all(end <= t_start or start >= t_end for t_start, t_end in taken):
            taken.append((start, end))
            thresholds.append(candidates.null_score - score)
        if not multi_span:
            break
    return sorted(set(thresholds))


def best_null_threshold(
    examples: Sequence[Example],
    candidates: Sequence[SpanCandidates],
    *,
    multi_span: bool,
    snap_to_sentence: bool,
    sentences: Mapping[str, Sequence[tuple[int, int]]],
    metric: str,
) -> float:
    """The null_threshold that maximises `metric` (a lib.evaluation.metrics key) over these
    examples, from their merged span_candidates (same order as `examples`)."""
    changes = []  # per example: (threshold, prediction from that threshold on)
    for ex, cand in zip(examples, candidates):
        post_sentences = sentences[ex.post_id]
        changes.append(
            [
                (
                    threshold,
                    select_spans(
                        cand,
                        null_threshold=threshold,
                        multi_span=multi_span,
                        snap_to_sentence=snap_to_sentence,
                        sentences=post_sentences,
                    ),
                )
                for threshold in _answer_thresholds(cand, multi_span=multi_span)
            ]
        )
    return best_threshold(examples, changes, sentences, metric=metric)


class _NoEvidence:
    """A prediction with no spans, for scoring the everything-null state."""

    spans = ()


def best_threshold(
    examples: Sequence[Example],
    changes: Sequence[Sequence[tuple[float, object]]],
    sentences: Mapping[str, Sequence[tuple[int, int]]],
    *,
    metric: str,
) -> float:
    """The threshold t that maximises `metric` when example i predicts nothing below its first
    change and, from each (t_j, prediction_j) of `changes[i]` (ascending t_j) on, prediction_j.

    One pass over the sorted changes: each replaces one example's score row and the metric is
    re-aggregated. Ties go to the smallest threshold; if predicting nothing everywhere is best,
    the smallest change - 1 is returned (0.0 when there are no changes at all).
    """
    aggregate = MetricAggregator(examples)
    empty = _NoEvidence()
    rows = np.stack([score_example(ex, empty, sentences[ex.post_id]) for ex in examples])
    events = sorted(
        (
            (threshold, index, prediction)
            for index, example_changes in enumerate(changes)
            for threshold, prediction in example_changes
        ),
        key=lambda event: (event[0], event[1]),
    )
    if not events:
        return 0.0
    best_value, best = aggregate(rows)[metric], events[0][0] - 1.0
    for i, (threshold, index, prediction) in enumerate(events):
        rows[index] = score_example(examples[index], prediction, sentences[examples[index].post_id])
        if i + 1 < len(events) and events[i + 1][0] == threshold:
            continue  # apply every change at this threshold before scoring it
        value = aggregate(rows)[metric]
        if value > best_value:
            best_value, best = value, threshold
    return best
