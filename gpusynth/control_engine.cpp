// The compiled control engine: everything the host does per event and per note in a window
// (gpusynth/control_engine.py builds and drives it; the numpy/Python definition it is tested
// against, record for record, is Synth._window_prepare with gpusynth.allocator, channels and
// presets: tests/unit/test_control_engine.py).
//
// One call (ce_step) applies a window's events in order without Python objects per event:
// channel messages (controllers, RPN data entry, program, pitch bend, pressures) and the
// per-tick controller timelines; note runs (the note events between two events that change
// what notes do), each resolved to regions (preset fallbacks, segment-tree region lookup),
// allocated and stolen exactly as the definition does: a run that cannot reach the voice limit
// is allocated steal-free (peak polyphony counted in closed form at the window's end),
// otherwise tick by tick (per-key cap, steal at the tick's first note-on from closed-form
// levels, releases, exclusive classes), and the voice records are written from the regions'
// templates. The engine returns to Python only for a SysEx message (the caller applies it and
// calls ce_resync), when the voice table needs more room (the caller grows it, ce_step goes on
// where it stopped), and at the window's end.
//
// All state lives in the caller's numpy arrays (channel state, voice table, control columns);
// the engine object holds only indexes rebuilt from them at each window (held voices per
// channel + key, exclusive-class groups, per-key note lists, a Fenwick tree counting the voices
// that still sound by their closed-form end) and the position within the window.
// Arithmetic follows the definition's operation order; float64 2^x and log use
// gpusynth.detmath's formulas; compiled with -ffp-contract=off, no fast-math.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "detmath.h"      // gs_cb_gain: the kernels' 2^x (kernels/detmath.h)
#include "env_exact.h"    // gs_env_exact: envelope.exact, shared with steal_run.cpp

typedef int64_t i64;
typedef int32_t i32;
typedef int16_t i16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef uint8_t u8;

static const i64 NEVER = (i64)1 << 62;
static const i64 TICK = 64;
enum { NOTE_OFF = 0x80, NOTE_ON = 0x90, POLY_PRESSURE = 0xA0, CONTROL = 0xB0, PROGRAM = 0xC0,
       CHAN_PRESSURE = 0xD0, PITCH_BEND = 0xE0, SYSEX = 0xF0 };
enum { ST_DONE = 0, ST_SYSEX = 1, ST_NEED_CAP = 2, ST_LOG_FULL = 3 };
static const int MAX_REGIONS_PER_NOTE = 64;

// ------------------------------------------------------------------ gpusynth.detmath
static const double EXP2_TABLE[32] = {
    0x1.0000000000000p+0, 0x1.059b0d3158574p+0, 0x1.0b5586cf9890fp+0, 0x1.11301d0125b51p+0,
    0x1.172b83c7d517bp+0, 0x1.1d4873168b9aap+0, 0x1.2387a6e756238p+0, 0x1.29e9df51fdee1p+0,
    0x1.306fe0a31b715p+0, 0x1.371a7373aa9cbp+0, 0x1.3dea64c123422p+0, 0x1.44e086061892dp+0,
    0x1.4bfdad5362a27p+0, 0x1.5342b569d4f82p+0, 0x1.5ab07dd485429p+0, 0x1.6247eb03a5585p+0,
    0x1.6a09e667f3bcdp+0, 0x1.71f75e8ec5f74p+0, 0x1.7a11473eb0187p+0, 0x1.82589994cce13p+0,
    0x1.8ace5422aa0dbp+0, 0x1.93737b0cdc5e5p+0, 0x1.9c49182a3f090p+0, 0x1.a5503b23e255dp+0,
    0x1.ae89f995ad3adp+0, 0x1.b7f76f2fb5e47p+0, 0x1.c199bdd85529cp+0, 0x1.cb720dcef9069p+0,
    0x1.d5818dcfba487p+0, 0x1.dfc97337b9b5fp+0, 0x1.ea4afa2a490dap+0, 0x1.f50765b6e4540p+0};
static const double EXP_POLY[8] = {0x1.a01a01a01a01ap-16, 0x1.a01a01a01a01ap-13,
                                   0x1.6c16c16c16c17p-10, 0x1.1111111111111p-7,
                                   0x1.5555555555555p-5, 0x1.5555555555555p-3,
                                   0x1.0000000000000p-1, 0x1.0000000000000p+0};
static const double ATANH_POLY[11] = {0x1.642c8590b2164p-5, 0x1.8618618618618p-5,
                                      0x1.af286bca1af28p-5, 0x1.e1e1e1e1e1e1ep-5,
                                      0x1.1111111111111p-4, 0x1.3b13b13b13b14p-4,
                                      0x1.745d1745d1746p-4, 0x1.c71c71c71c71cp-4,
                                      0x1.2492492492492p-3, 0x1.999999999999ap-3,
                                      0x1.5555555555555p-2};
static const double LN2 = 0x1.62e42fefa39efp-1, LOG10_2 = 0x1.34413509f79ffp-2,
                    LOG10_E = 0x1.bcb7b1526e50ep-2, SQRT_HALF = 0x1.6a09e667f3bcdp-1,
                    LOG2_E = 0x1.71547652b82fep+0;

// floor, frexp and ldexp written out (the same exact results as the C library's for the
// finite, normal values used here, without a call)
static inline double floor_(double x) {
    const double t = (double)(i64)x;
    return t > x ? t - 1.0 : t;
}
static inline double pow2i(i64 n) {          // 2^n, |n| < 1000
    const u64 bits = (u64)(n + 1023) << 52;
    double r;
    std::memcpy(&r, &bits, 8);
    return r;
}

static inline double det_exp2(double x) {
    const double n = floor_(x);
    const double f = x - n;
    const double j = floor_(f * 32.0);
    const double g = (f - j * 0.03125) * LN2;
    double p = EXP_POLY[0];
    for (int i = 1; i < 8; ++i) p = p * g + EXP_POLY[i];
    p = p * g + 1.0;
    return (EXP2_TABLE[(int)j] * p) * pow2i((i64)n);
}

static inline void ln_parts(double y, double &e, double &ln_m) {   // y > 0, normal
    u64 bits;
    std::memcpy(&bits, &y, 8);
    i64 ei = (i64)((bits >> 52) & 0x7ff) - 1022;
    bits = (bits & 0x000fffffffffffffull) | ((u64)1022 << 52);
    double m;
    std::memcpy(&m, &bits, 8);                   // y = m * 2^ei, m in [0.5, 1)
    if (m < SQRT_HALF) {
        m = m * 2.0;
        ei -= 1;
    }
    e = (double)ei;
    const double s = (m - 1.0) / (m + 1.0);
    const double z = s * s;
    double p = ATANH_POLY[0];
    for (int i = 1; i < 11; ++i) p = p * z + ATANH_POLY[i];
    p = p * z + 1.0;
    ln_m = (2.0 * s) * p;
}

static inline double det_log10(double y) {
    double e, l;
    ln_parts(y, e, l);
    return e * LOG10_2 + l * LOG10_E;
}

// the kernels' float32 2^x (gs_exp2, gs_cb_gain) from kernels/detmath.h, the closed-form
// envelope (gs_env_exact, fmin32, fmax32) from env_exact.h, both included above

// ------------------------------------------------------------------ the caller's arrays
// Region data the engine needs per region (gpusynth.control_engine.REGION_CE_DTYPE: float64
// columns in this order). c_*: frames of the envelope times when their key / velocity
// coefficient is 0 (then the same for every note).
struct RegionCE {
    double scale_tuning, root_key, tune, pitch_base, atten, vel_atten, fc, vel_fc, vel_fc_min,
        fixed_key, fixed_vel, excl;
    double ve_att, ve_vatt, me_att, me_vatt, ve_hold, ve_khold, me_hold, me_khold, ve_dec,
        ve_kdec, me_dec, me_kdec;
    double c_ve_att, c_me_att, c_ve_hold, c_me_hold, c_ve_dec, c_me_dec;
};

enum { VO_START, VO_RELEASE, VO_KILL, VO_PSTART, VO_PEND, VO_IPOS, VO_PITCH, VO_ATTEN, VO_FC,
       VO_VE_DELAY, VO_VE_ATTACK, VO_VE_HOLD, VO_VE_DECAY, VO_VE_SUS, VO_VE_RELEASE,
       VO_ME_ATTACK, VO_ME_HOLD, VO_ME_DECAY, VO_CHAN, VO_LMODE, VO_COUNT };
enum { CN_SEQ, CN_NOTE_SEQ, CN_STOLEN, CN_PEAK, CN_LOST, CN_NOTES, CN_SKIPPED, CN_CAPPED,
       CN_COUNT };

