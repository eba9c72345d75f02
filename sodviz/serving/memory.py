"""The server's memory: its resident size, freed pages handed back, and one budget its caches yield to.

A served app's memory is the process with its models loaded, what the sessions hold (decoded
uploads, drawn images, widget state), the working memory of the pass running now (one at a time:
`sodviz.detector.threads.ModelLock`'s gate) and the caches of results. Only the caches can give
way, so `MemoryBudget` makes them: whenever the resident size leaves less than one pass's working
memory (`reserve_bytes`) below the budget, the least recently used results are dropped until it
fits again.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sodviz.cache import InferenceCache

MEMORY_ENV = "SODVIZ_MEMORY_MB"  # the server's memory budget, MiB (`python -m sodviz serve --memory-mb`)
DEFAULT_MEMORY_MB = 2048
# One pass's working memory: the largest rise of one cold page in one session, Explain's 411 MiB
# in a browser, 354-359 MiB in `benchmarks/bench_memory.py` (demo detector, one session).
PASS_RESERVE_MB = 512

# Set in the environment of the server's process (`python -m sodviz serve` does): glibc reads it
# at start. Every Streamlit script run is a thread, and glibc gives threads that allocate at once
# arenas of their own (up to 8 per core), each keeping what its threads freed: with 4 sessions
# the free space of many passes sat in the process side by side (docs/serving.md#memory).
SERVER_MALLOC_ENV = {"MALLOC_ARENA_MAX": "2"}


def checked_memory_mb(megabytes: int) -> int:
    """`megabytes` when it can be a memory budget: 0 (none) or more than one pass's working memory."""
    if megabytes < 0 or 0 < megabytes <= PASS_RESERVE_MB:
        raise ValueError(
            f"a memory budget must be 0 (none) or above {PASS_RESERVE_MB} MiB (one pass's working "
            f"memory), got {megabytes}"
        )
    return megabytes


def memory_mb(environ: Mapping[str, str] | None = None) -> int | None:
    """The budget `SODVIZ_MEMORY_MB` names, MiB; None (no budget: the caches' own bounds only)
    when unset or 0."""
    environ = os.environ if environ is None else environ
    text = environ.get(MEMORY_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"{MEMORY_ENV} must be a whole number of MiB, got {text!r}")
    return checked_memory_mb(int(text)) or None


def served_memory_mb(flag: int | None, environ: Mapping[str, str]) -> int:
    """The budget `python -m sodviz serve` gives its server, MiB (0: none): `--memory-mb` when
    given, else an exported `SODVIZ_MEMORY_MB` (empty counts as unset), else the default."""
    if flag is not None:
        return checked_memory_mb(flag)
    if not environ.get(MEMORY_ENV, "").strip():
        return DEFAULT_MEMORY_MB
    return memory_mb(environ) or 0


def resident_bytes() -> int | None:
    """This process's resident set size in bytes (Linux `/proc/self/statm`), None elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def return_freed_memory() -> bool:
    """Hand the C heap's free pages back to the system (glibc's `malloc_trim`); False where there
    is no glibc. Measured on the app (2 scenes through every page in one session): 1,613 MiB
    without, 1,007 MiB trimming after each run (3-56 ms a trim): memory freed by one pass
    (D-RISE's masked batches, gradients) otherwise stays in the process, its pages scattered
    among live objects where `free` alone never returns them."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class MemoryBudget:
    """The most the process should hold, and the caches that give way to keep it there.

    `fit()` reads the resident size; above `limit_bytes - reserve_bytes` it hands freed pages
    back, then drops the least recently used results of `caches`, in order (the drawn views before
    the model results), reading the size again after each round, until it fits or the caches are
    empty (`starved`: the budget is too small for the models and sessions alone; a dropped result
    a session still holds frees nothing). The app fits before each model pass, inside the model
    `gate`, and after each script run that computed something, only while no pass runs
    (`fit_idle`): a running pass's working memory is what the reserve is for. With no limit
    (None), only the trim after a computing run. Linux only (the size comes from /proc).

    Attributes:
        evicted_bytes: results dropped to fit, bytes, since start.
        starved: the last fit found it over with the caches empty.
    """

    def __init__(
        self,
        limit_bytes: int | None,
        caches: Sequence[InferenceCache],
        *,
        gate=None,
        reserve_bytes: int = PASS_RESERVE_MB << 20,
        resident: Callable[[], int | None] = resident_bytes,
    ) -> None:
        if limit_bytes is not None and limit_bytes <= reserve_bytes:
            raise ValueError(
                f"a memory budget of {limit_bytes >> 20} MiB leaves nothing beside one pass's "
                f"{reserve_bytes >> 20} MiB of working memory"
            )
        self.limit_bytes, self.reserve_bytes, self.gate = limit_bytes, reserve_bytes, gate
        self.caches, self.resident = tuple(caches), resident
        self.evicted_bytes, self.starved = 0, False
        self._fitting = threading.Lock()

    @classmethod
    def from_env(
        cls, caches: Sequence[InferenceCache], environ: Mapping[str, str] | None = None, *, gate=None
    ) -> MemoryBudget:
        """The budget `SODVIZ_MEMORY_MB` names (none when unset or 0)."""
        megabytes = memory_mb(environ)
        return cls(None if megabytes is None else megabytes << 20, caches, gate=gate)

    def fit(self) -> int:
        """Drop cached results until the resident size leaves `reserve_bytes` below the limit;
        returns the bytes dropped. A fit already running in another thread is not waited for."""
        if self.limit_bytes is None or not self._fitting.acquire(blocking=False):
            return 0
        try:
            target, dropped = self.limit_bytes - self.reserve_bytes, 0
            size = self.resident()
            if size is not None and size > target and any(len(cache) for cache in self.caches):
                return_freed_memory()  # free pages first: then only what still does not fit goes
                while (size := self.resident() or 0) > target:
                    over, freed = size - target, 0
                    for cache in self.caches:
                        freed += cache.evict(over - freed)
                        if freed >= over:
                            break
                    if not freed:  # the caches are empty
                        break
                    dropped += freed
                    return_freed_memory()
            self.evicted_bytes += dropped
            self.starved = size is not None and size > target
            return dropped
        finally:
            self._fitting.release()

    def fit_idle(self) -> int:
        """`fit()` when no model pass runs (the gate is free); otherwise that pass's next fit will."""
        if self.gate is None:
            return self.fit()
        if not self.gate.acquire(blocking=False):
            return 0
        try:
            return self.fit()
        finally:
            self.gate.release()

    def starved_sentence(self) -> str:
        """What a starved budget means for the user, and what to do."""
        return (
            f"The server's memory budget ({self.limit_bytes >> 20} MiB) leaves no room for cached results "
            "beside the loaded models and the open sessions: pages compute again on every visit. Start "
            "the app with a larger `--memory-mb` (python -m sodviz serve), or load a smaller model."
        )

    @contextlib.contextmanager
    def after_run(self) -> Iterator[None]:
        """Around a script run: when it computed something new (a miss in one of the caches), free
        pages handed back and the budget fitted (while no pass runs); a run that only read cached
        results pays nothing."""
        before = sum(cache.misses for cache in self.caches)
        try:
            yield
        finally:
            if sum(cache.misses for cache in self.caches) != before:
                return_freed_memory()
                self.fit_idle()


@functools.cache
def _malloc_trim():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None
