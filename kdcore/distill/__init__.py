from kdcore.distill.base import Batch, Distiller, LabelsOnly
from kdcore.distill.kd import KD, kd_loss

__all__ = ["Batch", "Distiller", "KD", "LabelsOnly", "kd_loss"]
