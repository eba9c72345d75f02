"""What the load, soak and upload benchmarks share: a traced `python -m sodviz serve`, Home's
scene picker, and the app's own timing lines (`SODVIZ_TIMINGS`, pages/_timing.py). Imported by
`benchmarks/bench_load.py`, which puts tests/ (the browser helpers) on the path."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

from browser import IMAGE, PLOT, PageError, streamlit_server, wait_for_page, wait_until_running, watch_runs
from cpu import process_seconds

ROOT = Path(__file__).resolve().parent.parent

DRAWN = f'{PLOT}, [data-testid="stAlert"]'  # a figure, or a page's sentence saying why there is none


def rss_mib(pid: int) -> float:
    """The resident memory of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def browser_processes() -> dict[int, float]:
    """CPU seconds so far of each Chromium and chromedriver process on this machine, by pid."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if b"chrom" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found[int(pid)] = process_seconds(int(pid))
    return found


def browser_seconds() -> float:
    """CPU seconds so far of every Chromium and chromedriver process now running."""
    return sum(browser_processes().values())


class BrowserCpu(threading.Thread):
    """The CPU seconds browsers spend from `start()` until `stop`, those that exit meanwhile
    included (each process's last reading, every half second: up to that much of each is lost)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.first, self.last, self.stop = browser_processes(), {}, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.last.update(browser_processes())
            self.stop.wait(0.5)

    def seconds(self) -> float:
        self.stop.set()
        self.join()
        return sum(spent - self.first.get(pid, 0.0) for pid, spent in self.last.items())


class MemoryTrace(threading.Thread):
    """The server's RSS every half second, until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic(), rss_mib(self.pid)))
            self.stop.wait(0.5)

    def peak(self, since: float = 0.0) -> float:
        return max((v for t, v in self.samples if t >= since), default=float("nan"))


@contextlib.contextmanager
def traced_server(name: str, serve_args: tuple[str, ...] = ()):
    """A fresh server (`artifacts/bench_load_{name}.log`, its script runs timed into a .timings.jsonl
    beside it; `serve_args` for `python -m sodviz serve`), its RSS traced; yields (url, pid, trace,
    log, timings)."""
    processes = []
    log = ROOT / "artifacts" / f"bench_load_{name}.log"
    timings = log.with_suffix(".timings.jsonl")
    timings.unlink(missing_ok=True)
    env = {"SODVIZ_TIMINGS": str(timings)}
    with streamlit_server(log, processes=processes, env=env, args=serve_args) as url:
        trace = MemoryTrace(processes[0].pid)
        trace.start()
        try:
            yield url, processes[0].pid, trace, log, timings
        finally:
            trace.stop.set()


def choose_scene(driver, name: str) -> None:
    """Pick the sample scene `name` in Home's selectbox (Home must be open)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    wait_for_page(driver, IMAGE)
    deadline, boxes = time.monotonic() + 30, []
    while not boxes:  # a page switch can leave the last page's image on screen for a moment
        if time.monotonic() > deadline:
            raise PageError("Home's sample scene picker was not drawn within 30 s")
        with contextlib.suppress(StaleElementReferenceException):  # swapped while read: look again
            boxes = [
                b for b in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSelectbox"]')
                if "Sample scene" in b.text
            ]  # fmt: skip
        time.sleep(0.1)
    field = boxes[0].find_element(By.CSS_SELECTOR, "input")
    field.click()
    field.send_keys(name)
    watch_runs(driver)
    field.send_keys(Keys.ENTER)
    wait_until_running(driver, timeout=3)
    wait_for_page(driver, IMAGE)
    if name not in driver.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text:
        raise PageError(f"the scene {name} was not chosen")


def server_runs(path: Path) -> list[dict]:
    """The server's own timing of each script run (SODVIZ_TIMINGS lines, pages/_timing.py)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def caches(runs) -> str:
    """What the app's caches held at its last script run, and what the memory budget dropped so far."""
    if not runs:
        return "caches not reported"
    last = runs[-1]
    return (
        f"at the last script run: inference cache {last['cache_mib']:.0f} MiB, "
        f"views {last.get('views_mib', float('nan')):.0f}, "
        f"dropped by the memory budget {last.get('evicted_mib', float('nan')):.0f}"
    )