struct Args {
    // configuration
    i64 nch, max_voices, fade, max_key, max_note_frames, min_velocity;
    double rate, dec_cb, done_level;
    // voice table (VOICE_DTYPE records) and the allocator's control columns
    char *vt;          // the layout compiled in below (VSIZE, VOFF), checked by ce_layout
    i64 cap;
    i64 *n;            // in/out: active slots
    i32 *h_chan;
    i16 *h_key;
    i64 *h_seq;
    u8 *h_released, *h_sustained, *h_sost, *h_killed;
    u32 *h_prio;
    i16 *h_excl;
    i64 *h_silent, *h_note, *h_frel;
    u8 *h_finished, *h_changed, *h_dirty;
    i64 *counters;     // [CN_COUNT] in/out
    // channel state (gpusynth.channels.ChannelState arrays)
    u8 *cc;            // [nch * 128]
    i32 *program, *bend;
    double *bend_range, *fine, *coarse;
    u8 *pressure, *poly_pressure;
    i32 *rpn;
    u8 *rpn_is_nrpn;
    const u32 *priority;
    const u8 *drum;
    const double *master_tune, *master_atten;   // per channel
    // presets: per channel id, dirty flag, missing/fallback flag, wanted (bank, program, drum),
    // note-ons counted while missing; the miss log (c, bank, program, drum, pid, count)
    i64 *ch_pid;
    u8 *ch_dirty, *ch_miss;
    i64 *ch_want, *miss_count, *mlog, *mlog_n;
    i64 mlog_cap;
    i64 n_pkeys;
    const i64 *pkey, *pval, *pid_key;   // sorted bank * 256 + program * 2 + drum -> preset id
    i64 first_drum, n_presets;
    // region lookup (gpusynth.presets.PresetMap groups)
    i64 G;
    const i64 *gkey, *goff, *efpos, *pr_flat;
    const u8 *evlo, *evhi;
    const RegionCE *regions;
    const char *templates;   // VOICE_DTYPE per region
    const double *concave;   // [128]
    // the window
    const char *events;
    i64 esize, n_events, B, T;
    float *chin;             // [7][T][nch]
    i64 *result;             // [status, event index, needed capacity]
    // the ensemble mode (gpusynth.ensemble_control.EnsembleSynth): n_songs > 0. Song k plays on the
    // channels with song_of_chan == k; no song may reach its voice limit (song_limit) in the
    // group: before each run a song that could is evicted (evicted[k] = 1, its events dropped
    // from then on) and rendered alone by the caller; allocation is always steal-free
    i64 n_songs, song_limit;
    const i64 *song_of_chan;
    u8 *evicted;
    i64 *song_notes, *song_skipped, *song_peak;
    u8 *h_fresh;             // per slot: created since the last upload
};

// ------------------------------------------------------------------ engine state
struct Tick {
    i64 lo, hi;     // run events
};

struct Engine {
    Args *A = nullptr;
    i64 cap_seen = -1;
    // window position
    i64 pos = 0, done_tick = 0, n_start = 0;
    // the run being collected / processed
    std::vector<i64> run_ev;             // event indices of the run's notes
    bool run_pending = false;            // resolved, waiting for capacity
    i64 split = -1;                      // the split event after the pending run
    // resolved run (after the min-velocity filter)
    std::vector<i64> r_time, r_chan, r_key, r_vel;
    std::vector<u8> r_on;
    std::vector<i64> r_reg_off;          // [R + 1]: regions of event j
    std::vector<i64> r_regs;
    // indexes
    std::vector<i32> held_head, held_next;        // per channel + key: held voices
    std::vector<i32> ck_touched;
    std::vector<std::vector<i32>> cap_list;       // per channel + key (max_key only)
    std::unordered_map<i64, std::vector<i32>> excl_groups;
    std::vector<i64> fen;                         // Fenwick over [0, N)
    i64 fen_future = 0, fen_n = 0;
    std::vector<i64> fen_tick;
    std::vector<i64> fen_val;                     // per slot: counted silent (-1: not counted)
    std::vector<i64> dirty;
    std::vector<i64> peak_pending;
    std::vector<i64> peak_song;                   // the song of each pending time (group)
    std::vector<float> snap;                      // [7][nch]
    // scratch
    std::vector<i64> scratch, rel_q, rel_t, ex_q, victims;   // rel_t: the time of rel_q's release
    std::vector<u8> rel_hold_q;
    struct Cand { float lvl; i32 slot; i64 seq; };      // 16 bytes: nth_element moves less
    std::vector<Cand> group;
    std::vector<i64> found = std::vector<i64>(1024);
    i64 *found_buf = found.data();
    i64 found_cap = 1024;
    std::vector<i64> xk;                           // per slot: same-tick exclusive cut time
    std::vector<i64> hist;                         // update_peak's frame histogram
    // voices by channel priority: per priority (index into prio_vals, kept in ascending order
    // by prio_order), the voices created not released (held) and those released since; stale
    // entries (killed, silent, released) are dropped when a steal scans them
    std::vector<u32> prio_vals;
    std::vector<int> prio_order;
    std::vector<std::vector<i32>> held_by_prio, rel_by_prio;
    // per priority: a lower bound of the forced release times in its held list (frel is set
    // when a voice is created, before it joins the list) and the list's size at its last scan;
    // a steal whose released class alone covers it skips the held list while no held voice
    // can be past its forced release (and the list has not doubled since its last scan)
    std::vector<i64> held_frel_min;
    std::vector<size_t> held_scanned;
    i64 prio_cache_key[64] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                              -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                              -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                              -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    int prio_cache_idx[64] = {};
    std::vector<i64> cand;
    // per slot: a 64-byte mirror of what a voice's steal level reads (level_at), so that a steal
    // streams through one cache line per candidate instead of the 272-byte records. A mirror is
    // valid while env_epoch[s] == epoch (filled by level_at when a steal first reads the slot); the
    // epoch moves at every entry from the caller (who may have written or moved records in
    // between), create_voice invalidates its slot and the engine's own release and kill writes
    // update a valid mirror (env_times)
    struct alignas(64) EnvMirror {
        i64 start, rel, kill, seq;
        float delay, attack, hold, k1000, sus, krel, attg;
    };
    std::vector<EnvMirror> env;
    std::vector<u32> env_epoch;
    u32 epoch = 1;
    std::vector<i32> group_of;                     // per preset * 128 + key: 8 group indexes
};

static int prio_index(Engine &E, u32 p) {
    const u32 hb = (u32)(((u64)p * 0x9E3779B97F4A7C15ull) >> 58);     // 64-entry cache
    if (E.prio_cache_key[hb] == (i64)p) return E.prio_cache_idx[hb];
    int idx = -1;
    for (size_t i = 0; i < E.prio_vals.size(); ++i)
        if (E.prio_vals[i] == p) { idx = (int)i; break; }
    if (idx < 0) {
        idx = (int)E.prio_vals.size();
        E.prio_vals.push_back(p);
        E.held_by_prio.emplace_back();
        E.rel_by_prio.emplace_back();
        E.held_frel_min.push_back(NEVER);
        E.held_scanned.push_back(0);
        E.prio_order.push_back(idx);
        std::sort(E.prio_order.begin(), E.prio_order.end(),
                  [&](int a, int b) { return E.prio_vals[a] < E.prio_vals[b]; });
    }
    E.prio_cache_key[hb] = (i64)p;
    E.prio_cache_idx[hb] = idx;
    return idx;
}

// ---- record access
// VOICE_DTYPE's size and the byte offsets of the fields used here (gpusynth.voices); the caller
// checks them against its dtype once (ce_layout) before using the engine
static const i64 VSIZE = 272;
static const i64 VOFF[VO_COUNT] = {0, 8, 16, 24, 32, 56, 64, 68, 76, 104, 108, 112, 116, 120, 124,
                                   132, 136, 140, 256, 260};
template <typename T> static inline T &VF(const Args &A, i64 slot, int f) {
    return *reinterpret_cast<T *>(A.vt + slot * VSIZE + VOFF[f]);
}

// ---- events
struct Ev { i64 time; i32 chan; u8 status, d1, d2; };
static inline Ev event_at(const Args &A, i64 i) {
    const char *p = A.events + i * A.esize;
    Ev e;
    std::memcpy(&e.time, p, 8);
    std::memcpy(&e.chan, p + 8, 4);
    e.status = (u8)p[12];
    e.d1 = (u8)p[13];
    e.d2 = (u8)p[14];
    return e;
}

// ------------------------------------------------------------------ closed forms
// the gain of a voice's static attenuation (envelope.level_at's factor)
static inline float atten_gain(const Args &A, i64 s) {
    return gs_cb_gain(fmax32(VF<float>(A, s, VO_ATTEN), 0.0f));
}

// envelope.exact at frame t (float32, the definition's operation order), without attenuation
static inline float env_exact(const Args &A, i64 s, i64 t, i64 rel_t, i64 kill) {
    const i64 start = VF<i64>(A, s, VO_START);
    const float delay = VF<float>(A, s, VO_VE_DELAY), attack = VF<float>(A, s, VO_VE_ATTACK),
                hold = VF<float>(A, s, VO_VE_HOLD), sus = VF<float>(A, s, VO_VE_SUS);
    const float k1000 = 1000.0f / fmax32(VF<float>(A, s, VO_VE_DECAY), 1.0f);
    const float krel = 1000.0f / fmax32(VF<float>(A, s, VO_VE_RELEASE), 1.0f);
    return gs_env_exact(t, start, delay, attack, hold, k1000, sus, krel, rel_t, kill, A.fade);
}

