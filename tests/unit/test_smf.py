"""Standard MIDI File reader/writer: conformance files, timing, ports, SysEx, fuzzing."""
from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from gpusynth.events import EVENT_DTYPE
from gpusynth.smf import MidiFileError, Song, load_smf, port_meta, tempo_meta, write_smf

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "midi"
SUITES = ("jazz-soft", "nfroidure", "sonivox")


def _files():
    out = []
    for suite in SUITES:
        d = TESTDATA / suite
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if p.suffix.lower() == ".mid")
    return out


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found: {path}")
    return path


def _notes(song: Song, rate=48000):
    """(time, chan, key) of note-ons with velocity > 0, in event order."""
    e = song.events(rate)
    on = e[(e["status"] == 0x90) & (e["data2"] > 0)]
    return [(int(t), int(c), int(k)) for t, c, k in zip(on["time"], on["chan"], on["data1"])]


# MIDIBadFormat1.mid is a well-formed format 1 file (every chunk length matches its content,
# every track ends with end-of-track, all four tracks end at tick 384); nothing in it can be
# rejected without rejecting valid files, so it is expected to load.
MUST_LOAD_DESPITE_NAME = {"MIDIBadFormat1.mid"}
MUST_FAIL = {"test-not-a-midi-file.mid", "test-empty-file.mid"}


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_conformance_file(path):
    name = path.name
    must_fail = (name.startswith("MIDIBad") and name not in MUST_LOAD_DESPITE_NAME) \
        or name in MUST_FAIL
    if must_fail:
        with pytest.raises(MidiFileError) as ei:
            load_smf(path)
        msg = str(ei.value)
        assert msg.startswith(str(path) + ": ") and "\n" not in msg
        assert "internal" not in msg
        return
    song = load_smf(path)
    assert isinstance(song, Song)
    e = song.events(44100)
    assert e.dtype == EVENT_DTYPE
    assert np.all(np.diff(e["time"]) >= 0)
    assert song.channel_groups >= 1
    assert song.duration_s >= (float(song.seconds.max()) if song.n_events else 0.0)
    if name.startswith("MIDIOk"):
        assert song.n_notes > 0
    if not path.parent.name == "nfroidure":
        assert not (e["status"] & 0x0F).any()


def test_testdata_present_or_skip():
    if not TESTDATA.is_dir():
        pytest.skip("no ../shared/testdata")
    assert len(_files()) > 70


C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


@pytest.mark.parametrize("name", ["test-running-status-sysex.mid",
                                  "test-running-status-metaevent.mid",
                                  "test-corrupt-file-missing-byte.mid",
                                  "test-corrupt-file-extra-byte.mid",
                                  "test-illegal-message-all.mid",
                                  "test-non-midi-track.mid",
                                  "test-vlq-4-byte.mid",
                                  "test-smpte-offset.mid"])
def test_c_major_scale_files(name):
    song = load_smf(_need(TESTDATA / "jazz-soft" / name))
    notes = _notes(song, 96 * 2)  # 96 ppq at 120 bpm: one tick = 1/192 s
    assert [k for _, _, k in notes] == C_MAJOR
    times = [t for t, _, _ in notes]
    assert times == [times[0] + 96 * i for i in range(8)]
    e = song.events(192)
    offs = e[(e["status"] == 0x80) | ((e["status"] == 0x90) & (e["data2"] == 0))]
    assert sorted(int(k) for k in offs["data1"]) == sorted(C_MAJOR)


def test_running_status_sysex_payload():
    song = load_smf(_need(TESTDATA / "jazz-soft" / "test-running-status-sysex.mid"))
    assert song.sysex == [bytes.fromhex("f07e7f0601f7")]
    e = song.events(1000)
    sx = e[e["status"] == 0xF0]
    assert len(sx) == 1 and sx["sysex"][0] == 0
    assert np.all(e["sysex"][e["status"] != 0xF0] == -1)


