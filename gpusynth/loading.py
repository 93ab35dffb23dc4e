"""Loading what a render needs: a song from anything MIDI, a bank from a path or None, and a
song's streaming event source. Shared by gpusynth.rendering, gpusynth.api, gpusynth.ensemble,
gpusynth.batch and the CLI (which turns these errors into its one-line messages)."""
from __future__ import annotations

import io
import os

from .events import ArrayCursor


def load_midi(midi):
    """A ``gpusynth.smf.Song`` from a path, bytes, a Song, a mido.MidiFile or an object with
    ``write(file)`` (PrettyMIDI). A bad file raises gpusynth.smf.MidiFileError."""
    from .smf import load_smf, Song
    if isinstance(midi, Song):
        return midi
    if isinstance(midi, (str, os.PathLike)):
        return load_smf(os.fspath(midi))
    if isinstance(midi, (bytes, bytearray, memoryview)):
        return load_smf(bytes(midi))
    buf = io.BytesIO()
    if hasattr(midi, "save") and hasattr(midi, "tracks"):         # mido.MidiFile
        midi.save(file=buf)
    elif hasattr(midi, "write"):                                    # pretty_midi.PrettyMIDI
        midi.write(buf)
    else:
        raise TypeError(f"cannot read MIDI from {type(midi).__name__}: give a path, bytes, a "
                        "mido.MidiFile or an object with write(file)")
    return load_smf(buf.getvalue())


def load_bank_any(bank):
    """A Bank from a path, a Bank (returned as is) or None (the built-in GM bank). A bad file
    raises gpusynth.banks.BankError."""
    if bank is None:
        from .banks.builtin import load_builtin
        return load_builtin()
    if hasattr(bank, "regions"):
        return bank
    from .banks import load_bank
    return load_bank(os.fspath(bank))


def song_source(song, rate: int):
    """A streaming event source for ``song``: its cursor (gpusynth.smf) or, for an object that
    only has ``events(rate)``/``sysex``, an ArrayCursor over them."""
    if hasattr(song, "cursor"):
        return song.cursor(rate)
    return ArrayCursor(song.events(rate), getattr(song, "sysex", None))


def song_groups(song) -> int:
    """The channel groups a song needs (its ports; 2 when it does not say)."""
    return max(1, int(getattr(song, "channel_groups", 2) or 2))
