"""The evidence report: one self-contained HTML page of posts with highlighted evidence (DESIGN §7).

`evaluate.py --html` writes it. Each post is a block holding one row per symptom that has gold or
predicted evidence; a row shows the whole post with predicted spans on a yellow background and
gold spans underlined in green (both marks where they agree). Overlapping, nested and adjacent
spans are drawn by cutting the text at every span boundary and wrapping each piece in the marks of
the spans that cover it, so the text content of a row is exactly the post text.

Errors are counted with the sentence-level rule of the evidence metric (lib/evaluation/metrics.py, DESIGN §5),
so the page agrees with metrics.json: a span counts for a sentence when it covers at least half of
it; an example's errors are its gold sentences no prediction counts for (missed) plus its predicted
sentences that are not gold (false). Posts with the most errors come first, then by post_id.

Safety: every string that comes from data (post text, span text, post_id, symptom, question) goes
through html.escape(quote=True), in text and in attributes alike. The page loads nothing: inline
CSS and a small inline script (the symptom filter); with scripts off the filter stays hidden and
everything is shown.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Protocol

from lib.data.corpus import Example, Post
from lib.data.sentences import split_sentences
from lib.evaluation.metrics import covered_sentences


class SpanLike(Protocol):
    start: int
    end: int
    text: str
    score: float


class PredictionLike(Protocol):
    spans: Sequence[SpanLike]
    null_score: float


_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 1.5em auto; max-width: 70em; padding: 0 1em;
  color: #1f2328; background: #fff; }
.legend, .controls { border: 1px solid #d0d7de; border-radius: 6px; padding: .5em 1em; margin: 1em 0; }
.post { border: 1px solid #d0d7de; border-radius: 6px; margin: 1.2em 0; padding: .2em 1em .8em; }
.post h2 { font-size: 1.05em; margin: .6em 0 .3em; word-break: break-all; }
.row { border-top: 1px solid #eaeef2; padding: .4em 0; }
.row-head { font-size: .9em; margin-bottom: .3em; }
.symptom { font-weight: 600; }
.question, .note { color: #59636e; }
.ok { color: #1a7f37; font-weight: 600; }
.bad { color: #cf222e; font-weight: 600; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; max-height: 26em; overflow-y: auto;
  resize: vertical; background: #f6f8fa; padding: .5em .7em; border-radius: 4px; }
.pred { background: #ffe58a; }
.gold { text-decoration: underline 3px #1a7f37; text-underline-offset: 3px;
  text-decoration-skip-ink: none; }
.pred.gold { background: #b7ebc3; }
[hidden] { display: none !important; }
"""

# Hides the rows of other symptoms (and posts left empty); revealed only when scripts run.
_SCRIPT = """
(function () {
  var controls = document.getElementById("controls");
  var select = document.getElementById("symptom-filter");
  var errorsOnly = document.getElementById("errors-only");
  controls.hidden = false;
  function apply() {
    var symptom = select.value, onlyErrors = errorsOnly && errorsOnly.checked;
    document.querySelectorAll(".row").forEach(function (row) {
      row.hidden = (symptom !== "" && row.dataset.symptom !== symptom) ||
        (onlyErrors && row.dataset.errors === "0");
    });
    document.querySelectorAll(".post").forEach(function (post) {
      var filtering = symptom !== "" || onlyErrors;
      post.hidden = filtering && !post.querySelector(".row:not([hidden])");
    });
  }
  select.addEventListener("change", apply);
  if (errorsOnly) errorsOnly.addEventListener("change", apply);
})();
"""


def _escape(text: str) -> str:
    # a raw CR would reach the page as LF (HTML input normalisation); a reference survives
    return html.escape(text, quote=True).replace("\r", "&#13;")


def _score(value: float) -> str:
    return f"{value:.3f}"


def highlight_segments(
    length: int, gold: Sequence[tuple[int, int]], predicted: Sequence[tuple[int, int]]
) -> list[tuple[int, int, list[int], list[int]]]:
    """Cut [0, length) at every span boundary: (start, end, indices of the gold spans covering
    the piece, indices of the predicted spans covering it), in order, covering [0, length)."""
    cuts = {0, length}
    for start, end in (*gold, *predicted):
        assert 0 <= start <= end <= length, (start, end, length)
        cuts.update((start, end))
    ordered = sorted(cuts)
    pieces = []
    for start, end in zip(ordered, ordered[1:]):
        in_gold = [i for i, (s, e) in enumerate(gold) if s <= start and end <= e]
        in_pred = [i for i, (s, e) in enumerate(predicted) if s <= start and end <= e]
        pieces.append((start, end, in_gold, in_pred))
    return pieces


def sentence_errors(
    text: str, gold: Sequence[tuple[int, int]], predicted: Sequence[tuple[int, int]]
) -> tuple[int, int]:
    """(missed, false): gold sentences no prediction counts for, predicted sentences not gold."""
    sentences = split_sentences(text)
    gold_sentences = covered_sentences(gold, sentences)
    predicted_sentences = covered_sentences(predicted, sentences)
    return len(gold_sentences - predicted_sentences), len(predicted_sentences - gold_sentences)


