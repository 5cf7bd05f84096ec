"""Evaluation metrics (DESIGN §5): SQuAD v2.0 exact/F1 and sentence-level evidence P/R/F1.

SQuAD numbers follow the official `evaluate-v2.0.py` line by line: answers are normalised (lower
case, ASCII `string.punctuation` removed -- curly quotes and dashes stay --, articles a/an/the
removed, whitespace collapsed); gold answers that normalise to "" are dropped and an example left
with none is scored against "" (only an empty prediction matches); F1 is token overlap with
multiset counts; the max over gold answers is taken; results are on a 0-100 scale, overall and
split into HasAns (the example has evidence) / NoAns. Here every gold span's text is one gold
answer, and the prediction text is the highest-scoring predicted span ("" for no evidence).

Sentence-level evidence (0-1 scale) is the clinically meaningful number: micro-averaged over
post x symptom x sentence. Spans *count for* a sentence when together (their union) they cover
at least half of that sentence's characters (2 * overlap >= sentence length); the same rule maps
gold and predicted spans to sentences. Zero denominators: a ratio whose denominator is 0 is 1.0
when nothing was predicted and nothing was gold, else 0.0 (so precision with no predictions but
some gold is 0, and a symptom with no gold and no predictions scores 1.0 everywhere). An empty
HasAns/NoAns group reports exact = f1 = 0.0 with total 0 (the official script omits the keys).

Every metric is a function of summed per-example rows (`score_example`), so the null-threshold
sweep (lib.evaluation.null_threshold) re-aggregates cheaply (`MetricAggregator`) per step.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from lib.data.corpus import Example
from lib.evaluation.ranking import MEAN_NAMES

RANKING_MEANS = tuple(MEAN_NAMES.values())  # ranking_map, ranking_r_precision, ...

METRIC_NAMES = (
    "exact",
    "f1",
    "HasAns_exact",
    "HasAns_f1",
    "NoAns_exact",
    "NoAns_f1",
    "sentence_precision",
    "sentence_recall",
    "sentence_f1",
)
PER_SYMPTOM_METRICS = ("sentence_precision", "sentence_recall", "sentence_f1")
SCORE_COLUMNS = ("exact", "f1", "true_positive", "predicted", "gold")  # one score_example row

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def is_valid_metric(name: str, symptoms: Iterable[str]) -> bool:
    """True for METRIC_NAMES, the ranking means (lib.evaluation.ranking) and for
    "{SYMPTOM}/sentence_precision|recall|f1"."""
    if name in METRIC_NAMES or name in RANKING_MEANS:
        return True
    symptom, _, metric = name.partition("/")
    return metric in PER_SYMPTOM_METRICS and symptom in set(symptoms)


def normalize_answer(text: str) -> str:
    """Official SQuAD normalisation: lower, drop ASCII punctuation, articles, extra whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def squad_exact(gold: str, prediction: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(prediction))


def squad_f1(gold: str, prediction: str) -> float:
    gold_tokens, pred_tokens = _tokens(gold), _tokens(prediction)
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(example: Example) -> list[str]:
    """The official script's gold list: non-empty-after-normalisation texts, else [""]."""
    return [span.text for span in example.answers if normalize_answer(span.text)] or [""]


def covered_sentences(
    spans: Iterable[tuple[int, int]], sentences: Sequence[tuple[int, int]]
) -> set[int]:
    """Indices of the (non-empty) sentences whose characters the spans cover at least half of.

    Coverage is of the union of the spans, so overlapping gold spans are not counted twice and
    two adjacent predicted pieces of one sentence count together.
    """
    union: list[list[int]] = []
    for start, end in sorted(spans):
        if union and start <= union[-1][1]:
            union[-1][1] = max(union[-1][1], end)
        elif end > start:
            union.append([start, end])
    covered = set()
    for index, (s_start, s_end) in enumerate(sentences):
        overlap = sum(max(0, min(end, s_end) - max(start, s_start)) for start, end in union)
        if s_end > s_start and 2 * overlap >= s_end - s_start:
            covered.add(index)
    return covered


