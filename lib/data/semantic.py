"""Rule 5 of evidence alignment, `semantic`: bind a reworded annotation to the sentence(s) of its
post it is clearly about, or report that it cannot (DESIGN §3).

Annotation files are not always verbatim: in the public ReDSM5 release the posts and annotations
were paraphrased independently (synonyms, reordered or merged clauses, tense and person changed),
which leaves character similarity far below the fuzzy rule's threshold. This rule scores every
*candidate* -- each sentence of the post (`lib.data.sentences`) and each run of 2-3 adjacent
sentences -- against the annotation:

    score(c) = W_EMB * cos(embed(annotation), embed(c)) + (1 - W_EMB) * overlap(annotation, c)
               - RUN_PENALTY * (sentences in c - 1)
    rank(c)  = score(c) + PRIOR_WEIGHT / (1 + distance(c, sentence_id index))

- `cos` is the cosine of all-MiniLM-L6-v2 sentence embeddings from our own encoder
  (`lib.model.sentence_embedder`); a run's embedding is the mean over its sentences' tokens.
  Without the model (package not installed, or `data.semantic_model = "none"`) W_EMB is 0: the
  rule runs on lexical evidence alone and the report says so.
- `overlap` is the weighted share of the annotation's content words found in c (`lib.data.lexical`).
- the `sentence_id` index is a weak prior: a sentence whose text scores clearly better (by more
  than PRIOR_WEIGHT) always outranks the one the index points at.
- a run competes only when every one of its sentences shares a content word with the annotation:
  averaging sentences smooths an embedding towards anything, so an extra sentence has to bring
  its own evidence.

The best-ranked candidate is bound when its score reaches `threshold` and its rank beats the
runner-up -- the best candidate sharing no sentence with it -- by at least `margin`. Otherwise the
row is reported, never bound: *ambiguous* (with the top two) when the best passes the floor but
not the margin, *failed* when nothing reaches the floor. A binding covers whole sentences: from
the start of its first sentence to the end of its last.

Speed (do less work first): with embeddings, each row's shortlist is its SHORTLIST_LEXICAL
sentences of highest lexical overlap, its SHORTLIST_STATIC closest by static word vectors (the
encoder's input embeddings, averaged: free), and the sentence its index names with its
neighbours; only those are encoded (each sentence once per corpus, all rows' sentences together
in length-sorted batches) and only candidates made of them compete. On the paraphrased demo
corpus the shortlist holds the true sentence for all but ~0.5% of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from lib.data.lexical import WordWeights, content_words, overlap
from lib.data.sentences import split_sentences

if TYPE_CHECKING:  # torch is imported where vectors are computed: `python -m lib.data` starts fast
    import torch

# Calibrated on the paraphrased demo corpus (bench/align.py; the README has the sweep's outcome).
MAX_RUN = 3  # adjacent sentences one candidate may span (paraphrase merges sentences)
W_EMB = 0.7  # weight of embedding similarity against lexical overlap (when embeddings exist)
RUN_PENALTY = 0.03  # per extra sentence: a run must earn its extra text
PRIOR_WEIGHT = 0.05  # the most the sentence_id index can add to a rank
SHORTLIST_LEXICAL = 5  # per row, the sentences of highest lexical overlap are encoded ...
SHORTLIST_STATIC = 4  # ... and those closest by static (input-embedding) similarity
CHUNK_ROWS = 128  # rows whose sentences are encoded together (one progress step)


class TokenSums(Protocol):
    """What the rule needs from an encoder (`lib.model.sentence_embedder.SentenceEmbedder`)."""

    model_name: str

    def token_sums(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def static_embed(self, texts: list[str]) -> torch.Tensor: ...


@dataclass(frozen=True)
class Candidate:
    first: int  # sentence indices, inclusive
    last: int
    score: float  # text evidence only
    rank: float  # score + the index prior

    def describe(self) -> str:
        where = (
            f"sentence {self.first}"
            if self.first == self.last
            else (f"sentences {self.first}-{self.last}")
        )
        return f"{where} ({self.score:.2f})"


@dataclass(frozen=True)
class Decision:
    """The rule's verdict on one annotation: `bound` or not, with the top two candidates."""

    bound: bool
    best: Candidate | None
    runner_up: Candidate | None
    margin: float | None  # best's rank minus the runner-up's; None without a runner-up
    reason: str | None  # why not bound
    ambiguous: bool = False  # not bound because the runner-up came too close


