"""The ensemble's shared control path (gpusynth.ensemble_control): many songs on one control
path stay apart (SysEx, programs, pedals, controllers per song), a song that could reach its
voice limit leaves the ensemble and is rendered alone, and EnsembleSynth scopes SysEx to its
song."""
import numpy as np
import pytest

from gpusynth import Renderer
from gpusynth.api import load_bank_any
from gpusynth.ensemble import Ensemble

import conftest
from gm_songs import song

RATE = 48000
FAST = "native" if "native" in conftest.backends() else "numpy"


@pytest.fixture(scope="module")
def bank():
    return load_bank_any(None)


def test_shared_control_path_keeps_songs_apart(bank):
    """Six songs, three per ensemble synth (one control path each): SysEx (GS reset, master
    volume, GS rhythm part, XG reverb type), program changes, pedals, all-notes-off,
    all-sound-off and pitch-bend range in some songs change nothing in the others; every song
    is bit-identical to its own render and so are its note count and peak polyphony."""
    gs_reset = b"\xF0\x41\x10\x42\x12\x40\x00\x7F\x00\x41\xF7"
    master = b"\xF0\x7F\x7F\x04\x01\x00\x30\xF7"
    rhythm = b"\xF0\x41\x10\x42\x12\x40\x11\x15\x01\x19\xF7"     # part 1 plays drums
    xg_rev = b"\xF0\x43\x10\x4C\x02\x01\x00\x03\xF7"
    extras = [
        [(300, gs_reset), (400, bytes([0xB0, 7, 60]))],
        [(200, master), (600, bytes([0xC0, 40]))],
        [(100, rhythm), (900, bytes([0xB0, 123, 0]))],
        [(50, xg_rev), (700, bytes([0xB0, 64, 127])), (1500, bytes([0xB0, 64, 0]))],
        [(0, bytes([0xB0, 101, 0])), (0, bytes([0xB0, 100, 0])), (0, bytes([0xB0, 6, 12])),
         (800, bytes([0xB0, 120, 0]))],
        [],
    ]
    songs = [song(60 + i, seconds=1.0 + 0.4 * i, channels=1 + i % 3, extra=x)
             for i, x in enumerate(extras)]
    ens = Ensemble(bank, backend=FAST, voices=256)
    outs = ens.render_many(songs)
    assert ens.stats["solo"] == 0                   # all in the shared control paths
    for midi, o, st in zip(songs, outs, ens.stats["per_song"]):
        with Renderer(bank, backend=FAST, voices=256) as r:
            ref = r.render(midi)
            rs = r.stats
        assert o.tobytes() == ref.tobytes()
        assert (st["notes"], st["peak_voices"], st["windows"]) == \
            (rs["notes"], rs["peak_voices"], rs["windows"])
        assert st["notes"] > 0 and st["peak_voices"] > 0


def test_song_at_its_voice_limit_leaves_the_ensemble(bank):
    """At a voice limit of 10, the dense songs could steal: they leave the shared control
    path and are rendered alone (``stats["solo"]``), the sparse ones stay; every song is
    bit-identical to its own render, steal counts included."""
    dense = [song(70 + i, seconds=2.0, channels=3) for i in range(2)]
    sparse = [song(80 + i, seconds=2.0, channels=1, drums=False) for i in range(3)]
    songs = [dense[0], sparse[0], sparse[1], dense[1], sparse[2]]
    ens = Ensemble(bank, backend=FAST, voices=10)
    outs = ens.render_many(songs)
    assert 2 <= ens.stats["solo"] < len(songs)
    for midi, o, st in zip(songs, outs, ens.stats["per_song"]):
        with Renderer(bank, backend=FAST, voices=10) as r:
            ref = r.render(midi)
            stolen = r.stats["stolen_voices"]
        assert o.tobytes() == ref.tobytes()
        assert st["stolen_voices"] == stolen
    assert any(st["stolen_voices"] > 0 for st in ens.stats["per_song"])


def test_ensemble_synth_sysex_is_per_song(bank):
    """EnsembleSynth directly: a master-volume SysEx and a GS reset in song 0 change song 0's
    channels only."""
    from gpusynth.ensemble_control import EnsembleSynth
    from gpusynth import events as gev
    s = EnsembleSynth(backend="numpy")
    s.setup([1, 2], 64)
    s.open({"sample_rate": RATE, "voices": 128, "channel_groups": 3})
    s.download(bank)
    master = b"\xF0\x7F\x7F\x04\x01\x00\x20\xF7"
    gs_reset = b"\xF0\x41\x10\x42\x12\x40\x00\x7F\x00\x41\xF7"
    e = gev.make_events(4)
    e["time"] = [0, 0, 10, 20]
    e["status"] = [0xB0, 0xB0, gev.SYSEX, gev.SYSEX]
    e["chan"] = [3, 20, 0, 0]
    e["data1"] = [7, 7, 0, 0]
    e["data2"] = [30, 30, 0, 0]
    e["sysex"] = [-1, -1, 0, 1]
    s.play(e, [gs_reset, master])
    s.control.prepare_window(4)
    cs = s.control.channels
    assert cs.cc[3, 7] == 100 and cs.cc[20, 7] == 30       # the reset reached song 0 only
    assert np.all(cs.master_atten[:16] > 0) and np.all(cs.master_atten[16:] == 0)
    assert s.control.song_fx_changes == [[], []]
