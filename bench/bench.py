"""gpusynth benchmarks: print machine-readable JSON.

  python bench/bench.py polyphony [--voices 16,64,256,1024] [--backends numpy,native] [--fluidsynth]
  python bench/bench.py blackmidi [--notes 200000] [--backends ...] [--fluidsynth] [--seconds 60]
  python bench/bench.py all [--plot bench.png]

Figures: voice-samples per second (active voices x frames / wall time) and the real-time factor
(audio seconds / wall seconds). FluidSynth (Debian `fluidsynth`, fast file render) runs the same
MIDI with the same bank side by side when --fluidsynth is given; ratios are computed in the same
run because these machines are shared and noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpusynth.events import event_array  # noqa: E402
from gpusynth.render import render_song  # noqa: E402
from gpusynth.smf import write_smf, load_smf  # noqa: E402

TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
RATE = 48000


def available_backends():
    try:
        from gpusynth.backend.select import available_backends as av
        return list(av())
    except Exception:
        return ["numpy"]


def _bank(path):
    if path in (None, "builtin"):
        from gpusynth.banks.builtin import load_builtin
        return load_builtin()
    from gpusynth.banks import load_bank
    return load_bank(path)


def chord_rows(n, program=16):
    """n simultaneous held notes spread over channels/groups (distinct channel+key pairs)."""
    rows = []
    groups = max(1, (n + 15 * 96 - 1) // (15 * 96))     # 15 melodic channels x 96 keys
    for g in range(groups):
        for c in range(16):
            if c == 9:
                continue
            rows.append((0, g * 16 + c, 0xC0, program, 0))
    for i in range(n):
        g, rest = divmod(i, 15 * 96)
        c, k = divmod(rest, 96)
        c = c if c < 9 else c + 1
        rows.append((0, g * 16 + c, 0x90, 16 + k, 90))
    return rows, groups


def bench_polyphony(counts, backends, bank_path, seconds=1.0, block=256, fluid=False):
    bank = _bank(bank_path)
    results = []
    for be in backends:
        for n in counts:
            rows, groups = chord_rows(n)
            from gpusynth import Synth
            s = Synth(backend=be)
            s.open({"sample_rate": RATE, "voices": n, "channel_groups": groups})
            s.download(bank)
            s.play(event_array(rows))
            s.render(block * 4, 0)                     # warm-up, voices allocated
            frames = int(seconds * RATE) // block * block
            t0 = time.perf_counter()
            pos = block * 4
            active = []
            while pos < block * 4 + frames:
                s.render(block, pos)
                active.append(s.active_voices)
                pos += block
            wall = time.perf_counter() - t0
            av = float(np.mean(active))
            results.append({"bench": "polyphony", "backend": be, "voices": n, "active_voices": av,
                            "block": block, "audio_s": frames / RATE, "wall_s": wall,
                            "voice_samples_per_s": av * frames / wall,
                            "realtime_factor": frames / RATE / wall})
            print(json.dumps(results[-1]), file=sys.stderr)
    if fluid and shutil.which("fluidsynth") and os.path.exists(TIMGM):
        for n in counts:
            if n > 15 * 96:
                continue
            rows, _ = chord_rows(n)
            results.append(fluidsynth_chord(rows, n, seconds))
            print(json.dumps(results[-1]), file=sys.stderr)
    return results


def _rows_to_smf(rows, path, end_s):
    tracks = {}
    end_tick = int(end_s * 960)
    for t, ch, st, d1, d2 in rows:
        msg = bytes([st | (ch % 16), d1]) if st in (0xC0, 0xD0) else bytes([st | (ch % 16), d1, d2])
        tracks.setdefault(ch // 16, []).append((int(t), msg))
        if st == 0x90:      # every note ends with the file (FluidSynth renders until silence)
            tracks[ch // 16].append((end_tick, bytes([0x80 | (ch % 16), d1, 0])))
    out = []
    for g in sorted(tracks):
        out.append([(0, bytes([0xFF, 0x21, 0x01, g]))] + tracks[g])
    out[0].append((end_tick, b"\xff\x01\x03end"))
    write_smf(path, out, ppq=480)


def fluidsynth_render(mid, bank, polyphony, cores=1):
    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "f.wav")
        cmd = ["fluidsynth", "-ni", "-g", "0.5", "-R", "0", "-C", "0", "-r", str(RATE),
               "-o", f"synth.polyphony={min(polyphony, 65535)}", "-o", f"synth.cpu-cores={cores}",
               "-o", "synth.midi-channels=256", "-F", wav, bank, mid]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
        wall = time.perf_counter() - t0
        import wave
        with wave.open(wav) as w:
            frames = w.getnframes()
    return wall, frames


def fluidsynth_chord(rows, n, seconds):
    with tempfile.TemporaryDirectory() as d:
        mid = os.path.join(d, "c.mid")
        _rows_to_smf(rows, mid, seconds * 4)
        wall, frames = fluidsynth_render(mid, TIMGM, n)
        # the same file through gpusynth (numpy and native) with the same bank, same run
    return {"bench": "polyphony", "backend": "fluidsynth", "voices": n, "audio_s": frames / RATE,
            "wall_s": wall, "voice_samples_per_s": n * seconds * 4 * RATE / wall,
            "realtime_factor": frames / RATE / wall, "bank": TIMGM,
            "note": "includes process start and bank load; notes sustain for the whole file"}


def blackmidi_file(path, notes=200_000, seconds=60.0, seed=1):
    """A generated black-MIDI file: `notes` short notes on 16 channels, dense random chords."""
    rng = np.random.default_rng(seed)
    ppq, tempo = 480, 500_000
    ticks_total = int(seconds * 2 * ppq)
    t = np.sort(rng.integers(0, ticks_total, notes))
    ch = rng.integers(0, 16, notes)
    key = np.clip((rng.normal(64, 14, notes)).astype(int), 21, 108)
    key = np.where(ch == 9, rng.integers(35, 82, notes), key)
    dur = rng.integers(20, 240, notes)
    vel = rng.integers(40, 127, notes)
    tracks = [[] for _ in range(16)]
    progs = [0, 4, 11, 16, 24, 33, 48, 56, 61, 0, 65, 73, 80, 88, 46, 19]
    for c in range(16):
        tracks[c].append((0, bytes([0xC0 | c, progs[c]])))
    for i in range(notes):
        c = int(ch[i])
        tracks[c].append((int(t[i]), bytes([0x90 | c, int(key[i]), int(vel[i])])))
        tracks[c].append((int(t[i] + dur[i]), bytes([0x80 | c, int(key[i]), 0])))
    write_smf(path, [[(0, b"\xff\x51\x03" + tempo.to_bytes(3, "big"))]] + tracks, ppq=ppq)
    return path


def bench_blackmidi(notes, seconds, backends, bank_path, voices, fluid=False):
    results = []
    with tempfile.TemporaryDirectory() as d:
        mid = os.path.join(d, "black.mid")
        t0 = time.perf_counter()
        blackmidi_file(mid, notes, seconds)
        song = load_smf(mid)
        load_s = time.perf_counter() - t0
        for be in backends:
            audio, st = render_song(song, bank=_bank(bank_path), backend=be, voices=voices,
                                    chunk=4096, tail_cap_s=5.0)
            st.update({"bench": "blackmidi", "file_notes": song.n_notes, "voices_limit": voices,
                       "bank": bank_path or "builtin", "midi_gen_load_s": load_s})
            results.append(st)
            print(json.dumps(st), file=sys.stderr)
        if fluid and shutil.which("fluidsynth") and os.path.exists(TIMGM):
            wall, frames = fluidsynth_render(mid, TIMGM, voices)
            results.append({"bench": "blackmidi", "backend": "fluidsynth", "wall_s": wall,
                            "duration_s": frames / RATE, "realtime_factor": frames / RATE / wall,
                            "file_notes": song.n_notes, "voices_limit": voices, "bank": TIMGM})
            print(json.dumps(results[-1]), file=sys.stderr)
    return results


def plot(results, path):
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'gpusynth[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for be in sorted({r["backend"] for r in results if r["bench"] == "polyphony"}):
        rs = sorted((r for r in results if r["bench"] == "polyphony" and r["backend"] == be),
                    key=lambda r: r["voices"])
        ax.loglog([r["voices"] for r in rs], [r["realtime_factor"] for r in rs], "o-", label=be)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("simultaneous voices")
    ax.set_ylabel("real-time factor (x)")
    ax.set_title("gpusynth polyphony sweep (48 kHz)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["polyphony", "blackmidi", "all"])
    p.add_argument("--voices", default="16,64,256,1024")
    p.add_argument("--backends", default=None, help="comma list (default: all available)")
    p.add_argument("--bank", default=None, help="bank path (default: built-in GM)")
    p.add_argument("--notes", type=int, default=200_000)
    p.add_argument("--seconds", type=float, default=120.0, help="black-MIDI song length")
    p.add_argument("--limit", type=int, default=2048, help="voice limit for black MIDI")
    p.add_argument("--fluidsynth", action="store_true")
    p.add_argument("--plot")
    a = p.parse_args(argv)
    backends = a.backends.split(",") if a.backends else available_backends()
    res = []
    if a.what in ("polyphony", "all"):
        res += bench_polyphony([int(v) for v in a.voices.split(",")], backends, a.bank,
                               fluid=a.fluidsynth)
    if a.what in ("blackmidi", "all"):
        res += bench_blackmidi(a.notes, a.seconds, backends, a.bank, a.limit, fluid=a.fluidsynth)
    by = {}
    for r in res:
        by.setdefault((r["bench"], r.get("voices")), {})[r["backend"]] = r
    ratios = []
    for (bench, v), d in by.items():
        if "numpy" in d:
            for be, r in d.items():
                if be != "numpy" and "voice_samples_per_s" in r and d["numpy"].get("voice_samples_per_s"):
                    ratios.append({"bench": bench, "voices": v, "backend": be,
                                   "speedup_vs_numpy": r["voice_samples_per_s"] / d["numpy"]["voice_samples_per_s"]})
    out = {"machine": {"cpus": os.cpu_count()}, "results": res, "ratios": ratios}
    if a.plot:
        plot(res, a.plot)
        out["plot"] = a.plot
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
