"""Ranking metrics (lib/evaluation/ranking.py) and TREC files (lib/evaluation/trec.py) against
slow brute-force oracles written from trec_eval's definitions (m_map.c, m_Rprec.c, m_P.c,
m_ndcg_cut.c, form_res_rels.c of https://github.com/usnistgov/trec_eval)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.evaluation.ranking import (
    average_precision,
    ndcg_at,
    precision_at,
    r_precision,
    rank_sentences,
    ranking_metrics,
)
from lib.evaluation.trec import (
    docno,
    parse_docno,
    parse_qrels,
    parse_run,
    qrels_lines,
    query_id,
    run_lines,
)

# ---------------------------------------------------------------- oracles


def _f32(value: float) -> np.float32:
    """A score as trec_eval keeps it (a C float); beyond its range, +-inf."""
    with np.errstate(over="ignore"):
        return np.float32(value)


def oracle_beats(a, b, scores):
    """True when sentence a must come before sentence b."""
    if scores[a] != scores[b]:
        return scores[a] > scores[b]
    if a[0] != b[0]:
        return a[0] < b[0]
    return a[1] < b[1]


def oracle_rank(scores):
    """Each sentence's position is the number of sentences that beat it."""
    ranked = [None] * len(scores)
    for a in scores:
        position = 0
        for b in scores:
            if b != a and oracle_beats(b, a, scores):
                position += 1
        ranked[position] = a
    return ranked


def oracle_relevant_in_first(ranked, relevant, cutoff):
    count = 0
    for position in range(cutoff):
        if position < len(ranked) and ranked[position] in relevant:
            count += 1
    return count


def oracle_ap(ranked, relevant):
    if not relevant:
        return 0.0
    total = 0.0
    for cutoff in range(1, len(ranked) + 1):
        if ranked[cutoff - 1] in relevant:
            total += oracle_relevant_in_first(ranked, relevant, cutoff) / cutoff
    return total / len(relevant)


def oracle_r_precision(ranked, relevant):
    if not relevant:
        return 0.0
    return oracle_relevant_in_first(ranked, relevant, len(relevant)) / len(relevant)


def oracle_precision(ranked, relevant, k):
    return oracle_relevant_in_first(ranked, relevant, k) / k


def oracle_dcg(gains, k):
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains[:k], start=1))


def oracle_ndcg(ranked, relevant, k):
    if not relevant:
        return 0.0
    gains = [1 if sentence in relevant else 0 for sentence in ranked]
    ideal = sorted([1] * len(relevant) + [0] * len(ranked), reverse=True)
    return oracle_dcg(gains, k) / oracle_dcg(ideal, k)


def oracle_metrics(scores, relevant, depth):
    ranked = oracle_rank(scores)[:depth]
    return {
        "ap": oracle_ap(ranked, relevant),
        "r_precision": oracle_r_precision(ranked, relevant),
        "p_at_10": oracle_precision(ranked, relevant, 10),
        "ndcg_1000": oracle_ndcg(ranked, relevant, 1000),
    }


def trec_eval_order(run_for_query):
    """form_res_rels.c's comp_sim_docno: score descending, then docno *descending* (strcmp)."""
    return [
        doc
        for doc, _ in sorted(
            run_for_query, key=lambda item: (-item[1], _descending(item[0].encode("utf-8")))
        )
    ]


def _descending(data: bytes):
    # strcmp on NUL-free strings = bytes order; invert it byte by byte, with a terminator that
    # sorts a prefix after its extensions (descending order puts "ab" after "abc").
    return tuple(255 - byte for byte in data) + (256,)


# ---------------------------------------------------------------- strategies

POSTS = ["a", "b", "a b", "10", "9", "é", "x%y"]
SCORES = [0.0, 0.5, 1.0, -1.0]
SENTENCES = st.tuples(st.sampled_from(POSTS), st.integers(0, 11))


@st.composite
def query_cases(draw):
    scores = draw(st.dictionaries(SENTENCES, st.sampled_from(SCORES), max_size=25))
    scored = sorted(scores)
    relevant = set(draw(st.lists(st.sampled_from(scored), unique=True))) if scored else set()
    relevant |= set(draw(st.lists(SENTENCES, max_size=3)))  # may be absent from the scores
    depth = draw(st.integers(1, 30))
    return scores, relevant, depth


