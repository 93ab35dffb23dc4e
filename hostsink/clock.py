"""Clocks and sample <-> reference time conversion (DirectMusic timing model).

Reference time
    A signed 64-bit count of 100 ns units on the *master clock* (DirectMusic
    ``REFERENCE_TIME``).  Every clock here has ``now() -> int`` in those units.

Sample time
    An int64 count of frames into the output stream since the sink was activated.
    Python ints never wrap, so positions past 2**32 (about 25 h at 48 kHz) are fine;
    the synth side stores them as int64 (good for ~6 million years at 48 kHz).

Conversion (:class:`SampleTimeBase`), anchored at the activation instant ``t_act``::

    sample = floor((rt - t_act) * rate / 10**7)      # the sample that is playing at rt
    rt     = t_act + ceil(sample * 10**7 / rate)     # the first reference tick of that sample

computed with exact integer arithmetic (also for negative values and past 2**63).  A
reference time maps to the sample that has started by then (truncation, as DirectMusic's
sink does), and a sample maps to the first reference time that lies in it, so

* ``ref_to_sample(sample_to_ref(s)) == s`` for every integer ``s`` (one sample is at least
  one reference unit long for every rate below 10 MHz), and
* ``sample_to_ref(ref_to_sample(rt)) <= rt``, less than one sample period earlier: the
  reference time of a sample never lies after the time it came from.

The sink may add a *slip* (frames the output had to zero-fill because of underruns):
sample ``s`` is then heard at device frame ``s + slip``, and the conversions use
``s + slip`` so that reference time keeps meaning "when it is heard".
"""
from __future__ import annotations

import threading
import time
from typing import Optional, Protocol, runtime_checkable

REF_PER_SEC = 10_000_000  # 100 ns units per second


class ClockInactiveError(RuntimeError):
    """The clock has no meaning right now (DirectMusic's E_FAIL from an inactive sink)."""


@runtime_checkable
class Clock(Protocol):
    """Master clock protocol: ``now()`` is the reference time in 100 ns units (int)."""

    def now(self) -> int:  # pragma: no cover - protocol
        ...


def _round_div(a: int, b: int) -> int:
    """round(a / b) for integers, b > 0, ties towards +infinity, exact for any size."""
    return (2 * a + b) // (2 * b)


def frames_to_ref(frames: int, rate: int) -> int:
    """Duration of ``frames`` samples at ``rate`` in reference units (rounded to nearest)."""
    return _round_div(int(frames) * REF_PER_SEC, int(rate))


def ref_to_frames(ref: int, rate: int) -> int:
    """Number of samples (rounded to nearest) in a duration of ``ref`` reference units."""
    return _round_div(int(ref) * int(rate), REF_PER_SEC)


class MonotonicClock:
    """Reference time from ``time.monotonic_ns()`` (never pauses, like the kernel clock)."""

    def now(self) -> int:
        return time.monotonic_ns() // 100


class ManualClock:
    """A clock that only moves when told to (tests, deterministic stepping)."""

    def __init__(self, t: int = 0):
        self._t = int(t)

    def now(self) -> int:
        return self._t

    def advance(self, ref_units: int) -> int:
        if ref_units < 0:
            raise ValueError("a clock does not go backwards")
        self._t += int(ref_units)
        return self._t

    def advance_frames(self, frames: int, rate: int) -> int:
        """Advance by the reference duration of ``frames`` samples (exact when rate divides 10**7*frames)."""
        return self.advance(frames_to_ref(frames, rate))

    def set(self, t: int) -> None:
        self._t = int(t)


class DeviceClock:
    """A clock driven by an output stream: it advances with the frames the device consumed.

    The output's callback calls :meth:`report` with the number of frames it consumed
    (and optionally the stream's own time in seconds).  ``now()`` is::

        anchor + frames_to_ref(total_frames) + min(time since last report, last block duration)

    The interpolation term (measured on ``base``, a monotonic clock) makes the clock move
    smoothly between callbacks but never runs ahead of the next report by more than one
    block; the returned values never decrease.  ``anchor`` is the base clock's time when
    the clock was created (so it agrees with a :class:`MonotonicClock` at the start).
    The clock does not advance while no stream runs (only the one-block interpolation).

    Thread safety: ``report`` (audio thread) publishes a single tuple with one attribute
    store; readers take one attribute load, so they always see a consistent snapshot.
    """

    def __init__(self, rate: int, base: Optional[Clock] = None):
        self.rate = int(rate)
        self._base = base if base is not None else MonotonicClock()
        self.anchor = self._base.now()
        # (total frames consumed, base time of last report, ref duration of last block, stream time)
        self._state = (0, self.anchor, 0, None)
        self._last = self.anchor
        self._lock = threading.Lock()  # only protects the monotonic max in now(), never the callback

    @property
    def frames(self) -> int:
        return self._state[0]

    @property
    def stream_time(self) -> Optional[float]:
        return self._state[3]

    def report(self, frames: int, stream_time: Optional[float] = None) -> None:
        """Called by the output once per callback with the frames it just consumed."""
        total, _, _, _ = self._state
        self._state = (total + frames, self._base.now(), frames_to_ref(frames, self.rate), stream_time)

    def now(self) -> int:
        total, t_report, block_ref, _ = self._state
        elapsed = self._base.now() - t_report
        t = self.anchor + frames_to_ref(total, self.rate) + min(max(elapsed, 0), block_ref)
        with self._lock:
            if t < self._last:
                t = self._last
            self._last = t
        return t


class SampleTimeBase:
    """Sample <-> reference time conversion anchored at ``t_act`` (see module docstring)."""

    def __init__(self, t_act: int, rate: int, slip: int = 0):
        if rate <= 0 or rate >= REF_PER_SEC:
            raise ValueError(f"sample rate out of range: {rate}")
        self.t_act = int(t_act)
        self.rate = int(rate)
        self.slip = int(slip)

    def ref_to_sample(self, rt: int) -> int:
        """The sample playing at reference time ``rt`` (floor: never a later sample)."""
        return ((int(rt) - self.t_act) * self.rate) // REF_PER_SEC - self.slip

    def sample_to_ref(self, sample: int) -> int:
        """The first reference time inside ``sample`` (ceil), so that ``ref_to_sample`` of it
        gives ``sample`` back and it is never after a time that mapped to ``sample``."""
        return self.t_act - ((-(int(sample) + self.slip) * REF_PER_SEC) // self.rate)


class LatencyClock:
    """The sink's latency clock (DirectMusic ``GetLatencyClock``).

    ``now()`` is the reference time of the sample position up to which audio is already
    committed (written to the ring or rendered by the synth); events stamped at or after
    it play at their exact sample, earlier ones are late.  Raises
    :class:`ClockInactiveError` while the sink is inactive; :meth:`try_now` returns None
    instead.
    """

    def __init__(self, sink):
        self._sink = sink

    def now(self) -> int:
        return self._sink.sample_to_ref(self._sink.latency_sample())

    def try_now(self) -> Optional[int]:
        try:
            return self.now()
        except ClockInactiveError:
            return None
