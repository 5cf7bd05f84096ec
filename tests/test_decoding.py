"""Vectorised span decoding against brute-force double-loop oracles (lib/evaluation/decoding.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers

from lib.data.corpus import Example, Span
from lib.data.features import build_features
from lib.errors import RunError
from lib.evaluation.decoding import (
    Prediction,
    SpanCandidates,
    select_predictions,
    select_spans,
    sentence_scores,
    span_candidates,
)
from lib.evaluation.metrics import compute_metrics, covered_sentences
from lib.evaluation.null_threshold import best_null_threshold
from lib.evaluation.scoring import check_logits
from lib.evaluation.span_search import NO_SPAN, best_spans, packed_top, window_max

LETTERS = "abcdefg"


def decode_predictions(examples, features, start, end, *, n_best, max_answer_length, **select):
    """Logits -> predictions: the two steps lib.evaluation.scoring chains."""
    candidates = span_candidates(
        examples, features, start, end, n_best=n_best, max_answer_length=max_answer_length
    )
    return select_predictions(examples, candidates, **select)


def tiny_tokenizer() -> Tokenizer:
    """WordPiece over single letters: word "abc" -> a ##b ##c, one token per character."""
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for char in LETTERS + ".":
        vocab[char] = len(vocab)
        vocab["##" + char] = len(vocab)
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


TOKENIZER = tiny_tokenizer()


def dyadic_logits(draw, shape, tie_prone: bool) -> torch.Tensor:
    """Logits whose float32 sums are exact; tie_prone draws from few values (many ties)."""
    n = int(np.prod(shape))
    if tie_prone:
        values = draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n))
        return torch.tensor(values, dtype=torch.float32).reshape(shape) / 4
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(-(2**20), 2**20, shape, generator=generator) / 2**14).float()


def model_like_logits(seed, shape, bf16: bool) -> torch.Tensor:
    """Normal logits (float32 sums round), or rounded to bfloat16 as mixed precision gives them
    (8 significant bits: many ties near the n-th best)."""
    logits = 3 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return logits.bfloat16().float() if bf16 else logits


def oracle_spans(start, end, context_start, context_end, max_answer_length):
    """Every valid (score, s, e) of one row by double loop, best first (float32 sums)."""
    spans = []
    for s in range(context_start, context_end):
        for e in range(s, min(context_end, s + max_answer_length)):
            spans.append((float(np.float32(start[s]) + np.float32(end[e])), s, e))
    return sorted(spans, key=lambda x: -x[0])


@st.composite
def window_batches(draw):
    n = draw(st.integers(1, 5))
    width = draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["dyadic", "ties", "normal", "bf16"]))
    if kind in ("dyadic", "ties"):
        start = dyadic_logits(draw, (n, width), kind == "ties")
        end = dyadic_logits(draw, (n, width), kind == "ties")
    else:
        seed = draw(st.integers(0, 2**31 - 1))
        start, end = model_like_logits(seed, (2, n, width), kind == "bf16")
    # the window's real length may be shorter than the padded width
    context_start = [draw(st.integers(1, max(1, width))) for _ in range(n)]
    context_end = [draw(st.integers(cs, max(cs, width))) for cs in context_start]
    n_best = draw(st.integers(1, 25))
    max_answer_length = draw(st.integers(1, 50))
    return start, end, context_start, context_end, n_best, max_answer_length


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 45), st.booleans(), st.integers(0, 1000))
def test_window_max_matches_loop(length, band, leftward, seed):
    values = np.random.default_rng(seed).standard_normal(length).astype(np.float32)
    if leftward:
        expected = [values[max(0, i - band + 1) : i + 1].max() for i in range(length)]
    else:
        expected = [values[i : i + band].max() for i in range(length)]
    assert np.array_equal(window_max(values, band, leftward=leftward), expected)


