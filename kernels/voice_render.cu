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
//      voice order or thread count. A send bus (reverb, chorus) adds the integer product
//      sq * (qL + qR) of the voice's send level, quantised per tick to sq = rint(send x
//      SEND_ONE), and its two rounded dry frames: no further rounding per frame, and where the
//      lanes of a chunk share one send level the product of the sums (the same integer).
//
// Two portable kernels (shim and GPU) compute the same thing, bit for bit:
//   voice_render        a work item is a chunk of VCHUNK voices processed as lanes, tick by tick,
//                       in passes over small buffers: source (interpolation; independent frames),
//                       envelope, filter (the recurrence, interleaved across lanes so the CPU
//                       overlaps or vectorises it) and mix. The native backend's kernel.
//   voice_render_fused  a voice per work item, every pass fused into one loop per frame, no
//                       per-frame buffers: the GPU's kernel (a thread per voice).
// On the GPU both sum SUBW ticks at a time into a private int64 buffer and then add it to `out`
// with integer atomics; the shim gives each OpenMP thread its own slice of `out`, which the
// work items add into directly (gs_acc_begin).
// A third, GPU-only entry point, voice_render_smem, runs the fused loop with a thread per voice
// and reduces each tick across the block on chip (warp sums, then shared-memory integer
// atomics, then one global atomic per block, frame and bus): the same integers, so the same
// output bit for bit as its portable twin voice_render_fused (tests/unit/backend/test_cupy_backend.py compares them).
#include "common.cuh"

#ifndef GS_NOINLINE
#define GS_NOINLINE
#endif
#ifndef GS_SIMD
#define GS_SIMD
#define GS_SIMD_REDUCE_MIX
#endif
#ifndef GS_OUT_SLICE
#define GS_OUT_SLICE(out, stride) (out)
#endif

// a send bus's integer: send level sq (0..SEND_ONE) x (qL + qR), wrapping (as numpy's int64)
__device__ __forceinline__ long long gs_send(long long sq, long long m) {
    return (long long)((unsigned long long)sq * (unsigned long long)m);
}

// Accumulator of the portable kernel: int64 [SUBW * TICK][nbus], ticks [tk0, tk0 + SUBW).
struct GsLocalAcc {
    long long* buf;
    int tk0;
    // no clamp: a finite contribution (|v| < 2^39 full scale) always fits; validated input
    // cannot make a non-finite one (whose integer value would be unspecified)
    __device__ __forceinline__ long long q(float v) const { return GS_F2LL(v * MIX_SCALE); }
    template <bool SENDS>
    __device__ __forceinline__ void put(int tk, int k, float l, float r, int rq, int cq) {
        long long* p = buf + ((long long)(tk - tk0) * TICK + k) * (SENDS ? 4 : 2);
        const long long ql = q(l), qr = q(r);
        p[0] += ql;
        p[1] += qr;
        if (SENDS) {                 // a zero send adds exactly 0: skipped
            if (rq != 0) p[2] += gs_send(rq, ql + qr);
            if (cq != 0) p[3] += gs_send(cq, ql + qr);
        }
    }
};

// ---- per voice: constants of a render call --------------------------------------------------
struct GsVoiceK {
    long long ls, le, L, pe, lo, hi;
    float k1000, krel, rdec, rrel, attack_end, trel;
    float brk[4];
    int c;
};

__device__ __forceinline__ void gs_voice_k(const Voice& V, long long pool_len, int n_chan, GsVoiceK& K) {
    int c = V.chan;
    K.c = c < 0 ? 0 : (c >= n_chan ? n_chan - 1 : c);
    K.ls = V.lstart;
    K.le = V.lend;
    K.pe = V.pend;
    K.L = (K.le - K.ls) > 1 ? (K.le - K.ls) : 1;
    // reads stay inside the region and inside the pool, however wrong a loop point is
    K.lo = gs_clampll(V.pstart, 0, pool_len - 1);
    K.hi = gs_clampll(K.pe - 1, 0, pool_len - 1);
    if (K.hi < K.lo) K.hi = K.lo;
    K.k1000 = 1000.0f / gs_maxf(V.ve_decay, 1.0f);
    K.krel = 1000.0f / gs_maxf(V.ve_release, 1.0f);
    K.rdec = gs_cb_gain(K.k1000);            // per-frame ratios of the dB-linear stages
    K.rrel = gs_cb_gain(K.krel);
    gs_venv_breaks(V, K.k1000, K.brk);
    K.attack_end = (V.ve_delay + V.ve_attack) + V.ve_hold;
    K.trel = (float)(V.release - V.start);
}

// ---- per voice and tick: control values at the tick start -----------------------------------
struct GsTick {
    float inc, fa1, fa2, fa3, glp, dgl, grp, dgr, gl_new, gr_new;
    int k0, rq, cq;                 // rq / cq: reverb / chorus send level, 0..SEND_ONE
    bool looping, is_open;
};

