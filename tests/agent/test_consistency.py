"""The consistency policy head (Eq. 1, 2, 5): Karras levels, boundary scalings, one-step acting."""

import pytest
import torch

from daft_agent.consistency import ConsistencyHead, boundary_scalings, karras_sigmas
from daft_agent.errors import AgentConfigError

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


def test_acting_at_sigma_k_is_the_consistency_function_at_k():
    """act_from_noise's precomputed sigma = K constants give exactly clip(f(w, K, h), -1, 1)."""
    torch.manual_seed(0)
    head = ConsistencyHead(5, 7, (16, 16), K=1.5)
    h, w = torch.randn(9, 5), 2.0 * torch.randn(9, 7)
    expected = head.denoise(w, torch.full((9,), 1.5), h).clamp(-1.0, 1.0)
    torch.testing.assert_close(head.act_from_noise(h, w), expected, rtol=1e-6, atol=1e-6)