@settings(max_examples=250, deadline=None)
@given(window_batches())
def test_best_spans_match_brute_force(batch):
    start, end, context_start, context_end, n_best, max_answer_length = batch
    scores, starts, ends, nulls = best_spans(
        start,
        end,
        torch.tensor(context_start),
        torch.tensor(context_end),
        n_best=n_best,
        max_answer_length=max_answer_length,
    )
    assert scores.shape == starts.shape == ends.shape == (len(start), n_best)
    for row in range(len(start)):
        oracle = oracle_spans(
            start[row].numpy(),
            end[row].numpy(),
            context_start[row],
            context_end[row],
            max_answer_length,
        )
        oracle_score = {(s, e): score for score, s, e in oracle}
        got = [
            (float(scores[row, j]), int(starts[row, j]), int(ends[row, j]))
            for j in range(n_best)
            if torch.isfinite(scores[row, j])
        ]
        assert len(got) == min(n_best, len(oracle))
        assert float(nulls[row]) == float(start[row, 0] + end[row, 0])
        if not oracle:
            assert (starts[row] == -1).all() and (ends[row] == -1).all()
            continue
        assert len({(s, e) for _, s, e in got}) == len(got)  # no span twice
        for score, s, e in got:
            assert context_start[row] <= s <= e < context_end[row]
            assert e - s < max_answer_length
            assert oracle_score[(s, e)] == score
        # the whole n-best list is exact, ties included (which of equal spans is listed is free)
        assert [g[0] for g in got] == [o[0] for o in oracle[: len(got)]]


def oracle_top_scores(start, end, context_start, context_end, max_answer_length, n_best):
    """(N, n_best) best span scores per row by scoring every (s, e) at once (-inf: none)."""
    s, e = np.ogrid[: start.shape[1], : start.shape[1]]
    scores = start[:, :, None] + end[:, None, :]  # (N, T, T) float32 sums
    cs, ce = context_start[:, None, None], context_end[:, None, None]
    valid = (cs <= s) & (s <= e) & (e < ce) & (e - s < max_answer_length)
    flat = np.where(valid, scores, -np.inf).reshape(len(start), -1)
    return -np.sort(-flat, axis=1)[:, :n_best]


@pytest.mark.parametrize("kind", ["normal", "bf16", "constant"])
def test_many_windows_and_ties_match_brute_force(kind):
    # more rows than one search step, and ties that need more candidates (bf16) or all of them
    n, width, n_best, max_answer_length = 700, 57, 20, 23
    generator = torch.Generator().manual_seed(7)
    start, end = model_like_logits(11, (2, n, width), kind == "bf16")
    if kind == "constant":
        start[:40], end[:40] = 1.0, 0.5
    context_start = torch.randint(1, 12, (n,), generator=generator)
    context_end = torch.randint(20, width + 1, (n,), generator=generator)
    scores, starts, ends, _ = best_spans(
        start,
        end,
        context_start,
        context_end,
        n_best=n_best,
        max_answer_length=max_answer_length,
    )
    expected = oracle_top_scores(
        start.numpy(),
        end.numpy(),
        context_start.numpy(),
        context_end.numpy(),
        max_answer_length,
        n_best,
    )
    assert np.array_equal(scores.numpy(), expected)
    assert bool(torch.isfinite(scores).all())  # every post here has >= n_best spans
    rows = torch.arange(n)[:, None]
    assert torch.equal(start[rows, starts] + end[rows, ends], scores)
    assert bool(((ends - starts >= 0) & (ends - starts < max_answer_length)).all())
    assert bool(((starts >= context_start[:, None]) & (ends < context_end[:, None])).all())


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(2, 70),
    st.integers(1, 30),
    st.integers(0, 8),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_packed_top_is_exact_where_it_says_so(rows, width, need, extra, ties, seed):
    need = min(need, width)
    count = min(need + extra, width)
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 3, (rows, width)) if ties else rng.standard_normal((rows, width))
    values = values.astype(np.float32)
    values[rng.random((rows, width)) < 0.2] = 4 * NO_SPAN  # no span
    top, exact = packed_top(values.copy(), need=need, count=count)
    assert top.shape == (rows, count)
    for row in range(rows):
        picked = values[row, top[row]]
        assert len(set(top[row].tolist())) == count
        assert np.array_equal(np.sort(picked)[::-1][:need], np.sort(values[row])[::-1][:need]) or (
            not exact[row]
        )
        if exact[row]:  # every value left out is below every value that made the need-th cut
            left_out = np.delete(values[row], top[row])
            cut = np.sort(values[row])[::-1][need - 1]
            assert np.all((left_out < cut) | (left_out < NO_SPAN))


