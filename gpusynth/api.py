"""Render MIDI to numpy arrays: ``gpusynth.render`` and the reusable ``Renderer`` session.

    import gpusynth, mido
    audio = gpusynth.render(mido.MidiFile("song.mid"))          # float32 (frames, 2), 48 kHz

``midi`` may be a path, the file's bytes, a parsed ``gpusynth.smf.Song``, a ``mido.MidiFile``
(anything with ``save(file=...)``) or any object with a ``write(file)`` method (pretty_midi's
``PrettyMIDI``); ``bank`` a path (SF2/SF3/DLS), a loaded ``gpusynth.banks.Bank``, or None for
the built-in General MIDI bank. A ``Renderer`` keeps the loaded bank and one opened synth
(its compiled backend, its merged preset table) across calls, so each further song costs its
render alone; every song starts from a freshly opened synth, so its audio is the same bits as
``gpusynth.rendering.render_song`` and ``gpusynth render`` with the same settings (one render
path: the same frames, length included), whatever was rendered before it. Settings: a
``gpusynth.Settings`` and/or any of its fields by name (``rate=44100, reverb=False``).

Stems (``stems="channel" | "program" | "track"``): a dict name -> float32 (frames, 2), every
stem as long as the mix. Each stem is the same render as the mix (same events, same host
decisions: allocation and stealing never look at the audio) with every voice outside the stem
attenuated by MUTE_CB at upload (the synth's ``upload_hook``), which makes its fixed-point
contribution exactly 0; the mix is
the exact integer sum of the voices' contributions, so the stems' integer sums add up to the
mix's exactly and the float stems sum to the mix within float rounding (the gain scaling and
the reverb/chorus, which are linear, run per stem). Cost: one render per stem. A voice's stem:
``channel`` its MIDI channel ("ch01".."ch16", "g2-ch01".. for further channel groups);
``program`` the program its channel had at its note-on ("drums" on channel 10 of a group,
else "p000".."p127" plus the GM name); ``track`` the track of its note-on ("t00", "t01"..,
plus the track name when there is one).
"""
from __future__ import annotations

import re

import numpy as np

from .ensemble import Ensemble
from .loading import load_bank_any, load_midi, song_source
from .progress import RenderProgress
from .rendering import END_STEP, render_opened, reopen
from .settings import Settings
from .synth import Synth

__all__ = ["render", "Renderer", "load_midi", "load_bank_any", "STEM_KINDS", "MUTE_CB"]

# attenuation (cB) added to a voice outside the stem being rendered: the gain clamps at 2^-127
# (gs_exp2), far below half a fixed-point step for any finite voice
MUTE_CB = 30000.0
STEM_KINDS = ("channel", "program", "track")


def _gm_name(p: int) -> str:
    try:
        from .banks.builtin import GM_NAMES
        return GM_NAMES[p]
    except Exception:
        return ""


