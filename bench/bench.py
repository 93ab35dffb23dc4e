"""gpusynth benchmarks: JSON on stdout (progress lines on stderr), optional PNG plot.

  python bench/bench.py polyphony [--voices 64,256,1024,4096,16384] [--backends native[,numpy]]
                                  [--cores 1,2] [--seconds 10] [--bank PATH] [--no-fluidsynth]
  python bench/bench.py songs     [--midi FILE,...] [--cores 1,2] [--bank PATH]
  python bench/bench.py kernel    [--arch sm_80,sm_90]
  python bench/bench.py all       (polyphony + songs + kernel; each section ~10 min at most on
                                   2 cores with the defaults)
  python bench/bench.py blackmidi [--sizes 1M,10M] [--render-max 10M] [--limit 4096]
                                  [--cores 2] [--density 50000] (not part of `all`)
  python bench/bench.py control   [--sizes 1M,10M,100M] [--limits 4096,1000000] [--cores 1]
                                  (the control path alone: `gpusynth analyze` on generated black
                                  MIDI, one core; not part of `all`; see bench_control)
  python bench/bench.py effects   [--voices 64,4096] [--repeat 3] (reverb + chorus cost, reverb
                                  decay against FluidSynth; see bench_effects)
  python bench/bench.py batch     [--songs-n 200] [--cores 2] (`gpusynth batch` against a loop
                                  of `gpusynth render` and FluidSynth per file)
  python bench/bench.py many      [--songs-n 64] [--group 8,32] [--cores 2] [--rounds 3]
                                  [--backend native]
                                  (many songs in one launch against one at a time, in-process)
  common: --plot out.png (needs matplotlib), --out results.json (also written to a file)

The machines these run on are shared and noisy, so every comparison is made in the same run:
gpusynth and FluidSynth (Debian `fluidsynth`, fast file render `-ni -F out.wav`, both dry:
ours `--no-effects`, FluidSynth `-R 0 -C 0`; the effects' own cost is `bench.py effects`,
`-o synth.polyphony=65535`) render the same voices from the same SF2 bank, each at 1 core and
at 2 cores. "N cores" means: the process is pinned to CPUs 0..N-1 (sched_setaffinity) and runs
N threads (ours: OMP_NUM_THREADS=N, also the BLAS thread variables; FluidSynth:
`-o synth.cpu-cores=N`). Every gpusynth measurement runs in its own subprocess
(`bench.py _one ...`) so the thread settings take effect; the subprocess imports the same
gpusynth as this process (its checkout root goes first on PYTHONPATH).

polyphony: V held voices of one sustaining preset (program 16, an organ: looped, full
sustain) for H seconds, then all released. The notes are laid out over keys 21..108 (only keys
where the preset has a region, in a spread order so small chords still span the range) and 15
melodic channels. gpusynth gets V distinct notes, using channel groups (MIDI port meta events;
an in-memory Song past 128 groups). FluidSynth reads only 16 channels from a MIDI file (it
ignores port meta events) and a repeated note-on on a held key releases the earlier voice, so
its file holds the sustain pedal (CC64) down on every channel and repeats the note-ons: under
the pedal FluidSynth keeps the retriggered voices (sustained). Both engines thus render the same
(channel, key) voices. Held-voice counts are checked in every run: ours from the render stats
(peak_voices == V, stolen_voices == 0), FluidSynth from its verbose (`-v`) "noteon" log lines
(one per voice started; the last field counts the voices in use).
Only the held stretch is timed (the note-on burst, process start, bank load and release tails
are reported apart as overhead_s / process_wall_s):
  ours        render_song's progress callback stamps every block it renders; wall_s runs from
              the end of the first block (which carries the note-on burst) to the last block
              ending inside the hold (in the subprocess, no process start-up noise);
  FluidSynth  its -v noteon lines carry a wall-clock stamp: wall_s runs from the last chord
              note-on to a drum-kit probe note (channel 10, key 42) struck at the end of the hold.
  (fallback, if either is unavailable: wall(hold H) - wall(hold 0.25 s) from separate runs.)
    audio_s = the frames timed / 48000,  realtime_factor = audio_s / wall_s,
    voice_samples = V x frames timed (the same held-voice count for every engine),
    voice_samples_per_s = voice_samples / wall_s,  .._per_core = that / cores.
Ratios ours/FluidSynth are taken at equal cores and voices. H = min(--seconds,
--max-voice-samples / (V x 48000)), at least 2 s (a few render windows past the first).

songs: real General MIDI files (default: ants.mid and Leadsol.mid from the shared test data,
read in place) and the built-in demo song (written to a temporary .mid), rendered end to end by
the CLI (`python -m gpusynth render FILE -o OUT --backend native --bank BANK --stats-json`) and by
FluidSynth, at each core count. realtime_factor = the song's length (the MIDI file) / process
wall seconds, so the ratio is the ratio of times to render the song (audio_s, each engine's own
output length, differs by release tails and FluidSynth's end pad). `realtime_factor_render`
(ours) uses the render loop's wall from the stats JSON, with the split `control_s`/`python_s`
when the stats carry them; FluidSynth's `realtime_factor_net` subtracts its start-up time (the
same command on a one-note file); ours' `realtime_factor_net` is its render-loop figure.

kernel: registers, spills, stack, .f64 instruction counts and forbidden FP64 calls per kernel
from `gpusynth.kernel_budget` (nvcc -Xptxas -v and -ptx; sm_80 and sm_90) when nvcc exists, and
on a GPU also CuPy's view (RawKernel attributes, occupancy).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# an explicit PYTHONPATH (e.g. another checkout) wins over the checkout this file lives in
if os.environ.get("PYTHONPATH"):
    sys.path.append(str(ROOT))
else:
    sys.path.insert(0, str(ROOT))

from gpusynth.rendering import render_song  # noqa: E402
from gpusynth.smf import write_smf, load_smf, tempo_meta  # noqa: E402
import gpusynth  # noqa: E402

PKG_ROOT = Path(gpusynth.__file__).resolve().parents[1]   # the checkout actually imported
SF2_DIR = Path("/usr/share/sounds/sf2")
TIMGM = str(SF2_DIR / "TimGM6mb.sf2")
RATE = 48000
PPQ, TEMPO = 960, 500_000            # 1920 ticks per second
TICKS_PER_S = PPQ * 1_000_000 // TEMPO
SHORT_HOLD = 0.25
MIN_HOLD = 2.0                       # s: several render windows after the first (render_song
                                     # windows are up to 32768 frames)
MELODIC = [c for c in range(16) if c != 9]
KEY_LO, KEY_HI = 21, 108
MAX_GROUPS_SMF = 127                 # port meta events 0..127
FLUID_MAX_POLYPHONY = 65535
DEFAULT_VOICES = "64,256,1024,4096,16384"
NUMPY_MAX_VOICES = 1024              # the numpy reference only runs the small sizes


def log(*a):
    print(*a, file=sys.stderr, flush=True)


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


def default_bank() -> str:
    """TimGM6mb, else FluidR3_GM (Debian's sf2 packages), else gpusynth's built-in GM bank
    (then FluidSynth, which needs a file, is skipped)."""
    for p in (TIMGM, str(SF2_DIR / "FluidR3_GM.sf2")):
        if os.path.exists(p):
            return p
    return "builtin"


def shared_testdata() -> Path:
    for d in (ROOT.parent / "shared" / "testdata", PKG_ROOT.parent / "shared" / "testdata",
              Path("/work/shared/testdata")):
        if d.is_dir():
            return d
    return ROOT.parent / "shared" / "testdata"


# ------------------------------------------------------------------------------ chords

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


def voices_per_key(bank, program=16, velocity=90) -> np.ndarray:
    """[128] voices one note-on starts for `program` (bank 0, melodic) at `velocity` (the
    regions whose key and velocity ranges contain it)."""
    out = np.zeros(128, np.int64)
    for p in bank.presets:
        if p.bank == 0 and p.program == program and not p.drum:
            r = bank.regions[np.asarray(p.regions)]
            keys = np.arange(128)[:, None]
            hit = ((r["key_lo"] <= keys) & (r["key_hi"] >= keys)
                   & (r["vel_lo"] <= velocity) & (r["vel_hi"] >= velocity))
            out = hit.sum(axis=1).astype(np.int64)
            break
    return out


def _spread(n):
    """A permutation of range(n) whose every prefix is spread over the range."""
    if n <= 2:
        return list(range(n))
    step = max(1, int(round(n * 0.6180339887)))
    while math.gcd(step, n) != 1:
        step += 1
    return [(i * step) % n for i in range(n)]


def chord_layout(vpk, target):
    """Notes for `target` held voices: arrays group, chan (0..15, never 9), key, and the voice
    count per note. Keys fastest (in a spread order), then the 15 melodic channels, then
    groups; stops once the voices reach the target (a note of 2 voices may overshoot by 1)."""
    keys = [k for k in range(KEY_LO, KEY_HI + 1) if vpk[k] > 0]
    if not keys:
        raise SystemExit("the bench preset has no region for keys 21..108 in this bank")
    keys = [keys[i] for i in _spread(len(keys))]
    kv = np.array([vpk[k] for k in keys], np.int64)
    per_layer = int(kv.sum())                          # voices of one channel playing all keys
    layers = target // per_layer                       # full (group, channel) layers
    cum = np.cumsum(kv)
    rest = target - layers * per_layer
    nk = int(np.searchsorted(cum, rest, side="left") + 1) if rest > 0 else 0
    nl = layers + (1 if nk else 0)
    lay = np.repeat(np.arange(nl), len(keys))
    kidx = np.tile(np.arange(len(keys)), nl)
    if nk:
        keep = (lay < layers) | (kidx < nk)
        lay, kidx = lay[keep], kidx[keep]
    g, ci = np.divmod(lay, len(MELODIC))
    chan = np.asarray(MELODIC)[ci]
    return {"group": g.astype(np.int64), "chan": chan.astype(np.int64),
            "key": np.asarray(keys)[kidx].astype(np.int64), "voices": kv[kidx],
            "n_voices": int(kv[kidx].sum()), "groups": int(g.max()) + 1 if len(g) else 1}


def _ticks(seconds):
    return int(round(seconds * TICKS_PER_S))


def ours_song(lay, hold, program=16, velocity=90):
    """The chord as a gpusynth Song: distinct notes in channel groups (SMF with port meta events
    while the groups fit 0..127, else an in-memory Song with the same events)."""
    groups = lay["groups"]
    end = _ticks(hold)
    if groups <= MAX_GROUPS_SMF + 1:
        tracks = [[(0, b"\xff\x51\x03" + TEMPO.to_bytes(3, "big"))]]
        for g in range(groups):
            tr = [(0, b"\xff\x21\x01" + bytes([g]))]
            sel = lay["group"] == g
            chans = sorted(set(lay["chan"][sel].tolist()))
            tr += [(0, bytes([0xC0 | c, program])) for c in chans]
            pairs = list(zip(lay["chan"][sel].tolist(), lay["key"][sel].tolist()))
            tr += [(0, bytes([0x90 | c, k, velocity])) for c, k in pairs]
            tr += [(end, bytes([0x80 | c, k, 0])) for c, k in pairs]
            tracks.append(tr)
        return load_smf(write_smf(None, tracks, ppq=PPQ)), "smf"
    from gpusynth.smf import Song
    full = lay["group"] * 16 + lay["chan"]
    progs = np.unique(full)
    n = len(full)
    secs = np.concatenate([np.zeros(len(progs)), np.zeros(n), np.full(n, end / TICKS_PER_S)])
    chan = np.concatenate([progs, full, full]).astype(np.int32)
    status = np.concatenate([np.full(len(progs), 0xC0), np.full(n, 0x90), np.full(n, 0x80)]).astype(np.uint8)
    d1 = np.concatenate([np.full(len(progs), program), lay["key"], lay["key"]]).astype(np.uint8)
    d2 = np.concatenate([np.zeros(len(progs)), np.full(n, velocity), np.zeros(n)]).astype(np.uint8)
    m = len(secs)
    song = Song(format=1, ntracks=1, division=PPQ, n_notes=n, duration_s=end / TICKS_PER_S,
                channel_groups=groups, ticks_per_quarter=PPQ, path="<bench chord>",
                seconds=secs.astype(np.float64), chan=chan, status=status, data1=d1, data2=d2,
                sysex_index=np.full(m, -1, np.int32), track=np.zeros(m, np.int32))
    return song, "memory"


def probe_key(bank, preferred=42):
    """A key of the drum kit (program 0) that starts a voice: the timing probe of the
    FluidSynth runs (None when the bank has no drum kit)."""
    for p in bank.presets:
        if p.drum and p.program == 0:
            r = bank.regions[np.asarray(p.regions)]
            keys = [k for k in range(128) if np.any((r["key_lo"] <= k) & (r["key_hi"] >= k)
                                                    & (r["vel_lo"] <= 100) & (r["vel_hi"] >= 100))]
            if keys:
                return preferred if preferred in keys else keys[len(keys) // 2]
    return None


def fluid_chord_smf(path, lay, hold, program=16, velocity=90, probe=None):
    """The same voices for FluidSynth: 15 channels, sustain pedal down, the channel groups
    folded onto the 16 MIDI channels as repeated note-ons (kept by the pedal). `probe`: a drum
    key struck on channel 10 at the end of the hold (its verbose noteon line times the hold)."""
    end = _ticks(hold)
    chans = sorted(set(lay["chan"].tolist()))
    tr = [(0, b"\xff\x51\x03" + TEMPO.to_bytes(3, "big"))]
    for c in chans:
        tr += [(0, bytes([0xC0 | c, program])), (0, bytes([0xB0 | c, 64, 127]))]
    pairs = list(zip(lay["chan"].tolist(), lay["key"].tolist()))
    tr += [(0, bytes([0x90 | c, k, velocity])) for c, k in pairs]
    if probe is not None:
        tr += [(end, bytes([0x99, probe, 100])), (end + _ticks(0.05), bytes([0x89, probe, 0]))]
    tr += [(end, bytes([0xB0 | c, 64, 0])) for c in chans]
    tr += [(end, bytes([0x80 | c, k, 0])) for c, k in sorted(set(pairs))]
    write_smf(path, [tr], ppq=PPQ)
    return path


# -------------------------------------------------------------------------- subprocesses

def _pin(cores):
    def f():
        if cores and hasattr(os, "sched_setaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, set(cpus[:cores]))
    return f


def _env(cores):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PKG_ROOT)] + ([env["PYTHONPATH"]]
                                                           if env.get("PYTHONPATH") else []))
    if cores:
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                  "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
            env[k] = str(cores)
    return env


def run_timed(cmd, cores, timeout, env=None):
    """Run a command pinned to `cores` CPUs; returns (wall seconds, CompletedProcess)."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=env or _env(cores), preexec_fn=_pin(cores))
    return time.perf_counter() - t0, r


def _tail(text, n=3):
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def wav_frames(path):
    with wave.open(path) as w:
        return w.getnframes(), w.getframerate()


# -------------------------------------------------------------------------- FluidSynth

def fluid_cmd(bank, mid, wav, cores, polyphony=FLUID_MAX_POLYPHONY, verbose=False):
    return (["fluidsynth", "-ni"] + (["-v"] if verbose else [])
            + ["-g", "0.5", "-R", "0", "-C", "0", "-r", str(RATE),
               "-o", f"synth.polyphony={polyphony}", "-o", f"synth.cpu-cores={cores}",
               "-F", wav, bank, mid])


def fluid_info():
    """FluidSynth version and the polyphony it really accepts (asked through its shell)."""
    if not shutil.which("fluidsynth"):
        return None
    info = {"path": shutil.which("fluidsynth")}
    try:
        v = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True, timeout=30)
        m = re.search(r"version\s+([\d.]+)", v.stdout)
        info["version"] = m.group(1) if m else v.stdout.strip().splitlines()[0]
        with tempfile.TemporaryDirectory() as d:
            q = subprocess.run(["fluidsynth", "-n", "-o", f"synth.polyphony={FLUID_MAX_POLYPHONY}",
                                "-o", "audio.driver=file", "-o", f"audio.file.name={d}/q.wav"],
                               input="get synth.polyphony\nquit\n", capture_output=True,
                               text=True, timeout=30)
        m = re.search(r"^\s*(\d+)\s*$", q.stdout, re.M)
        info["polyphony_requested"] = FLUID_MAX_POLYPHONY
        info["polyphony_effective"] = int(m.group(1)) if m else None
    except (OSError, subprocess.SubprocessError) as e:
        info["error"] = str(e)
    return info