# ---------------------------------------------------------------- ranking


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(SENTENCES, st.sampled_from(SCORES + [math.inf, -0.0]), max_size=25))
def test_rank_equals_the_pairwise_oracle(scores):
    assert rank_sentences(scores) == oracle_rank(scores)


def test_rank_tie_rule_and_nan():
    scores = {("b", 0): 1.0, ("a", 10): 1.0, ("a", 9): 1.0, ("c", 0): 2.0, ("a b", 0): 1.0}
    assert rank_sentences(scores) == [("c", 0), ("a", 9), ("a", 10), ("a b", 0), ("b", 0)]
    assert rank_sentences({}) == []
    with pytest.raises(ValueError, match="NaN"):
        rank_sentences({("a", 0): math.nan})


@settings(max_examples=500, deadline=None)
@given(query_cases())
def test_query_metrics_equal_the_oracles(case):
    scores, relevant, depth = case
    ranked = rank_sentences(scores)[:depth]
    assert average_precision(ranked, relevant) == pytest.approx(oracle_ap(ranked, relevant))
    assert r_precision(ranked, relevant) == pytest.approx(oracle_r_precision(ranked, relevant))
    for k in (1, 3, 10):
        assert precision_at(ranked, relevant, k) == pytest.approx(
            oracle_precision(ranked, relevant, k)
        )
        assert ndcg_at(ranked, relevant, k) == pytest.approx(oracle_ndcg(ranked, relevant, k))
    assert ndcg_at(ranked, relevant) == pytest.approx(oracle_ndcg(ranked, relevant, 1000))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABCD"), query_cases()), max_size=4), st.integers(1, 30))
