"""A hand-written BERT encoder and extractive-QA head in plain PyTorch (DESIGN §6).

Follows Devlin et al. 2019 (BERT) and Hugging Face's `modeling_bert.py` module for module, so the
same weights give the same numbers (post-LayerNorm residuals, exact erf GELU, absolute positions),
written nanoGPT-style from the smallest piece up. Differences that do not change the outputs:
query/key/value are one fused Linear (`attention.self.qkv`, one GEMM instead of three;
lib/model/hf_weights.py splits and joins it); attention is
`torch.nn.functional.scaled_dot_product_attention`, given no mask at all when nothing is padded
(its fused kernels). There is no pooler: QA never uses it.

This file is the plain architecture, the same on every device. The measured CPU training
speed-ups swap modules in from outside (lib/model/cpu_speedups.py), opted into by the trainer.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

# Upper bounds for config.json's sizes: far above any BERT, low enough that a typo (an extra
# zero, 1e12) is refused before it allocates the model.
SIZE_LIMITS = {
    "vocab_size": 1 << 22,
    "hidden_size": 1 << 16,
    "num_hidden_layers": 1 << 10,
    "num_attention_heads": 1 << 10,
    "intermediate_size": 1 << 18,
    "max_position_embeddings": 1 << 17,
    "type_vocab_size": 1 << 10,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


@dataclass(frozen=True)
class BertConfig:
    """The architecture, with Hugging Face `config.json` field names and BERT-base defaults."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """Why no model can be built from these values (a config.json is user input), or None."""
        for name, limit in SIZE_LIMITS.items():
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= limit:
                return f"{name} must be a whole number from 1 to {limit}, got {value!r}"
        if type(self.pad_token_id) is not int or not 0 <= self.pad_token_id < self.vocab_size:
            return f"pad_token_id must be a token id below vocab_size, got {self.pad_token_id!r}"
        if self.hidden_size % self.num_attention_heads:
            return (
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}"
            )
        rates = ("hidden_dropout_prob", "attention_probs_dropout_prob")
        for name, low, high in [*((r, 0.0, 1.0) for r in rates), ("initializer_range", 0.0, 1.0)]:
            value = getattr(self, name)
            if not _is_number(value) or not low <= value < high:
                return f"{name} must be a number in [{low}, {high}), got {value!r}"
        if not _is_number(self.layer_norm_eps) or not 0 < self.layer_norm_eps < 1:
            return f"layer_norm_eps must be a number in (0, 1), got {self.layer_norm_eps!r}"
        return None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BertConfig:
        """Build from a `config.json` dict; keys we do not model (architectures, ...) are ignored."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Hugging Face's ACT2FN names for the activations a BERT config may ask for.
ACTIVATIONS = {
    "gelu": F.gelu,  # exact erf form, what BERT and SpanBERT were trained with
    "gelu_new": functools.partial(F.gelu, approximate="tanh"),
    "gelu_pytorch_tanh": functools.partial(F.gelu, approximate="tanh"),
    "relu": F.relu,
}


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        # padding_idx keeps the [PAD] row's gradient at zero, as in Hugging Face.
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        seq_len = input_ids.shape[1]
        embeddings = self.word_embeddings(input_ids)  # (B, T, H)
        if token_type_ids is None:
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings.weight[:seq_len]  # (T, H) broadcast
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)  # [query; key; value]
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, hidden: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, seq_len, width = hidden.shape
        qkv = self.qkv(hidden).view(batch, seq_len, 3, self.num_heads, self.head_size)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hd)
        drop_p = self.dropout_p if self.training else 0.0
        context = self.attend(query, key, value, attn_mask, drop_p)  # (B, nh, T, hd)
        return context.transpose(1, 2).reshape(batch, seq_len, width)  # (B, T, H)

    def attend(self, query, key, value, attn_mask, drop_p: float) -> torch.Tensor:
        """softmax(q k^T / sqrt(d) + mask) v, with dropout on the probabilities."""
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, dropout_p=drop_p
        )


class BertSelfOutput(nn.Module):
    """Project the attention context and add it back to the layer input (post-LN residual)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(context)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)  # Hugging Face's name, kept for the state dict
        self.output = BertSelfOutput(config)

    def forward(self, hidden: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden, attn_mask), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden))


class BertOutput(nn.Module):
    """Project the feed-forward result back to hidden size, post-LN residual."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, intermediate: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(intermediate)) + residual)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        attended = self.attention(hidden, attn_mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig, gradient_checkpointing: bool = False):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = gradient_checkpointing

    def forward(self, hidden: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        # Recomputing activations only pays off when a backward pass will need them.
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer in self.layer:
            if recompute:
                hidden = checkpoint(layer, hidden, attn_mask, use_reentrant=False)
            else:
                hidden = layer(hidden, attn_mask)
        return hidden


def padding_mask_for_attention(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) 1 = token / 0 = padding -> SDPA boolean mask (B, 1, 1, T), True = may attend.

    Returns None when nothing is padded: SDPA's flash kernel on GPU only runs without a mask, and
    on CPU no mask is never slower. (B, 1, 1, T) rather than transformers' (B, 1, T, T): the CPU
    kernel is measurably faster with the broadcast form.
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)


def with_dropout(
    config: BertConfig, dropout: float | None, attention_dropout: float | None
) -> BertConfig:
    """The config with dropout rates overridden where given (None keeps the config's value)."""
    if dropout is not None:
        config = dataclasses.replace(config, hidden_dropout_prob=dropout)
    if attention_dropout is not None:
        config = dataclasses.replace(config, attention_probs_dropout_prob=attention_dropout)
    return config


def init_bert_weights(module: nn.Module, initializer_range: float) -> None:
    """BERT's initialisation (truncation-free normal, as Hugging Face's `_init_weights`)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=initializer_range)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class BertModel(nn.Module):
    """Embeddings + encoder; forward returns the last hidden state (B, T, H)."""

    def __init__(
        self,
        config: BertConfig,
        gradient_checkpointing: bool = False,
        *,
        dropout: float | None = None,
        attention_dropout: float | None = None,
    ):
        super().__init__()
        self.config = with_dropout(config, dropout, attention_dropout)
        self.embeddings = BertEmbeddings(self.config)
        self.encoder = BertEncoder(self.config, gradient_checkpointing)
        self.apply(lambda module: init_bert_weights(module, self.config.initializer_range))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden = self.embeddings(input_ids, token_type_ids)
        return self.encoder(hidden, padding_mask_for_attention(attention_mask))


class BertForQuestionAnswering(nn.Module):
    """BERT + `qa_outputs = Linear(hidden, 2)`; forward -> (start_logits, end_logits), (B, T) fp32."""

    def __init__(
        self,
        config: BertConfig,
        gradient_checkpointing: bool = False,
        *,
        dropout: float | None = None,
        attention_dropout: float | None = None,
    ):
        super().__init__()
        self.bert = BertModel(
            config, gradient_checkpointing, dropout=dropout, attention_dropout=attention_dropout
        )
        self.config = self.bert.config
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        init_bert_weights(self.qa_outputs, config.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.bert(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        # fp32 logits even under autocast: the span loss and decoding need the precision.
        logits = self.qa_outputs(hidden).float()  # (B, T, 2)
        start_logits, end_logits = logits.unbind(-1)  # each (B, T)
        return start_logits.contiguous(), end_logits.contiguous()
