"""Real-time test on a paced virtual device: JACK's dummy driver (DESIGN.md section 7).

Needs Debian ``jackd2`` (jackd, jack_wait), ``libportaudio2`` and pip ``sounddevice``;
skipped with the reason otherwise.  The fixture starts a private JACK server through
``scripts/start-jack.sh`` (dummy driver, 48 kHz, 256-frame periods) and stops it after.
The play takes 3 s of wall time, plus about 1 s to start the server.
"""
from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from gpusynth.backend.select import check_backend

# real time needs a compiled backend; the numpy reference is for clarity, not speed
RT_BACKEND = "native" if check_backend("native")[0] else "numpy"
import pytest

pytestmark = [pytest.mark.realtime, pytest.mark.slow, pytest.mark.xdist_group("realtime")]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "start-jack.sh"
RATE = 48000
SECONDS = 3
LATENCY_SYNTH_MS = 40

_missing = [what for what, ok in [
    ("jackd (apt install jackd2)", shutil.which("jackd") and shutil.which("jack_wait")),
    ("libportaudio2 (apt install libportaudio2)", ctypes.util.find_library("portaudio")),
] if not ok]
try:
    import sounddevice  # noqa: F401
except (ImportError, OSError) as e:  # OSError: the PortAudio library is missing
    _missing.append(f"sounddevice ({e})")
if _missing:
    pytest.skip("real-time JACK test needs " + ", ".join(_missing), allow_module_level=True)

from hostsink import (SoundDeviceOutput, WaveSink, find_output_device,  # noqa: E402
                      initialize_portaudio, play, reinitialize_portaudio, terminate_portaudio)


class SineSource:
    def __init__(self, freq=440.0, rate=RATE):
        self.sample_rate = rate
        self.freq = freq

    def render(self, n, position):
        t = np.arange(position, position + n, dtype=np.float64) / self.sample_rate
        v = (0.3 * np.sin(2 * np.pi * self.freq * t)).astype(np.float32)
        return np.stack([v, v], axis=1)


@pytest.fixture(scope="module")
def jack_device():
    name = f"gpusynth-test-{os.getpid()}"
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    env = dict(os.environ, JACK_RATE=str(RATE), JACK_PERIOD="256")
    r = subprocess.run(["bash", str(SCRIPT), name], env=env, capture_output=True, text=True,
                       timeout=60)
    try:
        if r.returncode != 0:
            pytest.skip(f"could not start the JACK dummy server: {r.stderr.strip()[-500:]}")
        reinitialize_portaudio()  # PortAudio scans host APIs at init: make it see the server
        try:
            dev = find_output_device(hostapi="JACK")
        except LookupError:
            pytest.skip("PortAudio has no JACK host API device (libportaudio2 without JACK?)")
        yield dev
    finally:
        # PortAudio's JACK host API aborts if terminated after its server is gone:
        # terminate first, stop the server, then initialize again
        terminate_portaudio()
        subprocess.run(["bash", str(SCRIPT), "--stop", name], env=env, timeout=30)
        initialize_portaudio()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_three_seconds_on_jack_dummy_no_underruns(jack_device):
    out = SoundDeviceOutput(device=jack_device, rate=RATE)
    statuses = []
    sink = WaveSink(SineSource(), out, latency_ms=20, period_ms=5)
    t0 = time.monotonic()
    ref0 = out.clock.now()
    st = play(SineSource(), out, duration_frames=SECONDS * RATE, on_status=statuses.append,
              status_interval=0.5, sink=sink)
    wall = time.monotonic() - t0
    elapsed_ref = out.clock.now() - ref0
    report = dict(st.as_dict(), wall_s=round(wall, 4), device_clock_s=elapsed_ref / 1e7,
                  callbacks=out.callbacks, blocksize=st.frames_consumed / max(out.callbacks, 1))
    print("\nJACK dummy:", json.dumps(report))
    # zero underruns: the callback always found the ring filled
    assert st.underruns == 0 and st.underrun_frames == 0
    # the device consumed 3 s of audio: at least the requested frames, at most 100 ms
    # more (play() stops within one device period and one scheduling slice of the end)
    assert SECONDS * RATE <= st.frames_played <= st.frames_consumed <= SECONDS * RATE + RATE // 10
    # and it is paced: it took 3 s of wall time (within 5 %; the server is already running)
    assert abs(wall - SECONDS) < 0.05 * SECONDS
    # the DeviceClock followed the consumed frames
    assert abs(elapsed_ref / 1e7 - st.frames_consumed / RATE) < 0.02
    assert 0 < st.render_load < 1
    # ring latency: the 20 ms target, less what the device took since the last pump
    # (at most one device period + one sink period)
    assert 20 - 1000 * 256 / RATE - 5 - 1 <= st.latency_ms <= 20
    assert 0 < st.device_latency_ms < 100


