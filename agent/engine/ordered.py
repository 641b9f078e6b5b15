"""Run work concurrently, at most ``limit`` at a time, in order per key.

Exits of different containers are handled side by side, so one slow Docker call
holds up only the exits of its own container; exits of one container are
handled in the order they happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class OrderedPool:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._sem = asyncio.Semaphore(limit)
        self._tails: dict[str, asyncio.Task[object]] = {}
        self._tasks: set[asyncio.Task[object]] = set()

    def submit(self, key: str, work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Start ``work`` after every earlier submission with the same ``key`` ended."""
        before = self._tails.get(key)

        async def run() -> T:
            if before is not None:
                await asyncio.wait([before])  # whatever became of it
            async with self._sem:
                return await work()

        task: asyncio.Task[T] = asyncio.create_task(run())
        self._tails[key] = task  # type: ignore[assignment]
        self._tasks.add(task)  # type: ignore[arg-type]

        def done(t: asyncio.Task[T]) -> None:
            self._tasks.discard(t)  # type: ignore[arg-type]
            if self._tails.get(key) is t:
                del self._tails[key]

        task.add_done_callback(done)
        return task

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for submitted work, then cancel the rest."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout)
        for t in late:
            t.cancel()
        await asyncio.gather(*late, return_exceptions=True)
