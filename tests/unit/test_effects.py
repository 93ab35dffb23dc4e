"""Reverb and chorus (gpusynth.effects) measured: RT60 and a straight exponential decay of the
reverb's impulse response with growing echo density, the chorus's frequency modulation on a
sustained sine, the engines (compiled helper and numpy twin) bit for bit at any block size,
and through the Synth: CC91 = CC93 = 0 and effects off give the dry render bit for bit, the
send level follows CC91, GS/XG SysEx and the DirectMusic `effects` port parameter."""
import numpy as np
import pytest

from gpusynth import effects as fx
from gpusynth.events import event_array
from synth_util import RATE, make_synth, sine_bank


def engines():
    out = ["reference"]
    if fx.NATIVE.available():
        out.append("native")
    return out


def chunked(unit, x, sizes, stereo=True):
    L, R, p, i = [], [], 0, 0
    while p < len(x):
        c = sizes[i % len(sizes)]
        i += 1
        a, b = unit.process(x[p:p + c])
        L.append(a)
        R.append(b)
        p += c
    return np.concatenate(L), np.concatenate(R)


def test_room_curve_is_fluidsynth():
    assert fx.room_to_time(0.0) == pytest.approx(0.7, rel=1e-6)
    assert fx.room_to_time(1.0) == pytest.approx(12.5, rel=1e-6)
    assert fx.room_to_time(0.2) == pytest.approx(0.907, abs=0.002)


@pytest.mark.parametrize("kw", [{}, {"damp": 0.4, "predelay": 0.013, "width": 1.0, "time": 2.0}])
def test_reverb_engines_bitwise_any_block(kw):
    rng = np.random.default_rng(3)
    x = np.zeros(RATE * 2, np.float32)
    x[77] = 1.0
    x[9000:15000] = rng.standard_normal(6000).astype(np.float32) * 0.2
    ref = chunked(fx.Reverb(RATE, "reference", **kw), x, [len(x)])
    for eng in engines():
        for sizes in ([64], [1000, 3, 4096], [64 * 7, 64 * 300]):
            got = chunked(fx.Reverb(RATE, eng, **kw), x, sizes)
            assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]), (eng, sizes)


@pytest.mark.parametrize("kw", [{}, {"type": "triangle", "voices": 4, "depth": 20.0, "speed": 2.0}])
def test_chorus_engines_bitwise_any_block(kw):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(RATE) * 0.3).astype(np.float32)[: RATE // 64 * 64]
    ref = chunked(fx.Chorus(RATE, "reference", **kw), x, [len(x)])
    for eng in engines():
        for sizes in ([64], [64 * 3, 64 * 100], [64 * 512]):
            got = chunked(fx.Chorus(RATE, eng, **kw), x, sizes)
            assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]), (eng, sizes)


# ---------------------------------------------------------------------------- reverb decay

def impulse_response(seconds, **kw):
    x = np.zeros(int(seconds * RATE), np.float32)
    x[0] = 1.0
    L, R = fx.Reverb(RATE, engines()[-1], **kw).process(x)
    return L.astype(np.float64), R.astype(np.float64)


def schroeder_db(h):
    e = np.cumsum((h ** 2)[::-1])[::-1]
    return 10 * np.log10(e / e[0] + 1e-300)


def rt60_from(edc, lo=-5.0, hi=-35.0):
    """RT60 from the Schroeder curve's slope between lo and hi dB (T30 x 2), and the largest
    deviation (dB) of the curve from that straight line."""
    i0 = int(np.argmax(edc <= lo))
    i1 = int(np.argmax(edc <= hi))
    t = np.arange(i0, i1) / RATE
    slope, icpt = np.polyfit(t, edc[i0:i1], 1)
    dev = np.max(np.abs(edc[i0:i1] - (slope * t + icpt)))
    return -60.0 / slope, dev


@pytest.mark.parametrize("kw,rt", [({}, fx.room_to_time(0.2)), ({"time": 2.0}, 2.0),
                                   ({"room": 0.6}, fx.room_to_time(0.6))])
