"""The durable EpisodeStore: round trip, index, corruption, missing store, crash safety."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from support.waiting import wait_until

from daft_env.episode import NULL_COMMAND, Episode
from daft_env.errors import CorruptEpisodeError, StoreError
from daft_env.store import EpisodeStore, count_takeovers, read_episode_file
from daft_env.tasks import get_task
from hardware.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def child_process(args, **kwargs):
    """Run ``args`` from the repository root; whatever happens in the block, it is reaped."""
    proc = subprocess.Popen(args, cwd=REPO, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def sigkill(proc):
    """Kill ``proc`` at once, as a power cut or an OOM kill would, and reap it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def make_episode(task="pickup", kind="interventions", T=12, seed=0, images=True, embeddings=True):
    rng = np.random.default_rng(seed)
    spec = get_task(task)
    obs = {
        "gripper": rng.normal(size=(T + 1, 1)).astype(np.float32),
        "state": rng.normal(size=(T + 1, 20)),
    }
    if images:
        obs["wrist_rgb"] = rng.integers(0, 256, (T + 1, 128, 128, 3), dtype=np.uint8)
        obs["head_rgb"] = rng.integers(0, 256, (T + 1, 256, 256, 3), dtype=np.uint8)
    intervened = np.zeros(T, bool)
    intervened[2:5] = True
    intervened[8:10] = True
    cmds = [NULL_COMMAND] * T
    words = ("move right and forward", "move left, backward and up", "move up", "move down")
    for t, c in zip((2, 3, 4, 8), words, strict=True):
        if t < T:
            cmds[t] = c
    terminated = np.zeros(T, bool)
    terminated[-1] = True
    rewards = np.zeros(T, np.float32)
    rewards[-1] = 1.0
    return Episode(
        task=task,
        task_id=spec.task_id,
        instruction=spec.instruction,
        kind=kind,
        observations=obs,
        actions=rng.uniform(-1, 1, (T, 7)).astype(np.float32),
        policy_actions=rng.uniform(-1, 1, (T, 7)).astype(np.float32),
        intervened=intervened,
        rewards=rewards,
        terminated=terminated,
        refinement_commands=cmds,
        success=True,
        embeddings=rng.normal(size=(T + 1, 16)).astype(np.float32) if embeddings else None,
        metadata={"seed": seed, "device": "mock", "nested": {"a": [1, 2]}},
    )


