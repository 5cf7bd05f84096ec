"""Model -> logits: batched inference of a QA model over feature windows (DESIGN §4, §7).

Shared by training (validation/test) and evaluate.py, so both produce the same numbers to the last
digit. Windows are sorted by length and padded per batch; under `accelerate launch` each process
runs a shard and `gather_for_metrics` drops the duplicates the last uneven batch adds, after
`pad_across_processes` has made the variable-length logits stackable.

Under bf16 mixed precision, inference runs a bf16 copy of the weights rather than autocast (as
Hugging Face's `bf16_full_eval` does): no per-call weight casts, no fp32 residual stream to cast
back and forth, LayerNorm on half the bytes. Training keeps fp32 master weights under autocast.
How closely the two agree and how much faster it is: README, Training details and Benchmarks.
"""

from __future__ import annotations

import copy
from functools import partial

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from lib.data.batching import LengthGroupedBatchSampler, WindowDataset, collate_windows
from lib.data.features import Features


def eval_loader(features: Features, *, batch_size: int, pad_id: int, pad_to_multiple_of: int):
    """Windows in length order (few padded tokens, few distinct shapes), no labels."""
    dataset = WindowDataset(features, with_labels=False)
    sampler = LengthGroupedBatchSampler(features.lengths(), batch_size, shuffle=False, seed=0)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=partial(collate_windows, pad_id=pad_id, pad_to_multiple_of=pad_to_multiple_of),
        generator=torch.Generator(),  # iterating must not draw from the global RNG
    )


def inference_copy(model: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    """An eval-mode copy of `model` with parameters and buffers in `dtype`; the original and its
    fp32 weights are untouched. (Our callers evaluate between optimizer steps, when gradients
    have been set to None, so the deep copy carries none.)"""
    clone = copy.deepcopy(model)
    clone.zero_grad(set_to_none=True)
    return clone.to(dtype).eval().requires_grad_(False)


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, n_windows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, end) logits, each (n_windows, T_max) float32 on CPU, row i = window i.

    Positions past a window's length hold -inf. `loader` must already be prepared.
    """
    was_training = model.training
    model.eval()
    runner = model
    if accelerator.mixed_precision == "bf16":
        runner = inference_copy(accelerator.unwrap_model(model, keep_torch_compile=False))
    rows, starts, ends = [], [], []
    for batch in loader:
        start, end = runner(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        start = start.float().masked_fill(batch["attention_mask"] == 0, float("-inf"))
        end = end.float().masked_fill(batch["attention_mask"] == 0, float("-inf"))
        # Processes padded their batches to different lengths: pad to a common T, then gather.
        start = accelerator.pad_across_processes(start, dim=1, pad_index=float("-inf"))
        end = accelerator.pad_across_processes(end, dim=1, pad_index=float("-inf"))
        index, start, end = accelerator.gather_for_metrics((batch["window_index"], start, end))
        rows.append(index.cpu())
        starts.append(start.cpu())
        ends.append(end.cpu())
    model.train(was_training)
    width = max((s.shape[1] for s in starts), default=1)
    start_all = torch.full((n_windows, width), float("-inf"))
    end_all = torch.full((n_windows, width), float("-inf"))
    for index, start, end in zip(rows, starts, ends, strict=True):
        start_all[index, : start.shape[1]] = start
        end_all[index, : end.shape[1]] = end
    return start_all, end_all
