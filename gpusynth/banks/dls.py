"""DLS Level 1 / Level 2 reader into gpusynth's bank model (``model.Bank``).

API
---
``load_dls(path_or_bytes, name=None, *, strict=False, eg1_sustain="db") -> Bank``

Reads RIFF 'DLS ': colh, vers, dlid, lins/ins/insh, lrgn/rgn/rgn2/rgnh (usLayer optional),
wsmp (a region's wsmp overrides its wave's), wlnk, lart/lar2 holding art1/art2 (either inside
either), ptbl (rebuilt by walking wvpl when missing), wvpl/wave with 'fmt ' and 'data', INFO and
'cdl ' conditional chunks.  Every chunk is skipped by its size (padded to even length).

Decisions (see also the report in the commit history):

* Waves: PCM only (wFormatTag 1, or WAVE_FORMAT_EXTENSIBLE with the PCM sub-format), mono,
  8-bit unsigned or 16-bit signed.  Any other wave (stereo, 24-bit, ADPCM, float ...) is
  *unsupported*: each region that links to it is dropped, counted in
  ``bank.info["dls_dropped_regions"]`` with a line in ``bank.info["warnings"]``; with
  ``strict=True`` it raises ``BankError`` instead.  A wave that is *malformed* (missing fmt or
  data, absurd sample rate, sizes past its chunk) always raises ``BankError``.
* Articulation: DLS2 default connections (reference 4.6), then the instrument's connection
  blocks, then the region's.  A block replaces an earlier block with the same
  (source, control, destination) triple.  The merged set is turned into region fields; blocks we
  cannot model are counted (each file block once) in ``bank.info["dls_unmodeled_connections"]``
  with a tally by kind in ``bank.info["dls_unmodeled_kinds"]``.
* EG sustain is in 0.1 % units (sf_GMbank.dls, written by spessasynth, has EG1/EG2 sustain
  values 0..998; Leadsol.dls has none).  EG1 is an attenuation envelope, linear in dB (its
  full scale is the 96 dB of the EG1 -> gain connection), so the default ``eg1_sustain="db"``
  reads sustain as a fraction of that range: ``1000 - value`` cB (0.1 % per cB, as spessasynth
  writes it and as the SF2 it came from meant).  ``eg1_sustain="amplitude"`` selects the other
  reading: percent of full amplitude, ``min(1000, -200*log10(pct/100))`` cB.
  EG2 sustain -> ``me_sustain = 1000 - value`` (0.1 % decrease).
* Key -> EG hold/decay: contribution ``scale * key / 128`` timecents.  The engine applies
  ``time_tc + (60 - key) * value`` (the SF2 keynumTo*Env* convention, as sf2.py stores it), so
  ``ve_key_decay = -scale/128`` and ``scale*60/128`` is folded into the base time.  The bipolar
  bit is ignored for these (spessasynth sets it while meaning the unipolar DLS1 connection;
  reading it back as its SF2 source gives keynumToVolEnvDecay = -scale/128 exactly).
* MIDI sources are normalised to x = value/128; invert gives 1-x, bipolar 2x-1.  Linear blocks
  are affine in x, so inverted/bipolar linear blocks split into a static part plus a modulator
  depth.  LFO sources are inherently bipolar (invert negates).  Velocity -> gain must be concave
  (either the source or the output transform): ``vel_atten = |scale|`` cB.
* DLS1 files: the one LFO is our modulation LFO (LFO->pitch = ``ml_pitch``, CC1 x LFO -> pitch =
  ``cc1_ml_pitch``); the vibrato LFO stays at its DLS2 defaults with zero depth.
* DLS2 defaults give CC1/channel pressure x vibrato -> pitch depth 0 (``cc1_vib = press_vib =
  0``), CC91/CC93 -> sends 1000, velocity -> gain 960 cB concave, velocity -> cutoff 0.
* For 'rgn ' (DLS1) regions a velocity range of 0..0 is read as 0..127 (DLS1 devices ignore
  velocity ranges and some writers leave them zero).

Anything malformed raises ``BankError(path, chunk, reason)``; the result passes
``Bank.validate()``.
"""
from __future__ import annotations

import math
import os
import struct
from collections import Counter
from typing import Optional

import numpy as np

from .model import (Bank, BankError, LOOP_FORWARD, LOOP_NONE, LOOP_UNTIL_RELEASE, PoolBuilder,
                    Preset, REGION_FIELDS, new_regions, read_bank_file)
from ..units import TC_ZERO, hz_to_abs_cents, seconds_to_tc

__all__ = ["load_dls", "DLSID", "cdl_eval", "decode_transform", "SRC", "DST",
           "default_connections"]

# ---------------------------------------------------------------------------------------------
# constants

class SRC:
    NONE = 0
    LFO = 1
    VELOCITY = 2
    KEY = 3
    EG1 = 4
    EG2 = 5
    PITCHWHEEL = 6
    POLYPRESSURE = 7
    CHANNELPRESSURE = 8
    VIBRATO = 9
    MONOPRESSURE = 0xA
    CC1 = 0x81
    CC7 = 0x87
    CC10 = 0x8A
    CC11 = 0x8B
    CC91 = 0xDB
    CC93 = 0xDD
    RPN0 = 0x100
    RPN1 = 0x101
    RPN2 = 0x102


class DST:
    NONE = 0
    GAIN = 1
    PITCH = 3
    PAN = 4
    KEYNUMBER = 5
    CHORUS = 0x80
    REVERB = 0x81
    LFO_FREQ = 0x104
    LFO_DELAY = 0x105
    VIB_FREQ = 0x114
    VIB_DELAY = 0x115
    EG1_ATTACK = 0x206
    EG1_DECAY = 0x207
    EG1_RELEASE = 0x209
    EG1_SUSTAIN = 0x20A
    EG1_DELAY = 0x20B
    EG1_HOLD = 0x20C
    EG1_SHUTDOWN = 0x20D
    EG2_ATTACK = 0x30A
    EG2_DECAY = 0x30B
    EG2_RELEASE = 0x30D
    EG2_SUSTAIN = 0x30E
    EG2_DELAY = 0x30F
    EG2_HOLD = 0x310
    FILTER_CUTOFF = 0x500
    FILTER_Q = 0x501


