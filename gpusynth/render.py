"""Offline rendering of a MIDI song through a Synth (used by `gpusynth render`, tests, bench).

Everything streams: the song's events are pulled from a cursor window by window
(``Synth.stream``), the audio goes to the caller block by block, so memory holds one window
of events and one block of audio whatever the length of the song or its note count.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from .events import ArrayCursor
from .synth import Synth

SILENCE = 10.0 ** (-90.0 / 20.0)     # -90 dBFS: the release tail counts as decayed below this

# voice limit when none is given: what each backend renders comfortably (numpy is the slow
# reference; native renders 4,096 voices at ~3x real time on 2 cores; a GPU takes far more)
DEFAULT_VOICES = {"numpy": 512, "native": 4096, "cupy": 65536}


def default_voices(backend: str) -> int:
    return DEFAULT_VOICES.get(backend, 512)


def open_synth(bank=None, backend="auto", rate=48000, voices=None, groups=None, interp="cubic",
               gain=0.5, song=None, **options):
    """A ready Synth with the bank downloaded (the built-in GM bank when bank is None).
    ``voices`` None: the backend's default (DEFAULT_VOICES). ``options``: further Synth
    keyword arguments (e.g. the black-MIDI note limits)."""
    if bank is None:
        from .banks.builtin import load_builtin
        bank = load_builtin()
    elif not hasattr(bank, "regions"):
        from .banks import load_bank
        bank = load_bank(bank)
    s = Synth(backend=backend, interp=interp, gain=gain, **options)
    if voices is None:
        voices = default_voices(s.backend_name)
    g = groups or (song.channel_groups if song is not None else 2)
    eff = s.open({"sample_rate": rate, "voices": voices, "channel_groups": max(1, g)})
    s.download(bank)
    return s, eff


def song_source(song, rate: int):
    """A streaming event source for ``song``: its cursor (gpusynth.smf) or, for an object that
    only has ``events(rate)``/``sysex``, an ArrayCursor over them."""
    if hasattr(song, "cursor"):
        return song.cursor(rate)
    return ArrayCursor(song.events(rate), getattr(song, "sysex", None))


def song_groups(song) -> int:
    """The channel groups a song needs (its ports; 2 when it does not say)."""
    return max(1, int(getattr(song, "channel_groups", 2) or 2))


def reopen(synth: Synth, song, rate: int, voices: int) -> dict:
    """Close ``synth`` if open and open it for ``song``: the state of a new synth, the bank
    kept (gpusynth.api.Renderer, gpusynth.ensemble). Returns the effective parameters."""
    if synth.is_open:
        synth.close()
    return synth.open({"sample_rate": rate, "voices": voices, "channel_groups": song_groups(song)})


def render_opened(synth: Synth, song, chunk: int = 32768, tail_cap_s: float = 30.0):
    """Render ``song`` through an opened synth to float32 (frames, 2) in memory: (audio,
    stats with ``preset_warnings``)."""
    rate = synth.sample_rate
    end = int(round(song.duration_s * rate))
    t0 = time.perf_counter()
    blocks = [b for _, b in iter_render(synth, song_source(song, rate), end, chunk, tail_cap_s)]
    audio = np.concatenate(blocks) if blocks else np.zeros((0, 2), np.float32)
    st = summarize(synth, len(audio), time.perf_counter() - t0)
    st["preset_warnings"] = synth.preset_warnings()
    return audio, st


def iter_render(synth: Synth, source, end_frame: int, chunk: int = 32768,
                tail_cap_s: float = 30.0, sysex=None):
    """Yield (position, float32 block [n, 2]) until the song has ended and every release tail
    has decayed below -90 dBFS (or no voice is left), or tail_cap_s after the last event.
    ``source``: a streaming cursor (``Synth.stream``) or an EVENT_DTYPE array (with ``sysex``,
    its payload list)."""
    if not hasattr(source, "read"):
        source = ArrayCursor(source, sysex)
    synth.stream(source)
    cap = end_frame + int(tail_cap_s * synth.sample_rate)
    pos = 0
    while True:
        block = synth.render(chunk, pos)
        yield pos, block
        pos += chunk
        if song_over(synth, pos, end_frame, cap, block):
            break


def song_over(synth: Synth, pos: int, end_frame: int, cap: int, block: np.ndarray) -> bool:
    """The end-of-song rule, checked after each chunk (``block``, ending at frame ``pos``):
    past the song's end with every event played, and no voice or effect tail left, or the
    last chunk below -90 dBFS with no note held, or ``cap`` reached."""
    if pos < end_frame or synth.pending_events or not synth.source_done:
        return False
    if synth.active_voices == 0 and not getattr(synth, "effects_ringing", False):
        return True
    if float(np.max(np.abs(block))) < SILENCE and not synth.has_held_notes():
        return True
    return pos >= cap


def render_song(song, bank=None, backend="auto", rate=48000, voices=None, chunk=32768,
                interp="cubic", gain=0.5, tail_cap_s=30.0, progress=None, **options):
    """Render a parsed Song (gpusynth.smf.Song) to float32 stereo in memory (streaming the
    events). Returns (audio, stats). For long renders write to a file instead
    (``render_file``), which keeps memory bounded."""
    synth, _ = open_synth(bank, backend, rate, voices, interp=interp, gain=gain, song=song,
                          **options)
    end = int(round(song.duration_s * rate))
    t0 = time.perf_counter()
    blocks = []
    for pos, b in iter_render(synth, song_source(song, rate), end, chunk, tail_cap_s):
        blocks.append(b)
        if progress:
            progress(pos + len(b), end, synth)
    wall = time.perf_counter() - t0
    audio = np.concatenate(blocks) if blocks else np.zeros((0, 2), np.float32)
    return audio, summarize(synth, len(audio), wall)


def _partial_name(path: str) -> str:
    stem, ext = os.path.splitext(path)
    return f"{stem}.partial{ext}"


def render_file(song, path, bank=None, backend="auto", rate=48000, voices=None,
                subtype=None, normalize_db=None, chunk=16384, interp="cubic", gain=0.5,
                tail_cap_s=30.0, progress=None, synth=None, fmt=None, **options):
    """Render ``song`` to the audio file ``path`` (format from its extension or ``fmt``, see
    gpusynth.output; ``"-"``: WAV to stdout), streaming: memory stays one window of events and
    one block of audio. ``subtype`` None: float when the song has more than
    output.FLOAT_NOTES notes, else 16-bit (FLAC: 24/16-bit). ``normalize_db``: peak-normalise
    to this level (dBFS) in a second pass. ``synth``: an already opened Synth (else one is
    opened with the other arguments). The file is written under a temporary name beside
    ``path`` and renamed when complete, so ``path`` never holds a half-written file. On an
    exception the temporary file is removed; on KeyboardInterrupt what was rendered is kept as
    ``<name>.partial<ext>`` (``e.partial`` names it, ``e.frames`` counts its frames) and the
    exception propagates. Returns stats (summarize) plus ``output_format``,
    ``float_default``, ``clipped_samples`` (PCM output only) and ``normalize_gain_db``."""
    from .output import open_writer, default_subtype, container, is_stream
    if synth is None:
        synth, _ = open_synth(bank, backend, rate, voices, interp=interp, gain=gain, song=song,
                              **options)
    rate = synth.sample_rate
    path = os.fspath(path)
    n_notes = getattr(song, "n_notes", 0)
    float_default = subtype is None and default_subtype(path, n_notes, fmt) == "float" \
        and default_subtype(path, 0, fmt) != "float"
    subtype = subtype or default_subtype(path, n_notes, fmt)
    # "-", a pipe or a device (/dev/stdout): written straight through as a WAV stream
    to_stdout = is_stream(path)
    if to_stdout:
        tmp = path
    else:
        d, name = os.path.split(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=d)
        os.close(fd)
        um = os.umask(0)
        os.umask(um)
        os.chmod(tmp, 0o666 & ~um)          # the permissions a plain open() would give
    writer = open_writer(tmp, rate, subtype, fmt=container(path, fmt).lower())
    norm = None
    if normalize_db is not None:
        from .output import Normalizer
        norm = Normalizer(path if not to_stdout else ".", normalize_db)
    sink = norm or writer
    pcm = subtype in ("pcm16", "pcm24") and norm is None
    end = int(round(song.duration_s * rate))
    t0 = time.perf_counter()
    frames = clipped = 0
    try:
        for pos, block in iter_render(synth, song_source(song, rate), end, chunk, tail_cap_s):
            sink.write(block)
            frames += len(block)
            if pcm:
                clipped += int(np.count_nonzero(np.abs(block) > 1.0))
            if progress:
                progress(frames, end, synth)
        wall = time.perf_counter() - t0
        st = summarize(synth, frames, wall)
        if norm is not None:
            norm.finish(writer)
            st["normalize_gain_db"] = norm.gain_db
            st["peak_db"] = normalize_db
            st["wall_s_with_normalize"] = time.perf_counter() - t0
        else:
            writer.close()
        if not to_stdout:
            os.replace(tmp, path)
    except BaseException as e:
        if norm is not None:
            norm.discard()
        try:
            writer.close()
        except Exception:
            pass
        if not to_stdout:
            if isinstance(e, KeyboardInterrupt) and frames and norm is None:
                e.partial = _partial_name(path)
                os.replace(tmp, e.partial)
            else:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        if isinstance(e, KeyboardInterrupt):
            e.frames = frames
        raise
    st["output_format"] = writer.description
    st["float_default"] = float_default
    st["clipped_samples"] = clipped
    return st


def summarize(synth: Synth, frames: int, wall: float) -> dict:
    return summary(synth.running_stats(), frames, synth.sample_rate, wall, synth.max_voices)


def summary(rs: dict, frames: int, rate: int, wall: float, voices_limit: int) -> dict:
    """A render's statistics from ``Synth.running_stats()``-style counts ``rs`` (also built per
    song by gpusynth.ensemble)."""
    dur = frames / rate
    return {
        "duration_s": dur, "wall_s": wall,
        "realtime_factor": dur / wall if wall > 0 else float("inf"),
        "peak_voices": rs["peak_voices"], "notes": rs["notes"],
        "notes_per_s": rs["notes"] / wall if wall > 0 else 0.0,
        "stolen_voices": rs["stolen_voices"], "lost_notes": rs["lost_notes"],
        "skipped_notes": rs.get("skipped_notes", 0),
        "voices_limit": voices_limit,
        "backend": rs["backend"], "sample_rate": rate,
        "peak_db": rs["peak_volume_db"],
        "voice_samples_per_s": rs["average_voices"] * frames / wall if wall > 0 else 0.0,
        # where the time went: inside the backend's render call, and the host around it
        # (event dispatch, allocation, controller timelines, uploads)
        "kernel_s": rs["kernel_seconds"], "control_s": rs["control_seconds"],
        "windows": rs["windows"],
    }


class _CallableModule(__import__("types").ModuleType):
    """``gpusynth.render(midi, bank=None, *, rate=48000, ...)`` renders to a numpy array
    (gpusynth.api.render) while ``gpusynth.render.render_file`` & co. stay this module's."""

    def __call__(self, midi, bank=None, **kwargs):
        from .api import render as _render
        return _render(midi, bank, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
