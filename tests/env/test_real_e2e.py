"""The real-arm path end to end, against the MuJoCo arm served over a real loopback socket.

Cameras are video files written with ``cv2.VideoWriter`` and opened through OpenCV, as real
cameras would be. The scripted expert reads privileged state from the served simulation (the
stand-in for a person watching the cell); the operator's scene reset and success key are the
simulation's layout and success predicate.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
import zmq
from support.arm_server import REPO, arm_served_in_thread, spawn_arm_server, stop
from support.videos import camera, write_video
from support.waiting import GENEROUS_S, stays_false, wait_until

import daft_env  # noqa: F401  (registers the ids)
from daft_env.backends.real import CallableSceneResetter, CallableSuccess, RealBackendFault
from daft_env.experts import make_expert
from daft_env.mujoco_arm import MujocoArm, MujocoArmConfig
from daft_env.store import EpisodeStore
from daft_env.wrappers import RecordEpisodeToStore
from hardware.arm import ArmServer
from hardware.arm.protocol import decode, make_request
from hardware.errors import AuthenticationError, CameraError

TOKEN = "e2e-test-token-123"
SEEDS = (0, 1, 2)

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {
        "wrist": write_video(d / "wrist.avi", 30),
        "head": write_video(d / "head.avi", 30, size=(120, 90)),
        "short": write_video(d / "short.avi", 6),
    }


@pytest.fixture(scope="module")
def served():
    with arm_served_in_thread(TOKEN) as arm_and_server:
        yield arm_and_server


def real_kwargs(arm: MujocoArm, server: ArmServer, videos, **extra) -> dict:
    kwargs = {
        "arm_address": f"127.0.0.1:{server.port}",
        "arm_token": TOKEN,
        "wrist_camera": camera(videos["wrist"]),
        "head_camera": camera(videos["head"]),
        "realtime": False,  # the sim arm answers at once: run faster than real time
        "reset_position_noise": 0.0,
        "scene_resetter": CallableSceneResetter(arm.arrange_scene),
        "success_source": CallableSuccess(arm.task_status),
    }
    kwargs.update(extra)
    return kwargs


def run_expert(env, state_fn, seed: int) -> tuple[bool, int]:
    expert = make_expert("pickup")
    env.reset(seed=seed)
    expert.reset(seed)
    for step in range(1, 51):
        _, _, terminated, truncated, info = env.step(expert.act(state_fn()))
        if terminated or truncated:
            return bool(info["is_success"]), step
    raise AssertionError("episode did not end within 50 steps")


def test_expert_through_the_real_env_succeeds_on_the_same_seeds_as_in_sim(served, videos):
    arm, server = served
    sim = gym.make("BoltPickup-Sim-v0", obs_mode="state")
    real = gym.make("BoltPickup-Real-v0", backend_kwargs=real_kwargs(arm, server, videos))
    try:
        obs, info = real.reset(seed=SEEDS[0])
        assert obs["wrist_rgb"].shape == (128, 128, 3) and obs["head_rgb"].shape == (256, 256, 3)
        assert obs["wrist_rgb"].dtype == np.uint8 and real.observation_space.contains(obs)
        sim_results = [run_expert(sim, sim.unwrapped.privileged_state, s) for s in SEEDS]
        real_results = [run_expert(real, arm.privileged_state, s) for s in SEEDS]
    finally:
        real.close()
        sim.close()
    assert all(ok for ok, _ in sim_results), sim_results
    assert [ok for ok, _ in real_results] == [ok for ok, _ in sim_results], real_results
    # The same scene and the same closed loop: episode lengths agree to within a step.
    for (_, n_sim), (_, n_real) in zip(sim_results, real_results, strict=True):
        assert abs(n_sim - n_real) <= 1


def test_wrong_token_is_refused(served, videos):
    arm, server = served
    kwargs = real_kwargs(arm, server, videos, arm_token="not-the-token")
    with pytest.raises(AuthenticationError, match="token"):
        gym.make("BoltPickup-Real-v0", backend_kwargs=kwargs)
    assert server.auth_failures >= 1


def _is_stale(camera) -> bool:
    try:
        camera.read_latest()
    except CameraError:
        return True
    return False


def test_camera_that_stops_delivering_is_reported_and_ends_the_episode(served, videos, tmp_path):
    arm, server = served
    kwargs = real_kwargs(arm, server, videos, head_camera=camera(videos["short"], loop=False))
    env = RecordEpisodeToStore(
        gym.make("BoltPickup-Real-v0", backend_kwargs=kwargs), EpisodeStore(tmp_path / "store")
    )
    try:
        env.reset(seed=0)
        head = env.unwrapped.backend.cameras["head_rgb"]
        wait_until(lambda: _is_stale(head), what="the 6-frame head video ending and going stale")
        _, reward, terminated, truncated, info = env.step(np.zeros(7))
        # a hardware fault ends the episode as truncated: not a true terminal state of the task
        assert truncated and not terminated and reward == 0.0 and not info["is_success"]
        assert "CameraError" in info["backend_error"] and "head" in info["backend_error"]
        assert "stale" in info["backend_error"] and str(videos["short"]) in info["backend_error"]
        with pytest.raises(RealBackendFault, match="reset"):
            env.unwrapped.step(np.zeros(7))
    finally:
        env.close()
    assert env.store.count() == 1


def test_server_applies_its_safety_to_raw_messages_for_the_sim_arm(served):
    """A client that bypasses ArmClient (and its client-side safety) is still clipped."""
    arm, server = served
    arm.arrange_scene("pickup", 0)
    before = arm.state().ee_pose
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    try:
        sock.send(make_request("move_delta", TOKEN, 1, {"delta": np.r_[0.5, 0, -0.5, 0, 0, 2.0]}))
        assert sock.poll(5000)
        reply = decode(sock.recv())
        assert reply["ok"], reply
        clips = set(reply["result"]["clips"])
        assert {"step_translation_x", "step_translation_z", "step_rotation"} <= clips
        moved = np.asarray(reply["result"]["state"]["ee_pose"])[:3] - before[:3]
        assert np.all(np.abs(moved) <= 0.035), moved  # one clipped step, not 0.5 m
        sock.send(make_request("move_delta", TOKEN, 2, {"delta": np.r_[np.nan, 0, 0, 0, 0, 0]}))
        assert sock.poll(5000)
        reply = decode(sock.recv())
        assert not reply["ok"] and reply["error"]["type"] == "SafetyError"
        sock.send(make_request("move_to", TOKEN, 3, {"pose": np.r_[0.5, 0, -1.0, np.pi, 0, 0]}))
        assert sock.poll(5000)
        reply = decode(sock.recv())
        assert "workspace_z_low" in reply["result"]["clips"]
        assert reply["result"]["target_pose"][2] >= 0.006 - 1e-9
    finally:
        sock.close(0)


def _spawn_server(port: int = 0) -> tuple[subprocess.Popen, int]:
    return spawn_arm_server("--driver", "mujoco", "--port", str(port), token=TOKEN)


def test_server_killed_mid_episode_ends_it_as_failed_and_keeps_it(videos, tmp_path):
    proc, port = _spawn_server()
    store = EpisodeStore(tmp_path / "store")
    try:
        kwargs = {
            "arm_address": f"127.0.0.1:{port}",
            "arm_token": TOKEN,
            "wrist_camera": camera(videos["wrist"]),
            "head_camera": camera(videos["head"]),
            "realtime": False,
            "scene_reset": "none",
            "success": "none",
        }
        env = RecordEpisodeToStore(gym.make("BoltUpright-Real-v0", backend_kwargs=kwargs), store)
        env.reset(seed=3)
        for _ in range(3):
            _, _, terminated, truncated, info = env.step(np.r_[0.3, 0, 0, 0, 0, 0, -1.0])
            assert not (terminated or truncated) and "backend_error" not in info
        proc.send_signal(signal.SIGKILL)
        proc.wait(GENEROUS_S)
        _, reward, terminated, truncated, info = env.step(np.zeros(7))
        assert truncated and not terminated and reward == 0.0 and info["failed"]
        assert "ConnectionLostError" in info["backend_error"]
        assert f"127.0.0.1:{port}" in info["backend_error"]
        assert info["episode_saved_path"] is not None
        with pytest.raises(RealBackendFault, match="reset"):
            env.unwrapped.step(np.zeros(7))
        # The server comes back on the same port: the next reset reconnects.
        proc, _ = _spawn_server(port)
        env.reset(seed=4)
        _, _, terminated, truncated, info = env.step(np.zeros(7))
        assert not (terminated or truncated) and "backend_error" not in info
        env.close()
    finally:
        stop(proc)
    episodes = list(store.episodes())
    assert len(episodes) == 1
    ep = episodes[0]
    # kept as a failed, truncated (not terminal) episode that names the fault
    assert not ep.success and len(ep) == 4 and not ep.terminated.any()
    assert "ConnectionLostError" in ep.metadata["backend_error"]
    assert ep.observations["head_rgb"].shape == (5, 256, 256, 3)


_SILENT_CLIENT = textwrap.dedent(
    """
    import sys, time, numpy as np, gymnasium as gym, daft_env
    kwargs = dict(arm_address=sys.argv[1], arm_token=sys.argv[2], realtime=False,
                  wrist_camera=dict(driver="mock", name="wrist"),
                  head_camera=dict(driver="mock", name="head"),
                  scene_reset="none", success="none", reset_position_noise=0.0)
    env = gym.make("BoltPickup-Real-v0", backend_kwargs=kwargs)
    env.reset(seed=0)
    env.step(np.zeros(7))
    print("stepped", flush=True)
    time.sleep(60)
    """
)


def test_client_that_falls_silent_makes_the_server_stop_the_arm(served):
    arm, server = served
    proc = subprocess.Popen(
        [sys.executable, "-c", _SILENT_CLIENT, f"127.0.0.1:{server.port}", TOKEN],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "stepped", proc.stderr.read()
        stops_before = server.watchdog_stops
        # heartbeats alone keep an idle (thinking) client alive past the 0.5 s deadline
        assert stays_false(lambda: server.watchdog_stops != stops_before, 0.8)
        arm.stop_event.clear()
        proc.send_signal(signal.SIGSTOP)  # the client process freezes: no more heartbeats
        assert arm.stop_event.wait(GENEROUS_S), "the server never stopped the arm"
        assert server.watchdog_stops == stops_before + 1
    finally:
        proc.send_signal(signal.SIGKILL)
        stop(proc)


def test_mujoco_arm_speaks_metres_radians_and_opening_fractions():
    arm = MujocoArm(MujocoArmConfig(task="upright", seed=1))
    arm.connect()
    try:
        start = arm.state()
        assert start.joint_positions.shape == (7,) and start.gripper == pytest.approx(1.0, abs=0.05)
        np.testing.assert_allclose(start.ee_pose[:3], arm.home_pose()[:3], atol=0.01)
        # roll-pitch-yaw near roll = pi reads as pi or -pi: compare angles on the circle
        turn = start.ee_pose[3:] - arm.home_pose()[3:]
        np.testing.assert_allclose((turn + np.pi) % (2 * np.pi) - np.pi, 0.0, atol=0.01)
        result = None
        for _ in range(3):  # 3 x (1 cm along +y, +0.05 rad of yaw), fingers closing
            result = arm.move_delta(np.r_[0.0, 0.01, 0.0, 0.0, 0.0, 0.05], gripper=0.0)
        end = arm.state()
        assert end.ee_pose[1] - start.ee_pose[1] == pytest.approx(0.03, abs=0.004)
        yaw = (end.ee_pose[5] - start.ee_pose[5] + np.pi) % (2 * np.pi) - np.pi
        assert yaw == pytest.approx(0.15, abs=0.02)
        assert end.gripper < start.gripper - 0.5 and result.gripper == 0.0  # closing
        assert arm.default_limits().position_low[2] == pytest.approx(0.006)
        back = arm.home()
        np.testing.assert_allclose(back.ee_pose[:3], arm.home_pose()[:3], atol=0.004)
        assert back.gripper > 0.9
        arm.stop()
        assert arm.stop_count == 1 and arm.stop_event.is_set()
    finally:
        arm.close()


@pytest.mark.parametrize("env_id", ["BoltPickup-Real-v0", "BoltMultiTask-Real-v0"])
def test_real_ids_pass_the_gymnasium_and_sb3_env_checkers(served, videos, env_id):
    """The -Real-v0 face is the -Sim-v0 face: same spaces, same API, checked by both checkers.

    Real ids are registered nondeterministic (cameras run in wall time), so the checkers' same-seed
    observation comparison is skipped for them; everything else is checked.
    """
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    arm, server = served
    env = gym.make(env_id, backend_kwargs=real_kwargs(arm, server, videos))
    sim = gym.make(env_id.replace("-Real-", "-Sim-"))
    try:
        assert env.spec.nondeterministic
        assert env.observation_space == sim.observation_space
        assert env.action_space == sim.action_space
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=False)
    finally:
        env.close()
        sim.close()
