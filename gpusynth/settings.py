"""One settings object for every way of rendering: ``Settings``.

``Synth``, ``open_synth``/``render_file`` (gpusynth.rendering), ``Renderer`` and
``gpusynth.render`` (gpusynth.api), the many-songs ensemble, ``batch`` and the CLI all take
their knobs from this one dataclass, validated once when it is built. The defaults are
documented here, in one place, and do not depend on the backend, so ``backend="auto"`` gives
the same audio on every machine (a GPU user who wants more voices says so: ``voices=65536``).

    from gpusynth import Settings
    s = Settings(voices=16384, reverb=False)
    s2 = s.replace(gain=0.8)              # a changed copy, validated again

Every field carries its documentation (``FIELDS``, ``describe()``); ``gpusynth render --help``
and the README's settings table are made from it (``python -m gpusynth.settings`` prints the
table).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field


def _num(x) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


class SettingsError(ValueError):
    """A setting out of its range or of the wrong type (one line)."""


def _f(default, doc: str, *, lo=None, hi=None, choices=None, kind=None, group="synth",
       cli=None, none_ok=False):
    return field(default=default, metadata={"doc": doc, "lo": lo, "hi": hi, "choices": choices,
                                            "kind": kind, "group": group, "cli": cli,
                                            "none_ok": none_ok})


BACKENDS = ("auto", "cupy", "native", "numpy", "null")


@dataclass(frozen=True)
class Settings:
    """Everything that decides how a song is rendered (see the module docstring)."""

    # --- the synth
    backend: str = _f("auto", "render backend: auto is the best that runs here (or "
                      "$GPUSYNTH_BACKEND); null renders no audio", choices=BACKENDS,
                      kind=str)
    rate: int = _f(48000, "sample rate (Hz)", lo=8000, hi=192000, kind=int, cli="--rate")
    voices: int = _f(4096, "voice limit; a note-on beyond it steals (the same on every backend)",
                     lo=1, hi=4_000_000, kind=int)
    interp: str = _f("cubic", "sample interpolation", choices=("linear", "cubic"), kind=str)
    gain: float = _f(0.5, "master gain (linear)", lo=0.0, hi=10.0, kind=float)
    # --- black-MIDI note limits (0: off)
    min_velocity: int = _f(0, "ignore note-ons with a velocity below this", lo=0, hi=127,
                           kind=int, group="notes")
    max_key_voices: int = _f(0, "at most this many notes sounding per channel and key (0: no "
                             "cap)", lo=0, hi=1_000_000, kind=int, group="notes",
                             cli="--key-voices")
    max_note_s: float = _f(0.0, "release a note held longer than this many seconds (0: no "
                           "limit)", lo=0.0, hi=1e6, kind=float, group="notes",
                           cli="--max-note-length")
    # --- the end of a song
    tail_cap_s: float = _f(30.0, "at most this many seconds of release tail after the last "
                           "event", lo=0.0, hi=3600.0, kind=float, group="render",
                           cli="--tail-cap")
    # --- effects (FluidSynth's knobs and defaults)
    effects: bool = _f(True, "reverb and chorus (False: the dry mix)", kind=bool, group="effects",
                       cli="--effects")
    reverb: bool = _f(True, "reverb on the CC91 send", kind=bool, group="effects",
                      cli="--reverb")
    chorus: bool = _f(True, "chorus on the CC93 send", kind=bool, group="effects",
                      cli="--chorus")
    reverb_room: float = _f(0.2, "reverb room size, FluidSynth's scale (0.2: RT60 0.91 s)",
                            lo=0.0, hi=1.0, kind=float, group="effects")
    reverb_time: float | None = _f(None, "reverb RT60 in seconds (overrides the room size)",
                                   lo=0.05, hi=30.0, kind=float, group="effects", none_ok=True)
    reverb_damp: float = _f(0.0, "reverb high-frequency damping", lo=0.0, hi=1.0, kind=float,
                            group="effects")
    reverb_width: float = _f(0.5, "reverb stereo width", lo=0.0, hi=100.0, kind=float,
                             group="effects")
    reverb_level: float = _f(0.9, "reverb wet level", lo=0.0, hi=1.0, kind=float,
                             group="effects")
    reverb_predelay: float = _f(0.0, "reverb pre-delay (s)", lo=0.0, hi=0.5, kind=float,
                                group="effects")
    chorus_voices: int = _f(3, "chorus voices", lo=0, hi=99, kind=int, group="effects")
    chorus_level: float = _f(2.0, "chorus level", lo=0.0, hi=10.0, kind=float, group="effects")
    chorus_speed: float = _f(0.3, "chorus LFO rate (Hz)", lo=0.1, hi=5.0, kind=float,
                             group="effects")
    chorus_depth: float = _f(8.0, "chorus depth (ms)", lo=0.0, hi=40.0, kind=float,
                             group="effects")
    chorus_type: str = _f("sine", "chorus LFO shape", choices=("sine", "triangle"), kind=str,
                          group="effects")
    chorus_width: float = _f(10.0, "chorus stereo width", lo=0.0, hi=10.0, kind=float,
                             group="effects")
    # --- engine (same output bits whatever is chosen)
    alloc_engine: str = _f("auto", "control engine: auto (native if a C++ compiler works), "
                           "native, reference (the readable definition) or sequential (one tick "
                           "at a time); gpusynth.compiled names them", kind=str, group="engine")
    effects_engine: str = _f("auto", "effects engine: auto, native or reference (the readable "
                             "definition)", kind=str, group="engine")
    overlap: bool | None = _f(None, "apply a window's events while the backend renders the one "
                              "before (None: on for cupy, off on the CPU backends)", kind=bool,
                              group="engine", none_ok=True)
    block_ticks: int = _f(4, "the smallest window, in 64-frame ticks", lo=1, hi=256, kind=int,
                          group="engine")
    max_window_ticks: int = _f(512, "the longest window (one kernel launch), in ticks",
                               lo=1, hi=8192, kind=int, group="engine")
    sends: bool = _f(False, "also return the reverb and chorus send buses from render()",
                     kind=bool, group="engine")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            m = f.metadata
            if v is None and m["none_ok"]:
                continue
            kind = m["kind"]
            if kind is bool:
                if not isinstance(v, (bool, int)) or v not in (0, 1):
                    raise SettingsError(f"{f.name} must be True or False, not {v!r}")
                object.__setattr__(self, f.name, bool(v))
                continue
            if kind is str:
                if not isinstance(v, str):
                    raise SettingsError(f"{f.name} must be a string, not {v!r}")
                v = v.strip().lower()
                object.__setattr__(self, f.name, v)
            elif kind is int:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                        (isinstance(v, float) and not v.is_integer()):
                    raise SettingsError(f"{f.name} must be an integer, not {v!r}")
                v = int(v)
                object.__setattr__(self, f.name, v)
            elif kind is float:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise SettingsError(f"{f.name} must be a number, not {v!r}")
                if not math.isfinite(v) and m["lo"] is None:
                    raise SettingsError(f"{f.name} must be a finite number, not {v!r}")
                v = float(v)
                object.__setattr__(self, f.name, v)
            if m["choices"] is not None and v not in m["choices"]:
                raise SettingsError(f"{f.name} must be one of {', '.join(m['choices'])}, "
                                    f"not {v!r}")
            lo, hi = m["lo"], m["hi"]
            if (lo is not None and not v >= lo) or (hi is not None and not v <= hi):
                raise SettingsError(f"{f.name} {v!r} is out of range (allowed {_num(lo)}..{_num(hi)})")
        if self.max_window_ticks < self.block_ticks:
            raise SettingsError("max_window_ticks must be at least block_ticks")

    # ------------------------------------------------------------------ building
    @classmethod
    def of(cls, settings: "Settings | None" = None, **overrides) -> "Settings":
        """``settings`` (or the defaults) with ``overrides`` applied; a keyword that is not a
        setting raises TypeError naming it. A None override keeps the value (so optional
        arguments can be passed through as they are)."""
        base = settings if settings is not None else cls()
        if not isinstance(base, Settings):
            raise TypeError(f"settings must be a gpusynth.Settings, not {type(base).__name__}")
        _known(overrides)
        kw = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(base, **kw) if kw else base

    def replace(self, **changes) -> "Settings":
        """A copy with ``changes`` (validated)."""
        _known(changes)
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ views
    @property
    def effect_flags(self) -> tuple:
        """(reverb on, chorus on)."""
        return self.effects and self.reverb, self.effects and self.chorus

    def reverb_params(self) -> dict:
        """The reverb knobs as gpusynth.effects.Reverb takes them."""
        return {k[len("reverb_"):]: getattr(self, k) for k in _REVERB}

    def chorus_params(self) -> dict:
        """The chorus knobs as gpusynth.effects.Chorus takes them."""
        return {k[len("chorus_"):]: getattr(self, k) for k in _CHORUS}

    def note_limits(self) -> dict:
        """The black-MIDI note limits as the control path takes them."""
        return {"min_velocity": self.min_velocity, "max_key_voices": self.max_key_voices,
                "max_note_s": self.max_note_s}


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
NAMES = frozenset(FIELDS)
_REVERB = tuple(n for n in FIELDS if n.startswith("reverb_"))
_CHORUS = tuple(n for n in FIELDS if n.startswith("chorus_"))
EFFECT_KNOBS = _REVERB + _CHORUS          # the effects' knobs, in field order
DEFAULTS = Settings()


def _known(names):
    bad = sorted(set(names) - NAMES)
    if bad:
        raise TypeError(f"unknown setting(s): {', '.join(bad)} (see gpusynth.Settings)")


def _range(m, sep: str) -> str:
    """' (a|b|c)' or ' (lo..hi)' for a field's metadata; '' when it has neither."""
    if m["choices"]:
        return " (" + sep.join(m["choices"]) + ")"
    if m["lo"] is not None:
        return f" ({_num(m['lo'])}..{_num(m['hi'])})"
    return ""


def describe(name: str) -> str:
    """One line of help for a setting: its documentation, range and default."""
    f = FIELDS[name]
    return f"{f.metadata['doc']}{_range(f.metadata, '|')}; default {f.default!r}"


def cli_flag(name: str) -> str:
    """The command-line option of a setting (``--reverb-room`` for reverb_room)."""
    return FIELDS[name].metadata["cli"] or "--" + name.replace("_", "-")


def markdown_table() -> str:
    """The settings as a Markdown table (the README's, kept equal by a test)."""
    rows = ["| setting | CLI | default | meaning |", "|---|---|---|---|"]
    for name, f in FIELDS.items():
        m = f.metadata
        cli = f"`{cli_flag(name)}`" if m["group"] != "engine" else "-"
        rows.append(f"| `{name}` | {cli} | `{f.default!r}` | {m['doc']}{_range(m, ', ')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
