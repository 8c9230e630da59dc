"""The live view and recordings (daft_env.display), read back with Rerun's own reader."""

import socket
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from support.recordings import read_recording, texts

import daft_env  # noqa: F401
from daft_env.display import (
    DisplayWarning,
    DisplayWrapper,
    OperatorStatus,
    StepStream,
    log_episode,
    viewer_url,
)
from daft_env.errors import ConfigError
from daft_env.operator import SimulatedOperator
from daft_env.store import EpisodeStore
from daft_env.wrappers import InterventionWrapper, RecordEpisodeToStore

pytest.importorskip("rerun")


def operated_env(task="assemble", obs_mode="state", steps=20, rate=0.3, seed=0):
    """The training recipe (a simulated operator taking over) on a short episode."""
    base = gym.make(f"Bolt{task.capitalize()}-Sim-v0", obs_mode=obs_mode, max_episode_steps=steps)
    return InterventionWrapper(base, SimulatedOperator(base, target_rate=rate, seed=seed))


def run_episodes(env, n, seed=0, policy=None, on_step=None):
    """A zero policy (it strays, so the operator takes over); returns the steps taken."""
    steps = 0
    for k in range(n):
        env.reset(seed=seed + k)
        while True:
            action = np.zeros(7) if policy is None else policy()
            _, _, terminated, truncated, info = env.step(action)
            steps += 1
            if on_step is not None:
                on_step(info)
            if terminated or truncated:
                break
    return steps


def free_port():
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_operated_run_records_cameras_poses_actions_takeovers_reasons_and_commands(tmp_path):
    path = tmp_path / "run.rrd"
    env = operated_env(obs_mode="pixels+state", steps=15)
    stream = StepStream.open(record_path=path)
    wrapped = DisplayWrapper(
        env, stream, robot="A", learner_stats=lambda: {"updates": 7, "weight_lag": 1}
    )
    operator = env.device
    seen = []  # (intervened, reason) as the operator decided them, step by step
    labels = []  # the final talk-and-tweak labels of each episode, in step order

    def on_step(info):
        seen.append((info["intervened"], operator.last_reason))
        labels.extend(info.get("episode_refinement_commands", []))

    steps = run_episodes(wrapped, 2, on_step=on_step)
    stream.close()
    env.close()
    assert stream.dropped == 0 and stream.logged > steps

    rec = read_recording(path)
    p = "robot/A/"
    for entity in (
        "camera/wrist_rgb",
        "camera/head_rgb",
        "world/tcp",
        "world/bolt",
        "world/fixture",
        "world/slot",
        "world/action/policy",
        "world/action/executed",
        "action/policy",
        "action/executed",
        "gripper",
        "operator/intervening",
        "operator/reason",
        "operator/command",
        "operator/share",
        "reward",
        "success",
        "episode",
        "learner/updates",
        "learner/weight_lag",
        "status",
    ):
        assert p + entity in rec, entity
    assert all(path.startswith("robot/A/") or path.startswith("__") for path in rec)
    # one row per step on the step timeline, steps 0 .. T-1 across both episodes
    assert [s for s, _ in rec[p + "camera/wrist_rgb"]] == list(range(steps))
    assert [s for s, _ in rec[p + "action/executed"] if s is not None] == list(range(steps))
    held = {s for s, row in rec[p + "operator/intervening"] if row["Scalars:scalars"] == 1.0}
    assert held == {i for i, (intervened, _) in enumerate(seen) if intervened}
    assert held, "a zero policy strays from the plan: the operator must take over"
    # every intervened step carries the operator's reason and its talk-and-tweak command
    reasons = texts(rec[p + "operator/reason"])
    assert set(reasons) == held
    assert all(reasons[i] == [seen[i][1]] for i in held)
    commands = texts(rec[p + "operator/command"])
    assert held <= set(commands) and len(labels) == steps
    assert all(commands[i] == [labels[i]] for i in held)
    assert any(c != "[null]" for i in held for c in commands[i])
    episode_lines = [row["TextLog:text"] for _, row in rec[p + "episode"]]
    assert episode_lines[0].startswith("episode 0 start: assemble the bolt")
    assert episode_lines[-1].startswith("episode 1 end: ") and len(episode_lines) == 4
    tcp = rec[p + "world/tcp"][0][1]["Transform3D:translation"]
    assert 0.2 < tcp[0] < 0.8 and 0.0 < tcp[2] < 0.5  # metres in the base frame, above the table
    share = rec[p + "operator/share"][-1][1]["Scalars:scalars"]
    assert share[1] == pytest.approx(0.3) and 0.0 < share[0] <= 1.0  # used share against its cap
    status = texts(rec[p + "status"], "TextDocument:text")
    assert "OPERATOR" in status[min(held)][0]


