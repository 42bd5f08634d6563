"""`kdflow stream simulate` through the pipeline path: the pipeline on the first task's classes, then each later task
ingested for it and learned by the same retraining as `kdflow retrain --pipeline` (real MLflow, real Prefect)."""

from __future__ import annotations

import json

import mlflow
import torch
from conftest import TINY

from flows.cli import main
from kdcore.train import make_optimizer, make_schedule
from pipelines.config.schema import load_config
from pipelines.training.model_run import settings_for

NAME = "kdflow-digits-student"


def test_split_fmnist_trains_with_plain_sgd_at_a_constant_rate():
    """The DER protocol's optimiser: SGD without momentum, lr 0.03 throughout (not the pipeline's usual Nesterov
    momentum and one-cycle schedule)."""
    cfg = load_config("split_fmnist")
    assert (cfg.student.arch, cfg.student.options()) == ("mlp", {"width": 100, "depth": 2})
    assert cfg.data.head_classes == "all"  # 784-100-100-10: all 10 outputs from the first task on, as in the paper
    assert (cfg.data.mean, cfg.data.std) == ([0.0], [1.0])  # the paper's inputs: pixels in [0, 1], not normalised
    settings = settings_for(cfg.student.train, cfg)
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer([weight], settings)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0
    schedule = make_schedule(optimizer, settings, steps_per_epoch=100)
    for _ in range(50):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == 0.03 and settings.batch_size == 10 and settings.epochs == 1


def test_a_bad_task_count_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["stream", "simulate", "--preset", "digits", "--tasks", "6"]) == 1
    assert capsys.readouterr().err == (
        "kdflow stream: --tasks 6 does not fit 10 classes; pick 2 to 5 (a task has at least 2 classes)\n"
    )
    assert not (tmp_path / "mlruns").exists()


def test_simulate_distils_the_first_task_and_retrains_the_champion_on_the_next(kdflow, tmp_path):
    proc, _ = kdflow(
        "stream", "simulate", "--preset", "digits", "--tasks", "2", *TINY, "--set", "tune.n_trials=0",
        "--output", "steps.json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "task 1 (0, 1, 2, 3, 4): kdflow run --preset digits" in proc.stdout
    (step,) = json.loads((tmp_path / "steps.json").read_text())
    assert step["status"] == "retrained" and step["version"] == "2", step["reason"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    v1, v2 = (client.get_model_version(NAME, v) for v in ("1", "2"))  # one registered model, the pipeline's own
    assert v2.tags["kdflow.base_version"] == "1" and v2.tags["kdflow.learned_batches"] == step["learned_batches"][0]
    assert set(step["part_accuracies"]) == {"original", step["learned_batches"][0]}
    assert step["part_accuracies"][step["learned_batches"][0]] > 0.5  # classes 5-9, new to the head, are learned


def test_with_every_class_in_the_head_lwf_distils_the_outputs_of_classes_not_yet_seen(kdflow, tmp_path):
    """The DER paper's protocol has all 10 outputs from the first task on, and LwF distils all of them, the future
    classes' too: that is what keeps its new-class outputs from taking over (through the pipeline with a head
    grown per task, LwF distilled only the learned classes' outputs and scored as fine-tuning did, 19.9 % against
    31.4 % on Split-Fashion-MNIST)."""
    proc, _ = kdflow(
        "stream", "simulate", "--preset", "digits", "--tasks", "2", "--strategy", "lwf",
        "--set", "tune.n_trials=0", "--set", "data.head_classes=all", "--output", "steps.json",
        "--set", "teacher.train.epochs=1", "--set", "student.train.epochs=1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (step,) = json.loads((tmp_path / "steps.json").read_text())
    assert step["status"] == "retrained", step["reason"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    first = mlflow.models.get_model_info(f"models:/{NAME}/1")
    assert first.metadata["kdflow.classes"] == [str(c) for c in range(10)]  # the champion of task 1 scores all 10
    state = mlflow.artifacts.download_artifacts(run_id=step["run_id"], artifact_path="lifelong/state.pt")
    assert torch.load(state, weights_only=True)["student_strategy"]["learned_width"] == 10
