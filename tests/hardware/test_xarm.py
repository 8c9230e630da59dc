"""The xArm driver against a stand-in for ``xarm.wrapper.XArmAPI`` that checks units.

The mock keeps the robot's pose in the SDK's own units (mm, and radians or degrees as each call
declares) and refuses values that only make sense in the other unit: that is where drivers break.
"""

import math
import sys

import numpy as np
import pytest

from hardware.arm import ArmClient, ArmServer, XArmConfig, XArmDriver, make_arm
from hardware.errors import ConfigError, HardwareError

PI = math.pi


class UnitError(AssertionError):
    pass


class MockXArmAPI:
    """Records calls; state in mm / radians; validates units of every argument."""

    def __init__(self, ip):
        self.ip = ip
        self.connected = True
        self.calls = []
        self.pose_mm_rad = [300.0, 0.0, 300.0, PI, 0.0, 0.0]
        self.joints_rad = [0.0, -0.3, 0.0, 0.6, 0.0, 0.9, 0.0]
        self.gripper_pulse = 850
        self.mode = None
        self.state = None
        self.error_code = 0
        self.fail = {}

    def _log(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        return self.fail.get(name, 0)

    @staticmethod
    def _require_is_radian(kwargs):
        if "is_radian" not in kwargs:
            raise UnitError("is_radian must be passed explicitly; the API default is degrees")
        return kwargs["is_radian"]

    # -- setup / state
    def clean_warn(self):
        return self._log("clean_warn")

    def clean_error(self):
        return self._log("clean_error")

    def motion_enable(self, enable=True, servo_id=None):
        return self._log("motion_enable", enable=enable)

    def set_mode(self, mode=0):
        self.mode = mode
        return self._log("set_mode", mode)

    def set_state(self, state=0):
        self.state = state
        return self._log("set_state", state=state)

    def set_gripper_enable(self, enable):
        return self._log("set_gripper_enable", enable)

    def set_gripper_mode(self, mode):
        return self._log("set_gripper_mode", mode)

    def set_gripper_speed(self, speed):
        if not 1 <= speed <= 5000:
            raise UnitError(f"gripper speed {speed} outside 1..5000")
        return self._log("set_gripper_speed", speed)

    def get_position(self, is_radian=None):
        is_radian = self._require_is_radian(
            {"is_radian": is_radian} if is_radian is not None else {}
        )
        x, y, z, r, p, yw = self.pose_mm_rad
        ang = [r, p, yw] if is_radian else [math.degrees(a) for a in (r, p, yw)]
        return self.fail.get("get_position", 0), [x, y, z, *ang]

    def get_servo_angle(self, servo_id=None, is_radian=None):
        self._require_is_radian({"is_radian": is_radian} if is_radian is not None else {})
        vals = self.joints_rad if is_radian else [math.degrees(a) for a in self.joints_rad]
        return 0, list(vals)

    def get_gripper_position(self):
        return 0, float(self.gripper_pulse)

    # -- motion
    def set_position(
        self,
        x=None,
        y=None,
        z=None,
        roll=None,
        pitch=None,
        yaw=None,
        speed=None,
        mvacc=None,
        wait=False,
        **kwargs,
    ):
        is_radian = self._require_is_radian(kwargs)
        xyz = np.array([x, y, z], dtype=float)
        if np.any(np.abs(xyz) > 1000):
            raise UnitError(f"position {xyz} mm is beyond the xArm 7's reach")
        if np.linalg.norm(xyz) < 50:
            raise UnitError(f"position {xyz} mm is inside the base: metres passed as millimetres?")
        angles = np.array([roll, pitch, yaw], dtype=float)
        if is_radian and np.any(np.abs(angles) > 2 * PI + 1e-6):
            raise UnitError(f"angles {angles} with is_radian=True look like degrees")
        if speed is None or not 1 <= speed <= 1000:
            raise UnitError(f"speed {speed} must be in mm/s (1..1000)")
        if mvacc is None or not 10 <= mvacc <= 50000:
            raise UnitError(f"mvacc {mvacc} must be in mm/s^2")
        code = self._log(
            "set_position",
            x=x,
            y=y,
            z=z,
            roll=roll,
            pitch=pitch,
            yaw=yaw,
            speed=speed,
            mvacc=mvacc,
            wait=wait,
            is_radian=is_radian,
        )
        if code == 0:
            rad = angles if is_radian else np.radians(angles)
            self.pose_mm_rad = [float(x), float(y), float(z), *map(float, rad)]
        return code

    def set_gripper_position(self, pos, wait=False, speed=None, auto_enable=False, timeout=None):
        if not isinstance(pos, int) or not 0 <= pos <= 850:
            raise UnitError(f"gripper position {pos!r} must be an int pulse in 0..850")
        self.gripper_pulse = pos
        return self._log("set_gripper_position", pos, wait=wait, speed=speed)

    def emergency_stop(self):
        self.state = 4
        return self._log("emergency_stop")

    def disconnect(self):
        self.connected = False
        return self._log("disconnect")


@pytest.fixture
def xarm():
    apis = []

    def factory(ip):
        apis.append(MockXArmAPI(ip))
        return apis[-1]

    driver = XArmDriver(XArmConfig(ip="192.168.1.185", api_factory=factory))
    driver.connect()
    yield driver, apis[-1]
    driver.close()


def names(api):
    return [c[0] for c in api.calls]


def test_the_mock_catches_unit_mistakes():
    api = MockXArmAPI("x")
    with pytest.raises(UnitError, match="metres passed as millimetres"):
        api.set_position(
            x=0.4, y=0.0, z=0.3, roll=PI, pitch=0, yaw=0, speed=100, mvacc=1000, is_radian=True
        )
    with pytest.raises(UnitError, match="look like degrees"):
        api.set_position(
            x=400, y=0, z=300, roll=180, pitch=0, yaw=0, speed=100, mvacc=1000, is_radian=True
        )
    with pytest.raises(UnitError, match="explicitly"):
        api.set_position(x=400, y=0, z=300, roll=PI, pitch=0, yaw=0, speed=100, mvacc=1000)
    with pytest.raises(UnitError, match="0..850"):
        api.set_gripper_position(0.5)


def test_connect_enables_motion_in_online_mode(xarm):
    driver, api = xarm
    assert names(api)[:5] == ["clean_warn", "clean_error", "motion_enable", "set_mode", "set_state"]
    assert api.mode == 7 and api.state == 0
    assert {"set_gripper_enable", "set_gripper_mode", "set_gripper_speed"} <= set(names(api))


def test_state_converts_mm_to_metres(xarm):
    driver, api = xarm
    api.pose_mm_rad = [412.0, -35.0, 250.0, PI - 0.1, 0.05, -0.2]
    api.gripper_pulse = 425
    state = driver.state()
    np.testing.assert_allclose(state.ee_pose, [0.412, -0.035, 0.25, PI - 0.1, 0.05, -0.2])
    np.testing.assert_allclose(state.joint_positions, api.joints_rad)
    assert state.gripper == pytest.approx(0.5)


def test_move_to_sends_mm_and_radians(xarm):
    driver, api = xarm
    driver.move_to(np.array([0.4, 0.1, 0.3, PI, 0.0, 0.2]), gripper=0.5)
    _, _, kw = [c for c in api.calls if c[0] == "set_position"][-1]
    assert (kw["x"], kw["y"], kw["z"]) == pytest.approx((400.0, 100.0, 300.0))
    assert kw["is_radian"] is True and kw["wait"] is False
    assert abs(abs(kw["roll"]) - PI) < 1e-9 and kw["yaw"] == pytest.approx(0.2)
    assert kw["speed"] == pytest.approx(250.0) and kw["mvacc"] == pytest.approx(2000.0)
    assert api.gripper_pulse == 425
    np.testing.assert_allclose(driver.state().ee_pose[:3], [0.4, 0.1, 0.3])


def test_move_delta_composes_in_metres(xarm):
    driver, api = xarm
    driver.move_delta(np.array([0.01, -0.02, 0.0, 0.0, 0.0, 0.1]))
    np.testing.assert_allclose(driver.state().ee_pose[:3], [0.31, -0.02, 0.30], atol=1e-9)
    assert driver.state().ee_pose[5] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "opening, pulse", [(0.0, 0), (1.0, 850), (0.3, 255), (1.7, 850), (-1.0, 0)]
)
def test_gripper_fraction_to_pulse(xarm, opening, pulse):
    driver, api = xarm
    driver.set_gripper(opening)
    assert api.gripper_pulse == pulse


