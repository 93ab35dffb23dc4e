"""SF2/SF3 reader: real banks, generator semantics on synthetic files, hostile files."""
from __future__ import annotations

import io
import os
import struct
import sys
import time

import numpy as np
import pytest


from gpusynth.banks import BankError, load_bank  # noqa: E402
from gpusynth.banks import sf2 as sf2mod  # noqa: E402
from gpusynth.banks.model import MAX_REGIONS_PER_PRESET  # noqa: E402
from gpusynth.banks.model import GUARD, LOOP_FORWARD, LOOP_NONE, LOOP_UNTIL_RELEASE  # noqa: E402
from gpusynth.banks.sf2 import load_sf2, load_sf2_bytes  # noqa: E402
from sf2_writer import Inst, Pre, Sample, Zone, build_sf2, sine_pcm  # noqa: E402

G = sf2mod
TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    # internal exceptions must surface in tests instead of being wrapped as BankError
    monkeypatch.setattr(sf2mod, "STRICT_INTERNAL", True)


def _in_pool(bank, zeros=True):
    r, n = bank.regions, len(bank.pool)
    assert np.all((r["start"] >= 0) & (r["start"] < r["end"]) & (r["end"] <= n))
    looped = r["loop_mode"] != LOOP_NONE
    assert np.all(r["loop_start"][looped] >= r["start"][looped])
    assert np.all(r["loop_end"][looped] <= r["end"][looped])
    assert np.all(r["loop_end"][looped] - r["loop_start"][looped] >= 2)
    if not len(r):
        return
    # GUARD readable samples after every region end (zeros when the region ends at its sample's
    # end, which holds for banks without end offsets)
    ends = np.unique(r["end"])
    idx = ends[:, None] + np.arange(GUARD)[None, :]
    assert idx.max() < n
    if zeros:
        assert np.all(bank.pool[idx] == 0.0)


# ---------------------------------------------------------------------------------------------
# real banks

@pytest.fixture(scope="module")
def timgm():
    if not os.path.exists(TIMGM):
        pytest.skip(f"{TIMGM} not installed (Debian package timgm6mb-soundfont)")
    return load_sf2(TIMGM)


def test_timgm_presets(timgm):
    b = timgm
    melodic = [p for p in b.presets if not p.drum]
    drums = [p for p in b.presets if p.drum]
    assert len(melodic) == 128 and len(b.presets) == 136
    assert {p.program for p in melodic} == set(range(128))
    assert all(p.bank == 0 for p in b.presets)
    names = {(p.bank, p.program, p.drum): p.name for p in b.presets}
    assert names[(0, 0, False)] == "Piano 1"
    assert (0, 0, True) in names
    assert {p.program for p in drums} >= {0, 8, 16, 24, 25, 32, 40, 48}
    assert b.info["version"] == "2.01" and b.info["engine"] == "EMU8000"
    assert b.info["format"] == "SF2"
    assert all(len(p.regions) > 0 for p in b.presets)


def test_timgm_pool_and_regions(timgm):
    b = timgm
    assert b.pool.dtype == np.float32
    # every sample used, each followed by GUARD zeros: 2,898,808 floats for this bank
    assert len(b.pool) == 2898808
    assert np.max(np.abs(b.pool)) <= 1.0
    _in_pool(b)
    assert set(np.unique(b.regions["loop_mode"])) <= {LOOP_NONE, LOOP_FORWARD, LOOP_UNTIL_RELEASE}
    assert np.all(b.regions["sample_rate"] > 0)


def test_timgm_piano_covers_keyboard(timgm):
    piano = next(p for p in timgm.presets if (p.bank, p.program, p.drum) == (0, 0, False))
    r = timgm.regions[piano.regions]
    covered = np.zeros(128, bool)
    for lo, hi, vlo, vhi in zip(r["key_lo"], r["key_hi"], r["vel_lo"], r["vel_hi"]):
        if vlo == 0 and vhi == 127:
            covered[lo:hi + 1] = True
    assert covered[:109].all()        # TimGM6mb's piano spans keys 0..108 (the 88-key top)
    assert np.all(r["vel_atten"] == 960)


