"""runtime.threads: each training process takes its share of the host's cores, small models one thread."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipelines.config.schema import ConfigError, load_config
from pipelines.stages import prepare_data
from pipelines.training.threads import (
    PROCESSES_ENV,
    SMALL_MODEL_PARAMETERS,
    auto_threads,
    choose_threads,
    kdflow_training_processes,
    processes_on_host,
    threads_for_run,
    threads_for_tune_workers,
)
from tests.conftest import TINY

CORES = os.cpu_count() or 1
BIG = SMALL_MODEL_PARAMETERS * 10


def test_auto_shares_the_cores_among_the_processes_and_gives_small_models_one_thread():
    assert auto_threads(16, 1, BIG) == 16
    assert auto_threads(16, 4, BIG) == 4
    assert auto_threads(16, 3, BIG) == 5  # never more threads than cores in all
    assert auto_threads(2, 3, BIG) == 1  # more processes than cores: still one each
    assert auto_threads(16, 1, SMALL_MODEL_PARAMETERS - 1) == 1
    assert auto_threads(16, 2, None) == 8  # size unknown: the share alone


def fake_proc(root: Path, commands: dict[int, list[str]]) -> Path:
    for pid, argv in commands.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    (root / "self").mkdir()  # /proc has non-pid entries too
    return root


def test_without_a_stated_count_the_kdflow_runs_on_the_host_are_counted(tmp_path):
    proc = fake_proc(
        tmp_path / "proc",
        {
            100: ["/usr/bin/python3", "/usr/local/bin/kdflow", "run", "--set", "tune.n_trials=3"],
            101: ["python", "-m", "flows.cli", "run"],
            102: ["python", "-m", "flows.cli", "retrain", "--pipeline", "digits"],
            103: ["python", "-m", "flows.cli", "serve"],  # serves, does not train
            104: ["python", "-m", "pipelines.tuning.worker"],  # another run's local tuning worker
            105: ["python", "-u", "-m", "pipelines.training.ddp_teacher", "/tmp/request.json"],  # a DDP rank
            106: ["python", "-m", "pytest", "tests/test_kdflow_ui.py"],
            107: [
                "/usr/bin/python3",
                "-m",
                "torch.distributed.run",
                "--standalone",
                "-m",
                "pipelines.training.ddp_teacher",
            ],
        },
    )
    assert kdflow_training_processes(proc) == {100, 101, 102, 104, 105}  # torchrun's agent only waits
    assert processes_on_host(run_pid=100, env={}, proc=proc) == 5  # this run is one of them
    assert processes_on_host(run_pid=999, env={}, proc=proc) == 6  # a flow a Prefect worker started: itself too
    assert processes_on_host(workers_per_run=2, run_pid=100, env={}, proc=proc) == 6  # it waits, 2 workers train
    assert processes_on_host(run_pid=999, env={}, proc=tmp_path / "no-proc") == 1  # no /proc (macOS): alone


def test_the_environment_variable_states_the_runs_per_host(tmp_path):
    proc = fake_proc(tmp_path / "proc", {100: ["kdflow", "run"], 101: ["kdflow", "run"]})
    assert processes_on_host(run_pid=100, env={PROCESSES_ENV: "4"}, proc=proc) == 4  # stated beats counted
    assert processes_on_host(workers_per_run=3, env={PROCESSES_ENV: "2"}, proc=proc) == 6
    for bad in ("0", "-1", "two"):
        with pytest.raises(ConfigError, match=f"{PROCESSES_ENV}='{bad}' must be a whole number of processes"):
            processes_on_host(env={PROCESSES_ENV: bad}, proc=proc)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="counting reads Linux's /proc")
def test_a_real_kdflow_run_process_is_counted(tmp_path):
    script = tmp_path / "kdflow"  # looks like the console script `kdflow run` to /proc
    script.write_text("import time\ntime.sleep(60)\n")
    child = subprocess.Popen([sys.executable, str(script), "run", "--set", "tune.n_trials=3"])
    cmdline = Path(f"/proc/{child.pid}/cmdline")
    try:
        for _ in range(200):  # until the forked child has exec'd: before that, /proc shows pytest's command line
            if str(script).encode() in cmdline.read_bytes():
                break
            time.sleep(0.05)
        assert child.pid in kdflow_training_processes()
        assert os.getpid() not in kdflow_training_processes()  # pytest does not train
    finally:
        child.kill()
        child.wait()
    assert child.pid not in kdflow_training_processes()


def test_choices_from_the_config_the_models_and_tune_n_workers(tmp_path, monkeypatch):
    monkeypatch.setenv(PROCESSES_ENV, "1")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    store = [f"runtime.store_dir={tmp_path}"]
    cfg = load_config("digits", store)  # teacher cnn_medium(32): 159,850 parameters; student mlp(32): 2,410
    data = prepare_data(cfg)
    assert threads_for_run(cfg, data.path).threads == CORES  # the teacher is large enough for every core
    assert threads_for_tune_workers(cfg, data.path, 2).threads == 1  # the MLP student: one thread

    big_student = load_config("digits", [*store, "student.arch=cnn_medium", "student.width=32", "tune.n_workers=2"])
    assert threads_for_tune_workers(big_student, data.path, 2).threads == max(1, CORES // 2)
    monkeypatch.setenv(PROCESSES_ENV, "2")
    assert threads_for_tune_workers(big_student, data.path, 2).threads == max(1, CORES // 4)

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a person's cap holds under auto
    assert choose_threads(cfg, BIG).threads == 1
    explicit = load_config("digits", [*store, "runtime.threads=3"])
    assert choose_threads(explicit, 10, workers_per_run=8).threads == 3  # a number is taken as it is


@pytest.mark.parametrize("value", ["0", "-1", "many", "true", "2.5"])
def test_invalid_threads_fail_validation_in_one_sentence(value):
    with pytest.raises(ConfigError) as e:
        load_config("digits", [f"runtime.threads={value}"])
    assert str(e.value) == (
        "invalid config: runtime.threads: Value error, choose auto or a whole number of threads from 1 to 4096"
    )


def test_threads_accept_auto_or_a_count():
    assert load_config("digits").runtime.threads == "auto"
    assert load_config("digits", ["runtime.threads=4"]).runtime.threads == 4
    assert load_config("digits", ["runtime.threads=4"]).flat()["runtime.threads"] == 4


def test_kdflow_run_logs_the_threads_it_used(kdflow, tmp_path, monkeypatch):
    monkeypatch.setenv(PROCESSES_ENV, "2")  # as a worker host running two flow runs at once states it
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    proc, summary = kdflow("run", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    share = max(1, CORES // 2)
    assert f"run: {share} torch thread(s) (auto: {CORES} cores, 2 kdflow training process(es) on this host" in (
        proc.stderr
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    ml = summary["mlflow"]
    parent = client.get_run(ml["parent_run_id"])
    assert parent.data.params["runtime.threads"] == "auto"
    assert parent.data.params["runtime.threads_used"] == str(share)
    trials = client.search_runs([ml["experiment_id"]], f"tags.mlflow.parentRunId = '{ml['parent_run_id']}'")
    trials = [r for r in trials if r.info.run_name.startswith("trial-")]
    assert trials and all(r.data.params["runtime.threads_used"] == str(share) for r in trials)