def fluid_render(bank, mid, cores, timeout, polyphony=FLUID_MAX_POLYPHONY, verbose=False):
    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "f.wav")
        wall, r = run_timed(fluid_cmd(bank, mid, wav, cores, polyphony, verbose), cores, timeout)
        if r.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(f"fluidsynth failed ({r.returncode}): {_tail(r.stderr or r.stdout)}")
        frames, rate = wav_frames(wav)
    return wall, frames / rate, r


def fluid_noteons(text):
    """FluidSynth's verbose noteon lines, one per voice started: (chan, key, sample time,
    wall seconds since the synth started, voices in use besides the new one)."""
    out = []
    for ln in text.splitlines():
        i = ln.find("noteon\t")
        if i < 0:
            continue
        f = ln[i:].split("\t")
        try:
            out.append((int(f[1]), int(f[2]), float(f[5]), float(f[6]), int(f[8])))
        except (IndexError, ValueError):
            continue
    return out


# -------------------------------------------------------------------------- ours: _one

def one_main(a):
    """Internal: render the chord with one backend at each hold; print JSON (one line).

    Each run's render_song progress callback timestamps every block: `steady` is the render
    time from the end of the first block (which carries the note-on burst) to the last block
    that ends inside the hold, with its frame count."""
    bank = _bank(a.bank)
    lay = chord_layout(voices_per_key(bank, a.program), int(a.voices))
    V = lay["n_voices"]
    limit = min(4_000_000, V + 64)
    runs = []
    for hold in [float(h) for h in a.holds.split(",")]:
        song, kind = ours_song(lay, hold, a.program)
        marks = []

        def progress(done, total, synth, marks=marks):
            marks.append((int(done), time.perf_counter()))
        try:
            audio, st = render_song(song, bank, backend=a.backend, voices=limit, progress=progress,
                                    effects=False)
        except TypeError:                   # no progress callback: only the whole loop's time
            marks.clear()
            audio, st = render_song(song, bank, backend=a.backend, voices=limit, effects=False)
        run = {"hold_s": hold, "audio_s": len(audio) / RATE, "wall_s": st["wall_s"],
               "peak_voices": st.get("peak_voices"), "stolen_voices": st.get("stolen_voices"),
               "notes": st.get("notes"), "backend": st.get("backend"), "song": kind,
               **{k: st[k] for k in ("control_s", "python_s", "kernel_s") if k in st}}
        inside = [m for m in marks if m[0] <= round(hold * RATE)]
        if len(inside) >= 2:
            run["steady"] = {"frames": inside[-1][0] - inside[0][0],
                             "wall_s": inside[-1][1] - inside[0][1],
                             "blocks": len(inside) - 1, "block_frames": marks[0][0]}
        runs.append(run)
        log(f"    {a.backend} V={V} hold={hold:g}s: {st['wall_s']:.3f} s "
            f"(peak {st.get('peak_voices')}, stolen {st.get('stolen_voices')})")
        del audio
    print(json.dumps({"voices": V, "notes": int(len(lay["key"])), "groups": lay["groups"],
                      "voice_limit": limit, "runs": runs}))
    return 0


