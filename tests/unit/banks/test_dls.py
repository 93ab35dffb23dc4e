"""DLS Level 1/2 reader: real banks, writer round trips, articulation mapping, unit
conversions, conditional chunks and a malformed corpus."""
from __future__ import annotations

import math
import random
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gpusynth.banks import load_bank
from gpusynth.banks.dls import (DLSID, DST, SRC, TRN_CONCAVE, TRN_CONVEX, TRN_SWITCH, cdl_eval,
                                decode_transform, encode_transform, load_dls)
from gpusynth.banks.model import (GUARD, LOOP_FORWARD, LOOP_NONE, LOOP_UNTIL_RELEASE, BankError)
from gpusynth.units import TC_ZERO, cb_to_gain, concave, convex, hz_to_abs_cents, tc_to_seconds

from dls_writer import (Instrument, Region, Wave, Wsmp, build_art, build_dls, cdl,  # noqa: E402
                        cdl_const, cdl_query, chunk, conn, fixed, list_chunk)

TESTDATA = Path(__file__).resolve().parents[3].parent / "shared" / "testdata" / "dls"


def _need(name: str) -> Path:
    p = TESTDATA / name
    if not p.exists():
        pytest.skip(f"test data not found: {p}")
    return p


def _sine(n=1000, amp=20000, period=100):
    return (np.sin(2 * np.pi * np.arange(n) / period) * amp).astype(np.int16)


def _one(art=None, rart=None, wsmp=None, wave_wsmp=None, bits=16, data=None, **rkw):
    """A one-instrument, one-region bank; returns the loaded Bank."""
    w = Wave(data=_sine() if data is None else data, bits=bits, rate=22050, wsmp=wave_wsmp)
    reg = Region(wave=0, wsmp=wsmp, art=rart, **rkw)
    ins = Instrument(program=5, regions=[reg], art=art, name="Test")
    return load_dls(build_dls([ins], [w]))


def _reg(bank, i=0):
    return bank.regions[i]


def _check_inside_pool(bank):
    r = bank.regions
    n = len(bank.pool)
    assert np.all(r["start"] >= 0) and np.all(r["end"] <= n) and np.all(r["end"] > r["start"])
    lp = r["loop_mode"] != LOOP_NONE
    assert np.all(r["loop_start"][lp] >= r["start"][lp])
    assert np.all(r["loop_end"][lp] <= r["end"][lp])
    assert np.all(r["loop_end"][lp] > r["loop_start"][lp])


# ------------------------------------------------------------------------------- real banks

def test_leadsol():
    p = _need("Leadsol.dls")
    t = time.perf_counter()
    b = load_dls(p)
    assert time.perf_counter() - t < 5.0
    assert len(b.presets) == 1
    pr = b.presets[0]
    assert pr.bank == 121 * 128 and pr.program == 0 and not pr.drum
    assert len(pr.regions) == 1
    r = b.regions[pr.regions[0]]
    assert (r["key_lo"], r["key_hi"], r["vel_lo"], r["vel_hi"]) == (0, 127, 0, 127)
    assert r["loop_mode"] == LOOP_FORWARD
    assert r["sample_rate"] == 44100.0 and r["root_key"] == 60
    assert r["end"] - r["start"] == 563200 // 2
    assert r["loop_start"] - r["start"] == 0x18060 and r["loop_end"] - r["loop_start"] == 0x2CBA0
    assert r["ve_release"] == pytest.approx(0x016C02C8 / 65536, abs=1e-3)   # the one art2 block
    assert r["ve_attack"] == TC_ZERO and r["ve_sustain"] == 0.0
    assert b.info["dls_level"] == 2 and b.info["INAM"] == "zngfMF-e4-2-e4"
    assert b.info["dls_unmodeled_connections"] == 0
    _check_inside_pool(b)
    # load_bank dispatches on the form type
    assert load_bank(p).presets[0].bank == 15488


