"""Peer check: the same generated MIDI rendered by FluidSynth and by gpusynth with the same bank.

Compared (measures in tests/support/peer_util.py):
- per-note onsets within 1 ms: the first frame whose envelope rises above ONSET_DB relative to
  the note's peak, in each render independently. Nothing is aligned except FluidSynth's fixed
  voice latency of one 64-frame block (FS_VOICE_LATENCY = 1.333 ms at 48 kHz): FluidSynth renders
  in FLUID_BUFSIZE blocks and a note-on sent by its player at a block start sounds from the next
  block. The notes are placed on block boundaries, so the latency is the same for every note; the
  test measures it per note (cross-correlation of the two waveforms, which play the same sample
  data) and requires it to be 64 +- 2 frames before subtracting it.
- per-note pitch within 3 cents on sustained instruments (same harmonic in both, FFT with Hann
  window, 8x zero padding, parabolic interpolation, steady part: 150 ms after the note-on to
  the note-off),
- the RMS envelope in 50 ms frames of a short multi-instrument phrase: Pearson correlation of
  the *dB* envelopes (each floored at 60 dB below its own maximum) >= 0.9; the linear-envelope
  correlation is reported too.

Banks: TimGM6mb (SF2) for all three; the csound GM bank's DLS conversion (testdata
sf_GMbank.dls) through FluidSynth's DLS loader (libinstpatch) for onsets and pitch only
(FluidSynth's DLS path ignores articulation, see testdata/README.md), where gpusynth's delay and
attack are zeroed for the onset comparison and onsets use a -30 dB threshold; and sf_GMbank.sf2 (Debian csound-soundfont) vs sf_GMbank.dls, both through gpusynth.
"""
import numpy as np
import pytest

from peer_util import (DLS_DIR, FS_VOICE_LATENCY, RATE, TIMGM, build_song, cents, csound_sf2,
                       fluidsynth_path, key_hz, onset, pearson, pitch_hz, render_fluidsynth,
                       render_gpusynth, rms_frames, strongest_harmonic, waveform_lag,
                       without_short_leadins)

if fluidsynth_path() is None:
    pytest.skip("fluidsynth is not installed (Debian package 'fluidsynth', see "
                "scripts/install-deps.sh)", allow_module_level=True)

# FluidSynth renders in module fixtures: the whole file on one worker, so they run once
pytestmark = [pytest.mark.peer, pytest.mark.slow, pytest.mark.xdist_group("peer")]

DLS = DLS_DIR / "sf_GMbank.dls"
ONSET_DB = -20.0          # onset threshold relative to the note's peak
ONSET_TOL_MS = 1.0
# DLS through FluidSynth: its DLS path ignores all articulation, filters included (the DLS
# flute has a 3.6 kHz low-pass that FluidSynth skips), so the rise to the peak has another
# shape; a lower threshold keeps the onset on the first rise: -20 dB gave +3.5 ms on the flute
# (shape, not timing), -30 dB gives <= 0.46 ms on every note.
DLS_ONSET_DB = -30.0
PITCH_TOL_CENTS = 3.0
ENV_MIN_CORR = 0.9
FRAME = int(0.050 * RATE)

# --------------------------------------------------------------------------- the songs
# Separated notes: one channel per melodic program, then GM drums. Each note 600 ms (drums
# 200 ms), one every 1,200 ms; start times are multiples of 120 ms (FluidSynth block aligned).
MELODIC = [(0, 60), (19, 67), (40, 64), (56, 62), (73, 72), (24, 55), (71, 58), (33, 40)]
DRUMS = [36, 38, 42]
SUSTAINED = {19, 40, 56, 73, 71}      # programs whose pitch is measured (plus piano/guitar/bass)


def _notes_song():
    notes, progs = [], {9: 0}
    t = 240
    for ch, (prog, key) in enumerate(MELODIC):
        progs[ch] = prog
        notes.append((t, 600, ch, key, 100))
        t += 1200
    for key in DRUMS:
        notes.append((t, 200, 9, key, 100))
        t += 1200
    return build_song(notes, progs), notes, progs


