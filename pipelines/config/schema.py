"""One typed config for the whole pipeline: CLI input, Prefect form and MLflow params."""

from __future__ import annotations

import difflib
import re
import warnings
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from kdcore.datasets import DATASETS, MODALITY
from kdcore.distill import DISTILLERS
from kdcore.lifelong import STRATEGIES
from kdcore.options import OptionSpec, option_specs

PRESETS_DIR = Path(__file__).parent / "presets"


def auto_or_count(value: Any, most: int, what: str) -> Any:
    """`auto` or a whole number from 1 to `most`: one clear message for 0, -1, true or "many" instead of one per
    member of the union."""
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most):
        return value
    raise ValueError(f"choose auto or a whole number of {what} from 1 to {most}")


class Section(BaseModel):
    # NaN and infinities are no setting: `.inf` as a search bound failed only after training.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """`tune.n_trials=true` is a mistake, not 1: pydantic would take a bool for a number."""
        if isinstance(value, bool) and _is_number(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"must be a number, not {str(value).lower()}")
        return value


def _is_number(annotation: Any) -> bool:
    return annotation in (int, float) or any(a in (int, float) for a in get_args(annotation))


class TextDataConfig(Section):
    max_len: int = Field(256, ge=1, le=100_000, description="Tokens kept per text; longer texts are cut.")
    vocab_size: int = Field(
        20_000,
        ge=3,
        le=10_000_000,
        description="Vocabulary size, <pad> and <unk> included; counted on the train split only.",
    )
    min_freq: int = Field(2, ge=1, description="Words seen fewer times in the train split become <unk>.")
    lowercase: bool = Field(True, description="Lower-case texts before splitting them into words.")
    text_column: str = Field(
        "text", min_length=1, description="CSV column / JSON key holding the text (text_csv, text_jsonl)."
    )
    label_column: str = Field(
        "label", min_length=1, description="CSV column / JSON key holding the label (text_csv, text_jsonl)."
    )
    labels: list[str] | None = Field(
        None,
        description="The label set; records with other labels are bad input (default: the labels of the train split).",
    )


# Every registered loader, image and text (kdcore/data, kdcore/text): a new dataset file is a new choice here.
DatasetName = Literal[tuple(sorted(DATASETS, key=lambda name: MODALITY[name] != "image"))]  # images first
TEXT_DATASETS = tuple(name for name in DATASETS if MODALITY[name] == "text")


