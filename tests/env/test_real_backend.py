"""RealBackend: configuration, client-side safety reporting, reset, operator signals, faults.

The arm is hardware's MockArm (in process, or behind a real ArmServer where the network matters)
and the cameras are hardware's MockCamera; the end-to-end run against the MuJoCo arm is in
``test_real_e2e.py``.
"""

from __future__ import annotations

import json
import time

import gymnasium as gym
import numpy as np
import pytest

import daft_env  # noqa: F401  (registers the ids)
from daft_env.backends.real import (
    CallableSceneResetter,
    CallableSuccess,
    ClassifierSuccess,
    KeySceneResetter,
    KeySuccess,
    RealBackend,
    RealBackendFault,
    RealConfig,
    SharedKeySource,
    TimerSceneResetter,
)
from daft_env.errors import ConfigError
from daft_env.tasks import get_task
from hardware.arm import ArmServer, MockArm, MockArmConfig
from hardware.cameras import MockCamera, MockCameraConfig
from hardware.errors import ConnectionLostError
from hardware.safety import SafetyLimits
from hardware.teleop import ScriptedKeySource

TOKEN = "unit-test-token-1"
BOX = {"position_low": [0.3, -0.2, 0.1], "position_high": [0.6, 0.2, 0.4]}


def cameras() -> dict:
    return {
        "wrist_camera": MockCamera(MockCameraConfig(name="wrist", size=(128, 128))),
        "head_camera": MockCamera(MockCameraConfig(name="head", size=(256, 256))),
    }


def make_env(arm=None, obs_mode: str = "pixels", **kwargs) -> gym.Env:
    backend_kwargs = {
        "arm": arm if arm is not None else MockArm(),
        "realtime": False,
        "scene_reset": "none",
        "success": "none",
        **cameras(),
        **kwargs,
    }
    return gym.make("BoltUpright-Real-v0", obs_mode=obs_mode, backend_kwargs=backend_kwargs)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for var in list(RealConfig.from_environment({}).keys()) + [
        "DAFT_REAL_CONFIG",
        "DAFT_ARM_ADDRESS",
        "DAFT_ARM_HOST",
        "DAFT_ARM_PORT",
        "DAFT_ARM_TOKEN",
        "DAFT_WRIST_CAMERA",
        "DAFT_HEAD_CAMERA",
        "DAFT_SCENE_RESET",
        "DAFT_SUCCESS",
        "DAFT_REALTIME",
    ]:
        monkeypatch.delenv(var, raising=False)


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_config_file_in_each_format(tmp_path, suffix):
    body = {
        ".yaml": "arm_address: 10.0.0.5:6000\nhead_camera: {driver: opencv, source: head.mp4}\n"
        "workspace: {position_low: [0.3, -0.2, 0.1], position_high: [0.6, 0.2, 0.4]}\n",
        ".toml": 'arm_address = "10.0.0.5:6000"\n[head_camera]\ndriver = "opencv"\n'
        'source = "head.mp4"\n[workspace]\nposition_low = [0.3, -0.2, 0.1]\n'
        "position_high = [0.6, 0.2, 0.4]\n",
        ".json": json.dumps(
            {
                "arm_address": "tcp://10.0.0.5:6000",
                "head_camera": {"driver": "opencv", "source": "head.mp4"},
                "workspace": BOX,
            }
        ),
    }[suffix]
    path = tmp_path / f"real{suffix}"
    path.write_text(body)
    cfg = RealConfig.resolve(path, environ={})
    assert (cfg.arm_host, cfg.arm_port) == ("10.0.0.5", 6000)
    assert cfg.head_camera == {"driver": "opencv", "source": "head.mp4"}
    assert cfg.limits().position_high == (0.6, 0.2, 0.4)


