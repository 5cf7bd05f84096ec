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


def _runner(model: torch.nn.Module, mixed_precision: str) -> torch.nn.Module:
    """What runs the forward: under bf16 a bf16 copy of the (unwrapped) weights, else the model."""
    return inference_copy(model) if mixed_precision == "bf16" else model


def _masked_logits(runner: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, end) float32 logits of one batch, -inf past each window's length."""
    start, end = runner(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    start = start.float().masked_fill(batch["attention_mask"] == 0, float("-inf"))
    end = end.float().masked_fill(batch["attention_mask"] == 0, float("-inf"))
    return start, end


def _by_window(rows, starts, ends, n_windows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter batch logits (in loader order) into (n_windows, T_max) matrices."""
    width = max((s.shape[1] for s in starts), default=1)
    start_all = torch.full((n_windows, width), float("-inf"))
    end_all = torch.full((n_windows, width), float("-inf"))
    for index, start, end in zip(rows, starts, ends, strict=True):
        start_all[index, : start.shape[1]] = start
        end_all[index, : end.shape[1]] = end
    return start_all, end_all


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
        runner = _runner(accelerator.unwrap_model(model, keep_torch_compile=False), "bf16")
    rows, starts, ends = [], [], []
    for batch in loader:
        start, end = _masked_logits(runner, batch)
        # Processes padded their batches to different lengths: pad to a common T, then gather.
        start = accelerator.pad_across_processes(start, dim=1, pad_index=float("-inf"))
        end = accelerator.pad_across_processes(end, dim=1, pad_index=float("-inf"))
        index, start, end = accelerator.gather_for_metrics((batch["window_index"], start, end))
        rows.append(index.cpu())
        starts.append(start.cpu())
        ends.append(end.cpu())
    model.train(was_training)
    return _by_window(rows, starts, ends, n_windows)


@torch.inference_mode()
def local_logits(
    runner: torch.nn.Module, loader: DataLoader, device: torch.device, n_windows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`predict_logits` for one process on its own windows: no collectives, so processes may
    run different numbers of batches (sharded prediction). `runner` is in eval mode on `device`
    (e.g. from `inference_runner`); the loader is not prepared."""
    rows, starts, ends = [], [], []
    for batch in loader:
        batch = {key: value.to(device) for key, value in batch.items()}
        start, end = _masked_logits(runner, batch)
        rows.append(batch["window_index"].cpu())
        starts.append(start.cpu())
        ends.append(end.cpu())
    return _by_window(rows, starts, ends, n_windows)


def inference_runner(
    model: torch.nn.Module, mixed_precision: str, device: torch.device
) -> torch.nn.Module:
    """The module `local_logits` runs: the model's forward in the given precision, as
    `predict_logits` under an Accelerator with that precision (bf16: a bf16 copy; fp16:
    autocast; no: fp32)."""
    model = model.to(device).eval()
    if mixed_precision == "fp16":
        return _Autocast(model, device.type, torch.float16)
    return _runner(model, mixed_precision)


class _Autocast(torch.nn.Module):
    """`module` run under torch.autocast (what Accelerate's prepare does for fp16)."""

    def __init__(self, module: torch.nn.Module, device_type: str, dtype: torch.dtype):
        super().__init__()
        self.module, self.device_type, self.dtype = module, device_type, dtype

    def forward(self, *args):
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.module(*args)
