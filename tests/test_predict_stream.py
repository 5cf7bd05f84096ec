"""evaluate.py --predict at corpus scale: chunked output identical to one chunk, resuming after
SIGKILL, a changed input refused, a bad row mid-file, two processes = one (issue 16)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib.config import load_config
from lib.data.corpus import iter_posts, load_posts
from lib.errors import UserError
from lib.evaluation.predict_stream import TopSentences
from lib.evaluation.ranking import rank_sentences
from lib.evaluation.trec import run_lines
from lib.training.trainer import train

ROOT = Path(__file__).resolve().parent.parent
SYMPTOMS = "SLEEP_ISSUES,FATIGUE"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_overrides):
    out = tmp_path_factory.mktemp("stream_run")
    metrics = train(load_config(overrides=[*tiny_overrides(out), "data.negatives=all"]))
    return Path(metrics["run_dir"])


def write_posts(path: Path, posts) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["post_id", "text"])
        writer.writerows([p.post_id, p.text] for p in posts)
    return path


@pytest.fixture(scope="module")
def posts_file(tmp_path_factory):
    posts = list(load_posts(ROOT / "data/demo/posts.csv").values())[:90]
    return write_posts(tmp_path_factory.mktemp("posts") / "posts.csv", posts)


def predict_cmd(run, posts, out, *extra, python=(sys.executable,)):
    return [
        *python,
        "evaluate.py",
        str(run),
        "--predict",
        str(posts),
        "--symptoms",
        SYMPTOMS,
        "--out",
        str(out),
        *map(str, extra),
    ]


def predict(run, posts, out, *extra, python=(sys.executable,)):
    return subprocess.run(
        predict_cmd(run, posts, out, *extra, python=python),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def outputs(out: Path) -> dict[str, bytes]:
    """The files a finished prediction leaves (the chunk files are gone)."""
    assert not (out / "chunks").exists()
    return {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".jsonl", ".trec")}


@pytest.fixture(scope="module")
def reference(run, posts_file, tmp_path_factory):
    """All posts in one chunk."""
    out = tmp_path_factory.mktemp("ref") / "out"
    proc = predict(run, posts_file, out, "--chunk-posts", 100000)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "predicted 90 posts" in proc.stdout
    return outputs(out)


def test_chunked_output_is_byte_identical_to_one_chunk(run, posts_file, reference, tmp_path):
    proc = predict(run, posts_file, tmp_path / "out", "--chunk-posts", 7)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert outputs(tmp_path / "out") == reference
    lines = reference["predictions.jsonl"].decode().splitlines()
    order = [(json.loads(line)["post_id"], json.loads(line)["symptom"]) for line in lines]
    ids = list(load_posts(posts_file))
    assert order == [(p, s) for p in ids for s in SYMPTOMS.split(",")]  # input order
    summary = json.loads((tmp_path / "out" / "predict.json").read_text())["summary"]
    assert summary["posts"] == 90 and len(summary["digests"]) == 13  # ceil(90 / 7)
    assert summary["input"]["bytes"] == posts_file.stat().st_size


def _kill_after_chunks(cmd, out: Path, chunks: int) -> None:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(list((out / "chunks").glob("*.json"))) < chunks:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {chunks} chunks before the end: {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "predictions.jsonl").exists()


def test_sigkill_then_rerun_gives_the_same_file(run, posts_file, reference, tmp_path):
    out = tmp_path / "out"
    _kill_after_chunks(predict_cmd(run, posts_file, out, "--chunk-posts", 2), out, 3)
    done = len(list((out / "chunks").glob("*.json")))
    assert 3 <= done < 45
    proc = predict(run, posts_file, out, "--chunk-posts", 2)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert outputs(out) == reference
    # run again on a finished folder: nothing to do, nothing changed
    again = predict(run, posts_file, out, "--chunk-posts", 2)
    assert again.returncode == 0, again.stderr[-2000:]
    assert outputs(out) == reference


def test_changed_input_is_refused_and_a_fixed_bad_row_resumes(run, posts_file, reference, tmp_path):
    out = tmp_path / "out"
    posts = list(load_posts(posts_file).values())
    _kill_after_chunks(predict_cmd(run, posts_file, out, "--chunk-posts", 2), out, 2)
    before = sorted(p.name for p in (out / "chunks").iterdir())

    # a post of the first (done) chunk edited: refused, one line, nothing touched
    edited = write_posts(tmp_path / "edited.csv", [posts[0].__class__("x", "edited")] + posts[1:])
    proc = predict(run, edited, out, "--chunk-posts", 2)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "the input changed" in proc.stderr
    assert sorted(p.name for p in (out / "chunks").iterdir()) == before

    # other settings than the first run's: refused
    proc = predict(run, posts_file, out, "--chunk-posts", 3)
    assert proc.returncode == 2 and "chunk_posts" in proc.stderr, proc.stderr[-2000:]

    # a malformed row late in the file: its row named, exit 2, the done chunks kept
    broken = tmp_path / "broken.csv"
    text = posts_file.read_text(encoding="utf-8").splitlines(keepends=True)
    broken.write_text("".join(text[:80]) + 'bad,"unterminated\n' + "".join(text[80:]))
    proc = predict(run, broken, out, "--chunk-posts", 2)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "broken.csv: row" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (out / "chunks").iterdir()) == before

    # fixed: resumes, and the result is the one-shot one
    proc = predict(run, posts_file, out, "--chunk-posts", 2)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert outputs(out) == reference

    # a finished folder refuses another input too
    proc = predict(run, edited, out, "--chunk-posts", 2)
    assert proc.returncode == 2 and "the input changed" in proc.stderr, proc.stderr[-2000:]


def test_two_processes_write_the_same_file_as_one(run, posts_file, reference, tmp_path):
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--cpu"]
    launcher += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launcher += ["--dynamo_backend", "no"]
    proc = predict(run, posts_file, tmp_path / "out", "--chunk-posts", 4, python=launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert outputs(tmp_path / "out") == reference
    assert proc.stdout.count("predicted 90 posts") == 1  # the main process reports


def test_posts_are_streamed_and_a_bad_row_is_found_after_the_good_ones(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = [json.dumps({"post_id": f"p{i}", "text": f"post {i}."}) for i in range(5)]
    path.write_text("\n".join([*lines, '{"post_id": "bad"', *lines[:1]]) + "\n")
    seen = []
    with pytest.raises(UserError, match=r"p\.jsonl: line 6, column \d+: invalid JSON"):
        for post in iter_posts(path):
            seen.append(post.post_id)
    assert seen == [f"p{i}" for i in range(5)]
    # a duplicate id found later in the stream names where it was first seen
    path.write_text("\n".join([*lines, lines[2]]) + "\n")
    with pytest.raises(
        UserError, match=r"line 6, column post_id: duplicate .*first seen at line 3"
    ):
        list(iter_posts(path))


def test_top_sentences_keep_exactly_the_best_ranked(tmp_path):
    import random

    rng = random.Random(0)
    top, everything = TopSentences(depth=5), {}
    for post in range(40):
        scores = [rng.choice([None, 0.5, 1.0, rng.random()]) for _ in range(rng.randint(0, 4))]
        top.add("S", f"p{post:02d}", scores)
        everything.update({(f"p{post:02d}", i): s for i, s in enumerate(scores) if s is not None})
    kept = top.scores["S"]
    assert rank_sentences(kept)[:5] == rank_sentences(everything)[:5]

    # null (no candidate span would make the sentence evidence) is not ranked, as in memory
    few = TopSentences(depth=5)
    few.add("S", "p", [None, 0.25])
    assert rank_sentences(few.scores["S"]) == [("p", 1)]


def test_run_file_ranks_what_the_in_memory_evaluation_ranks(reference):
    """The merged <tag>.trec is run_lines over every scored sentence of predictions.jsonl, as
    evaluate.py writes it from memory: a null score (no span would make it evidence) is left out."""
    (trec_name,) = [name for name in reference if name.endswith(".trec")]
    ranked: dict = {}
    nulls = 0
    for line in reference["predictions.jsonl"].decode("utf-8").splitlines():
        record = json.loads(line)
        for index, score in enumerate(record["sentence_scores"]):
            if score is None:
                nulls += 1
            else:
                ranked.setdefault(record["symptom"], {})[(record["post_id"], index)] = score
    expected = run_lines(ranked, trec_name.removesuffix(".trec"))
    assert reference[trec_name].decode("utf-8").splitlines() == expected
    assert nulls, "the tiny model leaves some sentences unscored, so the rule is exercised"
