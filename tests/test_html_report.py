"""The HTML evidence report (lib/evaluation/html_report.py): escaping, self-containment, exact text, order."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.data.corpus import Example, Post, Span
from lib.data.sentences import split_sentences
from lib.evaluation.html_report import (
    confidence,
    highlight_segments,
    render_report,
    sentence_errors,
    sentence_tips,
)
from lib.evaluation.svg_charts import bar_chart, line_chart

VOID = {"br", "meta", "input", "img", "hr", "link"}
SVG_ELEMENTS = {"svg", "title", "g", "text", "line", "rect", "polyline", "circle"}
PAGE_ELEMENTS = {
    *"html head meta title style body h1 h2 p div span br select option label input b".split(),
    *"script section details summary table tr th td".split(),
    *SVG_ELEMENTS,
}
COORDINATES = {"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height"}


@dataclass(frozen=True)
class FakeSpan:
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class FakePrediction:
    spans: tuple[FakeSpan, ...]
    null_score: float = -1.5
    best_score: float = 2.0


class StrictParser(HTMLParser):
    """html.parser that fails on anything a sloppy template could produce: an end tag that does
    not close the innermost open element, an end tag of a void element, a repeated attribute, a
    declaration other than the doctype, a CDATA or processing instruction, unclosed elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.elements: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        names = [name for name, _ in attrs]
        assert len(names) == len(set(names)), (tag, attrs)
        self.elements.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag not in VOID:
            self.stack.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):  # <line .../>: only inside inline SVG
        assert tag in SVG_ELEMENTS and any(t == "svg" for t, _ in self.stack), tag
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag):
        assert tag not in VOID, tag
        assert self.stack and self.stack[-1][0] == tag, (tag, self.stack[-3:])
        self.stack.pop()

    def handle_decl(self, decl):
        assert decl == "DOCTYPE html", decl

    def unknown_decl(self, data):
        raise AssertionError(f"unknown declaration {data!r}")

    def handle_pi(self, data):
        raise AssertionError(f"processing instruction {data!r}")

    def close(self):
        super().close()
        assert not self.stack, self.stack


class ReportParser(StrictParser):
    """Collects, per `div.text`, its text content and for every character the marks on it (gold,
    pred), the post headings, the rows and post sections with their attributes, and the
    hover titles of the sentence spans per character."""

    def __init__(self):
        super().__init__()
        self.texts: list[str] = []
        self.marks: list[list[frozenset[str]]] = []
        self.sentence_titles: list[list[str | None]] = []
        self.headings: list[str] = []
        self.rows: list[dict] = []
        self.sections: list[dict] = []

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        attrs = dict(attrs)
        if tag == "div" and attrs.get("class") == "text":
            self.texts.append("")
            self.marks.append([])
            self.sentence_titles.append([])
        if tag == "div" and attrs.get("class") == "row":
            self.rows.append(attrs)
        if tag == "section" and attrs.get("class") == "post":
            self.sections.append(attrs)
        if tag == "h2" and self.in_post():
            self.headings.append("")

    def in_post(self) -> bool:
        return any(tag == "section" and a.get("class") == "post" for tag, a in self.stack)

    def handle_data(self, data):
        tags = [tag for tag, _ in self.stack]
        if "h2" in tags and self.in_post():
            self.headings[-1] += data
        if any(tag == "div" and a.get("class") == "text" for tag, a in self.stack):
            spans = [a for tag, a in self.stack if tag == "span"]
            classes = {c for a in spans for c in a["class"].split()} & {"gold", "pred"}
            sentence = [a["title"] for a in spans if a["class"] == "sentence"]
            self.texts[-1] += data
            self.marks[-1] += [frozenset(classes)] * len(data)
            self.sentence_titles[-1] += [sentence[0] if sentence else None] * len(data)


