"""``daft collect``: fills a store, adds on re-run, clear errors for bad input."""

import os

import numpy as np
import pytest

from daft_agent.cli import main
from daft_agent.cli.collect import CollectionError, collect_demos
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


def test_collect_all_tasks_api(tmp_path):
    added = collect_demos(tmp_path / "s", tasks="all", episodes=2, progress=False, seed=5)
    assert added == {"upright": 2, "pickup": 2, "assemble": 2}
    store = EpisodeStore(tmp_path / "s", mode="r")
    assert [store.count(task=t, kind="demos") for t in ("upright", "pickup", "assemble")] == [
        2,
        2,
        2,
    ]
    assert all(e.success for e in store.index())


def test_collect_pixels_stores_images(tmp_path):
    collect_demos(
        tmp_path / "s",
        env_id="BoltPickup-Sim-v0",
        tasks="pickup",
        episodes=1,
        obs_mode="pixels",
        progress=False,
    )
    (ep,) = list(EpisodeStore(tmp_path / "s", mode="r").episodes())
    T = len(ep)
    assert ep.observations["wrist_rgb"].shape == (T + 1, 128, 128, 3)
    assert ep.observations["head_rgb"].shape == (T + 1, 256, 256, 3)
    assert ep.observations["head_rgb"].std() > 0  # real frames, not blanks


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


def test_expert_failures_are_capped_with_a_clear_message(tmp_path):
    with pytest.raises(CollectionError, match="failed too often.*pickup: 0/1 after 2 tries"):
        collect_demos(
            tmp_path / "s",
            tasks="pickup",
            episodes=1,
            noise=50.0,
            progress=False,
            max_attempts_factor=2,
        )
    assert EpisodeStore(tmp_path / "s", mode="r").count() == 0


def test_human_device_without_hardware_is_a_clear_error(tmp_path, capsys):
    rc = daft(
        "--device", "spacemouse", "--task", "pickup", "--episodes", "1", "--store", str(tmp_path)
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "daft collect: error:" in err and ("pyspacemouse" in err or "udev" in err)
    assert np.isfinite(rc)


class ExpertHands:
    """A 'person' on a teleop device: follows the scripted expert, or rests the whole episode."""

    name = "hands"

    def __init__(self, env_getter, idle=False):
        from daft_env.experts import make_expert

        self.expert = make_expert("multi")
        self.env_getter = env_getter
        self.idle = idle
        self.command = None

    def connect(self):
        pass

    def disconnect(self):
        pass

    def reset(self):
        pass

    def on_step(self, observation, policy_action, info):
        from hardware.teleop.base import TeleopCommand

        if self.idle:
            self.command = TeleopCommand()
            return
        a = self.expert.act(self.env_getter().unwrapped.privileged_state())
        self.command = TeleopCommand(
            translation=a[:3], rotation=a[3:6], gripper=float(a[6]), intervening=True
        )

    def read(self):
        return self.command


def test_human_device_path_saves_successes_and_discards_or_keeps_failures(tmp_path, monkeypatch):
    import daft_agent.cli.collect as collect

    made = []
    real_env_for = collect._env_for

    def spy(*a, **k):
        made.append(real_env_for(*a, **k))
        return made[-1]

    monkeypatch.setattr(collect, "_env_for", spy)
    hands = ExpertHands(lambda: made[-1])
    assert collect_demos(
        tmp_path / "s", tasks="pickup", episodes=2, device=hands, progress=False
    ) == {"pickup": 2}
    eps = list(EpisodeStore(tmp_path / "s", mode="r").episodes())
    assert len(eps) == 2 and all(e.success and e.kind == "demos" for e in eps)
    assert all(e.intervened.all() and e.metadata["device"] == "hands" for e in eps)
    # the human's translations are labelled (talk-and-tweak also applies to demos)
    assert any(c != "[null]" for e in eps for c in e.refinement_commands)
    idle = ExpertHands(lambda: made[-1], idle=True)
    collect_demos(
        tmp_path / "s", tasks="pickup", episodes=1, device=idle, progress=False, keep_failed=True
    )
    kept = [e for e in EpisodeStore(tmp_path / "s", mode="r").episodes() if not e.success]
    assert len(kept) == 1 and len(kept[0]) == 50 and not kept[0].intervened.any()
