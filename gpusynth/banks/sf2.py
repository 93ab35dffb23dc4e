"""SoundFont 2.04 (SF2) and SF3 (Ogg Vorbis compressed samples) reader into the bank model.

``load_sf2(path) -> Bank`` (and ``load_sf2_bytes(data, path)`` for in-memory files).

Reading
- RIFF ``sfbk`` with LIST ``INFO`` (ifil, isng, INAM, irom, iver, ICRD, IENG, IPRD, ICOP, ICMT,
  ISFT -> ``bank.info``), LIST ``sdta`` (``smpl`` 16-bit, optional ``sm24`` low bytes used for
  ifil >= 2.04 when its size matches) and LIST ``pdta`` (the nine "hydra" chunks). The hydra
  records are read with numpy structured dtypes and the zone/generator logic is vectorised, so
  a 150 MB bank loads in about a second.
- Sample data becomes one float32 pool (16-bit / 32768, 24-bit / 8388608) holding every sample
  that some region uses, each followed by ``GUARD`` zeros. SF3 samples (sampleType bit 0x10) are
  decoded with ``soundfile`` (imported lazily); their shdr start/end are byte offsets into
  ``smpl`` and their loop points are relative to the decoded sample.

Zone semantics (SoundFont 2.04 sections 7, 8 and 9)
- The first zone of a preset/instrument without the terminal generator (``instrument`` /
  ``sampleID``) is its global zone; any later zone without it is ignored.
- Within a zone: ``keyRange`` counts only as the first generator, ``velRange`` only first or
  right after ``keyRange``; generators after the terminal one, unknown/unused/reserved ones and
  ones not allowed at the level (preset level: the sample address offsets, ``keynum``,
  ``velocity``, ``sampleModes``, ``exclusiveClass``, ``overridingRootKey``, ``sampleID``;
  instrument level: ``instrument``) are ignored. A duplicated generator: the last one counts.
- Instrument level: a local generator replaces the global one, which replaces the default.
  Preset level: local replaces global, and the result is *added* to the instrument value.
  Key/velocity ranges of the preset and instrument zone intersect (empty -> no region).
  Sums are clamped to the spec's ranges (section 8.1.3).
- Every (preset zone x instrument zone) pair becomes one REGION_DTYPE record.

Units and conventions (see REGION_FIELDS)
- ``atten`` = 0.4 * initialAttenuation (preset + instrument), clamped to 0..1440 cB: FluidSynth
  scales the generator by 0.4 (EMU8k/10k compatibility, its EMU_ATTENUATION_FACTOR) and so do we.
  Modulator amounts (``vel_atten`` 960 cB) are not scaled.
- ``tune`` = coarseTune*100 + fineTune + the sample's pitch correction (cents).
- ``ve_key_hold``/``ve_key_decay``/``me_key_hold``/``me_key_decay`` hold the keynumTo*EnvHold/
  Decay generator values as they are (tc per key); the engine applies
  ``time_tc + (60 - key) * value`` (spec: key 60 unchanged, positive values shorten higher keys).
- Sample offsets: start/end/loop = sample points + fine + 32768 * coarse offsets, then clamped
  as FluidSynth does: start/end into the sample (swapped if crossed; empty -> zone dropped),
  loop points into [start, end], swapped if crossed, and a loop shorter than 2 samples turns
  looping off. sampleModes 2 (unused) plays unlooped.
- Presets: wBank 128 -> ``Preset(bank=0, drum=True)``; melodic wBank b (0..127) ->
  ``bank = b * 128`` (the engine looks presets up by CC0*128 + CC32 and FluidSynth's default
  "gs" bank select uses CC0 as the SF2 bank); wBank 129..16383 is taken as an already combined
  14-bit bank number. Duplicate (bank, program, drum) presets: the first in the file wins.
- Default modulators (spec 8.4) become ``vel_atten`` 960, ``vel_fc`` 0 (see below), ``cc1_vib`` 50,
  ``press_vib`` 50, ``rev_cc`` 200, ``cho_cc`` 200; CC7/CC10/CC11/pitch wheel are applied by the
  engine globally. File modulators identical (source, destination, amount source, transform) to
  one of the modelled ones replace it at instrument level (local replaces global) and add at
  preset level; CC1 -> modLfoToPitch/Volume/FilterFc give ``cc1_ml_pitch/vol/fc``. Every other
  file modulator is ignored and counted in ``bank.info['sf2_ignored_modulators']``.
  Velocity -> cutoff: FluidSynth's default (amount -2400, amount source a positive velocity
  switch 0x0C02) is never applied: fluid_mod_get_value returns 0 for any modulator identical to
  it (since 1.x, "to stop forcing velocity based filtering"), so ``vel_fc`` defaults to 0 and a
  file modulator with that identity adds nothing; the SF2.04 form (amount source none) sets
  ``vel_fc`` (linear, every velocity). The SF2.01-style "turn it off" modulator many banks carry
  (amount 0, amount source 0x0D02, e.g. TimGM6mb and FluidR3_GM) adds nothing either. Unmatched
  modulators with amount 0 add nothing and are not counted as ignored.
- Filter gain: 1/sqrt(Q), Q = 10^((q/10 - 3.01)/20) (FluidSynth's filter_gain, SF2.01 p. 59:
  the gain drops by half the resonance height), as ``fatt`` = (q - 30.1)/2 cB: +1.5 dB at q = 0.
- Modulation envelope: its attack follows the convex curve (SF2 2.04 section 8.1.2 #26, as
  FluidSynth's fluid_convex), ``me_convex`` = 1 on every SF2 region.
- Linked stereo samples: like FluidSynth, each zone plays its own sample with the zone's pan;
  sample links are not followed.

Errors
- Structure errors (bad RIFF nesting, chunk sizes past their container, record sizes, missing
  hydra chunks, non-monotonic or out-of-range bag/generator/modulator indices, ROM samples used
  by a zone, too large expansions) raise ``BankError(path, chunk, reason)``.
- Zone level problems FluidSynth ignores are dropped and counted in ``bank.info``:
  ``sf2_dropped_zones`` (preset zones naming a missing instrument, instrument zones naming a
  missing or invalid sample (bad start/end, rate 0, undecodable Ogg), empty sample ranges) and
  ``sf2_ignored_zones`` (non-first zones without the terminal generator); presets with a
  program > 127 or an unusable bank number are dropped (``sf2_dropped_presets``), repeated
  (bank, program, drum) slots counted in ``sf2_duplicate_presets``.
- Only samples some region uses enter the pool (unused and ROM-less unused headers cost
  nothing); a ROM sample that a zone uses is refused with BankError.
"""
from __future__ import annotations

