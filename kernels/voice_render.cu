// gpusynth voice render: every live voice of a window of control ticks, rendered and mixed in
// one launch (fused: no voices x frames buffer ever reaches memory).
//
// The readable definition is gpusynth/backend/numpy_backend.py; this file follows it expression
// by expression in float32. Per voice and tick:
//   1. control values at the tick start: modulation envelope, both LFOs, pitch increment,
//      filter coefficients (TPT state-variable low-pass), pan/volume gains, send levels;
//   2. per frame: position = integer + float32 fraction (re-anchored every tick), loop wrap,
//      linear or 4-point cubic interpolation, the filter, the volume envelope stepped by one
//      multiply-add per frame between exact closed-form values at every stage change (see
//      gs_venv_seg), the pan gains ramped linearly across the tick;
//   3. the frame's contribution to each bus rounded to fixed point (MIX_SCALE per full scale)
//      and added in int64: the mix is exact whatever the order in which
//      voices, threads or atomics add, so the output is bit-identical for any window size,
//      voice order or thread count.
//
// voice_render (portable: shim and GPU): a work item is a chunk of VCHUNK voices; it sums SUBW
// ticks at a time into a private int64 buffer, then adds it to `out` (the shim gives each
// OpenMP thread its own slice of `out`; on the GPU the adds are integer atomics).
#include "common.cuh"

#ifndef GS_OUT_SLICE
#define GS_OUT_SLICE(out, stride) (out)
#endif

// Accumulator of the portable kernel: int64 [SUBW * TICK][nbus], ticks [tk0, tk0 + SUBW).
struct GsLocalAcc {
    long long* buf;
    int tk0;
    // no clamp: a finite contribution (|v| < 2^39 full scale) always fits; validated input
    // cannot make a non-finite one (whose integer value would be unspecified)
    __device__ __forceinline__ long long q(float v) const { return GS_F2LL(v * MIX_SCALE); }
    template <bool SENDS>
    __device__ __forceinline__ void put(int tk, int k, float l, float r, float rev, float cho) {
        long long* p = buf + ((long long)(tk - tk0) * TICK + k) * (SENDS ? 4 : 2);
        p[0] += q(l);
        p[1] += q(r);
        if (SENDS) {
            const float mono = (l + r) * 0.5f;
            p[2] += q(mono * rev);
            p[3] += q(mono * cho);
        }
    }
};

