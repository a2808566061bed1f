"""Bounded waiting for things that happen on other threads or processes (not a timing assertion)."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout_seconds: float = 10.0, what: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; fail the test after `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
