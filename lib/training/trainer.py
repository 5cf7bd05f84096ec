"""Fine-tuning: one Accelerate loop, `train(cfg) -> metrics` (DESIGN §7).

Set-up: data (lib.training.prepared_data), then Accelerate's order: seed → model → optimizer →
scheduler → one `prepare`. Gradient accumulation goes through `accelerator.accumulate`, mixed precision through
`Accelerator(mixed_precision=...)`, evaluation through `gather_for_metrics` (lib.evaluation.inference), and
checkpoints through `save_state`/`load_state` + `skip_first_batches`, so a run killed at any moment
resumes from its last checkpoint and ends where the uninterrupted run would have.

Batches are drawn as *effective* batches (batch_size × grad_accum windows, length-grouped) and cut
into micro-batches, so the windows of each optimizer step do not depend on how it is accumulated.
Windows without evidence can be subsampled per epoch (`train.no_answer_fraction`): with every post
asked about every symptom they are ~90% of the data and carry little signal each.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed
from tokenizers import Tokenizer
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lib.config import Config, dump_config, with_overrides
from lib.data.batching import TrainingBatches, WindowDataset, collate_windows
from lib.data.dataset import Dataset
from lib.data.features import Features
from lib.errors import RunError, UserError
from lib.evaluation.inference import eval_loader, predict_logits
from lib.evaluation.scoring import EvalResult, evaluate_examples
from lib.files import write_json_atomic, write_text_atomic
from lib.model.cpu_speedups import apply_cpu_speedups
from lib.model.pretrained import load_qa_model, save_qa_model
from lib.run_dir import (
    RunLock,
    TrainerState,
    checkpoint_tmp_path,
    claim_dir,
    finish_checkpoint,
    forget_model_files,
    read_trainer_state,
    remove_failed_start,
    remove_stale_temporaries,
    seal_model_files,
    sealed_step,
)
from lib.training.optimization import (
    linear_warmup_decay,
    new_accelerator,
    new_optimizer,
    resolve_mixed_precision,
)
from lib.training.prepared_data import DataCache, prepare_data
from lib.training.run_setup import preflight, resolve_run
from lib.training.step import RunningMean, TrainingError, training_step

log = logging.getLogger("lib.training.trainer")


def _dropout(value: float | str) -> float | None:
    return None if value == "checkpoint" else float(value)


def _add_file_log(run_dir: Path, main: bool) -> None:
    if not main:
        return
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("lib").addHandler(handler)
    logging.getLogger("lib").setLevel(logging.INFO)


def _close_file_log(run_dir: Path) -> None:
    """Detach the run's train.log however the run ended (a tuning process trains many runs)."""
    path = str((run_dir / "train.log").absolute())
    for handler in list(logging.getLogger("lib").handlers):
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == path:
            logging.getLogger("lib").removeHandler(handler)
            handler.close()


def train(
    cfg: Config,
    *,
    on_evaluate: Callable[[int, dict[str, float]], None] | None = None,
    data_cache: DataCache | None = None,
) -> dict:
    """Fine-tune, keep the best model in the run directory, return what metrics.json holds.

    `on_evaluate(step, val_metrics)` is called after every validation (tune.py reports to Optuna
    there and may raise optuna.TrialPruned to stop the run). `data_cache` (tune.py's, shared by
    its trials) reuses the data a previous run prepared from the same files and settings. A new
    run that fails before its first checkpoint leaves nothing behind, so the same command can
    simply be run again.
    """
    preflight(cfg)
    cfg, run_dir, resume_from = resolve_run(cfg)
    lock = RunLock()  # held by the main process from the moment the run folder is its own
    try:
        metrics = _train(cfg, run_dir, resume_from, on_evaluate, data_cache, lock)
    except BaseException:
        _close_file_log(run_dir)  # before its folder may go
        if resume_from is None and PartialState().is_main_process:
            remove_failed_start(run_dir)
        raise
    finally:
        lock.release()
    _close_file_log(run_dir)
    return metrics


