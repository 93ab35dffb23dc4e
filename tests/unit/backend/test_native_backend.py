"""The native backend (kernels/*.cu through the host shim) against the numpy reference.

Tolerance: max |native - numpy| <= 1e-5 x the block's peak (RTOL below). Both compute in float32
in the same operation order (the kernel is compiled with -ffp-contract=off) and both use the
same polynomial 2^x (kernels/detmath.h gs_exp2 = gpusynth.envelope.exp2), so the remaining
differences are: libm's sinf/cosf/tanf against numpy's (an ulp in the pan gains and the filter
coefficient), and the stepped envelope, which the kernel advances by repeated multiply-adds and
numpy computes as power(ratio, n) (a few ulps over a tick). Measured: about 1e-6 of the peak
with resonant filters (Q up to 40 dB), 1e-7 without. 1e-5 is far below anything audible or any
real bug (a wrong frame, sample or envelope stage shows up as > 1e-2).
"""
from __future__ import annotations

import numpy as np
import pytest

from gpusynth.voices import VOICE_DTYPE, CHANNEL_INPUTS, TICK, NEVER
from gpusynth.backend.numpy_backend import NumpyBackend

RTOL = 1e-5
RATE = 48000
N_CHAN = 5


def make_pool(rng, n_samples=6):
    """A pool of a few samples (sines, noise, decaying partials) and their [start, end)."""
    parts, bounds, pos = [], [], 0
    for i in range(n_samples):
        n = int(rng.integers(300, 6000))
        t = np.arange(n)
        kind = i % 3
        if kind == 0:
            x = np.sin(2 * np.pi * t / rng.uniform(20, 200))
        elif kind == 1:
            x = rng.standard_normal(n) * 0.3
        else:
            x = sum(np.sin(2 * np.pi * t * h / rng.uniform(50, 400)) / h for h in range(1, 5))
            x *= np.exp(-t / n)
        parts.append(x.astype(np.float32))
        bounds.append((pos, pos + n))
        pos += n
    return np.concatenate(parts), bounds


