"""The ``Camera`` seam: a background reader thread serving the latest frame and its timestamp.

Subclasses implement three hooks: :meth:`Camera._open`, :meth:`Camera._grab` (blocking read of the
next frame, RGB) and :meth:`Camera._release`. The base class runs ``_grab`` in a daemon thread,
keeps only the newest frame (a control loop wants the present, not a queue of the past), and
turns the two ways a camera fails into :class:`~hardware.errors.CameraError`:

* stale: the newest frame is older than ``max_age_s`` (a stalled USB bus, a frozen driver, a video
  file that ended), reported by :meth:`Camera.read_latest`;
* gone: ``_grab`` raised or failed ``max_consecutive_failures`` times in a row (a cable pulled);
  the error names the device.

Timestamps are ``time.monotonic()`` seconds taken when the frame arrived in this process.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod

import numpy as np

from hardware.cameras.preprocess import preprocess
from hardware.errors import CameraError, ConfigError

logger = logging.getLogger(__name__)


class Camera(ABC):
    """A camera read in the background.

    Args:
        name: label used in errors and logs ("wrist", "head").
        max_age_s: a frame older than this is stale [s].
        size: (height, width) to centre-crop and resize every frame to, or None for raw frames.
        first_frame_timeout_s: how long :meth:`connect` waits for the first frame [s].
        max_consecutive_failures: failed grabs in a row after which the camera counts as gone.
    """

    def __init__(
        self,
        name: str = "camera",
        max_age_s: float = 0.5,
        size: tuple[int, int] | None = None,
        first_frame_timeout_s: float = 5.0,
        max_consecutive_failures: int = 10,
    ) -> None:
        if not max_age_s > 0:
            raise ConfigError(f"max_age_s must be > 0 s; got {max_age_s}")
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise ConfigError(f"size must be (height, width) with positive entries; got {size}")
        if not first_frame_timeout_s > 0 or max_consecutive_failures < 1:
            raise ConfigError("first_frame_timeout_s must be > 0 and max_consecutive_failures >= 1")
        self.name = name
        self.max_age_s = float(max_age_s)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.first_frame_timeout_s = float(first_frame_timeout_s)
        self.max_consecutive_failures = int(max_consecutive_failures)
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._frame: np.ndarray | None = None
        self._timestamp = 0.0
        self._count = 0
        self._error: CameraError | None = None
        self._ended = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- hooks -----------------------------------------------------------------------------------

    @property
    @abstractmethod
    def device(self) -> str:
        """Human-readable device identity for messages ("/dev/video0", a file path, a serial)."""

    @abstractmethod
    def _open(self) -> None:
        """Open the device; raise DeviceNotFoundError naming it if impossible."""

    @abstractmethod
    def _grab(self) -> np.ndarray | None:
        """Block until the next RGB frame; None = no frame this time (counted as a failure)."""

    @abstractmethod
    def _release(self) -> None:
        """Release the device."""

    def _end_of_stream(self) -> bool:
        """True when the source has legitimately ended (a non-looping video file)."""
        return False

    # -- lifecycle -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the device, start the reader thread and wait for the first frame."""
        if self._thread is not None:
            return
        self._open()
        self._stop.clear()
        with self._lock:  # a reconnect must not serve the previous session's last frame
            self._frame, self._timestamp, self._count = None, 0.0, 0
            self._error = None
            self._ended = False
        self._thread = threading.Thread(
            target=self._reader, name=f"camera-{self.name}", daemon=True
        )
        self._thread.start()
        with self._new_frame:
            self._new_frame.wait_for(
                lambda: self._count > 0 or self._error is not None or self._ended,
                timeout=self.first_frame_timeout_s,
            )
        if self._count == 0:
            err = self._error or CameraError(
                f"camera {self.name!r} ({self.device}) delivered no frame within "
                f"{self.first_frame_timeout_s:.1f} s of opening; check the cable, the device and "
                "that no other program is using it"
            )
            self.close()
            raise err

    def close(self) -> None:
        """Stop the reader thread and release the device. Safe to call twice."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(2.0)
            if thread.is_alive():
                logger.warning("camera %s reader thread did not stop within 2 s", self.name)
        # _thread is cleared only after _release(), so a subclass's release can still see whether
        # its reader thread is alive (a GL context must be freed by the thread that made it).
        try:
            self._release()
        except Exception:  # releasing a vanished device may fail; nothing else to do
            logger.debug("camera %s release failed", self.name, exc_info=True)
        finally:
            self._thread = None

    def __enter__(self) -> Camera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    def _reader(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                frame = self._grab()
            except Exception as exc:
                self._fail(f"raised {type(exc).__name__}: {exc}")
                return
            if frame is None:
                if self._end_of_stream():
                    with self._new_frame:
                        self._ended = True
                        self._new_frame.notify_all()
                    return
                failures += 1
                if failures >= self.max_consecutive_failures:
                    self._fail(f"failed {failures} reads in a row")
                    return
                continue
            failures = 0
            if self.size is not None:
                frame = preprocess(frame, self.size)
            now = time.monotonic()
            with self._new_frame:
                self._frame, self._timestamp = frame, now
                self._count += 1
                self._new_frame.notify_all()

    def _fail(self, why: str) -> None:
        err = CameraError(
            f"camera {self.name!r} ({self.device}) disappeared: it {why}. Check the cable and "
            "power, then reconnect it and restart the camera."
        )
        logger.error("%s", err)
        with self._new_frame:
            self._error = err
            self._new_frame.notify_all()

    @property
    def frame_count(self) -> int:
        """Frames received since :meth:`connect`."""
        return self._count

    def read_latest(self, max_age_s: float | None = None) -> tuple[np.ndarray, float]:
        """The newest frame and its ``time.monotonic()`` arrival time.

        The returned array is never written to again by the reader, so it may be kept.

        Raises:
            CameraError: the camera disappeared, was never connected, or its newest frame is
                older than ``max_age_s`` (default: the camera's).
        """
        limit = self.max_age_s if max_age_s is None else float(max_age_s)
        with self._lock:
            frame, ts, err, ended = self._frame, self._timestamp, self._error, self._ended
        if err is not None:
            raise err
        if frame is None:
            raise CameraError(f"camera {self.name!r} ({self.device}) has no frame; call connect()")
        age = time.monotonic() - ts
        if age > limit:
            why = "the source ended" if ended else "the stream stalled"
            raise CameraError(
                f"camera {self.name!r} ({self.device}) is stale: newest frame is {age:.2f} s old "
                f"(limit {limit:.2f} s); {why}. Check the cable/USB bandwidth, or lower the "
                "frame size or rate."
            )
        return frame, ts

    def wait_for_frame(self, after_count: int, timeout_s: float = 1.0) -> bool:
        """Block until more than ``after_count`` frames have arrived; False on timeout."""
        with self._new_frame:
            return self._new_frame.wait_for(
                lambda: self._count > after_count or self._error is not None, timeout=timeout_s
            )
