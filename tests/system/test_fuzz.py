"""Fuzzing the file readers (SF2, DLS, MIDI) with a fixed seed, and the hostile regression files.

Each mutant of a small valid seed file is loaded and its outcome classified:

* ``loaded``: the reader returned, and the result keeps its invariants (a bank validates and its
  every preset resolves notes; a song's events come out of the streaming cursor in time order,
  at non-negative sample times, with no more events than the scan counted);
* ``error``: the documented error of the format (``BankError`` for banks, ``MidiFileError`` for
  MIDI files), whose message names the file;
* anything else (another exception, a broken invariant) is a failure: the test reports every
  failing mutant with its seed and mutation so that it can be replayed.

CI runs ``FUZZ_N`` (1,000) mutants per format; ``GPUSYNTH_FUZZ_N=10000 pytest tests/system/test_fuzz.py``
or ``python tests/system/test_fuzz.py --n 10000`` is the long mode (prints the outcome counts).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

if __name__ == "__main__":      # run as a script: the repository's package and tests/support
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "support"))
import hostile  # noqa: E402
from fuzzing import mutate, seeds  # noqa: E402

from gpusynth.banks import BankError, load_bank  # noqa: E402
from gpusynth.presets import PresetMap  # noqa: E402
from gpusynth.smf import MidiFileError, load_smf  # noqa: E402

FUZZ_N = int(os.environ.get("GPUSYNTH_FUZZ_N", "1000"))
SEED = 20131


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
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
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
