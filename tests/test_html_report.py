"""The HTML evidence report (lib/evaluation/html_report.py): escaping, self-containment, exact text, order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from lib.data.corpus import Example, Post, Span
from lib.evaluation.html_report import highlight_segments, render_report, sentence_errors

VOID = {"br", "meta", "input", "img", "hr", "link"}


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


class ReportParser(HTMLParser):
    """Collects, per `div.text`, its text content and for every character the marks on it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.texts: list[str] = []
        self.marks: list[list[frozenset[str]]] = []
        self.headings: list[str] = []
        self.rows: list[dict] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.elements: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs.items()]
        if tag == "div" and attrs.get("class") == "text":
            self.texts.append("")
            self.marks.append([])
        if tag == "div" and attrs.get("class") == "row":
            self.rows.append(attrs)
        if tag == "h2":
            self.headings.append("")
        if tag not in VOID:
            self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1][0] == tag, (tag, self.stack[-3:])
        self.stack.pop()

    def handle_data(self, data):
        tags = [tag for tag, _ in self.stack]
        if "h2" in tags:
            self.headings[-1] += data
        if any(tag == "div" and a.get("class") == "text" for tag, a in self.stack):
            classes = {c for tag, a in self.stack if tag == "span" for c in a["class"].split()}
            self.texts[-1] += data
            self.marks[-1] += [frozenset(classes)] * len(data)


def parse(page: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(page)
    parser.close()
    assert not parser.stack, parser.stack
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
