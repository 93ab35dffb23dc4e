"""The per-tick steal loop (gpusynth.steal): the compiled helper (steal_run.cpp) against its
numpy twin (the definition) on random plans, and its loading before the first note."""
from __future__ import annotations

import numpy as np
import pytest

from gpusynth import Synth, steal
from gpusynth.voices import NEVER, TICK


def _native_helper():
    if not steal.NATIVE.available():
        pytest.skip(f"no compiled steal helper: {steal.NATIVE.error()}")


def _random_plan(rng, n0=300, K=60, max_voices=280, max_key=0):
    """A Plan with random voices, many exact level ties (shared envelopes), random schedules
    (each voice released and cut at most once per run, as VoiceAllocator.run plans them)."""
    N = n0 + int(rng.integers(K, 6 * K))
    fade = 144
    tick_new = np.sort(rng.integers(0, N - n0 + 1, K - 1))
    tick_new = np.concatenate([[0], tick_new, [N - n0]]).astype(np.int64)
    ticks = np.sort(rng.choice(np.arange(20, 400), K, replace=False)).astype(np.int64)
    t_first = ticks * TICK + rng.integers(0, TICK, K)
    start = np.zeros(N, np.int64)
    start[:n0] = rng.integers(0, 20 * TICK, n0)
    for k in range(K):
        start[n0 + tick_new[k]:n0 + tick_new[k + 1]] = t_first[k] + rng.integers(0, 4, tick_new[k + 1] - tick_new[k])
    shapes = rng.integers(0, 4, N)                       # four envelopes shared by many voices
    pick = lambda vals: np.asarray(vals, np.float32)[shapes]   # noqa: E731
    release = np.where(rng.random(N) < 0.4, start + rng.integers(1, 3000, N), NEVER)
    prio = rng.choice([0x40000000, 0x80000000, 0x80000000, 0x80000000], N).astype(np.int64)
    note = np.arange(N, dtype=np.int64) // 2              # two voices per note
    kc = np.arange(N, dtype=np.int64)
    R = int(rng.integers(50, 400))
    r_tick = np.sort(rng.integers(0, K, R))
    rel_ptr = np.searchsorted(r_tick, np.arange(K + 1)).astype(np.int64)
    r_time = t_first[r_tick] + rng.integers(0, TICK, R)
    E = int(rng.integers(0, 40))
    e_tick = np.sort(rng.integers(0, K, E))
    Q = N - n0
    q_tick = np.repeat(np.arange(K), np.diff(tick_new))
    lo = np.maximum(np.arange(Q) + n0 - 12, 0)
    return steal.Plan(
        n0=n0, tick_new=tick_new, t_first=t_first, start=start, release=release,
        kill=np.full(N, NEVER, np.int64), delay=pick([0, 0, 100, 0]), attack=pick([0, 300, 50, 1000]),
        hold=pick([0, 0, 200, 0]), k1000=pick([1e-2, 5e-2, 1e-3, 2e-1]), sus=pick([1000, 300, 1440, 0]),
        krel=pick([0.5, 0.05, 1.0, 0.01]), attg=pick([1.0, 0.5, 1.0, 0.25]),
        seq=np.arange(N, dtype=np.int64), prio=prio, frel=np.full(N, NEVER, np.int64),
        released=(release < NEVER).astype(np.uint8), sustained=np.zeros(N, np.uint8),
        killed=(rng.random(N) < 0.05).astype(np.uint8),
        silent=np.where(rng.random(N) < 0.3, start + rng.integers(100, 20000, N), NEVER),
        rel_ptr=rel_ptr, rel_slot=rng.choice(N, R, replace=False).astype(np.int64), rel_time=r_time,
        rel_hold=(rng.random(R) < 0.2).astype(np.uint8),
        rel_silent=r_time + rng.integers(0, 5000, R),
        ex_ptr=np.searchsorted(e_tick, np.arange(K + 1)).astype(np.int64),
        ex_slot=rng.choice(N, E, replace=False).astype(np.int64), ex_time=t_first[e_tick] + 3,
        max_key=max_key, kq_ptr=np.searchsorted(q_tick, np.arange(K + 1)).astype(np.int64),
        kq_time=t_first[q_tick], kq_lo=lo.astype(np.int64), kq_hi=(np.arange(Q) + n0).astype(np.int64),
        kc_slot=kc, note=note, max_voices=max_voices, fade=fade)


def test_compiled_loop_is_its_numpy_twin_bit_for_bit():
    """The compiled helper against the numpy twin on random plans: shared envelopes (exact
    level ties, broken by age), several priorities, releases, pedal holds, exclusive kills and
    the per-key cap; every output array and count must match."""
    _native_helper()
    import copy
    rng = np.random.default_rng(11)
    total = 0
    for trial in range(40):
        p = _random_plan(rng, max_key=int(rng.choice([0, 0, 1, 3])))
        q = copy.deepcopy(p)
        steal.run_reference(p)
        steal.run_native(q)
        for f in ("release", "kill", "released", "sustained", "killed", "silent"):
            np.testing.assert_array_equal(getattr(p, f), getattr(q, f), err_msg=f"trial {trial}: {f}")
        assert (p.stolen, p.peak) == (q.stolen, q.peak), trial
        total += p.stolen
    assert total > 1000


def test_open_loads_the_compiled_loop_before_the_first_note(monkeypatch):
    """Synth.open builds/loads the stealing loop, so the first note-on in real time does not
    wait for a compiler (a first build took about a second: 191 underruns in the soak)."""
    if not steal.NATIVE.available():
        pytest.skip(f"no compiled steal helper: {steal.NATIVE.error()}")
    calls = []
    real = steal.NATIVE.available
    monkeypatch.setattr(steal.NATIVE, "available", lambda: calls.append(1) or real())
    s = Synth(backend="numpy")
    s.open({"voices": 8})
    assert calls, "open() did not load the compiled stealing loop"
    s.close()
    calls.clear()
    s = Synth(backend="numpy", alloc_engine="reference")
    s.open({"voices": 8})
    assert not calls                      # the reference engine needs no compiled code
