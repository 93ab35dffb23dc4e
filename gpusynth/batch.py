"""`gpusynth batch`: render many MIDI files (a directory, a glob, a list file) to one folder.

Local worker processes (``--jobs N``; each loads the bank once and keeps one opened synth,
gpusynth.api.Renderer) take the songs in tasks (``--per-task K`` files each), or Ray tasks
on a cluster (``--ray ADDRESS``: actors, the bank shipped once through the object store, the
MIDI bytes sent and the encoded audio returned, so no shared file system is needed). Every song
starts from a freshly opened synth and the encoding is the same code path, so the output files
are byte-identical whichever way they ran (jobs, songs per task, Ray or not). Each task's songs are
rendered in one launch (gpusynth.ensemble: one shared control path and one voice table, each
song mixed to its own output; the same bits as one by one; ``--one-by-one`` turns it off).

Resumable: an output that exists is skipped unless ``--force`` (files are written under a
temporary name and renamed, a stem folder is renamed into place when complete). A file that
fails (unreadable MIDI, a render error) is reported and skipped; the batch goes on. A summary
JSON (``OUTDIR/batch-summary.json`` unless ``--summary PATH``) lists every file with its status,
audio duration, wall time and render statistics, and the totals.
"""
from __future__ import annotations

import glob as _glob
import json
import os
import shutil
import sys
import tempfile
import time

from .api import STEM_KINDS, Renderer
from .loading import load_bank_any, load_midi
from .progress import CountProgress
from .settings import Settings

MIDI_EXT = (".mid", ".midi", ".kar", ".rmi", ".smf")


class BatchError(Exception):
    pass


