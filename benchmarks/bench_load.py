"""Several people in the app at once: N real browser sessions against one `python -m sodviz serve`.

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
session reaper's release at ~150 s). Servers start as `make run` starts them (`python -m sodviz
serve`), with its memory budget unless `--memory-mb` names another; the caches' sizes and what the
budget dropped come from the app's own timing lines.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_load.py [--sessions 1,2,4] [--rounds 3]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_load.py --rounds 0 --soak 20 --settle 240

Every browser runs on the same machine as the server: on 2 cores the browsers' own rendering
competes with the server, so read the ratios between N within one run, not the seconds alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / p) for p in ("", "tests")]

from browser import IMAGE, PLOT, chromium, open_page, text_of, timed, wait_for_page  # noqa: E402
from cpu import process_seconds  # noqa: E402
from served import BrowserCpu, caches, choose_scene, rss_mib, server_runs, traced_server  # noqa: E402
from soak import soak  # noqa: E402
from uploads import upload_release  # noqa: E402

from sodviz.samples import sample_names  # noqa: E402
from sodviz.serving.memory import served_memory_mb  # noqa: E402

PAGES = ("Detections", "Attention", "ViCrop", "Home")
SOAK_PAGES = ("Detections", "Attention", "ViCrop", "ERF", "Fusion maps", "Candidates", "Explain", "Home")
LIMIT_S = 45 * 60  # the whole script stops by itself after this


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
                    figure = IMAGE if page == "Home" else PLOT
                    clicked = time.time()
                    seconds = timed(driver, lambda p=page: open_page(driver, p), figure)
                    rows.append((number, page, seconds, scene, clicked, time.time()))
                    shown = text_of(driver, '[data-testid="stSidebar"]')
                    if scene not in shown:  # cross-talk: another session's image on this page
                        errors.append(f"{scene}: {page} showed another image ({shown[-80:]!r})")
    except Exception as error:  # reported, the run goes on
        errors.append(f"{scene}: {type(error).__name__}: {error}")


def server_seconds(row, runs) -> tuple[float, float]:
    """Wall and CPU seconds the server spent on one browser render: the runs of its page and scene
    that began between the click and the figure drawn (a render can take more than one run)."""
    _, page, _, scene, clicked, done = row
    mine = [r for r in runs if r["page"] == page and r["image"] == scene and clicked <= r["start"] <= done]
    return sum(r["wall"] for r in mine), sum(r["cpu"] for r in mine)


def load(
    n: int, pages, rounds: int, settle: float, deadline: float, serve_args: tuple[str, ...] = ()
) -> dict:
    """N sessions on a fresh server: rows of (round, page, seconds, scene, clicked, done), the
    server's runs, peak RSS, RSS after closing and the caches' MiB at the last script run."""
    rows, errors = [], []
    scenes = sample_names()
    with traced_server(str(n), serve_args) as (url, pid, trace, log, timings):
        with chromium() as warmup:  # the model load and imports, outside the timed sessions
            warmup.get(url)
            wait_for_page(warmup, IMAGE, timeout=120)
        idle = rss_mib(pid)
        started, browsers, server_cpu = time.monotonic(), BrowserCpu(), process_seconds(pid)
        browsers.start()
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
        cpu = (browsers.seconds(), process_seconds(pid) - server_cpu, time.monotonic() - started)
        peak = trace.peak(started)
        closed = time.monotonic()
        while time.monotonic() - closed < settle and time.monotonic() < deadline:
            time.sleep(1)
        after = rss_mib(pid)
        text = log.read_text()
    runs = server_runs(timings)
    return {"rows": rows, "errors": errors + (["Traceback in the server log"] if "Traceback" in text else []),
            "idle": idle, "peak": peak, "after": after, "runs": runs,
            "caches": caches(runs), "cpu": cpu}  # fmt: skip


def beside_cold(rows) -> tuple[list[float], list[float]]:
    """Browser seconds of the warm renders split by whether another session's cold render (its
    first round, a model pass) was under way at the same time: sessions are not in step, so a
    fast session's warm pages share the cores with a slow one's passes."""
    cold = [(scene, clicked, done) for number, _, _, scene, clicked, done in rows if number == 1]
    beside, alone = [], []
    for number, _, seconds, scene, clicked, done in rows:
        if number > 1:
            busy = any(other != scene and start < done and clicked < end for other, start, end in cold)
            (beside if busy else alone).append(seconds)
    return beside, alone


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
    parser.add_argument("--save", type=Path, help="write every render and server run as JSON here")
    parser.add_argument("--soak", type=float, default=0.0, help="minutes of the 4-session soak (0: none)")
    parser.add_argument(
        "--uploads", type=int, default=0, help="sessions that each upload a large image (0: none)"
    )
    parser.add_argument(
        "--memory-mb", type=int, default=None,
        help="the server's memory budget (serve's --memory-mb; default: serve's own, 2048)",
    )  # fmt: skip
    args = parser.parse_args()
    serve_args = () if args.memory_mb is None else ("--memory-mb", str(args.memory_mb))
    counts = [int(v) for v in args.sessions.split(",") if v]
    if any(not 1 <= n <= 4 for n in counts):
        raise SystemExit("sessions must be 1 to 4 (the script is bounded)")
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    soak_pages = [p.strip() for p in args.soak_pages.split(",") if p.strip()]
    deadline = time.monotonic() + LIMIT_S
    results = {
        n: load(n, pages, args.rounds, args.settle, deadline, serve_args) for n in counts if args.rounds
    }
    if args.save:
        kept = {n: {"rows": result["rows"], "runs": result["runs"]} for n, result in results.items()}
        args.save.write_text(json.dumps(kept))
    budget = served_memory_mb(args.memory_mb, os.environ)  # as serve reads it
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
        browsers, server, wall = result["cpu"]
        print(
            f"      CPU while they ran: browsers and their drivers {browsers:.0f} s, server {server:.0f} s, "
            f"in {wall:.0f} s on {len(os.sched_getaffinity(0))} cores"
        )
    if 1 in results and len(results) > 1:
        for n in results:
            if n > 1 and warm_of[1][0] and warm_of[n][0] and p95(warm_of[1][1]) > 0:
                print(
                    f"warm p95 with {n} sessions / 1 session (target <= 2x): browser "
                    f"{p95(warm_of[n][0]) / p95(warm_of[1][0]):.2f}x, server "
                    f"{p95(warm_of[n][1]) / p95(warm_of[1][1]):.2f}x"
                )
                beside, alone = beside_cold(results[n]["rows"])
                print(
                    f"  of its warm renders, {len(beside)} ran while another session's cold page was "
                    f"computing (p50 / p95 {percentiles(beside).strip()} s), {len(alone)} while none was "
                    f"({percentiles(alone).strip()} s)"
                )
    if args.uploads:
        if not 1 <= args.uploads <= 4:
            raise SystemExit("uploads must be 1 to 4 sessions (the script is bounded)")
        result = upload_release(args.uploads, args.settle, deadline, serve_args=serve_args)
        print(
            f"uploads: {args.uploads} sessions, a {result['mib']:.0f} MB PNG each; RSS idle "
            f"{result['idle']:.0f} "
            f"MiB, all holding their image {result['live']:.0f}, peak {result['peak']:.0f}, "
            f"{args.settle:.0f} s after closing {result['after']:.0f} ({result['caches']}), "
            f"after one more visitor {result['visited']:.0f}; errors: {result['errors'] or 'none'}"
        )
    if args.soak:
        result = soak(args.soak, soak_pages, args.settle, deadline, serve_args=serve_args)
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
