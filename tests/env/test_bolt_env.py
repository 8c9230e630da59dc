import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import daft_env
from daft_env import BoltEnv
from daft_env.backends.mujoco import MujocoBackend
from daft_env.errors import InvalidActionError, UnknownTaskError
from daft_env.spaces import STATE_DIM
from hardware.errors import ConfigError, DaftError

SIM_IDS = [f"{p}-Sim-v0" for p in daft_env.ENV_IDS]
REAL_IDS = [f"{p}-Real-v0" for p in daft_env.ENV_IDS]


def test_all_ids_registered_on_import():
    for env_id in SIM_IDS + REAL_IDS:
        assert env_id in gym.registry


@pytest.mark.parametrize("env_id", SIM_IDS)
def test_check_env_state_mode(env_id):
    env = gym.make(env_id, obs_mode="state")
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    env.close()


def test_check_env_pixels_mode():
    env = gym.make("BoltMultiTask-Sim-v0", obs_mode="pixels+state", render_mode="rgb_array")
    # The render check would also open render_mode="human", which needs a display.
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    obs, _ = env.reset(seed=0)
    assert obs["wrist_rgb"].shape == (128, 128, 3) and obs["wrist_rgb"].dtype == np.uint8
    assert obs["head_rgb"].shape == (256, 256, 3) and obs["head_rgb"].dtype == np.uint8
    assert obs["head_rgb"].std() > 5  # a real image, not a blank buffer
    assert env.render().shape == (256, 256, 3)
    env.close()


def test_observation_keys_per_mode():
    env = BoltEnv(task="pickup", obs_mode="state")
    obs, info = env.reset(seed=0)
    assert set(obs) == {"gripper", "state"}
    assert obs["state"].shape == (STATE_DIM,) and obs["state"].dtype == np.float32
    assert info["instruction"] == "pick up the bolt" and info["is_success"] is False
    env.close()
    env = BoltEnv(task="long_horizon", obs_mode="state")
    obs, info = env.reset(seed=0)
    assert set(obs) == {"gripper", "state", "task_id"}
    assert obs["task_id"] == 0 and info["operations_completed"] == 0
    env.close()


@pytest.mark.parametrize("env_id", ["BoltUpright-Sim-v0", "BoltMultiTask-Sim-v0"])
def test_same_seed_same_actions_same_observations(env_id):
    rollouts = []
    for _ in range(2):
        env = gym.make(env_id, obs_mode="pixels+state")
        obs, _ = env.reset(seed=123)
        rng = np.random.default_rng(7)
        seq = [obs]
        for _ in range(5):
            obs, *_ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
            seq.append(obs)
        rollouts.append(seq)
        env.close()
    for a, b in zip(*rollouts, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_different_seeds_randomise_layout():
    env = BoltEnv(task="pickup", obs_mode="state")
    env.reset(seed=1)
    s1 = env.privileged_state()
    env.reset(seed=2)
    s2 = env.privileged_state()
    assert not np.allclose(s1["bolt_pos"], s2["bolt_pos"])
    assert not np.allclose(s1["base_pos"], s2["base_pos"])
    env.close()


def test_multitask_reset_picks_or_cycles_tasks():
    env = BoltEnv(task="multi", obs_mode="state")
    seen = [env.reset(seed=0)[1]["task"]] + [env.reset()[1]["task"] for _ in range(2)]
    assert seen == ["upright", "pickup", "assemble"]
    obs, info = env.reset(options={"task": "assemble"})
    assert info["task"] == "assemble" and obs["task_id"] == 2
    assert info["instruction"] == "assemble the bolt"
    with pytest.raises(UnknownTaskError, match="upright"):
        env.reset(options={"task": "screw"})
    env.close()


def test_unknown_task_name_lists_valid_ones():
    with pytest.raises(UnknownTaskError) as err:
        BoltEnv(task="screw")
    for name in daft_env.TASK_NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros(6), "shape"),
        (np.zeros((2, 7)), "shape"),
        (np.array([0, 0, np.nan, 0, 0, 0, 0]), "NaN"),
        (np.array([np.inf, 0, 0, 0, 0, 0, 0]), "infinity"),
    ],
)
def test_bad_actions_raise_clear_errors(bad, words):
    env = BoltEnv(task="upright", obs_mode="state")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=words):
        env.step(bad)
    env.close()


def test_out_of_range_actions_are_clipped_and_reported():
    env = BoltEnv(task="upright", obs_mode="state")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([5.0, 0, 0, 0, 0, 0, -1]))
    assert info["action_clipped"] and "action_range" in info["clip_reasons"]
    env.close()


def test_bad_configuration_is_refused():
    with pytest.raises(ConfigError, match="obs_mode"):
        BoltEnv(task="upright", obs_mode="depth")
    with pytest.raises(ConfigError, match="render_mode"):
        BoltEnv(task="upright", render_mode="window")
    with pytest.raises(ConfigError, match="n_bolts"):
        BoltEnv(task="long_horizon", n_bolts=5)


@pytest.mark.parametrize("env_id", ["BoltUpright-Real-v0", "BoltLongHorizon-Real-v0"])
def test_real_ids_without_a_configured_arm_raise_a_daft_error(env_id, monkeypatch):
    for var in ("DAFT_REAL_CONFIG", "DAFT_ARM_ADDRESS", "DAFT_ARM_HOST", "DAFT_ARM_PORT"):
        monkeypatch.delenv(var, raising=False)
    # the message tells the user which settings configure the arm
    with pytest.raises(ConfigError, match="DAFT_ARM"):
        gym.make(env_id)


def test_human_render_without_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    env = BoltEnv(task="upright", obs_mode="state", render_mode="human")
    env.reset(seed=0)
    with pytest.raises(DaftError, match="display"):
        env.render()
    env.close()


