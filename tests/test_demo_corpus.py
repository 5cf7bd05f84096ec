"""The committed demo corpus: reproducible byte for byte, ReDSM5-shaped, every rule exercised."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import DEMO_GENERATOR, load_demo_generator

from lib.data.corpus import load_annotations, load_posts
from lib.data.examples import build_examples
from lib.data.sentences import split_sentences
from lib.symptoms import DSM_SYMPTOMS

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"


_generator = load_demo_generator()
demo_posts, generate_demo_corpus = _generator.demo_posts, _generator.generate_demo_corpus


@pytest.fixture(scope="module")
def generated():
    return generate_demo_corpus(600, 0)


@pytest.fixture(scope="module")
def corpus():
    posts = load_posts(DEMO / "posts.csv")
    return posts, load_annotations(DEMO / "annotations.csv", posts)


def test_committed_files_are_the_generator_output(generated):
    posts_csv, annotations_csv = generated
    assert (DEMO / "posts.csv").read_bytes() == posts_csv.encode()
    assert (DEMO / "annotations.csv").read_bytes() == annotations_csv.encode()
    assert len(posts_csv) + len(annotations_csv) < 3_000_000


def test_deterministic_and_seeded():
    assert generate_demo_corpus(25, 3) == generate_demo_corpus(25, 3)
    assert generate_demo_corpus(25, 3) != generate_demo_corpus(25, 4)


def test_shape_is_like_redsm5(corpus):
    posts, annotations = corpus
    words = [len(p.text.split()) for p in posts.values()]
    assert len(posts) == 600
    assert 200 <= statistics.median(words) <= 300 and max(words) > 1500
    with_evidence = {a.post_id for a in annotations if a.status == 1}
    assert 0.2 <= 1 - len(with_evidence) / len(posts) <= 0.3  # posts with no symptom
    assert {a.symptom for a in annotations} == {*DSM_SYMPTOMS, "SPECIAL_CASE"}
    assert sum(a.status == 0 for a in annotations) > 200  # hard negatives
    per_pair = {}
    for a in annotations:
        if a.status:
            per_pair[(a.post_id, a.symptom)] = per_pair.get((a.post_id, a.symptom), 0) + 1
    assert max(per_pair.values()) >= 3 and sum(v > 1 for v in per_pair.values()) > 50
    per_post = {}
    for pid, _ in per_pair:
        per_post[pid] = per_post.get(pid, 0) + 1
    assert max(per_post.values()) >= 4
    assert any("\n" in p.text for p in posts.values())
    assert any("\u2019" in p.text for p in posts.values())


def test_splitter_recovers_the_generator_sentences():
    # the sentence_id indices are the generator's; our splitter must agree on every post
    for post in demo_posts(600, 0):
        assert split_sentences(post.text) == list(post.spans), post.post_id


def test_every_alignment_rule_fires_and_few_rows_fail(corpus):
    posts, annotations = corpus
    _, report = build_examples(
        posts,
        annotations,
        symptoms=list(DSM_SYMPTOMS),
        question_mode="symptom",
        criteria={},
        negatives="all",
    )
    counts = report.counts()
    assert counts["semantic"] == 0  # no matcher given: the text rules alone
    assert all(counts[rule] >= 30 for rule in ("case_insensitive", "normalized", "fuzzy"))
    assert counts["exact"] > 0.7 * len(annotations)
    assert 5 <= counts["failed"] <= 0.03 * len(annotations)
    for row in report.rows:  # an aligned row lands inside the sentence its id names
        if row.rule is not None:
            k = int(row.sentence_id.rsplit("_", 1)[1])
            start, end = split_sentences(posts[row.post_id].text)[k]
            assert start <= row.start < row.end <= end, row


def test_cli_writes_both_files(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(DEMO_GENERATOR), str(out), "--posts", "7", "--seed", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    posts_csv, annotations_csv = generate_demo_corpus(7, 5)
    assert (out / "posts.csv").read_text(encoding="utf-8") == posts_csv
    assert (out / "annotations.csv").read_text(encoding="utf-8") == annotations_csv