def test_missing_byte_reports_repair():
    song = load_smf(_need(TESTDATA / "jazz-soft" / "test-corrupt-file-missing-byte.mid"))
    assert song.n_notes == 8
    assert any("truncated" in w for w in song.warnings)


def test_two_tracks_formats_consistent():
    d = TESTDATA / "jazz-soft"
    s0 = load_smf(_need(d / "test-2-tracks-type-0.mid"))
    s1 = load_smf(_need(d / "test-2-tracks-type-1.mid"))
    s2 = load_smf(_need(d / "test-2-tracks-type-2.mid"))
    assert (s0.format, s1.format, s2.format) == (0, 1, 2)
    n0, n1, n2 = _notes(s0), _notes(s1), _notes(s2)
    assert n0 == n1
    assert len(n0) == len(n2) == 16
    assert sorted((c, k) for _, c, k in n0) == sorted((c, k) for _, c, k in n2)
    # format 2: the second track starts when the first ends
    e1 = [n for n in n2 if n[1] == 0]
    e2 = [n for n in n2 if n[1] == 1]
    assert e2[0][0] >= e1[-1][0]
    ends1 = 4.5  # track 1 of the format 2 file: 96 + 8 * 192 + 96 ... ticks, 96 ppq, 120 bpm
    assert s2.duration_s == pytest.approx(2 * ends1, abs=0.6)
    # within one track the notes keep their spacing whatever the format
    assert [t - e1[0][0] for t, _, _ in e1] == [t - n0[0][0] for t, c, _ in n0 if c == 0]
    assert s0.duration_s == s1.duration_s


def test_sonivox_note_counts():
    d = TESTDATA / "sonivox"
    assert load_smf(_need(d / "ants.mid")).n_notes == 372
    lead = load_smf(_need(d / "Leadsol.mid"))
    assert lead.n_notes == 269
    assert len(lead.sysex) >= 1 and all(p[0] == 0xF0 for p in lead.sysex)


def test_tempo_change_exact_times():
    # 480 ppq, 120 bpm, then 60 bpm from tick 960 (t = 1.0 s)
    tempo = [(0, tempo_meta(500_000)), (960, tempo_meta(1_000_000))]
    notes = [(tick, bytes([0x90, 60 + i, 100])) for i, tick in enumerate(range(0, 2401, 480))]
    data = write_smf(None, [tempo, notes], ppq=480)
    song = load_smf(data)
    assert song.format == 1 and song.ntracks == 2 and song.division == 480
    got = [t for t, _, _ in _notes(song, 48000)]
    # ticks 0, 480, 960, 1440, 1920, 2400 -> 0, 0.5, 1, 2, 3, 4 s
    assert got == [0, 24000, 48000, 96000, 144000, 192000]
    assert song.duration_s == 4.0


def test_tempo_times_exact_against_fractions():
    ppq = 384
    tempos = [(0, 123_457), (1000, 654_321), (1001, 333_333), (5000, 999_999)]
    tempo_track = [(t, tempo_meta(v)) for t, v in tempos]
    rng = np.random.default_rng(1)
    ticks = sorted(int(x) for x in rng.integers(0, 8000, 300))
    notes = [(t, bytes([0x91, 64, 90])) for t in ticks]
    song = load_smf(write_smf(None, [tempo_track, notes], ppq=ppq))

    def exact(tick):
        s, prev_t, prev_v = Fraction(0), 0, 500_000
        for t, v in tempos:
            if t > tick:
                break
            s += Fraction((t - prev_t) * prev_v, 10**6 * ppq)
            prev_t, prev_v = t, v
        return s + Fraction((tick - prev_t) * prev_v, 10**6 * ppq)

    want = np.array([float(exact(t)) for t in ticks])
    mask = song.status == 0x90
    assert np.array_equal(song.seconds[mask], want)  # correctly rounded float64
    rate = 44100
    e = song.events(rate)
    assert list(e["time"]) == [round(exact(t) * rate) for t in ticks]


