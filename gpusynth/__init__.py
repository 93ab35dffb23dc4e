"""gpusynth: a GPU-accelerated software synthesizer following the DirectMusic synth / wave-sink
model. See README.md."""
__version__ = "0.1.0"

from .synth import Synth, SynthError  # noqa: E402,F401
from . import render  # noqa: E402,F401  (callable: gpusynth.render(midi) -> array)
from .api import Renderer, load_midi  # noqa: E402,F401