class DataConfig(Section):
    dataset: DatasetName = Field(
        "digits", description="Dataset to train and evaluate on (imagefolder: your own images, one folder per class)."
    )
    root: str | None = Field(
        None,
        description=(
            "Folder holding the dataset files (not needed for digits); torchvision datasets are downloaded here when "
            "absent and the network allows."
        ),
    )
    val_fraction: float = Field(
        0.15,
        gt=0,
        lt=0.5,
        description="Share of the training data held out for validation (tuning); never taken from the test set.",
    )
    test_fraction: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Share held out for the final test, for data without its own test split (digits, imagefolder).",
    )
    seed: int = Field(0, ge=0, description="Seed of the stratified split.")
    image_size: int | None = Field(
        None,
        ge=4,
        le=1024,
        description=(
            "imagefolder: images are resized and centre-cropped to this side in pixels (default 32; "
            "224 for ImageNet models)."
        ),
    )
    channels: Literal[1, 3] = Field(3, description="imagefolder: 1 reads images as grey, 3 as RGB.")
    mean: list[float] | None = Field(
        None,
        description=(
            "Per-channel mean on the [0, 1] scale, e.g. [0.485, 0.456, 0.406] (default: training-split statistics)."
        ),
    )
    std: list[float] | None = Field(
        None, description="Per-channel standard deviation on the [0, 1] scale (default: training-split statistics)."
    )
    augment: Literal["auto", "none", "crop_flip"] = Field(
        "auto",
        description=(
            "Training augmentation: auto = random crop with padding + horizontal flip for CIFAR, none otherwise."
        ),
    )
    strict: bool = Field(
        False,
        description=(
            "A corrupt image or a bad text record (empty text, missing or unknown label, undecodable bytes) "
            "stops the run instead of being skipped with a warning."
        ),
    )
    download: bool = Field(
        True,
        description=(
            "Download missing mnist / fashion_mnist / cifar files into data.root, and named pretrained teacher "
            "weights into TORCH_HOME, when the network is reachable."
        ),
    )
    limit_train: int | None = Field(
        None,
        ge=10,
        description="Keep only a seeded, stratified subsample of this many training images (quick trials and tests).",
    )
    classes: list[str] | None = Field(
        None,
        min_length=2,
        description=(
            "Keep only these classes (names, e.g. ['0', '1', '2']); later batches may bring the others, and the "
            "model's head widens to them. Default: every class."
        ),
    )
    head_classes: Literal["kept", "all"] = Field(
        "kept",
        description=(
            "With data.classes, the classes the model's head scores from the start. kept: data.classes only; "
            "its head widens when a batch brings a new class. all: every class of the dataset, the others "
            "untrained until a batch brings them, as class-incremental protocols do (the DER paper's "
            "Seq-MNIST): LwF then also distils, and DER++ also stores, the outputs of classes not yet seen."
        ),
    )
    text: TextDataConfig = Field(
        default_factory=TextDataConfig, description="Tokenisation and columns of text datasets."
    )

    def loader_options(self) -> dict[str, Any]:
        """Keyword options of this dataset's loader, beyond root, split fractions and seed."""
        if self.dataset in TEXT_DATASETS:
            from kdcore.text.settings import TextSettings

            t = self.text
            return {
                "strict": self.strict,
                "text": TextSettings(
                    max_len=t.max_len,
                    vocab_size=t.vocab_size,
                    min_freq=t.min_freq,
                    lowercase=t.lowercase,
                    text_column=t.text_column,
                    label_column=t.label_column,
                    labels=tuple(t.labels) if t.labels else None,
                    strict=self.strict,
                ),
            }
        return {
            "image_size": self.image_size,
            "channels": self.channels,
            "augment": self.augment,
            "strict": self.strict,
            "download": self.download,
            "limit_train": self.limit_train,
            "mean": tuple(self.mean) if self.mean else None,
            "std": tuple(self.std) if self.std else None,
        }

    @field_validator("classes", mode="before")
    @classmethod
    def _class_names(cls, value: Any) -> Any:
        """`--set data.classes=[0,1,2]` names classes: digits' class names are the strings '0', '1', ..."""
        if isinstance(value, list):
            return [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
        return value

    @model_validator(mode="after")
    def _std_positive(self) -> DataConfig:
        if self.std is not None and min(self.std, default=1) <= 0:
            raise ValueError("data.std values must be greater than 0")
        return self


class TrainConfig(Section):
    epochs: int = Field(20, ge=1, le=10_000, description="Passes over the training split.")
    batch_size: int = Field(64, ge=1, le=65_536, description="Samples per optimisation step.")
    lr: float = Field(1e-3, gt=0, le=10, description="Peak learning rate (one-cycle schedule).")
    weight_decay: float = Field(0.0, ge=0, le=1, description="Decoupled weight decay.")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="AdamW or SGD with Nesterov momentum.")
    momentum: float = Field(
        0.9,
        ge=0,
        lt=1,
        description="SGD's Nesterov momentum; 0: plain SGD (the lifelong-learning protocols' optimiser).",
    )
    schedule: Literal["onecycle", "step", "constant"] = Field(
        "onecycle",
        description=(
            "Learning-rate schedule: one-cycle, step (x0.1 at 5/8, 6/8, 7/8 of the epochs, CRD's CIFAR recipe), "
            "or constant."
        ),
    )
    early_stop_patience: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description=(
            "Stop once validation accuracy has not improved for this many epochs; empty: train every epoch. "
            "Either way the best validation epoch's weights are kept."
        ),
    )


class TeacherTrainConfig(TrainConfig):
    backbone_lr_factor: float = Field(
        1.0,
        gt=0,
        le=1,
        description=(
            "Fine-tuning: every layer but the classifier head learns at lr times this factor "
            "(e.g. 0.1 for a pretrained teacher, whose backbone needs only small steps)."
        ),
    )
    freeze_backbone_epochs: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Fine-tuning: for this many first epochs only the new classifier head learns.",
    )


class ModelConfig(Section):
    arch: str = Field(description="Registered model name, e.g. cnn_medium or mlp.")
    width: int | None = Field(
        None,
        ge=1,
        le=4096,
        description=(
            "Base width: hidden units (mlp), first-stage channels (cnn_*, resnet*), widen factor (wrn_*); "
            "the model's default if empty."
        ),
    )
    depth: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Depth: hidden layers (mlp) or layers (resnet*: 6n+2, wrn_*: 6n+4); the model's default if empty.",
    )
    width_multiplier: float | None = Field(
        None,
        gt=0,
        le=8,
        description="Channel multiplier of MobileNets (mobilenetv2, mobilenet_v3_small); the model's default if empty.",
    )
    input_dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Share of input pixels dropped in training (mlp); the model's default (none) if empty.",
    )
    ngrams: int | None = Field(
        None,
        ge=1,
        le=4,
        description=(
            "Word n-grams up to this length, hashed into their own embeddings (fasttext, Joulin et al. 2017); "
            "empty or 1: words alone (bigrams measured no better on the man-page corpus, at 4x the parameters)."
        ),
    )
    buckets: int | None = Field(
        None, ge=1, le=10_000_000, description="Hash buckets of those n-grams (fasttext); the model's default if empty."
    )
    train: TrainConfig = Field(default_factory=TrainConfig, description="How this model is trained.")

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        from kdcore.models import MODELS

        if arch not in MODELS:
            raise ValueError(f"unknown model {arch!r}; choose one of {sorted(MODELS)}" + did_you_mean(arch, MODELS))
        return arch

    @model_validator(mode="after")
    def _options_exist(self) -> ModelConfig:
        import inspect

        from kdcore.models import MODELS

        accepted = inspect.signature(MODELS[self.arch]).parameters
        for option in self.options():
            if option not in accepted:
                raise ValueError(f"model {self.arch} has no {option} option; leave it empty")
        return self

    def options(self) -> dict[str, Any]:
        values = {
            "width": self.width,
            "depth": self.depth,
            "width_multiplier": self.width_multiplier,
            "input_dropout": self.input_dropout,
            "ngrams": self.ngrams,
            "buckets": self.buckets,
        }
        return {k: v for k, v in values.items() if v is not None}


