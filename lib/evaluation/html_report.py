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

Optional sections (each keyword of render_report left None leaves its section out): a header
table (run, weights, config hash ...); the split's metrics as a table (overall, then one row per
symptom) with a bar chart of per-symptom sentence F1; the training curve (validation metric and
training loss against step, two small charts); the metric against the null threshold with the
chosen threshold marked; per gold span the annotator's explanation, folded in a <details> under
its row; and per row each sentence's evidence score, shown on hover ("sentence 3: score 2.410",
0-based sentence indices as in predictions.jsonl). Charts are inline SVG from
lib/evaluation/svg_charts.py, which skips or clamps NaN, inf and None.

Order: every post section carries data-post, data-errors and data-confidence, and the inline script
reorders the sections when the Order menu changes: most errors first (the default, annotated runs
only), least confident first, by post id. A post's confidence is the smallest distance of any of
its predictions from the decision boundary of the null test (|best_score - null_score +
null_threshold|, see lib/evaluation/decoding.select_spans); posts without a finite one come last.

Safety: every string that comes from data (post text, span text, post_id, symptom, question,
explanation, header keys and values, metric names, chart labels) goes through
html.escape(quote=True), in text and in attributes alike. The page loads nothing: inline CSS,
inline SVG (without xmlns) and a small inline script (the symptom filter and the order menu); with
scripts off the controls stay hidden, everything is shown, in the default order.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from lib.data.corpus import Example, Post
from lib.data.sentences import split_sentences
from lib.evaluation.metrics import covered_sentences
from lib.evaluation.svg_charts import bar_chart, finite, line_chart


class SpanLike(Protocol):
    start: int
    end: int
    text: str
    score: float


class PredictionLike(Protocol):
    spans: Sequence[SpanLike]
    null_score: float
    best_score: float  # best span score before thresholding (-inf when there is no span)


SentenceTip = tuple[int, int, str]  # (start, end, hover text) of one sentence of a post


