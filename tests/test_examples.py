"""build_examples: one example per (post, symptom), negatives per mode, and an honest report."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.data.corpus import Annotation, Post
from lib.data.examples import SYMPTOM_NAMES, build_examples, symptom_question
from lib.symptoms import NEGATIVE_MODES, QUESTION_MODES

POSTS = {
    "p1": Post("p1", "I feel sad. I can’t sleep at all. Work is fine. I feel sad."),
    "p2": Post("p2", "Nothing is fun. I sleep great."),
    "p3": Post("p3", "Just a normal day."),
}
SYMPTOMS = ["DEPRESSED_MOOD", "SLEEP_ISSUES", "ANHEDONIA"]
CRITERIA = {s: f"criterion for {s}" for s in SYMPTOMS}


def _ann(pid, k, text, symptom, status, row):
    return Annotation(pid, f"{pid}_{k}", text, symptom, status, "", row)


ANNOTATIONS = [
    _ann("p1", 3, "I feel sad.", "DEPRESSED_MOOD", 1, 2),  # the second of two hits
    _ann("p1", 3, "I feel sad.", "DEPRESSED_MOOD", 1, 3),  # a duplicate row: one span
    _ann("p1", 1, "I can't sleep at all.", "SLEEP_ISSUES", 1, 4),  # normalized
    _ann("p1", 1, "i can’t sleep", "SLEEP_ISSUES", 1, 5),  # case_insensitive; overlaps row 4
    _ann("p1", 0, "I feel sad.", "SPECIAL_CASE", 1, 6),  # not configured
    _ann("p2", 1, "I sleep great.", "SLEEP_ISSUES", 0, 7),  # annotated negative
    _ann("p2", 0, "Everything is wonderful and amazing.", "ANHEDONIA", 1, 8),  # fails: dropped
]


def _build(negatives="all", question="criterion", annotations=ANNOTATIONS):
    return build_examples(
        POSTS,
        annotations,
        symptoms=SYMPTOMS,
        question_mode=question,
        criteria=CRITERIA,
        negatives=negatives,
    )


def test_positive_spans_deduped_sorted_overlaps_kept():
    examples, _ = _build()
    by_id = {e.example_id: e for e in examples}
    mood = by_id["p1::DEPRESSED_MOOD"]
    assert [(s.start, s.text) for s in mood.answers] == [(48, "I feel sad.")]
    sleep = by_id["p1::SLEEP_ISSUES"]
    assert [s.text for s in sleep.answers] == ["I can’t sleep", "I can’t sleep at all."]
    assert [s.start for s in sleep.answers] == sorted(s.start for s in sleep.answers)
    for example in examples:
        assert example.context == POSTS[example.post_id].text
        for span in example.answers:
            assert example.context[span.start : span.end] == span.text


@pytest.mark.parametrize(
    ("negatives", "ids"),
    [
        ("none", ["p1::DEPRESSED_MOOD", "p1::SLEEP_ISSUES"]),
        ("annotated", ["p1::DEPRESSED_MOOD", "p1::SLEEP_ISSUES", "p2::SLEEP_ISSUES"]),
        (
            "all",
            [
                "p1::DEPRESSED_MOOD",
                "p1::SLEEP_ISSUES",
                "p1::ANHEDONIA",
                "p2::DEPRESSED_MOOD",
                "p2::SLEEP_ISSUES",
                "p3::DEPRESSED_MOOD",
                "p3::SLEEP_ISSUES",
                "p3::ANHEDONIA",
            ],
        ),  # fmt: skip
    ],
)
def test_negative_modes(negatives, ids):
    examples, report = _build(negatives)
    assert [e.example_id for e in examples] == ids  # post order, then symptom order
    assert [e.example_id for e in examples if e.answers] == ids[:2]
    assert report.dropped == [("p2", "ANHEDONIA")]  # evidence that did not align is no negative


def test_report_counts_rules_failures_and_unconfigured():
    _, report = _build()
    assert report.counts() == {
        "exact": 4,
        "case_insensitive": 1,
        "normalized": 1,
        "fuzzy": 0,
        "semantic": 0,  # no matcher given: the rule does not run
        "ambiguous": 0,
        "failed": 1,
    }
    assert report.counts(0)["exact"] == 1 and report.unconfigured_rows == 1
    assert [(f.row, f.sentence_id) for f in report.failures] == [(8, "p2_0")]
    data = json.loads(json.dumps(report.to_json()))
    assert len(data["annotations"]) == len(ANNOTATIONS)
    failed = data["annotations"][-1]
    assert failed["rule"] is None and failed["start"] is None and failed["end"] is None
    text = report.format()
    assert "row 8: p2_0 ANHEDONIA status 1" in text and "normalized" in text


def test_questions():
    assert [symptom_question("SLEEP_ISSUES", m, CRITERIA) for m in QUESTION_MODES] == [
        "criterion for SLEEP_ISSUES",
        "sleep problems",
        "",
    ]
    assert symptom_question("DEPRESSED_MOOD", "symptom", {}) == "depressed mood"
    assert set(SYMPTOM_NAMES) >= {"DEPRESSED_MOOD", "SPECIAL_CASE"}
    with pytest.raises(ValueError, match="no criterion text for FATIGUE"):
        symptom_question("FATIGUE", "criterion", CRITERIA)
    with pytest.raises(ValueError, match="question mode"):
        symptom_question("FATIGUE", "bogus", CRITERIA)
    with pytest.raises(ValueError, match="negatives must be"):
        _build(negatives="some")
    examples, _ = _build(question="empty")
    assert {e.question for e in examples} == {""}


_SENTENCES = ["I feel sad.", "I sleep all day.", "Work is fine.", "Nothing is fun.", "Hi there."]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(_SENTENCES), min_size=1, max_size=4), min_size=1, max_size=5),
    st.data(),
    st.sampled_from(NEGATIVE_MODES),
)
def test_counts_match_a_slow_oracle(post_sentences, data, negatives):
    posts = {f"p{i}": Post(f"p{i}", " ".join(s)) for i, s in enumerate(post_sentences)}
    rows = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(sorted(posts)),
                st.sampled_from(_SENTENCES + ["Unrelated words entirely here."]),
                st.sampled_from(SYMPTOMS),
                st.sampled_from([0, 1]),
            ),
            max_size=12,
        )
    )
    annotations = [_ann(p, 0, t, s, st_, i + 2) for i, (p, t, s, st_) in enumerate(rows)]
    examples, report = build_examples(
        posts, annotations, symptoms=SYMPTOMS, question_mode="symptom", criteria={},
        negatives=negatives,
    )  # fmt: skip
    # the oracle: plain loops over every pair
    expected = []
    for pid, post in posts.items():
        for symptom in SYMPTOMS:
            mine = [a for a in annotations if (a.post_id, a.symptom) == (pid, symptom)]
            evidence = [a for a in mine if a.status == 1]
            found = {
                (post.text.find(a.sentence_text), a.sentence_text)
                for a in evidence
                if a.sentence_text in post.text
            }
            if evidence and not found:
                continue
            if evidence:
                expected.append((f"{pid}::{symptom}", len(found)))
            elif negatives == "all" or (negatives == "annotated" and mine):
                expected.append((f"{pid}::{symptom}", 0))
    assert [(e.example_id, len(e.answers)) for e in examples] == expected
    assert len(report.rows) == len(annotations)
