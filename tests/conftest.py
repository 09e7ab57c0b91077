"""Session fixtures shared by all tests: a real llama-server with a generated tiny vision model.

Anything that cannot start makes the tests that need it fail with the reason; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import CodeType

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


# -- make it visible that the real parts ran; `--fast` leaves them out ------------------------

_SERVER_FIXTURES = {
    "llama_server",
    "text_only_llama_server",
    "own_llama",
    "llama_server_binary",
    "sliced_llama_server",
    "longest_edge_llama_server",
}
_BROWSER_FIXTURES = {"notebook_page", "chromium"}
# A test body that names these starts the real part itself, without a fixture to tell.
_SERVER_NAMES = {"LlamaServer", "llama_build"}
_BROWSER_NAMES = {"launch_chromium", "sync_playwright"}
_REAL_PARTS = (("browser", "JupyterLab + Chromium"), ("llama_server", "llama-server"))
# Node ids per real part: report keywords also hold package names (every test in tests/browser/
# has a "browser" keyword), so the summary counts by id.
_MARKED = pytest.StashKey[dict[str, set[str]]]()
_DESELECTED = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="deselect the tests that need JupyterLab + Chromium or llama-server (`make test-fast`)",
    )


def _names_used(code: CodeType) -> set[str]:
    """Global and attribute names a function's code refers to, nested functions included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _names_used(const)
    return names


def _real_parts(item: pytest.Item) -> set[str]:
    fixtures = set(getattr(item, "fixturenames", ()))
    code = getattr(getattr(item, "function", None), "__code__", None)
    names = _names_used(code) if isinstance(code, CodeType) else set()
    parts: set[str] = set()
    if fixtures & _BROWSER_FIXTURES or names & _BROWSER_NAMES:
        parts.add("browser")
    if fixtures & _SERVER_FIXTURES or names & _SERVER_NAMES:
        parts.add("llama_server")
    return parts


def _no_build_in_fast_run(jobs: int | None = None) -> Path:
    # A test that reaches llama-server some way the markers cannot see fails at once, rather
    # than making the fast run build llama.cpp for minutes.
    pytest.fail("--fast: this test needs llama-server; request the llama_server_binary fixture")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("fast"):
        llama_build.build = _no_build_in_fast_run


# tryfirst: the markers must be on the items before `-m browser` / `-m llama_server` selects.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked: dict[str, set[str]] = {marker: set() for marker, _ in _REAL_PARTS}
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        parts = _real_parts(item)
        for marker in parts:
            item.add_marker(marker)
            marked[marker].add(item.nodeid)
        (drop if parts and config.getoption("fast") else keep).append(item)
    config.stash[_MARKED] = marked
    config.stash[_DESELECTED] = len(drop)
    if drop:
        # Reported like `-m`'s deselection: "N deselected" in the last line.
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line per real part: how many tests that used it passed, failed or errored."""
    terminalreporter.section("real parts")
    marked = config.stash.get(_MARKED, {})
    for marker, label in _REAL_PARTS:
        ids = marked.get(marker, set())
        counts = {
            outcome: sum(1 for r in terminalreporter.stats.get(outcome, []) if r.nodeid in ids)
            for outcome in ("passed", "failed", "error")
        }
        terminalreporter.write_line(
            f"{label} tests: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors"
        )
    if config.getoption("fast"):
        terminalreporter.write_line(
            f"--fast: {config.stash.get(_DESELECTED, 0)} tests that need them were deselected "
            "(`make test` runs everything)"
        )