import io
import os

import numpy as np

from .model import (GUARD, MAX_REGIONS_PER_PRESET, Bank, BankError, Preset, new_regions,
                    preset_cap_reason, read_bank_file)

# ---------------------------------------------------------------------------------------------
# generator numbers (SF2.04 section 8.1.2)
START_OFS, END_OFS, STARTLOOP_OFS, ENDLOOP_OFS, START_COARSE = 0, 1, 2, 3, 4
MODLFO_TO_PITCH, VIBLFO_TO_PITCH, MODENV_TO_PITCH, FILTER_FC, FILTER_Q = 5, 6, 7, 8, 9
MODLFO_TO_FC, MODENV_TO_FC, END_COARSE, MODLFO_TO_VOL = 10, 11, 12, 13
CHORUS_SEND, REVERB_SEND, PAN = 15, 16, 17
DELAY_MODLFO, FREQ_MODLFO, DELAY_VIBLFO, FREQ_VIBLFO = 21, 22, 23, 24
DELAY_MODENV, ATTACK_MODENV, HOLD_MODENV, DECAY_MODENV, SUSTAIN_MODENV, RELEASE_MODENV = range(25, 31)
KEY_TO_MODENV_HOLD, KEY_TO_MODENV_DECAY = 31, 32
DELAY_VOLENV, ATTACK_VOLENV, HOLD_VOLENV, DECAY_VOLENV, SUSTAIN_VOLENV, RELEASE_VOLENV = range(33, 39)
KEY_TO_VOLENV_HOLD, KEY_TO_VOLENV_DECAY = 39, 40
INSTRUMENT, KEY_RANGE, VEL_RANGE, STARTLOOP_COARSE, KEYNUM, VELOCITY = 41, 43, 44, 45, 46, 47
INITIAL_ATTENUATION, ENDLOOP_COARSE, COARSE_TUNE, FINE_TUNE, SAMPLE_ID = 48, 50, 51, 52, 53
SAMPLE_MODES, SCALE_TUNING, EXCLUSIVE_CLASS, OVERRIDING_ROOT_KEY = 54, 56, 57, 58
NGEN = 61   # 0..60 (60 = endOper)

_UNUSED = {14, 18, 19, 20, 42, 49, 55, 59, 60}
_INST_ONLY = {START_OFS, END_OFS, STARTLOOP_OFS, ENDLOOP_OFS, START_COARSE, END_COARSE,
              STARTLOOP_COARSE, ENDLOOP_COARSE, KEYNUM, VELOCITY, SAMPLE_MODES, EXCLUSIVE_CLASS,
              OVERRIDING_ROOT_KEY, SAMPLE_ID}
_FULL_RANGE = 127 << 8   # keyRange/velRange amount for 0..127 (lo byte, hi byte)

_INST_ALLOWED = np.ones(NGEN, bool)
_PRESET_ALLOWED = np.ones(NGEN, bool)
for _g in _UNUSED:
    _INST_ALLOWED[_g] = _PRESET_ALLOWED[_g] = False
_INST_ALLOWED[INSTRUMENT] = False
for _g in _INST_ONLY:
    _PRESET_ALLOWED[_g] = False

# instrument-level defaults (section 8.1.3); preset-level defaults are 0 (additive)
_INST_DEFAULT = np.zeros(NGEN, np.int64)
for _g in (DELAY_MODLFO, DELAY_VIBLFO, DELAY_MODENV, ATTACK_MODENV, HOLD_MODENV, DECAY_MODENV,
           RELEASE_MODENV, DELAY_VOLENV, ATTACK_VOLENV, HOLD_VOLENV, DECAY_VOLENV, RELEASE_VOLENV):
    _INST_DEFAULT[_g] = -12000
_INST_DEFAULT[FILTER_FC] = 13500
_INST_DEFAULT[SCALE_TUNING] = 100
_INST_DEFAULT[KEYNUM] = _INST_DEFAULT[VELOCITY] = _INST_DEFAULT[OVERRIDING_ROOT_KEY] = -1
_INST_DEFAULT[KEY_RANGE] = _INST_DEFAULT[VEL_RANGE] = _FULL_RANGE
_PRESET_DEFAULT = np.zeros(NGEN, np.int64)
_PRESET_DEFAULT[KEY_RANGE] = _PRESET_DEFAULT[VEL_RANGE] = _FULL_RANGE

