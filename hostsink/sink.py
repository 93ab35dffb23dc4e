"""WaveSink: pulls audio from a source on the clock into a ring that an output drains.

The DirectMusic wave sink (IDirectMusicSynthSink) in Python.  The sink knows nothing of
MIDI; its source obeys this protocol:

* ``source.sample_rate`` (int);
* ``source.render(n_frames, position) -> float32 array (n_frames, 2)``; the sink always
  increments ``position`` by ``n_frames`` ("The caller should always increment
  llPosition by dwLength");
* optionally ``source.committed_frames`` (int): the source renders ahead in fixed blocks
  and has already committed audio up to this sample position (>= the end of the last
  render call).  The latency clock is the max of what the sink wrote and this.

Schedule (``pump``, the work of one wake-up of the render thread):

1. an output without a thread of its own (``needs_service``) consumes what is due now;
2. the sink reads the output's zero-filled frames (underruns) into the *slip* (see below);
3. ``deficit = latency_frames - ring.fill()``; if positive the sink renders exactly the
   deficit in one ``render`` call, or, with ``block_frames``, ``ceil(deficit / B)`` calls
   of ``B`` frames each, and writes them to the ring.

So right after a pump the ring holds ``latency_frames`` (up to ``latency_frames + B - 1``
with blocks) and the latency clock is ``sample_to_ref(frames_written)`` (or the source's
``committed_frames`` if larger).  With a :class:`ManualClock` there is no thread;
``pump()`` does exactly the thread's work at the current clock time.

Sample time: sample ``s`` is heard at device frame ``s + slip`` where device frame 0 is
heard at the activation time ``t_act``.  ``slip`` starts at ``-ring.frames_read`` (0 on
the first activation; the position continues across re-activations) and grows by every
frame the output zero-filled, so after an underrun the conversions shift and reference
time keeps meaning "when it is heard"; the latency clock never goes backwards.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np

from .clock import (ClockInactiveError, LatencyClock, ManualClock, MonotonicClock,
                    SampleTimeBase)
from .ringbuffer import RingBuffer


class SinkNotConfiguredError(RuntimeError):
    """No source, or a source that is not open (DirectMusic DMUS_E_SYNTHNOTCONFIGURED)."""


class SinkActiveError(RuntimeError):
    """The sink is already active (DirectMusic DMUS_E_SYNTHACTIVE)."""


def _source_rate(source) -> Optional[int]:
    """The source's sample rate, or None while it has none (a synth not yet open)."""
    if source is None or not getattr(source, "is_open", True):
        return None
    rate = getattr(source, "sample_rate", None)
    return None if rate is None else int(rate)


@dataclass
class SinkStats:
    active: bool
    sample_rate: int
    frames_written: int       # frames rendered by the source through this sink (= next position)
    committed_sample: int     # the latency clock's sample position
    frames_played: int        # source frames the output took from the ring
    frames_consumed: int      # frames delivered to the device (zero fill included)
    fill_frames: int          # ring fill
    fill_ms: float
    latency_ms: float         # committed_sample - frames_played, in ms (excludes the device's own)
    device_latency_ms: float  # the device's output latency as reported by PortAudio
    underruns: int            # callbacks/blocks that found the ring short
    underrun_frames: int      # frames zero-filled
    xruns: int                # underflows reported by the device itself
    render_load: float        # total render time / total audio time rendered
    render_load_recent: float # exponential average over the last ~10 render calls
    render_load_peak: float   # worst single render call
    render_calls: int
    pumps: int

    def as_dict(self) -> dict:
        return asdict(self)


