"""`gpusynth render|analyze|play|live|info` (also `python -m gpusynth`)."""
from __future__ import annotations

import argparse
import json
import math
import os
import re
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


# FluidSynth-style `-o KEY=VALUE` settings that exist here: key -> (attribute, type, check)
SETTINGS = {
    "synth.gain": ("gain", float, "0..10"),
    "synth.polyphony": ("voices", int, "1..4000000"),
    "synth.sample-rate": ("rate", int, "8000..192000"),
    "synth.reverb.active": ("reverb", int, "0|1"),
    "synth.reverb.room-size": ("reverb_room", float, "0..1"),
    "synth.reverb.damp": ("reverb_damp", float, "0..1"),
    "synth.reverb.width": ("reverb_width", float, "0..100"),
    "synth.reverb.level": ("reverb_level", float, "0..1"),
    "synth.chorus.active": ("chorus", int, "0|1"),
    "synth.chorus.nr": ("chorus_voices", int, "0..99"),
    "synth.chorus.level": ("chorus_level", float, "0..10"),
    "synth.chorus.speed": ("chorus_speed", float, "0.1..5"),
    "synth.chorus.depth": ("chorus_depth", float, "0..40"),
}

# reverb/chorus options (render and play) -> Synth keyword arguments (gpusynth.effects)
_EFFECT_OPTS = ("reverb_room", "reverb_time", "reverb_damp", "reverb_width", "reverb_level",
                "reverb_predelay", "chorus_voices", "chorus_level", "chorus_speed",
                "chorus_depth", "chorus_type")


