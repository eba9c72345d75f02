"""The inference cache: hits skip the model, a memory budget, and many threads at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest

from sodviz.cache import InferenceCache, cached
from sodviz.detector.inference import run_inference


@dataclass(frozen=True)
class Blob:
    name: str
    nbytes: int


class CountingForward:
    """Wraps a model's forward and counts calls."""

    def __init__(self, forward):
        self.forward = forward
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.calls += 1
        return self.forward(*args, **kwargs)


@pytest.fixture
def counted(tiny_detectors, monkeypatch):
    detector = tiny_detectors["rt_detr"]
    counter = CountingForward(detector.model.forward)
    monkeypatch.setattr(detector.model, "forward", counter)  # nn.Module.__call__ -> instance forward
    return detector, counter


def test_second_call_with_the_same_key_does_not_run_the_model(counted, image):
    detector, counter = counted
    cache = InferenceCache()
    first = run_inference(detector, image, cache=cache)
    second = run_inference(detector, image.copy(), cache=cache)  # same pixels, another array
    assert counter.calls == 1 and second is first
    run_inference(detector, image, input_size=64, cache=cache)  # another input size: a new key
    run_inference(detector, image[:, ::-1].copy(), cache=cache)  # another image: a new key
    assert counter.calls == 3
    assert (cache.hits, cache.misses) == (1, 3)
    run_inference(detector, image, cache=None)  # no cache: always runs
    assert counter.calls == 4


def test_many_threads_share_one_computation(counted, image):
    detector, counter = counted
    cache = InferenceCache()
    images = [image, np.ascontiguousarray(image[::-1])]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: run_inference(detector, images[i % 2], cache=cache), range(32)))
    assert counter.calls == 2
    assert all(result is results[i % 2] for i, result in enumerate(results))
    reference = run_inference(detector, images[1], cache=None)
    np.testing.assert_allclose(results[1].boxes_xyxy, reference.boxes_xyxy, atol=1e-5)


def test_lru_eviction_under_a_memory_budget():
    cache = InferenceCache(max_bytes=250)
    for name in "abc":
        cache.get_or_compute(name, lambda name=name: Blob(name, 100))
    assert "a" not in cache and "b" in cache and "c" in cache and cache.used_bytes == 200
    cache.get_or_compute("b", lambda: Blob("never", 100))  # touch b: c becomes the oldest
    cache.get_or_compute("d", lambda: Blob("d", 100))
    assert "c" not in cache and "b" in cache and "d" in cache
    too_big = cache.get_or_compute("huge", lambda: Blob("huge", 1000))  # returned, not kept
    assert too_big.name == "huge" and "huge" not in cache and len(cache) == 2


@pytest.mark.parametrize(
    ("asked", "dropped", "left"),
    [
        (0, 0, "abc"),  # nothing asked: nothing dropped
        (1, 100, "bc"),  # one byte: the whole oldest entry
        (150, 200, "c"),  # more than one entry: the two oldest
        (10**6, 300, ""),  # more than it holds: everything
    ],
)  # fmt: skip
def test_evict_drops_the_least_recently_used_first(asked, dropped, left):
    cache = InferenceCache(max_bytes=1000)
    for name in "cab":
        cache.get_or_compute(name, lambda name=name: Blob(name, 100))
    cache.get_or_compute("c", lambda: Blob("never", 100))  # touched: a is now the oldest, then b
    assert cache.evict(asked) == dropped
    assert "".join(sorted(name for name in "abc" if name in cache)) == left
    assert cache.used_bytes == 100 * len(left)


def test_evict_on_an_empty_cache_and_beside_a_computation_in_flight():
    cache = InferenceCache(max_bytes=1000)
    assert cache.evict(100) == 0 and cache.used_bytes == 0  # the empty case
    cache.get_or_compute("old", lambda: Blob("old", 100))
    started, finish = threading.Event(), threading.Event()

    def slow() -> Blob:
        started.set()
        finish.wait(10)
        return Blob("new", 300)

    with ThreadPoolExecutor(1) as pool:
        computing = pool.submit(cache.get_or_compute, "new", slow)
        assert started.wait(10)
        assert cache.evict(10**6) == 100  # what is stored; the computation is not a stored entry
        finish.set()
        assert computing.result(timeout=10).name == "new"
    assert "new" in cache and "old" not in cache and cache.used_bytes == 300  # kept when it lands


def test_empty_budget_keeps_nothing():
    cache = InferenceCache(max_bytes=0)
    calls = []
    for _ in range(3):
        cache.get_or_compute("k", lambda: calls.append(1) or Blob("k", 1))
    assert len(calls) == 3 and len(cache) == 0


def test_a_failing_computation_is_not_cached_and_waiters_see_the_error():
    cache = InferenceCache()
    started = threading.Event()

    def fail():
        started.set()
        time.sleep(0.2)
        raise RuntimeError("model exploded")

    with ThreadPoolExecutor(max_workers=2) as pool:
        owner = pool.submit(cache.get_or_compute, "k", fail)
        started.wait()
        waiter = pool.submit(cache.get_or_compute, "k", lambda: Blob("other", 1))
        for future in (owner, waiter):
            with pytest.raises(RuntimeError, match="exploded"):
                future.result()
    assert "k" not in cache
    assert cache.get_or_compute("k", lambda: Blob("retry", 1)).name == "retry"


def test_negative_budget_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        InferenceCache(max_bytes=-1)


def test_cached_computes_once_with_a_cache_and_every_time_without():
    keys, computed = [], []

    def key():
        keys.append(1)
        return ("k",)

    def compute():
        computed.append(1)
        return Blob("value", 8)

    cache = InferenceCache()
    assert cached(cache, key, compute) is cached(cache, key, compute)
    assert len(computed) == 1 and len(keys) == 2
    cached(None, key, compute)
    cached(None, key, compute)
    assert len(computed) == 3 and len(keys) == 2  # no cache: computed each time, no key built


def test_content_key_covers_every_part_it_is_given():
    import supervision as sv

    from sodviz.cache import content_key
    from sodviz.crops.vicrop import ViCropConfig

    def detections(data=0):
        return sv.Detections(xyxy=np.zeros((2, 4), np.float32), confidence=np.ones(2, np.float32),
                             class_id=np.zeros(2, int), data={"crop_index": np.array([0, data])})  # fmt: skip

    base = content_key(detections(), ViCropConfig(), np.arange(4), 0.3, ("a",), None)
    assert content_key(detections(), ViCropConfig(), np.arange(4), 0.3, ("a",), None) == base
    for changed in (
        (detections(1), ViCropConfig(), np.arange(4), 0.3, ("a",), None),  # a data column
        (detections(), ViCropConfig(k=2), np.arange(4), 0.3, ("a",), None),  # a dataclass field
        (detections(), ViCropConfig(), np.arange(4).reshape(2, 2), 0.3, ("a",), None),  # a shape
        (detections(), ViCropConfig(), np.arange(4.0), 0.3, ("a",), None),  # a dtype
        (detections(), ViCropConfig(), np.arange(4), 0.31, ("a",), None),
        (detections(), ViCropConfig(), np.arange(4), 0.3, ("b",), None),
        (detections(), ViCropConfig(), np.arange(4), 0.3, ("a",), np.array(["x"])),
    ):
        assert content_key(*changed) != base
