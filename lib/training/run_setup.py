"""Starting or continuing a run: the checks made before anything is written (DESIGN §7, §10).

A new run gets a fresh folder under `train.output_dir`, decided by the main process (a timestamp
name must be the same in every process). A resumed run continues with the config it was started
with: `load_train_config` reads the run's own config.toml as the base, so `train.resume=latest`
needs no other argument, and what the user changes on top of it is either safe to change on
resume (more epochs or steps, evaluation and checkpoint cadence, patience, trackers, threads) and
applied -- with a warning where it makes the run differ from an uninterrupted one -- or refused
with one line that lists it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from lib.config import Config, DataConfig, load_config, to_dict, with_overrides
from lib.data.dataset import Dataset
from lib.errors import UserError
from lib.model.hf_weights import read_config
from lib.model.pretrained import resolve_model_dir
from lib.run_dir import (
    check_not_in_use,
    check_writable_dir,
    find_resume_dir,
    new_run_dir,
    usable_checkpoint,
)
from lib.training.optimization import resolve_mixed_precision

log = logging.getLogger("lib.training.run_setup")

# Keys a resumed run may change. The schedule is laid out over epochs x steps, so changing those
# two continues the run on a stretched schedule: not what an uninterrupted run would have done.
RESUMABLE = {
    "train.resume",
    "train.output_dir",
    "train.epochs",
    "train.max_steps",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.patience",
    "train.log_with",
    "train.threads",
    "train.eval_batch_size",
}
RESCHEDULES = {"train.epochs", "train.max_steps"}
REDSM5_HINT = (
    "put ReDSM5's posts.csv and annotations.csv in data/redsm5/ (README: The real job), or run "
    "the offline demo: accelerate launch train.py --config demo.toml"
)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("criteria", "space"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_keys(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ: {key: (old, new)}; tune.* is not part of a run."""
    a, b = _flat(to_dict(old)), _flat(to_dict(new))
    return {k: (a[k], b[k]) for k in a if a[k] != b[k] and not k.startswith("tune.")}


def load_train_config(overlay: str | None, overrides: Sequence[str]) -> Config:
    """train.py's config: config.toml ← overlay ← overrides; when resuming, the run's own
    config.toml is the base instead of config.toml."""
    cfg = load_config(overlay, overrides)
    if not cfg.train.resume:
        return cfg
    run_dir = find_resume_dir(cfg.train.resume, cfg.train.output_dir)
    cfg = load_config(overlay, overrides, base=run_dir / "config.toml")
    return with_overrides(cfg, {"train.resume": str(run_dir)})


def resume_config(cfg: Config, run_dir: Path) -> Config:
    """The run's saved config with the user's safe changes applied; anything else is refused."""
    saved = load_config(run_dir / "config.toml", base=None)
    changes = changed_keys(saved, cfg)
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE}
    if refused:
        listed = ", ".join(
            f"{k}={new!r} (the run has {old!r})" for k, (old, new) in refused.items()
        )
        raise UserError(
            f"train.resume={run_dir}: these settings cannot change when a run is resumed: "
            f"{listed}; drop them, or start a new run"
        )
    for key, (old, new) in changes.items():
        if key in RESCHEDULES:
            log.warning(
                "resuming with %s=%r (was %r): the learning-rate schedule is laid out again "
                "over the new length, so this is not the run an uninterrupted one would be",
                key,
                new,
                old,
            )
    applied = {k: new for k, (_, new) in changes.items()}
    return with_overrides(saved, {**applied, "train.resume": str(run_dir)})


def check_corpus_present(data: DataConfig) -> None:
    """A missing corpus at the default path is a first-time user: say where ReDSM5 goes."""
    default = DataConfig()
    for key in ("posts", "annotations"):
        path = getattr(data, key)
        if path == getattr(default, key) and not Path(path).exists():
            raise UserError(f"data.{key}: {path} not found; {REDSM5_HINT}")


def check_training_data(dataset: Dataset, split: Sequence[float]) -> None:
    train, val = len(dataset.splits["train"]), len(dataset.splits["val"])
    if not train or not val:
        raise UserError(
            f"data.split={list(split)} leaves {train} training and {val} validation examples; "
            "both must be non-empty"
        )


