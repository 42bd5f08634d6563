"""torchrun with two CPU processes (DDP over gloo) trains the teacher to the same accuracy band as one."""

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from kdcore.data import DataBundle
from kdcore.data.bundle import Split
from kdcore.distributed import shard
from kdcore.evaluate import evaluate
from pipelines.cache.checkpoint import load_model
from pipelines.config.schema import load_config
from pipelines.stages import prepare_data, train_teacher


def test_shards_are_equal_disjoint_up_to_padding_and_cover_the_split():
    split = Split(torch.arange(10).float().unsqueeze(1), torch.arange(10))
    parts = [shard(split, rank, 3, seed=5) for rank in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]  # 10 padded to 12: every rank takes the same steps
    seen = torch.cat([p.y for p in parts]).tolist()
    assert set(seen) == set(range(10)) and len(seen) - len(set(seen)) == 2
    assert torch.equal(shard(split, 1, 3, seed=5).y, parts[1].y)  # every rank computes the same cut
    with pytest.raises(ValueError):
        shard(split, 3, 3)


def test_two_process_ddp_teacher_matches_one_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    overrides = [
        "teacher.arch=cnn_small",
        "teacher.train.epochs=4",
        "teacher.train.lr=0.01",
        "runtime.device=cpu",
        f"runtime.store_dir={tmp_path / 'store'}",
    ]
    accuracy, runs = {}, {}
    with mlflow.start_run(run_name="parent") as parent:
        for nproc in (1, 2):
            cfg = load_config("digits", [*overrides, f"teacher.distributed.nproc={nproc}"])
            data = prepare_data(cfg)
            teacher = train_teacher(cfg, data, parent.info.run_id)
            test = DataBundle.load(data.path).inputs("test")  # normalised model inputs
            accuracy[nproc] = evaluate(load_model(teacher.checkpoint), test)["acc"]
            runs[nproc] = teacher.run_id

    assert accuracy[1] > 0.9 and accuracy[2] > 0.9, accuracy
    assert abs(accuracy[2] - accuracy[1]) <= 0.04, accuracy  # same band: 4 points is ~14 of 360 test digits
    client = MlflowClient()
    teacher_runs = client.search_runs([parent.info.experiment_id], "tags.`kdflow.stage` = 'teacher'")
    assert sorted(r.info.run_id for r in teacher_runs) == sorted(runs.values())  # rank 1 logged nothing
    ddp = client.get_run(runs[2])
    assert ddp.data.params["teacher.distributed.world_size"] == "2"
    assert ddp.data.params["teacher.distributed.backend"] == "gloo"
    assert [m.step for m in client.get_metric_history(runs[2], "val/acc")] == list(range(1, 5))
