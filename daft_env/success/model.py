"""A learned success classifier on camera frames: the real robot's reward (HIL-SERL, LeRobot).

On a real arm nothing measures "the bolt is picked up", so, as HIL-SERL and LeRobot do, a small
binary image classifier is trained on recorded frames labelled success / failure and then gives
the sparse reward r_t = 1[p(success | o_t) >= threshold] (the paper's reward, Sec. IV) through
``daft_env.backends.real.ClassifierSuccess``.

Model. Each camera image named in ``image_keys`` is centre-cropped and resized to ``input_size``
pixels, scaled to [-0.5, 0.5] and stacked along channels; four stride-2 3x3/5x5 convolutions with
ReLU, a flattened 4x4 feature map and a 64-unit hidden layer give the logit z, and p = sigmoid(z). Training
minimises the class-balanced binary cross-entropy

    L = -1/N sum_i w_{y_i} [y_i log p_i + (1 - y_i) log(1 - p_i)],   w_y = N / (2 N_y),

with Adam, random shifts (+-4 px, DrQ-style) and brightness jitter as augmentation. Held-out
frames are split by episode, so near-duplicate frames of one episode never sit on both sides.

Labels from an :class:`~daft_env.store.EpisodeStore`: in a successful episode the observations
after a rewarded step and the last ``positive_final`` observations are positive; observations
more than ``negative_margin`` steps before the first positive are negative (the frames just
before success are ambiguous and left out); every observation of a failed episode is negative.
Labels from a directory: ``DIR/success/*.png`` and ``DIR/failure/*.png``; with several cameras a
sample is the files ``NAME.<image_key>.png`` sharing ``NAME``; ``NAME`` of the form
``EPISODE_STEP`` groups frames by episode for the held-out split.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from daft_agent.errors import AgentConfigError, CheckpointError, EmptyStoreError

FORMAT = "daft-success-classifier-v1"
IMAGE_KEYS = ("head_rgb", "wrist_rgb")
LABEL_DIRS = {"success": 1, "failure": 0}


def _center_square(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return frame[top : top + side, left : left + side]


class SuccessClassifier(nn.Module):
    """p(success | frames), a small CNN over one or more stacked camera images.

    Args:
        image_keys: observation keys read, e.g. ``("head_rgb", "wrist_rgb")``.
        input_size: side of the square each image is resized to [px].
        channels: output channels of the four convolutions.
    """

    def __init__(
        self,
        image_keys: Sequence[str] = IMAGE_KEYS,
        input_size: int = 64,
        channels: Sequence[int] = (16, 32, 32, 64),
    ) -> None:
        super().__init__()
        keys = tuple(image_keys)
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise AgentConfigError(f"image_keys must be non-empty strings; got {image_keys!r}")
        if len(set(keys)) != len(keys):
            raise AgentConfigError(f"image_keys has duplicates: {keys}")
        if not isinstance(input_size, int) or input_size < 16:
            raise AgentConfigError(f"input_size must be an int >= 16 px; got {input_size!r}")
        chans = tuple(int(c) for c in channels)
        if len(chans) != 4 or min(chans) < 1:
            raise AgentConfigError(f"channels must be 4 positive ints; got {channels!r}")
        self.image_keys = keys
        self.input_size = int(input_size)
        self.channels = chans
        layers: list[nn.Module] = []
        c_in = 3 * len(keys)
        for i, c_out in enumerate(chans):
            k = 5 if i == 0 else 3
            layers += [nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        # Flatten rather than average-pool: where the gripper is in the image is the evidence.
        side = self.input_size
        for _ in chans:
            side = (side + 1) // 2
        self.head = nn.Sequential(nn.Linear(c_in * side * side, 64), nn.ReLU(), nn.Linear(64, 1))

    def config(self) -> dict[str, Any]:
        """Constructor arguments (saved with the weights, so :meth:`load` can rebuild it)."""
        return {
            "image_keys": list(self.image_keys),
            "input_size": self.input_size,
            "channels": list(self.channels),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N,) for preprocessed images ``x`` of shape (N, 3K, S, S)."""
        return self.head(self.features(x).flatten(1)).squeeze(-1)

    # -- preprocessing ---------------------------------------------------------------------------

    def _prepare(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, S, S, 3) uint8, centre-cropped and resized."""
        s = self.input_size
        out = np.empty((len(images), s, s, 3), dtype=np.uint8)
        for i, img in enumerate(images):
            sq = np.ascontiguousarray(_center_square(np.asarray(img)[..., :3]))
            interp = cv2.INTER_AREA if sq.shape[0] >= s else cv2.INTER_LINEAR
            out[i] = cv2.resize(sq, (s, s), interpolation=interp)
        return out

    def prepare(self, frames: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """Frames -> (N, S, S, 3K) uint8, the stored form of a training sample.

        Args:
            frames: a mapping ``image_key -> (H, W, 3)`` or ``(N, H, W, 3)`` uint8 arrays (an
                observation), or, for a one-camera classifier, the array itself.
        """
        if not isinstance(frames, Mapping):
            if len(self.image_keys) != 1:
                raise AgentConfigError(
                    f"this classifier reads {list(self.image_keys)}; pass a mapping of them"
                )
            frames = {self.image_keys[0]: frames}
        parts = []
        for key in self.image_keys:
            if key not in frames:
                raise AgentConfigError(
                    f"the classifier reads {key!r}; the frames hold only {sorted(frames)}"
                )
            arr = np.asarray(frames[key])
            if arr.ndim == 3:
                arr = arr[None]
            if arr.ndim != 4 or arr.shape[-1] < 3:
                raise AgentConfigError(
                    f"{key!r} must be (H, W, 3) or (N, H, W, 3); got {arr.shape}"
                )
            parts.append(self._prepare(arr))
        if len({len(p) for p in parts}) != 1:
            raise AgentConfigError("every camera must have the same number of frames")
        return np.concatenate(parts, axis=-1)

    @staticmethod
    def to_tensor(prepared: np.ndarray) -> torch.Tensor:
        """(N, S, S, C) uint8 -> (N, C, S, S) float in [-0.5, 0.5]."""
        x = torch.from_numpy(np.ascontiguousarray(prepared)).permute(0, 3, 1, 2)
        return x.float().div_(255.0).sub_(0.5)

    @torch.no_grad()
    def predict_prepared(self, prepared: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities (N,) for :meth:`prepare` d samples."""
        was_training = self.training
        self.eval()
        out = []
        for i in range(0, len(prepared), batch_size):
            out.append(torch.sigmoid(self(self.to_tensor(prepared[i : i + batch_size]))).numpy())
        self.train(was_training)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def predict(self, frames: Mapping[str, np.ndarray] | np.ndarray) -> float | np.ndarray:
        """p(success) for one observation (a float) or a batch (an (N,) array).

        Args:
            frames: see :meth:`prepare`.
        """
        prepared = self.prepare(frames)
        probs = self.predict_prepared(prepared)
        single = isinstance(frames, Mapping) and np.asarray(frames[self.image_keys[0]]).ndim == 3
        single = single or (not isinstance(frames, Mapping) and np.asarray(frames).ndim == 3)
        return float(probs[0]) if single else probs

    # -- persistence -----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], metrics: Mapping[str, Any] | None = None) -> Path:
        """Write weights, config and training metrics (``torch.save`` of plain data only)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "config": self.config(),
            "state_dict": self.state_dict(),
            "metrics": {k: v for k, v in dict(metrics or {}).items() if _plain(v)},
        }
        tmp = p.with_name(p.name + ".partial")
        torch.save(payload, tmp)
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SuccessClassifier:
        """Rebuild a classifier saved by :meth:`save` (``weights_only``: no code is unpickled)."""
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"success classifier {str(p)!r} does not exist")
        try:
            payload = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types on a bad file
            raise CheckpointError(f"cannot read success classifier {str(p)!r}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CheckpointError(
                f"{str(p)!r} is not a DAFT success classifier (expected format {FORMAT!r}); "
                "train one with `daft train-reward`"
            )
        model = cls(**payload["config"])
        model.load_state_dict(payload["state_dict"])
        model.metrics = dict(payload.get("metrics", {}))
        model.eval()
        return model


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def load_success_classifier(path: str | os.PathLike[str]) -> SuccessClassifier:
    """The loader ``daft_env.backends.real`` uses for ``success: classifier``."""
    return SuccessClassifier.load(path)


# ----------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------


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
                raise AgentConfigError(f"{key!r} holds {len(arr)} frames for {n} labels")
        if len(self.groups) != n:
            raise AgentConfigError(f"{len(self.groups)} groups for {n} labels")

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
            raise EmptyStoreError(
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
        raise EmptyStoreError(
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
        raise EmptyStoreError(f"frame directory {str(base)!r} does not exist")
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
                raise EmptyStoreError(
                    f"sample {stem!r} in {str(folder)!r} lacks {missing}; name the files "
                    f"{stem}.<key>.png for keys {list(keys)}"
                )
            for k in keys:
                img = cv2.imread(str(files[k]), cv2.IMREAD_COLOR)
                if img is None:
                    raise EmptyStoreError(f"cannot read image {str(files[k])!r}")
                frames[k].append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            labels.append(label)
            groups.append(stem.rpartition("_")[0] or stem)
    if not labels:
        raise EmptyStoreError(
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
        [cv2.resize(np.ascontiguousarray(_center_square(im)), (side, side)) for im in images]
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


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------


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


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random shifts of +-``pad`` px (replicate padding) and per-sample brightness jitter."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return out + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.2


def accuracy(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of samples whose thresholded probability matches the label."""
    if len(labels) == 0:
        return float("nan")
    return float(np.mean((np.asarray(probs) >= threshold) == (np.asarray(labels) == 1)))


