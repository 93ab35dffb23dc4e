"""Streaming SMF reader: native == python decoder, cursor windows, mido, memory, fuzz, repairs.

``python tests/unit/test_smf_stream.py [NOTES]`` runs the ingest benchmark (scan + full read through
a cursor in 16384-frame windows at 48 kHz) on a generated 64-track black-MIDI file."""
from __future__ import annotations

import struct
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from gpusynth.events import EVENT_DTYPE
from gpusynth.smf import (MidiFileError, load_smf, native_decoder_error, port_meta, tempo_meta,
                          write_smf)

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
I64_MAX = (1 << 63) - 1


def _all_mid():
    return sorted(p for p in TESTDATA.rglob("*") if p.suffix.lower() == ".mid")


def _need_native():
    err = native_decoder_error()
    if err is not None:
        pytest.skip(f"native SMF decoder unavailable: {err}")


# ------------------------------------------------------------------------------ generators

def _vlq_pack(deltas, msgs, msg_len):
    """Events as bytes: VLQ deltas followed by the first msg_len[i] bytes of msgs[i]."""
    d = np.asarray(deltas, np.int64)
    nb = 1 + (d >= 1 << 7).astype(np.int64) + (d >= 1 << 14) + (d >= 1 << 21)
    off = np.zeros(len(d) + 1, np.int64)
    np.cumsum(nb + msg_len, out=off[1:])
    out = np.empty(int(off[-1]), np.uint8)
    for j in range(4):
        m = nb > j
        val = (d[m] >> (7 * (nb[m] - 1 - j))) & 0x7F
        out[off[:-1][m] + j] = val | np.where(j < nb[m] - 1, 0x80, 0)
    for j in range(3):
        m = msg_len > j
        out[(off[:-1] + nb)[m] + j] = msgs[m, j]
    return out.tobytes()


def _vlq(v: int) -> bytes:
    out = bytearray([v & 0x7F])
    v >>= 7
    while v:
        out.insert(0, 0x80 | (v & 0x7F))
        v >>= 7
    return bytes(out)


def blackmidi_bytes(n_notes, ntracks=64, notes_per_s=50_000.0, ppq=480, seed=0):
    """A format-1 black-MIDI file (fast, vectorised): a tempo track (a change every second) and
    ntracks - 1 note tracks; even tracks write note-offs with status bytes, odd ones note-on
    velocity 0 under running status."""
    rng = np.random.default_rng(seed)
    total = max(1, int(n_notes / notes_per_s * 2 * ppq))
    out = [b"MThd" + struct.pack(">IHHH", 6, 1, ntracks, ppq)]
    body = bytearray()
    last = 0
    for i, t in enumerate(range(0, total, 2 * ppq)):
        body += _vlq(t - last) + tempo_meta(500_000 if i % 2 == 0 else 480_000)
        last = t
    body += b"\x00\xFF\x2F\x00"
    out.append(b"MTrk" + struct.pack(">I", len(body)) + bytes(body))
    nt = ntracks - 1
    for k in range(nt):
        m = n_notes // nt + (1 if k < n_notes % nt else 0)
        ch = k % 16
        on = np.sort(rng.integers(0, total, m))
        key = rng.integers(21, 109, m)
        ticks = np.concatenate([on, on + rng.integers(1, 240, m)])
        is_on = np.concatenate([np.ones(m, bool), np.zeros(m, bool)])
        keys = np.concatenate([key, key])
        order = np.lexsort((is_on, ticks))
        ticks, is_on, keys = ticks[order], is_on[order], keys[order]
        msgs = np.zeros((2 * m, 3), np.uint8)
        if k % 2 == 0:
            msgs[:, 0] = np.where(is_on, 0x90 | ch, 0x80 | ch)
            msgs[:, 1] = keys
            msgs[:, 2] = np.where(is_on, 100, 64)
            ml = np.full(2 * m, 3, np.int64)
        else:
            msgs[:, 0] = keys
            msgs[:, 1] = np.where(is_on, 90, 0)
            ml = np.full(2 * m, 2, np.int64)
            if m:
                msgs[0] = (0x90 | ch, keys[0], 90 if is_on[0] else 0)
                ml[0] = 3
        body = _vlq_pack(np.diff(ticks, prepend=0), msgs, ml) + b"\x00\xFF\x2F\x00"
        out.append(b"MTrk" + struct.pack(">I", len(body)) + body)
    return b"".join(out)


