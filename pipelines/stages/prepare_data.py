"""Stage 1: load the dataset, split it (stratified, seeded) and store the tensors once."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from kdcore.data import DataBundle, DataError
from kdcore.data.keep_classes import keep_classes
from kdcore.datasets import load_dataset
from pipelines.cache.checkpoint import read_spec, save_atomic
from pipelines.cache.keys import cache_dir, cache_key, verified_entry
from pipelines.config.schema import PipelineConfig
from pipelines.results import PreparedData
from pipelines.stores.reachability import check_stores_reachable
from pipelines.teachers.pretrained import check_pretrained
from pipelines.tuning.method_fit import check_methods_fit
from pipelines.tuning.size_search_fit import check_size_search

log = logging.getLogger("kdflow")


def prepare_data(cfg: PipelineConfig) -> PreparedData:
    check_stores_reachable(cfg)  # a store that is away fails now, in one line, not after training
    check_pretrained(cfg)  # the weights at hand (downloaded once, here) and fitting teacher.arch
    d = cfg.data
    path = (
        cache_dir(cfg.runtime.store_dir, "data") / f"{d.dataset}-{cache_key(d.model_dump(), source_stamp(d.root))}.pt"
    )
    if verified_entry(path):
        bundle = DataBundle.load(str(path))
        log.info("data: reusing prepared %s splits from %s", d.dataset, path)
    else:
        bundle = load_dataset(d.dataset, d.root, d.val_fraction, d.test_fraction, d.seed, **d.loader_options())
        if d.classes:
            bundle = keep_classes(bundle, d.classes, all_in_head=d.head_classes == "all")
        save_atomic(bundle.state_dict(), path)
    check_teacher_fits(cfg, bundle)
    check_size_search(cfg, bundle)  # the smallest searched student builds for this data; its costs are measurable
    check_methods_fit(cfg, bundle)  # a feature method on models without feature maps: refused before training
    sizes = {name: len(split) for name, split in bundle.splits().items()}
    log.info(
        "data: %s %s, %d classes, input %s, augmentation %s",
        d.dataset,
        sizes,
        bundle.num_classes,
        bundle.input_shape,
        "crop+flip" if bundle.view.augments else "none",
    )
    return PreparedData(
        path=str(path),
        digest=bundle.digest,
        num_classes=bundle.num_classes,
        input_shape=list(bundle.input_shape),
        sizes=sizes,
    )


def source_stamp(root: str | None) -> str | None:
    """Names, sizes and modification times of the files under data.root: an edited file is re-read."""
    if not root or not Path(root).exists():
        return None
    top = Path(root)
    files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(top) if p != top else p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def check_teacher_fits(cfg: PipelineConfig, bundle: DataBundle) -> None:
    """A given teacher checkpoint must have been trained for these classes and this input shape."""
    path = cfg.teacher.checkpoint
    if path is None:
        return
    try:
        spec = read_spec(path)
    except ValueError as e:
        raise DataError(f"teacher.checkpoint: {e}") from None
    if spec["num_classes"] != bundle.num_classes:
        raise DataError(
            f"teacher.checkpoint={path} predicts {spec['num_classes']} classes but data.dataset="
            f"{cfg.data.dataset} has {bundle.num_classes}; "
            "use a teacher trained on this dataset or drop teacher.checkpoint"
        )
    if tuple(spec["input_shape"]) != tuple(bundle.input_shape):
        raise DataError(
            f"teacher.checkpoint={path} takes inputs of shape {tuple(spec['input_shape'])} but data.dataset="
            f"{cfg.data.dataset} gives {tuple(bundle.input_shape)}; "
            "match data.image_size/data.channels or drop teacher.checkpoint"
        )
