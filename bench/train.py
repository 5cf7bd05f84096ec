"""Benchmark: one epoch of demo training, ours vs the same model trained the transformers way.

    python bench/train.py [--windows 256 | --full] [--warmup 2] [--chunk 4] [--threads N]
                          [--reference-dropout same|checkpoint] [--reference-keep-memory]
                          [--peak-size 2048]
                          [key=value ...]

Settings are demo.toml's (+ key=value overrides): minilm-l6, the demo corpus, max_length 256,
stride 64, batch 16, bf16 autocast, attention dropout 0, no_answer_fraction and lr as demo.toml sets them. Both
sides train on the same windows: the first --windows windows (whole micro-batches) of epoch 0's
order as lib.training.trainer.TrainingBatches draws it, or the whole epoch with --full; the --warmup
untimed steps use epoch 1's first batches.

  ours       lib.training.step.training_step, the step train() runs: lib features, the
             length-grouped TrainingBatches, collate_windows padding each batch to its longest
             window rounded up to features.pad_to_multiple_of, lib.model.pretrained.load_qa_model,
             span_marginal_loss, fused AdamW (lib.training.optimization.new_optimizer), the linear
             schedule, gradient clipping, all through an Accelerator (bf16 autocast on CPU).
  reference  transformers.BertForQuestionAnswering.from_pretrained(same folder,
             attn_implementation="sdpa"), every window padded to max_length (run_qa.py's
             pad_to_max_length default), its built-in loss (start/end cross-entropy on the first
             gold span), the same AdamW groups (fused: Trainer's default optim for torch >= 2.8),
             get_linear_schedule_with_warmup and clipping,
             through an Accelerator as Trainer does. Same dropout rates as ours by default
             (--reference-dropout checkpoint: the checkpoint's attention dropout 0.1).
             Ours applies lib.model.cpu_speedups.apply_cpu_speedups (dropout masks, attention, freed
             host memory kept), as train() does on CPU; --reference-keep-memory gives the
             reference the kept memory too.
Both QA heads start from the same seeded initialisation.

Each side runs in its own subprocess (so that its peak RSS, ru_maxrss, is its own); the parent
runs them in turn, --chunk steps at a time, swapping which goes first every chunk, so machine
load drifts hit both alike. Only one side computes at any moment.

FLOPs (the usual 6N rule plus attention, e.g. Kaplan et al. 2020 / PaLM appendix B): a training
step over a window of t tokens costs 6·N·t + 12·L·d·t², N = non-embedding parameters (encoder +
QA head), L layers, d hidden size (forward 2·N·t + 4·L·d·t², backward twice that). "Useful"
FLOP/s count each window's real tokens -- the same work for both sides, so its ratio is the speed
ratio; "executed" FLOP/s count the padded width each side actually computes. Both are shown as a
fraction of this machine's measured matmul peak: torch.mm of 2048² fp32 (and bf16, which is what
autocast runs) on the same threads, best of 5, measured before and after (the higher kept).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader, Sampler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.config import load_config  # noqa: E402
from lib.data.batching import WindowDataset, collate_windows  # noqa: E402
from lib.data.dataset import build_dataset  # noqa: E402
from lib.data.features import build_features  # noqa: E402
from lib.model.cpu_speedups import apply_cpu_speedups  # noqa: E402
from lib.model.host_memory import keep_freed_memory  # noqa: E402
from lib.model.pretrained import load_qa_model, load_tokenizer, resolve_model_dir  # noqa: E402
from lib.training.optimization import (  # noqa: E402
    linear_warmup_decay,
    new_accelerator,
    new_optimizer,
    parameter_groups,
)
from lib.training.step import training_step  # noqa: E402
from lib.training.trainer import TrainingBatches  # noqa: E402

SIDES = ("ours", "reference")
MIB = 1024 * 1024


# ---------------------------------------------------------------- the windows both sides train on


class ChosenBatches(Sampler[list[int]]):
    """A fixed list of micro-batches (lists of window indices), in order."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def demo_config(overrides: list[str]):
    return load_config(ROOT / "demo.toml", overrides)


