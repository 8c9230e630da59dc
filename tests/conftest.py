"""Suite-wide test settings."""

import gc
import os
import threading

import pytest
from support.waiting import wait_until

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _collect_garbage_between_tests():
    """Free what a test left behind at its end, not in the middle of the next test.

    A MuJoCo renderer that a test forgot to close is freed by the garbage collector; if that
    happens while the next test renders, its EGL context switch can disturb that test's frames.
    """
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def _no_daft_environment(monkeypatch):
    """Clear every ``DAFT_*`` variable, so the user's shell does not change a test's result.

    A ``export DAFT_ARM_TOKEN=...`` from the README, or ``DAFT_ARM_ADDRESS`` pointing at a live
    arm server, would otherwise send the real-arm tests down another path. A test that needs a
    variable sets it itself with ``monkeypatch.setenv``.
    """
    for name in [n for n in os.environ if n.startswith("DAFT_")]:
        monkeypatch.delenv(name)


#: Background threads of the real-arm path: camera readers, the client's heartbeat, the server.
DEVICE_THREAD_PREFIXES = ("camera-", "arm-heartbeat", "arm-server", "arm-watchdog")


def _device_threads() -> set[threading.Thread]:
    return {
        t
        for t in threading.enumerate()
        if t.is_alive() and t.name.startswith(DEVICE_THREAD_PREFIXES)
    }


@pytest.fixture
def no_leaked_threads():
    """Fail a test that leaves a camera, heartbeat or server thread running when it ends.

    A camera reader still running at interpreter exit calls into OpenCV while the process tears
    down and aborts it ("terminate called without an active exception", exit code 134). Use it
    with ``pytestmark = pytest.mark.usefixtures("no_leaked_threads")``; threads of module-scoped
    fixtures, started before the test, are not counted.
    """
    before = _device_threads()
    yield
    try:  # a closing thread finishes its current frame first
        wait_until(lambda: not (_device_threads() - before), 5.0, "every device thread stopping")
    except AssertionError:
        names = sorted(t.name for t in _device_threads() - before)
        raise AssertionError(f"threads left running: {names}; close what the test opened") from None