def random_voices(rng, n, block_start, n_frames, bounds, n_chan=N_CHAN):
    """Voice records (VOICE_DTYPE) for n voices covering every feature of the render."""
    f = np.zeros(n, VOICE_DTYPE)
    which = rng.integers(0, len(bounds), n)
    ps = np.array([bounds[w][0] for w in which], np.int64)
    pe = np.array([bounds[w][1] for w in which], np.int64)
    ln = pe - ps
    f["pstart"], f["pend"] = ps, pe
    ls = ps + (rng.uniform(0, 0.8, n) * ln).astype(np.int64)
    le = ls + 1 + (rng.uniform(0, 1, n) * (pe - ls - 1)).astype(np.int64)
    le = np.minimum(le, pe)
    zero = rng.random(n) < 0.05                      # degenerate loops: length 0 (treated as 1)
    le[zero] = ls[zero]
    f["lstart"], f["lend"] = ls, le
    f["lmode"] = rng.choice(np.array([0, 1, 3], np.int32), n)
    # timing: some before the block, many inside it (mid-tick), some after
    f["start"] = block_start + rng.integers(-3 * TICK, n_frames + TICK, n)
    rel = f["start"] + rng.integers(-10, 3 * n_frames, n)
    f["release"] = np.where(rng.random(n) < 0.5, rel, NEVER)
    kill = f["start"] + rng.integers(0, 3 * n_frames, n)
    f["kill"] = np.where(rng.random(n) < 0.15, kill, NEVER)
    f["chan"] = rng.integers(0, n_chan, n).astype(np.int32)
    f["pitch"] = rng.uniform(-2400, 2400, n)
    wild = rng.random(n) < 0.05
    f["pitch"][wild] = rng.choice([-30000.0, -13000.0, 12500.0, 40000.0], wild.sum())
    f["pitch"][rng.random(n) < 0.1] = 0.0             # exactly one frame per frame
    f["atten"] = rng.uniform(0, 300, n)
    f["pan"] = rng.uniform(-600, 600, n)
    fc_open = rng.random(n) < 0.4
    f["fc"] = np.where(fc_open, rng.uniform(13500, 14000, n), rng.uniform(2500, 13400, n))
    f["q"] = np.where(fc_open & (rng.random(n) < 0.7), 0.0, rng.uniform(0, 400, n))
    for nm in ("rev", "cho", "rev_cc", "cho_cc"):
        f[nm] = rng.uniform(0, 1, n)
    for p in ("ve", "me"):
        f[p + "_delay"] = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 400, n))
        f[p + "_attack"] = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0, 1500, n))
        f[p + "_hold"] = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 400, n))
        f[p + "_decay"] = rng.uniform(0, 20000, n)
        f[p + "_release"] = rng.uniform(0, 8000, n)
    f["ve_sus"] = rng.uniform(0, 1440, n)
    f["me_sus"] = rng.uniform(0, 1, n)
    f["me_pitch"] = rng.uniform(-1200, 1200, n)
    f["me_fc"] = rng.uniform(-3000, 3000, n)
    for p in ("ml", "vl"):
        f[p + "_delay"] = rng.uniform(0, 800, n)
        f[p + "_freq"] = rng.uniform(0, 20, n) / RATE
    for nm in ("ml_pitch", "ml_fc", "ml_vol", "vl_pitch", "cc1_vib", "press_vib",
               "cc1_ml_pitch", "cc1_ml_vol", "cc1_ml_fc"):
        f[nm] = rng.uniform(-100, 100, n)
    f["ipos"] = ps.copy()
    f["gl"] = -1.0
    f["gr"] = -1.0
    f["done"] = (rng.random(n) < 0.03).astype(np.int8)
    # SF2 voices: convex mod-envelope attack, the filter stage's gain (1/sqrt(Q))
    f["me_convex"] = (rng.random(n) < 0.5).astype(np.int8)
    f["fatt"] = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(-15.05, 465.0, n))
    return f


def random_chan_in(rng, n_ticks, n_chan=N_CHAN):
    """Channel inputs [N_CHIN, n_ticks, n_chan] as the backends take them."""
    lim = {"ch_pitch": (-200, 200), "ch_gain": (-20, 100), "ch_pan": (-300, 300),
           "ch_mod": (0, 1), "ch_press": (0, 1), "ch_rev": (0, 1), "ch_cho": (0, 1)}
    return np.stack([rng.uniform(*lim[k], (n_ticks, n_chan)).astype(np.float32)
                     for k in CHANNEL_INPUTS])


STATE = ("ipos", "fpos", "gl", "gr", "s1", "s2", "done")


def compare_backends(make_other, seed, n_voices, n_ticks, n_blocks=3, interp="cubic",
                     rtol=RTOL):
    """Render n_blocks consecutive blocks with numpy and the other backend from the same random
    table; check audio, finished slots and state fields after every block. Returns the worst
    relative error."""
    rng = np.random.default_rng(seed)
    pool, bounds = make_pool(rng)
    nf = n_ticks * TICK
    B0 = 10 * TICK * int(rng.integers(1, 100))
    fields = random_voices(rng, n_voices, B0, n_blocks * nf, bounds)
    ref = NumpyBackend(RATE, n_voices, interp)
    other = make_other(RATE, n_voices, interp)
    for b in (ref, other):
        b.upload_pool(pool)
        b.add_voices(np.arange(n_voices), fields)
    worst = 0.0
    for blk in range(n_blocks):
        ch = random_chan_in(rng, n_ticks)
        o1, fin1 = ref.render(n_voices, B0 + blk * nf, n_ticks, ch, sends=True)
        o2, fin2 = other.render(n_voices, B0 + blk * nf, n_ticks, ch, sends=True)
        assert o2.shape == o1.shape and o2.dtype == np.float32
        peak = max(float(np.max(np.abs(o1))), 1e-3)
        err = float(np.max(np.abs(o1.astype(np.float64) - o2)))
        worst = max(worst, err / peak)
        assert err <= rtol * peak, (
            f"block {blk}: max abs error {err:.3g} > {rtol} x peak {peak:.3g} at "
            f"{np.unravel_index(np.argmax(np.abs(o1 - o2)), o1.shape)}")
        np.testing.assert_array_equal(fin1, fin2)
        ta, tb = ref.read_table(slice(0, n_voices)), other.read_table(slice(0, n_voices))
        for nm in STATE:
            a, b2 = ta[nm], tb[nm]
            if nm in ("ipos", "done"):
                np.testing.assert_array_equal(a, b2, err_msg=nm)
            else:
                scale = max(float(np.max(np.abs(a))), 1.0)
                np.testing.assert_allclose(b2, a, rtol=0, atol=rtol * scale, err_msg=nm)
    other.last_fields = ref.read_table(slice(0, n_voices))
    return worst


