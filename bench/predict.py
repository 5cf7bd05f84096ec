"""Benchmark: `evaluate.py RUN --predict POSTS` -- peak memory as the input grows, and posts/s
against the same model run the transformers way.

    python bench/predict.py --out DIR [--memory] [--throughput] [--sizes 1000,10000,100000]
                            [--posts 200] [--repeat 1] [--threads N] [--smoke]

With neither --memory nor --throughput both parts run. DIR receives results.json and table.md
(the tables are printed too); the bench's scratch files (run folders, posts files, predictions)
live in a temporary folder inside DIR, removed at the end. The real run, and the test's:

    python bench/predict.py --out runs/bench-predict             # both parts, defaults
    python bench/predict.py --out runs/bench-predict --memory    # one part
    python bench/predict.py --out /tmp/x --smoke                 # tests/test_bench_predict.py

Estimated on the 2-core development CPU from `--memory --sizes 1000,10000` (117 and 113 posts/s:
linear) and `--throughput --posts 20` (415 windows; ours 38 s, transformers 44 s), run while
other jobs kept the load average near 4: memory ~17 min (100k posts ~15 min of it), throughput
~14 min (one pass per side, + ~40 s of set-up: the MiniLM run, warm-ups), ~30 min in all. An idle
machine should be faster, a busier one slower (mostly the throughput part's 2-thread forward).

MEMORY (--memory, --sizes). A tiny random BERT (hidden 36, 2 layers, MiniLM's tokenizer, as
tests/conftest.py's tiny_qa_dir) is trained for 5 steps on data/demo (train(), 2 symptoms:
SLEEP_ISSUES and FATIGUE, windows of 128 tokens with 32 shared), once. For each size N a posts
file of N posts is written as JSONL: the demo posts' texts (data/demo/posts.csv, 600 posts, ~1,700
characters each) cycled, with fresh ids s000001, s000002, ... Then the real CLI runs in a fresh
process per size, `python evaluate.py RUN --predict POSTS.jsonl --out OUT --symptoms
SLEEP_ISSUES,FATIGUE` (the tiny run's own symptoms), and its peak resident set size is read from
os.wait4's rusage (ru_maxrss, KiB on Linux: the child's high-water mark, interpreter, torch and
model included) by a bare launcher process, this file with --measure-rss (measure_rss says why:
spawned from the bench itself, the child would report at least the bench's own RSS). Reported
per size: posts, windows (OUT/predict.json's summary), wall seconds of the process, the seconds
predict_posts reports (reading, predicting, merging: no interpreter start-up or imports), posts/s
over the latter, peak RSS, and peak RSS(largest) / peak RSS(smallest) (target: <= 1.2x). The
children run torch on one thread unless --threads says otherwise: with the tiny model the forward
is a small share of the time, and one thread keeps OpenMP from spinning against other processes
on a shared machine (10x slower with 2 threads on 2 busy cores, measured).

THROUGHPUT (--throughput, --posts). A run folder with the MiniLM-L6 encoder and a QA head, made by
train() on demo.toml for one step (train.max_steps=1, data.limit=20, fp32): demo.toml's windows
(256 tokens, 64 shared), its eval batch (train.eval_batch_size, 64), all 9 symptoms; the timing
does not depend on the weights. The first --posts demo posts (written as JSONL, outside the
timing; past 600 the texts cycle, as above), fp32, torch on --threads threads (default torch's)
on both sides, in this one process.

  ours          evaluate.py's --predict path end to end, in process: resolve_target,
                load_run_config, chosen_symptoms, then lib.evaluation.predict_stream.predict_posts
                into a fresh folder (count the posts, weights sha256, load the model, per chunk of
                256 posts: examples, windows sorted by length and padded per batch, logits,
                decoding with sentences, prediction records; the merge into predictions.jsonl
                and the TREC run file). The forward is timed by wrapping the runner: the bench
                swaps predict_stream.inference_runner for one that wraps the real runner in a
                module adding up perf_counter around each forward call (and make_predictor, for
                the load time). lib is not changed.
  transformers  transformers 5 has no QA pipeline, so the run_qa.py / utils_qa way by hand:
                PreTrainedTokenizerFast(tokenizer_file=RUN/tokenizer.json) with BERT's special
                tokens; one (question, post) pair per (post, symptom) in the same order as ours,
                the same questions (lib.data.examples.symptom_question of the run's
                data.question and data.criteria); prepare_validation_features' call
                (truncation="only_second", max_length=features.max_length,
                stride=features.doc_stride -- the overlap, as ours: bench/recipe.py's docstring --,
                return_overflowing_tokens, return_offsets_mapping, padding="max_length") and its
                offset mapping (None outside the post);
                BertForQuestionAnswering.from_pretrained(RUN, attn_implementation="sdpa"), fp32,
                checked to load with no missing or unexpected key; batches of
                train.eval_batch_size in dataset order under torch.inference_mode; then
                utils_qa.postprocess_qa_predictions with version_2_with_negative
                (bench/evaluate.py's port; null_score_diff_threshold = the run's
                decode.null_threshold).

Reported per side: total wall seconds (model loading included on both sides), posts/s, windows,
the forward's seconds, the share of the total outside the forward (target for ours: <= 10%), the
transformers side's load / tokenization / post-processing split; and posts/s ours / transformers
(target: >= 1.5x). Before the timed passes each side predicts 2 posts untimed (imports, oneDNN
set-up); with --repeat R the sides alternate order and the best pass of each is kept.

Caveats:
- The two sides do not produce the same thing. Ours writes predictions.jsonl (several spans per
  example snapped to sentences, per-sentence scores, the sentences) and a TREC run file, checks
  every post row and hashes the weights; the transformers side keeps one text per example in
  memory. Ours pads per batch of length-sorted windows, the transformers side pads every window
  to max_length (run_qa's pad_to_max_length default): the forwards do different amounts of work.
- Ours reads the posts from the file inside its timing; the transformers side too (load_posts),
  so both include reading --posts posts (milliseconds).
- Windows: the same geometry on both sides (results.json: windows of each; the table says if they
  differ). Ours cuts questions at features.max_question_length, the transformers side does not
  (no question of ours is that long).
- CPU only: the forward timer does not synchronize a GPU.
- keep_freed_memory() (glibc mallopt, what evaluate.py applies on CPU) is set for the whole
  process before either side runs, so both get it (as bench/evaluate.py does).
- Peak RSS varies by a few % between identical runs (344 and 360 MiB for the same 1,000 posts):
  one run per size, so read a ratio within ~0.05 of the target as a tie.
- One machine, maybe shared: the load average before the run is recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def measure_rss(argv: list[str]) -> int:
    """`--measure-rss LOG COMMAND...`: run COMMAND (output to LOG), print its wall seconds, peak
    RSS (os.wait4's ru_maxrss, KiB on Linux) and exit status as one JSON line.

    Why a launcher: Linux carries a process's ru_maxrss across fork and exec (exec records the
    old memory image's high-water mark), so a child spawned straight from this bench -- torch
    imported, a model trained -- would report at least the bench's own RSS (`python -c pass`
    measured 601 MiB when spawned from a process holding ~600 MiB). The launcher gets here
    before any heavy import, so what it forks from is a bare interpreter (~10 MiB)."""
    log, command = argv[0], argv[1:]
    with open(log, "wb") as out:
        begin = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage (and its children's)
        wall = time.perf_counter() - begin
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    print(json.dumps({"wall_s": wall, "maxrss_kib": usage.ru_maxrss, "exit": proc.returncode}))
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--measure-rss"]:
    sys.exit(measure_rss(sys.argv[2:]))  # before the imports below: see measure_rss

import argparse  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from collections import namedtuple  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402
from unittest import mock  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.evaluate import cpu_name, postprocess_qa_predictions  # noqa: E402
from bench.tiny_model import save_tiny_qa_base  # noqa: E402
from lib.config import load_config  # noqa: E402
from lib.data.corpus import load_posts  # noqa: E402
from lib.data.examples import symptom_question  # noqa: E402
from lib.evaluation import predict_stream  # noqa: E402
from lib.evaluation.evaluate_run import (  # noqa: E402
    chosen_symptoms,
    load_run_config,
    output_folder,
    resolve_target,
)
from lib.files import write_json_atomic, write_text_atomic  # noqa: E402
from lib.model.host_memory import keep_freed_memory  # noqa: E402

DEMO_POSTS = ROOT / "data" / "demo" / "posts.csv"
DEMO_ANNOTATIONS = ROOT / "data" / "demo" / "annotations.csv"
TINY_OVERRIDES = [  # tests/conftest.py's _tiny_overrides, with 2 symptoms and 128-token windows
    f"data.posts={DEMO_POSTS}",
    f"data.annotations={DEMO_ANNOTATIONS}",
    "data.limit=30",
    "data.negatives=annotated",
    "data.semantic_model=none",  # no sentence encoder to load for the alignment
    "data.symptoms=['SLEEP_ISSUES', 'FATIGUE']",
    "features.max_length=128",
    "features.doc_stride=32",
    "features.max_question_length=32",
    "train.batch_size=16",
    "train.lr=3e-3",
    "train.warmup_ratio=0",
    "train.epochs=1",
    "train.max_steps=5",
    "train.patience=0",
    "train.mixed_precision=no",
    "model.dropout=0.0",
    "model.attention_dropout=0.0",
]
MINILM_OVERRIDES = [  # on demo.toml: its windows and batches; one step, fp32
    "model.name=minilm-l6",
    "data.limit=20",
    "data.semantic_model=none",
    "train.max_steps=1",
    "train.mixed_precision=no",
]
SMOKE = {"sizes": "50,200", "posts": 10}
WARM_UP_POSTS = 2
BERT_SPECIALS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
QAExample = namedtuple("QAExample", "example_id context")  # what postprocess_qa_predictions reads


# ---------------------------------------------------------------- run folders and posts


def train_run(cfg_file: Path | None, overrides: list[str], work: Path, name: str) -> Path:
    """A run folder made by train() (quietly: the bench's output is the tables)."""
    from lib.training.trainer import train

    cfg = load_config(cfg_file, [*overrides, f"train.output_dir={work}", f"train.run_name={name}"])
    return Path(train(cfg)["run_dir"])


def make_tiny_run(work: Path) -> Path:
    """bench/tiny_model.py's tiny random BERT (the model costs little, so the memory measured is
    the pipeline's), trained 5 steps."""
    base = save_tiny_qa_base(work / "tiny-base")
    return train_run(None, [f"model.name={base}", *TINY_OVERRIDES], work, "tiny-run")


def make_minilm_run(work: Path) -> Path:
    return train_run(ROOT / "demo.toml", MINILM_OVERRIDES, work, "minilm-run")


def write_posts(path: Path, texts: list[str], n: int) -> Path:
    """N posts as JSONL: the texts cycled, with fresh ids s000001, ... (written as a stream: the
    bench must not hold 100,000 posts either)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"post_id": f"s{i + 1:06d}", "text": texts[i % len(texts)]}) + "\n")
    return path


def demo_texts() -> list[str]:
    return [post.text for post in load_posts(DEMO_POSTS).values()]


# ---------------------------------------------------------------- memory


def run_child(command: list[str], env: dict, log: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one process, measured by this file's --measure-rss
    launcher (measure_rss: why); the process's output goes to `log`."""
    launcher = [sys.executable, str(Path(__file__).resolve()), "--measure-rss", str(log)]
    done = subprocess.run([*launcher, *command], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the --measure-rss launcher failed:\n{done.stderr[-3000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if measured["exit"]:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(command)} failed (exit {measured['exit']}):\n{tail}")
    return measured["wall_s"], measured["maxrss_kib"]


def memory_row(run_dir: Path, n: int, texts: list[str], work: Path, symptoms, threads) -> dict:
    """One size: its posts file, the CLI in a fresh process, its numbers; the files removed."""
    posts = write_posts(work / f"posts-{n}.jsonl", texts, n)
    out = work / f"predict-{n}"
    command = [sys.executable, str(ROOT / "evaluate.py"), str(run_dir), "--predict", str(posts)]
    command += ["--out", str(out), "--symptoms", ",".join(symptoms)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    print(f"memory: {n:,} posts ...", flush=True)
    wall, rss_kib = run_child(command, env, work / f"predict-{n}.log")
    summary = json.loads((out / "predict.json").read_text(encoding="utf-8"))["summary"]
    shutil.rmtree(out)
    posts.unlink()
    return {
        "posts": summary["posts"],
        "windows": summary["windows"],
        "wall_s": wall,
        "predict_s": float(summary["seconds"]),
        "posts_per_s": summary["posts"] / max(float(summary["seconds"]), 1e-9),
        "peak_rss_mib": rss_kib / 1024,
    }


def run_memory(sizes: list[int], run_dir: Path, work: Path, threads: int) -> dict:
    symptoms = list(load_run_config(run_dir, []).data.symptoms)
    texts = demo_texts()
    rows = [memory_row(run_dir, n, texts, work, symptoms, threads) for n in sorted(sizes)]
    return {
        "settings": {"model": "tiny random BERT (5 steps)", "symptoms": symptoms,
                     "threads": threads, "chunk_posts": predict_stream.DEFAULT_CHUNK_POSTS},
        "rows": rows,
        "rss_ratio": rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"],
        "target_ratio": 1.2,
    }  # fmt: skip


# ---------------------------------------------------------------- throughput: ours


class TimedForward(torch.nn.Module):
    """The inference runner, adding up the seconds of its forward calls (on CPU a call returns
    when the work is done, so perf_counter around it is the forward's time)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module
        self.seconds = 0.0

    def forward(self, *args):
        begin = time.perf_counter()
        out = self.module(*args)
        self.seconds += time.perf_counter() - begin
        return out


def ours_pass(run_dir: Path, posts: Path, out: Path) -> dict:
    """evaluate.py's --predict steps in process (evaluate.predict without its printing), with
    the runner's forward and make_predictor timed through the names predict_stream looks up."""
    runners: list[TimedForward] = []
    load = [0.0]
    real_runner, real_make = predict_stream.inference_runner, predict_stream.make_predictor

    def timed_runner(model, precision, device):
        runners.append(TimedForward(real_runner(model, precision, device)))
        return runners[-1]

    def timed_make(*args, **kwargs):
        begin = time.perf_counter()
        predictor = real_make(*args, **kwargs)
        load[0] += time.perf_counter() - begin
        return predictor

    with (
        mock.patch.object(predict_stream, "inference_runner", timed_runner),
        mock.patch.object(predict_stream, "make_predictor", timed_make),
    ):
        begin = time.perf_counter()
        target = resolve_target(run_dir)
        cfg = load_run_config(target.run_dir, [])
        summary = predict_stream.predict_posts(
            target,
            cfg,
            posts,
            symptoms=chosen_symptoms(cfg, None),
            out=output_folder(target, "predict", out),
            chunk_posts=predict_stream.DEFAULT_CHUNK_POSTS,
            precision="no",
        )
        total = time.perf_counter() - begin
    forward = sum(r.seconds for r in runners)
    return {"posts": summary["posts"], "windows": summary["windows"], "total_s": total,
            "load_s": load[0], "forward_s": forward}  # fmt: skip


# ---------------------------------------------------------------- throughput: transformers


def hf_tokenizer(run_dir: Path):
    """The run's tokenizer.json as a transformers fast tokenizer, checked to build BERT pairs."""
    import transformers

    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(run_dir / "tokenizer.json"),
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],  # BERT's
        **BERT_SPECIALS,
    )
    probe = tokenizer("a question", "a post", padding="max_length", max_length=12)
    ids, types = probe["input_ids"], probe["token_type_ids"]
    if ids[0] != tokenizer.cls_token_id or ids[-1] != tokenizer.pad_token_id or 1 not in types:
        raise SystemExit(f"{run_dir}/tokenizer.json does not build [CLS] q [SEP] p [SEP] pairs")
    return tokenizer


def hf_model(run_dir: Path):
    import transformers

    model, info = transformers.BertForQuestionAnswering.from_pretrained(
        run_dir, attn_implementation="sdpa", dtype=torch.float32, output_loading_info=True
    )
    bad = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    if bad or info.get("error_msgs"):  # e.g. a qa_outputs head under other names
        raise SystemExit(f"{run_dir}: transformers loaded it with {bad or info['error_msgs']}")
    return model.eval()


def hf_windows(tokenizer, posts: Path, cfg, symptoms) -> tuple[list, object, dict, list]:
    """(examples, encoding, model inputs, offset mappings): run_qa.py's
    prepare_validation_features on (question, post) pairs in ours' order."""
    questions = {s: symptom_question(s, cfg.data.question, cfg.data.criteria) for s in symptoms}
    examples, pairs = [], ([], [])
    for post in load_posts(posts).values():
        for symptom in symptoms:
            examples.append(QAExample(f"{post.post_id}::{symptom}", post.text))
            pairs[0].append(questions[symptom].lstrip())  # run_qa strips questions' left
            pairs[1].append(post.text)
    encoding = tokenizer(
        *pairs,
        truncation="only_second",
        max_length=cfg.features.max_length,
        stride=cfg.features.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    offsets = [
        [o if s == 1 else None for o, s in zip(row, encoding.sequence_ids(w))]
        for w, row in enumerate(encoding["offset_mapping"])
    ]
    keys = ("input_ids", "attention_mask", "token_type_ids")
    inputs = {key: torch.tensor(encoding[key]) for key in keys}
    return examples, encoding, inputs, offsets


@torch.inference_mode()
def hf_logits(model, inputs: dict, batch_size: int):
    """(start, end) logits as numpy, in window order (Trainer.evaluation_loop), and the
    seconds spent inside the model's forward calls."""
    starts, ends, forward = [], [], 0.0
    for i in range(0, len(inputs["input_ids"]), batch_size):
        batch = {key: value[i : i + batch_size] for key, value in inputs.items()}
        begin = time.perf_counter()
        out = model(**batch)
        forward += time.perf_counter() - begin
        starts.append(out.start_logits.float().cpu())
        ends.append(out.end_logits.float().cpu())
    return torch.cat(starts).numpy(), torch.cat(ends).numpy(), forward


def transformers_pass(run_dir: Path, posts: Path) -> dict:
    cfg = load_run_config(run_dir, [])
    marks = [time.perf_counter()]
    tokenizer, model = hf_tokenizer(run_dir), hf_model(run_dir)
    marks.append(time.perf_counter())
    examples, encoding, inputs, offsets = hf_windows(tokenizer, posts, cfg, cfg.data.symptoms)
    marks.append(time.perf_counter())
    start, end, forward = hf_logits(model, inputs, cfg.train.eval_batch_size)
    marks.append(time.perf_counter())
    feature_ids = [examples[i].example_id for i in encoding["overflow_to_sample_mapping"]]
    texts = postprocess_qa_predictions(
        examples, feature_ids, offsets, start, end,
        n_best_size=cfg.decode.n_best,
        max_answer_length=cfg.decode.max_answer_length,
        null_score_diff_threshold=cfg.decode.null_threshold,
    )  # fmt: skip
    marks.append(time.perf_counter())
    assert len(texts) == len(examples)
    return {"posts": len(examples) // len(cfg.data.symptoms), "windows": len(offsets),
            "total_s": marks[-1] - marks[0], "load_s": marks[1] - marks[0],
            "tokenize_s": marks[2] - marks[1], "logits_s": marks[3] - marks[2],
            "forward_s": forward, "postprocess_s": marks[4] - marks[3]}  # fmt: skip


# ---------------------------------------------------------------- throughput: both


def run_throughput(run_dir: Path, n_posts: int, repeat: int, work: Path, threads: int) -> dict:
    """Warm-up, then `repeat` alternating passes per side; the best (fastest) pass of each."""
    texts = demo_texts()
    posts = write_posts(work / f"throughput-{n_posts}.jsonl", texts, n_posts)
    warm = write_posts(work / "warm-up.jsonl", texts, WARM_UP_POSTS)
    outs = iter(work / f"ours-{k}" for k in range(2 * repeat + 2))
    sides = {
        "ours": lambda path: ours_pass(run_dir, path, next(outs)),
        "transformers": lambda path: transformers_pass(run_dir, path),
    }
    for side in sides.values():
        side(warm)
    passes = {name: [] for name in sides}
    for turn in range(repeat):
        order = list(sides) if turn % 2 == 0 else list(sides)[::-1]
        for name in order:
            print(f"throughput: {name}, pass {turn + 1} of {repeat} ...", flush=True)
            passes[name].append(sides[name](posts))
    best = {name: min(runs, key=lambda r: r["total_s"]) for name, runs in passes.items()}
    for side in best.values():
        side["posts_per_s"] = side["posts"] / side["total_s"]
        side["outside_forward"] = 1 - side["forward_s"] / side["total_s"]
    cfg = load_run_config(run_dir, [])
    return {
        "settings": {"run": run_dir.name, "posts": n_posts, "symptoms": list(cfg.data.symptoms),
                     "max_length": cfg.features.max_length, "doc_stride": cfg.features.doc_stride,
                     "eval_batch_size": cfg.train.eval_batch_size, "precision": "fp32",
                     "threads": threads, "repeat": repeat},
        "ours": best["ours"],
        "transformers": best["transformers"],
        "passes": passes,
        "ratio": best["ours"]["posts_per_s"] / best["transformers"]["posts_per_s"],
        "target_ratio": 1.5,
        "target_outside_forward": 0.10,
    }  # fmt: skip


# ---------------------------------------------------------------- report


def markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    rule = "|---|" + "---:|" * (len(header) - 1)
    return ["", "| " + " | ".join(header) + " |", rule] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def memory_table(memory: dict) -> list[str]:
    s, rows = memory["settings"], memory["rows"]
    lines = [
        "",
        f"## Memory: evaluate.py --predict, one process per size ({s['model']}; symptoms "
        f"{', '.join(s['symptoms'])} (the run's); {s['threads']} thread(s); chunks of "
        f"{s['chunk_posts']} posts)",
    ]
    lines += markdown(
        ["posts", "windows", "wall (s)", "predict_posts (s)", "posts/s", "peak RSS (MiB)"],
        [[f"{r['posts']:,}", f"{r['windows']:,}", f"{r['wall_s']:.1f}", f"{r['predict_s']:.1f}",
          f"{r['posts_per_s']:.1f}", f"{r['peak_rss_mib']:.0f}"] for r in rows],
    )  # fmt: skip
    lines += [
        "",
        f"peak RSS {rows[-1]['posts']:,} posts / {rows[0]['posts']:,} posts: "
        f"**{memory['rss_ratio']:.3f}×** (target ≤ {memory['target_ratio']}×)",
    ]
    return lines


def throughput_table(tp: dict) -> list[str]:
    s, ours, hf = tp["settings"], tp["ours"], tp["transformers"]
    lines = [
        "",
        f"## Throughput: {s['posts']} demo posts × {len(s['symptoms'])} symptoms, run "
        f"{s['run']}, {s['precision']}, windows {s['max_length']} (stride {s['doc_stride']}), "
        f"batch {s['eval_batch_size']}, {s['threads']} threads, best of {s['repeat']}",
    ]

    def cell(side: dict, key: str) -> str:
        return f"{side[key]:.2f}" if key in side else "—"

    keys = [("total (s, load included)", "total_s"), ("load (s)", "load_s"),
            ("tokenization (s)", "tokenize_s"), ("forward (s)", "forward_s"),
            ("post-processing (s)", "postprocess_s")]  # fmt: skip
    rows = [["posts/s", f"{ours['posts_per_s']:.2f}", f"{hf['posts_per_s']:.2f}"]]
    rows += [["windows", f"{ours['windows']:,}", f"{hf['windows']:,}"]]
    rows += [[label, cell(ours, key), cell(hf, key)] for label, key in keys]
    rows += [["outside the forward", f"{100 * ours['outside_forward']:.1f}%",
              f"{100 * hf['outside_forward']:.1f}%"]]  # fmt: skip
    header = ["", "ours (evaluate.py --predict code)", "transformers (BertForQA + utils_qa)"]
    lines += markdown(header, rows)
    lines += [
        "",
        f"posts/s ours / transformers: **{tp['ratio']:.2f}×** "
        f"(target ≥ {tp['target_ratio']}×); "
        f"ours outside the forward: {100 * ours['outside_forward']:.1f}% "
        f"(target ≤ {100 * tp['target_outside_forward']:.0f}%)"
        + ("" if ours["windows"] == hf["windows"] else "; NOTE: the window counts differ"),
    ]
    return lines


def table(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# evaluate.py --predict: memory and throughput",
        "",
        f"machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} ({m['threads']} threads), "
        f"transformers {m['transformers']}; load average {m['load_before']:.2f} before the run"
        + (" (smoke: tiny sizes)" if results["smoke"] else ""),
    ]
    if "memory" in results:
        lines += memory_table(results["memory"])
    if "throughput" in results:
        lines += throughput_table(results["throughput"])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--memory", action="store_true", help="run the memory part")
    parser.add_argument("--throughput", action="store_true", help="run the throughput part")
    parser.add_argument("--sizes", default="1000,10000,100000", help="memory: posts per run")
    parser.add_argument("--posts", type=int, default=200, help="throughput: first N demo posts")
    parser.add_argument("--repeat", type=int, default=1, help="throughput: passes per side")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and model: seconds")
    args = parser.parse_args()
    if not (args.memory or args.throughput):
        args.memory = args.throughput = True
    if args.smoke:
        args.sizes, args.posts = SMOKE["sizes"], SMOKE["posts"]
    try:
        args.sizes = [int(n) for n in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: comma-separated numbers of posts, got {args.sizes!r}")
    if min(args.sizes) < 1 or args.posts < 1 or args.repeat < 1:
        parser.error("--sizes, --posts and --repeat must be positive")
    args.out = args.out.resolve()
    return args


def machine(threads: int, load_before: float) -> dict:
    return {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": version("transformers"),
        "threads": threads,
        "load_before": load_before,
    }


def check_finite(value, where: str = "results") -> None:
    """Every number in the results is finite (a NaN would make results.json invalid JSON)."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise SystemExit(f"{where} = {value}: not a finite number")


def main() -> None:
    args = parse_args()
    os.chdir(ROOT)  # demo.toml's data paths are relative to the repository
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    threads = args.threads or torch.get_num_threads()
    results = {"machine": machine(threads, os.getloadavg()[0]), "smoke": args.smoke}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out, prefix="work-") as scratch:
        work = Path(scratch)
        tiny = make_tiny_run(work) if args.memory or args.smoke else None
        if args.memory:
            results["memory"] = run_memory(args.sizes, tiny, work, args.threads or 1)
        if args.throughput:
            torch.set_num_threads(threads)
            keep_freed_memory()  # what evaluate.py applies on CPU, for both sides
            run_dir = tiny if args.smoke else make_minilm_run(work)
            results["throughput"] = run_throughput(run_dir, args.posts, args.repeat, work, threads)
    check_finite(results)
    write_json_atomic(args.out / "results.json", results)
    write_text_atomic(args.out / "table.md", table(results))
    print(table(results))
    print(f"written: {args.out / 'results.json'}, table.md")


if __name__ == "__main__":
    main()
