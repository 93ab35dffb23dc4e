"""Native backend: the CUDA C kernels compiled for the CPU through kernels/host_shim.h.

The inlined kernel source is compiled once per (source, shim, flags, compiler) hash with
``g++ -O3 -fopenmp -ffp-contract=off -shared -fPIC -x c++ -include host_shim.h`` into the user
cache directory (``$XDG_CACHE_HOME/gpusynth`` or ``~/.cache/gpusynth``; written to a temporary
name and renamed atomically, so parallel processes never load a half-written library), loaded
with ctypes, and each kernel runs as many blocks of one thread with OpenMP over the blocks.
The voice table stays a set of numpy arrays (one per field); the kernels get a table of their
addresses. ``-ffp-contract=off`` (and no ``-march=native``) keeps multiply-adds unfused, which
gives near bit-equality with the numpy reference.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from .. import _kernels as K
from .._kernels import BackendUnavailable
from ..voices import VOICE_DTYPES, TICK
from .base import HostVoiceTable, stack_channel_inputs
from .numpy_backend import fade_frames

__all__ = ["NativeBackend", "BackendUnavailable", "build_library", "find_compiler",
           "compiler_version", "cache_dir"]

BASE_FLAGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-shared", "-fPIC", "-x", "c++"]
SANITIZE_FLAGS = ["-O1", "-g", "-fopenmp", "-ffp-contract=off", "-shared", "-fPIC", "-x", "c++",
                  "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-fno-omit-frame-pointer"]
# scratch per render group: voices x frames x 2 float32 (plus sends), bounded to keep memory flat
SCRATCH_FLOATS = 1 << 25

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


def build_library(flags=None, tag: str = "native", frame_major: bool = False) -> Path:
    """Compile the render kernels into a shared library (cached) and return its path.
    Raises BackendUnavailable (one line) when no compiler is found or compilation fails."""
    cxx = find_compiler()
    if cxx is None:
        raise BackendUnavailable("native backend: no C++ compiler found (install g++ or set CXX)")
    flags = list(BASE_FLAGS if flags is None else flags)
    dflags = K.define_flags(frame_major=frame_major)
    shim = K.shim_path()
    h = K.source_hash(K.shim_source(), cxx, compiler_version(cxx) or "", *flags, *dflags)[:20]
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


def _bind(lib):
    P, LL, I, D = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int, ctypes.c_double
    lib.voice_render.argtypes = [P, P, LL, P, I, LL, LL, LL, I, D, I, I, P, P, P]
    lib.voice_render.restype = None
    lib.mix_partial.argtypes = [P, P, P, LL, I, LL, P]
    lib.mix_partial.restype = None
    lib.mix_final.argtypes = [P, LL, I, P]
    lib.mix_final.restype = None
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
            except OSError as e:
                raise BackendUnavailable(f"native backend: cannot load {path.name}: {e}") from None
            _libs[key] = lib
        return lib


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class NativeBackend(HostVoiceTable):
    name = "native"

    def __init__(self, sample_rate: int, capacity: int = 1024, interp: str = "cubic"):
        if interp not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be 'linear' or 'cubic', not {interp!r}")
        self.lib = load_library()
        self.rate = int(sample_rate)
        self.interp = interp
        self.fade = fade_frames(self.rate)
        self._tab = None
        self.pool = np.zeros(64, np.float32)
        self._scratch = np.zeros(0, np.float32)
        self._init_table(capacity)

    def _table_resized(self):
        self._tab = np.array([_ptr(self.f[nm]) for nm in VOICE_DTYPES], dtype=np.uint64)

    def upload_pool(self, pool: np.ndarray):
        p = np.ascontiguousarray(pool, dtype=np.float32).ravel()
        self.pool = p if len(p) else np.zeros(1, np.float32)

    # ---- render --------------------------------------------------------------------------
    def _scratch_for(self, n: int) -> np.ndarray:
        if len(self._scratch) < n:
            self._scratch = np.empty(n, np.float32)
        return self._scratch[:n]

    def render(self, n_active: int, block_start: int, n_ticks: int, chan_in: dict):
        n_active, n_ticks = int(n_active), int(n_ticks)
        nf = n_ticks * TICK
        out = np.zeros((nf, 4), np.float32)
        if n_active == 0 or n_ticks == 0:
            return out, np.zeros(0, np.int64)
        chin = stack_channel_inputs(chan_in, n_ticks)
        n_chan = chin.shape[2]
        chunk = K.MIX_CHUNK
        group = max(chunk, (SCRATCH_FLOATS // (2 * nf + 2 * n_ticks)) // chunk * chunk)
        n_chunks = -(-n_active // chunk)
        partial = np.empty((n_chunks, nf, 4), np.float64)
        cubic = 1 if self.interp == "cubic" else 0
        lib = self.lib
        for v0 in range(0, n_active, group):
            nv = min(group, n_active - v0)
            buf = self._scratch_for(2 * nv * nf + 2 * n_ticks * nv)
            yl, yr, sends = buf[:nv * nf], buf[nv * nf:2 * nv * nf], buf[2 * nv * nf:]
            lib.voice_render(_ptr(self._tab), _ptr(self.pool), len(self.pool), _ptr(chin), n_chan,
                             v0, nv, int(block_start), n_ticks, float(self.rate), self.fade, cubic,
                             _ptr(yl), _ptr(yr), _ptr(sends))
            lib.mix_partial(_ptr(yl), _ptr(yr), _ptr(sends), nv, n_ticks, v0 // chunk,
                            _ptr(partial))
        lib.mix_final(_ptr(partial), n_chunks, n_ticks, _ptr(out))
        return out, np.flatnonzero(self.f["done"][:n_active]).astype(np.int64)
