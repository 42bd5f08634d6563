"""Retraining on a data stream: learn every batch the champion has not, measure forgetting, gate promotion.

Images and texts take the same path: a stored batch becomes tensors (`StoredBatch.load`), for text
the token ids of the models' vocabulary. That vocabulary is fitted once, on the train part of the
stream's first batch, when the first model is built; it then travels with every version (in its state
and its logged model) and never changes, since the embeddings are indexed by it: words that later
batches bring are <unk> to the models.

Nothing is written until the new model version is complete: a crash or kill part-way leaves the
champion, its buffer (inside its version's state) and the stream exactly as they were.
"""

from __future__ import annotations

import copy
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
import torch

from kdcore.data.image_input import ImagePreprocessing
from kdcore.data.view import InputView
from kdcore.lifelong import accuracy_row, build_strategy, grow_head, summarise
from kdcore.models import build_model, count_parameters
from kdcore.text.tokenizer import Tokenizer
from kdcore.train import TrainSettings
from pipelines.gate import Candidate, eval_digest, promotion_lock
from pipelines.lifelong.config import RetrainConfig
from pipelines.lifelong.heatmap import save_heatmap
from pipelines.lifelong.promotion import promotion_decision
from pipelines.lifelong.state import LifelongState, model_blob, model_out
from pipelines.lifelong.strategies import learn_task
from pipelines.registry import ServedInput, log_served_model, register_version
from pipelines.run_liveness import fail_orphaned_runs, liveness_tags
from pipelines.stream import StreamStore
from pipelines.threads import auto_choice, use_threads
from pipelines.tracking import redact, use_tracking_uri, users_tracking_env

log = logging.getLogger("kdflow")
STATE_ARTIFACT = "lifelong/state.pt"


