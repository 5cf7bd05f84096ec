"""Metrics (lib/evaluation/metrics.py) against the official SQuAD v2.0 script and a character-set oracle."""

from __future__ import annotations

import collections
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.data.corpus import Example, Span
from lib.evaluation.decoding import Prediction, ScoredSpan
from lib.evaluation.metrics import METRIC_NAMES, compute_metrics, is_valid_metric

# ---------------------------------------------------------------- the official evaluate-v2.0.py
# Transcribed from the official SQuAD 2.0 evaluation script `evaluate-v2.0.py` (linked from
# https://rajpurkar.github.io/SQuAD-explorer/): normalize_answer, get_tokens, compute_exact,
# compute_f1, get_raw_scores, make_eval_dict and main's HasAns/NoAns split, unchanged in logic.


def official_normalize_answer(s):
    def remove_articles(text):
        regex = re.compile(r"\b(a|an|the)\b", re.UNICODE)
        return re.sub(regex, " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_get_tokens(s):
    if not s:
        return []
    return official_normalize_answer(s).split()


def official_compute_exact(a_gold, a_pred):
    return int(official_normalize_answer(a_gold) == official_normalize_answer(a_pred))


def official_compute_f1(a_gold, a_pred):
    gold_toks = official_get_tokens(a_gold)
    pred_toks = official_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def official_eval(qas, preds):
    """qas: list of {"id", "answers": [{"text"}]}; preds: id -> text. The script's main()."""
    exact_scores, f1_scores = {}, {}
    for qa in qas:
        gold_answers = [a["text"] for a in qa["answers"] if official_normalize_answer(a["text"])]
        if not gold_answers:
            gold_answers = [""]
        a_pred = preds[qa["id"]]
        exact_scores[qa["id"]] = max(official_compute_exact(a, a_pred) for a in gold_answers)
        f1_scores[qa["id"]] = max(official_compute_f1(a, a_pred) for a in gold_answers)

    def make_eval_dict(qid_list):
        total = len(qid_list)
        return {
            "exact": 100.0 * sum(exact_scores[k] for k in qid_list) / total,
            "f1": 100.0 * sum(f1_scores[k] for k in qid_list) / total,
            "total": total,
        }

    out = make_eval_dict([qa["id"] for qa in qas])
    has_ans = [qa["id"] for qa in qas if qa["answers"]]
    no_ans = [qa["id"] for qa in qas if not qa["answers"]]
    if has_ans:
        out.update({f"HasAns_{k}": v for k, v in make_eval_dict(has_ans).items()})
    if no_ans:
        out.update({f"NoAns_{k}": v for k, v in make_eval_dict(no_ans).items()})
    return out


# ---------------------------------------------------------------- helpers

PIECES = [
    "a",
    "an",
    "the",
    "The",
    "A",
    "cat",
    "Cat",
    "sat",
    "tired",
    "tired—exhausted",
    "“quoted”",
    "don’t",
    "don't",
    "‘s’",
    "–",
    "—",
    "...",
    "!",
    ",",
    "(x)",
    "naïve",
    "Æther",
    "ßig",
    "İ",
    "an.",
    "the-end",
    "3.5",
    "😢",
    "",
    " ",
    "\t",
    "\n",
    "\u00a0",
]


def text_strategy():
    pieces = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=8)
    return pieces.map(" ".join)


def prediction_of(texts_and_scores):
    spans = tuple(ScoredSpan(0, len(t), t, s) for t, s in texts_and_scores)
    best = max((s for _, s in texts_and_scores), default=float("-inf"))
    return Prediction(spans=spans, null_score=0.0, best_score=best)


def example(example_id, answers, post_id="p", symptom="S", context=""):
    spans = tuple(Span(start, end, text) for start, end, text in answers)
    return Example(example_id, post_id, symptom, "q", context, spans)


