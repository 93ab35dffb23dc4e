"""Standard MIDI File (SMF) reading and writing, streaming.

``load_smf(path_or_bytes, decoder="auto") -> Song`` makes ONE pass over the file (the scan): it
validates the chunk index and, per track, collects tempo events, the end tick, port (0x21)
metas and counts. A path is mapped read-only (mmap) and the mapping kept; bytes are kept as they
are. The Song holds no per-event arrays: its memory is O(tracks + tempo events + SysEx count).
Events are decoded lazily by ``Song.cursor(sample_rate)``: an EventCursor whose ``read(until,
max_events=None)`` returns the next events with sample time < until (EVENT_DTYPE) and the SysEx
payloads their ``sysex`` fields index. Each track has a resumable decoder (byte position, tick,
running status, port group, tempo segment, pending split SysEx) and the tracks are merged by
(sample time, track index), so memory is bounded by the window and the track count, never by
the file. ``Song.events(sample_rate)`` (everything in one array) and the per-event arrays
``Song.seconds`` etc. remain for small files and tests. ``write_smf`` writes files (tests and
benchmarks use it to generate material).

Two decoders give identical results: ``native`` (gpusynth/smf_decode.c, ``NATIVE``: built,
cached and loaded by gpusynth.compiled) and ``reference`` (pure Python, the definition; used
when no compiler works). ``decoder="auto"`` takes native when it builds.

Parsing rules (what real files need, beyond the letter of the spec):

* Running status survives meta events and SysEx (many files rely on it), and also the illegal
  system common / real-time bytes F1-F6, F8-FE, which are skipped together with their data
  bytes (F1, F3: one, F2: two, others none).
* A data byte with no running status to apply, or a variable-length quantity longer than four
  bytes, makes the file unreadable: MidiFileError.
* A missing end-of-track is tolerated; events after an end-of-track are ignored. A track chunk
  whose length overruns the end of the file by a little (at most 64 bytes, or a quarter of its
  declared length) is read as far as the file goes; so is a track that overruns by more when it
  has no end-of-track in the bytes that are there (a truncated file); then tracks missing at
  the end of the file are tolerated too. An event cut off by the end of a chunk is dropped.
* Wrong track lengths (black-MIDI tools write them): a track whose end-of-track is followed by
  ``MTrk`` before its declared end is cut there (the next track starts at that ``MTrk``); a
  track without end-of-track whose declared end is not followed by a chunk header is read on to
  the next ``MTrk`` (unless that makes it unreadable).
* Chunks other than MTrk with a printable 4-character type are skipped. Garbage where a chunk
  header should be makes the reader look for the next ``MTrk``; trailing bytes after the last
  track are ignored. Fewer MTrk chunks than the header declares is an error (except after a
  truncated last track); extra ones are ignored (with a warning).
* Every repair is recorded in ``Song.warnings``, aggregated: one line per kind (a kind seen once
  keeps its specific message, e.g. "track 3: no end-of-track"; seen more often it reads e.g.
  "312 tracks without end-of-track (first: track 4)").
* SysEx: an F0 event is stored as ``b"\\xF0" + payload`` (the payload normally ends with F7).
  An F0 packet without a final F7 followed by F7 packets is one message split into packets; it
  is joined and kept at the time of its first packet. Any other F7 ("escape") event whose bytes
  start with F0 is a SysEx too; one that holds a single channel message is read as that message;
  other escapes are ignored.
* Meta 0x21 (MIDI port) sets the channel group of the following events of its track:
  ``chan = port * 16 + channel``. SysEx events get ``chan = group * 16``.
* Timing: PPQ division uses the tempo map (default 500000 us per quarter). In formats 0 and 1
  the tempo events of all tracks form one map (at equal ticks the later track wins). SMPTE
  division ignores tempo: seconds = ticks / (fps * ticks_per_frame), with -29 meaning
  30000/1001 fps (30 drop-frame). Format 2: every track is an independent sequence with its own
  tempo map (starting at the default tempo), and the tracks play one after another, each
  starting when the previous one ends (its end-of-track, or its last event). A format 0 file
  with several tracks is read like format 1.
* Times are exact: the elapsed time is accumulated as an integer number of
  (microseconds x ticks) and divided once, so a time is the correctly rounded float64 (past
  2**62 microsecond-ticks, absurd tick values, plain float64 arithmetic is used). The sample
  time is round(seconds * rate), half to even; events are sorted by sample time, ties by track
  index and then file order. A sample time past the int64 range saturates, and a track's
  sample times never decrease (only the float path for absurd ticks could make them).
"""
from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import numpy as np

from .compiled import I64, PTR, Helper, engine_choice
from .events import EVENT_DTYPE
from .midi import DATA_LEN, SYSEX

__all__ = [
    "MidiFileError", "Song", "EventCursor", "load_smf", "write_smf", "tempo_meta", "port_meta",
    "DEFAULT_TEMPO", "native_decoder_error",
]

DEFAULT_TEMPO = 500_000  # microseconds per quarter note (120 bpm)
SATURATE_S = float(2**63 - 1) / 192_000   # later event times saturate at int64 max samples

# data bytes after each status byte, from the message table (midi.py); a plain list is the
# fastest to index in the parse loop
_DATA_LEN = DATA_LEN.tolist()
_SMPTE_FPS = {24: (24, 1), 25: (25, 1), 29: (30000, 1001), 30: (30, 1)}
_I64_MAX = (1 << 63) - 1
_I64_MIN = -(1 << 63)
_TWO63 = 9223372036854775808.0

# end reasons of a track scan, error codes, SysEx kinds (as in smf_decode.c)
END_EOT, END_NOEOT, END_TRUNC, END_ERR = 0, 1, 2, 3
ERR_DELTA_VLQ, ERR_NO_RUNNING, ERR_LEN_VLQ = 1, 2, 3
SX_COMPLETE, SX_SPLIT, SX_ESCAPE = 0, 1, 2
SCAN_FIELDS = ("status", "err_code", "err_pos", "err_byte", "eot_end", "trunc_pos",
               "end_tick", "last_tick", "n_kept", "n_notes", "n_sysex", "max_group",
               "n_illegal", "ill_status", "ill_pos", "n_short", "short_pos",
               "n_tempo", "n_split")