class Range(Section):
    low: float = Field(description="Lowest value tried.")
    high: float = Field(description="Highest value tried.")
    log: bool = Field(False, description="Sample on a log scale.")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError("needs low < high (and low > 0 on a log scale)")
        return self


def span(low: float, high: float, what: str, log: bool = True) -> Any:
    return Field(default_factory=lambda: Range(low=low, high=high, log=log), description=f"Range of {what}.")


# KD methods: their config sections, form fields and search ranges come from the options each method declares
# beside its loss (kdcore/distill/<method>.py); kd's own two sit flat under `distill`, the spine of every method.
METHODS = sorted(DISTILLERS, key=lambda m: (m != "kd", DISTILLERS[m].needs_features, m))
MethodName = Literal[tuple(METHODS)]
KD_OPTIONS = {o.name: o for o in option_specs(DISTILLERS["kd"].Options)}


def option_field(o: OptionSpec) -> Any:
    return Field(o.default, description=o.description, **o.bounds)


def kd_span(name: str) -> Any:
    search = KD_OPTIONS[name].search
    return span(search.low, search.high, f"distill.{name}", log=search.log)


def about(options: type) -> str:
    """The options' docstring on one line: the method's name and source, and where its defaults come from."""
    return " ".join((options.__doc__ or "").split())


def method_sections(make_section, describe=lambda method: about(DISTILLERS[method].Options)) -> dict[str, Any]:
    """`{method: (section model, its field)}` for every method but kd; `make_section(method, options)` builds the
    section model, or None when the method has nothing to put in it."""
    out = {}
    for method in METHODS[1:]:
        section = make_section(method, DISTILLERS[method].Options)
        if section is not None:
            out[method] = (section, Field(default_factory=section, description=describe(method)))
    return out


def options_model(owner: type, options: type) -> type[Section]:
    """A config section of a method's or strategy's options: one field per option, its default, bounds and meaning."""
    fields = {o.name: (o.type, option_field(o)) for o in option_specs(options)}
    return create_model(f"{owner.__name__}Config", __base__=Section, **fields)


def options_section(method: str, options: type) -> type[Section]:
    return options_model(DISTILLERS[method], options)


def search_section(method: str, options: type) -> type[Section] | None:
    """A method's search ranges: one per tuned option (None when none is tuned)."""
    fields = {
        o.name: (Range, span(o.search.low, o.search.high, f"distill.{method}.{o.name}", log=o.search.log))
        for o in option_specs(options)
        if o.search is not None
    }
    if not fields:
        return None
    return create_model(f"{DISTILLERS[method].__name__}Space", __base__=Section, **fields)


class LayersConfig(Section):
    teacher: list[str] = Field(
        default_factory=list,
        description=(
            "Teacher modules whose outputs feature methods read, shallow to deep (empty: the model's default stages)."
        ),
    )
    student: list[str] = Field(
        default_factory=list,
        description=(
            "Student modules whose outputs feature methods read, shallow to deep (empty: the model's default stages)."
        ),
    )
    teacher_embedding: str | None = Field(
        None,
        description="Teacher module whose input is the embedding RKD, PKT and CRD read (empty: its last linear layer).",
    )
    student_embedding: str | None = Field(
        None,
        description="Student module whose input is the embedding RKD, PKT and CRD read (empty: its last linear layer).",
    )


class DistributedConfig(Section):
    nproc: int = Field(
        1,
        ge=1,
        le=1024,
        description="Processes (one per GPU) training the teacher under torchrun with DDP; 1: no torchrun.",
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="Collective backend: auto is NCCL on CUDA, gloo on CPU."
    )


