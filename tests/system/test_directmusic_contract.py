"""The DirectMusic synth / sink contract, in the order of Wine's dmsynth tests
(dlls/dmsynth/tests/dmsynth.c: test_dmsynth, test_IDirectMusicSynth, test_IKsControl,
test_IDirectMusicSynthSink), each check mapped to our API:

    HRESULT                         here
    DMUS_E_ALREADYOPEN / CLOSED     SynthError from open() / close()
    DMUS_E_SYNTHNOTCONFIGURED       SynthError (synth) / SinkNotConfiguredError (sink)
    DMUS_E_NOSYNTHSINK              SynthError from get_latency_clock() / activate()
    DMUS_E_SYNTHACTIVE              SinkActiveError from sink.activate() when active
    S_FALSE from Open               open()["clamped"] lists the clamped parameters
    S_FALSE from Activate           activate() returns False
    E_FAIL from the latency clock   ClockInactiveError while the sink is inactive

Where our defaults or limits differ from native / Wine (22,050 Hz, 32 voices, 11,025-96,000 Hz,
1,000 groups / voices) the test says so; the behaviour (defaults, clamping, reporting) is the
same.
"""
import numpy as np
import pytest

from gpusynth import Synth
from gpusynth.synth import (DEFAULTS, DIRECTMUSIC_GAIN, LIMITS, VOLUME_DEFAULTS, SynthError)
from gpusynth.channels import DEFAULT_PRIORITY
from gpusynth.events import event_array
from hostsink import (REF_PER_SEC, ClockInactiveError, ManualClock, NullOutput,
                      SinkActiveError, SinkNotConfiguredError, WaveSink)

from synth_util import RATE, make_synth, sine_bank

MS = REF_PER_SEC // 1000


def dry_synth(rate=RATE, **kw):
    """A synth with the sine bank and no reverb / chorus (port parameter effects=0), so that
    levels and silences are the dry voices'."""
    s = Synth(**kw)
    try:
        s.open({"sample_rate": rate, "voices": 64, "effects": 0})
    except ValueError:          # a tree without the effects port parameter has no effects
        s.open({"sample_rate": rate, "voices": 64})
    s.download(sine_bank())
    return s


def manual_sink(source=None, rate=RATE, clock=None):
    clock = clock or ManualClock(7_000_000)
    return WaveSink(source, NullOutput(rate, clock=clock), clock=clock, latency_ms=20,
                    period_ms=5), clock


# ------------------------------------------------------------------ test_dmsynth: open / close
def test_open_close_errors_and_defaults():
    s = Synth()
    eff = s.open()                              # Open(NULL): S_OK, defaults
    assert eff["clamped"] == []
    for k, v in DEFAULTS.items():               # native: 22050 Hz, 32 voices, 2 groups, stereo
        assert eff[k] == v
    assert eff["channel_groups"] == 2 and eff["audio_channels"] == 2
    assert eff["share"] == 0 and eff["features"] == 0
    with pytest.raises(SynthError, match="ALREADYOPEN"):
        s.open()
    s.close()
    with pytest.raises(SynthError, match="ALREADYCLOSED"):
        s.close()


def test_open_all_zero_clamps_to_minimums():
    s = Synth()
    eff = s.open({k: 0 for k in ("voices", "channel_groups", "audio_channels", "sample_rate",
                                 "share", "features")})
    # S_FALSE: voices 1, groups 1, rate the minimum (native 11025), stereo kept
    assert set(eff["clamped"]) == {"voices", "channel_groups", "audio_channels", "sample_rate"}
    assert eff["voices"] == 1 and eff["channel_groups"] == 1
    assert eff["sample_rate"] == LIMITS["sample_rate"][0] and eff["audio_channels"] == 2
    assert eff["share"] == 0 and eff["features"] == 0


