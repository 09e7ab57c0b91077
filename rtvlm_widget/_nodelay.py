"""Jupyter server extension: TCP_NODELAY on kernel websockets.

Every widget message (a camera frame, the kernel's answer) crosses the websocket between the browser
and jupyter_server. jupyter_server leaves Nagle's algorithm on for that socket, so a reply that
follows a write still waiting for its ACK is held back until the peer's delayed ACK arrives: a
kernel <-> front-end round trip then takes ~50 ms instead of ~15-20 ms (see
``benchmarks/comm_roundtrip.py``). This extension calls tornado's ``set_nodelay(True)`` on each
kernel websocket when it opens, and touches nothing else (other websockets, plain HTTP, the
kernels' ZMQ sockets keep their defaults).

Installing the package enables it: the wheel (editable or not) puts ``rtvlm_widget.json`` into
``{sys.prefix}/etc/jupyter/jupyter_server_config.d/``. Opt out with any of:

- ``RTVLM_NODELAY=0`` (also ``false``/``no``/``off``) in the server's environment: the extension
  loads, logs that it is off and patches nothing;
- ``jupyter server extension disable rtvlm_widget``: rewrites that file with ``false`` (so
  reinstalling or upgrading the package turns it back on; ``--user`` does not work here, as
  jupyter_server only toggles names already listed in the directory it writes to);
- ``c.ServerApp.jpserver_extensions = {"rtvlm_widget": False}`` in a ``jupyter_server_config.py``
  (or ``--ServerApp.jpserver_extensions=rtvlm_widget=False``): explicit config wins over the
  ``jupyter_server_config.d`` files and survives reinstalls.

When active the server logs one INFO line (``rtvlm_widget | TCP_NODELAY on for kernel
websockets ...``) and, at DEBUG, one line per kernel websocket. If jupyter_server's kernel
websocket handler is not where or what this module expects, it logs a warning and does nothing.

Import-light on purpose: this module imports jupyter_server only inside
`_load_jupyter_server_extension`, which only a server calls, so a kernel importing
``rtvlm_widget`` never pulls jupyter_server in. The other way round, the server gets the standard
library only: this module needs nothing else, and the package's public names (cv2, numpy, httpx,
the widgets behind them) load on first use (see ``__init__.py``; tests/test_import_cost.py).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

ENV_VAR = "RTVLM_NODELAY"
_OFF_VALUES = frozenset({"0", "false", "no", "off"})
# Set on our wrapper; holds the wrapped `open` (so a second load sees the patch and skips it).
_WRAPPED_ATTR = "__rtvlm_nodelay_wrapped__"
_PREFIX = "rtvlm_widget |"
_HANDLER_PATH = "jupyter_server.services.kernels.websocket.KernelWebsocketHandler"

_log = logging.getLogger(__name__)


def nodelay_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``RTVLM_NODELAY`` is ``0``/``false``/``no``/``off`` (any case); True otherwise."""
    env = os.environ if environ is None else environ
    return env.get(ENV_VAR, "").strip().lower() not in _OFF_VALUES


def is_patched(handler_cls: type[Any]) -> bool:
    """Whether ``handler_cls.open`` already is our wrapper."""
    return hasattr(getattr(handler_cls, "open", None), _WRAPPED_ATTR)


def _turn_on_nodelay(handler: Any) -> None:
    log = getattr(handler, "log", None) or _log
    try:
        handler.set_nodelay(True)
    except Exception as exc:  # noqa: BLE001 - a socket option must never cost the connection
        log.warning("%s could not set TCP_NODELAY on a kernel websocket: %r", _PREFIX, exc)
        return
    log.debug("%s TCP_NODELAY on for the websocket of kernel %s", _PREFIX, getattr(handler, "kernel_id", "?"))


def _wrap_open(original: Callable[..., Any]) -> Callable[..., Any]:
    # Keep the original's kind: jupyter_server 2.x has `async def open`, tornado allows a plain one.
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def open_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            _turn_on_nodelay(self)
            return await original(self, *args, **kwargs)

        wrapper: Callable[..., Any] = open_async
    else:

        @functools.wraps(original)
        def open_sync(self: Any, *args: Any, **kwargs: Any) -> Any:
            _turn_on_nodelay(self)
            return original(self, *args, **kwargs)

        wrapper = open_sync
    setattr(wrapper, _WRAPPED_ATTR, original)
    return wrapper


def patch_handler(handler_cls: type[Any]) -> str | None:
    """Make ``handler_cls.open`` set TCP_NODELAY first; idempotent.

    Returns None when the class is (now or already) patched, else why it was left alone.
    """
    if is_patched(handler_cls):
        return None
    original = getattr(handler_cls, "open", None)
    if not callable(original):
        return f"{handler_cls.__qualname__} has no open() method"
    if not callable(getattr(handler_cls, "set_nodelay", None)):
        return f"{handler_cls.__qualname__} has no set_nodelay() method (not a tornado WebSocketHandler?)"
    handler_cls.open = _wrap_open(original)
    return None


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Called by jupyter_server once at start-up (see `_jupyter_server_extension_points`)."""
    log: logging.Logger = getattr(serverapp, "log", None) or _log
    if not nodelay_wanted():
        log.info(
            "%s %s=%s: kernel websockets keep jupyter_server's default (TCP_NODELAY off)",
            _PREFIX,
            ENV_VAR,
            os.environ.get(ENV_VAR),
        )
        return
    try:
        from jupyter_server.services.kernels.websocket import KernelWebsocketHandler
    except Exception as exc:  # noqa: BLE001 - a changed jupyter_server must not stop the server
        log.warning("%s cannot import %s (%r): TCP_NODELAY left off", _PREFIX, _HANDLER_PATH, exc)
        return
    problem = patch_handler(KernelWebsocketHandler)
    if problem is not None:
        log.warning("%s %s: TCP_NODELAY left off", _PREFIX, problem)
        return
    log.info(
        "%s TCP_NODELAY on for kernel websockets (opt out: %s=0 or `jupyter server extension disable "
        "rtvlm_widget`)",
        _PREFIX,
        ENV_VAR,
    )