def disjoint(a: Candidate, b: Candidate) -> bool:
    return a.last < b.first or b.last < a.first


def prior(first: int, last: int, hint: int | None) -> float:
    if hint is None:
        return 0.0
    distance = max(first - hint, hint - last, 0)
    return PRIOR_WEIGHT / (1 + distance)


def decide(candidates: Sequence[Candidate], threshold: float, margin: float) -> Decision:
    """Bind the best-ranked candidate iff score >= threshold and rank - runner-up >= margin.

    Ties in rank go to the earlier, then shorter candidate (deterministic). The runner-up is the
    best candidate that shares no sentence with the best; with none (a one-sentence post) there
    is no rival and no margin (None).
    """
    if not candidates:
        return Decision(False, None, None, None, "the post has no sentence")
    ordered = sorted(candidates, key=lambda c: (-c.rank, c.first, c.last))
    best = ordered[0]
    runner_up = next((c for c in ordered[1:] if disjoint(c, best)), None)
    gap = None if runner_up is None else best.rank - runner_up.rank
    if best.score < threshold:
        reason = f"no sentence reaches semantic score {threshold:.2f} (best {best.describe()})"
        return Decision(False, best, runner_up, gap, reason)
    if gap is not None and gap < margin:
        reason = (
            f"ambiguous: {best.describe()} vs {runner_up.describe()}, margin {gap:.2f} < "
            f"{margin:.2f}"
        )
        return Decision(False, best, runner_up, gap, reason, ambiguous=True)
    return Decision(True, best, runner_up, gap, None)


# ---------------------------------------------------------------- per-post state


@dataclass
class _Post:
    """A post's sentences, their content words and (once encoded) their token sums."""

    spans: list[tuple[int, int]]
    texts: list[str]
    words: list[frozenset[str]]
    sums: dict[int, tuple[torch.Tensor, float]] = field(default_factory=dict)
    static: torch.Tensor | None = None  # (S, H) static word-vector embeddings, when needed


@dataclass(frozen=True)
class Request:
    post_text: str
    annotation: str
    hint: int | None  # the sentence index from sentence_id


@dataclass(frozen=True)
class Outcome:
    """A decision with the character offsets it binds (when bound)."""

    decision: Decision
    start: int | None
    end: int | None