def parse(page: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(page)
    parser.close()
    return parser


def example(post: Post, symptom: str, spans=(), question="q?") -> Example:
    answers = tuple(Span(s, e, post.text[s:e]) for s, e in spans)
    return Example(
        f"{post.post_id}::{symptom}", post.post_id, symptom, question, post.text, answers
    )


def prediction(post: Post, spans, score=2.0) -> FakePrediction:
    return FakePrediction(tuple(FakeSpan(s, e, post.text[s:e], score) for s, e in spans))


SENTENCES = "I am sad. I cannot sleep. I eat nothing. I feel useless."


def sentence(k: int) -> tuple[int, int]:
    starts = [m.start() for m in re.finditer(r"I ", SENTENCES)]
    return starts[k], SENTENCES.index(".", starts[k]) + 1


HOSTILE = (
    "I feel awful <script>alert(1)</script> & nothing helps.\r\n"
    "She said \"quotes\" and 'single' things.\n😀 and 👩‍👩‍👧 forever."
)


def hostile_page() -> tuple[str, Post]:
    post = Post('p"><img src=x>', HOSTILE)
    mood = example(post, "DEPRESSED_MOOD", [(0, 12), (13, 38)], question='<b>"mood"</b> & co')
    sleep = example(post, 'SLEEP_"><i>', [(HOSTILE.index("😀"), len(HOSTILE))])
    preds = {
        mood.example_id: prediction(post, [(2, 20), (30, 45)], score=1.25),
        sleep.example_id: prediction(post, [(HOSTILE.index("👩"), HOSTILE.index(" forever"))]),
    }
    page = render_report({post.post_id: post}, [mood, sleep], preds, title="<t> & 'x'")
    return page, post


def test_hostile_text_is_escaped_and_comes_back_exactly():
    page, post = hostile_page()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "<i>" not in page and '<b>"mood' not in page and "<t>" not in page
    assert "\r" not in page  # a browser would read a raw CR as LF; it is sent as &#13;
    assert "&quot;quotes&quot;" in page and "&#x27;single&#x27;" in page and "&amp;" in page
    parsed = parse(page)
    assert parsed.texts == [post.text, post.text]  # CR, emoji and ZWJ sequences intact
    assert len(parsed.headings) == 1 and parsed.headings[0].startswith('post p"><img src=x> · ')
    assert {row["data-symptom"] for row in parsed.rows} == {"DEPRESSED_MOOD", 'SLEEP_"><i>'}
    assert 'data-symptom="SLEEP_&quot;&gt;&lt;i&gt;"' in page
    assert set(parsed.elements) <= {
        *"html head meta title style body h1 h2 p div span br select option label input".split(),
        "script",
        "section",
        "details",
        "summary",
        "b",
    }
    assert parsed.elements.count("script") == 1 and parsed.elements.count("b") == 1  # ours
    assert "score 1.250" in page


def test_page_references_nothing_outside_itself():
    page, _ = hostile_page()
    parsed = parse(page)
    for tag, name, value in parsed.attributes:  # the data says "src=x": as text, never markup
        assert name not in ("src", "srcset", "action", "background", "style"), (tag, name)
        assert name != "href" or value.startswith("#"), value
    assert not {"img", "link", "iframe", "object", "embed", "a"} & set(parsed.elements)
    post = Post("plain", SENTENCES)  # data free of the needles: the scan checks our template
    ex = example(post, "FATIGUE", [sentence(1)])
    template = render_report({"plain": post}, [ex], {ex.example_id: prediction(post, [(0, 9)])})
    for needle in ("http:", "https:", "//", "src=", "href=", "url(", "@import", "<link"):
        assert needle not in template.lower(), needle


@st.composite
def post_and_spans(draw):
    alphabet = st.sampled_from(list("ab .!?\n\r\t<>&\"'") + ["😀", "👩\u200d👧", "é", "\u2028"])
    text = "".join(draw(st.lists(alphabet, min_size=1, max_size=60)))
    bound = st.integers(0, len(text))
    spans = st.lists(st.tuples(bound, bound).map(sorted).map(tuple), max_size=5)
    return text, draw(spans), draw(spans)


@settings(max_examples=150, deadline=None)
@given(post_and_spans())
def test_highlighted_text_is_the_post_and_every_character_has_the_right_marks(case):
    text, gold, predicted = case
    post = Post("p", text)
    ex = example(post, "ANHEDONIA", gold)
    page = render_report({"p": post}, [ex], {ex.example_id: prediction(post, predicted)})
    parsed = parse(page)
    assert all(shown == text for shown in parsed.texts) and parsed.texts
    if any(s < e for s, e in (*gold, *predicted)):
        assert len(parsed.texts) == 1
        for index, marks in enumerate(parsed.marks[0]):  # slow oracle: each character alone
            in_gold = any(s <= index < e for s, e in gold)
            in_pred = any(s <= index < e for s, e in predicted)
            assert marks == {n for n, hit in (("gold", in_gold), ("pred", in_pred)) if hit}


def test_segments_cut_at_every_boundary_including_nested_and_adjacent():
    pieces = highlight_segments(10, [(0, 4), (4, 6)], [(2, 8), (3, 5)])
    assert [(s, e) for s, e, _, _ in pieces] == [(0, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 8),
                                                 (8, 10)]  # fmt: skip
    assert pieces[3] == (4, 5, [1], [0, 1]) and pieces[-1] == (8, 10, [], [])


def test_sentence_errors_count_missed_and_false_sentences():
    half = (sentence(1)[0], sentence(1)[0] + 3)  # less than half a sentence counts for nothing
    assert sentence_errors(SENTENCES, [sentence(0)], [sentence(0)]) == (0, 0)
    assert sentence_errors(SENTENCES, [sentence(0), sentence(1)], [sentence(2)]) == (2, 1)
    assert sentence_errors(SENTENCES, [sentence(0)], [(sentence(0)[0], 5), half]) == (0, 0)
    assert sentence_errors(SENTENCES, [], []) == (0, 0)


def test_posts_with_most_errors_come_first_then_by_post_id():
    posts = {pid: Post(pid, SENTENCES) for pid in ("a", "b", "c", "d", "e")}
    plan = {  # post -> (gold sentences, predicted sentences): errors = symmetric difference
        "a": ([0], [0]),  # 0
        "b": ([0, 1], [2]),  # 3
        "c": ([1], []),  # 1
        "d": ([], [1, 3, 2]),  # 3
        "e": ([], []),  # 0, nothing to show
    }
    examples, preds = [], {}
    for pid, (gold, predicted) in plan.items():
        ex = example(posts[pid], "FATIGUE", [sentence(k) for k in gold])
        examples.append(ex)
        preds[ex.example_id] = prediction(posts[pid], [sentence(k) for k in predicted])
    examples.reverse()  # input order must not matter
    page = render_report(posts, examples, preds)
    parsed = parse(page)
    assert page.count("No evidence predicted or annotated for any symptom.") == 1
    errors = {pid: len(set(g) ^ set(p)) for pid, (g, p) in plan.items()}
    expected = sorted(plan, key=lambda pid: (-errors[pid], pid))
    assert [h.split()[1] for h in parsed.headings] == expected == ["b", "d", "c", "a", "e"]
    assert [h.split("· ")[1] for h in parsed.headings][:3] == ["3 error(s)"] * 2 + ["1 error(s)"]
    assert {r["data-errors"] for r in parsed.rows} == {"0", "1", "3"}
    assert len(parsed.rows) == 4 and len(parsed.texts) == 5  # e: the plain text, no row


def test_output_is_deterministic():
    page, _ = hostile_page()
    assert page == hostile_page()[0]


def test_predict_mode_shows_predictions_only():
    posts = {pid: Post(pid, SENTENCES) for pid in ("z", "m", "q")}
    symptoms = ("ANHEDONIA", "FATIGUE")
    examples = [
        example(posts[p], s, [sentence(0)]) for p in posts for s in symptoms
    ]  # gold ignored
    preds = {
        "z::FATIGUE": prediction(posts["z"], [sentence(3)], score=0.5),
        "m::ANHEDONIA": prediction(posts["m"], [sentence(1), sentence(2)]),
        "m::FATIGUE": prediction(posts["m"], []),
    }
    page = render_report(posts, examples, preds, annotated=False)
    parsed = parse(page)
    assert [h.split()[1] for h in parsed.headings] == ["m", "q", "z"]  # post_id order
    assert not any("error" in h for h in parsed.headings)
    assert all(mark <= {"pred"} for marks in parsed.marks for mark in marks)
    assert [r["data-symptom"] for r in parsed.rows] == ["ANHEDONIA", "FATIGUE"]
    assert "gold evidence" not in page and "predictions only" in page
    assert "No evidence predicted for any symptom." in page
    assert parsed.texts == [SENTENCES] * 3  # q's text shown once, unhighlighted


def test_missing_prediction_counts_as_no_spans():
    post = Post("p", SENTENCES)
    ex = example(post, "FATIGUE", [sentence(2)])
    parsed = parse(render_report({"p": post}, [ex], {}))
    assert parsed.rows[0]["data-errors"] == "1" and parsed.headings == ["post p · 1 error(s)"]
    assert {m for m in parsed.marks[0]} == {frozenset(), frozenset({"gold"})}


# ------------------------------------------------------------------ the optional sections

NASTY = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "&amp;",
    "'single' \"double\"",
    "]]>",
    "</svg>",
    "ctrl\x00\x01\x07\x1b\x7f\r\n\t",
)
NAUGHTY = " ".join(NASTY)  # every hostile string at once