def test_open_over_the_maximum_is_clamped():
    s = Synth()
    eff = s.open({"sample_rate": 1_000_003})    # native: 100003 -> 96000, S_FALSE
    assert eff["clamped"] == ["sample_rate"] and eff["sample_rate"] == LIMITS["sample_rate"][1]
    s.close()
    eff = s.open({"voices": 10**9, "channel_groups": 10**6})
    assert eff["voices"] == LIMITS["voices"][1]
    assert eff["channel_groups"] == LIMITS["channel_groups"][1]


def test_share_and_features_are_accepted_and_reported():
    s = Synth()
    eff = s.open({"share": 1, "features": 0x3})  # AUDIOPATH | STREAMING
    assert eff["share"] == 0 and "share" in eff["clamped"]     # native: fShare FALSE, S_FALSE
    assert eff["features"] == 0x3
    s.close()
    with pytest.raises(ValueError, match="unknown port parameter"):
        s.open({"bogus": 1})


# ------------------------------------------------------------------ latency clock and sink
def test_latency_clock_needs_a_sink_and_is_the_sinks():
    s = Synth()
    with pytest.raises(SynthError, match="NOSYNTHSINK"):
        s.get_latency_clock()
    sink, clock = manual_sink()                 # a sink made with no synth (CoCreateInstance)
    s.set_sink(sink)                            # before open(): DirectMusic's order
    assert s.get_latency_clock() is sink.latency_clock()
    with pytest.raises(ClockInactiveError):     # E_FAIL while inactive
        s.get_latency_clock().now()
    with pytest.raises(SinkNotConfiguredError):  # Activate before Open: SYNTHNOTCONFIGURED
        sink.activate()
    s.open({"sample_rate": RATE})
    s.download(sine_bank())
    assert s.activate() is True
    try:
        t = clock.now()
        lat = s.get_latency_clock().now()
        assert t < lat <= t + 2 * REF_PER_SEC    # native: within 2 s ahead of the master clock
    finally:
        assert s.activate(False) is True


def test_set_sink_binds_a_sink_made_for_another_synth():
    a, b = make_synth(), make_synth()
    sink, clock = manual_sink(a)
    b.set_sink(sink)
    assert sink.source is b                     # SetSynthSink calls Init(synth)
    b.play(event_array([(0, 0, 0x90, 69, 100)]))
    b.activate()
    try:
        sink.pump()
        assert sink.latency_sample() == b.committed_frames   # b's position, not a's
        assert a.committed_frames == 0
    finally:
        b.activate(False)
    other, _ = manual_sink(a)
    a.set_sink(other)
    a.activate()
    try:
        with pytest.raises(SynthError, match="SYNTHACTIVE"):
            b.set_sink(other)                   # active for another synth: refused
    finally:
        a.activate(False)


def test_reopen_at_another_rate_converts_at_the_new_rate():
    s = Synth()
    sink, clock = manual_sink(rate=44100)
    s.set_sink(sink)
    s.open({"sample_rate": 48000})
    with pytest.raises(ValueError, match="output rate"):
        sink.activate()                          # a 44.1 kHz device cannot play 48 kHz
    s.close()
    s.open({"sample_rate": 44100})
    s.activate()
    try:
        assert sink.sample_rate == 44100
        t0 = sink.sample_to_ref(0)
        assert sink.sample_to_ref(44100) - t0 == REF_PER_SEC
        assert sink.ref_to_sample(t0 + REF_PER_SEC) == 44100
        assert sink.desired_buffer_size() == 352800      # native's value at 44.1 kHz stereo
    finally:
        s.close()                                # closing deactivates the sink
    assert not sink.active


def test_master_clock_can_change_after_construction():
    s = make_synth()
    sink, clock = manual_sink()
    s.set_sink(sink)
    s.activate()
    try:
        sink.pump()
        lat_sample = sink.latency_sample()
        playing = sink.ref_to_sample(clock.now())
        new = ManualClock(10**12)
        s.set_master_clock(new)                  # forwarded to the sink, fine while active
        assert sink.clock is new
        # the sample playing now keeps its place; reference times are the new clock's
        assert sink.ref_to_sample(new.now()) == playing
        assert 0 <= sink.latency_clock().now() - new.now() <= 2 * REF_PER_SEC
        new.advance(5 * MS)
        sink.pump()
        assert sink.latency_sample() >= lat_sample
    finally:
        s.activate(False)
    with pytest.raises(ValueError):
        s.set_master_clock(None)                 # E_POINTER


