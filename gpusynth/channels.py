"""MIDI channel state for all channel groups as arrays [groups * 16] (host-only logic).

Derived per-channel inputs (what the kernels read every control tick):
  ch_pitch  cents   pitch bend x RPN 0 range + RPN 1 fine + RPN 2 coarse + master tuning
  ch_gain   cB      attenuation of CC7 and CC11 (concave, 960 cB each) + master volume
  ch_pan    0.1 %   CC10 -> -500..+500 (FluidSynth's amount: (cc - 64) / 64 * 500)
  ch_mod    0..1    CC1 / 127
  ch_press  0..1    channel pressure / 127
  ch_rev    0..1    CC91 / 127
  ch_cho    0..1    CC93 / 127
"""
from __future__ import annotations

import numpy as np

from . import units

# DirectMusic channel priorities (DAUD_STANDARD_VOICE_PRIORITY | per-channel offset)
PRIO_STANDARD = 0x80000000
_PRIO_OFFSETS = [0xE, 0xD, 0xC, 0xB, 0xA, 0x9, 0x8, 0x7, 0x6, 0xF, 0x5, 0x4, 0x3, 0x2, 0x1, 0x0]
DEFAULT_PRIORITY = np.array([PRIO_STANDARD | o for o in _PRIO_OFFSETS], dtype=np.uint32)

GM_RESET = bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7])
GM2_RESET = bytes([0xF0, 0x7E, 0x7F, 0x09, 0x03, 0xF7])
GS_RESET_PREFIX = bytes([0xF0, 0x41])          # + dev, 0x42, 0x12, 0x40, 0x00, 0x7F, 0x00, sum, F7
XG_RESET_PREFIX = bytes([0xF0, 0x43])          # + 1n, 0x4C, 0x00, 0x00, 0x7E, 0x00, F7
# System effects set by GS/XG SysEx (None: as the synth was opened; see gpusynth.effects):
# gs_reverb / gs_chorus: GS macro 0-7 (40 01 30 / 40 01 38), reverb_level / chorus_level:
# 0-127, 64 = as opened (GS 40 01 33 / 40 01 3A, XG 02 01 0C / 02 01 2C), reverb_time: GS
# 40 01 34 (64 = the macro's time), xg_reverb / xg_chorus: XG type MSB (02 01 00 / 02 01 20,
# 0 = no effect)
FX_DEFAULTS = {"gs_reverb": None, "gs_chorus": None, "reverb_level": None, "chorus_level": None,
               "reverb_time": None, "xg_reverb": None, "xg_chorus": None}
_GS_FX = {0x30: "gs_reverb", 0x33: "reverb_level", 0x34: "reverb_time", 0x38: "gs_chorus",
          0x3A: "chorus_level"}
_XG_FX = {0x00: "xg_reverb", 0x0C: "reverb_level", 0x20: "xg_chorus", 0x2C: "chorus_level"}


