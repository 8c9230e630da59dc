"""DAFT's environment layer: the bolt tasks, ``BoltEnv`` and its backends.

Importing this package registers the Gymnasium ids of ARCHITECTURE.md:
``Bolt{Upright,Pickup,Assemble}-{Sim,Real}-v0``, ``BoltMultiTask-{Sim,Real}-v0`` and
``BoltLongHorizon-{Sim,Real}-v0``.
"""

from __future__ import annotations

import gymnasium as gym

from daft_env.env import BoltEnv
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


_register()

# Registers the "simulated" teleop device by name (make_teleop("simulated", env=...)).
import daft_env.operator  # noqa: E402,F401  (import after registration: it imports daft_env.env)

__all__ = ["ENV_IDS", "TASK_NAMES", "BoltEnv", "get_task"]
