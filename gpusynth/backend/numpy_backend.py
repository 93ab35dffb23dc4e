"""The numpy reference backend: the readable definition of every kernel.

All voices of a block are rendered together, vectorised over (voices x 64 frames) per control
tick; there is no Python loop per voice or per sample. Per tick:

1. control values at the tick start (closed forms of the time since note-on): modulation
   envelope, modulation LFO, vibrato LFO; pitch increment, filter cutoff, gains and pan;
2. per frame: position = tick-start position + increment * frames since (start or tick start),
   loops wrap with integer modulo, linear or 4-point cubic (Catmull-Rom) interpolation;
3. volume envelope per frame (closed form DAHDSR, attack linear in amplitude, decay and
   release linear in dB), steal/cut fade, gains ramped linearly across the tick;
4. resonant low-pass (RBJ biquad, coefficients per tick): the all-pole part's impulse response
   over the tick is closed form (complex poles) and the tick is one FFT convolution, with the
   carried state folded into the first two inputs; skipped while the filter is fully open;
5. fixed-order sum over voices into L, R, reverb send, chorus send.

The native and CuPy kernels in kernels/*.cu implement exactly this.
"""
from __future__ import annotations

import numpy as np

from ..voices import TICK
from .base import HostVoiceTable

FADE_SECONDS = 0.003            # steal / exclusive-class cut fade
DONE_LEVEL = 1e-5               # -100 dB: the envelope is finished below this
FILTER_OPEN_CENTS = 13500.0


def fade_frames(rate: float) -> int:
    return max(16, int(round(FADE_SECONDS * rate)))


def venv(t, released, t_rel, d, a, h, dc, sus, rel):
    """Volume envelope amplitude (float64 arrays broadcast together).
    t: frames since note-on (>= 0), t_rel: note-off time relative to note-on,
    released: bool (the frame is at or after the note-off).
    Held part at th = min(t, t_rel): 0 in the delay, (x + 1) / attack linear in the attack,
    1 in the hold, then 1000 cB per decay time down to the sustain attenuation. The release
    adds 1000 cB per release time from the level reached at the note-off."""
    th = np.where(released, t_rel, t)
    x = th - d
    att = np.minimum((x + 1.0) / np.maximum(a, 1.0), 1.0)
    y = x - a - h
    cb = np.minimum(np.maximum(y, 0.0) * (1000.0 / np.maximum(dc, 1.0)), sus)
    cb = cb + np.maximum(t - t_rel, 0.0) * np.where(released, 1000.0 / np.maximum(rel, 1.0), 0.0)
    return np.where(x < 0, 0.0, att * np.power(10.0, cb * -0.005))


def menv(t, released, t_rel, d, a, h, dc, sus, rel):
    """Modulation envelope 0..1 (linear segments)."""
    def held(tt):
        x = tt - d
        att = np.clip(x / np.maximum(a, 1.0), 0.0, 1.0)
        y = x - a - h
        dec = np.maximum(1.0 - np.maximum(y, 0.0) / np.maximum(dc, 1.0), sus)
        return np.where(x < 0, 0.0, np.where(x < a, att, np.where(y < 0, 1.0, dec)))
    g = held(np.where(released, t_rel, t))
    tr = np.maximum(t - t_rel, 0.0)
    return np.where(released, np.maximum(g - tr / np.maximum(rel, 1.0), 0.0), g)


def tri_lfo(t, delay, freq):
    """Triangle LFO, 0 during the delay, then starting at 0 and rising; freq in cycles/frame."""
    ph = np.maximum(t - delay, 0.0) * freq
    v = 1.0 - 4.0 * np.abs((ph + 0.25) % 1.0 - 0.5)
    return np.where(t < delay, 0.0, v)


