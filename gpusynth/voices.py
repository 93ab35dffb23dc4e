"""The voice record: one packed schema shared by the host, every backend and the kernels.

VOICE_FIELDS is the single source of truth: (name, dtype, unit). ``VOICE_DTYPE`` is the packed
(C-aligned) record of those fields; ``kernels/common.cuh`` declares the same ``struct Voice`` and
``gpusynth._kernels.check_schema`` compares the two field by field, offset by offset.

The host owns the table (``gpusynth.allocator``): it creates records at note-on, sets release and
kill times, and never reads anything back from a device. The kernel owns only the ``state`` part
(position, last gains, filter state, done flag), which it advances tick by tick.
Times are absolute sample positions (int64) so that a voice's render is a pure function of the
absolute 64-frame tick grid: output is bit-identical whatever window or block sizes are used.
"""
from __future__ import annotations

import numpy as np

from . import detmath, units
from .banks.model import REGION_DTYPE

NEVER = np.int64(1) << np.int64(62)   # "no release / no kill yet"
TICK = 64                             # control-rate tick, frames (controllers apply per tick)

# Field order = C struct order: 8-byte fields first, then 4-byte, then 1-byte, so the packed
# record has no inner padding (numpy align=True pads the tail to 8 bytes, as C does).
VOICE_FIELDS = [
    # --- timing (absolute samples; host-owned) ---
    ("start", np.int64, "sample time of the note-on"),
    ("release", np.int64, "sample time of the note-off (NEVER = held)"),
    ("kill", np.int64, "sample time the steal/cut fade starts (NEVER = none)"),
    # --- sample playback (pool indices, end exclusive) ---
    ("pstart", np.int64, "pool index of the first sample"),
    ("pend", np.int64, "pool index one past the last sample"),
    ("lstart", np.int64, "loop start pool index"),
    ("lend", np.int64, "loop end pool index (exclusive)"),
    ("ipos", np.int64, "state: integer pool position at the tick start"),
    # --- pitch, gain, pan, filter ---
    ("pitch", np.float32, "cents: base playback pitch incl. sample-rate conversion"),
    ("atten", np.float32, "cB attenuation incl. velocity"),
    ("pan", np.float32, "0.1 % (-500..500)"),
    ("fc", np.float32, "absolute cents cutoff incl. velocity"),
    ("q", np.float32, "cB resonance"),
    ("fatt", np.float32, "cB attenuation of the filter stage (SF2: 1/sqrt(Q)), added after the 0 cB clamp"),
    ("rev", np.float32, "reverb send 0..1 (static part)"),
    ("cho", np.float32, "chorus send 0..1 (static part)"),
    ("rev_cc", np.float32, "reverb send at CC91 = 127, 0..1"),
    ("cho_cc", np.float32, "chorus send at CC93 = 127, 0..1"),
    # --- volume envelope: frames; sustain cB ---
    ("ve_delay", np.float32, "frames"),
    ("ve_attack", np.float32, "frames"),
    ("ve_hold", np.float32, "frames"),
    ("ve_decay", np.float32, "frames for 1000 cB"),
    ("ve_sus", np.float32, "cB attenuation at sustain"),
    ("ve_release", np.float32, "frames for 1000 cB"),
    # --- modulation envelope: frames; sustain level 0..1 ---
    ("me_delay", np.float32, "frames"),
    ("me_attack", np.float32, "frames"),
    ("me_hold", np.float32, "frames"),
    ("me_decay", np.float32, "frames for a full 1 -> 0 change"),
    ("me_sus", np.float32, "level 0..1"),
    ("me_release", np.float32, "frames for a full 1 -> 0 change"),
    ("me_pitch", np.float32, "cents at full mod env"),
    ("me_fc", np.float32, "cents at full mod env"),
    # --- LFOs (triangle, start at 0 rising after the delay) ---
    ("ml_delay", np.float32, "frames"),
    ("ml_freq", np.float32, "cycles per frame"),
    ("ml_pitch", np.float32, "cents"),
    ("ml_fc", np.float32, "cents"),
    ("ml_vol", np.float32, "cB, positive = louder at positive excursion"),
    ("vl_delay", np.float32, "frames"),
    ("vl_freq", np.float32, "cycles per frame"),
    ("vl_pitch", np.float32, "cents"),
    ("cc1_vib", np.float32, "cents of vibrato per full CC1"),
    ("press_vib", np.float32, "cents of vibrato per full channel pressure"),
    ("cc1_ml_pitch", np.float32, "cents of mod-LFO pitch per full CC1"),
    ("cc1_ml_vol", np.float32, "cB of mod-LFO volume per full CC1"),
    ("cc1_ml_fc", np.float32, "cents of mod-LFO cutoff per full CC1"),
    # --- state, advanced by the kernel at every tick ---
    ("fpos", np.float32, "state: fractional position 0..1"),
    ("gl", np.float32, "state: left gain of the previous tick (-1 = not started)"),
    ("gr", np.float32, "state: right gain of the previous tick"),
    ("s1", np.float32, "state: filter integrator 1 (TPT state-variable filter)"),
    ("s2", np.float32, "state: filter integrator 2"),
    ("cfc", np.float32, "state: cutoff (cents) the cached filter coefficients are for"),
    ("ca1", np.float32, "state: cached filter coefficient a1"),
    ("ca2", np.float32, "state: cached filter coefficient a2"),
    ("ca3", np.float32, "state: cached filter coefficient a3"),
    ("catt", np.float32, "state: attenuation (cB) the gains gl/gr were computed for"),
    ("cpan", np.float32, "state: pan (0.1 %) the gains gl/gr were computed for"),
    # --- 4- and 1-byte tail ---
    ("chan", np.int32, "channel index group*16+ch"),
    ("lmode", np.int32, "0 none, 1 forward, 3 until release"),
    ("bus", np.int32, "output the voice mixes into (gpusynth.ensemble: one per song; else 0)"),
    ("done", np.int8, "state: 1 once the voice has finished"),
    ("me_convex", np.int8, "1: mod-envelope attack on the SF2 convex curve, 0: linear"),
]
VOICE_DTYPES = {n: np.dtype(t) for n, t, _ in VOICE_FIELDS}
VOICE_DTYPE = np.dtype([(n, t) for n, t, _ in VOICE_FIELDS], align=True)
CHANNEL_INPUTS = ["ch_pitch", "ch_gain", "ch_pan", "ch_mod", "ch_press", "ch_rev", "ch_cho"]


