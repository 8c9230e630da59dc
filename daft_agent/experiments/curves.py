"""Fig. 5: autonomous success against online steps for DAFT and w/o dual, with seed bands.

The points are each run's periodic evaluations (``learning_curve`` in its results: rows of
``{"online_step", "autonomous_success": {task: rate}}``). At each step the curve is the mean over
seeds of the task-averaged success; the band is ± one std over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daft_agent.errors import ExperimentError

#: the rows Fig. 5 compares
CURVE_ROWS = ("daft", "wo_dual")


def curve_points(trials: Sequence[dict[str, Any]], row: str) -> dict[str, list[float]]:
    """``{"step", "mean", "std", "n"}`` (success %) over the steps every seed of ``row`` evaluated."""
    runs = [t for t in trials if t["row"] == row and t.get("learning_curve")]
    per_step: dict[int, list[float]] = {}
    for run in runs:
        for point in run["learning_curve"]:
            rates = list(point["autonomous_success"].values())
            per_step.setdefault(int(point["online_step"]), []).append(100.0 * float(np.mean(rates)))
    steps = sorted(s for s, v in per_step.items() if len(v) == len(runs))
    return {
        "step": steps,
        "mean": [float(np.mean(per_step[s])) for s in steps],
        "std": [float(np.std(per_step[s])) for s in steps],
        "n": [len(per_step[s]) for s in steps],
    }


def curves(trials: Sequence[dict[str, Any]], rows: Sequence[str] = CURVE_ROWS) -> dict[str, Any]:
    """:func:`curve_points` for each of ``rows``.

    Raises:
        ExperimentError: a row has no learning curve in ``trials`` (the fix: run table1 with a
            non-zero ``--eval-every``).
    """
    out = {r: curve_points(trials, r) for r in rows}
    empty = [r for r, c in out.items() if not c["step"]]
    if empty:
        raise ExperimentError(
            f"no learning curve for {empty} in these results; run daft experiment table1 with "
            "--rows including them and --eval-every > 0 first"
        )
    return out


def plot(data: dict[str, Any], labels: dict[str, str], path: Path) -> Path:
    """Mean success with a ± std band per row against online steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for row, c in data.items():
        steps, mean, std = (np.asarray(c[k], float) for k in ("step", "mean", "std"))
        ax.plot(steps, mean, marker="o", label=labels.get(row, row))
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("online steps")
    ax.set_ylabel("autonomous success, task average (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Fig. 5: dual vs single actor")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["CURVE_ROWS", "curve_points", "curves", "plot"]