class TeacherConfig(ModelConfig):
    checkpoint: str | None = Field(
        None,
        description=(
            "A kdflow teacher checkpoint (.pt) to use instead of training one; its class count must match the data."
        ),
    )
    pretrained: str | None = Field(
        None,
        description=(
            "Start from pretrained weights and fine-tune them: torchvision's weights of teacher.arch by name "
            "(IMAGENET1K_V1, DEFAULT or ResNet18_Weights.IMAGENET1K_V1; downloaded into TORCH_HOME when absent and "
            "data.download allows), or a path to a state dict saved with torch.save(model.state_dict()). The "
            "classifier head is replaced for the data's classes; the teacher sees the images resized and normalised "
            "as its weights expect, the student at data.image_size with the data's own normalisation. "
            "With teacher.arch=hf (texts): a Hugging Face model id (downloaded into HF_HOME) or a folder saved with "
            "save_pretrained, holding its tokenizer; the teacher reads the raw texts with that tokenizer. "
            "With teacher.arch=timm: timm:<name> (weights into HF_HOME) or a folder written by timm's save_for_hf."
        ),
    )
    image_size: int | None = Field(
        None,
        ge=16,
        le=1024,
        description=(
            "With teacher.pretrained: side in pixels of the teacher's input (default: the weights' own crop, "
            "224 for ImageNet weights; a local file without metadata: 224)."
        ),
    )
    train: TeacherTrainConfig = Field(default_factory=TeacherTrainConfig, description="How the teacher is trained.")
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig, description="Data-parallel teacher training."
    )

    @model_validator(mode="after")
    def _pretrained_fits(self) -> TeacherConfig:
        """Names, families and combinations are checked here; files (cache, shapes) before the run's first stage."""
        if self.pretrained is None:
            if self.arch == "timm":
                raise ValueError(
                    "teacher.arch=timm needs teacher.pretrained: timm:<name> (e.g. timm:resnet18.a1_in1k) or a folder "
                    "written by timm.models.save_for_hf"
                )
            if self.arch == "hf":
                raise ValueError(
                    "teacher.arch=hf needs teacher.pretrained: a Hugging Face model id (e.g. distilbert-base-uncased) "
                    "or a folder saved with save_pretrained"
                )
            if self.image_size is not None:
                raise ValueError("teacher.image_size applies only with teacher.pretrained; leave it empty")
            return self
        from kdcore.models.pretrained import check_pretrainable, is_path, named_weights
        from kdcore.models.text import TEXT_MODELS

        if self.checkpoint:
            raise ValueError("teacher.pretrained and teacher.checkpoint exclude each other; set only one")
        if self.arch == "hf":
            if self.image_size is not None or self.distributed.nproc > 1:
                raise ValueError(
                    "teacher.arch=hf takes neither teacher.image_size nor teacher.distributed.nproc > 1; leave them"
                )
            return self
        if self.arch == "timm":
            from kdcore.models.timm_models import check_timm_source

            check_timm_source(self.pretrained)
            return self
        if self.pretrained.startswith("timm:"):
            raise ValueError(f"teacher.pretrained={self.pretrained} is a timm model; set teacher.arch=timm")
        if self.arch in TEXT_MODELS:
            raise ValueError(
                f"{self.arch} has no pretrained weights; for texts set teacher.arch=hf with teacher.pretrained="
                "<Hugging Face model id or folder>, or drop teacher.pretrained"
            )
        if self.distributed.nproc > 1 and self.train.freeze_backbone_epochs:
            raise ValueError(
                "teacher.train.freeze_backbone_epochs does not work under DDP (teacher.distributed.nproc > 1); "
                "set it to 0 or use backbone_lr_factor"
            )
        check_pretrainable(self.arch)
        if not is_path(self.pretrained):
            named_weights(self.arch, self.pretrained)
        return self


class DistillSpine(Section):
    """Settings every method shares: which method, kd's temperature and weight, and the teacher's views."""

    method: MethodName = Field(
        "kd",
        description=(
            f"Distillation method: {', '.join(m for m in METHODS if not DISTILLERS[m].needs_features)} (logits); "
            f"{', '.join(m for m in METHODS if DISTILLERS[m].needs_features)} (features)."
        ),
    )
    temperature: float = option_field(KD_OPTIONS["temperature"])
    alpha: float = option_field(KD_OPTIONS["alpha"])
    teacher_views: int = Field(
        0,
        ge=0,
        le=1000,
        description=(
            "Augmented data only: 0 = run the teacher online on each augmented batch; "
            "K > 0 = cache the teacher's outputs on K augmented views per training sample and replay exactly those "
            "views to the student (feature methods still run the teacher online for its features)."
        ),
    )
    layers: LayersConfig = Field(default_factory=LayersConfig, description="Which modules feature methods read.")


DistillConfig = create_model("DistillConfig", __base__=DistillSpine, **method_sections(options_section))


class SizeRange(Section):
    low: int = Field(ge=1, le=4096, description="Smallest value tried.")
    high: int = Field(ge=1, le=4096, description="Largest value tried.")
    log: bool = Field(False, description="Sample on a log scale.")

    @model_validator(mode="after")
    def _ordered(self) -> SizeRange:
        if not self.low < self.high:
            raise ValueError("needs low < high")
        return self


class SearchSpaceSpine(Section):
    temperature: Range = kd_span("temperature")
    alpha: Range = kd_span("alpha")
    lr: Range = Field(
        default_factory=lambda: Range(low=1e-4, high=3e-2, log=True),
        description="Range of the student's learning rate.",
    )
    weight_decay: Range = Field(
        default_factory=lambda: Range(low=1e-6, high=1e-2, log=True), description="Range of the student's weight decay."
    )
    width: SizeRange | None = Field(
        None,
        description=(
            "Range of the student's width (student.width: hidden units of mlp, channels of cnn_*, resnet*); "
            "empty: the student's own width, not searched."
        ),
    )
    depth: SizeRange | None = Field(
        None,
        description=(
            "Range of the student's depth, for the searched students that have one (mlp: hidden layers; "
            "resnet*: 6n+2, wrn_*: 6n+4, of which only those in the range are tried); empty: not searched."
        ),
    )