TRN_NONE, TRN_CONCAVE, TRN_CONVEX, TRN_SWITCH = 0, 1, 2, 3

F_INSTRUMENT_DRUMS = 0x80000000
TC_RAW_ZERO = -0x80000000          # lScale 0x80000000: 0 seconds
FC_RAW_OFF = 0x7FFFFFFF            # cutoff 0x7FFFFFFF: filter off
FC_OPEN = 13500.0                  # our "open" cutoff

MAX_CHUNKS = 4_000_000             # a walk never visits more chunks than this


def _guid(d1, d2, d3, *rest) -> bytes:
    return struct.pack("<IHH8B", d1, d2, d3, *rest)


class DLSID:
    GMInHardware = _guid(0x178F2F24, 0xC364, 0x11D1, 0xA7, 0x60, 0x00, 0x00, 0xF8, 0x75, 0xAC, 0x12)
    GSInHardware = _guid(0x178F2F25, 0xC364, 0x11D1, 0xA7, 0x60, 0x00, 0x00, 0xF8, 0x75, 0xAC, 0x12)
    XGInHardware = _guid(0x178F2F26, 0xC364, 0x11D1, 0xA7, 0x60, 0x00, 0x00, 0xF8, 0x75, 0xAC, 0x12)
    SupportsDLS1 = _guid(0x178F2F27, 0xC364, 0x11D1, 0xA7, 0x60, 0x00, 0x00, 0xF8, 0x75, 0xAC, 0x12)
    SupportsDLS2 = _guid(0xF14599E5, 0x4689, 0x11D2, 0xAF, 0xA6, 0x00, 0xAA, 0x00, 0x24, 0xD8, 0xB6)
    SampleMemorySize = _guid(0x178F2F28, 0xC364, 0x11D1, 0xA7, 0x60, 0x00, 0x00, 0xF8, 0x75, 0xAC, 0x12)
    ManufacturersID = _guid(0xB03E1181, 0x8095, 0x11D2, 0xA1, 0xEF, 0x00, 0x60, 0x08, 0x33, 0xDB, 0xD8)
    ProductID = _guid(0xB03E1182, 0x8095, 0x11D2, 0xA1, 0xEF, 0x00, 0x60, 0x08, 0x33, 0xDB, 0xD8)
    SamplePlaybackRate = _guid(0x2A91F713, 0xA4BF, 0x11D2, 0xBB, 0xDF, 0x00, 0x60, 0x08, 0x33, 0xDB, 0xD8)


# the answers this synth gives to cdl queries
CDL_QUERIES = {
    DLSID.GMInHardware: 0,
    DLSID.GSInHardware: 0,
    DLSID.XGInHardware: 0,
    DLSID.SupportsDLS1: 1,
    DLSID.SupportsDLS2: 1,
    DLSID.SampleMemorySize: 0x7FFFFFFF,
    DLSID.ManufacturersID: 0,
    DLSID.ProductID: 0,
    DLSID.SamplePlaybackRate: 48000,
}

CDL_AND, CDL_OR, CDL_XOR, CDL_ADD, CDL_SUBTRACT, CDL_MULTIPLY, CDL_DIVIDE = range(1, 8)
CDL_LOGICAL_AND, CDL_LOGICAL_OR, CDL_LT, CDL_LE, CDL_GT, CDL_GE, CDL_EQ, CDL_NOT = range(8, 16)
CDL_CONST, CDL_QUERY, CDL_QUERYSUPPORTED = 0x10, 0x11, 0x12


class _CdlError(Exception):
    pass


def cdl_eval(body: bytes) -> bool:
    """Evaluate a 'cdl ' stack program. Opcodes are u16; CONST is followed by a u32, QUERY and
    QUERYSUPPORTED by a 16-byte DLSID. Binary ops pop X (top) then Y and push X op Y.
    An empty program is true. Raises _CdlError on a malformed program."""
    st = []
    i, n = 0, len(body)

    def pop():
        if not st:
            raise _CdlError("stack underflow")
        return st.pop()

    while i + 2 <= n:
        op = struct.unpack_from("<H", body, i)[0]
        i += 2
        if op == CDL_CONST:
            if i + 4 > n:
                raise _CdlError("truncated constant")
            st.append(struct.unpack_from("<I", body, i)[0])
            i += 4
        elif op in (CDL_QUERY, CDL_QUERYSUPPORTED):
            if i + 16 > n:
                raise _CdlError("truncated DLSID")
            gid = bytes(body[i:i + 16])
            i += 16
            if op == CDL_QUERY:
                st.append(CDL_QUERIES.get(gid, 0))
            else:
                st.append(1 if gid in CDL_QUERIES else 0)
        elif op == CDL_NOT:
            st.append(0 if pop() else 1)
        elif CDL_AND <= op <= CDL_EQ:
            x = pop()
            y = pop()
            if op == CDL_AND:
                r = x & y
            elif op == CDL_OR:
                r = x | y
            elif op == CDL_XOR:
                r = x ^ y
            elif op == CDL_ADD:
                r = x + y
            elif op == CDL_SUBTRACT:
                r = x - y
            elif op == CDL_MULTIPLY:
                r = x * y
            elif op == CDL_DIVIDE:
                r = x // y if y else 0
            elif op == CDL_LOGICAL_AND:
                r = int(bool(x) and bool(y))
            elif op == CDL_LOGICAL_OR:
                r = int(bool(x) or bool(y))
            elif op == CDL_LT:
                r = int(x < y)
            elif op == CDL_LE:
                r = int(x <= y)
            elif op == CDL_GT:
                r = int(x > y)
            elif op == CDL_GE:
                r = int(x >= y)
            else:
                r = int(x == y)
            st.append(r & 0xFFFFFFFF)
        else:
            raise _CdlError(f"unknown opcode {op:#x}")
        if len(st) > 4096:
            raise _CdlError("stack overflow")
    if i != n:
        raise _CdlError("trailing byte")
    return bool(st[-1]) if st else True


