"""lib/run_dir.py's cleanup and claims on folders alone (no training): what a re-run, a failed
start, a checkpoint rewrite or a second train.py may remove or take (DESIGN §7, §10)."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lib.run_dir as run_dir
from lib.errors import UserError
from lib.run_dir import (
    MANIFEST,
    OWNER_FILE,
    TrainerState,
    checkpoint_problem,
    checkpoint_tmp_path,
    claim_dir,
    empty_run_dir,
    finish_checkpoint,
    latest_checkpoint,
    new_run_dir,
    remove_failed_start,
    remove_stale_temporaries,
    seal_model_files,
    usable_checkpoint,
)

ROOT = Path(__file__).resolve().parent.parent
DEAD_PID = 2**22 + 12345  # above any pid_max: no such process


def mark(folder: Path, kind: str, pid: int = DEAD_PID, made_folder: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    marker = {"kind": kind, "pid": pid, "host": socket.gethostname(), "made_folder": made_folder}
    (folder / OWNER_FILE).write_text(json.dumps(marker))


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def finished_run(folder: Path) -> None:
    """What a finished run holds (_save_best, _finish), its checkpoints/ deleted by the user."""
    mark(folder, "run")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "config.toml"):
        (folder / name).write_text(f"{name} of the trained model")
    seal_model_files(folder, 7)
    (folder / "metrics.json").write_text('{"best_step": 7}')
    (folder / "alignment.json").write_text("{}")
    (folder / "train.log").write_text("trained\n")


def killed_before_first_checkpoint(folder: Path, pid: int = DEAD_PID) -> None:
    """What a run killed before its first checkpoint holds (_open_run_dir's writes)."""
    mark(folder, "run", pid=pid)
    (folder / "config.toml").write_text("")
    (folder / "alignment.json").write_text("{}")
    (folder / "train.log").write_text("started\n")
    (folder / "checkpoints" / ".tmp-step-00000003").mkdir(parents=True)


def evaluation_inside(run: Path) -> Path:
    """evaluate.py RUN writes RUN/eval-val/, marked as an evaluation folder."""
    out = run / "eval-val"
    mark(out, "evaluation")
    (out / "metrics.json").write_text('{"sentence_f1": 0.5}')
    return out


# ---------------------------------------------------------------- 1. a finished run is kept


@pytest.mark.parametrize("deleted", ["checkpoints", "nothing (a tune best/ folder)"])
def test_a_finished_run_without_checkpoints_is_refused_not_emptied(tmp_path, deleted):
    run = tmp_path / "runs" / "x"
    finished_run(run)
    if deleted == "checkpoints":
        (run / "checkpoints").mkdir()  # emptied by the user, as `rm -r checkpoints/*` leaves it
    else:
        (run / "trial.json").write_text('{"trial": 3, "value": 0.8}')
    before = files_under(run)
    with pytest.raises(UserError, match="already exists") as err:
        new_run_dir(str(tmp_path / "runs"), "x")
    assert "\n" not in str(err.value)
    assert files_under(run) == before


@pytest.mark.parametrize("only", ["metrics.json", MANIFEST, "model.safetensors"])
def test_any_result_file_keeps_a_run_from_being_emptied(tmp_path, only):
    run = tmp_path / "runs" / "x"
    killed_before_first_checkpoint(run)
    (run / only).write_text("{}")
    with pytest.raises(UserError, match="already exists"):
        new_run_dir(str(tmp_path / "runs"), "x")
    assert (run / only).exists()


def test_a_run_killed_before_its_first_checkpoint_is_started_again(tmp_path):
    run = tmp_path / "runs" / "x"
    killed_before_first_checkpoint(run)
    assert new_run_dir(str(tmp_path / "runs"), "x") == run
    assert not run.exists()


# ---------------------------------------------------------------- 2. an evaluation inside stays


def test_a_failed_start_keeps_an_evaluation_written_inside_it(tmp_path, caplog):
    run = tmp_path / "runs" / "x"
    killed_before_first_checkpoint(run, pid=os.getpid())  # this process created it
    (run / "model.safetensors").write_text("a best model saved before the first checkpoint")
    evaluation = evaluation_inside(run)
    kept = files_under(evaluation)
    with caplog.at_level("WARNING", logger="lib.run_dir"):
        remove_failed_start(run)
    assert files_under(evaluation) == kept
    assert sorted(p.name for p in run.iterdir()) == [OWNER_FILE, "eval-val"]
    assert "eval-val" in caplog.text
    # the same command again: the folder is still ours, emptied again, claimed again
    assert new_run_dir(str(tmp_path / "runs"), "x") == run
    claim_dir(run, "run")
    assert files_under(evaluation) == kept


def test_an_abandoned_run_keeps_an_evaluation_and_its_folder(tmp_path):
    run = tmp_path / "runs" / "x"
    killed_before_first_checkpoint(run)
    evaluation = evaluation_inside(run)
    prediction = run / "predictions-new"
    mark(prediction, "prediction")
    user_link = run / "linked-eval"
    user_link.symlink_to(evaluation)  # a link is removed, never what it points to
    assert new_run_dir(str(tmp_path / "runs"), "x") == run
    assert sorted(p.name for p in run.iterdir()) == [OWNER_FILE, "eval-val", "predictions-new"]
    assert (evaluation / "metrics.json").is_file() and (prediction / OWNER_FILE).is_file()
    claim_dir(run, "run")  # its creator is gone: the claim goes through


def test_emptying_a_folder_the_user_made_keeps_the_folder(tmp_path):
    run = tmp_path / "x"
    killed_before_first_checkpoint(run)
    mark(run, "run", made_folder=False)
    empty_run_dir(run)
    assert run.is_dir() and not any(run.iterdir())


# ---------------------------------------------------------------- 3. rewriting a checkpoint


def write_checkpoint(run: Path, step: int, keep: int, content: str, epoch: int = 0) -> Path:
    tmp = checkpoint_tmp_path(run, step)
    tmp.mkdir(parents=True)
    (tmp / "model.bin").write_text(content)  # stands in for accelerate's save_state
    return finish_checkpoint(run, step, TrainerState(epoch=epoch, global_step=step), keep)


def fail_renaming_the_new_one(monkeypatch, run: Path, step: int) -> None:
    """A kill between setting the old checkpoint aside and renaming the new one into place."""
    real_replace, tmp = os.replace, checkpoint_tmp_path(run, step)

    def replace(src, dst, **kwargs):
        if Path(src) == tmp:
            raise KeyboardInterrupt  # what a SIGINT there would do
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(run_dir.os, "replace", replace)


def test_a_kill_while_rewriting_a_step_leaves_a_resumable_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    write_checkpoint(run, 4, keep=1, content="mid-epoch")
    fail_renaming_the_new_one(monkeypatch, run, 4)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(run, 4, keep=1, content="end of epoch", epoch=1)
    monkeypatch.undo()
    checkpoint = latest_checkpoint(run)
    assert checkpoint is not None and checkpoint_problem(checkpoint) is None
    assert usable_checkpoint(run) == checkpoint
    assert (checkpoint / "model.bin").read_text() == "mid-epoch"
    # resume: the half-renamed new one goes, the set-aside one it resumes from stays
    remove_stale_temporaries(run)
    assert usable_checkpoint(run) == checkpoint and checkpoint.is_dir()
    # the resumed run writes the step again: one step-00000004, nothing set aside
    final = write_checkpoint(run, 4, keep=1, content="end of epoch", epoch=1)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000004"]
    assert latest_checkpoint(run) == final and (final / "model.bin").read_text() == "end of epoch"


def test_a_set_aside_checkpoint_is_pruned_like_any_other(tmp_path, monkeypatch):
    run = tmp_path / "run"
    write_checkpoint(run, 4, keep=1, content="first")
    fail_renaming_the_new_one(monkeypatch, run, 4)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(run, 4, keep=1, content="second")
    monkeypatch.undo()
    remove_stale_temporaries(run)
    write_checkpoint(run, 8, keep=1, content="later")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000008"]


def test_a_kill_after_the_rename_leaves_the_new_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    write_checkpoint(run, 4, keep=2, content="first")
    monkeypatch.setattr(run_dir.shutil, "rmtree", lambda *a, **k: None)  # killed before removal
    write_checkpoint(run, 4, keep=2, content="second")
    monkeypatch.undo()
    assert (latest_checkpoint(run) / "model.bin").read_text() == "second"
    remove_stale_temporaries(run)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000004"]


# ---------------------------------------------------------------- 4. two trainings, one folder


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_run_folder_another_live_training_claimed_is_refused(tmp_path, live_pid):
    run = tmp_path / "runs" / "20250101-120000"
    mark(run, "run", pid=live_pid)
    with pytest.raises(UserError, match=f"being written by another training \\(pid {live_pid}\\)"):
        claim_dir(run, "run")
    assert json.loads((run / OWNER_FILE).read_text())["pid"] == live_pid
    remove_failed_start(run)  # what train() does next: nothing, the folder is not this process's
    assert (run / OWNER_FILE).is_file()


def test_two_trainings_claiming_the_same_name_at_once(tmp_path, monkeypatch, live_pid):
    """The other process's marker lands after our look and before our write: exactly one wins."""
    run = tmp_path / "runs" / "20250101-120000"
    real = run_dir._missing_parents

    def other_claims_meanwhile(path):
        count = real(path)
        mark(run, "run", pid=live_pid)
        return count

    monkeypatch.setattr(run_dir, "_missing_parents", other_claims_meanwhile)
    with pytest.raises(UserError, match=f"another training \\(pid {live_pid}\\)"):
        claim_dir(run, "run")
    assert json.loads((run / OWNER_FILE).read_text())["pid"] == live_pid
    assert sorted(p.name for p in run.iterdir()) == [OWNER_FILE]  # no claim leftovers


def test_a_second_process_cannot_claim_a_run_folder_in_use(tmp_path):
    run = tmp_path / "runs" / "x"
    child = textwrap.dedent(
        f"""
        import sys, time
        from lib.run_dir import claim_dir
        claim_dir({str(run)!r}, "run")
        print("claimed", flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"claimed"
        with pytest.raises(UserError, match=f"another training \\(pid {proc.pid}\\)"):
            claim_dir(run, "run")
    finally:
        proc.kill()
        proc.wait()
    claim_dir(run, "run")  # its creator gone, the empty folder is free again
    assert json.loads((run / OWNER_FILE).read_text())["pid"] == os.getpid()


def test_claims_that_must_keep_working(tmp_path, live_pid):
    study = tmp_path / "study"
    mark(study, "study", pid=live_pid)
    claim_dir(study, "study")  # tune.py workers share their study folder
    mine = tmp_path / "mine"
    claim_dir(mine, "run")
    marker = json.loads((mine / OWNER_FILE).read_text())
    assert marker["made_folder"] and marker["pid"] == os.getpid()
    claim_dir(mine, "run")  # this process again (a tuning process's next run)
    assert sorted(p.name for p in mine.iterdir()) == [OWNER_FILE]
