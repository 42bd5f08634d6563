"""Content keys for cached stage outputs: what determines a result names its file.

Every entry also records its size and sha256 when written (a `.sha256` file beside it, see `record_entry`);
`verified_entry` checks both before a stage reuses the entry, so a truncated or corrupted file is rebuilt
instead of crashing a later stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import kdcore

log = logging.getLogger("kdflow")


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the kdcore sources: a change to models, losses or the loop invalidates caches."""
    h = hashlib.sha256()
    root = Path(kdcore.__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def cache_key(*parts: Any) -> str:
    text = json.dumps([code_version(), *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_dir(store_dir: str, kind: str) -> Path:
    path = Path(store_dir) / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def file_record(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return {"size": os.fstat(f.fileno()).st_size, "sha256": hashlib.file_digest(f, "sha256").hexdigest()}


def record_entry(written: Path, path: Path) -> None:
    """Record the size and digest of `written` (a finished temporary file) as those of the entry `path`.

    Called before `written` is renamed to `path`: an entry that exists always has a record, and a crash
    between the two leaves a record that no longer matches, which `verified_entry` treats as corrupt.
    """
    record = record_path(path)
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps(file_record(written)))
    os.replace(tmp, record)


def verified_entry(path: Path) -> bool:
    """True if the entry exists and matches its recorded size and sha256; a bad entry is deleted and reported."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        expected = json.loads(record_path(path).read_text())
        ok = file_record(path) == {"size": expected["size"], "sha256": expected["sha256"]}
        problem = "size/digest mismatch"
    except (OSError, ValueError, KeyError, TypeError):
        ok, problem = False, "no readable size/digest record"
    if ok:
        return True
    log.warning("cache entry %s is corrupt (%s); rebuilding", path, problem)
    path.unlink(missing_ok=True)
    record_path(path).unlink(missing_ok=True)
    return False


def write_entry_text(path: Path, text: str) -> None:
    """A small text entry (a JSON record), written atomically with its size and digest recorded."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    record_entry(tmp, path)
    os.replace(tmp, path)
