"""The training objective: span log-likelihood marginalised over every gold span in a window.

A window can hold several evidence sentences for one symptom. Rather than duplicating the window
once per span (a copy per answer would teach each copy that the others are wrong), the loss looks
at all of them at once. `combine="marginal"` maximises the probability of pointing at *any*:

    loss = -log sum_k p_start(s_k) * p_end(e_k)        (halved, as BertForQuestionAnswering halves
                                                        start CE + end CE)

With one gold span this is exactly Hugging Face's `(CE(start) + CE(end)) / 2`; windows with no span
inside point at [CLS] (s = e = 0). Padding positions are masked out of both softmaxes.

`combine="mean"` instead averages -log p(s_k, e_k) over the spans: the model must score *every*
evidence span high, not just one -- what multi-span decoding (decode.multi_span) needs, since the
marginal is already satisfied when one span takes all the mass. Both cost one forward pass.
"""

from __future__ import annotations

import torch


def span_marginal_loss(
    start_logits: torch.Tensor,  # (B, T)
    end_logits: torch.Tensor,  # (B, T)
    attention_mask: torch.Tensor,  # (B, T), 1 = real token
    start_positions: torch.Tensor,  # (B, K) gold first tokens, -1 = no span in this slot
    end_positions: torch.Tensor,  # (B, K) gold last tokens, -1 = no span in this slot
    *,
    combine: str = "marginal",  # training's default is train.span_loss = "mean"
) -> torch.Tensor:
    """Mean over the batch of -log sum_k p(s_k, e_k) / 2 ("marginal") or of
    -mean_k log p(s_k, e_k) / 2 ("mean"), in float32."""
    pad = attention_mask == 0
    log_p_start = start_logits.float().masked_fill(pad, float("-inf")).log_softmax(-1)  # (B, T)
    log_p_end = end_logits.float().masked_fill(pad, float("-inf")).log_softmax(-1)  # (B, T)
    valid = start_positions >= 0  # (B, K)
    assert bool(valid[:, 0].all()), "every window needs at least one target (CLS when none)"
    starts = start_positions.clamp(min=0)
    ends = end_positions.clamp(min=0)
    pair = log_p_start.gather(1, starts) + log_p_end.gather(1, ends)  # (B, K)
    if combine == "mean":
        per_window = -pair.masked_fill(~valid, 0.0).sum(-1) / valid.sum(-1)  # (B,)
    else:
        assert combine == "marginal", combine
        per_window = -pair.masked_fill(~valid, float("-inf")).logsumexp(-1)  # (B,)
    return (per_window / 2).mean()
