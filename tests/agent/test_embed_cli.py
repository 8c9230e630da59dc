"""The embedding cache (``daft embed``, the store's backbone identity) and ``daft export``/``import``."""

import json

import numpy as np
import pytest
import torch
from support.tiny_vla import pixel_episode, save_tiny_smolvla, save_tiny_vilt

from daft_agent.backbones.cache import (
    EmbedObservation,
    embed_observations,
    embed_store,
    frozen_backbone,
    space_of,
)
from daft_agent.backbones.registry import EMBEDDING_KEY
from daft_agent.buffers import DualActorReplay
from daft_agent.cli import main
from daft_env.embeddings import IDENTITY_FILE, has_embeddings, read_embedding_identity
from daft_env.errors import StoreError
from daft_env.store import EpisodeStore

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def smolvla_dir(tmp_path_factory):
    return save_tiny_smolvla(tmp_path_factory.mktemp("smolvla"))


@pytest.fixture
def store(tmp_path):
    s = EpisodeStore(tmp_path / "store")
    for i, (task, kind) in enumerate(
        [("upright", "demos"), ("pickup", "demos"), ("pickup", "interventions")]
    ):
        s.add(pixel_episode(task, 3 + i, seed=i, kind=kind))
    return s


def test_daft_embed_fills_every_episode_once_with_its_instruction(store, smolvla_dir, capsys):
    spec = f"smolvla:{smolvla_dir}"
    assert main(["embed", "--store", str(store.root), "--backbone", spec, "--no-progress"]) == 0
    assert "embedded 3 episodes, 0 already" in capsys.readouterr().out
    backbone = frozen_backbone(spec, space_of(next(store.episodes()).observations))
    for ep in store.episodes():
        assert ep.embeddings.shape == (len(ep) + 1, 32) and ep.embeddings.dtype == np.float32
        expected = embed_observations(backbone, ep.observations, ep.instruction)
        np.testing.assert_allclose(ep.embeddings, expected, rtol=1e-5, atol=1e-6)
    ident = read_embedding_identity(store.root)
    assert ident == {k: backbone.identity()[k] for k in ident}
    assert store.count() == 3 and not store.verify()  # rewritten in place, still whole

    before = {p: p.stat().st_mtime_ns for p in store.root.rglob("ep_*.h5")}
    assert main(["embed", "--store", str(store.root), "--backbone", spec, "--no-progress"]) == 0
    assert "embedded 0 episodes, 3 already" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in store.root.rglob("ep_*.h5")}

    # the learner reads the cached h through the embedding path
    replay = DualActorReplay(["upright", "pickup"], [EMBEDDING_KEY], 0.97, 1)
    replay.load_from_store(store)
    assert replay.demos["pickup"].all_observations()[EMBEDDING_KEY].shape[1] == 32


