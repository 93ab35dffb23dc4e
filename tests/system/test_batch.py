"""`gpusynth batch` / gpusynth.batch.run_batch: inputs (folders, globs, list files), worker
processes, resumability, bad files skipped and reported, summary JSON, stems, byte-identical
outputs across job counts, groupings and a local Ray instance."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gpusynth.batch import run_batch, expand_inputs
from gpusynth.smf import write_smf, tempo_meta

from synth_util import sine_bank

# the numpy reference is slow: the batch machinery runs on native where a compiler works
FAST = "native" if "native" in __import__("conftest").backends() else "numpy"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _songs(d, n=6):
    os.makedirs(os.path.join(d, "sub"), exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        tr = [(0, tempo_meta(500000))]
        for k in range(8):
            key = int(rng.integers(48, 84))
            tr += [(k * 120, bytes([0x90 | (i % 2), key, 100])), (k * 120 + 90, bytes([0x80 | (i % 2), key, 0]))]
        dr = [(k * 240, bytes([0x99, 36 + k, 100])) for k in range(4)] + \
             [(k * 240 + 60, bytes([0x89, 36 + k, 0])) for k in range(4)]
        p = os.path.join(d, "sub" if i % 2 else "", f"s{i}.mid")
        write_smf(p, [tr, dr])
        paths.append(p)
    with open(os.path.join(d, "bad.mid"), "wb") as f:
        f.write(b"MThd\x00\x00")
    return paths


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("songs"))
    _songs(d)
    return d


def _files(outdir):
    out = {}
    for root, _, fs in os.walk(outdir):
        for f in fs:
            if f.endswith(".wav"):
                p = os.path.join(root, f)
                out[os.path.relpath(p, outdir)] = open(p, "rb").read()
    return out


def test_expand_inputs(songs, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"# songs\n{songs}/s0.mid\n\n{songs}/sub/s1.mid\n{songs}/s0.mid\n")
    assert [n for _, n in expand_inputs([songs])] == ["bad", "s0", "s2", "s4", "sub/s1", "sub/s3", "sub/s5"]
    assert [n for _, n in expand_inputs([f"{songs}/sub/*.mid"])] == ["s1", "s3", "s5"]
    assert [n for _, n in expand_inputs([str(lst)])] == ["s0", "s1"]
    assert [n for _, n in expand_inputs(["@" + str(lst), f"{songs}/s2.mid", "x/s2.mid"])] == \
        ["s0", "s1", "s2", "s2~1"]


def test_batch_local(songs, tmp_path):
    bank = sine_bank()
    out1 = str(tmp_path / "o1")
    s = run_batch([songs], out1, bank, jobs=2, per_task=2, backend=FAST, progress=False,
                  quiet=True, effects=False)
    t = s["totals"]
    assert (t["files"], t["ok"], t["failed"], t["skipped"]) == (7, 6, 1, 0)
    bad = [f for f in s["files"] if f["status"] == "error"]
    assert bad[0]["input"].endswith("bad.mid") and "MThd" in bad[0]["error"]
    js = json.load(open(os.path.join(out1, "batch-summary.json")))
    assert js["totals"]["ok"] == 6
    ok = [f for f in js["files"] if f["status"] == "ok"]
    assert all(f["duration_s"] > 0.9 and f["stats"]["notes"] == 12 for f in ok)
    first = _files(out1)
    assert sorted(first) == ["s0.wav", "s2.wav", "s4.wav", "sub/s1.wav", "sub/s3.wav", "sub/s5.wav"]
    assert not [f for f in os.listdir(out1) if f.startswith(".")]          # no temporaries
    # resumable: everything that exists is skipped; the bad file is tried again
    os.unlink(os.path.join(out1, "s2.wav"))
    s = run_batch([songs], out1, bank, jobs=2, backend=FAST, progress=False, quiet=True,
                  effects=False)
    assert (s["totals"]["ok"], s["totals"]["skipped"], s["totals"]["failed"]) == (1, 5, 1)
    assert _files(out1) == first
    # one job, other groups, --force: the same bytes
    out2 = str(tmp_path / "o2")
    run_batch([songs], out2, bank, jobs=1, per_task=5, backend=FAST, progress=False,
              quiet=True, effects=False)
    assert _files(out2) == first
    s = run_batch([songs], out2, bank, jobs=1, per_task=1, backend=FAST, force=True,
                  progress=False, quiet=True, effects=False)
    assert s["totals"]["ok"] == 6 and _files(out2) == first


def test_batch_together(songs, tmp_path):
    """--together (each task's songs in one launch, with reverb and chorus on) writes the same
    bytes as one by one; the bad file of the group is reported and its neighbours render."""
    out1, out2 = str(tmp_path / "one"), str(tmp_path / "tog")
    run_batch([songs], out1, sine_bank(), jobs=1, per_task=4, backend=FAST, progress=False,
              quiet=True, together=False)
    s = run_batch([songs], out2, sine_bank(), jobs=1, per_task=4, backend=FAST, progress=False,
                  quiet=True, together=True)
    t = s["totals"]
    assert (t["ok"], t["failed"]) == (6, 1)
    assert max(f["stats"].get("together", 1) for f in s["files"] if f["status"] == "ok") >= 3
    a, b = _files(out1), _files(out2)
    assert sorted(a) == sorted(b) and len(a) == 6
    assert a == b


def test_batch_stems(songs, tmp_path):
    import soundfile as sf
    out = str(tmp_path / "st")
    s = run_batch([f"{songs}/s0.mid", f"{songs}/sub/s1.mid"], out, sine_bank(), jobs=1,
                  stems="channel", subtype="float", backend=FAST,
                  progress=False, quiet=True)
    assert s["totals"]["ok"] == 2
    assert sorted(os.listdir(os.path.join(out, "s0"))) == ["ch01.wav", "ch10.wav", "mix.wav"]
    assert sorted(os.listdir(os.path.join(out, "s1"))) == ["ch02.wav", "ch10.wav", "mix.wav"]
    mix, _ = sf.read(os.path.join(out, "s1", "mix.wav"), dtype="float32")
    total = sum(sf.read(os.path.join(out, "s1", f), dtype="float32")[0] for f in ("ch02.wav", "ch10.wav"))
    assert np.max(np.abs(total - mix)) <= 1e-5 * np.max(np.abs(mix))


def _native():
    from conftest import backends
    return "native" in backends()


@pytest.mark.slow
def test_cli_batch(songs, tmp_path):
    """The CLI: exit status 2 when a file failed (the others are written), the summary path."""
    lst = tmp_path / "l.txt"
    lst.write_text(f"{songs}/s0.mid\n{songs}/bad.mid\n{songs}/missing.mid\n")
    out = tmp_path / "c"
    r = subprocess.run([sys.executable, "-m", "gpusynth", "batch", str(lst), "-o", str(out),
                        "-j", "1", "--backend", FAST],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "1 rendered, 0 skipped (done before), 2 failed" in r.stdout
    assert "missing.mid" in r.stderr and "bad.mid" in r.stderr
    assert (out / "s0.wav").exists() and (out / "batch-summary.json").exists()


RAY_SCRIPT = r"""
import json, sys
from gpusynth.batch import run_batch
sys.path.insert(0, {tests!r})
from synth_util import sine_bank
s = run_batch([{songs!r}], {out!r}, sine_bank(), jobs=2, per_task=2, backend={backend!r},
              ray_address="local", progress=False, quiet=True, effects=False)
print("TOTALS", json.dumps(s["totals"]))
"""


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_batch_ray_local(songs, tmp_path):
    """Ray tasks on a private local instance (run in its own network namespace, where
    127.0.0.1 is the only address): the same bytes as the local run."""
    try:
        import ray  # noqa: F401
    except ImportError as e:
        print(f"SKIP reason: ray is not installed ({e})")
        pytest.skip(f"ray is not installed ({e})")
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        print("SKIP reason: cannot create a private network namespace (unshare -rn)")
        pytest.skip("cannot create a private network namespace (unshare -rn)")
    out_ray, out_loc = str(tmp_path / "ray"), str(tmp_path / "loc")
    script = RAY_SCRIPT.format(tests=os.path.join(ROOT, "tests", "support"), songs=songs, out=out_ray,
                               backend=FAST)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    r = subprocess.run(["unshare", "-rn", "sh", "-c",
                        f"ip link set lo up && exec {sys.executable} -c \"$0\"", script],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=240)
    if "TOTALS" not in r.stdout:
        reason = (r.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"SKIP reason: Ray could not start: {reason}")
        pytest.skip(f"Ray could not start: {reason}")
    totals = json.loads(r.stdout.split("TOTALS", 1)[1])
    assert (totals["ok"], totals["failed"]) == (6, 1)
    run_batch([songs], out_loc, sine_bank(), jobs=2, backend=FAST, progress=False,
              quiet=True, effects=False)
    a, b = _files(out_ray), _files(out_loc)
    assert len(a) == 6 and a == b
