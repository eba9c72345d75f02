"""How long each script run takes on the server, per session: with `SODVIZ_TIMINGS=FILE` set, one
JSON line per run (start, session, page and image as the run began; wall and CPU seconds; the
caches' sizes and what the memory budget dropped). The load script reads it to tell the server's
time from the browsers' on a shared machine; unset, nothing is measured."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time

from streamlit.runtime.scriptrunner import get_script_run_ctx

from pages._loaders import MEMORY_BUDGET, VIEW_CACHE, chosen_image_name
from sodviz.cache import DEFAULT_CACHE

_WRITE = threading.Lock()  # one line at a time from the sessions' script threads


@contextlib.contextmanager
def script_run(page: str):
    """Time the run of `page` (a stopped or rerun page too: st.stop and st.rerun raise through)."""
    path = os.environ.get("SODVIZ_TIMINGS")
    if not path:
        yield
        return
    context = get_script_run_ctx()
    line = {
        "start": time.time(),
        "session": context.session_id if context else None,
        "page": page,
        "image": chosen_image_name(),
    }  # read before the run: session state is not read once a stop is asked
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        line["wall"] = time.perf_counter() - wall
        line["cpu"] = time.thread_time() - cpu  # this script thread only: torch's own threads not counted
        line["cache_mib"] = DEFAULT_CACHE.used_bytes / 2**20  # the inference cache's share of the RSS
        line["views_mib"] = VIEW_CACHE.used_bytes / 2**20  # the drawn views' share
        line["evicted_mib"] = MEMORY_BUDGET.evicted_bytes / 2**20  # results the memory budget dropped so far
        with _WRITE, contextlib.suppress(OSError), open(path, "a") as file:  # never in a page's way
            file.write(json.dumps(line) + "\n")