def assert_same(a: Episode, b: Episode):
    assert (a.task, a.task_id, a.instruction, a.kind, a.success) == (
        b.task,
        b.task_id,
        b.instruction,
        b.kind,
        b.success,
    )
    assert a.observations.keys() == b.observations.keys()
    for k in a.observations:
        assert a.observations[k].dtype == b.observations[k].dtype
        np.testing.assert_array_equal(a.observations[k], b.observations[k])
    for name in ("actions", "policy_actions", "intervened", "rewards", "terminated"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.refinement_commands == b.refinement_commands
    if a.embeddings is None:
        assert b.embeddings is None
    else:
        np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert a.metadata == b.metadata


def test_round_trip_every_field_including_images(tmp_path):
    store = EpisodeStore(tmp_path / "s")
    ep = make_episode()
    path = store.add(ep)
    assert path.parent == tmp_path / "s" / "pickup" / "interventions"
    assert path.suffix == ".h5"
    back = list(EpisodeStore(tmp_path / "s", mode="r").episodes())
    assert len(back) == 1
    assert_same(ep, back[0])
    # images are compressed and chunked one frame per chunk
    with h5py.File(path) as f:
        d = f["observations/head_rgb"]
        assert d.compression in ("lzf", "gzip") and d.chunks == (1, 256, 256, 3)
    # no embeddings, no images
    ep2 = make_episode(task="upright", kind="rollouts", images=False, embeddings=False, seed=1)
    store.add(ep2)
    assert_same(ep2, next(store.episodes(task="upright")))


def test_gzip_compression_round_trip(tmp_path):
    store = EpisodeStore(tmp_path, compression="gzip")
    ep = make_episode(T=3)
    assert_same(ep, store.load(store.add(ep)))


def test_index_lists_without_opening_files(tmp_path, monkeypatch):
    store = EpisodeStore(tmp_path)
    for i, (task, kind) in enumerate(
        [
            ("pickup", "demos"),
            ("pickup", "demos"),
            ("upright", "rollouts"),
            ("assemble", "interventions"),
        ]
    ):
        store.add(make_episode(task=task, kind=kind, T=5 + i, seed=i, images=False))
    # index.jsonl holds one line per episode
    lines = (tmp_path / "index.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["task"] == "pickup"

    opened = []
    real_file = h5py.File

    def spy(*a, **k):
        opened.append(a[0])
        return real_file(*a, **k)

    monkeypatch.setattr(h5py, "File", spy)
    reader = EpisodeStore(tmp_path, mode="r")
    entries = reader.index()
    assert opened == []
    assert [(e.task, e.kind, e.length) for e in entries] == [
        ("upright", "rollouts", 7),
        ("pickup", "demos", 5),
        ("pickup", "demos", 6),
        ("assemble", "interventions", 8),
    ]
    assert entries[0].n_interventions == 1 and entries[0].n_intervened_steps == 3
    assert entries[0].success is True
    assert reader.count(task="pickup", kind="demos") == 2
    assert reader.count(kind="rollouts") == 1
    assert reader.n_transitions(task="pickup") == 11
    assert opened == []


def test_index_is_rebuilt_when_missing_or_stale(tmp_path):
    store = EpisodeStore(tmp_path)
    for i in range(3):
        store.add(make_episode(T=4, seed=i, images=False))
    (tmp_path / "index.jsonl").unlink()
    assert EpisodeStore(tmp_path).count() == 3
    assert len((tmp_path / "index.jsonl").read_text().splitlines()) == 3
    # stale: a line cut by a crash, and a file deleted by hand
    with open(tmp_path / "index.jsonl", "a") as fh:
        fh.write('{"path": "pickup/interv')
    victim = store.index()[0].path
    (tmp_path / victim).unlink()
    store = EpisodeStore(tmp_path)
    assert store.count() == 2
    store.add(make_episode(T=4, seed=9, images=False))
    assert store.count() == 3
    assert store.rebuild_index() == 3
    assert len((tmp_path / "index.jsonl").read_text().splitlines()) == 3


def test_transitions_for_the_learner(tmp_path):
    store = EpisodeStore(tmp_path)
    ep = make_episode(T=6, images=False)
    ep.terminated[:] = False  # a truncated episode
    store.add(ep)
    trs = list(store.transitions(task="pickup"))
    assert len(trs) == 6
    for t, tr in enumerate(trs):
        obs, action, reward, next_obs, terminated, truncated, intervened, cmd, task_id = tr
        np.testing.assert_array_equal(obs["state"], ep.observations["state"][t])
        np.testing.assert_array_equal(next_obs["state"], ep.observations["state"][t + 1])
        np.testing.assert_array_equal(obs["embedding"], ep.embeddings[t])
        np.testing.assert_array_equal(action, ep.actions[t])
        assert reward == ep.rewards[t] and intervened == ep.intervened[t]
        assert cmd == ep.refinement_commands[t] and task_id == 1
        assert terminated is False
        assert truncated is (t == 5)


def corrupt_middle(path: Path):
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))


def test_corrupt_and_truncated_files_are_reported_by_name_and_skipped(tmp_path):
    store = EpisodeStore(tmp_path)
    paths = [store.add(make_episode(T=8, seed=i)) for i in range(4)]
    corrupt_middle(paths[1])  # image chunk bytes flipped: caught by the Fletcher-32 checksums
    with open(paths[2], "r+b") as fh:  # truncated
        fh.truncate(os.path.getsize(paths[2]) // 3)
    reader = EpisodeStore(tmp_path, mode="r")
    with pytest.warns(UserWarning) as record:
        eps = list(reader.episodes())
    assert len(eps) == 2
    assert_same(eps[0], make_episode(T=8, seed=0))
    assert_same(eps[1], make_episode(T=8, seed=3))
    messages = " ".join(str(w.message) for w in record)
    assert paths[1].name in messages and paths[2].name in messages
    assert set(reader.skipped) == {paths[1], paths[2]}
    with pytest.warns(UserWarning):
        assert set(EpisodeStore(tmp_path, mode="r").verify()) == {paths[1], paths[2]}
    with pytest.raises(CorruptEpisodeError, match=paths[2].name):
        read_episode_file(paths[2])
    # transitions for the learner skip them too, without raising
    with pytest.warns(UserWarning):
        assert len(list(EpisodeStore(tmp_path, mode="r").transitions())) == 16


def test_garbage_file_with_episode_name_is_skipped(tmp_path):
    store = EpisodeStore(tmp_path)
    store.add(make_episode(T=3, images=False))
    junk = tmp_path / "pickup" / "demos" / "ep_junk.h5"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"not an hdf5 file")
    with pytest.warns(UserWarning, match="ep_junk.h5"):
        assert EpisodeStore(tmp_path, mode="r").count() == 1