def _feature_tracks(rng, ntracks=12, per=60):
    """Tracks with tempo changes in several tracks, port metas, SysEx (whole, split, escaped),
    escaped channel messages, all channel message kinds, a 0-event track."""
    tracks = []
    for ti in range(ntracks):
        tr = []
        if ti % 3 == 0:
            tr += [(int(rng.integers(0, 2000)), tempo_meta(int(rng.integers(200_000, 900_000))))
                   for _ in range(3)]
        if ti % 4 == 1:
            tr.append((0, port_meta(ti % 3)))
        if ti == 5:
            continue_tr = []
            tracks.append(continue_tr)  # an empty track (end-of-track only)
            continue
        for _ in range(per):
            tick = int(rng.integers(0, 2000))
            kind = int(rng.integers(0, 7))
            status = 0x80 + 16 * kind + int(rng.integers(0, 16))
            nb = 1 if kind in (4, 5) else 2
            tr.append((tick, bytes([status]) + bytes(int(x) for x in rng.integers(0, 128, nb))))
        if ti % 2 == 0:
            tr.append((int(rng.integers(0, 2000)), bytes.fromhex("f07e7f0901f7")))
        if ti % 5 == 2:
            t0 = int(rng.integers(0, 1500))
            tr.append((t0, b"\xF0\x43\x10\x4C"))
            tr.append((t0 + 1, bytes([0x90, 60, 1])))
            tr.append((t0 + 7, b"\xF7\x03\x00\x00\x7E"))
            tr.append((t0 + 9, b"\xF7\x02\x00\xF7"))
        if ti % 5 == 3:
            tr.append((int(rng.integers(0, 2000)), b"\xF7\x03\x91\x40\x50"))  # escaped note
            tr.append((int(rng.integers(0, 2000)), b"\xF7\x04\xF0\x7E\x00\xF7"))
        tracks.append(tr)
    return tracks


def _generated():
    """(name, bytes) of generated files covering the format's corners."""
    rng = np.random.default_rng(5)
    out = []
    tr = _feature_tracks(rng)
    out.append(("features-f1", write_smf(None, tr, ppq=96)))
    out.append(("features-f1-rs", write_smf(None, tr, ppq=480, running_status=True)))
    out.append(("features-f2", write_smf(None, tr, ppq=120, fmt=2)))
    data = bytearray(write_smf(None, tr, ppq=96, running_status=True))
    data[12:14] = bytes([(256 - 29) & 0xFF, 80])  # SMPTE 30 drop-frame, 80 ticks/frame
    out.append(("features-smpte", bytes(data)))
    data = bytearray(write_smf(None, tr, ppq=96, fmt=2))
    data[12:14] = bytes([(256 - 25) & 0xFF, 40])
    out.append(("features-smpte-f2", bytes(data)))
    out.append(("many-tracks", write_smf(None, [_feature_tracks(rng, 1, 5)[0]
                                                for _ in range(300)], ppq=240)))
    out.append(("black-small", blackmidi_bytes(3000, ntracks=9, notes_per_s=2000)))
    # more tempo events and split-SysEx packets than the native scan's first buffers hold
    tempo = [(3 * k, tempo_meta(300_000 + 1000 * (k % 97))) for k in range(1500)]
    notes = [(5 * k, bytes([0x90, 40 + k % 50, 1 + k % 100])) for k in range(1000)]
    split = [(7, b"\xF0\x43")] + [(8 + k, b"\xF7\x01" + bytes([k % 128])) for k in range(300)]
    split.append((400, b"\xF7\x01\xF7"))
    out.append(("tempo-heavy", write_smf(None, [tempo, notes, split], ppq=48)))
    # 0-length tracks, missing end-of-track, too long / too short lengths, truncated end
    hdr = b"MThd" + struct.pack(">IHHH", 6, 1, 5, 96)
    t_ok = b"\x00\x90\x3C\x40\x60\x80\x3C\x00\x00\xFF\x2F\x00"
    t_noeot = b"\x00\x91\x3E\x40\x30\x3E\x00"
    f = hdr + b"MTrk\x00\x00\x00\x00" + b"MTrk" + struct.pack(">I", len(t_noeot)) + t_noeot
    f += b"MTrk" + struct.pack(">I", len(t_ok) + 6) + t_ok  # too long: next MTrk after EOT
    f += b"MTrk" + struct.pack(">I", 5) + t_ok               # too short
    f += b"MTrk" + struct.pack(">I", 500) + t_ok[:7]          # truncated last track
    out.append(("repairs", f))
    return out


