"""The records the whole pipeline passes around: posts, annotation rows, gold spans, examples.

An *example* is one (post, symptom) pair with all of its gold evidence spans (DESIGN §3).
Character offsets are Python string indices into the post text, `end` exclusive.
Below the records: the loaders of the ReDSM5 files, which validate every row.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from lib.errors import UserError, did_you_mean, path_error
from lib.symptoms import ALL_SYMPTOMS


@dataclass(frozen=True)
class Post:
    post_id: str
    text: str


@dataclass(frozen=True)
class Annotation:
    """One row of the annotations CSV (`row` is its 1-based line number, header = line 1)."""

    post_id: str
    sentence_id: str
    sentence_text: str
    symptom: str
    status: int
    explanation: str
    row: int


@dataclass(frozen=True)
class Span:
    """A character span of a post: text == post_text[start:end]."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Example:
    """One (post, symptom) question; `answers` empty means "no evidence in this post"."""

    example_id: str  # f"{post_id}::{symptom}", unique within a corpus
    post_id: str
    symptom: str
    question: str
    context: str  # the post text, unchanged
    answers: tuple[Span, ...]


# ---------------------------------------------------------------- reading ReDSM5 files (DESIGN §3)
#
# Every mistake in an input file is a UserError with one line naming the file, the row as a
# spreadsheet shows it (header = row 1; a quoted field with line breaks is still one row) or the
# JSONL line, and the column. Columns are found by header name, so their order is free and extra
# columns are ignored; `explanation` is optional (ReDSM5 ships it, our pipeline never reads it).

POST_COLUMNS = ("post_id", "text")
ANNOTATION_COLUMNS = ("post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status")
OPTIONAL_ANNOTATION_COLUMNS = ("explanation",)


MAX_FIELD = 2**31 - 1  # the largest limit csv accepts on every platform (a C long)
VISIBLE = ("L", "N", "P", "S")  # Unicode categories of characters a reader can see


def is_blank(text: str) -> bool:
    """True when `text` has no letter, digit, punctuation or symbol: only whitespace, control,
    format (zero-width) or combining characters -- nothing the model or a reader could use."""
    return not any(unicodedata.category(ch)[0] in VISIBLE for ch in text)


def _read_text(path: Path, what: str) -> str:
    """The file as text: exists, is not empty, is UTF-8 (a BOM is allowed)."""
    if not path.exists():
        raise UserError(f"{path}: {what} file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a file (expected the {what} file)")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise path_error(path, f"read the {what} file", err) from None
    if not data.strip():
        raise UserError(f"{path}: empty file (expected the {what} file)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: {_where_bad_byte(path, data, err)}") from None