// allocator._silent_of for slot s with release rel_t and kill time kill (envelope.silent_from
// and the end of a one-shot sample at its base pitch)
static i64 silent_of(const Args &A, i64 s, i64 rel_t, i64 kill) {
    const float k1000f = 1000.0f / fmax32(VF<float>(A, s, VO_VE_DECAY), 1.0f);
    const float krelf = 1000.0f / fmax32(VF<float>(A, s, VO_VE_RELEASE), 1.0f);
    const double k1000 = k1000f, krel = krelf;
    const double start = (double)VF<i64>(A, s, VO_START);
    const double d = VF<float>(A, s, VO_VE_DELAY), a = VF<float>(A, s, VO_VE_ATTACK),
                 h = VF<float>(A, s, VO_VE_HOLD), sus = VF<float>(A, s, VO_VE_SUS);
    const double inf = INFINITY;
    double t_dec = sus >= A.dec_cb ? (((start + d) + a) + h) + A.dec_cb / k1000 : inf;
    if ((double)rel_t < t_dec) t_dec = inf;    // released first: the release alone decides
    double t_rel = inf;
    if (rel_t < NEVER) {
        const double g = (double)env_exact(A, s, rel_t, rel_t, kill);
        double need = det_log10((g > 1e-30 ? g : 1e-30) / A.done_level);
        need = (need > 0.0 ? need : 0.0) * 200.0;
        t_rel = (double)rel_t + need / krel;
    }
    const double t_kill = kill < NEVER ? (double)kill + (double)A.fade : inf;
    double t = t_dec < t_rel ? t_dec : t_rel;
    t = t < t_kill ? t : t_kill;
    i64 r;
    if (std::isfinite(t)) {
        const double lim = 2305843009213693952.0;   // 2^61
        const double tc = t < lim ? t : lim;      // >= 0
        r = (i64)tc;
        if ((double)r < tc) ++r;
    } else {
        r = NEVER;
    }
    if (VF<i32>(A, s, VO_LMODE) == 0) {
        double pc = (double)VF<float>(A, s, VO_PITCH);
        pc = pc < -12000.0 ? -12000.0 : (pc > 12000.0 ? 12000.0 : pc);
        const double inc = det_exp2(pc / 1200.0);
        const double len = (double)(VF<i64>(A, s, VO_PEND) - VF<i64>(A, s, VO_IPOS));
        const double q = len / inc;               // >= 0
        i64 cq = (i64)q;
        if ((double)cq < q) ++cq;
        const i64 end = VF<i64>(A, s, VO_START) + cq;
        if (end < r) r = end;
    }
    return r;
}

// ------------------------------------------------------------------ sounding voices
// Counts the slots that are in the table, not killed, by their closed-form end against the
// frames of this window: per frame and per tick (a query adds at most the ticks after it and
// the frames after it in its tick); ends before the window never count, ends after it always.
static void fen_add(Engine &E, i64 silent, i64 d) {
    const Args &A = *E.A;
    const i64 i = silent - A.B;
    if (i >= E.fen_n) {
        E.fen_future += d;
        return;
    }
    if (i < 0) return;
    E.fen[i] += d;
    E.fen_tick[i / TICK] += d;
}
// slots counted against the limit at frame t (not killed, silent > t), t within the window
static i64 sounding(const Engine &E, i64 t) {
    const Args &A = *E.A;
    const i64 i = t - A.B + 1;            // silent - B >= i
    const i64 k = i / TICK, T = E.fen_n / TICK;
    i64 c = E.fen_future;
    const i64 *tk = E.fen_tick.data();
    for (i64 j = k + 1; j < T; ++j) c += tk[j];
    const i64 *fr = E.fen.data();
    for (i64 f = i, e = (k + 1) * TICK < E.fen_n ? (k + 1) * TICK : E.fen_n; f < e; ++f) c += fr[f];
    return c;
}
static inline void fen_set(Engine &E, i64 s) {   // slot s counted with its current state
    const Args &A = *E.A;
    if (E.fen_val[s] >= 0) fen_add(E, E.fen_val[s], -1);
    if (!A.h_killed[s]) {
        E.fen_val[s] = A.h_silent[s];
        fen_add(E, A.h_silent[s], 1);
    } else {
        E.fen_val[s] = -1;
    }
}

// ------------------------------------------------------------------ voice time changes
static inline void env_times(Engine &E, i64 s);
static void flush_dirty(Engine &E) {
    const Args &A = *E.A;
    for (i64 s : E.dirty) {
        if (!A.h_dirty[s]) continue;
        A.h_dirty[s] = 0;
        A.h_silent[s] = silent_of(A, s, VF<i64>(A, s, VO_RELEASE), VF<i64>(A, s, VO_KILL));
        if (E.fen_val[s] >= 0 || !A.h_killed[s]) fen_set(E, s);
    }
    E.dirty.clear();
}
static inline void mark_dirty(Engine &E, i64 s) {
    const Args &A = *E.A;
    if (!A.h_dirty[s]) {
        A.h_dirty[s] = 1;
        E.dirty.push_back(s);
    }
}
// the voice's released flag: it joins its priority's released list
static inline void set_released(Engine &E, i64 s) {
    const Args &A = *E.A;
    if (A.h_released[s]) return;
    A.h_released[s] = 1;
    E.rel_by_prio[prio_index(E, A.h_prio[s])].push_back((i32)s);
}

// allocator.release: the release starts at t (or earlier); the closed-form end is recomputed
// lazily (at the next run or the window's end), as the definition does
static inline void release_lazy(Engine &E, i64 s, i64 t) {
    const Args &A = *E.A;
    i64 &r = VF<i64>(A, s, VO_RELEASE);
    if (t < r) r = t;
    env_times(E, s);
    A.h_changed[s] = 1;
    set_released(E, s);
    A.h_sustained[s] = 0;
    mark_dirty(E, s);
}
// allocator.kill / steal.do_kill
static inline void kill_voice(Engine &E, i64 s, i64 t) {
    const Args &A = *E.A;
    i64 &k = VF<i64>(A, s, VO_KILL);
    if (t < k) k = t;
    env_times(E, s);
    A.h_changed[s] = 1;
    A.h_killed[s] = 1;
    const i64 e = k + A.fade;
    if (e < A.h_silent[s]) A.h_silent[s] = e;
    if (E.fen_val[s] >= 0) fen_set(E, s);
}

// ------------------------------------------------------------------ channels
static void snapshot_channel(Engine &E, i64 c) {
    const Args &A = *E.A;
    const i64 nch = A.nch;
    const u8 *cc = A.cc + c * 128;
    float *S = E.snap.data();
    S[0 * nch + c] = (float)((((double)(A.bend[c] - 8192) / 8192.0) * A.bend_range[c] + A.fine[c])
                             + A.coarse[c] * 100.0 + A.master_tune[c]);
    S[1 * nch + c] = (float)((960.0 * A.concave[cc[7]] + 960.0 * A.concave[cc[11]]) + A.master_atten[c]);
    S[2 * nch + c] = (float)((((double)cc[10] - 64.0) / 64.0) * 500.0);
    S[3 * nch + c] = (float)((double)cc[1] / 127.0);
    S[4 * nch + c] = (float)((double)A.pressure[c] / 127.0);
    S[5 * nch + c] = (float)((double)cc[91] / 127.0);
    S[6 * nch + c] = (float)((double)cc[93] / 127.0);
}

static void fill_timeline(Engine &E, i64 upto) {
    const Args &A = *E.A;
    if (upto <= E.done_tick) return;
    const i64 nch = A.nch, T = A.T;
    for (int k = 0; k < 7; ++k) {
        const float *src = E.snap.data() + k * nch;
        for (i64 tk = E.done_tick; tk < upto; ++tk)
            std::memcpy(A.chin + ((i64)k * T + tk) * nch, src, nch * sizeof(float));
    }
    E.done_tick = upto;
}

static void reset_controllers(const Args &A, i64 c) {
    u8 *cc = A.cc + c * 128;
    cc[1] = 0;
    cc[11] = 127;
    cc[64] = cc[65] = cc[66] = cc[67] = 0;
    cc[101] = cc[100] = 127;
    cc[99] = cc[98] = 127;
    A.bend[c] = 8192;
    A.pressure[c] = 0;
    std::memset(A.poly_pressure + c * 128, 0, 128);
    A.rpn[c] = 0x3FFF;
}

