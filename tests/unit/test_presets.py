"""PresetMap (gpusynth.presets): bank merging, preset fallbacks and the region lookup against
brute-force references, the per-note cap and a hostile million-region preset."""
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import gpusynth.presets as presets_mod
from gpusynth.banks import load_bank
from gpusynth.banks.model import GUARD, REGION_DTYPE, Bank, Preset, new_regions
from gpusynth.presets import MAX_REGIONS_PER_NOTE, PresetMap

from conftest import TESTDATA

CAP = MAX_REGIONS_PER_NOTE


# ------------------------------------------------------------------------------ references

def merged_lists(banks):
    """Preset region lists (merged region indices) and the merged region table, written out
    the plain way: banks by ascending priority (stable), presets numbered in that order."""
    lists, regs, nreg = [], [], 0
    for _, b, _ in sorted(banks, key=lambda x: x[2]):
        lists += [np.asarray(p.regions, np.int64) + nreg for p in b.presets]
        regs.append(b.regions)
        nreg += len(b.regions)
    return lists, (np.concatenate(regs) if regs else np.zeros(0, REGION_DTYPE))


def brute_force(banks, pid, key, vel):
    """Loop over the notes; for each, every region of the preset list holding (key, vel), in
    list order, the first CAP of them. Returns (note_index, region_index, capped notes)."""
    lists, regs = merged_lists(banks)
    notes, out, capped = [], [], 0
    for i, (p, k, v) in enumerate(zip(pid, key, vel)):
        if not (0 <= p < len(lists) and 0 <= k < 128 and 0 <= v < 128):
            continue
        idx = lists[p]
        r = regs[idx]
        hit = idx[(r["key_lo"] <= k) & (k <= r["key_hi"]) & (r["vel_lo"] <= v) & (v <= r["vel_hi"])]
        capped += len(hit) > CAP
        hit = hit[:CAP]
        notes += [i] * len(hit)
        out += hit.tolist()
    return np.array(notes, np.int64), np.array(out, np.int64), capped


def dense_table(regions, idx):
    """The former lookup (regions x 128 x 128 mask): (key, vel) -> region list, for a preset."""
    r = regions[idx]
    keys = np.arange(128)
    kin = (keys[None, :] >= r["key_lo"][:, None]) & (keys[None, :] <= r["key_hi"][:, None])
    vin = (keys[None, :] >= r["vel_lo"][:, None]) & (keys[None, :] <= r["vel_hi"][:, None])
    m = kin[:, :, None] & vin[:, None, :]
    kk, vv, rr = np.nonzero(np.transpose(m, (1, 2, 0)))   # sorted by key, vel, region position
    return kk * 128 + vv, idx[rr]


# ------------------------------------------------------------------------------ banks

def blank_regions(n):
    r = new_regions(n)
    r["start"], r["end"] = 0, 8
    return r


def random_bank(rng, n_regions, n_presets, max_len=300, pool_len=100):
    """Random ranges: full, sub-ranges, single keys, inverted and out-of-range ones (the model's
    validate() refuses those, but PresetMap must still match nothing for them)."""
    n = n_regions
    r = blank_regions(n)
    for lo, hi in (("key_lo", "key_hi"), ("vel_lo", "vel_hi")):
        a, b = rng.integers(-3, 131, n), rng.integers(-3, 131, n)
        kind = rng.integers(0, 5, n)
        r[lo] = np.select([kind == 0, kind == 1, kind == 2], [0, np.minimum(a, b), a], a)
        r[hi] = np.select([kind == 0, kind == 1, kind == 2], [127, np.maximum(a, b), a], b)
    layer = rng.random(n) < 0.25                  # full-range layers: notes reach the cap
    r["key_lo"][layer], r["key_hi"][layer], r["vel_lo"][layer], r["vel_hi"][layer] = 0, 127, 0, 127
    pres = [Preset(int(rng.integers(0, 3)) * 128, int(rng.integers(0, 6)), f"p{i}",
                   rng.integers(0, n, int(rng.integers(0, max_len))).astype(np.int32),
                   drum=bool(rng.random() < 0.3))
            for i in range(n_presets)]
    return Bank("random", np.full(pool_len, 0.5, np.float32), r, pres)


def one_preset_bank(r, bank=0, program=0, drum=False, name="b"):
    return Bank(name, np.zeros(64, np.float32), r,
                [Preset(bank, program, name, np.arange(len(r), dtype=np.int32), drum=drum)])


# ------------------------------------------------------------------------------ lookup equivalence