@st.composite
def decode_cases(draw):
    """Examples over random letter posts, windowed with random layouts, and random logits."""
    n_examples = draw(st.integers(1, 3))
    examples = []
    for i in range(n_examples):
        words = draw(st.lists(st.text(LETTERS, min_size=1, max_size=4), min_size=1, max_size=14))
        post = " ".join(words)
        question = draw(st.text(LETTERS, max_size=5))
        examples.append(Example(f"p{i}::S", f"p{i}", "S", question, post, ()))
    max_question_length = draw(st.integers(1, 6))
    max_length = draw(st.integers(max_question_length + 5, max_question_length + 16))
    doc_stride = draw(st.integers(0, max_length - max_question_length - 4))
    features = build_features(
        examples,
        TOKENIZER,
        max_length=max_length,
        doc_stride=doc_stride,
        max_question_length=max_question_length,
    )
    width = int(features.lengths().max()) + draw(st.integers(0, 3))
    start = dyadic_logits(draw, (len(features), width), False)
    end = dyadic_logits(draw, (len(features), width), False)
    max_answer_length = draw(st.integers(1, 12))
    return examples, features, start, end, max_answer_length


def oracle_example(features, start, end, example_index, max_answer_length):
    """{(char start, char end): best score} over every window of the example, and the null."""
    spans, nulls = {}, []
    for w in features.windows_of(example_index):
        offsets = features.offsets(w)
        cs, ce = int(features.context_start[w]), int(features.context_end[w])
        nulls.append(float(start[w, 0] + end[w, 0]))
        for score, s, e in oracle_spans(
            start[w].numpy(), end[w].numpy(), cs, ce, max_answer_length
        ):
            key = (int(offsets[s, 0]), int(offsets[e, 1]))
            spans[key] = max(spans.get(key, -np.inf), score)
    return spans, min(nulls)


@settings(max_examples=120, deadline=None)
@given(decode_cases(), st.floats(-3, 3), st.booleans())
def test_decode_global_best_wins_across_windows(case, threshold, multi_span):
    examples, features, start, end, max_answer_length = case
    predictions = decode_predictions(
        examples,
        features,
        start,
        end,
        n_best=5,
        max_answer_length=max_answer_length,
        null_threshold=threshold,
        multi_span=multi_span,
        snap_to_sentence=False,
    )
    for index, ex in enumerate(examples):
        spans, null = oracle_example(features, start, end, index, max_answer_length)
        best = max(spans.values())
        prediction = predictions[ex.example_id]
        assert prediction.null_score == null
        assert prediction.best_score == best
        if null - best > threshold:
            assert prediction.spans == ()
            continue
        top = prediction.spans[0]
        assert spans[(top.start, top.end)] == top.score == best
        assert top.text == ex.context[top.start : top.end]
        for span in prediction.spans:
            assert null - span.score <= threshold
            # its best score among the windows that listed it in their n-best
            assert span.score <= spans[(span.start, span.end)]
        ordered = sorted((s.start, s.end) for s in prediction.spans)
        assert all(a[1] <= b[0] for a, b in zip(ordered, ordered[1:]))  # never overlap
        assert multi_span or len(prediction.spans) == 1


@settings(max_examples=60, deadline=None)
@given(decode_cases(), st.integers(-40, 40), st.integers(-40, 40))
def test_adding_a_constant_to_the_logits_changes_nothing(case, shift_start, shift_end):
    examples, features, start, end, max_answer_length = case
    kwargs = dict(
        n_best=4,
        max_answer_length=max_answer_length,
        null_threshold=0.5,
        multi_span=True,
        snap_to_sentence=False,
    )
    before = decode_predictions(examples, features, start, end, **kwargs)
    after = decode_predictions(
        examples, features, start + shift_start / 8, end + shift_end / 8, **kwargs
    )
    shift = (shift_start + shift_end) / 8
    for ex in examples:
        a, b = before[ex.example_id], after[ex.example_id]
        assert [(s.start, s.end) for s in a.spans] == [(s.start, s.end) for s in b.spans]
        assert b.null_score - b.best_score == a.null_score - a.best_score
        assert b.best_score == a.best_score + shift