def _figures(V, cores, wall, frames, method, overhead=None):
    ok = wall is not None and wall > 0
    audio = frames / RATE
    vs = V * frames
    return {"wall_s": wall, "audio_s": audio,
            "realtime_factor": audio / wall if ok else None, "voice_samples": vs,
            "voice_samples_per_s": vs / wall if ok else None,
            "voice_samples_per_s_per_core": vs / wall / cores if ok and cores else None,
            "method": method, **({"overhead_s": overhead} if overhead is not None else {})}


def _differential(V, cores, long, shorts):
    """Steady state from two runs: wall(H) - wall(h) over H - h seconds held."""
    short = min(shorts, key=lambda r: r["wall_s"])
    return _figures(V, cores, long["wall_s"] - short["wall_s"],
                    round((long["hold_s"] - short["hold_s"]) * RATE),
                    "differential: wall(hold H) - wall(hold h)", short["wall_s"])


def ours_point(backend, V, hold, cores, bank, program, timeout):
    cores_ = cores if backend != "cupy" else None

    def once(holds):
        cmd = [sys.executable, str(Path(__file__).resolve()), "_one", "--backend", backend,
               "--bank", bank, "--voices", str(V), "--program", str(program),
               "--holds", ",".join(map(str, holds))]
        wall, r = run_timed(cmd, cores_, timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{backend}: _one failed ({r.returncode}): {_tail(r.stderr)}")
        return wall, json.loads(r.stdout.strip().splitlines()[-1])

    wall, res = once([hold])
    Vr = res["voices"]
    long = res["runs"][0]
    if long.get("steady"):
        st = long["steady"]
        fig = _figures(Vr, cores_, st["wall_s"], st["frames"],
                       "in-process: render_song block timestamps, first block (note-on burst) "
                       "to the end of the hold", long["wall_s"] - st["wall_s"])
    else:
        wall2, res2 = once([SHORT_HOLD, SHORT_HOLD])
        fig = _differential(Vr, cores_, long, res2["runs"])
        res["runs"] += res2["runs"]
        wall += wall2
    out = {"bench": "polyphony", "engine": backend, "cores": cores_ or "gpu",
           "voices_target": V, "voices": Vr, "notes": res["notes"], "groups": res["groups"],
           **fig, "runs": res["runs"], "process_wall_s": wall,
           "check": {"peak_voices": long["peak_voices"], "stolen_voices": long["stolen_voices"],
                     "ok": long["peak_voices"] == Vr and not long["stolen_voices"]}}
    for k in ("control_s", "python_s", "kernel_s"):
        if k in long:
            out[k] = long[k]
    return out


def fluid_point(V, lay, hold, cores, bank, program, timeout, probe):
    """One verbose FluidSynth run: its noteon log lines count the voices (the check) and carry
    wall-clock stamps; the steady state runs from the last chord note-on (end of the burst) to
    the probe struck at the end of the hold. Without a probe: the differential method."""
    V = lay["n_voices"]
    with tempfile.TemporaryDirectory() as d:
        mid = fluid_chord_smf(os.path.join(d, "c.mid"), lay, hold, program, probe=probe)
        wall, audio, r = fluid_render(bank, mid, cores, timeout, verbose=True)
        ons = fluid_noteons(r.stdout + r.stderr)
        chord = [o for o in ons if o[0] != 9]
        pr = [o for o in ons if o[0] == 9 and o[1] == probe]
        in_use = chord[-1][4] + 1 if chord else 0
        check = {"voices_started": len(chord), "voices_in_use_after_last_noteon": in_use,
                 "expected": V, "ok": len(chord) == V and in_use == V}
        runs = [{"hold_s": hold, "audio_s": audio, "wall_s": wall, "verbose": True}]
        if chord and pr:
            t0, t1 = chord[-1][3], pr[0][3]
            fig = _figures(V, cores, t1 - t0, round(hold * RATE),
                           "FluidSynth -v noteon wall stamps: last chord note-on to the probe "
                           "at the end of the hold", t0)
        else:
            shorts = []
            for i in range(2):
                m = fluid_chord_smf(os.path.join(d, f"s{i}.mid"), lay, SHORT_HOLD, program)
                w, au, _ = fluid_render(bank, m, cores, timeout)
                shorts.append({"hold_s": SHORT_HOLD, "audio_s": au, "wall_s": w})
            long = fluid_render(bank, fluid_chord_smf(os.path.join(d, "l.mid"), lay, hold,
                                                      program), cores, timeout)
            runs += [{"hold_s": hold, "audio_s": long[1], "wall_s": long[0]}] + shorts
            fig = _differential(V, cores, runs[-3], shorts)
    log(f"    fluidsynth V={V} hold={hold:g}s cores={cores}: process {wall:.3f} s")
    return {"bench": "polyphony", "engine": "fluidsynth", "cores": cores, "voices_target": V,
            "voices": V, "notes": int(len(lay["key"])), **fig, "runs": runs,
            "polyphony": FLUID_MAX_POLYPHONY, "check": check}


def hold_for(V, seconds, max_vs):
    return round(max(MIN_HOLD, min(seconds, max_vs / (V * RATE))), 3)


def bench_polyphony(a):
    counts = [int(v) for v in a.voices.split(",")]
    backends = a.backends.split(",") if a.backends else ["native"]
    cores_list = [c for c in (int(x) for x in a.cores.split(",")) if c <= (os.cpu_count() or 1)]
    bank = a.bank or default_bank()
    fluid = None if a.no_fluidsynth or bank == "builtin" else fluid_info()
    max_vs = a.max_voice_samples or (2e11 if "cupy" in backends else 2e9)
    bk = _bank(bank)
    vpk = voices_per_key(bk, a.program)
    probe = probe_key(bk)
    results, notes = [], []
    if not a.no_fluidsynth and fluid is None:
        notes.append("no FluidSynth figures: " + ("the built-in bank is not a file FluidSynth "
                     "can load" if bank == "builtin" else "fluidsynth not found"))
    if fluid and fluid.get("polyphony_effective") not in (None, FLUID_MAX_POLYPHONY):
        notes.append(f"FluidSynth caps synth.polyphony at {fluid['polyphony_effective']}")
    t_start = time.perf_counter()
    for V in counts:
        lay = chord_layout(vpk, V)
        hold = hold_for(lay["n_voices"], a.seconds, max_vs)
        log(f"polyphony: {lay['n_voices']} voices ({len(lay['key'])} notes, {lay['groups']} "
            f"groups), hold {hold} s")
        for be in backends:
            if be == "numpy" and V > NUMPY_MAX_VOICES:
                continue
            for cores in (cores_list if be != "cupy" else [None]):
                try:
                    results.append(ours_point(be, V, hold, cores, bank, a.program, a.timeout))
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                    results.append({"bench": "polyphony", "engine": be, "cores": cores,
                                    "voices_target": V, "error": str(e)})
                log("  " + _brief(results[-1]))
                _checkpoint(a, "polyphony", results)
        if fluid and "error" not in fluid:
            eff = fluid.get("polyphony_effective") or FLUID_MAX_POLYPHONY
            if lay["n_voices"] > eff:
                notes.append(f"{lay['n_voices']} voices: FluidSynth skipped (its polyphony "
                             f"is capped at {eff})")
                continue
            for cores in cores_list:
                try:
                    results.append(fluid_point(V, lay, hold, cores, bank, a.program, a.timeout,
                                               probe))
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    results.append({"bench": "polyphony", "engine": "fluidsynth", "cores": cores,
                                    "voices_target": V, "error": str(e)})
                log("  " + _brief(results[-1]))
                _checkpoint(a, "polyphony", results)
    return {"polyphony": results, "polyphony_ratios": ratios(results, "voices_target"),
            "polyphony_setup": {
                "bank": bank, "program": a.program, "velocity": 90, "probe_key": probe,
                "max_voice_samples": max_vs, "seconds": a.seconds, "cores": cores_list,
                "fluidsynth": fluid, "elapsed_s": time.perf_counter() - t_start,
                "voice_samples": "held voices x frames of the measured stretch of the hold "
                                 "(the same held-voice count for every engine)",
                "notes": notes}}


def _checkpoint(a, key, results):
    """With --out, keep the results so far on disk (a killed run still leaves them)."""
    if getattr(a, "out", None):
        with open(a.out, "w") as f:
            json.dump({"partial": True, key: results}, f, indent=2, default=float)


def _brief(r):
    if "error" in r:
        return f"{r['engine']} cores={r.get('cores')} V={r.get('voices_target')}: ERROR {r['error']}"
    vs = r.get("voice_samples_per_s")
    rtf = r.get("realtime_factor")
    ok = r.get("check", {}).get("ok")
    return (f"{r['engine']:10s} cores={r['cores']} V={r.get('voices', r.get('voices_target'))}: "
            f"{(vs or 0):.3g} voice-samples/s, {(rtf or 0):.2f}x real time"
            + ("" if ok in (None, True) else "  (VOICE CHECK FAILED)"))


def ratios(results, key):
    """ours / FluidSynth at equal cores for each `key` value (voices or song)."""
    fl = {(r[key], r["cores"]): r for r in results if r.get("engine") == "fluidsynth" and "error" not in r}
    out = []
    for r in results:
        if r.get("engine") in (None, "fluidsynth") or "error" in r:
            continue
        f = fl.get((r[key], r["cores"]))
        if not f:
            continue
        d = {key: r[key], "cores": r["cores"], "engine": r["engine"], "vs": "fluidsynth"}
        for m in ("voice_samples_per_s", "realtime_factor", "realtime_factor_net"):
            if r.get(m) and f.get(m):
                d[f"{m}_ratio"] = r[m] / f[m]
        out.append(d)
    return out


# -------------------------------------------------------------------------- songs

def default_songs():
    d = shared_testdata() / "midi" / "sonivox"
    return [str(d / "ants.mid"), str(d / "Leadsol.mid"), "demo"]


def _demo_mid(path):
    try:
        from gpusynth.demo import demo_midi_bytes
        data = demo_midi_bytes()
    except ImportError:
        from gpusynth.demo import demo_tracks, PPQ as DPPQ
        data = write_smf(None, demo_tracks(), ppq=DPPQ)
    with open(path, "wb") as f:
        f.write(data)
    return path


def fluid_startup(bank, cores, timeout, d):
    """FluidSynth's fixed cost (process start, bank load, file render set-up): one note."""
    mid = os.path.join(d, "one.mid")
    write_smf(mid, [[(0, bytes([0x90, 60, 1])), (96, bytes([0x80, 60, 0]))]], ppq=PPQ)
    return min(fluid_render(bank, mid, cores, timeout)[0] for _ in range(2))


def bench_songs(a):
    bank = a.bank or default_bank()
    files = a.midi.split(",") if a.midi else default_songs()
    cores_list = [c for c in (int(x) for x in a.cores.split(",")) if c <= (os.cpu_count() or 1)]
    fluid = None if a.no_fluidsynth or bank == "builtin" else fluid_info()
    results, notes = [], []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        startup = {}
        if fluid:
            for c in cores_list:
                try:
                    startup[c] = fluid_startup(bank, c, a.timeout, d)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    notes.append(f"fluidsynth start-up measurement failed: {e}")
        for f in files:
            name = "demo" if f == "demo" else os.path.basename(f)
            path = _demo_mid(os.path.join(d, "demo.mid")) if f == "demo" else f
            if not os.path.exists(path):
                notes.append(f"{f}: not found, skipped")
                continue
            try:
                song = load_smf(path)
                info = {"song": name, "path": f, "duration_s": song.duration_s,
                        "notes": song.n_notes}
            except Exception as e:                  # noqa: BLE001 (report and go on)
                notes.append(f"{f}: cannot load: {e}")
                continue
            for be in (a.backends.split(",") if a.backends else ["native"]):
                for c in (cores_list if be != "cupy" else [None]):
                    results.append(_best([ours_song_point(be, path, bank, c, a, d, info)
                                          for _ in range(max(1, a.repeat))]))
                    log("  " + _brief_song(results[-1]))
                    _checkpoint(a, "songs", results)
            if fluid:
                for c in cores_list:
                    try:
                        fr = [fluid_render(bank, path, c, a.timeout)
                              for _ in range(max(1, a.repeat))]
                        wall, audio, _ = min(fr, key=lambda x: x[0])
                        dur = info["duration_s"]
                        r = {"bench": "songs", "engine": "fluidsynth", "cores": c, **info,
                             "audio_s": audio, "wall_s": wall, "realtime_factor": dur / wall,
                             "walls_s": [x[0] for x in fr], "startup_s": startup.get(c)}
                        if startup.get(c) is not None and wall > startup[c]:
                            r["realtime_factor_net"] = dur / (wall - startup[c])
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        r = {"bench": "songs", "engine": "fluidsynth", "cores": c, **info,
                             "error": str(e)}
                    results.append(r)
                    log("  " + _brief_song(r))
                    _checkpoint(a, "songs", results)
    return {"songs": results, "songs_ratios": ratios(results, "song"),
            "songs_setup": {"bank": bank, "voices": a.song_voices, "cores": cores_list,
                            "fluidsynth": fluid, "elapsed_s": time.perf_counter() - t_start,
                            "realtime_factor": "song seconds (the MIDI file's length) / process wall "
                                               "seconds; audio_s is each engine's own output length "
                                               "(release tails, FluidSynth's end pad)",
                            "repeat": a.repeat, "kept": "the fastest of the repeats",
                            "notes": notes}}


def _best(runs):
    """The fastest of repeated runs (these machines are noisy), with every wall time kept."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    best = dict(min(ok, key=lambda r: r["wall_s"]))
    best["walls_s"] = [r["wall_s"] for r in ok]
    return best


def ours_song_point(be, path, bank, cores, a, d, info):
    wav, st_path = os.path.join(d, "o.wav"), os.path.join(d, "o.json")
    cmd = [sys.executable, "-m", "gpusynth", "render", path, "-o", wav, "--backend", be,
           "--voices", str(a.song_voices), "--stats-json", st_path, "--no-effects", "-q"]
    if bank != "builtin":
        cmd += ["--bank", bank]
    base = {"bench": "songs", "engine": be, "cores": cores if be != "cupy" else "gpu", **info}
    try:
        if os.path.exists(st_path):
            os.unlink(st_path)
        wall, r = run_timed(cmd, cores, a.timeout)
        if r.returncode != 0:
            return {**base, "error": f"gpusynth render failed ({r.returncode}): {_tail(r.stderr)}"}
        with open(st_path) as f:
            st = json.load(f)
    except (subprocess.TimeoutExpired, OSError, ValueError) as e:
        return {**base, "error": str(e)}
    audio = st.get("duration_s") or wav_frames(wav)[0] / RATE
    dur = info["duration_s"]
    out = {**base, "audio_s": audio, "wall_s": wall, "realtime_factor": dur / wall,
           "render_wall_s": st.get("wall_s"),
           "realtime_factor_render": dur / st["wall_s"] if st.get("wall_s") else None,
           "startup_s": wall - st["wall_s"] if st.get("wall_s") else None,
           "peak_voices": st.get("peak_voices"), "stolen_voices": st.get("stolen_voices"),
           "voice_samples_per_s": st.get("voice_samples_per_s")}
    if out["startup_s"] is not None:
        out["realtime_factor_net"] = out["realtime_factor_render"]
    split = {k: st[k] for k in ("control_s", "python_s", "kernel_s", "backend_s") if k in st}
    if split:
        out["split"] = split
    return out


def _brief_song(r):
    if "error" in r:
        return f"{r['engine']} cores={r['cores']} {r['song']}: ERROR {r['error']}"
    s = (f"{r['engine']:10s} cores={r['cores']} {r['song']:12s} {r['duration_s']:7.2f} s song "
         f"({r['audio_s']:.2f} s written) in {r['wall_s']:6.2f} s = {r['realtime_factor']:6.1f}x")
    if r.get("realtime_factor_net"):
        s += f" (net {r['realtime_factor_net']:.1f}x)"
    if r.get("split"):
        s += " split " + ", ".join(f"{k}={v:.2f}" for k, v in r["split"].items())
    return s


# -------------------------------------------------------------------------- kernel

KERNEL_FIELDS = ("registers", "spill_stores", "spill_loads", "stack_frame", "shared_bytes",
                 "f64_instructions", "f32_instructions", "forbidden_calls", "occupancy",
                 "violations")


def bench_kernel(a):
    out = {"nvcc": {}, "cupy": None}
    try:
        from gpusynth import kernel_budget as KB
    except ImportError as e:
        out["nvcc"] = {"error": f"gpusynth.kernel_budget not importable: {e}"}
        KB = None
    if KB is not None:
        for arch in a.arch.split(","):
            try:
                rep = KB.kernel_budget(arch.strip())
                out["nvcc"][arch] = {
                    "ok": rep["ok"], "nvcc_version": rep["nvcc_version"],
                    "flags": [f for f in rep["cubin_command"][1:] if not f.startswith("-D")],
                    "kernels": {nm: {k: v for k, v in kk.items() if k in KERNEL_FIELDS}
                                for nm, kk in rep["kernels"].items()}}
                log(f"kernel {arch}: " + "; ".join(
                    f"{nm} {kk.get('registers')} regs, spill {kk.get('spill_stores')}/"
                    f"{kk.get('spill_loads')} B, f64 {kk.get('f64_instructions')}"
                    for nm, kk in rep["kernels"].items()))
            except RuntimeError as e:
                out["nvcc"][arch] = {"error": str(e)}
                log(f"kernel {arch}: {e}")
    out["cupy"] = cupy_kernel_info()
    return {"kernel": out}


def cupy_kernel_info(block=128):
    """The kernels as CuPy compiles them on this GPU: registers, local memory, max threads per
    block and occupancy at `block` threads (None without a GPU)."""
    try:
        import cupy as cp
        if cp.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:
        return None
    from gpusynth import _kernels as K
    info = {}
    try:
        props = cp.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        info["device"] = name.decode() if isinstance(name, bytes) else str(name)
        cc = f"sm_{props['major']}{props['minor']}"
        info.update(arch=cc, sms=props.get("multiProcessorCount"),
                    regs_per_sm=props.get("regsPerMultiprocessor"),
                    max_threads_per_sm=props.get("maxThreadsPerMultiProcessor"))
        src = K.source_for(*K.RENDER_SOURCES)
        from gpusynth.kernel_budget import gpu_define_flags
        defines = gpu_define_flags(K)
        names = re.findall(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?'
                           r'void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(', src)
        kernels = {}
        for fmad in (True, False):
            opts = tuple(defines) + ("-std=c++11",) + (() if fmad else ("--fmad=false",))
            mod = cp.RawModule(code=src, options=opts)
            for nm in names:
                k = mod.get_function(nm)
                d = {"num_regs": k.num_regs, "local_size_bytes": k.local_size_bytes,
                     "shared_size_bytes": k.shared_size_bytes,
                     "max_threads_per_block": k.max_threads_per_block}
                try:
                    blocks = cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(
                        k.kernel.ptr, block, 0)
                    d["occupancy"] = blocks * block / info["max_threads_per_sm"]
                    d["occupancy_source"] = "cuOccupancyMaxActiveBlocksPerMultiprocessor"
                except Exception:                       # noqa: BLE001
                    from gpusynth.kernel_budget import occupancy
                    d["occupancy"] = occupancy(k.num_regs, cc, block, k.shared_size_bytes)
                    d["occupancy_source"] = "computed from registers"
                d["occupancy_block"] = block
                kernels.setdefault(nm, {})["fmad" if fmad else "no_fmad"] = d
        info["kernels"] = kernels
    except Exception as e:                              # noqa: BLE001
        info["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return info


# -------------------------------------------------------------------------- black MIDI

def blackmidi_file(path, notes=200_000, seconds=60.0, seed=1):
    """A small generated black-MIDI file (16 tracks, slow Python writer; kept for tests and
    profiling). The bench itself uses gpusynth.blackgen (bounded memory, any size)."""
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


_INGEST = r"""
import json, sys, time
from gpusynth.smf import load_smf
t0 = time.perf_counter()
song = load_smf(sys.argv[1])
t1 = time.perf_counter()
cur = song.cursor(48000)
n = on = 0
while not cur.done:
    e, _ = cur.read(cur.position + 16384)
    n += len(e)
    on += int(((e["status"] == 0x90) & (e["data2"] > 0)).sum())
t2 = time.perf_counter()
print(json.dumps({"scan_s": t1 - t0, "read_s": t2 - t1, "events": n, "note_ons": on,
                  "file_notes": song.n_notes, "duration_s": song.duration_s,
                  "decoder": getattr(song, "decoder", "?")}))
"""


def run_rss(cmd, cores, timeout, env=None):
    """Run pinned to `cores` CPUs; returns (wall s, peak RSS MB of that child, returncode,
    stdout, stderr) -- the peak from wait4's rusage, so it is this child's alone. The peaks of
    its anonymous and file-backed resident memory, sampled every 50 ms from /proc, are left in
    ``run_rss.last_peaks`` (MB)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env or _env(cores),
                             preexec_fn=_pin(cores))
        deadline = time.time() + timeout
        peaks = {"RssAnon": 0, "RssFile": 0}
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            try:            # sampled: anonymous memory vs pages of mapped files (the MIDI file)
                with open(f"/proc/{p.pid}/status") as st:
                    for ln in st:
                        k = ln.split(":")[0]
                        if k in peaks:
                            peaks[k] = max(peaks[k], int(ln.split()[1]))
            except (OSError, ValueError):
                pass
            if time.time() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        run_rss.last_peaks = {k: v / 1024.0 for k, v in peaks.items()}
        return wall, ru.ru_maxrss / 1024.0, p.returncode, fo.read(), fe.read()


