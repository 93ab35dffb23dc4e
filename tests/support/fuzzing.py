"""Seed files and mutations for the file-reader fuzzing (tests/system/test_fuzz.py) and the
control engine's fuzzed-file comparison (tests/unit/test_control_engine.py)."""
from __future__ import annotations

import os
import struct

import numpy as np

from dls_writer import Instrument, Region, Wave, Wsmp, build_dls
from sf2_writer import Inst, Pre, Sample, Zone, build_sf2, sine_pcm
from gpusynth.smf import write_smf

TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                        "testdata")


# ------------------------------------------------------------------ seed files
def seed_sf2() -> bytes:
    KEY, VEL, SID, INST, ATT, PAN, EXCL = 43, 44, 53, 41, 48, 17, 57
    inst = Inst("I", [Zone(gens=[(KEY, (0, 59)), (VEL, (0, 90)), (SID, 0)]),
                      Zone(gens=[(KEY, (60, 127)), (ATT, 60), (PAN, -200), (SID, 1)]),
                      Zone(gens=[(KEY, (30, 80)), (EXCL, 3), (SID, 0)],
                           mods=[(0x0502, 48, 960, 0, 0)])])
    pre = [Pre("P", 0, 0, [Zone(gens=[(KEY, (0, 127)), (INST, 0)])]),
           Pre("D", 0, 128, [Zone(gens=[(INST, 0)])])]
    samples = [Sample("a", sine_pcm(400, 40), loop=(8, 360)),
               Sample("b", sine_pcm(300, 30), loop=(0, 0), pitch=72)]
    return build_sf2(samples, [inst], pre)


def seed_dls() -> bytes:
    waves = [Wave(np.sin(np.arange(400) * 0.2) * 20000, bits=16, rate=22050,
                  wsmp=Wsmp(unity=60, loops=[(0, 10, 300)])),
             Wave(np.sin(np.arange(200) * 0.3) * 100 + 128, bits=8, rate=11025)]
    ins = [Instrument(program=0, regions=[Region(wave=0), Region(wave=1)]),
           Instrument(program=1, regions=[Region(wave=1)])]
    return build_dls(ins, waves)


def seed_midi() -> bytes:
    tr0 = [(0, b"\xFF\x51\x03\x07\xA1\x20"), (0, bytes([0xC0, 5])), (0, bytes([0xB0, 7, 100])),
           (0, b"\xF0\x7E\x7F\x09\x01\xF7")]
    tr1 = []
    for i in range(12):
        tr1 += [(i * 60, bytes([0x90 | (i % 3), 60 + i, 90])),
                (i * 60 + 50, bytes([0x80 | (i % 3), 60 + i, 0])),
                (i * 60 + 10, bytes([0xE0, i, 64]))]
    return write_smf(None, [tr0, tr1], ppq=96, running_status=True)


def seeds(kind: str) -> list:
    if kind == "sf2":
        return [seed_sf2()]
    if kind == "dls":
        out = [seed_dls()] * 4          # the small seed 4 times as often as the real file
        p = os.path.join(TESTDATA, "dls", "Leadsol.dls")
        if os.path.exists(p):
            with open(p, "rb") as f:   # a real Mobile DLS (563 KB, ~0.3 s a load)
                out.append(f.read())
        return out
    out = [seed_midi()]
    d = os.path.join(TESTDATA, "midi", "jazz-soft")
    if os.path.isdir(d):
        for name in sorted(os.listdir(d))[:12]:
            with open(os.path.join(d, name), "rb") as f:
                b = f.read()
            if len(b) < 20000:
                out.append(b)
    return out


# ------------------------------------------------------------------ mutations
_MAGIC32 = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One to four random edits: bit flips, random bytes, extreme 16/32-bit values (lengths,
    counts, offsets), chunk-size edits, cuts, duplicated or deleted runs, truncation."""
    b = bytearray(data)
    ops = []
    for _ in range(int(rng.integers(1, 5))):
        n = len(b)
        if n < 8:
            b += bytes(rng.integers(0, 256, 8, dtype=np.uint8))
            n = len(b)
        k = int(rng.integers(0, 8))
        i = int(rng.integers(0, n))
        if k == 0:
            b[i] ^= 1 << int(rng.integers(0, 8))
            ops.append(f"flip@{i}")
        elif k == 1:
            m = int(rng.integers(1, 9))
            b[i:i + m] = bytes(rng.integers(0, 256, m, dtype=np.uint8))
            ops.append(f"rand{m}@{i}")
        elif k == 2:
            v = _MAGIC32[int(rng.integers(0, len(_MAGIC32)))]
            fmt = "<I" if rng.integers(0, 2) else ">I"
            i = min(i, n - 4)
            b[i:i + 4] = struct.pack(fmt, v)
            ops.append(f"u32{fmt[0]}{v:#x}@{i}")
        elif k == 3:                                    # a chunk size (RIFF / MThd / MTrk)
            tags = [j for j in range(0, n - 8) if bytes(b[j:j + 4]).isalnum()
                    or bytes(b[j:j + 4]) in (b"rgn ", b"ins ", b"DLS ")]
            if tags:
                j = tags[int(rng.integers(0, len(tags)))] + 4
                v = _MAGIC32[int(rng.integers(0, len(_MAGIC32)))]
                v = v if rng.integers(0, 2) else max(0, struct.unpack_from("<I", b, j)[0]
                                                   + int(rng.integers(-9, 10)))
                b[j:j + 4] = struct.pack("<I" if data[:4] == b"RIFF" else ">I", v & 0xFFFFFFFF)
                ops.append(f"size{v:#x}@{j}")
        elif k == 4:
            m = int(rng.integers(1, 64))
            del b[i:i + m]
            ops.append(f"del{m}@{i}")
        elif k == 5:
            m = int(rng.integers(1, 64))
            b[i:i] = b[i:i + m]
            ops.append(f"dup{m}@{i}")
        elif k == 6:
            cut = int(rng.integers(0, n))
            del b[cut:]
            ops.append(f"trunc@{cut}")
        else:
            v = _MAGIC32[int(rng.integers(0, len(_MAGIC32)))] & 0xFFFF
            i = min(i, n - 2)
            b[i:i + 2] = struct.pack("<H", v)
            ops.append(f"u16{v:#x}@{i}")
    return bytes(b), ",".join(ops)
