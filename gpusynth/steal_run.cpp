// The per-tick voice-stealing loop of a run of note events (gpusynth/steal.py builds and calls
// it; gpusynth.steal.run_reference is the reference it is tested against, bit for bit).
//
// Everything that does not depend on which voices get stolen is computed beforehand in numpy
// (gpusynth.allocator.VoiceAllocator.run): the new voices' records and closed-form ends, which
// event releases which voice and the end it then gets, the exclusive-class cuts, the per-key
// cap queries. This loop only takes, tick by tick, the decisions that do: per-key cap kills,
// the steal at the tick's first note-on (score: channel priority, released before held, the
// closed-form level, older first), then the tick's releases (skipped for voices killed by
// then) and exclusive-class kills. Float32 arithmetic in the numpy reference's operation order
// (compiled with -ffp-contract=off, no fast-math): levels are bit-identical to envelope.exact.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "detmath.h"      // gs_cb_gain: the kernels' 2^x (kernels/detmath.h)
#include "env_exact.h"    // gs_env_exact: envelope.exact, shared with control_engine.cpp

typedef long long i64;
typedef unsigned char u8;


struct Plan {
    i64 n0, K;
    const i64 *tick_new, *t_first;
    const i64 *start;
    i64 *release, *kill;
    const float *delay, *attack, *hold, *k1000, *sus, *krel, *attg;
    const i64 *seq, *prio, *frel;
    u8 *released, *sustained, *killed;
    i64 *silent;
    const i64 *rel_ptr, *rel_slot, *rel_time;
    const u8 *rel_hold;
    const i64 *rel_silent;
    const i64 *ex_ptr, *ex_slot, *ex_time;
    i64 max_key;
    const i64 *kq_ptr, *kq_time, *kq_lo, *kq_hi, *kc_slot, *note;
    i64 max_voices, fade;
};

// envelope.level_at for one voice at frame t (envelope.exact x the static attenuation gain)
static inline float level_at(const Plan &P, i64 i, i64 t) {
    return gs_env_exact(t, P.start[i], P.delay[i], P.attack[i], P.hold[i], P.k1000[i], P.sus[i],
                        P.krel[i], P.release[i], P.kill[i], P.fade) * P.attg[i];
}

static inline void do_kill(const Plan &P, i64 s, i64 t) {
    if (t < P.kill[s]) P.kill[s] = t;
    P.killed[s] = 1;
    const i64 e = P.kill[s] + P.fade;
    if (e < P.silent[s]) P.silent[s] = e;
}

struct Cand {
    float lvl;
    i64 seq, slot;
};

