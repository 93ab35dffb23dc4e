"""AddressSanitizer + UndefinedBehaviorSanitizer run of the render kernels (host shim build).

A small C++ driver includes the inlined kernel source and feeds voice_render / mix_partial /
mix_final fuzzed voice tables: loop points anywhere in (and around) the sample, zero-length and
inverted loops, sample bounds past the pool or inverted, huge, negative, infinite and NaN pitches,
unknown loop modes, channels outside the channel inputs, absurd envelope times, filters far
outside their range. Every buffer is allocated to its exact size, so any read outside the pool
(or any other buffer) is an ASan error, and any undefined behaviour aborts (no recovery).
The kernels must clamp every index whatever the inputs.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from gpusynth import _kernels as K

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
    double checksum = 0.0;
    for (int round = 0; round < 12; ++round) {
        const long long P = irange(1, 3000);
        float* pool = (float*)malloc(sizeof(float) * P);            // exact size: ASan sees overruns
        for (long long i = 0; i < P; ++i) pool[i] = (float)uni(-1, 1);
        const long long n = irange(1, 700);
        const int n_ticks = (int)irange(1, 5), n_chan = (int)irange(1, 4);
        const long long B = 64 * irange(0, 50);
        std::vector<void*> ptrs(NVF);
        // allocate every field with its exact size; element sizes from the kernels' C types
        long long* i64[NVF] = {0}; int* i32[NVF] = {0}; float* f32[NVF] = {0};
        double* f64[NVF] = {0}; signed char* i8[NVF] = {0};
#define A64(nm) i64[VF_##nm] = (long long*)malloc(8 * n); ptrs[VF_##nm] = i64[VF_##nm];
#define A32(nm) i32[VF_##nm] = (int*)malloc(4 * n); ptrs[VF_##nm] = i32[VF_##nm];
#define AD(nm) f64[VF_##nm] = (double*)malloc(8 * n); ptrs[VF_##nm] = f64[VF_##nm];
#define A8(nm) i8[VF_##nm] = (signed char*)malloc(n); ptrs[VF_##nm] = i8[VF_##nm];
        A64(start) A64(release) A64(kill) A32(chan) A64(pstart) A64(pend) A64(lstart) A64(lend)
        A32(lmode) AD(pitch) AD(ml_freq) AD(vl_freq) A64(ipos) AD(fpos) AD(fx1) AD(fx2) AD(fy1)
        AD(fy2) A8(done)
        for (int k = 0; k < NVF; ++k)
            if (!ptrs[k]) { f32[k] = (float*)malloc(4 * n); ptrs[k] = f32[k];
                            for (long long v = 0; v < n; ++v) f32[k][v] = (float)uni(-2000, 20000); }
        for (long long v = 0; v < n; ++v) {
            long long ps = irange(-5, P + 5), pe = irange(-5, P + 5);
            if (rnd() % 4) { ps = irange(0, P - 1); pe = irange(ps + 1, P); }
            i64[VF_pstart][v] = ps; i64[VF_pend][v] = pe;
            i64[VF_lstart][v] = irange(ps - 20, pe + 20);
            i64[VF_lend][v] = rnd() % 5 == 0 ? i64[VF_lstart][v] : irange(ps - 20, pe + 20);
            i32[VF_lmode][v] = pick({0, 1, 3, 2, 7, -1});
            f64[VF_pitch][v] = pick({uni(-30000, 30000), 1e12, -1e12, (double)INFINITY,
                                     -(double)INFINITY, (double)NAN, 0.0, 12000.0, -12000.0});
            f64[VF_ml_freq][v] = uni(0, 0.01); f64[VF_vl_freq][v] = uni(0, 0.01);
            i64[VF_ipos][v] = rnd() % 3 ? irange(ps - 3, pe + 3) : irange(-1000000000000ll, 1000000000000ll);
            f64[VF_fpos][v] = uni(0, 1);
            f64[VF_fx1][v] = f64[VF_fx2][v] = f64[VF_fy1][v] = f64[VF_fy2][v] = uni(-1, 1);
            i64[VF_start][v] = B + irange(-300, 64 * n_ticks + 64);
            i64[VF_release][v] = rnd() % 2 ? NEVER : i64[VF_start][v] + irange(-100, 500);
            i64[VF_kill][v] = rnd() % 4 ? NEVER : i64[VF_start][v] + irange(-100, 500);
            i32[VF_chan][v] = (int)irange(-3, n_chan + 3);
            i8[VF_done][v] = rnd() % 10 == 0;
            f32[VF_gl][v] = f32[VF_gr][v] = rnd() % 2 ? -1.0f : (float)uni(0, 1);
            f32[VF_q][v] = (float)uni(-100, 1500); f32[VF_fc][v] = (float)uni(-5000, 20000);
            f32[VF_ve_attack][v] = (float)pick({0.0, -5.0, 1e30, uni(0, 3000)});
            f32[VF_ve_decay][v] = (float)pick({0.0, -5.0, 1e30, uni(0, 3000)});
            f32[VF_ve_release][v] = (float)pick({0.0, -5.0, 1e30, uni(0, 3000)});
        }
        std::vector<unsigned long long> tab(NVF);
        for (int k = 0; k < NVF; ++k) tab[k] = (unsigned long long)(size_t)ptrs[k];
        const long long cn = (long long)N_CHIN * n_ticks * n_chan;
        float* chin = (float*)malloc(4 * cn);
        for (long long i = 0; i < cn; ++i) chin[i] = (float)uni(-300, 300);
        const long long nf = (long long)n_ticks * TICK;
        const long long nch = (n + MIX_CHUNK - 1) / MIX_CHUNK;
        double* partial = (double*)malloc(8 * nch * nf * 4);
        float* out = (float*)malloc(4 * nf * 4);
        // two groups when there is more than one mix chunk (as the backends do for huge tables)
        const long long g = nch > 1 ? MIX_CHUNK : n;
        for (int blk = 0; blk < 3; ++blk) {
            for (long long v0 = 0; v0 < n; v0 += g) {
                const long long nv = v0 + g < n ? g : n - v0;
                float* yl = (float*)malloc(4 * nv * nf);
                float* yr = (float*)malloc(4 * nv * nf);
                float* sends = (float*)malloc(4 * 2 * n_ticks * nv);
                voice_render(tab.data(), pool, P, chin, n_chan, v0, nv, B + blk * nf, n_ticks,
                             pick({22050.0, 48000.0, 96000.0}), (int)irange(16, 300),
                             (int)(rnd() % 2), yl, yr, sends);
                mix_partial(yl, yr, sends, nv, n_ticks, v0 / MIX_CHUNK, partial);
                free(yl); free(yr); free(sends);
            }
            mix_final(partial, nch, n_ticks, out);
            for (long long i = 0; i < nf * 4; ++i) if (std::isfinite(out[i])) checksum += out[i];
        }
        for (int k = 0; k < NVF; ++k) free(ptrs[k]);
        free(pool); free(chin); free(partial); free(out);
    }
    printf("ok %.6g\n", checksum);
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
