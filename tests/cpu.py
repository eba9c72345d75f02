"""CPU times from Linux's /proc, for the thread tests and the serving benchmarks (which put
tests/ on their path): one reading of a `stat` line, per process or per thread."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(stat: str) -> tuple[int, int]:
    """(user + system CPU ticks, nice) from a /proc .../stat line."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[16])


def process_seconds(pid: int) -> float:
    """CPU seconds a process has spent so far, all its threads."""
    return cpu_ticks(Path(f"/proc/{pid}/stat").read_text())[0] / TICKS


def thread_ticks(pid: int | str = "self") -> dict[int, tuple[int, int]]:
    """(CPU ticks so far, nice) of every thread of a process, by thread id (threads that exit
    while read are left out)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found[int(task.name)] = cpu_ticks((task / "stat").read_text())
    return found