def training_batches(cfg, *, windows: int, full: bool, warmup: int):
    """(train features, tokenizer, timed micro-batches, warm-up micro-batches, epoch batches)."""
    dataset = build_dataset(cfg.data)
    tokenizer = load_tokenizer(cfg.model.name)
    features = build_features(
        dataset.splits["train"],
        tokenizer,
        max_length=cfg.features.max_length,
        doc_stride=cfg.features.doc_stride,
        max_question_length=cfg.features.max_question_length,
    )
    t = cfg.train
    sampler = TrainingBatches(
        features,
        batch_size=t.batch_size,
        grad_accum=t.grad_accum,
        no_answer_fraction=t.no_answer_fraction,
        seed=t.seed,
    )
    sampler.set_epoch(0)
    epoch = list(sampler)
    timed = epoch if full else epoch[: math.ceil(windows / t.batch_size)]
    sampler.set_epoch(1)
    warm = list(sampler)[:warmup]
    return features, tokenizer, timed, warm, epoch


def reset_head(linear: torch.nn.Linear, *, seed: int, std: float) -> None:
    """The same fresh QA head on both sides (the checkpoint has none)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator) * std)
        linear.bias.zero_()


# ---------------------------------------------------------------- one side, in its own process


def build_side(side: str, cfg, features, tokenizer, timed, warm, n_epoch_batches, args):
    """(step(batch) -> loss, timed loader, warm-up loader) for one side."""
    from accelerate.utils import set_seed

    t = cfg.train
    if side == "reference" and args.reference_keep_memory:
        keep_freed_memory()  # ours gets it from apply_cpu_speedups, as train() does on CPU
    set_seed(t.seed)
    folder = resolve_model_dir(cfg.model.name)
    pad_id = tokenizer.token_to_id("[PAD]")
    width = cfg.features.pad_to_multiple_of if side == "ours" else cfg.features.max_length
    collate = partial(collate_windows, pad_id=pad_id, pad_to_multiple_of=width)

    def loader(batches):
        return DataLoader(
            WindowDataset(features, with_labels=True),
            batch_sampler=ChosenBatches(batches),
            collate_fn=collate,
            generator=torch.Generator().manual_seed(t.seed),
        )

    total_steps = t.epochs * math.ceil(n_epoch_batches / t.grad_accum)
    warmup_steps = round(t.warmup_ratio * total_steps)
    if side == "ours":
        dropout = None if cfg.model.dropout == "checkpoint" else float(cfg.model.dropout)
        attn = cfg.model.attention_dropout
        model = load_qa_model(
            folder,
            dropout=dropout,
            attention_dropout=None if attn == "checkpoint" else float(attn),
            gradient_checkpointing=cfg.model.gradient_checkpointing,
        )
        if not torch.cuda.is_available():
            apply_cpu_speedups(model)  # the one opt-in train() makes on CPU
    else:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        kwargs = {}
        if cfg.model.dropout != "checkpoint":
            kwargs["hidden_dropout_prob"] = float(cfg.model.dropout)
        if args.reference_dropout == "same" and cfg.model.attention_dropout != "checkpoint":
            kwargs["attention_probs_dropout_prob"] = float(cfg.model.attention_dropout)
        model = transformers.BertForQuestionAnswering.from_pretrained(
            folder, attn_implementation="sdpa", **kwargs
        )
    reset_head(model.qa_outputs, seed=t.seed, std=model.config.initializer_range)
    model.train()
    if side == "ours":
        optimizer = new_optimizer(model, lr=t.lr, weight_decay=t.weight_decay)
        scheduler = linear_warmup_decay(
            optimizer, warmup_steps=warmup_steps, total_steps=total_steps
        )
    else:  # Trainer's default optim for torch >= 2.8, "adamw_torch_fused"
        optimizer = torch.optim.AdamW(parameter_groups(model, t.weight_decay), lr=t.lr, fused=True)
        scheduler = transformers.get_linear_schedule_with_warmup(
            optimizer, warmup_steps, total_steps
        )
    accelerator = new_accelerator(
        mixed_precision=t.mixed_precision, gradient_accumulation_steps=t.grad_accum
    )
    model, optimizer, timed_loader, warm_loader, scheduler = accelerator.prepare(
        model, optimizer, loader(timed), loader(warm), scheduler
    )

    our_step = partial(  # exactly lib.training.trainer.train's step
        training_step,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        accelerator=accelerator,
        span_loss=t.span_loss,
        max_grad_norm=t.max_grad_norm,
    )

    def reference_step(batch) -> torch.Tensor:  # Trainer.training_step + its optimizer step
        with accelerator.accumulate(model):
            out = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"],
                start_positions=batch["start_positions"][:, 0],
                end_positions=batch["end_positions"][:, 0],
            )
            loss = out.loss
            accelerator.backward(loss)
            if accelerator.sync_gradients and t.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return (our_step if side == "ours" else reference_step), timed_loader, warm_loader


def worker(args) -> None:
    """Set up one side, warm up, then run the parent's commands: one JSON line each way."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol
    torch.set_num_threads(args.threads)
    cfg = demo_config(args.overrides)
    features, tokenizer, timed, warm, epoch = training_batches(
        cfg, windows=args.windows, full=args.full, warmup=args.warmup
    )
    step, timed_loader, warm_loader = build_side(
        args.worker, cfg, features, tokenizer, timed, warm, len(epoch), args
    )
    rss_setup = psutil.Process().memory_info().rss
    for batch in warm_loader:
        step(batch)
    checksum = sum(sum(batch) for batch in timed)
    channel.write(json.dumps({"checksum": checksum, "rss_setup": rss_setup}) + "\n")
    batches = iter(timed_loader)
    losses: list[float] = []
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "run":
            begin = time.perf_counter()
            for _ in range(command["steps"]):
                losses.append(float(step(next(batches))))
            channel.write(json.dumps({"seconds": time.perf_counter() - begin}) + "\n")
        else:
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
            mean_loss = sum(losses) / max(1, len(losses))
            channel.write(json.dumps({"maxrss": maxrss, "loss": mean_loss}) + "\n")
            return


