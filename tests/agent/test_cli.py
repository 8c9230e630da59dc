"""A tiny end-to-end ``daft train`` on the MuJoCo sim backend (a few hundred steps), and resume."""

import json

import pytest

from daft_agent.cli import main


def test_daft_train_tiny_state_then_resume(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = main(["train", "--tiny", "--output-dir", str(out), "--name", "t", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "place the bolt upright" in printed and "Average" in printed and "w/ commands" in printed
    run = out / "t"
    assert (run / "checkpoint.zip").exists() and (run / "store").is_dir()
    assert any((run / "tb").glob("events.out.tfevents*"))
    res = json.loads((run / "results.json").read_text())
    assert res["online_env_steps"] == 300
    assert set(res["autonomous"]) == {"upright", "pickup", "assemble"}

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
    assert json.loads((run / "results.json").read_text())["online_env_steps"] == 360

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


def test_set_overrides_agent_arguments_and_rejects_unknown_keys():
    from daft_agent.cli.train import _parse_overrides
    from hardware.errors import ConfigError

    agent, network = _parse_overrides(
        ["normalize_q=True", "gamma=0.95", "backbone=state", "critic_hidden=(512, 512)"]
    )
    assert agent == {"normalize_q": True, "gamma": 0.95}
    # network settings go to policy_kwargs, as in SB3's SAC
    assert network == {"backbone": "state", "critic_hidden": (512, 512)}
    with pytest.raises(ConfigError, match="valid keys are"):
        _parse_overrides(["learning_rat=1e-3"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        _parse_overrides(["normalize_q"])