SearchSpace = create_model(
    "SearchSpace",
    __base__=SearchSpaceSpine,
    **method_sections(search_section, lambda method: f"Ranges of {DISTILLERS[method].__name__}'s tuned options."),
)


COSTS = ("params", "size_mb", "flops", "latency_ms")  # = pipelines.tuning.student_cost.MEASURES
Objective = Literal["accuracy", "params", "size_mb", "flops", "latency_ms"]


class TuneConfig(Section):
    n_trials: int = Field(12, ge=0, le=10_000, description="Finished trials the study must hold (0: no tuning).")
    epochs: int | None = Field(None, ge=1, le=10_000, description="Epochs per trial (default: the student's epochs).")
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="Stops trials whose per-epoch validation accuracy lags."
    )
    seed: int = Field(0, ge=0, description="Seed of the TPE sampler.")
    study_name: str | None = Field(
        None, description="Optuna study name; the same name resumes (default: derived from the config)."
    )
    storage: str | None = Field(
        None, description="Optuna storage URL (default: KDFLOW_OPTUNA_STORAGE, else SQLite under mlruns/)."
    )
    n_workers: int = Field(
        1,
        ge=1,
        le=1024,
        description="Tuning workers pulling trials from the one study (processes here, or runs of tune.deployment).",
    )
    deployment: str | None = Field(
        None,
        description=(
            "Prefect deployment of the tune-worker flow (e.g. tune-worker/kdflow) "
            "whose runs on a work pool are the workers; empty: local processes."
        ),
    )
    vectorise: Literal["auto"] | Annotated[int, Field(ge=1, le=256)] = Field(
        1,
        description=(
            "Trials each worker trains at once as one stacked model (K students, one forward and backward, each "
            "with its own hyper-parameters; logit methods, one student architecture): 1 = one at a time; "
            "auto = the K with the most trials per second, measured on the worker's device at start."
        ),
    )

    @field_validator("vectorise", mode="before")
    @classmethod
    def _auto_or_group_size(cls, value: Any) -> Any:
        return auto_or_count(value, 256, "trials")

    heartbeat_seconds: int = Field(
        10, ge=1, le=3600, description="How often a running trial tells the study it is alive."
    )
    grace_seconds: int = Field(
        60,
        ge=2,
        le=86_400,
        description="Silence after which a trial's worker is taken for dead: the trial fails and is retried.",
    )
    space: SearchSpace = Field(default_factory=SearchSpace, description="Search ranges of the tuned parameters.")
    methods: list[MethodName] = Field(
        default_factory=list,
        description="Methods Optuna chooses among, each with its own weights (empty: only distill.method).",
    )
    student_archs: list[str] = Field(
        default_factory=list,
        description=(
            "Student models Optuna chooses among, all of the data's modality, each at the searched width and depth "
            "(empty: only student.arch)."
        ),
    )
    objectives: list[Objective] = Field(
        default_factory=lambda: ["accuracy"],
        description=(
            "What the study optimises: [accuracy] (validation accuracy, pruned), or [accuracy, COST] with COST one of "
            "params, size_mb, flops (per sample), latency_ms (batch 1, on the worker's device): a multi-objective "
            "study, unpruned, that maps the accuracy-versus-cost Pareto front."
        ),
    )

    @field_validator("student_archs")
    @classmethod
    def _known_archs(cls, archs: list[str]) -> list[str]:
        from kdcore.models import MODELS

        for arch in archs:
            if arch not in MODELS:
                raise ValueError(f"unknown model {arch!r}; choose among {sorted(MODELS)}" + did_you_mean(arch, MODELS))
        if len(set(archs)) != len(archs):
            raise ValueError("lists a model twice; name each once")
        return archs

    @field_validator("objectives")
    @classmethod
    def _accuracy_then_one_cost(cls, objectives: list[str]) -> list[str]:
        if objectives[:1] != ["accuracy"] or len(objectives) > 2 or "accuracy" in objectives[1:]:
            raise ValueError(f"must be [accuracy] or [accuracy, COST] with COST one of {', '.join(COSTS)}")
        return objectives

    refit: Literal["train", "train+val"] = Field(
        "train",
        description=(
            "What the final models (labels-only baseline and tuned student) learn from once the search has chosen on "
            "validation: the train split, or train + validation, more data for both; "
            "their runs then log no val/* metrics. The teacher always trains on train."
        ),
    )