def test_precedence_defaults_file_environment_keywords(tmp_path):
    path = tmp_path / "real.yaml"
    path.write_text("arm_address: 10.0.0.5:6000\narm_token: from-the-file\nrealtime: true\n")
    environ = {
        "DAFT_REAL_CONFIG": str(path),
        "DAFT_ARM_PORT": "7000",
        "DAFT_ARM_TOKEN": "from-the-environment",
        "DAFT_WRIST_CAMERA": "2",
        "DAFT_SCENE_RESET": "timer:3",
        "DAFT_SUCCESS": "classifier:model.pt",
    }
    cfg = RealConfig.resolve(None, environ=environ, realtime=False)
    assert (cfg.arm_host, cfg.arm_port) == ("10.0.0.5", 7000)
    assert cfg.arm_token == "from-the-environment"
    assert cfg.wrist_camera == {"driver": "opencv", "source": 2}
    assert (cfg.scene_reset, cfg.scene_reset_timer_s) == ("timer", 3.0)
    assert (cfg.success, cfg.classifier_path) == ("classifier", "model.pt")
    assert cfg.realtime is False
    assert cfg.address == "tcp://10.0.0.5:7000"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("arm_port: 70000\n", "arm_port"),
        ("arm_address: robot-pc\n", "arm_address"),
        ("arm_token: short\n", "arm_token"),
        ("arm_timeout_s: -1\n", "arm_timeout_s"),
        ("wrist_camera: 0\n", "wrist_camera"),
        ("head_camera: {driver: webcam9000}\n", "head_camera"),
        ("workspace: {position_low: [0.5, 0, 0], position_high: [0.4, 1, 1]}\n", "workspace"),
        ("workspace: {box: 1}\n", "workspace"),
        ("reset_pose: [0.4, 0.0, 0.2]\n", "reset_pose"),
        ("scene_reset: clap\n", "scene_reset"),
        ("success: classifier\n", "classifier_path"),
        ("classifier_threshold: 1.5\n", "classifier_threshold"),
        ("realtime: maybe\n", "realtime"),
        ("reset_max_steps: 0\n", "reset_max_steps"),
    ],
)
def test_malformed_config_raises_config_error_naming_the_field(tmp_path, content, field):
    path = tmp_path / "real.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=field) as info:
        RealConfig.resolve(path, environ={})
    assert "Fix" in str(info.value)


