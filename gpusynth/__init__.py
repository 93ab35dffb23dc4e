"""gpusynth: a GPU-accelerated software synthesizer following the DirectMusic synth / wave-sink
model. See README.md."""
__version__ = "0.1.0"

from .synth import Synth, SynthError  # noqa: E402,F401
