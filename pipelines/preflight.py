"""`kdflow run --dry-run`: everything a run needs, checked without training or writing a cache entry.

Each check returns a line saying what it found; a failed check raises the error a real run would raise
(ConfigError, DataError), with the same one-sentence message.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from kdcore.datasets import load_dataset
from pipelines.config import ConfigError, PipelineConfig
from pipelines.stages.prepare_data import check_teacher_fits
from pipelines.tracking import redact, tracking_uri
from pipelines.tuning import defaults, method_space, searched_methods, storage_url


def check_store(cfg: PipelineConfig) -> str:
    store = Path(cfg.runtime.store_dir)
    try:
        store.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=store).close()
    except OSError as e:
        raise ConfigError(f"runtime.store_dir={store} is not writable ({e.strerror}); pick another folder") from None
    return f"stores: MLflow {redact(tracking_uri(cfg))}, Optuna {redact(storage_url(cfg))}, caches in {store}/cache"


def check_data(cfg: PipelineConfig) -> str:
    d = cfg.data
    bundle = load_dataset(d.dataset, d.root, d.val_fraction, d.test_fraction, d.seed, **d.loader_options())
    check_teacher_fits(cfg, bundle)
    sizes = ", ".join(f"{name} {len(split)}" for name, split in bundle.splits().items())
    return f"data: {d.dataset} readable, {bundle.num_classes} classes, input {tuple(bundle.input_shape)}, {sizes}"


def check_search(cfg: PipelineConfig) -> str:
    """The warm start (the config's own values) is the first trial: it must lie in the searched ranges."""
    if cfg.tune.n_trials == 0:
        return "search: none (tune.n_trials=0), the configured hyper-parameters are used"
    for method in searched_methods(cfg):
        ranges = {**method_space(cfg, method), "lr": cfg.tune.space.lr, "weight_decay": cfg.tune.space.weight_decay}
        for name, value in defaults(cfg, method).items():
            r = ranges[name]
            if not r.low <= value <= r.high:
                raise ConfigError(
                    f"the configured {name}={value:g} lies outside its search range [{r.low:g}, {r.high:g}] "
                    "(tune.space); widen the range or change the value"
                )
    return f"search: {cfg.tune.n_trials} trials over {', '.join(searched_methods(cfg))}, warm start inside the ranges"


def check_run(cfg: PipelineConfig) -> list[str]:
    return [check_store(cfg), check_search(cfg), check_data(cfg)]