class RuntimeConfig(Section):
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="Where to train: auto picks CUDA, then MPS, then CPU."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description=(
            "Arithmetic of the forward passes in training and validation: auto = bf16 autocast on CUDA GPUs that run "
            "it natively (Ampere and newer), float32 elsewhere; losses are always float32."
        ),
    )
    channels_last: Literal["auto"] | bool = Field(
        "auto",
        description=(
            "Channels-last (NHWC) layout of image models and batches, faster convolutions on GPUs: "
            "auto = on for images on CUDA."
        ),
    )
    compile: bool = Field(
        False,
        description=(
            "torch.compile the model for training: compiling takes tens of seconds (minutes on a CPU), "
            "so it pays off only on long GPU runs."
        ),
    )

    @field_validator("channels_last", mode="before")
    @classmethod
    def _auto_or_bool(cls, value: Any) -> Any:
        """One clear message instead of one per member of the union."""
        try:
            return "auto" if value == "auto" else TypeAdapter(bool).validate_python(value)
        except ValidationError:
            raise ValueError("choose auto, true or false") from None

    threads: Literal["auto"] | Annotated[int, Field(ge=1, le=4096)] = Field(
        "auto",
        description=(
            "torch CPU threads of each training process: auto = the host's cores shared among the kdflow processes "
            "on it (KDFLOW_PROCESSES_PER_HOST, tune.n_workers, else those running), one for models too small to gain "
            "from more."
        ),
    )

    @field_validator("threads", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        return auto_or_count(value, 4096, "threads")

    seed: int = Field(0, ge=0, description="Seed of model initialisation and batch order.")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else SQLite under mlruns/)."
    )
    experiment: str | None = Field(None, description="MLflow experiment name (default: kdflow-<name>).")
    store_dir: str = Field("mlruns", description="Folder of the local stores and caches.")


# Lifelong strategies: each one's options are a section retrain.<strategy>, derived from its file in kdcore/lifelong/.
STRATEGY_NAMES = sorted(STRATEGIES)
StrategyName = Literal[tuple(STRATEGY_NAMES)]

# retrain.* keys of earlier versions, each now an option of one or more strategies: old presets, --set lines and the
# params of lineages registered before (read back from MLflow) keep their meaning.
FORMER_RETRAIN_KEYS = {
    "buffer_size": ("derpp.buffer_size",),
    "alpha": ("derpp.logit_weight", "lwf.kd_weight"),
    "beta": ("derpp.label_weight",),
    "replay_batch_size": ("derpp.replay_batch_size",),
}


def former_retrain_keys_moved(retrain: Any) -> Any:
    """`{"alpha": 0.5}` -> `{"derpp": {"logit_weight": 0.5}, "lwf": {"kd_weight": 0.5}}`; a setting given under both
    names must agree."""
    if not isinstance(retrain, dict) or not FORMER_RETRAIN_KEYS.keys() & retrain.keys():
        return retrain
    out = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in retrain.items()}
    for former, targets in FORMER_RETRAIN_KEYS.items():
        if former not in out:
            continue
        value = out.pop(former)
        for target in targets:
            strategy, option = target.split(".")
            section = out.setdefault(strategy, {})
            if not isinstance(section, dict):
                continue  # not a section: validation names it
            if section.get(option, value) != value:
                raise ValueError(
                    f"retrain.{former} is the former name of retrain.{target}, and the two differ; "
                    f"set only retrain.{target}"
                )
            out[strategy] = {**section, option: value}
    return out


def former_key_renamed(assignment: str) -> list[str]:
    """`retrain.alpha=0.5` -> `retrain.derpp.logit_weight=0.5`, `retrain.lwf.kd_weight=0.5`: an override replaces the
    value a complete config already holds under the new name; any other assignment is unchanged."""
    key, sep, value = assignment.partition("=")
    section, _, former = key.strip().partition(".")
    if section != "retrain" or former not in FORMER_RETRAIN_KEYS:
        return [assignment]
    return [f"retrain.{target}{sep}{value}" for target in FORMER_RETRAIN_KEYS[former]]


def strategy_sections() -> dict[str, Any]:
    """`{strategy: (its section model, its field)}` for each strategy with options."""
    out = {}
    for name in STRATEGY_NAMES:
        strategy = STRATEGIES[name]
        if option_specs(strategy.Options):
            section = options_model(strategy, strategy.Options)
            out[name] = (section, Field(default_factory=section, description=about(strategy.Options)))
    return out


class RetrainSpine(Section):
    """How the pipeline's champion keeps learning as new data batches arrive (`kdflow retrain --pipeline NAME`)."""

    policy: Literal["continual", "refit"] = Field(
        "continual",
        description=(
            "continual: update the champion on the new batches with a lifelong strategy; "
            "refit: rerun the pipeline (teacher, soft targets, student) on the original data plus every batch."
        ),
    )
    strategy: StrategyName = Field(
        "derpp",
        description=(
            f"Lifelong-learning strategy of the continual policy: {', '.join(STRATEGY_NAMES)}; its options are "
            "retrain.<strategy>.*"
        ),
    )
    mode: Literal["teacher_student", "student_only"] = Field(
        "teacher_student",
        description="Update the teacher then distil the student from it, or update the student alone (cheaper).",
    )
    tolerance: float = Field(
        0.02,
        ge=-1,
        le=1,
        description=(
            "Accuracy a new version may lose and still replace the champion: on the original test split against the "
            "lineage's best, and averaged over every test part against the champion re-scored now."
        ),
    )
    n_trials: int = Field(
        0,
        ge=0,
        le=10_000,
        description="refit: Optuna trials of a new search on all the data (0: the champion's best hyper-parameters).",
    )

    former_keys: ClassVar[frozenset[str]] = frozenset(FORMER_RETRAIN_KEYS)  # still read, moved by the validator

    @model_validator(mode="before")
    @classmethod
    def _former_keys(cls, value: Any) -> Any:
        return former_retrain_keys_moved(value)


