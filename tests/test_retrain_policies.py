"""retrain.policy=refit (the pipeline reruns on all the data) and data.classes (a first run on some classes; a batch
bringing the others widens the head of the same registered model)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import torch
from conftest import TINY
from sklearn.datasets import load_digits

from flows.cli import main

NAME = "kdflow-digits-student"
FIRST_FIVE = ["--set", "data.classes=[0,1,2,3,4]", "--set", "student.train.epochs=12"]


def write_new_digits(path, n: int):
    """`n` sklearn digits of classes 5-9 (none the pipeline has seen), as 8-bit pixels in a .npz file."""
    d = load_digits()
    keep = np.flatnonzero(d.target >= 5)[:n]
    np.savez(path, inputs=np.round(d.images[keep] * 255 / 16).astype(np.uint8), labels=d.target[keep])


def retrain(tmp_path, *options) -> dict:
    out = tmp_path / "retrain.json"
    assert main(["retrain", "--pipeline", "digits", "--output", str(out), *options]) == 0
    return json.loads(out.read_text())[0]


def test_a_batch_of_new_classes_is_learned_by_refit_and_by_continual(kdflow, tmp_path, monkeypatch):
    proc, summary = kdflow("run", "--preset", "digits", *TINY, *FIRST_FIVE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(NAME, "champion")
    champion_params = mlflow.get_run(champion.run_id).data.params

    write_new_digits(tmp_path / "new.npz", 300)
    assert main(["ingest", str(tmp_path / "new.npz"), "--pipeline", "digits"]) == 0

    # refit: teacher and student trained again on the original data plus the batch; a gate no one passes
    refit = retrain(tmp_path, "--policy", "refit", "--tolerance", "-1")
    assert refit["status"] == "retrained" and not refit["promoted"] and refit["version"] == "2", refit["reason"]
    (batch,) = refit["learned_batches"]
    v2 = client.get_model_version(NAME, "2")
    assert v2.tags["kdflow.strategy"] == "refit" and v2.tags["kdflow.learned_batches"] == batch
    assert refit["part_accuracies"][batch] > 0.5  # classes 5-9: a 5-class head would score 0
    assert refit["part_accuracies"]["original"] > 0.5
    assert refit["champion_part_accuracies"][batch] == 0.0
    stages = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{refit['run_id']}'"
    )
    assert {"teacher", "baseline", "student"} <= set(stages["tags.kdflow.stage"])
    student_run = stages[stages["tags.kdflow.stage"] == "student"].iloc[0]
    if "best.lr" in champion_params:  # the champion's best hyper-parameters, not a new search
        assert float(student_run["params.best.lr"]) == float(champion_params["best.lr"])
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    # continual, from the same champion: the head widens to the new classes, keeping the old rows
    cont = retrain(tmp_path, "--tolerance", "1", "--mode", "student_only", "--strategy", "derpp")
    assert cont["promoted"] and cont["version"] == "3" and cont["learned_batches"] == [batch]
    assert cont["part_accuracies"][batch] > 0.3
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "3"
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    d = load_digits()
    out = served.predict({"image": list(np.round(d.images[d.target == 9][:5] * 255 / 16).astype(np.uint8))})
    assert "prob_9" in out.columns and (out["class"].astype(str) == "9").sum() >= 3  # the served head has 10 rows


def test_refit_data_is_the_original_splits_plus_each_batch_train_part_shared_with_validation():
    from kdcore.data import DataBundle
    from kdcore.data.bundle import Split
    from pipelines.lifelong.refit_policy import joint_bundle

    def split(n, label0):
        return Split(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.arange(n) % 2 + label0)

    original = DataBundle(split(40, 0), split(10, 0), split(10, 0), 2, (1, 2, 2), "toy", ["a", "b"])
    joint = joint_bundle(original, [split(20, 2)], ["a", "b", "c", "d"], 0.2, seed=0)
    assert (len(joint.train), len(joint.val), len(joint.test)) == (56, 14, 10)
    assert joint.val.y[10:].tolist().count(2) == 2 and joint.num_classes == 4 and joint.classes[-1] == "d"
    assert joint.test is original.test and joint.view == original.view  # never re-split, mean/std kept


def test_data_classes_keeps_the_listed_classes_and_names_an_unknown_one():
    import pytest

    from kdcore.data import DataError
    from kdcore.data.keep_classes import keep_classes
    from kdcore.datasets import load_dataset

    bundle = load_dataset("digits", None, 0.15, 0.2, 0)
    kept = keep_classes(bundle, ["7", "3"])
    assert kept.classes == ["3", "7"] and kept.num_classes == 2
    assert set(kept.test.y.tolist()) == {0, 1} and len(kept.train) < len(bundle.train) / 4
    with pytest.raises(DataError, match=r"data.classes names \['x'\], which digits does not have"):
        keep_classes(bundle, ["3", "x"])


def test_data_head_classes_all_keeps_the_datasets_labels_and_class_count():
    """A head for every class from the start (the DER paper's class-incremental protocol): only the listed classes'
    samples, under the dataset's own labels, so later batches' classes need no new outputs."""
    from kdcore.data.keep_classes import keep_classes
    from kdcore.datasets import load_dataset

    bundle = load_dataset("digits", None, 0.15, 0.2, 0)
    kept = keep_classes(bundle, ["7", "3"], all_in_head=True)
    assert kept.num_classes == 10 and kept.classes == [str(c) for c in range(10)]
    assert set(kept.test.y.tolist()) == {3, 7} and len(kept.train) < len(bundle.train) / 4
