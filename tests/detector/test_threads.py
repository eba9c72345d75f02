"""Torch's thread count: the cores the process may use, or the environment's override."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from sodviz.detector.threads import ModelLock, model_nice, set_torch_threads, torch_threads


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


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread priorities on this system")
def test_the_model_lock_lowers_its_holders_priority_and_only_its_holders():
    lock, before, seen = ModelLock(nice=7), _nice(), {}
    if before > 12:
        pytest.skip("this process already runs at a low priority")
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            seen["holder"] = _nice()
            held.set()
            done.wait(10)
        seen["after"] = _nice()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    seen["beside"] = _nice()  # this thread, while another holds the lock
    done.set()
    thread.join()
    assert seen["holder"] == before + 7
    assert seen["beside"] == before
    assert seen["after"] == before or os.geteuid() != 0  # set back, where the system allows it
    assert not lock.locked()
    with ModelLock(nice=0):
        assert _nice() == before  # 0: a plain lock


def test_model_nice_from_the_environment():
    assert model_nice({}) == 10
    assert model_nice({"SODVIZ_MODEL_NICE": "0"}) == 0
    for bad in ("-1", "20", "low"):
        with pytest.raises(ValueError, match="SODVIZ_MODEL_NICE"):
            model_nice({"SODVIZ_MODEL_NICE": bad})


def test_an_unprivileged_thread_is_not_lowered_again_and_a_sandbox_gets_a_plain_lock(monkeypatch):
    from sodviz.detector import threads

    nice = {"now": 0}

    def setpriority(which, who, value):
        if value < nice["now"]:
            raise PermissionError("lowering nice needs CAP_SYS_NICE")
        nice["now"] = value

    monkeypatch.setattr(threads.os, "getpriority", lambda which, who: nice["now"])
    monkeypatch.setattr(threads.os, "setpriority", setpriority)

    def in_a_new_thread(body) -> None:
        worker = threading.Thread(target=body)
        worker.start()
        worker.join()

    def twice() -> None:
        lock = ModelLock(nice=10)
        for _ in range(2):
            with lock:
                seen.append(nice["now"])

    seen = []
    in_a_new_thread(twice)
    assert seen == [10, 10]  # the restore failed, and the second pass is not at 19

    def refused(which, who, value=None):
        raise OSError("not allowed here")

    monkeypatch.setattr(threads.os, "getpriority", refused)
    with ModelLock(nice=10) as lock:  # a sandbox that refuses priorities: still a lock
        assert lock.locked()


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
