"""Render backends. Every backend implements the same voice-table protocol (see base.py);
the numpy backend is the reference."""
from __future__ import annotations

BACKENDS = ("numpy", "native", "cupy")
# renders nothing (the control path alone: gpusynth.analyze); only by name, never by `auto`
NULL = "null"


def create_backend(name: str, rate: int, capacity: int, interp: str):
    if name == "numpy":
        from .numpy_backend import NumpyBackend
        return NumpyBackend(rate, capacity, interp)
    if name == "native":
        from .native_backend import NativeBackend
        return NativeBackend(rate, capacity, interp)
    if name == NULL:
        from .null_backend import NullBackend
        return NullBackend(rate, capacity, interp)
    if name == "cupy":
        from .cupy_backend import CupyBackend
        return CupyBackend(rate, capacity, interp)
    raise ValueError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
