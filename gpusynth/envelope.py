"""The volume envelope in closed form (numpy, float32 like the kernels).

Used by the numpy reference backend (per-frame gains) and by the host allocator (the level of a
voice at any time, for voice stealing, and the time a voice falls silent) so that no decision
depends on a rendered level, a window size or a device read-back.

Model (SF2 2.04 / DLS2 volume EG; t in frames since note-on, ``held`` = min(t, note-off)):
delay: 0; attack: (x + 1) / attack, linear in amplitude; hold: 1; decay: 1000 cB per
``ve_decay`` frames down to ``ve_sus`` cB; release: 1000 cB per ``ve_release`` frames from the
level reached at the note-off. A steal/cut multiplies by a linear fade over ``fade`` frames from
the kill time. All in float32 with the kernels' operation order (kernels/common.cuh).

Per frame the kernels step the gain with one multiply-add between exact closed-form values at
every stage change (``segments``): within the attack and the fade the step is additive, within
decay and release it is a constant ratio (dB-linear: exact), elsewhere constant.
"""
from __future__ import annotations

import numpy as np

from . import detmath

F32 = np.float32
LOG2_10_200 = F32(0.0166096404744368)     # log2(10) / 200: cB -> log2 of gain
NEVER = np.int64(1) << np.int64(62)


# 2^f on [0, 1): the kernels' polynomial (kernels/detmath.h gs_exp2), highest power first
EXP2_POLY = tuple(F32(c) for c in (0.00021877505059819669, 0.0012387821916490793, 0.009684580378234386, 0.05548042804002762, 0.2402305006980896, 0.6931469440460205, 1.0))


def exp2(x):
    """2^x in float32, bit-identical to the kernels' gs_exp2 (max relative error 8.5e-8, 1.1e-7
    for -1 < x < 0 where the argument reduction rounds; 0 below about -126)."""
    x = np.asarray(x, F32)
    x = np.where(x > F32(-127.0), x, F32(-127.0))
    x = np.where(x < F32(127.0), x, F32(127.0))
    n = x.astype(np.int32)
    n = np.where(n.astype(F32) > x, n - 1, n)
    f = x - n.astype(F32)
    p = np.full(f.shape, EXP2_POLY[0], F32)
    for c in EXP2_POLY[1:]:
        p = p * f + c
    return p * ((n + 127) << 23).astype(np.int32).view(F32)


def cb_gain(cb):
    """cB of attenuation -> gain, float32."""
    return exp2(np.asarray(cb, F32) * -LOG2_10_200)


def rates(v):
    """(k1000, krel): decay and release slopes in cB per frame (float32)."""
    return (F32(1000.0) / np.maximum(v["ve_decay"], F32(1.0)),
            F32(1000.0) / np.maximum(v["ve_release"], F32(1.0)))


def exact(v, t, fade: int):
    """Envelope gain of voices ``v`` (records, broadcast against t) at absolute frames t."""
    k1000, krel = rates(v)
    return exact_cols(v["start"], v["release"], v["kill"], v["ve_delay"], v["ve_attack"],
                      v["ve_hold"], k1000, v["ve_sus"], krel, t, fade)


def exact_cols(start, rel_t, kill, delay, attack, hold, k1000, sus, krel, t, fade: int):
    """``exact`` from the record's columns and its rates (the same float32 operations)."""
    t = np.asarray(t, np.int64)
    rel = t >= rel_t
    th = np.where(rel, rel_t, t)
    x = (th - start).astype(F32) - delay
    att = np.minimum((x + F32(1.0)) / np.maximum(attack, F32(1.0)), F32(1.0))
    y = (x - attack) - hold
    cb = np.minimum(np.maximum(y, F32(0.0)) * k1000, sus)
    cb = np.where(rel, cb + np.where(rel, t - rel_t, 0).astype(F32) * krel, cb)
    g = att * cb_gain(cb)
    killed = t > kill
    fd = F32(1.0) - np.where(killed, t - kill, 0).astype(F32) / F32(fade)
    g = np.where(killed, g * np.clip(fd, F32(0.0), F32(1.0)), g)
    return np.where(x < F32(0.0), F32(0.0), g).astype(F32)


def stage_breaks(v):
    """Frames since note-on at which the held envelope changes formula: attack start, top of
    the attack, decay start, sustain start (float32, as the kernels' gs_venv_breaks)."""
    k1000, _ = rates(v)
    d, a, h = v["ve_delay"], v["ve_attack"], v["ve_hold"]
    return (np.ceil(d), np.ceil((d + a) - F32(1.0)), np.ceil((d + a) + h),
            np.ceil(np.minimum(((d + a) + h) + v["ve_sus"] / k1000, F32(1e12))))