def _black_file(d, notes, a):
    from gpusynth.blackgen import write_black_midi
    path = os.path.join(d, f"black-{notes}-{a.tracks}t-{int(a.density)}.mid")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        info = write_black_midi(path + ".tmp", notes, a.tracks, a.density)
        os.replace(path + ".tmp", path)
        log(f"generated {path}: {info} in {time.perf_counter() - t0:.1f} s")
    return path


def bench_blackmidi(a):
    """Black MIDI at scale: for each size, ingest (scan + reading every event through a cursor
    in 16384-frame windows) in its own process: notes/s and peak RSS; then end-to-end renders
    by the CLI (`gpusynth render FILE -o OUT.wav --voices LIMIT`): real-time factor (audio
    seconds / process wall) and the process' peak RSS; FluidSynth renders the smallest file at
    the same polyphony and cores (-o synth.polyphony=LIMIT, at most 65535)."""
    from gpusynth.blackgen import parse_count
    backends = a.backends.split(",") if a.backends else ["native"]
    bank = a.bank or default_bank()
    sizes = [parse_count(x) for x in (a.sizes or "1M,10M").split(",")]
    render_max = parse_count(a.render_max)
    cores_list = [int(c) for c in str(a.cores).split(",")]
    top = max(cores_list)
    d = a.data_dir or os.path.join(tempfile.gettempdir(), "gpusynth-bench")
    os.makedirs(d, exist_ok=True)
    res = {"sizes": sizes, "voices_limit": a.limit, "tracks": a.tracks + 1,
           "density_notes_per_s": a.density, "bank": bank, "ingest": [], "render": []}
    files = {n: _black_file(d, n, a) for n in sizes}
    for n in sizes:
        wall, rss, rc, out, err = run_rss([sys.executable, "-c", _INGEST, files[n]], top,
                                          a.timeout)
        if rc != 0:
            res["ingest"].append({"notes": n, "error": _tail(err)})
            continue
        r = json.loads(out.strip().splitlines()[-1])
        r.update({"notes": n, "cores": top, "file_bytes": os.path.getsize(files[n]),
                  "peak_rss_mb": rss, "peak_rss_anon_mb": run_rss.last_peaks["RssAnon"],
                  "peak_rss_file_mb": run_rss.last_peaks["RssFile"], "process_wall_s": wall,
                  "ingest_notes_per_s": r["note_ons"] / (r["scan_s"] + r["read_s"])})
        res["ingest"].append(r)
        log(json.dumps(r))
    with tempfile.TemporaryDirectory() as od:
        for n in sizes:
            if n > render_max:
                continue
            for cores in (cores_list if n == min(sizes) else [top]):
                for be in backends:
                    wav, js = os.path.join(od, "o.wav"), os.path.join(od, "o.json")
                    cmd = [sys.executable, "-m", "gpusynth", "render", files[n], "-o", wav,
                           "--backend", be, "--voices", str(a.limit), "--stats-json", js,
                           "--no-effects", "-q"]
                    if bank != "builtin":
                        cmd += ["--bank", bank]
                    wall, rss, rc, out, err = run_rss(cmd, cores, a.timeout)
                    if rc != 0:
                        res["render"].append({"engine": be, "notes": n, "cores": cores,
                                              "error": _tail(err)})
                        continue
                    with open(js) as f:
                        st = json.load(f)
                    r = {"engine": be, "notes": n, "cores": cores, "process_wall_s": wall,
                         "peak_rss_mb": rss, "peak_rss_anon_mb": run_rss.last_peaks["RssAnon"],
                         "peak_rss_file_mb": run_rss.last_peaks["RssFile"],
                         "audio_s": st["duration_s"],
                         "realtime_factor": st["duration_s"] / wall,
                         "realtime_factor_render": st["realtime_factor"],
                         "kernel_s": st["kernel_s"], "control_s": st["control_s"],
                         "render_wall_s": st["wall_s"], "peak_voices": st["peak_voices"],
                         "stolen_voices": st["stolen_voices"], "notes_rendered": st["notes"],
                         "output_format": st.get("output_format"),
                         "voice_samples_per_s_per_core":
                             st["voice_samples_per_s"] / cores}
                    res["render"].append(r)
                    log(json.dumps(r))
                if n == min(sizes) and not a.no_fluidsynth and shutil.which("fluidsynth") \
                        and bank != "builtin":
                    poly = min(a.limit, FLUID_MAX_POLYPHONY)
                    with tempfile.TemporaryDirectory() as fd:
                        fw = os.path.join(fd, "f.wav")
                        wall, rss, rc, out, err = run_rss(
                            fluid_cmd(bank, files[n], fw, cores, poly), cores, a.timeout)
                        if rc != 0 or not os.path.exists(fw):
                            res["render"].append({"engine": "fluidsynth", "notes": n,
                                                  "cores": cores, "error": _tail(err or out)})
                            continue
                        frames, rate = wav_frames(fw)
                    song_s = res["ingest"][0].get("duration_s", frames / rate)
                    r = {"engine": "fluidsynth", "notes": n, "cores": cores, "polyphony": poly,
                         "process_wall_s": wall, "peak_rss_mb": rss, "audio_s": frames / rate,
                         "realtime_factor": song_s / wall}
                    res["render"].append(r)
                    log(json.dumps(r))
    # ratios ours / FluidSynth on the smallest file, per core count (times to render the song:
    # both factors use the song's length over the process wall)
    song_len = {i["notes"]: i.get("duration_s") for i in res["ingest"]}
    for r in res["render"]:
        if r.get("engine") != "fluidsynth" and "error" not in r and song_len.get(r["notes"]):
            r["realtime_factor_song"] = song_len[r["notes"]] / r["process_wall_s"]
    res["ratios"] = {}
    for r in res["render"]:
        if r.get("engine") in ("fluidsynth",) or "error" in r or r["notes"] != min(sizes):
            continue
        f = [x for x in res["render"] if x.get("engine") == "fluidsynth" and "error" not in x
             and x["cores"] == r["cores"]]
        if f:
            res["ratios"][f"{r['engine']}_{r['cores']}cores"] = \
                r["realtime_factor_song"] / f[0]["realtime_factor"]
    return {"blackmidi": res}


