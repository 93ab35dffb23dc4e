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


class ArrayCursor:
    """A streaming source (``Synth.stream``) over events already in memory: ``read(until,
    max_events)`` returns the next events with time < until (at most max_events) and the
    payloads their ``sysex`` fields index; ``position``: every event before it has been
    returned; ``done``: none left. Events are sorted stably by time first."""

    def __init__(self, events: np.ndarray, sysex=None):
        e = np.asarray(events)
        if e.dtype != EVENT_DTYPE:
            raise TypeError("events must be an EVENT_DTYPE array")
        self._e = e[np.argsort(e["time"], kind="stable")]
        self._sysex = list(sysex or [])
        self._i = 0
        self.position = int(self._e["time"][0]) if len(self._e) else 0

    @property
    def done(self) -> bool:
        return self._i >= len(self._e)

    def read(self, until: int, max_events: int | None = None):
        t = self._e["time"]
        j = int(np.searchsorted(t, until, side="left"))
        if max_events is not None:
            j = min(j, self._i + max(1, int(max_events)))
        out = self._e[self._i:j].copy()
        self._i = j
        if j >= len(t):
            self.position = max(self.position, int(until))
        else:
            # complete up to the next event's time (or until, when everything before it is out)
            self.position = max(self.position, min(int(until), int(t[j])))
        sx = np.flatnonzero(out["status"] == SYSEX)
        payloads = []
        for k, i in enumerate(sx):
            payloads.append(self._sysex[int(out["sysex"][i])])
            out["sysex"][i] = k
        return out, payloads
