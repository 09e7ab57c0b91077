"""Soak benchmark: one panel live for a long time; does anything grow that should not?

Run from the repository root (it starts everything itself)::

    .venv/bin/python -m benchmarks.soak                 # one hour, interval 0.1 s (10 requests/s)
    .venv/bin/python -m benchmarks.soak --minutes 10    # shorter

Parts, all real: the instant OpenAI-compatible server (benchmarks/instant_server.py: answers at
once, streamed), JupyterLab, headless Chromium with the fake camera (the textured 640x480
quadrants of benchmarks/e2e.py) and ``RealtimeVLM`` with its defaults except ``interval``. Every
``--sample-seconds`` (default 60) it reads, in the kernel: RSS (``/proc/<kernel>/status``), the
asyncio tasks on the widget's loop, threads, open file descriptors, answers and failures so far
(counted by an ``on_answer``/``on_error`` callback: the history itself keeps only the last
``history_limit`` = 1000, frames included, so it fills in the first ~2 minutes at 10 fps). It also
reads the Chromium page's JS heap.

Prints a table per sample and a summary with first / last / max and growth (whole run, and from
the first sample after the history is full, where nothing should grow any more). JSON goes to
``benchmarks/results/soak.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from benchmarks.e2e import kernel_pid, write_camera
from benchmarks.instant_server import InstantServer
from tests.browser.jupyter import JupyterLab
from tests.browser.page import NotebookPage, launch_chromium

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "soak.json"
ARTIFACTS = REPO / "test-artifacts"

SETUP = """import asyncio, json, os, threading, time
from rtvlm_widget import RealtimeVLM

app = RealtimeVLM(base_url={url!r}, interval={interval})
soak = {{'answers': 0, 'errors': 0, 'last_error': None}}

@app.on_answer
def _count(answer):
    soak['answers'] += 1

@app.on_error
def _count_error(answer):
    soak['errors'] += 1
    soak['last_error'] = answer.error

