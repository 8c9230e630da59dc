"""A tiny end-to-end ``daft train`` on the MuJoCo sim backend (a few hundred steps), and resume."""

import json

import numpy as np

from daft_agent.cli import main
from daft_agent.runs.report import PERTURBED_TITLE
from daft_env.store import EpisodeStore


def _episode_digests(store: EpisodeStore) -> list[str]:
    """One digest per stored episode, in the order they were written, of everything it holds."""
    import hashlib

    entries = sorted(store.index(), key=lambda e: e.path.rsplit("/", 1)[-1])
    out = []
    for entry in entries:
        ep = store.load(entry.path)
        h = hashlib.sha256()
        for arr in (ep.actions, ep.policy_actions, ep.labels, ep.intervened, ep.rewards):
            h.update(np.ascontiguousarray(arr).tobytes())
        for key in sorted(ep.observations):
            h.update(np.ascontiguousarray(ep.observations[key]).tobytes())
        h.update("|".join(ep.refinement_commands).encode())
        out.append(f"{ep.task}/{ep.kind}/{h.hexdigest()}")
    return out


def test_the_same_seeded_run_twice_stores_the_same_episodes_and_figures(tmp_path):
    """daft train is lockstep: a seeded run repeats step for step (issue 17, acceptance 3)."""
    results, digests = [], []
    for name in ("a", "b"):
        argv = ["train", "--tiny", "--seed", "4", "--steps", "200", "--eval-every", "100"]
        argv += ["--output-dir", str(tmp_path), "--name", name, "--no-progress"]
        assert main(argv) == 0
        res = json.loads((tmp_path / name / "results.json").read_text())
        res.pop("train_seconds")
        results.append(res)
        digests.append(_episode_digests(EpisodeStore(tmp_path / name / "store")))
    assert len(digests[0]) > 6 and digests[0] == digests[1]
    assert results[0] == results[1]


