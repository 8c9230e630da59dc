"""Rolling per-task statistics of online episodes, as the agent logs them.

Success (with and without the operator), episode length and intervention rate, over the last
``success_window`` online episodes of each task (:class:`~daft_agent.agent.DualActorAgent`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

#: per-task rolling statistics of online episodes, and the ``rollout/<task>/...`` key of each
_KEYS = {
    "success": "success_rate",
    "autonomous_success": "autonomous_success_rate",
    "length": "ep_length",
    "intervention": "intervention_rate",
}


class TaskStats:
    """The last ``window`` online episodes of each task.

    ``success`` counts every successful episode, operator-rescued ones included;
    ``autonomous_success`` only episodes that succeeded with no intervened step (what the policy
    achieves alone).
    """

    def __init__(self, tasks: Sequence[str], window: int) -> None:
        self.window = int(window)
        self._stats = {t: {k: deque(maxlen=self.window) for k in _KEYS} for t in tasks}

    def add(self, episode: Any) -> None:
        """Count one finished online episode."""
        st = self._stats[episode.task]
        intervened = bool(np.any(episode.intervened))
        st["success"].append(float(episode.success))
        st["autonomous_success"].append(float(episode.success and not intervened))
        st["length"].append(float(len(episode)))
        st["intervention"].append(float(np.mean(episode.intervened)) if len(episode) else 0.0)

    def success_rates(self, autonomous: bool = False) -> dict[str, float]:
        """Rolling success rate per task (NaN for a task with no online episode yet)."""
        key = "autonomous_success" if autonomous else "success"
        return {
            t: float(np.mean(s[key])) if s[key] else float("nan") for t, s in self._stats.items()
        }

    def record(self, logger: Any) -> None:
        """Log ``rollout/<task>/<figure>`` for every task with an online episode.

        The figures: ``success_rate``, ``autonomous_success_rate``, ``ep_length``,
        ``intervention_rate``.
        """
        for task, st in self._stats.items():
            if st["success"]:
                for key, name in _KEYS.items():
                    logger.record(f"rollout/{task}/{name}", float(np.mean(st[key])))


__all__ = ["TaskStats"]
