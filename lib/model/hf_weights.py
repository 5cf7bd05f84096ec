"""Hugging Face BERT checkpoints on disk: config.json and weights, read and written (DESIGN §6).

The file format is Hugging Face's (`BertModel` / `BertForQuestionAnswering` state-dict names in
`model.safetensors`, or a legacy pickled `pytorch_model.bin`). Names map through ONE explicit
table, checked both ways: every parameter of ours must be filled, and every tensor in the file
must be used or be on the short ignore list (pooler, pre-training heads, position_ids buffers).
Anything else is a UserError that lists the keys, because a silently half-loaded model trains
fine and is quietly worse.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from lib.errors import UserError
from lib.files import read_json_object, write_atomically
from lib.model.bert import ACTIVATIONS, BertConfig, BertForQuestionAnswering, BertModel

log = logging.getLogger(__name__)


def same(name: str) -> tuple[str, tuple[str, ...]]:
    return name, (name,)


def fused(name: str, parts: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    return name, parts


# (our parameter name inside BertModel, the Hugging Face BertModel tensors it is made of);
# `{i}` is the layer index; several tensors are concatenated along dim 0, in this order.
NAME_TABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    same("embeddings.word_embeddings.weight"),
    same("embeddings.position_embeddings.weight"),
    same("embeddings.token_type_embeddings.weight"),
    same("embeddings.LayerNorm.weight"),
    same("embeddings.LayerNorm.bias"),
    fused(
        "encoder.layer.{i}.attention.self.qkv.weight",
        (
            "encoder.layer.{i}.attention.self.query.weight",
            "encoder.layer.{i}.attention.self.key.weight",
            "encoder.layer.{i}.attention.self.value.weight",
        ),
    ),
    fused(
        "encoder.layer.{i}.attention.self.qkv.bias",
        (
            "encoder.layer.{i}.attention.self.query.bias",
            "encoder.layer.{i}.attention.self.key.bias",
            "encoder.layer.{i}.attention.self.value.bias",
        ),
    ),
    same("encoder.layer.{i}.attention.output.dense.weight"),
    same("encoder.layer.{i}.attention.output.dense.bias"),
    same("encoder.layer.{i}.attention.output.LayerNorm.weight"),
    same("encoder.layer.{i}.attention.output.LayerNorm.bias"),
    same("encoder.layer.{i}.intermediate.dense.weight"),
    same("encoder.layer.{i}.intermediate.dense.bias"),
    same("encoder.layer.{i}.output.dense.weight"),
    same("encoder.layer.{i}.output.dense.bias"),
    same("encoder.layer.{i}.output.LayerNorm.weight"),
    same("encoder.layer.{i}.output.LayerNorm.bias"),
)
QA_HEAD_NAMES = ("qa_outputs.weight", "qa_outputs.bias")
# The only file tensors that may go unused: the pooler and pre-training heads we do not build,
# and the position_ids buffer older transformers versions saved.
IGNORED = re.compile(r"^(pooler\.|cls\.)|position_ids$")


def expanded_name_table(num_layers: int) -> Iterator[tuple[str, tuple[str, ...]]]:
    """The name table with `{i}` filled in for every layer."""
    for ours, theirs in NAME_TABLE:
        layers = range(num_layers) if "{i}" in ours else (None,)
        for i in layers:
            yield ours.format(i=i), tuple(name.format(i=i) for name in theirs)


# ---------------------------------------------------------------------------------------------
# config.json


def read_config(folder: Path) -> BertConfig:
    """config.json (Hugging Face keys) -> BertConfig; refuses what our BERT cannot reproduce."""
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{folder}: no config.json (not a Hugging Face BERT model folder)")
    values = read_json_object(path)
    if values.get("model_type", "bert") != "bert":
        raise UserError(f"{path}: model_type {values['model_type']!r} is not 'bert'")
    if values.get("position_embedding_type", "absolute") != "absolute":
        raise UserError(f"{path}: only absolute position embeddings are supported")
    if values.get("hidden_act", "gelu") not in ACTIVATIONS:
        raise UserError(f"{path}: hidden_act {values['hidden_act']!r} not in {sorted(ACTIVATIONS)}")
    try:
        config = BertConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise UserError(f"{path}: invalid BERT config ({err})") from None
    return config


def config_json_for_qa(config: BertConfig) -> dict:
    """What `save_qa_model` writes: enough for us and for transformers' from_pretrained."""
    return {
        "architectures": ["BertForQuestionAnswering"],
        "model_type": "bert",
        "position_embedding_type": "absolute",
        **config.to_dict(),
    }


