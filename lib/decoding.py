"""From start/end logits of feature windows to evidence spans per example (DESIGN §4).

Follows Hugging Face's `utils_qa.postprocess_qa_predictions` (SQuAD v2 variant): a span (s, e)
scores start_logit[s] + end_logit[e] (float32); it must satisfy s <= e, e - s < max_answer_length
and lie in the post; the null score is the [CLS] start + end logit, taken as the minimum over an
example's windows; "no evidence" is predicted when null - best > null_threshold. Unlike the
reference's top-n starts x top-n ends (which can miss the best valid span), the n-best search is
exact, and vectorised over all windows in numpy on the CPU:

1. best_from[s] = start[s] + the max end logit in the band [s, s + L): the best span from s;
   best_to[e] likewise. Window maxima by doubling, on one flat array whose rows are kept apart by
   L - 1 columns of -inf: contiguous numpy ops into reused buffers (2-D slices and fresh arrays
   cost 3-4x more).
2. Take the starts U_s with best_from >= t_s and the ends U_e with best_to >= t_e, each at least
   n_best of them, and t = max(t_s, t_e), say t_s. A span outside U_s x U_e scores < t, and the
   grid holds n_best spans scoring >= t: each s in U_s with its best end, which is in U_e since
   best_to >= best_from[s] >= t_s >= t_e. So the n_best best pairs of the grid are the n_best
   best spans, ties included.
3. Top-k by sorting packed keys: the float32 bits with their low bits replaced by the position,
   so one np.sort (AVX-512 in numpy >= 2, ~2x faster than argpartition) yields values and
   positions at once. It is exact when the packed precision separates the k-th key from the next,
   checked per row; rows where it does not (ties, e.g. bf16 logits) are searched again with more
   candidates per side, then with all of them.

Timings against the reference loop: bench/decode.py. Windows are merged per example by character
span (max score), mapped to characters through the token offsets of lib/features.py, optionally
extended to several non-overlapping spans and snapped to whole sentences. lib/null_threshold.py
picks the null threshold on validation data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lib.corpus import Example
from lib.features import Features

NEG_INF = np.float32(-np.inf)
FLOOR = np.finfo(np.float32).min  # -inf with position bits would be NaN: packed keys use this
# Off-post logits become MASKED and grid pairs of invalid length get PENALTY added: both stay
# finite (so keys need no -inf clamp) and sink below NO_SPAN, far under any real logit sum.
MASKED, NO_SPAN, PENALTY = np.float32(-(2.0**125)), np.float32(-(2.0**124)), np.float32(-(2.0**127))
ROWS_PER_CHUNK = 256  # windows per search step: its buffers stay in a 2 MB L2 cache
SORT_ROWS = True
EXTRA_CANDIDATES = 8  # the second try of a row whose n_best-th candidate ties with the next
Logits = torch.Tensor | Sequence[torch.Tensor]


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


def _shift_max(table: np.ndarray, shift: int, leftward: bool, out: np.ndarray) -> None:
    """out[i] = max(table[i], table[i + shift]) (leftward: i - shift); table[i] off the end."""
    n = len(table)
    if shift >= n:
        np.copyto(out, table)
    elif leftward:
        np.maximum(table[shift:], table[: n - shift], out=out[shift:])
        out[:shift] = table[:shift]
    else:
        np.maximum(table[: n - shift], table[shift:], out=out[: n - shift])
        out[n - shift :] = table[n - shift :]


def window_max(
    values: np.ndarray,
    band: int,
    *,
    leftward: bool = False,
    out: np.ndarray | None = None,
    spare: np.ndarray | None = None,
) -> np.ndarray:
    """1-D: out[i] = max(values[i : i + band]) (leftward: values[i - band + 1 : i + 1]), clipped
    to the array; rows laid end to end stay apart when band - 1 -inf values separate them.

    Doubling: after each step table[i] is the max of the run of `power` values from i, and a band
    in [power, 2 power) is the union of two such runs. `out` and `spare` are scratch buffers.
    """
    out = np.empty_like(values) if out is None else out
    spare = np.empty_like(values) if spare is None else spare
    table, power = values, 1
    while power < band:
        target = spare if table is out else out
        _shift_max(table, min(power, band - power), leftward, target)
        table, power = target, 2 * power
    if table is not out:
        np.copyto(out, table)
    return out


def packed_top(values: np.ndarray, *, need: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the `count` largest values in each row of (R, W) finite float32 `values`,
    best first, and per row whether they are exact: they include every value >= the need-th
    largest, and the values left out are smaller or no span (< NO_SPAN). Overwrites `values`.

    Keys keep the float32 bits above the low ceil(log2 W) ones, which hold the position, so they
    order by value to ~2^-14 relative precision (then by position).
    """
    rows, width = values.shape
    if count >= width:
        return np.tile(np.arange(width, dtype=np.int32), (rows, 1)), np.ones(rows, bool)
    low = np.int32((1 << (width - 1).bit_length()) - 1)
    bits = values.view(np.int32)
    bits &= ~low
    bits |= np.arange(width, dtype=np.int32)
    values.sort(axis=1)
    top = bits[:, width - count :][:, ::-1] & low  # (R, count), best first
    cut = (bits[:, width - need] & ~low).view(np.float32)  # the need-th largest, truncated
    below = (bits[:, width - count - 1] & ~low).view(np.float32)  # the largest one left out
    return top, (cut > below) | (below < NO_SPAN)


