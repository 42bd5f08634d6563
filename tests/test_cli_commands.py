"""The command line tells what it can do: config show, list, models, --version, --dry-run, did-you-mean."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from flows.cli import command_names, main
from kdcore.datasets import DATASETS
from kdcore.distill import DISTILLERS
from kdcore.lifelong import STRATEGIES
from kdcore.models import MODELS
from pipelines.config.schema import load_config, preset_names


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_command_module_registers_a_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    for name in ("run", "config", "list", "models", "serve-flows", "serve", "deploy", "ui", "ingest", "retrain"):
        assert name in usage
    assert "run" in command_names() and not any(n.startswith("_") for n in command_names())


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("kdflow ")


def test_config_show_round_trips_as_a_preset(capsys, tmp_path):
    code, out, _ = run(capsys, "config", "show", "--preset", "fashion_mnist", "--set", "tune.n_trials=3")
    assert code == 0
    (tmp_path / "shown.yaml").write_text(out)
    again = load_config(str(tmp_path / "shown.yaml"))
    assert again == load_config("fashion_mnist", ["tune.n_trials=3"])
    assert yaml.safe_load(out)["tune"]["n_trials"] == 3


@pytest.mark.parametrize(
    "override, hint",
    [
        ("tune.n_trial=3", "(did you mean 'n_trials'?)"),
        ("tune.space.alpha.hihg=1", "(did you mean 'high'?)"),
        ("data.dataset=fashion_mnst", "(did you mean 'fashion_mnist'?)"),
        ("student.arch=mpl", "(did you mean 'mlp'?)"),
    ],
)
def test_unknown_keys_and_names_get_a_suggestion(capsys, override, hint):
    code, out, err = run(capsys, "config", "show", "--set", override)
    assert code == 2 and not out
    assert err.startswith("kdflow: invalid config:") and err.strip().endswith(hint)


def test_unknown_preset_gets_a_suggestion(capsys):
    code, _, err = run(capsys, "config", "show", "--preset", "digit")
    assert code == 2 and err.strip().endswith("(did you mean 'digits'?)")


@pytest.mark.parametrize(
    "kind, names",
    [
        ("presets", preset_names()),
        ("models", list(MODELS)),
        ("methods", list(DISTILLERS)),
        ("strategies", list(STRATEGIES)),
        ("datasets", list(DATASETS)),
    ],
)
def test_list_names_everything_registered_one_line_each(capsys, kind, names):
    code, out, _ = run(capsys, "list", kind)
    lines = [line for line in out.splitlines() if not line.startswith("(")]
    assert code == 0 and sorted(line.split()[0] for line in lines) == sorted(names)
    assert all(len(line.split()) > 2 for line in lines)  # every line says something of its name


def test_list_models_counts_parameters_at_the_default_width(capsys):
    from kdcore.models import build_model, count_parameters

    _, out, _ = run(capsys, "list", "models")
    mlp = next(line for line in out.splitlines() if line.startswith("mlp "))
    assert f"{count_parameters(build_model('mlp', (3, 32, 32), 10)):,} parameters" in mlp
    assert " image " in mlp and " text " in next(line for line in out.splitlines() if line.startswith("fasttext "))


def registered_store(root: Path) -> str:
    """A real SQLite MLflow store holding one registered model with two versions, v2 the champion.

    Sets MLflow's global tracking URI (and MLFLOW_TRACKING_URI): the caller restores both."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("kdflow-demo")
    client = mlflow.MlflowClient(uri)
    for acc, decision in ((0.91, "no champion yet"), (0.93, "test/acc 0.9300 beats champion v1")):
        with mlflow.start_run():
            info = mlflow.pytorch.log_model(
                torch.nn.Linear(2, 2), name="model", input_example=np.zeros((1, 2), "float32")
            )
        v = mlflow.register_model(info.model_uri, "kdflow-demo-student", tags={"test_acc": str(acc)})
        client.set_model_version_tag("kdflow-demo-student", v.version, "champion_decision", decision)
        client.set_registered_model_alias("kdflow-demo-student", "champion", v.version)
    return uri


def test_models_reads_versions_aliases_and_decisions_from_mlflow(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset after the store is made")  # restored after the test
    previous = mlflow.get_tracking_uri()
    try:
        registered_store(tmp_path / "store")  # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI
    finally:
        mlflow.set_tracking_uri(previous)  # later tests in this process see the store they had
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    code, out, _ = run(capsys, "models", "--store-dir", str(tmp_path / "store"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "kdflow-demo-student: 2 version(s)"
    assert lines[1].split()[:4] == ["v2", "champion", "acc", "93.00%"] and "beats champion v1" in lines[1]
    assert lines[2].split()[:2] == ["v1", "-"]
    code, _, err = run(capsys, "models", "nope", "--store-dir", str(tmp_path / "store"))
    assert code == 1 and "no registered model 'nope'" in err
    code, _, err = run(capsys, "models", "--store-dir", str(tmp_path / "empty"))
    assert code == 1 and "no MLflow store" in err


def test_dry_run_checks_without_training_or_caching(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "run", "--dry-run")
    assert code == 0 and out.strip().endswith("digits is ready to run")
    assert "data: digits readable, 10 classes" in out
    assert not (tmp_path / "mlruns" / "cache").exists() and not (tmp_path / "mlruns" / "mlflow.db").exists()
    code, out, _ = run(capsys, "run", "--dry-run", "--set", "student.train.weight_decay=0")
    assert code == 0 and "warm start moved into tune.space: weight_decay 0 -> 1e-06" in out
    code, _, err = run(capsys, "run", "--dry-run", "--set", "distill.method=at")  # AT on an MLP student
    assert code == 2 and "feature maps" in err
    code, _, err = run(capsys, "run", "--dry-run", "--preset", "fashion_mnist", "--set", f"data.root={tmp_path}/none")
    assert code == 1 and err.startswith("kdflow: data error: fashion_mnist files not found")