@dataclass
class TrainingRun:
    """Everything set up for one run: the prepared model, optimizer and loaders, the data they
    read, and where the run is written. Built once by `_set_up`; the loop only reads it."""

    cfg: Config
    run_dir: Path
    dataset: Dataset
    features: dict[str, Features]  # per split
    sentences: dict[str, list[tuple[int, int]]]  # per post_id
    tokenizer: Tokenizer
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: DataLoader
    eval_loaders: dict[str, DataLoader]
    total_steps: int
    # When set-up finished: history's elapsed_s counts wall seconds from here (in this
    # process: a resumed run starts again from 0).
    started: float = field(default_factory=time.perf_counter)


def _train(
    cfg: Config,
    run_dir: Path,
    resume_from: Path | None,
    on_evaluate,
    data_cache: DataCache | None,
    lock: RunLock,
) -> dict:
    run = _set_up(cfg, run_dir, resume_from, data_cache, lock)
    trainer = TrainerState()
    if resume_from is not None:
        remove_stale_temporaries(run_dir)
        run.accelerator.load_state(str(resume_from))
        trainer = read_trainer_state(resume_from)
        log.info("resumed from %s (step %d)", resume_from, trainer.global_step)
    loss_since_eval = _loop(run, trainer, on_evaluate)
    if not trainer.history or trainer.history[-1]["step"] != trainer.global_step:
        # a run cut by max_steps or early stop mid-epoch still scores its last step
        _validate(run, trainer, loss_since_eval, on_evaluate)
        _checkpoint(run, trainer)
    metrics = _finish(run, trainer)
    run.accelerator.end_training()
    return metrics


# ---------------------------------------------------------------- set-up


def _loaders(cfg: Config, features: dict[str, Features], pad_id: int):
    """(training loader, {"val"/"test": evaluation loader})."""
    t = cfg.train
    collate = partial(
        collate_windows, pad_id=pad_id, pad_to_multiple_of=cfg.features.pad_to_multiple_of
    )
    micro = TrainingBatches(
        features["train"],
        batch_size=t.batch_size,
        grad_accum=t.grad_accum,
        no_answer_fraction=t.no_answer_fraction,
        seed=t.seed,
    )
    train_loader = DataLoader(
        WindowDataset(features["train"], with_labels=True),
        batch_sampler=micro,
        collate_fn=collate,
        # Its own generator: starting an epoch must not draw from the RNG that dropout uses,
        # or a resumed run would see different dropout masks than the uninterrupted one.
        generator=torch.Generator().manual_seed(t.seed),
    )
    eval_loaders = {
        name: eval_loader(
            feats,
            batch_size=t.eval_batch_size,
            pad_id=pad_id,
            pad_to_multiple_of=cfg.features.pad_to_multiple_of,
        )
        for name, feats in features.items()
        if name in ("val", "test")
    }
    return train_loader, eval_loaders


def _model_and_optimizer(cfg: Config, batches_per_epoch: int, num_processes: int):
    t = cfg.train
    model = load_qa_model(
        cfg.model.name,
        dropout=_dropout(cfg.model.dropout),
        attention_dropout=_dropout(cfg.model.attention_dropout),
        gradient_checkpointing=cfg.model.gradient_checkpointing,
    )
    optimizer = new_optimizer(model, lr=t.lr, weight_decay=t.weight_decay)
    # The schedule is laid out in single-process optimizer steps: after `prepare` each of N
    # processes takes 1/N of them and AcceleratedScheduler advances the schedule N times a step.
    schedule_steps = t.epochs * math.ceil(batches_per_epoch / t.grad_accum)
    if t.max_steps:
        schedule_steps = min(schedule_steps, t.max_steps * num_processes)
    scheduler = linear_warmup_decay(
        optimizer, warmup_steps=round(t.warmup_ratio * schedule_steps), total_steps=schedule_steps
    )
    return model, optimizer, scheduler