def metrics_for(symptoms, f1=0.5):
    metrics = {"sentence_precision": 0.6, "sentence_recall": 0.4, "sentence_f1": 0.48}
    metrics.update({"ranking_map": 0.31, "exact": 0.25})
    for k, symptom in enumerate(symptoms):
        metrics.update(
            {
                f"{symptom}/sentence_precision": 0.5 + k / 10,
                f"{symptom}/sentence_recall": 0.25,
                f"{symptom}/sentence_f1": f1 + k / 10,
                f"{symptom}/support": 3 + k,
                f"{symptom}/exact": 0.1,
            }
        )
    return metrics


HISTORY = [
    {"step": 122, "epoch": 1, "train_loss": 1.23, "sentence_f1": 0.61},
    {"step": 244, "epoch": 2, "train_loss": None, "sentence_f1": 0.70},
    {"step": 366, "epoch": 3, "train_loss": 0.64, "sentence_f1": 0.81},
]
CURVE = [(-2.0, 0.4), (-1.0, 0.55), (0.0, 0.61), (0.5, 0.66), (1.5, 0.5)]


def full_page(**overrides) -> tuple[str, Post, Example]:
    post = Post("p1", SENTENCES)
    ex = example(post, "FATIGUE", [sentence(1), sentence(3)])
    other = Post("p2", "Nothing to see here.")
    ex2 = example(other, "FATIGUE")
    preds = {
        ex.example_id: FakePrediction(
            tuple(FakeSpan(*sentence(1), "", 2.41) for _ in [0]), null_score=-1.0, best_score=2.41
        ),
        ex2.example_id: FakePrediction((), null_score=0.9, best_score=0.2),
    }
    options = dict(
        header={"run": "runs/demo", "weights": "best model (step 366)", "config sha256": "ab12"},
        metrics=metrics_for(["FATIGUE", "SLEEP"]),
        history=HISTORY,
        threshold_curve=CURVE,
        chosen_threshold=0.5,
        explanations={ex.example_id: [(*sentence(1), "tired all day"), (*sentence(3), " ")]},
        sentence_scores={ex.example_id: [0.1, 2.41, -3.0, 1.0]},
        null_threshold=0.5,
    )
    options.update(overrides)
    page = render_report({"p1": post, "p2": other}, [ex, ex2], preds, **options)
    return page, post, ex


