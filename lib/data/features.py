"""Feature windows: `[CLS] question [SEP] post-slice [SEP]` token sequences with training labels.

Follows Hugging Face's `run_qa.py` / `prepare_train_features` and the `tokenizers` overflow
semantics (`truncation="only_second"`, `stride` = number of post tokens shared by neighbouring
windows): a window holds up to `max_length - len(question) - 3` post tokens, window k starts at
post token `k * (size - doc_stride)`, and the last window is the first one that reaches the end
of the post (so it may be shorter). `tests/test_features.py` checks the ids, type ids and offsets
against the tokenizer's own overflowing pair encodings.

The speed trick: a BERT post's tokens do not depend on the question (pre-tokenisation splits each
sequence on its own), so every distinct post and every distinct question is tokenised once with
`encode_batch`, and the windows of each (post, question) pair are assembled with numpy.

Training labels follow DESIGN §4: a gold span counts for a window when all the post tokens it
overlaps lie inside the window; it is labelled (first token, last token) in window coordinates.
All such spans are kept (the loss marginalises over them, lib/training/loss.py); a window with none is
labelled [(0, 0)] = [CLS].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from lib.data.corpus import Example
from lib.errors import UserError

CLS_LABEL = np.zeros((1, 2), dtype=np.int64)  # [(0, 0)]: "no span in this window"


@dataclass(frozen=True)
class Features:
    """All windows of a list of examples, in example order (an example's windows are contiguous).

    Per window w:
      input_ids[w]        int32 (T_w,): [CLS] q [SEP] post[a:b] [SEP]
      context_start[w]    index of the first post token (= len(q) + 2)
      context_end[w]      exclusive end of the post tokens = index of the final [SEP] = T_w - 1
      example_index[w]    row of the example in the `examples` list given to build_features
      gold_positions[w]   int64 (K_w, 2): (first, last) token of every gold span wholly inside,
                          sorted and unique; [(0, 0)] (CLS) when none is
      offset_base[w]      row of `token_offsets` that holds the window's first post token
    Shared: token_offsets (P, 2) int32 = character offsets into its post of every token of every
    distinct post, concatenated; example_windows (E + 1,): example e owns windows
    [example_windows[e], example_windows[e + 1]).
    """

    input_ids: list[np.ndarray]
    context_start: np.ndarray
    context_end: np.ndarray
    example_index: np.ndarray
    gold_positions: list[np.ndarray]
    offset_base: np.ndarray
    token_offsets: np.ndarray
    example_windows: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        """(W,) number of tokens of each window (specials included)."""
        return self.context_end + 1

    def windows_of(self, example_index: int) -> range:
        """The window indices of one example."""
        return range(
            int(self.example_windows[example_index]), int(self.example_windows[example_index + 1])
        )

    def token_type_ids(self, window: int) -> np.ndarray:
        """(T_w,) int32: 0 for [CLS] q [SEP], 1 for the post and the final [SEP] (BERT pairs)."""
        types = np.zeros(len(self.input_ids[window]), dtype=np.int32)
        types[self.context_start[window] :] = 1
        return types

    def offsets(self, window: int) -> np.ndarray:
        """(T_w, 2) int32 character offsets into the post; -1 for [CLS], question and [SEP]."""
        start, end = int(self.context_start[window]), int(self.context_end[window])
        base = int(self.offset_base[window])
        out = np.full((len(self.input_ids[window]), 2), -1, dtype=np.int32)
        out[start:end] = self.token_offsets[base : base + end - start]
        return out


def window_starts(n_tokens: int, size: int, doc_stride: int) -> np.ndarray:
    """First post token of every window: 0, step, 2*step, ... until a window reaches the end.

    Exactly `tokenizers`' Encoding.truncate overflow rule with stride = overlap.
    """
    assert 0 <= doc_stride < size, (doc_stride, size)
    if n_tokens <= size:
        return np.zeros(1, dtype=np.int64)
    step = size - doc_stride
    n_windows = -(-(n_tokens - size) // step) + 1  # ceil division
    return np.arange(n_windows, dtype=np.int64) * step


def gold_token_spans(token_offsets: np.ndarray, answers: Sequence) -> np.ndarray:
    """(K, 2) first/last post token of each answer: the tokens whose characters overlap it.

    An answer overlapping no token (only whitespace or characters the normaliser drops) has no
    token span and is left out.
    """
    pairs = []
    for span in answers:
        overlapping = np.flatnonzero(
            (token_offsets[:, 1] > span.start) & (token_offsets[:, 0] < span.end)
        )
        if len(overlapping):
            pairs.append((overlapping[0], overlapping[-1]))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _special_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise UserError(f"the tokenizer has no {token} token; a BERT WordPiece vocab is required")
    return token_id


def _untruncated(tokenizer: Tokenizer) -> Tokenizer:
    """The tokenizer without padding/truncation (a copy if it carries settings of its own)."""
    if tokenizer.padding is None and tokenizer.truncation is None:
        return tokenizer
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    copy.no_truncation()
    return copy


def build_features(
    examples: Sequence[Example],
    tokenizer: Tokenizer,
    *,
    max_length: int,
    doc_stride: int,
    max_question_length: int,
) -> Features:
    """Tokenise and window every example (see the module docstring for the exact semantics).

    Questions longer than `max_question_length` tokens are cut to it. Requires
    `doc_stride < max_length - max_question_length - 3` (lib/config.py checks it for users).
    """
    assert 0 <= doc_stride < max_length - max_question_length - 3, (
        max_length,
        doc_stride,
        max_question_length,
    )
    tokenizer = _untruncated(tokenizer)
    cls_id, sep_id = _special_id(tokenizer, "[CLS]"), _special_id(tokenizer, "[SEP]")

    post_row: dict[str, int] = {}  # distinct post text -> index
    question_row: dict[str, int] = {}
    for ex in examples:
        post_row.setdefault(ex.context, len(post_row))
        question_row.setdefault(ex.question, len(question_row))
    post_encodings = tokenizer.encode_batch(list(post_row), add_special_tokens=False)
    question_encodings = tokenizer.encode_batch(list(question_row), add_special_tokens=False)

    post_ids = [np.asarray(enc.ids, dtype=np.int32) for enc in post_encodings]
    post_offsets = [
        np.asarray(enc.offsets, dtype=np.int32).reshape(-1, 2) for enc in post_encodings
    ]
    post_base = np.cumsum([0] + [len(ids) for ids in post_ids])  # (n_posts + 1,)
    token_offsets = (
        np.concatenate(post_offsets) if post_offsets else np.zeros((0, 2), dtype=np.int32)
    )
    # [CLS] q [SEP] once per question; the post slice and the final [SEP] are appended per window.
    prefixes = [
        np.concatenate(([cls_id], enc.ids[:max_question_length], [sep_id])).astype(np.int32)
        for enc in question_encodings
    ]
    final_sep = np.asarray([sep_id], dtype=np.int32)

    input_ids: list[np.ndarray] = []
    gold_positions: list[np.ndarray] = []
    context_start: list[int] = []
    example_index: list[int] = []
    offset_base: list[int] = []
    example_windows = [0]
    for index, ex in enumerate(examples):
        post = post_row[ex.context]
        ids, offsets = post_ids[post], post_offsets[post]
        prefix = prefixes[question_row[ex.question]]
        size = max_length - len(prefix) - 1
        gold = gold_token_spans(offsets, ex.answers)
        for first in window_starts(len(ids), size, doc_stride):
            last = min(first + size, len(ids))  # exclusive
            input_ids.append(np.concatenate((prefix, ids[first:last], final_sep)))
            shift = len(prefix) - first  # post token i sits at window position i + shift
            inside = gold[(gold[:, 0] >= first) & (gold[:, 1] < last)]
            labels = np.unique(inside + shift, axis=0) if len(inside) else CLS_LABEL
            gold_positions.append(labels)
            context_start.append(len(prefix))
            example_index.append(index)
            offset_base.append(int(post_base[post] + first))
        example_windows.append(len(input_ids))

    starts = np.asarray(context_start, dtype=np.int64)
    return Features(
        input_ids=input_ids,
        context_start=starts,
        context_end=np.asarray([len(ids) - 1 for ids in input_ids], dtype=np.int64),
        example_index=np.asarray(example_index, dtype=np.int64),
        gold_positions=gold_positions,
        offset_base=np.asarray(offset_base, dtype=np.int64),
        token_offsets=token_offsets,
        example_windows=np.asarray(example_windows, dtype=np.int64),
    )
