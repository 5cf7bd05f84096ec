"""lib/model/tokenizer.py: tokenizer.json vs vocab.txt folders, casing, offsets on arbitrary text."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.errors import UserError
from lib.model.tokenizer import check_tokenizer_fits, load_tokenizer

TRICKY = (
    "Sleep sleep SLEEP é É café ‘quoted’ “double” — – … 睡眠不足 😴🙃 ﬁ İstanbul \t\x00\x07\u200b"
)
texts = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.sampled_from(TRICKY + "abc xyz.,!?'"), max_size=60),
)


@pytest.fixture(scope="module")
def cased(tiny_bert_dir):
    return load_tokenizer(tiny_bert_dir)


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return load_tokenizer(minilm_dir)


@pytest.fixture(scope="module")
def minilm_from_vocab(minilm_dir, tmp_path_factory):
    """MiniLM's vocab.txt + tokenizer_config.json, without its tokenizer.json."""
    folder = tmp_path_factory.mktemp("minilm_vocab")
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_dir / name, folder)
    return load_tokenizer(folder)


def test_folder_without_tokenizer_config_is_cased(tiny_bert_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="lib.model.tokenizer"):
        tokenizer = load_tokenizer(tiny_bert_dir)
    assert "CASED" in caplog.text
    encoding = tokenizer.encode("Sleep sleep", add_special_tokens=False)
    assert encoding.tokens == ["Sleep", "sleep"]
    assert encoding.ids[0] != encoding.ids[1]


def test_do_lower_case_from_tokenizer_config(tiny_bert_dir, tmp_path):
    shutil.copy(tiny_bert_dir / "vocab.txt", tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.encode("Sleep É", add_special_tokens=False).tokens == ["sleep", "e"]


def test_special_tokens_template(cased):
    encoding = cased.encode("feel tired", "Sleep")
    assert encoding.tokens == ["[CLS]", "feel", "tired", "[SEP]", "Sleep", "[SEP]"]
    assert encoding.type_ids == [0, 0, 0, 0, 1, 1]


def test_special_tokens_in_text_are_plain_text(cased, minilm):
    for tokenizer in (cased, minilm):
        encoding = tokenizer.encode("a [SEP] b [CLS]", add_special_tokens=False)
        assert tokenizer.token_to_id("[SEP]") not in encoding.ids
        assert tokenizer.token_to_id("[CLS]") not in encoding.ids
    decoded = minilm.decode(minilm.encode("feel tired").ids)  # skip_special_tokens by default
    assert decoded == "feel tired"


def test_tokenizer_json_padding_and_truncation_are_cleared(minilm):
    long_text = "I can not sleep at night. " * 60
    assert len(minilm.encode(long_text).ids) > 300
    assert minilm.encode("short").tokens == ["[CLS]", "short", "[SEP]"]
    assert minilm.padding is None and minilm.truncation is None


@settings(max_examples=150, deadline=None)
@given(text=texts)
def test_vocab_txt_tokenizer_equals_the_shipped_tokenizer_json(minilm, minilm_from_vocab, text):
    ours = minilm_from_vocab.encode(text, add_special_tokens=False)
    shipped = minilm.encode(text, add_special_tokens=False)
    assert (ours.ids, ours.offsets) == (shipped.ids, shipped.offsets)


def assert_offsets_are_slices(tokenizer, text: str) -> None:
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    for start, end in offsets:
        assert 0 <= start < end <= len(text), (start, end)
        assert text[start:end].strip(), (start, end)
    assert offsets == sorted(offsets)
    assert [end for _, end in offsets] == sorted(end for _, end in offsets)


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_offsets_are_nonempty_ordered_slices_of_the_original(cased, minilm, text):
    assert_offsets_are_slices(cased, text)
    assert_offsets_are_slices(minilm, text)


def test_tricky_text_offsets(cased, minilm):
    for tokenizer in (cased, minilm):
        assert_offsets_are_slices(tokenizer, TRICKY)
    tokens = minilm.encode("café 睡眠", add_special_tokens=False)
    assert ["café 睡眠"[s:e] for s, e in tokens.offsets] == ["café", "睡", "眠"]


def test_check_tokenizer_fits(cased, tiny_bert_dir, tmp_path):
    check_tokenizer_fits(cased, vocab_size=cased.get_vocab_size(), source="x")
    with pytest.raises(UserError, match="vocab_size is 10"):
        check_tokenizer_fits(cased, vocab_size=10, source="x")
    vocab = (tiny_bert_dir / "vocab.txt").read_text().replace("[PAD]\n", "")
    (tmp_path / "vocab.txt").write_text(vocab)
    with pytest.raises(UserError, match=r"lacks special token\(s\) \[PAD\]"):
        check_tokenizer_fits(load_tokenizer(tmp_path), vocab_size=1000, source="x")
    # without [UNK] the first word outside the vocabulary would fail mid-run
    vocab = (tiny_bert_dir / "vocab.txt").read_text().replace("[UNK]\n", "")
    (tmp_path / "vocab.txt").write_text(vocab)
    with pytest.raises(UserError, match=r"lacks special token\(s\) \[UNK\]"):
        check_tokenizer_fits(load_tokenizer(tmp_path), vocab_size=1000, source="x")


def test_unreadable_tokenizer_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(UserError, match="tokenizer.json: unreadable tokenizer"):
        load_tokenizer(tmp_path)
