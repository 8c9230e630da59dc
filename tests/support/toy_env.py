"""A toy env with BoltEnv's spaces, its scripted expert, and a toy teleop device.

* :class:`ToyBoltEnv`: a point "gripper" reaches a randomised target per task (no physics), with
  exactly the observation/action spaces and ``info`` keys of ``BoltEnv`` (``state`` or ``pixels``).
* :func:`toy_expert`: its scripted closed-loop expert.
* :class:`ToyOperator`: a :class:`~hardware.teleop.base.TeleopDevice` that takes over with the
  expert when the policy drifts; in ``talk_only`` mode it never takes over but speaks the
  direction the expert would move in. Put it under the product
  :class:`~daft_env.wrappers.InterventionWrapper` (:func:`toy_hil_env`), which labels its
  corrections with the product labeller (Eq. 12-13).
* :func:`record_expert_episode`, :func:`fill_store_with_demos`: expert demos through the product
  :class:`~daft_env.episode.EpisodeRecorder`, into a real :class:`~daft_env.store.EpisodeStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from daft_env.episode import Episode, EpisodeRecorder
from daft_env.labeler import phrase_for_displacement
from daft_env.spaces import ACTION_SCALE, action_space
from daft_env.tasks import INSTRUCTIONS, TASK_NAMES
from daft_env.wrappers import InterventionWrapper
from hardware.teleop.base import TeleopCommand

#: task -> (gripper command the task needs at the goal, goal offset from the target in metres)
_TASK_GOALS = {
    "upright": (-1.0, (0.0, 0.0, 0.0)),
    "pickup": (1.0, (0.0, 0.0, 0.0)),
    "assemble": (1.0, (0.0, 0.0, 0.03)),
}


class ToyBoltEnv(gym.Env):
    """Reach-and-grip toy with BoltEnv's spaces.

    State: ``state`` = [ee position (3), goal position (3)] (D = 6) in metres; ``gripper`` in
    {-1, 1} (1 closed). The end effector moves by ``action[:3] * ACTION_SCALE[:3]`` per step; the
    gripper follows the sign of ``action[6]``. Success: within ``tolerance`` of the task's goal with
    the task's gripper state. Reward 1 on success (which terminates), truncation at ``max_steps``.
    ``task`` names the current task, as ``BoltEnv.task`` does.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        tasks: Sequence[str] = TASK_NAMES,
        obs_mode: str = "state",
        max_steps: int = 50,
        tolerance: float = 0.012,
        image_shapes: tuple[tuple[int, int, int], tuple[int, int, int]] = (
            (128, 128, 3),
            (256, 256, 3),
        ),
    ) -> None:
        self.tasks = tuple(tasks)
        self.obs_mode = obs_mode
        self.max_steps = max_steps
        self.tolerance = tolerance
        self.image_shapes = image_shapes
        obs: dict[str, spaces.Space] = {"gripper": spaces.Box(-1.0, 1.0, (1,), np.float32)}
        if obs_mode == "state":
            obs["state"] = spaces.Box(-np.inf, np.inf, (6,), np.float32)
        else:
            obs["wrist_rgb"] = spaces.Box(0, 255, image_shapes[0], np.uint8)
            obs["head_rgb"] = spaces.Box(0, 255, image_shapes[1], np.uint8)
        if len(self.tasks) > 1:
            obs["task_id"] = spaces.Discrete(len(self.tasks))
        self.observation_space = spaces.Dict(obs)
        self.action_space = action_space()
        self._ee = np.zeros(3)
        self._goal = np.zeros(3)
        self._grip = -1.0
        self._t = 0
        self.task = self.tasks[0]

    def _image(self, shape: tuple[int, int, int], scale: float) -> np.ndarray:
        img = np.zeros(shape, np.uint8)
        h, w = shape[:2]

        def px(p: np.ndarray) -> tuple[int, int]:
            return (
                int(np.clip((p[0] * scale + 0.5) * h, 0, h - 2)),
                int(np.clip((p[1] * scale + 0.5) * w, 0, w - 2)),
            )

        gy, gx = px(self._goal)
        ey, ex = px(self._ee)
        img[gy : gy + 2, gx : gx + 2, 0] = 255
        img[ey : ey + 2, ex : ex + 2, 1] = 255
        img[..., 2] = int(127 + 100 * self._grip)
        return img

    def _obs(self) -> dict[str, Any]:
        obs: dict[str, Any] = {"gripper": np.array([self._grip], np.float32)}
        if self.obs_mode == "state":
            obs["state"] = np.concatenate([self._ee, self._goal]).astype(np.float32)
        else:
            obs["wrist_rgb"] = self._image(self.image_shapes[0], 4.0)
            obs["head_rgb"] = self._image(self.image_shapes[1], 2.0)
        if len(self.tasks) > 1:
            obs["task_id"] = self.tasks.index(self.task)
        return obs

    def goal(self) -> np.ndarray:
        """The task's goal position."""
        return self._goal + np.asarray(_TASK_GOALS[self.task][1])

    def _info(self, success: bool) -> dict[str, Any]:
        return {
            "is_success": success,
            "task": self.task,
            "instruction": INSTRUCTIONS.get(self.task, self.task),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode; ``options={"task": name}`` picks the task (else random)."""
        super().reset(seed=seed)
        task = (options or {}).get("task")
        self.task = (
            task
            if task in self.tasks
            else self.tasks[int(self.np_random.integers(len(self.tasks)))]
        )
        self._ee = self.np_random.uniform(-0.02, 0.02, 3)
        self._goal = self.np_random.uniform(-0.08, 0.08, 3)
        self._grip = -1.0
        self._t = 0
        return self._obs(), self._info(False)

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Move, grip, check success."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self._ee = self._ee + a[:3] * ACTION_SCALE[:3]
        self._grip = 1.0 if a[6] > 0 else -1.0
        self._t += 1
        grip_needed = _TASK_GOALS[self.task][0]
        success = bool(
            np.linalg.norm(self._ee - self.goal()) < self.tolerance and self._grip == grip_needed
        )
        truncated = self._t >= self.max_steps and not success
        return self._obs(), float(success), success, truncated, self._info(success)


def toy_expert(env: ToyBoltEnv) -> np.ndarray:
    """Closed-loop expert of :class:`ToyBoltEnv`: proportional reach, grip on arrival."""
    delta = env.goal() - env._ee
    a = np.zeros(7, np.float32)
    a[:3] = np.clip(delta / ACTION_SCALE[:3] * 0.8, -1.0, 1.0)
    near = np.linalg.norm(delta) < 2 * env.tolerance
    a[6] = _TASK_GOALS[env.task][0] if near or _TASK_GOALS[env.task][0] < 0 else -1.0
    return a


class ToyOperator:
    """A :class:`~hardware.teleop.base.TeleopDevice` standing in for a person over :class:`ToyBoltEnv`.

    It takes over with the expert for ``hold`` steps when the policy's translation points away from
    the expert's (cosine < 1 - ``threshold``) or its gripper disagrees, with probability ``p``.
    With ``talk_only`` it never takes over and instead speaks the direction the expert would move
    in (``TeleopCommand.refinement_command``; the wrapper reports it as
    ``info["refinement_command_now"]``) when the translation error exceeds 4 mm on an axis.
    """

    name = "toy-operator"

    def __init__(
        self,
        env: ToyBoltEnv,
        p: float = 0.5,
        threshold: float = 0.5,
        hold: int = 5,
        talk_only: bool = False,
        seed: int = 0,
    ) -> None:
        self.env = env
        self.p, self.threshold, self.hold, self.talk_only = p, threshold, hold, talk_only
        self.rng = np.random.default_rng(seed)
        self._left = 0
        self._command = TeleopCommand()

    def connect(self) -> None:
        """Nothing to open."""

    def on_step(self, observation: Any, policy_action: np.ndarray, info: dict[str, Any]) -> None:
        """Decide whether to take over (or what to say) for the policy's proposed action."""
        base: ToyBoltEnv = self.env.unwrapped  # type: ignore[assignment]
        expert = toy_expert(base)
        pa, ea = np.asarray(policy_action[:3], float), expert[:3].astype(float)
        cos = float(pa @ ea / (np.linalg.norm(pa) * np.linalg.norm(ea) + 1e-8))
        wrong_grip = np.sign(policy_action[6]) != np.sign(expert[6])
        if (
            not self.talk_only
            and self._left == 0
            and (cos < 1 - self.threshold or wrong_grip)
            and self.rng.random() < self.p
        ):
            self._left = self.hold
        intervening = self._left > 0
        self._left = max(0, self._left - 1)
        spoken = None
        if self.talk_only:
            phrase = phrase_for_displacement((ea - pa) * ACTION_SCALE[:3], sigma=0.004)
            spoken = None if phrase == "[null]" else phrase
        self._command = TeleopCommand(
            translation=expert[:3],
            rotation=expert[3:6],
            gripper=float(expert[6]),
            intervening=intervening,
            refinement_command=spoken,
        )

    def read(self) -> TeleopCommand:
        """The command decided in the last :meth:`on_step`."""
        return self._command

    def reset(self) -> None:
        """Forget a takeover in progress."""
        self._left = 0
        self._command = TeleopCommand()

    def disconnect(self) -> None:
        """Nothing to release."""


def toy_hil_env(env: ToyBoltEnv | None = None, **operator: Any) -> InterventionWrapper:
    """``InterventionWrapper(env, ToyOperator(env, **operator))``: the human-in-the-loop toy."""
    env = ToyBoltEnv() if env is None else env
    return InterventionWrapper(env, ToyOperator(env, **operator))


def record_expert_episode(
    env: gym.Env, task: str | None = None, seed: int | None = None, expert=toy_expert
) -> Episode:
    """Roll out the expert once on a ToyBoltEnv (possibly wrapped) and return a ``demos`` Episode."""
    base = env.unwrapped
    recorder = EpisodeRecorder(tasks=base.tasks, kind="demos")
    obs, info = base.reset(seed=seed, options={"task": task} if task else None)
    recorder.start(obs, info)
    done = False
    while not done:
        a = expert(base)
        obs, r, term, trunc, info = base.step(a)
        recorder.step(obs, a, r, term, info)
        done = term or trunc
    return recorder.finish(info)


def fill_store_with_demos(store: Any, env: gym.Env, n_per_task: int, seed: int = 0) -> None:
    """Add ``n_per_task`` expert demos of every task of ``env`` to ``store``."""
    tasks = env.unwrapped.tasks
    for i in range(n_per_task):
        for j, task in enumerate(tasks):
            store.add(record_expert_episode(env, task, seed=seed + 1000 * i + j))
