"""`python evaluate.py RUN --predict POSTS`: predict evidence on any number of posts in bounded
memory, resumably, sharded across processes (DESIGN §7, §10).

The posts are read as a stream and cut into chunks of `chunk_posts` posts in file order; chunk k
holds posts [k*C, (k+1)*C). Each chunk goes through the same steps as evaluate.py's in-memory
evaluation (examples, feature windows, batched logits, decoding, prediction records) and is
written to OUT/chunks/ as two files, each renamed into place whole (lib.files): its
predictions, then a small JSON record (posts, windows, evidence per symptom, and the sha256 of
its posts' ids and texts). A chunk is done when its record exists. Memory holds one chunk, the
set of post_ids seen (duplicates are refused) and, at the merge, the top 1,000 sentences per
symptom for the TREC run file.

Resuming. Running the same command again skips the done chunks and predicts the rest. Each done
chunk's digest is compared with the posts the input holds now: a chunk predicted from other
posts is refused with one line (the input changed; nothing is mixed). A change after the done
chunks is accepted -- that is how a file fixed after a bad row at line 50,001 resumes. The
settings that shape a prediction (weights, symptoms, windows, decoding, precision, chunk size)
are recorded in OUT/predict.json by the first run and must match on every later one.

Sharding. Under `accelerate launch` process r of N predicts the chunks k with k % N == r (every
process reads the whole file, which costs little next to the model); no collective runs per
batch, so processes may do different amounts of work. When all are done the main process merges
the chunks, in input order, into predictions.jsonl and the run file `<tag>.trec`, records the
summary in predict.json and removes the chunk files it wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from lib.config import Config
from lib.data.corpus import Post, iter_posts, load_posts
from lib.data.examples import build_examples
from lib.data.features import build_features
from lib.data.sentences import split_sentences
from lib.errors import RunError, UserError
from lib.evaluation.decoding import Prediction, ScoredSpan
from lib.evaluation.evaluate_run import (
    EvalData,
    Target,
    load_target_model,
    prediction_records,
    read_run_metrics,
    report_header,
)
from lib.evaluation.inference import eval_loader, inference_runner, local_logits
from lib.evaluation.ranking import SentenceId, rank_sentences
from lib.evaluation.scoring import evaluate_examples
from lib.evaluation.trec import run_lines
from lib.files import (
    json_line,
    read_json_object,
    strict_json,
    write_atomically,
    write_json_atomic,
)
from lib.model.cpu_speedups import apply_cpu_speedups
from lib.run_dir import claim_dir, sha256

log = logging.getLogger("lib.evaluation.predict_stream")

SETTINGS_FILE = "predict.json"
FOLDER_KIND = "prediction"  # not an evaluation's: a rerun of either must not meet the other's files
CHUNKS = "chunks"
DEFAULT_CHUNK_POSTS = 256
RUN_DEPTH = 1000  # sentences per symptom in the TREC run file (trec_eval's default depth)


# ------------------------------------------------------------------------------ the input, cut up


@dataclass(frozen=True)
class Chunk:
    index: int
    posts: dict[str, Post]  # in file order
    digest: str  # sha256 of the posts' (post_id, text) pairs: what its predictions depend on


def _digest(posts: Sequence[Post]) -> str:
    h = hashlib.sha256()
    for post in posts:
        h.update(json.dumps([post.post_id, post.text], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def read_chunks(path: Path, chunk_posts: int) -> Iterator[Chunk]:
    """The posts file as consecutive chunks of `chunk_posts` posts (the last may be shorter)."""
    batch: list[Post] = []
    index = 0
    for post in iter_posts(path):
        batch.append(post)
        if len(batch) == chunk_posts:
            yield Chunk(index, {p.post_id: p for p in batch}, _digest(batch))
            batch, index = [], index + 1
    if batch:
        yield Chunk(index, {p.post_id: p for p in batch}, _digest(batch))


def count_posts(path: Path) -> int:
    """One pass over the file that checks every row: a bad row is found before any work."""
    return sum(1 for _ in iter_posts(path))


# ---------------------------------------------------------------------------- one chunk's output


@dataclass(frozen=True)
class Predictor:
    """What every chunk is predicted with."""

    cfg: Config
    symptoms: tuple[str, ...]
    tokenizer: object
    runner: torch.nn.Module  # eval mode, on `device`, in the inference precision
    device: torch.device


def predict_chunk(p: Predictor, chunk: Chunk) -> tuple[str, dict]:
    """(predictions.jsonl lines of the chunk, its record): the in-memory evaluation's steps."""
    d, f = p.cfg.data, p.cfg.features
    examples, _ = build_examples(
        chunk.posts,
        [],
        symptoms=p.symptoms,
        question_mode=d.question,
        criteria=d.criteria,
        negatives="all",
    )
    features = build_features(
        examples,
        p.tokenizer,
        max_length=f.max_length,
        doc_stride=f.doc_stride,
        max_question_length=f.max_question_length,
    )
    loader = eval_loader(
        features,
        batch_size=p.cfg.train.eval_batch_size,
        pad_id=p.tokenizer.token_to_id("[PAD]"),
        pad_to_multiple_of=f.pad_to_multiple_of,
    )
    start, end = local_logits(p.runner, loader, p.device, len(features))
    sentences = {pid: split_sentences(post.text) for pid, post in chunk.posts.items()}
    result = evaluate_examples(
        examples,
        features,
        start,
        end,
        decode_cfg=p.cfg.decode,
        sentences=sentences,
        metric=p.cfg.train.metric,
        tune_threshold=False,
    )
    data = EvalData("predict", chunk.posts, examples, annotated=False)
    records = prediction_records(data, result, sentences)
    evidence = dict.fromkeys(p.symptoms, 0)
    for record in records:
        evidence[record["symptom"]] += bool(record["spans"])
    info = {
        "index": chunk.index,
        "posts": len(chunk.posts),
        "digest": chunk.digest,
        "windows": len(features),
        "evidence": evidence,
    }
    return "".join(json_line(r) for r in records), info