class MidiFileError(ValueError):
    """A file that cannot be read as a Standard MIDI File. Message: ``"<path>: <reason>"``."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


# ------------------------------------------------------------------------------- warnings

_MULTI = {
    "garbage": "{n} stretches of garbage skipped ({total} bytes; first: {first})",
    "chunk": "{n} non-MIDI chunks skipped (first: {first})",
    "overrun": "{n} track lengths overrun the file (first: {first})",
    "toolong": "{n} track lengths too long, next MTrk found after the end-of-track "
               "(first: {first})",
    "tooshort": "{n} track lengths too short, read on to the next MTrk (first: {first})",
    "short_tempo": "{total} short tempo metas in {n} tracks (first: {first})",
    "after_eot": "{n} tracks with bytes after end-of-track ignored ({total} bytes; "
                 "first: {first})",
    "no_eot": "{n} tracks without end-of-track (first: {first})",
    "trunc": "{n} truncated tracks: final event dropped (first: {first})",
    "illegal": "{total} illegal system messages skipped in {n} tracks (first: {first})",
}


class _Warnings:
    """Repairs, aggregated per kind, in the order each kind was first seen."""

    def __init__(self):
        self._kinds: dict = {}

    def add(self, kind: str, single: str, first: str = "", total: int = 1):
        k = self._kinds.get(kind)
        if k is None:
            self._kinds[kind] = [1, total, single, first]
        else:
            k[0] += 1
            k[1] += total

    def lines(self) -> list:
        out = []
        for kind, (n, total, single, first) in self._kinds.items():
            if n == 1 or kind not in _MULTI:
                out.append(single)
            else:
                out.append(_MULTI[kind].format(n=n, total=total, first=first))
        return out


# ------------------------------------------------------------------- the track state machine

def _py_events(d, pos: int, end: int, sc=None):
    """Resumable decoder of one track body d[pos:end] (the pure-Python twin of ``step`` in
    smf_decode.c): yields (tick, status, chan, data1, data2, sysex kind, data offset, length)
    for every kept event. With ``sc`` (a _Scan), it also records what the scan needs; the
    end reason goes to sc.status."""
    DL = _DATA_LEN
    tick = 0
    running = 0
    group = 0
    pending = False
    pending_off = 0
    ev_start = pos
    while True:
        if pos >= end:
            if sc is not None:
                sc.status = END_NOEOT
            return
        ev_start = pos
        b = d[pos]
        pos += 1
        if b < 0x80:
            tick += b
        else:
            dv = b & 0x7F
            k = 0
            while k < 3:
                if pos >= end:
                    if sc is not None:
                        sc.status, sc.trunc_pos = END_TRUNC, ev_start
                    return
                b = d[pos]
                pos += 1
                dv = (dv << 7) | (b & 0x7F)
                if b < 0x80:
                    break
                k += 1
            if k == 3:
                if sc is not None:
                    sc.status, sc.err_code, sc.err_pos = END_ERR, ERR_DELTA_VLQ, ev_start
                return
            tick += dv
        if pos >= end:
            if sc is not None:
                sc.status, sc.trunc_pos = END_TRUNC, ev_start
            return
        s = d[pos]
        if s < 0x80:
            if not running:
                if sc is not None:
                    sc.status, sc.err_code, sc.err_pos, sc.err_byte = \
                        END_ERR, ERR_NO_RUNNING, pos, s
                return
            s = running
        else:
            pos += 1
        if s < 0xF0:
            running = s
            n = DL[s]
            if pos + n > end:
                if sc is not None:
                    sc.status, sc.trunc_pos = END_TRUNC, ev_start
                return
            d1 = d[pos] & 0x7F
            d2 = d[pos + 1] & 0x7F if n == 2 else 0
            pos += n
            yield (tick, s & 0xF0, group * 16 + (s & 0x0F), d1, d2, 0, 0, 0)
            continue
        if s == 0xFF or s == 0xF0 or s == 0xF7:
            mtype = 0
            if s == 0xFF:
                if pos >= end:
                    if sc is not None:
                        sc.status, sc.trunc_pos = END_TRUNC, ev_start
                    return
                mtype = d[pos]
                pos += 1
            length = 0
            k = 0
            cut = False
            while k < 4:
                if pos >= end:
                    cut = True
                    break
                c = d[pos]
                pos += 1
                length = (length << 7) | (c & 0x7F)
                if c < 0x80:
                    break
                k += 1
            if cut or (k < 4 and length > end - pos):
                if sc is not None:
                    sc.status, sc.trunc_pos = END_TRUNC, ev_start
                return
            if k == 4:
                if sc is not None:
                    sc.status, sc.err_code, sc.err_pos = END_ERR, ERR_LEN_VLQ, ev_start
                return
            dp = pos
            pos += length
            if sc is not None:
                sc.end_tick = tick
            if s == 0xFF:
                if mtype == 0x2F:
                    if sc is not None:
                        sc.status, sc.eot_end = END_EOT, pos
                    return
                if mtype == 0x51:
                    if sc is not None:
                        if length >= 3:
                            sc.tempos.append((tick, (d[dp] << 16) | (d[dp + 1] << 8) | d[dp + 2]))
                        else:
                            if not sc.n_short:
                                sc.short_pos = ev_start
                            sc.n_short += 1
                elif mtype == 0x21 and length >= 1:
                    group = d[dp]
                continue
            if s == 0xF0:
                term = length > 0 and d[dp + length - 1] == 0xF7
                pending = not term
                if not term:
                    pending_off = dp
                yield (tick, 0xF0, group * 16, 0, 0, SX_COMPLETE if term else SX_SPLIT, dp,
                       length)
                continue
            if pending:  # continuation packet of a split SysEx
                if sc is not None and length > 0:
                    sc.splits.append((pending_off, dp, length))
                if length > 0 and d[dp + length - 1] == 0xF7:
                    pending = False
                continue
            if length >= 1 and d[dp] == 0xF0:
                yield (tick, 0xF0, group * 16, 0, 0, SX_ESCAPE, dp, length)
                continue
            if length >= 2:
                es = d[dp]
                if 0x80 <= es < 0xF0 and length == 1 + DL[es]:
                    # an escaped channel message
                    yield (tick, es & 0xF0, group * 16 + (es & 0x0F), d[dp + 1] & 0x7F,
                           d[dp + 2] & 0x7F if length == 3 else 0, 0, 0, 0)
            continue  # other escapes: nothing for a player
        # illegal inside a file (F1-F6, F8-FE): skip it and its data bytes
        for _ in range(DL[s]):
            if pos < end and d[pos] < 0x80:
                pos += 1
        if sc is not None:
            sc.end_tick = tick
            if not sc.n_illegal:
                sc.ill_status, sc.ill_pos = s, ev_start
            sc.n_illegal += 1


class _Scan:
    """Scan result of one track (fields as SCAN_FIELDS, plus tempos (k, 2) and splits (k, 3))."""

    __slots__ = SCAN_FIELDS + ("tempos", "splits")

    def __init__(self):
        for f in SCAN_FIELDS:
            setattr(self, f, 0)
        self.last_tick = -1
        self.max_group = -1
        self.tempos = []
        self.splits = []


def _py_scan(d, body: int, end: int) -> _Scan:
    sc = _Scan()
    n_kept = n_notes = n_sysex = 0
    max_group = -1
    last_tick = -1
    for ev in _py_events(d, body, end, sc):
        n_kept += 1
        last_tick = ev[0]
        st = ev[1]
        if st == 0xF0:
            n_sysex += 1
        elif st == 0x90 and ev[4]:
            n_notes += 1
        g = ev[2] >> 4
        if g > max_group:
            max_group = g
    sc.n_kept, sc.n_notes, sc.n_sysex, sc.max_group, sc.last_tick = \
        n_kept, n_notes, n_sysex, max_group, last_tick
    if last_tick > sc.end_tick:
        sc.end_tick = last_tick
    sc.n_tempo, sc.n_split = len(sc.tempos), len(sc.splits)
    sc.tempos = np.asarray(sc.tempos, np.int64).reshape(-1, 2)
    sc.splits = np.asarray(sc.splits, np.int64).reshape(-1, 3)
    return sc


# --------------------------------------------------------------------------- native decoder

def _check_native(lib):
    if lib.smf_scan_fields() != len(SCAN_FIELDS):
        raise RuntimeError("smf_decode.c does not match smf.py (scan fields)")
    if EVENT_DTYPE.itemsize != 19 or [EVENT_DTYPE.fields[n][1] for n in EVENT_DTYPE.names] \
            != [0, 8, 12, 13, 14, 15]:
        raise RuntimeError("EVENT_DTYPE layout changed: smf_decode.c writes the old one")


NATIVE = Helper(
    "smf_decode", [Path(__file__).with_name("smf_decode.c")],
    ["-O2", "-shared", "-fPIC", "-ffp-contract=off", "-fno-math-errno", "-x", "c++"],
    {"smf_scan_fields": (I64, []),
     "smf_track_size": (I64, []),
     "smf_ctx_size": (I64, []),
     "smf_scan_track": (I64, [PTR, I64, I64, PTR, PTR, I64, PTR, I64]),
     "smf_cursor_init": (None, [PTR, PTR, I64, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR,
                                PTR, PTR]),
     "smf_cursor_read": (I64, [PTR, I64, I64, PTR, PTR, I64, PTR])},
    check=_check_native, label="native SMF decoder")


def native_decoder_error() -> str | None:
    """Why the native SMF decoder is unavailable (None when it works)."""
    return NATIVE.error()


class _NativeScanner:
    def __init__(self, lib, arr: np.ndarray):
        self.lib = lib
        self.arr = arr
        self.addr = arr.ctypes.data
        self.out = np.zeros(len(SCAN_FIELDS), np.int64)
        self.tempo = np.zeros(2 * 256, np.int64)
        self.split = np.zeros(3 * 64, np.int64)

    def __call__(self, body: int, end: int) -> _Scan:
        out = self.out
        while True:
            self.lib.smf_scan_track(self.addr, body, end, out.ctypes.data,
                                    self.tempo.ctypes.data, len(self.tempo) // 2,
                                    self.split.ctypes.data, len(self.split) // 3)
            nt, ns = int(out[17]), int(out[18])
            if nt <= len(self.tempo) // 2 and ns <= len(self.split) // 3:
                break
            if nt > len(self.tempo) // 2:
                self.tempo = np.zeros(2 * max(nt, 2 * len(self.tempo)), np.int64)
            if ns > len(self.split) // 3:
                self.split = np.zeros(3 * max(ns, 2 * len(self.split)), np.int64)
        sc = _Scan()
        for f, v in zip(SCAN_FIELDS, out.tolist()):
            setattr(sc, f, v)
        sc.tempos = self.tempo[:2 * nt].reshape(-1, 2).copy()
        sc.splits = self.split[:3 * ns].reshape(-1, 3).copy()
        return sc


# ----------------------------------------------------------------------------------- timing

class _TempoMap:
    """One tempo map: segments (start tick, us per quarter), the exact elapsed
    microsecond-ticks at each segment start, and the tick -> seconds conversion."""

    def __init__(self, tempos: np.ndarray, ppq: int):
        tempos = np.asarray(tempos, np.int64).reshape(-1, 2)
        if len(tempos):
            tempos = tempos[np.argsort(tempos[:, 0], kind="stable")]
        ticks = np.concatenate([np.zeros(1, np.int64), tempos[:, 0]])
        vals = np.concatenate([np.full(1, DEFAULT_TEMPO, np.int64), tempos[:, 1]])
        keep = np.ones(len(ticks), bool)
        keep[:-1] = ticks[1:] != ticks[:-1]  # at one tick the last tempo wins
        self.st = np.ascontiguousarray(ticks[keep])
        self.v = np.ascontiguousarray(vals[keep])
        self.maxv = int(self.v.max())
        if int(self.st[-1]) * self.maxv < (1 << 62):
            acc = np.zeros(len(self.st), np.int64)
            np.cumsum(np.diff(self.st) * self.v[:-1], out=acc[1:])
            self.acc_last = int(acc[-1])
            self.acc = acc
            self.accf = acc.astype(np.float64)
        else:  # absurd ticks: exact Python integers
            accl = [0]
            for k in range(1, len(self.st)):
                accl.append(accl[-1] + int(self.st[k] - self.st[k - 1]) * int(self.v[k - 1]))
            self.acc_last = accl[-1]
            self.acc = np.array(accl if accl[-1] < (1 << 63) else [0] * len(accl), np.int64)
            self.accf = np.array([float(a) for a in accl], np.float64)
        self.vf = self.v.astype(np.float64)
        self.scale = 1e6 * ppq
        self.nseg = len(self.st)

    def fpath(self, tmax: int) -> bool:
        """Whether the ticks of a sequence whose largest tick is tmax take the float path."""
        return self.acc_last + max(0, tmax - int(self.st[-1])) * self.maxv >= (1 << 62)

    def secs(self, ticks, fpath) -> np.ndarray:
        ticks = np.asarray(ticks, np.int64)
        fp = np.broadcast_to(np.asarray(fpath, bool), ticks.shape)
        out = np.empty(ticks.shape, np.float64)
        idx = np.searchsorted(self.st, ticks, side="right") - 1
        m = ~fp
        if m.any():
            i = idx[m]
            num = self.acc[i] + (ticks[m] - self.st[i]) * self.v[i]
            out[m] = num.astype(np.float64) / self.scale
        if fp.any():
            i = idx[fp]
            num = self.accf[i] + (ticks[fp] - self.st[i]).astype(np.float64) * self.vf[i]
            out[fp] = num / self.scale
        return out

    def secs1(self, tick: int, fpath: bool, seg: int = 0):
        """One tick (Python scalars; ``seg``: a segment index not after the tick's).
        Returns (seconds, segment index)."""
        st = self._stl
        n = len(st)
        while seg + 1 < n and st[seg + 1] <= tick:
            seg += 1
        if fpath:
            return (self._accfl[seg] + float(tick - st[seg]) * self._vfl[seg]) / self.scale, seg
        return float(self._accl[seg] + (tick - st[seg]) * self._vl[seg]) / self.scale, seg

    def python_lists(self):
        if not hasattr(self, "_stl"):
            self._stl = self.st.tolist()
            self._vl = self.v.tolist()
            self._accl = self.acc.tolist()
            self._accfl = self.accf.tolist()
            self._vfl = self.vf.tolist()
        return self


class _Smpte:
    """SMPTE division: seconds = ticks * den / (num * ticks_per_frame); tempo ignored."""

    def __init__(self, fps: int, tpf: int):
        num, self.den = _SMPTE_FPS[fps]
        self.div = float(num * tpf)
        self.k = self.den / float(num * tpf)

    def fpath(self, tmax: int) -> bool:
        return tmax >= (1 << 62) // self.den

    def secs(self, ticks, fpath) -> np.ndarray:
        ticks = np.asarray(ticks, np.int64)
        fp = np.broadcast_to(np.asarray(fpath, bool), ticks.shape)
        out = np.empty(ticks.shape, np.float64)
        m = ~fp
        out[m] = (ticks[m] * self.den).astype(np.float64) / self.div
        out[fp] = ticks[fp].astype(np.float64) * self.k
        return out

    def secs1(self, tick: int, fpath: bool, seg: int = 0):
        if fpath:
            return float(tick) * self.k, 0
        return float(tick * self.den) / self.div, 0

    def python_lists(self):
        return self


def _sample(secs: float, rate: float) -> int:
    x = secs * rate
    if x >= _TWO63:
        return _I64_MAX
    return round(x)


# ------------------------------------------------------------------------------ the index

class _Index:
    """What the scan keeps of a file: the bytes, per-track chunk bounds, counts and timing."""

    def __init__(self, buf, arr, base, fmt, ppq, smpte):
        self.buf = buf          # bytes or mmap (kept open)
        self.bytes_per_event = 0.0
        self.arr = arr          # np.uint8 view of buf (native decoder addresses)
        self.base = base        # offset of the SMF inside buf (RMID wrapper)
        self.fmt = fmt
        self.ppq = ppq
        self.smpte = smpte
        self.splits: dict = {}  # F0 data offset -> [(offset, length), ...] continuation packets

    def finish(self, bodies, ends, scans):
        """Per-track arrays and timing from the scan results."""
        self.ntracks = len(bodies)
        self.body = np.asarray(bodies, np.int64)
        self.end = np.asarray(ends, np.int64)
        self.n_kept = np.array([s.n_kept for s in scans], np.int64)
        self.n_sysex = np.array([s.n_sysex for s in scans], np.int64)
        self.last_tick = np.array([s.last_tick for s in scans], np.int64)
        self.end_tick = np.array([s.end_tick for s in scans], np.int64)
        self.sx_base = np.concatenate([[0], np.cumsum(self.n_sysex)[:-1]]).astype(np.int64)
        for s in scans:
            for off, p, ln in s.splits.tolist():
                self.splits.setdefault(off, []).append((p, ln))
        has = self.n_kept > 0
        if self.smpte is not None:
            clock = _Smpte(*self.smpte)
            self.maps = [clock]
        elif self.fmt != 2:
            tem = [s.tempos for s in scans if len(s.tempos)]
            tem = np.concatenate(tem) if tem else np.zeros((0, 2), np.int64)
            self.maps = [_TempoMap(tem, self.ppq)]
        else:
            self.maps = [_TempoMap(s.tempos, self.ppq) for s in scans]
        self.map_of = (np.arange(self.ntracks) if len(self.maps) > 1
                       else np.zeros(self.ntracks, np.int64))
        self.fpath = np.array([self.maps[m].fpath(int(t)) if k else False
                               for m, t, k in zip(self.map_of.tolist(),
                                                  self.last_tick.tolist(), has.tolist())], bool)
        self.start = np.zeros(self.ntracks, np.float64)
        if self.fmt == 2:
            offset = 0.0
            for i in range(self.ntracks):
                tm = self.maps[int(self.map_of[i])]
                et = int(self.end_tick[i])
                self.start[i] = offset
                offset = offset + float(tm.secs([et], tm.fpath(et))[0])
            duration = offset
        else:
            tm = self.maps[0]
            ends = tm.secs(self.end_tick, tm.fpath(int(self.end_tick.max())))
            duration = float(ends.max())
        if has.any():
            if len(self.maps) == 1:
                last = self.maps[0].secs(self.last_tick[has], self.fpath[has])
            else:
                last = np.array([self.maps[int(self.map_of[i])].secs([int(self.last_tick[i])],
                                                   bool(self.fpath[i]))[0]
                                 for i in np.flatnonzero(has)])
            last = last + self.start[has]
            duration = max(duration, float(last.max()))
        self.duration = duration

    def payload(self, kind: int, off: int, ln: int) -> bytes:
        data = self.buf[off:off + ln]
        if kind == SX_ESCAPE:
            return bytes(data)
        msg = b"\xF0" + data
        if kind == SX_SPLIT:
            parts = self.splits.get(off)
            if parts:
                msg += b"".join(self.buf[p:p + n] for p, n in parts)
        return msg

    def native_maps(self):
        """The tempo maps concatenated (C arrays) and each map's (offset, segments)."""
        if not hasattr(self, "_nmaps"):
            if self.smpte is not None:
                z = np.zeros(1, np.int64)
                self._nmaps = (z, z, np.zeros(1), z, np.zeros(1), [(0, 1)])
            else:
                offs, o = [], 0
                for m in self.maps:
                    offs.append((o, m.nseg))
                    o += m.nseg

                def cat(name, dt):
                    return np.ascontiguousarray(np.concatenate([getattr(m, name)
                                                                for m in self.maps]), dt)
                self._nmaps = (cat("st", np.int64), cat("acc", np.int64), cat("accf", np.float64),
                               cat("v", np.int64), cat("vf", np.float64), offs)
        return self._nmaps


# ---------------------------------------------------------------------------------- cursors

_EMPTY_SX = np.zeros((0, 5), np.int64)


class _NativeImpl:
    """Cursor state in smf_decode.c: per-track decoders and the (time, track) heap."""

    CHUNK = 1 << 16
    SXCAP = 1024

    def __init__(self, idx: _Index, lib, rate: float):
        self.idx, self.lib = idx, lib
        T = idx.ntracks
        self.trbuf = np.zeros(max(1, T) * int(lib.smf_track_size()), np.uint8)
        self.heap = np.zeros(2 * max(1, T), np.int64)
        self.ctx = np.zeros(int(lib.smf_ctx_size()), np.uint8)
        st, acc, accf, v, vf, offs = idx.native_maps()
        offs = np.asarray(offs, np.int64).reshape(-1, 2)
        ti = np.zeros((T, 4), np.int64)
        ti[:, 0] = idx.body
        ti[:, 1] = np.where(idx.n_kept > 0, idx.end, idx.body)  # nothing to decode: empty
        ti[:, 2:] = offs[idx.map_of]
        fpath = idx.fpath.astype(np.int64)
        start = np.ascontiguousarray(idx.start, np.float64)
        if idx.smpte is not None:
            sm = idx.maps[0]
            dp = np.array([1.0, rate, sm.div, sm.k], np.float64)
            ip = np.array([1, sm.den], np.int64)
        else:
            dp = np.array([1e6 * idx.ppq, rate, 1.0, 1.0], np.float64)
            ip = np.array([0, 1], np.int64)
        self._keep = (ti, fpath, start, st, acc, accf, v, vf, dp, ip)
        a = [x.ctypes.data for x in self._keep]
        lib.smf_cursor_init(self.ctx.ctypes.data, idx.arr.ctypes.data, T, self.trbuf.ctypes.data,
                            self.heap.ctypes.data, *a)
        self.sx = np.zeros((self.SXCAP, 5), np.int64)
        self.info = np.zeros(3, np.int64)
        self.read_chunk(0, 0)

    def read_chunk(self, until: int, cap: int):
        out = np.empty(cap, EVENT_DTYPE)
        n = self.lib.smf_cursor_read(self.ctx.ctypes.data, until, cap, out.ctypes.data,
                                     self.sx.ctypes.data, self.SXCAP, self.info.ctypes.data)
        nsx, self.next_t, self.alive = (int(x) for x in self.info)
        return out[:n], (self.sx[:nsx].copy() if nsx else _EMPTY_SX)

    def read(self, until: int, cap: int | None):
        evs, rows = [], []
        nsx = 0
        left = cap
        while True:
            c = self.CHUNK if left is None else min(left, self.CHUNK)
            ev, sx = self.read_chunk(until, c)
            if len(sx):
                if nsx:
                    m = ev["status"] == SYSEX
                    ev["sysex"][m] += nsx
                nsx += len(sx)
                rows.append(sx)
            evs.append(ev)
            if left is not None:
                left -= len(ev)
            if not self.alive or (self.next_t >= until and until != _I64_MAX) or left == 0:
                break
        ev = evs[0] if len(evs) == 1 else np.concatenate(evs)
        rows = rows[0] if len(rows) == 1 else (np.concatenate(rows) if rows else _EMPTY_SX)
        return ev, rows


class _PyImpl:
    """Cursor state in Python: per-track generators (_py_events) and a staged window."""

    def __init__(self, idx: _Index, rate: float):
        self.idx = idx
        self.rate = rate
        d = idx.buf if isinstance(idx.buf, bytes) else memoryview(idx.buf)
        self.tracks = []
        for i in range(idx.ntracks):
            if idx.n_kept[i] == 0:
                continue
            tm = idx.maps[int(idx.map_of[i])].python_lists()
            tr = [i, _py_events(d, int(idx.body[i]), int(idx.end[i])), tm, bool(idx.fpath[i]),
                  float(idx.start[i]), 0, _I64_MIN, 0, None, None]
            # [track, gen, map, fpath, start, seg, prev time, sysex ordinal, next time, next ev]
            self._advance(tr)
            if tr[9] is not None:
                self.tracks.append(tr)
        self.staged = []
        self.sp = 0
        self.staged_until = _I64_MIN
        self._update()

    def _advance(self, tr):
        ev = next(tr[1], None)
        if ev is None:
            tr[9] = None
            return
        secs, tr[5] = tr[2].secs1(ev[0], tr[3], tr[5])
        t = _sample(secs + tr[4], self.rate)
        if t < tr[6]:
            t = tr[6]
        tr[6] = t
        tr[8] = t
        if ev[1] == 0xF0:
            tr[9] = (ev, tr[7])
            tr[7] += 1
        else:
            tr[9] = (ev, -1)

    def _update(self):
        if self.sp < len(self.staged):
            self.next_t = self.staged[self.sp][0]
        else:
            self.next_t = min((tr[8] for tr in self.tracks), default=_I64_MAX)
        self.alive = len(self.staged) - self.sp + len(self.tracks)

    def read(self, until: int, cap: int | None):
        everything = until == _I64_MAX
        if until > self.staged_until or everything:
            new = []
            live = []
            for tr in self.tracks:
                i = tr[0]
                while tr[9] is not None and (tr[8] < until or everything):
                    new.append((tr[8], i, tr[9]))
                    self._advance(tr)
                if tr[9] is not None:
                    live.append(tr)
            self.tracks = live
            new.sort(key=lambda x: x[0])  # stable: track order, then file order
            if self.sp:
                del self.staged[:self.sp]
                self.sp = 0
            self.staged.extend(new)
            self.staged_until = max(self.staged_until, until)
        st = self.staged
        j = self.sp
        stop = len(st) if cap is None else min(len(st), j + cap)
        while j < stop and (st[j][0] < until or everything):
            j += 1
        out = st[self.sp:j]
        self.sp = j
        self._update()
        ev = np.zeros(len(out), EVENT_DTYPE)
        rows = []
        if out:
            recs = []
            for t, i, (e, o) in out:
                if e[1] == 0xF0:
                    recs.append((t, e[2], 0xF0, 0, 0, len(rows)))
                    rows.append((i, e[5], e[6], e[7], o))
                else:
                    recs.append((t, e[2], e[1], e[3], e[4], -1))
            ev = np.array(recs, dtype=EVENT_DTYPE)
        return ev, (np.array(rows, np.int64).reshape(-1, 5) if rows else _EMPTY_SX)


class _ArrayImpl:
    """Cursor over a Song built from in-memory arrays (Song(..., seconds=..., chan=...))."""

    def __init__(self, song, rate: float):
        self.ev = song.events(rate)
        self.sysex = song.sysex
        self.i = 0
        self._update()

    def _update(self):
        self.alive = len(self.ev) - self.i
        self.next_t = int(self.ev["time"][self.i]) if self.alive else _I64_MAX

    def read(self, until: int, cap: int | None):
        t = self.ev["time"]
        j = len(t) if until == _I64_MAX else int(np.searchsorted(t, until, side="left"))
        j = max(j, self.i)
        if cap is not None:
            j = min(j, self.i + cap)
        ev = self.ev[self.i:j].copy()
        self.i = j
        self._update()
        m = ev["sysex"] >= 0
        g = ev["sysex"][m].astype(np.int64)
        rows = np.zeros((len(g), 5), np.int64)
        rows[:, 4] = g
        ev["sysex"][m] = np.arange(len(g))
        return ev, rows


class EventCursor:
    """Streams a Song's events in (sample time, track, file order) order.

    ``read(until, max_events=None) -> (events, sysex)``: every not-yet-returned event whose
    sample time is < until (at most max_events of them), an EVENT_DTYPE array whose ``sysex``
    field indexes the returned list of payloads (bytes, each starting 0xF0).
    ``until = 2**63 - 1`` means everything. ``position``: every event with time < position has
    been returned (== until after a complete read). ``done``: no events left. Cursors of one
    Song are independent."""

    def __init__(self, song: "Song", sample_rate: float, _impl=None):
        if not sample_rate > 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate!r}")
        self.song = song
        self.sample_rate = float(sample_rate)
        self._impl = _impl
        self.position = 0
        self._read_bytes = 0.0

    @property
    def done(self) -> bool:
        return self._impl.alive == 0

    def read(self, until, max_events=None):
        ev, payloads, _ = self._read(until, max_events)
        return ev, payloads

    def _read(self, until, max_events=None):
        until = min(max(int(until), _I64_MIN), _I64_MAX)
        if max_events is not None:
            max_events = int(max_events)
            if max_events <= 0:
                return np.zeros(0, EVENT_DTYPE), [], np.zeros(0, np.int64)
        impl = self._impl
        ev, rows = impl.read(until, max_events)
        if isinstance(impl, _ArrayImpl):
            gidx = rows[:, 4].copy()
            payloads = [impl.sysex[g] for g in gidx.tolist()]
        else:
            idx = self.song._idx
            payloads = [idx.payload(k, o, n) for _, k, o, n, _ in rows.tolist()]
            gidx = idx.sx_base[rows[:, 0]] + rows[:, 4]
            self._read_bytes += len(ev) * idx.bytes_per_event
            if self._read_bytes > RELEASE_BYTES:
                self._read_bytes = 0.0
                _release_pages(idx.buf)
        if impl.alive == 0 or impl.next_t >= until:
            self.position = max(self.position, until)
        else:
            self.position = max(self.position, int(impl.next_t))
        return ev, payloads, gidx