template <bool SENDS>
__device__ __forceinline__ void gs_tick(Voice& V, const GsVoiceK& K, const float* __restrict__ ch,
                                        long long cstride, long long t0, float rate, float gl,
                                        float gr, GsTick& T) {
    const long long start = V.start;
    const float ch_pitch = ch[CHI_ch_pitch * cstride];
    const float ch_gain = ch[CHI_ch_gain * cstride];
    const float ch_pan = ch[CHI_ch_pan * cstride];
    const float cmod = ch[CHI_ch_mod * cstride];
    const float cpress = ch[CHI_ch_press * cstride];
    const long long since = t0 > start ? t0 - start : 0;
    const bool rel_c = t0 >= V.release;
    const float me = gs_menv((float)since, rel_c, K.trel, V);
    // an LFO that moves nothing this tick is not evaluated (its terms below are exactly 0)
    const bool ml_on = V.ml_pitch != 0.0f || V.ml_fc != 0.0f || V.ml_vol != 0.0f
                       || (cmod != 0.0f && (V.cc1_ml_pitch != 0.0f || V.cc1_ml_fc != 0.0f
                                            || V.cc1_ml_vol != 0.0f));
    const bool vl_on = V.vl_pitch != 0.0f || (cmod != 0.0f && V.cc1_vib != 0.0f)
                       || (cpress != 0.0f && V.press_vib != 0.0f);
    const float ml = ml_on ? gs_tri_lfo(since, V.ml_delay, V.ml_freq) : 0.0f;
    const float vl = vl_on ? gs_tri_lfo(since, V.vl_delay, V.vl_freq) : 0.0f;
    const float cents = (((V.pitch + ch_pitch) + me * V.me_pitch)
                         + ml * (V.ml_pitch + cmod * V.cc1_ml_pitch))
                        + vl * ((V.vl_pitch + cmod * V.cc1_vib) + cpress * V.press_vib);
    // comparisons written so that a NaN pitch becomes the lower clamp
    float cl = cents > -12000.0f ? cents : -12000.0f;
    cl = cl < 12000.0f ? cl : 12000.0f;
    T.inc = gs_exp2(cl * GS_INV_1200);
    const float fc = (V.fc + me * V.me_fc) + ml * (V.ml_fc + cmod * V.cc1_ml_fc);
    const float att = (V.atten + ch_gain) - ml * (V.ml_vol + cmod * V.cc1_ml_vol);
    const float pan = gs_clampf(V.pan + ch_pan, -500.0f, 500.0f);
    if (gl >= 0.0f && att == V.catt && pan == V.cpan) {   // unchanged: last tick's gains
        T.gl_new = gl;
        T.gr_new = gr;
    } else {
        // the attenuation is clamped at 0 cB (FluidSynth's cb2amp); the filter stage's gain
        // (SF2: 1/sqrt(Q)) applies after the clamp
        const float amp = gs_cb_gain(gs_maxf(att, 0.0f) + V.fatt);
        const float ang = (pan + 500.0f) * GS_PI_2000;
        T.gl_new = amp * cosf(ang);
        T.gr_new = amp * sinf(ang);
        V.catt = att;
        V.cpan = pan;
    }
    T.rq = 0;
    T.cq = 0;
    if (SENDS) {
        T.rq = GS_F2I(gs_clampf(V.rev + ch[CHI_ch_rev * cstride] * V.rev_cc, 0.0f, 1.0f) * SEND_ONE);
        T.cq = GS_F2I(gs_clampf(V.cho + ch[CHI_ch_cho * cstride] * V.cho_cc, 0.0f, 1.0f) * SEND_ONE);
    }
    T.k0 = (int)gs_clampll(start - t0, 0, TICK);
    T.looping = (V.lmode == 1) || (V.lmode == 3 && !rel_c);
    // filter coefficients: TPT state-variable low-pass (the RBJ response)
    T.is_open = (fc >= FILTER_OPEN_CENTS) && (V.q <= 0.0f);
    T.fa1 = 1.0f;
    T.fa2 = 0.0f;
    T.fa3 = 0.0f;
    if (!T.is_open) {
        if (gl >= 0.0f && fc == V.cfc) {        // same cutoff as last tick: cached (most voices)
            T.fa1 = V.ca1;
            T.fa2 = V.ca2;
            T.fa3 = V.ca3;
        } else {
            float hz = 8.175798915643707f * gs_exp2(fc * GS_INV_1200);
            hz = gs_clampf(hz, 5.0f, 0.45f * rate);
            const float g = tanf(GS_PI_F * hz / rate);
            const float qk = gs_exp2(-((V.q * 0.1f) - 3.01f) * GS_LOG2_10_20);   // 1/Q
            T.fa1 = 1.0f / (1.0f + g * (g + qk));
            T.fa2 = g * T.fa1;
            T.fa3 = g * T.fa2;
            V.cfc = fc;
            V.ca1 = T.fa1;
            V.ca2 = T.fa2;
            V.ca3 = T.fa3;
        }
    }
    // gains: ramped linearly across the tick from the previous tick's
    const bool fresh = gl < 0.0f;
    T.glp = fresh ? T.gl_new : gl;
    T.grp = fresh ? T.gr_new : gr;
    T.dgl = (T.gl_new - T.glp) * (1.0f / TICK);
    T.dgr = (T.gr_new - T.grp) * (1.0f / TICK);
}

// one interpolated source frame at position ipos + p (p >= 0); *ended when past a one-shot end
__device__ __forceinline__ float gs_source(const float* __restrict__ pool, const GsVoiceK& K,
                                           long long ipos, float p, bool looping, int cubic,
                                           bool* ended) {
    const long long fl = (long long)p;            // p >= 0: truncation is floor
    const float frac = p - (float)fl;
    const long long ip = gs_wrap(ipos + fl, looping, K.ls, K.le, K.L);
    *ended = !looping && ip >= K.pe;
    if (*ended) return 0.0f;
    const long long i1 = gs_wrap(ip + 1, looping, K.ls, K.le, K.L);
    const float x0 = pool[gs_clampll(ip, K.lo, K.hi)];
    const float x1 = pool[gs_clampll(i1, K.lo, K.hi)];
    if (cubic) {
        const float xm = pool[gs_clampll(ip - 1, K.lo, K.hi)];
        const float x2 = pool[gs_clampll(gs_wrap(i1 + 1, looping, K.ls, K.le, K.L), K.lo, K.hi)];
        return x0 + 0.5f * frac * ((x1 - xm) + frac * ((((2.0f * xm - 5.0f * x0) + 4.0f * x1) - x2)
                                   + frac * ((3.0f * (x0 - x1) + x2) - xm)));
    }
    return x0 + (x1 - x0) * frac;
}

// The source frames of one voice's tick into x[k * stride] (k0 <= k < TICK), in runs: while
// the four points of a frame lie inside the region and before the loop end, frames need no
// wrap and no clamp (a straight loop the compiler pipelines, or vectorises with gathers); the
// few frames at a loop end or a region edge go through gs_source one by one. Positions are
// the same either way (base + floor(p) is the wrapped index inside a run), and so are the values.
__device__ __forceinline__ long long gs_pos(float fpos, float inc, int j) {
    return (long long)(fpos + inc * (float)j);
}