def _exact_top(values: np.ndarray, count: int) -> np.ndarray:
    """Positions of the `count` largest values in each row of (R, W) float32, best first, exactly:
    a float32 widened to float64 has 29 zero low bits, which take the position."""
    width = values.shape[1]
    keys = np.maximum(values, FLOOR).astype(np.float64)
    bits = keys.view(np.int64)
    bits |= np.arange(width)
    keys.sort(axis=1)
    return (bits[:, width - count :][:, ::-1] & ((1 << (width - 1).bit_length()) - 1)).astype(
        np.int32
    )


class _Buffers:
    """Flat scratch arrays for search steps of up to `rows` windows of up to `width` columns,
    reused from step to step (fresh arrays this large cost page faults), viewed at each shape."""

    def __init__(self, rows: int, width: int, band: int, count: int) -> None:
        padded, grid = rows * (width + band - 1), rows * count * count
        sizes = dict(best_from=rows * width, best_to=rows * width, pair=grid, penalty=grid)
        sizes.update(start=padded, end=padded, window=padded, spare=padded)
        self.flat = {name: np.empty(size, np.float32) for name, size in sizes.items()}
        self.flat["length"] = np.empty(grid, np.int32)
        self.runs = np.tile(np.array([True, False, True]), rows)  # outside, post, outside

    def __call__(self, name: str, *shape: int) -> np.ndarray:
        return self.flat[name][: int(np.prod(shape))].reshape(shape)

    def outside(self, context_start: np.ndarray, context_end: np.ndarray, padded: int):
        """(R * padded,) bool: True off each row's post [start, end) (run lengths, ~3x cheaper
        than comparing every column)."""
        lengths = np.stack((context_start, context_end - context_start, padded - context_end), 1)
        return np.repeat(self.runs[: lengths.size], lengths.ravel())


def _grid_top(start, end, cand_start, cand_end, *, n_best, max_answer_length, buffers):
    """The n_best best valid spans among candidate starts x ends (R, c) of the padded (R, P)
    logits: (scores, starts, ends) (R, min(n_best, c^2)), best first; -inf where none is left."""
    rows, padded = start.shape
    c = cand_start.shape[1]
    row = np.arange(rows)[:, None]  # (R, 1)
    start_value = start.ravel()[row * padded + cand_start]  # (R, c)
    end_value = end.ravel()[row * padded + cand_end]
    pair, penalty = buffers("pair", rows, c, c), buffers("penalty", rows, c, c)
    length = buffers("length", rows, c, c)
    np.add(start_value[:, :, None], end_value[:, None, :], out=pair)
    np.subtract(cand_end[:, None, :], cand_start[:, :, None], out=length)
    # e - s outside [0, L) is >= L as unsigned; a penalty is ~8x faster than a masked write
    np.greater_equal(length.view(np.uint32), np.uint32(max_answer_length), out=penalty)
    penalty *= PENALTY
    pair += penalty
    n_out = min(n_best, c * c)
    chosen, exact = packed_top(pair.reshape(rows, c * c), need=n_out, count=n_out)
    if not exact.all():  # the packed keys did not separate the n-th pair from the next
        redo = np.flatnonzero(~exact)
        values = (start_value[redo, :, None] + end_value[redo, None, :]).reshape(len(redo), -1)
        values[length[redo].reshape(len(redo), -1).view(np.uint32) >= max_answer_length] = NEG_INF
        chosen[redo] = _exact_top(values, n_out)
    first = chosen // c  # np.divmod has no fast path for a scalar divisor
    first, second = first + row * c, chosen - first * c + row * c  # into the flat (R, c) arrays
    starts, ends = cand_start.ravel()[first], cand_end.ravel()[second]
    scores = start_value.ravel()[first] + end_value.ravel()[second]
    invalid = (ends - starts).view(np.uint32) >= max_answer_length
    np.putmask(scores, invalid | (scores < NO_SPAN), NEG_INF)
    unsorted = np.flatnonzero((scores[:, 1:] > scores[:, :-1]).any(1))  # packed order: ~2^-14
    if len(unsorted):
        order = _exact_top(scores[unsorted], n_out)
        for array in (scores, starts, ends):
            array[unsorted] = np.take_along_axis(array[unsorted], order, 1)
    return scores, starts, ends


