"""DESIGN §10, one test per class of issue 11: a user's mistake never costs data, never shows a
traceback, never writes outside its folder; kills leave the previous complete state or nothing."""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from lib.config import load_config, with_overrides
from lib.data.corpus import load_posts
from lib.errors import UserError, printable
from lib.files import json_line, write_text_atomic
from lib.run_dir import MANIFEST, STATE_FILE, usable_checkpoint
from lib.training.trainer import train
from lib.training.tuning import run_study

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def one_line_exit_2(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    return lines[0]


def tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


# ---------------------------------------------------------------- 1. tune.py never deletes


def test_tune_refuses_a_study_folder_it_did_not_create(tmp_path, tiny_overrides):
    """The issue's repro: a user's trial-0/notes.txt was rmtree'd by the trial's cleanup."""
    user = tmp_path / "v" / "trial-0"
    user.mkdir(parents=True)
    (user / "notes.txt").write_text("x")
    (tmp_path / "v" / "best").mkdir()
    (tmp_path / "v" / "best" / "mine.txt").write_text("keep")
    before = tree(tmp_path)
    proc = cli(
        "tune.py",
        *tiny_overrides(tmp_path),
        "tune.study_name=v",
        f"tune.storage=sqlite:///{tmp_path}/o.db",
        "tune.n_trials=1",
    )
    assert "was not written by this project" in one_line_exit_2(proc)
    assert tree(tmp_path) == before  # no storage file either: refused before the study exists


def test_a_trial_folder_that_is_not_ours_fails_the_trial_and_survives(tmp_path, tiny_overrides):
    cfg = load_config(
        overrides=[
            *tiny_overrides(tmp_path),
            "train.max_steps=1",
            "tune.study_name=s",
            f"tune.storage=sqlite:///{tmp_path}/o.db",
            "tune.n_trials=2",
            "tune.pruner=none",
            "tune.space={ 'train.lr' = { low = 1e-3, high = 5e-3 } }",
        ]
    )
    run_study(with_overrides(cfg, {"tune.n_trials": 1}))  # trial-0, ours
    squatter = tmp_path / "s" / "trial-1"
    squatter.mkdir()
    (squatter / "notes.txt").write_text("mine")
    summary = run_study(cfg)
    assert (squatter / "notes.txt").read_text() == "mine"
    assert summary["trials"]["FAIL"] == 1 and summary["trials"]["COMPLETE"] == 2


# ---------------------------------------------------------------- 2. names are not paths


@pytest.mark.parametrize(
    "override",
    [
        "train.run_name=../x",
        "train.run_name=/abs/x",
        "train.run_name=a/b",
        "train.run_name=..",
        "train.run_name=.hidden",
        'train.run_name="a\\u0000b"',
        "tune.study_name=../../x",
        'tune.study_name=""',
        "tune.study_name=.",
    ],
)
def test_names_are_one_path_component(override):
    with pytest.raises(UserError, match=override.split("=")[0]):
        load_config(overrides=[override])


# ---------------------------------------------------------------- 3. tune.py pre-flight


def test_tune_with_bad_data_exits_2_before_the_study_exists(tmp_path, tiny_overrides):
    proc = cli(
        "tune.py",
        *tiny_overrides(tmp_path),
        f"data.posts={tmp_path}/nope.csv",
        f"tune.storage=sqlite:///{tmp_path}/o.db",
        "tune.n_trials=2",
    )
    assert "nope.csv" in one_line_exit_2(proc)
    assert list(tmp_path.iterdir()) == []


def test_a_setup_that_breaks_mid_study_stops_it(tmp_path, tiny_overrides):
    posts = tmp_path / "posts.csv"
    posts.write_bytes((ROOT / "data/demo/posts.csv").read_bytes())
    cfg = load_config(
        overrides=[
            *tiny_overrides(tmp_path),
            f"data.posts={posts}",
            f"tune.storage=sqlite:///{tmp_path}/o.db",
            "tune.n_trials=5",
        ]
    )
    calls = []

    def train_fn(trial_cfg, on_evaluate=None, data_cache=None):
        calls.append(trial_cfg)
        posts.unlink()  # the corpus vanished: every further trial would fail the same way
        return train(trial_cfg, on_evaluate=on_evaluate, data_cache=data_cache)

    with pytest.raises(UserError, match="the study stopped: .*posts.csv"):
        run_study(cfg, train_fn=train_fn)
    assert len(calls) == 1
    study = optuna.load_study(study_name=cfg.tune.study_name, storage=cfg.tune.storage)
    assert [t.state.name for t in study.trials] == ["FAIL"]


# ---------------------------------------------------------------- 4. OS errors on user paths


def test_unreadable_posts_file_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "posts.csv"
    path.write_text("post_id,text\n1,hello\n")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)  # the posts file is streamed, not read whole
    with pytest.raises(
        UserError, match=r"posts.csv: cannot read the posts file \(Permission denied"
    ):
        load_posts(path)


