"""SpanBERT Evidence Binding: extractive QA that points at the evidence sentences of a post for
each DSM-5 depression symptom (DESIGN.md). Public API (DESIGN §6):

    from lib import load_tokenizer, load_encoder, load_qa_model

Imported lazily so that torch-free tools (`python -m lib.data`) start fast.
"""

from __future__ import annotations

__all__ = ["load_tokenizer", "load_encoder", "load_qa_model"]


def __getattr__(name: str):
    if name in __all__:
        from lib.model import pretrained

        return getattr(pretrained, name)
    raise AttributeError(f"module 'lib' has no attribute {name!r}")