def decode_transform(t: int) -> dict:
    """usTransform bits -> dict(out, ctl, ctl_bipolar, ctl_invert, src, src_bipolar, src_invert)."""
    return dict(out=t & 0xF, ctl=(t >> 4) & 0xF, ctl_bipolar=bool(t & 0x100),
                ctl_invert=bool(t & 0x200), src=(t >> 10) & 0xF, src_bipolar=bool(t & 0x4000),
                src_invert=bool(t & 0x8000))


def encode_transform(out=0, ctl=0, ctl_bipolar=False, ctl_invert=False, src=0,
                     src_bipolar=False, src_invert=False) -> int:
    return ((out & 0xF) | ((ctl & 0xF) << 4) | (int(ctl_bipolar) << 8) | (int(ctl_invert) << 9)
            | ((src & 0xF) << 10) | (int(src_bipolar) << 14) | (int(src_invert) << 15))


def _fx(v: float) -> int:
    """float -> 16.16 raw int."""
    return int(round(v * 65536.0))


_LFO_DEFAULT_FREQ = float(hz_to_abs_cents(5.0))        # -851.3 absolute cents
_LFO_DEFAULT_DELAY = float(seconds_to_tc(0.010))       # -7972.6 tc
_T_BIP = encode_transform(src_bipolar=True)
_T_VEL_GAIN = encode_transform(src=TRN_CONCAVE, src_invert=True)


def default_connections() -> dict:
    """DLS2 default connections (reference 4.6, Wine's reconstruction), keyed by
    (source, control, destination) -> (usTransform, raw lScale)."""
    d = {}

    def put(s, c, dst, raw, t=0):
        d[(s, c, dst)] = (t, raw)

    for dst in (DST.LFO_FREQ, DST.VIB_FREQ):
        put(SRC.NONE, SRC.NONE, dst, _fx(_LFO_DEFAULT_FREQ))
    for dst in (DST.LFO_DELAY, DST.VIB_DELAY):
        put(SRC.NONE, SRC.NONE, dst, _fx(_LFO_DEFAULT_DELAY))
    for dst in (DST.EG1_DELAY, DST.EG1_ATTACK, DST.EG1_HOLD, DST.EG1_DECAY, DST.EG1_RELEASE,
                DST.EG2_DELAY, DST.EG2_ATTACK, DST.EG2_HOLD, DST.EG2_DECAY, DST.EG2_RELEASE):
        put(SRC.NONE, SRC.NONE, dst, TC_RAW_ZERO)
    put(SRC.NONE, SRC.NONE, DST.EG1_SUSTAIN, _fx(1000))
    put(SRC.NONE, SRC.NONE, DST.EG2_SUSTAIN, _fx(1000))
    for dst in (DST.EG1_ATTACK, DST.EG2_ATTACK):
        put(SRC.VELOCITY, SRC.NONE, dst, 0)
    for dst in (DST.EG1_DECAY, DST.EG1_HOLD, DST.EG2_DECAY, DST.EG2_HOLD):
        put(SRC.KEY, SRC.NONE, dst, 0)
    put(SRC.NONE, SRC.NONE, DST.FILTER_CUTOFF, FC_RAW_OFF)
    put(SRC.NONE, SRC.NONE, DST.FILTER_Q, 0)
    for s, c in ((SRC.LFO, SRC.NONE), (SRC.LFO, SRC.CC1), (SRC.EG2, SRC.NONE),
                 (SRC.VELOCITY, SRC.NONE), (SRC.KEY, SRC.NONE)):
        put(s, c, DST.FILTER_CUTOFF, 0)
    put(SRC.LFO, SRC.NONE, DST.GAIN, 0, _T_BIP)
    put(SRC.LFO, SRC.CC1, DST.GAIN, 0, _T_BIP)
    for s in (SRC.VELOCITY, SRC.CC7, SRC.CC11):
        put(s, SRC.NONE, DST.GAIN, _fx(-960), _T_VEL_GAIN)
    put(SRC.PITCHWHEEL, SRC.RPN0, DST.PITCH, _fx(12800), _T_BIP)
    put(SRC.KEY, SRC.NONE, DST.PITCH, _fx(12800))
    put(SRC.RPN1, SRC.NONE, DST.PITCH, _fx(100), _T_BIP)
    put(SRC.RPN2, SRC.NONE, DST.KEYNUMBER, _fx(6400), _T_BIP)
    for s, c in ((SRC.LFO, SRC.NONE), (SRC.LFO, SRC.CC1), (SRC.LFO, SRC.CHANNELPRESSURE),
                 (SRC.VIBRATO, SRC.NONE), (SRC.VIBRATO, SRC.CC1),
                 (SRC.VIBRATO, SRC.CHANNELPRESSURE), (SRC.EG2, SRC.NONE)):
        put(s, c, DST.PITCH, 0, _T_BIP if s in (SRC.LFO, SRC.VIBRATO) else 0)
    put(SRC.CC10, SRC.NONE, DST.PAN, _fx(508), _T_BIP)
    put(SRC.CC91, SRC.NONE, DST.REVERB, _fx(1000))
    put(SRC.CC93, SRC.NONE, DST.CHORUS, _fx(1000))
    put(SRC.NONE, SRC.NONE, DST.PAN, 0)
    put(SRC.NONE, SRC.NONE, DST.REVERB, 0)
    put(SRC.NONE, SRC.NONE, DST.CHORUS, 0)
    put(SRC.NONE, SRC.NONE, DST.GAIN, 0)
    put(SRC.NONE, SRC.NONE, DST.PITCH, 0)
    return d


_DEFAULTS = default_connections()

# connections handled by the engine globally (pitch wheel x RPN0, CC7, CC11, CC10, RPN1, RPN2):
# accepted when their scale equals the default, otherwise counted as unmodeled
_ENGINE_GLOBAL = {k: v[1] for k, v in _DEFAULTS.items()
                  if k[0] in (SRC.PITCHWHEEL, SRC.CC7, SRC.CC11, SRC.CC10, SRC.RPN1, SRC.RPN2)}

