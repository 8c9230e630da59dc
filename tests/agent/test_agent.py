"""DualActorAgent: learn, callbacks, evaluate_policy, save/load, resume, clear errors."""

import dataclasses
import inspect
import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from support.toy_env import ToyBoltEnv, fill_store_with_demos, toy_hil_env

from daft_agent import DualActorAgent
from daft_agent.errors import AgentConfigError, CheckpointError, EmptyStoreError, SpaceMismatchError
from daft_agent.update import LearnerConfig
from daft_env.store import EpisodeStore

torch.set_num_threads(1)

TINY_NETS = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), refinement_hidden=(32,))
SMALL = dict(
    policy_kwargs=TINY_NETS,
    batch_size=32,
    refinement_batch_size=16,
    min_rollouts_per_task=10,
    warmup_steps=20,
    seed=0,
)


@pytest.fixture
def store(tmp_path):
    s = EpisodeStore(tmp_path / "store")
    fill_store_with_demos(s, ToyBoltEnv(), 3)
    return s


def make_agent(store, **kw):
    return DualActorAgent(env=toy_hil_env(seed=0), store=store, **{**SMALL, **kw})


class CountingCallback(BaseCallback):
    def __init__(self, stop_at=None):
        super().__init__()
        self.calls = 0
        self.started = self.ended = False
        self.stop_at = stop_at
        self.stopped_on_done = None

    def _on_training_start(self):
        self.started = True

    def _on_step(self):
        self.calls += 1
        assert "infos" in self.locals and "dones" in self.locals
        if self.stop_at == "first_done" and self.locals["dones"][0]:
            self.stopped_on_done = self.locals["infos"][0]
            return False
        return not isinstance(self.stop_at, int) or self.calls < self.stop_at

    def _on_training_end(self):
        self.ended = True


def test_import_from_the_package():
    import daft_agent
    from daft_agent.agent import DualActorAgent as direct

    assert daft_agent.DualActorAgent is direct


def test_tiny_end_to_end_learn_with_callbacks_and_evaluate_policy(store):
    agent = make_agent(store)
    cb = CountingCallback()
    agent.learn(300, callback=cb)
    assert cb.started and cb.ended and cb.calls == 300
    assert agent.num_timesteps == 300 and agent.online_env_steps == 300
    assert agent.warmup_updates_done == 20
    assert agent.online_updates_done > 0  # the learner thread ran concurrently
    sizes = agent.replay.sizes()
    assert all(sizes[f"{t}/rollouts"] > 0 for t in agent.tasks)
    online = [ep for ep in store.episodes() if ep.kind != "demos"]
    assert store.count(kind="demos") == 9 and len(online) == agent._episode_num > 0
    assert all(isinstance(ep.metadata["weights_version"], int) for ep in online)
    mean, _ = evaluate_policy(agent, ToyBoltEnv(), n_eval_episodes=3)
    assert 0.0 <= mean <= 1.0  # sparse 0/1 rewards: the mean return is a success rate
    # a callback returning False stops training
    stopper = CountingCallback(stop_at=5)
    agent.learn(100, callback=stopper, reset_num_timesteps=False)
    assert stopper.calls == 5 and agent.num_timesteps == 305


def test_the_episode_ending_on_a_callback_stop_is_stored(store):
    agent = make_agent(store, warmup_steps=2)
    before = store.count()
    stopper = CountingCallback(stop_at="first_done")
    agent.learn(500, callback=stopper)
    assert stopper.stopped_on_done is not None  # it stopped on the step that ended an episode
    assert store.count() == before + 1 and agent.episode_queue.empty()
    (online,) = [ep for ep in store.episodes() if ep.kind != "demos"]
    assert len(online) == stopper.calls


def _pickup_store(tmp_path, n):
    from daft_env.demos import collect_demos

    store = EpisodeStore(tmp_path / "store")
    collect_demos(store, "BoltPickup-Sim-v0", "pickup", n, "state", progress=False)
    return store