def test_timgm_modulators(timgm):
    # TimGM6mb's instruments turn the mod-wheel vibrato off (CC1 -> vibLfoToPitch amount 0)
    r = timgm.regions
    assert np.any(r["cc1_vib"] == 0)
    assert np.any(r["rev_cc"] == 1000) or np.any(r["rev_cc"] == 500)
    # TimGM6mb carries 62 modulators that map to nothing we model (counted, not silently lost)
    assert timgm.info["sf2_ignored_modulators"] == 62


def test_load_bank_dispatch(timgm):
    b = load_bank(TIMGM)
    assert len(b.presets) == len(timgm.presets)


@pytest.mark.slow
def test_fluidr3_load_time():
    if not os.path.exists(FLUIDR3):
        pytest.skip(f"{FLUIDR3} not installed (Debian package fluid-soundfont-gm)")
    t = time.perf_counter()
    b = load_sf2(FLUIDR3)
    dt = time.perf_counter() - t
    print(f"\nFluidR3_GM load: {dt:.1f} s")      # timing: bench, not a test on a shared machine
    assert len(b.presets) >= 180
    _in_pool(b)
    piano = next(p for p in b.presets if (p.bank, p.program, p.drum) == (0, 0, False))
    assert piano.name == "Yamaha Grand Piano"


# ---------------------------------------------------------------------------------------------
# synthetic banks: generator semantics

def _simple(inst_zones, preset_zones=None, samples=None, **kw):
    samples = samples or [Sample("s0", sine_pcm(1000), loop=(100, 900), pitch=69, corr=-7),
                          Sample("s1", sine_pcm(500, 50), loop=(10, 400), pitch=72)]
    preset_zones = preset_zones if preset_zones is not None else [Zone([(G.INSTRUMENT, 0)])]
    data = build_sf2(samples, [Inst("I0", inst_zones)],
                     [Pre("P0", program=5, bank=0, zones=preset_zones)], **kw)
    return load_sf2_bytes(data, "synthetic.sf2")


def _regions(bank, program=5, bank_no=0, drum=False):
    p = next(p for p in bank.presets if (p.bank, p.program, p.drum) == (bank_no, program, drum))
    return bank.regions[p.regions]


def test_defaults_and_sample_points():
    b = _simple([Zone([(G.SAMPLE_MODES, 1), (G.SAMPLE_ID, 0)])])
    r = _regions(b)
    assert len(r) == 1
    r = r[0]
    assert r["start"] == 0 and r["end"] == 1000
    assert r["loop_start"] == 100 and r["loop_end"] == 900 and r["loop_mode"] == LOOP_FORWARD
    assert r["root_key"] == 69 and r["tune"] == -7 and r["scale_tuning"] == 100
    assert r["fc"] == 13500 and r["q"] == 0 and r["atten"] == 0 and r["pan"] == 0
    assert r["ve_attack"] == -12000 and r["ve_sustain"] == 0 and r["me_release"] == -12000
    # FluidSynth never applies its default velocity->cutoff modulator (fluid_mod_get_value)
    assert r["vel_atten"] == 960 and r["vel_fc"] == 0 and r["cc1_vib"] == 50
    # SF2 only: convex mod-envelope attack, filter gain 1/sqrt(Q) (+1.5 dB at q = 0)
    assert r["me_convex"] == 1 and r["fatt"] == pytest.approx(-15.05)
    assert r["press_vib"] == 50 and r["rev_cc"] == 200 and r["cho_cc"] == 200
    assert r["fixed_key"] == -1 and r["fixed_vel"] == -1 and r["excl_class"] == 0
    assert (r["key_lo"], r["key_hi"], r["vel_lo"], r["vel_hi"]) == (0, 127, 0, 127)
    assert r["sample_rate"] == 44100
    np.testing.assert_allclose(b.pool[:1000], sine_pcm(1000) / 32768.0, atol=1e-7)
    assert np.all(b.pool[1000:1000 + GUARD] == 0)


def test_instrument_global_local_override():
    b = _simple([
        Zone([(G.PAN, -200), (G.ATTACK_VOLENV, 1200), (G.FILTER_FC, 9000)]),  # global
        Zone([(G.PAN, 300), (G.SAMPLE_ID, 0)]),                                # overrides pan
        Zone([(G.KEY_RANGE, (60, 127)), (G.SAMPLE_ID, 1)]),
    ])
    r = _regions(b)
    assert len(r) == 2
    a, c = r[0], r[1]
    assert a["pan"] == 300 and c["pan"] == -200
    assert a["ve_attack"] == 1200 and c["ve_attack"] == 1200
    assert a["fc"] == 9000 and c["fc"] == 9000


