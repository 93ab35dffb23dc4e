"""What every `gpusynth` command shares: the one-line error, backend choice, loading a song
or a bank with CLI errors, the options made from gpusynth.Settings, and turning the parsed
arguments back into a Settings."""
from __future__ import annotations

import argparse
import math
import os
import re
import sys

from ..settings import EFFECT_KNOBS, FIELDS, Settings, SettingsError, cli_flag, describe


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def backend_choice(requested):
    """Resolve --backend / GPUSYNTH_BACKEND into (name, reason)."""
    from ..backend.select import resolve_backend, BackendUnavailable
    try:
        return resolve_backend(requested)
    except BackendUnavailable as e:
        raise CliError(str(e)) from None


def load_song(path):
    """A song from a MIDI file (``None`` or ``"--demo"``: the built-in demo), CLI errors."""
    from ..smf import load_smf, MidiFileError
    if path == "--demo" or path is None:
        from ..demo import demo_song
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


def load_bank(path):
    """A bank from a file (None: the built-in GM bank), CLI errors."""
    from ..banks import BankError
    from ..loading import load_bank_any
    try:
        return load_bank_any(path)
    except BankError as e:
        raise CliError(str(e)) from None


def warn(a, msg):
    if not getattr(a, "quiet", False):
        print(f"warning: {msg}", file=sys.stderr)


def finite(name, v, lo=None, hi=None):
    if v is None:
        return
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f" (allowed {lo:g}..{hi:g})" if lo is not None and hi is not None else \
            (f" (at least {lo:g})" if lo is not None else "")
        raise CliError(f"{name} {v!r} is out of range{rng}")


