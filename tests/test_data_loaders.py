"""Loaders on files written here: IDX .gz (Fashion-MNIST layout), CIFAR batches, an ImageFolder tree of PNGs."""

import gzip
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdcore.data import DataError, SkippedFilesWarning
from kdcore.datasets import load_dataset


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def fake_mnist(folder: Path, n_train=100, n_test=30, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), array, gz)
    return arrays


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


def test_fashion_mnist_reads_the_four_gz_files_and_holds_val_out_of_train(tmp_path):
    arrays = fake_mnist(tmp_path)
    b = load_dataset("fashion_mnist", str(tmp_path), val=0.2, seed=3, download=False)
    assert b.train.x.dtype == torch.uint8 and b.input_shape == (1, 28, 28) and b.num_classes == 10
    assert (len(b.train), len(b.val), len(b.test)) == (80, 20, 30)
    assert torch.equal(b.test.x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))  # the official test set
    written_train = rows(torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert rows(b.train.x[:, 0]) | rows(b.val.x[:, 0]) == written_train
    assert not rows(b.train.x[:, 0]) & rows(b.val.x[:, 0])
    assert torch.bincount(b.val.y).tolist() == [2] * 10  # stratified
    # Normalisation statistics come from the training split alone, on the [0, 1] scale.
    train_pixels = b.train.x.double() / 255
    assert b.view.mean[0] == pytest.approx(float(train_pixels.mean()), rel=1e-9)
    assert b.view.std[0] == pytest.approx(float(train_pixels.std()), rel=1e-9)
    assert not b.view.augments  # no augmentation for MNIST-style data
    x = b.inputs("train").x
    assert x.dtype == torch.float32 and abs(float(x.mean())) < 1e-4


def test_torchvision_layout_and_uncompressed_files_and_limit_train(tmp_path):
    fake_mnist(tmp_path / "MNIST" / "raw", gz=False)
    b = load_dataset("mnist", str(tmp_path), val=0.2, download=False, limit_train=40)
    assert (len(b.train), len(b.val), len(b.test)) == (40, 20, 30)
    assert torch.bincount(b.train.y).tolist() == [4] * 10


def test_truncated_gz_and_missing_files_name_the_input_and_the_fix(tmp_path):
    fake_mnist(tmp_path)
    broken = tmp_path / "train-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz cannot be read .*download it again"):
        load_dataset("fashion_mnist", str(tmp_path), download=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        load_dataset("fashion_mnist", str(empty), download=False)
    message = str(e.value)
    assert f"data.root={empty}" in message and "data.download=false" in message
    assert "t10k-labels-idx1-ubyte.gz" in message and "apt-get install dataset-fashion-mnist" in message
    with pytest.raises(DataError, match="data.root is not set"):
        load_dataset("cifar10", None, download=False)


def write_cifar10(root: Path, n_per_batch=20, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(n_per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return folder


def test_cifar10_batches_load_with_crop_and_flip_augmentation(tmp_path):
    folder = write_cifar10(tmp_path)
    b = load_dataset("cifar10", str(tmp_path), val=0.2, download=False)
    assert (len(b.train), len(b.val), len(b.test)) == (80, 20, 20)
    assert b.input_shape == (3, 32, 32) and b.classes[0] == "airplane"
    assert b.view.crop_padding == 4 and b.view.flip
    first = pickle.loads((folder / "test_batch").read_bytes())[b"data"][0].reshape(3, 32, 32)
    assert torch.equal(b.test.x[0], torch.from_numpy(first))
    assert not load_dataset("cifar10", str(tmp_path), val=0.2, download=False, augment="none").view.augments


def test_a_pickle_that_is_not_plain_arrays_is_refused(tmp_path):
    folder = write_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Path("x")}, protocol=2))  # pathlib: not allowed
    with pytest.raises(DataError, match="test_batch is not a readable CIFAR batch"):
        load_dataset("cifar10", str(tmp_path), download=False)


def image_tree(root: Path, classes=("cat", "dog", "owl"), per_class=8, size=(20, 12)):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", size, (40 * c + i, 100, 200 - 30 * c)).save(root / name / f"{i}.png")
    return root


def test_imagefolder_skips_a_corrupt_png_with_a_warning_and_ignores_other_files(tmp_path):
    root = image_tree(tmp_path / "imgs")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "cat" / "notes.txt").write_text("taken on holiday")
    with pytest.warns(SkippedFilesWarning) as caught:
        b = load_dataset("imagefolder", str(root), val=0.25, test=0.25, seed=1, image_size=16)
    message = str(caught[0].message)
    assert "skipped 1 unreadable" in message and "broken.png" in message and "notes.txt" not in message
    assert b.classes == ["cat", "dog", "owl"] and b.input_shape == (3, 16, 16)
    assert len(b.train) + len(b.val) + len(b.test) == 24
    assert torch.bincount(b.test.y).tolist() == [2, 2, 2]
    # The pixels of a class are the colour written for it (resized, centre-cropped).
    cat = b.train.x[b.train.y == 0][0]
    assert cat[1].unique().tolist() == [100] and cat[2].unique().tolist() == [200]

    with pytest.raises(DataError, match="1 image file\\(s\\) cannot be read, first .*broken.png.*data.strict=false"):
        load_dataset("imagefolder", str(root), val=0.25, test=0.25, strict=True)


def test_imagefolder_train_val_test_folders_are_used_as_given_and_grey_works(tmp_path):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        image_tree(tmp_path / split, classes=("a", "b"), per_class=n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to skip, nothing to warn about
        b = load_dataset("imagefolder", str(tmp_path), image_size=8, channels=1)
    assert (len(b.train), len(b.val), len(b.test)) == (12, 4, 6)
    assert b.input_shape == (1, 8, 8) and b.classes == ["a", "b"]


@pytest.mark.parametrize("case", ["missing root", "empty class", "no class folders", "unknown val class"])
def test_imagefolder_errors_name_the_input(tmp_path, case):
    root = tmp_path / "imgs"
    if case == "missing root":
        expected = f"data.root={root} does not exist"
    elif case == "empty class":
        image_tree(root)
        (root / "fox").mkdir()
        (root / "fox" / "readme.txt").write_text("todo")
        expected = f"class folder {root / 'fox'} has no images"
    elif case == "no class folders":
        root.mkdir()
        Image.new("RGB", (4, 4)).save(root / "lonely.png")
        expected = f"{root} has no class folders"
    else:
        image_tree(root / "train", classes=("a", "b"))
        image_tree(root / "val", classes=("a", "c"), per_class=2)
        expected = f"{root / 'val' / 'c'} is a class that the training folder does not have"
    with pytest.raises(DataError) as e:
        load_dataset("imagefolder", str(root), val=0.25, test=0.25)
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)