# valid ranges of the summed values (section 8.1.3)
_CLAMP = {
    MODLFO_TO_PITCH: (-12000, 12000), VIBLFO_TO_PITCH: (-12000, 12000),
    MODENV_TO_PITCH: (-12000, 12000), FILTER_FC: (1500, 13500), FILTER_Q: (0, 960),
    MODLFO_TO_FC: (-12000, 12000), MODENV_TO_FC: (-12000, 12000), MODLFO_TO_VOL: (-960, 960),
    CHORUS_SEND: (0, 1000), REVERB_SEND: (0, 1000), PAN: (-500, 500),
    DELAY_MODLFO: (-12000, 5000), FREQ_MODLFO: (-16000, 4500),
    DELAY_VIBLFO: (-12000, 5000), FREQ_VIBLFO: (-16000, 4500),
    DELAY_MODENV: (-12000, 5000), ATTACK_MODENV: (-12000, 8000), HOLD_MODENV: (-12000, 5000),
    DECAY_MODENV: (-12000, 8000), SUSTAIN_MODENV: (0, 1000), RELEASE_MODENV: (-12000, 8000),
    KEY_TO_MODENV_HOLD: (-1200, 1200), KEY_TO_MODENV_DECAY: (-1200, 1200),
    DELAY_VOLENV: (-12000, 5000), ATTACK_VOLENV: (-12000, 8000), HOLD_VOLENV: (-12000, 5000),
    DECAY_VOLENV: (-12000, 8000), SUSTAIN_VOLENV: (0, 1440), RELEASE_VOLENV: (-12000, 8000),
    KEY_TO_VOLENV_HOLD: (-1200, 1200), KEY_TO_VOLENV_DECAY: (-1200, 1200),
    COARSE_TUNE: (-120, 120), FINE_TUNE: (-99, 99), SCALE_TUNING: (0, 1200),
}

# region field <- generator (summed preset + instrument value, clamped)
_GEN_FIELDS = [
    ("pan", PAN), ("fc", FILTER_FC), ("q", FILTER_Q),
    ("ve_delay", DELAY_VOLENV), ("ve_attack", ATTACK_VOLENV), ("ve_hold", HOLD_VOLENV),
    ("ve_decay", DECAY_VOLENV), ("ve_sustain", SUSTAIN_VOLENV), ("ve_release", RELEASE_VOLENV),
    ("ve_key_hold", KEY_TO_VOLENV_HOLD), ("ve_key_decay", KEY_TO_VOLENV_DECAY),
    ("me_delay", DELAY_MODENV), ("me_attack", ATTACK_MODENV), ("me_hold", HOLD_MODENV),
    ("me_decay", DECAY_MODENV), ("me_sustain", SUSTAIN_MODENV), ("me_release", RELEASE_MODENV),
    ("me_key_hold", KEY_TO_MODENV_HOLD), ("me_key_decay", KEY_TO_MODENV_DECAY),
    ("me_pitch", MODENV_TO_PITCH), ("me_fc", MODENV_TO_FC),
    ("ml_delay", DELAY_MODLFO), ("ml_freq", FREQ_MODLFO), ("ml_pitch", MODLFO_TO_PITCH),
    ("ml_fc", MODLFO_TO_FC), ("ml_vol", MODLFO_TO_VOL),
    ("vl_delay", DELAY_VIBLFO), ("vl_freq", FREQ_VIBLFO), ("vl_pitch", VIBLFO_TO_PITCH),
    ("rev_send", REVERB_SEND), ("cho_send", CHORUS_SEND),
    ("scale_tuning", SCALE_TUNING),
]

EMU_ATTENUATION_FACTOR = 0.4

# ---------------------------------------------------------------------------------------------
# modulators (section 8.2 / 8.4): source word = index | CC<<7 | D<<8 | P<<9 | type<<10
SRC_VELOCITY_NEG_CONCAVE = 0x0502
SRC_VELOCITY_NEG_LINEAR = 0x0102
SRC_VELOCITY_SWITCH = 0x0C02
SRC_PRESSURE = 0x000D
SRC_CC1 = 0x0081
SRC_CC91 = 0x00DB
SRC_CC93 = 0x00DD

# modulated region fields, their default (instrument-level) amounts and the modulator identities
# (source, destination, amount source, transform) that map onto each
MOD_FIELDS = ["vel_atten", "vel_fc", "cc1_vib", "press_vib", "cc1_ml_pitch", "cc1_ml_vol",
              "cc1_ml_fc", "rev_cc", "cho_cc"]
# vel_fc's default is 0: FluidSynth never applies its default velocity->cutoff modulator (nor
# any modulator identical to it, see _MOD_NULL), whatever the amount
_MOD_DEFAULT = np.array([960, 0, 50, 50, 0, 0, 0, 200, 200], np.int64)
_MOD_MAP = {
    (SRC_VELOCITY_NEG_CONCAVE, INITIAL_ATTENUATION, 0, 0): 0,
    (SRC_VELOCITY_NEG_LINEAR, FILTER_FC, 0, 0): 1,
    (SRC_CC1, VIBLFO_TO_PITCH, 0, 0): 2,
    (SRC_PRESSURE, VIBLFO_TO_PITCH, 0, 0): 3,
    (SRC_CC1, MODLFO_TO_PITCH, 0, 0): 4,
    (SRC_CC1, MODLFO_TO_VOL, 0, 0): 5,
    (SRC_CC1, MODLFO_TO_FC, 0, 0): 6,
    (SRC_CC91, REVERB_SEND, 0, 0): 7,
    (SRC_CC93, CHORUS_SEND, 0, 0): 8,
}
# FluidSynth's default velocity->cutoff modulator (src velocity negative linear, amount source
# a positive velocity switch): fluid_mod_get_value returns 0 for any modulator identical to it
# ("to stop forcing velocity based filtering"), so one in a file contributes nothing
_MOD_NULL = {(SRC_VELOCITY_NEG_LINEAR, FILTER_FC, SRC_VELOCITY_SWITCH, 0)}
# defaults the engine applies globally: a file repeating them unchanged loses nothing
_GLOBAL_DEFAULT_MODS = {
    (0x0587, INITIAL_ATTENUATION, 0, 0, 960),   # CC7 -> attenuation
    (0x058B, INITIAL_ATTENUATION, 0, 0, 960),   # CC11 -> attenuation
    (0x028A, PAN, 0, 0, 500),                   # CC10 -> pan (FluidSynth uses 500, spec 1000)
}

