"""ONNX exports without a pipeline run, on random data: a CIFAR-size ResNet student (also on CUDA, where the standing
GPU check runs `tests/test_onnx*.py -k cuda`), a text student on token ids, and a model ONNX cannot take, which is
still registered with the reason on its version."""

from __future__ import annotations

import json

import mlflow
import pytest
import torch

from kdcore.data import DataBundle, Split
from kdcore.models import build_model
from pipelines.cache.checkpoint import save_atomic, save_model
from pipelines.config.schema import PipelineConfig
from pipelines.registry.onnx_export import ERROR_TAG, PARITY_GOAL, export_onnx, parity, write_export
from pipelines.results import Evaluation, PreparedData, TrainedModel, TuneResult
from pipelines.stages import register_student


def test_a_cifar_size_resnet_student_exports_with_parity(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet8", (3, 32, 32), 10).eval()
    x = torch.randn(16, 3, 32, 32)
    assert export_onnx(model, x[:2], tmp_path / "resnet8.onnx") in ("torchscript", "dynamo")
    diff, agreement = parity(tmp_path / "resnet8.onnx", model, x)  # a batch size other than the traced one
    assert diff <= PARITY_GOAL and agreement == 1.0


class Echo(mlflow.pyfunc.PythonModel):
    """A stand-in served model: the registration under test reads the checkpoint, not this."""

    def predict(self, model_input: list[str]) -> list[str]:
        return model_input


def text_bundle(n: int = 24, length: int = 12) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    tokens = ["<pad>", "<unk>", *(f"w{i}" for i in range(30))]
    split = Split(torch.randint(2, len(tokens), (n, length), generator=g), torch.arange(n) % 2)
    return DataBundle(
        split, split, split, 2, (length,), "text_csv", ["neg", "pos"], {"tokens": tokens, "max_len": 12, "lowercase": 1}
    )


def test_a_text_student_exports_on_token_ids_with_its_vocabulary_beside_it(tmp_path):
    bundle = text_bundle()
    model = build_model("textcnn", bundle.input_shape, 2, vocab_size=32).eval()
    export = write_export(model, bundle, tmp_path)
    assert export.error is None and export.parity_ok, export
    notes = json.loads((tmp_path / "preprocessing.json").read_text())
    assert notes["tokens"][2] == "w0" and "token ids" in notes["input"] and notes["classes"] == ["neg", "pos"]


def test_a_model_onnx_cannot_take_is_still_registered_and_its_version_says_why(tmp_path, monkeypatch):
    """fastText's EmbeddingBag with a padding index has no ONNX form in either exporter: a real such model."""
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("evidence")
    bundle = text_bundle()
    path = save_atomic(bundle.state_dict(), tmp_path / "text.pt")
    data = PreparedData(path=str(path), digest=bundle.digest, num_classes=2, input_shape=[12], sizes={"test": 24})
    roles = {}
    for role in ("student", "baseline"):
        model = build_model("fasttext", (12,), 2, vocab_size=32)
        checkpoint = save_model(model, "fasttext", (12,), 2, {"vocab_size": 32}, tmp_path / f"{role}.pt")
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=[])
        roles[role] = TrainedModel(
            role=role,
            arch="fasttext",
            checkpoint=str(checkpoint),
            run_id=run.info.run_id,
            model_uri=info.model_uri,
            parameters=100,
            val_acc=0.5,
            seconds=1,
        )
    tuned = TuneResult(study_name="s", storage="-", best_params={}, best_value=0.9, complete=1, pruned=0, seconds=1)
    ev = Evaluation(run_id="e", test_acc={"student": 0.6, "baseline": 0.5}, parameters={}, eval_digest="a" * 16)
    cfg = PipelineConfig(
        name="text", data={"dataset": "text_csv"}, teacher={"arch": "bilstm"}, student={"arch": "fasttext"}
    )
    reg = register_student(cfg, data, roles["student"], roles["baseline"], tuned, ev)
    version = mlflow.MlflowClient().get_model_version("kdflow-text-student", reg.version)
    assert reg.champion and "embedding_bag" in version.tags[ERROR_TAG] and "kdflow.onnx" not in version.tags
    assert "**ONNX:** not exported: " in version.description
    mlflow.set_tracking_uri(None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_onnx_parity_of_a_resnet_student_run_on_cuda(tmp_path):
    """The file exported from the weights a GPU run trained answers as PyTorch does on the GPU (fp32, no TF32)."""
    torch.manual_seed(0)
    model = build_model("resnet8", (3, 32, 32), 10).cuda().eval()
    x = torch.randn(64, 3, 32, 32)
    export_onnx(model, x[:2].cuda(), tmp_path / "resnet8.onnx")  # export moves the model to the CPU
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "resnet8.onnx"), providers=ort.get_available_providers())
    got = session.run(None, {"input": x.numpy()})[0]
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        want = model.cuda()(x.cuda()).cpu().numpy()
    assert abs(got - want).max() <= PARITY_GOAL and (got.argmax(1) == want.argmax(1)).all()
