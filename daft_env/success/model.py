"""p(success | frames): the small CNN that is the real robot's reward (HIL-SERL, LeRobot).

On a real arm nothing measures "the bolt is picked up", so, as HIL-SERL and LeRobot do, a small
binary image classifier trained on recorded frames labelled success / failure gives the sparse
reward r_t = 1[p(success | o_t) >= threshold] (the paper's reward, Sec. IV) through
:class:`daft_env.backends.real.ClassifierSuccess`.

Model. Each camera image named in ``image_keys`` is centre-cropped and resized to ``input_size``
pixels, scaled to [-0.5, 0.5] and stacked along channels; four stride-2 3x3/5x5 convolutions with
ReLU, a flattened feature map and a 64-unit hidden layer give the logit z, and p = sigmoid(z).
Training is in :mod:`daft_env.success.train`, the labelled frames in :mod:`daft_env.success.data`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from daft_env.durable import write_with
from daft_env.errors import ConfigError, ModelFileError
from daft_env.success.data import IMAGE_KEYS, center_square

FORMAT = "daft-success-classifier-v1"


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
            raise ConfigError(f"image_keys must be non-empty strings; got {image_keys!r}")
        if len(set(keys)) != len(keys):
            raise ConfigError(f"image_keys has duplicates: {keys}")
        if not isinstance(input_size, int) or input_size < 16:
            raise ConfigError(f"input_size must be an int >= 16 px; got {input_size!r}")
        chans = tuple(int(c) for c in channels)
        if len(chans) != 4 or min(chans) < 1:
            raise ConfigError(f"channels must be 4 positive ints; got {channels!r}")
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
            sq = np.ascontiguousarray(center_square(np.asarray(img)[..., :3]))
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
                raise ConfigError(
                    f"this classifier reads {list(self.image_keys)}; pass a mapping of them"
                )
            frames = {self.image_keys[0]: frames}
        parts = []
        for key in self.image_keys:
            if key not in frames:
                raise ConfigError(
                    f"the classifier reads {key!r}; the frames hold only {sorted(frames)}"
                )
            arr = np.asarray(frames[key])
            if arr.ndim == 3:
                arr = arr[None]
            if arr.ndim != 4 or arr.shape[-1] < 3:
                raise ConfigError(f"{key!r} must be (H, W, 3) or (N, H, W, 3); got {arr.shape}")
            parts.append(self._prepare(arr))
        if len({len(p) for p in parts}) != 1:
            raise ConfigError("every camera must have the same number of frames")
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
        return write_with(p, lambda fh: torch.save(payload, fh))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SuccessClassifier:
        """Rebuild a classifier saved by :meth:`save` (``weights_only``: no code is unpickled)."""
        p = Path(path)
        if not p.is_file():
            raise ModelFileError(f"success classifier {str(p)!r} does not exist")
        try:
            payload = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types on a bad file
            raise ModelFileError(f"cannot read success classifier {str(p)!r}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ModelFileError(
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
    """The loader of ``success: classifier`` in the real-arm config (``classifier_loader``)."""
    return SuccessClassifier.load(path)


__all__ = ["FORMAT", "IMAGE_KEYS", "SuccessClassifier", "center_square", "load_success_classifier"]
