"""InterventionWrapper and RecordEpisodeToStore: takeover, labels, counts, recording, e-stop."""

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pytest

from daft_env import BoltEnv
from daft_env.backends.mujoco import MujocoBackend
from daft_env.episode import NULL_COMMAND
from daft_env.errors import InvalidActionError
from daft_env.labeler import label_episode
from daft_env.spaces import action_space
from daft_env.store import EpisodeStore
from daft_env.wrappers import InterventionWrapper, RecordEpisodeToStore
from hardware.errors import ConfigError
from hardware.teleop.base import TeleopCommand


class FakeBoltEnv(gym.Env):
    """The DAFT action space; the 'bolt' is a point the end effector must reach (pickup task)."""

    def __init__(self, max_steps=20):
        self.action_space = action_space()
        self.observation_space = gym.spaces.Dict(
            {
                "gripper": gym.spaces.Box(-1, 1, (1,), np.float32),
                "state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float64),
                "wrist_rgb": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
            }
        )
        self.max_steps = max_steps
        self.received = []

    def _obs(self):
        img = np.full((8, 8, 3), self.t % 256, np.uint8)
        return {
            "gripper": np.array([self.g], np.float32),
            "state": self.pos.copy(),
            "wrist_rgb": img,
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.zeros(3)
        self.g = -1.0
        self.t = 0
        return self._obs(), {"task": "pickup", "instruction": "pick up the bolt"}

    def step(self, action):
        self.received.append(np.array(action))
        self.pos += np.asarray(action[:3], float) * 0.02
        self.g = float(action[6])
        self.t += 1
        success = self.pos[2] > 0.05
        info = {"task": "pickup", "instruction": "pick up the bolt", "is_success": success}
        return self._obs(), float(success), success, self.t >= self.max_steps, info


@dataclass
class ScriptedDevice:
    """Intervenes on the steps listed, pushing up (+z); optional e-stop and spoken commands."""

    intervene_at: set = field(default_factory=set)
    estop_at: int | None = None
    speak_at: dict = field(default_factory=dict)
    name: str = "scripted"

    def __post_init__(self):
        self.seen = []
        self.t = 0

    def connect(self):
        pass

    def disconnect(self):
        pass

    def reset(self):
        self.t = 0

    def on_step(self, observation, policy_action, info):
        self.seen.append((observation, policy_action.copy()))

    def read(self):
        t = self.t
        self.t += 1
        return TeleopCommand(
            translation=np.array([0.0, -0.2, 0.5]),
            gripper=1.0,
            intervening=t in self.intervene_at,
            emergency_stop=t == self.estop_at,
            refinement_command=self.speak_at.get(t),
        )


def run_episode(env, policy_action, seed=0):
    obs, info = env.reset(seed=seed)
    infos = []
    while True:
        obs, r, term, trunc, info = env.step(policy_action)
        infos.append(info)
        if term or trunc:
            return infos


def test_device_replaces_the_action_only_while_intervening():
    base = FakeBoltEnv()
    dev = ScriptedDevice(intervene_at={2, 3, 4, 10})
    env = InterventionWrapper(base, dev)
    policy = np.array([0.1, 0, 0, 0, 0, 0, -1], np.float32)
    infos = run_episode(env, policy)
    assert len(infos) == 20
    for t, (info, sent) in enumerate(zip(infos, base.received, strict=True)):
        assert info["intervened"] is (t in dev.intervene_at)
        np.testing.assert_allclose(info["policy_action"], policy)
        if info["intervened"]:
            np.testing.assert_allclose(sent, [0, -0.2, 0.5, 0, 0, 0, 1])
            np.testing.assert_allclose(info["intervention_action"], sent)
        else:
            np.testing.assert_allclose(sent, policy)
            assert info["intervention_action"] is None
    # on_step saw the observation the policy acted on and the policy's proposal
    np.testing.assert_allclose(dev.seen[0][1], policy)
    moved = np.sum(np.array(base.received[:5])[:, :3], axis=0) * 0.02
    np.testing.assert_allclose(dev.seen[5][0]["state"], moved)


def test_labels_lag_then_cover_every_step_and_episode_stats():
    dev = ScriptedDevice(intervene_at={2, 3, 4, 10, 18, 19})
    env = InterventionWrapper(FakeBoltEnv(), dev)
    infos = run_episode(env, np.zeros(7))
    labelled = {}
    for t, info in enumerate(infos):
        for idx, cmd in info["labelled"]:
            assert idx <= t and idx not in labelled
            labelled[idx] = cmd
        if info["labelled"]:
            assert (info["refinement_command_step"], info["refinement_command"]) == info[
                "labelled"
            ][-1]
    assert sorted(labelled) == list(range(20))
    last = infos[-1]
    cmds = last["episode_refinement_commands"]
    assert cmds == [labelled[i] for i in range(20)]
    # every intervened step pushed 0.5 up (10 mm) and 0.2 right (4 mm): labelled, never [null]
    for t in range(20):
        assert (cmds[t] == "move right and up") is (t in dev.intervene_at)
        assert (cmds[t] == NULL_COMMAND) is (t not in dev.intervene_at)
    # step 2's label waits for step 4 (end of its intervention, J-1 = 4 not reached)
    assert (2, "move right and up") in infos[5]["labelled"]
    assert last["episode_interventions"] == 3
    assert last["episode_intervened_steps"] == 6
    assert last["intervention_rate"] == pytest.approx(6 / 20)
    infos2 = run_episode(env, np.zeros(7))
    assert infos2[-1]["total_intervened_steps"] == 12
    assert infos2[-1]["total_intervention_rate"] == pytest.approx(12 / 40)
    assert env.intervention_rate == pytest.approx(0.3)


def test_spoken_command_is_reported_without_takeover():
    dev = ScriptedDevice(speak_at={1: "move left"})
    env = InterventionWrapper(FakeBoltEnv(), dev)
    infos = run_episode(env, np.zeros(7))
    assert infos[1]["refinement_command_now"] == "move left"
    assert infos[0]["refinement_command_now"] is None
    assert not any(i["intervened"] for i in infos)


def test_emergency_stop_ends_the_episode_without_stepping():
    base = FakeBoltEnv()
    env = InterventionWrapper(base, ScriptedDevice(intervene_at={0, 1}, estop_at=3))
    obs, _ = env.reset()
    for _ in range(3):
        obs, *_ = env.step(np.zeros(7))
    obs2, r, term, trunc, info = env.step(np.zeros(7))
    assert trunc and not term and r == 0.0 and info["emergency_stop"]
    assert len(base.received) == 3  # the env was not stepped
    np.testing.assert_array_equal(obs2["state"], obs["state"])
    assert info["episode_refinement_commands"][:2] == ["move right and up"] * 2
    assert len(info["episode_refinement_commands"]) == 3
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(7))


