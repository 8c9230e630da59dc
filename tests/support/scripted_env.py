"""A tiny deterministic env and agent that let evaluation tests see exactly what was fed when.

* :class:`ScriptedEnv`: BoltEnv's 7-d action space; the observation is the step index. Task
  ``"upright"`` succeeds on its ``autonomous_success_at``-th step whatever the policy does; every
  task succeeds on a step whose action has x > 0.5. It can speak scripted refinement commands
  itself (``info["refinement_command_now"]`` of step t = ``speak[t]``), standing in for a speaking
  operator.
* :class:`ScriptedAgent`: ``predict`` logs ``(step index, command)`` and moves forward (x = 1)
  only when told "move forward", or once ``skilled_after`` online steps have passed (a policy that
  improves, for learning-curve tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from daft_env.spaces import action_space


class ScriptedEnv(gym.Env):
    """Deterministic episodes of at most ``max_episode_steps`` steps (module docstring)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        max_episode_steps: int = 6,
        speak: Mapping[int, str] | None = None,
        autonomous_success_at: int = 2,
    ) -> None:
        self.max_episode_steps = int(max_episode_steps)
        self.speak = dict(speak or {})
        self.autonomous_success_at = int(autonomous_success_at)
        self.action_space = action_space()
        self.observation_space = spaces.Dict({"t": spaces.Box(0.0, 1e4, (1,), dtype=np.float32)})
        self.task = "upright"
        self.t = 0
        self.resets: list[int | None] = []
        self.closed = False

    def _obs(self) -> dict[str, np.ndarray]:
        return {"t": np.array([self.t], dtype=np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.task = (options or {}).get("task", self.task)
        self.t = 0
        self.resets.append(seed)
        return self._obs(), {"task": self.task, "is_success": False}

    def step(self, action: Any):
        a = np.asarray(action, dtype=np.float64)
        spoken = self.speak.get(self.t)
        self.t += 1
        success = bool(a[0] > 0.5) or (
            self.task == "upright" and self.t == self.autonomous_success_at
        )
        truncated = not success and self.t >= self.max_episode_steps
        info = {"task": self.task, "is_success": success, "refinement_command_now": spoken}
        return self._obs(), float(success), success, truncated, info

    def close(self) -> None:
        self.closed = True


class ScriptedAgent:
    """Logs what ``predict`` was given; moves forward when told to or once skilled."""

    def __init__(self, skilled_after: int | None = None, accepts_commands: bool = True) -> None:
        self.log: list[tuple[int, str | None]] = []
        self.skilled_after = skilled_after
        self.num_timesteps = 0
        self.accepts_commands = accepts_commands

    def predict(self, observation: Any, deterministic: bool = False, **kwargs: Any):
        if "command" in kwargs and not self.accepts_commands:
            raise TypeError("predict() got an unexpected keyword argument 'command'")
        command = kwargs.get("command")
        self.log.append((int(observation["t"][0]), command))
        skilled = self.skilled_after is not None and self.num_timesteps >= self.skilled_after
        action = np.zeros(7, dtype=np.float32)
        action[0] = 1.0 if (command == "move forward" or skilled) else 0.0
        return action, None
