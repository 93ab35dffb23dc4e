"""The backend protocol, and the host-memory voice table of the numpy reference backend.

A backend only renders. The host (gpusynth.allocator) owns every control decision and sends:
  add_voices(slots, records)     new voices, one packed VOICE_DTYPE record array (one upload)
  set_times(slots, release, kill) note-off / steal / cut times (one small upload)
  move(src, dst)                 compaction of finished slots (on the device)
  shift_pool(n, delta)           sample indices of voices [0, n) move by delta (pool compaction)
  render(n_active, t0, n_ticks, chin, sends) -> (audio float32 [n_ticks*64, 2 or 4],
                                                 finished slots int64)
Nothing the host already knows is read back; ``read_table`` exists for tests and debugging.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..voices import VOICE_DTYPE, CHANNEL_INPUTS


@runtime_checkable
class Backend(Protocol):
    name: str
    rate: int
    interp: str
    capacity: int

    def upload_pool(self, pool: np.ndarray) -> None: ...

    def ensure_capacity(self, n: int) -> None: ...

    def add_voices(self, slots: np.ndarray, records: np.ndarray) -> None: ...

    def set_times(self, slots: np.ndarray, release: np.ndarray, kill: np.ndarray) -> None: ...

    def move(self, src: np.ndarray, dst: np.ndarray) -> None: ...

    def shift_pool(self, n_active: int, delta: int) -> None: ...

    def render(self, n_active: int, t0: int, n_ticks: int, chin: np.ndarray,
               sends: bool = False) -> tuple[np.ndarray, np.ndarray]: ...

    def read_table(self, slots) -> np.ndarray: ...


class HostVoiceTable:
    """The voice table as one numpy record array (VOICE_DTYPE) in host memory."""

    capacity = 0

    def _init_table(self, capacity: int):
        self.capacity = 0
        self.table = np.zeros(0, VOICE_DTYPE)
        self.ensure_capacity(max(16, capacity))

    def _table_resized(self):
        """Hook: called after the table was reallocated."""

    def ensure_capacity(self, n: int):
        if n <= self.capacity:
            return
        cap = max(int(n), self.capacity * 2)
        t = np.zeros(cap, VOICE_DTYPE)
        t[:self.capacity] = self.table
        self.table = t
        self.capacity = cap
        self._table_resized()

    def add_voices(self, slots, records):
        self.table[np.asarray(slots, np.int64)] = records

    def set_times(self, slots, release, kill):
        slots = np.asarray(slots, np.int64)
        self.table["release"][slots] = release
        self.table["kill"][slots] = kill

    def move(self, src, dst):
        if len(src):
            self.table[np.asarray(dst, np.int64)] = self.table[np.asarray(src, np.int64)]

    def shift_pool(self, n_active, delta):
        for f in ("pstart", "pend", "lstart", "lend", "ipos"):
            self.table[f][:n_active] += delta

    def read_table(self, slots) -> np.ndarray:
        return self.table[slots].copy()


def check_chin(chin: np.ndarray, n_ticks: int) -> np.ndarray:
    """Channel inputs as one contiguous float32 array [len(CHANNEL_INPUTS), n_ticks, channels]
    (at least one channel), in CHANNEL_INPUTS order, as the kernels index them."""
    chin = np.ascontiguousarray(chin, dtype=np.float32)
    if chin.ndim != 3 or chin.shape[0] != len(CHANNEL_INPUTS) or chin.shape[1] != n_ticks:
        raise ValueError(f"channel inputs must be float32 [{len(CHANNEL_INPUTS)}, {n_ticks}, "
                         f"channels], not {chin.shape}")
    if chin.shape[2] == 0:
        chin = np.zeros((len(CHANNEL_INPUTS), n_ticks, 1), np.float32)
    return chin
