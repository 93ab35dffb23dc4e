"""gpusynth.channels.ChannelState: defaults, RPN data entry, CC121, program / bank, SysEx
(resets, master volume / tuning, GS / XG parts and effects) and the derived kernel inputs."""
import numpy as np
import pytest

from gpusynth import units
from gpusynth.channels import (DEFAULT_PRIORITY, FX_DEFAULTS, GM2_RESET, GM_RESET, PRIO_STANDARD,
                               ChannelState)

GS_RESET = bytes([0xF0, 0x41, 0x10, 0x42, 0x12, 0x40, 0x00, 0x7F, 0x00, 0x41, 0xF7])
XG_RESET = bytes([0xF0, 0x43, 0x10, 0x4C, 0x00, 0x00, 0x7E, 0x00, 0xF7])


def master_volume(v14):
    return bytes([0xF0, 0x7F, 0x7F, 0x04, 0x01, v14 & 0x7F, v14 >> 7, 0xF7])


def master_fine(v14):
    return bytes([0xF0, 0x7F, 0x7F, 0x04, 0x03, v14 & 0x7F, v14 >> 7, 0xF7])


def master_coarse(msb):
    return bytes([0xF0, 0x7F, 0x7F, 0x04, 0x04, 0x00, msb, 0xF7])


def gs(addr, val):
    a = bytes(addr)
    s = (128 - (sum(a) + val) % 128) % 128
    return bytes([0xF0, 0x41, 0x10, 0x42, 0x12]) + a + bytes([val, s, 0xF7])


def rpn(cs, c, num, msb, lsb=None):
    cs.control(c, 101, num >> 7)
    cs.control(c, 100, num & 0x7F)
    cs.control(c, 6, msb)
    if lsb is not None:
        cs.control(c, 38, lsb)


def dirty(cs, c=0):
    """Move every piece of channel c's state away from its default."""
    for num, val in ((0, 1), (32, 2), (1, 90), (7, 30), (10, 10), (11, 40), (64, 127), (65, 127),
                     (66, 127), (67, 127), (71, 80), (74, 20), (91, 99), (93, 77)):
        cs.control(c, num, val)
    rpn(cs, c, 0, 12, 0)
    rpn(cs, c, 1, 0x50, 0)
    rpn(cs, c, 2, 70)
    cs.program[c] = 33
    cs.bend[c] = 0
    cs.pressure[c] = 100
    cs.poly_pressure[c, 60] = 50
    cs.sysex(master_volume(8192))
    cs.sysex(master_fine(12000))
    cs.sysex(master_coarse(66))


# ---- defaults ------------------------------------------------------------------------

def test_reset_defaults():
    cs = ChannelState(2)
    assert cs.n == 32
    assert np.all(cs.cc[:, 7] == 100) and np.all(cs.cc[:, 11] == 127)
    assert np.all(cs.cc[:, 10] == 64) and np.all(cs.cc[:, 91] == 40)
    assert np.all(cs.cc[:, 93] == 0) and np.all(cs.cc[:, 1] == 0) and np.all(cs.cc[:, 64] == 0)
    assert np.all(cs.cc[:, 100] == 127) and np.all(cs.cc[:, 101] == 127)   # RPN null
    assert np.all(cs.rpn == 0x3FFF)
    assert np.all(cs.program == 0) and all(cs.bank(c) == 0 for c in range(cs.n))
    assert np.all(cs.bend == 8192)
    assert np.all(cs.bend_range == 200.0)         # RPN 0: 2 semitones
    assert np.all(cs.fine == 0) and np.all(cs.coarse == 0)
    assert cs.master_tune == 0.0 and cs.master_atten == 0.0
    assert cs.fx == FX_DEFAULTS and cs.fx is not FX_DEFAULTS
    # the drum channel is MIDI channel 10 of every group
    np.testing.assert_array_equal(np.flatnonzero(cs.drum), [9, 25])


def test_default_priorities_are_directmusic_order():
    cs = ChannelState(3)
    np.testing.assert_array_equal(cs.priority, np.tile(DEFAULT_PRIORITY, 3))
    p = DEFAULT_PRIORITY.astype(np.int64)
    assert np.all(p & PRIO_STANDARD)
    assert len(set(p.tolist())) == 16
    # channel 10 (index 9) first, then channels 1..9, 11..16 in order
    order = np.argsort(-p, kind="stable").tolist()
    assert order == [9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]


