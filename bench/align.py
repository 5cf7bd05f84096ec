"""Benchmark: alignment of paraphrased annotations -- accuracy against ground truth, and speed.

1. Accuracy on the paraphrased demo corpus (`data/paraphrased`, every annotation reworded, with
   `truth.csv`): how many rows the rules bind to the right sentence(s), bind wrong, report
   ambiguous or fail -- with MiniLM embeddings and with lexical evidence only.
   A row is *right* when the sentences its binding reaches into are exactly the sentences its
   truth covers.
2. Speed at ReDSM5's size (1,484 posts, 1,600 annotation rows spread evenly over them): the
   paraphrased corpus (`generate_paraphrased_corpus`), and the verbatim one
   (`generate_demo_corpus`, whose ~1% rows rewritten beyond the text rules still reach the
   semantic rule), each through `build_dataset` from files on disk, encoder loading included
   (targets: < 60 s paraphrased; verbatim rows on the text rules' fast path, < 2 s).

    python bench/align.py [--threads 2] [--skip-speed] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.config import load_config  # noqa: E402
from lib.data.dataset import build_dataset  # noqa: E402
from lib.data.sentences import split_sentences  # noqa: E402

sys.path.insert(0, str(ROOT / "data" / "demo"))
from generate import generate_demo_corpus, generate_paraphrased_corpus  # noqa: E402

REDSM5_POSTS, REDSM5_ROWS = 1484, 1600


def covered(spans: list[tuple[int, int]], start: int, end: int) -> frozenset[int]:
    """The sentences [start, end) reaches into (a fuzzy stretch inside a sentence counts)."""
    return frozenset(i for i, (s, e) in enumerate(spans) if min(e, end) > max(s, start))


def data_config(posts: Path, annotations: Path, *overrides: str):
    cfg = load_config(None, [f"data.posts={posts}", f"data.annotations={annotations}", *overrides])
    return dataclasses.replace(cfg.data, symptoms=list(cfg.data.symptoms))


def accuracy(folder: Path, *overrides: str) -> dict:
    """Right / wrong / ambiguous / failed counts of the rules against truth.csv."""
    dataset = build_dataset(
        data_config(folder / "posts.csv", folder / "annotations.csv", *overrides)
    )
    with open(folder / "truth.csv", encoding="utf-8", newline="") as f:
        truth = {int(r["row"]): r for r in csv.DictReader(f)}
    counts = dict.fromkeys(("right", "wrong", "ambiguous", "failed"), 0)
    wrong = []
    for row in dataset.report.rows:
        if row.rule is None:
            counts[row.outcome] += 1
            continue
        spans = split_sentences(dataset.posts[row.post_id].text)
        t = truth[row.row]
        expected = covered(spans, int(t["start"]), int(t["end"]))
        if covered(spans, row.start, row.end) == expected:
            counts["right"] += 1
        else:
            counts["wrong"] += 1
            wrong.append((row.row, row.rule, row.score, row.margin, t["ops"]))
    return {
        "rows": len(dataset.report.rows),
        **counts,
        "rules": dataset.report.counts(),
        "evidence": dataset.report.semantic_evidence,
        "wrong_rows": wrong,
    }


def _spread_rows(annotations_csv: str, n: int) -> str:
    """n rows evenly spread over the file (so over the posts), header kept."""
    header, *rows = list(csv.reader(io.StringIO(annotations_csv)))
    picked = [rows[i * len(rows) // n] for i in range(min(n, len(rows)))]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *picked])
    return out.getvalue()


def timed_alignment(posts_csv: str, annotations_csv: str, *overrides: str) -> tuple[float, dict]:
    """Seconds of build_dataset (files read, rows aligned, examples built and split)."""
    with tempfile.TemporaryDirectory() as folder:
        posts, annotations = Path(folder) / "posts.csv", Path(folder) / "annotations.csv"
        posts.write_text(posts_csv, encoding="utf-8")
        annotations.write_text(_spread_rows(annotations_csv, REDSM5_ROWS), encoding="utf-8")
        begin = time.perf_counter()
        dataset = build_dataset(data_config(posts, annotations, *overrides))
        return time.perf_counter() - begin, dataset.report.counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if not args.skip_accuracy:
        print("| paraphrased demo corpus (600 posts) | rows | right | wrong | ambiguous | failed |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, overrides in (
            ("MiniLM embeddings + lexical", ()),
            ("lexical only (`data.semantic_model=none`)", ("data.semantic_model=none",)),
        ):
            result = accuracy(ROOT / "data" / "paraphrased", *overrides)
            n = result["rows"]
            cells = " | ".join(
                f"{result[k]} ({100 * result[k] / n:.1f}%)"
                for k in ("right", "wrong", "ambiguous", "failed")
            )
            print(f"| {label} | {n} | {cells} |", flush=True)
            print(f"<!-- rules {result['rules']}; wrong rows {result['wrong_rows'][:20]} -->")

    if not args.skip_speed:
        print(f"\n| ReDSM5 size ({REDSM5_POSTS} posts, {REDSM5_ROWS} rows) | seconds | outcomes |")
        print("|---|---:|---|")
        paraphrased = generate_paraphrased_corpus(REDSM5_POSTS, seed=1)
        verbatim = generate_demo_corpus(REDSM5_POSTS, seed=1)
        text_rules = 'data.align_rules=["exact", "case_insensitive", "normalized", "fuzzy"]'
        for label, (posts_csv, annotations_csv), overrides in (
            ("verbatim annotations, text rules only", verbatim[:2], (text_rules,)),
            ("verbatim annotations, all five rules", verbatim[:2], ()),
            ("paraphrased annotations, all five rules", paraphrased[:2], ()),
        ):
            seconds, counts = timed_alignment(posts_csv, annotations_csv, *overrides)
            shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            print(f"| {label} | {seconds:.1f} | {shown} |", flush=True)


if __name__ == "__main__":
    main()
