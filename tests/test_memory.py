"""The server's memory: freed pages handed back, and the budget its caches give way to."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import sodviz.serving.memory as memory
from sodviz.cache import InferenceCache
from sodviz.serving.memory import (
    MemoryBudget,
    checked_memory_mb,
    memory_mb,
    resident_bytes,
    return_freed_memory,
)

MiB = 1 << 20


def _filled(*sizes_mib: int) -> InferenceCache:
    """A cache holding one entry per size, named 0, 1, ... oldest first."""
    cache = InferenceCache(max_bytes=1 << 40)
    for name, size in enumerate(sizes_mib):
        cache.get_or_compute(name, lambda size=size: np.zeros(size * MiB, np.uint8))
    return cache


def _budget(limit_mib: int, views: InferenceCache, results: InferenceCache, *, base_mib: int) -> MemoryBudget:
    """A budget over a process whose resident size is `base_mib` plus what the two caches hold."""
    return MemoryBudget(
        limit_mib * MiB,
        (views, results),
        reserve_bytes=100 * MiB,
        resident=lambda: base_mib * MiB + views.used_bytes + results.used_bytes,
    )


@pytest.mark.parametrize(
    ("base_mib", "views_left", "results_left", "dropped_mib", "starved"),
    [
        (500, [0, 1, 2], [0, 1], 0, False),  # 500 + 60 + 70 = 630 <= 1000 - 100: nothing dropped
        (800, [2], [0, 1], 40, False),  # 930, 30 over: the two oldest views go (10 + 30)
        (850, [], [1], 100, False),  # 980, 80 over: every view (60), then the oldest result (40)
        (1000, [], [], 130, True),  # 1130: everything, and still over: starved
        (770, [0, 1, 2], [0, 1], 0, False),  # 900, exactly at limit - reserve: nothing dropped
    ],
)  # fmt: skip
def test_the_budget_drops_the_oldest_views_first_then_results_until_it_fits(
    base_mib, views_left, results_left, dropped_mib, starved
):
    views, results = _filled(10, 30, 20), _filled(40, 30)
    budget = _budget(1000, views, results, base_mib=base_mib)
    assert budget.fit() == dropped_mib * MiB
    assert [k for k in range(3) if k in views] == views_left
    assert [k for k in range(2) if k in results] == results_left
    assert budget.evicted_bytes == dropped_mib * MiB and budget.starved is starved


def test_dropped_results_that_free_nothing_are_not_taken_for_room():
    """A result some session still holds frees no memory when dropped: the size is read again, and
    the budget goes on until the caches are empty and says it is starved."""
    views, results = _filled(10, 30), _filled(40)
    budget = MemoryBudget(1000 * MiB, (views, results), reserve_bytes=100 * MiB, resident=lambda: 950 * MiB)
    assert budget.fit() == 80 * MiB and not len(views) and not len(results) and budget.starved


def test_over_with_empty_caches_is_starved_without_dropping_or_trimming(monkeypatch):
    trims = []
    monkeypatch.setattr(memory, "return_freed_memory", lambda: trims.append(1) or True)
    budget = MemoryBudget(1000 * MiB, (InferenceCache(), InferenceCache()), resident=lambda: 2000 * MiB)
    assert budget.fit() == 0 and budget.starved and trims == []  # before every pass: no trim to pay


def test_a_fit_never_waits_for_another_and_fit_idle_never_counts_a_running_pass():
    views, results = _filled(10), _filled(10)
    gate = threading.RLock()
    budget = MemoryBudget(
        1000 * MiB, (views, results), gate=gate, reserve_bytes=100 * MiB, resident=lambda: 2000 * MiB
    )
    held, done = threading.Event(), threading.Event()

    def hold(lock) -> None:
        with lock:
            held.set()
            done.wait(10)

    for lock, fit in ((budget._fitting, budget.fit), (gate, budget.fit_idle)):  # another fit; a pass
        held.clear()
        done.clear()
        thread = threading.Thread(target=hold, args=(lock,))
        thread.start()
        assert held.wait(10)
        assert fit() == 0 and len(views) == len(results) == 1  # returned at once, nothing dropped
        done.set()
        thread.join()
    assert budget.fit_idle() == 20 * MiB and budget.starved  # the gate free: it fits


def test_a_starved_budget_says_so_until_it_fits_again():
    views, results = _filled(10), _filled(10)
    base = {"mib": 2000}
    budget = MemoryBudget(
        1000 * MiB, (views, results), reserve_bytes=100 * MiB,
        resident=lambda: base["mib"] * MiB + views.used_bytes + results.used_bytes,
    )  # fmt: skip
    budget.fit()
    assert (
        budget.starved
        and "--memory-mb" in budget.starved_sentence()
        and "1000 MiB" in budget.starved_sentence()
    )
    base["mib"] = 500  # sessions closed
    assert budget.fit() == 0 and not budget.starved


def test_no_budget_drops_nothing_and_a_budget_needs_room_beside_one_pass():
    views, results = _filled(10), _filled(10)
    budget = MemoryBudget(None, (views, results), resident=lambda: 1 << 40)
    assert budget.fit() == 0 and len(views) == len(results) == 1
    with pytest.raises(ValueError, match="leaves nothing beside one pass"):
        MemoryBudget(512 * MiB, (views,))


def test_the_budget_from_the_environment():
    assert memory_mb({}) is None and memory_mb({"SODVIZ_MEMORY_MB": "0"}) is None
    assert memory_mb({"SODVIZ_MEMORY_MB": "2048"}) == 2048
    assert MemoryBudget.from_env((), {"SODVIZ_MEMORY_MB": "2048"}).limit_bytes == 2048 * MiB
    with pytest.raises(ValueError, match="SODVIZ_MEMORY_MB"):
        memory_mb({"SODVIZ_MEMORY_MB": "2 GB"})
    with pytest.raises(ValueError, match="above 512 MiB"):
        memory_mb({"SODVIZ_MEMORY_MB": "512"})
    assert checked_memory_mb(0) == 0 and checked_memory_mb(513) == 513
    with pytest.raises(ValueError, match="above 512 MiB"):
        checked_memory_mb(-1)


def test_memory_is_returned_and_fitted_after_a_run_that_computed_and_only_then(monkeypatch):
    trims, fits, cache = [], [], InferenceCache()
    budget = MemoryBudget(None, (cache,))
    monkeypatch.setattr(memory, "return_freed_memory", lambda: trims.append(1) or True)
    monkeypatch.setattr(budget, "fit_idle", lambda: fits.append(1) or 0)
    with budget.after_run():
        cache.get_or_compute("pass", lambda: np.zeros(4))
    assert trims == fits == [1]
    with budget.after_run():  # the same result, read from the cache
        cache.get_or_compute("pass", lambda: np.zeros(4))
    assert trims == fits == [1]
    with pytest.raises(RuntimeError), budget.after_run():  # a stopped run too
        cache.get_or_compute("another", lambda: np.zeros(4))
        raise RuntimeError
    assert trims == fits == [1, 1]


def _needs_proc_and_glibc() -> None:
    if resident_bytes() is None or not Path("/proc/self/status").exists() or not return_freed_memory():
        pytest.skip("no /proc or no glibc malloc_trim here")


_FREED = """
from sodviz.serving.memory import resident_bytes, return_freed_memory

