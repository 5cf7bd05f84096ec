"""Benchmark: evaluation examples/s, ours vs the same model run the transformers way.

    python bench/evaluate.py [--split val] [--examples 200] [--model minilm-l6 | RUN_DIR]
                             [--precision bf16|no] [--repeat 2] [--threads N] [key=value ...]

Settings are demo.toml's (+ key=value overrides): max_length 256, stride 64, eval batch size
train.eval_batch_size, decode.n_best / max_answer_length / null_threshold, precision
train.mixed_precision (bf16 autocast on CPU) unless --precision says otherwise. Both sides get the
same examples (the first --examples of the split; 0 = all) and the same feature windows, built
once before timing (the reference gets its offset_mapping lists, None outside the post, for free
too). With --model minilm-l6 the QA head is freshly initialised (the timing does not depend on
the weights; the predictions are meaningless); both sides share the same head.

  ours       lib.evaluation.inference: eval_loader (windows sorted by length, each batch padded to its longest
             window rounded up to features.pad_to_multiple_of), predict_logits under an Accelerator
             from lib.training.optimization.new_accelerator (in bf16: on a bf16 copy of the weights), then
             lib.evaluation.decoding's span_candidates + select_predictions.
  reference  transformers.BertForQuestionAnswering(attn_implementation="sdpa") prepared by the
             same Accelerator (bf16 autocast, Trainer's default), windows in dataset order padded
             to max_length (run_qa.py's pad_to_max_length default), torch.inference_mode, logits
             gathered to numpy as Trainer.evaluation_loop does, then
             utils_qa.postprocess_qa_predictions' SQuAD-v2 loop (below: per window argsort, top-n
             starts x top-n ends double loop, per example sort, null test, softmax over the
             n-best), character level.
  reference, bf16 weights   (bf16 only) the same with the model cast to bf16, as Trainer's
             non-default bf16_full_eval=True does: what our bf16 inference gains over the
             reference by padding, sorting and decoding alone.

Both sides run in one process, which keeps freed host memory for reuse as evaluate.py does on
CPU (lib.model.host_memory). The timed region is logits + decoding, from feature windows to one predicted text per example
(metrics excluded on both sides). The sides alternate, --repeat passes each after one untimed
warm-up batch; the best pass of each is reported. "same predicted text" is the share of examples
where a side predicted ours' text: not 100% because bf16 numbers differ (autocast vs bf16 weights,
other kernels; with a fresh QA head many spans are near ties) and the reference's top-n x top-n
grid can miss the best valid span that ours finds exactly.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib.config import load_config  # noqa: E402
from lib.data.batching import WindowDataset, collate_windows  # noqa: E402
from lib.data.dataset import build_dataset  # noqa: E402
from lib.data.features import build_features  # noqa: E402
from lib.evaluation.decoding import select_predictions, span_candidates  # noqa: E402
from lib.evaluation.inference import eval_loader, inference_copy, predict_logits  # noqa: E402
from lib.model.host_memory import keep_freed_memory  # noqa: E402
from lib.model.pretrained import load_qa_model, load_tokenizer, resolve_model_dir  # noqa: E402
from lib.training.optimization import new_accelerator, resolve_mixed_precision  # noqa: E402


def reference_offset_mappings(features, width: int) -> list[list]:
    """prepare_validation_features' offset_mapping: (start, end) on post tokens, None elsewhere
    (question, specials and max_length padding)."""
    mappings = []
    for w in range(len(features)):
        offsets = features.offsets(w).tolist()
        row = [tuple(o) if o[0] >= 0 else None for o in offsets]
        mappings.append(row + [None] * (width - len(row)))
    return mappings


def postprocess_qa_predictions(
    examples, feature_example_ids, offset_mappings, start_logits, end_logits, *, n_best_size,
    max_answer_length, null_score_diff_threshold,
) -> dict[str, str]:  # fmt: skip
    """utils_qa.postprocess_qa_predictions with version_2_with_negative=True (transformers'
    examples/pytorch/question-answering), on plain lists instead of a datasets.Dataset."""
    example_id_to_index = {ex.example_id: i for i, ex in enumerate(examples)}
    features_per_example = collections.defaultdict(list)
    for i, example_id in enumerate(feature_example_ids):
        features_per_example[example_id_to_index[example_id]].append(i)

    all_predictions = collections.OrderedDict()
    for example_index, example in enumerate(examples):
        min_null_prediction = None
        prelim_predictions = []
        for feature_index in features_per_example[example_index]:
            start = start_logits[feature_index]
            end = end_logits[feature_index]
            offset_mapping = offset_mappings[feature_index]
            feature_null_score = start[0] + end[0]
            if min_null_prediction is None or min_null_prediction["score"] > feature_null_score:
                min_null_prediction = {
                    "offsets": (0, 0),
                    "score": feature_null_score,
                    "start_logit": start[0],
                    "end_logit": end[0],
                }
            start_indexes = np.argsort(start)[-1 : -n_best_size - 1 : -1].tolist()
            end_indexes = np.argsort(end)[-1 : -n_best_size - 1 : -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if (
                        start_index >= len(offset_mapping)
                        or end_index >= len(offset_mapping)
                        or offset_mapping[start_index] is None
                        or len(offset_mapping[start_index]) < 2
                        or offset_mapping[end_index] is None
                        or len(offset_mapping[end_index]) < 2
                    ):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    prelim_predictions.append(
                        {
                            "offsets": (
                                offset_mapping[start_index][0],
                                offset_mapping[end_index][1],
                            ),
                            "score": start[start_index] + end[end_index],
                            "start_logit": start[start_index],
                            "end_logit": end[end_index],
                        }
                    )
        prelim_predictions.append(min_null_prediction)
        null_score = min_null_prediction["score"]
        predictions = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[
            :n_best_size
        ]
        if not any(p["offsets"] == (0, 0) for p in predictions):
            predictions.append(min_null_prediction)
        context = example.context
        for pred in predictions:
            offsets = pred.pop("offsets")
            pred["text"] = context[offsets[0] : offsets[1]]
        if len(predictions) == 0 or (len(predictions) == 1 and predictions[0]["text"] == ""):
            predictions.insert(
                0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0}
            )
        scores = np.array([pred.pop("score") for pred in predictions])
        exp_scores = np.exp(scores - np.max(scores))
        probs = exp_scores / exp_scores.sum()
        for prob, pred in zip(probs, predictions):
            pred["probability"] = prob
        i = 0
        while predictions[i]["text"] == "":
            i += 1
        best_non_null_pred = predictions[i]
        score_diff = (
            null_score - best_non_null_pred["start_logit"] - best_non_null_pred["end_logit"]
        )
        if score_diff > null_score_diff_threshold:
            all_predictions[example.example_id] = ""
        else:
            all_predictions[example.example_id] = best_non_null_pred["text"]
    return all_predictions


def run_ours(model, loader, accelerator, examples, features, decode) -> tuple[dict, float]:
    """(example_id -> predicted text, seconds spent decoding)."""
    start, end = predict_logits(model, loader, accelerator, len(features))
    begin = time.perf_counter()
    candidates = span_candidates(
        examples,
        features,
        start,
        end,
        n_best=decode.n_best,
        max_answer_length=decode.max_answer_length,
    )
    predictions = select_predictions(
        examples,
        candidates,
        null_threshold=decode.null_threshold,
        multi_span=decode.multi_span,
        snap_to_sentence=False,
    )
    texts = {k: p.spans[0].text if p.spans else "" for k, p in predictions.items()}
    return texts, time.perf_counter() - begin


@torch.inference_mode()
def reference_logits(model, loader) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    starts, ends = [], []
    for batch in loader:
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        )
        starts.append(out.start_logits.float().cpu())
        ends.append(out.end_logits.float().cpu())
    return torch.cat(starts).numpy(), torch.cat(ends).numpy()


def run_reference(model, loader, examples, feature_example_ids, offsets, decode):
    """(example_id -> predicted text, seconds spent decoding)."""
    start, end = reference_logits(model, loader)
    begin = time.perf_counter()
    texts = postprocess_qa_predictions(
        examples,
        feature_example_ids,
        offsets,
        start,
        end,
        n_best_size=decode.n_best,
        max_answer_length=decode.max_answer_length,
        null_score_diff_threshold=decode.null_threshold,
    )
    return texts, time.perf_counter() - begin


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def timed(fn) -> tuple[float, object]:
    begin = time.perf_counter()
    result = fn()
    return time.perf_counter() - begin, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--examples", type=int, default=200, help="first N of the split; 0 = all")
    parser.add_argument("--model", default="minilm-l6", help="model name/folder or a run dir")
    parser.add_argument("--precision", default=None, help="bf16 or no (default: the config's)")
    parser.add_argument("--repeat", type=int, default=2, help="timed passes per side (best kept)")
    parser.add_argument("--threads", type=int, default=0, help="0 = train.threads or torch's")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    os.chdir(ROOT)
    keep_freed_memory()  # as evaluate.py does on CPU (apply_cpu_speedups); both sides get it
    cfg = load_config(ROOT / "demo.toml", args.overrides)
    threads = args.threads or cfg.train.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    precision = resolve_mixed_precision(
        args.precision or cfg.train.mixed_precision, torch.device("cpu")
    )

    examples = build_dataset(cfg.data).splits[args.split]
    examples = examples[: args.examples] if args.examples else examples
    folder = resolve_model_dir(args.model)
    tokenizer = load_tokenizer(folder)
    f = cfg.features
    features = build_features(
        examples,
        tokenizer,
        max_length=f.max_length,
        doc_stride=f.doc_stride,
        max_question_length=f.max_question_length,
    )
    pad_id = tokenizer.token_to_id("[PAD]")
    batch_size = cfg.train.eval_batch_size
    our_loader = eval_loader(
        features, batch_size=batch_size, pad_id=pad_id, pad_to_multiple_of=f.pad_to_multiple_of
    )
    reference_loader = DataLoader(
        WindowDataset(features, with_labels=False),
        batch_size=batch_size,
        collate_fn=lambda items: collate_windows(
            items, pad_id=pad_id, pad_to_multiple_of=f.max_length
        ),
    )
    feature_example_ids = [examples[i].example_id for i in features.example_index.tolist()]
    offsets = reference_offset_mappings(features, f.max_length)

    ours = load_qa_model(folder)
    reference = transformers.BertForQuestionAnswering.from_pretrained(
        folder, attn_implementation="sdpa"
    )
    reference.qa_outputs.load_state_dict(ours.qa_outputs.state_dict())  # fresh head: the same one
    accelerator = new_accelerator(mixed_precision=precision)
    ours, our_loader, reference = accelerator.prepare(ours, our_loader, reference)
    reference.eval()
    full_bf16 = None
    if precision == "bf16":  # bf16_full_eval: the unwrapped model cast, no autocast
        full_bf16 = inference_copy(accelerator.unwrap_model(reference))

    def warm_up() -> None:
        with torch.inference_mode():
            pairs = [(ours, our_loader), (reference, reference_loader)]
            pairs += [(full_bf16, reference_loader)] if full_bf16 is not None else []
            for model, loader in pairs:
                batch = next(iter(loader))
                model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"],
                )

    def our_pass():
        return run_ours(ours, our_loader, accelerator, examples, features, cfg.decode)

    def reference_pass(model=reference):
        return run_reference(
            model, reference_loader, examples, feature_example_ids, offsets, cfg.decode
        )

    warm_up()
    sides = {"ours": our_pass, "reference": reference_pass}
    if full_bf16 is not None:
        sides["reference, bf16 weights"] = partial(reference_pass, full_bf16)
    passes = {name: [] for name in sides}  # (total seconds, decoding seconds) per pass
    predictions = {}
    for turn in range(args.repeat):
        order = list(sides.items())
        for name, fn in order if turn % 2 == 0 else order[::-1]:
            elapsed, (predictions[name], decode_s) = timed(fn)
            passes[name].append((elapsed, decode_s))
    ours_text = predictions["ours"]

    lengths = features.lengths()
    print(
        f"\nmachine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({threads} threads), transformers {transformers.__version__}; load average "
        f"{load_before:.2f} before the run (the CPU may be shared)\n"
        f"model: {args.model}{' (fresh QA head)' if args.model == 'minilm-l6' else ''}; "
        f"precision {precision}; {args.split} split, {len(examples)} examples, {len(features)} "
        f"windows (mean {lengths.mean():.0f} tokens, max_length {f.max_length}), eval batch "
        f"{batch_size}, n_best {cfg.decode.n_best}, max_answer_length "
        f"{cfg.decode.max_answer_length}; best of {args.repeat} alternating passes per side\n"
    )
    rows, best = {}, {name: min(passes[name]) for name in passes}
    for name in sides:
        total, decode_s = best[name]
        rows[name] = {
            "examples/s": f"{len(examples) / total:.1f}",
            "windows/s": f"{len(features) / total:.1f}",
            "time per pass (s)": f"{total:.2f}",
            "of which decoding (s)": f"{decode_s:.3f}",
            "speed ratio (ours / this)": f"{best[name][0] / best['ours'][0]:.2f}×",
            "same predicted text as ours": (
                f"{100 * np.mean([ours_text[k] == predictions[name][k] for k in ours_text]):.1f}%"
            ),
        }
    names = [name for name in sides if name != "ours"]
    print(
        "| | ours (lib) | "
        + " | ".join(f"{n} (transformers + utils_qa loop)" for n in names)
        + " |"
    )
    print("|---|" + "---:|" * len(sides))
    for key in rows["ours"]:
        values = [rows[name][key] for name in sides]
        if key.startswith("speed"):
            values = ["", *(f"**{v}**" for v in values[1:])]
        if key.startswith("same"):
            values = ["", *values[1:]]
        print(f"| {key} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