def test_embed_store_resumes_after_an_interruption(store, smolvla_dir):
    backbone = frozen_backbone(
        f"smolvla:{smolvla_dir}", space_of(next(store.episodes()).observations)
    )

    def stop_after_first(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_store(store, backbone, progress=stop_after_first)
    flags = [has_embeddings(store.root / e.path) for e in store.index()]
    assert flags == [True, False, False]
    report = embed_store(store, backbone)
    assert (report.embedded, report.skipped) == (2, 1)
    assert all(ep.embeddings is not None for ep in store.episodes())


def test_a_store_embedded_by_another_backbone_or_weights_is_refused(
    store, smolvla_dir, tmp_path, capsys
):
    spec = f"smolvla:{smolvla_dir}"
    assert main(["embed", "--store", str(store.root), "--backbone", spec, "--no-progress"]) == 0
    other_weights = save_tiny_smolvla(tmp_path / "other", seed=1)
    vilt = save_tiny_vilt(tmp_path / "vilt")
    for other in (f"smolvla:{other_weights}", f"readout:{vilt}"):
        rc = main(["embed", "--store", str(store.root), "--backbone", other, "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 1
        assert "holds embeddings made by smolvla" in err and "--replace" in err
    first = next(store.episodes()).embeddings
    # --replace re-embeds everything with the new identity
    rc = main(
        [
            "embed",
            "--store",
            str(store.root),
            "--backbone",
            f"readout:{vilt}",
            "--replace",
            "--no-progress",
        ]
    )
    assert rc == 0 and "embedded 3 episodes" in capsys.readouterr().out
    assert json.loads((store.root / IDENTITY_FILE).read_text())["backbone"] == "readout"
    replaced = next(store.episodes()).embeddings
    assert replaced.shape == first.shape and not np.allclose(replaced, first)


def test_embed_observation_wrapper_adds_h_to_every_observation(smolvla_dir):
    import gymnasium as gym

    class Cams(gym.Env):
        observation_space = space_of(pixel_episode().observations)
        action_space = gym.spaces.Box(-1, 1, (7,), np.float32)

        def reset(self, seed=None, options=None):
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    backbone = frozen_backbone(f"smolvla:{smolvla_dir}", Cams.observation_space)
    env = EmbedObservation(Cams(), backbone)
    assert env.observation_space[EMBEDDING_KEY].shape == (32,)
    obs, _ = env.reset()
    batch = {k: np.asarray(v)[None] for k, v in obs.items() if k != EMBEDDING_KEY}
    np.testing.assert_allclose(obs[EMBEDDING_KEY], backbone(batch)[0].numpy(), rtol=1e-5)
    assert env.step(np.zeros(7, np.float32))[0][EMBEDDING_KEY].shape == (32,)


def test_daft_export_then_import_round_trips_a_store(store, tmp_path, capsys):
    out = tmp_path / "lr"
    assert (
        main(["export", "--format", "lerobot", "--store", str(store.root), "--out", str(out)]) == 0
    )
    assert "3 episodes" in capsys.readouterr().out
    assert json.loads((out / "meta" / "info.json").read_text())["codebase_version"] == "v3.0"
    back = tmp_path / "back"
    rc = main(["import", "--format", "lerobot", "--in", str(out), "--store", str(back)])
    assert rc == 0 and "imported 3 episodes" in capsys.readouterr().out
    imported = EpisodeStore(back, mode="r")
    assert imported.count(kind="demos") == 3
    for a, b in zip(store.episodes(), imported.episodes(), strict=True):
        np.testing.assert_array_equal(b.actions, a.actions)
        np.testing.assert_array_equal(b.intervened, a.intervened)
        assert b.refinement_commands == a.refinement_commands
    # a second export into the same folder is refused, not merged
    rc = main(["export", "--store", str(store.root), "--out", str(out)])
    assert rc == 1 and "not an empty directory" in capsys.readouterr().err


def test_store_errors_are_clear(tmp_path, smolvla_dir, capsys):
    rc = main(["embed", "--store", str(tmp_path / "none"), "--backbone", f"smolvla:{smolvla_dir}"])
    assert rc == 1 and "no episode store" in capsys.readouterr().err
    with pytest.raises(StoreError, match="not valid JSON"):
        (tmp_path / IDENTITY_FILE).write_text("{")
        read_embedding_identity(tmp_path)


def test_daft_train_vla_tiny_runs_on_cached_smolvla_embeddings(tmp_path, smolvla_dir, capsys):
    out = tmp_path / "runs"
    spec = f"smolvla:{smolvla_dir}"
    argv = ["train", "--preset", "vla", "--tiny", "--output-dir", str(out), "--name", "v"]
    rc = main([*argv, "--backbone", spec, "--no-progress", "--steps", "120", "--eval-trials", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "embedded 6 stored episodes" in printed and "Average" in printed
    store = EpisodeStore(out / "v" / "store", mode="r")
    kinds = {e.kind for e in store.index()}
    assert "demos" in kinds and kinds - {"demos"}  # online episodes were stored too
    for ep in store.episodes():  # every episode, demos and online, carries h; none twice
        assert ep.embeddings.shape == (len(ep) + 1, 32)
        assert EMBEDDING_KEY not in ep.observations
    assert read_embedding_identity(store.root)["backbone"] == "smolvla"
    assert json.loads((out / "v" / "results.json").read_text())["online_env_steps"] == 120
    # the vla preset without a backbone is refused with the fix
    assert main([*argv, "--no-progress"]) == 1
    assert "--preset vla needs --backbone NAME:PATH" in capsys.readouterr().err
