"""Hyper-parameter search: an Optuna study whose trials are calls of `train(cfg)` (DESIGN §7).

The study lives in persistent storage (SQLite by default, any RDB URL, or `journal:PATH` -- Optuna's
journal file, the storage to use for many processes or machines on a shared disk) and is opened
with `load_if_exists`, so re-running tune.py adds trials to it. A seeded TPE sampler proposes the
values of `[tune.space]`; every validation of a trial is reported to the pruner (median by
default). A trial that raises -- out of memory, NaN loss, an invalid combination such as
doc_stride >= the usable window (rejected before any training) -- is recorded FAIL with the reason
in its `fail_reason` user attribute, and the study goes on.

Before the study exists, the setup every trial shares is checked (config, data, model, output
folder, storage): a mistake there is one line and exit status 2, not a study of failed trials.
So is a search space an existing study cannot continue with (a parameter whose kind, log scale
or choices differ from those its trials recorded), found before any trial runs.
Trial runs are written to runs/<study>/trial-<n> and deleted when done (only those this process
created); the best trial's run is copied to runs/<study>/best (a run directory evaluate.py
accepts), replacing a worse one by two renames, so a kill leaves the old best or the new one
(`tune.retrain_best`'s run takes best/ as that trial's, so only a better trial replaces it). A
study folder or best/ that this project did not write is refused, never replaced (DESIGN §10).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
)

from lib.config import Config, with_overrides
from lib.config_checks import is_int_field, space_field_type
from lib.errors import UserError, os_reason
from lib.files import write_json_atomic, write_text_atomic
from lib.model.pretrained import load_qa_model
from lib.run_dir import check_writable_dir, claim_dir, created_here, refuse_unless_ours
from lib.training.prepared_data import DataCache
from lib.training.run_setup import preflight

log = logging.getLogger("lib.training.tuning")


SQLITE_HEADER = b"SQLite format 3\x00"


def _looks_like_journal(head: bytes) -> bool:
    try:
        return "op_code" in json.loads(head.split(b"\n", 1)[0])
    except (ValueError, TypeError):
        return False


def _check_storage_file(url: str, path: str, looks_right) -> None:
    """The file is absent, or one Optuna wrote; its folder is writable. Nothing is created."""
    if not path:
        raise UserError(f"tune.storage={url}: no file path after the scheme")
    file = Path(path)
    if file.is_dir():
        raise UserError(f"tune.storage={url}: {path} is a folder, not a storage file")
    check_writable_dir(file.parent, "tune.storage")
    if file.is_file():
        try:
            with open(file, "rb") as f:
                head = f.read(1 << 16)
        except OSError as err:
            raise UserError(f"tune.storage={url}: cannot read {path} ({os_reason(err)})") from None
        if head and not looks_right(head):
            raise UserError(
                f"tune.storage={url}: {path} exists and is not an Optuna storage; refusing to "
                "write into it"
            )


def check_storage(url: str) -> None:
    """What can be checked about `tune.storage` without creating or changing anything."""
    if url.startswith("journal:"):
        _check_storage_file(url, url.removeprefix("journal:"), _looks_like_journal)
    elif url.startswith("sqlite:///"):
        _check_storage_file(
            url, url.removeprefix("sqlite:///"), lambda head: head.startswith(SQLITE_HEADER)
        )
    else:
        from sqlalchemy.engine import make_url

        try:
            make_url(url).get_dialect()  # the driver is installed; no connection yet
        except Exception as err:  # sqlalchemy's ArgumentError, NoSuchModuleError, ImportError
            reason = " ".join(str(err).split())[:300] or type(err).__name__
            raise UserError(f"tune.storage={url}: not a usable database URL ({reason})") from None


def open_storage(url: str):
    """`journal:PATH` -> a journal-file storage; `sqlite:///PATH` gets its folder created; any
    other RDB URL goes to Optuna. Whatever fails here is the user's URL, named in one line."""
    try:
        if url.startswith("journal:"):
            path = Path(url.removeprefix("journal:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # sqlalchemy's and the drivers' errors have no common base
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise UserError(f"tune.storage={url}: cannot open the storage ({reason})") from None


def make_pruner(cfg: Config) -> optuna.pruners.BasePruner:
    if cfg.tune.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=cfg.tune.pruner_startup_trials)


def space_distributions(cfg: Config) -> dict[str, BaseDistribution]:
    """`[tune.space]` as Optuna distributions: `{choices}` is categorical, `{low, high, log|step}`
    ranges over integers for an int setting and over reals for any other (DESIGN §9 types)."""
    out: dict[str, BaseDistribution] = {}
    for key, spec in cfg.tune.space.items():
        try:
            if "choices" in spec:
                out[key] = CategoricalDistribution(spec["choices"])
            elif is_int_field(space_field_type(cfg, key)):
                out[key] = IntDistribution(
                    spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step", 1)
                )
            else:
                step = spec.get("step")
                out[key] = FloatDistribution(
                    float(spec["low"]),
                    float(spec["high"]),
                    log=spec.get("log", False),
                    step=None if step is None else float(step),
                )
        except ValueError as err:  # what the config checks let through and Optuna does not
            raise UserError(f"tune.space.{key}: {' '.join(str(err).split())}") from None
    return out


def suggest(trial: optuna.Trial, key: str, dist: BaseDistribution) -> Any:
    """One value for a dotted config key from its distribution (`space_distributions`)."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(key, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)


def _describe(dist: BaseDistribution) -> str:
    if isinstance(dist, CategoricalDistribution):
        return f"choices {list(dist.choices)}"
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    scale = ", log" if dist.log else ("" if dist.step in (None, 1) else f", step {dist.step}")
    return f"{kind} {dist.low}..{dist.high}{scale}"


def check_space_matches_study(cfg: Config, study: optuna.Study) -> None:
    """An existing study's trials fix each parameter's kind (int/float/choices), log scale and
    choices; a space that changed them would fail every new trial inside Optuna. Checked before
    any trial runs: one line naming the key."""
    space = space_distributions(cfg)
    seen: set[tuple[str, str]] = set()
    for trial in study.get_trials(deepcopy=False):
        for key, old in trial.distributions.items():
            if key not in space or (key, repr(old)) in seen:
                continue
            seen.add((key, repr(old)))
            try:
                check_distribution_compatibility(old, space[key])
            except ValueError:
                raise UserError(
                    f"tune.space.{key}: the study {cfg.tune.study_name!r} in {cfg.tune.storage} "
                    f"searched {_describe(old)} for this key, the config now asks for "
                    f"{_describe(space[key])}; Optuna cannot change that within a study: restore "
                    "the old setting or choose a new tune.study_name"
                ) from None


def study_dir(cfg: Config) -> Path:
    return Path(cfg.train.output_dir) / cfg.tune.study_name


@dataclass
class StudyState:
    """What the trials of one tune.py process learn about the study as a whole."""

    setup_error: UserError | None = None  # the user's setup is broken: stop, do not burn trials
    # the data the last trial trained on: the next one reuses what its settings leave unchanged
    data: DataCache = field(default_factory=DataCache)


def check_setup(cfg: Config, data: DataCache) -> None:
    """Everything every trial needs, checked once before the study exists (and again when a
    trial fails with a user error, to tell the setup's fault from the trial's). The data it
    prepares stays in `data` for the first trial."""
    if not cfg.tune.space:
        raise UserError("tune.space is empty: declare what to search in [tune.space]")
    space_distributions(cfg)
    folder = study_dir(cfg)
    refuse_unless_ours(folder, "the study folder (train.output_dir/tune.study_name)", "study")
    refuse_unless_ours(folder / "best", "the study's best/ folder", "run")
    check_storage(cfg.tune.storage)
    preflight(cfg)
    data.get(cfg)  # the corpus loads, aligns and splits; the tokenizer loads and cuts windows
    load_qa_model(cfg.model.name)  # the weights load, the tokenizer fits them


def _recover_best(folder: Path) -> None:
    """Under the lock: finish or undo what a killed process left of a best/ swap."""
    best = folder / "best"
    olds = sorted(folder.glob(".best.old-*"), key=lambda p: p.stat().st_mtime)
    if not best.exists() and olds:
        os.replace(olds.pop(), best)  # killed between the two renames: the previous best is back
    for leftover in [*olds, *folder.glob(".best.tmp-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _replace_best(new: Path, best: Path) -> None:
    """Swap a complete folder in as best/ with two renames; a kill leaves old best/ or new."""
    old = best.with_name(f".best.old-{os.getpid()}")
    if best.exists():
        refuse_unless_ours(best, "the study's best/ folder", "run")
        os.replace(best, old)
    os.replace(new, best)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _best_lock(folder: Path):
    """Several tune.py processes may finish trials at once: an exclusive lock on a file beside
    best/ makes compare-and-replace atomic among them."""
    with open(folder / ".best.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _recover_best(folder)
        yield


def _best_value(best: Path) -> float | None:
    """The study value of the trial best/ holds (its trial.json), None when there is none."""
    try:
        value = json.loads((best / "trial.json").read_text())["value"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no best yet, or not one we can compare with: replace it
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _keep_if_best(run_dir: Path, folder: Path, number: int, value: float) -> None:
    """Copy a finished trial's run to best/ when it beats the one there (model files only)."""
    best = folder / "best"
    with _best_lock(folder):
        current = _best_value(best)
        if current is not None and current >= value:
            return
        tmp = folder / f".best.tmp-{os.getpid()}"
        shutil.copytree(run_dir, tmp, ignore=shutil.ignore_patterns("checkpoints"))
        write_json_atomic(tmp / "trial.json", {"trial": number, "value": value})
        _replace_best(tmp, best)


def _remove_trial_run(run_dir: Path) -> None:
    """A trial's run folder goes when the trial ends -- only if this process created it."""
    if created_here(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)


def make_objective(cfg: Config, train_fn, study_state: StudyState):
    metric = cfg.train.metric

    space = space_distributions(cfg)

    def objective(trial: optuna.Trial) -> float:
        run_dir = study_dir(cfg) / f"trial-{trial.number}"
        try:
            params = {key: suggest(trial, key, dist) for key, dist in space.items()}
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

            result = train_fn(trial_cfg, on_evaluate=report, data_cache=study_state.data)
            value = result["val"][metric]
            _keep_if_best(run_dir, study_dir(cfg), trial.number, value)
            return value
        except optuna.TrialPruned:
            raise
        except Exception as err:
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            trial.set_user_attr("fail_reason", reason)
            log.warning("trial %d failed: %s", trial.number, reason)
            if isinstance(err, UserError):
                _stop_if_setup_broken(cfg, trial.study, study_state)
            raise
        finally:
            _remove_trial_run(run_dir)

    return objective


def _stop_if_setup_broken(cfg: Config, study: optuna.Study, study_state: StudyState) -> None:
    """A user error is the trial's own (a bad combination of its parameters) unless the setup
    itself no longer passes its checks -- then every further trial would fail the same way."""
    try:
        check_setup(cfg, study_state.data)
    except UserError as err:
        study_state.setup_error = err
        study.stop()


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
        from lib.training.trainer import train as train_fn
    study_state = StudyState()
    check_setup(cfg, study_state.data)  # before the study or its folder exists
    storage = open_storage(cfg.tune.storage)
    study = optuna.create_study(
        study_name=cfg.tune.study_name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=cfg.tune.seed),
        pruner=make_pruner(cfg),
        direction="maximize",
        load_if_exists=True,
    )
    check_space_matches_study(cfg, study)  # before the study folder or any trial
    claim_dir(study_dir(cfg), "study")
    try:
        study.optimize(
            make_objective(cfg, train_fn, study_state),
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
    if study_state.setup_error is not None:
        write_summary(cfg, study, train_fn, retrain=False)
        raise UserError(f"the study stopped: {study_state.setup_error}")
    return write_summary(cfg, study, partial(train_fn, data_cache=study_state.data))


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
            summary["retrained_value"] = _retrain_best(cfg, best, train_fn)
        summary["best_dir"] = str(folder / "best")
    write_json_atomic(folder / "best.json", summary)
    write_text_atomic(folder / "trials.csv", trials_table(study))
    return summary


def _retrain_best(cfg: Config, best: optuna.trial.FrozenTrial, train_fn) -> float:
    """Train the best trial's parameters once more and keep that run as best/, recorded (like a
    trial's copy) as standing for that trial and its value: a later trial replaces it only by
    beating that value. Returns the retrained run's validation value."""
    folder = study_dir(cfg)
    retrain = with_overrides(
        cfg,
        {
            **best.params,
            "train.output_dir": str(folder),
            "train.run_name": f"best-retrained-{os.getpid()}",
            "train.resume": "",
        },
    )
    result = train_fn(retrain)
    run_dir = Path(result["run_dir"])
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # ours: the run just made them
    retrained = result["val"][cfg.train.metric]
    record = {"trial": best.number, "value": best.value, "retrained_value": retrained}
    write_json_atomic(run_dir / "trial.json", record)
    with _best_lock(folder):
        current = _best_value(folder / "best")
        if current is not None and current > best.value:  # another worker's better trial
            log.warning(
                "best/ now holds a trial better than %d (%s > %s): the retrained run is dropped",
                best.number,
                current,
                best.value,
            )
            _remove_trial_run(run_dir)
        else:
            _replace_best(run_dir, folder / "best")
    return retrained
