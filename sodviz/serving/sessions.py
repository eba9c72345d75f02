"""Closed sessions let go: what a served app's session holds, released once Streamlit can no
longer resume it."""

from __future__ import annotations

import contextlib
import threading
import time


class SessionReaper:
    """Lets go of what a closed session holds, once it can no longer come back.

    Streamlit keeps a closed session `ttl` s (2 minutes) for a reconnect, but removes it from
    memory only when another session's disconnect next writes its session store: on a quiet
    server the last visitors' uploads stayed held for good (measured: `benchmarks/bench_load.py
    --uploads`, RSS back to idle only when one more visitor came and went). Each run tells the
    reaper its session (`seen`); `sweep` calls `release(session_id, state)` for every session not connected
    (`connected(session_id)`) for `ttl` s, and forgets it. `start` sweeps every `every` s in a
    daemon thread. Knows nothing of Streamlit: the app hands it the callables.
    """

    def __init__(self, release, connected, *, ttl: float = 120.0, clock=time.monotonic) -> None:
        self.release, self.connected, self.ttl, self.clock = release, connected, ttl, clock
        self._sessions: dict[str, list] = {}  # id -> [state, when first seen gone, or None]
        self._lock = threading.Lock()

    def seen(self, session_id: str, state) -> None:
        with self._lock:
            self._sessions[session_id] = [state, None]

    def __len__(self) -> int:
        return len(self._sessions)

    def sweep(self) -> int:
        """Release the sessions gone for `ttl` s; returns how many."""
        now, released = self.clock(), []
        with self._lock:
            for session_id, entry in list(self._sessions.items()):
                if self.connected(session_id):
                    entry[1] = None
                elif entry[1] is None:
                    entry[1] = now
                elif now - entry[1] >= self.ttl:
                    released.append((session_id, self._sessions.pop(session_id)[0]))
        for session_id, state in released:
            with contextlib.suppress(Exception):  # one failed release does not keep the others
                self.release(session_id, state)
        return len(released)

    def start(self, every: float = 5.0) -> threading.Thread:
        def loop() -> None:
            while True:
                time.sleep(every)
                with contextlib.suppress(Exception):  # a failed sweep is tried again next time
                    self.sweep()

        thread = threading.Thread(target=loop, name="sodviz-session-reaper", daemon=True)
        thread.start()
        return thread