_TIME_FIELDS = {
    DST.EG1_DELAY: "ve_delay", DST.EG1_ATTACK: "ve_attack", DST.EG1_HOLD: "ve_hold",
    DST.EG1_DECAY: "ve_decay", DST.EG1_RELEASE: "ve_release",
    DST.EG2_DELAY: "me_delay", DST.EG2_ATTACK: "me_attack", DST.EG2_HOLD: "me_hold",
    DST.EG2_DECAY: "me_decay", DST.EG2_RELEASE: "me_release",
    DST.LFO_DELAY: "ml_delay", DST.VIB_DELAY: "vl_delay",
}
_KEY_TIME_FIELDS = {
    DST.EG1_DECAY: ("ve_key_decay", "ve_decay"), DST.EG1_HOLD: ("ve_key_hold", "ve_hold"),
    DST.EG2_DECAY: ("me_key_decay", "me_decay"), DST.EG2_HOLD: ("me_key_hold", "me_hold"),
}
_LFO_FIELDS = {   # (source, control, destination) -> (plain field, controlled field)
    (SRC.LFO, SRC.NONE, DST.PITCH): ("ml_pitch", None),
    (SRC.LFO, SRC.NONE, DST.FILTER_CUTOFF): ("ml_fc", None),
    (SRC.LFO, SRC.NONE, DST.GAIN): ("ml_vol", None),
    (SRC.VIBRATO, SRC.NONE, DST.PITCH): ("vl_pitch", None),
    (SRC.LFO, SRC.CC1, DST.PITCH): ("ml_pitch", "cc1_ml_pitch"),
    (SRC.LFO, SRC.CC1, DST.GAIN): ("ml_vol", "cc1_ml_vol"),
    (SRC.LFO, SRC.CC1, DST.FILTER_CUTOFF): ("ml_fc", "cc1_ml_fc"),
    (SRC.VIBRATO, SRC.CC1, DST.PITCH): ("vl_pitch", "cc1_vib"),
    (SRC.VIBRATO, SRC.CHANNELPRESSURE, DST.PITCH): ("vl_pitch", "press_vib"),
}
_LFO_SOURCES = (SRC.LFO, SRC.VIBRATO)
_LFO_CONTROLS = (SRC.CC1, SRC.CHANNELPRESSURE)



def _affine(invert: bool, bipolar: bool):
    """Linear transform of a unipolar source x in [0,1]: T(x) = a + b*x."""
    if bipolar:
        return (1.0, -2.0) if invert else (-1.0, 2.0)
    return (1.0, -1.0) if invert else (0.0, 1.0)


def _curve(t: dict) -> int:
    return t["src"] if t["src"] else t["out"]


def _articulate(conns: dict, eg1_sustain: str, unmodeled: set, kinds: Counter) -> dict:
    """Turn merged connections {(s, c, d): (transform, raw, origin)} into region field values.
    Blocks we cannot model whose origin is a file position are added to `unmodeled`."""
    f = {"tune": 0.0, "atten": 0.0, "pan": 0.0, "fc": FC_OPEN, "q": 0.0, "rev_send": 0.0,
         "cho_send": 0.0, "scale_tuning": 100.0, "vel_atten": 960.0, "vel_fc": 0.0,
         "cc1_vib": 0.0, "press_vib": 0.0, "cc1_ml_pitch": 0.0, "cc1_ml_vol": 0.0,
         "cc1_ml_fc": 0.0, "rev_cc": 1000.0, "cho_cc": 1000.0,
         "ml_pitch": 0.0, "ml_fc": 0.0, "ml_vol": 0.0, "vl_pitch": 0.0,
         "me_pitch": 0.0, "me_fc": 0.0,
         "ve_key_hold": 0.0, "ve_key_decay": 0.0, "ve_vel_attack": 0.0,
         "me_key_hold": 0.0, "me_key_decay": 0.0, "me_vel_attack": 0.0}
    # pass 1: static values; pass 2: modulators (they add to statics)
    items = sorted(conns.items(), key=lambda kv: (kv[0][0] != 0 or kv[0][1] != 0))
    for (s, c, d), (t, raw, origin) in items:
        ok = _apply_one(f, s, c, d, t, raw, eg1_sustain)
        if not ok and origin is not None:
            unmodeled.add(origin)
            kinds[f"src={s:#x} ctl={c:#x} dst={d:#x}"] += 1
    return f


