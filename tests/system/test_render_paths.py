"""One render path: ``gpusynth.render``, ``Renderer`` (any chunk), ``Renderer.render_many``
(the ensemble), ``render_file`` and ``gpusynth render --float`` end every song by the same
rule on the same grid and give the same frames -- length and bits -- over the MIDI
conformance files."""
import pytest
import soundfile as sf

import gpusynth
from conftest import conformance_songs
from gpusynth.api import Renderer, load_bank_any, load_midi
from gpusynth.cli import main as cli_main
from gpusynth.rendering import END_STEP, render_file

FAST = "native" if "native" in __import__("conftest").backends() else "numpy"
OPTS = dict(backend=FAST, voices=256, tail_cap_s=2.0)


def _songs(testdata, limit=None):
    out = conformance_songs(testdata)
    if limit:
        out = out[::max(1, len(out) // limit)][:limit]
    return out


def _cli(path, out):
    rc = cli_main(["render", str(path), "-o", str(out), "--float", "-q", "--backend", FAST,
                   "--voices", "256", "--tail-cap", "2"])
    assert rc == 0
    a, rate = sf.read(str(out), dtype="float32", always_2d=True)
    assert rate == 48000
    return a


def _check(testdata, tmp_path, limit):
    bank = load_bank_any(None)
    songs = _songs(testdata, limit)
    with Renderer(bank, **OPTS) as r, Renderer(bank, chunk=5000, **OPTS) as r_odd:
        many = r.render_many([s for _, s in songs])
        for (f, s), ens in zip(songs, many):
            ref = gpusynth.render(s, bank, **OPTS)
            end = int(round(s.duration_s * 48000))
            assert len(ref) % END_STEP == 0 and len(ref) >= end, f.name
            assert r.render(s).tobytes() == ref.tobytes(), f.name
            assert r_odd.render(s).tobytes() == ref.tobytes(), f.name
            assert ens.tobytes() == ref.tobytes(), f.name
            render_file(s, tmp_path / "f.wav", bank, subtype="float", **OPTS)
            a, _ = sf.read(str(tmp_path / "f.wav"), dtype="float32", always_2d=True)
            assert a.tobytes() == ref.tobytes(), f.name
            assert _cli(f, tmp_path / "c.wav").tobytes() == ref.tobytes(), f.name


def test_paths_agree_sample(testdata, tmp_path):
    """Five conformance files through every path."""
    _check(testdata, tmp_path, 5)


@pytest.mark.slow
def test_paths_agree_all(testdata, tmp_path):
    """Every conformance file of at most a minute through every path."""
    _check(testdata, tmp_path, None)


def test_chunk_does_not_move_the_end():
    """A song whose tail ends between grid points: the length is the same for chunks that
    fall on and off the grid, and it is the first grid point where the rule holds."""
    song = load_midi(_short_song())
    lens = set()
    for chunk in (256, 4096, 16384, 32768, 100000):
        with Renderer(None, chunk=chunk, backend=FAST, voices=64) as r:
            lens.add(len(r.render(song)))
    assert len(lens) == 1
    n = lens.pop()
    assert n % END_STEP == 0


def _short_song() -> bytes:
    """One piano note of 416 ticks, 0.43 s (format 0, 480 ticks per quarter at 120 bpm)."""
    trk = bytes([0x00, 0x90, 60, 100, 0x83, 0x20, 0x80, 60, 0,
                 0x00, 0xFF, 0x2F, 0x00])
    return (b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
            + (480).to_bytes(2, "big") + b"MTrk" + len(trk).to_bytes(4, "big") + trk)
