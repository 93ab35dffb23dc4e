"""Bank merging by priority and the preset / region lookup.

``PresetMap.build(banks)`` merges the downloaded banks into one sample pool and one region
table (offsets rebased into the merged pool) and numbers every preset; ``lookup`` maps (bank,
program, drum) to a preset id with the usual fallbacks; ``regions_for`` resolves a batch of
note-ons to their regions, vectorised.

Region lookup structure. A preset's regions are rectangles on the 128 x 128 (key, velocity)
grid; a note plays every region whose rectangle holds (key, velocity), in the order of the
preset's region list. A dense (key, velocity) table costs regions x 16384 cells, which a
hostile bank turns into tens of GiB, so the key axis is a segment tree instead: heap nodes
1..255, the leaf of key k is node 128 + k, node n covers the keys of its children 2n and 2n+1.
Each region is stored at the (at most 14) nodes that exactly tile its key range, so a key's
regions are those of the 8 nodes on its leaf-to-root path, each region at most once. An entry
is (preset id * 256 + node, position in the preset's region list, vel_lo, vel_hi); entries are
sorted by group (preset, node) and by position, so memory is O(regions) and a note costs 8
binary searches plus a scan of its groups.

The scan is bounded by the cap MAX_REGIONS_PER_NOTE: a note plays at most the first 64 of its
regions (real layered presets start a handful per note). Every region of a node
holds every key of that node, so within one group the entries that can be among the first
MAX_REGIONS_PER_NOTE + 1 for some velocity are all that ever matter; the others are pruned at
build time, which leaves at most 65 x 128 entries per group. One more than the cap is kept so
that a capped note is still seen as one (``capped_notes``).
"""
from __future__ import annotations

import numpy as np

from .banks.model import GUARD, REGION_DTYPE

MAX_REGIONS_PER_NOTE = 64   # regions a single note-on may start; later ones are dropped

_KEEP = MAX_REGIONS_PER_NOTE + 1   # per (group, velocity): entries kept at build time
_LEVELS = 8                        # segment tree over 128 keys: leaf .. root
_NODES = 256                       # heap numbering 1..255 (0 unused)
_ROWS = 16384                      # entries ranked at once while building (int16 safe)
_CANDIDATES = 1 << 22              # candidate entries scanned at once per lookup
_VEL = np.arange(128, dtype=np.int16)


def _tile(klo: np.ndarray, khi: np.ndarray, count_only: bool = False):
    """Segment-tree nodes exactly tiling each key range [klo, khi] (0 <= klo <= khi <= 127):
    (item index, node) pairs, or with ``count_only`` the number of nodes of each item."""
    lo = klo.astype(np.int64) + 128
    hi = khi.astype(np.int64) + 129          # exclusive
    count = np.zeros(len(lo) if count_only else 0, np.int64)
    item = np.arange(0 if count_only else len(lo), dtype=np.int64)
    items, nodes = [], []
    for _ in range(_LEVELS):
        live = lo < hi
        left = live & (lo & 1).astype(bool)
        lo = lo + left
        right = live & (hi & 1).astype(bool)
        hi = hi - right
        if count_only:
            count += left
            count += right
        else:
            items += [item[left], item[right]]
            nodes += [lo[left] - 1, hi[right]]
        lo >>= 1
        hi >>= 1
    return count if count_only else (np.concatenate(items), np.concatenate(nodes))