def test_sf_gmbank():
    p = _need("sf_GMbank.dls")
    t = time.perf_counter()
    b = load_dls(p)
    assert time.perf_counter() - t < 10.0
    assert len(b.presets) == 329
    drums = [x for x in b.presets if x.drum]
    melodic = [x for x in b.presets if not x.drum]
    assert len(drums) == 10 and len(melodic) == 319
    assert len(b.regions) == 3560
    assert b.info["dls_waves"] == 488
    by = {(x.bank, x.program, x.drum): x for x in b.presets}
    assert by[(0, 0, False)].name == "Piano 1"
    assert by[(0, 40, False)].name == "Violin"
    kit = by[(0, 0, True)]
    assert kit.name == "Standard" and len(kit.regions) > 40
    kr = b.regions[kit.regions]
    assert kr["key_lo"].min() <= 35 and kr["key_hi"].max() >= 81
    # every GM melodic program is present at bank 0
    assert all((0, prog, False) in by for prog in range(128))
    _check_inside_pool(b)
    r = b.regions
    # sustain in 0.1 % units: the raw values are 0..998, so attenuations stay in 0..1000 cB
    assert r["ve_sustain"].min() >= 0 and r["ve_sustain"].max() <= 1000
    assert r["me_sustain"].min() >= 0 and r["me_sustain"].max() <= 1000
    # spessasynth's scale tuning (key -> pitch = scaleTuning * 128) survives
    assert set(np.unique(r["scale_tuning"])) >= {0.0, 100.0}
    assert b.info["dls_unmodeled_connections"] == 0
    assert b.info["dls_dropped_regions"] == 0


# ------------------------------------------------------------------------------- round trips

def test_eg1_round_trip():
    art = [conn(DST.EG1_DELAY, -2400), conn(DST.EG1_ATTACK, -1200), conn(DST.EG1_HOLD, raw=-0x80000000),
           conn(DST.EG1_DECAY, 1200), conn(DST.EG1_SUSTAIN, 500), conn(DST.EG1_RELEASE, 0)]
    r = _reg(_one(art=art))
    assert r["ve_delay"] == -2400 and r["ve_attack"] == -1200 and r["ve_hold"] == TC_ZERO
    assert r["ve_decay"] == 1200 and r["ve_release"] == 0
    # 50 % of the EG1's dB range -> 500 cB of attenuation
    assert r["ve_sustain"] == pytest.approx(500.0, abs=0.01)


@pytest.mark.parametrize("raw,expect", [(1000, 0.0), (0, 1000.0), (100, 900.0), (1, 999.0),
                                        (2000, 0.0), (-50, 1000.0)])
def test_eg1_sustain_mapping(raw, expect):
    r = _reg(_one(art=[conn(DST.EG1_SUSTAIN, raw)]))
    assert r["ve_sustain"] == pytest.approx(expect, abs=0.01)


def test_eg1_sustain_db_mode():
    data = build_dls([Instrument(regions=[Region()], art=[conn(DST.EG1_SUSTAIN, 700)])], [Wave(_sine())])
    assert load_dls(data).regions[0]["ve_sustain"] == pytest.approx(300)
    assert load_dls(data, eg1_sustain="amplitude").regions[0]["ve_sustain"] == pytest.approx(
        -200 * math.log10(0.7), abs=0.01)


def test_eg2_and_pitch_filter():
    art = [conn(DST.EG2_ATTACK, -600), conn(DST.EG2_DECAY, 600), conn(DST.EG2_SUSTAIN, 250),
           conn(DST.EG2_RELEASE, 100), conn(DST.EG2_DELAY, -3000), conn(DST.EG2_HOLD, -4000),
           conn(DST.PITCH, 1200, src=SRC.EG2), conn(DST.FILTER_CUTOFF, -2400, src=SRC.EG2),
           conn(DST.FILTER_CUTOFF, 8000), conn(DST.FILTER_Q, 60)]
    r = _reg(_one(art=art))
    assert (r["me_attack"], r["me_decay"], r["me_release"], r["me_delay"], r["me_hold"]) == (-600, 600, 100, -3000, -4000)
    assert r["me_sustain"] == pytest.approx(750)
    assert r["me_pitch"] == 1200 and r["me_fc"] == -2400
    assert r["fc"] == 8000 and r["q"] == 60


def test_filter_off_and_defaults():
    r = _reg(_one())
    assert r["fc"] == 13500 and r["q"] == 0
    assert r["ml_freq"] == pytest.approx(-851.3, abs=0.05)
    assert r["vl_freq"] == pytest.approx(-851.3, abs=0.05)
    assert r["ml_delay"] == pytest.approx(1200 * math.log2(0.01), abs=0.01)
    assert r["ve_attack"] == TC_ZERO and r["ve_release"] == TC_ZERO and r["ve_sustain"] == 0
    assert r["vel_atten"] == 960 and r["vel_fc"] == 0
    assert r["rev_cc"] == 1000 and r["cho_cc"] == 1000
    assert r["cc1_vib"] == 0 and r["press_vib"] == 0 and r["scale_tuning"] == 100
    assert r["excl_class"] == 0
    r = _reg(_one(art=[conn(DST.FILTER_CUTOFF, raw=0x7FFFFFFF)]))
    assert r["fc"] == 13500


