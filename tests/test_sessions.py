"""Several sessions on one detector: a result already cached never waits for another session's
forward pass (which holds the detector's lock for as long as it runs)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sodviz.cache import InferenceCache
from sodviz.crops.vicrop import ViCropConfig, run_vicrop
from sodviz.detector.inference import run_inference
from sodviz.explain.methods import explain
from sodviz.explain.targets import detection_target


@pytest.mark.parametrize("model_type", ["rt_detr", "detr"])
def test_cached_results_are_served_while_another_session_holds_the_detector(
    tiny_detectors, image, model_type
):
    detector = tiny_detectors[model_type]
    cache = InferenceCache(max_bytes=1 << 28)
    result = run_inference(detector, image, cache=cache)
    config = ViCropConfig(k=2)
    crops = run_vicrop(detector, image, config=config, cache=cache)
    target = detection_target(result, 0)
    odam = explain(detector, image, result, target, "odam", cache=cache)
    busy, release = threading.Event(), threading.Event()

    def another_sessions_forward_pass() -> None:
        with detector.lock:
            busy.set()
            release.wait(30)

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(another_sessions_forward_pass)
        assert busy.wait(10)
        try:
            served = pool.submit(
                lambda: (
                    run_inference(detector, image, cache=cache),
                    run_vicrop(detector, image, config=config, cache=cache),
                    explain(detector, image, result, target, "odam", cache=cache),
                )
            )
            again, crops_again, odam_again = served.result(timeout=10)  # would hang behind the lock
        finally:
            release.set()
        holder.result(timeout=10)
    assert again is result and odam_again is odam  # the cached objects themselves
    np.testing.assert_array_equal(crops_again.fused.xyxy, crops.fused.xyxy)  # re-fused from cached crops


def test_the_app_imports_pandas_whole_before_any_session_draws():
    """Sessions run in threads; plotly reads pandas from sys.modules when it is there, so a
    lazy import in one session showed another a half-imported module (seen with 4 sessions)."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, pages._shared; print('pandas' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    found = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert found.stdout.strip().splitlines()[-1] == "True", found.stdout + found.stderr
