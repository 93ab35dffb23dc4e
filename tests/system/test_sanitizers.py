"""AddressSanitizer + UndefinedBehaviorSanitizer run of the render kernels (host shim build).

A small C++ driver includes the inlined kernel source and feeds both portable kernels
(voice_render, the lane passes, and voice_render_fused) fuzzed voice tables: loop points
anywhere in (and around) the sample, zero-length and inverted loops, sample bounds past the pool
or inverted, huge, negative, infinite and NaN pitches, unknown loop modes, channels outside the
channel inputs, absurd envelope times, filters far outside their range. Every buffer is allocated
to its exact size, so any read outside the pool (or any other buffer) is an ASan error, and any
undefined behaviour aborts (no recovery). The kernels must clamp every index whatever the inputs.
The two kernels must also agree bit for bit, sums and voice state (the driver exits 3 or 4).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from gpusynth import _kernels as K

pytestmark = [pytest.mark.toolchain, pytest.mark.slow]

DRIVER = r'''
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <cmath>
#include <vector>

static uint64_t rs = 88172645463325252ull;
static uint64_t rnd() { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static double uni(double a, double b) { return a + (b - a) * (double)(rnd() >> 11) * (1.0 / 9007199254740992.0); }
static long long irange(long long a, long long b) {
    if (b < a) { long long t = a; a = b; b = t; }
    return a + (long long)(rnd() % (uint64_t)(b - a + 1));
}
template <class T> static T pick(std::initializer_list<T> l) { return l.begin()[rnd() % l.size()]; }

int main(int argc, char** argv) {
    rs ^= (uint64_t)atoll(argc > 1 ? argv[1] : "1") * 0x9E3779B97F4A7C15ull;
    const long long NEVER = 1ll << 62;
    long long checksum = 0;
    for (int round = 0; round < 12; ++round) {
        const long long P = irange(1, 3000);
        float* pool = (float*)malloc(sizeof(float) * P);            // exact size: ASan sees overruns
        for (long long i = 0; i < P; ++i) pool[i] = (float)uni(-1, 1);
        const long long n = irange(1, 700);
        const int n_ticks = (int)irange(1, 40), n_chan = (int)irange(1, 4);
        const long long B = 64 * irange(0, 50);
        Voice* vt = (Voice*)malloc(sizeof(Voice) * n);
        memset(vt, 0, sizeof(Voice) * n);
        for (long long v = 0; v < n; ++v) {
            Voice& V = vt[v];
            V.start = B + irange(-300, 64 * n_ticks + 100);
            V.release = rnd() % 2 ? NEVER : V.start + irange(-100, 3000);
            V.kill = rnd() % 4 ? NEVER : V.start + irange(-100, 3000);
            V.chan = (int)irange(-3, n_chan + 3);
            V.pstart = irange(-50, P + 50);
            V.pend = rnd() % 5 ? irange(V.pstart - 5, P + 50) : irange(-100, P + 100);
            V.lstart = irange(V.pstart - 20, V.pend + 20);
            V.lend = rnd() % 6 ? irange(V.lstart - 3, V.pend + 20) : irange(-50, P + 50);
            V.lmode = pick<int>({0, 1, 3, 2, -1, 7});
            V.pitch = (float)pick<double>({uni(-2400, 2400), uni(-2400, 2400), 0.0, -1e9, 1e9,
                                           (double)INFINITY, -(double)INFINITY, (double)NAN});
            V.atten = (float)uni(-100, 1500);
            V.pan = (float)uni(-800, 800);
            V.fc = (float)pick<double>({uni(1500, 14000), uni(-5000, 30000), 13500.0});
            V.q = (float)pick<double>({0.0, uni(0, 960), uni(-100, 1e5)});
            V.rev = (float)uni(-1, 2); V.cho = (float)uni(-1, 2);
            V.rev_cc = (float)uni(-1, 2); V.cho_cc = (float)uni(-1, 2);
            V.ve_delay = (float)pick<double>({0.0, uni(0, 500), 1e7});
            V.ve_attack = (float)pick<double>({0.0, uni(0, 2000), 1e8});
            V.ve_hold = (float)pick<double>({0.0, uni(0, 500), 1e7});
            V.ve_decay = (float)pick<double>({0.0, uni(0, 50000), 1e9});
            V.ve_sus = (float)uni(0, 1440);
            V.ve_release = (float)pick<double>({0.0, uni(0, 50000), 1e9});
            V.me_delay = (float)uni(0, 500); V.me_attack = (float)uni(0, 2000);
            V.me_hold = (float)uni(0, 500); V.me_decay = (float)uni(0, 50000);
            V.me_sus = (float)uni(0, 1); V.me_release = (float)uni(0, 50000);
            V.me_pitch = (float)uni(-2400, 2400); V.me_fc = (float)uni(-10000, 10000);
            V.ml_delay = (float)uni(0, 1000); V.ml_freq = (float)uni(0, 0.01);
            V.ml_pitch = (float)uni(-500, 500); V.ml_fc = (float)uni(-5000, 5000);
            V.ml_vol = (float)uni(-100, 100);
            V.vl_delay = (float)uni(0, 1000); V.vl_freq = (float)uni(0, 0.01);
            V.vl_pitch = (float)uni(-500, 500);
            V.cc1_vib = (float)uni(-100, 100); V.press_vib = (float)uni(-100, 100);
            V.cc1_ml_pitch = (float)uni(-100, 100); V.cc1_ml_vol = (float)uni(-100, 100);
            V.cc1_ml_fc = (float)uni(-1000, 1000);
            V.ipos = rnd() % 8 ? V.pstart : irange(-100, P + 100);
            V.fpos = (float)uni(0, 0.999);
            V.gl = rnd() % 2 ? -1.0f : (float)uni(0, 1);
            V.gr = rnd() % 2 ? -1.0f : (float)uni(0, 1);
            V.s1 = 0.0f; V.s2 = 0.0f;
            V.done = (signed char)(rnd() % 20 == 0);
        }
        Voice* vt2 = (Voice*)malloc(sizeof(Voice) * n);
        memcpy(vt2, vt, sizeof(Voice) * n);
        float* chin = (float*)malloc(sizeof(float) * N_CHIN * n_ticks * n_chan);
        for (long long i = 0; i < (long long)N_CHIN * n_ticks * n_chan; ++i) chin[i] = (float)uni(-300, 300);
        const int sends = (int)(rnd() % 2), nbus = sends ? 4 : 2;
        const int nt = omp_get_max_threads();
        const long long nf = 64ll * n_ticks;
        long long* out = (long long*)calloc((size_t)(nt * nf * nbus), sizeof(long long));
        long long* out2 = (long long*)calloc((size_t)(nt * nf * nbus), sizeof(long long));
        const int cubic = (int)(rnd() % 2);
        voice_render(vt, n, pool, P, chin, n_chan, B, n_ticks, 48000.0f, 144, cubic, sends, 1, out);
        voice_render_fused(vt2, n, pool, P, chin, n_chan, B, n_ticks, 48000.0f, 144, cubic, sends, 1, out2);
        // both kernels: the same sums (exact int64 mix), the same voice state
        for (long long i = 0; i < nf * nbus; ++i) {
            long long a = 0, b = 0;
            for (int t = 0; t < nt; ++t) { a += out[t * nf * nbus + i]; b += out2[t * nf * nbus + i]; }
            if (a != b) { printf("mismatch at %lld: %lld vs %lld\n", i, a, b); return 3; }
            checksum += a;
        }
        if (memcmp(vt, vt2, sizeof(Voice) * n) != 0) {
            for (long long v = 0; v < n; ++v)
                if (memcmp(vt + v, vt2 + v, sizeof(Voice)) != 0) {
                    printf("state mismatch at voice %lld: ipos %lld/%lld fpos %g/%g s1 %g/%g s2 %g/%g done %d/%d\n",
                           v, vt[v].ipos, vt2[v].ipos, vt[v].fpos, vt2[v].fpos, vt[v].s1, vt2[v].s1,
                           vt[v].s2, vt2[v].s2, vt[v].done, vt2[v].done);
                    return 4;
                }
        }
        free(vt); free(vt2); free(pool); free(chin); free(out); free(out2);
    }
    printf("ok %lld\n", checksum);
    return 0;
}
'''

FLAGS = ["-O1", "-g", "-fopenmp", "-x", "c++", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ not found")
    from gpusynth.backend.native_backend import cache_dir
    flags = FLAGS + K.define_flags(False)
    h = K.source_hash(K.shim_source(), DRIVER, *flags)[:20]
    exe = cache_dir() / f"asan-driver-{h}"
    if exe.is_file():
        return exe
    d = tmp_path_factory.mktemp("asan")
    src = d / "driver.cpp"
    src.write_text('#include "' + str(K.shim_path()) + '"\n' + K.source_for(*K.RENDER_SOURCES)
                   + '#line 1 "asan_driver.cpp"\n' + DRIVER)
    tmp = d / "driver.bin"
    r = subprocess.run([cxx, *flags, str(src), "-o", str(tmp)], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0 and ("libasan" in r.stderr or "libubsan" in r.stderr):
        pytest.skip("sanitizer runtime libraries not installed: " + r.stderr.splitlines()[0])
    assert r.returncode == 0, r.stderr[-4000:]
    tmp_exe = cache_dir() / f".asan-driver-{h}.{os.getpid()}"
    shutil.copy2(tmp, tmp_exe)
    os.replace(tmp_exe, exe)
    return exe


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzzed_voices_are_clean_under_asan_ubsan(driver, seed):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1", OMP_NUM_THREADS="2")
    r = subprocess.run([str(driver), str(seed)], capture_output=True, text=True, timeout=600,
                       env=env)
    report = (r.stderr or "")[-4000:]
    assert r.returncode == 0, report
    assert "ERROR: AddressSanitizer" not in r.stderr, report
    assert "runtime error" not in r.stderr, report
    assert r.stdout.startswith("ok"), r.stdout
