"""The compiled control engine (control_engine.cpp): a window's events applied in C++.

``ControlEngine.window(ctl, events, B, T, chin)`` does for a control path (gpusynth.control
.ControlPath, which owns the engine and chooses it) what the Python/numpy definition
(``ControlPath.prepare_window``'s event loop: gpusynth.channels, gpusynth.presets,
gpusynth.allocator, gpusynth.steal) does, with the same results bit for bit: every voice record
and control column, the statistics, the controller timelines (tests/unit/test_control_engine.py
compares the two on the conformance files, fuzzed and dense generated files, every note
option). Python works once per window (and once per SysEx message, which it applies itself:
``ControlPath.apply_event``); the engine works in the control path's own numpy arrays (its
public ``alloc``, ``channels``, ``presets``, ``regions``, ``templates``), passed by pointer.

The definition's float64 closed forms use gpusynth.detmath (deterministic 2^x and log), and the
velocity and CC7/CC11 curves one table (units.concave_table), so the two agree to the bit.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from . import detmath, units
from ._kernels import kernel_dir
from .compiled import I32, I64, PTR, Helper
from .voices import VOICE_DTYPE, CHANNEL_INPUTS, envelope_frames

ST_DONE, ST_SYSEX, ST_NEED_CAP, ST_LOG_FULL = 0, 1, 2, 3
VOICE_OFFSETS = ("start", "release", "kill", "pstart", "pend", "ipos", "pitch", "atten", "fc",
                 "ve_delay", "ve_attack", "ve_hold", "ve_decay", "ve_sus", "ve_release",
                 "me_attack", "me_hold", "me_decay", "chan", "lmode")
COUNTERS = ("seq", "note_seq", "stolen", "peak", "lost", "notes", "skipped", "capped")
REGION_CE_FIELDS = ("scale_tuning", "root_key", "tune", "pitch_base", "atten", "vel_atten", "fc",
                    "vel_fc", "vel_fc_min", "fixed_key", "fixed_vel", "excl",
                    "ve_att", "ve_vatt", "me_att", "me_vatt", "ve_hold", "ve_khold", "me_hold",
                    "me_khold", "ve_dec", "ve_kdec", "me_dec", "me_kdec",
                    "c_ve_att", "c_me_att", "c_ve_hold", "c_me_hold", "c_ve_dec", "c_me_dec")
REGION_CE_DTYPE = np.dtype([(f, np.float64) for f in REGION_CE_FIELDS])
MLOG_CAP = 4096


def region_table(reg: np.ndarray, rate: float) -> np.ndarray:
    """The engine's per-region columns (REGION_CE_DTYPE): the region fields a voice record is
    computed from, the pitch term of the sample rate, and the envelope times in frames of the
    regions whose key / velocity coefficient is 0 (as voices.regions_to_voices computes them)."""
    f64 = np.float64
    out = np.zeros(len(reg), REGION_CE_DTYPE)
    for f, src in (("scale_tuning", "scale_tuning"), ("root_key", "root_key"), ("tune", "tune"),
                   ("atten", "atten"), ("vel_atten", "vel_atten"), ("fc", "fc"),
                   ("vel_fc", "vel_fc"), ("vel_fc_min", "vel_fc_min"), ("fixed_key", "fixed_key"),
                   ("fixed_vel", "fixed_vel"), ("excl", "excl_class")):
        out[f] = reg[src].astype(f64)
    out["pitch_base"] = 1200.0 * detmath.log2(reg["sample_rate"].astype(f64) / float(rate))
    for p in ("ve", "me"):
        out[p + "_att"] = reg[p + "_attack"]
        out[p + "_vatt"] = reg[p + "_vel_attack"]
        out[p + "_hold"] = reg[p + "_hold"]
        out[p + "_khold"] = reg[p + "_key_hold"]
        out[p + "_dec"] = reg[p + "_decay"]
        out[p + "_kdec"] = reg[p + "_key_decay"]
        for nm, src, hi in (("att", "attack", 8000.0), ("hold", "hold", 5000.0),
                            ("dec", "decay", 8000.0)):
            tc = np.where(reg[p + "_" + src] <= -32767, -32768.0, reg[p + "_" + src].astype(f64))
            out["c_" + p + "_" + nm] = envelope_frames(tc, hi, rate)
    return out


_P, _L, _D = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_double


def _fields(kind, names):
    return [(n, kind) for n in names]


class Args(ctypes.Structure):
    """The engine's view of a synth (struct Args in control_engine.cpp, field for field)."""
    _fields_ = _fields(_L, ("nch", "max_voices", "fade", "max_key", "max_note_frames",
                            "min_velocity")) + \
        _fields(_D, ("rate", "dec_cb", "done_level")) + \
        [("vt", _P), ("cap", _L), ("n", _P)] + \
        _fields(_P, ("h_chan", "h_key", "h_seq", "h_released", "h_sustained", "h_sost",
                     "h_killed", "h_prio", "h_excl", "h_silent", "h_note", "h_frel",
                     "h_finished", "h_changed", "h_dirty", "counters",
                     "cc", "program", "bend", "bend_range", "fine", "coarse", "pressure",
                     "poly_pressure", "rpn", "rpn_is_nrpn", "priority", "drum",
                     "master_tune", "master_atten",
                     "ch_pid", "ch_dirty", "ch_miss", "ch_want", "miss_count", "mlog",
                     "mlog_n")) + \
        [("mlog_cap", _L), ("n_pkeys", _L)] + \
        _fields(_P, ("pkey", "pval", "pid_key")) + \
        [("first_drum", _L), ("n_presets", _L), ("G", _L)] + \
        _fields(_P, ("gkey", "goff", "efpos", "pr_flat", "evlo", "evhi", "regions",
                     "templates", "concave", "events")) + \
        _fields(_L, ("esize", "n_events", "B", "T")) + \
        [("chin", _P), ("result", _P)] + \
        _fields(_L, ("n_songs", "song_limit")) + \
        _fields(_P, ("song_of_chan", "evicted", "song_notes", "song_skipped", "song_peak",
                     "h_fresh"))


