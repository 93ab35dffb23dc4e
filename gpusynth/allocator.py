"""Voice allocation on the host: slots, stealing, exclusive classes, pedals, retrigger.

The allocator owns every piece of control state: the host copy of the voice table (VOICE_DTYPE
records, in slot order) plus per-slot control arrays (key, creation sequence, released /
sustained / sostenuto / killed flags, priority, exclusive class, and the closed-form time at
which the voice falls silent). Release and kill times are set here and queued for the backend
as one small upload per window; new voices are queued as one packed record array. Nothing is
ever read back from the backend except the audio and the finished slots.

Stealing is decided at each note-on's own tick from closed-form envelope levels (as FluidSynth
scores voices), never from rendered levels, so it does not depend on the window or block size:
the voices counted against the limit at time t are those neither killed nor silent by t in
closed form (gpusynth.envelope.silent_from, and the end of a one-shot sample at its base pitch).
The lowest score is stolen first: lower channel priority, then released before held, then the
quieter closed-form level, then the older voice.
"""
from __future__ import annotations

import numpy as np

from . import detmath, envelope, steal
from .compiled import engine_choice
from .voices import VOICE_DTYPE, NEVER, TICK, regions_to_voices, compaction_moves

POOL_FIELDS = ("pstart", "pend", "lstart", "lend", "ipos")
CONTROL = (("chan", np.int32), ("key", np.int16), ("seq", np.int64), ("released", bool),
           ("sustained", bool), ("sost", bool), ("killed", bool), ("prio", np.uint32),
           ("excl", np.int16), ("silent", np.int64), ("note", np.int64), ("frel", np.int64),
           ("finished", bool), ("changed", bool), ("dirty", bool), ("fresh", bool))
# changed / dirty / fresh: the compiled control engine's marks (gpusynth.control_engine): release
# or kill time changed since the last upload; closed-form end to be recomputed; created since
# the last upload (marks move with the slots when the table is compacted)


