"""Helpers for peer checks against FluidSynth: generated MIDI, FluidSynth renders, WAV reading
and the audio measurements (onset, pitch, RMS envelope) used by tests/system/test_peer_fluidsynth.py.

Timing conventions used by the generated songs: tempo 480,000 us per quarter with 480 ticks per
quarter, so one tick is exactly 1 ms, and every note starts on a multiple of 120 ms. At 48 kHz
that is a multiple of 5,760 frames = 90 FluidSynth blocks (FLUID_BUFSIZE = 64 frames), so
FluidSynth's block-quantised MIDI player sends each note-on at the exact block whose first frame
is the note's time: its timing then has no jitter and only the fixed latency described at
FS_VOICE_LATENCY.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gpusynth.smf import tempo_meta, write_smf

RATE = 48000
PPQ = 480
TEMPO_US = 480_000                 # 1 tick = 1 ms
FS_BLOCK = 64                      # FluidSynth's FLUID_BUFSIZE
# FluidSynth starts a voice one block after the block in which its MIDI player sends the
# note-on (the note-on goes through the rvoice event queue and the voice renders from the next
# 64-frame block). With block-aligned note times this is a constant +64 frames (1.333 ms) on
# every FluidSynth note; the tests check it per note by cross-correlating the two renders'
# waveforms (both play the same sample data) before they rely on it.
FS_VOICE_LATENCY = FS_BLOCK

ROOT = Path(__file__).resolve().parents[2]
DLS_DIR = ROOT.parent / "shared" / "testdata" / "dls"
TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
CSOUND_SF2_CANDIDATES = (Path("/usr/share/sounds/sf2/sf_GMbank.sf2"),
                         Path("/usr/share/sounds/csound/sf_GMbank.sf2"),
                         Path("/usr/share/csound/sf_GMbank.sf2"))


def fluidsynth_path():
    return shutil.which("fluidsynth")


def csound_sf2():
    for p in CSOUND_SF2_CANDIDATES:
        if p.exists():
            return p
    return None


# ---------------------------------------------------------------------------------- songs

def ms_tick(ms: float) -> int:
    return int(round(ms * PPQ * 1e6 / TEMPO_US / 1000.0))


def build_song(notes, programs, cc=None) -> bytes:
    """notes: (start_ms, dur_ms, chan, key, vel); programs: {chan: program} (chan 9 = drums);
    cc: {controller: value} set on every used channel at tick 0 (e.g. {91: 40, 93: 0}: the
    engines' defaults differ, FluidSynth's CC91 is 0, GM's and gpusynth's 40).
    Returns SMF format-0 bytes (tempo and program changes at tick 0)."""
    tr = [(0, tempo_meta(TEMPO_US))]
    for c, p in sorted(programs.items()):
        tr.append((0, bytes([0xB0 | c, 7, 100])))          # volume 100 on every used channel
        tr.append((0, bytes([0xB0 | c, 10, 64])))          # centre pan
        for k, v in sorted((cc or {}).items()):
            tr.append((0, bytes([0xB0 | c, k, v])))
        if c != 9:
            tr.append((0, bytes([0xC0 | c, p])))
    for s, d, c, k, v in notes:
        tr.append((ms_tick(s), bytes([0x90 | c, k, v])))
        tr.append((ms_tick(s + d), bytes([0x80 | c, k, 0])))
    return write_smf(None, [tr], ppq=PPQ, fmt=0)


# ---------------------------------------------------------------------------------- renders

def read_wav(path) -> np.ndarray:
    """PCM 16-bit or IEEE float 32/64 WAV (WAVE_FORMAT_EXTENSIBLE included) -> float32 [n, ch]."""
    data = Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    pos, fmt, body = 12, None, None
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        n = int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            fmt = data[pos + 8:pos + 8 + n]
        elif cid == b"data":
            body = data[pos + 8:pos + 8 + n]
        pos += 8 + n + (n & 1)
    if fmt is None or body is None:
        raise ValueError(f"{path}: no fmt or data chunk")
    tag = int.from_bytes(fmt[0:2], "little")
    ch = int.from_bytes(fmt[2:4], "little")
    bits = int.from_bytes(fmt[14:16], "little")
    if tag == 0xFFFE:
        tag = int.from_bytes(fmt[24:26], "little")
    if tag == 3 and bits in (32, 64):
        a = np.frombuffer(body, "<f4" if bits == 32 else "<f8").astype(np.float32)
    elif tag == 1 and bits == 16:
        a = np.frombuffer(body, "<i2").astype(np.float32) / 32768.0
    else:
        raise ValueError(f"{path}: unsupported WAV format tag {tag}, {bits} bits")
    return a[: len(a) // ch * ch].reshape(-1, ch)


def render_fluidsynth(midi: bytes, bank, rate: int = RATE, timeout: float = 60.0,
                      effects: bool = False) -> np.ndarray:
    """Render with FluidSynth: gain 1, unlimited polyphony, no fallback soundfont, float WAV;
    no reverb/chorus (-R 0 -C 0) unless ``effects`` (then its defaults: reverb room 0.2, damp
    0, width 0.5, level 0.9; chorus 3 voices, level 2, 0.3 Hz, 8 ms). Returns float32 [n, 2]."""
    exe = fluidsynth_path()
    with tempfile.TemporaryDirectory(prefix="peer_fs_") as d:
        mid = os.path.join(d, "song.mid")
        wav = os.path.join(d, "out.wav")
        Path(mid).write_bytes(midi)
        cmd = [exe, "-ni", "-q", "-g", "1", *([] if effects else ["-R", "0", "-C", "0"]),
               "-o", "synth.polyphony=65535", "-o", "synth.default-soundfont=",
               "-o", "synth.cpu-cores=1", "-r", str(rate), "-O", "float", "-T", "wav",
               "-F", wav, str(bank), mid]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(f"fluidsynth failed ({r.returncode}): {r.stderr[-2000:]}")
        return read_wav(wav)


def render_gpusynth(midi: bytes, bank, rate: int = RATE, effects: bool = False,
                    tail_cap_s: float = 2.0) -> np.ndarray:
    """gpusynth's render at gain 1; dry (``effects=False``) unless asked, like
    render_fluidsynth."""
    from gpusynth.rendering import render_song
    from gpusynth.smf import load_smf
    audio, _ = render_song(load_smf(midi), bank=bank, rate=rate, gain=1.0, tail_cap_s=tail_cap_s,
                           effects=effects)
    return np.asarray(audio, np.float32)


# ---------------------------------------------------------------------------------- measures

def power(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return (x * x).sum(axis=1) if x.ndim == 2 else x * x


def onset(x, t_frame: int, thr_db: float = -30.0, pre_ms: float = 10.0, post_ms: float = 150.0,
          smooth: int = 16, rate: int = RATE):
    """Onset of the note scheduled at frame t_frame: the first frame where the amplitude
    envelope (sqrt of L^2 + R^2, max over a `smooth`-frame trailing window) rises above thr_db
    relative to the note's peak in [t - pre, t + post]. Returns (onset frame, peak, level of
    the window before t relative to the peak in dB)."""
    e = np.sqrt(power(x))
    a = max(0, t_frame - int(pre_ms * rate / 1000))
    b = min(len(e), t_frame + int(post_ms * rate / 1000))
    w = e[a:b]
    if smooth > 1:      # trailing running max: never moves an onset earlier than the signal
        w = np.max(np.lib.stride_tricks.sliding_window_view(np.pad(w, (smooth - 1, 0)), smooth),
                   axis=1)
    pk = float(w.max())
    if pk <= 0:
        return None, 0.0, 0.0
    thr = pk * 10 ** (thr_db / 20)
    i = int(np.argmax(w > thr))
    pre = float(e[a:t_frame].max()) if t_frame > a else 0.0
    return a + i, pk, 20 * np.log10(max(pre, 1e-30) / pk)


def waveform_lag(x, y, t_frame: int, max_lag: int = 200, skip: int = 240, n: int = 4800):
    """Lag L (frames) that best aligns x[t+L+...] with y[t+...] (normalised cross-correlation
    of the mono sums over [t + skip, t + skip + n)). Returns (L, correlation)."""
    xm = np.asarray(x, np.float64).sum(axis=1)
    ym = np.asarray(y, np.float64).sum(axis=1)
    a = t_frame + skip
    yw = ym[a:a + n]
    best = (0, -2.0)
    for L in range(-max_lag, max_lag + 1):
        xw = xm[a + L:a + L + n]
        if len(xw) != len(yw):
            continue
        den = np.sqrt(np.dot(xw, xw) * np.dot(yw, yw))
        c = float(np.dot(xw, yw) / den) if den > 0 else 0.0
        if c > best[1]:
            best = (L, c)
    return best


def _peak_near(spec, f_hz, df, cents_win):
    lo = int(np.floor(f_hz * 2 ** (-cents_win / 1200) / df))
    hi = int(np.ceil(f_hz * 2 ** (cents_win / 1200) / df)) + 1
    k = lo + int(np.argmax(spec[lo:hi]))
    a, b, c = np.log(spec[k - 1:k + 2] + 1e-300)
    den = a - 2 * b + c
    d = 0.5 * (a - c) / den if den != 0 else 0.0
    return (k + d) * df, float(spec[k])


def spectrum(x, rate=RATE, pad=8):
    m = np.asarray(x, np.float64)
    m = m.sum(axis=1) if m.ndim == 2 else m
    m = m - m.mean()
    n = len(m)
    sp = np.abs(np.fft.rfft(m * np.hanning(n), pad * n))
    return sp, rate / (pad * n)


def strongest_harmonic(x, f0, rate=RATE, max_h=8):
    """Harmonic number (1..max_h) of nominal f0 carrying the most energy in x."""
    sp, df = spectrum(x, rate)
    amps = []
    for h in range(1, max_h + 1):
        if h * f0 * 1.05 >= rate / 2:
            break
        amps.append(_peak_near(sp, h * f0, df, 50)[1])
    return int(np.argmax(amps)) + 1


def pitch_hz(x, f0, harmonic=1, rate=RATE):
    """Frequency of the given harmonic of nominal f0 (peak within +-50 cents, Hann window,
    8x zero padding, parabolic interpolation on the log magnitude) divided by the harmonic."""
    sp, df = spectrum(x, rate)
    return _peak_near(sp, harmonic * f0, df, 50)[0] / harmonic


def cents(f, ref):
    return 1200.0 * np.log2(f / ref)


def key_hz(key):
    return 440.0 * 2 ** ((key - 69) / 12)


def wet_to_dry_db(wet, dry) -> float:
    """Energy of (wet render - dry render) over the dry render's, dB (one engine's own renders,
    sample-aligned)."""
    n = min(len(wet), len(dry))
    d = np.asarray(wet[:n], np.float64) - np.pad(np.asarray(dry, np.float64), ((0, max(0, n - len(dry))), (0, 0)))[:n]
    return 10 * np.log10(power(d).sum() / power(dry).sum())


def tail_decay_db_per_s(x, after: int, frame: int = 960, span_db: float = 40.0, rate: int = RATE):
    """Slope (dB/s) of a straight-line fit to the energy in `frame`-frame windows from frame
    `after` on, over the first `span_db` dB of the decay. Returns (slope, residual rms dB)."""
    p = power(x[after:])
    n = len(p) // frame
    e = 10 * np.log10(p[: n * frame].reshape(n, frame).mean(axis=1) + 1e-300)
    k = int(np.argmax(e < e[0] - span_db)) or n
    t = np.arange(k) * frame / rate
    slope, icpt = np.polyfit(t, e[:k], 1)
    return float(slope), float(np.std(e[:k] - (slope * t + icpt)))


def rms_frames(x, frame: int) -> np.ndarray:
    p = power(x)
    n = len(p) // frame
    return np.sqrt(p[: n * frame].reshape(n, frame).mean(axis=1))


def pearson(a, b) -> float:
    a = np.asarray(a, np.float64) - np.mean(a)
    b = np.asarray(b, np.float64) - np.mean(b)
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def without_short_leadins(bank, rate: int = RATE, block: int = FS_BLOCK):
    """A copy of a gpusynth Bank whose volume-envelope delay and attack are set to zero wherever
    they are shorter than one FluidSynth block (64 frames = 1.33 ms at 48 kHz).

    Why: SF2's defaults for delayVolEnv and attackVolEnv are -12000 tc (0.98 ms each) and
    gpusynth honours them (the first 0.98 ms of every note is muted, the next 0.98 ms ramps up),
    while FluidSynth counts envelope stages in whole 64-frame blocks,
    (unsigned)(rate * seconds / 64) = 0, and so plays the sample from its first frame. DLS's
    defaults are 0, so the same bank converted to DLS (sf_GMbank.dls) has no lead-in either.
    On percussive samples with energy at frame 0 this moves a threshold onset by 0.5-1.8 ms;
    on everything else it changes nothing measurable. The onset tests compare with this view
    of the bank and report the unmodified bank's figures too."""
    import copy
    from gpusynth.banks import load_bank
    if not hasattr(bank, "regions"):
        bank = load_bank(bank)
    out = copy.copy(bank)
    reg = bank.regions.copy()
    for f in ("ve_delay", "ve_attack"):
        tc = reg[f].astype(np.float64)
        frames = np.where(tc <= -32767, 0.0, np.exp2(np.clip(tc, -12000, 8000) / 1200.0) * rate)
        short = frames < block if block is not None else np.ones(len(reg), bool)
        reg[f] = np.where(short, -32768.0, reg[f])
    out.regions = reg
    return out


