"""The pipeline's stages, one per file, each a plain function: typed config in, typed result out."""

from pipelines.stages.distill_final import distill_final
from pipelines.stages.evaluate import evaluate_models
from pipelines.stages.prepare_data import prepare_data
from pipelines.stages.register import register_student
from pipelines.stages.teacher_logits import compute_teacher_logits
from pipelines.stages.train_baseline import train_baseline
from pipelines.stages.train_teacher import train_teacher
from pipelines.stages.tune_student import tune_student

__all__ = [
    "compute_teacher_logits",
    "distill_final",
    "evaluate_models",
    "prepare_data",
    "register_student",
    "train_baseline",
    "train_teacher",
    "tune_student",
]
