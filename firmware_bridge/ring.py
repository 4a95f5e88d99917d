"""A bounded ring between the serial reader thread and the inference loop.

The reader must never block on a slow consumer (the device would overrun its UART), so a
full ring drops its *oldest* item and counts it (`overruns`); the consumer sees the gap.
"""

from __future__ import annotations

import threading
from collections import deque


class Ring:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("ring capacity must be >= 1")
        self._items: deque = deque()
        self.capacity = capacity
        self.overruns = 0
        self._cond = threading.Condition()

    def put(self, item) -> None:
        with self._cond:
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.overruns += 1
            self._items.append(item)
            self._cond.notify()

    def get_all(self, timeout: float | None = None) -> list:
        """Every queued item (oldest first); waits up to `timeout` s for the first one."""
        with self._cond:
            if not self._items and timeout:
                self._cond.wait(timeout)
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
