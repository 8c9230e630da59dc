"""Physical honesty checks (issue 2, acceptance item 4), run against the real MJCF scenes."""

import numpy as np

from daft_env import BoltEnv
from daft_env.experts import AssembleExpert, run_expert_episode

HOLD_GRIP = np.array([0, 0, 0, 0, 0, 0, 1.0])


def _pad_frame_position(backend):
    m, d = backend.model, backend.data
    pad = m.geom("pad_left").id
    rot = d.geom_xmat[pad].reshape(3, 3)
    return rot.T @ (d.xpos[backend._bolts[0]] - d.geom_xpos[pad])


def test_resting_bolt_drifts_less_than_1mm_in_5s():
    for task in ("upright", "pickup"):  # lying on its side, standing on its head
        env = BoltEnv(task=task, obs_mode="state")
        env.reset(seed=3)
        start = env.privileged_state()["bolt_pos"].copy()
        for _ in range(50):  # 50 x 0.1 s, arm holding still with the gripper open
            env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
        drift = np.linalg.norm(env.privileged_state()["bolt_pos"] - start)
        assert drift < 1e-3, f"{task}: resting bolt drifted {drift * 1e3:.2f} mm"
        env.close()


def test_grasped_bolt_lifted_10cm_slips_at_most_2mm():
    env = BoltEnv(task="assemble", obs_mode="state")
    env.reset(seed=0)
    backend = env.unwrapped.backend
    before = _pad_frame_position(backend)
    z0 = env.privileged_state()["tcp_pos"][2]
    for k in range(8):  # 5 steps at 2 cm, then hold
        env.step(np.array([0, 0, 1.0 if k < 5 else 0.0, 0, 0, 0, 1.0]))
    state = env.privileged_state()
    assert state["tcp_pos"][2] - z0 > 0.095
    assert state["grasped"]
    slip = np.linalg.norm(_pad_frame_position(backend) - before)
    assert slip <= 2e-3, f"bolt slipped {slip * 1e3:.2f} mm in the fingers"
    env.close()


def test_assembly_needs_millimetre_alignment():
    """The slot leaves 1 mm each side of the shank: a target a few millimetres off rarely fits.

    The continuous expert keeps pushing while the head is within 2.5 mm of its (offset) target,
    and the grasp's compliance sometimes lets the fixture guide a misaligned shank in, so this
    is a rate over seeds, not a certainty. A shank forced in 2 mm off lies against a plate edge:
    it reaches full depth, but the success predicate (1.2 mm laterally) does not count it.
    """
    env = BoltEnv(task="assemble", obs_mode="state")
    seeds = range(12)
    ok = [run_expert_episode(env, AssembleExpert(), seed=s)["success"] for s in seeds]
    assert all(ok), "the unperturbed expert must succeed on these seeds"
    for offset in (0.005, -0.005):
        expert = AssembleExpert(slot_offset=(0.0, offset))
        wins = sum(run_expert_episode(env, expert, seed=s)["success"] for s in seeds)
        assert wins <= 3, f"a {offset * 1e3:+.0f} mm lateral error fit {wins} of 12 times"
    forced = [
        run_expert_episode(env, AssembleExpert(slot_offset=(0.0, -0.002)), seed=s) for s in seeds
    ]
    assert not any(r["success"] for r in forced)
    assert sum(r["info"]["slot_depth"] >= 0.015 for r in forced) >= 10
    env.close()


def test_1cm_end_effector_delta_is_tracked_within_1mm_without_contact():
    env = BoltEnv(task="pickup", obs_mode="state")
    env.reset(seed=5)
    for axis in range(3):
        for sign in (1.0, -1.0):
            start = env.privileged_state()["tcp_pos"].copy()
            action = np.zeros(7)
            action[axis] = sign * 0.5  # 0.5 x 2 cm = 1 cm
            action[6] = -1.0
            _, _, _, _, info = env.step(action)
            assert not info["action_clipped"]
            # The joint servos finish the move in the next period while the target is held
            # (a zero action), as a real arm's controller settles after its interpolator.
            env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
            moved = env.privileged_state()["tcp_pos"] - start
            want = np.zeros(3)
            want[axis] = sign * 0.01
            err = np.linalg.norm(moved - want)
            assert err < 1e-3, f"axis {axis} sign {sign}: tracking error {err * 1e3:.2f} mm"
    env.close()


def test_joint_limits_hold_and_workspace_is_bounded():
    env = BoltEnv(task="pickup", obs_mode="state")
    env.reset(seed=0)
    backend = env.unwrapped.backend
    lo = backend.model.jnt_range[backend._arm_joints, 0]
    hi = backend.model.jnt_range[backend._arm_joints, 1]
    reasons = set()
    for k in range(40):  # push hard up, then sideways, while twisting
        action = np.array([0.0, 1.0 if k >= 20 else 0.0, 1.0, 0.0, 0.0, 1.0, -1.0])
        _, _, _, _, info = env.step(action)
        reasons.update(info["clip_reasons"])
        q = env.privileged_state()["arm_qpos"]
        assert np.all(q >= lo - 0.02) and np.all(q <= hi + 0.02)
    tcp = env.privileged_state()["tcp_pos"]
    assert tcp[2] <= 0.40 + 0.005 and abs(tcp[1]) <= 0.38 + 0.005
    assert "workspace_z" in reasons and "workspace_y" in reasons
    env.close()
