"""KD methods, one file each, registered by name (`build_distiller("dkd", ...)`): a new file here is a new method."""

from kdcore.distill.at import AT  # noqa: E402
from kdcore.distill.base import Batch, Distiller, LabelsOnly
from kdcore.distill.crd import CRD  # noqa: E402
from kdcore.distill.dist import DIST  # noqa: E402
from kdcore.distill.dkd import DKD  # noqa: E402
from kdcore.distill.features import FeatureDistiller, Features
from kdcore.distill.fitnets import FitNets  # noqa: E402
from kdcore.distill.kd import KD, kd_loss  # noqa: E402
from kdcore.distill.layers import LayerChoice
from kdcore.distill.pkt import PKT  # noqa: E402
from kdcore.distill.registry import DISTILLERS, build_distiller, register_distiller
from kdcore.distill.rkd import RKD  # noqa: E402
from kdcore.distill.sp import SP  # noqa: E402
from kdcore.plugins import import_modules

import_modules(__name__, __path__)  # each method file registers itself, those not named above too

__all__ = [
    "AT",
    "CRD",
    "DIST",
    "DISTILLERS",
    "DKD",
    "KD",
    "PKT",
    "RKD",
    "SP",
    "Batch",
    "Distiller",
    "FeatureDistiller",
    "Features",
    "FitNets",
    "LabelsOnly",
    "LayerChoice",
    "build_distiller",
    "kd_loss",
    "register_distiller",
]
