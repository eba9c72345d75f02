"""Page speed in the real browser: each page's first render and a slider rerun, in seconds.

Starts the app (`python -m sodviz serve`, a cold process) and headless Chromium, then for a
sample scene and, when ../shared/data has one, a real photograph (uploaded): opens Home, then
Detections (which pays the model's first pass on the image), then every other page, timing from
the click until the script is idle with its figure drawn; then on each page presses the right
arrow on its first slider and times the rerun. The target is every page within 3 s once the
model has passed over the image. Timings on a shared CPU are noisy: compare rows of one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_browser.py [--pages Attention,ViCrop] [--no-photo]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import (  # noqa: E402
    IMAGE,
    PLOT,
    choose_upload,
    chromium,
    nudge_first_slider,
    open_page,
    send_file,
    streamlit_server,
    timed,
    wait_for_page,
    wait_until_running,
)

PAGES = ("Detections", "Attention", "ViCrop", "ERF", "Fusion maps", "Candidates")
SHARED = ROOT.parent / "shared" / "data"
TARGET = 3.0


def one_image(driver, url: str, photo: Path | None, pages) -> list[tuple[str, float, float | None]]:
    rows = []
    home = timed(driver, lambda: driver.get(url), IMAGE)
    if photo is not None:  # the upload's rerun (decode and Home), from the file's arrival
        choose_upload(driver)
        home = timed(driver, lambda: send_file(driver, photo), IMAGE)
    rows.append(("Home", home, None))
    for title in pages:
        first = timed(driver, lambda t=title: open_page(driver, t), PLOT)
        rerun = None
        if nudge_first_slider(driver):  # a rerun needs the key press to land: wait for it
            started = time.perf_counter()
            if wait_until_running(driver, timeout=3):
                wait_for_page(driver, PLOT, timeout=300)
                rerun = time.perf_counter() - started
        rows.append((title, first, rerun))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", default=",".join(PAGES), help="comma-separated page titles, in order")
    parser.add_argument("--no-photo", action="store_true", help="only the sample scene")
    args = parser.parse_args()
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    if pages[0] != "Detections":
        pages.insert(0, "Detections")  # it pays the first pass; the others are timed after it
    photos = sorted(SHARED.glob("visdrone*/images/*")) + sorted(SHARED.glob("*/images/*"))
    images = [("sample scene", None)] + ([] if args.no_photo or not photos else [(photos[0].name, photos[0])])
    log = ROOT / "artifacts" / "bench_browser_streamlit.log"
    print(f"{'image':<24} {'page':<12} {'first render s':>14} {'slider rerun s':>14}")
    worst = 0.0
    with streamlit_server(log) as url, chromium() as driver:
        for name, photo in images:
            for page, first, rerun in one_image(driver, url, photo, pages):
                rerun_text = "-" if rerun is None else f"{rerun:.2f}"
                print(f"{name[:24]:<24} {page:<12} {first:>14.2f} {rerun_text:>14}", flush=True)
                if page not in ("Home", "Detections"):
                    worst = max(worst, first, rerun or 0.0)
    verdict = "within" if worst <= TARGET else "OVER"
    print(f"slowest page after the first pass: {worst:.2f} s ({verdict} the {TARGET:.0f} s target)")


if __name__ == "__main__":
    main()
