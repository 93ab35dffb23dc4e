"""gpusynth.units: cents, absolute cents, centibels, timecents, DLS fixed point and the
SF2/DLS concave / convex curves (known values, round trips, endpoints, monotonicity)."""
import math

import numpy as np
import pytest

from gpusynth import units


# ---- cents <-> ratio ---------------------------------------------------------------------

@pytest.mark.parametrize("cents, ratio", [(0, 1.0), (1200, 2.0), (-1200, 0.5), (2400, 4.0),
                                          (700, 2.0 ** (7 / 12)), (100, 2.0 ** (1 / 12))])
def test_cents_to_ratio_known_values(cents, ratio):
    assert units.cents_to_ratio(cents) == pytest.approx(ratio, rel=1e-15)
    assert units.ratio_to_cents(ratio) == pytest.approx(cents, abs=1e-9)


def test_cents_ratio_round_trip_and_additivity():
    c = np.random.default_rng(0).uniform(-12000, 12000, 1000)
    np.testing.assert_allclose(units.ratio_to_cents(units.cents_to_ratio(c)), c, atol=1e-9)
    a, b = c[:500], c[500:]
    # cents add where ratios multiply
    np.testing.assert_allclose(units.cents_to_ratio(a + b),
                               units.cents_to_ratio(a) * units.cents_to_ratio(b), rtol=1e-12)


# ---- absolute cents <-> Hz ---------------------------------------------------------------

def test_abs_cents_known_values():
    assert units.abs_cents_to_hz(6900) == pytest.approx(440.0, rel=1e-14)
    assert units.abs_cents_to_hz(0) == pytest.approx(440.0 * 2.0 ** (-69 / 12), rel=1e-14)
    assert units.abs_cents_to_hz(8100) == pytest.approx(880.0, rel=1e-14)      # A5
    assert units.abs_cents_to_hz(6000) == pytest.approx(261.6255653005986, rel=1e-12)  # C4
    assert units.hz_to_abs_cents(440.0) == pytest.approx(6900.0, abs=1e-9)


def test_abs_cents_of_midi_keys_follow_12tet():
    keys = np.arange(128)
    hz = units.abs_cents_to_hz(keys * 100.0)
    np.testing.assert_allclose(hz, 440.0 * 2.0 ** ((keys - 69) / 12.0), rtol=1e-13)
    np.testing.assert_allclose(units.hz_to_abs_cents(hz), keys * 100.0, atol=1e-9)


def test_hz_abs_cents_round_trip():
    hz = np.geomspace(1.0, 40000.0, 500)
    np.testing.assert_allclose(units.abs_cents_to_hz(units.hz_to_abs_cents(hz)), hz, rtol=1e-13)


# ---- centibels <-> gain ------------------------------------------------------------------

@pytest.mark.parametrize("cb, gain", [(0, 1.0), (200, 0.1), (400, 0.01), (1000, 1e-5),
                                      (-200, 10.0), (20 * math.log10(2) * 10, 0.5)])
def test_cb_gain_known_values(cb, gain):
    # cB = 1/10 dB of attenuation: 200 cB = 20 dB = amplitude / 10
    assert units.cb_to_gain(cb) == pytest.approx(gain, rel=1e-13)
    assert units.gain_to_cb(gain) == pytest.approx(cb, abs=1e-9)


def test_cb_gain_round_trip_and_monotonic():
    cb = np.linspace(-500.0, 1440.0, 1000)
    g = units.cb_to_gain(cb)
    assert np.all(np.diff(g) < 0)                     # more attenuation, less gain
    np.testing.assert_allclose(units.gain_to_cb(g), cb, atol=1e-9)


def test_gain_to_cb_of_zero_is_finite_floor():
    cb = units.gain_to_cb(np.array([0.0, -1.0, 1e-20]))
    assert np.all(np.isfinite(cb))
    np.testing.assert_allclose(cb, 4000.0)            # clamped at gain 1e-20 (400 dB)


# ---- timecents <-> seconds ---------------------------------------------------------------

@pytest.mark.parametrize("tc, sec", [(0, 1.0), (-1200, 0.5), (1200, 2.0), (-2400, 0.25),
                                     (-12000, 2.0 ** -10), (8000, 2.0 ** (8000 / 1200))])
def test_tc_to_seconds_known_values(tc, sec):
    assert units.tc_to_seconds(tc) == pytest.approx(sec, rel=1e-14)