def _open_run_dir(
    cfg: Config, run_dir: Path, dataset: Dataset, resuming: bool, lock: RunLock
) -> None:
    """Everything checked: now the run directory is written (by the main process, which holds
    its lock until the run ends)."""
    state = PartialState()
    if state.is_main_process:
        if not resuming:
            claim_dir(run_dir, "run")
        lock.acquire(run_dir)
    state.wait_for_everyone()
    _add_file_log(run_dir, state.is_main_process)
    if state.is_main_process and not resuming:
        write_text_atomic(run_dir / "config.toml", dump_config(cfg))
        write_json_atomic(run_dir / "alignment.json", dataset.report.to_json())


def _set_up(
    cfg: Config,
    run_dir: Path,
    resume_from: Path | None,
    data_cache: DataCache | None,
    lock: RunLock,
) -> TrainingRun:
    """Data -> seed -> model -> optimizer -> scheduler -> one `prepare` (Accelerate's order)."""
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    state = PartialState()
    # Data first: a bad corpus or model name fails here, before anything is written.
    data = data_cache.get(cfg) if data_cache is not None else prepare_data(cfg)
    # Seeded after the data: preparing it may draw random numbers (the alignment's sentence
    # encoder is built before its weights load) and a cached preparation draws none, so the
    # model's initialisation must not depend on which happened.
    set_seed(t.seed)
    dataset, tokenizer, features = data.dataset, data.windows.tokenizer, data.windows.features
    train_loader, eval_loaders = _loaders(cfg, features, tokenizer.token_to_id("[PAD]"))
    model, optimizer, scheduler = _model_and_optimizer(cfg, len(train_loader), state.num_processes)
    _open_run_dir(cfg, run_dir, dataset, resume_from is not None, lock)
    log.info("data: %s", {k: len(v) for k, v in dataset.splits.items()})
    log.info("windows: %s", {k: len(v) for k, v in features.items()})

    precision = resolve_mixed_precision(t.mixed_precision, state.device)
    accelerator = new_accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=t.grad_accum,
        log_with=t.log_with or None,
        project_dir=str(run_dir),
        dynamo_backend="inductor" if t.compile else "no",
    )
    if accelerator.device.type == "cpu" and not t.compile:
        apply_cpu_speedups(model)  # the one opt-in; inductor brings its own kernels
    model, optimizer, train_loader, scheduler, *prepared = accelerator.prepare(
        model, optimizer, train_loader, scheduler, *eval_loaders.values()
    )
    steps_per_epoch = math.ceil(len(train_loader) / t.grad_accum)  # per process, from here on
    total_steps = t.epochs * steps_per_epoch
    if t.max_steps:
        total_steps = min(total_steps, t.max_steps)
    if t.log_with:
        accelerator.init_trackers(run_dir.name, config={"run_dir": str(run_dir)})
    log.info(
        "precision=%s processes=%d steps/epoch=%d total steps=%d",
        precision,
        accelerator.num_processes,
        steps_per_epoch,
        total_steps,
    )
    return TrainingRun(
        cfg=cfg,
        run_dir=run_dir,
        dataset=dataset,
        features=features,
        sentences=data.sentences,
        tokenizer=tokenizer,
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=train_loader,
        eval_loaders=dict(zip(eval_loaders, prepared, strict=True)),
        total_steps=total_steps,
    )


# ---------------------------------------------------------------- validation and checkpoints


def _evaluate(run: TrainingRun, split: str, tune: bool, threshold: float | None = None):
    """Logits -> spans -> (threshold) -> metrics on one split."""
    cfg = run.cfg
    # Evaluation must not move the RNG streams that dropout and batch order use.
    with torch.random.fork_rng(devices=[]):
        start, end = predict_logits(
            run.model, run.eval_loaders[split], run.accelerator, len(run.features[split])
        )
    decode = (
        cfg.decode
        if threshold is None
        else with_overrides(cfg, {"decode.null_threshold": threshold}).decode
    )
    return evaluate_examples(
        run.dataset.splits[split],
        run.features[split],
        start,
        end,
        decode_cfg=decode,
        sentences=run.sentences,
        metric=cfg.train.metric,
        tune_threshold=tune,
    )