def test_preset_additive_and_ranges_intersect():
    b = _simple(
        [Zone([(G.ATTACK_VOLENV, -1200)]),                         # instrument global
         Zone([(G.KEY_RANGE, (0, 70)), (G.VEL_RANGE, (0, 100)), (G.COARSE_TUNE, 2),
               (G.INITIAL_ATTENUATION, 100), (G.SAMPLE_ID, 0)]),
         Zone([(G.KEY_RANGE, (71, 127)), (G.SAMPLE_ID, 1)])],
        preset_zones=[
            Zone([(G.ATTACK_VOLENV, 2400), (G.COARSE_TUNE, -1)]),   # preset global
            Zone([(G.KEY_RANGE, (50, 80)), (G.VEL_RANGE, (20, 127)), (G.FINE_TUNE, 10),
                  (G.INITIAL_ATTENUATION, 50), (G.PAN, 100), (G.INSTRUMENT, 0)]),
        ])
    r = _regions(b)
    assert len(r) == 2
    a, c = r[0], r[1]
    assert (a["key_lo"], a["key_hi"], a["vel_lo"], a["vel_hi"]) == (50, 70, 20, 100)
    assert (c["key_lo"], c["key_hi"], c["vel_lo"], c["vel_hi"]) == (71, 80, 20, 127)
    assert a["ve_attack"] == -1200 + 2400 and c["ve_attack"] == 1200
    assert a["tune"] == (2 - 1) * 100 + 10 - 7           # + sample 0 pitch correction
    assert c["tune"] == -100 + 10
    assert a["atten"] == pytest.approx(0.4 * 150) and c["atten"] == pytest.approx(0.4 * 50)
    assert a["pan"] == 100


def test_empty_intersection_and_clamping():
    b = _simple(
        [Zone([(G.KEY_RANGE, (0, 40)), (G.SAMPLE_ID, 0)]),
         Zone([(G.KEY_RANGE, (41, 127)), (G.PAN, 400), (G.SUSTAIN_VOLENV, 1400),
               (G.SAMPLE_ID, 1)])],
        preset_zones=[Zone([(G.KEY_RANGE, (60, 127)), (G.PAN, 300), (G.SUSTAIN_VOLENV, 500),
                            (G.INSTRUMENT, 0)])])
    r = _regions(b)
    assert len(r) == 1                      # the 0..40 zone does not meet 60..127
    assert r[0]["pan"] == 500 and r[0]["ve_sustain"] == 1440


def test_preset_level_only_and_instrument_only_generators():
    b = _simple(
        [Zone([(G.INSTRUMENT, 7), (G.OVERRIDING_ROOT_KEY, 50), (G.KEYNUM, 64), (G.VELOCITY, 90),
               (G.EXCLUSIVE_CLASS, 3), (G.SAMPLE_MODES, 3), (G.SAMPLE_ID, 0)])],
        preset_zones=[Zone([(G.OVERRIDING_ROOT_KEY, 10), (G.START_OFS, 50), (G.KEYNUM, 1),
                            (G.SAMPLE_MODES, 0), (G.EXCLUSIVE_CLASS, 9), (G.INSTRUMENT, 0)])])
    r = _regions(b)[0]
    assert r["root_key"] == 50 and r["fixed_key"] == 64 and r["fixed_vel"] == 90
    assert r["excl_class"] == 3 and r["loop_mode"] == LOOP_UNTIL_RELEASE and r["start"] == 0


def test_generator_order_rules():
    b = _simple([
        # keyRange not first -> ignored; velRange after something else -> ignored;
        # generators after sampleID ignored; unknown/unused generator numbers ignored
        Zone([(G.PAN, 100), (G.KEY_RANGE, (10, 20)), (G.VEL_RANGE, (5, 6)), (14, 77), (99, 5),
              (G.SAMPLE_ID, 0), (G.PAN, -400), (G.KEY_RANGE, (30, 40))]),
        # velRange right after keyRange is fine; duplicates: the last counts
        Zone([(G.KEY_RANGE, (0, 63)), (G.VEL_RANGE, (10, 90)), (G.PAN, 10), (G.PAN, 20),
              (G.SAMPLE_ID, 1)]),
        # a non-first zone without sampleID is ignored (not a second global zone)
        Zone([(G.PAN, 250)]),
    ])
    r = _regions(b)
    assert len(r) == 2
    a, c = r[0], r[1]
    assert (a["key_lo"], a["key_hi"], a["vel_lo"], a["vel_hi"]) == (0, 127, 0, 127)
    assert a["pan"] == 100
    assert (c["key_lo"], c["key_hi"], c["vel_lo"], c["vel_hi"]) == (0, 63, 10, 90)
    assert c["pan"] == 20
    assert b.info["sf2_ignored_zones"] == 1


