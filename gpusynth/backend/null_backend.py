"""The null backend: the backend protocol (base.py) without synthesis, for the control path
alone (``gpusynth analyze``, gpusynth/analyze.py).

It keeps no voice table and no sample pool: uploads, moves and pool shifts are accepted and
dropped, and ``render`` returns silence (float32 zeros [n_ticks*64, 4 if sends else 2]) with
EVERY active slot 0..n_active-1 as finished. That gives the same removals as a real render:
the allocator (VoiceAllocator.remove with the window end) drops a finished slot only once its
closed-form end is at or before the end of the window, and a real backend never finishes a
voice before then either, so every control decision (allocation, stealing, the per-key cap,
note lengths, peak polyphony) is the one a real render takes. Only the audio is missing.

Never chosen by ``auto`` and not one of ``BACKENDS`` (it renders nothing): ask for it by name,
``Synth(backend="null")``.
"""
from __future__ import annotations

import numpy as np

from ..voices import TICK


class NullBackend:
    name = "null"

    def __init__(self, rate: int, capacity: int = 16, interp: str = "cubic"):
        self.rate = int(rate)
        self.interp = interp
        self.capacity = max(16, int(capacity))
        self.pool_samples = 0

    def upload_pool(self, pool: np.ndarray) -> None:
        self.pool_samples = int(len(pool))

    def ensure_capacity(self, n: int) -> None:
        if n > self.capacity:
            self.capacity = max(int(n), 2 * self.capacity)

    def add_voices(self, slots, records) -> None:
        pass

    def set_times(self, slots, release, kill) -> None:
        pass

    def move(self, src, dst) -> None:
        pass

    def shift_pool(self, n_active: int, delta: int) -> None:
        pass

    def render(self, n_active: int, t0: int, n_ticks: int, chin: np.ndarray,
               sends: bool = False, n_out: int = 1):
        """Silence for n_ticks ticks, and every active slot as finished (see the module)."""
        nbus = 4 if sends else 2
        n_out = int(n_out)
        shape = (n_out, int(n_ticks) * TICK, nbus) if n_out > 1 else (int(n_ticks) * TICK, nbus)
        return np.zeros(shape, np.float32), np.arange(int(n_active), dtype=np.int64)

    def read_table(self, slots) -> np.ndarray:
        raise NotImplementedError("the null backend keeps no voice table (it renders nothing)")