def _highlighted_text(text: str, gold: Sequence[tuple[int, int]], predicted: Sequence) -> str:
    pred_offsets = [(span.start, span.end) for span in predicted]
    parts = []
    for start, end, in_gold, in_pred in highlight_segments(len(text), gold, pred_offsets):
        piece = _escape(text[start:end])
        if not in_gold and not in_pred:
            parts.append(piece)
            continue
        classes = " ".join(name for name, hit in (("pred", in_pred), ("gold", in_gold)) if hit)
        tips = [
            f"predicted [{predicted[i].start}, {predicted[i].end}) score "
            f"{_score(predicted[i].score)}"
            for i in in_pred
        ]
        tips += [f"gold [{gold[i][0]}, {gold[i][1]})" for i in in_gold]
        tip = _escape("\n".join(tips))
        parts.append(f'<span class="{classes}" title="{tip}">{piece}</span>')
    return "".join(parts)


def _row(example: Example, text: str, prediction, annotated: bool) -> tuple[int, str]:
    """(errors, HTML) for one symptom row of a post."""
    predicted = list(prediction.spans) if prediction is not None else []
    gold = [(span.start, span.end) for span in example.answers] if annotated else []
    errors, verdict = 0, f"{len(predicted)} predicted span(s)"
    if annotated:
        missed, false = sentence_errors(text, gold, [(s.start, s.end) for s in predicted])
        errors = missed + false
        verdict = (
            f'<span class="bad">{missed} missed, {false} false sentence(s)</span>'
            if errors
            else '<span class="ok">correct</span>'
        )
    null = "no prediction" if prediction is None else f"null score {_score(prediction.null_score)}"
    symptom = _escape(example.symptom)
    body = (
        f'<div class="row" data-symptom="{symptom}" data-errors="{errors}">'
        f'<div class="row-head"><span class="symptom">{symptom}</span> &middot; {verdict} '
        f'&middot; <span class="note">{null}</span><br>'
        f'<span class="question">{_escape(example.question)}</span></div>'
        f'<div class="text">{_highlighted_text(text, gold, predicted)}</div></div>'
    )
    return errors, body


def _legend(annotated: bool) -> str:
    marks = '<span class="pred">predicted evidence</span> (hover for its score)'
    if not annotated:
        return f'<div class="legend">{marks}. No gold annotations: predictions only.</div>'
    return (
        f'<div class="legend">{marks} &middot; <span class="gold">gold evidence</span> &middot; '
        '<span class="pred gold">both</span>.<br>A span counts for a sentence when it covers at '
        "least half of it (the sentence-level metric). An example is <b>correct</b> when its "
        "predicted and gold spans count for the same sentences; its errors are the gold "
        "sentences missed plus the predicted sentences that are not gold. Posts with the most "
        "errors come first, then by post_id. Only symptoms with gold or predicted evidence get "
        "a row.</div>"
    )


def _controls(symptoms: Sequence[str], annotated: bool) -> str:
    options = "".join(f'<option value="{_escape(s)}">{_escape(s)}</option>' for s in symptoms)
    errors_only = (
        ' <label><input type="checkbox" id="errors-only"> rows with errors only</label>'
        if annotated
        else ""
    )
    return (
        '<div class="controls" id="controls" hidden><label>Symptom: '
        f'<select id="symptom-filter"><option value="">all symptoms</option>{options}</select>'
        f"</label>{errors_only}</div>"
    )


def render_report(
    posts: Mapping[str, Post],
    examples: Sequence[Example],
    predictions: Mapping[str, PredictionLike],
    *,
    title: str = "Evidence report",
    annotated: bool = True,
) -> str:
    """A complete, self-contained HTML document of every post that has an example.

    `posts` supplies the text (an example's own `context` if its post is missing); predictions
    are keyed by example_id, and an example without one has no predicted spans. With
    `annotated=False` (a `--predict` run) gold answers are ignored and nothing is scored."""
    by_post: dict[str, list[Example]] = {}
    for example in examples:
        by_post.setdefault(example.post_id, []).append(example)
    blocks = []  # (errors, post_id, HTML)
    total_errors = 0
    for post_id, post_examples in by_post.items():
        post = posts.get(post_id)
        text = post.text if post is not None else post_examples[0].context
        rows, errors = [], 0
        for example in post_examples:
            prediction = predictions.get(example.example_id)
            has_pred = prediction is not None and len(prediction.spans) > 0
            if has_pred or (annotated and example.answers):
                row_errors, row = _row(example, text, prediction, annotated)
                errors += row_errors
                rows.append(row)
        if not rows:
            what = "predicted or annotated" if annotated else "predicted"
            rows.append(
                f'<p class="note">No evidence {what} for any symptom.</p><details>'
                f'<summary>post text</summary><div class="text">{_escape(text)}</div></details>'
            )
        total_errors += errors
        count = f" &middot; {errors} error(s)" if annotated else ""
        head = f"<h2>post {_escape(post_id)}{count}</h2>"
        blocks.append((errors, post_id, f'<section class="post">{head}{"".join(rows)}</section>'))
    blocks.sort(key=lambda block: (-block[0], block[1]) if annotated else (0, block[1]))
    symptoms = sorted({example.symptom for example in examples})
    summary = f"{len(by_post)} posts, {len(examples)} examples"
    if annotated:
        summary += f", {total_errors} sentence error(s)"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{_escape(title)}</h1>\n<p class="note">{summary}</p>\n{_legend(annotated)}\n'
        f"{_controls(symptoms, annotated)}\n"
        + "\n".join(block for _, _, block in blocks)
        + f"\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
