"""Any Gymnasium env with a continuous action, as DAFT sees one: :class:`DaftSpaces`.

DAFT's learner, talk-and-tweak and simulated operator work on one canonical face:

* an action ``Box(-1, 1, (n,))``, any ``n``: the env's own ``Box(low, high)`` is rescaled
  linearly, ``a_env = low + (a + 1) (high - low) / 2``, and back (:meth:`DaftSpaces.to_unit`);
* a ``Dict`` observation: a plain ``Box`` observation becomes ``{"observation": box}``; a multi-task
  env gets ``"task_id"`` (``Discrete(len(tasks))``), the index of the current task in ``tasks``;
* task names: from ``tasks=``, else the env's ``task_names`` attribute (a sequence of names), else
  its ``task`` attribute (one task: a name or an object with ``.name``). Each name is registered
  (:func:`daft_env.tasks.register_task`, the instruction from an ``instructions`` mapping on the
  env when it has one). Which task runs: ``info["task"]`` when it names one, else the env's
  ``task`` attribute. A multi-task env takes ``reset(options={"task": name})``, as ``BoltEnv``
  does, to run a given task (the agent asks for them round-robin);
* the :class:`~daft_env.layout.ActionLayout` (``action_layout``): the one the user gives, else the
  env's ``action_layout`` attribute, checked against the env's action space and rescaled to the
  normalised action. None: commands are off (a warning says so once).

An env that already has DAFT's face (``BoltEnv``: Dict observation, ``Box(-1, 1, (7,))``) needs
no adapter (:func:`needs_adapter`), so the bolt tasks run exactly as before.

Stacking: ``InterventionWrapper(DaftSpaces(env), operator)``. The operator's plan acts in the env's
own units on its own observation (:attr:`DaftSpaces.raw_obs`); the operator converts with
:meth:`DaftSpaces.to_unit`. An :class:`~daft_env.wrappers.InterventionWrapper` *inside* the
adapter also works: the action keys it puts in ``info`` are rescaled on the way out.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from daft_env.errors import ConfigError
from daft_env.layout import ActionLayout, layout_of
from daft_env.tasks import TASKS, register_task

#: the observation key of a plain Box observation
OBS_KEY = "observation"
#: info keys holding actions in the wrapped env's units (InterventionWrapper's)
ACTION_INFO_KEYS = ("policy_action", "executed_action", "intervention_action", "intended_action")
_WARNED: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Warn ``message`` once per process per ``key`` (a setting that is off, said once)."""
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, stacklevel=3)


def is_daft_action_space(space: spaces.Space) -> bool:
    """A 1-d ``Box`` in [-1, 1]: what DAFT's learner acts in."""
    return (
        isinstance(space, spaces.Box)
        and len(space.shape) == 1
        and bool(np.allclose(space.low, -1.0))
        and bool(np.allclose(space.high, 1.0))
    )


def needs_adapter(env: gym.Env) -> bool:
    """Whether ``env`` must be wrapped in :class:`DaftSpaces` for DAFT's learner."""
    return not (
        is_daft_action_space(env.action_space) and isinstance(env.observation_space, spaces.Dict)
    )


def _check_action_space(space: spaces.Space) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ConfigError(
            f"DAFT needs a continuous action: a 1-d gymnasium Box; the env has {space}. Wrap a "
            "discrete or nested action into a Box (e.g. gymnasium.wrappers.FlattenObservation's "
            "counterpart for actions) before handing it to DAFT"
        )
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    bad = [i for i in range(low.size) if not (np.isfinite(low[i]) and np.isfinite(high[i]))]
    if bad:
        raise ConfigError(
            f"action dimensions {bad} are unbounded ({space}); DAFT rescales each dimension to "
            "[-1, 1], so each needs finite bounds: give the env's Box its real limits, or wrap it "
            "in gymnasium.wrappers.ClipAction with bounds"
        )
    if np.any(high <= low):
        raise ConfigError(f"action space {space} has a dimension with high <= low")
    return low, high


def env_task_names(env: gym.Env, tasks: Sequence[str] | None = None) -> tuple[str, ...]:
    """The env's task names: ``tasks``, else its ``task_names``, else its one ``task``."""
    if tasks is not None:
        names = tuple(str(t) for t in tasks)
    else:
        names = tuple(_attr(env, "task_names") or ())
        if not names:
            task = _attr(env, "task")
            name = getattr(task, "name", task)
            if not isinstance(name, str):
                raise ConfigError(
                    "cannot tell the env's tasks: it has no 'task_names' attribute (a sequence of "
                    "names) and no 'task' attribute naming its one task; pass tasks=[...] "
                    "(daft ... --tasks a,b)"
                )
            names = (name,)
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"tasks must be one or more distinct names; got {list(names)}")
    return names