def _search(start, end, context_start, context_end, *, n_best, max_answer_length, count, buffers):
    """n-best spans of (R, W) windows, `count` candidates per side: (scores, starts, ends) and
    per row whether the candidates were exact (see packed_top)."""
    rows, width = start.shape
    band = min(max_answer_length, width)
    padded = width + band - 1
    outside = buffers.outside(context_start, context_end, padded)
    masked_start, masked_end = buffers("start", rows, padded), buffers("end", rows, padded)
    for masked, logits in ((masked_start, start), (masked_end, end)):
        np.maximum(logits, MASKED, out=masked[:, :width])  # -inf logits would make NaN keys
        np.copyto(masked.ravel(), MASKED, where=outside)  # also keeps the rows' windows apart
    scratch = dict(out=buffers("window", rows * padded), spare=buffers("spare", rows * padded))
    best_end = window_max(masked_end.ravel(), band, **scratch).reshape(rows, padded)
    best_from = np.add(
        best_end[:, :width], masked_start[:, :width], out=buffers("best_from", rows, width)
    )
    best_start = window_max(masked_start.ravel(), band, leftward=True, **scratch)
    best_start = best_start.reshape(rows, padded)
    best_to = np.add(
        best_start[:, :width], masked_end[:, :width], out=buffers("best_to", rows, width)
    )
    need = min(n_best, width)
    cand_start, exact_start = packed_top(best_from, need=need, count=min(count, width))
    cand_end, exact_end = packed_top(best_to, need=need, count=min(count, width))
    found = _grid_top(
        masked_start,
        masked_end,
        cand_start,
        cand_end,
        n_best=n_best,
        max_answer_length=max_answer_length,
        buffers=buffers,
    )
    return *found, exact_start & exact_end


