"""Table I: success rate (%) and episode length per task, per method, mean ± std over seeds.

The table is shaped like the paper's: one line per task and an average line; the success columns
of every method, then their episode-length columns. Episode length is the mean over all
evaluation trials, failures counted at the step limit where they were truncated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daft_agent.baselines import BASELINES

#: the success (task average, autonomous) whose first crossing the table reports
TARGET = 0.9


def steps_to(curve: Sequence[dict[str, Any]], target: float = TARGET) -> int | None:
    """First online step whose task-averaged autonomous success reaches ``target`` (None: never)."""
    for point in curve:
        if np.mean(list(point["autonomous_success"].values())) >= target:
            return int(point["online_step"])
    return None


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


def summarise(trials: Sequence[dict[str, Any]], tasks: Sequence[str]) -> dict[str, Any]:
    """Per row and task: success % and episode length, mean and std over the row's seeds.

    A row that was evaluated with commands (DAFT) gets a second entry ``<row>+commands``.
    ``"average"`` is the mean over tasks within each seed, then over seeds. ``steps_to_90``
    lists, per seed, the first evaluation step at which the row's task-averaged autonomous success
    reached 90% (None where it never did within the budget).
    """
    out: dict[str, Any] = {}
    for row in BASELINES:
        runs = [t for t in trials if t["row"] == row]
        for column, suffix in (("autonomous", ""), ("with_commands", "+commands")):
            runs_c = [r for r in runs if column in r]
            if not runs_c:
                continue
            entry: dict[str, Any] = {
                "label": BASELINES[row][1] + (" (with commands)" if suffix else ""),
                "seeds": [r["seed"] for r in runs_c],
            }
            if not suffix:  # per seed, from the periodic evaluations (None: not within budget)
                entry["steps_to_90"] = [steps_to(r.get("learning_curve", [])) for r in runs_c]
            for metric, key, scale in (
                ("success", "success_rate", 100.0),
                ("length", "mean_length", 1.0),
            ):
                per = {t: [scale * r[column][t][key] for r in runs_c] for t in tasks}
                per["average"] = [
                    float(np.mean([scale * r[column][t][key] for t in tasks])) for r in runs_c
                ]
                entry[metric] = {t: _mean_std(v) for t, v in per.items()}
            out[row + suffix] = entry
    return out


def _cell(stat: dict[str, float], digits: int) -> str:
    if stat["n"] > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def markdown(summary: dict[str, Any], tasks: Sequence[str], instructions: dict[str, str]) -> str:
    """The Markdown table of :func:`summarise`'s output (rows: tasks + average)."""
    cols = list(summary)
    labels = [summary[c]["label"] for c in cols]
    head = ["Task", *(f"success % {lab}" for lab in labels), *(f"length {lab}" for lab in labels)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in [*tasks, "average"]:
        name = instructions.get(t, t) if t != "average" else "Average"
        cells = [_cell(summary[c]["success"][t], 1) for c in cols]
        cells += [_cell(summary[c]["length"][t], 1) for c in cols]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    reached = [
        f"{e['label']} {', '.join('never' if s is None else str(s) for s in e['steps_to_90'])}"
        for e in summary.values()
        if "steps_to_90" in e
    ]
    lines.append("")
    lines.append(
        f"Online steps to {TARGET:.0%} average autonomous success, per seed: " + "; ".join(reached)
    )
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], tasks: Sequence[str], path: Path) -> Path:
    """Grouped bars: success % per task (and the average) per method, std over seeds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*tasks, "average"]
    cols = list(summary)
    width = 0.8 / max(1, len(cols))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) * len(cols) / 3), 3.6))
    x = np.arange(len(groups))
    for i, c in enumerate(cols):
        means = [summary[c]["success"][g]["mean"] for g in groups]
        stds = [summary[c]["success"][g]["std"] for g in groups]
        ax.bar(
            x + (i - (len(cols) - 1) / 2) * width,
            means,
            width,
            yerr=stds,
            label=summary[c]["label"],
            capsize=2,
        )
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 105)
    ax.set_ylabel("success (%)")
    ax.set_title("Table I: success per task (mean ± std over seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["TARGET", "markdown", "plot", "steps_to", "summarise"]
