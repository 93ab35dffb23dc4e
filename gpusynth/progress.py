"""Progress of long work through tqdm (``tqdm.auto``: a text bar in a terminal, a widget in
Jupyter), with the figures a render is judged by: real-time factor, notes per second, voices,
and tqdm's ETA. Used by ``gpusynth render``/``analyze``/``batch`` (on stderr, when it is a
terminal) and by the Python API (``gpusynth.render(..., progress=True)``)."""
from __future__ import annotations

import sys
import time


def si(x: float, digits: int = 1) -> str:
    """1234567 -> '1.2M' (``digits`` after the point)."""
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.{digits}f}{suf}"
    return f"{x:.0f}"


def _bar(total, unit, desc, file=None, leave=False, mininterval=0.2):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit=unit, desc=desc, file=file or sys.stderr, leave=leave,
                dynamic_ncols=True, mininterval=mininterval, miniters=1e-9, smoothing=0.1,
                bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s "
                           "[{elapsed}<{remaining}{postfix}]" if unit == "s" else None)


class RenderProgress:
    """A progress bar over a song's audio seconds: call it as ``progress(done_frames,
    total_frames, synth)`` (the callback gpusynth.rendering takes). ``enabled`` False: does
    nothing (no tqdm import). The bar goes past the song's end into the release tail."""

    def __init__(self, enabled: bool = True, desc: str = "", file=None,
                 mininterval: float = 0.2):
        self.enabled = bool(enabled)
        self.desc = desc
        self.file = file
        self.mininterval = float(mininterval)
        self.bar = None
        self.t0 = time.perf_counter()
        self._last = 0.0

    def __call__(self, done: int, total: int, synth):
        if not self.enabled:
            return
        rate = synth.sample_rate
        if self.bar is None:
            self.bar = _bar(round(max(total, 1) / rate, 1), "s", self.desc, self.file,
                            mininterval=self.mininterval)
        now = time.perf_counter()
        pos = done / rate
        if pos >= self.bar.total:                  # the release tail after the last event
            self.bar.total = pos * (1.0 + 1e-9)
        if now - self._last >= self.mininterval:
            self._last = now
            el = max(now - self.t0, 1e-9)
            notes = synth.running_stats()["notes"]
            self.bar.set_postfix_str(f"x{pos / el:.2f} RT, {si(notes / el)} notes/s, "
                                     f"voices {synth.active_voices:,}", refresh=False)
        self.bar.update(pos - self.bar.n)              # tqdm's rate, hence its ETA

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CountProgress:
    """A progress bar over a count of items (``gpusynth batch``: files), with the audio
    rendered per second of wall time."""

    def __init__(self, total: int, enabled: bool = True, unit: str = "file", file=None,
                 mininterval: float = 0.2):
        self.enabled = bool(enabled)
        self.total = total
        self.done = self.errors = 0
        self.audio_s = 0.0
        self.t0 = time.perf_counter()
        self.bar = None
        if self.enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, unit=unit, file=file or sys.stderr, leave=False,
                            dynamic_ncols=True, mininterval=mininterval)

    def update(self, ok: bool, audio_s: float = 0.0):
        self.done += 1
        self.errors += not ok
        self.audio_s += audio_s
        if self.bar is not None:
            el = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{self.audio_s / el:.1f}x RT"
                                     + (f", {self.errors} failed" if self.errors else ""),
                                     refresh=False)
            self.bar.update(1)

    def write(self, line: str):
        """Print a line without breaking the bar."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