def backend_or_skip(cls):
    """``cls`` (a backend class) if it can be created here, else the test is skipped with the
    reason it cannot (also the CuPy tests' fixture)."""
    from gpusynth.compiled import BackendUnavailable
    try:
        cls(RATE, 16)
    except BackendUnavailable as e:
        pytest.skip(str(e))
    return cls


@pytest.fixture(scope="module")
def native():
    from gpusynth.backend.native_backend import NativeBackend
    return backend_or_skip(NativeBackend)


@pytest.mark.parametrize("interp", ["cubic", "linear"])
@pytest.mark.parametrize("n_ticks,seed", [(1, 1), (3, 2), (8, 3)])
def test_random_voices_match(native, interp, n_ticks, seed):
    worst = compare_backends(native, seed, 300, n_ticks, n_blocks=3, interp=interp)
    print(f"interp={interp} ticks={n_ticks}: worst error / peak = {worst:.2e}")


def test_random_cases_cover_every_way_to_finish(native):
    """The random tables really exercise the endings the comparison is about: one-shot samples
    running out, kill fades, releases decaying below the done level; and voices still playing."""
    made = []

    def make(*a):
        made.append(native(*a))
        return made[-1]
    compare_backends(make, 4, 400, 8, n_blocks=4)
    f = made[0].last_fields
    done = f["done"] == 1
    sample_end = done & (f["lmode"] == 0) & (f["ipos"] >= f["pend"])
    killed = done & (f["kill"] < NEVER)
    released = done & (f["release"] < NEVER) & (f["kill"] == NEVER) & (f["lmode"] != 0)
    playing = ~done & (f["gl"] >= 0)
    print(f"sample end {sample_end.sum()}, killed {killed.sum()}, released {released.sum()}, "
          f"still playing {playing.sum()}")
    assert sample_end.sum() >= 5 and killed.sum() >= 5 and released.sum() >= 5
    assert playing.sum() >= 20


def _loaded(make, rng, n, t0, n_frames, pool_bounds, order=None):
    pool, bounds = pool_bounds
    fields = random_voices(rng, n, t0, n_frames, bounds)
    x = make(RATE, n, "cubic")
    x.upload_pool(pool)
    x.add_voices(np.arange(n), fields if order is None else fields[order])
    return x


def test_window_size_invariance(native):
    """Rendering 8 ticks at once or 8 x 1 tick gives the same audio bits (exact int64 mix)."""
    rng = np.random.default_rng(7)
    pb = make_pool(rng)
    ch = random_chan_in(rng, 8)
    a = _loaded(native, np.random.default_rng(1), 200, 6400, 512, pb)
    b = _loaded(native, np.random.default_rng(1), 200, 6400, 512, pb)
    oa, fa = a.render(200, 6400, 8, ch, sends=True)
    parts = [b.render(200, 6400 + i * TICK, 1, ch[:, i:i + 1], sends=True)[0] for i in range(8)]
    np.testing.assert_array_equal(oa, np.concatenate(parts))
    np.testing.assert_array_equal(fa, np.flatnonzero(b.read_table(slice(0, 200))["done"]))


