"""Lexical evidence for the semantic alignment rule: which content words two texts share.

A text's *content words* are its alphabetic words, lower-cased, with stop words (pronouns,
auxiliaries, articles, fillers) removed and reduced to a crude stem, so that a paraphrase that
changed tense, person or number ("She felt exhausted" / "I feel so exhausted") still shares them:

    stem("sleeping") == stem("sleeps") == stem("slept") == "sleep"

The stemmer is deliberately small (a few suffix rules in the spirit of Porter's step 1 and a
table of the irregular verbs people use to talk about themselves); it only has to make the same
word agree with itself across inflections, not produce linguistic roots.

`overlap` is the share of the annotation's content (weighted by inverse document frequency over
sentences, so "feel" counts less than "appetite") found in a candidate: a recall, because a
paraphrase that keeps one clause of a sentence is still bound to the whole sentence.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_VOWEL = re.compile(r"[aeiouy]")

STOP_WORDS = frozenset(
    """
    a an the and or but if so as of at by for from in into on onto to with without about over
    under up down out off than then too very just really quite pretty even also still yet ever
    only much more most some any all each every no not nor own same such both few other again
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves one ones
    this that these those there here what which who whom whose when where why how
    am is are was were be been being have has had having do does did doing done
    will would shall should can could may might must ought
    i'm i've i'd i'll im ive id you're you've he's she's it's we're we've they're they've
    that's there's what's who's isn't aren't wasn't weren't don't doesn't didn't can't cannot
    couldn't won't wouldn't shouldn't haven't hasn't hadn't let's
    like lately anymore honestly actually literally basically kinda sorta maybe ok okay
    get got gets getting thing things stuff lot lots way something anything nothing everything
    now since until while during before after because though although back keep kept come came
    going gonna wanna one ones even also always never often sometimes
    """.split()
)

# Irregular forms people use when they write about how they feel, sleep and eat.
_IRREGULAR = {
    "felt": "feel",
    "slept": "sleep",
    "ate": "eat",
    "eaten": "eat",
    "went": "go",
    "gone": "go",
    "made": "make",
    "thought": "think",
    "lost": "lose",
    "lay": "lie",
    "lain": "lie",
    "lying": "lie",
    "woke": "wake",
    "woken": "wake",
    "kept": "keep",
    "left": "leave",
    "gave": "give",
    "given": "give",
    "took": "take",
    "taken": "take",
    "came": "come",
    "saw": "see",
    "seen": "see",
    "told": "tell",
    "said": "say",
    "began": "begin",
    "begun": "begin",
    "stood": "stand",
    "sat": "sit",
    "wrote": "write",
    "written": "write",
    "cried": "cry",
    "tried": "try",
    "died": "die",
    "dying": "die",
    "worse": "bad",
    "worst": "bad",
    "better": "good",
    "best": "good",
}


def stem(word: str) -> str:
    """A crude, deterministic stem of a lower-case word (see the module docstring)."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("'s"):
        word = word[:-2]
    for suffix, replacement, min_stem in (
        ("ies", "y", 2),
        ("ied", "y", 2),
        ("ing", "", 3),
        ("ed", "", 3),
        ("es", "", 4),
        ("s", "", 3),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= min_stem:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                continue
            if suffix in ("ing", "ed") and not _VOWEL.search(word[: -len(suffix)]):
                continue  # "spring", "bring", "red": the suffix is part of the word (Porter)
            word = word[: len(word) - len(suffix)] + replacement
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]  # "stopped" -> "stopp" -> "stop"
    return word.rstrip("e") or word  # "tired"/"tire" and "tiring" meet at "tir"


_STOP_STEMS = frozenset(stem(w) for w in STOP_WORDS)  # "keeps" and "coming" are stop words too


def content_words(text: str) -> frozenset[str]:
    """The stems of the content words of `text` (a set: repetition is not more evidence)."""
    words = (w.lower().replace("\u2019", "'") for w in _WORD.findall(text))
    stems = (stem(w) for w in words if w not in STOP_WORDS and len(w) > 1)
    return frozenset(s for s in stems if s not in _STOP_STEMS)


class WordWeights:
    """Inverse document frequency of stems over a collection of sentences (smoothed, >= 1)."""

    def __init__(self, sentences: Iterable[frozenset[str]]):
        counts: Counter[str] = Counter()
        self.documents = 0
        for words in sentences:
            counts.update(words)
            self.documents += 1
        self.frequency: Mapping[str, int] = counts

    def weight(self, word: str) -> float:
        # log((N + 1) / (df + 1)) + 1: an unseen word weighs the most, a word in every sentence 1.
        return math.log((self.documents + 1) / (self.frequency.get(word, 0) + 1)) + 1.0


def overlap(annotation: frozenset[str], candidate: frozenset[str], weights: WordWeights) -> float:
    """The weighted share of the annotation's content words present in the candidate, in [0, 1];
    0 when the annotation has no content word."""
    total = sum(weights.weight(w) for w in annotation)
    if total == 0:
        return 0.0
    return sum(weights.weight(w) for w in annotation & candidate) / total
