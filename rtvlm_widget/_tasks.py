"""Background tasks on the kernel's event loop, kept referenced and never failing silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["bound_to_loop", "spawn"]

T = TypeVar("T")
log = logging.getLogger("rtvlm_widget")

# asyncio keeps only weak references to tasks: hold them until they finish.
_running: set[asyncio.Task[Any]] = set()


def _done(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())


def spawn(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T] | None:
    """Run ``coro`` as a task on the running loop; without one (plain scripts) close it unrun."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        coro.close()
        return None
    task = loop.create_task(coro)
    _running.add(task)
    task.add_done_callback(_done)
    return task


def bound_to_loop(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn``, always run on the event loop running now, whichever thread later calls it.

    JupyterLab >= 4.4 may deliver widget messages on a kernel subshell: another thread with its
    own event loop. State owned by the cell's loop must only be touched there.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return fn

    def call(*args: object) -> None:
        if loop.is_closed():
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    return call
