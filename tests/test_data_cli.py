"""`python -m lib.data`: the corpus validator as a user runs it (DESIGN §3, §9)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from lib.data.dataset import build_dataset

ROOT = Path(__file__).resolve().parent.parent
DEMO_POSTS = ROOT / "data" / "demo" / "posts.csv"
DEMO_ANNOTATIONS = ROOT / "data" / "demo" / "annotations.csv"
HEADER = "post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"
POSTS = 'post_id,text\np1,"I feel sad. I can’t sleep."\np2,Nothing is fun.\n'
ROWS = HEADER + "p1,p1_0,I feel sad.,DEPRESSED_MOOD,1,x\np2,p2_0,Nothing is fun.,ANHEDONIA,1,\n"


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "lib.data", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


BAD_INPUTS = [
    # (posts content or None for missing, annotations content or None, extra args, expected)
    (None, ROWS, [], r"posts\.csv: posts file not found"),
    (POSTS, None, [], r"annotations\.csv: annotations file not found"),
    ("", ROWS, [], r"posts\.csv: empty file"),
    (POSTS, "", [], r"annotations\.csv: empty file"),
    ("id,body\np1,x\n", ROWS, [], r"posts\.csv: row 1: missing column post_id"),
    (POSTS, "post_id,sentence_id,text\n", [], r"annotations\.csv: row 1: missing column sentence_text"),
    (POSTS + "p1,again\n", ROWS, [], r"posts\.csv: row 4, column post_id: duplicate post_id 'p1'"),
    (POSTS, ROWS + "p9,p9_0,Hi.,FATIGUE,1,\n", [], r"annotations\.csv: row 4, column post_id: unknown post 'p9'"),
    (POSTS, ROWS + "p1,p1_0,Hi.,TIRED,1,\n", [], r"row 4, column DSM5_symptom: unknown symptom 'TIRED'"),
    (POSTS, ROWS + "p1,p1_0,Hi.,FATIGUE,yes,\n", [], r"row 4, column status: 'yes' is not 0 or 1"),
    (POSTS + 'p3,"  "\n', ROWS, [], r"posts\.csv: row 4, column text: empty text"),
    (POSTS, ROWS + "p1,p1_1,,FATIGUE,1,\n", [], r"row 4, column sentence_text: empty text"),
    (POSTS, ROWS + "p1,p1-1,Hi.,FATIGUE,1,\n", [], r"row 4, column sentence_id: 'p1-1' is not p1_<k>"),
    (POSTS.encode() + b"p3,caf\xe9\n", ROWS, [], r"posts\.csv: row 4, column text: invalid UTF-8 \(byte 0xe9 at byte offset \d+\)"),
    (POSTS, ROWS, ["data.negativs=all"], r"unknown config key data\.negativs \(did you mean data\.negatives\?\)"),
    (POSTS, ROWS, ["data.limit=many"], r"config key data\.limit: expected int"),
    (POSTS, ROWS, ["--config", "missing.toml"], r"missing\.toml not found"),
]  # fmt: skip


@pytest.mark.parametrize(("posts", "rows", "extra", "expected"), BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_2(tmp_path, posts, rows, extra, expected):
    for name, content in (("posts.csv", posts), ("annotations.csv", rows)):
        if content is not None:
            data = content if isinstance(content, bytes) else content.encode()
            (tmp_path / name).write_bytes(data)
    before = _tree(tmp_path)
    result = _run(["posts.csv", "annotations.csv", *extra], tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert _tree(tmp_path) == before  # nothing written


def test_demo_corpus_report_shows_every_rule(tmp_path):
    result = _run([DEMO_POSTS, DEMO_ANNOTATIONS], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("posts: 600")
    for rule in ("exact", "case_insensitive", "normalized", "fuzzy", "failed"):
        match = re.search(rf"^  {rule}\s+(\d+)\s+(\d+)\s+(\d+)$", out, re.M)
        assert match and int(match.group(3)) > 0, rule
    assert re.search(r"^  total\s+600\s+5\d\d\d\s+", out, re.M)  # 600 posts x 9 symptoms - dropped
    assert "not aligned (" in out and _tree(tmp_path) == {}


def test_json_lists_every_annotation_row(tmp_path):
    result = _run([DEMO_POSTS, DEMO_ANNOTATIONS, "--json", "data.negatives=annotated"], tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    with open(DEMO_ANNOTATIONS, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(summary["annotations"]) == len(rows) == summary["annotation_rows"]
    posts = {r["post_id"]: r["text"] for r in csv.DictReader(open(DEMO_POSTS, encoding="utf-8"))}
    for row, got in zip(rows, summary["annotations"]):
        assert (got["post_id"], got["sentence_id"], got["symptom"], got["status"]) == (
            row["post_id"],
            row["sentence_id"],
            row["DSM5_symptom"],
            int(row["status"]),
        )
        if got["rule"] is None:
            assert got["start"] is None and got["end"] is None
        else:
            assert 0 <= got["start"] < got["end"] <= len(posts[got["post_id"]])
    counts = summary["counts"]
    assert all(counts[rule] > 0 for rule in counts)
    # The 20 demo rows rewritten beyond what the text rules accept reach the semantic rule.
    assert counts["semantic"] + counts["ambiguous"] + counts["failed"] == 20
    assert summary["semantic_evidence"] == "minilm-l6 embeddings + lexical overlap"
    for got in summary["annotations"]:  # score and margin per row, where the rule has them
        assert set(got) >= {"score", "margin", "runner_up"}
        if got["rule"] == "semantic":
            assert got["score"] >= summary["semantic_threshold"]
            assert got["margin"] is None or got["margin"] >= summary["semantic_margin"] - 1e-4
    ex = summary["examples"]
    assert ex["total"]["examples"] == sum(ex[s]["examples"] for s in ("train", "val", "test"))
    assert summary["negatives"] == "annotated" and ex["total"]["negative"] > 0


def test_small_corpus_offsets_and_limit(tmp_path):
    (tmp_path / "p.csv").write_text(POSTS, encoding="utf-8")
    (tmp_path / "a.csv").write_text(ROWS, encoding="utf-8")
    result = _run(["p.csv", "a.csv", "--json", "data.limit=1", "data.negatives=none"], tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["posts"] == 1 and summary["examples"]["total"]["examples"] == 1
    (row,) = summary["annotations"]  # the row of p2 lies beyond the limit
    assert (row["rule"], row["start"], row["end"]) == ("exact", 0, 11)


def _cfg(tmp_path, **overrides):
    (tmp_path / "p.csv").write_text(POSTS, encoding="utf-8")
    (tmp_path / "a.csv").write_text(ROWS, encoding="utf-8")
    values = dict(
        posts=tmp_path / "p.csv",
        annotations=tmp_path / "a.csv",
        symptoms=["DEPRESSED_MOOD", "ANHEDONIA"],
        question="symptom",
        negatives="all",
        split=[0.5, 0.25, 0.25],
        seed=3,
        fuzzy_threshold=0.8,
        align_rules=["exact", "case_insensitive", "normalized", "fuzzy", "semantic"],
        semantic_threshold=0.5,
        semantic_margin=0.05,
        semantic_model="minilm-l6",
        limit=0,
        criteria={},
    )
    return SimpleNamespace(**{**values, **overrides})


def test_build_dataset_duck_typed(tmp_path):
    dataset = build_dataset(_cfg(tmp_path))
    assert list(dataset.posts) == ["p1", "p2"]
    assert sum(len(v) for v in dataset.splits.values()) == len(dataset.examples) == 4
    assert [e.example_id for e in dataset.examples if e.answers] == [
        "p1::DEPRESSED_MOOD",
        "p2::ANHEDONIA",
    ]
    assert dataset.report.counts()["exact"] == 2  # (data.limit < 0 is refused at config load)
