"""Block a notebook cell until a coroutine finishes, while the widgets' messages keep arriving.

``app.ask()`` must return an answer to a plain (synchronous) cell. Everything that produces it is
asyncio, and the kernel's own event loop cannot run while the cell blocks, so the coroutine runs
on a worker thread with a loop of its own, and the cell's thread waits for it. The frame the
coroutine asks the browser for comes back as a comm message, which the kernel only reads on the
cell's thread — so while waiting, that thread processes pending widget messages:

* ipykernel 6: with jupyter-ui-poll (``ui_events``), as it was written for.
* ipykernel >= 7: jupyter-ui-poll 1.1 no longer processes anything there (ipykernel 7 dropped
  ``do_one_iteration``, which it calls and whose failure it swallows; upstream issue #54). The
  main shell's messages now arrive on an inproc socket from the shell-channel thread, so
  :class:`_MainShellPump` reads that socket itself: comm messages are handled at once, anything
  else (a queued cell from "Run all") is handed back to the kernel, in order, to run after this
  cell. Widget messages that JupyterLab sends over a kernel subshell need nothing: their thread is
  not blocked.

Without a kernel (a plain script) the worker thread simply runs and the caller waits.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from ._errors import RtvlmError
from ._tasks import spawn

__all__ = ["BlockingUnsupported", "run_blocking"]

T = TypeVar("T")

log = logging.getLogger("rtvlm_widget")

#: How often the waiting thread looks for widget messages.
POLL_EVERY_S = 0.005


class BlockingUnsupported(RtvlmError, RuntimeError):
    """This kernel cannot deliver widget messages to a blocked cell; use the ``*_async`` call."""


class _Pump(Protocol):
    def poll(self) -> None: ...

    def close(self) -> None: ...


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]], *, timeout: float | None = None) -> T:
    """Run the coroutine ``make()`` returns to completion on a worker thread and return its result.

    The worker runs in a copy of the caller's context, so messages it sends to the front end
    belong to the calling cell. Ctrl-C / interrupting the kernel cancels the coroutine.
    """
    done = threading.Event()
    outcome: dict[str, Any] = {}
    worker_loop: list[asyncio.AbstractEventLoop] = []
    task_box: list[asyncio.Task[T]] = []

    async def main() -> None:
        worker_loop.append(asyncio.get_running_loop())
        task = asyncio.ensure_future(make())
        task_box.append(task)
        try:
            outcome["value"] = await task
        except BaseException as exc:  # noqa: BLE001 - handed over to the waiting thread, which re-raises it
            outcome["error"] = exc

    context = contextvars.copy_context()

    def work() -> None:
        try:
            context.run(asyncio.run, main())
        finally:
            done.set()

    pump = _pump_for_kernel()
    thread = threading.Thread(target=work, name="rtvlm-blocking", daemon=True)
    thread.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not done.wait(POLL_EVERY_S):
            if pump is not None:
                pump.poll()
            if deadline is not None and time.monotonic() > deadline:
                _cancel(worker_loop, task_box)
                done.wait(5.0)
                raise TimeoutError(f"no result within {timeout:g} s")
    except BaseException:
        # KeyboardInterrupt (the kernel's interrupt) lands here: stop the work, then re-raise.
        _cancel(worker_loop, task_box)
        done.wait(5.0)
        raise
    finally:
        if pump is not None:
            pump.close()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def _cancel(loops: list[asyncio.AbstractEventLoop], tasks: list[asyncio.Task[Any]]) -> None:
    if loops and tasks and not loops[0].is_closed():
        loops[0].call_soon_threadsafe(tasks[0].cancel)


def _pump_for_kernel() -> _Pump | None:
    """The way to read widget messages on this kernel, or None outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    if getattr(kernel, "shell_channel_thread", None) is not None:
        return _MainShellPump(kernel)
    if hasattr(kernel, "do_one_iteration"):
        return _UiPollPump()
    raise BlockingUnsupported(
        f"{type(kernel).__module__}.{type(kernel).__name__} cannot process widget messages while a "
        "cell blocks; use `await app.ask_async(...)` instead"
    )


