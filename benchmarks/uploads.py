"""Uploads let go: N browser sessions each upload a large image and hold it, then close; the
server's RSS before, while they hold, at its peak and after. Run through
`benchmarks/bench_load.py --uploads N`."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import numpy as np
from browser import IMAGE, PageError, chromium, text_of, wait_for_page
from served import ROOT, caches, rss_mib, server_runs, traced_server


def upload_release(
    n: int,
    settle: float,
    deadline: float,
    side: tuple[int, int] = (3000, 4000),
    serve_args: tuple[str, ...] = (),
) -> dict:
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

    with traced_server("uploads", serve_args) as (url, pid, trace, log, timings):
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
