"""End to end: the real CLI, a temporary Prefect server, a SQLite MLflow store and an Optuna study."""

import optuna
import pytest
from mlflow.tracking import MlflowClient

from kdcore.teacher_views import TeacherViews
from tests.conftest import TINY


def runs_by_name(client, experiment_id, parent_id):
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'", max_results=100)
    return {r.info.run_name: r for r in runs}


def test_kdflow_run_builds_the_run_tree_registry_and_study(kdflow, tmp_path):
    proc, summary = kdflow("run", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "teacher" in proc.stdout and "student" in proc.stdout  # the summary table
    # piped: one line per stage and per trial, no epoch lines, no Optuna or MLflow INFO lines (-v shows them)
    assert "epoch 1/" not in proc.stderr and "Trial 0 finished" not in proc.stderr
    assert "teacher: cnn_medium trained 3 epochs" in proc.stderr and "tune: trial 2" in proc.stderr

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    ml = summary["mlflow"]
    experiment = client.get_experiment(ml["experiment_id"])
    assert experiment.name == "kdflow-digits"
    parent = client.get_run(ml["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["prefect.flow_run_id"]
    assert parent.data.params["teacher.arch"] == "cnn_medium" and parent.data.params["distill.method"] == "kd"

    children = runs_by_name(client, ml["experiment_id"], ml["parent_run_id"])
    trials = {n: r for n, r in children.items() if n.startswith("trial-")}
    assert {"teacher", "baseline", "student", "evaluation"} <= set(children)
    assert len(trials) == 3
    for name in ("teacher", "baseline", "student"):
        run = children[name]
        assert run.info.status == "FINISHED"
        assert run.data.params["student.arch"] == "mlp"
        history = client.get_metric_history(run.info.run_id, "val/acc")
        assert [m.step for m in history] == [1, 2, 3]
        assert int(run.data.params["model.parameters"]) == summary["models"][name]["parameters"]
    logged = {m.source_run_id for m in client.search_logged_models([ml["experiment_id"]])}
    assert {children[n].info.run_id for n in ("teacher", "baseline", "student")} <= logged
    for trial in trials.values():
        assert {"temperature", "alpha", "lr", "weight_decay"} <= set(trial.data.params)
        assert trial.data.tags["trial_state"] in {"COMPLETE", "PRUNED"}
        assert client.get_metric_history(trial.info.run_id, "val/acc")[0].step == 1
    evaluation = children["evaluation"].data.metrics
    for role in ("teacher", "baseline", "student"):
        assert evaluation[f"test/{role}_acc"] == summary["models"][role]["test_acc"]
    assert summary["models"]["student"]["parameters"] * 5 <= summary["models"]["teacher"]["parameters"]

    # KD's gain over labels-only, in points: test accuracies from the evaluation, validation from the baseline's
    # best epoch and the search's best trial; on the parent run too.
    gain, test = summary["kd_gain"], {r: summary["models"][r]["test_acc"] for r in ("student", "baseline")}
    assert gain["test"] == pytest.approx(100 * (test["student"] - test["baseline"]))
    baseline_val = max(m.value for m in client.get_metric_history(children["baseline"].info.run_id, "val/acc"))
    assert (
        gain["baseline_val_acc"] == pytest.approx(baseline_val) and gain["student_val_acc"] == summary["best_val_acc"]
    )
    assert gain["val"] == pytest.approx(100 * (summary["best_val_acc"] - baseline_val))
    assert parent.data.metrics["kd_gain/test"] == pytest.approx(gain["test"])
    assert parent.data.metrics["kd_gain/val"] == pytest.approx(gain["val"])

    name = "kdflow-digits-student"
    assert ml["registered_model"] == name
    champion = client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == ml["version"] == "1"
    # the better of the KD student and the labels-only baseline on validation is the one registered, and it says so
    role = "baseline" if gain["baseline_val_acc"] > gain["student_val_acc"] else "student"
    assert summary["registered"]["role"] == champion.tags["kdflow.role"] == role
    assert champion.tags["mlflow_run_id"] == children[role].info.run_id
    assert champion.tags["kdflow.eval_digest"] == children["evaluation"].data.params["eval.digest"]
    assert client.get_run(ml["parent_run_id"]).data.tags["kdflow.promotion"].startswith(f"{name} v1 is now champion")
    assert "v1 is now champion (no champion before)" in proc.stdout
    assert f"MLflow UI: http://127.0.0.1:5000/#/experiments/{ml['experiment_id']}/runs/{ml['parent_run_id']}" in (
        proc.stdout
    )

    study = optuna.load_study(
        study_name=summary["optuna"]["study_name"], storage=f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    )
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 3
    assert {t.user_attrs["mlflow_run_id"] for t in finished} == {r.info.run_id for r in trials.values()}
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 3
    assert set(summary["stage_seconds"]) >= {"prepare_data", "train_teacher", "tune_student", "evaluate", "register"}

    # The same study name resumes (no new trials); the teacher is reused; the champion moves only if beaten.
    proc, again = kdflow("run", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert again["optuna"]["study_name"] == summary["optuna"]["study_name"]
    assert len(optuna.load_study(study_name=again["optuna"]["study_name"], storage=study._storage).trials) == 3
    assert again["models"]["teacher"]["mlflow_run_id"] == summary["models"]["teacher"]["mlflow_run_id"]
    assert again["mlflow"]["version"] == "2"
    # the same test data: compared with v1, and promoted when at least as good (tolerance 0)
    moved = again["registered"]["test_acc"] >= summary["registered"]["test_acc"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == ("2" if moved else "1")
    assert again["champion"]["moved"] is moved and again["champion"]["comparable"]


def test_kdflow_run_replays_cached_teacher_views_under_augmentation(kdflow, tmp_path):
    proc, summary = kdflow("run", *TINY, "--set", "data.augment=crop_flip", "--set", "distill.teacher_views=4")
    assert proc.returncode == 0, proc.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    ml = summary["mlflow"]
    children = runs_by_name(client, ml["experiment_id"], ml["parent_run_id"])
    trials = [r for n, r in children.items() if n.startswith("trial-")]
    assert len(trials) == 3 and children["student"].info.status == "FINISHED"
    for run in [children["student"], *trials]:  # every student trained on the replayed views, no teacher online
        assert run.data.params["distill.soft_targets"] == "cached views"
    assert children["student"].data.params["distill.teacher_views"] == "4"
    cache = tmp_path / "mlruns" / "cache"
    views = list((cache / "views").glob("*.pt"))
    assert len(views) == 1 and TeacherViews.load(views[0]).k == 4  # computed once, shared by the trials and the student
    assert not list((cache / "logits").glob("*.pt"))  # plain-image logits would be wrong targets here
