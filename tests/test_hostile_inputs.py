"""Hostile and tired-user inputs across the four CLIs (DESIGN §3, §9, §10).

Every case must cost the user nothing: exit status exactly 2, stderr exactly one line that starts
with `error:` and names the offending file/row/key (no traceback, no raw control characters), and
the folders the case touches are byte-for-byte unchanged afterwards (nothing written, pre-existing
user files untouched).

Each case is one row of CASES: which CLI, its arguments, a setup that creates the inputs in the
case's own tmp folder, and a regular expression the error line must match. In arguments, `{tmp}`
is the case's folder, `{run}` the trained run directory shared by the evaluate cases (built once
per module, outside `{tmp}`, and snapshotted too: evaluate.py writes into RUN_DIR/eval-<split> by
default). train/tune cases run with the tiny overrides of conftest (`train.output_dir=
{tmp}/w/runs`; tune also gets its storage in `{tmp}` and one trial), so a case that wrongly
succeeds still ends in seconds, and everything it writes lands under `{tmp}` where the snapshot
sees it. Hostile paths (`../x`, absolute names) are chosen so that they too land under `{tmp}`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60

POSTS = 'post_id,text\np1,"I feel sad. I can’t sleep."\np2,Nothing is fun.\n'
HEADER = "post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"
ROWS = HEADER + "p1,p1_0,I feel sad.,DEPRESSED_MOOD,1,x\np2,p2_0,Nothing is fun.,ANHEDONIA,1,\n"
JSONL = '{"post_id": "p1", "text": "I feel sad. I can’t sleep."}\n'


Setup = Callable[[Path, Callable[[str], object]], None]


@dataclass(frozen=True)
class Case:
    id: str
    cli: str  # "data" | "train" | "evaluate" | "tune"
    argv: tuple[str, ...]  # placeholders {tmp}, {run}
    expect: str  # regex the error line must match (names the file / row / key)
    setup: Setup | None = None  # (tmp, fx) -> None; fx(name) = a pytest fixture's value


# ------------------------------------------------------------------------------------ setups


def files(**contents: str | bytes) -> Setup:
    """Write {name: content} under tmp (`__` in a name stands for `/`: sub-folders)."""

    def setup(tmp: Path, fx) -> None:
        for name, content in contents.items():
            path = tmp / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content if isinstance(content, bytes) else content.encode("utf-8")
            path.write_bytes(data)

    return setup


def chain(*setups: Setup) -> Setup:
    def setup(tmp: Path, fx) -> None:
        for one in setups:
            one(tmp, fx)

    return setup


def mkdirs(*names: str) -> Setup:
    def setup(tmp: Path, fx) -> None:
        for name in names:
            (tmp / name).mkdir(parents=True, exist_ok=True)

    return setup


def symlink_loop(name: str) -> Setup:
    def setup(tmp: Path, fx) -> None:
        os.symlink(name, tmp / name)  # a link to itself: ELOOP on open

    return setup


def run_copy(change: Callable[[Path], None], to: str = "runcopy") -> Setup:
    """Copy the trained run to {tmp}/<to> and damage the copy."""

    def setup(tmp: Path, fx) -> None:
        copy = tmp / to
        shutil.copytree(fx("trained_run"), copy)
        change(copy)

    return setup


def model_copy(change: Callable[[Path], None]) -> Setup:
    """Copy the tiny model folder to {tmp}/modelcopy and damage the copy."""

    def setup(tmp: Path, fx) -> None:
        copy = tmp / "modelcopy"
        shutil.copytree(fx("tiny_qa_dir"), copy)
        change(copy)

    return setup


def truncate_weights(copy: Path) -> None:
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])


def garble_config(copy: Path) -> None:
    (copy / "config.toml").write_text("[train\nlr = \n", encoding="utf-8")


def drop_tokenizer(copy: Path) -> None:
    (copy / "tokenizer.json").unlink()


def garble_config_json(copy: Path) -> None:
    (copy / "config.json").write_text('{"hidden_size": 36,', encoding="utf-8")


def set_config_json(**values) -> Callable[[Path], None]:
    def change(copy: Path) -> None:
        config = json.loads((copy / "config.json").read_text(encoding="utf-8"))
        (copy / "config.json").write_text(json.dumps({**config, **values}), encoding="utf-8")

    return change


def truncate_checkpoints(copy: Path) -> None:
    for path in sorted((copy / "checkpoints").rglob("*")):
        if path.is_file() and path.name != "manifest.json":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def nothing(copy: Path) -> None:
    pass


def good_data(**more: str | bytes) -> Setup:
    return files(**{"posts.csv": POSTS, "annotations.csv": ROWS, **more})


# ------------------------------------------------------------------------------------ cases


def data(id, posts=POSTS, rows=ROWS, *, expect, extra=(), setup=None, p="posts.csv"):
    """A `python -m lib.data {tmp}/<p> {tmp}/annotations.csv` case; None = file absent."""
    contents = {}
    if posts is not None:
        contents[p] = posts
    if rows is not None:
        contents["annotations.csv"] = rows
    steps = [files(**contents)] + ([setup] if setup else [])
    argv = (f"{{tmp}}/{p}", "{tmp}/annotations.csv", *extra)
    return Case(id, "data", argv, expect, chain(*steps))


def train(id, *argv, expect, setup=None):
    return Case(id, "train", tuple(argv), expect, setup)


def tune(id, *argv, expect, setup=None):
    return Case(id, "tune", tuple(argv), expect, setup)


def evaluate(id, *argv, expect, setup=None):
    return Case(id, "evaluate", tuple(argv), expect, setup)


CASES = [
    # --- python -m lib.data: the files themselves
    data("data-missing-posts", None, expect=r"posts\.csv"),
    data("data-missing-annotations", POSTS, None, expect=r"annotations\.csv"),
    data("data-posts-is-dir", None, setup=mkdirs("posts.csv"), expect=r"posts\.csv"),
    data("data-empty-posts", "", expect=r"posts\.csv"),
    data("data-posts-header-only", "post_id,text\n", expect=r"posts\.csv"),
    data("data-misspelt-posts-column", "post_id,txt\np1,hi\n", expect=r"posts\.csv.*text"),
    data(
        "data-wrong-annotation-columns",
        rows="post_id,sentence,sentence_text,symptom,status\np1,p1_0,I feel sad.,FATIGUE,1\n",
        expect=r"annotations\.csv",
    ),
    data("data-duplicate-post-id", POSTS + "p1,again\n", expect=r"posts\.csv.*p1"),
    data("data-unknown-post", rows=ROWS + "p9,p9_0,Hi.,FATIGUE,1,\n", expect=r"p9"),
    data("data-misspelt-symptom", rows=ROWS + "p1,p1_0,Hi.,FATIGEU,1,\n", expect=r"FATIGEU"),
    data("data-status-2", rows=ROWS + "p1,p1_0,Hi.,FATIGUE,2,\n", expect=r"row 4.*status"),
    data("data-status-yes", rows=ROWS + "p1,p1_0,Hi.,FATIGUE,yes,\n", expect=r"row 4.*status"),
    data("data-empty-text", POSTS + 'p3,""\n', expect=r"posts\.csv.*row 4"),
    data(
        "data-zero-width-text",
        POSTS + 'p3,"\u200b\u200b \t\u00a0\ufeff"\n',
        expect=r"posts\.csv.*row 4",
    ),
    data("data-utf16-posts", POSTS.encode("utf-16"), expect=r"posts\.csv"),
    data(
        "data-invalid-utf8-annotations",
        rows=ROWS.encode() + b"p1,p1_1,caf\xe9 \xff,FATIGUE,1,\n",
        expect=r"annotations\.csv.*row 4",
    ),
    data("data-unquoted-comma", POSTS + "p3,I was sad, then tired\n", expect=r"posts\.csv.*row 4"),
    data("data-malformed-quoting", POSTS + 'p3,"I was" sad\n', expect=r"posts\.csv.*row 4"),
    data("data-unterminated-quote", POSTS + 'p3,"I was sad\n', expect=r"posts\.csv"),
    data(
        "data-jsonl-bad-line",
        JSONL + '{"post_id": "p2", "text": }\n',
        expect=r"posts\.jsonl.*line 2",
        p="posts.jsonl",
    ),
    data(
        "data-jsonl-not-object",
        JSONL + '["p2", "Nothing is fun."]\n',
        expect=r"posts\.jsonl.*line 2",
        p="posts.jsonl",
    ),
    data(
        "data-jsonl-missing-key",
        JSONL + '{"id": "p2", "text": "Nothing is fun."}\n',
        expect=r"posts\.jsonl.*line 2",
        p="posts.jsonl",
    ),
    data("data-posts-txt-extension", expect=r"posts\.txt", p="posts.txt"),
    data(
        "data-symlink-loop-posts",
        None,
        setup=symlink_loop("loop.csv"),
        expect=r"loop\.csv",
        p="loop.csv",
    ),
    data(
        "data-ansi-and-nul-in-symptom",
        rows=ROWS + "p1,p1_0,Hi.,FATIGUE\x00\x1b[31m\x07,1,\n",
        expect=r"annotations\.csv.*row 4",
    ),
    data(
        "data-newline-injection-in-post-id",
        rows=ROWS + '"p9\nerror: all good",p9_0,Hi.,FATIGUE,1,\n',
        expect=r"annotations\.csv.*p9",
    ),
    Case(
        "data-swapped-arguments",
        "data",
        ("{tmp}/annotations.csv", "{tmp}/posts.csv"),
        r"annotations\.csv",
        good_data(),
    ),
    Case(
        "data-posts-dev-null",
        "data",
        ("/dev/null", "{tmp}/annotations.csv"),
        r"/dev/null",
        good_data(),
    ),
    data(
        "data-gzip-as-csv",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(256)),
        expect=r"posts\.csv",
    ),
    data(
        "data-json-array-item-not-object",
        '[{"post_id": "p1", "text": "I feel sad."}, 42]\n',
        expect=r"posts\.json",
        p="posts.json",
    ),
    data(
        "data-jsonl-text-null",
        JSONL + '{"post_id": "p2", "text": null}\n',
        expect=r"posts\.jsonl.*line 2",
        p="posts.jsonl",
    ),
    data("data-empty-post-id", POSTS + ',"Some text."\n', expect=r"posts\.csv.*row 4.*post_id"),
    data(
        "data-jsonl-lone-surrogate",  # a scraped emoji cut in half: valid JSON, invalid Unicode
        JSONL + '{"post_id": "p2", "text": "Nothing is fun \\ud83d today."}\n',
        expect=r"posts\.jsonl.*line 2, key text: a lone surrogate \\ud83d",
        p="posts.jsonl",
    ),
    data(
        "data-sentence-id-of-other-post",
        rows=ROWS + "p1,p2_0,Hi.,FATIGUE,1,\n",
        expect=r"row 4.*sentence_id",
    ),
    data(
        "data-sentence-id-negative",
        rows=ROWS + "p1,p1_-1,Hi.,FATIGUE,1,\n",
        expect=r"row 4.*sentence_id",
    ),
    data("data-limit-negative", extra=("data.limit=-1",), expect=r"data\.limit"),
    data(
        "data-config-is-dir",
        extra=("--config", "{tmp}/cfgdir"),
        setup=mkdirs("cfgdir"),
        expect=r"cfgdir",
    ),
    data("data-unknown-key", extra=("data.negativs=all",), expect=r"data\.negativs.*did you mean"),
    # --- train.py: config files and overrides
    train("train-unknown-key", "train.epoch=1", expect=r"train\.epoch\b.*did you mean"),
    train("train-wrong-type", "train.epochs=three", expect=r"train\.epochs"),
    train("train-config-missing", "--config", "{tmp}/nope.toml", expect=r"nope\.toml"),
    train("train-config-is-dir", "--config", "{tmp}/cfg", setup=mkdirs("cfg"), expect=r"cfg\b"),
    train(
        "train-config-not-utf8",
        "--config",
        "{tmp}/bad.toml",
        setup=files(**{"bad.toml": b'[train]\nrun_name = "caf\xe9"\n'}),
        expect=r"bad\.toml",
    ),
    train(
        "train-config-invalid-toml",
        "--config",
        "{tmp}/bad.toml",
        setup=files(**{"bad.toml": "[train\nlr = \n"}),
        expect=r"bad\.toml",
    ),
    train(
        "train-config-unknown-key-in-file",
        "--config",
        "{tmp}/x.toml",
        setup=files(**{"x.toml": "[train]\nepoch = 2\n"}),
        expect=r"train\.epoch\b",
    ),
    train("train-override-without-equals", "train.lr", expect=r"train\.lr"),
    train("train-lr-inf", "train.lr=inf", expect=r"train\.lr"),
    train("train-lr-nan", "train.lr=nan", expect=r"train\.lr"),
    train("train-lr-negative", "train.lr=-1", expect=r"train\.lr"),
    train("train-batch-size-zero", "train.batch_size=0", expect=r"train\.batch_size"),
    train("train-doc-stride-huge", "features.doc_stride=10000", expect=r"doc_stride"),
    train("train-null-threshold-nan", "decode.null_threshold=nan", expect=r"null_threshold"),
    train("train-unknown-tracker", "train.log_with=['nosuchtracker']", expect=r"nosuchtracker"),
    train("train-unknown-metric", "train.metric=sentence_f2", expect=r"train\.metric"),
    train("train-run-name-dotdot-x", "train.run_name=../x", expect=r"train\.run_name"),
    train("train-run-name-absolute", "train.run_name={tmp}/abs/x", expect=r"train\.run_name"),
    train("train-run-name-nested", "train.run_name=a/b", expect=r"train\.run_name"),
    train("train-run-name-dotdot", "train.run_name=..", expect=r"train\.run_name"),
    train("train-run-name-dot", "train.run_name=.", expect=r"train\.run_name"),
    train(
        "train-output-dir-is-file",
        "train.output_dir={tmp}/outfile",
        setup=files(outfile="my own data\n"),
        expect=r"outfile",
    ),
    train(
        "train-run-name-is-user-file",
        "train.output_dir={tmp}",
        "train.run_name=notes.txt",
        setup=files(**{"notes.txt": "my notes, not yours\n"}),
        expect=r"notes\.txt",
    ),
    train(
        "train-run-dir-is-user-folder",
        "train.run_name=myrun",
        setup=files(**{"w__runs__myrun__notes.txt": "my notes\n"}),
        expect=r"myrun",
    ),
    train("train-override-empty-key", "=1", expect=r"override"),
    train("train-epochs-float", "train.epochs=1.5", expect=r"train\.epochs"),
    train("train-epochs-bool", "train.epochs=true", expect=r"train\.epochs"),
    train("train-unknown-precision", "train.mixed_precision=fp17", expect=r"mixed_precision"),
    train("train-fp16-on-cpu", "train.mixed_precision=fp16", expect=r"mixed_precision=fp16"),
    train("train-unknown-question-mode", "data.question=criterio", expect=r"data\.question"),
    train("train-unknown-negatives", "data.negatives=some", expect=r"data\.negatives"),
    train("train-fuzzy-threshold-above-1", "data.fuzzy_threshold=1.5", expect=r"fuzzy_threshold"),
    train("train-warmup-ratio-2", "train.warmup_ratio=2", expect=r"warmup_ratio"),
    train(
        "train-max-length-beyond-model",
        "features.max_length=4096",
        "features.doc_stride=128",
        expect=r"max_length",
    ),
    train(
        "train-padding-beyond-model",
        "features.max_length=120",
        "features.pad_to_multiple_of=48",
        expect=r"pad_to_multiple_of=48 .* 144",
    ),
    train(
        "train-model-hub-id-offline", "model.name=SpanBERT/does-not-exist", expect=r"does-not-exist"
    ),
    train(
        "train-model-garbled-config-json",
        "model.name={tmp}/modelcopy",
        setup=model_copy(garble_config_json),
        expect=r"config\.json",
    ),
    train(
        "train-model-zero-heads",
        "model.name={tmp}/modelcopy",
        setup=model_copy(set_config_json(num_attention_heads=0)),
        expect=r"config\.json: invalid BERT config \(num_attention_heads must be",
    ),
    train(
        "train-model-one-token-type",
        "model.name={tmp}/modelcopy",
        setup=model_copy(set_config_json(type_vocab_size=1)),
        expect=r"type_vocab_size 1",
    ),
    train(
        "train-model-truncated-weights",
        "model.name={tmp}/modelcopy",
        setup=model_copy(truncate_weights),
        expect=r"model\.safetensors",
    ),
    train(
        "train-resume-corrupt-checkpoints",
        "train.resume={tmp}/runcopy",
        setup=run_copy(truncate_checkpoints),
        expect=r"runcopy|checkpoint",
    ),
    train("train-split-two-ratios", "data.split=[0.5,0.5]", expect=r"data\.split"),
    train("train-split-sum", "data.split=[0.5,0.5,0.5]", expect=r"data\.split"),
    train("train-unknown-symptom", "data.symptoms=['FATIGEU']", expect=r"FATIGEU"),
    train("train-posts-missing", "data.posts={tmp}/nope.csv", expect=r"nope\.csv"),
    train("train-model-missing-folder", "model.name={tmp}/nomodel", expect=r"nomodel"),
    train(
        "train-model-is-file",
        "model.name={tmp}/model.bin",
        setup=files(**{"model.bin": b"\x00" * 64}),
        expect=r"model\.bin",
    ),
    train(
        "train-model-without-config-json",
        "model.name={tmp}/nocfg",
        setup=files(**{"nocfg__vocab.txt": "[PAD]\n[UNK]\n"}),
        expect=r"nocfg|config\.json",
    ),
    train(
        "train-resume-not-a-run",
        "train.resume={tmp}/notrun",
        setup=files(**{"notrun__notes.txt": "mine\n"}),
        expect=r"notrun",
    ),
    train(
        "train-resume-latest-no-runs",
        "train.resume=latest",
        setup=mkdirs("w/runs"),
        expect=r"latest|train\.resume",
    ),
    # --- evaluate.py
    evaluate("eval-run-missing", "{tmp}/norun", expect=r"norun"),
    evaluate(
        "eval-run-is-file",
        "{tmp}/run.txt",
        setup=files(**{"run.txt": "not a run\n"}),
        expect=r"run\.txt.*(not a directory|a file)|(not a directory|a file).*run\.txt",
    ),
    evaluate(
        "eval-run-empty-folder", "{tmp}/blankrun", setup=mkdirs("blankrun"), expect=r"blankrun"
    ),
    evaluate(
        "eval-truncated-weights",
        "{tmp}/runcopy",
        setup=run_copy(truncate_weights),
        expect=r"model\.safetensors",
    ),
    evaluate(
        "eval-garbled-run-config",
        "{tmp}/runcopy",
        setup=run_copy(garble_config),
        expect=r"config\.toml",
    ),
    evaluate(
        "eval-run-without-tokenizer",
        "{tmp}/runcopy",
        setup=run_copy(drop_tokenizer),
        expect=r"tokenizer\.json",
    ),
    evaluate(
        "eval-out-is-file",
        "{run}",
        "--out",
        "{tmp}/out.txt",
        setup=files(**{"out.txt": "keep me\n"}),
        expect=r"out\.txt",
    ),
    evaluate(
        "eval-out-under-file",
        "{run}",
        "--out",
        "{tmp}/afile/sub",
        setup=files(afile="keep me\n"),
        expect=r"afile",
    ),
    evaluate("eval-predict-missing", "{run}", "--predict", "{tmp}/nope.csv", expect=r"nope\.csv"),
    evaluate(
        "eval-predict-empty-text",
        "{run}",
        "--predict",
        "{tmp}/new.csv",
        setup=files(**{"new.csv": 'post_id,text\nq1,I can not sleep.\nq2,""\n'}),
        expect=r"new\.csv.*row 3",
    ),
    evaluate("eval-override-non-decode", "{run}", "train.lr=1", expect=r"train\.lr"),
    evaluate("eval-fp16-on-cpu", "{run}", "--precision", "fp16", expect=r"--precision=fp16"),
    evaluate(
        "eval-predict-fp16-on-cpu",
        "{run}",
        "--predict",
        "{tmp}/posts.csv",
        "--precision",
        "fp16",
        setup=files(**{"posts.csv": POSTS}),
        expect=r"--precision=fp16",
    ),
    evaluate(
        "eval-null-threshold-nan", "{run}", "decode.null_threshold=nan", expect=r"null_threshold"
    ),
    evaluate(
        "eval-misspelt-decode-key",
        "{run}",
        "decode.multispan=true",
        expect=r"decode\.multispan.*did you mean",
    ),
    evaluate(
        "eval-data-missing-annotations",
        "{run}",
        "--data",
        "{tmp}/posts.csv",
        "{tmp}/nope_ann.csv",
        setup=files(**{"posts.csv": POSTS}),
        expect=r"nope_ann\.csv",
    ),
    evaluate(
        "eval-unknown-symptom", "{run}", "--symptoms", "FATIGUE,TIREDNESS", expect=r"TIREDNESS"
    ),
    evaluate(
        "eval-garbled-config-json",
        "{tmp}/runcopy",
        setup=run_copy(garble_config_json),
        expect=r"config\.json",
    ),
    evaluate("eval-run-symlink-loop", "{tmp}/loop", setup=symlink_loop("loop"), expect=r"loop"),
    evaluate(
        "eval-folder-of-runs",
        "{tmp}/runs",
        setup=run_copy(nothing, to="runs/run"),
        expect=r"runs\b",
    ),
    evaluate(
        "eval-out-holds-user-metrics-json",
        "{run}",
        "--out",
        "{tmp}/mine",
        setup=files(**{"mine__metrics.json": '{"mine": true}\n'}),
        expect=r"mine",
    ),
    evaluate(
        "eval-predict-duplicate-ids",
        "{run}",
        "--predict",
        "{tmp}/new.csv",
        setup=files(**{"new.csv": "post_id,text\nq1,I can not sleep.\nq1,I am tired.\n"}),
        expect=r"new\.csv.*row 3",
    ),
    evaluate(
        "eval-predict-annotations-file",
        "{run}",
        "--predict",
        "{tmp}/annotations.csv",
        setup=good_data(),
        expect=r"annotations\.csv",
    ),
    evaluate("eval-n-best-zero", "{run}", "decode.n_best=0", expect=r"decode\.n_best"),
    evaluate(
        "eval-max-answer-length-negative",
        "{run}",
        "decode.max_answer_length=-1",
        expect=r"decode\.max_answer_length",
    ),
    evaluate("eval-batch-size-zero", "{run}", "train.eval_batch_size=0", expect=r"eval_batch_size"),
    evaluate("eval-bad-split-choice", "{run}", "--split", "bogus", expect=r"bogus"),
    evaluate(
        "eval-data-and-predict",
        "{run}",
        "--data",
        "{tmp}/posts.csv",
        "{tmp}/annotations.csv",
        "--predict",
        "{tmp}/posts.csv",
        setup=good_data(),
        expect=r"--data.*--predict|--predict.*--data",
    ),
    # --- tune.py
    tune("tune-posts-missing", "data.posts=nope.csv", expect=r"nope\.csv"),
    tune("tune-storage-bad-scheme", "tune.storage=foo://bar", expect=r"tune\.storage|foo://"),
    tune(
        "tune-journal-under-file",
        "tune.storage=journal:{tmp}/afile/x.log",
        setup=files(afile="keep me\n"),
        expect=r"afile",
    ),
    tune(
        "tune-sqlite-under-file",
        "tune.storage=sqlite:///{tmp}/afile/o.db",
        setup=files(afile="keep me\n"),
        expect=r"afile",
    ),
    tune(
        "tune-journal-is-user-text-file",
        "tune.storage=journal:{tmp}/notes.txt",
        setup=files(**{"notes.txt": "my own notes, not a journal\n"}),
        expect=r"notes\.txt",
    ),
    tune(
        "tune-sqlite-is-user-text-file",
        "tune.storage=sqlite:///{tmp}/notdb.db",
        setup=files(**{"notdb.db": "my own notes, not a database\n"}),
        expect=r"notdb\.db",
    ),
    tune(
        "tune-journal-is-dir",
        "tune.storage=journal:{tmp}/jdir",
        setup=mkdirs("jdir"),
        expect=r"jdir",
    ),
    tune("tune-timeout-negative", "tune.timeout=-1", expect=r"tune\.timeout"),
    tune(
        "tune-space-empty-choices",
        "tune.space={'train.batch_size' = {choices=[]}}",
        expect=r"train\.batch_size",
    ),
    tune(
        "tune-space-log-from-zero",
        "tune.space={'train.lr' = {low=0.0, high=1e-4, log=true}}",
        expect=r"train\.lr",
    ),
    tune("tune-space-spec-not-table", "tune.space={'train.lr' = 'abc'}", expect=r"train\.lr"),
    tune("tune-study-name-dot", "tune.study_name=.", expect=r"tune\.study_name"),
    tune("tune-empty-space", "tune.space={}", expect=r"tune\.space"),
    tune(
        "tune-space-unknown-key",
        "tune.space.train.lrr={low=1e-5, high=1e-4}",
        expect=r"train\.lrr",
    ),
    tune(
        "tune-space-low-above-high",
        "tune.space={'train.lr' = {low=1e-3, high=1e-5}}",
        expect=r"train\.lr",
    ),
    tune(
        "tune-study-folder-holds-user-file",
        "tune.study_name=mystudy",
        setup=files(**{"w__runs__mystudy__notes.txt": "my notes\n"}),
        expect=r"mystudy",
    ),
    tune("tune-study-name-traversal", "tune.study_name=../../x", expect=r"tune\.study_name"),
    tune("tune-study-name-empty", 'tune.study_name=""', expect=r"tune\.study_name"),
    tune("tune-study-name-nested", "tune.study_name=a/b", expect=r"tune\.study_name"),
    tune("tune-n-trials-negative", "tune.n_trials=-1", expect=r"tune\.n_trials"),
    tune("tune-unknown-pruner", "tune.pruner=hyperbandd", expect=r"tune\.pruner"),
    tune("tune-unknown-key", "tune.n_trail=1", expect=r"tune\.n_trail\b.*did you mean"),
    tune(
        "tune-config-invalid-toml-notes-kept",
        "--config",
        "{tmp}/t.toml",
        setup=files(**{"t.toml": "[tune]\nn_trials = = 3\n", "notes.txt": "précieux\n"}),
        expect=r"t\.toml",
    ),
]

SCRIPTS = {
    "data": ["-m", "lib.data"],
    "train": ["train.py"],
    "evaluate": ["evaluate.py"],
    "tune": ["tune.py"],
}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_overrides) -> Path:
    """One tiny trained run for every evaluate case (outside the cases' own folders)."""
    from lib.config import load_config
    from lib.training.trainer import train as train_run

    out = tmp_path_factory.mktemp("hostile_runs")
    metrics = train_run(load_config(overrides=tiny_overrides(out)))
    return Path(metrics["run_dir"])


# ------------------------------------------------------------------------------------ helpers


def snapshot(root: Path) -> dict[str, tuple]:
    """relative path -> ("dir",) | ("file", bytes) | ("link", target) | ("other",)."""
    tree: dict[str, tuple] = {}
    if not root.exists():
        return tree
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(folder, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                tree[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                tree[rel] = ("dir",)
            elif path.is_file():
                tree[rel] = ("file", path.read_bytes())
            else:
                tree[rel] = ("other",)
    return tree


def tree_changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return [f"+{k}" for k in added] + [f"-{k}" for k in removed] + [f"~{k}" for k in changed]


def fill(text: str, tmp: Path, run: Path | None) -> str:
    text = text.replace("{tmp}", str(tmp))
    return text if run is None else text.replace("{run}", str(run))


def command(case: Case, tmp: Path, run: Path | None, tiny: list[str]) -> list[str]:
    argv = list(case.argv)
    head: list[str] = []
    if argv[:1] == ["--config"]:
        head, argv = argv[:2], argv[2:]
    common: list[str] = []
    if case.cli in ("train", "tune"):
        common = list(tiny)
    if case.cli == "tune":
        common += [
            f"tune.storage=sqlite:///{tmp}/o.db",
            "tune.n_trials=1",
            "tune.study_name=study",
            "tune.retrain_best=false",
        ]
    return [sys.executable, *SCRIPTS[case.cli], *head, *common, *argv]


def error_line_problems(stderr: str, expect: str) -> list[str]:
    """What is wrong with stderr as the one `error: ...` line the contract asks for."""
    text = stderr[:-1] if stderr.endswith("\n") else stderr
    if "Traceback" in stderr:
        return ["a traceback"]
    if not text.strip():
        return ["stderr is empty"]
    if "\n" in text or "\r" in text:
        return [f"stderr is {len(text.splitlines())} lines, not one"]
    problems = []
    if not text.startswith("error:"):
        problems.append("the line does not start with 'error:'")
    controls = sorted({hex(ord(ch)) for ch in text if unicodedata.category(ch) == "Cc"})
    if controls:
        problems.append(f"control characters {controls} in the line")
    if not re.search(expect, text):
        problems.append(f"the line does not match {expect!r}")
    return problems


# ------------------------------------------------------------------------------------ the test


def test_cases_are_many_and_cover_every_cli():
    assert len(CASES) >= 45
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.expect for c in CASES)
    assert {c.cli for c in CASES} == set(SCRIPTS)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_costs_nothing(case: Case, tmp_path: Path, request):
    fx = request.getfixturevalue
    run = fx("trained_run") if case.cli == "evaluate" else None
    tiny: list[str] = []
    if case.cli in ("train", "tune"):
        tiny = fx("tiny_overrides")(tmp_path / "w" / "runs")
    if case.setup is not None:
        case.setup(tmp_path, fx)
    argv = [fill(a, tmp_path, run) for a in command(case, tmp_path, run, tiny)]

    watched = [tmp_path] + ([run] if run is not None else [])
    before = [snapshot(folder) for folder in watched]
    try:
        proc = subprocess.run(
            argv,
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            capture_output=True,
            text=True,
            errors="backslashreplace",
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.id}: no answer within {TIMEOUT} s")
    after = [snapshot(folder) for folder in watched]

    problems = [] if proc.returncode == 2 else [f"exit status {proc.returncode}, not 2"]
    problems += error_line_problems(proc.stderr, case.expect)
    for folder, old, new in zip(watched, before, after, strict=True):
        if changes := tree_changes(old, new):
            problems.append(f"{folder} changed: {changes[:10]}")
    assert not problems, (
        f"{'; '.join(problems)}\nstderr head: {proc.stderr[:200]!r}\n"
        f"stderr tail: {proc.stderr[-1500:]!r}"
    )
