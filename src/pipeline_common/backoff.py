"""The one retry wait of the project: exponential backoff with equal jitter (standard library only)."""
from __future__ import annotations

import random
from typing import Callable


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Somewhere in [d/2, d], d = min(cap, base * 2^(attempt-1)), attempt counting from 1.

    "Equal jitter": never zero (a retry always waits a little), never in step with other clients
    that failed at the same moment."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2