THIRD_OCTAVES = 1000.0 * 2.0 ** (np.arange(-16, 13) / 3.0)     # 25 Hz .. 16 kHz


def third_octave_db(x, rate: int = RATE) -> np.ndarray:
    """Energy (dB) of the mono sum of x in each third-octave band THIRD_OCTAVES (one Hann-windowed
    FFT over the whole signal, the bins between the band edges fc * 2^(+-1/6) summed)."""
    m = np.asarray(x, np.float64)
    m = m.sum(axis=1) if m.ndim == 2 else m
    sp = np.abs(np.fft.rfft(m * np.hanning(len(m)))) ** 2
    f = np.fft.rfftfreq(len(m), 1.0 / rate)
    e = [sp[(f >= c * 2 ** (-1 / 6)) & (f < c * 2 ** (1 / 6))].sum() for c in THIRD_OCTAVES]
    return 10.0 * np.log10(np.asarray(e) + 1e-30)


def spectral_difference(a, b, floor_db: float = 60.0, rate: int = RATE):
    """Third-octave spectra of b against a: (median |b - a| dB over the bands within floor_db of
    the loudest band of either, the per-band differences b - a, the mask of those bands)."""
    n = min(len(a), len(b))
    da, db = third_octave_db(a[:n], rate), third_octave_db(b[:n], rate)
    top = max(da.max(), db.max())
    ok = (da > top - floor_db) | (db > top - floor_db)
    d = db - da
    return float(np.median(np.abs(d[ok]))), d, ok
