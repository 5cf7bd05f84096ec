"""From start/end logits of feature windows to evidence spans per example (DESIGN §4).

Follows Hugging Face's `utils_qa.postprocess_qa_predictions` (SQuAD v2 variant): a span (s, e)
scores start_logit[s] + end_logit[e] (float32); it must satisfy s <= e, e - s < max_answer_length
and lie in the post; the null score is the [CLS] start + end logit, taken as the minimum over an
example's windows; "no evidence" is predicted when null - best > null_threshold. Unlike the
reference's top-n starts x top-n ends (which can miss the best valid span), the n-best search is
exact, ties included, and vectorised over all windows in numpy on the CPU (lib/evaluation/span_search.py).

Timings against the reference loop: bench/decode.py. Windows are merged per example by character
span (max score), mapped to characters through the token offsets of lib/data/features.py, optionally
extended to several non-overlapping spans and snapped to whole sentences. lib/evaluation/null_threshold.py
picks the null threshold on validation data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lib.data.corpus import Example
from lib.data.features import Features
from lib.evaluation.span_search import best_spans

SENTENCE_BLOCK = 512  # sentences scored at once by `sentence_scores` (memory: candidates x this)


@dataclass(frozen=True)
class ScoredSpan:
    start: int  # character offsets into the post, end exclusive
    end: int
    text: str
    score: float  # start + end logit (max over windows and over merged spans)


@dataclass(frozen=True)
class Prediction:
    """Evidence for one example: spans by decreasing score (empty = "no evidence")."""

    spans: tuple[ScoredSpan, ...]
    null_score: float  # min over windows of the [CLS] start + end logit
    best_score: float  # best span score before thresholding (-inf when there is no span)


@dataclass(frozen=True)
class SpanCandidates:
    """All distinct character spans the windows of one example proposed, best first."""

    example_id: str
    context: str
    null_score: float
    starts: np.ndarray  # (C,) character offsets
    ends: np.ndarray  # (C,) exclusive
    scores: np.ndarray  # (C,) float64, non-increasing


def window_spans(
    features: Features,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    *,
    n_best: int,
    max_answer_length: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """best_spans over every window; row i of the (W, T) logits is window i (positions past a
    window may hold anything, e.g. -inf padding). Returns numpy (scores, starts, ends)
    (W, n_best) and null scores (W,)."""
    assert len(start_logits) == len(end_logits) == len(features), "one logit row per window"
    found = best_spans(
        start_logits,
        end_logits,
        features.context_start,
        features.context_end,
        n_best=n_best,
        max_answer_length=max_answer_length,
    )
    return tuple(t.numpy() for t in found)


def _descending(values: np.ndarray) -> np.ndarray:
    """Non-negative int64 keys that sort float32 `values` from the largest down."""
    bits = (-values.astype(np.float32)).view(np.int32).astype(np.int64)
    return (bits ^ ((bits >> 31) & 0x7FFFFFFF)) + 2**31  # the IEEE order trick


def _tuple_order(*columns: np.ndarray, stable: bool = True) -> np.ndarray:
    """The order of rows by the tuple of non-negative integer columns: one int64 key of packed
    bits when they fit (np.argsort is 3-10x faster than np.lexsort), else np.lexsort."""
    widths = [int(column.max(initial=0)).bit_length() for column in columns]
    if sum(widths) > 63:
        return np.lexsort(columns[::-1])
    key = np.zeros(len(columns[0]), np.int64)
    for column, width in zip(columns, widths):
        key = (key << width) | column
    return np.argsort(key, kind="stable" if stable else None)


def span_candidates(
    examples: Sequence[Example],
    features: Features,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    *,
    n_best: int,
    max_answer_length: int,
) -> list[SpanCandidates]:
    """Per example (same order): the n_best spans of each of its windows, mapped to characters
    and merged by character span (max score; empty character spans dropped), best first."""
    scores, starts, ends, nulls = window_spans(
        features, start_logits, end_logits, n_best=n_best, max_answer_length=max_answer_length
    )
    found = np.isfinite(scores)  # (W, n_best)
    window = np.nonzero(found)[0]
    # post token i of window w is row offset_base[w] + i - context_start[w] of token_offsets
    base = features.offset_base[window] - features.context_start[window]
    char_start = features.token_offsets[base + starts[found], 0].astype(np.int64)
    char_end = features.token_offsets[base + ends[found], 1].astype(np.int64)
    keep = char_end > char_start
    example = features.example_index[window][keep]
    char_start, char_end, score = char_start[keep], char_end[keep], scores[found][keep]
    # one entry per (example, character span), with its best score
    order = _tuple_order(example, char_start, char_end, stable=False)
    example, char_start, char_end, score = (
        a[order] for a in (example, char_start, char_end, score)
    )
    first = np.flatnonzero(
        np.diff(char_start, prepend=-1)
        | np.diff(char_end, prepend=-1)
        | np.diff(example, prepend=-1)
    )
    score = np.maximum.reduceat(score, first) if len(first) else score
    example, char_start, char_end = example[first], char_start[first], char_end[first]
    # per example best first; equal scores stay in (start, end) order
    order = _tuple_order(example, _descending(score))
    example, char_start, char_end = example[order], char_start[order], char_end[order]
    score = score[order].astype(np.float64)
    bounds = np.searchsorted(example, np.arange(len(examples) + 1))
    null = np.minimum.reduceat(nulls.astype(np.float64), features.example_windows[:-1])
    return [
        SpanCandidates(
            example_id=ex.example_id,
            context=ex.context,
            null_score=float(null[i]),
            starts=char_start[bounds[i] : bounds[i + 1]],
            ends=char_end[bounds[i] : bounds[i + 1]],
            scores=score[bounds[i] : bounds[i + 1]],
        )
        for i, ex in enumerate(examples)
    ]


def snap_span(start: int, end: int, sentences: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Widen [start, end) to cover every sentence it overlaps (unchanged if it overlaps none)."""
    for s_start, s_end in sentences:
        if s_start < end and s_end > start:
            start, end = min(start, s_start), max(end, s_end)
    return start, end


