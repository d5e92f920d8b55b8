"""A camera's last seconds of frames as JPEG, in one reused buffer.

The pre-roll is the only frame data a camera keeps for long: 45 s of JPEGs, tens of
MB, each frame alive for 45 s among the frame loop's short-lived blocks. Kept as one
``bytes`` object per frame, they land in the C heap between short-lived blocks and
fragment it: the heap grows with the busiest scene and rarely shrinks (``docs/scale.md``).
Here they are copied into one buffer that is written round and round. The buffer
grows, by half at a time, only when a scene's frames no longer fit in it, and never
shrinks, so after the busiest minutes the pre-roll's footprint is fixed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

FIRST_BYTES = 1 << 20  # the first buffer; the first busy seconds grow it to what the scene needs
ROUND_BYTES = 1 << 20  # buffer sizes are whole MiB


class JpegRing:
    """The last ``seconds`` of one camera's JPEG frames, oldest first.

    Frames are stored back to back in write order; one that does not fit before the
    buffer's end starts again at its beginning, behind the oldest frame. Not
    thread-safe: the clip worker owns it.

    Args:
        seconds: History kept, on the video clock (``evidence.buffer_seconds``).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._buffer = np.empty(0, np.uint8)
        self._frames: deque[tuple[float, int, int]] = deque()  # (t, start, length)
        self._head = 0  # where the newest frame ends

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def nbytes(self) -> int:
        """The buffer's size: what the pre-roll costs in memory."""
        return self._buffer.nbytes

    def append(self, t: float, jpeg: np.ndarray) -> None:
        """Keep a frame; frames more than ``seconds`` older than it go first."""
        while self._frames and t - self._frames[0][0] > self.seconds:
            self._frames.popleft()
        data = jpeg.reshape(-1)
        start = self._place(data.size)
        if start is None:
            self._grow(data.size)
            start = self._head
        self._buffer[start:start + data.size] = data
        self._frames.append((t, start, data.size))
        self._head = start + data.size

    def clear(self) -> None:
        """Forget every frame (a new video); the buffer is kept for the next."""
        self._frames.clear()
        self._head = 0

    def first_since(self, begin: float) -> float | None:
        """The time of the first frame at or after ``begin``, if any."""
        return next((t for t, _, _ in self._frames if t >= begin), None)

    def since(self, begin: float) -> Iterator[tuple[float, np.ndarray]]:
        """``(t, jpeg)`` of the frames at or after ``begin``, oldest first.

        The JPEGs are views into the buffer: use each before the next :meth:`append`.
        """
        for t, start, length in self._frames:
            if t >= begin:
                yield t, self._buffer[start:start + length]

    def _place(self, size: int) -> int | None:
        """Where ``size`` bytes go without overwriting a kept frame, or None if nowhere."""
        if not self._frames:
            return 0 if size <= self._buffer.size else None
        tail = self._frames[0][1]
        if tail < self._head:  # kept frames lie in [tail, head): free at the end, then before tail
            if self._head + size <= self._buffer.size:
                return self._head
            return 0 if size <= tail else None
        return self._head if self._head + size <= tail else None  # wrapped: free in [head, tail)

    def _grow(self, size: int) -> None:
        """A bigger buffer holding the kept frames back to back from its start."""
        used = sum(length for _, _, length in self._frames)
        wanted = max(FIRST_BYTES, self._buffer.size * 3 // 2, used + size)
        buffer = np.empty(-(-wanted // ROUND_BYTES) * ROUND_BYTES, np.uint8)
        head, frames = 0, deque()
        for t, start, length in self._frames:
            buffer[head:head + length] = self._buffer[start:start + length]
            frames.append((t, head, length))
            head += length
        self._buffer, self._frames, self._head = buffer, frames, head
