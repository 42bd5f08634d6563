"""teacher.arch=hf: a Hugging Face sequence classifier, fine-tuned on the raw texts with its own tokenizer.

The student keeps kdflow's tokenizer: the teacher's outputs are cached per example, in the split's order, so
the two need not share one. Every teacher stage reads `teacher_view(cfg, bundle)`: the same splits and labels,
with x holding the texts encoded by the teacher's tokenizer. transformers (the optional `.[hf]` extra) is
imported only here and in kdcore/models/text/hf.py, only when such a teacher is configured.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn

from kdcore.data import DataBundle, DataError, Split
from kdcore.data.view import InputView
from kdcore.models.text.hf import HFClassifier
from pipelines.config.schema import ConfigError, PipelineConfig, TeacherConfig

log = logging.getLogger("kdflow")
# A vocabulary file of some tokenizer family: without one, transformers builds an empty tokenizer, silently.
VOCABULARY_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


def uses_hf(cfg: PipelineConfig) -> bool:
    return cfg.teacher.arch == "hf"


def transformers_module():
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "teacher.arch=hf needs the transformers and tokenizers packages; install them with "
            "pip install -e '.[hf]' (or pip install transformers tokenizers)"
        ) from None
    transformers.logging.set_verbosity_error()  # its "newly initialized classifier" notice is what we intend
    return transformers


def hf_home() -> str:
    """Where the Hugging Face hub keeps its files, as huggingface_hub resolves it (without importing it)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return os.environ.get("HF_HOME") or str(Path(cache) / "huggingface")


@lru_cache(maxsize=4)
def hf_tokenizer(source: str, download: bool):
    """The teacher's own tokenizer; ConfigError in one sentence when it is not at hand."""
    transformers = transformers_module()
    folder = Path(source).expanduser()
    if folder.exists():
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"teacher.pretrained={source} holds no config.json; give a folder written by "
                "model.save_pretrained(FOLDER) and tokenizer.save_pretrained(FOLDER)"
            )
        if not any((folder / f).is_file() for f in WEIGHT_FILES):
            raise ConfigError(
                f"teacher.pretrained={source} holds no weights ({' or '.join(WEIGHT_FILES[:2])}); "
                "save the model into it with model.save_pretrained(FOLDER)"
            )
        if not any((folder / f).is_file() for f in VOCABULARY_FILES):
            raise ConfigError(
                f"teacher.pretrained={source} holds no tokenizer (none of {', '.join(VOCABULARY_FILES[:3])}); save "
                "the model's tokenizer into the folder with tokenizer.save_pretrained(FOLDER)"
            )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(folder) if folder.exists() else source, local_files_only=not download
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        if folder.exists():
            raise ConfigError(
                f"teacher.pretrained={source} holds no usable tokenizer ({type(e).__name__}); save the model's "
                "tokenizer into the folder with tokenizer.save_pretrained(FOLDER)"
            ) from None
        raise missing(source, download) from None
    if tokenizer is None or isinstance(tokenizer, bool):
        raise ConfigError(
            f"teacher.pretrained={source} holds no tokenizer; save the model's tokenizer into the folder with "
            "tokenizer.save_pretrained(FOLDER)"
        )
    if tokenizer.pad_token_id is None:  # GPT-style tokenizers: pad with end-of-text, masked out anyway
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def missing(source: str, download: bool) -> ConfigError:
    how = "downloads are off (data.download=false)" if not download else "it could not be downloaded"
    return ConfigError(
        f"teacher.pretrained={source} is not in the Hugging Face cache ({hf_home()}) and {how}; run "
        f"`hf download {source}` where the network allows (HF_HOME names the cache), or give a local folder "
        "written by save_pretrained"
    )


