"""daft_env.durable: the one durable-write recipe (checkpoints, episodes, embeddings, models,
results)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from daft_env.durable import clean_partials, replacing, temp_path, write_text, write_with

KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from daft_env.durable import write_with

    def write(fh):
        fh.write(b"half a checkpoint")
        fh.flush()
        print("writing", flush=True)
        time.sleep(600)

    write_with(sys.argv[1], write)
    """
)


def test_write_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "results.json"
    write_text(target, "one\n")
    write_text(target, "two\n")
    assert target.read_text() == "two\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(tmp_path):
    target = tmp_path / "model.pt"
    write_text(target, "old")

    def fail(fh):
        fh.write(b"new but broken")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_with(target, fail)
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_a_sigkilled_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "checkpoint.zip"
    write_text(target, "good")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    left = [p for p in tmp_path.iterdir() if p != target]
    assert len(left) == 1 and left[0].name.endswith(".partial")  # what SIGKILL leaves
    assert target.read_text() == "good"  # the old checkpoint is intact
    write_text(target, "newer")
    assert list(tmp_path.iterdir()) == [target]


def test_a_live_writers_temp_file_is_kept(tmp_path):
    target = tmp_path / "checkpoint.zip"
    live = temp_path(target).with_name(f".tmp-{os.getppid()}-checkpoint.zip.partial")
    live.write_bytes(b"in progress")
    dead = temp_path(target).with_name(".tmp-999999999-checkpoint.zip.partial")
    dead.write_bytes(b"abandoned")
    assert clean_partials(tmp_path, "checkpoint.zip") == [dead]
    assert live.exists()


def test_the_rename_comes_after_the_bytes_are_written(tmp_path):
    target = tmp_path / "f.bin"
    with replacing(target) as tmp:
        tmp.write_bytes(b"x")
        assert not target.exists()  # nothing under the final name until the block ends
    assert target.read_bytes() == b"x" and not tmp.exists()
