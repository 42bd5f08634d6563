"""Raw images (PNG/JPEG bytes, base64 text, uint8 arrays) -> the stored pixels a model was trained on.

A served model receives what a user has: an encoded file or 8-bit pixels of any size and channel count.
`ImagePreprocessing` replays the training-time preparation on it: PIL's channel conversion (RGBA -> RGB,
RGB <-> grey, as `imagefolder.decode` does), resize so the shorter side fits and centre crop (identity at
the trained size), 8-bit values -> the dataset's stored levels (digits store 0..16), then `InputView`'s
scale and train-split mean/std. It travels with every logged image model as JSON.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

import numpy as np
import torch

from kdcore.data.view import InputView

CHANNEL_COUNTS = (1, 3, 4)  # grey, RGB, RGBA: the layouts a (H, W, C) or (C, H, W) array is read as


class ImageInputError(ValueError):
    """An input that is not an image this model can take; the message names it and the fix."""


@dataclass(frozen=True)
class ImagePreprocessing:
    channels: int  # what the model takes: 1 (grey) or 3 (RGB)
    size: tuple[int, int]  # (H, W) the model was trained at
    view: InputView
    levels: int = 255  # the stored pixel maximum: an 8-bit pixel p is stored as round(p * levels / 255)

    @classmethod
    def for_data(cls, input_shape, view: InputView) -> ImagePreprocessing:
        levels = round(1 / view.scale) if view.scale < 1 else 255
        return cls(
            channels=int(input_shape[0]), size=(int(input_shape[1]), int(input_shape[2])), view=view, levels=levels
        )

    def state_dict(self) -> dict:
        return {
            "channels": self.channels,
            "size": list(self.size),
            "view": self.view.state_dict(),
            "levels": self.levels,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> ImagePreprocessing:
        view = InputView.from_state_dict(state["view"])
        return cls(channels=state["channels"], size=tuple(state["size"]), view=view, levels=state["levels"])

    def stored(self, image) -> np.ndarray:
        """One image (bytes, base64 str, or an 8-bit array (H, W), (H, W, C), (C, H, W)) -> (C, H, W) uint8."""
        from PIL import Image, ImageOps

        img = as_pil(image)
        try:
            img = img.convert("L" if self.channels == 1 else "RGB")
        except (ValueError, OSError) as e:
            raise ImageInputError(
                f"an image of mode {img.mode} cannot be converted to the model's {self.channels} channel(s) ({e}); "
                "convert it to RGB or greyscale first"
            ) from None
        h, w = self.size
        if img.size != (w, h):  # imagefolder.decode's resize + centre crop (the identity at the trained size)
            img = ImageOps.fit(img, (w, h), Image.Resampling.BILINEAR)
        pixels = np.asarray(img, dtype=np.uint8)
        if self.levels != 255:
            pixels = np.rint(pixels.astype(np.float64) * self.levels / 255).astype(np.uint8)
        return pixels[None] if self.channels == 1 else pixels.transpose(2, 0, 1)

    def model_inputs(self, images) -> torch.Tensor:
        """A batch of raw images -> the float (N, C, H, W) tensor the model was trained on."""
        return self.view.normalise(torch.from_numpy(np.stack([self.stored(im) for im in images])))


def as_pil(image):
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, str):
        try:
            image = base64.b64decode(image, validate=False)
        except (binascii.Error, ValueError):
            raise ImageInputError("an image string is not base64; send PNG/JPEG bytes base64-encoded") from None
    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            img = Image.open(io.BytesIO(bytes(image)))
            img.load()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise ImageInputError(f"an image cannot be decoded ({type(e).__name__}); send a PNG or JPEG file") from None
        return img
    return Image.fromarray(eight_bit_hwc(np.asarray(image)))


def eight_bit_hwc(a: np.ndarray) -> np.ndarray:
    """An 8-bit pixel array as PIL reads it: (H, W) or (H, W, C) with C in 1, 3, 4."""
    if a.dtype.kind not in "iub" or (a.size and (a.min() < 0 or a.max() > 255)):
        raise ImageInputError(
            f"an image array has {a.dtype} values outside 0..255; send 8-bit pixels (uint8), as a decoded PNG holds"
        )
    a = a.astype(np.uint8)
    if a.ndim == 3 and a.shape[0] in CHANNEL_COUNTS and a.shape[-1] not in CHANNEL_COUNTS:
        a = a.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4)):
        return np.ascontiguousarray(a)
    raise ImageInputError(
        f"an image array of shape {a.shape} is not (H, W), (H, W, C) or (C, H, W) with 1, 3 or 4 channels; "
        "send one image per row"
    )


def image_cells(model_input) -> list:
    """The images of a pyfunc input: a DataFrame (or dict) column `image`, or an array batch (N, ...)."""
    if isinstance(model_input, np.ndarray):
        if model_input.ndim not in (3, 4):
            raise ImageInputError(
                f"an image batch of shape {model_input.shape} is not (N, H, W), (N, C, H, W) or (N, H, W, C)"
            )
        return list(model_input)
    try:
        column = model_input["image"]
    except (KeyError, TypeError, IndexError):
        raise ImageInputError(
            'the input has no column "image"; send {"dataframe_records": [{"image": "<base64 PNG>"}]}'
        ) from None
    cells = []
    for cell in column:
        # {"inputs": {"image": ["<base64>", ...]}}: MLflow hands the whole list over as one cell
        encoded = isinstance(cell, (list, tuple, np.ndarray)) and all(
            isinstance(item, (str, bytes)) for item in np.asarray(cell, dtype=object).ravel()
        )
        cells.extend(np.asarray(cell, dtype=object).ravel().tolist() if encoded else [cell])
    return cells
