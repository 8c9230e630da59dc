"""RQ4: a trained multi-task policy chaining operations on ``BoltLongHorizon-Sim-v0``.

An episode with k bolts runs upright -> pickup -> assemble for each bolt in turn (3k operations,
each with its own step limit); it succeeds only if every operation does. The same policy is run
autonomously and with the simulated operator's spoken refinement commands, on the same seeds, for
each k. The paper reports 90/60/60/50% at 1/2/3/4 bolts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from daft_agent.errors import AgentConfigError
from daft_agent.evaluation import run_trials
from daft_agent.runs.envs import make_speaking_env

ENV_ID = "BoltLongHorizon-Sim-v0"
#: the paper's success at 1-4 bolts (%), for the report beside ours
PAPER = {1: 90.0, 2: 60.0, 3: 60.0, 4: 50.0}


class FixedBolts(gym.Wrapper):
    """Every reset asks for ``n_bolts`` bolts (whatever task option the caller passes).

    :func:`~daft_agent.evaluation.run_trials` resets with ``options={"task": ...}``; a
    long-horizon env chooses its own subtasks, so that option is replaced by ``n_bolts``.
    """

    def __init__(self, env: Any, n_bolts: int) -> None:
        super().__init__(env)
        self.n_bolts = int(n_bolts)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset with ``options={"n_bolts": n_bolts}``."""
        kwargs["options"] = {"n_bolts": self.n_bolts}
        return self.env.reset(**kwargs)


def evaluate_lengths(
    agent: Any,
    obs_mode: str,
    bolts: Sequence[int] = (1, 2, 3, 4),
    trials: int = 20,
    seed: int = 30_000,
    with_commands: bool = True,
) -> dict[str, Any]:
    """Success and mean length per number of bolts, autonomous and (optionally) with commands.

    Returns:
        ``{"autonomous": {k: {...}}, "with_commands": {k: {...}} or None}``, each entry with
        ``success_rate``, ``mean_length``, ``trials`` (and ``commands`` spoken).

    Raises:
        AgentConfigError: ``trials`` < 1 or a bolt count outside 1-4.
    """
    if trials < 1 or not bolts or any(not 1 <= int(k) <= 4 for k in bolts):
        raise AgentConfigError(f"need trials >= 1 and bolt counts in 1..4; got {trials}, {bolts}")
    env = gym.make(ENV_ID, obs_mode=obs_mode)
    talk = make_speaking_env(ENV_ID, obs_mode) if with_commands else None
    out: dict[str, Any] = {"autonomous": {}, "with_commands": {} if talk is not None else None}
    try:
        for k in bolts:
            for column, base, cmds in (("autonomous", env, False), ("with_commands", talk, True)):
                if base is None:
                    continue
                r = run_trials(agent, FixedBolts(base, k), "long_horizon", trials, seed, cmds)
                out[column][int(k)] = {
                    "success_rate": r.success_rate,
                    "mean_length": r.mean_length,
                    "trials": r.trials,
                    "commands": r.commands_spoken,
                }
    finally:
        env.close()
        if talk is not None:
            talk.close()
    return out


def markdown(result: dict[str, Any]) -> str:
    """A table: bolts, paper %, autonomous %, with commands %."""
    lines = ["| bolts | paper % | autonomous % | with commands % |", "|---|---|---|---|"]
    for k, auto in result["autonomous"].items():
        talk = (result.get("with_commands") or {}).get(k)
        shown = f"{100 * talk['success_rate']:.0f}" if talk else "-"
        lines.append(f"| {k} | {PAPER[int(k)]:.0f} | {100 * auto['success_rate']:.0f} | {shown} |")
    return "\n".join(lines) + "\n"


__all__ = ["ENV_ID", "PAPER", "FixedBolts", "evaluate_lengths", "markdown"]
