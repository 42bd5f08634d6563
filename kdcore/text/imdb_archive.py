"""The aclImdb archive (Maas et al., 2011): found under data.root, or downloaded there when reachable."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from kdcore.data.errors import DataError

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"


def find_aclimdb(root: Path) -> Path | None:
    """`root/aclImdb` or `root` itself, whichever has train/ and test/ with pos/ and neg/."""
    for folder in (root / "aclImdb", root):
        if all((folder / split / label).is_dir() for split in ("train", "test") for label in ("pos", "neg")):
            return folder
    return None


def download_aclimdb(root: Path, url: str = IMDB_URL, timeout: float = 30) -> Path:
    """Fetch and unpack the archive into `root/aclImdb`; nothing appears there unless it completes."""
    how = f"download {url} and unpack it into {root} (tar -xzf aclImdb_v1.tar.gz -C {root})"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".aclImdb-") as tmp:
        archive = Path(tmp) / "aclImdb_v1.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, archive.open("wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise DataError(
                f"no aclImdb folder under data.root={root} and {url} cannot be fetched ({reason}); {how}"
            ) from None
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")  # the 'data' filter refuses absolute paths and links out
        except (tarfile.TarError, OSError) as e:
            raise DataError(f"{url} is not a readable aclImdb archive ({e}); {how}") from None
        unpacked = find_aclimdb(Path(tmp))
        if unpacked is None:
            raise DataError(f"{url} holds no aclImdb/train and aclImdb/test folders; {how}")
        unpacked.rename(root / "aclImdb")
    return root / "aclImdb"
