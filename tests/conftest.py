import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TESTDATA = SHARED / "testdata"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


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
