"""The ``Arm`` seam: one abstract class for every robot arm, local driver or network client.

Units everywhere: metres, radians, seconds. Poses are (6,) ``[x, y, z, roll, pitch, yaw]`` in the
robot base frame (+x forward, +y left, +z up); see :mod:`hardware.rotations` for the rpy and
delta conventions. The gripper is an opening fraction in [0, 1] (0 closed, 1 fully open); the
env's action convention (g in [-1, 1], > 0 closes) maps to it as ``opening = (1 - g) / 2``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hardware.rotations import apply_delta, rpy_to_quat
from hardware.safety import SafetyLimits


def gripper_action_to_opening(g: float) -> float:
    """Env gripper action in [-1, 1] (> 0 closes) -> opening fraction in [0, 1]."""
    return float(np.clip((1.0 - float(g)) / 2.0, 0.0, 1.0))


def opening_to_gripper_action(opening: float) -> float:
    """Opening fraction in [0, 1] -> env gripper action in [-1, 1] (> 0 closes)."""
    return float(np.clip(1.0 - 2.0 * float(opening), -1.0, 1.0))


@dataclass
class ArmState:
    """One proprioceptive reading.

    Attributes:
        joint_positions: (n_joints,) joint angles [rad].
        ee_pose: (6,) end-effector pose ``[x, y, z, roll, pitch, yaw]`` in the base frame [m, rad].
        gripper: gripper opening fraction in [0, 1] (0 closed).
        timestamp: ``time.time()`` [s, Unix] on the machine that read the arm; wall-clock rather
            than monotonic because the state crosses machines.
    """

    joint_positions: np.ndarray
    ee_pose: np.ndarray
    gripper: float
    timestamp: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.joint_positions = np.asarray(self.joint_positions, dtype=np.float64).reshape(-1)
        self.ee_pose = np.asarray(self.ee_pose, dtype=np.float64).reshape(6)
        self.gripper = float(self.gripper)
        self.timestamp = float(self.timestamp)

    @property
    def ee_position(self) -> np.ndarray:
        """(3,) end-effector position [m]."""
        return self.ee_pose[:3].copy()

    @property
    def ee_rpy(self) -> np.ndarray:
        """(3,) end-effector roll, pitch, yaw [rad]."""
        return self.ee_pose[3:].copy()

    @property
    def ee_quat(self) -> np.ndarray:
        """(4,) end-effector orientation as a quaternion [w, x, y, z]."""
        return rpy_to_quat(self.ee_pose[3:])

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for the wire protocol."""
        return {
            "joint_positions": self.joint_positions,
            "ee_pose": self.ee_pose,
            "gripper": self.gripper,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmState:
        """Inverse of :meth:`to_dict`."""
        return cls(
            joint_positions=data["joint_positions"],
            ee_pose=data["ee_pose"],
            gripper=data["gripper"],
            timestamp=data["timestamp"],
        )


@dataclass
class MotionResult:
    """What an arm was actually told to do (LeRobot's "return the action actually sent").

    Attributes:
        target_pose: (6,) pose commanded for this control period, after clipping [m, rad].
        delta: (6,) the same command as a delta from the pose before the command.
        gripper: gripper opening commanded, or None when unchanged.
        clips: names of the safety limits that fired (:mod:`hardware.safety`), client's first.
        state: the arm's state after the command, when the implementation has it cheaply.
    """

    target_pose: np.ndarray
    delta: np.ndarray
    gripper: float | None = None
    clips: tuple[str, ...] = ()
    state: ArmState | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for the wire protocol."""
        return {
            "target_pose": np.asarray(self.target_pose, dtype=np.float64),
            "delta": np.asarray(self.delta, dtype=np.float64),
            "gripper": self.gripper,
            "clips": list(self.clips),
            "state": None if self.state is None else self.state.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MotionResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            target_pose=np.asarray(data["target_pose"], dtype=np.float64),
            delta=np.asarray(data["delta"], dtype=np.float64),
            gripper=None if data["gripper"] is None else float(data["gripper"]),
            clips=tuple(data["clips"]),
            state=None if data["state"] is None else ArmState.from_dict(data["state"]),
        )


class Arm(ABC):
    """A robot arm controlled in end-effector space at the env's control rate.

    Implementations: vendor drivers (:class:`~hardware.arm.xarm.XArmDriver`), the MuJoCo arm
    (in ``daft_env``), :class:`~hardware.arm.mock.MockArm`, and
    :class:`~hardware.arm.client.ArmClient`, which forwards every call to an
    :class:`~hardware.arm.server.ArmServer` serving one of the others.

    Motion calls return within about one control period (:attr:`control_period_s`): they command
    the motion and may return before it completes, so that a 10 Hz loop keeps its rate.
    """

    #: Name used in logs and error messages.
    name: str = "arm"
    #: Seconds per control step; the env runs at 10 Hz.
    control_period_s: float = 0.1

    @abstractmethod
    def connect(self) -> None:
        """Open the connection and make the arm ready to move. Raise a typed error if impossible."""

    @abstractmethod
    def close(self) -> None:
        """Stop using the arm and release it. Safe to call twice."""

    @abstractmethod
    def state(self) -> ArmState:
        """The current :class:`ArmState`."""

    @abstractmethod
    def move_to(self, pose: np.ndarray, gripper: float | None = None) -> MotionResult:
        """Command the end effector toward ``pose`` (6,) [m, rad] within one control period.

        Args:
            pose: absolute target in the base frame.
            gripper: opening fraction in [0, 1] to command at the same time, or None.
        """

    def move_delta(self, delta: np.ndarray, gripper: float | None = None) -> MotionResult:
        """Move by an end-effector ``delta`` (6,) [m, rad] (see :func:`rotations.apply_delta`).

        The default composes the delta with the current pose and calls :meth:`move_to`; drivers
        whose controller takes deltas natively override it.
        """
        current = self.state().ee_pose
        delta = np.asarray(delta, dtype=np.float64)
        result = self.move_to(apply_delta(current, delta), gripper)
        return MotionResult(result.target_pose, delta, result.gripper, result.clips, result.state)

    @abstractmethod
    def set_gripper(self, opening: float) -> None:
        """Command the gripper opening fraction in [0, 1] (0 closed, 1 open)."""

    @abstractmethod
    def home(self) -> ArmState:
        """Move to the home pose (may take seconds; blocks until there) and return the state."""

    @abstractmethod
    def stop(self) -> None:
        """Stop all motion now. Must be callable from another thread (the server's watchdog)."""

    def default_limits(self) -> SafetyLimits:
        """Conservative safety limits for this arm; servers use them when given none."""
        return SafetyLimits()

    def __enter__(self) -> Arm:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
