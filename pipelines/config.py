"""One typed config for the whole pipeline: CLI input, Prefect form and MLflow params."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PRESETS_DIR = Path(__file__).parent / "presets"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TextDataConfig(Section):
    max_len: int = Field(256, ge=1, le=100_000, description="Tokens kept per text; longer texts are cut.")
    vocab_size: int = Field(20_000, ge=3, le=10_000_000, description="Vocabulary size, <pad> and <unk> included; counted on the train split only.")
    min_freq: int = Field(2, ge=1, description="Words seen fewer times in the train split become <unk>.")
    lowercase: bool = Field(True, description="Lower-case texts before splitting them into words.")
    text_column: str = Field("text", min_length=1, description="CSV column / JSON key holding the text (text_csv, text_jsonl).")
    label_column: str = Field("label", min_length=1, description="CSV column / JSON key holding the label (text_csv, text_jsonl).")
    labels: list[str] | None = Field(None, description="The label set; records with other labels are bad input (default: the labels of the train split).")


TEXT_DATASETS = ("imdb", "ag_news", "text_csv", "text_jsonl", "text_folder")


class DataConfig(Section):
    dataset: Literal["digits", "imdb", "ag_news", "text_csv", "text_jsonl", "text_folder"] = Field("digits", description="Dataset to train and evaluate on.")
    root: str | None = Field(None, description="Folder holding the dataset files (not needed for digits).")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of the data held out for validation (tuning).")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Share of the data held out for the final test.")
    seed: int = Field(0, ge=0, description="Seed of the stratified split.")
    strict: bool = Field(True, description="A bad record (empty text, missing or unknown label, undecodable bytes) stops loading; false skips and reports it.")
    text: TextDataConfig = Field(default_factory=TextDataConfig, description="Tokenisation and columns of text datasets.")

    def loader_options(self) -> dict[str, Any]:
        """Keyword options of this dataset's loader (text datasets: tokenisation and record checks)."""
        if self.dataset not in TEXT_DATASETS:
            return {}
        from kdcore.text.settings import TextSettings

        t = self.text
        return {"text": TextSettings(
            max_len=t.max_len, vocab_size=t.vocab_size, min_freq=t.min_freq, lowercase=t.lowercase,
            text_column=t.text_column, label_column=t.label_column,
            labels=tuple(t.labels) if t.labels else None, strict=self.strict,
        )}


class TrainConfig(Section):
    epochs: int = Field(20, ge=1, le=10_000, description="Passes over the training split.")
    batch_size: int = Field(64, ge=1, le=65_536, description="Samples per optimisation step.")
    lr: float = Field(1e-3, gt=0, le=10, description="Peak learning rate (one-cycle schedule).")
    weight_decay: float = Field(0.0, ge=0, le=1, description="Decoupled weight decay.")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="AdamW or SGD with Nesterov momentum.")


class ModelConfig(Section):
    arch: str = Field(description="Registered model name, e.g. cnn_medium or mlp.")
    width: int | None = Field(None, ge=1, le=4096, description="Base width of the model (its default if empty).")
    train: TrainConfig = Field(default_factory=TrainConfig, description="How this model is trained.")

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        from kdcore.models import MODELS

        if arch not in MODELS:
            raise ValueError(f"unknown model {arch!r}; choose one of {sorted(MODELS)}")
        return arch

    def options(self) -> dict[str, Any]:
        return {} if self.width is None else {"width": self.width}


class DistributedConfig(Section):
    nproc: int = Field(1, ge=1, le=1024, description="Processes (one per GPU) training the teacher under torchrun with DDP; 1: no torchrun.")
    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="Collective backend: auto is NCCL on CUDA, gloo on CPU.")


class TeacherConfig(ModelConfig):
    distributed: DistributedConfig = Field(default_factory=DistributedConfig, description="Data-parallel teacher training.")


class DistillConfig(Section):
    method: Literal["kd"] = Field("kd", description="Distillation method (Hinton's KD).")
    temperature: float = Field(4.0, gt=0, le=100, description="Softmax temperature T of the soft targets.")
    alpha: float = Field(0.9, ge=0, le=1, description="Weight of the distillation term; 1 - alpha weights the labels.")


class Range(Section):
    low: float = Field(description="Lowest value tried.")
    high: float = Field(description="Highest value tried.")
    log: bool = Field(False, description="Sample on a log scale.")

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError("needs low < high (and low > 0 on a log scale)")
        return self


