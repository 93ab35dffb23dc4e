// detmath.h: the deterministic float32 maths shared by the render kernels and the host helpers.
//
// 2^x by one fixed polynomial, and the cB-of-attenuation -> gain built on it. The kernels use
// them for pitch increments, filter cutoffs and envelope gains (kernels/common.cuh includes this
// file); the host helpers that must decide from the very same envelope levels include it too
// (gpusynth/steal_run.cpp, gpusynth/control_engine.cpp: gpusynth.compiled puts this directory on
// their include path and hashes this file into their cache key). gpusynth/envelope.py (exp2,
// cb_gain) is the numpy definition, bit for bit: libm exp2f and numpy's exp2 differ by an ulp in
// a fifth of all inputs, and a pitch increment an ulp off drifts. Every build keeps float
// contraction off (g++ -ffp-contract=off, NVRTC/nvcc --fmad=false): they all compute the same bits.
//
// One text for three compilers: CUDA (NVRTC, nvcc), the kernels' C++ build through
// kernels/host_shim.h (GPUSYNTH_HOST: __device__ and __forceinline__ are macros there, and
// __int_as_float a function), and plain C++ (the helpers).
#ifndef GPUSYNTH_DETMATH_H
#define GPUSYNTH_DETMATH_H

#if defined(__CUDACC__) || defined(__CUDACC_RTC__) || defined(GPUSYNTH_HOST)
#define GS_MATHFN __device__ __forceinline__
#define GS_BITS_AS_FLOAT(i) __int_as_float(i)
#else
#include <string.h>
#define GS_MATHFN static inline
static inline float gs_bits_as_float(int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}
#define GS_BITS_AS_FLOAT(i) gs_bits_as_float(i)
#endif

// log2(10) / 200: cB -> log2 of gain (the same literal as gpusynth/envelope.py LOG2_10_200)
#define GS_LOG2_10_200 0.0166096404744368f

// 2^x in float32 (max relative error 8.5e-8; 1.1e-7 for -1 < x < 0, where the argument
// reduction rounds). Below about -126 it gives 0, x >= 127 gives 2^127 (times
// the polynomial); a NaN gives 0.
GS_MATHFN float gs_exp2(float x) {
    x = x > -127.0f ? x : -127.0f;
    x = x < 127.0f ? x : 127.0f;
    int n = (int)x;
    n = (float)n > x ? n - 1 : n;                 // floor
    const float f = x - (float)n;                 // exact, 0 <= f < 1
    float p = 0.00021877505059819669f;
    p = p * f + 0.0012387821916490793f;
    p = p * f + 0.009684580378234386f;
    p = p * f + 0.05548042804002762f;
    p = p * f + 0.2402305006980896f;
    p = p * f + 0.6931469440460205f;
    p = p * f + 1.0f;
    return p * GS_BITS_AS_FLOAT((n + 127) << 23);
}

// cB of attenuation -> gain (float32)
GS_MATHFN float gs_cb_gain(float cb) { return gs_exp2(cb * -GS_LOG2_10_200); }

#endif  // GPUSYNTH_DETMATH_H
