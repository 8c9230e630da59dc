"""The refinement actor: [null] regulariser, and commands steering the action on a trained toy."""

import pytest
import torch

from daft_agent.commands import VocabularyCommandEncoder
from daft_agent.consistency import ConsistencyHead
from daft_agent.refinement import RefinementActor, null_regulariser, refinement_losses

torch.set_num_threads(1)


class Identity(torch.nn.Module):
    features_dim = 3

    def forward(self, obs):
        return obs["h"]


def test_null_regulariser_is_eq10_and_one_sided():
    refined = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    primary = torch.tensor([[0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    reg = null_regulariser(refined, primary)
    assert reg.item() == pytest.approx((1 + 4 + 1 + 1) / 2)
    reg.backward()
    assert primary.grad is None  # the primary behaviour is the target, never pulled
    assert refined.grad.abs().sum() > 0


def test_null_regulariser_is_zero_at_init_and_does_not_move_theta():
    torch.manual_seed(0)
    head = ConsistencyHead(3, 7, (32,), K=1.0)
    refine = RefinementActor(Identity(), 4, 7, (32,), mu_max=3.0)
    obs = {"h": torch.randn(16, 3)}
    enc = VocabularyCommandEncoder()
    mu_cmd = refine(obs, enc.encode(["move left"] * 16))
    mu_null = refine(obs, enc.encode(["[null]"] * 16))
    terms = refinement_losses(
        head,
        obs["h"],
        mu_cmd,
        mu_null,
        torch.zeros(16, 7),
        lambda a: a[:, 0],
        bc_trains_primary=False,
    )
    # mu starts at 0 for every command, so refinement mode equals primary mode exactly (shared noise)
    assert terms["reg"].item() == pytest.approx(0.0, abs=1e-10)
    (terms["q"] + terms["reg"]).backward()
    assert all(p.grad is None for p in head.parameters())  # Eq. 9-10 leave theta alone
    assert all(p.requires_grad for p in head.parameters())


def train_toy(steps=400, seed=0):
    """Primary actor: a* = 0.2 h[:3] padded; talk-tweak: operator moves 0.6 along the command."""
    torch.manual_seed(seed)
    head = ConsistencyHead(3, 7, (64, 64), K=1.0)
    refine = RefinementActor(Identity(), 4, 7, (64, 64), mu_max=3.0)
    enc = VocabularyCommandEncoder()
    opt = torch.optim.Adam(list(head.parameters()) + list(refine.parameters()), lr=2e-3)
    commands = ["move left", "move right", "move forward", "move up and backward"]
    shifts = torch.tensor([[0, 0.6, 0], [0, -0.6, 0], [0.6, 0, 0], [-0.6, 0, 0.6]])
    for _ in range(steps):
        h = torch.rand(128, 3) * 2 - 1
        a_star = torch.zeros(128, 7)
        a_star[:, :3] = 0.2 * h
        bc, _ = head.bc_loss(h, a_star)
        idx = torch.randint(0, len(commands), (64,))
        h_t = h[:64]
        a_intv = a_star[:64].clone()
        a_intv[:, :3] += shifts[idx]
        obs = {"h": h_t}
        mu_cmd = refine(obs, enc.encode([commands[i] for i in idx]))
        mu_null = refine(obs, enc.encode(["[null]"] * 64))
        terms = refinement_losses(
            head, h_t, mu_cmd, mu_null, a_intv, lambda a: torch.zeros(a.shape[0])
        )
        loss = bc + terms["bc"] + 0.1 * terms["q"] + 0.1 * terms["reg"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head, refine, enc


def test_refinement_command_moves_the_action_in_the_commanded_direction():
    head, refine, enc = train_toy()
    torch.manual_seed(1)
    h = torch.rand(200, 3) * 2 - 1
    obs = {"h": h}
    with torch.no_grad():
        primary = head(h, deterministic=True)
        base_err = (primary[:, :3] - 0.2 * h).abs().mean()
        assert base_err < 0.1  # the primary actor learned a*
        for command, axis, sign in [
            ("move left", 1, 1),
            ("move right", 1, -1),
            ("move forward", 0, 1),
        ]:
            mu = refine(obs, enc.encode([command] * 200))
            refined = head(h, mu=mu, deterministic=True)
            delta = (refined - primary)[:, axis] * sign
            assert delta.mean() > 0.3, command  # a material move, in the commanded direction
            assert (delta > 0).float().mean() > 0.95
            others = [i for i in range(3) if i != axis]
            assert (refined - primary)[:, others].abs().mean() < 0.15
            assert mu.abs().max() <= 3.0  # bounded mu does the steering
            assert torch.all(
                mu[:, 3:] == 0
            )  # commands are translational: rotation/gripper untouched
        # an unseen combination composes from the per-axis signs
        mu = refine(obs, enc.encode(["move left and up"] * 200))
        d = head(h, mu=mu, deterministic=True) - primary
        assert d[:, 1].mean() > 0.1
        # [null] keeps the primary behaviour (Eq. 10)
        mu_null = refine(obs, enc.encode(["[null]"] * 200))
        assert (head(h, mu=mu_null, deterministic=True) - primary).abs().mean() < 0.1
