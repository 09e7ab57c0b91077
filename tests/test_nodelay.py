"""The server extension that turns TCP_NODELAY on for kernel websockets (rtvlm_widget/_nodelay.py).

Against a real JupyterLab started the way the browser tests start it: a kernel websocket opened
with tornado's client must come out with TCP_NODELAY set on the server's end of the connection,
read from outside the server (see tests/tcp_probe.py); it must stay off with ``RTVLM_NODELAY=0``
and with the extension disabled, and other websockets must keep jupyter_server's default. How much
it buys is measured by ``python -m benchmarks.comm_roundtrip``, not asserted here.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.aio import run_async
from tests.browser.jupyter import JupyterLab
from tests.tcp_probe import server_side_nodelay

REPO = Path(__file__).resolve().parent.parent
CONFIG_FILE = REPO / "jupyter-config" / "jupyter_server_config.d" / "rtvlm_widget.json"
ACTIVE_LINE = "rtvlm_widget | TCP_NODELAY on for kernel websockets"
LOADED_LINE = "rtvlm_widget | extension was successfully loaded"
OPTED_OUT_LINE = "rtvlm_widget | RTVLM_NODELAY=0: kernel websockets keep jupyter_server's default"


def _client_port(conn: WebSocketClientConnection) -> int:
    assert conn.protocol is not None and conn.protocol.stream is not None
    return int(conn.protocol.stream.socket.getsockname()[1])


async def _connect(lab: JupyterLab, path: str) -> WebSocketClientConnection:
    request = HTTPRequest(
        f"ws://127.0.0.1:{lab.port}{path}",
        headers={"Authorization": f"token {lab.token}"},
        request_timeout=60.0,
        connect_timeout=10.0,
    )
    return await websocket_connect(request)


async def _kernel_info(conn: WebSocketClientConnection, session: str) -> dict[str, Any]:
    """Ask the kernel for kernel_info over the websocket (legacy JSON protocol); its reply."""
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "username": "test",
        "session": session,
        "msg_type": "kernel_info_request",
        "version": "5.3",
        "date": datetime.now(timezone.utc).isoformat(),
    }
    await conn.write_message(
        json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": {}, "channel": "shell"})
    )
    while True:
        raw = await asyncio.wait_for(conn.read_message(), timeout=60.0)
        if raw is None:
            raise RuntimeError("the server closed the kernel websocket")
        if isinstance(raw, bytes):
            continue
        msg: dict[str, Any] = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "kernel_info_reply":
            return msg


def _nodelay_of_sockets(lab: JupyterLab) -> dict[str, bool]:
    """TCP_NODELAY on the server's end of a live kernel websocket and of an events websocket."""
    kernel = lab._request("POST", "/api/kernels", {"name": "python3"})

    async def probe() -> dict[str, bool]:
        session = uuid.uuid4().hex
        kernel_ws = await _connect(lab, f"/api/kernels/{kernel['id']}/channels?session_id={session}")
        events_ws = await _connect(lab, "/api/events/subscribe")
        try:
            reply = await _kernel_info(kernel_ws, session)
            assert reply["content"]["status"] == "ok"  # a working kernel websocket, open() has run
            return {
                "kernel": server_side_nodelay(lab.port, _client_port(kernel_ws)),
                "events": server_side_nodelay(lab.port, _client_port(events_ws)),
            }
        finally:
            kernel_ws.close()
            events_ws.close()

    try:
        return run_async(probe())
    finally:
        lab._request("DELETE", f"/api/kernels/{kernel['id']}")


def _log(lab: JupyterLab) -> str:
    return lab.log_path.read_text(errors="replace")


def test_importing_the_package_does_not_import_jupyter_server() -> None:
    code = "import sys, rtvlm_widget; print(sorted(m for m in sys.modules if m.startswith('jupyter_server')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_wheel_and_this_environment_enable_the_extension(tmp_path: Path) -> None:
    assert json.loads(CONFIG_FILE.read_text()) == {
        "ServerApp": {"jpserver_extensions": {"rtvlm_widget": True}}
    }
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(REPO)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("rtvlm_widget-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read(
            "rtvlm_widget-0.1.0.data/data/etc/jupyter/jupyter_server_config.d/rtvlm_widget.json"
        )
    assert shipped == CONFIG_FILE.read_bytes()
    # The editable install the tests run from (`pip install -e .`) carries the shared data too.
    installed = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "rtvlm_widget.json"
    assert installed.read_bytes() == CONFIG_FILE.read_bytes(), f"reinstall: pip install -e . ({installed})"


def test_kernel_websocket_gets_nodelay_by_default(artifacts_dir: Path) -> None:
    assert "RTVLM_NODELAY" not in os.environ, "unset RTVLM_NODELAY to test the default"
    with JupyterLab("lab", keep_log=artifacts_dir / "jupyter-nodelay-on.log") as lab:
        nodelay = _nodelay_of_sockets(lab)
        log = _log(lab)
    assert ACTIVE_LINE in log and LOADED_LINE in log, log
    assert nodelay == {"kernel": True, "events": False}


