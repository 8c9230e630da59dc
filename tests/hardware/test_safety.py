import numpy as np
import pytest

from hardware.errors import ConfigError, SafetyError
from hardware.rotations import (
    apply_delta,
    matrix_to_rotvec,
    matrix_to_rpy,
    pose_delta,
    quat_to_rpy,
    rotvec_to_matrix,
    rpy_to_matrix,
    rpy_to_quat,
    wrap_angle,
)
from hardware.safety import SafetyLayer, SafetyLimits, clip_angle_to_arc

PI = np.pi
HOME = np.array([0.45, 0.0, 0.25, PI, 0.0, 0.0])


def down_limits(**kw):
    # Gripper pointing down: roll within 0.5 rad of +-pi, the arc that crosses the wrap.
    base = dict(rpy_low=(PI - 0.5, -0.5, -PI), rpy_high=(-PI + 0.5, 0.5, PI))
    base.update(kw)
    return SafetyLimits(**base)


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        rpy = rng.uniform([-PI, -1.4, -PI], [PI, 1.4, PI])
        r = rpy_to_matrix(rpy)
        np.testing.assert_allclose(rpy_to_matrix(matrix_to_rpy(r)), r, atol=1e-9)
        np.testing.assert_allclose(rpy_to_matrix(quat_to_rpy(rpy_to_quat(rpy))), r, atol=1e-9)
        np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(r)), r, atol=1e-9)
        pose = np.concatenate([rng.normal(size=3), rpy])
        target = np.concatenate([rng.normal(size=3), rng.uniform([-PI, -1.4, -PI], [PI, 1.4, PI])])
        d = pose_delta(pose, target)
        reached = apply_delta(pose, d)
        np.testing.assert_allclose(reached[:3], target[:3], atol=1e-9)
        np.testing.assert_allclose(rpy_to_matrix(reached[3:]), rpy_to_matrix(target[3:]), atol=1e-9)


def test_small_command_inside_the_box_passes_unchanged():
    layer = SafetyLayer(down_limits())
    safe, clips = layer.check(HOME, delta=[0.01, -0.01, 0.005, 0.05, 0.0, 0.1], gripper=0.4)
    assert clips == []
    np.testing.assert_allclose(safe.delta, [0.01, -0.01, 0.005, 0.05, 0.0, 0.1], atol=1e-9)
    assert safe.gripper == 0.4


@pytest.mark.parametrize(
    "target_xyz, expected_xyz, names",
    [
        ((0.45, 0.0, -0.5), (0.45, 0.0, 0.0), ["workspace_z_low"]),
        ((0.95, 0.6, 0.25), (0.80, 0.45, 0.25), ["workspace_x_high", "workspace_y_high"]),
    ],
)
def test_position_is_clipped_to_the_box_by_name(target_xyz, expected_xyz, names):
    layer = SafetyLayer(SafetyLimits(max_translation_step=10.0))
    start = np.array([0.45, 0.0, 0.25, PI, 0, 0])
    safe, clips = layer.check(start, target_pose=[*target_xyz, PI, 0, 0])
    np.testing.assert_allclose(safe.target_pose[:3], expected_xyz)
    assert clips == names


def test_roll_limit_around_pi_handles_the_wrap():
    layer = SafetyLayer(down_limits())
    # -pi + 0.1 is 0.1 rad from +pi: inside the arc, no clip, even though it is "far" numerically.
    safe, clips = layer.check(HOME, target_pose=[0.45, 0, 0.25, -PI + 0.1, 0, 0])
    assert clips == []
    assert abs(wrap_angle(safe.target_pose[3] - (-PI + 0.1))) < 1e-9
    # A delta crossing +pi is a 0.2 rad step, not a 2*pi - 0.2 one.
    safe, clips = layer.check(HOME, delta=[0, 0, 0, 0.2, 0, 0])
    assert clips == []
    assert abs(wrap_angle(safe.target_pose[3] - (-PI + 0.2))) < 1e-9
    np.testing.assert_allclose(safe.delta[3], 0.2, atol=1e-9)


@pytest.mark.parametrize(
    "roll, expected, name", [(2.0, PI - 0.5, "low"), (-2.0, -PI + 0.5, "high")]
)
def test_roll_outside_the_wrapped_arc_goes_to_the_nearer_end(roll, expected, name):
    layer = SafetyLayer(down_limits(max_rotation_step=10.0))
    safe, clips = layer.check(HOME, target_pose=[0.45, 0, 0.25, roll, 0, 0])
    assert f"workspace_roll_{name}" in clips
    assert abs(wrap_angle(safe.target_pose[3] - expected)) < 1e-9