# ---------------------------------------------------------------- SQuAD


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(text_strategy(), max_size=3),  # gold answer texts (none = no evidence)
            st.lists(st.tuples(text_strategy(), st.floats(-5, 5)), max_size=3),  # predicted spans
        ),
        min_size=1,
        max_size=6,
    )
)
def test_squad_scores_equal_the_official_script(cases):
    examples, predictions, qas, preds = [], {}, [], {}
    for i, (golds, predicted) in enumerate(cases):
        examples.append(example(f"q{i}", [(0, 1, g) for g in golds]))
        predictions[f"q{i}"] = prediction_of(predicted)
        qas.append({"id": f"q{i}", "answers": [{"text": g} for g in golds]})
        best = max(predicted, key=lambda p: p[1])[0] if predicted else ""
        preds[f"q{i}"] = best
    ours = compute_metrics(examples, predictions, {"p": []})
    official = official_eval(qas, preds)
    for key, value in official.items():
        assert ours[key] == pytest.approx(value), key
    for prefix in ("HasAns_", "NoAns_"):
        if f"{prefix}total" not in official:
            assert ours[f"{prefix}total"] == 0 and ours[f"{prefix}exact"] == 0.0


@pytest.mark.parametrize(
    ("gold", "prediction", "exact", "f1"),
    [
        (["The cat sat on the mat."], "cat sat on mat", 100.0, 100.0),
        (["the cat sat"], "a cat", 0.0, 200 / 3),
        (["“hello” world"], "hello world", 0.0, 50.0),  # curly quotes are not ASCII punctuation
        (["tired—exhausted"], "tired exhausted", 0.0, 0.0),  # nor is the em-dash
        (["tired-exhausted"], "tiredexhausted", 100.0, 100.0),  # the ASCII hyphen is dropped
        ([], "", 100.0, 100.0),  # no evidence, none predicted
        ([], "anything", 0.0, 0.0),
        (["The."], "", 100.0, 100.0),  # normalises to "": scored as no-answer (official quirk)
        (["cat cat dog", "bird"], "cat dog dog", 0.0, 200 / 3),  # max over golds, multiset overlap
        (["x y"], "", 0.0, 0.0),
    ],
)
def test_squad_hand_computed(gold, prediction, exact, f1):
    ex = example("q", [(0, 1, g) for g in gold])
    predicted = prediction_of([(prediction, 1.0)] if prediction else [])
    metrics = compute_metrics([ex], {"q": predicted}, {"p": []})
    assert metrics["exact"] == pytest.approx(exact)
    assert metrics["f1"] == pytest.approx(f1)
    group = "HasAns_" if gold else "NoAns_"
    assert metrics[f"{group}f1"] == pytest.approx(f1) and metrics[f"{group}total"] == 1


def test_squad_text_is_the_highest_scoring_span():
    ex = example("q", [(0, 1, "fatigue")])
    predicted = prediction_of([("nothing", 1.0), ("fatigue", 3.0), ("other", 2.0)])
    assert compute_metrics([ex], {"q": predicted}, {"p": []})["exact"] == 100.0


# ---------------------------------------------------------------- sentence level


def oracle_sentences(spans, sentences):
    marked = {c for start, end in spans for c in range(start, end)}
    covered = set()
    for index, (s_start, s_end) in enumerate(sentences):
        chars = set(range(s_start, s_end))
        if chars and 2 * len(chars & marked) >= len(chars):
            covered.add(index)
    return covered


def oracle_prf(tp, predicted, gold):
    if predicted == 0 and gold == 0:
        return 1.0, 1.0, 1.0
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@st.composite
def sentence_cases(draw):
    n_posts = draw(st.integers(1, 3))
    sentences, examples, predictions = {}, [], {}
    for p in range(n_posts):
        cuts = sorted(set(draw(st.lists(st.integers(0, 60), max_size=8))) | {0, 60})
        sentences[f"p{p}"] = [
            (a, b) for a, b in zip(cuts, cuts[1:]) if draw(st.booleans()) or b > a
        ]
        for symptom in draw(st.lists(st.sampled_from("ABC"), min_size=1, max_size=3, unique=True)):
            spans = draw(st.lists(st.tuples(st.integers(0, 59), st.integers(1, 30)), max_size=3))
            golds = [(s, min(60, s + n), "x") for s, n in spans]
            spans = draw(st.lists(st.tuples(st.integers(0, 59), st.integers(1, 30)), max_size=3))
            predicted = [ScoredSpan(s, min(60, s + n), "x", 1.0) for s, n in spans]
            ex = example(f"p{p}::{symptom}", golds, post_id=f"p{p}", symptom=symptom)
            examples.append(ex)
            predictions[ex.example_id] = Prediction(tuple(predicted), 0.0, 1.0)
    return examples, predictions, sentences