@pytest.mark.parametrize("kind", ["directory", "utf16"])
def test_config_file_that_is_not_a_toml_file(tmp_path, kind):
    path = tmp_path / "x.toml"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_text("[train]\nepochs = 1\n", encoding="utf-16")
    proc = cli("-m", "lib.data", "a.csv", "b.csv", "--config", path, timeout=60)
    line = one_line_exit_2(proc)
    assert "x.toml" in line and "\x00" not in line


def test_output_dir_that_is_a_file(tmp_path, make_cfg):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(UserError, match="is a file"):
        train(make_cfg(tmp_path, f"train.output_dir={afile}"))
    assert afile.read_text() == "mine"


@pytest.mark.parametrize("storage", ["foo://bar", "journal:{tmp}/afile/x.log", "sqlite:///{tmp}/d"])
def test_bad_storage_is_one_line_before_any_trial(tmp_path, tiny_overrides, storage):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "d").mkdir()
    before = tree(tmp_path)
    cfg = load_config(
        overrides=[*tiny_overrides(tmp_path), f"tune.storage={storage.format(tmp=tmp_path)}"]
    )
    with pytest.raises(UserError, match="tune.storage"):
        run_study(cfg)
    assert tree(tmp_path) == before


# ---------------------------------------------------------------- 5. verified resume


@pytest.fixture
def checkpointed_run(tmp_path, make_cfg):
    extra = ["train.checkpoint_every=2", "train.keep_checkpoints=3", "train.max_steps=6"]
    train(make_cfg(tmp_path, *extra))
    run = tmp_path / "run"
    steps = sorted((run / "checkpoints").glob("step-*"))
    assert [p.name for p in steps] == ["step-00000002", "step-00000004", "step-00000006"]
    return run, steps


@pytest.mark.parametrize(
    "damage",
    ["truncate model.safetensors", "garbage optimizer.bin", "garbage rng", "truncate state"],
)
def test_resume_skips_a_checkpoint_that_does_not_verify(checkpointed_run, damage, caplog):
    run, steps = checkpointed_run
    newest = steps[-1]
    if damage == "truncate model.safetensors":
        path = newest / "model.safetensors"
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage optimizer.bin":
        path = newest / "optimizer.bin"
        path.write_bytes(os.urandom(path.stat().st_size))
    elif damage == "garbage rng":
        path = next(newest.glob("random_states_*.pkl"))
        path.write_bytes(b"\x80\x04garbage" + bytes(path.stat().st_size - 9))
    else:
        path = newest / STATE_FILE
        path.write_text(path.read_text()[:20])
    with caplog.at_level("WARNING", logger="lib.run_dir"):
        assert usable_checkpoint(run) == steps[-2]
    assert f"skipped checkpoint {newest.name}: {path.name}" in caplog.text


def test_resume_with_no_verifiable_checkpoint_is_one_line(checkpointed_run, tiny_overrides):
    run, steps = checkpointed_run
    for step in steps:
        (step / MANIFEST).write_text("{not json")
    proc = cli("train.py", *tiny_overrides(run.parent), f"train.resume={run}")
    line = one_line_exit_2(proc)
    assert "no checkpoint can be resumed exactly" in line and "manifest.json is unreadable" in line


