"""Outputs for the wave sink: a sounddevice (PortAudio) stream, WAV files, a null device.

Real-time outputs (``realtime = True``) consume from the sink's :class:`RingBuffer`:

* ``start(ring, t_start)`` begins consuming (``t_start``: the sink's activation time on
  the sink's clock, used by clock-paced outputs), ``stop()`` ends it;
* counters ``frames_consumed`` (frames delivered to the device, zero-fill included),
  ``underruns`` (callbacks that found the ring short), ``underrun_frames`` (frames
  zero-filled), ``xruns`` (underflows reported by the device itself);
* ``needs_service``: when True the output has no thread of its own and the sink calls
  ``service()`` (the consumer side) at the start of every pump;
* ``clock``: the clock this output suggests as the sink's master clock (or None).

Offline outputs (``realtime = False``) get whole blocks through ``write(block)``.

WAV sample format: 16-bit PCM by default; a float32 sample ``x`` becomes
``int16(rint(clip(x, -1, 1) * 32767))`` (NaN -> 0, rint = round half to even, the
product computed exactly in float64), so +1.0 -> 32767 and -1.0 -> -32767 (-32768 is
never produced); 24-bit PCM the same with 8388607.  ``float32=True`` (subtype ``float``)
writes WAVE_FORMAT_IEEE_FLOAT (format tag 3) with a ``fact`` chunk, samples stored unchanged
(bit-exact). Files past 4 GiB become RF64 on close (see WavFileOutput).
"""
from __future__ import annotations

import os
import struct
import threading
from typing import List, Optional, Union

import numpy as np

from .clock import DeviceClock, ManualClock, MonotonicClock, SampleTimeBase

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_IEEE_FLOAT = 3


# ----------------------------------------------------------------------------- sounddevice
def _import_sounddevice():
    """Import sounddevice lazily, with an actionable error if it or PortAudio is missing."""
    try:
        import sounddevice  # noqa: F401
    except ImportError as e:  # the Python package
        raise RuntimeError(
            "audio output needs the 'sounddevice' package: pip install sounddevice") from e
    except OSError as e:  # sounddevice raises OSError('PortAudio library not found')
        raise RuntimeError(
            "audio output needs the PortAudio library (Debian/Ubuntu: apt install libportaudio2): "
            f"{e}") from e
    return sounddevice


def reinitialize_portaudio() -> None:
    """Make PortAudio rescan host APIs and devices (e.g. after a JACK server was started).

    Caution: PortAudio's JACK host API aborts the process (an assert in pa_jack.c
    Terminate) if it is terminated after its JACK server went away: call
    ``terminate_portaudio()`` *before* stopping a JACK server PortAudio has seen, and
    ``initialize_portaudio()`` after.
    """
    terminate_portaudio()
    initialize_portaudio()


def terminate_portaudio() -> None:
    _import_sounddevice()._terminate()


def initialize_portaudio() -> None:
    _import_sounddevice()._initialize()


def find_output_device(hostapi: Optional[str] = None, name: Optional[str] = None,
                       channels: int = 2) -> int:
    """Index of the first output device whose host API name contains ``hostapi`` and whose
    name contains ``name`` (case-insensitive), with at least ``channels`` outputs."""
    sd = _import_sounddevice()
    apis = sd.query_hostapis()
    for i, dev in enumerate(sd.query_devices()):
        if dev["max_output_channels"] < channels:
            continue
        if hostapi and hostapi.lower() not in apis[dev["hostapi"]]["name"].lower():
            continue
        if name and name.lower() not in dev["name"].lower():
            continue
        return i
    raise LookupError(f"no output device with host API {hostapi!r} and name {name!r}")


