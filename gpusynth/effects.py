"""Reverb and chorus on the send buses (a host stage after the fused voice mix).

The voice kernel mixes every voice into four buses (dry L, dry R, reverb send, chorus send;
the sends are mono, per-voice levels from CC91/CC93 and the bank's send generators). This
module turns the two send buses into stereo wet signals that ``Synth`` adds to the dry mix.
The effects run per output bus, not per voice: their cost does not grow with the polyphony.

Reverb: an 8-line feedback delay network. The line lengths are FluidSynth's (601..1129 samples
at 44.1 kHz, x2, scaled with the sample rate: 27-51 ms), mutually prime-ish and fixed (no
modulation: the numpy twin stays elementwise). The feedback matrix is a permutation minus
2/N u u^T (orthogonal: lossless before the loop gains). Each line has a loop gain
g = 10^(-3 L / (rate * RT60)) (every line loses 60 dB in RT60 seconds, so the decay is one
straight line in dB) and a two-tap damping FIR g * ((1 - c) x[t-L] + c x[t-L-1]), c chosen so
the RT60 at Nyquist is RT60 x (1 - damp). Values below 1e-30 written into the lines are flushed
to zero (no denormals; the tail ends in exact zeros). Stereo out: each line goes to L and R
with signs (+-1, FluidSynth's pattern), scaled by the width.

Parameters (FluidSynth's names, defaults and ranges):
  room      0..1    reverb time on FluidSynth's concave curve: 0.7 s .. 12.5 s (0.2 -> 0.91 s)
  time      s       RT60 at DC, 0.05..30 s; overrides room when given
  damp      0..1    high-frequency damping: RT60 at Nyquist = RT60 x (1 - damp)
  width     0..100  stereo width (FluidSynth's; 0 = mono, 1 = full, > 1 wider)
  level     0..1    wet level (FluidSynth's scale: wet = level x 5 / (1 + 0.2 width))
  predelay  s       0..0.5 s before the reverb input
Chorus: ``voices`` delay lines (0..99, default 3) read the chorus send at a delay that a sine or
triangle LFO (``speed`` 0.1..5 Hz, default 0.3, voice v phase-shifted by v/voices of a cycle)
sweeps over ``depth`` ms peak to peak (0..40, default 8) above 1 sample; linear interpolation;
voices alternate left/right, ``level`` 0..10 (default 2), ``width`` 0..10 (default 10:
FluidSynth's fixed value). The LFO is evaluated (float64) at each 64-frame tick of the absolute
sample position and its delay ramped linearly across the tick.

Input level: the send buses carry (L + R) / 2 of each panned voice, 0.707 of the voice at the
centre (constant-power pan); FluidSynth's carry the unpanned voice, so the inputs are scaled by
sqrt(2) (``SEND_COMP``) to feed the same level as FluidSynth at the centre. Measured against
FluidSynth 2.3.1 (TimGM6mb piano, centre pan, equal sends, wet/dry energy of each engine's own
render): the chorus then matches within 0.2 dB, the reverb came out 4.0 dB louder (FluidSynth's
modulated, all-pass-interpolated lines lose some energy), so the reverb input has a further
``REVERB_TRIM`` (-4 dB).

Deterministic and block-size independent: the state carries across calls and every frame's
arithmetic is the same whatever the call length. Engines (names: gpusynth.compiled):
"native", ``effects.cpp`` (``NATIVE``, -ffp-contract=off: the same float32 operations in the
same order), and "reference", the numpy twin here (the definition and the fallback); both give
the same bits.
"""
from __future__ import annotations

import ctypes
import math
from pathlib import Path

import numpy as np

from .compiled import F32, I32, I64, PTR, Helper, engine_choice
from .settings import DEFAULTS as SETTINGS_DEFAULTS

