"""One session through every page, cold, in one process: how much each page's work raises the RSS.

Streamlit's AppTest runs the app (embedded demo detector, first sample scene) page after page,
each once, every result computed for the first time; a thread samples the process's RSS every
20 ms. Prints, per page, its seconds, the RSS before it, the highest RSS while it ran and the rise
(its working memory plus what it leaves cached), then the whole walk's seconds and peak. The
memory budget's reserve for one pass (`sodviz.serving.memory.PASS_RESERVE_MB`) is sized from the largest
rise. glibc's settings come from the environment, so one walk can be set against another:

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_memory.py
    HF_HUB_OFFLINE=1 MALLOC_ARENA_MAX=2 .venv/bin/python benchmarks/bench_memory.py
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from sodviz.serving.memory import resident_bytes  # noqa: E402

PAGES = ("detections", "attention", "vicrop", "erf", "fusion_maps", "candidates", "explain", "home")


def main() -> None:
    samples, stop = [], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), (resident_bytes() or 0) / 2**20))
            stop.wait(0.02)

    threading.Thread(target=sample, daemon=True).start()
    started = time.monotonic()
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()  # Home: imports, model load
    loaded = (resident_bytes() or 0) / 2**20
    print(f"Home, first run (imports, model load): {time.monotonic() - started:.1f} s, RSS {loaded:.0f} MiB")
    print(f"{'page':<12} {'s':>6} {'RSS before':>11} {'peak':>7} {'rise MiB':>9}")
    walk = time.monotonic()
    for page in PAGES:
        before, begun = (resident_bytes() or 0) / 2**20, time.monotonic()
        app.switch_page(f"pages/{page}.py").run()
        if app.exception:
            raise SystemExit(f"{page}: {app.exception[0].value}")
        ended = time.monotonic()
        peak = max((v for t, v in samples if begun <= t <= ended), default=before)
        print(f"{page:<12} {ended - begun:6.1f} {before:11.0f} {peak:7.0f} {peak - before:9.0f}")
    stop.set()
    print(f"every page: {time.monotonic() - walk:.1f} s; peak RSS {max(v for _, v in samples):.0f} MiB")


if __name__ == "__main__":
    main()