def test_missing_store_in_read_mode_says_how_to_create_it(tmp_path):
    with pytest.raises(StoreError, match="daft collect"):
        EpisodeStore(tmp_path / "nope", mode="r")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        EpisodeStore(tmp_path / "file")
    EpisodeStore(tmp_path / "new", mode="a")  # append mode creates it
    reader = EpisodeStore(tmp_path / "new", mode="r")
    assert reader.count() == 0
    with pytest.raises(StoreError, match="read-only"):
        reader.add(make_episode(T=2, images=False))
    with pytest.raises(ConfigError, match="mode"):
        EpisodeStore(tmp_path, mode="w")


def test_inconsistent_episode_is_refused_with_the_field_named(tmp_path):
    store = EpisodeStore(tmp_path)
    ep = make_episode(T=4, images=False)
    ep.refinement_commands = ep.refinement_commands[:-1]
    with pytest.raises(StoreError, match="refinement_commands"):
        store.add(ep)
    ep = make_episode(T=4, images=False)
    ep.observations["state"] = ep.observations["state"][:-1]
    with pytest.raises(StoreError, match="T\\+1"):
        store.add(ep)
    ep = make_episode(T=4, images=False)
    ep.kind = "misc"
    with pytest.raises(StoreError, match="kind"):
        store.add(ep)
    assert store.count() == 0


