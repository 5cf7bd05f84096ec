"""Config: defaults mirrored by config.toml, overlays, overrides, errors, TOML round trip."""

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    config_from_dict,
    dump_config,
    load_config,
    with_overrides,
)
from lib.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_config_toml_holds_every_default():
    assert load_config() == Config()
    text = DEFAULT_CONFIG_PATH.read_text()
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(getattr(Config(), section.name)):
            assert f"\n{f.name} = " in text or f"[{section.name}.{f.name}]" in text, f.name


def test_every_config_line_has_a_comment():
    for line in DEFAULT_CONFIG_PATH.read_text().splitlines():
        stripped = line.strip()
        in_table = stripped.startswith('"') or stripped[:1].isupper()  # criteria / space rows
        if "=" in stripped and not stripped.startswith("#") and not in_table:
            assert "#" in stripped, f"no comment: {line}"


def test_overlay_then_overrides_in_order(tmp_path):
    overlay = tmp_path / "o.toml"
    overlay.write_text('[train]\nlr = 1e-4\nepochs = 7\n[data.criteria]\nFATIGUE = "tired?"\n')
    cfg = load_config(overlay, ["train.lr=2e-4", "train.run_name=demo", "model.dropout=0.0"])
    assert cfg.train.lr == 2e-4  # override beats overlay
    assert cfg.train.epochs == 7  # overlay beats config.toml
    assert cfg.train.run_name == "demo"  # bare string accepted
    assert cfg.model.dropout == 0.0
    assert cfg.data.criteria["FATIGUE"] == "tired?"
    assert cfg.data.criteria["ANHEDONIA"] == Config().data.criteria["ANHEDONIA"]  # tables merge