def test_address_offsets_and_root_override():
    b = _simple([Zone([(G.START_OFS, 10), (G.END_OFS, -20), (G.STARTLOOP_OFS, 5),
                       (G.ENDLOOP_OFS, -3), (G.SAMPLE_MODES, 1), (G.OVERRIDING_ROOT_KEY, 40),
                       (G.SAMPLE_ID, 0)]),
                 Zone([(G.KEY_RANGE, (0, 10)), (G.START_COARSE, 1), (G.SAMPLE_ID, 0)]),
                 Zone([(G.KEY_RANGE, (11, 20)), (G.ENDLOOP_COARSE, 1), (G.STARTLOOP_OFS, -500),
                       (G.SAMPLE_MODES, 1), (G.SAMPLE_ID, 1)])])
    r = _regions(b)
    a = r[(r["key_lo"] == 0) & (r["key_hi"] == 127)][0]
    assert (a["start"], a["end"], a["loop_start"], a["loop_end"]) == (10, 980, 105, 897)
    assert a["root_key"] == 40
    # coarse start offset of 32768 is past the sample end: start clamps to the end, leaving an
    # empty sample, so that zone is dropped
    assert not np.any((r["key_lo"] == 0) & (r["key_hi"] == 10))
    assert b.info["sf2_dropped_zones"] >= 1
    # loop points clamp into the sample (second sample lives after the first one + GUARD)
    c = r[(r["key_lo"] == 11)][0]
    base = 1000 + GUARD
    assert c["start"] == base and c["end"] == base + 500
    assert c["loop_start"] == base and c["loop_end"] == base + 500


def test_tiny_loop_disables_looping():
    b = _simple([Zone([(G.SAMPLE_MODES, 1), (G.SAMPLE_ID, 0)])],
                samples=[Sample("s0", sine_pcm(300), loop=(100, 101))])
    assert _regions(b)[0]["loop_mode"] == LOOP_NONE


def test_modulators_replace_and_add():
    cc1_vib = (G.SRC_CC1, G.VIBLFO_TO_PITCH, 30, 0, 0)
    velatt = (G.SRC_VELOCITY_NEG_CONCAVE, G.INITIAL_ATTENUATION, 480, 0, 0)
    other = (0x0583, G.FILTER_FC, 123, 0, 0)      # key -> cutoff: not modelled
    b = _simple(
        [Zone([], mods=[cc1_vib]),                                        # instrument global
         Zone([(G.SAMPLE_ID, 0)], mods=[velatt, other]),
         Zone([(G.KEY_RANGE, (100, 127)), (G.SAMPLE_ID, 1)],
              mods=[(G.SRC_CC1, G.VIBLFO_TO_PITCH, 70, 0, 0),
                    (G.SRC_CC1, G.MODLFO_TO_PITCH, 25, 0, 0)])],
        preset_zones=[Zone([(G.INSTRUMENT, 0)], mods=[(G.SRC_CC91, G.REVERB_SEND, 100, 0, 0),
                                                     (G.SRC_CC1, G.VIBLFO_TO_PITCH, 5, 0, 0)])])
    r = _regions(b)
    a = r[r["key_lo"] == 0][0]
    c = r[r["key_lo"] == 100][0]
    assert a["vel_atten"] == 480 and c["vel_atten"] == 960
    assert a["cc1_vib"] == 30 + 5 and c["cc1_vib"] == 70 + 5    # local replaces, preset adds
    assert a["rev_cc"] == 300 and c["rev_cc"] == 300              # preset adds to default 200
    assert c["cc1_ml_pitch"] == 25 and a["cc1_ml_pitch"] == 0
    assert b.info["sf2_ignored_modulators"] == 1


