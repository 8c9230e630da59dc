"""Checkpoints: consistent under a running learner, atomic under a kill, honest about damage and
format, and complete (critics and target critics come back exactly)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from support.learner_fixtures import tiny_agent
from support.toy_env import ToyBoltEnv, fill_store_with_demos, toy_hil_env
from support.waiting import stays_false, wait_until

from daft_agent import DualActorAgent
from daft_agent.errors import CheckpointError
from daft_agent.update import Learner
from daft_env.store import EpisodeStore

torch.set_num_threads(1)
TASKS = ("upright", "pickup", "assemble")
TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    s = EpisodeStore(tmp_path / "store")
    fill_store_with_demos(s, ToyBoltEnv(tasks=TASKS), 2)
    return s


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_checkpoint_written_by_sb3s_callback_during_online_learning_loads(store, tmp_path):
    """The learner thread steps the optimisers while the callback saves; every file must be a
    consistent snapshot (this used to fail with 'Bad CRC-32 for policy.actor.optimizer.pth')."""
    agent = tiny_agent(
        toy_hil_env(ToyBoltEnv(tasks=TASKS, max_steps=10), seed=0),
        store,
        policy_kwargs=dict(actor_hidden=(64, 64), critic_hidden=(64, 64), refinement_hidden=(32,)),
        batch_size=48,
        utd_ratio=2.0,
        max_update_lag=8,
    )
    ckpt_dir = tmp_path / "ckpts"
    agent.learn(150, callback=CheckpointCallback(save_freq=10, save_path=str(ckpt_dir)))
    files = sorted(ckpt_dir.glob("*.zip"))
    assert len(files) == 15
    for f in files:
        loaded = DualActorAgent.load(f, env=ToyBoltEnv(tasks=TASKS), store=store)
        steps = int(f.stem.split("_")[-2])  # rl_model_<steps>_steps.zip
        assert loaded.num_timesteps == steps
    assert agent.online_updates_done > 0 and not list(ckpt_dir.glob("*.partial"))


def test_save_from_a_callback_waits_for_the_update_in_progress(store, tmp_path, monkeypatch):
    """A deterministic version of the test above: an update is held in the middle while a
    callback saves from another thread; the save must wait for it (it takes the learner's lock)."""
    in_update, release, saved = threading.Event(), threading.Event(), threading.Event()
    real_update = Learner.update

    def held_update(self, phase):
        if phase == "online" and not release.is_set():
            in_update.set()
            release.wait(timeout=120)
        return real_update(self, phase)

    monkeypatch.setattr(Learner, "update", held_update)
    agent = tiny_agent(ToyBoltEnv(tasks=TASKS, max_steps=5), store, max_update_lag=1000)
    path = tmp_path / "during_update.zip"

    class SaveDuringUpdate(BaseCallback):
        waited = None

        def _on_step(self):
            if in_update.is_set() and self.waited is None:
                saver = threading.Thread(target=lambda: (agent.save(path), saved.set()))
                saver.start()
                # how long the test watches, not a bound: the save must not finish meanwhile
                self.waited = stays_false(saved.is_set, 0.5)
                release.set()
                saver.join(timeout=120)
            return True

    cb = SaveDuringUpdate()
    agent.learn(60, callback=cb)
    assert cb.waited is True and saved.is_set()
    assert DualActorAgent.load(path, env=ToyBoltEnv(tasks=TASKS), store=store).tasks == TASKS


_CHILD = """
import sys, time
from pathlib import Path

import torch
from support.learner_fixtures import tiny_agent
from support.toy_env import ToyBoltEnv

path, ready = Path(sys.argv[1]), Path(sys.argv[2])
agent = tiny_agent(ToyBoltEnv(tasks=("upright", "pickup")), None)
agent.save(path)  # the checkpoint that must survive
with torch.no_grad():
    for p in agent.policy.parameters():
        p.add_(1.0)

real_save, calls = torch.save, []


def save_then_hang(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    calls.append(1)
    if len(calls) == 2:  # part of the new checkpoint is written
        ready.write_text("mid-save")
        time.sleep(600)


torch.save = save_then_hang
agent.save(path)
"""


def test_a_process_killed_in_the_middle_of_save_keeps_the_previous_checkpoint(tmp_path):
    path, ready = tmp_path / "checkpoint.zip", tmp_path / "ready"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(TESTS_DIR.parent)])}
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), str(ready)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: ready.exists() or child.poll() is not None,
            timeout=180,
            what="the child to reach the middle of its second save",
        )
        assert ready.exists(), child.communicate()[0].decode(errors="replace")[-2000:]
        before_kill = path.read_bytes()
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == before_kill  # the kill did not touch the old file
    loaded = DualActorAgent.load(path, env=ToyBoltEnv(tasks=("upright", "pickup")))
    fresh = tiny_agent(ToyBoltEnv(tasks=("upright", "pickup")), None)  # same seed as the child's
    assert _same_state(loaded.policy, fresh.policy)  # the first save's weights, not the +1 ones


