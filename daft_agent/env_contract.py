"""What :class:`~daft_agent.agent.DualActorAgent` needs from an env, and what it reads from one.

* :func:`check_spaces`: DAFT's 7-d action space and a ``Dict`` observation;
* :func:`resolve_tasks`: the agent's task list. A multi-task env's ``task_id`` indexes
  :data:`~daft_env.tasks.TASK_NAMES`; a single-task env (no ``task_id``) names its task through
  its ``task`` attribute (``BoltEnv.task`` is a :class:`~daft_env.tasks.TaskSpec`). Episodes
  always carry the store's global task id (the recorder's); the agent's own order of ``tasks``
  only routes buffer rows to critics;
* :func:`single_env`: the one gym env under SB3's VecEnv, which the interaction loop steps;
* :class:`TaskCycle`: reset options asking for the tasks round-robin (Algorithm 1 interacts task
  by task), for the in-process loop and the fleet's robots alike;
* :func:`env_tasks`: a DAFT env's task names, for a run that has the env but no agent yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_env.tasks import TASK_NAMES


def check_spaces(action_space: spaces.Space, observation_space: spaces.Space) -> None:
    """Raise :class:`SpaceMismatchError` unless the spaces are DAFT's (Box(-1, 1, (7,)), Dict)."""
    act = action_space
    if not (
        isinstance(act, spaces.Box)
        and act.shape == (7,)
        and np.allclose(act.low, -1)
        and np.allclose(act.high, 1)
    ):
        raise SpaceMismatchError(
            f"DualActorAgent needs DAFT's action space Box(-1, 1, (7,)) (dx, dy, dz, droll, dpitch, "
            f"dyaw, gripper); the env has {act}"
        )
    if not isinstance(observation_space, spaces.Dict):
        raise SpaceMismatchError(
            f"DualActorAgent needs a Dict observation space; the env has {observation_space}"
        )


def resolve_tasks(
    observation_space: spaces.Dict, tasks: Sequence[str] | None, vec_env: Any
) -> tuple[str, ...]:
    """The agent's task names in ``task_id`` order.

    Args:
        observation_space: the env's observation space.
        tasks: the names the user gave, or None.
        vec_env: SB3's VecEnv around the env (None when loading without one).

    Raises:
        SpaceMismatchError: ``tasks`` disagrees with the ``task_id`` space.
        AgentConfigError: the task list cannot be told (the message says how to name it).
    """
    tid = observation_space.spaces.get("task_id")
    if tasks is not None:
        if tid is not None and int(tid.n) != len(tasks):
            raise SpaceMismatchError(
                f"tasks={list(tasks)} but the env's task_id space has {tid.n} values"
            )
        if tid is None and len(tasks) != 1:
            raise SpaceMismatchError(
                f"tasks={list(tasks)} but the env has no 'task_id' observation, so it runs one "
                "task; pass that one task, or use a multi-task env"
            )
        return tuple(tasks)
    if tid is None:
        return (_env_task(vec_env),)
    n = int(tid.n)
    if n > len(TASK_NAMES):
        raise AgentConfigError(
            f"task_id has {n} values but only {len(TASK_NAMES)} tasks are known; pass tasks=[...]"
        )
    return tuple(TASK_NAMES[:n])


def _env_task(vec_env: Any) -> str:
    """The task of a single-task env: its unwrapped ``task`` attribute (a name or a ``TaskSpec``)."""
    task = None
    if vec_env is not None:
        # The unwrapped env's: a wrapper may have a 'task' of its own (RecordEpisodeToStore's).
        task = getattr(vec_env.get_attr("unwrapped")[0], "task", None)
    name = getattr(task, "name", task)
    if name not in TASK_NAMES:
        raise AgentConfigError(
            "the env has no 'task_id' observation (a single-task env) and does not name its "
            f"task through a 'task' attribute (found {task!r}); pass tasks=['<name>'], one of "
            f"{list(TASK_NAMES)}"
        )
    return str(name)


def single_env(vec_env: Any, store: Any) -> gym.Env:
    """The one gym env inside SB3's VecEnv (the interaction loop steps it directly).

    Raises:
        AgentConfigError: not exactly one env; or, when the agent writes episodes to ``store``
            itself, the env is under ``RecordEpisodeToStore``, which would store each online
            episode a second time.
    """
    from daft_env.wrappers import RecordEpisodeToStore

    env = vec_env
    while hasattr(env, "venv"):
        env = env.venv
    envs = getattr(env, "envs", None)
    if not envs or len(envs) != 1:
        raise AgentConfigError(
            "DualActorAgent.learn needs a single gym env (or a 1-env DummyVecEnv)"
        )
    inner = envs[0]
    while store is not None and isinstance(inner, gym.Wrapper):
        if isinstance(inner, RecordEpisodeToStore):
            raise AgentConfigError(
                "the env is wrapped in RecordEpisodeToStore, which would store every online "
                "episode a second time beside the agent's own copy (store=...); give the agent "
                "the env inside it (e.g. the InterventionWrapper), or pass store=None"
            )
        inner = inner.env
    return envs[0]


class TaskCycle:
    """Picklable reset options: the tasks round-robin (Algorithm 1 interacts task by task).

    Calling it gives the next reset's options, ``{"task": name}``, or None for one task (envs
    that ignore reset options simply pick their own task). ``start`` continues a count (a
    restarted robot resumes the order after the episodes the learner already has).
    """

    def __init__(self, tasks: Sequence[str], start: int = 0) -> None:
        self.tasks = tuple(tasks)
        self.i = int(start)

    def __call__(self) -> dict[str, Any] | None:
        """The next reset's options."""
        if len(self.tasks) < 2:
            return None
        task = self.tasks[self.i % len(self.tasks)]
        self.i += 1
        return {"task": task}


def env_tasks(env: gym.Env) -> list[str]:
    """A DAFT env's task names in ``task_id`` order (a single-task env's own task)."""
    space = env.observation_space
    if isinstance(space, spaces.Dict) and "task_id" in space.spaces:
        return list(TASK_NAMES[: space["task_id"].n])
    return [env.unwrapped.task.name]


__all__ = ["TaskCycle", "check_spaces", "env_tasks", "resolve_tasks", "single_env"]
