"""The per-tick stealing loop of a run of note events: a compiled helper (steal_run.cpp,
``NATIVE``, built through gpusynth.compiled) and its numpy twin, the reference.

``VoiceAllocator.run`` (gpusynth.allocator) computes everything that does not depend on which
voices get stolen in one vectorised pass over the run (the new voices, which event releases
which voice and the closed-form end it then gets, exclusive-class cuts, per-key cap queries) and
packs it into a ``Plan``; ``run(plan, engine)`` then takes, tick by tick, the decisions that do:

1. per-key cap (``max_key`` > 0): each note-on of the tick, in order, at its own time, counts the
   older notes on its channel + key that still sound (not killed, not silent in closed form);
   from ``max_key`` on, the oldest notes' sounding voices are killed (a steal);
2. at the tick's first note-on time: the voices counted against the limit (slots created before
   the tick, not killed, not silent), and if they plus the tick's new voices exceed the limit,
   the lowest scores are killed (channel priority, released before held, closed-form level,
   older first), exactly as ``VoiceAllocator.allocate``;
3. the tick's releases (note-off, retrigger; pedal holds only set flags), skipped for voices
   killed by then; 4. the tick's exclusive-class kills.

Both engines give the same bits (tests/unit/test_allocator.py); ``engine="auto"`` uses the compiled
helper when a C++ compiler is available, else the numpy twin (engine names: gpusynth.compiled).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import envelope
from ._kernels import kernel_dir
from .compiled import I64, PTR, Helper, engine_choice


@dataclass
class Plan:
    """Inputs of one run's stealing loop. Per-voice columns cover slots [0, N) (the table before
    the run, then the run's new voices); CSR pointers are per tick with events (K ticks)."""
    n0: int
    tick_new: np.ndarray        # [K + 1] int64: new voices of tick k are n0 + [tick_new[k], tick_new[k+1])
    t_first: np.ndarray         # [K] int64: time of the tick's first new voice's note-on
    start: np.ndarray           # int64 [N]
    release: np.ndarray         # int64 [N] (updated)
    kill: np.ndarray            # int64 [N] (updated)
    delay: np.ndarray           # float32 [N] ... the volume envelope of each voice
    attack: np.ndarray
    hold: np.ndarray
    k1000: np.ndarray
    sus: np.ndarray
    krel: np.ndarray
    attg: np.ndarray            # float32 [N]: cb_gain(max(atten, 0))
    seq: np.ndarray             # int64 [N]
    prio: np.ndarray            # int64 [N]
    frel: np.ndarray            # int64 [N]: forced release time (max_note_s), NEVER if none
    released: np.ndarray        # uint8 [N] (updated)
    sustained: np.ndarray       # uint8 [N] (updated)
    killed: np.ndarray          # uint8 [N] (updated)
    silent: np.ndarray          # int64 [N] (updated)
    rel_ptr: np.ndarray         # [K + 1]
    rel_slot: np.ndarray
    rel_time: np.ndarray
    rel_hold: np.ndarray        # uint8
    rel_silent: np.ndarray      # int64: the voice's closed-form end once released there
    ex_ptr: np.ndarray          # [K + 1]
    ex_slot: np.ndarray
    ex_time: np.ndarray
    max_key: int
    kq_ptr: np.ndarray          # [K + 1]: per-key cap queries (one per note-on with voices)
    kq_time: np.ndarray
    kq_lo: np.ndarray           # range in kc_slot: older voices on the note's channel + key,
    kq_hi: np.ndarray           # sorted by note (oldest first)
    kc_slot: np.ndarray
    note: np.ndarray            # int64 [N]: note id of each voice
    max_voices: int
    fade: int
    stolen: int = 0             # updated
    peak: int = 0               # updated

    @property
    def K(self) -> int:
        return len(self.t_first)


# ---------------------------------------------------------------------------- numpy twin
def _kill(p: Plan, s, t):
    p.kill[s] = np.minimum(p.kill[s], t)
    p.killed[s] = 1
    p.silent[s] = np.minimum(p.silent[s], p.kill[s] + p.fade)


