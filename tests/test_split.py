"""The data split: stratified, seeded, disjoint, and normalised with train statistics only."""

import numpy as np
import pytest
import torch

from kdcore.data import stratified_split
from kdcore.datasets import load_dataset


def test_split_is_stratified_seeded_and_disjoint():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    a = stratified_split(labels, 0.15, 0.2, seed=3)
    b = stratified_split(labels, 0.15, 0.2, seed=3)
    c = stratified_split(labels, 0.15, 0.2, seed=4)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[2], c[2])
    train, val, test = a
    assert len(set(train) & set(val)) == len(set(train) & set(test)) == len(set(val) & set(test)) == 0
    assert len(train) + len(val) + len(test) == len(labels)
    whole = np.bincount(labels) / len(labels)
    for part in (train, val, test):
        assert np.allclose(np.bincount(labels[part], minlength=4) / len(part), whole, atol=0.01)


def test_digits_bundle_sizes_and_train_only_normalisation():
    bundle = load_dataset("digits", None, 0.15, 0.2, seed=0)
    sizes = {name: len(s) for name, s in bundle.splits().items()}
    assert sizes == {"train": 1167, "val": 270, "test": 360}
    assert bundle.num_classes == 10 and bundle.input_shape == (1, 8, 8)
    x = bundle.inputs("train").x  # pixels are stored as uint8; the view normalises with train statistics
    assert bundle.train.x.dtype == torch.uint8
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-3
    assert bundle.digest == load_dataset("digits", None, 0.15, 0.2, seed=0).digest
    assert bundle.digest != load_dataset("digits", None, 0.15, 0.2, seed=1).digest


def test_a_split_too_small_for_every_class_is_one_sentence_not_a_traceback():
    from kdcore.data import DataError

    with pytest.raises(
        DataError, match=r"6 samples of 3 classes leave 2 for the test split \(data.test_fraction=0.2\)"
    ):
        stratified_split(np.array([0, 0, 1, 1, 2, 2]), 0.15, 0.2, seed=0)
