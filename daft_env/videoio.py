"""MP4 video that LeRobot's decoders and Rerun both play: AV1 (SVT-AV1) through PyAV.

Why AV1: it is what LeRobot encodes by default (``libsvtav1``, ``yuv420p``), its decoders
(torchcodec, PyAV) read it, and Rerun decodes it in the viewer itself (H.264 needs an ffmpeg on
the viewer's ``PATH``). OpenCV's ``mp4v`` (MPEG-4 Part 2), which DAFT wrote before, is played by
neither: Rerun's LeRobot reader stops at ``Video track uses unsupported codec "mp4v"``.

A key frame can be forced (:meth:`VideoWriter.write` with ``key=True``): a LeRobot v3 file packs
many episodes, and Rerun's reader cuts an episode's samples out of it without re-encoding only
when the episode starts on a key frame (else it needs ffmpeg). AV1 has no B-frames to reorder.

Measured error of the round trip (CRF 30, preset 10) on rendered frames of the scripted expert, 2
short episodes per task, decoded from the samples Rerun's LeRobot reader streams: mean absolute
error per channel 1.78 of 255 for the head camera (256x256) and 2.48 for the wrist camera
(128x128) (``tests/env/test_lerobot.py`` checks it stays below 4).

PyAV (``pip install av``, wheels ship ``libsvtav1`` and ``libdav1d``) is imported only here and
only when a video is written or read; without it the error says what to install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from daft_env.errors import ConfigError

#: the encoder (LeRobot's default) and the ``info.json`` names of what it writes
ENCODER = "libsvtav1"
CODEC_NAME = "av1"
PIX_FMT = "yuv420p"
#: constant rate factor: LeRobot's default of 30
CRF = 30
#: SVT-AV1 speed preset: 10 encodes a 256x256 frame in about 1.4 ms on one core
PRESET = 10


def require_av() -> Any:
    """The ``av`` module, or a :class:`~daft_env.errors.ConfigError` that says how to get it."""
    try:
        import av
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "writing and reading MP4 video (AV1) needs PyAV, which is not installed; run "
            "`pip install av` (or `pip install -e .[viz]`)"
        ) from exc
    return av


class VideoWriter:
    """One AV1 MP4 at ``path``, fed RGB uint8 frames of one size.

    Args:
        path: the file to write (its folder must exist).
        width: frame width in pixels (even: ``yuv420p`` halves the chroma planes).
        height: frame height in pixels (even).
        fps: frames per second.

    Raises:
        ConfigError: PyAV is missing, or a size is odd or below 16.
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: int) -> None:
        av = require_av()
        if width % 2 or height % 2 or min(width, height) < 16:
            raise ConfigError(
                f"AV1 video needs even frame sizes of at least 16 pixels; got {width}x{height}"
            )
        # SVT-AV1 prints its configuration to stderr unless told to report errors only
        os.environ.setdefault("SVT_LOG", "1")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self._av = av
        self._container = av.open(str(self.path), "w")
        self._stream = self._container.add_stream(
            ENCODER, rate=int(fps), options={"crf": str(CRF), "preset": str(PRESET)}
        )
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = PIX_FMT
        self.frames = 0

    def write(self, frame: np.ndarray, key: bool = False) -> None:
        """Append one (height, width, 3) uint8 RGB frame; ``key`` forces a key frame."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.shape != (self.height, self.width, 3):
            raise ConfigError(
                f"{self.path}: frame of shape {frame.shape}, expected {(self.height, self.width, 3)}"
            )
        vf = self._av.VideoFrame.from_ndarray(frame, format="rgb24")
        if key:
            vf.pict_type = self._av.video.frame.PictureType.I
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file (safe to call twice)."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """Every frame of the video at ``path`` as (N, H, W, 3) uint8 RGB.

    Raises:
        ConfigError: PyAV is missing.
        FileNotFoundError: no file at ``path``.
    """
    av = require_av()
    if not Path(path).is_file():
        raise FileNotFoundError(f"no video at {path}")
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack(frames)


def key_frames(path: str | os.PathLike[str]) -> list[int]:
    """Indices of the key frames of the video at ``path`` (in presentation order)."""
    av = require_av()
    out, i = [], 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                if packet.is_keyframe:
                    out.append(i)
                i += 1
    return out


__all__ = ["CODEC_NAME", "VideoWriter", "key_frames", "read_video", "require_av"]