def _songs_equal(a, b, rate=44100):
    assert a.warnings == b.warnings
    assert (a.n_notes, a.n_events, a.duration_s, a.channel_groups, a.ntracks) == \
        (b.n_notes, b.n_events, b.duration_s, b.channel_groups, b.ntracks)
    ea, eb = a.events(rate), b.events(rate)
    assert np.array_equal(ea, eb)
    assert a.sysex == b.sysex


def _load_both(src):
    out = []
    for dec in ("native", "reference"):
        try:
            out.append(load_smf(src, decoder=dec))
        except MidiFileError as e:
            out.append(str(e))
    return out


# ------------------------------------------------------------------------- native == python

@pytest.mark.parametrize("path", _all_mid(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_native_equals_python_testdata(path):
    _need_native()
    a, b = _load_both(path)
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert (a.decoder, b.decoder) == ("native", "reference")
    for rate in (44100, 48000, 1000):
        _songs_equal(a, b, rate)
    for name in ("seconds", "chan", "status", "data1", "data2", "sysex_index", "track"):
        assert np.array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("name,data", _generated(), ids=lambda x: x if isinstance(x, str) else "")
def test_native_equals_python_generated(name, data):
    _need_native()
    a, b = _load_both(data)
    assert not isinstance(a, str), a
    for rate in (48000, 44100.5, 7):
        _songs_equal(a, b, rate)


def test_generated_features_content():
    (name, data), = [g for g in _generated() if g[0] == "features-f1"]
    song = load_smf(data)
    assert song.warnings == []
    assert song.channel_groups == 2  # port 1 (track 2); port 2 is on the empty track
    assert bytes.fromhex("f043104c00007e00f7") in song.sysex      # joined split SysEx
    assert bytes.fromhex("f07e00f7") in song.sysex                # escaped SysEx
    e = song.events(48000)
    assert np.all((e["sysex"] >= 0) == (e["status"] == 0xF0))
    assert [song.sysex[i][0] for i in e["sysex"][e["sysex"] >= 0]] == [0xF0] * len(song.sysex)


def test_repairs_and_aggregated_warnings():
    (_, data), = [g for g in _generated() if g[0] == "repairs"]
    for dec in ("reference", "native") if native_decoder_error() is None else ("reference",):
        song = load_smf(data, decoder=dec)
        w = song.warnings
        assert song.ntracks == 5
        assert any("too long" in x for x in w) and any("too short" in x for x in w)
        assert any("truncated" in x for x in w)
        assert song.n_notes == 4   # tracks 2, 3, 4 (read on), 5 (its first event)
        assert len(w) == len({x.split(":")[0] for x in w})


def test_many_tracks_warnings_aggregated():
    n = 65535
    body = b"\x00\x90\x3C\x40\x10\x80\x3C\x00"  # no end-of-track
    data = b"MThd" + struct.pack(">IHHH", 6, 1, n, 96) + \
        (b"MTrk" + struct.pack(">I", len(body)) + body) * n
    decs = ("native", "reference") if native_decoder_error() is None else ("reference",)
    songs = [load_smf(data, decoder=d) for d in decs]
    for s in songs:
        assert s.ntracks == n and s.n_notes == n
        assert s.warnings == [f"{n} tracks without end-of-track (first: track 1)"]
    ev = [s.events(960) for s in songs]
    assert len(ev[0]) == 2 * n and np.all(ev[0]["time"][:n] == 0)
    if len(ev) == 2:
        assert np.array_equal(ev[0], ev[1])


def test_truncated_file_missing_tracks_tolerated_bad_length_not():
    data = blackmidi_bytes(2000, ntracks=8, notes_per_s=1000)
    cut = data[: len(data) * 2 // 3]
    song = load_smf(cut)
    assert song.ntracks < 8 and song.n_notes > 0
    assert any("truncated" in w for w in song.warnings)
    with pytest.raises(MidiFileError, match="overruns"):
        load_smf(TESTDATA / "midi" / "nfroidure" / "MIDIBadTrackLength.mid")


# ---------------------------------------------------------------------------- cursor reads

def _drain(cur, window=None, cap=None, max_windows=2000):
    """Read a cursor to its end in windows of ``window`` frames (after max_windows reads, the
    rest at once), at most ``cap`` events a read; check the cursor's invariants."""
    evs, pays = [], []
    pos = 0
    reads = 0
    while not cur.done:
        reads += 1
        until = I64_MAX if window is None or reads > max_windows else pos + window
        prev = cur.position
        ev, sx = cur.read(until, cap)
        assert cur.position >= prev
        if cap is None:
            assert cur.position == until
            pos = until
        else:
            assert len(ev) <= cap
            pos = cur.position if len(ev) == cap else until
        if len(ev):
            assert ev["time"].max() < until or until == I64_MAX
            assert ev["time"].min() >= prev
            assert cur.position <= until
        m = ev["sysex"] >= 0
        assert int(m.sum()) == len(sx)
        pays += [sx[i] for i in ev["sysex"][m]]
        evs.append(ev)
    assert cur.done
    ev, sx = cur.read(I64_MAX)
    assert len(ev) == 0 and sx == []
    return (np.concatenate(evs) if evs else np.zeros(0, EVENT_DTYPE)), pays


def _cursor_sources():
    out = [(n, d) for n, d in _generated() if n != "many-tracks"]
    for rel in ("midi/sonivox/Leadsol.mid", "midi/jazz-soft/test-karaoke-kar.mid",
                "midi/jazz-soft/test-2-tracks-type-2.mid"):
        p = TESTDATA / rel
        if p.exists():
            out.append((p.name, p.read_bytes()))
    return out


@pytest.mark.parametrize("decoder", ["native", "reference"])
@pytest.mark.parametrize("name,data", _cursor_sources(), ids=lambda x: x if isinstance(x, str)
                         else "")
def test_cursor_windows_concatenate_to_events(name, data, decoder):
    if decoder == "native":
        _need_native()
    song = load_smf(data, decoder=decoder)
    rate = 48000
    ref = song.events(rate)
    ref_sx = [song.sysex[i] for i in ref["sysex"][ref["sysex"] >= 0]]
    plain = ref.copy()
    plain["sysex"] = np.where(plain["sysex"] >= 0, 0, -1)
    for window, cap in ((1, None), (7, None), (1000, None), (16384, None), (None, None),
                        (16384, 1), (1000, 5)):
        ev, pays = _drain(song.cursor(rate), window, cap)
        got = ev.copy()
        got["sysex"] = np.where(got["sysex"] >= 0, 0, -1)
        assert np.array_equal(got, plain), (window, cap)
        assert pays == ref_sx


def test_cursors_independent():
    (_, data), = [g for g in _generated() if g[0] == "features-f1-rs"]
    song = load_smf(data)
    a, b = song.cursor(48000), song.cursor(48000)
    ea, _ = a.read(30000)
    eb1, _ = b.read(10000)
    eb2, _ = b.read(30000)
    assert np.array_equal(ea, np.concatenate([eb1, eb2])[:len(ea)]) or len(ea) == 0
    assert a.position == b.position == 30000


# ----------------------------------------------------------------------------------- mido

MIDO_SKIP = {"test-running-status-sysex.mid", "test-corrupt-file-missing-byte.mid"}


def _mido_files():
    d = TESTDATA / "midi" / "jazz-soft"
    return sorted(p for p in d.glob("*.mid") if p.name not in MIDO_SKIP) if d.is_dir() else []


@pytest.mark.parametrize("path", _mido_files(), ids=lambda p: p.name)
def test_against_mido(path):
    mido = pytest.importorskip("mido")
    try:
        mf = mido.MidiFile(str(path))
    except Exception:
        pytest.skip("mido cannot read it")
    if mf.type == 2:
        pytest.skip("mido does not merge format 2")
    song = load_smf(path)
    rate = 48000
    kinds = {"note_on": 0x90, "note_off": 0x80, "control_change": 0xB0}
    want: dict = {}
    t = 0.0
    for msg in mf:
        t += msg.time
        if msg.type in kinds:
            a, b = ((msg.note, msg.velocity) if msg.type != "control_change"
                    else (msg.control, msg.value))
            want.setdefault(msg.channel, []).append((t * rate, kinds[msg.type], a, b))
    e = song.events(rate)
    got: dict = {}
    for ev in e[np.isin(e["status"], [0x80, 0x90, 0xB0])]:
        got.setdefault(int(ev["chan"]) & 15, []).append(
            (int(ev["time"]), int(ev["status"]), int(ev["data1"]), int(ev["data2"])))
    assert sorted(want) == sorted(got)
    for ch in want:
        assert [w[1:] for w in want[ch]] == [g[1:] for g in got[ch]]
        assert all(abs(w[0] - g[0]) <= 1 for w, g in zip(want[ch], got[ch]))


# ------------------------------------------------------------------------------ memory

def test_bounded_memory_streaming(tmp_path):
    native = native_decoder_error() is None
    n_notes = 1_000_000 if native else 200_000
    path = tmp_path / "black.mid"
    path.write_bytes(blackmidi_bytes(n_notes, ntracks=64))
    load_smf(path)  # builds the native decoder outside the measurement
    tracemalloc.start()
    try:
        song = load_smf(path)
        cur = song.cursor(48000)
        notes = n = 0
        pos = 0
        while not cur.done:
            pos += 16384
            ev, _ = cur.read(pos)
            n += len(ev)
            notes += int(np.count_nonzero((ev["status"] == 0x90) & (ev["data2"] > 0)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert song.n_notes == notes == n_notes and n == 2 * n_notes
    # the old reader kept ~300 bytes per note in Python lists and arrays (300 MB here)
    assert peak < 50e6, f"peak {peak / 1e6:.1f} MB"


# -------------------------------------------------------------------------------- fuzzing

def _mutations(data: bytes, rng, count: int):
    n = len(data)
    for _ in range(count):
        kind = int(rng.integers(0, 5))
        b = bytearray(data)
        if kind == 0:
            yield bytes(b[: int(rng.integers(0, n + 1))])
        elif kind == 1:
            for _ in range(int(rng.integers(1, 6))):
                b[int(rng.integers(0, n))] ^= 1 << int(rng.integers(0, 8))
            yield bytes(b)
        elif kind == 2:
            for _ in range(int(rng.integers(1, 6))):
                b[int(rng.integers(0, n))] = int(rng.integers(0, 256))
            yield bytes(b)
        elif kind == 3:
            i = int(rng.integers(0, n))
            del b[i: i + int(rng.integers(1, 8))]
            yield bytes(b)
        else:
            i = int(rng.integers(0, n + 1))
            b[i:i] = bytes(int(x) for x in rng.integers(0, 256, int(rng.integers(1, 8))))
            yield bytes(b)


@pytest.mark.slow
def test_fuzz_native_equals_python():
    _need_native()
    seeds = []
    for rel in ("midi/jazz-soft/test-running-status-sysex.mid",
                "midi/jazz-soft/test-multichannel-chords-3.mid",
                "midi/jazz-soft/test-illegal-message-all.mid", "midi/jazz-soft/test-vlq-4-byte.mid",
                "midi/jazz-soft/test-2-tracks-type-2.mid", "midi/jazz-soft/test-smpte-offset.mid",
                "midi/nfroidure/MIDIOkFormat1.mid", "midi/jazz-soft/test-non-midi-track.mid"):
        p = TESTDATA / rel
        if p.exists():
            seeds.append(p.read_bytes())
    rng = np.random.default_rng(5)
    small = _feature_tracks(rng, 4, 6)
    seeds.append(write_smf(None, small, ppq=96, running_status=True))
    seeds.append(write_smf(None, small, ppq=96, fmt=2))
    rng = np.random.default_rng(2024)
    t0 = time.perf_counter()
    loaded = failed = 0
    for seed in seeds:
        for mutated in _mutations(seed, rng, 300):
            a, b = _load_both(mutated)
            if isinstance(a, str) or isinstance(b, str):
                assert a == b
                assert "internal" not in a and "\n" not in a
                failed += 1
                continue
            _songs_equal(a, b, 44100)
            e = a.events(44100)
            assert np.all(np.diff(e["time"]) >= 0)
            assert np.all(e["data1"] < 128) and np.all(e["data2"] < 128)
            if loaded % 7 == 0:
                ev, _ = _drain(a.cursor(44100), 997, 13)
                assert np.array_equal(ev["time"], e["time"])
            loaded += 1
    assert loaded > 100 and failed > 100
    assert time.perf_counter() - t0 < 20


# ------------------------------------------------------------------------------- benchmark

def bench(n_notes=1_000_000, path="/tmp/gpusynth-black-1M.mid", reps=3):
    import resource
    p = Path(path)
    if not p.exists():
        p.write_bytes(blackmidi_bytes(n_notes, ntracks=64))
    load_smf(p)
    best = None
    for _ in range(reps):
        t0 = time.perf_counter()
        song = load_smf(p)
        cur = song.cursor(48000)
        pos = n = 0
        while not cur.done:
            pos += 16384
            n += len(cur.read(pos)[0])
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{song.n_notes} notes, {n} events, {song.ntracks} tracks, decoder {song.decoder}: "
          f"best {best:.3f} s = {song.n_notes / best / 1e6:.2f} M notes/s; peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    bench(int(float(sys.argv[1])) if len(sys.argv) > 1 else 1_000_000)
