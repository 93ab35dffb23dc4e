"""Generated "black MIDI" files of any size, written in bounded memory (tests and benchmarks).

``python -m gpusynth.blackgen OUT.mid --notes 10M [--tracks 64] [--density 50000]``

The music: ``tracks`` tracks (format 1, tempo in track 0), each on one channel (track k ->
channel k % 16; channel 9 plays drum keys), each made of bursts of dense chords (3-12 keys
struck together) and fast runs (up or down the scale, a few ticks apart), ``density`` note-ons
per second in all, note lengths 10 ms to 1 s. Notes are written the way black-MIDI tools write
them: note-off as note-on with velocity 0, running status throughout, so one note is about 6-8
bytes. Tracks are generated in chunks of ``chunk`` notes and appended to the file, the track
length patched afterwards: memory is bounded by the chunk, not by the note count. The output
is a pure function of the arguments (seeded).
"""
from __future__ import annotations

import argparse
import struct
import sys
import time

import numpy as np

__all__ = ["write_black_midi", "parse_count"]

PPQ = 960
TEMPO = 500_000          # us per quarter: 1 tick = 0.52 ms
PROGRAMS = [0, 4, 11, 16, 24, 33, 48, 56, 61, 0, 65, 73, 80, 88, 46, 19]


def parse_count(s: str) -> int:
    s = str(s).strip().upper().replace("_", "")
    mult = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def _vlq(values: np.ndarray):
    """Encode non-negative ints < 2**28 as MIDI VLQ: (bytes uint8, length per value)."""
    v = values.astype(np.int64)
    n = 1 + (v >= 1 << 7).astype(np.int64) + (v >= 1 << 14) + (v >= 1 << 21)
    return v, n


def _encode(ticks, status, d1, d2, last_tick, running):
    """Bytes of a run of channel events (ticks sorted) after ``last_tick``; ``running``: the
    running status before it. Returns (bytes, new running status)."""
    delta = np.diff(np.concatenate([[last_tick], ticks]))
    v, L = _vlq(delta)
    st_needed = np.ones(len(status), bool)
    st_needed[1:] = status[1:] != status[:-1]
    if len(status):
        st_needed[0] = status[0] != running
    size = L + st_needed + 2
    off = np.concatenate([[0], np.cumsum(size)[:-1]])
    out = np.zeros(int(size.sum()), np.uint8)
    # VLQ bytes: most significant group first, continuation bit on all but the last
    for k in range(4):
        has = L > k
        shift = 7 * (L[has] - 1 - k)
        byte = (v[has] >> shift) & 0x7F
        byte = byte | np.where(k < L[has] - 1, 0x80, 0)
        out[off[has] + k] = byte
    p = off + L
    out[p[st_needed]] = status[st_needed]
    p = p + st_needed
    out[p] = d1
    out[p + 1] = d2
    return out.tobytes(), int(status[-1]) if len(status) else running


