"""gpusynth.compiled: every compiled helper is declared once and loads, with a ctypes signature
for every function it exports; the cache key covers the headers; failures are reported one way
(BackendUnavailable, one line, kept); the shared header kernels/detmath.h is the numpy
definition's 2^x in plain C++ too; one vocabulary of engine names."""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from gpusynth import compiled, control_engine, effects, envelope, smf, steal
from gpusynth._kernels import kernel_dir
from gpusynth.backend import native_backend
from gpusynth.compiled import I64, PTR, BackendUnavailable, Helper, engine_choice

HELPERS = {"smf": smf.NATIVE, "steal": steal.NATIVE, "effects": effects.NATIVE,
           "control": control_engine.NATIVE}

needs_compiler = pytest.mark.skipif(compiled.find_compiler() is None, reason="no C++ compiler")


def _exports(path) -> set:
    r = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return {ln.split()[-1] for ln in r.stdout.splitlines()
            if len(ln.split()) == 3 and ln.split()[1] == "T" and not ln.split()[2].startswith("_")}


@needs_compiler
@pytest.mark.parametrize("name", sorted(HELPERS) + ["kernels"])
def test_every_helper_loads_and_declares_every_export(name):
    h = native_backend.kernel_library() if name == "kernels" else HELPERS[name]
    if name == "kernels":
        native_backend.load_library()
    assert h.available(), h.error()
    assert h.error() is None
    if shutil.which("nm") is None:
        pytest.skip("nm not found")
    exported = _exports(h.path())
    assert exported, "no exported function found"
    assert exported <= set(h.signatures), f"undeclared: {sorted(exported - set(h.signatures))}"
    lib = h.load()
    for fn in exported:
        assert getattr(lib, fn).argtypes is not None


def _helper(tmp_path, body: str, header: str = "#define VALUE 3\n", **kw) -> Helper:
    (tmp_path / "value.h").write_text(header)
    src = tmp_path / "h.cpp"
    src.write_text(body)
    return Helper("test_helper", [src], ["-O1", "-shared", "-fPIC", "-x", "c++"],
                  {"value": (ctypes.c_int, [])},
                  headers=kw.pop("headers", lambda: [tmp_path / "value.h"]), **kw)


BODY = '#include "value.h"\nextern "C" int value(void) { return VALUE; }\n'


@needs_compiler
def test_the_cache_key_covers_the_headers(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a = _helper(tmp_path, BODY)
    assert a.load().value() == 3
    path_a = a.path()
    b = _helper(tmp_path, BODY, "#define VALUE 4\n")          # the header changed, not the source
    assert b.path() != path_a and b.load().value() == 4
    assert path_a.parent == tmp_path / "cache" / "gpusynth"


@needs_compiler
def test_an_include_missing_from_the_headers_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    h = _helper(tmp_path, BODY, headers=())
    with pytest.raises(BackendUnavailable, match='includes "value.h"'):
        h.load()


@needs_compiler
def test_failures_are_reported_one_way_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    h = _helper(tmp_path, BODY + "this is not C++;\n")
    with pytest.raises(BackendUnavailable) as e:
        h.load()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("test_helper helper: compiling h.cpp failed")
    assert not h.available() and h.error() == msg
    (tmp_path / "h.cpp").write_text(BODY)                      # kept: not rebuilt in this process
    with pytest.raises(BackendUnavailable, match="compiling h.cpp failed"):
        h.load()
    assert h.for_engine("auto") is None and h.for_engine("reference") is None
    with pytest.raises(BackendUnavailable):
        h.for_engine("native")
    # a missing function and a failing check are the same kind of failure
    g = Helper("test_helper", [tmp_path / "h.cpp"], ["-O1", "-shared", "-fPIC", "-x", "c++"],
               {"value": (ctypes.c_int, []), "other": (None, [])},
               headers=[tmp_path / "value.h"])
    with pytest.raises(BackendUnavailable, match="has no function other"):
        g.load()

    def bad(lib):
        raise RuntimeError("layout differs\nsecond line")
    c = _helper(tmp_path, BODY, check=bad)
    with pytest.raises(BackendUnavailable, match=r"^test_helper helper: layout differs$"):
        c.load()


def test_no_compiler(tmp_path, monkeypatch):
    monkeypatch.setattr(compiled, "find_compiler", lambda: None)
    h = _helper(tmp_path, BODY)
    assert not h.available()
    assert h.error() == "test_helper helper: no C++ compiler found (install g++ or set CXX)"


@needs_compiler
def test_detmath_header_is_the_numpy_definition_in_plain_cpp(tmp_path, monkeypatch):
    """kernels/detmath.h built as plain C++ (as the host helpers include it) gives
    envelope.exp2 and envelope.cb_gain bit for bit."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = tmp_path / "exp2.cpp"
    src.write_text('#include "detmath.h"\n'
                   'extern "C" void run(const float* x, long long n, float* a, float* b) {\n'
                   '    for (long long i = 0; i < n; ++i) { a[i] = gs_exp2(x[i]);'
                   ' b[i] = gs_cb_gain(x[i]); }\n}\n')
    h = Helper("test_exp2", [src], ["-O2", "-ffp-contract=off", "-shared", "-fPIC", "-x", "c++"],
               {"run": (None, [PTR, I64, PTR, PTR])}, headers=[kernel_dir() / "detmath.h"])
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-140, 140, 200_000), rng.uniform(-2, 2, 100_000),
                        rng.uniform(0, 1500, 100_000), [0.0, -0.0, 1.0, -127.0, 127.0, 200.0,
                                                        -200.0, np.inf, -np.inf]]).astype(np.float32)
    a, b = np.empty_like(x), np.empty_like(x)
    h.load().run(x.ctypes.data, len(x), a.ctypes.data, b.ctypes.data)
    with np.errstate(all="ignore"):
        assert np.array_equal(a.view(np.uint32), envelope.exp2(x).view(np.uint32))
        assert np.array_equal(b.view(np.uint32), envelope.cb_gain(x).view(np.uint32))


def test_engine_names():
    for e in ("auto", "native", "reference"):
        assert engine_choice(e, "engine") == e
    assert engine_choice("sequential", "alloc_engine", ("sequential",)) == "sequential"
    for old in ("numpy", "python"):
        with pytest.warns(DeprecationWarning, match="now called 'reference'"):
            assert engine_choice(old, "decoder") == "reference"
    with pytest.raises(ValueError, match="decoder must be auto, native or reference, not 'gpu'"):
        engine_choice("gpu", "decoder")
    with pytest.raises(ValueError):
        engine_choice("sequential", "steal engine")
