"""Torch's thread count: the cores the process may use, or the environment's override."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest
import torch
from cpu import thread_ticks

from sodviz.detector.threads import ModelLock, model_nice, run_model_work, set_torch_threads, torch_threads


def test_threads_follow_the_cores_this_process_may_use_or_the_override():
    assert torch_threads({}) == len(os.sched_getaffinity(0))
    assert torch_threads({"SODVIZ_TORCH_THREADS": "1"}) == 1
    with pytest.raises(ValueError, match="at least 1"):
        torch_threads({"SODVIZ_TORCH_THREADS": "0"})
    before = torch.get_num_threads()
    try:
        assert set_torch_threads({"SODVIZ_TORCH_THREADS": "1"}) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _nice(thread: int | None = None) -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id() if thread is None else thread)


def _cpu_by_thread() -> dict[int, int]:
    """CPU ticks so far of every thread of this process."""
    return {thread: ticks for thread, (ticks, _) in thread_ticks().items()}


needs_priorities = pytest.mark.skipif(
    not (hasattr(os, "setpriority") and Path("/proc/self/task").is_dir()),
    reason="no per-thread priorities here",
)


@needs_priorities
def test_model_work_and_torchs_workers_run_lowered_and_the_caller_does_not():
    """The caller has run a parallel op before the pass (as Home's preprocessing does), so its
    own torch workers exist at its priority: the pass's CPU must still all be spent lowered."""
    before = _nice()
    if before > 12:
        pytest.skip("this process already runs at a low priority")
    lock, seen = ModelLock(nice=7), {}
    big = torch.randn(1500, 1500)

    def work() -> None:
        seen["thread"], seen["nice"] = threading.get_native_id(), _nice()
        start, cpu = time.monotonic(), _cpu_by_thread()
        while time.monotonic() - start < 1.0:
            (big @ big).sum()
        spent = _cpu_by_thread()
        busy = [t for t in spent if spent[t] - cpu.get(t, 0) > 5]
        seen["busy"] = {t: _nice(t) for t in busy}  # read while they live: the pass's thread ends with it

    def session() -> None:
        (big @ big).sum()  # this thread's own torch workers start here, at its priority
        seen["caller"] = threading.get_native_id()
        lock.run(work)
        seen["caller nice"] = _nice()

    thread = threading.Thread(target=session)
    thread.start()
    thread.join()
    assert seen["thread"] != seen["caller"] and seen["nice"] == before + 7
    assert seen["caller nice"] == before
    assert seen["thread"] in seen["busy"]
    lowered = {t: nice for t, nice in seen["busy"].items() if t != seen["thread"]}
    assert all(nice == before + 7 for nice in lowered.values()), lowered
    assert not lock.locked()


def test_model_work_runs_on_a_thread_that_ends_with_it_and_gives_its_result_and_its_errors():
    """A thread that outlived the pass would keep torch's idle workers alive, and GNU OpenMP,
    counting more threads than cores, would make every small parallel op of a page wait."""
    lock, threads = ModelLock(nice=7), []

    def work() -> int:
        threads.append(threading.current_thread())
        assert lock.locked()
        return 42

    assert run_model_work(lock, work) == 42 and run_model_work(lock, work) == 42
    assert threading.current_thread() not in threads
    assert not any(thread.is_alive() for thread in threads)
    with pytest.raises(RuntimeError, match="inside"):
        run_model_work(lock, lambda: (_ for _ in ()).throw(RuntimeError("inside the pass")))
    assert not lock.locked()
    here = []
    assert run_model_work(ModelLock(nice=0), lambda: here.append(threading.get_native_id()) or 1) == 1
    plain = threading.Lock()
    assert run_model_work(plain, lambda: here.append(threading.get_native_id()) or plain.locked()) is True
    assert here == [threading.get_native_id()] * 2  # a plain lock, or nice 0: in the caller's thread


def test_a_pass_may_run_another_models_pass_behind_the_same_gate():
    gate = threading.RLock()
    first, second = (ModelLock(nice=7, lock=threading.Lock(), gate=gate) for _ in range(2))
    done = threading.Event()

    def outer() -> str:
        return run_model_work(second, lambda: "inner ran")

    worker = threading.Thread(
        target=lambda: done.set() if run_model_work(first, outer) == "inner ran" else None
    )
    worker.start()
    worker.join(20)
    assert done.is_set()  # not a deadlock on the gate the waiting caller holds
    assert not first.locked() and not second.locked()


def test_model_nice_from_the_environment():
    assert model_nice({}) == 10
    assert model_nice({"SODVIZ_MODEL_NICE": "0"}) == 0
    for bad in ("-1", "20", "low"):
        with pytest.raises(ValueError, match="SODVIZ_MODEL_NICE"):
            model_nice({"SODVIZ_MODEL_NICE": bad})


def test_a_sandbox_that_refuses_priorities_still_runs_the_pass_on_its_own_thread(monkeypatch):
    from sodviz.detector import threads

    def refused(*args):
        raise OSError("not allowed here")

    monkeypatch.setattr(threads.os, "getpriority", refused)
    monkeypatch.setattr(threads.os, "setpriority", refused)
    seen = []
    worker = threading.Thread(target=lambda: seen.append((threads._lower(10), threads._MODEL_THREAD.nice)))
    worker.start()
    worker.join()
    assert seen == [(None, 10)]  # no error: the thread runs the passes at the priority it has


def test_a_shared_gate_lets_one_pass_run_at_a_time_whatever_the_model():
    gate = threading.RLock()
    first, second = ModelLock(lock=threading.Lock(), gate=gate), ModelLock(lock=threading.Lock(), gate=gate)
    alone = ModelLock(lock=threading.Lock())  # no gate: only its own model's passes exclude it
    held, done, seen = threading.Event(), threading.Event(), {}

    def pass_on_first() -> None:
        with first:
            held.set()
            done.wait(10)

    thread = threading.Thread(target=pass_on_first)
    thread.start()
    assert held.wait(10)
    seen["second"] = second.acquire(blocking=False)  # another model: waits for the gate
    seen["alone"] = alone.acquire(blocking=False)
    alone.release()
    done.set()
    thread.join()
    assert seen == {"second": False, "alone": True}
    with second, first:  # the refused try kept no gate; reentrant: a pass may run another model
        assert first.locked() and second.locked()
    assert not first.locked() and not second.locked()


def test_a_refused_model_lock_gives_the_gate_back():
    gate, model = threading.RLock(), threading.Lock()
    lock = ModelLock(lock=model, gate=gate)
    with model:  # a job holding the loaded model's own lock
        assert not lock.acquire(blocking=False)
    released = []

    def other_thread() -> None:
        released.append(gate.acquire(blocking=False))
        if released[0]:
            gate.release()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert released == [True]


def test_before_runs_once_the_pass_holds_both_locks():
    gate, model, seen = threading.RLock(), threading.Lock(), []

    def gate_held_here() -> bool:  # by this thread: another cannot take it
        taken = []
        other = threading.Thread(target=lambda: taken.append(gate.acquire(blocking=False)))
        other.start()
        other.join()
        return taken == [False]

    lock = ModelLock(lock=model, gate=gate, before=lambda: seen.append(model.locked() and gate_held_here()))
    with lock:
        pass
    with lock:
        pass
    assert seen == [True, True]

    def failing() -> None:
        raise RuntimeError("no room")

    with pytest.raises(RuntimeError), ModelLock(lock=model, gate=gate, before=failing):
        pass
    assert not model.locked() and gate.acquire(blocking=False)  # both given back
    gate.release()


def test_every_pass_in_sodviz_runs_through_run_model_work():
    """`with detector.lock:` would run a pass in the caller's thread, at the caller's priority."""
    package = Path(__file__).resolve().parents[2] / "sodviz"
    found = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bwith\b[^:]*\bdetector\.lock\b", line)
    ]
    assert found == []
