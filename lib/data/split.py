"""Train/val/test split by post, from a hash of (seed, post_id) -- DESIGN §3.

Each post's split depends only on its own id, the seed and the ratios, so a post never crosses
splits, the split is the same on every machine and Python version (sha256, not `hash()`), and
adding posts to a corpus never moves the posts already there.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

from lib.data.corpus import Example

SPLITS = ("train", "val", "test")


def _check_ratios(ratios: Sequence[float]) -> None:
    if (
        len(ratios) != 3
        or any(not math.isfinite(r) or r < 0 for r in ratios)
        or not math.isclose(sum(ratios), 1.0)
    ):
        # the user's data.split is checked at config load; this guards direct calls
        raise ValueError(f"split ratios must be three non-negative numbers summing to 1: {ratios}")


def unit_hash(seed: int, post_id: str) -> float:
    """A uniform number in [0, 1) from sha256(f"{seed}:{post_id}") (its first 8 bytes)."""
    digest = hashlib.sha256(f"{seed}:{post_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(post_id: str, *, seed: int, ratios: Sequence[float]) -> str:
    """The split of `post_id`: its unit hash against the cumulative ratios."""
    _check_ratios(ratios)
    u = unit_hash(seed, post_id)
    cumulative = 0.0
    for name, ratio in zip(SPLITS, ratios):
        cumulative += ratio
        if u < cumulative and ratio > 0:
            return name
    # Rounding can leave u just above a sum of 0.9999999...: the last split with a share.
    return [name for name, ratio in zip(SPLITS, ratios) if ratio > 0][-1]


def split_examples(
    examples: Iterable[Example], *, seed: int, ratios: Sequence[float]
) -> dict[str, list[Example]]:
    """Examples grouped by their post's split, order kept; every split present (maybe empty)."""
    _check_ratios(ratios)
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    of_post: dict[str, str] = {}
    for example in examples:
        if example.post_id not in of_post:
            of_post[example.post_id] = assign_split(example.post_id, seed=seed, ratios=ratios)
        splits[of_post[example.post_id]].append(example)
    return splits
