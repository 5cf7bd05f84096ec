"""The configuration: a tree of frozen dataclasses read from TOML (DESIGN §9).

Resolution order: the dataclass defaults (mirrored, with comments, in the top-level config.toml)
← config.toml ← an optional overlay (`--config X.toml`) ← dotted `key=value` overrides whose values
are parsed as TOML (a value that is not valid TOML is taken as a bare string, so
`train.run_name=demo` works without quotes). Unknown keys get a did-you-mean, wrong types name the
key, the expected and the given type, and cross-field constraints are checked once, here.
`dump_config` writes the resolved tree back as TOML that re-reads to an equal Config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.config_checks import flatten_space, validate
from lib.errors import UserError, did_you_mean, path_error
from lib.symptoms import ALIGN_RULES, CRITERIA, DSM_SYMPTOMS

# The default search space (tune.space): learning-rate schedule and batch size.
DEFAULT_SPACE = {
    "train.lr": {"low": 1e-5, "high": 1e-4, "log": True},
    "train.warmup_ratio": {"low": 0.0, "high": 0.2},
    "train.batch_size": {"choices": [16, 32]},
    "train.weight_decay": {"low": 0.0, "high": 0.1},
}

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.toml"


@dataclass(frozen=True)
class DataConfig:
    posts: str = "data/redsm5/posts.csv"
    annotations: str = "data/redsm5/annotations.csv"
    symptoms: list[str] = field(default_factory=lambda: list(DSM_SYMPTOMS))
    question: str = "criterion"
    negatives: str = "all"
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    seed: int = 42
    fuzzy_threshold: float = 0.8
    align_rules: list[str] = field(default_factory=lambda: list(ALIGN_RULES))
    semantic_threshold: float = 0.2
    semantic_margin: float = 0.03
    semantic_model: str = "minilm-l6"
    limit: int = 0
    criteria: dict[str, str] = field(default_factory=lambda: dict(CRITERIA))


@dataclass(frozen=True)
class ModelConfig:
    name: str = "SpanBERT/spanbert-base-cased"
    dropout: float | str = "checkpoint"
    attention_dropout: float | str = "checkpoint"
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class FeaturesConfig:
    max_length: int = 384
    doc_stride: int = 128
    max_question_length: int = 64
    pad_to_multiple_of: int = 8


@dataclass(frozen=True)
class DecodeConfig:
    n_best: int = 20
    max_answer_length: int = 128
    null_threshold: float = 0.0
    tune_null_threshold: bool = True
    multi_span: bool = True
    snap_to_sentence: bool = True


@dataclass(frozen=True)
class TrainConfig:
    output_dir: str = "runs"
    run_name: str = ""
    epochs: int = 3
    max_steps: int = 0
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    no_answer_fraction: float = 1.0
    span_loss: str = "mean"
    mixed_precision: str = "auto"
    compile: bool = False
    seed: int = 42
    metric: str = "sentence_f1"
    patience: int = 2
    eval_every: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: str = ""
    log_with: list[str] = field(default_factory=list)
    threads: int = 0


@dataclass(frozen=True)
class TuneConfig:
    n_trials: int = 20
    timeout: float = 0.0
    storage: str = "sqlite:///runs/optuna.db"
    study_name: str = "spanbert-evidence"
    seed: int = 42
    pruner: str = "median"
    pruner_startup_trials: int = 3
    retrain_best: bool = False
    space: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SPACE.items()}
    )


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)


# ---------------------------------------------------------------- typed construction from dicts


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, key)
            except UserError:
                continue
    elif origin is list:
        if isinstance(value, list):
            (item_tp,) = typing.get_args(tp)
            return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            _, value_tp = typing.get_args(tp)
            return {str(k): _coerce(v, value_tp, f"{key}.{k}") for k, v in value.items()}
    elif tp is Any:
        return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and abs(value) >= 2**1023:  # TOML ints have no size limit
                raise UserError(f"config key {key}: too large (about 2**{value.bit_length()})")
            if not math.isfinite(value):  # no key means "unlimited" by inf: 0 does that
                raise UserError(f"config key {key}: expected a finite number, got {value!r}")
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    raise UserError(
        f"config key {key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
    )


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise UserError(f"unknown config key {dotted}{did_you_mean(key, names, prefix)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise UserError(f"config key {dotted}: expected a table, got {value!r}")
            kwargs[key] = _build(tp, value, f"{dotted}.")
        else:
            kwargs[key] = _coerce(value, tp, dotted)
    return cls(**kwargs)


# ---------------------------------------------------------------- merging and overrides


def _merge(base: dict, update: dict) -> dict:
    """Recursive dict merge; tables merge key by key, everything else is replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "space":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: str | Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a folder, not a TOML file") from None
    except OSError as err:
        raise path_error(path, "read the config file", err) from None
    except UnicodeDecodeError as err:
        raise UserError(
            f"config file {path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at "
            f"offset {err.start}); TOML files are UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"config file {path}: invalid TOML: {err}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.lr=1e-4` -> (["train", "lr"], 1e-4); an unparseable value is a bare string."""
    if "=" not in text:
        raise UserError(f"override {text!r} must look like key=value, e.g. train.lr=3e-5")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    parts = key.split(".")
    if len(parts) < 2 or not all(parts):
        raise UserError(f"override key {key!r} must be dotted, e.g. train.lr")
    return parts, value


def _field_type(parts: list[str]) -> Any:
    """The annotation of the config key `parts` names, None when it names none."""
    tp: Any = Config
    for part in parts:
        if not dataclasses.is_dataclass(tp):
            return None
        tp = typing.get_type_hints(tp).get(part)
    return tp


def _nest(parts: list[str], value: Any) -> dict:
    for part in reversed(parts):
        value = {part: value}
    return value


def load_config(
    overlay: str | Path | None = None,
    overrides: typing.Sequence[str] = (),
    *,
    base: str | Path | None = DEFAULT_CONFIG_PATH,
) -> Config:
    """Defaults ← base config.toml (if it exists) ← overlay ← overrides; validated."""
    values: dict = {}
    if base is not None and Path(base).exists():
        values = _merge(values, _read_toml(base))
    if overlay is not None:
        values = _merge(values, _read_toml(overlay))
    for text in overrides:
        parts, value = parse_override(text)
        if _field_type(parts) is str and not isinstance(value, str):
            value = text.split("=", 1)[1].strip()  # train.run_name=2024-05-01 names a run
        if parts[:2] == ["tune", "space"] and len(parts) > 2:
            # tune.space.train.lr={low=1e-5, high=1e-4} names one search dimension
            space = dict(_space_table(values) or {})
            space[".".join(parts[2:])] = value
            values = _merge(values, {"tune": {"space": space}})
        else:
            values = _merge(values, _nest(parts, value))
    return config_from_dict(values)


def _space_table(values: dict) -> dict | None:
    """values["tune"]["space"], each checked to be a table; None when absent."""
    tune = values.get("tune", {})
    if not isinstance(tune, dict):
        raise UserError(f"config key tune: expected a table, got {type(tune).__name__}")
    space = tune.get("space")
    if space is not None and not isinstance(space, dict):
        raise UserError(f"config key tune.space: expected a table, got {type(space).__name__}")
    return space


def config_from_dict(values: dict) -> Config:
    space = _space_table(values)
    if space is not None:
        values = _merge(values, {"tune": {"space": flatten_space(space)}})
    cfg = _build(Config, values, "")
    validate(cfg)
    return cfg


# ---------------------------------------------------------------- writing TOML back


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes; TOML also forbids raw DEL.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else _toml_value(key)


def dump_config(cfg: Config) -> str:
    """The resolved config as TOML; `config_from_dict(tomllib.loads(dump_config(c))) == c`."""
    lines = []
    for section in dataclasses.fields(cfg):
        node = getattr(cfg, section.name)
        lines.append(f"[{section.name}]")
        tables = []
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, dict):
                tables.append((f.name, value))
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        for name, table in tables:
            lines.append(f"\n[{section.name}.{name}]")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items())
        lines.append("")
    return "\n".join(lines)


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def with_overrides(cfg: Config, values: dict[str, Any]) -> Config:
    """A copy of `cfg` with dotted keys replaced (e.g. a tuning trial's parameters), validated."""
    merged = to_dict(cfg)
    for dotted, value in values.items():
        merged = _merge(merged, _nest(dotted.split("."), value))
    return config_from_dict(merged)
