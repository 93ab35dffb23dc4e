"""`gpusynth play` and `gpusynth live`: real-time playback through the wave sink (hostsink)."""
from __future__ import annotations

import json
import sys
import time

import numpy as np

from ..events import make_events
from .common import (CliError, add_effect_args, add_setting, backend_choice, load_bank,
                     load_song, settings_from_args)

TAIL_S = 2.0
# the voice limit of real-time playback unless --voices says otherwise: what a small machine
# renders within a 20 ms callback (an offline render's default is the settings', 4096)
PLAY_VOICES = 256


def _output(a, rate):
    from hostsink import SoundDeviceOutput
    dev = a.device
    if dev is not None and dev.isdigit():
        dev = int(dev)
    try:
        import sounddevice as sd
        sd.query_devices(dev, kind="output")     # a bad id/name fails here, in one line
        sd.check_output_settings(device=dev, samplerate=rate, channels=2, dtype="float32")
        return SoundDeviceOutput(device=dev, rate=rate)
    except ImportError:
        raise CliError("audio output needs sounddevice and PortAudio: pip install "
                       "'gpusynth[audio]' (and the libportaudio2 package)") from None
    except Exception as e:     # PortAudio missing, no device, bad device id or name
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = " (see `python -m sounddevice` for the devices)" if dev is not None else ""
        raise CliError(f"audio output: {msg}{hint}") from None


def _synth(a, bank, backend, groups):
    from ..rendering import open_synth
    settings = settings_from_args(a, backend=backend)
    if not hasattr(a, "voices"):
        settings = settings.replace(voices=PLAY_VOICES)
    try:
        s, eff = open_synth(bank, groups=groups, settings=settings)
    except ValueError as e:
        raise CliError(str(e)) from None
    return s, eff


def _status(st, synth, t_total=None):
    rate = st.sample_rate
    t = st.frames_played / rate
    tot = f"/{t_total:6.1f}" if t_total else ""
    sys.stderr.write(f"\r{t:6.1f}{tot} s  voices {synth.active_voices:5d}  "
                     f"load {st.render_load_recent * 100:5.1f}%  underruns {st.underruns}   ")
    sys.stderr.flush()