def check_trackers(names: Sequence[str]) -> None:
    """Every `train.log_with` tracker is installed (accelerate would drop it with a warning)."""
    if not names or "all" in names:
        return
    from accelerate.tracking import get_available_trackers

    available = {str(getattr(t, "value", t)) for t in get_available_trackers()}
    missing = [name for name in names if name not in available]
    if missing:
        raise UserError(
            f"train.log_with: {', '.join(missing)} is not installed (pip install "
            f"{' '.join(missing)}); installed trackers: {', '.join(sorted(available)) or 'none'}"
        )


def resolve_run(cfg: Config) -> tuple[Config, Path, Path | None]:
    """(config, run directory, the checkpoint to resume from or None for a new run), the same
    in every process; nothing written yet. The checkpoint has been verified file by file."""
    state = PartialState()
    if cfg.train.resume:
        run_dir = find_resume_dir(cfg.train.resume, cfg.train.output_dir)
        check_not_in_use(run_dir)
        state.wait_for_everyone()  # every process looked before this launch's main locks it
        cfg = resume_config(cfg, run_dir)
        checkpoint = usable_checkpoint(run_dir)
        check_same_processes(checkpoint, state.num_processes)
        return cfg, run_dir, checkpoint
    # The main process names the run (a timestamp must not differ between processes);
    # train.output_dir was checked by preflight, which train() runs first.
    decided: list[Any] = [None, None]
    if state.is_main_process:
        try:
            decided[0] = str(new_run_dir(cfg.train.output_dir, cfg.train.run_name))
        except UserError as err:
            decided[1] = str(err)
    if state.num_processes > 1:
        broadcast_object_list(decided)
    if decided[1] is not None:
        raise UserError(decided[1])
    return cfg, Path(decided[0]), None


def check_same_processes(checkpoint: Path, num_processes: int) -> None:
    """A checkpoint continues exactly only with the process count that wrote it: each process
    saved its own RNG state (random_states_<i>.pkl), and the data are sharded by that count, so
    resuming on another count would silently train on other batches from other random states."""
    saved = len(list(checkpoint.glob("random_states_*.pkl")))
    if saved and saved != num_processes:
        raise UserError(
            f"train.resume: {checkpoint} was written by {saved} processes and this launch has "
            f"{num_processes}; resume with `accelerate launch --num_processes {saved}` (or start "
            "a new run)"
        )


def check_model_fits(cfg: Config) -> None:
    """features.max_length, and the widest batch (a full window padded up to a multiple of
    features.pad_to_multiple_of), fit the model's position embeddings (read from its
    config.json, before any weights are loaded)."""
    f, config = cfg.features, read_config(resolve_model_dir(cfg.model.name))
    positions = config.max_position_embeddings
    if config.type_vocab_size < 2:  # features.py gives the post's tokens token type 1
        raise UserError(
            f"model {cfg.model.name} has type_vocab_size {config.type_vocab_size}: a question and "
            "a post need two token types"
        )
    if f.max_length > positions:
        raise UserError(
            f"features.max_length={f.max_length} is longer than model "
            f"{cfg.model.name}'s {positions} position embeddings"
        )
    widest = -(-f.max_length // f.pad_to_multiple_of) * f.pad_to_multiple_of
    if widest > positions:
        raise UserError(
            f"features.pad_to_multiple_of={f.pad_to_multiple_of} pads a window of "
            f"features.max_length={f.max_length} tokens to {widest}, more than model "
            f"{cfg.model.name}'s {positions} position embeddings; choose a multiple that divides "
            f"{f.max_length}"
        )


def preflight(cfg: Config) -> None:
    """The checks of a training run that need no data loaded (shared with tune.py)."""
    check_corpus_present(cfg.data)
    check_trackers(cfg.train.log_with)
    check_writable_dir(Path(cfg.train.output_dir), "train.output_dir")
    check_model_fits(cfg)
    resolve_mixed_precision(cfg.train.mixed_precision, PartialState().device)
