"""Kernel <-> front-end comm round trip with the rtvlm_widget server extension ON vs OFF.

    .venv/bin/python -m benchmarks.comm_roundtrip [--n 100] [--block 10]

Two real JupyterLab servers from this environment (the extension enabled by the installed
``jupyter_server_config.d/rtvlm_widget.json``; OFF is the same server with ``RTVLM_NODELAY=0``),
one headless Chromium with a page per server, each in its own browser context (a background tab
would have its requestAnimationFrame throttled, which slows JupyterLab's message handling). Each
page runs a tiny anywidget echo: the front end sends a binary buffer (50 KB, 200 KB) with
``model.send``, the kernel answers at once with a small message, and the front end times the round
trip with ``performance.now()``. Round trips run one at a time, in blocks of ``--block``,
alternating which server goes first (ON OFF, OFF ON, ...) so drift hits both alike; a warm-up
block per page and size is discarded. Prints a markdown table (p50/p95 per case, OFF/ON ratio)
and writes every sample to benchmarks/results/comm_roundtrip.json. Before timing, it checks from
outside the server (tests/tcp_probe.py) that the ON server's connections include a TCP_NODELAY
socket and the OFF server's do not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, sync_playwright

from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage, launch_chromium
from tests.tcp_probe import accepted_nodelay

RESULTS = Path(__file__).resolve().parent / "results" / "comm_roundtrip.json"
SIZES = (50_000, 200_000)

# The kernel side: answers each ping at once with a small message naming the bytes it got.
ECHO_CELL = r'''
import anywidget

class Echo(anywidget.AnyWidget):
    _esm = """