def run_reference(p: Plan):
    """The reference: the same loop in numpy, one tick at a time."""
    for k in range(p.K):
        if p.max_key > 0:
            for q in range(p.kq_ptr[k], p.kq_ptr[k + 1]):
                tq = p.kq_time[q]
                c = p.kc_slot[p.kq_lo[q]:p.kq_hi[q]]
                c = c[(p.killed[c] == 0) & (p.silent[c] > tq)]
                notes = np.unique(p.note[c])
                excess = len(notes) - p.max_key + 1
                if excess > 0:
                    v = c[np.isin(p.note[c], notes[:excess])]
                    _kill(p, v, np.maximum(tq, p.start[v]))
                    p.stolen += len(v)
        M = int(p.tick_new[k + 1] - p.tick_new[k])
        if M > 0:
            nk = p.n0 + int(p.tick_new[k])
            tf = p.t_first[k]
            playing = np.flatnonzero((p.killed[:nk] == 0) & (p.silent[:nk] > tf))
            steal = len(playing) + M - p.max_voices
            if steal > 0:
                rel = (p.released[playing] != 0) | (p.frel[playing] <= tf)
                key = p.prio[playing] * 2 + ~rel
                cut = np.partition(key, steal - 1)[steal - 1]
                sure = playing[key < cut]
                group = playing[key == cut]
                lvl = envelope.exact_cols(p.start[group], p.release[group], p.kill[group],
                                          p.delay[group], p.attack[group], p.hold[group],
                                          p.k1000[group], p.sus[group], p.krel[group], tf,
                                          p.fade) * p.attg[group]
                order = np.lexsort((p.seq[group], lvl))
                victims = np.concatenate([sure, group[order[:steal - len(sure)]]])
                _kill(p, victims, np.maximum(tf, p.start[victims]))
                p.stolen += int(steal)
            p.peak = max(p.peak, len(playing) + M - max(steal, 0))
        a, b = p.rel_ptr[k], p.rel_ptr[k + 1]
        if b > a:
            s = p.rel_slot[a:b]
            ok = p.killed[s] == 0
            s, hold = s[ok], p.rel_hold[a:b][ok] != 0
            p.released[s] = 1
            p.sustained[s[hold]] = 1
            r = ~hold
            sr = s[r]
            p.release[sr] = np.minimum(p.release[sr], p.rel_time[a:b][ok][r])
            p.sustained[sr] = 0
            p.silent[sr] = p.rel_silent[a:b][ok][r]
        a, b = p.ex_ptr[k], p.ex_ptr[k + 1]
        if b > a:
            _kill(p, p.ex_slot[a:b], p.ex_time[a:b])


# ---------------------------------------------------------------------------- compiled helper
_I64 = ("tick_new", "t_first", "start", "release", "kill", "seq", "prio", "frel", "silent",
        "rel_ptr", "rel_slot", "rel_time", "rel_silent", "ex_ptr", "ex_slot", "ex_time",
        "kq_ptr", "kq_time", "kq_lo", "kq_hi", "kc_slot", "note")
_F32 = ("delay", "attack", "hold", "k1000", "sus", "krel", "attg")
_U8 = ("released", "sustained", "killed", "rel_hold")
_ORDER = ("tick_new", "t_first", "start", "release", "kill", "delay", "attack", "hold", "k1000",
          "sus", "krel", "attg", "seq", "prio", "frel", "released", "sustained", "killed",
          "silent", "rel_ptr", "rel_slot", "rel_time", "rel_hold", "rel_silent", "ex_ptr",
          "ex_slot", "ex_time", "MAX_KEY", "kq_ptr", "kq_time", "kq_lo", "kq_hi", "kc_slot",
          "note")


# steal_run's arguments: n0, K, then _ORDER (arrays by pointer, max_key), max_voices, fade, stats
NATIVE = Helper(
    "steal", [Path(__file__).with_name("steal_run.cpp")],
    ["-O2", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC", "-x", "c++"],
    {"steal_run": (None, [I64, I64] + [I64 if nm == "MAX_KEY" else PTR for nm in _ORDER]
                   + [I64, I64, PTR])},
    headers=lambda: [kernel_dir() / "detmath.h", Path(__file__).with_name("env_exact.h")],
    label="steal helper")


def run_native(p: Plan, lib=None):
    """The compiled loop (BackendUnavailable when it cannot be built)."""
    lib = lib or NATIVE.load()
    for nm in _I64 + _F32 + _U8:
        a = getattr(p, nm)
        dt = np.int64 if nm in _I64 else np.float32 if nm in _F32 else np.uint8
        if not (isinstance(a, np.ndarray) and a.dtype == dt and a.flags.c_contiguous):
            setattr(p, nm, np.ascontiguousarray(a, dt))
    args = [int(p.n0), p.K]
    for nm in _ORDER:
        args.append(int(p.max_key) if nm == "MAX_KEY" else getattr(p, nm).ctypes.data)
    stats = np.array([p.stolen, p.peak], np.int64)
    lib.steal_run(*args, int(p.max_voices), int(p.fade), stats.ctypes.data)
    p.stolen, p.peak = int(stats[0]), int(stats[1])


def run(p: Plan, engine: str = "auto"):
    """Run the loop with ``engine``: "native" (the compiled helper; BackendUnavailable if it
    cannot be built), "reference" (the numpy twin) or "auto" (native when available). Returns
    the engine used."""
    lib = NATIVE.for_engine(engine_choice(engine, "steal engine"))
    if lib is None:
        run_reference(p)
        return "reference"
    run_native(p, lib)
    return "native"