__device__ __forceinline__ void gs_run_cubic(const float* __restrict__ q, float fpos, float inc, int k0,
                                             int ka, int kb, float* __restrict__ x, int stride) {
    for (int kk = ka; kk <= kb; ++kk) {
        const float p = fpos + inc * (float)(kk - k0);
        const int fl = (int)p;              // p < 2^17 within a tick: 32-bit gather indices
        const float frac = p - (float)fl;
#if defined(GPUSYNTH_HOST) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        // two 8-byte loads instead of four 4-byte ones: half the gather elements (measured +12%)
        unsigned long long a, b;
        memcpy(&a, q + fl - 1, 8);
        memcpy(&b, q + fl + 1, 8);
        const unsigned a0 = (unsigned)a, a1 = (unsigned)(a >> 32);
        const unsigned b0 = (unsigned)b, b1 = (unsigned)(b >> 32);
        float xm, x0, x1, x2;
        memcpy(&xm, &a0, 4);
        memcpy(&x0, &a1, 4);
        memcpy(&x1, &b0, 4);
        memcpy(&x2, &b1, 4);
#else
        const float xm = q[fl - 1], x0 = q[fl], x1 = q[fl + 1], x2 = q[fl + 2];
#endif
        x[kk * stride] = x0 + 0.5f * frac * ((x1 - xm) + frac * ((((2.0f * xm - 5.0f * x0) + 4.0f * x1) - x2)
                                             + frac * ((3.0f * (x0 - x1) + x2) - xm)));
    }
}

__device__ __forceinline__ void gs_source_tick(const float* __restrict__ pool, const GsVoiceK& K,
                                               const GsTick& T, long long ipos, float fpos,
                                               int cubic, float* __restrict__ x, int stride,
                                               bool* ended) {
    const int k0 = T.k0;
    const float inc = T.inc;
    // a straight run needs index - 1 >= lo and index + 2 <= limit
    const long long limit = T.looping ? (K.le - 1 < K.hi ? K.le - 1 : K.hi) : K.hi;
    long long base = ipos;              // wrapped index of frame k = base + gs_pos(k - k0)
    int k = k0;
    *ended = false;
    while (k < TICK) {
        const long long i0 = base + gs_pos(fpos, inc, k - k0);
        if (i0 - 1 >= K.lo && i0 + 2 <= limit) {
            // the run ends before the first frame whose index + 2 passes the limit: estimate
            // it, then settle it exactly with the frames' own position arithmetic
            float est = ((float)(limit - 2 - base) + 1.0f - fpos) / inc;   // frames since k0
            est = est < (float)TICK ? est : (float)TICK;
            int lo_k = k0 + (int)est;
            lo_k = lo_k < TICK - 1 ? lo_k : TICK - 1;
            lo_k = lo_k > k ? lo_k : k;
            while (lo_k + 1 < TICK && base + gs_pos(fpos, inc, lo_k + 1 - k0) + 2 <= limit) ++lo_k;
            while (lo_k > k && base + gs_pos(fpos, inc, lo_k - k0) + 2 > limit) --lo_k;
            const float* __restrict__ q = pool + base;
            if (cubic) {
                gs_run_cubic(q, fpos, inc, k0, k, lo_k, x, stride);
            } else {
                for (int kk = k; kk <= lo_k; ++kk) {
                    const float p = fpos + inc * (float)(kk - k0);
                    const int fl = (int)p;
                    const float frac = p - (float)fl;
                    x[kk * stride] = q[fl] + (q[fl + 1] - q[fl]) * frac;
                }
            }
            k = lo_k + 1;
            continue;
        }
        // one frame the general way (loop wrap, clamps, end of a one-shot sample)
        const float p = fpos + inc * (float)(k - k0);
        x[k * stride] = gs_source(pool, K, ipos, p, T.looping, cubic, ended);
        const long long fl = (long long)p;
        base = gs_wrap(ipos + fl, T.looping, K.ls, K.le, K.L) - fl;
        ++k;
    }
}

// end of a voice's tick: position, gains, done flag
__device__ __forceinline__ void gs_tick_end(const Voice& V, const GsVoiceK& K, const GsTick& T,
                                            long long t0, int fade_frames, bool ended,
                                            long long& ipos, float& fpos, float& gl, float& gr,
                                            signed char& done) {
    // exact in double (a 24-bit x 7-bit product), so the fraction carries no rounding
    const double pn = (double)fpos + (double)T.inc * (double)(TICK - T.k0);
    const long long fln = (long long)pn;
    ipos = gs_wrap(ipos + fln, T.looping, K.ls, K.le, K.L);
    fpos = (float)(pn - (double)fln);
    gl = T.gl_new;
    gr = T.gr_new;
    const long long t_last = t0 + TICK - 1;
    const float t_end = (float)(t_last - V.start);
    const float env_end = gs_venv_exact(V, t_last, K.k1000, K.krel, fade_frames);
    const bool env_done = (env_end < DONE_LEVEL) && ((t_last >= V.release) || (t_end >= K.attack_end));
    const bool kill_done = V.kill < GS_NEVER && (t0 + TICK - V.kill) >= (long long)fade_frames;
    done = (env_done || ended || kill_done) ? 1 : 0;
}

// ---- the fused per-voice render (voice_render_fused) ------------------------------------------
// One frame k of a voice's tick, fused: the envelope segment (set up again at a stage change),
// the source frame (x, ended), the filter (s1, s2), the stepped gain (g). Returns the frame
// times the envelope, before the pan gains.
__device__ __forceinline__ float gs_fused_frame(const Voice& V, const GsVoiceK& K, const GsTick& T,
                                                const float* __restrict__ pool, long long ipos,
                                                float fpos, int k, long long t0, int cubic,
                                                int fade_frames, EnvSeg& seg, float& g, float& s1,
                                                float& s2, float& x, bool& ended) {
    if (k == seg.kend) {
        seg = gs_venv_seg(V, t0, k, K.k1000, K.krel, K.rdec, K.rrel, K.brk, fade_frames);
        g = seg.g;
    }
    x = gs_source(pool, K, ipos, fpos + T.inc * (float)(k - T.k0), T.looping, cubic, &ended);
    float y = x;
    if (!T.is_open) {
        const float v3 = x - s2;
        const float v1 = T.fa1 * s1 + T.fa2 * v3;
        const float v2 = (s2 + T.fa2 * s1) + T.fa3 * v3;
        s1 = 2.0f * v1 - s1;
        s2 = 2.0f * v2 - s2;
        y = v2;
    }
    const float ye = y * g;
    g = g * seg.m + seg.a;
    return ye;
}

