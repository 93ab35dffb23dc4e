"""Constants every backend and the control path share (the kernels get them through
gpusynth._kernels, which writes them into the CUDA source's defines).

The numpy reference backend (gpusynth.backend.numpy_backend) defines what they mean; they live
here so that the control path, the kernels' loader and every backend take them from one module
below all of them.
"""
from __future__ import annotations

import numpy as np

FADE_SECONDS = 0.003            # steal / exclusive-class cut fade
DONE_LEVEL = 1e-5               # -100 dB: the envelope is finished below this
FILTER_OPEN_CENTS = 13500.0     # the low-pass filter is skipped at or above this cutoff
MIX_SCALE = float(1 << 24)      # the mix's fixed point: steps per full scale
SEND_ONE = float(1 << 12)       # send levels in steps of 1/4096 (0.2 % at GM's default CC91)


def fade_frames(rate: float) -> int:
    """Frames of the fade a stolen or cut voice gets (FADE_SECONDS, at least 16)."""
    return max(16, int(round(FADE_SECONDS * rate)))


def bus_scales(nbus: int) -> np.ndarray:
    """float64 [nbus]: full scale per unit of each bus's int64 sum (L, R: 2^-24; the send
    buses: 2^-24 / (2 x SEND_ONE), as they sum send level x (qL + qR), twice the mono frame)."""
    s = np.full(nbus, 1.0 / MIX_SCALE)
    s[2:] = 1.0 / (MIX_SCALE * 2.0 * SEND_ONE)
    return s