def test_default_inputs():
    inp = ChannelState(1).inputs()
    assert all(a.dtype == np.float32 and a.shape == (16,) for a in inp.values())
    np.testing.assert_array_equal(inp["ch_pitch"], 0.0)
    np.testing.assert_array_equal(inp["ch_pan"], 0.0)
    np.testing.assert_array_equal(inp["ch_mod"], 0.0)
    np.testing.assert_allclose(inp["ch_rev"], 40 / 127, rtol=1e-6)
    # CC7 100 and CC11 127: 40 log10(100 / 127) dB (GM's volume curve)
    np.testing.assert_allclose(inp["ch_gain"], -400.0 * np.log10(100 / 127), rtol=1e-5)


# ---- RPN data entry ----------------------------------------------------------------

def test_rpn0_sets_the_pitch_bend_range():
    cs = ChannelState(1)
    rpn(cs, 3, 0, 12)
    assert cs.bend_range[3] == 1200.0
    assert np.all(np.delete(cs.bend_range, 3) == 200.0)           # only that channel
    cs.control(3, 38, 50)                                           # LSB: cents
    assert cs.bend_range[3] == 1250.0
    cs.control(3, 38, 127)                                          # cents stop at 99
    assert cs.bend_range[3] == 1299.0
    cs.control(3, 38, 50)
    cs.bend[3] = 16383
    cs.bend[4] = 0
    p = cs.inputs()["ch_pitch"]
    assert p[3] == pytest.approx(8191 / 8192 * 1250.0, rel=1e-6)
    assert p[4] == pytest.approx(-200.0)                            # default range, full down


def test_rpn1_fine_and_rpn2_coarse_tuning():
    cs = ChannelState(1)
    rpn(cs, 0, 1, 0x60, 0)                  # 0x3000 above centre: +50 cents
    assert cs.fine[0] == pytest.approx(50.0)
    rpn(cs, 0, 1, 0x00, 0)
    assert cs.fine[0] == pytest.approx(-100.0)
    rpn(cs, 0, 2, 64 + 3)
    assert cs.coarse[0] == 3
    rpn(cs, 1, 2, 64 - 12)
    p = cs.inputs()["ch_pitch"]
    assert p[0] == pytest.approx(-100.0 + 300.0)
    assert p[1] == pytest.approx(-1200.0)
    assert cs.bend_range[0] == 200.0                                # RPN 0 untouched


def test_data_entry_without_a_selected_rpn_changes_nothing():
    cs = ChannelState(1)
    cs.control(0, 6, 24)                                            # RPN null: ignored
    assert cs.bend_range[0] == 200.0
    cs.control(0, 99, 0)                                            # NRPN selected
    cs.control(0, 98, 0)
    cs.control(0, 6, 24)
    assert cs.bend_range[0] == 200.0 and cs.fine[0] == 0 and cs.coarse[0] == 0
    rpn(cs, 0, 0, 5)                                                # back to RPN 0
    assert cs.bend_range[0] == 500.0
    cs.control(0, 101, 127)                                         # RPN null again
    cs.control(0, 100, 127)
    cs.control(0, 6, 24)
    assert cs.bend_range[0] == 500.0


# ---- CC121 reset all controllers -----------------------------------------------------

def test_reset_all_controllers_resets_what_rp015_says():
    cs = ChannelState(1)
    dirty(cs, 0)
    dirty(cs, 1)
    cs.control(0, 99, 3)                    # leave an NRPN selected
    cs.reset_controllers(0)
    assert cs.cc[0, 1] == 0                                          # modulation
    assert cs.cc[0, 11] == 127                                       # expression
    assert all(cs.cc[0, n] == 0 for n in (64, 65, 66, 67))           # pedals
    assert all(cs.cc[0, n] == 127 for n in (98, 99, 100, 101))       # (N)RPN null
    assert cs.rpn[0] == 0x3FFF
    assert cs.bend[0] == 8192 and cs.pressure[0] == 0 and cs.poly_pressure[0].max() == 0
    # after the reset a data entry reaches no parameter
    cs.control(0, 6, 30)
    assert cs.bend_range[0] == 1200.0