// A work item's private int64 sums of ticks [w0, w1): cleared, then added to the shared output.
__device__ __forceinline__ void gs_zero(long long* __restrict__ buf, int w0, int w1, int nbus) {
    for (int i = 0; i < (w1 - w0) * TICK * nbus; ++i) buf[i] = 0;
}

__device__ __forceinline__ void gs_flush(const long long* __restrict__ buf, long long* __restrict__ out,
                                         int w0, int w1, int nbus) {
    long long* o = out + (long long)w0 * TICK * nbus;
    for (int i = 0; i < (w1 - w0) * TICK * nbus; ++i)
        if (buf[i] != 0) GS_ATOMIC_ADD_LL(o + i, buf[i]);
}

// The accumulator of a work item's ticks [w0, w1), [tick - w0][frame][bus]: on a GPU a private
// buffer, zeroed here and added to the shared output with atomics by gs_acc_end; in the host
// shim each thread owns its slice of `out`, so the work item adds into it directly (no buffer to
// clear and copy, half the cache footprint: the same integers).
__device__ __forceinline__ long long* gs_acc_begin(long long* buf, long long* out, int w0, int w1,
                                                   int nbus) {
#ifdef GPUSYNTH_HOST
    (void)buf; (void)w1;
    return out + (long long)w0 * TICK * nbus;
#else
    gs_zero(buf, w0, w1, nbus);
    return buf;
#endif
}

__device__ __forceinline__ void gs_acc_end(const long long* acc, long long* out, int w0, int w1,
                                           int nbus) {
#ifdef GPUSYNTH_HOST
    (void)acc; (void)out; (void)w0; (void)w1; (void)nbus;
#else
    gs_flush(acc, out, w0, w1, nbus);
#endif
}

