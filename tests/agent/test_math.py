"""Unit tests of the maths: consistency scalings, Eq. 16 weights, Cal-QL bound, MC returns."""

import numpy as np
import pytest
import torch

from daft_agent.consistency import ConsistencyHead, boundary_scalings, karras_sigmas
from daft_agent.critics import calql_lower_bound, calql_regulariser, monte_carlo_returns
from daft_agent.errors import AgentConfigError
from daft_agent.weights import LambdaSchedule, task_weights, weighted_actor_q_loss

torch.set_num_threads(1)


def test_karras_sigmas_ascending_with_exact_ends():
    s = karras_sigmas(10, 0.002, 1.0)
    assert s[0].item() == pytest.approx(0.002) and s[-1].item() == pytest.approx(1.0)
    assert torch.all(s[1:] > s[:-1])
    # rho = 7 spacing packs levels near sigma_min
    assert (s[1] - s[0]) < (s[-1] - s[-2])
    with pytest.raises(AgentConfigError):
        karras_sigmas(1, 0.002, 1.0)


def test_boundary_scalings_at_sigma_min():
    c_skip, c_out, _ = boundary_scalings(torch.tensor([0.002]), 0.002, 0.5)
    assert c_skip.item() == pytest.approx(1.0) and c_out.item() == pytest.approx(0.0)
    c_skip, c_out, _ = boundary_scalings(torch.tensor([1.0]), 0.002, 0.5)
    assert 0 < c_skip.item() < 1 and c_out.item() > 0.4


def test_consistency_function_is_identity_at_sigma_min():
    torch.manual_seed(0)
    head = ConsistencyHead(features_dim=5, action_dim=7, hidden_sizes=(32,), K=1.0)
    x = torch.randn(16, 7)
    h = torch.randn(16, 5)
    out = head.denoise(x, torch.full((16,), head.sigma_min), h)
    assert torch.allclose(out, x, atol=1e-6)
    # ... but not at sigma_max, where the network decides.
    assert not torch.allclose(head.denoise(x, torch.full((16,), head.K), h), x, atol=1e-3)


def test_one_step_sampling_is_bounded_and_uses_noise_mean():
    torch.manual_seed(0)
    head = ConsistencyHead(4, 7, (16,), K=1.0)
    h = torch.randn(8, 4)
    a = head(h)
    assert a.shape == (8, 7) and a.abs().max() <= 1.0
    assert torch.equal(head(h, deterministic=True), head(h, deterministic=True))
    mu = torch.full((8, 7), 2.0)
    assert torch.equal(head.noise(h, mu, deterministic=True), mu)


def test_task_weights_on_hand_values():
    # sum Q = 1.5, N = 3, c = 0.1: eps_i = 1.5 / (3 Q_i + 0.3)
    eps = task_weights(torch.tensor([0.45, 0.5, 0.55]))
    assert eps.tolist() == pytest.approx(
        [1.5 / 1.65, 1.5 / 1.8, 0.8]
    )  # last one clipped up from 0.769
    eps = task_weights(torch.tensor([0.2, 0.5, 0.8]))
    assert eps.tolist() == pytest.approx([1.2, 1.5 / 1.8, 0.8])  # 1.667 -> 1.2, 0.556 -> 0.8
    # equal Q: every weight is Q / (Q + c) < 1, here 0.5 / 0.6
    assert task_weights(torch.tensor([0.5, 0.5, 0.5])).tolist() == pytest.approx([0.8333333] * 3)
    # a pessimistic critic (negative denominator) must not flip its sign
    assert task_weights(torch.tensor([-0.5, 0.5, 0.5])).min().item() == pytest.approx(0.8)


def test_weighted_actor_q_loss_is_eq15():
    q = [torch.tensor([1.0, 3.0]), torch.tensor([0.5]), torch.tensor([0.0, 0.0, 3.0])]
    eps = torch.tensor([1.2, 1.0, 0.8])
    expected = -(1.2 * 2.0 + 1.0 * 0.5 + 0.8 * 1.0) / 3
    assert weighted_actor_q_loss(q, eps).item() == pytest.approx(expected)


