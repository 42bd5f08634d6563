"""Content keys for cached stage outputs: what determines a result names its file."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import kdcore


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
