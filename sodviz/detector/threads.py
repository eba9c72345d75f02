"""How many CPU threads torch uses: set once, deliberately, for a process serving many sessions.

Every session shares one detector, whose lock lets one forward pass run at a time, so that pass
should use every core the process may run on (`os.sched_getaffinity`, not the machine's count,
which containers and `taskset` narrow). Measured on the 2-core machine (2026-12-03,
`benchmarks/bench_sessions.py`, demo detector): one pass at 1 thread takes 1.7x its time at 2;
two one-thread replicas running side by side finish eight passes in 0.86x the serial time, and
micro-batches of two in 1.02x. A replica pool would buy 14 % throughput under full load for a
1.7x slower pass whenever one session works alone, so sodviz keeps one detector on all cores.
`SODVIZ_TORCH_THREADS` overrides the count (e.g. on a machine shared with other work).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import torch

THREADS_ENV = "SODVIZ_TORCH_THREADS"


def torch_threads(environ=None) -> int:
    """The intra-op thread count to use: `SODVIZ_TORCH_THREADS`, else the cores this process may use."""
    environ = os.environ if environ is None else environ
    value = environ.get(THREADS_ENV)
    if value:
        if not value.strip().isdigit():
            raise ValueError(f"{THREADS_ENV} must be a whole number of threads, got {value!r}")
        count = int(value)
        if count < 1:
            raise ValueError(f"{THREADS_ENV} must be at least 1, got {count}")
        return count
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_torch_threads(environ=None) -> int:
    """Set torch's intra-op threads to `torch_threads()`; returns the count."""
    count = torch_threads(environ)
    torch.set_num_threads(count)
    return count


MODEL_NICE_ENV = "SODVIZ_MODEL_NICE"
T = TypeVar("T")


class ModelLock:
    """The detector's lock, whose model work runs on a thread of its own at a lower CPU priority.

    Under several sessions a forward pass fills every core for seconds, while another session's
    page whose results are cached only needs a fraction of a core to draw. `run(work)` takes the
    lock and runs `work` on a new thread whose Linux nice value was raised by `nice` before it ran
    any torch op, so torch's worker threads, which it starts, are as low: a drawing page is
    scheduled first and the model takes what is left. (Lowering the calling thread itself is not
    enough: its worker threads exist from its first parallel op, often a preprocessing step before
    the lock, and keep the priority they were started with; measured in the app, such a worker at
    nice 0 spent more CPU than the lowered thread.) The thread ends with the pass, and its torch
    workers with it: while another thread's idle OpenMP workers live, GNU OpenMP counts more
    threads than cores and stops spinning, and every small parallel op of a page pays a wake-up
    (3,000 small ops took 3.9x as long beside one idle pool; a long-lived model thread made the
    Candidates page 2.6x slower). `nice=0`, or a system without per-thread priorities, runs
    `work` in the calling thread.

    `lock`, when given, is the lock it excludes through: pass the detector's own, so that every
    `Detector` sharing the model (and its hooks) still runs one pass at a time.

    `gate`, when given, is taken first: one lock shared by every model of a process lets one pass
    run at a time whatever the model, so the working memories of passes never add up (an app
    serving several sessions: one on ERF's random twin, one on a fusion detector, one on the
    detector chosen on Home). On 2 cores two passes side by side only share the cores anyway. Make
    it reentrant (`threading.RLock`), so that a thread cannot block itself; a pass must never wait
    inside the gate for a result another thread computes (no `cached()` under a model lock).
    `before`, when given, runs once both are held, before the pass (the app makes room for the
    pass's working memory there).

    Used as a context manager (`with lock:`) it only excludes: the block runs in the calling
    thread at its own priority. Model work goes through `run_model_work`.
    """

    def __init__(
        self,
        nice: int = 0,
        lock=None,
        gate=None,
        before: Callable[[], object] | None = None,
    ) -> None:
        self._lock = threading.Lock() if lock is None else lock
        self.nice, self.gate, self.before = nice, gate, before

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        started = time.monotonic()
        if self.gate is not None and not self.gate.acquire(blocking, timeout):
            return False
        if timeout >= 0:  # what is left of it for the model's own lock
            timeout = max(0.0, timeout - (time.monotonic() - started))
        if self._lock.acquire(blocking, timeout):
            return True
        if self.gate is not None:
            self.gate.release()
        return False

    def release(self) -> None:
        self._lock.release()
        if self.gate is not None:
            self.gate.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> ModelLock:
        self.acquire()
        try:
            if self.before is not None:
                self.before()
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def run(self, work: Callable[[], T]) -> T:
        """`work()` holding this lock, on a new thread lowered by this lock's `nice` (see the class)."""
        if getattr(_MODEL_THREAD, "nice", None) is not None:  # a pass running another model's pass:
            with self._lock:  # the gate is held by the thread waiting for this one
                return work()
        with self:
            if self.nice <= 0:
                return work()
            return _on_lowered_thread(work, self.nice)


def run_model_work(lock, work: Callable[[], T]) -> T:
    """`work()` under a detector's lock: a `ModelLock` runs it on a lowered thread of its own, any other lock
    (a library user's plain `threading.Lock`) in this thread while holding it. Every forward or
    backward pass of sodviz goes through here; the thread-local modes it needs
    (`torch.inference_mode`, `torch.enable_grad`) belong inside `work`."""
    run = getattr(lock, "run", None)
    if run is not None:
        return run(work)
    with lock:
        return work()


def model_nice(environ=None) -> int:
    """How much lower the app runs model work: `SODVIZ_MODEL_NICE` (0 to 19), default 10."""
    environ = os.environ if environ is None else environ
    value = environ.get(MODEL_NICE_ENV, "10").strip()
    if not value.isdigit() or not 0 <= int(value) <= 19:
        raise ValueError(f"{MODEL_NICE_ENV} must be a whole number from 0 to 19, got {value!r}")
    return int(value)


_MODEL_THREAD = threading.local()  # `nice` is set on a model thread (what it was lowered by)


def _on_lowered_thread(work: Callable[[], T], nice: int) -> T:
    """`work()` on a new thread lowered by `nice` first; its result, or its exception, here."""
    outcome: dict = {}

    def body() -> None:
        _lower(nice)
        try:
            outcome["result"] = work()
        except BaseException as error:  # raised again in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=body, name=f"sodviz-model-nice{nice}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _lower(nice: int) -> None:
    """Raise this new thread's nice value by `nice`, before it runs any torch op (a sandbox that
    refuses priorities leaves it as it is: the pass still runs on a thread that ends with it)."""
    _MODEL_THREAD.nice = nice
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            thread = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