def _apply_one(f: dict, s: int, c: int, d: int, t: int, raw: int, eg1_sustain: str) -> bool:
    v = raw / 65536.0
    if s == SRC.NONE and c == SRC.NONE:                       # static value
        if d in _TIME_FIELDS:
            f[_TIME_FIELDS[d]] = TC_ZERO if raw == TC_RAW_ZERO else v
        elif d == DST.EG1_SUSTAIN:
            if eg1_sustain == "db":
                f["ve_sustain"] = float(min(1000.0, max(0.0, 1000.0 - v)))
            else:
                pct = min(100.0, max(0.0, v / 10.0))
                f["ve_sustain"] = 1000.0 if pct <= 0 else float(min(1000.0, -200.0 * math.log10(pct / 100.0))) + 0.0
        elif d == DST.EG2_SUSTAIN:
            f["me_sustain"] = float(min(1000.0, max(0.0, 1000.0 - v)))
        elif d == DST.LFO_FREQ:
            f["ml_freq"] = v
        elif d == DST.VIB_FREQ:
            f["vl_freq"] = v
        elif d == DST.FILTER_CUTOFF:
            f["fc"] = FC_OPEN if raw == FC_RAW_OFF else v
        elif d == DST.FILTER_Q:
            f["q"] = v
        elif d == DST.PAN:
            f["pan"] = v
        elif d == DST.GAIN:
            f["atten"] -= v
        elif d == DST.PITCH:
            f["tune"] += v
        elif d == DST.REVERB:
            f["rev_send"] = v
        elif d == DST.CHORUS:
            f["cho_send"] = v
        else:
            return False
        return True

    key = (s, c, d)
    if key in _ENGINE_GLOBAL:
        return raw == _ENGINE_GLOBAL[key]
    if raw == 0:
        # a zero scale contributes nothing, but it does replace a non-zero default
        if key == (SRC.KEY, SRC.NONE, DST.PITCH):
            f["scale_tuning"] = 0.0
        elif key == (SRC.VELOCITY, SRC.NONE, DST.GAIN):
            f["vel_atten"] = 0.0
        elif key == (SRC.CC91, SRC.NONE, DST.REVERB):
            f["rev_cc"] = 0.0
        elif key == (SRC.CC93, SRC.NONE, DST.CHORUS):
            f["cho_cc"] = 0.0
        return True

    tr = decode_transform(t)
    # normalise LFO x controller blocks written the other way round
    if s in _LFO_CONTROLS and c in _LFO_SOURCES:
        s, c = c, s
        tr = dict(out=tr["out"], src=tr["ctl"], src_bipolar=tr["ctl_bipolar"],
                  src_invert=tr["ctl_invert"], ctl=tr["src"], ctl_bipolar=tr["src_bipolar"],
                  ctl_invert=tr["src_invert"])
        key = (s, c, d)

    if s in _LFO_SOURCES:
        if key not in _LFO_FIELDS or _curve(tr) != TRN_NONE:
            return False
        sign = -1.0 if tr["src_invert"] else 1.0
        plain, ctl_field = _LFO_FIELDS[key]
        if ctl_field is None:
            f[plain] += sign * v
        else:
            if tr["ctl"] != TRN_NONE:
                return False
            a, b = _affine(tr["ctl_invert"], tr["ctl_bipolar"])
            f[plain] += sign * v * a
            f[ctl_field] += sign * v * b
        return True

    if c != SRC.NONE:
        return False

    if s == SRC.VELOCITY and d == DST.GAIN:
        if _curve(tr) != TRN_CONCAVE:
            return False
        f["vel_atten"] = abs(v)
        return True

    if _curve(tr) != TRN_NONE or tr["out"] not in (TRN_NONE,):
        return False
    a, b = _affine(tr["src_invert"], tr["src_bipolar"])

    if s == SRC.EG2 and d in (DST.PITCH, DST.FILTER_CUTOFF):
        base, depth = ("tune", "me_pitch") if d == DST.PITCH else ("fc", "me_fc")
        f[base] += a * v
        f[depth] += b * v
        return True
    if s == SRC.VELOCITY and d in (DST.EG1_ATTACK, DST.EG2_ATTACK):
        base, depth = ("ve_attack", "ve_vel_attack") if d == DST.EG1_ATTACK else ("me_attack", "me_vel_attack")
        f[base] = _tc_add(f.get(base), a * v)
        f[depth] += b * v
        return True
    if s == SRC.KEY and d in _KEY_TIME_FIELDS:
        depth, base = _KEY_TIME_FIELDS[d]
        a, b = _affine(tr["src_invert"], False)               # bipolar bit ignored (see docs)
        f[base] = _tc_add(f.get(base), a * v + b * v * 60.0 / 128.0)
        f[depth] -= b * v / 128.0            # engine: time + (60 - key) * value (SF2 sign)
        return True
    if s == SRC.KEY and d == DST.PITCH:
        f["scale_tuning"] = b * v / 128.0
        f["tune"] += a * v
        return True
    if s == SRC.VELOCITY and d == DST.FILTER_CUTOFF:
        # contribution v*(a + b*x), x = vel/128 ~ vel/127: constant v*(a+b), plus -v*b at vel 0
        f["fc"] += v * (a + b)
        f["vel_fc"] += -v * b
        return True
    if s == SRC.CC91 and d == DST.REVERB:
        f["rev_send"] += a * v
        f["rev_cc"] = b * v
        return True
    if s == SRC.CC93 and d == DST.CHORUS:
        f["cho_send"] += a * v
        f["cho_cc"] = b * v
        return True
    return False


def _tc_add(tc, delta):
    """Add a timecent offset to a time that may be the 0-s sentinel."""
    if tc is None or tc <= TC_ZERO + 1:
        if delta == 0:
            return TC_ZERO if tc is None else tc
        tc = -12000.0          # treat 0 s as about 1 ms before shifting
    return tc + delta


# ---------------------------------------------------------------------------------------------
# RIFF walking

class _Chunk:
    __slots__ = ("cid", "pos", "start", "end", "ltype")

    def __init__(self, cid, pos, start, end, ltype):
        self.cid, self.pos, self.start, self.end, self.ltype = cid, pos, start, end, ltype

    @property
    def name(self):
        if self.ltype is not None:
            return f"LIST '{self.ltype}'"
        return f"'{self.cid}'"


