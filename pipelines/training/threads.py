"""How many torch threads a training process takes, so kdflow processes sharing a host do not thrash.

Two runs at once on a 2-core host with torch's default threads took 165 s each against 58.5 s alone
(issue 17): every process spun up one thread per core. `runtime.threads=auto` gives each process its
share of the cores, and one thread to a model too small for a second to pay.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from kdcore.data import DataBundle
from kdcore.models import build_model, count_parameters
from pipelines.config.schema import ConfigError, ModelConfig, PipelineConfig

log = logging.getLogger("kdflow")

PROCESSES_ENV = "KDFLOW_PROCESSES_PER_HOST"  # a worker host states how many runs it runs at once (its --limit)
# Below this a training step is too short for a second thread to pay: on 2 cores a second thread trained the
# presets' MLPs (2,410 and 50,890 parameters) no faster; the digits teacher (159,850) gains ~5 % on a quiet box
# (benchmarks/threads_by_model_size.py, issue 17).
SMALL_MODEL_PARAMETERS = 100_000
TRAINING_COMMANDS = ("run", "retrain")  # `kdflow run` / `kdflow retrain` train; serve, ui, predict barely do
TRAINING_MODULES = (
    "pipelines.tuning.worker",
    "pipelines.training.ddp_teacher",
)  # a run's local tuning workers, DDP ranks


def auto_threads(cores: int, processes: int, parameters: int | None = None) -> int:
    """Each process's share of the cores; one thread for a small model."""
    if parameters is not None and parameters < SMALL_MODEL_PARAMETERS:
        return 1
    return max(1, cores // max(1, processes))


def is_kdflow_training(argv: list[str]) -> bool:
    """`kdflow run ...`, `python -m flows.cli run ...`, `python -m pipelines.tuning.worker`: a process that trains."""
    for i, arg in enumerate(argv[:4]):  # the interpreter, maybe -u / -m, then the program
        if arg in TRAINING_MODULES:
            return True
        if arg == "flows.cli" or Path(arg).name == "kdflow":
            rest = [a for a in argv[i + 1 :] if not a.startswith("-")]
            return bool(rest) and rest[0] in TRAINING_COMMANDS
    return False


def kdflow_training_processes(proc: Path = Path("/proc")) -> set[int]:
    """Pids of the kdflow processes that train on this host, read from /proc (none where there is no /proc)."""
    pids = set()
    for entry in proc.glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if is_kdflow_training(argv):
            pids.add(int(entry.name))
    return pids


def processes_on_host(
    workers_per_run: int = 1,
    run_pid: int | None = None,
    env: Mapping[str, str] = os.environ,
    proc: Path = Path("/proc"),
) -> int:
    """Training processes sharing this host once this run's `workers_per_run` processes train.

    KDFLOW_PROCESSES_PER_HOST (runs at once, a worker host's --limit) x workers_per_run where the deployer set
    it; else the other kdflow training processes counted in /proc (`run_pid`, this run's own process, is not
    among them: it waits while its workers train) + workers_per_run. A flow started by a Prefect worker does
    not look like `kdflow run` in /proc: that is what the variable is for.
    """
    stated = env.get(PROCESSES_ENV, "").strip()
    if stated:
        if not stated.isdigit() or int(stated) < 1:
            raise ConfigError(f"{PROCESSES_ENV}={stated!r} must be a whole number of processes, 1 or more, e.g. 2")
        return int(stated) * workers_per_run
    return len(kdflow_training_processes(proc) - {run_pid or os.getpid()}) + workers_per_run


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    why: str


def model_parameters(model: ModelConfig, bundle: DataBundle) -> int:
    """Parameters of `model` on this data, counted without allocating its weights."""
    if model.arch == "hf":
        from pipelines.teachers.hf_teacher import hf_parameters

        return hf_parameters(model.pretrained, bundle.num_classes)
    with torch.device("meta"):
        built = build_model(
            model.arch, bundle.input_shape, bundle.num_classes, **model.options(), **bundle.model_options()
        )
    return count_parameters(built)


def choose_threads(
    cfg: PipelineConfig, parameters: int | None, workers_per_run: int = 1, run_pid: int | None = None
) -> ThreadChoice:
    """runtime.threads as a number of torch threads; `parameters`: the largest model this process trains."""
    if cfg.runtime.threads != "auto":
        return ThreadChoice(cfg.runtime.threads, "runtime.threads")
    return auto_choice(parameters, workers_per_run, run_pid)


def auto_choice(parameters: int | None, workers_per_run: int = 1, run_pid: int | None = None) -> ThreadChoice:
    cores = os.cpu_count() or 1
    processes = processes_on_host(workers_per_run, run_pid)
    threads = auto_threads(cores, processes, parameters)
    why = f"auto: {cores} cores, {processes} kdflow training process(es) on this host"
    if parameters is not None:
        why += f", model of {parameters:,} parameters"
    capped = os.environ.get("OMP_NUM_THREADS", "").strip()
    if capped.isdigit() and 0 < int(capped) < threads:  # a person's OMP_NUM_THREADS=1 means one
        threads, why = int(capped), why + f", OMP_NUM_THREADS={capped}"
    return ThreadChoice(threads, why)


def use_threads(choice: ThreadChoice, who: str) -> int:
    torch.set_num_threads(choice.threads)
    log.info("%s: %d torch thread(s) (%s)", who, choice.threads, choice.why)
    return choice.threads


def threads_for_run(cfg: PipelineConfig, data_path: str) -> ThreadChoice:
    """A pipeline run's process trains the teacher and the students: the larger decides."""
    bundle = DataBundle.load(data_path)
    return choose_threads(cfg, max(model_parameters(cfg.teacher, bundle), model_parameters(cfg.student, bundle)))


def threads_for_tune_workers(cfg: PipelineConfig, data_path: str, workers: int) -> ThreadChoice:
    """Each of `workers` local tuning processes, started by this run, trains students."""
    return choose_threads(cfg, model_parameters(cfg.student, DataBundle.load(data_path)), workers_per_run=workers)
