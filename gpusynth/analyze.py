"""`gpusynth analyze`: a MIDI file's density and polyphony from the control path alone.

The song streams through a real Synth exactly as ``gpusynth render`` drives it (the same
cursor, the same 16,384-frame render calls (END_STEP), the same note limits and voice limit), but on the
null backend (gpusynth/backend/null_backend.py), which renders nothing: every control decision
(allocation, stealing, the per-key cap, note lengths, skipped and lost notes, peak polyphony)
is the one a render takes, so ``notes``, ``peak_voices``, ``stolen_voices``, ``lost_notes`` and
``skipped_notes`` equal the render's figures. Effects are off (there is no audio). The loop
stops once every event has been played: what is left of a render after that is the release
tail, which decides no note. So ``duration_s`` is the song's length to its last event (the
MIDI file's), not the render's audio length (which adds the tail until it decays below
-90 dBFS: a rule on the audio level, which a control-only pass cannot apply).

Over time, per second of song time: the note-ons the synth counted in that second (their
sum is ``notes``) and the most voices sounding (counted against the limit: not stolen, not
silent in closed form) at the end of a render call that overlaps that second.
"""
from __future__ import annotations

import math
import time

import numpy as np

from . import events as ev
from .backend import NULL
from .loading import song_source
from .progress import si as _si
from .rendering import END_STEP, open_synth
from .settings import Settings

CHUNK = END_STEP     # frames per render call: the blocks of `gpusynth render` (cli.render)
BIN_S = 1.0          # seconds per bin of the time series


