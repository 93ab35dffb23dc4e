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
