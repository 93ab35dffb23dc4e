"""The voice allocator on its own: closed-form stealing scores, the voices counted against the
limit, and that nothing it decides depends on rendered audio."""
from __future__ import annotations

import numpy as np

from gpusynth import envelope
from gpusynth.allocator import VoiceAllocator
from gpusynth.banks.model import new_regions
from gpusynth.voices import NEVER

RATE = 48000


def _regions(n, decay_tc=-32768.0, sustain_cb=0.0, release_tc=-1200.0, atten=0.0):
    r = new_regions(n)
    r["start"], r["end"], r["loop_start"], r["loop_end"], r["loop_mode"] = 0, 1000, 100, 900, 1
    r["sample_rate"], r["root_key"] = RATE, 60
    r["ve_decay"], r["ve_sustain"], r["ve_release"] = decay_tc, sustain_cb, release_tc
    r["atten"] = atten
    return r


def _alloc(limit=4):
    return VoiceAllocator(limit, RATE, 144, 16)


def _note(a, t, key, regs=None, chan=0):
    regs = _regions(1) if regs is None else regs
    arr = lambda x: np.array([x], np.int64)   # noqa: E731
    return a.notes(arr(t), arr(chan), arr(key), arr(100), np.array([True]), regs,
                   np.zeros(len(regs), np.int64), np.full(len(regs), 0x80000000, np.uint32),
                   lambda c: np.zeros(len(c), bool))


def test_steal_takes_the_quietest_closed_form_level():
    """Four voices with decays of different speeds; the fifth note steals the one whose
    closed-form level at the note-on is lowest (not the oldest)."""
    a = _alloc(4)
    for i, dec in enumerate((3000.0, -1200.0, 2000.0, 1000.0)):   # 5.6 s, 0.5 s, 3 s, 1.7 s
        _note(a, i * 10, 60 + i, _regions(1, decay_tc=dec, sustain_cb=1000.0))
    t = RATE // 2
    lv = envelope.level_at(a.vt[:4], t, 144)
    _note(a, t, 70)
    assert a.stats["stolen_voices"] == 1
    killed = np.flatnonzero(a.h["killed"][:a.n])
    assert list(killed) == [int(np.argmin(lv))] == [1]
    assert a.vt["kill"][1] == t


def test_released_voices_are_stolen_before_held_ones():
    a = _alloc(2)
    _note(a, 0, 60)
    _note(a, 0, 62)
    a.release(np.array([0]), 100)                   # the first voice is in its release
    _note(a, 200, 64)
    assert a.h["killed"][0] and not a.h["killed"][1]