def test_snap_to_sentence_widens_and_merges():
    post = "ab cd. ef ga. bc de."
    sentences = {"p": [(0, 6), (7, 13), (14, 20)]}
    example = Example("p::S", "p", "S", "a", post, ())
    features = build_features(
        [example], TOKENIZER, max_length=40, doc_stride=4, max_question_length=4
    )
    cs = int(features.context_start[0])
    offsets = features.offsets(0)
    token_of = {int(offsets[t, 0]): t for t in range(cs, int(features.context_end[0]))}
    start = torch.full((1, len(features.input_ids[0])), -9.0)
    end = torch.full_like(start, -9.0)
    start[0, token_of[3]], end[0, token_of[4]] = 5.0, 5.0  # "cd" in sentence 0
    start[0, token_of[10]], end[0, token_of[10] + 1] = 4.0, 4.0  # "ga" in sentence 1
    start[0, 0], end[0, 0] = 0.0, 0.0
    kwargs = dict(n_best=10, max_answer_length=10, null_threshold=0.0, sentences=sentences)
    raw = decode_predictions(
        [example], features, start, end, multi_span=True, snap_to_sentence=False, **kwargs
    )
    snapped = decode_predictions(
        [example], features, start, end, multi_span=True, snap_to_sentence=True, **kwargs
    )
    assert [(s.start, s.end) for s in raw["p::S"].spans] == [(3, 5), (10, 12)]
    assert [(s.start, s.end, s.text) for s in snapped["p::S"].spans] == [
        (0, 6, "ab cd."),
        (7, 13, "ef ga."),
    ]
    # a span crossing a sentence boundary takes both sentences, merged with its neighbours
    start[0, token_of[3]], end[0, token_of[10] + 1] = 9.0, 9.0  # "cd. ef ga"
    snapped = decode_predictions(
        [example], features, start, end, multi_span=True, snap_to_sentence=True, **kwargs
    )
    assert [(s.start, s.end) for s in snapped["p::S"].spans] == [(0, 13)]
    assert snapped["p::S"].spans[0].score == 18.0


def test_window_without_post_tokens_predicts_no_evidence():
    example = Example("p::S", "p", "S", "ab", "   ", ())
    features = build_features(
        [example], TOKENIZER, max_length=10, doc_stride=1, max_question_length=4
    )
    assert features.context_start[0] == features.context_end[0]
    logits = torch.zeros(1, len(features.input_ids[0]))
    prediction = decode_predictions(
        [example],
        features,
        logits,
        logits,
        n_best=3,
        max_answer_length=5,
        null_threshold=100.0,
        multi_span=False,
        snap_to_sentence=False,
    )["p::S"]
    assert prediction == Prediction(spans=(), null_score=0.0, best_score=float("-inf"))


@settings(max_examples=25, deadline=None)
@given(
    decode_cases(), st.booleans(), st.booleans(), st.sampled_from(["f1", "sentence_f1", "exact"])
)
def test_chosen_null_threshold_maximises_the_metric(case, multi_span, snap, metric):
    examples, features, start, end, max_answer_length = case
    # give half of the examples a gold span (their first word) and sentences of two words
    examples = [
        Example(
            ex.example_id,
            ex.post_id,
            ex.symptom,
            ex.question,
            ex.context,
            (Span(0, len(ex.context.split()[0]), ex.context.split()[0]),) if i % 2 == 0 else (),
        )
        for i, ex in enumerate(examples)
    ]
    sentences = {}
    for ex in examples:
        bounds, position = [], 0
        for word in ex.context.split(" "):
            bounds.append((position, position + len(word)))
            position += len(word) + 1
        sentences[ex.post_id] = [
            (a[0], b[1]) for a, b in zip(bounds[::2], bounds[1::2] + bounds[-1:])
        ]
    kwargs = dict(
        n_best=4,
        max_answer_length=max_answer_length,
        multi_span=multi_span,
        snap_to_sentence=snap,
        sentences=sentences,
    )

    def value(threshold):
        predictions = decode_predictions(
            examples, features, start, end, null_threshold=threshold, **kwargs
        )
        return compute_metrics(examples, predictions, sentences)[metric]

    candidates = span_candidates(
        examples, features, start, end, n_best=4, max_answer_length=max_answer_length
    )
    chosen = best_null_threshold(
        examples,
        candidates,
        multi_span=multi_span,
        snap_to_sentence=snap,
        sentences=sentences,
        metric=metric,
    )
    gaps = sorted({c.null_score - score for c in candidates for score in c.scores.tolist()})
    brute = max([value(g) for g in gaps] + [value(gaps[0] - 1.0)]) if gaps else value(0.0)
    assert value(chosen) == pytest.approx(brute)


