"""The one instrument model every bank format loads into.

A Bank holds
- ``pool``: float32 mono sample data of all its samples, each followed by guard zeros;
- ``regions``: one structured numpy array (REGION_DTYPE) of *flattened* regions. A region is a
  fully resolved playable zone: key/velocity range, a sample (absolute indices into the pool,
  already validated) and the complete articulation in SF2/DLS units. SF2 preset+instrument zone
  pairs and DLS regions (with instrument + region articulation merged) both become regions;
- ``presets``: list of Preset (bank number, program, drum flag, name, region index array).

Units are written beside every field. Loaders fill every field (``default_region()`` gives the
neutral values) and call ``Bank.validate()`` which checks every offset against the pool, so the
kernels can trust their inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

GUARD = 64  # zero samples appended after each sample in a pool (interpolation reads past ends)

# loop modes (SF2 sampleModes numbering)
LOOP_NONE = 0
LOOP_FORWARD = 1          # loop continuously, through the release (DLS loop type 0)
LOOP_UNTIL_RELEASE = 3    # loop until note-off, then play on to the end (DLS loop type 1)

# (field name, dtype, unit / meaning, neutral default)
REGION_FIELDS = [
    ("key_lo", np.int16, "MIDI key", 0),
    ("key_hi", np.int16, "MIDI key", 127),
    ("vel_lo", np.int16, "MIDI velocity", 0),
    ("vel_hi", np.int16, "MIDI velocity", 127),
    # sample, absolute indices into Bank.pool (end exclusive; loop_end exclusive)
    ("start", np.int64, "pool index", 0),
    ("end", np.int64, "pool index (exclusive)", 0),
    ("loop_start", np.int64, "pool index", 0),
    ("loop_end", np.int64, "pool index (exclusive)", 0),
    ("loop_mode", np.int8, "0 none, 1 forward, 3 until release", LOOP_NONE),
    ("sample_rate", np.float32, "Hz of the sample data", 44100.0),
    ("root_key", np.int16, "MIDI key at which the sample plays unshifted", 60),
    ("tune", np.float32, "cents added to the pitch (coarse*100 + fine + sample correction)", 0.0),
    ("scale_tuning", np.float32, "cents per key", 100.0),
    ("fixed_key", np.int16, "-1 or the key used for pitch/key modulation", -1),
    ("fixed_vel", np.int16, "-1 or the velocity used", -1),
    ("excl_class", np.int16, "exclusive class / key group, 0 none", 0),
    ("atten", np.float32, "cB initial attenuation (incl. sample attenuation)", 0.0),
    ("pan", np.float32, "0.1 % units, -500 left .. 500 right", 0.0),
    ("fc", np.float32, "absolute cents low-pass cutoff (>= 13500 and q == 0: open)", 13500.0),
    ("q", np.float32, "cB resonance", 0.0),
    ("fatt", np.float32, "cB attenuation of the filter stage (SF2: 1/sqrt(Q) as FluidSynth, q/2 - 15.05 cB; 0 none)", 0.0),
    # volume envelope (EG1), timecents; sustain as attenuation
    ("ve_delay", np.float32, "tc (-32768 = 0 s)", -32768.0),
    ("ve_attack", np.float32, "tc", -12000.0),
    ("ve_hold", np.float32, "tc", -12000.0),
    ("ve_decay", np.float32, "tc", -12000.0),
    ("ve_sustain", np.float32, "cB of attenuation at sustain (0 = full level)", 0.0),
    ("ve_release", np.float32, "tc", -12000.0),
    ("ve_key_hold", np.float32, "tc per key (key - 60 scaled)", 0.0),
    ("ve_key_decay", np.float32, "tc per key", 0.0),
    ("ve_vel_attack", np.float32, "tc at velocity 127 (DLS vel->attack, scaled by vel/128)", 0.0),
    # modulation envelope (EG2)
    ("me_delay", np.float32, "tc (-32768 = 0 s)", -32768.0),
    ("me_attack", np.float32, "tc", -12000.0),
    ("me_hold", np.float32, "tc", -12000.0),
    ("me_decay", np.float32, "tc", -12000.0),
    ("me_sustain", np.float32, "0.1 % *decrease* of full level (0 = stays at 1, 1000 = 0)", 0.0),
    ("me_release", np.float32, "tc", -12000.0),
    ("me_key_hold", np.float32, "tc per key", 0.0),
    ("me_key_decay", np.float32, "tc per key", 0.0),
    ("me_vel_attack", np.float32, "tc at velocity 127", 0.0),
    ("me_convex", np.int8, "1: the attack follows the SF2 convex curve (SF2 2.04 8.1.2 #26, as "
     "FluidSynth), 0: linear (DLS, built-in)", 0),
    ("me_pitch", np.float32, "cents at full mod envelope", 0.0),
    ("me_fc", np.float32, "cents at full mod envelope", 0.0),
    # modulation LFO
    ("ml_delay", np.float32, "tc (-32768 = 0 s)", -32768.0),
    ("ml_freq", np.float32, "absolute cents (0 = 8.176 Hz)", 0.0),
    ("ml_pitch", np.float32, "cents at full LFO excursion", 0.0),
    ("ml_fc", np.float32, "cents at full LFO excursion", 0.0),
    ("ml_vol", np.float32, "cB at full positive excursion (positive = louder)", 0.0),
    # vibrato LFO
    ("vl_delay", np.float32, "tc (-32768 = 0 s)", -32768.0),
    ("vl_freq", np.float32, "absolute cents", 0.0),
    ("vl_pitch", np.float32, "cents at full LFO excursion", 0.0),
    # sends
    ("rev_send", np.float32, "0.1 % reverb send", 0.0),
    ("cho_send", np.float32, "0.1 % chorus send", 0.0),
    # modulator depths resolved from default / file modulators and DLS connections
    ("vel_atten", np.float32, "cB at velocity 0 through the concave curve (SF2 default 960)", 960.0),
    ("vel_fc", np.float32, "cents at velocity 0, linear (SF2 default -2400)", 0.0),
    ("vel_fc_min", np.int16, "velocity from which vel_fc applies (FluidSynth's default-modulator switch: 64)", 0),
    ("cc1_vib", np.float32, "cents of vibrato-LFO pitch depth at CC1 = 127 (SF2 default 50)", 50.0),
    ("press_vib", np.float32, "cents of vibrato-LFO pitch depth at full channel pressure", 50.0),
    ("cc1_ml_pitch", np.float32, "cents of mod-LFO pitch depth at CC1 = 127 (DLS1)", 0.0),
    ("cc1_ml_vol", np.float32, "cB of mod-LFO volume depth at CC1 = 127 (DLS1)", 0.0),
    ("cc1_ml_fc", np.float32, "cents of mod-LFO cutoff depth at CC1 = 127", 0.0),
    ("rev_cc", np.float32, "0.1 % reverb send at CC91 = 127 (SF2 200, DLS 1000)", 200.0),
    ("cho_cc", np.float32, "0.1 % chorus send at CC93 = 127 (SF2 200, DLS 1000)", 200.0),
]

REGION_DTYPE = np.dtype([(n, t) for n, t, _, _ in REGION_FIELDS])


def default_region() -> np.ndarray:
    """One region record holding the neutral defaults (a 0-d structured array)."""
    r = np.zeros((), dtype=REGION_DTYPE)
    for n, _, _, d in REGION_FIELDS:
        r[n] = d
    return r


def new_regions(n: int) -> np.ndarray:
    """n region records, each filled with the defaults."""
    return np.repeat(default_region()[None], n)


# A preset may hold at most this many regions (after SF2 preset x instrument zones are
# flattened): real layered presets hold a few thousand at most (88 keys x 16 velocity layers x
# stereo = 2,816). A bank above it is refused with a BankError naming the file and the preset,
# so a few kilobytes cannot make the synth build and search millions of overlapping regions.
MAX_REGIONS_PER_PRESET = 65_536


class BankError(Exception):
    """A bank file (or in-memory bank) is malformed. The message names the file, the chunk
    and the reason."""

    def __init__(self, path, chunk: str, reason: str):
        self.path, self.chunk, self.reason = str(path), chunk, reason
        super().__init__(f"{path}: {chunk}: {reason}")


def preset_cap_reason(bank: int, program: int, name: str, n: int) -> str:
    return (f"preset {bank}:{program} {name!r} has {n} regions "
            f"(limit {MAX_REGIONS_PER_PRESET} per preset)")


def read_bank_file(path, limit: int | None = None) -> bytes:
    """The bytes of a bank file (the first ``limit`` bytes if given); an unreadable file is a
    BankError naming it."""
    p = str(path)
    try:
        with open(p, "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except OSError as e:
        raise BankError(p, "file", e.strerror or str(e)) from None


@dataclass
class Preset:
    bank: int            # MSB * 128 + LSB
    program: int         # 0..127
    name: str
    regions: np.ndarray  # int32 indices into Bank.regions
    drum: bool = False


@dataclass
class Bank:
    name: str
    pool: np.ndarray          # float32 mono, every sample followed by GUARD zeros
    regions: np.ndarray       # REGION_DTYPE
    presets: list = field(default_factory=list)
    path: Optional[str] = None
    info: dict = field(default_factory=dict)

    def validate(self) -> "Bank":
        """Check every region's offsets against the pool and every preset's region indices.
        Raises BankError; a bank that passes never makes a kernel read outside its pool."""
        src = self.path or self.name
        if self.pool.dtype != np.float32 or self.pool.ndim != 1:
            raise BankError(src, "pool", "sample pool must be 1-D float32")
        if not np.all(np.isfinite(self.pool)):
            raise BankError(src, "pool", "sample pool holds non-finite values")
        r = self.regions
        if r.dtype != REGION_DTYPE:
            raise BankError(src, "regions", "wrong region dtype")
        n = len(self.pool)
        bad = ((r["start"] < 0) | (r["end"] <= r["start"]) | (r["end"] > n)
               | (r["key_lo"] < 0) | (r["key_hi"] > 127) | (r["key_lo"] > r["key_hi"])
               | (r["vel_lo"] < 0) | (r["vel_hi"] > 127) | (r["vel_lo"] > r["vel_hi"])
               | ~np.isin(r["loop_mode"], [LOOP_NONE, LOOP_FORWARD, LOOP_UNTIL_RELEASE])
               | ~(r["sample_rate"] > 0) | (r["root_key"] < 0) | (r["root_key"] > 127))
        looped = r["loop_mode"] != LOOP_NONE
        bad |= looped & ((r["loop_start"] < r["start"]) | (r["loop_end"] > r["end"])
                         | (r["loop_end"] - r["loop_start"] < 1))
        floats = [nm for nm, t, _, _ in REGION_FIELDS if np.dtype(t).kind == "f"]
        for nm in floats:
            bad |= ~np.isfinite(r[nm])
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise BankError(src, "regions", f"region {i} has invalid sample offsets, ranges or values")
        for p in self.presets:
            idx = np.asarray(p.regions)
            if idx.size and (idx.min() < 0 or idx.max() >= len(r)):
                raise BankError(src, "presets", f"preset {p.bank}:{p.program} refers to a missing region")
            if not (0 <= p.program <= 127 and 0 <= p.bank <= 16383):
                raise BankError(src, "presets", f"preset {p.bank}:{p.program} out of range")
            if idx.size > MAX_REGIONS_PER_PRESET:
                raise BankError(src, "presets", preset_cap_reason(p.bank, p.program, p.name,
                                                                  idx.size))
        return self

    def preset_list(self):
        return [(p.bank, p.program, p.drum, p.name) for p in self.presets]


class PoolBuilder:
    """Collects mono float32 samples into one pool with guard zeros after each sample."""

    def __init__(self):
        self._parts = []
        self._len = 0

    def add(self, data: np.ndarray) -> tuple[int, int]:
        """Append one sample; returns its (start, end) pool indices (end exclusive)."""
        d = np.asarray(data, dtype=np.float32).ravel()
        start = self._len
        self._parts.append(d)
        self._parts.append(np.zeros(GUARD, np.float32))
        self._len += len(d) + GUARD
        return start, start + len(d)

    def build(self) -> np.ndarray:
        if not self._parts:
            return np.zeros(GUARD, np.float32)
        return np.concatenate(self._parts)
