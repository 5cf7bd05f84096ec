"""TREC run and qrels files for the sentence rankings of lib.evaluation.ranking (eRisk 2023 Task 1).

Formats, as trec_eval reads them (https://github.com/usnistgov/trec_eval, get_trec_results.c and
get_qrels.c): whitespace-separated lines

    run:    QUERY Q0 DOCNO RANK SCORE RUN_NAME
    qrels:  QUERY 0 DOCNO RELEVANCE

Here QUERY is the symptom name, DOCNO is `docno(post_id, index)` = "{post_id}_{index}" with every
whitespace character of post_id (str.isspace: what Python's str.split and C's isspace split on),
"%" and NUL percent-encoded as the %XX of their UTF-8 bytes (" " -> "%20", "\\t" -> "%09",
"%" -> "%25", "\\u00a0" -> "%C2%A0"), so a docno is always one token and `parse_docno` inverts it
(the index is the part after the last "_"). Lines are returned without a trailing newline.

Scores are written at trec_eval's own precision: it parses the column with atof but keeps it in
a `float sim` (trec_eval.h, TEXT_TR), so two doubles closer than single precision are a tie to
it. Each score is rounded to float32 and written with `repr` of that value (exact; it reads back
as the same float32).

Ties. trec_eval ignores the RANK column: form_res_rels.c sorts each query's lines by score
descending and breaks ties with `strcmp(p2->docno, p1->docno)` (comp_sim_docno), i.e. by docno in
*descending* byte order. `rank_sentences` breaks ties by post_id, then index, ascending, and
ties are common (one predicted span covering two sentences gives both its score), so with the
real scores trec_eval would reorder tie groups and, where a group mixes relevant and
non-relevant sentences, report other AP/NDCG than `ranking_metrics` (measured on the demo model:
MAP 0.801 vs 0.806). So the SCORE column makes the order explicit: each line's score is the
sentence's score, or, when that is not below the previous line's, the next double below the
previous line's (numpy.nextafter in float32) -- within a tie group (ties in float32, the
precision trec_eval keeps) the 2nd sentence is lowered by one float32 unit in the last place,
the 3rd by two, and so on. trec_eval then reads our order, and its numbers equal
`ranking_metrics` (tests/test_ranking.py checks this against a trec_eval-style oracle; only a
tie group at -inf, which cannot be lowered, keeps trec_eval's docno order).

Queries: symptoms with no scores write no run lines and symptoms with no relevant sentences no
qrels lines; trec_eval ignores queries without qrels, and queries without run lines unless `-c`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from urllib.parse import unquote

import numpy as np

from lib.evaluation.ranking import SentenceId, rank_sentences


def _needs_escape(char: str) -> bool:
    return char.isspace() or char in "%\x00"


def docno(post_id: str, index: int) -> str:
    """The one-token TREC docno of sentence `index` of `post_id` (encoding in the module doc)."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"sentence index must be a non-negative int, got {index!r}")
    encoded = "".join(
        "".join(f"%{byte:02X}" for byte in char.encode("utf-8")) if _needs_escape(char) else char
        for char in post_id
    )
    return f"{encoded}_{index}"


def parse_docno(value: str) -> SentenceId:
    """Inverse of `docno`: "{encoded post_id}_{index}" -> (post_id, index)."""
    encoded, sep, index = value.rpartition("_")
    if not sep or not index.isascii() or not index.isdigit():
        raise ValueError(f"not a sentence docno: {value!r}")
    post_id = unquote(encoded, errors="strict")
    if docno(post_id, int(index)) != value:  # stray "%", unescaped whitespace, "007"
        raise ValueError(f"not a canonical sentence docno: {value!r}")
    return post_id, int(index)


def _check_token(value: str, what: str) -> str:
    if not value or any(char.isspace() or char == "\x00" for char in value):
        raise ValueError(f"{what} must be one non-empty token without whitespace: {value!r}")
    return value


