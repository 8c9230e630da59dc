"""The trainable backbones h = V(s, l_task), Eq. 3 (daft_agent.backbones.trainable)."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from daft_agent.backbones.trainable import PixelBackbone, StateBackbone
from daft_agent.errors import AgentConfigError, SpaceMismatchError

torch.set_num_threads(1)


def test_state_backbone_normalises_and_embeds_task():
    space = spaces.Dict(
        {
            "state": spaces.Box(-10, 10, (5,)),
            "gripper": spaces.Box(0, 1, (1,)),
            "task_id": spaces.Discrete(3),
        }
    )
    bb = StateBackbone(space, task_embedding_dim=4)
    data = {
        "state": np.random.default_rng(0).normal(3.0, 2.0, (100, 5)),
        "gripper": np.ones((100, 1)),
    }
    bb.fit_normalizer(data)
    obs = {
        "state": torch.as_tensor(data["state"]).float(),
        "gripper": torch.ones(100, 1),
        "task_id": torch.zeros(100),
    }
    h = bb(obs)
    assert h.shape == (100, bb.features_dim) == (100, 10)
    assert h[:, :5].mean().abs() < 0.1 and (h[:, :5].std() - 1).abs() < 0.1
    with pytest.raises(SpaceMismatchError, match="state"):
        StateBackbone(spaces.Dict({"gripper": spaces.Box(0, 1, (1,))}))


def test_millimetre_features_resolve_millimetres_after_the_normaliser_is_fitted():
    from daft_env.spaces import STATE_DIM, STATE_SLICES

    space = spaces.Dict(
        {"state": spaces.Box(-10, 10, (STATE_DIM,)), "gripper": spaces.Box(0, 1, (1,))}
    )
    rng = np.random.default_rng(0)
    demos = rng.normal(0.0, 0.05, (500, STATE_DIM)).astype(np.float32)  # positions over ~5 cm
    bb = StateBackbone(space, task_embedding_dim=2)
    bb.fit_normalizer({"state": demos, "gripper": np.zeros((500, 1))})

    def features(bolt_minus_slot_mm: float) -> torch.Tensor:
        s = np.zeros((1, STATE_DIM), np.float32)
        s[0, STATE_SLICES["bolt_pos"]] = (0.5 + bolt_minus_slot_mm / 1000, 0.0, 0.0)
        s[0, STATE_SLICES["slot_pos"]] = (0.5, 0.0, 0.0)
        with torch.no_grad():
            return bb({"state": torch.as_tensor(s), "gripper": torch.zeros(1, 1)})[0]

    # 1 mm of slot - bolt moves its millimetre feature by tanh(0.2) ~ 0.2, standardised over
    # 5 cm the plain difference moves by about 0.03
    a, b = features(0.0), features(1.0)
    fine_x = STATE_DIM + 1 + 6 + 3  # the slot - bolt pair's x among the millimetre features
    assert abs(float(a[fine_x] - b[fine_x])) == pytest.approx(np.tanh(0.2), rel=1e-3)
    assert abs(float(a[STATE_DIM + 1 + 3] - b[STATE_DIM + 1 + 3])) < 0.05
    no_fine = StateBackbone(space, fine_scale=0)
    assert no_fine.in_dim == bb.in_dim - 6


def test_relative_state_features_are_the_experts_quantities():
    from daft_env.spaces import STATE_DIM, STATE_LAYOUT

    space = spaces.Dict(
        {
            "state": spaces.Box(-10, 10, (STATE_DIM,)),
            "gripper": spaces.Box(0, 1, (1,)),
            "task_id": spaces.Discrete(3),
        }
    )
    offsets, i = {}, 0
    for name, n in STATE_LAYOUT:
        offsets[name] = i
        i += n
    state = np.zeros((1, STATE_DIM), np.float32)
    for name, v in (
        ("tcp_pos", (0.1, 0, 0.2)),
        ("bolt_pos", (0.3, 0, 0)),
        ("slot_pos", (0.5, 0.1, 0)),
    ):
        state[0, offsets[name] : offsets[name] + 3] = v
    bb = StateBackbone(space, task_embedding_dim=2)  # DAFT's layout: relative by default
    assert bb.relative and bb.features_dim == STATE_DIM + 1 + 6 + 6 + 2
    h = bb({"state": torch.as_tensor(state), "gripper": torch.zeros(1, 1)})
    extra = h[0, STATE_DIM + 1 : STATE_DIM + 7]  # the normaliser is still the identity
    torch.testing.assert_close(extra, torch.tensor([0.2, 0, -0.2, 0.2, 0.1, 0]))
    fine = h[0, STATE_DIM + 7 : STATE_DIM + 13]  # tanh(delta / 5 mm): saturated at 10 cm
    torch.testing.assert_close(fine, torch.tanh(torch.tensor([0.2, 0, -0.2, 0.2, 0.1, 0]) / 0.005))
    assert not StateBackbone(space, relative=False).relative
    other = spaces.Dict({"state": spaces.Box(-1, 1, (5,)), "gripper": spaces.Box(0, 1, (1,))})
    assert not StateBackbone(other).relative  # another layout: plain state
    with pytest.raises(AgentConfigError, match="state layout"):
        StateBackbone(other, relative=True)


def test_pixel_backbone_accepts_channel_last_and_first():
    space = spaces.Dict(
        {
            "wrist_rgb": spaces.Box(0, 255, (32, 32, 3), np.uint8),
            "head_rgb": spaces.Box(0, 255, (64, 64, 3), np.uint8),
            "gripper": spaces.Box(0, 1, (1,)),
            "task_id": spaces.Discrete(3),
        }
    )
    bb = PixelBackbone(space, image_features=8, channels=4)
    w = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    hd = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    obs = {
        "wrist_rgb": w,
        "head_rgb": hd,
        "gripper": torch.zeros(2, 1),
        "task_id": torch.tensor([0, 2]),
    }
    h1 = bb(obs)
    h2 = bb({**obs, "wrist_rgb": w.permute(0, 3, 1, 2), "head_rgb": hd.permute(0, 3, 1, 2)})
    assert h1.shape == (2, bb.features_dim) and torch.allclose(h1, h2)
