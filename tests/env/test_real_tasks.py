"""Tasks of your own on the real cell (``daft_env.backends.real.tasks``).

A task is registered from code or from a config's ``tasks:`` section, ``gym.make`` builds the real
env for it, and it runs against the MuJoCo arm served over a loopback socket with video files as
cameras. The stand-in operator is a key source: it confirms every scene with Enter and presses
the success key once the gripper has been raised, as a person watching the cell would.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml
from support.arm_server import arm_served_in_thread
from support.videos import camera, write_video

import daft_env
from daft_env import BoltEnv
from daft_env import tasks as task_registry
from daft_env.backends.mujoco import MujocoBackend
from daft_env.backends.real import (
    CellHandle,
    ClassifierSuccess,
    KeySceneResetter,
    KeySuccess,
    TimerSceneResetter,
    load_real_tasks,
    register_real_task,
)
from daft_env.backends.real import tasks as real_tasks_module
from daft_env.backends.real.tasks import cell_config
from daft_env.errors import ConfigError, UnknownTaskError
from daft_env.mujoco_arm import MujocoArm
from daft_env.store import EpisodeStore
from daft_env.tasks import TASK_NAMES, get_task
from daft_env.wrappers import RecordEpisodeToStore

TOKEN = "user-task-token-1"
LIFT_M = 0.03
UP = np.r_[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture(autouse=True)
def _forget_registered_tasks():
    """Each test registers its tasks afresh: the registries are as they were when it ends."""
    tasks = dict(task_registry.TASKS)
    real = dict(real_tasks_module._REAL_TASKS)
    ids = set(gym.registry)
    yield
    task_registry.TASKS.clear()
    task_registry.TASKS.update(tasks)
    real_tasks_module._REAL_TASKS.clear()
    real_tasks_module._REAL_TASKS.update(real)
    for env_id in set(gym.registry) - ids:
        del gym.registry[env_id]


@pytest.fixture(scope="module")
def served():
    with arm_served_in_thread(TOKEN) as arm_and_server:
        yield arm_and_server


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {"wrist": write_video(d / "wrist.avi", 30), "head": write_video(d / "head.avi", 30)}


class Operator(CellHandle):
    """A person at the cell, as a key source: Enter on every poll, ``y`` once the gripper is up.

    The env homes the arm at every reset (no reset pose, no start noise), so "up" is ``LIFT_M``
    above the home pose. ``success_key`` is the key pressed then.
    """

    def __init__(self, arm: MujocoArm, success_key: str = "y") -> None:
        self.arm = arm
        self.success_key = success_key
        self.home_z = float(arm.home().ee_pose[2])

    def open(self) -> None:
        """Nothing to open."""

    def poll(self) -> list[str]:
        up = self.arm.state().ee_pose[2] > self.home_z + LIFT_M
        return ["\n", self.success_key] if up else ["\n"]


def cell(served, videos, **extra) -> dict:
    """The cell's own settings (a config mapping): no scene reset, no success source."""
    _, server = served
    return {
        "arm_address": f"127.0.0.1:{server.port}",
        "arm_token": TOKEN,
        "wrist_camera": camera(videos["wrist"]),
        "head_camera": camera(videos["head"]),
        "realtime": False,  # the sim arm answers at once
        "reset_position_noise": 0.0,
        "scene_reset": "none",
        "success": "none",
        **extra,
    }