def test_two_robots_in_one_recording_have_one_subtree_each(tmp_path):
    path = tmp_path / "fleet.rrd"
    stream = StepStream.open(record_path=path)
    envs = [DisplayWrapper(operated_env(steps=6, seed=k), stream, robot=str(k)) for k in (0, 1)]
    counts = [run_episodes(envs[0], 2), run_episodes(envs[1], 1, seed=5)]
    stream.close()
    for e in envs:
        e.close()
    rec = read_recording(path)
    robots = {path.split("/")[1] for path in rec if path.startswith("robot/")}
    assert robots == {"0", "1"}
    for k, n in enumerate(counts):
        assert len([s for s, _ in rec[f"robot/{k}/action/executed"] if s is not None]) == n


def test_a_viewer_that_does_not_answer_warns_once_and_loses_nothing(tmp_path):
    path = tmp_path / "run.rrd"
    port = free_port()
    with pytest.warns(DisplayWarning, match=f"no Rerun viewer answers at 127.0.0.1:{port}") as w:
        stream = StepStream.open(address=f"127.0.0.1:{port}", record_path=path)
    assert len(w) == 1
    env = DisplayWrapper(operated_env(steps=8), stream)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DisplayWarning)  # no second warning, not at close either
        steps = run_episodes(env, 2)
        stream.close()
    env.close()
    assert stream.dropped == 0
    assert (
        len([s for s, _ in read_recording(path)["robot/0/action/executed"] if s is not None])
        == steps
    )


def test_a_stalled_viewer_drops_steps_instead_of_blocking_the_loop(tmp_path):
    import os
    import signal
    import time

    stream = StepStream.open(record_path=tmp_path / "run.rrd", queue_size=4)
    os.kill(stream.worker_pid, signal.SIGSTOP)  # the logging side stops reading, as a hung viewer
    try:
        images = {"head_rgb": np.zeros((256, 256, 3), np.uint8)}  # fills the pipe quickly
        t = time.perf_counter()
        results = [stream.log_step("0", None, images, {}, action=np.zeros(7)) for _ in range(200)]
        elapsed = time.perf_counter() - t
    finally:
        os.kill(stream.worker_pid, signal.SIGCONT)
    assert elapsed < 1.0  # 200 steps did not wait for the stalled side
    assert not all(results) and stream.dropped == results.count(False) > 100
    with pytest.warns(DisplayWarning, match=rf"dropped {stream.dropped} of 200 steps"):
        stream.close()
    kept = read_recording(tmp_path / "run.rrd")["robot/0/camera/head_rgb"]
    assert len(kept) == 200 - stream.dropped  # what was not dropped arrived


def test_off_by_default_and_a_disabled_stream_changes_nothing(tmp_path):
    stream = StepStream.open()
    assert not stream.enabled
    a, b = operated_env(steps=10), operated_env(steps=10)
    wrapped = DisplayWrapper(b, stream)
    outs = []
    for env in (a, wrapped):
        obs, _ = env.reset(seed=3)
        for _ in range(5):
            obs, r, *_ = env.step(np.full(7, 0.3))
        outs.append(obs["state"])
    np.testing.assert_array_equal(outs[0], outs[1])
    assert stream.logged == 0
    stream.close()
    a.close()
    b.close()


