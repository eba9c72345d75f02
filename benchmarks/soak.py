"""The soak: 4 browser sessions for a given time on one server, switching scenes, pages and sliders
at random (seeded); every exception box recorded, the RSS traced while they run and after they
close. Run through `benchmarks/bench_load.py --soak MIN`."""

from __future__ import annotations

import random
import threading
import time
import traceback
from pathlib import Path

from browser import (
    IMAGE,
    chromium,
    nudge_first_slider,
    open_page,
    wait_for_page,
    wait_until_running,
    watch_runs,
)
from served import DRAWN, ROOT, caches, choose_scene, rss_mib, server_runs, traced_server

from sodviz.samples import sample_names


def _where(error: Exception) -> str:
    """The last line of this project's code the error passed through."""
    ours = [f for f in traceback.extract_tb(error.__traceback__) if str(ROOT) in f.filename]
    return f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"


def soak(
    minutes: float, pages, settle: float, deadline: float, seed: int = 0, serve_args: tuple[str, ...] = ()
) -> dict:
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
        watch_runs(driver)
        open_page(driver, page)
        wait_until_running(driver, timeout=3)
        wait_for_page(driver, IMAGE if page == "Home" else DRAWN, timeout=300)
        return page

    def one(index: int) -> None:
        """A session acting until the end; an exception box on the page is the app's error, any
        other failure (a stale element, a missed click) the driver's: the page is reloaded."""
        from selenium.webdriver.common.by import By

        rng = random.Random(seed + index)
        try:
            with chromium() as driver:
                driver.get(url)
                wait_for_page(driver, IMAGE, timeout=300)
                while time.monotonic() < end:
                    try:
                        actions.append(act(driver, rng))
                    except Exception as error:  # sorted, and the soak goes on
                        boxes = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
                        text = f"session {index}: {type(error).__name__} at {_where(error)}"
                        (errors if boxes else hiccups).append(
                            text + (f": {boxes[0].text[:300]}" if boxes else "")
                        )
                        driver.get(url)
                        wait_for_page(driver, IMAGE, timeout=300)
        except Exception as error:  # a session that could not go on is an error of the soak, not silence
            errors.append(f"session {index} ended early: {type(error).__name__}: {str(error)[:300]}")

    with traced_server("soak", serve_args) as (url, pid, trace, log, timings):
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
