"""Chained starts: multi-task pickup and assemble episodes that begin where a long-horizon chain
leaves the bolt (BoltEnv(chained_starts=...)), so a multi-task policy can learn to chain."""

import gymnasium as gym
import numpy as np
import pytest

import daft_env  # noqa: F401  (registers the ids)
from daft_env.errors import ConfigError
from daft_env.experts import make_expert


@pytest.fixture(scope="module")
def chained_env():
    env = gym.make("BoltMultiTask-Sim-v0", obs_mode="state", chained_starts=1.0)
    yield env
    env.close()


def test_a_chained_pickup_starts_beside_the_bolt_the_upright_left_standing(chained_env):
    obs, info = chained_env.reset(seed=3, options={"task": "pickup"})
    ps = chained_env.unwrapped.privileged_state()
    assert info["chained_start"] and info["task"] == "pickup" and obs["task_id"] == 1
    assert ps["bolt_axis"][2] > np.cos(np.deg2rad(15))  # standing on its head
    # the hand is where the upright left it, centimetres from the bolt, not at home
    assert np.linalg.norm(ps["tcp_pos"] - ps["bolt_pos"]) < 0.08
    plain = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
    plain.reset(seed=3, options={"task": "pickup"})
    home = plain.unwrapped.privileged_state()["tcp_pos"]
    plain.close()
    assert np.linalg.norm(ps["tcp_pos"] - home) > 0.05


def test_a_chained_assemble_starts_holding_the_bolt_the_pickup_lifted(chained_env):
    _, info = chained_env.reset(seed=4, options={"task": "assemble"})
    ps = chained_env.unwrapped.privileged_state()
    assert info["chained_start"] and ps["grasped"] and ps["bolt_clearance"] > 0.04
    expert = make_expert("multi")
    for _ in range(50):  # and the task can still be done from there
        *_, term, trunc, info = chained_env.step(
            expert.act(chained_env.unwrapped.privileged_state())
        )
        if term or trunc:
            break
    assert info["is_success"]


def test_upright_never_chains_and_seeded_chains_repeat(chained_env):
    _, info = chained_env.reset(seed=5, options={"task": "upright"})
    assert info["chained_start"] is False
    first, _ = chained_env.reset(seed=6, options={"task": "pickup"})
    again, _ = chained_env.reset(seed=6, options={"task": "pickup"})
    np.testing.assert_array_equal(first["state"], again["state"])


def test_chained_starts_share_and_env_are_checked():
    with pytest.raises(ConfigError, match="share"):
        gym.make("BoltMultiTask-Sim-v0", obs_mode="state", chained_starts=1.5)
    with pytest.raises(ConfigError, match="multi-task"):
        gym.make("BoltPickup-Sim-v0", obs_mode="state", chained_starts=0.5)
    env = gym.make("BoltMultiTask-Sim-v0", obs_mode="state", chained_starts=0.5)
    chained = [env.reset(seed=s, options={"task": "pickup"})[1]["chained_start"] for s in range(20)]
    env.close()
    assert 3 <= sum(chained) <= 17  # about half, from the env's seeded generator
