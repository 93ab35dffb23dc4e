"""gpusynth: a GPU-accelerated software synthesizer following the DirectMusic synth / wave-sink
model. See README.md and docs/architecture.md."""
__version__ = "0.1.0"

from .settings import Settings, SettingsError  # noqa: E402,F401
from .synth import Synth, SynthError  # noqa: E402,F401
from .api import Renderer, load_midi, render  # noqa: E402,F401

__all__ = ["Settings", "SettingsError", "Synth", "SynthError", "Renderer", "load_midi", "render"]