def train_success_classifier(
    data: FrameDataset,
    *,
    image_keys: Sequence[str] | None = None,
    input_size: int = 64,
    epochs: int = 40,
    batch_size: int = 32,
    lr: float = 2e-3,
    val_fraction: float = 0.2,
    augment: bool = True,
    seed: int = 0,
    log: Any = None,
) -> tuple[SuccessClassifier, dict[str, float]]:
    """Train a :class:`SuccessClassifier` (module docstring) and measure held-out accuracy.

    Args:
        data: labelled frames with both classes present.
        image_keys: cameras to read (default: every key of ``data.frames``).
        input_size: image side after resizing [px].
        epochs: passes over the training split.
        batch_size: samples per Adam step.
        lr: Adam learning rate.
        val_fraction: fraction of episodes (groups) held out; 0 trains on everything.
        augment: random shifts and brightness jitter.
        seed: seed of the split, the initialisation and the augmentation.
        log: optional ``print``-like callable for per-epoch progress.

    Returns:
        The trained model and metrics (``train_accuracy``, ``val_accuracy`` (NaN without a
        held-out split), sample counts).
    """
    keys = tuple(image_keys or data.frames)
    if data.n_positive == 0 or data.n_positive == len(data):
        raise EmptyStoreError(
            f"training needs success and failure frames; got {data.n_positive} success and "
            f"{len(data) - data.n_positive} failure frames"
        )
    if epochs < 1 or batch_size < 1 or not lr > 0 or not 0 <= val_fraction < 1:
        raise AgentConfigError("need epochs >= 1, batch_size >= 1, lr > 0, 0 <= val_fraction < 1")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SuccessClassifier(keys, input_size=input_size)
    prepared = model.prepare({k: data.frames[k] for k in keys})
    if val_fraction > 0 and len(set(data.groups.tolist())) >= 2:
        train_idx, val_idx = split_by_group(data.groups, val_fraction, rng)
    else:
        train_idx, val_idx = np.arange(len(data)), np.zeros(0, dtype=np.int64)
    x_train = model.to_tensor(prepared[train_idx])
    y_train = torch.from_numpy(data.labels[train_idx]).float()
    n_pos = float(y_train.sum())
    n_neg = float(len(y_train) - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise EmptyStoreError("the training split lacks one class; record more episodes")
    # Class-balanced BCE: w_y = N / (2 N_y), i.e. pos_weight = N_neg / N_pos on the positives.
    pos_weight = torch.tensor(n_neg / n_pos)
    scale = len(y_train) / (2.0 * n_neg)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y_train), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            xb = x_train[idx]
            if augment:
                xb = _augment(xb, gen)
            loss = scale * loss_fn(model(xb), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if log is not None and (epoch + 1) % max(1, epochs // 5) == 0:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f}")
    model.eval()
    metrics: dict[str, float] = {
        "n_train": float(len(train_idx)),
        "n_val": float(len(val_idx)),
        "n_positive": float(data.n_positive),
        "n_negative": float(len(data) - data.n_positive),
        "train_accuracy": accuracy(
            model.predict_prepared(prepared[train_idx]), data.labels[train_idx]
        ),
        "val_accuracy": accuracy(model.predict_prepared(prepared[val_idx]), data.labels[val_idx])
        if len(val_idx)
        else float("nan"),
    }
    return model, metrics


__all__ = [
    "FrameDataset",
    "SuccessClassifier",
    "accuracy",
    "frames_from_dir",
    "frames_from_store",
    "load_success_classifier",
    "save_frames_dir",
    "split_by_group",
    "store_labels",
    "train_success_classifier",
]
