"""scikit-learn's bundled 8x8 handwritten digits: real data that needs no download."""

from __future__ import annotations

import numpy as np

from kdcore.data.assemble import bundle_from_pool
from kdcore.data.bundle import DataBundle
from kdcore.data.registry import register_dataset
from kdcore.data.request import DataRequest


@register_dataset("digits")
def load_digits(req: DataRequest) -> DataBundle:
    """scikit-learn's 8x8 handwritten digits: 1,797 images, 10 classes, integer pixel values 0..16."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = d.images.astype(np.uint8)[:, None, :, :]  # (N, 1, 8, 8)
    return bundle_from_pool("digits", x, d.target, [str(c) for c in range(10)], req, scale=1 / 16)
