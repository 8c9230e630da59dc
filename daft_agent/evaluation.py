"""Per-task evaluation and the paper's Table I layout (success rate %, mean episode length).

Two columns, as in the paper's evaluation: *autonomous* (no takeover, no refinement command) and
*with commands*, where an operator may speak refinement commands at test time
(``info["refinement_command_now"]`` of the previous step, fed to ``predict(command=...)``).
Episode length is the mean over all trials, failures counting their full (truncated) length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daft_env.tasks import INSTRUCTIONS


@dataclass
class TaskResult:
    """Outcome of ``trials`` episodes of one task."""

    task: str
    trials: int
    successes: int
    mean_length: float
    commands_spoken: int = 0

    @property
    def success_rate(self) -> float:
        """Successes / trials."""
        return self.successes / max(self.trials, 1)


def run_trials(
    agent: Any,
    env: Any,
    task: str,
    trials: int,
    seed: int = 10_000,
    use_commands: bool = False,
    deterministic: bool = True,
) -> TaskResult:
    """Run ``trials`` episodes of ``task`` (``reset(options={"task": task})``) with ``agent.predict``."""
    successes, lengths, spoken = 0, [], 0
    for k in range(trials):
        obs, info = env.reset(seed=seed + k, options={"task": task})
        command = None
        done, n = False, 0
        while not done:
            action, _ = agent.predict(
                obs, deterministic=deterministic, command=command if use_commands else None
            )
            obs, _, terminated, truncated, info = env.step(action)
            n += 1
            done = terminated or truncated
            command = info.get("refinement_command_now") if use_commands else None
            spoken += int(command is not None)
        successes += int(bool(info.get("is_success", False)))
        lengths.append(n)
    return TaskResult(
        task, trials, successes, float(np.mean(lengths)) if lengths else float("nan"), spoken
    )


def evaluate_tasks(
    agent: Any,
    env: Any,
    tasks: Sequence[str],
    trials: int,
    seed: int = 10_000,
    use_commands: bool = False,
    on_task: Callable[[TaskResult], None] | None = None,
) -> dict[str, TaskResult]:
    """:func:`run_trials` for every task; returns task -> result."""
    out = {}
    for task in tasks:
        out[task] = run_trials(agent, env, task, trials, seed, use_commands)
        if on_task:
            on_task(out[task])
    return out


def format_table(
    autonomous: dict[str, TaskResult], with_commands: dict[str, TaskResult] | None = None
) -> str:
    """Table I of the paper: success rate (%) and episode length per task plus an average row."""
    cols = ["Success (%) autonomous", "Length autonomous"]
    if with_commands is not None:
        cols += ["Success (%) w/ commands", "Length w/ commands"]
    name_w = max(len("Task"), *(len(INSTRUCTIONS.get(t, t)) for t in autonomous), len("Average"))
    header = "Task".ljust(name_w) + " | " + " | ".join(cols)
    lines = [header, "-" * len(header)]

    def cells(res: dict[str, TaskResult], t: str) -> list[str]:
        r = res[t]
        return [f"{100 * r.success_rate:.1f}", f"{r.mean_length:.1f}"]

    rows = []
    for t in autonomous:
        c = cells(autonomous, t) + (cells(with_commands, t) if with_commands is not None else [])
        rows.append(c)
        lines.append(
            INSTRUCTIONS.get(t, t).ljust(name_w)
            + " | "
            + " | ".join(v.rjust(len(h)) for v, h in zip(c, cols, strict=True))
        )
    avg = [f"{np.mean([float(r[i]) for r in rows]):.1f}" for i in range(len(cols))]
    lines.append("-" * len(header))
    lines.append(
        "Average".ljust(name_w)
        + " | "
        + " | ".join(v.rjust(len(h)) for v, h in zip(avg, cols, strict=True))
    )
    trials = next(iter(autonomous.values())).trials if autonomous else 0
    lines.append(
        f"({trials} trials per task; length = mean steps over all trials, failures count 50)"
    )
    return "\n".join(lines)