def _release_pages(buf):
    """Drop a mapped file's pages from this process' resident set (MADV_DONTNEED; they stay in
    the page cache, a later read faults them back in cheaply). A cursor reads every track's
    bytes once, so without this the resident set of a render would end up as large as the
    file; cursors call it every RELEASE_BYTES of file read. What stays mapped between two calls
    is what one read touches: on kernels that keep files in large folios a fault maps a whole
    folio (up to 2 MB), so up to about 2 MB per track, never more than the file."""
    if isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        try:
            buf.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


RELEASE_BYTES = 256 << 10   # (a fault maps a whole large folio, up to 2 MB: measured ~1 MB per track per read)


# ------------------------------------------------------------------------------------- Song

_ARRAY_FIELDS = ("seconds", "chan", "status", "data1", "data2", "sysex_index", "track")
_ARRAY_DT = (np.float64, np.int32, np.uint8, np.uint8, np.uint8, np.int32, np.int32)


class Song:
    """A scanned MIDI file.

    format, ntracks (MTrk chunks read), division (raw header value), ticks_per_quarter (None for
    SMPTE division), smpte ((frames per second as in the file: 24/25/29/30, ticks per frame) or
    None), n_notes (note-ons with velocity > 0), n_events (channel and SysEx events kept),
    duration_s (time of the last event, end-of-track included), channel_groups (>= 1),
    warnings (repairs made while reading, one line per kind), path, decoder ("native" or
    "reference": which decoder reads the events).

    ``cursor(rate)`` streams the events; ``events(rate)``, ``sysex`` and the per-event arrays
    ``seconds, chan, status, data1, data2, sysex_index, track`` (track order, file order within a
    track) materialise the whole file: for small files and tests.

    A Song can also be built from in-memory arrays (``Song(format, ntracks, division,
    seconds=..., chan=..., status=..., data1=..., data2=..., sysex_index=..., track=...,
    sysex=[...])``); its cursor then reads those.
    """

    def __init__(self, format: int, ntracks: int, division: int, sysex=None, n_notes: int = 0,
                 duration_s: float = 0.0, channel_groups: int = 1,
                 ticks_per_quarter: int | None = None, smpte: tuple | None = None,
                 warnings=None, path: str = "<bytes>", seconds=None, chan=None, status=None,
                 data1=None, data2=None, sysex_index=None, track=None, n_events=None,
                 decoder: str = "reference", _idx=None):
        self.format = format
        self.ntracks = ntracks
        self.division = division
        self.n_notes = n_notes
        self.duration_s = duration_s
        self.channel_groups = channel_groups
        self.ticks_per_quarter = ticks_per_quarter
        self.smpte = smpte
        self.warnings = list(warnings or [])
        self.path = path
        self.decoder = decoder
        self._idx = _idx
        self._sysex = list(sysex) if sysex is not None else None
        self._arrays = None
        if _idx is None:
            n = 0 if seconds is None else len(seconds)
            given = (seconds, chan, status, data1, data2, sysex_index, track)
            self._arrays = {name: (np.asarray(a, dt) if a is not None else
                                   np.full(n, -1 if name == "sysex_index" else 0, dt))
                            for name, a, dt in zip(_ARRAY_FIELDS, given, _ARRAY_DT)}
            if self._sysex is None:
                self._sysex = []
            n_events = n
        self.n_events = int(n_events or 0)

    def __repr__(self):
        return (f"Song(path={self.path!r}, format={self.format}, ntracks={self.ntracks}, "
                f"n_notes={self.n_notes}, n_events={self.n_events}, "
                f"duration_s={self.duration_s:.3f}, decoder={self.decoder!r})")

    def cursor(self, sample_rate: float) -> EventCursor:
        """A new, independent EventCursor over the events at ``sample_rate``."""
        cur = EventCursor(self, sample_rate)
        if self._idx is None:
            cur._impl = _ArrayImpl(self, cur.sample_rate)
        elif self.decoder == "native":
            cur._impl = _NativeImpl(self._idx, NATIVE.load(), cur.sample_rate)
        else:
            cur._impl = _PyImpl(self._idx, cur.sample_rate)
        return cur

    def events(self, sample_rate: float) -> np.ndarray:
        """All events (EVENT_DTYPE), time = round(seconds * sample_rate) (int64), sorted by time
        (at equal times earlier tracks first, then file order); ``sysex`` indexes
        ``self.sysex``. Materialises the whole file: for small files and tests."""
        if not sample_rate > 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate!r}")
        if self._arrays is not None:
            a = self._arrays
            t = np.round(a["seconds"] * float(sample_rate)).astype(np.int64)
            order = np.argsort(t, kind="stable")
            out = np.empty(t.shape[0], dtype=EVENT_DTYPE)
            out["time"] = t[order]
            out["chan"] = a["chan"][order]
            out["status"] = a["status"][order]
            out["data1"] = a["data1"][order]
            out["data2"] = a["data2"][order]
            out["sysex"] = a["sysex_index"][order]
            return out
        ev, payloads, gidx = self.cursor(sample_rate)._read(_I64_MAX)
        m = ev["sysex"] >= 0
        if m.any():
            ev["sysex"][m] = gidx[ev["sysex"][m]]
        if self._sysex is None:
            sx = [b""] * int(self._idx.n_sysex.sum())
            for g, p in zip(gidx.tolist(), payloads):
                sx[g] = p
            self._sysex = sx
        return ev

    @property
    def sysex(self) -> list:
        """Every SysEx payload (bytes starting 0xF0) in track order, file order within a track.
        Materialises them (decodes the whole file once)."""
        if self._sysex is None:
            if self._idx.n_sysex.sum() == 0:
                self._sysex = []
            else:
                self.events(1000.0)
        return self._sysex

    @sysex.setter
    def sysex(self, payloads):
        self._sysex = list(payloads)

    def arrays(self) -> dict:
        """The whole file as per-event arrays (track order): ``seconds``, ``chan``, ``status``,
        ``data1``, ``data2``, ``sysex_index``, ``track``. Materialises every event (for small
        files, stems and tests); cached."""
        return self._materialise()

    def track_names(self) -> dict:
        """Track index -> track name (the first meta 0x03 near the track's start), from the
        file's bytes; {} for a song built from arrays."""
        buf = bytes(self._idx.buf) if self._idx is not None and self._idx.buf is not None \
            else None
        if buf is None and self.path and os.path.exists(self.path):
            with open(self.path, "rb") as f:
                buf = f.read()
        out = {}
        if not buf:
            return out
        pos = buf.find(b"MThd")
        if pos < 0 or pos + 8 > len(buf):
            return out
        pos += 8 + struct.unpack(">I", buf[pos + 4:pos + 8])[0]
        tno = 0
        while pos + 8 <= len(buf):
            tag, ln = buf[pos:pos + 4], struct.unpack(">I", buf[pos + 4:pos + 8])[0]
            body = buf[pos + 8:pos + 8 + ln]
            pos += 8 + ln
            if tag != b"MTrk":
                continue
            m = body.find(b"\xff\x03")
            if 0 <= m < 64 and m + 3 <= len(body):
                n = body[m + 2]
                if n < 0x80:
                    out[tno] = body[m + 3:m + 3 + n].decode("latin-1", "replace")
            tno += 1
        return out

    def tempo_summary(self) -> dict:
        """``tempo_changes`` (set-tempo events after the start), ``tempo_bpm_min``,
        ``tempo_bpm_max`` (over the tempo map, the default 120 bpm included until a first
        tempo); None where the song has no tempo map (SMPTE division, built from arrays)."""
        maps = getattr(self._idx, "maps", None)
        if self.smpte is not None or not maps \
                or not all(hasattr(m, "st") and hasattr(m, "v") for m in maps):
            return {"tempo_changes": None, "tempo_bpm_min": None, "tempo_bpm_max": None}
        v = np.concatenate([np.asarray(m.v, np.float64) for m in maps])
        v = v[v > 0]
        return {"tempo_changes": int(sum(len(m.st) - 1 for m in maps)),
                "tempo_bpm_min": float(60e6 / v.max()) if len(v) else None,
                "tempo_bpm_max": float(60e6 / v.min()) if len(v) else None}

    def _materialise(self) -> dict:
        if self._arrays is None:
            idx = self._idx
            d = idx.buf if isinstance(idx.buf, bytes) else memoryview(idx.buf)
            cols = {name: [] for name in _ARRAY_FIELDS}
            for i in range(idx.ntracks):
                if idx.n_kept[i] == 0:
                    continue
                evs = list(_py_events(d, int(idx.body[i]), int(idx.end[i])))
                tick, st, ch, d1, d2, _, _, _ = (np.asarray(c) for c in zip(*evs))
                tm = idx.maps[int(idx.map_of[i])]
                secs = tm.secs(tick.astype(np.int64), bool(idx.fpath[i]))
                if idx.fmt == 2:
                    secs = secs + idx.start[i]
                is_sx = st == SYSEX
                sx = np.full(len(evs), -1, np.int64)
                sx[is_sx] = idx.sx_base[i] + np.arange(int(is_sx.sum()))
                for name, a in zip(_ARRAY_FIELDS, (secs, ch, st, d1, d2, sx,
                                                   np.full(len(evs), i))):
                    cols[name].append(a)
            self._arrays = {name: (np.concatenate(cols[name]).astype(dt) if cols[name]
                                   else np.zeros(0, dt))
                            for name, dt in zip(_ARRAY_FIELDS, _ARRAY_DT)}
        return self._arrays

    # the old per-event arrays: materialise the whole file; for small files and tests
    seconds = property(lambda self: self._materialise()["seconds"],
                       doc="Per-event seconds (track order); materialises the whole file.")
    chan = property(lambda self: self._materialise()["chan"])
    status = property(lambda self: self._materialise()["status"])
    data1 = property(lambda self: self._materialise()["data1"])
    data2 = property(lambda self: self._materialise()["data2"])
    sysex_index = property(lambda self: self._materialise()["sysex_index"])
    track = property(lambda self: self._materialise()["track"])