// Render voice V for ticks [tka, tkb) of the window that starts at absolute frame win_t0.
template <bool SENDS, class Acc>
__device__ __forceinline__ void gs_render_voice(
    Voice& V, const float* __restrict__ pool, long long pool_len,
    const float* __restrict__ chin, int n_chan, int n_ticks,
    long long win_t0, int tka, int tkb, float rate, int fade_frames, int cubic, Acc& acc)
{
    if (V.done) return;
    const long long start = V.start;
    int c = V.chan;
    c = c < 0 ? 0 : (c >= n_chan ? n_chan - 1 : c);
    const long long ls = V.lstart, le = V.lend, pe = V.pend;
    const long long L = (le - ls) > 1 ? (le - ls) : 1;
    // reads stay inside the region and inside the pool, however wrong a loop point is
    long long lo = V.pstart, hi = pe - 1;
    lo = gs_clampll(lo, 0, pool_len - 1);
    hi = gs_clampll(hi, 0, pool_len - 1);
    if (hi < lo) hi = lo;
    const float k1000 = 1000.0f / gs_maxf(V.ve_decay, 1.0f);
    const float krel = 1000.0f / gs_maxf(V.ve_release, 1.0f);
    float brk[4];
    gs_venv_breaks(V, k1000, brk);
    const float attack_end = (V.ve_delay + V.ve_attack) + V.ve_hold;
    const float trel = (float)(V.release - start);
    const long long cstride = (long long)n_ticks * n_chan;

    long long ipos = V.ipos;
    float fpos = V.fpos, gl = V.gl, gr = V.gr, s1 = V.s1, s2 = V.s2;
    signed char done = 0;

    for (int tk = tka; tk < tkb && !done; ++tk) {
        const long long t0 = win_t0 + (long long)tk * TICK;
        if (start >= t0 + TICK) continue;                 // not started in this tick
        // ---- control values at the tick start -------------------------------------------
        const float* ch = chin + (long long)tk * n_chan + c;
        const float ch_pitch = ch[CHI_ch_pitch * cstride];
        const float ch_gain = ch[CHI_ch_gain * cstride];
        const float ch_pan = ch[CHI_ch_pan * cstride];
        const float cmod = ch[CHI_ch_mod * cstride];
        const float cpress = ch[CHI_ch_press * cstride];
        const long long since = t0 > start ? t0 - start : 0;
        const bool rel_c = t0 >= V.release;
        const float me = gs_menv((float)since, rel_c, trel, V);
        const float ml = gs_tri_lfo(since, V.ml_delay, V.ml_freq);
        const float vl = gs_tri_lfo(since, V.vl_delay, V.vl_freq);
        const float cents = (((V.pitch + ch_pitch) + me * V.me_pitch)
                             + ml * (V.ml_pitch + cmod * V.cc1_ml_pitch))
                            + vl * ((V.vl_pitch + cmod * V.cc1_vib) + cpress * V.press_vib);
        // comparisons written so that a NaN pitch becomes the lower clamp
        float cl = cents > -12000.0f ? cents : -12000.0f;
        cl = cl < 12000.0f ? cl : 12000.0f;
        const float inc = gs_exp2(cl * GS_INV_1200);
        const float fc = (V.fc + me * V.me_fc) + ml * (V.ml_fc + cmod * V.cc1_ml_fc);
        const float att = (V.atten + ch_gain) - ml * (V.ml_vol + cmod * V.cc1_ml_vol);
        const float amp = gs_cb_gain(gs_maxf(att, 0.0f));
        const float pan = gs_clampf(V.pan + ch_pan, -500.0f, 500.0f);
        const float ang = (pan + 500.0f) * GS_PI_2000;
        const float gl_new = amp * cosf(ang);
        const float gr_new = amp * sinf(ang);
        float rev = 0.0f, cho = 0.0f;
        if (SENDS) {
            rev = gs_clampf(V.rev + ch[CHI_ch_rev * cstride] * V.rev_cc, 0.0f, 1.0f);
            cho = gs_clampf(V.cho + ch[CHI_ch_cho * cstride] * V.cho_cc, 0.0f, 1.0f);
        }
        const int k0 = (int)gs_clampll(start - t0, 0, TICK);
        const bool looping = (V.lmode == 1) || (V.lmode == 3 && !rel_c);

        // ---- filter coefficients: TPT state-variable low-pass (the RBJ response) ----------
        const bool is_open = (fc >= FILTER_OPEN_CENTS) && (V.q <= 0.0f);
        float fa1 = 1.0f, fa2 = 0.0f, fa3 = 0.0f;
        if (!is_open) {
            float hz = 8.175798915643707f * gs_exp2(fc * GS_INV_1200);
            hz = gs_clampf(hz, 5.0f, 0.45f * rate);
            const float g = tanf(GS_PI_F * hz / rate);
            const float qk = gs_exp2(-((V.q * 0.1f) - 3.01f) * GS_LOG2_10_20);   // 1/Q
            fa1 = 1.0f / (1.0f + g * (g + qk));
            fa2 = g * fa1;
            fa3 = g * fa2;
        }

        // ---- gains ------------------------------------------------------------------------
        const bool fresh = gl < 0.0f;
        const float glp = fresh ? gl_new : gl, grp = fresh ? gr_new : gr;
        const float dgl = (gl_new - glp) * (1.0f / TICK), dgr = (gr_new - grp) * (1.0f / TICK);

        EnvSeg seg = gs_venv_seg(V, t0, k0, k1000, krel, brk, fade_frames);
        float g = seg.g;
        bool ended = false;
        float x = 0.0f;
        for (int k = k0; k < TICK; ++k) {
            if (k == seg.kend) {
                seg = gs_venv_seg(V, t0, k, k1000, krel, brk, fade_frames);
                g = seg.g;
            }
            const float p = fpos + inc * (float)(k - k0);
            const long long fl = (long long)p;            // p >= 0: truncation is floor
            const float frac = p - (float)fl;
            const long long ip = gs_wrap(ipos + fl, looping, ls, le, L);
            ended = !looping && ip >= pe;
            x = 0.0f;
            if (!ended) {
                const long long i1 = gs_wrap(ip + 1, looping, ls, le, L);
                const float x0 = pool[gs_clampll(ip, lo, hi)];
                const float x1 = pool[gs_clampll(i1, lo, hi)];
                if (cubic) {
                    const float xm = pool[gs_clampll(ip - 1, lo, hi)];
                    const float x2 = pool[gs_clampll(gs_wrap(i1 + 1, looping, ls, le, L), lo, hi)];
                    x = x0 + 0.5f * frac * ((x1 - xm) + frac * ((((2.0f * xm - 5.0f * x0) + 4.0f * x1) - x2)
                                             + frac * ((3.0f * (x0 - x1) + x2) - xm)));
                } else {
                    x = x0 + (x1 - x0) * frac;
                }
            }
            float y = x;
            if (!is_open) {
                const float v3 = x - s2;
                const float v1 = fa1 * s1 + fa2 * v3;
                const float v2 = (s2 + fa2 * s1) + fa3 * v3;
                s1 = 2.0f * v1 - s1;
                s2 = 2.0f * v2 - s2;
                y = v2;
            }
            const float ye = y * g;
            g = g * seg.m + seg.a;
            const float ramp = (float)(k + 1);
            acc.template put<SENDS>(tk, k, ye * (glp + dgl * ramp), ye * (grp + dgr * ramp), rev, cho);
        }
        if (is_open) {          // bypassed: the state follows the input (smooth re-engage)
            s1 = 0.0f;
            s2 = x;
        }
        // ---- state update -----------------------------------------------------------------
        // exact in double (a 24-bit x 7-bit product), so the fraction carries no rounding
        const double pn = (double)fpos + (double)inc * (double)(TICK - k0);
        const long long fln = (long long)pn;
        ipos = gs_wrap(ipos + fln, looping, ls, le, L);
        fpos = (float)(pn - (double)fln);
        gl = gl_new;
        gr = gr_new;
        const long long t_last = t0 + TICK - 1;
        const float t_end = (float)(t_last - start);
        const float env_end = gs_venv_exact(V, t_last, k1000, krel, fade_frames);
        const bool env_done = (env_end < DONE_LEVEL) && ((t_last >= V.release) || (t_end >= attack_end));
        const bool kill_done = V.kill < GS_NEVER && (t0 + TICK - V.kill) >= (long long)fade_frames;
        done = (env_done || ended || kill_done) ? 1 : 0;
    }
    V.ipos = ipos;
    V.fpos = fpos;
    V.gl = gl;
    V.gr = gr;
    V.s1 = s1;
    V.s2 = s2;
    V.done = done;
}

