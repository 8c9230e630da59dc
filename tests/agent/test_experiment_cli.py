"""``daft experiment table1 --tiny`` end to end on the sim (all six rows), resume, Fig. 5 curves."""

import json

import pytest

from daft_agent.baselines import BASELINES
from daft_agent.cli import main
from daft_agent.errors import ExperimentError
from daft_agent.experiments import curves, table1
from daft_agent.experiments.runner import ExperimentConfig, run_trial, trial_path

TASKS = ["upright", "pickup", "assemble"]


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory, local_ray):
    out = tmp_path_factory.mktemp("experiment")
    assert main(["experiment", "table1", "--tiny", "--output-dir", str(out)]) == 0
    return out


def test_table1_tiny_writes_json_markdown_and_png_with_every_row(tiny_results):
    result = json.loads((tiny_results / "table1.json").read_text())
    assert sorted(t["row"] for t in result["trials"]) == sorted(BASELINES)
    assert set(result["summary"]) == {*BASELINES, "daft+commands"}
    for trial in result["trials"]:
        assert set(trial["autonomous"]) == set(TASKS)
        assert trial["online_steps"] == result["experiment"]["online_steps"]
        assert trial["intervention_share"]["online_steps"] == trial["online_steps"]
    # DAFT and w/o dual carry their periodic evaluations (the Fig. 5 points)
    # every row carries its periodic evaluations (Fig. 5's points; steps to 90% for SAC + demos)
    for trial in result["trials"]:
        assert [p["online_step"] for p in trial["learning_curve"]] == [150], trial["row"]
    md = (tiny_results / "table1.md").read_text()
    assert "| Average |" in md and "success % HG-DAgger" in md and "length SAC + demos" in md
    assert "Online steps to 90%" in md
    assert (tiny_results / "table1.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_keeps_every_finished_trial(tiny_results, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in (tiny_results / "trials").iterdir()}
    assert len(before) == len(BASELINES)
    assert (
        main(["experiment", "table1", "--tiny", "--resume", "--output-dir", str(tiny_results)]) == 0
    )
    after = {p.name: p.stat().st_mtime_ns for p in (tiny_results / "trials").iterdir()}
    assert after == before
    assert "| Average |" in capsys.readouterr().out


def test_resume_with_other_flags_is_refused_naming_them(tiny_results, capsys):
    argv = ["experiment", "table1", "--tiny", "--resume", "--steps", "999"]
    assert main([*argv, "--output-dir", str(tiny_results)]) == 1
    assert "online_steps" in capsys.readouterr().err


def test_curves_plots_daft_and_wo_dual_from_the_learning_curves(tiny_results):
    assert main(["experiment", "curves", "--output-dir", str(tiny_results)]) == 0
    data = json.loads((tiny_results / "curves.json").read_text())
    assert set(data) == {"daft", "wo_dual"} and data["daft"]["step"] == [150]
    assert (tiny_results / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_without_a_previous_sweep_names_the_fix(tmp_path, capsys, local_ray):
    args = ["experiment", "table1", "--tiny", "--resume", "--rows", "daft"]
    assert main([*args, "--output-dir", str(tmp_path)]) == 1
    assert "run it once without --resume" in capsys.readouterr().err


def test_unknown_row_is_refused_with_the_known_ones(tmp_path, capsys):
    argv = ["experiment", "table1", "--rows", "daft,dagger", "--output-dir", str(tmp_path)]
    assert main(argv) == 1
    assert "hg_dagger" in capsys.readouterr().err


def test_a_finished_trial_is_returned_without_training(tmp_path):
    path = trial_path(tmp_path, "daft", 3)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"row": "daft", "seed": 3, "marker": 1}))
    assert run_trial("daft", 3, ExperimentConfig(), tmp_path)["marker"] == 1


def _trial(row, seed, success, curve=()):
    per = {t: {"success_rate": success[i], "mean_length": 20.0 + i} for i, t in enumerate(TASKS)}
    rows = [{"online_step": s, "autonomous_success": dict.fromkeys(TASKS, r)} for s, r in curve]
    return {"row": row, "seed": seed, "autonomous": per, "learning_curve": rows}