def write_config(tmp_path, content: dict, name: str = "cell.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def run(env, action: np.ndarray, limit: int = 100) -> tuple[int, float, bool, bool, dict]:
    """Step ``action`` until the episode ends: (steps, last reward, terminated, truncated, info)."""
    for step in range(1, limit + 1):
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return step, reward, terminated, truncated, info
    raise AssertionError(f"the episode did not end within {limit} steps")


# -- from code -----------------------------------------------------------------------------------


def test_a_task_registered_in_code_runs_on_the_cell_with_its_own_settings(served, videos, tmp_path):
    arm, _ = served
    first_free = len(task_registry.TASKS)
    task = register_real_task(
        "cable_insert", "insert the cable", max_steps=20, scene_reset="key", success="key"
    )
    assert task.env_id == "CableInsert-Real-v0" and task.spec.task_id == first_free
    assert get_task("cable_insert") is task.spec
    assert daft_env.register_real_task is register_real_task
    store = EpisodeStore(tmp_path / "store")
    base = gym.make(
        "CableInsert-Real-v0",
        backend_kwargs={"config": cell(served, videos), "key_source": Operator(arm)},
    )
    env = RecordEpisodeToStore(base, store)
    try:
        backend = env.unwrapped.backend
        # the task's settings over the cell's "none"
        assert isinstance(backend.scene_resetter, KeySceneResetter)
        assert isinstance(backend.success_source, KeySuccess)
        obs, info = env.reset(seed=0)
        assert "task_id" not in obs and "task_id" not in env.observation_space.spaces
        assert (info["task"], info["instruction"]) == ("cable_insert", "insert the cable")
        assert info["task_id"] == first_free and env.unwrapped.max_episode_steps == 20
        steps, reward, terminated, truncated, info = run(env, UP)
        assert (reward, terminated, truncated, info["is_success"]) == (1.0, True, False, True)
        assert info["success_source"] == "key" and steps < 20
    finally:
        env.close()
    (episode,) = store.episodes()
    assert (episode.task, episode.task_id, episode.instruction) == (
        "cable_insert",
        first_free,
        "insert the cable",
    )
    assert episode.success and len(episode) == steps
    assert store.tasks() == ["cable_insert"]


def test_the_tasks_max_steps_truncates_the_episode(served, videos, tmp_path):
    arm, _ = served
    register_real_task("hold_still", "hold the gripper still", max_steps=4, success="key")
    store = EpisodeStore(tmp_path / "store")
    env = RecordEpisodeToStore(
        gym.make(
            "HoldStill-Real-v0",
            backend_kwargs={"config": cell(served, videos), "key_source": Operator(arm)},
        ),
        store,
    )
    try:
        env.reset(seed=1)
        steps, reward, terminated, truncated, info = run(env, np.zeros(7))
        assert (steps, reward, terminated, truncated) == (4, 0.0, False, True)
        assert not info["is_success"] and info["subtask_steps"] == 4
    finally:
        env.close()
    (episode,) = store.episodes()
    assert episode.task == "hold_still" and len(episode) == 4 and not episode.success


def test_registering_again_the_same_way_returns_the_task_and_a_change_is_refused():
    task = register_real_task("cable_insert", "insert the cable", max_steps=80, success="key")
    again = register_real_task("cable_insert", "insert the cable", max_steps=80, success="key")
    assert again is task and task_registry.task_names().count("cable_insert") == 1
    with pytest.raises(ConfigError, match="already registered") as info:
        register_real_task("cable_insert", "insert the cable", max_steps=80, success="none")
    assert "another name" in str(info.value)
    custom = register_real_task("wipe", env_id="Wiping-Real-v0")
    assert custom.instruction == "wipe" and custom.max_steps == 50
    assert "Wiping-Real-v0" in gym.registry and "Wipe-Real-v0" not in gym.registry


# -- from the config file ------------------------------------------------------------------------


def test_a_task_from_the_yaml_is_chosen_by_name_at_make_time(served, videos, tmp_path, monkeypatch):
    arm, _ = served
    tasks = {
        "cable_insert": {
            "instruction": "insert the cable",
            "max_steps": 15,
            "scene_reset": "key",
            "success": "key",
            "success_key": "s",
        },
        "wipe_table": None,  # every default
    }
    path = write_config(tmp_path, {**cell(served, videos), "tasks": tasks})
    assert "cable_insert" not in task_registry.TASKS  # nothing registered before the file is read
    env = gym.make(
        "UserTask-Real-v0",
        task="cable_insert",
        backend_kwargs={"config": str(path), "key_source": Operator(arm, success_key="s")},
    )
    try:
        _, info = env.reset(seed=0)
        assert (info["task"], info["instruction"]) == ("cable_insert", "insert the cable")
        assert env.unwrapped.max_episode_steps == 15
        _, reward, terminated, _, info = run(env, UP)
        assert reward == 1.0 and terminated and info["success_source"] == "key"
    finally:
        env.close()
    wipe = get_task("wipe_table")
    assert (wipe.instruction, wipe.max_steps) == ("wipe table", 50)
    # Loading the file registered each task's own id too; loading it again changes nothing.
    assert {"CableInsert-Real-v0", "WipeTable-Real-v0"} <= set(gym.registry)
    assert [t.name for t in load_real_tasks(path)] == ["cable_insert", "wipe_table"]
    # DAFT_REAL_CONFIG names the file when backend_kwargs do not.
    monkeypatch.setenv("DAFT_REAL_CONFIG", str(path))
    env = gym.make("WipeTable-Real-v0", backend_kwargs={"key_source": Operator(arm)})
    try:
        assert env.unwrapped.task.name == "wipe_table"
        assert isinstance(env.unwrapped.backend.scene_resetter, TimerSceneResetter)  # the cell's
    finally:
        env.close()


def test_a_tasks_settings_sit_between_the_environment_and_the_callers(tmp_path):
    path = write_config(
        tmp_path,
        {
            "success": "none",
            "scene_reset": "timer",
            "tasks": {"cable_insert": {"success": "key", "reset_pose": [0.4, 0, 0.2, 3.14, 0, 0]}},
        },
    )
    environ = {"DAFT_SUCCESS": "none", "DAFT_SCENE_RESET": "none"}
    cfg = cell_config(path, "cable_insert", environ)
    assert cfg.success == "key"  # the task's, over the file's and DAFT_SUCCESS
    assert cfg.scene_reset == "none"  # not set by the task: the cell's (its environment wins)
    assert cfg.reset_pose == (0.4, 0.0, 0.2, 3.14, 0.0, 0.0)
    assert cell_config(path, "cable_insert", environ, success="none").success == "none"
    assert cell_config(path, None, environ).success == "none"  # no task: the cell's own


class _Classifier:
    """Stands in for a trained success classifier: always sure the task is done."""

    image_keys = ("head_rgb",)

    def __init__(self, path: str) -> None:
        self.path = path

    def predict(self, frames) -> float:
        assert frames["head_rgb"].shape == (256, 256, 3)
        return 0.9


def load_stand_in_classifier(path: str) -> _Classifier:
    """The ``classifier_loader`` of the classifier test."""
    return _Classifier(path)


def test_a_tasks_own_classifier_gives_its_success(served, videos, tmp_path):
    model = tmp_path / "cable.pt"
    model.write_bytes(b"stand-in checkpoint")
    entry = {
        "success": "classifier",
        "classifier_path": str(model),
        "classifier_loader": f"{__name__}:load_stand_in_classifier",
    }
    path = write_config(
        tmp_path, {**cell(served, videos, success="key"), "tasks": {"cable_insert": entry}}
    )
    env = gym.make("UserTask-Real-v0", task="cable_insert", backend_kwargs={"config": str(path)})
    try:
        source = env.unwrapped.backend.success_source
        assert isinstance(source, ClassifierSuccess) and source.model.path == str(model)
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(np.zeros(7))
        assert reward == 1.0 and terminated and info["success_prob"] == pytest.approx(0.9)
    finally:
        env.close()


# -- errors --------------------------------------------------------------------------------------


def test_an_unknown_task_lists_the_known_ones_before_contacting_the_arm(tmp_path):
    # Nothing listens on port 1: reaching for the arm would fail with ConnectionLostError.
    unreachable = {"arm_address": "127.0.0.1:1", "arm_token": TOKEN, "connect_timeout_s": 5.0}
    path = write_config(tmp_path, {**unreachable, "tasks": {"cable_insert": None}})
    with pytest.raises(UnknownTaskError, match="'cable_insrt'") as info:
        gym.make("UserTask-Real-v0", task="cable_insrt", backend_kwargs={"config": str(path)})
    message = str(info.value)
    assert "cable_insert" in message and "pickup" in message
    assert "register_real_task" in message and "tasks:" in message
    with pytest.raises(ConfigError, match="task=") as info:
        gym.make("UserTask-Real-v0", backend_kwargs={"config": str(path)})
    assert "cable_insert" in str(info.value)  # the file's tasks are listed


@pytest.mark.parametrize(
    ("tasks", "words"),
    [
        ({"cable_insert": {"instrction": "insert"}}, ["unknown key", "instrction", "valid keys"]),
        ({"cable_insert": {"max_steps": "80"}}, ["max_steps", "integer >= 1"]),
        ({"cable_insert": {"max_steps": 0}}, ["max_steps", "integer >= 1"]),
        ({"cable_insert": {"instruction": 5}}, ["instruction", "as text"]),
        ({"cable_insert": "insert the cable"}, ["must be a mapping"]),
        ({"cable_insert": {"success": "clap"}}, ["success", "unknown mode 'clap'"]),
        ({"cable_insert": {"classifier_threshold": 2}}, ["classifier_threshold"]),
        ({"cable_insert": {"success": "classifier"}}, ["classifier_path", "train-reward"]),
        ({"cable_insert": {"workspace": {}}}, ["unknown key", "workspace"]),
        ({"pickup": {"success": "key"}}, ["bolt tasks", "another name"]),
        ({"cable_insert": {"env_id": "BoltPickup-Real-v0"}}, ["already taken", "env_id"]),
        ({"cable insert": None}, ["not valid", "letters"]),
        (["cable_insert"], ["'tasks' must map task names"]),
    ],
)
def test_a_malformed_tasks_section_names_the_entry_the_problem_and_the_fix(tmp_path, tasks, words):
    path = write_config(tmp_path, {"tasks": tasks})
    with pytest.raises(ConfigError) as info:
        load_real_tasks(path)
    message = str(info.value)
    assert str(path) in message and "Fix" in message, message
    for word in words:
        assert word in message, message
    with pytest.raises(ConfigError):  # the env reading the same file says the same
        gym.make("UserTask-Real-v0", task="cable_insert", backend_kwargs={"config": str(path)})


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_steps": 0}, ["max_steps", "integer >= 1"]),
        ({"success": "classifier"}, ["classifier_path", "train-reward"]),
        ({"classifier_treshold": 0.7}, ["unknown setting", "classifier_treshold"]),
        ({"scene_reset": "conveyor"}, ["scene_reset", "unknown mode"]),
        ({"env_id": "not an id!"}, ["env_id", "Gymnasium id"]),
    ],
)
def test_a_bad_registration_from_code_names_the_problem_and_the_fix(kwargs, words):
    with pytest.raises(ConfigError) as info:
        register_real_task("cable_insert", "insert the cable", **kwargs)
    message = str(info.value)
    assert "cable_insert" in message and "Fix" in message, message
    for word in words:
        assert word in message, message
    assert "cable_insert" not in task_registry.TASKS  # nothing half-registered


def test_the_simulation_refuses_a_task_of_your_own_and_names_the_real_backend():
    register_real_task("cable_insert", "insert the cable", success="key")
    for make in (
        lambda: gym.make("CableInsert-Real-v0", backend="mujoco"),
        lambda: BoltEnv(task="cable_insert", obs_mode="state"),
    ):
        with pytest.raises(ConfigError, match="no MuJoCo scene") as info:
            make()
        assert "backend='real'" in str(info.value) and "UserTask-Real-v0" in str(info.value)
    env = BoltEnv(task="cable_insert", obs_mode="state", backend=MujocoBackend("scene_pickup.xml"))
    try:
        with pytest.raises(ConfigError, match="bolt tasks only") as info:
            env.reset(seed=0)
        assert "real backend" in str(info.value)
    finally:
        env.close()
    assert TASK_NAMES == ("upright", "pickup", "assemble")  # the bolt tasks keep ids 0-2
