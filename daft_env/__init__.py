"""DAFT's environment layer: the bolt tasks, ``BoltEnv`` and its backends.

Importing this package registers the Gymnasium ids of ARCHITECTURE.md:
``Bolt{Upright,Pickup,Assemble}-{Sim,Real}-v0``, ``BoltMultiTask-{Sim,Real}-v0``,
``BoltLongHorizon-{Sim,Real}-v0`` and ``UserTask-Real-v0``, which runs a task of your own on the
real cell (``task=`` at make time). A task of your own is registered from your code with
:func:`register_real_task` (which gives it an id of its own too, ``CableInsert-Real-v0`` for
``cable_insert``), or in the ``tasks:`` section of a real-arm config, registered when the env
reads the file (or by :func:`load_real_tasks`); see :mod:`daft_env.backends.real.tasks`.
"""

from __future__ import annotations

import gymnasium as gym

from daft_env.env import USER_TASK_ENV_ID, BoltEnv
from daft_env.tasks import TASK_NAMES, get_task

ENV_IDS: dict[str, str] = {
    "BoltUpright": "upright",
    "BoltPickup": "pickup",
    "BoltAssemble": "assemble",
    "BoltMultiTask": "multi",
    "BoltLongHorizon": "long_horizon",
}


def _register() -> None:
    for prefix, task in ENV_IDS.items():
        for suffix, backend in (("Sim", "mujoco"), ("Real", "real")):
            env_id = f"{prefix}-{suffix}-v0"
            if env_id in gym.registry:
                continue
            # Truncation is BoltEnv's own (50 steps per subtask), so no TimeLimit wrapper here.
            # Real envs read cameras in wall time, so the same seed cannot give the same frames.
            gym.register(
                id=env_id,
                entry_point="daft_env.env:BoltEnv",
                kwargs={"task": task, "backend": backend},
                nondeterministic=(backend == "real"),
            )
    if USER_TASK_ENV_ID not in gym.registry:
        gym.register(
            id=USER_TASK_ENV_ID,
            entry_point="daft_env.env:make_user_task_env",
            nondeterministic=True,
        )


_register()

# Registers the "simulated" teleop device by name (make_teleop("simulated", env=...)).
import daft_env.operator  # noqa: E402,F401  (import after registration: it imports daft_env.env)

#: Loaded on first use, so ``import daft_env`` does not import the real backend (and zmq).
_REAL_TASK_API = ("load_real_tasks", "register_real_task")


def __getattr__(name: str) -> object:
    if name in _REAL_TASK_API:
        from daft_env.backends.real import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'daft_env' has no attribute {name!r}")


__all__ = [
    "ENV_IDS",
    "TASK_NAMES",
    "USER_TASK_ENV_ID",
    "BoltEnv",
    "get_task",
    "load_real_tasks",
    "register_real_task",
]
