"""DLS articulation is heard: DLS1 (art1) and DLS2 (art2) connections for EG1 attack/release,
pan and the low-pass filter shape the rendered audio as the DLS model says."""
import numpy as np
import pytest

from gpusynth import Synth
from gpusynth.banks.dls import load_dls
from gpusynth.events import event_array
from dls_writer import DST, Instrument, Region, Wave, Wsmp, build_dls, conn
from synth_util import fft_pitch, cents

RATE = 48000
PERIOD = 100                 # samples per cycle at 44.1 kHz: 441 Hz at the unity note


def bank(art, rart=None, kind="dls2"):
    data = (np.sin(2 * np.pi * np.arange(PERIOD * 200) / PERIOD) * 20000).astype(np.int16)
    w = Wave(data=data, bits=16, rate=44100, wsmp=Wsmp(unity=69, loops=[(0, 0, len(data))]))
    lst, ck, rk = (b"lar2", b"art2", b"rgn2") if kind == "dls2" else (b"lart", b"art1", b"rgn ")
    reg = Region(wave=0, art=rart, art_list=lst, art_chunk=ck, kind=rk)
    ins = Instrument(program=0, regions=[reg], art=art, name="t")
    ins.art_list, ins.art_chunk = lst, ck
    return load_dls(build_dls([ins], [w]))


def render(b, rows, n):
    s = Synth(effects=False)            # articulation measured on the dry output
    s.open({"sample_rate": RATE, "voices": 16})
    s.download(b)
    s.play(event_array(rows))
    return s.render(n, 0)


def frame_db(x, hop=480):
    x = np.asarray(x, np.float64)
    n = len(x) // hop
    r = np.sqrt(np.mean(x[:n * hop].reshape(n, hop) ** 2, axis=1))
    return 20 * np.log10(np.maximum(r, 1e-12))


@pytest.mark.parametrize("kind", ["dls1", "dls2"])
def test_eg1_attack_and_release_times(kind):
    # attack 0.2 s: tc = 1200 log2(0.2); release 0.5 s for the full range
    art = [conn(DST.EG1_ATTACK, 1200 * np.log2(0.2)), conn(DST.EG1_RELEASE, 1200 * np.log2(0.5))]
    b = bank(art, kind=kind)
    off = int(0.6 * RATE)
    out = render(b, [(0, 0, 0x90, 69, 127), (off, 0, 0x80, 69, 0)], RATE)
    mono = out[:, 0].astype(np.float64) + out[:, 1]
    assert abs(cents(fft_pitch(mono[int(0.3 * RATE):off]), 441.0)) < 1.0
    env = frame_db(mono)                        # 10 ms frames
    full = env[40:55].mean()
    # linear attack in amplitude: half amplitude (-6 dB) at 0.1 s, full by 0.2 s
    assert env[9] == pytest.approx(full - 6.0, abs=1.0)
    assert env[21] == pytest.approx(full, abs=0.3)
    # release: 100 dB per 0.5 s, linear in dB: -20 dB 0.1 s after the note-off
    assert env[60 + 10] == pytest.approx(full - 20.0, abs=1.5)
    assert env[60 + 20] == pytest.approx(full - 40.0, abs=2.0)


def test_region_articulation_overrides_instrument():
    art = [conn(DST.EG1_ATTACK, 1200 * np.log2(0.2))]
    rart = [conn(DST.EG1_ATTACK, 1200 * np.log2(0.02))]
    out = render(bank(art, rart), [(0, 0, 0x90, 69, 127)], RATE // 2)
    env = frame_db(out[:, 0])
    assert env[3] == pytest.approx(env[30], abs=0.5)     # full level after 30 ms, not 200 ms


def test_pan_connection():
    out = render(bank([conn(DST.PAN, -250)]), [(0, 0, 0x90, 69, 127)], RATE // 2)
    L = np.sqrt(np.mean(out[4800:, 0].astype(np.float64) ** 2))
    R = np.sqrt(np.mean(out[4800:, 1].astype(np.float64) ** 2))
    ang = (-250 + 500) / 1000 * np.pi / 2
    assert R / L == pytest.approx(np.tan(ang), rel=1e-3)


def test_filter_cutoff_connection():
    fc = 1200 * np.log2(1000.0 / 8.175798915643707)      # 1 kHz in absolute cents
    filt = bank([conn(DST.FILTER_CUTOFF, fc)])
    dry = bank([])

    def level(b, key):
        out = render(b, [(0, 0, 0x90, key, 127)], RATE // 2)
        return np.sqrt(np.mean(out[4800:, 0].astype(np.float64) ** 2))
    # 2-pole low-pass: about 0 dB an octave below the cutoff, about -12 dB an octave above
    low = 20 * np.log10(level(filt, 57) / level(dry, 57))          # 220 Hz
    high = 20 * np.log10(level(filt, 93) / level(dry, 93))         # 1764 Hz
    assert abs(low) < 1.0
    assert -14.0 < high < -7.0