def test_lambda_schedule():
    sched = LambdaSchedule()
    assert sched("warmup") == (1.0, 0.1) and sched("online") == (1.0, 0.1)
    with pytest.raises(AgentConfigError):
        sched("offline")
    with pytest.raises(AgentConfigError):
        LambdaSchedule(warmup=(1.0, -0.1))


def test_mc_returns_successful_episode():
    g = monte_carlo_returns([0, 0, 1], [False, False, True], gamma=0.9)
    assert g.tolist() == pytest.approx([0.81, 0.9, 1.0])


def test_mc_returns_truncation_does_not_leak_across_episodes():
    # episode A: 2 steps, failed, truncated; episode B: 2 steps, success.
    rewards = [0, 0, 0, 1]
    terminated = [False, False, False, True]
    truncated = [False, True, False, False]
    g = monte_carlo_returns(rewards, terminated, truncated, gamma=0.9)
    assert g.tolist() == pytest.approx([0.0, 0.0, 0.9, 1.0])
    # the pitfall: resetting only on `terminated` lets the failed episode inherit B's success
    leaky = monte_carlo_returns(rewards, terminated, None, gamma=0.9)
    assert leaky[0] > 0


def test_mc_returns_truncated_tail_bootstrap_value_and_last_step():
    g = monte_carlo_returns([0, 0], [False, False], [False, True], gamma=0.5, truncation_value=1.0)
    assert g.tolist() == pytest.approx([0.25, 0.5])
    # an array ending without a flag is treated as truncated (never chained into anything)
    assert monte_carlo_returns([1, 1], [False, False], gamma=0.5).tolist() == pytest.approx(
        [1.5, 1.0]
    )
    with pytest.raises(AgentConfigError):
        monte_carlo_returns([0, 1], [False], gamma=0.9)


def test_calql_lower_bound_hand_values_and_gradient():
    q = torch.tensor([[[0.1, 0.9], [0.4, 0.2]]], requires_grad=True)  # (E=1, B=2, n=2)
    mc = torch.tensor([0.5, 0.3])
    bound = calql_lower_bound(q, mc)
    assert torch.allclose(bound, torch.tensor([[[0.5, 0.9], [0.4, 0.3]]]))
    bound.sum().backward()
    # only Q values above their MC return carry gradient (the others are replaced by the bound)
    assert q.grad.tolist() == [[[0.0, 1.0], [1.0, 0.0]]]


def test_calql_regulariser_pushes_data_up_and_ood_down():
    q_data = torch.zeros(2, 3, requires_grad=True)
    q_rand = torch.zeros(2, 3, 4, requires_grad=True)
    q_pi = torch.zeros(2, 3, 4, requires_grad=True)
    q_next = torch.zeros(2, 3, 4, requires_grad=True)
    reg = calql_regulariser(q_data, q_rand, q_pi, q_next, torch.full((3,), -1.0))
    # all 12 sampled values equal 0: logsumexp = log 12 per state
    assert reg.item() == pytest.approx(2 * np.log(12.0))
    reg.backward()
    assert torch.all(q_data.grad < 0) and torch.all(q_rand.grad > 0) and torch.all(q_pi.grad > 0)


def test_acting_at_sigma_k_is_the_consistency_function_at_k():
    """act_from_noise's precomputed sigma = K constants give exactly clip(f(w, K, h), -1, 1)."""
    torch.manual_seed(0)
    head = ConsistencyHead(5, 7, (16, 16), K=1.5)
    h, w = torch.randn(9, 5), 2.0 * torch.randn(9, 7)
    expected = head.denoise(w, torch.full((9,), 1.5), h).clamp(-1.0, 1.0)
    torch.testing.assert_close(head.act_from_noise(h, w), expected, rtol=1e-6, atol=1e-6)
