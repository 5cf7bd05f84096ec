"""Benchmark: the real job at its own size on this machine -- SpanBERT-base, 384/128 windows.

    python bench/realjob.py [--steps 2] [--precision auto|fp32|bf16] [--threads N]

The SpanBERT-base architecture (random init: speed does not depend on the weights; cased vocab
of 28,996), a ReDSM5-size synthetic corpus (the demo generator at 1,484 posts), config.toml's
defaults (9 symptoms, criterion questions, negatives "all", every window each epoch, batch 16,
eval batch 64, 3 epochs, windows of 384 with stride 128; the MiniLM tokenizer stands in for
SpanBERT's to cut the windows). Timed: --steps training steps and --steps evaluation batches of
ours (length-grouped batches padded to their longest window, the CPU speed-ups on) and of the
transformers recipe (BertForQuestionAnswering, sdpa, every window padded to 384), the same random
windows for both. Extrapolated: an epoch (training + validation) and the whole run (epochs x
(train + validation) + test). Model FLOP/s are reported against this machine's measured fp32 and
bf16 matmul peaks (MFU counts the tokens each step executes, padding included). `--precision auto` uses bf16 autocast where bf16 matmul is at least as fast
as fp32 on this machine, else fp32 (a CPU without bf16 units emulates it ~500x slower).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gpu import SPANBERT_BASE, build, model_flops  # noqa: E402

from lib.config import load_config  # noqa: E402
from lib.data.dataset import build_dataset  # noqa: E402
from lib.data.features import build_features  # noqa: E402
from lib.model.cpu_speedups import apply_cpu_speedups  # noqa: E402
from lib.model.pretrained import load_tokenizer  # noqa: E402

sys.path.insert(0, str(ROOT / "data" / "demo"))
from generate import generate_demo_corpus  # noqa: E402


def peak_flops(dtype: torch.dtype, size: int) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def windows(args) -> dict:
    """The real job's windows per split on a ReDSM5-size corpus, with config.toml's defaults."""
    posts_csv, annotations_csv = generate_demo_corpus(n_posts=1484, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "p.csv").write_text(posts_csv, encoding="utf-8")
        (Path(folder) / "a.csv").write_text(annotations_csv, encoding="utf-8")
        cfg = load_config(None, [f"data.posts={folder}/p.csv", f"data.annotations={folder}/a.csv"])
        dataset = build_dataset(cfg.data)
    tokenizer = load_tokenizer("minilm-l6")
    f = cfg.features
    features = {
        name: build_features(
            examples,
            tokenizer,
            max_length=f.max_length,
            doc_stride=f.doc_stride,
            max_question_length=f.max_question_length,
        )
        for name, examples in dataset.splits.items()
    }
    return {"cfg": cfg, "features": features}


def sample_batch(features, batch: int, pad_to: int | None, generator) -> dict:
    """`batch` random training windows; padded to their longest (ours) or to `pad_to`."""
    picks = torch.randint(len(features), (batch,), generator=generator).tolist()
    rows = [features.input_ids[i] for i in picks]
    width = pad_to or max(len(r) for r in rows)
    ids = torch.zeros(batch, width, dtype=torch.long)
    mask = torch.zeros(batch, width, dtype=torch.long)
    types = torch.zeros(batch, width, dtype=torch.long)
    for k, (row, i) in enumerate(zip(rows, picks)):
        ids[k, : len(row)] = torch.as_tensor(row.astype("int64")) % SPANBERT_BASE["vocab_size"]
        mask[k, : len(row)] = 1
        types[k, int(features.context_start[i]) : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def timed(kind: str, batches: list[dict], eval_batches: list[dict], dtype) -> tuple[float, float]:
    """Median seconds of a training step and of an evaluation batch."""
    model = build(kind, SPANBERT_BASE, torch.device("cpu"))
    if kind == "ours":
        apply_cpu_speedups(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)

    def logits(inputs):
        out = model(**inputs)
        return out if kind == "ours" else (out.start_logits, out.end_logits)

    train_times, eval_times = [], []
    for inputs in batches:
        model.train()
        start = time.perf_counter()
        with autocast:
            s, e = logits(inputs)
        target = torch.zeros(len(s), dtype=torch.long)
        (F.cross_entropy(s.float(), target) + F.cross_entropy(e.float(), target)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        train_times.append(time.perf_counter() - start)
    model.eval()
    for inputs in eval_batches:
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            logits(inputs)
        eval_times.append(time.perf_counter() - start)
    return min(train_times[1:] or train_times), min(eval_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps (the first is warm-up)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fp32_peak, bf16_peak = peak_flops(torch.float32, 2048), peak_flops(torch.bfloat16, 512)
    use_bf16 = args.precision == "bf16" or (args.precision == "auto" and bf16_peak >= fp32_peak)
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    job = windows(args)
    cfg, features = job["cfg"], job["features"]
    t = cfg.train
    generator = torch.Generator().manual_seed(0)
    train_f = features["train"]
    n = max(2, args.steps + 1)
    ours = [sample_batch(train_f, t.batch_size, None, generator) for _ in range(n)]
    generator.manual_seed(0)
    recipe = [sample_batch(train_f, t.batch_size, 384, generator) for _ in range(n)]
    ours_eval = [sample_batch(features["val"], t.eval_batch_size, None, generator)]
    recipe_eval = [sample_batch(features["val"], t.eval_batch_size, 384, generator)]
    train_flops, infer_flops = model_flops(SPANBERT_BASE, 384)
    peak = bf16_peak if use_bf16 else fp32_peak
    print(f"fp32 matmul peak {fp32_peak / 1e9:.0f} GFLOP/s, bf16 {bf16_peak / 1e9:.1f} GFLOP/s;")
    print(f"precision {'bf16 autocast' if use_bf16 else 'fp32'}; windows: " + ", ".join(
        f"{k} {len(v)}" for k, v in features.items()
    ))  # fmt: skip
    print("| | train step (s) | eval batch (s) | train MFU | epoch (h) | whole run (h) |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, batches, eval_batches in (("ours", ours, ours_eval), ("transformers recipe", recipe, recipe_eval)):  # fmt: skip
        step_s, eval_s = timed(kind.split()[0], batches, eval_batches, dtype)
        executed = sum(b["input_ids"].numel() for b in batches) / len(batches)  # padding included
        mfu = executed * train_flops / step_s / peak
        steps = -(-len(train_f) // t.batch_size)
        val_s = -(-len(features["val"]) // t.eval_batch_size) * eval_s
        test_s = -(-len(features["test"]) // t.eval_batch_size) * eval_s
        epoch_s = steps * step_s + val_s
        run_s = t.epochs * epoch_s + test_s
        print(f"| {kind} | {step_s:.1f} | {eval_s:.1f} | {100 * mfu:.0f}% | {epoch_s / 3600:.2f} | {run_s / 3600:.1f} |", flush=True)  # fmt: skip
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
