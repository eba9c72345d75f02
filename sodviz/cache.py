"""A thread-safe in-process LRU cache of results with a memory budget, its keys and `cached`."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Protocol, TypeVar

import numpy as np


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


T = TypeVar("T", bound=Sized)

DEFAULT_BUDGET_BYTES = int(os.environ.get("SODVIZ_CACHE_MB", "1024")) * 1024 * 1024


class InferenceCache:
    """LRU of values with an `nbytes` size, bounded by `max_bytes`.

    Safe to share between threads: concurrent requests for the same key compute it once, the
    others wait for that result. A value larger than the whole budget is returned but not kept.
    """

    def __init__(self, max_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._lock = threading.Lock()
        self._used_bytes = 0
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value of `key`, computing it with `compute()` on a miss."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
            future = self._pending.get(key)
            owner = future is None
            if owner:
                future = self._pending[key] = Future()
                self.misses += 1
            else:
                self.hits += 1
        if not owner:
            return future.result()
        try:
            value = compute()
        except BaseException as error:
            with self._lock:
                del self._pending[key]
            future.set_exception(error)
            raise
        with self._lock:
            del self._pending[key]
            self._store(key, value)
        future.set_result(value)
        return value

    def _store(self, key: Hashable, value: T) -> None:
        size = int(value.nbytes)
        if size > self.max_bytes:
            return
        self._entries[key] = value
        self._used_bytes += size
        while self._used_bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._used_bytes -= int(evicted.nbytes)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def used_bytes(self) -> int:
        return self._used_bytes

    def evict(self, nbytes: int) -> int:
        """Drop the least recently used entries until at least `nbytes` are dropped or none is
        left (in-flight computations still finish and are kept); returns the bytes dropped."""
        dropped = 0
        with self._lock:
            while dropped < nbytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                dropped += int(evicted.nbytes)
            self._used_bytes -= dropped
        return dropped

    def clear(self) -> None:
        """Drop every entry (in-flight computations still finish)."""
        with self._lock:
            self._entries.clear()
            self._used_bytes = 0


DEFAULT_CACHE = InferenceCache()


def cached(cache: InferenceCache | None, key: Callable[[], Hashable], compute: Callable[[], T]) -> T:
    """`compute()`, kept in `cache` under the key `key()` returns; with no cache (None), computed
    every time (and the key, which may hash images, never built).

    Every cached function of the library hands its key and its uncached body here; only
    `crops.redetect` reads the cache itself, to batch all missing crops into one forward pass.
    """
    if cache is None:
        return compute()
    return cache.get_or_compute(key(), compute)


def image_hash(image: np.ndarray) -> str:
    """sha256 of an image's shape and pixels, for cache keys."""
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def content_key(*parts) -> str:
    """sha256 over everything in `parts`, for the key of a result computed from them: numpy
    arrays (shape, dtype, bytes), dataclasses field by field, `sv.Detections` (boxes, scores,
    classes and every `data` column), mappings, sequences and scalars. Pass exactly what the
    computation reads: a part left out is a stale cache entry."""
    digest = hashlib.sha256()
    _feed(digest, parts)
    return digest.hexdigest()


def _feed(digest, value) -> None:
    if isinstance(value, np.ndarray):
        digest.update(f"array{value.shape}{value.dtype}".encode())
        data = repr(value.tolist()).encode() if value.dtype == object else np.ascontiguousarray(value).data
        digest.update(data)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(type(value).__name__.encode())
        for field in dataclasses.fields(value):
            _feed(digest, (field.name, getattr(value, field.name)))
    elif hasattr(value, "xyxy") and hasattr(value, "data"):  # sv.Detections
        _feed(digest, ("detections", value.xyxy, value.confidence, value.class_id, dict(value.data)))
    elif isinstance(value, dict):
        digest.update(b"dict")
        for key in sorted(value, key=repr):
            _feed(digest, (key, value[key]))
    elif isinstance(value, (list, tuple)):
        digest.update(f"seq{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())
