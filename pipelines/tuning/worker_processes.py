"""Tuning workers as local processes, each with its share of the CPU threads."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pipelines.config.schema import PipelineConfig
from pipelines.training.threads import threads_for_tune_workers
from pipelines.tuning.worker import TuneJob

ROOT = Path(__file__).resolve().parents[2]  # the checkout holding pipelines/
log = logging.getLogger("kdflow")


class WorkerGroup(Protocol):
    """Workers already started on one study; the stage waits on the study and watches they still live."""

    def alive(self) -> int: ...

    def join(self) -> None: ...

    def stop(self) -> None: ...


LaunchWorkers = Callable[[PipelineConfig, TuneJob, int], WorkerGroup]


class LocalWorkers:
    def __init__(self, cfg: PipelineConfig, job: TuneJob, n: int, threads: int | None = None, pin_cores: bool = False):
        """`pin_cores` binds worker i to core i (taskset), so a measurement gives each worker exactly one core."""
        # n workers on one machine split its cores: without this each would spawn all of them and thrash.
        if threads is None:
            choice = threads_for_tune_workers(cfg, job.data_path, n)
            threads = choice.threads
            log.info("tune: %d local workers, %d torch thread(s) each (%s)", n, threads, choice.why)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.procs = []
        for i in range(n):
            request = {"config": cfg.model_dump(), "job": job.model_dump(), "worker": f"local-{i}", "threads": threads}
            pin = ["taskset", "-c", str(i % (os.cpu_count() or 1))] if pin_cores else []
            proc = subprocess.Popen(
                [*pin, sys.executable, "-m", "pipelines.tuning.worker"], stdin=subprocess.PIPE, env=env, text=True
            )
            proc.stdin.write(json.dumps(request))
            proc.stdin.close()
            self.procs.append(proc)

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def join(self) -> None:
        for p in self.procs:
            p.wait()
        failed = [f"local-{i} (exit {p.returncode})" for i, p in enumerate(self.procs) if p.returncode]
        if failed:
            raise RuntimeError(f"tuning workers failed: {', '.join(failed)}; see their output above")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
