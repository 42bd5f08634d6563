"""The teacher is cached on what determines it: data, its own config, seed, store and code; nothing else."""

import os

from pipelines.cache.keys import cache_key
from pipelines.config.schema import load_config
from pipelines.stages.prepare_data import source_stamp
from pipelines.stages.train_teacher import teacher_cache_key

BASE = load_config("digits")


def key(*overrides, digest="d1"):
    return teacher_cache_key(load_config("digits", list(overrides)), digest)


def test_student_search_changes_keep_the_teacher():
    same = key()
    for change in (
        "tune.n_trials=3",
        "tune.seed=7",
        "tune.space.lr={low: 0.001, high: 0.01, log: true}",
        "student.width=8",
        "distill.temperature=2",
        "student.train.epochs=5",
        "tune.pruner=none",
    ):
        assert key(change) == same, change


def test_teacher_config_data_or_seed_changes_retrain():
    same = key()
    for change in (
        "teacher.train.epochs=5",
        "teacher.width=8",
        "teacher.arch=cnn_small",
        "teacher.train.lr=0.01",
        "runtime.seed=1",
    ):
        assert key(change) != same, change
    assert key(digest="d2") != same  # other data


def test_replaced_data_files_change_the_prepared_data_key(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"one")
    before = cache_key(BASE.data.model_dump(), source_stamp(str(tmp_path)))
    (tmp_path / "a.bin").write_bytes(b"other")
    os.utime(tmp_path / "a.bin", ns=(1, 1))
    assert cache_key(BASE.data.model_dump(), source_stamp(str(tmp_path))) != before
    assert source_stamp(None) is None and source_stamp(str(tmp_path / "missing")) is None
