"""Tiny models and inputs shared by the tests (pytest puts tests/ on sys.path: `from tiny import`).

Distinct odd sizes (hidden 36, heads 3, intermediate 37, positions 41; batches of 3 x 13), so a
transposed or mis-split tensor cannot pass by having the right shape.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from bench.tiny_model import TINY_SIZES
from lib.model.bert import BertConfig

# Hugging Face config.json fields (bench/tiny_model.py's sizes, 41 positions); the dropout rates
# are the checkpoint defaults.
TINY_CONFIG = {
    **TINY_SIZES,
    "max_position_embeddings": 41,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}
# Our BertConfig of the same sizes, with dropout off (deterministic comparisons).
TINY = BertConfig(
    **{
        **TINY_CONFIG,
        "vocab_size": 53,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
)


def random_batch(config, batch: int = 3, seq_len: int = 13, seed: int = 0):
    """Random ids and token types under `config.vocab_size`; rows 1 and 2 right-padded."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, config.vocab_size, (batch, seq_len), generator=generator)
    types = torch.randint(0, 2, (batch, seq_len), generator=generator)
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def max_diff_on_tokens(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor) -> float:
    """Largest |ours - theirs| over the real (unpadded) tokens."""
    return (ours - theirs)[mask.bool()].abs().max().item()


# The demo corpus generator: a tool beside the corpus it writes, not library code.
DEMO_GENERATOR = Path(__file__).resolve().parent.parent / "data" / "demo" / "generate.py"


def load_demo_generator():
    """data/demo/generate.py as a module (loaded once per process)."""
    if "demo_generate" in sys.modules:
        return sys.modules["demo_generate"]
    spec = importlib.util.spec_from_file_location("demo_generate", DEMO_GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module
