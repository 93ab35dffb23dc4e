// host_shim.h: compile gpusynth's CUDA C kernels as C++ for the native backend.
//
//   g++ -O3 -fopenmp -ffp-contract=off -shared -fPIC -x c++ -include kernels/host_shim.h ...
//
// Kernels use only the shim-portable subset (DESIGN.md section 5): a grid-stride loop over
// their work items, no __syncthreads, shared memory, warp intrinsics or float atomics. Here each
// work item is a "block of one thread" and OpenMP runs the blocks in parallel: the grid-stride
// loop macros become OpenMP loops and a kernel is a plain extern "C" function called once.
#ifndef GPUSYNTH_HOST_SHIM_H
#define GPUSYNTH_HOST_SHIM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

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
    _Pragma("omp parallel for schedule(dynamic, 16)") \
    for (long long i = 0; i < (long long)(n); ++i)

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

#endif  // GPUSYNTH_HOST_SHIM_H
