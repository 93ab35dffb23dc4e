// gpusynth kernels: shared helpers (CUDA C, shim-portable subset; see DESIGN.md section 5).
//
// Compiled three ways: NVRTC through CuPy, g++ through kernels/host_shim.h (native backend),
// nvcc -ptx/-cubin in CI. gpusynth/_kernels.py inlines this file and passes the constants below
// with -D. Every helper mirrors an expression of gpusynth/backend/numpy_backend.py, including
// which operations run in float32 (numpy 2 keeps `python_float op float32_array` in float32).
#ifndef GPUSYNTH_COMMON_CUH
#define GPUSYNTH_COMMON_CUH

// ---- constants (normally given with -D by gpusynth/_kernels.py) ---------------------------
#ifndef TICK
#define TICK 64                    // control-rate tick, frames
#endif
#ifndef DONE_LEVEL
#define DONE_LEVEL 1e-5            // envelope level below which a voice is finished
#endif
#ifndef FILTER_OPEN_CENTS
#define FILTER_OPEN_CENTS 13500.0  // cutoff at/above which (with q <= 0) the filter is bypassed
#endif
#ifndef MIX_CHUNK
#define MIX_CHUNK 256              // voices summed by one thread of the first mix stage
#endif
#ifndef SCRATCH_FRAME_MAJOR
#define SCRATCH_FRAME_MAJOR 1      // 1: scratch[f*nv + v] (GPU, coalesced); 0: scratch[v*F + f]
#endif
#ifndef N_CHIN
#define N_CHIN 7                   // channel inputs, in voices.CHANNEL_INPUTS order
#endif
#ifndef CHI_ch_pitch
#define CHI_ch_pitch 0
#define CHI_ch_gain 1
#define CHI_ch_pan 2
#define CHI_ch_mod 3
#define CHI_ch_press 4
#define CHI_ch_rev 5
#define CHI_ch_cho 6
#endif

#define GS_PI 3.141592653589793

// ---- grid-stride loop ----------------------------------------------------------------------
// On the GPU: the usual grid-stride loop. host_shim.h redefines both as an OpenMP loop over
// "blocks of one thread" (static for the mix, dynamic for voices whose cost varies).
#ifndef GRID_STRIDE_LOOP
#define GRID_STRIDE_LOOP(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)
#endif
#ifndef GRID_STRIDE_LOOP_DYN
#define GRID_STRIDE_LOOP_DYN(i, n) GRID_STRIDE_LOOP(i, n)
#endif

// scratch index of voice v (0..nv-1 in the launch group) at frame f (0..nf-1)
#if SCRATCH_FRAME_MAJOR
#define SIDX(v, f, nv, nf) ((long long)(f) * (long long)(nv) + (long long)(v))
#else
#define SIDX(v, f, nv, nf) ((long long)(v) * (long long)(nf) + (long long)(f))
#endif

// field pointer from the voice table's pointer array (VOICE_FIELDS order, indices VF_*)
#define VFIELD(tab, T, name) ((T*)(size_t)(tab)[VF_##name])

// ---- small helpers ---------------------------------------------------------------------------
__device__ __forceinline__ long long gs_clampll(long long x, long long lo, long long hi) {
    // np.clip semantics: minimum(maximum(x, lo), hi) (hi wins when lo > hi)
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

__device__ __forceinline__ double gs_clampd(double x, double lo, double hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

__device__ __forceinline__ float gs_clampf(float x, float lo, float hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

// max/min by comparison (inlined; fmax/fmin are library calls on the host). Same as numpy's
// maximum/minimum for non-NaN values.
__device__ __forceinline__ double gs_maxd(double a, double b) { return a < b ? b : a; }
__device__ __forceinline__ double gs_mind(double a, double b) { return b < a ? b : a; }
__device__ __forceinline__ float gs_maxf(float a, float b) { return a < b ? b : a; }

// floor() as an integer, without a libm call (x86-64 baseline has no roundsd); exact for
// |x| < 2^63, the same value as (long long)floor(x)
__device__ __forceinline__ long long gs_floorll(double x) {
    long long n = (long long)x;
    return ((double)n > x) ? n - 1 : n;
}

// floor modulo (Python / numpy semantics for a positive divisor)
__device__ __forceinline__ long long gs_floormod(long long a, long long m) {
    long long r = a % m;
    return r < 0 ? r + m : r;
}

// loop wrap as numpy's wrap(): idx >= le -> ls + (idx - ls) mod L  (only while looping)
__device__ __forceinline__ long long gs_wrap(long long idx, bool looping, long long ls,
                                             long long le, long long L) {
    if (!looping || idx < le) return idx;
    long long r = idx - ls;
    if (r >= L && r < 2 * L) return ls + (r - L);     // common case: one period past the end
    return ls + gs_floormod(r, L);
}

// pool read: clamp to [lo, hi] as numpy does, then to the pool itself so that no loop point
// or position, however wrong, reads outside the pool (kernels trust inputs, but never fault)
__device__ __forceinline__ double gs_pool(const float* __restrict__ pool, long long pool_len,
                                          long long idx, long long lo, long long hi) {
    idx = gs_clampll(idx, lo, hi);
    idx = idx < 0 ? 0 : idx;
    idx = idx >= pool_len ? pool_len - 1 : idx;
    return (double)pool[idx];
}

// Modulation envelope 0..1 (numpy menv's held()).
__device__ __forceinline__ double gs_menv_held(double tt, float d, float a, float h, float dc,
                                               float sus) {
    double x = tt - (double)d;
    if (x < 0.0) return 0.0;
    if (x < (double)a) return gs_clampd(x / (double)gs_maxf(a, 1.0f), 0.0, 1.0);
    double y = (x - (double)a) - (double)h;
    if (y < 0.0) return 1.0;
    return gs_maxd(1.0 - gs_maxd(y, 0.0) / (double)gs_maxf(dc, 1.0f), (double)sus);
}

__device__ __forceinline__ double gs_menv(double t, bool released, double t_rel, float d,
                                          float a, float h, float dc, float sus, float rel) {
    double g = gs_menv_held(released ? t_rel : t, d, a, h, dc, sus);
    if (!released) return g;
    double tr = gs_maxd(t - t_rel, 0.0);
    return gs_maxd(g - tr / (double)gs_maxf(rel, 1.0f), 0.0);
}

// Volume envelope (numpy venv's held()): returns the attenuation in cB of the decay/sustain
// stage in *cb, or a direct amplitude (delay/attack/hold) with *cb = -1.
__device__ __forceinline__ double gs_venv_held(double tt, float d, float a, float h,
                                               float k1000, float sus, double* cb) {
    double x = tt - (double)d;
    *cb = -1.0;
    if (x < 0.0) return 0.0;
    if (x < (double)a) return gs_clampd((x + 1.0) / (double)gs_maxf(a, 1.0f), 0.0, 1.0);
    double y = (x - (double)a) - (double)h;
    if (y < 0.0) return 1.0;
    *cb = gs_mind(gs_maxd(y, 0.0) * (double)k1000, (double)sus);
    return 0.0;
}

// Triangle LFO: 0 during the delay, then starting at 0 and rising; freq in cycles per frame.
__device__ __forceinline__ double gs_tri_lfo(double t, float delay, double freq) {
    if (t < (double)delay) return 0.0;
    double ph = gs_maxd(t - (double)delay, 0.0) * freq;
    return 1.0 - 4.0 * fabs(fmod(ph + 0.25, 1.0) - 0.5);
}

#endif  // GPUSYNTH_COMMON_CUH