class VoiceAllocator:
    def __init__(self, max_voices: int, rate: int, fade: int, capacity: int = 1024,
                 max_key_voices: int = 0, max_note_frames: int = 0, engine: str = "auto"):
        """max_key_voices: at most this many notes sounding per (channel, key), 0 = no cap;
        max_note_frames: a note is released at most this long after its note-on, 0 = never;
        engine: the stealing loop of runs (gpusynth.steal: "auto", "native", "reference"), or
        "sequential" for the one-tick-at-a-time path (``allocate`` + ``notes`` per tick); the
        names: gpusynth.compiled."""
        engine = engine_choice(engine, "engine", ("sequential",))
        if engine == "sequential" and max_key_voices:
            raise ValueError("the sequential engine has no per-key cap")
        self.max_voices = int(max_voices)
        self.rate = int(rate)
        self.fade = int(fade)
        self.max_key_voices = max(0, int(max_key_voices))
        self.max_note_frames = max(0, int(max_note_frames))
        self.engine = engine
        self.note_seq = 0
        self.n = 0
        self.capacity = 0
        self.vt = np.zeros(0, VOICE_DTYPE)
        self.h = {nm: np.zeros(0, dt) for nm, dt in CONTROL}
        self.seq = 0
        self.grow(max(16, capacity))
        self.pending_new = []          # slot arrays created since the last flush
        self.pending_times = []        # slot arrays whose release/kill changed
        self._dirty = []               # slot arrays whose closed-form end must be recomputed
        self._peak_pending = []        # note-on times of steal-free runs (peak polyphony)
        self.stats = {"stolen_voices": 0, "lost_notes": 0, "peak_voices": 0}

    # ---- table ----------------------------------------------------------------------------
    def grow(self, need: int):
        if need <= self.capacity:
            return
        cap = max(int(need), 2 * self.capacity)
        vt = np.zeros(cap, VOICE_DTYPE)
        vt[:self.n] = self.vt[:self.n]
        self.vt = vt
        for nm, dt in CONTROL:
            a = np.zeros(cap, dt)
            a[:self.n] = self.h[nm][:self.n]
            self.h[nm] = a
        self.capacity = cap

    def flush(self, backend):
        """Send the window's new voices and time updates to the backend: one packed upload of
        new records, one (release, kill) upload for voices that existed before."""
        self.update_peak()
        new = np.unique(np.concatenate(self.pending_new)) if self.pending_new else np.zeros(0, np.int64)
        backend.ensure_capacity(self.n)
        if len(new):
            backend.add_voices(new, self.vt[new])
        if self.pending_times:
            upd = np.unique(np.concatenate(self.pending_times))
            upd = upd[~np.isin(upd, new)]
            if len(upd):
                backend.set_times(upd, self.vt["release"][upd], self.vt["kill"][upd])
        self.pending_new, self.pending_times = [], []

    def remove(self, finished, backend, t_end=None):
        """Compact the table after the backend reported finished slots (moves on the device
        and in the host copy alike). With ``t_end`` (the end of the window just rendered) a
        finished slot leaves only once its closed-form end is <= t_end: until then it still
        counts against the limit in closed form, and keeping it in the table makes every later
        steal decision see the same candidates whatever the window size (the kernel may find a
        voice silent a little before its closed-form end, and a short window would drop it
        sooner than a long one)."""
        fin = np.unique(np.asarray(finished, np.int64))
        h = self.h
        if t_end is not None:
            h["finished"][fin] = True
            self.flush_silent()
            n = self.n
            fin = np.flatnonzero(h["finished"][:n] & (h["silent"][:n] <= t_end))
        if not len(fin):
            return
        self.flush_silent()
        self._compact(fin, backend)

    def _compact(self, fin, backend):
        """Remove the (sorted, unique) slots ``fin``: the tail voices move into the holes, on
        the device and in the host copy alike."""
        src, dst = compaction_moves(self.n, fin)
        backend.move(src, dst)
        self.vt[dst] = self.vt[src]
        for a in self.h.values():
            a[dst] = a[src]
        self.n -= len(fin)

    def shift_pool(self, delta: int, backend):
        """Every voice's sample indices move by delta (the pool lost or gained a prefix)."""
        if self.n:
            for f in POOL_FIELDS:
                self.vt[f][:self.n] += delta
            backend.shift_pool(self.n, delta)

    # ---- times ----------------------------------------------------------------------------
    def _update_silent(self, slots):
        """Queue slots whose closed-form end changed (computed in one batch when needed)."""
        self._dirty.append(np.asarray(slots, np.int64))

    def flush_pending_dirty(self):
        """Hand the slots whose closed-form end is still to be recomputed to the compiled
        engine (gpusynth.control_engine), as its ``dirty`` marks."""
        if self._dirty:
            self.h["dirty"][np.unique(np.concatenate(self._dirty))] = True
            self._dirty = []

    def flush_silent(self):
        if not self._dirty:
            return
        slots = np.unique(np.concatenate(self._dirty))
        self._dirty = []
        self.h["silent"][slots] = self._silent_of(self.vt[slots])

    def _silent_of(self, v):
        """The closed-form end of records v (as flush_silent computes it)."""
        s = envelope.silent_from(v, self.fade)
        one_shot = v["lmode"] == 0
        if np.any(one_shot):
            inc = detmath.exp2(np.clip(v["pitch"].astype(np.float64), -12000, 12000) / 1200.0)
            end = v["start"] + np.ceil((v["pend"] - v["ipos"]) / inc).astype(np.int64)
            s = np.where(one_shot, np.minimum(s, end), s)
        return s

    def _set_time(self, field, slots, t):
        slots = np.asarray(slots, np.int64)
        t = np.broadcast_to(np.asarray(t, np.int64), slots.shape)
        self.vt[field][slots] = np.minimum(self.vt[field][slots], t)
        self.pending_times.append(slots)
        if field == "kill":       # the end of the fade: no envelope to evaluate
            self.h["silent"][slots] = np.minimum(self.h["silent"][slots], self.vt["kill"][slots] + self.fade)
        else:
            self._update_silent(slots)
        return slots

    def release(self, slots, t):
        """Note-off: the release starts at t (or earlier if it already has)."""
        if len(slots):
            slots = self._set_time("release", slots, t)
            self.h["released"][slots] = True
            self.h["sustained"][slots] = False

    def kill(self, slots, t):
        """Steal / cut: the short fade starts at t."""
        if len(slots):
            self.h["killed"][self._set_time("kill", slots, t)] = True

    def release_all(self, t):
        n = self.n
        if n:
            self._set_time("release", np.arange(n), t)

    # ---- queries --------------------------------------------------------------------------
    def held_on_channel(self, c):
        n, h = self.n, self.h
        return np.flatnonzero((h["chan"][:n] == c) & ~h["released"][:n] & ~h["killed"][:n])

    def on_channel(self, c):
        return self.h["chan"][:self.n] == c

    def has_held_notes(self) -> bool:
        n, h = self.n, self.h
        return bool(np.any((~h["released"][:n] | h["sustained"][:n]) & ~h["killed"][:n]))

    def sounding(self, t) -> np.ndarray:
        """Slots counted against the voice limit at frame t (not killed, not silent by t)."""
        self.flush_silent()
        n, h = self.n, self.h
        return np.flatnonzero(~h["killed"][:n] & (h["silent"][:n] > t))

    # ---- note-on ----------------------------------------------------------------------------
    def allocate(self, regs, note_of, t, c, key, vel, prio, single_time=True, templates=None):
        """Create voices for region records regs (note_of: index into the run arrays t, c, key,
        vel; prio: channel priorities of the notes). With ``single_time`` the notes count as
        simultaneous (one tick): steals as needed at the first note's time. Otherwise the
        caller guarantees that the limit cannot be reached and the notes may span many ticks.
        ``templates``: the regions' voice templates (voices.region_templates), else computed.
        Returns (slots, run sequence numbers) of the voices created."""
        h = self.h
        M = len(regs)
        if not single_time:
            return self._allocate_free(regs, note_of, t, c, key, vel, prio, templates)
        if M > self.max_voices:                      # more than the limit at once: oldest lost
            drop = M - self.max_voices
            self.stats["lost_notes"] += len(np.unique(note_of[:drop]))
            regs, note_of = regs[drop:], note_of[drop:]
            prio = np.asarray(prio)[drop:] if np.ndim(prio) else prio
            templates = templates[drop:] if templates is not None else None
            M = len(regs)
        t_first = int(t[note_of[0]])
        playing = self.sounding(t_first)
        steal = len(playing) + M - self.max_voices
        if steal > 0:
            # score: channel priority, then released before held, then the closed-form level,
            # then age. Levels are needed only in the (priority, released) group the cut falls in
            rel = h["released"][playing] | (h["frel"][playing] <= t_first)
            grp_key = h["prio"][playing].astype(np.int64) * 2 + ~rel
            cut = np.partition(grp_key, steal - 1)[steal - 1]
            sure = playing[grp_key < cut]
            group = playing[grp_key == cut]
            lvl = envelope.level_at(self.vt[group], t_first, self.fade)
            order = np.lexsort((h["seq"][group], lvl))
            victims = np.concatenate([sure, group[order[:steal - len(sure)]]])
            self.kill(victims, np.maximum(t_first, self.vt["start"][victims]))
            self.stats["stolen_voices"] += int(steal)
        self.stats["peak_voices"] = max(self.stats["peak_voices"], len(playing) + M - max(steal, 0))
        slots = self._create(regs, note_of, t, c, key, vel, prio, templates)
        return slots, note_of.astype(np.int64)

    def _create(self, regs, note_of, t, c, key, vel, prio, templates=None):
        h = self.h
        M = len(regs)
        n = self.n
        self.grow(n + M)
        slots = np.arange(n, n + M, dtype=np.int64)
        self.vt[slots] = regions_to_voices(regs, key[note_of], vel[note_of], c[note_of],
                                           t[note_of], self.rate, template=templates)
        h["chan"][slots] = c[note_of]
        h["key"][slots] = key[note_of]
        h["seq"][slots] = self.seq + np.arange(M)
        self.seq += M
        for nm in ("released", "sustained", "sost", "killed", "finished"):
            h[nm][slots] = False
        h["prio"][slots] = prio
        h["excl"][slots] = regs["excl_class"]
        h["note"][slots] = self.note_seq + note_of
        if self.max_note_frames:      # max_note_s: released then at the latest, pedal or not
            h["frel"][slots] = self.vt["start"][slots] + self.max_note_frames
            self.vt["release"][slots] = h["frel"][slots]
        else:
            h["frel"][slots] = NEVER
        self.n = n + M
        self._update_silent(slots)
        self.pending_new.append(slots)
        return slots

    def _allocate_free(self, regs, note_of, t, c, key, vel, prio, templates=None):
        """Voices of notes spread over several ticks when no steal can happen."""
        slots = self._create(regs, note_of, t, c, key, vel, prio, templates)
        self._peak_pending.append(t[note_of])
        return slots, note_of.astype(np.int64)

    def update_peak(self):
        """Peak polyphony at the note-ons of steal-free runs: voices sounding at each note-on
        time (started, not yet silent, not killed), from the final closed-form ends."""
        if not self._peak_pending:
            return
        times = np.unique(np.concatenate(self._peak_pending))
        self._peak_pending = []
        self.flush_silent()
        n, h = self.n, self.h
        starts = np.sort(self.vt["start"][:n])
        ends = np.sort(np.minimum(h["silent"][:n], np.where(h["killed"][:n], self.vt["kill"][:n], NEVER)))
        count = np.searchsorted(starts, times, side="right") - np.searchsorted(ends, times, side="right")
        self.stats["peak_voices"] = max(self.stats["peak_voices"], int(count.max()))

    # ---- a run of note events -----------------------------------------------------------------
    def notes(self, t, c, key, vel, is_on, regs, note_of, prio_of_note, pedal_down,
              single_time=True, templates=None):
        """Apply a run of note-on/off events (arrays in time order), vectorised: regs/note_of
        are the regions the note-ons resolved to; pedal_down(c) -> bool array per event."""
        h = self.h
        run_seq = np.arange(len(t), dtype=np.int64)
        new_slots = np.zeros(0, np.int64)
        new_seq = np.zeros(0, np.int64)
        if len(regs):
            new_slots, new_seq = self.allocate(regs, note_of, t, c, key, vel, prio_of_note,
                                               single_time, templates)
        grp = c.astype(np.int64) * 128 + key
        n = self.n
        # ---- exclusive classes: a new note cuts earlier voices of the same class + channel
        # (applied after the releases; a voice cut in an earlier tick of the run is not released
        # any more, as when the ticks are applied one by one)
        ex_slots = ex_t = np.zeros(0, np.int64)
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
                nxt = next_in_group(eg, nq, vg2, vq2)
                hit = nxt >= 0
                ex_slots, ex_t = vs2[hit], t[nq[nxt[hit]]]
        # ---- retrigger / note-off releases, per (channel, key) group in sequence order
        existing = np.flatnonzero(np.isin(h["chan"][:n].astype(np.int64) * 128 + h["key"][:n], grp)
                                  & ~h["released"][:n] & ~h["killed"][:n])
        existing = existing[~np.isin(existing, new_slots)]
        vslots = np.concatenate([existing, new_slots])
        if len(vslots):
            vseq = np.concatenate([np.full(len(existing), -1, np.int64), new_seq])
            vgrp = h["chan"][vslots].astype(np.int64) * 128 + h["key"][vslots]
            nxt = next_in_group(grp, run_seq, vgrp, vseq)
            has = nxt >= 0
            vs, ni = vslots[has], nxt[has]
            if len(ex_slots) and not single_time:
                cut_tick = np.full(n, NEVER, np.int64)
                np.minimum.at(cut_tick, ex_slots, ex_t // TICK)
                live = cut_tick[vs] >= t[ni] // TICK
                vs, ni = vs[live], ni[live]
            is_off = ~is_on[ni]
            hold = is_off & (pedal_down(c[ni]) | h["sost"][vs])
            h["sustained"][vs[hold]] = True
            h["released"][vs[hold]] = True      # key is up; the pedal holds the sound
            rel = ~hold
            self.release(vs[rel], t[ni[rel]])
        if len(ex_slots):
            self.kill(ex_slots, ex_t)
        self.note_seq += len(t)

    # ---- a run of note events across ticks, stealing decided tick by tick -----------------------
    def run(self, t, c, key, vel, is_on, regs, note_of, prio, pedal_down, templates=None):
        """Apply a run of note-on/off events (arrays in time order, any number of ticks) with
        stealing decided at each tick's first note-on: the same decisions as ``notes`` called
        tick by tick with each tick's note-ons at once (plus the per-key cap), with everything
        that does not depend on the steals computed once for the run and the per-tick loop in
        gpusynth.steal (compiled helper or its numpy twin)."""
        h, vt = self.h, self.vt
        t = np.asarray(t, np.int64)
        self.flush_silent()
        n0 = self.n
        R = len(t)
        tk = t // TICK                                  # t is in time order
        ev_tick = np.concatenate([[0], np.cumsum(tk[1:] != tk[:-1])]).astype(np.int64) if R else tk
        K = int(ev_tick[-1]) + 1 if R else 0
        # ---- more regions in one tick than the limit: the oldest are lost (as allocate)
        if len(regs):
            rt = ev_tick[note_of]
            cnt = np.bincount(rt, minlength=K)
            rank = np.arange(len(regs)) - (np.cumsum(cnt) - cnt)[rt]
            keep = rank >= np.maximum(cnt - self.max_voices, 0)[rt]
            if not keep.all():
                self.stats["lost_notes"] += len(np.unique(note_of[~keep]))
                regs, note_of, prio = regs[keep], note_of[keep], np.asarray(prio)[keep]
                templates = templates[keep] if templates is not None else None
        M = len(regs)
        new_slots = np.zeros(0, np.int64)
        if M:
            new_slots = self._create(regs, note_of, t, c, key, vel, prio, templates)
            self._dirty.pop()                     # computed here at once
            h, vt = self.h, self.vt               # (the table may have grown)
            h["silent"][new_slots] = self._silent_of(vt[new_slots])
        N = self.n
        rt = ev_tick[note_of]
        per_tick = np.bincount(rt, minlength=K)
        tick_new = np.concatenate([[0], np.cumsum(per_tick)]).astype(np.int64)
        t_first = np.zeros(K, np.int64)
        has = per_tick > 0
        t_first[has] = t[note_of[tick_new[:-1][has]]]
        # ---- releases: each held voice's next event of its (channel, key) in the run
        grp = c.astype(np.int64) * 128 + key
        tgrp = h["chan"][:n0].astype(np.int64) * 128 + h["key"][:n0]
        existing = np.flatnonzero(np.isin(tgrp, grp) & ~h["released"][:n0] & ~h["killed"][:n0])
        vslots = np.concatenate([existing, new_slots])
        vseq = np.concatenate([np.full(len(existing), -1, np.int64), note_of])
        vgrp = h["chan"][vslots].astype(np.int64) * 128 + h["key"][vslots]
        nxt = next_in_group(grp, np.arange(R, dtype=np.int64), vgrp, vseq)
        ok = nxt >= 0
        r_slot, ni = vslots[ok], nxt[ok]
        r_hold = ~is_on[ni] & (pedal_down(c[ni]) | h["sost"][r_slot])
        r_tick, r_time = ev_tick[ni], t[ni]
        # ---- exclusive classes: a new voice cuts the earlier voices of its class + channel
        e_slot = e_time = e_tick = np.zeros(0, np.int64)
        if M:
            ex_new = h["excl"][new_slots] != 0
            if np.any(ex_new):
                ns, nq = new_slots[ex_new], note_of[ex_new]
                eg = h["chan"][ns].astype(np.int64) * 65536 + h["excl"][ns]
                cand = np.flatnonzero(np.isin(h["chan"][:n0].astype(np.int64) * 65536 + h["excl"][:n0], eg)
                                      & (h["excl"][:n0] != 0) & ~h["killed"][:n0])
                vs2 = np.concatenate([cand, ns])
                vq2 = np.concatenate([np.full(len(cand), -1, np.int64), nq])
                vg2 = h["chan"][vs2].astype(np.int64) * 65536 + h["excl"][vs2]
                nx2 = next_in_group(eg, nq, vg2, vq2)
                hit = nx2 >= 0
                e_slot, e_time, e_tick = vs2[hit], t[nq[nx2[hit]]], ev_tick[nq[nx2[hit]]]
        # the closed-form end each release gives (with an exclusive cut of the same tick, which
        # the reference's lazy end sees too)
        r_sil = np.zeros(len(r_slot), np.int64)
        rr = np.flatnonzero(~r_hold)
        if len(rr):
            v = vt[r_slot[rr]]
            v["release"] = np.minimum(v["release"], r_time[rr])
            if len(e_slot):
                ek = np.full(N, -1, np.int64)
                et = np.full(N, NEVER, np.int64)
                ek[e_slot], et[e_slot] = e_tick, e_time
                same = ek[r_slot[rr]] == r_tick[rr]
                v["kill"] = np.where(same, np.minimum(v["kill"], et[r_slot[rr]]), v["kill"])
            r_sil[rr] = self._silent_of(v)
        # ---- per-key cap queries: one per note-on that starts voices
        mk = self.max_key_voices
        kq_tick = kq_time = kq_lo = kq_hi = kc_slot = np.zeros(0, np.int64)
        if mk and M:
            qn = np.unique(note_of)
            qg = grp[qn]
            qnote = self.note_seq + qn
            cs = np.concatenate([np.flatnonzero(np.isin(tgrp, qg) & ~h["killed"][:n0]), new_slots])
            comp = (h["chan"][cs].astype(np.int64) * 128 + h["key"][cs]) * (1 << 38) + h["note"][cs]
            order = np.argsort(comp, kind="stable")
            kc_slot, comp = cs[order], comp[order]
            kq_lo = np.searchsorted(comp, qg * (1 << 38), side="left")
            kq_hi = np.searchsorted(comp, qg * (1 << 38) + qnote, side="left")
            kq_tick, kq_time = ev_tick[qn], t[qn]

        def csr(tk, *cols):
            o = np.argsort(tk, kind="stable")
            ptr = np.searchsorted(tk[o], np.arange(K + 1), side="left").astype(np.int64)
            return (ptr,) + tuple(np.ascontiguousarray(x[o]) for x in cols)

        rel_ptr, r_slot, r_time, r_hold, r_sil = csr(r_tick, r_slot, r_time, r_hold, r_sil)
        ex_ptr, e_slot, e_time = csr(e_tick, e_slot, e_time)
        kq_ptr, kq_time, kq_lo, kq_hi = csr(kq_tick, kq_time, kq_lo, kq_hi)
        v = vt[:N]
        k1000, krel = envelope.rates(v)
        rel0, kill0 = v["release"].copy(), v["kill"].copy()
        p = steal.Plan(
            n0=n0, tick_new=tick_new, t_first=t_first, start=v["start"].copy(),
            release=rel0.copy(), kill=kill0.copy(),
            delay=v["ve_delay"].copy(), attack=v["ve_attack"].copy(), hold=v["ve_hold"].copy(),
            k1000=k1000, sus=v["ve_sus"].copy(), krel=krel,
            attg=envelope.cb_gain(np.maximum(v["atten"], np.float32(0.0))),
            seq=h["seq"][:N].copy(), prio=h["prio"][:N].astype(np.int64), frel=h["frel"][:N].copy(),
            released=h["released"][:N].view(np.uint8).copy(),
            sustained=h["sustained"][:N].view(np.uint8).copy(),
            killed=h["killed"][:N].view(np.uint8).copy(), silent=h["silent"][:N].copy(),
            rel_ptr=rel_ptr, rel_slot=r_slot, rel_time=r_time, rel_hold=r_hold.view(np.uint8),
            rel_silent=r_sil, ex_ptr=ex_ptr, ex_slot=e_slot, ex_time=e_time,
            max_key=mk, kq_ptr=kq_ptr, kq_time=kq_time, kq_lo=kq_lo, kq_hi=kq_hi,
            kc_slot=kc_slot, note=h["note"][:N].copy(), max_voices=self.max_voices,
            fade=self.fade, stolen=self.stats["stolen_voices"], peak=self.stats["peak_voices"])
        self.last_engine = steal.run(p, "auto" if self.engine == "sequential" else self.engine)
        # ---- write back; voices that existed before the run and changed are uploaded
        vt["release"][:N], vt["kill"][:N] = p.release, p.kill
        h["released"][:N] = p.released.view(bool)
        h["sustained"][:N] = p.sustained.view(bool)
        h["killed"][:N] = p.killed.view(bool)
        h["silent"][:N] = p.silent
        changed = np.flatnonzero((p.release[:n0] != rel0[:n0]) | (p.kill[:n0] != kill0[:n0]))
        if len(changed):
            self.pending_times.append(changed)
        self.stats["stolen_voices"], self.stats["peak_voices"] = p.stolen, p.peak
        self.note_seq += R
        return new_slots


def next_in_group(ev_grp, ev_seq, v_grp, v_seq):
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


__all__ = ["VoiceAllocator", "next_in_group", "NEVER"]
