"""Fuzzing the file readers (SF2, DLS, MIDI) with a fixed seed, and the hostile regression files.

Each mutant of a small valid seed file is loaded and its outcome classified:

* ``loaded``: the reader returned, and the result keeps its invariants (a bank validates and its
  every preset resolves notes; a song's events come out of the streaming cursor in time order,
  at non-negative sample times, with no more events than the scan counted);
* ``error``: the documented error of the format (``BankError`` for banks, ``MidiFileError`` for
  MIDI files), whose message names the file;
* anything else (another exception, a broken invariant) is a failure: the test reports every
  failing mutant with its seed and mutation so that it can be replayed.

CI runs ``FUZZ_N`` (1,000) mutants per format; ``GPUSYNTH_FUZZ_N=10000 pytest tests/test_fuzz.py``
or ``python tests/test_fuzz.py --n 10000`` is the long mode (prints the outcome counts).
"""
from __future__ import annotations

import os
import struct
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":      # run as a script: the repository's package first
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import hostile  # noqa: E402
from dls_writer import Instrument, Region, Wave, Wsmp, build_dls  # noqa: E402
from sf2_writer import Inst, Pre, Sample, Zone, build_sf2, sine_pcm  # noqa: E402

from gpusynth.banks import BankError, load_bank  # noqa: E402
from gpusynth.presets import PresetMap  # noqa: E402
from gpusynth.smf import MidiFileError, load_smf, write_smf  # noqa: E402

FUZZ_N = int(os.environ.get("GPUSYNTH_FUZZ_N", "1000"))
SEED = 20131
TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
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


# ------------------------------------------------------------------ one mutant
def check_bank(path: str) -> str:
    try:
        bank = load_bank(path)
    except BankError as e:
        assert path in str(e), f"BankError does not name the file: {e}"
        return "error"
    bank.validate()
    pm = PresetMap().build([(1, bank, 0)])
    keys = np.arange(0, 128, 7)
    for p in range(pm.n_presets):
        note, reg = pm.regions_for(np.full(len(keys), p), keys, np.full(len(keys), 100))
        assert np.all((reg >= 0) & (reg < len(pm.regions)))
        assert np.all(np.diff(note) >= 0)
    return "loaded"


def check_midi(path: str) -> str:
    try:
        song = load_smf(path)
    except MidiFileError as e:
        assert path in str(e), f"MidiFileError does not name the file: {e}"
        return "error"
    cur = song.cursor(48000)
    total, last, reads = 0, 0, 0
    while not cur.done:
        ev, sx = cur.read(1 << 62, 4096)
        reads += 1
        assert reads < 10_000, "cursor does not advance"
        if len(ev):
            t = ev["time"]
            assert t[0] >= last and np.all(np.diff(t) >= 0) and np.all(t >= 0)
            last = int(t[-1])
            total += len(ev)
            assert np.all(ev["sysex"][ev["status"] == 0xF0] < len(sx))
    assert total == song.n_events, (total, song.n_events)
    assert np.isfinite(song.duration_s) and song.duration_s >= 0
    return "loaded"


KINDS = {"sf2": (".sf2", check_bank), "dls": (".dls", check_bank), "midi": (".mid", check_midi)}


def run_fuzz(kind: str, n: int, seed: int, folder: str):
    """Run n mutants of the kind's seeds; returns (counts, failures, seconds)."""
    ext, check = KINDS[kind]
    rng = np.random.default_rng([seed, list(KINDS).index(kind)])
    base = seeds(kind)
    counts = {"loaded": 0, "error": 0, "failure": 0}
    failures = []
    path = os.path.join(folder, "mutant" + ext)
    t0 = time.perf_counter()
    for i in range(n):
        s = int(rng.integers(0, len(base)))
        data, ops = mutate(base[s], rng)
        with open(path, "wb") as f:
            f.write(data)
        try:
            counts[check(path)] += 1
        except Exception as e:          # anything undocumented is a failure
            counts["failure"] += 1
            failures.append(f"{kind} mutant {i} (seed file {s}, {ops}): {type(e).__name__}: {e}")
    return counts, failures, time.perf_counter() - t0


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_fuzz(kind, tmp_path):
    counts, failures, secs = run_fuzz(kind, FUZZ_N, SEED, str(tmp_path))
    print(f"fuzz {kind}: {FUZZ_N} mutants in {secs:.1f} s: {counts}")
    assert not failures, "\n".join(failures[:20])
    assert counts["loaded"] + counts["error"] == FUZZ_N
    # the mutations are not all fatal: both outcomes occur
    assert counts["loaded"] > FUZZ_N // 20 and counts["error"] > FUZZ_N // 20, counts


def test_seeds_load():
    for kind, (ext, check) in KINDS.items():
        for data in seeds(kind):
            assert len(data) > 0
    assert load_bank.__name__ == "load_bank"


