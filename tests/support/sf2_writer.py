"""A tiny SoundFont 2 writer for tests: builds small (also deliberately odd) SF2/SF3 files.

    data = build_sf2(
        samples=[Sample("sine", pcm_int16, loop=(8, 100), rate=44100, pitch=60)],
        instruments=[Inst("I", [Zone(gens=[(KEY_RANGE, (0, 63)), (SAMPLE_ID, 0)])])],
        presets=[Pre("P", program=0, bank=0, zones=[Zone(gens=[(INSTRUMENT, 0)])])])

Generators are written in the order given (so tests can put them in the wrong order); a value
given as (lo, hi) is a range amount. Modulators are (src, dest, amount, amtsrc, trans).
PCM sample points are laid out with 46 zero samples after each sample; loop points are given
relative to the sample start. A Sample with ``ogg`` bytes is written as an SF3 compressed sample
(start/end are byte offsets into smpl, loop points relative).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Sample:
    name: str
    data: Optional[np.ndarray] = None       # int16 PCM
    loop: tuple = (0, 0)                     # relative to the sample start
    rate: int = 44100
    pitch: int = 60
    corr: int = 0
    type: int = 1
    link: int = 0
    ogg: Optional[bytes] = None              # SF3 compressed sample
    raw: Optional[tuple] = None              # (start, end, loop_start, loop_end) overriding all


@dataclass
class Zone:
    gens: list = field(default_factory=list)
    mods: list = field(default_factory=list)


@dataclass
class Inst:
    name: str
    zones: list = field(default_factory=list)


@dataclass
class Pre:
    name: str
    program: int = 0
    bank: int = 0
    zones: list = field(default_factory=list)


def _chunk(cid: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) & 1 else b""
    return cid + struct.pack("<I", len(payload)) + payload + pad


def _list(kind: bytes, chunks) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(s: str) -> bytes:
    return s.encode("latin-1")[:20].ljust(20, b"\0")


def _gen(oper, amount) -> bytes:
    if isinstance(amount, tuple):
        return struct.pack("<HBB", oper, amount[0] & 0xFF, amount[1] & 0xFF)
    if amount < 0:
        return struct.pack("<Hh", oper, amount)
    return struct.pack("<HH", oper, amount & 0xFFFF)


def _hydra_level(items, bag_attr, term_pack):
    heads, bags, mods, gens = [], [], [], []
    for it in items:
        heads.append((it, len(bags)))
        for z in it.zones:
            bags.append(struct.pack("<HH", len(gens), len(mods)))
            gens.extend(_gen(o, a) for o, a in z.gens)
            mods.extend(struct.pack("<HHhHH", *m) for m in z.mods)
    bags.append(struct.pack("<HH", len(gens), len(mods)))
    gens.append(b"\0" * 4)
    mods.append(b"\0" * 10)
    return heads, b"".join(bags), b"".join(mods), b"".join(gens), len(bags) - 1


def build_sf2(samples, instruments, presets, *, version=(2, 4), name="test bank",
              sm24: Optional[bytes] = None, info_extra=None) -> bytes:
    # samples
    smpl = bytearray()
    shdr = bytearray()
    for s in samples:
        if s.ogg is not None:
            a = len(smpl)
            smpl += s.ogg
            if len(smpl) & 1:
                smpl += b"\0"
            b = a + len(s.ogg)
            pts = (a, b, s.loop[0], s.loop[1])
        else:
            d = np.asarray(s.data if s.data is not None else np.zeros(0), dtype="<i2")
            a = len(smpl) // 2
            smpl += d.tobytes() + b"\0" * 92
            b = a + len(d)
            pts = (a, b, a + s.loop[0], a + s.loop[1])
        if s.raw is not None:
            pts = s.raw
        shdr += _name(s.name) + struct.pack("<IIIIIBbHH", *pts, s.rate, s.pitch, s.corr,
                                            s.link, s.type)
    shdr += _name("EOS") + b"\0" * 26

    pheads, pbag, pmod, pgen, npb = _hydra_level(presets, "bag", None)
    iheads, ibag, imod, igen, nib = _hydra_level(instruments, "bag", None)
    phdr = b"".join(_name(p.name) + struct.pack("<HHHIII", p.program, p.bank, bi, 0, 0, 0)
                    for p, bi in pheads) + _name("EOP") + struct.pack("<HHHIII", 0, 0, npb, 0, 0, 0)
    inst = b"".join(_name(i.name) + struct.pack("<H", bi) for i, bi in iheads) \
        + _name("EOI") + struct.pack("<H", nib)

    info = [_chunk(b"ifil", struct.pack("<HH", *version)),
            _chunk(b"isng", b"EMU8000\0"),
            _chunk(b"INAM", name.encode("latin-1") + b"\0")]
    for k, v in (info_extra or {}).items():
        info.append(_chunk(k, v))
    sdta = [_chunk(b"smpl", bytes(smpl))]
    if sm24 is not None:
        sdta.append(_chunk(b"sm24", sm24))
    pdta = [_chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", pmod),
            _chunk(b"pgen", pgen), _chunk(b"inst", inst), _chunk(b"ibag", ibag),
            _chunk(b"imod", imod), _chunk(b"igen", igen), _chunk(b"shdr", bytes(shdr))]
    body = b"sfbk" + _list(b"INFO", info) + _list(b"sdta", sdta) + _list(b"pdta", pdta)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def sine_pcm(n=1000, period=100, amp=16000) -> np.ndarray:
    t = np.arange(n)
    return (amp * np.sin(2 * np.pi * t / period)).astype(np.int16)
