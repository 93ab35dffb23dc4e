"""gpusynth.control: the control path, one type (``ControlPath``).

Everything the host decides lives here: the time-ordered event queue (or a streamed source),
the MIDI channel state (gpusynth.channels), the merged bank tables and the preset / region
lookup (gpusynth.presets), the voice allocator and every voice's control state
(gpusynth.allocator), the application of a window's events -- by the Python/numpy definition
below or by the compiled engine (gpusynth.control_engine), chosen once per open -- the per-tick
controller timelines, and the statistics. The backend only renders what a window hands it.

A window is rendered in three steps (gpusynth.synth.Synth does them in this order; the
many-songs ensemble runs the kernel in between for many control paths at once):

    w = ctl.prepare_window(T, sends)        # events applied, timelines built, voices uploaded
    out, finished = backend.render(w.voices, w.start, w.ticks, w.chin, w.sends)
    audio = ctl.finish_window(w, out, finished, kernel_s, gain)   # voices retired, gain, effects

Public interface:

* ``ControlPath(min_velocity=0, max_key_voices=0, max_note_s=0.0, alloc_engine="auto")``:
  the black-MIDI note limits (see Synth) and the allocation engine (names: gpusynth.compiled).
* ``open(sample_rate, voices, groups, backend, fx, banks)``: start from silence (new channel
  state, allocator, queue, statistics); ``close()``.
* Banks: ``set_banks(banks)`` (list of (Bank, priority)), ``pool_prefix``.
* Events: ``queue(events, sysex)``, ``stream(source, max_events)``, ``pull(end, min_end)``,
  ``source_done``, ``pending_events``, ``apply_event(e, t)`` (one channel message or SysEx
  now: what the compiled engine calls back for SysEx).
* Windows: ``prepare_window(T, sends) -> Window``, ``retire(window, finished)``,
  ``finish_window(window, out, finished, kernel_s, gain)``, ``position``.
* Channel groups and voices: ``set_channel_groups(g)``, ``release_all()``,
  ``has_held_notes()``, ``active_voices``, ``sounding_voices(t)``, ``voice_keys(slots)``.
* Statistics: ``stats`` (the window counters), ``running_stats()``, ``preset_warnings()``,
  ``count_preset_misses(...)``, ``take_stale_presets()`` (the compiled engine's side of the
  channel preset cache), ``compiled`` (the compiled engine runs the windows).
* Attributes read by the compiled engine and by tests: ``channels``, ``alloc``, ``presets``,
  ``regions``, ``templates``, ``backend``, ``fx``, ``sample_rate``, ``max_voices``, ``groups``.

Channel messages are dispatched by handler name on the instance (``_DISPATCH``), so a
subclass's override is the one called; a subclass overriding anything the compiled engine
does in C (``_ENGINE_REPLACES``) keeps the Python path, so no override is ever bypassed.
gpusynth.ensemble_control.EnsembleControl is such a subclass (many songs in one control path).
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass

import numpy as np

from . import events as ev
from .allocator import VoiceAllocator
from .constants import fade_frames
from .channels import ChannelState
from .compiled import engine_choice
from .control_events import EventRules
from .presets import PresetMap
from .voices import TICK, CHANNEL_INPUTS, region_templates

# controllers that change what later notes do: bank select, pedals, sound/notes off, resets
_ALLOC_CCS = np.array([0, 32, 64, 66, 120, 121, 123, 124, 125, 126, 127])


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


def post_mix(out, gain, fx, changes: list, B: int, stats: dict | None = None):
    """A window's buses after the kernel: times ``gain`` (in place when ``out`` is the
    kernel's own fresh array), then the effects ``fx`` with the window's SysEx ``changes``
    (``apply_effects``; the list is emptied). ``stats``: where ``effects_s`` is counted."""
    if out.flags.writeable and out.flags.owndata:
        out *= np.float32(gain)
    else:
        out = out * np.float32(gain)
    if fx.on or changes:
        f_start = _time.perf_counter()
        apply_effects(fx, changes, out, B)
        changes.clear()
        if stats is not None:
            stats["effects_s"] = stats.get("effects_s", 0.0) + _time.perf_counter() - f_start
    return out


def format_preset_warnings(misses: dict, groups: int) -> list:
    """ControlPath.preset_warnings' lines from its counts {(channel, wanted, used): notes}."""
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


