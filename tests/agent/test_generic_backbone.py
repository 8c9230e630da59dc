"""The generic backbone: any Dict observation, each key by its space (daft_agent.backbones.generic)."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from daft_agent.backbones.generic import GenericBackbone, classify_space
from daft_agent.backbones.registry import make_backbone
from daft_agent.commands import VocabularyCommandEncoder
from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_agent.policies import DualActorPolicy, obs_as_tensors

torch.set_num_threads(1)
SMALL = dict(image_features=8, channels=4, task_embedding_dim=3)


def mixed_space(image_shape=(16, 16, 3)):
    return spaces.Dict(
        {
            "joints": spaces.Box(-5, 5, (3,), np.float32),
            "pose": spaces.Box(-np.inf, np.inf, (2, 2), np.float64),
            "camera": spaces.Box(0, 255, image_shape, np.uint8),
            "mode": spaces.Discrete(3, start=1),
            "grid": spaces.MultiDiscrete([2, 4]),
            "contacts": spaces.MultiBinary(2),
            "task_id": spaces.Discrete(4),
        }
    )


def sample_batch(space, n, seed=0):
    space.seed(seed)
    rows = [space.sample() for _ in range(n)]
    return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in space.spaces}


def tensors(space, batch):
    return obs_as_tensors(batch, space)[0]


def test_keys_are_classified_by_their_space_and_features_dim_is_exact():
    space = mixed_space()
    bb = make_backbone("generic", space, **SMALL)
    assert isinstance(bb, GenericBackbone) and not bb.frozen
    assert bb.kinds == {
        "camera": "image",
        "contacts": "binary",
        "grid": "onehot",
        "joints": "vector",
        "mode": "onehot",
        "pose": "vector",
        "task_id": "task",
    }
    # vector 3 + 4, one-hot 3 + (2 + 4), binary 2, one camera 8, task embedding 3
    assert bb.features_dim == 7 + 9 + 2 + 8 + 3
    h = bb(tensors(space, sample_batch(space, 5)))
    assert h.shape == (5, bb.features_dim)
    # the one-hot block holds exactly one 1 per Discrete component
    onehot = h[:, 7:16]
    assert torch.equal(onehot.sum(1), torch.full((5,), 3.0))
    # small or float "images" are vectors; big ones are pooled automatically
    assert classify_space("x", spaces.Box(0, 255, (8, 8, 3), np.uint8)) == "vector"
    assert classify_space("x", spaces.Box(0, 1, (16, 16, 3), np.float32)) == "vector"
    big = GenericBackbone(spaces.Dict({"img": spaces.Box(0, 255, (3, 128, 128), np.uint8)}))
    assert big.towers[0].downsample == 2 and big.features_dim == 64


def test_a_box_only_env_wrapped_as_observation_gets_vector_features():
    space = spaces.Dict({"observation": spaces.Box(-1, 1, (5,), np.float32)})
    bb = GenericBackbone(space)
    assert bb.features_dim == 5
    assert bb(tensors(space, sample_batch(space, 2))).shape == (2, 5)


def test_the_normaliser_standardises_the_fitted_data_and_survives_a_state_dict_round_trip():
    space = mixed_space()
    rng = np.random.default_rng(0)
    batch = sample_batch(space, 200)
    batch["joints"] = rng.normal(3.0, 2.0, (200, 3)).astype(np.float32)
    batch["pose"] = rng.normal(-1.0, 0.5, (200, 2, 2))
    bb = GenericBackbone(space, **SMALL)
    obs = tensors(space, batch)
    with torch.no_grad():
        raw = bb(obs)[:, :7]  # identity before any fit
    assert torch.allclose(raw[:, :3], obs["joints"].float())
    bb.fit_normalizer(batch)  # the full obs dict: images and discrete keys are ignored
    with torch.no_grad():
        x = bb(obs)[:, :7]
    assert x.mean(0).abs().max() < 1e-4 and (x.std(0, unbiased=False) - 1).abs().max() < 1e-4
    # a dimension constant in the demonstrations: std floored, not divided by zero
    const = {**batch, "joints": np.ones((200, 3), np.float32)}
    GenericBackbone(space, **SMALL).fit_normalizer(const)

    fresh = GenericBackbone(space, **SMALL)
    fresh.load_state_dict(bb.state_dict())
    assert torch.equal(fresh.obs_mean, bb.obs_mean) and torch.equal(fresh.obs_std, bb.obs_std)
    with torch.no_grad():
        assert torch.allclose(fresh(obs), bb(obs))
    with pytest.raises(SpaceMismatchError, match="'pose'"):
        fresh.fit_normalizer({"joints": batch["joints"]})


def test_channel_first_and_channel_last_images_give_the_same_features():
    for channels in (1, 3, 4):
        last = spaces.Dict({"cam": spaces.Box(0, 255, (16, 20, channels), np.uint8)})
        bb = GenericBackbone(last, **SMALL)
        img = torch.randint(0, 256, (3, 16, 20, channels), dtype=torch.uint8)
        with torch.no_grad():
            a = bb({"cam": img})
            b = bb({"cam": img.permute(0, 3, 1, 2).contiguous()})
        assert a.shape == (3, 8) and torch.allclose(a, b)
        with pytest.raises(SpaceMismatchError, match="'cam' has shape"):
            bb({"cam": img[:, :8]})
    # a channel-first space, fed channel-last
    first = spaces.Dict({"cam": spaces.Box(0, 255, (3, 16, 16), np.uint8)})
    bb = GenericBackbone(first, **SMALL)
    img = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(bb({"cam": img}), bb({"cam": img.permute(0, 2, 3, 1)}))


def test_the_task_embedding_differs_per_task_id():
    space = spaces.Dict({"x": spaces.Box(-1, 1, (2,)), "task_id": spaces.Discrete(3)})
    bb = GenericBackbone(space, task_embedding_dim=4)
    obs = {"x": torch.zeros(3, 2), "task_id": torch.arange(3)}
    with torch.no_grad():
        h = bb(obs)
    assert h.shape == (3, 6)
    emb = h[:, 2:]
    assert not torch.allclose(emb[0], emb[1]) and not torch.allclose(emb[1], emb[2])
    assert torch.equal(emb, bb.task_embedding.weight.detach())


@pytest.mark.parametrize(
    ("key", "space"),
    [
        ("note", spaces.Text(8)),
        ("nested", spaces.Dict({"a": spaces.Box(-1, 1, (2,))})),
        ("pair", spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2)))),
        ("points", spaces.Sequence(spaces.Box(-1, 1, (2,)))),
        ("task_id", spaces.Box(0, 3, (1,))),
    ],
)
def test_an_unsupported_space_names_the_key_and_the_fix(key, space):
    obs = spaces.Dict({"x": spaces.Box(-1, 1, (2,)), key: space})
    with pytest.raises(SpaceMismatchError, match=rf"key '{key}'.*Fix:.*register_backbone"):
        GenericBackbone(obs)
    assert GenericBackbone(obs, keys=["x"]).features_dim == 2  # left out: no error


def test_bad_settings_are_clear_errors():
    space = mixed_space()
    with pytest.raises(SpaceMismatchError, match=r"unknown \['jionts'\].*valid.*'joints'"):
        GenericBackbone(space, keys=["jionts"])
    with pytest.raises(SpaceMismatchError, match="observation"):
        GenericBackbone(spaces.Box(-1, 1, (3,)))
    with pytest.raises(AgentConfigError, match="downsample"):
        GenericBackbone(space, downsample=32)
    with pytest.raises(AgentConfigError, match="image_features"):
        GenericBackbone(space, image_features=0)
    assert GenericBackbone(space, keys="joints").features_dim == 3
    floats = spaces.Dict({"img": spaces.Box(0, 1, (64, 64, 3), np.float32)})
    with pytest.warns(UserWarning, match="'img'.*12288-d vector.*uint8"):
        GenericBackbone(floats)


def test_a_dual_actor_policy_on_a_generic_backbone_acts_and_its_bc_loss_trains_the_cnn():
    space = mixed_space()
    torch.manual_seed(0)
    policy = DualActorPolicy(
        space,
        spaces.Box(-1, 1, (4,), np.float32),
        lambda _: 1e-3,
        tasks=("a", "b", "c", "d"),
        command_dim=VocabularyCommandEncoder().dim,
        backbone="generic",
        backbone_kwargs=SMALL,
        actor_hidden=(16,),
        critic_hidden=(16,),
        refinement_hidden=(16,),
    )
    batch = sample_batch(space, 6)
    policy.fit_normalizers(batch)
    obs = tensors(space, batch)
    assert policy.act(obs).shape == (6, 4)
    commands = VocabularyCommandEncoder().encode(["move left"] * 6)
    assert policy.act(obs, commands).shape == (6, 4)

    actor = policy.actor
    conv = actor.backbone.towers[0].net[0].weight
    before = conv.detach().clone()
    loss, _ = actor.head.bc_loss(actor.backbone(obs), torch.zeros(6, 4))
    actor.optimizer.zero_grad()
    loss.backward()
    actor.optimizer.step()
    assert not torch.equal(conv.detach(), before)


def test_a_dual_actor_agent_learns_saves_and_loads_on_the_generic_backbone(tmp_path):
    from support.learner_fixtures import TINY_NETS
    from support.toy_env import ToyBoltEnv, fill_store_with_demos, toy_hil_env

    from daft_agent import DualActorAgent
    from daft_env.store import EpisodeStore

    env = toy_hil_env(ToyBoltEnv(obs_mode="pixels", image_shapes=((16, 16, 3), (32, 32, 3))))
    store = EpisodeStore(tmp_path / "store")
    fill_store_with_demos(store, env, 2)
    network = {**TINY_NETS, "backbone": "generic", "backbone_kwargs": SMALL}
    agent = DualActorAgent(
        env=env, store=store, warmup_steps=5, batch_size=8, seed=0, policy_kwargs=network
    )
    agent.learn(20)
    bb = agent.policy.actor.backbone
    assert bb.kinds == {
        "gripper": "vector",
        "head_rgb": "image",
        "task_id": "task",
        "wrist_rgb": "image",
    }
    assert agent.normalizer_fitted and not torch.equal(bb.obs_std, torch.ones(1))
    agent.save(tmp_path / "agent.zip")
    loaded = DualActorAgent.load(tmp_path / "agent.zip", env=env)
    assert torch.equal(loaded.policy.actor.backbone.obs_mean, bb.obs_mean)
    obs, _ = env.reset(seed=1)
    a, _ = agent.predict(obs, deterministic=True)
    b, _ = loaded.predict(obs, deterministic=True)
    assert a.shape == (7,) and np.allclose(a, b, atol=1e-6)
