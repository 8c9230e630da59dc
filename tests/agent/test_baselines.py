"""Table I's baselines: each is a configuration of the shared parts and runs a tiny learn on the toy."""

import numpy as np
import pytest
import torch
from support.toy_env import ToyBoltEnv, fill_store_with_demos, toy_hil_env

from daft_agent.baselines import BASELINES, BaselineSettings, make_baseline
from daft_agent.baselines.dsrl import DSRL
from daft_agent.baselines.sac_demos import MixedReplayBuffer
from daft_agent.errors import AgentConfigError
from daft_agent.update import LearnerConfig
from daft_agent.weights import LambdaSchedule
from daft_env.store import EpisodeStore

torch.set_num_threads(1)

TINY = BaselineSettings(
    warmup_steps=5, batch_size=16, min_rollouts_per_task=5, hidden=(16, 16), learning_starts=10
)


@pytest.fixture
def store(tmp_path):
    s = EpisodeStore(tmp_path / "store")
    fill_store_with_demos(s, ToyBoltEnv(), 2)
    return s


def snapshot(module):
    """The module's weights (not its buffers: input normalisers are fitted on the demos)."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def unchanged(before, module):
    return all(torch.equal(v, dict(module.named_parameters())[k]) for k, v in before.items())


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_row_learns_on_the_toy_and_acts_in_bounds(name, store):
    env = toy_hil_env(seed=0)
    model = make_baseline(name, env, store, seed=0, settings=TINY)
    model.learn(80)
    obs, _ = ToyBoltEnv().reset(seed=3, options={"task": "pickup"})
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (7,) and np.all(np.abs(action) <= 1.0)


def test_unknown_row_names_the_known_ones(store):
    with pytest.raises(AgentConfigError, match="hg_dagger"):
        make_baseline("dagger", toy_hil_env(), store)


def test_wo_dual_never_updates_the_refinement_actor_and_daft_does(store):
    for name, moves in (("wo_dual", False), ("daft", True)):
        model = make_baseline(name, toy_hil_env(seed=0), store, seed=0, settings=TINY)
        model.learn(120)
        assert model.replay.sizes()["talk_tweak"] > 0  # commands were there to learn from
        before = snapshot(model.policy.refinement)
        for _ in range(3):
            model.learner.update("online")
        assert unchanged(before, model.policy.refinement) is not moves, name


def test_hg_dagger_trains_no_critic_and_imitates_interventions(store):
    model = make_baseline("hg_dagger", toy_hil_env(seed=0, p=1.0), store, seed=0, settings=TINY)
    critics, actor = snapshot(model.policy.critics), snapshot(model.policy.actor)
    model.learn(80)
    assert unchanged(critics, model.policy.critics)
    assert not unchanged(actor, model.policy.actor)
    sizes = model.replay.sizes()
    assert sum(sizes[f"{t}/interventions"] for t in model.tasks) > 0


def test_bc_only_switch_refuses_a_q_term():
    with pytest.raises(AgentConfigError, match="lambda_2 = 0"):
        LearnerConfig(train_critics=False, refinement=False)
    LearnerConfig(
        train_critics=False, refinement=False, lambdas=LambdaSchedule((1.0, 0.0), (1.0, 0.0))
    )


def test_hil_conrft_routes_every_task_to_one_critic(store):
    model = make_baseline("hil_conrft", toy_hil_env(), store, seed=0, settings=TINY)
    model.load_buffers()
    stats = model.learner.update("warmup")
    assert stats["critic/td_loss/upright"] > 0
    assert stats["critic/td_loss/pickup"] == stats["critic/td_loss/assemble"] == 0.0
    assert stats["actor/epsilon/pickup"] == stats["actor/epsilon/upright"] == 1.0


def test_dsrl_freezes_its_base_policy_and_acts_through_its_noise(store):
    model = make_baseline("dsrl", toy_hil_env(seed=0), store, seed=0, settings=TINY)
    assert isinstance(model, DSRL)
    model.learn(30)  # warm-up, then the base is frozen
    frozen = snapshot(model.base.policy.actor)
    model.learn(40)
    assert unchanged(frozen, model.base.policy.actor)
    obs, _ = ToyBoltEnv().reset(seed=5, options={"task": "upright"})
    w, _ = model.sac.predict(obs, deterministic=True)
    action, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, model.latent_env.decode(obs, w))
    other = model.latent_env.decode(obs, -w)
    assert not np.allclose(action, other)  # the chosen w decides the action


def test_dsrl_callbacks_see_the_dsrl_learner_so_evaluations_act_in_env_space(store):
    from stable_baselines3.common.callbacks import BaseCallback

    from daft_agent.evaluation import PeriodicEvaluation

    model = make_baseline("dsrl", toy_hil_env(seed=0), store, seed=0, settings=TINY)
    seen = []

    class Probe(BaseCallback):
        def _on_step(self):
            seen.append((self.model, "intervened" in self.locals["infos"][0]))
            return True

    curve = PeriodicEvaluation(ToyBoltEnv, 20, 1, ["pickup"])
    model.learn(40, callback=[Probe(), curve])
    assert len(seen) == 40 and all(m is model and has_info for m, has_info in seen)
    assert [step for step, _ in curve.rows] == [20, 40]


def _buffer(env, share=0.5):
    return MixedReplayBuffer(100, env.observation_space, env.action_space, "cpu", 1, share)


def _step(env, buf, obs, info):
    vec = {k: np.asarray(v).reshape((1, *buf.obs_shape[k])) for k, v in obs.items()}
    buf.add(vec, vec, np.zeros((1, 7), np.float32), np.zeros(1), np.zeros(1), [info])


def test_mixed_buffer_draws_half_of_each_batch_from_demos_and_stores_executed_actions(store):
    env = ToyBoltEnv()
    buf = _buffer(env)
    assert buf.add_episodes(store.episodes(kind="demos")) == buf.expert.size() > 0
    obs, _ = env.reset(seed=0)
    _step(env, buf, obs, {})
    taken = np.full(7, 0.25, np.float32)
    _step(env, buf, obs, {"intervened": True, "intervention_action": taken})
    assert buf.size() == 2 and buf.expert.size() == sum(len(e) for e in store.episodes()) + 1
    np.testing.assert_allclose(buf.actions[1, 0], taken)
    np.testing.assert_allclose(buf.expert.actions[buf.expert.size() - 1, 0], taken)
    batch = buf.sample(20)
    online_zero = (batch.actions[:10] == 0).all(1) | (batch.actions[:10] == 0.25).all(1)
    assert batch.actions.shape == (20, 7) and bool(online_zero.all())
    assert not bool((batch.actions[10:] == 0).all(1).all())  # the expert half holds demos


def test_mixed_buffer_refuses_a_share_outside_unit_interval():
    with pytest.raises(AgentConfigError, match="expert_share"):
        _buffer(ToyBoltEnv(), 1.5)
