"""DualActorPolicy.act and DualActorAgent.predict: shapes, bounds, determinism, refinement mode
(Eq. 2), batches, the policy_kwargs round trip, and SB3's evaluate_policy on a trained agent."""

import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from support.learner_fixtures import make_policy, tiny_agent
from support.toy_env import ToyBoltEnv, fill_store_with_demos

from daft_agent import DualActorAgent
from daft_agent.commands import VocabularyCommandEncoder
from daft_agent.policies import DualActorPolicy, obs_as_tensors
from daft_env.store import EpisodeStore

torch.set_num_threads(1)
TASKS = ("upright", "pickup")


def _obs_batch(env, n, seed=0):
    rows = []
    env.reset(seed=seed)
    for i in range(n):
        obs, _ = env.reset(options={"task": TASKS[i % len(TASKS)]})
        rows.append(obs)
    return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}


def _perturb(module, seed=3, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


@pytest.fixture
def policy_and_obs():
    env = ToyBoltEnv(tasks=TASKS)
    policy = make_policy(TASKS, obs_space=env.observation_space).eval()
    obs, _ = obs_as_tensors(_obs_batch(env, 6), env.observation_space)
    return policy, obs


def _commands(texts):
    return VocabularyCommandEncoder().encode(texts)


def test_act_gives_bounded_actions_repeatable_when_deterministic(policy_and_obs):
    policy, obs = policy_and_obs
    a = policy.act(obs)
    assert a.shape == (6, 7) and a.dtype == torch.float32
    assert a.abs().max() <= 1.0
    assert torch.equal(policy.act(obs, deterministic=True), policy.act(obs, deterministic=True))
    # stochastic actions repeat with the same generator seed and differ with another
    draw = [policy.act(obs, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    assert all(d.abs().max() <= 1.0 for d in draw)


def test_a_command_moves_the_action_through_mu_and_none_rows_stay_primary(policy_and_obs):
    policy, obs = policy_and_obs
    cmd = _commands(["move left"] * 6)
    primary = policy.act(obs, deterministic=True)
    # an untrained refinement actor outputs mu = 0: refinement mode equals primary mode
    assert torch.equal(policy.act(obs, cmd, deterministic=True), primary)

    _perturb(policy.refinement)
    mu = policy.refinement(obs, cmd)
    assert mu.abs().max() > 0.1 and mu[:, 3:].abs().max() == 0  # mu steers translation only
    refined = policy.act(obs, cmd, deterministic=True)
    # Eq. 2: the same head, evaluated at w = mu instead of w = 0
    assert torch.equal(refined, policy.actor(obs, mu=mu, deterministic=True))
    assert not torch.allclose(refined, primary)
    mask = torch.tensor([True, False, True, False, False, True])
    mixed = policy.act(obs, cmd, deterministic=True, command_mask=mask)
    assert torch.equal(mixed[mask], refined[mask])
    assert torch.equal(mixed[~mask], primary[~mask])


def test_policy_kwargs_round_trip_through_the_constructor_parameters():
    env = ToyBoltEnv(tasks=TASKS)
    nets = dict(actor_hidden=(24, 12), critic_hidden=(8,), refinement_hidden=(6, 5), n_critics=3)
    policy = make_policy(TASKS, obs_space=env.observation_space, **nets)
    params = policy._get_constructor_parameters()
    rebuilt = DualActorPolicy(**params)
    assert rebuilt.net == policy.net and rebuilt.tasks == TASKS
    assert (rebuilt.net.actor_hidden, rebuilt.net.n_critics) == ((24, 12), 3)
    shapes = {k: v.shape for k, v in policy.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    rebuilt.load_state_dict(policy.state_dict())  # strict: the same networks
    obs, _ = obs_as_tensors(_obs_batch(env, 3), env.observation_space)
    assert torch.equal(rebuilt.act(obs, deterministic=True), policy.act(obs, deterministic=True))


def test_sb3_policy_save_and_load_rebuild_the_same_networks(tmp_path):
    env = ToyBoltEnv(tasks=TASKS)
    policy = make_policy(TASKS, obs_space=env.observation_space, actor_hidden=(24, 12))
    policy.save(tmp_path / "policy.pth")
    loaded = DualActorPolicy.load(tmp_path / "policy.pth")
    assert loaded.net == policy.net and loaded.tasks == TASKS
    obs, _ = obs_as_tensors(_obs_batch(env, 3), env.observation_space)
    assert torch.equal(loaded.act(obs, deterministic=True), policy.act(obs, deterministic=True))


@pytest.fixture
def demo_store(tmp_path):
    store = EpisodeStore(tmp_path / "store")
    fill_store_with_demos(store, ToyBoltEnv(tasks=TASKS), 2)
    return store


def test_agent_predict_single_and_batched_agree_and_none_rows_act_primary(demo_store):
    env = ToyBoltEnv(tasks=TASKS)
    agent = tiny_agent(env, demo_store)
    _perturb(agent.policy.refinement)
    batch = _obs_batch(env, 4)
    single = {k: v[2] for k, v in batch.items()}
    a_batch, state = agent.predict(batch, deterministic=True)
    a_single, _ = agent.predict(single, deterministic=True)
    assert a_batch.shape == (4, 7) and a_single.shape == (7,) and state is None
    np.testing.assert_allclose(a_single, a_batch[2], atol=1e-6)  # batched matmuls round apart
    cmds = ["move up", None, "move left and forward", None]
    mixed, _ = agent.predict(batch, deterministic=True, command=cmds)
    for i, c in enumerate(cmds):
        if c is None:
            np.testing.assert_array_equal(mixed[i], a_batch[i])
        else:
            row = agent.predict({k: v[i] for k, v in batch.items()}, deterministic=True, command=c)
            np.testing.assert_allclose(mixed[i], row[0], atol=1e-6)
            assert not np.allclose(mixed[i], a_batch[i])
    assert np.abs(agent.predict(batch)[0]).max() <= 1.0


def test_network_settings_survive_save_and_load(demo_store, tmp_path):
    nets = dict(actor_hidden=(24, 12), critic_hidden=(8,), refinement_hidden=(6,), n_critics=3)
    agent = tiny_agent(ToyBoltEnv(tasks=TASKS), demo_store, policy_kwargs=nets)
    agent.save(tmp_path / "ckpt.zip")
    loaded = DualActorAgent.load(
        tmp_path / "ckpt.zip", env=ToyBoltEnv(tasks=TASKS), store=demo_store
    )
    assert loaded.policy.net == agent.policy.net
    assert loaded.policy.net.actor_hidden == (24, 12) and loaded.policy.net.n_critics == 3


def test_evaluate_policy_scores_a_warmed_up_agent_above_an_untrained_one(tmp_path):
    """SB3's evaluate_policy drives predict: rewards are the env's 0/1 successes, an episode is
    shorter than the step limit exactly when it succeeded, and warm-up on demos raises the score."""
    task = ("upright",)
    store = EpisodeStore(tmp_path / "store")
    fill_store_with_demos(store, ToyBoltEnv(tasks=task), 10)
    nets = dict(actor_hidden=(64, 64), critic_hidden=(16,), refinement_hidden=(8,))
    agent = tiny_agent(ToyBoltEnv(tasks=task), store, batch_size=64, policy_kwargs=nets)

    def score():
        env = ToyBoltEnv(tasks=task)
        env.reset(seed=5)
        rewards, lengths = evaluate_policy(
            agent, env, n_eval_episodes=10, return_episode_rewards=True, warn=False
        )
        assert set(rewards) <= {0.0, 1.0}
        assert all((r == 1.0) == (n < env.max_steps) for r, n in zip(rewards, lengths, strict=True))
        return sum(rewards)

    untrained = score()
    agent.warmup(400)
    trained = score()
    assert untrained == 0 and trained >= 2, (untrained, trained)
