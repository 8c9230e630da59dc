"""``daft collect``: the command fills a store, adds on re-run, clear errors for bad input."""

import os

import numpy as np
import pytest

from daft_agent.cli import main
from daft_env.store import EpisodeStore


def daft(*args):
    return main(["collect", *args, "--no-progress"])


def test_collect_twice_adds_to_the_store(tmp_path, capsys):
    store_dir = str(tmp_path / "store")
    assert daft("--task", "pickup", "--episodes", "3", "--store", store_dir) == 0
    assert "pickup: added 3 demos, 3 in store" in capsys.readouterr().out
    assert daft("--task", "pickup", "--episodes", "2", "--store", store_dir) == 0
    assert "pickup: added 2 demos, 5 in store" in capsys.readouterr().out
    store = EpisodeStore(store_dir, mode="r")
    eps = list(store.episodes(task="pickup", kind="demos"))
    assert len(eps) == 5
    assert all(ep.success and ep.kind == "demos" and ep.rewards[-1] == 1.0 for ep in eps)
    assert all(not ep.intervened.any() for ep in eps)
    # the second run used fresh seeds: five different demonstrations
    assert len({ep.metadata["seed"] for ep in eps}) == 5
    assert len({ep.observations["state"][0].tobytes() for ep in eps}) == 5
    assert eps[0].observations["task_id"][0] == 1  # multi-task env by default: task_id observed


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["--device", "joystick"],
            ["unknown device 'joystick'", "expert", "spacemouse", "keyboard"],
        ),
        (["--task", "screw"], ["unknown task 'screw'", "upright", "pickup", "assemble"]),
        (["--obs-mode", "depth"], ["--obs-mode", "state", "pixels"]),
        (["--env", "BoltNope-Sim-v0"], ["BoltNope-Sim-v0", "BoltMultiTask-Sim-v0"]),
        (["--env", "BoltUpright-Sim-v0", "--task", "pickup"], ["runs task 'upright'"]),
        (["--episodes", "0"], ["--episodes must be >= 1"]),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, capsys, args, words):
    assert daft("--store", str(tmp_path / "s"), "--episodes", "1", *args) == 1
    err = capsys.readouterr().err
    assert err.startswith("daft collect: error:")
    for w in words:
        assert w in err


def test_store_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert daft("--store", str(tmp_path / "f"), "--task", "pickup", "--episodes", "1") == 1
    assert "is a file" in capsys.readouterr().err


def test_corrupt_store_file_is_named_and_collection_continues(tmp_path, capsys):
    store_dir = tmp_path / "store"
    assert daft("--task", "pickup", "--episodes", "2", "--store", str(store_dir)) == 0
    victim = sorted((store_dir / "pickup" / "demos").glob("ep_*.h5"))[0]
    size = os.path.getsize(victim)
    with open(victim, "r+b") as fh:
        fh.truncate(size // 2)
    (store_dir / "index.jsonl").unlink()  # force the index to reopen files
    capsys.readouterr()
    assert daft("--task", "pickup", "--episodes", "1", "--store", str(store_dir)) == 0
    captured = capsys.readouterr()
    assert victim.name in captured.err and "corrupt" in captured.err
    assert "pickup: added 1 demos, 2 in store" in captured.out
    assert victim.exists()  # reported and left for the user, never deleted


def test_human_device_without_hardware_is_a_clear_error(tmp_path, capsys):
    rc = daft(
        "--device", "spacemouse", "--task", "pickup", "--episodes", "1", "--store", str(tmp_path)
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "daft collect: error:" in err and ("pyspacemouse" in err or "udev" in err)
    assert np.isfinite(rc)
