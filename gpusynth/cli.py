"""`gpusynth render|play|live|info` (also `python -m gpusynth`)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _backend_choice(requested):
    """Resolve --backend / GPUSYNTH_BACKEND into (name, reason)."""
    try:
        from .backend.select import resolve_backend, BackendUnavailable
    except ImportError:          # selection module not present: numpy only
        name = requested or os.environ.get("GPUSYNTH_BACKEND") or "auto"
        if name not in ("auto", "numpy"):
            raise CliError(f"backend {name!r} is not available in this build")
        return "numpy", "numpy reference backend"
    try:
        return resolve_backend(requested)
    except BackendUnavailable as e:
        raise CliError(str(e)) from None


def _load_song(path):
    from .smf import load_smf, MidiFileError
    if path == "--demo" or path is None:
        from .demo import demo_song
        return demo_song()
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory, not a MIDI file")
    try:
        return load_smf(path)
    except MidiFileError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"{path}: {e.strerror or e}") from None


def _load_bank(path):
    if path is None:
        from .banks.builtin import load_builtin
        return load_builtin()
    from .banks import load_bank, BankError
    try:
        return load_bank(path)
    except BankError as e:
        raise CliError(str(e)) from None


def _si(x: float) -> str:
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.1f}{suf}"
    return f"{x:.0f}"


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal): audio position,
    real-time factor, notes per second, voices."""

    def __init__(self, enabled, total_notes=0):
        self.enabled = enabled
        self.total_notes = total_notes
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, done, total, synth):
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < 0.1:
            return
        self.last = now
        rate = synth.sample_rate
        frac = min(done / total, 1.0) if total > 0 else 1.0
        width = 24
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        el = max(now - self.t0, 1e-9)
        notes = synth.running_stats()["notes"]
        sys.stderr.write(f"\r[{bar}] {frac * 100:5.1f}%  {done / rate:7.1f}s  "
                         f"x{(done / rate) / el:5.2f} real time  {_si(notes / el):>6s} notes/s  "
                         f"voices {synth.active_voices:7d} ")
        sys.stderr.flush()

    def second_pass(self, done, total):
        if self.enabled:
            sys.stderr.write(f"\rnormalizing {100 * done / max(total, 1):5.1f}%" + " " * 60)
            sys.stderr.flush()

    def finish(self):
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def _subtype(a):
    if a.float and a.sample_format not in (None, "float"):
        raise CliError(f"--float conflicts with --sample-format {a.sample_format}")
    return "float" if a.float else a.sample_format


# reverb/chorus options (render and play) -> Synth keyword arguments (gpusynth.effects)
_EFFECT_OPTS = ("reverb_room", "reverb_time", "reverb_damp", "reverb_width", "reverb_level",
                "reverb_predelay", "chorus_voices", "chorus_level", "chorus_speed",
                "chorus_depth", "chorus_type")


def _add_effect_args(p):
    """FluidSynth-style effect switches and knobs (defaults: FluidSynth's, effects on)."""
    g = p.add_argument_group("effects (reverb and chorus on the CC91/CC93 sends; on by default)")
    g.add_argument("--reverb", dest="reverb", action=argparse.BooleanOptionalAction, default=True,
                   help="reverb on/off (FluidSynth -R)")
    g.add_argument("--chorus", dest="chorus", action=argparse.BooleanOptionalAction, default=True,
                   help="chorus on/off (FluidSynth -C)")
    g.add_argument("--no-effects", dest="effects", action="store_false", default=True,
                   help="no reverb and no chorus (the dry mix)")
    g.add_argument("--reverb-room", type=float, metavar="0..1",
                   help="room size, FluidSynth's scale (default 0.2: RT60 0.91 s)")
    g.add_argument("--reverb-time", type=float, metavar="S", help="RT60 in seconds (overrides the room)")
    g.add_argument("--reverb-damp", type=float, metavar="0..1", help="high-frequency damping (default 0)")
    g.add_argument("--reverb-width", type=float, metavar="0..100", help="stereo width (default 0.5)")
    g.add_argument("--reverb-level", type=float, metavar="0..1", help="wet level (default 0.9)")
    g.add_argument("--reverb-predelay", type=float, metavar="S", help="pre-delay (default 0)")
    g.add_argument("--chorus-voices", type=int, metavar="N", help="chorus voices 0..99 (default 3)")
    g.add_argument("--chorus-level", type=float, metavar="0..10", help="chorus level (default 2)")
    g.add_argument("--chorus-speed", type=float, metavar="HZ", help="LFO rate 0.1..5 Hz (default 0.3)")
    g.add_argument("--chorus-depth", type=float, metavar="MS", help="depth 0..40 ms (default 8)")
    g.add_argument("--chorus-type", choices=["sine", "triangle"], help="LFO shape (default sine)")


def effect_kwargs(a) -> dict:
    """The Synth keyword arguments of the effect options in ``a``."""
    kw = {"effects": bool(getattr(a, "effects", True)), "reverb": bool(getattr(a, "reverb", True)),
          "chorus": bool(getattr(a, "chorus", True))}
    for k in _EFFECT_OPTS:
        v = getattr(a, k, None)
        if v is not None:
            kw[k] = v
    return kw


