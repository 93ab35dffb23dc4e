"""Black-MIDI note limits (Synth(min_velocity=, max_key_voices=, max_note_s=)), measured on the
rendered audio: what is left after a cap, when a capped note's release starts, that ignored
notes make no sound; numpy against native, and independence from the window and block size."""
from __future__ import annotations

import numpy as np
import pytest

from gpusynth.constants import fade_frames
from gpusynth.voices import TICK
from synth_util import RATE, render_events, sine_bank

FADE = fade_frames(RATE)


def _native_ok():
    from gpusynth.backend.select import check_backend
    ok, why = check_backend("native")
    if not ok:
        pytest.skip(why)


def _env(x, win=240):
    """RMS envelope of the left channel in windows of `win` frames."""
    m = len(x) // win
    return np.sqrt(np.mean(x[:m * win, 0].astype(np.float64).reshape(m, win) ** 2, axis=1))


def _render(rows, n, backend="numpy", block=4096, **kw):
    out, s = render_events(rows, n, bank=kw.pop("bank", None) or sine_bank(release_tc=1200.0),
                           block=block, backend=backend, **kw)
    return out, s.running_stats()


# ---------------------------------------------------------------------------- min_velocity
@pytest.mark.slow
def test_min_velocity_ignores_quiet_notes():
    """Quiet note-ons below min_velocity make no sound and are counted; their note-offs are
    harmless: the render equals the song with those note-ons taken out (their note-offs left
    in), bit for bit, and the loud notes sound as without the limit."""
    loud = [(0, 0, 0x90, 69, 100), (RATE // 2, 0, 0x80, 69, 0),
            (RATE, 0, 0x90, 72, 90), (RATE + RATE // 2, 0, 0x80, 72, 0)]
    quiet = [(RATE // 4, 0, 0x90, 60, 20), (RATE // 4 + 3000, 0, 0x80, 60, 0),
             (RATE + 100, 0, 0x90, 64, 39), (RATE + 9000, 0, 0x80, 64, 0)]
    rows = sorted(loud + quiet)
    n = 2 * RATE
    got, st = _render(rows, n, min_velocity=40)
    assert st["skipped_notes"] == 2 and st["notes"] == 2
    offs_only = sorted(loud + [r for r in quiet if r[2] == 0x80])
    want, st2 = _render(offs_only, n)
    assert st2["skipped_notes"] == 0
    np.testing.assert_array_equal(got, want)
    full, _ = _render(rows, n)
    # without the limit the quiet note at 0.25 s sounds (a second pitch): more energy there
    seg = slice(RATE // 4 + 500, RATE // 4 + 2500)
    assert np.sqrt(np.mean(full[seg, 0] ** 2)) > 1.2 * np.sqrt(np.mean(got[seg, 0] ** 2))
    # a loud note with velocity exactly min_velocity plays
    edge, st3 = _render([(0, 0, 0x90, 69, 40), (RATE // 4, 0, 0x80, 69, 0)], RATE // 2, min_velocity=40)
    assert st3["skipped_notes"] == 0 and np.abs(edge).max() > 0.05


# ---------------------------------------------------------------------------- max_key_voices
def _repeats(n_notes=8, gap=RATE // 10, hold=RATE // 20, key=69, ch=0, t0=0):
    rows = []
    for i in range(n_notes):
        rows += [(t0 + i * gap, ch, 0x90, key, 100), (t0 + i * gap + hold, ch, 0x80, key, 0)]
    return rows


def test_max_key_voices_one_leaves_only_the_newest_note():
    """Repeated notes on one key with a 2 s release: without a cap the release tails pile up
    (several voices, rising energy); with max_key_voices=1 each note-on kills the previous
    note (a steal with the short fade), so once the fade is over the audio is exactly the new
    note rendered alone."""
    gap, n_notes = RATE // 10, 8
    rows = _repeats(n_notes, gap)
    n = n_notes * gap
    free, st_free = _render(rows, n)
    capped, st = _render(rows, n, max_key_voices=1)
    assert st_free["stolen_voices"] == 0 and st_free["peak_voices"] == n_notes
    assert st["stolen_voices"] == n_notes - 1 and st["peak_voices"] <= 2
    for i in range(1, n_notes):
        a = i * gap + FADE + TICK                     # after the previous note's fade
        b = (i + 1) * gap
        alone, _ = _render([r for r in rows if r[0] >= i * gap][:2], b)
        np.testing.assert_array_equal(capped[a:b], alone[a:b], err_msg=f"note {i}")
        # the uncapped render is louder there: the earlier tails still sound
        assert np.sqrt(np.mean(free[a:b, 0] ** 2)) > 1.5 * np.sqrt(np.mean(capped[a:b, 0] ** 2))
    # the killed note is gone after the short fade: from then on one voice's level, where the
    # uncapped tails keep adding up
    e, e_free = _env(capped), _env(free)
    first = -(-(FADE + TICK) // 240)                   # first whole window after the fade
    after = np.concatenate([np.arange(first, gap // 240) + i * gap // 240 for i in range(1, n_notes)])
    one = e[first:gap // 240]
    assert e[after].max() <= one.max() * 1.0001 and e_free[after].max() > 2 * one.max()


def test_max_key_voices_counts_per_channel_and_key():
    """A cap of 2 per (channel, key): the third overlapping note on a key kills the oldest;
    the same key on another channel and another key on the same channel are not touched."""
    gap = RATE // 10
    rows = _repeats(3, gap, key=69) + _repeats(2, gap, key=69, ch=1) + _repeats(1, gap, key=72, t0=5)
    rows.sort()
    out, st = _render(rows, 4 * gap, max_key_voices=2, voices=64)
    assert st["stolen_voices"] == 1
    out1, st1 = _render(rows, 4 * gap, max_key_voices=3, voices=64)
    assert st1["stolen_voices"] == 0
    # after the kill's fade: one voice less on channel 0 key 69 (the oldest, in its tail)
    a, b = 2 * gap + FADE + TICK, 3 * gap
    oldest_alone, _ = _render(_repeats(1, gap), b)
    np.testing.assert_allclose(out1[a:b] - out[a:b], oldest_alone[a:b], atol=2e-6)


# ---------------------------------------------------------------------------- max_note_s
def _release_start(x, level_from=RATE // 10):
    """First frame where the 5 ms RMS envelope falls 1 dB below its held level."""
    e = _env(x, 240)
    held = e[level_from // 240]
    below = np.flatnonzero(e[level_from // 240:] < held * 10 ** (-1 / 20))
    return (below[0] + level_from // 240) * 240 if len(below) else None


@pytest.mark.slow
def test_max_note_s_releases_a_long_note_and_the_pedal_does_not_extend_it():
    bank = sine_bank(release_tc=-2400.0)              # 0.25 s release: a clear edge
    n = 3 * RATE
    rows = [(0, 0, 0x90, 69, 100), (2 * RATE, 0, 0x80, 69, 0)]
    held, _ = _render(rows, n, bank=bank)
    capped, _ = _render(rows, n, bank=bank, max_note_s=0.5)
    pedal = [(0, 0, 0xB0, 64, 127)] + rows + [(int(2.5 * RATE), 0, 0xB0, 64, 0)]
    capped_pedal, _ = _render(pedal, n, bank=bank, max_note_s=0.5)
    free_pedal, _ = _render(pedal, n, bank=bank)
    t_held, t_cap, t_cap_p, t_free_p = (_release_start(x) for x in (held, capped, capped_pedal, free_pedal))
    assert 2 * RATE <= t_held <= 2 * RATE + 1200
    assert RATE // 2 <= t_cap <= RATE // 2 + 1200           # released at start + 0.5 s
    assert RATE // 2 <= t_cap_p <= RATE // 2 + 1200         # the pedal does not extend it
    assert int(2.5 * RATE) <= t_free_p <= int(2.5 * RATE) + 1200
    # before the cap the note is untouched; 0.35 s after it the 0.25 s release is over
    np.testing.assert_array_equal(capped[:RATE // 2], held[:RATE // 2])
    assert np.abs(capped[int(0.85 * RATE):]).max() < 1e-4
    np.testing.assert_array_equal(capped, capped_pedal)
    # a note shorter than the cap is not changed at all
    short = [(0, 0, 0x90, 69, 100), (RATE // 4, 0, 0x80, 69, 0)]
    np.testing.assert_array_equal(_render(short, RATE, bank=bank, max_note_s=0.5)[0],
                                  _render(short, RATE, bank=bank)[0])


# ---------------------------------------------------------------------------- both backends
def _mixed_song(seed=3):
    rng = np.random.default_rng(seed)
    rows = [(0, 0, 0xB0, 64, 127), (RATE // 2, 0, 0xB0, 64, 0)]
    for i in range(300):
        t = int(rng.integers(0, RATE))
        ch = int(rng.integers(0, 3))
        key = int(rng.integers(66, 72))
        rows += [(t, ch, 0x90, key, int(rng.integers(1, 127))),
                 (t + int(rng.integers(100, 40000)), ch, 0x80, key, 0)]
    return sorted(rows)


LIMITS = {"min_velocity": 30, "max_key_voices": 2, "max_note_s": 0.3}


@pytest.mark.slow
def test_limits_are_window_independent_and_native_matches_numpy():
    """All three limits at once on a dense song with a voice limit: bit-identical for any block
    size on each backend; native against numpy within 1e-5 of the peak."""
    _native_ok()
    rows = _mixed_song()
    n = RATE + RATE // 2
    ref, st = _render(rows, n, voices=24, **LIMITS)
    assert st["skipped_notes"] > 30 and st["stolen_voices"] > 50, st
    nolim, st0 = _render(rows, n, voices=24)
    assert not np.array_equal(ref, nolim)
    for block in (64, 1000):
        other, _ = _render(rows, n, voices=24, block=block, **LIMITS)
        np.testing.assert_array_equal(ref, other, err_msg=f"numpy, block {block}")
    nat, st_n = _render(rows, n, backend="native", voices=24, **LIMITS)
    assert {k: st_n[k] for k in ("skipped_notes", "stolen_voices", "notes")} == \
        {k: st[k] for k in ("skipped_notes", "stolen_voices", "notes")}
    assert np.abs(nat - ref).max() <= 1e-5 * np.abs(ref).max()
    for block in (100, 48000):
        other, _ = _render(rows, n, backend="native", voices=24, block=block, **LIMITS)
        np.testing.assert_array_equal(nat, other, err_msg=f"native, block {block}")


def test_limit_arguments_are_checked():
    from gpusynth import Synth
    with pytest.raises(ValueError):
        Synth(min_velocity=-1)
    with pytest.raises(ValueError):
        Synth(max_note_s=-0.5)
    with pytest.raises(ValueError):
        Synth(alloc_engine="sequential", max_key_voices=2)
    with pytest.raises(ValueError):
        Synth(alloc_engine="gpu")