export default {
  render({ model, el }) {
    el.textContent = "echo ready";
    const pending = new Map();
    model.on("msg:custom", (msg) => {
      const waiter = pending.get(msg.i);
      if (waiter) { pending.delete(msg.i); waiter(msg); }
    });
    let next = 0;
    window.__echo = async (size, n) => {
      const bytes = new Uint8Array(size);
      for (let j = 0; j < size; j++) bytes[j] = (j * 131 + 7) & 255;
      const times = [];
      for (let k = 0; k < n; k++) {
        const i = next++;
        const payload = bytes.buffer.slice(0);
        const reply = new Promise((resolve) => pending.set(i, resolve));
        const t0 = performance.now();
        model.send({ kind: "ping", i }, undefined, [payload]);
        const msg = await reply;
        times.push(performance.now() - t0);
        if (msg.bytes !== size) throw new Error("kernel got " + msg.bytes + " bytes, sent " + size);
      }
      return times;
    };
    window.__echoReady = true;
  },
};
"""

    def __init__(self) -> None:
        super().__init__()
        self.on_msg(self._on_msg)

    def _on_msg(self, widget, content, buffers):
        if content.get("kind") == "ping":
            self.send({"kind": "pong", "i": content["i"], "bytes": sum(len(b) for b in buffers)})

Echo()
'''

_RAF_JS = """() => new Promise((resolve) => {
  let frames = 0;
  const t0 = performance.now();
  const tick = () => {
    frames++;
    if (performance.now() - t0 < 500) requestAnimationFrame(tick); else resolve(frames * 2);
  };
  requestAnimationFrame(tick);
})"""


@dataclass
class Case:
    name: str  # "ON" / "OFF"
    lab: JupyterLab
    context: BrowserContext | None = None
    page: NotebookPage | None = None

    def round_trips(self, size: int, n: int) -> list[float]:
        assert self.page is not None
        times: list[float] = self.page.page.evaluate("([s, n]) => window.__echo(s, n)", [size, n])
        return [float(t) for t in times]


def _open_echo(case: Case, browser: Browser) -> None:
    case.context = browser.new_context(viewport={"width": 1000, "height": 700})
    case.page = NotebookPage(case.context.new_page())
    case.lab.put_notebook("echo", [ECHO_CELL])
    case.page.open(case.lab, "echo")
    if not case.page.run_cell(0, timeout=60.0):
        raise RuntimeError(f"{case.name}: the echo cell failed:\n{case.page.cell_text(0)}")
    case.page.page.wait_for_function("() => window.__echoReady === true", timeout=30_000)
    fps = case.page.page.evaluate(_RAF_JS)
    if fps < 20:
        raise RuntimeError(f"{case.name}: requestAnimationFrame runs at {fps}/s: the page is throttled")


def _check_sockets(case: Case, expect_nodelay: bool) -> dict[int, bool]:
    sockets = accepted_nodelay(case.lab.port)
    if any(sockets.values()) != expect_nodelay:
        raise RuntimeError(f"{case.name}: server sockets {sockets}, expected TCP_NODELAY={expect_nodelay}")
    state = "TCP_NODELAY on for kernel websockets" if expect_nodelay else "RTVLM_NODELAY=0:"
    line = f"rtvlm_widget | {state}"
    if line not in case.lab.log_path.read_text(errors="replace"):
        raise RuntimeError(f"{case.name}: no {line!r} in the server log\n{case.lab.log_tail()}")
    return sockets


def _stats(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "n": len(samples),
        "p50": statistics.median(samples),
        "p95": cuts[94],
        "mean": statistics.fmean(samples),
        "min": min(samples),
        "max": max(samples),
    }


def _table(stats: dict[str, dict[str, dict[str, float]]]) -> str:
    rows = [
        "| payload | OFF p50 (ms) | OFF p95 (ms) | ON p50 (ms) | ON p95 (ms) | OFF/ON p50 | OFF/ON p95 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        off, on = stats["OFF"][str(size)], stats["ON"][str(size)]
        rows.append(
            f"| {size // 1000} KB | {off['p50']:.1f} | {off['p95']:.1f} | {on['p50']:.1f} | {on['p95']:.1f} "
            f"| {off['p50'] / on['p50']:.2f}x | {off['p95'] / on['p95']:.2f}x |"
        )
    return "\n".join(rows)


def run(n: int, block: int, out: Path) -> dict[str, Any]:
    if n % block:
        raise SystemExit(f"--n ({n}) must be a multiple of --block ({block})")
    started = time.time()
    with (
        JupyterLab("lab", env={"RTVLM_NODELAY": "1"}) as lab_on,
        JupyterLab("lab", env={"RTVLM_NODELAY": "0"}) as lab_off,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw, None)
        try:
            cases = [Case("ON", lab_on), Case("OFF", lab_off)]
            for case in cases:
                _open_echo(case, browser)
            sockets = {case.name: _check_sockets(case, case.name == "ON") for case in cases}
            samples: dict[str, dict[str, list[float]]] = {c.name: {str(s): [] for s in SIZES} for c in cases}
            for size in SIZES:
                for case in cases:
                    case.round_trips(size, block)  # warm-up, discarded
            for b in range(n // block):
                order = cases if b % 2 == 0 else cases[::-1]
                for size in SIZES:
                    for case in order:
                        samples[case.name][str(size)] += case.round_trips(size, block)
            browser_version = browser.version
        finally:
            browser.close()
    stats = {name: {size: _stats(s) for size, s in by_size.items()} for name, by_size in samples.items()}
    result: dict[str, Any] = {
        "what": "comm round trip: the front end sends a binary buffer, the kernel replies at once",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "n_per_case": n,
        "block": block,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1min_at_end": os.getloadavg()[0],  # other work on the machine skews the numbers
        },
        "versions": {
            "jupyter_server": version("jupyter_server"),
            "jupyterlab": version("jupyterlab"),
            "tornado": version("tornado"),
            "anywidget": version("anywidget"),
            "chromium": browser_version,
        },
        "server_sockets_nodelay": {name: {str(p): v for p, v in s.items()} for name, s in sockets.items()},
        "stats_ms": stats,
        "samples_ms": samples,
        "table": _table(stats),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100, help="round trips per case and payload (default 100)")
    parser.add_argument("--block", type=int, default=10, help="round trips per A/B turn (default 10)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    args = parser.parse_args()
    result = run(args.n, args.block, args.out)
    print(result["table"])
    print(f"\n{result['n_per_case']} round trips per cell, {result['seconds']} s; samples in {args.out}")


if __name__ == "__main__":
    main()
