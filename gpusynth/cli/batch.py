"""`gpusynth batch`: many MIDI files to one folder (gpusynth.batch.run_batch)."""
from __future__ import annotations

import os

from .common import CliError, add_effect_args, add_setting, backend_choice, settings_from_args


def run(a):
    from ..batch import BatchError, run_batch
    if a.ray and a.ray not in ("auto", "local") and ":" not in a.ray:
        raise CliError(f"--ray {a.ray}: give auto, local or HOST:PORT (ray://HOST:PORT)")
    for b in a.bank or []:
        if not os.path.isfile(b):
            raise CliError(f"{b}: no such bank file")
    if a.jobs is not None and a.jobs < 1:
        raise CliError("--jobs must be >= 1")
    backend = getattr(a, "backend", None)
    if backend is not None:
        backend_choice(backend)                 # unknown or unavailable: one line, now
    settings = settings_from_args(a)
    try:
        s = run_batch(a.inputs, a.output, (a.bank or [None])[0], settings, jobs=a.jobs,
                      per_task=a.per_task, stems=a.stems, fmt=a.format,
                      subtype="float" if a.float else None, force=a.force, ray_address=a.ray,
                      summary=a.summary, quiet=a.quiet, together=a.together)
    except BatchError as e:
        raise CliError(str(e)) from None
    t = s["totals"]
    if not a.quiet:
        print(f"{a.output}: {t['ok']} rendered, {t['skipped']} skipped (done before), "
              f"{t['failed']} failed; {t['audio_s']:.1f} s of audio in {t['wall_s']:.1f} s "
              f"({t['files_per_s']:.1f} files/s, {t['realtime_factor']:.1f}x real time); "
              f"summary {s['summary_path']}")
    return 2 if t["failed"] else 0


def add_parser(sub):
    """Register `gpusynth batch` on the CLI's subparsers."""
    b = sub.add_parser("batch", help="render many MIDI files (folders, globs, list files)")
    b.add_argument("inputs", nargs="+", metavar="IN",
                   help="MIDI files, folders (recursive), globs, list files (@list.txt)")
    b.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    b.add_argument("--bank", action="append", metavar="PATH",
                   help="SF2, SF3 or DLS bank (default: the built-in GM bank)")
    b.add_argument("-j", "--jobs", type=int, default=None,
                   help="worker processes (default: the usable cores)")
    b.add_argument("--per-task", "--group", dest="per_task", type=int, default=8, metavar="K",
                   help="songs per task: a worker's unit of work, rendered in one launch "
                        "(default 8; --group is the old spelling)")
    tg = b.add_mutually_exclusive_group()
    tg.add_argument("--together", dest="together", action="store_true", default=None,
                    help="render each task's songs in one launch, one control path and one "
                         "voice table (the default; every output is the same either way)")
    tg.add_argument("--one-by-one", dest="together", action="store_false",
                    help="render each task's songs one after another")
    b.add_argument("--stems", choices=["channel", "program", "track"],
                   help="also write one file per stem: OUTDIR/NAME/mix.wav + STEM.wav")
    b.add_argument("--format", default="wav", choices=["wav", "flac", "w64", "aiff"],
                   help="output format (default wav)")
    b.add_argument("--float", action="store_true", help="32-bit float samples (default 16-bit)")
    b.add_argument("--force", action="store_true", help="render again outputs that exist")
    b.add_argument("--ray", metavar="ADDRESS",
                   help="run as Ray tasks: auto (the running cluster), HOST:PORT, or local "
                        "(start a private local instance); pip install gpusynth[dist]")
    add_setting(b, "backend", choices=None, metavar="NAME")
    add_setting(b, "rate", "-r", metavar="HZ")
    add_setting(b, "voices", metavar="N")
    add_setting(b, "gain", "-g", metavar="G")
    b.add_argument("--summary", metavar="PATH",
                   help="summary JSON (default OUTDIR/batch-summary.json)")
    b.add_argument("-q", "--quiet", action="store_true")
    add_effect_args(b)
    b.set_defaults(fn=run)
    return b
