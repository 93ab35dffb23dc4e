"""Short generated General MIDI songs for the ensemble tests (tests/unit/test_ensemble*.py)."""
import numpy as np

from gpusynth.smf import tempo_meta, write_smf


def song(seed, seconds=2.0, channels=3, drums=True, extra=()):
    """A short GM song: ``channels`` melodic parts (random programs, steps, keys), a drum part,
    pitch bends and volume changes; 120 bpm, ppq 480 (960 ticks per second)."""
    rng = np.random.default_rng(seed)
    beats = max(1, int(seconds * 2))
    tracks = []
    for c in range(channels):
        tr = [(0, tempo_meta(500000)), (0, bytes([0xC0 | c, int(rng.integers(0, 100))])),
              (0, bytes([0xB0 | c, 7, int(rng.integers(70, 127))])),
              (0, bytes([0xB0 | c, 91, int(rng.integers(0, 127))]))]
        step = int(rng.choice([120, 240, 480]))
        for t in range(0, beats * 480, step):
            k = int(rng.integers(40, 84))
            tr += [(t, bytes([0x90 | c, k, int(rng.integers(50, 120))])),
                   (t + step - 10, bytes([0x80 | c, k, 0]))]
        tr.append((beats * 240, bytes([0xE0 | c, 0, int(rng.integers(40, 90))])))
        tracks.append(tr)
    if drums:
        dr = []
        for t in range(0, beats * 480, 240):
            k = int(rng.choice([36, 38, 42, 46]))
            dr += [(t, bytes([0x99, k, 100])), (t + 60, bytes([0x89, k, 0]))]
        tracks.append(dr)
    tracks[0] += list(extra)
    return write_smf(None, tracks)