def test_truncation_is_configurable():
    env = BoltEnv(task="upright", obs_mode="state", max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(7))[3] for _ in range(3)]
    assert flags == [False, False, True]
    env.close()


def test_long_horizon_n_bolts_option():
    env = BoltEnv(task="long_horizon", obs_mode="state", n_bolts=2)
    _, info = env.reset(seed=0)
    assert info["operations_total"] == 6
    _, info = env.reset(seed=0, options={"n_bolts": 4})
    assert info["operations_total"] == 12
    assert env.privileged_state()["n_bolts"] == 4
    env.close()


def _rollout(env, actions):
    frames = []
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        frames.append((obs, reward, terminated, truncated, env.render()))
    return frames


def test_pixel_env_pickles_and_the_copy_steps_and_renders_like_a_fresh_one():
    actions = np.random.default_rng(3).uniform(-1, 1, (4, 7)).astype(np.float32)
    env = gym.make("BoltPickup-Sim-v0", render_mode="rgb_array")
    env.reset(seed=11)
    env.step(actions[0])  # the renderers exist now, and they are what cannot be pickled
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.backend._views.open_renderers == ()  # dropped, rebuilt lazily
    fresh = gym.make("BoltPickup-Sim-v0", render_mode="rgb_array")
    fresh.reset(seed=11)
    fresh.step(actions[0])
    runs = [_rollout(e, actions[1:]) for e in (env, clone, fresh)]
    for a, b, c in zip(*runs, strict=True):
        for key in ("wrist_rgb", "head_rgb", "gripper"):
            np.testing.assert_array_equal(b[0][key], c[0][key])
            np.testing.assert_array_equal(a[0][key], b[0][key])
        assert a[1:4] == b[1:4] == c[1:4]
        np.testing.assert_array_equal(b[4], c[4])
        assert b[4].std() > 5  # a real frame
    # a never-reset env pickles too, and its copy resets like the original
    spare = pickle.loads(pickle.dumps(gym.make("BoltPickup-Sim-v0")))
    obs, _ = spare.reset(seed=11)
    fresh_obs, _ = fresh.reset(seed=11)
    np.testing.assert_array_equal(obs["head_rgb"], fresh_obs["head_rgb"])
    for e in (env, clone, fresh, spare):
        e.close()


class _SimWithoutState(MujocoBackend):
    """A backend without privileged state (as a real arm), counting how often it is closed."""

    has_privileged_state = False
    closes = 0

    def close(self):
        type(self).closes += 1
        super().close()


def test_a_failing_constructor_closes_the_backend_it_built(monkeypatch):
    from daft_env import backends

    monkeypatch.setitem(backends._BACKENDS, "sim-without-state", _SimWithoutState)
    _SimWithoutState.closes = 0
    with pytest.raises(ConfigError, match="privileged state"):
        BoltEnv(task="pickup", obs_mode="state", backend="sim-without-state")
    assert _SimWithoutState.closes == 1
    # a backend handed in belongs to the caller: the env leaves it open
    own = _SimWithoutState("scene_pickup.xml")
    with pytest.raises(ConfigError, match="privileged state"):
        BoltEnv(task="pickup", obs_mode="state", backend=own)
    assert _SimWithoutState.closes == 1
    own.close()


def _drop_the_bolt(env, seed):
    """Assemble, opening the gripper at once: the bolt falls out of the hand onto the table."""
    env.reset(seed=seed)
    open_hand = np.zeros(7)
    open_hand[6] = -1.0
    infos, ends = [], []
    for _ in range(30):
        _, reward, terminated, truncated, info = env.step(open_hand)
        infos.append((reward, info))
        ends.append((terminated, truncated))
        if terminated or truncated:
            break
    return infos, ends


def test_failure_terminal_ends_an_episode_that_cannot_succeed():
    env = BoltEnv(task="assemble", obs_mode="state", failure_terminal=True)
    infos, ends = _drop_the_bolt(env, seed=3)
    reward, info = infos[-1]
    # the bolt lies on the table: terminated (not truncated), no reward, and info says why
    assert ends[-1] == (True, False)
    assert reward == 0.0 and info["failure"] == "dropped" and info["failed"]
    assert not info["is_success"]
    assert all(i["failure"] is None for _, i in infos[:-1])
    assert len(infos) < 30
    env.close()

    # off by default: the same episode runs on to the step limit
    env = BoltEnv(task="assemble", obs_mode="state", max_episode_steps=30)
    infos, ends = _drop_the_bolt(env, seed=3)
    assert len(infos) == 30 and ends[-1] == (False, True)
    assert all(i["failure"] is None for _, i in infos)
    env.close()


def test_failure_predicate_names_a_tilted_bolt_and_leaves_a_held_one_alone():
    from daft_env.backends.predicates import assemble_failure

    held = {
        "bolt_axis": np.array([0.0, 0.0, 1.0]),
        "slot_depth": -0.02,
        "head_top_in_slot": 0.03,
        "grasped": True,
        "bolt_clearance": 0.05,
    }
    assert assemble_failure(held) is None
    tilted = dict(held, bolt_axis=np.array([np.sin(0.9), 0.0, np.cos(0.9)]))  # 52 deg
    assert assemble_failure(tilted) == "tilted"
    # 28 deg is recoverable: the expert straightened such tilts out at action noise 0.2
    leaning = dict(held, bolt_axis=np.array([np.sin(0.49), 0.0, np.cos(0.49)]))
    assert assemble_failure(leaning) is None
    inserted_and_released = dict(held, grasped=False, slot_depth=0.02, head_top_in_slot=0.005)
    assert assemble_failure(inserted_and_released) is None