def svg_numbers_are_finite(parsed: ReportParser) -> None:
    """Every coordinate-like attribute of the SVG elements is a finite number."""
    for tag, name, value in parsed.attributes:
        if tag not in SVG_ELEMENTS:
            continue
        if name in COORDINATES:
            assert math.isfinite(float(value)), (tag, name, value)
        if name in ("points", "viewBox"):
            numbers = re.split(r"[ ,]+", value.strip())
            assert numbers and all(math.isfinite(float(n)) for n in numbers), (tag, value)
        if name == "transform":
            assert re.fullmatch(r"rotate\(-90 [0-9.]+ [0-9.]+\)", value), value


def test_every_section_renders_and_the_page_stays_self_contained():
    page, post, ex = full_page()
    parsed = parse(page)
    assert set(parsed.elements) <= PAGE_ELEMENTS
    assert parsed.elements.count("script") == 1
    assert page.count("<svg") == page.count("</svg>") == 4  # F1 bars, 2 history charts, threshold
    for needle in ("http:", "https:", "//", "xmlns", "src=", "href=", "url(", "<link"):
        assert needle not in page.lower(), needle
    svg_numbers_are_finite(parsed)
    # header: a definition table at the top, before the posts
    assert "<th>weights</th><td>best model (step 366)</td>" in page
    assert page.index('class="header"') < page.index('id="posts"')
    # metrics: overall first, then one row per symptom, other overall metrics folded
    assert "<th>overall</th><td" in page and "<th>SLEEP</th>" in page
    assert (
        page.index("<th>overall</th>")
        < page.index("<th>FATIGUE</th>")
        < page.index("<th>SLEEP</th>")
    )
    assert '<td class="num">0.480</td><td class="num">7</td>' in page  # overall F1, support 3+4
    assert "<th>ranking_map</th>" in page and "FATIGUE/exact" not in page
    assert "sentence F1 per symptom" in page and "0.600</text>" in page  # SLEEP's F1 bar
    # training curve and threshold
    assert "validation sentence_f1" in page and "training loss" in page
    assert "chosen null threshold 0.5" in page and "chosen 0.5</text>" in page
    # explanations: one folded block for the span with text, none for the blank one
    assert page.count('<details class="explanation">') == 1 and "tired all day" in page
    # sentence scores on hover; the text stays the post, the marks stay right
    assert parsed.texts[0] == post.text
    titles = parsed.sentence_titles[0]
    assert titles[sentence(1)[0]] == titles[sentence(1)[1] - 1] == "sentence 1: score 2.410"
    assert titles[sentence(2)[0]] == "sentence 2: score -3.000"
    assert titles[sentence(1)[1]] is None  # the space between two sentences
    start = sentence(1)[0]
    assert parsed.marks[0][start] == {"gold", "pred"} and parsed.marks[0][0] == set()
    end = sentence(1)[1]  # the predicted span's tip ends with its sentence's
    assert f"score 2.410\ngold [{start}, {end})\nsentence 1: score 2.410" in page