app"""

SAMPLE = """loop = app._panel._loop
print('SAMPLE ' + json.dumps({
    'tasks': len(asyncio.all_tasks(loop)),
    'threads': threading.active_count(),
    'fds': len(os.listdir('/proc/self/fd')),
    'answers': soak['answers'], 'errors': soak['errors'], 'last_error': soak['last_error'],
    'history': len(app.history), 'live': app._controller.live,
    'digests': len(get_ipython().kernel.session.digest_history),
}))"""


@dataclass(frozen=True)
class Sample:
    minute: float
    rss_mb: float
    tasks: int
    threads: int
    fds: int
    answers: int
    errors: int
    history: int
    heap_mb: float
    rate: float  # answers per second since the previous sample
    #: Signatures of the messages the kernel received, kept against replays (jupyter_client's
    #: Session: up to 65536, then it drops the oldest half); ~120 bytes each.
    digests: int = 0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def sample(nb: NotebookPage, pid: int, started: float, previous: Sample | None) -> Sample:
    out = nb.run_code(SAMPLE, timeout=60)
    data: dict[str, Any] = json.loads(
        next(x for x in out.splitlines() if x.startswith("SAMPLE ")).split(" ", 1)[1]
    )
    if not data["live"]:
        raise RuntimeError(f"the live loop stopped: {data}")
    heap = nb.page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0")
    minute = (time.monotonic() - started) / 60
    rate = 0.0
    if previous is not None and minute > previous.minute:
        rate = (data["answers"] - previous.answers) / ((minute - previous.minute) * 60)
    return Sample(
        minute=minute,
        rss_mb=rss_mb(pid),
        tasks=data["tasks"],
        threads=data["threads"],
        fds=data["fds"],
        answers=data["answers"],
        errors=data["errors"],
        history=data["history"],
        heap_mb=heap / 2**20,
        rate=rate,
        digests=data["digests"],
    )


COLUMNS = ("minute", "rss_mb", "tasks", "threads", "fds", "answers", "errors", "history", "heap_mb", "rate",
           "digests")  # fmt: skip
HEADS = ("min", "kernel RSS MB", "asyncio tasks", "threads", "fds", "answers", "errors", "history",
         "page JS heap MB", "answers/s", "message digests")  # fmt: skip


def fmt(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def table(samples: list[Sample]) -> str:
    lines = ["| " + " | ".join(HEADS) + " |", "|" + "---|" * len(HEADS)]
    for s in samples:
        lines.append("| " + " | ".join(fmt(getattr(s, c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def summary(samples: list[Sample], history_limit: int) -> str:
    full = next((i for i, s in enumerate(samples) if s.history >= history_limit), len(samples) - 1)
    steady = samples[full:]
    lines = [
        "| measure | first | last | max | growth | growth since history full "
        f"(min {steady[0].minute:.1f} → {steady[-1].minute:.1f}) |",
        "|---|---|---|---|---|---|",
    ]
    for column, head in (("rss_mb", "kernel RSS MB"), ("tasks", "asyncio tasks"), ("threads", "threads"),
                         ("fds", "open fds"), ("heap_mb", "page JS heap MB"),
                         ("digests", "kernel message digests")):  # fmt: skip
        values = [getattr(s, column) for s in samples]
        grown = values[-1] - values[0]
        since = getattr(steady[-1], column) - getattr(steady[0], column)
        cells = (values[0], values[-1], max(values), grown, since)
        lines.append(f"| {head} | " + " | ".join(fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def run(minutes: float, interval: float, sample_seconds: float) -> dict[str, Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rtvlm-soak-"))
    camera = tmp / "cam-640x480.y4m"
    write_camera(camera, 640, 480, "textured")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    samples: list[Sample] = []
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "minutes": minutes,
        "interval": interval,
        "sample_seconds": sample_seconds,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
    }
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        server = stack.enter_context(InstantServer(log_path=ARTIFACTS / "soak-instant.log"))
        lab = stack.enter_context(JupyterLab("lab", env=env, keep_log=ARTIFACTS / "soak-jupyter.log"))
        pw = stack.enter_context(sync_playwright())
        browser = launch_chromium(pw, camera, extra_args=("--enable-precise-memory-info",))
        stack.callback(browser.close)
        lab.put_notebook("soak.ipynb", [SETUP.format(url=server.base_url, interval=interval), "app.start()"])
        nb = NotebookPage(browser.new_context(viewport={"width": 1280, "height": 1000}).new_page())
        nb.show_panel(lab, "soak.ipynb")
        pid = kernel_pid(nb)
        if pid is None:
            raise RuntimeError("kernel process not found")
        assert nb.run_cell(1), nb.cell_text(1)
        started = time.monotonic()
        print(f"live against {server.base_url}, interval {interval} s, for {minutes:g} min", flush=True)
        samples.append(sample(nb, pid, started, None))
        while samples[-1].minute < minutes - 1e-6:
            wait = min(sample_seconds, (minutes - samples[-1].minute) * 60)
            nb.page.wait_for_timeout(wait * 1000)
            samples.append(sample(nb, pid, started, samples[-1]))
            s = samples[-1]
            print(
                f"min {s.minute:5.1f}: RSS {s.rss_mb:.1f} MB, {s.tasks} tasks, {s.answers} answers "
                f"({s.rate:.1f}/s), {s.errors} errors",
                flush=True,
            )
        last_error = json.loads(nb.run_code("print(json.dumps(soak['last_error']))").strip())
        nb.run_code("app.stop()")
        meta["server_stats"] = server.stats()
        meta["last_error"] = last_error
    meta["loadavg_end"] = os.getloadavg()
    return {"meta": meta, "samples": [asdict(s) for s in samples]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to stay live (default 60)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between requests (default 0.1)")
    parser.add_argument("--sample-seconds", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.minutes, args.interval, args.sample_seconds)
    samples = [Sample(**s) for s in result["samples"]]
    print()
    print(table(samples))
    print()
    print(summary(samples, history_limit=1000))
    meta = result["meta"]
    print(
        f"\n{samples[-1].answers} answers, {samples[-1].errors} errors (last: {meta['last_error']}); "
        f"load average {meta['loadavg_start'][0]:.1f} → {meta['loadavg_end'][0]:.1f} on {meta['cpus']} CPUs"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
