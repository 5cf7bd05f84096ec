"""tune.py: failing and pruned trials, continuing a study, the best run, concurrent workers."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from lib.config import load_config
from lib.errors import UserError
from lib.training.tuning import run_study

ROOT = Path(__file__).resolve().parent.parent

# Always answer (a null threshold no score gap reaches) vs never answer: a never-answering trial
# scores HasAns_f1 = 0 at its first evaluation, below the median of the answering ones, so the
# median pruner stops it deterministically.
ALWAYS, NEVER = 1e9, -1e9
SPACE = (
    "tune.space={ 'decode.null_threshold' = { choices = [1e9, -1e9] },"
    " 'features.doc_stride' = { choices = [16, 10000] } }"
)


@pytest.fixture
def tune_overrides(tmp_path, tiny_overrides):
    return [
        *tiny_overrides(tmp_path),
        "train.epochs=2",
        "train.metric=HasAns_f1",
        "decode.tune_null_threshold=false",
        SPACE,
        "tune.study_name=tiny",
        f"tune.storage=sqlite:///{tmp_path}/optuna.db",
        "tune.pruner_startup_trials=2",
    ]


def test_study_records_failure_prunes_continues_and_keeps_the_best(tmp_path, tune_overrides):
    cfg = load_config(overrides=[*tune_overrides, "tune.n_trials=4"])
    storage = cfg.tune.storage
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    for null, stride in ((ALWAYS, 16), (ALWAYS, 16), (NEVER, 16), (ALWAYS, 10000)):
        study.enqueue_trial({"decode.null_threshold": null, "features.doc_stride": stride})

    summary = run_study(cfg)

    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert "features.doc_stride=10000 must be <" in trials[3].user_attrs["fail_reason"]
    assert summary["trials"]["COMPLETE"] == 2 and summary["best_trial"] in (0, 1)
    study_dir = tmp_path / "tiny"
    assert json.loads((study_dir / "best.json").read_text())["best_value"] == summary["best_value"]
    rows = list(csv.DictReader((study_dir / "trials.csv").open()))
    assert [r["state"] for r in rows] == states and "doc_stride" in rows[3]["fail_reason"]
    assert sorted(p.name for p in study_dir.iterdir() if p.is_dir()) == ["best"]  # trials cleaned

    # re-running adds trials to the same study
    run_study(load_config(overrides=[*tune_overrides, "tune.n_trials=1"]))
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 5

    # the best trial's run directory is one evaluate.py accepts
    proc = subprocess.run(
        [sys.executable, "evaluate.py", str(study_dir / "best")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (study_dir / "best" / "eval-test" / "metrics.json").is_file()


def test_two_workers_share_a_journal(tmp_path, tune_overrides):
    journal = tmp_path / "study.journal"
    args = [
        *tune_overrides,
        f"tune.storage=journal:{journal}",
        "tune.n_trials=2",
        "tune.pruner=none",
        "tune.space={ 'train.lr' = { low = 1e-3, high = 5e-3 } }",
    ]
    workers = [
        subprocess.Popen(
            [sys.executable, "tune.py", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-2000:]
    from lib.training.tuning import open_storage

    trials = optuna.load_study(study_name="tiny", storage=open_storage(f"journal:{journal}")).trials
    numbers = [t.number for t in trials]
    assert len(trials) == 4 and sorted(numbers) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert (tmp_path / "tiny" / "best" / "model.safetensors").is_file()


def test_ctrl_c_records_the_running_trial_and_writes_the_summary(tmp_path, tune_overrides):
    args = [
        *tune_overrides,
        "tune.n_trials=20",  # far more than run before the signal, so the study can't just end
        "tune.pruner=none",
        "tune.space={ 'train.lr' = { low = 1e-3, high = 5e-3 } }",
        "train.epochs=8",  # after a trial's first evaluation, 7 epochs remain for the signal
    ]
    proc = subprocess.Popen(
        [sys.executable, "tune.py", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that starts pytest in the background (`cmd &`) ignores SIGINT in it, and an
        # ignored signal stays ignored across exec: Python would never raise KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    storage = f"sqlite:///{tmp_path}/optuna.db"
    deadline = time.monotonic() + 300
    trials: list[optuna.trial.FrozenTrial] = []
    # Wait until a trial has completed and the next one is mid-training (it has reported its
    # first evaluation, so most of its epochs are still ahead): the signal can't miss it.
    while not (
        any(t.state.name == "COMPLETE" for t in trials)
        and trials[-1].state.name == "RUNNING"
        and trials[-1].intermediate_values
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            states = [t.state.name for t in trials]
            pytest.fail(f"no trial running after a complete one: {states} {proc.stderr.read()}")
        time.sleep(0.1)
        try:
            trials = optuna.load_study(study_name="tiny", storage=storage).trials
        except KeyError:  # the study is not created yet
            continue
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: writing the summary" in err, err[-2000:]
    ended = [t.state.name for t in optuna.load_study(study_name="tiny", storage=storage).trials]
    assert ended[-1] == "FAIL" and set(ended[:-1]) == {"COMPLETE"}  # the running one: FAIL
    summary = json.loads((tmp_path / "tiny" / "best.json").read_text())
    assert summary["trials"]["COMPLETE"] == len(ended) - 1 and summary["trials"]["FAIL"] == 1
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir() if p.is_dir()) == ["best"]


def test_bad_search_space_is_rejected_at_load(tiny_overrides, tmp_path):
    with pytest.raises(UserError, match="empty range"):
        load_config(overrides=["tune.space.train.lr={low=1e-3, high=1e-4}"])
    with pytest.raises(UserError, match="unknown config key"):
        load_config(overrides=["tune.space.train.learning_rate={low=1e-4, high=1e-3}"])
    with pytest.raises(UserError, match="tune.space is empty"):
        run_study(load_config(overrides=[*tiny_overrides(tmp_path), "tune.space={}"]))


def fake_train(values):
    """A train_fn that writes a run folder of ours and scores it with the next of `values`
    (a run named best-retrained-* is the retraining); records (run_name, value) per call."""
    from lib.run_dir import claim_dir

    calls = []

    def train_fn(trial_cfg, on_evaluate=None, data_cache=None):
        run_dir = Path(trial_cfg.train.output_dir) / trial_cfg.train.run_name
        claim_dir(run_dir, "run")
        value = values.pop(0)
        (run_dir / "made_by.txt").write_text(trial_cfg.train.run_name)
        calls.append((trial_cfg.train.run_name, value))
        return {"val": {trial_cfg.train.metric: value}, "run_dir": str(run_dir)}

    train_fn.calls = calls
    return train_fn


def test_a_changed_search_space_of_an_existing_study_stops_before_any_trial(
    tmp_path, tune_overrides
):
    cfg = load_config(overrides=[*tune_overrides, "tune.space.train.batch_size={choices=[8,16]}"])
    study = optuna.create_study(study_name="tiny", storage=cfg.tune.storage, direction="maximize")
    old = optuna.distributions.CategoricalDistribution([16, 32])
    study.add_trial(
        optuna.trial.create_trial(
            params={"train.batch_size": 16}, distributions={"train.batch_size": old}, value=0.5
        )
    )
    train_fn = fake_train([0.9] * 5)
    with pytest.raises(UserError) as err:
        run_study(cfg, train_fn=train_fn)
    message = str(err.value)
    assert message.startswith("tune.space.train.batch_size: ") and "\n" not in message
    assert "choices [16, 32]" in message and "tune.study_name" in message
    assert train_fn.calls == []  # no trial ran, none was added, no study folder was made
    assert len(optuna.load_study(study_name="tiny", storage=cfg.tune.storage).trials) == 1
    assert not (tmp_path / "tiny").exists()


def test_a_study_continues_with_a_compatible_search_space(tmp_path, tune_overrides):
    """What Optuna accepts in one study -- a moved range, a new key -- is not refused."""
    from lib.training.tuning import check_space_matches_study

    study = optuna.create_study(direction="maximize")
    lr = optuna.distributions.FloatDistribution(1e-5, 1e-4, log=True)
    study.add_trial(
        optuna.trial.create_trial(
            params={"train.lr": 3e-5}, distributions={"train.lr": lr}, value=0.5
        )
    )
    moved = load_config(
        overrides=[
            *tune_overrides,
            "tune.space={ 'train.lr' = { low = 1e-4, high = 1e-3, log = true },"
            " 'train.batch_size' = { choices = [8, 16] } }",
        ]
    )
    check_space_matches_study(moved, study)
    for space, old in (
        ("{ low = 1e-4, high = 1e-3 }", "float 1e-05..0.0001, log"),  # log scale dropped
        ("{ choices = [1e-4, 1e-3] }", "float 1e-05..0.0001, log"),  # a range became choices
    ):
        changed = load_config(overrides=[*tune_overrides, f"tune.space={{ 'train.lr' = {space} }}"])
        with pytest.raises(UserError, match=f"tune.space.train.lr: .*searched {old}"):
            check_space_matches_study(changed, study)


def test_a_float_setting_is_searched_over_reals_even_with_integer_bounds(tune_overrides):
    from lib.training.tuning import space_distributions

    cfg = load_config(
        overrides=[
            *tune_overrides,
            "tune.space={ 'train.warmup_ratio' = { low = 0, high = 1 },"
            " 'train.batch_size' = { low = 8, high = 32, step = 8 } }",
        ]
    )
    space = space_distributions(cfg)
    assert space["train.warmup_ratio"] == optuna.distributions.FloatDistribution(0.0, 1.0)
    assert space["train.batch_size"] == optuna.distributions.IntDistribution(8, 32, step=8)


def test_a_retrained_best_is_replaced_only_by_a_better_trial(tmp_path, tune_overrides):
    args = [*tune_overrides, "tune.pruner=none", "tune.space.train.lr={low=1e-3,high=5e-3}"]
    best = tmp_path / "tiny" / "best"
    # trial 0 scores 0.6; its retraining scores 0.55 and becomes best/, standing for trial 0
    first = fake_train([0.6, 0.55])
    summary = run_study(
        load_config(overrides=[*args, "tune.n_trials=1", "tune.retrain_best=true"]),
        train_fn=first,
    )
    assert summary["retrained_value"] == 0.55
    assert (best / "made_by.txt").read_text().startswith("best-retrained-")
    assert json.loads((best / "trial.json").read_text()) == {
        "trial": 0,
        "value": 0.6,
        "retrained_value": 0.55,
    }
    # the next invocation: a worse trial leaves it (it beats 0.55 but not trial 0's 0.6) ...
    run_study(load_config(overrides=[*args, "tune.n_trials=1"]), train_fn=fake_train([0.58]))
    assert (best / "made_by.txt").read_text().startswith("best-retrained-")
    # ... a better one replaces it
    run_study(load_config(overrides=[*args, "tune.n_trials=1"]), train_fn=fake_train([0.7]))
    assert (best / "made_by.txt").read_text() == "trial-2"
    assert json.loads((best / "trial.json").read_text()) == {"trial": 2, "value": 0.7}


def test_a_retraining_does_not_replace_a_better_best_another_worker_kept(tmp_path, tune_overrides):
    from lib.run_dir import claim_dir
    from lib.training.tuning import _keep_if_best

    folder = tmp_path / "tiny"
    inner = fake_train([0.6, 0.55])

    def train_fn(trial_cfg, on_evaluate=None, data_cache=None):
        if trial_cfg.train.run_name.startswith("best-retrained-"):  # meanwhile, another worker
            other = tmp_path / "other-run"
            claim_dir(other, "run")
            _keep_if_best(other, folder, 7, 0.9)
        return inner(trial_cfg, on_evaluate, data_cache)

    cfg = load_config(
        overrides=[
            *tune_overrides,
            "tune.n_trials=1",
            "tune.retrain_best=true",
            "tune.space.train.lr={low=1e-3,high=5e-3}",
        ]
    )
    run_study(cfg, train_fn=train_fn)
    assert json.loads((folder / "best" / "trial.json").read_text()) == {"trial": 7, "value": 0.9}
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["best"]
