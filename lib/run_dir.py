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
when complete (a checkpoint of the same step already there is first set aside under `.old-`);
resume verifies it against that manifest before trusting it (`usable_checkpoint`), because
accelerate's `load_state` skips an unreadable RNG-state file with only a warning -- and then the
resumed run is no longer the run it continues. A run folder whose creator died before its first
checkpoint is emptied when its name is used again, unless it holds a model or metrics (a finished
run whose checkpoints/ were deleted); emptying a run folder never removes a folder of ours of
another kind inside it (an evaluation written while the run trained).
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
ASIDE = ".old-"  # a finished checkpoint set aside while the same step is written again
# What a run writes once it has a model worth keeping (_save_best, _finish; tune.py's best/,
# which never has checkpoints). A run killed before that holds only config.toml, alignment.json
# and train.log: nothing it cannot write again.
RESULT_FILES = (*(name for name in MODEL_FILES if name != "config.toml"), MANIFEST, "metrics.json")


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
    """Create `path` (it must not exist, or be an empty folder) and mark it as ours.

    A run folder is only ever claimed for a new run (resume never claims): one whose marker names
    another process that is still running on this host is refused -- two train.py started in the
    same second pick the same timestamped name. The first claim of a folder creates its marker
    exclusively, so of two processes claiming at the same moment exactly one wins."""
    path = Path(path)
    refuse_unless_ours(path, "the folder", kind)
    previous = owner(path) or {}
    if kind == "run" and previous:
        _refuse_if_training(path, previous)
    made = previous.get("made_folder", False) if previous else not path.exists()
    # the folders above it that this call creates (runs/ on a first run): removed with it
    parents = previous.get("made_parents", 0) if previous else _missing_parents(path)
    marker = {"kind": kind, "pid": os.getpid(), "host": socket.gethostname()}
    record = {**marker, "made_folder": made, "made_parents": parents, "time": time.time()}
    try:
        path.mkdir(parents=True, exist_ok=True)
        if kind == "run" and not previous:
            _create_marker(path, record)
        else:
            write_json_atomic(path / OWNER_FILE, record)
    except FileExistsError:  # another process's marker appeared after we looked
        _refuse_if_training(path, owner(path) or {}, certain=True)
        raise UserError(f"{path}: another process claimed this folder; try again") from None
    except OSError as err:
        raise path_error(path, "create the folder", err) from None


class RunLock:
    """An exclusive lock (flock) on a run folder, held by the process that trains into it until
    the training ends; the kernel drops it when that process dies. It tells a run being trained
    from one whose creator merely still runs (a notebook that trained it, tune.py). Where flock
    does not exist (not POSIX) it holds nothing."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def acquire(self, run_dir: Path) -> None:
        self.fd = _lock(Path(run_dir))

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None


def _lock(run_dir: Path) -> int | None:
    """A descriptor of `run_dir` holding its flock; a UserError when another process holds it."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise UserError(
            f"run directory {run_dir} is being written by another training (it holds the "
            "folder's lock); let it finish, or stop it first"
        ) from None
    return fd


def check_not_in_use(run_dir: Path) -> None:
    """Before resuming: refuse a run folder that another training still writes (a second
    `train.resume=latest` would pick the live run: it has the newest checkpoint)."""
    probe = RunLock()
    probe.acquire(run_dir)
    probe.release()


def _create_marker(folder: Path, record: dict) -> None:
    """Write the marker complete under a temporary name, then link it into place: the link fails
    (FileExistsError) when a marker is already there, where a rename would replace it."""
    temp = folder / f"{OWNER_FILE}.{os.getpid()}.claim"  # refuse_unless_ours skips these names
    write_json_atomic(temp, record)
    try:
        os.link(temp, folder / OWNER_FILE)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: the last writer wins, as before
        os.replace(temp, folder / OWNER_FILE)
    finally:
        temp.unlink(missing_ok=True)


def _refuse_if_training(path: Path, marker: dict, certain: bool = False) -> None:
    """A UserError when `marker` names another process that is still running on this host (or,
    `certain`, that has just claimed the folder, whatever we can tell about it)."""
    state = _writer_state(marker)
    if state == "running" or (certain and state != "self"):
        raise UserError(
            f"run directory {path} is being written by another training "
            f"(pid {marker.get('pid', '?')}); choose another train.run_name"
        )


def _writer_state(marker: dict) -> str:
    """Whether the process that wrote `marker` is "self" (this one), "running" or "gone" (on
    this host), or "unknown" (another host, or no usable pid)."""
    pid = marker.get("pid")
    if marker.get("host") != socket.gethostname() or type(pid) is not int or pid <= 0:
        return "unknown"
    if pid == os.getpid():
        return "self"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except OSError:  # EPERM: it exists, another user's
        return "running"
    return "running"


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
    writing = ("." + OWNER_FILE, OWNER_FILE + ".")
    foreign = [p for p in path.iterdir() if not p.name.startswith(writing)]
    if foreign and marker is None:
        raise UserError(
            f"{path}: {what} exists and was not written by this project; refusing to write "
            "into it (move it away or choose another name)"
        )
    if marker is not None and marker.get("kind") != kind:
        raise UserError(
            f"{path}: {what} is {_a(str(marker.get('kind')))} folder of this project, not "
            f"{_a(kind)} folder; choose another name"
        )


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


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
        if latest_checkpoint(path) is None and holds_results(path):
            raise UserError(
                f"run directory {path} already exists and holds a trained model; pick another "
                "train.run_name (or move it away)"
            )
        raise UserError(
            f"run directory {path} already exists; pick another train.run_name "
            f"or continue it with train.resume={path}"
        )
    return path


