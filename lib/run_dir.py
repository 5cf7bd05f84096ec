"""Run directories and resumable checkpoints (DESIGN §6, §7).

    runs/<name>/
      model.safetensors, config.json, tokenizer.json   best model, HF BertForQuestionAnswering layout
      config.toml        the resolved config (decode.null_threshold as tuned on validation)
      metrics.json       best validation metrics, test metrics at the end
      alignment.json     the alignment report of the data
      train.log
      checkpoints/step-00000120/   accelerate save_state + trainer_state.json

A checkpoint is written under a `.tmp-` name and renamed when complete, so a run killed while
writing leaves nothing that resume would pick and fail to load; resume takes the newest complete
checkpoint and deletes stale temporaries.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lib.errors import UserError

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"


@dataclass
class TrainerState:
    """Where the loop is: enough, with accelerate's saved state, to continue bit for bit."""

    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of this epoch already consumed
    global_step: int = 0  # optimizer steps taken
    best_metric: float | None = None
    best_step: int = -1
    evals_without_improvement: int = 0
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


def new_run_dir(output_dir: str, run_name: str) -> Path:
    """runs/<run_name>, or runs/<timestamp> when no name is given; refuses to reuse a run."""
    name = run_name or time.strftime("%Y%m%d-%H%M%S")
    path = Path(output_dir) / name
    if path.exists() and any(path.iterdir()):
        raise UserError(
            f"run directory {path} already exists; pick another train.run_name "
            f"or continue it with train.resume={path}"
        )
    return path


def find_resume_dir(resume: str, output_dir: str) -> Path:
    """`train.resume`: a run directory, or "latest" = the newest run under output_dir with a
    complete checkpoint."""
    if resume == "latest":
        candidates = [
            p for p in Path(output_dir).glob("*") if p.is_dir() and latest_checkpoint(p) is not None
        ]
        if not candidates:
            raise UserError(f"train.resume=latest: no run with a checkpoint under {output_dir}/")
        return max(candidates, key=lambda p: latest_checkpoint(p).stat().st_mtime)
    path = Path(resume)
    if not (path / "config.toml").is_file():
        raise UserError(f"train.resume={resume}: not a run directory (no config.toml)")
    if latest_checkpoint(path) is None:
        raise UserError(f"train.resume={resume}: the run has no complete checkpoint to resume")
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (renamed from its temporary name, state file present)."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def checkpoint_tmp_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f".tmp-step-{step:08d}"


def finish_checkpoint(run_dir: Path, step: int, state: TrainerState, keep: int) -> Path:
    """Write the trainer state into the temporary checkpoint, rename it, prune old ones."""
    tmp = checkpoint_tmp_path(run_dir, step)
    write_json_atomic(tmp / STATE_FILE, asdict(state))
    final = Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    done = sorted(
        (p for p in final.parent.glob("step-*") if (p / STATE_FILE).is_file()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_stale_temporaries(run_dir: Path) -> None:
    for tmp in (Path(run_dir) / CHECKPOINTS).glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def read_trainer_state(checkpoint: Path) -> TrainerState:
    with open(checkpoint / STATE_FILE) as f:
        return TrainerState(**json.load(f))


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