class _Reader:
    def __init__(self, data: bytes, src: str):
        self.d = data
        self.src = src
        self.nchunks = 0
        self.warnings = []

    def err(self, chunk, reason, pos=None):
        where = f"{chunk} @{pos}" if pos is not None else chunk
        raise BankError(self.src, where, reason)

    def u32(self, off):
        return struct.unpack_from("<I", self.d, off)[0]

    def children(self, parent_start, parent_end, parent_name, use_cdl=True, skipped=None):
        """Yield the sub-chunks of a list body [start, end). Evaluates 'cdl ' chunks: when one is
        false the next chunk is skipped (its position appended to `skipped`)."""
        d = self.d
        o = parent_start
        skip_next = False
        while o + 8 <= parent_end:
            self.nchunks += 1
            if self.nchunks > MAX_CHUNKS:
                self.err(parent_name, "too many chunks")
            cid = bytes(d[o:o + 4])
            size = struct.unpack_from("<I", d, o + 4)[0]
            start = o + 8
            end = start + size
            try:
                name = cid.decode("ascii")
            except UnicodeDecodeError:
                name = repr(cid)
            if end > parent_end:
                self.err(f"{parent_name}/'{name}'", f"chunk size {size} runs past its parent "
                         f"({end - parent_end} bytes over)", o)
            ltype = None
            if cid in (b"LIST", b"RIFF"):
                if size < 4:
                    self.err(f"{parent_name}/'{name}'", f"list size {size} < 4", o)
                lt = bytes(d[start:start + 4])
                try:
                    ltype = lt.decode("ascii")
                except UnicodeDecodeError:
                    ltype = repr(lt)
            nxt = end + (size & 1)
            if skip_next:
                skip_next = False
                if skipped is not None:
                    skipped.append(o)
            elif use_cdl and cid == b"cdl ":
                try:
                    skip_next = not cdl_eval(d[start:end])
                except _CdlError as e:
                    self.err(f"{parent_name}/'cdl '", str(e), o)
            else:
                yield _Chunk(name, o, start + (4 if ltype is not None else 0), end, ltype)
            o = min(nxt, parent_end) if nxt > parent_end else nxt
        # fewer than 8 trailing bytes inside a list are tolerated (padding / junk)

    def need(self, ch: _Chunk, n: int, what: str):
        if ch.end - ch.start < n:
            self.err(what, f"chunk is {ch.end - ch.start} bytes, needs at least {n}", ch.pos)


def _info(r: _Reader, ch: _Chunk) -> dict:
    out = {}
    for sub in r.children(ch.start, ch.end, "INFO"):
        if sub.ltype is not None:
            continue
        raw = bytes(r.d[sub.start:sub.end]).split(b"\0", 1)[0]
        out[sub.cid.strip()] = raw.decode("latin-1").strip()
    return out


def _read_art(r: _Reader, lst: _Chunk, where: str, into: list):
    """Read the art1/art2 chunks of a lart/lar2 list, appending (s, c, d, t, raw, origin)."""
    for a in r.children(lst.start, lst.end, where):
        if a.cid not in ("art1", "art2"):
            continue
        r.need(a, 8, f"{where}/'{a.cid}'")
        cb, n = struct.unpack_from("<II", r.d, a.start)
        size = a.end - a.start
        if cb < 8 or cb > size:
            r.err(f"{where}/'{a.cid}'", f"cbSize {cb} invalid for a {size}-byte chunk", a.pos)
        if n > (size - cb) // 12:
            r.err(f"{where}/'{a.cid}'", f"{n} connections do not fit in {size - cb} bytes", a.pos)
        base = a.start + cb
        for i in range(n):
            s, c, d, t, sc = struct.unpack_from("<HHHHi", r.d, base + 12 * i)
            into.append((s, c, d, t, sc, base + 12 * i))


def _read_wsmp(r: _Reader, ch: _Chunk, where: str) -> dict:
    r.need(ch, 20, where)
    cb, unity, fine, att, opts, nloops = struct.unpack_from("<IHhiII", r.d, ch.start)
    size = ch.end - ch.start
    if cb < 20 or cb > size:
        r.err(where, f"cbSize {cb} invalid for a {size}-byte chunk", ch.pos)
    loops = []
    o = ch.start + cb
    if nloops > (size - cb) // 16:
        r.err(where, f"{nloops} loops do not fit in {size - cb} bytes", ch.pos)
    for _ in range(min(nloops, 1)):
        lcb, ltype, lstart, llen = struct.unpack_from("<IIII", r.d, o)
        if lcb < 16 or o + lcb > ch.end:
            r.err(where, f"loop cbSize {lcb} invalid", ch.pos)
        loops.append((ltype, lstart, llen))
        o += lcb
    if unity > 127:
        r.err(where, f"unity note {unity} > 127", ch.pos)
    return dict(unity=unity, fine=fine, atten=att, options=opts, loops=loops, pos=ch.pos)


class _Wave:
    __slots__ = ("pos", "fmt_tag", "channels", "rate", "bits", "data", "wsmp", "unsupported",
                 "pool_span", "name")

    def __init__(self):
        self.pos = 0
        self.fmt_tag = self.channels = self.rate = self.bits = 0
        self.data = None
        self.wsmp = None
        self.unsupported = None
        self.pool_span = None
        self.name = ""


_KSDATAFORMAT_SUBTYPE_PCM_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def _read_wave(r: _Reader, ch: _Chunk, idx: int) -> _Wave:
    w = _Wave()
    w.pos = ch.pos
    where = f"wvpl/wave[{idx}]"
    fmt = None
    for sub in r.children(ch.start, ch.end, where):
        if sub.cid == "fmt ":
            fmt = sub
        elif sub.cid == "data":
            w.data = (sub.start, sub.end)
        elif sub.cid == "wsmp":
            w.wsmp = _read_wsmp(r, sub, where + "/'wsmp'")
        elif sub.ltype == "INFO":
            w.name = _info(r, sub).get("INAM", "")
    if fmt is None:
        r.err(where, "no 'fmt ' chunk", ch.pos)
    if w.data is None:
        r.err(where, "no 'data' chunk", ch.pos)
    r.need(fmt, 16, where + "/'fmt '")
    tag, nch, rate, _bps, align, bits = struct.unpack_from("<HHIIHH", r.d, fmt.start)
    if tag == 0xFFFE and fmt.end - fmt.start >= 40:
        sub = bytes(r.d[fmt.start + 24:fmt.start + 40])
        if sub[2:] == _KSDATAFORMAT_SUBTYPE_PCM_TAIL[2:] and struct.unpack_from("<H", sub)[0] == 1:
            tag = 1
    w.fmt_tag, w.channels, w.rate, w.bits = tag, nch, rate, bits
    if not (1 <= rate <= 1_000_000):
        r.err(where + "/'fmt '", f"sample rate {rate} Hz is absurd", fmt.pos)
    if tag != 1:
        w.unsupported = f"wave format tag {tag:#x} is not PCM"
    elif nch != 1:
        w.unsupported = f"wave has {nch} channels (only mono is supported)"
    elif bits not in (8, 16):
        w.unsupported = f"{bits}-bit PCM is not supported (8 or 16 only)"
    return w


