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

from .compiled import BackendUnavailable  # noqa: F401  (defined there; imported from here too)
from .voices import VOICE_DTYPE, CHANNEL_INPUTS, TICK

# the files the render path needs, in translation-unit order
RENDER_SOURCES = ("voice_render.cu",)
SHIM = "host_shim.h"
# portable kernel work decomposition: (voices per work item, ticks per accumulator flush)
CPU_CHUNK = (16, 16)
GPU_CHUNK = (4, 1)

_C_TYPES = {"long long": "int64", "float": "float32", "int": "int32", "signed char": "int8",
            "double": "float64"}
_STRUCT_FIELD = re.compile(r"^\s*(long long|float|int|signed char|double)\s+(\w+);")

_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"\s*$')


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
    appear once). ``source_for(*RENDER_SOURCES)`` is the render module."""
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


@functools.lru_cache(maxsize=None)
def kernel_struct_fields() -> tuple:
    """(name, numpy dtype) of ``struct Voice`` in kernels/common.cuh, in declaration order."""
    text = (kernel_dir() / "common.cuh").read_text()
    body = text[text.index("struct Voice {"):]
    body = body[:body.index("};")]
    return tuple((m.group(2), np.dtype(_C_TYPES[m.group(1)]))
                 for m in map(_STRUCT_FIELD.match, body.splitlines()[1:]) if m)


def check_schema():
    """The kernels read the voice table as ``struct Voice``; fail loudly (not with garbage
    audio) if voices.VOICE_FIELDS and the struct disagree in name, order, type or offset."""
    ks = kernel_struct_fields()
    names = VOICE_DTYPE.names
    if tuple(n for n, _ in ks) != names:
        raise KernelSourceError("struct Voice in kernels/common.cuh and voices.VOICE_FIELDS differ: "
                                f"{[n for n, _ in ks]} vs {list(names)}")
    off = 0
    for nm, dt in ks:
        off = -(-off // dt.alignment) * dt.alignment
        have = VOICE_DTYPE.fields[nm]
        if have[0] != dt or have[1] != off:
            raise KernelSourceError(f"voice field {nm!r}: numpy {have[0]} at offset {have[1]}, "
                                    f"struct Voice {dt} at offset {off}")
        off += dt.itemsize


@functools.lru_cache(maxsize=None)
def defines(gpu: bool = True) -> tuple:
    """(name, value) constants for -D, deterministic order. ``gpu`` picks the portable
    kernel's work decomposition (a voice per thread on a GPU, chunks of voices on the CPU)."""
    from .constants import DONE_LEVEL, FILTER_OPEN_CENTS, MIX_SCALE, SEND_ONE
    vchunk, subw = GPU_CHUNK if gpu else CPU_CHUNK
    d = [("TICK", str(TICK)), ("DONE_LEVEL", repr(float(DONE_LEVEL)) + "f"),
         ("FILTER_OPEN_CENTS", repr(float(FILTER_OPEN_CENTS)) + "f"),
         ("MIX_SCALE", repr(MIX_SCALE) + "f"), ("SEND_ONE", repr(SEND_ONE) + "f"),
         ("VCHUNK", str(vchunk)), ("SUBW", str(subw)),
         ("VOICE_BYTES", str(VOICE_DTYPE.itemsize)), ("N_CHIN", str(len(CHANNEL_INPUTS)))]
    d += [(f"CHI_{nm}", str(i)) for i, nm in enumerate(CHANNEL_INPUTS)]
    return tuple(d)


def define_flags(gpu: bool = True) -> list[str]:
    """-D flags of the GPU (True) or CPU (False) build."""
    return [f"-D{k}={v}" for k, v in defines(bool(gpu))]


def source_hash(*parts: str, names=RENDER_SOURCES) -> str:
    """sha256 over the inlined source and any extra parts (flags, compiler version...)."""
    h = hashlib.sha256(source_for(*names).encode())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()

