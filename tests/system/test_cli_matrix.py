"""What a user meets first (`gpusynth render`): bad arguments and inputs give one line before
any work, silence is explained, every output format round-trips, stdout streaming, stacked
banks, FluidSynth's spellings, interrupted renders never leave a half file under the name."""
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gpusynth.smf import write_smf

ROOT = Path(__file__).resolve().parents[2]
TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
sf = pytest.importorskip("soundfile")


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "gpusynth", *map(str, args)], cwd=ROOT,
                          capture_output=True, timeout=timeout)


def one_line_error(r, *needles):
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("gpusynth: error: "), err
    for n in needles:
        assert n in err, err
    return err


def sine_sf2(path):
    """A bank with one preset (bank 0, program 0): a looped sine on every key."""
    from gpusynth.banks import sf2 as G
    from sf2_writer import Inst, Pre, Sample, Zone, build_sf2, sine_pcm
    data = build_sf2([Sample("s", sine_pcm(1000), loop=(100, 900), pitch=69)],
                     [Inst("I", [Zone([(G.SAMPLE_MODES, 1), (G.SAMPLE_ID, 0)])])],
                     [Pre("P", program=0, bank=0, zones=[Zone([(G.INSTRUMENT, 0)])])])
    Path(path).write_bytes(data)
    return path


def song(tmp_path, program=0, notes=8, name="s.mid", chan=0, bank_msb=None):
    p = tmp_path / name
    tr = [(0, bytes([0xB0 | chan, 0, bank_msb]))] if bank_msb is not None else []
    tr.append((0, bytes([0xC0 | chan, program])))
    for i in range(notes):
        tr += [(i * 240, bytes([0x90 | chan, 60 + i, 100])), (i * 240 + 200, bytes([0x80 | chan, 60 + i, 0]))]
    write_smf(p, [tr], ppq=480)
    return p


@pytest.mark.parametrize("args,needles", [
    (["-g", "nan"], ["--gain nan"]),
    (["-g", "100"], ["--gain 100", "0..10"]),
    (["--tail-cap", "-1"], ["--tail-cap -1"]),
    (["-r", "1000"], ["--rate 1000"]),
    (["--voices", "0"], ["--voices 0"]),
    (["--min-velocity", "200"], ["--min-velocity 200"]),
    (["-o", "synth.bogus=1"], ["unknown setting 'synth.bogus'"]),
    (["-o", "synth.gain=x"], ["not a number"]),
])
def test_bad_arguments_fail_before_any_work(tmp_path, args, needles):
    out = tmp_path / "o.wav"
    r = cli("render", song(tmp_path), "-o", out, "--backend", "native", *args)
    one_line_error(r, *needles)
    assert not out.exists()


def test_bad_outputs_fail_before_rendering(tmp_path):
    mid = song(tmp_path)
    one_line_error(cli("render", mid, "-o", tmp_path / "x.mp3"), "unknown output format")
    one_line_error(cli("render", mid, "-o", tmp_path / "no" / "x.wav"), "does not exist")
    one_line_error(cli("render", mid, "-o", tmp_path), "is a directory")
    one_line_error(cli("render", mid, "-o", tmp_path / "x.wav", "--stats-json",
                       tmp_path / "no" / "s.json"), "cannot write the stats")
    one_line_error(cli("render", mid, "-o", tmp_path / "x.wav", "-o", tmp_path / "y.wav"),
                   "several output files")
    assert not list(tmp_path.glob("*.wav")) and not list(tmp_path.glob(".*"))


def test_missing_preset_is_explained_and_strict_fails(tmp_path):
    # TimGM6mb has no bank 5: the notes play with the GM program (fallback, said);
    # a bank without program 80 (one-preset SF2 from the test writer) leaves them silent
    one = tmp_path / "one.sf2"
    sine_sf2(one)                                     # a single preset: bank 0 program 0
    mid = song(tmp_path, program=80)
    r = cli("render", mid, "-o", tmp_path / "a.wav", "--bank", one, "--backend", "native")
    assert r.returncode == 0
    err = r.stderr.decode()
    assert "warning: channel 1" in err and "no program 80 in bank 0:0: 8 note(s) silent" in err
    r = cli("render", mid, "-o", tmp_path / "b.wav", "--bank", one, "--backend", "native",
            "--strict")
    one_line_error(r, "no program 80", "--strict")
    assert not (tmp_path / "b.wav").exists()
    mid5 = song(tmp_path, program=0, name="b5.mid", bank_msb=5)
    r = cli("render", mid5, "-o", tmp_path / "c.wav", "--bank", TIMGM, "--backend", "native")
    assert r.returncode == 0 and "played with bank 0:0 program 0" in r.stderr.decode()


def test_truncated_track_is_reported(tmp_path, testdata):
    p = testdata / "midi" / "jazz-soft" / "test-corrupt-file-missing-byte.mid"
    if not p.exists():
        pytest.skip(f"{p} missing")
    r = cli("render", p, "-o", tmp_path / "t.wav", "--backend", "native")
    assert r.returncode == 0 and "warning: " in r.stderr.decode()
    one_line_error(cli("render", p, "-o", tmp_path / "u.wav", "--backend", "native", "--strict"),
                   "--strict")


@pytest.mark.parametrize("ext,subtype", [(".flac", "pcm24")] + [pytest.param(*p, marks=pytest.mark.slow) for p in [
    (".wav", "pcm24"), (".w64", "pcm16"), (".aiff", "pcm16"), (".caf", "float"), (".ogg", None)]])