def score_example(example: Example, prediction, sentences: Sequence[tuple[int, int]]) -> np.ndarray:
    """One row (SCORE_COLUMNS): exact and f1 in 0-1, true-positive / predicted / gold sentence
    counts. `prediction` is a lib.evaluation.decoding.Prediction; `sentences` the post's sentence spans."""
    best = max(prediction.spans, key=lambda span: span.score, default=None)
    text = best.text if best is not None else ""
    golds = gold_answers(example)
    gold = covered_sentences(((s.start, s.end) for s in example.answers), sentences)
    predicted = covered_sentences(((s.start, s.end) for s in prediction.spans), sentences)
    return np.array(
        [
            max(squad_exact(g, text) for g in golds),
            max(squad_f1(g, text) for g in golds),
            len(gold & predicted),
            len(predicted),
            len(gold),
        ],
        dtype=np.float64,
    )


def _ratio(numerator: float, denominator: float, predicted: float, gold: float) -> float:
    if denominator > 0:
        return float(numerator / denominator)
    return 1.0 if predicted == 0 and gold == 0 else 0.0


def sentence_scores(true_positive: float, predicted: float, gold: float) -> dict[str, float]:
    """Micro precision / recall / F1 from summed counts (zero-denominator rule above)."""
    return {
        "sentence_precision": _ratio(true_positive, predicted, predicted, gold),
        "sentence_recall": _ratio(true_positive, gold, predicted, gold),
        "sentence_f1": _ratio(2 * true_positive, predicted + gold, predicted, gold),
    }


class MetricAggregator:
    """Turns per-example score rows (E, 5) into the flat metric dict. Built once per example
    list so that a threshold sweep re-aggregates with a few numpy sums."""

    def __init__(self, examples: Sequence[Example]):
        self.has_answer = np.array([bool(ex.answers) for ex in examples], dtype=bool)
        self.symptoms = sorted({ex.symptom for ex in examples})
        code = {symptom: i for i, symptom in enumerate(self.symptoms)}
        self.symptom_code = np.array([code[ex.symptom] for ex in examples], dtype=np.int64)

    def __call__(self, rows: np.ndarray) -> dict[str, float]:
        """Keys: exact, f1, total, HasAns_*/NoAns_* (exact, f1 in 0-100, total = count; 0.0 for
        an empty group), sentence_precision/recall/f1 (0-1), and per symptom
        "{S}/sentence_precision|recall|f1" and "{S}/support" (gold sentences)."""
        exact, f1, true_positive, predicted, gold = rows.T if len(rows) else np.zeros((5, 0))
        metrics: dict[str, float] = {}
        for prefix, mask in (
            ("", np.ones(len(self.has_answer), dtype=bool)),
            ("HasAns_", self.has_answer),
            ("NoAns_", ~self.has_answer),
        ):
            count = int(mask.sum())
            metrics[f"{prefix}exact"] = 100.0 * exact[mask].sum() / count if count else 0.0
            metrics[f"{prefix}f1"] = 100.0 * f1[mask].sum() / count if count else 0.0
            metrics[f"{prefix}total"] = float(count)
        metrics.update(sentence_scores(true_positive.sum(), predicted.sum(), gold.sum()))
        n = len(self.symptoms)
        per_symptom = [
            np.bincount(self.symptom_code, weights=column, minlength=n)
            for column in (true_positive, predicted, gold)
        ]
        for i, symptom in enumerate(self.symptoms):
            tp, pred, gold_count = (float(column[i]) for column in per_symptom)
            for key, value in sentence_scores(tp, pred, gold_count).items():
                metrics[f"{symptom}/{key}"] = value
            metrics[f"{symptom}/support"] = gold_count
        return {key: float(value) for key, value in metrics.items()}


def compute_metrics(
    examples: Sequence[Example],
    predictions: Mapping[str, object],
    sentences: Mapping[str, Sequence[tuple[int, int]]],
) -> dict[str, float]:
    """All metrics for `examples` given example_id -> Prediction and post_id -> sentence spans."""
    missing = [ex.example_id for ex in examples if ex.example_id not in predictions]
    assert not missing, f"no prediction for {len(missing)} examples, e.g. {missing[:3]}"
    rows = [score_example(ex, predictions[ex.example_id], sentences[ex.post_id]) for ex in examples]
    table = np.stack(rows) if rows else np.zeros((0, len(SCORE_COLUMNS)))
    return MetricAggregator(examples)(table)
