"""Post-level splits: hash-based, disjoint by post, stable as the corpus grows."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.data.corpus import Example
from lib.data.split import SPLITS, assign_split, split_examples, unit_hash

RATIOS = [0.8, 0.1, 0.1]
_IDS = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


def _examples(post_ids, symptoms=("A", "B")):
    return [Example(f"{p}::{s}", p, s, "", "text", ()) for p in post_ids for s in symptoms]


def test_unit_hash_is_sha256_of_seed_and_id():
    digest = hashlib.sha256(b"7:s_1_2").digest()
    assert unit_hash(7, "s_1_2") == int.from_bytes(digest[:8], "big") / 2**64
    assert 0.0 <= unit_hash(0, "x") < 1.0


def test_known_assignment_is_pinned():
    # any change to the hash or the cut points would silently reshuffle everybody's splits
    got = [assign_split(f"s_{i}", seed=42, ratios=RATIOS) for i in range(30)]
    where = {1: "val", 17: "val", 18: "val", 21: "val", 27: "test"}
    assert got == [where.get(i, "train") for i in range(30)]
    u = [unit_hash(42, f"s_{i}") for i in range(30)]
    assert got == ["train" if x < 0.8 else "val" if x < 0.9 else "test" for x in u]


@settings(max_examples=50, deadline=None)
@given(st.lists(_IDS, unique=True, max_size=30), st.lists(_IDS, unique=True, max_size=30),
       st.integers(0, 2**32))  # fmt: skip
def test_disjoint_and_stable_when_posts_are_added(first, more, seed):
    before = split_examples(_examples(first), seed=seed, ratios=RATIOS)
    grown = first + [p for p in more if p not in first]
    after = split_examples(_examples(grown), seed=seed, ratios=RATIOS)
    posts_of = {name: {e.post_id for e in after[name]} for name in SPLITS}
    assert not (posts_of["train"] & posts_of["val"]) and not (posts_of["val"] & posts_of["test"])
    assert not (posts_of["train"] & posts_of["test"])
    for name in SPLITS:
        kept = [e for e in after[name] if e.post_id in first]
        assert kept == before[name]  # same posts, same order
    assert sum(len(v) for v in after.values()) == 2 * len(grown)


def test_ratios_are_honoured_and_zero_means_never():
    ids = [f"post{i}" for i in range(20000)]
    counts = {name: 0 for name in SPLITS}
    for pid in ids:
        counts[assign_split(pid, seed=1, ratios=RATIOS)] += 1
    assert abs(counts["train"] / 20000 - 0.8) < 0.015
    assert abs(counts["val"] / 20000 - 0.1) < 0.01
    assert all(assign_split(p, seed=1, ratios=[0.5, 0.0, 0.5]) != "val" for p in ids[:2000])
    assert all(assign_split(p, seed=1, ratios=[1.0, 0.0, 0.0]) == "train" for p in ids[:2000])


def test_seed_changes_the_split():
    ids = [f"p{i}" for i in range(200)]
    a = [assign_split(p, seed=1, ratios=RATIOS) for p in ids]
    b = [assign_split(p, seed=2, ratios=RATIOS) for p in ids]
    assert a != b


@pytest.mark.parametrize(
    "ratios", [[0.8, 0.1], [0.8, 0.3, 0.1], [1.2, -0.1, -0.1], [0.8, 0.1, float("nan")]]
)
def test_bad_ratios(ratios):
    with pytest.raises(ValueError, match="split ratios"):
        assign_split("x", seed=0, ratios=ratios)