def test_sections_are_left_out_unless_asked_for():
    post = Post("p", SENTENCES)
    ex = example(post, "FATIGUE", [sentence(0)])
    page = render_report({"p": post}, [ex], {ex.example_id: prediction(post, [sentence(0)])})
    assert "<svg" not in page and "<table" not in page and 'class="sentence"' not in page
    assert 'class="explanation"' not in page and 'class="overview"' not in page


def test_hostile_strings_are_escaped_in_every_section():
    post = Post(NAUGHTY, NAUGHTY + ". Second sentence here.")
    symptom = "SYMPTOM " + NAUGHTY
    ex = example(post, symptom, [(0, 10)], question=NAUGHTY)
    preds = {ex.example_id: FakePrediction((FakeSpan(3, 30, "", 1.0),), best_score=1.0)}
    page = render_report(
        {post.post_id: post},
        [ex],
        preds,
        title=NAUGHTY,
        header={NAUGHTY: NAUGHTY},
        metrics={**metrics_for([symptom]), NAUGHTY: 0.5},
        history=[{"step": 1, "train_loss": 2.0, NAUGHTY: 0.3}],
        metric_name=NAUGHTY,
        threshold_curve=[(0.0, 0.5)],
        chosen_threshold=0.0,
        curve_label=NAUGHTY,
        explanations={ex.example_id: [(0, 10, NAUGHTY)]},
        sentence_scores={ex.example_id: [1.0, 2.0]},
        null_threshold=0.0,
    )
    parsed = parse(page)
    assert set(parsed.elements) <= PAGE_ELEMENTS
    assert parsed.elements.count("script") == 1 and "img" not in parsed.elements
    assert "<script>alert" not in page and "<img" not in page and "]]>" not in page
    assert "\r" not in page and "http" not in page
    assert page.count("<svg") == page.count("</svg>") == 4
    assert parsed.texts == [post.text]
    assert parsed.sections[0]["data-post"] == NAUGHTY  # exactly the id, once unescaped
    assert parsed.rows[0]["data-symptom"] == symptom
    svg_numbers_are_finite(parsed)