def _save_best(run: TrainingRun, trainer: TrainerState, result: EvalResult) -> None:
    """The best model so far, with the threshold it was scored with, sealed by a manifest."""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    best_cfg = with_overrides(run.cfg, {"decode.null_threshold": result.null_threshold})
    forget_model_files(run.run_dir)  # until sealed, no half-saved model is accepted
    model = accelerator.unwrap_model(run.model, keep_torch_compile=False)
    save_qa_model(model, run.tokenizer, run.run_dir)
    write_text_atomic(run.run_dir / "config.toml", dump_config(best_cfg))
    write_json_atomic(
        run.run_dir / "metrics.json", {"best_step": trainer.best_step, "val": result.metrics}
    )
    seal_model_files(run.run_dir, trainer.best_step)


def _validate(run: TrainingRun, trainer: TrainerState, loss: RunningMean, on_evaluate) -> None:
    """Score the validation split; keep the model when it improves; early stopping."""
    t = run.cfg.train
    result = _evaluate(run, "val", tune=run.cfg.decode.tune_null_threshold)
    if t.metric not in result.metrics:  # a ranking mean needs one gold evidence sentence
        raise UserError(
            f"train.metric {t.metric} is undefined on this validation split: it has no gold "
            "evidence sentence; choose sentence_f1 or another split"
        )
    value = result.metrics[t.metric]
    improved = trainer.best_metric is None or value > trainer.best_metric
    trainer.history.append(
        {
            "step": trainer.global_step,
            "epoch": trainer.epoch,
            "train_loss": loss.mean(),
            t.metric: value,
            "elapsed_s": time.perf_counter() - run.started,  # validation included
        }
    )
    loss.reset()
    best = " (best)" if improved else ""
    log.info("step %d: val %s=%.4f%s", trainer.global_step, t.metric, value, best)
    if improved:
        trainer.best_metric, trainer.best_step = value, trainer.global_step
        trainer.best_threshold, trainer.best_val = result.null_threshold, result.metrics
        trainer.evals_without_improvement = 0
        _save_best(run, trainer, result)
    else:
        trainer.evals_without_improvement += 1
        trainer.stopped_early = bool(t.patience) and trainer.evals_without_improvement >= t.patience
    val_metrics = {f"val/{k}": v for k, v in result.metrics.items()}
    run.accelerator.log(val_metrics, step=trainer.global_step)
    if on_evaluate is not None:
        on_evaluate(trainer.global_step, result.metrics)


def _checkpoint(run: TrainingRun, trainer: TrainerState) -> None:
    tmp = checkpoint_tmp_path(run.run_dir, trainer.global_step)
    run.accelerator.save_state(str(tmp))
    run.accelerator.wait_for_everyone()
    if run.accelerator.is_main_process:
        keep = run.cfg.train.keep_checkpoints
        finish_checkpoint(run.run_dir, trainer.global_step, trainer, keep)
    run.accelerator.wait_for_everyone()


# ---------------------------------------------------------------- the loop


@dataclass
class Progress:
    """The progress bar and what it shows; not part of the resumable state."""

    bar: tqdm
    started: float
    seen: int = 0  # windows trained on in this process's lifetime, all processes

    def step(self, loss: torch.Tensor, lr: float) -> None:
        self.bar.set_postfix(
            loss=f"{loss.item():.3f}",
            lr=f"{lr:.2e}",
            ex_s=f"{self.seen / (time.perf_counter() - self.started):.1f}",
            refresh=False,  # update() redraws, at most every mininterval
        )
        self.bar.update(1)


