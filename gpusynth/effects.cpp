// Reverb (8-line feedback delay network) and chorus (modulated delay lines) on the send buses.
// The compiled twin ("native" engine) of gpusynth/effects.py, whose numpy code is the reference:
// fx_reverb is Reverb._process_numpy, fx_chorus the numpy branch of Chorus.process.
//
// Declared in gpusynth/effects.py (NATIVE: the flags, every exported function's ctypes
// signature) and built by gpusynth.compiled with -O3 -ffp-contract=off, no fast-math: every
// expression below is the same float32 operation, in the same order, as the numpy twin, so both
// give the same bits.
// Everything is elementwise inside a block no longer than the shortest feedback delay, so the
// loops over a block's samples vectorise and the result does not depend on the block size.
#include <string.h>

#define NL 8            // FDN lines

extern "C" {

// Reverb over n frames. x: mono send (already scaled by the input gain); outL/outR: wet out
// (written). hist: the lines' histories, line i at hist + off[i], length len[i] + 1, oldest
// first (hist[off[i] + j] = the value written at time t0 - len[i] - 1 + j). pre: pre-delay
// history (npre samples, oldest first). tone: {b1, b2, previous input}. g, c0, c1: per line
// loop gain and damping FIR (y = g * (c0 * x[t - L] + c1 * x[t - L - 1])). sl, sr: per line
// output gains (wet1 included); wet2: cross-feed. bmax: block length (<= the shortest line).
// scratch: at least (NL + 4) * bmax + npre + bmax floats.
void fx_reverb(long long n, const float* x, float* outL, float* outR, float* hist,
               const long long* off, const long long* len, float* pre, long long npre,
               float* tone, const float* g, const float* c0, const float* c1,
               const float* sl, const float* sr, float wet2, float fmat, float flush,
               long long bmax, float* scratch)
{
    float* y = scratch;                       // [NL][bmax]
    float* s = y + NL * bmax;                 // [bmax]
    float* xt = s + bmax;                     // [bmax]
    float* oL = xt + bmax;
    float* oR = oL + bmax;
    float* pt = oR + bmax;                    // [npre + bmax]
    const float b1 = tone[0], b2 = tone[1];
    for (long long p = 0; p < n; p += bmax) {
        const long long B = (n - p < bmax) ? (n - p) : bmax;
        const float* xb = x + p;
        // pre-delay
        const float* xd = xb;
        if (npre > 0) {
            memcpy(pt, pre, sizeof(float) * npre);
            memcpy(pt + npre, xb, sizeof(float) * B);
            xd = pt;
            memcpy(pre, pt + B, sizeof(float) * npre);
        }
        // tone correction (first-order FIR)
        float prev = tone[2];
        for (long long k = 0; k < B; k++) {
            float v = xd[k];
            xt[k] = v * b1 - b2 * prev;
            prev = v;
        }
        tone[2] = prev;
        // line outputs through the damping FIR
        for (int i = 0; i < NL; i++) {
            const float* h = hist + off[i];
            float* yi = y + i * bmax;
            const float gi = g[i], a0 = c0[i], a1 = c1[i];
            for (long long k = 0; k < B; k++)
                yi[k] = gi * (a0 * h[k + 1] + a1 * h[k]);
        }
        for (long long k = 0; k < B; k++) {
            float acc = y[k];
            float l = sl[0] * y[k];
            float r = sr[0] * y[k];
            for (int i = 1; i < NL; i++) {
                float v = y[i * bmax + k];
                acc = acc + v;
                l = l + sl[i] * v;
                r = r + sr[i] * v;
            }
            s[k] = acc * fmat + xt[k];
            oL[k] = l;
            oR[k] = r;
        }
        for (long long k = 0; k < B; k++) {
            outL[p + k] = oL[k] + oR[k] * wet2;
            outR[p + k] = oR[k] + oL[k] * wet2;
        }
        // feedback: line i - 1 takes line i's output (line NL - 1 takes line 0's) + the
        // Householder term and the input; tiny values are flushed (no denormals)
        for (int i = 0; i < NL; i++) {
            float* h = hist + off[i];
            const long long L1 = len[i] + 1;
            const float* src = y + ((i + 1) % NL) * bmax;
            memmove(h, h + B, sizeof(float) * (L1 - B));
            float* w = h + (L1 - B);
            for (long long k = 0; k < B; k++) {
                float v = src[k] + s[k];
                w[k] = (v < flush && v > -flush) ? 0.0f : v;
            }
        }
    }
}

// Chorus over n frames. x: mono send (scaled); outL/outR: wet out (written). hist: the last
// nh inputs, oldest first. d0, dd: per voice and tick, the delay (samples) at the tick's first
// frame and its per-frame step ([nv][n / 64]); delay = d0 + dd * k, read with linear
// interpolation. Voices alternate left/right (an odd count > 1 also feeds its last voice right).
// scratch: at least nh + n + 2 * n floats.
void fx_chorus(long long n, const float* x, float* outL, float* outR, float* hist, long long nh,
               int nv, const float* d0, const float* dd, float wet1, float wet2,
               float* scratch)
{
    const long long T = n / 64;
    float* buf = scratch;                 // [nh + n]: history then this call's input
    float* dL = buf + nh + n;
    float* dR = dL + n;
    memcpy(buf, hist, sizeof(float) * nh);
    memcpy(buf + nh, x, sizeof(float) * n);
    for (long long k = 0; k < n; k++) { dL[k] = 0.0f; dR[k] = 0.0f; }
    for (int v = 0; v < nv; v++) {
        float* acc = (v & 1) ? dR : dL;
        const bool twice = (nv & 1) && nv > 2 && v == nv - 1;
        for (long long t = 0; t < T; t++) {
            const float a = d0[v * T + t], b = dd[v * T + t];
            for (int k = 0; k < 64; k++) {
                const long long j = t * 64 + k;
                float d = a + b * (float)k;
                int di = (int)d;                    // d >= 1: truncation is floor
                float fr = d - (float)di;
                const float* q = buf + nh + j - di;
                float o = q[0] + fr * (q[-1] - q[0]);
                acc[j] = acc[j] + o;
                if (twice) dR[j] = dR[j] + o;
            }
        }
    }
    for (long long k = 0; k < n; k++) {
        outL[k] = dL[k] * wet1 + dR[k] * wet2;
        outR[k] = dR[k] * wet1 + dL[k] * wet2;
    }
    memcpy(hist, buf + n, sizeof(float) * nh);
}

}