@settings(max_examples=200, deadline=None)
@given(sentence_cases())
def test_sentence_metrics_equal_a_character_set_oracle(case):
    examples, predictions, sentences = case
    metrics = compute_metrics(examples, predictions, sentences)
    totals = collections.defaultdict(lambda: [0, 0, 0])
    for ex in examples:
        sents = sentences[ex.post_id]
        gold = oracle_sentences([(s.start, s.end) for s in ex.answers], sents)
        predicted = oracle_sentences(
            [(s.start, s.end) for s in predictions[ex.example_id].spans], sents
        )
        for key in ("", ex.symptom):
            totals[key][0] += len(gold & predicted)
            totals[key][1] += len(predicted)
            totals[key][2] += len(gold)
    for key, (tp, predicted, gold) in totals.items():
        prefix = f"{key}/" if key else ""
        expected = oracle_prf(tp, predicted, gold)
        got = tuple(metrics[f"{prefix}sentence_{m}"] for m in ("precision", "recall", "f1"))
        assert got == pytest.approx(expected)
        if key:
            assert metrics[f"{key}/support"] == gold
    assert set(METRIC_NAMES) <= set(metrics)


def test_sentence_metrics_hand_computed():
    sentences = {"p": [(0, 10), (11, 20), (21, 30)]}
    gold = [(0, 10, "g"), (21, 30, "g")]
    # (11, 25) covers all of sentence 1 but only 4 of the 9 characters of sentence 2
    far = {"p::S": Prediction((ScoredSpan(11, 25, "t", 1.0),), 0.0, 1.0)}
    metrics = compute_metrics([example("p::S", gold)], far, sentences)
    assert (metrics["sentence_precision"], metrics["sentence_recall"], metrics["sentence_f1"]) == (
        0,
        0,
        0,
    )
    # (0, 16) covers sentence 0 and 5 of 9 characters of sentence 1: predicted {0, 1}, gold {0, 2}
    near = {"p::S": Prediction((ScoredSpan(0, 16, "t", 1.0),), 0.0, 1.0)}
    metrics = compute_metrics([example("p::S", gold)], near, sentences)
    assert (
        metrics["sentence_precision"] == metrics["sentence_recall"] == metrics["sentence_f1"] == 0.5
    )
    assert metrics["S/sentence_f1"] == 0.5 and metrics["S/support"] == 2
    # two pieces of sentence 2 (3 + 2 of 9 characters) count together
    pieces = (ScoredSpan(21, 24, "t", 2.0), ScoredSpan(26, 28, "t", 1.0))
    metrics = compute_metrics(
        [example("p::S", gold)], {"p::S": Prediction(pieces, 0.0, 2.0)}, sentences
    )
    assert metrics["sentence_precision"] == 1.0 and metrics["sentence_recall"] == 0.5


def test_zero_denominator_conventions():
    sentences = {"p": [(0, 10)]}
    nothing = Prediction((), 0.0, float("-inf"))
    something = Prediction((ScoredSpan(0, 10, "t", 1.0),), 0.0, 1.0)
    quiet = compute_metrics([example("p::A", [])], {"p::A": nothing}, sentences)
    assert quiet["sentence_precision"] == quiet["sentence_recall"] == quiet["sentence_f1"] == 1.0
    missed = compute_metrics([example("p::A", [(0, 10, "g")])], {"p::A": nothing}, sentences)
    assert missed["sentence_precision"] == missed["sentence_recall"] == missed["sentence_f1"] == 0.0
    spurious = compute_metrics([example("p::A", [])], {"p::A": something}, sentences)
    assert (
        spurious["sentence_precision"]
        == spurious["sentence_recall"]
        == spurious["sentence_f1"]
        == 0.0
    )
    assert quiet["HasAns_total"] == 0 and quiet["HasAns_f1"] == 0.0 and quiet["NoAns_f1"] == 100.0


def test_metric_names_are_validated():
    symptoms = ["ANHEDONIA", "FATIGUE"]
    for name in METRIC_NAMES:
        assert is_valid_metric(name, symptoms)
    assert is_valid_metric("FATIGUE/sentence_f1", symptoms)
    assert is_valid_metric("ANHEDONIA/sentence_recall", symptoms)
    assert not is_valid_metric("SLEEP_ISSUES/sentence_f1", symptoms)
    assert not is_valid_metric("FATIGUE/exact", symptoms)
    assert not is_valid_metric("FATIGUE/support", symptoms)
    assert not is_valid_metric("loss", symptoms)
    assert not is_valid_metric("sentence_F1", symptoms)