class SoundDeviceOutput:
    """A ``sounddevice.OutputStream`` whose callback only copies from the ring.

    The callback always fills the whole buffer: it copies what the ring holds, zero-fills
    the rest and counts an underrun, then reports the consumed frames to ``self.clock``
    (a :class:`DeviceClock`).  ``blocksize=0`` lets the host API choose (JACK uses its
    period); ``latency`` is passed to PortAudio ('low', 'high' or seconds).
    """

    realtime = True
    needs_service = False

    def __init__(self, device: Union[int, str, None] = None, rate: int = 48000,
                 blocksize: int = 0, latency: Union[str, float] = "low", channels: int = 2):
        _import_sounddevice()  # fail early with a clear message
        self.device = device
        self.sample_rate = int(rate)
        self.blocksize = int(blocksize)
        self.latency = latency
        self.channels = int(channels)
        self.clock = DeviceClock(self.sample_rate)
        self.frames_consumed = 0
        self.underruns = 0
        self.underrun_frames = 0
        self.xruns = 0
        self.callbacks = 0
        self.device_latency_s = 0.0  # PortAudio's output latency of the last stream started
        self._ring = None
        self._stream = None

    def _callback(self, outdata, frames, time_info, status):
        ring = self._ring
        n = ring.read_into(outdata)
        if n < frames:
            outdata[n:] = 0.0
            self.underruns += 1
            self.underrun_frames += frames - n
        if status:
            self.xruns += 1
        self.frames_consumed += frames
        self.callbacks += 1
        self.clock.report(frames, time_info.outputBufferDacTime)

    def start(self, ring, t_start: Optional[int] = None) -> None:
        sd = _import_sounddevice()
        if ring.channels != self.channels:
            raise ValueError("ring and output channel counts differ")
        self._ring = ring
        self._stream = sd.OutputStream(
            samplerate=self.sample_rate, blocksize=self.blocksize, device=self.device,
            channels=self.channels, dtype="float32", latency=self.latency,
            callback=self._callback)
        self.device_latency_s = float(self._stream.latency)
        self._stream.start()

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()

    def service(self) -> None:  # the PortAudio thread consumes
        pass


