"""CuPy backend: the kernels of kernels/*.cu on a CUDA GPU through ``cupy.RawModule``.

The voice table lives on the device as one CuPy array per field (structure of arrays) plus a
device array of their addresses that the kernels index (VF_* constants). The host sends only the
fields it changes (``write`` and ``move`` are device scatters), uploads the channel inputs once
per block, and copies back exactly two things per block: the mixed block (frames x 4 float32)
and the finished-voice mask of the active slots. ``read(name, slots)`` copies just those slots.

Voices are rendered in groups whose scratch stays within SCRATCH_BYTES (a multiple of the mix
chunk, so the fixed-order mix is unchanged); slot indices are int64 throughout, so tables of
4,000,000+ voices work. cupy is imported lazily: without it, or without a device, constructing
the backend raises BackendUnavailable with a one-line reason.
"""
from __future__ import annotations

import numpy as np

from .. import _kernels as K
from .._kernels import BackendUnavailable
from ..voices import VOICE_DTYPES, TICK
from .base import stack_channel_inputs
from .numpy_backend import fade_frames

__all__ = ["CupyBackend", "BackendUnavailable", "import_cupy", "compile_module"]

THREADS = 128
SCRATCH_BYTES = 1 << 30
# no fused multiply-adds: the same rounding as the native build (-ffp-contract=off) and numpy
NVRTC_OPTIONS = ("--fmad=false", "-std=c++11")

_modules: dict = {}


def import_cupy():
    try:
        import cupy
    except Exception as e:   # ImportError, or a CUDA library that fails to load
        raise BackendUnavailable(f"cupy backend: cupy is not importable ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''})") from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        raise BackendUnavailable(f"cupy backend: no CUDA device ({str(e).splitlines()[0]})") from None
    if n < 1:
        raise BackendUnavailable("cupy backend: no CUDA device")
    return cupy


def compile_module(fmad: bool = False):
    """The render module (voice_render.cu + mix.cu), compiled once per device per process."""
    cp = import_cupy()
    dev = cp.cuda.runtime.getDevice()
    key = (dev, fmad)
    mod = _modules.get(key)
    if mod is None:
        K.check_schema()
        opts = tuple(K.define_flags(frame_major=True)) + (
            NVRTC_OPTIONS if not fmad else tuple(o for o in NVRTC_OPTIONS if "fmad" not in o))
        try:
            mod = cp.RawModule(code=K.source_for(*K.RENDER_SOURCES), options=opts)
            for nm in ("voice_render", "mix_partial", "mix_final"):
                mod.get_function(nm)        # compile now, not in the middle of a render
        except Exception as e:
            msg = str(e).strip().splitlines()
            raise BackendUnavailable("cupy backend: kernel compilation failed: "
                                     + (msg[0] if msg else type(e).__name__)) from None
        _modules[key] = mod
    return mod


