"""Choosing the render backend, once, explicitly (DESIGN.md section 5).

``resolve_backend(requested)``: ``requested`` (or, when it is None, ``$GPUSYNTH_BACKEND``, or
``auto``). ``auto`` tries cupy (importable, a device present, a tiny kernel compiles and runs),
then native (a C++ compiler present and the kernel library builds and loads), then numpy.
An explicit choice that cannot run raises BackendUnavailable with a one-line reason; there are
no silent swaps. ``backend_info()`` reports every backend's availability and why, for
``gpusynth info``.
"""
from __future__ import annotations

import os
import platform

from ..compiled import BackendUnavailable, compiler_version, find_compiler
from . import BACKENDS

__all__ = ["BackendUnavailable", "resolve_backend", "backend_info", "available_backends",
           "check_backend", "ENV_VAR"]

ENV_VAR = "GPUSYNTH_BACKEND"
AUTO_ORDER = ("cupy", "native", "numpy")

_checked: dict = {}

_TINY = r'''
extern "C" __global__ void gpusynth_probe(int* a, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        a[i] = i * 2 + 1;
}
'''


def _check_cupy():
    from .cupy_backend import import_cupy
    cp = import_cupy()
    try:
        k = cp.RawKernel(_TINY, "gpusynth_probe")
        a = cp.zeros(64, cp.int32)
        k((1,), (64,), (a, cp.int32(64)))
        ok = bool((cp.asnumpy(a) == (2 * __import__("numpy").arange(64) + 1)).all())
    except Exception as e:
        msg = str(e).strip().splitlines()
        raise BackendUnavailable("cupy backend: a test kernel failed to compile or run: "
                                 + (msg[0] if msg else type(e).__name__)) from None
    if not ok:
        raise BackendUnavailable("cupy backend: a test kernel gave wrong results")
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props.get("name", b"?")
    name = name.decode() if isinstance(name, bytes) else str(name)
    return f"GPU {name}"


def _check_native():
    from .native_backend import load_library
    load_library()
    return f"compiler {compiler_version(find_compiler())}"


def _check_numpy():
    import numpy as np
    return f"numpy {np.__version__} (reference, always available)"


_CHECKS = {"cupy": _check_cupy, "native": _check_native, "numpy": _check_numpy}


def check_backend(name: str) -> tuple[bool, str]:
    """(available, reason) for one backend; memoised per process."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r} (choose from auto, {', '.join(BACKENDS)})")
    if name not in _checked:
        try:
            _checked[name] = (True, _CHECKS[name]())
        except BackendUnavailable as e:
            _checked[name] = (False, str(e))
        except Exception as e:       # anything unexpected also means "not available", said once
            first = (str(e).strip().splitlines() or [""])[0]
            _checked[name] = (False, f"{name} backend: {type(e).__name__}: {first}")
    return _checked[name]


def available_backends() -> list[str]:
    return [b for b in AUTO_ORDER if check_backend(b)[0]]


def resolve_backend(requested: str | None = None) -> tuple[str, str]:
    """Return (backend name, reason it was chosen)."""
    src = "argument"
    if requested is None:
        requested = os.environ.get(ENV_VAR) or None
        src = f"${ENV_VAR}"
    if requested is None:
        requested, src = "auto", "default"
    req = str(requested).strip().lower()
    if req == "auto":
        skipped = []
        for b in AUTO_ORDER:
            ok, why = check_backend(b)
            if ok:
                reason = f"auto ({src}): {why}"
                if skipped:
                    reason += "; skipped " + "; ".join(skipped)
                return b, reason
            skipped.append(why)
        raise BackendUnavailable("no backend available")   # numpy always is
    if req not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {requested!r} from {src} "
                                 f"(choose from auto, {', '.join(BACKENDS)})")
    ok, why = check_backend(req)
    if not ok:
        raise BackendUnavailable(why)
    return req, f"requested by {src}: {why}"


def backend_info(requested: str | None = None) -> dict:
    """Everything ``gpusynth info`` shows: each backend with its availability and reason, the
    one that would be chosen, GPU name and memory, compiler version."""
    info = {"backends": {}, "chosen": None, "reason": None, "gpu": None, "compiler": None,
            "env": {ENV_VAR: os.environ.get(ENV_VAR)},
            "python": platform.python_version(), "machine": platform.machine()}
    for b in AUTO_ORDER:
        ok, why = check_backend(b)
        info["backends"][b] = {"available": ok, "reason": why}
    try:
        info["chosen"], info["reason"] = resolve_backend(requested)
    except BackendUnavailable as e:
        info["reason"] = str(e)
    cxx = find_compiler()
    if cxx:
        info["compiler"] = {"path": cxx, "version": compiler_version(cxx)}
    if info["backends"]["cupy"]["available"]:
        try:
            import cupy as cp
            dev = cp.cuda.Device()
            props = cp.cuda.runtime.getDeviceProperties(dev.id)
            name = props.get("name", b"?")
            free, total = cp.cuda.runtime.memGetInfo()
            info["gpu"] = {"name": name.decode() if isinstance(name, bytes) else str(name),
                           "compute_capability": f"{props.get('major')}.{props.get('minor')}",
                           "memory_total_bytes": int(total), "memory_free_bytes": int(free),
                           "cupy": cp.__version__,
                           "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
                           "driver": cp.cuda.runtime.driverGetVersion()}
        except Exception as e:
            info["gpu"] = {"error": str(e).splitlines()[0] if str(e) else type(e).__name__}
    return info