def test_unknown_field_and_bad_syntax_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("arm_adress: 1.2.3.4:5\n")
    with pytest.raises(ConfigError, match="arm_adress") as info:
        RealConfig.resolve(bad, environ={})
    assert "arm_address" in str(info.value)  # the valid names are listed
    broken = tmp_path / "broken.json"
    broken.write_text("{arm_port: ")
    with pytest.raises(ConfigError, match="not valid JSON"):
        RealConfig.resolve(broken, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        RealConfig.resolve(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="extension"):
        (tmp_path / "real.ini").write_text("x")
        RealConfig.resolve(tmp_path / "real.ini", environ={})
    # gym.make surfaces the same error
    with pytest.raises(ConfigError, match="arm_adress"):
        gym.make("BoltUpright-Real-v0", backend_kwargs={"config": str(bad)})


def test_no_arm_reachable_fails_fast_naming_the_address_and_how_to_configure(monkeypatch):
    monkeypatch.setenv("DAFT_ARM_TOKEN", TOKEN)
    monkeypatch.setenv("DAFT_ARM_ADDRESS", "127.0.0.1:1")  # nothing listens on port 1
    t0 = time.monotonic()
    with pytest.raises(ConnectionLostError) as info:
        gym.make("BoltUpright-Real-v0")
    assert time.monotonic() - t0 < 5.0
    message = str(info.value)
    assert "tcp://127.0.0.1:1" in message
    assert "DAFT_ARM_ADDRESS" in message and "daft arm-server" in message


def test_no_token_is_a_config_error_naming_the_address():
    with pytest.raises(ConfigError, match="DAFT_ARM_TOKEN") as info:
        gym.make("BoltUpright-Real-v0")
    assert "tcp://127.0.0.1:5560" in str(info.value)


def test_state_observations_are_refused_on_the_real_arm():
    with pytest.raises(ConfigError, match="privileged state"):
        make_env(obs_mode="state")


# -- stepping and safety -------------------------------------------------------------------------


def test_step_sends_the_scaled_delta_and_reports_every_clip():
    arm = MockArm()
    env = make_env(arm, workspace=BOX)
    try:
        obs, info = env.reset(seed=0)
        assert obs["head_rgb"].shape == (256, 256, 3) and obs["wrist_rgb"].shape == (128, 128, 3)
        start = arm.state().ee_pose
        _, _, _, _, info = env.step(np.array([0.5, -0.5, 0.25, 0, 0, 0, 1.0]))
        assert not info["action_clipped"] and info["clip_reasons"] == ()
        np.testing.assert_allclose(arm.state().ee_pose[:3] - start[:3], [0.01, -0.01, 0.005])
        assert arm.state().gripper == pytest.approx(0.0)  # +1 closes
        assert env.unwrapped.backend.observe(pixels=False, state=False)["gripper"][0] == 0.0
        _, _, _, _, info = env.step(np.array([3.0, 0, 0, 0, 0, 0, 0]))  # outside [-1, 1]
        assert "action_range" in info["clip_reasons"]
        for _ in range(12):  # drive up into the box's ceiling
            _, _, _, _, info = env.step(np.array([0, 0, 1.0, 0, 0, 0, -1]))
        assert "workspace_z_high" in info["clip_reasons"] and info["action_clipped"]
        assert arm.state().ee_pose[2] <= 0.4 + 1e-9
    finally:
        env.close()


def test_server_side_clips_are_reported_when_the_client_box_is_looser():
    arm = MockArm(MockArmConfig(limits=SafetyLimits(position_high=(0.8, 0.45, 0.27))))
    with ArmServer(arm, port=0, token=TOKEN) as server:
        env = gym.make(
            "BoltUpright-Real-v0",
            backend_kwargs={
                "arm_address": f"127.0.0.1:{server.port}",
                "arm_token": TOKEN,
                "realtime": False,
                "scene_reset": "none",
                "success": "none",
                "reset_position_noise": 0.0,
                "workspace": {"position_low": [0, -1, 0], "position_high": [1, 1, 1]},
                **cameras(),
            },
        )
        try:
            env.reset(seed=0)
            reasons = set()
            for _ in range(3):
                _, _, _, _, info = env.step(np.array([0, 0, 1.0, 0, 0, 0, -1]))
                reasons |= set(info["clip_reasons"])
            assert "workspace_z_high" in reasons  # only the server's box is that low
            assert arm.state().ee_pose[2] <= 0.27 + 1e-9
        finally:
            env.close()


def test_reset_moves_to_a_randomised_start_around_the_reset_pose_without_consuming_rng():
    pose = (0.45, 0.05, 0.3, np.pi, 0.0, 0.0)
    seen = []

    def arrange(task, rng):
        seen.append(rng.integers(1 << 30))

    arm = MockArm()
    env = make_env(
        arm,
        reset_pose=pose,
        reset_position_noise=0.02,
        scene_resetter=CallableSceneResetter(arrange),
    )
    try:
        starts = []
        for seed in (1, 1, 2):
            env.reset(seed=seed)
            starts.append(arm.state().ee_pose)
        for start in starts:
            assert np.all(np.abs(start[:3] - np.array(pose[:3])) <= 0.02 + 1e-3)
        np.testing.assert_allclose(starts[0], starts[1])
        assert not np.allclose(starts[0][:3], starts[2][:3])
        # the scene resetter saw the env's generator exactly as a fresh one with that seed
        fresh = np.random.Generator(np.random.PCG64(np.random.SeedSequence(1)))
        assert seen[0] == seen[1] == fresh.integers(1 << 30)
    finally:
        env.close()


def test_key_scene_reset_blocks_until_enter_and_times_out():
    keys = ScriptedKeySource(["", "x", "", "\n"])
    prompts = []
    resetter = KeySceneResetter(keys, prompt=prompts.append)
    resetter.arrange(get_task("pickup"), np.random.default_rng(0))
    assert keys._i == 4 and "pick up the bolt" in prompts[0]
    slow = KeySceneResetter(ScriptedKeySource([]), timeout_s=0.1, prompt=lambda _: None)
    with pytest.raises(RealBackendFault, match="within"):
        slow.arrange(get_task("pickup"), np.random.default_rng(0))
    t0 = time.monotonic()
    TimerSceneResetter(0.2, prompt=lambda _: None).arrange(get_task("upright"), None)
    assert time.monotonic() - t0 >= 0.2


def test_operator_success_and_failure_keys_end_the_episode():
    keys = ScriptedKeySource(["", "", "", "y", "", "", "n"])
    env = make_env(success_source=KeySuccess(keys))
    try:
        env.reset(seed=0)  # polls once
        _, reward, terminated, _, info = env.step(np.zeros(7))
        assert (reward, terminated, info["is_success"]) == (0.0, False, False)
        _, reward, terminated, _, info = env.step(np.zeros(7))
        assert (reward, terminated, info["is_success"]) == (1.0, True, True)
        env.reset(seed=1)
        _, reward, terminated, _, info = env.step(np.zeros(7))
        assert (reward, terminated, info["failed"]) == (0.0, True, True)
    finally:
        env.close()


class _BrightnessModel:
    """Stands in for a trained classifier: p = mean red of the head image / 255."""

    image_keys = ("head_rgb",)

    def predict(self, frames):
        return float(frames["head_rgb"][..., 0].mean() / 255.0)


def test_classifier_success_needs_consecutive_confident_frames():
    source = ClassifierSuccess(_BrightnessModel(), threshold=0.5, consecutive=2)
    task = get_task("pickup")
    source.reset(task)
    bright = {"head_rgb": np.full((8, 8, 3), 200, np.uint8)}
    dark = {"head_rgb": np.zeros((8, 8, 3), np.uint8)}
    verdicts = [source.status(task, f).success for f in (bright, dark, bright, bright)]
    assert verdicts == [False, False, False, True]
    assert source.status(task, dark).info["success_prob"] == 0.0
    with pytest.raises(ConfigError, match="head_rgb"):
        source.status(task, {"wrist_rgb": dark["head_rgb"]})


def test_stalled_camera_ends_the_episode_as_failed_then_reset_recovers():
    cams = cameras()
    env = make_env(**cams, camera_max_age_s=0.2)
    head = cams["head_camera"]
    try:
        env.reset(seed=0)
        env.step(np.zeros(7))
        head.stall()
        time.sleep(0.3)
        _, _, terminated, truncated, info = env.step(np.zeros(7))
        assert truncated and not terminated and info["failed"]
        assert "stale" in info["backend_error"] and "mock:head" in info["backend_error"]
        with pytest.raises(RealBackendFault):
            env.unwrapped.backend.apply_action(np.zeros(7))
        head.resume()
        env.reset(seed=1)
        _, _, terminated, _, info = env.step(np.zeros(7))
        assert not terminated and "backend_error" not in info
    finally:
        env.close()


def test_callable_success_accepts_a_task_status_and_close_is_idempotent():
    from daft_env.backends.base import TaskStatus

    env = make_env(success_source=CallableSuccess(lambda: TaskStatus(True, info={"d": 1.0})))
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(7))
    assert reward == 1.0 and terminated and info["d"] == 1.0
    backend = env.unwrapped.backend
    env.close()
    backend.close()
    with pytest.raises(Exception, match="closed"):
        backend.apply_action(np.zeros(7))


