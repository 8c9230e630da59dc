"""A toy env that is not DAFT's, in the shape a user brings: ``ReachPlace-v0`` and its plan.

* a 4-d action (dx, dy, dz in metres per step, each in [-0.03, 0.03], and a gripper in [0, 1],
  closed above 0.5): bounds other than +-1, as many envs have;
* a plain ``Box`` observation (11-d): tool position (3), gripper opening (1), object (3),
  goal (3), whether the object is held (1);
* two tasks: ``reach`` (touch the object with the tool: within 1.5 cm) and ``place`` (grasp the
  object, carry it to the goal and let go within 2 cm of it). Which one runs is
  ``reset(options={"task": ...})``, else they alternate; ``info["task"]`` names it;
* its :data:`ACTION_LAYOUT` (talk-and-tweak words for its three translation dimensions) and a
  scripted plan, :func:`plan`, from the observation to an action in the env's units.

No physics: the tool moves by the commanded delta (clipped to the workspace), a closing gripper
within 1.2 cm of the object picks it up, an opening one drops it to the table. Reward 1 on
success (which terminates); truncated after :data:`MAX_STEPS`.

``PYTHONPATH=tests daft collect --env support.reach_place:ReachPlace-v0 --expert support.reach_place:plan``
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from daft_env.layout import ActionLayout, TranslationAxis

TASKS = ("reach", "place")
INSTRUCTIONS = {"reach": "touch the block", "place": "put the block on the target"}
MAX_STEPS = {"reach": 30, "place": 60}
STEP = 0.03  # metres per step at full action
LOW = np.array([0.0, 0.0, 0.0])
HIGH = np.array([0.3, 0.3, 0.2])
#: the env's talk-and-tweak description, in its own action units (metres per step)
ACTION_LAYOUT = ActionLayout(
    axes=(
        TranslationAxis(1, "left", "right", 1.0),
        TranslationAxis(0, "forward", "backward", 1.0),
        TranslationAxis(2, "up", "down", 1.0),
    ),
    gripper=3,
)


class ReachPlace(gym.Env):
    """The toy (module docstring). ``task_names``, ``instructions`` and ``action_layout`` tell
    DAFT its tasks and its action's translation axes."""

    metadata = {"render_modes": []}
    task_names = TASKS
    instructions = INSTRUCTIONS
    action_layout = ACTION_LAYOUT

    def __init__(self, tasks: tuple[str, ...] = TASKS) -> None:
        self.task_names = tuple(tasks)
        self.action_space = spaces.Box(
            np.array([-STEP, -STEP, -STEP, 0.0], np.float32),
            np.array([STEP, STEP, STEP, 1.0], np.float32),
        )
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(11,), dtype=np.float32)
        self.task = self.task_names[0]
        self._count = 0
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.concatenate(
            [self.tool, [self.opening], self.obj, self.goal, [float(self.held)]]
        ).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and "task" in options:
            if options["task"] not in self.task_names:
                raise ValueError(f"unknown task {options['task']!r}; tasks: {self.task_names}")
            self.task = options["task"]
        else:
            self.task = self.task_names[self._count % len(self.task_names)]
        self._count += 1
        r = self.np_random
        self.tool = np.array([r.uniform(0.05, 0.25), r.uniform(0.05, 0.25), r.uniform(0.08, 0.15)])
        self.obj = np.array([r.uniform(0.05, 0.25), r.uniform(0.05, 0.25), 0.0])
        self.goal = np.array([r.uniform(0.05, 0.25), r.uniform(0.05, 0.25), 0.0])
        self.opening = 1.0
        self.held = False
        self._t = 0
        return self._obs(), {"task": self.task}

    def step(self, action: Any):
        a = np.clip(np.asarray(action, np.float64), self.action_space.low, self.action_space.high)
        self.tool = np.clip(self.tool + a[:3], LOW, HIGH)
        closing = a[3] > 0.5
        if closing and not self.held and np.linalg.norm(self.tool - self.obj) < 0.012:
            self.held = True
        if not closing and self.held:
            self.held = False
            self.obj = np.array([self.tool[0], self.tool[1], 0.0])
        if self.held:
            self.obj = self.tool.copy()
        self.opening = 0.0 if closing else 1.0
        self._t += 1
        if self.task == "reach":
            success = bool(np.linalg.norm(self.tool - self.obj) < 0.015)
        else:
            success = bool(not self.held and np.linalg.norm(self.obj - self.goal) < 0.02)
        truncated = not success and self._t >= MAX_STEPS[self.task]
        info = {"task": self.task, "is_success": success}
        return self._obs(), float(success), success, truncated, info


def _toward(tool: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.clip(target - tool, -STEP, STEP)


def plan(obs: np.ndarray) -> np.ndarray:
    """The scripted demonstrator and operator plan: obs -> (dx, dy, dz, gripper), env units.

    Above the object, down, close, to above the goal, down, open. It serves both tasks from the
    observation alone: ``reach`` succeeds on the way down to the object.
    """
    return _place(np.asarray(obs, np.float64))


def _place(o: np.ndarray) -> np.ndarray:
    tool, obj, goal, held = o[0:3], o[4:7], o[7:10], o[10] > 0.5
    if not held:
        above = obj + np.array([0.0, 0.0, 0.04])
        if np.linalg.norm(tool[:2] - obj[:2]) > 0.006:
            target = np.array([obj[0], obj[1], max(tool[2], above[2])])
            return np.r_[_toward(tool, target), 0.0]
        if tool[2] - obj[2] > 0.008:
            return np.r_[_toward(tool, obj), 0.0]
        return np.r_[0.0, 0.0, 0.0, 1.0]
    if np.linalg.norm(tool[:2] - goal[:2]) > 0.008:
        target = np.array([goal[0], goal[1], max(tool[2], 0.05)])
        return np.r_[_toward(tool, target), 1.0]
    if tool[2] > 0.02:
        return np.r_[_toward(tool, np.array([goal[0], goal[1], 0.01])), 1.0]
    return np.r_[0.0, 0.0, 0.0, 0.0]


class TaskPlan:
    """The plan as an object that knows the running task (``act``), made from the env.

    ``--expert support.reach_place:TaskPlan`` (a class: called with the env first).
    """

    def __init__(self, env: Any) -> None:
        self.env = env

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Reach: straight at the object, gripper open. Place: :func:`_place`."""
        o = np.asarray(obs, np.float64)
        if self.env.unwrapped.task == "reach":
            return np.r_[_toward(o[0:3], o[4:7]), 0.0]
        return _place(o)

    def reset(self) -> None:
        """Stateless."""


class UnboundedReachPlace(ReachPlace):
    """The toy with an unbounded action (DAFT cannot rescale it: a clear error)."""

    def __init__(self) -> None:
        super().__init__()
        self.action_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)


if "ReachPlace-v0" not in gym.registry:
    gym.register("ReachPlace-v0", entry_point=ReachPlace)
