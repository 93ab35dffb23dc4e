"""Tests for hostsink: clocks, conversions, ring buffer, sink schedule, outputs, WAV."""
from __future__ import annotations

import random
import struct
import sys
import threading
import time
import wave

import numpy as np
import pytest

from hostsink import (REF_PER_SEC, ClockInactiveError, DeviceClock, ManualClock, MonotonicClock,
                      NullOutput, RingBuffer, SampleTimeBase, WavFileOutput, WaveSink,
                      frames_to_ref, play, read_wav, to_pcm16, write_wav)
from hostsink import outputs as hs_outputs

RATE = 48000
MS = REF_PER_SEC // 1000  # reference units per millisecond


# ----------------------------------------------------------------------------- real sources
class RampSource:
    """Obeys the source protocol; left = position (exact in float32 below 2**24, so the
    position is taken mod 2**24), right = -left.  Checks the caller's contiguity."""

    def __init__(self, rate=RATE):
        self.sample_rate = rate
        self.calls = []
        self.next_pos = None

    def render(self, n, position):
        if self.next_pos is not None:
            assert position == self.next_pos, "the caller must increment position by n"
        self.next_pos = position + n
        self.calls.append((n, position))
        v = (np.arange(position, position + n, dtype=np.int64) % (1 << 24)).astype(np.float32)
        return np.stack([v, -v], axis=1)


class ImpulseSource:
    """Silence with a 1.0 impulse (both channels) at each requested sample position."""

    def __init__(self, rate=RATE):
        self.sample_rate = rate
        self.impulses = set()
        self.calls = []

    def render(self, n, position):
        self.calls.append((n, position))
        out = np.zeros((n, 2), dtype=np.float32)
        for s in self.impulses:
            if position <= s < position + n:
                out[s - position] = 1.0
        return out


class SineSource:
    """A block-size independent sine (phase from the absolute position, in float64)."""

    def __init__(self, freq=441.0, amp=0.8, rate=RATE):
        self.sample_rate = rate
        self.freq, self.amp = freq, amp

    def render(self, n, position):
        t = np.arange(position, position + n, dtype=np.float64) / self.sample_rate
        left = self.amp * np.sin(2 * np.pi * self.freq * t)
        right = self.amp * np.cos(2 * np.pi * self.freq * t) * 1.2  # clips a little
        return np.stack([left, right], axis=1).astype(np.float32)