def _where_bad_byte(path: Path, data: bytes, err: UnicodeDecodeError) -> str:
    """Name the row and column of the first invalid byte (decoded as lone surrogates)."""
    bad = f"invalid UTF-8 (byte 0x{data[err.start]:02x} at byte offset {err.start})"
    text = data.decode("utf-8-sig", errors="surrogateescape")
    if path.suffix.lower() == ".csv":
        try:
            records = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error:
            records = []
        header = records[0] if records else []
        for row, fields in enumerate(records, start=1):
            for column, value in enumerate(fields):
                if any("\udc80" <= ch <= "\udcff" for ch in value):
                    name = header[column].strip() if column < len(header) else f"#{column + 1}"
                    return f"row {row}, column {name}: {bad}"
    line = data[: err.start].count(b"\n") + 1
    return f"line {line}: {bad}"


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, fields) for every non-blank record, header included."""
    # The csv module refuses fields over 131,072 characters by default; a post may be megabytes.
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    row = 0
    try:
        for fields in reader:
            row += 1
            if fields and any(f.strip() for f in fields):
                yield row, fields
    except csv.Error as err:
        raise UserError(f"{path}: row {row + 1}: malformed CSV ({err})") from None


def _columns(
    path: Path, fields: list[str], required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, int]:
    names = [f.strip() for f in fields]
    if not any(names):
        raise UserError(f"{path}: row 1: no header (expected {', '.join(required)})")
    for index, name in enumerate(names):
        if name and name in names[:index]:
            raise UserError(f"{path}: row 1, column {name}: duplicate column name")
    for name in required:
        if name not in names:
            raise UserError(
                f"{path}: row 1: missing column {name}{did_you_mean(name, names)}; "
                f"the header must name {', '.join(required)} (found: {', '.join(names)})"
            )
    return {name: names.index(name) for name in (*required, *optional) if name in names}


def _field(path: Path, row: int, fields: list[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    if index is None:
        return ""
    if index >= len(fields):
        raise UserError(
            f"{path}: row {row}, column {name}: missing value "
            f"(the row has {len(fields)} fields, the header {max(columns.values()) + 1})"
        )
    return fields[index]


def _check_width(path: Path, row: int, fields: list[str], width: int) -> None:
    if len(fields) > width and any(f.strip() for f in fields[width:]):
        raise UserError(
            f"{path}: row {row}, column {width + 1}: {len(fields)} fields but the header has "
            f"{width} (an unquoted comma in a text?)"
        )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_post(path: Path, where: str, item) -> tuple[str, str]:
    """(post_id, text) of one JSONL/JSON item, checked."""
    if not isinstance(item, dict):
        raise UserError(f"{path}: {where}: expected an object with post_id and text")
    for key in POST_COLUMNS:
        if key not in item:
            raise UserError(f"{path}: {where}, key {key}: missing{did_you_mean(key, item)}")
    pid, body = item["post_id"], item["text"]
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not isinstance(body, str):
        bad = "post_id" if not isinstance(pid, str) else "text"
        raise UserError(f"{path}: {where}, key {bad}: expected a string")
    for key, value in (("post_id", pid), ("text", body)):
        surrogate = _SURROGATE.search(value)  # a JSON escape "\ud83d" whose other half was cut off
        if surrogate:
            raise UserError(
                f"{path}: {where}, key {key}: a lone surrogate \\u{ord(surrogate.group()):04x} "
                "(half of a UTF-16 pair; the text is not valid Unicode)"
            )
    return pid.strip(), body  # as CSV and annotation post_ids are


def _json_reason(err: json.JSONDecodeError) -> str:
    # json's messages expect a position after them ("Unterminated string starting at")
    return err.msg.removesuffix(" at").removesuffix(" starting")


class _ByteLines:
    r"""The lines of a binary file, decoded one at a time, so a posts file of any size is read in
    bounded memory. Bytes that are not UTF-8 decode to lone surrogates (surrogateescape): the
    caller reports them with the row and column they sit in. `raw` holds the bytes read since
    the last `mark()`, `offset` the file offset where they start.

    With `universal` (CSV) a line ends at "\r\n", a lone "\r" or "\n", as in text mode with
    newline="" (old Mac / Excel "Macintosh CSV" files end rows with "\r"); otherwise (JSONL, where
    "\r" is JSON whitespace) only at "\n". Every line keeps its ending. The file is read in
    blocks, so a file with no "\n" at all is never one giant read."""

    BLOCK = 1 << 20  # bytes per read

    def __init__(self, handle, *, universal: bool = False, block: int | None = None):
        self.handle = handle
        self.universal = universal
        self.block = block or self.BLOCK
        self.offset = 0  # of raw[0]
        self.raw = bytearray()

    def __iter__(self) -> Iterator[str]:
        for number, line in enumerate(self.split(), start=1):
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                self.offset, line = len(codecs.BOM_UTF8), line[len(codecs.BOM_UTF8) :]
            self.raw += line
            yield line.decode("utf-8", errors="surrogateescape")

    def split(self) -> Iterator[bytes]:
        r"""The raw lines, endings kept. A line is gathered as a list of pieces and joined once
        (no quadratic copying when it spans many blocks); a "\r" that ends a block waits for the
        next block to tell a lone "\r" from "\r\n"."""
        ending = _UNIVERSAL_ENDING if self.universal else _LF_ENDING
        pieces: list[bytes] = []
        pending_cr = False  # the previous block ended with "\r" (universal only)
        for block in iter(lambda: self.handle.read(self.block), b""):
            start = 0
            if pending_cr:
                start = 1 if block.startswith(b"\n") else 0
                yield b"".join(pieces) + (b"\r\n" if start else b"\r")
                pieces, pending_cr = [], False
            stop = len(block)
            if self.universal and block.endswith(b"\r"):
                pending_cr, stop = True, stop - 1
            for match in ending.finditer(block, start, stop):
                pieces.append(block[start : match.end()])
                yield b"".join(pieces)
                pieces, start = [], match.end()
            if start < stop:
                pieces.append(block[start:stop])
        if pending_cr:
            pieces.append(b"\r")
        if pieces:
            yield b"".join(pieces)

    def mark(self) -> None:
        self.offset += len(self.raw)
        self.raw = bytearray()

    def bad_byte(self) -> str:
        """Where the first invalid byte in `raw` is."""
        try:
            bytes(self.raw).decode("utf-8")
        except UnicodeDecodeError as err:
            byte = self.raw[err.start]
            return f"invalid UTF-8 (byte 0x{byte:02x} at byte offset {self.offset + err.start})"
        return "invalid UTF-8"


_UNIVERSAL_ENDING = re.compile(rb"\r\n?|\n")
_LF_ENDING = re.compile(rb"\n")


def _has_bad_byte(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _stream_csv_posts(path: Path, lines: _ByteLines) -> Iterator[tuple[str, str, str]]:
    """(where, post_id, text) for every row of a posts CSV, read as the file is."""
    csv.field_size_limit(MAX_FIELD)  # csv refuses fields over 131,072 characters by default
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    columns: dict[str, int] = {}
    row = 0
    try:
        for fields in reader:  # csv reads no further than the record it returns
            row += 1
            bad = next((i for i, f in enumerate(fields) if _has_bad_byte(f)), None)
            if bad is not None:
                names = header or fields
                name = names[bad].strip() if bad < len(names) else f"#{bad + 1}"
                raise UserError(f"{path}: row {row}, column {name}: {lines.bad_byte()}")
            lines.mark()
            if not (fields and any(f.strip() for f in fields)):
                continue
            if header is None:
                header, columns = fields, _columns(path, fields, POST_COLUMNS)
                continue
            _check_width(path, row, fields, len(header))
            pid = _field(path, row, fields, columns, "post_id").strip()
            yield f"{path}: row {row}", pid, _field(path, row, fields, columns, "text")
    except csv.Error as err:
        raise UserError(f"{path}: row {row + 1}: malformed CSV ({err})") from None
    if header is None and not _is_blank_file(path):
        _columns(path, [], POST_COLUMNS)  # no header: the same one line as an empty header


def _stream_jsonl_posts(path: Path, lines: _ByteLines) -> Iterator[tuple[str, str, str]]:
    for number, line in enumerate(lines, start=1):
        if _has_bad_byte(line):
            raise UserError(f"{path}: line {number}: {lines.bad_byte()}")
        lines.mark()
        if not line.strip():
            continue
        try:
            item = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as err:
            raise UserError(
                f"{path}: line {number}, column {err.colno}: invalid JSON ({_json_reason(err)})"
            ) from None
        where = f"line {number}"
        yield (f"{path}: {where}", *_json_post(path, where, item))


def _json_array_posts(path: Path) -> Iterator[tuple[str, str, str]]:
    """A .json file holding one array: parsed whole (use JSONL for corpora that must stream)."""
    text = _read_text(path, "posts")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}: line {err.lineno}, column {err.colno}: invalid JSON ({_json_reason(err)})"
        ) from None
    if not isinstance(items, list):
        raise UserError(f"{path}: expected an array of objects with post_id and text")
    for i, item in enumerate(items, start=1):
        yield (f"{path}: item {i}", *_json_post(path, f"item {i}", item))


def _open_posts(path: Path):
    if not path.exists():
        raise UserError(f"{path}: posts file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a file (expected the posts file)")
    try:
        return path.open("rb")
    except OSError as err:
        raise path_error(path, "read the posts file", err) from None


def iter_posts(path: str | Path) -> Iterator[Post]:
    """Posts in file order from CSV `post_id,text` or JSONL (by extension), read as they are
    consumed: memory does not grow with the file (a set of the post_ids seen excepted, to refuse
    duplicates). A .json file holding one array is parsed whole. Every row is checked as it is
    read, so a mistake at row 50,001 is a UserError after 50,000 posts were yielded."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise UserError(f"{path}: posts file must end in .csv, .jsonl or .json")
    first_seen: dict[str, str] = {}
    handle = _open_posts(path)
    if suffix != ".csv" and _first_byte(handle) == b"[":  # one JSON array, even named .jsonl
        handle.close()
        records = _json_array_posts(path)
    else:
        lines = _ByteLines(handle, universal=suffix == ".csv")
        records = (_stream_csv_posts if suffix == ".csv" else _stream_jsonl_posts)(path, lines)
    try:
        for where, pid, text in records:
            if not pid:
                raise UserError(f"{where}, column post_id: empty post_id")
            if pid in first_seen:
                raise UserError(
                    f"{where}, column post_id: duplicate post_id {pid!r} ({first_seen[pid]})"
                )
            if is_blank(text):
                raise UserError(f"{where}, column text: empty text for post {pid!r}")
            first_seen[pid] = f"first seen at {where.split(': ', 1)[1]}"
            yield Post(pid, text)
    finally:
        handle.close()
    if not first_seen:
        if _is_blank_file(path):
            raise UserError(f"{path}: empty file (expected the posts file)")
        raise UserError(f"{path}: no posts (the file has a header but no rows)")