F = np.float32
TICK = 64
NL = 8
NOMINAL = (601, 691, 773, 839, 919, 997, 1061, 1129)   # FluidSynth's line lengths at 44.1 kHz (x2)
SEND_COMP = math.sqrt(2.0)
REVERB_TRIM = 10.0 ** (-4.0 / 20.0)
FIXED_GAIN = 0.1            # FluidSynth's reverb input gain
SCALE_WET = 5.0             # ... and output scale
FLUSH = 1e-30
MIN_RT, MAX_RT = 0.7, 12.5  # FluidSynth's room-size range (s)

# the knobs' defaults (FluidSynth's): gpusynth.settings is where they are written down
REVERB_DEFAULTS = SETTINGS_DEFAULTS.reverb_params()
CHORUS_DEFAULTS = SETTINGS_DEFAULTS.chorus_params()


def room_to_time(room: float) -> float:
    """FluidSynth's room size (0..1) -> RT60 (s): the loop gain of its longest line is
    interpolated linearly between the gains giving 0.7 s and 12.5 s (a concave time curve)."""
    room = min(max(float(room), 0.0), 1.0)
    ls = 2.0 * NOMINAL[-1] / 44100.0          # the longest line, seconds
    gmin = 10.0 ** (-3.0 * ls / MIN_RT)
    gmax = 10.0 ** (-3.0 * ls / MAX_RT)
    gi = gmin + room * (gmax - gmin)
    return -3.0 * math.log(10.0) * ls / math.log(gi)


# ---------------------------------------------------------------------------- compiled helper
NATIVE = Helper(
    "effects", [Path(__file__).with_name("effects.cpp")],
    ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC",
     "-x", "c++"],
    {"fx_reverb": (None, [I64, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I64, PTR, PTR, PTR, PTR, PTR,
                          PTR, F32, F32, F32, I64, PTR]),
     "fx_chorus": (None, [I64, PTR, PTR, PTR, PTR, I64, I32, PTR, PTR, F32, F32, PTR])},
    label="effects helper")


def _p(a):
    return ctypes.c_void_p(a.ctypes.data)


def _engine(engine: str):
    return NATIVE.for_engine(engine_choice(engine, "effects engine"))