static void on_control(Engine &E, i64 c, int d1, int d2, i64 t) {
    const Args &A = *E.A;
    u8 *cc = A.cc + c * 128;
    const int old = cc[d1];
    cc[d1] = (u8)d2;
    // ChannelState.control
    if (d1 == 101 || d1 == 100) {
        A.rpn_is_nrpn[c] = 0;
        A.rpn[c] = ((i32)cc[101] << 7) | (i32)cc[100];
    } else if (d1 == 99 || d1 == 98) {
        A.rpn_is_nrpn[c] = 1;
        A.rpn[c] = 0x3FFF;
    } else if ((d1 == 6 || d1 == 38) && !A.rpn_is_nrpn[c]) {
        const int msb = cc[6], lsb = cc[38];
        const i32 r = A.rpn[c];
        if (r == 0) A.bend_range[c] = msb * 100.0 + (double)(lsb < 99 ? lsb : 99);
        else if (r == 1) A.fine[c] = ((double)((msb << 7) | lsb) - 8192) / 8192.0 * 100.0;
        else if (r == 2) A.coarse[c] = (double)(msb - 64);
    }
    // the voice-affecting controllers (Synth._on_control)
    const i64 n = *A.n;
    if (d1 == 64 && old >= 64 && 64 > d2) {
        for (i64 s = 0; s < n; ++s)
            if (A.h_chan[s] == c && A.h_sustained[s] && !A.h_sost[s]) release_lazy(E, s, t);
    } else if (d1 == 66) {
        if (d2 >= 64 && 64 > old) {
            for (i64 s = 0; s < n; ++s)
                if (A.h_chan[s] == c && !A.h_released[s] && !A.h_killed[s]) A.h_sost[s] = 1;
        } else if (old >= 64 && 64 > d2) {
            const bool ped = cc[64] >= 64;
            for (i64 s = 0; s < n; ++s) {
                if (A.h_chan[s] != c || !A.h_sost[s]) continue;
                A.h_sost[s] = 0;
                if (!ped && A.h_sustained[s]) release_lazy(E, s, t);
            }
        }
    } else if (d1 == 120) {
        for (i64 s = 0; s < n; ++s)
            if (A.h_chan[s] == c && !A.h_killed[s]) kill_voice(E, s, t);
    } else if (d1 == 121) {
        reset_controllers(A, c);
        for (i64 s = 0; s < n; ++s) {
            if (A.h_chan[s] != c) continue;
            const bool sus = A.h_sustained[s];
            A.h_sost[s] = 0;
            if (sus) release_lazy(E, s, t);
        }
    } else if (d1 >= 123) {
        const bool ped = cc[64] >= 64;
        for (i64 s = 0; s < n; ++s) {
            if (A.h_chan[s] != c || A.h_released[s] || A.h_killed[s]) continue;
            if (ped) {
                A.h_sustained[s] = 1;
                set_released(E, s);
            } else {
                release_lazy(E, s, t);
            }
        }
    }
}

// apply a channel event (not a note, not SysEx) at time t
static void channel_event(Engine &E, const Ev &e, i64 t) {
    const Args &A = *E.A;
    const i64 c = e.chan;
    switch (e.status) {
    case CONTROL: on_control(E, c, e.d1, e.d2, t); break;
    case PROGRAM: A.program[c] = e.d1; A.ch_dirty[c] = 1; break;
    case PITCH_BEND: A.bend[c] = ((i32)e.d2 << 7) | e.d1; break;
    case CHAN_PRESSURE: A.pressure[c] = e.d1; break;
    case POLY_PRESSURE: A.poly_pressure[c * 128 + e.d1] = e.d2; break;
    default: break;
    }
    snapshot_channel(E, c);
}

static inline bool is_split(const Ev &e) {
    if (e.status == NOTE_ON || e.status == NOTE_OFF) return false;
    if (e.status != CONTROL) return true;
    switch (e.d1) {
    case 0: case 32: case 64: case 66: case 120: case 121: case 123: case 124: case 125:
    case 126: case 127: return true;
    default: return false;
    }
}

// ------------------------------------------------------------------ presets
static i64 pkey_find(const Args &A, i64 key) {
    const i64 *p = std::lower_bound(A.pkey, A.pkey + A.n_pkeys, key);
    if (p != A.pkey + A.n_pkeys && *p == key) return A.pval[p - A.pkey];
    return -2;
}
static i64 lookup_preset(const Args &A, i64 bank, i64 prog, bool drum) {
    const i64 d = drum ? 1 : 0;
    const i64 cands[3] = {bank, (bank >> 7) << 7, 0};
    for (i64 b : cands) {
        const i64 r = pkey_find(A, b * 256 + prog * 2 + d);
        if (r != -2) return r;
    }
    if (drum) {
        const i64 r = pkey_find(A, 0 * 256 + 0 * 2 + 1);
        return r != -2 ? r : A.first_drum;
    }
    return -1;
}
// Synth._channel_presets for the dirty channels; the counts of note-ons on a channel whose
// preset was missing go to the miss log first. Returns false if the log is full.
static bool refresh_presets(Engine &E) {
    const Args &A = *E.A;
    for (i64 c = 0; c < A.nch; ++c) {
        if (!A.ch_dirty[c]) continue;
        if (A.miss_count[c] > 0) {
            if (*A.mlog_n >= A.mlog_cap) return false;
            i64 *L = A.mlog + 6 * (*A.mlog_n)++;
            L[0] = c; L[1] = A.ch_want[3 * c]; L[2] = A.ch_want[3 * c + 1];
            L[3] = A.ch_want[3 * c + 2]; L[4] = A.ch_pid[c]; L[5] = A.miss_count[c];
            A.miss_count[c] = 0;
        }
        const i64 bank = (i64)A.cc[c * 128 + 0] * 128 + A.cc[c * 128 + 32];
        const i64 prog = A.program[c];
        const bool drum = A.drum[c] != 0;
        const i64 pid = lookup_preset(A, bank, prog, drum);
        A.ch_pid[c] = pid;
        A.ch_want[3 * c] = bank;
        A.ch_want[3 * c + 1] = prog;
        A.ch_want[3 * c + 2] = drum ? 1 : 0;
        A.ch_miss[c] = (pid < 0 || A.pid_key[pid] != bank * 256 + prog * 2 + (drum ? 1 : 0)) ? 1 : 0;
        A.ch_dirty[c] = 0;
    }
    return true;
}

// PresetMap.regions_for one note: appends region indices to out (at most 64, in preset order).
// The groups of a (preset, key) (segment-tree nodes on the key's path) are looked up once and
// kept in E.group_of (-1: none, -2: not looked up yet).
static void regions_for(Engine &E, i64 pid, i64 key, i64 vel, std::vector<i64> &out) {
    const Args &A = *E.A;
    if (A.G == 0 || pid < 0 || pid >= A.n_presets || key < 0 || key > 127 || vel < 0 || vel > 127)
        return;
    if ((i64)E.group_of.size() != A.n_presets * 128 * 8) E.group_of.assign(A.n_presets * 128 * 8, -2);
    i32 *gi = E.group_of.data() + (pid * 128 + key) * 8;
    if (gi[0] == -2) {
        for (int l = 0; l < 8; ++l) {
            const i64 gk = pid * 256 + ((key + 128) >> l);
            const i64 *p = std::lower_bound(A.gkey, A.gkey + A.G, gk);
            gi[l] = (p != A.gkey + A.G && *p == gk) ? (i32)(p - A.gkey) : -1;
        }
    }
    i64 *f = E.found_buf;
    i64 nf = 0;
    for (int l = 0; l < 8; ++l) {
        if (gi[l] < 0) continue;
        for (i64 e = A.goff[gi[l]]; e < A.goff[gi[l] + 1]; ++e) {
            if (A.evlo[e] <= vel && vel <= A.evhi[e]) {
                if (nf == E.found_cap) {
                    E.found.resize(2 * E.found_cap);
                    std::memcpy(E.found.data(), f, nf * sizeof(i64));
                    f = E.found_buf = E.found.data();
                    E.found_cap *= 2;
                }
                f[nf++] = A.efpos[e];
            }
        }
    }
    if (nf == 0) return;
    if (nf <= 16) {
        for (i64 i = 1; i < nf; ++i) {
            const i64 x = f[i];
            i64 j = i;
            while (j > 0 && f[j - 1] > x) { f[j] = f[j - 1]; --j; }
            f[j] = x;
        }
    } else {
        std::sort(f, f + nf);
    }
    if (nf > MAX_REGIONS_PER_NOTE) A.counters[CN_CAPPED] += 1;
    const i64 m = nf < MAX_REGIONS_PER_NOTE ? nf : MAX_REGIONS_PER_NOTE;
    for (i64 i = 0; i < m; ++i) out.push_back(A.pr_flat[f[i]]);
}

// ------------------------------------------------------------------ voice records
static inline float env_frames(double base, double coef, double x, double cached, double hi,
                               double rate, bool vel) {
    if (coef == 0.0) return (float)cached;
    double tc;
    if (base <= -32767.0) tc = -32768.0;
    else tc = vel ? base + (coef * x) / 128.0 : base + x * coef;
    if (tc <= -32767.0) return (float)(0.0 * rate);
    double c = tc < -12000.0 ? -12000.0 : (tc > hi ? hi : tc);
    return (float)(det_exp2(c / 1200.0) * rate);
}

// slot s joins the held list of priority index pi
static inline void held_push(Engine &E, int pi, i64 s) {
    E.held_by_prio[pi].push_back((i32)s);
    const i64 f = E.A->h_frel[s];
    if (f < E.held_frel_min[pi]) E.held_frel_min[pi] = f;
}

