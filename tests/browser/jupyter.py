"""Start a real JupyterLab 4 (or Notebook 7) server for browser tests.

The server runs from this interpreter's environment (`sys.executable -m jupyter ...`) so
the anywidget / ipywidgets lab extensions under `sys.prefix/share/jupyter` are the ones
the browser loads. Everything user-level (config, data, runtime, settings, workspaces,
IPython profile) is private to a temporary directory so that neither ~/.jupyter nor an
earlier run can change what the tests see.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

# Front-end settings applied as *defaults* (app-level overrides.json), so nothing pops up
# over the notebook: the "Jupyter news?" question, the update check, and toast
# notifications (they stay available in the notification centre).
_SETTING_OVERRIDES: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
}


def _free_port() -> int:
    # Race-prone in theory (the port could be taken before the server binds), but the
    # server is started with port_retries=0 so such a race fails loudly, never silently.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _notebook_path(name: str) -> str:
    return name if name.endswith(".ipynb") else f"{name}.ipynb"


class JupyterLab:
    """A JupyterLab (``kind="lab"``) or Notebook 7 (``kind="notebook"``) server.

    Use as a context manager (or call `start()` / `stop()`). Notebook names passed to
    the methods may omit the ``.ipynb`` suffix.
    """

    def __init__(
        self,
        kind: Literal["lab", "notebook"] = "lab",
        *,
        startup_timeout: float = 60.0,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        keep_log: Path | None = None,
        launcher: Sequence[str] | None = None,
    ) -> None:
        self.kind: Literal["lab", "notebook"] = kind
        # What starts the server; ``None`` is ``python -m jupyter KIND``. The demo test passes
        # the project's own launcher, which forwards these arguments to ``jupyter lab``.
        self.launcher = list(launcher) if launcher else [sys.executable, "-m", "jupyter", kind]
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.extra_env = dict(env or {})
        self.port = 0
        self.token = secrets.token_hex(16)
        self._tmp = Path(tempfile.mkdtemp(prefix=f"rtvlm-{kind}-"))
        self.root_dir = self._tmp / "root"
        # The live log is private to this server (parallel runs in one checkout must not
        # truncate each other's); `keep_log` receives a copy when the server stops.
        self.log_path = self._tmp / "server.log"
        self.keep_log = keep_log
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._keep_tmp = os.environ.get("RTVLM_KEEP_JUPYTER_TMP") == "1"

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:8888``."""
        return f"http://127.0.0.1:{self.port}"

    def _app_class(self) -> str:
        return "LabApp" if self.kind == "lab" else "JupyterNotebookApp"

    def _command(self) -> list[str]:
        app = self._app_class()
        settings = self._tmp / "app-settings"
        cmd = [
            *self.launcher,
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
            # Tests drive the page through window.jupyterapp (see page.py).
            f"--{app}.expose_app_in_browser=True",
            f"--{app}.app_settings_dir={settings}",
            f"--{app}.user_settings_dir={self._tmp / 'user-settings'}",
            f"--{app}.workspaces_dir={self._tmp / 'workspaces'}",
        ]
        # Server-side halves of the news/update machinery: no requests to the internet. Also
        # given to Notebook 7, whose server loads the jupyterlab extension (LabApp) too.
        cmd += [
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        ]
        return cmd + list(self.extra_args)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Private user-level dirs. The environment-level paths (sys.prefix/share/jupyter
        # and sys.prefix/etc/jupyter) are still searched, so installed lab extensions,
        # server extensions and kernelspecs keep working.
        env.update(
            JUPYTER_CONFIG_DIR=str(self._tmp / "config"),
            JUPYTER_DATA_DIR=str(self._tmp / "data"),
            JUPYTER_RUNTIME_DIR=str(self._tmp / "runtime"),
            IPYTHONDIR=str(self._tmp / "ipython"),
            JUPYTER_PLATFORM_DIRS="1",
            PYTHONUNBUFFERED="1",
        )
        # Outside JUPYTER_PATH/JUPYTER_CONFIG_PATH a caller could point at foreign extensions.
        for var in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH"):
            env.pop(var, None)
        env.update(self.extra_env)
        return env

    def start(self) -> JupyterLab:
        if self._proc is not None:
            raise RuntimeError("server already started")
        for sub in (
            "root",
            "app-settings",
            "user-settings",
            "workspaces",
            "config",
            "data",
            "runtime",
        ):
            (self._tmp / sub).mkdir(parents=True, exist_ok=True)
        (self._tmp / "app-settings" / "overrides.json").write_text(json.dumps(_SETTING_OVERRIDES))
        self.port = _free_port()
        t0 = time.monotonic()
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self._command(),
                cwd=self.root_dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so stop() can end the kernels it started too
            )
        try:
            self._wait_ready(t0 + self.startup_timeout)
        except BaseException:
            self._keep_tmp = True  # the error names the log in it: leave it for a look
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, deadline: float) -> None:
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter {self.kind} exited with code {self._proc.returncode} "
                    "before it was ready\n" + self.log_tail()
                )
            try:
                # /api/status needs authentication: a 200 proves our token works too.
                self._request("GET", "/api/status", timeout=2.0)
                return
            except (OSError, urllib.error.URLError, RuntimeError) as exc:
                last_error = repr(exc)
            time.sleep(0.1)
        raise RuntimeError(
            f"jupyter {self.kind} not ready after {self.startup_timeout:.0f} s ({last_error})\n"
            + self.log_tail()
        )

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no server log: {exc})"
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and its kernels, then delete the temporary directory.

        The directory (settings, root dir, log) is kept when start() failed or with
        RTVLM_KEEP_JUPYTER_TMP=1. Safe to call more than once.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            self._stop_process(proc)
            if self.keep_log is not None:
                try:
                    self.keep_log.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(self.log_path, self.keep_log)
                except OSError:
                    pass  # a missing copy must not hide the test's own outcome
        if not self._keep_tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _stop_process(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            try:
                # Graceful: the server shuts its kernels down itself.
                self._request("POST", "/api/shutdown", timeout=5.0)
                proc.wait(timeout=10.0)
            except (OSError, urllib.error.URLError, RuntimeError, subprocess.TimeoutExpired):
                pass
        if proc.poll() is None:
            # Kill only the process group we created (start_new_session=True above).
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- REST --------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise RuntimeError(f"{method} {path} -> HTTP {exc.code}: {detail}") from exc
        return json.loads(raw) if raw else None

    def put_notebook(self, name: str, cells: list[str]) -> None:
        """Create/overwrite ``name`` in the root dir: one code cell per string."""
        nb = {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python"},
            },
            "cells": [
                {
                    "cell_type": "code",
                    "id": uuid.uuid4().hex[:8],
                    "metadata": {},
                    "execution_count": None,
                    "outputs": [],
                    "source": src,
                }
                for src in cells
            ],
        }
        path = urllib.parse.quote(_notebook_path(name))
        self._request("PUT", f"/api/contents/{path}", {"type": "notebook", "format": "json", "content": nb})

    def read_notebook(self, name: str) -> dict[str, Any]:
        """The notebook as saved on disk (nbformat JSON); save in the browser first."""
        path = urllib.parse.quote(_notebook_path(name))
        model = self._request("GET", f"/api/contents/{path}?type=notebook&content=1")
        content: dict[str, Any] = model["content"]
        return content

    def notebook_url(self, name: str) -> str:
        """URL that opens ``name`` in the front end, token included.

        Lab: a fresh workspace per call, so tabs of earlier tests are never restored.
        """
        path = urllib.parse.quote(_notebook_path(name))
        query = urllib.parse.urlencode({"token": self.token})
        if self.kind == "lab":
            return f"{self.url}/lab/workspaces/t{uuid.uuid4().hex[:12]}/tree/{path}?{query}"
        return f"{self.url}/notebooks/{path}?{query}"

    def running_kernels(self) -> list[dict[str, Any]]:
        kernels: list[dict[str, Any]] = self._request("GET", "/api/kernels")
        return kernels
