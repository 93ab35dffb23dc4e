"""Compiled host code: one way to build, cache, load and bind it, and one name for each engine.

Every piece of compiled host code is declared once, at module level in the module that uses it,
as a ``Helper``: its sources, flags, the headers it includes and the ctypes signature of every
function it exports::

    NATIVE = Helper("steal", [HERE / "steal_run.cpp"], FLAGS,
                    {"steal_run": (None, [I64, I64, PTR, ...])},
                    headers=lambda: [kernel_dir() / "detmath.h"])

Declared today: the SMF decoder (gpusynth.smf, smf_decode.c), the stealing loop (gpusynth.steal,
steal_run.cpp), the effects (gpusynth.effects, effects.cpp), the control engine
(gpusynth.control_engine, control_engine.cpp) and the native backend's render kernels
(gpusynth.backend.native_backend, kernels/voice_render.cu through kernels/host_shim.h).

``helper.load()`` builds the shared library if its cache file is missing, loads it, binds the
signatures and runs the helper's own check; it returns the ctypes library or raises
``BackendUnavailable`` with a one-line message (no compiler, a compile error, a load error, a
failed check). The outcome is kept, success or failure, so a helper is built at most once per
process; ``available()`` and ``error()`` are for callers that fall back to the reference engine.
One lock serialises every build and load.

Build: ``find_compiler()`` ($CXX, else g++, c++, clang++); the command is ``cxx *flags -I<dir of
each header> -include <each forced include> *sources -o lib``. The cache file
``cache_dir()/<name>-<hash>.so`` is named by a sha256 over the text of every source, the name
and text of every header, the compiler's path and version, the flags and the helper's extra key
(e.g. the CPU for ``-march=native``); it is written under a temporary name and renamed, so
parallel processes never load a half-written file. Every ``#include "..."`` of the sources and
headers must name a listed header, so the hash cannot miss one.

Engine names. Wherever compiled code has a readable Python/numpy twin, one option picks it, and
the option takes the same names everywhere (``load_smf(decoder=)``, ``Synth(alloc_engine=,
effects_engine=)``, ``ControlPath(alloc_engine=)``, ``VoiceAllocator(engine=)``,
``steal.run(engine=)``, ``effects.Reverb/Chorus/Effects(engine=)``):

* ``"native"``: the compiled helper; BackendUnavailable when it cannot be built or loaded;
* ``"reference"``: the readable Python/numpy twin, which defines the semantics (always
  available; both give the same bits);
* ``"auto"`` (the default): native when it is available, else the reference.

The control path's allocation has one more, ``"sequential"``: the Python definition with the
older allocator that decides one tick after the other (``VoiceAllocator.allocate`` + ``notes``
per tick, instead of the stealing loop over a run of ticks; no per-key cap). It gives the same
voices; the tests use it as a second definition. The names of older releases are still
accepted, with a DeprecationWarning: ``"numpy"`` and ``"python"`` for the reference (before,
``"reference"`` named the sequential allocator). The render backend (cupy, native, numpy, null:
gpusynth.backend.select) is a separate choice; its numpy backend is the kernels' reference.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

__all__ = ["Helper", "BackendUnavailable", "find_compiler", "compiler_version", "cache_dir",
           "ENGINES", "engine_choice"]

ENGINES = ("auto", "native", "reference")
_OLD_NAMES = {"numpy": "reference", "python": "reference"}

# ctypes shorthands for signatures
PTR, I64, I32, F32, F64 = (ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int, ctypes.c_float,
                           ctypes.c_double)


class BackendUnavailable(RuntimeError):
    """Compiled code or a backend cannot run here (no compiler, a build or load failure, no
    GPU, no cupy...). The message is one line."""


def engine_choice(engine: str, what: str, extra: tuple = ()) -> str:
    """``engine`` checked against ENGINES (+ ``extra``) and returned; an old name ("numpy",
    "python") is mapped to "reference" with a DeprecationWarning. ValueError otherwise."""
    names = ENGINES + tuple(extra)
    if engine in _OLD_NAMES:
        warnings.warn(f"{what} {engine!r} is now called {_OLD_NAMES[engine]!r}",
                      DeprecationWarning, stacklevel=3)
        return _OLD_NAMES[engine]
    if engine not in names:
        raise ValueError(f"{what} must be {', '.join(names[:-1])} or {names[-1]}, not {engine!r}")
    return engine


# ---------------------------------------------------------------------------- toolchain
def find_compiler() -> str | None:
    """The C++ compiler: $CXX when it exists, else g++, c++ or clang++ on the PATH."""
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
    """The first line of ``cxx --version`` (memoised), "?" when it cannot be run."""
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
    """$XDG_CACHE_HOME/gpusynth or ~/.cache/gpusynth, else a per-user temporary directory."""
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
    """What code built or data computed for this CPU depends on: its model and feature flags
    (-march=native builds; numpy's SIMD paths, for cached computed data)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines()
                     if ln.startswith(("model name", "flags", "Features", "CPU part"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        import platform
        return platform.machine() + platform.processor()


# ---------------------------------------------------------------------------- helpers
_lock = threading.RLock()
_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)

def _paths(x) -> tuple:
    return tuple(Path(p) for p in (x() if callable(x) else x))


def _first_error(text: str) -> str:
    lines = text.strip().splitlines()
    return next((ln for ln in lines if "error" in ln), lines[0] if lines else "?").strip()


class Helper:
    """A compiled helper (see the module docstring).

    name: the cache file's prefix; sources: the files compiled (paths, or a callable giving
    them, called at build time); flags: compiler flags (all of them, "-x c++" included);
    signatures: {function: (restype, [argtypes])} for every exported function (and any other
    symbol called through the library); headers: every header the sources include (hashed, and
    their directories on the include path); include: headers force-included (``-include``)
    ahead of the sources; check(lib): run after binding, raises when the library does not
    match its Python side (layouts); key(): extra text for the cache key; label: the name in
    messages (default "<name> helper")."""

    def __init__(self, name: str, sources, flags, signatures: dict, *,
                 headers=(), include=(), check=None, key=None,
                 label: str | None = None):
        self.name = name
        self.sources = sources
        self.flags = tuple(flags)
        self.signatures = dict(signatures)
        self.headers = headers
        self.include = include
        self.check = check
        self.key = key
        self.label = label or f"{name} helper"
        self._lib = None
        self._error: str | None = None

    def __repr__(self):
        state = "loaded" if self._lib is not None else \
            f"unavailable: {self._error}" if self._error else "not loaded"
        return f"<Helper {self.name} ({state})>"

    # ---- state
    def load(self):
        """The loaded library (ctypes.CDLL, signatures bound); built first when its cache file
        is missing. Raises BackendUnavailable (one line, the same every time)."""
        with _lock:
            if self._lib is None and self._error is None:
                try:
                    self._lib = self._load()
                except BackendUnavailable as e:
                    self._error = str(e)
                except Exception as e:          # anything else still fails one way
                    first = (str(e).strip().splitlines() or [""])[0]
                    self._error = f"{self.label}: {type(e).__name__}: {first}"
            if self._lib is None:
                raise BackendUnavailable(self._error)
            return self._lib

    def available(self) -> bool:
        """Whether the helper loads here (building it if needed)."""
        try:
            self.load()
            return True
        except BackendUnavailable:
            return False

    def error(self) -> str | None:
        """Why the helper cannot be used (None when it loads)."""
        return None if self.available() else self._error

    def for_engine(self, engine: str):
        """The library an engine option asks for: None for "reference", the library for
        "native" (BackendUnavailable when it cannot load), the library if it loads else None
        for "auto". ``engine`` is one of ENGINES (see engine_choice)."""
        if engine == "reference":
            return None
        if engine == "native":
            return self.load()
        return self._lib if self.available() else None

    # ---- build
    def _resolved(self):
        srcs, hdrs, inc = _paths(self.sources), _paths(self.headers), _paths(self.include)
        return srcs, tuple(dict.fromkeys(hdrs + inc)), inc

    def _check_includes(self, srcs, hdrs):
        listed = {h.resolve() for h in hdrs}
        dirs = [h.parent for h in hdrs]
        for f in srcs + hdrs:
            for name in _INCLUDE.findall(f.read_text()):
                found = next((c.resolve() for c in [f.parent / name] + [d / name for d in dirs]
                              if c.is_file()), None)
                if found is None or found not in listed:
                    raise BackendUnavailable(f"{self.label}: {f.name} includes \"{name}\", which "
                                             "is not among the helper's headers")

    def cache_key(self, cxx: str) -> str:
        srcs, hdrs, _ = self._resolved()
        h = hashlib.sha256()
        for part in ([p.read_text() for p in srcs]
                     + [f"{p.name}\n{p.read_text()}" for p in hdrs]
                     + [cxx, compiler_version(cxx) or "", *self.flags,
                        self.key() if self.key else ""]):
            h.update(part.encode() + b"\0")
        return h.hexdigest()[:20]

    def path(self) -> Path:
        """Build the shared library when its cache file is missing; its path. Raises
        BackendUnavailable (one line; ``compiler_output`` on the exception holds the
        compiler's messages)."""
        cxx = find_compiler()
        if cxx is None:
            raise BackendUnavailable(f"{self.label}: no C++ compiler found "
                                     "(install g++ or set CXX)")
        srcs, hdrs, inc = self._resolved()
        for p in srcs + hdrs:
            if not p.is_file():
                raise BackendUnavailable(f"{self.label}: {p} not found")
        self._check_includes(srcs, hdrs)
        h = self.cache_key(cxx)
        d = cache_dir()
        out = d / f"{self.name}-{h}.so"
        if out.is_file():
            return out
        fd, tmp = tempfile.mkstemp(prefix=f"{self.name}-{h}-", suffix=".so.tmp", dir=d)
        os.close(fd)
        cmd = [cxx, *self.flags, *[f"-I{d}" for d in dict.fromkeys(p.parent for p in hdrs)]]
        for p in inc:
            cmd += ["-include", str(p)]
        cmd += [*map(str, srcs), "-o", tmp]
        try:
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.SubprocessError) as e:
                raise BackendUnavailable(f"{self.label}: running {Path(cxx).name} failed: "
                                         f"{_first_error(str(e))}") from None
            if r.returncode != 0:
                exc = BackendUnavailable(f"{self.label}: compiling "
                                         f"{', '.join(p.name for p in srcs)} failed: "
                                         f"{_first_error(r.stderr or r.stdout)}")
                exc.compiler_output = r.stderr
                raise exc
            os.replace(tmp, out)        # atomic: a parallel build of the same hash is identical
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return out

    def _load(self):
        path = self.path()
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise BackendUnavailable(f"{self.label}: cannot load {path.name}: "
                                     f"{_first_error(str(e))}") from None
        for fn, (restype, argtypes) in self.signatures.items():
            try:
                f = getattr(lib, fn)
            except AttributeError:
                raise BackendUnavailable(f"{self.label}: {path.name} has no function "
                                         f"{fn}") from None
            f.restype = restype
            f.argtypes = list(argtypes)
        if self.check is not None:
            try:
                self.check(lib)
            except BackendUnavailable:
                raise
            except Exception as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise BackendUnavailable(f"{self.label}: {first}") from None
        return lib
