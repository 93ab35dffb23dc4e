"""Audio file writers for offline rendering, chosen by the output file's extension.

* ``.wav`` (and ``.rf64``): hostsink.WavFileOutput, no dependency beyond numpy; 16-bit, 24-bit
  or 32-bit float; a file that grows past 4 GiB becomes RF64 on close.
* ``-``: WAV streamed to stdout (sizes in the header set to the maximum, as streaming tools
  expect), e.g. ``gpusynth render x.mid -o - | ffmpeg -i - out.mp3``.
* ``.w64`` (Sony Wave64), ``.flac``, ``.ogg`` (Vorbis), ``.aiff``/``.aif``, ``.caf``: through
  soundfile (libsndfile; ``pip install soundfile``). FLAC holds integer samples only (16 or
  24 bit).

``open_writer(path, rate, subtype)`` returns an object with ``write(block)`` (float32 (N, 2)),
``close()``, ``frames_written`` and ``description`` (e.g. "32-bit float WAV").
``subtype``: "pcm16", "pcm24", "float", or None for the format's default (float for WAV/W64
when the caller asks for it, see ``default_subtype``).

Normalising (``Normalizer``): the render goes to a temporary raw float32 file beside the
output while the peak is tracked; a second pass scales it to the target level and writes the
requested format, then the temporary file is removed. Memory stays one block.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

__all__ = ["open_writer", "OutputError", "SUBTYPES", "default_subtype", "Normalizer",
           "FLOAT_NOTES", "FORMATS", "check_writable", "container", "is_stream"]

SUBTYPES = ("pcm16", "pcm24", "float")
FLOAT_NOTES = 1_000_000       # inputs with more notes than this default to float output
_SF_SUBTYPE = {"pcm16": "PCM_16", "pcm24": "PCM_24", "float": "FLOAT"}
_SF_FORMATS = {".w64": "W64", ".flac": "FLAC", ".aiff": "AIFF", ".aif": "AIFF", ".caf": "CAF",
               ".ogg": "OGG", ".oga": "OGG"}
FORMATS = ("wav", "w64", "flac", "ogg", "aiff", "caf")     # --format names
_NAMES = {"pcm16": "16-bit", "pcm24": "24-bit", "float": "32-bit float"}


class OutputError(Exception):
    """A user-facing output problem (unknown extension, unsupported subtype, no soundfile)."""


def is_stream(path) -> bool:
    """``-`` (stdout) or an existing pipe/device (``/dev/stdout``, a FIFO): written straight
    through as a WAV stream, never via a temporary file."""
    p = os.fspath(path)
    return p == "-" or (os.path.exists(p) and not os.path.isfile(p) and not os.path.isdir(p))


def container(path, fmt: str | None = None) -> str:
    """The container for ``path`` (or the explicit ``fmt``, one of FORMATS): "WAV", "W64",
    "FLAC", "OGG", "AIFF", "CAF". ``-`` (stdout) is WAV. Raises OutputError otherwise."""
    if fmt:
        f = fmt.lower()
        if f not in FORMATS:
            raise OutputError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
        return f.upper()
    p = os.fspath(path)
    if p == "-":
        return "WAV"
    ext = os.path.splitext(p)[1].lower()
    if ext in (".wav", ".wave", ".rf64", ""):
        return "WAV"
    if ext in _SF_FORMATS:
        return _SF_FORMATS[ext]
    raise OutputError(f"{path}: unknown output format {ext!r} (use .wav, .w64, .flac, .ogg, "
                      f".aiff or .caf, or --format)")


def default_subtype(path, n_notes: int = 0, fmt: str | None = None) -> str:
    """Float for WAV/W64/CAF/AIFF when the input has more than FLOAT_NOTES notes (a dense mix
    peaks far above full scale), 16-bit otherwise; FLAC: 24-bit for such inputs; OGG/Vorbis
    is lossy (its samples are floats inside): "float"."""
    big = n_notes > FLOAT_NOTES
    c = container(path, fmt)
    if c == "FLAC":
        return "pcm24" if big else "pcm16"
    if c == "OGG":
        return "float"
    return "float" if big else "pcm16"


class _SoundFileWriter:
    def __init__(self, path, rate, subtype, fmt):
        try:
            import soundfile as sf
        except (ImportError, OSError) as e:
            raise OutputError(f"{path}: writing {fmt} needs the soundfile package "
                              f"(pip install soundfile): {e}") from None
        self.path = os.fspath(path)
        self.frames_written = 0
        sub = "VORBIS" if fmt == "OGG" else _SF_SUBTYPE[subtype]
        try:
            self._f = sf.SoundFile(self.path, "w", samplerate=int(rate), channels=2,
                                   format=fmt, subtype=sub)
        except (RuntimeError, ValueError, TypeError) as e:
            raise OutputError(f"{path}: cannot write {_NAMES[subtype]} {fmt}: {e}") from None

    def write(self, block):
        self._f.write(np.asarray(block, np.float32))
        self.frames_written += len(block)

    def close(self):
        self._f.close()


def check_writable(path, fmt: str | None = None, subtype: str | None = None):
    """Everything about an output that can be checked before rendering: the format, the
    subtype for it, soundfile for non-WAV formats, the directory. Raises OutputError."""
    c = container(path, fmt)
    if subtype is not None and subtype not in SUBTYPES:
        raise OutputError(f"sample format must be one of {', '.join(SUBTYPES)}, not {subtype!r}")
    if c == "FLAC" and subtype == "float":
        raise OutputError(f"{path}: FLAC holds integer samples only: use pcm16 or pcm24")
    if c == "OGG" and subtype not in (None, "float"):
        raise OutputError(f"{path}: OGG/Vorbis is lossy: --sample-format does not apply")
    if c != "WAV":
        try:
            import soundfile  # noqa: F401
        except (ImportError, OSError) as e:
            raise OutputError(f"{path}: writing {c} needs the soundfile package "
                              f"(pip install soundfile): {e}") from None
    p = os.fspath(path)
    if not is_stream(p):
        d = os.path.dirname(os.path.abspath(p))
        if not os.path.isdir(d):
            raise OutputError(f"{path}: cannot write: directory {d} does not exist")
        if not os.access(d, os.W_OK):
            raise OutputError(f"{path}: cannot write: directory {d} is not writable")
        if os.path.isdir(p):
            raise OutputError(f"{path}: is a directory")
    return c


def open_writer(path, rate: int, subtype: str | None = None, fmt: str | None = None):
    """A writer for ``path`` (format from its extension, or ``fmt``; ``-``: WAV to stdout).
    Raises OutputError (one line) for an unknown format or subtype, OSError when the file
    cannot be created."""
    c = check_writable(path, fmt, subtype)
    subtype = subtype or default_subtype(path, fmt=fmt)
    p = os.fspath(path)
    stream = is_stream(p)
    if stream and c != "WAV":
        raise OutputError(f"{path}: only WAV can be written to a pipe or device")
    if c == "WAV":
        from hostsink.outputs import WavFileOutput
        if p == "-":
            import sys
            w = WavFileOutput(sys.stdout.buffer, rate, subtype=subtype)
        elif stream:
            w = WavFileOutput(open(p, "wb"), rate, subtype=subtype)
        else:
            w = WavFileOutput(path, rate, subtype=subtype)
    else:
        w = _SoundFileWriter(path, rate, subtype, c)
    w.description = ("Ogg Vorbis" if c == "OGG" else f"{_NAMES[subtype]} {c}")
    w.subtype = subtype
    return w


class Normalizer:
    """Collects the render in a temporary float32 file, then writes ``target_db`` peak
    normalised audio through ``writer`` in ``finish()``. The gain applied is in ``gain_db``."""

    def __init__(self, out_path, target_db: float = -1.0):
        d = os.path.dirname(os.path.abspath(out_path))
        fd, self.tmp = tempfile.mkstemp(prefix=".gpusynth-", suffix=".f32", dir=d)
        self._f = os.fdopen(fd, "wb")
        self.target_db = float(target_db)
        self.peak = 0.0
        self.frames_written = 0
        self.gain_db = 0.0

    def write(self, block):
        b = np.ascontiguousarray(block, dtype="<f4")
        if len(b):
            self.peak = max(self.peak, float(np.max(np.abs(b))))
        self._f.write(b.tobytes())
        self.frames_written += len(b)

    def finish(self, writer, chunk: int = 1 << 16, progress=None):
        """Second pass: scale and write everything to ``writer`` (then closes it)."""
        self._f.close()
        gain = 10.0 ** (self.target_db / 20.0) / self.peak if self.peak > 0 else 1.0
        self.gain_db = 20.0 * np.log10(gain)
        try:
            n = self.frames_written
            with open(self.tmp, "rb") as f:
                for pos in range(0, n, chunk):
                    m = min(chunk, n - pos)
                    b = np.fromfile(f, dtype="<f4", count=2 * m).reshape(m, 2)
                    writer.write((b.astype(np.float64) * gain).astype(np.float32))
                    if progress:
                        progress(pos + m, n)
            writer.close()
        finally:
            self.discard()

    def discard(self):
        if not self._f.closed:
            self._f.close()
        try:
            os.unlink(self.tmp)
        except OSError:
            pass