def _as_array(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(logits, torch.Tensor):
        return logits.detach().to("cpu", torch.float32).numpy()
    return np.asarray(logits, dtype=np.float32)


def best_spans(
    start_logits: torch.Tensor | np.ndarray,
    end_logits: torch.Tensor | np.ndarray,
    context_start: torch.Tensor | np.ndarray,
    context_end: torch.Tensor | np.ndarray,
    *,
    n_best: int,
    max_answer_length: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The n_best highest-scoring valid spans of each window (row) of (N, T) logits, exactly.

    Valid: context_start[i] <= s <= e < context_end[i] and e - s < max_answer_length; positions
    past a row's real length are excluded by the same rule (T may exceed every window).
    Returns CPU tensors (scores (N, n_best) float32, starts, ends (N, n_best) long, null_scores
    (N,)), best first; slots beyond a window's number of valid spans hold -inf and s = e = -1.
    Spans of equal score come in no promised order.
    """
    start, end = _as_array(start_logits), _as_array(end_logits)
    n_rows, width = start.shape
    scores = np.full((n_rows, n_best), NEG_INF, np.float32)
    starts, ends = np.full((2, n_rows, n_best), -1, np.int64)
    null_scores = start[:, 0] + end[:, 0] if width else np.full(n_rows, NEG_INF, np.float32)
    first = np.clip(np.asarray(context_start, np.int64), 0, width)  # (N,)
    stop = np.clip(np.asarray(context_end, np.int64), first, width)
    # windows of similar context go together, so that each step cuts away the columns none of
    # its posts reach; `rows` are those still to be searched (an empty post has no span)
    rows = np.lexsort((first, stop)) if SORT_ROWS else np.arange(n_rows)
    rows = rows[stop[rows] > first[rows]]
    for count in (n_best, n_best + EXTRA_CANDIDATES, width):
        if not len(rows):
            break
        count = min(count, width)
        step = max(1, min(ROWS_PER_CHUNK, 2**22 // count**2))  # the (rows, c, c) grid <= 16 MB
        buffers = _Buffers(min(step, len(rows)), width, min(max_answer_length, width), count)
        unsure = []
        for begin in range(0, len(rows), step):
            chunk = rows[begin : begin + step]
            low, high = first[chunk].min(), stop[chunk].max()
            run = chunk[-1] - chunk[0] + 1 == len(chunk) and bool(np.all(np.diff(chunk) > 0))
            part = slice(chunk[0], chunk[-1] + 1) if run else chunk  # a view, not a copy
            *found, exact = _search(
                start[part, low:high],
                end[part, low:high],
                first[chunk] - low,
                stop[chunk] - low,
                n_best=n_best,
                max_answer_length=max_answer_length,
                count=count,
                buffers=buffers,
            )
            done, m = chunk[exact], found[0].shape[1]
            scores[done, :m] = found[0][exact]
            starts[done, :m] = found[1][exact] + low
            ends[done, :m] = found[2][exact] + low
            unsure.append(chunk[~exact])
        rows = np.concatenate(unsure)
    missing = np.isneginf(scores)
    np.putmask(starts, missing, -1)
    np.putmask(ends, missing, -1)
    return tuple(torch.from_numpy(a) for a in (scores, starts, ends, null_scores))


def pad_logits(chunks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack (n_i, T_i) chunks into one (sum n_i, max T_i) float32 tensor padded with -inf."""
    width = max(chunk.shape[1] for chunk in chunks)
    return torch.cat(
        [
            torch.nn.functional.pad(chunk.float(), (0, width - chunk.shape[1]), value=-torch.inf)
            for chunk in chunks
        ]
    )


def _row_chunks(logits: Logits) -> list[torch.Tensor]:
    return [logits] if isinstance(logits, torch.Tensor) else list(logits)


def window_spans(
    features: Features,
    start_logits: Logits,
    end_logits: Logits,
    *,
    n_best: int,
    max_answer_length: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """best_spans over every window; row i of the logits (or of their concatenated chunks) is
    window i. Returns numpy (scores, starts, ends) (W, n_best) and null scores (W,)."""
    outputs, row = [], 0
    for start, end in zip(_row_chunks(start_logits), _row_chunks(end_logits), strict=True):
        rows = slice(row, row + len(start))
        found = best_spans(
            start,
            end,
            features.context_start[rows],
            features.context_end[rows],
            n_best=n_best,
            max_answer_length=max_answer_length,
        )
        outputs.append([t.numpy() for t in found])
        row += len(start)
    assert row == len(features), f"{row} logit rows for {len(features)} windows"
    return tuple(np.concatenate(parts) for parts in zip(*outputs))


def _descending(values: np.ndarray) -> np.ndarray:
    """Non-negative int64 keys that sort float32 `values` from the largest down."""
    bits = (-values.astype(np.float32)).view(np.int32).astype(np.int64)
    return (bits ^ ((bits >> 31) & 0x7FFFFFFF)) + 2**31  # the IEEE order trick


def _tuple_order(*columns: np.ndarray) -> np.ndarray:
    """The stable order of rows by the tuple of non-negative integer columns: one int64 key of
    packed bits when they fit (np.argsort is ~10x faster than np.lexsort), else np.lexsort."""
    widths = [int(column.max(initial=0)).bit_length() for column in columns]
    if sum(widths) > 63:
        return np.lexsort(columns[::-1])
    key = np.zeros(len(columns[0]), np.int64)
    for column, width in zip(columns, widths):
        key = (key << width) | column
    return np.argsort(key, kind="stable")


def span_candidates(
    examples: Sequence[Example],
    features: Features,
    start_logits: Logits,
    end_logits: Logits,
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
    order = _tuple_order(example, char_start, char_end)
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
    best = float(candidates.scores[0]) if len(candidates.scores) else NEG_INF
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


def decode_predictions(
    examples: Sequence[Example],
    features: Features,
    start_logits: Logits,
    end_logits: Logits,
    *,
    n_best: int,
    max_answer_length: int,
    null_threshold: float,
    multi_span: bool,
    snap_to_sentence: bool,
    sentences: Mapping[str, Sequence[tuple[int, int]]] | None = None,
) -> dict[str, Prediction]:
    """example_id -> Prediction. Logits: (W, T) tensors, row i = window i (positions past a
    window may hold anything, e.g. -inf padding), or lists of (n_i, T_i) chunks in window order.
    `sentences` maps post_id -> sentence spans; needed only with snap_to_sentence."""
    candidates = span_candidates(
        examples,
        features,
        start_logits,
        end_logits,
        n_best=n_best,
        max_answer_length=max_answer_length,
    )
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


def __getattr__(name: str):
    """choose_null_threshold moved to lib/null_threshold.py (which imports this module)."""
    if name == "choose_null_threshold":
        from lib.null_threshold import choose_null_threshold

        return choose_null_threshold
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