class SemanticMatcher:
    """The semantic rule over one corpus: its word weights, its encoder (loaded only when a row
    first needs it) and each post's encoded sentences, kept so a sentence is encoded once."""

    def __init__(
        self,
        corpus_texts: Iterable[str],
        *,
        threshold: float,
        margin: float,
        load_encoder: Callable[[], TokenSums | str] | None = None,
    ):
        self.threshold = threshold
        self.margin = margin
        self._load_encoder = load_encoder
        self._encoder: TokenSums | None = None
        self._no_encoder = "no sentence encoder given"  # why there is none, for the report
        self._loaded = load_encoder is None
        self._posts: dict[str, _Post] = {}
        self.weights = WordWeights(
            content_words(text[s:e]) for text in corpus_texts for s, e in split_sentences(text)
        )

    @property
    def encoder(self) -> TokenSums | None:
        if not self._loaded:
            assert self._load_encoder is not None
            loaded = self._load_encoder()
            if isinstance(loaded, str):
                self._no_encoder = loaded
            else:
                self._encoder = loaded
            self._loaded = True
        return self._encoder

    def evidence(self) -> str:
        """What this rule ran on, for the report (loads the encoder if it was not yet)."""
        encoder = self.encoder
        if encoder is None:
            return f"lexical overlap only ({self._no_encoder})"
        return f"{encoder.model_name} embeddings + lexical overlap"

    def _post(self, text: str) -> _Post:
        if text not in self._posts:
            spans = split_sentences(text)
            texts = [text[s:e] for s, e in spans]
            self._posts[text] = _Post(spans, texts, [content_words(t) for t in texts])
        return self._posts[text]

    def align_many(
        self, requests: Sequence[Request], progress: Callable[[int], None] | None = None
    ) -> list[Outcome]:
        """The rule's outcome for each request, in order; `progress(n)` after each n rows.
        Rows go through in chunks, so the encoder sees large batches and memory stays flat."""
        outcomes: list[Outcome] = []
        for at in range(0, len(requests), CHUNK_ROWS):
            chunk = requests[at : at + CHUNK_ROWS]
            outcomes += self._align_chunk(chunk)
            if progress:
                progress(len(chunk))
        return outcomes

    def _align_chunk(self, requests: Sequence[Request]) -> list[Outcome]:
        posts = [self._post(r.post_text) for r in requests]
        words = [content_words(r.annotation) for r in requests]
        shortlists = [
            self._shortlist(p, r.annotation, w, r.hint) for p, w, r in zip(posts, words, requests)
        ]
        annotation_vectors = self._encode(posts, shortlists, [r.annotation for r in requests])
        outcomes = []
        for i, (post, request) in enumerate(zip(posts, requests)):
            candidates = self._candidates(
                post, words[i], request.hint, shortlists[i], annotation_vectors[i]
            )
            decision = decide(candidates, self.threshold, self.margin)
            if decision.bound:
                assert decision.best is not None
                start, end = post.spans[decision.best.first][0], post.spans[decision.best.last][1]
                outcomes.append(Outcome(decision, start, end))
            else:
                outcomes.append(Outcome(decision, None, None))
        return outcomes

    # -------------------------------------------------------------- the steps of align_many

    def _shortlist(
        self, post: _Post, annotation: str, words: frozenset[str], hint: int | None
    ) -> list[int]:
        """The sentences whose candidates compete: all of them without an encoder; with one,
        the SHORTLIST of highest overlap and the index's sentence with its neighbours."""
        n = len(post.texts)
        encoder = self.encoder
        if encoder is None:
            return list(range(n))
        by_overlap = sorted(range(n), key=lambda i: -overlap(words, post.words[i], self.weights))
        chosen = set(by_overlap[:SHORTLIST_LEXICAL])
        if n > len(chosen):
            if post.static is None:
                post.static = encoder.static_embed(post.texts)  # (S, H)
            similarity = post.static @ encoder.static_embed([annotation])[0]  # (S,)
            chosen.update(similarity.argsort(descending=True)[:SHORTLIST_STATIC].tolist())
        if hint is not None:
            chosen.update(i for i in (hint - 1, hint, hint + 1) if 0 <= i < n)
        return sorted(chosen)

    def _encode(
        self, posts: list[_Post], shortlists: list[list[int]], annotations: list[str]
    ) -> list[torch.Tensor | None]:
        """Encode every shortlisted sentence not yet encoded and every annotation, all in one
        length-sorted batch; returns the annotations' unit vectors (None without an encoder)."""
        encoder = self.encoder
        if encoder is None:
            return [None] * len(annotations)
        missing: dict[tuple[int, int], str] = {}  # (id(post), index) -> text, first come first
        owners: dict[int, _Post] = {}
        for post, shortlist in zip(posts, shortlists):
            for i in shortlist:
                if i not in post.sums:
                    missing.setdefault((id(post), i), post.texts[i])
                    owners[id(post)] = post
        texts = list(missing.values()) + list(annotations)
        if not texts:
            return []
        sums, counts = encoder.token_sums(texts)
        for row, (post_id, i) in enumerate(missing):
            owners[post_id].sums[i] = (sums[row], float(counts[row]))
        offset = len(missing)
        means = sums[offset:] / counts[offset:].clamp(min=1).unsqueeze(-1)  # (N, H)
        return list(_unit(means))

    def _candidates(
        self,
        post: _Post,
        words: frozenset[str],
        hint: int | None,
        shortlist: list[int],
        annotation_vector: torch.Tensor | None,
    ) -> list[Candidate]:
        listed = set(shortlist)
        candidates = []
        for first in shortlist:
            for last in range(first, min(first + MAX_RUN, len(post.texts))):
                if last not in listed or (last > first and not words & post.words[last]):
                    break
                if last > first and not words & post.words[first]:
                    break
                run_words = frozenset().union(*post.words[first : last + 1])
                score = overlap(words, run_words, self.weights)
                if annotation_vector is not None:
                    score = (
                        W_EMB * self._cosine(post, first, last, annotation_vector)
                        + (1 - W_EMB) * score
                    )
                score -= RUN_PENALTY * (last - first)
                candidates.append(Candidate(first, last, score, score + prior(first, last, hint)))
        return candidates

    @staticmethod
    def _cosine(post: _Post, first: int, last: int, annotation_vector: torch.Tensor) -> float:
        total = sum(post.sums[i][0] for i in range(first, last + 1))
        count = sum(post.sums[i][1] for i in range(first, last + 1))
        return float(_unit(total / max(count, 1.0)) @ annotation_vector)


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    """torch.nn.functional.normalize(vectors, dim=-1), with the tensor's own methods."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