@st.composite
def _candidates_and_sentences(draw):
    """A post of length n cut into sentences, and merged candidates: distinct spans, best first."""
    n = draw(st.integers(1, 40))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=6))) if n > 1 else []
    bounds = [0, *cuts, n]
    sentences = [(a, b) for a, b in zip(bounds, bounds[1:])]
    spans = draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, n)), max_size=12, unique=True)
    )
    spans = [(s, e) for s, e in spans if s < e]
    scores = sorted(
        draw(
            st.lists(
                st.sampled_from([-3.0, -1.0, 0.0, 0.5, 2.0]),
                min_size=len(spans),
                max_size=len(spans),
            )
        ),
        reverse=True,
    )
    candidates = SpanCandidates(
        "p::S", "x" * n, draw(st.sampled_from([-1.0, 0.0, 1.5])),
        np.array([s for s, _ in spans], dtype=np.int64),
        np.array([e for _, e in spans], dtype=np.int64),
        np.array(scores, dtype=np.float64),
    )  # fmt: skip
    return candidates, sentences


@settings(max_examples=300, deadline=None)
@given(
    _candidates_and_sentences(),
    st.sampled_from([-2.0, 0.0, 1.0, 3.0]),
    st.booleans(),
    st.booleans(),
)
def test_sentence_scores_agree_with_the_evidence_they_explain(case, threshold, multi, snap):
    candidates, sentences = case
    scores = sentence_scores(candidates, sentences, snap_to_sentence=snap)
    assert len(scores) == len(sentences)
    # the oracle: the definition, one sentence and one candidate at a time
    for i, (a, b) in enumerate(sentences):
        best = None
        for s, e, score in zip(candidates.starts, candidates.ends, candidates.scores):
            overlap = max(0, min(e, b) - max(s, a))
            if (overlap > 0) if snap else (2 * overlap >= b - a):
                best = score if best is None else max(best, score)
        assert scores[i] == (None if best is None else best - candidates.null_score)
    prediction = select_spans(
        candidates, null_threshold=threshold, multi_span=multi, snap_to_sentence=snap,
        sentences=sentences,
    )  # fmt: skip
    for span in prediction.spans:  # each predicted span passed: the sentences it makes evidence
        for i in covered_sentences([(span.start, span.end)], sentences):
            assert scores[i] is not None and scores[i] >= -threshold
    if snap:  # snapped spans cover whole sentences: evidence is exactly their sentences
        evidence = covered_sentences([(s.start, s.end) for s in prediction.spans], sentences)
        assert all(scores[i] >= -threshold for i in evidence)
        if prediction.spans and not multi:  # the best span's sentences are the best scored
            top = max(s for s in scores if s is not None)
            assert all(scores[i] == top for i in evidence)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_infinite_logits_are_a_run_error_not_a_crash(bad):
    """-inf marks padding and is fine; NaN or +inf (an overflow) stops with one line."""
    start = torch.full((3, 7), float("-inf"))
    start[:, :5] = 0.0
    end = start.clone()
    check_logits(start, end)
    end[1, 2] = bad
    with pytest.raises(RunError, match=r"NaN or infinite in 1 of 3 windows"):
        check_logits(start, end)


@pytest.mark.parametrize("snap", [False, True])
def test_sentence_scores_in_blocks_equal_scores_at_once(monkeypatch, snap):
    """A huge post's sentences are scored in blocks (bounded memory); any block size gives the
    scores of one block holding them all."""
    import lib.evaluation.decoding as decoding

    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(np.arange(1, 400), size=41, replace=False))
    sentences = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]
    starts = rng.integers(0, 390, size=60)
    ends = starts + rng.integers(1, 30, size=60)
    scores = np.sort(rng.normal(size=60))[::-1]
    cand = SpanCandidates("e", "x" * 420, 0.3, starts, ends, scores)
    whole = sentence_scores(cand, sentences, snap_to_sentence=snap)
    assert any(s is not None for s in whole) and (snap or any(s is None for s in whole))
    for block in (1, 7, 40):
        monkeypatch.setattr(decoding, "SENTENCE_BLOCK", block)
        assert sentence_scores(cand, sentences, snap_to_sentence=snap) == whole