class Side:
    """The parent's handle on one worker process."""

    def __init__(self, name: str, args, threads: int):
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
        command += ["--threads", str(threads), "--windows", str(args.windows)]
        command += ["--warmup", str(args.warmup), "--reference-dropout", args.reference_dropout]
        command += ["--reference-keep-memory"] if args.reference_keep_memory else []
        command += ["--full"] if args.full else []
        env = dict(os.environ, TRANSFORMERS_VERBOSITY="error", TQDM_DISABLE="1")
        self.name = name
        self.process = subprocess.Popen(
            [*command, *args.overrides], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, cwd=ROOT, env=env,
        )  # fmt: skip
        self.seconds = 0.0
        self.ready = self.receive()

    def receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"{self.name} worker died (exit {self.process.wait()}); see stderr")
        return json.loads(line)

    def send(self, command: dict) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def run(self, steps: int) -> None:
        self.seconds += self.send({"op": "run", "steps": steps})["seconds"]

    def finish(self) -> dict:
        result = self.send({"op": "quit"})
        self.process.wait()
        return result


# ---------------------------------------------------------------- FLOPs, peak, report


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeat: int = 5) -> float:
    """Best measured FLOP/s of one size x size matmul on the current torch threads."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeat):
        begin = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - begin)
    return 2 * size**3 / best


def training_flops(tokens: np.ndarray, *, n_params: int, layers: int, hidden: int) -> float:
    """6·N·t + 12·L·d·t² summed over windows of t tokens each."""
    t = tokens.astype(np.float64)
    return float((6 * n_params * t + 12 * layers * hidden * t**2).sum())


def model_shape(cfg) -> tuple[int, int, int]:
    """(non-embedding parameters incl. the QA head, layers, hidden size)."""
    model = load_qa_model(cfg.model.name)
    n_params = sum(p.numel() for n, p in model.named_parameters() if ".embeddings." not in n)
    return n_params, model.config.num_hidden_layers, model.config.hidden_size


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=256, help="timed windows (whole batches)")
    parser.add_argument("--full", action="store_true", help="time the whole epoch")
    parser.add_argument(
        "--peak-size",
        type=int,
        default=2048,
        help="matmul size for the peak (smaller: CPUs "
        "without bf16 hardware take minutes for a 2048² bf16 matmul)",
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side")
    parser.add_argument("--chunk", type=int, default=4, help="steps per turn")
    parser.add_argument("--threads", type=int, default=0, help="0 = train.threads or torch's")
    parser.add_argument("--reference-dropout", choices=("same", "checkpoint"), default="same")
    parser.add_argument("--reference-keep-memory", action="store_true")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    os.chdir(ROOT)
    cfg = demo_config(args.overrides)
    threads = args.threads or cfg.train.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    peaks = {t: matmul_peak(t, args.peak_size) for t in (torch.float32, torch.bfloat16)}
    features, _, timed, _, epoch = training_batches(
        cfg, windows=args.windows, full=args.full, warmup=args.warmup
    )
    n_params, layers, hidden = model_shape(cfg)
    lengths = features.lengths()
    real = np.concatenate([lengths[b] for b in timed])
    multiple = cfg.features.pad_to_multiple_of
    ours_width = np.concatenate(
        [np.full(len(b), -(-lengths[b].max() // multiple) * multiple) for b in timed]
    )
    reference_width = np.full(len(real), cfg.features.max_length)
    flops = partial(training_flops, n_params=n_params, layers=layers, hidden=hidden)
    useful = flops(real)
    executed = {"ours": flops(ours_width), "reference": flops(reference_width)}
    padded_tokens = {"ours": int(ours_width.sum()), "reference": int(reference_width.sum())}

    print(f"starting both sides ({threads} threads each, one at a time) ...", file=sys.stderr)
    sides = {name: Side(name, args, threads) for name in SIDES}
    checksum = sum(sum(batch) for batch in timed)
    for side in sides.values():
        assert side.ready["checksum"] == checksum, "the two sides drew different windows"
    for turn, first in enumerate(range(0, len(timed), args.chunk)):
        steps = min(args.chunk, len(timed) - first)
        order = SIDES if turn % 2 == 0 else SIDES[::-1]
        for name in order:
            sides[name].run(steps)
    finished = {name: side.finish() for name, side in sides.items()}
    peaks = {t: max(value, matmul_peak(t, args.peak_size)) for t, value in peaks.items()}

    import transformers

    n_windows, epoch_windows = len(real), sum(len(b) for b in epoch)
    print(
        f"\nmachine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({threads} threads), transformers {transformers.__version__}; load average "
        f"{load_before:.2f} before the run (the CPU may be shared)\n"
        f"model: {cfg.model.name}, N = {n_params / 1e6:.2f}M non-embedding parameters, "
        f"L = {layers}, d = {hidden}; precision {cfg.train.mixed_precision}; batch "
        f"{cfg.train.batch_size}, max_length {cfg.features.max_length}, stride "
        f"{cfg.features.doc_stride}, lr {cfg.train.lr}, no_answer_fraction "
        f"{cfg.train.no_answer_fraction}; reference attention dropout: {args.reference_dropout}, reference keeps freed memory: "
        f"{'yes' if args.reference_keep_memory else 'no'}\n"
        f"timed: {n_windows} windows ({len(timed)} steps{', the whole epoch' if args.full else ''}"
        f" of an epoch of {epoch_windows} windows / {len(epoch)} steps), {args.warmup} warm-up "
        f"steps each excluded, sides alternating every {args.chunk} steps\n"
        f"matmul peak ({args.peak_size}², best of 5): fp32 {peaks[torch.float32] / 1e9:.0f} GFLOP/s, "
        f"bf16 {peaks[torch.bfloat16] / 1e9:.0f} GFLOP/s; FLOPs per window of t tokens = "
        f"6·N·t + 12·L·d·t²\n"
    )
    rows = {}
    for name in SIDES:
        seconds = sides[name].seconds
        rows[name] = {
            "windows/s": f"{n_windows / seconds:.2f}",
            f"time for {n_windows} windows (s)": f"{seconds:.1f}",
            "est. one epoch (s)": f"{epoch_windows / (n_windows / seconds):.0f}",
            "computed tokens / real tokens": f"{padded_tokens[name] / real.sum():.3f}",
            "useful GFLOP/s (real tokens)": f"{useful / seconds / 1e9:.1f}",
            "useful, % of fp32 / bf16 peak": (
                f"{100 * useful / seconds / peaks[torch.float32]:.1f}% / "
                f"{100 * useful / seconds / peaks[torch.bfloat16]:.1f}%"
            ),
            "executed GFLOP/s (padded tokens)": f"{executed[name] / seconds / 1e9:.1f}",
            "executed, % of fp32 / bf16 peak": (
                f"{100 * executed[name] / seconds / peaks[torch.float32]:.1f}% / "
                f"{100 * executed[name] / seconds / peaks[torch.bfloat16]:.1f}%"
            ),
            "RSS after setup (MiB)": f"{sides[name].ready['rss_setup'] / MIB:.0f}",
            "peak RSS (MiB)": f"{finished[name]['maxrss'] / MIB:.0f}",
            "mean training loss": f"{finished[name]['loss']:.3f}",
        }
    print("| | ours (lib) | reference (transformers) |")
    print("|---|---:|---:|")
    for key in rows["ours"]:
        print(f"| {key} | {rows['ours'][key]} | {rows['reference'][key]} |")
    ratio = sides["reference"].seconds / sides["ours"].seconds
    print(f"| **speed ratio (ours / reference windows/s)** | **{ratio:.2f}×** | |")


if __name__ == "__main__":
    main()
