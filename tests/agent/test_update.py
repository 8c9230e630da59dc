"""Direct tests of ``Learner.update``: phases, Polyak averaging, BC weighting, Q scaling, and which
parameters each loss term may move.

Every test compares whole updates (parameters before and after, or two learners that differ in one
setting), never the update's internals, so it holds whatever the critics' layout.
"""

import numpy as np
import pytest
import torch
from support.learner_fixtures import (
    changed,
    make_episode,
    make_learner,
    seeded_update,
    snapshot,
    standard_episodes,
)

from daft_agent.weights import LambdaSchedule

torch.set_num_threads(1)
TASKS = ("upright", "pickup")


def _equal_modules(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {
        k: None if p.grad is None else p.grad.detach().clone() for k, p in module.named_parameters()
    }


def _same_grads(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if (a[k] is None) != (b[k] is None):
            return False
        if a[k] is not None and not torch.equal(a[k], b[k]):
            return False
    return True


# ------------------------------------------------------------------------ phases


def test_calql_regulariser_acts_in_warmup_only():
    """Cal-QL (alpha > 0) changes the warm-up critic step and leaves the online one untouched."""
    with_calql, without = make_learner(TASKS, calql_alpha=1.0), make_learner(TASKS, calql_alpha=0.0)
    stats = seeded_update(with_calql, "warmup")
    stats0 = seeded_update(without, "warmup")
    assert any("calql" in k for k in stats), sorted(stats)
    assert not any("calql" in k for k in stats0)
    assert not _equal_modules(with_calql.policy.critics, without.policy.critics)

    with_calql, without = make_learner(TASKS, calql_alpha=1.0), make_learner(TASKS, calql_alpha=0.0)
    stats = seeded_update(with_calql, "online")
    seeded_update(without, "online")
    assert not any("calql" in k for k in stats)
    assert _equal_modules(with_calql.policy.critics, without.policy.critics)
    assert _equal_modules(with_calql.policy.critics_target, without.policy.critics_target)


def test_refinement_actor_steps_online_only_and_only_with_talk_tweak_data():
    learner = make_learner(TASKS, standard_episodes(TASKS, talk_tweak=True))
    assert len(learner.replay.talk_tweak) > 0
    before = snapshot(learner.policy.refinement)
    stats = seeded_update(learner, "warmup")
    assert changed(before, learner.policy.refinement) == []  # Algorithm 1: no line 16 in warm-up
    assert not any(k.startswith("refinement/") for k in stats)

    stats = seeded_update(learner, "online")
    assert changed(before, learner.policy.refinement) != []
    assert any(k.startswith("refinement/") for k in stats)

    no_tt = make_learner(TASKS, standard_episodes(TASKS, talk_tweak=False))
    assert len(no_tt.replay.talk_tweak) == 0
    before = snapshot(no_tt.policy.refinement)
    seeded_update(no_tt, "online")
    assert changed(before, no_tt.policy.refinement) == []


# ------------------------------------------------------------------------ Polyak


@pytest.mark.parametrize("phase", ["warmup", "online"])
def test_target_critics_are_polyak_averages_of_the_updated_critics(phase):
    tau = 0.25
    learner = make_learner(TASKS, tau=tau)
    pol = learner.policy
    old_target = {k: p.detach().clone() for k, p in pol.critics_target.named_parameters()}
    old_online = {k: p.detach().clone() for k, p in pol.critics.named_parameters()}
    seeded_update(learner, phase)
    online = dict(pol.critics.named_parameters())
    target = dict(pol.critics_target.named_parameters())
    assert target.keys() == online.keys() == old_target.keys()
    moved = 0
    for k, p in target.items():
        # target <- (1 - tau) target + tau online, with the online weights after this update
        expected = (1 - tau) * old_target[k] + tau * online[k].detach()
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-6, msg=k)
        moved += int(not torch.equal(online[k], old_online[k]))
    assert moved > 0  # the critics did step, so the check above saw new online weights
    for (k, b), (k2, tb) in zip(
        pol.critics.named_buffers(), pol.critics_target.named_buffers(), strict=True
    ):
        assert k == k2 and torch.equal(b, tb)  # normalisers are copied, not averaged


# ------------------------------------------------------------------------ BC weighting and Q scale


def _episodes_with_rollout_actions(value):
    eps = []
    for i, t in enumerate(TASKS):
        eps.append(make_episode(t, "demos", TASKS, seed=10 * i))
        eps.append(
            make_episode(t, "rollouts", TASKS, seed=10 * i + 1, action_value=value, success=False)
        )
    return eps


@pytest.mark.parametrize("bc_on_rollouts", [True, False])
def test_bc_on_rollouts_false_ignores_rollout_actions(bc_on_rollouts):
    """Two buffers that differ only in the rollouts' actions: with bc_on_rollouts=False the BC
    term (and, with lambda_2 = 0, the actor step) is the same for both."""
    lambdas = LambdaSchedule(online=(1.0, 0.0))
    a = make_learner(
        TASKS, _episodes_with_rollout_actions(0.9), bc_on_rollouts=bc_on_rollouts, lambdas=lambdas
    )
    b = make_learner(
        TASKS, _episodes_with_rollout_actions(-0.9), bc_on_rollouts=bc_on_rollouts, lambdas=lambdas
    )
    sa, sb = seeded_update(a, "online"), seeded_update(b, "online")
    same_actor = _equal_modules(a.policy.actor, b.policy.actor)
    if bc_on_rollouts:
        assert sa["actor/bc_loss"] != sb["actor/bc_loss"]
        assert not same_actor
    else:
        assert sa["actor/bc_loss"] == sb["actor/bc_loss"]
        assert same_actor
    # the critics saw the different rollout actions either way
    assert not _equal_modules(a.policy.critics, b.policy.critics)


def _q_loss_after_critic_training(reward, normalize_q):
    """Train a one-task critic towards Q ~ reward / (1 - gamma) > 0, then one online update."""
    tasks = ("pickup",)
    eps = [
        make_episode("pickup", "demos", tasks, seed=1, step_reward=reward, reward=reward),
        make_episode("pickup", "rollouts", tasks, seed=2, step_reward=reward, success=False),
    ]
    learner = make_learner(
        tasks,
        eps,
        lr=3e-2,
        normalize_q=normalize_q,
        task_weight_clip=(1.0, 1.0),  # epsilon = 1: the Q term is -mean Q (Eq. 15, one task)
        lambdas=LambdaSchedule(online=(0.0, 1.0)),
        calql_alpha=0.0,
    )
    for group in learner.policy.actor.optimizer.param_groups:
        group["lr"] = 0.0  # keep the actor fixed while the critic learns
    for i in range(60):
        seeded_update(learner, "warmup", torch_seed=i)
    return seeded_update(learner, "online", torch_seed=999)["actor/q_loss"]


def test_normalize_q_divides_the_q_term_by_mean_abs_q():
    raw_small = _q_loss_after_critic_training(5.0, normalize_q=False)
    raw_large = _q_loss_after_critic_training(15.0, normalize_q=False)
    # Q > 0 on the whole batch here, so -mean Q / mean |Q| = -1 exactly, whatever the reward scale.
    assert raw_small < -1.5 and raw_large < raw_small - 1.0
    assert _q_loss_after_critic_training(5.0, normalize_q=True) == pytest.approx(-1.0, abs=1e-5)
    assert _q_loss_after_critic_training(15.0, normalize_q=True) == pytest.approx(-1.0, abs=1e-5)


# ------------------------------------------------------------------------ who moves what


def test_critic_step_moves_only_the_critics():
    """With lambda = (0, 0) and no talk-tweak data only the critic loss is live."""
    learner = make_learner(
        TASKS, standard_episodes(TASKS, talk_tweak=False), lambdas=LambdaSchedule(online=(0, 0))
    )
    pol = learner.policy
    before = {m: snapshot(getattr(pol, m)) for m in ("actor", "refinement", "critics")}
    target_before = snapshot(pol.critics_target)
    seeded_update(learner, "online")
    assert changed(before["critics"], pol.critics) != []
    assert changed(target_before, pol.critics_target) != []
    assert changed(before["actor"], pol.actor) == []
    assert changed(before["refinement"], pol.refinement) == []


def test_actor_q_term_moves_the_actor_and_never_the_critics():
    """lambda_2 > 0 vs lambda_2 = 0: the actors differ, the critics (and their gradients) do not."""
    eps = standard_episodes(TASKS, talk_tweak=False)
    with_q = make_learner(TASKS, eps, lambdas=LambdaSchedule(online=(0.5, 0.5)))
    no_q = make_learner(TASKS, eps, lambdas=LambdaSchedule(online=(0.5, 0.0)))
    seeded_update(with_q, "online")
    seeded_update(no_q, "online")
    assert not _equal_modules(with_q.policy.actor, no_q.policy.actor)
    assert _equal_modules(with_q.policy.critics, no_q.policy.critics)
    assert _equal_modules(with_q.policy.critics_target, no_q.policy.critics_target)
    # no gradient of the actor's Q term is left in the critics' .grad either
    assert _same_grads(_grads(with_q.policy.critics), _grads(no_q.policy.critics))


@pytest.mark.parametrize("trains_primary", [True, False])
def test_refinement_loss_moves_the_refinement_actor_and_the_primary_only_through_eq8(
    trains_primary,
):
    """lambda = (0, 0): the primary actor's own loss is off, so only Eq. 11 can move anything."""
    kw = dict(lambdas=LambdaSchedule(online=(0, 0)), refinement_bc_trains_primary=trains_primary)
    learner = make_learner(TASKS, **kw)
    silent = make_learner(TASKS, eta=(0.0, 0.0, 0.0), **kw)  # refinement loss weighted to zero
    pol = learner.policy
    before = {m: snapshot(getattr(pol, m)) for m in ("actor", "refinement")}
    seeded_update(learner, "online")
    seeded_update(silent, "online")
    assert changed(before["refinement"], pol.refinement) != []
    moved_primary = changed(before["actor"], pol.actor)
    if trains_primary:
        assert moved_primary != []  # Eq. 8 reaches theta
    else:
        assert moved_primary == []  # Eq. 8 stops at phi; Eq. 9-10 never reach theta
    # Eq. 9 differentiates through the critics but must not move them
    assert _equal_modules(pol.critics, silent.policy.critics)
    assert _same_grads(_grads(pol.critics), _grads(silent.policy.critics))


# ------------------------------------------------------------------------ pixels


def test_pixel_backbone_warmup_fits_the_demonstrations(tmp_path):
    """Warm-up updates on pixel demos: the deterministic action gets closer to the expert's than
    before, and closer than the best constant action, so the CNN reads the images."""
    from support.learner_fixtures import tiny_agent
    from support.toy_env import ToyBoltEnv, fill_store_with_demos

    from daft_env.store import EpisodeStore

    env = ToyBoltEnv(tasks=TASKS, obs_mode="pixels", image_shapes=((32, 32, 3), (64, 64, 3)))
    store = EpisodeStore(tmp_path / "store")
    fill_store_with_demos(store, env, 3)
    nets = dict(actor_hidden=(32, 32), critic_hidden=(16,), refinement_hidden=(8,))
    agent = tiny_agent(
        env,
        store,
        batch_size=16,
        calql_alpha=0.0,  # the critics' regulariser is not what this test is about
        policy_kwargs={
            **nets,
            "backbone": "pixels",
            "backbone_kwargs": {"image_features": 8, "channels": 4},
        },
    )
    demos = list(store.episodes(kind="demos"))
    obs = {
        k: np.concatenate([e.observations[k][:-1] for e in demos]) for k in demos[0].observations
    }
    expert = np.concatenate([e.actions for e in demos])

    def bc_error():
        return float(((agent.predict(obs, deterministic=True)[0] - expert) ** 2).sum(1).mean())

    constant = float(((expert - expert.mean(0)) ** 2).sum(1).mean())
    before = bc_error()
    agent.warmup(120)
    after = bc_error()
    assert after < 0.6 * before and after < 0.85 * constant, (before, after, constant)
