"""The run's dataset as an MLflow dataset input: name, digest, source and split sizes, so the run's Datasets column
shows what it was trained and tested on (the data themselves stay in kdflow's cache)."""

from __future__ import annotations

import json

import mlflow
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.meta_dataset import MetaDataset

from pipelines.config.schema import PipelineConfig
from pipelines.results import PreparedData


class SplitsDataset(MetaDataset):
    """A metadata-only dataset whose profile is its split sizes ({"train": 1150, "val": 287, "test": 360})."""

    def __init__(self, source, name: str, digest: str, sizes: dict[str, int]):
        self._sizes = dict(sizes)
        super().__init__(source, name=name, digest=digest)

    @property
    def profile(self) -> dict[str, int]:
        return self._sizes

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self._sizes)}


def run_dataset(cfg: PipelineConfig, data: PreparedData) -> SplitsDataset:
    d = cfg.data
    source = CodeDatasetSource({"kdflow.dataset": d.dataset, "data.root": d.root or "", "data.seed": str(d.seed)})
    return SplitsDataset(source, name=d.dataset, digest=data.digest, sizes=data.sizes)


def log_dataset(cfg: PipelineConfig, data: PreparedData, context: str) -> None:
    """On the active run; `context` says what the run did with it ("train", "test")."""
    mlflow.log_input(run_dataset(cfg, data), context=context)