def _loop(run: TrainingRun, trainer: TrainerState, on_evaluate) -> RunningMean:
    """Epochs of optimizer steps from wherever `trainer` says the run is; returns the training
    loss accumulated since the last validation."""
    t, accelerator = run.cfg.train, run.accelerator
    progress = Progress(
        bar=tqdm(
            total=run.total_steps,
            initial=trainer.global_step,
            desc="train",
            disable=not accelerator.is_main_process,
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,  # log files: a line per 30 s
        ),
        started=time.perf_counter(),
    )
    loss_since_eval = RunningMean()
    run.model.train()
    done = trainer.stopped_early or trainer.global_step >= run.total_steps
    while not done and trainer.epoch < t.epochs:
        run.train_loader.set_epoch(trainer.epoch)  # epoch e's batch order is fixed by (seed, e)
        loader = run.train_loader
        if trainer.batches_in_epoch:
            loader = accelerator.skip_first_batches(run.train_loader, trainer.batches_in_epoch)
        for batch in loader:
            loss = _step(run, trainer, batch)
            loss_since_eval.add(loss)
            progress.seen += batch["input_ids"].shape[0] * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            trainer.global_step += 1
            lr = run.scheduler.get_last_lr()[0]
            progress.step(loss, lr)
            accelerator.log({"train/loss": loss.item(), "train/lr": lr}, step=trainer.global_step)
            if t.eval_every and trainer.global_step % t.eval_every == 0:
                _validate(run, trainer, loss_since_eval, on_evaluate)
            if t.checkpoint_every and trainer.global_step % t.checkpoint_every == 0:
                _checkpoint(run, trainer)
            if trainer.stopped_early or (t.max_steps and trainer.global_step >= t.max_steps):
                done = True
                break
        else:  # the epoch ran to its end
            trainer.epoch += 1
            trainer.batches_in_epoch = 0
            _validate(run, trainer, loss_since_eval, on_evaluate)
            _checkpoint(run, trainer)
            done = trainer.stopped_early
    progress.bar.close()
    return loss_since_eval


def _step(run: TrainingRun, trainer: TrainerState, batch: dict) -> torch.Tensor:
    """One micro-batch: forward, backward, and (when the accumulation is complete) the update."""
    t = run.cfg.train
    try:
        loss = training_step(
            batch,
            model=run.model,
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            accelerator=run.accelerator,
            span_loss=t.span_loss,
            max_grad_norm=t.max_grad_norm,
        )
    except TrainingError as error:
        raise TrainingError(
            f"{error} at step {trainer.global_step + 1} (epoch {trainer.epoch + 1}); "
            "try a lower train.lr or train.mixed_precision=no"
        ) from None
    trainer.batches_in_epoch += 1
    return loss


def _finish(run: TrainingRun, trainer: TrainerState) -> dict:
    """Reload the best weights, score the test split with the validation-tuned threshold; the
    best model's validation metrics and threshold come from the trainer's state."""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    if sealed_step(run.run_dir) != trainer.best_step:
        # A kill while the best model was being rewritten, and the resumed run never reached that
        # step's model again: the files on disk are neither it nor the one before.
        raise RunError(
            f"{run.run_dir}: the best model (step {trainer.best_step}) is not on disk complete: "
            "the run was stopped while saving it and did not save it again after resuming; "
            "train again"
        )
    best = load_qa_model(run.run_dir, require_head=True)
    accelerator.unwrap_model(run.model, keep_torch_compile=False).load_state_dict(best.state_dict())
    metrics = {
        "best_step": trainer.best_step,
        "metric": run.cfg.train.metric,
        "null_threshold": trainer.best_threshold,
        "steps": trainer.global_step,
        "stopped_early": trainer.stopped_early,
        "history": trainer.history,
        "val": trainer.best_val,
    }
    if "test" in run.features:
        metrics["test"] = _evaluate(
            run, "test", tune=False, threshold=trainer.best_threshold
        ).metrics
    if accelerator.is_main_process:
        write_json_atomic(run.run_dir / "metrics.json", metrics)
    log.info(
        "best %s=%.4f at step %d", run.cfg.train.metric, trainer.best_metric, trainer.best_step
    )
    metrics["run_dir"] = str(run.run_dir)
    return metrics
