"""Is a kdflow store whole? The checks a fault (a killed run, ingest or retraining) must never break.

Run once the command after a fault has finished: no MLflow run or Optuna trial left RUNNING; every registered
version's model loads; the champion never moved to a version that scored worse on the evaluation data both were
scored on (their `kdflow.eval_digest`); every stream batch's files match its manifest and no sample sits in two
batches or in both parts; every cache entry matches its recorded size and sha256. Nothing is changed or deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from pipelines.cache.keys import file_record, record_path
from pipelines.registry.gate import EVAL_ACC_TAG, EVAL_DIGEST_TAG
from pipelines.stream import StreamStore, stream_names
from pipelines.stream.ingest import sha256_file
from pipelines.stream.sample_digests import stored_digests


@dataclass
class IntegrityReport:
    problems: list[str] = field(default_factory=list)
    champions: dict[str, str] = field(default_factory=dict)  # registered model -> champion version
    loaded: set[str] = field(default_factory=set)  # "name/version" of every version whose model loaded
    checked: dict[str, int] = field(default_factory=dict)  # what was looked at, for the log line

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        seen = ", ".join(f"{n} {what}" for what, n in self.checked.items())
        return f"store whole ({seen})" if self.ok else f"{len(self.problems)} problem(s): {'; '.join(self.problems)}"


def check_store(
    store_dir: str | Path,
    previous_champions: dict[str, str] | None = None,
    tolerance: float = 0.0,
    load_models: bool = True,
    loaded_before: set[str] | None = None,
) -> IntegrityReport:
    """Every check on the local store under `store_dir` (MLflow `mlflow.db`, Optuna `optuna.db`, streams, cache).

    `previous_champions` (the last report's `champions`) lets the check see a champion move; `tolerance` is the
    accuracy a promotion was allowed to lose on the same data; `loaded_before` (a last report's `loaded`) skips
    loading those versions again (a registered version's files never change)."""
    store = Path(store_dir).resolve()
    report = IntegrityReport(loaded=set(loaded_before or ()))
    db = store / "mlflow.db"
    if db.exists():
        uri = f"sqlite:///{db}"
        client = MlflowClient(uri, registry_uri=uri)  # else the registry is the process's global one
        check_runs(client, report)
        with global_store(uri):  # models:/ URIs resolve against the global store
            check_versions(client, report, previous_champions or {}, tolerance, load_models)
    check_trials(store / "optuna.db", report)
    check_batches(store, report)
    check_cache(store / "cache", report)
    return report


@contextlib.contextmanager
def global_store(uri: str):
    """MLflow's global tracking and registry URI set to `uri`, then put back exactly as they were: setting them
    also exports MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which the processes this one starts would inherit."""
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env, globals_ = {n: os.environ.get(n) for n in names}, (tracking._tracking_uri, registry._registry_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking._tracking_uri, registry._registry_uri = globals_
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_runs(client: MlflowClient, report: IntegrityReport) -> None:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=50_000) if experiments else []
    report.checked["runs"] = len(runs)
    for r in runs:
        if r.info.status == "RUNNING":
            report.problems.append(f"MLflow run {r.info.run_name} ({r.info.run_id}) is still RUNNING")


def check_trials(db: Path, report: IntegrityReport) -> None:
    if not db.exists():
        return
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        rows = con.execute(
            "select s.study_name, t.number from trials t join studies s on s.study_id = t.study_id "
            "where t.state = 'RUNNING'"
        ).fetchall()
        report.checked["trials"] = con.execute("select count(*) from trials").fetchone()[0]
    for study, number in rows:
        report.problems.append(f"Optuna trial {number} of study {study} is still RUNNING")


def check_versions(
    client: MlflowClient, report: IntegrityReport, previous: dict[str, str], tolerance: float, load_models: bool
) -> None:
    versions = 0
    for model in client.search_registered_models():
        name = model.name
        for mv in client.search_model_versions(f"name = '{name}'"):
            versions += 1
            key = f"{name}/{mv.version}"
            if load_models and key not in report.loaded:
                try:
                    mlflow.pyfunc.load_model(f"models:/{key}")
                    report.loaded.add(key)
                except Exception as e:
                    report.problems.append(f"{name} v{mv.version} does not load ({type(e).__name__}: {e})"[:300])
        champion = model.aliases.get("champion") if isinstance(model.aliases, dict) else None
        if champion is None:
            try:
                champion = str(client.get_model_version_by_alias(name, "champion").version)
            except Exception:  # no champion yet
                champion = None
        if champion is None:
            continue
        report.champions[name] = str(champion)
        before = previous.get(name)
        if before is not None and before != str(champion):
            check_promotion(client, name, before, str(champion), tolerance, report)
    report.checked["versions"] = versions


def check_promotion(
    client: MlflowClient, name: str, before: str, after: str, tolerance: float, report: IntegrityReport
) -> None:
    """A champion that moved: on the data both versions were scored on, the new one is no worse (within tolerance)."""
    old, new = client.get_model_version(name, before).tags, client.get_model_version(name, after).tags
    same_data = old.get(EVAL_DIGEST_TAG) and old.get(EVAL_DIGEST_TAG) == new.get(EVAL_DIGEST_TAG)
    if not same_data or EVAL_ACC_TAG not in old or EVAL_ACC_TAG not in new:
        return  # scored on different data: the gate's own rule applies (recorded in its decision tag)
    lost = float(old[EVAL_ACC_TAG]) - float(new[EVAL_ACC_TAG])
    if lost > tolerance + 1e-9:
        report.problems.append(
            f"{name}: champion moved from v{before} to v{after}, which scores {lost:.4f} lower on the same test data"
        )


def check_batches(store: Path, report: IntegrityReport) -> None:
    batches = 0
    for name in stream_names(store):
        seen: dict[str, str] = {}
        for b in StreamStore(store, name).batches():
            batches += 1
            for file, digest in b.manifest.get("files", {}).items():
                path = b.path / file
                if not path.exists() or sha256_file(path) != digest:
                    report.problems.append(f"batch {name}/{b.id}: {file} does not match its manifest")
            counts = b.manifest.get("counts", {})
            recorded = b.manifest.get("sample_sha256")
            if recorded is not None and {p: len(recorded[p]) for p in ("train", "test")} != {
                p: sum(counts.get(p, {}).values()) for p in ("train", "test")
            }:
                report.problems.append(f"batch {name}/{b.id}: its sample digests do not match its counts")
            try:
                digests = stored_digests(b)
            except Exception as e:
                report.problems.append(f"batch {name}/{b.id}: its parts cannot be read ({type(e).__name__})")
                continue
            for d in digests:
                if d in seen:
                    report.problems.append(f"batch {name}/{b.id}: a sample is stored twice (also in {seen[d]})")
                    break
                seen[d] = b.id
    report.checked["batches"] = batches


def check_cache(cache: Path, report: IntegrityReport) -> None:
    entries = 0
    if not cache.exists():
        return
    for path in sorted(cache.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or path.suffix in (".sha256", ".tmp", ".lock"):
            continue
        entries += 1
        try:
            expected = json.loads(record_path(path).read_text())
            ok = file_record(path) == {"size": expected["size"], "sha256": expected["sha256"]}
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            report.problems.append(f"cache entry {path.relative_to(cache)} does not match its recorded size/sha256")
    report.checked["cache entries"] = entries
