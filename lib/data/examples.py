"""From posts and annotation rows to QA examples: one per (post, symptom), with its gold spans.

DESIGN §3. Every annotation row is aligned (`lib.data.align`) and recorded in an `AlignmentReport`,
status-0 rows and rows of unconfigured symptoms included, so a validator sees the whole file.
Examples use the configured symptoms only:

- a *positive* example has the aligned spans of its `status == 1` rows; identical spans are kept
  once and sorted by start. Overlapping but different spans are kept as they are: each is a span
  an annotator marked, the training loss marginalises over gold spans, SQuAD scores take the best
  gold, and the sentence metric takes their union -- merging would invent a span nobody marked;
- a (post, symptom) pair whose evidence rows *all* failed to align is left out (and reported):
  calling it "no evidence" would teach the model the opposite of the annotation;
- negatives (no answer) per `negatives`: "none", "annotated" (pairs with status-0 rows only) or
  "all" (every post x symptom without evidence).

Examples come in post file order, then configured symptom order: deterministic.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from lib.data.align import RULES, Alignment, Failure, align_text, normalize_text, semantic_result
from lib.data.corpus import Annotation, Example, Post, Span, sentence_index
from lib.data.semantic import Request, SemanticMatcher
from lib.symptoms import NEGATIVE_MODES, QUESTION_MODES

SYMPTOM_NAMES = {
    "DEPRESSED_MOOD": "depressed mood",
    "ANHEDONIA": "loss of interest or pleasure",
    "APPETITE_CHANGE": "appetite or weight change",
    "SLEEP_ISSUES": "sleep problems",
    "PSYCHOMOTOR": "psychomotor agitation or slowing",
    "FATIGUE": "fatigue or loss of energy",
    "WORTHLESSNESS": "worthlessness or excessive guilt",
    "COGNITIVE_ISSUES": "difficulty thinking or concentrating",
    "SUICIDAL_THOUGHTS": "suicidal thoughts",
    "SPECIAL_CASE": "other signs of depression",
}


def symptom_question(symptom: str, mode: str, criteria: Mapping[str, str]) -> str:
    """The question text for `symptom`: its criterion text, its readable name, or ""."""
    if mode == "criterion":
        text = criteria.get(symptom, "").strip()
        if not text:  # data.criteria is checked at config load
            raise ValueError(f"no criterion text for {symptom}")
        return text
    if mode == "symptom":
        return SYMPTOM_NAMES.get(symptom, symptom.replace("_", " ").lower())
    if mode == "empty":
        return ""
    raise ValueError(f"question mode must be one of {QUESTION_MODES}, got {mode!r}")


@dataclass(frozen=True)
class AlignedRow:
    """What alignment made of one annotation row; rule/start/end are None when it failed."""

    row: int
    post_id: str
    sentence_id: str
    symptom: str
    status: int
    rule: str | None
    start: int | None
    end: int | None
    score: float | None
    reason: str | None  # why it failed
    margin: float | None = None  # semantic: the binding's lead over the runner-up
    runner_up: str | None = None  # semantic: the runner-up (bound) or second candidate (ambiguous)
    ambiguous: bool = False  # not bound: the semantic rule found no clearly best candidate

    @property
    def outcome(self) -> str:
        """The rule that bound it, "ambiguous" or "failed"."""
        return self.rule or ("ambiguous" if self.ambiguous else "failed")


OUTCOMES = (*RULES, "ambiguous", "failed")


@dataclass(frozen=True)
class AlignSettings:
    """How annotation rows are aligned: the config's data.align_rules and thresholds."""

    fuzzy_threshold: float = 0.8
    rules: tuple[str, ...] = RULES
    semantic_threshold: float = 0.2
    semantic_margin: float = 0.03


