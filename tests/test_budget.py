"""Distil to a budget: the student's size in the search, accuracy-versus-cost fronts, register.budget.

Real Optuna SQLite storage, real SQLite MLflow store, digits, one teacher shared by the module, 1-2 epochs.
"""

from __future__ import annotations

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from flows.cli import main
from pipelines.config.schema import ConfigError, load_config
from pipelines.preflight import check_search
from pipelines.stages import (
    compute_teacher_logits,
    distill_final,
    evaluate_models,
    prepare_data,
    register_student,
    train_baseline,
    train_teacher,
    tune_student,
)
from pipelines.tuning import student_cost
from pipelines.tuning.method_fit import check_methods_fit
from pipelines.tuning.pareto_front import BudgetUnreachable, non_dominated, points_of
from pipelines.tuning.size_search_fit import check_size_search
from pipelines.tuning.study import final_student

State = optuna.trial.TrialState
BASE = ["teacher.arch=cnn_small", "teacher.train.epochs=1", "runtime.device=cpu", "student.train.epochs=2"]


def mlp_params(width: int) -> int:
    """Digits (64 pixels, 10 classes) through one hidden layer of `width`."""
    return 64 * width + width + width * 10 + 10


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Data, teacher and cached logits once for the module; each test opens its own study."""
    root = tmp_path_factory.mktemp("budget")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    common = [*BASE, f"runtime.store_dir={root / 'store'}", f"runtime.tracking_uri={uri}"]
    cfg = load_config("digits", common)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_name="setup") as run:
        data = prepare_data(cfg)
        teacher = train_teacher(cfg, data, run.info.run_id)
        logits = compute_teacher_logits(cfg, data, teacher)
    return {"common": common, "uri": uri, "data": data, "teacher": teacher, "logits": logits, "root": root}


def search(store, *overrides: str):
    """(cfg, tune result, study, parent run id) of a search with these overrides."""
    cfg = load_config("digits", [*store["common"], *overrides])
    mlflow.set_tracking_uri(store["uri"])
    with mlflow.start_run(run_name="parent") as parent:
        tuned = tune_student(cfg, store["data"], store["teacher"], store["logits"], parent.info.run_id)
    study = optuna.load_study(study_name=tuned.study_name, storage=f"sqlite:///{store['root'] / 'store' / 'optuna.db'}")
    return cfg, tuned, study, parent.info.run_id


def test_two_objectives_map_a_front_of_non_dominated_points_logged_on_the_parent_run(store):
    cfg, tuned, study, parent = search(
        store,
        "tune.objectives=[accuracy, params]",
        "tune.student_archs=[mlp, cnn_small]",
        "tune.space.width={low: 2, high: 48, log: true}",
        "tune.n_trials=6",
        "tune.epochs=2",
    )
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    complete = study.get_trials(states=(State.COMPLETE,))
    assert len(complete) == 6  # unpruned: Optuna cannot prune two objectives
    assert len({(t.params.get("student_arch"), t.params["width"]) for t in complete}) > 1  # sizes vary
    for t in complete:  # the second objective is the measured parameter count of the trial's student
        assert t.values[1] == t.user_attrs["cost.params"]
    front = [(row["val/acc"], row["params"]) for row in tuned.front]
    assert front
    for acc, cost in front:  # no complete trial beats a front point on both objectives
        assert not any(
            t.values[0] >= acc + 1e-4 and t.values[1] <= cost or t.values[0] >= acc and t.values[1] < cost
            for t in complete
        )
    assert {p.trial for p in non_dominated(points_of(study, "params"))} == {row["trial"] for row in tuned.front}
    best = max(tuned.front, key=lambda row: (row["val/acc"], -row["params"]))
    assert tuned.chosen_trial == best["trial"] and "most accurate point" in tuned.choice
    artifacts = {a.path for a in MlflowClient().list_artifacts(parent, "pareto")}
    assert artifacts == {"pareto/front.png", "pareto/front.md", "pareto/front.csv"}
    table = mlflow.artifacts.load_text(f"runs:/{parent}/pareto/front.md")
    assert f"Chosen: trial {tuned.chosen_trial}" in table and "mlflow_run_id" in table


def test_a_budget_picks_the_most_accurate_trial_within_it_and_that_student_is_registered(store):
    budget = mlp_params(12)
    cfg, tuned, study, parent = search(
        store,
        f"register.budget=params<={budget}",
        "tune.space.width={low: 4, high: 64, log: true}",
        "tune.n_trials=6",
        "tune.epochs=2",
        "tune.pruner=none",
    )
    assert len(study.directions) == 1  # a budget alone keeps one objective
    trials = study.get_trials(states=(State.COMPLETE, State.PRUNED))
    within = [t for t in trials if t.user_attrs["cost.params"] <= budget]
    over = [t for t in trials if t.user_attrs["cost.params"] > budget]
    assert within and over  # the warm start (width 32) is over the budget
    for t in over:  # infeasible for the sampler and never trained
        assert t.state == State.PRUNED and list(t.system_attrs["constraints"]) == [t.user_attrs["cost.params"] - budget]
        assert "val/acc" not in MlflowClient().get_run(t.user_attrs["mlflow_run_id"]).data.metrics
    best = max((t for t in within if t.state == State.COMPLETE), key=lambda t: (t.value, -t.user_attrs["cost.params"]))
    assert tuned.chosen_trial == best.number and tuned.student["width"] == best.params["width"]
    assert tuned.costs["params"] == mlp_params(best.params["width"]) <= budget
    assert f"within register.budget=params<={budget}" in tuned.choice

    data, teacher = store["data"], store["teacher"]
    with mlflow.start_run(run_id=parent):
        student = distill_final(cfg, data, store["logits"], tuned, parent, teacher)
        baseline = train_baseline(cfg, data, parent, final_student(cfg, tuned))
        ev = evaluate_models(cfg, data, [teacher, baseline, student], parent)
        reg = register_student(cfg, data, student, baseline, tuned, ev, parent)
    assert student.parameters == baseline.parameters == tuned.costs["params"]  # KD and labels-only at one size
    version = MlflowClient().get_model_version(reg.name, reg.version)
    run = MlflowClient().get_run(version.tags["mlflow_run_id"])
    assert int(run.data.params["model.parameters"]) == tuned.costs["params"]
    assert run.data.params["student.width"] == str(best.params["width"])


def test_a_budget_no_trial_meets_stops_with_the_smallest_cost_and_registers_nothing(store):
    with pytest.raises(BudgetUnreachable, match=r"smallest student tried costs (\d+) parameters") as error:
        search(
            store,
            "register.budget=params<=50",
            "tune.space.width={low: 1, high: 8}",
            "tune.n_trials=3",
            "tune.epochs=1",
            "tune.study_name=unreachable",
        )
    study = optuna.load_study(study_name="unreachable", storage=f"sqlite:///{store['root'] / 'store' / 'optuna.db'}")
    smallest = min(t.user_attrs["cost.params"] for t in study.trials)
    assert f"costs {smallest:g} parameters" in str(error.value) and len(str(error.value).splitlines()) == 1
    assert all(t.state == State.PRUNED for t in study.trials)  # none trained
    assert isinstance(error.value, ConfigError)  # the command line's exit 2; the stages after tuning never start


def test_latency_is_measured_once_per_architecture_and_size(store):
    before = len(student_cost.latency_measurements)
    cfg, tuned, study, _ = search(
        store,
        "tune.objectives=[accuracy, latency_ms]",
        "tune.space.width={low: 8, high: 9}",
        "tune.n_trials=5",
        "tune.epochs=1",
    )
    measured = student_cost.latency_measurements[before:]
    sizes = {t.params["width"] for t in study.trials}
    assert len(study.trials) == 5 and len(measured) == len(sizes) == len(set(measured))
    for width in sizes:  # every trial of one size carries the one measurement
        values = {t.user_attrs["cost.latency_ms"] for t in study.trials if t.params["width"] == width}
        assert len(values) == 1 and values.pop() > 0
    assert {k for k in study.user_attrs if k.startswith("latency_ms/")} == set(measured)


def test_a_search_without_size_cost_or_budget_is_unchanged(store):
    cfg, tuned, study, parent = search(store, "tune.n_trials=2", "tune.epochs=1")
    assert len(study.directions) == 1 and isinstance(study.pruner, optuna.pruners.MedianPruner)
    assert tuned.student is None and tuned.choice is None and tuned.front == [] and tuned.costs == {}
    assert tuned.best_value == study.best_value and tuned.best_params == {
        k: v for k, v in study.best_params.items() if k != "method"
    }
    assert not {k for t in study.trials for k in t.user_attrs if k.startswith("cost.")}
    assert MlflowClient().list_artifacts(parent, "pareto") == []


def test_bad_budgets_objectives_and_sizes_fail_in_one_sentence(store, capsys, tmp_path, monkeypatch):
    for budget, words in (
        ("params<60000", "is no budget; write COST<=LIMIT"),
        ("bytes<=5", "is no budget"),
        ("params<=0", "the limit must be a positive number"),
    ):
        with pytest.raises(ConfigError, match=words):
            load_config("digits", [f"register.budget={budget}"])
    with pytest.raises(ConfigError, match=r"must be \[accuracy\] or \[accuracy, COST\]"):
        load_config("digits", ["tune.objectives=[params]"])
    with pytest.raises(ConfigError, match="a text model, but data.dataset=digits is image"):
        load_config("digits", ["tune.student_archs=[mlp, textcnn]"])
    with pytest.raises(ConfigError, match="no searched student \\(cnn_small\\) has a depth"):
        load_config("digits", ["tune.student_archs=[cnn_small]", "tune.space.depth={low: 1, high: 3}"])

    from kdcore.data import DataBundle

    bundle = DataBundle.load(store["data"].path)
    thin = load_config("digits", ["tune.student_archs=[resnet8x4]", "tune.space.width={low: 1, high: 8}"])
    with pytest.raises(ConfigError, match=r"the smallest searched student, resnet8x4 width=1.*, cannot be built"):
        check_size_search(thin, bundle)  # its stem has width // 2 = 0 channels
    busy = load_config("digits", ["runtime.device=cpu", "tune.objectives=[accuracy, latency_ms]", "tune.n_workers=2"])
    with pytest.raises(ConfigError, match="cannot be measured with tune.n_workers=2 on a CPU"):
        check_size_search(busy, bundle)

    monkeypatch.chdir(tmp_path)  # the command line: exit 2, one line, before any work
    assert main(["run", "--dry-run", "--set", "register.budget=params<60000"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "register.budget" in err


def test_kdflow_run_registers_the_chosen_size_says_why_and_refuses_a_budget_no_trial_meets(kdflow, tmp_path):
    size = ["--set", "tune.space.width={low: 4, high: 48, log: true}", "--set", "teacher.arch=cnn_small"]
    tiny = ["--set", "teacher.train.epochs=1", "--set", "student.train.epochs=2", "--set", "tune.epochs=2"]
    budget = mlp_params(16)
    proc, summary = kdflow(
        "run", *size, *tiny, "--set", "tune.n_trials=4", "--set", f"register.budget=params<={budget}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = summary["student_choice"]
    assert f"within register.budget=params<={budget}" in chosen["reason"] and chosen["costs"]["params"] <= budget
    models = summary["models"]
    assert models["student"]["parameters"] == models["baseline"]["parameters"] == chosen["costs"]["params"]
    assert "chosen student mlp width=" in proc.stdout and f"from trial {chosen['trial']}" in proc.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert {a.path for a in client.list_artifacts(summary["mlflow"]["parent_run_id"], "pareto")} >= {"pareto/front.png"}
    versions = client.search_model_versions("name='kdflow-digits-student'")

    proc, summary = kdflow("run", *size, *tiny, "--set", "tune.n_trials=2", "--set", "register.budget=params<=50")
    assert proc.returncode == 2 and summary is None
    assert "no trial fits register.budget=params<=50: the smallest student tried costs" in proc.stderr
    assert len(client.search_model_versions("name='kdflow-digits-student'")) == len(versions)  # nothing new


def test_a_resnet_depth_range_searches_only_its_6n_plus_2_depths_and_one_without_any_is_refused(store):
    with pytest.raises(ConfigError, match=r"tune.space.depth 9-13 holds no depth resnet8 can have \(6n\+2: 8, 14, 20"):
        load_config("digits", ["tune.student_archs=[mlp, resnet8]", "tune.space.depth={low: 9, high: 13}"])
    with pytest.raises(ConfigError, match="tune.space.depth.log cannot be used with wrn_16_2, whose depths step by 6"):
        load_config("digits", ["tune.student_archs=[wrn_16_2]", "tune.space.depth={low: 10, high: 40, log: true}"])

    cfg, tuned, study, _ = search(
        store,
        "student.arch=resnet8",
        "tune.space.depth={low: 9, high: 20}",  # holds 14 and 20; the warm start (resnet8's 8) moves to 14
        "tune.space.width={low: 2, high: 4}",
        "tune.n_trials=4",
        "tune.epochs=1",
        "tune.pruner=none",
        "tune.study_name=resnet-depths",
    )
    assert len(study.trials) == 4 and all(t.state == State.COMPLETE for t in study.trials)  # no trial failed
    assert {t.params["depth"] for t in study.trials} <= {14, 20} and study.trials[0].params["depth"] == 14
    assert final_student(cfg, tuned).depth in (14, 20)

    from kdcore.data import DataBundle

    bundle = DataBundle.load(store["data"].path)  # the smallest student checked before any work is ResNet-14
    resnet = load_config("digits", ["tune.student_archs=[mlp, resnet8]", "tune.space.depth={low: 9, high: 20}"])
    check_size_search(resnet, bundle)
    assert "students mlp, resnet8 at depth 9-20, resnet8 depths 14, 20 for accuracy" in check_search(resnet)


def test_a_feature_method_is_checked_against_every_searched_student_before_any_work(
    store, capsys, tmp_path, monkeypatch
):
    from kdcore.data import DataBundle

    bundle = DataBundle.load(store["data"].path)
    both = ["student.arch=cnn_small", "tune.student_archs=[cnn_small, mlp]", "tune.methods=[kd, at]"]
    with pytest.raises(
        ConfigError, match="tune.methods=at cannot distil teacher.arch=cnn_medium into mlp, one of tune.student_archs"
    ):
        check_methods_fit(load_config("digits", both), bundle)  # student.arch (cnn_small) alone has feature maps
    check_methods_fit(load_config("digits", [*both[:1], "tune.student_archs=[cnn_small, resnet8]", both[2]]), bundle)

    monkeypatch.chdir(tmp_path)  # kdflow run --dry-run: exit 2, one line naming the student, nothing trained
    assert main(["run", "--dry-run", *(x for o in both for x in ("--set", o))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "into mlp, one of tune.student_archs" in err
    assert not (tmp_path / "mlruns" / "cache").exists()