# ------------------------------------------------------------------ conversions
@pytest.mark.parametrize("rate", [11025, 22050, 44100, 48000, 96000])
def test_sample_reference_conversions_never_run_late(rate):
    s = make_synth(rate=rate)
    sink, clock = manual_sink(rate=rate)
    s.set_sink(sink)
    s.activate()
    try:
        rng = np.random.default_rng(rate)
        for rt in clock.now() + rng.integers(-10**9, 10**12, 2000):
            smp = sink.ref_to_sample(int(rt))
            back = sink.sample_to_ref(smp)
            assert back <= rt < back + REF_PER_SEC / rate   # truncate, never later
            assert sink.ref_to_sample(back) == smp          # sample -> ref -> sample exact
        assert sink.sample_to_ref(rate) - sink.sample_to_ref(0) == REF_PER_SEC
    finally:
        s.activate(False)


# ------------------------------------------------------------------ activate
def test_activate():
    s = Synth()
    with pytest.raises(SynthError, match="NOSYNTHSINK"):
        s.activate()
    assert s.activate(False) is False            # S_FALSE
    s.open()
    sink, clock = manual_sink(rate=s.sample_rate)
    s.set_sink(sink)
    assert s.activate() is True                  # S_OK
    assert s.activate() is False                 # S_FALSE: already active
    with pytest.raises(SinkActiveError):         # the sink itself: DMUS_E_SYNTHACTIVE
        sink.activate()
    assert s.activate(False) is True
    assert s.activate(False) is False
    s.set_sink(None)                             # removing the sink is fine
    assert sink.source is None
    with pytest.raises(SinkNotConfiguredError):
        sink.activate()
    with pytest.raises(SinkNotConfiguredError):  # GetDesiredBufferSize: SYNTHNOTCONFIGURED
        sink.desired_buffer_size()


# ------------------------------------------------------------------ caps and priorities
def test_port_caps():
    caps = Synth().port_caps()                   # no open needed
    assert caps["flags"] & 0x1 and caps["flags"] & 0x200 and caps["flags"] & 0x4
    assert caps["type"] == "user_mode_synth" and caps["memory_size"] == 0x7FFFFFFF
    assert caps["max_channel_groups"] == LIMITS["channel_groups"][1]
    assert caps["max_voices"] == LIMITS["voices"][1] and caps["max_audio_channels"] == 2


def test_channel_priorities():
    s = Synth()
    with pytest.raises(SynthError, match="SYNTHNOTCONFIGURED"):
        s.get_channel_priority(1, 0)
    with pytest.raises(SynthError, match="SYNTHNOTCONFIGURED"):
        s.set_channel_priority(1, 0, 5)
    s.open({"channel_groups": 2})
    # DLS1 defaults: STANDARD | offset, channel 10 highest, then 1..9, then 11..16
    assert [s.get_channel_priority(2, c) for c in range(16)] == DEFAULT_PRIORITY.tolist()
    assert s.get_channel_priority(1, 9) > s.get_channel_priority(1, 0) > \
        s.get_channel_priority(1, 15)
    s.set_channel_priority(2, 3, 0xF0000000)
    assert s.get_channel_priority(2, 3) == 0xF0000000
    assert s.get_channel_priority(1, 3) == DEFAULT_PRIORITY[3]
    for bad in ((0, 0), (3, 0), (1, 16), (1, -1)):
        with pytest.raises(ValueError):
            s.get_channel_priority(*bad)