def test_drum_and_bank_numbers():
    s = [Sample("s0", sine_pcm(200), loop=(10, 150))]
    insts = [Inst("I", [Zone([(G.SAMPLE_ID, 0)])])]
    pz = [Zone([(G.INSTRUMENT, 0)])]
    data = build_sf2(s, insts, [Pre("Std", 0, 128, pz), Pre("Var", 4, 8, pz),
                                Pre("Dup", 4, 8, pz), Pre("Bad", 200, 0, pz)])
    b = load_sf2_bytes(data, "banks.sf2")
    got = sorted((p.bank, p.program, p.drum, p.name) for p in b.presets)
    assert got == [(0, 0, True, "Std"), (8 * 128, 4, False, "Var")]
    assert b.info["sf2_duplicate_presets"] == 1 and b.info["sf2_dropped_presets"] == 1


def test_24bit_samples():
    pcm = sine_pcm(100)
    low = bytes(range(100)) + b"\0" * 46          # sm24 covers smpl (100 + 46 pad samples)
    b = _simple([Zone([(G.SAMPLE_ID, 0)])], samples=[Sample("s", pcm)], sm24=low)
    want = ((pcm.astype(np.int32) << 8) | np.arange(100)) / 8388608.0
    np.testing.assert_allclose(b.pool[:100], want, atol=1e-7)
    assert b.info["bits"] == 24
    # version < 2.04 ignores sm24
    b = _simple([Zone([(G.SAMPLE_ID, 0)])], samples=[Sample("s", pcm)], sm24=low,
                version=(2, 1))
    np.testing.assert_allclose(b.pool[:100], pcm / 32768.0, atol=1e-7)


def test_rom_sample_refused():
    s = [Sample("rom", sine_pcm(100), type=0x8001)]
    with pytest.raises(BankError) as e:
        _simple([Zone([(G.SAMPLE_ID, 0)])], samples=s)
    assert e.value.chunk == "shdr" and "ROM" in e.value.reason


def test_bad_sample_references_dropped():
    s = [Sample("ok", sine_pcm(100)), Sample("bad", raw=(50, 10, 0, 0)),
         Sample("norate", sine_pcm(100), rate=0)]
    b = _simple([Zone([(G.KEY_RANGE, (0, 9)), (G.SAMPLE_ID, 0)]),
                 Zone([(G.KEY_RANGE, (10, 19)), (G.SAMPLE_ID, 1)]),
                 Zone([(G.KEY_RANGE, (20, 29)), (G.SAMPLE_ID, 2)]),
                 Zone([(G.KEY_RANGE, (30, 39)), (G.SAMPLE_ID, 77)])], samples=s)
    r = _regions(b)
    assert len(r) == 1 and r[0]["key_hi"] == 9
    assert b.info["sf2_dropped_zones"] == 3
    assert len(b.pool) == 100 + GUARD        # only used samples enter the pool


def test_errors_name_file_and_chunk(tmp_path):
    p = tmp_path / "x.sf2"
    p.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    with pytest.raises(BankError) as e:
        load_sf2(p)
    assert str(p) in str(e.value) and e.value.chunk == "pdta"
    with pytest.raises(BankError):
        load_sf2(tmp_path / "missing.sf2")


# ---------------------------------------------------------------------------------------------
# SF3

def _ogg(x, rate=44100):
    sf = pytest.importorskip("soundfile")
    if "OGG" not in sf.available_formats():
        pytest.skip("libsndfile here cannot write Ogg Vorbis")
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="OGG", subtype="VORBIS")
    return buf.getvalue()


def test_sf3_decode():
    t = np.arange(4410)
    x = (0.5 * np.sin(2 * np.pi * 441 * t / 44100)).astype(np.float32)
    ogg = _ogg(x)
    s = [Sample("pcm", sine_pcm(300), loop=(10, 290)),
         Sample("vorbis", ogg=ogg, loop=(1000, 3000), type=0x11)]
    b = _simple([Zone([(G.KEY_RANGE, (0, 59)), (G.SAMPLE_MODES, 1), (G.SAMPLE_ID, 0)]),
                 Zone([(G.KEY_RANGE, (60, 127)), (G.SAMPLE_MODES, 1), (G.SAMPLE_ID, 1)])],
                samples=s, version=(3, 1))
    assert b.info["format"] == "SF3"
    r = _regions(b)
    v = r[r["key_lo"] == 60][0]
    n = v["end"] - v["start"]
    assert abs(n - 4410) < 100
    assert v["loop_start"] - v["start"] == 1000 and v["loop_end"] - v["start"] == 3000
    dec = b.pool[v["start"]:v["end"]]
    m = min(len(dec), len(x))
    assert np.corrcoef(dec[:m], x[:m])[0, 1] > 0.95
    assert np.all(b.pool[v["end"]:v["end"] + GUARD] == 0)
    _in_pool(b)