// allocator._create for one region: slot s, region r of event j of the run
static void create_voice(Engine &E, i64 s, i64 r, i64 j, i64 note_id) {
    const Args &A = *E.A;
    const RegionCE &g = A.regions[r];
    std::memcpy(A.vt + s * VSIZE, A.templates + r * VSIZE, VSIZE);
    const i64 t = E.r_time[j], c = E.r_chan[j];
    const double k = g.fixed_key >= 0 ? g.fixed_key : (double)E.r_key[j];
    const double v = g.fixed_vel >= 0 ? g.fixed_vel : (double)E.r_vel[j];
    VF<i64>(A, s, VO_START) = t;
    VF<i32>(A, s, VO_CHAN) = (i32)c;
    VF<float>(A, s, VO_PITCH) = (float)((g.scale_tuning * (k - g.root_key) + g.tune) + g.pitch_base);
    VF<float>(A, s, VO_ATTEN) = (float)(g.atten + A.concave[(int)v] * g.vel_atten);
    VF<float>(A, s, VO_FC) = (float)(g.fc + (v >= g.vel_fc_min ? g.vel_fc * (1.0 - v / 127.0) : 0.0));
    const double kd = 60.0 - k;
    VF<float>(A, s, VO_VE_ATTACK) = env_frames(g.ve_att, g.ve_vatt, v, g.c_ve_att, 8000.0, A.rate, true);
    VF<float>(A, s, VO_ME_ATTACK) = env_frames(g.me_att, g.me_vatt, v, g.c_me_att, 8000.0, A.rate, true);
    VF<float>(A, s, VO_VE_HOLD) = env_frames(g.ve_hold, g.ve_khold, kd, g.c_ve_hold, 5000.0, A.rate, false);
    VF<float>(A, s, VO_ME_HOLD) = env_frames(g.me_hold, g.me_khold, kd, g.c_me_hold, 5000.0, A.rate, false);
    VF<float>(A, s, VO_VE_DECAY) = env_frames(g.ve_dec, g.ve_kdec, kd, g.c_ve_dec, 8000.0, A.rate, false);
    VF<float>(A, s, VO_ME_DECAY) = env_frames(g.me_dec, g.me_kdec, kd, g.c_me_dec, 8000.0, A.rate, false);
    A.h_chan[s] = (i32)c;
    A.h_key[s] = (i16)E.r_key[j];
    A.h_seq[s] = A.counters[CN_SEQ]++;
    A.h_released[s] = A.h_sustained[s] = A.h_sost[s] = A.h_killed[s] = A.h_finished[s] = 0;
    A.h_prio[s] = A.priority[c];
    A.h_excl[s] = (i16)g.excl;
    A.h_note[s] = note_id;
    if (A.max_note_frames) {
        A.h_frel[s] = t + A.max_note_frames;
        VF<i64>(A, s, VO_RELEASE) = A.h_frel[s];
    } else {
        A.h_frel[s] = NEVER;
    }
    A.h_changed[s] = 0;
    A.h_fresh[s] = 1;
    A.h_dirty[s] = 0;
    E.fen_val[s] = -1;
    E.xk[s] = NEVER;
    held_push(E, prio_index(E, A.h_prio[s]), s);
    E.env_epoch[s] = 0;            // its steal level's inputs are read when a steal first needs them
}

// ------------------------------------------------------------------ indexes
static void build_indexes(Engine &E) {
    const Args &A = *E.A;
    const i64 n = *A.n;
    const i64 nck = A.nch * 128;
    if ((i64)E.held_head.size() != nck) {
        E.held_head.assign(nck, -1);
        E.ck_touched.clear();
    } else {
        for (i32 ck : E.ck_touched) E.held_head[ck] = -1;
        E.ck_touched.clear();
    }
    if ((i64)E.held_next.size() < A.cap) E.held_next.resize(A.cap);
    if ((i64)E.fen_val.size() < A.cap) E.fen_val.resize(A.cap);
    if ((i64)E.xk.size() < A.cap) E.xk.resize(A.cap, NEVER);
    if ((i64)E.env.size() < A.cap) {
        E.env.resize(A.cap);
        E.env_epoch.resize(A.cap, 0u);
    }
    E.excl_groups.clear();
    for (i64 s = 0; s < n; ++s) {
        E.xk[s] = NEVER;
        if (A.h_killed[s]) continue;
        if (!A.h_released[s]) {
            const i32 ck = A.h_chan[s] * 128 + A.h_key[s];
            if (E.held_head[ck] < 0) E.ck_touched.push_back(ck);
            E.held_next[s] = E.held_head[ck];
            E.held_head[ck] = (i32)s;
        }
        if (A.h_excl[s] != 0) E.excl_groups[(i64)A.h_chan[s] * 65536 + A.h_excl[s]].push_back((i32)s);
    }
    if (A.max_key > 0) {
        if ((i64)E.cap_list.size() != nck) E.cap_list.assign(nck, std::vector<i32>());
        else for (auto &v : E.cap_list) v.clear();
        std::vector<i64> order;
        for (i64 s = 0; s < n; ++s) if (!A.h_killed[s]) order.push_back(s);
        std::sort(order.begin(), order.end(), [&](i64 a, i64 b) {
            return A.h_note[a] < A.h_note[b] || (A.h_note[a] == A.h_note[b] && a < b);
        });
        for (i64 s : order) E.cap_list[A.h_chan[s] * 128 + A.h_key[s]].push_back((i32)s);
    }
    // Fenwick over the window's frames
    E.fen_n = A.T * TICK;
    E.fen.assign(E.fen_n + 1, 0);
    E.fen_tick.assign(A.T + 1, 0);
    E.fen_future = 0;
    E.dirty.clear();
    for (auto &v : E.held_by_prio) v.clear();
    for (auto &v : E.rel_by_prio) v.clear();
    std::fill(E.held_frel_min.begin(), E.held_frel_min.end(), NEVER);
    std::fill(E.held_scanned.begin(), E.held_scanned.end(), (size_t)0);
    for (i64 s = 0; s < n; ++s) {
        E.fen_val[s] = -1;
        if (!A.h_killed[s]) {
            const int p = prio_index(E, A.h_prio[s]);
            if (A.h_released[s]) E.rel_by_prio[p].push_back((i32)s);
            else held_push(E, p, s);
        }
        if (A.h_dirty[s]) E.dirty.push_back(s);
        if (!A.h_killed[s]) {
            E.fen_val[s] = A.h_silent[s];
            fen_add(E, A.h_silent[s], 1);
        }
    }
    // the controller snapshot
    E.snap.assign(7 * A.nch, 0.0f);
    for (i64 c = 0; c < A.nch; ++c) snapshot_channel(E, c);
}

// ------------------------------------------------------------------ steal (steal_run.cpp)
// the steal level's inputs of slot s, read from its record (env_exact's, atten_gain's)
__attribute__((noinline)) static void env_fill(Engine &E, i64 s) {
    const Args &A = *E.A;
    Engine::EnvMirror &m = E.env[s];
    m.start = VF<i64>(A, s, VO_START);
    m.rel = VF<i64>(A, s, VO_RELEASE);
    m.kill = VF<i64>(A, s, VO_KILL);
    m.seq = A.h_seq[s];
    m.delay = VF<float>(A, s, VO_VE_DELAY);
    m.attack = VF<float>(A, s, VO_VE_ATTACK);
    m.hold = VF<float>(A, s, VO_VE_HOLD);
    m.k1000 = 1000.0f / fmax32(VF<float>(A, s, VO_VE_DECAY), 1.0f);
    m.sus = VF<float>(A, s, VO_VE_SUS);
    m.krel = 1000.0f / fmax32(VF<float>(A, s, VO_VE_RELEASE), 1.0f);
    m.attg = atten_gain(A, s);
    E.env_epoch[s] = E.epoch;
}
static void env_new_epoch(Engine &E) {
    if (++E.epoch == 0) {          // wrapped: no stale slot may match
        std::fill(E.env_epoch.begin(), E.env_epoch.end(), 0u);
        E.epoch = 1;
    }
}
// the record's release or kill time of slot s changed: its mirror follows
static inline void env_times(Engine &E, i64 s) {
    if (E.env_epoch[s] != E.epoch) return;
    E.env[s].rel = VF<i64>(*E.A, s, VO_RELEASE);
    E.env[s].kill = VF<i64>(*E.A, s, VO_KILL);
}
// envelope.level_at: env_exact times the static attenuation's gain (the same operations)
__attribute__((always_inline)) static inline float level_at(Engine &E, i64 s, i64 t) {
    if (E.env_epoch[s] != E.epoch) env_fill(E, s);
    const Engine::EnvMirror &m = E.env[s];
    const float g = gs_env_exact(t, m.start, m.delay, m.attack, m.hold, m.k1000, m.sus, m.krel,
                                 m.rel, m.kill, E.A->fade);
    return g * m.attg;
}