def test_single_task_env_names_its_task_and_learn_stores_online_episodes(tmp_path):
    import daft_env  # noqa: F401  (registers the ids)

    store = _pickup_store(tmp_path, 1)
    env = gym.make("BoltPickup-Sim-v0", obs_mode="state")
    agent = DualActorAgent("MultiInputPolicy", env, store=store, **{**SMALL, "warmup_steps": 3})
    assert agent.tasks == ("pickup",)
    agent.learn(60)
    online = [ep for ep in store.episodes() if ep.kind != "demos"]
    assert online, "no online episode reached the store"
    # the store's global task id (pickup is task 1), not the agent's local index 0
    assert all(ep.task == "pickup" and ep.task_id == 1 for ep in online)


def test_predict_shapes_and_command_mode(store):
    agent = make_agent(store)
    env = ToyBoltEnv()
    obs, _ = env.reset(seed=0)
    a, state = agent.predict(obs)
    assert a.shape == (7,) and state is None and np.abs(a).max() <= 1
    batch = {k: np.stack([np.asarray(v)] * 4) for k, v in obs.items()}
    assert agent.predict(batch, deterministic=True)[0].shape == (4, 7)
    # an untrained refinement actor outputs mu = 0: refinement mode equals primary mode
    a1, _ = agent.predict(obs, deterministic=True)
    a2, _ = agent.predict(obs, deterministic=True, command="move left")
    assert np.allclose(a1, a2)
    # predict is DualActorPolicy.act: rows without a command act in primary mode (mu = 0)
    with torch.no_grad():
        agent.policy.refinement.head[-1].bias.fill_(1.0)
    cmds = ["move up", None, "move left", None]
    out = agent.predict(batch, deterministic=True, command=cmds)[0]
    primary = agent.predict(batch, deterministic=True)[0]
    assert np.array_equal(out[[1, 3]], primary[[1, 3]])
    assert not np.allclose(out[[0, 2]], primary[[0, 2]])


def test_network_settings_go_through_policy_kwargs(store):
    agent = make_agent(store, policy_kwargs={**TINY_NETS, "critic_hidden": (24,), "n_critics": 3})
    net = agent.policy.net
    assert net.critic_hidden == (24,) and net.n_critics == 3 and net.actor_hidden == (32, 32)
    assert agent.policy.critics.n_critics == 3
    widths = [m.out_features for m in agent.policy.actor.head.net if isinstance(m, torch.nn.Linear)]
    assert widths[:-1] == [32, 32]  # the head's hidden layers, then the 7-d output
    with pytest.raises(AgentConfigError, match="policy_kwargs takes"):
        make_agent(store, policy_kwargs={"actor_hiden": (8,)})
    with pytest.raises(TypeError):  # widths are no longer agent arguments
        make_agent(store, actor_hidden=(8,))


def test_every_learner_setting_is_an_agent_argument_with_its_default():
    params = inspect.signature(DualActorAgent.__init__).parameters
    for f in dataclasses.fields(LearnerConfig):
        if f.name == "lambdas":
            assert {"lambda_warmup", "lambda_online"} <= set(params)
            continue
        assert f.name in params, f"LearnerConfig.{f.name} is not a DualActorAgent argument"
        assert params[f.name].default == f.default


def test_rescued_episodes_count_as_success_but_not_as_autonomous_success(store):
    agent = make_agent(store)
    ep = next(store.episodes(kind="demos"))
    rescued = dataclasses.replace(ep, kind="interventions", intervened=np.ones(len(ep), bool))
    alone = dataclasses.replace(ep, kind="rollouts")
    agent.add_episode(rescued, to_store=False)
    agent.add_episode(alone, to_store=False)
    assert agent.success_rates()[ep.task] == 1.0
    assert agent.success_rates(autonomous=True)[ep.task] == 0.5


