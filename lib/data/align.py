"""Evidence alignment: find an annotation's `sentence_text` in its post as character offsets.

DESIGN §3. The rules are tried in order and the first that fires is recorded:

1. `exact`            -- the annotation (stripped of surrounding whitespace) occurs verbatim;
2. `case_insensitive` -- it occurs up to letter case;
3. `normalized`       -- it occurs after Unicode NFKC, folding curly quotes/apostrophes/dashes to
                         ASCII, lower-casing and collapsing whitespace runs; offsets are mapped
                         back to the original text through an index map;
4. `fuzzy`            -- the post's sentences (`lib.data.sentences`) and runs of 2-3 adjacent
                         sentences are scored against the annotation with difflib's
                         SequenceMatcher ratio on normalised text; the best one wins if its ratio
                         reaches `fuzzy_threshold`. Only if none does, the best-matching stretch
                         inside each sentence is scored the same way (for annotations cut from a
                         sentence our splitter keeps whole);
5. `semantic`         -- for paraphrase: sentences and runs of 2-3 are scored by sentence-embedding
                         similarity and shared content words, with the `sentence_id` index as a
                         weak prior; the best is bound only when it reaches `semantic_threshold`
                         and beats the runner-up by `semantic_margin` (`lib.data.semantic`, which
                         states the formula). Otherwise the row is reported ambiguous (with its
                         top two candidates) or failed -- never bound.

`rules` (the config's `data.align_rules`) chooses which of them run; they run in this order.

When a rule finds several places, the one nearest the sentence index taken from the
`sentence_id` (`<post_id>_<k>`) wins; in the fuzzy rule that index is a small additive prior, so it
only breaks near-ties (the same sentence quoted twice), never outvotes clearly better text.

Why 0.8 as the default threshold: ratio = 2*matches / total length, so one swapped word in a
ten-word sentence, a changed punctuation mark or a dropped "really" leaves ~0.85-0.95, while two
different sentences about the same topic rarely pass ~0.6 (`tests/test_align.py` pins both
sides). Lower it to accept heavier paraphrase at the risk of binding the wrong sentence. A known
limit of any character ratio: a short sentence with one *key* word changed ("no energy" vs "no
appetite") looks like a light edit; the report lists every fuzzy row with its score for review.

Guarantee: 0 <= start <= end <= len(post_text), and post_text[start:end] equals the annotation
under the rule's normalisation (`rule_key`); for `fuzzy`, similarity(...) >= fuzzy_threshold; for
`semantic`, [start, end) is exactly a run of whole sentences of `lib.data.sentences`.
"""

from __future__ import annotations

import bisect
import math
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from lib.data.semantic import Outcome, Request, SemanticMatcher
from lib.data.sentences import sentence_index_at, split_sentences
from lib.symptoms import ALIGN_RULES

RULES = ALIGN_RULES
TEXT_RULES = RULES[:4]  # the rules that need nothing but the two texts

# Typographic characters that people and annotation tools swap for their ASCII forms.
_FOLD = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u00b4\u0060", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-"),
    }
)
_PRIOR_WEIGHT = 0.02  # at most this much similarity is traded for sentence-index agreement
_MAX_RUN = 3  # adjacent sentences a fuzzy candidate may span (the annotator's splitter differs)
_MIN_BLOCK = 3  # matching blocks shorter than this do not anchor a within-sentence stretch


@dataclass(frozen=True)
class Alignment:
    rule: str  # one of RULES
    start: int
    end: int
    score: float = 1.0  # the fuzzy similarity or semantic score; 1.0 for the other rules
    margin: float | None = None  # semantic: how far the binding's rank beat the runner-up's
    runner_up: str | None = None  # semantic: the runner-up, e.g. "sentence 4 (0.41)"


@dataclass(frozen=True)
class Failure:
    reason: str
    ambiguous: bool = False  # the semantic rule found candidates, but none clearly best


# ---------------------------------------------------------------- the normalisations


def lower_same_length(text: str) -> str:
    """Lower-case `text` char by char, keeping any char whose lower form is longer ("İ")."""
    lowered = text.lower()
    if len(lowered) == len(text):  # lower() never shrinks a char, so this is 1:1
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