class _UiPollPump:
    """ipykernel 6: jupyter-ui-poll replays the kernel's queue for us."""

    def __init__(self) -> None:
        from jupyter_ui_poll import ui_events

        self._context = ui_events()
        self._poll: Callable[[int], None] = self._context.__enter__()

    def poll(self) -> None:
        self._poll(10)

    def close(self) -> None:
        self._context.__exit__(None, None, None)


class _MainShellPump:
    """ipykernel >= 7 (shell-channel thread): read the main shell's inproc socket while blocked.

    Relies on ipykernel 7 internals (``shell_channel_thread.manager._shell_channel_to_main``);
    ``_pump_for_kernel`` is the one place that decides to use it, and the browser test of
    ``ask()`` runs it on the ipykernel the project declares.
    """

    def __init__(self, kernel: Any) -> None:
        import zmq

        self._zmq = zmq
        self._kernel = kernel
        manager = kernel.shell_channel_thread.manager
        pair = getattr(manager, "_shell_channel_to_main", None)
        if pair is None:
            raise BlockingUnsupported(
                f"ipykernel {_ipykernel_version()} keeps its shell messages where rtvlm-widget cannot "
                "read them while a cell blocks; use `await app.ask_async(...)` instead"
            )
        self._socket = pair.to_socket
        self._held: list[list[Any]] = []

    def poll(self) -> None:
        zmq = self._zmq
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if not self._dispatch_comm(frames):
                self._held.append(frames)

    def _dispatch_comm(self, frames: list[Any]) -> bool:
        """Handle a comm message now; False for anything else (it must wait for this cell)."""
        kernel = self._kernel
        if len(frames) < 2 or kernel.session is None:
            return False  # ipykernel's internal one-frame "stop aborting" marker, and the like
        idents, body = kernel.session.feed_identities(frames, copy=False)
        try:
            # A peek (content=False) leaves no trace in the session's signature history, so a
            # message handed back later is not refused as a duplicate.
            msg_type = kernel.session.deserialize(body, content=False, copy=False)["header"].get("msg_type")
            if msg_type not in {"comm_open", "comm_msg", "comm_close"}:
                return False
            msg = kernel.session.deserialize(body, content=True, copy=False)
        except Exception:  # noqa: BLE001
            return False  # the kernel will log it when it replays the message
        handler = kernel.shell_handlers.get(msg_type)
        if handler is None:
            return False
        parent = kernel.get_parent("shell")
        ident = kernel._get_shell_context_var(kernel._shell_parent_ident)
        kernel.set_parent(idents, msg, channel="shell")
        try:
            result = handler(None, idents, msg)
            if asyncio.iscoroutine(result):
                result.close()  # comm handlers are synchronous in every ipykernel that gets here
                log.warning("async %s handler skipped while a cell blocks", msg_type)
        except Exception:
            log.exception("widget message handler failed")
        finally:
            kernel.set_parent(ident, parent, channel="shell")
        return True

    def close(self) -> None:
        """Give the held messages back to the kernel, in arrival order, to run after this cell."""
        held, self._held = self._held, []
        if not held:
            return
        try:
            loop = asyncio.get_running_loop()  # the kernel's: this cell runs inside it
        except RuntimeError:
            log.error("%d kernel messages could not be handed back", len(held))
            return
        for frames in held:
            # Each waits for the cell's lock in creation order, ahead of anything read later.
            loop.call_soon(_replay, self._kernel, frames)


def _replay(kernel: Any, frames: list[Any]) -> None:
    spawn(kernel.shell_main(None, frames))


def _ipykernel_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ipykernel")
    except PackageNotFoundError:
        return "?"