class _CountingStops(MujocoBackend):
    stops = 0

    def stop(self):
        type(self).stops += 1
        super().stop()


def test_emergency_stop_halts_a_bolt_envs_backend():
    backend = _CountingStops("scene_pickup.xml")
    base = BoltEnv(task="pickup", obs_mode="state", backend=backend)
    env = InterventionWrapper(base, ScriptedDevice(estop_at=2))
    env.reset(seed=0)
    for _ in range(2):
        env.step(np.full(7, 0.5, np.float32))
    assert _CountingStops.stops == 0
    *_, info = env.step(np.zeros(7))
    assert info["emergency_stop"] and _CountingStops.stops == 1
    # the sim holds where it is: the arm's joint targets are its measured joints
    d = backend.data
    np.testing.assert_array_equal(d.ctrl[backend._arm_act], d.qpos[backend._arm_qadr])
    backend.close()


def test_bad_arguments():
    with pytest.raises(ConfigError, match="TeleopDevice"):
        InterventionWrapper(FakeBoltEnv(), object())
    env = InterventionWrapper(FakeBoltEnv(), ScriptedDevice())
    env.reset()
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.zeros(6))


def test_recorder_builds_the_episode_and_saves_it(tmp_path):
    store = EpisodeStore(tmp_path)
    dev = ScriptedDevice(intervene_at={1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
    env = RecordEpisodeToStore(InterventionWrapper(FakeBoltEnv(), dev), store, metadata={"run": 7})
    policy = np.array([0.1, 0, 0, 0, 0, 0, -1], np.float32)
    infos = run_episode(env, policy, seed=3)
    last = infos[-1]
    assert last["episode_saved_path"] is not None
    (ep,) = list(store.episodes())
    T = len(infos)
    assert ep.kind == "interventions" and ep.task == "pickup" and ep.task_id == 1
    assert ep.instruction == "pick up the bolt" and ep.success is True and T < 20
    assert ep.observations["wrist_rgb"].shape == (T + 1, 8, 8, 3)
    np.testing.assert_allclose(ep.actions, env.unwrapped.received)
    np.testing.assert_allclose(ep.policy_actions, np.tile(policy, (T, 1)))
    assert list(ep.intervened) == [i["intervened"] for i in infos]
    assert ep.refinement_commands == last["episode_refinement_commands"]
    assert ep.refinement_commands == label_episode(ep.actions, ep.intervened)
    assert ep.terminated[-1] and ep.rewards[-1] == 1.0
    assert ep.metadata["seed"] == 3 and ep.metadata["run"] == 7
    assert ep.metadata["device"] == "scripted"
    # no intervention -> rollouts; demos kind forced; keep predicate discards
    env2 = RecordEpisodeToStore(InterventionWrapper(FakeBoltEnv(), ScriptedDevice()), store)
    run_episode(env2, np.zeros(7))
    assert store.count(kind="rollouts") == 1
    env3 = RecordEpisodeToStore(FakeBoltEnv(), store, kind="demos", keep=lambda e: e.success)
    infos3 = run_episode(env3, np.zeros(7))
    assert infos3[-1]["episode_saved_path"] is None and env3.discarded == 1
    run_episode(env3, np.array([0, 0, 1.0, 0, 0, 0, 1]))
    (demo,) = list(store.episodes(kind="demos"))
    assert demo.refinement_commands == [NULL_COMMAND] * len(demo) and not demo.intervened.any()


def test_recorder_discards_unfinished_and_estop_first_step(tmp_path):
    store = EpisodeStore(tmp_path)
    env = RecordEpisodeToStore(
        InterventionWrapper(FakeBoltEnv(), ScriptedDevice(estop_at=0)), store
    )
    env.reset()
    *_, trunc, info = env.step(np.zeros(7))
    assert trunc and info["episode_saved_path"] is None
    env = RecordEpisodeToStore(
        InterventionWrapper(FakeBoltEnv(), ScriptedDevice(estop_at=4)), store
    )
    env.reset()
    for _ in range(3):
        env.step(np.zeros(7))
    env.reset()  # abandoned: not saved
    for _ in range(5):
        *_, info = env.step(np.zeros(7))
    assert info["emergency_stop"] and info["episode_saved_path"] is not None
    (ep,) = list(store.episodes())
    assert len(ep) == 4 and ep.success is False and ep.metadata["emergency_stop"] is True
    assert not ep.terminated.any()


# ------------------------------------------------------------------------------------------------
# Acceptance: the mock SpaceMouse's recorded stream on BoltPickup-Sim-v0
# ------------------------------------------------------------------------------------------------


def recorded_stream():
    """A hand-made raw SpaceMouse recording (device frame): rest, push, rest, lift+left, rest.

    With the default mapping robot x = u[1], y = -u[0], z = u[2]; deflections beyond the 0.1
    deadzone make the device intervene.
    """
    from hardware.teleop.mock import stream_from_arrays

    rest = [[0.0] * 6] * 4
    push = [[0.0, 0.6, 0.0, 0.0, 0.0, 0.0]] * 6  # forward
    lift = [[-0.5, 0.0, 0.7, 0.0, 0.0, 0.3]] * 7  # left and up, with some roll
    tiny = [[0.05, 0.05, 0.0, 0.0, 0.0, 0.0]] * 3  # inside the deadzone: not an intervention
    axes = rest + push + rest + lift + tiny + rest + push[:2]
    return stream_from_arrays(axes)


def test_mock_spacemouse_on_bolt_pickup_replaces_labels_and_round_trips(tmp_path):
    import daft_env  # noqa: F401
    from daft_env.labeler import VOCABULARY
    from hardware.teleop.mock import RecordedSpaceMouse

    stream = recorded_stream()
    device = RecordedSpaceMouse.from_stream(stream)
    device.connect()
    reference = RecordedSpaceMouse.from_stream(stream)  # what the device says, step by step
    reference.connect()
    store = EpisodeStore(tmp_path / "store")
    base = gym.make("BoltPickup-Sim-v0", obs_mode="state", max_episode_steps=40)
    env = RecordEpisodeToStore(InterventionWrapper(base, device), store)
    policy = np.array([0.0, -0.1, 0.0, 0.0, 0.0, 0.0, -1.0], np.float32)
    env.reset(seed=11)
    infos = []
    while True:
        reference.on_step(None, policy.astype(np.float64), {})
        expected = reference.read()
        _, _, term, trunc, info = env.step(policy)
        infos.append(info)
        # replaced exactly while the device is active, never otherwise
        assert info["intervened"] is expected.intervening
        if expected.intervening:
            np.testing.assert_allclose(info["executed_action"], expected.as_action())
            np.testing.assert_allclose(info["intervention_action"], expected.as_action())
        else:
            np.testing.assert_allclose(info["executed_action"], policy)
            assert info["intervention_action"] is None
        if term or trunc:
            break
    flags = [i["intervened"] for i in infos]
    assert sum(flags) == 6 + 7 + 2 and len(infos) == 40
    assert not any(flags[i] for i in range(21, 24))  # the in-deadzone wiggle is not a takeover
    cmds = infos[-1]["episode_refinement_commands"]
    # every intervened step is labelled, with the Eq. 12-13 label of its executed actions
    labelled = {idx: c for i in infos for idx, c in i["labelled"]}
    assert sorted(labelled) == list(range(40))
    actions = np.array([i["executed_action"] for i in infos])
    assert cmds == label_episode(actions, flags)
    for t, f in enumerate(flags):
        if f:
            assert cmds[t] in VOCABULARY and cmds[t] != NULL_COMMAND
        else:
            assert cmds[t] == NULL_COMMAND
    assert cmds[4] == "move forward" and cmds[14] == "move left and up"
    # labels round-trip through the store unchanged
    (ep,) = list(EpisodeStore(tmp_path / "store", mode="r").episodes())
    assert ep.kind == "interventions" and ep.task == "pickup"
    assert ep.refinement_commands == cmds
    assert list(ep.intervened) == flags
    np.testing.assert_allclose(ep.actions, actions, rtol=1e-6)
    np.testing.assert_allclose(ep.policy_actions, np.tile(policy, (40, 1)))
    assert ep.observations["state"].shape[0] == 41
    assert ep.metadata["device"] == "mock" and ep.metadata["env_id"] == "BoltPickup-Sim-v0"
    base.close()