def _attr(env: gym.Env, name: str) -> Any:
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        return getattr(env.unwrapped, name, None)


def register_env_tasks(env: gym.Env, names: Sequence[str]) -> None:
    """Register ``names`` (instructions from the env's ``instructions`` mapping when it has one)."""
    instructions = _attr(env, "instructions")
    for name in names:
        if name in TASKS:
            continue
        text = instructions.get(name) if isinstance(instructions, Mapping) else None
        register_task(name, text)


class DaftSpaces(gym.Wrapper):
    """DAFT's face on any env with a continuous action (module docstring).

    Args:
        env: a Gymnasium env with a 1-d ``Box`` action with finite bounds and a ``Box`` or
            ``Dict`` observation.
        tasks: the env's task names (default: from the env).
        layout: the talk-and-tweak :class:`~daft_env.layout.ActionLayout` in the env's own action
            units (default: the env's ``action_layout``, else commands off).

    Raises:
        ConfigError: an action that is not a bounded 1-d Box, an observation that is neither Box
            nor Dict, a layout that does not fit the action, or tasks that cannot be told.
    """

    def __init__(
        self,
        env: gym.Env,
        tasks: Sequence[str] | None = None,
        layout: ActionLayout | None = None,
    ) -> None:
        super().__init__(env)
        self.low, self.high = _check_action_space(env.action_space)
        self._env_dtype = env.action_space.dtype
        self.action_space = spaces.Box(-1.0, 1.0, shape=self.low.shape, dtype=np.float32)
        self.task_names = env_task_names(env, tasks)
        register_env_tasks(env, self.task_names)
        obs = env.observation_space
        if isinstance(obs, spaces.Dict):
            self._wrap_key = None
            parts = dict(obs.spaces)
        elif isinstance(obs, spaces.Box):
            self._wrap_key = OBS_KEY
            parts = {OBS_KEY: obs}
        else:
            raise ConfigError(
                f"DAFT needs a Box or Dict observation; the env has {obs}. Flatten it into a Box "
                "(gymnasium.wrappers.FlattenObservation) or a Dict of Boxes"
            )
        self._add_task_id = len(self.task_names) > 1 and "task_id" not in parts
        if self._add_task_id:
            parts["task_id"] = spaces.Discrete(len(self.task_names))
        self.observation_space = spaces.Dict(parts)
        given = layout if layout is not None else layout_of(env)
        if given is None:
            warn_once(
                f"layout:{type(env.unwrapped).__name__}",
                f"{type(env.unwrapped).__name__} states no action layout (which action dimensions "
                "translate the tool, and in which words), so talk-and-tweak commands are off: "
                "every step is labelled [null] and the refinement actor has nothing to learn. "
                "Give one with layout=ActionLayout(...) (daft_env.layout) or an 'action_layout' "
                "attribute on the env",
            )
            self.action_layout: ActionLayout | None = None
        else:
            given.check(env.action_space, type(env.unwrapped).__name__)
            self.action_layout = given.rescaled(self.low, self.high)
        self.env_layout = given
        own = tuple(_attr(env, "task_names") or ())
        #: the env runs more tasks than asked for: each reset asks for one of ours, round-robin
        self._restricted = bool(own) and own != self.task_names
        self._resets = 0
        self.raw_obs: Any = None
        self.task: str = self.task_names[0]

    # ------------------------------------------------------------------ actions
    def to_env(self, action: Any) -> np.ndarray:
        """A normalised action in [-1, 1] -> the env's units (clipped to [-1, 1] first)."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(self.low.shape), -1.0, 1.0)
        return self.low + (a + 1.0) * (self.high - self.low) / 2.0

    def to_unit(self, action: Any) -> np.ndarray:
        """An action in the env's units -> normalised [-1, 1] (clipped to the env's bounds)."""
        a = np.clip(
            np.asarray(action, dtype=np.float64).reshape(self.low.shape), self.low, self.high
        )
        return 2.0 * (a - self.low) / (self.high - self.low) - 1.0

    # ------------------------------------------------------------------ observations, tasks
    def _current_task(self, info: Mapping[str, Any]) -> str:
        name = info.get("task")
        name = getattr(name, "name", name)
        if isinstance(name, str) and name in self.task_names:
            return name
        task = getattr(self.env.unwrapped, "task", None)
        name = getattr(task, "name", task)
        if isinstance(name, str) and name in self.task_names:
            return name
        if len(self.task_names) == 1:
            return self.task_names[0]
        raise ConfigError(
            f"cannot tell which of the tasks {list(self.task_names)} the env runs: its info has "
            "no 'task' naming one and its 'task' attribute names none. Put the task's name in "
            "info['task'] (reset and step) or in env.task"
        )

    def _obs(self, obs: Any) -> dict[str, Any]:
        self.raw_obs = obs
        out = {self._wrap_key: obs} if self._wrap_key else dict(obs)
        if self._add_task_id:
            out["task_id"] = np.int64(self.task_names.index(self.task))
        return out

    def _info(self, info: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(info)
        for key in ACTION_INFO_KEYS:
            v = out.get(key)
            if isinstance(v, np.ndarray) and v.shape == self.low.shape:
                out[key] = self.to_unit(v).astype(np.float32)
        out["task"] = self.task
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env; ``options={"task": name}`` is passed on (the env picks that task)."""
        if options and "task" in options and options["task"] not in self.task_names:
            raise ConfigError(
                f"unknown task {options['task']!r} for this env; its tasks are {list(self.task_names)}"
            )
        if self._restricted and not (options and "task" in options):
            pick = self.task_names[self._resets % len(self.task_names)]
            options = {**(options or {}), "task": pick}
        self._resets += 1
        obs, info = self.env.reset(seed=seed, options=options)
        self.task = self._current_task(info)
        return self._obs(obs), self._info(info)

    def step(self, action: Any):
        """Step with a normalised action (rescaled to the env's units)."""
        env_action = self.to_env(action).astype(self._env_dtype)
        obs, reward, terminated, truncated, info = self.env.step(env_action)
        return self._obs(obs), reward, terminated, truncated, self._info(info)


