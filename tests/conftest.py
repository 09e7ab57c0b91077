"""Session fixtures shared by all tests: a real llama-server with a generated tiny vision model.

Anything that cannot start makes the tests that need it fail with the reason; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import llama_build, tiny_vlm
from tests.servers.llama import LlamaServer

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave logs and screenshots for a person to look at (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    return llama_build.build()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(text GGUF, mmproj GGUF) of the generated model; answers are random words."""
    return tiny_vlm.generate(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="session")
def llama_server(
    llama_server_binary: Path, tiny_model: tuple[Path, Path], artifacts_dir: Path
) -> Iterator[LlamaServer]:
    """A real llama-server with the tiny vision model, on a free loopback port."""
    model, mmproj = tiny_model
    with LlamaServer(
        llama_server_binary, model, mmproj, log_path=artifacts_dir / "llama-server.log"
    ) as server:
        yield server


@pytest.fixture(scope="session")
def text_only_llama_server(
    llama_server_binary: Path, tiny_model: tuple[Path, Path], artifacts_dir: Path
) -> Iterator[LlamaServer]:
    """The same model served without ``--mmproj``: it refuses images, as users often meet."""
    with LlamaServer(
        llama_server_binary,
        tiny_model[0],
        None,
        log_path=artifacts_dir / "llama-server-text-only.log",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def idefics3_model(tmp_path_factory: pytest.TempPathFactory) -> tiny_vlm.Idefics3Files:
    """The generated SmolVLM-style model: text GGUF and two idefics3 projector files."""
    return tiny_vlm.generate_idefics3(tmp_path_factory.mktemp("tiny-idefics3"))


# One slot is enough for the send-size tests; the default 2048-token context holds the largest
# frame they send (1280x960 as it is: 465 image tokens with the tiling file).
_IDEFICS3_ARGS = ("--parallel", "1")


@pytest.fixture(scope="session")
def sliced_llama_server(
    llama_server_binary: Path, idefics3_model: tiny_vlm.Idefics3Files, artifacts_dir: Path
) -> Iterator[LlamaServer]:
    """llama-server with the idefics3 file that tiles images as sent: bigger frames cost more tokens."""
    with LlamaServer(
        llama_server_binary,
        idefics3_model.text,
        idefics3_model.mmproj_sliced,
        alias="tiny-idefics3",
        extra_args=_IDEFICS3_ARGS,
        log_path=artifacts_dir / "llama-server-idefics3-sliced.log",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def longest_edge_llama_server(
    llama_server_binary: Path, idefics3_model: tiny_vlm.Idefics3Files, artifacts_dir: Path
) -> Iterator[LlamaServer]:
    """llama-server with the idefics3 file that resizes every image to a fixed longest edge first."""
    with LlamaServer(
        llama_server_binary,
        idefics3_model.text,
        idefics3_model.mmproj_longest_edge,
        alias="tiny-idefics3",
        extra_args=_IDEFICS3_ARGS,
        log_path=artifacts_dir / "llama-server-idefics3-longest-edge.log",
    ) as server:
        yield server


# -- make it visible that the real parts ran ---------------------------------------------------

_SERVER_FIXTURES = {
    "llama_server",
    "text_only_llama_server",
    "own_llama",
    "llama_server_binary",
    "sliced_llama_server",
    "longest_edge_llama_server",
}
_BROWSER_FIXTURES = {"notebook_page", "chromium"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & _BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if used & _SERVER_FIXTURES:
            item.add_marker(pytest.mark.llama_server)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per real part: how many tests that used it passed, failed or errored."""
    terminalreporter.section("real parts")
    for marker, label in (("browser", "JupyterLab + Chromium"), ("llama_server", "llama-server")):
        counts = {
            outcome: sum(1 for r in terminalreporter.stats.get(outcome, []) if marker in r.keywords)
            for outcome in ("passed", "failed", "error")
        }
        terminalreporter.write_line(
            f"{label} tests: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors"
        )
