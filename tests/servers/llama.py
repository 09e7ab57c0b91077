"""Run a real llama.cpp ``llama-server`` for tests: free loopback port, wait for ``/health``, stop.

Used by the pytest fixtures (``tests/conftest.py``); it imports nothing from pytest, so it also works
from a plain script. A server that fails to come up is an error with its log attached, never a skip.
"""

from __future__ import annotations

import collections
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

#: Fixed server settings the tests rely on (one place, so tests and docs agree). ``--no-cache-prompt``:
#: this llama.cpp answers 500 "Chunk not found" when a prompt reuses a cached prefix that ended in an
#: image; not caching prompts avoids it.
DEFAULT_ARGS = (
    "-c",
    "2048",
    "-t",
    "2",
    "--parallel",
    "2",
    "--n-predict",
    "64",
    "--no-cache-prompt",
    "--no-webui",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LlamaServer:
    """A ``llama-server`` child process serving ``model`` (and ``mmproj`` for images).

    Use as a context manager, or call :meth:`start` and :meth:`stop` yourself. ``extra_args`` come
    after :data:`DEFAULT_ARGS`, so they may override them (llama.cpp takes a flag's last value).
    Without ``log_path`` the log goes to a temporary file, removed again by :meth:`stop`.
    """

    def __init__(
        self,
        binary: Path,
        model: Path,
        mmproj: Path | None,
        *,
        alias: str = "tiny-vlm",
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.binary = binary
        self.model = model
        self.mmproj = mmproj
        self.alias = alias
        self.extra_args = tuple(extra_args)
        self.log_path = log_path
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._temp_log = False

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash or ``/v1``."""
        if self.port is None:
            raise RuntimeError("llama-server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self, port: int) -> list[str]:
        cmd = [str(self.binary), "-m", str(self.model)]
        if self.mmproj is not None:
            cmd += ["--mmproj", str(self.mmproj)]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--alias", self.alias]
        return [*cmd, *DEFAULT_ARGS, *self.extra_args]

    def start(self, timeout: float = 60) -> None:
        """Launch the server and return once ``GET /health`` answers 200.

        Raises ``RuntimeError`` with the end of the server log if it exits or is not healthy in time.
        """
        if self._proc is not None:
            raise RuntimeError("llama-server is already started")
        deadline = time.monotonic() + timeout
        log = ""
        # The port is picked here and bound by the server a moment later; another process (say, a
        # parallel test worker) may take it in between, so a lost bind is retried on a new port.
        for _ in range(3):
            problem = self._launch_and_wait(deadline, timeout)
            if problem is None:
                return
            self._end_process()
            log = self.log_tail()
            self.stop()  # removes a temporary log, now that its tail is read
            if "couldn't bind" not in log:
                raise RuntimeError(f"llama-server {problem}:\n{log}")
        raise RuntimeError(f"llama-server could not bind a free port:\n{log}")

    def _launch_and_wait(self, deadline: float, timeout: float) -> str | None:
        """None once ``/health`` answers 200, else what went wrong (the process is left to the caller)."""
        self._open_log()
        self.port = free_port()
        proc = self._proc = subprocess.Popen(
            self.command(self.port),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        with httpx.Client(timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    return f"exited with code {proc.returncode}"
                try:
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        return None
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    return f"not healthy after {timeout:g} s"
                time.sleep(0.05)

    def _open_log(self) -> None:
        if self.log_path is None:
            # Log to a file even when no path is given: its tail is what explains a failed start.
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            self.log_path = Path(name)
            self._temp_log = True
            self._log = open(fd, "wb")  # noqa: SIM115 - closed in _end_process()
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("wb")

    def _end_process(self) -> None:
        """Terminate the server (kill it if it does not exit within 10 s) and close the log."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop the server and remove a temporary log; safe to call twice."""
        self._end_process()
        if self._temp_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path, self._temp_log = None, False

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log (empty if there is none yet)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        with self.log_path.open(encoding="utf-8", errors="replace") as f:
            return "".join(collections.deque(f, maxlen=lines))

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