# ---------------------------------------------------------------------------- reverb
class Reverb:
    def __init__(self, rate: int, engine: str = "auto", **params):
        self.rate = int(rate)
        self.lib = _engine(engine)
        f = self.rate / 44100.0
        self.len = np.array([int(n * 2 * f) for n in NOMINAL], np.int64)
        self.off = np.concatenate([[0], np.cumsum(self.len + 1)[:-1]]).astype(np.int64)
        self.hist = np.zeros(int((self.len + 1).sum()), F)
        self.bmax = int(self.len.min())
        self.tone = np.zeros(3, F)
        self.pre = np.zeros(0, F)
        self.scale = 1.0            # GS/XG reverb level (1 = 64 of 127)
        self.params = dict(REVERB_DEFAULTS)
        self.set(**params)
        self._scratch = np.zeros((NL + 4) * self.bmax + self.bmax, F)

    def set(self, **params):
        """Change parameters (the state is kept: a change mid-song does not cut the tail)."""
        for k, v in params.items():
            if k not in REVERB_DEFAULTS:
                raise ValueError(f"unknown reverb parameter {k!r}")
            if v is not None or k == "time":
                self.params[k] = v
        p = self.params
        t = p["time"]
        rt = room_to_time(p["room"]) if t is None else float(t)
        if not 0.05 <= rt <= 30.0:
            raise ValueError(f"reverb time must be 0.05..30 s, not {rt}")
        damp = float(p["damp"])
        width = float(p["width"])
        level = float(p["level"])
        pre_s = float(p["predelay"])
        if not 0.0 <= damp <= 1.0:
            raise ValueError("reverb damping must be 0..1")
        if not 0.0 <= width <= 100.0:
            raise ValueError("reverb width must be 0..100")
        if not 0.0 <= level <= 1.0:
            raise ValueError("reverb level must be 0..1")
        if not 0.0 <= pre_s <= 0.5:
            raise ValueError("reverb pre-delay must be 0..0.5 s")
        self.rt60 = rt
        ldc = -3.0 * self.len / (self.rate * rt)              # log10 of the loop gain at DC
        self.g = (10.0 ** ldc).astype(F)
        # at Nyquist the FIR gain is (1 - 2c): the line loses its 60 dB in rt * (1 - damp)
        r = 10.0 ** (ldc * (damp / max(1.0 - damp, 1e-9))) if damp < 1.0 else np.zeros(NL)
        c1 = (1.0 - r) / 2.0
        self.c1 = c1.astype(F)
        self.c0 = (1.0 - c1).astype(F)
        # FluidSynth's tone correction (flattens the damped response), a first-order FIR
        if damp > 0.0:
            lg = math.log(10.0 ** (-3.0 * self.len[-1] / (self.rate * rt)))
            alpha = math.sqrt(1.0 / (1.0 - damp / ((20.0 / 80.0) * lg)))
            beta = (1.0 - alpha) / (1.0 + alpha)
            b1 = 1.0 / (1.0 - beta)
            self.tone[0], self.tone[1] = F(b1), F(beta * b1)
        else:
            self.tone[0], self.tone[1] = F(1.0), F(0.0)
        wet = level * SCALE_WET / (1.0 + width * 0.2)
        wet1 = wet * (width / 2.0 + 0.5)
        wet2 = wet * ((1.0 - width) / 2.0)
        i = np.arange(NL)
        self.sl = (np.where(i & 1, -1.0, 1.0) * wet1).astype(F)
        self.sr = (np.where(i & 2, -1.0, 1.0) * wet1).astype(F)
        self.wet2 = F(wet2 / wet1) if wet1 > 0 else F(0.0)
        npre = int(round(pre_s * self.rate))
        if npre != len(self.pre):
            keep = self.pre[max(0, len(self.pre) - npre):]
            self.pre = np.concatenate([np.zeros(npre - len(keep), F), keep]).astype(F)
        self.in_gain = F(FIXED_GAIN * SEND_COMP * REVERB_TRIM * self.scale)

    def silent(self) -> bool:
        return not (self.tone[2] or np.any(self.hist) or np.any(self.pre))

    def process(self, send: np.ndarray):
        """send: mono float32 [n] (the reverb bus). Returns (L, R) float32 [n] each."""
        n = len(send)
        x = np.ascontiguousarray(send, F) * self.in_gain
        if not np.any(x) and self.silent():
            z = np.zeros(n, F)
            return z, z.copy()
        oL = np.empty(n, F)
        oR = np.empty(n, F)
        if self.lib is not None:
            need = (NL + 4) * self.bmax + len(self.pre) + self.bmax
            if len(self._scratch) < need:
                self._scratch = np.zeros(need, F)
            self.lib.fx_reverb(ctypes.c_longlong(n), _p(x), _p(oL), _p(oR), _p(self.hist),
                               _p(self.off), _p(self.len), _p(self.pre),
                               ctypes.c_longlong(len(self.pre)), _p(self.tone), _p(self.g),
                               _p(self.c0), _p(self.c1), _p(self.sl), _p(self.sr),
                               ctypes.c_float(self.wet2), ctypes.c_float(-2.0 / NL),
                               ctypes.c_float(FLUSH), ctypes.c_longlong(self.bmax),
                               _p(self._scratch))
        else:
            self._process_numpy(x, oL, oR)
        return oL, oR

    def _process_numpy(self, x, oL, oR):
        """The reference: the same float32 operations, in the same order, as fx_reverb."""
        b1, b2 = self.tone[0], self.tone[1]
        fmat = F(-2.0 / NL)
        flush = F(FLUSH)
        for p in range(0, len(x), self.bmax):
            xb = x[p:p + self.bmax]
            B = len(xb)
            if len(self.pre):
                pt = np.concatenate([self.pre, xb])
                xd = pt[:B]
                self.pre = pt[B:].copy()
            else:
                xd = xb
            prev = np.concatenate([[self.tone[2]], xd[:-1]]).astype(F)
            xt = xd * b1 - b2 * prev
            self.tone[2] = xd[-1]
            y = []
            for i in range(NL):
                h = self.hist[self.off[i]:self.off[i] + self.len[i] + 1]
                y.append(self.g[i] * (self.c0[i] * h[1:B + 1] + self.c1[i] * h[:B]))
            acc = y[0]
            l_ = self.sl[0] * y[0]
            r_ = self.sr[0] * y[0]
            for i in range(1, NL):
                acc = acc + y[i]
                l_ = l_ + self.sl[i] * y[i]
                r_ = r_ + self.sr[i] * y[i]
            s = acc * fmat + xt
            oL[p:p + B] = l_ + r_ * self.wet2
            oR[p:p + B] = r_ + l_ * self.wet2
            for i in range(NL):
                a, L1 = self.off[i], self.len[i] + 1
                h = self.hist[a:a + L1]
                h[:L1 - B] = h[B:].copy()
                v = y[(i + 1) % NL] + s
                h[L1 - B:] = np.where((v < flush) & (v > -flush), F(0.0), v)


