"""Offline rendering of a MIDI song through a Synth (used by `gpusynth render`, tests, bench)."""
from __future__ import annotations

import time

import numpy as np

from .synth import Synth

SILENCE = 10.0 ** (-90.0 / 20.0)     # -90 dBFS: the release tail counts as decayed below this


def open_synth(bank=None, backend="numpy", rate=48000, voices=512, groups=None, interp="cubic",
               gain=0.5, song=None):
    """A ready Synth with the bank downloaded (the built-in GM bank when bank is None)."""
    if bank is None:
        from .banks.builtin import load_builtin
        bank = load_builtin()
    elif not hasattr(bank, "regions"):
        from .banks import load_bank
        bank = load_bank(bank)
    s = Synth(backend=backend, interp=interp, gain=gain)
    g = groups or (song.channel_groups if song is not None else 2)
    eff = s.open({"sample_rate": rate, "voices": voices, "channel_groups": max(1, g)})
    s.download(bank)
    return s, eff


def iter_render(synth: Synth, events, sysex, end_frame: int, chunk: int = 32768,
                tail_cap_s: float = 30.0):
    """Yield (position, float32 block [n, 2]) until the song has ended and every release tail
    has decayed below -90 dBFS (or no voice is left), or tail_cap_s after the last event."""
    synth.play(events, sysex)
    cap = end_frame + int(tail_cap_s * synth.sample_rate)
    pos = 0
    while True:
        block = synth.render(chunk, pos)
        yield pos, block
        pos += chunk
        if pos >= end_frame and synth.pending_events == 0:
            if synth.active_voices == 0:
                break
            if float(np.max(np.abs(block))) < SILENCE and not synth.has_held_notes():
                break
            if pos >= cap:
                break


def render_song(song, bank=None, backend="numpy", rate=48000, voices=512, chunk=32768,
                interp="cubic", gain=0.5, tail_cap_s=30.0, progress=None):
    """Render a parsed Song (gpusynth.smf.Song) to float32 stereo. Returns (audio, stats)."""
    synth, _ = open_synth(bank, backend, rate, voices, interp=interp, gain=gain, song=song)
    ev = song.events(rate)
    end = int(round(song.duration_s * rate))
    t0 = time.perf_counter()
    blocks = []
    for pos, b in iter_render(synth, ev, song.sysex, end, chunk, tail_cap_s):
        blocks.append(b)
        if progress:
            progress(pos + len(b), end, synth)
    wall = time.perf_counter() - t0
    audio = np.concatenate(blocks) if blocks else np.zeros((0, 2), np.float32)
    return audio, summarize(synth, len(audio), wall)


def summarize(synth: Synth, frames: int, wall: float) -> dict:
    rs = synth.running_stats()
    dur = frames / synth.sample_rate
    return {
        "duration_s": dur, "wall_s": wall,
        "realtime_factor": dur / wall if wall > 0 else float("inf"),
        "peak_voices": rs["peak_voices"], "notes": rs["notes"],
        "stolen_voices": rs["stolen_voices"], "lost_notes": rs["lost_notes"],
        "backend": rs["backend"], "sample_rate": synth.sample_rate,
        "peak_db": rs["peak_volume_db"],
        "voice_samples_per_s": rs["average_voices"] * frames / wall if wall > 0 else 0.0,
        # where the time went: inside the backend's render call, and the host around it
        # (event dispatch, allocation, controller timelines, uploads)
        "kernel_s": rs["kernel_seconds"], "control_s": rs["control_seconds"],
        "windows": rs["windows"],
    }
