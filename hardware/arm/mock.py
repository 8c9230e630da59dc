"""``MockArm``: a kinematic arm for tests. Integrates commands exactly and records every call."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from hardware.arm.base import Arm, ArmState, MotionResult
from hardware.errors import ConfigError, HardwareError
from hardware.rotations import pose_delta, wrap_angle
from hardware.safety import SafetyLimits


@dataclass
class MockArmConfig:
    """Configuration of :class:`MockArm`.

    Attributes:
        home_pose: (6,) home pose [m, rad]; the default has the gripper pointing down (roll = pi).
        n_joints: length of the (constant) joint vector reported.
        latency_s: seconds each motion call sleeps, to imitate a control period.
        limits: limits reported by :meth:`MockArm.default_limits` (None: the defaults).
    """

    home_pose: tuple[float, ...] = (0.45, 0.0, 0.25, np.pi, 0.0, 0.0)
    n_joints: int = 7
    latency_s: float = 0.0
    limits: SafetyLimits | None = None

    def __post_init__(self) -> None:
        if len(self.home_pose) != 6:
            raise ConfigError("MockArm home_pose must have 6 entries (x, y, z, roll, pitch, yaw)")
        if self.latency_s < 0 or self.n_joints < 1:
            raise ConfigError("MockArm needs latency_s >= 0 and n_joints >= 1")


class MockArm(Arm):
    """A perfect kinematic arm: ``move_to`` reaches its target instantly.

    It has no kinematic chain, so ``joint_positions`` is a constant vector. Every public call is
    appended to :attr:`calls` as ``(method_name, args)``; :attr:`stop_count` counts stops (the
    server's watchdog tests read it).
    """

    name = "mock"

    def __init__(self, config: MockArmConfig | None = None) -> None:
        self.config = config or MockArmConfig()
        self._lock = threading.Lock()
        self._pose = np.array(self.config.home_pose, dtype=np.float64)
        self._gripper = 1.0
        self._connected = False
        self.calls: list[tuple[str, tuple]] = []
        self.stop_count = 0
        self.stop_event = threading.Event()

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, args))

    def _require_connected(self) -> None:
        if not self._connected:
            raise HardwareError("MockArm is not connected; call connect() first")

    def connect(self) -> None:
        """Mark the arm connected."""
        self._record("connect")
        self._connected = True

    def close(self) -> None:
        """Mark the arm disconnected."""
        self._record("close")
        self._connected = False

    def state(self) -> ArmState:
        """The current pose and gripper."""
        self._require_connected()
        with self._lock:
            return ArmState(
                joint_positions=np.zeros(self.config.n_joints),
                ee_pose=self._pose.copy(),
                gripper=self._gripper,
                timestamp=time.time(),
            )

    def move_to(self, pose: np.ndarray, gripper: float | None = None) -> MotionResult:
        """Jump to ``pose`` [m, rad] (after ``latency_s``) and set the gripper."""
        self._require_connected()
        pose = np.asarray(pose, dtype=np.float64).copy()
        self._record("move_to", pose.copy(), gripper)
        if self.config.latency_s:
            time.sleep(self.config.latency_s)
        with self._lock:
            before = self._pose.copy()
            pose[3:] = wrap_angle(pose[3:])
            self._pose = pose
            if gripper is not None:
                self._gripper = float(gripper)
        return MotionResult(pose.copy(), pose_delta(before, pose), gripper, (), self.state())

    def set_gripper(self, opening: float) -> None:
        """Set the opening fraction."""
        self._require_connected()
        self._record("set_gripper", float(opening))
        with self._lock:
            self._gripper = float(opening)

    def home(self) -> ArmState:
        """Jump to the home pose with the gripper open."""
        self._require_connected()
        self._record("home")
        with self._lock:
            self._pose = np.array(self.config.home_pose, dtype=np.float64)
            self._gripper = 1.0
        return self.state()

    def stop(self) -> None:
        """Count the stop (the mock never moves on its own)."""
        self._record("stop")
        self.stop_count += 1
        self.stop_event.set()

    def default_limits(self) -> SafetyLimits:
        """``config.limits`` or the package defaults."""
        return self.config.limits or SafetyLimits()