def onoff(v: str) -> bool:
    x = str(v).strip().lower()
    if x in ("1", "yes", "on", "true"):
        return True
    if x in ("0", "no", "off", "false"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0|1|yes|no|on|off, got {v!r}")


# ------------------------------------------------------------------ options from Settings
def add_setting(p, name: str, *flags, metavar=None, help=None, **kw):
    """An option for the setting ``name`` (gpusynth.settings): its flag (``cli_flag``) plus
    ``flags``, its type, and its documentation and default as help. Left out, the attribute
    is absent and the setting keeps its default (``settings_from_args``)."""
    f = FIELDS[name]
    m = f.metadata
    typ = {int: int, float: float, str: str}.get(m["kind"], str)
    if m["choices"] and "choices" not in kw and "type" not in kw:
        kw["choices"] = list(m["choices"])
    kw.setdefault("type", typ)
    return p.add_argument(cli_flag(name), *flags, dest=name, default=argparse.SUPPRESS,
                          metavar=metavar, help=help or describe(name), **kw)


def add_song_limit_args(p):
    """The black-MIDI note limits and the song-length bound (`render` and `analyze`)."""
    add_setting(p, "min_velocity", metavar="V")
    add_setting(p, "max_key_voices", metavar="N")
    add_setting(p, "max_note_s", metavar="S")
    p.add_argument("--max-duration", "--max-length", dest="max_length", type=float,
                   default=24 * 3600.0, metavar="S",
                   help="refuse songs longer than S seconds (default 24 h; 0: no limit)")


def add_effect_args(p):
    """FluidSynth-style effect switches and knobs (defaults: FluidSynth's, effects on)."""
    g = p.add_argument_group("effects (reverb and chorus on the CC91/CC93 sends; on by default)")
    g.add_argument("--reverb", dest="reverb", action=argparse.BooleanOptionalAction,
                   default=argparse.SUPPRESS, help="reverb on/off (FluidSynth -R; default on)")
    g.add_argument("--chorus", dest="chorus", action=argparse.BooleanOptionalAction,
                   default=argparse.SUPPRESS, help="chorus on/off (FluidSynth -C; default on)")
    g.add_argument("-R", dest="reverb", type=onoff, metavar="0|1", default=argparse.SUPPRESS,
                   help="reverb on/off, FluidSynth's spelling (-R 0)")
    g.add_argument("-C", dest="chorus", type=onoff, metavar="0|1", default=argparse.SUPPRESS,
                   help="chorus on/off, FluidSynth's spelling (-C 0)")
    g.add_argument("--no-effects", dest="effects", action="store_false",
                   default=argparse.SUPPRESS, help="no reverb and no chorus (the dry mix)")
    for k in EFFECT_KNOBS:
        add_setting(g, k, metavar="X" if FIELDS[k].metadata["choices"] is None else None)


# FluidSynth-style `-o KEY=VALUE` settings that exist here: key -> (setting, type)
FLUID_SETTINGS = {
    "synth.gain": ("gain", float),
    "synth.polyphony": ("voices", int),
    "synth.sample-rate": ("rate", int),
    "synth.reverb.active": ("reverb", onoff),
    "synth.reverb.room-size": ("reverb_room", float),
    "synth.reverb.damp": ("reverb_damp", float),
    "synth.reverb.width": ("reverb_width", float),
    "synth.reverb.level": ("reverb_level", float),
    "synth.chorus.active": ("chorus", onoff),
    "synth.chorus.nr": ("chorus_voices", int),
    "synth.chorus.level": ("chorus_level", float),
    "synth.chorus.speed": ("chorus_speed", float),
    "synth.chorus.depth": ("chorus_depth", float),
}
SETTING_RE = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+=")


def apply_fluid_setting(a, v: str):
    """``-o KEY=VALUE`` (FluidSynth's settings) onto the parsed arguments."""
    key, val = v.split("=", 1)
    if key not in FLUID_SETTINGS:
        raise CliError(f"-o {v}: unknown setting {key!r} (supported: "
                       f"{', '.join(sorted(FLUID_SETTINGS))})")
    attr, typ = FLUID_SETTINGS[key]
    try:
        setattr(a, attr, int(float(val)) if typ is int else typ(val))
    except (ValueError, argparse.ArgumentTypeError):
        raise CliError(f"-o {v}: {val!r} is not a number") from None


def settings_from_args(a, **fixed) -> Settings:
    """The gpusynth.Settings the parsed arguments ``a`` ask for (options not given keep their
    defaults), with ``fixed`` applied; a bad value is a CliError naming its option."""
    given = {n: getattr(a, n) for n in FIELDS if hasattr(a, n) and getattr(a, n) is not None}
    given.update(fixed)
    try:
        return Settings.of(None, **given)
    except SettingsError as e:
        msg = str(e)
        name = msg.split(" ", 1)[0]
        if name in FIELDS:
            msg = cli_flag(name) + msg[len(name):]
        raise CliError(msg) from None


def song_banks_limits(a, verb: str, strict: bool = False):
    """The song and its repair warnings (printed; --strict refuses them; a song past
    --max-duration is refused) and the banks, for `render`/`analyze`."""
    song = load_song("--demo" if a.demo else a.input)
    warnings = list(getattr(song, "warnings", []))
    if strict and warnings:
        raise CliError(f"{a.input}: {warnings[0]} (--strict)")
    for w in warnings[:20]:
        warn(a, w)
    if len(warnings) > 20:
        warn(a, f"... and {len(warnings) - 20} more")
    dur = float(getattr(song, "duration_s", 0.0))
    if a.max_length and dur > a.max_length:
        raise CliError(f"{a.input}: the song lasts {dur / 3600:.1f} h (its last event), more "
                       f"than --max-duration {a.max_length:g} s; raise --max-duration "
                       f"(alias --max-length) to {verb} it")
    banks = [load_bank(b) for b in (a.bank or [None])]
    return song, warnings, banks


def validate_song_options(a):
    """The options `render` and `analyze` share beyond the settings: the song-length bound."""
    finite("--max-length", a.max_length, 0.0, None)


def clamped_note(eff):
    if eff["clamped"]:
        print(f"note: clamped {', '.join(eff['clamped'])} -> "
              + ", ".join(f"{k}={eff[k]}" for k in eff["clamped"]), file=sys.stderr)