def bench_control(a):
    """The control path alone, at black-MIDI scale: for each generated file (gpusynth.blackgen,
    cached like `blackmidi`'s) and voice limit, `python -m gpusynth analyze FILE --json --voices
    V` in its own process pinned to one core (--cores: the first value, 1 by default): the null
    backend renders nothing, so the figures are the host's alone (events, allocation, stealing,
    records, controller timelines). Per row: notes, control_s and control_notes_per_s (the
    synth's own split of its render calls, the time a render spends outside the kernel),
    the loop's wall (analyze_wall_s: control plus reading the file), peak and stolen voices,
    the process' wall and peak RSS."""
    from gpusynth.blackgen import parse_count
    sizes = [parse_count(x) for x in (a.sizes or "1M,10M,100M").split(",")]
    limits = [parse_count(x) for x in a.limits.split(",")]
    cores = int(str(a.cores).split(",")[0])
    bank = a.bank or default_bank()
    d = a.data_dir or os.path.join(tempfile.gettempdir(), "gpusynth-bench")
    os.makedirs(d, exist_ok=True)
    res = {"sizes": sizes, "limits": limits, "cores": cores, "tracks": a.tracks + 1,
           "density_notes_per_s": a.density, "bank": bank, "rows": []}
    for n in sizes:
        path = _black_file(d, n, a)
        for V in limits:
            cmd = [sys.executable, "-m", "gpusynth", "analyze", path, "--json", "--voices",
                   str(V), "-q"] + (["--bank", bank] if bank != "builtin" else [])
            log(f"control: {n:,} notes, {V:,} voices ...")
            wall, rss, rc, out, err = run_rss(cmd, cores, a.timeout)
            if rc != 0:
                r = {"notes": n, "voices_limit": V, "cores": cores, "error": _tail(err or out)}
            else:
                st = json.loads(out)
                r = {"notes": n, "voices_limit": V, "cores": cores,
                     "notes_played": st["notes"], "duration_s": st["duration_s"],
                     "control_s": st["control_s"],
                     "control_notes_per_s": st["control_notes_per_s"],
                     "analyze_wall_s": st["wall_s"], "analyze_notes_per_s": st["notes_per_s"],
                     "peak_voices": st["peak_voices"], "stolen_voices": st["stolen_voices"],
                     "lost_notes": st["lost_notes"], "notes_per_s_peak": st["notes_per_s_peak"],
                     "process_wall_s": wall, "peak_rss_mb": rss,
                     "peak_rss_anon_mb": run_rss.last_peaks["RssAnon"],
                     "peak_rss_file_mb": run_rss.last_peaks["RssFile"],
                     "file_bytes": os.path.getsize(path)}
            res["rows"].append(r)
            log(json.dumps(r))
    return {"control": res}


