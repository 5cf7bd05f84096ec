"""Benchmark: vectorised n-best span search (lib/decoding.best_spans) vs the reference loop.

The reference is Hugging Face's `utils_qa.postprocess_qa_predictions` inner loop, reimplemented
here (transformers does not ship it): per window, argsort the logits, take the n_best start and
end indexes, and double-loop over them with the validity checks (inside the context, end >= start,
length <= max_answer_length), then keep the n_best by score. Both produce per-window n-best lists
of token spans from the same random logits; the timing covers the search only (the character
mapping and merging per example are the same cheap numpy work for both).

    python bench/decode.py [--windows 20000] [--length 384] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.decoding import ROWS_PER_CHUNK, best_spans  # noqa: E402


def reference_nbest(start_logits, end_logits, context_start, context_end, n_best, max_answer_length):
    """utils_qa.postprocess_qa_predictions' per-feature loop (token level)."""
    results = []
    for i in range(len(start_logits)):
        start, end = start_logits[i], end_logits[i]
        # offset_mapping with None outside the context, as prepare_validation_features sets it
        offsets = [
            (t, t + 1) if context_start[i] <= t < context_end[i] else None for t in range(len(start))
        ]
        start_indexes = np.argsort(start)[-1 : -n_best - 1 : -1].tolist()
        end_indexes = np.argsort(end)[-1 : -n_best - 1 : -1].tolist()
        prelim = []
        for s in start_indexes:
            for e in end_indexes:
                if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                    continue
                if e < s or e - s + 1 > max_answer_length:
                    continue
                prelim.append({"offsets": (s, e), "score": start[s] + end[e]})
        results.append(sorted(prelim, key=lambda x: x["score"], reverse=True)[:n_best])
    return results


def vectorised_nbest(start_logits, end_logits, context_start, context_end, n_best, max_answer_length):
    outputs = []
    for rows in range(0, len(start_logits), ROWS_PER_CHUNK):
        part = slice(rows, rows + ROWS_PER_CHUNK)
        outputs.append(
            best_spans(
                start_logits[part],
                end_logits[part],
                context_start[part],
                context_end[part],
                n_best=n_best,
                max_answer_length=max_answer_length,
            )
        )
    return [torch.cat(parts) for parts in zip(*outputs)]


def timed(fn):
    begin = time.perf_counter()
    result = fn()
    return time.perf_counter() - begin, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--length", type=int, default=384)
    parser.add_argument("--n-best", type=int, default=20)
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--reference-windows", type=int, default=0, help="0 = all (slow)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    n, width = args.windows, args.length
    start = torch.randn(n, width, generator=generator)
    end = torch.randn(n, width, generator=generator)
    # questions of 8-40 tokens, posts that fill the window or stop early
    context_start = torch.randint(10, 43, (n,), generator=generator)
    context_end = torch.randint(width // 2, width, (n,), generator=generator)
    start_np, end_np = start.numpy(), end.numpy()
    cs_np, ce_np = context_start.numpy(), context_end.numpy()
    n_ref = args.reference_windows or n

    print(f"{n} windows x {width} tokens, n_best {args.n_best}, torch threads {args.threads}\n")
    print("| max_answer_length | vectorised (s) | reference loop (s) | speed-up |")
    print("|---:|---:|---:|---:|")
    for max_answer_length in (64, 128, 256, 512):
        vectorised_nbest(start[:64], end[:64], context_start[:64], context_end[:64], 2, 8)  # warm-up
        fast_s, (scores, starts, ends, _) = timed(
            lambda mal=max_answer_length: vectorised_nbest(
                start, end, context_start, context_end, args.n_best, mal
            )
        )
        ref_s, reference = timed(
            lambda mal=max_answer_length: reference_nbest(
                start_np[:n_ref], end_np[:n_ref], cs_np, ce_np, args.n_best, mal
            )
        )
        ref_s *= n / n_ref
        # the reference only looks at top-n starts x top-n ends, so it can miss spans; the
        # vectorised best must score at least as high as the reference best everywhere
        ref_best = np.array([r[0]["score"] if r else -np.inf for r in reference])
        assert np.all(scores[:n_ref, 0].numpy() >= ref_best - 1e-5)
        assert bool(((ends >= starts) | (starts < 0)).all())
        print(f"| {max_answer_length} | {fast_s:.3f} | {ref_s:.2f} | {ref_s / fast_s:.1f}x |")


if __name__ == "__main__":
    main()
