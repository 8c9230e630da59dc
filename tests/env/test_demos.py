"""daft_env.demos: expert and human-device demonstrations into an episode store."""

import pytest

import daft_env.demos as demos
from daft_env.demos import collect_demos
from daft_env.errors import CollectionError
from daft_env.store import EpisodeStore


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
    made = []
    real_env_for = demos._env_for

    def spy(*a, **k):
        made.append(real_env_for(*a, **k))
        return made[-1]

    monkeypatch.setattr(demos, "_env_for", spy)
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