def test_ranking_metrics_equal_the_oracle(cases, depth):
    scores_by_symptom, relevant_by_symptom = {}, {}
    for symptom, (scores, relevant, _) in cases:
        scores_by_symptom[symptom] = scores
        relevant_by_symptom[symptom] = relevant
    got = ranking_metrics(scores_by_symptom, relevant_by_symptom, depth=depth)
    expected, scored = {}, []
    for symptom in relevant_by_symptom:
        if relevant_by_symptom[symptom]:
            scored.append(symptom)
            values = oracle_metrics(scores_by_symptom[symptom], relevant_by_symptom[symptom], depth)
            for name, value in values.items():
                expected[f"{symptom}/ranking_{name}"] = value
    for mean, name in [
        ("ranking_map", "ap"),
        ("ranking_r_precision", "r_precision"),
        ("ranking_p_at_10", "p_at_10"),
        ("ranking_ndcg_1000", "ndcg_1000"),
    ]:
        if scored:
            expected[mean] = sum(expected[f"{s}/ranking_{name}"] for s in scored) / len(scored)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_hand_computed():
    n1, r1, r2, n2, missing = ("p", 0), ("p", 1), ("p", 2), ("q", 0), ("z", 0)
    # precision 1/2 at rank 2 and 2/3 at rank 3, over R = 2
    assert average_precision([n1, r1, r2], {r1, r2}) == pytest.approx(7 / 12)
    assert average_precision([n1, r1, r2], {r1, r2}) == pytest.approx(0.5833333)
    # a relevant sentence never ranked still counts in R
    assert average_precision([r1, n1], {r1, missing}) == 0.5
    assert average_precision([n1, n2], {missing}) == 0.0
    # P@10 with 3 retrieved, 2 of them relevant: 2 / 10
    assert precision_at([r1, n1, r2], {r1, r2}) == pytest.approx(0.2)
    # R = 3 but only 2 ranked: 1 / 3
    assert r_precision([r1, n1], {r1, r2, missing}) == pytest.approx(1 / 3)
    # NDCG of a perfect ranking is 1, even cut short of R
    assert ndcg_at([r1, r2, n1], {r1, r2}) == pytest.approx(1.0)
    assert ndcg_at([r1, r2], {r1, r2, missing}, k=2) == pytest.approx(1.0)
    # one relevant at rank 2: 1 / log2(3)
    assert ndcg_at([n1, r1], {r1}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at([n1, r1], {r1}) == pytest.approx(0.6309298)
    with pytest.raises(ValueError):
        precision_at([r1], {r1}, k=0)


def test_depth_truncates_before_scoring():
    scores = {("p", i): float(-i) for i in range(5)}  # ranked p0, p1, ..., p4
    relevant = {("p", 0), ("p", 4)}
    full = ranking_metrics({"S": scores}, {"S": relevant})
    short = ranking_metrics({"S": scores}, {"S": relevant}, depth=3)
    assert full["S/ranking_ap"] == pytest.approx((1 + 2 / 5) / 2)
    assert short["S/ranking_ap"] == pytest.approx(1 / 2)  # p4 is no longer retrieved
    assert short["S/ranking_ndcg_1000"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    with pytest.raises(ValueError):
        ranking_metrics({"S": scores}, {"S": relevant}, depth=0)


def test_symptoms_without_relevant_sentences_are_skipped():
    scores = {
        "A": {("p", 0): 1.0, ("p", 1): 0.0},
        "B": {("p", 0): 1.0},  # no relevant sentence: skipped
        "C": {},  # relevant but never scored: counts, with zeros
    }
    relevant = {"A": {("p", 0)}, "B": set(), "C": [("p", 1)], "D": ()}
    metrics = ranking_metrics(scores, relevant)
    assert not any(key.startswith(("B/", "D/")) for key in metrics)
    assert metrics["A/ranking_ap"] == 1.0 and metrics["C/ranking_ap"] == 0.0
    assert metrics["A/ranking_p_at_10"] == pytest.approx(0.1)
    assert metrics["ranking_map"] == pytest.approx(0.5)
    assert metrics["ranking_p_at_10"] == pytest.approx(0.05)
    assert metrics["ranking_r_precision"] == pytest.approx(0.5)
    assert metrics["ranking_ndcg_1000"] == pytest.approx(0.5)
    assert len(metrics) == 2 * 4 + 4


def test_no_relevant_anywhere_means_no_means():
    assert ranking_metrics({"A": {("p", 0): 1.0}}, {"A": set()}) == {}
    assert ranking_metrics({}, {}) == {}


# ---------------------------------------------------------------- trec files


@settings(max_examples=500, deadline=None)
@given(st.text(), st.integers(0, 10**6))
def test_docno_is_one_token_and_round_trips(post_id, index):
    value = docno(post_id, index)
    assert value.split() == [value]
    assert not any(ch.isspace() or ch == "\x00" for ch in value)
    assert parse_docno(value) == (post_id, index)


def test_docno_examples():
    assert docno("a b", 3) == "a%20b_3"
    assert docno("a%", 1) == "a%25_1"
    assert docno("x\ty", 0) == "x%09y_0"
    assert docno("nb\u00a0sp", 2) == "nb%C2%A0sp_2"
    assert docno("café_1", 4) == "café_1_4"
    assert parse_docno("café_1_4") == ("café_1", 4)
    for bad in ("nounderscore", "a_", "a_x", "a_-1", "a_01", "a%2_1", "a%zz_1", "a b_1"):
        with pytest.raises(ValueError):
            parse_docno(bad)
    for bad_index in (-1, 1.0, True):
        with pytest.raises(ValueError):
            docno("a", bad_index)


def test_query_and_run_names_are_single_tokens():
    assert query_id("SLEEP_ISSUES") == "SLEEP_ISSUES"
    for bad in ("", "A B", "A\tB", "#A", "A\u00a0B"):
        with pytest.raises(ValueError):
            query_id(bad)
    for bad in ("", "my run", "run\n"):
        with pytest.raises(ValueError):
            run_lines({"A": {("p", 0): 1.0}}, bad)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["B", "A", "SLEEP_ISSUES"]),
        st.dictionaries(
            st.tuples(st.text(max_size=4), st.integers(0, 20)),
            st.sampled_from(SCORES) | st.floats(allow_nan=False, width=64),
            max_size=15,
        ),
        max_size=3,
    ),
    st.integers(1, 20),
)
def test_run_file_parses_back_in_rank_order(scores_by_symptom, depth):
    lines = run_lines(scores_by_symptom, "run1", depth=depth)
    parsed = parse_run(lines)
    expected_symptoms = sorted(s for s, scores in scores_by_symptom.items() if scores)
    assert list(parsed) == expected_symptoms
    assert [line.split()[0] for line in lines] == sorted(line.split()[0] for line in lines)
    for symptom in expected_symptoms:
        scores = scores_by_symptom[symptom]
        ranked = rank_sentences(scores)[:depth]
        assert len(parsed[symptom]) == min(depth, len(scores))
        assert [parse_docno(doc) for doc, _ in parsed[symptom]] == ranked
        written = [value for _, value in parsed[symptom]]
        for sentence, value in zip(ranked, written):  # float32, lowered only within ties
            assert value == np.float32(value)
            real = float(_f32(scores[sentence])) if abs(scores[sentence]) < 3e38 else None
            if real is not None and not math.isinf(value):
                assert value <= real and real - value <= abs(real) * 1e-5 + 1e-37
        finite = [v for v in written if v != -math.inf]
        assert all(a > b for a, b in zip(finite, finite[1:]))  # trec_eval reads our order
    for line in lines:
        _, q0, _, rank, _, name = line.split()
        assert q0 == "Q0" and name == "run1" and int(rank) >= 1
    ranks = {}
    for line in lines:
        ranks.setdefault(line.split()[0], []).append(int(line.split()[3]))
    assert all(r == list(range(1, len(r) + 1)) for r in ranks.values())


