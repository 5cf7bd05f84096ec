"""split_sentences: the span contract for any text, and Reddit cases decided one by one."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.data.sentences import sentence_index_at, split_sentences

# Text built from the characters the splitter treats specially, plus ordinary ones.
_ALPHABET = st.sampled_from(
    list("aZ I.!?…\"'”’)*_ \n\t\r2.5😊\u200d\u200b\ufeff\u00a0eg.Mr")
    + ["e.g.", "Dr.", "...", "?!", " I "]
)
_TEXTS = st.lists(_ALPHABET, max_size=60).map("".join) | st.text(max_size=80)


def _texts(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


@settings(max_examples=400, deadline=None)
@given(_TEXTS)
def test_spans_are_ordered_stripped_and_cover_every_visible_char_once(text):
    spans = split_sentences(text)
    previous_end = 0
    covered = [0] * len(text)
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        piece = text[start:end]
        assert piece == piece.strip() and piece
        for i in range(start, end):
            covered[i] += 1
        previous_end = end
    for i, char in enumerate(text):
        assert covered[i] <= 1
        if not char.isspace():
            assert covered[i] == 1, (i, char)


@settings(max_examples=100, deadline=None)
@given(_TEXTS)
def test_deterministic_and_list_is_a_fresh_copy(text):
    first = split_sentences(text)
    first.append((-1, -1))
    assert split_sentences(text) == first[:-1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I am tired. I can't sleep.", ["I am tired.", "I can't sleep."]),
        ("i'm tired. i can't sleep", ["i'm tired.", "i can't sleep"]),  # lower-case starts
        ("I am tired.I can't sleep.", ["I am tired.", "I can't sleep."]),  # missing space
        ("at my mom's.Then we left", ["at my mom's.", "Then we left"]),
        ("He died at 91.Then it began", ["He died at 91.", "Then it began"]),
        ("why?! no way!! ok", ["why?!", "no way!!", "ok"]),
        ("I don't know... maybe not", ["I don't know... maybe not"]),  # a pause
        ("I don't know... Maybe not", ["I don't know...", "Maybe not"]),
        ("So tired… Really", ["So tired…", "Really"]),
        ("Dr. Smith and Mr. Jones came. Then left", ["Dr. Smith and Mr. Jones came.", "Then left"]),
        (
            "Small things, e.g. a walk, i.e. exercise.",
            ["Small things, e.g. a walk, i.e. exercise."],
        ),
        ("I take 2.5 mg. It helps", ["I take 2.5 mg.", "It helps"]),
        ("Go to reddit.com/r/depression now", ["Go to reddit.com/r/depression now"]),
        ("Moved to the U.S. and left", ["Moved to the U.S. and left"]),
        (
            "J. K. Rowling wrote it. Neither do I. But ok",
            ["J. K. Rowling wrote it.", "Neither do I.", "But ok"],
        ),
        (
            "Apples, pears, etc. and more. Stuff etc. Then",
            ["Apples, pears, etc. and more.", "Stuff etc.", "Then"],
        ),
        ('She said "no." Then left', ['She said "no."', "Then left"]),
        ("She said “no.” Then left", ["She said “no.”", "Then left"]),
        ("(so tired.) Yes", ["(so tired.)", "Yes"]),
        ("So happy! 😊😊 Then I left 😭", ["So happy! 😊😊", "Then I left 😭"]),
        ("I'm done 😭 I can't", ["I'm done 😭 I can't"]),
        ("line one\nline two\r\n\nline three", ["line one", "line two", "line three"]),
        ("- item one\n- item two", ["- item one", "- item two"]),
        ("  padded.   ", ["padded."]),
        ("", []),
        (" \n\t ", []),
        ("no punctuation at all", ["no punctuation at all"]),
        # invisible format characters (Cf) after the punctuation belong to the sentence before
        ("Hi.\u200b Next one.", ["Hi.\u200b", "Next one."]),
        ("Hi!\u2060\ufeff Next one.", ["Hi!\u2060\ufeff", "Next one."]),
        ("So happy! 😊\u200b Then", ["So happy! 😊\u200b", "Then"]),
        ('She said "no."\u200b Then', ['She said "no."\u200b', "Then"]),
        ("Small, e.g.\u200b a walk", ["Small, e.g.\u200b a walk"]),
        ("I don't know...\u200b maybe", ["I don't know...\u200b maybe"]),
        ("Hi. \u200bNext", ["Hi.", "\u200bNext"]),
    ],
)
def test_reddit_cases(text, expected):
    assert _texts(text) == expected


_TERMINAL_THEN_SPACE = re.compile(r"[.!?\u2026\u203c\u2047\u2048\u2049]+(?=\s)")


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_invisible_char_after_terminal_punctuation_changes_no_split(text):
    """A word joiner (U+2060, category Cf) slipped in after every run of terminal punctuation that
    a space follows leaves the sentences unchanged, up to the joiner itself."""
    marked = _TERMINAL_THEN_SPACE.sub(lambda m: m.group() + "\u2060", text)
    assert [t.replace("\u2060", "") for t in _texts(marked)] == _texts(text)


def test_sentence_index_at():
    text = "One. Two. Three."
    spans = split_sentences(text)
    assert [sentence_index_at(spans, i) for i in (0, 3, 4, 5, 8, 9, 15, 99)] == [
        0,
        0,
        1,
        1,
        1,
        2,
        2,
        2,
    ]
    assert sentence_index_at([], 0) == -1
