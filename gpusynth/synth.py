"""gpusynth.Synth: the synthesizer side of the DirectMusic model (IDirectMusicSynth).

Timing model: audio is produced on a fixed absolute grid of control ticks (TICK = 64 frames)
grouped into internal blocks of ``block_ticks`` ticks. ``render(n, position)`` serves frames from
rendered blocks, so the output is bit-identical whatever sizes the caller asks for, and
``committed_frames`` (the end of the last rendered block) is the earliest sample at which an
event can still be placed exactly. Note-on/off land on their exact sample; controller changes
apply from the start of the tick in which they arrive (at most 64 frames apart).
"""
from __future__ import annotations

import threading
import time as _time
from collections import deque

import numpy as np

from . import events as ev
from .backend import create_backend
from .banks.model import Bank, REGION_DTYPE
from .channels import ChannelState
from .voices import TICK, regions_to_voices, compaction_moves

DEFAULTS = {"sample_rate": 48000, "voices": 512, "channel_groups": 2, "audio_channels": 2}
LIMITS = {"sample_rate": (8000, 192000), "voices": (1, 4_000_000),
          "channel_groups": (1, 4096), "audio_channels": (2, 2)}

PC_DLS, PC_SOFTWARESYNTH, PC_DLS2 = 0x1, 0x4, 0x200


class SynthError(Exception):
    pass