# -------------------------------------------------------------------------- plot

def _effects_interleaved(song, bank, V, backend, modes, rounds):
    """The chord rendered in every mode of ``modes`` (name, effects, sends) side by side: each
    round opens one synth per mode and advances them a 32,768-frame chunk at a time in turn
    (the order rotating each chunk), so that a slow stretch of a shared machine lands on every
    mode alike. Returns {name: [wall s, CPU s, effect-stage s]} summed over the held stretch
    (every chunk after the first, which holds the note-ons) of every round."""
    from gpusynth.rendering import open_synth, iter_render, song_source
    end = int(round(song.duration_s * RATE))
    tot = {m[0]: [0.0, 0.0, 0.0] for m in modes}
    for rnd in range(rounds):
        gens, synths = {}, {}
        for name, fx, sends in modes:
            synths[name], _ = open_synth(bank, backend, RATE, V + 64, song=song, effects=fx,
                                         sends=sends)
            gens[name] = iter_render(synths[name], song_source(song, RATE), end, 32768, 0.0)
        live = [m[0] for m in modes]
        i = rnd
        first = True
        while live:
            order = live[i % len(live):] + live[:i % len(live)]
            i += 1
            for name in order:
                fx0 = synths[name].stats.get("effects_s", 0.0)
                w0, c0 = time.perf_counter(), time.process_time()
                item = next(gens[name], None)
                w1, c1 = time.perf_counter(), time.process_time()
                if item is None or item[0] + len(item[1]) >= end:
                    live.remove(name)
                if not first and item is not None:
                    t = tot[name]
                    t[0] += w1 - w0
                    t[1] += c1 - c0
                    t[2] += synths[name].stats.get("effects_s", 0.0) - fx0
            first = False
        for sy in synths.values():
            sy.close()
    return tot


