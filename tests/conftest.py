import os
import sys
from pathlib import Path

import pytest

# pytest-xdist (scripts/test.sh): the workers share the cores, so each renders on its share of
# OpenMP threads (two workers of two threads each on two cores made native renders ~1.6x slower).
# Set before the first compiled library loads; an OMP_NUM_THREADS of the caller wins.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TESTDATA = SHARED / "testdata"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# the tests' own helpers (bank writers, hostile files, peer measures): tests/support/
SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))


def _gpu_available():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _gpu_available():
        skip = pytest.mark.skip(reason="no CUDA GPU / cupy on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def backends():
    """Backends the equivalence tests run on: numpy always, native when a compiler works."""
    names = ["numpy"]
    try:
        from gpusynth.backend.select import available_backends
        names += [b for b in available_backends() if b != "numpy"]
    except Exception:
        pass
    return names


@pytest.fixture(params=backends())
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def testdata():
    if not TESTDATA.exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    return TESTDATA


def conformance_songs(testdata, max_s: float = 60.0) -> list:
    """(path, Song) for every MIDI conformance file that loads and lasts at most ``max_s``
    (the broken-file cases are tests/unit/test_smf*.py's)."""
    from gpusynth.loading import load_midi
    out = []
    for f in sorted((testdata / "midi").rglob("*.mid")):
        try:
            s = load_midi(str(f))
        except Exception:
            continue
        if s.duration_s <= max_s:
            out.append((f, s))
    assert len(out) >= 40
    return out