# ------------------------------------------------------------------------- the chunks on disk


@dataclass
class ChunkStore:
    """OUT/chunks: `NNNNNNNN.jsonl` (the predictions) and `NNNNNNNN.json` (the record, written
    second: a chunk is done when it exists)."""

    folder: Path

    def _path(self, index: int, suffix: str) -> Path:
        return self.folder / f"{index:08d}{suffix}"

    def record(self, index: int) -> dict | None:
        path = self._path(index, ".json")
        return read_json_object(path) if path.is_file() else None

    def write(self, index: int, lines: str, info: dict) -> None:
        write_atomically(
            self._path(index, ".jsonl"), lambda t: Path(t).write_text(lines, encoding="utf-8")
        )
        write_json_atomic(self._path(index, ".json"), info)

    def lines(self, index: int) -> Path:
        return self._path(index, ".jsonl")

    def remove(self, count: int) -> None:
        """Delete what `write` made (and temporaries of killed writes), then the folder if that
        leaves it empty: nothing else in it is touched."""
        for index in range(count):
            for suffix in (".jsonl", ".json"):
                self._path(index, suffix).unlink(missing_ok=True)
        for temp in self.folder.glob(".????????.json*.tmp"):
            temp.unlink(missing_ok=True)
        if not any(self.folder.iterdir()):
            self.folder.rmdir()


def check_done(store: ChunkStore, chunk: Chunk, source: Path) -> dict | None:
    """The chunk's record if it is done; a UserError if it was predicted from other posts."""
    info = store.record(chunk.index)
    if info is not None and info.get("digest") != chunk.digest:
        first = next(iter(chunk.posts))
        raise UserError(
            f"{source}: the posts of chunk {chunk.index} (from post {first!r}) are not the ones "
            f"{store.folder.parent} predicted; the input changed -- use another --out"
        )
    return info


# ------------------------------------------------------------------------------- the settings


def settings_record(cfg: Config, target: Target, symptoms, chunk_posts: int, precision) -> dict:
    """What shapes the predictions; a resumed run must match it exactly."""
    weights = target.checkpoint or target.run_dir
    return {
        "weights_sha256": sha256(Path(weights) / "model.safetensors"),
        "symptoms": list(symptoms),
        "question": cfg.data.question,
        "features": asdict(cfg.features),
        "decode": asdict(cfg.decode),
        "precision": precision,
        "chunk_posts": chunk_posts,
    }


