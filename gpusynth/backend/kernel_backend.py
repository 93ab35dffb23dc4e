"""One kernel backend for native (CPU) and CuPy (GPU): the same voice table, the same kernel
source (kernels/voice_render.cu), the same host code; parameterised by a runtime that supplies
the array module (numpy or cupy), the memory layout of the output and the kernel launcher.

The voice table is one byte array [capacity, VOICE_DTYPE.itemsize] (CuPy has no record
dtypes): ``add_voices`` is one upload and one row scatter, ``set_times`` one small upload of
(release, kill) pairs, ``move`` one row gather/scatter on the device. Per window the host
uploads the channel inputs and copies back two things: the mixed window and the done flags of
the active slots.
"""
from __future__ import annotations

import numpy as np

from .. import _kernels as K
from ..voices import VOICE_DTYPE, TICK
from .base import check_chin
from ..constants import bus_scales, fade_frames

ITEM = VOICE_DTYPE.itemsize
DONE_OFF = VOICE_DTYPE.fields["done"][1]
TIME_COLS = (VOICE_DTYPE.fields["release"][1] // 8, VOICE_DTYPE.fields["kill"][1] // 8)
POOL_COLS = (VOICE_DTYPE.fields["pstart"][1] // 8, VOICE_DTYPE.fields["ipos"][1] // 8)
assert ITEM % 8 == 0 and TIME_COLS[1] == TIME_COLS[0] + 1
assert [VOICE_DTYPE.fields[f][1] // 8 for f in ("pstart", "pend", "lstart", "lend", "ipos")] \
    == list(range(POOL_COLS[0], POOL_COLS[1] + 1))


class KernelBackend:
    """Backend protocol (gpusynth.backend.base.Backend) over a kernel runtime."""

    def __init__(self, sample_rate: int, capacity: int, interp: str, runtime):
        if interp not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be 'linear' or 'cubic', not {interp!r}")
        self.rt = runtime
        self.xp = runtime.xp
        self.name = runtime.name
        self.rate = int(sample_rate)
        self.interp = interp
        self.fade = fade_frames(self.rate)
        self.capacity = 0
        self.table = self.xp.zeros((0, ITEM), self.xp.uint8)
        self.pool = self.xp.zeros(1, self.xp.float32)
        self.ensure_capacity(max(16, capacity))

    # ---- voice table --------------------------------------------------------------------
    def ensure_capacity(self, n: int):
        if n <= self.capacity:
            return
        cap = max(int(n), self.capacity * 2)
        t = self.xp.zeros((cap, ITEM), self.xp.uint8)
        t[:self.capacity] = self.table
        self.table = t
        self.capacity = cap

    def upload_pool(self, pool: np.ndarray):
        p = np.ascontiguousarray(pool, dtype=np.float32).ravel()
        self.pool = self.xp.asarray(p if len(p) else np.zeros(1, np.float32))

    def _idx(self, slots):
        return self.xp.asarray(np.asarray(slots, dtype=np.int64))

    def add_voices(self, slots, records):
        rec = np.ascontiguousarray(records, dtype=VOICE_DTYPE)
        if len(rec):
            self.table[self._idx(slots)] = self.xp.asarray(rec.view(np.uint8).reshape(len(rec), ITEM))

    def set_times(self, slots, release, kill):
        if len(slots):
            times = np.stack([np.asarray(release, np.int64), np.asarray(kill, np.int64)], axis=1)
            t64 = self.table.view(self.xp.int64)
            t64[self._idx(slots), TIME_COLS[0]:TIME_COLS[1] + 1] = self.xp.asarray(times)

    def move(self, src, dst):
        if len(src):
            self.table[self._idx(dst)] = self.table[self._idx(src)]   # gather, then scatter

    def shift_pool(self, n_active, delta):
        if n_active:
            t64 = self.table.view(self.xp.int64)
            t64[:n_active, POOL_COLS[0]:POOL_COLS[1] + 1] += delta

    def read_table(self, slots) -> np.ndarray:
        rows = self.table[slots] if isinstance(slots, slice) else self.table[self._idx(slots)]
        return np.ascontiguousarray(self.rt.to_host(rows)).view(VOICE_DTYPE).reshape(-1)

    # ---- render -----------------------------------------------------------------------------
    @property
    def bus_align(self) -> int:
        """Voices per kernel work item: the voices of one output (``n_out``) must stay together
        in runs padded to a multiple of this (gpusynth.ensemble)."""
        return int(self.rt.bus_align)

    def render(self, n_active: int, t0: int, n_ticks: int, chin: np.ndarray, sends: bool = False,
               n_out: int = 1):
        """Render n_ticks ticks of voices [0, n_active). Returns (float32 [frames, buses], the
        finished slots); with ``n_out`` > 1, float32 [n_out, frames, buses], each voice mixed
        into output ``bus`` (its field)."""
        n_active, n_ticks, n_out = int(n_active), int(n_ticks), int(n_out)
        nbus = 4 if sends else 2
        nf = n_ticks * TICK
        shape = (n_out, nf, nbus) if n_out > 1 else (nf, nbus)
        if n_active == 0 or n_ticks == 0:
            return np.zeros(shape, np.float32), np.zeros(0, np.int64)
        chin = check_chin(chin, n_ticks)
        if getattr(self.rt, "scales_output", False):     # native: summed and scaled in C
            out = self.rt.launch(self, n_active, int(t0), n_ticks, chin, bool(sends), nf, nbus,
                                 n_out, scale=bus_scales(nbus))
        else:
            acc = self.rt.launch(self, n_active, int(t0), n_ticks, chin, bool(sends), nf, nbus, n_out)
            scale = self.xp.asarray(bus_scales(nbus))
            out = self.rt.to_host((acc.astype(self.xp.float64) * scale).astype(self.xp.float32))
        done = self.rt.to_host(self.table[:n_active, DONE_OFF])
        return out, np.flatnonzero(done).astype(np.int64)

    def load_rows(self, records: np.ndarray):
        """Replace slots [0, len(records)) with ``records`` (VOICE_DTYPE): one upload."""
        rec = np.ascontiguousarray(records, dtype=VOICE_DTYPE)
        self.ensure_capacity(len(rec))
        if len(rec):
            self.table[:len(rec)] = self.xp.asarray(rec.view(np.uint8).reshape(len(rec), ITEM))


def int_args(be, n_active, t0, n_ticks, chin, sends):
    """The scalar arguments of voice_render after the pointers, in order."""
    return (n_active, len(be.pool), chin.shape[2], t0, n_ticks, float(be.rate), be.fade,
            1 if be.interp == "cubic" else 0, 1 if sends else 0)


__all__ = ["KernelBackend", "ITEM", "DONE_OFF", "K"]