def test_sf3_garbage_ogg_dropped():
    s = [Sample("vorbis", ogg=b"OggS" + bytes(200), loop=(0, 10), type=0x11)]
    b = _simple([Zone([(G.SAMPLE_ID, 0)])], samples=s, version=(3, 1))
    assert len(b.regions) == 0 and b.info["sf2_dropped_zones"] == 1


# ---------------------------------------------------------------------------------------------
# hostile files

def _corpus_base():
    s = [Sample("a", sine_pcm(300), loop=(10, 290)), Sample("b", sine_pcm(200, 40), loop=(5, 150))]
    insts = [Inst("I0", [Zone([(G.PAN, 10)], mods=[(G.SRC_CC1, G.VIBLFO_TO_PITCH, 9, 0, 0)]),
                         Zone([(G.KEY_RANGE, (0, 60)), (G.SAMPLE_MODES, 1), (G.SAMPLE_ID, 0)]),
                         Zone([(G.KEY_RANGE, (61, 127)), (G.START_OFS, 3), (G.SAMPLE_ID, 1)])]),
             Inst("I1", [Zone([(G.SAMPLE_ID, 1)])])]
    pres = [Pre("P0", 0, 0, [Zone([(G.VEL_RANGE, (0, 127)), (G.INSTRUMENT, 0)])]),
            Pre("P1", 1, 128, [Zone([(G.ATTACK_VOLENV, 100)]), Zone([(G.INSTRUMENT, 1)]),
                               Zone([(G.INSTRUMENT, 0)], mods=[(G.SRC_CC91, 16, 5, 0, 0)])])]
    return build_sf2(s, insts, pres)


