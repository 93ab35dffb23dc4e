/* Standard MIDI File decoder for gpusynth.smf (the "native" decoder).
 *
 * Two jobs, both over a read-only byte buffer the caller owns (an mmap or a bytes object):
 *
 *   smf_scan_track   one pass over one MTrk body: end reason, tick of the last event, counts,
 *                    tempo events, split-SysEx continuation packets, illegal/short-tempo
 *                    statistics (the chunk index itself is walked in Python).
 *   smf_cursor_*     a resumable decoder per track (byte position, tick, running status, port
 *                    group, tempo segment, pending split SysEx) and a k-way merge of the tracks
 *                    through a binary heap keyed by (sample time, track index), writing
 *                    EVENT_DTYPE records (19 packed bytes) into a buffer the caller owns.
 *
 * The parse rules are those of gpusynth/smf.py (its pure-Python decoder is the reference) and
 * both decoders must give the same bits: the sample time of an event is computed with the same
 * IEEE operations as numpy (int64 numerator converted once and divided by 1e6*ppq, or the float
 * path for absurd tick values; then * rate and round half to even), so this file must be built
 * without FMA contraction (-ffp-contract=off) and without -ffast-math.
 *
 * Every read is bounds-checked against the track's end: arbitrary bytes never make it read
 * outside [body, end).  Declared in gpusynth/smf.py (NATIVE: flags, the ctypes signature of
 * every exported function) and built by gpusynth.compiled, as C++ (valid C as well).
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

#ifdef __cplusplus
#define SMF_API extern "C"
#else
#define SMF_API
#endif

/* data bytes after the system statuses F0..FF (-1: variable length) */
static const int8_t SYS_LEN[16] = {-1, 1, 2, 1, 0, 0, 0, -1, 0, 0, 0, 0, 0, 0, 0, -1};

static inline int data_len(unsigned s)
{
    if (s < 0x80) return -1;
    if (s < 0xC0) return 2;
    if (s < 0xE0) return 1;
    if (s < 0xF0) return 2;
    return SYS_LEN[s - 0xF0];
}

enum { END_EOT = 0, END_NOEOT = 1, END_TRUNC = 2, END_ERR = 3 };
enum { ERR_DELTA_VLQ = 1, ERR_NO_RUNNING = 2, ERR_LEN_VLQ = 3 };
enum { SX_COMPLETE = 0, SX_SPLIT = 1, SX_ESCAPE = 2 };

/* one decoded event that is kept (channel message or SysEx) */
typedef struct {
    int64_t tick;
    int64_t sxoff, sxlen;
    int32_t chan;
    uint8_t st, d1, d2, sxkind;
} Ev;

/* resumable per-track decoder state + its next event (cursor) */
typedef struct {
    int64_t pos, end, tick;
    int64_t map_off, nseg, seg;
    int64_t prev_time;
    int64_t sx_ord;
    double start;
    int32_t running, group, pending, fpath;
    int32_t done, pad;
    /* next event */
    int64_t ntime;
    Ev nev;
    int64_t nsxord;
} TrackCur;

/* scan results of one track; the layout is mirrored by SCAN_FIELDS in smf.py */
typedef struct {
    int64_t status, err_code, err_pos, err_byte, eot_end, trunc_pos;
    int64_t end_tick, last_tick, n_kept, n_notes, n_sysex, max_group;
    int64_t n_illegal, ill_status, ill_pos, n_short, short_pos;
    int64_t n_tempo, n_split;
} ScanOut;

typedef struct {
    ScanOut *o;
    int64_t *tempo, tempo_cap;   /* (tick, us per quarter) pairs */
    int64_t *split, split_cap;   /* (F0 data offset, continuation offset, length) triples */
    int64_t pending_off;
} Scan;

