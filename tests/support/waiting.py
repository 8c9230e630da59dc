"""Waiting for something to happen in a test, without asserting how long it took.

A test states what must happen ("the watchdog stops the arm"), never how fast: on a loaded CI
machine any wall-clock bound is a coin toss. :func:`wait_until` polls a predicate until a
generous deadline and fails naming what never happened; how fast things are belongs in
``benchmarks/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Deadline for things that take milliseconds when all is well (seconds).
GENEROUS_S = 10.0


def wait_until(
    predicate: Callable[[], T], timeout: float = GENEROUS_S, what: str = "the condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Args:
        predicate: called every few milliseconds.
        timeout: give up after this many seconds (a deadline, not a measurement).
        what: what the test was waiting for, for the failure message.

    Raises:
        AssertionError: ``predicate`` stayed falsy until the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.005)


def stays_false(predicate: Callable[[], object], duration: float) -> bool:
    """True when ``predicate`` stayed falsy for the whole ``duration`` seconds (polled).

    For "nothing happens while X holds" checks (heartbeats keep a client alive); the duration is
    how long the test watches, not a bound on anything.
    """
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if predicate():
            return False
        time.sleep(0.005)
    return not predicate()