class ChannelState:
    def __init__(self, groups: int):
        self.groups = int(groups)
        n = self.n = self.groups * 16
        self.priority = np.tile(DEFAULT_PRIORITY, self.groups).astype(np.uint32)
        self.cc = np.zeros((n, 128), np.uint8)
        self.program = np.zeros(n, np.int32)
        self.bend = np.full(n, 8192, np.int32)
        self.bend_range = np.full(n, 200.0)          # cents
        self.fine = np.zeros(n)                      # cents (RPN 1)
        self.coarse = np.zeros(n)                    # semitones (RPN 2)
        self.pressure = np.zeros(n, np.uint8)
        self.poly_pressure = np.zeros((n, 128), np.uint8)
        self.rpn = np.full(n, 0x3FFF, np.int32)      # selected RPN (0x3FFF = null)
        self.rpn_is_nrpn = np.zeros(n, bool)
        self.master_tune = 0.0                       # cents
        self.master_atten = 0.0                      # cB
        self.drum = (np.arange(n) % 16) == 9
        self.reset_all()

    # ---- resets -------------------------------------------------------------------------
    def reset_all(self):
        self.cc[:] = 0
        self.cc[:, 7] = 100
        self.cc[:, 10] = 64
        self.cc[:, 11] = 127
        self.cc[:, 91] = 40
        self.cc[:, 101] = self.cc[:, 100] = 127
        self.program[:] = 0
        self.bend[:] = 8192
        self.bend_range[:] = 200.0
        self.fine[:] = 0.0
        self.coarse[:] = 0.0
        self.pressure[:] = 0
        self.poly_pressure[:] = 0
        self.rpn[:] = 0x3FFF
        self.rpn_is_nrpn[:] = False
        self.master_tune = 0.0
        self.master_tune_fine = 0.0                  # cents: the two parts of master tuning
        self.master_tune_coarse = 0.0
        self.master_atten = 0.0
        self.drum = (np.arange(self.n) % 16) == 9
        self.fx = dict(FX_DEFAULTS)

    def reset_controllers(self, c: int):
        """CC121 (GM recommended practice: keep volume, pan, bank, program, sends)."""
        self.cc[c, 1] = 0
        self.cc[c, 11] = 127
        self.cc[c, 64] = self.cc[c, 65] = self.cc[c, 66] = self.cc[c, 67] = 0
        self.cc[c, 101] = self.cc[c, 100] = 127
        self.cc[c, 99] = self.cc[c, 98] = 127
        self.bend[c] = 8192
        self.pressure[c] = 0
        self.poly_pressure[c] = 0
        self.rpn[c] = 0x3FFF

    # ---- controller messages -------------------------------------------------------------
    def control(self, c: int, num: int, val: int):
        """Apply a CC that changes only channel state. Returns nothing; the synth handles the
        voice-affecting ones (64, 66, 120, 121, 123-127) itself and calls this too."""
        self.cc[c, num] = val
        if num in (101, 100):
            self.rpn_is_nrpn[c] = False
            self.rpn[c] = (int(self.cc[c, 101]) << 7) | int(self.cc[c, 100])
        elif num in (99, 98):
            self.rpn_is_nrpn[c] = True
            self.rpn[c] = 0x3FFF
        elif num in (6, 38) and not self.rpn_is_nrpn[c]:
            msb, lsb = int(self.cc[c, 6]), int(self.cc[c, 38])
            r = int(self.rpn[c])
            if r == 0:                          # pitch bend range: semitones + cents
                self.bend_range[c] = msb * 100.0 + min(lsb, 99)
            elif r == 1:                        # fine tuning: 8192 = 0, +-100 cents
                self.fine[c] = (((msb << 7) | lsb) - 8192) / 8192.0 * 100.0
            elif r == 2:                        # coarse tuning: 64 = 0 semitones
                self.coarse[c] = msb - 64

    def bank(self, c):
        return int(self.cc[c, 0]) * 128 + int(self.cc[c, 32])

    # ---- SysEx ---------------------------------------------------------------------------
    def sysex(self, data: bytes) -> str | None:
        """Apply a SysEx message. Returns 'reset' for GM/GS/XG system resets (the synth then
        silences voices), else None. Unknown messages are ignored."""
        d = bytes(data)
        if len(d) < 4 or d[0] != 0xF0:
            return None
        if d[:2] == b"\xf0\x7e" and len(d) >= 5 and d[3] == 0x09 and d[4] in (1, 3):
            self.reset_all()
            return "reset"
        if d[:2] == b"\xf0\x7e" and len(d) >= 5 and d[3] == 0x09 and d[4] == 2:   # GM off
            return None
        if d[:2] == GS_RESET_PREFIX and len(d) >= 10 and d[3:9] == bytes([0x42, 0x12, 0x40, 0x00, 0x7F, 0x00]):
            self.reset_all()
            return "reset"
        if d[:2] == GS_RESET_PREFIX and len(d) >= 10 and d[3:5] == bytes([0x42, 0x12]) \
                and d[5] == 0x40 and (d[6] & 0xF0) == 0x10 and d[7] == 0x15:
            # GS "use for rhythm part": 40 1x 15 vv
            part = d[6] & 0x0F
            ch = 9 if part == 0 else (part - 1 if part <= 9 else part)
            self.drum[ch::16] = d[8] != 0
            return None
        if d[:2] == GS_RESET_PREFIX and len(d) >= 10 and d[3:5] == bytes([0x42, 0x12]):
            if d[5] == 0x40 and d[6] == 0x01 and d[7] in _GS_FX:       # system effects
                self.fx[_GS_FX[d[7]]] = d[8] & 0x7F
                return None
            if d[5] == 0x40 and (d[6] & 0xF0) == 0x10 and d[7] in (0x21, 0x22):
                # part chorus (21) / reverb (22) send level = CC93 / CC91
                part = d[6] & 0x0F
                ch = 9 if part == 0 else (part - 1 if part <= 9 else part)
                self.cc[ch::16, 93 if d[7] == 0x21 else 91] = d[8] & 0x7F
                return None
        if d[:2] == XG_RESET_PREFIX and len(d) >= 8 and (d[2] & 0xF0) == 0x10 and d[3] == 0x4C:
            if d[4] == 0x02 and d[5] == 0x01 and d[6] in _XG_FX:       # effect 1: reverb, chorus
                self.fx[_XG_FX[d[6]]] = d[7] & 0x7F
                return None
            if d[4] == 0x08 and d[6] in (0x12, 0x13) and d[5] < 16:     # multi part sends
                self.cc[d[5]::16, 93 if d[6] == 0x12 else 91] = d[7] & 0x7F
                return None
        if d[:2] == XG_RESET_PREFIX and len(d) >= 8 and d[3:7] == bytes([0x4C, 0x00, 0x00, 0x7E]):
            self.reset_all()
            return "reset"
        if d[:2] == b"\xf0\x7f" and len(d) >= 7 and d[3] == 0x04:
            lsb, msb = d[5] & 0x7F, d[6] & 0x7F
            v14 = (msb << 7) | lsb
            if d[4] == 0x01:       # master volume
                self.master_atten = float(units.gain_to_cb(max(v14, 1) / 16383.0))
            elif d[4] == 0x03:     # master fine tuning, 8192 = 0, +-100 cents
                self.master_tune_fine = (v14 - 8192) / 8192.0 * 100.0
                self.master_tune = self.master_tune_fine + self.master_tune_coarse
            elif d[4] == 0x04:     # master coarse tuning: msb 64 = 0 semitones
                self.master_tune_coarse = (msb - 64) * 100.0
                self.master_tune = self.master_tune_fine + self.master_tune_coarse
        return None

    # ---- derived inputs ------------------------------------------------------------------
    def inputs(self) -> dict:
        cc = self.cc
        ct = units.concave_table()
        return {
            "ch_pitch": ((self.bend - 8192) / 8192.0 * self.bend_range + self.fine
                         + self.coarse * 100.0 + self.master_tune).astype(np.float32),
            "ch_gain": ((960.0 * ct[cc[:, 7]] + 960.0 * ct[cc[:, 11]]) + self.master_atten).astype(np.float32),
            "ch_pan": ((cc[:, 10].astype(np.float64) - 64.0) / 64.0 * 500.0).astype(np.float32),
            "ch_mod": (cc[:, 1] / 127.0).astype(np.float32),
            "ch_press": (self.pressure / 127.0).astype(np.float32),
            "ch_rev": (cc[:, 91] / 127.0).astype(np.float32),
            "ch_cho": (cc[:, 93] / 127.0).astype(np.float32),
        }
