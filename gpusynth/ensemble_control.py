"""The shared control path of gpusynth.ensemble: one control path plays many songs at once.

``EnsembleControl`` is a gpusynth.control.ControlPath subclass; ``EnsembleSynth`` is the Synth facade
around it (``control_type = EnsembleControl``), and gpusynth.ensemble drives both through their
public methods. Every song of an ensemble gets its own block of channel groups (song k's
MIDI channel c is the ensemble's channel ``song_off[k] + c``), so one pass per window does
the work of the whole ensemble: one event queue, one controller timeline, one preset lookup and
one vectorised allocation for every song's notes, one voice table. What a song does stays in
its song because everything the control path decides is per channel:

* notes, pedals, sound-off and reset controllers, exclusive classes and retriggers act on
  their own channel's voices;
* SysEx (``_on_sysex``) is applied to the song's own channels and its own master volume,
  master tuning and effect settings (a GS reset silences only that song's voices);
* the voice limit is per song, and a song is never allowed to reach it here: before each run
  of notes, every song's sounding voices plus the regions the run starts for it are counted
  against the limit; a song that could reach it leaves the ensemble (``evicted``) and
  gpusynth.ensemble renders it again on its own, so stealing always happens exactly as in a
  render of that song alone. Below the limit, allocation takes no decision that depends on
  the other voices of the table.

The statistics are kept per song (notes, skipped notes, peak polyphony at note-on times).
"""
from __future__ import annotations

import numpy as np

from . import events as ev
from .allocator import VoiceAllocator
from .constants import fade_frames
from .channels import ChannelState
from .control import ControlPath
from .synth import Synth
from .voices import NEVER

# channel-state arrays a SysEx may change (copied in and out of the song's own state)
_ROW_FIELDS = ("cc", "program", "bend", "bend_range", "fine", "coarse", "pressure",
               "poly_pressure", "rpn", "rpn_is_nrpn", "drum")
_SONG_SHIFT = 44          # peak counting key: song << 44 | frame (2^44 frames: 11 years at 48 kHz)


class EnsembleAllocator(VoiceAllocator):
    """The allocator of a EnsembleSynth: steal-free allocation only (the synth keeps every song
    below its limit), peak polyphony counted per song, and whole songs dropped at once."""

    def __init__(self, *args, song_of_chan: np.ndarray, n_songs: int, **kw):
        super().__init__(*args, **kw)
        self.song_of_chan = song_of_chan
        self.song_peak = np.zeros(n_songs, np.int64)
        self._peak_songs = []

    def _allocate_free(self, regs, note_of, t, c, key, vel, prio, templates=None):
        r = super()._allocate_free(regs, note_of, t, c, key, vel, prio, templates)
        self._peak_songs.append(self.song_of_chan[c[note_of]])
        return r

    def update_peak(self):
        """Per song: voices of that song sounding at each of its note-on times (closed form,
        as VoiceAllocator.update_peak counts them)."""
        if not self._peak_pending:
            return
        times = np.concatenate(self._peak_pending).astype(np.int64)
        songs = np.concatenate(self._peak_songs).astype(np.int64)
        self._peak_pending, self._peak_songs = [], []
        self.flush_silent()
        n, h, vt = self.n, self.h, self.vt
        lim = (1 << _SONG_SHIFT) - 1
        vs = self.song_of_chan[h["chan"][:n]].astype(np.int64) << _SONG_SHIFT
        starts = np.sort(vs + np.minimum(vt["start"][:n], lim))
        end = np.minimum(h["silent"][:n], np.where(h["killed"][:n], vt["kill"][:n], NEVER))
        ends = np.sort(vs + np.clip(end, 0, lim))
        q = (songs << _SONG_SHIFT) + np.minimum(times, lim)
        # voices of earlier songs count once in each sorted array and cancel out
        count = np.searchsorted(starts, q, side="right") - np.searchsorted(ends, q, side="right")
        np.maximum.at(self.song_peak, songs, count)
        self.stats["peak_voices"] = max(self.stats["peak_voices"], int(count.max()))

    def slot_songs(self) -> np.ndarray:
        """The song of each active slot."""
        return self.song_of_chan[self.h["chan"][:self.n]]

    def song_slots(self, k) -> np.ndarray:
        return np.flatnonzero(self.slot_songs() == k)

    def drop(self, slots, backend):
        """Remove ``slots`` from the table at once (songs that ended or left the ensemble)."""
        fin = np.unique(np.asarray(slots, np.int64))
        if len(fin):
            self._compact(fin, backend)


