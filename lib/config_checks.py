"""Checks on a loaded Config: ranges, cross-field constraints, and the tuning search space.

Run once, by lib.config.config_from_dict (imports point one way: config -> config_checks), so that every mistake is reported at load -- with a
message naming the keys and values involved -- before any data is read or anything is written.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import TYPE_CHECKING, Any

from lib.errors import UserError, did_you_mean
from lib.evaluation.metrics import METRIC_NAMES, RANKING_MEANS, is_valid_metric
from lib.symptoms import ALIGN_RULES, ALL_SYMPTOMS, NEGATIVE_MODES, QUESTION_MODES

if TYPE_CHECKING:  # config imports this module to check what it loads
    from lib.config import Config

SPACE_KEYS = {"low", "high", "log", "step", "choices"}


def flatten_space(space: dict, prefix: str = "") -> dict[str, dict]:
    """`{train: {lr: {low, high}}}` or `{"train.lr": {...}}` -> `{"train.lr": {...}}`."""
    flat = {}
    for key, value in space.items():
        dotted = f"{prefix}{key}"
        if not isinstance(value, dict):
            raise UserError(f"config key tune.space.{dotted}: expected a table like {{low, high}}")
        if value and set(value) <= SPACE_KEYS:
            flat[dotted] = value
        else:
            flat.update(flatten_space(value, f"{dotted}."))
    return flat


def space_field_type(cfg: Config, dotted: str) -> Any:
    """The annotation of the config field a search-space key names (`train.batch_size` -> int)."""
    section, _, name = dotted.partition(".")
    return typing.get_type_hints(type(getattr(cfg, section)))[name]


def is_int_field(tp: Any) -> bool:
    """A plain int setting: its low/high range is searched over integers."""
    return tp is int


def _field_types(tp: Any) -> tuple:
    origin = typing.get_origin(tp)
    return typing.get_args(tp) if origin in (typing.Union, types.UnionType) else (tp,)


def _is_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) < 2**1023


def _fits(value: Any, tp: Any) -> bool:
    """Whether a trial may set the field annotated `tp` to `value` (lib.config's coercion)."""
    for option in _field_types(tp):
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option is float and _is_number(value):
            return True
        if option in (bool, str) and isinstance(value, option):
            return True
    return False


def _type_words(tp: Any) -> str:
    return " or ".join(getattr(t, "__name__", str(t)) for t in _field_types(tp))


def _check_choices(key: str, dotted: str, spec: dict, tp: Any) -> None:
    choices = spec["choices"]
    if not isinstance(choices, list) or not choices:
        raise UserError(f"{key}: choices must be a non-empty list")
    if set(spec) - {"choices"}:
        raise UserError(f"{key}: give either choices or low/high, not both")
    for choice in choices:
        if not _fits(choice, tp):
            raise UserError(
                f"{key}: choice {choice!r} is not a valid value of {dotted}, which takes "
                f"{_type_words(tp)}"
            )


def _check_range(key: str, dotted: str, spec: dict, tp: Any) -> None:
    kinds = _field_types(tp)
    if int not in kinds and float not in kinds:
        raise UserError(
            f"{key}: {dotted} takes {_type_words(tp)}, not a number range: give choices = [...]"
        )
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{key}: needs low and high (or choices)")
    low, high = spec["low"], spec["high"]
    if not all(_is_number(v) for v in (low, high)):
        raise UserError(f"{key}: low and high must be finite numbers, got {low!r} and {high!r}")
    integer = is_int_field(tp)
    step = spec.get("step")
    if integer and not all(isinstance(v, int) for v in (low, high)):
        raise UserError(
            f"{key}: {dotted} is an int setting: low and high must be integers, got {low!r} and "
            f"{high!r}"
        )
    if not low < high:
        raise UserError(f"{key}: empty range, low={low} must be < high={high}")
    if "log" in spec and not isinstance(spec["log"], bool):
        raise UserError(f"{key}: log must be true or false, got {spec['log']!r}")
    if spec.get("log") and low <= 0:
        raise UserError(f"{key}: log scale needs low > 0, got low={low}")
    if step is not None:
        if spec.get("log"):
            raise UserError(f"{key}: step and log cannot be combined")
        if not _is_number(step) or step <= 0 or (integer and not isinstance(step, int)):
            kind = "a positive integer" if integer else "a positive number"
            raise UserError(f"{key}: step must be {kind}, got {step!r}")


def _check_space(cfg: Config) -> None:
    """Every search dimension names a tunable key and only proposes values of that key's type:
    a mistake here would otherwise fail every trial of the study."""
    for dotted, spec in cfg.tune.space.items():
        key = f"tune.space.{dotted}"
        section, _, name = dotted.partition(".")
        if section not in {f.name for f in dataclasses.fields(cfg)} or section == "tune":
            raise UserError(f"{key}: {dotted} is not a tunable config key")
        fields = [f.name for f in dataclasses.fields(getattr(cfg, section))]
        if name not in fields:
            raise UserError(f"{key}: unknown config key{did_you_mean(name, fields, section + '.')}")
        tp = space_field_type(cfg, dotted)
        if not set(_field_types(tp)) & {int, float, bool, str}:
            raise UserError(
                f"{key}: {dotted} is a {_type_words(tp)} setting and cannot be searched; "
                "tune.space takes number, true/false or text settings"
            )
        if "choices" in spec:
            _check_choices(key, dotted, spec, tp)
        else:
            _check_range(key, dotted, spec, tp)


# accelerate's tracker names (accelerate.utils.LoggerType), spelled here so that a config is
# checked without importing accelerate; whether the package is installed is checked by train().
TRACKERS = (
    "all", "aim", "tensorboard", "wandb", "trackio", "comet_ml", "mlflow", "clearml", "dvclive",
    "swanlab",
)  # fmt: skip
MAX_NAME = 200


def check_name(key: str, name: str, *, allow_empty: bool) -> None:
    """A name from config becomes a folder under train.output_dir: one safe path component,
    so nothing is ever written outside it (DESIGN §10)."""
    if not name:
        _require(allow_empty, f"{key} must not be empty")
        return
    problem = None
    if name in (".", "..") or "/" in name or "\\" in name:
        problem = "must be a single folder name, not a path"
    elif name.startswith("."):
        problem = "must not start with '.' (hidden names are kept for temporary files)"
    elif name != name.strip() or not name.isprintable():
        problem = "must not contain control characters or leading/trailing spaces"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:  # file systems count bytes
        problem = f"must be at most {MAX_NAME} bytes in UTF-8"
    _require(problem is None, f"{key}={name!r} {problem}")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _check_alignment(d) -> None:
    """data.fuzzy_threshold, align_rules and the semantic rule's keys."""
    _require(0.0 < d.fuzzy_threshold <= 1.0, "data.fuzzy_threshold must be in (0, 1]")
    for rule in d.align_rules:
        _require(
            rule in ALIGN_RULES,
            f"data.align_rules: unknown rule {rule!r}{did_you_mean(rule, list(ALIGN_RULES), '')}"
            f" (the rules: {', '.join(ALIGN_RULES)})",
        )
    _require(bool(d.align_rules), "data.align_rules must name at least one rule")
    _require(len(set(d.align_rules)) == len(d.align_rules), "data.align_rules has duplicates")
    _require(0.0 < d.semantic_threshold <= 1.0, "data.semantic_threshold must be in (0, 1]")
    _require(0.0 <= d.semantic_margin <= 1.0, "data.semantic_margin must be in [0, 1]")
    _require(bool(d.semantic_model.strip()), 'data.semantic_model must name a model or be "none"')


def validate(cfg: Config) -> None:
    """Cross-field and range checks, once, at load; each message names the keys and values."""
    d, f, t = cfg.data, cfg.features, cfg.train
    for symptom in d.symptoms:
        _require(
            symptom in ALL_SYMPTOMS,
            f"data.symptoms: unknown symptom {symptom!r}"
            f"{did_you_mean(symptom, list(ALL_SYMPTOMS), '')}",
        )
    _require(bool(d.symptoms), "data.symptoms must name at least one symptom")
    _require(len(set(d.symptoms)) == len(d.symptoms), "data.symptoms has duplicates")
    _require(
        d.question in QUESTION_MODES,
        f"data.question must be one of {', '.join(QUESTION_MODES)}, got {d.question!r}",
    )
    if d.question == "criterion":
        missing = [s for s in d.symptoms if not d.criteria.get(s, "").strip()]
        _require(not missing, f"data.criteria has no text for {', '.join(missing)}")
    _require(
        d.negatives in NEGATIVE_MODES,
        f"data.negatives must be one of {', '.join(NEGATIVE_MODES)}, got {d.negatives!r}",
    )
    _require(
        len(d.split) == 3 and all(r >= 0 for r in d.split) and math.isclose(sum(d.split), 1.0),
        f"data.split must be three non-negative ratios summing to 1, got {d.split}",
    )
    _check_alignment(d)
    _require(d.limit >= 0, f"data.limit must be >= 0, got {d.limit}")
    for key, seed in (("train.seed", t.seed), ("tune.seed", cfg.tune.seed)):
        _require(0 <= seed < 2**32, f"{key} must be in [0, 2**32) (numpy's range), got {seed}")
    for key in ("dropout", "attention_dropout"):
        value = getattr(cfg.model, key)
        _require(
            value == "checkpoint" or (isinstance(value, float) and 0.0 <= value < 1.0),
            f'model.{key} must be a probability in [0, 1) or "checkpoint", got {value!r}',
        )
    _require(f.max_question_length >= 1, "features.max_question_length must be >= 1")
    usable = f.max_length - f.max_question_length - 3
    _require(
        usable > 0,
        f"features.max_length={f.max_length} leaves no room for the post after "
        f"features.max_question_length={f.max_question_length} and 3 special tokens",
    )
    _require(
        0 <= f.doc_stride < usable,
        f"features.doc_stride={f.doc_stride} must be < features.max_length - "
        f"features.max_question_length - 3 = {usable} (max_length={f.max_length})",
    )
    _require(f.pad_to_multiple_of >= 1, "features.pad_to_multiple_of must be >= 1")
    _require(cfg.decode.n_best >= 1, "decode.n_best must be >= 1")
    _require(cfg.decode.max_answer_length >= 1, "decode.max_answer_length must be >= 1")
    for key in ("epochs", "batch_size", "eval_batch_size", "grad_accum", "keep_checkpoints"):
        _require(getattr(t, key) >= 1, f"train.{key} must be >= 1, got {getattr(t, key)}")
    for key in ("max_steps", "eval_every", "checkpoint_every", "patience", "threads"):
        _require(getattr(t, key) >= 0, f"train.{key} must be >= 0, got {getattr(t, key)}")
    _require(t.lr > 0, f"train.lr must be > 0, got {t.lr}")
    _require(
        0.0 < t.no_answer_fraction <= 1.0,
        f"train.no_answer_fraction must be in (0, 1], got {t.no_answer_fraction}",
    )
    _require(0.0 <= t.warmup_ratio < 1.0, "train.warmup_ratio must be in [0, 1)")
    _require(t.weight_decay >= 0, "train.weight_decay must be >= 0")
    _require(t.max_grad_norm >= 0, "train.max_grad_norm must be >= 0 (0 = no clipping)")
    _require(
        t.span_loss in ("marginal", "mean"),
        f"train.span_loss must be marginal or mean, got {t.span_loss!r}",
    )
    _require(
        t.mixed_precision in ("no", "bf16", "fp16", "auto"),
        f"train.mixed_precision must be no, bf16, fp16 or auto, got {t.mixed_precision!r}",
    )
    _require(
        is_valid_metric(t.metric, d.symptoms),
        f"train.metric {t.metric!r} is not a metric"
        f"{did_you_mean(t.metric, [*METRIC_NAMES, *RANKING_MEANS], '')}"
        f"; choose one of {', '.join([*METRIC_NAMES, *RANKING_MEANS])} or SYMPTOM/sentence_f1",
    )
    check_name("train.run_name", t.run_name, allow_empty=True)
    check_name("tune.study_name", cfg.tune.study_name, allow_empty=False)
    _require(bool(t.output_dir.strip()), "train.output_dir must not be empty")
    for tracker in t.log_with:
        _require(
            tracker in TRACKERS,
            f"train.log_with: unknown tracker {tracker!r}"
            f"{did_you_mean(tracker, list(TRACKERS), '')}; choose from {', '.join(TRACKERS)}",
        )
    storage = cfg.tune.storage
    _require(
        storage.startswith("journal:") or "://" in storage,
        f"tune.storage={storage!r} must be journal:PATH, sqlite:///PATH or a database URL "
        "(e.g. postgresql://user@host/db)",
    )
    _require(cfg.tune.n_trials >= 1, "tune.n_trials must be >= 1")
    _require(cfg.tune.timeout >= 0, "tune.timeout must be >= 0 (0 = none)")
    _require(cfg.tune.pruner_startup_trials >= 0, "tune.pruner_startup_trials must be >= 0")
    _require(
        cfg.tune.pruner in ("median", "none"),
        f"tune.pruner must be median or none, got {cfg.tune.pruner!r}",
    )
    _check_space(cfg)
