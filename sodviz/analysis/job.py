"""The analysis job: plan what a store lacks, compute it image by image (here or on Ray), write
each finished batch, report progress, stop on request. Memory holds one batch, never the dataset."""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from sodviz.analysis.records import analyze_image
from sodviz.analysis.settings import AnalysisSettings
from sodviz.analysis.store import RunStore, image_key, run_id
from sodviz.detector.loading import Detector
from sodviz.detector.preprocess import resolve_input_size
from sodviz.evaluation.coco import class_aware, load_coco
from sodviz.imageio import decode_image
from sodviz.notices import name_some

BATCH_IMAGES = 16


@dataclass(frozen=True)
class JobPlan:
    """What one run of the analysis will do.

    Attributes:
        run: the run's store (`RunStore`); tasks: every image of the dataset (see `analyze_image`,
            plus `path`); todo: the tasks no finished batch holds; class_aware: see `analyze_image`.
    """

    run: RunStore
    tasks: tuple[dict, ...]
    todo: tuple[dict, ...]
    class_aware: bool
    settings: AnalysisSettings
    model_source: str


@dataclass
class JobSummary:
    """What a job did: images analysed now, found already stored, skipped (file: reason)."""

    analysed: int = 0
    reused: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False
    seconds: float = 0.0

    def text(self) -> str:
        parts = [f"{self.analysed} images analysed", f"{self.reused} already stored"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped ({name_some(sorted(self.skipped))})")
        return ", ".join(parts) + (" (cancelled: rerun to finish)" if self.cancelled else "") + "."


def plan_job(
    detector: Detector, annotations: str | Path, images: str | Path, settings: AnalysisSettings,
    *, store: str | Path, model_source: str,
) -> JobPlan:  # fmt: skip
    """Read and check the dataset (the COCO validator), key every image, and see what is stored.

    Raises:
        FileNotFoundError / ValueError: no annotations, not usable COCO, or no image folder.
    """
    images = Path(images).resolve()  # absolute: Ray workers read the same paths
    if not images.is_dir():
        raise FileNotFoundError(f"no image folder at {images}")
    coco = load_coco(annotations)
    settings = resolved(detector, settings)
    names = {c["id"]: str(c.get("name", c["id"])) for c in coco["categories"]}
    used = sorted({names[a["category_id"]] for a in coco["annotations"] if a.get("iscrowd", 0) != 1})
    aware = class_aware(used, detector.class_names)
    by_image: dict = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    tasks = []
    for record in coco["images"]:
        entries = [
            {"annotation_id": int(a["id"]), "category": names[a["category_id"]],
             "crowd": a.get("iscrowd", 0) == 1,
             "label": detector.class_names.index(names[a["category_id"]]) if aware else 0,
             "bbox": [float(v) for v in a["bbox"]]}
            for a in by_image.get(record["id"], [])
        ]  # fmt: skip
        # crowd regions are neither objects nor misses, and detections on them are ignored (pycocotools)
        objects = [{k: v for k, v in e.items() if k != "crowd"} for e in entries if not e["crowd"]]
        crowds = [{k: e[k] for k in ("category", "bbox", "label")} for e in entries if e["crowd"]]
        path = images / record["file_name"]
        try:
            data = path.read_bytes()
        except OSError:  # missing or unreadable: listed as skipped when its turn comes
            data = b""
        key = image_key(data, [record["file_name"], objects, crowds])
        tasks.append({"image_key": key, "image_id": str(record["id"]), "file_name": record["file_name"],
                      "path": str(path), "objects": objects, "crowds": crowds})  # fmt: skip
    run = RunStore(store, planned_run(detector, annotations, settings))
    meta = {
        "model": _source(model_source), "model_hash": detector.content_hash,
        "class_names": list(detector.class_names), "annotations": str(Path(annotations).resolve()),
        "images": str(images), "settings": settings.as_dict(), "class_aware": aware,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    run.create(meta, [(t["image_key"], t["file_name"]) for t in tasks])
    done = run.done_keys()
    todo = tuple(t for t in tasks if t["image_key"] not in done)
    return JobPlan(run, tuple(tasks), todo, aware, settings, meta["model"])


def resolved(detector: Detector, settings: AnalysisSettings) -> AnalysisSettings:
    """The settings with the input size made explicit (None and the model's default are one run)."""
    return replace(settings, input_size=resolve_input_size(detector, settings.input_size))


def planned_run(detector: Detector, annotations: str | Path, settings: AnalysisSettings) -> str:
    """The run id `plan_job` will use, known before any image is read."""
    return run_id(
        detector.content_hash, resolved(detector, settings).digest(), str(Path(annotations).resolve())
    )


def _source(model_source: str) -> str:
    """A model folder as an absolute path (Ray workers and other working folders load it too)."""
    return str(Path(model_source).resolve()) if Path(model_source).is_dir() else model_source


def analyze_task(detector: Detector, task: dict, settings: AnalysisSettings, *, class_aware: bool) -> dict:
    """One image's rows, {table: [row]}; a missing or unreadable file gives one `skipped` row."""
    try:
        with open(task["path"], "rb") as file:
            data = file.read()
        image = decode_image(data, name=task["file_name"], max_side=None).image
    except (OSError, ValueError) as error:
        reason = "missing" if not os.path.isfile(task["path"]) else f"unreadable ({error})"
        return {
            "skipped": [{"image_key": task["image_key"], "file_name": task["file_name"], "reason": reason}]
        }
    rows = analyze_image(detector, image, task, settings, class_aware=class_aware)
    return {table.name: getattr(rows, table.name) for table in fields(rows)}


def run_job(
    plan: JobPlan,
    detector: Detector | None = None,
    *,
    engine: str = "local",
    workers: int = 2,
    gpus_per_worker: float = 0.0,
    batch_images: int = BATCH_IMAGES,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> JobSummary:
    """Compute what the store lacks and write it a batch at a time.

    Args:
        detector: the loaded model (local engine); Ray workers load `plan.model_source` themselves.
        engine: "local" (this process, one image at a time) or "ray" (`sodviz.analysis.ray_engine`).
        on_progress: called with (images done, images in the dataset) after each batch.
        cancel: set it to stop after the batch in flight (what is written stays written).
    """
    started = time.perf_counter()
    summary = JobSummary(reused=len(plan.tasks) - len(plan.todo))
    if engine == "local":
        if detector is None:
            raise ValueError("the local engine needs the loaded detector")
        results = (
            analyze_task(detector, task, plan.settings, class_aware=plan.class_aware) for task in plan.todo
        )
    elif engine == "ray":
        from sodviz.analysis.ray_engine import ray_results

        results = ray_results(plan, workers=workers, gpus_per_worker=gpus_per_worker)
    else:
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    done = summary.reused
    for batch in _batches(results, batch_images, cancel):
        plan.run.write_batch(_concat(batch))
        for rows in batch:
            for row in rows.get("skipped", []):
                summary.skipped[row["file_name"]] = row["reason"]
        summary.analysed += sum(1 for rows in batch if "images" in rows)
        done += len(batch)
        if on_progress is not None:
            on_progress(done, len(plan.tasks))
    summary.cancelled = done < len(plan.tasks)
    _close(results)
    summary.seconds = time.perf_counter() - started
    return summary


def _batches(results: Iterable[dict], size: int, cancel: threading.Event | None) -> Iterator[list[dict]]:
    """Images' rows in batches of `size`; once `cancel` is set, no new image is started and the
    images done so far make the last batch."""
    batch, iterator = [], iter(results)
    while not (cancel is not None and cancel.is_set()):
        rows = next(iterator, None)
        if rows is None:
            break
        batch.append(rows)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _concat(batch: list[dict]) -> dict[str, list[dict]]:
    tables: dict[str, list[dict]] = {}
    for rows in batch:
        for table, values in rows.items():
            tables.setdefault(table, []).extend(values)
    return tables


def _close(results) -> None:
    close = getattr(results, "close", None)
    if close is not None:
        close()


class BackgroundJob:
    """Planning and `run_job` in a thread, for the app: `phase` ("planning", "analysing",
    "done"), `progress`, `cancel()`, then `summary` or `error` (a sentence)."""

    def __init__(self, make_plan: Callable[[], JobPlan], detector: Detector, **options) -> None:
        self.plan: JobPlan | None = None
        self.phase = "planning"
        self.progress = (0, 0)
        self.summary: JobSummary | None = None
        self.error: str | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make_plan, detector, options), daemon=True)
        self._thread.start()

    def _run(self, make_plan: Callable[[], JobPlan], detector: Detector, options: dict) -> None:
        def on_progress(done: int, total: int) -> None:
            self.progress = (done, total)

        try:
            self.plan = make_plan()  # reads and hashes every image: this thread, not the page's
            self.progress = (len(self.plan.tasks) - len(self.plan.todo), len(self.plan.tasks))
            self.phase = "analysing"
            self.summary = run_job(
                self.plan, detector, on_progress=on_progress, cancel=self._cancel, **options
            )
        except (OSError, ValueError) as error:  # the dataset's fault: said as it is
            self.error = str(error)
        except Exception as error:  # anything else: named; what was written stays
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.phase = "done"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def cancel(self) -> None:
        """Stop before the next image (what is written stays)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