def test_tempo_in_later_track_applies_to_all():
    t0 = [(0, bytes([0x90, 60, 1])), (960, bytes([0x90, 61, 1]))]
    t1 = [(480, tempo_meta(250_000))]
    song = load_smf(write_smf(None, [t0, t1], ppq=480))
    assert [t for t, _, _ in _notes(song, 1000)] == [0, 750]


def test_format2_tracks_sequential_with_own_tempo():
    a = [(0, tempo_meta(1_000_000)), (0, bytes([0x90, 60, 100])), (480, bytes([0x80, 60, 0]))]
    b = [(0, bytes([0x90, 62, 100])), (480, bytes([0x80, 62, 0]))]
    song = load_smf(write_smf(None, [a, b], ppq=480, fmt=2))
    # track a lasts 1 s at 60 bpm; track b starts then, at the default 120 bpm
    assert [t for t, _, _ in _notes(song, 1000)] == [0, 1000]
    assert song.duration_s == 1.5


def test_smpte_division():
    # 25 fps, 40 ticks per frame -> 1000 ticks per second; tempo ignored
    tr = [(0, tempo_meta(1_000_000)), (0, bytes([0x90, 60, 100])), (1500, bytes([0x90, 61, 1]))]
    data = bytearray(write_smf(None, [tr], ppq=480, fmt=0))
    data[12:14] = bytes([(256 - 25) & 0xFF, 40])
    song = load_smf(bytes(data))
    assert song.smpte == (25, 40) and song.ticks_per_quarter is None
    assert [t for t, _, _ in _notes(song, 1000)] == [0, 1500]
    # 30 drop-frame: 29.97 fps
    data[12:14] = bytes([(256 - 29) & 0xFF, 100])
    song = load_smf(bytes(data))
    assert song.seconds[1] == 1500 * 1001 / (30000 * 100)


def test_port_meta_maps_tracks_to_groups():
    tracks = [[(0, tempo_meta(500_000))]]
    for port in (0, 1, 2):
        tracks.append([(0, port_meta(port)), (0, bytes([0x99, 36, 100])),
                       (10, bytes([0xB3, 7, 90])), (20, bytes([0x89, 36, 0]))])
    tracks.append([(0, bytes([0x95, 50, 70]))])  # no port meta: group 0
    song = load_smf(write_smf(None, tracks))
    assert song.channel_groups == 3
    e = song.events(48000)
    ons = e[e["status"] == 0x90]
    assert list(ons["chan"]) == [9, 16 + 9, 32 + 9, 5]
    cc = e[e["status"] == 0xB0]
    assert list(cc["chan"]) == [3, 19, 35]


def test_sysex_preserved_and_split_packets():
    gm_on = bytes.fromhex("f07e7f0901f7")
    xg = bytes.fromhex("f043104c00007e00f7")
    tr = [(0, gm_on), (5, bytes([0x90, 60, 100])), (5, xg)]
    song = load_smf(write_smf(None, [tr]))
    assert song.sysex == [gm_on, xg]
    e = song.events(1000)
    assert list(e["status"]) == [0xF0, 0x90, 0xF0]
    assert list(e["sysex"]) == [0, -1, 1]
    # a SysEx split into an F0 packet and an F7 continuation packet
    # (the writer takes F0 messages without their length byte, F7 escapes in full)
    tr = [(0, b"\xF0\x43\x10\x4C"), (2, b"\xF7\x05\x00\x00\x7E\x00\xF7")]
    song = load_smf(write_smf(None, [tr]))
    assert song.sysex == [xg]
    assert song.n_events == 1 and song.seconds[0] == 0.0


def test_note_on_velocity_zero_kept():
    tr = [(0, bytes([0x90, 60, 100])), (10, bytes([0x90, 60, 0]))]
    song = load_smf(write_smf(None, [tr], running_status=True))
    e = song.events(1000)
    assert list(e["status"]) == [0x90, 0x90] and list(e["data2"]) == [100, 0]
    assert song.n_notes == 1


