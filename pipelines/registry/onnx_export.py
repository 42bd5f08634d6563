"""A registered student for runtimes other than Python: an ONNX file (dynamic batch dimension), its preprocessing
written beside it, and a parity check against PyTorch on a sample of the test split.

The ONNX graph starts where the model starts: normalised float images (N, C, H, W), or token ids (N, max_len) for
text models (the tokenizer is Python; its vocabulary and rules travel in `preprocessing.json`). A model that cannot
be exported (an op ONNX lacks) is still registered; its version's `kdflow.onnx.error` tag says why.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import torch
import torch.nn as nn

from kdcore.data import DataBundle
from kdcore.data.image_input import ImagePreprocessing
from kdcore.text.tokenizer import PAD_ID, UNK_ID
from pipelines.registry.registration import class_names

log = logging.getLogger("kdflow")

ONNX_DIR = "onnx"  # in the registered version's run
ONNX_FILE = "model.onnx"
PREPROCESSING_FILE = "preprocessing.json"
PARITY_GOAL = 1e-4  # largest |logit difference| ONNX Runtime vs PyTorch, fp32
PARITY_SAMPLES = 256
OPSET = 18

ONNX_TAG = "kdflow.onnx"  # artifact path of the file in the version's run
ERROR_TAG = "kdflow.onnx.error"


class OnnxExportError(RuntimeError):
    """The model cannot be written as ONNX; the message names the exporters' reasons."""


@dataclass(frozen=True)
class OnnxExport:
    exporter: str | None  # "torchscript" or "dynamo"; None: not exported
    error: str | None = None
    max_abs_diff: float | None = None
    class_agreement: float | None = None
    samples: int = 0

    @property
    def parity_ok(self) -> bool:
        return self.error is None and self.max_abs_diff <= PARITY_GOAL and self.class_agreement == 1.0

    def tags(self) -> dict[str, str]:
        """For the registered version."""
        if self.error is not None:
            return {ERROR_TAG: self.error}
        return {
            ONNX_TAG: f"{ONNX_DIR}/{ONNX_FILE}",
            "kdflow.onnx.exporter": self.exporter,
            "kdflow.onnx.max_abs_diff": f"{self.max_abs_diff:.3g}",
            "kdflow.onnx.class_agreement": f"{self.class_agreement:.6f}",
            "kdflow.onnx.parity": (
                f"{'pass' if self.parity_ok else 'fail'}: max |logit diff| {self.max_abs_diff:.3g} "
                f"(goal <= {PARITY_GOAL:g}), classes agree on {self.class_agreement:.2%} of {self.samples} test samples"
            ),
        }


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> str:
    """Write `model` (on the CPU, eval mode) to `path` with a dynamic batch dimension; return the exporter used.

    The TorchScript exporter first (a second; it handles every kdflow image model), then the dynamo exporter
    (torch.export + onnxscript), which reads graphs the tracer cannot. Both failing raises OnnxExportError.
    """
    model = model.cpu().eval()
    reasons = []
    for exporter in ("torchscript", "dynamo"):
        try:
            # the two exporters say "the batch dimension is free" each in its own words
            batch = (
                {"dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}}, "dynamo": False}
                if exporter == "torchscript"
                else {"dynamic_shapes": ({0: torch.export.Dim("batch", min=1)},), "dynamo": True, "verbose": False}
            )
            with quiet_exporter():
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    input_names=["input"],
                    output_names=["logits"],
                    opset_version=OPSET,
                    **batch,
                )
            return exporter
        except Exception as e:  # noqa: BLE001  (exporters raise many kinds; each one's reason is kept)
            reasons.append(f"{exporter}: {first_line(e)}")
            path.unlink(missing_ok=True)
    raise OnnxExportError("; ".join(reasons))


@contextlib.contextmanager
def quiet_exporter():
    """The dynamo exporter prints its progress, and a whole graph on failure: keep the reason, not the wall."""
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_log.setLevel(level)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300] if text else ''}".rstrip(": ")