def test_summary_is_mean_and_std_over_seeds_and_the_average_over_tasks():
    trials = [_trial("daft", 0, (1.0, 0.5, 0.0)), _trial("daft", 1, (0.0, 0.5, 1.0))]
    s = table1.summarise(trials, TASKS)["daft"]
    assert s["success"]["upright"] == {"mean": 50.0, "std": 50.0, "n": 2}
    assert s["success"]["average"]["mean"] == pytest.approx(50.0)
    assert s["success"]["average"]["std"] == pytest.approx(0.0)
    assert s["length"]["assemble"]["mean"] == 22.0


def test_steps_to_90_is_the_first_evaluation_at_or_above_it_per_seed():
    trials = [
        _trial("daft", 0, (1, 1, 1), [(100, 0.5), (200, 0.9), (300, 1.0)]),
        _trial("daft", 1, (1, 1, 1), [(100, 0.95)]),
        _trial("sac_demos", 0, (0, 0, 0), [(100, 0.2), (200, 0.89)]),
    ]
    s = table1.summarise(trials, TASKS)
    assert s["daft"]["steps_to_90"] == [200, 100]
    assert s["sac_demos"]["steps_to_90"] == [None]
    assert "SAC + demos never" in table1.markdown(s, TASKS, {})


def test_curve_band_uses_only_steps_every_seed_reached():
    trials = [
        _trial("daft", 0, (0, 0, 0), [(100, 0.2), (200, 0.6)]),
        _trial("daft", 1, (0, 0, 0), [(100, 0.4)]),
        _trial("wo_dual", 0, (0, 0, 0), [(100, 0.1)]),
    ]
    c = curves.curves(trials)
    assert c["daft"]["step"] == [100]
    assert c["daft"]["mean"] == [pytest.approx(30.0)] and c["daft"]["std"] == [pytest.approx(10.0)]
    with pytest.raises(ExperimentError, match="eval-every"):
        curves.curves([_trial("daft", 0, (0, 0, 0), [(100, 0.2)])])


@pytest.fixture(scope="module")
def multitask_checkpoint(tmp_path_factory):
    import gymnasium as gym

    from daft_agent.agent import DualActorAgent

    env = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
    nets = {f"{n}_hidden": (16,) for n in ("actor", "critic", "refinement")}
    agent = DualActorAgent(env=env, policy_kwargs=nets, seed=0)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.zip"
    agent.save(path)
    env.close()
    return path


def test_long_horizon_reports_every_bolt_count_in_both_columns(multitask_checkpoint, tmp_path):
    argv = ["experiment", "long-horizon", "--checkpoint", str(multitask_checkpoint)]
    assert main([*argv, "--bolts", "1,2", "--trials", "1", "--output-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "long_horizon.json").read_text())
    assert result["obs_mode"] == "state"
    for column in ("autonomous", "with_commands"):
        assert sorted(result[column]) == ["1", "2"]
        assert all(
            r["trials"] == 1 and 0 <= r["success_rate"] <= 1 for r in result[column].values()
        )
    # an untrained policy finishes no operation: the first subtask runs to its 50-step limit
    assert result["autonomous"]["2"]["mean_length"] == 50
    assert "| 2 | 60 |" in (tmp_path / "long_horizon.md").read_text()


def test_fixed_bolts_sets_the_number_of_operations():
    import gymnasium as gym

    from daft_agent.experiments.long_horizon import ENV_ID, FixedBolts

    env = FixedBolts(gym.make(ENV_ID, obs_mode="state"), 3)
    _, info = env.reset(seed=0, options={"task": "long_horizon"})
    assert info["operations_total"] == 9
    env.close()


def test_long_horizon_refuses_a_bolt_count_outside_one_to_four(multitask_checkpoint, capsys):
    argv = ["experiment", "long-horizon", "--checkpoint", str(multitask_checkpoint)]
    assert main([*argv, "--bolts", "0,5", "--no-commands"]) == 1
    assert "bolt counts in 1..4" in capsys.readouterr().err
