"""Where the CPU goes while the app serves: the browser's waiting, and the model's priority.

Three measurements against one `python -m sodviz serve` on loopback (Linux: CPU times from /proc):

1. **A browser waiting.** One headless Chromium sits on a drawn page for `--seconds`, once idle,
   once polling through the driver as tests/browser.py did until 0fefcd1 (three element look-ups
   every 50 ms), and once waiting inside the page as it does now (`wait_for_page` on a selector
   that never appears). Prints the CPU share of a core that Chromium and chromedriver spent.
   The load benchmark runs four such browsers on the server's machine. Then it looks a page
   link up ten times each way: every link's text read through the driver (as until d288115), and
   in one script (`open_page` now).
2. **A cold walk's CPU by priority.** The same session opens Detections, ViCrop, Attention and
   Explain, each computed for the first time, while the server's threads are sampled every 0.1 s;
   prints the CPU seconds its threads spent at each nice value. Each model pass runs on a thread of
   its own lowered by `SODVIZ_MODEL_NICE` (default 10), and so do torch's workers it starts.
3. **A warm render's CPU.** The same session then opens Detections, Attention, ViCrop and Home
   twice, each result cached; prints the CPU seconds Chromium (with chromedriver) and the server
   spent from the click until one second after the figure is drawn.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_cpu_share.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / p) for p in ("", "tests")]

from browser import _NAV_LINK as NAV_LINK  # noqa: E402
from browser import IMAGE, PLOT, PageError, chromium, open_page, timed, wait_for_page  # noqa: E402
from cpu import TICKS, process_seconds, thread_ticks  # noqa: E402
from served import browser_seconds, traced_server  # noqa: E402

COLD_PAGES = ("Detections", "ViCrop", "Attention", "Explain")
WARM_PAGES = ("Detections", "Attention", "ViCrop", "Home")


def waiting(driver, how: str, seconds: float) -> float:
    """The browser's CPU share of a core while the driver waits `seconds` in the way `how`."""
    from selenium.webdriver.common.by import By

    start, cpu = time.monotonic(), browser_seconds()
    if how == "driver polls":
        while time.monotonic() - start < seconds:
            for selector in (
                '[data-testid="stException"]',
                '[data-testid="stApp"][data-test-script-state="notRunning"]',
                '[data-testid="stStatusWidget"]',
            ):
                driver.find_elements(By.CSS_SELECTOR, selector)
            time.sleep(0.05)
    elif how == "page waits":
        with contextlib.suppress(PageError):
            wait_for_page(driver, "#never-drawn", timeout=seconds)
    else:
        time.sleep(seconds)
    return (browser_seconds() - cpu) / (time.monotonic() - start)


def link_lookup(driver, title: str, *, through_driver: bool):
    """The sidebar's link to `title`: as tests/browser.py found it until d288115 (every link's
    text read through the driver), or as `open_page` does now (one script)."""
    from selenium.webdriver.common.by import By

    if through_driver:
        links = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a')
        return next(link for link in links if link.text.strip().endswith(title))
    return driver.execute_script(f"return ({NAV_LINK})(arguments[0]);", title)


class ThreadSampler(threading.Thread):
    """CPU ticks of each thread of a process, by the nice it had when it spent them."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.by_nice, self.stop = pid, Counter(), threading.Event()

    def run(self) -> None:
        last: dict[int, int] = {}
        while not self.stop.is_set():
            for thread, (ticks, nice) in thread_ticks(self.pid).items():
                if thread in last:
                    self.by_nice[nice] += ticks - last[thread]
                last[thread] = ticks
            self.stop.wait(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="each browser wait (default 10)")
    args = parser.parse_args()
    with traced_server("cpu_share") as (url, pid, _, _, _), chromium() as driver:
        driver.get(url)
        wait_for_page(driver, IMAGE)
        time.sleep(2)
        print(f"one headless Chromium + chromedriver on a drawn page, {args.seconds:.0f} s each:")
        for how in ("idle", "driver polls", "page waits", "driver polls", "page waits"):
            print(f"  {how:13s} {100 * waiting(driver, how, args.seconds):5.1f} % of a core")
        print("looking a page link up (10 times each), browser and driver CPU per look-up:")
        for how in ("each link's text through the driver", "in one script (open_page now)") * 2:
            start = browser_seconds()
            for _ in range(10):
                link_lookup(driver, "ViCrop", through_driver=how.startswith("each"))
            print(f"  {how:38s} {100 * (browser_seconds() - start):4.0f} ms")
        sampler = ThreadSampler(pid)
        sampler.start()
        walk = [(page, timed(driver, lambda p=page: open_page(driver, p), PLOT)) for page in COLD_PAGES]
        sampler.stop.set()
        sampler.join()
        print("one session's cold walk: " + ", ".join(f"{page} {s:.1f} s" for page, s in walk))
        print(
            "  server CPU by thread priority: "
            + ", ".join(
                f"nice {nice}: {ticks / TICKS:.1f} s" for nice, ticks in sorted(sampler.by_nice.items())
            )
        )
        print("one warm render of each page (twice), CPU seconds from the click until drawn + 1 s:")
        for page in WARM_PAGES * 2:
            before = browser_seconds(), process_seconds(pid)
            seconds = timed(driver, lambda p=page: open_page(driver, p), IMAGE if page == "Home" else PLOT)
            time.sleep(1.0)
            browser, server = browser_seconds() - before[0], process_seconds(pid) - before[1]
            print(f"  {page:11s} {seconds:5.2f} s  browser {browser:5.2f}  server {server:5.2f}")


if __name__ == "__main__":
    main()