RetrainSection = create_model(
    "RetrainSection", __base__=RetrainSpine, __doc__=RetrainSpine.__doc__, **strategy_sections()
)


class RegisterConfig(Section):
    tolerance: float = Field(
        0.0,
        ge=0,
        le=1,
        description=(
            "Accuracy (0-1) a new version may lose and still become champion: it must reach the champion's accuracy "
            "minus this and the best any version reached on the same test data minus this, so losses cannot add up."
        ),
    )
    budget: str | None = Field(
        None,
        description=(
            "What the registered student may cost, e.g. params<=60000, size_mb<=1, flops<=2e6, latency_ms<=2 "
            "(batch 1, on the tuning device): trials over it are infeasible and the most accurate student within it "
            "is retrained and registered; empty: no budget."
        ),
    )

    @field_validator("budget")
    @classmethod
    def _budget_parses(cls, budget: str | None) -> str | None:
        if budget is not None:
            parse_budget(budget)
        return budget

    def limit(self) -> tuple[str, float] | None:
        """(cost, the most it may be), or None without a budget."""
        return None if self.budget is None else parse_budget(self.budget)


def parse_budget(budget: str) -> tuple[str, float]:
    """`params<=60000` -> ("params", 60000.0); anything else is refused in one sentence."""
    match = re.fullmatch(r"\s*([a-z_]+)\s*<=\s*([0-9.eE+]+)\s*", budget)
    cost, limit = (match.group(1), match.group(2)) if match else (None, None)
    if cost not in COSTS:
        raise ValueError(
            f"{budget!r} is no budget; write COST<=LIMIT with COST one of {', '.join(COSTS)}, e.g. params<=60000"
        )
    try:
        value = float(limit)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{budget!r}: the limit must be a positive number, e.g. {cost}<=60000")
    return cost, value


class EvaluateConfig(Section):
    timing: bool = Field(
        True,
        description=(
            "Measure each model's latency (one sample) and throughput (batch 256) on the run's device, side by side; "
            "false: sizes and accuracies only."
        ),
    )
    timing_seconds: float = Field(
        3.0, gt=0, le=600, description="Time budget of the latency and throughput calls, per model (seconds)."
    )


# `register` is the stage's name (register.tolerance); it hides ABCMeta.register, which no config uses.
warnings.filterwarnings("ignore", message='Field name "register" in ', category=UserWarning)


