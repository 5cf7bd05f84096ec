"""The BERT WordPiece tokenizer of a model folder, as a `tokenizers.Tokenizer` (DESIGN §6).

`tokenizer.json` when the folder has one (its own padding/truncation cleared: features.py pads and
windows itself). Otherwise built from `vocab.txt` the way Hugging Face's BertTokenizerFast
converter builds it (BertNormalizer, BertPreTokenizer, WordPiece, [CLS]/[SEP] template). The case
setting comes from tokenizer_config.json (or config.json) `do_lower_case`; with neither, the vocab
is treated as CASED, because SpanBERT ships exactly that way and lower-casing its cased vocab is
the classic silent SpanBERT bug. Offsets are character offsets into the original text.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from lib.errors import UserError
from lib.files import read_json_object

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]")  # what features.py needs
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def case_settings(folder: Path) -> tuple[bool, bool | None, bool]:
    """(lowercase, strip_accents, handle_chinese_chars) for a vocab.txt-only folder."""
    for name in ("tokenizer_config.json", "config.json"):
        path = folder / name
        if path.is_file():
            settings = read_json_object(path)
            if "do_lower_case" in settings:
                return (
                    bool(settings["do_lower_case"]),
                    settings.get("strip_accents"),  # None = follow lowercase, as BERT does
                    bool(settings.get("tokenize_chinese_chars", True)),
                )
    log.warning(
        "%s: no do_lower_case in tokenizer_config.json or config.json; treating vocab.txt as "
        "CASED (SpanBERT's setting)",
        folder,
    )
    return False, None, True


def wordpiece_from_vocab(folder: Path) -> Tokenizer:
    """BertTokenizerFast's pipeline, built from vocab.txt."""
    vocab_path = folder / "vocab.txt"
    lowercase, strip_accents, chinese = case_settings(folder)
    try:
        wordpiece = models.WordPiece.from_file(str(vocab_path), unk_token="[UNK]")
    except Exception as err:  # tokenizers raises a bare Exception for an unreadable vocab
        raise UserError(f"{vocab_path}: unreadable vocabulary ({err})") from None
    tokenizer = Tokenizer(wordpiece)
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=chinese,
        strip_accents=strip_accents,
        lowercase=lowercase,
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise UserError(f"{vocab_path}: vocabulary lacks [CLS] or [SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    # registered as special (as Hugging Face's converter does) so decode() can skip them
    tokenizer.add_special_tokens(
        [token for token in BERT_SPECIAL_TOKENS if tokenizer.token_to_id(token) is not None]
    )
    log.info("built a WordPiece tokenizer from %s (lowercase=%s)", vocab_path, lowercase)
    return tokenizer


def text_is_literal(tokenizer: Tokenizer) -> Tokenizer:
    """Make "[SEP]" typed in a post be text ("[", "sep", "]"), never a real separator.

    A tokenizer.json matches its special tokens in raw text; for user posts that would let
    text forge structure. The flag is runtime-only (lost by to_str/pickle): reapply on copies.
    """
    tokenizer.encode_special_tokens = True
    return tokenizer


def load_tokenizer(folder: Path) -> Tokenizer:
    """The folder's tokenizer: no padding or truncation of its own, special tokens in text literal."""
    json_path = folder / "tokenizer.json"
    if json_path.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(json_path))
        except Exception as err:  # tokenizers raises a bare Exception for a bad file
            detail = " ".join(str(err).split())
            raise UserError(f"{json_path}: unreadable tokenizer ({detail})") from None
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return text_is_literal(tokenizer)
    if (folder / "vocab.txt").is_file():
        return text_is_literal(wordpiece_from_vocab(folder))
    raise UserError(f"{folder}: no tokenizer.json or vocab.txt")


def check_tokenizer_fits(tokenizer: Tokenizer, *, vocab_size: int, source: str) -> None:
    """UserError unless every token id fits the embedding table and [CLS]/[SEP]/[PAD] (and the
    WordPiece unknown token, else the first word outside the vocabulary fails mid-run) exist."""
    # the largest id, not the count: added tokens may leave gaps
    largest_id = max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1)
    if largest_id >= vocab_size:
        raise UserError(
            f"{source}: tokenizer has token id {largest_id} but the model's vocab_size is "
            f"{vocab_size}"
        )
    needed = list(SPECIAL_TOKENS)
    if isinstance(tokenizer.model, models.WordPiece):  # what a word outside the vocab becomes
        needed.append(tokenizer.model.unk_token)
    absent = [token for token in needed if tokenizer.token_to_id(token) is None]
    if absent:
        raise UserError(f"{source}: tokenizer lacks special token(s) {', '.join(absent)}")