class WaveSink:
    """See the module docstring.

    ``clock``: the master clock; default the output's clock (a DeviceClock for
    :class:`SoundDeviceOutput`), else a :class:`MonotonicClock`.  ``latency_ms``: ring
    fill target.  ``period_ms``: render-thread wake-up period.  ``block_frames``: render
    in calls of exactly this many frames (None: one call of whatever is missing).
    ``start_position``: the first sample position (default 0, as in DirectMusic).

    As in DirectMusic the sink may be made before its synth is open, or with no source at all
    (``source=None``, then :meth:`init`; ``Synth.set_sink`` does that): the sample rate and
    everything that depends on it are read from the source when the sink is activated (or
    renders offline), so a synth closed and reopened at another rate is followed.
    """

    def __init__(self, source, output, clock=None, latency_ms: float = 20, period_ms: float = 5,
                 block_frames: Optional[int] = None, start_position: int = 0):
        if block_frames is not None and int(block_frames) <= 0:
            raise ValueError("block_frames must be positive")
        self.source = source
        self.output = output
        if clock is None:
            clock = getattr(output, "clock", None) or MonotonicClock()
        self.clock = clock
        self._latency_ms = float(latency_ms)
        self._period_ms = float(period_ms)
        self.period_s = period_ms / 1000.0
        self.block_frames = int(block_frames) if block_frames else None
        self._position = int(start_position)
        self.sample_rate = None
        rate = _source_rate(source)
        if rate is None:
            rate = getattr(output, "sample_rate", None)
        self._set_rate(48000 if rate is None else int(rate))
        if _source_rate(source) is not None:
            self._check_output_rate()
        self._active = False
        self._base: Optional[SampleTimeBase] = None
        self._slip0 = 0
        self._uf0 = 0
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        # held around every source.render call: hold it to change the source from another
        # thread (e.g. ``with sink.render_lock: synth.play(events)``) if the source is not
        # thread-safe itself
        self.render_lock = threading.Lock()
        self.error: Optional[BaseException] = None
        self._latency_clock = LatencyClock(self)
        # stats (written by the render thread only)
        self._render_time = 0.0
        self._render_frames = 0
        self._load_recent = 0.0
        self._load_peak = 0.0
        self._render_calls = 0
        self._pumps = 0

    # ------------------------------------------------------------------ configuration
    def _set_rate(self, rate: int) -> None:
        """(Re)size everything that depends on the rate; only while inactive. The ring starts
        empty at the current position (ring indices are sample positions: frames_written ==
        position, frames_read == the next sample the output will take)."""
        self.sample_rate = int(rate)
        self.latency_frames = max(1, int(round(self._latency_ms * rate / 1000)))
        self.period_frames = max(1, int(round(self._period_ms * rate / 1000)))
        self.ring = RingBuffer(self.latency_frames + (self.block_frames or 0),
                               start=self._position)
        self._base = None

    def _check_output_rate(self) -> None:
        out_rate = getattr(self.output, "sample_rate", self.sample_rate)
        if int(out_rate) != self.sample_rate:
            raise ValueError(f"source rate {self.sample_rate} != output rate {out_rate}")

    def _configure(self) -> None:
        """Read the source's rate (DMUS_E_SYNTHNOTCONFIGURED without an open source)."""
        rate = _source_rate(self.source)
        if rate is None:
            raise SinkNotConfiguredError("the sink has no open synth (DMUS_E_SYNTHNOTCONFIGURED)")
        if rate != self.sample_rate:
            self._set_rate(rate)
        self._check_output_rate()

    def init(self, source) -> None:
        """Bind the sink to ``source`` (IDirectMusicSynthSink::Init; ``None`` detaches).
        An active sink is deactivated first. A different source, or the same one opened
        again, starts at sample position 0 with an empty ring."""
        if self._active:
            self.deactivate()
        self.source = source
        self._position = 0
        self._slip0 = 0
        self._uf0 = 0
        self._set_rate(self.sample_rate)

    def set_master_clock(self, clock) -> None:
        """Change the master clock (IDirectMusicSynthSink::SetMasterClock), also while
        active: the time base is re-anchored so that the sample playing now keeps its place
        and reference times from then on are the new clock's."""
        if clock is None:
            raise ValueError("set_master_clock needs a clock (E_POINTER)")
        if self._active and self._base is not None:
            b = self._base
            old_now = self.clock.now()
            new_now = clock.now()
            b.t_act += new_now - old_now
        self.clock = clock

    def desired_buffer_size(self) -> int:
        """IDirectMusicSynthSink::GetDesiredBufferSize: the size in bytes of 2 s of 16-bit
        stereo at the source's rate (``rate * 2 channels * 4``, the value DirectMusic's own
        sink returns, e.g. 352,800 at 44.1 kHz; the SDK calls it samples, native and Wine
        use bytes). DMUS_E_SYNTHNOTCONFIGURED without an open source."""
        rate = _source_rate(self.source)
        if rate is None:
            raise SinkNotConfiguredError("the sink has no open synth (DMUS_E_SYNTHNOTCONFIGURED)")
        return rate * 2 * 4

    # ------------------------------------------------------------------ properties
    @property
    def active(self) -> bool:
        return self._active

    @property
    def position(self) -> int:
        """The next sample position the sink will ask the source for (= frames written)."""
        return self._position

    @property
    def threaded(self) -> bool:
        return self._thread is not None

    # ------------------------------------------------------------------ time
    def latency_sample(self) -> int:
        """Sample position up to which audio is committed; raises while inactive."""
        if not self._active:
            raise ClockInactiveError("the sink is not active")
        committed = getattr(self.source, "committed_frames", None)
        return self._position if committed is None else max(self._position, int(committed))

    def latency_clock(self) -> LatencyClock:
        return self._latency_clock

    def _time_base(self) -> SampleTimeBase:
        if self._base is None:
            raise ClockInactiveError("the sink was never activated")
        return self._base

    def ref_to_sample(self, rt: int) -> int:
        return self._time_base().ref_to_sample(rt)

    def sample_to_ref(self, sample: int) -> int:
        return self._time_base().sample_to_ref(sample)

    # ------------------------------------------------------------------ activation
    def activate(self, threaded: Optional[bool] = None) -> None:
        """Record t_act, pre-fill the ring to the latency target, start the output and
        (unless the clock is a ManualClock, or ``threaded=False``) the render thread.
        Raises SinkActiveError if already active (DMUS_E_SYNTHACTIVE) and
        SinkNotConfiguredError without an open source."""
        if self._active:
            raise SinkActiveError("the sink is already active (DMUS_E_SYNTHACTIVE)")
        self._configure()
        if not getattr(self.output, "realtime", True):
            raise RuntimeError("an offline output is driven by render_offline(), not activate()")
        if threaded is None:
            threaded = not isinstance(self.clock, ManualClock)
        self.error = None
        t_act = self.clock.now()
        self._slip0 = -self.ring.frames_read
        self._uf0 = self.output.underrun_frames
        self._base = SampleTimeBase(t_act, self.sample_rate, slip=self._slip0)
        self._active = True
        try:
            self._pump(service=False)
            self.output.start(self.ring, t_act)
        except BaseException:
            self._active = False
            raise
        if threaded:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="hostsink-render", daemon=True)
            self._thread.start()

    def deactivate(self) -> None:
        """Stop the render thread and the output.  Committed audio left in the ring is
        kept and plays first on the next activation (positions continue)."""
        if not self._active:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.output.stop()
        finally:
            self._active = False

    def __enter__(self):
        self.activate()
        return self

    def __exit__(self, *exc):
        self.deactivate()

    # ------------------------------------------------------------------ the work
    def pump(self) -> int:
        """Do exactly what the render thread does at one wake-up, at the clock's current
        time; return the frames rendered.  Only without a running render thread."""
        if not self._active:
            raise ClockInactiveError("the sink is not active")
        if self._thread is not None:
            raise RuntimeError("pump() while the render thread runs")
        return self._pump()

    def frames_to_render(self) -> int:
        """How many frames a pump would render now (the output not yet serviced)."""
        deficit = self.latency_frames - self.ring.fill()
        if deficit <= 0:
            return 0
        b = self.block_frames
        if b:
            return min(-(-deficit // b), self.ring.space() // b) * b
        return deficit

    def _pump(self, service: bool = True) -> int:
        out = self.output
        if service and out.needs_service:
            out.service()
        self._base.slip = self._slip0 + (out.underrun_frames - self._uf0)
        n = self.frames_to_render()
        k = self.block_frames or n
        done = 0
        while done < n:
            self._ring_write(self._render(k))
            done += k
        self._pumps += 1
        return done

    def _render(self, k: int) -> np.ndarray:
        with self.render_lock:
            t0 = time.perf_counter()
            audio = self.source.render(k, self._position)
            dt = time.perf_counter() - t0
        audio = np.asarray(audio, dtype=np.float32)
        if audio.shape != (k, self.ring.channels):
            raise ValueError(f"source.render({k}, {self._position}) returned shape {audio.shape}")
        self._position += k
        load = dt * self.sample_rate / k
        self._render_time += dt
        self._render_frames += k
        self._render_calls += 1
        self._load_recent = load if self._render_calls == 1 else 0.9 * self._load_recent + 0.1 * load
        if load > self._load_peak:
            self._load_peak = load
        return audio

    def _ring_write(self, audio: np.ndarray) -> None:
        n = self.ring.write(audio)
        if n != len(audio):  # cannot happen: frames_to_render() respects the space
            raise RuntimeError("ring overflow")

    def _run(self) -> None:
        period = self.period_s
        next_t = time.perf_counter()
        while not self._stop.is_set():
            try:
                self._pump()
            except BaseException as e:  # keep the error for play() / the caller
                self.error = e
                return
            next_t += period
            delay = next_t - time.perf_counter()
            if delay < 0:  # fell behind: do not try to catch up with a burst of wake-ups
                next_t = time.perf_counter()
                delay = 0
            self._stop.wait(delay)

    # ------------------------------------------------------------------ offline
    def render_offline(self, n_frames: int, block_frames: Optional[int] = None,
                       progress: Optional[Callable[[int], None]] = None) -> int:
        """Pull ``n_frames`` as fast as possible straight into the output (``write``).

        Blocks are ``block_frames`` (default the sink's block size, else 4096) except a
        shorter last one.  Works with any output that has ``write(block)``.  Positions
        continue from the sink's current position.  Returns the frames written.
        """
        if self._active:
            raise RuntimeError("render_offline() on an active sink")
        self._configure()
        if self._base is None:  # reference time 0 = sample 0 ("file time")
            self._base = SampleTimeBase(0, self.sample_rate)
        b = int(block_frames or self.block_frames or 4096)
        done = 0
        try:
            while done < n_frames:
                k = min(b, n_frames - done)
                self.output.write(self._render(k))
                done += k
                if progress is not None:
                    progress(done)
        finally:  # keep ring indices == sample positions (any committed ring audio is dropped)
            self.ring = RingBuffer(self.ring.capacity, start=self._position)
        return done

    # ------------------------------------------------------------------ stats
    def stats(self) -> SinkStats:
        out = self.output
        rate = self.sample_rate
        committed = getattr(self.source, "committed_frames", None)
        committed = self._position if committed is None else max(self._position, int(committed))
        played = self.ring.frames_read
        fill = self.ring.fill()
        audio_s = self._render_frames / rate
        return SinkStats(
            active=self._active, sample_rate=rate, frames_written=self._position,
            committed_sample=committed, frames_played=played,
            frames_consumed=int(getattr(out, "frames_consumed", 0)),
            fill_frames=fill, fill_ms=1000.0 * fill / rate,
            latency_ms=1000.0 * (committed - played) / rate,
            device_latency_ms=1000.0 * float(getattr(out, "device_latency_s", 0.0) or 0.0),
            underruns=int(getattr(out, "underruns", 0)),
            underrun_frames=int(getattr(out, "underrun_frames", 0)),
            xruns=int(getattr(out, "xruns", 0)),
            render_load=(self._render_time / audio_s) if audio_s else 0.0,
            render_load_recent=self._load_recent, render_load_peak=self._load_peak,
            render_calls=self._render_calls, pumps=self._pumps)


def play(source, output, duration_frames: Optional[int] = None,
         on_status: Optional[Callable[[SinkStats], None]] = None,
         stop_event: Optional[threading.Event] = None, status_interval: float = 0.25,
         latency_ms: float = 20, period_ms: float = 5, block_frames: Optional[int] = None,
         clock=None, sink: Optional[WaveSink] = None,
         on_start: Optional[Callable[[WaveSink], None]] = None) -> SinkStats:
    """Play ``source`` through ``output`` and return the final :class:`SinkStats`.

    Real-time outputs: activates a :class:`WaveSink`, then every ``status_interval``
    seconds calls ``on_status(stats)``, until ``duration_frames`` source frames have been
    taken by the output (None: forever), or ``stop_event`` is set, or the render thread
    failed (its exception is re-raised); always deactivates (also on Ctrl-C).
    ``on_start(sink)`` runs right after activation (e.g. to stamp live events with
    ``sink.latency_clock()``).  Offline outputs (``WavFileOutput``): renders
    ``duration_frames`` as fast as possible (``on_status`` about every
    ``status_interval`` s of wall time); the caller closes the output.
    Pass ``sink`` to reuse a configured sink (the other sink arguments are then ignored).
    """
    if sink is None:
        sink = WaveSink(source, output, clock=clock, latency_ms=latency_ms,
                        period_ms=period_ms, block_frames=block_frames)
    if not getattr(output, "realtime", True):
        if duration_frames is None:
            raise ValueError("offline output needs duration_frames")
        last = [time.monotonic()]

        def progress(_done):
            if on_status is not None and time.monotonic() - last[0] >= status_interval:
                last[0] = time.monotonic()
                on_status(sink.stats())
            if stop_event is not None and stop_event.is_set():
                raise _Stopped

        try:
            sink.render_offline(duration_frames, progress=progress)
        except _Stopped:
            pass
        st = sink.stats()
        if on_status is not None:
            on_status(st)
        return st
    if isinstance(sink.clock, ManualClock):
        raise ValueError("play() needs a running clock; with a ManualClock call sink.pump()")
    start_played = sink.ring.frames_read
    sink.activate()
    try:
        if on_start is not None:
            on_start(sink)
        wait = threading.Event() if stop_event is None else stop_event
        while True:
            if duration_frames is not None:
                left = duration_frames - (sink.ring.frames_read - start_played)
                if left <= 0:
                    break
                timeout = min(status_interval, max(left / sink.sample_rate, 0.001))
            else:
                timeout = status_interval
            if wait.wait(timeout):
                break
            if sink.error is not None:
                break
            if on_status is not None:
                on_status(sink.stats())
    finally:
        sink.deactivate()
    if sink.error is not None:
        raise sink.error
    st = sink.stats()
    if on_status is not None:
        on_status(st)
    return st


class _Stopped(Exception):
    pass