# ---------------------------------------------------------------------------------------------
# hydra record layouts (section 7)
_PHDR = np.dtype([("name", "S20"), ("preset", "<u2"), ("bank", "<u2"), ("bag", "<u2"),
                  ("library", "<u4"), ("genre", "<u4"), ("morphology", "<u4")])
_BAG = np.dtype([("gen", "<u2"), ("mod", "<u2")])
_MOD = np.dtype([("src", "<u2"), ("dest", "<u2"), ("amount", "<i2"), ("amtsrc", "<u2"),
                 ("trans", "<u2")])
_GEN = np.dtype([("oper", "<u2"), ("amount", "<u2")])
_INST = np.dtype([("name", "S20"), ("bag", "<u2")])
_SHDR = np.dtype([("name", "S20"), ("start", "<u4"), ("end", "<u4"), ("loop_start", "<u4"),
                  ("loop_end", "<u4"), ("rate", "<u4"), ("pitch", "u1"), ("corr", "i1"),
                  ("link", "<u2"), ("type", "<u2")])
assert (_PHDR.itemsize, _BAG.itemsize, _MOD.itemsize, _GEN.itemsize, _INST.itemsize,
        _SHDR.itemsize) == (38, 4, 10, 4, 22, 46)
_HYDRA = [("phdr", _PHDR), ("pbag", _BAG), ("pmod", _MOD), ("pgen", _GEN), ("inst", _INST),
          ("ibag", _BAG), ("imod", _MOD), ("igen", _GEN), ("shdr", _SHDR)]

_INFO_KEYS = {b"INAM": "name", b"isng": "engine", b"irom": "rom", b"ICRD": "date",
              b"IENG": "engineers", b"IPRD": "product", b"ICOP": "copyright",
              b"ICMT": "comment", b"ISFT": "software"}

SAMPLE_OGG = 0x10
SAMPLE_ROM = 0x8000

MAX_REGIONS = 1_000_000            # a bank expanding past this is refused
MAX_DECODED_FRAMES = 1 << 28       # SF3: per sample and in total

# Set True (tests) to let unexpected internal exceptions propagate instead of being wrapped in
# a BankError; production code always answers malformed input with BankError.
STRICT_INTERNAL = False


def load_sf2(path) -> Bank:
    """Load an SF2 or SF3 file into a validated Bank. Raises BankError."""
    return load_sf2_bytes(read_bank_file(path), str(path))


def load_sf2_bytes(data, path="<memory>") -> Bank:
    """Load an SF2/SF3 held in memory (bytes-like); ``path`` names it in errors."""
    loader = _Loader(str(path), memoryview(data).cast("B"))
    try:
        return loader.load()
    except BankError:
        raise
    except (MemoryError, RecursionError):
        raise
    except Exception as e:  # noqa: BLE001 - hostile input must surface as BankError
        if STRICT_INTERNAL:
            raise
        raise BankError(loader.path, loader.where,
                        f"malformed data ({type(e).__name__}: {e})") from e


def _cstr(b) -> str:
    b = bytes(b)
    i = b.find(b"\0")
    if i >= 0:
        b = b[:i]
    return b.decode("latin-1").strip()