def parity(path: Path, model: nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """(largest |logit difference|, share of equal predicted classes): ONNX Runtime (CPU) against PyTorch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0]
    with torch.no_grad():
        want = model.cpu().eval()(inputs).numpy()
    return float(np.abs(got - want).max()), float((got.argmax(1) == want.argmax(1)).mean())


def model_inputs(bundle: DataBundle, n: int = PARITY_SAMPLES) -> torch.Tensor:
    """The first `n` test samples as the ONNX graph takes them: normalised float images, or padded token ids."""
    return bundle.view.normalise(bundle.test.x[:n])


def export_example(bundle: DataBundle, inputs: torch.Tensor) -> torch.Tensor:
    """What the graph is traced on: two samples; for text, full-width rows without padding, so no
    data-dependent trimming of padding columns is frozen into the graph (padding is masked, never computed on)."""
    if bundle.tokenizer is not None:
        return torch.full((2, inputs.shape[1]), UNK_ID, dtype=torch.long)
    return inputs[:2]


def preprocessing_notes(bundle: DataBundle) -> dict:
    """What a caller must do to raw inputs before the graph, and what its outputs mean."""
    classes = class_names(bundle)
    if bundle.tokenizer is not None:
        t = bundle.tokenizer
        return {
            "input": f"int64 token ids (batch, {bundle.input_shape[0]}), right-padded with {PAD_ID}",
            "steps": [
                "lower-case the text" if t["lowercase"] else "keep the text's case",
                "drop HTML tags (<br />), then split into words with the regex "
                + r"[^\W_]+(?:'[^\W_]+)*|[!?]  (kdcore.text.tokenizer.words)",
                f"map each word to its index in `tokens` ({UNK_ID} = <unk> for words not in it), keep the first "
                f"{t['max_len']}",
                f"pad with {PAD_ID} to {bundle.input_shape[0]} ids",
            ],
            "tokens": list(t["tokens"]),
            "output": "float32 logits (batch, classes); softmax gives the probabilities",
            "classes": classes,
        }
    pre = ImagePreprocessing.for_data(bundle.input_shape, bundle.view)
    channels, (h, w) = pre.channels, pre.size
    return {
        "input": f"float32 images (batch, {channels}, {h}, {w})",
        "steps": [
            f"convert to {'greyscale (PIL mode L)' if channels == 1 else 'RGB'}",
            f"resize so the shorter side is {min(h, w)} (bilinear), centre-crop to {h}x{w}",
            f"8-bit pixels p -> stored levels round(p * {pre.levels} / 255)"
            if pre.levels != 255
            else "keep the 8-bit pixels",
            f"x = (stored * {bundle.view.scale:.8g} - mean) / std, per channel",
        ],
        "mean": list(bundle.view.mean),
        "std": list(bundle.view.std),
        "scale": bundle.view.scale,
        "output": "float32 logits (batch, classes); softmax gives the probabilities",
        "classes": classes,
    }


def write_export(model: nn.Module, bundle: DataBundle, folder: Path) -> OnnxExport:
    """`folder/model.onnx` and `folder/preprocessing.json`, checked against PyTorch; never raises for the model."""
    inputs = model_inputs(bundle)
    path = folder / ONNX_FILE
    try:
        exporter = export_onnx(model, export_example(bundle, inputs), path)
        diff, agreement = parity(path, model, inputs)
    except Exception as e:  # noqa: BLE001  (the version is registered either way; the tag says why)
        reason = str(e) if isinstance(e, OnnxExportError) else first_line(e)
        log.warning("register: no ONNX export: %s", reason)
        return OnnxExport(exporter=None, error=reason)
    (folder / PREPROCESSING_FILE).write_text(json.dumps(preprocessing_notes(bundle), indent=1))
    return OnnxExport(exporter=exporter, max_abs_diff=diff, class_agreement=agreement, samples=len(inputs))


def log_export(model: nn.Module, bundle: DataBundle, run_id: str) -> OnnxExport:
    """The export as artifacts of `run_id` (under onnx/): the run the registered version comes from."""
    with tempfile.TemporaryDirectory() as tmp:
        result = write_export(model, bundle, Path(tmp))
        if result.error is None:
            mlflow.MlflowClient().log_artifacts(run_id, tmp, ONNX_DIR)
    if result.error is None:
        log.info("register: ONNX export (%s), %s", result.exporter, result.tags()["kdflow.onnx.parity"])
    return result