def test_round_trip_random():
    rng = np.random.default_rng(7)
    for running in (False, True):
        tracks, expect = [[(0, tempo_meta(600_000))]], []
        for ti in range(4):
            tr = []
            for _ in range(200):
                tick = int(rng.integers(0, 5000))
                kind = int(rng.integers(0, 7))
                status = 0x80 + 16 * kind + int(rng.integers(0, 16))
                nbytes = 1 if kind in (4, 5) else 2
                msg = bytes([status]) + bytes(int(x) for x in rng.integers(0, 128, nbytes))
                tr.append((tick, msg))
            tracks.append(tr)
            for order, (tick, msg) in sorted(enumerate(tr), key=lambda x: (x[1][0], x[0])):
                expect.append((tick, ti, msg))
        data = write_smf(None, tracks, ppq=96, running_status=running)
        song = load_smf(data)
        assert song.warnings == []
        assert load_smf(data).n_events == 800
        # rate chosen so that one tick is exactly 1/160 s * rate: 96 ppq at 0.6 s/quarter
        rate = 160
        expect_sorted = sorted(expect, key=lambda x: x[0])  # stable: track order, then file
        e = song.events(rate)
        got = []
        for ev in e:
            st = int(ev["status"]) | (int(ev["chan"]) & 15)
            b = bytes([st, int(ev["data1"])])
            if int(ev["status"]) not in (0xC0, 0xD0):
                b += bytes([int(ev["data2"])])
            got.append((int(ev["time"]), b))
        assert got == [(t, m) for t, _, m in expect_sorted]


def test_write_file_and_meta_helpers(tmp_path):
    p = tmp_path / "x.mid"
    data = write_smf(p, [[(0, bytes([0xC0, 5])), (100, b"\xFF\x2F\x00"), (50, bytes([0x90, 1, 2]))]])
    assert p.read_bytes() == data
    assert tempo_meta(500_000) == b"\xFF\x51\x03\x07\xA1\x20"
    assert port_meta(3) == b"\xFF\x21\x01\x03"
    song = load_smf(p)
    assert song.duration_s == pytest.approx(100 / 480 * 0.5)
    assert song.path == str(p)
    with pytest.raises(ValueError):
        write_smf(None, [[], []], fmt=0)


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"MThd\x00\x00\x00\x06\x00", "truncated"),
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x00MTrk\x00\x00\x00\x04\x00\xff\x2f\x00",
     "division"),
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x00\x00\x60", "no tracks"),
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60", "no MTrk"),
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x3c\x40\xff\x2f",
     "running status"),
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x07\xff\xff\xff\xff\x7f\x90\x3c",
     "variable-length"),
    (b"RIFF\x04\x00\x00\x00RMID", "data chunk"),
])
def test_rejects(data, reason):
    with pytest.raises(MidiFileError) as ei:
        load_smf(data)
    assert str(ei.value).startswith("<bytes>: ")
    assert reason in str(ei.value)


def test_rmid_wrapper():
    smf = write_smf(None, [[(0, bytes([0x90, 60, 100]))]])
    body = b"RMID" + b"data" + len(smf).to_bytes(4, "little") + smf
    song = load_smf(b"RIFF" + len(body).to_bytes(4, "little") + body)
    assert song.n_notes == 1


def _mutations(data: bytes, rng, count: int):
    n = len(data)
    for _ in range(count):
        kind = int(rng.integers(0, 5))
        b = bytearray(data)
        if kind == 0:  # truncation
            yield bytes(b[: int(rng.integers(0, n + 1))])
        elif kind == 1:  # bit flips
            for _ in range(int(rng.integers(1, 6))):
                i = int(rng.integers(0, n))
                b[i] ^= 1 << int(rng.integers(0, 8))
            yield bytes(b)
        elif kind == 2:  # random bytes overwritten
            for _ in range(int(rng.integers(1, 6))):
                b[int(rng.integers(0, n))] = int(rng.integers(0, 256))
            yield bytes(b)
        elif kind == 3:  # deletion
            i = int(rng.integers(0, n))
            del b[i: i + int(rng.integers(1, 8))]
            yield bytes(b)
        else:  # insertion
            i = int(rng.integers(0, n + 1))
            b[i:i] = bytes(int(x) for x in rng.integers(0, 256, int(rng.integers(1, 8))))
            yield bytes(b)