def _grid(n: int) -> tuple:
    return (int(max(1, min(-(-n // THREADS), 1 << 20))),)


class CupyBackend:
    name = "cupy"

    def __init__(self, sample_rate: int, capacity: int = 1024, interp: str = "cubic",
                 fmad: bool = False):
        if interp not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be 'linear' or 'cubic', not {interp!r}")
        self.cp = import_cupy()
        self.mod = compile_module(fmad)
        self.k_voice = self.mod.get_function("voice_render")
        self.k_mix_partial = self.mod.get_function("mix_partial")
        self.k_mix_final = self.mod.get_function("mix_final")
        self.rate = int(sample_rate)
        self.interp = interp
        self.fade = fade_frames(self.rate)
        self.capacity = 0
        self.f: dict = {}
        self._tab = None
        self.pool = self.cp.zeros(64, self.cp.float32)
        self._scratch = None
        self._partial = None
        self.ensure_capacity(max(16, capacity))

    # ---- voice table --------------------------------------------------------------------------
    def ensure_capacity(self, n: int):
        if n <= self.capacity:
            return
        cp = self.cp
        cap = max(int(n), self.capacity * 2)
        for nm, dt in VOICE_DTYPES.items():
            a = cp.zeros(cap, dt)
            if self.capacity:
                a[:self.capacity] = self.f[nm]
            self.f[nm] = a
        self.capacity = cap
        self._tab = cp.asarray(np.array([self.f[nm].data.ptr for nm in VOICE_DTYPES], np.uint64))

    def upload_pool(self, pool: np.ndarray):
        p = np.ascontiguousarray(pool, dtype=np.float32).ravel()
        self.pool = self.cp.asarray(p if len(p) else np.zeros(1, np.float32))

    def _idx(self, slots):
        if isinstance(slots, slice):
            return slots
        return self.cp.asarray(np.asarray(slots, dtype=np.int64))

    def write(self, slots, fields: dict):
        if not fields:
            return
        idx = self._idx(slots)
        for nm, v in fields.items():
            a = self.f[nm]
            if np.ndim(v) == 0:
                a[idx] = np.asarray(v, a.dtype)[()]
            else:
                a[idx] = self.cp.asarray(np.asarray(v, dtype=a.dtype))

    def read(self, name: str, slots) -> np.ndarray:
        return self.cp.asnumpy(self.f[name][self._idx(slots)])

    def move(self, src, dst):
        if len(src):
            s, d = self._idx(src), self._idx(dst)
            for a in self.f.values():
                a[d] = a[s]          # gather first, then scatter: overlap-safe like numpy

    # ---- render --------------------------------------------------------------------------
    def _buffers(self, n_scratch: int, n_partial: int):
        cp = self.cp
        if self._scratch is None or self._scratch.size < n_scratch:
            self._scratch = cp.empty(n_scratch, cp.float32)
        if self._partial is None or self._partial.size < n_partial:
            self._partial = cp.empty(n_partial, cp.float64)
        return self._scratch[:n_scratch], self._partial[:n_partial]

    def render(self, n_active: int, block_start: int, n_ticks: int, chan_in: dict):
        cp = self.cp
        n_active, n_ticks = int(n_active), int(n_ticks)
        nf = n_ticks * TICK
        if n_active == 0 or n_ticks == 0:
            return np.zeros((nf, 4), np.float32), np.zeros(0, np.int64)
        chin = stack_channel_inputs(chan_in, n_ticks)
        n_chan = chin.shape[2]
        chin_d = cp.asarray(chin)
        chunk = K.MIX_CHUNK
        per_voice = 2 * nf + 2 * n_ticks
        group = max(chunk, (SCRATCH_BYTES // 4 // per_voice) // chunk * chunk)
        group = min(group, -(-n_active // chunk) * chunk)
        n_chunks = -(-n_active // chunk)
        scratch, partial = self._buffers(group * per_voice, n_chunks * nf * 4)
        out = cp.empty((nf, 4), cp.float32)
        cubic = np.int32(1 if self.interp == "cubic" else 0)
        i64, i32 = np.int64, np.int32
        for v0 in range(0, n_active, group):
            nv = min(group, n_active - v0)
            yl = scratch[:nv * nf]
            yr = scratch[nv * nf:2 * nv * nf]
            sends = scratch[2 * nv * nf:2 * nv * nf + 2 * n_ticks * nv]
            self.k_voice(_grid(nv), (THREADS,),
                         (self._tab, self.pool, i64(self.pool.size), chin_d, i32(n_chan),
                          i64(v0), i64(nv), i64(block_start), i32(n_ticks),
                          np.float64(self.rate), i32(self.fade), cubic, yl, yr, sends))
            n_items = -(-nv // chunk) * nf
            self.k_mix_partial(_grid(n_items), (THREADS,),
                               (yl, yr, sends, i64(nv), i32(n_ticks), i64(v0 // chunk), partial))
        self.k_mix_final(_grid(nf * 4), (THREADS,), (partial, i64(n_chunks), i32(n_ticks), out))
        done = self.f["done"][:n_active]
        out_h = cp.asnumpy(out)                       # one copy of the block
        finished = np.flatnonzero(cp.asnumpy(done)).astype(np.int64)   # one copy of the mask
        return out_h, finished