class SearchSpace(Section):
    temperature: Range = Field(default_factory=lambda: Range(low=1.0, high=8.0), description="Range of distill.temperature.")
    alpha: Range = Field(default_factory=lambda: Range(low=0.1, high=0.95), description="Range of distill.alpha.")
    lr: Range = Field(default_factory=lambda: Range(low=1e-4, high=3e-2, log=True), description="Range of the student's learning rate.")
    weight_decay: Range = Field(default_factory=lambda: Range(low=1e-6, high=1e-2, log=True), description="Range of the student's weight decay.")


class TuneConfig(Section):
    n_trials: int = Field(12, ge=0, le=10_000, description="Finished trials the study must hold (0: no tuning).")
    epochs: int | None = Field(None, ge=1, le=10_000, description="Epochs per trial (default: the student's epochs).")
    pruner: Literal["median", "hyperband", "none"] = Field("median", description="Stops trials whose per-epoch validation accuracy lags.")
    seed: int = Field(0, ge=0, description="Seed of the TPE sampler.")
    study_name: str | None = Field(None, description="Optuna study name; the same name resumes (default: derived from the config).")
    storage: str | None = Field(None, description="Optuna storage URL (default: KDFLOW_OPTUNA_STORAGE, else SQLite under mlruns/).")
    n_workers: int = Field(1, ge=1, le=1024, description="Tuning workers pulling trials from the one study (processes here, or runs of tune.deployment).")
    deployment: str | None = Field(None, description="Prefect deployment of the tune-worker flow (e.g. tune-worker/kdflow) whose runs on a work pool are the workers; empty: local processes.")
    heartbeat_seconds: int = Field(10, ge=1, le=3600, description="How often a running trial tells the study it is alive.")
    grace_seconds: int = Field(60, ge=2, le=86_400, description="Silence after which a trial's worker is taken for dead: the trial fails and is retried.")
    space: SearchSpace = Field(default_factory=SearchSpace, description="Search ranges of the tuned parameters.")


class RuntimeConfig(Section):
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where to train: auto picks CUDA, then MPS, then CPU.")
    seed: int = Field(0, ge=0, description="Seed of model initialisation and batch order.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else SQLite under mlruns/).")
    experiment: str | None = Field(None, description="MLflow experiment name (default: kdflow-<name>).")
    store_dir: str = Field("mlruns", description="Folder of the local stores and caches.")


class PipelineConfig(Section):
    name: str = Field("digits", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$", description="Pipeline (preset) name: names the experiment and the registered model.")
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=lambda: TeacherConfig(arch="cnn_medium"))
    student: ModelConfig = Field(default_factory=lambda: ModelConfig(arch="mlp"))
    distill: DistillConfig = Field(default_factory=DistillConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @model_validator(mode="after")
    def _models_read_the_data(self) -> "PipelineConfig":
        from kdcore.text.models import TEXT_MODELS

        text = self.data.dataset in TEXT_DATASETS
        for role in ("teacher", "student"):
            arch = getattr(self, role).arch
            if (arch in TEXT_MODELS) != text:
                kind = "a text model (" + ", ".join(TEXT_MODELS) + ")" if text else "an image model"
                raise ValueError(f"{role}.arch={arch} does not fit data.dataset={self.data.dataset}; choose {kind}")
        return self

    def flat(self) -> dict[str, Any]:
        """`{"teacher.arch": "cnn_medium", "distill.temperature": 4.0, ...}`."""
        return flatten(self.model_dump())


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line naming the field and the reason."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def read_preset(preset: str) -> dict[str, Any]:
    """A preset by name (pipelines/presets/NAME.yaml) or by path to a YAML file."""
    path = Path(preset) if preset.endswith((".yaml", ".yml")) or "/" in preset else PRESETS_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError(f"preset {preset!r} not found; use one of {preset_names()} or a path to a YAML file")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"preset {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"preset {path} must be a mapping of config sections")
    return tree


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML, so 3 is an int and [1, 2] a list)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {assignment!r} must look like key=value, e.g. tune.n_trials=20")
    *parents, leaf = key.strip().split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {part!r} is a value, not a section")
        node = child
    try:
        node[leaf] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        node[leaf] = raw


def validate(tree: dict[str, Any]) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"invalid config: {where}: {reason}{more}") from None


def load_config(preset: str = "digits", overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    tree = read_preset(preset)
    for assignment in overrides:
        apply_override(tree, assignment)
    return validate(tree)