// the steal at a tick's first note-on time tf (steal.run_numpy step 2): if the voices counted at
// tf (slots < nk) plus the tick's M new ones exceed the limit, the lowest scores go: channel
// priority, then released (or past its forced release) before held, then the quieter
// closed-form level, then the older. The classes are visited in that order from the priority
// lists, so a steal reads only the classes it takes voices from.
static void steal_at(Engine &E, i64 nk, i64 M, i64 tf) {
    const Args &A = *E.A;
    const i64 np_ = sounding(E, tf);
    const i64 steal = np_ + M - A.max_voices;
    if (steal > 0) {
        std::vector<i64> &victims = E.victims, &cand = E.cand, &frel_rel = E.scratch;
        victims.clear();
        i64 need = steal;
        const u8 *killed = A.h_killed, *released = A.h_released;
        const i64 *silent = A.h_silent, *frel = A.h_frel;
        auto take = [&](std::vector<i64> &c) {     // the class c: all of it, or its quietest
            if ((i64)c.size() <= need) {
                victims.insert(victims.end(), c.begin(), c.end());
                need -= (i64)c.size();
                return;
            }
            auto less = [](const Engine::Cand &a, const Engine::Cand &b) {
                return a.lvl < b.lvl || (!(b.lvl < a.lvl) && a.seq < b.seq);
            };
            const i64 n = (i64)c.size();
            if (need * 4 <= n) {
                // the need smallest (seqs are distinct, so the set is the one nth_element picks;
                // the kills commute, so their order is free): a max-heap of need entries while
                // streaming the candidates, its top the greatest kept
                if ((i64)E.group.size() < need) E.group.resize(need);
                Engine::Cand *h = E.group.data();
                for (i64 i = 0; i < need; ++i) {
                    const i64 x = c[i];
                    const float l = level_at(E, x, tf);
                    h[i] = Engine::Cand{l, (i32)x, E.env[x].seq};
                }
                std::make_heap(h, h + need, less);
                for (i64 j = need; j < n; ++j) {
                    const i64 x = c[j];
                    const float l = level_at(E, x, tf);
                    const Engine::Cand v{l, (i32)x, E.env[x].seq};
                    if (!less(v, h[0])) continue;
                    i64 i = 0;                      // replace the top, sift down
                    for (;;) {
                        const i64 a = 2 * i + 1;
                        if (a >= need) break;
                        const i64 m = (a + 1 < need && less(h[a], h[a + 1])) ? a + 1 : a;
                        if (!less(v, h[m])) break;
                        h[i] = h[m];
                        i = m;
                    }
                    h[i] = v;
                }
                for (i64 i = 0; i < need; ++i) victims.push_back(h[i].slot);
                need = 0;
                return;
            }
            E.group.clear();
            for (i64 x : c) {
                const float l = level_at(E, x, tf);
                E.group.push_back(Engine::Cand{l, (i32)x, E.env[x].seq});
            }
            std::nth_element(E.group.begin(), E.group.begin() + need, E.group.end(), less);
            for (i64 i = 0; i < need; ++i) victims.push_back(E.group[i].slot);
            need = 0;
        };
        for (int pi : E.prio_order) {
            if (need == 0) break;
            // released: the released list and the held past their forced release (the class
            // is a set: the order of frel_rel does not matter to take)
            frel_rel.clear();
            std::vector<i32> &R = E.rel_by_prio[pi];
            size_t w = 0;
            for (size_t i = 0; i < R.size(); ++i) {
                const i32 x = R[i];
                if (killed[x] || silent[x] <= tf) continue;
                R[w++] = x;
                frel_rel.push_back(x);
            }
            R.resize(w);
            std::vector<i32> &H = E.held_by_prio[pi];
            if ((i64)frel_rel.size() >= need && E.held_frel_min[pi] > tf &&
                H.size() <= 2 * E.held_scanned[pi] + 256) {
                take(frel_rel);                     // no held voice joins it: the held list
                break;                              // is not read
            }
            // held list: drop stale entries; split into held and past-forced-release voices
            cand.clear();
            i64 fmin = NEVER;
            w = 0;
            for (size_t i = 0; i < H.size(); ++i) {
                const i32 x = H[i];
                if (killed[x] || released[x] || silent[x] <= tf) {
                    if (x < nk) continue;           // stale (a voice of this tick stays)
                    H[w++] = x;
                    if (frel[x] < fmin) fmin = frel[x];
                    continue;
                }
                H[w++] = x;
                if (frel[x] < fmin) fmin = frel[x];
                if (x >= nk) continue;
                if (frel[x] <= tf) frel_rel.push_back(x);
                else cand.push_back(x);
            }
            H.resize(w);
            E.held_frel_min[pi] = fmin;
            E.held_scanned[pi] = w;
            take(frel_rel);
            if (need == 0) break;
            take(cand);
        }
        for (i64 s : victims) {
            const i64 st = VF<i64>(A, s, VO_START);
            kill_voice(E, s, tf > st ? tf : st);
        }
        A.counters[CN_STOLEN] += steal;
    }
    const i64 now = np_ + M - (steal > 0 ? steal : 0);
    if (now > A.counters[CN_PEAK]) A.counters[CN_PEAK] = now;
}

// per-key cap query of a note-on (note id q, channel + key ck) at time tq
static void key_cap(Engine &E, i64 ck, i64 q, i64 tq) {
    const Args &A = *E.A;
    const std::vector<i32> &L = E.cap_list[ck];
    i64 count = 0, last = -1;
    for (i32 s : L) {
        if (A.h_note[s] >= q) break;
        if (!A.h_killed[s] && A.h_silent[s] > tq && A.h_note[s] != last) {
            ++count;
            last = A.h_note[s];
        }
    }
    if (count < A.max_key) return;
    i64 excess = count - A.max_key + 1;
    last = -1;
    for (i32 s : L) {
        if (A.h_note[s] >= q) break;
        if (A.h_killed[s] || A.h_silent[s] <= tq) continue;
        if (A.h_note[s] != last) {
            if (excess == 0) break;
            --excess;
            last = A.h_note[s];
        }
        const i64 st = VF<i64>(A, s, VO_START);
        kill_voice(E, s, tq > st ? tq : st);
        A.counters[CN_STOLEN] += 1;
    }
}

// ------------------------------------------------------------------ a run of notes
// Resolve the run's notes (after the min-velocity filter): regions per note-on, notes and
// preset misses counted. Returns false if the miss log is full (nothing changed then).
static bool resolve_run(Engine &E) {
    const Args &A = *E.A;
    const size_t cap = E.run_ev.size();
    E.r_time.resize(cap); E.r_chan.resize(cap); E.r_key.resize(cap); E.r_vel.resize(cap);
    E.r_on.resize(cap);
    i64 *rt = E.r_time.data(), *rc = E.r_chan.data(), *rk = E.r_key.data(), *rv = E.r_vel.data();
    u8 *ro = E.r_on.data();
    i64 skipped = 0, m = 0;
    for (i64 i : E.run_ev) {
        const Ev e = event_at(A, i);
        const bool on = e.status == NOTE_ON && e.d2 > 0;
        if (A.min_velocity > 0 && on && e.d2 < A.min_velocity) {
            ++skipped;
            continue;
        }
        rt[m] = e.time > A.B ? e.time : A.B;
        rc[m] = e.chan;
        rk[m] = e.d1;
        rv[m] = e.d2;
        ro[m++] = on ? 1 : 0;
    }
    E.r_time.resize(m); E.r_chan.resize(m); E.r_key.resize(m); E.r_vel.resize(m); E.r_on.resize(m);
    const i64 R = (i64)E.r_time.size();
    E.r_reg_off.assign(R + 1, 0);
    E.r_regs.clear();
    if (R > 0 && !refresh_presets(E)) return false;     // called again after the log is drained
    A.counters[CN_SKIPPED] += skipped;
    if (R == 0) return true;
    for (i64 j = 0; j < R; ++j) {
        E.r_reg_off[j] = (i64)E.r_regs.size();
        if (!E.r_on[j]) continue;
        const i64 c = E.r_chan[j];
        const i64 pid = A.ch_pid[c];
        if (A.ch_miss[c]) A.miss_count[c] += 1;
        if (pid >= 0) {
            A.counters[CN_NOTES] += 1;
            regions_for(E, pid, E.r_key[j], E.r_vel[j], E.r_regs);
        }
    }
    E.r_reg_off[R] = (i64)E.r_regs.size();
    return true;
}

// keep the resolved events j with keep(j), in order
template <typename F> static void filter_run(Engine &E, F keep) {
    i64 m = 0;
    const i64 R = (i64)E.r_time.size();
    for (i64 j = 0; j < R; ++j) {
        if (!keep(j)) continue;
        E.r_time[m] = E.r_time[j]; E.r_chan[m] = E.r_chan[j]; E.r_key[m] = E.r_key[j];
        E.r_vel[m] = E.r_vel[j]; E.r_on[m] = E.r_on[j];
        ++m;
    }
    E.r_time.resize(m); E.r_chan.resize(m); E.r_key.resize(m); E.r_vel.resize(m); E.r_on.resize(m);
}

