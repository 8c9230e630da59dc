"""The hidden perception error: only the policy's state observation is off, seeded, per episode."""

import gymnasium as gym
import numpy as np
import pytest

import daft_env  # noqa: F401
from daft_env.experts import make_expert
from daft_env.perception import PerceptionError, as_perception_error, perceived_state
from daft_env.spaces import STATE_LAYOUT
from daft_env.tasks import TASK_NAMES
from hardware.errors import ConfigError


def field(state, name):
    start = 0
    for n, size in STATE_LAYOUT:
        if n == name:
            return np.asarray(state[start : start + size], dtype=np.float64)
        start += size
    raise KeyError(name)


@pytest.fixture(scope="module")
def envs():
    nominal = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
    perturbed = gym.make("BoltMultiTask-Sim-v0", obs_mode="state", perception_error=True)
    yield nominal, perturbed
    nominal.close()
    perturbed.close()


def test_observed_positions_differ_from_the_truth_by_the_drawn_offset(envs):
    _, env = envs
    obs, _ = env.reset(seed=3, options={"task": "pickup"})
    offsets = env.unwrapped.perception_offsets
    assert set(offsets) == {"bolt", "fixture"}
    for delta in offsets.values():
        assert 0.005 <= np.linalg.norm(delta[:2]) <= 0.015 and delta[2] == 0.0
    expert = make_expert("multi")
    for _ in range(15):  # the offset is per episode: it stays while the bolt moves
        ps = env.unwrapped.privileged_state()  # the truth, for experts and the operator
        np.testing.assert_allclose(
            field(obs["state"], "bolt_pos") - ps["bolt_pos"], offsets["bolt"], atol=1e-6
        )
        np.testing.assert_allclose(
            field(obs["state"], "slot_pos") - ps["slot_pos"], offsets["fixture"], atol=1e-6
        )
        np.testing.assert_allclose(field(obs["state"], "tcp_pos"), ps["tcp_pos"], atol=1e-6)
        obs, *_ = env.step(expert.act(ps))


def test_same_seed_same_offset_and_the_same_scene_as_without_the_error(envs):
    nominal, env = envs
    env.reset(seed=5, options={"task": "upright"})
    first = {k: v.copy() for k, v in env.unwrapped.perception_offsets.items()}
    env.reset(options={"task": "upright"})
    second = env.unwrapped.perception_offsets
    assert not np.allclose(first["bolt"], second["bolt"])  # each reset draws a new one
    env.reset(seed=5, options={"task": "upright"})
    for k in first:
        np.testing.assert_array_equal(env.unwrapped.perception_offsets[k], first[k])
    nominal.reset(seed=5, options={"task": "upright"})
    true_p, true_n = env.unwrapped.privileged_state(), nominal.unwrapped.privileged_state()
    np.testing.assert_array_equal(true_p["bolt_pos"], true_n["bolt_pos"])
    np.testing.assert_array_equal(true_p["fixture_pos"], true_n["fixture_pos"])


@pytest.mark.parametrize("task", TASK_NAMES)
def test_the_expert_on_the_true_state_still_succeeds_and_the_world_is_unchanged(envs, task):
    nominal, env = envs
    expert = make_expert("multi")
    for e in (nominal, env):
        e.reset(seed=11, options={"task": task})
    while True:
        a = expert.act(env.unwrapped.privileged_state())
        _, _, term, trunc, info = env.step(a)
        _, _, term_n, _, _ = nominal.step(a)
        assert term == term_n  # the physics did not see the error
        if term or trunc:
            break
    assert info["is_success"]


def test_an_expert_acting_on_the_perceived_positions_is_misled(envs):
    # the error matters: the grasp aims at where the bolt is perceived, not where it is
    _, env = envs
    env.reset(seed=2, options={"task": "pickup"})
    ps = env.unwrapped.privileged_state()
    seen = perceived_state(ps, env.unwrapped.perception_offsets)
    expert = make_expert("multi")
    assert not np.allclose(expert.act(seen)[:3], expert.act(ps)[:3])


def test_pixel_modes_and_bad_specs_are_refused():
    for mode in ("pixels", "pixels+state"):
        with pytest.raises(ConfigError, match="state observation only"):
            gym.make("BoltPickup-Sim-v0", obs_mode=mode, perception_error=True)
    assert as_perception_error(None) is None and as_perception_error(0.0) is None
    assert as_perception_error(0.01).max_offset == 0.01
    assert as_perception_error({"objects": ["bolt"]}).objects == ("bolt",)
    with pytest.raises(ConfigError, match="unknown perception_error field"):
        as_perception_error({"size": 0.01})
    with pytest.raises(ConfigError, match="min_offset <= max_offset"):
        PerceptionError(min_offset=0.02, max_offset=0.01)
    with pytest.raises(ConfigError, match="subset"):
        PerceptionError(objects=("table",))
    with pytest.raises(ConfigError, match="must be None, True"):
        as_perception_error("big")


def test_off_by_default():
    env = gym.make("BoltPickup-Sim-v0", obs_mode="state")
    obs, _ = env.reset(seed=1)
    assert env.unwrapped.perception_error is None and env.unwrapped.perception_offsets == {}
    ps = env.unwrapped.privileged_state()
    np.testing.assert_allclose(field(obs["state"], "bolt_pos"), ps["bolt_pos"], atol=1e-6)
    env.close()


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_perception_mix_perturbs_the_chosen_share_of_episodes(p):
    import gymnasium as gym

    from daft_env.perception import PerceptionMix

    env = PerceptionMix(
        gym.make("BoltMultiTask-Sim-v0", obs_mode="state", perception_error=True), p, seed=0
    )
    truth = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
    flags = []
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        true_obs, _ = truth.reset(seed=seed)
        flags.append(info["perception_error"])
        # the policy's view is off exactly in the perturbed episodes, true in the others
        assert (not np.allclose(obs["state"], true_obs["state"])) is info["perception_error"]
    assert set(flags) == ({False, True} if p == 0.5 else {bool(p)})
    env.close()
    truth.close()