def test_resume_on_another_process_count_is_refused(checkpointed_run, tiny_overrides):
    """Two processes wrote the newest checkpoint (one RNG state each); one process cannot
    continue it exactly, so it is refused before anything runs."""
    run, steps = checkpointed_run
    newest = steps[-1]
    shutil.copy(newest / "random_states_0.pkl", newest / "random_states_1.pkl")
    before = tree(run)
    proc = cli("train.py", *tiny_overrides(run.parent), f"train.resume={run}")
    line = one_line_exit_2(proc)
    assert "was written by 2 processes and this launch has 1" in line
    assert "--num_processes 2" in line and tree(run) == before


def test_a_best_model_left_half_saved_is_never_scored(checkpointed_run, tiny_overrides):
    """Killed while rewriting the best model (its manifest already removed), then resumed from a
    checkpoint past that step: nothing saves it again, so the run stops with one line instead of
    scoring the test split with whatever half-written files are there."""
    run, steps = checkpointed_run
    (run / MANIFEST).unlink()
    proc = cli("train.py", *tiny_overrides(run.parent), f"train.resume={run}")
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "is not on disk complete" in lines[0]
    assert "Traceback" not in proc.stderr


def test_resuming_a_run_another_live_training_writes_is_refused(checkpointed_run, tiny_overrides):
    """`train.resume=latest` picks the run with the newest checkpoint, which may be one still
    training (it holds the folder's lock): refused in one line, its files untouched. The process
    that created the run (this one) being alive is no reason to refuse."""
    run, _ = checkpointed_run
    holder = textwrap.dedent(
        f"""
        import fcntl, os, time
        fd = os.open({str(run)!r}, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(120)
        """
    )
    training = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE)
    try:
        assert training.stdout.readline().strip() == b"locked"
        before = tree(run)
        proc = cli("train.py", *tiny_overrides(run.parent), f"train.resume={run}")
        line = one_line_exit_2(proc)
        assert "is being written by another training" in line and "let it finish" in line
        assert tree(run) == before
    finally:
        training.kill()
        training.wait()
    proc = cli("train.py", *tiny_overrides(run.parent), f"train.resume={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]


# ---------------------------------------------------------------- 6. values that fail late


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=inf", "train.lr: expected a finite number"),
        ("train.lr=nan", "train.lr: expected a finite number"),
        ("decode.null_threshold=nan", "decode.null_threshold: expected a finite number"),
        ("decode.null_threshold=-inf", "decode.null_threshold: expected a finite number"),
        ("train.log_with=['wandbb']", "unknown tracker 'wandbb' (did you mean wandb?)"),
        ("tune.space.train.lr={low=1e-5, high=inf}", "must be finite numbers"),
    ],
)
def test_values_are_checked_at_load(override, message):
    with pytest.raises(UserError, match=re.escape(message)):
        load_config(overrides=[override])


def test_a_tracker_that_is_not_installed_is_refused_before_writing(tmp_path, make_cfg):
    from accelerate.tracking import get_available_trackers

    available = {str(getattr(t, "value", t)) for t in get_available_trackers()}
    missing = next(t for t in ("aim", "clearml", "dvclive", "swanlab") if t not in available)
    with pytest.raises(UserError, match=f"{missing} is not installed"):
        train(make_cfg(tmp_path, f"train.log_with=['{missing}']"))
    assert not (tmp_path / "run").exists()


def test_a_run_that_fails_before_its_first_checkpoint_can_be_run_again(tmp_path, make_cfg):
    cfg = make_cfg(tmp_path, "train.max_steps=2")

    def fail(step, metrics):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        train(cfg, on_evaluate=fail)  # fails at its first validation, before any checkpoint
    assert not (tmp_path / "run").exists()
    handlers = logging.getLogger("lib").handlers  # a tuning process trains on: no stale log
    assert not any(isinstance(h, logging.FileHandler) for h in handlers)
    assert train(cfg)["steps"] == 2  # the same command again


def test_a_run_killed_before_its_first_checkpoint_does_not_block_its_rerun(tmp_path, make_cfg):
    run = tmp_path / "run"
    run.mkdir()
    marker = {"kind": "run", "pid": 2**22 + 12345, "host": os.uname().nodename, "made_folder": 1}
    (run / ".spanbert-evidence.json").write_text(json.dumps(marker))
    (run / "config.toml").write_text("")
    assert train(make_cfg(tmp_path, "train.max_steps=1"))["steps"] == 1