def test_save_load_gives_identical_predictions_and_optimisers(store, tmp_path):
    agent = make_agent(store)
    agent.learn(150)
    path = tmp_path / "ckpt.zip"
    agent.save(path)
    loaded = DualActorAgent.load(path, env=toy_hil_env(), store=store)
    obs, _ = ToyBoltEnv().reset(seed=3)
    for cmd in (None, "move left and up"):
        assert np.array_equal(
            agent.predict(obs, deterministic=True, command=cmd)[0],
            loaded.predict(obs, deterministic=True, command=cmd)[0],
        )
    torch.manual_seed(7)
    s1 = agent.predict(obs)[0]
    torch.manual_seed(7)
    assert np.array_equal(s1, loaded.predict(obs)[0])
    for name in ("actor", "refinement", "critics"):
        o1 = getattr(agent.policy, name).optimizer.state_dict()["state"]
        o2 = getattr(loaded.policy, name).optimizer.state_dict()["state"]
        assert o1.keys() == o2.keys() and len(o1) > 0
        assert all(torch.equal(o1[k]["exp_avg"], o2[k]["exp_avg"]) for k in o1)
    assert (
        loaded.policy.critics.keys()
        == agent.policy.critics.keys()
        == {"upright", "pickup", "assemble"}
    )
    assert loaded.policy.net == agent.policy.net


def test_resume_continues_step_count_and_buffers(tmp_path):
    store = EpisodeStore(tmp_path / "store")
    fill_store_with_demos(store, ToyBoltEnv(), 3)
    agent = make_agent(store)
    agent.learn(200)
    agent.save(tmp_path / "ckpt.zip")
    sizes = agent.replay.sizes()
    n_updates = agent.online_updates_done

    reopened = EpisodeStore(tmp_path / "store")  # as after a restart
    resumed = DualActorAgent.load(tmp_path / "ckpt.zip", env=toy_hil_env(), store=reopened)
    assert resumed.num_timesteps == 200 and resumed.online_updates_done == n_updates
    assert resumed.warmup_updates_done == 20 and resumed.normalizer_fitted
    resumed.load_buffers()
    assert resumed.replay.sizes() == sizes  # every stored episode is back in its buffer
    resumed.learn(100, reset_num_timesteps=False)
    assert resumed.num_timesteps == 300 and resumed.online_env_steps == 300
    assert resumed.warmup_updates_done == 20  # no second warm-up
    assert resumed.online_updates_done > n_updates


def test_checkpoint_from_another_config_or_env_is_refused(store, tmp_path):
    agent = make_agent(store, warmup_steps=0)
    agent.save(tmp_path / "ckpt.zip")
    with pytest.raises(CheckpointError, match="another configuration"):
        DualActorAgent.load(tmp_path / "ckpt.zip", policy_kwargs={"actor_hidden": (64, 64)})
    with pytest.raises(CheckpointError, match="other spaces|another configuration"):
        DualActorAgent.load(tmp_path / "ckpt.zip", env=ToyBoltEnv(tasks=("upright", "pickup")))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        DualActorAgent.load(tmp_path / "missing.zip")


def _rewrite_zip(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, edit(item.filename, zin.read(item.filename)))


def test_checkpoint_of_the_old_layout_names_both_versions(store, tmp_path):
    agent = make_agent(store, warmup_steps=0)
    agent.save(tmp_path / "new.zip")

    def old_layout(name, raw):
        if name != "data":
            return raw
        data = json.loads(raw)
        del data["checkpoint_format"]  # what checkpoints before format 2 looked like
        return json.dumps(data).encode()

    _rewrite_zip(tmp_path / "new.zip", tmp_path / "old.zip", old_layout)
    with pytest.raises(CheckpointError, match="format version none.*reads format 4.*policy_kwargs"):
        DualActorAgent.load(tmp_path / "old.zip")


def test_corrupt_checkpoint_is_reported_as_corrupt_naming_the_member(store, tmp_path):
    agent = make_agent(store, warmup_steps=0)
    path = tmp_path / "ckpt.zip"
    agent.save(path)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("policy.actor.optimizer.pth")
    # flip a byte inside the member's data (past its local header)
    raw[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt.*'policy.actor.optimizer.pth'.*CRC"):
        DualActorAgent.load(bad)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CheckpointError, match="corrupt"):
        DualActorAgent.load(truncated)


