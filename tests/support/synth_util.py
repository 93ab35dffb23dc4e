"""Small real banks and helpers for engine tests (built with the bank model's own tools)."""
import numpy as np

from gpusynth import Synth
from gpusynth.banks.model import Bank, Preset, PoolBuilder, new_regions, LOOP_FORWARD
from gpusynth.events import event_array

RATE = 48000


def cosine_cycle(period=100, cycles=50):
    n = period * cycles
    return np.cos(2 * np.pi * np.arange(n + 8) / period).astype(np.float32)[: n + 8], n


def sine_bank(attack_tc=-32768.0, release_tc=-2400.0, decay_tc=-32768.0, sustain_cb=0.0,
              excl_keys=(), drum_hz=100.0):
    """A bank with a looped cosine 'sine-like' melodic patch (program 0, root key 69 at 440 Hz)
    and a drum kit (program 0) whose keys play a 100 Hz cosine; keys in excl_keys share
    exclusive class 1."""
    pb = PoolBuilder()
    period = 100
    data, n = cosine_cycle(period, 50)
    s0, e0 = pb.add(data[:n])
    d, dn = cosine_cycle(480, 20)
    s1, e1 = pb.add(d[:dn])
    pool = pb.build()
    regs = new_regions(2 + 128)
    r = regs[0]
    r["start"], r["end"], r["loop_start"], r["loop_end"] = s0, e0, s0, e0
    r["loop_mode"] = LOOP_FORWARD
    r["sample_rate"] = 440.0 * period
    r["root_key"] = 69
    for i in range(len(regs)):
        regs[i]["ve_attack"] = attack_tc
        regs[i]["ve_release"] = release_tc
        regs[i]["ve_decay"] = decay_tc
        regs[i]["ve_sustain"] = sustain_cb
        regs[i]["vel_atten"] = 0.0
    # drum regions, one per key (1 + key): 100 Hz cosine one-shot-ish (looped) at any key
    for k in range(128):
        rr = regs[2 + k]
        rr["key_lo"] = rr["key_hi"] = k
        rr["start"], rr["end"], rr["loop_start"], rr["loop_end"] = s1, e1, s1, e1
        rr["loop_mode"] = LOOP_FORWARD
        rr["sample_rate"] = drum_hz * 480
        rr["root_key"] = k
        rr["scale_tuning"] = 0.0
        if k in excl_keys:
            rr["excl_class"] = 1
    regs = regs[[0] + list(range(2, 130))]
    presets = [Preset(0, 0, "sine", np.array([0], np.int32)),
               Preset(0, 0, "kit", np.arange(1, 129, dtype=np.int32), drum=True)]
    return Bank("test-sine", pool, regs, presets).validate()


def make_synth(bank=None, backend="numpy", voices=64, rate=RATE, **kw):
    # engine tests measure the dry path (exact silence, levels, pans, sample-exact releases):
    # no reverb/chorus unless asked for (tests/unit/test_effects.py turns them on)
    kw.setdefault("effects", False)
    s = Synth(backend=backend, **kw)
    s.open({"sample_rate": rate, "voices": voices})
    s.download(bank if bank is not None else sine_bank())
    return s


def render_events(rows, n, bank=None, block=4096, backend="numpy", voices=64, **kw):
    s = make_synth(bank, backend, voices, **kw)
    s.play(event_array(rows))
    out = np.zeros((n, 2), np.float32)
    pos = 0
    while pos < n:
        m = min(block, n - pos)
        out[pos:pos + m] = s.render(m, pos)
        pos += m
    return out, s


def fft_pitch(x, rate=RATE):
    x = np.asarray(x, np.float64)
    n = len(x)
    sp = np.abs(np.fft.rfft(x * np.hanning(n), 8 * n))
    k = int(np.argmax(sp[1:])) + 1
    a, b, c = np.log(sp[k - 1:k + 2] + 1e-300)
    d = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + d) * rate / (8 * n)


def cents(f, ref):
    return 1200 * np.log2(f / ref)
