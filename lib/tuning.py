"""Hyper-parameter search: an Optuna study whose trials are calls of `train(cfg)` (DESIGN §7).

The study lives in persistent storage (SQLite by default, any RDB URL, or `journal:PATH` -- Optuna's
journal file, the storage to use for many processes or machines on a shared disk) and is opened
with `load_if_exists`, so re-running tune.py adds trials to it. A seeded TPE sampler proposes the
values of `[tune.space]`; every validation of a trial is reported to the pruner (median by
default). A trial that raises -- out of memory, NaN loss, an invalid combination such as
doc_stride >= the usable window (rejected before any training) -- is recorded FAIL with the reason
in its `fail_reason` user attribute, and the study goes on.

Trial runs are written to runs/<study>/trial-<n> and deleted when done; the best trial's run is
copied to runs/<study>/best (a run directory evaluate.py accepts), replacing a worse one.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import optuna

from lib.config import Config, with_overrides
from lib.errors import UserError
from lib.run_dir import write_json_atomic, write_text_atomic

log = logging.getLogger("lib.tuning")


def open_storage(url: str):
    """`journal:PATH` -> a journal-file storage; `sqlite:///PATH` gets its folder created."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def make_pruner(cfg: Config) -> optuna.pruners.BasePruner:
    if cfg.tune.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=cfg.tune.pruner_startup_trials)


def suggest(trial: optuna.Trial, key: str, spec: dict[str, Any]) -> Any:
    """One value for a dotted config key from its `{low, high, log|step}` / `{choices}` spec."""
    if "choices" in spec:
        return trial.suggest_categorical(key, spec["choices"])
    low, high = spec["low"], spec["high"]
    if isinstance(low, int) and isinstance(high, int) and not isinstance(spec.get("step"), float):
        return trial.suggest_int(
            key, low, high, step=spec.get("step", 1), log=spec.get("log", False)
        )
    return trial.suggest_float(key, low, high, step=spec.get("step"), log=spec.get("log", False))


def study_dir(cfg: Config) -> Path:
    return Path(cfg.train.output_dir) / cfg.tune.study_name


def _keep_if_best(run_dir: Path, best_dir: Path, number: int, value: float) -> None:
    """Copy a finished trial's run to best/ when it beats the one there (model files only).

    Several tune.py processes may finish trials at once: an exclusive lock on a file beside best/
    makes compare-and-replace atomic among them."""
    best_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(best_dir.with_name(".best.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = best_dir / "trial.json"
        if marker.is_file() and json.loads(marker.read_text())["value"] >= value:
            return
        tmp = best_dir.with_name(f".best.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(run_dir, tmp, ignore=shutil.ignore_patterns("checkpoints"))
        write_json_atomic(tmp / "trial.json", {"trial": number, "value": value})
        shutil.rmtree(best_dir, ignore_errors=True)
        tmp.rename(best_dir)


def make_objective(cfg: Config, train_fn):
    metric = cfg.train.metric

    def objective(trial: optuna.Trial) -> float:
        params = {key: suggest(trial, key, spec) for key, spec in cfg.tune.space.items()}
        run_dir = study_dir(cfg) / f"trial-{trial.number}"
        try:
            trial_cfg = with_overrides(
                cfg,
                {
                    **params,
                    "train.output_dir": str(study_dir(cfg)),
                    "train.run_name": run_dir.name,
                    "train.resume": "",
                },
            )
            evaluations = 0

            def report(step: int, metrics: dict[str, float]) -> None:
                nonlocal evaluations
                evaluations += 1
                trial.report(metrics[metric], evaluations)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after evaluation {evaluations} (step {step})")

            result = train_fn(trial_cfg, on_evaluate=report)
            value = result["val"][metric]
            _keep_if_best(run_dir, study_dir(cfg) / "best", trial.number, value)
            return value
        except optuna.TrialPruned:
            raise
        except Exception as err:
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            trial.set_user_attr("fail_reason", reason)
            log.warning("trial %d failed: %s", trial.number, reason)
            raise
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    return objective


def trials_table(study: optuna.Study) -> str:
    params = sorted({k for t in study.trials for k in t.params})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "state", "value", *params, "seconds", "fail_reason"])
    for t in study.trials:
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
        )
        writer.writerow(
            [
                t.number,
                t.state.name,
                "" if t.value is None else t.value,
                *(t.params.get(k, "") for k in params),
                seconds,
                t.user_attrs.get("fail_reason", ""),
            ]
        )
    return out.getvalue()


def run_study(cfg: Config, *, train_fn=None) -> dict:
    """Run `tune.n_trials` more trials (or until `tune.timeout`), then write the summary."""
    if train_fn is None:
        from lib.training import train as train_fn
    if not cfg.tune.space:
        raise UserError("tune.space is empty: declare what to search in [tune.space]")
    study = optuna.create_study(
        study_name=cfg.tune.study_name,
        storage=open_storage(cfg.tune.storage),
        sampler=optuna.samplers.TPESampler(seed=cfg.tune.seed),
        pruner=make_pruner(cfg),
        direction="maximize",
        load_if_exists=True,
    )
    try:
        study.optimize(
            make_objective(cfg, train_fn),
            n_trials=cfg.tune.n_trials,
            timeout=cfg.tune.timeout or None,
            catch=(Exception,),
        )
    except KeyboardInterrupt:
        # Optuna has recorded the running trial as FAIL and the objective removed its run dir.
        log.warning("interrupted: writing the summary of the trials so far (no retraining)")
        write_summary(cfg, study, train_fn, retrain=False)
        log.warning("summary: %s", study_dir(cfg) / "best.json")
        raise  # tune.py exits 130; running it again continues the study
    return write_summary(cfg, study, train_fn)


def write_summary(cfg: Config, study: optuna.Study, train_fn, retrain: bool = True) -> dict:
    folder = study_dir(cfg)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "study": cfg.tune.study_name,
        "metric": cfg.train.metric,
        "trials": {
            s.name: sum(t.state == s for t in study.trials) for s in optuna.trial.TrialState
        },
    }
    if complete:
        best = study.best_trial
        summary.update(best_trial=best.number, best_value=best.value, best_params=best.params)
        if cfg.tune.retrain_best and retrain:
            retrain = with_overrides(
                cfg,
                {
                    **best.params,
                    "train.output_dir": str(folder),
                    "train.run_name": "best-retrained",
                    "train.resume": "",
                },
            )
            result = train_fn(retrain)
            summary["retrained_value"] = result["val"][cfg.train.metric]
            shutil.rmtree(Path(result["run_dir"]) / "checkpoints", ignore_errors=True)
            shutil.rmtree(folder / "best", ignore_errors=True)
            Path(result["run_dir"]).rename(folder / "best")
        summary["best_dir"] = str(folder / "best")
    write_json_atomic(folder / "best.json", summary)
    write_text_atomic(folder / "trials.csv", trials_table(study))
    return summary
