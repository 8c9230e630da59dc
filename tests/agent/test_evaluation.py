"""Evaluation against a scripted env: command feeding and lag, counts, the table, learning curves."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.logger import KVWriter, Logger
from support.scripted_env import ScriptedAgent, ScriptedEnv

from daft_agent.errors import AgentConfigError
from daft_agent.evaluation import (
    PeriodicEvaluation,
    TalkOnly,
    TaskResult,
    episode_step_limit,
    evaluate_condition,
    evaluate_tasks,
    format_table,
    results_dict,
    run_trials,
)
from daft_env.wrappers import InterventionWrapper
from hardware.teleop.keyboard import KeyboardConfig, KeyboardTeleop, ScriptedKeySource


def test_a_command_reaches_the_policy_one_step_after_it_is_spoken():
    env = ScriptedEnv(speak={2: "move forward"})
    agent = ScriptedAgent()
    r = run_trials(agent, env, "pickup", trials=1, use_commands=True)
    # spoken during step 2 (the third), so predict sees it at step 3 and the policy moves forward
    assert agent.log == [(0, None), (1, None), (2, None), (3, "move forward")]
    assert (r.successes, r.mean_length, r.commands_spoken) == (1, 4.0, 1)


def test_a_command_applies_for_command_hold_steps_or_until_the_next():
    env = ScriptedEnv(max_episode_steps=8, speak={0: "move left", 3: "move up"})
    agent = ScriptedAgent()
    run_trials(agent, env, "pickup", trials=1, use_commands=True, command_hold=2)
    assert [c for _, c in agent.log] == [
        None,
        "move left",
        "move left",
        None,
        "move up",
        "move up",
    ] + [None] * 2
    agent = ScriptedAgent()
    run_trials(agent, env, "pickup", trials=1, use_commands=True, command_hold=None)
    assert [c for _, c in agent.log] == [None] + ["move left"] * 3 + ["move up"] * 4


def test_autonomous_trials_never_pass_a_command_so_any_sb3_model_works():
    env = ScriptedEnv(speak={0: "move forward"})
    agent = ScriptedAgent(accepts_commands=False)  # SB3's own predict has no command argument
    r = run_trials(agent, env, "pickup", trials=2)
    assert r.successes == 0 and r.commands_spoken == 0 and r.mean_length == 6.0
    assert env.resets == [10_000, 10_001]


def test_commands_spoken_counts_commands_given_over_all_trials():
    env = ScriptedEnv(max_episode_steps=10, speak={1: "move left", 4: "move right"})
    res = evaluate_tasks(ScriptedAgent(), env, ["pickup", "assemble"], trials=3, use_commands=True)
    assert {t: r.commands_spoken for t, r in res.items()} == {"pickup": 6, "assemble": 6}
    assert all(r.successes == 0 and r.mean_length == 10.0 for r in res.values())


def test_the_table_has_an_average_row_a_command_count_and_the_real_step_limit():
    env = ScriptedEnv(max_episode_steps=7, speak={0: "move forward"})
    cond = evaluate_condition(ScriptedAgent(), env, env, ["upright", "pickup"], trials=2)
    auto, talk = cond["autonomous"], cond["with_commands"]
    # upright succeeds alone on step 2; pickup only when told: at step 2 after the command at 0
    assert (auto["upright"].success_rate, auto["pickup"].success_rate) == (1.0, 0.0)
    assert (talk["upright"].success_rate, talk["pickup"].success_rate) == (1.0, 1.0)
    table = format_table(auto, talk, title="nominal")
    lines = table.splitlines()
    assert lines[0] == "nominal" and "Commands" in lines[1] and "w/ commands" in lines[1]
    average = next(line for line in lines if line.startswith("Average"))
    cells = [c.strip() for c in average.split("|")[1:]]
    # success (100 + 0) / 2, length (2 + 7) / 2; with commands (100 + 100) / 2, (2 + 2) / 2, 2
    assert cells == ["50.0", "4.5", "100.0", "2.0", "2"]
    assert lines[-1] == "(2 trials per task; length = mean steps over all trials, failures count 7)"
    assert format_table(auto).count("|") == 2 * (len(auto) + 2)  # two columns without commands


def test_the_step_limit_is_the_tighter_of_gyms_and_the_envs_own():
    env = ScriptedEnv(max_episode_steps=7)
    assert episode_step_limit(env) == 7
    spec = gym.envs.registration.EnvSpec("Scripted-v0", max_episode_steps=4)
    limited = gym.wrappers.TimeLimit(env, max_episode_steps=4)
    limited.unwrapped.spec = spec
    assert episode_step_limit(limited) == 4
    r = run_trials(ScriptedAgent(), limited, "pickup", trials=1)
    assert r.mean_length == 4.0 and r.step_limit == 4
    assert "failures count 4" in format_table({"pickup": r})


def test_results_dict_keeps_the_existing_fields_and_adds_the_new_ones():
    auto = {"pickup": TaskResult("pickup", 4, 3, 20.0, 0, 50)}
    talk = {"pickup": TaskResult("pickup", 4, 4, 15.0, 9, 50)}
    out = results_dict(auto, talk)
    assert out["autonomous"]["pickup"] == {
        "success_rate": 0.75,
        "mean_length": 20.0,
        "trials": 4,
        "step_limit": 50,
    }
    assert out["with_commands"]["pickup"]["commands"] == 9
    assert "with_commands" not in results_dict(auto)


def test_a_typed_command_is_fed_and_counted_and_motion_keys_never_take_over():
    # a person at the keyboard: presses "w" (a motion key) and types ":move forward" + Enter
    keys = ScriptedKeySource(["w", ":move", " forward\n"])
    device = TalkOnly(KeyboardTeleop(KeyboardConfig(key_source=keys)))
    device.connect()
    env = InterventionWrapper(ScriptedEnv(max_episode_steps=6), device)
    agent = ScriptedAgent()
    r = run_trials(agent, env, "pickup", trials=1, use_commands=True, command_hold=None)
    assert agent.log == [(0, None), (1, None), (2, None), (3, "move forward")]
    assert r.commands_spoken == 1 and r.successes == 1
    assert env.total_intervened_steps == 0  # the motion key did not become a takeover
    device.disconnect()


def test_bad_arguments_are_refused():
    with pytest.raises(AgentConfigError, match="trials"):
        run_trials(ScriptedAgent(), ScriptedEnv(), "pickup", trials=0)
    with pytest.raises(AgentConfigError, match="command_hold"):
        run_trials(ScriptedAgent(), ScriptedEnv(), "pickup", trials=1, command_hold=0)
    with pytest.raises(AgentConfigError, match="every_n_steps"):
        PeriodicEvaluation(ScriptedEnv, every_n_steps=0, n_trials=1, tasks=["pickup"])
    with pytest.raises(AgentConfigError, match="at least one task"):
        PeriodicEvaluation(ScriptedEnv, every_n_steps=5, n_trials=1, tasks=[])


class Capture(KVWriter):
    def __init__(self):
        self.dumps = []

    def write(self, key_values, key_excluded, step=0):
        self.dumps.append((step, dict(key_values)))

    def close(self):
        pass


class FakeModel(ScriptedAgent):
    """What BaseCallback.init_callback needs of an SB3 model, around a policy that improves."""

    def __init__(self, skilled_after):
        super().__init__(skilled_after=skilled_after)
        self.capture = Capture()
        self.logger = Logger(folder=None, output_formats=[self.capture])

    def get_env(self):
        return None


def test_periodic_evaluation_logs_autonomous_success_rows_against_online_steps():
    built = []

    def make_env():
        built.append(ScriptedEnv(max_episode_steps=5))
        return built[-1]

    model = FakeModel(skilled_after=20)  # the policy alone solves pickup from step 20 on
    cb = PeriodicEvaluation(make_env, every_n_steps=10, n_trials=2, tasks=["upright", "pickup"])
    cb.init_callback(model)
    cb.on_training_start({}, {})
    for _ in range(35):
        model.num_timesteps += 1
        assert cb.on_step()
    cb.on_training_end()
    assert cb.rows == [
        (10, {"upright": 1.0, "pickup": 0.0}),
        (20, {"upright": 1.0, "pickup": 1.0}),
        (30, {"upright": 1.0, "pickup": 1.0}),
    ]
    assert len(built) == 1 and built[0].closed  # one separate env, closed at the end
    steps = [s for s, _ in model.capture.dumps]
    assert steps == [10, 20, 30]
    assert model.capture.dumps[0][1]["eval/pickup/autonomous_success"] == 0.0
    assert model.capture.dumps[1][1]["eval/pickup/autonomous_success"] == 1.0
    assert model.capture.dumps[0][1]["eval/autonomous_success_mean"] == 0.5
    assert cb.as_json()[1] == {
        "online_step": 20,
        "autonomous_success": {"upright": 1.0, "pickup": 1.0},
    }
    # the same seeds every time, so the curve compares the same scenes
    assert built[0].resets == [20_000, 20_001] * 6


def test_periodic_evaluation_resumed_run_continues_the_grid():
    model = FakeModel(skilled_after=0)
    model.num_timesteps = 25  # resumed from a checkpoint at 25 online steps
    cb = PeriodicEvaluation(lambda: ScriptedEnv(), every_n_steps=10, n_trials=1, tasks=["pickup"])
    cb.init_callback(model)
    cb.on_training_start({}, {})
    for _ in range(10):
        model.num_timesteps += 1
        cb.on_step()
    assert [s for s, _ in cb.rows] == [30]
    assert np.isclose(cb.rows[0][1]["pickup"], 1.0)