# ---------------------------------------------------------------------------------------------
# reading weight files


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        detail = " ".join(str(err).split())
        raise UserError(
            f"{path}: unreadable safetensors file, truncated or corrupt ({detail})"
        ) from None


CONVERTED_FROM = "converted_from"  # safetensors metadata: the pytorch_model.bin it came from


def _stamp(path: Path) -> str:
    """Size and modification time: what tells a replaced pytorch_model.bin from the one converted."""
    info = path.stat()
    return f"{info.st_size}:{info.st_mtime_ns}"


def convert_to_safetensors(tensors: dict[str, torch.Tensor], folder: Path) -> None:
    """Write pytorch_model.bin's tensors (which just loaded into a model) as model.safetensors,
    stamped with the .bin they came from; skip if we cannot write, or if model.safetensors is
    something of the user's (a link)."""
    path = folder / "model.safetensors"
    if path.is_symlink():
        return
    seen_storages: set[int] = set()
    plain = {}
    for name, tensor in tensors.items():
        # safetensors refuses shared storage (tied MLM decoder weights): give those their own copy.
        storage = tensor.untyped_storage().data_ptr()
        plain[name] = tensor.contiguous() if storage not in seen_storages else tensor.clone()
        seen_storages.add(storage)
    metadata = {"format": "pt", CONVERTED_FROM: _stamp(folder / "pytorch_model.bin")}
    try:
        write_atomically(path, lambda temp: save_file(plain, temp, metadata=metadata))
    except (OSError, UserError) as err:  # a read-only model folder still loads
        log.info("could not write %s (%s); will read pytorch_model.bin again next time", path, err)
    else:
        log.info("converted pytorch_model.bin to %s", path)


def _stale_conversion(safetensors_path: Path, pickle_path: Path) -> bool:
    """model.safetensors is our conversion of a pytorch_model.bin that has been replaced since."""
    try:
        with safe_open(safetensors_path, "pt") as f:
            converted = (f.metadata() or {}).get(CONVERTED_FROM)
    except (SafetensorError, OSError, ValueError):
        return False  # unreadable: read_safetensors says so
    return converted is not None and pickle_path.is_file() and converted != _stamp(pickle_path)


