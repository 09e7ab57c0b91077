"""Background tasks on the kernel's event loop, kept referenced and never failing silently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["bound_to_loop", "running_loop", "spawn"]

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


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def bound_to_loop(
    fn: Callable[..., object], loop: asyncio.AbstractEventLoop | None = None
) -> Callable[..., None]:
    """``fn``, always run on ``loop`` (default: the one running now), whichever thread calls it.

    JupyterLab >= 4.4 may deliver widget messages on a kernel subshell: another thread with its
    own event loop. The client's connections and the controller's tasks belong to the loop the
    widget was made on (the cell's), so callbacks that touch them must run there.
    """
    target = loop or running_loop()

    def call(*args: object) -> None:
        if target is None or target.is_closed() or running_loop() is target:
            fn(*args)
        else:
            target.call_soon_threadsafe(fn, *args)

    return call
