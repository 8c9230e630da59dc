"""The ``TeleopDevice`` seam: a human (or a stand-in) correcting the robot.

A device reports a 6-DoF command already mapped into the robot base frame (+x forward, +y left,
+z up) and normalised to [-1, 1] per axis, i.e. in the same units as the env's action space, so an
intervention action is simply ``command.as_action()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hardware.errors import SafetyError


class EmergencyStopRequested(SafetyError):
    """The operator pressed the emergency stop on a teleop device."""


@dataclass
class TeleopCommand:
    """One reading of a teleop device.

    Attributes:
        translation: (3,) normalised base-frame translation command in [-1, 1].
        rotation: (3,) normalised base-frame roll/pitch/yaw rate command in [-1, 1].
        gripper: gripper command in [-1, 1]; > 0 closes (the env's convention).
        intervening: True while the operator holds control (the device's action replaces the
            policy's).
        emergency_stop: True when the operator asks for an immediate stop.
        buttons: names of buttons currently pressed.
        refinement_command: a spoken/typed language refinement command (talk without tweak), or None.
        intended: the action the operator meant, when the device knows it apart from what it
            sends (a simulated operator's plan, before hand noise and the rate limit of a hand
            that starts each takeover at rest); None: what it sends is what it meant.
        action: the whole action, for an env whose action is not DAFT's 7-d end-effector delta
            (a simulated operator on any env, :mod:`daft_env.plan_operator`); None: the action is
            translation, rotation and gripper.
        timestamp: ``time.monotonic()`` when the reading was taken.
    """

    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    gripper: float = -1.0
    intervening: bool = False
    emergency_stop: bool = False
    buttons: frozenset[str] = frozenset()
    refinement_command: str | None = None
    intended: np.ndarray | None = None
    action: np.ndarray | None = None
    timestamp: float = field(default_factory=time.monotonic)

    def as_action(self) -> np.ndarray:
        """The env action this command stands for: ``action``, else translation, rotation, gripper."""
        if self.action is not None:
            return np.asarray(self.action, float).reshape(-1).clip(-1.0, 1.0)
        return np.concatenate(
            [np.asarray(self.translation, float), np.asarray(self.rotation, float), [self.gripper]]
        ).clip(-1.0, 1.0)

    def intended_action(self) -> np.ndarray:
        """The action the operator meant: ``intended`` when set, else :meth:`as_action`."""
        if self.intended is None:
            return self.as_action()
        return np.asarray(self.intended, float).reshape(-1).clip(-1.0, 1.0)


@runtime_checkable
class TeleopDevice(Protocol):
    """A device a person (or a stand-in) uses to take over the robot."""

    name: str

    def connect(self) -> None:
        """Open the device; raise :class:`~hardware.errors.DeviceNotFoundError` with a fix if absent."""

    def read(self) -> TeleopCommand:
        """The latest command. Never blocks longer than a few milliseconds."""

    def on_step(self, observation: Any, policy_action: np.ndarray, info: dict[str, Any]) -> None:
        """Told what the robot sees and what the policy proposes before each :meth:`read`.

        Physical devices ignore this; a simulated operator uses it to decide when to take over.
        """

    def reset(self) -> None:
        """Forget per-episode state (held toggles, intervention in progress)."""

    def disconnect(self) -> None:
        """Release the device. Safe to call twice."""


def check_emergency_stop(
    command: TeleopCommand, stop: Callable[[], None] | None = None, device: str = "teleop device"
) -> None:
    """The emergency-stop hook: act on ``command.emergency_stop`` in one line.

    Calls ``stop()`` first (e.g. ``arm.stop`` or ``backend.stop``) so the arm halts even if the
    caller mishandles the exception, then raises :class:`EmergencyStopRequested`. Devices latch
    the stop until their ``reset()``, so polling once per control step cannot miss it.

    Args:
        command: the latest device reading.
        stop: called before raising; None to only raise.
        device: device name for the message.
    """
    if command.emergency_stop:
        if stop is not None:
            stop()
        done = "the arm was stopped" if stop is not None else "stop the arm now"
        raise EmergencyStopRequested(
            f"emergency stop pressed on the {device}; {done}. Check the scene, then reset the "
            "device (device.reset()) and the episode to continue."
        )
