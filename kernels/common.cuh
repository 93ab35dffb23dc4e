// gpusynth kernels: the voice record and shared helpers (CUDA C, shim-portable subset; see
// DESIGN.md section 5).
//
// Compiled three ways: NVRTC through CuPy, g++ through kernels/host_shim.h (native backend),
// nvcc -ptx/-cubin in CI. gpusynth/_kernels.py inlines this file and passes the constants below
// with -D. The readable definition of every expression is gpusynth/backend/numpy_backend.py
// (and gpusynth/envelope.py for the volume envelope).
//
// Throughput rules (DESIGN.md section 5): float32 in the per-sample loop, no transcendental call
// per sample (control values once per 64-frame tick, envelope gains stepped per sample by one
// multiply-add), render and mix fused (each voice's contribution is rounded to fixed point and
// summed in int64, so the mix is exact whatever the order), dead voices and ticks cost nothing.
#ifndef GPUSYNTH_COMMON_CUH
#define GPUSYNTH_COMMON_CUH

// ---- constants (normally given with -D by gpusynth/_kernels.py) ---------------------------
#ifndef TICK
#define TICK 64                    // control-rate tick, frames
#endif
#ifndef DONE_LEVEL
#define DONE_LEVEL 1e-5f           // envelope level below which a voice is finished
#endif
#ifndef FILTER_OPEN_CENTS
#define FILTER_OPEN_CENTS 13500.0f // cutoff at/above which (with q <= 0) the filter is bypassed
#endif
#ifndef MIX_SCALE
#define MIX_SCALE 16777216.0f      // fixed point of the mix: 2^24 per full scale
#endif
#ifndef SEND_ONE
#define SEND_ONE 4096.0f           // send levels quantised to 1/SEND_ONE (the send buses' scale)
#endif
#ifndef VCHUNK
#define VCHUNK 32                  // voices per work item of the portable kernel
#endif
#ifndef SUBW
#define SUBW 16                    // ticks per local accumulator flush of the portable kernel
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

// constants as decimal literals, written identically in gpusynth/backend/numpy_backend.py
#define GS_PI_F 3.14159265358979f
#define GS_PI_2000 0.00157079632679490f          // pi / 2000: pan (0.1 %) -> angle
#define GS_INV_1200 0.000833333333333333f        // cents -> octaves
#define GS_LOG2_10_20 0.166096404744368f         // log2(10) / 20: dB -> log2 of gain
#define GS_NEVER (1ll << 62)

// ---- the voice record (gpusynth/voices.py VOICE_FIELDS, same order, same C types) --------
// check_schema() in gpusynth/_kernels.py parses this struct and compares it with VOICE_DTYPE.
struct Voice {
    long long start;
    long long release;
    long long kill;
    long long pstart;
    long long pend;
    long long lstart;
    long long lend;
    long long ipos;
    float pitch;
    float atten;
    float pan;
    float fc;
    float q;
    float fatt;
    float rev;
    float cho;
    float rev_cc;
    float cho_cc;
    float ve_delay;
    float ve_attack;
    float ve_hold;
    float ve_decay;
    float ve_sus;
    float ve_release;
    float me_delay;
    float me_attack;
    float me_hold;
    float me_decay;
    float me_sus;
    float me_release;
    float me_pitch;
    float me_fc;
    float ml_delay;
    float ml_freq;
    float ml_pitch;
    float ml_fc;
    float ml_vol;
    float vl_delay;
    float vl_freq;
    float vl_pitch;
    float cc1_vib;
    float press_vib;
    float cc1_ml_pitch;
    float cc1_ml_vol;
    float cc1_ml_fc;
    float fpos;
    float gl;
    float gr;
    float s1;
    float s2;
    float cfc;
    float ca1;
    float ca2;
    float ca3;
    float catt;
    float cpan;
    int chan;
    int lmode;
    int bus;
    signed char done;
    signed char me_convex;
};
#ifdef VOICE_BYTES
static_assert(sizeof(Voice) == VOICE_BYTES, "struct Voice differs from voices.VOICE_DTYPE");
#endif