def _tc_samples(tc, rate, lo=-12000.0, hi=8000.0):
    tc = np.asarray(tc, dtype=np.float64)
    sec = np.where(tc <= -32767.0, 0.0, np.exp2(np.clip(tc, lo, hi) / 1200.0))
    return (sec * rate).astype(np.float32)


def region_templates(reg: np.ndarray, rate: float, pool_offset: np.ndarray | int = 0) -> np.ndarray:
    """The part of each region's voice record that depends on neither the note's key nor its
    velocity (VOICE_DTYPE, one per region): computed once per bank set, gathered per note-on."""
    assert reg.dtype == REGION_DTYPE
    n = len(reg)
    off = np.asarray(pool_offset, dtype=np.int64)
    rec = np.zeros(n, VOICE_DTYPE)          # the filter and gain caches start empty
    rec["release"] = NEVER
    rec["kill"] = NEVER
    rec["pstart"] = reg["start"].astype(np.int64) + off
    rec["pend"] = reg["end"].astype(np.int64) + off
    rec["lstart"] = reg["loop_start"].astype(np.int64) + off
    rec["lend"] = reg["loop_end"].astype(np.int64) + off
    rec["ipos"] = rec["pstart"]
    rec["lmode"] = reg["loop_mode"]
    rec["pan"] = np.clip(reg["pan"], -500, 500)
    rec["q"] = np.clip(reg["q"], 0, 960)
    rec["fatt"] = reg["fatt"]
    for f, src in (("rev", "rev_send"), ("cho", "cho_send"), ("rev_cc", "rev_cc"), ("cho_cc", "cho_cc")):
        rec[f] = np.clip(reg[src] / 1000.0, 0, 1)
    for p in ("ve", "me"):
        # SF2's default delay of -12000 tc (1 ms) counts as none, as FluidSynth does (its
        # envelope counts whole 64-frame blocks): drum transients start on their sample
        rec[p + "_delay"] = _tc_samples(np.where(reg[p + "_delay"] <= -12000, -32768.0,
                                                 reg[p + "_delay"]), rate, hi=5000.0)
        rec[p + "_release"] = _tc_samples(reg[p + "_release"], rate)
    rec["ve_sus"] = np.clip(reg["ve_sustain"], 0, 1440)
    rec["me_sus"] = 1.0 - np.clip(reg["me_sustain"], 0, 1000) / 1000.0
    rec["me_convex"] = reg["me_convex"] != 0
    rec["me_pitch"] = reg["me_pitch"]
    rec["me_fc"] = reg["me_fc"]
    rec["ml_delay"] = _tc_samples(reg["ml_delay"], rate, hi=5000.0)
    rec["ml_freq"] = np.clip(units.abs_cents_to_hz(np.clip(reg["ml_freq"], -16000, 4500)), 0, 100) / rate
    rec["vl_delay"] = _tc_samples(reg["vl_delay"], rate, hi=5000.0)
    rec["vl_freq"] = np.clip(units.abs_cents_to_hz(np.clip(reg["vl_freq"], -16000, 4500)), 0, 100) / rate
    for nm in ("ml_pitch", "ml_fc", "ml_vol", "vl_pitch", "cc1_vib", "press_vib",
               "cc1_ml_pitch", "cc1_ml_vol", "cc1_ml_fc"):
        rec[nm] = reg[nm]
    rec["gl"] = -1.0
    rec["gr"] = -1.0
    return rec