def test_voice_order_and_thread_count_invariance(native):
    """The mix is exact: permuting the slots, or rendering on 1 or 2 threads, changes no bit."""
    rng = np.random.default_rng(17)
    pb = make_pool(rng)
    ch = random_chan_in(rng, 6)
    n = 700
    perm = np.random.default_rng(2).permutation(n)
    a = _loaded(native, np.random.default_rng(3), n, 640, 384, pb)
    b = _loaded(native, np.random.default_rng(3), n, 640, 384, pb, order=perm)
    lib = a.rt.lib
    nt = lib.omp_get_max_threads()
    try:
        lib.omp_set_num_threads(max(nt, 2))   # 2 even where a pytest-xdist worker runs on 1
        oa = a.render(n, 640, 6, ch)[0]
        ob = b.render(n, 640, 6, ch)[0]
        np.testing.assert_array_equal(oa, ob)
        lib.omp_set_num_threads(1)
        c = _loaded(native, np.random.default_rng(3), n, 640, 384, pb)
        oc = c.render(n, 640, 6, ch)[0]
    finally:
        lib.omp_set_num_threads(nt)
    np.testing.assert_array_equal(oa, oc)
    assert np.abs(oa).max() > 0.1


def test_fused_kernel_equals_lane_kernel(native):
    """voice_render_fused (the GPU's per-voice loop) and voice_render (the CPU's lane passes)
    compute the same frames operation for operation: equal bits, equal voice state."""
    rng = np.random.default_rng(23)
    pb = make_pool(rng)
    ch = random_chan_in(rng, 9)
    a = _loaded(native, np.random.default_rng(4), 500, 640, 576, pb)
    b = _loaded(lambda *x: native(*x, kernel="voice_render_fused"), np.random.default_rng(4), 500,
                640, 576, pb)
    for i in range(3):
        oa, fa = a.render(500, 640 + i * 192, 3, ch[:, 3 * i:3 * i + 3], sends=True)
        ob, fb = b.render(500, 640 + i * 192, 3, ch[:, 3 * i:3 * i + 3], sends=True)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(a.read_table(slice(0, 500)), b.read_table(slice(0, 500)))


@pytest.mark.parametrize("layout", ["one level", "two levels", "some dry"])
def test_send_levels_shared_or_not(native, layout):
    """A send bus sums level x (qL + qR) per voice; where every live lane of a chunk has the
    same level the lane kernel multiplies the chunk's dry sums once instead (the same integers):
    lanes == fused bit for bit, both == numpy within RTOL, and with one level the reverb bus is
    that level x (L + R) / 2."""
    rng = np.random.default_rng(31)
    pool, bounds = make_pool(rng)
    ch = random_chan_in(rng, 6)
    n = 300
    fields = random_voices(np.random.default_rng(8), n, 640, 384, bounds)
    fields["rev_cc"] = 0.0                       # the level is the voice's own: no CC input
    fields["cho_cc"] = 0.0
    if layout == "one level":
        fields["rev"], fields["cho"] = 0.3, 0.0
    elif layout == "two levels":
        fields["rev"] = np.where(np.arange(n) % 5 == 0, 0.7, 0.3)
        fields["cho"] = 0.125
    else:
        fields["rev"] = np.where(np.arange(n) % 7 == 0, 0.0, 0.3)
        fields["cho"] = np.where(np.arange(n) % 3 == 0, 0.5, 0.0)
    outs = []
    for make in (native, lambda *x: native(*x, kernel="voice_render_fused"), NumpyBackend):
        x = make(RATE, n, "cubic")
        x.upload_pool(pool)
        x.add_voices(np.arange(n), fields)
        outs.append(x.render(n, 640, 6, ch, sends=True)[0])
    lanes, fused, ref = outs
    np.testing.assert_array_equal(lanes, fused)
    peak = float(np.abs(ref).max())
    assert peak > 0.05
    assert np.abs(ref.astype(np.float64) - lanes).max() <= RTOL * peak
    if layout == "one level":
        L, R, rv = (lanes[:, i].astype(np.float64) for i in range(3))
        np.testing.assert_allclose(rv, 0.3 * (L + R) / 2, rtol=0, atol=1e-3 * 0.3 * peak)
        assert np.abs(rv).max() > 0.01 and not lanes[:, 3].any()