/* Decode up to the next kept event of track t. Returns 1 with *ev filled, 0 at the end of the
 * track (t->done set; the reason goes to sc->o when scanning). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int step(const uint8_t *d, TrackCur *t, Ev *ev, Scan *sc)
{
    int64_t pos = t->pos;
    const int64_t end = t->end;
    int64_t tick = t->tick;
    unsigned running = (unsigned)t->running;
    int64_t ev_start = pos;
    for (;;) {
        if (pos >= end) {
            if (sc) sc->o->status = END_NOEOT;
            goto finish;
        }
        ev_start = pos;
        unsigned b = d[pos++];
        if (b < 0x80) {
            tick += b;
        } else {
            int64_t dv = b & 0x7F;
            int k;
            for (k = 0; k < 3; k++) {
                if (pos >= end) goto truncated;
                b = d[pos++];
                dv = (dv << 7) | (b & 0x7F);
                if (b < 0x80) break;
            }
            if (k == 3) {
                if (sc) { sc->o->status = END_ERR; sc->o->err_code = ERR_DELTA_VLQ;
                          sc->o->err_pos = ev_start; }
                goto finish;
            }
            tick += dv;
        }
        if (pos >= end) goto truncated;
        unsigned s = d[pos];
        if (s < 0x80) {
            if (!running) {
                if (sc) { sc->o->status = END_ERR; sc->o->err_code = ERR_NO_RUNNING;
                          sc->o->err_pos = pos; sc->o->err_byte = s; }
                goto finish;
            }
            s = running;
        } else {
            pos++;
        }
        if (s < 0xF0) {
            running = s;
            int n = data_len(s);
            if (pos + n > end) goto truncated;
            ev->tick = tick;
            ev->st = (uint8_t)(s & 0xF0);
            ev->chan = t->group * 16 + (int32_t)(s & 0x0F);
            ev->d1 = (uint8_t)(d[pos] & 0x7F);
            ev->d2 = n == 2 ? (uint8_t)(d[pos + 1] & 0x7F) : 0;
            ev->sxkind = 0;
            pos += n;
            goto emit;
        }
        if (s == 0xFF || s == 0xF0 || s == 0xF7) {
            int mtype = 0;
            if (s == 0xFF) {
                if (pos >= end) goto truncated;
                mtype = d[pos++];
            }
            /* variable-length quantity: at most 4 bytes */
            int64_t len = 0;
            int k;
            for (k = 0; k < 4; k++) {
                if (pos >= end) goto truncated;
                unsigned c = d[pos++];
                len = (len << 7) | (c & 0x7F);
                if (c < 0x80) break;
            }
            if (k == 4) {
                if (sc) { sc->o->status = END_ERR; sc->o->err_code = ERR_LEN_VLQ;
                          sc->o->err_pos = ev_start; }
                goto finish;
            }
            if (len > end - pos) goto truncated;
            const int64_t dp = pos;
            pos += len;
            if (sc) sc->o->end_tick = tick;
            if (s == 0xFF) {
                if (mtype == 0x2F) {
                    if (sc) { sc->o->status = END_EOT; sc->o->eot_end = pos; }
                    goto finish;
                }
                if (mtype == 0x51) {
                    if (sc) {
                        if (len >= 3) {
                            int64_t i = sc->o->n_tempo++;
                            if (i < sc->tempo_cap) {
                                sc->tempo[2 * i] = tick;
                                sc->tempo[2 * i + 1] = ((int64_t)d[dp] << 16) |
                                                       ((int64_t)d[dp + 1] << 8) | d[dp + 2];
                            }
                        } else {
                            if (!sc->o->n_short) sc->o->short_pos = ev_start;
                            sc->o->n_short++;
                        }
                    }
                } else if (mtype == 0x21 && len >= 1) {
                    t->group = d[dp];
                }
                continue;
            }
            if (s == 0xF0) {
                int term = len > 0 && d[dp + len - 1] == 0xF7;
                t->pending = !term;
                if (sc && !term) sc->pending_off = dp;
                ev->tick = tick;
                ev->st = 0xF0;
                ev->chan = t->group * 16;
                ev->d1 = ev->d2 = 0;
                ev->sxkind = term ? SX_COMPLETE : SX_SPLIT;
                ev->sxoff = dp;
                ev->sxlen = len;
                goto emit;
            }
            /* F7 */
            if (t->pending) {
                if (sc && len > 0) {
                    int64_t i = sc->o->n_split++;
                    if (i < sc->split_cap) {
                        sc->split[3 * i] = sc->pending_off;
                        sc->split[3 * i + 1] = dp;
                        sc->split[3 * i + 2] = len;
                    }
                }
                if (len > 0 && d[dp + len - 1] == 0xF7) t->pending = 0;
                continue;
            }
            if (len >= 1 && d[dp] == 0xF0) {
                ev->tick = tick;
                ev->st = 0xF0;
                ev->chan = t->group * 16;
                ev->d1 = ev->d2 = 0;
                ev->sxkind = SX_ESCAPE;
                ev->sxoff = dp;
                ev->sxlen = len;
                goto emit;
            }
            if (len >= 2 && d[dp] >= 0x80 && d[dp] < 0xF0 && len == 1 + data_len(d[dp])) {
                unsigned es = d[dp];
                ev->tick = tick;
                ev->st = (uint8_t)(es & 0xF0);
                ev->chan = t->group * 16 + (int32_t)(es & 0x0F);
                ev->d1 = (uint8_t)(d[dp + 1] & 0x7F);
                ev->d2 = len == 3 ? (uint8_t)(d[dp + 2] & 0x7F) : 0;
                ev->sxkind = 0;
                goto emit;
            }
            continue;  /* other escapes: nothing for a player */
        }
        /* illegal in a file (F1-F6, F8-FE): skip it and its data bytes */
        {
            int n = data_len(s), k;
            for (k = 0; k < n; k++)
                if (pos < end && d[pos] < 0x80) pos++;
            if (sc) {
                sc->o->end_tick = tick;
                if (!sc->o->n_illegal) { sc->o->ill_status = s; sc->o->ill_pos = ev_start; }
                sc->o->n_illegal++;
            }
        }
    }
