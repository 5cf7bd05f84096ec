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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lib.data.align import RULES, Alignment, align_evidence
from lib.data.corpus import Annotation, Example, Post, Span, sentence_index
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


@dataclass
class AlignmentReport:
    fuzzy_threshold: float
    rows: list[AlignedRow] = field(default_factory=list)
    unconfigured_rows: int = 0  # rows of symptoms not in data.symptoms: aligned, not used
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (post_id, symptom) left out

    @property
    def failures(self) -> list[AlignedRow]:
        return [r for r in self.rows if r.rule is None]

    def counts(self, status: int | None = None) -> dict[str, int]:
        """Rows per rule (and "failed"), optionally of one status only."""
        counts = dict.fromkeys((*RULES, "failed"), 0)
        for r in self.rows:
            if status is None or r.status == status:
                counts[r.rule or "failed"] += 1
        return counts

    def to_json(self) -> dict:
        """A JSON-ready dict: counts, dropped pairs, failures and every row."""
        return {
            "fuzzy_threshold": self.fuzzy_threshold,
            "counts": self.counts(),
            "counts_evidence": self.counts(1),
            "counts_not_evidence": self.counts(0),
            "unconfigured_rows": self.unconfigured_rows,
            "dropped": [{"post_id": p, "symptom": s} for p, s in self.dropped],
            "failures": [
                {k: getattr(r, k) for k in ("row", "post_id", "sentence_id", "symptom", "reason")}
                for r in self.failures
            ],
            "annotations": [
                {
                    k: getattr(r, k)
                    for k in ("post_id", "sentence_id", "symptom", "status", "rule", "start", "end")
                }
                | {"score": r.score, "row": r.row}
                for r in self.rows
            ],
        }

    def format(self) -> str:
        """A human summary: a rule x status table, then every failure on its own line."""
        every, yes, no = self.counts(), self.counts(1), self.counts(0)
        lines = [
            f"alignment of {len(self.rows)} annotation rows (fuzzy_threshold "
            f"{self.fuzzy_threshold:g}):",
            f"  {'rule':<18}{'evidence':>10}{'not evidence':>14}{'total':>8}",
        ]
        for rule in every:
            lines.append(f"  {rule:<18}{yes[rule]:>10}{no[rule]:>14}{every[rule]:>8}")
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
        failures = self.failures
        if failures:
            lines.append(f"not aligned ({len(failures)}, skipped):")
            for r in failures:
                lines.append(
                    f"  row {r.row}: {r.sentence_id} {r.symptom} status {r.status}: {r.reason}"
                )
        return "\n".join(lines)


def _align_rows(
    posts: Mapping[str, Post], annotations: Sequence[Annotation], fuzzy_threshold: float
) -> list[AlignedRow]:
    results: dict[tuple[str, str, int | None], object] = {}  # one sentence, several symptoms
    rows = []
    for ann in annotations:
        assert ann.post_id in posts, f"annotation row {ann.row} for unknown post {ann.post_id}"
        hint = sentence_index(ann.sentence_id, ann.post_id)
        key = (ann.post_id, ann.sentence_text, hint)
        if key not in results:
            results[key] = align_evidence(
                posts[ann.post_id].text, ann.sentence_text, hint, fuzzy_threshold=fuzzy_threshold
            )
        found = results[key]
        common = (ann.row, ann.post_id, ann.sentence_id, ann.symptom, ann.status)
        if isinstance(found, Alignment):
            rows.append(AlignedRow(*common, found.rule, found.start, found.end, found.score, None))
        else:
            rows.append(AlignedRow(*common, None, None, None, None, found.reason))
    return rows


def build_examples(
    posts: Mapping[str, Post],
    annotations: Sequence[Annotation],
    *,
    symptoms: Sequence[str],
    question_mode: str,
    criteria: Mapping[str, str],
    negatives: str,
    fuzzy_threshold: float,
) -> tuple[list[Example], AlignmentReport]:
    """Examples for every (post, configured symptom) per the module rules, and the report."""
    if negatives not in NEGATIVE_MODES:  # data.negatives is checked at config load
        raise ValueError(f"negatives must be one of {NEGATIVE_MODES}, got {negatives!r}")
    questions = {s: symptom_question(s, question_mode, criteria) for s in symptoms}
    report = AlignmentReport(fuzzy_threshold, _align_rows(posts, annotations, fuzzy_threshold))
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