def test_scores_are_trec_evals_float32_in_our_order():
    # trec_eval keeps scores in a C float: doubles closer than that are a tie it would reorder
    close = {("a", 0): 0.1234567891, ("a", 1): 0.1234567892, ("b", 0): 2.5, ("a", 3): -0.0}
    parsed = parse_run(run_lines({"S": close}, "r"))["S"]
    assert [d for d, _ in parsed] == ["b_0", "a_1", "a_0", "a_3"]
    values = [v for _, v in parsed]
    assert values[0] == 2.5 and values[1] == float(np.float32(0.1234567892))
    assert values[2] == float(np.nextafter(np.float32(values[1]), np.float32(-1)))
    assert np.float32(values[2]) < np.float32(values[1])  # strictly below, in float32 too


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["A", "B"]),
        st.sets(st.tuples(st.text(max_size=4), st.integers(0, 20)), max_size=8),
        max_size=2,
    )
)
def test_qrels_parse_back_to_the_relevant_sets(relevant_by_symptom):
    lines = qrels_lines(relevant_by_symptom)
    parsed = parse_qrels(lines)
    for symptom, relevant in relevant_by_symptom.items():
        assert parsed.get(symptom, set()) == {docno(p, i) for p, i in relevant}
    assert set(parsed) == {s for s, r in relevant_by_symptom.items() if r}
    keys = [(line.split()[0], parse_docno(line.split()[2])) for line in lines]
    assert keys == sorted(keys)
    assert all(line.split()[1] == "0" and line.split()[3] == "1" for line in lines)


def test_qrels_example():
    lines = qrels_lines({"B": [("p q", 1)], "A": {("p", 10), ("p", 2), ("o", 5)}})
    assert lines == ["A 0 o_5 1", "A 0 p_2 1", "A 0 p_10 1", "B 0 p%20q_1 1"]
    assert parse_qrels(lines + ["", "C 0 x_0 0"]) == {
        "A": {"o_5", "p_2", "p_10"},
        "B": {"p%20q_1"},
        "C": set(),
    }


@pytest.mark.parametrize(
    ("lines", "number"),
    [
        (["A Q0 a_0 1 1.0 r", "A Q0 a_1 2 0.5"], 2),
        (["A Q0 a_0 1 1.0 r", "", "A Q0 a_1 x 0.5 r"], 3),
        (["A Q0 a_0 1 high r"], 1),
        (["A Q0 a_0 1 nan r"], 1),
        (["A Q0 a_0 1 1.0 r", "A Q0 a_0 2 0.5 r"], 2),
        (["A Q0 a_0 1 1.0 r extra"], 1),
    ],
)
def test_malformed_run_lines_name_the_line(lines, number):
    with pytest.raises(ValueError, match=f"line {number}\\b"):
        parse_run(lines)


@pytest.mark.parametrize(
    ("lines", "number"),
    [
        (["A 0 a_0 1", "A 0 a_1"], 2),
        (["A 0 a_0 yes"], 1),
        (["A 0 a_0 1", "B 0 a_0 1", "A 0 a_0 0"], 3),
    ],
)
def test_malformed_qrels_lines_name_the_line(lines, number):
    with pytest.raises(ValueError, match=f"line {number}\\b"):
        parse_qrels(lines)


# ---------------------------------------------------------------- ties under trec_eval


