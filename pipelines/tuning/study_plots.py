"""Optuna's own plots of a finished search, as images on the pipeline's parent run: optimisation history,
parameter importances and slices (optuna.visualization.matplotlib: no browser needed, unlike plotly's image export)."""

from __future__ import annotations

import logging
import warnings

import mlflow
import optuna

log = logging.getLogger("kdflow")
State = optuna.trial.TrialState

PLOTS = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "slice": "plot_slice",
}


def why_not(name: str, study: optuna.Study) -> str | None:
    """The reason a plot cannot be drawn from this study, or None."""
    complete = [t for t in study.trials if t.state == State.COMPLETE]
    if not complete:
        return "no complete trial"
    if name == "param_importances":
        if len(complete) < 2:
            return f"importances need at least 2 complete trials, the study has {len(complete)}"
        varied = {k for k in complete[0].params if len({repr(t.params.get(k)) for t in complete}) > 1}
        if not varied:
            return "no parameter varied across the complete trials"
    return None


def accuracy_target(study: optuna.Study) -> dict:
    """A study with a cost objective besides accuracy is plotted on its accuracy (Optuna asks which value)."""
    if len(study.directions) == 1:
        return {}
    return {"target": lambda t: t.values[0], "target_name": "val/acc"}


def log_study_plots(study: optuna.Study, run_id: str) -> dict[str, str]:
    """`optuna/{plot}.png` on `run_id` for each plot that can be drawn; returns {plot: reason} for the others,
    also written to `optuna/plots_skipped.txt` so the run says why a plot is missing."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    client, skipped = mlflow.MlflowClient(), {}
    for name, function in PLOTS.items():
        reason = why_not(name, study)
        if reason is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
                    ax = getattr(vis, function)(study, **accuracy_target(study))
                    fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
                    fig.set_size_inches(max(fig.get_size_inches()[0], 7), max(fig.get_size_inches()[1], 4.5))
                    fig.tight_layout()  # some of Optuna's axes do not fit it, and say so: the image is fine
                client.log_figure(run_id, fig, f"optuna/{name}.png")
                plt.close(fig)
                continue
            except Exception as e:  # noqa: BLE001  (a plot is evidence, not the result: the run goes on)
                reason = f"{type(e).__name__}: {str(e).strip()[:300]}"
        skipped[name] = reason
        log.info("tune: no %s plot: %s", name, reason)
    if skipped:
        client.log_text(run_id, "".join(f"{k}: {v}\n" for k, v in skipped.items()), "optuna/plots_skipped.txt")
    return skipped