class PresetMap:
    """Merged banks: sample pool, region table, preset numbering and the region lookup.

    Attributes: ``pool`` (float32, at least one sample), ``regions`` (REGION_DTYPE, offsets into
    ``pool``; read-only), ``presets`` ((bank, program, drum) -> preset id; a later or
    higher-priority bank's preset shadows an equal key), ``n_presets``, ``capped_notes``
    (notes so far, since the last build, that had more than MAX_REGIONS_PER_NOTE regions)."""

    def __init__(self):
        self.build([])

    # ------------------------------------------------------------------ build
    def build(self, banks, base_pool: np.ndarray | None = None) -> "PresetMap":
        """Merge ``banks``, a list of (handle, Bank, priority): ascending priority, equal
        priorities in list order, so a later / higher-priority bank wins a preset lookup.
        ``base_pool``: samples to keep in front of the merged pool (the previous pool while
        voices still play from it); the banks' offsets are rebased behind it. Banks are not
        validated here (the synth validates them when they are downloaded); key and velocity
        ranges are clipped to 0..127 and an empty or inverted range matches nothing.
        Preset ids number every preset of every bank in merge order (shadowed ones too)."""
        order = sorted(banks, key=lambda b: b[2])
        pools = [] if base_pool is None or len(base_pool) == 0 else [base_pool]
        base = sum(len(p) for p in pools)
        pool_base, reg_base = [], []
        presets, pr_parts = {}, []
        nreg = 0
        for _, bank, _ in order:
            pool_base.append(base)
            reg_base.append(nreg)
            pools.append(bank.pool)
            for p in bank.presets:
                presets[(int(p.bank), int(p.program), bool(p.drum))] = len(pr_parts)
                pr_parts.append(np.asarray(p.regions, np.int64).ravel() + nreg)
            base += len(bank.pool)
            nreg += len(bank.regions)
        if not pools:
            pool = np.zeros(GUARD, np.float32)
        elif len(pools) == 1:
            pool = np.asarray(pools[0], np.float32).view()   # one pool: shared, not copied
        else:
            pool = np.concatenate(pools).astype(np.float32, copy=False)
        if not order:
            regions = np.zeros(0, REGION_DTYPE)
        elif len(order) == 1 and pool_base[0] == 0:
            regions = order[0][1].regions.view()         # no offsets to move: shared
        else:
            regions = np.concatenate([b.regions for _, b, _ in order])
            starts = np.asarray(reg_base + [nreg], np.int64)
            shift = np.repeat(np.asarray(pool_base, np.int64), np.diff(starts))
            for f in ("start", "end", "loop_start", "loop_end"):
                regions[f] += shift
        pool.setflags(write=False)
        regions.setflags(write=False)
        self.pool, self.regions, self.presets = pool, regions, presets
        self.n_presets = len(pr_parts)
        drums = sorted(k for k in presets if k[2])
        self._first_drum = presets[drums[0]] if drums else -1
        self._pr_off = np.zeros(len(pr_parts) + 1, np.int64)
        np.cumsum([len(p) for p in pr_parts], out=self._pr_off[1:])
        self._pr_flat = np.concatenate(pr_parts) if pr_parts else np.zeros(0, np.int64)
        self.capped_notes = 0
        self._build_groups()
        return self

    def _build_groups(self):
        """Tile every (preset, position) into segment-tree groups and prune each group to the
        entries that can be among the first _KEEP of some velocity. Positions are processed in
        order, in chunks of about _ROWS entries; a preset spanning chunks carries its per
        (node, velocity) counts (saturated at _KEEP) into the next chunk."""
        flat, r = self._pr_flat, self.regions
        klo, khi = r["key_lo"][flat], r["key_hi"][flat]
        vlo, vhi = r["vel_lo"][flat], r["vel_hi"][flat]
        live = np.flatnonzero((klo <= khi) & (klo <= 127) & (khi >= 0)
                              & (vlo <= vhi) & (vlo <= 127) & (vhi >= 0))
        klo, khi = np.clip(klo, 0, 127), np.clip(khi, 0, 127)
        vlo = np.clip(vlo, 0, 127).astype(np.int64)
        vhi = np.clip(vhi, 0, 127).astype(np.int64)
        pid_of = np.repeat(np.arange(self.n_presets, dtype=np.int64), np.diff(self._pr_off))
        cum = np.cumsum(_tile(klo[live], khi[live], count_only=True))
        cuts = np.searchsorted(cum, np.arange(_ROWS, cum[-1] if len(cum) else 0, _ROWS))
        bounds = np.unique(np.r_[0, cuts, len(live)])
        out = []
        carry_pid, carry = -1, np.zeros((_NODES, 128), np.int16)
        for a, b in zip(bounds[:-1], bounds[1:]):
            pos = live[a:b]
            item, node = _tile(klo[pos], khi[pos])
            fp = pos[item]
            pid = pid_of[fp]
            gk = pid * _NODES + node
            o = np.lexsort((fp, gk))
            gk, fp, pid, node = gk[o], fp[o], pid[o], node[o]
            lo, hi = vlo[fp], vhi[fp]
            carried = pid == carry_pid
            if np.any(carried):
                # drop entries whose whole velocity range already has _KEEP earlier entries
                free = np.zeros((_NODES, 129), np.int32)
                np.cumsum(carry < _KEEP, axis=1, out=free[:, 1:])
                alive = ~carried | (free[node, hi + 1] > free[node, lo])
                gk, fp, pid, node, lo, hi, carried = (x[alive] for x in
                                                      (gk, fp, pid, node, lo, hi, carried))
            first = np.r_[True, gk[1:] != gk[:-1]] if len(gk) else np.zeros(0, bool)
            size = np.diff(np.r_[np.flatnonzero(first), len(gk)])
            keep = ~(np.repeat(size > _KEEP, size) | carried)
            d = np.flatnonzero(~keep)        # groups that may hold more than _KEEP: rank them
            if len(d):
                cov = (_VEL >= lo[d, None]) & (_VEL <= hi[d, None])
                ranks = np.zeros((len(d) + 1, 128), np.int16)
                np.cumsum(cov, axis=0, dtype=np.int16, out=ranks[1:])
                gstart = np.maximum.accumulate(np.where(first[d], np.arange(len(d)), 0))
                before = ranks[:-1] - ranks[gstart]
                before += np.where(carried[d, None], carry[node[d]], 0).astype(np.int16)
                keep[d] = np.any(cov & (before < _KEEP), axis=1)
            last = pid_of[live[b - 1]]
            if last != carry_pid:
                carry_pid, carry = last, np.zeros((_NODES, 128), np.int16)
            m = pid == last
            if np.any(m):
                span = _NODES * 129
                diff = np.bincount(node[m] * 129 + lo[m], minlength=span) \
                    - np.bincount(node[m] * 129 + hi[m] + 1, minlength=span)
                add = np.cumsum(diff.reshape(_NODES, 129)[:, :128], axis=1)
                carry = np.minimum(carry + add, _KEEP).astype(np.int16)
            out.append((gk[keep], fp[keep], lo[keep], hi[keep]))
        if out:
            gk, fp, lo, hi = (np.concatenate(x) for x in zip(*out))
            o = np.argsort(gk, kind="stable")      # chunks come in position order
            self._gkey, first = np.unique(gk[o], return_index=True)
            self._goff = np.r_[first, len(o)].astype(np.int64)
            self._efpos = fp[o]
            self._evlo = lo[o].astype(np.uint8)
            self._evhi = hi[o].astype(np.uint8)
        else:
            self._gkey = np.zeros(0, np.int64)
            self._goff = np.zeros(1, np.int64)
            self._efpos = np.zeros(0, np.int64)
            self._evlo = self._evhi = np.zeros(0, np.uint8)

    # ------------------------------------------------------------------ lookup
    def lookup_tables(self) -> dict:
        """The region lookup's arrays, for the compiled control engine (gpusynth.control_engine),
        which walks them as ``regions_for`` does: ``gkey`` (group keys, preset id * 256 + node,
        sorted), ``goff`` (each group's first entry, and the end), ``efpos`` / ``evlo`` /
        ``evhi`` (each entry's position in the preset's region list and velocity range),
        ``pr_flat`` (every preset's region indices, concatenated) and ``first_drum`` (the
        preset id of the first drum kit, -1: none)."""
        return {"gkey": self._gkey, "goff": self._goff, "efpos": self._efpos, "evlo": self._evlo,
                "evhi": self._evhi, "pr_flat": self._pr_flat, "first_drum": self._first_drum}

    def lookup(self, bank: int, program: int, drum: bool) -> int:
        """Preset id for (bank = MSB * 128 + LSB, program, drum), or -1. Fallbacks in order: the
        exact bank, the bank's MSB with LSB 0, bank 0; for drums then (0, 0) and then the lowest
        (bank, program) drum preset."""
        p = self.presets
        drum = bool(drum)
        for k in ((bank, program, drum), ((bank >> 7) << 7, program, drum), (0, program, drum)):
            if k in p:
                return p[k]
        if drum:
            return p.get((0, 0, True), self._first_drum)
        return -1

    def regions_for(self, pid, key, vel):
        """Regions started by notes (pid[i], key[i], vel[i]): every region of preset pid[i] whose
        key and velocity ranges hold the note, in the order of the preset's region list, at most
        MAX_REGIONS_PER_NOTE per note (the first ones; ``capped_notes`` counts the notes cut).
        A negative pid, or a key or velocity outside 0..127, gives no regions.
        Returns (note_index, region_index), int64, grouped by note in input order."""
        pid = np.asarray(pid, np.int64).ravel()
        key = np.asarray(key, np.int64).ravel()
        vel = np.asarray(vel, np.int64).ravel()
        if not len(pid) == len(key) == len(vel):
            raise ValueError("pid, key and vel must have the same length")
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        G = len(self._gkey)
        if G == 0 or len(pid) == 0:
            return empty
        ok = (pid >= 0) & (pid < self.n_presets) & (key >= 0) & (key < 128) \
            & (vel >= 0) & (vel < 128)
        node = (np.where(ok, key, 0) + 128)[:, None] >> np.arange(_LEVELS)
        gk = pid[:, None] * _NODES + node
        gi = np.minimum(np.searchsorted(self._gkey, gk), G - 1)
        hit = (self._gkey[gi] == gk) & ok[:, None]
        cnt = np.where(hit, self._goff[gi + 1] - self._goff[gi], 0)
        beg = self._goff[gi]
        per_note = cnt.sum(axis=1)
        # notes in batches of bounded candidate count (a Python loop per batch, not per note)
        ends = np.searchsorted(np.cumsum(per_note),
                               np.arange(_CANDIDATES, int(per_note.sum()), _CANDIDATES),
                               side="right")
        bounds = np.unique(np.r_[0, np.maximum(ends, 1), len(pid)])
        notes_out, regs_out = [], []
        for a, b in zip(bounds[:-1], bounds[1:]):
            c = cnt[a:b].ravel()
            total = int(c.sum())
            if total == 0:
                continue
            note = np.repeat(np.repeat(np.arange(a, b, dtype=np.int64), _LEVELS), c)
            e = np.repeat(beg[a:b].ravel() - (np.cumsum(c) - c), c) + np.arange(total)
            v = vel[note]
            m = (self._evlo[e] <= v) & (v <= self._evhi[e])
            note, fp = note[m], self._efpos[e[m]]
            if len(note) == 0:
                continue
            o = np.argsort((note - a) * len(self._pr_flat) + fp)
            note, fp = note[o], fp[o]
            first = np.flatnonzero(np.r_[True, note[1:] != note[:-1]])
            run = np.diff(np.r_[first, len(note)])
            rank = np.arange(len(note)) - np.repeat(first, run)
            self.capped_notes += int(np.count_nonzero(run > MAX_REGIONS_PER_NOTE))
            keep = rank < MAX_REGIONS_PER_NOTE
            notes_out.append(note[keep])
            regs_out.append(self._pr_flat[fp[keep]])
        if not notes_out:
            return empty
        return np.concatenate(notes_out), np.concatenate(regs_out)
