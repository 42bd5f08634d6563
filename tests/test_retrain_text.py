"""Text: a `text_csv` pipeline's student learns an ingested text batch; the same registered model, one vocabulary."""

from __future__ import annotations

import json

import mlflow
import torch

from flows.cli import main
from tests.conftest import TINY
from tests.test_text_pipeline_e2e import COLUMNS, write_reviews

NAME = "kdflow-text_csv-student"


def tokenizer_of(client, version: str) -> dict:
    v = client.get_model_version(NAME, version)
    path = mlflow.artifacts.download_artifacts(run_id=v.run_id, artifact_path=v.tags["kdflow.checkpoint"])
    return torch.load(path, map_location="cpu", weights_only=True)["tokenizer"]


def test_a_text_batch_retrains_the_text_pipeline_student(kdflow, tmp_path, monkeypatch):
    data = write_reviews(tmp_path / "reviews.csv")
    proc, summary = kdflow("run", "--preset", "text_csv", "--set", f"data.root={data}", *COLUMNS, *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    own_run_acc = summary["models"][summary["registered"]["role"]]["test_acc"]

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    batch = write_reviews(tmp_path / "batch.csv", n=120, seed=1)
    options = ["--text-column", "review", "--label-column", "sentiment"]
    assert main(["ingest", str(batch), "--pipeline", "text_csv", *options]) == 0

    out = tmp_path / "retrain.json"
    assert main(["retrain", "--pipeline", "text_csv", "--output", str(out)]) == 0
    result = json.loads(out.read_text())[0]
    assert result["status"] == "retrained" and result["version"] == "2", result["reason"]
    client = mlflow.MlflowClient()
    v2 = client.get_model_version(NAME, "2")
    assert v2.tags["kdflow.learned_batches"] == result["learned_batches"][0] and v2.tags["kdflow.base_version"] == "1"
    assert tokenizer_of(client, "2") == tokenizer_of(client, "1")  # one vocabulary, kept
    # as accurate on the original test split (32 texts) as the pipeline's own run, within two texts
    assert result["part_accuracies"]["original"] >= own_run_acc - 2 / 32
    assert result["part_accuracies"][result["learned_batches"][0]] > 0.6
    served = mlflow.pyfunc.load_model(f"models:/{NAME}/2")
    assert set(served.predict(["a wonderful film", "boring awful waste"])["class"]) <= {"neg", "pos"}