def test_lfo_pan_sends_gain():
    art = [conn(DST.LFO_FREQ, float(hz_to_abs_cents(6.0))), conn(DST.LFO_DELAY, -1200),
           conn(DST.VIB_FREQ, float(hz_to_abs_cents(4.0))), conn(DST.VIB_DELAY, -600),
           conn(DST.PITCH, 30, src=SRC.LFO, transform=encode_transform(src_bipolar=True)),
           conn(DST.GAIN, 20, src=SRC.LFO), conn(DST.FILTER_CUTOFF, 300, src=SRC.LFO),
           conn(DST.PITCH, 15, src=SRC.VIBRATO),
           conn(DST.PAN, -250), conn(DST.REVERB, 400), conn(DST.CHORUS, 150), conn(DST.GAIN, -600)]
    r = _reg(_one(art=art))
    assert r["ml_freq"] == pytest.approx(float(hz_to_abs_cents(6.0)), abs=0.01)
    assert r["ml_delay"] == -1200 and r["vl_delay"] == -600
    assert r["vl_freq"] == pytest.approx(float(hz_to_abs_cents(4.0)), abs=0.01)
    assert (r["ml_pitch"], r["ml_vol"], r["ml_fc"], r["vl_pitch"]) == (30, 20, 300, 15)
    assert r["pan"] == -250 and r["rev_send"] == 400 and r["cho_send"] == 150
    assert r["atten"] == pytest.approx(600)
    assert cb_to_gain(r["atten"]) == pytest.approx(0.001)


def test_modulators_to_fields():
    art = [conn(DST.EG1_ATTACK, -1200, src=SRC.VELOCITY), conn(DST.EG2_ATTACK, -600, src=SRC.VELOCITY),
           conn(DST.EG1_DECAY, 0), conn(DST.EG1_DECAY, -1280, src=SRC.KEY),
           conn(DST.EG1_HOLD, 0), conn(DST.EG1_HOLD, 640, src=SRC.KEY),
           conn(DST.EG2_DECAY, 0), conn(DST.EG2_DECAY, -2560, src=SRC.KEY),
           conn(DST.EG2_HOLD, 0), conn(DST.EG2_HOLD, 1280, src=SRC.KEY),
           conn(DST.GAIN, -480, src=SRC.VELOCITY, transform=encode_transform(src=TRN_CONCAVE, src_invert=True)),
           conn(DST.PITCH, 40, src=SRC.LFO, ctl=SRC.CC1), conn(DST.GAIN, 10, src=SRC.LFO, ctl=SRC.CC1),
           conn(DST.FILTER_CUTOFF, 500, src=SRC.LFO, ctl=SRC.CC1),
           conn(DST.PITCH, 50, src=SRC.VIBRATO, ctl=SRC.CC1),
           conn(DST.PITCH, 25, src=SRC.VIBRATO, ctl=SRC.CHANNELPRESSURE),
           conn(DST.REVERB, 700, src=SRC.CC91), conn(DST.CHORUS, 600, src=SRC.CC93),
           conn(DST.FILTER_CUTOFF, -2400, src=SRC.VELOCITY, transform=encode_transform(src_invert=True)),
           conn(DST.FILTER_CUTOFF, 9000)]
    b = _one(art=art)
    r = _reg(b)
    assert r["ve_vel_attack"] == -1200 and r["me_vel_attack"] == -600
    # key -> decay: scale*key/128 = 60*scale/128 folded into the base, scale/128 per key from 60
    # the engine applies time + (60 - key) * value (SF2 sign): value = -scale/128
    assert r["ve_key_decay"] == pytest.approx(10) and r["ve_decay"] == pytest.approx(-600)
    assert r["ve_key_hold"] == pytest.approx(-5) and r["ve_hold"] == pytest.approx(300)
    assert r["me_key_decay"] == pytest.approx(20) and r["me_key_hold"] == pytest.approx(-10)
    for key in (0, 60, 100):     # time at a key equals the DLS sum base + scale * key / 128
        assert r["ve_decay"] + (60 - key) * r["ve_key_decay"] == pytest.approx(-1280 * key / 128)
    assert r["vel_atten"] == 480
    assert r["cc1_ml_pitch"] == 40 and r["cc1_ml_vol"] == 10 and r["cc1_ml_fc"] == 500
    assert r["ml_pitch"] == 0 and r["cc1_vib"] == 50 and r["press_vib"] == 25
    assert r["rev_cc"] == 700 and r["cho_cc"] == 600
    # inverted linear velocity -> cutoff -2400: -2400 at velocity 0, 0 at full velocity
    assert r["vel_fc"] == pytest.approx(-2400) and r["fc"] == 9000
    assert b.info["dls_unmodeled_connections"] == 0


