"""lib.training.prepared_data: the trials of a study prepare their data once, the cache never
serves data its files or settings no longer give, and a run's model does not depend on whether
its data came from the cache."""

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.config import load_config, with_overrides
from lib.errors import UserError
from lib.training import prepared_data, trainer
from lib.training.prepared_data import DataCache, prepare_data
from lib.training.trainer import train
from lib.training.tuning import run_study

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def build_calls(monkeypatch):
    """The [data] configs build_dataset was called with, from here on."""
    calls = []
    real = prepared_data.build_dataset

    def counting(data_cfg):
        calls.append(data_cfg)
        return real(data_cfg)

    monkeypatch.setattr(prepared_data, "build_dataset", counting)
    return calls


def same_windows(a, b) -> bool:
    return (
        all(
            len(a.windows.features[s]) == len(b.windows.features[s])
            and all(
                np.array_equal(x, y)
                for x, y in zip(a.windows.features[s].input_ids, b.windows.features[s].input_ids)
            )
            for s in a.windows.features
        )
        and a.windows.features.keys() == b.windows.features.keys()
    )


def append_to_first_post(posts: Path, words: str) -> str:
    rows = list(csv.reader(io.StringIO(posts.read_text(encoding="utf-8"))))
    rows[1][1] += words
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    posts.write_text(out.getvalue(), encoding="utf-8")
    return rows[1][0]


def test_the_cache_reuses_what_is_unchanged_and_rebuilds_the_rest(tmp_path, make_cfg, build_calls):
    posts = tmp_path / "posts.csv"
    shutil.copy(ROOT / "data/demo/posts.csv", posts)
    cfg = make_cfg(tmp_path, f"data.posts={posts}")
    cache = DataCache()

    first = cache.get(cfg)
    assert cache.get(cfg) is first
    assert cache.get(with_overrides(cfg, {"train.lr": 1e-4})) is first  # not a data setting
    assert len(build_calls) == 1

    # other windows: the same dataset, new windows, as a fresh preparation cuts them
    strided_cfg = with_overrides(cfg, {"features.doc_stride": 24})
    strided = cache.get(strided_cfg)
    assert len(build_calls) == 1 and strided.dataset is first.dataset
    assert not same_windows(strided, first) and same_windows(strided, prepare_data(strided_cfg))

    # an edited corpus file is read again
    post_id = append_to_first_post(posts, " Extra words at the end.")
    build_calls.clear()
    edited = cache.get(strided_cfg)
    assert len(build_calls) == 1
    assert edited.dataset.posts[post_id].text.endswith(" Extra words at the end.")
    assert same_windows(edited, prepare_data(strided_cfg))

    # another [data] setting is another dataset
    build_calls.clear()
    fewer = cache.get(with_overrides(strided_cfg, {"data.limit": 20}))
    assert len(build_calls) == 1 and len(fewer.dataset.posts) == 20


def test_a_failed_preparation_is_not_kept(tmp_path, make_cfg, build_calls):
    annotations = tmp_path / "annotations.csv"
    cfg = make_cfg(tmp_path, f"data.annotations={annotations}")
    cache = DataCache()
    with pytest.raises(UserError, match="annotations.csv"):
        cache.get(cfg)
    shutil.copy(ROOT / "data/demo/annotations.csv", annotations)
    assert len(cache.get(cfg).dataset.splits["train"]) > 0
    assert len(build_calls) == 2


def test_a_study_aligns_its_corpus_once(tmp_path, tiny_overrides, build_calls):
    cfg = load_config(
        overrides=[
            *tiny_overrides(tmp_path),
            "train.max_steps=1",
            "tune.space={ 'decode.null_threshold' = { choices = [1e9, -1e9] },"
            " 'train.lr' = { low = 1e-3, high = 5e-3 } }",
            f"tune.storage=sqlite:///{tmp_path}/optuna.db",
            "tune.n_trials=3",
            "tune.retrain_best=true",
        ]
    )
    summary = run_study(cfg)
    assert summary["trials"]["COMPLETE"] == 3 and "retrained_value" in summary
    assert len(build_calls) == 1  # the set-up check, three trials and the retraining share it


def test_the_model_does_not_depend_on_the_data_step_drawing_random_numbers(
    tmp_path, make_cfg, monkeypatch
):
    """A cached preparation draws no random numbers where a fresh one may (the alignment's
    sentence encoder is built before its weights load): the model must start the same."""
    plain = train(make_cfg(tmp_path / "plain", "train.max_steps=2"))

    def drawing(cfg):
        data = prepare_data(cfg)
        torch.rand(1000)
        return data

    monkeypatch.setattr(trainer, "prepare_data", drawing)
    drawn = train(make_cfg(tmp_path / "drawn", "train.max_steps=2"))
    assert [h["train_loss"] for h in drawn["history"]] == [
        h["train_loss"] for h in plain["history"]
    ]
    assert drawn["val"] == plain["val"]