def _track_notes(rng, n, t0, t1, drum):
    """n notes with onsets in [t0, t1) ticks: bursts of chords and runs. Returns (on tick,
    off tick, key, velocity) sorted by onset."""
    # groups: each group is a chord (same tick) or a run (ticks apart)
    sizes = rng.integers(3, 13, size=n // 3 + 2)
    ends = np.cumsum(sizes)
    g = int(np.searchsorted(ends, n)) + 1
    sizes = sizes[:g]
    sizes[-1] -= int(ends[g - 1] - n)
    gid = np.repeat(np.arange(g), sizes)
    idx = np.arange(n) - np.repeat(np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    g_start = np.sort(rng.integers(t0, max(t0 + 1, t1), size=g))
    is_run = rng.random(g) < 0.4
    step = rng.integers(2, 25, size=g)                     # ticks between run notes (1-13 ms)
    on = g_start[gid] + np.where(is_run[gid], idx * step[gid], 0)
    if drum:
        key = rng.integers(35, 82, size=n)
    else:
        root = rng.integers(36, 84, size=g)
        direction = np.where(rng.random(g) < 0.5, 1, -1)
        chord_iv = np.array([0, 4, 7, 12, 16, 19, 24, 3, 10, 14, 17, 21])
        run_iv = np.array([0, 2, 4, 5, 7, 9, 11])
        key_chord = root[gid] + chord_iv[idx % 12]
        key_run = root[gid] + direction[gid] * (12 * (idx // 7) + run_iv[idx % 7])
        key = np.clip(np.where(is_run[gid], key_run, key_chord), 21, 108)
    length = np.exp(rng.uniform(np.log(19), np.log(1920), size=n)).astype(np.int64)  # 10ms-1s
    vel = rng.integers(20, 128, size=n)
    order = np.argsort(on, kind="stable")
    on = on[order]
    return on, on + length[order], key[order], vel[order]


def write_black_midi(path, notes: int, tracks: int = 64, density: float = 50_000.0,
                     seed: int = 1, chunk: int = 1 << 20, progress=None) -> dict:
    """Write the file; returns {"notes", "tracks", "seconds", "bytes"}."""
    notes = int(notes)
    tracks = max(1, min(int(tracks), 65535 - 1))
    seconds = max(notes / float(density), 1.0)
    ticks_total = int(seconds * 1e6 / TEMPO * PPQ)
    per_track = np.full(tracks, notes // tracks, np.int64)
    per_track[:notes % tracks] += 1
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 1, tracks + 1, PPQ))
        t0 = b"\x00\xff\x51\x03" + TEMPO.to_bytes(3, "big") + b"\x00\xff\x2f\x00"
        f.write(b"MTrk" + struct.pack(">I", len(t0)) + t0)
        done = 0
        for k in range(tracks):
            rng = np.random.default_rng([seed, k])
            ch = k % 16
            drum = ch == 9
            head = f.tell()
            f.write(b"MTrk\x00\x00\x00\x00")
            body = bytes([0x00, 0xC0 | ch, PROGRAMS[ch]])
            f.write(body)
            length = len(body)
            running, last = 0xC0 | ch, 0
            n_tr = int(per_track[k])
            n_chunks = max(1, -(-n_tr // chunk))
            carry = (np.zeros(0, np.int64), np.zeros(0, np.int64))    # pending note-offs
            for c in range(n_chunks):
                m = n_tr // n_chunks + (1 if c < n_tr % n_chunks else 0)
                lo = ticks_total * c // n_chunks
                hi = ticks_total * (c + 1) // n_chunks
                on, off, key, vel = _track_notes(rng, m, lo, hi, drum)
                off_t = np.concatenate([carry[0], off])
                off_k = np.concatenate([carry[1], key])
                last_chunk = c == n_chunks - 1
                keep = np.ones(len(off_t), bool) if last_chunk else off_t < hi
                carry = (off_t[~keep], off_k[~keep])
                t = np.concatenate([off_t[keep], on])
                kk = np.concatenate([off_k[keep], key])
                vv = np.concatenate([np.zeros(int(keep.sum()), np.int64), vel])
                order = np.argsort(t, kind="stable")        # at one tick: note-offs first
                t = np.maximum(t[order], last)
                st = np.full(len(t), 0x90 | ch, np.int64)
                data, running = _encode(t, st, kk[order], vv[order], last, running)
                if len(t):
                    last = int(t[-1])
                f.write(data)
                length += len(data)
                done += m
                if progress:
                    progress(done, notes)
            f.write(b"\x00\xff\x2f\x00")
            length += 4
            end = f.tell()
            f.seek(head + 4)
            f.write(struct.pack(">I", length))
            f.seek(end)
        size = f.tell()
    return {"notes": notes, "tracks": tracks + 1, "seconds": seconds, "bytes": size}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gpusynth.blackgen",
                                description="write a generated black-MIDI file")
    p.add_argument("output")
    p.add_argument("--notes", default="1M", help="note count (k/M/G suffixes)")
    p.add_argument("--tracks", type=int, default=64)
    p.add_argument("--density", type=float, default=50_000.0, help="note-ons per second")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    t = time.perf_counter()
    info = write_black_midi(a.output, parse_count(a.notes), a.tracks, a.density, a.seed)
    info["wall_s"] = time.perf_counter() - t
    print(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
