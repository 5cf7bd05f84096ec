"""The semantic alignment rule (lib/data/semantic.py, lib/data/lexical.py): its decision, its
guarantees as hypothesis properties, lexical-only mode, and real MiniLM on reworded sentences."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lib.data.align import Alignment, Failure, align_evidence
from lib.data.examples import AlignSettings
from lib.data.lexical import WordWeights, content_words, overlap, stem
from lib.data.semantic import (
    PRIOR_WEIGHT,
    W_EMB,
    Candidate,
    Request,
    SemanticMatcher,
    decide,
    prior,
)
from lib.data.sentences import split_sentences

SETTINGS = AlignSettings()  # the config defaults
THRESHOLD, MARGIN = SETTINGS.semantic_threshold, SETTINGS.semantic_margin

_SENTENCES = [
    "I have been exhausted every single day since March.",
    "My appetite is gone and I keep losing weight.",
    "We adopted a rabbit from the shelter last spring.",
    "Nothing is fun anymore, not even painting.",
    "I lie awake until 4am most nights.",
    "My sister is visiting next weekend.",
    "I feel like a worthless burden to my family.",
    "The bus to work takes about forty minutes.",
    "I keep thinking about ending my life.",
    "I can't focus on a single page of my textbook.",
]
# Words that share no stem with any sentence above, in sentences of their own.
_FOREIGN = ["Quantum chromodynamics predicts gluon confinement.", "Zebras graze savanna grasses."]


class FakeEncoder:
    """Deterministic pseudo-random 48-d vectors per text: unrelated texts have cosine ~0."""

    model_name = "fake"

    def __init__(self, table: dict[str, torch.Tensor] | None = None):
        self.table = table or {}
        self.calls = 0

    def token_sums(self, texts):
        self.calls += 1
        rows = []
        for text in texts:
            if text in self.table:
                rows.append(self.table[text])
                continue
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rows.append(torch.randn(48, generator=torch.Generator().manual_seed(seed)))
        return torch.stack(rows), torch.ones(len(texts))

    def static_embed(self, texts):
        return torch.nn.functional.normalize(self.token_sums(texts)[0], dim=-1)


def _matcher(post_texts, encoder=None, threshold=THRESHOLD, margin=MARGIN):
    load = (lambda: encoder) if encoder is not None else (lambda: "no encoder in this test")
    return SemanticMatcher(post_texts, threshold=threshold, margin=margin, load_encoder=load)


# ---------------------------------------------------------------- lexical evidence


def test_stem_meets_across_inflections():
    for group in (
        ["sleep", "sleeping", "sleeps", "slept"],
        ["feel", "feeling", "felt", "feels"],
        ["tired", "tiring", "tire"],
        ["stop", "stopped", "stopping"],
        ["cry", "cried", "cries", "crying"],
    ):
        assert len({stem(w) for w in group}) == 1, group


def test_content_words_drop_stop_words_and_fillers():
    assert content_words("I really just can't sleep at night anymore!") == {"sleep", "night"}
    assert content_words("She felt SO exhausted.") == {"feel", "exhaust"}
    assert content_words("") == frozenset()


def test_overlap_is_a_weighted_recall():
    weights = WordWeights([content_words(s) for s in _SENTENCES])
    a = content_words("losing weight, no appetite")
    assert overlap(a, content_words(_SENTENCES[1]), weights) == pytest.approx(1.0)
    assert overlap(a, content_words(_SENTENCES[0]), weights) == 0.0
    assert overlap(frozenset(), content_words(_SENTENCES[0]), weights) == 0.0
    # a rare word weighs more than a common one
    assert weights.weight("appetite") > weights.weight("day") or "day" not in weights.frequency


# ---------------------------------------------------------------- the decision


def _candidate(first, last, score, hint):
    return Candidate(first, last, score, score + prior(first, last, hint))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=12),
    st.none() | st.integers(0, 11),
    st.floats(0.01, 1.0),
    st.floats(0.0, 0.3),
)
def test_the_index_prior_never_outvotes_a_clearly_better_sentence(scores, hint, floor, margin):
    candidates = [_candidate(i, i, s, hint) for i, s in enumerate(scores)]
    decision = decide(candidates, floor, margin)
    top = max(scores)
    # Whatever the index says, the chosen sentence is within PRIOR_WEIGHT of the best text.
    assert decision.best is not None and decision.best.score >= top - PRIOR_WEIGHT - 1e-12
    if decision.bound:
        assert decision.best.score >= floor
        assert decision.runner_up is None or decision.margin >= margin - 1e-12
    else:
        assert decision.reason
        if decision.ambiguous:  # with its top two, the second disjoint from the first
            assert decision.runner_up is not None and decision.margin < margin
            assert decision.runner_up.last < decision.best.first or (
                decision.best.last < decision.runner_up.first
            )


def test_margin_is_measured_against_a_disjoint_runner_up():
    # a run containing the best sentence is not its rival; a different sentence is
    candidates = [_candidate(2, 2, 0.8, None), _candidate(2, 3, 0.79, None)]
    assert decide(candidates, 0.5, 0.05).bound
    candidates.append(_candidate(5, 5, 0.78, None))
    decision = decide(candidates, 0.5, 0.05)
    assert not decision.bound and decision.ambiguous
    assert "sentence 2 (0.80) vs sentence 5 (0.78)" in decision.reason


def test_below_the_floor_is_not_ambiguous():
    decision = decide([_candidate(0, 0, 0.3, None), _candidate(1, 1, 0.29, None)], 0.5, 0.05)
    assert not decision.bound and not decision.ambiguous and "0.50" in decision.reason


# ---------------------------------------------------------------- the rule's guarantees


_POSTS = st.lists(st.sampled_from(range(len(_SENTENCES))), min_size=1, max_size=8, unique=True)
_WORDS = st.lists(
    st.sampled_from(" ".join(_SENTENCES + _FOREIGN).replace(".", "").replace(",", "").split()),
    min_size=1,
    max_size=12,
).map(lambda words: " ".join(words) + ".")


@settings(max_examples=150, deadline=None)
@given(_POSTS, _WORDS, st.none() | st.integers(0, 8), st.booleans())
def test_a_binding_covers_whole_sentences(order, annotation, hint, embeddings):
    post = " ".join(_SENTENCES[i] for i in order)
    matcher = _matcher([post], FakeEncoder() if embeddings else None)
    result = align_evidence(post, annotation, hint, fuzzy_threshold=0.8, semantic=matcher)
    if isinstance(result, Alignment) and result.rule == "semantic":
        spans = split_sentences(post)
        starts, ends = [s for s, _ in spans], [e for _, e in spans]
        assert result.start in starts and result.end in ends
        assert starts.index(result.start) <= ends.index(result.end) < starts.index(result.start) + 3
        assert result.score >= THRESHOLD
        assert result.runner_up is None or result.margin >= MARGIN - 1e-4


@settings(max_examples=100, deadline=None)
@given(_POSTS, st.data())
def test_a_verbatim_sentence_always_binds_exactly(order, data):
    post = " ".join(_SENTENCES[i] for i in order)
    k = data.draw(st.integers(0, len(order) - 1))
    hint = data.draw(st.none() | st.integers(0, 8))
    matcher = _matcher([post], FakeEncoder())
    result = align_evidence(post, _SENTENCES[order[k]], hint, fuzzy_threshold=0.8, semantic=matcher)
    assert isinstance(result, Alignment) and result.rule == "exact"
    assert (result.start, result.end) == split_sentences(post)[k]
    # and the semantic rule on its own binds it too (lexical evidence and embedding agree)
    alone = align_evidence(
        post, _SENTENCES[order[k]], hint, fuzzy_threshold=0.8, rules=("semantic",), semantic=matcher
    )
    assert isinstance(alone, Alignment) and (alone.start, alone.end) == split_sentences(post)[k]


@settings(max_examples=100, deadline=None)
@given(_POSTS, st.sampled_from(_FOREIGN), st.none() | st.integers(0, 8))
def test_no_shared_word_and_low_similarity_never_binds(order, annotation, hint):
    post = " ".join(_SENTENCES[i] for i in order)
    encoder = FakeEncoder()
    matcher = _matcher([post], encoder)
    vectors = torch.nn.functional.normalize(
        encoder.token_sums([annotation, *_SENTENCES])[0], dim=-1
    )
    assume(max(float(vectors[0] @ v) for v in vectors[1:]) < THRESHOLD / W_EMB)
    result = align_evidence(post, annotation, hint, fuzzy_threshold=0.8, semantic=matcher)
    assert isinstance(result, Failure) and not result.ambiguous


def test_lexical_only_mode_binds_and_says_so():
    post = " ".join(_SENTENCES)
    matcher = _matcher([post])
    result = align_evidence(
        post, "She has no appetite and keeps losing weight", 0, fuzzy_threshold=0.8,
        semantic=matcher,
    )  # fmt: skip
    assert isinstance(result, Alignment) and result.rule == "semantic"
    assert (result.start, result.end) == split_sentences(post)[1]
    assert matcher.evidence() == "lexical overlap only (no encoder in this test)"


def test_each_sentence_is_encoded_once_and_not_at_all_when_not_needed():
    post = " ".join(_SENTENCES)
    encoder = FakeEncoder()
    matcher = _matcher([post], encoder)
    encoder.static_embed = lambda texts: torch.ones(len(texts), 48)  # not counted as encoding
    requests = [Request(post, "can't sleep till four", 4), Request(post, "no appetite", 1)]
    matcher.align_many(requests)
    assert encoder.calls == 1  # every row's shortlist and annotation in one batch
    encoded = set(matcher._posts[post].sums)
    matcher.align_many(requests[:1])
    assert set(matcher._posts[post].sums) == encoded
    # a verbatim row never reaches the rule, so the encoder is never loaded
    loads = []
    lazy = SemanticMatcher([post], threshold=0.5, margin=0.05, load_encoder=lambda: loads.append(1))
    assert isinstance(align_evidence(post, _SENTENCES[3], 3, fuzzy_threshold=0.8, semantic=lazy),
                      Alignment) and loads == []  # fmt: skip


def test_rules_choose_which_run():
    post = " ".join(_SENTENCES)
    matcher = _matcher([post])
    paraphrase = "She has no appetite and keeps losing weight"
    assert isinstance(
        align_evidence(post, paraphrase, 1, fuzzy_threshold=0.8, rules=("exact", "fuzzy"),
                       semantic=matcher), Failure,
    )  # fmt: skip
    only_exact = align_evidence(
        post, _SENTENCES[2].lower(), 2, fuzzy_threshold=0.8, rules=("exact",)
    )
    assert isinstance(only_exact, Failure)


# ---------------------------------------------------------------- with the real MiniLM


@pytest.fixture(scope="module")
def minilm():
    from lib.model.sentence_embedder import load_sentence_embedder

    embedder = load_sentence_embedder("minilm-l6")
    assert not isinstance(embedder, str), embedder
    return embedder


def test_minilm_embeddings_match_the_sentence_transformers_recipe(minilm):
    # mean over tokens (CLS and SEP included), normalised: paraphrases are close, others are not
    a, b, c = minilm.embed(
        ["I can't fall asleep at night.", "She lies awake all night, unable to sleep.",
         "We adopted a rabbit from the shelter."]
    )  # fmt: skip
    assert float(a.norm()) == pytest.approx(1.0, abs=1e-5)
    assert float(a @ b) > 0.5 > float(a @ c)


REWORDED = [  # (annotation, index of its sentence in _SENTENCES): no difflib ratio near 0.8
    ("She's been worn out each day since the spring.", 0),
    ("He barely eats now and the pounds keep dropping off.", 1),
    ("They don't enjoy anything, painting included.", 3),
    ("Sleep doesn't come until four in the morning.", 4),
    ("Feels useless and like dead weight to the family.", 6),
    ("Thoughts of killing herself keep coming back.", 8),
    ("Can't concentrate on even one page while studying.", 9),
]


@pytest.mark.parametrize("annotation,index", REWORDED)
def test_minilm_binds_reworded_sentences_and_never_wrongly(minilm, annotation, index):
    post = " ".join(_SENTENCES)
    matcher = _matcher([post], minilm)
    for hint in (index, None, (index + 5) % len(_SENTENCES)):  # right, missing, far off
        result = align_evidence(post, annotation, hint, fuzzy_threshold=0.8, semantic=matcher)
        if isinstance(result, Alignment):
            assert result.rule == "semantic"
            assert (result.start, result.end) == split_sentences(post)[index], (hint, result)
        else:  # with a wrong index it may be unsure, but it never binds elsewhere
            assert hint != index, result.reason


# ---------------------------------------------------------------- the configuration


@pytest.mark.parametrize(
    "override,message",
    [
        (
            'data.align_rules=["exact", "semantik"]',
            "unknown rule 'semantik' (did you mean semantic?)",
        ),
        ("data.align_rules=[]", "data.align_rules must name at least one rule"),
        ('data.align_rules=["exact", "exact"]', "data.align_rules has duplicates"),
        ("data.semantic_threshold=0", "data.semantic_threshold must be in (0, 1]"),
        ("data.semantic_margin=1.5", "data.semantic_margin must be in [0, 1]"),
        ('data.semantic_model=" "', "data.semantic_model must name a model"),
    ],
)
def test_alignment_keys_are_checked_at_load(override, message):
    from lib.config import load_config
    from lib.errors import UserError

    with pytest.raises(UserError, match=re.escape(message)):
        load_config(None, [override])


def test_a_missing_sentence_encoder_folder_is_the_users_mistake(tmp_path):
    from lib.errors import UserError
    from lib.model.sentence_embedder import load_sentence_embedder

    assert load_sentence_embedder("none") == 'data.semantic_model = "none"'
    with pytest.raises(UserError, match=r"^data\.semantic_model: .*no-such-model.* does not exist"):
        load_sentence_embedder(str(tmp_path / "no-such-model"))
