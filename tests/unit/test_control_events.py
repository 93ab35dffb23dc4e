"""The Synth's parts beyond notes: SysEx through Synth (GM/GS/XG resets, master volume and
tuning), the MIDI dispatch table, and the sample pool after download/unload while voices play
(it returns to the size of the downloaded banks once the old voices are gone)."""
from __future__ import annotations

import numpy as np
import pytest

from gpusynth import events as ev
from gpusynth.events import event_array
from synth_util import RATE, make_synth, sine_bank


def _peak_hz(x):
    x = x[:, 0].astype(np.float64)
    w = np.hanning(len(x))
    f = np.abs(np.fft.rfft(x * w))
    k = int(np.argmax(f))
    a, b, c = f[k - 1], f[k], f[k + 1]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * RATE / len(x)


def _sysex_synth(payload, backend="numpy"):
    s = make_synth(backend=backend)
    e = event_array([(0, 0, ev.NOTE_ON, 69, 100)])
    sx = np.zeros(1, ev.EVENT_DTYPE)
    sx["time"], sx["status"], sx["sysex"] = 0, ev.SYSEX, 0
    s.play(np.concatenate([sx, e]), [payload])
    return s


def _rms(x):
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_master_volume_sysex_sets_the_level():
    ref = make_synth()
    ref.play(event_array([(0, 0, ev.NOTE_ON, 69, 100)]))
    a = ref.render(RATE // 2, 0)[RATE // 4:]
    half = 8192                                   # 14-bit master volume: 8192 / 16383 = -6 dB
    s = _sysex_synth(bytes([0xF0, 0x7F, 0x7F, 0x04, 0x01, half & 0x7F, half >> 7, 0xF7]))
    b = s.render(RATE // 2, 0)[RATE // 4:]
    db = 20 * np.log10(_rms(b) / _rms(a))
    assert db == pytest.approx(20 * np.log10(8192 / 16383), abs=0.2)


def test_master_tuning_sysex_shifts_the_pitch():
    # master coarse tuning +2 semitones (MSB 66): A4 -> B4
    s = _sysex_synth(bytes([0xF0, 0x7F, 0x7F, 0x04, 0x04, 0x00, 66, 0xF7]))
    hz = _peak_hz(s.render(RATE, 0)[RATE // 4:])
    assert hz == pytest.approx(440.0 * 2 ** (2 / 12), rel=0.002)


@pytest.mark.parametrize("reset", [
    bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7]),                                     # GM on
    bytes([0xF0, 0x41, 0x10, 0x42, 0x12, 0x40, 0x00, 0x7F, 0x00, 0x41, 0xF7]),      # GS reset
    bytes([0xF0, 0x43, 0x10, 0x4C, 0x00, 0x00, 0x7E, 0x00, 0xF7]),                  # XG on
])
def test_system_resets_silence_playing_voices_and_reset_controllers(reset):
    s = make_synth()
    s.play(event_array([(0, 0, ev.NOTE_ON, 69, 100), (0, 0, ev.CONTROL, 7, 20)]))
    quiet = _rms(s.render(RATE // 4, 0))
    sx = np.zeros(1, ev.EVENT_DTYPE)
    sx["time"], sx["status"], sx["sysex"] = RATE // 4, ev.SYSEX, 0
    s.play(np.concatenate([sx, event_array([(RATE // 2, 0, ev.NOTE_ON, 69, 100)])]), [reset])
    x = s.render(RATE, RATE // 4)
    gap = x[RATE // 8:RATE // 4 - 64]              # after the cut, before the new note
    assert _rms(gap) < 1e-6
    loud = _rms(x[RATE // 2:])                     # CC7 back to its default 100 after the reset
    assert 20 * np.log10(loud / quiet) > 10


def test_dispatch_table_covers_every_channel_message():
    from gpusynth.control import ControlPath
    for st in (ev.CONTROL, ev.PROGRAM, ev.PITCH_BEND, ev.CHAN_PRESSURE, ev.POLY_PRESSURE):
        assert st in ControlPath._DISPATCH


def test_pool_returns_after_download_unload_while_playing(backend):
    """Downloads and unloads while a voice plays keep the old pool in front (the voice reads
    it); once that voice has finished the pool shrinks back to the banks' own size, and a
    voice started after the compaction still plays the right pitch."""
    bank = sine_bank(release_tc=-3600)             # 50 ms release
    s = make_synth(bank, backend=backend)
    size = len(s.control.presets.pool)
    s.play(event_array([(0, 0, ev.NOTE_ON, 69, 100), (RATE // 2, 0, ev.NOTE_OFF, 69, 0)]))
    s.render(RATE // 4, 0)
    handles = []
    for _ in range(5):
        handles.append(s.download(sine_bank()))
        s.unload(handles.pop())
    assert len(s.control.presets.pool) > 2 * size            # the playing voice pins the old pools
    s.render(RATE, RATE // 4)                        # the voice ends; the next window compacts
    assert s.active_voices == 0
    assert len(s.control.presets.pool) == size
    s.play(event_array([(2 * RATE, 0, ev.NOTE_ON, 69, 100)]))
    hz = _peak_hz(s.render(RATE, 5 * RATE // 4)[RATE // 2:])
    assert hz == pytest.approx(440.0, rel=0.002)


def test_compaction_shifts_the_sample_indices_of_voices_still_playing(backend):
    """Voice A starts, a download (while A plays) puts the old pool in front; voice B starts
    on the new pool; A ends and the prefix is dropped, so B's sample indices move on the
    device: B keeps its pitch and level across the compaction."""
    s = make_synth(sine_bank(release_tc=-3600), backend=backend)
    s.play(event_array([(0, 0, ev.NOTE_ON, 60, 100), (RATE // 4, 0, ev.NOTE_OFF, 60, 0)]))
    s.render(RATE // 8, 0)
    s.download(sine_bank())
    base = s.control.pool_prefix
    assert base > 0
    s.play(event_array([(RATE // 8, 1, ev.NOTE_ON, 69, 100)]))
    s.render(RATE // 8, RATE // 8)
    b = s.render(RATE, RATE // 4)
    assert s.control.pool_prefix == 0 and s.active_voices == 1
    c = b[RATE // 2:]
    assert _peak_hz(c) == pytest.approx(440.0, rel=0.002)
    assert _rms(c) > 0.05
