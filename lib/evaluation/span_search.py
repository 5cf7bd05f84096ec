"""The exact n-best span search over many feature windows at once (DESIGN §4), in numpy.

A span (s, e) of a window scores start_logit[s] + end_logit[e] (float32); it must satisfy
s <= e, e - s < max_answer_length and lie in the post. Hugging Face's utils_qa pairs the top-n
starts with the top-n ends, which can miss the best valid span; this search is exact:

1. best_from[s] = start[s] + the max end logit in the band [s, s + L): the best span from s;
   best_to[e] likewise. Window maxima by doubling on one flat array whose rows are kept apart by
   L - 1 masked columns: contiguous ops into reused buffers (2-D slices and fresh arrays cost
   2-4x more).
2. Take the starts U_s with best_from >= t_s and the ends U_e with best_to >= t_e, at least
   n_best of each, and t = max(t_s, t_e), say t_s. A span outside U_s x U_e scores < t, and the
   grid holds n_best spans scoring >= t: each s in U_s with its best end, which is in U_e since
   best_to >= best_from[s] >= t_s >= t_e. So the n_best best pairs of the grid are exact.
3. Top-k by sorting packed keys: float32 bits whose low bits are replaced by the position, so
   one np.sort (AVX-512 in numpy >= 2; ~2x faster than argpartition) yields values and positions.
   That is exact when the packed precision separates the k-th key from the next (checked per
   row); rows where it does not (ties, e.g. bf16 logits) are searched again with more candidates,
   then with all of them.
Windows go through in steps of similar contexts, each cut to the columns its posts span.
"""

from __future__ import annotations

import math

import numpy as np
import torch

NEG_INF = np.float32(-np.inf)
# Off-post logits become MASKED and grid pairs of invalid length get PENALTY added: both stay
# finite (-inf with position bits would be NaN) and sink below NO_SPAN, far under any real sum
# of two logits.
MASKED, NO_SPAN, PENALTY = np.float32(-(2.0**125)), np.float32(-(2.0**124)), np.float32(-(2.0**127))
ROWS_PER_CHUNK = 256  # windows per search step (128-512 measure alike: Python calls vs cache)
EXTRA_CANDIDATES = 8  # the second try of a row whose n_best-th candidate ties with the next


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


def window_max(values, band, *, leftward=False, out=None, spare=None) -> np.ndarray:
    """1-D: out[i] = max(values[i : i + band]) (leftward: values[i - band + 1 : i + 1]), clipped
    to the array; rows laid end to end stay apart when band - 1 low values separate them.

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
    order by value to ~2^-14 relative precision, then by position.
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


class _Buffers:
    """Flat scratch arrays for search steps of up to `rows` windows of up to `width` columns,
    reused from step to step (fresh arrays this large cost page faults), viewed at each shape."""

    def __init__(self, rows: int, width: int, band: int, count: int) -> None:
        padded, grid = rows * (width + band - 1), rows * count * count
        sizes = dict(best_from=rows * width, best_to=rows * width, pair=grid, penalty=grid)
        sizes.update(start=padded, end=padded, window=padded, spare=padded)
        self.flat = {name: np.empty(size, np.float32) for name, size in sizes.items()}
        self.flat["length"] = np.empty(grid, np.int32)
        self.runs = np.tile(np.array([True, False, True]), rows)  # off the post, post, off

    def __call__(self, name: str, *shape: int) -> np.ndarray:
        return self.flat[name][: math.prod(shape)].reshape(shape)  # (*shape) view

    def off_post(self, context_start, context_end, padded: int) -> np.ndarray:
        """(R * padded,) bool, True off each row's post: from run lengths, ~3x cheaper than
        comparing every column with the row's bounds."""
        lengths = np.stack((context_start, context_end - context_start, padded - context_end), 1)
        return np.repeat(self.runs[: lengths.size], lengths.ravel())