def test_a_failed_save_keeps_the_previous_checkpoint(store, tmp_path, monkeypatch):
    agent = make_agent(store, warmup_steps=0)
    path = tmp_path / "ckpt.zip"
    agent.save(path)
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        agent.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ckpt")] == []


class SixDofEnv(ToyBoltEnv):
    def __init__(self):
        super().__init__()
        self.action_space = spaces.Box(-1, 1, (6,), np.float32)


def test_env_with_wrong_spaces_is_refused():
    # any bounded Box action is taken (issue 20); one without translation axes runs without
    # commands, said once
    with pytest.warns(UserWarning, match="commands are off|no translation axes"):
        six = DualActorAgent(env=SixDofEnv(), policy_kwargs={"actor_hidden": (8,)})
    assert six.action_space.shape == (6,) and not six.action_layout.enabled

    class DiscreteAction(ToyBoltEnv):
        def __init__(self):
            super().__init__()
            self.action_space = spaces.Discrete(4)

    with pytest.raises(SpaceMismatchError, match="continuous action"):
        DualActorAgent(env=DiscreteAction())
    with pytest.raises(SpaceMismatchError, match="obs_mode='state'"):
        DualActorAgent(
            env=ToyBoltEnv(obs_mode="pixels", image_shapes=((16, 16, 3), (32, 32, 3))),
            policy_kwargs={"backbone": "state"},
        )

    class FlatObs(gym.Env):
        observation_space = spaces.Box(-1, 1, (4,))
        action_space = spaces.Box(-1, 1, (7,))

    with pytest.raises(SpaceMismatchError, match="cannot tell the env's tasks"):
        DualActorAgent(env=FlatObs())


def test_empty_store_is_a_clear_error(tmp_path):
    agent = make_agent(EpisodeStore(tmp_path / "empty"))
    with pytest.raises(EmptyStoreError, match="no demonstrations"):
        agent.warmup(5)
    with pytest.raises(EmptyStoreError, match="no demonstrations"):
        agent.learn(10)


def test_pixels_backbone_trains_end_to_end(tmp_path):
    env = toy_hil_env(ToyBoltEnv(obs_mode="pixels", image_shapes=((32, 32, 3), (64, 64, 3))))
    store = EpisodeStore(tmp_path / "store")
    fill_store_with_demos(store, env, 2)
    agent = DualActorAgent(
        env=env,
        store=store,
        **{
            **SMALL,
            "warmup_steps": 5,
            "batch_size": 12,
            "policy_kwargs": {
                **TINY_NETS,
                "backbone": "pixels",
                "backbone_kwargs": {"image_features": 8, "channels": 4},
            },
        },
    )
    agent.learn(60)
    assert agent.num_timesteps == 60 and store.count() > 6  # pixel episodes reached the store
    obs, _ = env.reset(seed=1)
    assert agent.predict(obs, deterministic=True)[0].shape == (7,)


class FaultyToyEnv(ToyBoltEnv):
    """Every episode ends on its third step with a hardware fault, as the real backend reports one."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if self._t == 3 and not terminated:
            info.update(backend_error="ConnectionLostError: arm server went silent")
            info.update(backend_error_type="ConnectionLostError")
            truncated = True
        return obs, reward, terminated, truncated, info


def test_an_online_episode_ended_by_a_hardware_fault_keeps_the_fault_in_the_store(store):
    agent = DualActorAgent(env=toy_hil_env(FaultyToyEnv(), seed=0), store=store, **SMALL)
    agent.learn(9)
    online = [ep for ep in store.episodes() if ep.kind != "demos"]
    assert len(online) == 3 and all(len(ep) == 3 and not ep.terminated.any() for ep in online)
    assert {ep.metadata["backend_error"] for ep in online} == {
        "ConnectionLostError: arm server went silent"
    }
    assert all("weights_version" in ep.metadata for ep in online)
