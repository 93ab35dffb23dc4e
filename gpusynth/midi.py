"""The MIDI 1.0 message table: one row per status, shared by the SMF reader and the synth.

Channel voice messages are keyed by the status high nibble (0x80 .. 0xE0, channel stripped);
system messages by the full status byte (0xF0 .. 0xFF). ``length`` is the number of data bytes
that follow the status byte, or VARIABLE for the messages that carry their own length:

* 0xF0 SysEx: data bytes up to the closing 0xF7 (in a file: a variable-length quantity first);
* 0xF7: End of Exclusive on the wire; in a file the escape / SysEx continuation, with a length;
* 0xFF: in a file the meta event (type byte, length, data). On the wire it is System Reset
  (no data bytes); only files reach this table with it.

The undefined system statuses 0xF4, 0xF5, 0xF9 and 0xFD carry no data bytes.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

VARIABLE = -1  # the message carries its own length (SysEx, SMF escape, SMF meta)

# channel voice statuses (high nibble; the low nibble is the channel)
NOTE_OFF = 0x80
NOTE_ON = 0x90
POLY_PRESSURE = 0xA0
CONTROL = 0xB0
PROGRAM = 0xC0
CHAN_PRESSURE = 0xD0
PITCH_BEND = 0xE0
# system statuses (full byte)
SYSEX = 0xF0
EOX = 0xF7
META = 0xFF


class Message(NamedTuple):
    status: int   # high nibble for channel messages, full byte for system messages
    name: str
    length: int   # data bytes after the status byte, or VARIABLE


MESSAGES: dict[int, Message] = {m.status: m for m in (
    Message(NOTE_OFF, "note_off", 2),
    Message(NOTE_ON, "note_on", 2),
    Message(POLY_PRESSURE, "poly_pressure", 2),
    Message(CONTROL, "control_change", 2),
    Message(PROGRAM, "program_change", 1),
    Message(CHAN_PRESSURE, "channel_pressure", 1),
    Message(PITCH_BEND, "pitch_bend", 2),
    Message(SYSEX, "sysex", VARIABLE),
    Message(0xF1, "mtc_quarter_frame", 1),
    Message(0xF2, "song_position", 2),
    Message(0xF3, "song_select", 1),
    Message(0xF4, "undefined_f4", 0),
    Message(0xF5, "undefined_f5", 0),
    Message(0xF6, "tune_request", 0),
    Message(EOX, "end_of_exclusive", VARIABLE),
    Message(0xF8, "clock", 0),
    Message(0xF9, "undefined_f9", 0),
    Message(0xFA, "start", 0),
    Message(0xFB, "continue", 0),
    Message(0xFC, "stop", 0),
    Message(0xFD, "undefined_fd", 0),
    Message(0xFE, "active_sensing", 0),
    Message(META, "meta", VARIABLE),
)}


# data bytes after every status byte 0x80..0xFF (VARIABLE for 0x00..0x7F: not a status byte)
DATA_LEN = np.full(256, VARIABLE, np.int8)
for _s in range(0x80, 0x100):
    DATA_LEN[_s] = MESSAGES[_s & 0xF0 if _s < 0xF0 else _s].length
DATA_LEN.setflags(write=False)
del _s


def data_length(status: int) -> int:
    """Data bytes following the status byte ``status`` (0x80..0xFF, channel included), or
    VARIABLE for 0xF0, 0xF7 and 0xFF. A data byte (< 0x80) is not a status: ValueError."""
    if not 0x80 <= status <= 0xFF:
        raise ValueError(f"0x{status:X} is not a MIDI status byte")
    return int(DATA_LEN[status])

