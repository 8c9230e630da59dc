from dataclasses import dataclass

import pytest

from hardware.arm import MockArm, MockArmConfig, arm_names, make_arm, register_arm
from hardware.cameras import camera_names, make_camera
from hardware.errors import ConfigError
from hardware.registry import Registry
from hardware.teleop import make_teleop, register_teleop, teleop_names


def test_builtin_names():
    assert {"mock", "xarm", "client"} <= set(arm_names())
    assert {"opencv", "realsense", "mock"} <= set(camera_names())
    assert {"spacemouse", "keyboard", "mock"} <= set(teleop_names())


@pytest.mark.parametrize(
    "factory, kind", [(make_arm, "arm"), (make_camera, "camera"), (make_teleop, "teleop device")]
)
def test_unknown_names_list_valid_ones(factory, kind):
    with pytest.raises(ConfigError, match=f"unknown {kind} 'nope'; valid names: "):
        factory("nope")


def test_register_arm_by_name_as_daft_env_does():
    calls = []

    def factory(**cfg):
        calls.append(cfg)
        return MockArm()

    register_arm("test-sim-arm", factory)
    try:
        arm = make_arm("test-sim-arm", scene="bolt", seed=3)
        assert isinstance(arm, MockArm) and calls == [{"scene": "bolt", "seed": 3}]
        with pytest.raises(ConfigError, match="already registered"):
            register_arm("test-sim-arm", factory)
        register_arm("test-sim-arm", factory, overwrite=True)
    finally:
        make_arm.__globals__["_ARMS"]._entries.pop("test-sim-arm", None)


def test_config_objects_and_unknown_options():
    arm = make_arm("mock", MockArmConfig(latency_s=0.0))
    assert isinstance(arm, MockArm)
    with pytest.raises(ConfigError, match="valid options: .*home_pose"):
        make_arm("mock", speed=1)
    with pytest.raises(ConfigError, match="expects a XArmConfig; got MockArmConfig"):
        make_arm("xarm", MockArmConfig())
    cam = make_camera("mock", name="wrist")  # 'name' is a config field, not the registry key
    assert cam.name == "wrist"


def test_registry_validation():
    reg = Registry("widget")

    @dataclass
    class Cfg:
        a: int = 1

    with pytest.raises(ConfigError, match="callable"):
        reg.register("w", 3)
    with pytest.raises(ConfigError, match="dataclass"):
        reg.register("w", dict, config_cls=int)
    with pytest.raises(ConfigError, match="non-empty"):
        reg.register("", dict)
    reg.register("w", lambda cfg: cfg.a, Cfg)
    assert reg.make("w", a=5) == 5 and reg.make("w", Cfg(a=2), a=7) == 7
    register_teleop("test-device", lambda **kw: kw)
    assert make_teleop("test-device", x=1) == {"x": 1}
    make_teleop.__globals__["_TELEOP"]._entries.pop("test-device")