# ----------------------------------------------------------------------------------- loading

def _unwrap_rmid(buf, path: str):
    """(start, end) of the SMF inside a RIFF RMID file."""
    pos = 12
    n = len(buf)
    while pos + 8 <= n:
        ctype = bytes(buf[pos:pos + 4])
        (clen,) = struct.unpack_from("<I", buf, pos + 4)
        if ctype == b"data":
            return pos + 8, min(n, pos + 8 + clen)
        pos += 8 + clen + (clen & 1)
    raise MidiFileError(path, "RIFF RMID file without a data chunk")


def load_smf(source, decoder: str = "auto") -> Song:
    """Scan a Standard MIDI File from a path (mapped read-only) or from bytes.

    ``decoder``: "auto" (native when it builds, else reference), "native" (BackendUnavailable
    when it cannot be built) or "reference" (names: gpusynth.compiled). Raises MidiFileError
    for anything that is not a readable MIDI file (OSError for a path that cannot be opened)."""
    lib = NATIVE.for_engine(engine_choice(decoder, "decoder"))
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = source if isinstance(source, bytes) else bytes(source)
        path = "<bytes>"
    else:
        path = str(os.fspath(source))
        with open(path, "rb") as f:
            buf = b""
            if os.fstat(f.fileno()).st_size > 0:
                try:
                    buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                except (OSError, ValueError):
                    buf = f.read()
    try:
        return _load(buf, path, lib)
    except MidiFileError:
        raise
    except (IndexError, struct.error, ValueError, OverflowError, KeyError) as e:  # safety net
        raise MidiFileError(path, f"internal parse error: {type(e).__name__}: {e}") from None