@dataclass
class RetrainResult:
    stream: str
    status: str  # "retrained" | "up-to-date" | "no-data" | "already-tried"
    reason: str
    new_batches: list[str] = field(default_factory=list)
    learned_batches: list[str] = field(default_factory=list)
    version: str | None = None
    promoted: bool = False
    champion_version: str | None = None
    matrix: list[list[float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["matrix"] = [[None if math.isnan(v) else v for v in row] for row in self.matrix]
        return d


def tracking_uri(cfg: RetrainConfig) -> str:
    if cfg.tracking_uri:
        return cfg.tracking_uri
    if users_tracking_env():
        return users_tracking_env()
    store = Path(cfg.store_dir).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def setup_experiment(cfg: RetrainConfig) -> str:
    uri = tracking_uri(cfg)
    default = not cfg.tracking_uri and not users_tracking_env()
    use_tracking_uri(uri, chosen_by_kdflow=default)
    fail_orphaned_runs()  # runs a killed retraining left RUNNING end now, as FAILED, with the reason
    name = f"kdflow-lifelong-{cfg.stream}"
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = None
    if uri.startswith("sqlite:") and default:
        artifacts = (Path(cfg.store_dir).resolve() / "artifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=artifacts)


def current_champion(name: str):
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        return None


def load_champion_state(cfg: RetrainConfig, champion) -> LifelongState:
    path = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path=STATE_ARTIFACT)
    return LifelongState.load(Path(path), cfg.strategy, cfg.strategy_options())


def first_tokenizer(cfg: RetrainConfig, first_batch) -> dict:
    """The vocabulary of a text stream's models: the train part of its first batch, counted once."""
    texts, _ = first_batch.texts("train")
    return Tokenizer.fit(texts, cfg.vocab_size, cfg.min_freq, cfg.max_len).state_dict()


def tokenizer_of(state: LifelongState) -> Tokenizer | None:
    return Tokenizer.from_state_dict(state.tokenizer) if state.tokenizer else None


def fresh_state(
    cfg: RetrainConfig, input_shape: tuple[int, ...], num_classes: int, tokenizer: dict | None = None
) -> LifelongState:
    """New models (and strategies); for text, `tokenizer` sets their input: ids of its vocabulary, `max_len` long."""
    if tokenizer is not None:
        input_shape = (tokenizer["max_len"],)

    def model(role):
        torch.manual_seed(cfg.seed)
        options = cfg.model_options(role) | ({"vocab_size": len(tokenizer["tokens"])} if tokenizer else {})
        spec = {"arch": getattr(cfg, f"{role}_arch"), "input_shape": list(input_shape), "options": options}
        return build_model(spec["arch"], input_shape, num_classes, **spec["options"]), spec

    student, student_spec = model("student")
    state = LifelongState(
        student, student_spec, build_strategy(cfg.strategy, **cfg.strategy_options()), tokenizer=tokenizer
    )
    if cfg.mode == "teacher_student":
        state.teacher, state.teacher_spec = model("teacher")
        state.teacher_strategy = build_strategy(cfg.strategy, **cfg.strategy_options())
    return state


def already_tried(name: str, champion_version: str | None, target: list[str], cfg: RetrainConfig):
    """A version already built from this champion, on these batches, with this config (and not promoted)."""
    client = mlflow.MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:
        return None
    for v in versions:
        t = v.tags
        if (
            t.get("kdflow.base_version", "") == (champion_version or "")
            and t.get("kdflow.learned_batches") == ",".join(target)
            and t.get("kdflow.config_digest") == cfg.digest()
        ):
            return v
    return None


def by_id(batches):
    return {b.id: b for b in batches}


def champion_score(state: LifelongState, batches) -> float:
    """The champion's average accuracy on the test parts of `batches` (its head may not cover the newest classes)."""
    classes = list(state.classes)
    for b in batches:
        classes += [c for c in b.classes if c not in classes]
    index = {c: i for i, c in enumerate(classes)}
    tokenizer = tokenizer_of(state)
    return sum(accuracy_row(state.student, [b.load("test", index, tokenizer) for b in batches])) / len(batches)


def log_student(state: LifelongState, tokenizer: Tokenizer | None, example: torch.Tensor, tmp: Path):
    """The student as MLflow serves it, through the one registration path: a pyfunc on raw images (stream
    pixels are 8-bit scaled to [0, 1]) or raw strings (the vocabulary inside), like the pipeline's students."""
    student = state.student.cpu().eval()
    checkpoint = tmp / "student.pt"
    torch.save(model_blob(student, state.student_spec), checkpoint)
    if tokenizer is None:
        pre = ImagePreprocessing.for_data(state.student_spec["input_shape"], InputView(scale=1 / 255))
        pixels = list((example * 255).round().clamp(0, 255).to(torch.uint8).numpy())
        return log_served_model(checkpoint, ServedInput(list(state.classes), pixels, preprocessing=pre))
    examples = [tokenizer.decode(row) or "unknown" for row in example]
    return log_served_model(checkpoint, ServedInput(list(state.classes), examples, tokenizer=state.tokenizer))


def retrain_stream(
    cfg: RetrainConfig, on_batch: Callable[[str], None] | None = None, flow_run_tags: dict[str, str] | None = None
) -> RetrainResult:
    """Learn every batch of `cfg.stream` that the champion has not; register; move `champion` if the gate passes.

    `on_batch(batch_id)` runs after each batch is learned (progress reports; tests inject a crash there).
    """
    store = StreamStore(cfg.store_dir, cfg.stream)
    with store.lock("retrain"):  # one retraining at a time per stream; the OS releases it if we are killed
        batches = store.batches()
        if not batches:
            return RetrainResult(cfg.stream, "no-data", f"stream {cfg.stream!r} has no batches in {store.root}")
        cfg = cfg.for_modality(store.settings().get("modality", "image"))  # e.g. text models for a text stream
        experiment_id = setup_experiment(cfg)
        name = cfg.registered_name
        champion = current_champion(name)
        state = load_champion_state(cfg, champion) if champion else None
        learned = list(state.learned) if state else []
        new = [b for b in batches if b.id not in learned]
        champion_version = str(champion.version) if champion else None
        if not new:
            return RetrainResult(
                cfg.stream,
                "up-to-date",
                f"champion v{champion_version} has learned all {len(learned)} batches",
                learned_batches=learned,
                champion_version=champion_version,
            )
        target = learned + [b.id for b in new]
        tried = already_tried(name, champion_version, target, cfg)
        if tried is not None:  # the same work was done: only the gate may decide differently (a new tolerance)
            champion_avg = champion_score(state, [by_id(batches)[i] for i in target]) if state else None
            promote, reason = promotion_decision(
                float(tried.tags["kdflow.avg_acc"]), champion_avg, champion_version, cfg.tolerance
            )
            if promote:
                with promotion_lock(name):  # the alias moves under the gate's lock, as in every registration
                    mlflow.MlflowClient().set_registered_model_alias(name, "champion", tried.version)
                    mlflow.MlflowClient().set_model_version_tag(name, tried.version, "champion_decision", reason)
            return RetrainResult(
                cfg.stream,
                "already-tried",
                f"v{tried.version} was already built from champion v{champion_version} "
                f"on these batches with this config; {reason}",
                new_batches=[b.id for b in new],
                learned_batches=target if promote else learned,
                version=str(tried.version),
                promoted=promote,
                champion_version=str(tried.version) if promote else champion_version,
            )
        return _learn(cfg, store, experiment_id, champion, state, new, batches, on_batch, flow_run_tags or {})


def _learn(cfg, store, experiment_id, champion, state, new, batches, on_batch, tags) -> RetrainResult:
    started = time.perf_counter()
    name, champion_version = cfg.registered_name, (str(champion.version) if champion else None)
    batch_by_id = by_id(batches)
    learned = list(state.learned) if state else []
    classes = list(state.classes) if state else []
    for b in new:
        classes += [c for c in b.classes if c not in classes]
    index = {c: i for i, c in enumerate(classes)}
    settings_in = store.settings()
    if state is None:  # the first model of the stream; new[0] is the stream's first batch
        tokenizer = first_tokenizer(cfg, new[0]) if new[0].modality == "text" else None
        state = fresh_state(cfg, tuple(settings_in["input_shape"] or ()), len(new[0].classes), tokenizer)
    elif cfg.mode == "teacher_student" and state.teacher is None:  # champion was student-only: start a teacher
        fresh = fresh_state(cfg, tuple(settings_in["input_shape"] or ()), len(state.classes), state.tokenizer)
        state.teacher, state.teacher_spec, state.teacher_strategy = (
            fresh.teacher,
            fresh.teacher_spec,
            fresh.teacher_strategy,
        )
    teacher = state.teacher if cfg.mode == "teacher_student" else None
    champion_student = copy.deepcopy(state.student) if champion else None  # learning below changes the state in place
    settings = TrainSettings(  # plain SGD at a constant lr, as in DER
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        optimizer="sgd",
        momentum=0.0,
        schedule="constant",
        seed=cfg.seed,
    )
    tokenizer = tokenizer_of(state)
    seen = [batch_by_id[i] for i in learned]
    tests = [b.load("test", index, tokenizer) for b in seen]
    matrix = [list(row) for row in state.matrix]
    run_tags = {"kdflow.stream": cfg.stream, "kdflow.base_version": champion_version or "", **tags, **liveness_tags()}
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"retrain-{cfg.stream}-{new[-1].id}", tags=run_tags
    ) as run:
        mlflow.log_params({k: redact(str(v)) for k, v in cfg.model_dump().items()})
        largest = max(count_parameters(m) for m in filter(None, (state.student, teacher)))
        threads = use_threads(auto_choice(largest), "retrain")  # beside a run, not on top of it
        mlflow.log_params(
            {
                "new_batches": ",".join(b.id for b in new)[:500],
                "base_version": champion_version or "none",
                "runtime.threads_used": threads,
            }
        )
        for b in new:
            for model in filter(None, (state.student, teacher)):  # class indices follow arrival order
                grow_head(model, max(model_out(model), max(index[c] for c in b.classes) + 1), seed=cfg.seed)
            train = b.load("train", index, tokenizer)
            if teacher is not None:
                t_terms = learn_task(teacher, state.teacher_strategy, train, settings)
                mlflow.log_metrics({f"teacher/{k}": v for k, v in t_terms.items()}, step=len(matrix))
            s_terms = learn_task(
                state.student,
                state.student_strategy,
                train,
                settings,
                teacher=teacher,
                temperature=cfg.temperature,
                kd_weight=cfg.kd_weight,
            )
            seen.append(b)
            tests.append(b.load("test", index, tokenizer))
            row = accuracy_row(state.student, tests)
            matrix = [r + [math.nan] * (len(tests) - len(r)) for r in matrix] + [row]
            step = len(matrix) - 1
            scores = summarise(matrix)
            metrics = {
                **{f"lifelong/{k}": v for k, v in scores.items()},
                **{f"student/{k}": v for k, v in s_terms.items()},
                "lifelong/current_acc": row[-1],
            }
            if teacher is not None:
                metrics["teacher/avg_acc"] = sum(accuracy_row(teacher, tests)) / len(tests)
            mlflow.log_metrics(metrics, step=step)
            log.info(
                "retrain %s: learned %s (%d/%d)  avg acc %.4f  forgetting %.4f  bwt %.4f",
                cfg.stream,
                b.id,
                new.index(b) + 1,
                len(new),
                scores["avg_acc"],
                scores["forgetting"],
                scores["bwt"],
            )
            if on_batch is not None:
                on_batch(b.id)
        state.classes, state.learned, state.matrix = classes, [x.id for x in seen], matrix
        scores = summarise(matrix)
        with tempfile.TemporaryDirectory() as tmp:
            state.save(Path(tmp) / "state.pt")
            mlflow.log_artifact(str(Path(tmp) / "state.pt"), artifact_path="lifelong")
            ids = [x.id for x in seen]
            mlflow.log_dict(
                {
                    "batches": ids,
                    "classes": classes,
                    "matrix": [[None if math.isnan(v) else v for v in r] for r in matrix],
                },
                "lifelong/accuracy_matrix.json",
            )
            save_heatmap(
                matrix,
                ids,
                Path(tmp) / "accuracy_matrix.png",
                (
                    f"{cfg.stream} / {cfg.strategy}: avg acc {scores['avg_acc']:.3f}, "
                    f"forgetting {scores['forgetting']:.3f}"
                ),
            )
            mlflow.log_artifact(str(Path(tmp) / "accuracy_matrix.png"), artifact_path="lifelong")
            info = log_student(state, tokenizer, tests[-1].x[:2], Path(tmp))
        mlflow.log_metrics(
            {
                "final/avg_acc": scores["avg_acc"],
                "final/bwt": scores["bwt"],
                "final/forgetting": scores["forgetting"],
                "seconds": time.perf_counter() - started,
            }
        )
        champion_avg = None
        if champion_student is not None:  # the champion on the very same test parts, new batches included
            champion_avg = sum(accuracy_row(champion_student, tests)) / len(tests)
            mlflow.log_metric("champion/avg_acc", champion_avg)
    version_tags = {
        "kdflow.learned_batches": ",".join(state.learned),
        "kdflow.avg_acc": f"{scores['avg_acc']:.6f}",
        "kdflow.forgetting": f"{scores['forgetting']:.6f}",
        "kdflow.bwt": f"{scores['bwt']:.6f}",
        "kdflow.state": STATE_ARTIFACT,
        "kdflow.base_version": champion_version or "",
        "kdflow.strategy": cfg.strategy,
        "kdflow.config_digest": cfg.digest(),
        "mlflow_run_id": run.info.run_id,
    }
    # the alias moves last: until then the champion (and its buffer) is untouched
    candidate = Candidate(
        info.model_uri,
        scores["avg_acc"],
        eval_digest(*tests, tokenizer=state.tokenizer),  # every test part seen, in order
        metric="average accuracy over all batches seen",
        tags=version_tags,
        champion_rescored=None if champion_avg is None else (champion_version, champion_avg),
    )
    decision = register_version(name, candidate, cfg.tolerance, run_id=run.info.run_id)
    version, promote, reason = decision.version, decision.promote, decision.reason
    client = mlflow.MlflowClient()
    client.set_tag(run.info.run_id, "kdflow.promoted", str(promote).lower())
    client.set_tag(run.info.run_id, "kdflow.decision", reason)
    log.info("retrain %s: registered %s v%s; %s", cfg.stream, name, version, reason)
    return RetrainResult(
        cfg.stream,
        "retrained",
        reason,
        new_batches=[b.id for b in new],
        learned_batches=state.learned,
        version=version,
        promoted=promote,
        champion_version=version if promote else champion_version,
        matrix=matrix,
        metrics=scores,
        run_id=run.info.run_id,
    )