def test_backend_accepts_a_ready_config_object():
    cfg = RealConfig(arm_token=TOKEN, realtime=False, scene_reset="none", success="none")
    backend = RealBackend(cfg, arm=MockArm(), **cameras())
    try:
        backend.reset(get_task("upright"), np.random.default_rng(0))
        report = backend.apply_action(np.r_[0.0, 0.0, 0.0, 2.0, 0, 0, 0])
        assert report.clipped and "action_range" in report.clip_reasons
        assert report.applied[3] == pytest.approx(1.0, abs=1e-6)
    finally:
        backend.close()


class _CountingKeys(ScriptedKeySource):
    def __init__(self, steps):
        super().__init__(steps)
        self.opened = self.closed = 0

    def open(self):
        self.opened += 1

    def close(self):
        self.closed += 1


def test_key_resetter_and_key_success_share_one_terminal_opened_and_restored_once():
    keys = _CountingKeys(["\n", "", "y"])
    env = make_env(scene_reset="key", success="key", key_source=keys)
    backend = env.unwrapped.backend
    assert isinstance(backend.scene_resetter.key_source, SharedKeySource)
    assert backend.scene_resetter.key_source is backend.success_source.key_source
    backend.scene_resetter.prompt = lambda _: None
    env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(np.zeros(7))
    assert reward == 1.0 and terminated
    env.close()
    assert (keys.opened, keys.closed) == (1, 1)


def test_callable_scene_resetter_passes_reset_options_when_it_takes_them():
    seen = []
    with_options = CallableSceneResetter(lambda task, rng, options: seen.append(options))
    without = CallableSceneResetter(lambda task, rng: seen.append("two"))
    with_options.arrange(get_task("upright"), np.random.default_rng(0), {"n_bolts": 2})
    without.arrange(get_task("upright"), np.random.default_rng(0), {"n_bolts": 2})
    assert seen == [{"n_bolts": 2}, "two"]
