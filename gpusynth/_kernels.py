"""CUDA C kernel sources: find them, inline local includes, constants as -D, memoise.

The kernels live in ``kernels/`` at the repository root; an installed wheel carries them as
``gpusynth/_cuda`` (the pyproject force-includes ``kernels/`` there). Local ``#include "..."``
lines are inlined recursively (each file once, include guards or not), because CuPy's cache key
hashes only the source text; ``#line`` directives keep compiler errors pointing at the real file.
Constants go to the compiler as ``-D`` flags (``define_flags``), never pasted into the text.
"""
from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

import numpy as np

from .voices import VOICE_FIELDS, VOICE_DTYPES, CHANNEL_INPUTS, TICK

# the files the render path needs, in translation-unit order
RENDER_SOURCES = ("voice_render.cu", "mix.cu")
SHIM = "host_shim.h"
MIX_CHUNK = 256

# the C type each voice field has in the kernels (checked against VOICE_DTYPES by check_schema)
KERNEL_FIELD_DTYPES = {
    "start": "int64", "release": "int64", "kill": "int64", "chan": "int32",
    "pstart": "int64", "pend": "int64", "lstart": "int64", "lend": "int64", "lmode": "int32",
    "pitch": "float64", "ml_freq": "float64", "vl_freq": "float64",
    "ipos": "int64", "fpos": "float64", "fx1": "float64", "fx2": "float64",
    "fy1": "float64", "fy2": "float64", "done": "int8",
}   # every other field: float32

_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"\s*$')


class BackendUnavailable(RuntimeError):
    """A backend cannot run here (no compiler, no GPU, no cupy...). The message is one line."""


class KernelSourceError(RuntimeError):
    pass


def _candidates():
    here = Path(__file__).resolve().parent
    return [here.parent / "kernels", here / "_cuda"]


@functools.lru_cache(maxsize=None)
def kernel_dir() -> Path:
    for d in _candidates():
        if (d / "voice_render.cu").is_file():
            return d
    raise KernelSourceError("gpusynth kernel sources not found (looked in "
                            + ", ".join(str(d) for d in _candidates()) + ")")


def _display_name(path: Path) -> str:
    # 'kernels/voice_render.cu' in a checkout, '_cuda/voice_render.cu' in a wheel: stable
    # across machines (so the source hash is too) and still names the real file
    return f"{path.parent.name}/{path.name}"


def _inline(path: Path, seen: set, stack: tuple) -> list[str]:
    if path in stack:
        raise KernelSourceError(f"#include cycle: {' -> '.join(p.name for p in stack + (path,))}")
    if path in seen:
        return []
    seen.add(path)
    name = _display_name(path)
    out = [f'#line 1 "{name}"']
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        m = _INCLUDE.match(line)
        if m:
            inc = (path.parent / m.group(1)).resolve()
            if not inc.is_file():
                raise KernelSourceError(f"{name}:{n}: #include \"{m.group(1)}\" not found")
            out.extend(_inline(inc, seen, stack + (path,)))
            out.append(f'#line {n + 1} "{name}"')
        else:
            out.append(line)
    return out


@functools.lru_cache(maxsize=None)
def source_for(*names: str) -> str:
    """The inlined source of one or more kernel files (one translation unit; shared headers
    appear once). ``source_for("voice_render.cu", "mix.cu")`` is the render module."""
    if not names:
        names = RENDER_SOURCES
    d = kernel_dir()
    seen: set = set()
    lines: list[str] = []
    for nm in names:
        p = (d / nm).resolve()
        if not p.is_file():
            raise KernelSourceError(f"kernel source {nm!r} not found in {d}")
        lines.extend(_inline(p, seen, ()))
    return "\n".join(lines) + "\n"


def shim_path() -> Path:
    return kernel_dir() / SHIM


@functools.lru_cache(maxsize=None)
def shim_source() -> str:
    return shim_path().read_text()


def check_schema():
    """The kernels index the voice table by VOICE_FIELDS order with fixed C types; fail loudly
    (not with garbage audio) if voices.py changed a field the kernels read."""
    for nm, dt in VOICE_DTYPES.items():
        want = np.dtype(KERNEL_FIELD_DTYPES.get(nm, "float32"))
        if dt != want:
            raise KernelSourceError(f"voice field {nm!r} is {dt} but the kernels read it as {want}")


@functools.lru_cache(maxsize=None)
def defines(frame_major: bool = True) -> tuple:
    """(name, value) constants for -D, deterministic order."""
    from .backend.numpy_backend import DONE_LEVEL, FILTER_OPEN_CENTS
    d = [("TICK", str(TICK)), ("DONE_LEVEL", repr(float(DONE_LEVEL))),
         ("FILTER_OPEN_CENTS", repr(float(FILTER_OPEN_CENTS))),
         ("MIX_CHUNK", str(MIX_CHUNK)), ("SCRATCH_FRAME_MAJOR", "1" if frame_major else "0"),
         ("N_CHIN", str(len(CHANNEL_INPUTS))), ("NVF", str(len(VOICE_FIELDS)))]
    d += [(f"CHI_{nm}", str(i)) for i, nm in enumerate(CHANNEL_INPUTS)]
    d += [(f"VF_{nm}", str(i)) for i, (nm, _, _) in enumerate(VOICE_FIELDS)]
    return tuple(d)


def define_flags(frame_major: bool = True) -> list[str]:
    return [f"-D{k}={v}" for k, v in defines(frame_major)]


def source_hash(*parts: str, names=RENDER_SOURCES) -> str:
    """sha256 over the inlined source and any extra parts (flags, compiler version...)."""
    h = hashlib.sha256(source_for(*names).encode())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()


def field_names() -> list[str]:
    return [nm for nm, _, _ in VOICE_FIELDS]
