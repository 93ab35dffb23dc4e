"""Many songs in one launch (gpusynth.ensemble): the kernels route each voice to its own output
(bus field), every song of an ensemble comes out bit-identical to rendering it alone (length
included), whatever else shares the launch, under its own voice limit and effects."""
import numpy as np
import pytest

from gpusynth import Renderer
from gpusynth.api import load_bank_any
from gpusynth.backend import create_backend
from gpusynth.ensemble import Ensemble, EnsembleError, window_ticks
from gpusynth.smf import tempo_meta, write_smf
from gpusynth.voices import VOICE_DTYPE, TICK

import conftest
from gm_songs import song

RATE = 48000
BACKENDS = conftest.backends()
FAST = "native" if "native" in BACKENDS else "numpy"


@pytest.fixture(scope="module")
def bank():
    return load_bank_any(None)


def alone(bank, backend, midi, **kw):
    with Renderer(bank, backend=backend, **kw) as r:
        return r.render(midi)


def test_window_ticks():
    assert window_ticks(1, 512) == 512
    assert window_ticks(8, 512) == 512          # 8 songs x 32768 frames x 32 B = 8 MiB
    assert window_ticks(256, 512) == 64         # the output budget shrinks the window
    assert window_ticks(100000, 512) == 4       # never below a block
    assert window_ticks(1, 96) == 32            # a divisor of the chunk (end checks on window ends)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bus_routing_matches_single_output(backend, bank):
    """A launch with three outputs: output b equals the launch of bus b's voices alone (the
    others marked finished), bit for bit, and the voices' state is the same."""
    from gpusynth.synth import Synth
    s = Synth(backend="numpy")
    s.open({"sample_rate": RATE, "voices": 64, "channel_groups": 1})
    s.download(bank)
    ev_bytes = song(3, seconds=1.0, channels=3, drums=True)
    from gpusynth.api import load_midi
    from gpusynth.rendering import song_source
    s.stream(song_source(load_midi(ev_bytes), RATE))
    s.control.pull(4096)
    w = s.control.prepare_window(8)
    n = w.voices
    assert n >= 3
    rows = s.backend.table[:n].copy()
    be = create_backend(backend, RATE, 64, "cubic")
    be.upload_pool(s.control.presets.pool)
    align = max(1, be.bus_align)
    buses = [0, 1, 2]
    groups = [rows[i::3] for i in range(3)]
    table, spans = [], []
    for b, g in enumerate(groups):
        g = g.copy()
        g["bus"] = b
        padn = (-len(g)) % align
        pad = np.zeros(padn, VOICE_DTYPE)
        pad["done"], pad["bus"] = 1, b
        spans.append((sum(len(t) for t in table), len(g)))
        table += [g, pad]
    table = np.concatenate(table)
    be.load_rows(table)
    out, _ = be.render(len(table), 0, 8, w.chin, True, n_out=3)
    after = be.read_table(slice(0, len(table)))
    assert out.shape == (3, 8 * TICK, 4)
    for b in buses:
        solo = table.copy()
        a, k = spans[b]
        mask = np.ones(len(solo), bool)
        mask[a:a + k] = False
        solo["done"][mask] = 1
        solo["bus"] = 0
        be.load_rows(solo)
        o1, _ = be.render(len(solo), 0, 8, w.chin, True)
        np.testing.assert_array_equal(out[b], o1)
        assert np.max(np.abs(o1[:, :2])) > 1e-3           # each output really has sound
        st = be.read_table(slice(a, a + k))
        for f in ("ipos", "fpos", "gl", "gr", "s1", "s2", "done"):
            np.testing.assert_array_equal(st[f], after[f][a:a + k])
    # the runs out of bus order (the native backend's one-work-item-per-output path needs
    # them in order and falls back to the general one): the same outputs
    runs = [table[a:a + k + (-k) % align] for a, k in spans]
    be.load_rows(np.concatenate([runs[2], runs[0], runs[1]]))
    out2, _ = be.render(len(table), 0, 8, w.chin, True, n_out=3)
    np.testing.assert_array_equal(out2, out)


def test_native_bus_routing_matches_numpy(bank):
    """The kernel's routing and the numpy twin's agree (within the native-vs-numpy float
    tolerance of tests/unit/backend/test_native_backend.py)."""
    if "native" not in BACKENDS:
        pytest.skip("native backend unavailable")
    songs = [song(i, seconds=1.0, channels=2) for i in range(3)]
    a = Ensemble(bank, backend="native", voices=64).render_many(songs)
    b = Ensemble(bank, backend="numpy", voices=64).render_many(songs)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        assert np.max(np.abs(x - y)) < 2e-4


@pytest.mark.parametrize("backend", [pytest.param(b, marks=pytest.mark.slow) if b == "numpy" else b
                                     for b in BACKENDS if b != "cupy"])
def test_songs_identical_to_alone(backend, bank):
    """Songs of different lengths (so they drop out of the launch at different windows), with
    reverb and chorus on (the default) and one with effects sends off: each is bit-identical
    to its own render, length included."""
    secs = [0.5, 1.5, 1.0] if backend == "numpy" else [1.0, 4.0, 2.5, 0.5, 3.0, 6.0]
    songs = [song(10 + i, seconds=s, channels=1 + i % 3) for i, s in enumerate(secs)]
    ens = Ensemble(bank, backend=backend, voices=256)
    outs = ens.render_many(songs)
    assert ens.stats["songs"] == len(songs) and ens.stats["launches"] > 1
    lens = set()
    for midi, o in zip(songs, outs):
        ref = alone(bank, backend, midi, voices=256)
        assert o.shape == ref.shape
        assert o.tobytes() == ref.tobytes()
        assert np.max(np.abs(o)) > 0.01
        lens.add(len(o))
    assert len(lens) > 1                 # the songs really ended at different chunks