def _grid_top(start, end, cand_start, cand_end, *, n_best, max_answer_length, buffers):
    """The n_best best valid spans among candidate starts x ends (R, c) of the padded (R, P)
    masked logits: (scores, starts, ends) (R, min(n_best, c^2)), best first; -inf for none."""
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
    invalid = np.greater_equal(length.view(np.uint32), np.uint32(max_answer_length), out=penalty)
    pair += np.multiply(invalid, PENALTY, out=penalty)
    n_out = min(n_best, c * c)
    chosen, exact = packed_top(pair.reshape(rows, c * c), need=n_out, count=n_out)  # (R, c c)
    if not exact.all():  # the packed keys did not separate the n-th pair from the next
        redo = np.flatnonzero(~exact)
        values = start_value[redo, :, None] + end_value[redo, None, :]  # (r, c, c)
        values[length[redo].view(np.uint32) >= max_answer_length] = NEG_INF
        values = values.reshape(len(redo), c * c)  # (r, c c)
        chosen[redo] = np.argsort(-values, axis=1, kind="stable")[:, :n_out]
    first = chosen // c  # np.divmod has no fast path for a scalar divisor
    first, second = first + row * c, chosen - first * c + row * c  # into the flat (R, c) arrays
    starts, ends = cand_start.ravel()[first], cand_end.ravel()[second]
    scores = start_value.ravel()[first] + end_value.ravel()[second]
    invalid = (ends - starts).view(np.uint32) >= max_answer_length
    np.putmask(scores, invalid | (scores < NO_SPAN), NEG_INF)
    unsorted = np.flatnonzero((scores[:, 1:] > scores[:, :-1]).any(1))  # packed order: ~2^-14
    if len(unsorted):
        order = np.argsort(-scores[unsorted], axis=1, kind="stable")
        for array in (scores, starts, ends):
            array[unsorted] = np.take_along_axis(array[unsorted], order, 1)
    return scores, starts, ends


def _search(start, end, context_start, context_end, *, n_best, max_answer_length, count, buffers):
    """n-best spans of (R, W) windows with `count` candidates per side: (scores, starts, ends)
    and per row whether the candidates were exact (packed_top)."""
    rows, width = start.shape
    band = min(max_answer_length, width)
    padded = width + band - 1
    off_post = buffers.off_post(context_start, context_end, padded)
    masked_start, masked_end = buffers("start", rows, padded), buffers("end", rows, padded)
    for masked, logits in ((masked_start, start), (masked_end, end)):
        np.maximum(logits, MASKED, out=masked[:, :width])  # -inf logits would make NaN keys
        np.copyto(masked.ravel(), MASKED, where=off_post)  # also keeps the rows' windows apart
    scratch = dict(out=buffers("window", rows * padded), spare=buffers("spare", rows * padded))
    best_end = window_max(masked_end.ravel(), band, **scratch).reshape(rows, padded)  # (R, P)
    best_from = buffers("best_from", rows, width)
    np.add(best_end[:, :width], masked_start[:, :width], out=best_from)
    best_start = window_max(masked_start.ravel(), band, leftward=True, **scratch)
    best_to = buffers("best_to", rows, width)
    best_start = best_start.reshape(rows, padded)  # (R, P)
    np.add(best_start[:, :width], masked_end[:, :width], out=best_to)
    need, count = min(n_best, width), min(count, width)
    cand_start, exact_start = packed_top(best_from, need=need, count=count)
    cand_end, exact_end = packed_top(best_to, need=need, count=count)
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


def _numpy(values, dtype) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", dtype=getattr(torch, np.dtype(dtype).name)).numpy()
    return np.asarray(values, dtype=dtype)


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
    Which of several spans of equal score is listed first (or at all, at the cut) is not fixed.
    """
    start, end = _numpy(start_logits, np.float32), _numpy(end_logits, np.float32)
    n_rows, width = start.shape
    scores = np.full((n_rows, n_best), NEG_INF, np.float32)
    starts, ends = np.full((2, n_rows, n_best), -1, np.int64)
    null_scores = start[:, 0] + end[:, 0] if width else np.full(n_rows, NEG_INF, np.float32)
    first = np.clip(_numpy(context_start, np.int64), 0, width)  # (N,)
    stop = np.clip(_numpy(context_end, np.int64), first, width)
    # windows of similar context go together, so that each step cuts away the columns none of
    # its posts reach; `rows` are those still to be searched (an empty post has no span)
    rows = np.lexsort((first, stop))
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
            *found, exact = _search(
                start[chunk, low:high],
                end[chunk, low:high],
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