def test_bad_display_settings_name_the_problem_and_the_fix(tmp_path):
    assert viewer_url("10.0.0.5") == ("rerun+http://10.0.0.5:9876/proxy", "10.0.0.5", 9876)
    assert viewer_url("rerun+http://127.0.0.1:9000/proxy")[2] == 9000
    with pytest.raises(ConfigError, match="host:port"):
        viewer_url("127.0.0.1:port")
    with pytest.raises(ConfigError, match=r"\*\.rrd"):
        StepStream.open(record_path=tmp_path / "run.mp4")
    stream = StepStream.open(record_path=tmp_path / "run.rrd")
    with pytest.raises(ConfigError, match="entity path"):
        stream.clock("arm/left")
    stream.close()
    with pytest.raises(ConfigError, match="StepStream"):
        DisplayWrapper(operated_env(steps=2), None)


def test_without_rerun_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "rerun", None)
    with pytest.raises(ConfigError, match="pip install rerun-sdk"):
        StepStream.open(record_path=tmp_path / "run.rrd")
    assert not StepStream.open().enabled  # off needs no Rerun at all


def test_a_stored_episode_replays_with_its_talk_and_tweak_labels(tmp_path):
    store = EpisodeStore(tmp_path / "store")
    env = RecordEpisodeToStore(operated_env(steps=12), store)
    run_episodes(env, 1)
    env.close()
    ep = next(store.episodes())
    assert ep.intervened.any()
    path = tmp_path / "store.rrd"
    stream = StepStream.open(record_path=path)
    assert log_episode(stream, ep, robot="0") == len(ep)
    stream.close()
    rec = read_recording(path)
    held = [t for t in range(len(ep)) if ep.intervened[t]]
    commands = texts(rec["robot/0/operator/command"])
    assert {t: commands[t] for t in held} == {t: [ep.refinement_commands[t]] for t in held}
    assert [s for s, _ in rec["robot/0/world/tcp"]] == list(range(len(ep)))  # from obs["state"]
    assert texts(rec["robot/0/operator/reason"])[held[0]] == ["takeover by simulated"]


def test_operator_status_line_reads_as_a_heads_up():
    from daft_env.display import _status

    line = _status(OperatorStatus(True, "deviation", 0.12, 0.15), "move left")
    assert line == (
        '**OPERATOR** holds control (deviation) · command: "move left" · '
        "operator share 12 % of 15 %"
    )


def test_display_without_a_screen_warns_and_the_run_goes_on(monkeypatch, tmp_path):
    from daft_env.display import DEFAULT_PORT, _answers

    if _answers("127.0.0.1", DEFAULT_PORT, 0.2):
        pytest.skip("a Rerun viewer already listens on this machine")
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.warns(DisplayWarning, match="could not start a Rerun viewer") as w:
        stream = StepStream.open(spawn=True, record_path=tmp_path / "run.rrd")
    assert len(w) == 1 and stream.enabled  # the recording still gets every step
    env = DisplayWrapper(operated_env(steps=5), stream)
    steps = run_episodes(env, 1)
    stream.close()
    env.close()
    assert len(read_recording(tmp_path / "run.rrd")["robot/0/action/executed"]) == steps + 1


def test_rerun_and_av_load_only_when_a_stream_or_a_video_needs_them():
    """The arm server and every command that does not display run without the viz extra."""
    import subprocess

    code = (
        "import sys\n"
        "import daft_env.display, daft_env.lerobot, daft_agent.video, daft_agent.cli.view\n"
        "from daft_agent.cli import build_parser\n"
        "build_parser()\n"
        "import hardware.arm.server\n"
        "assert 'rerun' not in sys.modules and 'av' not in sys.modules, sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
