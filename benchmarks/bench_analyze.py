"""Benchmark the analysis job: throughput against `evaluate`, memory against the dataset's size,
and Ray against the local engine.

On generated scenes of the small-object benchmark (written to data/bench_analyze once) and the
embedded demo detector:
- throughput: `evaluate_detector` and `analyze` (local engine, full image only, a fresh store)
  on the same images, alternated A B A B; prints images/s of each and the ratio per pair
  (target: analyze >= 0.9x evaluate);
- memory: the peak resident memory of a fresh process analysing 50 and then 200 images
  (target: 200 within 10 % of 50);
- Ray: the same job on a local Ray (`ray.init(num_cpus=2)`) against the local engine, images/s
  of each, and whether the rows are identical.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_analyze.py [--images 50] [--pairs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sodviz.analysis.job import plan_job, run_job  # noqa: E402
from sodviz.analysis.queries import Analysis  # noqa: E402
from sodviz.analysis.settings import AnalysisSettings  # noqa: E402
from sodviz.detector.loading import load_detector  # noqa: E402
from sodviz.evaluation.coco import first_images  # noqa: E402
from sodviz.evaluation.dataset import evaluate_detector  # noqa: E402
from sodviz.synth.datasets import write_dataset  # noqa: E402

DATA = ROOT / "data" / "bench_analyze"
STORES = DATA / "stores"

MEMORY_SCRIPT = """
import resource, sys, tempfile
sys.path.insert(0, {root!r})
from sodviz.analysis.job import plan_job, run_job
from sodviz.analysis.settings import AnalysisSettings
from sodviz.detector.loading import load_detector
detector = load_detector("demo")
with tempfile.TemporaryDirectory() as store:
    settings = AnalysisSettings()
    plan = plan_job(detector, {annotations!r}, {images!r}, settings, store=store, model_source="demo")
    summary = run_job(plan, detector)
print(summary.analysed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def dataset(count: int) -> Path:
    """The first `count` scenes of the bench dataset (generated once, 1,000 px scenes)."""
    if (
        not (DATA / "test" / "annotations.json").is_file()
        or len(json.loads((DATA / "test" / "annotations.json").read_text())["images"]) < 200
    ):
        write_dataset(DATA, "test", 200)
    coco = json.loads((DATA / "test" / "annotations.json").read_text())
    subset = DATA / f"first_{count}.json"
    subset.write_text(json.dumps(first_images(coco, count)))
    return subset


def analyse(detector, annotations: Path, settings: AnalysisSettings, **options) -> tuple[float, Path, str]:
    """Images per second of a whole job (reading and hashing the images, then analysing) in a fresh
    store under data/bench_analyze/stores (emptied at each start)."""
    store = STORES / f"{time.time_ns()}"
    started = time.perf_counter()
    plan = plan_job(
        detector, annotations, DATA / "test" / "images", settings, store=store, model_source="demo"
    )
    summary = run_job(plan, detector, **options)
    return summary.analysed / (time.perf_counter() - started), store, plan.run.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    detector = load_detector("demo")
    shutil.rmtree(STORES, ignore_errors=True)
    annotations = dataset(args.images)
    settings = AnalysisSettings()
    print(f"{args.images} scenes of {DATA / 'test'}, demo detector, full image only")
    ratios = []
    for pair in range(args.pairs):
        started = time.perf_counter()
        evaluate_detector(
            detector, annotations, DATA / "test" / "images", score_threshold=settings.score_threshold
        )
        evaluate_rate = args.images / (time.perf_counter() - started)
        analyse_rate, store, run = analyse(detector, annotations, settings)
        started = time.perf_counter()
        Analysis(store, [run]).bucket_summary(run)  # AP by pycocotools, as `analyze` prints it
        with_ap = args.images / (args.images / analyse_rate + time.perf_counter() - started)
        ratios.append((analyse_rate / evaluate_rate, with_ap / evaluate_rate))
        print(f"pair {pair + 1}: evaluate {evaluate_rate:.2f} images/s (its AP included), analyze "
              f"{analyse_rate:.2f} images/s, {with_ap:.2f} with its AP from the store; ratios "
              f"{ratios[-1][0]:.3f}, {ratios[-1][1]:.3f}")  # fmt: skip
    middle = sorted(ratios)[len(ratios) // 2]
    print(f"throughput analyze / evaluate: median {middle[0]:.3f}, {middle[1]:.3f} with AP (target >= 0.9)")

    peaks = {}
    for count in (50, 200):
        script = MEMORY_SCRIPT.format(
            root=str(ROOT), annotations=str(dataset(count)), images=str(DATA / "test" / "images")
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        analysed, peak_kib = (int(v) for v in out.split()[-2:])
        peaks[count] = peak_kib / 1024
        print(f"memory: {analysed} images, peak resident {peaks[count]:.0f} MiB")
    print(f"memory 200 / 50 images: {peaks[200] / peaks[50]:.3f} (target <= 1.10)")

    if args.skip_ray:
        return
    import ray

    from tests.analysis.test_job import assert_same_rows, tables

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    local_rate, local_store, run = analyse(detector, annotations, settings)
    ray_rate, ray_store, _ = analyse(detector, annotations, settings, engine="ray", workers=2)
    try:
        assert_same_rows(tables(local_store, run), tables(ray_store, run))
        same = "identical rows"
    except AssertionError as error:
        same = f"rows differ: {str(error)[:200]}"
    print(f"ray (2 actors on 2 CPUs): {ray_rate:.2f} images/s; local engine {local_rate:.2f} images/s; "
          f"ratio {ray_rate / local_rate:.3f} (Ray's time includes starting its actors); {same}")  # fmt: skip


if __name__ == "__main__":
    main()