def bench_effects(a):
    """effects: the cost of reverb + chorus at V held voices (the polyphony chord, native, this
    process's threads) in three modes rendered side by side, a chunk at a time in turn
    (_effects_interleaved; --repeat rounds): `dry` (effects off, no send buses), `sends`
    (effects off, the kernel mixes the send buses), `effects` (reverb + chorus, FluidSynth's
    defaults). overhead = effects / dry - 1 over the summed held stretches (CPU time and wall);
    `stage_s` is the effect stage's own time. Then reverb decay: FluidSynth (defaults) and
    gpusynth render a short note with CC91 127; the tails' slopes (dB/s, 20 ms frames, first
    40 dB) and the impulse-response RT60 of the reverb alone (Schroeder, -5..-35 dB) against
    its parameter."""
    bank_path = a.bank or default_bank()
    bank = _bank(bank_path)
    backend = (a.backends or "native").split(",")[0]
    out = {"effects": [], "bank": bank_path}
    for V in [int(v) for v in (a.voices if a.voices != DEFAULT_VOICES else "64,4096").split(",")]:
        lay = chord_layout(voices_per_key(bank, a.program), V)
        Vr = lay["n_voices"]
        hold = hold_for(Vr, a.seconds, a.max_voice_samples or 2e8)
        song, _ = ours_song(lay, hold, a.program)
        modes = [("dry", False, False), ("sends", False, True), ("effects", True, False)]
        tot = _effects_interleaved(song, bank, Vr, backend, modes, a.repeat)
        r = {"voices": Vr, "hold_s": hold, "backend": backend, "rounds": a.repeat,
             **{f"{k}_wall_s": v[0] for k, v in tot.items()},
             **{f"{k}_cpu_s": v[1] for k, v in tot.items()},
             "stage_s": tot["effects"][2],
             "overhead": tot["effects"][0] / tot["dry"][0] - 1,
             "sends_overhead": tot["sends"][0] / tot["dry"][0] - 1,
             # process CPU time: what the render costs, without the time a shared machine
             # took the CPU away (the wall-clock ratios above carry that noise)
             "overhead_cpu": tot["effects"][1] / tot["dry"][1] - 1,
             "sends_overhead_cpu": tot["sends"][1] / tot["dry"][1] - 1,
             "stage_fraction": tot["effects"][2] / tot["dry"][0]}
        log(f"    effects V={Vr}: dry {r['dry_wall_s']:.3f} s, sends {r['sends_wall_s']:.3f} s, "
            f"effects {r['effects_wall_s']:.3f} s (+{100 * r['overhead']:.1f} %; CPU time "
            f"+{100 * r['overhead_cpu']:.1f} %, sends alone +{100 * r['sends_overhead_cpu']:.1f} %; "
            f"stage {r['stage_s']:.4f} s = {100 * r['stage_fraction']:.1f} %)")
        out["effects"].append(r)
    from gpusynth import effects as fx
    ir = {}
    for label, kw, want in (("room 0.2", {}, fx.room_to_time(0.2)), ("time 2.0", {"time": 2.0}, 2.0)):
        x = np.zeros(int(max(4.0, 1.6 * want) * RATE), np.float32)
        x[0] = 1.0
        h = fx.Reverb(RATE, **kw).process(x)[0].astype(np.float64)
        e = np.cumsum((h ** 2)[::-1])[::-1]
        edc = 10 * np.log10(e / e[0] + 1e-300)
        i0, i1 = int(np.argmax(edc <= -5)), int(np.argmax(edc <= -35))
        slope = np.polyfit(np.arange(i0, i1) / RATE, edc[i0:i1], 1)[0]
        ir[label] = {"rt60_param_s": want, "rt60_measured_s": -60.0 / slope}
    out["reverb_ir"] = ir
    if shutil.which("fluidsynth") and not a.no_fluidsynth and bank_path != "builtin":
        sys.path.insert(0, str(ROOT / "tests" / "support"))
        import peer_util as pu
        rows = []
        for prog, key, dur in ((0, 60, 100), (13, 72, 80), (115, 60, 60)):
            midi = pu.build_song([(240, dur, 0, key, 100)], {0: prog}, cc={91: 127, 93: 0})
            row = {"program": prog, "key": key, "dur_ms": dur}
            for name, r in (("fluidsynth", pu.render_fluidsynth), ("gpusynth", pu.render_gpusynth)):
                wet, dry = r(midi, bank_path, effects=True), r(midi, bank_path, effects=False)
                e = np.sqrt(pu.power(dry))
                pk = int(np.argmax(e))
                after = pk + int(np.argmax(e[pk:] < e[pk] * 1e-3)) + 960
                slope, _ = pu.tail_decay_db_per_s(wet, after)
                row[name] = {"tail_db_per_s": slope, "tail_rt60_s": -60.0 / slope,
                             "wet_to_dry_db": pu.wet_to_dry_db(wet, dry)}
            row["decay_ratio"] = row["gpusynth"]["tail_db_per_s"] / row["fluidsynth"]["tail_db_per_s"]
            rows.append(row)
            log(f"    reverb tail program {prog}: fluidsynth {row['fluidsynth']['tail_rt60_s']:.3f} s, "
                f"gpusynth {row['gpusynth']['tail_rt60_s']:.3f} s (ratio {row['decay_ratio']:.3f})")
        out["reverb_tail_vs_fluidsynth"] = rows
    return out



# -------------------------------------------------------------------------- batch (issue 12)

def batch_songs(d, n, seconds=8.0, seed=12):
    """``n`` short GM songs (4 melodic channels + drums, 120 bpm, about ``seconds`` long,
    well under 64 voices each) written as SMF files into ``d``."""
    rng = np.random.default_rng(seed)
    os.makedirs(d, exist_ok=True)
    paths = []
    beats = int(seconds * 2)
    for i in range(n):
        tracks = []
        for c in range(4):
            prog = int(rng.integers(0, 96))
            tr = [(0, tempo_meta(500000)), (0, bytes([0xC0 | c, prog])), (0, bytes([0xB0 | c, 7, 100]))]
            step = int(rng.choice([240, 480, 960]))
            for t in range(0, beats * 480, step):
                key = int(rng.integers(40, 84))
                tr += [(t, bytes([0x90 | c, key, int(rng.integers(60, 120))])),
                       (t + step - 20, bytes([0x80 | c, key, 0]))]
            tracks.append(tr)
        dr = []
        for t in range(0, beats * 480, 240):
            k = int(rng.choice([36, 38, 42, 46]))
            dr += [(t, bytes([0x99, k, 100])), (t + 100, bytes([0x89, k, 0]))]
        tracks.append(dr)
        p = os.path.join(d, f"song{i:04d}.mid")
        write_smf(p, tracks)
        paths.append(p)
    return paths


def _song_set(a, prefix):
    """The generated short GM songs of ``batch``/``many``: (cores, n, bank, tmpdir, paths)."""
    cores = int(str(a.cores).split(",")[-1])
    bank = default_bank() if a.bank is None else a.bank
    d = tempfile.mkdtemp(prefix=prefix)
    return cores, a.songs_n, bank, d, batch_songs(os.path.join(d, "in"), a.songs_n)


def _fluid_per_file(a, bank, songs, d, cores):
    """FluidSynth run once per file (dry, pinned): total wall seconds, or None when it is not
    run (not installed, --no-fluidsynth, or the built-in bank)."""
    if not shutil.which("fluidsynth") or a.no_fluidsynth or bank == "builtin":
        return None
    os.makedirs(os.path.join(d, "fluid"), exist_ok=True)
    t0 = time.perf_counter()
    for p in songs:
        run_timed(fluid_cmd(bank, p, os.path.join(d, "fluid", os.path.basename(p) + ".wav"), cores),
                  cores, a.timeout)
    return time.perf_counter() - t0


def bench_batch(a):
    """200 short GM songs at equal cores (pinned): ``gpusynth batch -j CORES`` against a loop
    of ``gpusynth render`` processes and against FluidSynth run once per file (same bank,
    reverb and chorus off on both sides); wall time over the whole set, one run each, in the
    same session (the machine is shared and noisy). Also the byte-identity of the batch
    outputs with the loop's."""
    import glob
    cores, n, bank, d, songs = _song_set(a, "gpusynth-batch-bench-")
    try:
        env = _env(cores)
        res = {"songs": n, "cores": cores, "bank": bank}
        cmd = [sys.executable, "-m", "gpusynth", "batch", os.path.join(d, "in"), "-o",
               os.path.join(d, "batch"), "-j", str(cores), "--backend", "native",
               "--no-effects", "-q"] + (["--bank", bank] if bank != "builtin" else [])
        env1 = dict(env)
        for k in ("OMP_NUM_THREADS",):
            env1.pop(k, None)
        w, r = run_timed(cmd, cores, a.timeout, env=env1)
        summ = json.load(open(os.path.join(d, "batch", "batch-summary.json")))
        audio = summ["totals"]["audio_s"]
        res["audio_s"] = audio
        res["batch"] = {"wall_s": w, "files_per_s": n / w, "realtime_factor": audio / w,
                        "ok": summ["totals"]["ok"], "rc": r.returncode}
        log(f"batch: {w:.1f} s ({n / w:.1f} files/s)")
        os.makedirs(os.path.join(d, "loop"))
        t0 = time.perf_counter()
        bad = 0
        for p in songs:
            out = os.path.join(d, "loop", os.path.basename(p)[:-4] + ".wav")
            _, r = run_timed([sys.executable, "-m", "gpusynth", "render", p, "-o", out,
                              "--backend", "native", "--no-effects", "-q"]
                             + (["--bank", bank] if bank != "builtin" else []), cores, a.timeout)
            bad += r.returncode != 0
        w = time.perf_counter() - t0
        res["render_loop"] = {"wall_s": w, "files_per_s": n / w, "realtime_factor": audio / w,
                              "failed": bad}
        same = sum(open(os.path.join(d, "loop", os.path.basename(p)), "rb").read()
                   == open(p, "rb").read() for p in glob.glob(os.path.join(d, "batch", "*.wav")))
        res["identical_outputs"] = same
        log(f"render loop: {w:.1f} s; identical outputs {same}/{n}")
        w = _fluid_per_file(a, bank, songs, d, cores)
        if w is not None:
            res["fluidsynth_per_file"] = {"wall_s": w, "files_per_s": n / w,
                                          "realtime_factor": audio / w}
            log(f"fluidsynth per file: {w:.1f} s")
        b = res["batch"]["wall_s"]
        res["speedup_vs_render_loop"] = res["render_loop"]["wall_s"] / b
        if "fluidsynth_per_file" in res:
            res["speedup_vs_fluidsynth"] = res["fluidsynth_per_file"]["wall_s"] / b
        return {"batch": res}
    finally:
        shutil.rmtree(d, ignore_errors=True)


_MANY_CHILD = r"""
import json, sys, time
from gpusynth.api import Renderer, load_midi
from gpusynth.voices import TICK
paths, bank, backend, group, effects, rounds = json.loads(sys.argv[1])
songs = [load_midi(p) for p in paths]
r = Renderer(None if bank == "builtin" else bank, backend=backend, effects=effects)
r.render(songs[0]); r.render_many(songs[:2])              # warm: compiled code, caches
res = {"rounds": rounds}
w_one, w_many = [], []
for rnd in range(rounds):          # interleaved: a noisy stretch of the machine hits both
    t0 = time.perf_counter(); vs = 0; one = []
    for s in songs:
        one.append(r.render(s)); vs += r.synth.stats["voices_sum"] * TICK
    w_one.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); many = []; launches = 0; solo = 0
    for i in range(0, len(songs), group):
        many += r.render_many(songs[i:i + group])
        launches += r.stats["launches"]; solo += r.stats["solo"]
    w_many.append(time.perf_counter() - t0)
res["one_by_one"] = {"wall_s": sum(w_one) / rounds, "rounds_wall_s": w_one}
res["together"] = {"wall_s": sum(w_many) / rounds, "rounds_wall_s": w_many, "group": group,
                   "launches": launches, "rendered_alone": solo,
                   "window_ticks": r.stats["window_ticks"]}
for k in ("one_by_one", "together"):
    res[k]["voice_samples_per_s"] = vs / res[k]["wall_s"]
res["voice_samples"] = vs
res["audio_s"] = sum(len(a) for a in one) / r.rate
res["mean_voices"] = vs / max(sum(len(a) for a in one), 1)
res["peak_voices_max"] = max(st["peak_voices"] for st in r.song_stats)
res["identical"] = sum(a.tobytes() == b.tobytes() for a, b in zip(one, many))
print(json.dumps(res))
"""


