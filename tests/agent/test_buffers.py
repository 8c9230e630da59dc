"""Buffers and sampling of Algorithm 1 (daft_agent.buffers)."""

import numpy as np
import pytest
import torch

from daft_agent.buffers import DualActorReplay, split_sizes
from daft_agent.errors import EmptyStoreError, SpaceMismatchError
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


def test_cached_embeddings_are_the_buffers_observation():
    ep = make_episode("upright", "demos", t_len=5)
    ep.embeddings = ep.observations["state"][:, :3] * 2  # what a frozen backbone cached
    r = DualActorReplay(TASKS, ("embedding",), gamma=0.9)
    r.add_episode(ep)
    emb = r.demos["upright"].sample(4, np.random.default_rng(0))["obs"]["embedding"]
    assert emb.shape == (4, 3)