def cmd_render(a):
    from .render import open_synth, render_file, default_voices
    from .synth import SynthError
    from .output import OutputError, container, FLOAT_NOTES
    backend, why = _backend_choice(a.backend)
    out_dir = os.path.dirname(os.path.abspath(a.output))
    if not os.path.isdir(out_dir):
        raise CliError(f"{a.output}: cannot write: directory {out_dir} does not exist")
    try:
        container(a.output)
    except OutputError as e:
        raise CliError(str(e)) from None
    subtype = _subtype(a)
    song = _load_song("--demo" if a.demo else a.input)
    for w in getattr(song, "warnings", [])[:20]:
        if not a.quiet:
            print(f"warning: {w}", file=sys.stderr)
    dur = float(getattr(song, "duration_s", 0.0))
    if a.max_length and dur > a.max_length:
        raise CliError(f"{a.input}: the song lasts {dur / 3600:.1f} h (its last event), more "
                       f"than --max-duration {a.max_length:g} s; raise --max-duration "
                       f"(alias --max-length) to render it")
    bank = _load_bank(a.bank)
    limits = {}
    if a.min_velocity:
        limits["min_velocity"] = a.min_velocity
    if a.key_voices:
        limits["max_key_voices"] = a.key_voices
    if a.max_note_length:
        limits["max_note_s"] = a.max_note_length
    voices = a.voices if a.voices is not None else default_voices(backend)
    try:
        synth, eff = open_synth(bank, backend, a.rate, voices, interp=a.interp, gain=a.gain,
                                song=song, **limits, **effect_kwargs(a))
    except TypeError as e:
        raise CliError(f"this build does not support {', '.join(limits)}: {e}") from None
    except (ValueError, SynthError) as e:
        raise CliError(str(e)) from None
    if eff["clamped"]:
        print(f"note: clamped {', '.join(eff['clamped'])} -> "
              + ", ".join(f"{k}={eff[k]}" for k in eff["clamped"]), file=sys.stderr)
    rate = eff["sample_rate"]
    prog = Progress(sys.stderr.isatty() and not a.quiet, getattr(song, "n_notes", 0))
    try:
        st = render_file(song, a.output, subtype=subtype, normalize_db=a.normalize,
                         chunk=16384, tail_cap_s=a.tail_cap, progress=prog, synth=synth)
    except KeyboardInterrupt as e:
        prog.finish()
        frames = getattr(e, "frames", 0)
        print(f"interrupted: wrote {frames / rate:.1f} s to {a.output}", file=sys.stderr)
        return 130
    except OutputError as e:
        prog.finish()
        raise CliError(str(e)) from None
    except OSError as e:
        prog.finish()
        raise CliError(f"{a.output}: write failed: {e.strerror or e}") from None
    prog.finish()
    st["backend_reason"] = why
    st["input"] = "demo" if a.demo else a.input
    st["output"] = a.output
    if not a.quiet:
        extra = ""
        if st["float_default"]:
            extra = (f"; {st['output_format']} because the input has more than "
                     f"{FLOAT_NOTES:,} notes (--sample-format pcm16 for 16-bit)")
        elif subtype is None or a.normalize is not None:
            extra = f"; {st['output_format']}"
        if a.normalize is not None:
            extra += f", normalized to {a.normalize:g} dBFS ({st['normalize_gain_db']:+.1f} dB)"
        else:
            extra += f", peak {st['peak_db']:.1f} dBFS"
        print(f"{st['output']}: {st['duration_s']:.2f} s of audio in {st['wall_s']:.2f} s "
              f"({st['realtime_factor']:.1f}x real time) on {st['backend']}; "
              f"{st['notes']:,} notes ({_si(st['notes_per_s'])}/s), peak {st['peak_voices']:,} "
              f"of {st['voices_limit']:,} voices, {st['stolen_voices']:,} stolen{extra}")
    if a.stats_json:
        try:
            with open(a.stats_json, "w") as f:
                json.dump(st, f, indent=2, default=float)
        except OSError as e:
            raise CliError(f"{a.stats_json}: cannot write: {e.strerror or e}") from None
    return 0


def cmd_info(a):
    info = {}
    try:
        from .backend.select import backend_info
        info = backend_info()
    except ImportError:
        info = {"available": {"numpy": "reference backend"}, "chosen": "numpy"}
    import gpusynth
    info["version"] = gpusynth.__version__
    if a.bank:
        bank = _load_bank(a.bank)
        info["bank"] = {"name": bank.name, "path": a.bank, "regions": int(len(bank.regions)),
                        "pool_samples": int(len(bank.pool)),
                        "presets": [{"bank": p.bank, "program": p.program, "drum": p.drum,
                                     "name": p.name} for p in bank.presets]}
    if a.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"gpusynth {info['version']}")
    for name, b in (info.get("backends") or {}).items():
        mark = "yes" if b.get("available") else "no "
        print(f"  backend {name:6s} available: {mark}  {b.get('reason', '')}")
    for k, v in info.items():
        if k in ("version", "bank", "backends"):
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        print(f"{k}: {v}")
    if a.bank:
        b = info["bank"]
        print(f"bank {b['name']} ({b['path']}): {len(b['presets'])} presets, {b['regions']} regions")
        for p in b["presets"]:
            kind = "drum" if p["drum"] else "    "
            print(f"  {p['bank']:5d}:{p['program']:3d} {kind} {p['name']}")
    return 0


