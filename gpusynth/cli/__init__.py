"""The command line: `gpusynth render|analyze|batch|play|live|info`. The top layer: the
library never imports it (checked by import-linter, pyproject.toml)."""
from .main import build_parser, main

__all__ = ["main", "build_parser"]