def _wave_samples(r: _Reader, w: _Wave) -> np.ndarray:
    a, b = w.data
    if w.bits == 8:
        raw = np.frombuffer(r.d, dtype=np.uint8, count=b - a, offset=a)
        return (raw.astype(np.float32) - 128.0) * (1.0 / 128.0)
    n = (b - a) // 2
    raw = np.frombuffer(r.d, dtype="<i2", count=n, offset=a)
    return raw.astype(np.float32) * (1.0 / 32768.0)


def _wave_frames(w: _Wave) -> int:
    a, b = w.data
    return (b - a) if w.bits == 8 else (b - a) // 2


# ---------------------------------------------------------------------------------------------

def load_dls(path_or_bytes, name: Optional[str] = None, *, strict: bool = False,
             eg1_sustain: str = "db") -> Bank:
    """Load a DLS Level 1/2 bank from a path or from bytes. Raises BankError on malformed input.

    strict: raise on unsupported (non-PCM, stereo, >16-bit) waves instead of dropping the
    regions that use them.  eg1_sustain: "db" (default, 1000 - value cB) or "amplitude"
    (-200*log10(pct/100) cB)."""
    if eg1_sustain not in ("amplitude", "db"):
        raise ValueError("eg1_sustain must be 'amplitude' or 'db'")
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        path = None
        src = name or "<bytes>"
    else:
        path = os.fspath(path_or_bytes)
        src = str(path)
        data = read_bank_file(path)
    try:
        return _load(data, src, path, name, strict, eg1_sustain)
    except BankError:
        raise
    except (struct.error, ValueError, IndexError, OverflowError, KeyError, TypeError) as e:
        # belt and braces: the parser checks sizes first, but never let another exception out
        raise BankError(src, "DLS", f"malformed data ({type(e).__name__}: {e})") from None


