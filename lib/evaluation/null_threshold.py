"""Choosing decode.null_threshold on validation data (DESIGN §4).

The SQuAD v2 recipe (the official evaluation script's `find_best_thresh`): predict "no evidence"
when null - best > threshold and take the threshold that maximises the metric. It is exact here:
an example's prediction changes only at the thresholds null - score of the spans it would take
(lib/decoding.select_spans), so those are the only candidates, and lib.evaluation.metrics.best_threshold
sweeps them all in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lib.data.corpus import Example
from lib.data.features import Features
from lib.evaluation.decoding import Logits, SpanCandidates, select_spans, span_candidates
from lib.evaluation.metrics import best_threshold


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


def choose_null_threshold(
    examples: Sequence[Example],
    features: Features,
    start_logits: Logits,
    end_logits: Logits,
    *,
    n_best: int,
    max_answer_length: int,
    multi_span: bool,
    snap_to_sentence: bool,
    sentences: Mapping[str, Sequence[tuple[int, int]]],
    metric: str,
) -> float:
    """The null_threshold that maximises `metric` (a lib.evaluation.metrics key) on these examples.

    Exact: an example's prediction only changes at the thresholds null - score of the spans it
    would take (one single-span; one per greedily taken span multi-span), so those are the only
    candidates, and lib.evaluation.metrics.best_threshold sweeps them in one pass. Ties go to the smallest
    threshold (as the official SQuAD v2 `find_best_thresh`); "answer nothing" comes back as the
    smallest candidate - 1.
    """
    candidates = span_candidates(
        examples,
        features,
        start_logits,
        end_logits,
        n_best=n_best,
        max_answer_length=max_answer_length,
    )
    return best_null_threshold(
        examples,
        candidates,
        multi_span=multi_span,
        snap_to_sentence=snap_to_sentence,
        sentences=sentences,
        metric=metric,
    )


def best_null_threshold(
    examples: Sequence[Example],
    candidates: Sequence[SpanCandidates],
    *,
    multi_span: bool,
    snap_to_sentence: bool,
    sentences: Mapping[str, Sequence[tuple[int, int]]],
    metric: str,
) -> float:
    """choose_null_threshold from already merged span_candidates (same order as `examples`)."""
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
