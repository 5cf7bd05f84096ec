"""Sentence splitting for Reddit posts: character spans, deterministic, no model.

One splitter serves three masters -- evidence alignment (the `sentence_id` index prior and the
fuzzy rule, DESIGN §3), the sentence-level evidence metric (§5) and decoding's snap-to-sentence
(§4) -- so they all agree on what "a sentence" is.

It follows the classic punctuation-plus-exceptions recipe (as in Punkt/pySBD rule sets, much
reduced): a sentence ends after a run of terminal punctuation (". ! ? …" and mixes such as "?!",
"!!", "...") together with any closing quotes/brackets, trailing emoji and invisible format
characters (category Cf: a zero-width space, a word joiner, a stray BOM), and at every line
break. A period does *not* end a sentence after a known abbreviation ("e.g.", "Mr.", "Dr."), a
single-letter initial ("J. K."), inside a number ("2.5") or a URL ("reddit.com"); an ellipsis or
"etc." followed by a lower-case word is a pause, not an end. Reddit habits are honoured: a
lower-case sentence start still starts a sentence, and a missing space ("tired.I can't") splits
when the next letter is upper-case.

Contract: the spans are (start, end) with end exclusive, in order, non-overlapping, stripped of
surrounding whitespace (str.isspace), and together cover every non-whitespace character exactly
once.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_TERMINAL_RUN = re.compile(r"[.!?\u2026\u203c\u2047\u2048\u2049]+")
_LINE_BREAK = re.compile(r"[\n\r\u2028\u2029\x0b\x0c\x1c\x1d\x1e\x85]")
_CLOSERS = "\"'\u201d\u2019\u00bb\u203a)]}*_"  # also markdown emphasis: "*so tired.*"
_HORIZONTAL_SPACE = " \t\u00a0"

# Words after which a period never ends a sentence: titles, and fillers that are always followed
# by more words. Lower-case, inner dots kept ("e.g", "i.e").
_NEVER_FINAL = frozenset("mr mrs ms dr prof sr jr st mt vs cf e.g i.e eg ie approx".split())
# Words that end a sentence only when a capitalised word follows ("etc. Then" vs "etc. and").
_MAYBE_FINAL = frozenset(
    "etc a.m p.m apt appt dept inc ltd co est yrs hrs hr mins min lbs kg oz".split()
)


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) == "So"
        or 0x1F000 <= code <= 0x1FAFF
        or code in (0x200D, 0xFE0F, 0xFE0E)  # zero-width joiner, variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
    )


def _word_before(text: str, index: int) -> str:
    """The letters-and-dots token that ends at `index` ("e.g" for "e.g." at its final dot)."""
    start = index
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    word = text[start:index].strip(".")
    if "." in word and not _is_initialism(word) and word.lower() not in _NEVER_FINAL:
        word = word.rsplit(".", 1)[1]  # "now.Dr" (a missing space) -> "Dr"
    return word


def _token_before(text: str, index: int) -> str:
    """Like `_word_before` but digits and apostrophes count too ("at 91.I", "mom's.I")."""
    start = index
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in ".'\u2019"):
        start -= 1
    return text[start:index].strip(".")


def _is_initialism(word: str) -> bool:
    """ "U.S", "B.A": single letters joined by dots."""
    parts = word.split(".")
    return len(parts) > 1 and all(len(part) == 1 for part in parts)


def _is_invisible(char: str) -> bool:
    """A format character (category Cf: zero-width space U+200B, joiner U+200D, word joiner
    U+2060, BOM U+FEFF, soft hyphen...): not whitespace, but nothing a reader sees."""
    return unicodedata.category(char) == "Cf"


def _extend_over_tail(text: str, end: int) -> int:
    """Move `end` past closing quotes/brackets, emoji and invisible format characters that belong
    to the sentence before."""
    n = len(text)
    while end < n and (text[end] in _CLOSERS or _is_invisible(text[end])):
        end += 1
    probe = end
    while probe < n and text[probe] in _HORIZONTAL_SPACE:
        probe += 1
    if probe < n and _is_emoji(text[probe]):
        while probe < n and (
            _is_emoji(text[probe]) or _is_invisible(text[probe]) or text[probe] in _HORIZONTAL_SPACE
        ):
            probe += 1
        end = probe
        while end > 0 and text[end - 1] in _HORIZONTAL_SPACE:
            end -= 1
    return end


def _next_visible(text: str, index: int) -> str:
    """The first character at or after `index` that is neither whitespace nor an invisible
    format character, "" at the end of the text."""
    n = len(text)
    while index < n and (text[index].isspace() or _is_invisible(text[index])):
        index += 1
    return text[index] if index < n else ""


def _period_ends_sentence(text: str, run_start: int, run: str, following: str) -> bool:
    """Decide for a run of dots (possibly an ellipsis) followed by `following`."""
    if len(run) > 1 or "\u2026" in run:  # ellipsis: a pause unless a new sentence clearly starts
        return not following.islower()
    word = _word_before(text, run_start)
    lowered = word.lower()
    if lowered in _NEVER_FINAL:
        return False
    if lowered in _MAYBE_FINAL or _is_initialism(word):
        return following.isupper() or not following.isalpha()
    if len(word) == 1 and word.isupper() and word != "I" and following.isupper():
        return False  # an initial: "J. K. Rowling" (but "Neither do I. Then" ends)
    return True


def _boundaries(text: str) -> list[int]:
    """Offsets where a new sentence may begin (unsorted, may repeat)."""
    n = len(text)
    cuts = [m.end() for m in _LINE_BREAK.finditer(text)]
    for match in _TERMINAL_RUN.finditer(text):
        run_start, run_end = match.span()
        run = match.group()
        end = _extend_over_tail(text, run_end)
        if end >= n:
            continue
        spaced = text[end].isspace()
        following = _next_visible(text, end)
        if not following:
            continue
        if not spaced:
            # "tired.I can't": split only before a capital, never inside "2.5" or "reddit.com",
            # and not after an initialism such as "U.S.A".
            token = _token_before(text, run_start)
            if not following.isupper() or len(token) < 2 or _is_initialism(token):
                continue
            if "." in run and token.lower() in _NEVER_FINAL:
                continue
        elif set(run) <= {".", "\u2026"} and not _period_ends_sentence(
            text, run_start, run, following
        ):
            continue
        cuts.append(end)
    return cuts


@lru_cache(maxsize=256)
def _split_cached(text: str) -> tuple[tuple[int, int], ...]:
    cuts = sorted(set(_boundaries(text)) | {0, len(text)})
    spans = []
    for start, end in zip(cuts, cuts[1:]):
        piece = text[start:end]
        stripped_left = len(piece) - len(piece.lstrip())
        stripped_right = len(piece) - len(piece.rstrip())
        if stripped_left < len(piece):
            spans.append((start + stripped_left, end - stripped_right))
    return tuple(spans)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of `text`: (start, end) character offsets, end exclusive, in order."""
    return list(_split_cached(text))


def sentence_index_at(spans: list[tuple[int, int]], offset: int) -> int:
    """Index of the sentence that contains `offset`, else of the nearest one that follows it
    (the last one past the end); -1 when there are no sentences."""
    for index, (_, end) in enumerate(spans):
        if offset < end:
            return index
    return len(spans) - 1