def query_id(symptom: str) -> str:
    """The symptom name as a TREC query id; ValueError if it is not one token.

    A leading "#" is refused too: trec_eval reads such a run line as a comment.
    """
    _check_token(symptom, "symptom")
    if symptom.startswith("#"):
        raise ValueError(f"symptom must not start with '#': {symptom!r}")
    return symptom


def run_lines(
    scores_by_symptom: Mapping[str, Mapping[SentenceId, float]],
    run_name: str,
    depth: int = 1000,
) -> list[str]:
    """`SYMPTOM Q0 DOCNO RANK SCORE RUN` lines: symptoms by name, each its top `depth` sentences
    in `rank_sentences` order, RANK from 1, SCORE strictly decreasing (ties lowered by ulps, see
    the module docstring)."""
    _check_token(run_name, "run_name")
    if depth < 1:
        raise ValueError(f"depth must be positive, got {depth}")
    lines = []
    for symptom in sorted(scores_by_symptom):
        qid, scores = query_id(symptom), scores_by_symptom[symptom]
        previous = np.float32(np.inf)
        for rank, sentence in enumerate(rank_sentences(scores)[:depth], start=1):
            with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as trec_eval reads it
                score = np.float32(scores[sentence])
            if rank > 1 and score >= previous:  # a tie in float32: one ulp below the line before
                score = np.nextafter(previous, np.float32(-np.inf))
            previous = score
            lines.append(f"{qid} Q0 {docno(*sentence)} {rank} {float(score)!r} {run_name}")
    return lines


def qrels_lines(relevant_by_symptom: Mapping[str, Collection[SentenceId]]) -> list[str]:
    """`SYMPTOM 0 DOCNO 1` for every relevant sentence, by symptom, then post_id, then index."""
    lines = []
    for symptom in sorted(relevant_by_symptom):
        qid = query_id(symptom)
        for post_id, index in sorted(set(relevant_by_symptom[symptom])):
            lines.append(f"{qid} 0 {docno(post_id, index)} 1")
    return lines


def _fields(line: str, number: int, count: int, what: str) -> list[str]:
    fields = line.split()
    if len(fields) != count:
        raise ValueError(f"{what} line {number}: expected {count} fields, got {len(fields)}")
    return fields


def parse_run(lines: Iterable[str]) -> dict[str, list[tuple[str, float]]]:
    """Query -> [(docno, score)] in file order. Blank lines are skipped; a line without exactly
    six fields, with a non-integer rank, a non-numeric or NaN score, or a docno repeated within
    its query is a ValueError naming the (1-based) line number."""
    run: dict[str, list[tuple[str, float]]] = {}
    seen: set[tuple[str, str]] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        qid, _, doc, rank, score, _ = _fields(line, number, 6, "run")
        try:
            int(rank)
            value = float(score)
        except ValueError:
            raise ValueError(f"run line {number}: bad rank or score in {line!r}") from None
        if math.isnan(value):
            raise ValueError(f"run line {number}: NaN score")
        if (qid, doc) in seen:
            raise ValueError(f"run line {number}: duplicate docno {doc!r} for query {qid!r}")
        seen.add((qid, doc))
        run.setdefault(qid, []).append((doc, value))
    return run


def parse_qrels(lines: Iterable[str]) -> dict[str, set[str]]:
    """Query -> docnos judged relevant (relevance >= 1, trec_eval's default level). A query whose
    judgements are all 0 maps to an empty set. Blank lines are skipped; a line without exactly four
    fields, with a non-integer relevance, or repeating a docno of its query is a ValueError naming
    the (1-based) line number."""
    qrels: dict[str, set[str]] = {}
    seen: set[tuple[str, str]] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        qid, _, doc, relevance = _fields(line, number, 4, "qrels")
        try:
            level = int(relevance)
        except ValueError:
            raise ValueError(f"qrels line {number}: bad relevance {relevance!r}") from None
        if (qid, doc) in seen:
            raise ValueError(f"qrels line {number}: duplicate docno {doc!r} for query {qid!r}")
        seen.add((qid, doc))
        judged = qrels.setdefault(qid, set())
        if level >= 1:
            judged.add(doc)
    return qrels
