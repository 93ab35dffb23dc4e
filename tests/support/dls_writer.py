"""A small DLS writer for tests: builds DLS Level 1/2 files from Python descriptions.

Covers colh, vers, dlid, lins/ins/insh, lrgn with 'rgn ' and 'rgn2', rgnh with and without
usLayer, wsmp on waves and regions, wlnk, lart/art1 and lar2/art2 (any connection list, any
usTransform), ptbl, wvpl/wave with 8- and 16-bit PCM (or any fmt for error tests), INFO and cdl.

Example::

    w = Wave(np.sin(...) * 20000, bits=16, rate=22050, wsmp=Wsmp(unity=60, loops=[(0, 10, 100)]))
    ins = Instrument(program=0, regions=[Region(wave=0)], art=[conn(DST.EG1_ATTACK, tc=-1200)])
    data = build_dls([ins], [w])
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from gpusynth.banks.dls import (CDL_CONST, CDL_QUERY, CDL_QUERYSUPPORTED, DLSID, DST, SRC,
                                encode_transform)

__all__ = ["chunk", "list_chunk", "Conn", "conn", "Wsmp", "Wave", "Region", "Instrument",
           "build_dls", "cdl", "cdl_const", "cdl_query", "fixed", "DST", "SRC", "DLSID",
           "encode_transform"]


def chunk(cid: bytes, body: bytes) -> bytes:
    """One RIFF chunk, padded to even length."""
    assert len(cid) == 4
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def list_chunk(ltype: bytes, children: Sequence[bytes], cid: bytes = b"LIST") -> bytes:
    return chunk(cid, ltype + b"".join(children))


def fixed(v: float) -> int:
    """float -> 16.16 raw integer (wrapped into int32)."""
    raw = int(round(v * 65536.0))
    return ((raw + 2**31) % 2**32) - 2**31


@dataclass
class Conn:
    src: int = SRC.NONE
    ctl: int = SRC.NONE
    dst: int = DST.NONE
    transform: int = 0
    scale: int = 0          # raw 16.16 lScale (int32)

    def pack(self) -> bytes:
        return struct.pack("<HHHHi", self.src, self.ctl, self.dst, self.transform, self.scale)


def conn(dst: int, value: Optional[float] = None, src: int = SRC.NONE, ctl: int = SRC.NONE,
         transform: int = 0, raw: Optional[int] = None) -> Conn:
    """A connection block; `value` in the destination's units (converted to 16.16) or `raw`."""
    scale = raw if raw is not None else fixed(value)
    scale = ((scale + 2**31) % 2**32) - 2**31
    return Conn(src, ctl, dst, transform, scale)


@dataclass
class Wsmp:
    unity: int = 60
    fine: int = 0               # cents
    atten: int = 0              # raw lAttenuation (1/655360 dB, negative = quieter)
    options: int = 0
    loops: list = field(default_factory=list)   # (type, start, length)
    cb: int = 20                # cbSize (extra bytes are zero-filled)
    nloops: Optional[int] = None   # override cSampleLoops (for absurd-count tests)

    def build(self) -> bytes:
        n = len(self.loops) if self.nloops is None else self.nloops
        head = struct.pack("<IHhiII", self.cb, self.unity, self.fine, self.atten, self.options, n)
        head += b"\0" * (self.cb - 20)
        body = head + b"".join(struct.pack("<IIII", 16, t, s, l) for t, s, l in self.loops)
        return chunk(b"wsmp", body)