def test_daft_train_tiny_state_then_resume(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = main(["train", "--tiny", "--output-dir", str(out), "--name", "t", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "place the bolt upright" in printed and "Average" in printed and "w/ commands" in printed
    # two Table-I tables, nominal then perturbed, each with both columns
    nominal, perturbed = printed.index("\nnominal\n"), printed.index(PERTURBED_TITLE)
    assert nominal < perturbed and printed.count("Success (%) w/ commands") == 2
    assert "the operator's cap (target_rate) 15.0%" in printed
    run = out / "t"
    assert (run / "checkpoint.zip").exists() and (run / "store").is_dir()
    assert any((run / "tb").glob("events.out.tfevents*"))
    res = json.loads((run / "results.json").read_text())
    assert res["online_env_steps"] == 300
    tasks = {"upright", "pickup", "assemble"}
    assert set(res["autonomous"]) == set(res["with_commands"]) == tasks
    # the perturbed condition beside the nominal keys, with the error it ran under
    assert set(res["perturbed"]["autonomous"]) == set(res["perturbed"]["with_commands"]) == tasks
    assert res["perturbed"]["perception_error"] == {"min_offset": 0.005, "max_offset": 0.015}
    assert res["autonomous"]["upright"]["trials"] == 2
    # the learning curve: a row every 100 online steps (--tiny), every task in each
    curve = res["learning_curve"]
    assert [r["online_step"] for r in curve] == [100, 200, 300]
    assert all(set(r["autonomous_success"]) == tasks for r in curve)
    # the realised intervention share matches the store's online episodes of this run
    share = res["intervention_share"]
    store = EpisodeStore(run / "store")
    online = [e for k in ("rollouts", "interventions") for e in store.index(kind=k)]
    assert share["target_rate"] == 0.15
    assert 250 < share["episode_steps"] == sum(e.length for e in online) <= 300
    assert share["intervened_steps"] == sum(e.n_intervened_steps for e in online) > 0
    assert share["overall"] == share["intervened_steps"] / share["episode_steps"]
    assert set(share["per_task"]) == tasks

    # resume: continues the step count from the checkpoint, reuses the store's demos
    rc = main(
        [
            "train",
            "--tiny",
            "--output-dir",
            str(out),
            "--name",
            "t",
            "--no-progress",
            "--resume",
            "--steps",
            "360",
            "--skip-eval",
        ]
    )
    assert rc == 0
    assert "resuming" in capsys.readouterr().out
    res = json.loads((run / "results.json").read_text())
    assert res["online_env_steps"] == 360
    # the resumed run keeps its curve and counts the share over the whole run
    assert [r["online_step"] for r in res["learning_curve"]] == [100, 200, 300]
    # (the first run's finished episodes and the resumed run's; the cut-off ones are not counted)
    assert share["episode_steps"] < res["intervention_share"]["episode_steps"] <= 360

    # daft evaluate prints the table for a checkpoint
    assert main(["evaluate", str(run / "checkpoint.zip"), "--trials", "1"]) == 0
    assert "Average" in capsys.readouterr().out

    # another configuration on the same run directory is refused with a clear message
    rc = main(
        [
            "train",
            "--output-dir",
            str(out),
            "--name",
            "t",
            "--no-progress",
            "--resume",
            "--steps",
            "360",
            "--skip-eval",
        ]
    )
    assert rc == 1
    assert "another configuration" in capsys.readouterr().err


def test_daft_train_tiny_pixels(tmp_path):
    # software rendering runs ~10 pixel steps/s and each update runs five CNNs: keep it small
    out = tmp_path / "runs"
    args = ["train", "--preset", "pixels", "--tiny", "--demos", "1", "--steps", "40", "--skip-eval"]
    args += ["--warmup-steps", "5", "--batch-size", "8"]
    rc = main(args + ["--output-dir", str(out), "--name", "p", "--no-progress"])
    assert rc == 0
    assert json.loads((out / "p" / "results.json").read_text())["online_env_steps"] == 40
    assert (out / "p" / "checkpoint.zip").exists()


def test_train_perception_error_and_operator_rate_reach_the_training_env(tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["train", "--tiny", "--steps", "100", "--eval-every", "0", "--skip-eval"]
    args += ["--train-perception-error", "1", "--operator-rate", "0.3", "--chained-starts", "1"]
    assert main(args + ["--output-dir", str(out), "--name", "pe", "--no-progress"]) == 0
    res = json.loads((out / "pe" / "results.json").read_text())
    assert res["train_perception_error"] == 1.0 and res["learning_curve"] == []
    assert res["chained_starts"] == 1.0
    # the demos were recorded from chained starts too: a pickup begins beside the standing bolt
    from daft_env.spaces import STATE_LAYOUT
    from daft_env.store import EpisodeStore

    at, i = {}, 0
    for name, n in STATE_LAYOUT:
        at[name] = slice(i, i + n)
        i += n
    demo = next(iter(EpisodeStore(out / "pe" / "store", mode="r").episodes("pickup", "demos")))
    first = demo.observations["state"][0]
    assert np.linalg.norm(first[at["tcp_pos"]] - first[at["bolt_pos"]]) < 0.08
    assert res["intervention_share"]["target_rate"] == 0.3
    assert "the operator's cap (target_rate) 30.0%" in capsys.readouterr().out
    bad_args = (
        (["--train-perception-error", "1.5"], "in [0, 1]"),
        (["--curve-trials", "0"], "--curve-trials must be >= 1"),
        (["--preset", "pixels", "--train-perception-error", "0.5"], "state observation only"),
        # the fleet's robots make their own envs: refused, not silently ignored
        (["--actors", "1", "--operator-rate", "0.3"], "fleet's robots make their own"),
        (["--chained-starts", "2"], "--chained-starts is a share"),
    )
    for bad, message in bad_args:
        assert main(["train", "--tiny", "--output-dir", str(out), "--name", "x", *bad]) == 1
        assert message in capsys.readouterr().err