def test_real_synth_on_jack_dummy(jack_device):
    """The native synth playing chords for 2 s, stamped through the latency clock. (The numpy
    reference computes every tick in float32 exactly as the kernels do, about 1 ms per tick
    with a handful of voices: a definition, not a real-time engine; real time is the native
    and GPU backends' job.)"""
    synth_mod = pytest.importorskip("gpusynth.synth")
    from gpusynth import events as ev
    from gpusynth.banks.builtin import load_builtin
    synth = synth_mod.Synth(backend=RT_BACKEND)
    synth.open({"sample_rate": RATE, "voices": 128})
    synth.download(load_builtin())
    out = SoundDeviceOutput(device=jack_device, rate=RATE)
    sink = WaveSink(synth, out, latency_ms=LATENCY_SYNTH_MS, period_ms=5)

    def on_start(sink):  # stamp the score relative to "now" on the latency clock
        t0 = sink.ref_to_sample(sink.latency_clock().now())
        rows = []
        for i in range(8):
            t = t0 + i * 12000
            for k in (0, 4, 7, 12):
                rows.append((t + k * 10, (i % 2) * 9, ev.NOTE_ON, 48 + k + i, 100))
                rows.append((t + 11000, (i % 2) * 9, ev.NOTE_OFF, 48 + k + i, 0))
        with sink.render_lock:  # Synth.play is not safe concurrently with render (yet)
            synth.play(ev.event_array(rows))

    st = play(synth, out, duration_frames=2 * RATE, on_start=on_start, sink=sink)
    print(f"\nJACK dummy + {RT_BACKEND} synth:", json.dumps(dict(st.as_dict(),
                                                          synth=synth.running_stats()), default=str))
    assert synth.running_stats()["notes"] == 32
    # device xruns are printed, not asserted: on a loaded machine the GIL can delay the
    # PortAudio callback past a JACK period even with the ring full
    assert st.underruns == 0
    assert 2 * RATE <= st.frames_played <= 2 * RATE + RATE // 10


def test_gpusynth_play_cli_on_jack_dummy(jack_device, tmp_path):
    """`gpusynth play` end to end: a 4 s multi-channel excerpt of the demo song on the paced
    JACK device, stats JSON with zero underruns and the right duration."""
    import sys
    from gpusynth.demo import demo_tracks, PPQ, BPM
    from gpusynth.smf import write_smf
    cut = int(4 * BPM / 60 * PPQ)
    mid = tmp_path / "demo4.mid"
    write_smf(mid, [[e for e in t if e[0] < cut] for t in demo_tracks()], ppq=PPQ)
    js = tmp_path / "play.json"
    terminate_portaudio()      # the child process opens its own PortAudio on the same server
    try:
        r = subprocess.run([sys.executable, "-m", "gpusynth", "play", str(mid), "--device",
                            str(jack_device), "--backend", RT_BACKEND, "--latency-ms",
                            str(LATENCY_SYNTH_MS), "--stats-json", str(js)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    finally:
        initialize_portaudio()
    assert r.returncode == 0, r.stderr[-2000:]
    st = json.loads(js.read_text())
    print("\ngpusynth play:", json.dumps(st))
    assert st["underruns"] == 0
    assert st["duration_s"] >= 4.0 and st["backend"] == RT_BACKEND
    assert 0 < st["load"] < 1