// EnsembleSynth._note_run before the allocation: the events of songs still in the group (the
// skipped note-ons counted per song); then, until no song could reach its limit, the regions
// are looked up and every song whose sounding voices plus the run's regions exceed the limit
// is evicted. Returns false if the miss log is full (nothing changed then).
static bool resolve_run_group(Engine &E) {
    const Args &A = *E.A;
    const size_t cap = E.run_ev.size();
    E.r_time.resize(cap); E.r_chan.resize(cap); E.r_key.resize(cap); E.r_vel.resize(cap);
    E.r_on.resize(cap);
    std::vector<i64> &skip_song = E.scratch;
    skip_song.clear();
    i64 m = 0;
    for (i64 i : E.run_ev) {
        const Ev e = event_at(A, i);
        const i64 k = A.song_of_chan[e.chan];
        if (A.evicted[k]) continue;
        const bool on = e.status == NOTE_ON && e.d2 > 0;
        if (A.min_velocity > 0 && on && e.d2 < A.min_velocity) {
            skip_song.push_back(k);
            continue;
        }
        E.r_time[m] = e.time > A.B ? e.time : A.B;
        E.r_chan[m] = e.chan;
        E.r_key[m] = e.d1;
        E.r_vel[m] = e.d2;
        E.r_on[m++] = on ? 1 : 0;
    }
    E.r_time.resize(m); E.r_chan.resize(m); E.r_key.resize(m); E.r_vel.resize(m); E.r_on.resize(m);
    E.r_reg_off.assign(m + 1, 0);
    E.r_regs.clear();
    if (m > 0 && !refresh_presets(E)) return false;
    for (i64 k : skip_song) A.song_skipped[k] += 1;
    if (m == 0) return true;
    std::vector<i64> count(A.n_songs);
    for (;;) {
        const i64 R = (i64)E.r_time.size();
        E.r_reg_off.assign(R + 1, 0);
        E.r_regs.clear();
        for (i64 j = 0; j < R; ++j) {
            E.r_reg_off[j] = (i64)E.r_regs.size();
            const i64 pid = A.ch_pid[E.r_chan[j]];
            if (E.r_on[j] && pid >= 0) regions_for(E, pid, E.r_key[j], E.r_vel[j], E.r_regs);
        }
        E.r_reg_off[R] = (i64)E.r_regs.size();
        if (E.r_regs.empty()) break;
        flush_dirty(E);
        std::fill(count.begin(), count.end(), 0);
        for (i64 j = 0; j < R; ++j)
            count[A.song_of_chan[E.r_chan[j]]] += E.r_reg_off[j + 1] - E.r_reg_off[j];
        const i64 t0 = E.r_time[0], n = *A.n;
        for (i64 s = 0; s < n; ++s)
            if (!A.h_killed[s] && A.h_silent[s] > t0) count[A.song_of_chan[A.h_chan[s]]] += 1;
        bool any = false;
        for (i64 k = 0; k < A.n_songs; ++k)
            if (count[k] > A.song_limit) {
                A.evicted[k] = 1;
                any = true;
            }
        if (!any) break;
        filter_run(E, [&](i64 j) { return !A.evicted[A.song_of_chan[E.r_chan[j]]]; });
        if (E.r_time.empty()) {
            E.r_reg_off.assign(1, 0);
            E.r_regs.clear();
            return true;
        }
    }
    const i64 R = (i64)E.r_time.size();
    for (i64 j = 0; j < R; ++j) {
        if (!E.r_on[j]) continue;
        const i64 c = E.r_chan[j];
        if (A.ch_miss[c]) A.miss_count[c] += 1;
        if (A.ch_pid[c] >= 0) {
            A.counters[CN_NOTES] += 1;
            A.song_notes[A.song_of_chan[c]] += 1;
        }
    }
    return true;
}

// the tick's exclusive-class cuts and releases queued by the run's events [a, b)
static void queue_key_events(Engine &E, i64 a, i64 b, i64 slot_of_first,
                             const std::vector<i64> &kept_off) {
    const Args &A = *E.A;
    for (i64 j = a; j < b; ++j) {
        const i64 c = E.r_chan[j];
        const i32 ck = (i32)(c * 128 + E.r_key[j]);
        // releases: the held voices of this channel + key created before event j
        const bool ped = A.cc[c * 128 + 64] >= 64;
        i32 s = E.held_head[ck];
        while (s >= 0) {
            const i32 nx = E.held_next[s];
            if (!A.h_released[s]) {
                E.rel_q.push_back(s);
                E.rel_hold_q.push_back((!E.r_on[j] && (ped || A.h_sost[s])) ? 1 : 0);
                E.rel_t.push_back(E.r_time[j]);
            }
            s = nx;
        }
        E.held_head[ck] = -1;
        if (!E.r_on[j]) continue;
        // the note-on's voices
        const i64 v0 = slot_of_first + kept_off[j - a], v1 = slot_of_first + kept_off[j - a + 1];
        for (i64 v = v0; v < v1; ++v) {
            if (E.held_head[ck] < 0) E.ck_touched.push_back(ck);
            E.held_next[v] = E.held_head[ck];
            E.held_head[ck] = (i32)v;
        }
        // exclusive classes: a new voice cuts the earlier voices of its class on its channel
        for (i64 v = v0; v < v1; ++v) {
            const i16 x = A.h_excl[v];
            if (x == 0) continue;
            std::vector<i32> &grp = E.excl_groups[c * 65536 + x];
            for (i32 o : grp) {
                if (A.h_note[o] >= A.h_note[v]) continue;   // same note: kept for the next one
                if (E.xk[o] == NEVER) E.ex_q.push_back(o);
                if (E.r_time[j] < E.xk[o]) E.xk[o] = E.r_time[j];
            }
            grp.erase(std::remove_if(grp.begin(), grp.end(),
                                     [&](i32 o) { return A.h_note[o] < A.h_note[v]; }),
                      grp.end());
        }
        for (i64 v = v0; v < v1; ++v)
            if (A.h_excl[v] != 0) E.excl_groups[c * 65536 + A.h_excl[v]].push_back((i32)v);
    }
}

// process the resolved run; returns false if the table needs more room (nothing changed)
static bool process_run(Engine &E) {
    const Args &A = *E.A;
    const i64 R = (i64)E.r_time.size();
    if (R == 0) return true;
    const i64 total = E.r_reg_off[R];
    if (*A.n + total > A.cap) {
        A.result[2] = *A.n + total;
        return false;
    }
    flush_dirty(E);
    const i64 t0 = E.r_time[0];
    const bool one_tick = (E.r_time[R - 1] - t0) < TICK && (t0 / TICK) == (E.r_time[R - 1] / TICK);
    const bool free_run = A.n_songs > 0 ||      // a group is kept below every song's limit
                          (!one_tick && A.max_key == 0 && sounding(E, t0) + total <= A.max_voices);
    const i64 note0 = A.counters[CN_NOTE_SEQ];
    std::vector<i64> kept_off;
    i64 a = 0;
    while (a < R) {
        const i64 tk = E.r_time[a] / TICK;
        i64 b = a + 1;
        while (b < R && E.r_time[b] / TICK == tk) ++b;
        // the tick's regions; more than the limit at once: the oldest are lost
        const i64 ra = E.r_reg_off[a], rb = E.r_reg_off[b];
        i64 drop = 0;
        if (!free_run && rb - ra > A.max_voices) {
            drop = (rb - ra) - A.max_voices;
            i64 lastj = -1;
            for (i64 j = a; j < b; ++j) {
                const i64 lo = std::max(E.r_reg_off[j], ra), hi = std::min(E.r_reg_off[j + 1], ra + drop);
                if (hi > lo && j != lastj) {
                    A.counters[CN_LOST] += 1;
                    lastj = j;
                }
            }
        }
        kept_off.assign(b - a + 1, 0);
        const i64 n0 = *A.n;
        i64 m = 0;
        for (i64 j = a; j < b; ++j) {
            kept_off[j - a] = m;
            for (i64 q = E.r_reg_off[j]; q < E.r_reg_off[j + 1]; ++q) {
                if (q < ra + drop) continue;
                const i64 s = n0 + m++;
                create_voice(E, s, E.r_regs[q], j, note0 + j);
                if (free_run) {
                    mark_dirty(E, s);
                    E.peak_pending.push_back(E.r_time[j]);
                    if (A.n_songs) E.peak_song.push_back(A.song_of_chan[E.r_chan[j]]);
                } else {
                    A.h_silent[s] = silent_of(A, s, VF<i64>(A, s, VO_RELEASE), VF<i64>(A, s, VO_KILL));
                }
                if (A.max_key > 0) E.cap_list[E.r_chan[j] * 128 + E.r_key[j]].push_back((i32)s);
            }
        }
        kept_off[b - a] = m;
        *A.n = n0 + m;
        if (!free_run) {
            // 1. per-key cap, each note-on with voices at its own time
            if (A.max_key > 0)
                for (i64 j = a; j < b; ++j)
                    if (kept_off[j - a + 1] > kept_off[j - a])
                        key_cap(E, E.r_chan[j] * 128 + E.r_key[j], note0 + j, E.r_time[j]);
            // 2. the steal at the tick's first note-on
            if (m > 0) {
                i64 jf = a;
                while (kept_off[jf - a + 1] == kept_off[jf - a]) ++jf;
                steal_at(E, n0, m, E.r_time[jf]);
            }
            for (i64 s = n0; s < n0 + m; ++s) fen_set(E, s);
        }
        // 3. releases and 4. exclusive cuts, queued in event order
        E.rel_q.clear(); E.rel_hold_q.clear(); E.rel_t.clear(); E.ex_q.clear();
        queue_key_events(E, a, b, n0, kept_off);
        for (size_t q = 0; q < E.rel_q.size(); ++q) {
            const i64 s = E.rel_q[q];
            if (A.h_killed[s]) continue;
            set_released(E, s);
            if (E.rel_hold_q[q]) {
                A.h_sustained[s] = 1;
                continue;
            }
            if (free_run) {
                release_lazy(E, s, E.rel_t[q]);
                continue;
            }
            i64 &rel = VF<i64>(A, s, VO_RELEASE);
            const i64 r = E.rel_t[q] < rel ? E.rel_t[q] : rel;
            // the end this release gives, with an exclusive cut of the same tick
            const i64 kl = VF<i64>(A, s, VO_KILL);
            const i64 sil = silent_of(A, s, r, E.xk[s] < kl ? E.xk[s] : kl);
            if (r != rel) A.h_changed[s] = 1;
            rel = r;
            env_times(E, s);
            A.h_sustained[s] = 0;
            A.h_silent[s] = sil;
            fen_set(E, s);
        }
        for (i64 s : E.ex_q) {
            kill_voice(E, s, E.xk[s]);
            E.xk[s] = NEVER;
        }
        a = b;
    }
    A.counters[CN_NOTE_SEQ] += R;
    return true;
}

