"""lib/model/cpu_speedups.py: the CPU modules compute what the plain ones do (statistics of dropout,
outputs of SDPA) and swap in without changing parameters, state dicts or eval-mode outputs."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import TINY, random_batch

from lib.model.bert import BertForQuestionAnswering
from lib.model.cpu_speedups import (
    CpuDropout,
    CpuSelfAttention,
    apply_cpu_speedups,
    random_keep_mask,
    written_out_attention,
)


def oracle_attention(query, key, value, padding, keep, drop_p):
    """The textbook formula in float64, one (batch, head) at a time."""
    out = torch.zeros(query.shape, dtype=torch.float64)
    for b in range(query.shape[0]):
        for h in range(query.shape[1]):
            q, k, v = (t[b, h].double() for t in (query, key, value))
            scores = q @ k.T / math.sqrt(q.shape[-1])
            scores[:, ~padding[b]] = -math.inf
            probs = torch.softmax(scores, dim=-1) * keep[b, h] / (1 - drop_p)
            out[b, h] = probs @ v
    return out


@pytest.mark.parametrize("drop_p", [0.0, 0.3])
def test_written_out_attention_matches_oracle(drop_p):
    generator = torch.Generator().manual_seed(1)
    query, key, value = torch.randn(3, 3, 4, 13, 7, generator=generator)  # (B, nh, T, hd) each
    padding = torch.ones(3, 13, dtype=torch.bool)
    padding[1, 9:] = False
    torch.manual_seed(5)
    keep, used_p = random_keep_mask(torch.Size((3, 4, 13, 13)), drop_p, torch.device("cpu"))
    torch.manual_seed(5)
    ours = written_out_attention(query, key, value, padding[:, None, None, :], drop_p)
    expected = oracle_attention(query, key, value, padding, keep, used_p)
    assert (ours.double() - expected).abs().max().item() <= 1e-5
    if drop_p == 0.0:
        sdpa = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=padding[:, None, None, :]
        )
        assert (ours - sdpa).abs().max().item() <= 1e-5


def test_written_out_attention_gradients():
    generator = torch.Generator().manual_seed(2)
    inputs = [torch.randn(2, 3, 5, 4, generator=generator, dtype=torch.float64) for _ in range(3)]
    for tensor in inputs:
        tensor.requires_grad_(True)
    padding = torch.tensor([[True] * 5, [True, True, True, False, False]])[:, None, None, :]

    def attention(q, k, v):
        torch.manual_seed(3)  # the same dropout mask on every call
        return written_out_attention(q, k, v, padding, 0.4)

    assert torch.autograd.gradcheck(attention, inputs)


@pytest.mark.parametrize("count", [1 << 20, 1001])
def test_keep_mask_rate(count):
    keep, used_p = random_keep_mask(torch.Size((count,)), 0.1, torch.device("cpu"))
    assert keep.shape == (count,) and keep.dtype == torch.bool
    assert abs(used_p - 0.1) < 1e-4
    tolerance = 5 * math.sqrt(0.09 / count)  # five standard deviations
    assert abs(keep.float().mean().item() - 0.9) < tolerance
    assert random_keep_mask(torch.Size((4, 5)), 0.0, torch.device("cpu"))[0].all()


def test_dropout_keeps_scales_and_passes_gradients():
    dropout = CpuDropout(0.25).train()
    hidden = torch.full((7, 11, 13), 2.0, requires_grad=True)
    torch.manual_seed(4)
    out = dropout(hidden)
    torch.manual_seed(4)
    keep, used_p = random_keep_mask(hidden.shape, 0.25, hidden.device)
    assert torch.equal(out, torch.where(keep, 2.0 / (1 - used_p), 0.0))
    out.sum().backward()
    assert torch.equal(hidden.grad, torch.where(keep, 1 / (1 - used_p), 0.0))
    assert 0.6 < keep.float().mean().item() < 0.9
    bf16 = torch.ones(5, 9, dtype=torch.bfloat16)
    assert dropout(bf16).dtype == torch.bfloat16
    assert torch.equal(dropout.eval()(hidden), hidden)
    assert dict(dropout.state_dict()) == {} and isinstance(dropout, torch.nn.Dropout)


@pytest.mark.parametrize(
    ("drop_p", "grad", "written_out"),
    [
        (0.0, True, False),  # no dropout: SDPA's fused kernels
        (0.1, True, True),  # SDPA with dropout takes a slow path on CPU
        (0.1, False, False),  # no backward pass: SDPA's forward is faster
    ],
)
def test_cpu_attention_dispatch(monkeypatch, drop_p, grad, written_out):
    import lib.model.cpu_speedups

    calls = []
    monkeypatch.setattr(
        lib.model.cpu_speedups, "written_out_attention", lambda *args: calls.append(args) or args[0]
    )
    attention = CpuSelfAttention(TINY)
    query = torch.zeros(1, 3, 13, 12)
    with torch.set_grad_enabled(grad):
        attention.attend(query, query, query, None, drop_p)
    assert bool(calls) is written_out


def test_written_out_attention_scores_in_fp32_for_bf16_inputs():
    """Sharp attention (scores up to ~36): bf16 scores would be off by ~0.04, fp32 ones stay
    within the bf16 rounding of the output, like SDPA's (~0.008 here)."""
    generator = torch.Generator().manual_seed(3)
    query, key, value = (
        (torch.randn(3, 4, 13, 16, generator=generator) * scale).to(torch.bfloat16)
        for scale in (3, 3, 1)
    )
    padding = torch.ones(3, 13, dtype=torch.bool)
    padding[1, 9:] = False
    keep = torch.ones(3, 4, 13, 13, dtype=torch.bool)
    expected = oracle_attention(query, key, value, padding, keep, 0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = written_out_attention(query, key, value, padding[:, None, None, :], 0.0)
    assert ours.dtype == torch.bfloat16
    assert (ours.double() - expected).abs().max().item() <= 0.02


def test_swap_keeps_parameters_state_dict_and_eval_outputs():
    torch.manual_seed(0)
    plain = BertForQuestionAnswering(TINY, dropout=0.2, attention_dropout=0.2).eval()
    fast = BertForQuestionAnswering(TINY, dropout=0.2, attention_dropout=0.2).eval()
    fast.load_state_dict(plain.state_dict())
    assert apply_cpu_speedups(fast) is fast
    kinds = {type(m) for m in fast.modules()}
    assert CpuDropout in kinds and CpuSelfAttention in kinds
    assert not any(type(m) is torch.nn.Dropout for m in fast.modules())
    assert fast.state_dict().keys() == plain.state_dict().keys()
    batch = random_batch(TINY)
    with torch.no_grad():
        for ours, theirs in zip(fast(**batch), plain(**batch), strict=True):
            assert torch.equal(ours, theirs)
    # in training, dropout is on: outputs differ from eval but keep their scale on average
    fast.train()
    with torch.no_grad():
        start, _ = fast(**batch)
    assert start.shape == (3, 13) and torch.isfinite(start).all()