def _load(data: bytes, src: str, path, name, strict, eg1_sustain) -> Bank:
    r = _Reader(data, src)
    if len(data) < 12 or data[:4] != b"RIFF":
        r.err("RIFF", "not a RIFF file")
    if data[8:12] != b"DLS ":
        r.err("RIFF", f"form type {bytes(data[8:12])!r} is not 'DLS '")
    riff_size = r.u32(4)
    if riff_size < 4:
        r.err("RIFF", f"RIFF size {riff_size} < 4")
    if 8 + riff_size > len(data):
        r.err("RIFF", f"truncated: RIFF size says {riff_size + 8} bytes, file has {len(data)}")
    top_end = 8 + riff_size

    info = {"format": "DLS"}
    warnings = []
    colh = None
    ptbl = None
    lins = None
    wvpl = None
    level = 1
    for ch in r.children(12, top_end, "DLS"):
        if ch.cid == "colh":
            r.need(ch, 4, "'colh'")
            colh = r.u32(ch.start)
        elif ch.cid == "vers":
            r.need(ch, 8, "'vers'")
            ms, ls = struct.unpack_from("<II", data, ch.start)
            info["version"] = f"{ms >> 16}.{ms & 0xFFFF}.{ls >> 16}.{ls & 0xFFFF}"
        elif ch.cid == "dlid":
            r.need(ch, 16, "'dlid'")
            info["dlid"] = bytes(data[ch.start:ch.start + 16]).hex()
        elif ch.cid == "ptbl":
            r.need(ch, 8, "'ptbl'")
            cb, n = struct.unpack_from("<II", data, ch.start)
            size = ch.end - ch.start
            if cb < 8 or cb > size:
                r.err("'ptbl'", f"cbSize {cb} invalid for a {size}-byte chunk", ch.pos)
            if n > (size - cb) // 4:
                r.err("'ptbl'", f"{n} cues do not fit in {size - cb} bytes", ch.pos)
            ptbl = list(struct.unpack_from(f"<{n}I", data, ch.start + cb))
        elif ch.ltype == "lins":
            lins = ch
        elif ch.ltype == "wvpl":
            wvpl = ch
        elif ch.ltype == "INFO":
            info.update(_info(r, ch))

    # ---- wave pool
    waves_by_off = {}
    walk_order = []
    skipped = []
    if wvpl is not None:
        base = wvpl.start                       # just after the 'wvpl' type id
        for i, ch in enumerate(r.children(wvpl.start, wvpl.end, "wvpl", skipped=skipped)):
            if ch.ltype != "wave":
                continue
            w = _read_wave(r, ch, len(walk_order))
            waves_by_off[ch.pos - base] = w
            walk_order.append(w)
        skipped_offs = {p - base for p in skipped}
    else:
        skipped_offs = set()
    if ptbl is None:
        cues = [w.pos - wvpl.start for w in walk_order] if wvpl is not None else []
        info["dls_ptbl_rebuilt"] = True
    else:
        cues = ptbl

    pool = PoolBuilder()

    def wave_for(table_index: int, where: str):
        if table_index >= len(cues):
            r.err(where, f"wave link index {table_index} outside the pool table ({len(cues)} cues)")
        off = cues[table_index]
        if off == 0xFFFFFFFF or off in skipped_offs:
            return None, "null or conditionally skipped pool-table cue"
        w = waves_by_off.get(off)
        if w is None:
            r.err("'ptbl'", f"cue {table_index} = {off} does not point at a LIST 'wave' in wvpl")
        if w.unsupported:
            if strict:
                r.err(f"wvpl/wave @{w.pos}", w.unsupported)
            return None, w.unsupported
        if w.pool_span is None:
            samples = _wave_samples(r, w)
            if len(samples) == 0:
                return None, "wave holds no sample frames"
            w.pool_span = pool.add(samples)
        return w, None

    # ---- instruments
    rows = []
    presets = []
    unmodeled = set()
    kinds = Counter()
    dropped = 0
    art_cache = {}
    n_ins = 0
    if lins is not None:
        for ins in r.children(lins.start, lins.end, "lins"):
            if ins.ltype != "ins ":
                continue
            where_i = f"lins/ins[{n_ins}]"
            n_ins += 1
            insh = None
            lrgn = None
            gart = []
            ins_name = ""
            for ch in r.children(ins.start, ins.end, where_i):
                if ch.cid == "insh":
                    r.need(ch, 12, where_i + "/'insh'")
                    insh = struct.unpack_from("<III", data, ch.start)
                elif ch.ltype == "lrgn":
                    lrgn = ch
                elif ch.ltype in ("lart", "lar2"):
                    if ch.ltype == "lar2":
                        level = 2
                    _read_art(r, ch, f"{where_i}/{ch.ltype}", gart)
                elif ch.ltype == "INFO":
                    ins_name = _info(r, ch).get("INAM", "")
            if insh is None:
                r.err(where_i, "instrument has no 'insh' chunk", ins.pos)
            _c_regions, ul_bank, ul_instr = insh
            cc0 = (ul_bank >> 8) & 0x7F
            cc32 = ul_bank & 0x7F
            drum = bool(ul_bank & F_INSTRUMENT_DRUMS)
            program = ul_instr & 0x7F
            g_conns = dict((k, (v[0], v[1], None)) for k, v in _DEFAULTS.items())
            for s, c, d, t, sc, origin in gart:
                g_conns[(s, c, d)] = (t, sc, origin)
            region_idx = []
            if lrgn is not None:
                nr = 0
                for rg in r.children(lrgn.start, lrgn.end, where_i + "/lrgn"):
                    if rg.ltype not in ("rgn ", "rgn2"):
                        continue
                    where_r = f"{where_i}/rgn[{nr}]"
                    nr += 1
                    if rg.ltype == "rgn2":
                        level = 2
                    rgnh = wsmp = wlnk = None
                    rart = []
                    for ch in r.children(rg.start, rg.end, where_r):
                        if ch.cid == "rgnh":
                            r.need(ch, 12, where_r + "/'rgnh'")
                            rgnh = struct.unpack_from("<HHHHHH", data, ch.start)
                        elif ch.cid == "wsmp":
                            wsmp = _read_wsmp(r, ch, where_r + "/'wsmp'")
                        elif ch.cid == "wlnk":
                            r.need(ch, 12, where_r + "/'wlnk'")
                            wlnk = struct.unpack_from("<HHII", data, ch.start)
                        elif ch.ltype in ("lart", "lar2"):
                            if ch.ltype == "lar2":
                                level = 2
                            _read_art(r, ch, f"{where_r}/{ch.ltype}", rart)
                    if rgnh is None or wlnk is None:
                        dropped += 1
                        warnings.append(f"{where_r}: region without rgnh or wlnk dropped")
                        continue
                    klo, khi, vlo, vhi, _opts, keygroup = rgnh
                    khi = min(khi, 127)
                    vhi = min(vhi, 127)
                    if rg.ltype == "rgn " and vlo == 0 and vhi == 0:
                        vhi = 127
                    if klo > khi or vlo > vhi:
                        r.err(where_r + "/'rgnh'", f"empty range keys {klo}-{khi} velocities {vlo}-{vhi}",
                              rg.pos)
                    w, why = wave_for(wlnk[3], where_r + "/'wlnk'")
                    if w is None:
                        dropped += 1
                        warnings.append(f"{where_r}: region dropped: {why}")
                        continue
                    ws = wsmp if wsmp is not None else w.wsmp
                    # articulation: defaults < instrument < region
                    ck = (n_ins, tuple(rart))          # n_ins: this instrument (ids could be reused)
                    fields = art_cache.get(ck)
                    if fields is None:
                        conns = dict(g_conns)
                        for s, c, d, t, sc, origin in rart:
                            conns[(s, c, d)] = (t, sc, origin)
                        fields = _articulate(conns, eg1_sustain, unmodeled, kinds)
                        art_cache[ck] = fields
                    row = dict(fields)
                    start, end = w.pool_span
                    nfr = end - start
                    row.update(key_lo=klo, key_hi=khi, vel_lo=vlo, vel_hi=vhi,
                               excl_class=min(keygroup, 32767), start=start, end=end,
                               sample_rate=float(w.rate))
                    loop_mode = LOOP_NONE
                    ls = le = start
                    if ws is not None:
                        row["root_key"] = ws["unity"]
                        row["tune"] = row["tune"] + ws["fine"]
                        row["atten"] = row["atten"] - ws["atten"] / 65536.0
                        if ws["loops"]:
                            ltype, lstart, llen = ws["loops"][0]
                            if llen < 1 or lstart + llen > nfr:
                                r.err(where_r + "/'wsmp'",
                                      f"loop {lstart}+{llen} outside the wave's {nfr} frames",
                                      ws["pos"])
                            loop_mode = LOOP_UNTIL_RELEASE if ltype == 1 else LOOP_FORWARD
                            ls, le = start + lstart, start + lstart + llen
                    row.update(loop_mode=loop_mode, loop_start=ls, loop_end=le)
                    region_idx.append(len(rows))
                    rows.append(row)
            presets.append(Preset(bank=cc0 * 128 + cc32, program=program,
                                  name=ins_name or f"Instrument {n_ins - 1}",
                                  regions=np.asarray(region_idx, dtype=np.int32), drum=drum))
    if colh is not None and colh != n_ins:
        warnings.append(f"colh says {colh} instruments, found {n_ins}")

    regions = new_regions(len(rows))
    if rows:
        for fname, _t, _u, dflt in REGION_FIELDS:
            regions[fname] = [row.get(fname, dflt) for row in rows]

    info["dls_level"] = level
    info["dls_instruments"] = n_ins
    info["dls_waves"] = len(walk_order)
    info["dls_unmodeled_connections"] = len(unmodeled)
    info["dls_unmodeled_kinds"] = dict(kinds)
    info["dls_dropped_regions"] = dropped
    info["warnings"] = warnings
    bank_name = name or info.get("INAM") or (os.path.splitext(os.path.basename(path))[0] if path else "DLS")
    bank = Bank(name=bank_name, pool=pool.build(), regions=regions, presets=presets,
                path=path, info=info)
    return bank.validate()