# ------------------------------------------------------------------------------ inputs
def expand_inputs(items) -> list:
    """(input path, output name without extension) for every MIDI file named by ``items``:
    directories (recursive, names relative to the directory), globs, list files (``@list.txt``
    or a .txt/.lst file: one path per line, relative to the list's folder, # comments) and
    plain files. Sorted within each item; duplicates dropped; clashing names get a suffix."""
    out, seen = [], set()

    def add(path, name):
        ap = os.path.abspath(path)
        if ap in seen:
            return
        seen.add(ap)
        out.append((path, name))

    for it in items:
        it = os.fspath(it)
        if it.startswith("@") or (os.path.isfile(it) and it.lower().endswith((".txt", ".lst"))):
            lp = it[1:] if it.startswith("@") else it
            if not os.path.isfile(lp):
                raise BatchError(f"{lp}: list file not found")
            base = os.path.dirname(os.path.abspath(lp))
            with open(lp, encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    p = line if os.path.isabs(line) else os.path.join(base, line)
                    add(p, os.path.splitext(os.path.basename(p))[0])
        elif os.path.isdir(it):
            found = []
            for root, dirs, files in os.walk(it):
                dirs.sort()
                for fn in files:
                    if fn.lower().endswith(MIDI_EXT):
                        found.append(os.path.join(root, fn))
            for p in sorted(found):
                add(p, os.path.splitext(os.path.relpath(p, it))[0])
        elif any(c in it for c in "*?["):
            for p in sorted(_glob.glob(it, recursive=True)):
                if os.path.isfile(p):
                    add(p, os.path.splitext(os.path.basename(p))[0])
        else:
            add(it, os.path.splitext(os.path.basename(it))[0])   # missing: reported per file
    names = {}
    res = []
    for p, n in out:
        k = names.get(n, 0)
        names[n] = k + 1
        res.append((p, n if k == 0 else f"{n}~{k}"))
    return res


# ------------------------------------------------------------------------------ one song
def _encode(audio, rate, subtype, fmt, path):
    from .output import open_writer
    w = open_writer(path, rate, subtype, fmt=fmt)
    try:
        for i in range(0, len(audio), 1 << 16):
            w.write(audio[i:i + (1 << 16)])
    finally:
        w.close()


def render_one(renderer, midi, name, ext, subtype, stems, workdir):
    """Render one song into ``workdir`` (``name + ext``, or a folder ``name`` holding
    ``mix + ext`` and one file per stem). Returns (stats, relative paths written)."""
    song = load_midi(midi)
    fmt = ext[1:]
    t0 = time.perf_counter()
    if not stems:
        audio = renderer.render(song)
        return _write_song(audio, dict(renderer.stats), song, name, ext, subtype, workdir,
                           renderer.rate, t0)
    mix, st = renderer.render_with_stems(song, stems)
    stats = dict(renderer.stats)
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    files = []
    for stem_name, a in [("mix", mix)] + sorted(st.items()):
        _encode(a, renderer.rate, subtype, fmt, os.path.join(d, stem_name + ext))
        files.append(os.path.join(name, stem_name + ext))
    stats["stems"] = sorted(st)
    stats["wall_s"] = time.perf_counter() - t0
    stats["warnings"] = list(getattr(song, "warnings", [])) + stats.pop("preset_warnings", [])
    return stats, files


def _write_song(audio, stats, song, name, ext, subtype, workdir, rate, t0, before=0.0):
    """Encode one song's mix as ``workdir/name + ext``; returns (stats, [relative path]).
    wall_s: ``before`` (seconds spent on it elsewhere) + the time since ``t0``."""
    p = os.path.join(workdir, name + ext)
    os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
    _encode(audio, rate, subtype, ext[1:], p)
    stats["wall_s"] = before + time.perf_counter() - t0
    stats["warnings"] = list(getattr(song, "warnings", [])) + stats.pop("preset_warnings", [])
    return stats, [name + ext]


def _error(e) -> dict:
    """The result of a song that failed: reported, and the batch goes on."""
    return {"status": "error", "error": f"{type(e).__name__}: {str(e) or type(e).__name__}"}


def _job(renderer, path_or_bytes, name, opts, workdir):
    """One song -> a result dict (never raises for a bad song)."""
    try:
        st, files = render_one(renderer, path_or_bytes, name, opts["ext"], opts["subtype"],
                               opts["stems"], workdir)
        return {"status": "ok", "stats": st, "files": files}
    except Exception as e:               # a bad file is reported, the batch goes on
        return _error(e)


def _together(renderer, opts) -> bool:
    """Render a task's songs in one launch (gpusynth.ensemble)? ``--together`` /
    ``--one-by-one``; by default yes (stems are rendered one song at a time). Even where the
    worker processes already fill the cores, the shared control path does less host work per
    song (200 short songs, 2 workers on 2 cores, native: 13.2-14.2 s together against
    18.1-18.9 s one by one)."""
    t = opts.get("together")
    return (t is None or bool(t)) and not opts["stems"]


def _run_items(renderer, items, opts, workdir_for):
    """Render (idx, path or bytes, name) items; yields (idx, result, workdir). With
    ``_together`` the songs that load are rendered in one launch (each the same bits as
    alone); a song that fails to load is reported alone, and if the launch itself fails the
    songs are rendered one by one."""
    if _together(renderer, opts) and len(items) > 1:
        songs, rest = [], []
        for idx, src, name in items:
            try:
                songs.append((idx, load_midi(src), name))
            except Exception as e:
                yield idx, _error(e), None
        try:
            t0 = time.perf_counter()
            outs = renderer.render_many([sg for _, sg, _ in songs]) if songs else []
            wall = time.perf_counter() - t0
        except Exception:
            outs = None
            rest = songs
        if outs is not None:
            for (idx, sg, name), audio, st in zip(songs, outs, renderer.song_stats):
                wd = workdir_for()
                try:
                    st, files = _write_song(audio, dict(st, together=len(songs)), sg, name,
                                            opts["ext"], opts["subtype"], wd, renderer.rate,
                                            time.perf_counter(), wall / len(songs))
                    yield idx, {"status": "ok", "stats": st, "files": files}, wd
                except Exception as e:
                    yield idx, _error(e), wd
        items = [(idx, sg, name) for idx, sg, name in rest]
    for idx, src, name in items:
        wd = workdir_for()
        yield idx, _job(renderer, src, name, opts, wd), wd


# ------------------------------------------------------------------------------ local workers
_R = None
_OPTS = None


def _worker_init(bank, opts, threads):
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    global _R, _OPTS
    _R = Renderer(bank, opts["settings"])
    _OPTS = opts


def _worker_task(task, outdir):
    """Render a task of (index, input path, name) into outdir: each output written under a
    temporary name (a temporary folder) and renamed into place when complete."""
    res = []
    names = {idx: name for idx, _, name in task}
    for idx, r, tmp in _run_items(_R, task, _OPTS,
                                  lambda: tempfile.mkdtemp(prefix=".gpusynth-batch-", dir=outdir)):
        try:
            if r["status"] == "ok":
                _move_into_place(tmp, outdir, names[idx], _OPTS)
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        res.append((idx, r))
    return res


def _final(outdir, name, opts):
    return os.path.join(outdir, name if opts["stems"] else name + opts["ext"])


def _move_into_place(tmp, outdir, name, opts):
    src = os.path.join(tmp, name if opts["stems"] else name + opts["ext"])
    dst = _final(outdir, name, opts)
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    os.replace(src, dst)


# ------------------------------------------------------------------------------ Ray
def _ray_run(address, bank_obj, opts, todo, outdir, jobs, per_task, report):
    try:
        import ray
    except ImportError:
        raise BatchError("--ray needs the ray package (pip install gpusynth[dist])") from None
    if address == "local":
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    else:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        bank_ref = ray.put(bank_obj)          # shipped once; every actor maps it

        @ray.remote(num_cpus=1)
        class _Worker:
            def __init__(self, bank, o):
                os.environ.setdefault("OMP_NUM_THREADS", "1")
                from gpusynth.api import Renderer
                self.r = Renderer(bank, o["settings"])
                self.o = o

            def run(self, items):
                out = []
                for idx, r, tmp in _run_items(self.r, items, self.o,
                                              lambda: tempfile.mkdtemp(prefix="gpusynth-ray-")):
                    try:
                        if r["status"] == "ok":
                            r["blobs"] = {}
                            for rel in r["files"]:
                                with open(os.path.join(tmp, rel), "rb") as f:
                                    r["blobs"][rel] = f.read()
                    finally:
                        if tmp:
                            shutil.rmtree(tmp, ignore_errors=True)
                    out.append((idx, r))
                return out

        n_act = max(1, min(jobs, -(-len(todo) // max(per_task, 1))))
        actors = [_Worker.remote(bank_ref, opts) for _ in range(n_act)]
        tasks = [todo[i:i + per_task] for i in range(0, len(todo), per_task)]
        pending = {}
        gi = 0

        def submit(a):
            nonlocal gi
            items = []
            for idx, path, name in tasks[gi]:
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError as e:
                    report(idx, {"status": "error", "error": f"{path}: {e.strerror or e}"})
                    continue
                items.append((idx, data, name))
            gi += 1
            pending[a.run.remote(items)] = a

        for a in actors:
            if gi < len(tasks):
                submit(a)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            a = pending.pop(done[0])
            for idx, r in ray.get(done[0]):
                if r["status"] == "ok":
                    tmp = tempfile.mkdtemp(prefix=".gpusynth-batch-", dir=outdir)
                    try:
                        for rel, blob in r.pop("blobs").items():
                            p = os.path.join(tmp, rel)
                            os.makedirs(os.path.dirname(p), exist_ok=True)
                            with open(p, "wb") as f:
                                f.write(blob)
                        _move_into_place(tmp, outdir, todo_name(todo, idx), opts)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                report(idx, r)
            if gi < len(tasks):
                submit(a)
    finally:
        ray.shutdown()


def todo_name(todo, idx):
    for i, _, n in todo:
        if i == idx:
            return n
    raise KeyError(idx)


# ------------------------------------------------------------------------------ driver
def run_batch(inputs, outdir, bank=None, settings: Settings | None = None, *, jobs=None,
              per_task=8, stems=None, fmt="wav", subtype=None, force=False, ray_address=None,
              threads=None, summary=None, progress=None, quiet=False, together=None,
              **overrides) -> dict:
    """Render every MIDI file named by ``inputs`` into ``outdir``; returns the summary dict
    (also written as JSON). See the module docstring. ``settings``: a gpusynth.Settings,
    ``overrides`` any of its fields by name (``rate=44100``); every song is rendered with
    them as ``gpusynth render`` would. ``progress``: a tqdm bar over the files (None: when
    stderr is a terminal and not ``quiet``)."""
    settings = Settings.of(settings, **overrides)
    if stems is not None and stems not in STEM_KINDS:
        raise BatchError(f"--stems must be one of {', '.join(STEM_KINDS)}")
    items = expand_inputs(inputs)
    if not items:
        raise BatchError("no MIDI files found in the inputs")
    os.makedirs(outdir, exist_ok=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    jobs = max(1, int(jobs or cores or 1))
    threads = threads or max(1, (cores or 1) // jobs)
    ext = "." + fmt.lower().lstrip(".")
    if subtype is None:
        subtype = "pcm24" if ext == ".flac" else "pcm16"
    opts = {"ext": ext, "subtype": subtype, "stems": stems, "together": together,
            "settings": settings}
    results = [None] * len(items)
    todo = []
    for i, (p, n) in enumerate(items):
        if not force and os.path.exists(_final(outdir, n, opts)):
            results[i] = {"status": "skipped", "reason": "output exists (--force to redo)"}
        else:
            todo.append((i, p, n))
    prog = CountProgress(len(todo), progress if progress is not None else
                         (sys.stderr.isatty() and not quiet))

    def report(idx, r):
        results[idx] = r
        prog.update(r["status"] != "error",
                    r["stats"].get("duration_s", 0.0) if r["status"] == "ok" else 0.0)
        if r["status"] == "error" and not quiet:
            prog.write(f"gpusynth batch: {items[idx][0]}: {r['error']} (skipped)")

    t0 = time.perf_counter()
    bank_obj = load_bank_any(bank) if todo else None
    per_task = max(1, int(per_task))
    if todo and ray_address:
        _ray_run(ray_address, bank_obj, opts, todo, outdir, jobs, per_task, report)
    elif todo and jobs == 1:
        _worker_init(bank_obj, opts, None)
        for g in range(0, len(todo), per_task):
            for idx, r in _worker_task(todo[g:g + per_task], outdir):
                report(idx, r)
    elif todo:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        # each task costs about the same; smaller tasks at the end would balance better,
        # but a task per call keeps the inter-process traffic small
        tasks = [todo[g:g + per_task] for g in range(0, len(todo), per_task)]
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)),
                                 mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init,
                                 initargs=(bank_obj, opts, threads)) as ex:
            futs = {ex.submit(_worker_task, g, outdir): g for g in tasks}
            for f in as_completed(futs):
                try:
                    rs = f.result()
                except Exception as e:          # a worker died: its task is reported
                    rs = [(idx, {"status": "error", "error": f"worker failed: {e}"})
                          for idx, _, _ in futs[f]]
                for idx, r in rs:
                    report(idx, r)
    prog.close()
    wall = time.perf_counter() - t0
    files = []
    for (p, n), r in zip(items, results):
        e = {"input": p, "output": _final(outdir, n, opts), "status": r["status"]}
        if r["status"] == "ok":
            st = r["stats"]
            e.update(duration_s=st["duration_s"], wall_s=st["wall_s"],
                     realtime_factor=st["realtime_factor"], stats=st)
        elif r["status"] == "error":
            e["error"] = r["error"]
        else:
            e["reason"] = r["reason"]
        files.append(e)
    ok = [f for f in files if f["status"] == "ok"]
    audio = sum(f["duration_s"] for f in ok)
    summ = {"files": files,
            "totals": {"files": len(files), "ok": len(ok),
                       "failed": sum(f["status"] == "error" for f in files),
                       "skipped": sum(f["status"] == "skipped" for f in files),
                       "audio_s": audio, "wall_s": wall,
                       "files_per_s": len(ok) / wall if wall > 0 else 0.0,
                       "realtime_factor": audio / wall if wall > 0 else 0.0,
                       "jobs": jobs, "per_task": per_task, "ray": ray_address,
                       "backend": ok[0]["stats"]["backend"] if ok else settings.backend}}
    path = summary or os.path.join(outdir, "batch-summary.json")
    with open(path, "w") as f:
        json.dump(summ, f, indent=1, default=float)
    summ["summary_path"] = path
    return summ
