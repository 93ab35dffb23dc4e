"""Engine core: pitch, timing, block-size invariance, pedals, pan, stealing, exclusive class,
drums, determinism, DirectMusic open/priority contract. Measured on real renders."""
import numpy as np
import pytest

from gpusynth import Synth, SynthError
from gpusynth.channels import DEFAULT_PRIORITY
from synth_util import RATE, sine_bank, make_synth, render_events, fft_pitch, cents

ON, OFF, CC, PB = 0x90, 0x80, 0xB0, 0xE0


def test_pitch_key69_is_440(backend):
    out, _ = render_events([(0, 0, ON, 69, 100)], RATE, backend=backend)
    f = fft_pitch(out[4800:, 0])
    assert abs(cents(f, 440.0)) < 1.0, f


def test_pitch_bend_full_up_range2_equals_key62(backend):
    rows = [(0, 0, CC, 101, 0), (0, 0, CC, 100, 0), (0, 0, CC, 6, 2), (0, 0, CC, 38, 0),
            (0, 0, PB, 0x7F, 0x7F), (0, 0, ON, 60, 100)]
    out, _ = render_events(rows, RATE, backend=backend)
    f = fft_pitch(out[4800:, 0])
    f62 = 440.0 * 2 ** ((62 - 69) / 12)
    # +8191 of 8192 is 1/8192 short of a full 200 cents: 0.024 cents, well inside 1 cent
    assert abs(cents(f, f62)) < 1.0, (f, f62)


@pytest.mark.parametrize("t", [0, 1, 63, 64, 100, 4095, 4097])
def test_note_on_starts_at_its_exact_sample(t):
    out, _ = render_events([(t, 0, ON, 69, 100)], t + 500)
    nz = np.flatnonzero(np.abs(out[:, 0]) > 0)
    assert nz[0] == t


def test_block_sizes_give_identical_output():
    rows = [(0, 0, 0xC0, 0, 0), (10, 0, ON, 60, 100), (333, 0, ON, 64, 90), (5000, 0, OFF, 60, 0),
            (6000, 0, PB, 0, 0x50), (7000, 0, CC, 10, 20), (7777, 0, CC, 7, 60),
            (9000, 0, CC, 64, 127), (9100, 0, OFF, 64, 0), (15000, 0, CC, 64, 0),
            (16000, 9, ON, 36, 120), (16001, 9, ON, 42, 100)]
    n = 24000
    ref, _ = render_events(rows, n, block=n)
    for b in (1, 7, 64, 1000, 4096):
        if b == 1:
            out, _ = render_events(rows, 3000, block=1)
            assert np.array_equal(out, ref[:3000])
            continue
        out, _ = render_events(rows, n, block=b)
        assert np.array_equal(out, ref), f"block size {b} differs"


