"""Real-arm path timings that the tests no longer assert (issue 9: no wall-clock asserts).

Measures, on this machine, against an in-process ``ArmServer`` over loopback:

* how long a client call takes to report a server that died behind a heartbeat in flight
  (target: about one ``timeout_s``, not two);
* how long the server's watchdog takes to stop the arm once a client falls silent (target:
  ``heartbeat_timeout_s`` plus one watchdog period);
* the frame rate a paced 40 fps video file is delivered at (target: 40 fps, never faster).

    python benchmarks/arm_link_latency.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from hardware.arm import ArmClient, ArmServer, MockArm
from hardware.cameras import make_camera
from hardware.errors import ConnectionLostError

TOKEN = "benchmark-token-0"


def dead_server_report_s(timeout_s: float = 0.5) -> float:
    """Seconds from a call to its ConnectionLostError when the server died mid-heartbeat."""
    server = ArmServer(MockArm(), port=0, token=TOKEN, heartbeat_timeout_s=5.0).start_in_thread()
    client = ArmClient(
        port=server.port, token=TOKEN, timeout_s=timeout_s, heartbeat_interval_s=0.02
    )
    client.connect()
    client.state()
    server.shutdown()
    while not client._lock.locked():  # a heartbeat is in flight
        time.sleep(0.001)
    t0 = time.perf_counter()
    try:
        client.state()
    except ConnectionLostError:
        pass
    elapsed = time.perf_counter() - t0
    client.close()
    return elapsed


def watchdog_stop_s(heartbeat_timeout_s: float = 0.3) -> float:
    """Seconds from a client's last call to the server stopping the arm."""
    arm = MockArm()
    server = ArmServer(arm, port=0, token=TOKEN, heartbeat_timeout_s=heartbeat_timeout_s)
    server.start_in_thread()
    client = ArmClient(port=server.port, token=TOKEN, heartbeat_interval_s=0)
    client.connect()
    client.move_delta([0.01, 0, 0, 0, 0, 0])
    arm.stop_event.clear()
    t0 = time.perf_counter()
    arm.stop_event.wait(10.0)
    elapsed = time.perf_counter() - t0
    client.close()
    server.shutdown()
    return elapsed


def paced_video_fps(fps: float = 40.0, n_frames: int = 40) -> float:
    """Frames per second a paced video file is delivered at."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cam.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (96, 64))
        for i in range(n_frames):
            writer.write(np.full((64, 96, 3), i % 256, dtype=np.uint8))
        writer.release()
        with make_camera("opencv", source=str(path)) as cam:
            t0, first = time.perf_counter(), cam.frame_count
            cam.wait_for_frame(first + n_frames // 2, timeout_s=10.0)
            return (cam.frame_count - first) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, fn, unit in (
        ("dead server reported after (timeout 0.5 s)", dead_server_report_s, "s"),
        ("watchdog stopped the arm after (deadline 0.3 s)", watchdog_stop_s, "s"),
        ("paced 40 fps video delivered at", paced_video_fps, "fps"),
    ):
        values = [fn() for _ in range(args.repeats)]
        print(f"{name}: median {np.median(values):.3f} {unit}, max {max(values):.3f} {unit}")


if __name__ == "__main__":
    main()