@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rows,candidates", [(16384, 1 << 22), (40, 500)])
def test_random_banks_match_brute_force(seed, rows, candidates, monkeypatch):
    # small rows / candidates: presets span build chunks (carried counts) and lookups batch
    monkeypatch.setattr(presets_mod, "_ROWS", rows)
    monkeypatch.setattr(presets_mod, "_CANDIDATES", candidates)
    rng = np.random.default_rng(seed)
    banks = [(1, random_bank(rng, 400, 8), 5), (2, random_bank(rng, 250, 6), 3),
             (3, random_bank(rng, 30, 3, max_len=5), 5)]
    pm = PresetMap().build(banks)
    m = 2500
    pid = rng.integers(-1, pm.n_presets + 1, m)
    key = rng.integers(-1, 129, m)
    vel = rng.integers(-1, 129, m)
    notes, regs = pm.regions_for(pid, key, vel)
    bn, br, bc = brute_force(banks, pid, key, vel)
    assert notes.dtype == regs.dtype == np.int64
    np.testing.assert_array_equal(notes, bn)
    np.testing.assert_array_equal(regs, br)
    assert pm.capped_notes == bc
    assert bc > 0                       # the random layering does reach the cap


def test_layered_preset_over_the_cap(monkeypatch):
    """Many full-range layers plus split ranges in one preset: pruned groups stay exact."""
    monkeypatch.setattr(presets_mod, "_ROWS", 64)
    rng = np.random.default_rng(7)
    n = 3000
    r = blank_regions(n)
    lo = rng.integers(0, 128, n)
    r["key_lo"], r["key_hi"] = lo, np.minimum(127, lo + rng.integers(0, 40, n))
    r["vel_lo"] = np.where(rng.random(n) < 0.5, 0, rng.integers(0, 128, n))
    r["vel_hi"] = np.maximum(r["vel_lo"], rng.integers(0, 128, n))
    banks = [(1, one_preset_bank(r), 0)]
    pm = PresetMap().build(banks)
    kk, vv = np.meshgrid(np.arange(128), np.arange(0, 128, 13), indexing="ij")
    pid = np.zeros(kk.size, np.int64)
    notes, regs = pm.regions_for(pid, kk.ravel(), vv.ravel())
    bn, br, bc = brute_force(banks, pid, kk.ravel(), vv.ravel())
    np.testing.assert_array_equal(notes, bn)
    np.testing.assert_array_equal(regs, br)
    assert pm.capped_notes == bc > 0
    # pruning in chunks (counts carried between them) keeps exactly what one chunk keeps
    monkeypatch.setattr(presets_mod, "_ROWS", 16384)
    whole = PresetMap().build(banks)
    for f in ("_gkey", "_goff", "_efpos", "_evlo", "_evhi"):
        np.testing.assert_array_equal(getattr(pm, f), getattr(whole, f), err_msg=f)
    size = np.diff(whole._goff)
    assert size.max() <= (CAP + 1) * 128 and size.max() > CAP + 1     # groups were pruned


@pytest.mark.parametrize("path", [pytest.param(TESTDATA / "dls" / "sf_GMbank.dls", marks=pytest.mark.slow),
                                  Path("/usr/share/sounds/sf2/TimGM6mb.sf2")],
                         ids=lambda p: p.name)
def test_real_bank_matches_the_dense_table(path):
    """Every preset x key x velocity of a real bank, against the former dense table; and the
    build stays far under a second."""
    if not path.exists():
        pytest.skip(f"{path} not present")
    bank = load_bank(path)
    pm = PresetMap()
    t = time.perf_counter()
    pm.build([(1, bank, 1)])
    assert time.perf_counter() - t < 0.5
    kk, vv = np.divmod(np.arange(128 * 128), 128)
    for pid, p in enumerate(bank.presets):
        notes, regs = pm.regions_for(np.full(kk.size, pid), kk, vv)
        cell, want = dense_table(bank.regions, np.asarray(p.regions, np.int64))
        np.testing.assert_array_equal(notes, cell, err_msg=f"preset {p.bank}:{p.program}")
        np.testing.assert_array_equal(regs, want, err_msg=f"preset {p.bank}:{p.program}")
    assert pm.capped_notes == 0


def test_inputs_out_of_range_and_empty():
    pm = PresetMap()
    assert pm.lookup(0, 0, False) == -1 and pm.lookup(0, 0, True) == -1
    n, r = pm.regions_for([0, -1], [60, 60], [100, 100])
    assert n.dtype == r.dtype == np.int64 and len(n) == len(r) == 0
    assert pm.pool.dtype == np.float32 and len(pm.pool) >= 1
    assert pm.regions.dtype == REGION_DTYPE and len(pm.regions) == 0
    pm.build([(1, one_preset_bank(blank_regions(2)), 0)])
    n, r = pm.regions_for([0, 0, 0, 0, -1, 1], [60, 128, -1, 60, 60, 60], [100, 1, 1, 128, 1, 1])
    assert n.tolist() == [0, 0] and r.tolist() == [0, 1]
    n, r = pm.regions_for(np.zeros(0, np.int64), [], [])
    assert len(n) == 0
    with pytest.raises(ValueError):
        pm.regions_for([0], [60, 61], [100])


