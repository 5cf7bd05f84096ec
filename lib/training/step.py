"""One training micro-step through Accelerate, and the bookkeeping around it (DESIGN §7).

`training_step` is the body of lib.training.trainer.train's loop, a function of its own so that
bench/train.py times exactly the step that training runs. It follows Accelerate's gradient
accumulation pattern: everything inside `accelerator.accumulate(model)`, with the prepared
optimizer and scheduler skipping their steps on micro-batches that do not sync gradients.
"""

from __future__ import annotations

import torch

from lib.errors import RunError
from lib.training.loss import span_marginal_loss


class TrainingError(RunError):
    """Training cannot go on (e.g. the loss became NaN); the message says where and why."""


class RunningMean:
    """Mean of the micro-batch losses since the last reset, summed on device (no sync per step)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, value: torch.Tensor) -> None:
        self.total, self.count = self.total + value.float(), self.count + 1

    def mean(self) -> float | None:
        return float(self.total) / self.count if self.count else None


def training_step(
    batch: dict[str, torch.Tensor],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    accelerator,
    span_loss: str,
    max_grad_norm: float,
) -> torch.Tensor:
    """One micro-batch: forward, span loss, backward; on the last micro-batch of an accumulation
    window also clip, step the optimizer and the schedule (Accelerate's wrappers skip them on the
    others). Returns the detached loss; a non-finite loss raises TrainingError before backward,
    so the weights are never touched by it."""
    with accelerator.accumulate(model):
        start, end = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        loss = span_marginal_loss(
            start,
            end,
            batch["attention_mask"],
            batch["start_positions"],
            batch["end_positions"],
            combine=span_loss,
        )
        if not torch.isfinite(loss):
            raise TrainingError(f"loss is {loss.item()}")
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach()