def _is_chunk_header(buf, pos: int, size: int) -> bool:
    if pos + 8 > size:
        return False
    c = bytes(buf[pos:pos + 4])
    return c == b"MTrk" or all(0x20 <= x < 0x7F for x in c)


def _track_warnings(W: _Warnings, sc: _Scan, tno: int, end: int, base: int):
    if sc.n_short:
        W.add("short_tempo", f"track {tno}: short tempo meta at byte {sc.short_pos - base}"
              if sc.n_short == 1 else f"track {tno}: {sc.n_short} short tempo metas (first at "
              f"byte {sc.short_pos - base})", f"track {tno} at byte {sc.short_pos - base}",
              sc.n_short)
    if sc.status == END_EOT:
        if sc.eot_end < end:
            k = end - sc.eot_end
            W.add("after_eot", f"track {tno}: {k} bytes after end-of-track ignored",
                  f"track {tno}, {k} bytes", k)
    elif sc.status == END_NOEOT:
        W.add("no_eot", f"track {tno}: no end-of-track", f"track {tno}")
    elif sc.status == END_TRUNC:
        W.add("trunc", f"truncated track {tno} at byte {sc.trunc_pos - base}: final event "
                       f"dropped", f"track {tno} at byte {sc.trunc_pos - base}")
    if sc.n_illegal:
        first = f"0x{sc.ill_status:02X} at byte {sc.ill_pos - base}"
        W.add("illegal", f"track {tno}: {sc.n_illegal} illegal system message(s) skipped "
                         f"(first: {first})", f"track {tno}, {first}", sc.n_illegal)