truncated:
    if (sc) { sc->o->status = END_TRUNC; sc->o->trunc_pos = ev_start; }
finish:
    t->pos = end;
    t->tick = tick;
    t->running = (int32_t)running;
    t->done = 1;
    return 0;
emit:
    t->pos = pos;
    t->tick = tick;
    t->running = (int32_t)running;
    return 1;
}

SMF_API int64_t smf_scan_fields(void) { return (int64_t)(sizeof(ScanOut) / sizeof(int64_t)); }
SMF_API int64_t smf_track_size(void) { return (int64_t)sizeof(TrackCur); }

/* Scan one track body d[body:end). out: ScanOut; returns out->status. */
SMF_API int64_t smf_scan_track(const uint8_t *d, int64_t body, int64_t end, int64_t *out,
                               int64_t *tempo, int64_t tempo_cap, int64_t *split,
                               int64_t split_cap)
{
    ScanOut *o = (ScanOut *)out;
    memset(o, 0, sizeof(*o));
    o->last_tick = -1;
    o->max_group = -1;
    Scan sc;
    sc.o = o;
    sc.tempo = tempo;
    sc.tempo_cap = tempo_cap;
    sc.split = split;
    sc.split_cap = split_cap;
    sc.pending_off = 0;
    TrackCur t;
    memset(&t, 0, sizeof(t));
    t.pos = body;
    t.end = end;
    Ev ev;
    int64_t n_kept = 0, n_notes = 0, n_sysex = 0, max_group = -1, last_tick = -1;
    while (step(d, &t, &ev, &sc)) {
        n_kept++;
        last_tick = ev.tick;
        if (ev.st == 0xF0) n_sysex++;
        else if (ev.st == 0x90 && ev.d2) n_notes++;
        if ((ev.chan >> 4) > max_group) max_group = ev.chan >> 4;
    }
    o->n_kept = n_kept;
    o->n_notes = n_notes;
    o->n_sysex = n_sysex;
    o->max_group = max_group;
    o->last_tick = last_tick;
    if (last_tick > o->end_tick) o->end_tick = last_tick;
    return o->status;
}

