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


class ModelLock:
    """The detector's lock, whose holder runs its model work at a lower CPU priority.

    Under several sessions a forward pass fills every core for seconds, while another session's
    page whose results are cached only needs a fraction of a core to draw. Holding this lock, a
    thread's Linux nice value is raised by `nice` (torch's worker threads, started by that
    thread's first parallel op, inherit it), so a drawing page is scheduled first and the model
    takes what is left; on release the thread's priority is set back where the system allows it
    (raising nice is always allowed, lowering it again needs CAP_SYS_NICE or RLIMIT_NICE; a script
    thread of Streamlit runs a single page run, so a thread left low ends with it). `nice=0`, or
    a system without per-thread priorities, makes it a plain lock.

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
            self._restore = _lower_priority(self.nice)
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._restore()
        finally:
            self.release()


def model_nice(environ=None) -> int:
    """How much lower the app runs model work: `SODVIZ_MODEL_NICE` (0 to 19), default 10."""
    environ = os.environ if environ is None else environ
    value = environ.get(MODEL_NICE_ENV, "10").strip()
    if not value.isdigit() or not 0 <= int(value) <= 19:
        raise ValueError(f"{MODEL_NICE_ENV} must be a whole number from 0 to 19, got {value!r}")
    return int(value)


_BASE = threading.local()  # each thread's nice before any model lock lowered it


def _lower_priority(nice: int):
    """Raise this thread's nice value to its own base + `nice`; returns what sets it back (as far
    as allowed). Where priorities cannot be read or set (a sandbox), a plain lock."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return lambda: None
    thread = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, thread)
        base = getattr(_BASE, "nice", before)  # unprivileged, a failed restore must not stack
        _BASE.nice = base
        os.setpriority(os.PRIO_PROCESS, thread, min(19, base + nice))
    except OSError:
        return lambda: None

    def restore() -> None:
        with contextlib.suppress(OSError):  # unprivileged: the thread stays lower
            os.setpriority(os.PRIO_PROCESS, thread, before)

    return restore
