"""What Streamlit's collection after every script run costs, with and without the app's freeze.

Streamlit calls `gc.collect(2)` after each script run (`runner.postScriptGC`, on by default). The
app freezes what it has imported when its first page imports `pages/_loaders.py`
(`freeze_imported_objects`). This script imports the modules the pages import, in the app's
order, loads the embedded demo detector and runs one forward pass, then times `--repeat`
full collections as the app now has them, and as they were before the freeze (`gc.unfreeze`).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_gc.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def collections_ms(repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        gc.collect(2)
        times.append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # st.cache_* outside a running app
        from pages import (
            _loaders,  # the app's first import: freezes what is imported so far
            _shared,  # noqa: F401 (what every page imports next)
        )
        from sodviz.detector.inference import run_inference
        from sodviz.detector.loading import load_detector
        from sodviz.samples import load_sample, sample_names

        detector = load_detector("demo")
        image, _ = load_sample(sample_names()[0])
        run_inference(detector, image.image, cache=None)
    frozen = _loaders.FROZEN_OBJECTS
    tracked = len(gc.get_objects())
    now = collections_ms(args.repeat)
    gc.unfreeze()
    before = collections_ms(args.repeat)
    print(f"objects frozen at the app's first import: {frozen:,}; tracked after it: {tracked:,}")
    print(
        f"gc.collect(2), median of {args.repeat}: {statistics.median(now):.1f} ms with the freeze, "
        f"{statistics.median(before):.1f} ms without ({len(gc.get_objects()):,} objects walked)"
    )


if __name__ == "__main__":
    main()
