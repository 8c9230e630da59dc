"""Small synthetic stand-ins with DAFT's spaces, for tests, benchmarks and examples.

* :class:`ToyBoltEnv`: a point "gripper" reaches a randomised target per task (no physics), with
  exactly the observation/action spaces and ``info`` keys of ``BoltEnv`` (``state`` or ``pixels``).
* :func:`toy_expert`: its scripted closed-loop expert.
* :class:`ToyInterventionWrapper`: a simulated operator that takes over with the expert when the
  policy drifts, and labels the episode with talk-and-tweak commands (Eq. 12-13) at its end; in
  ``talk_only`` mode it never takes over but speaks a refinement command
  (``info["refinement_command_now"]``).
* :class:`InMemoryEpisodeStore`: the episode-store duck type (``add``, ``episodes``, ``count``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from daft_agent.encoders import NULL_COMMAND, command_from_signs
from daft_env.episode import Episode
from daft_env.spaces import ACTION_SCALE, action_space
from daft_env.tasks import INSTRUCTIONS, TASK_NAMES

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


def label_commands(
    actions: np.ndarray, intervened: np.ndarray, window: int = 5, sigma: float = 0.001
) -> list[str]:
    """Talk-and-tweak labels (Eq. 12-13): signs of the J-step summed intervention translation."""
    t_len = len(actions)
    out = []
    for t in range(t_len):
        if not intervened[t]:
            out.append(NULL_COMMAND)
            continue
        sl = slice(t, min(t + window, t_len))
        moves = (actions[sl, :3] * ACTION_SCALE[:3] * intervened[sl, None]).sum(0)
        out.append(command_from_signs(np.where(np.abs(moves) > sigma, np.sign(moves), 0)))
    return out


class ToyInterventionWrapper(gym.Wrapper):
    """A simulated operator over :class:`ToyBoltEnv` with the intervention wrapper's ``info`` keys.

    It takes over with the expert for ``hold`` steps when the policy's translation points away from
    the expert's by more than ``threshold`` (cosine < 1 - threshold) with probability ``p``. At the
    last step it adds ``episode_refinement_commands``. With ``talk_only`` it never takes over and
    instead speaks the direction the expert would move in (``refinement_command_now``).
    """

    def __init__(
        self,
        env: ToyBoltEnv,
        p: float = 0.5,
        threshold: float = 0.5,
        hold: int = 5,
        talk_only: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(env)
        self.p, self.threshold, self.hold, self.talk_only = p, threshold, hold, talk_only
        self.rng = np.random.default_rng(seed)
        self._left = 0
        self._actions: list[np.ndarray] = []
        self._intv: list[bool] = []

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env and the operator's episode state."""
        self._left = 0
        self._actions, self._intv = [], []
        obs, info = self.env.reset(**kwargs)
        info["refinement_command_now"] = None
        return obs, info

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step with the policy's action, or the expert's while the operator holds control."""
        base: ToyBoltEnv = self.env.unwrapped  # type: ignore[assignment]
        expert = toy_expert(base)
        policy_action = np.asarray(action, np.float32)
        pa, ea = policy_action[:3], expert[:3]
        cos = float(pa @ ea / (np.linalg.norm(pa) * np.linalg.norm(ea) + 1e-8))
        wrong_grip = np.sign(policy_action[6]) != np.sign(expert[6])
        if (
            not self.talk_only
            and self._left == 0
            and (cos < 1 - self.threshold or wrong_grip)
            and self.rng.random() < self.p
        ):
            self._left = self.hold
        intervened = self._left > 0
        self._left = max(0, self._left - 1)
        executed = expert if intervened else policy_action
        obs, reward, terminated, truncated, info = self.env.step(executed)
        self._actions.append(executed)
        self._intv.append(intervened)
        info.update(
            intervened=intervened,
            policy_action=policy_action,
            intervention_action=expert if intervened else None,
        )
        info["refinement_command_now"] = None
        if self.talk_only:
            err = (ea - pa) * ACTION_SCALE[:3]
            signs = np.where(np.abs(err) > 0.004, np.sign(err), 0)
            info["refinement_command_now"] = command_from_signs(signs) if signs.any() else None
        if terminated or truncated:
            info["episode_refinement_commands"] = label_commands(
                np.stack(self._actions), np.asarray(self._intv)
            )
        return obs, reward, terminated, truncated, info


class InMemoryEpisodeStore:
    """The episode-store duck type, in memory; with ``root`` it also pickles each episode to disk."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else None
        self._episodes: list[Episode] = []
        if self.root is not None:
            import pickle

            self.root.mkdir(parents=True, exist_ok=True)
            for f in sorted(self.root.glob("*.pkl")):
                with open(f, "rb") as fh:
                    self._episodes.append(pickle.load(fh))

    def add(self, episode: Episode) -> Path:
        """Keep the episode; returns its (virtual) path."""
        self._episodes.append(episode)
        path = Path(f"{len(self._episodes):06d}.pkl")
        if self.root is not None:
            import pickle

            path = self.root / path
            with open(path, "wb") as fh:
                pickle.dump(episode, fh)
        return path

    def episodes(self, task: str | None = None, kind: str | None = None) -> Iterator[Episode]:
        """Episodes, optionally of one task and kind."""
        for ep in list(self._episodes):
            if (task is None or ep.task == task) and (kind is None or ep.kind == kind):
                yield ep

    def count(self, task: str | None = None, kind: str | None = None) -> int:
        """How many episodes match."""
        return sum(1 for _ in self.episodes(task, kind))


def record_expert_episode(
    env: gym.Env, task: str | None = None, seed: int | None = None, expert=toy_expert
) -> Episode:
    """Roll out the expert once on a ToyBoltEnv (possibly wrapped) and return a ``demos`` Episode."""
    base = env.unwrapped
    opts = {"task": task} if task else None
    obs, info = env.reset(seed=seed, options=opts)
    obs_list, actions, rewards, terms = [obs], [], [], []
    done = False
    while not done:
        a = expert(base)
        obs, r, term, trunc, info = base.step(a)
        obs_list.append(obs)
        actions.append(a)
        rewards.append(r)
        terms.append(term)
        done = term or trunc
    t_len = len(actions)
    return Episode(
        task=info["task"],
        task_id=base.tasks.index(info["task"]),
        instruction=info["instruction"],
        kind="demos",
        observations={k: np.stack([np.asarray(o[k]) for o in obs_list]) for k in obs_list[0]},
        actions=np.stack(actions).astype(np.float32),
        policy_actions=np.stack(actions).astype(np.float32),
        intervened=np.zeros(t_len, bool),
        rewards=np.asarray(rewards, np.float32),
        terminated=np.asarray(terms, bool),
        refinement_commands=[NULL_COMMAND] * t_len,
        success=bool(info["is_success"]),
    )


def fill_store_with_demos(store: Any, env: gym.Env, n_per_task: int, seed: int = 0) -> None:
    """Add ``n_per_task`` expert demos of every task of ``env`` to ``store``."""
    tasks = env.unwrapped.tasks
    for i in range(n_per_task):
        for j, task in enumerate(tasks):
            store.add(record_expert_episode(env, task, seed=seed + 1000 * i + j))
