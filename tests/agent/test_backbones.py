"""The frozen VLA backbones (``smolvla`` Eq. 17 KV pooling, ``readout``) on tiny configs built here."""

import numpy as np
import pytest
import torch
from support.tiny_vla import pixel_space, random_obs, save_tiny_smolvla, save_tiny_vilt

from daft_agent.backbones.cache import frozen_backbone, parse_spec
from daft_agent.backbones.readout import ReadoutBackbone
from daft_agent.backbones.registry import make_backbone
from daft_agent.backbones.smolvla import SmolVLABackbone, kv_pool, layer_kv
from daft_agent.errors import AgentConfigError, SpaceMismatchError

torch.set_num_threads(1)
UPRIGHT, PICKUP = "place the bolt upright", "pick up the bolt"


@pytest.fixture(scope="module")
def smolvla_dir(tmp_path_factory):
    return save_tiny_smolvla(tmp_path_factory.mktemp("smolvla"))


@pytest.fixture(scope="module")
def vilt_dir(tmp_path_factory):
    return save_tiny_vilt(tmp_path_factory.mktemp("vilt"))


@pytest.fixture(scope="module")
def space():
    return pixel_space()


def test_kv_pool_is_eq17_on_hand_values():
    # B=2, H=1, T=3, D=2; row 0 pools tokens 0 and 1, row 1 only token 2
    k = torch.tensor(
        [[[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], [[[9.0, 9.0], [9.0, 9.0], [5.0, 7.0]]]]
    )
    v = -k
    m = torch.tensor([[1, 1, 0], [0, 0, 1]])
    h = kv_pool(k, v, m)
    expected = torch.tensor([[2.0, 3.0, -2.0, -3.0], [5.0, 7.0, -5.0, -7.0]])
    torch.testing.assert_close(h, expected)


def test_kv_pool_flattens_heads_then_head_dims_keys_before_values():
    # H=2, D=2, T=2, all tokens counted: K_pool[h, d] sits at h * D + d, V after all of K
    k = torch.arange(8.0).reshape(1, 2, 2, 2)  # [h][t][d]
    v = 10 + k
    h = kv_pool(k, v, torch.ones(1, 2))
    k_mean = k.mean(dim=2).reshape(-1)  # (h0d0, h0d1, h1d0, h1d1)
    torch.testing.assert_close(h[0], torch.cat([k_mean, 10 + k_mean]))
    assert h.shape == (1, 2 * 2 * 2)


def test_kv_pool_refuses_an_empty_mask_and_bad_shapes():
    k = torch.ones(1, 1, 2, 2)
    with pytest.raises(AgentConfigError, match="all zeros"):
        kv_pool(k, k, torch.zeros(1, 2))
    with pytest.raises(AgentConfigError, match="prefix mask"):
        kv_pool(k, k, torch.ones(1, 3))


def test_smolvla_backbone_loads_by_spec_with_documented_size(smolvla_dir, space):
    assert parse_spec(f"smolvla:{smolvla_dir}") == ("smolvla", str(smolvla_dir))
    bb = frozen_backbone(f"smolvla:{smolvla_dir}", space)
    assert isinstance(bb, SmolVLABackbone) and bb.frozen
    # 2 * num_key_value_heads (2) * head_dim (32 / 4 heads = 8)
    assert bb.features_dim == 32
    h = bb(random_obs(space, 3))
    assert h.shape == (3, 32) and h.dtype == torch.float32 and torch.isfinite(h).all()


def test_smolvla_prefix_matches_the_vlms_own_image_merge(smolvla_dir, space):
    """H is Eq. 17 over the last layer's cache of the VLM run the way the VLM itself merges images."""
    bb = make_backbone("smolvla", space, path=str(smolvla_dir))
    obs = random_obs(space, 2, seed=3)
    h = bb.encode(obs, [UPRIGHT, PICKUP])

    vlm = bb.model
    pixels = torch.stack([bb._pixels(torch.as_tensor(obs[c])) for c in bb.cameras], 1).contiguous()
    ids, text_mask = bb._tokens([UPRIGHT, PICKUP])
    n_img = vlm.connector(vlm.vision_model(pixel_values=pixels[:, 0]).last_hidden_state).shape[1]
    image_token = vlm.config.image_token_id
    img_ids = torch.full((2, n_img * len(bb.cameras)), image_token)
    input_ids = torch.cat([img_ids, ids], dim=1)
    mask = torch.cat([torch.ones_like(img_ids), text_mask], dim=1)
    with torch.no_grad():
        out = vlm(input_ids=input_ids, attention_mask=mask, pixel_values=pixels, use_cache=True)
    cache = out["cache"] if "cache" in out else out["past_key_values"]
    keys, values = layer_kv(cache, -1)
    torch.testing.assert_close(h, kv_pool(keys, values, mask), rtol=1e-4, atol=1e-5)


def test_smolvla_is_conditioned_on_the_instruction_and_ignores_padding(smolvla_dir, space):
    bb = make_backbone("smolvla", space, path=str(smolvla_dir))
    obs = random_obs(space, 1, seed=1)
    two = {k: np.concatenate([v, v]) for k, v in obs.items()}
    alone = bb.encode(obs, [PICKUP])
    # in a batch with a longer instruction, PICKUP's row is padded: the mask keeps it unchanged
    both = bb.encode(two, [PICKUP, UPRIGHT + " upright upright"])
    torch.testing.assert_close(both[0], alone[0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(both[1], alone[0], atol=1e-4)
    # forward() takes the instruction from task_id
    obs["task_id"] = np.array([1])
    torch.testing.assert_close(bb(obs), alone)


def test_smolvla_is_deterministic_and_its_identity_follows_the_weights(
    smolvla_dir, space, tmp_path
):
    obs = random_obs(space, 2, seed=2)
    a = make_backbone("smolvla", space, path=str(smolvla_dir))
    b = make_backbone("smolvla", space, path=str(smolvla_dir))
    torch.testing.assert_close(a(obs), a(obs), rtol=0, atol=0)
    torch.testing.assert_close(a(obs), b(obs), rtol=0, atol=0)
    assert a.identity() == b.identity()
    other = make_backbone("smolvla", space, path=str(save_tiny_smolvla(tmp_path / "o", seed=1)))
    assert other.identity()["weights_sha256"] != a.identity()["weights_sha256"]
    assert not torch.allclose(other(obs), a(obs))


def test_smolvla_truncates_to_num_vlm_layers_and_pools_the_last_kept(smolvla_dir, space):
    full = make_backbone("smolvla", space, path=str(smolvla_dir))
    one = make_backbone("smolvla", space, path=str(smolvla_dir), num_vlm_layers=1)
    assert len(one.model.text_model.layers) == 1
    obs = random_obs(space, 1)
    assert not torch.allclose(one(obs), full(obs))
    assert one.identity()["options"]["num_vlm_layers"] == 1
    with pytest.raises(AgentConfigError, match="num_vlm_layers"):
        make_backbone("smolvla", space, path=str(smolvla_dir), num_vlm_layers=5)


@pytest.mark.parametrize("name", ["smolvla", "readout"])
def test_frozen_backbone_gets_no_gradient_and_stays_in_eval(name, smolvla_dir, vilt_dir, space):
    path = smolvla_dir if name == "smolvla" else vilt_dir
    bb = make_backbone(name, space, path=str(path))
    bb.train()
    assert not bb.model.training
    assert not any(p.requires_grad for p in bb.parameters())
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    head = torch.nn.Linear(bb.features_dim, 1)
    opt = torch.optim.SGD([*head.parameters(), *bb.parameters()], lr=1.0)
    h = bb(random_obs(space, 2))
    assert not h.requires_grad
    head(h).sum().backward()
    opt.step()
    assert all(p.grad is None for p in bb.parameters())
    assert all(torch.equal(before[k], v) for k, v in bb.state_dict().items())


def test_readout_backbone_is_the_cls_readout_per_camera(vilt_dir, space):
    bb = frozen_backbone(f"readout:{vilt_dir}", space)
    assert isinstance(bb, ReadoutBackbone)
    assert bb.features_dim == 2 * 16  # two cameras x hidden size
    obs = random_obs(space, 2, seed=4)
    h = bb.encode(obs, [UPRIGHT, PICKUP])
    assert h.shape == (2, 32)
    ids, mask = bb._tokens([UPRIGHT, PICKUP])
    for i, cam in enumerate(bb.cameras):  # h_i = tanh(W x_CLS + b) of camera i with the text
        px = bb._pixels(torch.as_tensor(obs[cam]))
        with torch.no_grad():
            out = bb.model(
                input_ids=ids, attention_mask=mask, pixel_values=px, image_token_type_idx=i + 1
            )
            cls = out.last_hidden_state[:, 0]
            readout = torch.tanh(bb.model.pooler.dense(cls))
        torch.testing.assert_close(h[:, 16 * i : 16 * (i + 1)], readout, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bb.encode(obs, [UPRIGHT, PICKUP]), h, rtol=0, atol=0)
    assert not torch.allclose(bb.encode(obs, [PICKUP, PICKUP])[0], h[0], atol=1e-5)


def test_frozen_backbone_errors_name_the_fix(space, tmp_path, smolvla_dir):
    with pytest.raises(AgentConfigError, match="NAME:PATH"):
        parse_spec("smolvla")
    with pytest.raises(AgentConfigError, match="not a frozen backbone.*readout.*smolvla"):
        parse_spec(f"pixels:{tmp_path}")
    with pytest.raises(AgentConfigError, match="local directory"):
        make_backbone("smolvla", space, path=str(tmp_path / "missing"))
    with pytest.raises(AgentConfigError, match="cannot load"):
        make_backbone("smolvla", space, path=str(tmp_path))
    no_cams = pixel_space()
    del no_cams.spaces["wrist_rgb"], no_cams.spaces["head_rgb"]
    with pytest.raises(SpaceMismatchError, match="obs_mode='pixels'"):
        make_backbone("smolvla", no_cams, path=str(smolvla_dir))
