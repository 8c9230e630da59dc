"""Robot calibration presets: robot B's cell differs from A's where the policy can see it."""

import gymnasium as gym
import numpy as np
import pytest

import daft_env  # noqa: F401
from daft_env.errors import ConfigError
from daft_env.robots import ROBOTS, RobotCalibration, parse_robots, robot_env_kwargs


def _env(robot):
    return gym.make("BoltAssemble-Sim-v0", obs_mode="state", **robot_env_kwargs(robot))


def test_robot_b_has_its_fixture_elsewhere_in_the_observation_and_its_own_physics():
    a, b = _env("A"), _env("B")
    try:
        obs_a, _ = a.reset(seed=3)
        obs_b, _ = b.reset(seed=3)  # the same jitter draws: only the calibration differs
        slot_a = a.unwrapped.privileged_state()["slot_pos"]
        slot_b = b.unwrapped.privileged_state()["slot_pos"]
        np.testing.assert_allclose(slot_b[:2] - slot_a[:2], ROBOTS["B"].fixture_offset, atol=1e-6)
        assert not np.allclose(obs_a["state"], obs_b["state"])  # observable, not hidden
        ma, mb = a.unwrapped.backend.model, b.unwrapped.backend.model
        np.testing.assert_allclose(mb.geom_friction[:, 0], 0.7 * ma.geom_friction[:, 0])
        np.testing.assert_allclose(mb.actuator_gainprm[:7, 0], 0.8 * ma.actuator_gainprm[:7, 0])
        assert (
            mb.actuator_gainprm[7, 0] == ma.actuator_gainprm[7, 0]
        )  # the gripper is not an arm servo
    finally:
        a.close()
        b.close()


def test_robot_a_is_the_nominal_cell():
    nominal, a = gym.make("BoltAssemble-Sim-v0", obs_mode="state"), _env("A")
    try:
        np.testing.assert_array_equal(
            nominal.reset(seed=1)[0]["state"], a.reset(seed=1)[0]["state"]
        )
    finally:
        nominal.close()
        a.close()


def test_robot_options_are_checked():
    assert [r.name for r in parse_robots("A, B")] == ["A", "B"]
    with pytest.raises(ConfigError, match=r"unknown robot 'C'; the presets are \['A', 'B'\]"):
        parse_robots("A,C")
    with pytest.raises(ConfigError, match="names each robot once"):
        parse_robots("A,A")
    with pytest.raises(ConfigError, match="outside the arm's workspace"):
        RobotCalibration("far", fixture_offset=(0.3, 0.0))
    with pytest.raises(ConfigError, match="must be > 0"):
        RobotCalibration("slippery", friction_scale=0.0)