NOT_NUMBERS = (math.nan, math.inf, -math.inf, None, "0.5x", 1e308, -1e308)


def test_non_finite_numbers_never_reach_an_svg_coordinate():
    metrics = metrics_for(["A", "B", "C"])
    metrics.update({"A/sentence_f1": math.nan, "B/sentence_f1": math.inf, "C/support": None})
    metrics.update({"sentence_f1": -math.inf, "ranking_map": math.nan})
    history = [
        {"step": step, "train_loss": value, "sentence_f1": value}
        for step, value in zip([1, 2, 3, math.nan, None, 6, 7], NOT_NUMBERS)
    ] + [{"epoch": 1}, {"step": 8, "train_loss": 0.5, "sentence_f1": 0.7}]
    curve = [(x, y) for x in NOT_NUMBERS for y in (0.5, *NOT_NUMBERS)] + [(0.1, 0.2)]
    for chosen in (math.nan, math.inf, None, 1e308, 0.1):
        page, _, _ = full_page(
            metrics=metrics, history=history, threshold_curve=curve, chosen_threshold=chosen
        )
        parsed = parse(page)
        svg_numbers_are_finite(parsed)
        svgs = re.findall(r"<svg.*?</svg>", page, re.S)
        assert len(svgs) == 4
        for svg in svgs:
            attributes = " ".join(re.findall(r'="([^"]*)"', svg))
            assert "nan" not in attributes.lower() and "inf" not in attributes.lower()
        assert "n/a" in page  # NaN metrics shown as n/a in the table


def test_chart_helpers_degrade_gracefully():
    for svg in (
        bar_chart([], [], title="empty"),
        bar_chart(["a", "b"], [math.nan], title="short values", max_value=math.nan),
        line_chart([], title="none", x_label="x", y_label="y"),
        line_chart([("s", [])], title="empty", x_label="x", y_label="y", marker_x=math.nan),
        line_chart([("s", [(3, 0.5)])], title="one point", x_label="x", y_label="y"),
        line_chart([("s", [(3, 0.5), (3, 0.5)])], title="same", x_label="x", y_label="y"),
        line_chart(
            [("s", [(-1e308, 1e308), (1e308, -1e308)])], title="huge", x_label="", y_label=""
        ),
    ):
        parsed = StrictParser()
        parsed.feed(svg)
        parsed.close()
        assert parsed.elements[0] == "svg" and "xmlns" not in svg
        for _, name, value in parsed.attributes:
            if name in COORDINATES:
                assert math.isfinite(float(value)), (svg, name, value)
    assert "no data" in bar_chart([], [], title="t") and "n/a" in bar_chart(
        ["a"], [None], title="t"
    )
    one = line_chart([("s", [(3, 0.5)])], title="t", x_label="x", y_label="y")
    assert "<circle" in one and "<polyline" not in one


