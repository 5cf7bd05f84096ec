"""Benchmark: what a study's trials save by sharing their data (lib.training.prepared_data).

    python bench/tune_data.py [--threads 2] [key=value ...]

demo.toml on the paraphrased demo corpus (data/paraphrased: every annotation reworded, so the
alignment's semantic rule runs the sentence encoder), through one DataCache as tune.py uses it:
the first trial's preparation (corpus, alignment, split, windows), a trial that changes only
training or decoding settings (the cache hit), and a trial that changes features.doc_stride
(the same dataset, new windows).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.config import load_config, with_overrides  # noqa: E402
from lib.training.prepared_data import DataCache  # noqa: E402

PARAPHRASED = [
    f"data.posts={ROOT / 'data/paraphrased/posts.csv'}",
    f"data.annotations={ROOT / 'data/paraphrased/annotations.csv'}",
]


def timed(fn):
    begin = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="demo.toml overrides key=value")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(ROOT / "demo.toml", [*PARAPHRASED, *args.overrides])
    cache = DataCache()
    data, cold = timed(lambda: cache.get(cfg))
    _, hit = timed(lambda: cache.get(with_overrides(cfg, {"train.lr": 1e-4})))
    stride = cfg.features.doc_stride // 2
    _, windows = timed(lambda: cache.get(with_overrides(cfg, {"features.doc_stride": stride})))
    n_windows = sum(len(f) for f in data.windows.features.values())
    print(
        f"{len(data.dataset.posts)} posts, {len(data.dataset.examples)} examples, {n_windows} "
        f"windows ({args.threads} threads)\n\n"
        "| trial | seconds |\n|---|---:|\n"
        f"| first (prepares everything) | {cold:.1f} |\n"
        f"| other train/decode settings (cache hit) | {hit:.4f} |\n"
        f"| other features.doc_stride (new windows, same dataset) | {windows:.1f} |"
    )


if __name__ == "__main__":
    main()