class _Loader:
    def __init__(self, path, buf):
        self.path = path
        self.buf = buf
        self.where = "RIFF"
        self.info = {}
        self.counts = {"sf2_ignored_modulators": 0, "sf2_dropped_zones": 0,
                       "sf2_ignored_zones": 0, "sf2_duplicate_presets": 0,
                       "sf2_dropped_presets": 0}

    def err(self, chunk, reason):
        return BankError(self.path, chunk, reason)

    # ---- RIFF -----------------------------------------------------------------------------
    def _u32(self, off):
        return int.from_bytes(self.buf[off:off + 4], "little")

    def _chunks(self, start, end, parent):
        """(id, data offset, size) of the chunks in [start, end)."""
        off = start
        while end - off >= 8:
            cid = bytes(self.buf[off:off + 4])
            size = self._u32(off + 4)
            if off + 8 + size > end:
                printable = all(32 <= c < 127 for c in cid)
                raise self.err(cid.decode("ascii") if printable else parent,
                               f"chunk {cid!r} size {size} runs past the end of {parent} "
                               f"({end - off - 8} bytes left; truncated file?)")
            yield cid, off + 8, size
            off += 8 + size + (size & 1)

    def _lists(self):
        buf = self.buf
        if len(buf) < 12 or bytes(buf[:4]) != b"RIFF":
            raise self.err("RIFF", "not a RIFF file")
        if bytes(buf[8:12]) != b"sfbk":
            raise self.err("RIFF", f"form type {bytes(buf[8:12])!r} is not 'sfbk'")
        riff_end = min(8 + self._u32(4), len(buf))
        lists = {}
        for cid, off, size in self._chunks(12, riff_end, "RIFF"):
            if cid == b"LIST" and size >= 4:
                kind = bytes(buf[off:off + 4])
                if kind not in lists:
                    lists[kind] = (off + 4, off + size)
        return lists

    # ---- main -----------------------------------------------------------------------------
    def load(self) -> Bank:
        lists = self._lists()
        self.where = "INFO"
        self._read_info(lists.get(b"INFO"))
        self.where = "pdta"
        if b"pdta" not in lists:
            raise self.err("pdta", "missing pdta LIST (no presets, instruments or samples)")
        hydra = self._read_hydra(*lists[b"pdta"])
        self.where = "sdta"
        smpl_off, smpl_size, sm24_off = self._read_sdta(lists.get(b"sdta"))
        self.smpl_off, self.smpl_size, self.sm24_off = smpl_off, smpl_size, sm24_off
        self.where = "pdta"
        bank = self._build(hydra)
        bank.info.update(self.info)
        bank.info.update(self.counts)
        self.where = "regions"
        return bank.validate()

    def _read_info(self, span):
        info = self.info
        info["format"] = "SF2"
        if span is None:
            return
        for cid, off, size in self._chunks(span[0], span[1], "INFO"):
            if cid == b"ifil":
                if size < 4:
                    raise self.err("ifil", f"size {size}, expected 4")
                major = int.from_bytes(self.buf[off:off + 2], "little")
                minor = int.from_bytes(self.buf[off + 2:off + 4], "little")
                if major < 2:
                    raise self.err("ifil", f"SoundFont version {major}.{minor:02d} is not "
                                           "supported (needs 2.x or 3.x)")
                info["version"] = f"{major}.{minor:02d}"
                info["version_tuple"] = (major, minor)
                if major > 3:
                    info["version_warning"] = f"unknown SoundFont version {major}.{minor:02d}"
            elif cid == b"iver" and size >= 4:
                major = int.from_bytes(self.buf[off:off + 2], "little")
                minor = int.from_bytes(self.buf[off + 2:off + 4], "little")
                info["rom_version"] = f"{major}.{minor:02d}"
            elif cid in _INFO_KEYS:
                info[_INFO_KEYS[cid]] = _cstr(self.buf[off:off + min(size, 65536)])

    def _read_sdta(self, span):
        smpl_off = smpl_size = 0
        sm24_off = None
        sm24_size = 0
        if span is not None:
            for cid, off, size in self._chunks(span[0], span[1], "sdta"):
                if cid == b"smpl" and not smpl_size:
                    smpl_off, smpl_size = off, size
                elif cid == b"sm24" and sm24_off is None:
                    sm24_off, sm24_size = off, size
        n = smpl_size // 2
        if sm24_off is not None:
            ver = self.info.get("version_tuple", (2, 0))
            want = n + (n & 1)
            if ver < (2, 4) or sm24_size not in (n, want):
                self.info["sm24_ignored"] = True
                sm24_off = None
            else:
                self.info["bits"] = 24
        return smpl_off, smpl_size, sm24_off

    def _read_hydra(self, start, end):
        found = {}
        for cid, off, size in self._chunks(start, end, "pdta"):
            k = cid.decode("latin-1")
            if k not in found:
                found[k] = (off, size)
        out = {}
        for name, dt in _HYDRA:
            if name not in found:
                raise self.err(name, f"missing {name} chunk in pdta")
            off, size = found[name]
            if size % dt.itemsize:
                raise self.err(name, f"size {size} is not a multiple of the "
                                     f"{dt.itemsize}-byte record")
            n = size // dt.itemsize
            if n < 1 and name not in ("pmod", "imod"):
                raise self.err(name, "no records (the terminal record is missing)")
            out[name] = np.frombuffer(self.buf, dtype=dt, count=n, offset=off)
        return out

    # ---- zones ----------------------------------------------------------------------------
    def _check_index(self, chunk, idx, limit, what):
        """idx: uint16 index array; non-decreasing and <= limit."""
        idx = idx.astype(np.int64)
        if idx.size > 1 and np.any(np.diff(idx) < 0):
            raise self.err(chunk, f"{what} indices are not monotonic")
        if idx.size and idx[-1] > limit:
            raise self.err(chunk, f"{what} index {int(idx[-1])} out of range (max {limit})")
        return idx

    def _zones(self, heads, hchunk, bags, bchunk, gens, gchunk, mods, mchunk, terminal, allowed,
               default):
        """Resolve one level (preset or instrument).

        Returns (owner, term, eff, meff, mset) over the *local* zones: owner index, terminal
        amount (instrument / sample id), effective generator values (int64 [n, NGEN], local over
        global over `default`), modulator amounts (int64 [n, len(MOD_FIELDS)], local over
        global) and whether either zone set each modulator."""
        nh = len(heads) - 1                     # the last header is the terminal record
        nbag = len(bags)
        hb = self._check_index(hchunk, heads["bag"], nbag - 1, "bag")
        gidx = self._check_index(bchunk, bags["gen"], len(gens), "generator")
        midx = self._check_index(bchunk, bags["mod"], len(mods), "modulator")
        # zones (the last bag is the terminal one); bags past the terminal header's index are
        # unreachable, so a hostile bag chunk cannot inflate the tables below
        nz = int(hb[-1]) if hb.size else 0

        # generators -> per zone table, vectorised
        g0, g1 = int(gidx[0]), int(gidx[nz]) if nz > 0 else int(gidx[0])
        cnt = np.diff(gidx[:nz + 1])
        rec = gens[g0:g1]
        zone = np.repeat(np.arange(nz), cnt)
        total = len(rec)
        pos = np.arange(total) - (gidx[zone] - g0)
        oper = rec["oper"].astype(np.int64)
        uamt = rec["amount"].astype(np.int64)
        samt = rec["amount"].view("<i2").astype(np.int64)
        is_term = oper == terminal
        big = np.iinfo(np.int64).max
        term_pos = np.full(nz, big, np.int64)
        np.minimum.at(term_pos, zone[is_term], pos[is_term])
        has_term = term_pos < big
        term = np.full(nz, -1, np.int64)
        first_term = is_term & (pos == term_pos[zone])
        term[zone[first_term]] = uamt[first_term]

        known = oper < NGEN
        valid = known & allowed[np.where(known, oper, 0)] & (pos <= term_pos[zone])
        valid &= (oper != KEY_RANGE) | (pos == 0)
        prev_key = np.zeros(total, bool)
        if total > 1:
            prev_key[1:] = oper[:-1] == KEY_RANGE
        valid &= (oper != VEL_RANGE) | (pos == 0) | ((pos == 1) & prev_key)
        is_range = (oper == KEY_RANGE) | (oper == VEL_RANGE)
        amt = np.where(is_range, uamt, samt)

        tab = np.zeros((nz + 1, NGEN), np.int64)      # row nz: an empty zone
        tset = np.zeros((nz + 1, NGEN), bool)
        vz, vo, va = zone[valid], oper[valid], amt[valid]
        key = vz * NGEN + vo
        _, ridx = np.unique(key[::-1], return_index=True)   # last occurrence wins
        sel = len(key) - 1 - ridx
        tab[vz[sel], vo[sel]] = va[sel]
        tset[vz[sel], vo[sel]] = True

        # modulators -> per zone table of the modelled amounts
        nm = len(MOD_FIELDS)
        mtab = np.zeros((nz + 1, nm), np.int64)
        mset = np.zeros((nz + 1, nm), bool)
        if nz > 0:
            m0, m1 = int(midx[0]), int(midx[nz])
            mrec = mods[m0:m1]
            mzone = np.repeat(np.arange(nz), np.diff(midx[:nz + 1]))
            srcs, dests, amts = mrec["src"].tolist(), mrec["dest"].tolist(), mrec["amount"].tolist()
            asrcs, transs = mrec["amtsrc"].tolist(), mrec["trans"].tolist()
            ignored = 0
            is_inst = terminal == SAMPLE_ID
            for z, s, d, a, q, t in zip(mzone.tolist(), srcs, dests, amts, asrcs, transs):
                col = _MOD_MAP.get((s, d, q, t))
                if col is None:
                    if (s, d, q, t) in _MOD_NULL:
                        continue
                    # a modulator matching none of ours adds its own contribution: one with
                    # amount 0 adds nothing, one repeating a global default changes nothing
                    if a != 0 and not (is_inst and (s, d, q, t, a) in _GLOBAL_DEFAULT_MODS):
                        ignored += 1
                    continue
                if not mset[z, col]:          # identical modulator twice in a zone: first wins
                    mtab[z, col] = a
                    mset[z, col] = True
            self.counts["sf2_ignored_modulators"] += ignored

        # zones -> owners, global zones
        hb_all = hb[:nh + 1]
        zcnt = np.diff(hb_all)
        zstart = hb_all[:-1]
        owner_of_zone = np.full(nz, -1, np.int64)
        zz = np.arange(int(hb_all[0]), int(hb_all[-1]))
        owner_of_zone[zz] = np.repeat(np.arange(nh), zcnt)
        glob = np.full(nh, nz, np.int64)       # nz: the empty row
        firsts = zstart[zcnt > 0]
        gl_first = firsts[~has_term[firsts]] if firsts.size else firsts
        glob[owner_of_zone[gl_first]] = gl_first
        is_first = np.zeros(nz, bool)
        is_first[firsts] = True
        owned = owner_of_zone >= 0
        self.counts["sf2_ignored_zones"] += int(np.sum(owned & ~has_term & ~is_first))
        local = np.flatnonzero(owned & has_term)

        owner = owner_of_zone[local]
        g = glob[owner]
        eff = np.where(tset[local], tab[local], np.where(tset[g], tab[g], default[None, :]))
        meff = np.where(mset[local], mtab[local], mtab[g])
        meff_set = mset[local] | mset[g]
        return owner, term[local], eff, meff, meff_set

    # ---- flatten --------------------------------------------------------------------------
    def _build(self, h) -> Bank:
        phdr, inst, shdr = h["phdr"], h["inst"], h["shdr"]
        self.where = "pbag"
        p_owner, p_inst, p_eff, p_meff, p_mset = self._zones(
            phdr, "phdr", h["pbag"], "pbag", h["pgen"], "pgen", h["pmod"], "pmod",
            INSTRUMENT, _PRESET_ALLOWED, _PRESET_DEFAULT)
        self.where = "ibag"
        i_owner, i_sid, i_eff, i_meff, i_mset = self._zones(
            inst, "inst", h["ibag"], "ibag", h["igen"], "igen", h["imod"], "imod",
            SAMPLE_ID, _INST_ALLOWED, _INST_DEFAULT)
        self.where = "pdta"
        n_inst = len(inst) - 1
        n_samples = len(shdr) - 1
        # instrument-level modulators replace the defaults
        i_mod = np.where(i_mset, i_meff, _MOD_DEFAULT[None, :])
        p_mod = np.where(p_mset, p_meff, 0)

        # preset zone x instrument zone pairs
        ok = (p_inst >= 0) & (p_inst < n_inst)
        self.counts["sf2_dropped_zones"] += int(np.sum(~ok))
        pz = np.flatnonzero(ok)
        order = np.argsort(i_owner, kind="stable")
        n_loc = np.bincount(i_owner, minlength=n_inst)[:n_inst] if n_inst > 0 else \
            np.zeros(0, np.int64)
        first_loc = np.concatenate([[0], np.cumsum(n_loc)])[:-1] if n_inst > 0 else n_loc
        cnt = n_loc[p_inst[pz]] if n_inst > 0 else np.zeros(0, np.int64)
        total = int(cnt.sum())
        if total > MAX_REGIONS:
            raise self.err("pdta", f"bank expands to {total} regions (limit {MAX_REGIONS})")
        pair_p = np.repeat(pz, cnt)
        offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        pair_i = order[np.repeat(first_loc[p_inst[pz]], cnt) + offs] if total else \
            np.zeros(0, np.int64)

        # ranges intersect
        def rng(col):
            iv, pv = i_eff[pair_i, col], p_eff[pair_p, col]
            lo = np.maximum(iv & 0xFF, pv & 0xFF)
            hi = np.minimum(np.minimum(iv >> 8, pv >> 8), 127)
            return lo, hi
        klo, khi = rng(KEY_RANGE)
        vlo, vhi = rng(VEL_RANGE)
        keep = (klo <= khi) & (vlo <= vhi)

        # samples
        sid = i_sid[pair_i]
        good_sid = (sid >= 0) & (sid < n_samples)
        self.counts["sf2_dropped_zones"] += int(np.sum(keep & ~good_sid))
        keep &= good_sid
        per_preset = np.bincount(p_owner[pair_p[keep]], minlength=len(phdr))
        if per_preset.size and per_preset.max() > MAX_REGIONS_PER_PRESET:
            p = int(np.argmax(per_preset))
            rec = phdr[p]
            raise self.err("pdta", preset_cap_reason(int(rec["bank"]), int(rec["preset"]),
                                                     _cstr(rec["name"]), int(per_preset[p])))
        used = np.unique(sid[keep])
        samples = self._load_samples(shdr, used)
        slen = np.zeros(n_samples + 1, np.int64)
        sls = np.zeros(n_samples + 1, np.int64)
        sle = np.zeros(n_samples + 1, np.int64)
        spos = np.zeros(n_samples + 1, np.int64)
        sok = np.zeros(n_samples + 1, bool)
        for s, (pos, ln, ls, le) in samples["info"].items():
            spos[s], slen[s], sls[s], sle[s], sok[s] = pos, ln, ls, le, True
        sidc = np.where(good_sid, sid, n_samples)
        bad_sample = keep & ~sok[sidc]
        self.counts["sf2_dropped_zones"] += int(np.sum(bad_sample))
        keep &= ~bad_sample

        # sample offsets (instrument level only)
        def ig(col):
            return i_eff[pair_i, col]
        ln = slen[sidc]
        start = ig(START_OFS) + 32768 * ig(START_COARSE)
        end = ln + ig(END_OFS) + 32768 * ig(END_COARSE)
        start, end = np.clip(start, 0, ln), np.clip(end, 0, ln)
        start, end = np.minimum(start, end), np.maximum(start, end)
        empty = keep & (end <= start)
        self.counts["sf2_dropped_zones"] += int(np.sum(empty))
        keep &= ~empty
        ls = sls[sidc] + ig(STARTLOOP_OFS) + 32768 * ig(STARTLOOP_COARSE)
        le = sle[sidc] + ig(ENDLOOP_OFS) + 32768 * ig(ENDLOOP_COARSE)
        ls, le = np.clip(ls, start, end), np.clip(le, start, end)
        ls, le = np.minimum(ls, le), np.maximum(ls, le)
        modes = ig(SAMPLE_MODES) & 3
        mode = np.where(modes == 2, 0, modes)
        mode = np.where(le - ls < 2, 0, mode)

        # assemble regions
        k = np.flatnonzero(keep)
        n = len(k)
        regs = new_regions(n)
        pi, ii, sk = pair_p[k], pair_i[k], sidc[k]
        base = spos[sk]
        regs["key_lo"], regs["key_hi"] = klo[k], khi[k]
        regs["vel_lo"], regs["vel_hi"] = vlo[k], vhi[k]
        regs["start"], regs["end"] = base + start[k], base + end[k]
        regs["loop_start"], regs["loop_end"] = base + ls[k], base + le[k]
        regs["loop_mode"] = mode[k]
        regs["sample_rate"] = shdr["rate"][sk].astype(np.float64) if n else 0.0

        def summed(col):
            v = i_eff[ii, col] + p_eff[pi, col]
            lim = _CLAMP.get(col)
            return np.clip(v, *lim) if lim else v

        for field, col in _GEN_FIELDS:
            regs[field] = summed(col)
        spitch = shdr["pitch"][sk].astype(np.int64)
        spitch = np.where(spitch <= 127, spitch, 60)
        ork = i_eff[ii, OVERRIDING_ROOT_KEY]
        regs["root_key"] = np.where((ork >= 0) & (ork <= 127), ork, spitch)
        regs["tune"] = (summed(COARSE_TUNE) * 100 + summed(FINE_TUNE)
                        + shdr["corr"][sk].astype(np.int64))
        for field, col in (("fixed_key", KEYNUM), ("fixed_vel", VELOCITY)):
            v = i_eff[ii, col]
            regs[field] = np.where((v >= 0) & (v <= 127), v, -1)
        regs["excl_class"] = np.clip(i_eff[ii, EXCLUSIVE_CLASS], 0, 127)
        att = EMU_ATTENUATION_FACTOR * (i_eff[ii, INITIAL_ATTENUATION]
                                        + p_eff[pi, INITIAL_ATTENUATION]).astype(np.float64)
        regs["atten"] = np.clip(att, 0.0, 1440.0)
        mods = i_mod[ii] + p_mod[pi]
        for j, field in enumerate(MOD_FIELDS):
            regs[field] = mods[:, j]
        # SF2 2.04 section 8.1.2 #26: the modulation envelope's attack is convex (FluidSynth
        # applies fluid_convex to it, for pitch and cutoff alike)
        regs["me_convex"] = 1
        # the filter's gain (FluidSynth's fluid_iir_filter_set_q, SF2.01 p. 59: reduce the gain
        # by half the resonance height): 1/sqrt(Q) with Q = 10^((q/10 - 3.01)/20), so +1.5 dB
        # at q = 0, -8 dB at q = 19 dB
        regs["fatt"] = (np.clip(regs["q"].astype(np.float64), 0.0, 960.0) - 30.1) / 2.0

        # presets
        preset_of_region = p_owner[pi]
        presets = []
        seen = set()
        n_presets = len(phdr) - 1
        if n:
            ordr = np.argsort(preset_of_region, kind="stable")
            bounds = np.searchsorted(preset_of_region[ordr], np.arange(n_presets + 1))
        for p in range(n_presets):
            rec = phdr[p]
            wbank, prog = int(rec["bank"]), int(rec["preset"])
            drum = wbank == 128
            if drum:
                bnum = 0
            elif wbank < 128:
                bnum = wbank * 128
            else:
                bnum = wbank
            if prog > 127 or bnum > 16383:
                self.counts["sf2_dropped_presets"] += 1
                continue
            if (bnum, prog, drum) in seen:
                self.counts["sf2_duplicate_presets"] += 1
                continue
            seen.add((bnum, prog, drum))
            idx = (ordr[bounds[p]:bounds[p + 1]] if n else np.zeros(0, np.int64)).astype(np.int32)
            presets.append(Preset(bank=bnum, program=prog, name=_cstr(rec["name"]),
                                  regions=np.sort(idx), drum=drum))
        presets.sort(key=lambda q: (q.drum, q.bank, q.program))
        name = self.info.get("name") or os.path.splitext(os.path.basename(self.path))[0]
        return Bank(name=name, pool=samples["pool"], regions=regs, presets=presets,
                    path=self.path, info={})

    # ---- samples --------------------------------------------------------------------------
    def _load_samples(self, shdr, used):
        """Pool of the used samples. Returns {'pool', 'info': {sid: (pos, len, ls, le)}}
        with loop points relative to the sample start; invalid samples are left out."""
        self.where = "shdr"
        n_smpl = self.smpl_size // 2
        plan = []          # (sid, kind, a, b, ls, le)
        for s in used.tolist():
            r = shdr[s]
            stype = int(r["type"])
            name = _cstr(r["name"])
            if stype & SAMPLE_ROM:
                raise self.err("shdr", f"sample {s} '{name}' is a ROM sample (sampleType "
                                       f"0x{stype:04x}); ROM samples are not supported")
            a, b = int(r["start"]), int(r["end"])
            if int(r["rate"]) == 0:
                continue
            if stype & SAMPLE_OGG:
                if not (a < b <= self.smpl_size):
                    continue
                plan.append((s, "ogg", a, b, int(r["loop_start"]), int(r["loop_end"])))
            else:
                if not (a < b <= n_smpl):
                    continue
                plan.append((s, "pcm", a, b, int(r["loop_start"]) - a, int(r["loop_end"]) - a))

        decoded = {}
        if any(p[1] == "ogg" for p in plan):
            self.info["format"] = "SF3"
            self.where = "smpl"
            total = 0
            for s, kind, a, b, _, _ in plan:
                if kind != "ogg":
                    continue
                d = self._decode_ogg(s, a, b)
                if d is not None:
                    total += len(d)
                    if total > MAX_DECODED_FRAMES:
                        raise self.err("smpl", "compressed samples decode to more than "
                                               f"{MAX_DECODED_FRAMES} frames")
                    decoded[s] = d

        # layout: PCM samples with the same span share one copy
        self.where = "smpl"
        info = {}
        spans = {}
        layout = []        # (pos, kind, a, b, sid)
        pos = 0
        pcm_total = 0
        for s, kind, a, b, ls, le in plan:
            if kind == "pcm":
                key = (a, b)
                if key not in spans:
                    spans[key] = pos
                    layout.append((pos, "pcm", a, b, s))
                    pcm_total += b - a
                    if pcm_total > 4 * n_smpl:
                        raise self.err("shdr", "sample headers overlap excessively")
                    pos += b - a + GUARD
                info[s] = (spans[key], b - a, ls, le)
            elif s in decoded:
                d = decoded[s]
                if len(d) == 0:
                    continue
                layout.append((pos, "ogg", 0, len(d), s))
                info[s] = (pos, len(d), ls, le)
                pos += len(d) + GUARD
        pool = np.zeros(max(pos, GUARD), np.float32)
        if layout:
            smpl = np.frombuffer(self.buf, dtype="<i2", count=n_smpl, offset=self.smpl_off)
            sm24 = (np.frombuffer(self.buf, dtype=np.uint8, count=n_smpl, offset=self.sm24_off)
                    if self.sm24_off is not None else None)
            for p, kind, a, b, s in layout:
                if kind == "ogg":
                    pool[p:p + b] = decoded[s]
                elif sm24 is None:
                    np.multiply(smpl[a:b], np.float32(1.0 / 32768.0), out=pool[p:p + b - a])
                else:
                    v = (smpl[a:b].astype(np.int32) << 8) | sm24[a:b].astype(np.int32)
                    np.multiply(v, np.float32(1.0 / 8388608.0), out=pool[p:p + b - a],
                                casting="unsafe")
        return {"pool": pool, "info": info}

    def _decode_ogg(self, s, a, b):
        try:
            import soundfile
        except Exception as e:  # noqa: BLE001
            raise self.err("smpl", f"SF3 sample {s} is Ogg Vorbis compressed and needs the "
                                   f"'soundfile' package ({e})") from None
        blob = bytes(self.buf[self.smpl_off + a:self.smpl_off + b])
        try:
            with soundfile.SoundFile(io.BytesIO(blob)) as f:
                if f.frames > MAX_DECODED_FRAMES:
                    return None
                d = f.read(dtype="float32", always_2d=True)
        except Exception:  # noqa: BLE001 - an undecodable sample drops its zones
            return None
        d = np.ascontiguousarray(d[:, 0])
        if not np.all(np.isfinite(d)):
            return None
        return d