def test_velocity_cutoff_non_inverted_and_scale_tuning():
    art = [conn(DST.FILTER_CUTOFF, 6000), conn(DST.FILTER_CUTOFF, 2400, src=SRC.VELOCITY),
           conn(DST.PITCH, 6400, src=SRC.KEY)]
    r = _reg(_one(art=art))
    # +2400 at full velocity = base +2400 and -2400 at velocity 0
    assert r["fc"] == 8400 and r["vel_fc"] == -2400
    assert r["scale_tuning"] == 50
    r = _reg(_one(art=[conn(DST.PITCH, 0, src=SRC.KEY)]))
    assert r["scale_tuning"] == 0      # a drum-style fixed pitch honours key -> pitch 0


def test_unmodeled_connections_counted():
    art = [conn(DST.PITCH, 100, src=SRC.CC1),                        # CC1 -> pitch: no field
           conn(DST.GAIN, -480, src=SRC.VELOCITY,
                transform=encode_transform(src=TRN_CONVEX)),          # convex velocity curve
           conn(DST.EG1_SHUTDOWN, -2400),                             # no shutdown field
           conn(DST.PITCH, 12, src=SRC.PITCHWHEEL, ctl=SRC.RPN0),     # non-default bend
           conn(DST.PITCH, 12800, src=SRC.PITCHWHEEL, ctl=SRC.RPN0,
                transform=encode_transform(src_bipolar=True)),         # replaces it: default
           conn(DST.PAN, 508, src=SRC.CC10),                          # default: engine-global
           conn(DST.PITCH, 0, src=SRC.CC1)]                           # replaces the first: scale 0
    b = _one(art=art)
    assert b.info["dls_unmodeled_connections"] == 2
    assert b.regions[0]["vel_atten"] == 960


def test_region_art_overrides_instrument_art():
    art = [conn(DST.EG1_ATTACK, -1200), conn(DST.EG1_RELEASE, 600), conn(DST.PAN, 100)]
    rart = [conn(DST.EG1_ATTACK, 300), conn(DST.PAN, -100)]
    w = Wave(_sine(), rate=22050)
    ins = Instrument(regions=[Region(wave=0, art=rart, keys=(0, 59)), Region(wave=0, keys=(60, 127))], art=art)
    b = load_dls(build_dls([ins], [w]))
    r0, r1 = b.regions[0], b.regions[1]
    assert r0["ve_attack"] == 300 and r0["pan"] == -100 and r0["ve_release"] == 600
    assert r1["ve_attack"] == -1200 and r1["pan"] == 100 and r1["ve_release"] == 600
    assert r0["start"] == r1["start"]            # one wave, pooled once


def test_art1_in_lar2_and_art2_in_lart():
    art = [conn(DST.EG1_ATTACK, -100)]
    rart = [conn(DST.EG1_RELEASE, 200)]
    w = Wave(_sine())
    ins = Instrument(regions=[Region(art=rart, art_list=b"lart", art_chunk=b"art2")], art=art,
                     art_list=b"lar2", art_chunk=b"art1")
    r = load_dls(build_dls([ins], [w])).regions[0]
    assert r["ve_attack"] == -100 and r["ve_release"] == 200


def test_dls1_file():
    art = [conn(DST.LFO_FREQ, -500), conn(DST.PITCH, 20, src=SRC.LFO),
           conn(DST.PITCH, 50, src=SRC.LFO, ctl=SRC.CC1), conn(DST.GAIN, 30, src=SRC.LFO, ctl=SRC.CC1),
           conn(DST.GAIN, -960, src=SRC.VELOCITY, transform=TRN_CONCAVE)]    # DLS1: output transform
    w = Wave(_sine())
    ins = Instrument(regions=[Region(kind=b"rgn ", vels=(0, 0))], art=art, art_list=b"lart",
                     art_chunk=b"art1")
    b = load_dls(build_dls([ins], [w]))
    r = b.regions[0]
    assert b.info["dls_level"] == 1
    assert r["vel_lo"] == 0 and r["vel_hi"] == 127            # DLS1 0..0 velocity range
    assert r["ml_freq"] == -500 and r["ml_pitch"] == 20 and r["cc1_ml_pitch"] == 50
    assert r["cc1_ml_vol"] == 30 and r["vel_atten"] == 960
    assert r["vl_pitch"] == 0 and r["cc1_vib"] == 0            # no vibrato LFO in DLS1
    assert b.info["dls_unmodeled_connections"] == 0


