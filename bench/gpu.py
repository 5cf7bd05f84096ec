"""Benchmark for a GPU: SpanBERT-base size, ours vs transformers (sdpa), eager and torch.compile.

    python bench/gpu.py [--batch 32] [--length 384] [--steps 20] [--warmup 5] [--out bench/out]
    python bench/gpu.py --smoke          # the same code on the CPU, tiny config, eager, seconds

Both models are BertForQuestionAnswering with SpanBERT-base's architecture (12 layers, hidden 768,
12 heads, intermediate 3072, cased vocabulary of 28,996, 512 positions), randomly initialised
with the same seed -- speed does not depend on the weights. Inputs: full windows of --length
tokens (the real job's windows are nearly full), a 16-token question then the post.

For each of ours/transformers x eager/compile, under bf16 autocast (fp32 master weights, as
train.py runs): a training step (forward, span cross-entropy, backward, AdamW step) and inference
(forward under inference_mode). Reported: steps/s, windows/s, model FLOP/s as a fraction of this
device's *measured* bf16 matmul peak (MFU), and peak memory (CUDA: max_memory_allocated; CPU:
peak RSS of the process). Model FLOPs per token: training 6 N + 12 L T H, inference 2 N + 4 L T H
(N = non-embedding parameters, L layers, T tokens per window, H hidden; the attention terms count
QK^T and AV). Writes gpu.json and gpu.md under --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.model.bert import BertConfig, BertForQuestionAnswering  # noqa: E402

SPANBERT_BASE = dict(
    vocab_size=28996,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=512,
)
SMOKE = dict(
    vocab_size=1000,
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=96,
    max_position_embeddings=64,
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, size: int, repeat: int) -> float:
    """Measured bf16 matmul FLOP/s: the best of `repeat` size x size products."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def build(kind: str, sizes: dict, device: torch.device):
    torch.manual_seed(0)
    if kind == "ours":
        config = BertConfig(**sizes, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
        return BertForQuestionAnswering(config).to(device)
    import transformers

    config = transformers.BertConfig(**sizes, attn_implementation="sdpa")
    return transformers.BertForQuestionAnswering(config).to(device)


def batch_of(sizes: dict, batch: int, length: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(100, sizes["vocab_size"], (batch, length), generator=generator)
    types = (torch.arange(length) >= 16).long().expand(batch, length)
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones(batch, length, dtype=torch.long, device=device),
        "token_type_ids": types.contiguous().to(device),
    }


def logits(model, inputs, kind: str):
    out = model(**inputs)
    return out if kind == "ours" else (out.start_logits, out.end_logits)


def time_steps(step, device: torch.device, steps: int, warmup: int) -> float:
    """Median seconds of `steps` calls after `warmup` untimed ones (compilation included there)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(kind: str, compiled: bool, args, sizes: dict, device: torch.device) -> dict:
    model = build(kind, sizes, device)
    runner = torch.compile(model) if compiled else model
    inputs = batch_of(sizes, args.batch, args.length, device)
    targets = torch.randint(16, args.length, (args.batch,), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def train_step():
        model.train()
        with autocast:
            start, end = logits(runner, inputs, kind)
        loss = F.cross_entropy(start.float(), targets) + F.cross_entropy(end.float(), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def infer_step():
        model.eval()
        with torch.inference_mode(), autocast:
            logits(runner, inputs, kind)

    train_s = time_steps(train_step, device, args.steps, args.warmup)
    infer_s = time_steps(infer_step, device, args.steps, args.warmup)
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {"train_s": train_s, "infer_s": infer_s, "peak_bytes": peak}


def model_flops(sizes: dict, length: int) -> tuple[float, float]:
    """(training, inference) model FLOPs per token."""
    h, layers = sizes["hidden_size"], sizes["num_hidden_layers"]
    n = layers * (4 * h * h + 2 * h * sizes["intermediate_size"]) + 2 * h  # + QA head
    attention = layers * length * h
    return 6 * n + 12 * attention, 2 * n + 4 * attention


def table(rows: list[dict], peak: float) -> str:
    lines = [
        f"bf16 matmul peak measured: {peak / 1e12:.1f} TFLOP/s",
        "",
        "| model | mode | train windows/s | train MFU | infer windows/s | infer MFU | peak memory |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['train_windows_s']:.1f} | "
            f"{100 * r['train_mfu']:.1f}% | {r['infer_windows_s']:.1f} | "
            f"{100 * r['infer_mfu']:.1f}% | {r['peak_bytes'] / 2**30:.2f} GiB |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=384)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", default="bench/out")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny config, seconds")
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else SPANBERT_BASE
    if args.smoke:  # torch.compile alone takes minutes on a CPU: the smoke run stays eager
        args.batch, args.length, args.steps, args.warmup, args.no_compile = 2, 32, 2, 1, True
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    peak = matmul_peak(device, 256 if args.smoke else 8192, 3 if args.smoke else 10)
    train_flops, infer_flops = model_flops(sizes, args.length)
    tokens = args.batch * args.length
    rows = []
    for compiled in (False,) if args.no_compile else (False, True):
        for kind in ("ours", "transformers"):
            result = measure(kind, compiled, args, sizes, device)
            rows.append(
                {
                    "model": kind,
                    "mode": "compile" if compiled else "eager",
                    **result,
                    "train_windows_s": args.batch / result["train_s"],
                    "infer_windows_s": args.batch / result["infer_s"],
                    "train_mfu": tokens * train_flops / result["train_s"] / peak,
                    "infer_mfu": tokens * infer_flops / result["infer_s"] / peak,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    device_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    )
    report = {
        "device": device_name or platform.machine(),
        "torch": torch.__version__,
        "sizes": sizes,
        "batch": args.batch,
        "length": args.length,
        "bf16_matmul_peak_flops": peak,
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "gpu.md").write_text(table(rows, peak), encoding="utf-8")
    print(table(rows, peak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
