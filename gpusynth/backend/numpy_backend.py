"""The numpy reference backend: the readable definition of the voice kernel.

All live voices of a tick are rendered together, vectorised over (voices x 64 frames); there is
no Python loop per voice or per frame. Every operation is float32 in the kernels' order
(kernels/voice_render.cu follows this file), except the filter (solved in float64). Per tick:

1. control values at the tick start (closed forms of the time since note-on): modulation
   envelope, modulation LFO, vibrato LFO; pitch increment, filter coefficients, gains and pan;
2. per frame: position = integer + float32 fraction + increment x frames since the voice's first
   frame in the tick; loops wrap with integer modulo; linear or 4-point cubic interpolation;
3. resonant low-pass: the TPT state-variable filter (same response as the RBJ biquad, and
   well conditioned in float32 down to the lowest cutoffs), skipped while fully open; here
   solved per tick as a linear state-space system (svf_tick), in the kernels a recurrence;
4. volume envelope stepped per frame between exact closed-form values at every stage change
   (gpusynth.envelope.segment_gains), pan/volume gains ramped linearly across the tick;
5. the mix: each voice's per-frame contribution to each bus is rounded to fixed point
   (MIX_SCALE per full scale) and summed in int64, which makes the mix
   exact and independent of voice order, window size and thread count. A send bus (reverb,
   chorus) sums the integers sq * (qL + qR): the voice's send level of the tick quantised to
   sq = rint(level x SEND_ONE) times its two rounded dry frames (bus_scales gives each bus's
   fixed point).
"""
from __future__ import annotations

import numpy as np

from .. import envelope
from ..voices import TICK
from .base import HostVoiceTable

from ..constants import (DONE_LEVEL, FILTER_OPEN_CENTS, MIX_SCALE, SEND_ONE,  # noqa: F401
                         bus_scales, fade_frames)
F32 = np.float32
# the kernels' decimal constants (kernels/common.cuh), the same float32 values
PI_F = F32(3.14159265358979)
PI_2000 = F32(0.00157079632679490)
INV_1200 = F32(0.000833333333333333)
LOG2_10_20 = F32(0.166096404744368)


def quantize(v):
    """A voice's contribution (float32) -> int64 fixed point, as the kernels' GsLocalAcc::q
    (nearest multiple of 2^-24 full scale, ties to even)."""
    return np.rint(np.asarray(v, F32) * F32(MIX_SCALE)).astype(np.int64)


def send_level(level) -> np.ndarray:
    """float32 send levels in [0, 1] -> int64 steps of 1/SEND_ONE (the kernels' GsTick.rq)."""
    return np.rint(np.asarray(level, F32) * F32(SEND_ONE)).astype(np.int64)


def _convex_table():
    """FluidSynth's convex table (fluid_conv.c, SF2 2.04 section 8.1.2 #26 and 9.x curves):
    1 + (40/96) log10(i / 127) for 0 < i < 127, 0 at 0, 1 at 127; float32 (kernels' GS_CONVEX)."""
    i = np.arange(128, dtype=np.float64)
    with np.errstate(divide="ignore"):
        t = 1.0 + (400.0 / 960.0) * np.log(i / 127.0) / np.log(10.0)
    t[0], t[127] = 0.0, 1.0
    return t.astype(F32)


CONVEX_TAB = _convex_table()


def convex(v):
    """The SF2 convex curve at v in [0, 1] as FluidSynth's fluid_convex(127 v): the table
    interpolated linearly; float32 (kernels' gs_convex)."""
    f = np.asarray(v, F32) * F32(127.0)
    i = np.minimum(f.astype(np.int32), 127)
    lo, hi = CONVEX_TAB[i], CONVEX_TAB[np.minimum(i + 1, 127)]
    return np.where(i >= 127, F32(1.0), lo + (hi - lo) * (f - i.astype(F32))).astype(F32)


def menv(tc, released, trel, v):
    """Modulation envelope 0..1 (linear segments; the attack on the SF2 convex curve where
    ``me_convex``), float32 (kernels' gs_menv)."""
    d, a, h, dc, sus = (v[f] for f in ("me_delay", "me_attack", "me_hold", "me_decay", "me_sus"))
    tt = np.where(released, trel, tc)
    x = tt - d
    att = np.clip(x / np.maximum(a, F32(1.0)), F32(0.0), F32(1.0))
    att = np.where(v["me_convex"] != 0, convex(att), att)
    y = (x - a) - h
    dec = np.maximum(F32(1.0) - y / np.maximum(dc, F32(1.0)), sus)
    g = np.where(x < 0, F32(0.0), np.where(x < a, att, np.where(y < 0, F32(1.0), dec)))
    tr = np.maximum(tc - trel, F32(0.0))
    return np.where(released, np.maximum(g - tr / np.maximum(v["me_release"], F32(1.0)), F32(0.0)), g)


