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
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "start-jack.sh"
RATE = 48000
SECONDS = 3

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
    assert st.xruns == 0
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