// Render voice V for ticks [tka, tkb) of the window that starts at absolute frame win_t0.
template <bool SENDS, class Acc>
__device__ __forceinline__ void gs_render_voice(
    Voice& V, const float* __restrict__ pool, long long pool_len,
    const float* __restrict__ chin, int n_chan, int n_ticks,
    long long win_t0, int tka, int tkb, float rate, int fade_frames, int cubic, Acc& acc)
{
    if (V.done) return;
    GsVoiceK K;
    gs_voice_k(V, pool_len, n_chan, K);
    const long long cstride = (long long)n_ticks * n_chan;
    long long ipos = V.ipos;
    float fpos = V.fpos, gl = V.gl, gr = V.gr, s1 = V.s1, s2 = V.s2;
    signed char done = 0;
    for (int tk = tka; tk < tkb && !done; ++tk) {
        const long long t0 = win_t0 + (long long)tk * TICK;
        if (V.start >= t0 + TICK) continue;               // not started in this tick
        GsTick T;
        gs_tick<SENDS>(V, K, chin + (long long)tk * n_chan + K.c, cstride, t0, rate, gl, gr, T);
        EnvSeg seg = gs_venv_seg(V, t0, T.k0, K.k1000, K.krel, K.rdec, K.rrel, K.brk, fade_frames);
        float g = seg.g;
        bool ended = false;
        float x = 0.0f;
        for (int k = T.k0; k < TICK; ++k) {
            const float ye = gs_fused_frame(V, K, T, pool, ipos, fpos, k, t0, cubic, fade_frames,
                                            seg, g, s1, s2, x, ended);
            const float ramp = (float)(k + 1);
            acc.template put<SENDS>(tk, k, ye * (T.glp + T.dgl * ramp), ye * (T.grp + T.dgr * ramp),
                                    T.rq, T.cq);
        }
        if (T.is_open) {        // bypassed: the state follows the input (smooth re-engage)
            s1 = 0.0f;
            s2 = x;
        }
        gs_tick_end(V, K, T, t0, fade_frames, ended, ipos, fpos, gl, gr, done);
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
__device__ __forceinline__ void gs_render_chunk_fused(
    Voice* __restrict__ vt, long long v0, long long v1, const float* __restrict__ pool,
    long long pool_len, const float* __restrict__ chin, int n_chan, long long win_t0, int n_ticks,
    float rate, int fade_frames, int cubic, long long* __restrict__ out)
{
    const int nbus = SENDS ? 4 : 2;
#ifdef GPUSYNTH_HOST
    long long* buf = nullptr;
#else
    long long buf[SUBW * TICK * 4];
#endif
    GsLocalAcc acc;
    acc.buf = buf;
    for (int w0 = 0; w0 < n_ticks; w0 += SUBW) {
        const int w1 = w0 + SUBW < n_ticks ? w0 + SUBW : n_ticks;
        const long long w_end = win_t0 + (long long)w1 * TICK;
        bool any = false;
        for (long long v = v0; v < v1; ++v) {
            if (vt[v].done || vt[v].start >= w_end) continue;
            if (!any) {
                acc.buf = gs_acc_begin(buf, out, w0, w1, nbus);
                any = true;
            }
            acc.tk0 = w0;
            gs_render_voice<SENDS>(vt[v], pool, pool_len, chin, n_chan, n_ticks, win_t0, w0, w1,
                                   rate, fade_frames, cubic, acc);
        }
        if (any) gs_acc_end(acc.buf, out, w0, w1, nbus);
    }
}

// nearest integer, ties to even (numpy's rint): int64, or int32 where the caller knows it fits
template <class I> __device__ __forceinline__ I gs_round(float x);
template <> __device__ __forceinline__ long long gs_round<long long>(float x) { return GS_F2LL(x); }
template <> __device__ __forceinline__ int gs_round<int>(float x) { return GS_F2I(x); }

// mix of the lanes' frames of one tick into p[k * nbus + bus]: each lane's frame rounded to the
// nearest multiple of 2^-24 full scale, the lanes summed in I (int, when the caller has checked
// that nothing can overflow, or long long), then added to the int64 accumulator. A send bus
// adds sum over lanes of sq[l] * (qL + qR) (gs_send); RM / CM, the reverb / chorus send: 0 no
// lane sends (skipped: a zero send adds exactly 0; GM's CC93 is 0), 1 every live lane sends
// the same level s0 (the sum of the products is s0 times the sum of the dry sums: one multiply
// per frame, the same integer), 2 per lane.
template <bool SENDS, int RM, int CM, class I>
GS_NOINLINE __device__ void gs_mix_lanes(
    const float (*__restrict__ xs)[VCHUNK], const float (*__restrict__ es)[VCHUNK],
    const float* __restrict__ gl0, const float* __restrict__ gld, const float* __restrict__ gr0,
    const float* __restrict__ grd, const int* __restrict__ rq, const int* __restrict__ cq,
    long long* __restrict__ p, int nbus)
{
    for (int k = 0; k < TICK; ++k) {
        const float ramp = (float)(k + 1);
        I sl = 0, sr = 0;
        long long sv = 0, sc = 0;
        GS_SIMD_REDUCE_MIX
        for (int l = 0; l < VCHUNK; ++l) {
            const float ye = xs[k][l] * es[k][l];
            const I a = gs_round<I>((ye * (gl0[l] + gld[l] * ramp)) * MIX_SCALE);
            const I b = gs_round<I>((ye * (gr0[l] + grd[l] * ramp)) * MIX_SCALE);
            sl += a;
            sr += b;
            if (SENDS && RM == 2) sv += gs_send(rq[l], (long long)a + (long long)b);
            if (SENDS && CM == 2) sc += gs_send(cq[l], (long long)a + (long long)b);
        }
        p[k * nbus] += sl;
        p[k * nbus + 1] += sr;
        if (SENDS) {
            if (RM == 1) sv = gs_send(rq[0], (long long)sl + (long long)sr);
            if (CM == 1) sc = gs_send(cq[0], (long long)sl + (long long)sr);
            p[k * nbus + 2] += sv;
            p[k * nbus + 3] += sc;
        }
    }
}

// a send's mode for gs_mix_lanes over the live lanes (lv); mode 1 leaves the shared level in s[0]
__device__ __forceinline__ int gs_send_mode(int* s, const bool* lv) {
    int first = 0;
    for (int l = 0; l < VCHUNK && first == 0; ++l) first = lv[l] ? s[l] : 0;
    bool any = false, same = true;
    for (int l = 0; l < VCHUNK; ++l) {       // a dead lane adds zeros whatever its level
        any = any || (lv[l] && s[l] != 0);
        same = same && (!lv[l] || s[l] == first);
    }
    if (!any) return 0;
    if (!same) return 2;
    s[0] = first;
    return 1;
}

template <bool SENDS>
__device__ __forceinline__ void gs_mix_dispatch(
    bool small, int rm, int cm, const float (*__restrict__ xs)[VCHUNK],
    const float (*__restrict__ es)[VCHUNK], const float* gl0, const float* gld,
    const float* gr0, const float* grd, const int* rq, const int* cq, long long* p, int nbus)
{
#define GS_MIX(R, C) \
    (small ? gs_mix_lanes<SENDS, R, C, int>(xs, es, gl0, gld, gr0, grd, rq, cq, p, nbus) \
           : gs_mix_lanes<SENDS, R, C, long long>(xs, es, gl0, gld, gr0, grd, rq, cq, p, nbus))
    if (!SENDS) { GS_MIX(0, 0); return; }
    switch (rm * 3 + cm) {
    case 0: GS_MIX(0, 0); break;
    case 1: GS_MIX(0, 1); break;
    case 2: GS_MIX(0, 2); break;
    case 3: GS_MIX(1, 0); break;
    case 4: GS_MIX(1, 1); break;
    case 5: GS_MIX(1, 2); break;
    case 6: GS_MIX(2, 0); break;
    case 7: GS_MIX(2, 1); break;
    default: GS_MIX(2, 2); break;
    }
#undef GS_MIX
}

// ---- the lane render (voice_render) --------------------------------------------------------------
// The VCHUNK voices of a work item advance tick by tick together. Per tick: each live voice
// fills its lane of x (source frames) with scalar code; then the envelope (a multiply-add per
// frame) and the filter (a recurrence) run across lanes frame by frame, independent chains side
// by side (no latency bound, and vectorisable), then the mix across lanes. Dead lanes carry
// zeros. The per-frame arithmetic is the fused kernel's, operation for operation.
template <bool SENDS>
__device__ __forceinline__ void gs_render_chunk_lanes(
    Voice* __restrict__ vt, long long v0, long long v1, const float* __restrict__ pool,
    long long pool_len, const float* __restrict__ chin, int n_chan, long long win_t0, int n_ticks,
    float rate, int fade_frames, int cubic, long long* __restrict__ out)
{
    const int nbus = SENDS ? 4 : 2;
    const int nl = (int)(v1 - v0);
    const long long cstride = (long long)n_ticks * n_chan;
#ifdef GPUSYNTH_HOST
    long long* buf = nullptr;
#else
    long long buf[SUBW * TICK * 4];
#endif
    float xs[TICK][VCHUNK], es[TICK][VCHUNK];
    float f1[VCHUNK], f2[VCHUNK], f3[VCHUNK], z1[VCHUNK], z2[VCHUNK];
    float gl0[VCHUNK], gld[VCHUNK], gr0[VCHUNK], grd[VCHUNK];
    int rq[VCHUNK], cq[VCHUNK];
    int byp[VCHUNK];
    bool lv[VCHUNK];
    GsVoiceK Ks[VCHUNK];                 // per-voice constants: fixed for the whole call
    float eg[VCHUNK], em[VCHUNK], ea[VCHUNK], emx[VCHUNK], ym[VCHUNK];
    int ek0[VCHUNK], ekend[VCHUNK];
    for (int l = 0; l < nl; ++l) gs_voice_k(vt[v0 + l], pool_len, n_chan, Ks[l]);
    for (int w0 = 0; w0 < n_ticks; w0 += SUBW) {
        const int w1 = w0 + SUBW < n_ticks ? w0 + SUBW : n_ticks;
        const long long w_end = win_t0 + (long long)w1 * TICK;
        bool any = false;
        for (long long v = v0; v < v1; ++v) any = any || (!vt[v].done && vt[v].start < w_end);
        if (!any) continue;
        long long* const wacc = gs_acc_begin(buf, out, w0, w1, nbus);
        for (int tk = w0; tk < w1; ++tk) {
            const long long t0 = win_t0 + (long long)tk * TICK;
            int live = 0;
            for (int l = 0; l < VCHUNK; ++l) {
                const bool on = l < nl && !vt[v0 + l].done && vt[v0 + l].start < t0 + TICK;
                live += on ? 1 : 0;
                lv[l] = on;
                if (!on) {                                     // a dead lane adds zeros
                    for (int k = 0; k < TICK; ++k) xs[k][l] = 0.0f;
                    ek0[l] = TICK;
                    ekend[l] = -1;
                    f1[l] = 1.0f; f2[l] = 0.0f; f3[l] = 0.0f; z1[l] = 0.0f; z2[l] = 0.0f;
                    gl0[l] = gld[l] = gr0[l] = grd[l] = 0.0f;
                    rq[l] = cq[l] = 0;
                    byp[l] = 1;
                    continue;
                }
                Voice& V = vt[v0 + l];
                const GsVoiceK& K = Ks[l];
                GsTick T;
                gs_tick<SENDS>(V, K, chin + (long long)tk * n_chan + K.c, cstride, t0, rate, V.gl,
                               V.gr, T);
                // source and envelope passes (scalar: gathers, loop wraps, stage changes)
                bool ended = false;
                for (int k = 0; k < T.k0; ++k) xs[k][l] = 0.0f;
                gs_source_tick(pool, K, T, V.ipos, V.fpos, cubic, &xs[0][l], VCHUNK, &ended);
                ek0[l] = T.k0;
                ekend[l] = T.k0;         // the envelope pass sets up the first segment there
                f1[l] = T.fa1; f2[l] = T.fa2; f3[l] = T.fa3; z1[l] = V.s1; z2[l] = V.s2;
                byp[l] = T.is_open ? 1 : 0;
                gl0[l] = T.glp; gld[l] = T.dgl; gr0[l] = T.grp; grd[l] = T.dgr;
                rq[l] = T.rq; cq[l] = T.cq;
                long long ipos = V.ipos;
                float fpos = V.fpos, gl = V.gl, gr = V.gr;
                signed char done = 0;
                gs_tick_end(V, K, T, t0, fade_frames, ended, ipos, fpos, gl, gr, done);
                V.ipos = ipos; V.fpos = fpos; V.gl = gl; V.gr = gr; V.done = done;
            }
            if (!live) continue;
            // envelope pass: lanes side by side (the per-frame multiply-add chains interleave)
            // (frames where some lane starts a new segment are flagged in a 64-bit mask; the
            // per-frame step itself is branch-free across lanes)
            unsigned long long changes = 0;
            for (int l = 0; l < VCHUNK; ++l) {
                eg[l] = 0.0f; em[l] = 1.0f; ea[l] = 0.0f; emx[l] = 0.0f; ym[l] = 0.0f;
                if (ekend[l] >= 0 && ekend[l] < TICK) changes |= 1ull << ekend[l];
            }
            for (int k = 0; k < TICK; ++k) {
                if ((changes >> k) & 1ull) {
                    for (int l = 0; l < VCHUNK; ++l) {
                        if (k != ekend[l]) continue;           // a stage change: rare
                        const GsVoiceK& Kl = Ks[l];
                        const EnvSeg sg = gs_venv_seg(vt[v0 + l], t0, k, Kl.k1000, Kl.krel, Kl.rdec,
                                                      Kl.rrel, Kl.brk, fade_frames);
                        eg[l] = sg.g; em[l] = sg.m; ea[l] = sg.a; ekend[l] = sg.kend;
                        if (sg.kend < TICK) changes |= 1ull << sg.kend;
                    }
                }
                GS_SIMD
                for (int l = 0; l < VCHUNK; ++l) {
                    const float gg = eg[l];
                    const int act = k >= ek0[l];
                    const float e = act ? gg : 0.0f;
                    es[k][l] = e;
                    const float ae = e < 0.0f ? -e : e;
                    emx[l] = emx[l] > ae ? emx[l] : ae;
                    // the step computed for every lane, then selected: a conditional multiply
                    // (which might trap, to the compiler) keeps the loop from vectorising
                    const float nx = gg * em[l] + ea[l];
                    eg[l] = act ? nx : gg;
                }
            }
            // filter pass: lanes side by side (a bypassed lane passes x through)
            for (int k = 0; k < TICK; ++k) {
                GS_SIMD
                for (int l = 0; l < VCHUNK; ++l) {
                    const float x = xs[k][l];
                    const float v3 = x - z2[l];
                    const float vv1 = f1[l] * z1[l] + f2[l] * v3;
                    const float vv2 = (z2[l] + f2[l] * z1[l]) + f3[l] * v3;
                    z1[l] = 2.0f * vv1 - z1[l];
                    z2[l] = 2.0f * vv2 - z2[l];
                    const float y = byp[l] != 0 ? x : vv2;
                    xs[k][l] = y;
                    const float ay = y < 0.0f ? -y : y;
                    ym[l] = ym[l] > ay ? ym[l] : ay;                // NaN sticks (a > NaN is false)
                }
            }
            // mix pass: each lane's frame rounded to fixed point, summed exactly. When every
            // lane's frames stay below 128 / VCHUNK x full scale this tick (VCHUNK lanes of
            // |q| < 2^31 / VCHUNK sum below 2^31) the sums run in int32 (vectorised), else in
            // int64: the same integers either way.
            bool small = true;
            for (int l = 0; l < VCHUNK; ++l) {
                float gm = gl0[l] < 0.0f ? -gl0[l] : gl0[l];
                const float ge = gl0[l] + gld[l] * (float)TICK;
                gm = gm > (ge < 0.0f ? -ge : ge) ? gm : (ge < 0.0f ? -ge : ge);
                const float rm0 = gr0[l] < 0.0f ? -gr0[l] : gr0[l];
                const float re = gr0[l] + grd[l] * (float)TICK;
                gm = gm > rm0 ? gm : rm0;
                gm = gm > (re < 0.0f ? -re : re) ? gm : (re < 0.0f ? -re : re);
                small = small && (ym[l] * emx[l] * gm < 128.0f / VCHUNK);   // false for NaN / inf
            }
            long long* p = wacc + (long long)(tk - w0) * TICK * nbus;
            const int rm = SENDS ? gs_send_mode(rq, lv) : 0;
            const int cm = SENDS ? gs_send_mode(cq, lv) : 0;
            gs_mix_dispatch<SENDS>(small, rm, cm, xs, es, gl0, gld, gr0, grd, rq, cq, p, nbus);
            // filter state of the lanes live in this tick (bypassed: follows the input)
            for (int l = 0; l < nl; ++l) {
                if (!lv[l]) continue;
                vt[v0 + l].s1 = byp[l] ? 0.0f : z1[l];
                vt[v0 + l].s2 = byp[l] ? xs[TICK - 1][l] : z2[l];
            }
        }
        gs_acc_end(wacc, out, w0, w1, nbus);
    }
}

#define GS_KERNEL_ARGS \
    Voice* __restrict__ vt, long long n_voices, const float* __restrict__ pool, long long pool_len, \
    const float* __restrict__ chin, int n_chan, long long win_t0, int n_ticks, float rate, \
    int fade_frames, int cubic, int sends, int n_out, long long* __restrict__ out

// the output a voice mixes into (an out-of-range bus falls back to output 0)
__device__ __forceinline__ long long gs_bus(const Voice& V, int n_out) {
    return (unsigned)V.bus < (unsigned)n_out ? (long long)V.bus : 0ll;
}

// chunk [v0, v1) of the table rendered and mixed into the accumulator o
#define GS_CHUNK_CALL(chunk_fn, o) \
    if (sends) \
        chunk_fn<true>(vt, v0, v1, pool, pool_len, chin, n_chan, win_t0, n_ticks, rate, \
                       fade_frames, cubic, o); \
    else \
        chunk_fn<false>(vt, v0, v1, pool, pool_len, chin, n_chan, win_t0, n_ticks, rate, \
                        fade_frames, cubic, o)

// every voice of a chunk mixes into the output of the chunk's first voice: the host keeps the
// voices of one output together, each output's run padded to a whole chunk (gpusynth.ensemble)
#define GS_KERNEL_BODY(chunk_fn) \
    const long long n_chunks = (n_voices + VCHUNK - 1) / VCHUNK; \
    const long long slice = (long long)n_ticks * TICK * (sends ? 4 : 2); \
    GRID_STRIDE_LOOP_DYN(ci, n_chunks) { \
        const long long v0 = ci * VCHUNK; \
        const long long v1 = v0 + VCHUNK < n_voices ? v0 + VCHUNK : n_voices; \
        long long* o = GS_OUT_SLICE(out, slice * n_out) + gs_bus(vt[v0], n_out) * slice; \
        GS_CHUNK_CALL(chunk_fn, o); \
    }

// out: int64 [n_out][n_ticks * TICK][nbus] (nbus = 4 with sends: L, R, reverb, chorus; else 2;
// a voice mixes into output vt[v].bus), zeroed by the caller; in the shim build one such block
// per OpenMP thread (GS_OUT_SLICE). chin:
// float32 [N_CHIN][n_ticks][n_chan]; win_t0: absolute frame of tick 0 (a multiple of TICK).
extern "C" __global__ void voice_render(GS_KERNEL_ARGS) { GS_KERNEL_BODY(gs_render_chunk_lanes) }

extern "C" __global__ void voice_render_fused(GS_KERNEL_ARGS) { GS_KERNEL_BODY(gs_render_chunk_fused) }

#ifdef GPUSYNTH_HOST
// CPU only: the native backend's launches of many outputs (gpusynth.ensemble). One work item per
// output: every chunk of that output's run (the host sorts the table by bus, each run padded to
// whole chunks) is mixed into the thread's own int64 window -- out holds one
// [n_ticks * TICK][nbus] block per OpenMP thread, zeroed, and is left zeroed -- which is then
// converted into fout[bus] as numpy converts the mix: float32(float64(sum) x scale[bus]). Each
// output is written by one thread: no copy of every output per thread to sum afterwards, and
// the window being mixed stays in the thread's cache.
#define GS_KERNEL_OUTS_BODY(chunk_fn) \
    const long long n_chunks = (n_voices + VCHUNK - 1) / VCHUNK; \
    const int nbus = sends ? 4 : 2; \
    const long long slice = (long long)n_ticks * TICK * nbus; \
    GRID_STRIDE_LOOP_DYN(b, n_out) { \
        long long* acc = GS_OUT_SLICE(out, slice); \
        long long lo = 0, hi = n_chunks;                 /* the first chunk of output b */ \
        while (lo < hi) { \
            const long long mid = (lo + hi) / 2; \
            if (gs_bus(vt[mid * VCHUNK], n_out) < b) lo = mid + 1; else hi = mid; \
        } \
        for (long long ci = lo; ci < n_chunks && gs_bus(vt[ci * VCHUNK], n_out) == b; ++ci) { \
            const long long v0 = ci * VCHUNK; \
            const long long v1 = v0 + VCHUNK < n_voices ? v0 + VCHUNK : n_voices; \
            GS_CHUNK_CALL(chunk_fn, acc); \
        } \
        float* f = fout + b * slice; \
        for (long long i = 0; i < slice; i += nbus) { \
            for (int k = 0; k < nbus; ++k) { \
                f[i + k] = (float)((double)acc[i + k] * scale[k]); \
                acc[i + k] = 0; \
            } \
        } \
    }

extern "C" void voice_render_outs(GS_KERNEL_ARGS, float* __restrict__ fout,
                                  const double* __restrict__ scale) {
    GS_KERNEL_OUTS_BODY(gs_render_chunk_lanes)
}

extern "C" void voice_render_fused_outs(GS_KERNEL_ARGS, float* __restrict__ fout,
                                        const double* __restrict__ scale) {
    GS_KERNEL_OUTS_BODY(gs_render_chunk_fused)
}
#endif

#ifndef GPUSYNTH_HOST
// ---- GPU fast path (voice_render_smem) ---------------------------------------------------------
// Sum of a fixed-point value over the warp, exact when every lane's |q| < 2^41 (128 x full
// scale): 16-bit low parts and the high parts are reduced apart (neither sum can overflow 32 bits).
__device__ __forceinline__ long long gs_warp_sum(long long q) {
    unsigned lo = (unsigned)(q & 0xFFFF);
    int hi = (int)(q >> 16);
#if __CUDA_ARCH__ >= 800
    lo = __reduce_add_sync(0xffffffffu, lo);
    hi = __reduce_add_sync(0xffffffffu, hi);
#else
    for (int o = 16; o > 0; o >>= 1) {
        lo += __shfl_xor_sync(0xffffffffu, lo, o);
        hi += __shfl_xor_sync(0xffffffffu, hi, o);
    }
#endif
    return ((long long)hi << 16) + (long long)lo;
}

// every lane of the warp calls this for the same frame k: the warp's sum of each bus goes to the
// block's shared accumulator (lanes with a huge value add their own, still exactly)
// A warp whose lanes mix into more than one output (``mixed``) adds each lane's values straight
// to its own output frame ``own`` in global memory instead.
__device__ __forceinline__ void gs_smem_put(long long* acc, int k, int nbus, const long long* q,
                                            bool mixed, long long* own) {
    const int lane = threadIdx.x & 31;
    for (int b = 0; b < nbus; ++b) {
        const long long qb = q[b];
        if (mixed) {
            if (qb != 0) atomicAdd((unsigned long long*)&own[b], (unsigned long long)qb);
            continue;
        }
        const bool big = qb >= (1ll << 41) || qb <= -(1ll << 41);
        if (__any_sync(0xffffffffu, big)) {
            if (qb != 0) atomicAdd((unsigned long long*)&acc[k * nbus + b], (unsigned long long)qb);
        } else {
            const long long s = gs_warp_sum(qb);
            if (lane == 0 && s != 0) atomicAdd((unsigned long long*)&acc[k * nbus + b], (unsigned long long)s);
        }
    }
}

template <bool SENDS>
__device__ __forceinline__ void gs_render_block_smem(
    Voice* __restrict__ vt, long long n_voices, const float* __restrict__ pool, long long pool_len,
    const float* __restrict__ chin, int n_chan, long long win_t0, int n_ticks, float rate,
    int fade_frames, int cubic, int n_out, long long* __restrict__ out, long long* acc)
{
    const int nbus = SENDS ? 4 : 2;
    const long long cstride = (long long)n_ticks * n_chan;
    const long long slice = (long long)n_ticks * TICK * nbus;
    // blocks stride over the table together, so every thread of a block runs the same loop
    for (long long base = (long long)blockIdx.x * blockDim.x; base < n_voices;
         base += (long long)gridDim.x * blockDim.x) {
        const long long v = base + threadIdx.x;
        const bool has = v < n_voices && !vt[v].done;
        Voice& V = vt[has ? v : base];
        // the block reduces on chip into the output of its first voice; a warp with a lane
        // of another output adds its values to global memory directly
        const long long bb = gs_bus(vt[base], n_out);
        const long long my = has ? gs_bus(V, n_out) : bb;
        const bool mixed = __any_sync(0xffffffffu, my != bb);
        long long* ob = out + bb * slice;
        long long* om = out + my * slice;
        GsVoiceK K;
        long long ipos = 0;
        float fpos = 0.0f, gl = 0.0f, gr = 0.0f, s1 = 0.0f, s2 = 0.0f;
        signed char done = has ? 0 : 1;
        if (has) {
            gs_voice_k(V, pool_len, n_chan, K);
            ipos = V.ipos; fpos = V.fpos; gl = V.gl; gr = V.gr; s1 = V.s1; s2 = V.s2;
        }
        for (int tk = 0; tk < n_ticks; ++tk) {
            const long long t0 = win_t0 + (long long)tk * TICK;
            const bool live = !done && V.start < t0 + TICK;
            if (!__syncthreads_or(live)) continue;            // the whole block is silent
            for (int i = threadIdx.x; i < TICK * nbus; i += blockDim.x) acc[i] = 0;
            __syncthreads();
            GsTick T;
            EnvSeg seg;
            float g = 0.0f, x = 0.0f;
            bool ended = false;
            T.k0 = TICK;
            if (live) {
                gs_tick<SENDS>(V, K, chin + (long long)tk * n_chan + K.c, cstride, t0, rate, gl, gr, T);
                seg = gs_venv_seg(V, t0, T.k0, K.k1000, K.krel, K.rdec, K.rrel, K.brk, fade_frames);
                g = seg.g;
            }
            for (int k = 0; k < TICK; ++k) {                  // every lane, every frame
                long long q[4] = {0, 0, 0, 0};
                if (live && k >= T.k0) {
                    const float ye = gs_fused_frame(V, K, T, pool, ipos, fpos, k, t0, cubic,
                                                    fade_frames, seg, g, s1, s2, x, ended);
                    const float ramp = (float)(k + 1);
                    const float l = ye * (T.glp + T.dgl * ramp), r = ye * (T.grp + T.dgr * ramp);
                    q[0] = GS_F2LL(l * MIX_SCALE);
                    q[1] = GS_F2LL(r * MIX_SCALE);
                    if (SENDS) {
                        q[2] = gs_send(T.rq, q[0] + q[1]);
                        q[3] = gs_send(T.cq, q[0] + q[1]);
                    }
                }
                gs_smem_put(acc, k, nbus, q, mixed, om + ((long long)tk * TICK + k) * nbus);
            }
            if (live) {
                if (T.is_open) {
                    s1 = 0.0f;
                    s2 = x;
                }
                gs_tick_end(V, K, T, t0, fade_frames, ended, ipos, fpos, gl, gr, done);
            }
            __syncthreads();
            long long* o = ob + (long long)tk * TICK * nbus;
            for (int i = threadIdx.x; i < TICK * nbus; i += blockDim.x)
                if (acc[i] != 0) atomicAdd((unsigned long long*)(o + i), (unsigned long long)acc[i]);
            __syncthreads();                                  // before the next tick clears acc
        }
        if (has) {
            V.ipos = ipos; V.fpos = fpos; V.gl = gl; V.gr = gr; V.s1 = s1; V.s2 = s2; V.done = done;
        }
    }
}

extern "C" __global__ void voice_render_smem(GS_KERNEL_ARGS) {
    __shared__ long long acc[TICK * 4];
    if (sends)
        gs_render_block_smem<true>(vt, n_voices, pool, pool_len, chin, n_chan, win_t0, n_ticks, rate,
                                   fade_frames, cubic, n_out, out, acc);
    else
        gs_render_block_smem<false>(vt, n_voices, pool, pool_len, chin, n_chan, win_t0, n_ticks, rate,
                                    fade_frames, cubic, n_out, out, acc);
}
#endif  // GPUSYNTH_HOST