# ---------------------------------------------------------------- 7. and 8. huge and blank text


def test_a_one_megabyte_csv_post_loads_and_is_windowed(tmp_path, tiny_qa_dir):
    from lib.data.examples import build_examples
    from lib.data.features import build_features
    from lib.model.pretrained import load_tokenizer

    text = "I can not sleep at night. " * 40_000  # 1,040,000 characters
    path = tmp_path / "posts.csv"
    path.write_text(f'post_id,text\nbig,"{text}"\n', encoding="utf-8")
    posts = load_posts(path)
    assert len(posts["big"].text) == len(text)
    examples, _ = build_examples(
        posts,
        [],
        symptoms=["SLEEP_ISSUES"],
        question_mode="symptom",
        criteria={},
        negatives="all",
    )
    features = build_features(
        examples, load_tokenizer(tiny_qa_dir), max_length=96, doc_stride=16, max_question_length=24
    )
    assert len(features) > 1000
    assert features.token_offsets[:, 1].max() == len(text.rstrip())  # the whole post is covered


@pytest.mark.parametrize("text", ["\u200b\u200b", " \t\u00a0", "\u200d\ufeff\u2060", "\x01\x02"])
def test_invisible_text_is_empty(tmp_path, text):
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"post_id": "p", "text": text}) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 1, column text: empty text for post 'p'"):
        load_posts(path)


def test_json_outputs_are_strict(tmp_path):
    line = json_line({"best_score": float("-inf"), "spans": [{"score": float("nan")}]})
    assert json.loads(line, parse_constant=lambda c: pytest.fail(c)) == {
        "best_score": None,
        "spans": [{"score": None}],
    }


# ---------------------------------------------------------------- 9. resume with changes


def test_resume_applies_safe_changes_and_refuses_the_rest(checkpointed_run, tiny_overrides):
    run, _ = checkpointed_run
    base = [*tiny_overrides(run.parent), f"train.resume={run}"]
    refused = cli("train.py", *base, "train.lr=0.5", "features.doc_stride=8")
    line = one_line_exit_2(refused)
    assert "train.lr=0.5 (the run has 0.003)" in line and "features.doc_stride=8" in line
    resumed = cli("train.py", *base, "train.max_steps=8")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "learning-rate schedule is laid out again" in resumed.stderr
    assert json.loads((run / "metrics.json").read_text())["steps"] == 8
    # the run's own config is the base: train.resume alone is enough
    again = cli("train.py", f"train.resume={run}", "train.max_steps=9")
    assert again.returncode == 0, again.stderr[-2000:]


# ---------------------------------------------------------------- 10. small ones


def test_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_output_piped_into_head_stops_quietly():
    """`python -m lib.data ... | head`: the reader goes away; no BrokenPipeError traceback."""
    code = (
        "from lib.errors import run_cli\nrun_cli(lambda: [print('row', i) for i in range(10**6)])"
    )
    producer = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert producer.stdout.readline() == b"row 0\n"
    producer.stdout.close()
    stderr = producer.stderr.read()
    assert producer.wait(timeout=60) == 1 and stderr == b"", stderr[-2000:]


def test_messages_never_carry_control_characters():
    assert printable("a\x00b\x1b[31mc\u200bd\ne") == "a\\x00b\\x1b[31mc\\u200bd e"


def test_run_dir_that_is_a_file(tmp_path):
    (tmp_path / "run").write_text("x")
    assert "is a file, not a run directory" in one_line_exit_2(cli("evaluate.py", tmp_path / "run"))


def test_missing_corpus_says_where_redsm5_goes(tmp_path):
    proc = cli("train.py", f"train.output_dir={tmp_path}", timeout=120)
    if (ROOT / "data/redsm5/posts.csv").exists():
        pytest.skip("this machine has the real corpus")  # then the message is not needed
    line = one_line_exit_2(proc)
    assert "data/redsm5/" in line and "--config demo.toml" in line


