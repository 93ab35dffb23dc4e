"""Offline rendering of a MIDI song through a Synth: the one render path.

``gpusynth.render``/``Renderer`` (gpusynth.api), the many-songs ensemble, ``batch`` and
``gpusynth render`` all end a song by the same rule (``song_over``), checked on the same fixed
grid of frames (``END_STEP``) whatever block size the caller renders in, so every path gives
the same frames: the same length and the same bits.

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
from .loading import load_bank_any, song_groups, song_source
from .settings import Settings
from .synth import Synth

SILENCE = 10.0 ** (-90.0 / 20.0)     # -90 dBFS: the release tail counts as decayed below this
# the end-of-song rule is checked at every multiple of END_STEP frames at or past the song's
# end, on the END_STEP frames before it (a multiple of the window: 256 ticks)
END_STEP = 16384


def open_synth(bank=None, backend=None, rate=None, voices=None, groups=None, song=None,
               settings: Settings | None = None, **overrides):
    """A ready Synth with the bank downloaded (the built-in GM bank when bank is None; a path
    or a Bank). ``settings`` (gpusynth.Settings) with ``backend``, ``rate``, ``voices`` and
    ``overrides`` (any other setting by name) applied over it; None keeps the setting.
    Returns (synth, the effective port parameters)."""
    bank = load_bank_any(bank)
    st = Settings.of(settings, backend=backend, rate=rate, voices=voices, **overrides)
    s = Synth(st)
    g = groups or (song_groups(song) if song is not None else 2)
    eff = s.open({"sample_rate": st.rate, "voices": st.voices, "channel_groups": max(1, g)})
    s.download(bank)
    return s, eff


def reopen(synth: Synth, song, rate: int | None = None, voices: int | None = None) -> dict:
    """Close ``synth`` if open and open it for ``song``: the state of a new synth, the bank
    kept (gpusynth.api.Renderer, gpusynth.ensemble). ``rate``/``voices``: the synth's settings
    when None. Returns the effective parameters."""
    if synth.is_open:
        synth.close()
    st = synth.settings
    return synth.open({"sample_rate": rate or st.rate, "voices": voices or st.voices,
                       "channel_groups": song_groups(song)})


def render_opened(synth: Synth, song, chunk: int = END_STEP, tail_cap_s: float | None = None,
                  progress=None):
    """Render ``song`` through an opened synth to float32 (frames, 2) in memory: (audio,
    stats with ``preset_warnings``). ``tail_cap_s`` None: the synth's setting."""
    rate = synth.sample_rate
    end = int(round(song.duration_s * rate))
    t0 = time.perf_counter()
    blocks = []
    for pos, b in iter_render(synth, song_source(song, rate), end, chunk, tail_cap_s):
        blocks.append(b)
        if progress:
            progress(pos + len(b), end, synth)
    audio = np.concatenate(blocks) if blocks else np.zeros((0, 2), np.float32)
    st = summarize(synth, len(audio), time.perf_counter() - t0)
    st["preset_warnings"] = synth.preset_warnings()
    return audio, st


def iter_render(synth: Synth, source, end_frame: int, chunk: int = END_STEP,
                tail_cap_s: float | None = None, sysex=None):
    """Yield (position, float32 block [n, 2]) until the song has ended (``song_over``, checked
    at every multiple of END_STEP frames at or past ``end_frame``; blocks are cut at those
    points, so the frames returned do not depend on ``chunk``): every release tail decayed
    below -90 dBFS (or no voice left), or ``tail_cap_s`` (None: the synth's setting) after the
    last event. ``source``: a streaming cursor (``Synth.stream``) or an EVENT_DTYPE array
    (with ``sysex``, its payload list)."""
    if not hasattr(source, "read"):
        source = ArrayCursor(source, sysex)
    if tail_cap_s is None:
        tail_cap_s = synth.settings.tail_cap_s
    chunk = max(1, int(chunk))
    synth.stream(source)
    cap = end_frame + int(tail_cap_s * synth.sample_rate)
    pos = 0
    last = np.zeros((0, 2), np.float32)         # the END_STEP frames before pos
    while True:
        stop = pos + chunk
        grid = max(-(-end_frame // END_STEP), pos // END_STEP + 1) * END_STEP
        stop = min(stop, grid)
        block = synth.render(stop - pos, pos)
        yield pos, block
        pos = stop
        last = block[-END_STEP:] if len(block) >= END_STEP else \
            np.concatenate([last, block])[-END_STEP:]
        if pos >= end_frame and pos % END_STEP == 0 and song_over(synth, pos, end_frame, cap,
                                                                  last):
            break


def song_over(synth: Synth, pos: int, end_frame: int, cap: int, block: np.ndarray) -> bool:
    """The end-of-song rule, checked at frame ``pos`` (a multiple of END_STEP), ``block`` the
    END_STEP frames before it: past the song's end with every event played, and no voice or
    effect tail left, or the block below -90 dBFS with no note held, or ``cap`` reached."""
    if pos < end_frame or synth.pending_events or not synth.source_done:
        return False
    if synth.active_voices == 0 and not getattr(synth, "effects_ringing", False):
        return True
    if float(np.max(np.abs(block))) < SILENCE and not synth.has_held_notes():
        return True
    return pos >= cap


def render_song(song, bank=None, chunk=END_STEP, progress=None, settings: Settings | None = None,
                **overrides):
    """Render a parsed Song (gpusynth.smf.Song) to float32 stereo in memory (streaming the
    events). ``settings``/``overrides``: as open_synth. Returns (audio, stats). For long
    renders write to a file instead (``render_file``), which keeps memory bounded."""
    synth, _ = open_synth(bank, song=song, settings=settings, **overrides)
    audio, st = render_opened(synth, song, chunk, progress=progress)
    st.pop("preset_warnings", None)
    return audio, st


def _partial_name(path: str) -> str:
    stem, ext = os.path.splitext(path)
    return f"{stem}.partial{ext}"


def render_file(song, path, bank=None, subtype=None, normalize_db=None, chunk=16384,
                progress=None, synth=None, fmt=None, settings: Settings | None = None,
                **overrides):
    """Render ``song`` to the audio file ``path`` (format from its extension or ``fmt``, see
    gpusynth.output; ``"-"``: WAV to stdout), streaming: memory stays one window of events and
    one block of audio. ``subtype`` None: float when the song has more than
    output.FLOAT_NOTES notes, else 16-bit (FLAC: 24/16-bit). ``normalize_db``: peak-normalise
    to this level (dBFS) in a second pass. ``synth``: an already opened Synth (else one is
    opened from ``bank``, ``settings`` and ``overrides`` as open_synth). The file is written under a temporary name beside
    ``path`` and renamed when complete, so ``path`` never holds a half-written file. On an
    exception the temporary file is removed; on KeyboardInterrupt what was rendered is kept as
    ``<name>.partial<ext>`` (``e.partial`` names it, ``e.frames`` counts its frames) and the
    exception propagates. Returns stats (summarize) plus ``output_format``,
    ``float_default``, ``clipped_samples`` (PCM output only) and ``normalize_gain_db``."""
    from .output import open_writer, default_subtype, container, is_stream
    if synth is None:
        synth, _ = open_synth(bank, song=song, settings=settings, **overrides)
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
        for pos, block in iter_render(synth, song_source(song, rate), end, chunk):
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
