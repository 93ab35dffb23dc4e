"""CuPy backend: kernels/voice_render.cu on a CUDA GPU through ``cupy.RawModule``.

The backend itself is gpusynth.backend.kernel_backend.KernelBackend (shared with the native
backend); this module supplies the CuPy runtime: compilation (NVRTC, once per device per
process), the launcher, and device -> host copies. Per window the host uploads the new voice
records, the (release, kill) updates and the channel inputs, and copies back two things: the
mixed window and the done flags of the active slots (two synchronisations).

Kernels (``kernel=`` or ``$GPUSYNTH_CUPY_KERNEL``): ``fused`` (default) is the portable
``voice_render_fused`` (the same source the native build compiles; a thread per
gpusynth._kernels.GPU_CHUNK voices, int64 atomics per thread, frame, bus and tick); ``smem`` is
the GPU-only fast path ``voice_render_smem`` (a thread per voice, each tick reduced across the
block on chip before one atomic per block, frame and bus); ``lanes`` is the CPU's
``voice_render``. All mix in int64 fixed point, so they give the same output bit for bit, and
the native backend's up to the GPU's sinf/cosf/tanf rounding (tests/unit/backend/test_cupy_backend.py). None has run
on a GPU yet; once bench/gpu-check.sh has shown ``smem`` equal and faster, it should become the
default. cupy is imported lazily: without it, or without a device, constructing the backend
raises BackendUnavailable with a one-line reason.
"""
from __future__ import annotations

import os

import numpy as np

from .. import _kernels as K
from .._kernels import BackendUnavailable
from .kernel_backend import KernelBackend, int_args

__all__ = ["CupyBackend", "BackendUnavailable", "import_cupy", "compile_module", "KERNELS"]

THREADS = 128
# no fused multiply-adds: the same rounding as the native build (-ffp-contract=off) and numpy
NVRTC_OPTIONS = ("--fmad=false", "-std=c++11")
KERNELS = {"fused": "voice_render_fused", "smem": "voice_render_smem", "lanes": "voice_render"}
KERNEL_ENV = "GPUSYNTH_CUPY_KERNEL"

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
    """The render module (voice_render.cu), compiled once per device per process."""
    cp = import_cupy()
    dev = cp.cuda.runtime.getDevice()
    key = (dev, fmad)
    mod = _modules.get(key)
    if mod is None:
        K.check_schema()
        opts = tuple(K.define_flags(gpu=True)) + (
            NVRTC_OPTIONS if not fmad else tuple(o for o in NVRTC_OPTIONS if "fmad" not in o))
        try:
            mod = cp.RawModule(code=K.source_for(*K.RENDER_SOURCES), options=opts)
            for nm in KERNELS.values():
                mod.get_function(nm)        # compile now, not in the middle of a render
        except Exception as e:
            msg = str(e).strip().splitlines()
            raise BackendUnavailable("cupy backend: kernel compilation failed: "
                                     + (msg[0] if msg else type(e).__name__)) from None
        _modules[key] = mod
    return mod


def _grid(n: int) -> tuple:
    return (int(max(1, min(-(-n // THREADS), 1 << 20))),)


class CupyRuntime:
    name = "cupy"

    def __init__(self, fmad: bool = False, kernel: str | None = None):
        kernel = kernel or os.environ.get(KERNEL_ENV) or "fused"
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
        self.xp = self.cp = import_cupy()
        self.mod = compile_module(fmad)
        self.kernel_key = kernel
        self.kernel_name = KERNELS[kernel]
        self.kernel = self.mod.get_function(self.kernel_name)

    def to_host(self, a):
        return self.cp.asnumpy(a)

    @property
    def bus_align(self):
        return K.GPU_CHUNK[0]

    def launch(self, be, n_active, t0, n_ticks, chin, sends, nf, nbus, n_out=1):
        cp = self.cp
        out = cp.zeros((n_out, nf, nbus) if n_out > 1 else (nf, nbus), cp.int64)
        chin_d = cp.asarray(chin)
        n, plen, nch, t0_, nt_, rate, fade, cubic, snd = int_args(be, n_active, t0, n_ticks, chin, sends)
        i64, i32 = np.int64, np.int32
        per_thread = 1 if self.kernel_key == "smem" else K.GPU_CHUNK[0]
        self.kernel(_grid(-(-n // per_thread)), (THREADS,),
                    (be.table, i64(n), be.pool, i64(plen), chin_d, i32(nch), i64(t0_), i32(nt_),
                     np.float32(rate), i32(fade), i32(cubic), i32(snd), i32(n_out), out))
        return out


class CupyBackend(KernelBackend):
    def __init__(self, sample_rate: int, capacity: int = 1024, interp: str = "cubic",
                 fmad: bool = False, kernel: str | None = None):
        super().__init__(sample_rate, capacity, interp, CupyRuntime(fmad, kernel))