def segment_gains(v, t0: int, k0, fade: int, tick: int):
    """Per-frame gains [voices, tick] of the kernels' stepped envelope for the tick starting at
    t0 (frames before k0, the voice's first frame in the tick, are 0)."""
    n = len(v)
    k = np.arange(tick)
    start, rel_t, kill = v["start"][:, None], v["release"][:, None], v["kill"][:, None]
    # breakpoints (tick-relative): stage changes before the note-off, note-off, kill, fade end
    cands = [start + b.astype(np.int64)[:, None] for b in stage_breaks(v)]
    cands = [np.where(c < rel_t, c, NEVER) for c in cands]
    cands += [rel_t, kill, np.where(kill < NEVER, kill + fade, NEVER)]
    C = np.concatenate([c - t0 for c in cands], axis=1)      # [n, 7]
    k0 = np.asarray(k0)[:, None]
    inside = (C > k0) & (C < tick)
    Ci = np.where(inside, C, -1)
    # segment start s(k) = max(k0, last breakpoint <= k); end e(k) = first breakpoint > k
    s = np.maximum(k0, np.max(np.where(Ci[:, :, None] <= k[None, None, :], Ci[:, :, None], -1), axis=1))
    e = np.min(np.where(Ci[:, :, None] > k[None, None, :], Ci[:, :, None], tick), axis=1)
    vb = v[:, None]
    ts = t0 + s
    gs = exact(vb, ts, fade)
    k1000, krel = rates(vb)
    steps = (k - s).astype(F32)
    # stage at the segment start
    killed = ts >= kill
    released = ~killed & (ts >= rel_t)
    u = (ts - start).astype(F32)
    x = u - vb["ve_delay"]
    y = (x - vb["ve_attack"]) - vb["ve_hold"]
    held = ~killed & ~released & (x >= F32(0.0))
    attack = held & (x + F32(1.0) < vb["ve_attack"])
    decay = held & ~attack & (y >= F32(0.0)) & (y * k1000 < vb["ve_sus"])
    ge = exact(vb, t0 + e, fade)
    fade_step = (ge - gs) / np.maximum(e - s, 1).astype(F32)
    add = np.where(killed, fade_step,
                   np.where(attack, F32(1.0) / np.maximum(vb["ve_attack"], F32(1.0)), F32(0.0)))
    ratio = np.where(released, cb_gain(krel), np.where(decay, cb_gain(k1000), F32(1.0)))
    g = np.where(add != 0, gs + add * steps, gs * np.power(ratio, steps))
    return np.where(k[None, :] >= k0, g, F32(0.0)).astype(F32).reshape(n, tick)


def level_at(v, t, fade: int):
    """Closed-form output level of voices at frame t: envelope x static attenuation (the
    stealing score, computed on the host)."""
    return exact(v, t, fade) * cb_gain(np.maximum(v["atten"], F32(0.0)))


def silent_from(v, fade: int, done_level: float = 1e-5):
    """First frame at which each voice is certainly finished by its envelope (release below
    done_level, a decay to a sustain below it, or the end of a kill fade); NEVER if not known.
    float64 estimate, used only to count voices for the polyphony limit."""
    k1000, krel = (x.astype(np.float64) for x in rates(v))
    start = v["start"].astype(np.float64)
    d, a, h = (v[f].astype(np.float64) for f in ("ve_delay", "ve_attack", "ve_hold"))
    sus = v["ve_sus"].astype(np.float64)
    dec_cb = 200.0 * -np.log10(done_level)              # 1000 cB for 1e-5
    t_dec = np.where(sus >= dec_cb, start + d + a + h + dec_cb / k1000, np.inf)
    rel = v["release"]
    # a note-off before the decay reaches the done level ends the decay: from there the
    # release alone decides (it may be slower than the rest of the decay)
    t_dec = np.where(rel.astype(np.float64) < t_dec, np.inf, t_dec)
    t_rel = np.full(len(v), np.inf)
    r = np.flatnonzero(rel < NEVER)
    if len(r):                   # released: the level at the note-off, then krel cB per frame
        g_rel = exact(v[r], rel[r], fade).astype(np.float64)
        need = np.maximum(detmath.log10(np.maximum(g_rel, 1e-30) / done_level), 0.0) * 200.0
        t_rel[r] = rel[r].astype(np.float64) + need / krel[r]
    kill = v["kill"]
    t_kill = np.where(kill < NEVER, kill.astype(np.float64) + fade, np.inf)
    t = np.minimum(np.minimum(t_dec, t_rel), t_kill)
    return np.where(np.isfinite(t), np.ceil(np.minimum(t, 2.0 ** 61)), float(NEVER)).astype(np.int64)