def test_leftover_temp_files_are_ignored_and_cleaned(tmp_path):
    store = EpisodeStore(tmp_path)
    store.add(make_episode(T=3, images=False))
    d = tmp_path / "pickup" / "interventions"
    dead = d / ".tmp-999999999-ep_20260101T000000_000000000_1_abcdef.h5.partial"
    dead.write_bytes(b"half an episode")
    live = d / f".tmp-{os.getppid()}-ep_x.h5.partial"  # a live writer's file is kept
    live.write_bytes(b"being written")
    reader = EpisodeStore(tmp_path, mode="r")
    assert reader.count() == 1 and reader.skipped == []
    assert dead.exists()  # readers never delete
    EpisodeStore(tmp_path)  # a writer opening the store cleans dead writers' leftovers
    assert not dead.exists() and live.exists()


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path[:0] = [{tests!r}, {support!r}]  # test_store and the support package it imports
    from test_store import make_episode
    from daft_env.store import EpisodeStore
    store = EpisodeStore(sys.argv[1])
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 10**9
    for i in range(limit):
        # large incompressible frames so that a write takes long enough to be interrupted
        store.add(make_episode(T=int(sys.argv[2]), seed=i))
        print(f"saved {{i}}", flush=True)
    """
)


def test_reader_in_another_process_while_a_writer_adds(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent), support=str(REPO / "tests")))
    n = 20
    counts = []
    with child_process(
        [sys.executable, str(script), str(tmp_path / "s"), "6", str(n)], stdout=subprocess.DEVNULL
    ) as writer:
        wait_until((tmp_path / "s").exists, 60, "the writer creating its store")
        reader = EpisodeStore(tmp_path / "s", mode="r")
        while writer.poll() is None:
            eps = list(reader.episodes())
            counts.append(len(eps))
            for ep in eps:
                assert_same(ep, make_episode(T=6, seed=ep.metadata["seed"]))
    assert writer.returncode == 0 and reader.skipped == []
    assert counts == sorted(counts) and 0 < len(counts)
    assert any(0 < c < n for c in counts)  # the reader really overlapped the writer
    assert reader.count() == n and len({e.path for e in reader.index()}) == n


def test_sigkill_during_a_write_loses_only_that_episode(tmp_path):
    root = tmp_path / "store"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent), support=str(REPO / "tests")))
    saved = []
    with child_process(
        [sys.executable, str(script), str(root), "40"], stdout=subprocess.PIPE, text=True
    ) as proc:
        while len(saved) < 2:
            line = proc.stdout.readline()
            assert line, "writer died before saving episodes"
            saved.append(line.split()[1])
        # kill while the next episode's temp file is being written
        wait_until(lambda: list(root.glob("**/.tmp-*.partial")), 60, "a temp file being written")
        sigkill(proc)
        saved += proc.stdout.read().split()[1::2]
    assert proc.returncode == -signal.SIGKILL
    reader = EpisodeStore(root, mode="r")
    eps = list(reader.episodes())
    assert reader.skipped == []
    assert len(eps) >= len(saved) >= 2
    for ep in eps:
        assert_same(ep, make_episode(T=40, seed=ep.metadata["seed"]))
    assert sorted(ep.metadata["seed"] for ep in eps) == list(range(len(eps)))
    # the store accepts new episodes and the killed writer's temp file is cleaned
    store = EpisodeStore(root)
    assert not list(root.glob("**/.tmp-*"))
    store.add(make_episode(T=3, seed=99, images=False))
    assert store.count() == len(eps) + 1
    assert store.verify() == []


def test_add_fsyncs_the_file_before_its_rename_and_the_directory_after(tmp_path, monkeypatch):
    import daft_env.durable as durable_module
    import daft_env.store as store_module

    store = EpisodeStore(tmp_path / "s")
    events = []
    real_replace = os.replace
    for module in (store_module, durable_module):
        monkeypatch.setattr(module, "fsync_path", lambda p: events.append(("fsync", Path(p))))
    monkeypatch.setattr(
        store_module.os,
        "replace",
        lambda a, b: (events.append(("rename", Path(a))), real_replace(a, b))[1],
    )
    final = store.add(make_episode(T=3, images=False))
    monkeypatch.undo()
    renames = [i for i, (kind, _) in enumerate(events) if kind == "rename"]
    tmp = events[renames[0]][1]
    assert tmp.name.startswith(".tmp-") and tmp.parent == final.parent
    assert ("fsync", tmp) in events[: renames[0]]  # the bytes are durable before the name is
    assert ("fsync", final.parent) in events[renames[0] :]  # and the new name after the rename
    assert events[-1] == ("fsync", Path(store.root))  # the index's fsync ends it (first index)


def test_count_takeovers():
    assert count_takeovers(np.array([], bool)) == 0
    assert count_takeovers(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == 3
    assert count_takeovers(np.array([0, 0], bool)) == 0


COLLECTOR = textwrap.dedent(
    """
    import sys, time
    import gymnasium as gym
    import daft_env
    from daft_env.experts import make_expert
    from daft_env.store import EpisodeStore
    from daft_env.wrappers import RecordEpisodeToStore

    store = EpisodeStore(sys.argv[1])
    env = RecordEpisodeToStore(
        gym.make("BoltPickup-Sim-v0", obs_mode="state"), store, kind="demos"
    )
    expert = make_expert("pickup")
    for ep in range(100):
        env.reset(seed=ep)
        t = 0
        while True:
            _, _, term, trunc, info = env.step(expert.act(env.unwrapped.privileged_state()))
            t += 1
            if ep == 3 and t == 5:
                print("mid-episode", flush=True)
                time.sleep(0.05)  # a slow (human-paced) episode: the kill lands here
            if term or trunc:
                break
        print("saved", ep, info["episode_saved_path"], flush=True)
    """
)


def test_sigkill_mid_episode_of_a_real_collection_loses_only_that_episode(tmp_path):
    root = tmp_path / "store"
    script = tmp_path / "collector.py"
    script.write_text(COLLECTOR)
    saved = []
    with child_process(
        [sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True
    ) as proc:
        while True:
            line = proc.stdout.readline()
            assert line, "collector died before reaching the 4th episode"
            if line.startswith("mid-episode"):
                break
            saved.append(line.split()[2])
        sigkill(proc)
    assert proc.returncode == -signal.SIGKILL and len(saved) == 3
    reader = EpisodeStore(root, mode="r")
    eps = list(reader.episodes())
    assert reader.skipped == [] and reader.verify() == []
    assert sorted(str(root / e.path) for e in reader.index()) == sorted(saved)
    assert sorted(ep.metadata["seed"] for ep in eps) == [0, 1, 2]
    for ep in eps:
        assert len(ep) == len(ep.observations["state"]) - 1 and ep.success
    # the store accepts new episodes afterwards
    store = EpisodeStore(root)
    store.add(make_episode(task="pickup", kind="demos", T=4, images=False))
    assert store.count(task="pickup", kind="demos") == 4


def test_episodes_are_listed_in_the_order_they_were_added_across_a_second_boundary(
    tmp_path, monkeypatch
):
    """A seeded run compares listings episode by episode, so the oldest-first order must hold
    even when consecutive adds straddle a second (the name's date and its nanoseconds once came
    from two clock readings and could disagree)."""
    import daft_env.store as store_module

    second = 1_800_000_000 * 10**9
    ticks = iter([second - 2, second + 1, second + 3 * 10**8])
    monkeypatch.setattr(store_module.time, "time_ns", lambda: next(ticks))
    store = EpisodeStore(tmp_path / "s")
    added = [make_episode(seed=s, images=False, embeddings=False) for s in range(3)]
    for ep in added:
        store.add(ep)
    listed = list(store.episodes())
    assert [ep.actions.tobytes() for ep in listed] == [ep.actions.tobytes() for ep in added]
