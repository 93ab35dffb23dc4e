"""Long-run stability in CI (bench/soak.py has the long versions and prints the figures):

* a paced 2-minute ``gpusynth play`` on JACK's dummy driver: no underrun, RSS flat within 5%;
* bank download/unload in a loop: memory comes back (RSS flat within 5%).
"""
from __future__ import annotations

import argparse
import ctypes.util
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import soak  # noqa: E402

SECONDS = float(os.environ.get("GPUSYNTH_SOAK_S", "120"))


def _jack_missing():
    missing = [w for w, ok in [("jackd2", shutil.which("jackd") and shutil.which("jack_wait")),
                               ("libportaudio2", ctypes.util.find_library("portaudio"))] if not ok]
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as e:
        missing.append(f"sounddevice ({e})")
    return missing


@pytest.mark.slow
@pytest.mark.realtime
@pytest.mark.xdist_group("realtime")
def test_paced_play_soak():
    missing = _jack_missing()
    if missing:
        pytest.skip("needs " + ", ".join(missing))
    from gpusynth.backend.select import check_backend
    backend = "native" if check_backend("native")[0] else "numpy"
    nps = 80.0 if backend == "native" else 4.0
    # 80 ms of ring: on a shared 2-core machine other processes can stall a render call
    res = soak.cmd_play(argparse.Namespace(seconds=SECONDS, notes_per_s=nps, backend=backend,
                                           latency_ms=80.0))
    print(res)
    if "error" in res:
        pytest.skip(res["error"])
    assert res["rc"] == 0, res.get("stderr")
    assert res["duration_s"] >= SECONDS
    assert res["underruns"] == 0, res
    assert abs(res["rss_growth"]) <= 0.05, res


@pytest.mark.slow
@pytest.mark.xdist_group("memory")
def test_download_unload_loop_returns_memory():
    res = soak.cmd_banks(argparse.Namespace(rounds=60, backend="numpy"))
    print(res)
    assert abs(res["rss_growth"]) <= 0.05, res
