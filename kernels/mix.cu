// gpusynth mix: fixed-order, deterministic sum of the per-voice scratch of voice_render.cu.
//
// Stage 1 (mix_partial): one thread per (chunk of MIX_CHUNK voices, frame) sums its voices in
// slot order into double partials [chunk][frame][4] (L, R, reverb send, chorus send; the sends
// are (L + R) / 2 times the voice's per-tick send level, as numpy's mono * rev).
// Stage 2 (mix_final): one thread per (frame, bus) sums the chunks in order and rounds to float32.
// The tree depends only on MIX_CHUNK, never on the launch configuration, so every run (and the
// native and CUDA builds) add in the same order. Large voice counts are rendered in groups whose
// size is a multiple of MIX_CHUNK; chunk0 places a group's partials, so grouping changes nothing.
#include "common.cuh"

extern "C" __global__ void mix_partial(
    const float* __restrict__ in_l, const float* __restrict__ in_r,   // scratch, SIDX layout
    const float* __restrict__ sends,              // [n_ticks][nv][2]
    long long nv, int n_ticks,
    long long chunk0,                             // index of this group's first chunk
    double* __restrict__ partial)                 // [n_chunks_total][nf][4]
{
    const long long nf = (long long)n_ticks * TICK;
    const long long nch = (nv + MIX_CHUNK - 1) / MIX_CHUNK;
    GRID_STRIDE_LOOP(idx, nch * nf) {
#if SCRATCH_FRAME_MAJOR
        const long long c = idx % nch, f = idx / nch;     // neighbouring threads: neighbouring chunks
#else
        const long long c = idx / nf, f = idx % nf;       // consecutive iterations: consecutive frames
#endif
        const long long tk = f / TICK;
        const long long va = c * MIX_CHUNK;
        const long long vb = (va + MIX_CHUNK < nv) ? va + MIX_CHUNK : nv;
        double sl = 0.0, sr = 0.0, srev = 0.0, scho = 0.0;
        for (long long v = va; v < vb; ++v) {
            const double l = (double)in_l[SIDX(v, f, nv, nf)];
            const double r = (double)in_r[SIDX(v, f, nv, nf)];
            const double mono = (l + r) * 0.5;
            sl += l;
            sr += r;
            srev += mono * (double)sends[(tk * nv + v) * 2];
            scho += mono * (double)sends[(tk * nv + v) * 2 + 1];
        }
        double* p = partial + ((chunk0 + c) * nf + f) * 4;
        p[0] = sl;
        p[1] = sr;
        p[2] = srev;
        p[3] = scho;
    }
}

extern "C" __global__ void mix_final(
    const double* __restrict__ partial,           // [n_chunks][nf][4]
    long long n_chunks, int n_ticks,
    float* __restrict__ out)                      // [nf][4]
{
    const long long nf = (long long)n_ticks * TICK;
    GRID_STRIDE_LOOP(idx, nf * 4) {
        double s = 0.0;
        for (long long c = 0; c < n_chunks; ++c) s += partial[c * nf * 4 + idx];
        out[idx] = (float)s;
    }
}
