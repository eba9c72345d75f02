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

import os

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
