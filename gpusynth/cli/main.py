"""The `gpusynth` entry point (also `python -m gpusynth`): the parser, one subcommand per
module of this package, and the one-line error policy."""
from __future__ import annotations

import argparse
import sys

from . import analyze, batch, info, play, render
from .common import CliError


def build_parser():
    from .. import __version__
    p = argparse.ArgumentParser(prog="gpusynth",
                                description="GPU-accelerated DirectMusic-style software synthesizer")
    p.add_argument("-V", "--version", action="version", version=f"gpusynth {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    render.add_parser(sub)
    analyze.add_parser(sub)
    info.add_parser(sub)
    play.add_parsers(sub)
    batch.add_parser(sub)
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
