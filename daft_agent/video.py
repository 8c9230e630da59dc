"""Rollout videos: one MP4 per task, head and wrist cameras side by side, command and outcome drawn.

The MP4s are AV1 (:mod:`daft_env.videoio`), which browsers, LeRobot's decoders and Rerun play;
writing them needs PyAV (``pip install av``).

A person looks at a policy before trusting its number. The episodes run on a ``pixels+state``
twin of the evaluation env, so both cameras render whatever the policy reads (a state-mode policy
sees only its own keys), under the simulated operator in speak mode: the command it speaks is
applied on the next step (as in ``daft evaluate --with-commands``) and drawn on the frames it
applies to. The last frame of each episode is held for a second with its outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daft_agent.errors import AgentConfigError
from daft_env.spaces import CONTROL_HZ, HEAD_SHAPE

#: height of the caption band under the cameras, in pixels
CAPTION = 44
#: frames the outcome is held for at the end of an episode (one second)
HOLD = int(CONTROL_HZ)


def compose_frame(
    obs: dict[str, Any], lines: Sequence[str], colour: tuple[int, int, int]
) -> np.ndarray:
    """Head and wrist images side by side (wrist scaled to the head's height), captions below.

    Returns an RGB uint8 array of shape (H + CAPTION, 2 H, 3), H the head camera's height.
    """
    import cv2

    head = np.asarray(obs["head_rgb"], np.uint8)
    h = head.shape[0]
    wrist = cv2.resize(
        np.asarray(obs["wrist_rgb"], np.uint8), (h, h), interpolation=cv2.INTER_NEAREST
    )
    frame = np.zeros((h + CAPTION, 2 * h, 3), np.uint8)
    frame[:h, :h] = head
    frame[:h, h:] = wrist
    for i, text in enumerate(lines):
        cv2.putText(
            frame,
            text,
            (6, h + 17 + 19 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            colour,
            1,
            cv2.LINE_AA,
        )
    return frame


class _PolicyView:
    """The agent seen through its own observation keys (the video env observes more)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.keys = list(agent.observation_space.spaces)

    def predict(self, observation: Any, deterministic: bool = False, **kwargs: Any) -> Any:
        return self.agent.predict(
            {k: observation[k] for k in self.keys}, deterministic=deterministic, **kwargs
        )


class _Recorder:
    """Frames of one task's episodes, written as one MP4 (AV1)."""

    def __init__(self, path: Path, task: str, fps: int) -> None:
        from daft_env.videoio import VideoWriter

        self.path = path
        self.task = task
        try:
            self.writer = VideoWriter(path, 2 * HEAD_SHAPE[1], HEAD_SHAPE[0] + CAPTION, fps)
        except OSError as exc:
            raise AgentConfigError(
                f"cannot write an MP4 at {path} ({exc}); check the folder is writable"
            ) from exc
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame, key=self.frames == 0)
        self.frames += 1

    def on_step(
        self, trial: int, obs: Any, info: dict[str, Any], command: str | None, done: bool
    ) -> None:
        said = f'command: "{command}"' if command else "command: -"
        lines = [
            f"{info.get('instruction', self.task)}  (trial {trial + 1}, step {info.get('steps', '?')})",
            said,
        ]
        self.write(compose_frame(obs, lines, (255, 255, 0) if command else (230, 230, 230)))
        if done:
            ok = bool(info.get("is_success"))
            end = compose_frame(
                obs,
                [lines[0], "SUCCESS" if ok else "FAILURE"],
                (0, 255, 0) if ok else (255, 60, 60),
            )
            for _ in range(HOLD):
                self.write(end)

    def close(self) -> None:
        self.writer.close()


def record_videos(
    agent: Any,
    env_id: str,
    tasks: Sequence[str],
    directory: Path,
    trials: int = 1,
    seed: int = 10_000,
    fps: int = int(CONTROL_HZ),
) -> list[Path]:
    """Write ``<directory>/<task>.mp4`` of ``trials`` episodes per task; returns the paths.

    Args:
        agent: anything with SB3's ``predict`` (``command=`` too) and ``observation_space``.
        env_id: a sim env id (the simulated operator speaks from privileged state).
        tasks: the tasks to record.
        directory: created if missing.
        trials: episodes per task, on seeds ``seed, seed + 1, ...``.
        seed: first seed.
        fps: frames per second of the videos (the robot's 10 Hz by default: real time).

    Raises:
        AgentConfigError: ``trials`` < 1, or no MP4 can be written in ``directory``.
        ConfigError: PyAV is not installed.
    """
    import gymnasium as gym

    from daft_agent.evaluation import run_trials
    from daft_agent.runs.envs import operated

    if trials < 1:
        raise AgentConfigError(f"--video-trials must be >= 1; got {trials}")
    directory.mkdir(parents=True, exist_ok=True)
    base = gym.make(env_id, obs_mode="pixels+state")
    env = operated(base, mode="speak", seed=seed)
    policy = _PolicyView(agent)
    paths = []
    try:
        for task in tasks:
            rec = _Recorder(directory / f"{task}.mp4", task, fps)
            try:
                run_trials(policy, env, task, trials, seed, use_commands=True, on_step=rec.on_step)
            finally:
                rec.close()
            paths.append(rec.path)
    finally:
        env.close()
    return paths


__all__ = ["compose_frame", "record_videos"]