def _member_data_offset(path: Path, member: str) -> tuple[int, int]:
    """(offset of the member's stored bytes, their length) inside the zip file."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    with open(path, "rb") as fh:
        fh.seek(info.header_offset + 26)
        name_len = int.from_bytes(fh.read(2), "little")
        extra_len = int.from_bytes(fh.read(2), "little")
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def test_a_damaged_checkpoint_is_reported_as_corrupt_naming_the_member(store, tmp_path):
    path = tmp_path / "ckpt.zip"
    tiny_agent(ToyBoltEnv(tasks=TASKS), store).save(path)
    member = "policy.actor.optimizer.pth"
    start, size = _member_data_offset(path, member)
    raw = bytearray(path.read_bytes())
    for i in range(start + size // 2, start + size // 2 + 8):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt") as err:
        DualActorAgent.load(path, env=ToyBoltEnv(tasks=TASKS), store=store)
    assert member in str(err.value)
    assert "another configuration" not in str(err.value)


def _rewrite_data(path: Path, out: Path, edit) -> None:
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename == "data":
                data = json.loads(payload)
                edit(data)
                payload = json.dumps(data).encode()
            dst.writestr(info, payload)


def test_a_checkpoint_without_or_with_another_format_version_names_the_version(store, tmp_path):
    path = tmp_path / "ckpt.zip"
    agent = tiny_agent(ToyBoltEnv(tasks=TASKS), store)
    agent.save(path)
    with zipfile.ZipFile(path) as zf:
        current = json.loads(zf.read("data"))["checkpoint_format"]
    old = tmp_path / "unversioned.zip"
    _rewrite_data(path, old, lambda d: d.pop("checkpoint_format"))
    with pytest.raises(CheckpointError, match="format version") as err:
        DualActorAgent.load(old, env=ToyBoltEnv(tasks=TASKS), store=store)
    assert "none" in str(err.value) and str(current) in str(err.value)
    other = tmp_path / "other.zip"
    _rewrite_data(path, other, lambda d: d.update(checkpoint_format=current + 1))
    with pytest.raises(CheckpointError, match=f"format version {current + 1}"):
        DualActorAgent.load(other, env=ToyBoltEnv(tasks=TASKS), store=store)
    # the untouched file still loads
    assert DualActorAgent.load(path, env=ToyBoltEnv(tasks=TASKS), store=store).tasks == TASKS


def test_critics_and_target_critics_come_back_exactly_after_load(store, tmp_path):
    agent = tiny_agent(toy_hil_env(ToyBoltEnv(tasks=TASKS), seed=0), store, tau=0.3)
    agent.learn(80)
    pol = agent.policy
    assert agent.online_updates_done > 0 and agent.normalizer_fitted
    # the targets lag the critics, so saving one in place of the other would be caught below
    assert not _same_state(pol.critics, pol.critics_target)
    agent.save(tmp_path / "ckpt.zip")
    loaded = DualActorAgent.load(tmp_path / "ckpt.zip", env=ToyBoltEnv(tasks=TASKS), store=store)
    for name in ("critics", "critics_target"):
        a, b = getattr(pol, name), getattr(loaded.policy, name)
        assert _same_state(a, b), name
        buffers = dict(a.named_buffers())
        assert buffers and all(
            torch.equal(v, dict(b.named_buffers())[k]) for k, v in buffers.items()
        )
    # and they keep working: one more update from the loaded agent moves its critics
    before = {k: v.clone() for k, v in loaded.policy.critics.state_dict().items()}
    loaded.load_buffers()
    loaded.learner.update("online")
    assert any(not torch.equal(v, loaded.policy.critics.state_dict()[k]) for k, v in before.items())