big, small = 60_000, 1_000  # both from malloc (under its mmap threshold, over Python's own)
chunks = [(bytes([i % 251]) * big, bytes([i % 251]) * small) for i in range(3_000)]
kept = [small for _, small in chunks]  # small live objects among the freed: free() trims nothing
before = resident_bytes()
del chunks
held = resident_bytes()
trimmed = return_freed_memory()
print(before, held, resident_bytes(), trimmed)
"""


def test_freed_memory_goes_back_to_the_system():
    """In a fresh process: the heap of one that has run the rest of the suite is laid out by it."""
    _needs_proc_and_glibc()
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _FREED], capture_output=True, text=True, check=True, cwd=root)
    before, held, after, trimmed = out.stdout.split()
    before, held, after = int(before), int(held), int(after)
    assert before - held < 50 * MiB, (before, held)  # what free() alone gave back
    assert trimmed == "True"
    assert held - after > 100 * MiB, (held, after)  # about 170 MiB handed back


def test_the_budget_brings_the_real_resident_size_back_under_its_limit():
    _needs_proc_and_glibc()
    results = InferenceCache(max_bytes=1 << 40)
    for name in range(8):  # 8 x 40 MiB of results, each touched so that it is resident
        results.get_or_compute(name, lambda: np.ones(40 * MiB, np.uint8))
    now = resident_bytes()
    budget = MemoryBudget(now + 200 * MiB, (results,), reserve_bytes=300 * MiB)  # 100 MiB over its target
    assert budget.fit() >= 100 * MiB
    assert resident_bytes() <= budget.limit_bytes - budget.reserve_bytes
    assert 0 not in results and 7 in results  # the oldest went first