def _onoff(v: str) -> bool:
    x = str(v).strip().lower()
    if x in ("1", "yes", "on", "true"):
        return True
    if x in ("0", "no", "off", "false"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0|1|yes|no|on|off, got {v!r}")


def _add_song_limit_args(p):
    """The black-MIDI note limits and the song-length bound (`render` and `analyze`)."""
    p.add_argument("--min-velocity", type=int, default=0, metavar="V",
                   help="ignore note-ons with velocity below V (black MIDI)")
    p.add_argument("--key-voices", type=int, default=0, metavar="N",
                   help="at most N notes sounding per channel and key (0: no cap)")
    p.add_argument("--max-note-length", type=float, default=0.0, metavar="S",
                   help="release notes held longer than S seconds (0: no limit)")
    p.add_argument("--max-duration", "--max-length", dest="max_length", type=float,
                   default=24 * 3600.0, metavar="S",
                   help="refuse songs longer than S seconds (default 24 h; 0: no limit)")


def _add_effect_args(p):
    """FluidSynth-style effect switches and knobs (defaults: FluidSynth's, effects on)."""
    g = p.add_argument_group("effects (reverb and chorus on the CC91/CC93 sends; on by default)")
    g.add_argument("--reverb", dest="reverb", action=argparse.BooleanOptionalAction, default=True,
                   help="reverb on/off (FluidSynth -R)")
    g.add_argument("--chorus", dest="chorus", action=argparse.BooleanOptionalAction, default=True,
                   help="chorus on/off (FluidSynth -C)")
    g.add_argument("-R", dest="reverb", type=_onoff, metavar="0|1",
                   help="reverb on/off, FluidSynth's spelling (-R 0)")
    g.add_argument("-C", dest="chorus", type=_onoff, metavar="0|1",
                   help="chorus on/off, FluidSynth's spelling (-C 0)")
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


_SETTING_RE = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+=")


def _split_outputs(a):
    """`-o` takes the output path and, as FluidSynth's -o, KEY=VALUE settings; -F (FluidSynth's
    fast-render file) is the output too. Exactly one output path must remain."""
    paths = list(a.fast_render or [])
    for v in a.output or []:
        if _SETTING_RE.match(v):
            key, val = v.split("=", 1)
            if key not in SETTINGS:
                raise CliError(f"-o {v}: unknown setting {key!r} (supported: "
                               f"{', '.join(sorted(SETTINGS))})")
            attr, typ, _ = SETTINGS[key]
            try:
                setattr(a, attr, typ(float(val)) if typ is int else typ(val))
            except ValueError:
                raise CliError(f"-o {v}: {val!r} is not a number") from None
        else:
            paths.append(v)
    if not paths:
        raise CliError("render: give the output file with -o FILE (or -F FILE; '-' for stdout)")
    if len(paths) > 1:
        raise CliError(f"render: several output files given ({', '.join(paths)})")
    a.output = paths[0]


def _finite(name, v, lo=None, hi=None):
    if v is None:
        return
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f" (allowed {lo:g}..{hi:g})" if lo is not None and hi is not None else \
            (f" (at least {lo:g})" if lo is not None else "")
        raise CliError(f"{name} {v!r} is out of range{rng}")


def _validate_render(a):
    """Everything that can be wrong with the arguments, before any work."""
    _split_outputs(a)
    _finite("--gain", a.gain, 0.0, 10.0)
    _finite("--tail-cap", a.tail_cap, 0.0, 3600.0)
    _validate_song_options(a)
    _finite("--normalize", a.normalize, -120.0, 0.0)
    a.interp = {"1": "linear", "4": "cubic", "7": "cubic"}.get(a.interp, a.interp)
    from .output import check_writable, OutputError
    try:
        check_writable(a.output, a.format, _subtype(a))
    except OutputError as e:
        raise CliError(str(e)) from None
    if a.stats_json:
        if os.path.isdir(a.stats_json):
            raise CliError(f"{a.stats_json}: cannot write the stats: is a directory")
        existed = os.path.exists(a.stats_json)
        try:
            with open(a.stats_json, "a"):
                pass
        except OSError as e:
            raise CliError(f"{a.stats_json}: cannot write the stats: {e.strerror or e}") from None
        if not existed:
            os.unlink(a.stats_json)


def _warn(a, msg):
    if not a.quiet:
        print(f"warning: {msg}", file=sys.stderr)


def _song_banks_limits(a, verb: str, strict: bool = False):
    """The song and its repair warnings (printed; --strict refuses them; a song past
    --max-duration is refused), the banks, and the note limits given, for `render`/`analyze`."""
    song = _load_song("--demo" if a.demo else a.input)
    warnings = list(getattr(song, "warnings", []))
    if strict and warnings:
        raise CliError(f"{a.input}: {warnings[0]} (--strict)")
    for w in warnings[:20]:
        _warn(a, w)
    if len(warnings) > 20:
        _warn(a, f"... and {len(warnings) - 20} more")
    dur = float(getattr(song, "duration_s", 0.0))
    if a.max_length and dur > a.max_length:
        raise CliError(f"{a.input}: the song lasts {dur / 3600:.1f} h (its last event), more "
                       f"than --max-duration {a.max_length:g} s; raise --max-duration "
                       f"(alias --max-length) to {verb} it")
    banks = [_load_bank(b) for b in (a.bank or [None])]
    limits = {}
    if a.min_velocity:
        limits["min_velocity"] = a.min_velocity
    if a.key_voices:
        limits["max_key_voices"] = a.key_voices
    if a.max_note_length:
        limits["max_note_s"] = a.max_note_length
    return song, warnings, banks, limits


def cmd_render(a):
    from .render import open_synth, render_file, default_voices
    from .synth import SynthError
    from .output import OutputError, FLOAT_NOTES
    _validate_render(a)
    backend, why = _backend_choice(a.backend)
    subtype = _subtype(a)
    song, warnings, banks, limits = _song_banks_limits(a, "render", strict=a.strict)
    voices = a.voices if a.voices is not None else default_voices(backend)
    try:
        synth, eff = open_synth(banks[0], backend, a.rate, voices, interp=a.interp, gain=a.gain,
                                song=song, **limits, **effect_kwargs(a))
        for k, b in enumerate(banks[1:], 1):      # stacked: a later --bank is searched first
            synth.download(b, priority=k)
    except TypeError as e:
        raise CliError(f"this build does not support {', '.join(limits)}: {e}") from None
    except (ValueError, SynthError) as e:
        raise CliError(str(e)) from None
    if eff["clamped"]:
        print(f"note: clamped {', '.join(eff['clamped'])} -> "
              + ", ".join(f"{k}={eff[k]}" for k in eff["clamped"]), file=sys.stderr)
    rate = eff["sample_rate"]
    prog = Progress(sys.stderr.isatty() and not a.quiet, getattr(song, "n_notes", 0))

    def progress(done, total, s):
        prog(done, total, s)
        if a.strict:
            pw = s.preset_warnings()
            if pw:
                raise CliError(f"{pw[0]} (--strict)")

    try:
        st = render_file(song, a.output, subtype=subtype, normalize_db=a.normalize,
                         chunk=16384, tail_cap_s=a.tail_cap, progress=progress, synth=synth,
                         fmt=a.format)
    except KeyboardInterrupt as e:
        prog.finish()
        frames = getattr(e, "frames", 0)
        where = getattr(e, "partial", None)
        print(f"interrupted: {frames / rate:.1f} s rendered"
              + (f", kept as {where}" if where else ", nothing written"), file=sys.stderr)
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
    late = synth.preset_warnings()
    if st["lost_notes"]:
        late.append(f"{st['lost_notes']:,} note(s) lost: more regions at once than "
                    f"--voices {st['voices_limit']:,}")
    if st.get("clipped_samples"):
        late.append(f"{st['clipped_samples']:,} samples clipped (peak {st['peak_db']:+.1f} "
                    f"dBFS): use --float, --normalize or a lower --gain")
    st["warnings"] = warnings + late
    for w in late:
        _warn(a, w)
    from .output import is_stream
    out = sys.stderr if is_stream(a.output) else sys.stdout   # never mix text into piped audio
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
              f"of {st['voices_limit']:,} voices, {st['stolen_voices']:,} stolen"
              + (f", {st['lost_notes']:,} lost" if st["lost_notes"] else "") + extra, file=out)
    if a.stats_json:
        try:
            with open(a.stats_json, "w") as f:
                json.dump(st, f, indent=2, default=float)
        except OSError as e:
            raise CliError(f"{a.stats_json}: cannot write: {e.strerror or e}") from None
    if a.strict and late:
        raise CliError(f"{late[0]} (--strict; the output was written)")
    return 0


