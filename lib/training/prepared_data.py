"""The data a run trains on, prepared once: examples per split, their windows, the posts' sentences.

`prepare_data(cfg)` is the data step of a run's set-up (lib.training.trainer): load and validate
the corpus, align the annotations, split, cut the feature windows. On a ReDSM5-size corpus the
alignment alone takes about a minute, and every trial of a study used to pay it again for the same
files and settings. `DataCache` keeps the last preparation for the trials of one tune.py process:
the dataset is reused while the `[data]` settings and both files are unchanged (path, size,
modification time, inode), the windows while `[features]` and the model name are too. It holds
one of each, so memory stays that of a single run whatever the study's size.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from functools import partial
from typing import Any

from tokenizers import Tokenizer

from lib.config import Config
from lib.data.dataset import Dataset, build_dataset
from lib.data.features import Features, build_features
from lib.data.sentences import split_sentences
from lib.model.pretrained import load_tokenizer
from lib.training.run_setup import check_training_data


@dataclass(frozen=True)
class Windows:
    """The tokenizer and the feature windows of every non-empty split."""

    tokenizer: Tokenizer
    features: dict[str, Features]  # per split


@dataclass(frozen=True)
class PreparedData:
    """What a run reads: never changed after it is built, so trials may share it."""

    dataset: Dataset
    windows: Windows
    sentences: dict[str, list[tuple[int, int]]]  # per post_id: sentence (start, end) offsets


def load_dataset(cfg: Config) -> Dataset:
    """The aligned, split examples; a split that leaves no training or validation data is a
    UserError."""
    dataset = build_dataset(cfg.data)
    check_training_data(dataset, cfg.data.split)
    return dataset


def cut_windows(cfg: Config, dataset: Dataset) -> Windows:
    tokenizer = load_tokenizer(cfg.model.name)
    featurize = partial(
        build_features,
        tokenizer=tokenizer,
        max_length=cfg.features.max_length,
        doc_stride=cfg.features.doc_stride,
        max_question_length=cfg.features.max_question_length,
    )
    return Windows(
        tokenizer,
        {name: featurize(examples) for name, examples in dataset.splits.items() if examples},
    )


def assemble(dataset: Dataset, windows: Windows) -> PreparedData:
    sentences = {pid: split_sentences(post.text) for pid, post in dataset.posts.items()}
    return PreparedData(dataset, windows, sentences)


def prepare_data(cfg: Config) -> PreparedData:
    """Everything a run reads, built from scratch."""
    dataset = load_dataset(cfg)
    return assemble(dataset, cut_windows(cfg, dataset))


def _file_identity(path: str) -> tuple[Any, ...]:
    """What tells an edited or replaced file from the one read before (None: not there)."""
    try:
        st = os.stat(path)
    except OSError:
        return (path, None)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def dataset_key(cfg: Config) -> str:
    files = [_file_identity(str(cfg.data.posts)), _file_identity(str(cfg.data.annotations))]
    return json.dumps([dataclasses.asdict(cfg.data), files], sort_keys=True, default=str)


def windows_key(cfg: Config) -> str:
    return json.dumps(
        [dataclasses.asdict(cfg.features), cfg.model.name], sort_keys=True, default=str
    )


class DataCache:
    """The last prepared data of one process, reused by the next run with the same inputs.

    `get(cfg)` returns what `prepare_data(cfg)` would build: the dataset is rebuilt when the
    `[data]` settings or either file changed, the windows when the dataset, `[features]` or the
    model name did. Errors are not cached: a failed preparation is tried again next time.
    """

    def __init__(self) -> None:
        self._dataset: tuple[str, Dataset] | None = None
        self._data: tuple[str, str, PreparedData] | None = None

    def get(self, cfg: Config) -> PreparedData:
        data_key, feats_key = dataset_key(cfg), windows_key(cfg)
        if self._data is not None and self._data[:2] == (data_key, feats_key):
            return self._data[2]
        self._data = None  # the old ones are dropped before the new ones are built
        if self._dataset is None or self._dataset[0] != data_key:
            self._dataset = None
            self._dataset = (data_key, load_dataset(cfg))
        dataset = self._dataset[1]
        self._data = (data_key, feats_key, assemble(dataset, cut_windows(cfg, dataset)))
        return self._data[2]
