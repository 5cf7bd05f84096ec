"""Sentence-ranking metrics in the style of eRisk 2023 Task 1 ("Search for symptoms of depression").

eRisk 2023 Task 1 (Parapar, Martin-Rodilla, Losada, Crestani, "Overview of eRisk 2023: Early Risk
Prediction on the Internet", CLEF 2023) ranks sentences for each symptom and scores the top 1000
with trec_eval's AP, R-Precision, P@10 and NDCG@1000. Here every sentence of every post gets a
score per symptom (a "query"), a sentence is identified by `(post_id, index)`, and it is relevant
for a symptom when it is gold evidence (binary relevance). Definitions follow trec_eval
(https://github.com/usnistgov/trec_eval), for a ranking d_1 .. d_n, rel_i in {0, 1} and
R = number of relevant sentences (also those never scored, so never ranked):

- AP (m_map.c):        AP = (1 / R) * sum_{i <= n, rel_i = 1} (sum_{j <= i} rel_j) / i
- R-Precision (m_Rprec.c): RP = (sum_{i <= min(n, R)} rel_i) / R
- P@k (m_P.c):         P@k = (sum_{i <= min(n, k)} rel_i) / k  (missing ranks count as non-relevant)
- NDCG@k (m_ndcg_cut.c, `ndcg_cut.k`): DCG@k = sum_{i <= min(n, k)} rel_i / log2(i + 1) (1-based i),
  IDCG@k = sum_{i <= min(R, k)} 1 / log2(i + 1), NDCG@k = DCG@k / IDCG@k.
  This is trec_eval 9.x as in the repository today (`gain / log2(i + 2)` with 0-based i). Older
  trec_eval sources left rank 1 undiscounted and divided by log2(rank) after it, which gives
  different numbers: name the trec_eval version when comparing.

All four are 0.0 when R = 0 (trec_eval's value), but `ranking_metrics` skips such symptoms, as
trec_eval skips queries without relevance information: their keys are absent and the means run
over the remaining symptoms only. When no symptom has a relevant sentence the means are absent too
(no 0 or 1 is invented).

Ranking and depth: sentences are sorted by score descending, ties by post_id ascending, then
sentence index ascending (deterministic; NaN scores are a ValueError). `ranking_metrics` truncates
each ranking to `depth` sentences (1000 by default, what an eRisk run file holds, so that
trec_eval on the files of lib.evaluation.trec gives the same numbers) before computing anything;
the NDCG cut stays at 1000 whatever the depth (with depth < 1000 it is NDCG@1000 of the truncated
ranking, as trec_eval computes it on such a file).

Two differences from running trec_eval on the exported files, both documented in
lib.evaluation.trec: trec_eval re-sorts each query by score and breaks ties by docno in
*descending* byte order, so a group of exactly equal scores that mixes relevant and non-relevant
sentences can score differently there; and trec_eval leaves out a query that has relevant
sentences but no line in the run unless it is run with `-c`, while here such a symptom counts with
all four metrics 0.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

SentenceId = tuple[str, int]

NDCG_CUTOFF = 1000
P_CUTOFF = 10
RANKING_METRICS = ("ap", "r_precision", "p_at_10", "ndcg_1000")
MEAN_NAMES = {
    "ap": "ranking_map",
    "r_precision": "ranking_r_precision",
    "p_at_10": "ranking_p_at_10",
    "ndcg_1000": "ranking_ndcg_1000",
}


def rank_sentences(scores: Mapping[SentenceId, float]) -> list[SentenceId]:
    """Sentence ids by score descending; ties by post_id ascending, then index ascending.

    A NaN score is a ValueError (it has no place in an order).
    """
    for sentence, score in scores.items():
        if math.isnan(score):
            raise ValueError(f"NaN score for sentence {sentence!r}")
    return sorted(scores, key=lambda sentence: (-scores[sentence], sentence[0], sentence[1]))


def _relevant_flags(ranked: Sequence[SentenceId], relevant: Collection[SentenceId]) -> list[bool]:
    relevant = set(relevant)
    return [sentence in relevant for sentence in ranked]


def average_precision(ranked: Sequence[SentenceId], relevant: Collection[SentenceId]) -> float:
    """trec_eval's `map` for one query: precision at each relevant rank, summed, over R.

    R counts every relevant id, ranked or not; 0.0 when R = 0. `ranked` holds distinct ids.
    """
    total_relevant = len(set(relevant))
    if total_relevant == 0:
        return 0.0
    found, summed = 0, 0.0
    for rank, is_relevant in enumerate(_relevant_flags(ranked, relevant), start=1):
        if is_relevant:
            found += 1
            summed += found / rank
    return summed / total_relevant


def r_precision(ranked: Sequence[SentenceId], relevant: Collection[SentenceId]) -> float:
    """trec_eval's `Rprec`: relevant ids among the first R ranks, over R (0.0 when R = 0).

    A ranking shorter than R is not padded out of the denominator: it stays R.
    """
    total_relevant = len(set(relevant))
    if total_relevant == 0:
        return 0.0
    return sum(_relevant_flags(ranked[:total_relevant], relevant)) / total_relevant


def precision_at(
    ranked: Sequence[SentenceId], relevant: Collection[SentenceId], k: int = P_CUTOFF
) -> float:
    """trec_eval's `P_k`: relevant ids among the first k ranks, over k (even if fewer ranked)."""
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    return sum(_relevant_flags(ranked[:k], relevant)) / k


