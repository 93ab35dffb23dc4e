"""gpusynth.voices: the packed voice record, region templates, regions -> voice records (pitch,
velocity, envelope times) on the built-in bank, and the slot compaction moves."""
import numpy as np
import pytest

from gpusynth import units
from gpusynth.banks.builtin import load_builtin
from gpusynth.banks.model import REGION_DTYPE
from gpusynth.voices import (NEVER, TICK, VOICE_DTYPE, VOICE_DTYPES, VOICE_FIELDS,
                             compaction_moves, envelope_frames, region_templates,
                             regions_to_voices)

RATE = 48000.0


@pytest.fixture(scope="module")
def bank():
    return load_builtin()


def preset(bank, program, drum=False):
    return next(p for p in bank.presets if p.program == program and p.bank == 0 and p.drum == drum)


def region_for(bank, program, key, drum=False):
    """The one region (REGION_DTYPE, 1-element array) the built-in preset plays for key."""
    idx = np.asarray(preset(bank, program, drum).regions)
    reg = bank.regions[idx]
    hit = idx[(reg["key_lo"] <= key) & (key <= reg["key_hi"])]
    assert len(hit) == 1
    return bank.regions[hit]


def resolve(reg, key, vel=100, chan=0, time=0, rate=RATE, **kw):
    n = len(reg)
    b = lambda x, dt: np.broadcast_to(np.asarray(x, dt), (n,)).copy()
    return regions_to_voices(reg, b(key, np.int64), b(vel, np.int64), b(chan, np.int32),
                             b(time, np.int64), rate, **kw)


# ---- the record ----------------------------------------------------------------------