def check_settings(out: Path, settings: Mapping) -> dict:
    """predict.json's contents; written now on a first run, else compared key by key."""
    path = out / SETTINGS_FILE
    if not path.is_file() and (out / CHUNKS).exists():
        raise UserError(
            f"{out / CHUNKS}: chunks without the {SETTINGS_FILE} that says how they were made; "
            "use another --out"
        )
    if not path.is_file():
        write_json_atomic(path, {"settings": settings})
        return {"settings": settings}
    recorded = read_json_object(path)
    before = json.loads(json.dumps(recorded.get("settings")))
    now = json.loads(json.dumps(strict_json(settings)))  # as written: lists, null for inf
    for key in now:
        if not isinstance(before, dict) or before.get(key) != now[key]:
            raise UserError(
                f"{path}: these predictions were made with other {key} "
                f"({json.dumps(before.get(key) if isinstance(before, dict) else None)}); "
                "rerun with the same run, options and --chunk-posts, or use another --out"
            )
    return recorded


# -------------------------------------------------------------------------------- the merge


@dataclass
class TopSentences:
    """Per symptom, the `depth` best-ranked sentences seen so far (rank_sentences order), in
    memory bounded by 2 x depth per symptom however many are fed."""

    depth: int = RUN_DEPTH
    scores: dict[str, dict[SentenceId, float]] = field(default_factory=dict)

    def add(self, symptom: str, post_id: str, values: Sequence[float | None]) -> None:
        """`values` as predictions.jsonl holds them: null is a sentence no candidate span would
        make evidence, which is not ranked (as `scoring.by_symptom` leaves it out in memory)."""
        kept = self.scores.setdefault(symptom, {})
        for index, score in enumerate(values):
            if score is not None:
                kept[(post_id, index)] = score
        if len(kept) > 2 * self.depth:
            self.scores[symptom] = {s: kept[s] for s in rank_sentences(kept)[: self.depth]}


def merge_chunks(out: Path, store: ChunkStore, n_chunks: int, tag: str) -> dict:
    """predictions.jsonl (the chunks in input order) and `<tag>.trec`; returns the totals."""
    records = [store.record(index) for index in range(n_chunks)]
    missing = [index for index, info in enumerate(records) if info is None]
    if missing:  # every process has finished: a missing chunk is a bug, not a user mistake
        raise RunError(f"{store.folder}: chunks {missing[:5]} were not written; run again")
    top = TopSentences()
    totals: dict = {"posts": 0, "windows": 0, "evidence": {}}

    def concatenate(temp: str) -> None:
        with open(temp, "w", encoding="utf-8") as dst:
            for index in range(n_chunks):
                with open(store.lines(index), encoding="utf-8") as src:
                    for line in src:
                        record = json.loads(line)
                        top.add(record["symptom"], record["post_id"], record["sentence_scores"])
                        dst.write(line)

    write_atomically(out / "predictions.jsonl", concatenate)
    for info in records:
        totals["posts"] += info["posts"]
        totals["windows"] += info["windows"]
        for symptom, n in info["evidence"].items():
            totals["evidence"][symptom] = totals["evidence"].get(symptom, 0) + n
    lines = run_lines(top.scores, tag, depth=RUN_DEPTH)
    write_atomically(
        out / f"{tag}.trec",
        lambda t: Path(t).write_text("".join(line + "\n" for line in lines), encoding="utf-8"),
    )
    return totals


# ------------------------------------------------------------------------------ the whole job


def run_chunks(
    predictor: Predictor, source: Path, chunk_posts: int, store: ChunkStore, state, progress: tqdm
) -> list[str]:
    """Predict this process's chunks that are not done; returns every chunk's digest."""
    digests = []
    for chunk in read_chunks(source, chunk_posts):
        digests.append(chunk.digest)
        done = check_done(store, chunk, source)
        mine = chunk.index % state.num_processes == state.process_index
        if mine and done is None:
            lines, info = predict_chunk(predictor, chunk)
            store.write(chunk.index, lines, info)
        progress.update(len(chunk.posts))
    return digests


def _check_unchanged(source: Path, chunk_posts: int, complete: Mapping, out: Path) -> None:
    digests = [chunk.digest for chunk in read_chunks(source, chunk_posts)]
    if digests != complete.get("digests"):
        raise UserError(
            f"{source}: not the posts {out} holds predictions for (the input changed since "
            "they were made); use another --out"
        )