// ---- grid-stride loop ----------------------------------------------------------------------
// On the GPU: the usual grid-stride loop. host_shim.h redefines both as an OpenMP loop over
// "blocks of one thread".
#ifndef GRID_STRIDE_LOOP
#define GRID_STRIDE_LOOP(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)
#endif
#ifndef GRID_STRIDE_LOOP_DYN
#define GRID_STRIDE_LOOP_DYN(i, n) GRID_STRIDE_LOOP(i, n)
#endif

// integer add to the shared mix (order-free: integer sums are exact)
#ifndef GS_ATOMIC_ADD_LL
#define GS_ATOMIC_ADD_LL(p, v) atomicAdd((unsigned long long*)(p), (unsigned long long)(v))
#endif
// float -> nearest integer (ties to even), as numpy's rint
#ifndef GS_F2LL
#define GS_F2LL(x) __float2ll_rn(x)
#endif
#ifndef GS_F2I
#define GS_F2I(x) __float2int_rn(x)
#endif

// ---- small helpers ---------------------------------------------------------------------------
__device__ __forceinline__ long long gs_clampll(long long x, long long lo, long long hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}
__device__ __forceinline__ float gs_clampf(float x, float lo, float hi) {
    x = x < lo ? lo : x;            // a NaN fails both tests and stays NaN
    return x > hi ? hi : x;
}
__device__ __forceinline__ float gs_maxf(float a, float b) { return a < b ? b : a; }
__device__ __forceinline__ float gs_minf(float a, float b) { return b < a ? b : a; }

// floor modulo for a positive divisor
__device__ __forceinline__ long long gs_floormod(long long a, long long m) {
    long long r = a % m;
    return r < 0 ? r + m : r;
}

// loop wrap: idx >= le -> ls + (idx - ls) mod L  (only while looping)
__device__ __forceinline__ long long gs_wrap(long long idx, bool looping, long long ls,
                                             long long le, long long L) {
    if (!looping || idx < le) return idx;
    long long r = idx - ls;
    if (r >= L && r < 2 * L) return ls + (r - L);     // common case: one period past the end
    return ls + gs_floormod(r, L);
}

// 2^x in float32 by one fixed polynomial (gs_exp2) and cB of attenuation -> gain (gs_cb_gain):
// shared with the host helpers that decide from envelope levels, so written once
#include "detmath.h"