def test_reverb_rt60_and_straight_decay(kw, rt):
    L, R = impulse_response(max(4.0, 1.6 * rt), **kw)
    for h in (L, R):
        edc = schroeder_db(h)
        got, dev = rt60_from(edc)
        print(f"\nRT60 parameter {rt:.3f} s, measured {got:.3f} s ({got / rt - 1:+.1%}), "
              f"Schroeder curve within {dev:.2f} dB of a line (-5..-35 dB)")
        assert abs(got / rt - 1) < 0.10
        assert dev < 1.5                      # one exponential: a straight line in dB
        # short-time energy (20 ms) along the decay: straight in dB too, no flutter or beats
        fr = int(0.02 * RATE)
        n = len(h) // fr
        e = 10 * np.log10((h[: n * fr] ** 2).reshape(n, fr).mean(axis=1) + 1e-300)
        t = (np.arange(n) + 0.5) * fr / RATE
        sel = (t > 0.1) & (e > e[(t > 0.1)].max() - 40)
        slope, icpt = np.polyfit(t[sel], e[sel], 1)
        resid = e[sel] - (slope * t[sel] + icpt)
        print(f"  20 ms energy: slope {slope:.1f} dB/s (RT60 {-60 / slope:.3f} s), "
              f"residual rms {resid.std():.2f} dB")
        assert resid.std() < 2.0
        assert abs(-60 / slope / rt - 1) < 0.15


def normalized_echo_density(h, win):
    """Abel & Huang: fraction of samples beyond one standard deviation in each window over the
    Gaussian's 0.3173 (about 1 once the response is dense, near 0 for sparse echoes)."""
    out = []
    for a in range(0, len(h) - win, win):
        w = h[a:a + win]
        s = w.std()
        out.append(np.mean(np.abs(w) > s) / 0.3173 if s > 0 else 0.0)
    return np.array(out)


def test_reverb_echo_density_grows():
    L, _ = impulse_response(1.0)
    ned = normalized_echo_density(L, int(0.02 * RATE))
    print("\nnormalized echo density per 20 ms:", np.round(ned[:12], 2))
    early, late = ned[1:4].mean(), ned[15:40].mean()
    assert early < 0.7 * late
    assert late > 0.8


def test_reverb_denormal_safe_and_ends_in_zeros():
    r = fx.Reverb(RATE, engines()[-1], time=0.2)
    x = np.zeros(RATE, np.float32)
    x[0] = 1.0
    r.process(x)
    for _ in range(12):                       # 12 s of silence: 600 dB below, flushed
        L, R = r.process(np.zeros(RATE, np.float32))
    assert not np.any(L) and not np.any(R) and r.silent()
    assert np.all((np.abs(r.hist) == 0) | (np.abs(r.hist) > 1e-30))


# ---------------------------------------------------------------------------- chorus