def test_every_format_round_trips_through_soundfile(tmp_path, ext, subtype):
    mid = song(tmp_path)
    ref = tmp_path / "ref.wav"
    assert cli("render", mid, "-o", ref, "--backend", "native", "--float").returncode == 0
    want, _ = sf.read(str(ref), dtype="float64")
    out = tmp_path / f"o{ext}"
    args = ["--sample-format", subtype] if subtype else []
    r = cli("render", mid, "-o", out, "--backend", "native", *args)
    assert r.returncode == 0, r.stderr
    got, rate = sf.read(str(out), dtype="float64")
    assert rate == 48000 and got.shape == want.shape
    if ext == ".ogg":                                   # lossy: the same sound, not the samples
        assert np.corrcoef(got[:, 0], want[:, 0])[0, 1] > 0.99
    else:
        tol = {"pcm16": 2 / 32768, "pcm24": 2 / 8388608, "float": 0}[subtype]
        assert np.max(np.abs(got - want)) <= tol + 1e-9


@pytest.mark.slow
def test_stdout_streams_wav_and_keeps_text_off_it(tmp_path):
    mid = song(tmp_path)
    r = cli("render", mid, "-o", "-", "--backend", "native", "--float")
    assert r.returncode == 0
    got, rate = sf.read(io.BytesIO(r.stdout), dtype="float32")
    ref = tmp_path / "r.wav"
    cli("render", mid, "-o", ref, "--backend", "native", "--float")
    want, _ = sf.read(str(ref), dtype="float32")
    assert np.array_equal(got, want)
    assert "s of audio" in r.stderr.decode()             # the summary went to stderr


def test_stacked_banks_and_fluidsynth_spellings(tmp_path):
    """A later --bank is searched first (FluidSynth's soundfont stack); -F is the output,
    -o synth.gain=, -g and -r are FluidSynth's."""
    one = tmp_path / "one.sf2"
    sine_sf2(one)
    mid = song(tmp_path, program=0)
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    assert cli("render", mid, "-F", a, "--bank", TIMGM, "--bank", one, "-r", "44100",
               "-o", "synth.gain=0.25", "--float", "--backend", "native").returncode == 0
    assert cli("render", mid, "-o", b, "--bank", one, "-r", "44100", "-g", "0.25", "--float",
               "--backend", "native").returncode == 0
    x, ra = sf.read(str(a), dtype="float32")
    y, _ = sf.read(str(b), dtype="float32")
    assert ra == 44100 and np.array_equal(x, y)          # the sine bank won over TimGM6mb
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.decode().startswith("gpusynth ")
    assert b"default 48000" in cli("render", "--help").stdout


@pytest.mark.slow
def test_clipping_is_counted_and_reported(tmp_path):
    mid = song(tmp_path)
    js = tmp_path / "s.json"
    r = cli("render", mid, "-o", tmp_path / "c.wav", "-g", "10", "--backend", "native",
            "--stats-json", js)
    assert r.returncode == 0
    st = json.loads(js.read_text())
    assert st["clipped_samples"] > 0
    assert f"{st['clipped_samples']:,} samples clipped" in r.stderr.decode()
    r = cli("render", mid, "-o", tmp_path / "d.wav", "-g", "0.1", "--backend", "native",
            "--stats-json", js)
    assert json.loads(js.read_text())["clipped_samples"] == 0 and b"clipped" not in r.stderr


def test_interrupted_render_never_leaves_a_half_file_under_the_name(tmp_path):
    from gpusynth.blackgen import write_black_midi
    mid = tmp_path / "long.mid"
    write_black_midi(mid, 400_000, tracks=8, density=4000)       # ~100 s of dense audio
    out = tmp_path / "o.wav"
    # SIGINT back to its default in the child: a test run started in the background by a
    # shell without job control inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt (the render would simply finish)
    p = subprocess.Popen([sys.executable, "-m", "gpusynth", "render", mid, "-o", out,
                          "--backend", "native"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # interrupt once audio is being written (not after a fixed delay: on a loaded machine the
    # first blocks can take longer than that)
    deadline = time.time() + 120

    def written():
        n = 0
        for f in tmp_path.glob(".o.wav.*.part"):
            try:
                n += f.stat().st_size
            except OSError:            # renamed in between
                pass
        return n
    while time.time() < deadline and written() < 200_000 and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, "the render ended before it could be interrupted"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert not out.exists()
    partial = tmp_path / "o.partial.wav"
    assert partial.exists() and b"kept as" in err
    data, _ = sf.read(str(partial))
    assert len(data) > 0 and not list(tmp_path.glob(".o.wav.*"))


@pytest.mark.realtime
def test_play_with_a_bad_device_is_one_line():
    r = cli("play", "--demo", "--device", "no-such-device-xyz", timeout=120)
    one_line_error(r, "audio output")


@pytest.mark.slow
def test_fluidsynth_effect_switches(tmp_path):
    """-R 0 -C 0 (FluidSynth's spelling) renders the dry mix, the same bytes as --no-effects;
    the default (effects on) differs from it."""
    mid = song(tmp_path)
    a, b, c = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    for out, args in ((a, ["-R", "0", "-C", "0"]), (b, ["--no-effects"]), (c, [])):
        assert cli("render", mid, "-o", out, "--backend", "native", "--float", *args).returncode == 0
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    r = cli("render", mid, "-o", a, "-R", "maybe")
    assert r.returncode == 2 and b"expected 0|1" in r.stderr