/* ------------------------------------------------------------------------- cursor + merge */

typedef struct { int64_t t, k; } HKey;  /* heap entry: (sample time, track) */

typedef struct {
    const uint8_t *data;
    TrackCur *tr;
    HKey *heap;
    int64_t ntracks, hn;
    const int64_t *st, *acc, *v;
    const double *accf, *vf;
    double scale, rate, smpte_div, smpte_k;
    int64_t smpte, den;
} Ctx;

SMF_API int64_t smf_ctx_size(void) { return (int64_t)sizeof(Ctx); }

static inline int64_t ev_time(const Ctx *c, TrackCur *t, int64_t tick)
{
    double secs;
    if (c->smpte) {
        if (t->fpath) secs = (double)tick * c->smpte_k;
        else secs = (double)(tick * c->den) / c->smpte_div;
    } else {
        const int64_t *st = c->st + t->map_off;
        int64_t s = t->seg;
        while (s + 1 < t->nseg && st[s + 1] <= tick) s++;
        t->seg = s;
        int64_t m = t->map_off + s;
        if (t->fpath) secs = (c->accf[m] + (double)(tick - st[s]) * c->vf[m]) / c->scale;
        else secs = (double)(c->acc[m] + (tick - st[s]) * c->v[m]) / c->scale;
    }
    secs = secs + t->start;
    /* round half to even (numpy's rint) in the default rounding mode: x >= 0 here, and
     * (x + 2**52) - 2**52 rounds it exactly when it is below 2**52 (above, x is integral) */
    double x = secs * c->rate;
    if (x < 4503599627370496.0) {
        double y = x + 4503599627370496.0;
        x = y - 4503599627370496.0;
    }
    int64_t r;
    if (x >= 9223372036854775808.0) r = INT64_MAX;
    else if (x >= -9223372036854775808.0) r = (int64_t)x;
    else r = INT64_MIN;
    if (r < t->prev_time) r = t->prev_time;  /* a track's times never go back */
    t->prev_time = r;
    return r;
}

static inline int advance(const Ctx *c, TrackCur *t)
{
    if (t->done) return 0;
    if (!step(c->data, t, &t->nev, 0)) return 0;
    t->ntime = ev_time(c, t, t->nev.tick);
    if (t->nev.st == 0xF0) t->nsxord = t->sx_ord++;
    return 1;
}

static inline int less(HKey a, HKey b)
{
    return (a.t < b.t) | ((a.t == b.t) & (a.k < b.k));
}

/* replace the top of the heap by x (Floyd: the hole goes down to a leaf along the smaller
 * children without comparing with x, then x goes up; the new key of a track is usually large) */
