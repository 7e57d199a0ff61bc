"""A limit on failed sign-ins and wrong API keys per client, so keys cannot be guessed at speed."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque

# Clients remembered at most; the longest-quiet ones are forgotten first (bounded memory under a flood).
_MAX_CLIENTS = 50_000


class FailureLimiter:
    """At most `limit` failures per client in a sliding window of `window_s` seconds; then refusals."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str) -> int | None:
        """Seconds `client` must wait before trying again, or None if it may try now."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if times is None or len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        """Count one failure of `client`."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if times is None:
                times = self._failures[client] = deque(maxlen=max(self.limit, 1))
            times.append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > _MAX_CLIENTS:
                self._failures.popitem(last=False)


def client_of(scope: dict) -> str:
    """The client's address as the server saw it (the peer of the TCP connection)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