# ------------------------------------------------------------------------------ the cap

def test_cap_keeps_the_first_regions_and_counts_notes():
    r = blank_regions(100)
    r["key_lo"][:90], r["key_hi"][:90] = 0, 127      # 90 full-range layers
    r["key_lo"][90:], r["key_hi"][90:] = 60, 60      # 10 more on key 60 only
    r["key_lo"][:30], r["key_hi"][:30] = 0, 59       # first 30 end below key 60
    pm = PresetMap().build([(1, one_preset_bank(r), 0)])
    n, reg = pm.regions_for([0, 0, 0], [10, 60, 100], [64, 64, 64])
    assert reg[n == 0].tolist() == list(range(CAP))            # 90 match: first 64
    assert reg[n == 1].tolist() == list(range(30, 30 + CAP))   # 70 match: first 64
    assert reg[n == 2].tolist() == list(range(30, 90))         # 60 match: all
    assert pm.capped_notes == 2
    pm.regions_for([0], [10], [1])
    assert pm.capped_notes == 3                                 # counts across lookups
    pm.build([(1, one_preset_bank(r), 0)])
    assert pm.capped_notes == 0                                 # until the next build


def test_exactly_the_cap_is_not_capped():
    pm = PresetMap().build([(1, one_preset_bank(blank_regions(CAP)), 0)])
    n, reg = pm.regions_for([0], [0], [0])
    assert reg.tolist() == list(range(CAP)) and pm.capped_notes == 0


# ------------------------------------------------------------------------------ presets

def fallback_bank(with_drum_00=True):
    keys = [(0, 0, False), (5 * 128, 1, False), (5 * 128 + 3, 2, False), (0, 2, False),
            (128, 10, True), (3 * 128, 4, True), (2 * 128, 40, True)]
    if with_drum_00:
        keys.append((0, 0, True))
    r = blank_regions(len(keys))
    pres = [Preset(b, p, f"{b}:{p}", np.array([i], np.int32), drum=d)
            for i, (b, p, d) in enumerate(keys)]
    return Bank("fallbacks", np.zeros(64, np.float32), r, pres), keys


def test_lookup_fallbacks():
    bank, keys = fallback_bank()
    pm = PresetMap().build([(1, bank, 0)])
    pid = {k: i for i, k in enumerate(keys)}
    assert pm.lookup(5 * 128 + 3, 2, False) == pid[(5 * 128 + 3, 2, False)]     # exact
    assert pm.lookup(5 * 128 + 7, 1, False) == pid[(5 * 128, 1, False)]         # MSB, LSB 0
    assert pm.lookup(5 * 128 + 7, 2, False) == pid[(0, 2, False)]               # bank 0
    assert pm.lookup(9 * 128, 0, False) == pid[(0, 0, False)]                   # bank 0
    assert pm.lookup(0, 99, False) == -1                                        # none
    assert pm.lookup(128, 10, True) == pid[(128, 10, True)]                     # exact drum
    assert pm.lookup(3 * 128 + 1, 4, True) == pid[(3 * 128, 4, True)]           # drum MSB
    assert pm.lookup(7 * 128, 77, True) == pid[(0, 0, True)]                    # drum (0, 0)
    assert pm.lookup(0, 10, False) == -1                                        # not a drum
    bank, keys = fallback_bank(with_drum_00=False)
    pm.build([(1, bank, 0)])
    assert pm.lookup(7 * 128, 77, True) == keys.index((128, 10, True))          # lowest drum
    assert pm.lookup(0, 0, True) == keys.index((128, 10, True))


