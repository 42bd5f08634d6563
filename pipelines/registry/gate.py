"""The one promotion gate: whether a new registered version becomes `champion`, and why.

Every registration (the distillation pipeline's, the lifelong retraining's) goes through
`pipelines.registry.registration.register_version`, which holds `promotion_lock(name)` around read-champion ->
`decide` -> register -> move the alias, so two runs that register to one model at once decide one after the other.

The rules, on the accuracy a candidate reached on its evaluation data (the test split; a stream's test parts):
- Only identical evaluation data compares: every version records the digest of that data (`kdflow.eval_digest`)
  and its accuracy there (`kdflow.eval_acc`). A champion scored on other data is "not comparable": it stays, and
  a person may move the alias by hand. A caller that scored the champion itself on this very data (the retraining,
  whose test parts are never trained on) passes that score in `Candidate.champion_rescored`.
- Promote only if acc >= the champion's acc - tolerance AND acc >= the best acc any version of this registered
  model reached on the same data - tolerance, so losses of up to the tolerance cannot add up over versions.
- Ties promote (>=, as the rule is written): at equal measured quality the newer version (newer code, data or
  settings) takes over.
- With no champion the first version is promoted, unless another version already did better on the same data.

The lock: for a local SQLite store, an flock on a file beside the database, one per registered model (the OS
releases it if the holder is killed). For any other store (an MLflow tracking server over http), a compare-and-set
lease on the registered model's tag `kdflow.promotion_lock`: read it; if free or expired, write our token and
expiry; wait `SETTLE_SECONDS` (longer than one request's round trip, so a writer that read "free" at the same
time has written by then); read again; ours -> held, else retry with backoff. MLflow tags have no atomic
compare-and-set, so this is a lease that is safe when requests take less than the settle time; the lease
expires after `LEASE_SECONDS` so a killed holder cannot block promotions for ever.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import torch

log = logging.getLogger("kdflow")

EVAL_DIGEST_TAG = "kdflow.eval_digest"
EVAL_ACC_TAG = "kdflow.eval_acc"
DECISION_TAG = "champion_decision"  # on the version
PROMOTION_RUN_TAG = "kdflow.promotion"  # on the run that produced the version (the pipeline's parent run)
LOCK_TAG = "kdflow.promotion_lock"  # on the registered model, for stores without a local file
LEASE_SECONDS = 300.0
SETTLE_SECONDS = 0.5


def eval_digest(*splits, tokenizer: dict | None = None) -> str:
    """Content hash of the evaluation data (each split's inputs and labels, in order): equal only for equal data.
    Text: token ids mean words only with their vocabulary, so `tokenizer` is part of the data."""
    h = hashlib.sha256(b"" if tokenizer is None else json.dumps(tokenizer, sort_keys=True).encode())
    for split in splits:
        for t in (split.x, split.y):
            t = torch.as_tensor(t).contiguous().cpu()
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Candidate:
    """A model about to be registered, and what it scored on which data.

    `champion_rescored`: (champion version, its accuracy on this very data), when the caller scored it there.
    """

    model_uri: str
    acc: float
    eval_digest: str
    metric: str = "test acc"  # how reasons name `acc`
    tags: dict[str, str] = field(default_factory=dict)
    champion_rescored: tuple[str, float] | None = None


@dataclass(frozen=True)
class Scored:
    """A registered version and its recorded evaluation, from its tags (None where it has none)."""

    version: str
    digest: str | None
    acc: float | None

    @classmethod
    def of(cls, mv) -> Scored:
        acc = mv.tags.get(EVAL_ACC_TAG)
        return cls(str(mv.version), mv.tags.get(EVAL_DIGEST_TAG), None if acc is None else float(acc))


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    comparable: bool  # False: a champion exists that was scored on other data
    champion_before: str | None = None
    version: str | None = None  # set once registered


def decide(cand: Candidate, champion: Scored | None, versions: list[Scored], tolerance: float) -> Decision:
    """The rule, on recorded figures: the champion's and every version's accuracy on `cand`'s evaluation data."""
    same = [v for v in versions if v.digest == cand.eval_digest and v.acc is not None]
    best = max(same, key=lambda v: v.acc, default=None)
    eps = 1e-12  # accuracies are read back from text tags
    if best is not None and cand.acc < best.acc - tolerance - eps:
        below_best = (
            f"{cand.metric} {cand.acc:.4f} is below the best any version reached on this data, "
            f"v{best.version}'s {best.acc:.4f}, minus tolerance {tolerance:g}"
        )
    else:
        below_best = None
    if champion is None:
        if below_best:
            return Decision(False, f"not promoted: no champion, but {below_best}", True)
        return Decision(True, "no champion before", True)
    if champion.digest == cand.eval_digest and champion.acc is not None:
        champion_acc = champion.acc
    elif cand.champion_rescored is not None and cand.champion_rescored[0] == champion.version:
        champion_acc = cand.champion_rescored[1]
    else:
        recorded = champion.digest or "none recorded"
        return Decision(
            False,
            f"kept champion v{champion.version}: not comparable, it was scored on other evaluation data "
            f"(digest {recorded}, this {cand.eval_digest}); move the alias by hand if this one should serve",
            False,
            champion.version,
        )
    floor = champion_acc - tolerance
    if cand.acc < floor - eps:
        return Decision(
            False,
            f"kept champion v{champion.version}: {cand.metric} {cand.acc:.4f} is below its {champion_acc:.4f} "
            f"minus tolerance {tolerance:g}",
            True,
            champion.version,
        )
    if below_best:
        return Decision(False, f"kept champion v{champion.version}: {below_best}", True, champion.version)
    return Decision(
        True,
        f"promoted over v{champion.version}: {cand.metric} {cand.acc:.4f} >= its {champion_acc:.4f} "
        f"minus tolerance {tolerance:g}, on the same evaluation data",
        True,
        champion.version,
    )


def choose_on_validation(student_val: float | None, baseline_val: float | None) -> tuple[str, str]:
    """Which of the KD student and the labels-only baseline a pipeline run registers, and why: the better on
    validation (the search's best trial at its best epoch vs the baseline's best epoch). Ties go to the KD student
    (same architecture, and what the run was for). Without both figures (tune.refit=train+val leaves the baseline
    none, tune.n_trials=0 the student none) the KD student, saying so. The test split never chooses."""
    if student_val is None or baseline_val is None:
        return "student", "the KD student: no validation figure for both (tune.refit=train+val or no trials)"
    if baseline_val > student_val:
        return "baseline", (
            f"the labels-only baseline: its validation acc {baseline_val:.4f} beats the KD student's {student_val:.4f}"
        )
    return (
        "student",
        f"the KD student: validation acc {student_val:.4f} vs the labels-only baseline's {baseline_val:.4f}",
    )


def read_champion(client: mlflow.MlflowClient, name: str) -> Scored | None:
    try:
        return Scored.of(client.get_model_version_by_alias(name, "champion"))
    except mlflow.exceptions.MlflowException:  # no such model, or no alias yet
        return None


def read_versions(client: mlflow.MlflowClient, name: str) -> list[Scored]:
    return [Scored.of(mv) for mv in client.search_model_versions(f"name = '{name}'")]


def sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLite store: sqlite:///relative.db or sqlite:////absolute.db (SQLAlchemy's form)."""
    parsed = urlparse(uri)
    path = unquote(parsed.path)[1:]
    return Path(path) if parsed.scheme == "sqlite" and path not in ("", ":memory:") else None


@contextmanager
def promotion_lock(name: str, kind: str | None = None) -> Iterator[str]:
    """Held while one registration to `name` reads, decides and moves the alias. `kind`: "file" or "tag"
    (default: "file" for a SQLite store, "tag" otherwise). Yields the kind used."""
    uri = mlflow.get_tracking_uri()
    db = sqlite_path(uri)
    kind = kind or ("file" if db is not None else "tag")
    if kind == "file":
        folder, db_name = (db.resolve().parent, db.name) if db else (Path.cwd(), "mlflow")
        lock_file = folder / f"{db_name}.{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.promotion.lock"
        with open(lock_file, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # blocks; the OS releases it if we are killed
            try:
                yield kind
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    client = mlflow.MlflowClient()
    token = f"{uuid.uuid4().hex} {os.getpid()}"
    ensure_registered_model(client, name)
    delay = 0.2
    while True:
        held = client.get_registered_model(name).tags.get(LOCK_TAG)
        if held is None or lease_expired(held):
            client.set_registered_model_tag(name, LOCK_TAG, f"{token} {time.time() + LEASE_SECONDS:.3f}")
            time.sleep(SETTLE_SECONDS)
            if client.get_registered_model(name).tags.get(LOCK_TAG, "").startswith(token):
                break
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 5.0)
    try:
        yield kind
    finally:
        if client.get_registered_model(name).tags.get(LOCK_TAG, "").startswith(token):
            client.delete_registered_model_tag(name, LOCK_TAG)


def lease_expired(value: str) -> bool:
    try:
        return float(value.rsplit(" ", 1)[1]) < time.time()
    except (IndexError, ValueError):
        return True  # unreadable: not a lease of ours


def ensure_registered_model(client: mlflow.MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def version_tags(cand: Candidate, decision: Decision) -> dict[str, str]:
    return {
        **cand.tags,
        EVAL_DIGEST_TAG: cand.eval_digest,
        EVAL_ACC_TAG: repr(float(cand.acc)),
        DECISION_TAG: decision.reason,
    }


def promotion_line(name: str, decision: Decision) -> str:
    """One line for a run tag and a summary: which version, whether it is champion, why."""
    state = "is now champion" if decision.promote else "registered, not champion"
    return f"{name} v{decision.version} {state}: {decision.reason}"