# ------------------------------------------------------------------ hostile regression files
def test_kept_hostile_files_match_their_builders():
    for name, make in hostile.SMALL.items():
        with open(os.path.join(hostile.HERE, name), "rb") as f:
            assert f.read() == make(), name


@pytest.mark.parametrize("name,regions", [("sf2_1m_regions.sf2", 1_000_000),
                                          ("sf2_90k_regions.sf2", 90_000)])
def test_hostile_sf2_preset_is_refused_naming_file_and_preset(name, regions):
    from gpusynth.banks.model import MAX_REGIONS_PER_PRESET
    path = os.path.join(hostile.HERE, name)
    assert os.path.getsize(path) < 17_000
    with pytest.raises(BankError) as e:
        load_bank(path)
    msg = str(e.value)
    assert path in msg and "preset 0:0 'hostile'" in msg and f"{regions} regions" in msg
    assert f"limit {MAX_REGIONS_PER_PRESET}" in msg


def test_hostile_sf2_under_the_cap_stays_bounded():
    """2,500 overlapping full-range regions (1.7 KB) load, and a note starts at most
    MAX_REGIONS_PER_NOTE of them; the lookup table holds O(regions) entries."""
    from gpusynth.presets import MAX_REGIONS_PER_NOTE
    bank = load_bank(os.path.join(hostile.HERE, "sf2_2500_regions.sf2"))
    assert len(bank.regions) == 2500
    pm = PresetMap().build([(1, bank, 0)])
    assert len(pm._efpos) <= 2500 * 14
    note, reg = pm.regions_for(np.zeros(128, np.int64), np.arange(128), np.full(128, 64))
    assert len(reg) == 128 * MAX_REGIONS_PER_NOTE and pm.capped_notes == 128


def test_bank_validate_caps_regions_per_preset():
    from gpusynth.banks.model import MAX_REGIONS_PER_PRESET, Bank, Preset, new_regions
    r = new_regions(MAX_REGIONS_PER_PRESET + 1)
    r["start"], r["end"] = 0, 8
    b = Bank("big", np.zeros(64, np.float32), r,
             [Preset(3, 4, "wide", np.arange(len(r), dtype=np.int32))], path="/x/big.dls")
    with pytest.raises(BankError, match=r"/x/big.dls: presets: preset 3:4 'wide' has 65537"):
        b.validate()
    b.presets[0].regions = b.presets[0].regions[:MAX_REGIONS_PER_PRESET]
    b.validate()


def test_hostile_long_delta_is_refused_by_the_cli(tmp_path):
    import subprocess
    path = os.path.join(hostile.HERE, "midi_long_delta.mid")
    song = load_smf(path)
    assert os.path.getsize(path) == 37 and song.duration_s > 16 * 86400
    out = tmp_path / "x.wav"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-m", "gpusynth", "render", path, "-o", str(out),
                        "--backend", "numpy"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "388.4 h" in r.stderr and "--max-duration 86400" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("decoder", ["native", "reference"])
def test_hostile_overflowing_times_saturate_with_a_warning(tmp_path, decoder):
    from gpusynth.smf import native_decoder_error
    if decoder == "native" and native_decoder_error():
        pytest.skip(native_decoder_error())
    p = tmp_path / "overflow.mid"
    p.write_bytes(hostile.midi_overflow_deltas(45_000))
    song = load_smf(p, decoder=decoder)
    assert any("saturated" in w for w in song.warnings), song.warnings
    ev = song.events(48000)
    assert len(ev) == 90_000
    t = ev["time"]
    assert np.all(t >= 0) and np.all(np.diff(t) >= 0)        # none wraps negative, none first
    assert t[-1] == np.iinfo(np.int64).max


def test_hostile_65535_tracks(tmp_path):
    """65,535 one-note tracks: the index is linear in the track count (seconds were measured
    at 0.4-0.7 s here; the bound only catches a quadratic regression)."""
    p = tmp_path / "tracks.mid"
    p.write_bytes(hostile.midi_many_tracks())
    t = time.perf_counter()
    song = load_smf(p)
    secs = time.perf_counter() - t
    assert song.ntracks == 65_535 and song.n_notes == 65_535
    ev = song.events(48000)
    assert len(ev) == 2 * 65_535 and ev["time"].max() == 24000
    assert secs < 10.0, secs


if __name__ == "__main__":
    import argparse
    import tempfile
    ap = argparse.ArgumentParser(description="fuzz the SF2, DLS and MIDI readers")
    ap.add_argument("--n", type=int, default=10_000, help="mutants per format")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--kinds", default=",".join(KINDS))
    a = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        for kind in a.kinds.split(","):
            counts, failures, secs = run_fuzz(kind, a.n, a.seed, d)
            print(f"{kind}: {a.n} mutants in {secs:.1f} s: {counts}")
            for f in failures[:50]:
                print("  " + f)
            bad += len(failures)
    sys.exit(1 if bad else 0)