// The SF2 convex curve of the modulation envelope's attack (SF2 2.04 section 8.1.2 #26), as
// FluidSynth's fluid_convex(127 v): its 128-point table 1 + (40/96) log10(i / 127) (0 at i = 0,
// 1 at i = 127), interpolated linearly. numpy_backend.CONVEX_TAB holds the same float32 values
// (tests/unit/test_kernels.py compares them).
__constant__ float GS_CONVEX[128] = {
    0.f, 0.12341512f, 0.24884428f, 0.32221565f, 0.37427345f, 0.41465262f, 0.4476448f, 0.4755393f,
    0.4997026f, 0.5210162f, 0.5400818f, 0.55732876f, 0.573074f, 0.58755815f, 0.6009685f, 0.61345315f,
    0.6251318f, 0.63610214f, 0.64644533f, 0.65622914f, 0.66551095f, 0.67433983f, 0.6827579f, 0.69080174f,
    0.69850314f, 0.7058901f, 0.71298736f, 0.7198167f, 0.72639763f, 0.7327476f, 0.7388823f, 0.7448158f,
    0.75056094f, 0.75612926f, 0.76153135f, 0.7667768f, 0.7718745f, 0.7768325f, 0.7816583f, 0.7863587f,
    0.7909401f, 0.79540837f, 0.799769f, 0.80402696f, 0.80818707f, 0.81225365f, 0.8162309f, 0.82012254f,
    0.8239323f, 0.8276635f, 0.8313193f, 0.8349027f, 0.8384165f, 0.8418634f, 0.84524584f, 0.84856623f,
    0.8518268f, 0.85502964f, 0.85817677f, 0.8612701f, 0.86431146f, 0.86730254f, 0.870245f, 0.87314034f,
    0.8759901f, 0.8787957f, 0.8815584f, 0.8842796f, 0.8869605f, 0.88960224f, 0.89220595f, 0.89477277f,
    0.89730364f, 0.89979964f, 0.9022617f, 0.9046906f, 0.90708745f, 0.9094529f, 0.91178787f, 0.9140931f,
    0.91636926f, 0.9186172f, 0.9208376f, 0.923031f, 0.92519814f, 0.9273397f, 0.9294561f, 0.9315481f,
    0.9336162f, 0.93566096f, 0.9376828f, 0.93968236f, 0.94166005f, 0.94361633f, 0.9455517f, 0.9474666f,
    0.94936144f, 0.95123667f, 0.95309263f, 0.95492977f, 0.9567484f, 0.958549f, 0.96033186f, 0.9620973f,
    0.9638457f, 0.9655773f, 0.96729255f, 0.9689917f, 0.970675f, 0.97234285f, 0.9739954f, 0.975633f,
    0.97725594f, 0.9788645f, 0.9804588f, 0.9820392f, 0.9836059f, 0.9851592f, 0.9866993f, 0.98822635f,
    0.9897406f, 0.99124235f, 0.9927317f, 0.99420893f, 0.99567413f, 0.9971276f, 0.9985695f, 1.f
};
__device__ __forceinline__ float gs_convex(float v) {      // 0 <= v <= 1
    const float f = v * 127.0f;
    const int i = (int)f;
    if (i >= 127) return 1.0f;
    return GS_CONVEX[i] + (GS_CONVEX[i + 1] - GS_CONVEX[i]) * (f - (float)i);
}

// Modulation envelope 0..1 at tt frames since note-on (held part; linear segments, the attack
// convex for SF2 voices).
__device__ __forceinline__ float gs_menv_held(float tt, float d, float a, float h, float dc,
                                              float sus, bool convex) {
    float x = tt - d;
    if (x < 0.0f) return 0.0f;
    if (x < a) {
        const float v = gs_clampf(x / gs_maxf(a, 1.0f), 0.0f, 1.0f);
        return convex ? gs_convex(v) : v;
    }
    float y = (x - a) - h;
    if (y < 0.0f) return 1.0f;
    return gs_maxf(1.0f - y / gs_maxf(dc, 1.0f), sus);
}

__device__ __forceinline__ float gs_menv(float tc, bool released, float trel, const Voice& V) {
    float g = gs_menv_held(released ? trel : tc, V.me_delay, V.me_attack, V.me_hold,
                           V.me_decay, V.me_sus, V.me_convex != 0);
    if (!released) return g;
    float tr = gs_maxf(tc - trel, 0.0f);
    return gs_maxf(g - tr / gs_maxf(V.me_release, 1.0f), 0.0f);
}

// Triangle LFO: 0 during the delay, then starting at 0 and rising; freq in cycles per frame.
// The phase is the one double product of the kernel (an hour of a held note stays exact).
__device__ __forceinline__ float gs_tri_lfo(long long since_start, float delay, float freq) {
    float t = (float)since_start;
    if (t < delay) return 0.0f;
    double ph = ((double)since_start - (double)delay) * (double)freq + 0.25;
    float fr = (float)(ph - (double)(long long)ph);    // ph >= 0.25: truncation is floor
    float v = fr - 0.5f;
    return 1.0f - 4.0f * (v < 0.0f ? -v : v);
}