def _rms(x):
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def test_sustain_pedal_holds_and_releases():
    # release time 0.1 s (tc = 1200*log2(0.1) = -3986)
    bank = sine_bank(release_tc=-3986.0)
    rows = [(0, 0, CC, 64, 127), (0, 0, ON, 69, 100), (RATE // 4, 0, OFF, 69, 0),
            (RATE, 0, CC, 64, 0)]
    out, _ = render_events(rows, 2 * RATE, bank=bank)
    held = _rms(out[RATE // 2: RATE // 2 + 4800, 0])
    before = _rms(out[4800:9600, 0])
    assert held == pytest.approx(before, rel=0.01), "pedal must hold the note at full level"
    after = _rms(out[RATE + 9600: RATE + 14400, 0])   # 0.2-0.3 s after the pedal: <= -40 dB
    assert after < before * 0.01
    # without the pedal the note decays right after its note-off
    out2, _ = render_events(rows[1:3], RATE, bank=bank)
    assert _rms(out2[RATE // 2: RATE // 2 + 4800, 0]) < before * 0.01


def test_sostenuto_holds_only_notes_down_when_pressed():
    bank = sine_bank(release_tc=-3986.0)
    rows = [(0, 0, ON, 69, 100), (100, 0, CC, 66, 127), (200, 0, ON, 81, 100),
            (RATE // 4, 0, OFF, 69, 0), (RATE // 4, 0, OFF, 81, 0)]
    out, _ = render_events(rows, RATE, bank=bank)
    seg = out[RATE // 2: RATE // 2 + 9600, 0]
    f = fft_pitch(seg)
    assert abs(cents(f, 440.0)) < 5 and _rms(seg) > 0.05   # key 69 held
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    hz = np.fft.rfftfreq(len(seg), 1 / RATE)
    at = lambda f0: spec[np.abs(hz - f0) < 20].max()      # noqa: E731
    assert at(880.0) < at(440.0) * 1e-3                    # key 81 released (below -60 dB)
    # and with sostenuto not pressed, nothing is held at all
    out0, _ = render_events([r for r in rows if r[2] != CC], RATE, bank=bank)
    assert _rms(out0[RATE // 2: RATE // 2 + 9600, 0]) < 1e-3


@pytest.mark.parametrize("cc10", [0, 64, 127])
def test_cc10_constant_power_pan(cc10):
    out, _ = render_events([(0, 0, CC, 10, cc10), (0, 0, ON, 69, 100)], RATE // 2)
    L, R = _rms(out[4800:, 0]), _rms(out[4800:, 1])
    pan = (cc10 - 64) / 64 * 500
    ang = (pan + 500) / 1000 * np.pi / 2
    total = np.hypot(L, R)
    assert L / total == pytest.approx(np.cos(ang), abs=1e-4)
    assert R / total == pytest.approx(np.sin(ang), abs=1e-4)
    ref, _ = render_events([(0, 0, ON, 69, 100)], RATE // 2)
    assert total == pytest.approx(np.hypot(_rms(ref[4800:, 0]), _rms(ref[4800:, 1])), rel=1e-4)


def test_voice_stealing_counts_and_has_no_click(backend):
    # 8-voice limit, 24 notes of a low sine at staggered times: every new note steals
    rows = [(i * 997, 0, ON, 40 + i, 100) for i in range(24)]
    bank = sine_bank(attack_tc=-9172.0)        # 5 ms attack: onsets themselves do not click
    out, s = render_events(rows, 24 * 997 + RATE // 4, voices=8, backend=backend, bank=bank)
    st = s.running_stats()
    assert st["stolen_voices"] == 16
    assert st["peak_voices"] <= 8 + 16          # fading voices are temporary extra voices
    step = np.max(np.abs(np.diff(out[:, 0].astype(np.float64))))
    peak = np.max(np.abs(out[:, 0]))
    # natural steps of 8 summed sines at <= 233 Hz are <= 8 * 0.5 * 2 pi 233/48000 ~ 0.12;
    # a hard cut of one voice would step by one voice's amplitude (~ 0.35 here)
    natural = 8 * 0.5 * 0.7072 * 2 * np.pi * (440 * 2 ** ((63 - 69) / 12)) / RATE
    assert step <= natural * 1.05, (step, natural, peak)


def test_steal_prefers_lowest_channel_priority():
    # channel 16 (index 15) has the lowest default priority: its note is stolen first
    rows = [(0, 15, ON, 57, 100), (10, 0, ON, 60, 100), (20, 9, ON, 36, 100), (RATE // 10, 1, ON, 64, 100)]
    out, s = render_events(rows, RATE // 2, voices=3)
    assert s.running_stats()["stolen_voices"] == 1
    seg = out[RATE // 4:, 0]
    sp = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    hz = np.fft.rfftfreq(len(seg), 1 / RATE)
    k57 = np.argmin(np.abs(hz - 220.0))
    k60 = np.argmin(np.abs(hz - 261.63))
    assert sp[k57] < 0.01 * sp[k60]


def test_exclusive_class_cut():
    bank = sine_bank(excl_keys=(42, 44, 46), drum_hz=100.0)
    t_cut = 4800
    both, _ = render_events([(0, 9, ON, 46, 100), (t_cut, 9, ON, 42, 100)], RATE // 2, bank=bank)
    alone, _ = render_events([(t_cut, 9, ON, 42, 100)], RATE // 2, bank=bank)
    fade = int(0.003 * RATE)
    # before the cut the open hat sounds, after the fade only the closed hat remains
    assert _rms(both[:t_cut, 0]) > 0.05
    assert np.max(np.abs(both[t_cut + fade + 1:] - alone[t_cut + fade + 1:])) < 1e-6
    # a key outside the class does not cut
    kept, _ = render_events([(0, 9, ON, 46, 100), (t_cut, 9, ON, 38, 100)], RATE // 2, bank=bank)
    assert np.max(np.abs(kept[t_cut + fade + 1:] - alone[t_cut + fade + 1:])) > 0.05


def test_same_key_retrigger_releases_previous_voice():
    bank = sine_bank(release_tc=-3986.0)
    out, s = render_events([(0, 0, ON, 69, 100), (RATE // 4, 0, ON, 69, 100)], RATE, bank=bank)
    assert s.active_voices == 1


def test_drums_on_channel_10():
    out, _ = render_events([(0, 9, ON, 60, 100)], RATE // 2)
    assert abs(cents(fft_pitch(out[4800:, 0]), 100.0)) < 1     # drum kit sample, not key 60
    out, _ = render_events([(0, 0, ON, 60, 100)], RATE // 2)
    assert abs(cents(fft_pitch(out[4800:, 0]), 261.6256)) < 1
    # channel 10 of the second group is a drum channel too
    out, _ = render_events([(0, 25, ON, 60, 100)], RATE // 2)
    assert abs(cents(fft_pitch(out[4800:, 0]), 100.0)) < 1


def test_note_off_is_sample_accurate():
    bank = sine_bank(release_tc=-32768.0)
    t_off = 12345
    out, _ = render_events([(0, 0, ON, 69, 100), (t_off, 0, OFF, 69, 0)], RATE // 2, bank=bank)
    # an instant release reaches -100 dB one sample after the note-off
    assert np.max(np.abs(out[t_off + 1:])) < 1e-5
    assert _rms(out[t_off - 100:t_off, 0]) > 0.1


def test_volume_expression_curves():
    ref, _ = render_events([(0, 0, CC, 7, 127), (0, 0, ON, 69, 100)], RATE // 4)
    half, _ = render_events([(0, 0, CC, 7, 64), (0, 0, ON, 69, 100)], RATE // 4)
    db = 20 * np.log10(_rms(half[4800:, 0]) / _rms(ref[4800:, 0]))
    expected = 40 * np.log10(64 / 127)     # concave 960 cB curve: 96 dB * (40/96) log10: -11.9 dB
    assert expected == pytest.approx(-11.91, abs=0.01)
    assert db == pytest.approx(expected, abs=0.05)


def test_all_sound_off_and_reset():
    rows = [(0, 0, ON, 69, 100), (RATE // 4, 0, CC, 120, 0)]
    out, s = render_events(rows, RATE // 2)
    assert s.active_voices == 0 and np.all(out[RATE // 4 + 200:] == 0)


def test_open_clamps_and_reports():
    s = Synth()
    eff = s.open({"sample_rate": 200000, "voices": 10 ** 9, "channel_groups": 1000})
    assert eff["sample_rate"] == 192000 and eff["voices"] == 4_000_000
    assert eff["channel_groups"] == 1000
    assert set(eff["clamped"]) == {"sample_rate", "voices"}
    with pytest.raises(SynthError):
        s.open()
    s.close()
    with pytest.raises(SynthError):
        s.close()
    with pytest.raises(ValueError):
        Synth().open({"bogus": 1})


def test_channel_priority_defaults_and_set():
    s = make_synth()
    prios = [s.get_channel_priority(1, c) for c in range(16)]
    assert prios[9] == max(prios)
    assert prios[:9] == sorted(prios[:9], reverse=True) and prios[0] > prios[10]
    assert prios[10:] == sorted(prios[10:], reverse=True) and prios[8] > prios[10]
    assert list(DEFAULT_PRIORITY) == prios
    s.set_channel_priority(2, 3, 0xC0000000)
    assert s.get_channel_priority(2, 3) == 0xC0000000
    with pytest.raises(ValueError):
        s.get_channel_priority(0, 0)


def test_thousand_channel_groups():
    s = Synth()
    s.open({"channel_groups": 1000, "voices": 64})
    s.download(sine_bank())
    from gpusynth.events import event_array
    s.play(event_array([(0, 999 * 16 + 0, ON, 69, 100), (0, 999 * 16 + 9, ON, 36, 100)]))
    out = s.render(4800, 0)
    assert s.active_voices == 2 and np.max(np.abs(out)) > 0.1


def test_running_stats_fields():
    out, s = render_events([(0, 0, ON, 69, 100), (0, 0, ON, 72, 100)], RATE // 4)
    st = s.running_stats()
    for k in ("voices", "peak_voices", "stolen_voices", "lost_notes", "peak_volume_db", "render_load"):
        assert k in st
    assert st["peak_voices"] == 2
    assert st["peak_volume_db"] == pytest.approx(20 * np.log10(np.max(np.abs(out))), abs=0.01)


@pytest.mark.slow
def test_two_renders_are_identical():
    rows = [(i * 1000, i % 16, ON, 40 + (i * 7) % 40, 60 + i % 60) for i in range(60)]
    a, _ = render_events(rows, RATE * 2, voices=16)
    b, _ = render_events(rows, RATE * 2, voices=16)
    assert np.array_equal(a, b)


def test_latency_clock_needs_a_sink():
    from hostsink import ManualClock, NullOutput, WaveSink
    s = make_synth()
    with pytest.raises(SynthError):
        s.get_latency_clock()
    clock = ManualClock()
    sink = WaveSink(s, NullOutput(RATE, clock=clock), clock=clock, latency_ms=20, period_ms=5)
    s.set_sink(sink)
    sink.activate()
    try:
        sink.pump()
        lc = s.get_latency_clock().now()
        # the latency clock leads the master clock by what is committed (>= 20 ms target)
        assert lc - clock.now() >= 20 * 10_000
        assert sink.ref_to_sample(lc) >= s.committed_frames - 256
    finally:
        sink.deactivate()
