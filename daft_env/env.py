"""``BoltEnv``: the Gymnasium face of DAFT (ARCHITECTURE.md, "Gymnasium face").

One env class serves every id. ``task`` is a task name (single-task env), ``"multi"`` (the task is
chosen per reset, cycled or via ``reset(options={"task": ...})``, and ``task_id`` is observed) or
``"long_horizon"`` (upright -> pickup -> assemble for each of 1-4 bolts in turn; the instruction and
``task_id`` switch when a subtask succeeds, with a fresh per-subtask step limit).

Reward is sparse: r_t = 1 when the (final) task's success predicate holds, else 0 (paper Sec. IV);
a long-horizon episode pays 1 per completed operation and terminates when all are done.

A task of your own (:mod:`daft_env.backends.real.tasks`) runs on the real backend as a single-task
env: ``gym.make(USER_TASK_ENV_ID, task=name, backend_kwargs={"config": "cell.yaml"})`` or the
task's own id. The MuJoCo backend has scenes for the bolt tasks only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from daft_env.backends import Backend, make_backend
from daft_env.backends.predicates import FAILURE_PREDICATES
from daft_env.errors import ConfigError
from daft_env.perception import as_perception_error, perturb_state_vector, seeded_rng
from daft_env.spaces import (
    GRIPPER_DIM,
    HEAD_SHAPE,
    MAX_EPISODE_STEPS,
    OBS_MODES,
    STATE_DIM,
    WRIST_SHAPE,
    action_space,
    validate_action,
)
from daft_env.tasks import TASK_NAMES, TaskSpec, get_task

MODES = ("multi", "long_horizon")
#: The Gymnasium id of any task of your own on the real cell, chosen with ``task=`` at make time.
USER_TASK_ENV_ID = "UserTask-Real-v0"
#: Scene per task for the MuJoCo backend.
SCENES = {
    "upright": "scene_upright.xml",
    "pickup": "scene_pickup.xml",
    "assemble": "scene_assemble.xml",
    "multi": "scene_assemble.xml",
    "long_horizon": "scene_long_horizon.xml",
}
MAX_BOLTS = 4
#: the subtasks a long-horizon chain runs before each task (``chained_starts``)
CHAIN_BEFORE: dict[str, tuple[str, ...]] = {
    "pickup": ("upright",),
    "assemble": ("upright", "pickup"),
}


class BoltEnv(gym.Env):
    """The bolt world behind one Gymnasium interface.

    Args:
        task: ``"upright"``, ``"pickup"``, ``"assemble"``, ``"multi"``, ``"long_horizon"``, or
            (real backend) a task of your own, which the backend's config may register.
        obs_mode: ``"pixels"`` (default), ``"state"`` or ``"pixels+state"``. ``state`` is the
            privileged sim state; in ``"state"`` mode no images are rendered.
        render_mode: ``None``, ``"rgb_array"`` or ``"human"``.
        backend: a backend name (``"mujoco"``, ``"real"``) or a ready :class:`Backend`.
        backend_kwargs: keyword arguments for the backend factory.
        max_episode_steps: truncation limit per (sub)task; None (default) is the task's own
            ``max_steps``: 50 for the bolt tasks, as in the paper.
        n_bolts: bolts per long-horizon episode (1-4); ``reset(options={"n_bolts": k})`` overrides.
        perception_error: sim-only hidden perception error (:mod:`daft_env.perception`): None
            (default, off), True, a magnitude in metres, a dict or a ``PerceptionError``. Each
            reset draws offsets of the observed bolt and fixture positions in ``state``; physics,
            success and ``privileged_state()`` stay true. State mode only: pixel modes refuse it.
        chained_starts: share (0-1) of multi-task ``pickup`` and ``assemble`` resets that start
            where a long-horizon chain leaves the bolt, not from the task's own initial state:
            the scripted expert runs the preceding subtasks first (upright; upright then pickup)
            on a one-bolt long-horizon layout, unseen by the caller. A pickup after an upright
            starts with the hand beside a standing bolt, an assemble after a pickup with a
            side grasp; neither occurs in the tasks' own resets, so a policy trained without
            them does not chain. Sim only (needs privileged state); 0 (default) is off. A chain
            the expert does not finish falls back to the task's own reset.
        failure_terminal: end an episode, terminated with reward 0, in a state the task cannot
            recover from (:data:`~daft_env.backends.predicates.FAILURE_PREDICATES`: an assemble
            bolt tilted past 45 deg or dropped on the table), with ``info["failure"]`` naming it,
            so a critic learns that the state is worth nothing instead of bootstrapping an
            optimistic value from a truncated episode. Sim only; False (default) runs on to the
            step limit. ``info["failure"]`` is None on every other step.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10}

    def __init__(
        self,
        task: str = "multi",
        obs_mode: str = "pixels",
        render_mode: str | None = None,
        backend: str | Backend = "mujoco",
        backend_kwargs: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = None,
        n_bolts: int = 1,
        perception_error: Any = None,
        chained_starts: float = 0.0,
        failure_terminal: bool = False,
    ) -> None:
        # The real backend looks its task up itself, after reading its config: the config's
        # tasks: section may register it (before anything connects to the arm).
        if task not in MODES and not (isinstance(backend, str) and backend == "real"):
            get_task(task)  # raises UnknownTaskError listing the valid names
        if isinstance(backend, str) and backend == "mujoco" and task not in SCENES:
            raise ConfigError(
                f"task {task!r} has no MuJoCo scene: the simulation knows DAFT's bolt tasks only "
                f"({list(TASK_NAMES)} and {list(MODES)}). A task of your own runs on the real "
                f"cell: backend='real', its -Real-v0 id or {USER_TASK_ENV_ID} with task={task!r}"
            )
        if obs_mode not in OBS_MODES:
            raise ConfigError(f"unknown obs_mode {obs_mode!r}; valid modes are {list(OBS_MODES)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"unknown render_mode {render_mode!r}; valid modes are "
                f"{self.metadata['render_modes']} or None"
            )
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise ConfigError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self._check_n_bolts(n_bolts)
        if not 0.0 <= float(chained_starts) <= 1.0:
            raise ConfigError(f"chained_starts is a share in [0, 1]; got {chained_starts!r}")
        if chained_starts and task != "multi":
            raise ConfigError(
                f"chained_starts needs the multi-task env (BoltMultiTask-Sim-v0), not task={task!r}"
            )
        self.chained_starts = float(chained_starts)
        self.failure_terminal = bool(failure_terminal)
        #: whether this episode started from a chain (see ``chained_starts``)
        self.chained = False
        self.perception_error = as_perception_error(perception_error)
        if self.perception_error is not None and obs_mode != "state":
            raise ConfigError(
                f"perception_error offsets the state observation only; obs_mode={obs_mode!r} "
                "renders the true scene for the cameras (not implemented for pixels yet). Use "
                "obs_mode='state', or perception_error=None"
            )
        #: this episode's hidden offsets (object -> (3,) metres); empty when the option is off
        self.perception_offsets: dict[str, np.ndarray] = {}
        self._perception_rng = seeded_rng(None)
        self.mode = task
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self._max_episode_steps = max_episode_steps
        self.n_bolts = int(n_bolts)
        if isinstance(backend, str):
            kwargs = dict(backend_kwargs or {})
            if backend == "mujoco":
                kwargs.setdefault("scene", SCENES[task])
            elif backend == "real" and task not in MODES:
                kwargs.setdefault("task", task)  # a task of your own brings its cell settings
            self.backend: Backend = make_backend(backend, **kwargs)
            try:
                self._setup(task, obs_mode)
            except BaseException:
                # What this constructor built, it closes: a real backend's camera reader threads
                # would otherwise outlive the error and abort the interpreter at exit.
                self.backend.close()
                raise
        else:  # a ready backend belongs to the caller, who closes it
            self.backend = backend
            self._setup(task, obs_mode)

    def _setup(self, task: str, obs_mode: str) -> None:
        """Spaces and episode counters, once the backend exists."""
        self._pixels = obs_mode in ("pixels", "pixels+state")
        self._state = obs_mode in ("state", "pixels+state")
        if self._state and not self.backend.has_privileged_state:
            raise ConfigError(
                f"obs_mode={obs_mode!r} needs privileged state, which only simulation has; "
                "use obs_mode='pixels' with this backend."
            )
        if self.failure_terminal and not self.backend.has_privileged_state:
            raise ConfigError(
                "failure_terminal reads the privileged state, which only simulation has; use "
                "failure_terminal=False with this backend"
            )
        if self.chained_starts and not self.backend.has_privileged_state:
            raise ConfigError(
                "chained_starts runs the scripted expert, which needs privileged state; only "
                "simulation has it. Use chained_starts=0 with this backend."
            )
        self.action_space = action_space()
        obs_spaces: dict[str, spaces.Space] = {}
        if self._pixels:
            obs_spaces["wrist_rgb"] = spaces.Box(0, 255, WRIST_SHAPE, dtype=np.uint8)
            obs_spaces["head_rgb"] = spaces.Box(0, 255, HEAD_SHAPE, dtype=np.uint8)
        obs_spaces["gripper"] = spaces.Box(0.0, 1.0, (GRIPPER_DIM,), dtype=np.float32)
        if task in MODES:
            obs_spaces["task_id"] = spaces.Discrete(len(TASK_NAMES))
        if self._state:
            obs_spaces["state"] = spaces.Box(-10.0, 10.0, (STATE_DIM,), dtype=np.float32)
        self.observation_space = spaces.Dict(obs_spaces)

        self._cycle = 0
        self.task: TaskSpec = get_task("upright" if task in MODES else task)
        limit = self._max_episode_steps
        if limit is None:
            limit = MAX_EPISODE_STEPS if task in MODES else self.task.max_steps
        self.max_episode_steps = int(limit)
        self._steps = 0
        self._subtask_steps = 0
        self._ops_done = 0
        self._ops_total = 1
        self._bolt = 0
        self._episode_n_bolts = self.n_bolts

    @staticmethod
    def _check_n_bolts(n: object) -> None:
        if not isinstance(n, (int, np.integer)) or not 1 <= int(n) <= MAX_BOLTS:
            raise ConfigError(f"n_bolts must be an integer in 1..{MAX_BOLTS}, got {n!r}")

    # ------------------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode. Options: ``task`` (multi-task env), ``n_bolts`` (long horizon)."""
        super().reset(seed=seed)
        if seed is not None:  # a seeded reset restarts the task cycle, so it is reproducible
            self._cycle = 0
        options = dict(options or {})
        backend_options: dict[str, Any] = {}
        if self.mode == "multi":
            if options.get("task") is not None:
                self.task = get_task(options["task"])
            else:
                self.task = get_task(TASK_NAMES[self._cycle % len(TASK_NAMES)])
                self._cycle += 1
        elif self.mode == "long_horizon":
            n = options.get("n_bolts", self.n_bolts)
            self._check_n_bolts(n)
            self._episode_n_bolts = int(n)
            backend_options = {"n_bolts": self._episode_n_bolts, "layout": "long_horizon"}
            self.task = get_task("upright")
        else:
            if options.get("task") is not None and get_task(options["task"]).name != self.mode:
                raise ConfigError(
                    f"this env only runs task {self.mode!r}; use BoltMultiTask-* to choose tasks"
                )
        self._steps = 0
        self._subtask_steps = 0
        self._ops_done = 0
        self._bolt = 0
        self._ops_total = 3 * self._episode_n_bolts if self.mode == "long_horizon" else 1
        self.chained = (
            self.task.name in CHAIN_BEFORE
            and self.chained_starts > 0
            and self.np_random.random() < self.chained_starts
            and self._chain_to(self.task)
        )
        if not self.chained:
            self.backend.reset(self.task, self.np_random, backend_options)
        if self.mode == "long_horizon":
            self.backend.set_active_bolt(0)
        if self.perception_error is not None:
            if seed is not None:  # its own stream: the scene layout is the same with or without
                self._perception_rng = seeded_rng(seed)
            self.perception_offsets = self.perception_error.draw(self._perception_rng)
        status = self.backend.task_status()
        info = self._info(status.success, status.info, None)
        if self.chained_starts:
            info["chained_start"] = self.chained
        return self._obs(), info

    def _chain_to(self, task: Any) -> bool:
        """Run the scripted expert through the subtasks before ``task`` (see ``chained_starts``).

        Returns False, leaving the scene to the caller's ordinary reset, when a subtask is not
        done within ``max_episode_steps`` or the bolt is lost.
        """
        from daft_env.experts import make_expert  # experts import the backend: not at import

        expert = make_expert("multi")
        self.backend.reset(
            get_task("upright"), self.np_random, {"n_bolts": 1, "layout": "long_horizon"}
        )
        self.backend.set_active_bolt(0)
        for name in CHAIN_BEFORE[task.name]:
            self.backend.set_task(get_task(name))
            for _ in range(self.max_episode_steps):
                self.backend.apply_action(expert.act(self.backend.privileged_state()))
                status = self.backend.task_status()
                if status.success or status.failed:
                    break
            if not status.success:
                return False
        self.backend.set_task(task)
        return True

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Act for one 10 Hz period, observe, compute the sparse reward and the episode end."""
        act = validate_action(action)
        report = self.backend.apply_action(act)
        self._steps += 1
        self._subtask_steps += 1
        status = self.backend.task_status()
        reward = 0.0
        # A hardware fault (lost server, dead camera) ends the episode but is not a true terminal
        # state of the task: marking it truncated keeps the learner from bootstrapping a zero value
        # from it. A physical failure (bolt off the table) is a real absorbing state.
        fault = bool(status.failed) and "backend_error" in status.info
        terminated = bool(status.failed) and not fault
        success = bool(status.success)
        if success:
            reward = 1.0
            self._ops_done += 1
            if self.mode == "long_horizon" and self._ops_done < self._ops_total:
                self._advance_subtask()
                success = False
            else:
                terminated = True
        failure = None
        if self.failure_terminal and not (terminated or fault):
            check = FAILURE_PREDICATES.get(self.task.name)
            failure = None if check is None else check(self.backend.privileged_state())
            terminated = failure is not None
        truncated = (not terminated) and (fault or self._subtask_steps >= self.max_episode_steps)
        info = self._info(success, status.info, report)
        info["failed"] = bool(status.failed) or failure is not None
        info["failure"] = failure
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward, terminated, truncated, info

    def _advance_subtask(self) -> None:
        k = self._ops_done
        self._bolt = k // 3
        self.task = get_task(TASK_NAMES[k % 3])
        self.backend.set_active_bolt(self._bolt)
        self.backend.set_task(self.task)
        self._subtask_steps = 0

    # ------------------------------------------------------------------------------------------
    def _obs(self) -> dict[str, Any]:
        obs = self.backend.observe(pixels=self._pixels, state=self._state)
        out: dict[str, Any] = {}
        if self._pixels:
            out["wrist_rgb"] = obs["wrist_rgb"]
            out["head_rgb"] = obs["head_rgb"]
        out["gripper"] = np.asarray(obs["gripper"], dtype=np.float32).reshape(GRIPPER_DIM)
        if self.mode in MODES:
            out["task_id"] = int(self.task.task_id)
        if self._state:
            out["state"] = obs["state"]
            if self.perception_offsets:  # the policy sees the objects where it perceives them
                out["state"] = perturb_state_vector(obs["state"], self.perception_offsets)
        return out

    def _info(self, success: bool, extra: Mapping[str, Any], report: Any) -> dict[str, Any]:
        info: dict[str, Any] = {
            "instruction": self.task.instruction,
            "task": self.task.name,
            "task_id": int(self.task.task_id),
            "is_success": bool(success),
            "steps": self._steps,
            "subtask_steps": self._subtask_steps,
        }
        info.update(extra)
        if self.mode == "long_horizon":
            info["operations_completed"] = self._ops_done
            info["operations_total"] = self._ops_total
            info["bolt_index"] = self._bolt
        if report is not None:
            info["action_clipped"] = bool(report.clipped)
            info["clip_reasons"] = tuple(report.clip_reasons)
        return info

    def privileged_state(self) -> dict[str, Any]:
        """Physical state for scripted experts and the simulated operator.

        Raises:
            BackendError: the backend is a real arm (only simulation has privileged state).
        """
        return self.backend.privileged_state()

    def render(self) -> np.ndarray | None:
        """Head-camera frame for ``rgb_array``; the MuJoCo viewer for ``human``."""
        if self.render_mode == "rgb_array":
            return self.backend.render("head")
        if self.render_mode == "human":
            self.backend.render_human()
        return None

    def stop(self) -> None:
        """Halt the robot at once (an emergency stop); the next :meth:`reset` resumes."""
        self.backend.stop()

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()


def make_user_task_env(task: str | None = None, **kwargs: Any) -> BoltEnv:
    """The entry point of ``UserTask-Real-v0``: ``BoltEnv(task, backend="real", **kwargs)``.

    ``task`` names a task of your own, registered in code or in the ``tasks:`` section of the
    config the backend reads (:mod:`daft_env.backends.real.tasks`).

    Raises:
        ConfigError: no task, or a mode of several tasks (the message says what to pass).
    """
    if task is None or task in MODES:
        from daft_env.backends.real.tasks import load_real_tasks, real_tasks

        load_real_tasks((kwargs.get("backend_kwargs") or {}).get("config"))
        raise ConfigError(
            f"{USER_TASK_ENV_ID} runs one task of your own; got task={task!r}. Fix: name it, "
            f"e.g. gym.make({USER_TASK_ENV_ID!r}, task='cable_insert', backend_kwargs="
            "{'config': 'cell.yaml'}); the registered ones are "
            f"{[t.name for t in real_tasks()]} (from daft_env.register_real_task or a config's "
            "tasks: section). For several bolt tasks use BoltMultiTask-Real-v0"
        )
    kwargs.setdefault("backend", "real")
    return BoltEnv(task=task, **kwargs)


# gym.make reads a creator's metadata for its render modes (e.g. to offer "rgb_array_list").
make_user_task_env.metadata = BoltEnv.metadata