def play_main(a):
    import hostsink
    backend, why = backend_choice(getattr(a, "backend", None))
    song = load_song("--demo" if a.demo else a.input)
    bank = load_bank(a.bank)
    synth, eff = _synth(a, bank, backend, song.channel_groups)
    rate = eff["sample_rate"]
    out = _output(a, rate)
    end = int(round(song.duration_s * rate))
    state = {}

    def on_start(sink):
        # DirectMusic scheduling: stamp the song by reference time from the latency clock
        synth.set_sink(sink)
        t0 = synth.get_latency_clock().now()
        ev = song.events(rate)
        rt = t0 + np.round(ev["time"].astype(np.float64) / rate * hostsink.REF_PER_SEC).astype(np.int64)
        base = sink.ref_to_sample(int(t0))
        ev["time"] = base + ((rt - t0) * rate + hostsink.REF_PER_SEC // 2) // hostsink.REF_PER_SEC
        with sink.render_lock:
            synth.play(ev, song.sysex)
        state["start"] = base

    interactive = sys.stderr.isatty()
    t_wall = time.perf_counter()
    interrupted = False
    try:
        st = hostsink.play(synth, out, duration_frames=end + int((TAIL_S + a.latency_ms / 1000) * rate),
                           on_status=(lambda s: _status(s, synth, song.duration_s)) if interactive else None,
                           latency_ms=a.latency_ms, on_start=on_start)
    except KeyboardInterrupt:
        interrupted = True
        st = None
    except Exception as e:       # the device failed when the stream started
        if type(e).__name__ not in ("PortAudioError", "OSError", "RuntimeError", "ValueError"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CliError(f"audio output: {msg}") from None
    finally:
        try:
            synth.all_notes_off()
        except Exception:
            pass
    if interactive:
        sys.stderr.write("\n")
    if interrupted:
        print("stopped (all notes off, stream closed)", file=sys.stderr)
        return 130
    wall = time.perf_counter() - t_wall
    res = {"underruns": st.underruns, "underrun_frames": st.underrun_frames, "xruns": st.xruns,
           "latency_ms": st.latency_ms, "device_latency_ms": st.device_latency_ms,
           "load": st.render_load, "load_peak": st.render_load_peak,
           "duration_s": st.frames_played / rate, "wall_s": wall, "backend": backend,
           "backend_reason": why, "peak_voices": synth.running_stats()["peak_voices"]}
    print(f"played {res['duration_s']:.1f} s: {res['underruns']} underruns, "
          f"latency {res['latency_ms']:.1f} ms (+{res['device_latency_ms']:.1f} ms device), "
          f"load {res['load'] * 100:.1f}% on {backend}")
    if a.stats_json:
        with open(a.stats_json, "w") as f:
            json.dump(res, f, indent=2, default=float)
    return 0


def live_main(a):
    try:
        import mido
    except ImportError:
        raise CliError("live input needs mido and python-rtmidi: pip install 'gpusynth[live]'") from None
    try:
        names = mido.get_input_names()
    except Exception as e:
        raise CliError(f"cannot list MIDI input ports: {e}") from None
    if a.list_ports:
        for n in names:
            print(n)
        if not names:
            print("(no MIDI input ports)", file=sys.stderr)
        return 0
    if not names and not a.port:
        raise CliError("no MIDI input ports (use --list-ports; connect a device or a virtual port)")
    import hostsink
    backend, why = backend_choice(getattr(a, "backend", None))
    bank = load_bank(a.bank)
    a.voices = PLAY_VOICES
    synth, eff = _synth(a, bank, backend, 1)
    out = _output(a, eff["sample_rate"])
    sinkref = {}

    def on_msg(msg):
        sink = sinkref.get("sink")
        if sink is None or msg.is_meta:
            return
        raw = msg.bytes()
        if not raw or raw[0] < 0x80 or raw[0] >= 0xF0:
            return
        e = make_events(1)
        try:
            e["time"] = sink.latency_sample()       # stamped on arrival, rendered at the latency clock
        except Exception:
            return
        e["chan"] = raw[0] & 0x0F
        e["status"] = raw[0] & 0xF0
        e["data1"] = raw[1] if len(raw) > 1 else 0
        e["data2"] = raw[2] if len(raw) > 2 else 0
        with sink.render_lock:
            synth.play(e)

    try:
        port = mido.open_input(a.port or names[0], callback=on_msg)
    except Exception as e:
        raise CliError(f"cannot open MIDI input {a.port or names[0]!r}: {e}") from None
    print(f"listening on {port.name} (Ctrl-C to stop)", file=sys.stderr)
    try:
        hostsink.play(synth, out, duration_frames=None, latency_ms=a.latency_ms,
                      on_start=lambda s: sinkref.__setitem__("sink", s),
                      on_status=lambda s: _status(s, synth) if sys.stderr.isatty() else None)
    except KeyboardInterrupt:
        pass
    finally:
        port.close()
        synth.all_notes_off()
    print("\nstopped", file=sys.stderr)
    return 0


def add_parsers(sub):
    """`gpusynth play` and `gpusynth live`."""
    pl = sub.add_parser("play", help="play a MIDI file in real time")
    pl.add_argument("input", nargs="?")
    pl.add_argument("--demo", action="store_true")
    pl.add_argument("--device", help="output device id or name")
    pl.add_argument("--latency-ms", type=float, default=20.0)
    pl.add_argument("--bank")
    add_setting(pl, "backend", choices=None, metavar="NAME")
    add_setting(pl, "rate", metavar="HZ")
    add_setting(pl, "voices", metavar="N", help=f"voice limit (default {PLAY_VOICES} for real "
                                                "time)")
    pl.add_argument("--stats-json")
    add_effect_args(pl)
    pl.set_defaults(fn=play_main)
    lv = sub.add_parser("live", help="play from a MIDI input port")
    lv.add_argument("--port")
    lv.add_argument("--list-ports", action="store_true")
    lv.add_argument("--device")
    lv.add_argument("--latency-ms", type=float, default=20.0)
    lv.add_argument("--bank")
    add_setting(lv, "backend", choices=None, metavar="NAME")
    add_setting(lv, "rate", metavar="HZ")
    lv.set_defaults(fn=live_main)
