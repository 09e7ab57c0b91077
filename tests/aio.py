"""Run a coroutine to completion from a sync test, whatever else owns this thread's event loop.

Playwright's sync API keeps an event loop running on the main thread for the whole session (the
browser fixture is session-scoped), so ``asyncio.run`` there fails; a worker thread has no loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-asyncio") as pool:
        return pool.submit(asyncio.run, coro).result()
