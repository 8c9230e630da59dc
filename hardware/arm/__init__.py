"""Robot arms behind the :class:`Arm` interface, and the factory that builds them by name.

``make_arm("mock")``, ``make_arm("xarm", ip=...)``, ``make_arm("client", host=..., token=...)``;
``daft_env`` adds its MuJoCo arm with ``register_arm("mujoco", factory)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hardware.arm.base import (
    Arm,
    ArmState,
    MotionResult,
    gripper_action_to_opening,
    opening_to_gripper_action,
)
from hardware.arm.client import ArmClient
from hardware.arm.mock import MockArm, MockArmConfig
from hardware.arm.server import ArmServer, generate_token
from hardware.arm.xarm import XArmConfig, XArmDriver
from hardware.registry import Registry

_ARMS: Registry[Arm] = Registry("arm")
_ARMS.register("mock", MockArm, MockArmConfig)
_ARMS.register("xarm", XArmDriver, XArmConfig)
_ARMS.register("client", ArmClient)


def register_arm(
    name: str,
    factory: Callable[..., Arm],
    config_cls: type | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Make ``make_arm(name, ...)`` build an arm with ``factory``.

    Args:
        name: the driver name (e.g. "mujoco").
        factory: ``factory(config)`` when ``config_cls`` (a dataclass) is given, else
            ``factory(**kwargs)``.
        config_cls: optional dataclass of accepted options.
        overwrite: replace an existing registration.
    """
    _ARMS.register(name, factory, config_cls, overwrite=overwrite)


def make_arm(name: str, config: Any = None, /, **kwargs: Any) -> Arm:
    """Build the arm registered as ``name``; unknown names raise ConfigError listing valid ones."""
    return _ARMS.make(name, config, **kwargs)


def arm_names() -> list[str]:
    """Names accepted by :func:`make_arm`."""
    return _ARMS.names()


__all__ = [
    "Arm",
    "ArmClient",
    "ArmServer",
    "ArmState",
    "MockArm",
    "MockArmConfig",
    "MotionResult",
    "XArmConfig",
    "XArmDriver",
    "arm_names",
    "generate_token",
    "gripper_action_to_opening",
    "make_arm",
    "opening_to_gripper_action",
    "register_arm",
]
