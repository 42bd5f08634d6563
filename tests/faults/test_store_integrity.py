"""The integrity check finds each kind of damage a fault could leave in a store (and nothing in a whole one)."""

from __future__ import annotations

import os

import numpy as np
from mlflow.tracking import MlflowClient

from pipelines.cache.keys import cache_dir, write_entry_text
from pipelines.registry.gate import EVAL_ACC_TAG, EVAL_DIGEST_TAG
from pipelines.stores.integrity import check_store
from pipelines.stream import StreamStore, ingest


def test_each_kind_of_damage_is_found(tmp_path):
    store = tmp_path / "mlruns"
    np.savez(
        tmp_path / "b.npz", inputs=np.random.default_rng(0).integers(0, 256, (20, 6, 6), np.uint8), labels=[0, 1] * 10
    )
    ingest(tmp_path / "b.npz", store, "s")
    entry = cache_dir(str(store), "teacher") / "abc.json"
    write_entry_text(entry, '{"run_id": "x"}')
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)  # the store's own registry, not the process's global one
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    client.set_terminated(client.create_run(experiment).info.run_id, status="FINISHED")
    client.create_registered_model("m")
    for acc in ("0.90", "0.85", "0.95"):  # versions 1, 2, 3
        client.create_model_version(
            "m", source=(tmp_path / "model").as_uri(), tags={EVAL_DIGEST_TAG: "d", EVAL_ACC_TAG: acc}
        )
    client.set_registered_model_alias("m", "champion", "1")

    env_before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    whole = check_store(store, load_models=False)
    assert whole.ok, whole.problems
    # it reads this store's registry, and leaves MLflow's globals (and the env its children inherit) as they were
    assert {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")} == env_before
    assert whole.champions == {"m": "1"} and whole.checked["batches"] == 1 and whole.checked["cache entries"] == 1

    client.set_registered_model_alias("m", "champion", "3")  # better on the same data: fine
    assert check_store(store, {"m": "1"}, load_models=False).ok
    client.set_registered_model_alias("m", "champion", "2")  # worse on the same data
    client.create_run(experiment)  # left RUNNING
    batch = StreamStore(store, "s").batches()[0]
    (batch.path / "train.pt").write_bytes(b"truncated")
    entry.write_text('{"run_id": "y"}')
    problems = " | ".join(check_store(store, {"m": "3"}, load_models=False).problems)
    assert "still RUNNING" in problems
    assert "from v3 to v2" in problems
    assert "train.pt does not match its manifest" in problems
    assert "abc.json does not match" in problems