@dataclass(frozen=True)
class _PostOptions:
    """What render_report's keywords ask of every post section."""

    annotated: bool
    explanations: Mapping[str, Sequence[tuple[int, int, str]]]
    sentence_scores: Mapping[str, Sequence[float]]
    sentences: Mapping[str, Sequence[tuple[int, int]]]
    null_threshold: float | None


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
.sentence:hover { outline: 1px dotted #8c959f; }
.explanation { font-size: .9em; margin-top: .3em; }
.explanation-text { white-space: pre-wrap; overflow-wrap: anywhere; padding: .2em .7em; }
.overview { margin: 1em 0; }
.overview h2 { font-size: 1.1em; margin: .8em 0 .3em; }
table { border-collapse: collapse; font-size: .9em; }
th, td { border: 1px solid #d0d7de; padding: .15em .6em; text-align: left;
  overflow-wrap: anywhere; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.chart { width: 100%; max-width: 640px; height: auto; }
[hidden] { display: none !important; }
"""

# Hides the rows of other symptoms (and posts left empty); revealed only when scripts run.
_SCRIPT = """
(function () {
  var controls = document.getElementById("controls");
  var select = document.getElementById("symptom-filter");
  var errorsOnly = document.getElementById("errors-only");
  var order = document.getElementById("post-order");
  var list = document.getElementById("posts");
  controls.hidden = false;
  function byPost(a, b) {
    var x = a.dataset.post, y = b.dataset.post;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  var orders = {
    errors: function (a, b) { return b.dataset.errors - a.dataset.errors || byPost(a, b); },
    confidence: function (a, b) {
      return a.dataset.confidence - b.dataset.confidence || byPost(a, b);
    },
    post: byPost
  };
  function reorder() {
    var posts = Array.prototype.slice.call(list.children);
    posts.sort(orders[order.value]).forEach(function (post) { list.appendChild(post); });
  }
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
  order.addEventListener("change", reorder);
})();
"""


def _escape(text: str) -> str:
    # a raw CR would reach the page as LF (HTML input normalisation); a reference survives
    return html.escape(text, quote=True).replace("\r", "&#13;")


def _score(value: float) -> str:
    return f"{value:.3f}"


def _is_finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _value(value: object) -> str:
    """A metric for a table cell: three decimals, or "n/a" for None, NaN and non-numbers."""
    number = finite(value)
    return "n/a" if number is None else f"{number:.3f}"


def highlight_segments(
    length: int,
    gold: Sequence[tuple[int, int]],
    predicted: Sequence[tuple[int, int]],
    *,
    extra_cuts: Sequence[int] = (),
) -> list[tuple[int, int, list[int], list[int]]]:
    """Cut [0, length) at every span boundary (and at every offset of `extra_cuts`, e.g. sentence
    boundaries): (start, end, indices of the gold spans covering the piece, indices of the
    predicted spans covering it), in order, covering [0, length)."""
    cuts = {0, length}
    for start, end in (*gold, *predicted):
        assert 0 <= start <= end <= length, (start, end, length)
        cuts.update((start, end))
    for cut in extra_cuts:
        assert 0 <= cut <= length, (cut, length)
        cuts.add(cut)
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


def sentence_tips(
    length: int, sentences: Sequence[tuple[int, int]], scores: Sequence[float]
) -> list[SentenceTip]:
    """(start, end, "sentence i: score s") for each sentence that has a score; sentences that are
    empty, outside [0, length) or overlap an earlier one are left out."""
    tips: list[SentenceTip] = []
    for index, ((start, end), score) in enumerate(zip(sentences, scores)):
        if 0 <= start < end <= length and (not tips or tips[-1][1] <= start):
            number = finite(score)
            shown = "n/a" if number is None else _score(number)
            tips.append((start, end, f"sentence {index}: score {shown}"))
    return tips


def _piece(text: str, piece: tuple, gold: Sequence, predicted: Sequence, sentence: str) -> str:
    """One cut piece of a row's text, wrapped in the marks of the spans that cover it."""
    start, end, in_gold, in_pred = piece
    escaped = _escape(text[start:end])
    if not in_gold and not in_pred:
        return escaped
    classes = " ".join(name for name, hit in (("pred", in_pred), ("gold", in_gold)) if hit)
    tips = [
        f"predicted [{predicted[i].start}, {predicted[i].end}) score {_score(predicted[i].score)}"
        for i in in_pred
    ]
    tips += [f"gold [{gold[i][0]}, {gold[i][1]})" for i in in_gold]
    tips += [sentence] if sentence else []
    return f'<span class="{classes}" title="{_escape(chr(10).join(tips))}">{escaped}</span>'


def _highlighted_text(
    text: str,
    gold: Sequence[tuple[int, int]],
    predicted: Sequence,
    tips: Sequence[SentenceTip] = (),
) -> str:
    """The row's text with its marks; each sentence of `tips` (in order, non-overlapping) is
    wrapped in a span titled with its tip. Its boundaries are cut points too, so the marks nest
    inside the sentence spans and the text content stays exactly `text`."""
    pred_offsets = [(span.start, span.end) for span in predicted]
    cuts = [offset for start, end, _ in tips for offset in (start, end)]
    parts, current, k = [], None, 0  # current: index of the open sentence span
    for piece in highlight_segments(len(text), gold, pred_offsets, extra_cuts=cuts):
        start, end = piece[0], piece[1]
        while k < len(tips) and tips[k][1] <= start:
            k += 1
        inside = k if k < len(tips) and tips[k][0] <= start and end <= tips[k][1] else None
        if inside != current:
            parts.append("</span>" if current is not None else "")
            if inside is not None:
                parts.append(f'<span class="sentence" title="{_escape(tips[inside][2])}">')
            current = inside
        sentence = tips[inside][2] if inside is not None else ""
        parts.append(_piece(text, piece, gold, predicted, sentence))
    parts.append("</span>" if current is not None else "")
    return "".join(parts)


def _explanations(text: str, explained: Sequence[tuple[int, int, str]]) -> str:
    """A folded <details> per gold span with explanation text (none for an empty one)."""
    parts = []
    for start, end, explanation in explained:
        if explanation is None or not str(explanation).strip():
            continue
        quoted = text[start:end] if 0 <= start <= end <= len(text) else ""
        quoted = quoted if len(quoted) <= 80 else quoted[:79] + "\u2026"
        parts.append(
            f'<details class="explanation"><summary>annotator\'s explanation of gold '
            f"[{start}, {end}) &ldquo;{_escape(quoted)}&rdquo;</summary>"
            f'<div class="explanation-text">{_escape(str(explanation))}</div></details>'
        )
    return "".join(parts)


def _row(
    example: Example,
    text: str,
    prediction,
    annotated: bool,
    *,
    tips: Sequence[SentenceTip] = (),
    explained: Sequence[tuple[int, int, str]] = (),
) -> tuple[int, str]:
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
    null = "no prediction"
    if prediction is not None:
        best = _score(prediction.best_score) if _is_finite(prediction.best_score) else "none"
        null = f"null score {_score(prediction.null_score)}, best span score {best}"
    symptom = _escape(example.symptom)
    body = (
        f'<div class="row" data-symptom="{symptom}" data-errors="{errors}">'
        f'<div class="row-head"><span class="symptom">{symptom}</span> &middot; {verdict} '
        f'&middot; <span class="note">{null}</span><br>'
        f'<span class="question">{_escape(example.question)}</span></div>'
        f'<div class="text">{_highlighted_text(text, gold, predicted, tips)}</div>'
        f"{_explanations(text, explained) if annotated else ''}</div>"
    )
    return errors, body


def confidence(predictions: Sequence, null_threshold: float | None) -> float:
    """The smallest |best_score - null_score + null_threshold| (the distance from the null test's
    boundary, null - best = threshold) over the predictions; inf when none is finite."""
    threshold = null_threshold if _is_finite(null_threshold) else 0.0
    margins = [math.inf]
    for prediction in predictions:
        best, null = prediction.best_score, prediction.null_score
        if _is_finite(best) and _is_finite(null):
            margins.append(abs(best - null + threshold))
    return min(margins)


def _js_number(value: float) -> str:
    """A float as JavaScript's Number() reads it back exactly."""
    return "Infinity" if value == math.inf else repr(value)


def _legend(annotated: bool, with_tips: bool) -> str:
    marks = '<span class="pred">predicted evidence</span> (hover for its score)'
    if with_tips:
        marks += "; hover a sentence for its evidence score (0-based sentence index)"
    if not annotated:
        return f'<div class="legend">{marks}. No gold annotations: predictions only.</div>'
    return (
        f'<div class="legend">{marks} &middot; <span class="gold">gold evidence</span> &middot; '
        '<span class="pred gold">both</span>.<br>A span counts for a sentence when it covers at '
        "least half of it (the sentence-level metric). An example is <b>correct</b> when its "
        "predicted and gold spans count for the same sentences; its errors are the gold "
        "sentences missed plus the predicted sentences that are not gold. Posts with the most "
        "errors come first, then by post_id (the Order menu changes this). Only symptoms with "
        "gold or predicted evidence get a row.</div>"
    )


def _controls(symptoms: Sequence[str], annotated: bool) -> str:
    options = "".join(f'<option value="{_escape(s)}">{_escape(s)}</option>' for s in symptoms)
    errors_only = (
        ' <label><input type="checkbox" id="errors-only"> rows with errors only</label>'
        if annotated
        else ""
    )
    orders = [("confidence", "least confident first"), ("post", "by post id")]
    if annotated:
        orders.insert(0, ("errors", "most errors first"))
    else:
        orders.reverse()  # "by post id" is the default order of a --predict run
    order = "".join(f'<option value="{value}">{name}</option>' for value, name in orders)
    return (
        '<div class="controls" id="controls" hidden><label>Symptom: '
        f'<select id="symptom-filter"><option value="">all symptoms</option>{options}</select>'
        f'</label>{errors_only} <label>Order: <select id="post-order">{order}</select></label>'
        "</div>"
    )


def _header_table(header: Mapping[str, str]) -> str:
    rows = "".join(
        f"<tr><th>{_escape(str(key))}</th><td>{_escape(str(value))}</td></tr>"
        for key, value in header.items()
    )
    return f'<table class="header">{rows}</table>'


def _metrics_section(metrics: Mapping[str, float]) -> str:
    """Overall and per-symptom sentence P/R/F1/support, the per-symptom F1 bars, and the other
    overall metrics (ranking_map ...) folded below."""
    names = ("sentence_precision", "sentence_recall", "sentence_f1")
    symptoms = sorted(key[: -len("/support")] for key in metrics if key.endswith("/support"))
    supports = [finite(metrics[f"{s}/support"]) for s in symptoms]
    total = sum(value for value in supports if value is not None)
    rows = [("overall", [metrics.get(name) for name in names], f"{total:.0f}" if symptoms else "")]
    for symptom, support in zip(symptoms, supports):
        values = [metrics.get(f"{symptom}/{name}") for name in names]
        rows.append((symptom, values, "n/a" if support is None else f"{support:.0f}"))
    body = "".join(
        f"<tr><th>{_escape(name)}</th>"
        + "".join(f'<td class="num">{_value(v)}</td>' for v in values)
        + f'<td class="num">{support}</td></tr>'
        for name, values, support in rows
    )
    table = (
        "<table><tr><th>symptom</th><th>precision</th><th>recall</th><th>F1</th>"
        f"<th>support (gold sentences)</th></tr>{body}</table>"
    )
    others = sorted(key for key in metrics if "/" not in key and key not in names)
    other = "".join(
        f'<tr><th>{_escape(key)}</th><td class="num">{_value(metrics[key])}</td></tr>'
        for key in others
    )
    if other:
        other = f"<details><summary>other metrics</summary><table>{other}</table></details>"
    chart = bar_chart(
        symptoms,
        [metrics.get(f"{s}/sentence_f1") for s in symptoms],
        title="sentence F1 per symptom",
    )
    return f'<section class="overview"><h2>Metrics</h2>{table}{other}{chart}</section>'


def _history_section(history: Sequence[Mapping[str, float]], metric_name: str) -> str:
    """Validation metric and training loss against step, side by side."""
    metric = [(entry.get("step"), entry.get(metric_name)) for entry in history]
    loss = [(entry.get("step"), entry.get("train_loss")) for entry in history]
    charts = [
        line_chart(
            [(f"validation {metric_name}", metric)],
            title=f"validation {metric_name}",
            x_label="step",
            y_label=metric_name,
        ),
        line_chart([("train_loss", loss)], title="training loss", x_label="step", y_label="loss"),
    ]
    return (
        f'<section class="overview"><h2>Training curve</h2><p class="note">{len(history)} '
        f'evaluation(s); missing and non-finite values are left out.</p><div class="charts">'
        f"{''.join(charts)}</div></section>"
    )


def _threshold_section(
    curve: Sequence[tuple[float, float]], chosen: float | None, label: str
) -> str:
    """The metric against the null threshold, the chosen threshold marked."""
    number = finite(chosen)
    note = "no threshold chosen" if number is None else f"chosen null threshold {number:.4g}"
    chart = line_chart(
        [(label, curve)],
        title=f"{label} against the null threshold",
        x_label="null threshold",
        y_label=label,
        marker_x=number,
    )
    return (
        f'<section class="overview"><h2>Null threshold</h2><p class="note">{_escape(note)}; '
        f"{len(curve)} point(s).</p>{chart}</section>"
    )


def _post_block(
    post_id: str,
    text: str,
    post_examples: Sequence[Example],
    predictions: Mapping[str, PredictionLike],
    options: _PostOptions,
) -> tuple[int, float, str]:
    """(errors, confidence, HTML) of one post section."""
    annotated, scores = options.annotated, options.sentence_scores
    post_sentences = None
    rows, errors = [], 0
    for example in post_examples:
        prediction = predictions.get(example.example_id)
        has_pred = prediction is not None and len(prediction.spans) > 0
        if not (has_pred or (annotated and example.answers)):
            continue
        tips: list[SentenceTip] = []
        if example.example_id in scores:
            if post_sentences is None:
                post_sentences = options.sentences.get(post_id)
                post_sentences = split_sentences(text) if post_sentences is None else post_sentences
            tips = sentence_tips(len(text), post_sentences, scores[example.example_id])
        explained = options.explanations.get(example.example_id, ())
        row_errors, row = _row(example, text, prediction, annotated, tips=tips, explained=explained)
        errors += row_errors
        rows.append(row)
    if not rows:
        what = "predicted or annotated" if annotated else "predicted"
        rows.append(
            f'<p class="note">No evidence {what} for any symptom.</p><details>'
            f'<summary>post text</summary><div class="text">{_escape(text)}</div></details>'
        )
    found = [p for p in (predictions.get(e.example_id) for e in post_examples) if p is not None]
    least = confidence(found, options.null_threshold)
    count = f" &middot; {errors} error(s)" if annotated else ""
    head = f"<h2>post {_escape(post_id)}{count}</h2>"
    section = (
        f'<section class="post" data-post="{_escape(post_id)}" data-errors="{errors}" '
        f'data-confidence="{_js_number(least)}">{head}{"".join(rows)}</section>'
    )
    return errors, least, section


def render_report(
    posts: Mapping[str, Post],
    examples: Sequence[Example],
    predictions: Mapping[str, PredictionLike],
    *,
    title: str = "Evidence report",
    annotated: bool = True,
    header: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    history: Sequence[Mapping[str, float]] | None = None,
    metric_name: str = "sentence_f1",
    threshold_curve: Sequence[tuple[float, float]] | None = None,
    chosen_threshold: float | None = None,
    curve_label: str = "validation sentence_f1",
    explanations: Mapping[str, Sequence[tuple[int, int, str]]] | None = None,
    sentence_scores: Mapping[str, Sequence[float]] | None = None,
    sentences: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    null_threshold: float | None = None,
) -> str:
    """A complete, self-contained HTML document of every post that has an example.

    `posts` supplies the text (an example's own `context` if its post is missing); predictions
    are keyed by example_id, and an example without one has no predicted spans. With
    `annotated=False` (a `--predict` run) gold answers are ignored and nothing is scored.

    Optional, each None = its section left out: `header` (key -> value, a table at the top);
    `metrics` (a metrics.json dict of the split: a table and per-symptom F1 bars); `history`
    (metrics.json "history": `metric_name` and train_loss against step); `threshold_curve`
    ((null threshold, metric) points, `curve_label` its name) with `chosen_threshold` marked;
    `explanations` (example_id -> (start, end, explanation) of gold spans, annotated runs only);
    `sentence_scores` (example_id -> one evidence score per sentence of its post, shown on hover)
    with `sentences` (post_id -> sentence offsets; split_sentences of the text when missing);
    `null_threshold` (for the "least confident first" order; None counts as 0)."""
    by_post: dict[str, list[Example]] = {}
    for example in examples:
        by_post.setdefault(example.post_id, []).append(example)
    options = _PostOptions(
        annotated, explanations or {}, sentence_scores or {}, sentences or {}, null_threshold
    )
    blocks = []  # (errors, post_id, HTML)
    for post_id, post_examples in by_post.items():
        post = posts.get(post_id)
        text = post.text if post is not None else post_examples[0].context
        errors, _, block = _post_block(post_id, text, post_examples, predictions, options)
        blocks.append((errors, post_id, block))
    blocks.sort(key=lambda block: (-block[0], block[1]) if annotated else (0, block[1]))
    symptoms = sorted({example.symptom for example in examples})
    summary = f"{len(by_post)} posts, {len(examples)} examples"
    if annotated:
        summary += f", {sum(errors for errors, _, _ in blocks)} sentence error(s)"
    overview = [
        _header_table(header) if header is not None else "",
        f'<p class="note">{summary}</p>',
        _legend(annotated, sentence_scores is not None),
        _metrics_section(metrics) if metrics is not None else "",
        _history_section(history, metric_name) if history is not None else "",
        _threshold_section(threshold_curve, chosen_threshold, curve_label)
        if threshold_curve is not None
        else "",
        _controls(symptoms, annotated),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_escape(title)}</h1>\n"
        + "\n".join(part for part in overview if part)
        + '\n<div id="posts">\n'
        + "\n".join(block for _, _, block in blocks)
        + f"\n</div>\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
