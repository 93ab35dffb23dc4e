"""gpusynth.Synth: the synthesizer side of the DirectMusic model (IDirectMusicSynth).

The facade: open/close, port caps, download/unload, play, render, running stats, channel
priorities, sink. Its parts: the event queue (gpusynth.events), MIDI dispatch by message table
(``_DISPATCH`` below, data lengths in gpusynth.midi), channel state and per-tick controller
timelines (gpusynth.channels), voice allocation and all voice control state
(gpusynth.allocator), and a render backend that only renders (gpusynth.backend).

Timing model: audio is produced on a fixed absolute grid of control ticks (TICK = 64 frames),
rendered in windows of whole ticks: ``render(n, position)`` renders the ticks it needs in
windows of at most ``max_window_ticks`` (offline: long windows, one kernel launch each; a
real-time sink asking for 256 frames gets 4-tick windows). Note-on/off land on their exact
sample; controller changes apply from the start of the tick in which they arrive. Every
decision (allocation, stealing, releases) is taken on the host at the event's own tick from
closed forms, and the mix is exact (int64 fixed point), so the output is bit-identical whatever
the caller's block size or the window size. ``committed_frames`` (the end of the last rendered
tick) is the earliest sample at which an event can still be placed exactly.
"""
from __future__ import annotations

import threading
import time as _time
from collections import deque

import numpy as np

from . import events as ev
from .allocator import VoiceAllocator
from .backend import create_backend
from .backend.numpy_backend import fade_frames
from .banks.model import Bank, REGION_DTYPE
from .channels import ChannelState
from .presets import PresetMap
from .voices import TICK, CHANNEL_INPUTS, region_templates

# Port parameters (DMUS_PORTPARAMS8): name -> default, and the range a value is clamped to.
# "share" (fShare) is accepted and always reported 0 (a software synth is not shared: a request
# for 1 is clamped, DirectMusic's S_FALSE); "features" (dwFeatures) is reported as given.
DEFAULTS = {"sample_rate": 48000, "voices": 512, "channel_groups": 2, "audio_channels": 2,
            "share": 0, "features": 0}
LIMITS = {"sample_rate": (8000, 192000), "voices": (1, 4_000_000),
          "channel_groups": (1, 4096), "audio_channels": (2, 2),
          "share": (0, 0), "features": (0, 0xFFFFFFFF)}

# GUID_DMUS_PROP_Volume: two items in 1/100 dB, each clamped to VOLUME_RANGE; DirectMusic's
# defaults are 0 and +600. The synth's output gain is ``gain * 10 ** ((v0 + v1 - 600) / 2000)``,
# so the defaults leave ``gain`` as it is. DirectMusic's reference level (a full-scale region
# at velocity 127, CC7 127, centre pan plays at +12 dB - 3 dB per side: base +6 dB plus item
# 1's +6 dB) is ``gain=DIRECTMUSIC_GAIN``; the default gain 0.5 leaves 18.0 dB of headroom
# below it for dense mixes. Not modelled: native's cap of each voice's total gain at +6 dB.
VOLUME_RANGE = (-20000, 2000)
VOLUME_DEFAULTS = (0, 600)
DIRECTMUSIC_GAIN = 10.0 ** (1200 / 2000)

PC_DLS, PC_SOFTWARESYNTH, PC_DLS2 = 0x1, 0x4, 0x200
# DirectMusic effect flags (DMUS_PORTPARAMS.dwEffectFlags, DMUS_PORTCAPS.dwEffectFlags)
DMUS_EFFECT_NONE, DMUS_EFFECT_REVERB, DMUS_EFFECT_CHORUS = 0x0, 0x1, 0x2
# Synth keyword -> gpusynth.effects parameter (reverb_*, chorus_*)
_REVERB_KW = {"reverb_room": "room", "reverb_time": "time", "reverb_damp": "damp",
              "reverb_width": "width", "reverb_level": "level", "reverb_predelay": "predelay"}
_CHORUS_KW = {"chorus_voices": "voices", "chorus_level": "level", "chorus_speed": "speed",
              "chorus_depth": "depth", "chorus_type": "type", "chorus_width": "width"}


# controllers that change what later notes do: bank select, pedals, sound/notes off, resets
_ALLOC_CCS = np.array([0, 32, 64, 66, 120, 121, 123, 124, 125, 126, 127])


class SynthError(Exception):
    pass


