"""Build llama.cpp's ``llama-server`` once, from the sources vendored in the llama-cpp-python sdist.

PyPI has no Linux ``llama-server`` binary, but the llama-cpp-python sdist vendors llama.cpp (with
``tools/server`` and libmtmd for ``--mmproj``). The binary is cached outside the clone, keyed by the
pinned version, and rebuilt only when missing.

Run as ``python -m tests.servers.llama_build`` to build (or find) it and print its path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

#: llama-cpp-python release whose vendored llama.cpp we build (llama.cpp commit 0c1e570).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"

_CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    # -O1 builds in ~60% of the -O3 time and serves the tiny test model just as fast.
    "-DCMAKE_C_FLAGS_RELEASE=-O1 -DNDEBUG",
    "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    # Without this the build tries to download the web UI.
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_WEBUI=OFF",
    "-DGGML_CCACHE=OFF",
    "-GNinja",
]


def cache_root() -> Path:
    """Where heavy build products live: outside any clone, shared by runs on this machine."""
    env = os.environ.get("RTVLM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rtvlm-widget"


def server_path() -> Path:
    """The cached binary's path for the pinned version (it may not exist yet)."""
    return cache_root() / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}" / "bin" / "llama-server"


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def build(jobs: int | None = None) -> Path:
    """Return the path of a working ``llama-server``, building it first when it is missing."""
    target = server_path()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    missing = [tool for tool in ("cmake", "ninja", "c++") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"cannot build llama-server: {', '.join(missing)} not found on PATH "
            "(on Debian: apt-get install cmake ninja-build g++)"
        )
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llama-build-", dir=target.parent.parent) as tmp:
        work = Path(tmp)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                "llama-cpp-python",
                f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
                "-d",
                str(work),
            ]
        )
        sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
            tar.extractall(work, members=members, filter="data")
        src = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        build_dir = work / "build"
        _run(["cmake", "-S", str(src), "-B", str(build_dir), *_CMAKE_FLAGS])
        _run(
            [
                "cmake",
                "--build",
                str(build_dir),
                "--target",
                "llama-server",
                "-j",
                str(jobs or os.cpu_count() or 2),
            ]
        )
        built = build_dir / "bin" / "llama-server"
        # Copy then rename, so a half-written binary is never taken for a finished one.
        partial = target.with_suffix(".partial")
        shutil.copy2(built, partial)
        partial.replace(target)
    print(f"built {target} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return target


if __name__ == "__main__":
    print(build())