def read_weight_file(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The folder's tensors and the file they came from: model.safetensors, else
    pytorch_model.bin (read with weights_only=True; the caller converts it once it loaded). A
    model.safetensors we converted from a pytorch_model.bin replaced since is not used."""
    safetensors_path = folder / "model.safetensors"
    pickle_path = folder / "pytorch_model.bin"
    if safetensors_path.is_file():
        if not _stale_conversion(safetensors_path, pickle_path):
            return read_safetensors(safetensors_path), safetensors_path
        log.info("%s was converted from an older %s: reading it", safetensors_path, pickle_path)
    if not pickle_path.is_file():
        raise UserError(f"{folder}: no model.safetensors or pytorch_model.bin")
    try:
        tensors = torch.load(pickle_path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a bad pickle; all mean the same here
        detail = " ".join(str(err).split())[:300]
        raise UserError(f"{pickle_path}: unreadable checkpoint ({detail})") from None
    if not isinstance(tensors, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) and value.layout == torch.strided
        for key, value in tensors.items()
    ):
        raise UserError(f"{pickle_path}: expected a flat state dict of dense tensors by name")
    return tensors, pickle_path


# ---------------------------------------------------------------------------------------------
# file names <-> our names


def canonical_name(name: str) -> str:
    """A file tensor name in Hugging Face BertModel terms: no `bert.` prefix, no gamma/beta."""
    name = name.removeprefix("bert.")
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
    return re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)


def canonical_tensors(
    tensors: dict[str, torch.Tensor], source: Path
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors under canonical names, and canonical -> the name in the file (for messages)."""
    renamed: dict[str, torch.Tensor] = {}
    in_file: dict[str, str] = {}
    for name, tensor in tensors.items():
        key = canonical_name(name)
        if key in renamed:
            raise UserError(f"{source}: tensors {in_file[key]!r} and {name!r} are the same tensor")
        renamed[key], in_file[key] = tensor, name
    return renamed, in_file


def listed(names: list[str], limit: int = 8) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def checked_tensor(
    tensors: dict[str, torch.Tensor], name: str, shape: tuple[int, ...], source: Path, label: str
) -> torch.Tensor:
    tensor = tensors[name]
    if tuple(tensor.shape) != shape:
        raise UserError(
            f"{source}: tensor {label!r} has shape {tuple(tensor.shape)}, the model needs {shape}"
        )
    # copy_ would cast anything (int8, bool, complex) into the parameter without a word
    if not tensor.is_floating_point():
        raise UserError(f"{source}: tensor {label!r} is {tensor.dtype}, not floating point")
    if not bool(torch.isfinite(tensor).all()):
        raise UserError(f"{source}: tensor {label!r} holds NaN or infinite values")
    return tensor


@torch.no_grad()
def load_weights(
    model: BertModel | BertForQuestionAnswering,
    tensors: dict[str, torch.Tensor],
    *,
    source: Path,
    head: str,
) -> bool:
    """Copy a file's tensors into `model` (upcasting fp16/bf16), through the name table.

    head: what to do with `qa_outputs.*` in the file -- "load" (QA model), "optional" (QA model,
    fresh head when absent), "ignore" (encoder only: a fine-tuned model's head is not needed).
    Returns whether the QA head came from the file.
    """
    bert = model.bert if isinstance(model, BertForQuestionAnswering) else model
    tensors, in_file = canonical_tensors(tensors, source)
    params = dict(bert.named_parameters())
    used: set[str] = set()
    missing: list[str] = []
    for ours, theirs in expanded_name_table(bert.config.num_hidden_layers):
        absent = [name for name in theirs if name not in tensors]
        if absent:
            missing.extend(absent)
            continue
        param = params.pop(ours)
        part_shape = (param.shape[0] // len(theirs), *param.shape[1:])
        parts = [
            checked_tensor(tensors, name, part_shape, source, in_file[name]) for name in theirs
        ]
        param.copy_(torch.cat(parts) if len(parts) > 1 else parts[0])
        used.update(theirs)
    assert not params or missing, f"name table misses parameters {sorted(params)}"

    head_in_file = [name for name in QA_HEAD_NAMES if name in tensors]
    if head == "ignore":
        used.update(head_in_file)
    elif head == "load" or head_in_file:  # half a head in the file is an error, not a fresh head
        missing.extend(name for name in QA_HEAD_NAMES if name not in tensors)
        if not missing:
            for name, param in model.qa_outputs.named_parameters():
                key = f"qa_outputs.{name}"
                param.copy_(checked_tensor(tensors, key, tuple(param.shape), source, in_file[key]))
            used.update(QA_HEAD_NAMES)

    if missing:
        raise UserError(
            f"{source}: missing {len(missing)} tensor(s) the model needs: {listed(missing)}"
        )
    unexpected = [in_file[name] for name in tensors if name not in used]
    unexpected = sorted(name for name in unexpected if not IGNORED.search(canonical_name(name)))
    if unexpected:
        raise UserError(
            f"{source}: {len(unexpected)} unexpected tensor(s), not part of a BERT QA model: "
            f"{listed(unexpected)}"
        )
    return head != "ignore" and bool(head_in_file)


# ---------------------------------------------------------------------------------------------
# writing


def qa_state_dict_in_hf_layout(model: BertForQuestionAnswering) -> dict[str, torch.Tensor]:
    """`bert.*` + `qa_outputs.*` tensors as transformers' BertForQuestionAnswering names them."""
    params = dict(model.bert.named_parameters())
    state: dict[str, torch.Tensor] = {}
    for ours, theirs in expanded_name_table(model.config.num_hidden_layers):
        # clone: split views share storage, which safetensors refuses to write
        for name, part in zip(theirs, params[ours].detach().chunk(len(theirs))):
            state[f"bert.{name}"] = part.float().cpu().clone()
    for name, param in model.qa_outputs.named_parameters():
        state[f"qa_outputs.{name}"] = param.detach().float().cpu().clone()
    return state


def save_qa_weights(model: BertForQuestionAnswering, path: Path) -> None:
    state = qa_state_dict_in_hf_layout(model)
    write_atomically(path, lambda temp: save_file(state, temp, metadata={"format": "pt"}))
