"""DualActorAgent: learn, callbacks, evaluate_policy, save/load, resume, clear errors."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

from daft_agent.agent import DualActorAgent
from daft_agent.errors import CheckpointError, EmptyStoreError, SpaceMismatchError
from daft_agent.testing import (
    InMemoryEpisodeStore,
    ToyBoltEnv,
    ToyInterventionWrapper,
    fill_store_with_demos,
)

torch.set_num_threads(1)

SMALL = dict(
    actor_hidden=(32, 32),
    critic_hidden=(32, 32),
    refinement_hidden=(32,),
    batch_size=32,
    refinement_batch_size=16,
    min_rollouts_per_task=10,
    warmup_steps=20,
    seed=0,
)


@pytest.fixture
def store():
    s = InMemoryEpisodeStore()
    fill_store_with_demos(s, ToyBoltEnv(), 3)
    return s


def make_agent(store, **kw):
    env = ToyInterventionWrapper(ToyBoltEnv(), seed=0)
    return DualActorAgent(env=env, store=store, **{**SMALL, **kw})


class CountingCallback(BaseCallback):
    def __init__(self, stop_at=None):
        super().__init__()
        self.calls = 0
        self.started = self.ended = False
        self.stop_at = stop_at

    def _on_training_start(self):
        self.started = True

    def _on_step(self):
        self.calls += 1
        assert "infos" in self.locals and "dones" in self.locals
        return self.stop_at is None or self.calls < self.stop_at

    def _on_training_end(self):
        self.ended = True


def test_tiny_end_to_end_learn_with_callbacks_and_evaluate_policy(store):
    agent = make_agent(store)
    cb = CountingCallback()
    agent.learn(300, callback=cb)
    assert cb.started and cb.ended and cb.calls == 300
    assert agent.num_timesteps == 300 and agent.online_env_steps == 300
    assert agent.warmup_updates_done == 20
    assert agent.online_updates_done > 0  # the learner thread ran concurrently
    sizes = agent.replay.sizes()
    assert all(sizes[f"{t}/rollouts"] > 0 for t in agent.tasks)
    assert store.count(kind="demos") == 9 and store.count() > 9  # online episodes reached the store
    mean, std = evaluate_policy(agent, ToyBoltEnv(), n_eval_episodes=3)
    assert np.isfinite(mean)
    # a callback returning False stops training
    stopper = CountingCallback(stop_at=5)
    agent.learn(100, callback=stopper, reset_num_timesteps=False)
    assert stopper.calls == 5 and agent.num_timesteps == 305


def test_predict_shapes_and_command_mode(store):
    agent = make_agent(store)
    env = ToyBoltEnv()
    obs, _ = env.reset(seed=0)
    a, state = agent.predict(obs)
    assert a.shape == (7,) and state is None and np.abs(a).max() <= 1
    batch = {k: np.stack([np.asarray(v)] * 4) for k, v in obs.items()}
    assert agent.predict(batch, deterministic=True)[0].shape == (4, 7)
    # an untrained refinement actor outputs mu = 0: refinement mode equals primary mode
    a1, _ = agent.predict(obs, deterministic=True)
    a2, _ = agent.predict(obs, deterministic=True, command="move left")
    assert np.allclose(a1, a2)
    assert agent.predict(
        batch, deterministic=True, command=["move up", None, "[null]", "move left"]
    )[0].shape == (4, 7)


def test_save_load_gives_identical_predictions_and_optimisers(store, tmp_path):
    agent = make_agent(store)
    agent.learn(150)
    path = tmp_path / "ckpt.zip"
    agent.save(path)
    loaded = DualActorAgent.load(path, env=ToyInterventionWrapper(ToyBoltEnv()), store=store)
    obs, _ = ToyBoltEnv().reset(seed=3)
    for cmd in (None, "move left and up"):
        assert np.array_equal(
            agent.predict(obs, deterministic=True, command=cmd)[0],
            loaded.predict(obs, deterministic=True, command=cmd)[0],
        )
    torch.manual_seed(7)
    s1 = agent.predict(obs)[0]
    torch.manual_seed(7)
    assert np.array_equal(s1, loaded.predict(obs)[0])
    for name in ("actor", "refinement", "critics"):
        o1 = getattr(agent.policy, name).optimizer.state_dict()["state"]
        o2 = getattr(loaded.policy, name).optimizer.state_dict()["state"]
        assert o1.keys() == o2.keys() and len(o1) > 0
        assert all(torch.equal(o1[k]["exp_avg"], o2[k]["exp_avg"]) for k in o1)
    assert (
        loaded.policy.critics.keys()
        == agent.policy.critics.keys()
        == {"upright", "pickup", "assemble"}
    )


def test_resume_continues_step_count_and_buffers(tmp_path):
    store = InMemoryEpisodeStore(tmp_path / "store")
    fill_store_with_demos(store, ToyBoltEnv(), 3)
    agent = make_agent(store)
    agent.learn(200)
    agent.save(tmp_path / "ckpt.zip")
    sizes = agent.replay.sizes()
    n_updates = agent.online_updates_done

    reopened = InMemoryEpisodeStore(tmp_path / "store")  # as after a restart
    resumed = DualActorAgent.load(
        tmp_path / "ckpt.zip", env=ToyInterventionWrapper(ToyBoltEnv()), store=reopened
    )
    assert resumed.num_timesteps == 200 and resumed.online_updates_done == n_updates
    assert resumed.warmup_updates_done == 20 and resumed.normalizer_fitted
    resumed.load_buffers()
    assert resumed.replay.sizes() == sizes  # every stored episode is back in its buffer
    resumed.learn(100, reset_num_timesteps=False)
    assert resumed.num_timesteps == 300 and resumed.online_env_steps == 300
    assert resumed.warmup_updates_done == 20  # no second warm-up
    assert resumed.online_updates_done > n_updates


def test_checkpoint_from_another_config_or_env_is_refused(store, tmp_path):
    agent = make_agent(store, warmup_steps=0)
    agent.save(tmp_path / "ckpt.zip")
    with pytest.raises(CheckpointError, match="another configuration"):
        DualActorAgent.load(tmp_path / "ckpt.zip", actor_hidden=(64, 64))
    with pytest.raises(CheckpointError, match="other spaces|another configuration"):
        DualActorAgent.load(tmp_path / "ckpt.zip", env=ToyBoltEnv(tasks=("upright", "pickup")))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        DualActorAgent.load(tmp_path / "missing.zip")


class SixDofEnv(ToyBoltEnv):
    def __init__(self):
        super().__init__()
        self.action_space = spaces.Box(-1, 1, (6,), np.float32)


def test_env_with_wrong_spaces_is_refused():
    with pytest.raises(SpaceMismatchError, match="Box\\(-1, 1, \\(7,\\)\\)"):
        DualActorAgent(env=SixDofEnv())
    with pytest.raises(SpaceMismatchError, match="obs_mode='state'"):
        DualActorAgent(
            env=ToyBoltEnv(obs_mode="pixels", image_shapes=((16, 16, 3), (32, 32, 3))),
            backbone="state",
        )

    class FlatObs(gym.Env):
        observation_space = spaces.Box(-1, 1, (4,))
        action_space = spaces.Box(-1, 1, (7,))

    with pytest.raises(SpaceMismatchError, match="Dict"):
        DualActorAgent(env=FlatObs())


def test_empty_store_is_a_clear_error():
    agent = make_agent(InMemoryEpisodeStore())
    with pytest.raises(EmptyStoreError, match="no demonstrations"):
        agent.warmup(5)
    with pytest.raises(EmptyStoreError):
        agent.learn(10)


def test_pixels_backbone_learns_at_small_scale():
    env = ToyInterventionWrapper(
        ToyBoltEnv(obs_mode="pixels", image_shapes=((32, 32, 3), (64, 64, 3))), seed=0
    )
    store = InMemoryEpisodeStore()
    fill_store_with_demos(store, env, 2)
    agent = DualActorAgent(
        env=env,
        store=store,
        backbone="pixels",
        backbone_kwargs={"image_features": 8, "channels": 4},
        **{**SMALL, "warmup_steps": 5, "batch_size": 12},
    )
    agent.learn(60)
    assert agent.num_timesteps == 60
    obs, _ = env.reset(seed=1)
    assert agent.predict(obs, deterministic=True)[0].shape == (7,)
