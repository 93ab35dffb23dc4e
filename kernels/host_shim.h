// host_shim.h: compile gpusynth's CUDA C kernels as C++ for the native backend.
//
//   g++ -O3 -fopenmp -ffp-contract=off -shared -fPIC -x c++ -include kernels/host_shim.h ...
//
// Kernels use only the shim-portable subset (DESIGN.md section 5): a grid-stride loop over
// their work items, no __syncthreads, shared memory, warp intrinsics or float atomics (kernels
// that use them are GPU-only and guarded by #ifndef GPUSYNTH_HOST). Here each
// work item is a "block of one thread" and OpenMP runs the blocks in parallel: the grid-stride
// loop macros become OpenMP loops and a kernel is a plain extern "C" function called once.
#ifndef GPUSYNTH_HOST_SHIM_H
#define GPUSYNTH_HOST_SHIM_H

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GPUSYNTH_HOST 1

// qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __constant__ const
// __restrict__ is a g++ keyword already.

// One work item per "block of one thread". The index is the loop variable; threadIdx/blockIdx
// are not defined on purpose: a kernel that needs them outside the loop is not shim-portable.
#define GRID_STRIDE_LOOP(i, n) \
    _Pragma("omp parallel for schedule(static)") \
    for (long long i = 0; i < (long long)(n); ++i)
#define GRID_STRIDE_LOOP_DYN(i, n) \
    _Pragma("omp parallel for schedule(dynamic, 1)") \
    for (long long i = 0; i < (long long)(n); ++i)

// The fused mix: each OpenMP thread adds into its own slice of the output (no atomics needed);
// gs_reduce_out below sums the slices in int64 (exact, so the thread count does not change the
// result).
#define GS_OUT_SLICE(out, stride) ((out) + (long long)omp_get_thread_num() * (stride))
#define GS_ATOMIC_ADD_LL(p, v) (*(p) += (v))
// lanes of the portable kernel's passes: independent across lanes (vectorise them)
#define GS_SIMD _Pragma("omp simd")
// a pass kept out of line so that the vectoriser sees it whole (no aliasing across the caller)
#define GS_NOINLINE __attribute__((noinline))
#define GS_SIMD_REDUCE_MIX _Pragma("omp simd reduction(+:sl, sr, sv, sc)")
// float -> nearest integer, ties to even (cvtss2si with -fno-math-errno), as numpy's rint
#define GS_F2LL(x) ((long long)__builtin_llrintf(x))
#define GS_F2I(x) ((int)__builtin_rintf(x))   /* vroundps + vcvttps2dq: vectorises */

static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

// CUDA float intrinsics: glibc already declares __expf, __sinf and friends, so map them with
// #define rather than defining functions (DESIGN.md section 5).
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __powf(x, y) powf(x, y)
#define __exp10f(x) exp10f(x)
#define __fdividef(x, y) ((x) / (y))
#define __saturatef(x) fminf(fmaxf((x), 0.0f), 1.0f)

// The native backend's output (NativeRuntime.launch): the OpenMP threads' int64 slices
// acc[nt][count][nbus] summed (wrapping, as numpy's int64) and scaled as numpy computes it,
// dst = float32(double(sum) x scale[bus]); each slice is left zeroed for the next launch, so
// the buffer is allocated once and the kernel never waits for fresh zeroed pages.
extern "C" void gs_reduce_out(long long* __restrict__ acc, int nt, long long count, int nbus,
                              const double* __restrict__ scale, float* __restrict__ dst) {
    const long long n = count * nbus;
    // a small block (real-time play: 256 frames) is summed by this thread: waking the team
    // for it would cost more than the sum
    _Pragma("omp parallel for schedule(static) if(n * nt >= 65536)")
    for (long long r = 0; r < count; ++r) {
        for (int b = 0; b < nbus; ++b) {
            const long long i = r * nbus + b;
            unsigned long long s = 0;
            for (int t = 0; t < nt; ++t) {
                long long* p = acc + (long long)t * n + i;
                s += (unsigned long long)*p;
                *p = 0;
            }
            dst[i] = (float)((double)(long long)s * scale[b]);
        }
    }
}

#endif  // GPUSYNTH_HOST_SHIM_H
