"""The MIDI message table (gpusynth.midi) against the MIDI 1.0 specification."""
import numpy as np
import pytest

from gpusynth import events, midi


def spec_length(status: int):
    """Data bytes after a status byte, written out from the MIDI 1.0 spec tables
    (None: the message carries its own length)."""
    hi = status & 0xF0
    if hi in (0x80, 0x90, 0xA0, 0xB0, 0xE0):   # note off/on, poly pressure, CC, pitch bend
        return 2
    if hi in (0xC0, 0xD0):                     # program change, channel pressure
        return 1
    return {
        0xF0: None,                            # SysEx: up to EOX (in a file: VLQ length)
        0xF1: 1,                               # MTC quarter frame
        0xF2: 2,                               # song position pointer (LSB, MSB)
        0xF3: 1,                               # song select
        0xF4: 0, 0xF5: 0,                      # undefined
        0xF6: 0,                               # tune request
        0xF7: None,                            # EOX; in a file the escape with a VLQ length
        0xF8: 0, 0xF9: 0, 0xFA: 0, 0xFB: 0,    # clock, undefined, start, continue
        0xFC: 0, 0xFD: 0, 0xFE: 0,             # stop, undefined, active sensing
        0xFF: None,                            # meta event in a file
    }[status]


@pytest.mark.parametrize("status", range(0x80, 0x100))
def test_every_status_byte(status):
    want = spec_length(status)
    want = midi.VARIABLE if want is None else want
    assert midi.data_length(status) == want
    assert int(midi.DATA_LEN[status]) == want


def test_lookup_array():
    assert midi.DATA_LEN.shape == (256,)
    assert midi.DATA_LEN.dtype.kind == "i"
    assert np.all(midi.DATA_LEN[:0x80] == midi.VARIABLE)      # data bytes are no status
    with pytest.raises(ValueError):
        midi.DATA_LEN[0x90] = 0                               # read-only
    st = np.array([0x90, 0xC5, 0xDF, 0xE0, 0xF2, 0xF8], np.uint8)
    assert midi.DATA_LEN[st].tolist() == [2, 1, 1, 2, 2, 0]   # vectorised use


@pytest.mark.parametrize("bad", [-1, 0x00, 0x7F, 0x100])
def test_data_byte_is_not_a_status(bad):
    with pytest.raises(ValueError):
        midi.data_length(bad)


def test_table_rows():
    channel = [s for s in midi.MESSAGES if s < 0xF0]
    assert channel == [0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0]
    assert sorted(s for s in midi.MESSAGES if s >= 0xF0) == list(range(0xF0, 0x100))
    for s, m in midi.MESSAGES.items():
        assert m.status == s and m.name
    assert len({m.name for m in midi.MESSAGES.values()}) == len(midi.MESSAGES)
    assert midi.MESSAGES[midi.NOTE_ON].name == "note_on"
    assert midi.MESSAGES[midi.PROGRAM].length == 1


def test_events_reexports_the_one_definition():
    names = ["NOTE_OFF", "NOTE_ON", "POLY_PRESSURE", "CONTROL", "PROGRAM", "CHAN_PRESSURE",
             "PITCH_BEND", "SYSEX"]
    want = [0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0]
    for n, v in zip(names, want):
        assert getattr(events, n) == getattr(midi, n) == v
