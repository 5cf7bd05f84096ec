"""CPU training speed-ups, opted into in one place: `apply_cpu_speedups(model)`.

The model file (lib/model/bert.py) is the plain architecture: `nn.Dropout` and SDPA. On a CPU, three
things make training measurably faster (fwd+bwd on 2 cores, bench/encoder.py and bench/train.py;
the README's Benchmarks give the numbers), and this module applies all three:
- dropout draws its keep mask from 16 random bits per element instead of `bernoulli_`
  (`CpuDropout`; 2.4x faster for a bf16 (16, 256, 384) tensor);
- with attention dropout, attention is written out (matmul, softmax, matmul; `CpuSelfAttention`):
  SDPA's generic fallback for dropout on CPU is ~1.4x slower at T=384;
- freed host memory is kept for reuse (lib.model.host_memory.keep_freed_memory).
Modules are swapped by class, in place: the same parameters, the same state-dict names, the same
outputs in eval mode. The trainer applies them on CPU without torch.compile (inductor fuses its own
RNG and attention); GPUs keep PyTorch's kernels.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from lib.model.bert import BertSelfAttention
from lib.model.host_memory import keep_freed_memory

log = logging.getLogger("lib.model.cpu_speedups")


def random_keep_mask(shape: torch.Size, drop_p: float, device: torch.device):
    """Bernoulli(1 - p) keep mask from 16 random bits per element, and the p it really used.

    Why not bernoulli_: over a (B, nh, T, T) matrix on CPU it costs more than the attention
    GEMMs (README, Training details); one int64 draw gives four 16-bit lanes.
    p is rounded to a multiple of 1/65536 (0.1 -> 0.100006), and the caller rescales by it.
    """
    count = math.prod(shape)
    bits = torch.empty((count + 3) // 4, dtype=torch.int64, device=device)
    bits.random_(-(2**63), 2**63 - 1)  # all 64 bits uniform
    threshold = round(drop_p * 65536)
    lanes = bits.view(torch.int16)[:count].view(shape)  # each uniform on [-32768, 32767]
    return lanes >= threshold - 32768, threshold / 65536


class CpuDropout(nn.Dropout):
    """nn.Dropout with the cheaper keep mask of `random_keep_mask`; no parameters, so state dicts
    and isinstance checks are unchanged."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return super().forward(hidden)
        keep, drop_p = random_keep_mask(hidden.shape, self.p, hidden.device)
        return hidden * keep.to(hidden.dtype).mul_(1.0 / (1.0 - drop_p))


def written_out_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None,
    drop_p: float,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) with dropout on the probabilities, times v.

    The same computation as SDPA's. Scores and softmax are fp32 whatever the input dtype, as in
    SDPA's kernels: bf16 scores keep ~3 significant digits, which moves the probabilities by
    several percent (on the demo, bf16 scores in every layer cost 0.07 validation sentence_f1).
    """
    scale = query.shape[-1] ** -0.5
    wide = torch.promote_types(query.dtype, torch.float32)  # bf16/fp16 -> fp32, fp64 stays
    with torch.autocast(query.device.type, enabled=False):  # keep the fp32 matmul fp32
        scores = torch.matmul(
            query.to(wide) * scale, key.to(wide).transpose(-2, -1)
        )  # (B, nh, T, T)
        if attn_mask is not None:
            # In place, and outside autograd: matmul's backward needs its inputs, not its output,
            # and the fill needs no backward of its own: softmax's gradient is already exactly 0
            # where its output is (exp underflows to 0 at the masked positions).
            with torch.no_grad():
                scores.masked_fill_(~attn_mask, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        keep, drop_p = random_keep_mask(probs.shape, drop_p, probs.device)
        probs = torch.where(keep, probs, 0.0).to(value.dtype)
        # rescale the (B, nh, T, hd) output instead of the T-times larger probabilities
        return torch.matmul(probs, value) * (1.0 / (1.0 - drop_p))  # (B, nh, T, hd)


class CpuSelfAttention(BertSelfAttention):
    """Written-out attention when a backward pass follows and attention dropout is on; SDPA
    otherwise (its fused kernels win without dropout, and in inference)."""

    def attend(self, query, key, value, attn_mask, drop_p: float) -> torch.Tensor:
        if drop_p > 0 and torch.is_grad_enabled():
            return written_out_attention(query, key, value, attn_mask, drop_p)
        return super().attend(query, key, value, attn_mask, drop_p)


SWAPS = {nn.Dropout: CpuDropout, BertSelfAttention: CpuSelfAttention}


def apply_cpu_speedups(model: nn.Module) -> nn.Module:
    """Swap in the CPU modules (in place) and keep freed host memory; returns `model`."""
    swapped = 0
    for module in model.modules():
        faster = SWAPS.get(type(module))
        if faster is not None:
            module.__class__ = faster  # same attributes, only forward/attend differ
            swapped += 1
    kept = keep_freed_memory()
    log.info(
        "CPU speed-ups: %d modules swapped (lib/model/cpu_speedups.py)%s",
        swapped,
        ", freed host memory kept for reuse" if kept else "",
    )
    return model
