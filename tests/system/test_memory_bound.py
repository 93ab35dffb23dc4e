"""The streaming path's memory bound: rendering a 5 M-note file takes no more memory than a
1 M-note one (within a fixed margin), because events are read window by window and audio is
written block by block. Each render runs in its own process; its peak RSS comes from wait4."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpusynth.blackgen import write_black_midi

ROOT = Path(__file__).resolve().parents[2]
MARGIN_MB = 40.0      # 4 M more notes: any per-note storage of >= 10 bytes would exceed this


def _render_rss(mid, out):
    cmd = [sys.executable, "-m", "gpusynth", "render", str(mid), "-o", str(out),
           "--backend", "native", "--voices", "256", "--sample-format", "pcm16",
           "--stats-json", str(out) + ".json", "-q"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 900
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            p.kill()
            pytest.fail("render did not finish in 900 s")
        time.sleep(0.05)
    err = p.stderr.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0, err
    return ru.ru_maxrss / 1024.0


@pytest.mark.slow
@pytest.mark.xdist_group("memory")
def test_render_memory_does_not_grow_with_the_note_count(tmp_path):
    import json
    rss = {}
    for n in (1_000_000, 5_000_000):
        mid = tmp_path / f"b{n}.mid"
        write_black_midi(mid, n, tracks=32, density=250_000)
        out = tmp_path / f"o{n}.wav"
        rss[n] = _render_rss(mid, out)
        st = json.loads(Path(str(out) + ".json").read_text())
        assert st["notes"] == n                              # every note was played
        assert st["peak_voices"] == 256 and st["stolen_voices"] > n // 2
        assert os.path.getsize(out) > st["duration_s"] * 48000 * 4 * 0.99
        mid.unlink()
        out.unlink()
    assert rss[5_000_000] - rss[1_000_000] < MARGIN_MB, rss