extern "C" void steal_run(
    i64 n0, i64 K, const i64 *tick_new, const i64 *t_first,
    const i64 *start, i64 *release, i64 *kill,
    const float *delay, const float *attack, const float *hold, const float *k1000,
    const float *sus, const float *krel, const float *attg,
    const i64 *seq, const i64 *prio, const i64 *frel,
    u8 *released, u8 *sustained, u8 *killed, i64 *silent,
    const i64 *rel_ptr, const i64 *rel_slot, const i64 *rel_time, const u8 *rel_hold,
    const i64 *rel_silent,
    const i64 *ex_ptr, const i64 *ex_slot, const i64 *ex_time,
    i64 max_key, const i64 *kq_ptr, const i64 *kq_time, const i64 *kq_lo, const i64 *kq_hi,
    const i64 *kc_slot, const i64 *note,
    i64 max_voices, i64 fade, i64 *stats /* [stolen, peak] in/out */) {
    Plan P{n0, K, tick_new, t_first, start, release, kill, delay, attack, hold, k1000, sus, krel,
           attg, seq, prio, frel, released, sustained, killed, silent, rel_ptr, rel_slot,
           rel_time, rel_hold, rel_silent, ex_ptr, ex_slot, ex_time, max_key, kq_ptr, kq_time,
           kq_lo, kq_hi, kc_slot, note, max_voices, fade};
    i64 stolen = stats[0], peak = stats[1];
    std::vector<i64> playing, keys;
    std::vector<Cand> group;
    std::vector<i64> kill_notes;
    playing.reserve(8192);
    keys.reserve(8192);
    group.reserve(8192);
    for (i64 k = 0; k < K; ++k) {
        // ---- per-key cap: each note-on of the tick in order, at its own time
        if (max_key > 0) {
            for (i64 q = kq_ptr[k]; q < kq_ptr[k + 1]; ++q) {
                const i64 tq = kq_time[q];
                i64 count = 0, last = -1;
                for (i64 j = kq_lo[q]; j < kq_hi[q]; ++j) {
                    const i64 s = kc_slot[j];
                    if (!killed[s] && silent[s] > tq && note[s] != last) {
                        ++count;
                        last = note[s];
                    }
                }
                if (count < max_key) continue;
                i64 excess = count - max_key + 1;
                last = -1;
                for (i64 j = kq_lo[q]; j < kq_hi[q]; ++j) {
                    const i64 s = kc_slot[j];
                    if (killed[s] || silent[s] <= tq) continue;
                    if (note[s] != last) {
                        if (excess == 0) break;
                        --excess;
                        last = note[s];
                    }
                    do_kill(P, s, tq > start[s] ? tq : start[s]);
                    ++stolen;
                }
            }
        }
        // ---- the tick's new voices: steal at its first note-on
        const i64 M = tick_new[k + 1] - tick_new[k];
        if (M > 0) {
            const i64 nk = n0 + tick_new[k];
            const i64 tf = t_first[k];
            playing.clear();
            for (i64 s = 0; s < nk; ++s)
                if (!killed[s] && silent[s] > tf) playing.push_back(s);
            const i64 np_ = (i64)playing.size();
            const i64 steal = np_ + M - max_voices;
            if (steal > 0) {
                keys.resize(np_);
                for (i64 i = 0; i < np_; ++i) {
                    const i64 s = playing[i];
                    const bool rel = released[s] || frel[s] <= tf;
                    keys[i] = prio[s] * 2 + (rel ? 0 : 1);
                }
                std::vector<i64> kk(keys);
                std::nth_element(kk.begin(), kk.begin() + (steal - 1), kk.end());
                const i64 cut = kk[steal - 1];
                group.clear();
                i64 sure = 0;
                for (i64 i = 0; i < np_; ++i) {
                    if (keys[i] < cut) {
                        const i64 s = playing[i];
                        do_kill(P, s, tf > start[s] ? tf : start[s]);
                        ++sure;
                    } else if (keys[i] == cut) {
                        const i64 s = playing[i];
                        group.push_back(Cand{level_at(P, s, tf), seq[s], s});
                    }
                }
                const i64 r = steal - sure;
                auto less = [](const Cand &a, const Cand &b) {
                    return a.lvl < b.lvl || (!(b.lvl < a.lvl) && a.seq < b.seq);
                };
                if (r < (i64)group.size())
                    std::nth_element(group.begin(), group.begin() + r, group.end(), less);
                for (i64 i = 0; i < r; ++i) {
                    const i64 s = group[i].slot;
                    do_kill(P, s, tf > start[s] ? tf : start[s]);
                }
                stolen += steal;
            }
            const i64 now = np_ + M - (steal > 0 ? steal : 0);
            if (now > peak) peak = now;
        }
        // ---- releases (note-offs, retriggers): not for voices killed by now
        for (i64 j = rel_ptr[k]; j < rel_ptr[k + 1]; ++j) {
            const i64 s = rel_slot[j];
            if (killed[s]) continue;
            released[s] = 1;
            if (rel_hold[j]) {
                sustained[s] = 1;
            } else {
                if (rel_time[j] < release[s]) release[s] = rel_time[j];
                sustained[s] = 0;
                silent[s] = rel_silent[j];
            }
        }
        // ---- exclusive classes
        for (i64 j = ex_ptr[k]; j < ex_ptr[k + 1]; ++j) do_kill(P, ex_slot[j], ex_time[j]);
    }
    stats[0] = stolen;
    stats[1] = peak;
}
