"""Many songs in one launch: one voice table, one kernel call per window, one output per song.

A GPU (or the native backend's threads) wastes itself on one small song: a song of a dozen
voices is one work item of the CPU kernel (gpusynth._kernels.CPU_CHUNK = 16 voices), so one
core renders it while the others wait, and every window pays its launch and host overhead for a
few thousand voice-samples. ``Ensemble.render_many(songs)`` renders a group of songs together:

* every song keeps its own control path -- a ``Synth`` of its own (channels, presets, voice
  allocation and stealing under its own voice limit, SysEx, reverb and chorus, gain), so
  nothing one song does can reach another;
* per window each song's host half runs (``Synth._window_prepare``: events, controller
  timelines), then its active voice records are gathered into one launch table -- each song's
  run padded with finished voices to a whole kernel work item (``bus_align``), its ``bus``
  field set to the song's output and its ``chan`` offset into the concatenated channel
  inputs -- and one kernel call renders every song's voices, each mixed into its own output;
* the voices' advanced state goes back to each song's table and each song finishes its window
  (``Synth._window_finish``: finished voices, gain, effects).

The mix is exact integer arithmetic (fixed point, summed in int64), so where a voice sits in
the table and what else is rendered beside it cannot change a bit of any song: each song's
audio is identical to rendering it alone with ``Renderer.render`` (same backend, same
settings), length included -- a song ends on the same 32,768-frame chunk rule as
``gpusynth.render.iter_render``. tests/test_ensemble.py checks both on every backend here.

The group is split in two halves that take turns: while a worker thread runs one half's
kernel (the compiled kernel runs without the GIL), this thread does the other half's host
work, so the host path and the kernel overlap (``bench.py many``: x1.50 the voice-samples per
second of one song at a time on 2 cores; on one core there is nothing to overlap).

Songs of a group start together and drop out as they end; group songs of similar length
(``gpusynth batch`` sorts each worker's files by duration). Memory: the launch's output is
songs x window x 4 buses of int64 per thread, so the window shrinks as the group grows
(``OUT_BUDGET``).
"""
from __future__ import annotations

import time

import numpy as np

from .render import song_over, song_source, summarize
from .synth import Synth
from .voices import TICK, VOICE_DTYPE

# bytes of int64 output the launch may hold per thread (songs x frames x 4 buses x 8)
OUT_BUDGET = 32 << 20
MAX_WINDOW_TICKS = 512


class EnsembleError(ValueError):
    pass


def window_ticks(n_songs: int, chunk_ticks: int, block_ticks: int = 4,
                 budget: int = OUT_BUDGET) -> int:
    """The launch window (ticks) for a group of ``n_songs``: the largest power of two that
    divides ``chunk_ticks`` (so that the end-of-song check falls on window ends), at most
    MAX_WINDOW_TICKS, whose output fits ``budget``; at least ``block_ticks``."""
    t = MAX_WINDOW_TICKS
    while t > block_ticks and (chunk_ticks % t or n_songs * t * TICK * 4 * 8 > budget):
        t //= 2
    return max(t, block_ticks)


class _Member:
    """One song of the group: its synth, its source and what it has rendered."""

    def __init__(self, idx, song, synth, rate, tail_cap_s):
        self.idx = idx
        self.song = song
        self.synth = synth
        self.end = int(round(song.duration_s * rate))
        self.cap = self.end + int(tail_cap_s * rate)
        self.blocks = []          # finished chunks (float32 [chunk, 2])
        self.pending = []         # windows of the chunk in progress
        self.pos = 0
        self.done = False
        self.wall = 0.0

    def pull(self, end: int):
        """Queue every event before frame ``end`` (repeating capped reads)."""
        s = self.synth
        ready = s._pull(end)
        while ready < end and not s.source_done:
            r = s._pull(end)
            if r <= ready:
                break
            ready = r


