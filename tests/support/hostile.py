"""Hand-made hostile input files (issue 13), built in code so that every one is reproducible.

Each builder returns the file's bytes. The small ones are also kept as regression files in
``tests/data/hostile/`` (``python tests/support/hostile.py`` rewrites them; ``test_fuzz`` checks that
the kept files still equal what the builders make and that each gives a documented outcome).

SF2: one preset whose zones all point at one instrument whose zones all cover the full key and
velocity range, so the preset flattens into (preset zones x instrument zones) overlapping
full-range regions from a few bytes per zone.
MIDI: a 37-byte file whose end-of-track follows a delta of 0x0FFFFFFF ticks (16 days at 120 bpm,
ppq 96); 45,000 maximal deltas at tempo 0xFFFFFF (event times beyond 2**63 samples); 65,535
tracks.
"""
from __future__ import annotations

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
from sf2_writer import Inst, Pre, Sample, Zone, build_sf2, sine_pcm  # noqa: E402

SAMPLE_ID, INSTRUMENT = 53, 41
HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "hostile")


def sf2_overlapping(preset_zones: int, inst_zones: int) -> bytes:
    """One preset of ``preset_zones`` zones, each -> one instrument of ``inst_zones``
    full-range zones on one sample: preset_zones * inst_zones overlapping regions."""
    inst = Inst("I", [Zone(gens=[(SAMPLE_ID, 0)]) for _ in range(inst_zones)])
    pre = Pre("hostile", program=0, bank=0,
              zones=[Zone(gens=[(INSTRUMENT, 0)]) for _ in range(preset_zones)])
    return build_sf2([Sample("s", sine_pcm(64, 16), loop=(8, 40))], [inst], [pre])


def _vlq(v: int) -> bytes:
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))


def _smf(tracks, ppq=96, fmt=None) -> bytes:
    fmt = (0 if len(tracks) == 1 else 1) if fmt is None else fmt
    out = bytearray(b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks), ppq))
    for body in tracks:
        out += b"MTrk" + struct.pack(">I", len(body)) + body
    return bytes(out)


def midi_long_delta() -> bytes:
    """37 bytes: one note, then end-of-track after a delta of 0x0FFFFFFF ticks."""
    body = b"\x00\x90\x3c\x40" + b"\x00\x80\x3c\x00" + _vlq(0x0FFFFFFF) + b"\xff\x2f\x00"
    data = _smf([body])
    assert len(data) == 37, len(data)
    return data


def midi_overflow_deltas(n: int = 45_000) -> bytes:
    """Tempo 0xFFFFFF, then ``n`` notes each after a maximal delta: times far beyond what an
    int64 sample count holds."""
    body = bytearray(b"\x00\xff\x51\x03\xff\xff\xff")
    for _ in range(n):
        body += _vlq(0x0FFFFFFF) + b"\x90\x3c\x40" + b"\x00\x80\x3c\x00"
    body += b"\x00\xff\x2f\x00"
    return _smf([bytes(body)], ppq=1)


def midi_many_tracks(n: int = 65_535) -> bytes:
    """``n`` tracks, each one note."""
    body = b"\x00\x90\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00"
    return _smf([body] * n)


SMALL = {
    "sf2_1m_regions.sf2": lambda: sf2_overlapping(1000, 1000),
    "sf2_90k_regions.sf2": lambda: sf2_overlapping(300, 300),
    "sf2_2500_regions.sf2": lambda: sf2_overlapping(50, 50),
    "midi_long_delta.mid": midi_long_delta,
}


def write_all(folder: str = HERE):
    os.makedirs(folder, exist_ok=True)
    for name, make in SMALL.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(make())


if __name__ == "__main__":
    write_all()
    for name in SMALL:
        print(name, os.path.getsize(os.path.join(HERE, name)))
