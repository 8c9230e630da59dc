"""The store side of the embedding cache: whose embeddings a store holds, and rewriting episodes.

A frozen backbone's features h (Eq. 3) are stored with each episode (``Episode.embeddings``) so
the learner never re-encodes images. Features from two backbones, or from one backbone with two
sets of weights, must never mix in one store: a critic trained on one would read the other as
noise. The store therefore records, in ``<root>/embedding_identity.json``, what made its
embeddings (the backbone's name, a SHA-256 of its weights, its options and its output size), and
:func:`claim_embedding_identity` refuses any other.

The identity is a plain JSON object supplied by the caller (the agent side builds it); this module
only compares and stores it, so ``daft_env`` stays free of any model code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py

from daft_env.durable import replacing
from daft_env.durable import write_text as durable_write_text
from daft_env.episode import Episode
from daft_env.errors import StoreError
from daft_env.store import MARKER, EpisodeStore, validate_episode, write_episode_file

IDENTITY_FILE = "embedding_identity.json"
#: the identity fields that must agree for two sets of embeddings to mix
IDENTITY_KEYS = ("backbone", "weights_sha256", "features_dim", "options")


def read_embedding_identity(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The identity recorded in the store at ``root``, or None when it holds no embeddings yet.

    Raises:
        StoreError: the identity file exists but is not valid JSON with the expected fields.
    """
    path = Path(root) / IDENTITY_FILE
    if not path.exists():
        return None
    try:
        ident = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StoreError(
            f"{path} is not valid JSON ({exc}); delete it and re-run daft embed"
        ) from exc
    if not isinstance(ident, dict) or any(k not in ident for k in IDENTITY_KEYS):
        raise StoreError(f"{path} lacks the fields {list(IDENTITY_KEYS)}; delete it and re-embed")
    return ident


def _describe(ident: dict[str, Any]) -> str:
    return (
        f"{ident['backbone']} (weights sha256 {str(ident['weights_sha256'])[:12]}, "
        f"{ident['features_dim']} features, options {ident['options']})"
    )


def claim_embedding_identity(
    store: EpisodeStore, identity: dict[str, Any], replace: bool = False
) -> bool:
    """Tie the store's embeddings to ``identity``; refuse a store embedded by another backbone.

    Args:
        store: a store opened with ``mode="a"``.
        identity: ``{"backbone", "weights_sha256", "features_dim", "options"}`` (JSON-serialisable).
        replace: record ``identity`` even when another is recorded (the caller then re-embeds
            every episode).

    Returns:
        True when the store had no identity (or another one that ``replace`` overwrote).

    Raises:
        StoreError: the store was embedded by another backbone or other weights (the message names
            both and the ways out), it is read-only, or ``identity`` lacks a field.
    """
    missing = [k for k in IDENTITY_KEYS if k not in identity]
    if missing:
        raise StoreError(f"embedding identity lacks {missing}; it needs {list(IDENTITY_KEYS)}")
    wanted = {k: identity[k] for k in IDENTITY_KEYS}
    current = read_embedding_identity(store.root)
    if current is not None and {k: current[k] for k in IDENTITY_KEYS} == json.loads(
        json.dumps(wanted)
    ):
        return False
    if current is not None and not replace:
        raise StoreError(
            f"store {store.root} holds embeddings made by {_describe(current)}; this backbone is "
            f"{_describe(wanted)}. Features of two backbones (or two sets of weights) cannot mix. "
            f"Embed a copy of the store (daft export, then daft import into a new store), or "
            f"re-embed every episode of this one with `daft embed --store {store.root} "
            f"--backbone ... --replace`."
        )
    if store.mode != "a":
        raise StoreError(f"store {store.root} was opened read-only; open it with mode='a'")
    durable_write_text(
        store.root / IDENTITY_FILE, json.dumps(wanted, indent=2, sort_keys=True) + "\n"
    )
    return True


def has_embeddings(path: str | os.PathLike[str]) -> bool:
    """Whether an episode file already carries embeddings (reads no array)."""
    with h5py.File(path, "r") as f:
        return "embeddings" in f


def rewrite_episode(store: EpisodeStore, path: str | os.PathLike[str], episode: Episode) -> Path:
    """Durably replace one stored episode file with ``episode`` (e.g. now with embeddings).

    The new file is written beside the old one under a temp name, fsynced, renamed over it and
    the directory fsynced, as :meth:`EpisodeStore.add` does, so a crash leaves either the old or
    the new complete file. The index needs no change: the path, task, kind and length stay.

    Raises:
        StoreError: read-only store, a path outside the store, or an episode that differs from
            the stored one in task, kind or length (that would need a new index line).
    """
    if store.mode != "a":
        raise StoreError(f"store {store.root} was opened read-only; open it with mode='a'")
    final = Path(path) if Path(path).is_absolute() else store.root / path
    if store.root.resolve() not in final.resolve().parents or final.name == MARKER:
        raise StoreError(f"{final} is not an episode file of store {store.root}")
    old = store.load(final)
    if (old.task, old.kind, len(old)) != (episode.task, episode.kind, len(episode)):
        raise StoreError(
            f"{final}: a rewrite must keep task, kind and length ({old.task}, {old.kind}, "
            f"{len(old)}); got ({episode.task}, {episode.kind}, {len(episode)}). Use store.add."
        )
    validate_episode(episode)
    with replacing(final) as tmp:
        write_episode_file(tmp, episode, store.compression)
    return final


__all__ = [
    "IDENTITY_FILE",
    "IDENTITY_KEYS",
    "claim_embedding_identity",
    "has_embeddings",
    "read_embedding_identity",
    "rewrite_episode",
]
