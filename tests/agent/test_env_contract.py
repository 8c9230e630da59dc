"""What the agent needs from an env and reads from one (daft_agent.env_contract)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

import daft_env  # noqa: F401  (registers the ids)
from daft_agent.env_contract import TaskCycle, check_spaces, env_tasks, resolve_tasks, single_env
from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_env.wrappers import RecordEpisodeToStore

ACTION = spaces.Box(-1, 1, (7,), np.float32)
OBS = spaces.Dict({"state": spaces.Box(-1, 1, (3,)), "task_id": spaces.Discrete(3)})


def test_check_spaces_names_what_is_wrong():
    check_spaces(ACTION, OBS)
    check_spaces(spaces.Box(-1, 1, (4,)), OBS)  # any size (issue 20)
    with pytest.raises(SpaceMismatchError, match=r"1-d Box\(-1, 1\).*DaftSpaces"):
        check_spaces(spaces.Box(-2, 2, (7,)), OBS)
    with pytest.raises(SpaceMismatchError, match="Dict observation space"):
        check_spaces(ACTION, spaces.Box(-1, 1, (3,)))


def test_tasks_follow_the_task_id_space_or_are_refused_when_they_disagree():
    assert resolve_tasks(OBS, None, None) == ("upright", "pickup", "assemble")
    order = ("assemble", "upright", "pickup")
    assert resolve_tasks(OBS, list(order), None) == order
    with pytest.raises(SpaceMismatchError, match="task_id space has 3 values"):
        resolve_tasks(OBS, ["upright", "pickup"], None)
    with pytest.raises(AgentConfigError, match="unknown task 'pour'.*register_task"):
        resolve_tasks(OBS, ["upright", "pickup", "pour"], None)
    single = spaces.Dict({"state": spaces.Box(-1, 1, (3,))})
    with pytest.raises(SpaceMismatchError, match="runs one task"):
        resolve_tasks(single, ["upright", "pickup"], None)
    with pytest.raises(AgentConfigError, match="pass tasks="):
        resolve_tasks(single, None, None)


def test_env_tasks_of_a_multi_task_and_a_single_task_env():
    multi = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
    one = gym.make("BoltPickup-Sim-v0", obs_mode="state")
    try:
        assert env_tasks(multi) == ["upright", "pickup", "assemble"]
        assert env_tasks(one) == ["pickup"]
        assert resolve_tasks(one.observation_space, None, DummyVecEnv([lambda: one])) == ("pickup",)
    finally:
        multi.close()
        one.close()


def test_task_cycle_asks_for_the_tasks_round_robin_and_continues_a_count():
    cycle = TaskCycle(["upright", "pickup", "assemble"])
    assert [cycle()["task"] for _ in range(4)] == ["upright", "pickup", "assemble", "upright"]
    assert TaskCycle(["upright", "pickup"], start=3)() == {"task": "pickup"}
    assert TaskCycle(["pickup"])() is None  # one task: the env picks its own


def test_single_env_refuses_an_env_that_would_store_each_episode_twice(tmp_path):
    from daft_env.store import EpisodeStore

    env = gym.make("BoltPickup-Sim-v0", obs_mode="state")
    store = EpisodeStore(tmp_path / "s")
    try:
        assert single_env(DummyVecEnv([lambda: env]), store) is env
        recorded = RecordEpisodeToStore(env, store, kind="rollouts")
        with pytest.raises(AgentConfigError, match="a second time"):
            single_env(DummyVecEnv([lambda: recorded]), store)
        assert single_env(DummyVecEnv([lambda: recorded]), None) is recorded
    finally:
        env.close()