def tri_lfo(since, delay, freq):
    """Triangle LFO, 0 during the delay, then starting at 0 and rising; freq in cycles/frame.
    The phase is a float64 product (an hour-long note keeps its LFO), the rest float32."""
    t = since.astype(F32)
    ph = (since.astype(np.float64) - delay.astype(np.float64)) * freq.astype(np.float64) + 0.25
    fr = (ph - np.trunc(ph)).astype(F32)
    val = F32(1.0) - F32(4.0) * np.abs(fr - F32(0.5))
    return np.where(t < delay, F32(0.0), val)


def svf_coeffs(fc, q_cb, rate):
    """TPT state-variable low-pass coefficients (a1, a2, a3) and whether the filter is open."""
    hz = F32(8.175798915643707) * envelope.exp2(fc * INV_1200)
    hz = np.clip(hz, F32(5.0), F32(0.45) * F32(rate))
    g = np.tan(PI_F * hz / F32(rate))
    qk = envelope.exp2(-((q_cb * F32(0.1)) - F32(3.01)) * LOG2_10_20)
    a1 = F32(1.0) / (F32(1.0) + g * (g + qk))
    a2 = g * a1
    return a1, a2, g * a2, (fc >= F32(FILTER_OPEN_CENTS)) & (q_cb <= F32(0.0))


def svf_tick(x, s1, s2, a1, a2, a3):
    """The TPT state-variable low-pass over one tick for V voices (coefficients fixed within
    the tick). Per frame the kernels compute, in float32:
        v3 = x - s2;  v1 = a1 s1 + a2 v3;  v2 = (s2 + a2 s1) + a3 v3;
        s1 <- 2 v1 - s1;  s2 <- 2 v2 - s2;  y = v2
    i.e. the linear state-space system s' = A s + B x, y = C s + D x with
        A = [[2 a1 - 1, -2 a2], [2 a2, 1 - 2 a3]],  B = [2 a2, 2 a3],  C = [a2, 1 - a3],  D = a3.
    Here it is solved for the whole tick at once in float64 (powers of A by doubling, the
    impulse response as a Toeplitz matrix), so the reference differs from the kernels' float32
    recurrence by float32 rounding only. Frames before a voice's start carry x = 0 and zero
    state (a voice starts with s1 = s2 = 0), so they leave the state at 0.
    Returns (y float32 [V, n], s1, s2 float32 [V])."""
    f64 = np.float64
    a1, a2, a3 = a1.astype(f64), a2.astype(f64), a3.astype(f64)
    V, n = x.shape
    A = np.empty((V, 2, 2))
    A[:, 0, 0], A[:, 0, 1] = 2.0 * a1 - 1.0, -2.0 * a2
    A[:, 1, 0], A[:, 1, 1] = 2.0 * a2, 1.0 - 2.0 * a3
    B = np.stack([2.0 * a2, 2.0 * a3], axis=1)                 # [V, 2]
    C = np.stack([a2, 1.0 - a3], axis=1)                       # [V, 2]
    P = np.empty((V, n + 1, 2, 2))                             # P[:, k] = A^k
    P[:, 0] = np.eye(2)
    m = 1
    while m <= n:                                              # P[m:2m] = P[0:m] @ A^m
        Am = P[:, m - 1] @ A
        hi = min(2 * m, n + 1)
        P[:, m:hi] = P[:, :hi - m] @ Am[:, None]
        m *= 2
    PB = np.einsum("vkij,vj->vki", P[:, :n], B)                # A^k B, k < n
    h = np.einsum("vi,vki->vk", C, PB)                         # h[m + 1] = C A^m B
    xd = x.astype(f64)
    k = np.arange(n)
    lag = k[:, None] - k[None, :]                              # [n, n]: frame - input frame
    T = np.where(lag[None] > 0, h[:, np.clip(lag - 1, 0, n - 1)], 0.0)
    T[:, k, k] = a3[:, None]
    s0 = np.stack([s1.astype(f64), s2.astype(f64)], axis=1)
    y = np.einsum("vkj,vj->vk", T, xd) + np.einsum("vi,vkij,vj->vk", C, P[:, :n], s0)
    # end state: A^n s0 + sum_j A^(n-1-j) B x_j
    send = np.einsum("vij,vj->vi", P[:, n], s0) + np.einsum("vji,vj->vi", PB[:, ::-1], xd)
    return y.astype(F32), send[:, 0].astype(F32), send[:, 1].astype(F32)


def wrap(idx, looping, ls, le):
    """Loop wrap: idx >= le -> ls + (idx - ls) mod L while looping (L >= 1)."""
    L = np.maximum(le - ls, 1)
    m = looping & (idx >= le)
    return np.where(m, ls + np.mod(idx - ls, L), idx)


