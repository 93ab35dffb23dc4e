"""The compiled control engine (gpusynth/control_engine.cpp) against its definition, the
Python/numpy control path (gpusynth.control.ControlPath, alloc_engine="reference"): after every
window the voice table (every field of every record, bit for bit), the allocator's control
columns, the statistics, the controller timelines and the preset warnings are identical. Renders use the
null backend (control only) unless audio is compared."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from gpusynth import control_engine, smf
from gpusynth.allocator import CONTROL
from gpusynth.banks.builtin import load_builtin
from gpusynth.blackgen import write_black_midi
from gpusynth.control import ControlPath
from gpusynth.events import event_array
from gpusynth.synth import Synth
from gpusynth.voices import VOICE_DTYPE

pytestmark = pytest.mark.skipif(not control_engine.NATIVE.available(),
                                reason="no C++ compiler: the control engine cannot be built")

RATE = 48000
TESTDATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "testdata", "midi")
TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
STATS = ("stolen_voices", "lost_notes", "peak_voices", "notes", "skipped_notes")


@pytest.fixture(scope="module")
def builtin():
    return load_builtin()


@pytest.fixture(scope="module")
def timgm():
    if not os.path.exists(TIMGM):
        pytest.skip("TimGM6mb not installed")
    from gpusynth.banks import load_bank
    return load_bank(TIMGM)


def _bits(a):
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize > 1 else a.view(np.uint8)


def trace(bank, engine, events=None, song=None, sysex=None, voices=64, frames=None, groups=2,
          backend="null", window=512, chunk=1 << 16, max_frames=RATE * 600, **kw):
    """Render with ``engine``; returns (per-window snapshots, running stats, warnings, audio)."""
    s = Synth(backend=backend, alloc_engine=engine, effects=False, max_window_ticks=window, **kw)
    s.download(bank)
    s.open({"sample_rate": RATE, "voices": voices, "channel_groups": groups})
    ctl = s.control
    assert ctl.compiled == (engine == "auto")
    snaps = []
    orig = ctl.prepare_window

    def wp(T, sends=False):
        w = orig(T, sends)
        al = ctl.alloc
        al.flush_silent()      # the definition's lazy ends, as its remove() does next
        n = al.n
        snaps.append((w.start, w.chin.copy(), al.vt[:n].copy(),
                      {k: al.h[k][:n].copy() for k, _ in CONTROL
                       if k not in ("changed", "dirty", "finished")},
                      {k: al.stats.get(k, 0) for k in STATS}, ctl.presets.capped_notes))
        return w

    ctl.prepare_window = wp
    if song is not None:
        s.stream(song.cursor(RATE))
        end = None
    else:
        s.play(events, sysex)
        end = frames
    out, pos = [], 0
    while True:
        if end is not None and pos >= end:
            break
        if end is None and (pos >= max_frames or (s.source_done and not s.pending_events
                                                   and not s.has_held_notes())):
            break
        n = chunk if end is None else min(chunk, end - pos)
        out.append(s.render(n))
        pos += n
    out = np.concatenate(out) if out else np.zeros((0, 2), np.float32)
    return snaps, s.running_stats(), s.preset_warnings(), out


def assert_same(a, b, what=""):
    sa, ra, wa, _ = a
    sb, rb, wb, _ = b
    assert len(sa) == len(sb), what
    for w, (x, y) in enumerate(zip(sa, sb)):
        assert x[0] == y[0]
        where = f"{what} window {w} (frame {x[0]})"
        assert np.array_equal(x[1].view(np.uint32), y[1].view(np.uint32)), f"timeline differs: {where}"
        assert len(x[2]) == len(y[2]), f"voice count differs: {where}"
        for f in VOICE_DTYPE.names:
            d = np.flatnonzero(_bits(x[2][f]) != _bits(y[2][f]))
            assert not len(d), f"voice field {f} differs at slots {d[:5]}: {where}"
        for k in x[3]:
            d = np.flatnonzero(x[3][k] != y[3][k])
            assert not len(d), f"control column {k} differs at slots {d[:5]}: {where}"
        assert x[4] == y[4] and x[5] == y[5], f"statistics differ: {where}"
    for k in STATS:
        assert ra[k] == rb[k], (what, k)
    assert wa == wb, what


def both(bank, **kw):
    a = trace(bank, "reference", **kw)
    b = trace(bank, "auto", **kw)
    assert_same(a, b, str({k: v for k, v in kw.items() if k not in ("events", "song", "sysex")}))
    return a, b


# ---------------------------------------------------------------------------- hand-made songs
def _channel_song(seed=3, n=900, length=RATE * 6):
    """Notes on 4 channels (drums on 9 for exclusive classes) with every channel message the
    engine applies: pedals, sostenuto, sound/notes off, reset controllers, RPN bend range,
    program and bank changes (some to presets no bank has), pitch bend, pressures, volume."""
    rng = np.random.default_rng(seed)
    rows = []
    t = np.sort(rng.integers(0, length - RATE, n))
    for i in range(n):
        ch = int(rng.choice([0, 1, 2, 9]))
        key = int(rng.choice([42, 44, 46, 36, 38])) if ch == 9 else int(rng.integers(40, 80))
        rows.append((int(t[i]), ch, 0x90, key, int(rng.integers(1, 127))))
        off = int(t[i]) + int(rng.integers(0, 30000))
        rows.append((off, ch, int(rng.choice([0x80, 0x90])), key, 0))
    msgs = [(0xB0, 64, 127), (0xB0, 64, 0), (0xB0, 66, 127), (0xB0, 66, 0), (0xB0, 120, 0),
            (0xB0, 121, 0), (0xB0, 123, 0), (0xB0, 7, 60), (0xB0, 11, 90), (0xB0, 10, 20),
            (0xB0, 1, 100), (0xB0, 91, 10), (0xB0, 93, 70), (0xE0, 0, 90), (0xD0, 80, 0),
            (0xA0, 60, 50), (0xC0, 24, 0), (0xC0, 119, 0), (0xB0, 0, 5), (0xB0, 32, 3),
            (0xB0, 101, 0), (0xB0, 100, 0), (0xB0, 6, 12), (0xB0, 38, 50), (0xB0, 100, 1),
            (0xB0, 6, 70), (0xB0, 99, 1), (0xB0, 6, 3), (0xB0, 124, 0), (0xB0, 0, 0),
            (0xC0, 0, 0), (0xB0, 64, 100)]
    for k in range(160):
        st, d1, d2 = msgs[int(rng.integers(len(msgs)))]
        rows.append((int(rng.integers(0, length)), int(rng.choice([0, 1, 2, 9])), st, d1, d2))
    rows.sort(key=lambda r: r[0])
    return event_array(rows)


def test_channel_messages_pedals_and_presets(builtin):
    e = _channel_song()
    for voices in (8, 40, 100_000):
        a, b = both(builtin, events=e, voices=voices, frames=RATE * 7)
    assert a[1]["notes"] > 500 and a[2], "the song plays notes and misses presets"


@pytest.mark.slow
def test_note_options_and_window_sizes(builtin):
    e = _channel_song(seed=9)
    for kw in ({"min_velocity": 40}, {"max_key_voices": 1}, {"max_key_voices": 2, "voices": 12},
               {"max_note_s": 0.05}, {"max_note_s": 0.3, "min_velocity": 20, "max_key_voices": 3},
               {"window": 4, "chunk": 256}, {"window": 37, "chunk": 1000}):
        kw = dict(kw)
        voices = kw.pop("voices", 24)
        both(builtin, events=e, voices=voices, frames=RATE * 7, **kw)


def test_sysex_resets_and_master_settings(builtin):
    e = _channel_song(seed=4, n=400)
    sx = [bytes([0xF0, 0x41, 0x10, 0x42, 0x12, 0x40, 0x00, 0x7F, 0x00, 0x41, 0xF7]),   # GS reset
          bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7]),                                 # GM on
          bytes([0xF0, 0x7F, 0x7F, 0x04, 0x01, 0x00, 0x40, 0xF7]),                     # master volume
          bytes([0xF0, 0x7F, 0x7F, 0x04, 0x03, 0x00, 0x50, 0xF7]),                     # master fine
          bytes([0xF0, 0x41, 0x10, 0x42, 0x12, 0x40, 0x12, 0x15, 0x01, 0x00, 0xF7]),   # drum part
          bytes([0xF0, 0x41, 0x10, 0x42, 0x12, 0x40, 0x01, 0x33, 0x20, 0x00, 0xF7])]   # reverb level
    rows = event_array([(RATE * k // 2 + 17 * k, 0, 0xF0, 0, 0) for k in range(1, 12)])
    rows["sysex"] = np.arange(11) % len(sx)
    ev = np.concatenate([e, rows])
    ev = ev[np.argsort(ev["time"], kind="stable")]
    both(builtin, events=ev, sysex=sx, voices=30, frames=RATE * 7)


def test_miss_log_overflow(builtin, monkeypatch):
    """More preset changes with notes between them in one window than the engine's miss log
    holds: it hands the log over and goes on, and the warnings count every note."""
    monkeypatch.setattr(control_engine, "MLOG_CAP", 2)
    rows = []
    for k in range(40):
        rows += [(k * 300, 0, 0xC0, 100 + k % 9, 0), (k * 300 + 5, 0, 0x90, 60, 90),
                 (k * 300 + 50, 0, 0x80, 60, 0), (k * 300 + 60, 0, 0xB0, 0, k % 3)]
    a, b = both(builtin, events=event_array(rows), voices=16, frames=RATE)
    assert sum(int(w.split(": ")[-1].split()[0]) for w in a[2]) >= 1


# ---------------------------------------------------------------------------- files
def _groups(song):
    return max(2, int(getattr(song, "channel_groups", 2) or 2))


def _midi_files():
    files = sorted(glob.glob(os.path.join(TESTDATA, "*", "*.mid")))
    return [f for f in files if "Bad" not in os.path.basename(f)]


@pytest.mark.slow
def test_conformance_files(builtin):
    """Every conformance file that loads, at a small limit (stealing) and a large one."""
    files = _midi_files()
    if not files:
        pytest.skip("../shared/testdata is not beside the checkout")
    done = 0
    for f in files:
        try:
            song = smf.load_smf(f)
        except Exception:
            continue                      # the broken-file cases: the loader refuses them
        for voices in (6, 4096):
            both(builtin, song=song, voices=voices, groups=_groups(song))
        done += 1
    assert done >= 60


@pytest.mark.slow
def test_real_bank_files(timgm):
    for name in ("sonivox/ants.mid", "sonivox/Leadsol.mid", "jazz-soft/test-all-gm-percussion.mid"):
        path = os.path.join(TESTDATA, name)
        if not os.path.exists(path):
            pytest.skip("../shared/testdata is not beside the checkout")
        for voices in (10, 256):
            both(timgm, song=smf.load_smf(path), voices=voices)


@pytest.mark.slow
def test_fuzzed_files(builtin, tmp_path):
    """Mutants of the fuzz seeds (tests/system/test_fuzz.py) that still load."""
    from fuzzing import mutate, seeds
    rng = np.random.default_rng(21)
    done = 0
    for i in range(60):
        seed = seeds("midi")[i % len(seeds("midi"))]
        data, _ = mutate(seed, rng)
        p = tmp_path / f"m{i}.mid"
        p.write_bytes(data)
        try:
            song = smf.load_smf(str(p))
        except Exception:
            continue
        both(builtin, song=song, voices=12, groups=_groups(song), max_frames=RATE * 60)
        done += 1
    assert done >= 10


@pytest.mark.parametrize("voices", [64, 700, 1_000_000])
def test_dense_black_midi(builtin, tmp_path, voices):
    path = str(tmp_path / "b.mid")
    write_black_midi(path, 30_000, tracks=16, density=20_000)
    a, b = both(builtin, song=smf.load_smf(path), voices=voices)
    assert a[1]["notes"] == 30_000
    if voices == 64:
        assert a[1]["stolen_voices"] > 10_000


def test_audio_equal_on_the_native_backend(timgm, tmp_path):
    """A real render: the same audio bits with the engine as with the definition."""
    path = str(tmp_path / "b.mid")
    write_black_midi(path, 4000, tracks=8, density=4000)
    a, b = both(timgm, song=smf.load_smf(path), voices=96, backend="native")
    assert np.array_equal(a[3].view(np.uint32), b[3].view(np.uint32))
    assert np.max(np.abs(a[3])) > 0.01


def test_engine_is_the_default_and_named_engines(builtin):
    s = Synth(backend="null")
    s.open()
    assert s.control.compiled
    for eng in ("reference", "sequential"):
        s = Synth(backend="null", alloc_engine=eng)
        s.open()
        assert not s.control.compiled


def test_an_override_is_never_bypassed(builtin):
    """A control path subclass overriding a channel handler gets it called (the dispatch looks
    it up on the instance) and keeps the Python path (the engine would apply the message in
    C); a Synth subclass defining a control path method is refused (it would never run)."""
    seen = []

    class Spy(ControlPath):
        def _on_program(self, c, d1, d2, t):
            seen.append((c, d1))
            super()._on_program(c, d1, d2, t)

    class SpySynth(Synth):
        control_type = Spy

    s = SpySynth(backend="null")
    s.download(builtin)
    s.open()
    assert isinstance(s.control, Spy) and not s.control.compiled
    s.play(event_array([(10, 3, 0xC0, 33, 0), (20, 3, 0x90, 60, 100)]))
    s.render(4096)
    assert seen == [(3, 33)]
    with pytest.raises(TypeError, match="_on_program"):
        class Stale(Synth):
            def _on_program(self, c, d1, d2, t):
                pass


def test_many_songs_group(timgm, tmp_path):
    """The engine's group mode against EnsembleControl's Python definition: the same audio bits
    and per-song figures for songs of mixed lengths, SysEx in one song, and songs that leave
    the group (a dense one at a small limit)."""
    from gpusynth.ensemble import Ensemble
    from gpusynth.ensemble_control import EnsembleSynth
    from gm_songs import song
    g = EnsembleSynth(backend="null")
    g.setup([2, 2], 64)
    g.open()
    assert g.control.compiled            # the group runs in the engine's group mode by default
    gs_reset = b"\xF0\x41\x10\x42\x12\x40\x00\x7F\x00\x41\xF7"
    songs = [song(31, seconds=1.5, extra=[(480, gs_reset)]), song(32, seconds=3.0, channels=3),
             song(33, seconds=0.7, channels=2)]
    path = str(tmp_path / "dense.mid")
    write_black_midi(path, 3000, tracks=8, density=3000)
    songs.append(smf.load_smf(path))
    for voices in (48, 512):
        res = []
        for eng in ("reference", "auto"):
            ens = Ensemble(timgm, backend="native", voices=voices, alloc_engine=eng)
            outs = ens.render_many(songs)
            res.append((outs, ens.stats))
        (a, sa), (b, sb) = res
        for x, y in zip(a, b):
            assert x.tobytes() == y.tobytes()
        keys = ("notes", "peak_voices", "stolen_voices", "skipped_notes", "lost_notes")
        for p, q in zip(sa["per_song"], sb["per_song"]):
            assert {k: p.get(k) for k in keys} == {k: q.get(k) for k in keys}
        if voices == 48:
            assert any(p.get("solo") for p in sa["per_song"]) or sa.get("solo", 0) > 0


@pytest.mark.parametrize("backend", ["native", pytest.param("numpy", marks=pytest.mark.slow)])
def test_overlapped_windows_same_bits(timgm, tmp_path, backend):
    """Each window's events applied while the backend renders the window before: the same
    audio bits and figures as one window after the other (dense stealing, a SysEx reverb
    change mid-song, effects on, windows of 8 ticks so that every call overlaps many)."""
    path = str(tmp_path / "b.mid")
    write_black_midi(path, 3000, tracks=8, density=3000)
    song = smf.load_smf(path)
    rev = event_array([(RATE // 3, 0, 0xF0, 0, 0)])
    rev["sysex"] = 0
    sx = [bytes([0xF0, 0x41, 0x10, 0x42, 0x12, 0x40, 0x01, 0x30, 0x04, 0x0B, 0xF7])]
    res = []
    for overlap in (False, True):
        s = Synth(backend=backend, max_window_ticks=8, overlap=overlap)
        s.download(timgm)
        s.open({"voices": 40})
        s.stream(song.cursor(48000))
        s.play(rev, sx)
        out = np.concatenate([s.render(8192) for _ in range(20)])
        res.append((out, s.running_stats()))
    assert res[0][0].tobytes() == res[1][0].tobytes()
    assert np.max(np.abs(res[0][0])) > 0.01
    for k in STATS:
        assert res[0][1][k] == res[1][1][k]
    assert res[0][1]["stolen_voices"] > 100