def test_key_ranges_groups_layers_banks():
    w = Wave(_sine())
    regs = [Region(keys=(36, 36), key_group=1, layer=3), Region(keys=(42, 42), key_group=1),
            Region(keys=(46, 46), vels=(10, 90), key_group=1, kind=b"rgn ")]
    ins = [Instrument(program=0, drum=True, bank_msb=0, regions=regs, name="Kit"),
           Instrument(program=129, bank_msb=121, bank_lsb=3, regions=[Region()], name="Lead")]
    b = load_dls(build_dls(ins, [w]))
    kit, lead = b.presets
    assert kit.drum and kit.program == 0 and kit.bank == 0 and kit.name == "Kit"
    assert not lead.drum and lead.program == 1 and lead.bank == 121 * 128 + 3
    r = b.regions[kit.regions]
    assert list(r["key_lo"]) == [36, 42, 46] and list(r["excl_class"]) == [1, 1, 1]
    assert (r["vel_lo"][2], r["vel_hi"][2]) == (10, 90)


def test_8bit_silence_and_16bit_scale():
    b = _one(bits=8, data=np.full(100, 0x80, np.uint8))
    r = _reg(b)
    assert r["end"] - r["start"] == 100
    assert np.all(b.pool[r["start"]:r["end"]] == 0)
    b = _one(bits=8, data=np.array([0, 0x80, 0xFF] * 10, np.uint8))
    r = _reg(b)
    assert b.pool[r["start"]] == -1.0 and b.pool[r["start"] + 2] == pytest.approx(127 / 128)
    b = _one(data=np.array([-32768, 0, 16384, 32767] * 5, np.int16))
    r = _reg(b)
    assert list(b.pool[r["start"]:r["start"] + 3]) == [-1.0, 0.0, 0.5]
    assert np.all(b.pool[r["end"]:r["end"] + GUARD] == 0)


def test_wsmp_unity_fine_atten_loops():
    r = _reg(_one(wsmp=Wsmp(unity=72, fine=-35, atten=-60 * 65536, loops=[(0, 100, 200)])))
    assert r["root_key"] == 72 and r["tune"] == -35 and r["atten"] == pytest.approx(60)
    assert r["loop_mode"] == LOOP_FORWARD
    assert r["loop_start"] - r["start"] == 100 and r["loop_end"] - r["start"] == 300
    assert r["sample_rate"] == 22050
    r = _reg(_one(wsmp=Wsmp(loops=[(1, 0, 1000)])))
    assert r["loop_mode"] == LOOP_UNTIL_RELEASE and r["loop_end"] == r["end"]
    r = _reg(_one(wsmp=Wsmp(loops=[])))
    assert r["loop_mode"] == LOOP_NONE
    # the wave's wsmp applies when the region has none, the region's overrides it
    r = _reg(_one(wave_wsmp=Wsmp(unity=48, fine=7, loops=[(0, 10, 20)])))
    assert r["root_key"] == 48 and r["tune"] == 7 and r["loop_mode"] == LOOP_FORWARD
    r = _reg(_one(wave_wsmp=Wsmp(unity=48, loops=[(0, 10, 20)]), wsmp=Wsmp(unity=50)))
    assert r["root_key"] == 50 and r["loop_mode"] == LOOP_NONE
    # larger cbSize is skipped by size
    r = _reg(_one(wsmp=Wsmp(unity=61, cb=28, loops=[(0, 5, 6)])))
    assert r["root_key"] == 61 and r["loop_start"] - r["start"] == 5
    # pitch static adds to the fine tune
    r = _reg(_one(wsmp=Wsmp(fine=10), art=[conn(DST.PITCH, -20)]))
    assert r["tune"] == -10


def test_loop_outside_wave_is_error():
    with pytest.raises(BankError) as e:
        _one(wsmp=Wsmp(loops=[(0, 900, 101)]))
    assert "wsmp" in str(e.value)
    with pytest.raises(BankError):
        _one(wsmp=Wsmp(loops=[(0, 10, 0)]))


def test_cdl_skips_next_chunk():
    w = Wave(_sine())

    def unity_with(cond):
        reg = Region(wsmp=Wsmp(unity=60), extra=[cond, Wsmp(unity=72).build()])
        return load_dls(build_dls([Instrument(regions=[reg])], [w])).regions[0]["root_key"]

    assert unity_with(cdl_const(0)) == 60
    assert unity_with(cdl_const(1)) == 72
    assert unity_with(cdl_query(DLSID.SupportsDLS2)) == 72
    assert unity_with(cdl_query(DLSID.SupportsDLS1)) == 72
    assert unity_with(cdl_query(DLSID.GMInHardware)) == 60
    assert unity_with(cdl(("QUERY", DLSID.GMInHardware), 0xF)) == 72           # NOT
    assert unity_with(cdl(("QUERYSUPPORTED", DLSID.XGInHardware))) == 72
    assert unity_with(cdl(("QUERYSUPPORTED", bytes(16)))) == 60
    assert unity_with(cdl(("CONST", 2), ("CONST", 3), 0xA)) == 0 + 60           # 3 < 2 false
    assert unity_with(cdl(("CONST", 3), ("CONST", 2), 0xA)) == 72               # 2 < 3
    with pytest.raises(BankError):
        unity_with(cdl(0x1))                                                     # underflow
    # a cdl at the top level can hide a whole instrument list... here it hides an INFO list
    data = build_dls([Instrument(regions=[Region()])], [w],
                     top_extra=[cdl_const(0), list_chunk(b"INFO", [chunk(b"INAM", b"hidden\0")])],
                     info={"INAM": "shown"})
    assert load_dls(data).info["INAM"] == "shown"