@lru_cache(maxsize=128)
def normalize_with_map(text: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """The normalised text and, per output char, the original [start, end) it came from.

    Works per base character plus its combining marks, so "e\\u0301" and "é" agree; whitespace runs
    become one space; leading and trailing whitespace is dropped.
    """
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    after_space = True  # drops leading whitespace
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        piece = unicodedata.normalize("NFKC", text[i:j]).translate(_FOLD).lower()
        for char in piece:
            if char.isspace():
                if after_space:
                    continue
                char, after_space = " ", True
            else:
                after_space = False
            out.append(char)
            starts.append(i)
            ends.append(j)
        i = j
    if out and out[-1] == " ":
        out.pop(), starts.pop(), ends.pop()
    return "".join(out), tuple(starts), tuple(ends)


def normalize_text(text: str) -> str:
    return normalize_with_map(text)[0]


def rule_key(rule: str, text: str) -> str:
    """What two texts must share for `rule` to call them equal (fuzzy compares these keys)."""
    if rule == "exact":
        return text.strip()
    if rule == "case_insensitive":
        return lower_same_length(text.strip())
    return normalize_text(text)


def similarity(a: str, b: str) -> float:
    """difflib ratio of the normalised texts (no autojunk: it distorts long sentences)."""
    return SequenceMatcher(None, normalize_text(a), normalize_text(b), autojunk=False).ratio()


# ---------------------------------------------------------------- rules 1-3: substring search


def _all_hits(haystack: str, needle: str) -> list[int]:
    hits, at = [], haystack.find(needle)
    while at >= 0:
        hits.append(at)
        at = haystack.find(needle, at + 1)
    return hits


def _nearest_to_hint(
    post_text: str, spans: list[tuple[int, int]], hint: int | None
) -> tuple[int, int] | None:
    if not spans:
        return None
    if hint is None or len(spans) == 1:
        return spans[0]
    sentences = split_sentences(post_text)
    return min(spans, key=lambda s: (abs(sentence_index_at(sentences, s[0]) - hint), s[0]))


def _substring_spans(post_text: str, needle: str, rule: str) -> list[tuple[int, int]]:
    if rule == "exact":
        return [(at, at + len(needle)) for at in _all_hits(post_text, needle)]
    if rule == "case_insensitive":
        key = lower_same_length(needle)
        hits = _all_hits(lower_same_length(post_text), key)
        return [(at, at + len(needle)) for at in hits]
    normalized, starts, ends = normalize_with_map(post_text)
    key = normalize_text(needle)
    spans = []
    for at in _all_hits(normalized, key):
        start, end = starts[at], ends[at + len(key) - 1]
        # A hit that begins or ends inside a char that NFKC expanded ("ﬁ") is not a match of
        # whole characters; checking keeps the guarantee exact.
        if normalize_text(post_text[start:end]) == key:
            spans.append((start, end))
    return spans


# ---------------------------------------------------------------- rule 4: fuzzy sentences


def _snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return start, end


def _fuzzy(
    post_text: str, needle_key: str, hint: int | None, threshold: float
) -> Alignment | Failure:
    sentences = split_sentences(post_text)
    normalized, starts, ends = normalize_with_map(post_text)
    matcher = SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(needle_key)  # difflib caches its analysis of seq2: the fixed side
    n_key = len(needle_key)
    best: tuple[float, float, int, int, int] | None = None  # (rank, ratio, -start, start, end)
    best_ratio, best_sentence = 0.0, -1

    def consider(a: int, b: int, first: int, last: int) -> None:
        nonlocal best, best_ratio, best_sentence
        n_cand = b - a
        if n_cand == 0 or 2 * min(n_cand, n_key) / (n_cand + n_key) < threshold:
            return  # the ratio cannot reach the threshold: lengths alone rule it out
        matcher.set_seq1(normalized[a:b])
        if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
            return
        ratio = matcher.ratio()
        start, end = starts[a], ends[b - 1]
        if ratio >= threshold and normalize_text(post_text[start:end]) != normalized[a:b]:
            # The slice began or ended inside what NFKC expanded ("ﬁ" -> "fi"): score the text
            # the offsets really cover, so the returned span keeps the guarantee.
            matcher.set_seq1(normalize_text(post_text[start:end]))
            ratio = matcher.ratio()
        distance = 0 if hint is None else max(first - hint, hint - last, 0)
        rank = ratio + (0.0 if hint is None else _PRIOR_WEIGHT / (1 + distance))
        if ratio > best_ratio:
            best_ratio, best_sentence = ratio, first
        if ratio >= threshold and (best is None or (rank, -start) > (best[0], best[2])):
            best = (rank, ratio, -start, start, end)

    for first in range(len(sentences)):
        for last in range(first, min(first + _MAX_RUN, len(sentences))):
            a = bisect.bisect_left(starts, sentences[first][0])
            b = bisect.bisect_left(starts, sentences[last][1])
            consider(a, b, first, last)
    if best is None:
        # Whole sentences failed. The annotator's splitter may have cut where ours did not:
        # score the stretch of each sentence that the annotation's matching blocks cover.
        for index, (start, end) in enumerate(sentences):
            a, b = bisect.bisect_left(starts, start), bisect.bisect_left(starts, end)
            if b - a <= n_key:
                continue
            matcher.set_seq1(normalized[a:b])
            if matcher.quick_ratio() * (b - a + n_key) / 2 < threshold * n_key:
                continue  # too few shared characters for any stretch to pass
            blocks = [m for m in matcher.get_matching_blocks() if m.size >= _MIN_BLOCK]
            if blocks:
                lo, hi = blocks[0].a, blocks[-1].a + blocks[-1].size
                lo, hi = _snap_to_words(normalized[a:b], lo, hi)
                consider(a + lo, a + hi, index, index)
    if best is None:
        closest = (
            f"best {best_ratio:.2f}, sentence {best_sentence}"
            if best_sentence >= 0
            else "none comes close"
        )
        return Failure(f"no sentence reaches similarity {threshold:.2f} ({closest})")
    _, ratio, _, start, end = best
    return Alignment("fuzzy", start, end, math.floor(ratio * 1e4) / 1e4)


# ---------------------------------------------------------------- the entry point


def align_text(
    post_text: str,
    sentence_text: str,
    sentence_index_hint: int | None,
    *,
    fuzzy_threshold: float,
    rules: tuple[str, ...] = TEXT_RULES,
) -> Alignment | Failure:
    """Locate `sentence_text` in `post_text` by the first of the text rules (1-4) in `rules`
    that fires."""
    needle = sentence_text.strip()
    if not needle:
        return Failure("empty sentence_text")
    for rule in RULES[:3]:
        key = rule_key(rule, needle)
        if not key:
            break
        if rule not in rules:
            continue
        span = _nearest_to_hint(
            post_text, _substring_spans(post_text, needle, rule), sentence_index_hint
        )
        if span is not None:
            return Alignment(rule, span[0], span[1])
    key = normalize_text(needle)
    if not key:
        return Failure("sentence_text has no characters left after normalisation")
    if "fuzzy" not in rules:
        return Failure(f"no rule of {', '.join(r for r in rules if r in TEXT_RULES)} fired")
    return _fuzzy(post_text, key, sentence_index_hint, fuzzy_threshold)


def semantic_result(outcome: Outcome) -> Alignment | Failure:
    """A semantic outcome as an Alignment (bound) or a Failure (ambiguous or below the floor)."""
    decision = outcome.decision
    runner_up = decision.runner_up.describe() if decision.runner_up else None
    margin = None if decision.margin is None else math.floor(decision.margin * 1e4) / 1e4
    if decision.bound:
        assert decision.best is not None and outcome.start is not None and outcome.end is not None
        score = math.floor(decision.best.score * 1e4) / 1e4
        return Alignment("semantic", outcome.start, outcome.end, score, margin, runner_up)
    return Failure(str(decision.reason), decision.ambiguous)


def align_evidence(
    post_text: str,
    sentence_text: str,
    sentence_index_hint: int | None,
    *,
    fuzzy_threshold: float,
    rules: tuple[str, ...] = RULES,
    semantic: SemanticMatcher | None = None,
) -> Alignment | Failure:
    """Locate `sentence_text` in `post_text` by the first rule of `rules` that fires; the
    semantic rule runs when it is in `rules` and a matcher is given."""
    found = align_text(
        post_text, sentence_text, sentence_index_hint, fuzzy_threshold=fuzzy_threshold, rules=rules
    )
    if isinstance(found, Alignment) or "semantic" not in rules or semantic is None:
        return found
    if not sentence_text.strip():
        return found
    [outcome] = semantic.align_many([Request(post_text, sentence_text, sentence_index_hint)])
    return semantic_result(outcome)
