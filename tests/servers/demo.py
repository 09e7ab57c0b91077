"""The main job (``make run``): start a local VLM server, then JupyterLab on the quick-start notebook.

Which server, in order:
- ``RTVLM_BASE_URL`` set: a server you already run; nothing is started.
- ``MODEL`` (and ``MMPROJ`` for a vision model) set: your ``llama-server`` (``LLAMA_SERVER``, else
  ``llama-server`` on PATH, else the one built for the tests) serving that GGUF.
- ``HF`` set (e.g. ``ggml-org/SmolVLM-500M-Instruct-GGUF``): ``llama-server -hf HF`` (needs network
  and a llama-server built with download support, i.e. your own).
- otherwise: the offline generated tiny model. It runs the real path, but its answers are random words.

JupyterLab gets ``RTVLM_BASE_URL`` in its environment, so the notebook's widget points at the server.
Arguments are passed on to ``jupyter lab`` (e.g. ``--port=8890 --no-browser``); ``RTVLM_DEMO_DIR``
serves another folder holding ``notebooks/quickstart.ipynb`` (the tests use a copy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.servers import llama_build, tiny_vlm
from tests.servers.llama import LlamaServer

ROOT = Path(os.environ.get("RTVLM_DEMO_DIR") or Path(__file__).resolve().parents[2])
NOTEBOOK = Path("notebooks") / "quickstart.ipynb"
OFFLINE_NOTE = (
    "NOTE: this demo server runs a generated tiny model with random weights: its answers are random "
    "words. For real answers run `make run MODEL=/path/model.gguf MMPROJ=/path/mmproj.gguf` "
    "(e.g. SmolVLM-500M-Instruct GGUF files) or start your own server and set RTVLM_BASE_URL."
)


def _user_binary() -> Path:
    explicit = os.environ.get("LLAMA_SERVER")
    if explicit:
        return Path(explicit)
    found = shutil.which("llama-server")
    return Path(found) if found else llama_build.build()


def _server() -> tuple[LlamaServer | None, str, str]:
    """The server to start (None when the user runs one), its URL, and a note for the notebook."""
    url = os.environ.get("RTVLM_BASE_URL")
    if url:
        return None, url, ""
    threads = ("-t", str(os.cpu_count() or 2), "-c", "8192")
    cache = llama_build.cache_root()
    model = os.environ.get("MODEL")
    if model:
        mmproj = os.environ.get("MMPROJ")
        server = LlamaServer(
            _user_binary(),
            Path(model),
            Path(mmproj) if mmproj else None,
            alias=Path(model).stem,
            extra_args=threads,
            log_path=cache / "demo-llama-server.log",
        )
        note = "" if mmproj else "NOTE: no MMPROJ given: this server cannot take images."
        return server, "", note
    hf = os.environ.get("HF")
    if hf:
        raise SystemExit(
            f"start it yourself: `llama-server -hf {hf}` (needs network), then run "
            "`make run RTVLM_BASE_URL=http://localhost:8080`"
        )
    text, mmproj_path = tiny_vlm.generate(cache / "models")
    server = LlamaServer(llama_build.build(), text, mmproj_path, log_path=cache / "demo-llama-server.log")
    return server, "", OFFLINE_NOTE


def main() -> int:
    server, url, note = _server()
    if server is not None:
        print("starting llama-server …", flush=True)
        server.start(timeout=300)
        url = server.base_url
        print(f"llama-server is up at {url} (log: {server.log_path})", flush=True)
    if note:
        print(f"\n{note}\n", flush=True)
    env = {**os.environ, "RTVLM_BASE_URL": url, "RTVLM_DEMO_NOTE": note}
    args = sys.argv[1:]
    defaults = [f"--ServerApp.root_dir={ROOT}", "--ServerApp.ip=127.0.0.1"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        defaults.append("--allow-root")
    # jupyter refuses an option given twice: the caller's arguments win.
    given = {arg.split("=", 1)[0] for arg in args}
    cmd = [
        sys.executable, "-m", "jupyter", "lab", str(NOTEBOOK),
        *(d for d in defaults if d.split("=", 1)[0] not in given),
        *args,
    ]  # fmt: skip
    try:
        return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
