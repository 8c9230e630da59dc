"""``--display`` / ``--record`` on daft collect and daft evaluate, and ``daft view``.

Each command records a short run to an ``.rrd`` file, read back with Rerun's own reader.
"""

import socket

import pytest
from support.recordings import read_recording, texts

from daft_agent.cli import main
from daft_env.store import EpisodeStore

pytest.importorskip("rerun")


def steps_of(rec, robot="0"):
    return [s for s, _ in rec[f"robot/{robot}/action/executed"] if s is not None]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_collect_records_every_step_of_its_demos_and_survives_a_silent_viewer(tmp_path, capsys):
    out, store = tmp_path / "collect.rrd", tmp_path / "store"
    port = free_port()
    argv = ["collect", "--task", "pickup", "--episodes", "2", "--store", str(store)]
    argv += ["--no-progress", "--record", str(out), "--display-address", f"127.0.0.1:{port}"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("warning: no Rerun viewer answers") == 1
    lengths = [e.length for e in EpisodeStore(store).index()]
    assert len(lengths) == 2  # nothing lost: both demos are in the store
    rec = read_recording(out)
    assert steps_of(rec) == list(range(sum(lengths)))
    assert "robot/0/world/tcp" in rec and "robot/0/world/bolt" in rec  # the privileged poses
    assert not any(path.startswith("robot/0/camera/") for path in rec)  # state mode: no cameras
    lines = [row["TextLog:text"] for _, row in rec["robot/0/episode"]]
    assert lines[0].startswith("episode 0 start: pick up the bolt (collect, scripted expert)")
    assert lines[-1] == f"episode 1 end: success after {lengths[1]} steps"


def test_evaluate_records_both_columns_with_the_commands_spoken(agent, tmp_path):
    out = tmp_path / "eval.rrd"
    argv = ["evaluate", str(tmp_path / "checkpoint.zip"), "--trials", "1", "--with-commands"]
    assert main(argv + ["--record", str(out)]) == 0
    rec = read_recording(out)
    assert steps_of(rec) == list(range(2 * 50))  # a zero policy fails: 50 steps per column
    lines = [row["TextLog:text"] for _, row in rec["robot/0/episode"]]
    assert "(nominal, autonomous)" in lines[0] and "(nominal, with commands)" in lines[2]
    spoken = texts(rec["robot/0/operator/command"])
    assert spoken and min(spoken) >= 50  # commands are spoken in the with-commands column only
    fed = [c for c in agent.commands if c is not None]
    assert set(fed) <= {t for ts in spoken.values() for t in ts}


def test_view_replays_a_store_into_a_recording_and_opens_a_recording(tmp_path, monkeypatch):
    store = tmp_path / "store"
    assert main(["collect", "--task", "upright", "--episodes", "2", "--store", str(store)]) == 0
    out = tmp_path / "store.rrd"
    assert main(["view", "--store", str(store), "--episode", "1", "--record", str(out)]) == 0
    length = EpisodeStore(store).index()[1].length
    assert steps_of(read_recording(out)) == list(range(length))

    import daft_agent.cli.view as view

    opened = []
    monkeypatch.setattr(view.subprocess, "call", lambda cmd: opened.append(cmd) or 0)
    assert main(["view", str(out)]) == 0
    assert opened == [view.viewer_command(out)] and opened[0][1:3] == ["-m", "rerun"]


def test_view_bad_input_names_the_problem(tmp_path, capsys):
    assert main(["view", str(tmp_path / "missing.rrd")]) == 1
    assert "no recording at" in capsys.readouterr().err
    assert main(["view"]) == 1
    assert "give a recording" in capsys.readouterr().err
    store = tmp_path / "store"
    assert main(["collect", "--task", "upright", "--episodes", "1", "--store", str(store)]) == 0
    assert main(["view", "--store", str(store), "--episode", "5", "--record", "x.rrd"]) == 1
    assert "--episode 5 is out of range" in capsys.readouterr().err
    assert main(["collect", "--episodes", "1", "--store", str(store), "--record", "x.mp4"]) == 1
    assert "name it *.rrd" in capsys.readouterr().err


def test_daft_train_record_writes_the_online_phase(tmp_path):
    """``daft train --record``: every online step, with who held control, why, and the command."""
    out = tmp_path / "train.rrd"
    argv = ["train", "--tiny", "--steps", "100", "--eval-every", "0", "--skip-eval"]
    argv += ["--output-dir", str(tmp_path / "runs"), "--name", "t", "--no-progress"]
    argv += ["--store", str(tmp_path / "store"), "--record", str(out)]
    assert main(argv) == 0
    rec = read_recording(out)
    assert len(steps_of(rec)) >= 100  # every online step (the last episode runs to its end)
    held = {s for s, row in rec["robot/0/operator/intervening"] if row["Scalars:scalars"] == 1.0}
    assert held and held <= set(texts(rec["robot/0/operator/reason"]))
    assert held <= set(texts(rec["robot/0/operator/command"]))
    assert "robot/0/learner/updates" in rec  # the learner's update count rides along
