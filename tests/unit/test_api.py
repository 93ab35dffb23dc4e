"""gpusynth.render(...) / Renderer: inputs (path, bytes, Song, mido, write(file) objects),
measured audio (pitch, onset), equality with render_song, session reuse, stems."""
import io

import numpy as np
import pytest

import gpusynth
from gpusynth import Renderer
from gpusynth.rendering import render_song
from gpusynth.smf import load_smf, write_smf, tempo_meta

from synth_util import sine_bank

RATE = 48000
# the slow numpy reference renders the short songs only; the rest runs on native when it works
FAST = "native" if "native" in __import__("conftest").backends() else "numpy"


def _song_bytes(notes, program=0, chan=0, extra=()):
    """One-track SMF at 120 bpm, ppq 480 (a tick is 1/960 s): notes (tick, key, vel, dur)."""
    tr = [(0, tempo_meta(500000)), (0, bytes([0xC0 | chan, program]))]
    for t, k, v, d in notes:
        tr.append((t, bytes([0x90 | chan, k, v])))
        tr.append((t + d, bytes([0x80 | chan, k, 0])))
    tr += list(extra)
    return write_smf(None, [tr])


def _two_channel_bytes():
    a = [(0, bytes([0xC0, 0]))] + [(480 * i, bytes([0x90, 60 + i, 100])) for i in range(4)] + \
        [(480 * i + 400, bytes([0x80, 60 + i, 0])) for i in range(4)]
    b = [(0, bytes([0xC1, 40]))] + [(240 + 480 * i, bytes([0x91, 67, 90])) for i in range(4)] + \
        [(240 + 480 * i + 200, bytes([0x81, 67, 0])) for i in range(4)] + \
        [(960, bytes([0xC1, 56])), (0, bytes([0xB1, 10, 20]))]
    d = [(120 * i, bytes([0x99, 36 + (i % 3) * 2, 110])) for i in range(12)] + \
        [(120 * i + 60, bytes([0x89, 36 + (i % 3) * 2, 0])) for i in range(12)]
    return write_smf(None, [[(0, tempo_meta(500000)), (0, b"\xff\x03\x04Lead")] + a,
                            [(0, b"\xff\x03\x04Bass")] + b, [(0, b"\xff\x03\x05Drums")] + d])


@pytest.fixture(scope="module")
def bank():
    """The sine test bank with programs 40 and 56 added (the same region as program 0)."""
    from gpusynth.banks.model import Preset
    b = sine_bank()
    b.presets += [Preset(0, p, f"sine{p}", np.array([0], np.int32)) for p in (40, 56)]
    return b.validate()


def _peak_hz(x, rate=RATE):
    w = x * np.hanning(len(x))
    f = np.abs(np.fft.rfft(w))
    return np.argmax(f) * rate / len(x)


def test_render_pitch_and_onset(bank, backend):
    # A4 (key 69) from tick 480 (0.5 s at 120 bpm, ppq 480) for one second
    data = _song_bytes([(480, 69, 100, 960)])
    a = gpusynth.render(data, bank, backend=backend, effects=False)
    assert a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 2
    on = int(np.argmax(np.abs(a[:, 0]) > 1e-4))
    assert abs(on - RATE // 2) <= 2
    assert not np.any(a[:on - 2])
    hz = _peak_hz(a[RATE // 2 + 2000: RATE // 2 + 2000 + 32768, 0])
    assert abs(hz - 440.0) < 2.0


def test_inputs_equal_render_song(bank, tmp_path):
    backend = FAST
    data = _two_channel_bytes()
    ref, _ = render_song(load_smf(data), bank, backend=backend)
    p = tmp_path / "s.mid"
    p.write_bytes(data)
    r = Renderer(bank, backend=backend)
    for midi in (str(p), p, data, bytearray(data), load_smf(data)):
        np.testing.assert_array_equal(r.render(midi), ref)
    mido = pytest.importorskip("mido")
    np.testing.assert_array_equal(r.render(mido.MidiFile(file=io.BytesIO(data))), ref)

    class PrettyLike:                       # pretty_midi.PrettyMIDI's interface: write(file)
        def write(self, f):
            f.write(data)
    np.testing.assert_array_equal(r.render(PrettyLike()), ref)
    assert r.songs == 7 and r.stats["notes"] == 20


def test_renderer_reuse_is_stateless(bank):
    """A song rendered after another gives the same bits as rendered first (a fresh synth)."""
    a = _song_bytes([(0, 60, 100, 2000)], extra=[(0, bytes([0xB0, 7, 30])), (10, bytes([0xE0, 0, 20]))])
    b = _two_channel_bytes()
    r = Renderer(bank, backend=FAST)
    first_b = r.render(b)
    r.render(a)
    np.testing.assert_array_equal(r.render(b), first_b)


def test_bad_input_type():
    with pytest.raises(TypeError):
        gpusynth.api.load_midi(12345)


@pytest.mark.parametrize("kind", ["channel", "program", "track"])
def test_stems_sum_to_mix(bank, kind):
    backend = FAST
    data = _two_channel_bytes()
    r = Renderer(bank, backend=backend)
    mix, stems = r.render_with_stems(data, kind)
    expect = {"channel": ["ch01", "ch02", "ch10"],
              "program": ["drums", "p000", "p040", "p056"],
              "track": ["t00-Lead", "t01-Bass", "t02-Drums"]}[kind]
    assert sorted(k.split("-")[0] if kind == "program" else k for k in stems) == \
        sorted(e.split("-")[0] if kind == "program" else e for e in expect)
    total = np.zeros_like(mix)
    for name, s in stems.items():
        assert s.shape == mix.shape and s.dtype == np.float32
        assert np.max(np.abs(s)) > 1e-3, name           # every stem has its own audio
        total += s
    peak = float(np.max(np.abs(mix)))
    assert peak > 0
    # within float rounding of the mix (effects, linear, run per stem)
    assert float(np.max(np.abs(total - mix))) <= 1e-5 * peak
    if kind == "channel":
        # channel 1 plays keys 60..63 only at tick 0, 480, ... (0.5 s apart), channel 2 starts
        # at 0.25 s: the first 0.25 s of ch02 is silent, ch01 is not
        assert not np.any(stems["ch02"][:RATE // 4 - 64])
        assert np.any(stems["ch01"][:RATE // 4])


def test_stems_dry_exact(bank):
    """Without effects the stems' sum is the mix up to the float sum of the gained stems."""
    data = write_smf(None, [[
        (0, tempo_meta(500000)), (0, bytes([0x90, 60, 100])), (200, bytes([0x91, 64, 100])),
        (300, bytes([0x80, 60, 0])), (400, bytes([0x81, 64, 0]))]])
    mix, stems = Renderer(bank, backend="numpy", effects=False).render_with_stems(data, "channel")
    assert sorted(stems) == ["ch01", "ch02"]
    total = sum(stems.values())
    assert float(np.max(np.abs(total - mix))) <= 4 * np.finfo(np.float32).eps * float(np.max(np.abs(mix)))
