"""Checkpoint files: the format version and a check before loading.

A checkpoint is SB3's zip (``data`` JSON + one ``.pth`` member per state dict). DAFT adds
``checkpoint_format`` to ``data``. :func:`check_checkpoint` runs before SB3 reads anything, so a
damaged file is reported as damaged (naming the member whose CRC fails) and a file of another
layout is reported with both versions and the fix, rather than as a configuration mismatch.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

from daft_agent.errors import CheckpointError

#: Version of the checkpoint layout. 1 (unversioned): network settings were DualActorAgent
#: arguments. 2: network settings are ``policy_kwargs`` (``NetworkConfig`` fields). 3: the state
#: backbone appends relative positions by default (``backbone_kwargs={"relative": ...}``). 4: it
#: also appends their millimetre features tanh(delta / 5 mm) (``fine_scale``).
CHECKPOINT_FORMAT = 4


def check_checkpoint(path: Path) -> Path:
    """Check that ``path`` is an intact checkpoint of this format; returns the file's path.

    As in SB3, ``path`` without its ``.zip`` suffix is accepted.

    Raises:
        CheckpointError: no such file; the zip is truncated or not a zip; a member fails its CRC
            check (the member is named); ``data`` is unreadable; or the format version differs
            from :data:`CHECKPOINT_FORMAT` (both versions and the fix are named).
    """
    if not path.exists() and path.suffix != ".zip" and path.with_name(path.name + ".zip").exists():
        path = path.with_name(path.name + ".zip")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    damaged = (
        f"checkpoint {path} is corrupt (a write was interrupted or the file was damaged); "
        "restore it from a copy or train again"
    )
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise CheckpointError(f"{damaged}: member {bad!r} fails its CRC-32 check")
            data = json.loads(archive.read("data"))
    except CheckpointError:
        raise
    except KeyError as exc:
        raise CheckpointError(f"{damaged}: it has no 'data' member") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise CheckpointError(f"{damaged}: {exc}") from exc
    found = data.get("checkpoint_format")
    if found != CHECKPOINT_FORMAT:
        shown = (
            "none (written before checkpoints carried a format version)" if found is None else found
        )
        raise CheckpointError(
            f"checkpoint {path} has format version {shown}; this DAFT reads format "
            f"{CHECKPOINT_FORMAT}. Format 2 moved the network settings (actor_hidden, "
            "critic_hidden, refinement_hidden, n_critics, K, sigma_min, sigma_data, n_sigmas, "
            "mu_max, backbone, backbone_kwargs) from DualActorAgent's arguments into "
            "policy_kwargs; format 3 gave the state backbone relative positions by default and "
            "format 4 their millimetre features, so its input is wider. Train a new run (e.g. daft train --name <new name>), or load this "
            "file with the DAFT release that wrote it."
        )
    return path


__all__ = ["CHECKPOINT_FORMAT", "check_checkpoint"]