def ndcg_at(
    ranked: Sequence[SentenceId], relevant: Collection[SentenceId], k: int = NDCG_CUTOFF
) -> float:
    """trec_eval's `ndcg_cut_k` with binary gains: DCG@k / IDCG@k, discount 1 / log2(rank + 1).

    The ideal ranking puts min(R, k) relevant ids first; 0.0 when R = 0.
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    total_relevant = len(set(relevant))
    if total_relevant == 0:
        return 0.0
    dcg = 0.0
    for rank, is_relevant in enumerate(_relevant_flags(ranked[:k], relevant), start=1):
        if is_relevant:
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(total_relevant, k) + 1))
    return dcg / ideal


def query_metrics(
    ranked: Sequence[SentenceId], relevant: Collection[SentenceId]
) -> dict[str, float]:
    """The four eRisk numbers for one (already truncated) ranking, keyed by RANKING_METRICS."""
    return {
        "ap": average_precision(ranked, relevant),
        "r_precision": r_precision(ranked, relevant),
        "p_at_10": precision_at(ranked, relevant, P_CUTOFF),
        "ndcg_1000": ndcg_at(ranked, relevant, NDCG_CUTOFF),
    }


def ranking_metrics(
    scores_by_symptom: Mapping[str, Mapping[SentenceId, float]],
    relevant_by_symptom: Mapping[str, Collection[SentenceId]],
    depth: int = 1000,
) -> dict[str, float]:
    """Per-symptom `SYMPTOM/ranking_{ap,r_precision,p_at_10,ndcg_1000}` and their means.

    Only symptoms with at least one relevant sentence are scored (the skip rule above); each is
    ranked with `rank_sentences`, truncated to `depth`, and scored with NDCG cut at 1000. A
    symptom with relevant sentences but no scores scores 0. Means (`ranking_map`,
    `ranking_r_precision`, `ranking_p_at_10`, `ranking_ndcg_1000`) are over the scored symptoms
    and absent when there are none.
    """
    if depth < 1:
        raise ValueError(f"depth must be positive, got {depth}")
    out: dict[str, float] = {}
    per_query: list[dict[str, float]] = []
    for symptom in sorted(relevant_by_symptom):
        relevant = set(relevant_by_symptom[symptom])
        if not relevant:
            continue
        ranked = rank_sentences(scores_by_symptom.get(symptom, {}))[:depth]
        values = query_metrics(ranked, relevant)
        per_query.append(values)
        out.update({f"{symptom}/ranking_{name}": value for name, value in values.items()})
    if per_query:
        for name in RANKING_METRICS:
            out[MEAN_NAMES[name]] = sum(values[name] for values in per_query) / len(per_query)
    return out
