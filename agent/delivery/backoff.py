"""Capped, jittered exponential backoff ("full jitter")."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, *, base: float = 0.5, cap: float = 30.0, rand: Callable[[], float] = random.random) -> None:
        self._base = base
        self._cap = cap
        self._rand = rand
        self._attempt = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt."""
        ceiling = min(self._cap, self._base * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return ceiling / 2 + self._rand() * ceiling / 2

    def reset(self) -> None:
        self._attempt = 0