// ---- volume envelope (gpusynth/envelope.py is the readable twin) ---------------------------
// Closed form at absolute frame t (t >= start): DAHDSR, attack linear in amplitude, decay and
// release linear in dB; times the steal/cut fade. "Held" evaluates the envelope at min(t, release).
struct EnvSeg {
    float g;      // gain at the segment start (exact closed form)
    float m, a;   // per-frame step: g <- g * m + a
    int kend;     // first frame (tick-relative) of the next segment
};

__device__ __forceinline__ float gs_venv_exact(const Voice& V, long long t, float k1000, float krel,
                                               int fade_frames) {
    const bool rel = t >= V.release;
    const long long th = rel ? V.release : t;
    const float x = (float)(th - V.start) - V.ve_delay;
    if (x < 0.0f) return 0.0f;
    const float att = gs_minf((x + 1.0f) / gs_maxf(V.ve_attack, 1.0f), 1.0f);
    const float y = (x - V.ve_attack) - V.ve_hold;
    float cb = gs_minf(gs_maxf(y, 0.0f) * k1000, V.ve_sus);
    if (rel) cb += (float)(t - V.release) * krel;
    float g = att * gs_cb_gain(cb);
    if (t > V.kill) {
        const float fade = 1.0f - (float)(t - V.kill) / (float)fade_frames;
        g *= gs_clampf(fade, 0.0f, 1.0f);
    }
    return g;
}

// Stage breakpoints of the held envelope, in frames since note-on: the first frame of the
// attack, of the attack's flat top, of the decay, of the sustain.
__device__ __forceinline__ void gs_venv_breaks(const Voice& V, float k1000, float b[4]) {
    const float d = V.ve_delay, a = V.ve_attack, h = V.ve_hold;
    b[0] = ceilf(d);
    b[1] = ceilf((d + a) - 1.0f);
    b[2] = ceilf((d + a) + h);
    b[3] = ceilf(gs_minf(((d + a) + h) + V.ve_sus / k1000, 1e12f));
}

// The segment of the envelope that starts at tick-relative frame k (absolute t = t0 + k).
// (rdec, rrel: the per-frame gain ratios of decay and release, gs_cb_gain(k1000 / krel))
__device__ __forceinline__ EnvSeg gs_venv_seg(const Voice& V, long long t0, int k, float k1000,
                                              float krel, float rdec, float rrel, const float brk[4], int fade_frames) {
    const long long t = t0 + k;
    EnvSeg s;
    // next breakpoint after k: stage boundaries, release, kill, kill + fade, tick end
    long long nb = t0 + TICK;
    for (int i = 0; i < 4; ++i) {
        const long long bi = V.start + (long long)brk[i];
        if (bi > t && bi < nb && t < V.release) nb = bi;
    }
    if (V.release > t && V.release < nb) nb = V.release;
    if (V.kill > t && V.kill < nb) nb = V.kill;
    const long long kend = V.kill + fade_frames;
    if (V.kill < GS_NEVER && kend > t && kend < nb) nb = kend;
    s.kend = (int)(nb - t0);
    s.g = gs_venv_exact(V, t, k1000, krel, fade_frames);
    s.m = 1.0f;
    s.a = 0.0f;
    if (t >= V.kill) {                      // steal/cut fade: linear between exact end points
        const float ge = gs_venv_exact(V, nb, k1000, krel, fade_frames);
        s.a = (ge - s.g) / (float)(nb - t);
    } else if (t >= V.release) {            // release: dB-linear
        s.m = rrel;
    } else {
        const float u = (float)(t - V.start);
        const float x = u - V.ve_delay;
        if (x >= 0.0f) {
            const float y = (x - V.ve_attack) - V.ve_hold;
            if (x + 1.0f < V.ve_attack) s.a = 1.0f / gs_maxf(V.ve_attack, 1.0f);   // attack
            else if (y >= 0.0f && y * k1000 < V.ve_sus) s.m = rdec;                 // decay
        }
    }
    return s;
}

#endif  // GPUSYNTH_COMMON_CUH
