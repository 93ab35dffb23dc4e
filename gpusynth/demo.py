"""The bundled demo song: a deterministic 16-channel General MIDI arrangement (about 4,000
notes, 70 s), generated in code so the main job needs no file. `gpusynth render --demo`."""
from __future__ import annotations

import numpy as np

PPQ = 480
BARS = 48
BPM = 112
# (program, pan, volume, reverb) per channel; channel 9 is drums
CHANNELS = {
    0: (0, 50, 100, 40),     # acoustic grand: arpeggios + sustain pedal
    1: (33, 64, 110, 10),    # electric bass (finger)
    2: (48, 30, 80, 70),     # string ensemble pad (mod wheel)
    3: (61, 90, 85, 40),     # brass section stabs
    4: (73, 70, 95, 50),     # flute melody
    5: (11, 100, 70, 50),    # vibraphone
    6: (16, 20, 60, 30),     # drawbar organ
    7: (24, 40, 80, 30),     # nylon guitar 16ths
    8: (80, 84, 75, 40),     # square lead countermelody (pitch bends)
    10: (88, 64, 55, 90),    # new age pad
    11: (65, 44, 85, 40),    # alto sax answer phrases
    12: (12, 96, 70, 30),    # marimba ostinato
    13: (104, 24, 70, 40),   # sitar fills
    14: (47, 64, 90, 60),    # timpani on section starts
    15: (98, 110, 60, 80),   # crystal sparkles
}
PROGRESSION = [(48, "maj"), (45, "min"), (41, "maj"), (43, "maj"),
               (40, "min"), (45, "min"), (38, "min"), (43, "maj")]
SCALE = [0, 2, 4, 5, 7, 9, 11]


def _triad(root, q):
    return [root, root + (4 if q == "maj" else 3), root + 7]


def demo_tracks():
    rng = np.random.default_rng(20261124)
    bar = 4 * PPQ
    e8, e16 = PPQ // 2, PPQ // 4
    tracks = {c: [] for c in range(16)}

    def note(ch, tick, key, vel, dur):
        key = int(min(max(key, 0), 127))
        tracks[ch].append((tick, bytes([0x90 | ch, key, int(vel)])))
        tracks[ch].append((tick + max(int(dur), 1), bytes([0x80 | ch, key, 0])))

    def cc(ch, tick, num, val):
        tracks[ch].append((tick, bytes([0xB0 | ch, num, int(val)])))

    for ch, (prog, pan, vol, rev) in CHANNELS.items():
        tracks[ch].append((0, bytes([0xC0 | ch, prog])))
        cc(ch, 0, 7, vol)
        cc(ch, 0, 10, pan)
        cc(ch, 0, 91, rev)
    cc(9, 0, 7, 110)
    melody_prev = 72
    for b in range(BARS):
        t = b * bar
        root, q = PROGRESSION[b % 8]
        tri = _triad(root, q)
        section = (b // 8) % 4 if b < 32 else 3 - (b // 4) % 2
        # piano arpeggio, pedal per bar
        cc(0, t, 64, 127)
        cc(0, t + bar - 10, 64, 0)
        arp = [tri[0] + 12, tri[1] + 12, tri[2] + 12, tri[0] + 24]
        for i in range(8):
            note(0, t + i * e8, arp[[0, 1, 2, 3, 2, 1, 2, 3][i]], 70 + 10 * (i % 2 == 0), e8)
        # bass
        for i in range(8):
            k = root - 12 + (12 if i in (3, 7) else 0) + (7 if i == 6 else 0)
            note(1, t + i * e8, k, 100 if i % 4 == 0 else 80, e8 - 20)
        # strings pad with mod wheel swell
        for k in tri:
            note(2, t, k + 12, 70, bar - 10)
        cc(2, t, 1, 0)
        cc(2, t + bar // 2, 1, 60)
        # brass stabs from section 2
        if section >= 1 and b % 2 == 1:
            for pos in (int(1.5 * PPQ), 3 * PPQ):
                for k in tri:
                    note(3, t + pos, k + 12, 95, e8)
        # flute melody: chord tones and passing notes
        if section in (1, 3):
            ticks = 0
            while ticks < bar:
                dur = int(rng.choice([e8, e8, PPQ, PPQ + e8]))
                cands = [k + 24 for k in tri] + [melody_prev + d for d in (-2, -1, 1, 2)]
                k = int(min(cands, key=lambda x: abs(x - melody_prev) + rng.random() * 4))
                k = max(min(k, 88), 67)
                note(4, t + ticks, k, 90, dur - 10)
                melody_prev = k
                ticks += dur
        # vibraphone quarters
        for i in range(4):
            note(5, t + i * PPQ, tri[i % 3] + 24, 65, PPQ)
        # organ half notes in sections 0 and 2
        if section in (0, 2):
            for h in (0, 2 * PPQ):
                for k in tri:
                    note(6, t + h, k + 12, 60, 2 * PPQ - 20)
        # guitar 16ths
        pat = [0, 1, 2, 1, 0, 2, 1, 2, 0, 1, 2, 1, 0, 2, 1, 2]
        for i in range(16):
            note(7, t + i * e16, tri[pat[i]] + 12, 60 + (15 if i % 4 == 0 else 0), e16)
        # square lead countermelody with bends in the second half
        if section >= 2:
            for i in range(4):
                k = tri[(i + b) % 3] + 24
                note(8, t + i * PPQ, k, 80, PPQ - 30)
            tracks[8].append((t + 3 * PPQ, bytes([0xE8, 0x00, 0x50])))
            tracks[8].append((t + 3 * PPQ + e8, bytes([0xE8, 0x00, 0x40])))
        # drums
        for i in range(8):
            note(9, t + i * e8, 42 if i % 4 != 3 else 46, 70 + 20 * (i % 2 == 0), e16)
        for i in (0, 4, 5):
            note(9, t + i * e8, 36, 110, e8)
        for i in (2, 6):
            note(9, t + i * e8, 38, 100, e8)
        if b % 8 == 0:
            note(9, t, 49, 110, bar)
        if b % 4 == 3:
            for i in range(4):
                note(9, t + 3 * PPQ + i * e16, [50, 48, 45, 43][i], 100, e16)
        # pad
        if section >= 1:
            for k in tri:
                note(10, t, k, 60, bar - 10)
        # sax answers
        if section in (2, 3) and b % 2 == 0:
            for i, d in enumerate([0, 2, 4, 2, 0]):
                note(11, t + 2 * PPQ + i * e8, tri[0] + 12 + d, 85, e8)
        # marimba ostinato
        for i in range(16):
            note(12, t + i * e16, tri[(i * 2) % 3] + 36, 55, e16)
        # sitar fill at the end of each 4 bars
        if b % 4 == 3:
            for i in range(8):
                note(13, t + 2 * PPQ + i * e16, root + 24 + SCALE[(i * 3) % 7], 80, e16)
        # timpani on section starts
        if b % 8 == 0:
            for i in range(4):
                note(14, t + i * e16, root - 12, 90 - 10 * i, e16)
        # crystal sparkles
        if b % 2 == 0:
            note(15, t + PPQ, tri[2] + 36, 60, PPQ)
    tempo = (0, b"\xff\x51\x03" + int(60_000_000 // BPM).to_bytes(3, "big"))
    return [[tempo]] + [tracks[c] for c in range(16)]


def demo_midi_bytes() -> bytes:
    from .smf import write_smf
    return write_smf(None, demo_tracks(), ppq=PPQ, fmt=1)


def demo_song():
    from .smf import load_smf
    return load_smf(demo_midi_bytes())
