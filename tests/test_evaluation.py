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
from lib.evaluation.ranking import ranking_metrics
from lib.evaluation.trec import docno, parse_docno, parse_qrels, parse_run
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
    # the sentence ranking from the file alone: sentence_scores and gold_sentences
    scores, relevant = {}, {}
    for r in records:
        assert len(r["sentence_scores"]) == len(r["sentences"])
        for i, score in enumerate(r["sentence_scores"]):
            if score is not None:
                scores.setdefault(r["symptom"], {})[(r["post_id"], i)] = score
        relevant.setdefault(r["symptom"], set()).update(
            (r["post_id"], i) for i in r["gold_sentences"]
        )
    expected = MetricAggregator(examples)(np.array(rows, dtype=np.float64))
    expected.update(ranking_metrics(scores, relevant))
    assert expected == metrics
    assert "ranking_map" in metrics


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


def test_an_output_folder_holds_one_evaluation_or_one_prediction(trained_run, tmp_path):
    run, _ = trained_run
    out, predicted = tmp_path / "eval", tmp_path / "pred"
    assert _evaluate(run, "--html", "--out", out).returncode == 0
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()
    # evaluated again without --html: the earlier report does not stay beside new predictions
    assert _evaluate(run, "--out", out).returncode == 0
    assert not (out / "report.html").exists() and (out / "metrics.json").is_file()

    posts = tmp_path / "new.jsonl"
    posts.write_text('{"post_id": "n1", "text": "I cannot sleep at night."}\n', encoding="utf-8")
    held = sorted(p.name for p in out.iterdir())
    proc = _evaluate(run, "--predict", posts, "--out", out)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "is an evaluation folder of this project, not a prediction folder" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == held
    assert _evaluate(run, "--predict", posts, "--out", predicted).returncode == 0
    proc = _evaluate(run, "--out", predicted)
    assert proc.returncode == 2 and "is a prediction folder" in proc.stderr, proc.stderr[-2000:]


def test_html_report_of_an_annotated_split(trained_run, tmp_path):
    run, _ = trained_run
    assert _evaluate(run, "--html", "--out", tmp_path).returncode == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    # the summary: header, metric table and bar chart, training curve, threshold curve
    assert page.count("<svg") >= 3 and "config.toml sha256" in page and "best step" in page
    assert "the best model" in page and 'class="sentence" title="sentence 0: score' in page


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


def test_trec_files_parse_and_follow_the_scores(trained_run, tmp_path):
    run, _ = trained_run
    assert _evaluate(run, "--split", "val", "--out", tmp_path).returncode == 0
    records = _records(tmp_path / "predictions.jsonl")
    lines = (tmp_path / f"{run.name}.trec").read_text(encoding="utf-8").splitlines()
    ranking = parse_run(lines)
    assert set(ranking) == {r["symptom"] for r in records}
    for symptom, ranked in ranking.items():
        expected = {
            docno(r["post_id"], i): score
            for r in records
            if r["symptom"] == symptom
            for i, score in enumerate(r["sentence_scores"])
            if score is not None
        }
        assert len(ranked) == min(1000, len(expected))
        # our order: score descending, ties by post_id then sentence index
        ours = sorted(expected, key=lambda doc: (-expected[doc], *parse_docno(doc)))
        assert [doc for doc, _ in ranked] == ours[: len(ranked)]
        # written as trec_eval keeps them (float32), strictly decreasing so it reads this order
        written = [score for _, score in ranked]
        assert all(a > b for a, b in zip(written, written[1:]))
        for doc, score in ranked:
            assert abs(score - expected[doc]) <= 1e-5 * max(1.0, abs(expected[doc]))
    for line in lines:  # "SYMPTOM Q0 DOCNO RANK SCORE RUN", ranks from 1 per symptom
        assert line.split()[1] == "Q0" and line.split()[5] == run.name
    gold = {}
    for r in records:
        gold.setdefault(r["symptom"], set()).update(
            docno(r["post_id"], i) for i in r["gold_sentences"]
        )
    qrels = parse_qrels((tmp_path / "qrels.txt").read_text(encoding="utf-8").splitlines())
    assert qrels == {s: docs for s, docs in gold.items() if docs}


def test_sentence_scores_agree_with_evidence_sentences(trained_run, tmp_path):
    run, _ = trained_run
    assert _evaluate(run, "--split", "val", "--out", tmp_path).returncode == 0
    threshold = load_config(run / "config.toml", base=None).decode.null_threshold
    for r in _records(tmp_path / "predictions.jsonl"):
        scores = r["sentence_scores"]
        for i in r["evidence_sentences"]:  # evidence came from a span that passed the test
            assert scores[i] is not None and scores[i] >= -threshold - 1e-6, (r, i)
        assert r["sentences"] == sorted(r["sentences"])


def test_a_training_checkpoint_can_be_evaluated(trained_run, tmp_path):
    run, trained = trained_run
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    assert checkpoints, "the fixture run keeps its epoch checkpoints"
    at_best = [c for c in checkpoints if int(c.name.split("-")[1]) == trained["best_step"]]
    assert at_best, [c.name for c in checkpoints]
    proc = _evaluate(at_best[0], "--out", tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"scored: checkpoint {at_best[0].name} of {run}" in proc.stdout
    assert (tmp_path / "c" / f"{run.name}-{at_best[0].name}.trec").is_file()
    # the checkpoint taken at the best step holds the best model's weights: same numbers
    evaluated = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert evaluated == trained["test"]


def test_a_damaged_checkpoint_is_refused_in_one_line(trained_run, tmp_path):
    run, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    checkpoint = sorted((copy / "checkpoints").glob("step-*"))[0]
    with open(checkpoint / "model.safetensors", "ab") as f:
        f.write(b"\0")
    proc = _evaluate(checkpoint, "--out", tmp_path / "c")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot be used" in proc.stderr and "model.safetensors" in proc.stderr
    assert not (tmp_path / "c").exists()
