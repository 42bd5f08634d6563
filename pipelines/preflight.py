"""`kdflow run --dry-run`: everything a run needs, checked without training or writing a cache entry.

Each check returns a line saying what it found; a failed check raises the error a real run would raise
(ConfigError, DataError), with the same one-sentence message.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from kdcore.datasets import load_dataset
from pipelines.config.schema import ConfigError, PipelineConfig
from pipelines.stages.prepare_data import check_teacher_fits
from pipelines.stores.reachability import check_stores_reachable
from pipelines.teachers.pretrained import check_pretrained
from pipelines.tracking.runs import redact, tracking_uri
from pipelines.tuning.method_fit import check_methods_fit
from pipelines.tuning.size_search_fit import check_size_search
from pipelines.tuning.study import (
    defaults,
    inside_ranges,
    searched_methods,
    searched_students,
    searches_size,
    size_values,
    storage_url,
)


def check_store(cfg: PipelineConfig) -> str:
    store = Path(cfg.runtime.store_dir)
    try:
        store.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=store).close()
    except OSError as e:
        raise ConfigError(f"runtime.store_dir={store} is not writable ({e.strerror}); pick another folder") from None
    check_stores_reachable(cfg)
    return f"stores: MLflow {redact(tracking_uri(cfg))}, Optuna {redact(storage_url(cfg))}, caches in {store}/cache"


def check_data(cfg: PipelineConfig) -> str:
    d = cfg.data
    bundle = load_dataset(d.dataset, d.root, d.val_fraction, d.test_fraction, d.seed, **d.loader_options())
    check_teacher_fits(cfg, bundle)
    check_size_search(cfg, bundle)
    check_methods_fit(cfg, bundle)
    sizes = ", ".join(f"{name} {len(split)}" for name, split in bundle.splits().items())
    return f"data: {d.dataset} readable, {bundle.num_classes} classes, input {tuple(bundle.input_shape)}, {sizes}"


def check_search(cfg: PipelineConfig) -> str:
    """The warm start (the config's own values) is the first trial; a value outside its range starts at its edge."""
    if cfg.tune.n_trials == 0:
        return "search: none (tune.n_trials=0), the configured hyper-parameters are used"
    moved = []
    for method in searched_methods(cfg):
        start = inside_ranges(cfg, method, configured := defaults(cfg, method))
        moved += [
            f"{name} {configured[name]:g} -> {value:g}" for name, value in start.items() if value != configured[name]
        ]
    where = f"warm start moved into tune.space: {', '.join(moved)}" if moved else "warm start inside the ranges"
    sizes = ""
    if searches_size(cfg):
        space = cfg.tune.space
        ranges = [f"{n} {r.low}-{r.high}" for n, r in (("width", space.width), ("depth", space.depth)) if r]
        ranges += [  # a ResNet's depths step by 6: say which of the range it tries
            f"{arch} depths {', '.join(map(str, d)) if len(d) <= 4 else f'{d[0]}, {d[1]}, ..., {d[-1]}'}"
            for arch in searched_students(cfg)
            if (d := size_values(cfg, arch, "depth")) and d.step > 1
        ]
        sizes = f"; students {', '.join(searched_students(cfg))}" + (f" at {', '.join(ranges)}" if ranges else "")
    goal = " x ".join(cfg.tune.objectives) + (f", register.budget {cfg.register.budget}" if cfg.register.budget else "")
    return f"search: {cfg.tune.n_trials} trials over {', '.join(searched_methods(cfg))}{sizes} for {goal}, {where}"


def check_run(cfg: PipelineConfig) -> list[str]:
    return [check_store(cfg), check_search(cfg), *filter(None, [check_pretrained(cfg)]), check_data(cfg)]
