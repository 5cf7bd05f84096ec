"""The tiny random BERT that smoke runs and tests train: its sizes, and the base folder it lives in.

Distinct odd sizes (hidden 36, heads 3, intermediate 37), so a transposed or mis-split tensor cannot
pass by having the right shape; two layers, so a run takes seconds on a CPU. The base folder pairs
the random weights (saved by transformers, as a real base checkpoint would be) with MiniLM's real
tokenizer, so the demo corpus tokenises into real word pieces and a few steps learn something.
Used by tests/conftest.py (`tiny_qa_dir`), tests/tiny.py, bench/predict.py and bench/recipe.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Hugging Face config.json fields; dropout rates are left at the checkpoint defaults (0.1).
TINY_SIZES = {
    "hidden_size": 36,
    "num_hidden_layers": 2,
    "num_attention_heads": 3,
    "intermediate_size": 37,
    "type_vocab_size": 2,
}
QA_BASE_SIZES = {**TINY_SIZES, "vocab_size": 30522, "max_position_embeddings": 128}  # MiniLM vocab


def save_tiny_qa_base(folder: Path, tokenizer_files: tuple[str, ...] = ("tokenizer.json",)) -> Path:
    """A seeded random transformers BertModel of QA_BASE_SIZES (no QA head, as a base checkpoint)
    saved in `folder`, with `tokenizer_files` copied from the bundled MiniLM. Returns `folder`."""
    import torch
    import transformers

    from lib.model.pretrained import minilm_dir

    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**QA_BASE_SIZES)).save_pretrained(folder)
    for name in tokenizer_files:
        shutil.copy(minilm_dir() / name, Path(folder) / name)
    return Path(folder)