class PipelineConfig(Section):
    name: str = Field(
        "digits",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Pipeline (preset) name: names the experiment and the registered model.",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=lambda: TeacherConfig(arch="cnn_medium"))
    student: ModelConfig = Field(default_factory=lambda: ModelConfig(arch="mlp"))
    distill: DistillConfig = Field(default_factory=DistillConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    register: RegisterConfig = Field(default_factory=RegisterConfig)
    retrain: RetrainSection = Field(default_factory=RetrainSection)

    @model_validator(mode="after")
    def _models_read_the_data(self) -> PipelineConfig:
        from kdcore.models.registry import models_of

        kind = "text" if self.data.dataset in TEXT_DATASETS else "image"
        teacher_only = {"timm": "a timm model", "hf": "a Hugging Face model"}  # the served student needs neither
        if self.student.arch in teacher_only:
            raise ValueError(
                f"student.arch={self.student.arch}: {teacher_only[self.student.arch]} is a teacher only here (the "
                f"served student stays free of its library); choose one of {', '.join(models_of(kind))}"
            )
        for role in ("teacher", "student"):
            arch = getattr(self, role).arch
            fits = models_of(kind) + (models_of("hf_text") if kind == "text" else ())
            if arch not in fits:  # the form offers every model: its schema cannot know the preset's data
                article = "a" if kind == "text" else "an"
                raise ValueError(
                    f"{role}.arch={arch} does not fit data.dataset={self.data.dataset}; "
                    f"choose {article} {kind} model ({', '.join(fits)})"
                )
        return self

    @model_validator(mode="after")
    def _ranges_within_their_parameters_bounds(self) -> PipelineConfig:
        """A search range may not leave its parameter's own limits (temperature > 0, alpha in [0, 1], ...)."""
        for path, r, model, name in searched_ranges(self.tune.space):
            for end in ("low", "high"):
                try:
                    TypeAdapter(Annotated[float, *model.model_fields[name].metadata]).validate_python(getattr(r, end))
                except ValidationError as e:
                    target = f"student.train.{name}" if model is TrainConfig else f"distill.{path}"
                    limit = e.errors()[0]["msg"].removeprefix("Input should be ")
                    raise ValueError(
                        f"tune.space.{path}.{end}={getattr(r, end):g} is outside {target}'s own limits "
                        f"(it must be {limit}); choose a range inside them"
                    ) from None
        return self

    @model_validator(mode="after")
    def _searched_students_fit(self) -> PipelineConfig:
        """Searched student models read the data's modality, and each searched size fits at least one of them."""
        import inspect

        from kdcore.models import MODELS
        from kdcore.models.registry import ABOUT, depth_rule, depths_within

        modality = "text" if self.data.dataset in TEXT_DATASETS else "image"
        for arch in self.tune.student_archs:
            if ABOUT[arch].modality != modality:
                raise ValueError(
                    f"tune.student_archs lists {arch}, a {ABOUT[arch].modality} model, but data.dataset="
                    f"{self.data.dataset} is {modality}; list {modality} models only"
                )
        archs = self.tune.student_archs or [self.student.arch]
        for size in ("width", "depth"):
            if getattr(self.tune.space, size) is not None and not any(
                size in inspect.signature(MODELS[a]).parameters for a in archs
            ):
                raise ValueError(
                    f"tune.space.{size} is set but no searched student ({', '.join(archs)}) has a {size}; "
                    "leave it empty"
                )
        if (r := self.tune.space.depth) is not None:  # a ResNet's depth is 6n+2: the range must hold one
            for arch in (a for a in archs if ABOUT[a].depths is not None):
                if not depths_within(arch, r.low, r.high):
                    raise ValueError(
                        f"tune.space.depth {r.low}-{r.high} holds no depth {arch} can have ({depth_rule(arch)}); "
                        "widen the range to hold one or "
                        + (f"drop {arch} from tune.student_archs" if self.tune.student_archs else "leave it empty")
                    )
                if r.log:
                    raise ValueError(
                        f"tune.space.depth.log cannot be used with {arch}, whose depths step by "
                        f"{ABOUT[arch].depths.step} ({depth_rule(arch)}); drop log"
                    )
        return self

    @model_validator(mode="after")
    def _budget_needs_a_search(self) -> PipelineConfig:
        if self.register.budget is not None and self.tune.n_trials == 0:
            raise ValueError(
                f"register.budget={self.register.budget} needs a search to choose within it; set tune.n_trials > 0"
            )
        return self

    def flat(self) -> dict[str, Any]:
        """`{"teacher.arch": "cnn_medium", "distill.temperature": 4.0, ...}`."""
        return flatten(self.model_dump())


def searched_ranges(space: SearchSpace) -> list[tuple[str, Range, type[BaseModel], str]]:
    """Each search range with the config field whose limits it must respect: (path, range, model, field)."""
    out = [(n, getattr(space, n), DistillConfig, n) for n in ("temperature", "alpha")]
    out += [(n, getattr(space, n), TrainConfig, n) for n in ("lr", "weight_decay")]
    for method in ("dkd", "dist", "fitnets", "at", "sp", "rkd", "pkt", "crd"):
        section, model = getattr(space, method), DistillConfig.model_fields[method].annotation
        out += [(f"{method}.{n}", getattr(section, n), model, n) for n in type(section).model_fields]
    return out


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
    """A preset by name (pipelines/config/presets/NAME.yaml) or by path to a YAML file."""
    path = Path(preset) if preset.endswith((".yaml", ".yml")) or "/" in preset else PRESETS_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"preset {preset!r} not found; use one of {preset_names()} or a path to a YAML file"
            + did_you_mean(preset, preset_names())
        )
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"preset {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"preset {path} must be a mapping of config sections")
    # Without `name:` a file would be filed under the default (digits): its experiment and registered model are its own.
    tree.setdefault("name", path.stem)
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


def did_you_mean(word: str, choices) -> str:
    """` (did you mean 'n_trials'?)` for a near miss among `choices`, else nothing."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def section_keys(loc: tuple) -> list[str]:
    """The keys the config allows beside the last part of `loc` (for a suggestion)."""
    model: Any = PipelineConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        model = field.annotation if field is not None else None
    return list(getattr(model, "model_fields", {}))


def validate(tree: dict[str, Any]) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if not where:  # a check across sections: its message names the fields
            raise ConfigError(f"invalid config: {first['msg'].removeprefix('Value error, ')}") from None
        if first["type"] == "extra_forbidden" and tuple(first["loc"]) == ("student", "pretrained"):
            reason = "only the teacher starts from pretrained weights (teacher.pretrained); the student is trained here"
        elif first["type"] == "extra_forbidden":
            reason = "unknown key" + did_you_mean(first["loc"][-1], section_keys(first["loc"]))
        elif first["type"] == "literal_error":
            reason = first["msg"] + did_you_mean(
                first["input"], first["ctx"]["expected"].replace("'", "").replace(" or ", ", ").split(", ")
            )
        else:
            reason = first["msg"]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"invalid config: {where}: {reason}{more}") from None


def load_config(preset: str = "digits", overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    tree = read_preset(preset)
    if overrides:  # onto the complete preset, so one field of a default section (tune.space.alpha.high) can change
        tree = validate(tree).model_dump()
    for assignment in overrides:
        for renamed in former_key_renamed(assignment):
            apply_override(tree, renamed)
    return validate(tree)
