"""lib/evaluation/inference.py: predict_logits runs fp32 as is, bf16 on a bf16 copy of the weights."""

import dataclasses

import pytest
import torch
from tiny import TINY

from lib.evaluation.inference import inference_copy, predict_logits
from lib.model.bert import BertForQuestionAnswering
from lib.training.optimization import new_accelerator

LENGTHS = [(13, 9, 13), (7, 7, 5)]  # two batches of windows, padded per batch


def batches():
    generator = torch.Generator().manual_seed(0)
    out, index = [], 0
    for lengths in LENGTHS:
        width = max(lengths)
        mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
        ids = torch.randint(1, TINY.vocab_size, (len(lengths), width), generator=generator)
        out.append(
            {
                "input_ids": ids * mask,
                "attention_mask": mask,
                "token_type_ids": torch.zeros_like(ids),
                "window_index": torch.arange(index, index + len(lengths)),
            }
        )
        index += len(lengths)
    return out


def model():
    torch.manual_seed(0)
    return BertForQuestionAnswering(dataclasses.replace(TINY, initializer_range=0.3))


def direct_logits(net, dtype=None):
    """Each window alone, unpadded: the logits predict_logits must place in row i."""
    rows = []
    for batch in batches():
        for i, n in enumerate(batch["attention_mask"].sum(1).tolist()):
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=dtype is not None):
                start, end = net(batch["input_ids"][i : i + 1, :n])
            rows.append((start[0], end[0]))
    return rows


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_predict_logits_rows_padding_and_the_callers_model(precision):
    net = model().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    accelerator = new_accelerator(mixed_precision=precision)
    start, end = predict_logits(net, batches(), accelerator, n_windows=6)
    assert start.dtype == torch.float32 and start.shape == (6, 13)
    tolerance = 1e-5 if precision == "no" else 0.15  # bf16 weights: ~3 significant digits
    expected = direct_logits(net, None if precision == "no" else torch.bfloat16)
    for row, (s, e) in enumerate(expected):
        n = s.shape[0]
        assert (start[row, :n] - s).abs().max().item() <= tolerance
        assert (end[row, :n] - e).abs().max().item() <= tolerance
        assert torch.isinf(start[row, n:]).all() and torch.isinf(end[row, n:]).all()
    # the caller's model: still fp32, still training, weights untouched
    assert net.training
    for key, value in net.state_dict().items():
        assert value.dtype == before[key].dtype and torch.equal(value, before[key])


def test_bf16_runs_bf16_weights_not_autocast():
    net = model()
    copy = inference_copy(net)
    assert {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert not copy.training and not any(p.requires_grad for p in copy.parameters())
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    accelerator = new_accelerator(mixed_precision="bf16")
    start, _ = predict_logits(net, batches(), accelerator, n_windows=6)
    first = batches()[0]
    with torch.no_grad():
        pure, _ = copy(first["input_ids"], first["attention_mask"], first["token_type_ids"])
    real = first["attention_mask"].bool()
    assert torch.equal(start[:3][real], pure.float()[real])  # exactly the bf16 copy's numbers
