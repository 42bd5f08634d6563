"""The flow run's summary artifact and the command line's progress bars, rendered from real values."""

import io

from rich.console import Console

from flows.artifacts import run_link, summary_markdown
from flows.cli.progress import progress_bars, wants_bars
from pipelines.training.progress import report_epoch, report_trials

SUMMARY = {
    "pipeline": "digits",
    "models": {
        "teacher": {"arch": "cnn_medium", "test_acc": 0.99722, "parameters": 159850, "mlflow_run_id": "a" * 32}
        | {"size_mb": 0.6479, "latency_ms": 0.25, "latency_p95_ms": 0.31, "throughput": 7762.2},
        "baseline": {"arch": "mlp", "test_acc": 0.96111, "parameters": 2410, "mlflow_run_id": "b" * 32}
        | {"size_mb": 0.0117, "latency_ms": 0.037, "latency_p95_ms": 0.05, "throughput": 1381176.0},
        "student": {"arch": "mlp", "test_acc": 0.98333, "parameters": 2410, "mlflow_run_id": "c" * 32}
        | {"size_mb": 0.0117, "latency_ms": 0.036, "latency_p95_ms": 0.053, "throughput": 1002238.0},
    },
    "evidence": {
        "size_ratio": 55.18,
        "latency_ratio": 6.86,
        "throughput_ratio": 129.1,
        "acc_points": 1.389,
        "device_name": "Intel(R) Xeon(R) Processor, torch threads: 1",
    },
    "best_params": {"temperature": 3.2, "alpha": 0.71, "lr": 0.0031, "weight_decay": 1.5e-4},
    "best_val_acc": 0.985,
    "kd_gain": {"val": 1.2, "test": 2.222, "student_val_acc": 0.985, "baseline_val_acc": 0.973},
    "trials": {"complete": 11, "pruned": 5, "requested": 16},
    "mlflow": {
        "experiment_id": "3",
        "parent_run_id": "p" * 32,
        "evaluation_run_id": "e" * 32,
        "registered_model": "kdflow-digits-student",
        "version": "2",
    },
    "optuna": {"storage": "sqlite:///x/optuna.db", "study_name": "kdflow-digits-abc"},
    "registered": {"role": "student", "choice": "the KD student: validation acc 0.9850 vs ...", "test_acc": 0.9833},
    "champion": {"moved": True, "reason": "no champion before", "comparable": True, "before": None},
    "teacher_reused": True,
}


def test_summary_has_models_side_by_side_params_and_links_on_a_tracking_server():
    md = summary_markdown(SUMMARY, "http://127.0.0.1:5000/")
    assert (
        "| teacher | cnn_medium | 99.72% | 159,850 | 0.648 | 0.250 (0.310) | 7,762 | "
        "[aaaaaaaa](http://127.0.0.1:5000/#/experiments/3/runs/" + "a" * 32 + ") |" in md
    )
    assert "| student | mlp | 98.33% | 2,410 | 0.012 | 0.036 (0.053) | 1,002,238 |" in md
    assert "| baseline | mlp | 96.11% | 2,410 |" in md
    assert (  # the headline, with the device the times were measured on
        "**The student is 55.2x smaller and 6.9x faster (one sample; 129.1x the throughput at batch 256) than its "
        "teacher, 1.39 points of accuracy apart (the teacher ahead); measured on Intel(R) Xeon(R) Processor, "
        "torch threads: 1.**" in md
    )
    assert "| temperature | 3.2 |" in md and "| weight_decay | 0.00015 |" in md
    assert "11 complete, 5 pruned of 16 trials" in md and "**reused**" in md
    assert "validation +1.20 points, test +2.22 points" in md  # KD's gain over labels-only
    assert "(http://127.0.0.1:5000/#/experiments/3/runs/" + "p" * 32 + ")" in md  # the parent run


def test_summary_links_a_local_store_to_the_mlflow_ui_of_kdflow_ui():
    md = summary_markdown(SUMMARY, "sqlite:////tmp/mlruns/mlflow.db")
    assert "[aaaaaaaa](http://127.0.0.1:5000/#/experiments/3/runs/" + "a" * 32 + ")" in md
    assert "MLflow UI of `kdflow ui`" in md
    assert run_link("https://mlflow.example.org", "1", "r") == "[r](https://mlflow.example.org/#/experiments/1/runs/r)"
    assert run_link("postgresql://db/mlflow", "1", "r") == "`r`"  # no UI known for a bare database


def test_links_never_carry_credentials():
    link = run_link("https://kd:S3cretPW2@mlflow.example.org:8443/base/", "1", "r")
    assert link == "[r](https://mlflow.example.org:8443/base/#/experiments/1/runs/r)"


def test_summary_says_which_model_was_registered_and_that_v1_is_now_champion():
    md = summary_markdown(SUMMARY, None)
    assert "registered kdflow-digits-student v2, the KD student: validation acc 0.9850" in md
    assert "v2 is now champion (no champion before)" in md and "no champion yet" not in md


def test_progress_bars_show_epochs_and_trials_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress_bars(console):
        for epoch in (1, 2, 3):
            report_epoch("teacher", epoch, 3, {"val/acc": 0.9 + epoch / 100})
        report_trials(0, 4, None)
        report_trials(2, 4, 0.9712)
    text = out.getvalue()
    assert "teacher" in text and "3/3" in text and "val/acc 0.9300" in text
    assert "trials" in text and "2/4" in text and "best val/acc 0.9712" in text


def test_no_bars_when_output_is_not_a_terminal():
    assert not wants_bars(io.StringIO())
    with progress_bars() as bars:  # pytest captures stderr: not a terminal
        assert bars is None
        report_trials(1, 2, 0.5)  # nobody listens, nothing breaks