def _first_byte(handle) -> bytes:
    """The first byte that is not whitespace (or a BOM); the handle is rewound."""
    first = b""
    for block in iter(lambda: handle.read(1 << 16), b""):
        first = block.removeprefix(codecs.BOM_UTF8).lstrip()[:1] if not first else first
        if first:
            break
    handle.seek(0)
    return first


def _is_blank_file(path: Path) -> bool:
    with path.open("rb") as handle:
        return not _first_byte(handle)


def load_posts(path: str | Path) -> dict[str, Post]:
    """Posts by post_id, in file order, from CSV `post_id,text` or JSONL/JSON (by extension)."""
    return {post.post_id: post for post in iter_posts(path)}


def sentence_index(sentence_id: str, post_id: str) -> int | None:
    """k from a `<post_id>_<k>` sentence_id; None if it does not have that form."""
    prefix = f"{post_id}_"
    suffix = sentence_id[len(prefix) :]
    if sentence_id.startswith(prefix) and suffix.isascii() and suffix.isdigit():
        return int(suffix)
    return None


def load_annotations(
    path: str | Path, posts: Mapping[str, Post], *, symptoms: Collection[str] = ALL_SYMPTOMS
) -> list[Annotation]:
    """Validated annotation rows in file order, keeping those whose symptom is in `symptoms`."""
    path = Path(path)
    text = _read_text(path, "annotations")
    rows = _csv_rows(path, text)
    _, header = next(rows, (1, []))
    columns = _columns(path, header, ANNOTATION_COLUMNS, OPTIONAL_ANNOTATION_COLUMNS)
    annotations = []
    row_count = 0
    for row, fields in rows:
        row_count += 1
        _check_width(path, row, fields, len(header))
        value = {name: _field(path, row, fields, columns, name) for name in columns}
        where = f"{path}: row {row}, column"
        pid = value["post_id"].strip()
        if pid not in posts:
            raise UserError(f"{where} post_id: unknown post {pid!r} (not in the posts file)")
        sid = value["sentence_id"].strip()
        if sentence_index(sid, pid) is None:
            raise UserError(
                f"{where} sentence_id: {sid!r} is not {pid}_<k> "
                "(k = the sentence's 0-based index in the post)"
            )
        if is_blank(value["sentence_text"]):
            raise UserError(f"{where} sentence_text: empty text")
        symptom = value["DSM5_symptom"].strip()
        if symptom not in ALL_SYMPTOMS:
            raise UserError(
                f"{where} DSM5_symptom: unknown symptom {symptom!r}"
                f"{did_you_mean(symptom, ALL_SYMPTOMS)}; expected one of {', '.join(ALL_SYMPTOMS)}"
            )
        status = value["status"].strip()
        if status not in ("0", "1"):
            raise UserError(f"{where} status: {status!r} is not 0 or 1")
        if symptom in symptoms:
            annotations.append(
                Annotation(
                    post_id=pid,
                    sentence_id=sid,
                    sentence_text=value["sentence_text"],
                    symptom=symptom,
                    status=int(status),
                    explanation=value.get("explanation", ""),
                    row=row,
                )
            )
    if row_count == 0:
        raise UserError(f"{path}: no annotation rows (the file has a header but no rows)")
    return annotations
