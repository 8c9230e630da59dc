"""daft_agent.runs: a run's settings, its operated env, its report (the run end to end is tested
through ``daft train`` in test_cli.py)."""

import json

import pytest

from daft_agent.runs.config import RunConfig, parse_overrides
from daft_agent.runs.envs import make_train_env
from daft_agent.runs.report import (
    PERTURBED_TITLE,
    conditions_for,
    intervention_share,
    write_results,
)
from daft_env.perception import PerceptionMix
from hardware.errors import ConfigError


def test_set_overrides_agent_arguments_and_rejects_unknown_keys():
    agent, network = parse_overrides(
        ["normalize_q=True", "gamma=0.95", "backbone=state", "critic_hidden=(512, 512)"]
    )
    assert agent == {"normalize_q": True, "gamma": 0.95}
    # network settings go to policy_kwargs, as in SB3's SAC
    assert network == {"backbone": "state", "critic_hidden": (512, 512)}
    with pytest.raises(ConfigError, match="valid keys are"):
        parse_overrides(["learning_rat=1e-3"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["normalize_q"])


def test_train_env_has_the_operator_at_the_requested_rate():
    env = make_train_env("BoltMultiTask-Sim-v0", "state", 0, 0.3, 0.5, True)
    assert env.device.config.target_rate == 0.3 and env.device.config.mode == "takeover"
    assert isinstance(env.env, PerceptionMix) and env.env.p == 0.5
    env.close()


def test_intervention_share_sums_steps_per_task():
    from daft_env.store import IndexEntry

    def entry(task, length, iv):
        return IndexEntry(f"{task}/{length}", task, "rollouts", length, False, 0, iv)

    share = intervention_share(
        [entry("upright", 50, 5), entry("upright", 30, 3), entry("pickup", 20, 10)],
        ["upright", "pickup", "assemble"],
        0.15,
    )
    assert share["overall"] == 18 / 100 and share["episode_steps"] == 100
    assert share["per_task"] == {"upright": 8 / 80, "pickup": 0.5, "assemble": None}


def test_pixel_runs_skip_the_perturbed_condition_and_say_why():
    both, reason = conditions_for("state", True)
    assert [c[0] for c in both] == ["nominal", "perturbed"] and reason is None
    assert both[1][1] == PERTURBED_TITLE and both[1][2] is True and both[0][2] is None
    only, reason = conditions_for("pixels", True)
    assert [c[0] for c in only] == ["nominal"] and "state observation only" in reason


def test_fleet_options_that_disagree_are_refused_before_anything_runs():
    with pytest.raises(ConfigError, match="--actors 3 but --robots names 2 robots"):
        RunConfig(actors=3, robots="A,B").resolve()
    with pytest.raises(ConfigError, match=r"unknown robot 'Z'; the presets are \['A', 'B'\]"):
        RunConfig(robots="A,Z").resolve()
    with pytest.raises(ConfigError, match="--actors must be >= 1"):
        RunConfig(actors=0).resolve()
    assert RunConfig(robots="A,B").resolve().robots == ["A", "B"]


def test_tiny_sizes_apply_where_no_flag_sets_them_and_flags_win():
    plan = RunConfig(tiny=True).resolve()
    assert (plan.online_steps, plan.demos, plan.eval_trials, plan.curve_trials) == (300, 2, 2, 1)
    assert plan.agent_kwargs["lockstep"] is True and plan.network["actor_hidden"] == (32, 32)
    plan = RunConfig(tiny=True, demos=5, overrides=("batch_size=7",)).resolve()
    assert plan.demos == 5 and plan.agent_kwargs["batch_size"] == 7  # --set is applied last
    full = RunConfig().resolve()
    assert (full.online_steps, full.demos, full.eval_trials, full.eval_every) == (
        15_000,
        20,
        50,
        2_500,
    )
    assert full.store == full.run_dir / "store" and full.run_dir.name == "state"


def test_perturbed_condition_is_left_out_when_no_perception_error_is_asked_for():
    only, reason = conditions_for("state", None)
    assert [c[0] for c in only] == ["nominal"] and "no perception error" in reason


def test_results_are_written_durably_and_replace_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    write_results(path, {"a": 1})
    write_results(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2} and list(tmp_path.iterdir()) == [path]