def test_int_accepted_for_float_and_list_override():
    cfg = load_config(overrides=["train.lr=1", "data.symptoms=['FATIGUE','ANHEDONIA']"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.data.symptoms == ["FATIGUE", "ANHEDONIA"]


def test_a_text_setting_takes_the_override_as_typed():
    """train.run_name=2024-05-01 is a run name, not a TOML date (nor 2024 an int)."""
    cfg = load_config(
        overrides=["train.run_name=2024-05-01", "tune.study_name=7", "train.resume= 12 "]
    )
    assert (cfg.train.run_name, cfg.tune.study_name, cfg.train.resume) == ("2024-05-01", "7", "12")
    assert load_config(overrides=['train.run_name="a b"']).train.run_name == "a b"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "unknown config key train.lrr (did you mean train.lr?)"),
        ("trian.lr=1", "unknown config key trian (did you mean train?)"),
        ("train.lr=abc", "config key train.lr: expected float, got str 'abc'"),
        ("train.epochs=1.5", "config key train.epochs: expected int, got float 1.5"),
        ("train.compile=1", "config key train.compile: expected bool, got int 1"),
        ("features.doc_stride=400", "features.doc_stride=400 must be < features.max_length"),
        ("features.max_length=60", "features.max_length=60 leaves no room"),
        ("train.metric=sentence_f2", "did you mean sentence_f1?"),
        ("data.split=[0.5,0.5]", "data.split must be three"),
        ("data.symptoms=['FATIGUE','SLEEPING']", "unknown symptom 'SLEEPING'"),
        ("data.question=what", "data.question must be one of criterion, symptom, empty"),
        ("train.mixed_precision=fp8", "train.mixed_precision must be"),
        ("tune.space.train.lr={low=1,high=0.5}", "empty range, low=1 must be < high=0.5"),
        ("tune.space.train.lx={low=0,high=1}", "tune.space.train.lx: unknown config key"),
        ("nodots=1", "must be dotted"),
        ("train.lr", "must look like key=value"),
        ("train.seed=-1", "train.seed must be in [0, 2**32)"),
        ("tune.seed=4294967296", "tune.seed must be in [0, 2**32)"),
        ("train.lr=1" + "0" * 400, "config key train.lr: too large (about 2**1329)"),
        ("tune.timeout=-1" + "0" * 400, "config key tune.timeout: too large"),
        ("train.run_name=" + "é" * 101, "must be at most 200 bytes in UTF-8"),
        ("tune.space=3", "config key tune.space: expected a table, got int"),
    ],
)
def test_bad_config_is_one_clear_line(override, message):
    with pytest.raises(UserError) as err:
        load_config(overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_symptom_metric_and_space_override():
    cfg = load_config(
        overrides=[
            "train.metric=FATIGUE/sentence_f1",
            "tune.space.model.dropout={low=0.0,high=0.3}",
        ]
    )
    assert cfg.train.metric == "FATIGUE/sentence_f1"
    assert cfg.tune.space["model.dropout"] == {"low": 0.0, "high": 0.3}


def test_round_trip_of_defaults_and_overrides():
    for cfg in (
        Config(),
        load_config(overrides=['model.name="a \\"quoted\\" näme\\u007f"', "train.lr=1e-7"]),
    ):
        assert config_from_dict(tomllib.loads(dump_config(cfg))) == cfg


@settings(max_examples=40, deadline=None)
@given(
    lr=st.floats(min_value=1e-9, max_value=10, allow_nan=False),
    name=st.text(max_size=20),
    epochs=st.integers(1, 10**6),
    question=st.text(min_size=1, max_size=40).filter(lambda s: s.strip()),
)
def test_round_trip_property(lr, name, epochs, question):
    cfg = with_overrides(
        Config(),
        {
            "train.lr": lr,
            "model.name": name,  # any string: a path, a Hub id, an alias
            "train.epochs": epochs,
            "data.criteria.FATIGUE": question,
        },
    )
    assert config_from_dict(tomllib.loads(dump_config(cfg))) == cfg


def test_demo_overlay_is_valid():
    cfg = load_config(ROOT / "demo.toml")
    assert cfg.model.name == "minilm-l6"
    assert Path(ROOT / cfg.data.posts).is_file()


def test_missing_overlay_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(UserError, match="invalid TOML"):
        load_config(bad)


def test_cli_config_error_exit_2():
    proc = subprocess.run(
        [sys.executable, "train.py", "train.lrr=1"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown config key train.lrr (did you mean train.lr?)"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        # every trial would fail when its value is coerced to the key's type
        (
            "tune.space.train.batch_size={low=8.0,high=32.0}",
            "tune.space.train.batch_size: train.batch_size is an int setting: low and high must "
            "be integers",
        ),
        (
            "tune.space.train.batch_size={choices=[8.0,16]}",
            "tune.space.train.batch_size: choice 8.0 is not a valid value",
        ),
        ("tune.space.train.batch_size={low=8,high=32,step=2.0}", "step must be a positive integer"),
        ("tune.space.train.lr={low=1e-5,high=1e-4,step=0}", "step must be a positive number"),
        ("tune.space.train.compile={low=0,high=1}", "train.compile takes bool, not a number range"),
        ("tune.space.train.span_loss={choices=['mean',1]}", "choice 1 is not a valid value"),
        ("tune.space.train.lr={low=1e-5,high=1e-4,log='yes'}", "log must be true or false"),
        ("tune.space.data.symptoms={choices=[['FATIGUE']]}", "data.symptoms is a list setting"),
    ],
)
def test_search_space_values_must_fit_the_key_type(override, message):
    with pytest.raises(UserError) as err:
        load_config(overrides=[override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_search_space_values_of_the_key_type_load():
    cfg = load_config(
        overrides=[
            "tune.space={ 'train.batch_size' = { low = 8, high = 32, step = 8 },"
            " 'train.compile' = { choices = [true, false] },"
            " 'model.dropout' = { choices = [0.1, 'checkpoint'] },"
            " 'train.warmup_ratio' = { low = 0, high = 1 } }"
        ]
    )
    assert set(cfg.tune.space) == {
        "train.batch_size",
        "train.compile",
        "model.dropout",
        "train.warmup_ratio",
    }


@pytest.mark.parametrize("text", ["tune = 5\n", "[tune]\nspace = []\n"])
def test_a_tune_section_that_is_not_a_table_is_one_line(tmp_path, text):
    overlay = tmp_path / "o.toml"
    overlay.write_text(text)
    with pytest.raises(UserError, match=r"^config key tune(\.space)?: expected a table"):
        load_config(overlay)
    with pytest.raises(UserError, match=r"^config key tune(\.space)?: expected a table"):
        load_config(overlay, ["tune.space.train.lr={low=1e-5,high=1e-4}"])
