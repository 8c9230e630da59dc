"""The agent, talk-and-tweak and the simulated operator on an env that is not DAFT's (issue 20).

The env is ``ReachPlace-v0`` (tests/support/reach_place.py): a 4-d action in bounds other than
+-1, a Box observation, two tasks and a scripted plan. The full path goes through the commands a
user runs: ``daft collect --env ... --expert ...``, ``daft train`` (warm-up, online with the
simulated operator, save) and ``daft evaluate`` (load, autonomous and with spoken commands).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import support.reach_place as rp
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

from daft_agent.agent import DualActorAgent
from daft_agent.cli import main
from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_env.adapters import DaftSpaces, make_env
from daft_env.labeler import label_episode
from daft_env.plan_operator import PlanOperator
from daft_env.store import EpisodeStore
from daft_env.wrappers import InterventionWrapper

ENV = "support.reach_place:ReachPlace-v0"
PLAN = "support.reach_place:plan"
NETS = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), refinement_hidden=(16,))
WORDS = {"left", "right", "forward", "backward", "up", "down"}


def _words(commands):
    return {w for c in commands if c != "[null]" for w in c.replace(",", " ").split()[1:]} - {"and"}


def test_the_full_path_on_a_user_env_through_the_cli(tmp_path, capsys):
    store_dir = tmp_path / "store"
    # demos with the user's plan as the demonstrator
    assert main(["collect", "--env", ENV, "--expert", PLAN, "--store", str(store_dir),
                 "--episodes", "3", "--noise", "0.1", "--no-progress"]) == 0  # fmt: skip
    store = EpisodeStore(store_dir, mode="r")
    assert store.tasks() == ["reach", "place"]
    demo = next(iter(store.episodes(task="place", kind="demos")))
    assert demo.actions.shape[1] == 4 and np.all(np.abs(demo.actions) <= 1.0)
    assert demo.instruction == "put the block on the target" and demo.success
    # warm-up, online with the simulated operator on the plan, save
    argv = ["train", "--env", ENV, "--expert", PLAN, "--store", str(store_dir), "--tiny",
            "--output-dir", str(tmp_path / "runs"), "--name", "toy", "--no-progress",
            "--steps", "200", "--eval-trials", "1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "intervened share of the online steps" in out and "reach" in out and "place" in out
    results = json.loads((tmp_path / "runs/toy/results.json").read_text())
    assert results["online_env_steps"] == 200
    assert results["perturbed"]["skipped"].startswith("the hidden perception error")
    # the operator's takeovers were stored, labelled on the env's own translation axes
    online = [e for k in ("interventions",) for e in store.episodes(kind=k)]
    assert online, "the operator never took over an untrained policy"
    layout = make_env(ENV).action_layout
    for ep in online:
        assert ep.refinement_commands == label_episode(ep.actions, ep.intervened, layout=layout)
        assert ep.intended_actions is not None and ep.intended_actions.shape[1] == 4
    said = _words(c for ep in online for c in ep.refinement_commands)
    assert said and said <= WORDS
    # load and evaluate, with the plan speaking
    ckpt = tmp_path / "runs/toy/checkpoint.zip"
    argv = ["evaluate", str(ckpt), "--env", ENV, "--expert", PLAN, "--trials", "2",
            "--with-commands", "--json", str(tmp_path / "eval.json")]  # fmt: skip
    assert main(argv) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert set(evaluated["autonomous"]) == {"reach", "place"}
    assert sum(r["commands"] for r in evaluated["with_commands"].values()) > 0


def test_the_cli_refuses_what_is_the_bolt_cells_on_a_user_env(tmp_path, capsys):
    base = ["train", "--env", ENV, "--tiny", "--output-dir", str(tmp_path), "--no-progress"]
    assert main(base) == 1
    assert "--expert module:callable" in capsys.readouterr().err
    assert main([*base, "--expert", PLAN, "--train-perception-error", "0.5"]) == 1
    assert "--train-perception-error" in capsys.readouterr().err
    assert main(["collect", "--env", ENV, "--store", str(tmp_path / "s"), "--no-progress"]) == 1
    assert "--expert module:callable" in capsys.readouterr().err
    argv = ["collect", "--env", ENV, "--expert", PLAN, "--tasks", "pour",
            "--store", str(tmp_path / "s"), "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    assert "unknown task 'pour'" in capsys.readouterr().err
    assert main(["train", "--tiny", "--expert", PLAN, "--output-dir", str(tmp_path)]) == 1
    assert "--expert and --tasks are for your own env" in capsys.readouterr().err


@pytest.fixture
def demo_store(tmp_path):
    from daft_env.demos import collect_demos

    store = EpisodeStore(tmp_path / "store")
    collect_demos(store, ENV, "all", 6, expert=PLAN, noise=0.05, progress=False)
    return store


def test_the_agent_takes_the_raw_env_and_rescales_it(demo_store, tmp_path):
    """DualActorAgent(env=<a plain gym env>) adapts it: SB3's evaluate_policy, callbacks, save
    and load work as on the bolt envs, and warm-up on the plan's demos beats no training."""
    agent = DualActorAgent(
        env=rp.ReachPlace(), store=demo_store, seed=0, batch_size=32, warmup_steps=0,
        min_rollouts_per_task=10, policy_kwargs=NETS,
    )  # fmt: skip
    assert agent.tasks == ("reach", "place") and agent.backbone == "generic"
    assert agent.action_space.shape == (4,) and agent.command_encoder.dim == 4

    # imitation reaches through the rescaling: the warmed-up policy's actions on the demos'
    # states approach the plan's (normalised) actions, in both tasks
    demos = [ep for t in agent.tasks for ep in demo_store.episodes(task=t, kind="demos")]

    def error():
        errs = []
        for ep in demos:
            obs = {k: v for k, v in ep.observations.items()}
            acts, _ = agent.predict({k: v[:-1] for k, v in obs.items()}, deterministic=True)
            errs.append(np.abs(acts - ep.labels).mean())
        return float(np.mean(errs))

    before = error()
    agent.warmup(400)
    after = error()
    assert after < 0.5 * before, (before, after)
    mean, _ = evaluate_policy(agent, DaftSpaces(rp.ReachPlace()), n_eval_episodes=2, warn=False)
    assert 0.0 <= mean <= 1.0  # SB3 drives predict on the adapted env

    class Count(BaseCallback):
        steps = 0

        def _on_step(self):
            Count.steps += 1
            return True

    base = make_env(ENV)
    agent.set_env(InterventionWrapper(base, PlanOperator(base, PLAN, seed=0)))
    agent.learn(60, callback=Count())
    assert Count.steps == 60
    agent.save(tmp_path / "agent")
    loaded = DualActorAgent.load(tmp_path / "agent.zip", env=rp.ReachPlace(), store=demo_store)
    assert loaded.tasks == agent.tasks and loaded.action_layout == agent.action_layout
    obs, _ = DaftSpaces(rp.ReachPlace()).reset(seed=1)
    a1, _ = agent.predict(obs, deterministic=True)
    a2, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(a1, a2, atol=1e-6)
    # a command in the env's words steers through the refinement actor; an unknown word is refused
    agent.predict(obs, command="move left and up")
    with pytest.raises(Exception, match="unknown word 'north'"):
        agent.predict(obs, command="move north")


def test_clear_errors_for_wrong_spaces_and_tasks():
    with pytest.raises(SpaceMismatchError, match="unbounded"):
        DualActorAgent(env=rp.UnboundedReachPlace())
    # tasks=[...] picks some of the env's tasks: the adapter asks the env for them
    one = DualActorAgent(env=rp.ReachPlace(), tasks=["place"], policy_kwargs=NETS)
    assert one.tasks == ("place",)
    inner = one.env.envs[0]
    for _ in range(3):
        assert inner.reset()[1]["task"] == "place"
    with pytest.raises(AgentConfigError, match="unknown task 'pour'"):
        DualActorAgent(env=DaftSpaces(rp.ReachPlace(tasks=("reach",))), tasks=["pour"])