def holds_results(run_dir: Path) -> bool:
    return any(os.path.lexists(Path(run_dir) / name) for name in RESULT_FILES)


def abandoned(run_dir: Path) -> bool:
    """Ours, no checkpoint to resume, no model or metrics, and its creator no longer running on
    this host: a run killed (SIGKILL, power cut) before its first checkpoint and before its first
    saved model. Nothing in it can be continued or is worth keeping. A finished run whose
    checkpoints/ the user deleted to save disk is not abandoned: it holds the model."""
    marker = owner(run_dir)
    if not marker or marker.get("kind") != "run" or latest_checkpoint(run_dir) is not None:
        return False
    if holds_results(run_dir):
        return False
    # "self": this process created it and is not training into it any more (a tuning process,
    # or a test, running the same command again after remove_failed_start kept something)
    return _writer_state(marker) in ("gone", "self")


def _kept(entry: Path) -> bool:
    """A folder of ours of another kind inside a run directory (evaluate.py's RUN/eval-<split>/,
    a prediction folder): not the run's own, so never removed with it."""
    if not entry.is_dir() or entry.is_symlink():
        return False
    marker = owner(entry)
    return marker is not None and marker.get("kind") != "run"


def empty_run_dir(run_dir: Path) -> None:
    """Remove the run's own entries from a run directory of ours, then the folder itself when
    this project made it and nothing is left. Folders of ours of another kind (an evaluation
    written while the run trained) stay, and so does the marker beside them: the folder is still
    ours, and running the same command again still works."""
    run_dir = Path(run_dir)
    marker = owner(run_dir) or {}
    kept = []
    for entry in run_dir.iterdir():
        if entry.name == OWNER_FILE:
            continue  # last: a kill while cleaning leaves a folder we still recognise
        if _kept(entry):
            kept.append(entry.name)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if kept:
        log.warning("%s: kept %s (not the run's own)", run_dir, ", ".join(sorted(kept)))
        return
    (run_dir / OWNER_FILE).unlink(missing_ok=True)
    if not marker.get("made_folder"):
        return
    for folder in [run_dir, *list(run_dir.absolute().parents)[: marker.get("made_parents", 0)]]:
        try:
            folder.rmdir()  # only while empty: another run may live there by now
        except OSError:
            break


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


def sealed_step(run_dir: Path) -> int | None:
    """The training step whose model the run directory holds, complete; None when its files do
    not match their manifest (or it has none)."""
    if manifest_problem(Path(run_dir)) is not None:
        return None
    step = json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8")).get("best_step")
    return step if isinstance(step, int) else None


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
    """Renamed (finished) checkpoints with a manifest, newest first: one per step, its step-NNN
    folder, or the previous one set aside under `.old-step-NNN` when a kill came while the same
    step was being written again (finish_checkpoint) and step-NNN is missing."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    done: dict[str, Path] = {}
    for path in folder.iterdir():
        match = STEP_DIR.match(path.name.removeprefix(ASIDE))
        if match and (path / MANIFEST).is_file():
            if match.group(1) not in done or not path.name.startswith(ASIDE):
                done[match.group(1)] = path
    return [done[step] for step in sorted(done, reverse=True)]


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
    old ones.

    The same step can be checkpointed twice (checkpoint_every dividing an epoch's last step,
    max_steps landing on a checkpoint step). The first one is set aside by a rename before the
    new one is renamed into place and removed only then: a kill at any moment leaves a complete
    checkpoint of the step (`_checkpoints` takes the set-aside one while step-NNN is missing)."""
    tmp = checkpoint_tmp_path(run_dir, step)
    write_json_atomic(tmp / STATE_FILE, asdict(state))
    names = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    write_manifest(tmp, names, step=step)
    final = Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"
    aside = final.with_name(ASIDE + final.name)
    if final.exists():
        shutil.rmtree(aside, ignore_errors=True)  # an older set-aside copy, superseded by final
        os.replace(final, aside)
    os.replace(tmp, final)
    _remove_superseded_asides(run_dir)  # the one just set aside among them
    for old in _checkpoints(run_dir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _remove_superseded_asides(run_dir: Path) -> None:
    """Remove the set-aside checkpoints whose step-NNN is complete again (one that stands in for
    a missing step-NNN stays: `_checkpoints` lists it)."""
    usable = set(_checkpoints(run_dir))
    for aside in (Path(run_dir) / CHECKPOINTS).glob(ASIDE + "step-*"):
        if aside not in usable:
            shutil.rmtree(aside, ignore_errors=True)


def remove_stale_temporaries(run_dir: Path) -> None:
    """Before a resume: what killed runs left half-written, and superseded set-aside copies."""
    for tmp in (Path(run_dir) / CHECKPOINTS).glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_superseded_asides(run_dir)


def read_trainer_state(checkpoint: Path) -> TrainerState:
    with open(checkpoint / STATE_FILE, encoding="utf-8") as f:
        values = json.load(f)
    if not isinstance(values, dict) or set(values) != {f.name for f in fields(TrainerState)}:
        raise ValueError("not the fields of a trainer state")
    return TrainerState(**values)