def _check_layout(lib):
    voff = np.array([VOICE_DTYPE.fields[f][1] for f in VOICE_OFFSETS], np.int64)
    if not lib.ce_layout(voff.ctypes.data, VOICE_DTYPE.itemsize):
        raise RuntimeError("control_engine.cpp's voice record layout differs from "
                           "gpusynth.voices.VOICE_DTYPE (update VSIZE/VOFF there)")


_ARGS = ctypes.POINTER(Args)
NATIVE = Helper(
    "control", [Path(__file__).with_name("control_engine.cpp")],
    ["-O2", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC", "-x", "c++"],
    {"ce_new": (PTR, []),
     "ce_layout": (I32, [PTR, I64]),
     "ce_detmath": (None, [I32, PTR, I64, PTR]),
     "ce_free": (None, [PTR]),
     "ce_tables_changed": (None, [PTR]),
     "ce_begin": (None, [PTR, _ARGS]),
     "ce_resync": (None, [PTR, _ARGS]),
     "ce_step": (None, [PTR, _ARGS]),
     "ce_compact": (I64, [PTR, I64, PTR, PTR, I64, PTR, PTR, PTR, PTR])},
    headers=lambda: [kernel_dir() / "detmath.h", Path(__file__).with_name("env_exact.h")],
    check=_check_layout, label="control engine")


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class ControlEngine:
    """One control path's compiled engine. Per-channel preset state (the channel's preset id,
    the preset it asked for, the note-ons counted while that preset was missing) lives here;
    everything else in the control path's arrays."""

    def __init__(self, lib=None):
        self.lib = lib or NATIVE.load()
        self.h = self.lib.ce_new()
        self.counters = np.zeros(len(COUNTERS), np.int64)
        self.result = np.zeros(3, np.int64)
        self.mlog = np.zeros((MLOG_CAP, 6), np.int64)
        self.mlog_n = np.zeros(1, np.int64)
        self.nvec = np.zeros(1, np.int64)
        self._moves = np.zeros(0, np.int64)
        self._tables_of = None
        self._nch = -1

    def __del__(self):
        h, lib = getattr(self, "h", None), getattr(self, "lib", None)
        if h and lib is not None:
            lib.ce_free(h)
            self.h = None

    # ---- per bank set
    def _tables(self, ctl):
        key = ctl.templates
        if self._tables_of is key:
            return
        pm = ctl.presets
        self._regions = region_table(ctl.regions, ctl.sample_rate)
        self._templates = np.ascontiguousarray(ctl.templates)
        items = sorted((b * 256 + p * 2 + int(d), pid) for (b, p, d), pid in pm.presets.items())
        self._pkey = np.array([k for k, _ in items], np.int64)
        self._pval = np.array([v for _, v in items], np.int64)
        self._pid_key = np.full(max(pm.n_presets, 1), -1, np.int64)
        for k, v in items:
            self._pid_key[v] = k
        self._pid_keys = {v: k for k, v in pm.presets.items()}
        lt = pm.lookup_tables()
        self._gkey = np.ascontiguousarray(lt["gkey"], np.int64)
        self._goff = np.ascontiguousarray(lt["goff"], np.int64)
        self._efpos = np.ascontiguousarray(lt["efpos"], np.int64)
        self._prflat = np.ascontiguousarray(lt["pr_flat"], np.int64)
        self._evlo = np.ascontiguousarray(lt["evlo"], np.uint8)
        self._evhi = np.ascontiguousarray(lt["evhi"], np.uint8)
        self._first_drum = int(lt["first_drum"])
        self._tables_of = key
        self.lib.ce_tables_changed(self.h)

    def _channels(self, ctl):
        n = ctl.channels.n
        if n != self._nch:
            self._nch = n
            self.ch_pid = np.full(n, -1, np.int64)
            self.ch_dirty = np.ones(n, np.uint8)
            self.ch_miss = np.zeros(n, np.uint8)
            self.ch_want = np.zeros((n, 3), np.int64)
            self.miss_count = np.zeros(n, np.int64)
        stale = ctl.take_stale_presets()
        if stale == "all":
            self.drain_misses(ctl)
            self.ch_dirty[:] = 1
        elif stale:
            self.ch_dirty[stale] = 1

    def drain_misses(self, ctl, everything=True):
        """Move the engine's preset-miss counts to the control path
        (``ControlPath.count_preset_misses``)."""
        keys = self._pid_keys if self._tables_of is not None else {}

        def add(c, bank, prog, drum, pid, k):
            ctl.count_preset_misses(c, (int(bank), int(prog), bool(drum)), keys.get(int(pid)), k)

        for row in self.mlog[:int(self.mlog_n[0])]:
            add(*row)
        self.mlog_n[0] = 0
        if everything and self._nch > 0:
            for c in np.flatnonzero(self.miss_count):
                add(c, *self.ch_want[c], self.ch_pid[c], self.miss_count[c])
            self.miss_count[:] = 0

    # ---- a window
    def _args(self, ctl, events, B, T, chin) -> Args:
        al, cs = ctl.alloc, ctl.channels
        h = al.h
        a = Args()
        a.nch = cs.n
        a.max_voices = al.max_voices
        a.fade = al.fade
        a.max_key = al.max_key_voices
        a.max_note_frames = al.max_note_frames
        a.min_velocity = ctl.min_velocity
        a.rate = float(ctl.sample_rate)
        a.dec_cb = 200.0 * -np.log10(1e-5)
        a.done_level = 1e-5
        a.vt = _ptr(al.vt)
        a.cap = al.capacity
        a.n = _ptr(self.nvec)
        for f in ("chan", "key", "seq", "released", "sustained", "sost", "killed", "prio", "excl",
                  "silent", "note", "frel", "finished", "changed", "dirty"):
            setattr(a, "h_" + f, _ptr(h[f]))
        a.counters = _ptr(self.counters)
        for f in ("cc", "program", "bend", "bend_range", "fine", "coarse", "pressure",
                  "poly_pressure", "rpn", "rpn_is_nrpn", "priority", "drum"):
            setattr(a, f, _ptr(self._keep(f, cs)))
        self._mt = np.ascontiguousarray(np.broadcast_to(np.asarray(cs.master_tune, np.float64), (cs.n,)))
        self._ma = np.ascontiguousarray(np.broadcast_to(np.asarray(cs.master_atten, np.float64), (cs.n,)))
        a.master_tune, a.master_atten = _ptr(self._mt), _ptr(self._ma)
        a.ch_pid, a.ch_dirty, a.ch_miss = _ptr(self.ch_pid), _ptr(self.ch_dirty), _ptr(self.ch_miss)
        a.ch_want, a.miss_count = _ptr(self.ch_want), _ptr(self.miss_count)
        a.mlog, a.mlog_n, a.mlog_cap = _ptr(self.mlog), _ptr(self.mlog_n), MLOG_CAP
        a.n_pkeys = len(self._pkey)
        a.pkey, a.pval, a.pid_key = _ptr(self._pkey), _ptr(self._pval), _ptr(self._pid_key)
        a.first_drum = self._first_drum
        a.n_presets = ctl.presets.n_presets
        a.G = len(self._gkey)
        for f in ("gkey", "goff", "efpos", "evlo", "evhi"):
            setattr(a, f, _ptr(getattr(self, "_" + f)))
        a.pr_flat = _ptr(self._prflat)
        a.regions = _ptr(self._regions)
        a.templates = _ptr(self._templates)
        a.concave = _ptr(units.concave_table())
        a.events = _ptr(events)
        a.esize = events.dtype.itemsize
        a.n_events = len(events)
        a.B, a.T = int(B), int(T)
        a.chin = _ptr(chin)
        a.result = _ptr(self.result)
        a.h_fresh = _ptr(h["fresh"])
        songs = getattr(ctl, "n_songs", 0) if getattr(ctl, "engine_ensemble", False) else 0
        if songs:                 # gpusynth.ensemble_control.EnsembleControl: many songs, each kept below its limit
            a.n_songs, a.song_limit = int(songs), int(ctl.song_limit)
            self._soc = np.ascontiguousarray(ctl.song_of_chan, np.int64)
            a.song_of_chan = _ptr(self._soc)
            a.evicted = _ptr(ctl.evicted.view(np.uint8))
            a.song_notes, a.song_skipped = _ptr(ctl.song_notes), _ptr(ctl.song_skipped)
            a.song_peak = _ptr(ctl.alloc.song_peak)
        return a

    def _keep(self, f, cs):
        """A channel array as the engine reads and writes it (bool arrays as uint8 views)."""
        v = getattr(cs, f)
        if v.dtype == np.bool_:
            v = v.view(np.uint8)
        assert v.flags.c_contiguous
        return v

    def _sync_in(self, ctl):
        al = ctl.alloc
        self.nvec[0] = al.n
        c = self.counters
        c[0], c[1] = al.seq, al.note_seq
        st = al.stats
        c[2], c[3], c[4] = st["stolen_voices"], st["peak_voices"], st["lost_notes"]
        c[5], c[6] = st.get("notes", 0), st.get("skipped_notes", 0)
        c[7] = ctl.presets.capped_notes

    def _sync_out(self, ctl):
        al = ctl.alloc
        al.n = int(self.nvec[0])
        c = self.counters
        al.seq, al.note_seq = int(c[0]), int(c[1])
        st = al.stats
        st["stolen_voices"], st["peak_voices"], st["lost_notes"] = int(c[2]), int(c[3]), int(c[4])
        for k, v in (("notes", c[5]), ("skipped_notes", c[6])):
            if v or k in st:         # as the definition, which adds the key at the first count
                st[k] = int(v)
        ctl.presets.capped_notes = int(c[7])

    def window(self, ctl, events: np.ndarray, B: int, T: int, chin: np.ndarray):
        """Apply the window's events (EVENT_DTYPE, time order, all before B + T * TICK) from
        frame B; fill ``chin`` [len(CHANNEL_INPUTS), T, channels] (float32, C order). The
        window's new voices and changed times are left marked in the table (``fresh``,
        ``changed``) for ``flush``; so are times the Python side changed (its pending list)."""
        assert chin.dtype == np.float32 and chin.flags.c_contiguous
        assert chin.shape == (len(CHANNEL_INPUTS), T, ctl.channels.n)
        events = np.ascontiguousarray(events)
        al = ctl.alloc
        self._tables(ctl)
        self._channels(ctl)
        al.flush_pending_dirty()
        self._sync_in(ctl)
        lib = self.lib
        lib.ce_begin(self.h, ctypes.byref(self._args(ctl, events, B, T, chin)))
        while True:
            lib.ce_step(self.h, ctypes.byref(self._args(ctl, events, B, T, chin)))
            st = int(self.result[0])
            if st == ST_DONE:
                break
            if st == ST_NEED_CAP:
                al.n = int(self.nvec[0])
                al.grow(int(self.result[2]))
            elif st == ST_LOG_FULL:
                self.drain_misses(ctl, everything=False)
            elif st == ST_SYSEX:
                self._sync_out(ctl)
                i = int(self.result[1])
                e = events[i]
                ctl.apply_event(e, max(int(e["time"]), B))
                self._channels(ctl)
                al.flush_pending_dirty()
                self._sync_in(ctl)
                lib.ce_resync(self.h, ctypes.byref(self._args(ctl, events, B, T, chin)))
        self._sync_out(ctl)
        self.drain_misses(ctl)
        if al.pending_times:          # times the Python side changed (a SysEx reset's kills)
            al.h["changed"][np.concatenate(al.pending_times)] = True
            al.pending_times = []

    def flush(self, ctl, backend):
        """The uploads since the last flush (VoiceAllocator.flush): new voices as one record
        array, the release and kill times of older voices that changed. Both are read from the
        table's ``fresh`` and ``changed`` marks, which move with the slots, so a compaction in
        between (a window retired while the next was prepared) changes nothing."""
        al = ctl.alloc
        h, n = al.h, al.n
        fresh, changed = h["fresh"][:n], h["changed"][:n]
        new = np.flatnonzero(fresh)
        backend.ensure_capacity(n)
        if len(new):
            a, b = int(new[0]), int(new[-1]) + 1
            backend.add_voices(new, al.vt[a:b] if b - a == len(new) else al.vt[new])
        upd = np.flatnonzero(changed & ~fresh)
        if len(upd):
            backend.set_times(upd, al.vt["release"][upd], al.vt["kill"][upd])
        fresh[:] = False
        changed[:] = False

    def remove(self, ctl, finished, backend, t_end: int):
        """VoiceAllocator.remove(finished, backend, t_end), compacted in C."""
        al = ctl.alloc
        h = al.h
        n = al.n
        fin = np.asarray(finished, np.int64)
        if len(fin) == n and n and fin[0] == 0 and fin[-1] == n - 1:
            h["finished"][:n] = True            # every slot (the null backend)
        elif len(fin):
            h["finished"][fin] = True
        al.flush_silent()
        cols = [al.vt] + [h[k] for k in sorted(h)]
        ptrs = (ctypes.c_void_p * len(cols))(*[c.ctypes.data for c in cols])
        sizes = np.array([c.dtype.itemsize for c in cols], np.int64)
        if len(self._moves) < 2 * n:
            self._moves = np.empty(2 * max(n, 1024), np.int64)
        src, dst = self._moves[:n], self._moves[n:2 * n]
        nv = np.array([n], np.int64)
        m = self.lib.ce_compact(nv.ctypes.data, int(t_end), h["finished"].ctypes.data,
                                h["silent"].ctypes.data, len(cols), ptrs, sizes.ctypes.data,
                                src.ctypes.data, dst.ctypes.data)
        if m:
            # (slots past the backend's table: voices of a window applied but not uploaded yet,
            # an overlapped render; their rows are uploaded at their new slots afterwards)
            backend.ensure_capacity(n)
            backend.move(src[:m].copy(), dst[:m].copy())
        al.n = int(nv[0])
