"""The span-marginal loss and the optimizer set-up."""

import math

import pytest
import torch
import torch.nn.functional as F

from lib.errors import UserError
from lib.training.loss import span_marginal_loss
from lib.training.optimization import (
    evaluation_precision,
    linear_warmup_decay,
    new_optimizer,
    parameter_groups,
    resolve_mixed_precision,
)


def _logits(b=3, t=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, generator=g), torch.randn(b, t, generator=g)


def test_one_span_equals_huggingface_loss():
    start, end = _logits()
    mask = torch.ones(3, 13, dtype=torch.long)
    s = torch.tensor([[2], [0], [5]])
    e = torch.tensor([[4], [0], [9]])
    ours = span_marginal_loss(start, end, mask, s, e)
    theirs = (F.cross_entropy(start, s[:, 0]) + F.cross_entropy(end, e[:, 0])) / 2
    torch.testing.assert_close(ours, theirs)


def test_several_spans_marginalise():
    start, end = _logits(b=1)
    mask = torch.ones(1, 13, dtype=torch.long)
    s, e = torch.tensor([[2, 7, -1]]), torch.tensor([[4, 8, -1]])
    ps, pe = start.softmax(-1)[0], end.softmax(-1)[0]
    expected = -math.log(ps[2] * pe[4] + ps[7] * pe[8]) / 2
    assert span_marginal_loss(start, end, mask, s, e).item() == pytest.approx(expected, rel=1e-5)
    # marginalising is easier than either span alone: the loss is below both single-span losses
    one = span_marginal_loss(start, end, mask, s[:, :1], e[:, :1])
    assert span_marginal_loss(start, end, mask, s, e) < one


def test_padding_is_masked_out():
    start, end = _logits(b=1)
    mask = torch.ones(1, 13, dtype=torch.long)
    mask[0, 9:] = 0
    s, e = torch.tensor([[1]]), torch.tensor([[3]])
    base = span_marginal_loss(start, end, mask, s, e)
    start2, end2 = start.clone(), end.clone()
    start2[0, 9:] += 100.0  # huge logits on padding change nothing
    end2[0, 9:] -= 50.0
    torch.testing.assert_close(span_marginal_loss(start2, end2, mask, s, e), base)
    expected = (F.cross_entropy(start[:, :9], s[:, 0]) + F.cross_entropy(end[:, :9], e[:, 0])) / 2
    torch.testing.assert_close(base, expected)


def test_every_parameter_in_exactly_one_group():
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.LayerNorm(7), torch.nn.Linear(7, 3))
    model.LayerNorm = torch.nn.LayerNorm(3)  # named like BERT's
    decay, no_decay = parameter_groups(model, 0.01)
    ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert len(set(ids)) == len(ids)
    assert {p.shape for p in decay["params"]} == {torch.Size([7, 5]), torch.Size([3, 7])}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0


def test_optimizer_is_fused_adamw_and_steps_like_the_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.LayerNorm(7))
    reference = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.LayerNorm(7))
    reference.load_state_dict(model.state_dict())
    fused = new_optimizer(model, lr=0.1, weight_decay=0.01)
    loop = torch.optim.AdamW(parameter_groups(reference, 0.01), lr=0.1, foreach=False)
    assert fused.defaults["fused"] is True
    assert [g["weight_decay"] for g in fused.param_groups] == [0.01, 0.0]
    for _ in range(3):
        for net, opt in ((model, fused), (reference, loop)):
            net(torch.ones(2, 5)).square().sum().backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_linear_warmup_then_decay():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_warmup_decay(opt, warmup_steps=4, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4:] == pytest.approx([1.0 - i / 8 for i in range(8)])
    assert opt.param_groups[0]["lr"] == 0.0


def test_auto_precision_on_cpu_is_fp32():
    assert resolve_mixed_precision("auto", torch.device("cpu")) == "no"
    assert resolve_mixed_precision("bf16", torch.device("cpu")) == "bf16"


def test_a_precision_the_device_cannot_run_is_refused_or_replaced():
    """fp16 on a CPU would silently run in fp32: asked for, it is a one-line error naming the
    setting; a run trained in fp16 (on a GPU) is scored here in the device's own precision."""
    cpu = torch.device("cpu")
    with pytest.raises(UserError, match=r"^train\.mixed_precision=fp16 needs a GPU"):
        resolve_mixed_precision("fp16", cpu)
    with pytest.raises(UserError, match=r"^--precision=fp16"):
        evaluation_precision("fp16", "no", cpu)
    assert evaluation_precision(None, "fp16", cpu) == "no"
    assert evaluation_precision(None, "bf16", cpu) == "bf16"
    assert evaluation_precision("no", "bf16", cpu) == "no"


def test_mean_combination_averages_the_span_losses():
    start, end = _logits(b=1)
    mask = torch.ones(1, 13, dtype=torch.long)
    s, e = torch.tensor([[2, 7, -1]]), torch.tensor([[4, 8, -1]])
    ls, le = start.log_softmax(-1)[0], end.log_softmax(-1)[0]
    expected = -((ls[2] + le[4]) + (ls[7] + le[8])).item() / 2 / 2
    got = span_marginal_loss(start, end, mask, s, e, combine="mean")
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # with one span both combinations are the Hugging Face loss
    one = span_marginal_loss(start, end, mask, s[:, :1], e[:, :1], combine="mean")
    torch.testing.assert_close(one, span_marginal_loss(start, end, mask, s[:, :1], e[:, :1]))
    # and the mean is never below the marginal (log-sum-exp >= mean of logs)
    assert got >= span_marginal_loss(start, end, mask, s, e)