static inline void replace_top(HKey *h, int64_t n, HKey x)
{
    int64_t i = 0;
    for (;;) {
        int64_t l = 2 * i + 1;
        if (l >= n) break;
        int64_t m = l;
        if (l + 1 < n) m += less(h[l + 1], h[l]);
        h[i] = h[m];
        i = m;
    }
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!less(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void push(HKey *h, int64_t *n, HKey x)
{
    int64_t i = (*n)++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!less(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

/* ti: ntracks x 4 int64 (body, end, map offset, segments); fpath: per track; start: per track
 * seconds offset (format 2); dp: scale, rate, smpte_div, smpte_k; ip: smpte, den */
SMF_API void smf_cursor_init(void *ctxmem, const uint8_t *data, int64_t ntracks, void *trbuf,
                             void *heap, const int64_t *ti, const int64_t *fpath,
                             const double *start, const int64_t *st, const int64_t *acc,
                             const double *accf, const int64_t *v, const double *vf,
                             const double *dp, const int64_t *ip)
{
    Ctx *c = (Ctx *)ctxmem;
    memset(c, 0, sizeof(*c));
    c->data = data;
    c->tr = (TrackCur *)trbuf;
    c->heap = (HKey *)heap;
    c->ntracks = ntracks;
    c->st = st; c->acc = acc; c->accf = accf; c->v = v; c->vf = vf;
    c->scale = dp[0]; c->rate = dp[1]; c->smpte_div = dp[2]; c->smpte_k = dp[3];
    c->smpte = ip[0]; c->den = ip[1];
    memset(c->tr, 0, sizeof(TrackCur) * (size_t)ntracks);
    int64_t i;
    for (i = 0; i < ntracks; i++) {
        TrackCur *t = &c->tr[i];
        t->pos = ti[4 * i];
        t->end = ti[4 * i + 1];
        t->map_off = ti[4 * i + 2];
        t->nseg = ti[4 * i + 3];
        t->fpath = (int32_t)fpath[i];
        t->start = start[i];
        t->prev_time = INT64_MIN;
        if (advance(c, t)) {
            HKey k;
            k.t = t->ntime;
            k.k = i;
            push(c->heap, &c->hn, k);
        }
    }
}

static inline void put_event(uint8_t *o, const TrackCur *t, int32_t sx)
{
    memcpy(o, &t->ntime, 8);
    memcpy(o + 8, &t->nev.chan, 4);
    o[12] = t->nev.st;
    o[13] = t->nev.d1;
    o[14] = t->nev.d2;
    memcpy(o + 15, &sx, 4);
}

/* Write, in (time, track) order, the events with time < until: at most max_ev of them into
 * out (19-byte EVENT_DTYPE records) and at most sx_cap SysEx records (track, kind, data offset,
 * length, ordinal in its track) into sx. info[0] = SysEx records written, info[1] = time of
 * the next event left (INT64_MAX when none), info[2] = tracks with events left.
 * until = INT64_MAX: everything. Returns the number of events written. */
SMF_API int64_t smf_cursor_read(void *ctxmem, int64_t until, int64_t max_ev, uint8_t *out,
                                int64_t *sx, int64_t sx_cap, int64_t *info)
{
    Ctx *c = (Ctx *)ctxmem;
    TrackCur *tr = c->tr;
    HKey *h = c->heap;
    const int all = until == INT64_MAX;  /* everything, saturated times included */
    int64_t n = 0, nsx = 0;
    while (c->hn > 0 && n < max_ev) {
        const int64_t i = h[0].k;
        TrackCur *t = &tr[i];
        if (!all && t->ntime >= until) break;
        /* the best other track: events of track i before it go out without heap work */
        HKey other;
        other.t = INT64_MAX;
        other.k = INT64_MAX;
        if (c->hn > 1) {
            other = h[1];
            if (c->hn > 2 && less(h[2], other)) other = h[2];
        }
        int alive = 1, full = 0;
        for (;;) {
            int32_t sxi = -1;
            if (t->nev.st == 0xF0) {
                if (nsx >= sx_cap) { full = 1; break; }
                int64_t *r = sx + 5 * nsx;
                r[0] = i;
                r[1] = t->nev.sxkind;
                r[2] = t->nev.sxoff;
                r[3] = t->nev.sxlen;
                r[4] = t->nsxord;
                sxi = (int32_t)nsx++;
            }
            put_event(out + 19 * n, t, sxi);
            n++;
            if (!advance(c, t)) { alive = 0; break; }
            if (n >= max_ev) break;
            /* go on with this track while it stays first */
            if (!all && t->ntime >= until) break;
            HKey me;
            me.t = t->ntime;
            me.k = i;
            if (!less(me, other)) break;
        }
        if (alive) {
            HKey me;
            me.t = t->ntime;
            me.k = i;
            replace_top(h, c->hn, me);
        } else {
            c->hn--;
            if (c->hn > 0) replace_top(h, c->hn, h[c->hn]);
        }
        if (full) break;
    }
    info[0] = nsx;
    info[1] = c->hn > 0 ? h[0].t : INT64_MAX;
    info[2] = c->hn;
    return n;
}
