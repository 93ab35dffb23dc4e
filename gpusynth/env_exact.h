// gpusynth.envelope.exact for one voice at frame t, in float32 with the definition's operation
// order (gpusynth/envelope.py): the closed-form volume envelope the control engine
// (control_engine.cpp) and the steal loop (steal_run.cpp) both evaluate, without the static
// attenuation. Host C++ only; needs gs_cb_gain (kernels/detmath.h) included first.
#pragma once

static inline float fmin32(float a, float b) { return a < b ? a : b; }
static inline float fmax32(float a, float b) { return a > b ? a : b; }

// start: the note-on frame; delay, attack, hold in frames; k1000 = 1000 / max(decay, 1) and
// krel = 1000 / max(release, 1) in cB per frame; sus: the sustain level in cB; rel_t and kill:
// the release and kill frames; fade: the kill fade in frames
static inline float gs_env_exact(long long t, long long start, float delay, float attack,
                                 float hold, float k1000, float sus, float krel,
                                 long long rel_t, long long kill, long long fade) {
    const bool rel = t >= rel_t;
    const long long th = rel ? rel_t : t;
    const float x = (float)(th - start) - delay;
    const float att = fmin32((x + 1.0f) / fmax32(attack, 1.0f), 1.0f);
    const float y = (x - attack) - hold;
    float cb = fmin32(fmax32(y, 0.0f) * k1000, sus);
    if (rel) cb = cb + (float)(t - rel_t) * krel;
    float g = att * gs_cb_gain(cb);
    if (t > kill) {
        float fd = 1.0f - (float)(t - kill) / (float)fade;
        fd = fmin32(fmax32(fd, 0.0f), 1.0f);
        g = g * fd;
    }
    if (x < 0.0f) g = 0.0f;
    return g;
}