def _validate_song_options(a):
    """The options `render` and `analyze` share: note limits, song length, rate, voices."""
    _finite("--max-note-length", a.max_note_length, 0.0, 1e6)
    _finite("--max-length", a.max_length, 0.0, None)
    if not 8000 <= a.rate <= 192000:
        raise CliError(f"--rate {a.rate} is out of range (allowed 8000..192000)")
    if a.voices is not None and not 1 <= a.voices <= 4_000_000:
        raise CliError(f"--voices {a.voices} is out of range (allowed 1..4000000)")
    if not 0 <= a.min_velocity <= 127:
        raise CliError(f"--min-velocity {a.min_velocity} is out of range (allowed 0..127)")
    if a.key_voices < 0:
        raise CliError(f"--key-voices {a.key_voices} must be >= 0")


def _validate_analyze(a):
    _validate_song_options(a)
    if a.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CliError("--plot needs matplotlib (pip install matplotlib, or "
                           "pip install gpusynth[bench])") from None
        d = os.path.dirname(os.path.abspath(a.plot))
        if os.path.isdir(a.plot) or not os.path.isdir(d) or not os.access(d, os.W_OK):
            raise CliError(f"{a.plot}: cannot write the plot here")


def cmd_analyze(a):
    """The control path alone (gpusynth.analyze): notes, density, polyphony, steals; no audio."""
    from .analyze import open_analyzer, analyze_song, table, plot, to_json
    from .render import default_voices
    from .synth import SynthError
    _validate_analyze(a)
    song, warnings, banks, limits = _song_banks_limits(a, "analyze")
    # the voice limit `render` would use: --voices, else the default of the backend it would run
    voices = a.voices if a.voices is not None else default_voices(_backend_choice(a.backend)[0])
    try:
        synth, eff = open_analyzer(banks[0], a.rate, voices, song=song, **limits)
        for k, b in enumerate(banks[1:], 1):      # stacked as in render: a later bank first
            synth.download(b, priority=k)
    except (ValueError, SynthError) as e:
        raise CliError(str(e)) from None
    if eff["clamped"]:
        print(f"note: clamped {', '.join(eff['clamped'])} -> "
              + ", ".join(f"{k}={eff[k]}" for k in eff["clamped"]), file=sys.stderr)
    prog = Progress(sys.stderr.isatty() and not a.quiet, getattr(song, "n_notes", 0))
    try:
        r = analyze_song(song, synth=synth, progress=prog, keep_windows=bool(a.plot))
    except KeyboardInterrupt:
        prog.finish()
        print("interrupted", file=sys.stderr)
        return 130
    prog.finish()
    if a.demo:
        r["input"] = "demo"
    late = synth.preset_warnings()
    if r["lost_notes"]:
        late.append(f"{r['lost_notes']:,} note(s) lost: more regions at once than "
                    f"--voices {r['voices_limit']:,}")
    r["warnings"] = warnings + late
    for w in late:
        _warn(a, w)
    series = r.pop("windows_series", None)
    if a.plot:
        try:
            plot({**r, "windows_series": series}, a.plot,
                 title=f"{os.path.basename(str(r['input']))}: {r['notes']:,} notes, "
                       f"peak {r['notes_per_s_peak']:,} notes/s")
        except OSError as e:
            raise CliError(f"{a.plot}: cannot write the plot: {e.strerror or e}") from None
        r["plot"] = a.plot
    if a.json:
        print(to_json(r))
    else:
        print(table(r))
        if a.plot:
            print(f"plot      {a.plot}")
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
    from . import __version__
    p.add_argument("-V", "--version", action="version", version=f"gpusynth {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    r = sub.add_parser("render", help="render a MIDI file to an audio file", formatter_class=fmt)
    r.add_argument("input", nargs="?", help="Standard MIDI File")
    r.add_argument("--demo", action="store_true", help="render the bundled demo song")
    r.add_argument("-o", "--output", action="append", metavar="FILE|KEY=VALUE",
                   help="output file (.wav, RF64 past 4 GiB; .w64 .flac .ogg .aiff .caf; '-': "
                        "WAV to stdout); also FluidSynth settings: "
                        + ", ".join(f"{k}=" for k in SETTINGS))
    r.add_argument("-F", "--fast-render", action="append", metavar="FILE",
                   help="output file (FluidSynth's spelling)")
    r.add_argument("--format", choices=["wav", "w64", "flac", "ogg", "aiff", "caf"],
                   help="output format (default: from the file extension)")
    r.add_argument("--bank", action="append", metavar="PATH",
                   help="SF2, SF3 or DLS bank; repeat to stack them (a later bank is searched "
                        "first) (default: the built-in GM bank)")
    r.add_argument("--backend", help="auto|cupy|native|numpy (default: $GPUSYNTH_BACKEND or auto)")
    r.add_argument("-r", "--rate", type=int, default=48000, help="sample rate (8000-192000)")
    r.add_argument("--voices", type=int, default=None,
                   help="voice limit, stealing above it (default: numpy 512, native 4096, "
                        "cupy 65536; at most 4,000,000)")
    r.add_argument("--interp", choices=["linear", "cubic", "1", "4", "7"], default="cubic",
                   help="sample interpolation (FluidSynth's numbers: 1 linear; 4 and 7: cubic)")
    r.add_argument("-g", "--gain", type=float, default=0.5, help="master gain (linear, 0-10)")
    r.add_argument("--sample-format", choices=["pcm16", "pcm24", "float"], default=None,
                   help="sample format (default: float when the input has more than a "
                        "million notes, else pcm16)")
    r.add_argument("--float", action="store_true", help="same as --sample-format float")
    r.add_argument("--normalize", type=float, nargs="?", const=-1.0, default=None,
                   metavar="DBFS", help="peak-normalise in a second pass (default -1 dBFS)")
    _add_song_limit_args(r)
    r.add_argument("--tail-cap", type=float, default=30.0, help="max seconds of release tail")
    r.add_argument("--stats-json", help="write run statistics as JSON")
    r.add_argument("--strict", action="store_true",
                   help="treat warnings (file repairs, missing presets, lost notes, clipping) "
                        "as errors")
    r.add_argument("-q", "--quiet", action="store_true", help="no summary, no warnings")
    _add_effect_args(r)
    r.set_defaults(fn=cmd_render)
    an = sub.add_parser("analyze", formatter_class=fmt,
                        help="a MIDI file's notes, density and polyphony from the control path "
                             "alone (no audio; the figures of a render with the same options)")
    an.add_argument("input", nargs="?", help="Standard MIDI File")
    an.add_argument("--demo", action="store_true", help="analyze the bundled demo song")
    an.add_argument("--bank", action="append", metavar="PATH",
                    help="SF2, SF3 or DLS bank, as render (default: the built-in GM bank)")
    an.add_argument("--backend", help="the backend whose default voice limit to use when "
                                      "--voices is not given (as render; nothing is rendered)")
    an.add_argument("-r", "--rate", type=int, default=48000, help="sample rate (8000-192000)")
    an.add_argument("--voices", type=int, default=None,
                    help="voice limit, as render (default: the backend's, e.g. native 4096)")
    _add_song_limit_args(an)
    an.add_argument("--json", action="store_true", help="print the figures as JSON")
    an.add_argument("--plot", metavar="OUT.png",
                    help="draw notes/s and voices against time (needs matplotlib)")
    an.add_argument("-q", "--quiet", action="store_true", help="no warnings, no progress")
    an.set_defaults(fn=cmd_analyze)
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
    if a.cmd in ("render", "play", "analyze") and not a.demo and not a.input:
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