def test_table_ops(native):
    """add_voices / set_times / move / ensure_capacity / read_table match the numpy backend's."""
    rng = np.random.default_rng(5)
    pool, bounds = make_pool(rng)
    fields = random_voices(rng, 40, 0, 256, bounds)
    a, b = NumpyBackend(RATE, 16), native(RATE, 16)
    for x in (a, b):
        x.ensure_capacity(40)
        x.add_voices(np.arange(40), fields)
        x.set_times(np.array([3, 5]), np.array([7, 9], np.int64), np.array([NEVER, 11], np.int64))
        x.move(np.array([38, 39]), np.array([3, 5]))
        x.ensure_capacity(1000)
        assert x.capacity >= 1000
    ta, tb = a.read_table(slice(0, 40)), b.read_table(slice(0, 40))
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(a.read_table(np.array([1, 3])), b.read_table(np.array([1, 3])))
    assert tb["release"][3] == fields["release"][38]      # moved over the update
    o, fin = b.render(0, 0, 2, random_chan_in(rng, 2))
    assert o.shape == (128, 2) and not o.any() and len(fin) == 0


def test_backends_implement_the_protocol(native):
    from gpusynth.backend.base import Backend
    assert isinstance(NumpyBackend(RATE, 16), Backend)
    assert isinstance(native(RATE, 16), Backend)


def _song_rows(rate):
    """(time, chan, status, data1, data2) rows: notes on several programs and the drum channel,
    overlapping, with pitch bend, pan, mod wheel, expression, reverb/chorus sends, sustain."""
    rng = np.random.default_rng(3)
    rows = [(0, 0, 0xC0, 0, 0), (0, 1, 0xC0, 48, 0), (0, 2, 0xC0, 73, 0), (0, 3, 0xC0, 81, 0),
            (0, 0, 0xB0, 91, 100), (0, 1, 0xB0, 93, 80)]
    t = 0
    for _ in range(50):
        ch = int(rng.choice([0, 1, 2, 3, 9]))
        key = int(rng.integers(36, 90))
        rows.append((t, ch, 0x90, key, int(rng.integers(30, 127))))
        rows.append((t + int(rng.integers(200, 12000)), ch, 0x80, key, 0))
        t += int(rng.integers(0, 900))
    rows += [(5000, 1, 0xE0, 0, 90), (8000, 0, 0xB0, 10, 20), (9000, 2, 0xB0, 1, 100),
             (12000, 3, 0xB0, 11, 60), (15000, 0, 0xB0, 64, 127), (30000, 0, 0xB0, 64, 0)]
    rows.sort(key=lambda r: r[0])
    return rows


def test_synth_end_to_end(native):
    """Synth(backend='native') and Synth(backend='numpy') render the same song with the
    built-in GM bank (samples with loops, filters, LFOs, envelopes, drums) within RTOL."""
    from gpusynth import Synth
    from gpusynth.banks.builtin import load_builtin
    from gpusynth.events import event_array
    bank = load_builtin()
    rows = _song_rows(RATE)
    outs = []
    for be in ("numpy", "native"):
        s = Synth(backend=be, block_ticks=4)
        s.open({"sample_rate": RATE, "voices": 128})
        s.download(bank)
        s.play(event_array(rows))
        outs.append(s.render(RATE, 0, sends=True))
        s.close()
    a, b = outs
    peak = float(np.max(np.abs(a)))
    assert peak > 1e-3
    err = float(np.max(np.abs(a.astype(np.float64) - b)))
    print(f"end to end: peak {peak:.3g}, max abs error {err:.3g} ({err / peak:.2e} of peak)")
    assert err <= RTOL * peak