# ---------------------------------------------------------------- kills


KILL_AT_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import lib.training.trainer as training
    from lib.config import load_config, with_overrides

    original = training.save_qa_model

    def save_then_die(*args, **kwargs):
        original(*args, **kwargs)  # weights, config.json, tokenizer.json replaced...
        os.kill(os.getpid(), signal.SIGKILL)  # ...config.toml and the manifest not yet

    training.save_qa_model = save_then_die
    training.train(load_config(overrides=sys.argv[1:]))
    """
)


def test_kill_while_saving_the_best_model_leaves_nothing_evaluate_accepts(tmp_path, tiny_overrides):
    args = [*tiny_overrides(tmp_path), "train.eval_every=3", "train.checkpoint_every=2"]
    child = cli("-c", KILL_AT_SAVE, *args)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    run = tmp_path / "run"
    assert (run / "model.safetensors").is_file()  # half of a save is on disk
    assert "the saved model is incomplete" in one_line_exit_2(cli("evaluate.py", run))
    resumed = cli("train.py", *args, f"train.resume={run}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert cli("evaluate.py", run).returncode == 0


KILL_BETWEEN_RENAMES = textwrap.dedent(
    """
    import os, signal, sys
    import lib.training.tuning as tuning
    from lib.config import load_config, with_overrides

    class DieOnSecondReplace:
        calls = 0
        def __getattr__(self, name):
            return getattr(os, name)
        def replace(self, src, dst):
            self.calls += 1
            if self.calls == 2:  # best/ moved aside, the new one not yet in place
                os.kill(os.getpid(), signal.SIGKILL)
            os.replace(src, dst)

    tuning.os = DieOnSecondReplace()
    tuning.run_study(load_config(overrides=sys.argv[1:]))
    """
)


def test_kill_during_the_best_update_keeps_the_previous_best(tmp_path, tiny_overrides):
    args = [
        *tiny_overrides(tmp_path),
        "train.max_steps=1",
        "tune.study_name=s",
        f"tune.storage=sqlite:///{tmp_path}/o.db",
        "tune.n_trials=1",
        "tune.pruner=none",
        "train.metric=HasAns_f1",
        "decode.tune_null_threshold=false",
        "tune.space={ 'decode.null_threshold' = { choices = [1e9, -1e9] } }",
    ]
    study = optuna.create_study(
        study_name="s", storage=f"sqlite:///{tmp_path}/o.db", direction="maximize"
    )
    study.enqueue_trial({"decode.null_threshold": -1e9})  # never answers: HasAns_f1 = 0
    study.enqueue_trial({"decode.null_threshold": 1e9})  # always answers: better
    assert cli("tune.py", *args).returncode == 0
    best = tmp_path / "s" / "best"
    first = json.loads((best / "trial.json").read_text())
    child = cli("-c", KILL_BETWEEN_RENAMES, *args)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert not best.exists()  # in the middle of the swap: no half best/ to accept...
    assert list((tmp_path / "s").glob(".best.old-*"))  # ...the previous one kept aside
    study.enqueue_trial({"decode.null_threshold": -1e9})
    assert cli("tune.py", *args).returncode == 0  # the next process puts it back
    assert json.loads((best / "trial.json").read_text()) == first
    assert cli("evaluate.py", best).returncode == 0


def test_an_evaluation_never_writes_over_a_run(checkpointed_run, tiny_overrides):
    run, _ = checkpointed_run
    before = tree(run)
    line = one_line_exit_2(cli("evaluate.py", run, "--out", run))
    assert "is a run folder of this project, not an evaluation folder" in line
    study = cli(
        "tune.py",
        *tiny_overrides(run.parent),
        "tune.study_name=run",  # the run's folder as a study folder
        f"tune.storage=sqlite:///{run.parent}/o.db",
    )
    assert "not a study folder" in one_line_exit_2(study)
    symptoms = cli("evaluate.py", run, "--symptoms", "fatigue,SLEEP_ISSUES")
    assert "--symptoms: data.symptoms: unknown symptom 'fatigue' (did you mean FATIGUE?)" in (
        one_line_exit_2(symptoms)
    )
    assert tree(run) == before