def find_adapter(env: Any) -> DaftSpaces | None:
    """The :class:`DaftSpaces` in ``env``'s wrapper chain, or None."""
    while env is not None:
        if isinstance(env, DaftSpaces):
            return env
        env = getattr(env, "env", None)
    return None


def as_daft_env(
    env: gym.Env, tasks: Sequence[str] | None = None, layout: ActionLayout | None = None
) -> gym.Env:
    """``env`` itself when it has DAFT's face (and no layout is given), else ``DaftSpaces(env)``."""
    if layout is None and tasks is None and not needs_adapter(env):
        return env
    if isinstance(env, DaftSpaces):
        return env
    return DaftSpaces(env, tasks, layout)


def is_daft_id(env_id: str) -> bool:
    """Whether ``env_id`` is one of DAFT's own bolt env ids (``Bolt...-Sim-v0`` / ``-Real-v0``)."""
    import daft_env  # noqa: F401  (registers the ids)

    spec = gym.registry.get(str(env_id))
    return spec is not None and str(spec.entry_point).startswith("daft_env.")


def make_env(
    env_id: str,
    tasks: Sequence[str] | None = None,
    layout: ActionLayout | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Make a user's env by id, Gymnasium's way, under :class:`DaftSpaces` when it needs it.

    ``env_id`` is a registered id or ``"module:EnvId"`` (the module is imported first, where the
    id is registered). ``kwargs`` go to ``gym.make``.

    Raises:
        ConfigError: the module does not import, or the id is not registered (naming both).
    """
    module, sep, name = str(env_id).rpartition(":")
    if sep:
        import importlib

        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"--env {env_id!r}: cannot import module {module!r} ({exc}); is it on PYTHONPATH?"
            ) from exc
    try:
        env = gym.make(name if sep else env_id, **kwargs)
    except gym.error.Error as exc:
        hint = f" after importing {module!r}" if sep else " (give module:EnvId to import it first)"
        ids = sorted(k for k in gym.registry if k.startswith("Bolt"))
        raise ConfigError(
            f"cannot make env {env_id!r}: {exc}{hint}. DAFT's own ids: {', '.join(ids)}"
        ) from exc
    if layout is None and tasks is None and not needs_adapter(env):
        return env
    return DaftSpaces(env, tasks, layout)


__all__ = [
    "DaftSpaces",
    "as_daft_env",
    "env_task_names",
    "find_adapter",
    "is_daft_action_space",
    "is_daft_id",
    "make_env",
    "needs_adapter",
    "warn_once",
]
