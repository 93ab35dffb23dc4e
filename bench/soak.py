"""Long-run stability: paced real-time play, a long offline render, bank download/unload.

    python bench/soak.py play    [--seconds 600] [--notes-per-s 40] [--backend native]
    python bench/soak.py offline [--seconds 3600] [--notes-per-s 40]
    python bench/soak.py banks   [--rounds 200]

``play`` runs ``gpusynth play`` on a private JACK server with the dummy driver (a device that
consumes audio at the real rate: DESIGN.md section 7) for a generated song of ``--seconds``
(steady notes on 8 channels; ``--notes-per-s`` sets the render load), samples the process's
RSS every second from /proc, and reports the player's underruns and render load with the RSS
at the start (median of the first 10% after a warm-up) and at the end (median of the last 10%).
``offline`` does the same for ``gpusynth render`` to a WAV file. ``banks`` downloads and unloads
a bank ``--rounds`` times in one synth, playing a note with each, and reports the RSS.
Prints one JSON object; exit status 1 if ``--check`` and a figure is out of bounds (underruns
> 0, RSS growth > 5%).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def make_song(path: str, seconds: float, notes_per_s: float, ppq: int = 480):
    """Steady notes (0.4 s each) on 8 channels at 120 bpm, programs spread over the GM set."""
    from gpusynth.smf import write_smf
    ticks_per_s = 2 * ppq
    n = int(seconds * notes_per_s)
    tracks = [[(0, bytes([0xC0 | c, (c * 13) % 120])) for c in range(8)]]
    tr = []
    for i in range(n):
        t = int(i / notes_per_s * ticks_per_s)
        c = i % 8
        key = 48 + (i * 7) % 36
        tr.append((t, bytes([0x90 | c, key, 70 + i % 50])))
        tr.append((t + int(0.4 * ticks_per_s), bytes([0x80 | c, key, 0])))
    tracks.append(tr)
    write_smf(path, tracks, ppq=ppq)


def sample_rss(proc, every: float = 1.0):
    samples = []

    def run():
        while proc.poll() is None:
            r = rss_mb(proc.pid)
            if r is not None:
                samples.append((time.monotonic(), r))
            time.sleep(every)
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return samples, th


def rss_summary(samples, warmup_s: float = 10.0) -> dict:
    if not samples:
        return {}
    t0 = samples[0][0]
    vals = [r for t, r in samples if t - t0 >= warmup_s] or [r for _, r in samples]
    k = max(1, len(vals) // 10)
    med = lambda xs: sorted(xs)[len(xs) // 2]     # noqa: E731
    start, end = med(vals[:k]), med(vals[-k:])
    return {"rss_start_mb": round(start, 1), "rss_end_mb": round(end, 1),
            "rss_max_mb": round(max(r for _, r in samples), 1),
            "rss_growth": round(end / start - 1, 4), "rss_samples": len(samples)}


def start_jack(name: str, env: dict) -> bool:
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "start-jack.sh"), name], env=env,
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
    return r.returncode == 0


def stop_jack(name: str, env: dict):
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "start-jack.sh"), "--stop", name],
                   env=env, timeout=30)


def cmd_play(a) -> dict:
    name = f"gpusynth-soak-{os.getpid()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1",
               JACK_RATE="48000", JACK_PERIOD="256", PYTHONPATH=ROOT)
    if not start_jack(name, env):
        return {"error": "could not start the JACK dummy server"}
    try:
        with tempfile.TemporaryDirectory() as d:
            song = os.path.join(d, "soak.mid")
            make_song(song, a.seconds, a.notes_per_s)
            stats = os.path.join(d, "stats.json")
            cmd = [sys.executable, "-m", "gpusynth", "play", song, "--device", "system",
                   "--backend", a.backend, "--latency-ms", str(a.latency_ms),
                   "--stats-json", stats]
            t = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            samples, th = sample_rss(proc)
            out, err = proc.communicate(timeout=a.seconds + 300)
            th.join(2)
            res = {"mode": "play", "seconds": a.seconds, "notes_per_s": a.notes_per_s,
                   "backend": a.backend, "rc": proc.returncode,
                   "wall_s": round(time.monotonic() - t, 1)}
            if proc.returncode != 0:
                res["stderr"] = err[-2000:]
                return res
            with open(stats) as f:
                st = json.load(f)
            res.update({k: st[k] for k in ("underruns", "underrun_frames", "xruns", "load",
                                           "load_peak", "duration_s", "peak_voices")})
            res.update(rss_summary(samples))
            return res
    finally:
        stop_jack(name, env)


def cmd_offline(a) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT)
    with tempfile.TemporaryDirectory() as d:
        song = os.path.join(d, "soak.mid")
        make_song(song, a.seconds, a.notes_per_s)
        wav = os.path.join(d, "soak.wav")
        stats = os.path.join(d, "stats.json")
        cmd = [sys.executable, "-m", "gpusynth", "render", song, "-o", wav, "--backend",
               a.backend, "--stats-json", stats, "-q"]
        t = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        samples, th = sample_rss(proc, 0.5)
        out, err = proc.communicate()
        th.join(2)
        res = {"mode": "offline", "seconds": a.seconds, "notes_per_s": a.notes_per_s,
               "backend": a.backend, "rc": proc.returncode,
               "wall_s": round(time.monotonic() - t, 1)}
        if proc.returncode != 0:
            res["stderr"] = err[-2000:]
            return res
        with open(stats) as f:
            st = json.load(f)
        res.update({k: st.get(k) for k in ("duration_s", "realtime_factor", "peak_voices")})
        res["wav_mb"] = round(os.path.getsize(wav) / 2**20, 1)
        res.update(rss_summary(samples, warmup_s=5.0))
        return res


def cmd_banks(a) -> dict:
    import numpy as np
    from gpusynth import Synth
    from gpusynth.banks.builtin import load_builtin
    from gpusynth.banks.model import Bank
    from gpusynth.events import event_array
    base = load_builtin()
    s = Synth(backend=a.backend)
    s.open({"sample_rate": 48000, "voices": 256})
    rss = []
    pos = 0
    for i in range(a.rounds):
        # a fresh copy each round, as a loader would make: memory must come back on unload
        bank = Bank(base.name, base.pool.copy(), base.regions.copy(), list(base.presets))
        h = s.download(bank)
        s.play(event_array([(pos, 0, 0x90, 60, 100), (pos + 2400, 0, 0x80, 60, 0)]))
        s.render(4800, pos)
        pos += 4800
        s.unload(h)
        del bank
        s.render(48000, pos)            # let the voice end so the old pool can be dropped
        pos += 48000
        rss.append(rss_mb(os.getpid()))
    k = max(1, len(rss) // 10)
    start, end = float(np.median(rss[k:2 * k])), float(np.median(rss[-k:]))
    return {"mode": "banks", "rounds": a.rounds, "pool_mb": round(base.pool.nbytes / 2**20, 1),
            "rss_start_mb": round(start, 1), "rss_end_mb": round(end, 1),
            "rss_growth": round(end / start - 1, 4)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["play", "offline", "banks"])
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--notes-per-s", type=float, default=40.0)
    ap.add_argument("--backend", default="native")
    ap.add_argument("--latency-ms", type=float, default=40.0)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--check", action="store_true", help="exit 1 on underruns or RSS growth > 5%%")
    a = ap.parse_args(argv)
    if a.seconds is None:
        a.seconds = 600.0 if a.mode == "play" else 3600.0
    res = {"play": cmd_play, "offline": cmd_offline, "banks": cmd_banks}[a.mode](a)
    print(json.dumps(res, indent=2))
    bad = res.get("rc", 0) != 0 or "error" in res or res.get("underruns", 0) > 0 \
        or abs(res.get("rss_growth", 0.0)) > 0.05
    return 1 if (a.check and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