# ------------------------------------------------------------------ SetNumChannelGroups
def test_set_channel_groups():
    s = Synth()
    with pytest.raises(SynthError, match="SYNTHNOTCONFIGURED"):
        s.set_channel_groups(1)
    s.open({"sample_rate": RATE, "channel_groups": 1})
    s.download(sine_bank())
    s.set_channel_priority(1, 2, 1234)
    assert s.set_channel_groups(3) == 3
    assert s.get_channel_priority(1, 2) == 1234            # kept
    assert s.get_channel_priority(3, 2) == DEFAULT_PRIORITY[2]
    # a note on group 3 plays; shrinking cuts it and refuses group-3 events afterwards
    s.play(event_array([(0, 32, 0x90, 69, 100), (0, 0, 0x90, 69, 100)]))
    a = s.render(RATE // 4, 0)
    assert s.active_voices == 2
    s.set_channel_priority(3, 0, 77)
    assert s.set_channel_groups(1) == 1
    s.render(RATE // 4)
    assert s.active_voices == 1
    with pytest.raises(ValueError):
        s.play(event_array([(RATE, 32, 0x90, 60, 100)]))
    assert s.set_channel_groups(3) == 3                    # added again: back to defaults
    assert s.get_channel_priority(3, 0) == DEFAULT_PRIORITY[0]
    assert s.set_channel_groups(0) == 1                    # clamped
    assert np.abs(a).max() > 0


# ------------------------------------------------------------------ download / unload
def test_download_unload():
    s = dry_synth()
    h = s.download(sine_bank())
    with pytest.raises(KeyError):
        s.unload(0)                              # E_FAIL: no such handle
    with pytest.raises(TypeError):
        s.download(b"not a bank")
    s.play(event_array([(100, 0, 0x90, 69, 100), (RATE // 16, 0, 0x80, 69, 0)]))
    s.unload(h)
    assert np.abs(s.render(RATE // 8, 0)).max() > 0  # the first bank still plays
    s.unload(1)
    s.play(event_array([(RATE, 0, 0x90, 69, 100)]))  # no bank left: silence, no error
    out = s.render(2 * RATE - RATE // 8)
    assert np.abs(out[RATE - RATE // 8:]).max() == 0
    with pytest.raises(KeyError):
        s.unload(h)                              # already unloaded


# ------------------------------------------------------------------ test_IKsControl: volume
def _level(volume=VOLUME_DEFAULTS, **kw):
    s = dry_synth(**kw)
    s.set_volume(volume[0], 0)
    s.set_volume(volume[1], 1)
    s.play(event_array([(0, 0, 0x90, 69, 127)]))
    a = s.render(RATE // 2, 0)
    return float(np.abs(a[RATE // 4:, 0]).max())


def test_volume_property():
    s = Synth()
    assert [s.get_volume(0), s.get_volume(1)] == list(VOLUME_DEFAULTS) == [0, 600]
    with pytest.raises(ValueError, match="UNKNOWN_PROPERTY"):
        s.set_volume(0, item=2)
    assert s.set_volume(-30000) == -20000 and s.set_volume(5000) == 2000   # clamped
    base = _level()
    assert _level(gain=0.5) == base
    for v0, v1, db in ((-600, 600, -6.0), (0, 0, -6.0), (-600, 0, -12.0), (600, 600, 6.0)):
        got = 20 * np.log10(_level((v0, v1)) / base)
        assert got == pytest.approx(db, abs=0.01)


def test_directmusic_reference_level():
    """Native / Wine: a full-scale region at velocity 127 with CC7 100 and centre pan plays at
    base +6 dB + volume item 1 (+6 dB) - 4.15 dB (CC7) - 3.01 dB (pan) on each side."""
    ref = 10 ** ((1200 - 415.2 - 301.0) / 2000)
    lv = _level(gain="directmusic")
    assert lv == pytest.approx(ref, rel=0.005)
    assert DIRECTMUSIC_GAIN == pytest.approx(10 ** 0.6)
    # the default gain (0.5) is a stated 18.0 dB of headroom below it
    lv0 = _level()
    assert 20 * np.log10(ref / lv0) == pytest.approx(18.02, abs=0.05)
