"""gpusynth.Synth: the synthesizer side of the DirectMusic model (IDirectMusicSynth).

The facade: open/close with port parameters, port caps, download/unload, play, render, running
stats, volume, channel priorities and channel groups, the wave sink and its latency clock. It
owns the render backend (which only renders) and the audio blocks; the control path -- event
queue, channel state, bank tables, voice allocation, event application, window preparation and
finishing, statistics -- is one object of its own, ``self.control`` (gpusynth.control
.ControlPath, or the subclass named by ``control_type``), which this class drives through its
public interface.

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

from .backend import create_backend
from .banks.model import Bank
from .control import ControlPath
from .settings import Settings
from .voices import TICK

# Port parameters (DMUS_PORTPARAMS8): name -> default, and the range a value is clamped to.
# "share" (fShare) is accepted and always reported 0 (a software synth is not shared: a request
# for 1 is clamped, DirectMusic's S_FALSE); "features" (dwFeatures) is reported as given.
# sample_rate and voices default to the synth's settings (gpusynth.settings: 48000, 4096).
DEFAULTS = {"sample_rate": 48000, "voices": 4096, "channel_groups": 2, "audio_channels": 2,
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
class SynthError(Exception):
    pass


# the control path's own methods: a Synth subclass defining one would never be called
_CONTROL_METHODS = frozenset(k for c in ControlPath.__mro__ for k in vars(c)
                             if k.startswith("_") and not k.startswith("__"))


class Synth:
    # the control path's type: a ControlPath subclass changes what the host does (its channel
    # handlers are dispatched by name on the instance; gpusynth.ensemble_control.EnsembleControl)
    control_type = ControlPath

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        moved = sorted(_CONTROL_METHODS & set(vars(cls)))
        if moved:
            raise TypeError(f"{cls.__name__} defines {', '.join(moved)}: the control path is "
                            "gpusynth.control.ControlPath; override it on a subclass of that, "
                            "named by control_type")

    def __init__(self, settings: Settings | None = None, **overrides):
        """``settings``: a gpusynth.Settings (defaults: ``Settings()``), ``overrides``: any of
        its fields by name (``Synth(backend="native", reverb=False)``), validated once there
        (SettingsError, a ValueError, naming the setting); the port parameters of ``open()``
        default to its ``rate`` and ``voices``. The synth's own use of them:

        ``block_ticks``: the smallest window (a render call renders whole multiples of it);
        ``max_window_ticks``: the longest window (one kernel launch); ``sends``: also render
        the reverb and chorus send buses (``render(..., sends=True)``).

        Black-MIDI note limits (0 = off; applied on the host at each note's own time, so
        deterministic and independent of window and block sizes): ``min_velocity``: note-ons
        below this velocity are ignored (``running_stats()["skipped_notes"]``; their note-offs
        still release whatever that key holds); ``max_key_voices``: at most this many notes
        sounding per (channel, key), a note-on beyond it kills the oldest notes' voices on that
        channel + key (a steal, counted in ``stolen_voices``); ``max_note_s``: a note is
        released at most this long after its note-on (as if its note-off came then; the
        sustain pedal does not extend it). ``alloc_engine``: the control engine
        (auto, native, reference or sequential: gpusynth.compiled names them); all give the
        same bits.

        Effects (gpusynth.effects: reverb and chorus on the send buses, added to the dry mix;
        on by default, as in FluidSynth and DirectMusic): ``effects=False`` turns both off,
        ``reverb``/``chorus`` each; the port parameter ``effects`` of ``open()`` (flags
        DMUS_EFFECT_REVERB | DMUS_EFFECT_CHORUS) overrides them. The knobs (``reverb_*``,
        ``chorus_*``) are FluidSynth's, with its defaults (gpusynth.settings lists them).

        ``overlap``: when a render call needs more than one window, apply each window's events
        while the backend renders the window before (same output bits; needs the compiled
        control engine). None (default): on for the CuPy backend, whose kernel leaves the CPU
        free, off on the CPU backends, whose kernel already uses every core.

        ``gain="directmusic"``: DirectMusic's reference level (DIRECTMUSIC_GAIN)."""
        if overrides.get("gain") == "directmusic":
            overrides["gain"] = DIRECTMUSIC_GAIN
        st = Settings.of(settings, **overrides)
        self.settings = st
        rev, cho = st.effect_flags
        self.effect_flags = (DMUS_EFFECT_REVERB if rev else 0) | (DMUS_EFFECT_CHORUS if cho else 0)
        self.effects_engine = st.effects_engine
        self.control = self.control_type(**st.note_limits(), alloc_engine=st.alloc_engine)
        if st.backend == "auto":
            # the best backend that runs here (cupy, native, numpy), or $GPUSYNTH_BACKEND;
            # `gpusynth info` shows the same choice
            from .backend.select import resolve_backend
            self.backend_name, self.backend_reason = resolve_backend(None)
        else:
            self.backend_name, self.backend_reason = st.backend, "requested by argument"
        self.interp = st.interp
        self.block_ticks = st.block_ticks
        self.max_window_ticks = st.max_window_ticks // st.block_ticks * st.block_ticks
        self.gain = st.gain
        self.volume = list(VOLUME_DEFAULTS)
        self.sends = st.sends
        self._overlap_opt = st.overlap
        self._overlap = False
        self._pool = None
        self.is_open = False
        self.sample_rate = None    # set by open()
        self._banks = []           # (handle, bank, priority)
        self._next_handle = 1
        self.sink = None
        self.master_clock = None
        self._lock = threading.RLock()     # play() may come from another thread than render()

    # the control path's settings and state, as the facade reports them
    min_velocity = property(lambda self: self.control.min_velocity)
    max_key_voices = property(lambda self: self.control.max_key_voices)
    max_note_s = property(lambda self: self.control.max_note_s)
    alloc_engine = property(lambda self: self.control.alloc_engine)
    groups = property(lambda self: self.control.groups, doc="Open channel groups.")
    upload_hook = property(lambda self: self.control.upload_hook,
                           lambda self, f: setattr(self.control, "upload_hook", f),
                           doc="``hook(slots, records) -> records``: sees (and may change) "
                               "every new voice record before it is uploaded (stems use it; "
                               "gpusynth.control.ControlPath.upload_hook). None: none.")
    stats = property(lambda self: self.control.stats, doc="The control path's window counters.")
    backend = property(lambda self: self.control.backend,
                       lambda self, b: setattr(self.control, "backend", b),
                       doc="The render backend (None before open and after close).")
    source_done = property(lambda self: self.control.source_done,
                           doc="No streamed source is attached, or it has returned every event.")
    pending_events = property(lambda self: self.control.pending_events, doc="Events queued.")
    committed_frames = property(lambda self: self.control.position, doc="Audio up to this "
                                "sample position has already been rendered (latency clock).")
    active_voices = property(lambda self: self.control.active_voices, doc="Voices in the table "
                             "(still rendering, or finished within the last window).")

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
        defaults = dict(DEFAULTS, sample_rate=self.settings.rate, voices=self.settings.voices)
        for k, d in defaults.items():
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
        backend = create_backend(self.backend_name, self.sample_rate,
                                 min(2 * self.max_voices + 64, 4096), self.interp)
        self.control.open(self.sample_rate, self.max_voices, eff["channel_groups"], backend,
                          self.new_effects(), self._bank_order())
        self._pos = 0               # next frame render() returns
        self._buf = deque()
        self._buf_len = 0
        self._overlap = bool(self.backend_name == "cupy" if self._overlap_opt is None
                             else self._overlap_opt)
        self.is_open = True
        if self.sink is not None:
            self.sink.init(self)     # the sink follows the (new) rate and starts at sample 0
        return dict(eff)

    def new_effects(self):
        """A fresh effect stage (gpusynth.effects.Effects) with this synth's settings at its
        open rate: reverb and chorus as the open port parameters say, the knobs as given."""
        from .effects import Effects
        fx = self.params["effects"]
        return Effects(self.sample_rate, bool(fx & DMUS_EFFECT_REVERB), bool(fx & DMUS_EFFECT_CHORUS),
                       self.settings.reverb_params(), self.settings.chorus_params(),
                       engine=self.effects_engine)

    def close(self):
        """Close the port; an attached active sink is deactivated (its source is gone)."""
        if not self.is_open:
            raise SynthError("synth is not open (DMUS_E_ALREADYCLOSED)")
        if self.sink is not None and self.sink.active:
            self.sink.deactivate()
        self.is_open = False
        self.control.close()

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
            self.control.set_channel_groups(g)
            self.params["channel_groups"] = g
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
        return int(self.control.channels.priority[i])

    def set_channel_priority(self, group: int, ch: int, prio: int):
        i = self._chan_index(group, ch)
        if not 0 <= int(prio) <= 0xFFFFFFFF:
            raise ValueError(f"priority {prio} is not a DWORD")
        self.control.channels.priority[i] = np.uint32(prio)

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
            self.control.set_banks(self._bank_order())
        return h

    def unload(self, handle: int):
        """Remove a bank. Voices already playing from it finish; later note-ons ignore it."""
        before = len(self._banks)
        self._banks = [b for b in self._banks if b[0] != handle]
        if len(self._banks) == before:
            raise KeyError(f"no bank with handle {handle}")
        if self.is_open:
            self.control.set_banks(self._bank_order())

    def _bank_order(self) -> list:
        return [(b, p) for _, b, p in self._banks]

    def preset_warnings(self) -> list:
        """One line per channel and requested preset that played notes without that preset
        (ControlPath.preset_warnings)."""
        return self.control.preset_warnings()

    # ------------------------------------------------------------------ events
    def play(self, events: np.ndarray, sysex=None):
        """Queue time-stamped events (EVENT_DTYPE, sample times). ``sysex`` is the list of
        payloads the events' ``sysex`` fields index. Events before the committed position play
        at the start of the next block. Arrival order does not matter; equal times keep order."""
        with self._lock:
            self._need_open()
            self.control.queue(events, sysex)

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
            self.control.stream(source, max_events)

    # ------------------------------------------------------------------ rendering
    def _render_window(self, T: int):
        """Render T ticks from the committed position: the control path prepares the window,
        one backend call renders it, the control path finishes it."""
        w = self.control.prepare_window(T, self.sends)
        k_start = _time.perf_counter()
        out, finished = self.backend.render(w.voices, w.start, T, w.chin, w.sends)
        return self.control.finish_window(w, out, finished, _time.perf_counter() - k_start, self.gain)

    @property
    def effects_ringing(self) -> bool:
        """True while the reverb or chorus still holds signal (a tail to render after the
        last voice has ended)."""
        return self.is_open and self.control.fx.ringing()

    def render(self, n_frames: int, position: int | None = None, sends: bool = False) -> np.ndarray:
        """Render n_frames at sample position ``position`` (must continue the previous call;
        a later position skips ahead, rendering and discarding). Returns float32 (n, 2), or
        (n, 4) with the reverb and chorus send buses when ``sends`` is true (this turns the
        send buses on for every later window; frames already rendered have silent sends)."""
        with self._lock:
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

    def _kernel(self, w):
        t = _time.perf_counter()
        out, finished = self.control.backend.render(w.voices, w.start, w.ticks, w.chin, w.sends)
        return out, finished, _time.perf_counter() - t

    def _window_ticks(self, n: int) -> int:
        """The next window's ticks for ``n`` more frames, shortened where the source's events
        are not all read yet (a capped read)."""
        ctl, bt = self.control, self.block_ticks
        need = -(-n // TICK)
        T = min(-(-need // bt) * bt, self.max_window_ticks)
        start = ctl.next_start
        ready = ctl.pull(start + T * TICK, start + bt * TICK)
        return max(bt, min(T, (ready - start) // (TICK * bt) * bt))

    def _push(self, b):
        if b.shape[1] < 4:
            b = np.concatenate([b, np.zeros((len(b), 4 - b.shape[1]), np.float32)], axis=1)
        self._buf.append(b)
        self._buf_len += len(b)

    def _render_overlapped(self, n):
        """Windows until ``n`` frames are buffered, each window's events applied while the
        backend renders the window before (a worker thread; the compiled engine's uploads
        wait for that window to be retired). The same bits as one window after the other
        (tests/unit/test_control_engine.py); nothing is left in flight on return."""
        ctl = self.control
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="gpusynth-kernel")
        pending = None
        while True:
            queued = self._buf_len + (pending[0].frames if pending else 0)
            w = None
            if queued < n:
                T = self._window_ticks(n - queued)
                t0 = _time.perf_counter()
                w = ctl.apply_window(T, self.sends)
                apply_s = _time.perf_counter() - t0
            if pending is not None:
                pw, fut, launch, p_apply = pending
                out, finished, k_s = fut.result()
                pw.t_start = launch - p_apply      # render_s: its apply + launch..finished
                self._push(ctl.finish_window(pw, out, finished, k_s, self.gain))
                pending = None
            if w is None:
                return
            ctl.upload_window(w)
            pending = (w, self._pool.submit(self._kernel, w), _time.perf_counter(), apply_s)

    def _take(self, n):
        if self._overlap and self.control.compiled and n - self._buf_len > self.max_window_ticks * TICK:
            self._render_overlapped(n)
        while self._buf_len < n:
            self._push(self._render_window(self._window_ticks(n - self._buf_len)))
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
        self.control.release_all()

    def has_held_notes(self) -> bool:
        """True while a voice is held by its key or by a pedal (its release has not begun)."""
        return self.control.has_held_notes()

    def running_stats(self) -> dict:
        """Voices now, average and peak, stolen, lost, played and skipped notes, peak level,
        render load and seconds (kernel and control), windows, backend."""
        return {**self.control.running_stats(),
                "backend": getattr(self.backend, "name", self.backend_name)}
