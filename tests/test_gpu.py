"""CuPy backend (the same kernels through NVRTC on a GPU) against the numpy reference, plus a
throughput run. Marked gpu: the project's conftest skips these without a device."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

from test_native_vs_numpy import (RATE, RTOL, compare_backends, make_pool, random_voices,  # noqa: E402
                                  random_chan_in)
from gpusynth.voices import NEVER, VOICE_DTYPES  # noqa: E402


@pytest.fixture(scope="module")
def cupy_backend():
    from gpusynth.backend.cupy_backend import CupyBackend, BackendUnavailable
    try:
        CupyBackend(RATE, 16)
    except BackendUnavailable as e:
        pytest.skip(str(e))
    return CupyBackend


@pytest.mark.parametrize("interp", ["cubic", "linear"])
@pytest.mark.parametrize("n_ticks,seed", [(1, 1), (3, 2), (8, 3)])
def test_cupy_matches_numpy(cupy_backend, interp, n_ticks, seed):
    worst = compare_backends(cupy_backend, seed, 300, n_ticks, n_blocks=3, interp=interp)
    print(f"cupy interp={interp} ticks={n_ticks}: worst error / peak = {worst:.2e}")


def test_cupy_matches_native(cupy_backend):
    """Same kernels, same mix tree: native and cupy agree closely (libm vs CUDA math only)."""
    from gpusynth.backend.native_backend import NativeBackend, BackendUnavailable
    try:
        NativeBackend(RATE, 16)
    except BackendUnavailable as e:
        pytest.skip(str(e))
    rng = np.random.default_rng(21)
    pool, bounds = make_pool(rng)
    n = 700
    fields = random_voices(rng, n, 640, 512, bounds)
    ch = random_chan_in(rng, 8)
    outs = []
    for cls in (NativeBackend, cupy_backend):
        b = cls(RATE, n, "cubic")
        b.upload_pool(pool)
        b.write(np.arange(n), fields)
        outs.append(b.render(n, 640, 8, ch))
    (a, fa), (b2, fb) = outs
    peak = float(np.max(np.abs(a)))
    assert float(np.max(np.abs(a.astype(np.float64) - b2))) <= RTOL * peak
    np.testing.assert_array_equal(fa, fb)


def test_cupy_table_ops(cupy_backend):
    from gpusynth.backend.numpy_backend import NumpyBackend
    rng = np.random.default_rng(5)
    pool, bounds = make_pool(rng)
    fields = random_voices(rng, 40, 0, 256, bounds)
    a, b = NumpyBackend(RATE, 16), cupy_backend(RATE, 16)
    for x in (a, b):
        x.ensure_capacity(40)
        x.write(np.arange(40), fields)
        x.write(np.array([3, 5]), {"release": np.array([7, 9], np.int64)})
        x.write(slice(10, 12), {"kill": np.int64(99)})
        x.move(np.array([38, 39]), np.array([3, 5]))
        x.ensure_capacity(1000)
    for nm in VOICE_DTYPES:
        np.testing.assert_array_equal(a.read(nm, slice(0, 40)), b.read(nm, slice(0, 40)))
        np.testing.assert_array_equal(a.read(nm, np.array([1, 3])), b.read(nm, np.array([1, 3])))


def _steady_fields(rng, n, bounds):
    f = random_voices(rng, n, 0, 512, bounds)
    f["start"][:] = 0
    f["release"][:] = NEVER
    f["kill"][:] = NEVER
    f["done"][:] = 0
    f["lmode"][:] = 1
    f["ve_sus"][:] = 0
    f["lend"] = np.maximum(f["lend"], f["lstart"] + 2)
    return f


def test_throughput(cupy_backend):
    """Voice-samples per second at a few polyphonies (printed; asserts only that it runs)."""
    rng = np.random.default_rng(0)
    pool, bounds = make_pool(rng)
    for n in (2000, 100_000, 1_000_000):
        f = _steady_fields(rng, n, bounds)
        b = cupy_backend(RATE, n, "cubic")
        b.upload_pool(pool)
        b.write(np.arange(n), f)
        ch = random_chan_in(rng, 8)
        b.render(n, 0, 8, ch)
        cp.cuda.Device().synchronize()
        ts = []
        for r in range(3):
            t = time.perf_counter()
            out, _ = b.render(n, 512 * (r + 1), 8, ch)
            ts.append(time.perf_counter() - t)
        t = min(ts)
        print(f"cupy {n:>9,} voices x 512 frames: {t * 1e3:8.2f} ms, "
              f"{n * 512 / t / 1e6:10.1f} M voice-samples/s")
        assert np.isfinite(out).all()


def test_four_million_slots(cupy_backend):
    """A 4,000,000-slot table renders (voices in groups, int64 indexing) and the mix sees the
    last voice."""
    n = 4_000_000
    rng = np.random.default_rng(1)
    pool, bounds = make_pool(rng)
    b = cupy_backend(RATE, n, "linear")
    b.upload_pool(pool)
    f = _steady_fields(np.random.default_rng(2), 1, bounds)
    for nm, v in f.items():                       # device-side broadcasts, no 4M host arrays
        b.write(slice(0, n), {nm: v[0]})
    b.write(slice(0, n - 1), {"done": np.int8(1)})   # only the last slot plays
    b.write(np.array([n - 1]), {"atten": np.float32(0.0), "ve_delay": np.float32(0.0),
                                "ve_attack": np.float32(0.0), "pitch": 0.0, "fc": np.float32(13500),
                                "q": np.float32(0.0), "ml_vol": np.float32(0.0),
                                "cc1_ml_vol": np.float32(0.0)})
    out, fin = b.render(n, 0, 2, random_chan_in(rng, 2))
    assert np.abs(out[:, :2]).max() > 0
    assert len(fin) == n - 1 and fin[-1] == n - 2
    assert b.read("ipos", np.array([n - 1]))[0] != f["ipos"][0]