class Ensemble:
    """Renders groups of songs in one voice table (see the module docstring).

    ``Ensemble(bank, *, rate, backend, voices, gain, interp, tail_cap_s, chunk, **options)``
    takes a loaded Bank and the ``Renderer`` settings; ``render_many(songs)`` -> a list of
    float32 (frames, 2) arrays, one per song, each identical to ``Renderer.render(song)``."""

    def __init__(self, bank, *, rate=48000, backend="native", voices=4096, gain=0.5,
                 interp="cubic", tail_cap_s=30.0, chunk=32768, **options):
        from .backend import create_backend
        self.bank = bank
        self.rate = int(rate)
        self.voices = int(voices)
        self.gain = gain
        self.interp = interp
        self.tail_cap_s = float(tail_cap_s)
        self.chunk = int(chunk)
        self.options = dict(options)
        if self.chunk <= 0 or self.chunk % (4 * TICK):
            raise EnsembleError(f"chunk must be a positive multiple of {4 * TICK} frames, not {chunk}")
        self.backend_name = backend
        self.launch = create_backend(backend, self.rate, 1024, interp)
        self.align = max(1, int(getattr(self.launch, "bus_align", 1)))
        self._pool_of = None
        self._launch2 = None
        self._spare = []          # closed member synths, reopened for later songs
        self.stats = None

    def _member(self, idx, song) -> _Member:
        # the song's control path; its voice table is a host record table (the numpy
        # backend's), never rendered itself: the launch renders its rows
        # (a member synth of an earlier song is reopened: its preset tables are kept)
        if self._spare:
            s = self._spare.pop()
        else:
            s = Synth(backend="numpy", interp=self.interp, gain=self.gain, **self.options)
            s.download(self.bank, validate=self._pool_of is None)  # validated once per ensemble
        g = max(1, int(getattr(song, "channel_groups", 2) or 2))
        s.open({"sample_rate": self.rate, "voices": self.voices, "channel_groups": g})
        s.stream(song_source(song, self.rate))
        pool = s.presets.pool                 # one bank: a view of its samples, never a copy
        key = (pool.__array_interface__["data"][0], len(pool))
        if self._pool_of is None:
            self.launch.upload_pool(pool)
            self._pool_of = key
        elif key != self._pool_of:
            raise EnsembleError("songs of one launch must share one sample pool")
        return _Member(idx, song, s, self.rate, self.tail_cap_s)

    def render_many(self, songs) -> list:
        """Render ``songs`` (gpusynth.smf.Song objects, or anything ``gpusynth.api.load_midi``
        reads) together. Returns one float32 (frames, 2) array per song, in order.

        The group is split in two halves that take turns: while the kernel renders one
        half's window (in a worker thread: the compiled kernel runs without the GIL), this
        thread runs the other half's host work (events, allocation, effects), so the host
        path and the kernel overlap instead of adding up."""
        from concurrent.futures import ThreadPoolExecutor
        from .api import load_midi
        songs = [load_midi(s) for s in songs]
        t_all = time.perf_counter()
        mem = [self._member(i, s) for i, s in enumerate(songs)]
        T = window_ticks(len(mem), self.chunk // TICK, mem[0].synth.block_ticks if mem else 4)
        self._launches = 0
        self._k_total = 0.0
        parts = [p for p in (mem[0::2], mem[1::2]) if p]
        if len(parts) > 1 and self._launch2 is None:
            from .backend import create_backend
            self._launch2 = create_backend(self.backend_name, self.rate, 1024, self.interp)
            self._launch2.upload_pool(self.launch.pool)
        launchers = [self.launch, self._launch2]
        with ThreadPoolExecutor(1, thread_name_prefix="gpusynth-ensemble") as ex:
            fut = {}
            for i, part in enumerate(parts):
                job = self._prepare(part, 0, T)
                fut[i] = (job, ex.submit(self._launch, launchers[i], job))
            while fut:
                for i in list(fut):
                    job, f = fut.pop(i)
                    parts[i] = self._finish(job, *f.result())
                    if parts[i]:
                        nxt = self._prepare(parts[i], job["B"] + T * TICK, T)
                        fut[i] = (nxt, ex.submit(self._launch, launchers[i], nxt))
        wall = time.perf_counter() - t_all
        per = []
        outs = []
        for m in mem:
            audio = np.concatenate(m.blocks) if m.blocks else np.zeros((0, 2), np.float32)
            outs.append(audio)
            st = summarize(m.synth, len(audio), m.wall)
            st["backend"] = self.backend_name
            st["preset_warnings"] = m.synth.preset_warnings()
            per.append(st)
            m.synth.close()
            self._spare.append(m.synth)
        vs = sum(m.synth.stats["voices_sum"] for m in mem) * TICK
        self.stats = {"songs": len(mem), "wall_s": wall, "launches": self._launches,
                      "window_ticks": T, "kernel_s": self._k_total, "voice_samples": vs,
                      "voice_samples_per_s": vs / wall if wall > 0 else 0.0,
                      "audio_s": sum(len(o) for o in outs) / self.rate, "per_song": per}
        return outs

    def _prepare(self, live, B, T) -> dict:
        """The host halves of ``live`` songs' window [B, B + N) and their launch table: each
        song's rows padded to a whole work item, on its own bus, its channels offset into the
        concatenated channel inputs."""
        N = T * TICK
        ws = []
        for m in live:
            t0 = time.perf_counter()
            m.pull(B + N)
            w = m.synth._window_prepare(T)
            w["prep_s"] = time.perf_counter() - t0
            ws.append(w)
            m.wall += w["prep_s"]
        counts = [w["n"] for w in ws]
        padded = [n + (-n) % self.align for n in counts]
        total = int(sum(padded))
        chin = np.concatenate([w["chin"] for w in ws], axis=2)
        coff = np.cumsum([0] + [w["chin"].shape[2] for w in ws])[:-1]
        table = np.zeros(total, VOICE_DTYPE)
        a = 0
        for b, (m, n, p) in enumerate(zip(live, counts, padded)):
            if n:
                table[a:a + n] = m.synth.backend.table[:n]
                table["chan"][a:a + n] += coff[b]
            table["done"][a + n:a + p] = 1          # padding: finished voices
            table["bus"][a:a + p] = b
            a += p
        return {"live": live, "B": B, "T": T, "ws": ws, "counts": counts, "padded": padded,
                "coff": coff, "table": table, "chin": chin,
                "sends": any(w["sends"] for w in ws)}

    @staticmethod
    def _launch(backend, job):
        """One kernel call for a prepared window (runs in the worker thread)."""
        k0 = time.perf_counter()
        table, T, n_out = job["table"], job["T"], len(job["live"])
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

    def _finish(self, job, out, after, k_s) -> list:
        """The voices' state back to each song; each song finishes its window. Returns the
        songs still playing."""
        self._k_total += k_s
        self._launches += 1
        N = job["T"] * TICK
        share = k_s / max(len(job["table"]), 1)
        a = 0
        keep = []
        for b, (m, w, n, p) in enumerate(zip(job["live"], job["ws"], job["counts"], job["padded"])):
            t0 = time.perf_counter()
            if n:
                tab = m.synth.backend.table
                tab[:n] = after[a:a + n]
                tab["chan"][:n] -= job["coff"][b]
                finished = np.flatnonzero(tab["done"][:n]).astype(np.int64)
            else:
                finished = np.zeros(0, np.int64)
            a += p
            o = out[b]
            if not w["sends"] and o.shape[1] > 2:
                o = o[:, :2]
            # the song's render time: its host halves and its share of the launch (not the
            # other songs' host work in between)
            w["t_start"] = time.perf_counter() - w["prep_s"] - share * p
            blk = m.synth._window_finish(w, o, finished, share * p)
            m.pending.append(blk[:, :2])
            m.pos += N
            if m.pos % self.chunk == 0:
                self._chunk_end(m)
            m.wall += time.perf_counter() - t0
            if not m.done:
                keep.append(m)
        return keep

    def _chunk_end(self, m: _Member):
        """gpusynth.render.iter_render's end-of-song rule, at the same chunk boundaries."""
        block = np.concatenate(m.pending) if len(m.pending) > 1 else m.pending[0]
        m.pending = []
        m.blocks.append(block)
        m.done = song_over(m.synth, m.pos, m.end, m.cap, block)


__all__ = ["Ensemble", "EnsembleError", "window_ticks"]
