"""A small per-client rate limit: at most N events per window, counted in this process.

Used for actions that cost the server something lasting (saving a map). Counts live in
memory, per worker process: with several workers a client may get up to N per worker,
which still bounds what one client can do. The client is the connection's address, which
is the forwarded one only when it came through a trusted proxy (see ``serve``).
"""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimit:
    """At most ``events`` per ``window`` seconds for each key."""

    def __init__(self, events: int, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.events = events
        self.window = window
        self.max_keys = max_keys
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> float:
        """Record one event for ``key``: 0 when allowed, else seconds until the next one is."""
        now = time.monotonic()
        with self._lock:
            times = self._seen.get(key)
            if times is None:
                if len(self._seen) >= self.max_keys:
                    self._forget(now)
                times = self._seen[key] = deque()
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.events:
                return max(0.1, times[0] + self.window - now)
            times.append(now)
            return 0.0

    def _forget(self, now: float) -> None:
        """Drop keys with nothing left in the window (the table stays bounded)."""
        for key in [k for k, t in self._seen.items() if not t or t[-1] <= now - self.window]:
            del self._seen[key]
        if len(self._seen) >= self.max_keys:  # all active: forget the oldest half
            for key in list(self._seen)[: self.max_keys // 2]:
                del self._seen[key]
