"""Labelled frames for the success classifier, from an episode store or a folder of PNGs.

Labels from an :class:`~daft_env.store.EpisodeStore`: in a successful episode the observations
after a rewarded step and the last ``positive_final`` observations are positive; observations
more than ``negative_margin`` steps before the first positive are negative (the frames just
before success are ambiguous and left out); every observation of a failed episode is negative.

Labels from a directory: ``DIR/success/*.png`` and ``DIR/failure/*.png``; with several cameras a
sample is the files ``NAME.<image_key>.png`` sharing ``NAME``; ``NAME`` of the form
``EPISODE_STEP`` groups frames by episode, so the held-out split keeps episodes whole.

No torch here: frames can be prepared and inspected on a machine without the learner.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from daft_env.errors import ConfigError, NoFramesError

IMAGE_KEYS = ("head_rgb", "wrist_rgb")
LABEL_DIRS = {"success": 1, "failure": 0}


def center_square(frame: np.ndarray) -> np.ndarray:
    """The largest centred square of an (H, W, ...) image."""
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return frame[top : top + side, left : left + side]


@dataclass
class FrameDataset:
    """Labelled samples for the classifier.

    Attributes:
        frames: key -> (N, H, W, 3) uint8 images (every key the same N).
        labels: (N,) 1 for success, 0 for failure.
        groups: (N,) episode identifiers, so the held-out split keeps episodes whole.
    """

    frames: dict[str, np.ndarray]
    labels: np.ndarray
    groups: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        n = len(self.labels)
        if len(self.groups) == 0:
            self.groups = np.arange(n).astype(str).astype(object)
        self.groups = np.asarray(self.groups, dtype=object).reshape(-1)
        for key, arr in self.frames.items():
            if len(arr) != n:
                raise ConfigError(f"{key!r} holds {len(arr)} frames for {n} labels")
        if len(self.groups) != n:
            raise ConfigError(f"{len(self.groups)} groups for {n} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_positive(self) -> int:
        """Number of success samples."""
        return int(self.labels.sum())


def store_labels(
    rewards: np.ndarray, success: bool, positive_final: int = 1, negative_margin: int = 2
) -> np.ndarray:
    """Per-observation labels (T+1,) for one episode: 1 success, 0 failure, -1 left out.

    See the module docstring: observations after a rewarded step and the last ``positive_final``
    ones of a successful episode are positive; observations more than ``negative_margin`` steps
    before the first positive are negative; everything in a failed episode is negative.
    """
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    n_obs = len(rewards) + 1
    labels = np.zeros(n_obs, dtype=np.int64)
    if not success:
        return labels
    labels[1:][rewards > 0] = 1
    if positive_final > 0:
        labels[-positive_final:] = 1
    first = int(np.argmax(labels == 1))
    labels[max(0, first - negative_margin) : first] = -1
    return labels


def frames_from_store(
    store: Any,
    image_keys: Sequence[str] = IMAGE_KEYS,
    task: str | None = None,
    positive_final: int = 1,
    negative_margin: int = 2,
) -> FrameDataset:
    """Labelled frames from an :class:`~daft_env.store.EpisodeStore` recorded in pixels mode."""
    frames: dict[str, list[np.ndarray]] = {k: [] for k in image_keys}
    labels: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    n_eps = 0
    for e, ep in enumerate(store.episodes(task=task)):
        missing = [k for k in image_keys if k not in ep.observations]
        if missing:
            raise NoFramesError(
                f"episode {e} has no {missing} observations; record the store in pixels mode "
                f"(obs_mode='pixels') or choose --image-keys among {sorted(ep.observations)}"
            )
        lab = store_labels(ep.rewards, ep.success, positive_final, negative_margin)
        keep = lab >= 0
        for k in image_keys:
            frames[k].append(np.asarray(ep.observations[k])[keep])
        labels.append(lab[keep])
        groups.append(np.full(int(keep.sum()), f"episode{e}", dtype=object))
        n_eps += 1
    if n_eps == 0:
        raise NoFramesError(
            f"the store {store!r} holds no episodes{f' of task {task!r}' if task else ''}"
        )
    return FrameDataset(
        {k: np.concatenate(v) for k, v in frames.items()},
        np.concatenate(labels),
        np.concatenate(groups),
    )


def frames_from_dir(
    root: str | os.PathLike[str], image_keys: Sequence[str] = ("head_rgb",)
) -> FrameDataset:
    """Labelled frames from ``root/success`` and ``root/failure`` PNGs (module docstring)."""
    base = Path(root)
    if not base.is_dir():
        raise NoFramesError(f"frame directory {str(base)!r} does not exist")
    keys = tuple(image_keys)
    frames: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    labels: list[int] = []
    groups: list[str] = []
    for label_name, label in LABEL_DIRS.items():
        folder = base / label_name
        if not folder.is_dir():
            continue
        samples: dict[str, dict[str, Path]] = {}
        for path in sorted(folder.glob("*.png")):
            stem, _, key = path.name[: -len(".png")].partition(".")
            samples.setdefault(stem, {})[key or keys[0]] = path
        for stem, files in samples.items():
            missing = [k for k in keys if k not in files]
            if missing:
                raise NoFramesError(
                    f"sample {stem!r} in {str(folder)!r} lacks {missing}; name the files "
                    f"{stem}.<key>.png for keys {list(keys)}"
                )
            for k in keys:
                img = cv2.imread(str(files[k]), cv2.IMREAD_COLOR)
                if img is None:
                    raise NoFramesError(f"cannot read image {str(files[k])!r}")
                frames[k].append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            labels.append(label)
            groups.append(stem.rpartition("_")[0] or stem)
    if not labels:
        raise NoFramesError(
            f"no PNG frames under {str(base)!r}; put them in {str(base / 'success')!r} and "
            f"{str(base / 'failure')!r}"
        )
    return FrameDataset(
        {k: _stack(v) for k, v in frames.items()},
        np.asarray(labels),
        np.asarray(groups, dtype=object),
    )


def _stack(images: list[np.ndarray]) -> np.ndarray:
    shapes = {im.shape for im in images}
    if len(shapes) == 1:
        return np.stack(images)
    # Different sizes: bring all to the smallest square side (the model resizes anyway).
    side = min(min(s[:2]) for s in shapes)
    return np.stack(
        [cv2.resize(np.ascontiguousarray(center_square(im)), (side, side)) for im in images]
    )


def save_frames_dir(
    root: str | os.PathLike[str],
    samples: Iterable[tuple[Mapping[str, np.ndarray], bool, str]],
) -> int:
    """Write ``(frames, success, name)`` samples as ``root/{success,failure}/name.<key>.png``."""
    base = Path(root)
    n = 0
    for frames, success, name in samples:
        folder = base / ("success" if success else "failure")
        folder.mkdir(parents=True, exist_ok=True)
        for key, img in frames.items():
            cv2.imwrite(str(folder / f"{name}.{key}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        n += 1
    return n


def split_by_group(
    groups: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with whole groups (episodes) on one side."""
    unique = np.array(sorted(set(groups.tolist())), dtype=object)
    rng.shuffle(unique)
    n_val = int(round(val_fraction * len(unique)))
    if val_fraction > 0:
        n_val = min(max(n_val, 1), len(unique) - 1)
    val_groups = set(unique[:n_val].tolist())
    is_val = np.array([g in val_groups for g in groups.tolist()], dtype=bool)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


__all__ = [
    "IMAGE_KEYS",
    "LABEL_DIRS",
    "FrameDataset",
    "center_square",
    "frames_from_dir",
    "frames_from_store",
    "save_frames_dir",
    "split_by_group",
    "store_labels",
]
