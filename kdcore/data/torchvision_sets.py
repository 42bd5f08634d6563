"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 in their original file formats, downloaded only when absent.

The files are read directly (IDX for the MNIST family, the pickled batches for CIFAR), so the
Debian package's `/usr/share/datasets/fashion-mnist` or a folder torchvision filled both work.
"""

from __future__ import annotations

import pickle
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from kdcore.data.assemble import bundle_from_train_test
from kdcore.data.bundle import DataBundle
from kdcore.data.errors import DataError
from kdcore.data.idx import IDX_FILES, find_idx_files, read_idx_dataset
from kdcore.data.registry import register_dataset
from kdcore.data.request import DataRequest

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def require_root(name: str, req: DataRequest) -> Path:
    if not req.root:
        raise DataError(f"data.root is not set; set it to the folder that holds (or should receive) the {name} files")
    return Path(req.root).expanduser()


def network_reachable(url: str, timeout: float = 3.0) -> bool:
    host = urlparse(url).hostname
    try:
        with socket.create_connection((host, 443 if url.startswith("https") else 80), timeout=timeout):
            return True
    except OSError:
        return False


def download(name: str, torchvision_class: str, root: Path, req: DataRequest, how: str) -> None:
    """Fetch with torchvision into `root`, or explain where the files must go."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, torchvision_class)
    url = cls.mirrors[0] if hasattr(cls, "mirrors") else cls.url
    if not req.download or not network_reachable(url):
        reason = "data.download=false" if not req.download else f"{urlparse(url).hostname} cannot be reached"
        raise DataError(f"{name} files not found under data.root={root} and {reason}; {how}")
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as e:  # noqa: BLE001  (network and disk errors all end the same way)
        raise DataError(f"downloading {name} into data.root={root} failed ({type(e).__name__}: {e}); {how}") from None


def load_mnist_family(name: str, torchvision_class: str, classes: list[str], req: DataRequest) -> DataBundle:
    root = require_root(name, req)
    folders = [root, root / torchvision_class / "raw"]
    files = find_idx_files(folders)
    if files is None:
        how = f"put the four files {', '.join(s + '.gz' for s in IDX_FILES.values())} in {root}" + (
            " (apt-get install dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)"
            if name == "fashion_mnist"
            else ""
        )
        download(name, torchvision_class, root, req, how)
        files = find_idx_files(folders)
    train, test = read_idx_dataset(files)
    return bundle_from_train_test(name, train, test, classes, req, scale=1 / 255)


@register_dataset("mnist")
def load_mnist(req: DataRequest) -> DataBundle:
    """MNIST handwritten digits, 28x28 grey, 60,000 training and 10,000 test images."""
    return load_mnist_family("mnist", "MNIST", [str(d) for d in range(10)], req)


@register_dataset("fashion_mnist")
def load_fashion_mnist(req: DataRequest) -> DataBundle:
    """Fashion-MNIST (Zalando), 28x28 grey, 60,000 training and 10,000 test images."""
    return load_mnist_family("fashion_mnist", "FashionMNIST", FASHION_CLASSES, req)


class ArraysOnly(pickle.Unpickler):
    """The CIFAR batches are pickles: allow only what numpy arrays need, never arbitrary code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return {
                k.decode() if isinstance(k, bytes) else k: v for k, v in ArraysOnly(f, encoding="bytes").load().items()
            }
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path} is not a readable CIFAR batch ({type(e).__name__}: {e}); download it again") from None


CIFAR = {
    # name: (torchvision class, folder, training batches, test batch, meta file, label key, class-names key)
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar100": ("CIFAR100", "cifar-100-python", ["train"], "test", "meta", "fine_labels", "fine_label_names"),
}


def load_cifar(name: str, req: DataRequest) -> DataBundle:
    tv_class, folder, train_files, test_file, meta_file, label_key, names_key = CIFAR[name]
    root = require_root(name, req)
    base = next((p for p in (root / folder, root) if (p / test_file).is_file()), None)
    if base is None:
        how = f"put the extracted {folder}/ folder (from the CIFAR python archive) in {root}"
        download(name, tv_class, root, req, how)
        base = root / folder

    def read(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        batches = [read_cifar_batch(base / f) for f in files]
        x = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches]).reshape(-1, 3, 32, 32)
        y = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
        return x, y

    missing = [f for f in train_files if not (base / f).is_file()]
    if missing:
        raise DataError(f"{name}: {base / missing[0]} is missing; extract the whole CIFAR python archive into {root}")
    meta = read_cifar_batch(base / meta_file) if (base / meta_file).is_file() else {}
    train, test = read(train_files), read([test_file])
    n_classes = 10 if name == "cifar10" else 100
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get(names_key, [])] or [
        str(i) for i in range(n_classes)
    ]
    return bundle_from_train_test(name, train, test, classes, req, scale=1 / 255, augment=True)


@register_dataset("cifar10")
def load_cifar10(req: DataRequest) -> DataBundle:
    """CIFAR-10, 32x32 RGB, 50,000 training and 10,000 test images, 10 classes."""
    return load_cifar("cifar10", req)


@register_dataset("cifar100")
def load_cifar100(req: DataRequest) -> DataBundle:
    """CIFAR-100, 32x32 RGB, 50,000 training and 10,000 test images, 100 classes."""
    return load_cifar("cifar100", req)