def test_degenerate_posts_and_curves_render():
    long_text = ("I am so tired of everything today. " * 2860)[:100_000]
    posts = {
        "long": Post("long", long_text),
        "empty": Post("empty", ""),
        "blank": Post("blank", " \n\t \r\n"),
    }
    examples = [example(posts[pid], "FATIGUE") for pid in posts]
    examples[0] = example(posts["long"], "FATIGUE", [(0, 34), (99_000, 99_990)])
    n_sentences = len(split_sentences(long_text))
    preds = {examples[0].example_id: prediction(posts["long"], [(35, 69), (50_000, 60_000)])}
    page = render_report(
        posts,
        examples,
        preds,
        metrics={},
        history=[],
        threshold_curve=[(0.3, 0.7)],
        chosen_threshold=0.3,
        sentence_scores={ex.example_id: [0.5] * n_sentences for ex in examples},
        explanations={ex.example_id: [] for ex in examples},
    )
    parsed = parse(page)
    assert len(page) > 100_000 and n_sentences > 2000
    assert sorted(parsed.texts, key=len) == ["", " \n\t \r\n", long_text]
    long_titles = parsed.sentence_titles[0]
    assert long_titles[0] == "sentence 0: score 0.500" and long_titles[-1] is None  # a space
    last = f"sentence {n_sentences - 1}: score 0.500"
    assert long_titles[len(long_text.rstrip()) - 1] == last
    assert page.count("<svg") == 4 and "no data" in page
    svg_numbers_are_finite(parsed)


@st.composite
def post_spans_and_sentences(draw):
    alphabet = st.sampled_from(list("ab .!?\n\r\t<>&\"'") + ["😀", "é", "\u2028"])
    text = "".join(draw(st.lists(alphabet, min_size=0, max_size=60)))
    bound = st.integers(0, len(text))
    spans = st.lists(st.tuples(bound, bound).map(sorted).map(tuple), max_size=4)
    wild = st.tuples(st.integers(-3, len(text) + 3), st.integers(-3, len(text) + 3))
    sentences = draw(st.one_of(st.just(None), st.lists(wild, max_size=6)))
    scores = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8))
    return text, draw(spans), draw(spans), sentences, scores


@settings(max_examples=150, deadline=None)
@given(post_spans_and_sentences())
def test_sentence_hover_keeps_the_text_and_the_marks(case):
    text, gold, predicted, sentences, scores = case
    post = Post("p", text)
    ex = example(post, "ANHEDONIA", gold)
    page = render_report(
        {"p": post},
        [ex],
        {ex.example_id: prediction(post, predicted)},
        sentence_scores={ex.example_id: scores},
        sentences=None if sentences is None else {"p": sentences},
    )
    parsed = parse(page)
    assert parsed.texts and all(shown == text for shown in parsed.texts)
    if not any(s < e for s, e in (*gold, *predicted)):
        return
    tips = sentence_tips(
        len(text), split_sentences(text) if sentences is None else sentences, scores
    )
    for index, marks in enumerate(parsed.marks[0]):
        in_gold = any(s <= index < e for s, e in gold)
        in_pred = any(s <= index < e for s, e in predicted)
        assert marks == {n for n, hit in (("gold", in_gold), ("pred", in_pred)) if hit}
        tip = [t for s, e, t in tips if s <= index < e]
        assert parsed.sentence_titles[0][index] == (tip[0] if tip else None)


def test_sentence_tips_skip_bad_offsets_and_show_non_finite_scores():
    tips = sentence_tips(20, [(0, 5), (3, 8), (6, 6), (8, 12), (15, 25), (-1, 2)], [1, 2, 3, 4, 5])
    assert tips == [(0, 5, "sentence 0: score 1.000"), (8, 12, "sentence 3: score 4.000")]
    assert sentence_tips(5, [(0, 5)], [math.nan]) == [(0, 5, "sentence 0: score n/a")]
    assert sentence_tips(5, [(0, 5), (5, 5)], []) == []


def test_confidence_is_the_distance_from_the_null_test_boundary():
    def pred(best, null):
        return FakePrediction((), null_score=null, best_score=best)

    # a span passes when null - best <= threshold: the margin is best - null + threshold
    assert confidence([pred(2.0, 1.0)], 0.5) == 1.5
    assert confidence([pred(2.0, 1.0), pred(0.0, 0.2)], None) == pytest.approx(0.2)
    assert confidence([pred(0.0, 0.2)], math.nan) == pytest.approx(0.2)
    assert confidence([pred(-math.inf, 0.0), pred(1.0, math.nan)], 0.0) == math.inf
    assert confidence([], 0.0) == math.inf


