"""What :class:`~daft_agent.agent.DualActorAgent` needs from an env, and what it reads from one.

* :func:`check_spaces`: a 1-d ``Box(-1, 1)`` action (any size) and a ``Dict`` observation; any
  other env with a continuous action gets them through :class:`~daft_env.adapters.DaftSpaces`,
  which the agent applies itself (:func:`adapt_env`);
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
from gymnasium import spaces

from daft_agent.backbones.registry import EMBEDDING_KEY
from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_env.adapters import warn_once
from daft_env.errors import ConfigError
from daft_env.layout import DAFT_LAYOUT, NO_COMMANDS, ActionLayout, layout_of
from daft_env.tasks import TASK_NAMES, TASKS, task_names


def adapt_env(env: Any, tasks: Sequence[str] | None = None) -> Any:
    """A gym env without DAFT's face wrapped in :class:`~daft_env.adapters.DaftSpaces`.

    An env id (a string) is made first; a VecEnv and an env that already has DAFT's face (a 1-d
    ``Box(-1, 1)`` action, a ``Dict`` observation) are returned as they are.
    """
    from daft_env.adapters import DaftSpaces, needs_adapter

    if isinstance(env, str):
        env = gym.make(env)
    if isinstance(env, gym.Env) and needs_adapter(env):
        try:
            return DaftSpaces(env, tasks)
        except ConfigError as exc:
            raise SpaceMismatchError(f"DualActorAgent cannot run on this env: {exc}") from exc
    return env


def check_spaces(action_space: spaces.Space, observation_space: spaces.Space) -> None:
    """Raise :class:`SpaceMismatchError` unless the action is a 1-d Box(-1, 1) and obs a Dict."""
    from daft_env.adapters import is_daft_action_space

    if not is_daft_action_space(action_space):
        raise SpaceMismatchError(
            f"DualActorAgent acts in a 1-d Box(-1, 1); the env has {action_space}. A gym env "
            "is rescaled by the agent itself; a VecEnv's env must be wrapped first: "
            "daft_env.adapters.DaftSpaces(env)"
        )
    if not isinstance(observation_space, spaces.Dict):
        raise SpaceMismatchError(
            f"DualActorAgent needs a Dict observation space; the env has {observation_space}. "
            "Wrap the env in daft_env.adapters.DaftSpaces (a Box becomes {'observation': box})"
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
    if tasks is None:
        named = _env_attr(vec_env, "task_names")
        if named and (tid is None and len(named) == 1 or tid is not None and len(named) == tid.n):
            tasks = tuple(named)
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
        for name in tasks:
            if name not in TASKS:
                raise AgentConfigError(
                    f"unknown task {name!r}: known tasks are {list(task_names())}. Register a "
                    "task of your own with daft_env.tasks.register_task(name, instruction) (an env "
                    "wrapped in daft_env.adapters.DaftSpaces registers its tasks itself)"
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


def _env_attr(vec_env: Any, name: str) -> Any:
    """An attribute of the one env inside ``vec_env`` (its wrappers first), or None."""
    env = vec_env
    while hasattr(env, "venv"):
        env = env.venv
    envs = getattr(env, "envs", None)
    if not envs:
        return None
    try:
        return envs[0].get_wrapper_attr(name)
    except AttributeError:
        return None


def _env_task(vec_env: Any) -> str:
    """The task of a single-task env: its unwrapped ``task`` attribute (a name or a ``TaskSpec``)."""
    task = None
    if vec_env is not None:
        # The unwrapped env's: a wrapper may have a 'task' of its own (RecordEpisodeToStore's).
        task = getattr(vec_env.get_attr("unwrapped")[0], "task", None)
    name = getattr(task, "name", task)
    if not isinstance(name, str) or name not in TASKS:
        raise AgentConfigError(
            "the env has no 'task_id' observation (a single-task env) and does not name its "
            f"task through a 'task' attribute (found {task!r}); pass tasks=['<name>'], one of "
            f"{list(task_names())} (a task of your own: register_task(name) first)"
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
    try:
        named = env.get_wrapper_attr("task_names")
    except AttributeError:
        named = None
    if named:
        return list(named)
    space = env.observation_space
    if isinstance(space, spaces.Dict) and "task_id" in space.spaces:
        return list(TASK_NAMES[: space["task_id"].n])
    return [env.unwrapped.task.name]


def env_layout(env: Any) -> ActionLayout:
    """The layout of the one env inside ``env`` (a VecEnv or gym env); NO_COMMANDS when none."""
    if env is None:
        return DAFT_LAYOUT  # load(): the checkpoint's replaces it
    inner = env
    while hasattr(inner, "venv"):
        inner = inner.venv
    envs = getattr(inner, "envs", None)
    layout = layout_of(envs[0] if envs else inner)
    return NO_COMMANDS if layout is None else layout


def daft_observation(space: spaces.Dict) -> bool:
    """Whether the observation has the keys of DAFT's own backbones (the bolt cell's)."""
    keys = set(space.spaces)
    return (
        {"state", "gripper"} <= keys
        or {"wrist_rgb", "head_rgb", "gripper"} <= keys
        or (EMBEDDING_KEY in keys)
    )


def default_backbone(policy_kwargs: dict[str, Any], space: spaces.Dict) -> dict[str, Any]:
    """``policy_kwargs`` with ``backbone="generic"`` when unset and the obs is not the bolt cell's.

    DAFT's state and pixel backbones read the bolt cell's keys; any other observation gets the
    per-key generic backbone (images: a CNN each, vectors: standardised, task id: an embedding).
    """
    if "backbone" in policy_kwargs or daft_observation(space):
        return policy_kwargs
    return {**policy_kwargs, "backbone": "generic"}


def check_layout(layout: ActionLayout, action_space: spaces.Space) -> ActionLayout:
    """``layout`` checked against the agent's action; a layout without axes is said once."""
    layout.check(action_space, "the agent")
    if not layout.enabled:
        warn_once(
            "agent-commands-off",
            "the env's action layout has no translation axes, so refinement commands are "
            "off: predict(command=...) acts like the primary actor and the refinement actor "
            "learns nothing (daft_env.layout.ActionLayout describes the axes)",
        )
    return layout


__all__ = [
    "TaskCycle",
    "adapt_env",
    "check_layout",
    "check_spaces",
    "daft_observation",
    "default_backbone",
    "env_layout",
    "env_tasks",
    "resolve_tasks",
    "single_env",
]