def test_priority_merging_and_offsets():
    ra, rb = blank_regions(3), blank_regions(2)
    ra["start"], ra["end"], ra["loop_start"], ra["loop_end"] = 4, 20, 5, 19
    rb["start"], rb["end"], rb["loop_start"], rb["loop_end"] = 1, 9, 2, 8
    a = Bank("a", np.arange(100, dtype=np.float32), ra,
             [Preset(0, 0, "a-piano", np.array([2, 0], np.int32)),
              Preset(0, 1, "a-only", np.array([1], np.int32))])
    b = Bank("b", np.arange(50, dtype=np.float32) + 1000, rb,
             [Preset(0, 0, "b-piano", np.array([1], np.int32))])
    pm = PresetMap()
    for banks in ([(1, a, 5), (2, b, 1)], [(2, b, 1), (1, a, 5)]):   # priority, not list order
        pm.build(banks)
        assert pm.n_presets == 3
        # b (priority 1) merges first: its regions, pool and presets come first
        np.testing.assert_array_equal(pm.pool, np.concatenate([b.pool, a.pool]))
        for f in ("start", "end", "loop_start", "loop_end"):
            np.testing.assert_array_equal(pm.regions[f], np.r_[rb[f], ra[f] + 50])
        piano = pm.lookup(0, 0, False)
        assert piano == 1                                  # a's piano shadows b's (id 0)
        n, reg = pm.regions_for([piano, 0], [60, 60], [100, 100])
        assert reg.tolist() == [2 + 2, 0 + 2, 1]             # a's [2, 0] behind b's 2 regions
        assert n.tolist() == [0, 0, 1]
        assert pm.lookup(0, 1, False) == 2
    pm.build([(1, a, 0), (2, b, 0)])                        # equal priority: the later wins
    assert pm.lookup(0, 0, False) == 2                      # b's piano
    assert pm.regions_for([2], [0], [0])[1].tolist() == [3 + 1]
    pm.build([(2, b, 0), (1, a, 0)])
    assert pm.lookup(0, 0, False) == 1                      # a's piano
    assert pm.regions_for([1], [0], [0])[1].tolist() == [2 + 2, 0 + 2]
    # the previous pool kept in front (voices still playing from it)
    old = np.full(30, 7, np.float32)
    pm.build([(1, a, 0)], base_pool=old)
    np.testing.assert_array_equal(pm.pool, np.concatenate([old, a.pool]))
    np.testing.assert_array_equal(pm.regions["start"], ra["start"] + 30)
    # inputs are not modified; outputs are read-only
    assert a.regions["start"].tolist() == [4, 4, 4] and a.pool.flags.writeable
    assert not pm.regions.flags.writeable and not pm.pool.flags.writeable
    pm.build([(1, a, 0)])
    assert pm.regions["start"].tolist() == [4, 4, 4]


# ------------------------------------------------------------------------------ hostile banks

def measure_build(bank):
    pm = PresetMap()
    tracemalloc.start()
    try:
        t = time.perf_counter()
        pm.build([(1, bank, 0)])
        seconds = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return pm, seconds, peak


def test_hostile_million_full_range_regions():
    """A 17 KB SF2 can flatten into 1,000,000 overlapping full-range regions in one preset;
    the former table asked for 15-36 GiB."""
    n = 1_000_000
    r = blank_regions(n)
    bank = one_preset_bank(r, name="hostile")
    pm, seconds, peak = measure_build(bank)
    assert seconds < 5.0, seconds
    assert peak < 200 * 2**20, peak
    m = 10_000
    rng = np.random.default_rng(0)
    notes, regs = pm.regions_for(np.zeros(m, np.int64), rng.integers(0, 128, m),
                                 rng.integers(0, 128, m))
    np.testing.assert_array_equal(notes, np.repeat(np.arange(m), CAP))
    np.testing.assert_array_equal(regs, np.tile(np.arange(CAP), m))
    assert pm.capped_notes == m


@pytest.mark.slow
def test_hostile_million_random_regions():
    """One preset of 1,000,000 random rectangles: every segment-tree group is pruned, memory
    and time stay bounded, and the first CAP regions of a note are still exact."""
    n = 1_000_000
    rng = np.random.default_rng(1)
    r = blank_regions(n)
    for lo, hi in (("key_lo", "key_hi"), ("vel_lo", "vel_hi")):
        a, b = rng.integers(0, 128, n), rng.integers(0, 128, n)
        r[lo], r[hi] = np.minimum(a, b), np.maximum(a, b)
    bank = one_preset_bank(r, name="hostile")
    pm, seconds, peak = measure_build(bank)
    assert seconds < 10.0, seconds
    assert peak < 200 * 2**20, peak
    assert len(pm._efpos) <= 255 * (CAP + 1) * 128
    key, vel = rng.integers(0, 128, 20), rng.integers(0, 128, 20)
    notes, regs = pm.regions_for(np.zeros(20, np.int64), key, vel)
    for i in range(20):
        hit = np.flatnonzero((r["key_lo"] <= key[i]) & (key[i] <= r["key_hi"])
                             & (r["vel_lo"] <= vel[i]) & (vel[i] <= r["vel_hi"]))
        np.testing.assert_array_equal(regs[notes == i], hit[:CAP])


def test_defaults():
    assert MAX_REGIONS_PER_NOTE == 64
    pm = PresetMap()
    assert len(pm.pool) == GUARD and pm.capped_notes == 0 and pm.n_presets == 0
