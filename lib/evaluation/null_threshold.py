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


def threshold_changes(
    examples: Sequence[Example],
    candidates: Sequence[SpanCandidates],
    *,
    multi_span: bool,
    snap_to_sentence: bool,
    sentences: Mapping[str, Sequence[tuple[int, int]]],
) -> list[list[tuple[float, object]]]:
    """Per example: (threshold, the prediction from that threshold on), ascending."""
    return [
        [
            (
                threshold,
                select_spans(
                    cand,
                    null_threshold=threshold,
                    multi_span=multi_span,
                    snap_to_sentence=snap_to_sentence,
                    sentences=sentences[ex.post_id],
                ),
            )
            for threshold in _answer_thresholds(cand, multi_span=multi_span)
        ]
        for ex, cand in zip(examples, candidates)
    ]


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
    changes = threshold_changes(
        examples,
        candidates,
        multi_span=multi_span,
        snap_to_sentence=snap_to_sentence,
        sentences=sentences,
    )
    return best_threshold(examples, changes, sentences, metric=metric)


class _NoEvidence:
    """A prediction with no spans, for scoring the everything-null state."""

    spans = ()


def threshold_curve(
    examples: Sequence[Example],
    changes: Sequence[Sequence[tuple[float, object]]],
    sentences: Mapping[str, Sequence[tuple[int, int]]],
    *,
    metric: str,
) -> list[tuple[float, float]]:
    """(threshold, metric) at every threshold where a prediction changes, ascending, when
    example i predicts nothing below its first change and, from each (t_j, prediction_j) of
    `changes[i]` (ascending t_j) on, prediction_j. The first point is the everything-null state,
    at the smallest change - 1; no changes at all give [].

    One pass over the sorted changes: each replaces one example's score row and the metric is
    re-aggregated.
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
        return []
    curve = [(events[0][0] - 1.0, aggregate(rows)[metric])]
    for i, (threshold, index, prediction) in enumerate(events):
        rows[index] = score_example(examples[index], prediction, sentences[examples[index].post_id])
        if i + 1 < len(events) and events[i + 1][0] == threshold:
            continue  # apply every change at this threshold before scoring it
        curve.append((threshold, aggregate(rows)[metric]))
    return curve


def best_threshold(
    examples: Sequence[Example],
    changes: Sequence[Sequence[tuple[float, object]]],
    sentences: Mapping[str, Sequence[tuple[int, int]]],
    *,
    metric: str,
) -> float:
    """The threshold of `threshold_curve` with the highest metric; ties go to the smallest
    threshold; if predicting nothing everywhere is best, the smallest change - 1 is returned
    (0.0 when there are no changes at all)."""
    curve = threshold_curve(examples, changes, sentences, metric=metric)
    if not curve:
        return 0.0
    best, best_value = curve[0]
    for threshold, value in curve[1:]:
        if value > best_value:
            best, best_value = threshold, value
    return best