class EnsembleControl(ControlPath):
    """The control path of an ensemble of songs (see the module docstring): the Python definition
    (its ``_note_run`` and ``_on_sysex`` are the group's own), a EnsembleAllocator, per-song
    state. ``setup(groups, limit)`` before each ``open``: ``groups[k]`` channel groups for song
    k, each song's voice limit ``limit``."""

    # the compiled engine's ensemble mode does what _note_run does here (tests/unit/test_control_engine.py
    # compares the two); SysEx stays here (the engine hands every SysEx back to Python)
    engine_ensemble = True

    def setup(self, groups, limit: int):
        groups = [max(1, int(g)) for g in groups]
        self.song_groups = groups
        self.n_songs = len(groups)
        self.song_off = np.concatenate([[0], np.cumsum([16 * g for g in groups])]).astype(np.int64)
        self.song_of_chan = np.repeat(np.arange(self.n_songs), [16 * g for g in groups])
        self.song_limit = int(limit)
        self.evicted = np.zeros(self.n_songs, bool)
        self.song_notes = np.zeros(self.n_songs, np.int64)
        self.song_skipped = np.zeros(self.n_songs, np.int64)
        self.song_fx_changes = [[] for _ in groups]
        self._sub = [None] * self.n_songs

    def open(self, *args, **kw):
        super().open(*args, **kw)
        cs = self.channels
        cs.master_tune = np.zeros(cs.n)          # per channel: each song has its own
        cs.master_atten = np.zeros(cs.n)

    def _new_allocator(self):
        return EnsembleAllocator(self.max_voices, self.sample_rate, fade_frames(self.sample_rate),
                              min(2 * self.max_voices + 64, 4096),
                              max_note_frames=int(round(self.max_note_s * self.sample_rate)),
                              engine="reference", song_of_chan=self.song_of_chan, n_songs=self.n_songs)

    # ---- per-song queries ------------------------------------------------------------------
    def slot_songs(self) -> np.ndarray:
        """The song of each active voice slot."""
        return self.alloc.slot_songs()

    def song_peak_voices(self, k) -> int:
        return int(self.alloc.song_peak[k])

    def song_active_voices(self, k) -> int:
        return len(self.alloc.song_slots(k))

    def song_has_held_notes(self, k) -> bool:
        al = self.alloc
        h, s = al.h, al.song_slots(k)
        return bool(np.any((~h["released"][s] | h["sustained"][s]) & ~h["killed"][s]))

    def evict(self, k):
        """Song k leaves the group (gpusynth.ensemble renders it alone); its voices are
        dropped with ``drop_songs``."""
        self.evicted[k] = True

    def drop_songs(self, songs):
        """Remove the voices of ``songs`` (ended or evicted) from the table at once."""
        al = self.alloc
        al.drop(np.flatnonzero(np.isin(al.slot_songs(), songs)), self.backend)

    # ---- notes -------------------------------------------------------------------------------
    def _note_run(self, e, t):
        """A run of note events of many songs (see ControlPath._note_run): dropped for songs that
        left the ensemble, checked against each song's voice limit (a song that could reach it
        leaves the ensemble), then allocated in one steal-free pass."""
        soc = self.song_of_chan
        song = soc[e["chan"]]
        keep = ~self.evicted[song]
        if self.min_velocity > 0:
            skip = keep & (e["status"] == ev.NOTE_ON) & (e["data2"] > 0) & (e["data2"] < self.min_velocity)
            if np.any(skip):
                self.song_skipped += np.bincount(song[skip], minlength=self.n_songs)
                keep &= ~skip
        if not keep.all():
            e, t, song = e[keep], t[keep], song[keep]
        if not len(e):
            return
        al = self.alloc
        S = self.n_songs
        while True:
            c = e["chan"].astype(np.int64)
            key = e["data1"].astype(np.int64)
            vel = e["data2"].astype(np.int64)
            is_on = (e["status"] == ev.NOTE_ON) & (e["data2"] > 0)
            on, ok, ridx, note_of = self._lookup_regions(c, key, vel, is_on)
            if not len(note_of):
                break
            snd = al.sounding(int(t[0]))
            count = np.bincount(song[note_of], minlength=S) + np.bincount(soc[al.h["chan"][snd]], minlength=S)
            over = np.flatnonzero(count > self.song_limit)
            if not len(over):
                break
            for k in over:
                self.evict(int(k))
            keep = ~self.evicted[song]
            e, t, song = e[keep], t[keep], song[keep]
            if not len(e):
                return
        self._note_preset_misses(c[on])
        self.song_notes += np.bincount(song[ok][vel[ok] > 0], minlength=S)
        a = al.stats
        a["notes"] = a.get("notes", 0) + int(np.count_nonzero(vel[ok] > 0))
        if len(note_of):
            regs, tmpl = self.regions[ridx], self.templates[ridx]
        else:
            regs, tmpl = self.regions[:0], None
        al.notes(t, c, key, vel, is_on, regs, note_of, self.channels.priority[c[note_of]],
                 self._pedal_down, single_time=False, templates=tmpl)

    # ---- SysEx -------------------------------------------------------------------------------
    def _on_sysex(self, e, t):
        """A SysEx message on the channels, master settings and effects of its own song."""
        cs = self.channels
        k = int(self.song_of_chan[int(e["chan"])])
        data = self._sysex.pop(int(e["sysex"]), b"")
        rows = slice(int(self.song_off[k]), int(self.song_off[k + 1]))
        sub = self._sub[k]
        if sub is None:
            sub = self._sub[k] = ChannelState(self.song_groups[k])
        for f in _ROW_FIELDS:
            setattr(sub, f, getattr(cs, f)[rows].copy())
        drum_before = sub.drum.copy()
        fx_before = dict(sub.fx)
        res = sub.sysex(data)
        for f in _ROW_FIELDS:
            getattr(cs, f)[rows] = getattr(sub, f)
        cs.master_tune[rows] = sub.master_tune
        cs.master_atten[rows] = sub.master_atten
        if res == "reset":
            al = self.alloc
            s = al.song_slots(k)
            al.kill(s[~al.h["killed"][s]], t)
            al.h["sost"][s] = False
            self._ch_dirty.update(range(rows.start, rows.stop))
        if not np.array_equal(drum_before, sub.drum):
            self._ch_dirty.update(range(rows.start, rows.stop))
        if sub.fx != fx_before:
            self.song_fx_changes[k].append((t, dict(sub.fx)))

    def song_preset_misses(self, k) -> dict:
        """The preset misses of song k (ControlPath.preset_warnings' counts), on its own channel numbers."""
        lo, hi = int(self.song_off[k]), int(self.song_off[k + 1])
        return {(key[0] - lo,) + tuple(key[1:]): n for key, n in self._preset_misses.items()
                if lo <= key[0] < hi}


class EnsembleSynth(Synth):
    """A host-only Synth for an ensemble of songs (its voice table is the numpy backend's record
    table, rendered by gpusynth.ensemble's launch): the DirectMusic facade (open, download,
    close, gain, effects settings) around a EnsembleControl (``self.control``).
    ``setup(groups, limit)`` before ``open`` (EnsembleControl.setup)."""

    control_type = EnsembleControl

    def setup(self, groups, limit: int):
        self.control.setup(groups, limit)


__all__ = ["EnsembleSynth", "EnsembleControl", "EnsembleAllocator"]


EnsembleControl._engine_base = EnsembleControl
