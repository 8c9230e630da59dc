"""Task weights of the actor's Q term (Eq. 4, 14-16) and the lambda schedule of Eq. 6."""

import pytest
import torch

from daft_agent.errors import AgentConfigError
from daft_agent.weights import LambdaSchedule, task_weights, weighted_actor_q_loss

torch.set_num_threads(1)


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