def test_voice_dtype_is_packed_in_field_order():
    names = [n for n, _, _ in VOICE_FIELDS]
    assert list(VOICE_DTYPE.names) == names
    assert len(set(names)) == len(names)
    assert VOICE_DTYPE.isalignedstruct
    off = 0
    for n, t, _ in VOICE_FIELDS:                  # no padding between fields: C struct order
        assert VOICE_DTYPE.fields[n][1] == off, n
        assert VOICE_DTYPE.fields[n][0] == np.dtype(t) == VOICE_DTYPES[n]
        assert off % np.dtype(t).alignment == 0, n
        off += np.dtype(t).itemsize
    # the tail pads to 8 bytes only
    assert VOICE_DTYPE.itemsize == -(-off // 8) * 8
    sizes = [np.dtype(t).itemsize for _, t, _ in VOICE_FIELDS]
    assert sizes == sorted(sizes, reverse=True)   # 8-byte, then 4-byte, then 1-byte fields


def test_voice_times_are_int64_and_sentinels():
    for f in ("start", "release", "kill", "pstart", "pend", "lstart", "lend", "ipos"):
        assert VOICE_DTYPES[f] == np.int64
    assert NEVER == 2 ** 62 and TICK == 64


# ---- region_templates ------------------------------------------------------------------

def test_region_templates_pool_offsets_and_defaults(bank):
    reg = bank.regions[np.asarray(preset(bank, 0).regions)]
    t0 = region_templates(reg, RATE)
    t = region_templates(reg, RATE, pool_offset=1000)
    assert t.dtype == VOICE_DTYPE and len(t) == len(reg)
    assert np.all(t["release"] == NEVER) and np.all(t["kill"] == NEVER)
    for f, src in (("pstart", "start"), ("pend", "end"), ("lstart", "loop_start"),
                   ("lend", "loop_end")):
        np.testing.assert_array_equal(t[f], reg[src].astype(np.int64) + 1000)
        np.testing.assert_array_equal(t0[f], reg[src])
    np.testing.assert_array_equal(t["ipos"], t["pstart"])      # playback starts at the sample
    assert np.all(t["gl"] == -1.0) and np.all(t["gr"] == -1.0)  # gains not started
    assert np.all(t["done"] == 0) and np.all(t["fpos"] == 0.0)
    np.testing.assert_array_equal(t["lmode"], reg["loop_mode"])


def test_region_templates_unit_conversions(bank):
    reg = region_for(bank, 0, 60).copy()
    reg["ve_release"] = -1200.0                 # 0.5 s
    reg["me_release"] = 0.0                     # 1 s
    reg["ve_delay"] = -12000.0                  # SF2's default 1 ms: no delay
    reg["me_delay"] = -2400.0                   # 0.25 s
    reg["ve_sustain"] = 2000.0                  # clipped to 1440 cB
    reg["me_sustain"] = 250.0                   # 25 % decrease -> level 0.75
    reg["rev_send"], reg["cho_send"] = 400.0, 1500.0
    reg["pan"] = -700.0
    reg["vl_freq"] = 6900.0                     # absolute cents: 440 Hz (clipped to 100 Hz)
    reg["ml_freq"] = 0.0                        # 8.176 Hz
    t = region_templates(reg, RATE)[0]
    assert t["ve_release"] == pytest.approx(0.5 * RATE, rel=1e-6)
    assert t["me_release"] == pytest.approx(RATE, rel=1e-6)
    assert t["ve_delay"] == 0.0
    assert t["me_delay"] == pytest.approx(0.25 * RATE, rel=1e-6)
    assert t["ve_sus"] == 1440.0
    assert t["me_sus"] == pytest.approx(0.75)
    assert t["rev"] == pytest.approx(0.4) and t["cho"] == 1.0
    assert t["pan"] == -500.0
    assert t["vl_freq"] == pytest.approx(100.0 / RATE, rel=1e-6)
    assert t["ml_freq"] == pytest.approx(units.ABS_CENTS_REF_HZ / RATE, rel=1e-6)


# ---- envelope_frames -------------------------------------------------------------------

def test_envelope_frames_timecents_to_frames():
    tc = np.array([0.0, -1200.0, 1200.0, -32768.0, -32767.0, -20000.0, 9000.0])
    fr = envelope_frames(tc, 8000.0, RATE)
    assert fr.dtype == np.float32
    want = np.array([1.0, 0.5, 2.0, 0.0, 0.0, 2.0 ** -10, 2.0 ** (8000 / 1200)]) * RATE
    np.testing.assert_allclose(fr, want, rtol=1e-6)
    # the limit is the caller's (hold: 5000 tc)
    assert envelope_frames(6000.0, 5000.0, RATE) == pytest.approx(2.0 ** (5000 / 1200) * RATE,
                                                                  rel=1e-6)
    # frames scale with the rate
    assert envelope_frames(0.0, 8000.0, 22050.0) == pytest.approx(22050.0, rel=1e-6)


# ---- regions_to_voices -----------------------------------------------------------------

def test_root_key_pitch_is_the_sample_rate_conversion(bank):
    for key in (30, 60, 66, 100):
        reg = region_for(bank, 0, key)
        v = resolve(reg, int(reg["root_key"][0]))
        want = 1200.0 * np.log2(float(reg["sample_rate"][0]) / RATE) + float(reg["tune"][0])
        assert v["pitch"][0] == pytest.approx(want, abs=1e-3)
        # increment (samples per output frame) = sample rate / output rate
        assert 2.0 ** (v["pitch"][0] / 1200.0) == pytest.approx(reg["sample_rate"][0] / RATE,
                                                                rel=1e-6)


def test_octave_up_doubles_the_increment(bank):
    reg = region_for(bank, 0, 60)
    root = int(reg["root_key"][0])
    assert root + 5 <= reg["key_hi"][0] and root - 6 >= reg["key_lo"][0]
    keys = np.arange(root - 6, root + 6)
    v = resolve(np.repeat(reg, len(keys)), keys)
    inc = 2.0 ** (v["pitch"].astype(np.float64) / 1200.0)
    # 100 cents per key (scale tuning 100): 12-TET semitone ratios
    np.testing.assert_allclose(inc / inc[6], 2.0 ** ((keys - root) / 12.0), rtol=1e-6)
    up = resolve(np.repeat(reg, 2), np.array([root - 6, root + 6]))
    assert up["pitch"][1] - up["pitch"][0] == pytest.approx(1200.0, abs=1e-3)


def test_pitch_follows_the_output_rate(bank):
    reg = region_for(bank, 0, 60)
    a = resolve(reg, 60, rate=44100.0)["pitch"][0]
    b = resolve(reg, 60, rate=88200.0)["pitch"][0]
    assert a - b == pytest.approx(1200.0, abs=1e-3)     # twice the rate: half the increment


def test_drum_pitch_ignores_the_key_and_fixed_key_overrides(bank):
    d = region_for(bank, 0, 38, drum=True)
    assert d["scale_tuning"][0] == 0.0
    v = resolve(np.repeat(d, 3), np.array([38, 50, 90]))
    assert len(set(v["pitch"].tolist())) == 1
    reg = region_for(bank, 0, 60).copy()
    reg["fixed_key"] = 60
    v = resolve(np.repeat(reg, 2), np.array([50, 70]))
    assert v["pitch"][0] == v["pitch"][1]


def test_velocity_attenuation_follows_the_concave_curve(bank):
    reg = region_for(bank, 0, 60)
    vel = np.arange(128)
    v = resolve(np.repeat(reg, 128), 60, vel)
    att = v["atten"].astype(np.float64)
    assert att[127] == pytest.approx(float(reg["atten"][0]), abs=1e-4)   # full velocity: none
    np.testing.assert_allclose(att - att[127], reg["vel_atten"][0] * units.concave_table()[vel],
                               atol=1e-3)
    # 960 cB deep: 40 log10(v / 127) dB, as GM's recommended velocity curve
    np.testing.assert_allclose((att - att[127])[1:], -400.0 * np.log10(vel[1:] / 127.0), atol=1e-3)
    assert np.all(np.diff(att) < 0)
    assert att[0] - att[127] == pytest.approx(960.0, abs=1e-3)
    reg2 = reg.copy()
    reg2["fixed_vel"] = 127
    assert np.all(resolve(np.repeat(reg2, 3), 60, np.array([1, 64, 127]))["atten"] == att[127])


def test_velocity_to_filter_cutoff(bank):
    reg = region_for(bank, 0, 60)
    assert reg["vel_fc"][0] == -2400.0 and reg["vel_fc_min"][0] == 0
    v = resolve(np.repeat(reg, 3), 60, np.array([127, 0, 64]))
    fc = float(reg["fc"][0])
    np.testing.assert_allclose(v["fc"], [fc, fc - 2400.0, fc - 2400.0 * (63 / 127)], atol=1e-2)
    reg2 = reg.copy()
    reg2["vel_fc_min"] = 64                     # FluidSynth's switch: below 64 no change
    v = resolve(np.repeat(reg2, 2), 60, np.array([63, 64]))
    assert v["fc"][0] == pytest.approx(fc, abs=1e-2)
    assert v["fc"][1] == pytest.approx(fc - 2400.0 * (63 / 127), abs=1e-2)


def test_envelope_times_in_frames(bank):
    reg = region_for(bank, 0, 60)
    v = resolve(reg, 60)
    r = reg[0]
    assert v["ve_decay"][0] == pytest.approx(2.0 ** (min(r["ve_decay"], 8000) / 1200) * RATE,
                                             rel=1e-5)
    assert v["ve_attack"][0] == pytest.approx(2.0 ** (r["ve_attack"] / 1200) * RATE, rel=1e-5)
    assert v["ve_hold"][0] == 0.0                    # -32768 tc: none
    # SF2 key -> decay / hold (tc per key from 60) and DLS velocity -> attack (x vel / 128)
    reg2 = reg.copy()
    reg2["ve_decay"], reg2["ve_key_decay"] = 0.0, 10.0
    reg2["ve_hold"], reg2["ve_key_hold"] = -1200.0, -5.0
    reg2["ve_attack"], reg2["ve_vel_attack"] = -2400.0, 1280.0
    v = resolve(np.repeat(reg2, 2), np.array([60, 72]), np.array([0, 100]))
    np.testing.assert_allclose(v["ve_decay"], [RATE, 2.0 ** (-120 / 1200) * RATE], rtol=1e-5)
    np.testing.assert_allclose(v["ve_hold"], [0.5 * RATE, 2.0 ** ((-1200 + 60) / 1200) * RATE],
                               rtol=1e-5)
    np.testing.assert_allclose(v["ve_attack"], [0.25 * RATE, 2.0 ** ((-2400 + 1000) / 1200) * RATE],
                               rtol=1e-5)


def test_note_fields_and_template_path(bank):
    reg = bank.regions[np.asarray(preset(bank, 24).regions)]
    n = len(reg)
    key = np.arange(n) * 12 + 10
    vel = np.full(n, 90)
    chan = np.arange(n, dtype=np.int32)
    time = np.arange(n, dtype=np.int64) * 1000 + 7
    v = regions_to_voices(reg, key, vel, chan, time, RATE, pool_offset=5)
    np.testing.assert_array_equal(v["start"], time)
    np.testing.assert_array_equal(v["chan"], chan)
    assert np.all(v["release"] == NEVER) and np.all(v["kill"] == NEVER)
    tpl = region_templates(reg, RATE, pool_offset=5)
    keep = tpl.copy()
    w = regions_to_voices(reg, key, vel, chan, time, RATE, pool_offset=5, template=tpl)
    for f in VOICE_DTYPE.names:                       # the template path: the same record
        assert v[f].tobytes() == w[f].tobytes(), f     # (field by field: padding bytes aside)
        assert tpl[f].tobytes() == keep[f].tobytes(), f   # and the template is left alone


# ---- compaction_moves ------------------------------------------------------------------

def apply_moves(n_active, finished):
    table = np.arange(n_active)
    src, dst = compaction_moves(n_active, finished)
    table[dst] = table[src]
    return src, dst, table[:n_active - len(finished)]


def test_compaction_moves_example():
    src, dst, table = apply_moves(10, [1, 4, 8])
    np.testing.assert_array_equal(src, [7, 9])         # the live tail, in order
    np.testing.assert_array_equal(dst, [1, 4])         # into the holes, in order
    assert sorted(table.tolist()) == [0, 2, 3, 5, 6, 7, 9]


def test_compaction_moves_nothing_to_move():
    for n, fin in ((10, []), (10, [7, 8, 9]), (5, [0, 1, 2, 3, 4])):
        src, dst = compaction_moves(n, np.asarray(fin, np.int64))
        assert len(src) == len(dst) == 0


def test_compaction_moves_keep_every_live_slot_once():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 200))
        fin = np.sort(rng.choice(n, int(rng.integers(0, n + 1)), replace=False))
        src, dst, table = apply_moves(n, fin)
        n_new = n - len(fin)
        alive = np.setdiff1d(np.arange(n), fin)
        # dense: the first n_new slots hold every surviving voice exactly once
        np.testing.assert_array_equal(np.sort(table), alive)
        assert np.all(src >= n_new) and np.all(dst < n_new)
        assert not np.isin(src, fin).any() and np.isin(dst, fin).all()
        assert len(np.unique(src)) == len(src) and len(np.unique(dst)) == len(dst)
        # minimal: only voices beyond the new end move
        assert len(src) == np.count_nonzero(alive >= n_new)
        src2, dst2 = compaction_moves(n, fin)                 # deterministic
        np.testing.assert_array_equal(src, src2)
        np.testing.assert_array_equal(dst, dst2)


def test_region_dtype_is_checked(bank):
    reg = region_for(bank, 0, 60)
    assert reg.dtype == REGION_DTYPE
    bad = np.zeros(1, [("start", np.int64)])
    with pytest.raises(AssertionError):
        region_templates(bad, RATE)
