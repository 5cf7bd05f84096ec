"""Benchmark: our hand-written BERT QA model vs transformers' BertForQuestionAnswering (sdpa).

    python bench/encoder.py [--steps 10] [--warmup 3] [--threads N] [--shapes 16x128,16x384]

Same MiniLM weights (the QA head copied across), fp32, same torch threads, same inputs: random
token ids, question/post token types, and padded rows (lengths T/2..T, the first row full), as a
length-grouped training batch looks. Two cases per shape: a training step (train mode with the
checkpoint's dropout, forward, span cross-entropy, backward, AdamW step) and inference
(eval mode, torch.inference_mode). Steps alternate ours/theirs so machine load hits both alike;
each number is the median of --steps timed steps after --warmup untimed ones. Prints a markdown
table; ratio = theirs / ours (above 1 = ours faster).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.model.cpu_speedups import apply_cpu_speedups  # noqa: E402
from lib.model.pretrained import load_qa_model, resolve_model_dir  # noqa: E402


def make_batch(batch: int, seq_len: int, vocab_size: int, device: str, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(seq_len // 2, seq_len + 1, (batch,), generator=generator)
    lengths[0] = seq_len  # the batch is padded to its longest row
    positions = torch.arange(seq_len)
    mask = (positions[None, :] < lengths[:, None]).long()
    ids = torch.randint(1000, vocab_size, (batch, seq_len), generator=generator) * mask
    types = ((positions[None, :] >= 16) & mask.bool()).long()  # a 16-token question, then post
    starts = (torch.rand(batch, generator=generator) * lengths).long()
    ends = torch.minimum(starts + 5, lengths - 1)
    tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    labels = {"starts": starts, "ends": ends}
    return {k: v.to(device) for k, v in tensors.items()}, {
        k: v.to(device) for k, v in labels.items()
    }


def logits_of(model, inputs, is_ours: bool):
    if is_ours:
        return model(**inputs)
    out = model(**inputs)
    return out.start_logits, out.end_logits


def timed(step, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000.0


def train_step_fn(model, is_ours: bool, inputs, labels):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        model.train()
        start_logits, end_logits = logits_of(model, inputs, is_ours)
        loss = F.cross_entropy(start_logits, labels["starts"]) + F.cross_entropy(
            end_logits, labels["ends"]
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def inference_step_fn(model, is_ours: bool, inputs, labels):
    def step():
        model.eval()
        with torch.inference_mode():
            logits_of(model, inputs, is_ours)

    return step


def compare(make_step, ours, theirs, inputs, labels, *, warmup: int, steps: int, device: str):
    """Median milliseconds (ours, theirs), alternating the two step by step."""
    ours_step = make_step(ours, True, inputs, labels)
    theirs_step = make_step(theirs, False, inputs, labels)
    ours_ms, theirs_ms = [], []
    for index in range(warmup + steps):
        a, b = timed(ours_step, device), timed(theirs_step, device)
        if index >= warmup:
            ours_ms.append(a)
            theirs_ms.append(b)
    return statistics.median(ours_ms), statistics.median(theirs_ms)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--shapes", default="16x128,16x384", help="BATCHxSEQ,...")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()  # its load report would bury the table
    transformers.logging.disable_progress_bar()

    folder = resolve_model_dir(args.model)
    ours = load_qa_model(folder).to(args.device)
    if args.device == "cpu":
        apply_cpu_speedups(ours)  # as train() does on CPU
    theirs = transformers.BertForQuestionAnswering.from_pretrained(
        folder, attn_implementation="sdpa"
    ).to(args.device)
    theirs.qa_outputs.load_state_dict(ours.qa_outputs.state_dict())

    shapes = [
        tuple(int(part) for part in shape.lower().split("x")) for shape in args.shapes.split(",")
    ]
    batches = {shape: make_batch(*shape, ours.config.vocab_size, args.device) for shape in shapes}
    for (batch, seq_len), (inputs, _) in batches.items():  # before training changes the weights
        with torch.inference_mode():
            mask = inputs["attention_mask"].bool()
            diff = (ours.eval()(**inputs)[0] - theirs.eval()(**inputs).start_logits)[mask]
        print(f"{batch}x{seq_len}: max |start logit difference| = {diff.abs().max().item():.1e}")

    rows = []
    for (batch, seq_len), (inputs, labels) in batches.items():
        for case, make_step in (("train step", train_step_fn), ("inference", inference_step_fn)):
            ours_ms, theirs_ms = compare(
                make_step,
                ours,
                theirs,
                inputs,
                labels,
                warmup=args.warmup,
                steps=args.steps,
                device=args.device,
            )
            rows.append((f"{case} {batch}x{seq_len}", ours_ms, theirs_ms))

    print()
    print(
        f"machine: {cpu_name()}, device {args.device}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}; "
        f"{args.model} fp32, dropout {ours.config.hidden_dropout_prob}/"
        f"{ours.config.attention_probs_dropout_prob} in train steps; median of {args.steps} "
        f"steps after {args.warmup} warm-up"
    )
    print()
    print("| case | ours ms | theirs ms | speed ratio (theirs/ours) |")
    print("|---|---:|---:|---:|")
    for case, ours_ms, theirs_ms in rows:
        print(f"| {case} | {ours_ms:.1f} | {theirs_ms:.1f} | {theirs_ms / ours_ms:.2f}x |")


if __name__ == "__main__":
    main()
