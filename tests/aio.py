"""Run a coroutine to completion from a sync test, whatever else owns this thread's event loop.

Playwright's sync API keeps an event loop running on the main thread for the whole session (the
browser fixture is session-scoped), so ``asyncio.run`` there fails; a worker thread has no loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from rtvlm_widget import VLMClient

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-asyncio") as pool:
        return pool.submit(asyncio.run, coro).result()


def with_client(make: Callable[[VLMClient], Awaitable[T]], client: VLMClient) -> T:
    """``await make(client)`` from a sync test, closing the client afterwards."""

    async def go() -> T:
        try:
            return await make(client)
        finally:
            await client.aclose()

    return run_async(go())
