"""Deterministic float64 2^x, log2 and log10 for the control path's closed forms.

numpy's ``exp2``/``log10`` (SIMD, SVML on AVX-512 machines) and the C library's differ in the
last bit for about 1% of inputs, so a decision computed from them (the frame at which a voice
falls silent, a voice's envelope times in frames) could differ between the numpy definition of
the control path and its compiled engine (gpusynth/control_engine.cpp). Both use these
functions instead: only IEEE +, -, *, / (each rounded once: the engine is compiled with
-ffp-contract=off), floor, frexp and ldexp, with the same constants in the same order, so they
give the same bits everywhere. Accuracy: a few units in the last place (tests/unit/test_detmath.py).

exp2: x = n + j/32 + g (0 <= g < 1/32): 2^n * 2^(j/32) (table) * e^(g ln 2) (Taylor, degree 8).
log:  y = m * 2^e with m in [sqrt(1/2), sqrt(2)): ln m = 2 atanh(s), s = (m - 1) / (m + 1)
      (odd series up to s^23).
"""
from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)
LOG10_2 = math.log10(2.0)
LOG10_E = math.log10(math.e)
LOG2_E = 1.0 / math.log(2.0)
SQRT_HALF = math.sqrt(0.5)
EXP2_TABLE = np.array([2.0 ** (j / 32) for j in range(32)])
EXP_POLY = tuple(1.0 / math.factorial(k) for k in range(8, 0, -1))      # 1/8! .. 1/1!, then 1
ATANH_POLY = tuple(1.0 / (2 * k + 1) for k in range(11, 0, -1))          # 1/23 .. 1/3, then 1


def exp2(x):
    """2^x (float64) for finite x with |x| < 1000."""
    x = np.asarray(x, np.float64)
    n = np.floor(x)
    f = x - n
    j = np.floor(f * 32.0)
    g = (f - j * 0.03125) * LN2
    p = np.full(g.shape, EXP_POLY[0])
    for c in EXP_POLY[1:]:
        p = p * g + c
    p = p * g + 1.0
    return np.ldexp(EXP2_TABLE[j.astype(np.int64)] * p, n.astype(np.int64))


def _ln_parts(y):
    y = np.asarray(y, np.float64)
    m, e = np.frexp(y)
    small = m < SQRT_HALF
    m = np.where(small, m * 2.0, m)
    e = np.where(small, e - 1, e).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    p = np.full(z.shape, ATANH_POLY[0])
    for c in ATANH_POLY[1:]:
        p = p * z + c
    p = p * z + 1.0
    return e, (2.0 * s) * p


def log10(y):
    """log10(y) (float64) for finite y > 0."""
    e, ln_m = _ln_parts(y)
    return e * LOG10_2 + ln_m * LOG10_E


def log2(y):
    """log2(y) (float64) for finite y > 0."""
    e, ln_m = _ln_parts(y)
    return e + ln_m * LOG2_E