def test_reset_all_controllers_leaves_what_rp015_says():
    cs = ChannelState(1)
    dirty(cs, 0)
    dirty(cs, 1)
    before = {k: np.copy(getattr(cs, k)) for k in ("bend_range", "fine", "coarse", "program")}
    cc_before = cs.cc.copy()
    master = (cs.master_tune, cs.master_atten)
    cs.reset_controllers(0)
    for n in (0, 32, 7, 10, 71, 74, 91, 93):        # bank, volume, pan, sound ctl, sends
        assert cs.cc[0, n] == cc_before[0, n], n
    for k, a in before.items():                      # program and the RPN values stay
        np.testing.assert_array_equal(getattr(cs, k), a)
    assert cs.bank(0) == 1 * 128 + 2
    assert (cs.master_tune, cs.master_atten) == master
    np.testing.assert_array_equal(cs.cc[1], cc_before[1])            # other channels untouched
    assert cs.bend[1] == 0 and cs.pressure[1] == 100


# ---- program / bank ------------------------------------------------------------------

def test_bank_select_msb_lsb():
    cs = ChannelState(1)
    cs.control(5, 0, 121)
    assert cs.bank(5) == 121 * 128
    cs.control(5, 32, 1)
    assert cs.bank(5) == 121 * 128 + 1
    assert cs.bank(4) == 0
    cs.control(9, 0, 127)
    cs.control(9, 32, 127)
    assert cs.bank(9) == 16383


# ---- full resets ---------------------------------------------------------------------

@pytest.mark.parametrize("msg", [GM_RESET, GM2_RESET, GS_RESET, XG_RESET],
                         ids=["gm", "gm2", "gs", "xg"])
def test_system_resets_restore_every_default(msg):
    ref = ChannelState(2)
    cs = ChannelState(2)
    for c in (0, 9, 17):
        dirty(cs, c)
    cs.drum[:] = True
    cs.fx["gs_reverb"] = 4
    assert cs.sysex(msg) == "reset"
    for k in ("cc", "program", "bend", "bend_range", "fine", "coarse", "pressure",
              "poly_pressure", "rpn", "rpn_is_nrpn", "drum", "priority"):
        np.testing.assert_array_equal(getattr(cs, k), getattr(ref, k), err_msg=k)
    assert cs.master_tune == 0.0 and cs.master_atten == 0.0
    assert cs.fx == FX_DEFAULTS
    for k, a in ref.inputs().items():
        np.testing.assert_array_equal(cs.inputs()[k], a, err_msg=k)


def test_unknown_and_short_sysex_is_ignored():
    cs = ChannelState(1)
    ref = cs.cc.copy()
    for msg in (b"", b"\xf0\x7e", bytes([0xF0, 0x7E, 0x7F, 0x09, 0x02, 0xF7]),   # GM off
                bytes([0xF0, 0x00, 0x20, 0x29, 0x01, 0xF7]), bytes([0x90, 60, 100])):
        assert cs.sysex(msg) is None
    np.testing.assert_array_equal(cs.cc, ref)


# ---- master volume / tuning ----------------------------------------------------------

def test_master_volume():
    cs = ChannelState(1)
    cs.sysex(master_volume(16383))
    assert cs.master_atten == pytest.approx(0.0, abs=1e-12)
    cs.sysex(master_volume(8192))
    assert cs.master_atten == pytest.approx(-200 * np.log10(8192 / 16383), rel=1e-12)   # ~6 dB
    base = -400.0 * np.log10(100 / 127)
    np.testing.assert_allclose(cs.inputs()["ch_gain"], base + cs.master_atten, rtol=1e-5)
    cs.sysex(master_volume(0))                                        # finite, very quiet
    assert cs.master_atten == pytest.approx(units.gain_to_cb(1 / 16383))


def test_master_fine_and_coarse_tuning_add():
    cs = ChannelState(1)
    cs.sysex(master_fine(8192 + 4096))                                # +50 cents
    assert cs.master_tune == pytest.approx(50.0)
    cs.sysex(master_coarse(64 - 2))                                   # -2 semitones
    assert cs.master_tune == pytest.approx(-150.0)
    cs.sysex(master_fine(8192))
    assert cs.master_tune == pytest.approx(-200.0)
    np.testing.assert_allclose(cs.inputs()["ch_pitch"], -200.0)