def make_predictor(cfg: Config, target: Target, symptoms, precision: str, device) -> Predictor:
    tokenizer, model = load_target_model(target)
    if device.type == "cpu":
        apply_cpu_speedups(model)
    runner = inference_runner(model, precision, device)
    return Predictor(cfg, tuple(symptoms), tokenizer, runner, device)


def predict_posts(
    target: Target,
    cfg: Config,
    source: Path,
    *,
    symptoms: Sequence[str],
    out: Path,
    chunk_posts: int,
    precision: str,
) -> dict:
    """Predict every post of `source` into `out` (module doc); returns the summary."""
    started = time.perf_counter()
    state = PartialState()
    total = count_posts(source)  # every row checked before any work
    settings = settings_record(cfg, target, symptoms, chunk_posts, precision)
    if state.is_main_process:
        claim_dir(out, FOLDER_KIND)
        check_settings(out, settings)
    state.wait_for_everyone()
    recorded = check_settings(out, settings)
    if "summary" in recorded:
        _check_unchanged(source, chunk_posts, recorded["summary"], out)
        log.info("%s already holds the predictions for every post of %s", out, source)
        return recorded["summary"]
    store = ChunkStore(out / CHUNKS)
    predictor = make_predictor(cfg, target, symptoms, precision, state.device)
    # posts/s and ETA (the main process's view: every process passes every post)
    progress = tqdm(
        total=total, unit="post", desc="predict", delay=2, disable=not state.is_main_process
    )
    digests = run_chunks(predictor, source, chunk_posts, store, state, progress)
    progress.close()
    state.wait_for_everyone()
    if not state.is_main_process:
        return {}
    totals = merge_chunks(out, store, len(digests), target.tag)
    seconds = time.perf_counter() - started
    summary = {
        **totals,
        "seconds": round(seconds, 3),
        # provenance: the file as predicted (a rerun compares the digests, i.e. the posts)
        "input": {"path": str(source), "bytes": source.stat().st_size, "sha256": sha256(source)},
        "digests": digests,
    }
    write_json_atomic(out / SETTINGS_FILE, {"settings": settings, "summary": summary})
    store.remove(len(digests))
    return summary


def render_predict_report(out: Path, source: Path, target: Target, cfg: Config, symptoms) -> None:
    """report.html of the merged predictions. A report shows every post, so it is built in
    memory from predictions.jsonl and the posts: meant for the posts a person will read (a few
    thousand), not for a corpus."""
    from lib.evaluation.html_report import render_report

    posts = load_posts(source)
    examples, _ = build_examples(
        posts,
        [],
        symptoms=symptoms,
        question_mode=cfg.data.question,
        criteria=cfg.data.criteria,
        negatives="all",
    )
    predictions, scores, sentences = {}, {}, {}
    with open(out / "predictions.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            key = f"{r['post_id']}::{r['symptom']}"
            spans = tuple(ScoredSpan(**span) for span in r["spans"])
            best = r["best_score"] if r["best_score"] is not None else float("-inf")
            predictions[key] = Prediction(spans, r["null_score"], best)
            scores[key] = r["sentence_scores"]
            sentences[r["post_id"]] = [tuple(pair) for pair in r["sentences"]]
    page = render_report(
        posts,
        examples,
        predictions,
        title=f"Evidence: {target.run_dir.name} (predict)",
        annotated=False,
        header=report_header(target, cfg, read_run_metrics(target.run_dir)),
        sentence_scores=scores,
        sentences=sentences,
        null_threshold=cfg.decode.null_threshold,
    )
    write_atomically(out / "report.html", lambda t: Path(t).write_text(page, encoding="utf-8"))


def summary_line(summary: Mapping) -> str:
    """posts, windows, seconds, and evidence found per symptom, in one line."""
    evidence = ", ".join(f"{s} {n:,}" for s, n in summary.get("evidence", {}).items())
    return (
        f"predicted {summary['posts']:,} posts ({summary['windows']:,} windows) in "
        f"{summary['seconds']:.1f} s; evidence found (posts): {evidence or 'none'}"
    )