def bench_many(a):
    """Many songs in one launch (gpusynth.ensemble) against one song at a time, in one
    process with ``--cores`` threads (pinned), the same Renderer, the same generated short GM
    songs (under 64 voices each), reverb and chorus off, in ``--rounds`` interleaved rounds
    (one by one, then together, and again: a noisy stretch of the shared machine hits both);
    voice-samples per second of each over the mean wall time, their ratio, and the
    byte-identity of the two. FluidSynth renders the same files once per
    file at the same core count for scale."""
    cores, n, bank, d, songs = _song_set(a, "gpusynth-many-bench-")
    try:
        res = {"songs": n, "cores": cores, "bank": bank, "backend": a.backend}
        for g in [int(x) for x in str(a.group).split(",")]:
            w, r = run_timed([sys.executable, "-c", _MANY_CHILD,
                              json.dumps([songs, bank, a.backend, g, False, a.rounds])],
                             cores, a.timeout)
            if r.returncode != 0:
                res[f"group_{g}"] = {"error": _tail(r.stderr)}
                continue
            x = json.loads(r.stdout.strip().splitlines()[-1])
            x["ratio_voice_samples_per_s"] = (x["together"]["voice_samples_per_s"]
                                              / x["one_by_one"]["voice_samples_per_s"])
            res[f"group_{g}"] = x
            log(f"group {g}: together {x['together']['voice_samples_per_s'] / 1e6:.1f} M vs/s, "
                f"one by one {x['one_by_one']['voice_samples_per_s'] / 1e6:.1f} M vs/s "
                f"(x{x['ratio_voice_samples_per_s']:.2f}), identical {x['identical']}/{n}")
        w = _fluid_per_file(a, bank, songs, d, cores)
        if w is not None:
            res["fluidsynth_per_file"] = {"wall_s": w}
        return {"many": res}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def plot(out, path):
    try:
        import matplotlib
    except ImportError:
        return "skipped: matplotlib is not installed"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    poly = [r for r in out.get("polyphony", []) if r.get("voice_samples_per_s")]
    songs = [r for r in out.get("songs", []) if r.get("realtime_factor")]
    n = int(bool(poly)) + int(bool(songs))
    if not n:
        return "skipped: nothing to plot"
    fig, axes = plt.subplots(1, n, figsize=(7 * n, 4.5), squeeze=False)
    ax_i = 0
    if poly:
        ax = axes[0][ax_i]
        ax_i += 1
        for key in sorted({(r["engine"], str(r["cores"])) for r in poly}):
            rs = sorted((r for r in poly if (r["engine"], str(r["cores"])) == key),
                        key=lambda r: r["voices"])
            unit = "" if key[1] == "gpu" else " core" if key[1] == "1" else " cores"
            ax.loglog([r["voices"] for r in rs], [r["voice_samples_per_s"] for r in rs], "o-",
                      label=f"{key[0]} ({key[1]}{unit})")
        ax.set_xlabel("held voices")
        ax.set_ylabel("voice-samples per second (steady state)")
        ax.set_title("polyphony sweep, 48 kHz")
        ax.legend(fontsize=8)
    if songs:
        ax = axes[0][ax_i]
        labels = sorted({r["song"] for r in songs})
        keys = sorted({(r["engine"], str(r["cores"])) for r in songs})
        w = 0.8 / max(1, len(keys))
        for j, key in enumerate(keys):
            vals = [next((r["realtime_factor"] for r in songs if r["song"] == s
                          and (r["engine"], str(r["cores"])) == key), 0) for s in labels]
            ax.bar(np.arange(len(labels)) + j * w, vals, w, label=f"{key[0]} ({key[1]})")
        ax.set_xticks(np.arange(len(labels)) + 0.4 - w / 2)
        ax.set_xticklabels(labels)
        ax.set_ylabel("real-time factor (end to end)")
        ax.set_title("songs")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


# -------------------------------------------------------------------------- main

def machine():
    m = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "gpusynth_root": str(PKG_ROOT)}
    if hasattr(os, "sched_getaffinity"):
        m["affinity"] = len(os.sched_getaffinity(0))
    try:
        m["git"] = subprocess.run(["git", "-C", str(PKG_ROOT), "describe", "--always", "--dirty"],
                                  capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            m["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        pass
    return m


def build_parser():
    p = argparse.ArgumentParser(description="gpusynth benchmarks (JSON on stdout)")
    p.add_argument("what", choices=["polyphony", "songs", "kernel", "all", "blackmidi", "control", "effects", "batch", "many", "_one"])
    p.add_argument("--voices", default=DEFAULT_VOICES, help="held-voice counts (polyphony)")
    p.add_argument("--backends", default=None, help="comma list of gpusynth backends (default native)")
    p.add_argument("--backend", default="native", help=argparse.SUPPRESS)
    p.add_argument("--holds", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cores", default="1,2", help="core counts to compare at (default 1,2)")
    p.add_argument("--bank", default=None,
                   help=f"SF2/DLS bank for every engine, or 'builtin' (default {TIMGM} if present, else "
                        "FluidR3_GM.sf2, else builtin)")
    p.add_argument("--program", type=int, default=16, help="GM program of the held chord (16: organ)")
    p.add_argument("--seconds", type=float, default=None,
                   help="held seconds per polyphony point (default 10; black MIDI: song length, default 120)")
    p.add_argument("--max-voice-samples", type=float, default=None,
                   help="cap on voices x held frames per point (default 1e9, 2e11 with cupy)")
    p.add_argument("--midi", default=None,
                   help="songs: comma list of MIDI files ('demo' = the built-in song)")
    p.add_argument("--song-voices", type=int, default=4096, help="songs: gpusynth voice limit")
    p.add_argument("--repeat", type=int, default=2,
                   help="songs: runs per engine and core count, the fastest kept (default 2)")
    p.add_argument("--arch", default="sm_80,sm_90", help="kernel: nvcc architectures")
    p.add_argument("--no-fluidsynth", action="store_true", help="gpusynth only")
    p.add_argument("--fluidsynth", action="store_true", help=argparse.SUPPRESS)  # the default now
    p.add_argument("--sizes", default=None,
                   help="blackmidi, control: note counts of the generated files (k/M/G "
                        "suffixes; default blackmidi 1M,10M, control 1M,10M,100M)")
    p.add_argument("--limits", default="4096,1000000",
                   help="control: voice limits (default 4096,1000000)")
    p.add_argument("--render-max", default="10M",
                   help="blackmidi: render files up to this note count (larger: ingest only)")
    p.add_argument("--tracks", type=int, default=64, help="blackmidi: tracks per file")
    p.add_argument("--density", type=float, default=50_000.0,
                   help="blackmidi: note-ons per second of music")
    p.add_argument("--data-dir", default=None,
                   help="blackmidi: where generated files are kept (default $TMPDIR/gpusynth-bench)")
    p.add_argument("--limit", type=int, default=4096, help="black MIDI voice limit")
    p.add_argument("--songs-n", type=int, default=200, help="batch, many: number of generated songs")
    p.add_argument("--rounds", type=int, default=3,
                   help="many: interleaved rounds of one-by-one and together (mean wall of each)")
    p.add_argument("--group", default="32", help="many: songs per launch (comma list)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per subprocess")
    p.add_argument("--plot", help="write a PNG (needs matplotlib)")
    p.add_argument("--out", help="also write the JSON to this file")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    if a.what == "_one":
        return one_main(a)
    if a.seconds is None:
        a.seconds = 120.0 if a.what == "blackmidi" else 10.0
    out = {"machine": machine(), "command": ["bench.py"] + list(argv if argv is not None else sys.argv[1:])}
    if a.what in ("polyphony", "all"):
        out.update(bench_polyphony(a))
    if a.what in ("songs", "all"):
        out.update(bench_songs(a))
    if a.what in ("kernel", "all"):
        out.update(bench_kernel(a))
    if a.what == "blackmidi":
        out.update(bench_blackmidi(a))
    if a.what == "control":
        out.update(bench_control(a))
    if a.what == "effects":
        out.update(bench_effects(a))
    if a.what == "batch":
        out.update(bench_batch(a))
    if a.what == "many":
        out.update(bench_many(a))
    if a.plot:
        out["plot"] = plot(out, a.plot)
    text = json.dumps(out, indent=2, default=float)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
