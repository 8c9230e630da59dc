"""The per-task critics: the vectorised ensemble (same Q as separate per-task ensembles, no leak
across tasks), Monte-Carlo returns and the Cal-QL terms."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from daft_agent.backbones.registry import make_backbone
from daft_agent.critics import (
    TaskCritics,
    TaskRouting,
    calql_lower_bound,
    calql_per_row,
    monte_carlo_returns,
)
from daft_agent.errors import AgentConfigError

torch.set_num_threads(1)
N_TASKS, MEMBERS, ACT = 3, 2, 7
SPACE = spaces.Dict(
    {
        "state": spaces.Box(-1.0, 1.0, (6,), np.float32),
        "gripper": spaces.Box(-1.0, 1.0, (1,), np.float32),
        "task_id": spaces.Discrete(N_TASKS),
    }
)


def make_critics(seed: int = 0) -> TaskCritics:
    torch.manual_seed(seed)
    critics = TaskCritics(
        ("a", "b", "c"),
        [make_backbone("state", SPACE) for _ in range(N_TASKS)],
        ACT,
        (32, 16),
        MEMBERS,
    )
    # Distinct normalisers and LayerNorm affines per task, so a row scored by the wrong task's
    # backbone or LayerNorm gives a different Q.
    with torch.no_grad():
        for i, bb in enumerate(critics.backbones):
            bb.obs_mean.fill_(0.1 * i)
            bb.obs_std.fill_(1.0 + i)
        for norm in critics.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    return critics


def batch(task_ids: list[int], seed: int = 1) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = len(task_ids)
    obs = {
        "state": torch.rand(n, 6, generator=g) * 2 - 1,
        "gripper": torch.rand(n, 1, generator=g) * 2 - 1,
        "task_id": torch.tensor(task_ids),
    }
    return obs, torch.rand(n, ACT, generator=g) * 2 - 1


def reference_q(critics: TaskCritics, task: int, obs: dict, actions: torch.Tensor) -> torch.Tensor:
    """Task ``task``'s own ensemble, written out layer by layer from its slice of the weights."""
    x = torch.cat([critics.backbones[task](obs), actions], dim=1)
    out = []
    for m in range(MEMBERS):
        e = task * MEMBERS + m
        z = x
        for lin, norm in zip(critics.linears, critics.norms, strict=False):
            z = z @ lin.weight[e] + lin.bias[e, 0]
            z = torch.nn.functional.layer_norm(z, z.shape[-1:])
            z = torch.relu(z * norm.weight[task] + norm.bias[task])
        out.append((z @ critics.linears[-1].weight[e] + critics.linears[-1].bias[e, 0])[:, 0])
    return torch.stack(out)


# Uneven tasks, shuffled rows, and a task with no rows at all.
@pytest.mark.parametrize("task_ids", [[2, 0, 1, 1, 0, 2, 2, 2, 1], [1, 0, 0, 1, 1], [2]])
def test_each_row_gets_its_own_task_ensemble(task_ids):
    critics = make_critics()
    obs, actions = batch(task_ids)
    routing = critics.routing(obs["task_id"])
    q = critics(obs, actions, routing)
    assert q.shape == (MEMBERS, len(task_ids))
    for r, t in enumerate(task_ids):
        one = {k: v[r : r + 1] for k, v in obs.items()}
        ref = reference_q(critics, t, one, actions[r : r + 1])[:, 0]
        torch.testing.assert_close(q[:, r], ref, rtol=1e-5, atol=1e-5)


def test_several_actions_per_state_match_one_action_per_row():
    critics = make_critics()
    obs, _ = batch([0, 2, 1, 2])
    actions = torch.rand(4, 5, ACT) * 2 - 1
    routing = critics.routing(obs["task_id"])
    many = critics(obs, actions, routing)
    rep = {k: v.repeat_interleave(5, 0) for k, v in obs.items()}
    flat = critics(rep, actions.reshape(20, ACT), critics.routing(rep["task_id"]))
    torch.testing.assert_close(many, flat.reshape(MEMBERS, 4, 5), rtol=1e-5, atol=1e-5)


def _task_slices(critics: TaskCritics, task: int) -> list[torch.Tensor]:
    """Every parameter that belongs to ``task``'s critic alone."""
    members = slice(task * MEMBERS, (task + 1) * MEMBERS)
    out = [p for p in critics.backbones[task].parameters()]
    out += [lin.weight[members] for lin in critics.linears] + [
        lin.bias[members] for lin in critics.linears
    ]
    out += [norm.weight[task] for norm in critics.norms] + [
        norm.bias[task] for norm in critics.norms
    ]
    return out


def test_a_step_on_one_tasks_rows_leaves_the_other_tasks_critics_unchanged():
    critics = make_critics()
    opt = torch.optim.Adam(critics.parameters(), lr=1e-2)
    task_ids = [0, 1, 2, 1, 0, 1, 2, 1]
    obs, actions = batch(task_ids)
    routing = critics.routing(obs["task_id"])
    before = {t: [p.detach().clone() for p in _task_slices(critics, t)] for t in range(N_TASKS)}
    # All three tasks' rows go through the call; only task 1's rows enter the loss.
    q = critics(obs, actions, routing)
    mask = (obs["task_id"] == 1).float()
    ((q - 1.0) ** 2 * mask).sum().backward()
    opt.step()
    after = {t: _task_slices(critics, t) for t in range(N_TASKS)}
    for t in (0, 2):
        assert all(torch.equal(b, a) for b, a in zip(before[t], after[t], strict=True))
    moved = [not torch.equal(b, a) for b, a in zip(before[1], after[1], strict=True)]
    # Every layer of task 1's ensemble and its task embedding moved.
    assert sum(moved) >= 2 * len(critics.linears) + 2 * len(critics.norms)


def test_detached_parameters_pass_gradient_to_actions_only():
    critics = make_critics()
    obs, actions = batch([0, 1, 2, 2])
    routing = critics.routing(obs["task_id"])
    a1 = actions.clone().requires_grad_(True)
    critics(obs, a1, routing, detach_params=True).min(0).values.sum().backward()
    assert all(p.grad is None for p in critics.parameters())
    a2 = actions.clone().requires_grad_(True)
    critics(obs, a2, routing).min(0).values.sum().backward()
    # the action gradient is the same as through the live weights
    torch.testing.assert_close(a1.grad, a2.grad)
    assert a1.grad.abs().sum() > 0


def test_routing_task_mean_and_bad_task_ids():
    r = TaskRouting(torch.tensor([2, 0, 2, 2]), 3)
    torch.testing.assert_close(
        r.task_mean(torch.tensor([1.0, 5.0, 3.0, 5.0])), torch.tensor([5.0, 0.0, 3.0])
    )
    with pytest.raises(AgentConfigError, match="outside"):
        TaskRouting(torch.tensor([0, 3]), 3)
    with pytest.raises(AgentConfigError, match="at least one row"):
        TaskRouting(torch.tensor([], dtype=torch.long), 3)


def test_keys_name_the_tasks():
    assert make_critics().keys() == {"a", "b", "c"}


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
    reg = calql_per_row(q_data, q_rand, q_pi, q_next, torch.full((3,), -1.0)).mean()
    # all 12 sampled values equal 0: logsumexp = log 12 per state
    assert reg.item() == pytest.approx(2 * np.log(12.0))
    reg.backward()
    assert torch.all(q_data.grad < 0) and torch.all(q_rand.grad > 0) and torch.all(q_pi.grad > 0)
