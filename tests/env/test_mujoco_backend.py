import numpy as np
import pytest

from daft_env.backends import Backend, available_backends, make_backend, register_backend
from daft_env.backends.ik import rotation_error
from daft_env.backends.mujoco import BOLT_NOMINAL, MujocoBackend
from daft_env.backends.predicates import assemble_success, pickup_success, upright_success
from daft_env.errors import BackendError, ConfigError
from daft_env.spaces import STATE_DIM
from daft_env.tasks import get_task
from hardware.rotations import matrix_to_rotvec, rotvec_to_matrix


@pytest.fixture(scope="module")
def backend():
    b = MujocoBackend("scene_long_horizon.xml")
    yield b
    b.close()


def test_implements_the_backend_protocol(backend):
    assert isinstance(backend, Backend)
    assert backend.has_privileged_state


def test_positions_are_randomised_within_5cm(backend):
    rng = np.random.default_rng(0)
    base0 = backend._base_nominal[:2]
    fixture0 = backend._fixture_nominal[:2]
    bases, bolts = [], []
    for _ in range(15):
        backend.reset(get_task("pickup"), rng)
        s = backend.privileged_state()
        base = s["base_pos"][:2]
        bases.append(base)
        bolts.append(s["bolt_pos"][:2] + base)
        assert np.all(np.abs(base - base0) <= 0.05 + 1e-9)
        assert np.all(np.abs(s["fixture_pos"][:2] + base - fixture0) <= 0.05 + 1e-9)
    bolt_dev = np.abs(np.array(bolts) - BOLT_NOMINAL)
    assert np.all(bolt_dev <= 0.05 + 1e-3)  # +1 mm for settling on the table
    assert np.ptp(np.array(bases), axis=0).min() > 0.02  # it really varies


def test_initial_states_match_the_task_definitions(backend):
    rng = np.random.default_rng(1)
    backend.reset(get_task("upright"), rng)
    s = backend.privileged_state()
    assert abs(s["bolt_axis"][2]) < 0.1 and not s["grasped"]  # lying on its side
    backend.reset(get_task("pickup"), rng)
    s = backend.privileged_state()
    assert s["bolt_axis"][2] > 0.99 and s["bolt_pos"][2] < 0.002  # standing on its head
    backend.reset(get_task("assemble"), rng)
    s = backend.privileged_state()
    assert s["grasped"] and s["bolt_clearance"] > 0.05  # hanging in the closed gripper
    backend.reset(get_task("upright"), rng, {"n_bolts": 3})
    assert backend.n_bolts == 3 and len(backend.privileged_state()["other_bolts"]) == 2


def test_observe_renders_only_when_asked(backend):
    backend.reset(get_task("pickup"), np.random.default_rng(2))
    obs = backend.observe(pixels=False, state=True)
    assert set(obs) == {"gripper", "state"}
    assert obs["state"].shape == (STATE_DIM,) and obs["state"].dtype == np.float32
    assert 0.9 <= obs["gripper"][0] <= 1.0  # open
    obs = backend.observe(pixels=True, state=False)
    assert obs["wrist_rgb"].shape == (128, 128, 3) and obs["head_rgb"].shape == (256, 256, 3)


def test_success_predicates_use_the_stated_thresholds():
    upright = {
        "bolt_axis": np.array([0.0, np.sin(np.deg2rad(14)), np.cos(np.deg2rad(14))]),
        "bolt_pos": np.array([0.5, 0.0, 0.002]),
        "bolt_linvel": np.zeros(3),
        "bolt_angvel": np.zeros(3),
        "gripper_touches_bolt": False,
    }
    assert upright_success(upright)
    assert not upright_success({**upright, "gripper_touches_bolt": True})
    tilted = np.array([0.0, np.sin(np.deg2rad(16)), np.cos(np.deg2rad(16))])
    assert not upright_success({**upright, "bolt_axis": tilted})
    assert not upright_success({**upright, "bolt_linvel": np.array([0.03, 0, 0])})
    assert pickup_success({"grasped": True, "bolt_clearance": 0.051})
    assert not pickup_success({"grasped": True, "bolt_clearance": 0.049})
    assert not pickup_success({"grasped": False, "bolt_clearance": 0.2})
    inserted = {
        "slot_depth": 0.016,
        "slot_lateral": 0.0005,
        "bolt_axis": np.array([0.0, 0.0, 1.0]),
        "head_top_in_slot": 0.007,
    }
    assert assemble_success(inserted)
    assert not assemble_success({**inserted, "slot_depth": 0.014})
    assert not assemble_success({**inserted, "slot_lateral": 0.002})