def _scan_error(path: str, sc: _Scan, tno: int, base: int) -> MidiFileError:
    if sc.err_code == ERR_DELTA_VLQ:
        why = "bad variable-length delta time"
    elif sc.err_code == ERR_NO_RUNNING:
        why = f"data byte 0x{sc.err_byte:02X} without a running status"
    else:
        why = "variable-length quantity longer than 4 bytes"
    return MidiFileError(path, f"{why} in track {tno} at byte {sc.err_pos - base}")


def _load(buf, path: str, lib) -> Song:
    n = len(buf)
    if n == 0:
        raise MidiFileError(path, "empty file")
    base, size = 0, n
    if bytes(buf[:4]) == b"RIFF" and bytes(buf[8:12]) == b"RMID":
        base, size = _unwrap_rmid(buf, path)
    if bytes(buf[base:base + 4]) != b"MThd":
        raise MidiFileError(path, "not a MIDI file (no MThd header)")
    if size - base < 14:
        raise MidiFileError(path, "truncated MThd header")
    hlen, fmt, ntracks, division = struct.unpack_from(">IHHH", buf, base + 4)
    if hlen < 6:
        raise MidiFileError(path, f"bad MThd length {hlen} (must be at least 6)")
    if 8 + hlen > size - base:
        raise MidiFileError(path, f"bad MThd length {hlen} (file has {size - base} bytes)")
    if fmt > 2:
        raise MidiFileError(path, f"unsupported MIDI file format {fmt}")
    if ntracks == 0:
        raise MidiFileError(path, "header declares no tracks")
    W = _Warnings()
    smpte = None
    ppq = None
    if division & 0x8000:
        fps = 256 - (division >> 8)
        tpf = division & 0xFF
        if fps not in _SMPTE_FPS or tpf == 0:
            raise MidiFileError(path, f"bad SMPTE division 0x{division:04X} "
                                      f"({fps} frames/s, {tpf} ticks/frame)")
        smpte = (fps, tpf)
    else:
        if division == 0:
            raise MidiFileError(path, "bad division 0 ticks per quarter note")
        ppq = division
    if hlen > 6:
        W.add("hdr", f"MThd length {hlen}: {hlen - 6} extra header bytes skipped")

    arr = np.frombuffer(buf, np.uint8)
    if lib is not None:
        scan = _NativeScanner(lib, arr)
    else:
        d = buf if isinstance(buf, bytes) else memoryview(buf)

        def scan(b, e):
            return _py_scan(d, b, e)

    bodies, ends, scans = [], [], []
    scanned = 0
    truncated_file = False
    pos = base + 8 + hlen
    while pos + 8 <= size:
        ctype = bytes(buf[pos:pos + 4])
        (clen,) = struct.unpack_from(">I", buf, pos + 4)
        body = pos + 8
        rel = pos - base
        if ctype == b"MTrk":
            tno = len(bodies) + 1
            if len(bodies) >= ntracks:
                W.add("extra", f"{ntracks} tracks declared: extra MTrk chunks ignored")
                break
            end = body + clen
            over = 0
            if end > size:
                over = end - size
                end = size
            sc = scan(body, end)
            if over > max(64, clen // 4) and sc.status in (END_EOT, END_ERR):
                raise MidiFileError(path, f"track {tno} length {clen} overruns the file "
                                          f"({size - body} bytes left)")
            if sc.status == END_ERR:
                raise _scan_error(path, sc, tno, base)
            if over:
                cut = sc.status != END_EOT
                truncated_file = truncated_file or cut
                W.add("overrun", f"track {tno} length {clen} overruns the file by {over} bytes"
                      + (" (file truncated)" if over > max(64, clen // 4) else ""),
                      f"track {tno} length {clen} by {over} bytes")
            elif sc.status == END_EOT and sc.eot_end < end and \
                    bytes(buf[sc.eot_end:sc.eot_end + 4]) == b"MTrk":
                W.add("toolong", f"track {tno} length {clen} too long: next MTrk found after "
                                 f"its end-of-track", f"track {tno} length {clen}")
                end = sc.eot_end
            elif sc.status != END_EOT and end < size and not _is_chunk_header(buf, end, size):
                nxt = buf.find(b"MTrk", end, size)
                new_end = nxt if nxt >= 0 else size
                sc2 = scan(body, new_end)
                if sc2.status == END_EOT:
                    W.add("tooshort", f"track {tno} length {clen} too short: read on to byte "
                                      f"{new_end - base}", f"track {tno} length {clen}")
                    sc, end = sc2, new_end
            _track_warnings(W, sc, tno, end, base)
            bodies.append(body)
            ends.append(end)
            scans.append(sc)
            scanned += end - body
            if scanned > RELEASE_BYTES:         # keep the scan's resident set bounded too
                scanned = 0
                _release_pages(buf)
            pos = end
        elif all(0x20 <= c < 0x7F for c in ctype):
            if body + clen > size:
                W.add("chunk_overrun", f"chunk {ctype!r} at byte {rel} overruns the file")
                break
            W.add("chunk", f"non-MIDI chunk {ctype.decode('ascii')!r} at byte {rel} skipped",
                  f"{ctype.decode('ascii')!r} at byte {rel}")
            pos = body + clen
        else:
            nxt = buf.find(b"MTrk", pos + 1, size)
            if nxt < 0:
                W.add("garbage_end", f"{size - pos} bytes of garbage at byte {rel} ignored")
                break
            W.add("garbage", f"{nxt - pos} bytes of garbage at byte {rel} skipped",
                  f"{nxt - pos} bytes at byte {rel}", nxt - pos)
            pos = nxt
    if 0 < size - pos < 8:
        W.add("trailing", f"{size - pos} trailing bytes after the last chunk ignored")
    if len(bodies) == 0:
        hint = f" after a {hlen}-byte MThd (normally 6)" if hlen != 6 else ""
        raise MidiFileError(path, f"no MTrk chunk{hint}")
    if len(bodies) < ntracks:
        if not truncated_file:
            raise MidiFileError(path, f"header declares {ntracks} tracks, file has {len(bodies)}")
        W.add("missing", f"header declares {ntracks} tracks, the truncated file has "
                         f"{len(bodies)}")
    if fmt == 0 and ntracks > 1:
        W.add("fmt0", f"format 0 file with {ntracks} tracks: read like format 1")

    idx = _Index(buf, arr, base, fmt, ppq, smpte)
    idx.finish(bodies, ends, scans)
    if idx.duration >= SATURATE_S:
        W.add("saturate", f"events up to {idx.duration:.3g} s: times past {SATURATE_S:.3g} s "
                          f"(2**63 samples at 192 kHz) are saturated at the largest sample time")
    n_notes = sum(s.n_notes for s in scans)
    n_events = sum(s.n_kept for s in scans)
    idx.bytes_per_event = size / max(1, n_events)
    _release_pages(buf)         # the scan touched every page; the cursors fault in what they read
    groups = max(s.max_group for s in scans) + 1
    return Song(format=fmt, ntracks=len(bodies), division=division, n_notes=n_notes,
                duration_s=idx.duration, channel_groups=max(1, groups), ticks_per_quarter=ppq,
                smpte=smpte, warnings=W.lines(), path=path, n_events=n_events,
                decoder="native" if lib is not None else "reference", _idx=idx)


# ----------------------------------------------------------------------------------- writing

def _vlq_bytes(value: int) -> bytes:
    if value < 0 or value > 0x0FFFFFFF:
        raise ValueError(f"value {value} does not fit a MIDI variable-length quantity")
    out = bytearray([value & 0x7F])
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.reverse()
    return bytes(out)


def tempo_meta(us_per_quarter: int) -> bytes:
    """Set-tempo meta event (FF 51 03 tttttt)."""
    us = int(us_per_quarter)
    if not 0 < us < (1 << 24):
        raise ValueError(f"tempo {us} us per quarter out of range 1..16777215")
    return b"\xFF\x51\x03" + us.to_bytes(3, "big")


def port_meta(port: int) -> bytes:
    """MIDI port meta event (FF 21 01 pp): the track's channel events go to channel group pp."""
    port = int(port)
    if not 0 <= port <= 127:
        raise ValueError(f"port {port} out of range 0..127")
    return b"\xFF\x21\x01" + bytes([port])


def _encode_track(events, running_status: bool) -> bytes:
    evs = sorted(((int(t), bytes(m)) for t, m in events), key=lambda x: x[0])
    out = bytearray()
    last = 0
    end = 0
    running = 0
    for tick, msg in evs:
        if tick < 0:
            raise ValueError(f"negative tick {tick}")
        if not msg:
            raise ValueError("empty MIDI message")
        end = max(end, tick)
        s = msg[0]
        if s == 0xFF:
            if len(msg) >= 2 and msg[1] == 0x2F:
                continue  # end-of-track is written once, at the end
            body = msg
            running = 0 if not running_status else running
        elif s == 0xF0:
            body = b"\xF0" + _vlq_bytes(len(msg) - 1) + msg[1:]
        elif s == 0xF7:
            body = msg  # caller wrote the escape (F7 len data) in full
        elif 0x80 <= s < 0xF0:
            if running_status and s == running:
                body = msg[1:]
            else:
                body = msg
            running = s
        else:
            raise ValueError(f"cannot write message starting with 0x{s:02X} to a MIDI file")
        out += _vlq_bytes(tick - last)
        out += body
        last = tick
    out += _vlq_bytes(end - last) + b"\xFF\x2F\x00"
    return bytes(out)


def write_smf(path, tracks, ppq: int = 480, fmt: int = 1, running_status: bool = False) -> bytes:
    """Write a Standard MIDI File and return its bytes (also written to ``path`` unless None).

    ``tracks``: list of lists of ``(abs_tick, message_bytes)``; a message is a channel message,
    a complete meta event (``b"\\xFF\\x51\\x03..."``, length byte included) or a SysEx
    ``b"\\xF0 ... \\xF7"`` (its length is added). Each track is sorted by tick (stable) and gets
    one end-of-track at its last tick. ``running_status=True`` omits repeated status bytes.
    """
    if fmt not in (0, 1, 2):
        raise ValueError(f"format must be 0, 1 or 2, got {fmt}")
    if fmt == 0 and len(tracks) != 1:
        raise ValueError("format 0 needs exactly one track")
    if not 0 < ppq < 0x8000:
        raise ValueError(f"ppq must be 1..32767, got {ppq}")
    if not 0 < len(tracks) < 0x10000:
        raise ValueError("need 1..65535 tracks")
    out = bytearray(b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks), ppq))
    for tr in tracks:
        body = _encode_track(tr, running_status)
        out += b"MTrk" + struct.pack(">I", len(body)) + body
    data = bytes(out)
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data
