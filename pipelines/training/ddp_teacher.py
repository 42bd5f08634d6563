"""The teacher trained by several processes under torchrun (DistributedDataParallel).

`train_teacher` starts `torchrun --nproc_per_node N -m pipelines.training.ddp_teacher REQUEST.json`; every
rank trains on its shard, gradients are averaged by DDP (NCCL on GPUs, gloo on CPUs), and only
rank 0 logs to MLflow, saves the checkpoint and writes the result record.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from kdcore.data import DataBundle
from kdcore.distill import LabelsOnly
from kdcore.distributed import shard
from kdcore.forward_mode import forward_mode
from kdcore.train import fit
from pipelines.config.schema import PipelineConfig
from pipelines.results import TrainedModel
from pipelines.tracking.runs import tracking_uri
from pipelines.training.model_run import initial_model, settings_for, train_model
from pipelines.training.threads import choose_threads, model_parameters

ROOT = Path(__file__).resolve().parents[2]  # the checkout holding pipelines/


def backend_for(cfg: PipelineConfig) -> str:
    if cfg.teacher.distributed.backend != "auto":
        return cfg.teacher.distributed.backend
    return "nccl" if torch.cuda.is_available() and cfg.runtime.device in ("auto", "cuda") else "gloo"


def launch(
    cfg: PipelineConfig, data_path: str, parent_run_id: str, checkpoint: Path, extra_params: dict
) -> TrainedModel:
    """Run torchrun with teacher.distributed.nproc processes on this machine and return rank 0's record."""
    nproc = cfg.teacher.distributed.nproc
    with tempfile.TemporaryDirectory(prefix="kdflow-ddp-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(
            json.dumps(
                {
                    "config": cfg.model_dump(),
                    "data_path": data_path,
                    "parent_run_id": parent_run_id,
                    "checkpoint": str(checkpoint),
                    "extra_params": extra_params,
                    "result": str(result),
                }
            )
        )
        os.chmod(request, 0o600)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        if torch.device(settings_for(cfg.teacher.train, cfg).device).type == "cpu":  # nproc ranks share the cores
            teacher = model_parameters(cfg.teacher, DataBundle.load(data_path))
            env["OMP_NUM_THREADS"] = str(choose_threads(cfg, teacher, workers_per_run=nproc).threads)
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "pipelines.training.ddp_teacher",
            str(request),
        ]
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0 or not result.exists():
            raise RuntimeError(
                f"torchrun teacher training with teacher.distributed.nproc={nproc} failed "
                f"(exit {proc.returncode}); see its output above"
            )
        return TrainedModel.model_validate_json(result.read_text())


def train_rank(request: dict) -> None:
    cfg = PipelineConfig.model_validate(request["config"])
    backend = backend_for(cfg)
    dist.init_process_group(backend)
    try:
        rank, world, local_rank = dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        bundle = DataBundle.load(request["data_path"])
        bundle = dataclasses.replace(bundle, train=shard(bundle.train, rank, world, cfg.runtime.seed))
        # The global batch stays teacher.train.batch_size, so the run takes the steps a single process would.
        settings = settings_for(
            cfg.teacher.train, cfg, device=str(device), batch_size=max(1, cfg.teacher.train.batch_size // world)
        )

        mode = forward_mode(settings.precision, settings.channels_last, device, bundle.train.x.dim())

        def wrap(model: torch.nn.Module) -> torch.nn.Module:
            mode.prepare(
                model.to(device)
            )  # the memory format before DDP: it must not change under DDP's gradient buckets
            return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

        if rank == 0:
            import mlflow

            mlflow.set_tracking_uri(tracking_uri(cfg))
            extra = {
                **request["extra_params"],
                "teacher.distributed.world_size": world,
                "teacher.distributed.backend": backend,
            }
            result = train_model(
                "teacher",
                cfg.teacher,
                settings,
                cfg,
                bundle,
                LabelsOnly(),
                request["parent_run_id"],
                Path(request["checkpoint"]),
                extra_params=extra,
                wrap=wrap,
            )
            Path(request["result"]).write_text(result.model_dump_json())
        else:
            torch.manual_seed(settings.seed)
            model, _ = initial_model(cfg.teacher, bundle, cfg.data.download)
            fit(wrap(model), bundle.train, bundle.val, settings, LabelsOnly(), view=bundle.view)
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    train_rank(json.loads(Path(sys.argv[1]).read_text()))