// peak polyphony at the note-on times of steal-free runs, from the final closed-form ends:
// at each such time q, #(start <= q) - #(end <= q) over the table (end: the closed-form end, or
// the kill time of a killed voice), counted with a histogram over the window's frames (every q
// is inside the window)
// the window's frame histogram of #(start <= q) - #(end <= q) over the voices of song k (-1: all)
static void peak_hist(Engine &E, i64 k) {
    const Args &A = *E.A;
    const i64 n = *A.n, N = E.fen_n;
    std::vector<i64> &h = E.hist;
    h.assign(N + 1, 0);
    // voices of earlier windows started before this one: only their ends are read
    const i64 n0 = E.n_start < n ? E.n_start : n;
    for (i64 s = 0; s < n; ++s) {
        if (k >= 0 && A.song_of_chan[A.h_chan[s]] != k) continue;
        const i64 kl = A.h_killed[s] ? VF<i64>(A, s, VO_KILL) : NEVER;
        const i64 en = (A.h_silent[s] < kl ? A.h_silent[s] : kl) - A.B;
        const i64 st = s < n0 ? -1 : VF<i64>(A, s, VO_START) - A.B;
        if (st < N) h[st > 0 ? st : 0] += 1;
        if (en < N) h[en > 0 ? en : 0] -= 1;
    }
    for (i64 f = 1; f < N; ++f) h[f] += h[f - 1];
}

// peak polyphony at the note-on times of steal-free runs, from the final closed-form ends: at
// each such time q, #(start <= q) - #(end <= q) over the table (end: the closed-form end, or
// the kill time of a killed voice); in a group, per song over the song's voices
static void update_peak(Engine &E) {
    const Args &A = *E.A;
    if (E.peak_pending.empty()) return;
    i64 best = 0;
    if (A.n_songs == 0) {
        peak_hist(E, -1);
        for (i64 q : E.peak_pending) best = std::max(best, E.hist[q - A.B]);
    } else {
        std::vector<i64> order(E.peak_pending.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = (i64)i;
        std::stable_sort(order.begin(), order.end(),
                         [&](i64 a, i64 b) { return E.peak_song[a] < E.peak_song[b]; });
        i64 cur = -1;
        for (i64 i : order) {
            const i64 k = E.peak_song[i];
            if (k != cur) {
                peak_hist(E, k);
                cur = k;
            }
            const i64 c = E.hist[E.peak_pending[i] - A.B];
            if (c > A.song_peak[k]) A.song_peak[k] = c;
            best = std::max(best, c);
        }
    }
    if (best > A.counters[CN_PEAK]) A.counters[CN_PEAK] = best;
    E.peak_pending.clear();
    E.peak_song.clear();
}

// ------------------------------------------------------------------ entry points
extern "C" {

void *ce_new() { return new Engine(); }

// 1 when the caller's voice record has the layout compiled in here
int ce_layout(const i64 *voff, i64 vsize) {
    if (vsize != VSIZE) return 0;
    for (int f = 0; f < VO_COUNT; ++f)
        if (voff[f] != VOFF[f]) return 0;
    return 1;
}

// gpusynth.detmath in C, for the tests: out[i] = f(x[i]) (which: 0 exp2, 1 log10)
void ce_detmath(int which, const double *x, i64 n, double *out) {
    for (i64 i = 0; i < n; ++i) out[i] = which == 0 ? det_exp2(x[i]) : det_log10(x[i]);
}
void ce_free(void *h) { delete static_cast<Engine *>(h); }

// the bank set changed: forget what was looked up in the old tables
void ce_tables_changed(void *h) { static_cast<Engine *>(h)->group_of.clear(); }

// start a window: indexes from the table, the timeline from the channel state
void ce_begin(void *h, Args *A) {
    Engine &E = *static_cast<Engine *>(h);
    E.A = A;
    E.pos = 0;
    E.done_tick = 0;
    E.n_start = *A->n;
    E.run_ev.clear();
    E.run_pending = false;
    E.split = -1;
    E.peak_pending.clear();
    E.peak_song.clear();
    env_new_epoch(E);
    build_indexes(E);
}

// after the caller changed the state between steps (a SysEx applied): rebuild the indexes
void ce_resync(void *h, Args *A) {
    Engine &E = *static_cast<Engine *>(h);
    E.A = A;
    env_new_epoch(E);
    build_indexes(E);
}

// go on with the window's events; A->result[0]: ST_DONE, ST_SYSEX (A->result[1]: its event
// index, not yet applied; the timeline is filled up to its tick), ST_NEED_CAP (A->result[2]:
// the slots needed) or ST_LOG_FULL (drain the miss log)
void ce_step(void *h, Args *A) {
    Engine &E = *static_cast<Engine *>(h);
    E.A = A;
    env_new_epoch(E);
    if (A->cap != E.cap_seen) {
        E.cap_seen = A->cap;
        if ((i64)E.held_next.size() < A->cap) E.held_next.resize(A->cap);
        if ((i64)E.fen_val.size() < A->cap) E.fen_val.resize(A->cap, -1);
        if ((i64)E.xk.size() < A->cap) E.xk.resize(A->cap, NEVER);
        if ((i64)E.env.size() < A->cap) {
            E.env.resize(A->cap);
            E.env_epoch.resize(A->cap, 0u);
        }
    }
    A->result[0] = ST_DONE;
    for (;;) {
        if (E.run_pending) {
            if (!process_run(E)) {
                A->result[0] = ST_NEED_CAP;
                return;
            }
            E.run_pending = false;
            E.run_ev.clear();
            if (E.split >= 0) {
                const i64 i = E.split;
                E.split = -1;
                const Ev e = event_at(*A, i);
                const i64 t = e.time > A->B ? e.time : A->B;
                fill_timeline(E, (t - A->B) / TICK);
                E.pos = i + 1;
                if (e.status == SYSEX) {
                    A->result[0] = ST_SYSEX;
                    A->result[1] = i;
                    return;
                }
                channel_event(E, e, t);
            } else {
                E.pos = A->n_events;
            }
            continue;
        }
        if (E.pos >= A->n_events && E.run_ev.empty()) break;
        // collect the run up to the next split event, applying the others on the way
        i64 i = E.pos;
        for (; i < A->n_events; ++i) {
            const Ev e = event_at(*A, i);
            if (e.status == NOTE_ON || e.status == NOTE_OFF) {
                E.run_ev.push_back(i);
                continue;
            }
            if (is_split(e)) break;
            const i64 t = e.time > A->B ? e.time : A->B;
            fill_timeline(E, (t - A->B) / TICK);
            channel_event(E, e, t);
        }
        E.split = i < A->n_events ? i : -1;
        E.pos = i;
        if (!(A->n_songs ? resolve_run_group(E) : resolve_run(E))) {
            A->result[0] = ST_LOG_FULL;
            return;
        }
        E.run_pending = true;
    }
    fill_timeline(E, A->T);
    flush_dirty(E);
    update_peak(E);
}

// VoiceAllocator.remove after a window: the slots marked finished whose closed-form end is
// <= t_end leave; the tail voices move into the holes (voices.compaction_moves' order) in every
// column cols[k] (itemsize sizes[k]: the records and the control columns). Writes the moves to
// src/dst and returns their count; *n becomes the new count.
i64 ce_compact(i64 *n, i64 t_end, const u8 *finished, const i64 *silent, i64 ncols,
               char *const *cols, const i64 *sizes, i64 *src, i64 *dst) {
    const i64 n0 = *n;
    i64 gone = 0;
    for (i64 s = 0; s < n0; ++s) gone += finished[s] && silent[s] <= t_end;
    if (gone == 0) return 0;
    const i64 n1 = n0 - gone;
    i64 m = 0, t = n1;
    for (i64 h = 0; h < n1; ++h) {
        if (!(finished[h] && silent[h] <= t_end)) continue;
        while (finished[t] && silent[t] <= t_end) ++t;     // the next tail voice that stays
        src[m] = t++;
        dst[m++] = h;
    }
    for (i64 k = 0; k < ncols; ++k) {
        char *c = cols[k];
        const i64 z = sizes[k];
        switch (z) {
        case 1: for (i64 i = 0; i < m; ++i) c[dst[i]] = c[src[i]]; break;
        case 2: for (i64 i = 0; i < m; ++i) ((i16 *)c)[dst[i]] = ((i16 *)c)[src[i]]; break;
        case 4: for (i64 i = 0; i < m; ++i) ((i32 *)c)[dst[i]] = ((i32 *)c)[src[i]]; break;
        case 8: for (i64 i = 0; i < m; ++i) ((i64 *)c)[dst[i]] = ((i64 *)c)[src[i]]; break;
        default: for (i64 i = 0; i < m; ++i) std::memcpy(c + dst[i] * z, c + src[i] * z, z);
        }
    }
    *n = n1;
    return m;
}

}   // extern "C"
