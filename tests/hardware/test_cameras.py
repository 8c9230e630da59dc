"""Cameras: preprocessing, video files as cameras, stale and vanished streams, the reader thread."""

import threading

import cv2
import numpy as np
import pytest
from support.waiting import wait_until

from hardware.cameras import (
    HEAD_SIZE,
    WRIST_SIZE,
    MockCamera,
    MockCameraConfig,
    make_camera,
    preprocess,
)
from hardware.cameras.preprocess import center_crop_square
from hardware.errors import CameraError, ConfigError, DeviceNotFoundError

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def camera_error(cam) -> CameraError | None:
    """The error :meth:`read_latest` raises now, or None when a fresh frame is there."""
    try:
        cam.read_latest()
    except CameraError as err:
        return err
    return None


def write_video(path, n_frames=12, fps=40.0, size=(96, 64)):
    """Frames whose red level encodes the index (RGB), written as MJPG/AVI."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(n_frames):
        rgb = np.zeros((h, w, 3), dtype=np.uint8)
        rgb[:, :, 0] = 20 + 15 * i
        rgb[:, :, 2] = 10
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "cam.avi")


def test_preprocess_center_crops_then_resizes():
    frame = np.zeros((60, 100, 3), dtype=np.uint8)
    frame[:, :20] = (255, 0, 0)  # the margins a centre crop removes
    frame[:, 80:] = (255, 0, 0)
    frame[:, 20:80] = (0, 200, 0)
    assert center_crop_square(frame).shape == (60, 60, 3)
    for size in (WRIST_SIZE, HEAD_SIZE):
        out = preprocess(frame, size)
        assert out.shape == (*size, 3) and out.dtype == np.uint8
        assert out[:, :, 0].max() == 0 and out[:, :, 1].min() == 200


def test_preprocess_coerces_grey_and_float_frames():
    assert preprocess(np.full((10, 10), 7, np.uint8), (4, 4)).shape == (4, 4, 3)
    out = preprocess(np.ones((10, 12, 3), np.float32), (5, 5))
    assert out.dtype == np.uint8 and out.min() == 255
    with pytest.raises(CameraError, match="RGB"):
        preprocess(np.zeros((4, 4, 5), np.uint8), (2, 2))


def test_video_file_camera_delivers_resized_rgb_frames_in_order(video):
    cam = make_camera("opencv", source=str(video), size=WRIST_SIZE, name="wrist", max_age_s=1.0)
    with cam:
        frames, stamps = [], []
        while len(frames) < 6:
            count = cam.frame_count
            frame, ts = cam.read_latest()
            if not stamps or ts > stamps[-1]:
                frames.append(frame)
                stamps.append(ts)
            assert cam.wait_for_frame(count, timeout_s=1.0)
    assert all(f.shape == (128, 128, 3) and f.dtype == np.uint8 for f in frames)
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    reds = [int(f[:, :, 0].mean()) for f in frames]
    assert reds == sorted(reds) and reds[-1] > reds[0]  # in file order
    assert all(f[:, :, 0].mean() > f[:, :, 1].mean() + 10 for f in frames)  # RGB, not BGR


def test_head_size_and_raw_frames(video):
    with make_camera("opencv", source=str(video), size=HEAD_SIZE, loop=True) as cam:
        assert cam.read_latest()[0].shape == (256, 256, 3)
    with make_camera("opencv", source=str(video), loop=True) as cam:
        assert cam.read_latest()[0].shape == (64, 96, 3)


class _RecordingStop(threading.Event):
    """The reader's stop event, recording every pacing wait and returning at once."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout=None):
        if timeout is not None and not self.is_set():
            self.waits.append(timeout)
            return False
        return super().wait(timeout)


