"""Preallocated single-producer single-consumer float32 stereo ring buffer.

One thread (the sink's render thread) calls :meth:`RingBuffer.write`; one other thread
(the output's audio callback) calls :meth:`RingBuffer.read_into`.  No locks.

Indices: ``_w`` (frames ever written) is only stored by the producer, ``_r`` (frames
ever read) only by the consumer.  Both are Python ints that only grow, so there is no
wrap-around ambiguity (full vs empty) and no 32/64-bit overflow; the buffer slot of a
frame is ``index % capacity``.

Why this is safe in CPython (memory-model reasoning):

* Loading or storing one attribute is a single bytecode operation; under the GIL it is
  atomic, and a thread switch (GIL release/acquire) is a full memory barrier, so a value
  published by one thread is seen completely or not at all by the other, and everything
  the publishing thread did before the store is visible once the store is.  The
  free-threaded build (3.13t) also makes single attribute loads/stores atomic; we rely
  on them not being reordered with the numpy copy before them, which holds in practice
  (the copy ends in a C call with its own synchronisation) but is not tested there.
* The producer first copies the samples into the free region, *then* publishes the new
  ``_w`` (program order; the copy finishes before the store executes).  The consumer
  reads ``_w`` once, then only touches frames below it, so it never sees a slot the
  producer is still writing.  Symmetrically the consumer copies out, then publishes
  ``_r``; the producer reads ``_r`` once and only overwrites slots below ``_r + capacity``.
* Each side reads the other's index once per call (a snapshot); a stale snapshot is
  only conservative (less fill / less space than there really is).

The read path allocates no sample buffers: it copies into the caller's array through
at most two slice views (small fixed-size view objects, no data).
"""
from __future__ import annotations

import numpy as np


class RingBuffer:
    def __init__(self, capacity: int, channels: int = 2, start: int = 0):
        capacity = int(capacity)
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.channels = int(channels)
        self._buf = np.zeros((capacity, self.channels), dtype=np.float32)
        # ``start``: initial value of both indices (the sink uses sample positions)
        self._w = int(start)  # total frames written; stored only by the producer
        self._r = int(start)  # total frames read; stored only by the consumer

    # -- either side ---------------------------------------------------------------
    @property
    def frames_written(self) -> int:
        return self._w

    @property
    def frames_read(self) -> int:
        return self._r

    def fill(self) -> int:
        """Frames available to read (exact from the consumer, a lower bound elsewhere)."""
        return self._w - self._r

    def space(self) -> int:
        """Frames that can be written (exact from the producer, a lower bound elsewhere)."""
        return self.capacity - (self._w - self._r)

    # -- producer ------------------------------------------------------------------
    def write(self, frames: np.ndarray) -> int:
        """Copy as many leading frames of ``frames`` (N x channels) as fit; return how many."""
        w = self._w
        r = self._r  # one snapshot of the consumer's index
        n = min(len(frames), self.capacity - (w - r))
        if n <= 0:
            return 0
        cap = self.capacity
        start = w % cap
        first = min(n, cap - start)
        self._buf[start:start + first] = frames[:first]
        if n > first:
            self._buf[:n - first] = frames[first:n]
        self._w = w + n  # publish after the copy
        return n

    # -- consumer ------------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` frames into ``out``'s leading rows; return how many.

        Rows past the returned count are left untouched (the caller zero-fills).
        """
        r = self._r
        w = self._w  # one snapshot of the producer's index
        n = min(len(out), w - r)
        if n <= 0:
            return 0
        cap = self.capacity
        start = r % cap
        first = min(n, cap - start)
        out[:first] = self._buf[start:start + first]
        if n > first:
            out[first:n] = self._buf[:n - first]
        self._r = r + n  # publish after the copy
        return n

    def skip(self, n: int) -> int:
        """Consumer: drop up to ``n`` frames without copying; return how many."""
        r = self._r
        n = max(0, min(int(n), self._w - r))
        self._r = r + n
        return n