def biquad_coeffs(fc_cents, q_cb, rate):
    """RBJ low-pass, normalised (b0, b1, b2, a1, a2) and whether the filter is open."""
    hz = 8.175798915643707 * np.exp2(np.asarray(fc_cents, np.float64) / 1200.0)
    hz = np.clip(hz, 5.0, 0.45 * rate)
    q = np.power(10.0, (np.asarray(q_cb, np.float64) / 10.0 - 3.01) / 20.0)
    w0 = 2.0 * np.pi * hz / rate
    cw, sw = np.cos(w0), np.sin(w0)
    alpha = sw / (2.0 * q)
    a0 = 1.0 + alpha
    b1 = (1.0 - cw) / a0
    b0 = b1 * 0.5
    a1 = -2.0 * cw / a0
    a2 = (1.0 - alpha) / a0
    is_open = (np.asarray(fc_cents) >= FILTER_OPEN_CENTS) & (np.asarray(q_cb) <= 0.0)
    return b0, b1, b0, a1, a2, is_open


class NumpyBackend(HostVoiceTable):
    name = "numpy"

    def __init__(self, sample_rate: int, capacity: int = 1024, interp: str = "cubic"):
        self.rate = int(sample_rate)
        self.interp = interp
        self.fade = fade_frames(self.rate)
        self.pool = np.zeros(64, np.float32)
        self._init_table(capacity)

    def upload_pool(self, pool: np.ndarray):
        self.pool = np.ascontiguousarray(pool, dtype=np.float32)

    # ---- render --------------------------------------------------------------------------
    def render(self, n_active: int, block_start: int, n_ticks: int, chan_in: dict):
        """Render n_ticks ticks of the first n_active voices starting at absolute sample
        block_start (a multiple of TICK). chan_in: name -> float32 [n_ticks, channels].
        Returns (out float32 [n_ticks*TICK, 4] = L, R, reverb, chorus; finished slot indices)."""
        out = np.zeros((n_ticks * TICK, 4), np.float32)
        if n_active == 0:
            return out, np.zeros(0, np.int64)
        f = {nm: a[:n_active] for nm, a in self.f.items()}
        for i in range(n_ticks):
            ch = {k: v[i] for k, v in chan_in.items()}
            out[i * TICK:(i + 1) * TICK] = self._tick(f, block_start + i * TICK, ch)
        return out, np.flatnonzero(f["done"]).astype(np.int64)

    def _tick(self, f, t0: int, ch: dict) -> np.ndarray:
        rate = self.rate
        live = np.flatnonzero((f["done"] == 0) & (f["start"] < t0 + TICK))
        res = np.zeros((TICK, 4), np.float64)
        if len(live) == 0:
            return res.astype(np.float32)
        g = {nm: a[live] for nm, a in f.items()}
        c = g["chan"]
        f64 = np.float64
        start = g["start"]
        rel_abs, kill_abs = g["release"], g["kill"]
        k = np.arange(TICK)
        # -------- control values at the tick start --------------------------------------
        tc = np.maximum(t0 - start, 0).astype(f64)
        trel = (rel_abs - start).astype(f64)
        rel_c = t0 >= rel_abs
        me = menv(tc, rel_c, trel, g["me_delay"], g["me_attack"], g["me_hold"], g["me_decay"],
                  g["me_sus"], g["me_release"])
        ml = tri_lfo(tc, g["ml_delay"], g["ml_freq"])
        vl = tri_lfo(tc, g["vl_delay"], g["vl_freq"])
        cmod, cpress = ch["ch_mod"][c].astype(f64), ch["ch_press"][c].astype(f64)
        cents = (g["pitch"] + ch["ch_pitch"][c] + me * g["me_pitch"]
                 + ml * (g["ml_pitch"] + cmod * g["cc1_ml_pitch"])
                 + vl * (g["vl_pitch"] + cmod * g["cc1_vib"] + cpress * g["press_vib"]))
        inc = np.exp2(np.clip(cents, -12000.0, 12000.0) / 1200.0)
        fc = (g["fc"].astype(f64) + me * g["me_fc"] + ml * (g["ml_fc"] + cmod * g["cc1_ml_fc"]))
        att = (g["atten"].astype(f64) + ch["ch_gain"][c]
               - ml * (g["ml_vol"] + cmod * g["cc1_ml_vol"]))
        amp = np.power(10.0, -np.maximum(att, 0.0) / 200.0)
        pan = np.clip(g["pan"].astype(f64) + ch["ch_pan"][c], -500.0, 500.0)
        ang = (pan + 500.0) * (np.pi / 2000.0)
        gl_new, gr_new = (amp * np.cos(ang)).astype(np.float32), (amp * np.sin(ang)).astype(np.float32)
        rev = np.clip(g["rev"] + ch["ch_rev"][c] * g["rev_cc"], 0.0, 1.0).astype(f64)
        cho = np.clip(g["cho"] + ch["ch_cho"][c] * g["cho_cc"], 0.0, 1.0).astype(f64)
        # -------- positions -------------------------------------------------------------
        k0 = np.clip(start - t0, 0, TICK)                         # first frame of the voice
        j = (k[None, :] - k0[:, None])                            # frames since k0
        on = j >= 0
        p = g["fpos"][:, None] + inc[:, None] * np.maximum(j, 0)
        fl = np.floor(p)
        frac = p - fl
        ip = g["ipos"][:, None] + fl.astype(np.int64)
        looping = (g["lmode"] == 1) | ((g["lmode"] == 3) & ~rel_c)
        ls, le = g["lstart"][:, None], g["lend"][:, None]
        L = np.maximum(le - ls, 1)
        lp = looping[:, None]

        def wrap(idx):
            m = lp & (idx >= le)
            if m.any():
                r, cidx = np.nonzero(m)
                idx = idx.copy()
                idx[r, cidx] = ls[r, 0] + (idx[r, cidx] - ls[r, 0]) % L[r, 0]
            return idx
        ip = wrap(ip)
        ps, pe = g["pstart"][:, None], g["pend"][:, None]
        ended = ~lp & (ip >= pe)
        i1 = wrap(ip + 1)
        lo, hi = ps, pe - 1
        pool = self.pool
        x0 = pool[np.clip(ip, lo, hi)].astype(f64)
        x1 = pool[np.clip(i1, lo, hi)].astype(f64)
        if self.interp == "linear":
            x = x0 + (x1 - x0) * frac
        else:
            xm = pool[np.clip(ip - 1, lo, hi)].astype(f64)
            x2 = pool[np.clip(wrap(i1 + 1), lo, hi)].astype(f64)
            x = x0 + 0.5 * frac * (x1 - xm + frac * (2.0 * xm - 5.0 * x0 + 4.0 * x1 - x2
                                                     + frac * (3.0 * (x0 - x1) + x2 - xm)))
        x = np.where(on & ~ended, x, 0.0)
        # -------- filter --------------------------------------------------------------
        b0, b1, b2, a1, a2, is_open = biquad_coeffs(fc, g["q"], rate)
        y = x.copy()
        filt = np.flatnonzero(~is_open)
        if len(filt):
            y[filt] = self._filter(x[filt], g["fx1"][filt], g["fx2"][filt], g["fy1"][filt],
                                   g["fy2"][filt], b0[filt], b1[filt], b2[filt], a1[filt], a2[filt])
        # -------- volume envelope, fade, gains ------------------------------------------
        s = (t0 + k)[None, :]
        t = (s - start[:, None]).astype(f64)
        rel_s = s >= rel_abs[:, None]
        env = venv(np.maximum(t, 0.0), rel_s, trel[:, None], g["ve_delay"][:, None],
                   g["ve_attack"][:, None], g["ve_hold"][:, None], g["ve_decay"][:, None],
                   g["ve_sus"][:, None], g["ve_release"][:, None])
        fade = np.clip(1.0 - (s - kill_abs[:, None]).astype(f64) / self.fade, 0.0, 1.0)
        env = np.where(on, env * fade, 0.0)
        fresh = g["gl"] < 0
        glp = np.where(fresh, gl_new, g["gl"]).astype(f64)
        grp = np.where(fresh, gr_new, g["gr"]).astype(f64)
        ramp = (k + 1.0) / TICK
        gL = glp[:, None] + (gl_new.astype(f64) - glp)[:, None] * ramp[None, :]
        gR = grp[:, None] + (gr_new.astype(f64) - grp)[:, None] * ramp[None, :]
        ye = y * env
        yl, yr = ye * gL, ye * gR
        res[:, 0] = yl.sum(axis=0)
        res[:, 1] = yr.sum(axis=0)
        mono = (yl + yr) * 0.5
        res[:, 2] = (mono * rev[:, None]).sum(axis=0)
        res[:, 3] = (mono * cho[:, None]).sum(axis=0)
        # -------- state update ------------------------------------------------------------
        started = k0 < TICK
        pn = g["fpos"] + inc * (TICK - k0)
        fln = np.floor(pn)
        ipn = g["ipos"] + fln.astype(np.int64)
        ipn = np.where(looping & (ipn >= g["lend"]),
                       g["lstart"] + (ipn - g["lstart"]) % np.maximum(g["lend"] - g["lstart"], 1), ipn)
        upd = {}
        upd["ipos"] = np.where(started, ipn, g["ipos"])
        upd["fpos"] = np.where(started, pn - fln, g["fpos"])
        upd["gl"] = np.where(started, gl_new, g["gl"])
        upd["gr"] = np.where(started, gr_new, g["gr"])
        upd["fx1"], upd["fx2"] = x[:, -1], x[:, -2]
        upd["fy1"], upd["fy2"] = y[:, -1], y[:, -2]
        env_end = env[:, -1]
        upd["level"] = (env_end * amp).astype(np.float32)
        t_end = float(TICK - 1) + (t0 - start)
        past_attack = t_end >= g["ve_delay"] + g["ve_attack"] + g["ve_hold"]
        env_done = (env_end < DONE_LEVEL) & ((t0 + TICK - 1 >= rel_abs) | past_attack) & (t_end >= 0)
        sample_done = ended[:, -1]
        kill_done = (t0 + TICK - kill_abs) >= self.fade
        upd["done"] = (env_done | sample_done | kill_done).astype(np.int8)
        for nm, v in upd.items():
            f[nm][live] = v
        return res.astype(np.float32)

    @staticmethod
    def _filter(x, x1, x2, y1, y2, b0, b1, b2, a1, a2):
        """Biquad over one tick for V voices, vectorised: FIR part directly, all-pole part as
        a causal convolution with its closed-form impulse response (FFT, size 2*TICK)."""
        n = x.shape[1]
        xp = np.concatenate([x2[:, None], x1[:, None], x], axis=1)
        u = b0[:, None] * xp[:, 2:] + b1[:, None] * xp[:, 1:-1] + b2[:, None] * xp[:, :-2]
        u[:, 0] -= a1 * y1 + a2 * y2
        u[:, 1] -= a2 * y1
        # poles r e^{+-i th}: g[m] = r^m sin((m+1) th) / sin th
        r = np.sqrt(np.maximum(a2, 0.0))
        cth = np.clip(-a1 / (2.0 * np.maximum(r, 1e-300)), -1.0, 1.0)
        th = np.arccos(cth)
        sth = np.maximum(np.sin(th), 1e-12)
        m = np.arange(n)
        gimp = np.power(r[:, None], m[None, :]) * np.sin((m[None, :] + 1) * th[:, None]) / sth[:, None]
        nfft = 2 * n
        yf = np.fft.irfft(np.fft.rfft(u, nfft, axis=1) * np.fft.rfft(gimp, nfft, axis=1), nfft, axis=1)
        return yf[:, :n]