def test_voices_silent_in_closed_form_do_not_count():
    """A released voice whose release has decayed below -100 dB no longer counts against the
    limit, even though no render has reported it finished: no steal happens."""
    a = _alloc(1)
    _note(a, 0, 60, _regions(1, release_tc=-2400.0))          # 0.25 s release
    a.release(np.array([0]), 1000)
    assert len(a.sounding(1000 + RATE // 8)) == 1
    assert len(a.sounding(1000 + RATE)) == 0
    _note(a, 1000 + RATE, 62)
    assert a.stats["stolen_voices"] == 0 and a.stats["peak_voices"] == 1


def test_flush_uploads_new_records_once_and_time_updates_apart():
    class Recorder:
        def __init__(self):
            self.calls = []

        def ensure_capacity(self, n):
            pass

        def add_voices(self, slots, rec):
            self.calls.append(("add", list(slots), rec["release"].tolist()))

        def set_times(self, slots, rel, kill):
            self.calls.append(("times", list(slots), list(rel), list(kill)))

    a = _alloc(8)
    _note(a, 0, 60)
    b = Recorder()
    a.flush(b)
    _note(a, 10, 62)
    a.release(np.array([0, 1]), 50)            # voice 1 is new in this window: sent whole
    a.flush(b)
    assert b.calls[0] == ("add", [0], [NEVER])
    assert b.calls[1] == ("add", [1], [50])
    assert b.calls[2] == ("times", [0], [50], [NEVER])


# ---- runs with stealing: the compiled per-tick loop, its numpy twin and the tick-by-tick path

from gpusynth import Synth, steal  # noqa: E402
from gpusynth.backend.base import HostVoiceTable  # noqa: E402
from gpusynth.banks.builtin import load_builtin  # noqa: E402
from gpusynth.events import event_array  # noqa: E402
from gpusynth.voices import TICK  # noqa: E402

import pytest  # noqa: E402


def _native_helper():
    if not steal.NATIVE.available():
        pytest.skip(f"no compiled steal helper: {steal.NATIVE.error()}")


class _KeepAll(HostVoiceTable):
    """A backend that renders silence and never reports a voice finished: slots stay in creation
    order, so tables from any window size or engine compare slot by slot (no decision depends
    on rendered audio or on when a slot is freed)."""
    name = "keep-all"

    def __init__(self):
        self._init_table(16)

    def upload_pool(self, pool):
        pass

    def render(self, n_active, t0, n_ticks, chin, sends=False):
        return np.zeros((n_ticks * TICK, 4 if sends else 2), np.float32), np.zeros(0, np.int64)


def _dense_song(seed=5, notes=1500, span=RATE * 2):
    """Far more notes than voices, bursts larger than the limit within one tick, retriggers,
    drums with exclusive classes (hi-hats 42/44/46), sustain and sostenuto pedals, a program
    change in the middle (splits the runs)."""
    rng = np.random.default_rng(seed)
    rows = [(0, 0, 0xC0, 0, 0), (0, 1, 0xC0, 48, 0), (0, 2, 0xC0, 16, 0), (0, 3, 0xC0, 33, 0)]
    t = np.sort(rng.integers(0, span, notes))
    t[200:260] = t[200]                                       # one tick with 60 note-ons
    for i in range(notes):
        ch = int(rng.choice([0, 1, 2, 3, 9]))
        key = int(rng.choice([42, 44, 46, 36, 38])) if ch == 9 else int(rng.integers(55, 70))
        rows.append((int(t[i]), ch, 0x90, key, int(rng.integers(1, 127))))
        rows.append((int(t[i]) + int(rng.integers(1, 20000)), ch, 0x80, key, 0))
    rows += [(7001, 0, 0xB0, 64, 127), (40003, 0, 0xB0, 64, 0), (20000, 1, 0xB0, 66, 127),
             (50000, 1, 0xB0, 66, 0), (30011, 2, 0xC0, 24, 0), (60000, 3, 0xB0, 64, 100)]
    rows.sort(key=lambda r: r[0])
    return event_array(rows)


@pytest.fixture(scope="module")
def builtin():
    return load_builtin()


def _control_state(bank, engine, window, voices=32, frames=RATE * 2 + 1000, chunk=None, **kw):
    s = Synth(backend="numpy", block_ticks=1, max_window_ticks=window, alloc_engine=engine, **kw)
    s.open({"sample_rate": RATE, "voices": voices})
    s.download(bank)
    s.backend = _KeepAll()
    s.set_channel_priority(1, 3, 0x40000000)                 # channel 3 is stolen from first
    s.play(_dense_song())
    pos, chunk = 0, chunk or window * TICK
    while pos < frames:
        s.render(min(chunk, frames - pos), pos)
        pos += chunk
    al = s.control.alloc
    al.flush_silent()
    n = al.n
    st = {k: v for k, v in s.running_stats().items() if k in ("stolen_voices", "lost_notes", "peak_voices", "notes", "skipped_notes")}
    return al.vt[:n].copy(), {k: a[:n].copy() for k, a in al.h.items()}, st, s


def _assert_same(a, b, what):
    vt_a, h_a, st_a, _ = a
    vt_b, h_b, st_b, _ = b
    assert st_a == st_b, what
    assert len(vt_a) == len(vt_b), what
    for f in ("start", "release", "kill", "pitch", "chan"):
        np.testing.assert_array_equal(vt_a[f], vt_b[f], err_msg=f"{what}: {f}")
    for k in h_a:
        np.testing.assert_array_equal(h_a[k], h_b[k], err_msg=f"{what}: {k}")


@pytest.mark.slow
def test_run_engines_decide_the_same_voices_as_tick_by_tick(builtin):
    """The compiled loop, its numpy twin and the reference (allocate + notes one tick at a time)
    take the same decisions, bit for bit, at every window size: every release and kill time,
    every flag and closed-form end, the steal/lost/peak counts."""
    _native_helper()
    ref = _control_state(builtin, "sequential", 512)
    st = ref[2]
    assert st["stolen_voices"] > 500 and st["lost_notes"] > 0 and st["peak_voices"] == 32, st
    killed = ref[1]["killed"]
    assert killed.sum() > 500 and (ref[0]["release"] < NEVER).sum() > 300
    for engine in ("native", "reference"):
        for window in (1, 7, 64, 512):
            _assert_same(ref, _control_state(builtin, engine, window), f"{engine}, window {window}")
    for window in (1, 37):
        _assert_same(ref, _control_state(builtin, "sequential", window), f"sequential, window {window}")


@pytest.mark.parametrize("kw", [{"max_key_voices": 1},
                                pytest.param({"max_key_voices": 2, "max_note_s": 0.05}, marks=pytest.mark.slow),
                                pytest.param({"min_velocity": 40, "max_note_s": 0.2}, marks=pytest.mark.slow)])
def test_note_limits_same_decisions_in_every_engine_and_window(builtin, kw):
    _native_helper()
    ref = _control_state(builtin, "reference", 512, **kw)
    assert ref[2]["stolen_voices"] > 100
    if "min_velocity" in kw:
        assert ref[2]["skipped_notes"] > 200
    for engine, window in (("native", 512), ("native", 1), ("native", 13), ("reference", 5)):
        _assert_same(ref, _control_state(builtin, engine, window, **kw), f"{kw} {engine} {window}")
    if "max_key_voices" not in kw:
        _assert_same(ref, _control_state(builtin, "sequential", 64, **kw), f"{kw} sequential")


def test_a_voice_cut_by_its_exclusive_class_is_not_released_later():
    """Open hi-hat at tick 0, closed hi-hat (same exclusive class) at tick 2 cuts it, then the
    open hi-hat's note-off at tick 3: one vectorised run (no steal possible) gives the same
    voices as the ticks one by one: the cut voice keeps no release time."""
    regs = _regions(1)
    regs["excl_class"] = 1
    t = np.array([10, 2 * TICK + 5, 3 * TICK + 1], np.int64)
    c = np.full(3, 9, np.int64)
    key = np.array([46, 42, 46], np.int64)
    vel = np.full(3, 100, np.int64)
    is_on = np.array([True, True, False])
    states = []
    for single in (False, True):
        a = _alloc(8)
        prio = np.full(1, 0x80000000, np.uint32)
        nope = lambda ch: np.zeros(len(ch), bool)   # noqa: E731
        if single:
            for i in range(3):
                sl = slice(i, i + 1)
                a.notes(t[sl], c[sl], key[sl], vel[sl], is_on[sl], regs[:int(is_on[i])],
                        np.zeros(int(is_on[i]), np.int64), prio[:int(is_on[i])], nope)
        else:
            a.notes(t, c, key, vel, is_on, np.concatenate([regs, regs]), np.array([0, 1]),
                    np.full(2, 0x80000000, np.uint32), nope, single_time=False)
        a.flush_silent()
        states.append((a.vt["release"][:2].tolist(), a.vt["kill"][:2].tolist(),
                       a.h["silent"][:2].tolist(), a.h["killed"][:2].tolist()))
    assert states[0] == states[1]
    assert states[0][0] == [NEVER, NEVER] and states[0][1] == [2 * TICK + 5, NEVER]
