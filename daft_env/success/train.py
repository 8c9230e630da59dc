"""Training the success classifier: class-balanced cross-entropy with DrQ-style augmentation.

Training minimises the class-balanced binary cross-entropy

    L = -1/N sum_i w_{y_i} [y_i log p_i + (1 - y_i) log(1 - p_i)],   w_y = N / (2 N_y),

with Adam, random shifts (+-4 px, DrQ-style) and brightness jitter as augmentation. Held-out
frames are split by episode (:func:`~daft_env.success.data.split_by_group`), so near-duplicate
frames of one episode never sit on both sides. ``daft train-reward`` is the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from daft_env.errors import ConfigError, NoFramesError
from daft_env.success.data import FrameDataset, split_by_group
from daft_env.success.model import SuccessClassifier


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
        raise NoFramesError(
            f"training needs success and failure frames; got {data.n_positive} success and "
            f"{len(data) - data.n_positive} failure frames"
        )
    if epochs < 1 or batch_size < 1 or not lr > 0 or not 0 <= val_fraction < 1:
        raise ConfigError("need epochs >= 1, batch_size >= 1, lr > 0, 0 <= val_fraction < 1")
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
        raise NoFramesError("the training split lacks one class; record more episodes")
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


__all__ = ["accuracy", "train_success_classifier"]
