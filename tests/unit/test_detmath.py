"""gpusynth.detmath: deterministic float64 2^x and log10 (only +, -, *, /, floor, frexp, ldexp),
the same bits in numpy and in C, accurate to a few units in the last place."""
import numpy as np
import pytest

from gpusynth import control_engine, detmath


def test_detmath_c_equals_numpy():
    """The C twin (control_engine.cpp, ce_detmath) gives the same bits, accurate to a few ulp."""
    if not control_engine.NATIVE.available():
        pytest.skip(f"no compiled control engine: {control_engine.NATIVE.error()}")
    lib = control_engine.NATIVE.load()
    rng = np.random.default_rng(5)
    for which, x, ref, f in ((0, rng.uniform(-12, 12, 200_000), np.exp2, detmath.exp2),
                             (1, np.exp(rng.uniform(-80, 20, 200_000)), np.log10, detmath.log10)):
        extra = [1.0, 0.5, 1e-30, 10.0, 2.0 ** -20, 1e5] if which else [0.0, 1.0, -1.0, 0.5, -10.0, 6.666]
        x = np.concatenate([x, extra])
        out = np.empty_like(x)
        lib.ce_detmath(which, x.ctypes.data, len(x), out.ctypes.data)
        assert np.array_equal(out, f(x))                       # the same bits
        err = np.abs(out - ref(x)) / np.maximum(np.abs(ref(x)), 1.0)
        assert err.max() < 1e-15                               # and accurate to a few ulp
    assert detmath.exp2(np.array([3.0]))[0] == 8.0
    assert detmath.log10(np.array([1000.0]))[0] == 3.0


def test_exact_at_the_integers_and_monotone():
    """2^n exact, log10(10^k) within an ulp; neither steps backwards on a fine grid."""
    n = np.arange(-60, 61, dtype=np.float64)
    assert np.array_equal(detmath.exp2(n), 2.0 ** n)
    k = np.arange(0, 23, dtype=np.float64)               # 10^0 .. 10^22 are exact doubles
    assert np.allclose(detmath.log10(10.0 ** k), k, rtol=4e-16, atol=0)
    x = np.linspace(-3.0, 3.0, 100_001)
    assert np.all(np.diff(detmath.exp2(x)) >= 0)
    y = np.linspace(1e-3, 1e3, 100_001)
    assert np.all(np.diff(detmath.log10(y)) >= 0)