_KEYVEL_HI = np.array([8000.0, 8000.0, 5000.0, 5000.0, 8000.0, 8000.0])[:, None]


def envelope_frames(tc, hi, rate) -> np.ndarray:
    """Envelope times in timecents (<= -32767: none) -> frames (float32), clipped to
    -12000..``hi`` tc (gpusynth.detmath's 2^x, so the compiled control engine agrees)."""
    return (np.where(tc <= -32767.0, 0.0, detmath.exp2(np.clip(tc, -12000.0, hi) / 1200.0))
            * rate).astype(np.float32)


def regions_to_voices(reg: np.ndarray, key: np.ndarray, vel: np.ndarray, chan: np.ndarray,
                      time: np.ndarray, rate: float, pool_offset: np.ndarray | int = 0,
                      template: np.ndarray | None = None) -> np.ndarray:
    """Resolve flattened regions (REGION_DTYPE records, one per new voice) plus the note's key,
    velocity, channel and start time into voice records (VOICE_DTYPE, vectorised).
    ``template``: the regions' rows of region_templates (else computed here)."""
    assert reg.dtype == REGION_DTYPE
    f64 = np.float64
    rec = region_templates(reg, rate, pool_offset) if template is None else template.copy()
    k = np.where(reg["fixed_key"] >= 0, reg["fixed_key"], key).astype(f64)
    v = np.where(reg["fixed_vel"] >= 0, reg["fixed_vel"], vel).astype(f64)
    rec["start"] = time
    rec["chan"] = chan
    rec["pitch"] = (reg["scale_tuning"].astype(f64) * (k - reg["root_key"]) + reg["tune"]
                    + 1200.0 * detmath.log2(reg["sample_rate"].astype(f64) / float(rate)))
    rec["atten"] = reg["atten"] + units.concave_table()[v.astype(np.int64)] * reg["vel_atten"]
    rec["fc"] = reg["fc"] + np.where(v >= reg["vel_fc_min"], reg["vel_fc"] * (1.0 - v / 127.0), 0.0)
    kd = 60.0 - k
    # attack (velocity), hold and decay (key) of both envelopes: timecents -> frames at once
    tc = np.stack([np.where(reg[p + "_attack"] <= -32767, -32768.0,
                            reg[p + "_attack"] + reg[p + "_vel_attack"] * v / 128.0)
                   for p in ("ve", "me")]
                  + [np.where(reg[p + "_" + s] <= -32767, -32768.0,
                              reg[p + "_" + s] + kd * reg[p + "_key_" + s])
                     for s in ("hold", "decay") for p in ("ve", "me")])
    fr = envelope_frames(tc, _KEYVEL_HI, rate)
    rec["ve_attack"], rec["me_attack"] = fr[0], fr[1]
    rec["ve_hold"], rec["me_hold"], rec["ve_decay"], rec["me_decay"] = fr[2], fr[3], fr[4], fr[5]
    return rec


def compaction_moves(n_active: int, finished: np.ndarray):
    """Given the number of active slots and the (sorted, unique) slots that finished, return
    (src, dst) slot arrays that move surviving tail voices into the holes, keeping the table
    dense in [0, n_active - len(finished)). Deterministic."""
    finished = np.asarray(finished, dtype=np.int64)
    n_new = n_active - len(finished)
    if len(finished) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    holes = finished[finished < n_new]
    tail = np.arange(n_new, n_active, dtype=np.int64)
    tail_alive = tail[~np.isin(tail, finished)]
    assert len(tail_alive) == len(holes)
    return tail_alive, holes
