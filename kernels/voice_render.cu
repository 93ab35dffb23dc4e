// gpusynth voice render: one thread per voice (grid-stride), several control ticks per launch.
//
// The readable definition is gpusynth/backend/numpy_backend.py (_tick); this kernel follows it
// expression by expression (same float32/float64 split, same clamping), except that the
// resonant low-pass runs as the plain biquad recurrence in double (numpy: FFT convolution of the
// closed-form impulse response; equal up to rounding).
//
// Per voice and frame the kernel writes its left/right contribution to scratch (float32, layout
// SIDX) and per tick its reverb/chorus send levels; kernels/mix.cu sums voices in a fixed order.
// Voices are slots [v0, v0 + nv) of the dense table; tab holds one pointer per VOICE_FIELDS
// entry (indices VF_*), so the table is structure-of-arrays in every backend.
#include "common.cuh"

extern "C" __global__ void voice_render(
    const unsigned long long* __restrict__ tab,   // field pointers, VOICE_FIELDS order
    const float* __restrict__ pool, long long pool_len,
    const float* __restrict__ chin, int n_chan,   // [N_CHIN][n_ticks][n_chan]
    long long v0, long long nv,                   // voices [v0, v0 + nv)
    long long block_start, int n_ticks,           // absolute sample of tick 0 (multiple of TICK)
    double rate, int fade_frames, int cubic,
    float* __restrict__ out_l, float* __restrict__ out_r,   // scratch [SIDX(v, f, nv, n_ticks*TICK)]
    float* __restrict__ sends)                    // [n_ticks][nv][2]: reverb, chorus
{
    const long long nf = (long long)n_ticks * TICK;
    (void)nf;                      // unused by SIDX in the frame-major layout
    const long long* f_start = VFIELD(tab, const long long, start);
    const long long* f_release = VFIELD(tab, const long long, release);
    const long long* f_kill = VFIELD(tab, const long long, kill);
    const int* f_chan = VFIELD(tab, const int, chan);
    const long long* f_pstart = VFIELD(tab, const long long, pstart);
    const long long* f_pend = VFIELD(tab, const long long, pend);
    const long long* f_lstart = VFIELD(tab, const long long, lstart);
    const long long* f_lend = VFIELD(tab, const long long, lend);
    const int* f_lmode = VFIELD(tab, const int, lmode);
    long long* f_ipos = VFIELD(tab, long long, ipos);
    double* f_fpos = VFIELD(tab, double, fpos);
    float* f_gl = VFIELD(tab, float, gl);
    float* f_gr = VFIELD(tab, float, gr);
    double* f_fx1 = VFIELD(tab, double, fx1);
    double* f_fx2 = VFIELD(tab, double, fx2);
    double* f_fy1 = VFIELD(tab, double, fy1);
    double* f_fy2 = VFIELD(tab, double, fy2);
    float* f_level = VFIELD(tab, float, level);
    signed char* f_done = VFIELD(tab, signed char, done);

    GRID_STRIDE_LOOP_DYN(i, nv) {
        const long long v = v0 + i;
        // ---- per-voice constants --------------------------------------------------------
        const long long start = f_start[v], rel_abs = f_release[v], kill_abs = f_kill[v];
        int c = f_chan[v];
        c = c < 0 ? 0 : (c >= n_chan ? n_chan - 1 : c);
        const long long ps = f_pstart[v], pe = f_pend[v];
        const long long ls = f_lstart[v], le = f_lend[v];
        const long long L = (le - ls) > 1 ? (le - ls) : 1;
        const int lmode = f_lmode[v];
        const double pitch = VFIELD(tab, const double, pitch)[v];
        const float atten = VFIELD(tab, const float, atten)[v];
        const float panv = VFIELD(tab, const float, pan)[v];
        const float fc0 = VFIELD(tab, const float, fc)[v];
        const float q_cb = VFIELD(tab, const float, q)[v];
        const float rev0 = VFIELD(tab, const float, rev)[v];
        const float cho0 = VFIELD(tab, const float, cho)[v];
        const float rev_cc = VFIELD(tab, const float, rev_cc)[v];
        const float cho_cc = VFIELD(tab, const float, cho_cc)[v];
        const float ve_d = VFIELD(tab, const float, ve_delay)[v];
        const float ve_a = VFIELD(tab, const float, ve_attack)[v];
        const float ve_h = VFIELD(tab, const float, ve_hold)[v];
        const float ve_dc = VFIELD(tab, const float, ve_decay)[v];
        const float ve_s = VFIELD(tab, const float, ve_sus)[v];
        const float ve_r = VFIELD(tab, const float, ve_release)[v];
        const float me_d = VFIELD(tab, const float, me_delay)[v];
        const float me_a = VFIELD(tab, const float, me_attack)[v];
        const float me_h = VFIELD(tab, const float, me_hold)[v];
        const float me_dc = VFIELD(tab, const float, me_decay)[v];
        const float me_s = VFIELD(tab, const float, me_sus)[v];
        const float me_r = VFIELD(tab, const float, me_release)[v];
        const float me_pitch = VFIELD(tab, const float, me_pitch)[v];
        const float me_fc = VFIELD(tab, const float, me_fc)[v];
        const float ml_d = VFIELD(tab, const float, ml_delay)[v];
        const double ml_f = VFIELD(tab, const double, ml_freq)[v];
        const float ml_pitch = VFIELD(tab, const float, ml_pitch)[v];
        const float ml_fc = VFIELD(tab, const float, ml_fc)[v];
        const float ml_vol = VFIELD(tab, const float, ml_vol)[v];
        const float vl_d = VFIELD(tab, const float, vl_delay)[v];
        const double vl_f = VFIELD(tab, const double, vl_freq)[v];
        const float vl_pitch = VFIELD(tab, const float, vl_pitch)[v];
        const float cc1_vib = VFIELD(tab, const float, cc1_vib)[v];
        const float press_vib = VFIELD(tab, const float, press_vib)[v];
        const float cc1_ml_pitch = VFIELD(tab, const float, cc1_ml_pitch)[v];
        const float cc1_ml_vol = VFIELD(tab, const float, cc1_ml_vol)[v];
        const float cc1_ml_fc = VFIELD(tab, const float, cc1_ml_fc)[v];
        // float32 quotients, as numpy computes `python_float / float32_array`
        const float ve_k1000 = 1000.0f / gs_maxf(ve_dc, 1.0f);
        const float ve_r5 = 5.0f / gs_maxf(ve_r, 1.0f);
        const float attack_end = (ve_d + ve_a) + ve_h;   // float32 sum, as numpy
        const double trel = (double)(rel_abs - start);
        const double fade_n = (double)fade_frames;

        // ---- state ------------------------------------------------------------------------
        long long ipos = f_ipos[v];
        double fpos = f_fpos[v];
        float gl = f_gl[v], gr = f_gr[v];
        double fx1 = f_fx1[v], fx2 = f_fx2[v], fy1 = f_fy1[v], fy2 = f_fy2[v];
        float level = f_level[v];
        signed char done = f_done[v];
        bool touched = false;

        for (int tk = 0; tk < n_ticks; ++tk) {
            const long long t0 = block_start + (long long)tk * TICK;
            const long long fbase = (long long)tk * TICK;
            if (done != 0 || start >= t0 + TICK) {          // not live in this tick
                for (int k = 0; k < TICK; ++k) {
                    out_l[SIDX(i, fbase + k, nv, nf)] = 0.0f;
                    out_r[SIDX(i, fbase + k, nv, nf)] = 0.0f;
                }
                sends[((long long)tk * nv + i) * 2] = 0.0f;
                sends[((long long)tk * nv + i) * 2 + 1] = 0.0f;
                continue;
            }
            touched = true;
            // ---- control values at the tick start ---------------------------------------
            const float* ch = chin + (long long)tk * n_chan + c;
            const long long cstride = (long long)n_ticks * n_chan;
            const float ch_pitch = ch[CHI_ch_pitch * cstride];
            const float ch_gain = ch[CHI_ch_gain * cstride];
            const float ch_pan = ch[CHI_ch_pan * cstride];
            const double cmod = (double)ch[CHI_ch_mod * cstride];
            const double cpress = (double)ch[CHI_ch_press * cstride];
            const float ch_rev = ch[CHI_ch_rev * cstride];
            const float ch_cho = ch[CHI_ch_cho * cstride];

            const double tc = (double)(t0 - start > 0 ? t0 - start : 0);
            const bool rel_c = t0 >= rel_abs;
            const double me = gs_menv(tc, rel_c, trel, me_d, me_a, me_h, me_dc, me_s, me_r);
            const double ml = gs_tri_lfo(tc, ml_d, ml_f);
            const double vl = gs_tri_lfo(tc, vl_d, vl_f);
            const double cents = (((pitch + (double)ch_pitch) + me * (double)me_pitch)
                                  + ml * ((double)ml_pitch + cmod * (double)cc1_ml_pitch))
                                 + vl * (((double)vl_pitch + cmod * (double)cc1_vib)
                                         + cpress * (double)press_vib);
            // fmin/fmax (not a comparison chain) so that a NaN pitch cannot reach the integer
            // position below
            const double inc = exp2(fmax(fmin(cents, 12000.0), -12000.0) / 1200.0);
            const double fc = ((double)fc0 + me * (double)me_fc)
                              + ml * ((double)ml_fc + cmod * (double)cc1_ml_fc);
            const double att = ((double)atten + (double)ch_gain)
                               - ml * ((double)ml_vol + cmod * (double)cc1_ml_vol);
            const double amp = pow(10.0, -gs_maxd(att, 0.0) / 200.0);
            const double pan = gs_clampd((double)panv + (double)ch_pan, -500.0, 500.0);
            const double ang = (pan + 500.0) * (GS_PI / 2000.0);
            const float gl_new = (float)(amp * cos(ang));
            const float gr_new = (float)(amp * sin(ang));
            const float rev = gs_clampf(rev0 + ch_rev * rev_cc, 0.0f, 1.0f);   // float32, as numpy
            const float cho = gs_clampf(cho0 + ch_cho * cho_cc, 0.0f, 1.0f);
            sends[((long long)tk * nv + i) * 2] = rev;
            sends[((long long)tk * nv + i) * 2 + 1] = cho;

            // ---- positions ----------------------------------------------------------------
            const long long k0 = gs_clampll(start - t0, 0, TICK);   // first frame of the voice
            const bool looping = (lmode == 1) || (lmode == 3 && !rel_c);
            const long long lo = ps, hi = pe - 1;

            // ---- filter coefficients (RBJ low-pass) ---------------------------------------
            const bool is_open = (fc >= FILTER_OPEN_CENTS) && (q_cb <= 0.0f);
            double b0 = 1.0, b1 = 0.0, b2 = 0.0, a1 = 0.0, a2 = 0.0;
            if (!is_open) {
                double hz = 8.175798915643707 * exp2(fc / 1200.0);
                hz = gs_clampd(hz, 5.0, 0.45 * rate);
                const double q = pow(10.0, ((double)q_cb / 10.0 - 3.01) / 20.0);
                const double w0 = (2.0 * GS_PI) * hz / rate;
                const double cw = cos(w0), sw = sin(w0);
                const double alpha = sw / (2.0 * q);
                const double a0 = 1.0 + alpha;
                b1 = (1.0 - cw) / a0;
                b0 = b1 * 0.5;
                b2 = b0;
                a1 = -2.0 * cw / a0;
                a2 = (1.0 - alpha) / a0;
            }

            // ---- gains ------------------------------------------------------------------------
            const bool fresh = gl < 0.0f;
            const double glp = (double)(fresh ? gl_new : gl);
            const double grp = (double)(fresh ? gr_new : gr);
            const double dgl = (double)gl_new - glp, dgr = (double)gr_new - grp;

            // envelope value of the released segment's start (constant within the release)
            double rel_cb, rel_g = gs_venv_held(trel, ve_d, ve_a, ve_h, ve_k1000, ve_s, &rel_cb);
            if (rel_cb >= 0.0) rel_g = pow(10.0, -rel_cb / 200.0);
            double last_cb = -2.0, last_dec = 0.0;        // cache for the sustain stage

            double env = 0.0, x = 0.0;
            bool ended = false;
            for (int k = 0; k < TICK; ++k) {
                const long long s = t0 + k;
                x = 0.0;
                env = 0.0;
                ended = false;
                if (k >= k0) {
                    const double p = fpos + inc * (double)(k - k0);
                    const long long fl = gs_floorll(p);
                    const double frac = p - (double)fl;
                    const long long ip = gs_wrap(ipos + fl, looping, ls, le, L);
                    ended = !looping && ip >= pe;
                    if (!ended) {
                        const long long i1 = gs_wrap(ip + 1, looping, ls, le, L);
                        const double x0 = gs_pool(pool, pool_len, ip, lo, hi);
                        const double x1 = gs_pool(pool, pool_len, i1, lo, hi);
                        if (cubic) {
                            const double xm = gs_pool(pool, pool_len, ip - 1, lo, hi);
                            const double x2 = gs_pool(pool, pool_len,
                                                      gs_wrap(i1 + 1, looping, ls, le, L), lo, hi);
                            x = x0 + 0.5 * frac * (x1 - xm + frac * (2.0 * xm - 5.0 * x0 + 4.0 * x1 - x2
                                                   + frac * (3.0 * (x0 - x1) + x2 - xm)));
                        } else {
                            x = x0 + (x1 - x0) * frac;
                        }
                    }
                    // volume envelope, kill fade
                    const double t = (double)(s - start);
                    double g;
                    if (s >= rel_abs) {
                        g = rel_g * pow(10.0, -gs_maxd(t - trel, 0.0) * (double)ve_r5);
                    } else {
                        double cb;
                        g = gs_venv_held(t, ve_d, ve_a, ve_h, ve_k1000, ve_s, &cb);
                        if (cb >= 0.0) {
                            if (cb != last_cb) {
                                last_cb = cb;
                                last_dec = pow(10.0, -cb / 200.0);
                            }
                            g = last_dec;
                        }
                    }
                    // fade is exactly 1 up to the kill time: skip the division there
                    const double fade = s <= kill_abs ? 1.0
                        : gs_clampd(1.0 - (double)(s - kill_abs) / fade_n, 0.0, 1.0);
                    env = g * fade;
                }
                // filter (state updated even when bypassed: y = x)
                double y = x;
                if (!is_open) y = b0 * x + b1 * fx1 + b2 * fx2 - a1 * fy1 - a2 * fy2;
                fx2 = fx1; fx1 = x;
                fy2 = fy1; fy1 = y;
                const double ye = y * env;
                const double ramp = ((double)k + 1.0) / TICK;
                const long long o = SIDX(i, fbase + k, nv, nf);
                out_l[o] = (float)(ye * (glp + dgl * ramp));
                out_r[o] = (float)(ye * (grp + dgr * ramp));
            }

            // ---- state update (k0 < TICK always holds for a live voice) ---------------------
            const double pn = fpos + inc * (double)(TICK - k0);
            const long long fln = gs_floorll(pn);
            ipos = gs_wrap(ipos + fln, looping, ls, le, L);
            fpos = pn - (double)fln;
            gl = gl_new;
            gr = gr_new;
            level = (float)(env * amp);
            const double t_end = (double)(TICK - 1) + (double)(t0 - start);
            const bool past_attack = t_end >= (double)attack_end;
            const bool env_done = (env < DONE_LEVEL)
                                  && ((t0 + TICK - 1 >= rel_abs) || past_attack) && (t_end >= 0.0);
            const bool kill_done = (t0 + TICK - kill_abs) >= (long long)fade_frames;
            done = (env_done || ended || kill_done) ? 1 : 0;
        }
        if (touched) {
            f_ipos[v] = ipos;
            f_fpos[v] = fpos;
            f_gl[v] = gl;
            f_gr[v] = gr;
            f_fx1[v] = fx1;
            f_fx2[v] = fx2;
            f_fy1[v] = fy1;
            f_fy2[v] = fy2;
            f_level[v] = level;
            f_done[v] = done;
        }
    }
}
