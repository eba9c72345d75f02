"""Several people in the app at once: N real browser sessions against one `streamlit run`.

Loopback only, bounded in sessions and in time, and it stops by itself. For each N in
`--sessions` (default 1,2,4) it starts a fresh server (embedded demo detector) and N headless
Chromium sessions, each on its own sample scene; every session walks `--pages` for `--rounds`
rounds (round 1 pays the model's passes: cold; later rounds find their results cached: warm),
timing each page from the click until the script is idle with its figure drawn. It prints the
per-page p50 / p95 of cold and warm renders, the server's peak RSS while the sessions ran, and
its RSS `--settle` seconds after they closed (Streamlit keeps a closed session 2 minutes for a
reconnect). `--soak MIN` then runs 4 sessions for MIN minutes switching scenes, `--soak-pages` (every page
with a figure by default) and sliders at random (seeded) and reports every exception box, the
actions done and the RSS trace (every 30 s for `--settle` s after closing: give it 240 to see the
session reaper's release at ~150 s).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_load.py [--sessions 1,2,4] [--rounds 3]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_load.py --rounds 0 --soak 20 --settle 240

Every browser runs on the same machine as the server: on 2 cores the browsers' own rendering
competes with the server, so read the ratios between N within one run, not the seconds alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import (  # noqa: E402
    IMAGE,
    PLOT,
    PageError,
    chromium,
    nudge_first_slider,
    open_page,
    streamlit_server,
    text_of,
    timed,
    wait_for_page,
    wait_until_running,
)

from sodviz.memory import DEFAULT_MEMORY_MB  # noqa: E402
from sodviz.samples import sample_names  # noqa: E402

PAGES = ("Detections", "Attention", "ViCrop", "Home")
SOAK_PAGES = ("Detections", "Attention", "ViCrop", "ERF", "Fusion maps", "Candidates", "Explain", "Home")
DRAWN = f'{PLOT}, [data-testid="stAlert"]'  # a figure, or a page's sentence saying why there is none
LIMIT_S = 45 * 60  # the whole script stops by itself after this


def rss_mib(pid: int) -> float:
    """The resident memory of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


SERVE_ARGS: list[str] = []  # passed to `python -m sodviz serve` (--memory-mb from the command line)


@contextlib.contextmanager
def traced_server(name: str):
    """A fresh server (`artifacts/bench_load_{name}.log`, its script runs timed into a .timings.jsonl
    beside it), its RSS traced; yields (url, pid, trace, log, timings)."""
    processes = []
    log = ROOT / "artifacts" / f"bench_load_{name}.log"
    timings = log.with_suffix(".timings.jsonl")
    timings.unlink(missing_ok=True)
    env = {"SODVIZ_TIMINGS": str(timings)}
    with streamlit_server(log, processes=processes, env=env, args=tuple(SERVE_ARGS)) as url:
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
    field.send_keys(Keys.ENTER)
    wait_until_running(driver, timeout=3)
    wait_for_page(driver, IMAGE)
    if name not in driver.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text:
        raise PageError(f"the scene {name} was not chosen")


def session(url: str, scene: str, pages, rounds: int, rows: list, errors: list, deadline: float) -> None:
    """One browser: its scene chosen on Home, then `rounds` walks through `pages`."""
    try:
        with chromium() as driver:
            driver.get(url)
            choose_scene(driver, scene)
            for number in range(1, rounds + 1):
                for page in pages:
                    if time.monotonic() > deadline:
                        return
                    figure = IMAGE if page == "Home" else DRAWN
                    clicked = time.time()
                    seconds = timed(driver, lambda p=page: open_page(driver, p), figure)
                    rows.append((number, page, seconds, scene, clicked, time.time()))
                    shown = text_of(driver, '[data-testid="stSidebar"]')
                    if scene not in shown:  # cross-talk: another session's image on this page
                        errors.append(f"{scene}: {page} showed another image ({shown[-80:]!r})")
    except Exception as error:  # reported, the run goes on
        errors.append(f"{scene}: {type(error).__name__}: {error}")


def server_runs(path: Path) -> list[dict]:
    """The server's own timing of each script run (SODVIZ_TIMINGS lines, pages/_timing.py)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def caches(runs) -> str:
    """What the app's caches held at its last script run, and what the memory budget dropped so far."""
    if not runs:
        return "caches not reported"
    last = runs[-1]
    return (
        f"inference cache {last['cache_mib']:.0f} MiB, views {last.get('views_mib', float('nan')):.0f}, "
        f"dropped by the memory budget {last.get('evicted_mib', float('nan')):.0f}"
    )