def merge_overlapping(spans: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Union of overlapping (start, end, score) spans (score = max), by decreasing score."""
    merged: list[list] = []
    for start, end, score in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = max(merged[-1][2], score)
        else:
            merged.append([start, end, score])
    return sorted((tuple(m) for m in merged), key=lambda m: (-m[2], m[0], m[1]))


def select_spans(
    candidates: SpanCandidates,
    *,
    null_threshold: float,
    multi_span: bool,
    snap_to_sentence: bool,
    sentences: Sequence[tuple[int, int]] | None = None,
) -> Prediction:
    """Apply the null test and the span options to one example's candidates.

    A span passes when null - score <= null_threshold. Single-span: the best span if it passes.
    multi_span: greedily by score, every passing span that overlaps no span already taken.
    snap_to_sentence: each span widened to its sentence(s) (`sentences` = the post's sentence
    spans), then overlapping spans merged.
    """
    null = candidates.null_score
    best = float(candidates.scores[0]) if len(candidates.scores) else float("-inf")
    chosen: list[tuple[int, int, float]] = []
    for start, end, score in zip(
        candidates.starts.tolist(), candidates.ends.tolist(), candidates.scores.tolist()
    ):
        if null - score > null_threshold:
            break  # scores are sorted: nothing after this passes either
        if all(end <= c_start or start >= c_end for c_start, c_end, _ in chosen):
            chosen.append((start, end, score))
        if not multi_span:
            break
    if snap_to_sentence:
        assert sentences is not None, "snap_to_sentence needs the post's sentences"
        chosen = merge_overlapping([(*snap_span(s, e, sentences), score) for s, e, score in chosen])
    text = candidates.context
    spans = tuple(ScoredSpan(s, e, text[s:e], score) for s, e, score in chosen)
    return Prediction(spans=spans, null_score=null, best_score=best)


def sentence_scores(
    candidates: SpanCandidates, sentences: Sequence[tuple[int, int]], *, snap_to_sentence: bool
) -> list[float | None]:
    """Per sentence of the post, its evidence score: the best score among the example's candidate
    spans (all windows' n-best, merged) that would make it evidence, minus the null score;
    None when no candidate would (such a sentence is never ranked).

    "Would make it evidence" is the decoder's own rule for one span: it covers at least half of
    the sentence, or, with snap_to_sentence, overlaps it (snapping widens it over the sentence).
    So at null threshold t a predicted span making sentence i evidence passed the null test
    (null - score <= t): every sentence a predicted span makes evidence has a score >= -t
    (without snap_to_sentence, a sentence can also become evidence through two predicted pieces
    that each cover less than half of it; the score does not see such unions). Conversely a
    sentence whose score is >= -t is evidence unless its best span lost, in multi-span decoding,
    to a better span it overlaps, or, in single-span decoding, was not the best span.
    """
    if not len(sentences):
        return []
    bounds = np.asarray(sentences, dtype=np.int64)  # (S, 2)
    c_start, c_end = candidates.starts[:, None], candidates.ends[:, None]
    scores = np.empty(len(bounds))
    # Sentences in blocks: the (C, S) arrays of a huge post (a 1 MB text: ~20k candidates x ~12k
    # sentences) would take gigabytes at once.
    for at in range(0, len(bounds), SENTENCE_BLOCK):
        block = bounds[at : at + SENTENCE_BLOCK]
        s_start, s_end = block[:, 0][None, :], block[:, 1][None, :]
        overlap = np.clip(
            np.minimum(c_end, s_end) - np.maximum(c_start, s_start), 0, None
        )  # (C, s)
        makes_evidence = overlap > 0 if snap_to_sentence else 2 * overlap >= (s_end - s_start)
        makes_evidence &= s_end > s_start
        scores[at : at + len(block)] = np.where(
            makes_evidence, candidates.scores[:, None], -np.inf
        ).max(axis=0, initial=-np.inf)
    return [
        float(score - candidates.null_score) if np.isfinite(score) else None for score in scores
    ]


def select_predictions(
    examples: Sequence[Example],
    candidates: Sequence[SpanCandidates],
    *,
    null_threshold: float,
    multi_span: bool,
    snap_to_sentence: bool,
    sentences: Mapping[str, Sequence[tuple[int, int]]] | None = None,
) -> dict[str, Prediction]:
    """example_id -> Prediction from merged span_candidates (computed once, for both the
    null-threshold sweep and the final predictions). `sentences` maps post_id -> sentence
    spans; needed only with snap_to_sentence."""
    return {
        ex.example_id: select_spans(
            cand,
            null_threshold=null_threshold,
            multi_span=multi_span,
            snap_to_sentence=snap_to_sentence,
            sentences=sentences[ex.post_id] if snap_to_sentence else None,
        )
        for ex, cand in zip(examples, candidates)
    }
