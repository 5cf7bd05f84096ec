"""align_evidence: every rule's guarantee on random text, the fuzzy rule on edited sentences."""

from __future__ import annotations

import unicodedata

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lib.data.align import (
    RULES,
    Alignment,
    Failure,
    align_evidence,
    lower_same_length,
    normalize_text,
    normalize_with_map,
    rule_key,
    similarity,
)
from lib.data.sentences import split_sentences

THRESHOLD = 0.8

# Characters every normalisation step cares about: case, curly quotes, dashes, odd spaces,
# combining marks, a ligature that NFKC expands, a capital whose lower() is two chars.
_CHARS = list("abcXYZ .,!?'\"-\n\t") + [
    "\u2019", "\u201c", "\u201d", "\u2014", "\u2013", "\u00a0", "\u3000",
    "\u0301", "é", "ﬁ", "İ", "ß", "😊", "Ａ",
]  # fmt: skip
_TEXT = st.lists(st.sampled_from(_CHARS), min_size=1, max_size=70).map("".join)


def _check(post: str, needle: str, result) -> None:
    """The module guarantee: in bounds, and equal to the needle under the rule's key."""
    if isinstance(result, Failure):
        assert result.reason
        return
    assert isinstance(result, Alignment) and result.rule in RULES
    assert 0 <= result.start <= result.end <= len(post)
    found = post[result.start : result.end]
    if result.rule == "fuzzy":
        assert similarity(found, needle) >= THRESHOLD - 1e-9
    else:
        assert rule_key(result.rule, found) == rule_key(result.rule, needle)


@settings(max_examples=300, deadline=None)
@given(_TEXT, _TEXT, st.none() | st.integers(0, 5))
def test_any_needle_any_post_keeps_the_guarantee(post, needle, hint):
    _check(post, needle, align_evidence(post, needle, hint, fuzzy_threshold=THRESHOLD))


@st.composite
def _post_and_span(draw):
    post = draw(_TEXT)
    start = draw(st.integers(0, len(post) - 1))
    end = draw(st.integers(start + 1, len(post)))
    assume(post[start:end].strip())
    return post, post[start:end]


@settings(max_examples=300, deadline=None)
@given(_post_and_span(), st.none() | st.integers(0, 5))
def test_verbatim_span_is_exact(post_span, hint):
    post, needle = post_span
    result = align_evidence(post, needle, hint, fuzzy_threshold=THRESHOLD)
    assert isinstance(result, Alignment) and result.rule == "exact"
    assert post[result.start : result.end] == needle.strip()


@settings(max_examples=300, deadline=None)
@given(_post_and_span(), st.randoms(use_true_random=False))
def test_recased_span_is_found_case_insensitively(post_span, rnd):
    post, needle = post_span
    recased = "".join(
        c.upper() if rnd.random() < 0.5 and len(c.upper()) == 1 else c for c in needle
    )
    result = align_evidence(post, recased, None, fuzzy_threshold=THRESHOLD)
    assert isinstance(result, Alignment) and result.rule in ("exact", "case_insensitive")
    _check(post, recased, result)


_FOLDED = {"\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": "-", "\u2013": "-"}


@settings(max_examples=300, deadline=None)
@given(_post_and_span(), st.randoms(use_true_random=False))
def test_requoted_respaced_span_is_found_normalized(post_span, rnd):
    post, needle = post_span
    start = post.index(needle)
    # a span that cuts a letter from its accent is not made of whole characters
    assume(not any(unicodedata.combining(c) for c in post[start : start + 1]))
    assume(not any(unicodedata.combining(c) for c in post[start + len(needle) :][:1]))
    # fold typography and stretch whitespace the way an annotation tool would
    edited = "".join(_FOLDED.get(c, c) for c in needle)
    edited = "".join(c + (" " if c == " " and rnd.random() < 0.5 else "") for c in edited)
    result = align_evidence(post, edited, None, fuzzy_threshold=THRESHOLD)
    assume(normalize_text(edited))  # e.g. a lone combining mark normalises to nothing visible
    assert isinstance(result, Alignment) and result.rule in RULES[:3]
    _check(post, edited, result)


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from(list("aAeé\u0301 \t\u00a0'\u2019-\u2014xY")), max_size=40))
def test_normalize_matches_a_slow_oracle(text):
    oracle = unicodedata.normalize("NFKC", text)
    oracle = oracle.translate(str.maketrans({"\u2019": "'", "\u2014": "-"})).lower()
    assert normalize_text(text) == " ".join(oracle.split())
    out, starts, ends = normalize_with_map(text)
    assert len(out) == len(starts) == len(ends)
    assert all(0 <= s < e <= len(text) for s, e in zip(starts, ends))
    assert list(starts) == sorted(starts)


def test_lower_same_length_keeps_offsets():
    text = "İstanbul ẞ ABC"
    assert len(lower_same_length(text)) == len(text)
    assert lower_same_length("ABC") == "abc"


# ---------------------------------------------------------------- the fuzzy rule

