"""UFACTORY xArm 7 driver over the vendor's ``xarm-python-sdk`` (``from xarm.wrapper import XArmAPI``).

Units are where such drivers break, so every conversion happens in one place here:

==================  ===========================  ==========================================
quantity            DAFT                         xArm SDK call used
==================  ===========================  ==========================================
position            metres                       millimetres (``set_position``/``get_position``)
orientation         radians (roll, pitch, yaw)   radians: every call passes ``is_radian=True``
joint angles        radians                      ``get_servo_angle(is_radian=True)``
gripper             opening fraction in [0, 1]   pulse 0 (closed) .. 850 (open)
speed               m/s                          mm/s
==================  ===========================  ==========================================

``is_radian`` is passed explicitly on every call rather than relying on the API object's default,
so a changed default in a future SDK cannot silently turn radians into degrees.

Control: the default mode 7 ("online Cartesian planning") makes each non-blocking
``set_position`` replace the previous target, which suits a 10 Hz stream of small targets; mode 0
(position mode) queues moves instead and is offered for old firmware. Every SDK return code is
checked; a non-zero code raises :class:`~hardware.errors.HardwareError` naming the call and code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.arm.base import Arm, ArmState, MotionResult
from hardware.errors import ConfigError, DeviceNotFoundError, HardwareError
from hardware.rotations import pose_delta, wrap_angle
from hardware.safety import SafetyLimits

#: Gripper pulse range of the xArm Gripper (G1/G2): 0 closed, 850 fully open.
GRIPPER_PULSE_MAX = 850.0
_MODES = {"online": 7, "position": 0}
M_TO_MM = 1000.0


@dataclass
class XArmConfig:
    """Configuration of :class:`XArmDriver`.

    Attributes:
        ip: the controller's IP address (e.g. "192.168.1.185").
        mode: "online" (SDK mode 7, default) or "position" (mode 0).
        speed: Cartesian speed limit [m/s].
        acceleration: Cartesian acceleration limit [m/s^2].
        home_pose: (6,) home pose [m, rad]; default 0.3 m in front, 0.3 m up, gripper down.
        home_speed: speed for :meth:`XArmDriver.home` [m/s].
        use_gripper: whether an xArm Gripper is attached.
        gripper_speed: gripper speed in the SDK's pulse units (r/min), 1..5000.
        workspace_low: (3,) lower corner of the default safety box [m].
        workspace_high: (3,) upper corner of the default safety box [m].
        api_factory: callable ``(ip) -> XArmAPI``; tests inject a mock SDK here.
    """

    ip: str = ""
    mode: str = "online"
    speed: float = 0.25
    acceleration: float = 2.0
    home_pose: tuple[float, ...] = (0.30, 0.0, 0.30, math.pi, 0.0, 0.0)
    home_speed: float = 0.05
    use_gripper: bool = True
    gripper_speed: float = 3000.0
    workspace_low: tuple[float, float, float] = (0.15, -0.40, 0.02)
    workspace_high: tuple[float, float, float] = (0.65, 0.40, 0.55)
    api_factory: Callable[[str], Any] | None = None

    def __post_init__(self) -> None:
        if not self.ip and self.api_factory is None:
            raise ConfigError(
                "XArmDriver needs the controller's IP address, e.g. make_arm('xarm', "
                "ip='192.168.1.185') or `--ip` on the arm server"
            )
        if self.mode not in _MODES:
            raise ConfigError(f"xArm mode must be one of {sorted(_MODES)}; got {self.mode!r}")
        if not 0 < self.speed <= 1.0 or not 0 < self.home_speed <= 0.5:
            raise ConfigError(
                f"xArm speeds are in m/s: need 0 < speed <= 1 and 0 < home_speed <= 0.5; got "
                f"speed={self.speed}, home_speed={self.home_speed} (did you pass mm/s?)"
            )
        if not 0 < self.acceleration <= 50:
            raise ConfigError(f"xArm acceleration is in m/s^2 (0, 50]; got {self.acceleration}")
        if len(self.home_pose) != 6 or any(abs(v) > 1.5 for v in self.home_pose[:3]):
            raise ConfigError(
                f"home_pose must be 6 values [m, m, m, rad, rad, rad] within reach; got "
                f"{self.home_pose} (did you pass millimetres?)"
            )


def _default_api_factory(ip: str) -> Any:
    try:
        from xarm.wrapper import XArmAPI
    except ImportError as exc:
        raise ConfigError(
            "the xArm driver needs the UFACTORY SDK: `pip install daft[real]` (or "
            "`pip install xarm-python-sdk`)"
        ) from exc
    try:
        return XArmAPI(ip, is_radian=True)
    except Exception as exc:  # the SDK raises bare Exceptions on connection failure
        raise DeviceNotFoundError(
            f"could not connect to the xArm controller at {ip}: {exc}. Check that the controller "
            "is powered, that this PC is on its subnet (ping it), and that UFACTORY Studio is not "
            "holding the connection."
        ) from exc


class XArmDriver(Arm):
    """UFACTORY xArm 7 behind the :class:`Arm` interface (see the module docstring for units)."""

    name = "xarm"

    def __init__(self, config: XArmConfig) -> None:
        self.config = config
        self._api: Any = None

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def api(self) -> Any:
        """The connected ``XArmAPI`` object."""
        if self._api is None:
            raise HardwareError("xArm driver is not connected; call connect() first")
        return self._api

    def _check(self, call: str, ret: Any) -> Any:
        """Raise on a non-zero SDK code; return the payload of ``(code, payload)`` returns."""
        code, payload = (ret[0], ret[1]) if isinstance(ret, (tuple, list)) else (ret, None)
        if code != 0:
            raise HardwareError(
                f"xArm {call} returned code {code} (controller error_code="
                f"{getattr(self._api, 'error_code', '?')}). See the xArm API code table; code 9 "
                "(not ready) usually means an error or emergency stop: clear it on the controller "
                "or call connect() again, which cleans errors and re-enables motion."
            )
        return payload

    def _enable(self) -> None:
        api = self.api
        self._check("clean_warn", api.clean_warn())
        self._check("clean_error", api.clean_error())
        self._check("motion_enable", api.motion_enable(enable=True))
        self._check("set_mode", api.set_mode(_MODES[self.config.mode]))
        self._check("set_state", api.set_state(state=0))
        if self.config.use_gripper:
            self._check("set_gripper_enable", api.set_gripper_enable(True))
            self._check("set_gripper_mode", api.set_gripper_mode(0))
            self._check("set_gripper_speed", api.set_gripper_speed(self.config.gripper_speed))

    # -- Arm API ---------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, clear errors and warnings, enable motion, set the mode and the gripper."""
        factory = self.config.api_factory or _default_api_factory
        self._api = factory(self.config.ip)
        if not getattr(self._api, "connected", True):
            self._api = None
            raise DeviceNotFoundError(
                f"xArm controller at {self.config.ip} did not accept the connection; check power, "
                "the network cable and the address"
            )
        self._enable()

    def close(self) -> None:
        """Disconnect from the controller (safe to call twice)."""
        if self._api is not None:
            try:
                self._api.disconnect()
            finally:
                self._api = None

    def _pose(self) -> np.ndarray:
        """TCP pose [m, rad] from ``get_position`` alone (one SDK call)."""
        pos = self._check("get_position", self.api.get_position(is_radian=True))
        pose = np.array(pos[:6], dtype=np.float64)
        pose[:3] /= M_TO_MM
        pose[3:] = wrap_angle(pose[3:])
        return pose

    def state(self) -> ArmState:
        """Joint angles [rad], TCP pose [m, rad] and gripper opening from the controller."""
        pose = self._pose()
        joints = self._check("get_servo_angle", self.api.get_servo_angle(is_radian=True))
        gripper = 1.0
        if self.config.use_gripper:
            pulse = self._check("get_gripper_position", self.api.get_gripper_position())
            gripper = float(np.clip(float(pulse) / GRIPPER_PULSE_MAX, 0.0, 1.0))
        return ArmState(
            joint_positions=np.asarray(joints[:7], dtype=np.float64),
            ee_pose=pose,
            gripper=gripper,
            timestamp=time.time(),
        )

    def _send_pose(self, pose: np.ndarray, speed_m_s: float, wait: bool) -> None:
        x, y, z = (float(v) * M_TO_MM for v in pose[:3])
        roll, pitch, yaw = (float(v) for v in wrap_angle(pose[3:]))
        self._check(
            "set_position",
            self.api.set_position(
                x=x,
                y=y,
                z=z,
                roll=roll,
                pitch=pitch,
                yaw=yaw,
                speed=speed_m_s * M_TO_MM,
                mvacc=self.config.acceleration * M_TO_MM,
                is_radian=True,
                wait=wait,
            ),
        )

    def move_to(self, pose: np.ndarray, gripper: float | None = None) -> MotionResult:
        """Send a non-blocking Cartesian target (mm and radians on the wire)."""
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (6,) or not np.all(np.isfinite(pose)):
            raise HardwareError(f"xArm move_to needs 6 finite numbers [m, rad]; got {pose}")
        before = self._pose()
        self._send_pose(pose, self.config.speed, wait=False)
        if gripper is not None:
            self.set_gripper(gripper)
        return MotionResult(pose.copy(), pose_delta(before, pose), gripper)

    def set_gripper(self, opening: float) -> None:
        """Opening fraction in [0, 1] -> gripper pulse 0..850 (non-blocking)."""
        if not self.config.use_gripper:
            return
        pulse = float(np.clip(opening, 0.0, 1.0)) * GRIPPER_PULSE_MAX
        self._check(
            "set_gripper_position",
            self.api.set_gripper_position(
                round(pulse), wait=False, speed=self.config.gripper_speed
            ),
        )

    def home(self) -> ArmState:
        """Clear errors, re-enable motion, and move slowly to ``home_pose`` with the gripper open.

        This is the deliberate way back after :meth:`stop` (an emergency stop): the env calls
        it at reset, never mid-episode.
        """
        self._enable()
        if self.config.mode == "online":
            # Blocking moves need position mode; online mode returns immediately.
            self._check("set_mode", self.api.set_mode(0))
            self._check("set_state", self.api.set_state(state=0))
        self._send_pose(np.asarray(self.config.home_pose), self.config.home_speed, wait=True)
        self.set_gripper(1.0)
        if self.config.mode == "online":
            self._check("set_mode", self.api.set_mode(_MODES["online"]))
            self._check("set_state", self.api.set_state(state=0))
        return self.state()

    def stop(self) -> None:
        """Stop motion: the SDK's ``emergency_stop`` (the next connect() re-enables motion)."""
        if self._api is not None:
            self._api.emergency_stop()

    def default_limits(self) -> SafetyLimits:
        """A conservative box in front of the robot; gripper pointing down within +-0.5 rad."""
        return SafetyLimits(
            position_low=self.config.workspace_low,
            position_high=self.config.workspace_high,
            rpy_low=(math.pi - 0.6, -0.6, -math.pi),
            rpy_high=(-math.pi + 0.6, 0.6, math.pi),
            max_translation_step=0.03,
            max_rotation_step=0.3,
        )