def pretrained_classifier(teacher: TeacherConfig, num_classes: int, download: bool) -> tuple[HFClassifier, dict]:
    """The pretrained model with a new head for `num_classes`, and the build options its checkpoint records."""
    transformers = transformers_module()
    source = teacher.pretrained
    tokenizer = hf_tokenizer(source, download)
    local = Path(source).expanduser()
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(local) if local.exists() else source,
            num_labels=num_classes,
            ignore_mismatched_sizes=True,  # the head is new, for the data's classes
            local_files_only=not download,
        )
    except (OSError, ValueError) as e:
        if local.exists():
            raise ConfigError(
                f"teacher.pretrained={source} cannot be read as a sequence classifier ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:160]}); give a folder written by model.save_pretrained"
            ) from None
        raise missing(source, download) from None
    model.config.pad_token_id = tokenizer.pad_token_id  # GPT-style models find the last token by it
    options = {"hf_config": model.config.to_json_string(), "pad_id": int(tokenizer.pad_token_id)}
    return HFClassifier(model, int(tokenizer.pad_token_id)), options


def check_hf_teacher(cfg: PipelineConfig) -> str:
    """Before any work: transformers installed, tokenizer and weights at hand, a logits-only KD method."""
    from pipelines.config.methods import needs_teacher_model, searched_methods

    feature = [m for m in searched_methods(cfg) if needs_teacher_model(m)]
    if feature:
        raise ConfigError(
            f"distill.method/tune.methods {', '.join(feature)} read the teacher's features, which a teacher.arch=hf "
            "teacher does not expose; choose kd, dkd or dist"
        )
    model, _ = pretrained_classifier(cfg.teacher, 2, cfg.data.download)
    return f"teacher: hf {type(model.model).__name__} from {cfg.teacher.pretrained}, with its own tokenizer"


def max_tokens(tokenizer, model_config_max: int | None) -> int:
    limits = [n for n in (tokenizer.model_max_length, model_config_max) if n and n < 1_000_000]
    return min(limits) if limits else 512


def hf_config(source: str, download: bool):
    transformers = transformers_module()
    local = Path(source).expanduser()
    return transformers.AutoConfig.from_pretrained(
        str(local) if local.exists() else source, local_files_only=not download
    )


def hf_parameters(source: str, num_classes: int) -> int:
    """The classifier's parameters, counted without allocating its weights (the files were checked already)."""
    transformers = transformers_module()
    config = hf_config(source, download=False)
    config.num_labels = num_classes
    with torch.device("meta"):
        model = transformers.AutoModelForSequenceClassification.from_config(config)
    return sum(p.numel() for p in model.parameters())


def position_limit(source: str, download: bool) -> int | None:
    """The longest input the model's position embeddings allow (None: unbounded or unknown)."""
    return getattr(hf_config(source, download), "max_position_embeddings", None)


def teacher_view(cfg: PipelineConfig, bundle: DataBundle) -> DataBundle:
    """What the teacher reads: `bundle` itself, or for teacher.arch=hf the raw texts in its own tokenizer's ids."""
    if not uses_hf(cfg):
        return bundle
    tokenizer = hf_tokenizer(cfg.teacher.pretrained, cfg.data.download)
    splits = bundle.splits()
    if any(s.texts is None for s in splits.values()):
        raise DataError(
            "teacher.arch=hf reads the raw texts, and these prepared splits carry none; "
            f"use a text dataset (data.dataset={cfg.data.dataset} has no texts)"
        )
    limit = max_tokens(tokenizer, position_limit(cfg.teacher.pretrained, cfg.data.download))
    encoded = {
        name: tokenizer(list(s.texts), truncation=True, max_length=limit, padding=False)["input_ids"]
        for name, s in splits.items()
    }
    width = max(len(row) for rows in encoded.values() for row in rows)
    pad = tokenizer.pad_token_id
    views = {}
    for name, rows in encoded.items():
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        views[name] = Split(ids, splits[name].y, splits[name].texts)
    return DataBundle(
        train=views["train"],
        val=views["val"],
        test=views["test"],
        num_classes=bundle.num_classes,
        input_shape=(width,),
        name=bundle.name,
        classes=list(bundle.classes),
        view=InputView(),  # ids stay ids
    )


def hf_teacher(teacher: TeacherConfig, bundle: DataBundle, download: bool) -> tuple[nn.Module, dict]:
    model, options = pretrained_classifier(teacher, bundle.num_classes, download)
    log.info(
        "teacher: hf %s from %s, new head for %d classes",
        type(model.model).__name__,
        teacher.pretrained,
        bundle.num_classes,
    )
    return model, options
