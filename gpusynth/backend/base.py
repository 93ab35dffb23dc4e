"""The backend protocol, and the host-memory voice table the numpy and native backends share.

A backend renders the dense voice table [0, n_active) for a block of control ticks:
  name; ensure_capacity(n); upload_pool(pool float32); write(slots, {field: values});
  read(field, slots) -> np.ndarray; move(src, dst);
  render(n_active, block_start, n_ticks, chan_in) -> (out float32 [n_ticks*64, 4], finished slots)
"""
from __future__ import annotations

import numpy as np

from ..voices import VOICE_DTYPES


class HostVoiceTable:
    """One numpy array per VOICE_FIELDS entry (structure of arrays) in host memory."""

    capacity = 0

    def _init_table(self, capacity: int):
        self.capacity = 0
        self.f = {}
        self.ensure_capacity(max(16, capacity))

    def _table_resized(self):
        """Hook: called after the arrays were reallocated."""

    def ensure_capacity(self, n: int):
        if n <= self.capacity:
            return
        cap = max(n, self.capacity * 2)
        for nm, dt in VOICE_DTYPES.items():
            a = np.zeros(cap, dt)
            if self.capacity:
                a[:self.capacity] = self.f[nm]
            self.f[nm] = a
        self.capacity = cap
        self._table_resized()

    def write(self, slots, fields: dict):
        for nm, v in fields.items():
            self.f[nm][slots] = v

    def read(self, name: str, slots) -> np.ndarray:
        return self.f[name][slots].copy()

    def move(self, src: np.ndarray, dst: np.ndarray):
        if len(src):
            for a in self.f.values():
                a[dst] = a[src]


def stack_channel_inputs(chan_in: dict, n_ticks: int) -> np.ndarray:
    """Channel inputs as one contiguous float32 array [len(CHANNEL_INPUTS), n_ticks, channels]
    (at least one channel), in CHANNEL_INPUTS order, as the kernels index them."""
    from ..voices import CHANNEL_INPUTS
    chin = np.ascontiguousarray(
        np.stack([np.asarray(chan_in[k], np.float32).reshape(n_ticks, -1) for k in CHANNEL_INPUTS]),
        dtype=np.float32)
    if chin.shape[2] == 0:
        chin = np.zeros((len(CHANNEL_INPUTS), n_ticks, 1), np.float32)
    return chin
