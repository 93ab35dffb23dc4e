"""Unit conversions shared by banks, the host engine and the backends.

Units follow SF2/DLS:
- cents: 1/100 semitone; absolute cents: 0 = 8.1758 Hz (MIDI key 0), 6900 = 440 Hz.
- centibels (cB): 1/10 dB of attenuation; gain = 10 ** (-cB / 200).
- timecents (tc): 1200 * log2(seconds); -32768 (SF2) or TC_ZERO means 0 s.
- DLS 16.16 fixed point values are converted with `dls_fixed`.
"""
from __future__ import annotations

import numpy as np

TC_ZERO = -32768.0            # SF2 "instantaneous" timecents
ABS_CENTS_REF_HZ = 8.175798915643707   # absolute cent 0


def cents_to_ratio(c):
    return np.exp2(np.asarray(c, dtype=np.float64) / 1200.0)


def ratio_to_cents(r):
    return 1200.0 * np.log2(np.asarray(r, dtype=np.float64))


def abs_cents_to_hz(c):
    return ABS_CENTS_REF_HZ * np.exp2(np.asarray(c, dtype=np.float64) / 1200.0)


def hz_to_abs_cents(hz):
    return 1200.0 * np.log2(np.asarray(hz, dtype=np.float64) / ABS_CENTS_REF_HZ)


def cb_to_gain(cb):
    return np.power(10.0, -np.asarray(cb, dtype=np.float64) / 200.0)


def gain_to_cb(g):
    g = np.maximum(np.asarray(g, dtype=np.float64), 1e-20)
    return -200.0 * np.log10(g)


def tc_to_seconds(tc):
    """Timecents to seconds; values <= -12000 (about 1 ms... and below) keep their meaning,
    the SF2 sentinel -32768 gives 0 s."""
    tc = np.asarray(tc, dtype=np.float64)
    return np.where(tc <= -32767.0, 0.0, np.exp2(tc / 1200.0))


def seconds_to_tc(s):
    s = np.asarray(s, dtype=np.float64)
    return np.where(s <= 0.0, TC_ZERO, 1200.0 * np.log2(np.maximum(s, 1e-30)))


def dls_fixed(v):
    """DLS 16.16 fixed-point scale to float."""
    return np.asarray(v, dtype=np.float64) / 65536.0


def concave(x):
    """SF2/DLS concave curve on x in [0, 1] (0 -> 0, 1 -> 1), as FluidSynth's table:
    -(40/96) * log10(1 - x) clipped; x == 1 gives 1."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        y = -(40.0 / 96.0) * np.log10(np.maximum(1.0 - x, 1e-300))
    return np.clip(np.where(x >= 1.0, 1.0, y), 0.0, 1.0)


def convex(x):
    """SF2/DLS convex curve on x in [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        y = 1.0 + (40.0 / 96.0) * np.log10(np.maximum(x, 1e-300))
    return np.clip(np.where(x <= 0.0, 0.0, y), 0.0, 1.0)


def concave_table() -> np.ndarray:
    """``concave_table()[v]`` = midi_concave_atten_cb(v, 1.0) for v = 0..127 (float64): the one
    evaluation of the curve that the control path (numpy definition and compiled engine alike)
    indexes by velocity and by CC7/CC11, so both read the same bits."""
    global _CONCAVE
    if _CONCAVE is None:
        t = midi_concave_atten_cb(np.arange(128), 1.0)
        t.setflags(write=False)
        _CONCAVE = t
    return _CONCAVE


_CONCAVE = None


def midi_concave_atten_cb(value, depth_cb=960.0):
    """Attenuation (cB) of the SF2 default 'negative concave' curve for a 0..127 MIDI value:
    value 127 -> 0 cB, value 0 -> depth_cb. Used for velocity, CC7 and CC11."""
    v = np.asarray(value, dtype=np.float64)
    # negative concave: x' = 1 - v/127 fed through the concave curve, index as FluidSynth
    x = (127.0 - np.clip(v, 0, 127)) / 127.0
    return depth_cb * concave(x)
