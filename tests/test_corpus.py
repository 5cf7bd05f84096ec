"""The ReDSM5 loaders: what they accept, and one precise line for every bad input."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.data.corpus import (
    Annotation,
    Post,
    _ByteLines,
    load_annotations,
    load_posts,
    sentence_index,
)
from lib.errors import UserError
from lib.symptoms import ALL_SYMPTOMS as SYMPTOMS
from lib.symptoms import DSM_SYMPTOMS

HEADER = "post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"


def _write(tmp_path, name, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.fixture
def posts(tmp_path):
    path = _write(
        tmp_path,
        "posts.csv",
        'post_id,text\ns_1_2,"I feel sad. I sleep a lot."\ns_9_9,"Line one.\nLine two, with a comma."\n',
    )
    return load_posts(path)


def test_symptom_constants():
    assert DSM_SYMPTOMS[0] == "DEPRESSED_MOOD" and DSM_SYMPTOMS[-1] == "SUICIDAL_THOUGHTS"
    assert len(DSM_SYMPTOMS) == 9 and SYMPTOMS == (*DSM_SYMPTOMS, "SPECIAL_CASE")


def test_posts_csv_keeps_text_and_order(posts):
    assert list(posts) == ["s_1_2", "s_9_9"]
    assert posts["s_9_9"] == Post("s_9_9", "Line one.\nLine two, with a comma.")


def test_posts_jsonl_and_json_array(tmp_path):
    lines = [{"post_id": "a", "text": "x"}, {"post_id": 7, "text": "y", "extra": 1}]
    jsonl = _write(tmp_path, "p.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert load_posts(jsonl) == {"a": Post("a", "x"), "7": Post("7", "y")}
    array = _write(tmp_path, "p.json", json.dumps(lines))
    assert load_posts(array) == load_posts(jsonl)


def test_bom_extra_columns_and_column_order_are_fine(tmp_path):
    path = _write(tmp_path, "p.csv", "\ufeffextra,text,post_id\nq,hello,p1\n")
    assert load_posts(path) == {"p1": Post("p1", "hello")}


def test_annotations_rows_are_spreadsheet_rows(tmp_path, posts):
    path = _write(
        tmp_path,
        "a.csv",
        HEADER
        + 's_9_9,s_9_9_0,"Line one.",DEPRESSED_MOOD,1,"two\nlines"\n'
        + "\n"  # a blank row is still a row in a spreadsheet
        + "s_1_2,s_1_2_1,I sleep a lot.,SLEEP_ISSUES,0,\n"
        + "s_1_2,s_1_2_0,I feel sad.,SPECIAL_CASE,1,x\n",
    )
    rows = load_annotations(path, posts)
    assert [r.row for r in rows] == [2, 4, 5]
    assert rows[1] == Annotation("s_1_2", "s_1_2_1", "I sleep a lot.", "SLEEP_ISSUES", 0, "", 4)
    only = load_annotations(path, posts, symptoms=["SLEEP_ISSUES"])
    assert [r.symptom for r in only] == ["SLEEP_ISSUES"]


def test_explanation_column_is_optional(tmp_path, posts):
    path = _write(
        tmp_path, "a.csv", "post_id,sentence_id,sentence_text,DSM5_symptom,status\n"
        "s_1_2,s_1_2_0,I feel sad.,DEPRESSED_MOOD,1\n",
    )  # fmt: skip
    assert load_annotations(path, posts)[0].explanation == ""


def test_sentence_index():
    assert sentence_index("s_1_2_10", "s_1_2") == 10
    assert sentence_index("s_1_2", "s_1_2") is None
    assert sentence_index("s_1_3_1", "s_1_2") is None
    assert sentence_index("s_1_2_x", "s_1_2") is None
    assert sentence_index("s_1_2_١", "s_1_2") is None  # a non-ASCII digit


POST_ERRORS = [
    ("posts.txt", b"post_id,text\na,b\n", "must end in .csv, .jsonl or .json"),
    ("p.csv", b"", "empty file"),
    ("p.csv", b"  \n\n", "empty file"),
    ("p.csv", b"post_id,text\n", "no posts"),
    ("p.csv", b"id,text\na,b\n", "row 1: missing column post_id"),
    ("p.csv", b"post_id,Text\na,b\n", "missing column text (did you mean Text?)"),
    ("p.csv", b"post_id,text,text\na,b,c\n", "row 1, column text: duplicate column name"),
    ("p.csv", b"post_id,text\na,x\nb,y\na,z\n", "row 4, column post_id: duplicate post_id 'a'"),
    ("p.csv", b"post_id,text\na,x\nb,  \n", "row 3, column text: empty text"),
    ("p.csv", b"post_id,text\n,x\n", "row 2, column post_id: empty post_id"),
    ("p.csv", b"post_id,text\na\n", "row 2, column text: missing value"),
    ("p.csv", b"post_id,text\na,x,y\n", "row 2, column 3: 3 fields but the header has 2"),
    ("p.csv", b'post_id,text\na,"x\n', "row 2: malformed CSV"),
    ("p.csv", b"post_id,text\na,ok\nb,caf\xe9\n", "row 3, column text: invalid UTF-8 (byte 0xe9"),
    (
        "p.jsonl",
        b'{"post_id": "a", "text": "x"}\n{"post_id": "b"\n',
        "line 2, column 16: invalid JSON (Expecting ',' delimiter)",
    ),
    ("p.jsonl", b'{"post_id": "a", "txt": "x"}\n', "line 1, key text: missing (did you mean txt?)"),
    ("p.jsonl", b'{"post_id": "a", "text": 3}\n', "line 1, key text: expected a string"),
    ("p.jsonl", b'{"post_id": "a", "text": "x"}\n\xff\n', "line 2: invalid UTF-8 (byte 0xff"),
    ("p.jsonl", b"[1]\n", "item 1: expected an object"),
    (
        "p.jsonl",
        b'{"post_id": "a", "text": "x"}\n\n{"post_id": "p1", "text": "sad \\ud83d today."}\n',
        "line 3, key text: a lone surrogate \\ud83d (half of a UTF-16 pair; the text is not valid",
    ),
    (
        "p.json",
        b'[{"post_id": "a", "text": "x"}, {"post_id": "b\\udc00", "text": "y"}]',
        "item 2, key post_id: a lone surrogate \\udc00",
    ),
    (
        "p.jsonl",
        b'{"post_id": "12", "text": "x"}\n{"post_id": " 12 ", "text": "y"}\n',
        "line 2, column post_id: duplicate post_id '12' (first seen at line 1)",
    ),
    ("p.csv", b"post_id,text\ra,ok\rb,caf\xe9\r", "row 3, column text: invalid UTF-8 (byte 0xe9"),
]


@pytest.mark.parametrize(("name", "content", "message"), POST_ERRORS)
def test_bad_posts_file(tmp_path, name, content, message):
    path = _write(tmp_path, name, content)
    with pytest.raises(UserError) as err:
        load_posts(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(path)) and message in text, text


def test_missing_posts_file(tmp_path):
    with pytest.raises(UserError, match="posts file not found"):
        load_posts(tmp_path / "nope.csv")
    with pytest.raises(UserError, match="not a file"):
        load_posts(tmp_path.joinpath("dir.csv").mkdir() or tmp_path / "dir.csv")


GOOD_ROW = "s_1_2,s_1_2_0,I feel sad.,DEPRESSED_MOOD,1,x\n"
ANNOTATION_ERRORS = [
    (HEADER, "no annotation rows"),
    ("post_id,sentence_id,sentence_text,symptom,status\n" + GOOD_ROW, "missing column DSM5_symptom"),
    (HEADER + "s_7,s_7_0,Hi.,FATIGUE,1,x\n", "row 2, column post_id: unknown post 's_7'"),
    (HEADER + "s_1_2,s_1_3_0,Hi.,FATIGUE,1,x\n", "row 2, column sentence_id: 's_1_3_0' is not s_1_2_<k>"),
    (HEADER + "s_1_2,s_1_2,Hi.,FATIGUE,1,x\n", "column sentence_id"),
    (HEADER + GOOD_ROW + "s_1_2,s_1_2_1,  ,FATIGUE,1,x\n", "row 3, column sentence_text: empty text"),
    (HEADER + "s_1_2,s_1_2_0,Hi.,FATIGEU,1,x\n", "row 2, column DSM5_symptom: unknown symptom 'FATIGEU' (did you mean FATIGUE?)"),
    (HEADER + "s_1_2,s_1_2_0,Hi.,fatigue,1,x\n", "(did you mean FATIGUE?)"),
    (HEADER + "s_1_2,s_1_2_0,Hi.,FATIGUE,2,x\n", "row 2, column status: '2' is not 0 or 1"),
    (HEADER + "s_1_2,s_1_2_0,Hi.,FATIGUE,,x\n", "row 2, column status: '' is not 0 or 1"),
    (HEADER + "s_1_2,s_1_2_0,Hi.\n", "row 2, column DSM5_symptom: missing value"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "message"), ANNOTATION_ERRORS)
def test_bad_annotations_file(tmp_path, posts, content, message):
    path = _write(tmp_path, "a.csv", content)
    with pytest.raises(UserError) as err:
        load_annotations(path, posts)
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(path)) and message in text, text


def test_annotations_invalid_utf8_names_row_and_column(tmp_path, posts):
    before = HEADER.encode() + b"s_1_2,s_1_2_0,I feel "
    path = _write(tmp_path, "a.csv", before + b"\xc3(,FATIGUE,1,x\n")
    where = (
        rf"row 2, column sentence_text: invalid UTF-8 \(byte 0xc3 at byte offset {len(before)}\)"
    )
    with pytest.raises(UserError, match=where):
        load_annotations(path, posts)


CR_POSTS = 'post_id,text\n1,hello there.\n2,"world, ok"\n3,"Line one.\nLine two."\n'
CR_TEXTS = {"1": "hello there.", "2": "world, ok", "3": "Line one.\nLine two."}


@pytest.mark.parametrize("block", [1, 2, 3, 7, None])
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_posts_csv_any_line_ending(tmp_path, monkeypatch, ending, block):
    # "\r" alone: old Mac / Excel "Macintosh CSV". Rows split as text mode with newline="" does;
    # a quoted line break is kept as written, like the annotations reader keeps it.
    monkeypatch.setattr(_ByteLines, "BLOCK", block or _ByteLines.BLOCK)
    path = _write(tmp_path, "p.csv", "\ufeff" + CR_POSTS.replace("\n", ending))
    expected = {pid: Post(pid, text.replace("\n", ending)) for pid, text in CR_TEXTS.items()}
    assert load_posts(path) == expected


@pytest.mark.parametrize("block", [1, 2, 5, None])
def test_invalid_utf8_offset_is_exact_across_blocks_and_endings(tmp_path, monkeypatch, block):
    monkeypatch.setattr(_ByteLines, "BLOCK", block or _ByteLines.BLOCK)
    before = b'\xef\xbb\xbfpost_id,text\r\na,ok\rb,"x\ry\r\nca'
    path = _write(tmp_path, "p.csv", before + b'f\xe9"\r')
    with pytest.raises(UserError, match=rf"row 3, column text: .*byte offset {len(before) + 1}\)"):
        load_posts(path)


def test_posts_jsonl_crlf_and_json_whitespace_cr(tmp_path, monkeypatch):
    monkeypatch.setattr(_ByteLines, "BLOCK", 4)
    lines = ['{"post_id": "a", "text": "x"}', '{"post_id": "b",\r "text": "y\\r"}']
    path = _write(tmp_path, "p.jsonl", "\r\n".join(lines) + "\r\n")
    # JSONL lines end at "\n" only: a "\r" inside a line is JSON whitespace.
    assert load_posts(path) == {"a": Post("a", "x"), "b": Post("b", "y\r")}


def test_json_post_ids_are_stripped_like_csv_ones(tmp_path):
    posts = load_posts(_write(tmp_path, "p.jsonl", '{"post_id": "12 ", "text": "I feel sad."}\n'))
    assert posts == {"12": Post("12", "I feel sad.")}
    rows = HEADER + "12,12_0,I feel sad.,DEPRESSED_MOOD,1,x\n"
    (annotation,) = load_annotations(_write(tmp_path, "a.csv", rows), posts)
    assert annotation.post_id == "12"


def test_json_surrogate_pair_is_one_character(tmp_path):
    path = _write(tmp_path, "p.jsonl", b'{"post_id": "a", "text": "ok \\ud83d\\ude00"}\n')
    assert load_posts(path) == {"a": Post("a", "ok \U0001f600")}


def _text_mode_lines(data: bytes) -> list[bytes]:
    """What open(..., newline="") yields, in bytes (latin-1 maps each byte to one character)."""
    wrapper = io.TextIOWrapper(io.BytesIO(data), encoding="latin-1", newline="")
    return [line.encode("latin-1") for line in wrapper]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40).map(lambda b: bytes(b"a\r\n"[x % 3] for x in b)), st.integers(1, 6))
def test_byte_lines_split_like_text_mode(data, block):
    universal = list(_ByteLines(io.BytesIO(data), universal=True, block=block).split())
    assert universal == _text_mode_lines(data)
    lf_only = list(_ByteLines(io.BytesIO(data), block=block).split())
    assert lf_only == list(io.BytesIO(data))  # JSONL: the binary file's own lines
