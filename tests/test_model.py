"""lib/model.py: parity with transformers' BertModel, attention, dropout, checkpointing."""

from __future__ import annotations

import math

import pytest
import torch
import transformers
from tiny import TINY, max_diff_on_tokens, random_batch

from lib import load_encoder, load_tokenizer
from lib.model import (
    BertConfig,
    BertForQuestionAnswering,
    BertModel,
    Dropout,
    random_keep_mask,
    use_written_out_attention,
    written_out_attention,
)

PAIRS = [
    ("How do you sleep?", "I can't sleep at night; I wake up at 4am and lie there until dawn."),
    ("Tired?", "Exhausted."),
    ("Appetite?", "I barely eat — café crêpes don't tempt me, nothing does, I've lost 5 kg 😞."),
    ("Mood", "Everything feels pointless and grey, every single day, since my dad died in May."),
    ("", "I feel worthless."),
]


def batch_from(encodings) -> dict[str, torch.Tensor]:
    """Right-padded (B, T) tensors from tokenizers encodings."""
    length = max(len(e.ids) for e in encodings)
    ids = torch.zeros(len(encodings), length, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        types[row, : len(e.ids)] = torch.tensor(e.type_ids)
        mask[row, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def test_minilm_matches_transformers(minilm_dir):
    tokenizer = load_tokenizer("minilm-l6")
    batch = batch_from(tokenizer.encode_batch(PAIRS))
    assert batch["token_type_ids"].any() and not batch["attention_mask"].all()
    ours = load_encoder("minilm-l6")
    theirs = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="eager")
    theirs.eval()
    with torch.no_grad():
        diff = max_diff_on_tokens(
            ours(**batch), theirs(**batch).last_hidden_state, batch["attention_mask"]
        )
    assert diff <= 1e-5


def test_tiny_random_bert_matches_transformers(tiny_bert_dir):
    ours = load_encoder(tiny_bert_dir)
    theirs = transformers.BertModel.from_pretrained(tiny_bert_dir, attn_implementation="eager")
    theirs.eval()
    batch = random_batch(ours.config)
    with torch.no_grad():
        expected = theirs(**batch).last_hidden_state
        assert max_diff_on_tokens(ours(**batch), expected, batch["attention_mask"]) <= 1e-5
        # token_type_ids omitted = all zeros, as in transformers
        no_types = {k: v for k, v in batch.items() if k != "token_type_ids"}
        expected = theirs(**no_types).last_hidden_state
        assert max_diff_on_tokens(ours(**no_types), expected, batch["attention_mask"]) <= 1e-5


def test_padding_content_and_full_mask_do_not_matter():
    torch.manual_seed(0)
    model = BertModel(TINY).eval()
    batch = random_batch(TINY)
    changed = dict(batch, input_ids=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 7))
    with torch.no_grad():
        out, out_changed = model(**batch), model(**changed)
        assert max_diff_on_tokens(out, out_changed, batch["attention_mask"]) <= 1e-6
        ones = torch.ones_like(batch["attention_mask"])
        assert torch.equal(model(batch["input_ids"], ones), model(batch["input_ids"]))


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
    dropout = Dropout(0.25).train()
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
    ("dtype", "drop_p", "grad", "expected"),
    [
        (torch.float32, 0.0, True, False),  # no dropout: SDPA's fused kernels
        (torch.bfloat16, 0.0, True, False),
        (torch.float32, 0.1, True, True),  # SDPA with dropout takes a slow path
        (torch.bfloat16, 0.1, True, True),
        (torch.bfloat16, 0.1, False, False),  # no backward pass: SDPA's forward is faster
    ],
)
def test_written_out_attention_dispatch(dtype, drop_p, grad, expected):
    query = torch.zeros(1, 1, 13, 4, dtype=dtype)
    with torch.set_grad_enabled(grad):
        assert use_written_out_attention(query, drop_p) is expected


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


def loss_and_grads(model: BertForQuestionAnswering, batch, seed: int):
    torch.manual_seed(seed)
    start, end = model(**batch)
    weights = torch.linspace(-1, 1, start.numel()).view_as(start)
    loss = (start * weights).sum() + (end * weights.flip(-1)).sum()
    model.zero_grad()
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_activation_checkpointing_changes_nothing(dropout):
    torch.manual_seed(0)
    plain = BertForQuestionAnswering(TINY, dropout=dropout, attention_dropout=dropout).train()
    recomputed = BertForQuestionAnswering(
        TINY, gradient_checkpointing=True, dropout=dropout, attention_dropout=dropout
    ).train()
    recomputed.load_state_dict(plain.state_dict())
    batch = random_batch(TINY)
    loss, grads = loss_and_grads(plain, batch, seed=11)
    loss_ckpt, grads_ckpt = loss_and_grads(recomputed, batch, seed=11)
    assert abs(loss.item() - loss_ckpt.item()) <= 1e-6
    for name, grad in grads.items():
        assert (grad - grads_ckpt[name]).abs().max().item() <= 1e-6, name


def test_dropout_only_in_train_mode():
    torch.manual_seed(0)
    model = BertForQuestionAnswering(TINY, dropout=0.3, attention_dropout=0.3)
    assert model.config.hidden_dropout_prob == 0.3  # the override reached the config
    batch = random_batch(TINY)
    with torch.no_grad():
        model.eval()
        first, second = model(**batch)[0], model(**batch)[0]
        assert torch.equal(first, second)
        model.train()
        assert not torch.equal(model(**batch)[0], model(**batch)[0])
        no_dropout = BertForQuestionAnswering(TINY).train()
        no_dropout.load_state_dict(model.state_dict())
        assert (no_dropout(**batch)[0] - first).abs().max().item() <= 1e-6


def test_qa_logits_are_float32_per_token():
    torch.manual_seed(0)
    model = BertForQuestionAnswering(TINY).eval()
    assert model.qa_outputs.bias.abs().sum() == 0
    batch = random_batch(TINY)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        start, end = model(**batch)
    assert start.shape == end.shape == (3, 13)
    assert start.dtype == end.dtype == torch.float32


def test_config_round_trip_ignores_unknown_keys():
    values = {**TINY.to_dict(), "architectures": ["BertModel"], "model_type": "bert"}
    assert BertConfig.from_dict(values) == TINY


def test_extra_padding_changes_no_output_or_gradient():
    """Gradient accumulation over differently padded micro-batches relies on this."""
    torch.manual_seed(0)
    model = BertForQuestionAnswering(TINY).train()
    batch = random_batch(TINY)
    padded = {
        name: torch.nn.functional.pad(tensor, (0, 8), value=0) for name, tensor in batch.items()
    }
    results = []
    for inputs in (batch, padded):
        start, end = model(**inputs)
        real = inputs["attention_mask"].bool()
        weights = torch.arange(real.sum().item(), dtype=torch.float32)
        loss = (start[real] * weights).sum() + (end[real] * weights.flip(0)).sum()
        model.zero_grad()
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss, grads), (loss_padded, grads_padded) = results
    assert abs(loss - loss_padded) <= 1e-4 * max(1.0, abs(loss))
    for name, grad in grads.items():  # fp32 rounding only, relative to the gradient's size
        scale = max(1.0, grad.abs().max().item())
        assert (grad - grads_padded[name]).abs().max().item() <= 1e-6 * scale, name
