"""Native backend: the CUDA C kernels compiled for the CPU through kernels/host_shim.h.

The inlined kernel source is compiled once per (source, shim, flags, compiler) hash with
``g++ -O3 -fopenmp -ffp-contract=off -fno-math-errno -fno-trapping-math -shared -fPIC -x c++
-include host_shim.h -march=native`` into the user
cache directory (``$XDG_CACHE_HOME/gpusynth`` or ``~/.cache/gpusynth``; written to a temporary
name and renamed atomically, so parallel processes never load a half-written library), loaded
with ctypes, and each kernel runs as many blocks of one thread with OpenMP over the blocks.
The voice table is the kernel backend's record table in host memory (gpusynth.backend.
kernel_backend); the kernel gets its address. Each OpenMP thread mixes into its own int64 slice
of the output; the slices are summed (exact) and scaled to float32 in C (gs_reduce_out, one
parallel pass). A launch of many outputs (gpusynth.ensemble) runs one work item per output
instead (voice_render_outs): no per-thread copy of every output to sum. ``-ffp-contract=off`` keeps multiply-adds unfused even
where ``-march=native`` offers FMA, as numpy computes, so native and numpy agree to float32 rounding of
exp2/sin/cos/tan (see tests/test_native_vs_numpy.py).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from .. import _kernels as K
from .._kernels import BackendUnavailable
from ..voices import VOICE_DTYPE
from .kernel_backend import KernelBackend, int_args

__all__ = ["NativeBackend", "BackendUnavailable", "build_library", "build_helper", "find_compiler",
           "compiler_version", "cache_dir"]

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

_lock = threading.Lock()
_libs: dict = {}


def find_compiler() -> str | None:
    cxx = os.environ.get("CXX")
    if cxx and shutil.which(cxx):
        return shutil.which(cxx)
    for c in ("g++", "c++", "clang++"):
        p = shutil.which(c)
        if p:
            return p
    return None


_versions: dict = {}


def compiler_version(cxx: str | None = None) -> str | None:
    cxx = cxx or find_compiler()
    if cxx is None:
        return None
    if cxx not in _versions:
        try:
            r = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
            _versions[cxx] = (r.stdout.splitlines() or ["?"])[0].strip()
        except (OSError, subprocess.SubprocessError):
            _versions[cxx] = "?"
    return _versions[cxx]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = Path(base) / "gpusynth"
    try:
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    d = Path(tempfile.gettempdir()) / f"gpusynth-{os.getuid() if hasattr(os, 'getuid') else 0}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def cpu_id() -> str:
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines()
                     if ln.startswith(("model name", "flags", "Features", "CPU part"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        import platform
        return platform.machine() + platform.processor()


def build_library(flags=None, tag: str = "native") -> Path:
    """Compile the render kernels into a shared library (cached) and return its path.
    Default flags: BASE_FLAGS + NATIVE_ARCH, falling back to BASE_FLAGS if the compiler
    rejects -march=native. Raises BackendUnavailable (one line) when no compiler is found or
    compilation fails."""
    if flags is None:
        try:
            return build_library(BASE_FLAGS + NATIVE_ARCH, tag)
        except BackendUnavailable:
            flags = BASE_FLAGS
    cxx = find_compiler()
    if cxx is None:
        raise BackendUnavailable("native backend: no C++ compiler found (install g++ or set CXX)")
    flags = list(flags)
    dflags = K.define_flags(gpu=False)
    shim = K.shim_path()
    h = K.source_hash(K.shim_source(), cxx, compiler_version(cxx) or "", *flags, *dflags,
                      cpu_id() if "-march=native" in flags else "")[:20]
    d = cache_dir()
    out = d / f"{tag}-{h}.so"
    if out.is_file():
        return out
    fd, src_name = tempfile.mkstemp(prefix=f"{tag}-{h}-", suffix=".cu", dir=d)
    with os.fdopen(fd, "w") as fh:
        fh.write(K.source_for(*K.RENDER_SOURCES))
    tmp_so = src_name[:-3] + ".so.tmp"
    cmd = [cxx, *flags, "-include", str(shim), *dflags, src_name, "-o", tmp_so]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        raise BackendUnavailable(f"native backend: running {Path(cxx).name} failed: {e}") from None
    finally:
        try:
            os.unlink(src_name)
        except OSError:
            pass
    if r.returncode != 0 or not os.path.isfile(tmp_so):
        try:
            os.unlink(tmp_so)
        except OSError:
            pass
        err = (r.stderr or r.stdout).strip().splitlines()
        first = next((ln for ln in err if "error" in ln), err[0] if err else "?")
        exc = BackendUnavailable(f"native backend: kernel compilation failed: {first}")
        exc.compiler_output = r.stderr
        raise exc
    os.replace(tmp_so, out)        # atomic: a parallel build of the same hash is identical
    return out


def build_helper(source, tag: str, flags) -> Path:
    """Compile a small host helper (one C/C++ source: the SMF decoder, the steal loop, the
    effects) into a shared library in the cache directory, named by a hash of the source, the
    compiler and the flags; built under a temporary name and renamed, so parallel processes
    never load a half-written file. Returns its path; RuntimeError (one line) when no compiler
    is found or compilation fails."""
    source = Path(source)
    cxx = find_compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (install g++ or set CXX)")
    h = hashlib.sha256("\0".join([source.read_text(), cxx, compiler_version(cxx) or "",
                                  *flags]).encode()).hexdigest()[:20]
    d = cache_dir()
    out = d / f"{tag}-{h}.so"
    if out.is_file():
        return out
    fd, tmp = tempfile.mkstemp(prefix=f"{tag}-{h}-", suffix=".so.tmp", dir=d)
    os.close(fd)
    try:
        r = subprocess.run([cxx, *flags, str(source), "-o", tmp], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            err = (r.stderr or r.stdout).strip().splitlines()
            first = next((ln for ln in err if "error" in ln), err[0] if err else "?")
            raise RuntimeError(f"compiling {source.name} failed: {first}")
        os.replace(tmp, out)        # atomic: a parallel build of the same hash is identical
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _bind(lib):
    P, LL, I, F = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int, ctypes.c_float
    for fn in (lib.voice_render, lib.voice_render_fused):
        fn.argtypes = [P, LL, P, LL, P, I, LL, I, F, I, I, I, I, P]
        fn.restype = None
    lib.omp_get_max_threads.restype = ctypes.c_int
    for fn in (lib.voice_render_outs, lib.voice_render_fused_outs):
        fn.argtypes = [P, LL, P, LL, P, I, LL, I, F, I, I, I, I, P, P, P]
        fn.restype = None
    lib.gs_reduce_out.argtypes = [P, I, LL, I, P, P]
    lib.gs_reduce_out.restype = None
    return lib


def load_library(flags=None, tag: str = "native"):
    key = (tag, tuple(flags or ()))
    with _lock:
        lib = _libs.get(key)
        if lib is None:
            K.check_schema()
            path = build_library(flags, tag)
            # OpenMP workers must sleep between blocks, not spin: on a small machine spinning
            # threads starve the audio callback thread (underruns in `gpusynth play`)
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            try:
                lib = _bind(ctypes.CDLL(str(path)))
            except (OSError, AttributeError) as e:
                raise BackendUnavailable(f"native backend: cannot load {path.name}: {e}") from None
            _libs[key] = lib
        return lib


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
