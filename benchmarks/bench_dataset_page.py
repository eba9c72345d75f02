"""Benchmark the Dataset page's library work after a filter or sort change, on a store of at
least 100,000 objects.

The store is made once by the real job (`analyze`, the demo detector, full image only) over
generated scenes in data/bench_page (about 110 objects each). Then it replays random changes of
the page's filters and sort (size, error type, sort column, order) and times what the page runs
after each, its cached parts being cache hits: the store check (`refresh`), the images table
query, the missed-object query and the gallery's 12 patches (their forward passes cached, as in
the app), and the per-bucket figure from the cached summary. Prints p50 / p95 / max in ms
(target: p95 <= 300 ms), and once each the parts the page caches per stored state (AP by
pycocotools, the entropy rows and figure, the comparison).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_dataset_page.py [--objects 100000] [--changes 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sodviz.analysis.errors import MISS_TYPES  # noqa: E402
from sodviz.analysis.job import plan_job, run_job  # noqa: E402
from sodviz.analysis.queries import BUCKETS, IMAGE_SORTS, Analysis  # noqa: E402
from sodviz.analysis.settings import AnalysisSettings  # noqa: E402
from sodviz.cache import DEFAULT_CACHE  # noqa: E402
from sodviz.detector.inference import run_inference  # noqa: E402
from sodviz.detector.loading import load_detector  # noqa: E402
from sodviz.imageio import read_image  # noqa: E402
from sodviz.synth.datasets import write_dataset  # noqa: E402
from sodviz.views.dataset import entropy_distributions, error_figure, object_patch  # noqa: E402

DATA = ROOT / "data" / "bench_page"
STORE = DATA / "store"


def store_with(objects: int, detector) -> tuple[Analysis, str]:
    """A store of the job's rows over enough generated scenes for `objects` objects."""
    annotations = DATA / "test" / "annotations.json"
    scenes = max(1, objects // 100)
    while True:
        if not annotations.is_file() or len(json.loads(annotations.read_text())["annotations"]) < objects:
            write_dataset(DATA, "test", scenes, workers=2)
        if len(json.loads(annotations.read_text())["annotations"]) >= objects:
            break
        scenes = int(scenes * 1.15) + 1
    plan = plan_job(
        detector, annotations, DATA / "test" / "images", AnalysisSettings(), store=STORE, model_source="demo"
    )
    if plan.todo:
        print(f"analysing {len(plan.todo)} scenes into {STORE} (once) ...", flush=True)
        run_job(plan, detector, batch_images=32)
    return Analysis(STORE, [plan.run.run]), plan.run.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    detector = load_detector("demo")
    analysis, run = store_with(args.objects, detector)
    count = analysis.frame("SELECT count(*) AS n FROM objects")["n"][0]
    images = analysis.frame("SELECT count(*) AS n FROM images")["n"][0]
    batches = len(analysis.frame("SELECT DISTINCT batch FROM images"))
    print(f"store: {count} objects, {images} images, {batches} batches")
    once = {}
    started = time.perf_counter()
    summary = analysis.bucket_summary(run)
    once["summary with AP (pycocotools)"] = time.perf_counter() - started
    started = time.perf_counter()
    entropy_distributions(analysis.entropy_rows(run))
    once["entropy rows and figure"] = time.perf_counter() - started
    started = time.perf_counter()
    analysis.compare((run, "base"), (run, "base"))
    once["comparison"] = time.perf_counter() - started
    for name, seconds in once.items():
        print(f"cached per stored state: {name} {1000 * seconds:.0f} ms")
    rng = np.random.default_rng(0)
    decoded: dict[str, np.ndarray] = {}
    times, passes = [], []
    for _ in range(args.changes):
        bucket = [None, *BUCKETS][rng.integers(len(BUCKETS) + 1)]
        error = [None, *MISS_TYPES][rng.integers(len(MISS_TYPES) + 1)]
        sort = IMAGE_SORTS[rng.integers(len(IMAGE_SORTS))]
        forward = 0.0
        started = time.perf_counter()
        analysis.refresh()
        analysis.image_table(run, bucket=bucket, error=error, sort=sort, descending=bool(rng.integers(2)))
        missed = analysis.missed_objects(run, bucket=bucket, error=error, limit=12)
        error_figure(summary)
        for row in missed.itertuples():
            path = str(DATA / "test" / "images" / row.file_name)
            before = time.perf_counter()
            if path not in decoded:  # decoding and the forward pass are cached in the app
                decoded[path] = read_image(path).image
            hits = DEFAULT_CACHE.hits
            result = run_inference(detector, decoded[path])
            if DEFAULT_CACHE.hits == hits:  # a pass the app's cache did not hold yet
                passes.append(time.perf_counter() - before)
                forward += time.perf_counter() - before
            box = [row.x0, row.y0, row.x1, row.y1]
            object_patch(decoded[path], box, result=result, query=int(row.nearest_query))
        times.append(1000 * (time.perf_counter() - started - forward))
    p50, p95 = np.percentile(times, [50, 95])
    print(f"filter / sort change, queries + figures + patches ({args.changes} changes): p50 {p50:.0f} ms, "
          f"p95 {p95:.0f} ms, max {max(times):.0f} ms (target p95 <= 300 ms)")  # fmt: skip
    print(f"gallery images not yet in the inference cache: {len(passes)} forward passes, "
          f"{1000 * float(np.mean(passes or [0])):.0f} ms each, left out of the figures above")  # fmt: skip


if __name__ == "__main__":
    main()
