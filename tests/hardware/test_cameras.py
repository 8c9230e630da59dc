import time

import cv2
import numpy as np
import pytest

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


def test_file_is_paced_at_its_frame_rate(video):
    with make_camera("opencv", source=str(video), fps=None) as cam:
        t0 = time.monotonic()
        time.sleep(0.1)
        elapsed = time.monotonic() - t0
        # Pacing is an upper bound: load can only make it slower.
        assert cam.frame_count <= 40.0 * (elapsed + 0.05) + 2


def test_looping_file_keeps_delivering(tmp_path):
    path = write_video(tmp_path / "short.avi", n_frames=4, fps=50.0)
    with make_camera("opencv", source=str(path), loop=True, max_age_s=0.3) as cam:
        assert cam.wait_for_frame(8, timeout_s=3.0)
        cam.read_latest()


def test_file_that_ends_is_reported_stale(tmp_path):
    path = write_video(tmp_path / "short.avi", n_frames=4, fps=50.0)
    with make_camera("opencv", source=str(path), max_age_s=0.2, name="head") as cam:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                cam.read_latest()
            except CameraError as err:
                assert "stale" in str(err) and "head" in str(err) and "ended" in str(err)
                break
            time.sleep(0.02)
        else:
            pytest.fail("a finished video file was never reported stale")


def test_stalled_source_is_reported_stale_and_recovers():
    with MockCamera(MockCameraConfig(fps=100, max_age_s=0.15, name="wrist")) as cam:
        cam.read_latest()
        cam.stall()
        time.sleep(0.3)
        with pytest.raises(CameraError, match="stale.*stalled"):
            cam.read_latest()
        count = cam.frame_count
        cam.resume()
        assert cam.wait_for_frame(count, timeout_s=1.0)
        cam.read_latest()


def test_camera_that_disappears_names_the_device():
    with MockCamera(MockCameraConfig(fps=100, name="wrist")) as cam:
        cam.unplug()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                cam.read_latest()
            except CameraError as err:
                assert "disappeared" in str(err) and "mock:wrist" in str(err)
                break
            time.sleep(0.01)
        else:
            pytest.fail("unplugged camera never reported")


def test_missing_devices_raise_device_not_found(tmp_path):
    with pytest.raises(DeviceNotFoundError, match="missing.avi"):
        make_camera("opencv", source=str(tmp_path / "missing.avi")).connect()
    with pytest.raises(DeviceNotFoundError, match="/dev/video99"):
        make_camera("opencv", source=99).connect()
    with pytest.raises(DeviceNotFoundError, match="not connected"):
        make_camera("mock", connected=False).connect()
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video")
    with pytest.raises((DeviceNotFoundError, CameraError)):
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


def test_close_joins_the_reader_thread_quickly(video):
    cam = make_camera("opencv", source=str(video), loop=True)
    cam.connect()
    t0 = time.monotonic()
    cam.close()
    cam.close()
    assert time.monotonic() - t0 < 1.0


def test_reconnect_after_close_serves_fresh_frames():
    cam = MockCamera(MockCameraConfig(fps=100))
    cam.connect()
    cam.close()
    cam.connect()
    try:
        frame, ts = cam.read_latest()
        assert time.monotonic() - ts < 0.5 and frame[0, 0, 0] < 10  # counting restarted
    finally:
        cam.close()