def order_page(annotated=True) -> tuple[str, dict]:
    posts = {pid: Post(pid, SENTENCES) for pid in ("a", "b", "c", "d", "e")}
    plan = {  # post -> (gold, predicted sentences, best, null)
        "a": ([0], [0], 3.0, 1.0),  # 0 errors, margin |3 - 1 + 0.5| = 2.5
        "b": ([0, 1], [2], 0.2, 0.0),  # 3 errors, margin 0.7
        "c": ([1], [], -1.0, 0.0),  # 1 error, margin 0.5
        "d": ([], [3], -math.inf, 0.0),  # 1 error, no finite margin: last
        "e": ([], [], -0.4, 0.0),  # 0 errors, margin 0.1, nothing to show
    }
    examples, preds = [], {}
    for pid, (gold, predicted, best, null) in plan.items():
        ex = example(posts[pid], "FATIGUE", [sentence(k) for k in gold])
        examples.append(ex)
        spans = tuple(FakeSpan(*sentence(k), "", best) for k in predicted)
        preds[ex.example_id] = FakePrediction(spans, null_score=null, best_score=best)
    page = render_report(posts, examples, preds, null_threshold=0.5, annotated=annotated)
    return page, {"errors": "bcdae", "confidence": "ecbad", "post": "abcde"}


def test_posts_carry_their_sort_keys_and_the_menu_offers_the_orders():
    page, expected = order_page()
    parsed = parse(page)
    assert "".join(s["data-post"] for s in parsed.sections) == expected["errors"]  # default
    keys = {s["data-post"]: (s["data-errors"], s["data-confidence"]) for s in parsed.sections}
    assert keys["d"] == ("1", "Infinity") and keys["b"][0] == "3"
    margins = {pid: float(value) for pid, (_, value) in keys.items() if pid != "d"}
    assert margins == pytest.approx({"a": 2.5, "b": 0.7, "c": 0.5, "e": 0.1})
    menu = re.search(r'<select id="post-order">(.*?)</select>', page).group(1)
    assert re.findall(r'value="(\w+)"', menu) == ["errors", "confidence", "post"]
    predict_page, _ = order_page(annotated=False)
    menu = re.search(r'<select id="post-order">(.*?)</select>', predict_page).group(1)
    assert re.findall(r'value="(\w+)"', menu) == ["post", "confidence"]
    assert "".join(s["data-post"] for s in parse(predict_page).sections) == "abcde"


FAKE_DOM = """
const fs = require("fs");
const [script, posts] = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
function control() {
  return { hidden: true, value: "", on: {}, addEventListener(t, f) { this.on[t] = f; } };
}
const list = { children: [], appendChild(node) {
  this.children.splice(this.children.indexOf(node), 1); this.children.push(node); } };
posts.forEach(function (dataset) { list.children.push({ dataset: dataset }); });
const ids = { controls: control(), "symptom-filter": control(), "errors-only": control(),
  "post-order": control(), posts: list };
global.document = { getElementById: (id) => ids[id] || null, querySelectorAll: () => [] };
eval(script);
const result = {};
for (const order of ["post", "confidence", "errors"]) {
  ids["post-order"].value = order;
  ids["post-order"].on.change();
  result[order] = list.children.map((node) => node.dataset.post).join("");
}
console.log(JSON.stringify([ids.controls.hidden, result]));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_the_page_script_reorders_posts(tmp_path):
    page, expected = order_page()
    parsed = parse(page)
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
    datasets = [
        {key[5:]: value for key, value in section.items() if key.startswith("data-")}
        for section in parsed.sections
    ]
    (tmp_path / "input.json").write_text(json.dumps([script, datasets]))
    (tmp_path / "dom.js").write_text(FAKE_DOM)
    run = subprocess.run(
        ["node", str(tmp_path / "dom.js"), str(tmp_path / "input.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    hidden, orders = json.loads(run.stdout)
    assert hidden is False and orders == expected
