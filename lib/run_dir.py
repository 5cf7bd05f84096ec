"""Run directories and resumable checkpoints: what we write, how we prove it is ours and complete.

    runs/<name>/
      .spanbert-evidence.json  the ownership marker, written when we create the folder
      model.safetensors, config.json, tokenizer.json   best model, HF BertForQuestionAnswering layout
      config.toml        the resolved config (decode.null_threshold as tuned on validation)
      manifest.json      sha256 of the four files above, written last: the best model is complete
      metrics.json       best validation metrics, test metrics at the end
      alignment.json     the alignment report of the data
      train.log
      checkpoints/step-00000120/   accelerate save_state + trainer_state.json + manifest.json

DESIGN §10: we delete or replace only folders that carry our marker (`is_ours`), and only those
this very process created when it cleans up after a failure (`created_here`). Saving the best
model rewrites four files that must agree (weights, config, tokenizer, the tuned threshold in
config.toml); no set of renames is atomic, so the manifest is removed first and written last,
and a run directory is accepted only when every file matches it (`verify_model_files`). A
checkpoint is written under a `.tmp-` name, gets a manifest of every file's sha256, and is renamed
when complete; resume verifies it against that manifest before trusting it (`usable_checkpoint`),
because accelerate's `load_state` skips an unreadable RNG-state file with only a warning -- and
then the resumed run is no longer the run it continues.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lib.errors import UserError, path_error
from lib.files import write_json_atomic

log = logging.getLogger("lib.run_dir")

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
MANIFEST = "manifest.json"
OWNER_FILE = ".spanbert-evidence.json"
MODEL_FILES = ("model.safetensors", "config.json", "tokenizer.json", "config.toml")
STEP_DIR = re.compile(r"^step-(\d{8})$")


@dataclass
class TrainerState:
    """Where the loop is and what it has found: enough, with accelerate's saved state, to continue
    bit for bit. Saved as trainer_state.json in every checkpoint (JSON, so that the manifest can
    verify it and a person can read it)."""

    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of this epoch already consumed
    global_step: int = 0  # optimizer steps taken
    best_metric: float | None = None
    best_step: int = -1
    evals_without_improvement: int = 0
    best_threshold: float | None = None  # decode.null_threshold the best model was scored with
    best_val: dict | None = None  # the best model's validation metrics
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False


# ---------------------------------------------------------------- ownership (DESIGN §10)


def claim_dir(path: Path, kind: str) -> None:
    """Create `path` (it must not exist, or be an empty folder) and mark it as ours."""
    path = Path(path)
    refuse_unless_ours(path, "the folder", kind)
    previous = owner(path) or {}
    made = previous.get("made_folder", False) if previous else not path.exists()
    # the folders above it that this call creates (runs/ on a first run): removed with it
    parents = previous.get("made_parents", 0) if previous else _missing_parents(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        marker = {"kind": kind, "pid": os.getpid(), "host": socket.gethostname()}
        write_json_atomic(
            path / OWNER_FILE,
            {**marker, "made_folder": made, "made_parents": parents, "time": time.time()},
        )
    except OSError as err:
        raise path_error(path, "create the folder", err) from None


def _missing_parents(path: Path) -> int:
    count, parent = 0, path.absolute().parent
    while not parent.exists() and parent.parent != parent:
        count, parent = count + 1, parent.parent
    return count


def owner(path: Path) -> dict | None:
    """The marker we wrote into `path` when we created it, or None (not ours, or unreadable)."""
    try:
        marker = json.loads((Path(path) / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "kind" in marker else None


def is_ours(path: Path) -> bool:
    return owner(path) is not None


def created_here(path: Path) -> bool:
    """True when this process created `path` (its marker names our pid on this host)."""
    marker = owner(path)
    return bool(marker) and (marker.get("pid"), marker.get("host")) == (
        os.getpid(),
        socket.gethostname(),
    )


def refuse_unless_ours(path: Path, what: str, kind: str) -> None:
    """A folder we would write into or replace must be absent, empty, or carry our marker for
    the same kind of folder (an evaluation must not overwrite a run's metrics.json)."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(f"{path}: {what} is a file; move it away or choose another name")
    marker = owner(path)
    # (our own marker being written by a concurrent process is not "someone else's file")
    foreign = [p for p in path.iterdir() if not p.name.startswith("." + OWNER_FILE)]
    if foreign and marker is None:
        raise UserError(
            f"{path}: {what} exists and was not written by this project; refusing to write "
            "into it (move it away or choose another name)"
        )
    if marker is not None and marker.get("kind") != kind:
        raise UserError(
            f"{path}: {what} is a {marker.get('kind')} folder of this project, not "
            f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} folder; choose another name"
        )


