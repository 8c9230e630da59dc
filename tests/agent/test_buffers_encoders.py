"""Buffers and sampling of Algorithm 1; backbones and command encoders."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from daft_agent.buffers import DualActorReplay, split_sizes
from daft_agent.encoders import (
    PixelBackbone,
    StateBackbone,
    T5CommandEncoder,
    VocabularyCommandEncoder,
    command_from_signs,
    embed_episode,
    parse_command,
)
from daft_agent.errors import (
    AgentConfigError,
    EmptyStoreError,
    SpaceMismatchError,
    UnknownCommandError,
)
from daft_env.episode import Episode

torch.set_num_threads(1)
TASKS = ("upright", "pickup", "assemble")


def make_episode(
    task, kind, t_len=10, intervened=None, action_value=0.0, success=True, commands=None
):
    intervened = np.zeros(t_len, bool) if intervened is None else np.asarray(intervened, bool)
    rewards = np.zeros(t_len, np.float32)
    terminated = np.zeros(t_len, bool)
    if success:
        rewards[-1], terminated[-1] = 1.0, True
    return Episode(
        task=task,
        task_id=TASKS.index(task),
        instruction=task,
        kind=kind,
        observations={
            "state": np.random.default_rng(0).normal(size=(t_len + 1, 4)).astype(np.float32),
            "gripper": np.zeros((t_len + 1, 1), np.float32),
            "task_id": np.full(t_len + 1, TASKS.index(task)),
        },
        actions=np.full((t_len, 7), action_value, np.float32),
        policy_actions=np.zeros((t_len, 7), np.float32),
        intervened=intervened,
        rewards=rewards,
        terminated=terminated,
        refinement_commands=commands or ["[null]"] * t_len,
        success=success,
    )


def replay(min_rollouts=100):
    return DualActorReplay(
        TASKS, ("state", "gripper", "task_id"), gamma=0.9, min_rollouts=min_rollouts
    )


def test_split_sizes():
    assert split_sizes(256, 3) == [86, 85, 85]
    assert split_sizes(85, 2) == [43, 42]
    assert split_sizes(7, 4) == [2, 2, 2, 1]
    assert split_sizes(2, 3) == [1, 1, 0]


def test_online_episode_split_per_step_by_intervened_flags():
    r = replay()
    flags = [False, False, True, True, True, False, False, False, False, False]
    cmds = ["[null]", "[null]", "move left", "move left", "move up and left"] + ["[null]"] * 5
    added = r.add_episode(make_episode("pickup", "interventions", intervened=flags, commands=cmds))
    assert added == {"demos": 3, "rollouts": 7, "interventions": 3, "talk_tweak": 3}
    tt = r.talk_tweak.sample(50, np.random.default_rng(0))
    assert set(tt["commands"]) == {"move left", "move up and left"}
    assert set(tt["task_index"].tolist()) == {1}


def test_warmup_draws_b_over_n_from_each_tasks_demos():
    r = replay()
    for i, t in enumerate(TASKS):
        r.add_episode(make_episode(t, "demos", action_value=i + 1))
        r.add_episode(make_episode(t, "rollouts", action_value=-(i + 1)))
    batches = r.sample_warmup(256, np.random.default_rng(0))
    assert [len(b["actions"]) for b in batches] == [86, 85, 85]
    for i, b in enumerate(batches):
        assert np.all(b["actions"] == i + 1)  # demos only, of the right task
        assert np.all(b["task_index"] == i)


def test_interventions_stay_rollouts_when_they_do_not_join_the_demos():
    r = DualActorReplay(
        TASKS, ("state", "gripper", "task_id"), gamma=0.9, interventions_as_demos=False
    )
    flags = [False, True, True, False]
    ep = make_episode("pickup", "interventions", t_len=4, intervened=flags, action_value=0.5)
    added = r.add_episode(ep)
    # every step stays a rollout for the critics; the operator's steps still feed the refinement
    assert added == {"demos": 0, "rollouts": 4, "interventions": 2, "talk_tweak": 2}
    r.add_episode(make_episode("pickup", "demos", t_len=3))
    demos = r.demos["pickup"].sample(64, np.random.default_rng(0))
    assert np.all(demos["actions"] == 0.0)  # only the demonstration's actions are imitated


def test_online_draws_half_demos_half_rollouts_per_task_after_100_rollouts():
    r = replay(min_rollouts=100)
    for i, t in enumerate(TASKS):
        r.add_episode(make_episode(t, "demos", action_value=i + 1))
    for i, t in enumerate(TASKS):
        for _ in range(9):
            r.add_episode(make_episode(t, "rollouts", t_len=11, action_value=-(i + 1)))
    assert not r.ready_for_online()  # 99 rollout transitions each
    for i, t in enumerate(TASKS[:2]):
        r.add_episode(make_episode(t, "rollouts", t_len=1, action_value=-(i + 1)))
    assert not r.ready_for_online()  # the third task is still short
    r.add_episode(make_episode("assemble", "rollouts", t_len=1, action_value=-3))
    assert r.ready_for_online()
    batches = r.sample_online(256, np.random.default_rng(0))
    for i, (b, n) in enumerate(zip(batches, [86, 85, 85], strict=True)):
        a = b["actions"][:, 0]
        assert len(a) == n
        assert (a == i + 1).sum() == split_sizes(n, 2)[0]  # demos
        assert (a == -(i + 1)).sum() == split_sizes(n, 2)[1]  # rollouts


def test_interventions_join_demos_and_mc_returns_are_stored():
    r = replay()
    r.add_episode(
        make_episode("upright", "interventions", t_len=4, intervened=[True] * 4, action_value=7)
    )
    b = r.demos["upright"].sample(100, np.random.default_rng(0))
    assert np.all(b["actions"] == 7)
    assert sorted(set(np.round(b["mc_returns"], 4).tolist())) == pytest.approx(
        [0.729, 0.81, 0.9, 1.0]
    )


def test_empty_store_and_missing_demos_raise(tmp_path):
    from daft_env.store import EpisodeStore

    r = replay()
    assert r.load_from_store(EpisodeStore(tmp_path / "empty")) == 0
    with pytest.raises(EmptyStoreError, match=r"\['upright', 'pickup', 'assemble'\]"):
        r.sample_warmup(8, np.random.default_rng(0))
    r.add_episode(make_episode("upright", "demos"))
    r.add_episode(make_episode("assemble", "demos"))
    with pytest.raises(EmptyStoreError, match=r"no demonstrations for tasks \['pickup'\]"):
        r.sample_warmup(8, np.random.default_rng(0))
    r.add_episode(make_episode("pickup", "demos"))
    assert [len(b["actions"]) for b in r.sample_warmup(8, np.random.default_rng(0))] == [3, 3, 2]
    with pytest.raises(EmptyStoreError, match="'upright' has no rollouts"):
        r.sample_online(8, np.random.default_rng(0))


def test_talk_tweak_sampling_gives_none_while_the_buffer_is_empty():
    r = replay()
    for t in TASKS:
        r.add_episode(make_episode(t, "demos"))
        r.add_episode(make_episode(t, "rollouts", action_value=-1.0))
    assert len(r.talk_tweak) == 0
    assert r.sample_talk_tweak(8, np.random.default_rng(0)) is None
    flags = [False, True, True] + [False] * 7
    cmds = ["[null]", "move up", "move up and left"] + ["[null]"] * 7
    r.add_episode(
        make_episode("assemble", "interventions", intervened=flags, commands=cmds, action_value=0.5)
    )
    batch = r.sample_talk_tweak(8, np.random.default_rng(0))
    assert batch is not None and len(batch["actions"]) == 8
    assert set(batch["commands"]) <= {"move up", "move up and left"}  # only intervened steps
    assert np.all(batch["actions"] == 0.5) and np.all(batch["task_index"] == 2)


def test_buffers_load_from_the_real_episode_store(tmp_path):
    from daft_env.store import EpisodeStore

    store = EpisodeStore(tmp_path / "store")
    for t in TASKS:
        store.add(make_episode(t, "demos"))
    store.add(make_episode("pickup", "interventions", intervened=[True] * 3 + [False] * 7))
    r = replay()
    assert r.load_from_store(store) == 4
    sizes = r.sizes()
    assert (
        sizes["pickup/demos"] == 13 and sizes["pickup/rollouts"] == 7 and sizes["talk_tweak"] == 3
    )


def test_episode_from_another_obs_mode_is_refused():
    r = DualActorReplay(TASKS, ("wrist_rgb", "gripper"), gamma=0.9)
    with pytest.raises(SpaceMismatchError, match="wrist_rgb"):
        r.add_episode(make_episode("upright", "demos"))


# ---------------------------------------------------------------- command encoders


@pytest.mark.parametrize(
    "phrase, signs",
    [
        ("move right and forward", [1, -1, 0]),
        ("move forward and right", [1, -1, 0]),
        ("move up", [0, 0, 1]),
        ("move down and backward and left", [-1, 1, -1]),
        ("move to the left", [0, 1, 0]),
        ("[null]", [0, 0, 0]),
        (None, [0, 0, 0]),
    ],
)
def test_parse_command_is_order_independent(phrase, signs):
    assert parse_command(phrase).tolist() == signs


def test_command_round_trip_and_errors():
    for signs in ([1, 0, 0], [0, -1, 1], [-1, 1, -1], [0, 0, 0]):
        assert parse_command(command_from_signs(signs)).tolist() == signs
    with pytest.raises(UnknownCommandError, match="'sideways'.*valid words are"):
        parse_command("move sideways")
    with pytest.raises(UnknownCommandError, match="twice"):
        parse_command("move left and right")
    enc = VocabularyCommandEncoder()
    with pytest.raises(UnknownCommandError):
        enc.encode(["rotate clockwise"])
    lenient = VocabularyCommandEncoder(on_unknown="null")
    with pytest.warns(UserWarning, match="unknown refinement command"):
        v = lenient.encode(["rotate clockwise"])
    assert v.tolist() == [[0, 0, 0, 1]]
    assert enc.encode(["move left", "[null]"]).tolist() == [[0, 1, 0, 0], [0, 0, 0, 1]]
    with pytest.raises(AgentConfigError):
        VocabularyCommandEncoder(on_unknown="ignore")


def test_t5_command_encoder_from_a_local_tiny_model(tmp_path):
    import transformers  # a dev requirement: the T5 encoder must be tested, not skipped
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = [
        "<pad>",
        "</s>",
        "<unk>",
        "[null]",
        "move",
        "and",
        "left",
        "right",
        "forward",
        "backward",
        "up",
        "down",
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(tmp_path)
    cfg = transformers.T5Config(
        vocab_size=len(words),
        d_model=16,
        d_kv=4,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    transformers.T5EncoderModel(cfg).save_pretrained(tmp_path)

    enc = T5CommandEncoder(str(tmp_path))
    assert enc.dim == 16
    v = enc.encode(["move left", "move right", "[null]", None])
    assert v.shape == (4, 16)
    assert not torch.allclose(v[0], v[1])
    assert torch.allclose(v[2], v[3])  # None means [null]
    with pytest.raises(AgentConfigError, match="no T5 model"):
        T5CommandEncoder(str(tmp_path / "missing"))


# ---------------------------------------------------------------- backbones


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


def test_interventions_are_imitated_with_the_operators_intended_action():
    r = replay()
    flags = np.array([False, True, True, False])
    ep = make_episode("assemble", "interventions", t_len=4, intervened=flags, action_value=0.1)
    ep.intended_actions = ep.actions.copy()
    ep.intended_actions[flags] = 0.9  # the plan; the executed command ramped up from rest
    added = r.add_episode(ep)
    assert added["demos"] == 2 and added["rollouts"] == 2
    demos = r.demos["assemble"].sample(64, np.random.default_rng(0))
    np.testing.assert_allclose(demos["labels"], 0.9)  # imitation learns the plan...
    np.testing.assert_allclose(demos["actions"], 0.1)  # ...the critics what was executed
    tt = r.talk_tweak.sample(16, np.random.default_rng(0))
    np.testing.assert_allclose(tt["labels"], 0.9)
    rollouts = r.rollouts["assemble"].sample(16, np.random.default_rng(0))
    np.testing.assert_allclose(rollouts["labels"], rollouts["actions"])


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


def test_frozen_backbone_embeddings_are_cached_on_the_episode():
    class Frozen(torch.nn.Module):
        frozen = True
        features_dim = 3

        def forward(self, obs):
            return obs["state"][:, :3].float() * 2

    ep = make_episode("upright", "demos", t_len=5)
    emb = embed_episode(Frozen(), ep, batch_size=2)
    assert emb.shape == (6, 3) and ep.embeddings is emb
    assert np.allclose(emb, ep.observations["state"][:, :3] * 2)
    space = spaces.Dict({"state": spaces.Box(-1, 1, (4,)), "gripper": spaces.Box(0, 1, (1,))})
    with pytest.raises(AgentConfigError, match="trainable"):
        embed_episode(StateBackbone(space), ep)
    r = DualActorReplay(TASKS, ("embedding",), gamma=0.9)
    r.add_episode(ep)
    assert r.demos["upright"].sample(4, np.random.default_rng(0))["obs"]["embedding"].shape == (
        4,
        3,
    )