class BlockSource(RampSource):
    """Renders internally in fixed blocks: committed_frames runs ahead of the last call."""

    def __init__(self, block=128, rate=RATE):
        super().__init__(rate)
        self.block = block
        self.committed_frames = 0

    def render(self, n, position):
        out = super().render(n, position)
        end = position + n
        self.committed_frames = -(-end // self.block) * self.block
        return out


class StallingSource(RampSource):
    """Stalls on one call: advances a manual clock (deterministic) or sleeps (real time)."""

    def __init__(self, stall_call, stall_ref=0, sleep_s=0.0, clock=None):
        super().__init__()
        self.stall_call, self.stall_ref, self.sleep_s, self.clock = stall_call, stall_ref, sleep_s, clock

    def render(self, n, position):
        if len(self.calls) == self.stall_call:
            if self.clock is not None:
                self.clock.advance(self.stall_ref)
            if self.sleep_s:
                time.sleep(self.sleep_s)
        return super().render(n, position)


# ----------------------------------------------------------------------------- conversions
@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000, 192000])
def test_sample_ref_round_trip(rate):
    rng = random.Random(rate)
    base = SampleTimeBase(t_act=rng.randrange(-10**15, 10**15), rate=rate)
    samples = [0, 1, -1, 2**31 - 1, 2**32, 2**32 + 1, 2**40 + 12345, 2**62] + \
        [rng.randrange(-2**50, 2**50) for _ in range(2000)]
    period = REF_PER_SEC / rate
    for s in samples:
        rt = base.sample_to_ref(s)
        assert base.ref_to_sample(rt) == s
        # ref -> sample -> ref never comes back later, and less than a sample period earlier
        rt2 = rt + rng.randrange(-REF_PER_SEC // rate, REF_PER_SEC // rate + 1)
        back = base.sample_to_ref(base.ref_to_sample(rt2))
        assert 0 <= rt2 - back < period


def test_conversion_check_values_and_rounding():
    b = SampleTimeBase(t_act=5, rate=44100)
    assert b.sample_to_ref(44100) == 5 + REF_PER_SEC  # DDI check: 44,100 samples = 1 s
    assert b.ref_to_sample(5 + REF_PER_SEC) == 44100
    # exact integer math past 2**53 where floats would lose it
    big = 44100 * 10**12
    assert b.sample_to_ref(big) == 5 + REF_PER_SEC * 10**12
    b = SampleTimeBase(t_act=0, rate=20000)  # one sample = 500 ref units
    # a reference time maps to the sample playing then (truncation, as DirectMusic's sink)
    assert b.ref_to_sample(499) == 0 and b.ref_to_sample(500) == 1
    assert b.ref_to_sample(-1) == -1 and b.ref_to_sample(-500) == -1
    assert b.ref_to_sample(-501) == -2
    b = SampleTimeBase(t_act=0, rate=48000)  # one sample = 208.33 ref units
    # a sample maps to its first reference tick (ceil), so the round trip is exact
    assert [b.sample_to_ref(s) for s in range(4)] == [0, 209, 417, 625]
    assert [b.ref_to_sample(b.sample_to_ref(s)) for s in range(-5, 5)] == list(range(-5, 5))
    assert frames_to_ref(48000, 48000) == REF_PER_SEC
    with pytest.raises(ValueError):
        SampleTimeBase(0, 0)


def test_slip_shifts_conversions():
    b = SampleTimeBase(t_act=1000, rate=20000, slip=3)
    assert b.sample_to_ref(0) == 1000 + 1500
    assert b.ref_to_sample(1000 + 1500) == 0
    assert b.ref_to_sample(1000) == -3


# ----------------------------------------------------------------------------- clocks
def test_manual_and_monotonic_clock():
    c = ManualClock(10)
    assert c.now() == 10
    c.advance(5)
    assert c.now() == 15
    c.set(100)
    assert c.now() == 100
    c.advance_frames(480, RATE)
    assert c.now() == 100 + 10 * MS
    with pytest.raises(ValueError):
        c.advance(-1)
    m = MonotonicClock()
    a, b = m.now(), m.now()
    assert b >= a and abs(a - time.monotonic_ns() // 100) < REF_PER_SEC


def test_device_clock_advances_with_reported_frames():
    base = ManualClock(1_000_000)
    dc = DeviceClock(RATE, base=base)
    assert dc.now() == 1_000_000
    dc.report(480, stream_time=1.5)  # one 10 ms callback
    assert dc.frames == 480 and dc.stream_time == 1.5
    assert dc.now() == 1_000_000 + 10 * MS
    base.advance(4 * MS)  # interpolation between callbacks
    assert dc.now() == 1_000_000 + 14 * MS
    base.advance(100 * MS)  # ... capped at one block
    assert dc.now() == 1_000_000 + 20 * MS
    dc.report(480)  # the device consumed the next block: frames rule again, never backwards
    assert dc.now() == 1_000_000 + 20 * MS
    base.advance(1 * MS)
    assert dc.now() == 1_000_000 + 21 * MS


# ----------------------------------------------------------------------------- ring buffer
def test_ring_wraparound_random_sizes():
    rng = np.random.default_rng(1)
    cap = 37
    ring = RingBuffer(cap)
    written = read = 0
    out = np.empty((50, 2), np.float32)
    for _ in range(5000):
        if rng.random() < 0.5:
            k = int(rng.integers(0, 50))
            data = np.stack([np.arange(written, written + k), -np.arange(written, written + k)],
                            axis=1).astype(np.float32)
            n = ring.write(data)
            assert n == min(k, cap - (written - read))
            written += n
        else:
            k = int(rng.integers(0, 50))
            n = ring.read_into(out[:k])
            assert n == min(k, written - read)
            expect = np.arange(read, read + n, dtype=np.float32)
            assert np.array_equal(out[:n, 0], expect) and np.array_equal(out[:n, 1], -expect)
            read += n
        assert ring.fill() == written - read
        assert ring.space() == cap - (written - read)
        assert ring.frames_written == written and ring.frames_read == read
    assert written > 100 * cap  # wrapped many times


def test_ring_large_start_index_and_skip():
    ring = RingBuffer(8, start=2**33 + 5)
    assert ring.fill() == 0 and ring.space() == 8
    assert ring.write(np.ones((10, 2), np.float32)) == 8
    assert ring.skip(3) == 3 and ring.fill() == 5
    out = np.zeros((8, 2), np.float32)
    assert ring.read_into(out) == 5 and ring.frames_read == 2**33 + 5 + 8
    assert ring.read_into(out) == 0
    with pytest.raises(ValueError):
        RingBuffer(0)


def test_ring_two_threads_keep_order():
    ring = RingBuffer(1000)
    total = 200_000
    got = np.empty(total, np.float32)
    errors = []

    def producer():
        pos = 0
        while pos < total:
            k = min(int(np.random.randint(1, 700)), total - pos)
            v = np.arange(pos, pos + k, dtype=np.float32)
            data = np.stack([v, v], axis=1)
            done = 0
            while done < k:
                n = ring.write(data[done:])
                done += n
                if n == 0:
                    time.sleep(0)  # let the consumer run
            pos += k

    def consumer():
        pos = 0
        buf = np.empty((333, 2), np.float32)
        try:
            while pos < total:
                n = ring.read_into(buf)
                got[pos:pos + n] = buf[:n, 0]
                pos += n
                if n == 0:
                    time.sleep(0)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    t1, t2 = threading.Thread(target=producer), threading.Thread(target=consumer)
    t1.start(), t2.start()
    t1.join(30), t2.join(30)
    assert not errors
    assert np.array_equal(got, np.arange(total, dtype=np.float32))


# ----------------------------------------------------------------------------- sink schedule
def make_manual(source=None, latency_ms=20, period_ms=5, block_frames=None, capture=True, **kw):
    clock = ManualClock(7_000_000)
    source = source or RampSource()
    out = NullOutput(RATE, clock, capture=capture)
    sink = WaveSink(source, out, clock=clock, latency_ms=latency_ms, period_ms=period_ms,
                    block_frames=block_frames, **kw)
    return clock, source, out, sink


def test_pull_schedule_fill_and_latency_clock_exact():
    clock, src, out, sink = make_manual()
    t0 = clock.now()
    assert sink.latency_frames == 960 and sink.period_frames == 240
    with pytest.raises(ClockInactiveError):
        sink.latency_clock().now()
    assert sink.latency_clock().try_now() is None
    sink.activate()
    assert not sink.threaded
    assert src.calls == [(960, 0)]  # pre-fill to the latency target
    assert sink.ring.fill() == 960
    assert sink.latency_sample() == 960
    assert sink.latency_clock().now() == t0 + 20 * MS
    for i in range(1, 201):
        clock.advance(5 * MS)
        assert sink.pump() == 240
        assert src.calls[-1] == (240, 960 + 240 * (i - 1))
        assert out.frames_consumed == 240 * i
        assert sink.ring.fill() == 960
        assert sink.latency_sample() == 960 + 240 * i
        assert sink.latency_clock().now() == t0 + (20 + 5 * i) * MS
        # the latency clock leads the master clock by exactly the latency target
        assert sink.latency_clock().now() - clock.now() == 20 * MS
    # an odd wake-up: 3.3 ms later renders exactly what was consumed
    clock.advance(33_000)
    assert sink.pump() == 158  # round(3.3 ms * 48 kHz) = 158.4 -> 158
    st = sink.stats()
    assert st.underruns == 0 and st.fill_frames == 960 and st.latency_ms == 20.0
    assert st.frames_written == 960 + 240 * 200 + 158
    sink.deactivate()
    with pytest.raises(ClockInactiveError):
        sink.latency_sample()
    # the output got the source's frames in order, nothing lost
    cap = out.captured()
    assert np.array_equal(cap[:, 0], np.arange(len(cap), dtype=np.float32))


def test_pull_schedule_with_fixed_blocks():
    clock, src, out, sink = make_manual(block_frames=128)
    sink.activate()
    assert src.calls == [(128, 128 * i) for i in range(8)]  # ceil(960/128) = 8 blocks
    assert sink.ring.fill() == 1024
    fills = []
    for _ in range(40):
        clock.advance(5 * MS)
        sink.pump()
        fills.append(sink.ring.fill())
        assert sink.ring.fill() >= 960 and sink.ring.fill() < 960 + 128
        assert all(n == 128 for n, _ in src.calls)
    # 1024-240=784 -> +2 blocks = 1040; 800 -> 1056; 816 -> 1072; 832 -> +1 block = 960 ...
    assert fills[:5] == [1040, 1056, 1072, 960, 976]
    assert out.underruns == 0
    assert sink.latency_sample() == sink.position == 128 * len(src.calls)


def test_idle_pump_renders_nothing():
    clock, src, out, sink = make_manual()
    sink.activate()
    assert sink.pump() == 0 and sink.pump() == 0
    assert len(src.calls) == 1


def test_event_at_ref_time_lands_on_its_sample():
    clock, src, out, sink = make_manual(source=ImpulseSource(), latency_ms=10, period_ms=3)
    sink.activate()
    lat = sink.latency_clock()
    stamps = []
    for step in range(300):
        clock.advance(3 * MS + (step % 7) * 1111)  # irregular wake-ups
        if step % 25 == 0:
            t = lat.now() + 12_345 * (step % 5) + 17  # an event stamped after the latency time
            s = sink.ref_to_sample(t)
            assert s >= sink.latency_sample()
            src.impulses.add(s)
            stamps.append((t, s))
        sink.pump()
    cap = out.captured()
    hits = np.flatnonzero(cap[:, 0])
    assert list(hits) == [s for _, s in stamps]  # each at its exact sample, none lost
    for t, s in stamps:  # and heard at its time: device frame s plays at t_act + s/rate
        assert 0 <= t - sink.sample_to_ref(s) < REF_PER_SEC / RATE


def test_positions_past_2_pow_32():
    start = 2**32 + 1000
    clock, src, out, sink = make_manual(source=ImpulseSource(), start_position=start)
    sink.activate()
    assert src.calls == [(960, start)]
    assert sink.latency_sample() == start + 960
    t = sink.latency_clock().now() + 3 * MS
    s = sink.ref_to_sample(t)
    assert s == start + 960 + 144
    src.impulses.add(s)
    for _ in range(10):
        clock.advance(5 * MS)
        sink.pump()
    cap = out.captured()
    assert list(np.flatnonzero(cap[:, 0])) == [s - start]
    assert sink.sample_to_ref(start) == 7_000_000  # the first sample is heard at t_act


def test_committed_frames_from_source_extend_latency_clock():
    clock, src, out, sink = make_manual(source=BlockSource(block=128))
    sink.activate()
    assert sink.position == 960
    assert sink.latency_sample() == 1024  # the source committed up to its block end
    clock.advance(5 * MS)
    sink.pump()
    assert sink.position == 1200 and sink.latency_sample() == 1280
    assert sink.latency_clock().now() == sink.sample_to_ref(1280)
    assert sink.stats().committed_sample == 1280


def test_stall_counts_underruns_and_recovers_deterministic():
    clock = ManualClock(0)
    # call 0 is the pre-fill; call 3 stalls for 50 ms (the latency is 20 ms)
    src = StallingSource(stall_call=3, stall_ref=50 * MS, clock=clock)
    out = NullOutput(RATE, clock, capture=True)
    sink = WaveSink(src, out, clock=clock, latency_ms=20, period_ms=5)
    sink.activate()
    for _ in range(3):
        clock.advance(5 * MS)
        sink.pump()
    assert out.underruns == 0
    assert clock.now() == 15 * MS + 50 * MS  # the stall happened inside the third pump
    clock.advance(5 * MS)  # t = 70 ms: 3360 frames due, only 960 + 3*240 - 3*240 ... in the ring
    sink.pump()
    played_before = 960 + 3 * 240
    assert out.underruns == 1
    assert out.underrun_frames == 70 * 48 - played_before  # zero-filled frames
    assert sink.ring.fill() == 960  # refilled to the target at once
    slip = out.underrun_frames
    # recovery: no more underruns, the latency clock leads the master clock by 20 ms again
    for _ in range(50):
        clock.advance(5 * MS)
        sink.pump()
        assert sink.latency_clock().now() - clock.now() == 20 * MS
    assert out.underruns == 1 and sink.stats().underrun_frames == slip
    cap = out.captured()[:, 0]
    # the source's frames are all there, in order, with one gap of zeros of `slip` frames
    assert np.array_equal(cap[:played_before], np.arange(played_before, dtype=np.float32))
    assert not cap[played_before:played_before + slip].any()
    rest = cap[played_before + slip:]
    assert np.array_equal(rest, np.arange(played_before, played_before + len(rest), dtype=np.float32))
    # sample s is heard at device frame s + slip: ref_to_sample accounts for it
    assert sink.ref_to_sample(clock.now()) == len(cap) - slip


@pytest.mark.realtime
@pytest.mark.xdist_group("realtime")
def test_stall_real_time_underruns_then_recovery():
    src = StallingSource(stall_call=30, sleep_s=0.25)
    out = NullOutput(RATE, MonotonicClock(), blocksize=256)
    sink = WaveSink(src, out, latency_ms=40, period_ms=5)
    sink.activate()
    try:
        t_end = time.monotonic() + 5
        while len(src.calls) <= 31 and time.monotonic() < t_end:
            time.sleep(0.01)
        time.sleep(0.1)
        assert out.underruns >= 1
        assert out.underrun_frames >= 0.15 * RATE  # at least stall - latency - slack
        after = out.underruns
        time.sleep(0.3)
        # recovered: the render thread keeps up again (a loaded CI machine may add a few)
        assert out.underruns - after <= 2
        assert sink.stats().fill_frames > 0
    finally:
        sink.deactivate()
    played = out.frames_consumed - out.underrun_frames
    assert played == sink.ring.frames_read


@pytest.mark.realtime
@pytest.mark.xdist_group("realtime")
def test_threaded_null_output_play_no_underruns():
    out = NullOutput(RATE, MonotonicClock(), blocksize=256)
    statuses = []
    st = play(SineSource(), out, duration_frames=RATE // 2, on_status=statuses.append,
              status_interval=0.05, latency_ms=40, period_ms=5)
    assert st.frames_played >= RATE // 2
    assert st.underruns == 0
    assert 0 < st.render_load < 1
    assert statuses and not st.active
    assert out.frames_consumed >= RATE // 2


@pytest.mark.realtime
@pytest.mark.xdist_group("realtime")
def test_play_stop_event_and_source_error():
    class Boom(SineSource):
        def render(self, n, position):
            if position > 5000:
                raise RuntimeError("boom")
            return super().render(n, position)

    out = NullOutput(RATE, MonotonicClock(), blocksize=256)
    with pytest.raises(RuntimeError, match="boom"):
        play(Boom(), out, duration_frames=RATE * 10, latency_ms=20)
    ev = threading.Event()
    ev.set()
    st = play(SineSource(), NullOutput(RATE, MonotonicClock()), duration_frames=None, stop_event=ev)
    assert not st.active


def test_sink_errors():
    clock = ManualClock()
    with pytest.raises(ValueError):
        WaveSink(SineSource(rate=44100), NullOutput(RATE, clock), clock=clock)
    sink = WaveSink(SineSource(), NullOutput(RATE, clock), clock=clock)
    with pytest.raises(ClockInactiveError):
        sink.pump()
    with pytest.raises(ClockInactiveError):
        sink.ref_to_sample(0)
    sink.activate()
    with pytest.raises(ValueError):
        play(SineSource(), NullOutput(RATE, clock), RATE, clock=clock)

    class Bad(SineSource):
        def render(self, n, position):
            return np.zeros((n + 1, 2), np.float32)

    with pytest.raises(ValueError, match="shape"):
        WaveSink(Bad(), NullOutput(RATE, clock), clock=clock).activate()


def test_reactivation_continues_positions(tmp_path):
    clock, src, out, sink = make_manual()
    sink.activate()
    clock.advance(5 * MS)
    sink.pump()
    sink.deactivate()
    clock.advance(1000 * MS)  # inactive for a second: nothing consumed, nothing rendered
    sink.activate()
    assert src.calls[-1] == (240, 960)  # ring still full: the pre-fill had nothing to do
    t_react = clock.now()
    assert sink.sample_to_ref(240) == t_react  # the next sample heard plays at activation
    clock.advance(5 * MS)
    sink.pump()
    assert src.calls[-1] == (240, 1200)
    cap = out.captured()[:, 0]
    assert np.array_equal(cap, np.arange(len(cap), dtype=np.float32))


# ----------------------------------------------------------------------------- WAV
def test_pcm16_conversion():
    x = np.array([[0.0, 1.0], [-1.0, 2.0], [-3.0, np.nan], [0.5, -0.5],
                  [1 / 65534, 3 / 65534]], np.float32)
    y = to_pcm16(x)
    assert y.dtype == np.dtype("<i2")
    assert y.tolist() == [[0, 32767], [-32767, 32767], [-32767, 0], [16384, -16384],
                          [round(float(np.float32(1 / 65534)) * 32767),
                           round(float(np.float32(3 / 65534)) * 32767)]]


@pytest.mark.parametrize("float32", [False, True])
def test_wav_output_equals_direct_render(tmp_path, float32):
    n = 48000 + 123
    p_sink, p_direct = tmp_path / "sink.wav", tmp_path / "direct.wav"
    with WavFileOutput(p_sink, RATE, float32=float32) as w:
        sink = WaveSink(SineSource(), w, block_frames=1000)
        assert sink.render_offline(n) == n
        assert sink.position == n
    write_wav(p_direct, SineSource().render(n, 0), RATE, float32=float32)
    assert p_sink.read_bytes() == p_direct.read_bytes()
    data, rate = read_wav(p_sink)
    assert rate == RATE and data.shape == (n, 2)
    ref = SineSource().render(n, 0)
    if float32:
        assert data.dtype == np.float32 and np.array_equal(data, ref)
        raw = p_sink.read_bytes()
        assert raw[:4] == b"RIFF" and struct.unpack("<I", raw[4:8])[0] == len(raw) - 8
        assert raw[12:16] == b"JUNK" and raw[48:52] == b"fmt "    # RF64 reserve, then fmt
        assert struct.unpack("<H", raw[56:58])[0] == 3
        assert b"fact" in raw[:96]
    else:
        assert data.dtype == np.int16 and np.array_equal(data, to_pcm16(ref))
        with wave.open(str(p_sink)) as wf:
            assert (wf.getnchannels(), wf.getsampwidth(), wf.getframerate(), wf.getnframes()) \
                == (2, 2, RATE, n)


@pytest.mark.parametrize("subtype", ["pcm16", "pcm24", "float"])
def test_wav_becomes_rf64_past_the_riff_limit(tmp_path, subtype):
    """Past the 4 GiB a RIFF size holds, close() rewrites the header as RF64 (the JUNK chunk
    reserved at the start becomes ds64); the limit is lowered here so the test writes 64 KB.
    libsndfile (soundfile) must read the result, and so must read_wav."""
    sf = pytest.importorskip("soundfile")
    audio = SineSource().render(8000, 0)
    small, big = tmp_path / "small.wav", tmp_path / "big.wav"
    write_wav(small, audio, RATE, subtype=subtype)
    w = WavFileOutput(big, RATE, subtype=subtype)
    w.riff_limit = 1000
    w.write(audio[:3000])
    w.write(audio[3000:])
    w.close()
    assert w.rf64
    a, b = small.read_bytes(), big.read_bytes()
    assert a[:4] == b"RIFF" and b[:4] == b"RF64" and b[12:16] == b"ds64"
    nb = 8000 * w._align
    assert len(a) == len(b) and a[-nb:] == b[-nb:]     # same samples, only the header differs
    riff, data_size, frames = struct.unpack("<QQQ", b[20:44])
    assert riff == len(b) - 8 and frames == 8000 and data_size == 8000 * w._align
    want = {"pcm16": lambda x: to_pcm16(x).astype(np.int64) << 16,
            "pcm24": lambda x: np.rint(np.clip(x.astype(np.float64), -1, 1) * 8388607)
            .astype(np.int64) << 8,
            "float": lambda x: x}[subtype](audio)
    for p in (small, big):
        got, sr = sf.read(str(p), dtype="float32" if subtype == "float" else "int32")
        assert sr == RATE and got.shape == (8000, 2)
        assert np.array_equal(got, want)
        data, _ = read_wav(p)
        assert data.shape == (8000, 2)
    with pytest.raises(ValueError, match="subtype"):
        WavFileOutput(tmp_path / "x.wav", RATE, subtype="pcm8")


def test_wav_through_play_offline(tmp_path):
    p = tmp_path / "x.wav"
    seen = []
    with WavFileOutput(p, RATE) as w:
        st = play(SineSource(), w, duration_frames=10_000, on_status=seen.append)
    assert st.frames_written == 10_000 and seen
    data, _ = read_wav(p)
    assert np.array_equal(data, to_pcm16(SineSource().render(10_000, 0)))
    with pytest.raises(RuntimeError):
        WaveSink(SineSource(), WavFileOutput(tmp_path / "y.wav", RATE)).activate()
    with pytest.raises(ValueError):
        write_wav(tmp_path / "z.wav", np.zeros((10, 1), np.float32), RATE)


def test_wav_float_readable_by_scipy(tmp_path):
    scipy_wav = pytest.importorskip("scipy.io.wavfile")
    audio = SineSource().render(1000, 0)
    write_wav(tmp_path / "f.wav", audio, RATE, float32=True)
    rate, data = scipy_wav.read(tmp_path / "f.wav")
    assert rate == RATE and data.dtype == np.float32 and np.array_equal(data, audio)


# ----------------------------------------------------------------------------- sounddevice
def test_missing_sounddevice_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(RuntimeError, match="pip install sounddevice"):
        hs_outputs.SoundDeviceOutput()


# ----------------------------------------------------------------------------- the real synth
@pytest.fixture(scope="module")
def synth_factory():
    synth_mod = pytest.importorskip("gpusynth.synth")
    from gpusynth.banks.builtin import load_builtin
    bank = load_builtin()

    def make():
        s = synth_mod.Synth(backend="numpy")
        s.open({"sample_rate": RATE, "voices": 128})
        s.download(bank)
        return s
    return make


def _note(t, key, on=True, vel=100):
    from gpusynth import events as ev
    return ev.event_array([(t, 0, ev.NOTE_ON if on else ev.NOTE_OFF, key, vel if on else 0)])


def test_synth_latency_clock_and_exact_onsets(synth_factory):
    synth = synth_factory()
    clock = ManualClock(123_456_789)
    out = NullOutput(RATE, clock, capture=True)
    sink = WaveSink(synth, out, clock=clock, latency_ms=20, period_ms=5)
    sink.activate()
    # the synth renders in internal blocks: the latency clock is its committed position
    assert sink.position == 960 and synth.committed_frames >= 960
    assert sink.latency_sample() == synth.committed_frames
    onsets, played = [], []
    for step in range(120):
        clock.advance(5 * MS)
        if step in (3, 40, 80):
            lat = sink.latency_clock().now()
            # step 3: "play now" (stamped with the latency time); others: 7.3 ms later
            t = lat if step == 3 else lat + 73_000
            s = sink.ref_to_sample(t)
            assert s >= synth.committed_frames
            e = _note(s, 60 + step % 12)
            synth.play(e)
            played.append(e)
            onsets.append(s)
        sink.pump()
    assert out.underruns == 0
    assert sink.latency_clock().now() - clock.now() >= 20 * MS
    cap = out.captured()
    assert np.flatnonzero(np.abs(cap[:, 0]) > 0)[0] == onsets[0]
    # every event landed on its exact sample: the real-time output equals an offline render
    # of the same sample-stamped events
    ref = synth_factory()
    ref.play(np.concatenate(played))
    assert np.array_equal(cap, ref.render(len(cap), 0))


def test_synth_offline_wav_is_block_size_independent(synth_factory, tmp_path):
    n = 30_000
    paths = []
    for block in (1000, 333):
        synth = synth_factory()
        synth.play(np.concatenate([_note(100, 60), _note(5000, 64), _note(20000, 60, on=False)]))
        p = tmp_path / f"b{block}.wav"
        with WavFileOutput(p, RATE, float32=True) as w:
            WaveSink(synth, w).render_offline(n, block_frames=block)
        paths.append(p)
    synth = synth_factory()
    synth.play(np.concatenate([_note(100, 60), _note(5000, 64), _note(20000, 60, on=False)]))
    write_wav(tmp_path / "direct.wav", synth.render(n, 0), RATE, float32=True)
    assert paths[0].read_bytes() == paths[1].read_bytes() == (tmp_path / "direct.wav").read_bytes()
    data, _ = read_wav(paths[0])
    assert np.flatnonzero(np.abs(data[:, 0]) > 0)[0] == 100