# ---------------------------------------------------------------- the run directory


def new_run_dir(output_dir: str, run_name: str) -> Path:
    """runs/<run_name>, or runs/<timestamp> when no name is given; refuses to reuse a run."""
    name = run_name or time.strftime("%Y%m%d-%H%M%S")
    path = Path(output_dir) / name
    if path.is_file():
        raise UserError(f"{path} is a file, not a run directory; pick another train.run_name")
    if path.exists() and any(path.iterdir()):
        if abandoned(path):
            log.warning("%s: a run killed before its first checkpoint; starting it again", path)
            empty_run_dir(path)
            return path
        raise UserError(
            f"run directory {path} already exists; pick another train.run_name "
            f"or continue it with train.resume={path}"
        )
    return path


def abandoned(run_dir: Path) -> bool:
    """Ours, no checkpoint to resume, and its creator is no longer running on this host: a run
    killed (SIGKILL, power cut) before its first checkpoint. Nothing in it can be continued."""
    marker = owner(run_dir)
    if not marker or marker.get("kind") != "run" or latest_checkpoint(run_dir) is not None:
        return False
    if marker.get("host") != socket.gethostname() or not isinstance(marker.get("pid"), int):
        return False
    try:
        os.kill(marker["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def empty_run_dir(run_dir: Path) -> None:
    """Remove a run directory of ours (or only its contents, when the folder was the user's)."""
    marker = owner(run_dir)
    if marker.get("made_folder"):
        shutil.rmtree(run_dir, ignore_errors=True)
        for parent in list(Path(run_dir).absolute().parents)[: marker.get("made_parents", 0)]:
            try:
                parent.rmdir()  # only while empty: another run may live there by now
            except OSError:
                break
        return
    for entry in Path(run_dir).iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def check_writable_dir(path: Path, key: str) -> None:
    """`path` is, or can become, a folder we may write into: fail before anything is written.

    Walks up to the nearest existing ancestor, which must be a writable folder."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # a dangling link
            raise UserError(f"{key}={path}: {probe} is a broken symbolic link")
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"{key}={path}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{key}={path}: cannot write into {probe} (Permission denied)")


def remove_failed_start(run_dir: Path) -> None:
    """After a run failed before its first checkpoint: remove the run directory if this process
    created it, so that running the same command again is not refused."""
    if not created_here(run_dir) or latest_checkpoint(run_dir) is not None:
        return
    empty_run_dir(run_dir)
    log.info("removed what %s held: the run failed before its first checkpoint", run_dir)


# ---------------------------------------------------------------- manifests


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, names: list[str], **extra) -> None:
    files = {
        name: {"bytes": (folder / name).stat().st_size, "sha256": sha256(folder / name)}
        for name in names
    }
    write_json_atomic(folder / MANIFEST, {**extra, "files": files})


def manifest_problem(folder: Path) -> str | None:
    """Why `folder`'s files do not match its manifest, or None when every listed file does."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        assert isinstance(files, dict) and files
    except FileNotFoundError:
        return f"no {MANIFEST} (not completely written)"
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        return f"{MANIFEST} is unreadable"
    for name, expected in files.items():
        path = folder / name
        try:
            if not isinstance(expected, dict) or path.stat().st_size != expected.get("bytes"):
                return f"{name} is truncated or was changed"
            if sha256(path) != expected.get("sha256"):
                return f"{name} is corrupt (its sha256 does not match {MANIFEST})"
        except OSError as err:
            return f"{name}: {err.strerror or type(err).__name__}"
    return None


def forget_model_files(run_dir: Path) -> None:
    """Before the best model's files are rewritten: until the new manifest is written, the run
    directory holds no model that evaluate.py would accept."""
    (Path(run_dir) / MANIFEST).unlink(missing_ok=True)


def seal_model_files(run_dir: Path, step: int) -> None:
    write_manifest(Path(run_dir), list(MODEL_FILES), best_step=step)


def verify_model_files(run_dir: Path) -> None:
    """A UserError unless the run's model, config and tokenizer files are one complete save."""
    problem = manifest_problem(Path(run_dir))
    if problem is not None:
        raise UserError(
            f"{run_dir}: the saved model is incomplete: {problem}; it was probably stopped while "
            f"saving (continue it with train.resume={run_dir}, or train again)"
        )


# ---------------------------------------------------------------- resumable checkpoints


def find_resume_dir(resume: str, output_dir: str) -> Path:
    """`train.resume`: a run directory, or "latest" = the newest run under output_dir with a
    complete checkpoint."""
    if resume == "latest":
        root = Path(output_dir)
        candidates = root.glob("*") if root.is_dir() else []
        candidates = [p for p in candidates if p.is_dir() and latest_checkpoint(p) is not None]
        if not candidates:
            raise UserError(f"train.resume=latest: no run with a checkpoint under {output_dir}/")
        return max(candidates, key=lambda p: latest_checkpoint(p).stat().st_mtime)
    path = Path(resume)
    if not (path / "config.toml").is_file():
        raise UserError(f"train.resume={resume}: not a run directory (no config.toml)")
    if latest_checkpoint(path) is None:
        raise UserError(f"train.resume={resume}: the run has no complete checkpoint to resume")
    return path


def _checkpoints(run_dir: Path) -> list[Path]:
    """Renamed (finished) checkpoints with a manifest, newest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    done = [p for p in folder.iterdir() if STEP_DIR.match(p.name) and (p / MANIFEST).is_file()]
    return sorted(done, key=lambda p: p.name, reverse=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest finished checkpoint (not yet verified: see usable_checkpoint)."""
    done = _checkpoints(run_dir)
    return done[0] if done else None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed exactly, or None when it verifies completely."""
    problem = manifest_problem(checkpoint)
    if problem is None:
        try:
            read_trainer_state(checkpoint)
        except (OSError, ValueError, TypeError) as err:
            problem = f"{STATE_FILE} is invalid ({err})"
    return problem


def usable_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint that verifies; the ones skipped are logged with their reason."""
    skipped = []
    for checkpoint in _checkpoints(run_dir):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            for path, reason in skipped:
                log.warning("skipped checkpoint %s: %s", path.name, reason)
            return checkpoint
        skipped.append((checkpoint, problem))
    reasons = "; ".join(f"{path.name}: {reason}" for path, reason in skipped)
    raise UserError(f"{run_dir}: no checkpoint can be resumed exactly ({reasons or 'none found'})")


def checkpoint_tmp_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f".tmp-step-{step:08d}"


def finish_checkpoint(run_dir: Path, step: int, state: TrainerState, keep: int) -> Path:
    """Write the trainer state and the manifest into the temporary checkpoint, rename it, prune
    old ones."""
    tmp = checkpoint_tmp_path(run_dir, step)
    write_json_atomic(tmp / STATE_FILE, asdict(state))
    names = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    write_manifest(tmp, names, step=step)
    final = Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in _checkpoints(run_dir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_stale_temporaries(run_dir: Path) -> None:
    for tmp in (Path(run_dir) / CHECKPOINTS).glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def read_trainer_state(checkpoint: Path) -> TrainerState:
    with open(checkpoint / STATE_FILE, encoding="utf-8") as f:
        values = json.load(f)
    if not isinstance(values, dict) or set(values) != {f.name for f in fields(TrainerState)}:
        raise ValueError("not the fields of a trainer state")
    return TrainerState(**values)
