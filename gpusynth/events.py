"""Time-stamped MIDI events as one structured numpy dtype.

EVENT_DTYPE fields:
  time    int64   absolute sample time (frames since the sink started)
  chan    int32   channel index = group * 16 + channel (group 0-based, channel 0..15)
  status  uint8   MIDI status high nibble with channel stripped (0x80 .. 0xE0), or 0xF0 for SysEx
  data1   uint8   first data byte
  data2   uint8   second data byte
  sysex   int32   index into the side list of SysEx payloads (status 0xF0), else -1

Events are sorted by time with a stable sort (file order kept within one time).
"""
from __future__ import annotations

import numpy as np

# the status constants are defined with the message table (midi.py) and re-exported here
from .midi import (NOTE_OFF, NOTE_ON, POLY_PRESSURE, CONTROL, PROGRAM,  # noqa: F401
                   CHAN_PRESSURE, PITCH_BEND, SYSEX)

EVENT_DTYPE = np.dtype([
    ("time", np.int64),
    ("chan", np.int32),
    ("status", np.uint8),
    ("data1", np.uint8),
    ("data2", np.uint8),
    ("sysex", np.int32),
])


def make_events(n: int = 0) -> np.ndarray:
    e = np.zeros(n, dtype=EVENT_DTYPE)
    e["sysex"] = -1
    return e


def event_array(rows) -> np.ndarray:
    """Build an event array from (time, chan, status, data1, data2) tuples (for tests and tools)."""
    rows = list(rows)
    e = make_events(len(rows))
    for i, r in enumerate(rows):
        e[i]["time"], e[i]["chan"], e[i]["status"], e[i]["data1"], e[i]["data2"] = r[:5]
    return e