@dataclass
class AlignmentReport:
    settings: AlignSettings
    rows: list[AlignedRow] = field(default_factory=list)
    semantic_evidence: str | None = None  # what the semantic rule ran on; None: it never ran
    unconfigured_rows: int = 0  # rows of symptoms not in data.symptoms: aligned, not used
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (post_id, symptom) left out

    @property
    def failures(self) -> list[AlignedRow]:
        return [r for r in self.rows if r.rule is None]

    def counts(self, status: int | None = None) -> dict[str, int]:
        """Rows per rule, "ambiguous" and "failed", optionally of one status only."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for r in self.rows:
            if status is None or r.status == status:
                counts[r.outcome] += 1
        return counts

    def to_json(self) -> dict:
        """A JSON-ready dict: counts, dropped pairs, failures and every row."""
        return {
            "rules": list(self.settings.rules),
            "fuzzy_threshold": self.settings.fuzzy_threshold,
            "semantic_threshold": self.settings.semantic_threshold,
            "semantic_margin": self.settings.semantic_margin,
            "semantic_evidence": self.semantic_evidence,
            "counts": self.counts(),
            "counts_evidence": self.counts(1),
            "counts_not_evidence": self.counts(0),
            "unconfigured_rows": self.unconfigured_rows,
            "dropped": [{"post_id": p, "symptom": s} for p, s in self.dropped],
            "failures": [
                {k: getattr(r, k) for k in ("row", "post_id", "sentence_id", "symptom", "reason")}
                | {"outcome": r.outcome}
                for r in self.failures
            ],
            "annotations": [
                {
                    k: getattr(r, k)
                    for k in ("post_id", "sentence_id", "symptom", "status", "rule", "start", "end")
                }
                | {"score": r.score, "margin": r.margin, "runner_up": r.runner_up, "row": r.row}
                for r in self.rows
            ],
        }

    def format(self) -> str:
        """A human summary: the outcome x status table, every semantic binding with its score,
        margin and runner-up, then every row not bound on its own line."""
        every, yes, no = self.counts(), self.counts(1), self.counts(0)
        s = self.settings
        lines = [
            f"alignment of {len(self.rows)} annotation rows (rules {', '.join(s.rules)}; "
            f"fuzzy_threshold {s.fuzzy_threshold:g}"
            + (
                f", semantic_threshold {s.semantic_threshold:g}, semantic_margin "
                f"{s.semantic_margin:g}"
                if "semantic" in s.rules
                else ""
            )
            + "):",
            f"  {'rule':<18}{'evidence':>10}{'not evidence':>14}{'total':>8}",
        ]
        for rule in every:
            lines.append(f"  {rule:<18}{yes[rule]:>10}{no[rule]:>14}{every[rule]:>8}")
        if self.semantic_evidence:
            lines.append(f"  the semantic rule used {self.semantic_evidence}")
        if self.unconfigured_rows:
            lines.append(
                f"  {self.unconfigured_rows} rows are for symptoms not in data.symptoms "
                "(aligned above, not used)"
            )
        if self.dropped:
            lines.append(
                f"  {len(self.dropped)} (post, symptom) pairs left out: none of their evidence "
                "rows aligned"
            )
        semantic = [r for r in self.rows if r.rule == "semantic"]
        if semantic:
            lines.append(f"semantic bindings ({len(semantic)}, review them):")
            for r in semantic:
                lines.append(
                    f"  row {r.row}: {r.sentence_id} {r.symptom} -> [{r.start}, {r.end}) score "
                    f"{r.score:.2f} margin {'-' if r.margin is None else f'{r.margin:.2f}'} runner-up "
                    f"{r.runner_up or 'none'}"
                )
        failures = self.failures
        if failures:
            lines.append(f"not aligned ({len(failures)}, skipped):")
            for r in failures:
                lines.append(
                    f"  row {r.row}: {r.sentence_id} {r.symptom} status {r.status}: {r.reason}"
                )
        return "\n".join(lines)


def _aligned_row(ann: Annotation, found: Alignment | Failure) -> AlignedRow:
    common = (ann.row, ann.post_id, ann.sentence_id, ann.symptom, ann.status)
    if isinstance(found, Alignment):
        return AlignedRow(
            *common, found.rule, found.start, found.end, found.score, None, found.margin,
            found.runner_up,
        )  # fmt: skip
    return AlignedRow(*common, None, None, None, None, found.reason, ambiguous=found.ambiguous)


def _align_rows(
    posts: Mapping[str, Post],
    annotations: Sequence[Annotation],
    settings: AlignSettings,
    semantic: Callable[[], SemanticMatcher] | None,
) -> tuple[list[AlignedRow], str | None]:
    """Every row through the text rules; the rows none of them bound then go through the
    semantic rule together (one batch for the encoder). Returns the rows and what the semantic
    rule ran on (None when it did not run)."""
    Key = tuple[str, str, int | None]  # one sentence annotated for several symptoms: align once
    results: dict[Key, Alignment | Failure] = {}
    for ann in annotations:
        assert ann.post_id in posts, f"annotation row {ann.row} for unknown post {ann.post_id}"
        key = (ann.post_id, ann.sentence_text, sentence_index(ann.sentence_id, ann.post_id))
        if key not in results:
            results[key] = align_text(
                posts[key[0]].text, key[1], key[2],
                fuzzy_threshold=settings.fuzzy_threshold, rules=settings.rules,
            )  # fmt: skip
    pending = [
        key
        for key, found in results.items()
        if isinstance(found, Failure) and key[1].strip() and normalize_text(key[1])
    ]
    evidence = None
    if pending and "semantic" in settings.rules and semantic is not None:
        matcher = semantic()
        requests = [Request(posts[p].text, text, hint) for p, text, hint in pending]
        with tqdm(
            total=len(requests),
            desc="semantic alignment",
            unit="row",
            delay=2.0,  # only when it takes more than a moment
            mininterval=0.5 if sys.stderr.isatty() else 30.0,  # log files: a line per 30 s
            dynamic_ncols=True,
        ) as bar:
            outcomes = matcher.align_many(requests, progress=bar.update)
        for key, outcome in zip(pending, outcomes):
            results[key] = semantic_result(outcome)
        evidence = matcher.evidence()
    rows = [
        _aligned_row(
            ann,
            results[(ann.post_id, ann.sentence_text, sentence_index(ann.sentence_id, ann.post_id))],
        )
        for ann in annotations
    ]
    return rows, evidence


def build_examples(
    posts: Mapping[str, Post],
    annotations: Sequence[Annotation],
    *,
    symptoms: Sequence[str],
    question_mode: str,
    criteria: Mapping[str, str],
    negatives: str,
    settings: AlignSettings = AlignSettings(),
    semantic: Callable[[], SemanticMatcher] | None = None,
) -> tuple[list[Example], AlignmentReport]:
    """Examples for every (post, configured symptom) per the module rules, and the report.
    `semantic` makes the corpus's semantic matcher; it is called only if a row needs it."""
    if negatives not in NEGATIVE_MODES:  # data.negatives is checked at config load
        raise ValueError(f"negatives must be one of {NEGATIVE_MODES}, got {negatives!r}")
    questions = {s: symptom_question(s, question_mode, criteria) for s in symptoms}
    rows, evidence = _align_rows(posts, annotations, settings, semantic)
    report = AlignmentReport(settings, rows, evidence)
    evidence: dict[tuple[str, str], set[tuple[int, int]]] = {}
    annotated: set[tuple[str, str]] = set()
    for r in report.rows:
        if r.symptom not in questions:
            report.unconfigured_rows += 1
            continue
        pair = (r.post_id, r.symptom)
        annotated.add(pair)
        if r.status == 1:
            spans = evidence.setdefault(pair, set())
            if r.start is not None and r.end is not None:
                spans.add((r.start, r.end))
    examples = []
    for post_id, post in posts.items():
        for symptom in symptoms:
            pair = (post_id, symptom)
            if pair in evidence:
                if not evidence[pair]:
                    report.dropped.append(pair)
                    continue
                answers = tuple(Span(s, e, post.text[s:e]) for s, e in sorted(evidence[pair]))
            elif negatives == "all" or (negatives == "annotated" and pair in annotated):
                answers = ()
            else:
                continue
            example_id = f"{post_id}::{symptom}"
            examples.append(
                Example(example_id, post_id, symptom, questions[symptom], post.text, answers)
            )
    return examples, report
