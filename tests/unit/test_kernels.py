"""Kernel sources: every .cu compiles with nvcc for sm_80 and sm_90 (no GPU needed), the host
shim build is warning-free, and gpusynth._kernels inlines includes with correct #line info."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from gpusynth import _kernels as K

CU_FILES = sorted(p.name for p in K.kernel_dir().glob("*.cu"))


def test_sources_found():
    assert "voice_render.cu" in CU_FILES
    assert K.shim_path().is_file()


def test_inline_and_line_directives():
    src = K.source_for("voice_render.cu")
    assert '#include "' not in src
    assert src.count("#define GPUSYNTH_COMMON_CUH") == 1
    lines = src.splitlines()
    assert lines[0].startswith('#line 1 "') and lines[0].endswith('/voice_render.cu"')
    # every #line points at a real line of the named file
    for i, ln in enumerate(lines):
        if ln.startswith("#line "):
            n, name = ln.split()[1], ln.split('"')[1]
            real = (K.kernel_dir() / name.split("/")[-1]).read_text().splitlines()
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if not nxt.startswith("#line"):
                assert real[int(n) - 1] == nxt, (name, n)
    assert K.source_for("voice_render.cu") is src                    # memoised
    assert K.source_hash() == K.source_hash() and len(K.source_hash()) == 64
    assert K.source_hash("a") != K.source_hash("b")


@pytest.mark.toolchain
def test_compiler_errors_point_at_the_real_file(tmp_path):
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ not found")
    src = K.source_for("voice_render.cu")
    lines = src.splitlines()
    # break a line of voice_render.cu and find it in the diagnostics under its own name and number
    target = next(i for i, ln in enumerate(lines) if "fpos = (float)(pn - (double)fln);" in ln)
    lines[target] = lines[target].replace("(double)fln", "(double)undefined_name")
    # line number in voice_render.cu: the last #line above + offset
    j = max(i for i in range(target) if lines[i].startswith("#line "))
    real_line = int(lines[j].split()[1]) + (target - j - 1)
    f = tmp_path / "broken.cu"
    f.write_text("\n".join(lines) + "\n")
    r = subprocess.run([cxx, "-fsyntax-only", "-fopenmp", "-x", "c++", "-include", str(K.shim_path()),
                        *K.define_flags(False), str(f)], capture_output=True, text=True)
    assert r.returncode != 0
    assert f"voice_render.cu:{real_line}:" in r.stderr, r.stderr[:2000]


def test_schema_matches_kernels(tmp_path, monkeypatch):
    """struct Voice in common.cuh and voices.VOICE_DTYPE agree field by field (and a struct
    that drifts from the dtype is caught)."""
    K.check_schema()
    from gpusynth.voices import VOICE_DTYPE
    assert [n for n, _ in K.kernel_struct_fields()] == list(VOICE_DTYPE.names)
    assert dict(K.defines())["VOICE_BYTES"] == str(VOICE_DTYPE.itemsize)
    d = tmp_path / "k"
    d.mkdir()
    for f in K.kernel_dir().iterdir():
        text = f.read_text()
        if f.name == "common.cuh":
            text = text.replace("    float atten;\n    float pan;", "    float pan;\n    float atten;")
        (d / f.name).write_text(text)
    monkeypatch.setattr(K, "kernel_dir", lambda: d)
    K.kernel_struct_fields.cache_clear()
    try:
        with pytest.raises(K.KernelSourceError, match="differ"):
            K.check_schema()
    finally:
        K.kernel_struct_fields.cache_clear()


@pytest.mark.toolchain
def test_host_shim_build_is_warning_free(tmp_path):
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ not found")
    f = tmp_path / "k.cu"
    f.write_text(K.source_for(*K.RENDER_SOURCES))
    r = subprocess.run([cxx, "-fsyntax-only", "-Wall", "-Wextra", "-fopenmp", "-x", "c++",
                        "-include", str(K.shim_path()), *K.define_flags(False), str(f)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr[:3000]


@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", CU_FILES)
def test_nvcc_compiles(tmp_path, name, arch):
    nvcc = shutil.which("nvcc") or next(
        (p for p in ("/usr/local/bin/nvcc", "/usr/local/cuda/bin/nvcc") if os.path.exists(p)), None)
    if nvcc is None:
        print("nvcc not found: skipping the CUDA compile check")
        pytest.skip("nvcc not found")
    f = tmp_path / name
    f.write_text(K.source_for(name))
    out = tmp_path / (name + ".cubin")
    r = subprocess.run([nvcc, "-cubin", f"-arch={arch}", "--fmad=false", "-Werror", "all-warnings",
                        *K.define_flags(True), str(f), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.stat().st_size > 0


# ---- NVRTC (what CuPy's RawModule uses) -----------------------------------------------------
def _find_nvrtc():
    """libnvrtc from $GPUSYNTH_NVRTC, the pip wheel (nvidia-cuda-nvrtc), or the system."""
    import ctypes
    import ctypes.util
    import glob
    import sys
    cands = [os.environ.get("GPUSYNTH_NVRTC")]
    for p in sys.path:
        cands += sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib", "libnvrtc.so*")))
        cands += sorted(glob.glob(os.path.join(p, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")))
    cands += sorted(glob.glob("/usr/local/cuda*/lib64/libnvrtc.so*"))
    cands.append(ctypes.util.find_library("nvrtc"))
    for c in cands:
        if c and "builtins" not in c:
            try:
                return ctypes.CDLL(c)
            except OSError:
                continue
    return None


def nvrtc_compile(lib, src: str, name: str, options: list[str]):
    """(ok, log) of one NVRTC compile; no device needed."""
    import ctypes
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), 0, None, None) == 0
    opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    rc = lib.nvrtcCompileProgram(prog, len(options), opts)
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    buf = ctypes.create_string_buffer(n.value + 1)
    lib.nvrtcGetProgramLog(prog, buf)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return rc == 0, buf.value.decode(errors="replace")


@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvrtc_compiles_render_module(arch):
    """The exact source and options the CuPy backend hands to RawModule compile under NVRTC,
    which (unlike nvcc) includes no CUDA headers implicitly."""
    lib = _find_nvrtc()
    if lib is None:
        print("libnvrtc not found (pip install nvidia-cuda-nvrtc, or set GPUSYNTH_NVRTC)")
        pytest.skip("libnvrtc not found")
    from gpusynth.backend.cupy_backend import NVRTC_OPTIONS
    opts = K.define_flags(True) + list(NVRTC_OPTIONS) + [f"-arch={arch}"]
    ok, log = nvrtc_compile(lib, K.source_for(*K.RENDER_SOURCES), "render.cu", opts)
    assert ok, log[-3000:]
    assert "warning" not in log.lower(), log[-3000:]


def test_convex_table_matches_numpy():
    """The mod-envelope attack's convex table (kernels/common.cuh GS_CONVEX) holds exactly the
    float32 values of the numpy reference (numpy_backend.CONVEX_TAB), FluidSynth's table."""
    import re

    import numpy as np

    from gpusynth.backend.numpy_backend import CONVEX_TAB, convex
    text = (K.kernel_dir() / "common.cuh").read_text()
    body = text[text.index("GS_CONVEX[128] = {") + len("GS_CONVEX[128] = {"):]
    body = body[:body.index("}")]
    vals = np.array([np.float32(v) for v in re.findall(r"[-+0-9.eE]+(?=f)", body)], np.float32)
    assert vals.shape == (128,) and np.array_equal(vals, CONVEX_TAB)
    # FluidSynth's curve: 1 + (40/96) log10(x), 0 at 0, 1 at 1, interpolated between points
    x = np.array([0.0, 0.25, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(convex(x), [0.0, 1 + 40 / 96 * np.log10(0.25),
                                           1 + 40 / 96 * np.log10(0.5), 1.0], atol=2e-4)