def test_cdl_inside_articulation_list():
    from dls_writer import build_art
    body = lambda conns: struct.pack("<II", 8, len(conns)) + b"".join(c.pack() for c in conns)
    lar2 = list_chunk(b"lar2", [cdl_const(0), chunk(b"art2", body([conn(DST.EG1_ATTACK, 100)])),
                                chunk(b"art2", body([conn(DST.EG1_RELEASE, 200)]))])
    reg = Region(extra=[lar2])
    r = load_dls(build_dls([Instrument(regions=[reg])], [Wave(_sine())])).regions[0]
    assert r["ve_attack"] == TC_ZERO and r["ve_release"] == 200
    assert build_art  # the helper builds the same layout


def test_many_instruments_distinct_global_art():
    w = [Wave(_sine())]
    ins = [Instrument(program=i, regions=[Region()], art=[conn(DST.PAN, i * 3)]) for i in range(100)]
    b = load_dls(build_dls(ins, w))
    assert [float(b.regions[p.regions[0]]["pan"]) for p in b.presets] == [i * 3.0 for i in range(100)]


def test_cdl_eval_unit():
    assert cdl_eval(b"") is True
    assert cdl_eval(struct.pack("<HI", 0x10, 0)) is False


def test_ptbl_variants():
    waves = [Wave(_sine(100)), Wave(_sine(200)), Wave(_sine(300))]
    ins = [Instrument(regions=[Region(wave=2, keys=(0, 10)), Region(wave=0, keys=(11, 20))])]
    for kw in ({}, {"ptbl": False}, {"ptbl_after": True}, {"wvpl_extra": [chunk(b"junk", b"abc")]}):
        b = load_dls(build_dls(ins, waves, **kw))
        r = b.regions
        assert list(r["end"] - r["start"]) == [300, 100], kw
    assert load_dls(build_dls(ins, waves, ptbl=False)).info.get("dls_ptbl_rebuilt")
    with pytest.raises(BankError) as e:
        load_dls(build_dls(ins, waves, ptbl_offsets=[0, 4, 8]))
    assert "ptbl" in str(e.value)
    with pytest.raises(BankError):
        load_dls(build_dls([Instrument(regions=[Region(wave=7)])], waves))
    b = load_dls(build_dls(ins, waves, ptbl_offsets=[0, 0, 0xFFFFFFFF]))
    assert len(b.regions) == 1 and b.info["dls_dropped_regions"] == 1


def test_info_vers_dlid_names():
    w = Wave(_sine(), name="sine", dlid=True)
    data = build_dls([Instrument(regions=[Region()], name="Odd", dlid=True)], [w],
                     info={"INAM": "My Bank", "ICOP": "PD", "ICMT": "odd length"})
    b = load_dls(data)
    assert b.name == "My Bank" and b.info["ICOP"] == "PD" and b.info["ICMT"] == "odd length"
    assert b.info["version"] == "1.2.3.4" and len(b.info["dlid"]) == 32
    assert b.presets[0].name == "Odd"
    assert load_dls(data, name="Other").name == "Other"


def test_unsupported_waves_dropped_or_error():
    ok = Wave(_sine())
    stereo = Wave(_sine(200), channels=2)
    adpcm = Wave(raw_data=bytes(100), format_tag=2, bits=4)
    b24 = Wave(raw_data=bytes(300), bits=24)
    ins = [Instrument(regions=[Region(wave=0, keys=(0, 10)), Region(wave=1, keys=(11, 20)),
                               Region(wave=2, keys=(21, 30)), Region(wave=3, keys=(31, 40))])]
    data = build_dls(ins, [ok, stereo, adpcm, b24])
    b = load_dls(data)
    assert len(b.regions) == 1 and b.info["dls_dropped_regions"] == 3
    text = " ".join(b.info["warnings"])
    assert "channels" in text and "not PCM" in text and "24-bit" in text
    with pytest.raises(BankError) as e:
        load_dls(data, strict=True)
    assert "channels" in str(e.value)