def _phrase_song():
    """About 4 s: piano chords, bass, a flute line and drums (kick, snare, closed hat)."""
    progs = {0: 0, 1: 33, 2: 73, 9: 0}
    notes = []
    q = 480                                     # quarter note in ms
    for bar, root in enumerate((60, 57, 53, 55)):
        t0 = 240 + bar * 4 * q // 2             # two quarters per chord
        for k in (root, root + 4 if bar % 2 == 0 else root + 3, root + 7):
            notes.append((t0, 2 * q - 120, 0, k, 90))
        notes.append((t0, q - 60, 1, root - 24, 100))
        notes.append((t0 + q, q - 60, 1, root - 17, 90))
    for i, k in enumerate((72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74)):
        notes.append((240 + i * q * 2 // 3 // 120 * 120, 300, 2, k, 80 + 3 * (i % 3)))
    for i in range(16):
        t = 240 + i * 240
        notes.append((t, 100, 9, 42, 70))
        if i % 4 == 0:
            notes.append((t, 150, 9, 36, 110))
        if i % 4 == 2:
            notes.append((t, 150, 9, 38, 100))
    return build_song(notes, progs), notes, progs


NOTES_MIDI, NOTES, PROGS = _notes_song()
PHRASE_MIDI, _, _ = _phrase_song()


def _label(n, progs):
    s, d, c, k, v = n
    return f"drum key {k}" if c == 9 else f"program {progs[c]} key {k}"


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def timgm():
    if not TIMGM.exists():
        pytest.skip(f"{TIMGM} not found (Debian package 'timgm6mb-soundfont')")
    return TIMGM


@pytest.fixture(scope="module")
def timgm_notes(timgm):
    """fluidsynth, gpusynth, gpusynth with sub-block envelope lead-ins removed (FluidSynth's
    effective envelope, see peer_util.without_short_leadins)."""
    return (render_fluidsynth(NOTES_MIDI, timgm), render_gpusynth(NOTES_MIDI, str(timgm)),
            render_gpusynth(NOTES_MIDI, without_short_leadins(timgm)))


@pytest.fixture(scope="module")
def dls_bank():
    if not DLS.exists():
        pytest.skip(f"{DLS} not found (shared test data)")
    from gpusynth.banks import load_bank
    return load_bank(DLS)


@pytest.fixture(scope="module")
def dls_notes(dls_bank):
    """fluidsynth, gpusynth, gpusynth without any volume-envelope delay/attack (FluidSynth's DLS
    path ignores articulation: its notes start at full level)."""
    return (render_fluidsynth(NOTES_MIDI, DLS), render_gpusynth(NOTES_MIDI, dls_bank),
            render_gpusynth(NOTES_MIDI, without_short_leadins(dls_bank, block=None)))


# --------------------------------------------------------------------------- measures

def onset_errors(fs, gs, notes, thr_db=ONSET_DB):
    """[(label, fluidsynth onset ms, gpusynth onset ms, error ms, latency frames, corr)]:
    onsets relative to the scheduled time; error = gpusynth - (fluidsynth - FS_VOICE_LATENCY)."""
    rows = []
    for n in notes:
        t = int(round(n[0] * RATE / 1000))
        lag, corr = waveform_lag(fs, gs, t)
        of, _, pre_f = onset(fs, t, thr_db)
        og, _, pre_g = onset(gs, t, thr_db)
        assert pre_f < thr_db - 10 and pre_g < thr_db - 10, \
            f"{_label(n, PROGS)}: the previous note has not decayed ({pre_f:.0f}/{pre_g:.0f} dB)"
        err = (og - (of - FS_VOICE_LATENCY)) * 1000.0 / RATE
        rows.append((_label(n, PROGS), (of - t) * 1e3 / RATE, (og - t) * 1e3 / RATE, err, lag, corr))
    return rows


def pitch_errors(a, b, notes, progs):
    """[(label, harmonic, a cents, b cents vs equal temperament, b - a cents)] on melodic notes."""
    rows = []
    for n in notes:
        s, d, c, k, v = n
        if c == 9:
            continue
        t = int(round(s * RATE / 1000))
        seg = slice(t + int(0.150 * RATE), t + int(d * RATE / 1000))
        f0 = key_hz(k)
        h = strongest_harmonic(b[seg], f0)
        fa, fb = pitch_hz(a[seg], f0, h), pitch_hz(b[seg], f0, h)
        rows.append((_label(n, progs), h, cents(fa, f0), cents(fb, f0), cents(fb, fa)))
    return rows


def _report(title, rows, fmt):
    print(f"\n{title}")
    for r in rows:
        print("  " + fmt.format(*r))


ONSET_FMT = "{:<22} fs {:7.3f} ms  gs {:7.3f} ms  err {:+6.3f} ms  (fs lag {} frames, r={:.3f})"
PITCH_FMT = "{:<22} h{}  ref {:+7.2f} c  gs {:+7.2f} c  diff {:+6.2f} c"


# --------------------------------------------------------------------------- SF2: TimGM6mb

def test_timgm_fluidsynth_latency_is_one_block(timgm_notes):
    """The only offset the onset test subtracts: measured on each note, not fitted."""
    fs, gs, _ = timgm_notes
    rows = onset_errors(fs, gs, NOTES)
    for label, _, _, _, lag, corr in rows:
        if corr > 0.95:             # tonal notes; noise-like sounds (hi-hat) do not correlate
            assert abs(lag - FS_VOICE_LATENCY) <= 2, (label, lag, corr)
    assert sum(r[5] > 0.95 for r in rows) >= len(rows) - 2


def test_timgm_onsets(timgm_notes):
    fs, gs_spec, gs = timgm_notes
    _report("TimGM6mb onsets, unmodified bank (SF2 default 1 ms delay + 1 ms attack kept; "
            "not asserted)", onset_errors(fs, gs_spec, NOTES), ONSET_FMT)
    rows = onset_errors(fs, gs, NOTES)
    _report("TimGM6mb onsets (fluidsynth vs gpusynth, sub-block lead-ins removed)", rows, ONSET_FMT)
    bad = [r for r in rows if abs(r[3]) > ONSET_TOL_MS]
    assert not bad, bad


def test_timgm_pitch(timgm_notes):
    fs, gs, _ = timgm_notes
    rows = pitch_errors(fs, gs, NOTES, PROGS)
    _report("TimGM6mb pitch (cents vs equal temperament)", rows, PITCH_FMT)
    bad = [r for r in rows if abs(r[4]) > PITCH_TOL_CENTS]
    assert not bad, bad


def test_timgm_rms_envelope(timgm):
    fs = render_fluidsynth(PHRASE_MIDI, timgm)
    gs = render_gpusynth(PHRASE_MIDI, str(timgm))
    n = min(len(fs), len(gs))
    ef, eg = rms_frames(fs[:n], FRAME), rms_frames(gs[:n], FRAME)
    lin = pearson(ef, eg)
    df = 20 * np.log10(np.maximum(ef, ef.max() * 1e-3))
    dg = 20 * np.log10(np.maximum(eg, eg.max() * 1e-3))
    db = pearson(df, dg)
    level = 20 * np.log10(np.sqrt(np.mean(ef ** 2)) / np.sqrt(np.mean(eg ** 2)))
    print(f"\nTimGM6mb phrase, {len(ef)} frames of 50 ms: Pearson dB {db:.4f}, linear {lin:.4f}, "
          f"fluidsynth - gpusynth level {level:+.2f} dB")
    assert db >= ENV_MIN_CORR, (db, lin)
    # same bank, gain 1.0 on both sides: the loudness agrees within 2 dB (measured +1.2 dB dry,
    # -0.7 dB with our effects on; a pan-law, attenuation or gain slip shows up as 3-6 dB)
    assert abs(level) < 2.0, level


# --------------------------------------------------------------------------- filter modulation
# Presets whose sound is shaped by the modulation envelope / LFO on the filter cutoff (TimGM6mb:
# 101 Goblins: mod-env delay + 6 s attack, +5737 c, two layers with q 4 and 19 dB; 119 Reverse
# Cymbal: 200 Hz cutoff opened +7087 c by a 1.2-5 s attack; 125 Helicopter: +3037 c mod env and a
# +-1277 c mod LFO). Dry renders (FluidSynth -R 0 -C 0, gpusynth effects off) of one 2 s note at
# keys 48, 60 and 72; the median over third-octave bands (25 Hz - 16 kHz, within 60 dB of the
# loudest) of |gpusynth - FluidSynth| must stay within FILTER_SPEC_TOL_DB. Measured before the
# fix (linear mod-env attack, velocity->cutoff default applied, no 1/sqrt(Q) filter gain):
# 101: 6.7-15 dB, 119: 3.8-8.6 dB (level -19 dB), 125: 1.3-1.9 dB; after: 0.32-0.47 dB.
FILTER_SPEC_TOL_DB = 3.0
FILTER_PRESETS = (101, 119, 125)


@pytest.mark.parametrize("program", FILTER_PRESETS)
def test_timgm_filter_modulation_spectrum(timgm, program):
    from peer_util import spectral_difference
    rows = []
    for key in (48, 60, 72):
        midi = build_song([(240, 2000, 0, key, 100)], {0: program})
        fs = render_fluidsynth(midi, timgm)
        gs = render_gpusynth(midi, timgm)          # dry, as render_fluidsynth
        med, d, ok = spectral_difference(fs, gs)
        rows.append((key, med, float(np.max(np.abs(d[ok])))))
    _report(f"TimGM6mb program {program}: third-octave |gpusynth - fluidsynth| (dry)", rows,
            "key {}: median {:.2f} dB, max {:.1f} dB")
    assert all(r[1] <= FILTER_SPEC_TOL_DB for r in rows), rows


# --------------------------------------------------------------------------- DLS via FluidSynth

def test_dls_onsets(dls_notes):
    fs, gs_art, gs = dls_notes
    _report("sf_GMbank.dls onsets, gpusynth with its articulation (not asserted)",
            onset_errors(fs, gs_art, NOTES, DLS_ONSET_DB), ONSET_FMT)
    rows = onset_errors(fs, gs, NOTES, DLS_ONSET_DB)
    _report("sf_GMbank.dls onsets (fluidsynth/libinstpatch vs gpusynth)", rows, ONSET_FMT)
    bad = [r for r in rows if abs(r[3]) > ONSET_TOL_MS]
    assert not bad, bad


def test_dls_pitch(dls_notes):
    fs, gs, _ = dls_notes
    rows = pitch_errors(fs, gs, NOTES, PROGS)
    _report("sf_GMbank.dls pitch (cents vs equal temperament)", rows, PITCH_FMT)
    bad = [r for r in rows if abs(r[4]) > PITCH_TOL_CENTS]
    assert not bad, bad


# --------------------------------------------------------------------------- SF2 vs its DLS, both gpusynth

@pytest.fixture(scope="module")
def csound_pair(dls_bank):
    sf2 = csound_sf2()
    if sf2 is None:
        pytest.skip("sf_GMbank.sf2 not found (Debian package 'csound-soundfont')")
    # SF2's default delay/attack (0.98 ms each) become DLS's default 0 in the conversion:
    # compare both without sub-block lead-ins (see peer_util.without_short_leadins)
    return (render_gpusynth(NOTES_MIDI, without_short_leadins(sf2)),
            render_gpusynth(NOTES_MIDI, without_short_leadins(dls_bank)))


def test_csound_sf2_vs_dls_onsets(csound_pair):
    a, b = csound_pair
    rows = []
    for n in NOTES:
        t = int(round(n[0] * RATE / 1000))
        oa, _, _ = onset(a, t, ONSET_DB)
        ob, _, _ = onset(b, t, ONSET_DB)
        rows.append((_label(n, PROGS), (oa - t) * 1e3 / RATE, (ob - t) * 1e3 / RATE,
                     (ob - oa) * 1e3 / RATE, 0, 1.0))
    _report("sf_GMbank.sf2 vs .dls onsets (both gpusynth; 'fs' = SF2)", rows, ONSET_FMT)
    bad = [r for r in rows if abs(r[3]) > ONSET_TOL_MS]
    assert not bad, bad


def test_csound_sf2_vs_dls_pitch(csound_pair):
    a, b = csound_pair
    rows = pitch_errors(a, b, NOTES, PROGS)
    _report("sf_GMbank.sf2 vs .dls pitch (both gpusynth; 'ref' = SF2)", rows, PITCH_FMT)
    bad = [r for r in rows if abs(r[4]) > PITCH_TOL_CENTS]
    assert not bad, bad


# --------------------------------------------------------------------------- effects on (both)
# FluidSynth with its default reverb and chorus (no -R 0 -C 0), gpusynth with its defaults
# (effects on, FluidSynth's parameters). FluidSynth's CC91 default is 0 (GM's and ours: 40):
# the generated songs set CC91/CC93 explicitly; the real song plays as its author wrote it.
SONG = DLS_DIR.parent / "midi" / "sonivox" / "ants.mid"
FX_ENV_MIN_CORR = 0.97
FX_DECAY_TOL = 0.25


def test_timgm_song_loudness_envelope_with_effects(timgm):
    if not SONG.exists():
        pytest.skip(f"{SONG} not found (shared test data)")
    from peer_util import render_fluidsynth as rfs, render_gpusynth as rgs
    midi = SONG.read_bytes()
    fs, gs = rfs(midi, timgm, effects=True), rgs(midi, str(timgm), effects=True)
    n = min(len(fs), len(gs))
    ef, eg = rms_frames(fs[:n], FRAME), rms_frames(gs[:n], FRAME)
    lin = pearson(ef, eg)
    db = pearson(20 * np.log10(np.maximum(ef, ef.max() * 1e-3)),
                 20 * np.log10(np.maximum(eg, eg.max() * 1e-3)))
    level = 20 * np.log10(np.sqrt(np.mean(ef ** 2)) / np.sqrt(np.mean(eg ** 2)))
    print(f"\n{SONG.name} with effects, {len(ef)} frames of 50 ms: Pearson linear {lin:.4f}, "
          f"dB {db:.4f}, fluidsynth - gpusynth level {level:+.2f} dB")
    assert lin >= FX_ENV_MIN_CORR and db >= FX_ENV_MIN_CORR, (lin, db)


def test_timgm_phrase_rms_envelope_with_effects(timgm):
    from peer_util import render_fluidsynth as rfs, render_gpusynth as rgs
    midi = build_song(*_phrase_song()[1:], cc={91: 40, 93: 0})
    fs, gs = rfs(midi, timgm, effects=True), rgs(midi, str(timgm), effects=True)
    n = min(len(fs), len(gs))
    ef, eg = rms_frames(fs[:n], FRAME), rms_frames(gs[:n], FRAME)
    db = pearson(20 * np.log10(np.maximum(ef, ef.max() * 1e-3)),
                 20 * np.log10(np.maximum(eg, eg.max() * 1e-3)))
    print(f"\nTimGM6mb phrase with effects (CC91 40): Pearson dB {db:.4f}, "
          f"linear {pearson(ef, eg):.4f}")
    assert db >= FX_ENV_MIN_CORR


@pytest.mark.parametrize("program,key,dur", [(0, 60, 100), (13, 72, 80), (115, 60, 60)])
def test_timgm_reverb_tail_and_level_match_fluidsynth(timgm, program, key, dur):
    """A short note with CC91 127 (CC93 0): the tail after the dry note has died away decays
    at FluidSynth's rate (default room 0.2) within 25 %, and the wet/dry energy (each engine
    against its own dry render) agrees within 2 dB."""
    from peer_util import (power, render_fluidsynth as rfs, render_gpusynth as rgs,
                           tail_decay_db_per_s, wet_to_dry_db)
    midi = build_song([(240, dur, 0, key, 100)], {0: program}, cc={91: 127, 93: 0})
    rows = []
    for name, r, b in (("fluidsynth", rfs, timgm), ("gpusynth", rgs, str(timgm))):
        wet, dry = r(midi, b, effects=True), r(midi, b, effects=False)
        # the tail: from where the dry render is 60 dB below its peak (after the peak)
        e = np.sqrt(power(dry))
        pk = int(np.argmax(e))
        after = pk + int(np.argmax(e[pk:] < e[pk] * 1e-3)) + 960
        slope, resid = tail_decay_db_per_s(wet, after)
        rows.append((name, slope, -60.0 / slope, resid, wet_to_dry_db(wet, dry)))
    _report(f"TimGM6mb program {program} key {key}, {dur} ms, CC91 127: reverb tail", rows,
            "{:<10} {:6.1f} dB/s (RT60 {:.3f} s, residual {:.2f} dB), wet/dry {:+.2f} dB")
    (_, sf, _, _, wf), (_, sg, _, rg, wg) = rows
    assert abs(sg / sf - 1) <= FX_DECAY_TOL
    assert abs(wg - wf) <= 2.0
