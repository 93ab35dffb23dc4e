"""`gpusynth render`: one MIDI file to one audio file (gpusynth.rendering.render_file)."""
from __future__ import annotations

import json
import os
import sys

from ..progress import RenderProgress, si
from .common import (CliError, FLUID_SETTINGS, SETTING_RE, add_effect_args, add_setting,
                     add_song_limit_args, apply_fluid_setting, backend_choice, clamped_note,
                     finite, settings_from_args, song_banks_limits, validate_song_options, warn)


def _subtype(a):
    if a.float and a.sample_format not in (None, "float"):
        raise CliError(f"--float conflicts with --sample-format {a.sample_format}")
    return "float" if a.float else a.sample_format


def _split_outputs(a):
    """`-o` takes the output path and, as FluidSynth's -o, KEY=VALUE settings; -F (FluidSynth's
    fast-render file) is the output too. Exactly one output path must remain."""
    paths = list(a.fast_render or [])
    for v in a.output or []:
        if SETTING_RE.match(v):
            apply_fluid_setting(a, v)
        else:
            paths.append(v)
    if not paths:
        raise CliError("render: give the output file with -o FILE (or -F FILE; '-' for stdout)")
    if len(paths) > 1:
        raise CliError(f"render: several output files given ({', '.join(paths)})")
    a.output = paths[0]


def _validate(a):
    """Everything that can be wrong with the arguments, before any work."""
    from ..output import check_writable, OutputError
    _split_outputs(a)
    if hasattr(a, "interp"):
        a.interp = {"1": "linear", "4": "cubic", "7": "cubic"}.get(a.interp, a.interp)
    validate_song_options(a)
    finite("--normalize", a.normalize, -120.0, 0.0)
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


def run(a):
    from ..output import OutputError, FLOAT_NOTES, is_stream
    from ..rendering import open_synth, render_file
    from ..synth import SynthError
    _validate(a)
    backend, why = backend_choice(getattr(a, "backend", None))
    settings = settings_from_args(a, backend=backend)
    subtype = _subtype(a)
    song, warnings, banks = song_banks_limits(a, "render", strict=a.strict)
    try:
        synth, eff = open_synth(banks[0], song=song, settings=settings)
        for k, b in enumerate(banks[1:], 1):      # stacked: a later --bank is searched first
            synth.download(b, priority=k)
    except (ValueError, SynthError) as e:
        raise CliError(str(e)) from None
    clamped_note(eff)
    rate = eff["sample_rate"]
    prog = RenderProgress(sys.stderr.isatty() and not a.quiet,
                          desc=os.path.basename(str(a.input or "demo"))[:24] + " ")

    def progress(done, total, s):
        prog(done, total, s)
        if a.strict:
            pw = s.preset_warnings()
            if pw:
                raise CliError(f"{pw[0]} (--strict)")

    try:
        st = render_file(song, a.output, subtype=subtype, normalize_db=a.normalize,
                         chunk=16384, progress=progress, synth=synth, fmt=a.format)
    except KeyboardInterrupt as e:
        prog.close()
        frames = getattr(e, "frames", 0)
        where = getattr(e, "partial", None)
        print(f"interrupted: {frames / rate:.1f} s rendered"
              + (f", kept as {where}" if where else ", nothing written"), file=sys.stderr)
        return 130
    except OutputError as e:
        prog.close()
        raise CliError(str(e)) from None
    except OSError as e:
        prog.close()
        raise CliError(f"{a.output}: write failed: {e.strerror or e}") from None
    prog.close()
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
        warn(a, w)
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
              f"{st['notes']:,} notes ({si(st['notes_per_s'])}/s), peak {st['peak_voices']:,} "
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


def add_parser(sub):
    r = sub.add_parser("render", help="render a MIDI file to an audio file")
    r.add_argument("input", nargs="?", help="Standard MIDI File")
    r.add_argument("--demo", action="store_true", help="render the bundled demo song")
    r.add_argument("-o", "--output", action="append", metavar="FILE|KEY=VALUE",
                   help="output file (.wav, RF64 past 4 GiB; .w64 .flac .ogg .aiff .caf; '-': "
                        "WAV to stdout); also FluidSynth settings: "
                        + ", ".join(f"{k}=" for k in FLUID_SETTINGS))
    r.add_argument("-F", "--fast-render", action="append", metavar="FILE",
                   help="output file (FluidSynth's spelling)")
    r.add_argument("--format", choices=["wav", "w64", "flac", "ogg", "aiff", "caf"],
                   help="output format (default: from the file extension)")
    r.add_argument("--bank", action="append", metavar="PATH",
                   help="SF2, SF3 or DLS bank; repeat to stack them (a later bank is searched "
                        "first) (default: the built-in GM bank)")
    add_setting(r, "backend", choices=None, metavar="NAME")
    add_setting(r, "rate", "-r", metavar="HZ")
    add_setting(r, "voices", metavar="N")
    add_setting(r, "interp", choices=["linear", "cubic", "1", "4", "7"],
                help="sample interpolation (FluidSynth's numbers: 1 linear; 4 and 7: cubic); "
                     "default 'cubic'")
    add_setting(r, "gain", "-g", metavar="G")
    r.add_argument("--sample-format", choices=["pcm16", "pcm24", "float"], default=None,
                   help="sample format (default: float when the input has more than a "
                        "million notes, else pcm16)")
    r.add_argument("--float", action="store_true", help="same as --sample-format float")
    r.add_argument("--normalize", type=float, nargs="?", const=-1.0, default=None,
                   metavar="DBFS", help="peak-normalise in a second pass (default -1 dBFS)")
    add_song_limit_args(r)
    add_setting(r, "tail_cap_s", metavar="S")
    r.add_argument("--stats-json", help="write run statistics as JSON")
    r.add_argument("--strict", action="store_true",
                   help="treat warnings (file repairs, missing presets, lost notes, clipping) "
                        "as errors")
    r.add_argument("-q", "--quiet", action="store_true", help="no summary, no warnings")
    add_effect_args(r)
    r.set_defaults(fn=run)
    return r
