"""The paraphrased demo variant: reproducible byte for byte, shaped like the public ReDSM5 rows."""

from __future__ import annotations

import csv
import io
import statistics
import subprocess
import sys
from difflib import SequenceMatcher
from pathlib import Path

import pytest
from tiny import DEMO_GENERATOR, load_demo_generator

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"
PARAPHRASED = ROOT / "data" / "paraphrased"
OPS = set("merge reorder keep_clause split fillers synonyms tense person reword".split())


_generator = load_demo_generator()


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _ratio(a: str, b: str) -> float:
    return SequenceMatcher(None, a.lower(), b.lower(), autojunk=False).ratio()


@pytest.fixture(scope="module")
def generated():
    return _generator.generate_paraphrased_corpus(600, 0)


@pytest.fixture(scope="module")
def joined(generated):
    """(annotation row, truth row, the generator's post, true text) per annotation."""
    posts = {post.post_id: post for post in _generator.demo_posts(600, 0)}
    _, annotations_csv, truth_csv = generated
    annotations, truth = _rows(annotations_csv), _rows(truth_csv)
    assert len(annotations) == len(truth)
    out = []
    for annotation, fact in zip(annotations, truth):
        post = posts[fact["post_id"]]
        out.append((annotation, fact, post, post.text[int(fact["start"]) : int(fact["end"])]))
    return out


def test_committed_files_are_the_generator_output(generated):
    for name, text in zip(("posts.csv", "annotations.csv", "truth.csv"), generated):
        assert (PARAPHRASED / name).read_bytes() == text.encode(), name


def test_deterministic_and_seeded():
    generate = _generator.generate_paraphrased_corpus
    assert generate(20, 3) == generate(20, 3)
    assert generate(20, 3) != generate(20, 4)


def test_posts_are_the_demo_posts(generated):
    assert generated[0].encode() == (DEMO / "posts.csv").read_bytes()


def test_rows_are_the_demo_rows_but_text_and_id(generated):
    demo = _rows((DEMO / "annotations.csv").read_text(encoding="utf-8"))
    paraphrased = _rows(generated[1])
    assert len(paraphrased) == len(demo)
    kept = ("post_id", "DSM5_symptom", "status", "explanation")
    for ours, theirs in zip(paraphrased, demo):
        assert list(ours) == list(theirs)  # same columns, same order
        assert [ours[key] for key in kept] == [theirs[key] for key in kept]


def test_truth_points_at_runs_of_generator_sentences(joined):
    for index, (annotation, fact, post, _) in enumerate(joined):
        k, n = int(fact["true_index"]), int(fact["n_sentences"])
        assert int(fact["row"]) == index + 2  # spreadsheet row: header is row 1
        assert fact["post_id"] == annotation["post_id"] == post.post_id
        assert fact["sentence_id"] == annotation["sentence_id"]
        assert n in (1, 2) and 0 <= k and k + n <= len(post.spans)
        start, end = int(fact["start"]), int(fact["end"])
        assert 0 <= start < end <= len(post.text)
        assert (start, end) == (post.spans[k][0], post.spans[k + n - 1][1])
        assert fact["ops"] and set(fact["ops"].split("+")) <= OPS
        assert ("merge" in fact["ops"].split("+")) == (n == 2)
        prefix, hint = annotation["sentence_id"].rsplit("_", 1)
        assert prefix == post.post_id and 0 <= int(hint) < len(post.spans)


def test_every_annotation_is_paraphrased(joined):
    for annotation, _, _, true_text in joined:
        text = annotation["sentence_text"]
        assert text.lower() != true_text.lower()
        assert "\n" not in text and text == text.strip()
        assert 0.5 <= len(text.split()) / len(true_text.split()) <= 1.6, (text, true_text)


def test_similarity_is_like_the_public_release(joined):
    ratios = [_ratio(a["sentence_text"], true_text) for a, _, _, true_text in joined]
    assert 0.4 <= statistics.median(ratios) <= 0.62
    assert sum(r < 0.8 for r in ratios) >= 0.95 * len(ratios)
    assert min(ratios) < 0.3
    overlaps = [
        _generator.content_overlap(a["sentence_text"], true_text) for a, _, _, true_text in joined
    ]
    assert 0.35 <= statistics.median(overlaps) <= 0.65
    assert 0.02 <= sum(o == 0 for o in overlaps) / len(overlaps) <= 0.2  # some share nothing
    assert sum(o == 1 for o in overlaps) > 0  # and some every content word


def test_sentence_ids_are_noised_like_the_public_release(joined):
    distances = [
        abs(int(a["sentence_id"].rsplit("_", 1)[1]) - int(fact["true_index"]))
        for a, fact, _, _ in joined
    ]
    share = {
        "exact": sum(d == 0 for d in distances) / len(distances),
        "off by one": sum(d == 1 for d in distances) / len(distances),
        "far": sum(d >= 3 for d in distances) / len(distances),
    }
    assert 0.55 <= share["exact"] <= 0.78, share
    assert 0.08 <= share["off by one"] <= 0.25, share
    assert 0.08 <= share["far"] <= 0.25, share


def test_every_operation_is_used(joined):
    ops = [fact["ops"].split("+") for _, fact, _, _ in joined]
    counts = {op: sum(op in row for row in ops) for op in OPS}
    assert all(count >= 20 for count in counts.values()), counts
    assert 0.04 <= counts["merge"] / len(ops) <= 0.12, counts


def test_cli_writes_the_three_files(tmp_path):
    out = tmp_path / "paraphrased"
    result = subprocess.run(
        [sys.executable, str(DEMO_GENERATOR), str(out), "--posts", "7", "--seed", "5"]
        + ["--variant", "paraphrased"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for name, text in zip(
        ("posts.csv", "annotations.csv", "truth.csv"),
        _generator.generate_paraphrased_corpus(7, 5),
    ):
        assert (out / name).read_text(encoding="utf-8") == text, name
