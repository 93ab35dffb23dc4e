"""How each MIDI event changes the control path's state: the Python/numpy definition that the
compiled control engine (gpusynth.control_engine) mirrors in C.

``EventRules`` is the half of ``gpusynth.control.ControlPath`` that applies single events and
runs of notes: preset and region lookup per channel, note runs (resolved to regions, then
allocated), the channel-message handlers (``_on_control``, ``_on_program``, ``_on_bend``,
``_on_pressure``, ``_on_poly_pressure``, ``_on_sysex``), the dispatch by handler name
(``_DISPATCH``: a subclass's override is the one called), ``apply_event`` and the per-tick
controller timelines. It works on the attributes ControlPath sets up (``channels``,
``presets``, ``alloc``, ``regions``, ``templates``, the preset caches); it is not used alone.
A subclass that overrides one of ``_ENGINE_REPLACES`` keeps the Python path.
"""
from __future__ import annotations

import numpy as np

from . import events as ev
from .banks.model import REGION_DTYPE
from .voices import CHANNEL_INPUTS, TICK


class EventRules:
    """The event-application half of ControlPath (see the module docstring)."""

    # ------------------------------------------------------------------ the definition: notes
    def _lookup_preset(self, bank: int, program: int, drum: bool) -> int:
        return self.presets.lookup(bank, program, drum)

    def _channel_presets(self) -> np.ndarray:
        """Each channel's preset id (-1: none), looked up again for every channel after a
        reset or a bank change (``_stale_all``) and for the channels of program changes
        since the last call (``_ch_dirty``)."""
        cs = self.channels
        if self._stale_all:
            self._stale_all = False
            self._pid_keys = {v: k for k, v in self.presets.presets.items()}
            self._ch_pid = np.full(cs.n, -1, np.int64)
            self._ch_want = {}
            chans = range(cs.n)
        elif self._ch_dirty:
            chans = sorted(self._ch_dirty)
        else:
            return self._ch_pid
        self._ch_dirty = set()
        keys = self._pid_keys
        for c in chans:
            w = (cs.bank(c), int(cs.program[c]), bool(cs.drum[c]))
            pid = self._lookup_preset(*w)
            self._ch_pid[c] = pid
            got = keys.get(int(pid))
            # channels whose preset is a fallback (or missing): what they asked for
            if got != w:
                self._ch_want[c] = (w, got)
            else:
                self._ch_want.pop(c, None)
        return self._ch_pid

    def _note_preset_misses(self, chans: np.ndarray):
        """Count note-ons on channels whose preset is missing or a fallback (preset_warnings)."""
        if not self._ch_want or not len(chans):
            return
        u, n = np.unique(chans, return_counts=True)
        for c, k in zip(u.tolist(), n.tolist()):
            if c in self._ch_want:
                self.count_preset_misses(c, *self._ch_want[c], k)

    def _lookup_regions(self, c, key, vel, is_on):
        """The note-ons of a run (indices), those whose channel has a preset, the regions they
        start and the index of each region's note in the run: (on, ok, region indices,
        note_of). Counts nothing."""
        on = np.flatnonzero(is_on)
        pid = self._channel_presets()[c[on]]
        ok = on[pid >= 0]
        note, ridx = self.presets.regions_for(pid[pid >= 0], key[ok], vel[ok])
        return on, ok, ridx, ok[note]

    def _resolve(self, c, key, vel, is_on):
        """Regions started by the note-ons of a run: (region records, their voice templates,
        index of each region's note in the run); the notes and preset misses counted."""
        on, ok, ridx, note_of = self._lookup_regions(c, key, vel, is_on)
        if len(on):
            self._note_preset_misses(c[on])
            a = self.alloc.stats
            a["notes"] = a.get("notes", 0) + int(np.count_nonzero(vel[ok] > 0))
        if len(ridx):
            return self.regions[ridx], self.templates[ridx], note_of
        return np.zeros(0, REGION_DTYPE), None, np.zeros(0, np.int64)

    def _note_run(self, e, t):
        """Apply a run of note-on/off events (no channel event between them; times t in order,
        possibly across many ticks). When the voice limit cannot be reached within the run
        (voices sounding at its start + every region it starts <= the limit), the whole run is
        allocated in one vectorised pass; otherwise tick by tick, each tick's note-ons at once
        (stealing decided at that tick from closed-form levels: VoiceAllocator.run, or tick by
        tick through VoiceAllocator.notes with alloc_engine="sequential"). All give the same
        voices. Note-ons below ``min_velocity`` are dropped here, before anything sees them."""
        if self.min_velocity > 0:
            skip = (e["status"] == ev.NOTE_ON) & (e["data2"] > 0) & (e["data2"] < self.min_velocity)
            if np.any(skip):
                a = self.alloc.stats
                a["skipped_notes"] = a.get("skipped_notes", 0) + int(np.count_nonzero(skip))
                e, t = e[~skip], t[~skip]
                if not len(e):
                    return
        c = e["chan"].astype(np.int64)
        key = e["data1"].astype(np.int64)
        vel = e["data2"].astype(np.int64)
        is_on = (e["status"] == ev.NOTE_ON) & (e["data2"] > 0)
        al = self.alloc
        regs, tmpl, note_of = self._resolve(c, key, vel, is_on)
        one_tick = (t[-1] - t[0]) < TICK and (t[0] // TICK) == (t[-1] // TICK)
        if al.engine != "sequential":
            if (not one_tick and not al.max_key_voices
                    and len(al.sounding(int(t[0]))) + len(regs) <= al.max_voices):
                self._notes(t, c, key, vel, is_on, regs, tmpl, note_of, single_time=False)
            else:
                al.run(t, c, key, vel, is_on, regs, note_of, self.channels.priority[c[note_of]],
                       self._pedal_down, templates=tmpl)
            return
        if one_tick or len(al.sounding(int(t[0]))) + len(regs) <= al.max_voices:
            self._notes(t, c, key, vel, is_on, regs, tmpl, note_of, single_time=one_tick)
            return
        tick = t // TICK
        cuts = np.flatnonzero(np.diff(tick)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(t)]):
            m = (note_of >= lo) & (note_of < hi)
            self._notes(t[lo:hi], c[lo:hi], key[lo:hi], vel[lo:hi], is_on[lo:hi], regs[m],
                        tmpl[m] if tmpl is not None else None, note_of[m] - lo, single_time=True)

    def _pedal_down(self, ch):
        return self.channels.cc[ch, 64] >= 64

    def _notes(self, t, c, key, vel, is_on, regs, tmpl, note_of, single_time=True):
        self.alloc.notes(t, c, key, vel, is_on, regs, note_of,
                         self.channels.priority[c[note_of]], self._pedal_down,
                         single_time=single_time, templates=tmpl)

    # ------------------------------------------------------------------ the definition: channels
    def _on_control(self, c, d1, d2, t):
        cs, al, h = self.channels, self.alloc, self.alloc.h
        old = int(cs.cc[c, d1])
        cs.control(c, d1, d2)
        n = al.n
        if d1 == 64 and old >= 64 > d2:                 # sustain pedal up
            al.release(np.flatnonzero(al.on_channel(c) & h["sustained"][:n] & ~h["sost"][:n]), t)
        elif d1 == 66:                                  # sostenuto
            if d2 >= 64 > old:
                h["sost"][al.held_on_channel(c)] = True
            elif old >= 64 > d2:
                sel = al.on_channel(c) & h["sost"][:n]
                h["sost"][:n][sel] = False
                if cs.cc[c, 64] < 64:
                    al.release(np.flatnonzero(sel & h["sustained"][:n]), t)
        elif d1 == 120:                                 # all sound off
            al.kill(np.flatnonzero(al.on_channel(c) & ~h["killed"][:n]), t)
        elif d1 == 121:                                 # reset all controllers
            cs.reset_controllers(c)
            sus = np.flatnonzero(al.on_channel(c) & h["sustained"][:n])
            h["sost"][:n][al.on_channel(c)] = False
            al.release(sus, t)
        elif d1 >= 123:                                 # all notes off (and mode changes)
            held = al.held_on_channel(c)
            if cs.cc[c, 64] >= 64:
                h["sustained"][held] = True
                h["released"][held] = True
            else:
                al.release(held, t)

    def _on_program(self, c, d1, d2, t):
        self.channels.program[c] = d1
        self._ch_dirty.add(c)

    def _on_bend(self, c, d1, d2, t):
        self.channels.bend[c] = (d2 << 7) | d1

    def _on_pressure(self, c, d1, d2, t):
        self.channels.pressure[c] = d1

    def _on_poly_pressure(self, c, d1, d2, t):
        # stored for completeness; no default SF2/DLS modulator reads poly pressure
        self.channels.poly_pressure[c, d1] = d2

    def _on_sysex(self, e, t):
        cs = self.channels
        data = self._sysex.pop(int(e["sysex"]), b"")
        drum_before = cs.drum.copy()
        fx_before = dict(cs.fx)
        if cs.sysex(data) == "reset":
            n = self.alloc.n
            self.alloc.kill(np.flatnonzero(~self.alloc.h["killed"][:n]), t)
            self.alloc.h["sost"][:] = False
            self._stale_all = True
        if not np.array_equal(drum_before, cs.drum):
            self._stale_all = True
        if cs.fx != fx_before:          # GS/XG reverb/chorus type or level: from this tick on
            self._fx_changes.append((t, dict(cs.fx)))

    # status -> handler name, looked up on the instance (a subclass's override is the one called)
    _DISPATCH = {ev.CONTROL: "_on_control", ev.PROGRAM: "_on_program", ev.PITCH_BEND: "_on_bend",
                 ev.CHAN_PRESSURE: "_on_pressure", ev.POLY_PRESSURE: "_on_poly_pressure"}
    # what the compiled control engine does in C: a subclass overriding any of these keeps the
    # Python path (_make_engine), so no override is silently bypassed
    _ENGINE_REPLACES = ("_on_control", "_on_program", "_on_bend", "_on_pressure",
                        "_on_poly_pressure", "_note_run", "_notes", "_resolve", "_lookup_regions",
                        "_channel_presets", "_lookup_preset", "_note_preset_misses",
                        "_timeline_event", "_chin_snapshot", "_pedal_down")

    def apply_event(self, e, t: int):
        """Apply one channel message or SysEx event ``e`` (an EVENT_DTYPE record) at frame
        ``t`` (the compiled engine calls this for SysEx)."""
        st = int(e["status"])
        if st == ev.SYSEX:
            self._on_sysex(e, t)
        else:
            name = self._DISPATCH.get(st)
            if name is not None:
                getattr(self, name)(int(e["chan"]), int(e["data1"]), int(e["data2"]), t)
        self._ch_inputs = None

    def _chin_snapshot(self) -> np.ndarray:
        if self._ch_inputs is None:
            d = self.channels.inputs()
            self._ch_inputs = np.stack([d[k] for k in CHANNEL_INPUTS]).astype(np.float32)
        return self._ch_inputs

    def _timeline_event(self, chin, e, t, tk, done_tick):
        """Apply a channel event at tick tk: ticks before it keep the controller snapshot of
        before. Returns the first tick not yet filled."""
        if tk > done_tick:
            chin[:, done_tick:tk] = self._chin_snapshot()[:, None, :]
            done_tick = tk
        self.apply_event(e, t)
        return done_tick
