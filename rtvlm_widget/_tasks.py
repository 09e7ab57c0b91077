"""Background tasks on the kernel's event loop, kept referenced and never failing silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["spawn"]

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
