"""Video files as stand-in cameras: written with ``cv2.VideoWriter``, opened through OpenCV.

The real-arm tests open them as a real camera would be opened (``driver: opencv``), so the frame
path from a device to an observation is the product's own.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(path: Path, n_frames: int, size: tuple[int, int] = (80, 60), fps: float = 30.0):
    """A small MJPG video whose frames differ, as a stand-in camera."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(n_frames):
        frame = np.full((size[1], size[0], 3), (i * 9) % 256, dtype=np.uint8)
        cv2.putText(frame, str(i), (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    return path


def camera(source: Path, loop: bool = True) -> dict:
    """The config of an OpenCV camera reading ``source`` (looping at its end by default)."""
    return {"driver": "opencv", "source": str(source), "loop": loop}
