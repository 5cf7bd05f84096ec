"""Batching (lib/data/batching.py): padding, masks, targets, and the length-grouped sampler."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from lib.data.batching import LengthGroupedBatchSampler, WindowDataset, collate_windows
from lib.data.corpus import Example, Span
from lib.data.features import build_features


def letter_tokenizer():
    """WordPiece over the letters a-g: one token per character."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for char in "abcdefg.":
        vocab[char], vocab["##" + char] = len(vocab), len(vocab) + 1
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


TOKENIZER = letter_tokenizer()


@st.composite
def items(draw):
    batch = []
    for index in range(draw(st.integers(1, 5))):
        length = draw(st.integers(3, 40))
        context_start = draw(st.integers(1, length - 1))
        n_gold = draw(st.integers(1, 4))
        gold = np.array(
            [
                sorted(draw(st.lists(st.integers(0, length - 1), min_size=2, max_size=2)))
                for _ in range(n_gold)
            ]
        )
        ids = np.array(
            draw(st.lists(st.integers(5, 99), min_size=length, max_size=length)), dtype=np.int32
        )
        batch.append(
            {
                "input_ids": ids,
                "context_start": context_start,
                "window_index": 10 + index,
                "gold_positions": gold,
            }
        )
    return batch


@settings(max_examples=150, deadline=None)
@given(items(), st.sampled_from([1, 8, 13, 64]), st.booleans())
def test_collate_pads_masks_and_targets(batch, multiple, with_labels):
    if not with_labels:
        batch = [{k: v for k, v in item.items() if k != "gold_positions"} for item in batch]
    out = collate_windows(batch, pad_id=0, pad_to_multiple_of=multiple)
    longest = max(len(item["input_ids"]) for item in batch)
    width = out["input_ids"].shape[1]
    assert width % multiple == 0 and longest <= width < longest + multiple
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert out[key].dtype == torch.long and out[key].shape == (len(batch), width)
    assert out["window_index"].tolist() == [item["window_index"] for item in batch]
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        assert out["input_ids"][row, :n].tolist() == item["input_ids"].tolist()
        assert (out["input_ids"][row, n:] == 0).all()
        assert out["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        cs = item["context_start"]
        assert out["token_type_ids"][row].tolist() == [0] * cs + [1] * (n - cs) + [0] * (width - n)
    if not with_labels:
        assert "start_positions" not in out
        return
    slots = max(len(item["gold_positions"]) for item in batch)
    assert out["start_positions"].shape == out["end_positions"].shape == (len(batch), slots)
    for row, item in enumerate(batch):
        k = len(item["gold_positions"])
        assert out["start_positions"][row, :k].tolist() == item["gold_positions"][:, 0].tolist()
        assert out["end_positions"][row, :k].tolist() == item["gold_positions"][:, 1].tolist()
        assert (out["start_positions"][row, k:] == -1).all() and (
            out["end_positions"][row, k:] == -1
        ).all()


def test_dataset_and_loader_over_real_features():
    post = "abc de. fg ab cd ef. ga bc de fg ab."
    examples = [
        Example("p::A", "p", "A", "ab", post, (Span(0, 3, "abc"), Span(8, 10, "fg"))),
        Example("p::B", "p", "B", "c", post, ()),
    ]
    features = build_features(
        examples, TOKENIZER, max_length=16, doc_stride=3, max_question_length=4
    )
    dataset = WindowDataset(features, with_labels=True)
    sampler = LengthGroupedBatchSampler(features.lengths(), 3, shuffle=True, seed=1)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=lambda b: collate_windows(b, pad_id=0, pad_to_multiple_of=8),
    )
    seen = []
    for batch in loader:
        for row, w in enumerate(batch["window_index"].tolist()):
            seen.append(w)
            n = len(features.input_ids[w])
            assert batch["input_ids"][row, :n].tolist() == features.input_ids[w].tolist()
            assert batch["token_type_ids"][row, :n].tolist() == features.token_type_ids(w).tolist()
            gold = features.gold_positions[w]
            assert batch["start_positions"][row, : len(gold)].tolist() == gold[:, 0].tolist()
    assert sorted(seen) == list(range(len(features)))
    assert dataset[0].keys() == {"input_ids", "context_start", "window_index", "gold_positions"}
    assert "gold_positions" not in WindowDataset(features, with_labels=False)[0]


def epoch_batches(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 512), min_size=1, max_size=700),
    st.integers(1, 9),
    st.integers(0, 2**16),
    st.booleans(),
)
def test_sampler_epochs_are_deterministic_permutations(lengths, batch_size, seed, drop_last):
    sampler = LengthGroupedBatchSampler(
        lengths, batch_size, shuffle=True, seed=seed, drop_last=drop_last
    )
    first = epoch_batches(sampler, 0)
    again = LengthGroupedBatchSampler(
        lengths, batch_size, shuffle=True, seed=seed, drop_last=drop_last
    )
    assert epoch_batches(again, 0) == first  # same (seed, epoch), fresh object
    assert epoch_batches(sampler, 0) == first
    assert len(first) == len(sampler)
    flat = [i for batch in first for i in batch]
    assert len(flat) == len(set(flat))
    if drop_last:
        assert all(len(b) == batch_size for b in first)
        assert len(flat) == len(lengths) // batch_size * batch_size
    else:
        assert sorted(flat) == list(range(len(lengths)))
    if first:  # the batch with the longest window leads (OOM shows at step 1)
        assert max(lengths[i] for i in first[0]) == max(lengths[i] for i in flat)


def test_sampler_changes_with_epoch_and_seed():
    lengths = list(np.random.default_rng(0).integers(10, 384, size=1000))
    sampler = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=3)
    assert epoch_batches(sampler, 0) != epoch_batches(sampler, 1)
    other = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=4)
    assert epoch_batches(sampler, 0) != epoch_batches(other, 0)


def test_sampler_batches_are_length_homogeneous():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 384, size=4000)
    sampler = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0)
    grouped = np.mean([np.ptp(lengths[b]) for b in sampler])
    random = np.mean([np.ptp(lengths[rng.permutation(4000)[:16]]) for _ in range(200)])
    assert grouped < random / 10
    # within each megabatch the batches are cut from one length-sorted list
    padded = sum(16 * lengths[b].max() - lengths[b].sum() for b in sampler)
    assert padded < 0.05 * lengths.sum()


def test_sampler_without_shuffle_sorts_longest_first():
    lengths = [5, 9, 9, 1, 7, 3, 9]
    sampler = LengthGroupedBatchSampler(lengths, 3, shuffle=False)
    batches = list(sampler)
    assert batches == [[1, 2, 6], [4, 0, 5], [3]]
    assert len(sampler) == 3
    assert list(LengthGroupedBatchSampler(lengths, 3, shuffle=False, drop_last=True)) == batches[:2]
