"""``daft evaluate --video DIR``: one MP4 per task, both cameras, the command and outcome drawn."""

import numpy as np
import pytest

from daft_agent.cli import main
from daft_agent.video import CAPTION, compose_frame


class TalkingStandIn:
    """A state-mode zero policy that records what it is shown and told."""

    backbone = "state"
    tasks = ("pickup", "upright")

    def __init__(self):
        import gymnasium as gym

        import daft_env  # noqa: F401

        env = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
        self.observation_space = env.observation_space
        env.close()
        self.keys, self.commands = set(), []

    def set_env(self, env):
        pass

    def predict(self, observation, deterministic=False, command=None):
        self.keys |= set(observation)
        self.commands.append(command)
        return np.zeros(7, dtype=np.float32), None


@pytest.fixture
def agent(monkeypatch, tmp_path):
    from daft_agent.agent import DualActorAgent

    stand_in = TalkingStandIn()
    monkeypatch.setattr(DualActorAgent, "load", classmethod(lambda cls, path: stand_in))
    (tmp_path / "checkpoint.zip").write_bytes(b"")
    return stand_in


def test_video_writes_one_playable_mp4_per_task_of_the_full_episode(agent, tmp_path, capsys):
    import av

    from daft_env.videoio import read_video

    out = tmp_path / "videos"
    argv = ["evaluate", str(tmp_path / "checkpoint.zip"), "--trials", "1", "--video", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["pickup.mp4", "upright.mp4"]
    frames = read_video(out / "pickup.mp4")
    # a zero policy never succeeds: 50 steps, then the outcome held for one second (10 frames)
    assert frames.shape == (50 + 10, 256 + CAPTION, 512, 3)
    with av.open(str(out / "pickup.mp4")) as container:  # AV1, which Rerun and LeRobot decode
        assert container.streams.video[0].codec_context.name in ("libdav1d", "av1")
    # the state-mode policy was shown only its own keys, though the video env renders cameras
    assert agent.keys == {"state", "gripper", "task_id"}
    # the videos run with the simulated operator speaking, and its commands reach the policy
    assert any(c is not None for c in agent.commands)
    assert "video: " in capsys.readouterr().out


def test_compose_frame_puts_head_left_wrist_right_and_captions_below():
    head = np.zeros((256, 256, 3), np.uint8)
    head[..., 0] = 200
    wrist = np.zeros((128, 128, 3), np.uint8)
    wrist[..., 2] = 150
    frame = compose_frame(
        {"head_rgb": head, "wrist_rgb": wrist}, ['command: "move left"'], (255, 255, 0)
    )
    assert frame.shape == (256 + CAPTION, 512, 3)
    assert tuple(frame[10, 10]) == (200, 0, 0) and tuple(frame[10, 300]) == (0, 0, 150)
    assert frame[256:].any()  # the caption is drawn
    blank = compose_frame({"head_rgb": head, "wrist_rgb": wrist}, [], (255, 255, 0))
    assert not blank[256:].any()


def test_video_trials_below_one_is_refused_before_evaluating(agent, tmp_path, capsys):
    argv = [
        "evaluate",
        str(tmp_path / "checkpoint.zip"),
        "--video",
        str(tmp_path),
        "--video-trials",
        "0",
    ]
    assert main(argv) == 1
    assert "--video-trials must be >= 1" in capsys.readouterr().err
    assert agent.commands == []
