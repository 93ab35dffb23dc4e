"""Progress through tqdm (gpusynth.progress): the render bar shows the position in seconds of
audio, the real-time factor, notes/s, voices and tqdm's ETA; the API draws it on request."""
import io
import re

import gpusynth
from gpusynth.progress import CountProgress, RenderProgress, si
from gpusynth.rendering import open_synth, render_opened
from gpusynth.demo import demo_song


def test_si():
    assert (si(999), si(1500), si(2.5e6), si(3e9)) == ("999", "1.5k", "2.5M", "3.0G")


def test_render_bar_figures():
    song = demo_song()
    synth, _ = open_synth(None, backend="numpy", voices=64, song=song)
    buf = io.StringIO()
    prog = RenderProgress(True, desc="demo ", file=buf, mininterval=0.0)
    synth.stream(song.cursor(48000))
    end = int(round(song.duration_s * 48000))
    for pos in range(0, 4 * 16384, 16384):
        synth.render(16384, pos)
        prog(pos + 16384, end, synth)
    prog.close()
    out = buf.getvalue()
    assert "demo" in out and re.search(r"x\d+\.\d\d RT", out) and "notes/s" in out
    assert re.search(r"voices \d+", out) and re.search(r"<\d\d:\d\d", out)   # the ETA
    assert f"1.4/{round(end / 48000, 1)} s" in out            # 65,536 frames at 48 kHz


def test_disabled_bar_writes_nothing(capsys):
    song = demo_song()
    synth, _ = open_synth(None, backend="null", song=song)
    render_opened(synth, song, progress=RenderProgress(False))
    assert capsys.readouterr().err == ""


def test_api_progress(capsys):
    """gpusynth.render(..., progress=True) draws the bar on stderr (a widget in Jupyter)."""
    a = gpusynth.render(_one_note(), backend="numpy", voices=16, progress=True)
    err = capsys.readouterr().err
    assert len(a) > 0 and "RT" in err and "notes/s" in err


def test_count_bar():
    buf = io.StringIO()
    p = CountProgress(3, True, file=buf, mininterval=0.0)
    p.update(True, 10.0)
    p.update(False)
    p.write("line")
    p.close()
    assert (p.done, p.errors, p.audio_s) == (2, 1, 10.0)
    assert "1 failed" in buf.getvalue() and "x RT" in buf.getvalue()


def _one_note() -> bytes:
    trk = bytes([0x00, 0x90, 60, 100, 0x83, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    return (b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
            + (480).to_bytes(2, "big") + b"MTrk" + len(trk).to_bytes(4, "big") + trk)