def test_bad_arguments_and_closed_backend():
    with pytest.raises(ConfigError, match="does not exist"):
        MujocoBackend("no_such_scene.xml")
    b = MujocoBackend("scene_pickup.xml")
    with pytest.raises(ConfigError, match="n_bolts"):
        b.reset(get_task("upright"), np.random.default_rng(0), {"n_bolts": 2})
    b.close()
    b.close()  # safe twice
    with pytest.raises(BackendError, match="closed"):
        b.apply_action(np.zeros(7))


def test_backend_registry():
    assert {"mujoco", "real"} <= set(available_backends())
    with pytest.raises(ConfigError, match="mujoco"):
        make_backend("gazebo")
    register_backend(
        "tiny_mujoco", lambda **kw: MujocoBackend("scene_pickup.xml", **kw), overwrite=True
    )
    b = make_backend("tiny_mujoco", randomize=False)
    assert isinstance(b, MujocoBackend) and not b.randomize
    b.close()
    with pytest.raises(ConfigError, match="'mujoco' is already registered"):
        register_backend("mujoco", MujocoBackend)  # a clash is an error, not a silent swap


def test_ik_rotation_error_matches_hardware_rotations():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rotvec_to_matrix(rng.normal(size=3))
        turn = rng.normal(size=3)
        turn *= rng.uniform(0.0, 3.1) / np.linalg.norm(turn)
        b = rotvec_to_matrix(turn) @ a
        np.testing.assert_allclose(rotation_error(b, a), turn, atol=1e-9)
        np.testing.assert_allclose(rotation_error(b, a), matrix_to_rotvec(b @ a.T), atol=1e-12)


def test_differential_ik_reaches_a_nearby_pose_within_the_joint_limits(backend):
    backend.reset(get_task("pickup"), np.random.default_rng(1))
    ik = backend._ik
    q = backend.data.qpos[backend._arm_qadr].copy()
    pos, rot = ik.fk(q)
    target_pos = pos + np.array([0.02, -0.015, 0.01])
    target_rot = rotvec_to_matrix([0.0, 0.0, 0.15]) @ rot
    for _ in range(8):
        q = ik.step(q, target_pos, target_rot, home=backend._home_q, null_gain=0.0)
    reached_pos, reached_rot = ik.fk(q)
    assert np.linalg.norm(reached_pos - target_pos) < 1e-4
    assert np.linalg.norm(rotation_error(target_rot, reached_rot)) < 1e-3
    # an unreachable target leaves the joints clamped inside their limits
    far = q.copy()
    for _ in range(20):
        far = ik.step(far, target_pos + np.array([2.0, 0.0, 0.0]), target_rot)
    assert np.all(far >= ik.lower) and np.all(far <= ik.upper)
    assert np.any(np.isclose(far, ik.lower) | np.isclose(far, ik.upper))


def test_stop_holds_the_arm_at_its_measured_pose(backend):
    backend.reset(get_task("pickup"), np.random.default_rng(2))
    backend.apply_action(np.array([1.0, 0, 0, 0, 0, 0, -1.0]))
    backend.stop()
    d = backend.data
    np.testing.assert_array_equal(d.ctrl[backend._arm_act], d.qpos[backend._arm_qadr])
    np.testing.assert_array_equal(backend._target_pos, d.site_xpos[backend._tcp])