def _safe(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-._")
    return s[:40]


class _StemMap:
    """Which stem each voice belongs to: ``names`` (in order) and ``label(synth, slots)`` ->
    index into names for newly uploaded voices (from the allocator's host control arrays)."""

    def __init__(self, song, kind: str, rate: int):
        if kind not in STEM_KINDS:
            raise ValueError(f"stems must be one of {', '.join(STEM_KINDS)}, not {kind!r}")
        self.kind = kind
        from .events import NOTE_ON, PROGRAM
        a = song.arrays()
        secs, chan, st = a["seconds"], a["chan"].astype(np.int64), a["status"]
        d1, d2, trk = a["data1"].astype(np.int64), a["data2"], a["track"].astype(np.int64)
        t = np.round(secs * float(rate)).astype(np.int64)
        on = (st == NOTE_ON) & (d2 > 0)
        if kind == "channel":
            used = np.unique(chan[on])
            multi = bool(np.any(used >= 16))
            self.names = [(f"g{c // 16 + 1}-" if multi else "") + f"ch{c % 16 + 1:02d}"
                          for c in used.tolist()]
            self._lut = np.zeros(max(int(used.max()) + 1 if len(used) else 1, 1), np.int64)
            self._lut[used] = np.arange(len(used))
        elif kind == "program":
            # per channel: program change times (sorted) and values; default program 0
            pc = st == PROGRAM
            order = np.lexsort((t[pc], chan[pc]))
            self._pc = (chan[pc][order], t[pc][order], d1[pc][order])
            prog = self._programs(chan[on], t[on])
            keys = np.where(chan[on] % 16 == 9, -1, prog)
            used = np.unique(keys)
            self.names = [("drums" if k < 0 else f"p{k:03d}" + (f"-{_safe(_gm_name(k))}"
                                                                 if _gm_name(k) else ""))
                          for k in used.tolist()]
            self._keys = used
        else:
            names = song.track_names()
            used = np.unique(trk[on])
            self.names = [f"t{k:02d}" + (f"-{_safe(names[k])}" if _safe(names.get(k, "")) else "")
                          for k in used.tolist()]
            self._keys = used
            # note-ons by (chan, key, time) -> track; per channel the most frequent track
            self._on = {}
            for c, k, tt, tr in zip(chan[on].tolist(), d1[on].tolist(), t[on].tolist(),
                                    trk[on].tolist()):
                self._on.setdefault((c, k, tt), tr)
            self._chan_track = {}
            for c in np.unique(chan[on]).tolist():
                v, n = np.unique(trk[on][chan[on] == c], return_counts=True)
                self._chan_track[c] = int(v[np.argmax(n)])
        if not self.names:
            self.names = ["silence"]

    def _programs(self, ch, t):
        pch, pt, pv = self._pc
        out = np.zeros(len(ch), np.int64)
        for c in np.unique(ch).tolist():
            m = ch == c
            sel = pch == c
            if not np.any(sel):
                continue
            i = np.searchsorted(pt[sel], t[m], side="right") - 1
            out[m] = np.where(i >= 0, pv[sel][np.maximum(i, 0)], 0)
        return out

    def label(self, synth, slots, records) -> np.ndarray:
        slots = np.asarray(slots, np.int64)
        chan = records["chan"].astype(np.int64)
        if self.kind == "channel":
            c = np.clip(chan, 0, len(self._lut) - 1)
            return self._lut[c]
        if self.kind == "program":
            prog = self._programs(chan, records["start"].astype(np.int64))
            keys = np.where(chan % 16 == 9, -1, prog)
            i = np.searchsorted(self._keys, keys)
            return np.clip(i, 0, len(self._keys) - 1)
        key = synth.control.voice_keys(slots).astype(np.int64)
        tr = [self._on.get((c, k, s), self._chan_track.get(c, int(self._keys[0])))
              for c, k, s in zip(chan.tolist(), key.tolist(), records["start"].tolist())]
        i = np.searchsorted(self._keys, np.asarray(tr, np.int64))
        return np.clip(i, 0, len(self._keys) - 1)


class Renderer:
    """A rendering session: the bank is loaded once and one synth stays open across songs.

    ``Renderer(bank=None, settings=None, *, chunk=END_STEP, progress=False, **overrides)``
    (``chunk``: frames per render call, a speed knob; the audio does not depend on it):
    ``settings`` a gpusynth.Settings (default ``Settings()``), ``overrides`` any of its fields
    by name. ``render(midi, stems=None)`` -> float32 (frames, 2) or a dict of stems; ``stats``
    holds the last render's statistics (gpusynth.rendering.summarize). ``progress``: a tqdm
    bar per song (in a notebook, a widget)."""

    def __init__(self, bank=None, settings: Settings | None = None, *, chunk: int = END_STEP,
                 progress: bool = False, **overrides):
        self.settings = Settings.of(settings, **overrides)
        self.bank = load_bank_any(bank)
        self.chunk = int(chunk)
        if self.chunk <= 0:
            raise ValueError(f"chunk must be positive, not {chunk}")
        self.progress = bool(progress)
        self.synth = Synth(self.settings)
        self.backend = self.synth.backend_name
        self.rate = self.settings.rate
        self.voices = self.settings.voices
        self.tail_cap_s = self.settings.tail_cap_s
        self._ensemble = None
        self.song_stats = None
        self.synth.download(self.bank)
        self.stats = None
        self.songs = 0

    # a freshly opened synth for each song (the same state as Synth() + open + download)
    def _open(self, song):
        return self.synth, reopen(self.synth, song)

    def render(self, midi, *, stems: str | None = None):
        """Render one song: float32 (frames, 2), or with ``stems`` a dict name -> (frames, 2)."""
        song = load_midi(midi)
        mix = self._render_mix(song)
        if stems is None:
            return mix
        return self._render_stems(song, stems, len(mix))

    __call__ = render

    def render_many(self, midis) -> list:
        """Render several songs in one voice table, one kernel launch per window for all of
        them (gpusynth.ensemble): a list of float32 (frames, 2), each the same bits as
        ``render(midi)``. Faster than one song at a time when the songs are small (a few
        dozen voices each); group songs of similar length. ``stats`` then describes the
        launch group, ``song_stats`` each song."""
        songs = [load_midi(m) for m in midis]
        if not songs:
            return []
        if self._ensemble is None:
            self._ensemble = Ensemble(self.bank, self.settings.replace(backend=self.backend),
                                      chunk=self.chunk)
        outs = self._ensemble.render_many(songs)
        self.stats = {k: v for k, v in self._ensemble.stats.items() if k != "per_song"}
        self.song_stats = self._ensemble.stats["per_song"]
        self.songs += len(songs)
        return outs

    def render_with_stems(self, midi, stems: str):
        """(mix, {name: stem}) for one song."""
        song = load_midi(midi)
        mix = self._render_mix(song)
        return mix, self._render_stems(song, stems, len(mix))

    def _render_mix(self, song) -> np.ndarray:
        s, _ = self._open(song)
        prog = RenderProgress(self.progress, desc=str(getattr(song, "path", "") or "")[-30:])
        try:
            audio, self.stats = render_opened(s, song, self.chunk, progress=prog)
        finally:
            prog.close()
        self.songs += 1
        return audio

    def _render_stems(self, song, kind: str, frames: int) -> dict:
        sm = _StemMap(song, kind, self.rate)
        out = {}
        for k, name in enumerate(sm.names):
            s, _ = self._open(song)

            def mute_others(slots, records, _k=k, _s=s):
                lab = sm.label(_s, slots, records)
                if np.any(lab != _k):
                    records = np.array(records, copy=True)
                    records["atten"][lab != _k] += np.float32(MUTE_CB)
                return records

            s.upload_hook = mute_others
            try:
                s.stream(song_source(song, self.rate))
                parts, pos = [], 0
                while pos < frames:
                    n = min(self.chunk, frames - pos)
                    parts.append(s.render(n, pos))
                    pos += n
            finally:
                s.upload_hook = None
            out[name] = np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)
        return out

    def close(self):
        if self.synth.is_open:
            self.synth.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def render(midi, bank=None, settings: Settings | None = None, *, stems: str | None = None,
           progress: bool = False, **overrides):
    """Render a MIDI song to float32 stereo ``(frames, 2)`` at the settings' rate (or, with
    ``stems``, a dict of stems). ``settings``/``overrides``: as Renderer; ``progress``: a tqdm
    bar (a widget in Jupyter) with the real-time factor, notes/s, voices and the ETA. For many
    songs keep a ``Renderer`` (the bank loads once)."""
    r = Renderer(bank, settings, progress=progress, **overrides)
    try:
        return r.render(midi, stems=stems)
    finally:
        r.close()
