"""Suite-wide test settings."""

import gc
import os

import pytest

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