def test_home_blocks_in_position_mode_then_returns_to_online(xarm):
    driver, api = xarm
    driver.home()
    modes = [c[1][0] for c in api.calls if c[0] == "set_mode"]
    assert modes[-2:] == [0, 7]
    _, _, kw = [c for c in api.calls if c[0] == "set_position"][-1]
    assert kw["wait"] is True and kw["speed"] == pytest.approx(50.0)
    assert (kw["x"], kw["z"]) == pytest.approx((300.0, 300.0))


def test_nonzero_codes_raise_with_the_call_name(xarm):
    driver, api = xarm
    api.fail["set_position"] = 9
    with pytest.raises(HardwareError, match="set_position returned code 9"):
        driver.move_to(np.array([0.4, 0.0, 0.3, PI, 0, 0]))
    api.fail["get_position"] = 1
    with pytest.raises(HardwareError, match="get_position"):
        driver.state()


def test_stop_uses_emergency_stop_and_close_disconnects(xarm):
    driver, api = xarm
    driver.stop()
    assert api.state == 4 and "emergency_stop" in names(api)
    driver.home()  # the deliberate way back: errors cleaned, motion re-enabled
    assert api.state == 0 and api.mode == 7
    assert names(api).count("motion_enable") == 2
    driver.close()
    assert not api.connected
    driver.close()  # twice is fine


def test_served_xarm_over_the_network(xarm):
    driver, api = xarm
    token = "xarm-test-token"
    with ArmServer(driver, port=0, token=token, connect_driver=False) as server:
        client = ArmClient(port=server.port, token=token)
        client.connect()
        try:
            result = client.move_delta([0.5, 0, 0, 0, 0, 0])  # oversized: the server clips it
            assert "step_translation_x" in result.clips
            assert api.pose_mm_rad[0] == pytest.approx(330.0)
        finally:
            client.close()


def test_config_errors():
    with pytest.raises(ConfigError, match="IP address"):
        XArmConfig()
    with pytest.raises(ConfigError, match="mm/s"):
        XArmConfig(ip="1.2.3.4", speed=200)
    with pytest.raises(ConfigError, match="millimetres"):
        XArmConfig(ip="1.2.3.4", home_pose=(300, 0, 300, PI, 0, 0))


def test_missing_sdk_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "xarm", None)
    monkeypatch.setitem(sys.modules, "xarm.wrapper", None)
    driver = make_arm("xarm", ip="192.168.1.185")
    with pytest.raises(ConfigError, match=r"pip install daft\[real\]"):
        driver.connect()
