"""The study's accuracy-versus-cost Pareto front, the student chosen on it (within register.budget), and the
front as artifacts of the parent run: a table (pareto/front.md, front.csv) and a plot (pareto/front.png)."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from pipelines.config.schema import ConfigError, PipelineConfig
from pipelines.tuning.student_cost import UNITS

log = logging.getLogger("kdflow")
COMPLETE = optuna.trial.TrialState.COMPLETE


class BudgetUnreachable(ConfigError):
    """No trial of the search fits register.budget: nothing is retrained or registered."""


@dataclass(frozen=True)
class Point:
    trial: int
    accuracy: float
    cost: float
    params: dict = field(hash=False)
    run_id: str
    fits: bool | None = None  # within register.budget; None: no budget


@dataclass(frozen=True)
class Choice:
    trial: optuna.trial.FrozenTrial
    reason: str | None  # None: today's choice, the best accuracy of a one-objective study without a budget
    cost: str | None  # the cost the front is drawn against
    front: list[Point]
    points: list[Point]


def front_cost(cfg: PipelineConfig) -> str | None:
    """The cost on the front's x-axis: the second objective, else the budget's; None: no front."""
    if len(cfg.tune.objectives) > 1:
        return cfg.tune.objectives[1]
    limit = cfg.register.limit()
    return limit[0] if limit else None


def points_of(study: optuna.Study, cost: str) -> list[Point]:
    return [
        Point(
            t.number,
            t.values[0],
            t.user_attrs[f"cost.{cost}"],
            dict(t.params),
            t.user_attrs.get("mlflow_run_id", ""),
            None if "over_budget_by" not in t.user_attrs else t.user_attrs["over_budget_by"] <= 0,
        )
        for t in study.get_trials(deepcopy=False, states=(COMPLETE,))
        if f"cost.{cost}" in t.user_attrs
    ]


def non_dominated(points: list[Point]) -> list[Point]:
    """The points no other point beats on both accuracy (higher) and cost (lower), cheapest first."""

    def beats(q: Point, p: Point) -> bool:
        return q.accuracy >= p.accuracy and q.cost <= p.cost and (q.accuracy > p.accuracy or q.cost < p.cost)

    return sorted((p for p in points if not any(beats(q, p) for q in points)), key=lambda p: (p.cost, p.trial))


def most_accurate(points: list[Point]) -> Point:
    """Highest accuracy; the cheaper of equals, then the earlier trial."""
    return min(points, key=lambda p: (-p.accuracy, p.cost, p.trial))


def choose(cfg: PipelineConfig, study: optuna.Study) -> Choice | None:
    """The trial whose student is retrained: the most accurate one within register.budget (of the front, with two
    objectives); raises BudgetUnreachable when none is within it. None: no trial completed and no budget."""
    cost = front_cost(cfg)
    if cost is None:
        complete = study.get_trials(deepcopy=False, states=(COMPLETE,))
        return Choice(study.best_trial, None, None, [], []) if complete else None
    points = points_of(study, cost)
    front = non_dominated(points)
    limit = cfg.register.limit()
    unit = UNITS[cost]
    if limit is None:
        if not front:
            return None
        best = most_accurate(front)
        reason = (
            f"the most accurate point of the accuracy-versus-{cost} front ({len(front)} points; no register.budget)"
        )
        return Choice(study.trials[best.trial], reason, cost, front, points)
    measured = [
        (t.user_attrs[f"cost.{limit[0]}"], t.number)
        for t in study.get_trials(deepcopy=False)
        if f"cost.{limit[0]}" in t.user_attrs
    ]
    within = [p for p in points_of(study, limit[0]) if p.cost <= limit[1]]
    if not within:
        smallest, trial = min(measured, default=(float("nan"), -1))
        if smallest <= limit[1]:
            raise BudgetUnreachable(
                f"no trial within register.budget={cfg.register.budget} completed (the pruner stopped every one); "
                "nothing was registered; raise tune.n_trials or set tune.pruner=none"
            )
        raise BudgetUnreachable(
            f"no trial fits register.budget={cfg.register.budget}: the smallest student tried costs {smallest:.4g} "
            f"{UNITS[limit[0]]} (trial {trial}) and nothing was registered; raise the budget or search smaller "
            "students (tune.space.width, tune.space.depth, tune.student_archs)"
        )
    best = most_accurate(within)
    reason = (
        f"the most accurate of {len(within)} trained trials within register.budget={cfg.register.budget} "
        f"(val/acc {best.accuracy:.4f} at {best.cost:.4g} {UNITS[limit[0]]})"
    )
    if cost != limit[0]:
        reason += f"; its {cost}: {study.trials[best.trial].user_attrs[f'cost.{cost}']:.4g} {unit}"
    return Choice(study.trials[best.trial], reason, cost, front, points)


def front_table(choice: Choice) -> list[dict]:
    """One row per point of the front, cheapest first: accuracy, cost, hyper-parameters, the trial's MLflow run."""
    rows = []
    for p in choice.front:
        rows.append(
            {
                "trial": p.trial,
                "val/acc": round(p.accuracy, 4),
                choice.cost: exact(choice.cost, p.cost),
                **({} if p.fits is None else {"within_budget": p.fits}),
                "chosen": p.trial == choice.trial.number,
                **{k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in p.params.items()},
                "mlflow_run_id": p.run_id,
            }
        )
    return rows


def exact(cost: str, value: float) -> float | int:
    """Counts (params, flops) whole; measured sizes and times to 4 significant digits."""
    return int(value) if cost in ("params", "flops") else float(f"{value:.4g}")


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no point on the front)\n"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def save_plot(choice: Choice, budget: tuple[str, float] | None, path: Path, title: str) -> Path:
    """Every complete trial (grey), the front (line), the chosen student (star), the budget (dashed)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter([p.cost for p in choice.points], [p.accuracy for p in choice.points], c="0.7", s=14, label="trials")
    ax.step(
        [p.cost for p in choice.front],
        [p.accuracy for p in choice.front],
        "o-",
        where="post",
        c="C0",
        ms=4,
        label="front",
    )
    chosen = next((p for p in choice.points if p.trial == choice.trial.number), None)
    if chosen:
        ax.scatter([chosen.cost], [chosen.accuracy], marker="*", s=160, c="C3", zorder=3, label="chosen")
    if budget and budget[0] == choice.cost:
        ax.axvline(budget[1], ls="--", c="C3", lw=1, label="budget")
    if choice.cost in ("params", "flops"):
        ax.set_xscale("log")
    ax.set_xlabel(f"{choice.cost} ({UNITS[choice.cost]})")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def log_front(cfg: PipelineConfig, choice: Choice, parent_run_id: str, folder: Path) -> list[dict]:
    """The front's table and plot as artifacts of the parent run (under pareto/); returns the table."""
    import mlflow

    rows = front_table(choice)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "front.md").write_text(markdown(rows) + (f"\nChosen: trial {choice.trial.number}, {choice.reason}.\n"))
    (folder / "front.csv").write_text(csv_text(rows) if rows else "")
    save_plot(choice, cfg.register.limit(), folder / "front.png", f"{cfg.name}: accuracy vs {choice.cost}")
    client = mlflow.MlflowClient()
    for name in ("front.md", "front.csv", "front.png"):
        client.log_artifact(parent_run_id, str(folder / name), "pareto")
    return rows