def test_regions_without_wlnk_or_rgnh_dropped():
    ins = [Instrument(regions=[Region(wlnk=False), Region(rgnh=False), Region()])]
    b = load_dls(build_dls(ins, [Wave(_sine())]))
    assert len(b.regions) == 1 and b.info["dls_dropped_regions"] == 2


# ------------------------------------------------------------------------------- transforms, units

def test_transform_bits_round_trip():
    for out in range(4):
        for ctl in range(4):
            for src in range(4):
                for flags in range(16):
                    kw = dict(out=out, ctl=ctl, src=src, ctl_bipolar=bool(flags & 1),
                              ctl_invert=bool(flags & 2), src_bipolar=bool(flags & 4),
                              src_invert=bool(flags & 8))
                    assert decode_transform(encode_transform(**kw)) == kw
    assert decode_transform(0x8230) == dict(out=0, ctl=3, ctl_bipolar=False, ctl_invert=True,
                                            src=0, src_bipolar=False, src_invert=True)


@pytest.mark.parametrize("inv,bip,static,depth", [(False, False, 0, 40), (True, False, 40, -40),
                                                  (False, True, -40, 80), (True, True, 40, -80)])
def test_control_transform_affine_split(inv, bip, static, depth):
    """CC1 x LFO -> pitch with an inverted / bipolar linear CC1 splits into an LFO depth that does
    not depend on CC1 and a CC1-scaled depth."""
    t = encode_transform(ctl_invert=inv, ctl_bipolar=bip)
    r = _reg(_one(art=[conn(DST.PITCH, 40, src=SRC.LFO, ctl=SRC.CC1, transform=t)]))
    assert r["ml_pitch"] == static and r["cc1_ml_pitch"] == depth
    # swapped source/control order means the same
    t2 = encode_transform(src_invert=inv, src_bipolar=bip)
    r = _reg(_one(art=[conn(DST.PITCH, 40, src=SRC.CC1, ctl=SRC.LFO, transform=t2)]))
    assert r["ml_pitch"] == static and r["cc1_ml_pitch"] == depth


@pytest.mark.parametrize("curve", [TRN_CONVEX, TRN_SWITCH])
def test_curved_modulators_unmodeled(curve):
    b = _one(art=[conn(DST.PITCH, 40, src=SRC.LFO, ctl=SRC.CC1, transform=encode_transform(ctl=curve)),
                  conn(DST.EG1_ATTACK, 40, src=SRC.VELOCITY, transform=encode_transform(src=curve))])
    assert b.info["dls_unmodeled_connections"] == 2
    assert b.regions[0]["cc1_ml_pitch"] == 0 and b.regions[0]["ve_vel_attack"] == 0


def test_inverted_lfo_and_eg2_sources():
    r = _reg(_one(art=[conn(DST.PITCH, 30, src=SRC.LFO, transform=encode_transform(src_invert=True)),
                       conn(DST.PITCH, 500, src=SRC.EG2, transform=encode_transform(src_invert=True))]))
    assert r["ml_pitch"] == -30
    assert r["me_pitch"] == -500 and r["tune"] == 500


def test_curves_reference_points():
    # [FS] curves at x = 0, 32, 64, 127 (x/127 into the units helpers)
    for x in (0, 32, 64, 127):
        cx = -(40 / 96) * math.log10((127 - x) / 127) if x < 127 else 1.0
        vx = 1 + (40 / 96) * math.log10(x / 127) if x > 0 else 0.0
        assert float(concave(x / 127)) == pytest.approx(min(max(cx, 0), 1), abs=1e-9)
        assert float(convex(x / 127)) == pytest.approx(min(max(vx, 0), 1), abs=1e-9)


def test_unit_conversions():
    assert float(hz_to_abs_cents(5.0)) == pytest.approx(-851.3, abs=0.05)
    r = _reg(_one(art=[conn(DST.EG1_ATTACK, raw=-0x80000000), conn(DST.LFO_FREQ, float(hz_to_abs_cents(5.0)))]))
    assert r["ve_attack"] == TC_ZERO and float(tc_to_seconds(r["ve_attack"])) == 0.0
    assert r["ml_freq"] == pytest.approx(-851.3, abs=0.05)
    r = _reg(_one(art=[conn(DST.GAIN, -600)]))
    assert float(cb_to_gain(r["atten"])) == pytest.approx(0.001, rel=1e-6)
    assert fixed(12800) == 12800 * 65536
    # wsmp lAttenuation: -6 dB = -60 cB * 65536 units
    r = _reg(_one(wsmp=Wsmp(atten=-6 * 655360)))
    assert r["atten"] == pytest.approx(60)


# ------------------------------------------------------------------------------- malformed input

