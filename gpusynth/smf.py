"""Standard MIDI File (SMF) reading and writing.

``load_smf(path_or_bytes) -> Song`` parses formats 0, 1 and 2 (also a RIFF ``RMID`` wrapper)
into a flat list of channel events and SysEx messages with exact float64 times in seconds;
``Song.events(sample_rate)`` turns them into a sorted ``EVENT_DTYPE`` array.
``write_smf`` writes files (tests and benchmarks use it to generate material).

Parsing rules (what real files need, beyond the letter of the spec):

* Running status survives meta events and SysEx (many files rely on it), and also the illegal
  system common / real-time bytes F1-F6, F8-FE, which are skipped together with their data
  bytes (F1, F3: one, F2: two, others none).
* A data byte with no running status to apply, or a variable-length quantity longer than four
  bytes, makes the file unreadable: MidiFileError.
* A missing end-of-track is tolerated; events after an end-of-track are ignored. A track chunk
  whose length overruns the end of the file by a little (at most 64 bytes, or a quarter of its
  declared length) is read as far as the file goes; an event cut off by the end of a chunk is
  dropped. Each repair is recorded in ``Song.warnings``.
* Chunks other than MTrk with a printable 4-character type are skipped. Garbage where a chunk
  header should be makes the reader look for the next ``MTrk``; trailing bytes after the last
  track are ignored. Fewer MTrk chunks than the header declares is an error; extra ones are
  ignored (with a warning).
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
  (microseconds x ticks) and divided once, so a time is the correctly rounded float64.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np

from .events import EVENT_DTYPE
from .midi import DATA_LEN, NOTE_ON, SYSEX

__all__ = [
    "MidiFileError", "Song", "load_smf", "write_smf", "tempo_meta", "port_meta",
    "DEFAULT_TEMPO",
]

DEFAULT_TEMPO = 500_000  # microseconds per quarter note (120 bpm)

# data bytes after each status byte, from the message table (midi.py); a plain list is the
# fastest to index in the parse loop
_DATA_LEN = DATA_LEN.tolist()
_SMPTE_FPS = {24: (24, 1), 25: (25, 1), 29: (30000, 1001), 30: (30, 1)}


class MidiFileError(ValueError):
    """A file that cannot be read as a Standard MIDI File. Message: ``"<path>: <reason>"``."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class _Truncated(Exception):
    pass


@dataclass(eq=False)
class Song:
    """A parsed MIDI file.

    format, ntracks (MTrk chunks read), division (raw header value), ticks_per_quarter (None for
    SMPTE division), smpte ((frames per second as in the file: 24/25/29/30, ticks per frame) or
    None), sysex (payloads, each starting with 0xF0), n_notes (note-ons with velocity > 0),
    duration_s (time of the last event, end-of-track included), channel_groups (>= 1),
    warnings (repairs made while reading), path.
    Events are kept in track order (file order inside a track) with float64 seconds.
    """

    format: int
    ntracks: int
    division: int
    sysex: list = field(default_factory=list)
    n_notes: int = 0
    duration_s: float = 0.0
    channel_groups: int = 1
    ticks_per_quarter: int | None = None
    smpte: tuple | None = None
    warnings: list = field(default_factory=list)
    path: str = "<bytes>"
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64), repr=False)
    chan: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32), repr=False)
    status: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8), repr=False)
    data1: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8), repr=False)
    data2: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8), repr=False)
    sysex_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32), repr=False)
    track: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32), repr=False)

    @property
    def n_events(self) -> int:
        return int(self.seconds.shape[0])

    def events(self, sample_rate: float) -> np.ndarray:
        """EVENT_DTYPE array, time = round(seconds * sample_rate) (int64), sorted stably by time
        (file order within one time; at equal times earlier tracks come first)."""
        if not sample_rate > 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate!r}")
        t = np.round(self.seconds * float(sample_rate)).astype(np.int64)
        order = np.argsort(t, kind="stable")
        out = np.empty(t.shape[0], dtype=EVENT_DTYPE)
        out["time"] = t[order]
        out["chan"] = self.chan[order]
        out["status"] = self.status[order]
        out["data1"] = self.data1[order]
        out["data2"] = self.data2[order]
        out["sysex"] = self.sysex_index[order]
        return out


