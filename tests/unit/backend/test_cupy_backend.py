"""CuPy backend (the same kernel source through NVRTC on a GPU) against the numpy reference
and the native backend, exactness of the mix on the GPU, Synth(backend='cupy') end to end with
its device->host copies counted, and a throughput run. Marked gpu: the project's conftest skips
these without a device (none was available when they were written: see bench/gpu-check.sh)."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

from unit.backend.test_native_backend import (  # noqa: E402
    RATE, RTOL, backend_or_skip, compare_backends, make_pool, random_voices, random_chan_in,
    _song_rows)
from gpusynth.voices import NEVER  # noqa: E402


@pytest.fixture(scope="module")
def cupy_backend():
    from gpusynth.backend.cupy_backend import CupyBackend
    return backend_or_skip(CupyBackend)


@pytest.mark.parametrize("interp", ["cubic", "linear"])
@pytest.mark.parametrize("n_ticks,seed", [(1, 1), (3, 2), (8, 3)])
def test_cupy_matches_numpy(cupy_backend, interp, n_ticks, seed):
    worst = compare_backends(cupy_backend, seed, 300, n_ticks, n_blocks=3, interp=interp)
    print(f"cupy interp={interp} ticks={n_ticks}: worst error / peak = {worst:.2e}")


def _loaded(cls, n, rng_seed, pool, bounds, t0=640, frames=512, **kw):
    fields = random_voices(np.random.default_rng(rng_seed), n, t0, frames, bounds)
    b = cls(RATE, n, "cubic", **kw)
    b.upload_pool(pool)
    b.add_voices(np.arange(n), fields)
    return b


def test_cupy_matches_native(cupy_backend):
    """Same kernel source, exact mix: native and cupy agree to float32 rounding (libm against
    CUDA's sinf/cosf/tanf)."""
    from gpusynth.backend.native_backend import NativeBackend, BackendUnavailable
    try:
        NativeBackend(RATE, 16)
    except BackendUnavailable as e:
        pytest.skip(str(e))
    rng = np.random.default_rng(21)
    pool, bounds = make_pool(rng)
    ch = random_chan_in(rng, 8)
    a, fa = _loaded(NativeBackend, 700, 3, pool, bounds).render(700, 640, 8, ch, sends=True)
    b, fb = _loaded(cupy_backend, 700, 3, pool, bounds).render(700, 640, 8, ch, sends=True)
    peak = float(np.max(np.abs(a)))
    assert float(np.max(np.abs(a.astype(np.float64) - b))) <= RTOL * peak
    np.testing.assert_array_equal(fa, fb)


def test_cupy_window_size_and_order_invariance(cupy_backend):
    """On the GPU too the mix is exact: 8 ticks in one launch or in eight, any slot order,
    the same bits (int64 atomics are order-free)."""
    rng = np.random.default_rng(8)
    pool, bounds = make_pool(rng)
    ch = random_chan_in(rng, 8)
    a = _loaded(cupy_backend, 900, 5, pool, bounds)
    oa, _ = a.render(900, 640, 8, ch)
    b = _loaded(cupy_backend, 900, 5, pool, bounds)
    parts = [b.render(900, 640 + 64 * i, 1, ch[:, i:i + 1])[0] for i in range(8)]
    np.testing.assert_array_equal(oa, np.concatenate(parts))
    f = random_voices(np.random.default_rng(5), 900, 640, 512, bounds)
    perm = np.random.default_rng(1).permutation(900)
    c = cupy_backend(RATE, 900, "cubic")
    c.upload_pool(pool)
    c.add_voices(np.arange(900), f[perm])
    np.testing.assert_array_equal(oa, c.render(900, 640, 8, ch)[0])


@pytest.mark.parametrize("sends", [False, True])
def test_smem_fast_path_equals_its_portable_twin(cupy_backend, sends):
    """voice_render_smem (block reduction on chip) and voice_render_fused (the portable kernel)
    give the same bits and the same voice state; so does the CPU's lane kernel on the GPU."""
    rng = np.random.default_rng(31)
    pool, bounds = make_pool(rng)
    ch = random_chan_in(rng, 8)
    outs, tables = [], []
    for kernel in ("fused", "smem", "lanes"):
        b = _loaded(cupy_backend, 1500, 6, pool, bounds, kernel=kernel)
        outs.append([b.render(1500, 640 + 256 * i, 4, ch[:, 4 * i:4 * i + 4], sends=sends)[0]
                     for i in range(2)])
        tables.append(b.read_table(slice(0, 1500)))
    for o, t in zip(outs[1:], tables[1:]):
        np.testing.assert_array_equal(np.concatenate(outs[0]), np.concatenate(o))
        np.testing.assert_array_equal(tables[0], t)


def test_cupy_table_ops(cupy_backend):
    from gpusynth.backend.numpy_backend import NumpyBackend
    rng = np.random.default_rng(5)
    pool, bounds = make_pool(rng)
    fields = random_voices(rng, 40, 0, 256, bounds)
    a, b = NumpyBackend(RATE, 16), cupy_backend(RATE, 16)
    for x in (a, b):
        x.ensure_capacity(40)
        x.add_voices(np.arange(40), fields)
        x.set_times(np.array([3, 5]), np.array([7, 9], np.int64), np.array([NEVER, 11], np.int64))
        x.move(np.array([38, 39]), np.array([3, 5]))
        x.ensure_capacity(1000)
    np.testing.assert_array_equal(a.read_table(slice(0, 40)), b.read_table(slice(0, 40)))
    np.testing.assert_array_equal(a.read_table(np.array([1, 3])), b.read_table(np.array([1, 3])))


def test_synth_cupy_end_to_end_and_two_syncs_per_window(cupy_backend, monkeypatch):
    """Synth(backend='cupy') renders a song like Synth(backend='native'), and each window
    copies exactly two things back from the device (the audio and the done flags)."""
    from gpusynth import Synth
    from gpusynth.banks.builtin import load_builtin
    from gpusynth.events import event_array
    from gpusynth.backend import cupy_backend as cb
    bank = load_builtin()
    copies = []
    real = cb.CupyRuntime.to_host
    monkeypatch.setattr(cb.CupyRuntime, "to_host", lambda self, a: copies.append(1) or real(self, a))
    outs = []
    for be in ("native", "cupy"):
        s = Synth(backend=be, max_window_ticks=64)
        s.open({"sample_rate": RATE, "voices": 128})
        s.download(bank)
        s.play(event_array(_song_rows(RATE)))
        outs.append(s.render(RATE, 0))
        windows = s.running_stats()["windows"]
        s.close()
    assert len(copies) <= 2 * windows, (len(copies), windows)
    a, b = outs
    peak = float(np.max(np.abs(a)))
    assert peak > 1e-3 and float(np.max(np.abs(a.astype(np.float64) - b))) <= RTOL * peak


def _steady(n, bounds, rng_seed=0):
    f = random_voices(np.random.default_rng(rng_seed), n, 0, 512, bounds)
    f["start"] = 0
    f["release"] = NEVER
    f["kill"] = NEVER
    f["done"] = 0
    f["lmode"] = 1
    f["ve_sus"] = 0
    f["lend"] = np.maximum(f["lend"], f["lstart"] + 2)
    return f


@pytest.mark.parametrize("kernel", ["smem", "fused"])
def test_throughput(cupy_backend, kernel):
    """Voice-samples per second at a few polyphonies (printed). Asserts that every voice is
    mixed (a non-silent, finite output whose peak stays within the voices' summed amplitude)
    and a floor of 2e8 voice-samples/s from 100,000 voices up: twice what FluidSynth does on
    one CPU core (README), which a GPU that renders at all clears many times over."""
    rng = np.random.default_rng(0)
    pool, bounds = make_pool(rng)
    for n in (2000, 100_000, 1_000_000):
        b = cupy_backend(RATE, n, "cubic", kernel=kernel)
        b.upload_pool(pool)
        b.add_voices(np.arange(n), _steady(n, bounds))
        ch = random_chan_in(rng, 64)
        b.render(n, 0, 64, ch)
        cp.cuda.Device().synchronize()
        ts = []
        for r in range(3):
            t = time.perf_counter()
            out, _ = b.render(n, 4096 * (r + 1), 64, ch)
            ts.append(time.perf_counter() - t)
        t = min(ts)
        print(f"cupy/{kernel} {n:>9,} voices x 4096 frames: {t * 1e3:8.2f} ms, "
              f"{n * 4096 / t / 1e6:10.1f} M voice-samples/s, {n * 4096 / t / RATE:,.0f} "
              "real-time voices")
        out = np.asarray(out.get() if hasattr(out, "get") else out)
        assert np.isfinite(out).all()
        peak = float(np.abs(out[:, :2]).max())
        assert 0 < peak <= n, (n, peak)
        if n >= 100_000:
            assert n * 4096 / t >= 2e8, f"{kernel}: {n * 4096 / t:.3g} voice-samples/s"


def test_four_million_voices(cupy_backend):
    """A 4,000,000-voice table renders (int64 slots) and the mix sees the last voice."""
    n = 4_000_000
    pool, bounds = make_pool(np.random.default_rng(1))
    b = cupy_backend(RATE, n, "linear")
    b.upload_pool(pool)
    f = _steady(n, bounds, 2)
    f["done"][:-1] = 1                     # only the last slot plays
    f["atten"][-1] = 0.0
    f["ve_delay"][-1] = f["ve_attack"][-1] = 0.0
    f["pitch"][-1] = 0.0
    f["fc"][-1], f["q"][-1] = 13500.0, 0.0
    f["ml_vol"][-1] = f["cc1_ml_vol"][-1] = 0.0
    b.add_voices(np.arange(n), f)
    out, fin = b.render(n, 0, 2, random_chan_in(np.random.default_rng(3), 2))
    assert np.abs(out[:, :2]).max() > 0
    assert len(fin) == n - 1 and fin[-1] == n - 2
    assert b.read_table(np.array([n - 1]))["ipos"][0] != f["ipos"][-1]


@pytest.mark.parametrize("kernel", ["fused", "smem", "lanes"])
def test_cupy_ensemble(cupy_backend, kernel, monkeypatch):
    """Many songs in one launch on the GPU (each CuPy kernel; smem: warps whose lanes belong to
    several songs add to global memory directly): every song the same bits as rendered alone on
    the GPU, and within the native-vs-numpy tolerance of the native ensemble."""
    monkeypatch.setenv("GPUSYNTH_CUPY_KERNEL", kernel)
    from gpusynth.api import Renderer, load_bank_any
    from gpusynth.ensemble import Ensemble
    from gm_songs import song
    bank = load_bank_any(None)
    songs = [song(40 + i, seconds=1.0 + 0.5 * i, channels=1 + i % 3) for i in range(5)]
    outs = Ensemble(bank, backend="cupy", voices=256).render_many(songs)
    with Renderer(bank, backend="cupy", voices=256) as r:
        alone = [r.render(s) for s in songs]
    for o, a in zip(outs, alone):
        assert o.tobytes() == a.tobytes()
    try:
        nat = Ensemble(bank, backend="native", voices=256).render_many(songs)
    except Exception as e:                      # no compiler on this GPU machine
        pytest.skip(f"native backend unavailable: {e}")
    for o, n in zip(outs, nat):
        assert o.shape == n.shape and np.max(np.abs(o - n)) < 2e-4