def test_fuzz_only_midifileerror():
    seeds = []
    for name in ("jazz-soft/test-running-status-sysex.mid", "jazz-soft/test-karaoke-kar.mid",
                 "jazz-soft/test-multichannel-chords-3.mid", "sonivox/ants.mid",
                 "sonivox/Leadsol.mid", "nfroidure/MIDIOkFormat2.mid"):
        p = TESTDATA / name
        if p.exists():
            seeds.append(p.read_bytes())
    tr = [(0, tempo_meta(400_000)), (0, port_meta(1)), (0, bytes.fromhex("f07e7f0901f7")),
          (3, bytes([0x90, 60, 100])), (200, bytes([0xE0, 0, 64])), (300, bytes([0x80, 60, 0]))]
    seeds.append(write_smf(None, [tr, tr[3:]], running_status=True))
    rng = np.random.default_rng(12345)
    loaded = failed = 0
    t0 = time.perf_counter()
    for seed in seeds:
        for mutated in _mutations(seed, rng, 120):
            try:
                song = load_smf(mutated)
            except MidiFileError as e:
                assert "internal" not in str(e), str(e)
                assert "\n" not in str(e)
                failed += 1
                continue
            e = song.events(44100)
            assert e.dtype == EVENT_DTYPE and np.all(np.diff(e["time"]) >= 0)
            assert np.all(e["data1"] < 128) and np.all(e["data2"] < 128)
            assert np.all((e["sysex"] >= 0) == (e["status"] == 0xF0))
            assert np.all(e["sysex"] < len(song.sysex))
            assert np.isfinite(song.duration_s)
            loaded += 1
    assert loaded > 0 and failed > 0
    print(f"\n{loaded + failed} mutants in {time.perf_counter() - t0:.1f} s")


def test_large_file_loads_fast():
    rng = np.random.default_rng(3)
    n_notes = 200_000
    tracks = [[(0, tempo_meta(500_000))]]
    per = n_notes // 8
    for ch in range(8):
        starts = np.sort(rng.integers(0, 480 * 1000, per)).tolist()
        keys = rng.integers(21, 109, per).tolist()
        ev = []
        for s, k in zip(starts, keys):
            ev.append((s, bytes((0x90 | ch, k, 100))))
            ev.append((s + 100, bytes((0x80 | ch, k, 0))))
        tracks.append(ev)
    data = write_smf(None, tracks, running_status=True)
    t0 = time.perf_counter()
    song = load_smf(data)
    e = song.events(48000)
    dt = time.perf_counter() - t0
    assert song.n_notes == n_notes and len(e) == 2 * n_notes
    assert song.n_events == 2 * n_notes                 # the scan counted every note event once
    print(f"\n200k-note file: {dt:.2f} s (timing: bench/bench.py blackmidi)")


def test_huge_ticks_do_not_break():
    # 1100 deltas of 2**28 - 1 ticks at the slowest tempo: past int64 microsecond-tick range
    tr = [(0, tempo_meta(0xFFFFFF))] + [(k * 0x0FFFFFFF, bytes([0x90, 60, 1]))
                                        for k in range(1, 1101)]
    song = load_smf(write_smf(None, [tr], ppq=1))
    assert song.n_notes == 1100 and np.isfinite(song.duration_s)
    assert np.all(np.diff(song.seconds) > 0)
    want = 1100 * 0x0FFFFFFF * 0xFFFFFF / 1e6
    assert song.duration_s == pytest.approx(want, rel=1e-12)


def test_trailing_byte_and_header_warnings():
    song = load_smf(_need(TESTDATA / "jazz-soft" / "test-corrupt-file-extra-byte.mid"))
    assert any("trailing" in w for w in song.warnings)
    with pytest.raises(MidiFileError, match="MThd"):
        load_smf(_need(TESTDATA / "nfroidure" / "MIDIBadHeaderLength.mid"))
