"""Teleoperation devices behind the ``TeleopDevice`` protocol, built by name.

``make_teleop("spacemouse")``, ``make_teleop("keyboard")``, ``make_teleop("mock", stream=...)``;
``daft_env`` registers its simulated operator with ``register_teleop("simulated", factory)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hardware.registry import Registry
from hardware.teleop.base import (
    EmergencyStopRequested,
    TeleopCommand,
    TeleopDevice,
    check_emergency_stop,
)
from hardware.teleop.keyboard import (
    DEFAULT_KEYMAP,
    KeyboardConfig,
    KeyboardTeleop,
    ScriptedKeySource,
    StdinKeySource,
)
from hardware.teleop.mock import RecordedSpaceMouse, RecordedTeleop, RecordedTeleopConfig
from hardware.teleop.spacemouse import (
    RawSpaceMouseReading,
    SpaceMouse,
    SpaceMouseConfig,
    SpaceMouseMapping,
    load_stream,
    save_stream,
)

_TELEOP: Registry[TeleopDevice] = Registry("teleop device")
_TELEOP.register("spacemouse", SpaceMouse, SpaceMouseConfig)
_TELEOP.register("keyboard", KeyboardTeleop, KeyboardConfig)
_TELEOP.register("mock", RecordedSpaceMouse, RecordedTeleopConfig)


def register_teleop(
    name: str,
    factory: Callable[..., TeleopDevice],
    config_cls: type | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Make ``make_teleop(name, ...)`` build a device with ``factory`` (see ``Registry.register``)."""
    _TELEOP.register(name, factory, config_cls, overwrite=overwrite)


def make_teleop(name: str, config: Any = None, /, **kwargs: Any) -> TeleopDevice:
    """Build the teleop device registered as ``name``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones) or unknown options.
    """
    return _TELEOP.make(name, config, **kwargs)


def teleop_names() -> list[str]:
    """Names accepted by :func:`make_teleop`."""
    return _TELEOP.names()


__all__ = [
    "DEFAULT_KEYMAP",
    "EmergencyStopRequested",
    "KeyboardConfig",
    "KeyboardTeleop",
    "RawSpaceMouseReading",
    "RecordedSpaceMouse",
    "RecordedTeleop",
    "RecordedTeleopConfig",
    "ScriptedKeySource",
    "SpaceMouse",
    "SpaceMouseConfig",
    "SpaceMouseMapping",
    "StdinKeySource",
    "TeleopCommand",
    "TeleopDevice",
    "check_emergency_stop",
    "load_stream",
    "make_teleop",
    "register_teleop",
    "save_stream",
    "teleop_names",
]
