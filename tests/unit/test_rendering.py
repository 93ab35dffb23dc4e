"""Streaming render (Synth.stream, render_file), output formats, normalising, the black-MIDI
generator, and the float default for dense inputs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpusynth import output as gout
from gpusynth.blackgen import write_black_midi
from gpusynth.demo import demo_song
from gpusynth.events import ArrayCursor
from gpusynth.rendering import open_synth, render_file, render_song
from gpusynth.smf import load_smf

ROOT = Path(__file__).resolve().parents[2]
RATE = 48000


def cli(*args):
    return subprocess.run([sys.executable, "-m", "gpusynth", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def demo():
    return demo_song()


def _excerpt(song, seconds):
    ev = song.events(RATE)
    return ev[ev["time"] < int(seconds * RATE)], song.sysex


@pytest.mark.parametrize("backend,seconds", [("native", 20.0), pytest.param("numpy", 3.0, marks=pytest.mark.slow)])
def test_stream_equals_play_whatever_the_read_size(demo, backend, seconds):
    """Pulling events window by window (reads capped at 1, 7, 500 events: windows shortened to
    where the events are complete) renders the same bits as queueing the song up front."""
    ev, sx = _excerpt(demo, seconds)
    n = int(seconds * RATE) + 4096
    ref_s, _ = open_synth(None, backend, RATE, 64, song=demo)
    ref_s.play(ev, sx)
    ref = ref_s.render(n, 0)
    assert np.max(np.abs(ref)) > 0.05
    for cap in (1, 7, 500):
        s, _ = open_synth(None, backend, RATE, 64, song=demo)
        s.stream(ArrayCursor(ev, sx), max_events=cap)
        parts = [s.render(m, None) for m in (1000, 30000, n - 31000)]
        assert s.source_done
        assert np.array_equal(np.concatenate(parts), ref), cap


def test_array_cursor_positions():
    from gpusynth.events import event_array
    e = event_array([(10, 0, 0x90, 60, 100), (10, 0, 0x90, 62, 100), (20, 0, 0x80, 60, 0)])
    c = ArrayCursor(e)
    a, _ = c.read(15, max_events=1)
    assert len(a) == 1 and c.position == 10 and not c.done   # the other event at 10 is still out
    a, _ = c.read(15)
    assert len(a) == 1 and c.position == 15
    a, _ = c.read(100)
    assert len(a) == 1 and c.done and c.position == 100


@pytest.mark.parametrize("ext,subtype", [(".wav", "pcm16"), (".wav", "pcm24"),
                                         (".wav", "float"), (".flac", "pcm16"),
                                         (".flac", "pcm24"), (".w64", "float")])
def test_render_file_formats_hold_the_render(tmp_path, ext, subtype):
    sf = pytest.importorskip("soundfile")
    song = load_smf(_small_mid(tmp_path))
    ref, _ = render_song(song, backend="native", voices=64, chunk=16384)
    out = tmp_path / f"o{ext}"
    st = render_file(song, out, backend="native", voices=64, subtype=subtype)
    got, sr = sf.read(str(out), dtype="float64")
    assert sr == RATE and got.shape == ref.shape
    step = {"pcm16": 1 / 32768, "pcm24": 1 / 8388608, "float": 0.0}[subtype]
    # libsndfile reads integers back as k / 2^(bits-1); we wrote rint(x * (2^(bits-1) - 1))
    assert np.max(np.abs(got - ref)) <= 2 * step + 1e-7
    assert st["output_format"].startswith({"pcm16": "16-bit", "pcm24": "24-bit",
                                           "float": "32-bit float"}[subtype])


def test_normalize_second_pass_scales_to_the_target_peak(tmp_path):
    sf = pytest.importorskip("soundfile")
    song = load_smf(_small_mid(tmp_path))
    ref, _ = render_song(song, backend="native", voices=64, chunk=16384)
    out = tmp_path / "n.wav"
    st = render_file(song, out, backend="native", voices=64, subtype="float", normalize_db=-3.0)
    got, _ = sf.read(str(out), dtype="float32")
    assert got.shape == ref.shape
    assert 20 * np.log10(np.max(np.abs(got))) == pytest.approx(-3.0, abs=1e-5)
    gain = 10 ** (st["normalize_gain_db"] / 20)
    assert np.allclose(got, ref * gain, atol=2e-7)
    assert not list(tmp_path.glob(".gpusynth-*"))           # the temporary file is gone


def test_float_is_the_default_for_dense_inputs(tmp_path, monkeypatch):
    monkeypatch.setattr(gout, "FLOAT_NOTES", 10)
    song = load_smf(_small_mid(tmp_path))                    # 40 notes > 10
    st = render_file(song, tmp_path / "d.wav", backend="native", voices=64)
    assert st["float_default"] and st["output_format"] == "32-bit float WAV"
    st = render_file(song, tmp_path / "e.wav", backend="native", voices=64, subtype="pcm16")
    assert not st["float_default"] and st["output_format"] == "16-bit WAV"
    assert gout.default_subtype("x.flac", 100) == "pcm24"


def test_cli_output_errors_are_one_line(tmp_path):
    mid = _small_mid(tmp_path)
    for args, msg in ((["-o", tmp_path / "x.mp3"], "unknown output format"),
                      (["-o", tmp_path / "x.flac", "--float"], "FLAC holds integer samples"),
                      (["-o", tmp_path / "x.wav", "--float", "--sample-format", "pcm16"],
                       "conflicts")):
        r = cli("render", mid, "--backend", "native", *args)
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr


def test_cli_normalize_and_stats(tmp_path):
    sf = pytest.importorskip("soundfile")
    mid = _small_mid(tmp_path)
    out, js = tmp_path / "o.flac", tmp_path / "s.json"
    r = cli("render", mid, "-o", out, "--backend", "native", "--normalize", "-6",
            "--stats-json", js)
    assert r.returncode == 0, r.stderr
    assert "normalized to -6 dBFS" in r.stdout
    st = json.loads(js.read_text())
    got, _ = sf.read(str(out), dtype="int16")
    peak = np.max(np.abs(got.astype(np.int64)))
    assert abs(20 * np.log10(peak / 32767) + 6) < 0.01
    assert st["voices_limit"] == 4096 and "notes_per_s" in st


def test_black_midi_generator(tmp_path):
    mido = pytest.importorskip("mido")
    p = tmp_path / "b.mid"
    info = write_black_midi(p, 20_000, tracks=8, density=20_000, chunk=3000)
    assert info["notes"] == 20_000 and info["tracks"] == 9
    m = mido.MidiFile(str(p))
    assert len(m.tracks) == 9
    ons = offs = 0
    for tr in m.tracks[1:]:
        t, sounding = 0, {}
        for e in tr:
            t += e.time
            if e.type == "note_on" and e.velocity > 0:
                ons += 1
                sounding[e.note] = sounding.get(e.note, 0) + 1
            elif e.type in ("note_on", "note_off"):
                offs += 1
    assert ons == offs == 20_000
    assert 0.9 < m.length < 2.4            # 20,000 notes at 20,000 per second + note lengths
    song = load_smf(p)
    assert song.n_notes == 20_000 and not song.warnings
    # same arguments, same bytes
    write_black_midi(tmp_path / "c.mid", 20_000, tracks=8, density=20_000, chunk=3000)
    assert p.read_bytes() == (tmp_path / "c.mid").read_bytes()


def _small_mid(tmp_path):
    from gpusynth.smf import write_smf
    p = tmp_path / "s.mid"
    if not p.exists():
        tracks = [[]]
        for c in range(4):
            tr = [(0, bytes([0xC0 | c, [0, 24, 40, 56][c]]))]
            for i in range(10):
                t = i * 240 + c * 30
                tr.append((t, bytes([0x90 | c, 48 + (i * 5 + c * 7) % 30, 100])))
                tr.append((t + 200, bytes([0x80 | c, 48 + (i * 5 + c * 7) % 30, 0])))
            tracks.append(tr)
        write_smf(p, tracks, ppq=480)
    return p


def test_a_tiny_file_cannot_ask_for_days_of_audio(tmp_path):
    from gpusynth.smf import write_smf
    p = tmp_path / "long.mid"
    write_smf(p, [[(0, bytes([0x90, 60, 100])), (0x0FFFFFFF, bytes([0x80, 60, 0]))]], ppq=24)
    assert p.stat().st_size < 40
    r = cli("render", p, "-o", tmp_path / "x.wav", "--backend", "native")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "1553.4 h" in r.stderr and "--max-length" in r.stderr
    assert not (tmp_path / "x.wav").exists()
