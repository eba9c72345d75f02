"""The analysis on Ray: Ray Data streams the images through an actor pool, one loaded detector
per worker; the rows come back to the job, which writes them as the local engine does.

`ray.init()` here joins the cluster `RAY_ADDRESS` names (or `ray start --head` started on this
machine), else starts a local one with this machine's CPUs. Workers read the images from the
paths the job planned, so a cluster needs the image folder at the same path on every node.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator

from sodviz.analysis.settings import AnalysisSettings


class _Analyzer:
    """A Ray Data actor: loads the detector once, then analyses each batch of image tasks."""

    def __init__(self, model_source: str, settings: AnalysisSettings, class_aware: bool) -> None:
        from sodviz.detector.loading import load_detector

        self.detector = load_detector(model_source)
        self.settings = settings
        self.class_aware = class_aware

    def __call__(self, batch: dict) -> dict:
        from sodviz.analysis.job import analyze_task

        tasks = [pickle.loads(blob) for blob in batch["task"]]
        rows = [analyze_task(self.detector, t, self.settings, class_aware=self.class_aware) for t in tasks]
        return {"rows": [pickle.dumps(r) for r in rows]}


def ray_results(plan, *, workers: int = 2, gpus_per_worker: float = 0.0) -> Iterator[dict]:
    """Each image's rows ({table: [row]}), streamed from Ray as workers finish them."""
    import ray
    import ray.data

    if not plan.todo:
        return
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    items = [{"task": pickle.dumps(task)} for task in plan.todo]
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), workers * 4)).map_batches(
        _Analyzer,
        fn_constructor_args=(plan.model_source, plan.settings, plan.class_aware),
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_size=1,
        num_cpus=1,
        num_gpus=gpus_per_worker or None,
    )
    for batch in dataset.iter_batches(batch_size=1, batch_format="numpy"):
        for blob in batch["rows"]:
            yield pickle.loads(blob)