# ----------------------------------------------------------------------------------- reading

def _read_vlq(t, pos: int, n: int):
    """Variable-length quantity at t[pos]; returns (value, new_pos). Raises _Truncated when the
    buffer ends inside it, ValueError when it is longer than 4 bytes."""
    value = 0
    for _ in range(4):
        if pos >= n:
            raise _Truncated
        b = t[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, pos
    raise ValueError("variable-length quantity longer than 4 bytes")


class _Track:
    """Raw parse result of one MTrk chunk."""

    __slots__ = ("ticks", "offs", "keys", "sysex", "tempos", "end_tick", "extra")

    def __init__(self):
        self.ticks = []   # tick of every kept event (channel or SysEx), file order
        self.offs = []    # channel event: offset of its first data byte; SysEx: -1 - local index
        self.keys = []    # status byte | group << 8
        self.sysex = []   # bytearray payloads of this track
        self.tempos = []  # (tick, us per quarter)
        self.end_tick = 0  # tick of the last event read (end-of-track included)
        self.extra = b""  # bytes appended for escaped channel messages (offsets past the chunk)


def _parse_track(t: bytes, base: int, tno: int, path: str, warnings: list) -> _Track:
    """Parse one track chunk body ``t`` (``base``: its offset in the file, for messages)."""
    tr = _Track()
    ticks, offs, keys = tr.ticks, tr.offs, tr.keys
    ticks_append, offs_append, keys_append = ticks.append, offs.append, keys.append
    n = len(t)
    pos = 0
    tick = 0
    running = 0
    group = 0
    pending = None  # bytearray of an F0 packet still waiting for its F7 continuation
    extra = bytearray()
    ev_start = 0
    illegal = 0
    first_illegal = ""
    try:
        while pos < n:
            ev_start = pos
            # delta time (inline VLQ: this is the hot loop)
            b = t[pos]
            pos += 1
            if b < 0x80:
                tick += b
            else:
                d = b & 0x7F
                for _ in range(3):
                    if pos >= n:
                        raise _Truncated
                    b = t[pos]
                    pos += 1
                    d = (d << 7) | (b & 0x7F)
                    if b < 0x80:
                        break
                else:
                    raise MidiFileError(path, f"bad variable-length delta time in track {tno} "
                                              f"at byte {base + ev_start}")
                tick += d
            if pos >= n:
                raise _Truncated
            s = t[pos]
            if s < 0x80:
                if not running:
                    raise MidiFileError(path, f"data byte 0x{s:02X} without a running status in "
                                              f"track {tno} at byte {base + pos}")
                s = running
            else:
                pos += 1
            if s < 0xF0:
                running = s
                dlen = _DATA_LEN[s]
                if pos + dlen > n:
                    raise _Truncated
                ticks_append(tick)
                offs_append(pos)
                keys_append(s | (group << 8))
                pos += dlen
            elif s == 0xFF:
                if pos >= n:
                    raise _Truncated
                mtype = t[pos]
                length, pos = _read_vlq(t, pos + 1, n)
                if pos + length > n:
                    raise _Truncated
                data = t[pos:pos + length]
                pos += length
                tr.end_tick = tick
                if mtype == 0x2F:
                    if pos < n:
                        warnings.append(f"track {tno}: {n - pos} bytes after end-of-track ignored")
                    break
                if mtype == 0x51:
                    if length >= 3:
                        tr.tempos.append((tick, (data[0] << 16) | (data[1] << 8) | data[2]))
                    else:
                        warnings.append(f"track {tno}: short tempo meta at byte {base + ev_start}")
                elif mtype == 0x21 and length >= 1:
                    group = data[0]
            elif s == 0xF0 or s == 0xF7:
                length, pos = _read_vlq(t, pos, n)
                if pos + length > n:
                    raise _Truncated
                data = t[pos:pos + length]
                pos += length
                tr.end_tick = tick
                if s == 0xF0:
                    msg = bytearray(b"\xF0")
                    msg += data
                    pending = msg if not data.endswith(b"\xF7") else None
                    ticks_append(tick)
                    offs_append(-1 - len(tr.sysex))
                    keys_append(0xF0 | (group << 8))
                    tr.sysex.append(msg)
                elif pending is not None:
                    pending += data  # continuation packet of a split SysEx
                    if data.endswith(b"\xF7"):
                        pending = None
                elif data[:1] == b"\xF0":
                    ticks_append(tick)
                    offs_append(-1 - len(tr.sysex))
                    keys_append(0xF0 | (group << 8))
                    tr.sysex.append(bytearray(data))
                elif len(data) >= 2 and 0x80 <= data[0] < 0xF0 and \
                        len(data) == 1 + _DATA_LEN[data[0]]:
                    # an escaped channel message: its data bytes go to an extra buffer
                    ticks_append(tick)
                    offs_append(n + len(extra))
                    keys_append(data[0] | (group << 8))
                    extra += data[1:]
                    if len(data) == 2:
                        extra.append(0)
                # else: escaped real-time / system common bytes: nothing for a synth file player
            else:
                # illegal inside a file (F1-F6, F8-FE): skip it and its data bytes
                for _ in range(_DATA_LEN[s]):
                    if pos < n and t[pos] < 0x80:
                        pos += 1
                tr.end_tick = tick
                if not illegal:
                    first_illegal = f"0x{s:02X} at byte {base + ev_start}"
                illegal += 1
        else:
            if n:
                warnings.append(f"track {tno}: no end-of-track")
    except _Truncated:
        warnings.append(f"truncated track {tno} at byte {base + ev_start}: final event dropped")
    except ValueError as e:
        if isinstance(e, MidiFileError):
            raise
        raise MidiFileError(path, f"{e} in track {tno} at byte {base + ev_start}") from None
    if illegal:
        warnings.append(f"track {tno}: {illegal} illegal system message(s) skipped "
                        f"(first: {first_illegal})")
    if ticks:
        tr.end_tick = max(tr.end_tick, ticks[-1])
    tr.extra = bytes(extra)
    return tr


def _seconds(ticks: np.ndarray, tempos, ppq: int | None, smpte) -> np.ndarray:
    """Exact tick -> seconds conversion (float64) for one tempo map."""
    ticks = np.asarray(ticks, dtype=np.int64)
    if smpte is not None:
        fps, tpf = smpte
        num, den = _SMPTE_FPS[fps]
        # seconds = ticks * den / (num * tpf)
        if ticks.size and int(ticks.max()) >= (1 << 62) // den:  # absurd ticks: approximate
            return ticks.astype(np.float64) * (den / float(num * tpf))
        return (ticks * den).astype(np.float64) / float(num * tpf)
    seg_t = [0]
    seg_v = [DEFAULT_TEMPO]
    for tk, v in tempos:
        if tk == seg_t[-1]:
            seg_v[-1] = v
        else:
            seg_t.append(tk)
            seg_v.append(v)
    acc = [0]  # exact microseconds x ticks at each segment start
    for k in range(1, len(seg_t)):
        acc.append(acc[-1] + (seg_t[k] - seg_t[k - 1]) * seg_v[k - 1])
    scale = 1e6 * ppq
    if ticks.size == 0:
        return np.zeros(0, np.float64)
    tmax = int(ticks.max())
    last = acc[-1] + max(0, tmax - seg_t[-1]) * max(seg_v)
    st = np.asarray(seg_t, dtype=np.int64)
    idx = np.searchsorted(st, ticks, side="right") - 1
    if last < (1 << 62):
        # exact integer numerator; float64 result correctly rounded while it is below 2**53
        # (about 5 hours at 480 ppq), within an ulp or two beyond
        num = np.asarray(acc, dtype=np.int64)[idx] + (ticks - st[idx]) * \
            np.asarray(seg_v, dtype=np.int64)[idx]
        return num.astype(np.float64) / scale
    # absurd tick values (broken files): plain float64 arithmetic
    num = np.asarray([float(a) for a in acc])[idx] + (ticks - st[idx]).astype(np.float64) * \
        np.asarray(seg_v, dtype=np.float64)[idx]
    return num / scale


def _unwrap_rmid(data: bytes, path: str) -> bytes:
    pos = 12
    while pos + 8 <= len(data):
        ctype = data[pos:pos + 4]
        (clen,) = struct.unpack(">I", data[pos + 4:pos + 8])
        if ctype == b"data":
            return data[pos + 8:pos + 8 + clen]
        pos += 8 + clen + (clen & 1)
    raise MidiFileError(path, "RIFF RMID file without a data chunk")


def load_smf(source) -> Song:
    """Read a Standard MIDI File from a path or from bytes.

    Raises MidiFileError for anything that is not a readable MIDI file (OSError for a path that
    cannot be opened)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        path = "<bytes>"
    else:
        path = os.fspath(source)
        with open(path, "rb") as f:
            data = f.read()
        path = str(path)
    try:
        return _load(data, path)
    except MidiFileError:
        raise
    except (IndexError, struct.error, ValueError, OverflowError, KeyError) as e:  # safety net
        raise MidiFileError(path, f"internal parse error: {type(e).__name__}: {e}") from None


def _load(data: bytes, path: str) -> Song:
    if len(data) == 0:
        raise MidiFileError(path, "empty file")
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":
        data = _unwrap_rmid(data, path)
    if data[:4] != b"MThd":
        raise MidiFileError(path, "not a MIDI file (no MThd header)")
    if len(data) < 14:
        raise MidiFileError(path, "truncated MThd header")
    hlen, fmt, ntracks, division = struct.unpack(">IHHH", data[4:14])
    if hlen < 6:
        raise MidiFileError(path, f"bad MThd length {hlen} (must be at least 6)")
    if 8 + hlen > len(data):
        raise MidiFileError(path, f"bad MThd length {hlen} (file has {len(data)} bytes)")
    if fmt > 2:
        raise MidiFileError(path, f"unsupported MIDI file format {fmt}")
    if ntracks == 0:
        raise MidiFileError(path, "header declares no tracks")
    warnings: list[str] = []
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
        warnings.append(f"MThd length {hlen}: {hlen - 6} extra header bytes skipped")

    # chunks
    chunks = []  # (offset of body, body bytes)
    pos = 8 + hlen
    size = len(data)
    while pos + 8 <= size:
        ctype = data[pos:pos + 4]
        (clen,) = struct.unpack(">I", data[pos + 4:pos + 8])
        body = pos + 8
        if ctype == b"MTrk":
            if len(chunks) >= ntracks:
                warnings.append(f"{ntracks} tracks declared: extra MTrk chunks ignored")
                break
            end = body + clen
            if end > size:
                over = end - size
                if over > max(64, clen // 4):
                    raise MidiFileError(path, f"track {len(chunks) + 1} length {clen} overruns "
                                              f"the file ({size - body} bytes left)")
                warnings.append(f"track {len(chunks) + 1} length {clen} overruns the file by "
                                f"{over} bytes")
                end = size
            chunks.append((body, data[body:end]))
            pos = end
        elif all(0x20 <= c < 0x7F for c in ctype):
            if body + clen > size:
                warnings.append(f"chunk {ctype!r} at byte {pos} overruns the file")
                break
            warnings.append(f"non-MIDI chunk {ctype.decode('ascii')!r} at byte {pos} skipped")
            pos = body + clen
        else:
            nxt = data.find(b"MTrk", pos + 1)
            if nxt < 0:
                warnings.append(f"{size - pos} bytes of garbage at byte {pos} ignored")
                break
            warnings.append(f"{nxt - pos} bytes of garbage at byte {pos} skipped")
            pos = nxt
    if 0 < size - pos < 8:
        warnings.append(f"{size - pos} trailing bytes after the last chunk ignored")
    if len(chunks) == 0:
        hint = f" after a {hlen}-byte MThd (normally 6)" if hlen != 6 else ""
        raise MidiFileError(path, f"no MTrk chunk{hint}")
    if len(chunks) < ntracks:
        raise MidiFileError(path, f"header declares {ntracks} tracks, file has {len(chunks)}")
    if fmt == 0 and ntracks > 1:
        warnings.append(f"format 0 file with {ntracks} tracks: read like format 1")

    tracks = [_parse_track(body, off, i + 1, path, warnings)
              for i, (off, body) in enumerate(chunks)]
    return _build_song(tracks, chunks, fmt, division, ppq, smpte, warnings, path)


def _build_song(tracks, chunks, fmt, division, ppq, smpte, warnings, path) -> Song:
    secs_parts, chan_parts, st_parts, d1_parts, d2_parts, sx_parts, tr_parts = \
        [], [], [], [], [], [], []
    sysex: list[bytes] = []
    duration = 0.0
    if fmt != 2:
        all_tempos = [tp for tr in tracks for tp in tr.tempos]
        all_tempos.sort(key=lambda x: x[0])  # stable: at one tick, later tracks win
        ends = _seconds(np.array([tr.end_tick for tr in tracks], np.int64), all_tempos, ppq,
                        smpte)
        duration = float(ends.max()) if ends.size else 0.0
    offset = 0.0
    for i, ((_, body), tr) in enumerate(zip(chunks, tracks)):
        if fmt == 2:
            tempos = tr.tempos
            start = offset
            secs_end = _seconds(np.array([tr.end_tick], np.int64), tempos, ppq, smpte)
            offset = start + float(secs_end[0])
            duration = offset
        else:
            tempos = all_tempos
            start = 0.0
        m = len(tr.ticks)
        if m == 0:
            continue
        ticks = np.asarray(tr.ticks, dtype=np.int64)
        offs = np.asarray(tr.offs, dtype=np.int64)
        keys = np.asarray(tr.keys, dtype=np.int64)
        secs = _seconds(ticks, tempos, ppq, smpte)
        if start:
            secs = secs + start
        buf = np.frombuffer(body + tr.extra + b"\x00\x00", dtype=np.uint8)
        is_sx = offs < 0
        o = np.where(is_sx, 0, offs)
        status = (keys & 0xF0).astype(np.uint8)
        two = DATA_LEN[status] == 2
        d1 = np.where(is_sx, 0, buf[o] & 0x7F).astype(np.uint8)
        d2 = np.where(is_sx | ~two, 0, buf[o + 1] & 0x7F).astype(np.uint8)
        group = keys >> 8
        chan = np.where(is_sx, group * 16, group * 16 + (keys & 0x0F)).astype(np.int32)
        sx = np.full(m, -1, np.int32)
        if tr.sysex:
            sx[is_sx] = len(sysex) + (-1 - offs[is_sx])
            sysex.extend(bytes(p) for p in tr.sysex)
        status[is_sx] = SYSEX
        secs_parts.append(secs)
        chan_parts.append(chan)
        st_parts.append(status)
        d1_parts.append(d1)
        d2_parts.append(d2)
        sx_parts.append(sx)
        tr_parts.append(np.full(m, i, np.int32))

    def cat(parts, dt):
        return np.concatenate(parts).astype(dt, copy=False) if parts else np.zeros(0, dt)

    secs = cat(secs_parts, np.float64)
    chan = cat(chan_parts, np.int32)
    status = cat(st_parts, np.uint8)
    d1 = cat(d1_parts, np.uint8)
    d2 = cat(d2_parts, np.uint8)
    n_notes = int(np.count_nonzero((status == NOTE_ON) & (d2 > 0)))
    groups = int(chan.max()) // 16 + 1 if chan.size else 1
    if secs.size:
        duration = max(duration, float(secs.max()))
    return Song(format=fmt, ntracks=len(tracks), division=division, sysex=sysex,
                n_notes=n_notes, duration_s=duration, channel_groups=groups,
                ticks_per_quarter=ppq, smpte=smpte, warnings=warnings, path=path,
                seconds=secs, chan=chan, status=status, data1=d1, data2=d2,
                sysex_index=cat(sx_parts, np.int32), track=cat(tr_parts, np.int32))


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