class _NoteClock:
    """A pass-through event source (the Synth's ``stream`` protocol) that records the sample
    times of the note-ons it hands on (velocity > 0 and not below ``min_velocity``: the note-ons
    the synth counts, less those on a channel with no preset)."""

    def __init__(self, source, min_velocity: int = 0):
        self._src = source
        self._min_vel = max(1, int(min_velocity))
        self.pending = []

    @property
    def position(self):
        return self._src.position

    @property
    def done(self):
        return self._src.done

    def read(self, until, max_events=None):
        events, sysex = self._src.read(until, max_events)
        if len(events):
            on = (events["status"] == ev.NOTE_ON) & (events["data2"] >= self._min_vel)
            if on.any():
                self.pending.append(events["time"][on])
        return events, sysex

    def take(self) -> np.ndarray:
        t = np.concatenate(self.pending) if self.pending else np.zeros(0, np.int64)
        self.pending = []
        return t


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers summing to ``total``, proportional to ``weights`` (largest remainder)."""
    w = np.asarray(weights, np.float64)
    s = w.sum()
    if total <= 0 or s <= 0:
        out = np.zeros(len(w), np.int64)
        if total > 0 and len(w):
            out[0] = total
        return out
    exact = w * (total / s)
    out = np.floor(exact).astype(np.int64)
    rest = int(total - out.sum())
    if rest:
        out[np.argsort(out - exact, kind="stable")[:rest]] += 1
    return out


class _Series:
    """Growable per-bin counters."""

    def __init__(self, n: int):
        self.a = np.zeros(max(1, n), np.int64)

    def _fit(self, hi: int):
        if hi >= len(self.a):
            b = np.zeros(max(hi + 1, 2 * len(self.a)), np.int64)
            b[:len(self.a)] = self.a
            self.a = b

    def add(self, bins: np.ndarray, counts: np.ndarray):
        if len(bins):
            self._fit(int(bins.max()))
            np.add.at(self.a, bins, counts)

    def maximum(self, lo: int, hi: int, v: int):
        self._fit(hi)
        np.maximum(self.a[lo:hi + 1], v, out=self.a[lo:hi + 1])


def sounding_voices(synth, t: int) -> int:
    """Voices counted against the limit at frame ``t`` (not stolen, not silent in closed
    form); the voices in the table where the allocator does not say."""
    ctl = getattr(synth, "control", None)
    if ctl is not None:
        return ctl.sounding_voices(t)
    return int(synth.active_voices)


def tempo_info(song) -> dict:
    """The song's tempo figures (gpusynth.smf.Song.tempo_summary; None for a song object
    without a tempo map)."""
    if hasattr(song, "tempo_summary"):
        return song.tempo_summary()
    return {"tempo_changes": None, "tempo_bpm_min": None, "tempo_bpm_max": None}


def open_analyzer(bank=None, settings: Settings | None = None, song=None, **overrides):
    """A Synth on the null backend with ``bank`` downloaded (gpusynth.rendering.open_synth),
    effects off; ``settings``/``overrides`` as a render's (the rate, the voice limit and the
    note limits are what count). Returns (synth, effective parameters)."""
    st = Settings.of(settings, **overrides).replace(backend=NULL, effects=False)
    return open_synth(bank, song=song, settings=st)


def analyze_song(song, bank=None, synth=None, chunk: int = CHUNK, progress=None,
                 keep_windows: bool = False, settings: Settings | None = None,
                 **overrides) -> dict:
    """Stream ``song`` (gpusynth.smf.Song) through the control path and return its figures
    (the keys are documented in README.md, `gpusynth analyze`). ``synth``: an opened Synth on
    the null backend (``open_analyzer``), else one is opened with ``bank``, ``settings`` and
    ``overrides`` (e.g. ``rate``, ``voices``, the note limits). ``progress(done_frames, end_frame, synth)`` after each render
    call. ``keep_windows``: also return ``windows_series`` (end of each render call in
    seconds, voices sounding then) for a plot."""
    if synth is None:
        synth, _ = open_analyzer(bank, settings, song=song, **overrides)
    rate = synth.sample_rate
    end = int(round(float(song.duration_s) * rate))
    clock = _NoteClock(song_source(song, rate), getattr(synth, "min_velocity", 0))
    nbins = int(end // rate) + 1
    notes_s, voices_s = _Series(nbins), _Series(nbins)
    w_end, w_voices = [0.0], [0]
    t0 = time.perf_counter()
    synth.stream(clock)
    pos = done_notes = 0
    while True:
        synth.render(chunk, pos)
        p0, pos = pos, pos + chunk
        rs = synth.running_stats()
        delta = int(rs["notes"]) - done_notes
        done_notes += delta
        times = clock.take()
        if delta or len(times):
            b = np.maximum(times, p0) // rate
            bins, cnt = np.unique(b, return_counts=True)
            if int(cnt.sum()) != delta:        # note-ons on a channel without a preset
                if not len(bins):
                    bins, cnt = np.array([p0 // rate]), np.ones(1, np.int64)
                cnt = _apportion(delta, cnt)
            notes_s.add(bins.astype(np.int64), cnt)
        nv = sounding_voices(synth, pos)
        voices_s.maximum(p0 // rate, (pos - 1) // rate, nv)
        if keep_windows:
            w_end.append(pos / rate)
            w_voices.append(nv)
        if progress:
            progress(pos, end, synth)
        if pos >= end and not synth.pending_events and synth.source_done:
            break
    wall = time.perf_counter() - t0
    rs = synth.running_stats()
    dur = float(song.duration_s)
    last = max(int(end // rate), int(np.flatnonzero(notes_s.a).max(initial=0)))
    per_s = notes_s.a[:last + 1]
    vox = voices_s.a[:last + 1]
    notes = int(rs["notes"])
    control = float(rs["control_seconds"])
    out = {
        "input": getattr(song, "path", None),
        "format": getattr(song, "format", None),
        "tracks": int(getattr(song, "ntracks", 0)),
        "events": int(getattr(song, "n_events", 0)),
        "file_notes": int(getattr(song, "n_notes", 0)),
        **tempo_info(song),
        "duration_s": dur,
        "sample_rate": int(rate),
        "voices_limit": int(synth.max_voices),
        "min_velocity": int(getattr(synth, "min_velocity", 0)),
        "key_voices": int(getattr(synth, "max_key_voices", 0)),
        "max_note_length": float(getattr(synth, "max_note_s", 0.0)),
        "notes": notes,
        "skipped_notes": int(rs.get("skipped_notes", 0)),
        "lost_notes": int(rs["lost_notes"]),
        "peak_voices": int(rs["peak_voices"]),
        "stolen_voices": int(rs["stolen_voices"]),
        "notes_per_s_peak": int(per_s.max(initial=0)),
        "notes_per_s_mean": notes / max(dur, BIN_S),
        "voices_mean": float(vox.mean()) if len(vox) else 0.0,
        "control_s": control,
        "control_notes_per_s": notes / control if control > 0 else 0.0,
        "wall_s": wall,
        "notes_per_s": notes / wall if wall > 0 else 0.0,
        "bin_s": BIN_S,
        "notes_per_second": per_s.tolist(),
        "voices_per_second": vox.tolist(),
    }
    if keep_windows:
        out["windows_series"] = {"end_s": w_end, "voices": w_voices}
    return out


def plot(result: dict, path: str, title: str | None = None) -> str:
    """Notes per second and sounding voices against song time, to a PNG (needs matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    per_s = np.asarray(result["notes_per_second"])
    fig, (a1, a2) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    x = np.arange(len(per_s) + 1) * result["bin_s"]
    a1.stairs(per_s, x, fill=True, alpha=0.6)
    a1.set_ylabel("notes per second")
    a1.set_title(title or f"{result.get('input')}: {result['notes']:,} notes, peak "
                 f"{result['notes_per_s_peak']:,}/s")
    ws = result.get("windows_series")
    if ws and ws["end_s"]:
        a2.plot(ws["end_s"], ws["voices"], lw=1, label="voices sounding")
    else:
        a2.stairs(np.asarray(result["voices_per_second"]), x, label="voices sounding")
    limit, peak = result["voices_limit"], result["peak_voices"]
    a2.axhline(peak, ls=":", color="C1", label=f"peak {peak:,} (at a note-on)")
    if 2 * peak >= limit:           # a far-away limit would flatten the curve
        a2.axhline(limit, ls="--", color="grey", label=f"limit {limit:,}")
    a2.set_ylabel("voices")
    a2.set_xlabel("song time (s)")
    a2.set_ylim(bottom=0)
    a2.legend(loc="lower right", fontsize=8)
    a2.set_title(f"peak {peak:,} of {limit:,} voices, {result['stolen_voices']:,} stolen",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def to_json(r: dict) -> str:
    """``r`` as indented JSON with each list on one line (the time series stay readable)."""
    import json
    flat = {k: (f"\0{i}\0" if isinstance(v, list) else v) for i, (k, v) in enumerate(r.items())}
    text = json.dumps(flat, indent=2, default=float)
    for i, v in enumerate(r.values()):
        if isinstance(v, list):
            text = text.replace(json.dumps(f"\0{i}\0"), json.dumps(v, default=float))
    return text


def _fmt_int(x) -> str:
    return f"{int(x):,}"


def table(r: dict) -> str:
    """The human summary of ``analyze_song``'s result: a short aligned table."""
    def si(x):
        return _si(x, 2)
    if r["tempo_changes"] is None:
        tempo = "no tempo map (SMPTE time)" if r.get("format") is not None else "-"
    else:
        lo, hi = r["tempo_bpm_min"], r["tempo_bpm_max"]
        bpm = f"{lo:.1f} bpm" if math.isclose(lo, hi) else f"{lo:.1f}-{hi:.1f} bpm"
        tempo = f"{_fmt_int(r['tempo_changes'])} changes, {bpm}"
    limits = []
    if r["min_velocity"]:
        limits.append(f"min velocity {r['min_velocity']}")
    if r["key_voices"]:
        limits.append(f"{r['key_voices']} voices per key")
    if r["max_note_length"]:
        limits.append(f"notes <= {r['max_note_length']:g} s")
    rows = [
        ("file", f"{r.get('input')} (format {r.get('format')}, {_fmt_int(r['tracks'])} tracks, "
                 f"{_fmt_int(r['events'])} events)"),
        ("duration", f"{r['duration_s']:.2f} s (to the last event)"),
        ("tempo", tempo),
        ("notes", f"{_fmt_int(r['notes'])} played of {_fmt_int(r['file_notes'])} in the file"
                  + (f", {_fmt_int(r['skipped_notes'])} skipped" if r["skipped_notes"] else "")
                  + (f", {_fmt_int(r['lost_notes'])} lost" if r["lost_notes"] else "")),
        ("notes/s", f"peak {_fmt_int(r['notes_per_s_peak'])}, mean {r['notes_per_s_mean']:,.0f}"
                    " (per second of song)"),
        ("voices", f"peak {_fmt_int(r['peak_voices'])} of {_fmt_int(r['voices_limit'])}, "
                   f"{_fmt_int(r['stolen_voices'])} stolen, mean {r['voices_mean']:,.0f}"),
        ("limits", ", ".join(limits) or "none"),
        ("control", f"{r['control_s']:.2f} s, {si(r['control_notes_per_s'])} notes/s "
                    f"(wall {r['wall_s']:.2f} s)"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