def trec_eval_style_metrics(run_text, qrels_text):
    """What trec_eval computes from the two files: re-rank by score, docno descending on ties."""
    run, qrels = parse_run(run_text), parse_qrels(qrels_text)
    out = {}
    for symptom, relevant in qrels.items():
        if relevant and symptom in run:  # trec_eval without -c skips queries not in the run
            ranked = trec_eval_order(run[symptom])
            out[symptom] = oracle_metrics_on(ranked, relevant)
    return out


def oracle_metrics_on(ranked, relevant):
    return {
        "ap": oracle_ap(ranked, relevant),
        "r_precision": oracle_r_precision(ranked, relevant),
        "p_at_10": oracle_precision(ranked, relevant, 10),
        "ndcg_1000": oracle_ndcg(ranked, relevant, 1000),
    }


def test_trec_eval_order_breaks_ties_by_descending_docno():
    run = [("a_0", 1.0), ("b_0", 1.0), ("a_10", 1.0), ("a_9", 1.0), ("c_0", 2.0), ("ab_0", 1.0)]
    assert trec_eval_order(run) == ["c_0", "b_0", "ab_0", "a_9", "a_10", "a_0"]


@settings(max_examples=300, deadline=None)
@given(query_cases())
def test_trec_eval_agrees_with_ours_ties_included(case):
    scores, relevant, depth = case
    groups = {}
    for sentence, score in scores.items():
        if _f32(score) == -np.inf:  # the one tie the file cannot break: keep it apart
            groups.setdefault(score, set()).add(sentence in relevant)
    lines = run_lines({"S": scores}, "r", depth=depth)
    qrels = qrels_lines({"S": relevant})
    ours = ranking_metrics({"S": scores}, {"S": relevant}, depth=depth)
    theirs = trec_eval_style_metrics(lines, qrels).get("S")
    if not relevant:
        assert ours == {} and theirs is None
        return
    if not scores:  # trec_eval skips the query (use -c to average it in as zeros)
        assert theirs is None and ours["S/ranking_ap"] == 0.0
        return
    if all(len(flags) == 1 for flags in groups.values()):  # no mixed tie group at -inf
        for name, value in theirs.items():
            assert ours[f"S/ranking_{name}"] == pytest.approx(value), name
    # the same set of sentences reaches trec_eval whatever the tie order
    ranked = {docno(*s) for s in rank_sentences(scores)[:depth]}
    assert {doc for doc, _ in parse_run(lines)["S"]} == ranked


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.tuples(st.text(max_size=4), st.integers(0, 20)),
        st.sampled_from([0.0, 1.0, -2.5, 0.1234567891, 0.1234567892])
        | st.floats(allow_nan=False, width=64),
        max_size=20,
    ).filter(lambda scores: sum(_f32(v) == -np.inf for v in scores.values()) <= 1),
    st.integers(1, 25),
)
def test_trec_eval_order_is_our_order_ties_included(scores, depth):
    # (two scores at float32 -inf are the one tie the file cannot break)
    parsed = parse_run(run_lines({"S": scores}, "r", depth=depth)).get("S", [])
    assert [parse_docno(doc) for doc in trec_eval_order(parsed)] == rank_sentences(scores)[:depth]


def test_a_mixed_tie_group_keeps_our_order_in_trec_eval():
    scores = {("a", 0): 1.0, ("b", 0): 1.0}
    relevant = {("a", 0)}
    ours = ranking_metrics({"S": scores}, {"S": relevant})
    lines = run_lines({"S": scores}, "r")
    theirs = trec_eval_style_metrics(lines, qrels_lines({"S": relevant}))
    assert rank_sentences(scores)[0] == ("a", 0)  # our rank 1
    assert ours["S/ranking_ap"] == 1.0 and ours["S/ranking_ndcg_1000"] == 1.0
    # with the real scores trec_eval would put b_0 first (docno descending): AP 0.5; the file
    # lowers the tied b_0 by one ulp, so trec_eval reads our order
    lowered = float(np.nextafter(np.float32(1.0), np.float32(0.0)))  # one float32 ulp
    assert [float(line.split()[4]) for line in lines] == [1.0, lowered]
    assert trec_eval_order([("a_0", 1.0), ("b_0", 1.0)])[0] == "b_0"
    for name, value in theirs["S"].items():
        assert ours[f"S/ranking_{name}"] == value, name
