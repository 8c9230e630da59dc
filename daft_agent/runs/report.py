"""What a training run reports: a learning curve, two evaluated conditions, the intervention share.

Three figures tell a run apart from its progress bar (issue 10):

* **Learning curve.** :class:`~daft_agent.evaluation.PeriodicEvaluation` runs ``n`` autonomous
  trials per task on a separate nominal env every ``every`` online steps and logs
  ``eval/<task>/autonomous_success``. Three success figures appear in TensorBoard, and they
  differ:

  - ``rollout/<task>/success_rate``: training episodes that ended in success, *including* those
    the operator rescued;
  - ``rollout/<task>/autonomous_success_rate``: training episodes that succeeded with no
    intervened step;
  - ``eval/<task>/autonomous_success``: the deterministic policy alone on a separate env, the
    same seeds at every row (what the final table measures, on fewer trials).

  Cost: one row is ``n`` episodes per task of at most 50 steps, inference only (no update). The
  full run's default (a row every 2,500 of 15,000 steps, 5 trials) runs 6 x 3 x 5 x 50 = 4,500
  policy steps at most; at the ~5 ms per evaluated step measured for the state preset's
  full-size networks on this 2-core machine, about 25 s of a run. The final evaluation (50 trials,
  3 tasks, 2 columns, 2 conditions: at most 30,000 steps) takes up to about 150 s.

* **Two conditions** at the end, each autonomous and with spoken commands (the simulated operator
  in speak mode): *nominal*, and *perturbed* with the hidden perception error of
  :mod:`daft_env.perception` (state observations only; a pixel run skips it and says why).

* **The realised intervention share** of the online phase: intervened steps / online steps,
  overall and per task, from the store's online episodes (``rollouts`` and ``interventions``) of
  this run, beside the operator's configured ``target_rate``.

``results.json`` keeps the nominal keys at the top (``autonomous``, ``with_commands``), as
``daft evaluate --json`` writes them, and adds ``perturbed``, ``learning_curve`` and
``intervention_share``; :func:`write_results` writes it durably (:mod:`daft_env.durable`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from daft_agent.evaluation import PeriodicEvaluation, evaluate_condition, format_table, results_dict
from daft_agent.runs.envs import make_speaking_env
from daft_env.durable import write_text

#: online episode kinds in the store (``demos`` are the offline ones)
ONLINE_KINDS = ("rollouts", "interventions")
PERTURBED_TITLE = "perturbed (hidden perception error)"


def learning_curve_callback(
    env_id: str,
    obs_mode: str,
    tasks: Sequence[str],
    every: int,
    trials: int,
    seed: int,
    wrap: Callable[[Any], Any] = lambda env: env,
    user_tasks: Sequence[str] | None = None,
) -> PeriodicEvaluation:
    """The periodic autonomous evaluation of a run, on its own nominal env (made when first used).

    ``wrap`` wraps each env made (``daft train --preset vla`` adds the frozen backbone's h);
    ``user_tasks``: the task list of another env than DAFT's (:func:`~daft_agent.runs.envs.make_env`).
    """

    def make_env() -> Any:
        from daft_agent.runs.envs import make_env as make

        return wrap(make(env_id, tasks=user_tasks, obs_mode=obs_mode))

    return PeriodicEvaluation(make_env, every, trials, tasks, seed=seed)


def curve_legend(every: int, trials: int) -> str:
    """The printed line that says what the curve measures and how it differs from ``rollout/``."""
    return (
        f"learning curve: {trials} autonomous trial(s) per task every {every} online steps on a "
        "separate env -> eval/<task>/autonomous_success (the policy alone); "
        "rollout/<task>/success_rate counts operator-rescued episodes, "
        "rollout/<task>/autonomous_success_rate only those with no intervened step"
    )


def merge_curve(previous: Iterable[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict]:
    """A resumed run's curve: the earlier rows (before the first new one), then the new rows."""
    first = new[0]["online_step"] if new else float("inf")
    return [r for r in previous if r.get("online_step", first) < first] + new


def online_entries(store: Any) -> list[Any]:
    """The store's online episodes (index entries), oldest first.

    Episode file names begin with the time they were written (one clock reading, to the
    nanosecond), so their names order them in time across tasks and kinds.
    """
    entries = [e for kind in ONLINE_KINDS for e in store.index(kind=kind)]
    return sorted(entries, key=lambda e: e.path.rsplit("/", 1)[-1])


def share_over_training(
    entries: Sequence[Any], curve: Sequence[dict[str, Any]], solved: float = 0.95
) -> dict[str, Any]:
    """How the operator's share moves as the policy learns (issue 17, acceptance 4).

    ``entries`` are the run's online episodes in time order; an episode's online step is the sum
    of the lengths before it. Returns:

    * ``by_third``: the intervened share of the first, middle and last third of the online
      steps (an operator that helps where help is needed corrects less as the policy learns);
    * ``after_solved``: per task, for each curve point at which the task's autonomous success
      reached ``solved``, the share of that task's steps from that point to the next one (or
      the end): near zero when the operator leaves a solved task alone.
    """
    starts, step = [], 0
    for e in entries:
        starts.append(step)
        step += e.length
    total = step

    def share(sel: list[Any]) -> float | None:
        n = sum(e.length for e in sel)
        return sum(e.n_intervened_steps for e in sel) / n if n else None

    thirds = [
        share([e for e, s in zip(entries, starts, strict=True) if lo <= s < hi])
        for lo, hi in ((0, total / 3), (total / 3, 2 * total / 3), (2 * total / 3, total + 1))
    ]
    points = sorted(curve, key=lambda r: r["online_step"])
    after: dict[str, list[dict[str, Any]]] = {}
    for k, row in enumerate(points):
        lo = row["online_step"]
        hi = points[k + 1]["online_step"] if k + 1 < len(points) else total + 1
        if lo >= total:  # the last row, taken when training ended: no steps follow it
            continue
        for task, rate in row["autonomous_success"].items():
            if rate < solved:
                continue
            sel = [
                e for e, s in zip(entries, starts, strict=True) if e.task == task and lo <= s < hi
            ]
            after.setdefault(task, []).append(
                {"from_step": lo, "to_step": min(hi, total), "share": share(sel)}
            )
    return {"by_third": thirds, "after_solved": after, "solved_threshold": solved}


def intervention_share(
    entries: Iterable[Any], tasks: Sequence[str], target_rate: float
) -> dict[str, Any]:
    """Realised share of intervened steps, overall and per task, beside the configured rate.

    share = sum_e n_intervened_steps(e) / sum_e length(e) over the online episodes ``entries``
    (NaN-free: a task with no online step reports None). Only finished episodes are in the store,
    so ``episode_steps`` can fall short of the run's online steps by the episode cut off at the
    end.
    """
    steps = dict.fromkeys(tasks, 0)
    intervened = dict.fromkeys(tasks, 0)
    for e in entries:
        if e.task in steps:
            steps[e.task] += e.length
            intervened[e.task] += e.n_intervened_steps
    total, total_iv = sum(steps.values()), sum(intervened.values())
    return {
        "target_rate": target_rate,
        "overall": total_iv / total if total else None,
        "intervened_steps": total_iv,
        "episode_steps": total,
        "per_task": {t: intervened[t] / steps[t] if steps[t] else None for t in tasks},
    }


def format_share(share: dict[str, Any]) -> str:
    """One line: the realised intervention share, overall and per task, and the target."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    per_task = ", ".join(f"{t} {pct(v)}" for t, v in share["per_task"].items())
    line = (
        f"intervened share of the online steps: {pct(share['overall'])} "
        f"({share['intervened_steps']}/{share['episode_steps']} steps of finished episodes; "
        f"{per_task}); "
        f"the operator's cap (target_rate) {100 * share['target_rate']:.1f}%"
    )
    if "by_third" in share:
        line += "\nby third of training: " + " / ".join(pct(v) for v in share["by_third"])
    for task, spans in share.get("after_solved", {}).items():
        shown = ", ".join(f"{s['from_step']}-{s['to_step']}: {pct(s['share'])}" for s in spans)
        line += (
            f"\n{task} after reaching {100 * share['solved_threshold']:.0f}% on the curve: {shown}"
        )
    return line


def conditions_for(
    obs_mode: str | None, perception_error: Any
) -> tuple[list[tuple[str, str, Any]], str | None]:
    """``(name, table title, perception_error)`` per condition, and why perturbed is left out.

    The perception error offsets the state observation only (:mod:`daft_env.perception`), so a
    pixel run has the nominal condition alone, with the reason (None when both run); so has a
    run that asks for no perception error (``perception_error`` None), and a run on another env
    than DAFT's (``obs_mode`` None).
    """
    nominal = ("nominal", "nominal", None)
    if obs_mode is None:
        return [nominal], (
            "the hidden perception error offsets the bolt cell's state (daft_env.perception); "
            "another env has no perturbed condition"
        )
    if perception_error is None:
        return [nominal], "no perception error was asked for"
    if obs_mode == "state":
        return [nominal, ("perturbed", PERTURBED_TITLE, perception_error)], None
    return [nominal], (
        f"the perception error offsets the state observation only; obs_mode={obs_mode!r} has no "
        "perturbed condition"
    )


def evaluate_both_conditions(
    agent: Any,
    env_id: str,
    obs_mode: str,
    tasks: Sequence[str],
    trials: int,
    seed: int,
    perception_error: Any,
    echo: Callable[[str], None] = print,
    wrap: Callable[[Any], Any] = lambda env: env,
    with_commands: bool = True,
    expert: Any = None,
    user_tasks: Sequence[str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Nominal and perturbed, each autonomous and with spoken commands, on the same seeds.

    ``wrap`` wraps each env made (``daft train --preset vla`` adds the frozen backbone's h);
    ``with_commands=False`` leaves the with-commands column out (a learner that takes none).
    ``expert`` (the plan that speaks) and ``user_tasks``: another env than DAFT's, which has the
    nominal condition only.

    Returns the ``results.json`` fields (nominal at the top level, ``perturbed`` beside them, or
    ``{"skipped": reason}`` for a pixel run) and the printed tables.
    """
    from daft_agent.runs.envs import make_env

    user = expert is not None
    conditions, reason = conditions_for(None if user else obs_mode, perception_error)
    results: dict[str, Any] = {}
    if reason is not None:
        echo(f"perturbed condition skipped: {reason}")
        results["perturbed"] = {"skipped": reason}
    tables = []
    for name, title, perception in conditions:
        if user:
            env = wrap(make_env(env_id, tasks=user_tasks))
        else:
            env = wrap(make_env(env_id, obs_mode=obs_mode, perception_error=perception))
        talk_env = None
        if with_commands:
            talk_env = wrap(
                make_speaking_env(env_id, obs_mode, perception, expert, user_tasks, seed=seed + 1)
            )
        try:
            cond = evaluate_condition(agent, env, talk_env, tasks, trials, seed=seed)
        finally:
            env.close()
            if talk_env is not None:
                talk_env.close()
        table = format_table(cond["autonomous"], cond["with_commands"], title=title)
        echo(table)
        tables.append(table)
        entry = results_dict(cond["autonomous"], cond["with_commands"])
        if name == "nominal":
            results.update(entry)  # the keys results.json has always had
        else:
            err = env.unwrapped.perception_error
            entry["perception_error"] = {"min_offset": err.min_offset, "max_offset": err.max_offset}
            results[name] = entry
    return results, tables


def write_results(path: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` durably (a kill mid-write leaves the previous file)."""
    return write_text(path, json.dumps(results, indent=2) + "\n")


def write_table(path: Path, tables: Sequence[str]) -> Path:
    """Write the printed tables of the final evaluation durably."""
    return write_text(path, "\n\n".join(tables) + "\n")


__all__ = [
    "ONLINE_KINDS",
    "PERTURBED_TITLE",
    "conditions_for",
    "curve_legend",
    "evaluate_both_conditions",
    "format_share",
    "intervention_share",
    "learning_curve_callback",
    "merge_curve",
    "online_entries",
    "share_over_training",
    "write_results",
    "write_table",
]