# ----------------------------------------------------------------------------- null output
class NullOutput:
    """Consumes audio at the rate of ``clock`` and throws it away (tests, benchmarks).

    At clock time ``t`` the device has consumed ``ref_to_sample(t)`` frames since
    ``start`` (rounded down to whole ``blocksize`` blocks when a blocksize is given;
    each block then counts as one simulated callback).  With a :class:`ManualClock`
    (default ``threaded=False``) consumption happens in ``service()``, which the sink
    calls at the start of each ``pump()``, so everything is deterministic.  Otherwise
    a thread of its own wakes every block (1 ms without a blocksize) and consumes what
    is due, like a device callback.  ``capture=True`` keeps a copy of everything
    consumed (``captured()``), for tests.
    """

    realtime = True

    def __init__(self, rate: int = 48000, clock=None, blocksize: Optional[int] = None,
                 threaded: Optional[bool] = None, capture: bool = False):
        self.sample_rate = int(rate)
        self.clock = clock if clock is not None else MonotonicClock()
        self.blocksize = int(blocksize) if blocksize else None
        if threaded is None:
            threaded = not isinstance(self.clock, ManualClock)
        self.threaded = bool(threaded)
        self.needs_service = not self.threaded
        self.capture = capture
        self._captured: List[np.ndarray] = []
        self._scratch = np.zeros((self.blocksize or 4096, 2), dtype=np.float32)
        self.frames_consumed = 0
        self.underruns = 0
        self.underrun_frames = 0
        self.xruns = 0
        self.callbacks = 0
        self.device_latency_s = 0.0
        self._ring = None
        self._base = None
        self._consumed0 = 0
        self._thread = None
        self._stop = threading.Event()

    def start(self, ring, t_start: Optional[int] = None) -> None:
        self._ring = ring
        self._consumed0 = self.frames_consumed
        self._base = SampleTimeBase(self.clock.now() if t_start is None else t_start,
                                    self.sample_rate)
        self._scratch = np.zeros((self.blocksize or 4096, ring.channels), dtype=np.float32)
        self._stop.clear()
        if self.threaded:
            self._thread = threading.Thread(target=self._run, name="hostsink-null-output",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._ring = None

    def frames_due(self) -> int:
        due = self._base.ref_to_sample(self.clock.now())
        if self.blocksize:
            due -= due % self.blocksize
        return due

    def service(self) -> int:
        """Consume everything due at the clock's current time; return frames consumed."""
        if self._ring is None:
            return 0
        todo = self.frames_due() - (self.frames_consumed - self._consumed0)
        done = 0
        short = False
        scratch = self._scratch
        chunk = len(scratch)
        while done < todo:
            k = min(chunk, todo - done)
            out = scratch[:k]
            n = self._ring.read_into(out)
            if n < k:
                out[n:] = 0.0
                self.underrun_frames += k - n
                if self.blocksize or not short:  # one underrun per block / per service call
                    self.underruns += 1
                short = True
            if self.capture:
                self._captured.append(out.copy())
            self.frames_consumed += k
            self.callbacks += 1
            done += k
        return done

    def _run(self) -> None:
        period = (self.blocksize / self.sample_rate) if self.blocksize else 0.001
        while not self._stop.is_set():
            self.service()
            self._stop.wait(period / 2)

    def captured(self) -> np.ndarray:
        if not self._captured:
            return np.zeros((0, 2), dtype=np.float32)
        return np.concatenate(self._captured)


# ----------------------------------------------------------------------------- WAV files
def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float -> little-endian int16: rint(clip(x, -1, 1) * 32767), NaN -> 0 (see module doc)."""
    x = np.asarray(audio, dtype=np.float64)
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.rint(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")


def to_pcm24(audio: np.ndarray) -> np.ndarray:
    """float -> packed little-endian 24-bit bytes (uint8 [..., 3]): rint(clip(x) * 8388607)."""
    x = np.asarray(audio, dtype=np.float64)
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    v = np.rint(np.clip(x, -1.0, 1.0) * 8388607.0).astype("<i4")
    return v.view(np.uint8).reshape(v.shape + (4,))[..., :3]


def _as_stereo_float32(block: np.ndarray) -> np.ndarray:
    a = np.asarray(block)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"expected an (N, 2) audio block, got shape {a.shape}")
    return a


SUBTYPES = {"pcm16": (WAVE_FORMAT_PCM, 16), "pcm24": (WAVE_FORMAT_PCM, 24),
            "float": (WAVE_FORMAT_IEEE_FLOAT, 32)}
_U32 = 0xFFFFFFFF


class WavFileOutput:
    """Streaming stereo WAV writer: ``write(block)`` per (N, 2) float block, then ``close()``.

    ``subtype``: ``"pcm16"`` (default), ``"pcm24"`` or ``"float"`` (32-bit IEEE float, samples
    stored unchanged; ``float32=True`` is the same). The header reserves a 28-byte ``JUNK``
    chunk right after ``WAVE`` (EBU Tech 3306): when the data outgrows the 4 GiB a RIFF size
    field can hold, ``close()`` turns the file into RF64 (``RF64`` + a ``ds64`` chunk in the
    reserved place) instead of failing; smaller files stay plain WAV that every reader takes.
    Usable as a context manager.
    """

    realtime = False
    needs_service = False
    clock = None
    riff_limit = _U32        # the largest RIFF size field; past it the file becomes RF64

    def __init__(self, path: Union[str, os.PathLike], rate: int, float32: bool = False,
                 subtype: Optional[str] = None):
        self.path = getattr(path, "name", "<stream>") if hasattr(path, "write") else os.fspath(path)
        self.sample_rate = int(rate)
        subtype = subtype or ("float" if float32 else "pcm16")
        if subtype not in SUBTYPES:
            raise ValueError(f"WAV subtype must be one of {', '.join(SUBTYPES)}, not {subtype!r}")
        self.subtype = subtype
        self.float32 = subtype == "float"
        self._tag, self._bits = SUBTYPES[subtype]
        self._align = 2 * self._bits // 8
        self.frames_written = 0
        self.frames_consumed = 0
        self.underruns = self.underrun_frames = self.xruns = 0
        self.device_latency_s = 0.0
        self.rf64 = False
        self._closed = False
        self._stream = hasattr(path, "write")
        if self._stream:            # a pipe (stdout): sizes unknown, header never patched
            self._f = path
            self._f.write(self._header(None))
        else:
            self._f = open(self.path, "wb")
            self._f.write(self._header(0))

    def _header(self, frames) -> bytes:
        """The header for ``frames`` frames; None: a stream of unknown length (every size field
        at its maximum, as programs reading WAV from a pipe expect)."""
        stream = frames is None
        frames = 0 if stream else frames
        data_bytes = frames * self._align
        if self._tag == WAVE_FORMAT_IEEE_FLOAT:
            fmt = struct.pack("<HHIIHHH", self._tag, 2, self.sample_rate,
                              self.sample_rate * self._align, self._align, self._bits, 0)
            fact = b"fact" + struct.pack("<II", 4, _U32 if stream else min(frames, _U32))
        else:
            fmt = struct.pack("<HHIIHH", self._tag, 2, self.sample_rate,
                              self.sample_rate * self._align, self._align, self._bits)
            fact = b""
        fmt = b"fmt " + struct.pack("<I", len(fmt)) + fmt
        body_before_data = 4 + 36 + len(fmt) + len(fact) + 8      # WAVE + JUNK/ds64 + ... + data hdr
        riff_size = body_before_data + data_bytes + (data_bytes & 1)
        if stream:
            head = b"RIFF" + struct.pack("<I", _U32) + b"WAVE" + b"JUNK" + \
                struct.pack("<I", 28) + bytes(28)
            data_hdr = b"data" + struct.pack("<I", _U32)
        elif riff_size <= self.riff_limit:
            head = b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"JUNK" + \
                struct.pack("<I", 28) + bytes(28)
            data_hdr = b"data" + struct.pack("<I", data_bytes)
        else:
            head = b"RF64" + struct.pack("<I", _U32) + b"WAVE" + b"ds64" + \
                struct.pack("<IQQQI", 28, riff_size, data_bytes, frames, 0)
            data_hdr = b"data" + struct.pack("<I", _U32)
        return head + fmt + fact + data_hdr

    def write(self, block: np.ndarray) -> None:
        if self._closed:
            raise ValueError("write to a closed WavFileOutput")
        a = _as_stereo_float32(block)
        if self.subtype == "float":
            self._f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
        elif self.subtype == "pcm16":
            self._f.write(to_pcm16(a).tobytes())
        else:
            self._f.write(np.ascontiguousarray(to_pcm24(a)).tobytes())
        self.frames_written += len(a)
        self.frames_consumed = self.frames_written

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stream:
            self._f.flush()
            return
        if (self.frames_written * self._align) & 1:
            self._f.write(b"\0")
        head = self._header(self.frames_written)
        self.rf64 = head[:4] == b"RF64"
        self._f.seek(0)
        self._f.write(head)
        self._f.close()

    # the sink calls start/stop around offline rendering; nothing to do
    def start(self, ring=None, t_start=None) -> None:
        pass

    def stop(self) -> None:
        pass

    def service(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_wav(path, audio: np.ndarray, rate: int, float32: bool = False,
              subtype: Optional[str] = None) -> None:
    """Write a whole (N, 2) float array as a stereo WAV (16-bit PCM, 24-bit PCM or float32)."""
    with WavFileOutput(path, rate, float32=float32, subtype=subtype) as w:
        w.write(audio)


def read_wav(path) -> "tuple[np.ndarray, int]":
    """Read a WAV written by this module (PCM 8/16/24/32 or IEEE float32/64).

    Returns ``(data, rate)``: PCM as its integer dtype (int16 for 16-bit), float as
    float32/float64, shape (frames, channels).
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] not in (b"RIFF", b"RF64") or raw[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE or RF64 file")
    pos, fmt, data, ds64_data = 12, None, None, None
    while pos + 8 <= len(raw):
        cid = raw[pos:pos + 4]
        size = struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if cid == b"data" and size == _U32 and ds64_data is not None:
            size = ds64_data
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"ds64" and raw[:4] == b"RF64" and size >= 16:
            ds64_data = struct.unpack("<Q", body[8:16])[0]
        elif cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError("WAV file without fmt or data chunk")
    tag, ch, rate, _, align, bits = fmt
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: take the subformat's tag
        f2 = raw.find(b"fmt ")
        tag = struct.unpack("<H", raw[f2 + 8 + 24:f2 + 8 + 26])[0]
    nframes = len(data) // align
    data = data[:nframes * align]
    if tag == WAVE_FORMAT_IEEE_FLOAT:
        dt = {32: "<f4", 64: "<f8"}[bits]
    elif tag == WAVE_FORMAT_PCM:
        if bits == 24:
            b = np.frombuffer(data, np.uint8).reshape(-1, 3)
            v = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8)
                 | (b[:, 2].astype(np.int32) << 16))
            v = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.int32)
            return v.reshape(nframes, ch), rate
        dt = {8: "u1", 16: "<i2", 32: "<i4"}[bits]
    else:
        raise ValueError(f"unsupported WAV format tag {tag}")
    dt = np.dtype(dt)
    return np.frombuffer(data, dtype=dt).reshape(nframes, ch).astype(dt.newbyteorder("=")), rate
