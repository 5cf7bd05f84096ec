"""Batches of feature windows: a Dataset, the padding collate function and a length-grouped sampler.

Padding follows DESIGN §4: each batch is padded to its own longest window, rounded up to a
multiple of `pad_to_multiple_of` so that compiled kernels see few distinct shapes. The sampler
follows Hugging Face's `LengthGroupedSampler` (trainer_pt_utils): random megabatches of
50 x batch_size, each sorted by length and cut into batches, so a batch holds windows of similar
length (little padding) while the order stays random; the batch holding the longest window comes
first so that an out-of-memory error shows at step 1, not hours in. TrainingBatches builds the
training epochs on top of it: effective batches (batch_size x grad_accum) cut into micro-batches,
with the windows that hold no evidence optionally subsampled afresh each epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from lib.data.features import Features

MEGABATCH_FACTOR = 50


class WindowDataset(Dataset):
    """Item i = window i of `features`: its ids, where the post starts, and (training) its labels."""

    def __init__(self, features: Features, *, with_labels: bool):
        self.features = features
        self.with_labels = with_labels

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        item = {
            "input_ids": self.features.input_ids[index],
            "context_start": int(self.features.context_start[index]),
            "window_index": index,
        }
        if self.with_labels:
            item["gold_positions"] = self.features.gold_positions[index]
        return item


def collate_windows(items: Sequence[dict], *, pad_id: int, pad_to_multiple_of: int) -> dict:
    """Pad a list of WindowDataset items into a batch of torch tensors.

    Returns input_ids, attention_mask, token_type_ids (B, T) long, with T = the longest window
    rounded up to a multiple of `pad_to_multiple_of`; token type 1 from the first post token to
    the final [SEP] inclusive, 0 elsewhere (padding included); window_index (B,) long; and, when
    the items carry labels, start_positions / end_positions (B, K) long, K = most gold spans of
    any window in the batch, unused slots -1 (slot 0 always holds a target: CLS when no span).
    """
    lengths = [len(item["input_ids"]) for item in items]
    width = -(-max(lengths) // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = np.full((len(items), width), pad_id, dtype=np.int64)  # (B, T)
    token_type_ids = np.zeros((len(items), width), dtype=np.int64)  # (B, T)
    for row, (item, length) in enumerate(zip(items, lengths)):
        input_ids[row, :length] = item["input_ids"]
        token_type_ids[row, item["context_start"] : length] = 1
    positions = np.arange(width)
    attention_mask = (positions[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "token_type_ids": torch.from_numpy(token_type_ids),
        "window_index": torch.tensor([item["window_index"] for item in items], dtype=torch.long),
    }
    if "gold_positions" in items[0]:
        slots = max(len(item["gold_positions"]) for item in items)
        gold = np.full((len(items), slots, 2), -1, dtype=np.int64)  # (B, K, 2)
        for row, item in enumerate(items):
            gold[row, : len(item["gold_positions"])] = item["gold_positions"]
        batch["start_positions"] = torch.from_numpy(gold[:, :, 0].copy())
        batch["end_positions"] = torch.from_numpy(gold[:, :, 1].copy())
    return batch


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices, each batch of similar lengths.

    shuffle=True: deterministic given (seed, epoch) -- call `set_epoch` before each epoch. A
    permutation from a torch.Generator seeded with seed + epoch is cut into megabatches of
    50 x batch_size; each is sorted by length (longest first) and cut into batches; the batch
    order is shuffled with the same generator, and the batch holding the longest window is moved
    to the front. shuffle=False (evaluation): all indices sorted by length, longest first.
    Every index appears exactly once per epoch; with drop_last the final short batch (if any) is
    dropped.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
    ):
        assert batch_size >= 1
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.lengths) // self.batch_size
        return -(-len(self.lengths) // self.batch_size)

    def _longest_first(self, indices: np.ndarray) -> np.ndarray:
        # stable sort on -length: equal lengths keep their (random or natural) order
        return indices[np.argsort(-self.lengths[indices], kind="stable")]

    def _batches(self) -> list[np.ndarray]:
        n, size = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = self._longest_first(np.arange(n))
            return [order[i : i + size] for i in range(0, n, size)]
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        permutation = torch.randperm(n, generator=generator).numpy()
        mega = MEGABATCH_FACTOR * size  # a multiple of size: only the very last batch can be short
        batches = []
        for i in range(0, n, mega):
            sorted_mega = self._longest_first(permutation[i : i + mega])
            batches += [sorted_mega[j : j + size] for j in range(0, len(sorted_mega), size)]
        batch_order = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in batch_order]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == self.batch_size]
        if self.shuffle and batches:
            longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b]].max())
            batches.insert(0, batches.pop(longest))
        for batch in batches:
            yield batch.tolist()


class TrainingBatches(Sampler[list[int]]):
    """The micro-batches of one epoch, deterministic given (seed, epoch).

    Every window that holds a gold span is used each epoch, plus a fresh seeded sample of
    `no_answer_fraction` of the windows that hold none (most windows, once every post is asked
    about every symptom; 1.0 = all of them). The chosen windows are length-grouped into effective
    batches of batch_size × grad_accum, each cut into micro-batches of batch_size.
    """

    def __init__(
        self, features, *, batch_size: int, grad_accum: int, no_answer_fraction: float, seed: int
    ):
        self.lengths = features.lengths()
        no_answer = np.array([g.shape[0] == 1 and not g.any() for g in features.gold_positions])
        self.answer = np.flatnonzero(~no_answer)
        self.no_answer = np.flatnonzero(no_answer)
        self.n_no_answer = round(no_answer_fraction * len(self.no_answer))
        # Not called `batch_size`: Accelerate's BatchSamplerShard reads that attribute as "every
        # batch is this big" and, sharding across processes, silently skips a round of batches
        # that ends in a short one -- here the last micro-batch of the short effective batch,
        # which the shuffle puts anywhere in the epoch. Without it, batches are dealt as they come.
        self.micro_batch_size, self.grad_accum, self.seed = batch_size, grad_accum, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def windows(self) -> np.ndarray:
        if self.n_no_answer == len(self.no_answer):
            return np.arange(len(self.lengths))
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        pick = torch.randperm(len(self.no_answer), generator=generator)[: self.n_no_answer]
        return np.sort(np.concatenate([self.answer, self.no_answer[pick.numpy()]]))

    def __iter__(self) -> Iterator[list[int]]:
        windows = self.windows()
        effective = LengthGroupedBatchSampler(
            self.lengths[windows],
            self.micro_batch_size * self.grad_accum,
            shuffle=True,
            seed=self.seed,
        )
        effective.set_epoch(self.epoch)
        size = self.micro_batch_size
        for batch in effective:
            for i in range(0, len(batch), size):
                yield windows[batch[i : i + size]].tolist()

    def __len__(self) -> int:
        size = self.micro_batch_size
        n, effective = len(self.answer) + self.n_no_answer, size * self.grad_accum
        full, rest = divmod(n, effective)
        return full * math.ceil(effective / size) + math.ceil(rest / size)