def _small_valid() -> bytes:
    w = [Wave(_sine(64), wsmp=Wsmp(loops=[(0, 8, 32)])), Wave(np.arange(40, dtype=np.uint8), bits=8)]
    ins = [Instrument(program=3, regions=[Region(wave=0, keys=(0, 63), art=[conn(DST.PAN, 10)]),
                                          Region(wave=1, keys=(64, 127), kind=b"rgn ",
                                                 wsmp=Wsmp(loops=[(1, 0, 10)]))],
                      art=[conn(DST.EG1_ATTACK, -1200), conn(DST.PITCH, 5, src=SRC.LFO, ctl=SRC.CC1)],
                      name="x"),
           Instrument(program=0, drum=True, regions=[Region(wave=1, keys=(36, 36), key_group=2)],
                      art=[conn(DST.EG1_RELEASE, 100)], art_list=b"lart", art_chunk=b"art1")]
    return build_dls(ins, w, info={"INAM": "small"},
                     top_extra=[cdl(("QUERY", DLSID.SupportsDLS2)), chunk(b"junk", b"1")])


def test_small_valid_loads():
    b = load_dls(_small_valid())
    assert len(b.presets) == 2 and len(b.regions) == 3


def test_truncated_and_garbage():
    data = _small_valid()
    for n in (0, 4, 11, 12, 20, len(data) // 2, len(data) - 1):
        with pytest.raises(BankError):
            load_dls(data[:n])
    with pytest.raises(BankError):
        load_dls(b"RIFF\x04\0\0\0sfbk")
    with pytest.raises(BankError):
        load_dls(Path("/nonexistent/file.dls"))


def _mutations(data: bytes, rng: random.Random):
    """Seeded mutations: truncations, bit flips, size lies, absurd counts."""
    out = []
    n = len(data)
    # positions of every size field and every count-like u32 in chunk bodies
    size_pos = []
    o = 0
    while True:
        i = data.find(b"LIST", o)
        if i < 0:
            break
        size_pos.append(i + 4)
        o = i + 1
    for tag in (b"art1", b"art2", b"wsmp", b"ptbl", b"colh", b"insh", b"rgnh", b"wlnk", b"data", b"fmt "):
        i = data.find(tag)
        while i >= 0:
            size_pos.append(i + 4)
            i = data.find(tag, i + 1)
    for _ in range(60):
        out.append(data[:rng.randrange(n)])
    for _ in range(150):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            p = rng.randrange(n)
            b[p] ^= 1 << rng.randrange(8)
        out.append(bytes(b))
    for _ in range(100):
        b = bytearray(data)
        p = rng.choice(size_pos)
        v = rng.choice([0, 1, 3, 7, 0xFFFFFFFF, 0x7FFFFFFF, n, n * 2,
                        struct.unpack_from("<I", b, p)[0] + rng.choice([-2, -1, 1, 2, 13])])
        struct.pack_into("<I", b, p, v & 0xFFFFFFFF)
        out.append(bytes(b))
    for _ in range(100):
        b = bytearray(data)
        p = rng.choice(size_pos) + 4 + rng.choice([0, 4, 8, 12])     # body words: counts, cbSize
        if p + 4 <= n:
            struct.pack_into("<I", b, p, rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 10**6]))
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_malformed_corpus(seed):
    data = _small_valid()
    rng = random.Random(seed)
    loaded = errors = 0
    for m in _mutations(data, rng):
        t = time.perf_counter()
        try:
            b = load_dls(m)
        except BankError:
            errors += 1
        else:
            loaded += 1
            _check_inside_pool(b)
            b.validate()
        assert time.perf_counter() - t < 2.0
    assert errors > 0 and loaded > 0


def test_absurd_counts():
    w = [Wave(_sine())]
    base_ins = Instrument(regions=[Region()])
    ins_art = Instrument(regions=[Region()], extra=[build_art([conn(DST.PAN, 1)], count=10**9)])
    with pytest.raises(BankError):
        load_dls(build_dls([ins_art], w))
    with pytest.raises(BankError):
        load_dls(build_dls([Instrument(regions=[Region(wsmp=Wsmp(nloops=10**9))])], w))
    data = build_dls([base_ins], w, ptbl_offsets=[0] * 3)
    assert len(load_dls(data).regions) == 1
    with pytest.raises(BankError) as e:
        load_dls(data.replace(struct.pack("<II", 8, 3), struct.pack("<II", 8, 10**8)))
    assert "ptbl" in str(e.value)
    # colh / insh counts that disagree are only warnings
    b = load_dls(build_dls([Instrument(regions=[Region()], region_count=50)], w, colh=7))
    assert len(b.presets) == 1 and any("colh" in x for x in b.info["warnings"])
