"""Native backend: the CUDA C kernels compiled for the CPU through kernels/host_shim.h.

The kernels are a compiled helper (gpusynth.compiled.Helper, one per flag set:
``kernel_library``): kernels/voice_render.cu with its headers, kernels/host_shim.h
force-included and the constants as -D flags, built with ``g++ -O3 -fopenmp -ffp-contract=off
-fno-math-errno -fno-trapping-math -shared -fPIC -x c++ -march=native`` (without -march=native
when the compiler rejects it) into the user cache directory (``$XDG_CACHE_HOME/gpusynth`` or
``~/.cache/gpusynth``), named by a hash of the sources, headers, flags, compiler and CPU,
loaded with ctypes, and each kernel runs as many blocks of one thread with OpenMP over the blocks.
The voice table is the kernel backend's record table in host memory (gpusynth.backend.
kernel_backend); the kernel gets its address. Each OpenMP thread mixes into its own int64 slice
of the output; the slices are summed (exact) and scaled to float32 in C (gs_reduce_out, one
parallel pass). A launch of many outputs (gpusynth.ensemble) runs one work item per output
instead (voice_render_outs): no per-thread copy of every output to sum. ``-ffp-contract=off`` keeps multiply-adds unfused even
where ``-march=native`` offers FMA, as numpy computes, so native and numpy agree to float32 rounding of
exp2/sin/cos/tan (see tests/unit/backend/test_native_backend.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import _kernels as K
from ..compiled import (F32, I32, I64, PTR, BackendUnavailable, Helper, cache_dir,  # noqa: F401
                        compiler_version, cpu_id, find_compiler)
from ..voices import VOICE_DTYPE
from .kernel_backend import KernelBackend, int_args

__all__ = ["NativeBackend", "BackendUnavailable", "build_library", "load_library",
           "kernel_library", "find_compiler", "compiler_version", "cache_dir"]

# -fno-trapping-math: the compiler may compute a float expression whose result a select then
# drops (the envelope pass's per-lane step), so such loops vectorise; it changes no value
# (no reassociation, no contraction, no finite-math assumptions)
BASE_FLAGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
              "-shared", "-fPIC", "-x", "c++"]
# the lane passes of voice_render vectorise across voices (AVX2 / AVX-512 gathers and
# conversions); the library is built on and for this machine (the cache key includes the CPU)
NATIVE_ARCH = ["-march=native"]
SANITIZE_FLAGS = ["-O1", "-g", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-shared",
                  "-fPIC", "-x", "c++",
                  "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-fno-omit-frame-pointer"]

# every function the kernels' library exports (and the OpenMP call the runtime makes)
_KERNEL_ARGS = [PTR, I64, PTR, I64, PTR, I32, I64, I32, F32, I32, I32, I32, I32, PTR]
SIGNATURES = {
    "voice_render": (None, _KERNEL_ARGS),
    "voice_render_fused": (None, _KERNEL_ARGS),
    "voice_render_outs": (None, _KERNEL_ARGS + [PTR, PTR]),
    "voice_render_fused_outs": (None, _KERNEL_ARGS + [PTR, PTR]),
    "gs_reduce_out": (None, [PTR, I32, I64, I32, PTR, PTR]),
    "omp_get_max_threads": (I32, []),
}
_kernel_libs: dict = {}


def _kernel_helper(flags, tag: str) -> Helper:
    key = (tag, tuple(flags))
    h = _kernel_libs.get(key)
    if h is None:
        h = _kernel_libs.setdefault(key, Helper(
            tag, lambda: [K.kernel_dir() / nm for nm in K.RENDER_SOURCES],
            [*flags, *K.define_flags(gpu=False)], SIGNATURES,
            headers=lambda: [K.kernel_dir() / "common.cuh", K.kernel_dir() / "detmath.h"],
            include=lambda: [K.shim_path()],
            key=cpu_id if "-march=native" in flags else None, label="native backend"))
    return h


def kernel_library(flags=None, tag: str = "native") -> Helper:
    """The render kernels compiled for the CPU, as a compiled helper (one per flag set and tag).
    Default flags: BASE_FLAGS + NATIVE_ARCH, or BASE_FLAGS when the compiler rejects
    -march=native."""
    # OpenMP workers must sleep between blocks, not spin: on a small machine spinning threads
    # starve the audio callback thread (underruns in `gpusynth play`); set before libgomp loads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if flags is None:
        h = _kernel_helper(BASE_FLAGS + NATIVE_ARCH, tag)
        return h if h.available() else _kernel_helper(BASE_FLAGS, tag)
    return _kernel_helper(flags, tag)


def build_library(flags=None, tag: str = "native") -> Path:
    """Compile the render kernels into a shared library (cached) and return its path. Raises
    BackendUnavailable (one line) when no compiler is found or compilation fails."""
    return kernel_library(flags, tag).path()


def load_library(flags=None, tag: str = "native"):
    """The render kernels' library (ctypes, signatures bound), built first if needed. Raises
    BackendUnavailable (one line)."""
    K.check_schema()
    return kernel_library(flags, tag).load()


KERNELS = ("voice_render", "voice_render_fused")
_BUS_OFF = VOICE_DTYPE.fields["bus"][1]


def _bus_runs(table, n: int, n_out: int) -> bool:
    """Rows [0, n) of a raw table are in runs of one output per whole chunk, in output order
    (what voice_render_outs needs)."""
    bus = np.ascontiguousarray(table[:n, _BUS_OFF:_BUS_OFF + 4]).view(np.int32).ravel()
    bus = np.where((bus >= 0) & (bus < n_out), bus, 0)          # as gs_bus clamps
    head = bus[::K.CPU_CHUNK[0]]
    return bool(np.all(head[1:] >= head[:-1]) and np.all(bus == np.repeat(head, K.CPU_CHUNK[0])[:n]))


class NativeRuntime:
    """The kernels compiled for the CPU, called through ctypes on numpy arrays. ``kernel``:
    voice_render (the lane passes, default) or voice_render_fused (the GPU's formulation)."""
    name = "native"
    xp = np
    scales_output = True      # launch(scale=...) returns the float32 output (gs_reduce_out)

    def __init__(self, flags=None, tag: str = "native", kernel: str = "voice_render"):
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
        self.lib = load_library(flags, tag)
        self.fn = getattr(self.lib, kernel)
        self.fn_outs = getattr(self.lib, kernel + "_outs")

    @staticmethod
    def to_host(a):
        return a

    # voices per work item: each output's voices are padded to a multiple of it (ensemble)
    bus_align = K.CPU_CHUNK[0]

    def launch(self, be, n_active, t0, n_ticks, chin, sends, nf, nbus, n_out=1, scale=None):
        """Run the kernel. Returns the int64 mix [n_out][nf][nbus] (without ``n_out`` > 1:
        [nf][nbus]); with ``scale`` (float64 per bus), the float32 output already scaled
        (gs_reduce_out: the threads' slices summed and converted in parallel, one pass)."""
        nt = max(1, int(self.lib.omp_get_max_threads()))
        if scale is not None and n_out > 1 and _bus_runs(be.table, n_active, n_out):
            return self._launch_outs(be, n_active, t0, n_ticks, chin, sends, nf, nbus, n_out,
                                     scale, nt)
        out = self._zeroed(nt * n_out * nf * nbus).reshape(nt, n_out, nf, nbus)
        n, plen, nch, t0_, nt_, rate, fade, cubic, snd = int_args(be, n_active, t0, n_ticks, chin, sends)
        self.fn(be.table.ctypes.data, n, be.pool.ctypes.data, plen, chin.ctypes.data,
                nch, t0_, nt_, rate, fade, cubic, snd, int(n_out), out.ctypes.data)
        if scale is not None:
            dst = np.empty((n_out, nf, nbus), np.float32)
            sc = np.ascontiguousarray(scale, np.float64)
            self.lib.gs_reduce_out(out.ctypes.data, nt, n_out * nf, nbus, sc.ctypes.data,
                                   dst.ctypes.data)
            return dst if n_out > 1 else dst[0]
        res = out.sum(axis=0) if nt > 1 else out[0].copy()
        out[:] = 0
        return res if n_out > 1 else res[0]


    def _zeroed(self, n: int) -> np.ndarray:
        """The first n int64 of the kernel's accumulator buffer: allocated once (grown when
        needed), zero on entry, and left zeroed by every launch (gs_reduce_out, the per-output
        kernel, or the numpy sum below)."""
        acc = getattr(self, "_acc", None)
        if acc is None or len(acc) < n:
            acc = self._acc = np.zeros(n, np.int64)
        return acc[:n]

    def _launch_outs(self, be, n_active, t0, n_ticks, chin, sends, nf, nbus, n_out, scale, nt):
        # one work item per output (voice_render_outs): the table is sorted by bus, each
        # output's run padded to whole chunks (bus_align), as gpusynth.ensemble lays it out
        acc = self._zeroed(nt * nf * nbus)
        dst = np.empty((n_out, nf, nbus), np.float32)
        sc = np.ascontiguousarray(scale, np.float64)
        n, plen, nch, t0_, nt_, rate, fade, cubic, snd = int_args(be, n_active, t0, n_ticks, chin, sends)
        self.fn_outs(be.table.ctypes.data, n, be.pool.ctypes.data, plen, chin.ctypes.data,
                     nch, t0_, nt_, rate, fade, cubic, snd, int(n_out), acc.ctypes.data,
                     dst.ctypes.data, sc.ctypes.data)
        return dst


class NativeBackend(KernelBackend):
    def __init__(self, sample_rate: int, capacity: int = 1024, interp: str = "cubic",
                 flags=None, tag: str = "native", kernel: str = "voice_render"):
        super().__init__(sample_rate, capacity, interp, NativeRuntime(flags, tag, kernel))
