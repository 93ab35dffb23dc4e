"""`gpusynth analyze`: the control path alone (gpusynth.analyze): notes, density, polyphony,
steals; no audio."""
from __future__ import annotations

import os
import sys

from ..progress import RenderProgress
from .common import (CliError, add_setting, add_song_limit_args, backend_choice, clamped_note,
                     settings_from_args, song_banks_limits, validate_song_options, warn)


def _validate(a):
    validate_song_options(a)
    if a.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CliError("--plot needs matplotlib (pip install matplotlib, or "
                           "pip install gpusynth[bench])") from None
        d = os.path.dirname(os.path.abspath(a.plot))
        if os.path.isdir(a.plot) or not os.path.isdir(d) or not os.access(d, os.W_OK):
            raise CliError(f"{a.plot}: cannot write the plot here")


def run(a):
    from ..analyze import open_analyzer, analyze_song, table, plot, to_json
    from ..synth import SynthError
    _validate(a)
    # the settings `render` would use (its voice limit, note limits and rate); the backend
    # is checked as render would, though nothing is rendered
    backend_choice(getattr(a, "backend", None))
    settings = settings_from_args(a, backend="null")
    song, warnings, banks = song_banks_limits(a, "analyze")
    try:
        synth, eff = open_analyzer(banks[0], settings, song=song)
        for k, b in enumerate(banks[1:], 1):      # stacked as in render: a later bank first
            synth.download(b, priority=k)
    except (ValueError, SynthError) as e:
        raise CliError(str(e)) from None
    clamped_note(eff)
    prog = RenderProgress(sys.stderr.isatty() and not a.quiet,
                          desc=os.path.basename(str(a.input or "demo"))[:24] + " ")
    try:
        r = analyze_song(song, synth=synth, progress=prog, keep_windows=bool(a.plot))
    except KeyboardInterrupt:
        prog.close()
        print("interrupted", file=sys.stderr)
        return 130
    prog.close()
    if a.demo:
        r["input"] = "demo"
    late = synth.preset_warnings()
    if r["lost_notes"]:
        late.append(f"{r['lost_notes']:,} note(s) lost: more regions at once than "
                    f"--voices {r['voices_limit']:,}")
    r["warnings"] = warnings + late
    for w in late:
        warn(a, w)
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


def add_parser(sub):
    an = sub.add_parser("analyze", help="a MIDI file's notes, density and polyphony from the control path "
                             "alone (no audio; the figures of a render with the same options)")
    an.add_argument("input", nargs="?", help="Standard MIDI File")
    an.add_argument("--demo", action="store_true", help="analyze the bundled demo song")
    an.add_argument("--bank", action="append", metavar="PATH",
                    help="SF2, SF3 or DLS bank, as render (default: the built-in GM bank)")
    an.add_argument("--backend", help="checked as render checks it (nothing is rendered; the "
                                      "voice limit does not depend on it)")
    add_setting(an, "rate", "-r", metavar="HZ")
    add_setting(an, "voices", metavar="N")
    add_song_limit_args(an)
    an.add_argument("--json", action="store_true", help="print the figures as JSON")
    an.add_argument("--plot", metavar="OUT.png",
                    help="draw notes/s and voices against time (needs matplotlib)")
    an.add_argument("-q", "--quiet", action="store_true", help="no warnings, no progress")
    an.set_defaults(fn=run)
    return an