class NumpyBackend(HostVoiceTable):
    name = "numpy"

    def __init__(self, sample_rate: int, capacity: int = 1024, interp: str = "cubic"):
        if interp not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be 'linear' or 'cubic', not {interp!r}")
        self.rate = int(sample_rate)
        self.interp = interp
        self.fade = fade_frames(self.rate)
        self.pool = np.zeros(64, np.float32)
        self._init_table(capacity)

    def upload_pool(self, pool: np.ndarray):
        p = np.ascontiguousarray(pool, dtype=np.float32).ravel()
        self.pool = p if len(p) else np.zeros(1, np.float32)

    # ---- render --------------------------------------------------------------------------
    bus_align = 1

    def load_rows(self, records: np.ndarray):
        """Replace slots [0, len(records)) with ``records`` (VOICE_DTYPE)."""
        self.ensure_capacity(len(records))
        self.table[:len(records)] = records

    def render(self, n_active: int, t0: int, n_ticks: int, chin: np.ndarray, sends: bool = False,
               n_out: int = 1):
        """Render n_ticks ticks of voices [0, n_active) from absolute frame t0 (a multiple of
        TICK). chin: float32 [N_CHIN, n_ticks, channels]. Returns (out float32
        [n_ticks*TICK, 4 if sends else 2], finished slots); with ``n_out`` > 1 the output is
        [n_out, frames, buses], each voice mixed into output ``bus`` (its field; out of
        range: output 0)."""
        nbus = 4 if sends else 2
        n_out = int(n_out)
        acc = np.zeros((n_out, n_ticks * TICK, nbus), np.int64)
        tab = self.table[:n_active]
        for i in range(n_ticks):
            a = t0 + i * TICK
            live = np.flatnonzero((tab["done"] == 0) & (tab["start"] < a + TICK))
            if len(live):
                acc[:, i * TICK:(i + 1) * TICK] = self._tick(tab, live, a, chin[:, i, :], sends, n_out)
        out = (acc.astype(np.float64) * bus_scales(nbus)).astype(np.float32)
        return (out if n_out > 1 else out[0]), np.flatnonzero(tab["done"]).astype(np.int64)

    def _tick(self, tab, live, t0: int, ch, sends: bool, n_out: int = 1):
        rate = self.rate
        v = tab[live]
        c = np.clip(v["chan"], 0, ch.shape[1] - 1)
        chv = ch[:, c]                                            # [N_CHIN, voices]
        ch_pitch, ch_gain, ch_pan, cmod, cpress, ch_rev, ch_cho = chv
        start, rel_abs = v["start"], v["release"]
        k = np.arange(TICK)
        # -------- control values at the tick start --------------------------------------
        since = np.maximum(t0 - start, 0)
        rel_c = t0 >= rel_abs
        trel = (rel_abs - start).astype(F32)
        me = menv(since.astype(F32), rel_c, trel, v)
        ml = tri_lfo(since, v["ml_delay"], v["ml_freq"])
        vl = tri_lfo(since, v["vl_delay"], v["vl_freq"])
        cents = (((v["pitch"] + ch_pitch) + me * v["me_pitch"])
                 + ml * (v["ml_pitch"] + cmod * v["cc1_ml_pitch"])) \
            + vl * ((v["vl_pitch"] + cmod * v["cc1_vib"]) + cpress * v["press_vib"])
        cl = np.where(cents > F32(-12000.0), cents, F32(-12000.0))
        cl = np.where(cl < F32(12000.0), cl, F32(12000.0))
        inc = envelope.exp2(cl * INV_1200)
        fc = (v["fc"] + me * v["me_fc"]) + ml * (v["ml_fc"] + cmod * v["cc1_ml_fc"])
        att = (v["atten"] + ch_gain) - ml * (v["ml_vol"] + cmod * v["cc1_ml_vol"])
        amp = envelope.cb_gain(np.maximum(att, F32(0.0)) + v["fatt"])
        pan = np.clip(v["pan"] + ch_pan, F32(-500.0), F32(500.0))
        ang = (pan + F32(500.0)) * PI_2000
        gl_new, gr_new = amp * np.cos(ang), amp * np.sin(ang)
        # -------- positions and interpolation -------------------------------------------
        k0 = np.clip(start - t0, 0, TICK)
        j = (k[None, :] - k0[:, None])
        on = j >= 0
        p = v["fpos"][:, None] + inc[:, None] * j.astype(F32)
        fl = np.where(on, p, F32(0.0)).astype(np.int64)          # p >= 0 where on: trunc = floor
        frac = p - fl.astype(F32)
        looping = ((v["lmode"] == 1) | ((v["lmode"] == 3) & ~rel_c))[:, None]
        ls, le, pe = v["lstart"][:, None], v["lend"][:, None], v["pend"][:, None]
        ip = wrap(v["ipos"][:, None] + fl, looping, ls, le)
        ended = ~looping & (ip >= pe)
        plen = len(self.pool)
        lo = np.clip(v["pstart"], 0, plen - 1)[:, None]
        hi = np.maximum(np.clip(v["pend"] - 1, 0, plen - 1)[:, None], lo)
        pool = self.pool
        i1 = wrap(ip + 1, looping, ls, le)
        x0 = pool[np.clip(ip, lo, hi)]
        x1 = pool[np.clip(i1, lo, hi)]
        if self.interp == "linear":
            x = x0 + (x1 - x0) * frac
        else:
            xm = pool[np.clip(ip - 1, lo, hi)]
            x2 = pool[np.clip(wrap(i1 + 1, looping, ls, le), lo, hi)]
            x = x0 + F32(0.5) * frac * ((x1 - xm) + frac * ((((F32(2.0) * xm - F32(5.0) * x0)
                                                               + F32(4.0) * x1) - x2)
                                                             + frac * ((F32(3.0) * (x0 - x1) + x2) - xm)))
        x = np.where(on & ~ended, x, F32(0.0)).astype(F32)
        # -------- filter --------------------------------------------------------------
        a1, a2, a3, is_open = svf_coeffs(fc, v["q"], rate)
        y = x.copy()
        s1, s2 = v["s1"].copy(), v["s2"].copy()
        filt = np.flatnonzero(~is_open)
        if len(filt):
            yf, z1, z2 = svf_tick(x[filt], s1[filt], s2[filt], a1[filt], a2[filt], a3[filt])
            y[filt], s1[filt], s2[filt] = yf, z1, z2
        opn = np.flatnonzero(is_open)
        s1[opn] = F32(0.0)
        s2[opn] = x[opn, -1]
        # -------- volume envelope, gains, mix ---------------------------------------------
        g = envelope.segment_gains(v, t0, k0, self.fade, TICK)
        fresh = v["gl"] < 0
        glp = np.where(fresh, gl_new, v["gl"])
        grp = np.where(fresh, gr_new, v["gr"])
        dgl = (gl_new - glp) * F32(1.0 / TICK)
        dgr = (gr_new - grp) * F32(1.0 / TICK)
        ramp = (k + 1).astype(F32)
        ye = y * g
        yl = ye * (glp[:, None] + dgl[:, None] * ramp[None, :])
        yr = ye * (grp[:, None] + dgr[:, None] * ramp[None, :])
        live_f = on                                  # frames before the voice's start add nothing
        res = np.zeros((n_out, TICK, 4 if sends else 2), np.int64)
        bus = v["bus"].astype(np.int64)
        bus = np.where((bus >= 0) & (bus < n_out), bus, 0)

        def mix(col, q):                             # each voice into its output, exactly
            if n_out == 1:
                res[0, :, col] = q.sum(axis=0)
            else:
                np.add.at(res[:, :, col], bus, q)
        ql = np.where(live_f, quantize(yl), 0)
        qr = np.where(live_f, quantize(yr), 0)
        mix(0, ql)
        mix(1, qr)
        if sends:                                    # send level x (qL + qR), int64 (wraps)
            rev = np.clip(v["rev"] + ch_rev * v["rev_cc"], F32(0.0), F32(1.0))
            cho = np.clip(v["cho"] + ch_cho * v["cho_cc"], F32(0.0), F32(1.0))
            m = ql + qr
            mix(2, send_level(rev)[:, None] * m)
            mix(3, send_level(cho)[:, None] * m)
        # -------- state update ------------------------------------------------------------
        pn = v["fpos"].astype(np.float64) + inc.astype(np.float64) * (TICK - k0)   # exact
        fln = pn.astype(np.int64)
        upd = tab[live]
        upd["ipos"] = wrap(v["ipos"] + fln, looping[:, 0], v["lstart"], v["lend"])
        upd["fpos"] = (pn - fln).astype(F32)
        upd["gl"], upd["gr"] = gl_new, gr_new
        upd["s1"], upd["s2"] = s1, s2
        t_last = t0 + TICK - 1
        t_end = (t_last - start).astype(F32)
        env_end = envelope.exact(v, t_last, self.fade)
        attack_end = (v["ve_delay"] + v["ve_attack"]) + v["ve_hold"]
        env_done = (env_end < F32(DONE_LEVEL)) & ((t_last >= rel_abs) | (t_end >= attack_end))
        kill_done = (v["kill"] < envelope.NEVER) & ((t0 + TICK - v["kill"]) >= self.fade)
        upd["done"] = (env_done | ended[:, -1] | kill_done).astype(np.int8)
        tab[live] = upd
        return res