def apply_effects(fx, changes, out, B):
    """The effect stage (gpusynth.effects ``fx``) on a window's gained buses ``out`` [N, 4]
    starting at frame ``B``: the wet signal is added to the dry columns in place. ``changes``:
    the window's (sample time, settings) from GS/XG SysEx, applied from the start of the tick
    they arrived in (as controllers are)."""
    a = 0
    for t, settings in changes:
        k = max(0, (int(t) - B) // TICK * TICK)
        if k > a:
            if fx.on:
                fx.add_to(out[a:k])
            else:
                fx.chorus.pos += k - a
            a = k
        fx.apply_sysex(settings)
    if len(out) > a:
        if fx.on:
            fx.add_to(out[a:])
        else:
            fx.chorus.pos += len(out) - a


def format_preset_warnings(misses: dict, groups: int) -> list:
    """Synth.preset_warnings' lines from its counts {(channel, wanted, used): notes}."""
    out = []
    for (c, (bank, prog, drum), used), n in sorted(misses.items()):
        grp, ch = divmod(c, 16)
        where = f"channel {ch + 1}" + (f" (group {grp + 1})" if groups > 1 else "")
        kind = "drum kit" if drum else "program"
        what = f"no {kind} {prog} in bank {bank >> 7}:{bank & 127}"
        if used is None:
            out.append(f"{where}: {what}: {n} note(s) silent")
        else:
            out.append(f"{where}: {what}: {n} note(s) played with bank {used[0] >> 7}:"
                       f"{used[0] & 127} {'drum kit' if used[2] else 'program'} {used[1]}")
    return out


def _copy_channels(dst: ChannelState, src: ChannelState, rows: slice, scalars: bool = True):
    """Copy the per-channel rows ``rows`` of every per-channel array of ``src`` into ``dst``
    (and, with ``scalars``, the global values such as master tuning)."""
    for k, v in vars(src).items():
        if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == src.n:
            getattr(dst, k)[rows] = v[rows]
        elif scalars and k not in ("groups", "n") and not isinstance(v, np.ndarray):
            setattr(dst, k, v)


class Synth:
    def __init__(self, backend: str | None = None, interp: str = "cubic", block_ticks: int = 4,
                 gain: float = 0.5, max_window_ticks: int = 512, sends: bool = False,
                 min_velocity: int = 0, max_key_voices: int = 0, max_note_s: float = 0.0,
                 alloc_engine: str = "auto", effects: bool = True, reverb: bool = True,
                 chorus: bool = True, effects_engine: str = "auto", **effect_params):
        """block_ticks: the smallest window (a render call renders whole multiples of it);
        max_window_ticks: the longest window (one kernel launch); sends: also render the
        reverb and chorus send buses (``render(..., sends=True)``).

        Black-MIDI note limits (0 = off; applied on the host at each note's own time, so
        deterministic and independent of window and block sizes): ``min_velocity``: note-ons
        below this velocity are ignored (``running_stats()["skipped_notes"]``; their note-offs
        still release whatever that key holds); ``max_key_voices``: at most this many notes
        sounding per (channel, key), a note-on beyond it kills the oldest notes' voices on that
        channel + key (a steal, counted in ``stolen_voices``); ``max_note_s``: a note is
        released at most this long after its note-on (as if its note-off came then; the
        sustain pedal does not extend it). ``alloc_engine``: the per-tick stealing loop
        (gpusynth.steal): "auto" (compiled helper if a C++ compiler works, else numpy),
        "native", "numpy", or "reference" (one tick at a time through VoiceAllocator.notes;
        no per-key cap). All engines give the same bits.

        Effects (gpusynth.effects: reverb and chorus on the send buses, added to the dry mix;
        on by default, as in FluidSynth and DirectMusic): ``effects=False`` turns both off,
        ``reverb``/``chorus`` each; the port parameter ``effects`` of ``open()`` (flags
        DMUS_EFFECT_REVERB | DMUS_EFFECT_CHORUS) overrides them. Knobs (FluidSynth's names and
        defaults): ``reverb_room`` 0..1 (0.2: RT60 0.91 s), ``reverb_time`` RT60 in s
        (overrides the room), ``reverb_damp`` 0..1 (0), ``reverb_width`` 0..100 (0.5),
        ``reverb_level`` 0..1 (0.9), ``reverb_predelay`` s (0); ``chorus_voices`` 0..99 (3),
        ``chorus_level`` 0..10 (2), ``chorus_speed`` Hz 0.1..5 (0.3), ``chorus_depth`` ms
        0..40 (8), ``chorus_type`` "sine"|"triangle", ``chorus_width`` 0..10 (10).
        ``effects_engine``: "auto" (compiled helper, else numpy), "native", "numpy"."""
        bad = set(effect_params) - set(_REVERB_KW) - set(_CHORUS_KW)
        if bad:
            raise TypeError(f"Synth() got unexpected keyword argument(s): {', '.join(sorted(bad))}")
        self._rev_params = {_REVERB_KW[k]: v for k, v in effect_params.items()
                            if k in _REVERB_KW and (v is not None or k == "reverb_time")}
        self._cho_params = {_CHORUS_KW[k]: v for k, v in effect_params.items()
                            if k in _CHORUS_KW and v is not None}
        self.effect_flags = ((DMUS_EFFECT_REVERB if effects and reverb else 0)
                             | (DMUS_EFFECT_CHORUS if effects and chorus else 0))
        self.effects_engine = effects_engine
        from .effects import Effects
        Effects(48000, reverb_params=self._rev_params, chorus_params=self._cho_params,
                engine="numpy")              # validates the knobs now, not at open()
        if interp not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be 'linear' or 'cubic', not {interp!r}")
        if int(min_velocity) < 0 or int(max_key_voices) < 0 or float(max_note_s) < 0:
            raise ValueError("min_velocity, max_key_voices and max_note_s must be >= 0")
        if alloc_engine not in ("auto", "native", "numpy", "reference"):
            raise ValueError(f"alloc_engine must be auto, native, numpy or reference, not {alloc_engine!r}")
        if alloc_engine == "reference" and int(max_key_voices):
            raise ValueError("alloc_engine='reference' has no max_key_voices")
        self.min_velocity = int(min_velocity)
        self.max_key_voices = int(max_key_voices)
        self.max_note_s = float(max_note_s)
        self.alloc_engine = alloc_engine
        if not 1 <= int(block_ticks) <= 256:
            raise ValueError("block_ticks must be 1..256")
        if not int(block_ticks) <= int(max_window_ticks) <= 8192:
            raise ValueError("max_window_ticks must be block_ticks..8192")
        if backend is None or str(backend).strip().lower() == "auto":
            # the best backend that runs here (cupy, native, numpy), or $GPUSYNTH_BACKEND when
            # no backend is given; `gpusynth info` shows the same choice
            from .backend.select import resolve_backend
            backend, self.backend_reason = resolve_backend(backend)
        else:
            self.backend_reason = "requested by argument"
        self.backend_name = backend
        self.interp = interp
        self.block_ticks = int(block_ticks)
        self.max_window_ticks = int(max_window_ticks) // int(block_ticks) * int(block_ticks)
        self.gain = DIRECTMUSIC_GAIN if gain == "directmusic" else float(gain)
        self.volume = list(VOLUME_DEFAULTS)
        self.sends = bool(sends)
        self.is_open = False
        self.sample_rate = None    # set by open()
        self._banks = []           # (handle, bank, priority)
        self._next_handle = 1
        self.sink = None
        self.master_clock = None
        self._lock = threading.RLock()     # play() may come from another thread than render()

    # ------------------------------------------------------------------ lifecycle
    def open(self, params: dict | None = None) -> dict:
        """Open with DirectMusic-style port parameters. Returns the effective parameters; any
        value that had to be clamped is listed in ``result['clamped']`` (DirectMusic S_FALSE)."""
        if self.is_open:
            raise SynthError("synth is already open (DMUS_E_ALREADYOPEN)")
        params = dict(params or {})
        fx_flags = params.pop("effects", self.effect_flags)
        try:
            fx_flags = int(fx_flags)
        except (TypeError, ValueError):
            raise ValueError(f"port parameter effects must be an integer, not {fx_flags!r}") from None
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
        fx_eff = fx_flags & (DMUS_EFFECT_REVERB | DMUS_EFFECT_CHORUS)
        if fx_eff != fx_flags:
            clamped.append("effects")
        eff["effects"] = fx_eff
        eff["clamped"] = clamped
        self.params = eff
        self.sample_rate = eff["sample_rate"]
        self.max_voices = eff["voices"]
        self.groups = eff["channel_groups"]
        self.backend = create_backend(self.backend_name, self.sample_rate,
                                      min(2 * self.max_voices + 64, 4096), self.interp)
        self.channels = ChannelState(self.groups)
        if self.alloc_engine in ("auto", "native"):
            # compile/load the stealing loop now, not at the first note-on: a first build takes
            # about a second, which in real-time play is a second of underruns
            from . import steal
            steal.load()
        from .effects import Effects
        self.fx = Effects(self.sample_rate, bool(fx_eff & DMUS_EFFECT_REVERB),
                          bool(fx_eff & DMUS_EFFECT_CHORUS), self._rev_params, self._cho_params,
                          engine=self.effects_engine)
        self._fx_changes = []       # (sample time, system-effect settings) from GS/XG SysEx
        self._ch_inputs = None
        self._ch_dirty = set()      # channels whose preset id is looked up again (program change)
        self._queue = ev.make_events(0)
        self._source = None
        self._source_max = 1 << 20
        self._sysex = {}
        self._sysex_next = 0
        self._pos = 0               # next frame render() returns
        self._block_pos = 0         # start of the next internal block
        self._buf = deque()
        self._buf_len = 0
        self._reset_voices()
        self._reset_stats()
        self._rebuild_banks()
        self.is_open = True
        if self.sink is not None:
            self.sink.init(self)     # the sink follows the (new) rate and starts at sample 0
        return dict(eff)

    def close(self):
        """Close the port; an attached active sink is deactivated (its source is gone)."""
        if not self.is_open:
            raise SynthError("synth is not open (DMUS_E_ALREADYCLOSED)")
        if self.sink is not None and self.sink.active:
            self.sink.deactivate()
        self.is_open = False
        self.backend = None

    # ------------------------------------------------------------------ gain (DirectMusic volume)
    @property
    def gain(self) -> float:
        """Linear output gain: the base gain times the volume property's offset."""
        v = self.volume
        return self._gain * 10.0 ** ((v[0] + v[1] - sum(VOLUME_DEFAULTS)) / 2000.0)

    @gain.setter
    def gain(self, g: float):
        self._gain = float(g)

    def set_volume(self, value: int, item: int = 0) -> int:
        """GUID_DMUS_PROP_Volume item 0 or 1, in 1/100 dB (clamped to -20000..+2000); the two
        items add. Returns the value kept. Takes effect from the next rendered window."""
        if item not in (0, 1):
            raise ValueError(f"volume item {item} does not exist (DMUS_E_UNKNOWN_PROPERTY)")
        v = min(max(int(value), VOLUME_RANGE[0]), VOLUME_RANGE[1])
        self.volume[item] = v
        return v

    def get_volume(self, item: int = 0) -> int:
        if item not in (0, 1):
            raise ValueError(f"volume item {item} does not exist (DMUS_E_UNKNOWN_PROPERTY)")
        return self.volume[item]

    # ------------------------------------------------------------------ channel groups
    def set_channel_groups(self, groups: int) -> int:
        """IDirectMusicSynth::SetNumChannelGroups on an open synth: the groups kept keep their
        state (controllers, programs, priorities); added groups start from the defaults;
        voices of removed groups are cut (as by All Sound Off) and their queued events
        dropped. The count is clamped to the open limits; returns the effective count."""
        with self._lock:
            self._need_open()
            lo, hi = LIMITS["channel_groups"]
            g = min(max(int(groups), lo), hi)
            old = self.channels
            if g > old.groups:                  # grow the state, copying the old channels
                new = ChannelState(g)
                _copy_channels(new, old, slice(0, old.n))
                self.channels = new
            elif g < self.groups:               # keep the arrays (fading voices read them)
                first = g * 16
                al = self.alloc
                n = al.n
                gone = np.flatnonzero((al.h["chan"][:n] >= first) & ~al.h["killed"][:n])
                al.kill(gone, self._block_pos)
                q = self._queue
                self._queue = q[q["chan"] < first]
                # removed channels go back to the defaults, ready to be added again
                _copy_channels(old, ChannelState(old.groups), slice(first, old.n), scalars=False)
            self.groups = g
            self.params["channel_groups"] = g
            self._ch_pid = None
            self._ch_inputs = None
            return g

    def _need_open(self):
        if not self.is_open:
            raise SynthError("synth is not open: call open() first (DMUS_E_SYNTHNOTCONFIGURED)")

    def port_caps(self) -> dict:
        return {"flags": PC_DLS | PC_DLS2 | PC_SOFTWARESYNTH, "class": "output",
                "type": "user_mode_synth", "memory_size": 0x7FFFFFFF,
                "max_channel_groups": LIMITS["channel_groups"][1],
                "max_voices": LIMITS["voices"][1], "max_audio_channels": 2,
                "effect_flags": DMUS_EFFECT_REVERB | DMUS_EFFECT_CHORUS,
                "description": f"gpusynth ({self.backend_name} backend)"}

    # ------------------------------------------------------------------ priorities
    def _chan_index(self, group: int, ch: int) -> int:
        self._need_open()
        if not (1 <= group <= self.groups and 0 <= ch <= 15):
            raise ValueError(f"channel group must be 1..{self.groups} and channel 0..15")
        return (group - 1) * 16 + ch

    def get_channel_priority(self, group: int, ch: int) -> int:
        i = self._chan_index(group, ch)         # SynthError before open, not AttributeError
        return int(self.channels.priority[i])

    def set_channel_priority(self, group: int, ch: int, prio: int):
        i = self._chan_index(group, ch)
        if not 0 <= int(prio) <= 0xFFFFFFFF:
            raise ValueError(f"priority {prio} is not a DWORD")
        self.channels.priority[i] = np.uint32(prio)

    # ------------------------------------------------------------------ banks
    def download(self, bank: Bank, priority: int | None = None, validate: bool = True) -> int:
        """Make a bank's presets playable. Banks with a higher priority win lookups; the default
        priority is the download order (a later bank shadows an earlier one). ``validate=False``
        skips the bank's checks, for a bank object another synth has already validated
        (gpusynth.ensemble opens one synth per song on one bank)."""
        if not isinstance(bank, Bank):
            raise TypeError("download() takes a gpusynth.banks.Bank (see gpusynth.banks.load_bank)")
        if validate:
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
        """Merge the downloaded banks (gpusynth.presets.PresetMap: one pool, one region table,
        the preset numbering and the region lookup). While voices play, the current pool stays
        in front so their sample indices stay valid; it is dropped again (and the voices'
        indices shifted on the device) as soon as no voice reads it (``_compact_pool``)."""
        order = sorted(self._banks, key=lambda b: b[2])
        keep = hasattr(self, "alloc") and self.alloc.n > 0 and hasattr(self, "presets")
        base = self.presets.pool if keep else None
        # the same banks at the same rate as the last build (a synth reopened for the next
        # song: gpusynth.api.Renderer, gpusynth.ensemble): its tables are still right
        built = [(b, p) for _, b, p in order], self.sample_rate
        last = getattr(self, "_built", None)
        if not keep and last is not None and last[1] == built[1] and len(last[0]) == len(built[0]) \
                and all(x is y and p == q for (x, p), (y, q) in zip(last[0], built[0])):
            self.presets.capped_notes = 0                 # as a build would
        else:
            if not hasattr(self, "presets"):
                self.presets = PresetMap()
            self.presets.build(order, base_pool=base)
            self._set_regions()
            self._built = None if keep else built
        self._pool_base = len(base) if keep else 0
        self.backend.upload_pool(self.presets.pool)
        self._ch_pid = None

    def _compact_pool(self):
        """Drop the pool prefix kept for voices of an earlier bank set once none reads it."""
        base, al = self._pool_base, self.alloc
        if base == 0 or np.any(al.vt["pstart"][:al.n] < base):
            return
        self.presets.build(sorted(self._banks, key=lambda b: b[2]))
        self._set_regions()
        self._built = None
        al.shift_pool(-base, self.backend)
        self.backend.upload_pool(self.presets.pool)
        self._pool_base = 0

    def _set_regions(self):
        self._regions = self.presets.regions
        # each region's voice record minus what the key and velocity change: one gather per note
        self._templates = region_templates(self._regions, self.sample_rate)

    def _lookup_preset(self, bank: int, program: int, drum: bool) -> int:
        return self.presets.lookup(bank, program, drum)

    def _channel_presets(self) -> np.ndarray:
        """Each channel's preset id (-1: none), looked up again for every channel after a
        reset or a bank change (``_ch_pid = None``) and for the channels of program changes
        since the last call (``_ch_dirty``)."""
        cs = self.channels
        if self._ch_pid is None:
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
                key = (c,) + self._ch_want[c]
                self._preset_misses[key] = self._preset_misses.get(key, 0) + k

    def preset_warnings(self) -> list:
        """One line per channel and requested preset that played notes without that preset:
        missing (the notes were silent) or replaced by a fallback (FluidSynth's "No preset
        found" warnings, with the count of notes affected)."""
        return format_preset_warnings(self._preset_misses, self.groups)

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
        q = self._queue
        t = e["time"]
        if len(t) > 1 and np.any(t[1:] < t[:-1]):
            e = e[np.argsort(t, kind="stable")]
        if len(q) == 0:
            self._queue = e
        elif e["time"][0] >= q["time"][-1]:           # the streaming case: appended in order
            self._queue = np.concatenate([q, e])
        else:
            q = np.concatenate([q, e])
            self._queue = q[np.argsort(q["time"], kind="stable")]

    def stream(self, source, max_events: int = 1 << 20):
        """Pull events from ``source`` as rendering reaches them, instead of queueing them all
        up front: any object with ``read(until, max_events) -> (events, sysex)`` (events with
        sample time < until not yet returned, in time order, EVENT_DTYPE, sysex indexing the
        returned payload list), ``position`` (every event before it has been returned) and
        ``done`` -- a ``gpusynth.smf`` cursor, or ``gpusynth.events.ArrayCursor``. Before each
        window the synth reads the window's events (at most ``max_events`` per read; a denser
        stretch shortens the window), so memory holds one window of events, never the song.
        The output is the same as ``play(all events)``."""
        with self._lock:
            self._need_open()
            self._source = source
            self._source_max = int(max_events)

    @property
    def source_done(self) -> bool:
        """No streamed source is attached, or it has returned every event."""
        return self._source is None or bool(self._source.done)

    def _pull(self, end: int) -> int:
        """Queue the source's events before frame ``end``; returns the frame before which every
        event is queued (``end``, or less where a read was capped)."""
        src = self._source
        if src is None:
            return end
        first_block = self._block_pos + self.block_ticks * TICK
        while not src.done and src.position < end:
            before = src.position
            events, sysex = src.read(end, self._source_max)
            if len(events):
                self._play(events, sysex)
            if src.position >= first_block and src.position < end:
                break           # a capped read: the window stops where the events are complete
            if src.position == before and not len(events):
                break           # a source that does not advance: do not spin
        return end if src.done else min(end, int(src.position))

    # ------------------------------------------------------------------ sink (DirectMusic)
    def set_sink(self, sink):
        """Attach the wave sink (IDirectMusicSynth::SetSynthSink), also before open(); the
        latency clock is its. The sink is bound to this synth (``sink.init(self)``, as
        DirectMusic does), so a sink made for another synth follows this one; one that is
        active for another source is refused. ``None`` detaches (an active sink is
        deactivated). A master clock given to ``set_master_clock`` is passed on."""
        with self._lock:
            if sink is self.sink:
                return
            if sink is not None and sink.active and sink.source is not self:
                raise SynthError("the sink is active for another synth (DMUS_E_SYNTHACTIVE)")
            old, self.sink = self.sink, sink
            if old is not None and old.source is self:
                old.init(None)
            if sink is not None:
                if sink.source is not self:
                    sink.init(self)
                if self.master_clock is not None:
                    sink.set_master_clock(self.master_clock)

    def set_master_clock(self, clock):
        """IDirectMusicSynth::SetMasterClock: passed on to the sink (now, or when one is
        attached); may change at any time, also while active."""
        if clock is None:
            raise ValueError("set_master_clock needs a clock (E_POINTER)")
        self.master_clock = clock
        if self.sink is not None:
            self.sink.set_master_clock(clock)

    def activate(self, enable: bool = True) -> bool:
        """IDirectMusicSynth::Activate: start or stop the sink. Returns True when the state
        changed, False when it already was so (DirectMusic S_FALSE). Raises SynthError without
        a sink (DMUS_E_NOSYNTHSINK) or, to activate, when not open (SYNTHNOTCONFIGURED)."""
        if self.sink is None:
            if not enable:
                return False
            raise SynthError("no wave sink attached (DMUS_E_NOSYNTHSINK)")
        if bool(enable) == self.sink.active:
            return False
        if enable:
            self._need_open()
            self.sink.activate()
        else:
            self.sink.deactivate()
        return True

    def get_latency_clock(self):
        """The sink's latency clock (GetLatencyClock): reference time up to which audio is
        committed. Without a sink: SynthError (DMUS_E_NOSYNTHSINK)."""
        if self.sink is None:
            raise SynthError("no wave sink attached (DMUS_E_NOSYNTHSINK)")
        return self.sink.latency_clock()

    def all_notes_off(self):
        """Release every voice now (used by Ctrl-C in `gpusynth play`)."""
        self._need_open()
        self.alloc.release_all(self._block_pos)

    @property
    def committed_frames(self) -> int:
        """Audio up to this sample position has already been rendered (latency clock)."""
        return self._block_pos

    def has_held_notes(self) -> bool:
        """True while a voice is held by its key or by a pedal (its release has not begun)."""
        return self.alloc.has_held_notes()

    @property
    def pending_events(self) -> int:
        return len(self._queue)

    @property
    def active_voices(self) -> int:
        """Voices in the table (still rendering, or finished within the last window)."""
        return self.alloc.n

    # ------------------------------------------------------------------ voices (host side)
    # the compiled control engine (gpusynth.control_engine) runs a window's events when the
    # alloc engine is "auto" (and it builds) or "native"; GroupSynth keeps the Python path
    _compiled_control = True
    _engine = None

    def _make_engine(self):
        self._engine = None
        if not self._compiled_control or self.alloc_engine not in ("auto", "native"):
            return
        if any(getattr(type(self), m) is not getattr(Synth, m) for m in self._ENGINE_REPLACES):
            return              # a subclass changes what the engine would do in C
        from . import control_engine
        if control_engine.load() is None:
            if self.alloc_engine == "native":
                raise RuntimeError(f"control engine unavailable: {control_engine.load_error()}")
            return
        self._engine = control_engine.ControlEngine()

    def _reset_voices(self):
        self._make_engine()
        self.alloc = VoiceAllocator(self.max_voices, self.sample_rate, fade_frames(self.sample_rate),
                                    min(2 * self.max_voices + 64, 4096),
                                    max_key_voices=self.max_key_voices,
                                    max_note_frames=int(round(self.max_note_s * self.sample_rate)),
                                    engine=self.alloc_engine)

    def _reset_stats(self):
        self._preset_misses = {}
        self._ch_want = {}
        self.stats = {"voices_sum": 0.0, "ticks": 0, "peak_level": 0.0, "render_s": 0.0,
                      "kernel_s": 0.0, "audio_frames": 0, "windows": 0}

    def running_stats(self) -> dict:
        s, a = self.stats, self.alloc.stats
        audio_s = s["audio_frames"] / self.sample_rate if self.is_open else 0.0
        peak = s["peak_level"]
        return {
            "voices": self.alloc.n, "average_voices": s["voices_sum"] / max(s["ticks"], 1),
            "peak_voices": a["peak_voices"], "stolen_voices": a["stolen_voices"],
            "lost_notes": a["lost_notes"], "notes": a.get("notes", 0),
            "skipped_notes": a.get("skipped_notes", 0),
            "peak_volume_db": 20.0 * np.log10(peak) if peak > 0 else -200.0,
            "peak_volume_db100": int(round(200.0 * np.log10(peak) * 10)) if peak > 0 else -20000,
            "render_load": s["render_s"] / audio_s if audio_s > 0 else 0.0,
            "audio_seconds": audio_s, "render_seconds": s["render_s"],
            "kernel_seconds": s["kernel_s"], "control_seconds": s["render_s"] - s["kernel_s"],
            "windows": s["windows"],
            "backend": getattr(self.backend, "name", self.backend_name),
        }

    # ------------------------------------------------------------------ note batches
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
            return self._regions[ridx], self._templates[ridx], note_of
        return np.zeros(0, REGION_DTYPE), None, np.zeros(0, np.int64)

    def _note_run(self, e, t):
        """Apply a run of note-on/off events (no channel event between them; times t in order,
        possibly across many ticks). When the voice limit cannot be reached within the run
        (voices sounding at its start + every region it starts <= the limit), the whole run is
        allocated in one vectorised pass; otherwise tick by tick, each tick's note-ons at once
        (stealing decided at that tick from closed-form levels: VoiceAllocator.run, or tick by
        tick through VoiceAllocator.notes with alloc_engine="reference"). All give the same
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
        if al.engine != "reference":
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

    # ------------------------------------------------------------------ channel messages
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
            self._ch_pid = None
        if not np.array_equal(drum_before, cs.drum):
            self._ch_pid = None
        if cs.fx != fx_before:          # GS/XG reverb/chorus type or level: from this tick on
            self._fx_changes.append((t, dict(cs.fx)))

    # status -> handler name, looked up on the instance (a subclass's override is the one called)
    _DISPATCH = {ev.CONTROL: "_on_control", ev.PROGRAM: "_on_program", ev.PITCH_BEND: "_on_bend",
                 ev.CHAN_PRESSURE: "_on_pressure", ev.POLY_PRESSURE: "_on_poly_pressure"}
    # what the compiled control engine does in C: a subclass overriding any of these keeps the
    # Python path (Synth._make_engine), so no override is silently bypassed
    _ENGINE_REPLACES = ("_on_control", "_on_program", "_on_bend", "_on_pressure",
                        "_on_poly_pressure", "_note_run", "_notes", "_resolve", "_lookup_regions",
                        "_channel_presets", "_lookup_preset", "_note_preset_misses",
                        "_timeline_event", "_chin_snapshot", "_pedal_down")

    def _channel_event(self, e, t):
        st = int(e["status"])
        if st == ev.SYSEX:
            self._on_sysex(e, t)
        else:
            name = self._DISPATCH.get(st)
            if name is not None:
                getattr(self, name)(int(e["chan"]), int(e["data1"]), int(e["data2"]), t)
        self._ch_inputs = None

    # ------------------------------------------------------------------ rendering
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
        self._channel_event(e, t)
        return done_tick

    def _render_window(self, T: int):
        """Render T ticks from the committed position: apply the window's events in order
        (host only: runs of notes vectorised across ticks, channel events one by one), build
        the per-tick controller timelines, one backend call."""
        w = self._window_prepare(T)
        k_start = _time.perf_counter()
        out, finished = self.backend.render(w["n"], w["B"], T, w["chin"], w["sends"])
        return self._window_finish(w, out, finished, _time.perf_counter() - k_start)

    def _window_prepare(self, T: int) -> dict:
        """The host half of a window before the kernel: the window's events applied, the
        controller timelines built, the voice table flushed. Returns what the kernel call
        needs (``n`` active slots, ``B`` first frame, ``chin``, ``sends``) for
        ``_window_finish``; gpusynth.ensemble runs many synths' halves around one launch."""
        B = self._block_pos
        N = T * TICK
        t_start = _time.perf_counter()
        q = self._queue
        cut = int(np.searchsorted(q["time"], B + N, side="left"))
        blk, self._queue = q[:cut], q[cut:]
        chin = np.empty((len(CHANNEL_INPUTS), T, self.channels.n), np.float32)
        done_tick = 0
        if self._engine is not None:
            self._engine.window(self, blk, B, T, chin)
            self._ch_inputs = None
            done_tick = T
        elif len(blk):
            # events stamped before the committed position play at its start
            t_ev = np.maximum(blk["time"], B)
            tick_of = (t_ev - B) // TICK
            is_note = (blk["status"] == ev.NOTE_ON) | (blk["status"] == ev.NOTE_OFF)
            st, d1 = blk["status"], blk["data1"]
            # channel events that change what a note does (preset, pedals, cuts, resets) split
            # the note runs; the others (volume, pan, bend, mod wheel, RPN data...) only shape
            # the controller timelines and are applied beside the notes
            splits = np.flatnonzero(~is_note & ((st != ev.CONTROL) | np.isin(d1, _ALLOC_CCS)))
            a = 0
            for i in np.append(splits, len(blk)):
                for j in np.flatnonzero(~is_note[a:i]) + a:
                    done_tick = self._timeline_event(chin, blk[j], int(t_ev[j]), int(tick_of[j]), done_tick)
                notes = np.flatnonzero(is_note[a:i]) + a
                if len(notes):
                    self._note_run(blk[notes], t_ev[notes])
                if i == len(blk):
                    break
                done_tick = self._timeline_event(chin, blk[i], int(t_ev[i]), int(tick_of[i]), done_tick)
                a = i + 1
        al = self.alloc
        if self._engine is not None:
            self._engine.flush(self, self.backend)
        else:
            chin[:, done_tick:] = self._chin_snapshot()[:, None, :]
            al.flush(self.backend)
        return {"B": B, "T": T, "n": al.n, "chin": chin, "t_start": t_start,
                "sends": bool(self.sends or self.fx.on)}

    def _window_finish(self, w: dict, out: np.ndarray, finished: np.ndarray, k_s: float):
        """The host half of a window after the kernel: finished voices removed, the gain and
        the effects applied, the statistics counted. Returns the window's audio [N, buses]."""
        B, T, n_before, t_start = w["B"], w["T"], w["n"], w["t_start"]
        N = T * TICK
        al = self.alloc
        fx = self.fx if self.fx.on else None
        if self._engine is not None:
            self._engine.remove(self, finished, self.backend, B + N)
        else:
            al.remove(finished, self.backend, B + N)
        if self._pool_base:
            self._compact_pool()
        self._block_pos = B + N
        if out.flags.writeable and out.flags.owndata:
            out *= np.float32(self.gain)          # the backend's fresh array: scale in place
        else:
            out = out * np.float32(self.gain)
        st = self.stats
        if fx is not None or self._fx_changes:
            f_start = _time.perf_counter()
            self._effects(out, B)
            st["effects_s"] = st.get("effects_s", 0.0) + _time.perf_counter() - f_start
        st["render_s"] += _time.perf_counter() - t_start
        st["kernel_s"] += k_s
        st["audio_frames"] += N
        st["windows"] += 1
        st["ticks"] += T
        st["voices_sum"] += n_before * T
        pk = float(np.max(np.abs(out[:, :2]))) if N else 0.0
        st["peak_level"] = max(st["peak_level"], pk)
        self.last_block_peak = pk
        return out

    def _effects(self, out, B):
        """The effect stage on a window's gained buses ``out`` [N, 4] (``apply_effects``)."""
        apply_effects(self.fx, self._fx_changes, out, B)
        self._fx_changes = []

    @property
    def effects_ringing(self) -> bool:
        """True while the reverb or chorus still holds signal (a tail to render after the
        last voice has ended)."""
        return self.is_open and self.fx.ringing()

    def render(self, n_frames: int, position: int | None = None, sends: bool = False) -> np.ndarray:
        with self._lock:
            return self._render(n_frames, position, sends)

    def _render(self, n_frames: int, position: int | None = None, sends: bool = False) -> np.ndarray:
        """Render n_frames at sample position ``position`` (must continue the previous call;
        a later position skips ahead, rendering and discarding). Returns float32 (n, 2), or
        (n, 4) with the reverb and chorus send buses when ``sends`` is true (this turns the
        send buses on for every later window; frames already rendered have silent sends)."""
        self._need_open()
        n = int(n_frames)
        if n < 0:
            raise ValueError("n_frames must be >= 0")
        if sends:
            self.sends = True
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
            need = -(-(n - self._buf_len) // TICK)
            bt = self.block_ticks
            T = min(-(-need // bt) * bt, self.max_window_ticks)
            if self._source is not None:
                ready = self._pull(self._block_pos + T * TICK)
                # a capped read: shorten the window to the ticks whose events are all queued
                T = max(bt, min(T, (ready - self._block_pos) // (TICK * bt) * bt))
            b = self._render_window(T)
            if b.shape[1] < 4:
                b = np.concatenate([b, np.zeros((len(b), 4 - b.shape[1]), np.float32)], axis=1)
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