# ---------------------------------------------------------------------------- chorus
class Chorus:
    def __init__(self, rate: int, engine: str = "auto", **params):
        self.rate = int(rate)
        self.lib = _engine(engine)
        self.pos = 0                # absolute frame of the next input (the synth starts at 0)
        self.hist = np.zeros(0, F)
        self.scale = 1.0            # GS/XG chorus level (1 = 64 of 127)
        self.params = dict(CHORUS_DEFAULTS)
        self.set(**params)

    def set(self, **params):
        for k, v in params.items():
            if k not in CHORUS_DEFAULTS:
                raise ValueError(f"unknown chorus parameter {k!r}")
            if v is not None:
                self.params[k] = v
        p = self.params
        nv, level, speed = int(p["voices"]), float(p["level"]), float(p["speed"])
        depth, width, typ = float(p["depth"]), float(p["width"]), p["type"]
        if not 0 <= nv <= 99:
            raise ValueError("chorus voices must be 0..99")
        if not 0.0 <= level <= 10.0:
            raise ValueError("chorus level must be 0..10")
        if not 0.1 <= speed <= 5.0:
            raise ValueError("chorus speed must be 0.1..5 Hz")
        if not 0.0 <= depth <= 40.0:
            raise ValueError("chorus depth must be 0..40 ms")
        if not 0.0 <= width <= 10.0:
            raise ValueError("chorus width must be 0..10")
        if typ not in ("sine", "triangle"):
            raise ValueError("chorus type must be 'sine' or 'triangle'")
        self.nv, self.speed, self.type = nv, speed, typ
        self.half = depth * 1e-3 * self.rate / 2.0           # LFO amplitude, samples
        nh = int(math.ceil(2.0 * self.half)) + 4
        if nh != len(self.hist):
            keep = self.hist[max(0, len(self.hist) - nh):]
            self.hist = np.concatenate([np.zeros(nh - len(keep), F), keep]).astype(F)
        wet = level * 1.0
        if nv > 1:
            wet = wet / (1.0 + width * 0.2)
            wet1, wet2 = wet * (width / 2.0 + 0.5), wet * ((1.0 - width) / 2.0)
        else:
            wet1, wet2 = wet, (-wet if width else wet)
        self.wet1, self.wet2 = F(wet1), F(wet2)
        self.in_gain = F(SEND_COMP * self.scale)

    def silent(self) -> bool:
        return not np.any(self.hist)

    def _delays(self, n: int):
        """Per voice and tick: the delay at the tick start and its per-frame step (float32)."""
        T = n // TICK
        k = (self.pos // TICK) + np.arange(T + 1, dtype=np.float64)
        ph = (k * (TICK * self.speed / self.rate))[None, :] + np.arange(self.nv)[:, None] / max(self.nv, 1)
        ph = ph - np.floor(ph)
        if self.type == "sine":
            lfo = np.sin(2.0 * np.pi * ph)
        else:
            lfo = 1.0 - 4.0 * np.abs(ph - 0.5)            # -1 at phase 0, +1 at 0.5
        d = (1.0 + self.half + self.half * lfo).astype(F)
        d0 = np.ascontiguousarray(d[:, :T])
        dd = np.ascontiguousarray((d[:, 1:] - d[:, :T]) * F(1.0 / TICK))
        return d0, dd

    def process(self, send: np.ndarray):
        """send: mono float32 [n], n a multiple of 64 (whole ticks). Returns (L, R)."""
        n = len(send)
        if n % TICK:
            raise ValueError("the chorus processes whole 64-frame ticks")
        x = np.ascontiguousarray(send, F) * self.in_gain
        if self.nv == 0 or (not np.any(x) and self.silent()):
            self.pos += n
            if self.nv == 0:
                self.hist[:] = 0.0
            z = np.zeros(n, F)
            return z, z.copy()
        d0, dd = self._delays(n)
        oL = np.empty(n, F)
        oR = np.empty(n, F)
        nh = len(self.hist)
        if self.lib is not None:
            scratch = np.empty(nh + 3 * n, F)
            self.lib.fx_chorus(ctypes.c_longlong(n), _p(x), _p(oL), _p(oR), _p(self.hist),
                               ctypes.c_longlong(nh), ctypes.c_int(self.nv), _p(d0), _p(dd),
                               ctypes.c_float(self.wet1), ctypes.c_float(self.wet2), _p(scratch))
        else:
            buf = np.concatenate([self.hist, x])
            dL = np.zeros(n, F)
            dR = np.zeros(n, F)
            kf = np.arange(TICK, dtype=F)
            j = np.arange(n)
            for v in range(self.nv):
                d = (d0[v][:, None] + dd[v][:, None] * kf[None, :]).reshape(-1)
                di = d.astype(np.int64)
                fr = d - di.astype(F)
                q0 = buf[nh + j - di]
                q1 = buf[nh + j - di - 1]
                o = q0 + fr * (q1 - q0)
                if v & 1:
                    dR = dR + o
                else:
                    dL = dL + o
                if (self.nv & 1) and self.nv > 2 and v == self.nv - 1:
                    dR = dR + o
            oL[:] = dL * self.wet1 + dR * self.wet2
            oR[:] = dR * self.wet1 + dL * self.wet2
            self.hist = buf[n:].copy()
        self.pos += n
        return oL, oR


# ---------------------------------------------------------------------------- the stage
# GS reverb macros (40 01 30): Room 1-3, Hall 1-2, Plate, Delay, Panning Delay -> RT60 (s),
# damping; GS chorus macros (40 01 38): Chorus 1-4, Feedback Chorus, Flanger, Short Delay,
# Short Delay (FB) -> depth (ms), speed (Hz). Approximations of the SC-55 presets' character.
GS_REVERB = [(0.8, 0.3), (1.1, 0.3), (1.5, 0.3), (1.9, 0.2), (2.6, 0.2), (1.7, 0.0),
             (1.2, 0.5), (1.2, 0.5)]
GS_CHORUS = [(6.0, 0.4), (8.0, 0.5), (8.0, 0.4), (10.0, 0.6), (8.0, 0.3), (3.0, 0.2),
             (1.0, 0.1), (1.0, 0.1)]
# XG reverb type MSB (02 01 00) -> RT60, damping; XG chorus type MSB (02 01 20) -> depth, speed
XG_REVERB = {1: (2.2, 0.2), 2: (1.0, 0.3), 3: (1.6, 0.3), 4: (1.7, 0.0), 16: (0.9, 0.4),
             17: (3.0, 0.3), 19: (1.1, 0.5)}
XG_CHORUS = {65: (8.0, 0.5), 66: (6.0, 0.3), 67: (3.0, 0.2), 68: (8.0, 0.9)}


class Effects:
    """The effect stage: reverb and chorus on the send buses of one synth, added to its dry
    mix. ``process(buses)`` takes the four buses of a window (float32 [n, 4], the master gain
    applied) and returns the stereo wet signal [n, 2]."""

    def __init__(self, rate: int, reverb: bool = True, chorus: bool = True,
                 reverb_params: dict | None = None, chorus_params: dict | None = None,
                 engine: str = "auto"):
        self.rate = int(rate)
        self.reverb_on = bool(reverb)
        self.chorus_on = bool(chorus)
        self.reverb = Reverb(rate, engine, **(reverb_params or {}))
        self.chorus = Chorus(rate, engine, **(chorus_params or {}))
        self._base_rev = dict(self.reverb.params)
        self._base_cho = dict(self.chorus.params)
        self.engine = "reference" if self.reverb.lib is None else "native"

    @property
    def on(self) -> bool:
        return self.reverb_on or self.chorus_on

    def ringing(self) -> bool:
        """True while an effect still holds signal (its tail has not ended)."""
        return (self.reverb_on and not self.reverb.silent()) or \
            (self.chorus_on and not self.chorus.silent())

    def add_to(self, buses: np.ndarray):
        """Add the wet signal of buses [n, 4] (L, R, reverb send, chorus send) into its dry
        columns, in place: each side's wet is (0 + reverb) + chorus before it meets the dry."""
        n = len(buses)
        wl = wr = None
        if self.reverb_on:
            wl, wr = self.reverb.process(buses[:, 2])
            wl += F(0.0)                       # 0 + x: a -0.0 from the reverb becomes +0.0
            wr += F(0.0)
        if self.chorus_on:
            l_, r_ = self.chorus.process(buses[:, 3])
            if wl is None:
                wl, wr = l_ + F(0.0), r_ + F(0.0)
            else:
                wl += l_
                wr += r_
        else:
            self.chorus.pos += n
        if wl is not None:
            buses[:, 0] += wl
            buses[:, 1] += wr

    # ---- GS / XG system effect settings ------------------------------------------------
    def apply_sysex(self, fx: dict):
        """Apply the channel state's system-effect settings (gpusynth.channels.ChannelState.fx):
        reverb/chorus macro or type and level. None values mean 'as opened'."""
        rv = dict(self._base_rev)
        ch = dict(self._base_cho)
        if fx.get("gs_reverb") is not None:
            t, dmp = GS_REVERB[fx["gs_reverb"] % 8]
            rv.update(time=t, damp=dmp)
        if fx.get("xg_reverb") is not None:
            if fx["xg_reverb"] in XG_REVERB:
                t, dmp = XG_REVERB[fx["xg_reverb"]]
                rv.update(time=t, damp=dmp)
        if fx.get("reverb_time") is not None:
            if rv.get("time") is None:
                rv["time"] = room_to_time(rv["room"])
            rv["time"] = min(30.0, max(0.05, rv["time"] * 2.0 ** ((fx["reverb_time"] - 64) / 32.0)))
        if fx.get("gs_chorus") is not None:
            dep, spd = GS_CHORUS[fx["gs_chorus"] % 8]
            ch.update(depth=dep, speed=spd)
        if fx.get("xg_chorus") is not None and fx["xg_chorus"] in XG_CHORUS:
            dep, spd = XG_CHORUS[fx["xg_chorus"]]
            ch.update(depth=dep, speed=spd)
        self.reverb.scale = (fx["reverb_level"] / 64.0) if fx.get("reverb_level") is not None else 1.0
        self.chorus.scale = (fx["chorus_level"] / 64.0) if fx.get("chorus_level") is not None else 1.0
        if fx.get("xg_reverb") == 0:
            self.reverb.scale = 0.0
        if fx.get("xg_chorus") == 0:
            self.chorus.scale = 0.0
        self.reverb.set(**rv)
        self.chorus.set(**ch)