template <bool SENDS>
__device__ __forceinline__ void gs_render_chunk(
    Voice* __restrict__ vt, long long v0, long long v1, const float* __restrict__ pool,
    long long pool_len, const float* __restrict__ chin, int n_chan, long long win_t0, int n_ticks,
    float rate, int fade_frames, int cubic, long long* __restrict__ out)
{
    const int nbus = SENDS ? 4 : 2;
    long long buf[SUBW * TICK * 4];
    GsLocalAcc acc;
    acc.buf = buf;
    for (int w0 = 0; w0 < n_ticks; w0 += SUBW) {
        const int w1 = w0 + SUBW < n_ticks ? w0 + SUBW : n_ticks;
        const long long w_end = win_t0 + (long long)w1 * TICK;
        bool any = false;
        for (long long v = v0; v < v1; ++v) {
            if (vt[v].done || vt[v].start >= w_end) continue;
            if (!any) {
                for (int i = 0; i < (w1 - w0) * TICK * nbus; ++i) buf[i] = 0;
                any = true;
            }
            acc.tk0 = w0;
            gs_render_voice<SENDS>(vt[v], pool, pool_len, chin, n_chan, n_ticks, win_t0, w0, w1,
                                   rate, fade_frames, cubic, acc);
        }
        if (!any) continue;
        long long* o = out + (long long)w0 * TICK * nbus;
        for (int i = 0; i < (w1 - w0) * TICK * nbus; ++i)
            if (buf[i] != 0) GS_ATOMIC_ADD_LL(o + i, buf[i]);
    }
}

// out: int64 [n_ticks * TICK][nbus] (nbus = 4 with sends: L, R, reverb, chorus; else 2), zeroed
// by the caller; in the shim build one such slice per OpenMP thread (GS_OUT_SLICE).
extern "C" __global__ void voice_render(
    Voice* __restrict__ vt, long long n_voices,
    const float* __restrict__ pool, long long pool_len,
    const float* __restrict__ chin, int n_chan,     // [N_CHIN][n_ticks][n_chan]
    long long win_t0, int n_ticks,                   // absolute frame of tick 0 (multiple of TICK)
    float rate, int fade_frames, int cubic, int sends,
    long long* __restrict__ out)
{
    const long long n_chunks = (n_voices + VCHUNK - 1) / VCHUNK;
    const long long slice = (long long)n_ticks * TICK * (sends ? 4 : 2);
    (void)slice;                   // used by the shim's GS_OUT_SLICE only
    GRID_STRIDE_LOOP_DYN(ci, n_chunks) {
        const long long v0 = ci * VCHUNK;
        const long long v1 = v0 + VCHUNK < n_voices ? v0 + VCHUNK : n_voices;
        long long* o = GS_OUT_SLICE(out, slice);
        if (sends)
            gs_render_chunk<true>(vt, v0, v1, pool, pool_len, chin, n_chan, win_t0, n_ticks, rate,
                                  fade_frames, cubic, o);
        else
            gs_render_chunk<false>(vt, v0, v1, pool, pool_len, chin, n_chan, win_t0, n_ticks, rate,
                                   fade_frames, cubic, o);
    }
}