def test_master_tuning_after_a_system_reset():
    """A GM reset clears both parts of master tuning (fine and coarse)."""
    cs = ChannelState(1)
    cs.sysex(master_fine(8192 + 4096))                                # +50 cents
    cs.sysex(GM_RESET)
    assert cs.master_tune == 0.0
    cs.sysex(master_coarse(64 + 1))                                   # +1 semitone only
    assert cs.master_tune == pytest.approx(100.0)


# ---- GS / XG parts and effects -------------------------------------------------------

def test_gs_rhythm_part_maps_parts_to_channels():
    cs = ChannelState(2)
    assert cs.sysex(gs([0x40, 0x11, 0x15], 1)) is None     # part 1 -> MIDI channel 1
    assert cs.sysex(gs([0x40, 0x1A, 0x15], 2)) is None     # part 11 -> channel 11
    assert cs.sysex(gs([0x40, 0x10, 0x15], 0)) is None     # part 10 -> channel 10: melodic
    np.testing.assert_array_equal(np.flatnonzero(cs.drum), [0, 10, 16, 26])


def test_gs_and_xg_part_sends_set_cc91_cc93():
    cs = ChannelState(1)
    cs.sysex(gs([0x40, 0x12, 0x22], 90))                   # part 2 reverb send -> CC91 ch 2
    cs.sysex(gs([0x40, 0x10, 0x21], 70))                   # part 10 chorus send -> CC93 ch 10
    assert cs.cc[1, 91] == 90 and cs.cc[9, 93] == 70
    cs.sysex(bytes([0xF0, 0x43, 0x10, 0x4C, 0x08, 0x05, 0x13, 33, 0xF7]))   # XG part 5 reverb
    cs.sysex(bytes([0xF0, 0x43, 0x10, 0x4C, 0x08, 0x05, 0x12, 44, 0xF7]))   # XG part 5 chorus
    assert cs.cc[5, 91] == 33 and cs.cc[5, 93] == 44
    inp = cs.inputs()
    assert inp["ch_rev"][1] == pytest.approx(90 / 127) and inp["ch_cho"][5] == pytest.approx(44 / 127)


def test_gs_and_xg_system_effects():
    cs = ChannelState(1)
    cs.sysex(gs([0x40, 0x01, 0x30], 4))
    cs.sysex(gs([0x40, 0x01, 0x38], 2))
    cs.sysex(gs([0x40, 0x01, 0x33], 100))
    cs.sysex(bytes([0xF0, 0x43, 0x10, 0x4C, 0x02, 0x01, 0x00, 0x01, 0xF7]))
    cs.sysex(bytes([0xF0, 0x43, 0x10, 0x4C, 0x02, 0x01, 0x2C, 0x20, 0xF7]))
    assert cs.fx["gs_reverb"] == 4 and cs.fx["gs_chorus"] == 2
    assert cs.fx["reverb_level"] == 100 and cs.fx["xg_reverb"] == 1
    assert cs.fx["chorus_level"] == 0x20 and cs.fx["reverb_time"] is None


# ---- derived inputs ------------------------------------------------------------------

def test_inputs_follow_the_controllers():
    cs = ChannelState(1)
    cs.control(0, 7, 127)
    cs.control(1, 7, 0)
    cs.control(2, 11, 64)
    cs.control(3, 10, 0)
    cs.control(4, 10, 127)
    cs.control(5, 1, 127)
    cs.pressure[6] = 127
    cs.control(7, 93, 127)
    inp = cs.inputs()
    g = inp["ch_gain"]
    assert g[0] == 0.0
    assert g[1] == pytest.approx(960.0 + 960.0 * units.concave_table()[127], rel=1e-6)
    assert g[2] == pytest.approx(-400 * (np.log10(100 / 127) + np.log10(64 / 127)), rel=1e-5)
    assert inp["ch_pan"][3] == -500.0 and inp["ch_pan"][4] == pytest.approx(63 / 64 * 500.0)
    assert inp["ch_mod"][5] == 1.0 and inp["ch_press"][6] == 1.0 and inp["ch_cho"][7] == 1.0
    assert inp["ch_mod"][4] == 0.0 and inp["ch_press"][5] == 0.0 and inp["ch_cho"][6] == 0.0
    # volume only ever attenuates, and less with a higher controller value
    for num in (7, 11):
        cs2 = ChannelState(8)
        cs2.cc[:, num] = np.arange(128)
        gg = cs2.inputs()["ch_gain"].astype(np.float64)
        assert np.all(np.diff(gg) < 0) and np.all(gg >= 0.0)