@dataclass(eq=False)
class Window:
    """A prepared window: what the kernel call needs, and what ``finish_window`` takes back.
    ``voices``: active slots to render; ``start``: its first frame; ``ticks``: its length;
    ``chin``: the per-tick controller inputs [len(CHANNEL_INPUTS), ticks, channels] float32;
    ``sends``: render the send buses; ``t_start``: perf_counter when preparation began."""
    start: int
    ticks: int
    voices: int
    chin: np.ndarray
    sends: bool
    t_start: float

    @property
    def frames(self) -> int:
        return self.ticks * TICK

    @property
    def end(self) -> int:
        return self.start + self.ticks * TICK


class ControlPath(EventRules):
    """The host control path of one synthesizer (see the module docstring)."""

    # the compiled control engine (gpusynth.control_engine) runs a window's events when the
    # alloc engine is "auto" (and it builds) or "native"; a subclass may turn it off
    compiled_engine = True
    _engine = None
    # upload_hook(slots, records) -> records: called with every window's new voice records
    # before they go to the backend (the records it returns go instead; same length). Stems
    # use it (gpusynth.api: voices outside the stem muted). None: no hook.
    upload_hook = None
    # the class whose Python methods the engine does in C (None: ControlPath); a subclass of it
    # overriding one of them keeps the Python path (gpusynth.ensemble_control.EnsembleControl: the group mode)
    _engine_base = None

    def __init__(self, *, min_velocity: int = 0, max_key_voices: int = 0, max_note_s: float = 0.0,
                 alloc_engine: str = "auto"):
        if int(min_velocity) < 0 or int(max_key_voices) < 0 or float(max_note_s) < 0:
            raise ValueError("min_velocity, max_key_voices and max_note_s must be >= 0")
        alloc_engine = engine_choice(alloc_engine, "alloc_engine", ("sequential",))
        if alloc_engine == "sequential" and int(max_key_voices):
            raise ValueError("alloc_engine='sequential' has no max_key_voices")
        self.min_velocity = int(min_velocity)
        self.max_key_voices = int(max_key_voices)
        self.max_note_s = float(max_note_s)
        self.alloc_engine = alloc_engine
        self.is_open = False
        self.backend = None
        self.presets = None        # gpusynth.presets.PresetMap, kept across opens
        self._built = None         # the (banks, rate) the preset tables were last built for

    # ------------------------------------------------------------------ lifecycle
    def open(self, sample_rate: int, voices: int, groups: int, backend, fx, banks: list):
        """Start from silence: ``groups`` channel groups at their defaults, an empty voice
        table of at most ``voices`` voices, an empty queue, statistics at zero; ``backend``
        renders (voices and the pool are uploaded to it), ``fx`` (gpusynth.effects) runs on
        the send buses; ``banks``: as for ``set_banks``."""
        self.sample_rate = int(sample_rate)
        self.max_voices = int(voices)
        self.groups = int(groups)
        self.backend = backend
        self.fx = fx
        self.channels = ChannelState(self.groups)
        if self.alloc_engine in ("auto", "native"):
            # compile/load the stealing loop now, not at the first note-on: a first build takes
            # about a second, which in real-time play is a second of underruns
            from . import steal
            steal.NATIVE.available()
        self._fx_changes = []       # (sample time, system-effect settings) from GS/XG SysEx
        self._ch_inputs = None
        self._ch_dirty = set()      # channels whose preset id is looked up again (program change)
        self._stale_all = True      # every channel's preset id is looked up again
        self._queue = ev.make_events(0)
        self._source = None
        self._source_max = 1 << 20
        self._sysex = {}
        self._sysex_next = 0
        self._block_pos = 0         # start of the next window
        self._applied_to = 0        # end of the last window applied (apply_window)
        self._reset_voices()
        self._reset_stats()
        self.set_banks(banks)
        self.is_open = True

    def close(self):
        self.is_open = False
        self.backend = None

    @property
    def compiled(self) -> bool:
        """The compiled control engine applies the windows' events (else the Python path)."""
        return self._engine is not None

    def _make_engine(self):
        self._engine = None
        if not self.compiled_engine or self.alloc_engine not in ("auto", "native"):
            return
        base = self._engine_base or ControlPath
        if any(getattr(type(self), m) is not getattr(base, m) for m in self._ENGINE_REPLACES):
            return              # a subclass changes what the engine would do in C
        from . import control_engine
        if control_engine.NATIVE.for_engine(self.alloc_engine) is None:
            return
        self._engine = control_engine.ControlEngine()

    def _new_allocator(self) -> VoiceAllocator:
        return VoiceAllocator(self.max_voices, self.sample_rate, fade_frames(self.sample_rate),
                              min(2 * self.max_voices + 64, 4096),
                              max_key_voices=self.max_key_voices,
                              max_note_frames=int(round(self.max_note_s * self.sample_rate)),
                              engine=self.alloc_engine)

    def _reset_voices(self):
        self._make_engine()
        self.alloc = self._new_allocator()

    def _reset_stats(self):
        self._preset_misses = {}
        self._ch_want = {}
        self.stats = {"voices_sum": 0.0, "ticks": 0, "peak_level": 0.0, "render_s": 0.0,
                      "kernel_s": 0.0, "audio_frames": 0, "windows": 0}

    # ------------------------------------------------------------------ banks
    def set_banks(self, banks: list):
        """Merge ``banks``, a list of (Bank, priority) (gpusynth.presets.PresetMap: one pool,
        one region table, the preset numbering and the region lookup; a higher priority wins,
        equal ones in list order) and upload the pool. While voices play, the current pool
        stays in front so their sample indices stay valid; it is dropped again (and the
        voices' indices shifted on the device) as soon as no voice reads it."""
        order = sorted([(None, b, p) for b, p in banks], key=lambda b: b[2])
        keep = self.alloc.n > 0 and self.presets is not None
        base = self.presets.pool if keep else None
        # the same banks at the same rate as the last build (a synth reopened for the next
        # song: gpusynth.api.Renderer, gpusynth.ensemble): its tables are still right
        built = [(b, p) for _, b, p in order], self.sample_rate
        last = self._built
        if not keep and last is not None and last[1] == built[1] and len(last[0]) == len(built[0]) \
                and all(x is y and p == q for (x, p), (y, q) in zip(last[0], built[0])):
            self.presets.capped_notes = 0                 # as a build would
        else:
            if self.presets is None:
                self.presets = PresetMap()
            self.presets.build(order, base_pool=base)
            self._set_regions()
            self._built = None if keep else built
        self._banks = order
        self._pool_base = len(base) if keep else 0
        self.backend.upload_pool(self.presets.pool)
        self._stale_all = True

    @property
    def pool_prefix(self) -> int:
        """Samples of an earlier bank set kept in front of the pool for voices still playing."""
        return self._pool_base

    def _compact_pool(self):
        """Drop the pool prefix kept for voices of an earlier bank set once none reads it."""
        base, al = self._pool_base, self.alloc
        if base == 0 or np.any(al.vt["pstart"][:al.n] < base):
            return
        self.presets.build(self._banks)
        self._set_regions()
        self._built = None
        al.shift_pool(-base, self.backend)
        self.backend.upload_pool(self.presets.pool)
        self._pool_base = 0

    def _set_regions(self):
        self.regions = self.presets.regions
        # each region's voice record minus what the key and velocity change: one gather per note
        self.templates = region_templates(self.regions, self.sample_rate)

    # ------------------------------------------------------------------ channel groups, voices
    def set_channel_groups(self, g: int):
        """Change the number of channel groups to ``g`` (already clamped): the groups kept
        keep their state; added groups start from the defaults; voices of removed groups are
        cut (as by All Sound Off) and their queued events dropped."""
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
        self._stale_all = True
        self._ch_inputs = None

    @property
    def position(self) -> int:
        """The first frame of the next window (every frame before it is rendered)."""
        return self._block_pos

    @property
    def active_voices(self) -> int:
        """Voices in the table (still rendering, or finished within the last window)."""
        return self.alloc.n

    def has_held_notes(self) -> bool:
        """True while a voice is held by its key or by a pedal (its release has not begun)."""
        return self.alloc.has_held_notes()

    def sounding_voices(self, t: int) -> int:
        """Voices counted against the limit at frame ``t`` (not stolen, not silent by t in
        closed form)."""
        return int(len(self.alloc.sounding(int(t))))

    def voice_keys(self, slots) -> np.ndarray:
        """The MIDI key of each voice slot in ``slots``."""
        return self.alloc.h["key"][np.asarray(slots, np.int64)]

    def release_all(self):
        """Release every voice at the current position."""
        self.alloc.release_all(self._block_pos)

    # ------------------------------------------------------------------ events
    def queue(self, events: np.ndarray, sysex=None):
        """Queue time-stamped events (EVENT_DTYPE, sample times). ``sysex`` is the list of
        payloads the events' ``sysex`` fields index. Events before the current position play
        at the start of the next window. Arrival order does not matter; equal times keep
        order."""
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
        """Read events from ``source`` as windows reach them (see Synth.stream)."""
        self._source = source
        self._source_max = int(max_events)

    @property
    def source_done(self) -> bool:
        """No streamed source is attached, or it has returned every event."""
        return self._source is None or bool(self._source.done)

    @property
    def pending_events(self) -> int:
        return len(self._queue)

    def pull(self, end: int, min_end: int | None = None) -> int:
        """Queue the source's events before frame ``end``; returns the frame before which every
        event is queued (``end``, or less where a read was capped: reads stop early once that
        frame is past ``min_end``)."""
        src = self._source
        if src is None:
            return end
        first_block = end if min_end is None else min_end
        while not src.done and src.position < end:
            before = src.position
            events, sysex = src.read(end, self._source_max)
            if len(events):
                self.queue(events, sysex)
            if src.position >= first_block and src.position < end:
                break           # a capped read: the window stops where the events are complete
            if src.position == before and not len(events):
                break           # a source that does not advance: do not spin
        return end if src.done else min(end, int(src.position))

    # ------------------------------------------------------------------ windows
    def prepare_window(self, T: int, sends: bool = False) -> Window:
        """``apply_window`` then ``upload_window``: the host half of a window of ``T`` ticks
        from ``position``, before the kernel (see both)."""
        w = self.apply_window(T, sends)
        self.upload_window(w)
        return w

    @property
    def next_start(self) -> int:
        """Where the next window starts: ``position``, or the end of a window applied but not
        retired yet (an overlapped render: gpusynth.synth)."""
        return max(self._block_pos, self._applied_to)

    def apply_window(self, T: int, sends: bool = False) -> Window:
        """The queued events before the window's end applied in order (runs of notes
        vectorised across ticks, channel events one by one; or all in the compiled engine) and
        the per-tick controller timelines built, from ``next_start``; nothing is sent to the
        backend yet, so this may run while the backend renders the window before (compiled
        engine only: its uploads are read from marks that move with the slots).
        ``sends``: render the send buses (they are also rendered whenever the effects are on)."""
        B = self.next_start
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
        if self._engine is None:
            chin[:, done_tick:] = self._chin_snapshot()[:, None, :]
        self._applied_to = B + N
        return Window(B, T, self.alloc.n, chin, bool(sends or self.fx.on), t_start)

    def upload_window(self, w: Window):
        """The window's voice changes sent to the backend (new voices, release and kill
        times), after the window before it was retired; ``w.voices`` is then the active count."""
        al = self.alloc
        backend = self.backend if self.upload_hook is None else \
            _HookedUpload(self.backend, self.upload_hook)
        if self._engine is not None:
            self._engine.flush(self, backend)
        else:
            al.flush(backend)
        w.voices = al.n

    def retire(self, w: Window, finished: np.ndarray):
        """The voice half of a window after the kernel: the finished slots removed (once
        silent in closed form), the pool prefix of an earlier bank set dropped when no voice
        reads it, the position moved to the window's end."""
        if self._engine is not None:
            self._engine.remove(self, finished, self.backend, w.end)
        else:
            self.alloc.remove(finished, self.backend, w.end)
        if self._pool_base:
            self._compact_pool()
        self._block_pos = w.end
        self.stats["windows"] += 1

    def finish_window(self, w: Window, out: np.ndarray, finished: np.ndarray, kernel_s: float,
                      gain: float) -> np.ndarray:
        """The host half of a window after the kernel (``out`` [N, buses], the ``finished``
        slots, ``kernel_s`` seconds in the kernel): ``retire``, the ``gain`` and the effects
        applied (``post_mix``), the statistics counted. Returns the window's audio."""
        n_before, N = w.voices, w.frames
        self.retire(w, finished)
        st = self.stats
        # the window's own SysEx effect changes (a later window may already be applied)
        mine = [c for c in self._fx_changes if c[0] < w.end]
        self._fx_changes = [c for c in self._fx_changes if c[0] >= w.end]
        out = post_mix(out, gain, self.fx, mine, w.start, st)
        st["render_s"] += _time.perf_counter() - w.t_start
        st["kernel_s"] += kernel_s
        st["audio_frames"] += N
        st["ticks"] += w.ticks
        st["voices_sum"] += n_before * w.ticks
        pk = float(np.max(np.abs(out[:, :2]))) if N else 0.0
        st["peak_level"] = max(st["peak_level"], pk)
        self.last_block_peak = pk
        return out

    # ------------------------------------------------------------------ statistics
    def running_stats(self) -> dict:
        """The counters of Synth.running_stats (all but ``backend``)."""
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
        }

    def preset_warnings(self) -> list:
        """One line per channel and requested preset that played notes without that preset:
        missing (the notes were silent) or replaced by a fallback (FluidSynth's "No preset
        found" warnings, with the count of notes affected)."""
        return format_preset_warnings(self._preset_misses, self.groups)

    def count_preset_misses(self, channel: int, wanted: tuple, used, notes: int):
        """Count ``notes`` note-ons on ``channel`` that asked for preset ``wanted`` (bank,
        program, drum) and got ``used`` (the fallback's key, or None: silent)."""
        key = (int(channel), wanted, used)
        self._preset_misses[key] = self._preset_misses.get(key, 0) + int(notes)

    def take_stale_presets(self):
        """For the compiled engine, which keeps its own channel preset ids: the channels whose
        preset must be looked up again since the last call ("all" after a reset, a bank or a
        channel-group change; else a sorted list, maybe empty). Clears the marks."""
        if self._stale_all:
            self._stale_all = False
            self._ch_dirty = set()
            return "all"
        dirty, self._ch_dirty = sorted(self._ch_dirty), set()
        return dirty


__all__ = ["ControlPath", "Window", "apply_effects", "post_mix", "format_preset_warnings"]


class _HookedUpload:
    """The backend as the upload path sees it with an upload_hook: new voice records pass
    through the hook; everything else goes to the backend itself."""

    def __init__(self, backend, hook):
        self._backend, self._hook = backend, hook

    def add_voices(self, slots, records):
        self._backend.add_voices(slots, self._hook(slots, records))

    def __getattr__(self, name):
        return getattr(self._backend, name)