def test_clip_angle_to_arc_picks_nearest_end():
    start, width = PI - 0.5, 1.0  # arc [pi-0.5, -pi+0.5] through pi
    assert clip_angle_to_arc(PI, start, width) == (PI, None)
    angle, side = clip_angle_to_arc(0.3, start, width)  # 2.34 rad before low, 2.94 past high
    assert side == "low" and abs(angle - (PI - 0.5)) < 1e-12
    angle, side = clip_angle_to_arc(-0.3, start, width)
    assert side == "high" and abs(angle - (-PI + 0.5)) < 1e-12


def test_oversized_steps_are_limited_and_named():
    layer = SafetyLayer(SafetyLimits(max_translation_step=0.02, max_rotation_step=0.1))
    safe, clips = layer.check(HOME, delta=[0.10, -0.001, -0.05, 0, 0, 0.5])
    assert clips == ["step_translation_x", "step_translation_z", "step_rotation"]
    np.testing.assert_allclose(safe.delta[:3], [0.02, -0.001, -0.02], atol=1e-12)
    angle = np.linalg.norm(
        matrix_to_rotvec(rpy_to_matrix(safe.target_pose[3:]) @ rpy_to_matrix(HOME[3:]).T)
    )
    assert angle == pytest.approx(0.1)


def test_box_then_step_keeps_target_inside_box():
    layer = SafetyLayer(SafetyLimits(max_translation_step=0.03))
    start = np.array([0.79, 0.0, 0.25, PI, 0, 0])
    safe, clips = layer.check(start, delta=[0.5, 0, 0, 0, 0, 0])
    assert clips == ["workspace_x_high"]  # the box already shortened it below the step limit
    assert safe.target_pose[0] == pytest.approx(0.80)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(delta=[0, 0, np.nan, 0, 0, 0]),
        dict(delta=[0, 0, 0, np.inf, 0, 0]),
        dict(target_pose=[0.4, 0, 0.2, -np.inf, 0, 0]),
        dict(delta=[0] * 6, gripper=float("nan")),
    ],
)
def test_nan_and_inf_are_rejected(kwargs):
    with pytest.raises(SafetyError, match="NaN or infinity"):
        SafetyLayer().check(HOME, **kwargs)


def test_nonfinite_current_pose_and_bad_shapes_are_rejected():
    layer = SafetyLayer()
    with pytest.raises(SafetyError, match="current pose"):
        layer.check([np.nan] * 6, delta=[0] * 6)
    with pytest.raises(SafetyError, match="shape"):
        layer.check(HOME, delta=[0, 0, 0])
    with pytest.raises(SafetyError, match="exactly one"):
        layer.check(HOME)


def test_gripper_is_clipped_to_range():
    layer = SafetyLayer(SafetyLimits(gripper_low=0.1, gripper_high=0.9))
    assert layer.check(HOME, delta=[0] * 6, gripper=1.5)[1] == ["gripper_high"]
    assert layer.check(HOME, delta=[0] * 6, gripper=-1.0)[0].gripper == 0.1


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(position_low=(0, 0, 0), position_high=(1, 0, 1)), "position_low < position_high"),
        (dict(max_translation_step=0.0), "max_translation_step"),
        (dict(gripper_low=0.8, gripper_high=0.2), "gripper range"),
        (dict(rpy_low=(np.nan, 0, 0)), "finite"),
    ],
)
def test_invalid_limits_raise_config_error(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        SafetyLimits(**kwargs)


def test_limits_round_trip_through_dict():
    lim = down_limits()
    again = SafetyLimits.from_dict(lim.to_dict())
    assert again.to_dict() == lim.to_dict()
    assert again.arc(0) == lim.arc(0)


def test_random_commands_from_inside_stay_inside_and_within_step_limits():
    lim = down_limits(max_translation_step=0.02, max_rotation_step=0.2)
    layer = SafetyLayer(lim)
    rng = np.random.default_rng(7)
    lo, hi = np.array(lim.position_low), np.array(lim.position_high)
    for _ in range(300):
        current = np.concatenate(
            [
                rng.uniform(lo, hi),
                [PI + rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(-PI, PI)],
            ]
        )
        current[3:] = wrap_angle(current[3:])
        if rng.random() < 0.5:
            safe, _ = layer.check(current, delta=rng.normal(scale=[0.1, 0.1, 0.1, 0.5, 0.5, 0.5]))
        else:
            target = np.concatenate([rng.uniform(lo - 0.3, hi + 0.3), rng.uniform(-PI, PI, 3)])
            safe, _ = layer.check(current, target_pose=target)
        _, outside = layer.clip_to_box(safe.target_pose + np.r_[0, 0, 0, 0, 0, 0])
        assert outside == [], (current, safe.target_pose, outside)
        assert np.all(np.abs(safe.target_pose[:3] - current[:3]) <= 0.02 + 1e-9)
