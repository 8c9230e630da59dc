"""Turn camera frames into the env's images: centre-crop to a square, resize, RGB uint8.

The env's observation holds a 128x128 wrist image and a 256x256 head image
(``daft_env.spaces.WRIST_SHAPE``/``HEAD_SHAPE``; duplicated here because ``hardware`` imports
nothing of ``daft_env``). Cropping before resizing keeps the aspect ratio, as the simulated
cameras (square renders) have it.
"""

from __future__ import annotations

import cv2
import numpy as np

from hardware.errors import CameraError

#: (height, width) of the env's wrist and head images.
WRIST_SIZE = (128, 128)
HEAD_SIZE = (256, 256)


def center_crop_square(frame: np.ndarray) -> np.ndarray:
    """The largest centred square of an (H, W, C) or (H, W) frame (a view, no copy)."""
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return frame[top : top + side, left : left + side]


def to_rgb_uint8(frame: np.ndarray) -> np.ndarray:
    """Coerce grey, RGBA or float-in-[0,1] frames to (H, W, 3) uint8 RGB."""
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise CameraError(f"expected an (H, W, 3) RGB frame; got shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    return arr


def preprocess(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop ``frame`` to a square and resize it to ``size`` = (height, width), RGB uint8.

    Downscaling uses area interpolation (no aliasing); upscaling uses bilinear.
    """
    h_out, w_out = int(size[0]), int(size[1])
    if h_out <= 0 or w_out <= 0:
        raise CameraError(f"output size must be positive; got {size}")
    square = center_crop_square(to_rgb_uint8(frame))
    if square.shape[0] == 0:
        raise CameraError("cannot preprocess an empty frame")
    interp = cv2.INTER_AREA if square.shape[0] >= max(h_out, w_out) else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(square), (w_out, h_out), interpolation=interp)
    return out