def cmd_play(a):
    from .play import play_main
    return play_main(a, _backend_choice, _load_song, _load_bank, CliError)


def cmd_live(a):
    from .play import live_main
    return live_main(a, _backend_choice, _load_bank, CliError)


def build_parser():
    p = argparse.ArgumentParser(prog="gpusynth", description="GPU-accelerated DirectMusic-style software synthesizer")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="render a MIDI file to WAV")
    r.add_argument("input", nargs="?", help="Standard MIDI File")
    r.add_argument("--demo", action="store_true", help="render the bundled demo song")
    r.add_argument("-o", "--output", required=True,
                   help="output file: .wav (RF64 past 4 GiB), .w64, .flac, .aiff, .caf")
    r.add_argument("--bank", help="SF2, SF3 or DLS bank (default: the built-in GM bank)")
    r.add_argument("--backend", help="auto|cupy|native|numpy (default: $GPUSYNTH_BACKEND or auto)")
    r.add_argument("--rate", type=int, default=48000, help="sample rate (8000-192000)")
    r.add_argument("--voices", type=int, default=None,
                   help="voice limit, stealing above it (default: numpy 512, native 4096, "
                        "cupy 65536; at most 4,000,000)")
    r.add_argument("--interp", choices=["linear", "cubic"], default="cubic")
    r.add_argument("--gain", type=float, default=0.5, help="master gain (linear)")
    r.add_argument("--sample-format", choices=["pcm16", "pcm24", "float"], default=None,
                   help="sample format (default: float when the input has more than a "
                        "million notes, else pcm16)")
    r.add_argument("--float", action="store_true", help="same as --sample-format float")
    r.add_argument("--normalize", type=float, nargs="?", const=-1.0, default=None,
                   metavar="DBFS", help="peak-normalise in a second pass (default -1 dBFS)")
    r.add_argument("--min-velocity", type=int, default=0, metavar="V",
                   help="ignore note-ons with velocity below V (black MIDI)")
    r.add_argument("--key-voices", type=int, default=0, metavar="N",
                   help="at most N notes sounding per channel and key (0: no cap)")
    r.add_argument("--max-note-length", type=float, default=0.0, metavar="S",
                   help="release notes held longer than S seconds (0: no limit)")
    r.add_argument("--tail-cap", type=float, default=30.0, help="max seconds of release tail")
    r.add_argument("--max-duration", "--max-length", dest="max_length", type=float,
                   default=24 * 3600.0, metavar="S",
                   help="refuse songs longer than S seconds (default 24 h; 0: no limit)")
    r.add_argument("--stats-json", help="write run statistics as JSON")
    r.add_argument("-q", "--quiet", action="store_true")
    _add_effect_args(r)
    r.set_defaults(fn=cmd_render)
    i = sub.add_parser("info", help="backends, GPU, and bank presets")
    i.add_argument("--json", action="store_true")
    i.add_argument("--bank")
    i.set_defaults(fn=cmd_info)
    pl = sub.add_parser("play", help="play a MIDI file in real time")
    pl.add_argument("input", nargs="?")
    pl.add_argument("--demo", action="store_true")
    pl.add_argument("--device", help="output device id or name")
    pl.add_argument("--latency-ms", type=float, default=20.0)
    pl.add_argument("--bank")
    pl.add_argument("--backend")
    pl.add_argument("--rate", type=int, default=48000)
    pl.add_argument("--voices", type=int, default=256)
    pl.add_argument("--stats-json")
    _add_effect_args(pl)
    pl.set_defaults(fn=cmd_play)
    lv = sub.add_parser("live", help="play from a MIDI input port")
    lv.add_argument("--port")
    lv.add_argument("--list-ports", action="store_true")
    lv.add_argument("--device")
    lv.add_argument("--latency-ms", type=float, default=20.0)
    lv.add_argument("--bank")
    lv.add_argument("--backend")
    lv.add_argument("--rate", type=int, default=48000)
    lv.set_defaults(fn=cmd_live)
    from .batch import add_parser as _add_batch_parser      # `gpusynth batch` (gpusynth/batch.py)
    _add_batch_parser(sub)
    return p


def main(argv=None):
    p = build_parser()
    a = p.parse_args(argv)
    if a.cmd in ("render", "play") and not a.demo and not a.input:
        p.error(f"{a.cmd}: give a MIDI file or --demo")
    try:
        return a.fn(a) or 0
    except CliError as e:
        print(f"gpusynth: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gpusynth: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("gpusynth: error: out of memory (try fewer --voices)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