@pytest.mark.parametrize("tc", [-32768, units.TC_ZERO, -32767, -40000])
def test_tc_sentinel_is_zero_seconds(tc):
    assert units.tc_to_seconds(tc) == 0.0


def test_tc_just_above_sentinel_keeps_its_meaning():
    # only the sentinel region is 0 s: -32766 tc is a (tiny) positive time
    assert 0.0 < units.tc_to_seconds(-32766) < 1e-8


def test_seconds_to_tc_round_trip_and_zero():
    s = np.geomspace(1e-3, 100.0, 300)
    np.testing.assert_allclose(units.tc_to_seconds(units.seconds_to_tc(s)), s, rtol=1e-13)
    assert units.seconds_to_tc(1.0) == 0.0
    assert units.seconds_to_tc(0.5) == pytest.approx(-1200.0, abs=1e-12)
    assert units.seconds_to_tc(0.0) == units.TC_ZERO
    assert units.seconds_to_tc(-1.0) == units.TC_ZERO
    assert units.tc_to_seconds(units.seconds_to_tc(0.0)) == 0.0


def test_dls_fixed():
    np.testing.assert_array_equal(units.dls_fixed([65536, -5 * 65536, 32768, 0]),
                                  [1.0, -5.0, 0.5, 0.0])


# ---- concave / convex curves -------------------------------------------------------------

def test_concave_endpoints_formula_and_monotonic():
    assert units.concave(0.0) == 0.0
    assert units.concave(1.0) == 1.0
    x = np.linspace(0.0, 0.995, 1000)
    y = units.concave(x)
    assert np.all(np.diff(y) > 0)
    assert np.all((y >= 0) & (y < 1))
    np.testing.assert_allclose(y, -(40.0 / 96.0) * np.log10(1.0 - x), rtol=1e-13, atol=1e-15)
    # the log reaches 1 at x = 1 - 10**-2.4 and the curve is clipped there (never above 1)
    top = np.linspace(0.995, 1.0, 101)
    assert np.all(np.diff(units.concave(top)) >= 0) and np.all(units.concave(top) <= 1.0)
    assert units.concave(1.0 - 10 ** -2.4 + 1e-9) == 1.0
    # the concave curve rises slowly, then steeply: below the diagonal in the middle
    assert units.concave(0.5) == pytest.approx((40.0 / 96.0) * math.log10(2.0), rel=1e-13)
    assert units.concave(0.5) < 0.5


def test_concave_convex_clip_outside_unit_interval():
    np.testing.assert_array_equal(units.concave([-1.0, 2.0]), [0.0, 1.0])
    np.testing.assert_array_equal(units.convex([-1.0, 2.0]), [0.0, 1.0])


def test_convex_is_concave_mirrored():
    assert units.convex(0.0) == 0.0
    assert units.convex(1.0) == 1.0
    x = np.linspace(0.0, 1.0, 1001)
    np.testing.assert_allclose(units.convex(x), 1.0 - units.concave(1.0 - x), atol=1e-15)
    assert np.all(np.diff(units.convex(x)) >= 0)
    assert units.convex(0.5) > 0.5


def test_concave_table_endpoints_monotonic_and_read_only():
    t = units.concave_table()
    assert t.shape == (128,) and t.dtype == np.float64
    assert t[0] == 1.0 and t[127] == 0.0
    assert np.all(np.diff(t) < 0)                     # louder value, less attenuation
    assert units.concave_table() is t                 # one evaluation, memoised
    assert not t.flags.writeable
    with pytest.raises(ValueError):
        t[5] = 0.0
    np.testing.assert_array_equal(t, units.midi_concave_atten_cb(np.arange(128), 1.0))


def test_concave_table_is_gm_40log_curve():
    # 960 cB through the negative concave curve = GM's 40 * log10(v / 127) dB
    v = np.arange(1, 128)
    np.testing.assert_allclose(960.0 * units.concave_table()[v], -400.0 * np.log10(v / 127.0),
                               rtol=1e-12, atol=1e-12)


def test_midi_concave_atten_cb_depth_and_clipping():
    assert units.midi_concave_atten_cb(127) == 0.0
    assert units.midi_concave_atten_cb(0) == 960.0
    assert units.midi_concave_atten_cb(0, 480.0) == 480.0
    assert units.midi_concave_atten_cb(64, 480.0) == pytest.approx(
        units.midi_concave_atten_cb(64) / 2, rel=1e-15)
    np.testing.assert_array_equal(units.midi_concave_atten_cb([200, -5]), [0.0, 960.0])
