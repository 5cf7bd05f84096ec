"""evaluate.py: reproduces train.py's test metrics, predictions.jsonl re-scores to metrics.json,
--predict on unannotated posts, the HTML report, and one-line errors for bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lib.config import load_config
from lib.data.corpus import Example, Span
from lib.evaluation.metrics import MetricAggregator, gold_answers, squad_exact, squad_f1
from lib.training.trainer import train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_overrides):
    out = tmp_path_factory.mktemp("eval_runs")
    # negatives=all so the run's null threshold is tuned and NoAns rows are scored
    metrics = train(
        load_config(overrides=[*tiny_overrides(out), "train.epochs=2", "data.negatives=all"])
    )
    return Path(metrics["run_dir"]), metrics


def _evaluate(*args):
    return subprocess.run(
        [sys.executable, "evaluate.py", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_reproduces_the_test_metrics_of_training_exactly(trained_run, tmp_path):
    run, trained = trained_run
    proc = _evaluate(run, "--out", tmp_path / "ev")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sentence-level" in proc.stdout and proc.stdout.strip().endswith(
        f"wrote: {tmp_path / 'ev'}"
    )
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert evaluated == trained["test"]  # every key, every digit
    stored = json.loads((run / "metrics.json").read_text())
    assert evaluated == stored["test"]


def test_predictions_jsonl_alone_rescore_to_metrics_json(trained_run, tmp_path):
    run, _ = trained_run
    assert _evaluate(run, "--split", "val", "--out", tmp_path).returncode == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    records = _records(tmp_path / "predictions.jsonl")
    rows, examples = [], []
    for r in records:
        gold = tuple(Span(g["start"], g["end"], g["text"]) for g in r["gold"])
        example = Example(
            f"{r['post_id']}::{r['symptom']}", r["post_id"], r["symptom"], "", "", gold
        )
        text = r["spans"][0]["text"] if r["spans"] else ""  # best span first
        golds = gold_answers(example)
        predicted, gold_sentences = set(r["evidence_sentences"]), set(r["gold_sentences"])
        rows.append(
            [
                max(squad_exact(g, text) for g in golds),
                max(squad_f1(g, text) for g in golds),
                len(predicted & gold_sentences),
                len(predicted),
                len(gold_sentences),
            ]
        )
        examples.append(example)
    assert MetricAggregator(examples)(np.array(rows, dtype=np.float64)) == metrics


def test_predict_on_posts_without_annotations(trained_run, tmp_path):
    run, _ = trained_run
    posts = tmp_path / "new.jsonl"
    posts.write_text(
        '{"post_id": "n1", "text": "I cannot sleep at night. I feel tired all day."}\n'
        '{"post_id": "n2", "text": "Great week. Went hiking!"}\n',
        encoding="utf-8",
    )
    proc = _evaluate(
        run,
        "--predict",
        posts,
        "--symptoms",
        "SLEEP_ISSUES,FATIGUE,ANHEDONIA",
        "--out",
        tmp_path / "p",
        "--html",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = _records(tmp_path / "p" / "predictions.jsonl")
    pairs = {(r["post_id"], r["symptom"]) for r in records}
    assert pairs == {(p, s) for p in ("n1", "n2") for s in ("SLEEP_ISSUES", "FATIGUE", "ANHEDONIA")}
    assert all("gold" not in r for r in records) and not (tmp_path / "p" / "metrics.json").exists()
    text = {
        "n1": "I cannot sleep at night. I feel tired all day.",
        "n2": "Great week. Went hiking!",
    }
    for r in records:
        for span in r["spans"]:
            assert text[r["post_id"]][span["start"] : span["end"]] == span["text"]
    assert "<html" in (tmp_path / "p" / "report.html").read_text(encoding="utf-8").lower()


def test_html_report_of_an_annotated_split(trained_run, tmp_path):
    run, _ = trained_run
    assert _evaluate(run, "--html", "--out", tmp_path).returncode == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script src" not in page


def test_decode_overrides_apply_and_others_are_refused(trained_run, tmp_path):
    run, _ = trained_run
    proc = _evaluate(run, "decode.null_threshold=-1e9", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(not r["spans"] for r in _records(tmp_path / "predictions.jsonl"))
    proc = _evaluate(run, "train.lr=1")
    assert proc.returncode == 2 and "accepts only decode.*" in proc.stderr


def _bigger_vocab_tokenizer(path):
    """A tokenizer whose ids run past the model's 30,522 embeddings."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    vocab.update({f"w{i}": i + 5 for i in range(40000)})
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.save(str(path))


def _bad_run(tmp_path, run, name, damage):
    bad = tmp_path / name
    shutil.copytree(run, bad, ignore=shutil.ignore_patterns("checkpoints", "eval-*"))
    damage(bad)
    return bad


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("missing", lambda d: shutil.rmtree(d), "does not exist"),
        ("incomplete", lambda d: (d / "tokenizer.json").unlink(), "missing tokenizer.json"),
        (
            "corrupt",
            lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 100),
            "model.safetensors",
        ),
        ("vocab", lambda d: _bigger_vocab_tokenizer(d / "tokenizer.json"), "vocab"),
    ],
)
def test_bad_run_directory_is_one_line(trained_run, tmp_path, name, damage, message):
    run, _ = trained_run
    proc = _evaluate(_bad_run(tmp_path, run, name, damage))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_posts_in_the_wrong_format_is_one_line(trained_run, tmp_path):
    run, _ = trained_run
    posts = tmp_path / "posts.csv"
    posts.write_text("id,body\n1,hello\n", encoding="utf-8")
    proc = _evaluate(run, "--predict", posts, "--out", tmp_path / "out")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "posts.csv" in proc.stderr and not (tmp_path / "out").exists()
