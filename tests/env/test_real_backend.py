"""RealBackend: configuration, client-side safety reporting, reset, operator signals, faults.

The arm is hardware's MockArm (in process, or behind a real ArmServer where the network matters)
and the cameras are hardware's MockCamera; the end-to-end run against the MuJoCo arm is in
``test_real_e2e.py``.
"""

from __future__ import annotations

import copy
import json

import gymnasium as gym
import numpy as np
import pytest
from support.waiting import wait_until

import daft_env  # noqa: F401  (registers the ids)
from daft_env.backends.base import Backend, TaskStatus
from daft_env.backends.real import (
    ENV_VARS,
    SCENE_RESETTERS,
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
from daft_env.backends.real import config as config_module
from daft_env.errors import BackendError, ConfigError
from daft_env.tasks import get_task
from hardware.arm import ArmServer, MockArm, MockArmConfig
from hardware.cameras import MockCamera, MockCameraConfig
from hardware.errors import CameraError, ConnectionLostError, HardwareError, SafetyError
from hardware.safety import SafetyLimits
from hardware.teleop import ScriptedKeySource

pytestmark = pytest.mark.usefixtures("no_leaked_threads")

TOKEN = "unit-test-token-1"
BOX = {"position_low": [0.3, -0.2, 0.1], "position_high": [0.6, 0.2, 0.4]}


_opened: list[MockCamera] = []


def cameras() -> dict:
    """Fresh wrist and head mock cameras; every one is closed when the test ends."""
    cams = {
        "wrist_camera": MockCamera(MockCameraConfig(name="wrist", size=(128, 128))),
        "head_camera": MockCamera(MockCameraConfig(name="head", size=(256, 256))),
    }
    _opened.extend(cams.values())
    return cams


@pytest.fixture(autouse=True)
def _close_cameras():
    """Close every camera a test made, even when the env that owned it failed to build."""
    yield
    while _opened:
        _opened.pop().close()


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


class FaultyArm(MockArm):
    """A MockArm whose next call of a given method raises the given error (then works again)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next: dict[str, Exception] = {}

    def _maybe_fail(self, method: str) -> None:
        error = self.fail_next.pop(method, None)
        if error is not None:
            raise error

    def move_to(self, pose, gripper=None):
        self._maybe_fail("move_to")
        return super().move_to(pose, gripper)

    def home(self):
        self._maybe_fail("home")
        return super().home()


class KeysOnDemand:
    """A key source that returns exactly the keys the test put in ``pending``, once."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    def open(self) -> None:
        """Nothing to open."""

    def poll(self) -> list[str]:
        keys, self.pending = self.pending, []
        return keys

    def close(self) -> None:
        """Nothing to close."""


def motions(arm: MockArm) -> int:
    """How many motion commands reached the arm."""
    return sum(name in ("move_to", "home", "set_gripper") for name, _ in arm.calls)


def assert_refused_until_reset(env, arm: MockArm) -> None:
    """A step after a fault raises, naming reset as the way out, and sends the arm nothing."""
    moved = motions(arm)
    with pytest.raises(RealBackendFault, match="reset"):
        env.step(np.r_[0.5, 0, 0, 0, 0, 0, 0])
    assert motions(arm) == moved


def assert_episode_runs(env, seed: int) -> None:
    """A reset then a step that runs without any fault."""
    env.reset(seed=seed)
    _, _, terminated, truncated, info = env.step(np.zeros(7))
    assert not (terminated or truncated) and "backend_error" not in info


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


def test_no_arm_reachable_fails_naming_the_address_and_how_to_configure(monkeypatch):
    monkeypatch.setenv("DAFT_ARM_TOKEN", TOKEN)
    monkeypatch.setenv("DAFT_ARM_ADDRESS", "127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(ConnectionLostError) as info:
        gym.make("BoltUpright-Real-v0", backend_kwargs={"connect_timeout_s": 0.3})
    message = str(info.value)
    assert "tcp://127.0.0.1:1" in message and "tried for 0.3 s" in message
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
    slept = []
    TimerSceneResetter(0.2, prompt=lambda _: None, sleep=slept.append).arrange(
        get_task("upright"), None
    )
    assert slept == [0.2]


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


def _is_stale(camera: MockCamera, max_age_s: float) -> bool:
    try:
        camera.read_latest(max_age_s)
    except CameraError:
        return True
    return False


def test_stalled_camera_ends_the_episode_as_failed_then_reset_recovers():
    cams = cameras()
    env = make_env(**cams, camera_max_age_s=0.2)
    head = cams["head_camera"]
    try:
        env.reset(seed=0)
        env.step(np.zeros(7))
        head.stall()
        wait_until(lambda: _is_stale(head, 0.2), what="the stalled head camera going stale")
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
    env = make_env(success_source=CallableSuccess(lambda: TaskStatus(True, info={"d": 1.0})))
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(7))
    assert reward == 1.0 and terminated and info["d"] == 1.0
    backend = env.unwrapped.backend
    env.close()
    backend.close()
    with pytest.raises(BackendError, match="closed"):
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


# -- faults: the driver, the reset, the server, the cell -----------------------------------------


@pytest.mark.parametrize(
    "error", [HardwareError("servo overheated"), SafetyError("joint limit")], ids=type
)
def test_a_driver_error_mid_step_stops_the_arm_and_truncates_the_episode_naming_it(error):
    arm = FaultyArm()
    env = make_env(arm)
    try:
        env.reset(seed=0)
        stops = arm.stop_count
        arm.fail_next["move_to"] = error
        _, reward, terminated, truncated, info = env.step(np.r_[0.5, 0, 0, 0, 0, 0, 0])
        assert truncated and not terminated and reward == 0.0 and info["failed"]
        assert info["backend_error"] == f"{type(error).__name__}: {error}"
        assert info["backend_error_type"] == type(error).__name__
        assert "backend_error" in info["clip_reasons"]
        assert arm.stop_count == stops + 1  # the backend stopped the arm itself
        assert_refused_until_reset(env, arm)
        assert_episode_runs(env, seed=1)  # the same arm recovers: reconnect and carry on
    finally:
        env.close()


def test_a_lost_connection_is_not_answered_with_a_stop_on_the_dead_link():
    arm = FaultyArm()
    env = make_env(arm)
    try:
        env.reset(seed=0)
        stops = arm.stop_count
        arm.fail_next["move_to"] = ConnectionLostError("tcp://robot-pc:5560 stopped answering")
        _, _, _, truncated, info = env.step(np.zeros(7))
        assert truncated and "ConnectionLostError" in info["backend_error"]
        assert arm.stop_count == stops  # the server's watchdog stops a silent client's arm
    finally:
        env.close()


def test_a_reset_failure_is_a_recorded_fault_and_the_next_reset_recovers():
    arm = FaultyArm()
    env = make_env(arm)  # reset_pose None: each reset homes the arm
    backend = env.unwrapped.backend
    try:
        env.reset(seed=0)
        arm.fail_next["home"] = HardwareError("controller in error state 22")
        with pytest.raises(RealBackendFault, match="reset failed: HardwareError: controller"):
            env.reset(seed=1)
        assert backend.fault_type == "HardwareError"
        status = backend.task_status()
        assert status.failed and "error state 22" in status.info["backend_error"]
        assert_refused_until_reset(env, arm)  # no episode runs on a scene never set up
        obs, _ = env.reset(seed=2)
        assert backend.fault is None and obs["head_rgb"].shape == (256, 256, 3)
    finally:
        env.close()


def test_a_scene_reset_timeout_is_recorded_as_a_fault_and_refuses_steps():
    keys = KeysOnDemand()
    arm = MockArm()
    resetter = KeySceneResetter(keys, timeout_s=0.05, prompt=lambda _: None)
    env = make_env(arm, scene_resetter=resetter)
    raw = env.unwrapped  # gym's passive checker cannot follow a reset that raised
    backend = raw.backend
    try:
        with pytest.raises(RealBackendFault, match="reset failed.*nobody confirmed the scene"):
            raw.reset(seed=0)
        assert backend.fault_type == "RealBackendFault" and "upright" in backend.fault
        status = backend.task_status()
        assert status.failed and "nobody confirmed" in status.info["backend_error"]
        assert_refused_until_reset(raw, arm)
        keys.pending = ["\n"]  # the operator confirms this time
        assert_episode_runs(raw, seed=1)
    finally:
        env.close()


def test_recovery_while_the_server_is_still_down_keeps_the_fault_until_it_is_back():
    arm = MockArm()
    server = ArmServer(arm, port=0, token=TOKEN, heartbeat_timeout_s=5.0).start_in_thread()
    port = server.port
    kwargs = {
        "arm_address": f"127.0.0.1:{port}",
        "arm_token": TOKEN,
        "arm_timeout_s": 0.2,
        "connect_timeout_s": 0.3,
        "realtime": False,
        "scene_reset": "none",
        "success": "none",
        **cameras(),
    }
    env = gym.make("BoltUpright-Real-v0", backend_kwargs=kwargs)
    backend = env.unwrapped.backend
    try:
        env.reset(seed=0)
        server.shutdown()
        _, _, _, truncated, info = env.step(np.zeros(7))
        assert truncated and "ConnectionLostError" in info["backend_error"]
        with pytest.raises(RealBackendFault, match="could not recover") as err:
            env.reset(seed=1)  # the server is still down
        assert f"127.0.0.1:{port}" in str(err.value)
        assert backend.fault_type == "ConnectionLostError"
        with pytest.raises(RealBackendFault, match="reset"):
            env.step(np.zeros(7))
        with ArmServer(MockArm(), port=port, token=TOKEN, heartbeat_timeout_s=5.0):
            assert_episode_runs(env, seed=2)
            env.close()
    finally:
        env.close()
        server.shutdown()


# -- the Backend protocol ------------------------------------------------------------------------


def test_real_backend_implements_every_backend_method_explicitly():
    env = make_env(obs_mode="pixels")
    backend = env.unwrapped.backend
    try:
        assert isinstance(backend, Backend) and backend.has_privileged_state is False
        with pytest.raises(BackendError, match="no privileged state"):
            backend.privileged_state()
        with pytest.raises(BackendError, match="rgb_array"):
            backend.render_human()
        env.reset(seed=0)
        assert "active_bolt" not in backend.task_status().info
        backend.set_active_bolt(2)
        assert backend.task_status().info["active_bolt"] == 2
        with pytest.raises(ConfigError, match="bolt index"):
            backend.set_active_bolt(-1)
        assert backend.render("wrist").shape == (128, 128, 3)
        with pytest.raises(ConfigError, match="valid cameras"):
            backend.render("side")
        stops = backend.arm.stop_count
        backend.stop()
        assert backend.arm.stop_count == stops + 1
    finally:
        env.close()


# -- the cell: registries and handles ------------------------------------------------------------


def test_cell_objects_are_handles_that_gym_copies_by_reference():
    objects = [
        KeySceneResetter(ScriptedKeySource([])),
        TimerSceneResetter(0.0),
        CallableSceneResetter(lambda task, rng: None),
        KeySuccess(ScriptedKeySource([])),
        ClassifierSuccess(_BrightnessModel()),
        CallableSuccess(lambda: False),
    ]
    for obj in objects:
        assert copy.deepcopy(obj) is obj, type(obj).__name__
        obj.close()
        obj.close()  # twice is fine


def test_a_registered_scene_reset_mode_is_accepted_by_the_config_and_built_by_the_backend():
    made = []

    def factory(config, keys):
        made.append(config.scene_reset)
        return TimerSceneResetter(0.0)

    with pytest.raises(ConfigError, match="unknown mode 'conveyor'"):
        RealConfig(scene_reset="conveyor")
    SCENE_RESETTERS.register("conveyor", factory)
    try:
        env = make_env(scene_reset="conveyor")
        env.close()
        assert made == ["conveyor"]
    finally:
        SCENE_RESETTERS._entries.pop("conveyor")


# -- ENV_VARS: the one list ----------------------------------------------------------------------


def test_env_vars_is_the_one_list_the_loader_docs_and_errors_use():
    every = {
        "DAFT_ARM_ADDRESS": "10.0.0.9:7001",
        "DAFT_ARM_HOST": "robot-pc",
        "DAFT_ARM_PORT": "7002",
        "DAFT_ARM_TOKEN": "a-token-of-length",
        "DAFT_WRIST_CAMERA": "/dev/video4",
        "DAFT_HEAD_CAMERA": "3",
        "DAFT_SCENE_RESET": "timer:2.5",
        "DAFT_SUCCESS": "none",
        "DAFT_REALTIME": "0",
    }
    assert set(ENV_VARS) == {"DAFT_REAL_CONFIG", *every}
    fields = RealConfig.from_environment(every)
    assert fields == {
        "arm_host": "robot-pc",  # DAFT_ARM_HOST comes after DAFT_ARM_ADDRESS and wins
        "arm_port": 7002,
        "arm_token": "a-token-of-length",
        "wrist_camera": {"driver": "opencv", "source": "/dev/video4"},
        "head_camera": {"driver": "opencv", "source": 3},
        "scene_reset": "timer",
        "scene_reset_timer_s": 2.5,
        "success": "none",
        "realtime": False,
    }
    for name in ENV_VARS:  # the module's documentation table is written from the list
        assert f"``{name}``" in config_module.__doc__
    with pytest.raises(ConfigError, match="DAFT_ARM_PORT"):
        RealConfig.from_environment({"DAFT_ARM_PORT": "eighty"})
    with pytest.raises(ConfigError, match="timer:SECONDS"):
        RealConfig.from_environment({"DAFT_SCENE_RESET": "timer:soon"})


def test_the_shell_environment_does_not_leak_into_tests():
    import os

    assert not [name for name in os.environ if name.startswith("DAFT_")]


def test_an_emergency_stop_that_cannot_reach_the_arm_does_not_raise():
    arm = FaultyArm()
    env = make_env(arm)
    try:
        env.reset(seed=0)

        def unreachable():
            raise ConnectionLostError("tcp://robot-pc:5560 stopped answering")

        arm.stop = unreachable
        env.unwrapped.backend.stop()  # logged; the server's watchdog stops a silent client's arm
    finally:
        env.close()