def server_seconds(row, runs) -> tuple[float, float]:
    """Wall and CPU seconds the server spent on one browser render: the runs of its page and scene
    that began between the click and the figure drawn (a render can take more than one run)."""
    _, page, _, scene, clicked, done = row
    mine = [r for r in runs if r["page"] == page and r["image"] == scene and clicked <= r["start"] <= done]
    return sum(r["wall"] for r in mine), sum(r["cpu"] for r in mine)


def load(n: int, pages, rounds: int, settle: float, deadline: float) -> dict:
    """N sessions on a fresh server: rows of (round, page, seconds, scene, clicked, done), the
    server's runs, peak RSS, RSS and the inference cache's MiB after closing."""
    rows, errors = [], []
    scenes = sample_names()
    with traced_server(str(n)) as (url, pid, trace, log, timings):
        with chromium() as warmup:  # the model load and imports, outside the timed sessions
            warmup.get(url)
            wait_for_page(warmup, IMAGE, timeout=120)
        idle = rss_mib(pid)
        started = time.monotonic()
        threads = [
            threading.Thread(
                target=session, args=(url, scenes[i % len(scenes)], pages, rounds, rows, errors, deadline)
            )
            for i in range(n)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak = trace.peak(started)
        closed = time.monotonic()
        while time.monotonic() - closed < settle and time.monotonic() < deadline:
            time.sleep(1)
        after = rss_mib(pid)
        text = log.read_text()
    runs = server_runs(timings)
    return {"rows": rows, "errors": errors + (["Traceback in the server log"] if "Traceback" in text else []),
            "idle": idle, "peak": peak, "after": after, "runs": runs,
            "caches": caches(runs)}  # fmt: skip


def soak(minutes: float, pages, settle: float, deadline: float, seed: int = 0) -> dict:
    """4 sessions for `minutes`: random scenes, pages and slider nudges; every exception recorded."""
    errors, hiccups, actions = [], [], []
    scenes = sample_names()
    end = min(deadline, time.monotonic() + minutes * 60)

    def act(driver, rng) -> str:
        choice = rng.random()
        if choice < 0.2:
            open_page(driver, "Home")
            choose_scene(driver, rng.choice(scenes))
            return "scene"
        if choice < 0.4 and nudge_first_slider(driver):
            if wait_until_running(driver, timeout=3):
                wait_for_page(driver, DRAWN, timeout=300)
            return "slider"
        page = rng.choice(pages)
        open_page(driver, page)
        wait_until_running(driver, timeout=3)
        wait_for_page(driver, IMAGE if page == "Home" else DRAWN, timeout=300)
        return page

    def one(index: int) -> None:
        """A session acting until the end; an exception box on the page is the app's error, any
        other failure (a stale element, a missed click) the driver's: the page is reloaded."""
        from selenium.webdriver.common.by import By

        rng = random.Random(seed + index)
        with chromium() as driver:
            driver.get(url)
            wait_for_page(driver, IMAGE, timeout=300)
            while time.monotonic() < end:
                try:
                    actions.append(act(driver, rng))
                except Exception as error:  # sorted below, the soak goes on
                    boxes = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
                    ours = [f for f in traceback.extract_tb(error.__traceback__) if str(ROOT) in f.filename]
                    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
                    text = f"session {index}: {type(error).__name__} at {where}"
                    (errors if boxes else hiccups).append(
                        text + (f": {boxes[0].text[:300]}" if boxes else "")
                    )
                    driver.get(url)
                    wait_for_page(driver, IMAGE, timeout=300)

    with traced_server("soak") as (url, pid, trace, log, timings):
        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak = trace.peak()
        closed, curve = time.monotonic(), []  # RSS every 30 s after closing (the reaper: ~150 s)
        while time.monotonic() - closed < settle and time.monotonic() < deadline:
            time.sleep(1)
            if time.monotonic() - closed >= 30 * (len(curve) + 1):
                curve.append(rss_mib(pid))
        after = rss_mib(pid)
        if "Traceback" in log.read_text():
            errors.append(f"Traceback in {log}")
    samples, runs = [v for _, v in trace.samples], server_runs(timings)
    return {"errors": errors, "hiccups": hiccups, "actions": actions, "peak": peak, "after": after,
            "first": samples[0] if samples else float("nan"), "runs": len(runs), "curve": curve,
            "caches": caches(runs)}  # fmt: skip


def upload_release(n: int, settle: float, deadline: float, side: tuple[int, int] = (3000, 4000)) -> dict:
    """N sessions each upload their own large image (random noise, a PNG near the 50 MB limit)
    and keep it open, then close: the server's RSS before, while all N hold their image, at its
    peak, and `settle` s after closing (Streamlit drops a closed session after 2 minutes)."""
    from browser import choose_upload, send_file
    from PIL import Image
    from selenium.webdriver.common.by import By

    folder = ROOT / "artifacts" / "bench_load_uploads"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        path = folder / f"upload_{i}.png"
        if not path.exists():
            noise = np.random.default_rng(i).integers(0, 256, (*side, 3), dtype=np.uint8)
            Image.fromarray(noise).save(path, compress_level=1)
        files.append(path)
    errors = []
    holding, release = threading.Barrier(n + 1, timeout=600), threading.Event()

    def one(path: Path) -> None:
        try:
            with chromium() as driver:
                driver.get(url)
                wait_for_page(driver, IMAGE, timeout=300)
                choose_upload(driver)
                send_file(driver, path)
                deadline = time.monotonic() + 300
                while path.name not in text_of(driver, '[data-testid="stSidebar"]'):
                    if time.monotonic() > deadline:
                        raise PageError(f"{path.name} was not shown")
                    time.sleep(0.5)
                wait_for_page(driver, IMAGE, timeout=300)
                if driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'):
                    errors.append(f"{path.name}: an exception box")
                holding.wait()
                release.wait(600)
        except Exception as error:  # reported; the barrier lets the others go on
            errors.append(f"{path.name}: {type(error).__name__}: {error}")
            holding.abort()

    with traced_server("uploads") as (url, pid, trace, log, timings):
        with chromium() as warmup:
            warmup.get(url)
            wait_for_page(warmup, IMAGE, timeout=120)
        time.sleep(5)
        idle = rss_mib(pid)
        threads = [threading.Thread(target=one, args=(path,)) for path in files]
        for thread in threads:
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            holding.wait()
        time.sleep(5)
        live = rss_mib(pid)
        release.set()
        for thread in threads:
            thread.join()
        peak, closed = trace.peak(), time.monotonic()
        while time.monotonic() - closed < settle and time.monotonic() < deadline:
            time.sleep(1)
        after = rss_mib(pid)
        with chromium() as visitor:  # the next visitor: Streamlit drops expired sessions when one comes
            visitor.get(url)
            wait_for_page(visitor, IMAGE, timeout=120)
        time.sleep(10)
        visited = rss_mib(pid)
        if "Traceback" in log.read_text():
            errors.append(f"Traceback in {log}")
    runs = server_runs(timings)
    return {"idle": idle, "live": live, "peak": peak, "after": after, "visited": visited, "errors": errors,
            "mib": sum(p.stat().st_size for p in files) / 2**20 / n,
            "caches": caches(runs)}  # fmt: skip


def percentiles(values) -> str:
    if not values:
        return "-"
    p50, p95 = np.percentile(values, [50, 95])
    return f"{p50:5.2f} / {p95:5.2f}"


def p95(values) -> float:
    return float(np.percentile(values, 95)) if len(values) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,2,4", help="comma list of concurrent sessions (at most 4)")
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument("--rounds", type=int, default=3, help="walks through the pages per session")
    parser.add_argument("--settle", type=float, default=150.0, help="seconds after closing to read RSS")
    parser.add_argument("--soak-pages", default=",".join(SOAK_PAGES))
    parser.add_argument("--soak", type=float, default=0.0, help="minutes of the 4-session soak (0: none)")
    parser.add_argument(
        "--uploads", type=int, default=0, help="sessions that each upload a large image (0: none)"
    )
    parser.add_argument(
        "--memory-mb", type=int, default=None,
        help="the server's memory budget (serve's --memory-mb; default: serve's own, 2048)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.memory_mb is not None:
        SERVE_ARGS[:] = ["--memory-mb", str(args.memory_mb)]
    counts = [int(v) for v in args.sessions.split(",") if v]
    if any(not 1 <= n <= 4 for n in counts):
        raise SystemExit("sessions must be 1 to 4 (the script is bounded)")
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    soak_pages = [p.strip() for p in args.soak_pages.split(",") if p.strip()]
    deadline = time.monotonic() + LIMIT_S
    results = {n: load(n, pages, args.rounds, args.settle, deadline) for n in counts if args.rounds}
    budget = args.memory_mb if args.memory_mb is not None else DEFAULT_MEMORY_MB
    print(f"servers started by `python -m sodviz serve`, memory budget {budget or 'none'} MiB")
    print("browser: click to figure drawn; server: its script runs for that render (wall, and the CPU")
    print("share of that wall spent by the script thread itself)")
    print(f"{'N':>2} {'page':<11} {'cold p50 / p95 s':>17} {'warm p50 / p95 s':>17} "
          f"{'server warm p50 / p95 s':>24} {'cpu':>5}")  # fmt: skip
    warm_of = {}  # N -> (browser seconds, server wall seconds) of every warm render
    for n, result in results.items():
        served = [(row, *server_seconds(row, result["runs"])) for row in result["rows"]]
        warm_of[n] = (
            [row[2] for row, _, _ in served if row[0] > 1],
            [w for row, w, _ in served if row[0] > 1],
        )
        for page in pages:
            cold = [row[2] for row, _, _ in served if row[1] == page and row[0] == 1]
            warm = [(row[2], w, c) for row, w, c in served if row[1] == page and row[0] > 1]
            walls = [w for _, w, _ in warm]
            cpu = sum(c for _, _, c in warm) / sum(walls) if sum(walls) else float("nan")
            print(f"{n:>2} {page:<11} {percentiles(cold):>17} {percentiles([b for b, _, _ in warm]):>17} "
                  f"{percentiles(walls):>24} {cpu:>5.0%}")  # fmt: skip
    for n, result in results.items():
        browser, server = warm_of[n]
        print(
            f"N={n}: warm p95 over pages {p95(browser):.2f} s (server {p95(server):.2f} s); RSS idle "
            f"{result['idle']:.0f} MiB, peak {result['peak']:.0f}, {args.settle:.0f} s after closing "
            f"{result['after']:.0f} ({result['caches']}); "
            f"{len(result['rows'])} renders, {len(result['runs'])} server runs; "
            f"errors: {result['errors'] or 'none'}"
        )
    if 1 in results and len(results) > 1:
        for n in results:
            if n > 1 and warm_of[1][0] and warm_of[n][0] and p95(warm_of[1][1]) > 0:
                print(
                    f"warm p95 with {n} sessions / 1 session (target <= 2x): browser "
                    f"{p95(warm_of[n][0]) / p95(warm_of[1][0]):.2f}x, server "
                    f"{p95(warm_of[n][1]) / p95(warm_of[1][1]):.2f}x"
                )
    if args.uploads:
        if not 1 <= args.uploads <= 4:
            raise SystemExit("uploads must be 1 to 4 sessions (the script is bounded)")
        result = upload_release(args.uploads, args.settle, deadline)
        print(
            f"uploads: {args.uploads} sessions, a {result['mib']:.0f} MB PNG each; RSS idle "
            f"{result['idle']:.0f} "
            f"MiB, all holding their image {result['live']:.0f}, peak {result['peak']:.0f}, "
            f"{args.settle:.0f} s after closing {result['after']:.0f} ({result['caches']}), "
            f"after one more visitor {result['visited']:.0f}; errors: {result['errors'] or 'none'}"
        )
    if args.soak:
        result = soak(args.soak, soak_pages, args.settle, deadline)
        print(
            f"soak {args.soak:.0f} min, 4 sessions: {len(result['actions'])} actions; RSS first "
            f"{result['first']:.0f} MiB, peak {result['peak']:.0f}, {args.settle:.0f} s after closing "
            f"{result['after']:.0f} ({result['caches']}; {result['runs']} "
            f"server runs; every 30 s after closing: {', '.join(f'{v:.0f}' for v in result['curve'])}); "
            f"actions per kind {dict(Counter(result['actions']))}; app errors: {result['errors'] or 'none'}; "
            f"driver hiccups (page reloaded): {len(result['hiccups'])} {result['hiccups'][:6]}"
        )


if __name__ == "__main__":
    main()
