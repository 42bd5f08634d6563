"""A KD method that reads features is checked against the teacher and student before any training.

Attention transfer needs convolutional feature maps; an MLP student has none. The method finds that out
when it attaches to the models, which used to happen in the tune stage, after the teacher and the baseline
had trained. Attaching once to freshly built models on two samples costs a fraction of a second.
"""

from __future__ import annotations

import torch

from kdcore.data import DataBundle
from kdcore.models import build_model
from pipelines.cache.checkpoint import load_model
from pipelines.config.methods import build_method, needs_teacher_model, searched_methods
from pipelines.config.schema import ConfigError, ModelConfig, PipelineConfig
from pipelines.tuning.study import searched_students, searches_size, smallest_student


def check_methods_fit(cfg: PipelineConfig, bundle: DataBundle) -> None:
    """ConfigError, in one line, if a searched feature method cannot attach to this teacher and a searched student
    (each of tune.student_archs at its smallest searched size, when the size is searched)."""
    methods = [m for m in searched_methods(cfg) if needs_teacher_model(m)]
    if not methods:
        return
    torch.manual_seed(cfg.runtime.seed)
    teacher = load_model(cfg.teacher.checkpoint) if cfg.teacher.checkpoint else fresh_model(cfg.teacher, bundle)
    sample = bundle.view.normalise(bundle.train.x[:2])
    archs = searched_students(cfg) if searches_size(cfg) else [cfg.student.arch]
    for arch in archs:
        student = fresh_model(smallest_student(cfg, arch) if searches_size(cfg) else cfg.student, bundle)
        for method in methods:
            distiller = build_method(cfg, method)
            try:
                distiller.attach(student, teacher.eval(), bundle.train, sample=sample)
            except ValueError as e:
                field = "distill.method" if method == cfg.distill.method else "tune.methods"
                if not (searches_size(cfg) and cfg.tune.student_archs):
                    raise ConfigError(
                        f"{field}={method} cannot distil teacher.arch={cfg.teacher.arch} into student.arch="
                        f"{cfg.student.arch}: {e}"
                    ) from None
                raise ConfigError(
                    f"{field}={method} cannot distil teacher.arch={cfg.teacher.arch} into {arch}, one of "
                    f"tune.student_archs: {e} (or drop {arch} from tune.student_archs)"
                ) from None
            finally:
                distiller.detach()


def fresh_model(spec: ModelConfig, bundle: DataBundle) -> torch.nn.Module:
    return build_model(spec.arch, bundle.input_shape, bundle.num_classes, **spec.options(), **bundle.model_options())