class Synth:
    def __init__(self, backend: str = "numpy", interp: str = "cubic", block_ticks: int = 4,
                 gain: float = 0.5):
        if interp not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be 'linear' or 'cubic', not {interp!r}")
        if not 1 <= int(block_ticks) <= 256:
            raise ValueError("block_ticks must be 1..256")
        self.backend_name = backend
        self.interp = interp
        self.block_ticks = int(block_ticks)
        self.gain = float(gain)
        self.is_open = False
        self._banks = []           # (handle, bank, priority)
        self._next_handle = 1
        self.sink = None
        self._lock = threading.RLock()     # play() may come from another thread than render()

    # ------------------------------------------------------------------ lifecycle
    def open(self, params: dict | None = None) -> dict:
        """Open with DirectMusic-style port parameters. Returns the effective parameters; any
        value that had to be clamped is listed in ``result['clamped']`` (DirectMusic S_FALSE)."""
        if self.is_open:
            raise SynthError("synth is already open (DMUS_E_ALREADYOPEN)")
        params = dict(params or {})
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown port parameter(s): {', '.join(sorted(unknown))}")
        eff, clamped = {}, []
        for k, d in DEFAULTS.items():
            v = params.get(k, d)
            try:
                iv = int(v)
            except (TypeError, ValueError):
                raise ValueError(f"port parameter {k} must be an integer, not {v!r}") from None
            lo, hi = LIMITS[k]
            cv = min(max(iv, lo), hi)
            if cv != iv:
                clamped.append(k)
            eff[k] = cv
        eff["clamped"] = clamped
        self.params = eff
        self.sample_rate = eff["sample_rate"]
        self.max_voices = eff["voices"]
        self.groups = eff["channel_groups"]
        self.capacity = 2 * self.max_voices + 64
        self.backend = create_backend(self.backend_name, self.sample_rate,
                                      min(self.capacity, 4096), self.interp)
        self.channels = ChannelState(self.groups)
        self._ch_dirty = True
        self._ch_inputs = None
        self._queue = ev.make_events(0)
        self._sysex = {}
        self._sysex_next = 0
        self._seq = 0
        self._pos = 0               # next frame render() returns
        self._block_pos = 0         # start of the next internal block
        self._buf = deque()
        self._buf_len = 0
        self._reset_voices()
        self._reset_stats()
        self._rebuild_banks()
        self.is_open = True
        return dict(eff)

    def close(self):
        if not self.is_open:
            raise SynthError("synth is not open (DMUS_E_ALREADYCLOSED)")
        self.is_open = False
        self.backend = None

    def _need_open(self):
        if not self.is_open:
            raise SynthError("synth is not open: call open() first (DMUS_E_SYNTHNOTCONFIGURED)")

    def port_caps(self) -> dict:
        return {"flags": PC_DLS | PC_DLS2 | PC_SOFTWARESYNTH, "class": "output",
                "type": "user_mode_synth", "memory_size": 0x7FFFFFFF,
                "max_channel_groups": LIMITS["channel_groups"][1],
                "max_voices": LIMITS["voices"][1], "max_audio_channels": 2, "effect_flags": 0,
                "description": f"gpusynth ({self.backend_name} backend)"}

    # ------------------------------------------------------------------ priorities
    def _chan_index(self, group: int, ch: int) -> int:
        self._need_open()
        if not (1 <= group <= self.groups and 0 <= ch <= 15):
            raise ValueError(f"channel group must be 1..{self.groups} and channel 0..15")
        return (group - 1) * 16 + ch

    def get_channel_priority(self, group: int, ch: int) -> int:
        return int(self.channels.priority[self._chan_index(group, ch)])

    def set_channel_priority(self, group: int, ch: int, prio: int):
        self.channels.priority[self._chan_index(group, ch)] = np.uint32(prio)

    # ------------------------------------------------------------------ banks
    def download(self, bank: Bank, priority: int | None = None) -> int:
        """Make a bank's presets playable. Banks with a higher priority win lookups; the default
        priority is the download order (a later bank shadows an earlier one)."""
        if not isinstance(bank, Bank):
            raise TypeError("download() takes a gpusynth.banks.Bank (see gpusynth.banks.load_bank)")
        bank.validate()
        h = self._next_handle
        self._next_handle += 1
        self._banks.append((h, bank, h if priority is None else int(priority)))
        if self.is_open:
            self._rebuild_banks()
        return h

    def unload(self, handle: int):
        """Remove a bank. Voices already playing from it finish; later note-ons ignore it."""
        before = len(self._banks)
        self._banks = [b for b in self._banks if b[0] != handle]
        if len(self._banks) == before:
            raise KeyError(f"no bank with handle {handle}")
        if self.is_open:
            self._rebuild_banks()

    def _rebuild_banks(self):
        """Merge the downloaded banks into one sample pool and one region table, and rebuild
        the preset map. While voices play, the old pool stays in front so their sample
        indices stay valid. Every preset's region lookup table is built here."""
        order = sorted(self._banks, key=lambda b: b[2])
        keep = getattr(self, "_n", 0) > 0 and hasattr(self, "_pool")
        pools = [self._pool] if keep else []
        base = len(self._pool) if keep else 0
        regs, presets = [], {}
        self._preset_regions = []
        nreg = 0
        for h, b, prio in order:
            r = b.regions.copy()
            for f in ("start", "end", "loop_start", "loop_end"):
                r[f] += base
            regs.append(r)
            pools.append(b.pool)
            for p in b.presets:
                presets[(p.bank, p.program, bool(p.drum))] = len(self._preset_regions)
                self._preset_regions.append(np.asarray(p.regions, np.int64) + nreg)
            base += len(b.pool)
            nreg += len(r)
        self._pool = np.concatenate(pools) if pools else np.zeros(64, np.float32)
        self._regions = np.concatenate(regs) if regs else np.zeros(0, REGION_DTYPE)
        self._presets = presets
        P = max(len(self._preset_regions), 1)
        self._lut_off = np.zeros((P, 128, 128), np.int32)
        self._lut_cnt = np.zeros((P, 128, 128), np.int32)
        parts, base = [np.zeros(0, np.int64)], 0
        for pid in range(len(self._preset_regions)):   # built here, not on the render path
            flat = self._build_lut(pid, base)
            parts.append(flat)
            base += len(flat)
        self._flat = np.concatenate(parts)              # region indices, per (preset, key, vel)
        self.backend.upload_pool(self._pool)
        self._ch_pid = None

    def _build_lut(self, pid: int, base: int) -> np.ndarray:
        """Fill the (key, velocity) -> (offset, count) table of preset pid; returns its slice of
        the flat region-index list, which starts at offset ``base``."""
        idx = self._preset_regions[pid]
        r = self._regions[idx]
        keys = np.arange(128)
        kin = (keys[None, :] >= r["key_lo"][:, None]) & (keys[None, :] <= r["key_hi"][:, None])
        vin = (keys[None, :] >= r["vel_lo"][:, None]) & (keys[None, :] <= r["vel_hi"][:, None])
        m = kin[:, :, None] & vin[:, None, :]                 # [regions, key, vel]
        cnt = m.sum(axis=0).astype(np.int32)
        kk, vv, rr = np.nonzero(np.transpose(m, (1, 2, 0)))   # sorted by key, vel, region
        off = np.zeros(128 * 128, np.int64)
        off[1:] = np.cumsum(cnt.ravel())[:-1]
        self._lut_off[pid] = (off.reshape(128, 128) + base).astype(np.int32)
        self._lut_cnt[pid] = cnt
        return idx[rr].astype(np.int64)

    def _lookup_preset(self, bank: int, program: int, drum: bool) -> int:
        p = self._presets
        for key in ((bank, program, drum), ((bank >> 7) << 7, program, drum), (0, program, drum)):
            if key in p:
                return p[key]
        if drum:
            if (0, 0, True) in p:
                return p[(0, 0, True)]
            drums = sorted(k for k in p if k[2])
            if drums:
                return p[drums[0]]
        return -1

    def _channel_presets(self) -> np.ndarray:
        if self._ch_pid is None:
            cs = self.channels
            self._ch_pid = np.array([
                self._lookup_preset(cs.bank(c), int(cs.program[c]), bool(cs.drum[c]))
                for c in range(cs.n)], np.int64)
        return self._ch_pid

    # ------------------------------------------------------------------ events
    def play(self, events: np.ndarray, sysex=None):
        with self._lock:
            self._play(events, sysex)

    def _play(self, events: np.ndarray, sysex=None):
        """Queue time-stamped events (EVENT_DTYPE, sample times). ``sysex`` is the list of
        payloads the events' ``sysex`` fields index. Events before the committed position play
        at the start of the next block. Arrival order does not matter; equal times keep order."""
        self._need_open()
        e = np.asarray(events)
        if e.dtype != ev.EVENT_DTYPE:
            raise TypeError("events must be a gpusynth.events.EVENT_DTYPE array")
        if len(e) == 0:
            return
        e = e.copy()
        if np.any((e["chan"] < 0) | (e["chan"] >= self.groups * 16)):
            bad = int(e["chan"][(e["chan"] < 0) | (e["chan"] >= self.groups * 16)][0])
            raise ValueError(f"event channel {bad} outside the {self.groups} open channel groups")
        sx = np.flatnonzero(e["status"] == ev.SYSEX)
        if len(sx):
            if sysex is None:
                raise ValueError("SysEx events given without their payload list")
            for i in sx:
                j = int(e["sysex"][i])
                if not 0 <= j < len(sysex):
                    raise ValueError(f"SysEx index {j} outside the payload list")
                self._sysex[self._sysex_next] = bytes(sysex[j])
                e["sysex"][i] = self._sysex_next
                self._sysex_next += 1
        q = np.concatenate([self._queue, e])
        self._queue = q[np.argsort(q["time"], kind="stable")]

    # ------------------------------------------------------------------ sink (DirectMusic)
    def set_sink(self, sink):
        """Attach the wave sink (IDirectMusicSynth::SetSynthSink); the latency clock is its."""
        self.sink = sink

    def get_latency_clock(self):
        """The sink's latency clock (GetLatencyClock): reference time up to which audio is
        committed. Without a sink: SynthError (DMUS_E_NOSYNTHSINK)."""
        if self.sink is None:
            raise SynthError("no wave sink attached (DMUS_E_NOSYNTHSINK)")
        return self.sink.latency_clock()

    def all_notes_off(self):
        """Release every voice now (used by Ctrl-C in `gpusynth play`)."""
        self._need_open()
        n = self._n
        if n:
            t = np.int64(self._block_pos)
            rel = self.backend.read("release", slice(0, n))
            new = np.minimum(rel, t)
            self.backend.write(np.arange(n), {"release": new})

    @property
    def committed_frames(self) -> int:
        """Audio up to this sample position has already been rendered (latency clock)."""
        return self._block_pos

    def has_held_notes(self) -> bool:
        """True while a voice is held by its key or by a pedal (its release has not begun)."""
        n, h = self._n, self.h
        return bool(np.any((~h["released"][:n] | h["sustained"][:n]) & ~h["killed"][:n]))

    @property
    def pending_events(self) -> int:
        return len(self._queue)

    @property
    def active_voices(self) -> int:
        return self._n

    # ------------------------------------------------------------------ voices (host side)
    def _reset_voices(self):
        cap = self.capacity
        self._n = 0
        self.h = {
            "chan": np.zeros(cap, np.int32), "key": np.zeros(cap, np.int16),
            "seq": np.zeros(cap, np.int64), "start": np.zeros(cap, np.int64),
            "released": np.zeros(cap, bool), "sustained": np.zeros(cap, bool),
            "sost": np.zeros(cap, bool), "killed": np.zeros(cap, bool),
            "prio": np.zeros(cap, np.uint32), "excl": np.zeros(cap, np.int16),
        }

    def _reset_stats(self):
        self.stats = {"voices_sum": 0.0, "blocks": 0, "peak_voices": 0, "stolen_voices": 0,
                      "lost_notes": 0, "notes": 0, "peak_level": 0.0, "render_s": 0.0,
                      "audio_frames": 0, "hard_kills": 0}

    def running_stats(self) -> dict:
        s = self.stats
        audio_s = s["audio_frames"] / self.sample_rate if self.is_open else 0.0
        peak = s["peak_level"]
        return {
            "voices": self._n, "average_voices": s["voices_sum"] / max(s["blocks"], 1),
            "peak_voices": s["peak_voices"], "stolen_voices": s["stolen_voices"],
            "lost_notes": s["lost_notes"], "notes": s["notes"],
            "peak_volume_db": 20.0 * np.log10(peak) if peak > 0 else -200.0,
            "peak_volume_db100": int(round(200.0 * np.log10(peak) * 10)) if peak > 0 else -20000,
            "render_load": s["render_s"] / audio_s if audio_s > 0 else 0.0,
            "audio_seconds": audio_s, "render_seconds": s["render_s"],
            "backend": getattr(self.backend, "name", self.backend_name),
        }

    def _set_time(self, field, slots, t):
        """voice[field] = min(voice[field], t) for the given slots (note-off or cut time)."""
        slots = np.asarray(slots, np.int64)
        t = np.broadcast_to(np.asarray(t, np.int64), slots.shape)
        cur = self.backend.read(field, slots)
        self.backend.write(slots, {field: np.minimum(cur, t)})
        return slots

    def _release(self, slots, t):
        """Note-off for voices: the release starts at t (or earlier if it already has)."""
        if len(slots):
            slots = self._set_time("release", slots, t)
            self.h["released"][slots] = True
            self.h["sustained"][slots] = False

    def _kill(self, slots, t):
        """Steal / cut voices: their short fade starts at t."""
        if len(slots):
            self.h["killed"][self._set_time("kill", slots, t)] = True

    def _held_on_channel(self, c):
        n = self._n
        h = self.h
        return np.flatnonzero((h["chan"][:n] == c) & ~h["released"][:n] & ~h["killed"][:n])

    def _remove_now(self, slots):
        """Drop voices immediately (compaction), used when the table is full."""
        n = self._n
        fin = np.unique(np.asarray(slots, np.int64))
        src, dst = compaction_moves(n, fin)
        self.backend.move(src, dst)
        for a in self.h.values():
            a[dst] = a[src]
        self._n = n - len(fin)

    # ------------------------------------------------------------------ note batches
    def _notes(self, t, c, key, vel, is_on):
        """Apply a run of note-on/off events (arrays in time order), vectorised."""
        h = self.h
        on = np.flatnonzero(is_on)
        run_seq = np.arange(len(t), dtype=np.int64)
        new_slots = np.zeros(0, np.int64)
        new_seq = np.zeros(0, np.int64)
        if len(on):
            pid = self._channel_presets()[c[on]]
            ok = pid >= 0
            on = on[ok]
            pid = pid[ok]
            self.stats["notes"] += int(np.count_nonzero(vel[on] > 0))
            kk, vv = key[on].astype(np.int64), vel[on].astype(np.int64)
            cnt = self._lut_cnt[pid, kk, vv].astype(np.int64)
            off = self._lut_off[pid, kk, vv].astype(np.int64)
            total = int(cnt.sum())
            if total:
                rep = np.repeat(np.arange(len(on)), cnt)
                within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
                ridx = self._flat[np.repeat(off, cnt) + within]
                note_of = on[rep]
                new_slots, new_seq = self._allocate(ridx, note_of, t, c, key, vel)
        # ---- retrigger / note-off releases, per (channel, key) group in sequence order
        grp = c.astype(np.int64) * 128 + key
        n = self._n
        existing = np.flatnonzero(np.isin(h["chan"][:n].astype(np.int64) * 128 + h["key"][:n], grp)
                                  & ~h["released"][:n] & ~h["killed"][:n])
        existing = existing[~np.isin(existing, new_slots)]
        vslots = np.concatenate([existing, new_slots])
        if len(vslots):
            vseq = np.concatenate([np.full(len(existing), -1, np.int64), new_seq])
            vgrp = h["chan"][vslots].astype(np.int64) * 128 + h["key"][vslots]
            nxt = _next_in_group(grp, run_seq, vgrp, vseq)
            has = nxt >= 0
            vs, ni = vslots[has], nxt[has]
            is_off = ~is_on[ni]
            pedal = self.channels.cc[c[ni], 64] >= 64
            hold = is_off & (pedal | h["sost"][vs])
            h["sustained"][vs[hold]] = True
            h["released"][vs[hold]] = True      # key is up; the pedal holds the sound
            rel = ~hold
            self._release(vs[rel], t[ni[rel]])
        # ---- exclusive classes: a new note cuts earlier voices of the same class + channel
        if len(new_slots):
            ex_new = h["excl"][new_slots] != 0
            if np.any(ex_new):
                ns, nq = new_slots[ex_new], new_seq[ex_new]
                eg = h["chan"][ns].astype(np.int64) * 65536 + h["excl"][ns]
                cand = np.flatnonzero(np.isin(h["chan"][:n].astype(np.int64) * 65536 + h["excl"][:n], eg)
                                      & (h["excl"][:n] != 0) & ~h["killed"][:n])
                cand = cand[~np.isin(cand, new_slots)]
                vs2 = np.concatenate([cand, ns])
                vq2 = np.concatenate([np.full(len(cand), -1, np.int64), nq])
                vg2 = h["chan"][vs2].astype(np.int64) * 65536 + h["excl"][vs2]
                nxt = _next_in_group(eg, nq, vg2, vq2)
                hit = nxt >= 0
                self._kill(vs2[hit], t[nq[nxt[hit]]])

    def _allocate(self, ridx, note_of, t, c, key, vel):
        """Create voices for regions ridx (note_of: index into the run arrays). Steals as needed.
        Returns (slots, run sequence numbers) of the voices created."""
        h = self.h
        M = len(ridx)
        # more new voices than the limit: the earliest notes are lost
        if M > self.max_voices:
            drop = M - self.max_voices
            self.stats["lost_notes"] += len(np.unique(note_of[:drop]))
            ridx, note_of = ridx[drop:], note_of[drop:]
            M = len(ridx)
        n = self._n
        playing = np.flatnonzero(~h["killed"][:n])
        steal = len(playing) + M - self.max_voices
        if steal > 0:
            lvl = self.backend.read("level", playing)
            order = np.lexsort((h["seq"][playing], lvl, ~h["released"][playing], h["prio"][playing]))
            victims = playing[order[:steal]]
            t_first = t[note_of[0]]
            self._kill(victims, np.maximum(t_first, h["start"][victims]))
            self.stats["stolen_voices"] += int(steal)
        free = self.capacity - n
        if free < M:
            fading = np.flatnonzero(h["killed"][:n])
            need = M - free
            kt = self.backend.read("kill", fading)
            gone = fading[np.argsort(kt, kind="stable")[:need]]
            self.stats["hard_kills"] += len(gone)
            self._remove_now(gone)
            n = self._n
        self.backend.ensure_capacity(n + M)
        slots = np.arange(n, n + M, dtype=np.int64)
        regs = self._regions[ridx]
        fields = regions_to_voices(regs, key[note_of], vel[note_of], c[note_of], t[note_of],
                                   self.sample_rate)
        self.backend.write(slots, fields)
        h["chan"][slots] = c[note_of]
        h["key"][slots] = key[note_of]
        h["seq"][slots] = self._seq + np.arange(M)
        self._seq += M
        h["start"][slots] = t[note_of]
        h["released"][slots] = False
        h["sustained"][slots] = False
        h["sost"][slots] = False
        h["killed"][slots] = False
        h["prio"][slots] = self.channels.priority[c[note_of]]
        h["excl"][slots] = regs["excl_class"]
        self._n = n + M
        return slots, note_of.astype(np.int64)

    # ------------------------------------------------------------------ channel messages
    def _channel_event(self, e, t):
        cs = self.channels
        st, c, d1, d2 = int(e["status"]), int(e["chan"]), int(e["data1"]), int(e["data2"])
        self._ch_dirty = True
        if st == ev.CONTROL:
            old = int(cs.cc[c, d1])
            cs.control(c, d1, d2)
            if d1 == 64 and old >= 64 > d2:
                n = self._n
                sus = np.flatnonzero((self.h["chan"][:n] == c) & self.h["sustained"][:n] & ~self.h["sost"][:n])
                self._release(sus, t)
            elif d1 == 66:
                n = self._n
                if d2 >= 64 > old:
                    self.h["sost"][self._held_on_channel(c)] = True
                elif old >= 64 > d2:
                    sel = (self.h["chan"][:n] == c) & self.h["sost"][:n]
                    self.h["sost"][:n][sel] = False
                    if cs.cc[c, 64] < 64:
                        self._release(np.flatnonzero(sel & self.h["sustained"][:n]), t)
            elif d1 == 120:
                n = self._n
                self._kill(np.flatnonzero((self.h["chan"][:n] == c) & ~self.h["killed"][:n]), t)
            elif d1 == 121:
                cs.reset_controllers(c)
                n = self._n
                sus = np.flatnonzero((self.h["chan"][:n] == c) & self.h["sustained"][:n])
                self.h["sost"][:n][self.h["chan"][:n] == c] = False
                self._release(sus, t)
            elif d1 >= 123:
                held = self._held_on_channel(c)
                if cs.cc[c, 64] >= 64:
                    self.h["sustained"][held] = True
                    self.h["released"][held] = True
                else:
                    self._release(held, t)
        elif st == ev.PROGRAM:
            cs.program[c] = d1
            self._ch_pid = None
        elif st == ev.PITCH_BEND:
            cs.bend[c] = (d2 << 7) | d1
        elif st == ev.CHAN_PRESSURE:
            cs.pressure[c] = d1
        elif st == ev.POLY_PRESSURE:
            cs.poly_pressure[c, d1] = d2
        elif st == ev.SYSEX:
            data = self._sysex.pop(int(e["sysex"]), b"")
            drum_before = cs.drum.copy()
            if cs.sysex(data) == "reset":
                n = self._n
                self._kill(np.flatnonzero(~self.h["killed"][:n]), t)
                self.h["sost"][:] = False
                self._ch_pid = None
            if not np.array_equal(drum_before, cs.drum):
                self._ch_pid = None

    def _apply_events(self, e: np.ndarray, t0: int):
        """Apply one tick's events in order: runs of notes are vectorised."""
        t = np.maximum(e["time"], t0)
        is_note = (e["status"] == ev.NOTE_ON) | (e["status"] == ev.NOTE_OFF)
        bounds = np.flatnonzero(np.diff(is_note.astype(np.int8))) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(e)]])
        for a, b in zip(starts, ends):
            if is_note[a]:
                s = e[a:b]
                self._notes(t[a:b], s["chan"].astype(np.int64), s["data1"].astype(np.int64),
                            s["data2"].astype(np.int64),
                            (s["status"] == ev.NOTE_ON) & (s["data2"] > 0))
            else:
                for i in range(a, b):
                    self._channel_event(e[i], int(t[i]))

    # ------------------------------------------------------------------ rendering
    def _render_block(self):
        T = self.block_ticks
        B = self._block_pos
        N = T * TICK
        t_start = _time.perf_counter()
        q = self._queue
        cut = int(np.searchsorted(q["time"], B + N, side="left"))
        blk, self._queue = q[:cut], q[cut:]
        tick_of = (np.maximum(blk["time"], B) - B) // TICK
        tick_bounds = np.searchsorted(tick_of, np.arange(T + 1), side="left")
        snaps = []
        for i in range(T):
            a, b = tick_bounds[i], tick_bounds[i + 1]
            if b > a:
                self._apply_events(blk[a:b], B + i * TICK)
            if self._ch_dirty or self._ch_inputs is None:
                self._ch_inputs = self.channels.inputs()
                self._ch_dirty = False
            snaps.append(self._ch_inputs)
        chan_in = {k: np.stack([s[k] for s in snaps]) for k in snaps[0]}
        n_before = self._n
        out, finished = self.backend.render(self._n, B, T, chan_in)
        if len(finished):
            self._remove_now(finished)
        self._block_pos = B + N
        out = out * np.float32(self.gain)
        st = self.stats
        st["render_s"] += _time.perf_counter() - t_start
        st["audio_frames"] += N
        st["blocks"] += 1
        st["voices_sum"] += n_before
        st["peak_voices"] = max(st["peak_voices"], n_before)
        pk = float(np.max(np.abs(out[:, :2]))) if N else 0.0
        st["peak_level"] = max(st["peak_level"], pk)
        self.last_block_peak = pk
        return out

    def render(self, n_frames: int, position: int | None = None, sends: bool = False) -> np.ndarray:
        with self._lock:
            return self._render(n_frames, position, sends)

    def _render(self, n_frames: int, position: int | None = None, sends: bool = False) -> np.ndarray:
        """Render n_frames at sample position ``position`` (must continue the previous call;
        a later position skips ahead, rendering and discarding). Returns float32 (n, 2), or
        (n, 4) with the reverb and chorus send buses when ``sends`` is true."""
        self._need_open()
        n = int(n_frames)
        if n < 0:
            raise ValueError("n_frames must be >= 0")
        if position is not None:
            position = int(position)
            if position < self._pos:
                raise ValueError(f"render position {position} is before the current position {self._pos}")
            while position > self._pos:
                self._take(min(position - self._pos, 1 << 16))
        out = self._take(n)
        return out if sends else out[:, :2].copy()

    def _take(self, n):
        while self._buf_len < n:
            b = self._render_block()
            self._buf.append(b)
            self._buf_len += len(b)
        parts, need = [], n
        while need:
            b = self._buf[0]
            if len(b) <= need:
                parts.append(b)
                self._buf.popleft()
                need -= len(b)
            else:
                parts.append(b[:need])
                self._buf[0] = b[need:]
                need = 0
        self._buf_len -= n
        self._pos += n
        return np.concatenate(parts) if parts else np.zeros((0, 4), np.float32)


def _next_in_group(ev_grp, ev_seq, v_grp, v_seq):
    """For each voice (group, created-at sequence number), the index into the event arrays
    (any order) of the first event of the same group with a larger sequence number; -1 if none."""
    ev_grp = np.asarray(ev_grp, np.int64)
    ev_seq = np.asarray(ev_seq, np.int64)
    order = np.lexsort((ev_seq, ev_grp))
    keys = ev_grp[order] * (1 << 32) + ev_seq[order]
    vk = np.asarray(v_grp, np.int64) * (1 << 32) + np.asarray(v_seq, np.int64)
    pos = np.searchsorted(keys, vk, side="right")
    ok = pos < len(keys)
    res = np.full(len(vk), -1, np.int64)
    pc = np.minimum(pos, len(keys) - 1)
    same = ok & (ev_grp[order][pc] == np.asarray(v_grp, np.int64))
    res[same] = order[pc[same]]
    return res