def _mutations(data, n, seed=1234):
    rng = np.random.default_rng(seed)
    size_offsets = [i for i in range(len(data) - 8)
                    if data[i:i + 4] in (b"RIFF", b"LIST", b"smpl", b"phdr", b"pbag", b"pmod",
                                         b"pgen", b"inst", b"ibag", b"imod", b"igen", b"shdr",
                                         b"ifil", b"INAM")]
    pdta = data.index(b"pdta")
    for k in range(n):
        d = bytearray(data)
        kind = k % 6
        if kind == 0:                                  # truncation
            d = d[:int(rng.integers(0, len(d)))]
        elif kind == 1:                                # bit flips anywhere
            for _ in range(int(rng.integers(1, 8))):
                i = int(rng.integers(0, len(d)))
                d[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2:                                # bit flips in the hydra
            for _ in range(int(rng.integers(1, 6))):
                i = int(rng.integers(pdta, len(d)))
                d[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 3:                                # chunk size lies
            o = size_offsets[int(rng.integers(0, len(size_offsets)))] + 4
            v = int(rng.choice([0, 1, 3, 0xFFFFFFFF, 0x7FFFFFFF, int(rng.integers(0, 4096))]))
            d[o:o + 4] = struct.pack("<I", v)
        elif kind == 4:                                # absurd 16/32-bit values in the hydra
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(pdta, len(d) - 4)) & ~1
                d[i:i + 2] = struct.pack("<H", int(rng.choice([0, 0xFFFF, 0x8000, 0x7FFF, 1])))
        else:                                          # random bytes overwritten
            i = int(rng.integers(0, len(d)))
            ln = int(rng.integers(1, 32))
            d[i:i + ln] = rng.integers(0, 256, ln, dtype=np.uint8).tobytes()
        yield bytes(d)


def test_malformed_corpus():
    base = _corpus_base()
    load_sf2_bytes(base, "base.sf2")
    outcomes = {"bank": 0, "error": 0}
    for i, d in enumerate(_mutations(base, 400)):
        try:
            b = load_sf2_bytes(d, f"mut{i}.sf2")
        except BankError as e:
            assert e.path == f"mut{i}.sf2" and e.chunk and e.reason
            outcomes["error"] += 1
        else:
            b.validate()
            _in_pool(b, zeros=False)
            # the work a mutant can cause is bounded by the region caps, not by a clock
            assert len(b.regions) <= sf2mod.MAX_REGIONS
            assert all(len(p.regions) <= MAX_REGIONS_PER_PRESET for p in b.presets)
            outcomes["bank"] += 1
    assert outcomes["bank"] > 20 and outcomes["error"] > 20


def test_absurd_expansion_refused(monkeypatch):
    monkeypatch.setattr(sf2mod, "MAX_REGIONS", 50)
    zones = [Zone([(G.KEY_RANGE, (k, k)), (G.SAMPLE_ID, 0)]) for k in range(20)]
    s = [Sample("a", sine_pcm(100))]
    data = build_sf2(s, [Inst("I", zones)],
                     [Pre("P", 0, 0, [Zone([(G.INSTRUMENT, 0)]) for _ in range(5)])])
    with pytest.raises(BankError) as e:
        load_sf2_bytes(data, "big.sf2")
    assert "regions" in e.value.reason


def test_non_monotonic_bags():
    s = [Sample("a", sine_pcm(100))]
    data = bytearray(build_sf2(s, [Inst("I", [Zone([(G.SAMPLE_ID, 0)])])],
                               [Pre("P0", 0, 0, [Zone([(G.INSTRUMENT, 0)])]),
                                Pre("P1", 1, 0, [Zone([(G.INSTRUMENT, 0)])])]))
    i = data.index(b"phdr") + 8
    # P1's bag index 1 -> 5 (past the terminal's 2)
    data[i + 38 + 24:i + 38 + 26] = struct.pack("<H", 5)
    with pytest.raises(BankError) as e:
        load_sf2_bytes(bytes(data), "bags.sf2")
    assert e.value.chunk == "phdr"


def test_vel_filter_modulator_identities():
    off_201 = (G.SRC_VELOCITY_NEG_LINEAR, G.FILTER_FC, 0, 0x0D02, 0)   # SF2.01-style "off"
    off_fs = (G.SRC_VELOCITY_NEG_LINEAR, G.FILTER_FC, 0, G.SRC_VELOCITY_SWITCH, 0)
    off_204 = (G.SRC_VELOCITY_NEG_LINEAR, G.FILTER_FC, -1200, 0, 0)
    b = _simple([Zone([(G.KEY_RANGE, (0, 9)), (G.SAMPLE_ID, 0)], mods=[off_201]),
                 Zone([(G.KEY_RANGE, (10, 19)), (G.SAMPLE_ID, 0)], mods=[off_fs]),
                 Zone([(G.KEY_RANGE, (20, 29)), (G.SAMPLE_ID, 0)], mods=[off_204])])
    r = _regions(b)
    got = {int(k): float(v) for k, v in zip(r["key_lo"], r["vel_fc"])}
    # FluidSynth's default (0x0C02 amount source) and anything identical to it contribute 0;
    # the 0x0D02 form adds its amount 0; the SF2.04 form (no amount source) applies
    assert got == {0: 0.0, 10: 0.0, 20: -1200.0}
    assert set(r["vel_fc_min"].tolist()) == {0}
    assert b.info["sf2_ignored_modulators"] == 0


def test_loops_outside_sample_clamped():
    s = [Sample("a", sine_pcm(100), raw=(0, 100, 500, 9000)),
         Sample("b", sine_pcm(100), raw=(146, 246, 100, 300))]
    b = _simple([Zone([(G.KEY_RANGE, (0, 9)), (G.SAMPLE_MODES, 1), (G.SAMPLE_ID, 0)]),
                 Zone([(G.KEY_RANGE, (10, 19)), (G.SAMPLE_MODES, 1), (G.SAMPLE_ID, 1)])],
                samples=s)
    r = _regions(b)
    a, c = r[0], r[1]
    assert a["loop_mode"] == LOOP_NONE               # loop entirely past the end
    assert c["loop_mode"] == LOOP_FORWARD            # loop clamped to the whole sample
    assert (c["loop_start"], c["loop_end"]) == (c["start"], c["end"])
    _in_pool(b)


def test_sf3_without_soundfile(monkeypatch):
    s = [Sample("vorbis", ogg=b"OggS" + bytes(64), loop=(0, 10), type=0x11)]
    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(BankError) as e:
        _simple([Zone([(G.SAMPLE_ID, 0)])], samples=s, version=(3, 1))
    assert "soundfile" in e.value.reason