def test_rtvlm_nodelay_0_leaves_it_off(artifacts_dir: Path) -> None:
    log_copy = artifacts_dir / "jupyter-nodelay-env-off.log"
    with JupyterLab("lab", env={"RTVLM_NODELAY": "0"}, keep_log=log_copy) as lab:
        nodelay = _nodelay_of_sockets(lab)
        log = _log(lab)
    assert OPTED_OUT_LINE in log and ACTIVE_LINE not in log, log
    assert nodelay == {"kernel": False, "events": False}


def _throwaway_prefix(tmp_path: Path) -> Path:
    """A bare venv that sees this environment's packages and holds the file the wheel installs.

    ``jupyter server extension disable`` writes into ``sys.prefix``; a prefix of its own keeps the
    shared .venv untouched.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site_dir,) = venv.glob("lib/python*/site-packages")
    parent = sysconfig.get_path("purelib")  # addsitedir also runs its .pth files (the editable install)
    (site_dir / "_rtvlm_parent_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    conf_d = venv / "etc" / "jupyter" / "jupyter_server_config.d"
    conf_d.mkdir(parents=True)
    shutil.copyfile(CONFIG_FILE, conf_d / CONFIG_FILE.name)
    return venv


def test_jupyter_server_extension_disable_turns_it_off(tmp_path: Path, artifacts_dir: Path) -> None:
    venv = _throwaway_prefix(tmp_path)
    python = str(venv / "bin" / "python")
    # What `jupyter server extension disable rtvlm_widget` runs (no `jupyter-server` script in this venv).
    subprocess.run(
        [python, "-m", "jupyter_server.extension.serverextension", "disable", "rtvlm_widget"],
        check=True,
        capture_output=True,
    )
    written = json.loads(
        (venv / "etc" / "jupyter" / "jupyter_server_config.d" / CONFIG_FILE.name).read_text()
    )
    assert written == {"ServerApp": {"jpserver_extensions": {"rtvlm_widget": False}}}
    log_copy = artifacts_dir / "jupyter-nodelay-disabled.log"
    with JupyterLab("lab", launcher=[python, "-m", "jupyterlab"], keep_log=log_copy) as lab:
        nodelay = _nodelay_of_sockets(lab)
        log = _log(lab)
    assert "jupyterlab | extension was successfully loaded" in log, log  # the throwaway prefix did serve
    assert LOADED_LINE not in log and ACTIVE_LINE not in log, log
    assert nodelay == {"kernel": False, "events": False}


def test_server_config_turns_it_off(artifacts_dir: Path) -> None:
    # Explicit ServerApp.jpserver_extensions (command line, jupyter_server_config.py/json) wins over
    # the jupyter_server_config.d files: the opt-out that survives reinstalling the package.
    arg = "--ServerApp.jpserver_extensions=rtvlm_widget=False"
    with JupyterLab(
        "lab", extra_args=(arg,), keep_log=artifacts_dir / "jupyter-nodelay-config-off.log"
    ) as lab:
        nodelay = _nodelay_of_sockets(lab)
        log = _log(lab)
    assert LOADED_LINE not in log and ACTIVE_LINE not in log, log
    assert nodelay == {"kernel": False, "events": False}


@pytest.mark.parametrize("value", ["0", "false", "No", " off "])
def test_opt_out_values(value: str) -> None:
    from rtvlm_widget._nodelay import nodelay_wanted

    assert not nodelay_wanted({"RTVLM_NODELAY": value})


@pytest.mark.parametrize("value", [None, "", "1", "yes"])
def test_default_and_other_values_keep_it_on(value: str | None) -> None:
    from rtvlm_widget._nodelay import nodelay_wanted

    assert nodelay_wanted({} if value is None else {"RTVLM_NODELAY": value})


def test_patch_is_idempotent_and_keeps_open_async() -> None:
    from tornado.websocket import WebSocketHandler

    from rtvlm_widget._nodelay import is_patched, patch_handler

    calls: list[str] = []

    class Handler(WebSocketHandler):
        async def open(self, *args: str, **kwargs: str) -> None:
            calls.append("open")

        def set_nodelay(self, value: bool) -> None:
            calls.append(f"nodelay={value}")

    original = Handler.open
    assert patch_handler(Handler) is None and is_patched(Handler)
    once = Handler.open
    assert patch_handler(Handler) is None and Handler.open is once  # a second load wraps nothing
    assert once is not original and asyncio.iscoroutinefunction(once)
    run_async(once(object.__new__(Handler)))
    assert calls == ["nodelay=True", "open"]


def test_unexpected_handler_is_left_alone() -> None:
    from rtvlm_widget._nodelay import patch_handler

    class NotAWebsocket:
        async def open(self) -> None: ...

    assert "set_nodelay" in (patch_handler(NotAWebsocket) or "")
    assert not hasattr(NotAWebsocket.open, "__rtvlm_nodelay_wrapped__")