_SENTENCES = [
    "I have not been able to sleep properly for about three weeks now.",
    "My manager keeps giving me extra work and I never get a break.",
    "We adopted a small grey cat from the shelter in the spring.",
    "Nothing I used to enjoy gives me any pleasure these days at all.",
    "I really cannot concentrate on my lectures or remember what I read.",
    "Last summer my whole family drove up to the lake for a week.",
    "Honestly I feel like a complete failure and a burden to everyone.",
    "The bus to the office takes almost an hour every single morning.",
    "I keep thinking that everyone would be better off without me.",
    "My appetite is gone and I have lost a lot of weight since January.",
]
_UNRELATED = [
    "The quarterly budget review meeting was moved to Thursday afternoon.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Please remember to water the tomatoes while we are on holiday.",
]
_SWAPS = {"really": "truly", "whole": "entire", "small": "little", "keeps": "kept",
          "properly": "well", "complete": "total", "almost": "nearly", "gone": "missing",
          "about": "around", "never": "rarely"}  # fmt: skip


def _perturb(sentence: str, kinds: list[str], rnd) -> str:
    words = sentence.split(" ")
    for kind in kinds:
        if kind == "case":
            words = [w.lower() if rnd.random() < 0.5 else w.upper() for w in words]
        elif kind == "space":
            i = rnd.randrange(1, len(words))
            words[i] = " \n " + words[i]
        elif kind == "punct":
            words[-1] = words[-1].rstrip(".") + rnd.choice(["!", "", " ...", "?!"])
        elif kind == "quote":
            words = [w.replace("I", "\u201cI", 1) if w == "I" else w for w in words]
            words[-1] = words[-1] + "\u201d"
        elif kind == "swap":
            spots = [i for i, w in enumerate(words) if w.lower() in _SWAPS]
            if spots:
                i = rnd.choice(spots)
                words[i] = _SWAPS[words[i].lower()]
    return " ".join(words)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(_SENTENCES))), min_size=2, max_size=8, unique=True),
    st.data(),
    st.lists(st.sampled_from(["case", "space", "punct", "quote", "swap"]), min_size=1, max_size=3),
    st.randoms(use_true_random=False),
)
def test_edited_sentence_binds_to_its_own_sentence(order, data, kinds, rnd):
    post = " ".join(_SENTENCES[i] for i in order)
    k = data.draw(st.integers(0, len(order) - 1))
    hint = data.draw(st.sampled_from([k, None, (k + 1) % len(order)]))
    edited = _perturb(_SENTENCES[order[k]], kinds, rnd)
    result = align_evidence(post, edited, hint, fuzzy_threshold=THRESHOLD)
    assert isinstance(result, Alignment), (edited, result)
    start, end = split_sentences(post)[k]
    assert (result.start, result.end) == (start, end) or (
        result.rule != "fuzzy" and start <= result.start and result.end <= end
    )
    _check(post, edited, result)


@settings(max_examples=50, deadline=None)
@given(st.permutations(range(len(_SENTENCES))), st.sampled_from(_UNRELATED))
def test_unrelated_sentence_is_rejected(order, unrelated):
    post = " ".join(_SENTENCES[i] for i in order)
    result = align_evidence(post, unrelated, 0, fuzzy_threshold=THRESHOLD)
    assert isinstance(result, Failure) and "0.80" in result.reason


def test_same_topic_paraphrase_stays_below_the_default_threshold():
    # why 0.8: a rewrite about the same symptom is not the annotated sentence
    pairs = [
        ("I can't sleep at night anymore.", "I sleep all day and never feel rested."),
        ("I feel worthless.", "I feel like a burden to everyone."),
        ("I have no energy at all.", "I have had so much energy lately!"),
    ]
    for a, b in pairs:
        assert similarity(a, b) < THRESHOLD


def test_one_swapped_word_stays_above_the_default_threshold():
    a = "I have not been able to sleep properly for about three weeks now."
    assert similarity(a, a.replace("properly", "well")) >= 0.85
    assert similarity(a, a.replace(".", "!")) >= 0.95


def test_several_exact_hits_take_the_hinted_sentence():
    post = "I feel sad. Work was ok. I feel sad. Then dinner. I feel sad."
    spans = split_sentences(post)
    for hint, index in [(0, 0), (2, 2), (3, 2), (4, 4), (None, 0), (99, 4)]:
        result = align_evidence(post, "I feel sad.", hint, fuzzy_threshold=THRESHOLD)
        assert (result.rule, result.start) == ("exact", spans[index][0])


def test_rules_fire_in_order():
    post = "My Mood is “low” \u2014 always.  I can’t  focus on anything at work."
    cases = {
        "My Mood is “low”": "exact",
        "my mood is “LOW”": "case_insensitive",
        'my mood is "low" - always.': "normalized",
        "I can't focus on anything at my work!": "fuzzy",
    }
    for needle, rule in cases.items():
        result = align_evidence(post, needle, 0, fuzzy_threshold=THRESHOLD)
        assert isinstance(result, Alignment) and result.rule == rule, (needle, result)
        _check(post, needle, result)


def test_fuzzy_finds_a_stretch_inside_a_longer_sentence():
    # the annotator's splitter cut a sentence that ours keeps whole
    post = "Work is fine. I was thinking about it... and honestly I can not sleep at night anymore"
    result = align_evidence(post, "I cannot sleep at night anymore.", 1, fuzzy_threshold=THRESHOLD)
    assert isinstance(result, Alignment) and result.rule == "fuzzy"
    assert post[result.start : result.end] == "I can not sleep at night anymore"


def test_empty_needle_fails():
    assert isinstance(align_evidence("text", "  ", 0, fuzzy_threshold=0.8), Failure)