def test_file_is_paced_at_its_frame_rate(video):
    cam = make_camera("opencv", source=str(video), fps=None)  # the file says 40 fps
    cam._stop = _RecordingStop()
    with cam:
        assert cam.wait_for_frame(6, timeout_s=10.0)
    # The waits returned at once, so the reader ran ahead of its schedule: before each frame it
    # asked to wait until one more 1/40 s period was due. Time spent between two frames only
    # shortens the next wait, so each step of the schedule is at most one period; the first
    # wait is (almost) a whole period. The wall-clock rate is benchmarks/arm_link_latency.py's.
    waits = cam._stop.waits
    assert len(waits) >= 5 and 1 / 80 < waits[0] <= 1 / 40 + 1e-6
    assert all(b - a <= 1 / 40 + 1e-6 for a, b in zip(waits, waits[1:], strict=False))
    assert waits[-1] > waits[0]  # the schedule advanced (an unpaced reader never waits)


def test_looping_file_keeps_delivering(tmp_path):
    path = write_video(tmp_path / "short.avi", n_frames=4, fps=50.0)
    with make_camera("opencv", source=str(path), loop=True, max_age_s=0.3) as cam:
        assert cam.wait_for_frame(8, timeout_s=3.0)
        cam.read_latest()


def test_file_that_ends_is_reported_stale(tmp_path):
    path = write_video(tmp_path / "short.avi", n_frames=4, fps=50.0)
    with make_camera("opencv", source=str(path), max_age_s=0.2, name="head") as cam:
        err = wait_until(lambda: camera_error(cam), what="a finished video file reported stale")
        assert "stale" in str(err) and "head" in str(err) and "ended" in str(err)


def test_stalled_source_is_reported_stale_and_recovers():
    with MockCamera(MockCameraConfig(fps=100, max_age_s=0.15, name="wrist")) as cam:
        cam.read_latest()
        cam.stall()
        err = wait_until(lambda: camera_error(cam), what="the stalled camera going stale")
        assert "stale" in str(err) and "stalled" in str(err)
        count = cam.frame_count
        cam.resume()
        assert cam.wait_for_frame(count, timeout_s=1.0)
        cam.read_latest()


def test_camera_that_disappears_names_the_device():
    with MockCamera(MockCameraConfig(fps=100, name="wrist")) as cam:
        cam.unplug()
        err = wait_until(lambda: camera_error(cam), what="the unplugged camera reported")
        assert "disappeared" in str(err) and "mock:wrist" in str(err)


def test_missing_devices_raise_device_not_found(tmp_path):
    with pytest.raises(DeviceNotFoundError, match="missing.avi"):
        make_camera("opencv", source=str(tmp_path / "missing.avi")).connect()
    with pytest.raises(DeviceNotFoundError, match="/dev/video99"):
        make_camera("opencv", source=99).connect()
    with pytest.raises(DeviceNotFoundError, match="not connected"):
        make_camera("mock", connected=False).connect()
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video")
    with pytest.raises(DeviceNotFoundError, match="corrupt or use a codec"):
        make_camera("opencv", source=str(garbage), first_frame_timeout_s=1.0).connect()


def test_read_before_connect_and_bad_config():
    with pytest.raises(CameraError, match="connect"):
        MockCamera().read_latest()
    with pytest.raises(ConfigError):
        MockCamera(MockCameraConfig(max_age_s=0))
    with pytest.raises(ConfigError) as err:
        make_camera("kinect")
    assert "opencv" in str(err.value) and "realsense" in str(err.value)


def test_realsense_without_the_sdk_is_a_config_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(ConfigError, match="pyrealsense2"):
        make_camera("realsense")


def test_close_joins_the_reader_thread(video):
    cam = make_camera("opencv", source=str(video), loop=True, name="joined")
    cam.connect()
    reader = cam._thread
    assert reader is not None and reader.is_alive()
    cam.close()
    assert not reader.is_alive()  # joined, not left to die with the process
    cam.close()  # twice is fine


def test_reconnect_after_close_serves_fresh_frames():
    cam = MockCamera(MockCameraConfig(fps=100))
    cam.connect()
    cam.close()
    cam.connect()
    try:
        frame, _ = cam.read_latest()  # fresh: read_latest refuses frames older than max_age_s
        assert frame[0, 0, 0] < 10  # counting restarted
    finally:
        cam.close()
