"""`gpusynth analyze` (gpusynth/analyze.py) and the null backend: the control path alone gives
the figures of a render with the same options, exactly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpusynth.smf import write_smf, tempo_meta, load_smf

ROOT = Path(__file__).resolve().parents[2]
TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
# TimGM6mb when it is installed (scripts/install-deps.sh), else the built-in GM bank
BANK = ["--bank", TIMGM] if os.path.exists(TIMGM) else []
# the figures compared: the same keys and meanings as render's --stats-json
SAME = ("notes", "peak_voices", "stolen_voices", "lost_notes", "skipped_notes", "voices_limit",
        "sample_rate")


def _render_backend():
    try:
        from gpusynth.backend.select import check_backend
        if check_backend("native")[0]:
            return "native"
    except Exception:
        pass
    return "numpy"


RENDER_BACKEND = _render_backend()


def run(*args):
    return subprocess.run([sys.executable, "-m", "gpusynth", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def analyze(path, *opts):
    r = run("analyze", path, *BANK, "--json", *opts)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def render_stats(tmp_path, path, *opts, effects=True, bank=BANK):
    out, js = tmp_path / "o.wav", tmp_path / "o.json"
    r = run("render", path, "-o", out, *bank, "--stats-json", js, "-q", "--backend",
            RENDER_BACKEND, *opts, *([] if effects else ["--no-effects"]))
    assert r.returncode == 0, r.stderr
    return json.loads(js.read_text())


def check_series(a):
    """Properties every analysis has."""
    per_s = a["notes_per_second"]
    assert sum(per_s) == a["notes"]
    assert a["notes_per_s_peak"] == max(per_s, default=0)
    assert len(a["voices_per_second"]) == len(per_s)
    assert max(a["voices_per_second"], default=0) <= a["voices_limit"]
    assert max(a["voices_per_second"], default=0) <= a["peak_voices"]
    assert a["control_notes_per_s"] == pytest.approx(a["notes"] / a["control_s"])
    assert a["notes"] + a["skipped_notes"] <= a["file_notes"]


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """A dense generated black-MIDI file: 20,000 notes in 2 s, 8 tracks."""
    from gpusynth.blackgen import write_black_midi
    p = tmp_path_factory.mktemp("black") / "dense.mid"
    write_black_midi(str(p), 20_000, tracks=8, density=10_000)
    return p


@pytest.mark.parametrize("opts", [(), ("--voices", "12")], ids=["default", "voices12"])
def test_equals_render_conformance_file(tmp_path, testdata, opts):
    mid = testdata / "midi" / "sonivox" / "ants.mid"
    st = render_stats(tmp_path, mid, *opts)            # effects on: they decide no note
    a = analyze(mid, *opts, "--backend", RENDER_BACKEND)
    assert {k: a[k] for k in SAME} == {k: st[k] for k in SAME}
    assert a["notes"] == 372 and a["tracks"] == 1 and a["file_notes"] == 372
    if opts:
        assert a["stolen_voices"] > 0 and a["peak_voices"] == 12
    check_series(a)
    # the song's length from the file; render's audio adds the release tail after it
    assert a["duration_s"] == pytest.approx(load_smf(str(mid)).duration_s)
    assert a["duration_s"] <= st["duration_s"]


@pytest.mark.parametrize("opts", [
    ("--voices", "64"),
    ("--voices", "100", "--min-velocity", "60", "--key-voices", "2", "--max-note-length", "0.2"),
    pytest.param(("--voices", "3000", "--key-voices", "1"), marks=pytest.mark.slow),
], ids=["voices64", "all-limits", "key-voices"])
def test_equals_render_dense_black_midi(tmp_path, dense, opts):
    st = render_stats(tmp_path, dense, *opts, effects=False)
    a = analyze(dense, *opts)
    assert {k: a[k] for k in SAME} == {k: st[k] for k in SAME}
    assert a["stolen_voices"] > 0                       # the limits are reached
    if "--min-velocity" in opts:
        assert a["skipped_notes"] > 0 and a["min_velocity"] == 60
        assert a["key_voices"] == 2 and a["max_note_length"] == 0.2
    check_series(a)
    assert a["tracks"] == 9 and a["file_notes"] == 20_000


def test_few_notes_counted_exactly(tmp_path):
    """Four notes at known times, one too soft for --min-velocity, one tempo change."""
    ppq = 480                                   # 120 bpm: 960 ticks a second, then 240 bpm
    tr0 = [(0, tempo_meta(500_000)), (1920, tempo_meta(250_000))]
    tr1 = [(0, b"\xc0\x00"),
           (0, b"\x90\x3c\x64"), (240, b"\x80\x3c\x00"),        # 0.00 s
           (480, b"\x90\x40\x64"), (720, b"\x90\x40\x00"),      # 0.50 s (off as velocity 0)
           (600, b"\x90\x43\x1e"), (700, b"\x80\x43\x00"),      # 0.625 s, velocity 30
           (2400, b"\x90\x48\x64"), (2640, b"\x80\x48\x00")]    # 2 s + 480 ticks at 240 bpm
    mid = tmp_path / "few.mid"
    write_smf(mid, [tr0, tr1], ppq=ppq)
    a = analyze(mid)
    assert a["notes"] == 4 and a["file_notes"] == 4 and a["skipped_notes"] == 0
    assert a["notes_per_second"] == [3, 0, 1]
    assert a["notes_per_s_peak"] == 3
    assert a["tracks"] == 2 and a["format"] == 1
    assert a["tempo_changes"] == 1
    assert a["tempo_bpm_min"] == pytest.approx(120.0) and a["tempo_bpm_max"] == pytest.approx(240.0)
    assert a["duration_s"] == pytest.approx(2.0 + 720 / 1920)     # the last note-off
    assert a["stolen_voices"] == 0 and a["lost_notes"] == 0
    b = analyze(mid, "--min-velocity", "40")
    assert b["notes"] == 3 and b["skipped_notes"] == 1
    assert b["notes_per_second"] == [2, 0, 1]
    check_series(a)
    check_series(b)


def test_notes_of_channels_without_a_preset_are_not_counted(tmp_path, testdata):
    """Leadsol.dls has one instrument (bank MSB 121, program 0): channel 1 selects it, channel
    2 asks for bank 0 and stays silent. The series counts the played notes only."""
    tr = [(0, b"\xb0\x00\x79"), (0, b"\xc0\x00"), (0, b"\xc1\x00")]
    for i in range(6):                                  # 0, 0.5, ... 2.5 s
        for ch, key in ((0, 60), (1, 64)):
            tr += [(i * 480, bytes([0x90 | ch, key, 100])), (i * 480 + 100, bytes([0x80 | ch, key, 0]))]
    mid = tmp_path / "half.mid"
    write_smf(mid, [sorted(tr, key=lambda e: e[0])], ppq=480)
    dls = ["--bank", testdata / "dls" / "Leadsol.dls"]
    r = run("analyze", mid, *dls, "--json")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["notes"] == 6 and a["file_notes"] == 12
    assert a["notes_per_second"] == [2, 2, 2]
    assert any("no program 0" in w for w in a["warnings"])
    st = render_stats(tmp_path, mid, bank=dls)
    assert {k: a[k] for k in SAME} == {k: st[k] for k in SAME}


def test_apportion():
    from gpusynth.analyze import _apportion
    assert _apportion(6, np.array([4, 4, 4])).tolist() == [2, 2, 2]
    assert _apportion(5, np.array([1, 3])).sum() == 5
    assert _apportion(0, np.array([3, 1])).tolist() == [0, 0]
    assert _apportion(3, np.array([0, 0])).tolist() == [3, 0]


def test_human_table(tmp_path, testdata):
    r = run("analyze", testdata / "midi" / "sonivox" / "ants.mid", "--voices", "8")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert 5 <= len(lines) <= 12
    text = r.stdout
    assert "372" in text and "stolen" in text and "notes/s" in text and "control" in text


@pytest.mark.parametrize("args", [
    ("{td}/midi/jazz-soft/test-not-a-midi-file.mid",),
    ("{td}/midi/jazz-soft/test-empty-file.mid",),
    ("{td}/midi/nfroidure/MIDIBadHeaderChunk.mid",),
    ("{tmp}/missing.mid",),
    ("{tmp}",),
    ("{td}/midi/sonivox/ants.mid", "--voices", "0"),
    ("{td}/midi/sonivox/ants.mid", "--min-velocity", "200"),
    ("{td}/midi/sonivox/ants.mid", "--bank", "{td}/midi/sonivox/ants.mid"),
], ids=["not-midi", "empty", "bad-header", "missing", "directory", "voices0", "velocity",
        "bad-bank"])
def test_bad_input_one_line_exit_1(tmp_path, testdata, args):
    r = run("analyze", *(x.format(td=testdata, tmp=tmp_path) for x in args))
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpusynth: error:"), r.stderr


def test_plot_missing_matplotlib_one_line(tmp_path, testdata):
    code = ("import sys; sys.modules['matplotlib'] = None; from gpusynth.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "analyze",
                        str(testdata / "midi" / "sonivox" / "ants.mid"), "--plot",
                        str(tmp_path / "p.png")], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "matplotlib" in lines[0]
    assert not (tmp_path / "p.png").exists()


def test_plot_draws_png(tmp_path, dense):
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    a = analyze(dense, "--voices", "64", "--plot", png)
    assert a["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ the null backend

def test_null_backend_renders_silence_and_finishes_every_slot():
    from gpusynth.backend import create_backend, BACKENDS
    from gpusynth.backend.base import Backend
    be = create_backend("null", 48000, 16, "cubic")
    assert isinstance(be, Backend) and be.name == "null"
    chin = np.zeros((7, 8, 16), np.float32)
    out, fin = be.render(5, 0, 8, chin, sends=False)
    assert out.shape == (8 * 64, 2) and out.dtype == np.float32 and not out.any()
    assert fin.tolist() == [0, 1, 2, 3, 4]
    out, fin = be.render(0, 512, 4, chin, sends=True)
    assert out.shape == (4 * 64, 4) and len(fin) == 0
    assert "null" not in BACKENDS                     # renders nothing: never a render backend


def test_null_backend_never_chosen_by_auto(monkeypatch):
    from gpusynth.backend.select import resolve_backend, BackendUnavailable
    assert resolve_backend("auto")[0] != "null"
    monkeypatch.setenv("GPUSYNTH_BACKEND", "null")
    with pytest.raises(BackendUnavailable):
        resolve_backend(None)


def test_api_matches_render_song_in_process(dense):
    """analyze_song against render_song (numpy, the reference backend) on a short stretch."""
    from gpusynth.analyze import analyze_song
    from gpusynth.rendering import render_song
    from gpusynth.smf import Song
    song = load_smf(str(dense))
    ev = song.events(48000)
    ev = ev[ev["time"] < 24000]                     # the first half second: 5,000 notes
    sec = ev["time"] / 48000.0
    small = Song(1, 1, 480, seconds=sec, chan=ev["chan"], status=ev["status"],
                 data1=ev["data1"], data2=ev["data2"], n_notes=int(
                     ((ev["status"] == 0x90) & (ev["data2"] > 0)).sum()),
                 duration_s=float(sec.max()), channel_groups=1)
    _, st = render_song(small, backend=RENDER_BACKEND, voices=48, effects=False, chunk=16384)
    a = analyze_song(small, voices=48)
    assert {k: a[k] for k in SAME} == {k: st[k] for k in SAME}
    assert a["stolen_voices"] > 0
    check_series(a)