def test_voice_limit_and_stealing_per_song(bank):
    """A dense song at a voice limit of 6 steals within itself only: its audio and its steal
    count are those of its own render, and a sparse song beside it loses nothing."""
    dense = song(5, seconds=2.0, channels=3)
    sparse = song(6, seconds=2.0, channels=1, drums=False)
    ens = Ensemble(bank, backend=FAST, voices=6)
    outs = ens.render_many([dense, sparse])
    with Renderer(bank, backend=FAST, voices=6) as r:
        ref = r.render(dense)
        stolen = r.stats["stolen_voices"]
        ref2 = r.render(sparse)
        stolen2 = r.stats["stolen_voices"]
    assert stolen > 0 and ens.stats["per_song"][0]["stolen_voices"] == stolen
    assert ens.stats["per_song"][1]["stolen_voices"] == stolen2
    assert outs[0].tobytes() == ref.tobytes()
    assert outs[1].tobytes() == ref2.tobytes()


def test_sysex_and_effects_stay_in_their_song(bank):
    """A GS reset and reverb-type SysEx plus CC91 = 0 in one song change nothing in the
    song beside it; effects off for one whole ensemble gives the dry renders."""
    gs_reset = b"\xF0\x41\x10\x42\x12\x40\x00\x7F\x00\x41\xF7"
    a = song(21, seconds=1.5, extra=[(480, gs_reset), (500, bytes([0xB0, 91, 0]))])
    b = song(22, seconds=1.5)
    outs = Ensemble(bank, backend=FAST, voices=128).render_many([a, b])
    assert outs[0].tobytes() == alone(bank, FAST, a, voices=128).tobytes()
    assert outs[1].tobytes() == alone(bank, FAST, b, voices=128).tobytes()
    dry = Ensemble(bank, backend=FAST, voices=128, effects=False).render_many([a, b])
    assert dry[1].tobytes() == alone(bank, FAST, b, voices=128, effects=False).tobytes()
    assert not np.array_equal(dry[1][:len(outs[1])], outs[1][:len(dry[1])])


def test_reopened_members_carry_nothing_over(bank):
    """A second render_many reuses the first one's ensemble synths (reopened, their preset
    tables kept): the song that gets the ensemble synth of a song with a GS reset, a reverb-type
    SysEx, a master-volume SysEx and CC91 = 0 still renders bit-identical to its own render."""
    gs_reset = b"\xF0\x41\x10\x42\x12\x40\x00\x7F\x00\x41\xF7"
    rev_type = b"\xF0\x41\x10\x42\x12\x40\x01\x30\x07\x08\xF7"
    master = b"\xF0\x7F\x7F\x04\x01\x00\x20\xF7"
    a = song(23, seconds=1.0, extra=[(100, gs_reset), (200, rev_type), (300, master),
                                     (400, bytes([0xB0, 91, 0]))])
    b, c = song(24, seconds=1.0), song(25, seconds=0.5)
    ens = Ensemble(bank, backend=FAST, voices=64)
    first = ens.render_many([a, b])
    assert first[0].tobytes() == alone(bank, FAST, a, voices=64).tobytes()
    assert len(ens._spare) == 2
    spare = list(ens._spare)
    again = ens.render_many([c, b])           # b now runs on the synth that played a
    assert ens._spare and set(map(id, ens._spare)) == set(map(id, spare))
    assert again[1].tobytes() == first[1].tobytes() == alone(bank, FAST, b, voices=64).tobytes()
    assert again[0].tobytes() == alone(bank, FAST, c, voices=64).tobytes()


def test_empty_and_silent_songs(bank):
    """A song with no notes renders (to the same length as alone) beside real ones."""
    empty = write_smf(None, [[(0, tempo_meta(500000)), (960, bytes([0xB0, 7, 100]))]])
    songs = [empty, song(30, seconds=1.0)]
    outs = Ensemble(bank, backend=FAST, voices=64).render_many(songs)
    assert outs[0].tobytes() == alone(bank, FAST, empty, voices=64).tobytes()
    assert outs[1].tobytes() == alone(bank, FAST, songs[1], voices=64).tobytes()


def test_bad_chunk(bank):
    with pytest.raises(EnsembleError, match="chunk"):
        Ensemble(bank, backend="numpy", chunk=0)


@pytest.mark.slow
def test_conformance_files_together_equal_alone(testdata):
    """The MIDI conformance suite and Android's test vectors (GM/GS/XG resets, master volume
    and tuning SysEx, GS drum part change, RPNs, pedals, running status, formats 0/1/2,
    several ports), in launch groups of 8 with reverb and chorus on: each file is
    bit-identical to its own render, with the same note count and peak polyphony."""
    bank = load_bank_any(None)
    songs = [(f.name, s) for f, s in __import__("conftest").conformance_songs(testdata)]
    ens = Ensemble(bank, backend=FAST, voices=256, tail_cap_s=2.0)
    with Renderer(bank, backend=FAST, voices=256, tail_cap_s=2.0) as r:
        for i in range(0, len(songs), 8):
            grp = songs[i:i + 8]
            outs = ens.render_many([s for _, s in grp])
            assert ens.stats["solo"] == 0
            for (name, s), o, st in zip(grp, outs, ens.stats["per_song"]):
                ref = r.render(s)
                assert o.tobytes() == ref.tobytes(), name
                assert (st["notes"], st["peak_voices"]) == \
                    (r.stats["notes"], r.stats["peak_voices"]), name