@dataclass
class Wave:
    data: object = None         # int array of PCM values (uint8 for 8-bit, int16 for 16-bit)
    bits: int = 16
    rate: int = 44100
    channels: int = 1
    format_tag: int = 1
    wsmp: Optional[Wsmp] = None
    name: str = ""
    dlid: bool = False
    raw_data: Optional[bytes] = None   # use these bytes as the data chunk

    def build(self) -> bytes:
        if self.raw_data is not None:
            pcm = self.raw_data
        elif self.bits == 8:
            pcm = np.asarray(self.data, dtype=np.uint8).tobytes()
        else:
            pcm = np.asarray(self.data, dtype="<i2").tobytes()
        align = self.channels * max(1, self.bits // 8)
        fmt = struct.pack("<HHIIHH", self.format_tag, self.channels, self.rate,
                          self.rate * align, align, self.bits)
        kids = []
        if self.dlid:
            kids.append(chunk(b"dlid", bytes(range(16))))
        kids.append(chunk(b"fmt ", fmt))
        if self.wsmp is not None:
            kids.append(self.wsmp.build())
        kids.append(chunk(b"data", pcm))
        if self.name:
            kids.append(list_chunk(b"INFO", [chunk(b"INAM", self.name.encode() + b"\0")]))
        return list_chunk(b"wave", kids)


@dataclass
class Region:
    wave: int = 0                       # ulTableIndex
    keys: tuple = (0, 127)
    vels: tuple = (0, 127)
    options: int = 0
    key_group: int = 0
    layer: Optional[int] = None         # usLayer: rgnh becomes 14 bytes
    wsmp: Optional[Wsmp] = None
    art: Optional[list] = None          # list of Conn
    art_list: bytes = b"lar2"           # 'lart' or 'lar2'
    art_chunk: bytes = b"art2"          # 'art1' or 'art2'
    kind: bytes = b"rgn2"               # 'rgn ' or 'rgn2'
    wlnk: bool = True
    rgnh: bool = True
    channel: int = 1
    wlnk_options: int = 0
    phase_group: int = 0
    extra: list = field(default_factory=list)   # raw chunks placed after wsmp, before wlnk

    def build(self) -> bytes:
        kids = []
        if self.rgnh:
            h = struct.pack("<HHHHHH", self.keys[0], self.keys[1], self.vels[0], self.vels[1],
                            self.options, self.key_group)
            if self.layer is not None:
                h += struct.pack("<H", self.layer)
            kids.append(chunk(b"rgnh", h))
        if self.wsmp is not None:
            kids.append(self.wsmp.build())
        kids.extend(self.extra)
        if self.wlnk:
            kids.append(chunk(b"wlnk", struct.pack("<HHII", self.wlnk_options, self.phase_group,
                                                   self.channel, self.wave)))
        if self.art is not None:
            kids.append(build_art(self.art, self.art_list, self.art_chunk))
        return list_chunk(self.kind, kids)


def build_art(conns, list_type=b"lar2", chunk_type=b"art2", cb=8, count=None) -> bytes:
    n = len(conns) if count is None else count
    body = struct.pack("<II", cb, n) + b"\0" * (cb - 8) + b"".join(c.pack() for c in conns)
    return list_chunk(list_type, [chunk(chunk_type, body)])


@dataclass
class Instrument:
    program: int = 0
    bank_msb: int = 0
    bank_lsb: int = 0
    drum: bool = False
    name: str = ""
    regions: list = field(default_factory=list)
    art: Optional[list] = None
    art_list: bytes = b"lar2"
    art_chunk: bytes = b"art2"
    dlid: bool = False
    extra: list = field(default_factory=list)    # raw chunks appended to the ins list
    region_count: Optional[int] = None           # override insh.cRegions

    def build(self) -> bytes:
        ul_bank = (self.bank_lsb & 0x7F) | ((self.bank_msb & 0x7F) << 8) | (0x80000000 if self.drum else 0)
        n = len(self.regions) if self.region_count is None else self.region_count
        kids = []
        if self.dlid:
            kids.append(chunk(b"dlid", bytes(range(16, 32))))
        kids.append(chunk(b"insh", struct.pack("<III", n, ul_bank, self.program)))
        kids.append(list_chunk(b"lrgn", [r.build() for r in self.regions]))
        if self.art is not None:
            kids.append(build_art(self.art, self.art_list, self.art_chunk))
        if self.name:
            kids.append(list_chunk(b"INFO", [chunk(b"INAM", self.name.encode() + b"\0")]))
        kids.extend(self.extra)
        return list_chunk(b"ins ", kids)


def cdl(*ops) -> bytes:
    """A 'cdl ' chunk from ops: ints (bare opcodes), ("CONST", v), ("QUERY", dlsid),
    ("QUERYSUPPORTED", dlsid)."""
    body = b""
    for op in ops:
        if isinstance(op, int):
            body += struct.pack("<H", op)
        elif op[0] == "CONST":
            body += struct.pack("<HI", CDL_CONST, op[1] & 0xFFFFFFFF)
        elif op[0] == "QUERY":
            body += struct.pack("<H", CDL_QUERY) + op[1]
        elif op[0] == "QUERYSUPPORTED":
            body += struct.pack("<H", CDL_QUERYSUPPORTED) + op[1]
        else:
            raise ValueError(op)
    return chunk(b"cdl ", body)


def cdl_const(v: int) -> bytes:
    return cdl(("CONST", v))


def cdl_query(dlsid: bytes) -> bytes:
    return cdl(("QUERY", dlsid))


def build_dls(instruments: Sequence[Instrument], waves: Sequence[Wave], *, info: Optional[dict] = None,
              ptbl: bool = True, ptbl_offsets: Optional[list] = None, ptbl_after: bool = False,
              version: Optional[tuple] = (1, 2, 3, 4), dlid: bool = True,
              colh: Optional[int] = None, top_extra: Sequence[bytes] = (),
              wvpl_extra: Sequence[bytes] = ()) -> bytes:
    """Build a DLS file. ptbl_offsets overrides the computed cues; ptbl_after puts ptbl after
    wvpl (as Leadsol.dls does); wvpl_extra chunks go at the start of wvpl (shifting cues)."""
    kids = [chunk(b"colh", struct.pack("<I", len(instruments) if colh is None else colh))]
    if version is not None:
        a, b, c, d = version
        kids.append(chunk(b"vers", struct.pack("<II", (a << 16) | b, (c << 16) | d)))
    if dlid:
        kids.append(chunk(b"dlid", bytes(range(32, 48))))
    kids.extend(top_extra)
    kids.append(list_chunk(b"lins", [i.build() for i in instruments]))
    wave_blobs = [w.build() for w in waves]
    offs = []
    o = sum(len(x) for x in wvpl_extra)
    for wb in wave_blobs:
        offs.append(o)
        o += len(wb)
    if ptbl_offsets is not None:
        offs = list(ptbl_offsets)
    ptbl_chunk = chunk(b"ptbl", struct.pack("<II", 8, len(offs)) + struct.pack(f"<{len(offs)}I", *offs))
    wvpl = list_chunk(b"wvpl", list(wvpl_extra) + wave_blobs)
    if ptbl and not ptbl_after:
        kids.append(ptbl_chunk)
    kids.append(wvpl)
    if ptbl and ptbl_after:
        kids.append(ptbl_chunk)
    if info:
        kids.append(list_chunk(b"INFO", [chunk(k.encode().ljust(4)[:4], v.encode() + b"\0")
                                         for k, v in info.items()]))
    return list_chunk(b"DLS ", kids, cid=b"RIFF")