def test_chorus_modulates_a_sustained_sine():
    """One chorus voice on a 1 kHz sine: its instantaneous frequency swings by
    f x 2 pi x speed x (depth / 2) (the delay's slope) at the LFO rate; with the default three
    voices the spectrum spreads over that band, where the dry sine is one line."""
    f0, speed, depth_ms = 1000.0, 0.5, 8.0
    n = 8 * RATE
    x = np.sin(2 * np.pi * f0 * np.arange(n) / RATE).astype(np.float32)
    L, _ = fx.Chorus(RATE, engines()[-1], voices=1, speed=speed, depth=depth_ms,
                     width=0.0).process(x)
    y = L[RATE:].astype(np.float64)
    # instantaneous frequency from the analytic signal
    Y = np.fft.fft(y)
    Y[len(y) // 2 + 1:] = 0
    Y[1:len(y) // 2] *= 2
    ph = np.unwrap(np.angle(np.fft.ifft(Y)))
    inst = np.diff(ph) * RATE / (2 * np.pi)
    k = int(0.01 * RATE)
    inst = np.convolve(inst, np.ones(k) / k, mode="valid")[k:-k]
    dev = (inst.max() - inst.min()) / 2
    want = f0 * 2 * np.pi * speed * (depth_ms * 1e-3 * RATE / 2) / RATE
    print(f"\nchorus: frequency deviation {dev:.2f} Hz (expected {want:.2f} Hz), "
          f"centre {np.mean(inst):.2f} Hz")
    assert abs(dev / want - 1) < 0.1
    assert abs(np.mean(inst) - f0) < 0.5
    # the LFO period: the deviation's dominant frequency
    sp = np.abs(np.fft.rfft(inst - inst.mean(), 8 * len(inst)))
    fm = np.argmax(sp) * RATE / (8 * len(inst))
    assert abs(fm / speed - 1) < 0.05, fm
    # three voices: the spectrum spreads over +-dev around f0, the dry sine does not
    L3, R3 = fx.Chorus(RATE, engines()[-1], speed=speed, depth=depth_ms).process(x)

    def spread(s):
        s = np.asarray(s[RATE:], np.float64)
        p = np.abs(np.fft.rfft(s * np.hanning(len(s)))) ** 2
        f = np.fft.rfftfreq(len(s), 1 / RATE)
        near = p[np.abs(f - f0) <= 1.0].sum()
        band = p[np.abs(f - f0) <= 1.5 * want].sum()
        return near / band
    print(f"  energy within 1 Hz of f0 / within the band: dry {spread(x):.3f}, "
          f"chorus {spread(L3 + R3):.3f}")
    assert spread(x) > 0.99 and spread(L3 + R3) < 0.6


# ---------------------------------------------------------------------------- through the Synth

def _song(cc91=None, cc93=None, channels=(0, 1)):
    rows = []
    for c in channels:
        if cc91 is not None:
            rows.append((0, c, 0xB0, 91, cc91))
        if cc93 is not None:
            rows.append((0, c, 0xB0, 93, cc93))
    for i, c in enumerate(channels):
        rows += [(100 + 3000 * i, c, 0x90, 60 + 7 * i, 100), (RATE // 2, c, 0x80, 60 + 7 * i, 0)]
    return event_array(rows)


def _render(events, n=RATE * 2, backend="numpy", sysex=None, open_params=None, **kw):
    kw.setdefault("effects", True)
    s = make_synth(backend=backend, **kw)
    if open_params is not None:
        s.close()
        s.open({"sample_rate": RATE, "voices": 64, **open_params})
    s.play(events, sysex)
    return s.render(n, 0), s


@pytest.mark.parametrize("backend", [pytest.param("numpy", marks=pytest.mark.slow), "native"])
def test_zero_sends_are_the_dry_render_bit_for_bit(backend):
    if backend == "native" and not fx.NATIVE.available():
        pytest.skip("no compiler")
    dry, _ = _render(_song(0, 0, range(16)[:3]), backend=backend, effects=False)
    wet, _ = _render(_song(0, 0, range(16)[:3]), backend=backend, effects=True)
    assert np.array_equal(dry, wet)
    default, _ = _render(_song(None, None, range(3)), backend=backend, effects=True)
    assert not np.array_equal(dry, default)       # CC91 defaults to 40: reverb is heard


@pytest.mark.slow
def test_effects_off_is_the_dry_render():
    dry, s0 = _render(_song(), effects=False)
    assert s0.port_caps()["effect_flags"] == 3
    for kw, op in (({"reverb": False, "chorus": False}, None), ({}, {"effects": 0})):
        got, s = _render(_song(), open_params=op, **kw)
        assert s.params["effects"] == 0
        assert np.array_equal(dry, got)
    on, s = _render(_song(None, 60))
    assert s.params["effects"] == 3 and not np.array_equal(dry, on)


@pytest.mark.slow
def test_send_level_follows_cc91():
    dry, _ = _render(_song(), effects=False)
    rms = {}
    for v in (20, 40, 80, 127):
        out, _ = _render(_song(v, 0), chorus=False)
        rms[v] = np.sqrt(np.mean((out.astype(np.float64) - dry) ** 2))
    print("\nwet rms by CC91:", {k: f"{v:.3e}" for k, v in rms.items()})
    for v in (20, 80, 127):
        assert rms[v] / rms[40] == pytest.approx(v / 40, rel=0.01)


def test_effects_block_size_independent():
    ev = _song(70, 90)
    ref, _ = _render(ev, block_ticks=1)
    s = make_synth(block_ticks=4, max_window_ticks=64, effects=True)
    s.play(ev)
    parts, pos = [], 0
    for n in (1, 63, 64, 1000, 4097, 30000, 2 * RATE):
        n = min(n, 2 * RATE - pos)
        if n <= 0:
            break
        parts.append(s.render(n, pos))
        pos += n
    assert np.array_equal(np.concatenate(parts), ref)


def test_numpy_and_native_effect_engines_agree_in_the_synth():
    if not fx.NATIVE.available():
        pytest.skip("no compiler")
    a, _ = _render(_song(90, 90), effects_engine="reference")
    b, _ = _render(_song(90, 90), effects_engine="native")
    assert np.array_equal(a, b)


def _gs(addr, data):
    body = bytes(addr) + bytes(data)
    chk = (128 - sum(body) % 128) % 128
    return bytes([0xF0, 0x41, 0x10, 0x42, 0x12]) + body + bytes([chk, 0xF7])


@pytest.mark.slow
def test_gs_and_xg_sysex_effects():
    dry, _ = _render(_song(), effects=False)
    base, _ = _render(_song(), chorus=False)
    # GS reverb level 0 at time 0: no reverb at all
    ev = np.concatenate([event_array([(0, 0, 0xF0, 0, 0)]), _song()])
    ev["sysex"][0] = 0
    off, _ = _render(ev, sysex=[_gs([0x40, 0x01, 0x33], [0])], chorus=False)
    assert np.array_equal(off, dry)
    # GS reverb level 127: about twice the wet level of the default 64
    loud, _ = _render(ev, sysex=[_gs([0x40, 0x01, 0x33], [127])], chorus=False)
    r = np.sqrt(np.mean((loud - dry) ** 2) / np.mean((base - dry) ** 2))
    assert r == pytest.approx(127 / 64, rel=0.01)
    # GS macro Hall 2 (4): a longer tail than the default room
    hall, _ = _render(ev, n=3 * RATE, sysex=[_gs([0x40, 0x01, 0x30], [4])], chorus=False)
    room, _ = _render(_song(), n=3 * RATE, chorus=False)
    tail = slice(int(1.8 * RATE), 3 * RATE)
    assert np.abs(hall[tail]).max() > 10 * np.abs(room[tail]).max()
    # GS part reverb send (40 1x 22) = CC91 of that part; XG reverb type 0 = no reverb
    part, s = _render(ev, sysex=[_gs([0x40, 0x11, 0x22], [0])], chorus=False)
    assert s.control.channels.cc[0, 91] == 0 and s.control.channels.cc[1, 91] == 40
    xg, _ = _render(ev, sysex=[bytes([0xF0, 0x43, 0x10, 0x4C, 0x02, 0x01, 0x00, 0x00, 0x00, 0xF7])],
                    chorus=False)
    assert np.array_equal(xg, dry)


def test_reverb_tail_is_rendered_after_the_last_voice():
    from gpusynth.rendering import render_song

    class Song:
        n_notes, channel_groups, duration_s = 1, 1, 0.2
        sysex = []

        def events(self, rate):
            return event_array([(0, 0, 0x90, 69, 100), (RATE // 10, 0, 0x80, 69, 0)])
    bank = sine_bank(release_tc=-8000.0)
    dry, _ = render_song(Song(), bank, chunk=4096, effects=False)
    wet, _ = render_song(Song(), bank, chunk=4096, effects=True)
    assert len(wet) > len(dry) + RATE // 2          # the reverb tail (RT60 0.9 s) to -90 dBFS
    assert np.abs(wet[-4096:]).max() < 10 ** (-90 / 20)


def test_bad_knobs_are_refused():
    from gpusynth import Synth
    with pytest.raises(ValueError):
        Synth(reverb_level=2.0)
    with pytest.raises(ValueError):
        Synth(chorus_type="square")
    with pytest.raises(TypeError):
        Synth(reverb_size=0.5)
