"""`gpusynth render` end to end: WAV output, stats JSON, clear one-line errors, determinism."""
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from gpusynth.smf import write_smf

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gpusynth", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=300)


def small_song(path, notes=40, channels=4):
    tracks = [[]]
    for c in range(channels):
        tr = [(0, bytes([0xC0 | c, [0, 24, 40, 56, 73][c % 5]]))]
        for i in range(notes // channels):
            t = i * 240 + c * 30
            k = 48 + (i * 5 + c * 7) % 30
            ch = 9 if c == 3 else c
            tr.append((t, bytes([0x90 | ch, 36 + i % 12 if ch == 9 else k, 100])))
            tr.append((t + 200, bytes([0x80 | ch, 36 + i % 12 if ch == 9 else k, 0])))
        tracks.append(tr)
    write_smf(path, tracks, ppq=480)
    return path


def read_wav(path):
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, w.getnchannels())
        return data, w.getframerate()


@pytest.mark.slow
def test_render_writes_wav_and_stats(tmp_path):
    mid = small_song(tmp_path / "s.mid")
    out, js = tmp_path / "o.wav", tmp_path / "o.json"
    r = run("render", mid, "-o", out, "--stats-json", js, "--rate", "44100", "--backend", "numpy")
    assert r.returncode == 0, r.stderr
    data, rate = read_wav(out)
    assert rate == 44100 and data.shape[1] == 2
    st = json.loads(js.read_text())
    for k in ("duration_s", "wall_s", "realtime_factor", "peak_voices", "notes", "stolen_voices", "backend"):
        assert k in st
    assert st["notes"] == 40 and st["backend"] == "numpy"
    assert st["duration_s"] == pytest.approx(len(data) / rate)
    # where the time went: kernel (the backend's render call) + control (the host around it)
    assert st["windows"] >= 1 and st["kernel_s"] > 0 and st["control_s"] >= 0
    assert st["kernel_s"] + st["control_s"] <= st["wall_s"] * 1.01
    # the file ends after the last release tail decayed: the last 20 ms are below -90 dBFS
    # (16-bit: at most 1 LSB) and there is audio shortly before the end of the song
    assert np.max(np.abs(data[-int(0.02 * rate):])) <= 1
    assert "notes" in r.stdout


@pytest.mark.slow
def test_render_is_deterministic(tmp_path):
    mid = small_song(tmp_path / "s.mid")
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    assert run("render", mid, "-o", a, "-q").returncode == 0
    assert run("render", mid, "-o", b, "-q").returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_float_output(tmp_path):
    mid = small_song(tmp_path / "s.mid", notes=8)
    out = tmp_path / "f.wav"
    assert run("render", mid, "-o", out, "--float", "-q").returncode == 0
    raw = out.read_bytes()
    # RIFF, a 28-byte JUNK chunk (room for RF64's ds64), then fmt with tag 3 (IEEE float)
    assert raw[:4] == b"RIFF" and raw[12:16] == b"JUNK" and raw[48:52] == b"fmt "
    assert raw[56:58] == (3).to_bytes(2, "little")


@pytest.mark.parametrize("name", ["test-not-a-midi-file.mid", "test-empty-file.mid"])
def test_malformed_midi_gives_one_clear_line(tmp_path, testdata, name):
    r = run("render", testdata / "midi" / "jazz-soft" / name, "-o", tmp_path / "x.wav")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpusynth: error:") and name in lines[0]


def test_truncated_and_missing_and_unwritable(tmp_path):
    mid = small_song(tmp_path / "s.mid")
    trunc = tmp_path / "t.mid"
    trunc.write_bytes(mid.read_bytes()[:30])
    for args in (["render", trunc, "-o", tmp_path / "x.wav"],
                 ["render", tmp_path / "missing.mid", "-o", tmp_path / "x.wav"],
                 ["render", mid, "-o", tmp_path / "no" / "dir" / "x.wav"],
                 ["render", mid, "-o", tmp_path / "x.wav", "--bank", mid]):
        r = run(*args)
        assert r.returncode != 0, args
        assert "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_info_json():
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert "version" in info


@pytest.mark.slow
def test_builtin_bank_sixteen_channels_each_audible():
    """Every channel of a 16-channel GM phrase is audible, with the pitch of its notes."""
    from gpusynth.rendering import open_synth
    from gpusynth.events import event_array
    progs = [0, 8, 16, 24, 32, 40, 48, 56, 64, 0, 72, 80, 88, 104, 112, 11]
    for ch, prog in enumerate(progs):
        s, _ = open_synth(None, "numpy", 48000, 64)
        key = 36 if ch == 9 else 60
        s.play(event_array([(0, ch, 0xC0, prog, 0), (0, ch, 0x90, key, 100), (24000, ch, 0x80, key, 0)]))
        out = s.render(28800, 0)
        rms = float(np.sqrt(np.mean(out[:24000].astype(np.float64) ** 2)))
        assert 20 * np.log10(rms) > -45, (ch, prog, rms)
        if ch == 9:
            continue                       # drums: no pitch to check
        # the pitch of key 60: the strongest partial below 2 kHz is a harmonic of 261.63 Hz
        # and the spectrum has a partial at the fundamental itself (not a 5th or an octave down)
        x = out[2400:24000, 0].astype(np.float64) * np.hanning(21600)
        spec = np.abs(np.fft.rfft(x, 1 << 17))
        hz = np.fft.rfftfreq(1 << 17, 1 / 48000)
        band = (hz > 60) & (hz < 2000)
        f = hz[band][np.argmax(spec[band])]
        h = f / 261.63
        assert round(h) >= 1 and abs(h - round(h)) < 0.02 * round(h), (ch, prog, f)
        near = spec[np.abs(hz - 261.63) < 4].max()
        below = spec[(hz > 60) & (hz < 240)].max()
        assert near > below, (ch, prog, near, below)
