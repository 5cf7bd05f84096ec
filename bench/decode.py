"""Benchmark: vectorised n-best span search (lib/span_search.best_spans) vs the reference loop.

The reference is Hugging Face's `utils_qa.postprocess_qa_predictions` inner loop, reimplemented
here (transformers does not ship it): per window, argsort the logits, take the n_best start and
end indexes, and double-loop over them with the validity checks (offset_mapping not None, end >=
start, length <= max_answer_length), then keep the n_best by score. Both sides turn the same
(N, T) float32 logits into per-window n-best lists of token spans with their scores, and both
timings cover exactly that. The reference is, if anything, flattered: utils_qa also looks up the
character offsets and stores both logits in every candidate dict inside the loop, left out here.
The vectorised lists are exact, so they score at least as high rank by rank as the reference's
(checked). The decode column (span_candidates + select_predictions) is the whole pipeline (search, characters, per-example
merge, null test) and has no reference counterpart.

    python bench/decode.py [--windows 20000] [--length 384] [--threads 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.data.corpus import Example  # noqa: E402
from lib.data.features import Features  # noqa: E402
from lib.evaluation.decoding import select_predictions, span_candidates  # noqa: E402
from lib.evaluation.span_search import best_spans  # noqa: E402


def offset_mappings(context_start, context_end, width):
    """Per window, offsets with None outside the context, as prepare_validation_features sets
    them (built before the timed region: the reference gets them for free)."""
    return [
        [(t, t + 1) if cs <= t < ce else None for t in range(width)]
        for cs, ce in zip(context_start.tolist(), context_end.tolist())
    ]


def reference_nbest(start_logits, end_logits, offset_mapping, n_best, max_answer_length):
    """utils_qa.postprocess_qa_predictions' per-feature loop, stripped to token spans and scores
    (the headline reference: the leanest form of the loop)."""
    results = []
    for i in range(len(start_logits)):
        start, end, offsets = start_logits[i], end_logits[i], offset_mapping[i]
        start_indexes = np.argsort(start)[-1 : -n_best - 1 : -1].tolist()
        end_indexes = np.argsort(end)[-1 : -n_best - 1 : -1].tolist()
        prelim = []
        for s in start_indexes:
            for e in end_indexes:
                if (
                    s >= len(offsets)
                    or e >= len(offsets)
                    or offsets[s] is None
                    or offsets[e] is None
                ):
                    continue
                if e < s or e - s + 1 > max_answer_length:
                    continue
                prelim.append({"offsets": (s, e), "score": start[s] + end[e]})
        results.append(sorted(prelim, key=lambda x: x["score"], reverse=True)[:n_best])
    return results


def utils_qa_nbest(start_logits, end_logits, offset_mapping, n_best, max_answer_length):
    """The same loop as utils_qa writes it (transformers' examples/pytorch/question-answering):
    the feature's null score, the `len(...) < 2` and token_is_max_context checks, and candidate
    dicts holding character offsets and both logits."""
    results = []
    for i in range(len(start_logits)):
        start, end, offsets = start_logits[i], end_logits[i], offset_mapping[i]
        token_is_max_context = None
        feature_null_score = start[0] + end[0]
        start_indexes = np.argsort(start)[-1 : -n_best - 1 : -1].tolist()
        end_indexes = np.argsort(end)[-1 : -n_best - 1 : -1].tolist()
        prelim = []
        for s in start_indexes:
            for e in end_indexes:
                if (
                    s >= len(offsets)
                    or e >= len(offsets)
                    or offsets[s] is None
                    or len(offsets[s]) < 2
                    or offsets[e] is None
                    or len(offsets[e]) < 2
                ):
                    continue
                if e < s or e - s + 1 > max_answer_length:
                    continue
                if token_is_max_context is not None and not token_is_max_context.get(str(s)):
                    continue
                prelim.append(
                    {
                        "offsets": (offsets[s][0], offsets[e][1]),
                        "score": start[s] + end[e],
                        "start_logit": start[s],
                        "end_logit": end[e],
                    }
                )
        prelim = sorted(prelim, key=lambda x: x["score"], reverse=True)[:n_best]
        results.append((feature_null_score, prelim))
    return results


def vectorised_nbest(
    start_logits, end_logits, context_start, context_end, n_best, max_answer_length
):
    """best_spans over all windows at once (it works through them in steps of its own)."""
    return best_spans(
        start_logits,
        end_logits,
        context_start,
        context_end,
        n_best=n_best,
        max_answer_length=max_answer_length,
    )[:3]


def synthetic_features(context_start, context_end, windows_per_example=3):
    """Features/examples with the given window layout: post token i covers characters
    [2i, 2i + 1) of a post "a a a ..."; consecutive windows of an example share no tokens."""
    n = len(context_start)
    cs, ce = context_start.numpy().astype(np.int64), context_end.numpy().astype(np.int64)
    n_post = ce - cs
    offset_base = np.concatenate(([0], np.cumsum(n_post)[:-1]))
    local = np.arange(int(n_post.sum())) - np.repeat(offset_base, n_post)
    # token i of window w sits at post token (w % windows_per_example) * 400 + i
    first = np.repeat((np.arange(n) % windows_per_example) * 400, n_post)
    token = local + first
    token_offsets = np.stack((2 * token, 2 * token + 1), axis=1).astype(np.int32)
    example_index = np.arange(n) // windows_per_example
    n_examples = int(example_index[-1]) + 1
    features = Features(
        input_ids=[np.zeros(int(e) + 1, dtype=np.int32) for e in ce],
        context_start=cs,
        context_end=ce,
        example_index=example_index,
        gold_positions=[np.zeros((1, 2), dtype=np.int64)] * n,
        offset_base=offset_base,
        token_offsets=token_offsets,
        example_windows=np.searchsorted(example_index, np.arange(n_examples + 1)),
    )
    post = "a " * (400 * windows_per_example)
    examples = [Example(f"e{i}", f"p{i}", "S", "q", post, ()) for i in range(n_examples)]
    return examples, features


def timed(fn, repeat=1):
    """(best wall time over `repeat` runs, result)."""
    best = float("inf")
    for _ in range(repeat):
        begin = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - begin)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--length", type=int, default=384)
    parser.add_argument("--n-best", type=int, default=20)
    # 1 by default: the reference is one Python thread (the search itself is single-threaded
    # numpy; torch threads only matter for the tensors' creation).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs, each side")
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
    n_ref = args.reference_windows or n
    offsets = offset_mappings(context_start[:n_ref], context_end[:n_ref], width)
    examples, features = synthetic_features(context_start, context_end)

    print(
        f"{n} windows x {width} tokens, n_best {args.n_best}, torch threads {args.threads}, "
        f"best of {args.repeat} runs on each side\n"
        "  best_spans: lib.evaluation.span_search.best_spans, (N, T) float32 tensors -> exact n-best "
        "(score, start, end) per window, all windows in one call\n"
        f"  lean loop:  the utils_qa loop over {n_ref} windows (scaled to {n}), numpy logits -> "
        "per window a list of n-best {offsets, score} from top-n starts x top-n ends\n"
        "  utils_qa:   that loop as utils_qa writes it (null score, len checks, character "
        "offsets and both logits per candidate)\n"
        "  decode: best_spans + characters + per-example merge + null test\n"
    )
    print(
        "| max_answer_length | best_spans (s) | lean loop (s) | speed-up | utils_qa loop (s) "
        "| speed-up | decode, all steps (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for max_answer_length in (64, 128, 256, 512):
        vectorised_nbest(
            start[:64], end[:64], context_start[:64], context_end[:64], 2, 8
        )  # warm-up
        fast_s, (scores, starts, ends) = timed(
            lambda mal=max_answer_length: vectorised_nbest(
                start, end, context_start, context_end, args.n_best, mal
            ),
            repeat=args.repeat,
        )
        full_s, _ = timed(
            lambda mal=max_answer_length: select_predictions(
                examples,
                span_candidates(
                    examples, features, start, end, n_best=args.n_best, max_answer_length=mal
                ),
                null_threshold=0.0,
                multi_span=False,
                snap_to_sentence=False,
            ),
            repeat=args.repeat,
        )
        ref_s, reference = timed(
            lambda mal=max_answer_length: reference_nbest(
                start_np[:n_ref], end_np[:n_ref], offsets, args.n_best, mal
            ),
            repeat=args.repeat,
        )
        ref_s *= n / n_ref
        verbatim_s, _ = timed(
            lambda mal=max_answer_length: utils_qa_nbest(
                start_np[:n_ref], end_np[:n_ref], offsets, args.n_best, mal
            ),
            repeat=args.repeat,
        )
        verbatim_s *= n / n_ref
        # the reference only pairs the top-n starts with the top-n ends, so it can miss spans:
        # the exact lists must score at least as high, rank by rank, and be valid spans
        ref_scores = np.full((n_ref, args.n_best), -np.inf, dtype=np.float32)
        for row, found in enumerate(reference):
            ref_scores[row, : len(found)] = [f["score"] for f in found]
        assert np.all(scores[:n_ref].numpy() >= ref_scores)
        valid = (starts >= context_start[:, None]) & (ends < context_end[:, None])
        valid &= (ends >= starts) & (ends - starts < max_answer_length)
        assert bool((valid | (starts < 0)).all())
        print(
            f"| {max_answer_length} | {fast_s:.3f} | {ref_s:.2f} | {ref_s / fast_s:.1f}x "
            f"| {verbatim_s:.2f} | {verbatim_s / fast_s:.1f}x | {full_s:.3f} |"
        )


if __name__ == "__main__":
    main()
