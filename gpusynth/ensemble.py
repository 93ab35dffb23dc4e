"""Many songs in one launch: one control path, one voice table, one kernel call per window, one
output per song.

A GPU (or the native backend's threads) wastes itself on one small song: a song of a dozen
voices is one work item of the CPU kernel (gpusynth._kernels.CPU_CHUNK = 16 voices), so one
core renders it while the others wait, and every window pays its launch and its host control
path (event dispatch, preset lookup, allocation, a few dozen numpy calls) for a few thousand
voice-samples. ``Ensemble.render_many(songs)`` renders an ensemble of songs together:

* the songs share one control path (gpusynth.ensemble_control.EnsembleControl, the control path of a
  EnsembleSynth, used through its public interface only): each song gets its own block
  of channel groups, and one pass per window dispatches every song's events, builds one
  controller timeline and allocates every song's notes in one vectorised call. Everything it
  decides is per channel, SysEx is scoped to its song (a GS reset or master volume reaches only
  its own channels, effect settings only its own reverb and chorus), and each song has its own
  voice limit: a song that could reach its limit leaves the ensemble and is rendered again alone
  (``stats["solo"]``), so stealing always happens as in its own render;
* per window the ensemble's voice records are sorted by song into one launch table, each song's
  run padded with finished voices to a whole kernel work item (``bus_align``), its ``bus``
  field set to the song's output, and one kernel call renders every song's voices, each mixed
  into its own output;
* each song then gets its gain, its own effects, its statistics and the end-of-song rule.

The mix is exact integer arithmetic (fixed point, summed in int64), so where a voice sits in
the table and what else is rendered beside it cannot change a bit of any song: each song's
audio is identical to rendering it alone with ``Renderer.render`` (same backend, same
settings), length included -- a song ends by the same rule as every render
(gpusynth.rendering.song_over, on its END_STEP grid). tests/unit/test_ensemble.py checks both on
every backend here.

The ensemble is split in two halves (two ensemble synths) that take turns: while a worker thread
runs one half's kernel (the compiled kernel runs without the GIL), this thread runs the other
half's control path, so the host path and the kernel overlap.

Songs of an ensemble start together and drop out as they end; put songs of similar length together
(``gpusynth batch`` sorts each worker's files by duration). Memory: the launch's output is
songs x window x 4 buses of int64 per thread, so the window shrinks as the ensemble grows
(``OUT_BUDGET``).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from . import events as ev
from .control import format_preset_warnings, post_mix
from .backend import create_backend
from .ensemble_control import EnsembleSynth
from .loading import load_midi, song_groups, song_source
from .rendering import END_STEP, render_opened, reopen, song_over, summary
from .settings import Settings
from .synth import Synth
from .voices import TICK, VOICE_DTYPE

# bytes of int64 output the launch may hold per thread (songs x frames x 4 buses x 8)
OUT_BUDGET = 32 << 20
MAX_WINDOW_TICKS = 512
# the control engines that decide one tick at a time (no ensemble mode): songs rendered alone
SEQUENTIAL_ENGINES = ("sequential",)
SWITCH_INTERVAL = 2e-4    # s: sys.setswitchinterval while an ensemble renders (see render_many)


class EnsembleError(ValueError):
    pass


def window_ticks(n_songs: int, chunk_ticks: int, block_ticks: int = 4,
                 budget: int = OUT_BUDGET) -> int:
    """The launch window (ticks) for an ensemble of ``n_songs``: the largest power of two that
    divides ``chunk_ticks`` (so that the end-of-song check falls on window ends), at most
    MAX_WINDOW_TICKS, whose output fits ``budget``; at least ``block_ticks``."""
    t = MAX_WINDOW_TICKS
    while t > block_ticks and (chunk_ticks % t or n_songs * t * TICK * 4 * 8 > budget):
        t //= 2
    return max(t, block_ticks)


class _Song:
    """One song of the ensemble: its source, its effects, what it has rendered, its statistics."""

    def __init__(self, idx, song, rate, tail_cap_s):
        self.idx = idx
        self.song = song
        self.groups = song_groups(song)
        self.end = int(round(song.duration_s * rate))
        self.cap = self.end + int(tail_cap_s * rate)
        self.blocks = []          # finished chunks (float32 [chunk, 2])
        self.pending = []         # windows of the chunk in progress
        self.pos = 0
        self.done = False
        self.solo = False         # left the ensemble: rendered alone
        self.wall = 0.0
        self.source = None
        self.fx = None
        self.k = 0                # index in its ensemble synth
        self.st = {"voices_sum": 0, "ticks": 0, "peak_level": 0.0, "kernel_s": 0.0, "windows": 0}


class _Half:
    """One half of an ensemble: its ensemble synth, its control path and its songs."""

    def __init__(self, synth, songs):
        self.synth = synth
        self.ctl = synth.control
        self.songs = songs
        self.live = list(songs)


class Ensemble:
    """Renders ensembles of songs in one control path and one voice table (see the module
    docstring).

    ``Ensemble(bank, settings=None, *, chunk=END_STEP, **overrides)`` takes a loaded Bank and
    the ``Renderer`` settings (a gpusynth.Settings and/or fields by name; ``chunk``: the
    block of a song rendered alone); ``render_many(songs)`` -> a list of float32 (frames, 2)
    arrays, one per song, each identical to ``Renderer.render(song)``."""

    def __init__(self, bank, settings: Settings | None = None, *, chunk: int = END_STEP,
                 **overrides):
        st = Settings.of(settings, **overrides)
        if st.backend == "auto":
            from .backend.select import resolve_backend
            st = st.replace(backend=resolve_backend(None)[0])
        self.settings = st
        self.bank = bank
        self.rate = st.rate
        self.voices = st.voices
        self.tail_cap_s = st.tail_cap_s
        self.chunk = int(chunk)
        if self.chunk <= 0:
            raise EnsembleError(f"chunk must be positive, not {chunk}")
        self.backend_name = st.backend
        self.launch = create_backend(st.backend, self.rate, 1024, st.interp)
        self.align = max(1, int(getattr(self.launch, "bus_align", 1)))
        # the shared control path is steal-free; the per-key cap and the one-tick engine
        # take their decisions per tick: such songs are rendered one by one
        self.shared = not st.max_key_voices and st.alloc_engine not in SEQUENTIAL_ENGINES
        self._pool_of = None
        self._launch2 = None
        self._spare = []          # closed ensemble synths, reopened for later ensembles
        self._solo = None
        self.stats = None

    # ---- synths -------------------------------------------------------------------------------
    def _half(self, songs) -> _Half:
        """A ensemble synth for ``songs`` (a closed one of an earlier ensemble is reopened: its
        preset tables are kept)."""
        if self._spare:
            s = self._spare.pop()
        else:
            s = EnsembleSynth(self.settings.replace(backend="numpy"))
            s.download(self.bank, validate=self._pool_of is None)  # validated once per ensemble
        s.setup([m.groups for m in songs], self.voices)
        s.open({"sample_rate": self.rate, "voices": min(self.voices * len(songs), 4_000_000),
                "channel_groups": int(sum(m.groups for m in songs))})
        pool = s.control.presets.pool         # one bank: a view of its samples, never a copy
        key = (pool.__array_interface__["data"][0], len(pool))
        if self._pool_of is None:
            self.launch.upload_pool(pool)
            self._pool_of = key
        elif key != self._pool_of:
            raise EnsembleError("songs of one launch must share one sample pool")
        for k, m in enumerate(songs):
            m.k = k
            m.source = song_source(m.song, self.rate)
            m.fx = s.new_effects()
        return _Half(s, songs)

    def _render_alone(self, song):
        """One song through its own synth: what Renderer.render does."""
        if self._solo is None:
            self._solo = Synth(self.settings)
            self._solo.download(self.bank, validate=False)
        reopen(self._solo, song)
        return render_opened(self._solo, song, self.chunk)

    # ---- the ensemble -------------------------------------------------------------------------
    def render_many(self, songs) -> list:
        """Render ``songs`` (gpusynth.smf.Song objects, or anything ``gpusynth.loading.load_midi``
        reads) together. Returns one float32 (frames, 2) array per song, in order.

        The ensemble is split in two halves that take turns: while the kernel renders one
        half's window (in a worker thread: the compiled kernel runs without the GIL), this
        thread runs the other half's control path (events, allocation, effects), so the host
        path and the kernel overlap instead of adding up."""
        from concurrent.futures import ThreadPoolExecutor
        songs = [load_midi(s) for s in songs]
        t_all = time.perf_counter()
        mem = [_Song(i, s, self.rate, self.tail_cap_s) for i, s in enumerate(songs)]
        if not self.shared:
            for m in mem:
                m.solo = True
            parts = []
        else:
            parts = [p for p in (mem[0::2], mem[1::2]) if p]
        halves = [self._half(p) for p in parts]
        T = window_ticks(len(mem), END_STEP // TICK, halves[0].synth.block_ticks if halves else 4)
        self._launches = 0
        self._k_total = 0.0
        if len(halves) > 1 and self._launch2 is None:
            self._launch2 = create_backend(self.backend_name, self.rate, 1024,
                                           self.settings.interp)
            self._launch2.upload_pool(self.launch.pool)
        launchers = [self.launch, self._launch2]
        # the worker needs the GIL for a moment before and after each kernel call: with the
        # default 5 ms switch interval it would wait for this thread's host work to yield it,
        # and the cores would idle (measured: 8-17 % of the wall time of `bench.py many`)
        swi = sys.getswitchinterval()
        sys.setswitchinterval(min(swi, SWITCH_INTERVAL))
        try:
            self._pipeline(halves, launchers, T, ThreadPoolExecutor)
        finally:
            sys.setswitchinterval(swi)
            for g in halves:
                g.synth.close()
                self._spare.append(g.synth)
        return self._results(mem, halves, T, t_all)

    def _pipeline(self, halves, launchers, T, ThreadPoolExecutor):
        with ThreadPoolExecutor(1, thread_name_prefix="gpusynth-ensemble") as ex:
            fut = {}
            for i, g in enumerate(halves):
                job = self._prepare(g, T)
                fut[i] = (job, ex.submit(self._launch, launchers[i], job))
            while fut:
                for i in list(fut):
                    job, f = fut.pop(i)
                    g = halves[i]
                    self._finish(g, job, *f.result())
                    if g.live:
                        nxt = self._prepare(g, T)
                        fut[i] = (nxt, ex.submit(self._launch, launchers[i], nxt))

    def _results(self, mem, halves, T, t_all) -> list:
        outs, per = [None] * len(mem), [None] * len(mem)
        n_solo = 0
        vs = 0.0
        for g in halves:
            for m in g.songs:
                if not m.solo:
                    outs[m.idx], per[m.idx] = self._song_result(g.ctl, m)
                    vs += m.st["voices_sum"] * TICK
        for m in mem:
            if m.solo:
                outs[m.idx], per[m.idx] = self._render_alone(m.song)
                vs += self._solo.stats["voices_sum"] * TICK
                n_solo += 1
        wall = time.perf_counter() - t_all
        self.stats = {"songs": len(mem), "wall_s": wall, "launches": self._launches,
                      "window_ticks": T, "kernel_s": self._k_total, "voice_samples": vs,
                      "voice_samples_per_s": vs / wall if wall > 0 else 0.0, "solo": n_solo,
                      "audio_s": sum(len(o) for o in outs) / self.rate, "per_song": per}
        return outs

    def _song_result(self, ctl, m):
        """An ensemble song's audio and statistics (as Renderer.render's)."""
        audio = np.concatenate(m.blocks) if m.blocks else np.zeros((0, 2), np.float32)
        st, k = m.st, m.k
        peak = st["peak_level"]
        rs = {"peak_voices": ctl.song_peak_voices(k), "notes": int(ctl.song_notes[k]),
              "stolen_voices": 0, "lost_notes": 0, "skipped_notes": int(ctl.song_skipped[k]),
              "backend": self.backend_name,
              "peak_volume_db": 20.0 * np.log10(peak) if peak > 0 else -200.0,
              "average_voices": st["voices_sum"] / max(st["ticks"], 1),
              "kernel_seconds": st["kernel_s"], "control_seconds": m.wall - st["kernel_s"],
              "windows": st["windows"]}
        res = summary(rs, len(audio), self.rate, m.wall, self.voices)
        res["preset_warnings"] = format_preset_warnings(ctl.song_preset_misses(k), m.groups)
        return audio, res

    def _pull(self, g: _Half, end: int):
        """Queue every live song's events before frame ``end`` on the half's control path,
        each song's channels moved to its block."""
        s = g.ctl
        evs, payloads = [], []
        for m in g.live:
            if m.solo:
                continue
            src, lo, n_ch = m.source, int(s.song_off[m.k]), 16 * m.groups
            while not src.done and src.position < end:
                before = src.position
                e, sx = src.read(end, 1 << 20)
                if len(e):
                    e = np.array(e, copy=True)
                    is_sx = e["status"] == ev.SYSEX
                    bad = ~is_sx & ((e["chan"] < 0) | (e["chan"] >= n_ch))
                    if np.any(bad):          # as its own render: that song's error, alone
                        s.evict(m.k)
                        break
                    e["chan"] = np.where(is_sx, lo + np.clip(e["chan"], 0, n_ch - 1), lo + e["chan"])
                    if np.any(is_sx):
                        e["sysex"][is_sx] += len(payloads)
                        payloads += list(sx)
                    evs.append(e)
                if src.position == before and not len(e):
                    break
        evs = [e for e in evs if not s.evicted[int(s.song_of_chan[int(e["chan"][0])])]]
        if evs:
            s.queue(np.concatenate(evs) if len(evs) > 1 else evs[0], payloads)

    def _prepare(self, g: _Half, T) -> dict:
        """The half's control path for the window [B, B + N) and its launch table: the
        voices sorted by song, each song's rows padded to a whole work item, on its own bus."""
        t0 = time.perf_counter()
        s, ctl = g.synth, g.ctl
        B = ctl.position
        N = T * TICK
        self._pull(g, B + N)
        w = ctl.prepare_window(T, s.sends)
        n = w.voices
        live = [m for m in g.live if not ctl.evicted[m.k]]
        bus_of = np.full(ctl.n_songs, -1, np.int64)
        bus_of[[m.k for m in live]] = np.arange(len(live))
        vb = bus_of[ctl.slot_songs()]
        rows = np.flatnonzero(vb >= 0)
        rows = rows[np.argsort(vb[rows], kind="stable")]
        counts = np.bincount(vb[rows], minlength=len(live)).astype(np.int64)
        padded = counts + (-counts) % self.align
        first = np.concatenate([[0], np.cumsum(padded)[:-1]]).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        b_of_row = vb[rows]
        dest = first[b_of_row] + (np.arange(len(rows)) - starts[b_of_row])
        table = np.zeros(int(padded.sum()), VOICE_DTYPE)
        table["done"] = 1                              # padding: finished voices
        if len(rows):
            table[dest] = s.backend.table[rows]
        table["bus"] = np.repeat(np.arange(len(live)), padded)
        for m, c in zip(live, counts.tolist()):
            m.st["voices_sum"] += c * T
        return {"live": live, "B": B, "T": T, "w": w, "rows": rows, "dest": dest,
                "n": n, "table": table, "chin": w.chin, "sends": w.sends or any(
                    m.fx.on for m in live), "prep_s": time.perf_counter() - t0}

    @staticmethod
    def _launch(backend, job):
        """One kernel call for a prepared window (runs in the worker thread)."""
        k0 = time.perf_counter()
        table, T, n_out = job["table"], job["T"], max(len(job["live"]), 1)
        total = len(table)
        if total:
            backend.load_rows(table)
            out, _ = backend.render(total, job["B"], T, job["chin"], job["sends"], n_out=n_out)
            after = backend.read_table(slice(0, total))
        else:
            out = np.zeros((n_out, T * TICK, 4 if job["sends"] else 2), np.float32)
            after = table
        if out.ndim == 2:
            out = out[None]
        return out, after, time.perf_counter() - k0

    def _finish(self, g: _Half, job, out, after, k_s):
        """The voices' state back to the half's table, the window retired on the control path
        (finished voices removed: ControlPath.retire); each song gets its gain and effects
        (gpusynth.control.post_mix, as a synth's own window), its statistics and the
        end-of-song rule."""
        t0 = time.perf_counter()
        self._k_total += k_s
        self._launches += 1
        s, ctl = g.synth, g.ctl
        B, T = job["B"], job["T"]
        N = T * TICK
        n, rows = job["n"], job["rows"]
        tab = s.backend.table
        if len(rows):
            tab[rows] = after[job["dest"]]
        finished = np.flatnonzero(tab["done"][:n]).astype(np.int64)
        ctl.retire(job["w"], finished)
        live = job["live"]
        share = k_s / max(len(live), 1)
        host = job["prep_s"] / max(len(live), 1)
        gain = s.gain
        keep = []
        for b, m in enumerate(live):
            o = out[b]
            if not (s.sends or m.fx.on) and o.shape[1] > 2:
                o = o[:, :2]
            o = post_mix(o, gain, m.fx, ctl.song_fx_changes[m.k], B)
            st = m.st
            st["kernel_s"] += share
            st["windows"] += 1
            st["ticks"] += T
            st["peak_level"] = max(st["peak_level"], float(np.max(np.abs(o[:, :2]))) if N else 0.0)
            m.pending.append(o[:, :2])
            m.pos += N
            if m.pos % END_STEP == 0:
                self._chunk_end(ctl, m)
            m.wall += share + host
            if not m.done:
                keep.append(m)
        gone = [m.k for m in g.live if m.done or ctl.evicted[m.k]]
        for m in g.live:
            if ctl.evicted[m.k] and not m.solo:
                m.solo = True
                m.blocks, m.pending = [], []
        if gone:
            ctl.drop_songs(gone)
        g.live = [m for m in keep if not m.solo]
        dt = (time.perf_counter() - t0) / max(len(live), 1)
        for m in live:
            m.wall += dt

    def _chunk_end(self, ctl, m: _Song):
        """The end-of-song rule of every render (gpusynth.rendering.song_over), at the same
        END_STEP boundaries, on the song's own events, voices and effects."""
        block = np.concatenate(m.pending) if len(m.pending) > 1 else m.pending[0]
        m.pending = []
        m.blocks.append(block)
        m.done = song_over(_SongView(ctl, m), m.pos, m.end, m.cap, block)


class _SongView:
    """What song_over asks of a synth, for one song of an ensemble's control path (every event
    before the window's end has been played: nothing is left queued)."""
    pending_events = 0

    def __init__(self, ctl, m):
        self.ctl, self.m = ctl, m

    @property
    def source_done(self) -> bool:
        return bool(self.m.source.done)

    @property
    def active_voices(self) -> int:
        return self.ctl.song_active_voices(self.m.k)

    @property
    def effects_ringing(self) -> bool:
        return self.m.fx.ringing()

    def has_held_notes(self) -> bool:
        return self.ctl.song_has_held_notes(self.m.k)


__all__ = ["Ensemble", "EnsembleError", "window_ticks"]
