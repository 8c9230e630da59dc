"""The embedding cache: run a frozen backbone once per observation, keep h with the transition.

Two places fill it, with one backbone identity (:func:`daft_env.embeddings.claim_embedding_identity`):

* the actor side: :class:`EmbedObservation` wraps the env so that every observation carries
  ``obs["embedding"]``; the agent (backbone ``embedding``) acts on it and the online episode
  keeps it as ``Episode.embeddings``;
* an existing store: :func:`embed_store` (``daft embed``) rewrites each episode durably with its
  embeddings; it is idempotent and resumable (episodes that have them are skipped).

The learner reads ``Episode.embeddings`` through the ``embedding`` backbone and never runs the
frozen model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from daft_agent.backbones.base import FrozenVLABackbone
from daft_agent.backbones.registry import EMBEDDING_KEY, frozen_backbones, make_backbone
from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_env.embeddings import claim_embedding_identity, has_embeddings, rewrite_episode
from daft_env.tasks import INSTRUCTIONS, TASK_NAMES


def parse_spec(spec: str) -> tuple[str, str]:
    """``"NAME:PATH"`` -> (NAME, PATH), e.g. ``"smolvla:~/models/smolvlm"``.

    Raises:
        AgentConfigError: no ``:``, an empty part, or a name that is not a frozen backbone.
    """
    name, sep, path = str(spec).partition(":")
    if not sep or not name or not path:
        raise AgentConfigError(
            f"a frozen backbone is given as NAME:PATH (e.g. smolvla:/models/smolvlm); got {spec!r}"
        )
    frozen = frozen_backbones()
    if name not in frozen:
        raise AgentConfigError(f"{name!r} is not a frozen backbone; choose one of {frozen}")
    return name, path


def space_of(observations: Mapping[str, np.ndarray]) -> spaces.Dict:
    """A Dict observation space for stacked stored observations (key -> (N, ...) arrays)."""
    out: dict[str, spaces.Space] = {}
    for key, arr in observations.items():
        a = np.asarray(arr)
        if key == "task_id":
            out[key] = spaces.Discrete(len(TASK_NAMES))
        elif a.dtype == np.uint8:
            out[key] = spaces.Box(0, 255, a.shape[1:], np.uint8)
        else:
            out[key] = spaces.Box(-np.inf, np.inf, a.shape[1:], np.float32)
    return spaces.Dict(out)


def frozen_backbone(
    spec: str,
    observation_space: spaces.Dict,
    tasks: Sequence[str] | None = None,
    **kwargs: Any,
) -> FrozenVLABackbone:
    """Build the frozen backbone ``NAME:PATH`` for an env.

    Args:
        spec: ``NAME:PATH``.
        observation_space: the env's observation space (its cameras are encoded).
        tasks: the env's task names in ``task_id`` order; their instruction texts condition h.
        **kwargs: backbone options (``cameras``, ``device``, ``num_vlm_layers``, ...).
    """
    name, path = parse_spec(spec)
    if tasks is not None and "instructions" not in kwargs:
        kwargs["instructions"] = [INSTRUCTIONS.get(t, t) for t in tasks]
    return make_backbone(name, observation_space, path=path, **kwargs)  # type: ignore[return-value]


def embed_observations(
    backbone: FrozenVLABackbone,
    observations: Mapping[str, np.ndarray],
    instruction: str,
    batch_size: int = 16,
) -> np.ndarray:
    """H (N, D) float32 for N stacked observations of one episode with its instruction text."""
    n = len(next(iter(observations.values())))
    out = []
    for i in range(0, n, batch_size):
        batch = {k: np.asarray(v[i : i + batch_size]) for k, v in observations.items()}
        rows = len(next(iter(batch.values())))
        out.append(backbone.encode(batch, [instruction] * rows).cpu().numpy())
    return np.concatenate(out, axis=0).astype(np.float32)


@dataclass
class EmbedReport:
    """What :func:`embed_store` did."""

    embedded: int
    skipped: int
    identity: dict[str, Any]


def embed_store(
    store: Any,
    backbone: FrozenVLABackbone,
    batch_size: int = 16,
    replace: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> EmbedReport:
    """Fill the embedding cache of every episode in ``store`` with ``backbone``'s features.

    Each episode is read, embedded with its own instruction and durably rewritten
    (:func:`daft_env.embeddings.rewrite_episode`). Episodes that already carry embeddings are
    skipped, so a second run does nothing and a killed run resumes where it stopped.

    Args:
        store: an :class:`~daft_env.store.EpisodeStore` opened with ``mode="a"``.
        backbone: a frozen backbone.
        batch_size: observations per forward pass.
        replace: re-embed every episode and record this backbone's identity even when the store
            was embedded by another.
        progress: ``progress(done, total)`` after each episode.

    Raises:
        StoreError: the store was embedded by another backbone or other weights (and not
            ``replace``).
        AgentConfigError: ``backbone`` is not frozen.
    """
    if not getattr(backbone, "frozen", False):
        raise AgentConfigError(
            f"{type(backbone).__name__} is trainable; caching its features would freeze them"
        )
    identity = backbone.identity()
    claim_embedding_identity(store, identity, replace=replace)
    entries = store.index()
    embedded = skipped = 0
    for i, entry in enumerate(entries):
        path = store.root / entry.path
        if not replace and has_embeddings(path):
            skipped += 1
        else:
            episode = store.load(path)
            episode.embeddings = embed_observations(
                backbone, episode.observations, episode.instruction, batch_size
            )
            rewrite_episode(store, path, episode)
            embedded += 1
        if progress is not None:
            progress(i + 1, len(entries))
    return EmbedReport(embedded=embedded, skipped=skipped, identity=identity)


def make_embedder(backbone: FrozenVLABackbone) -> Callable[[Mapping[str, Any]], np.ndarray]:
    """``embed(obs) -> (D,) float32`` for one observation (the actor side, once per step)."""

    def embed(obs: Mapping[str, Any]) -> np.ndarray:
        batch = {k: np.asarray(v)[None] for k, v in obs.items() if k != EMBEDDING_KEY}
        with torch.no_grad():
            return backbone(batch)[0].cpu().numpy().astype(np.float32)

    return embed


class EmbedObservation(gym.ObservationWrapper):
    """Adds ``obs["embedding"]`` = h of a frozen backbone to every observation of a Dict env.

    The agent's ``embedding`` backbone reads it when acting; the actor keeps it as the episode's
    ``embeddings`` so the learner trains on the same h.

    Args:
        env: an env with a Dict observation space holding the backbone's cameras.
        backbone: a frozen backbone built for ``env.observation_space``.
    """

    def __init__(self, env: gym.Env, backbone: FrozenVLABackbone) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or EMBEDDING_KEY in space.spaces:
            raise SpaceMismatchError(
                f"EmbedObservation needs a Dict observation space without {EMBEDDING_KEY!r}; "
                f"got {space}"
            )
        self.backbone = backbone
        self.embed = make_embedder(backbone)
        self.observation_space = spaces.Dict(
            {
                **space.spaces,
                EMBEDDING_KEY: spaces.Box(-np.inf, np.inf, (backbone.features_dim,), np.float32),
            }
        )

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """The observation with its embedding."""
        return {**observation, EMBEDDING_KEY: self.embed(observation)}


__all__ = [
    "EmbedObservation",
    "EmbedReport",
    "embed_observations",
    "embed_store",
    "frozen_backbone",
    "make_embedder",
    "parse_spec",
    "space_of",
]
