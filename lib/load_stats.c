/* Load statistics of sc_fetch (singleflight_cache's cycles, made exact).
 *
 * Exact counts without a lock on the hit path: every thread that fetches
 * keeps a record of its own per cache, written only by that thread under a
 * sequence lock (the count is odd while the thread writes; a write is a few
 * plain stores on x86, no locked instruction, no cache line another thread
 * writes). The time that decides an outcome's window is read inside the
 * write, so a record's outcomes enter its windows in timestamp order and
 * none lands in a window that already ended. A reader takes the cache's
 * mutex (which also guards the list of records), reads the clock once, and
 * copies each record whole (hits, misses and times of one moment, retried
 * while its thread writes), rolls the copy to that moment and sums: no
 * outcome is missing or counted twice. (The copies are taken one after
 * another, not at one instant: an outcome on one thread may be counted
 * while an earlier one on another is not yet; the next read has both.
 * singleflight_cache rolls its cycle from a timer racing the counters, so
 * an outcome can fall between two cycles or be counted in both.) Windows
 * are stats_window_ms long, numbered from the creation (sc_open); a window
 * with no outcome still ends on time: the reader rolls it too.
 *
 * A thread's record outlives the thread (its counts stay in the totals); a
 * new thread with the same id adopts it. A thread that cannot allocate its
 * record writes a shared one under the mutex instead. Records are only
 * ever added (under the mutex, at the head), so a thread finds its own by
 * walking the list without the mutex; only one with its id adds one.
 *
 * Windows are dated with the coarse clock (sc__now_ms: one scheduler tick,
 * read without the hardware counter), durations with sc__mono_ns. A hit of
 * sc_fetch is timed one time in HIT_SAMPLE on each thread, and that hit's
 * time stands for HIT_SAMPLE hits: the two precise clock reads cost more
 * than the hit itself and, in a VM, stop the CPU from overlapping the
 * lookup's cache misses with anything (bench/localhit). Hit counts stay
 * exact; hit_ns is an estimate, rough below a few hundred hits.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/internal.h"

enum { HITS, MISSES, ERRORS, MANUAL, HIT_NS, MISS_NS, NFIELDS };
typedef _Atomic uint64_t counts[NFIELDS];

#define HIT_SAMPLE 16
#define CACHED 8 /* records a thread finds without walking the list, one per cache */

/* On cache lines of its own: only its thread writes it. */
typedef struct record {
    _Alignas(64) _Atomic uint64_t seq; /* odd while the owner writes */
    _Atomic uint64_t cur_idx;          /* index of this record's CURRENT window */
    _Atomic uint64_t cur_end_ms;       /* when CURRENT ends (0: not dated); an atomic
                                          only for the thread that adopts the record */
    counts total, cur, last;
    pthread_t owner;     /* set before the record is published, then fixed */
    struct record *next; /* likewise */
} record;

struct sc__load_stats {
    uint64_t id;                  /* never reused: a thread's cached record pointer names it */
    uint64_t start_ms, window_ms; /* sc__now_ms() */
    pthread_mutex_t mu;           /* readers, additions to the list and the spill record */
    _Atomic(record *) records;    /* newest first; a record never leaves before the end */
    record spill;
};

static atomic_uint_fast64_t next_id = 1;

sc__load_stats *sc__load_stats_new(uint64_t window_ms)
{
    sc__load_stats *s = aligned_alloc(_Alignof(sc__load_stats), sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->id = atomic_fetch_add(&next_id, 1);
    s->start_ms = sc__now_ms();
    s->window_ms = window_ms ? window_ms : 1;
    return s;
}

void sc__load_stats_free(sc__load_stats *s)
{
    if (!s)
        return;
    for (record *r = atomic_load(&s->records), *next; r; r = next) {
        next = r->next;
        free(r);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static uint64_t get(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void put(_Atomic uint64_t *v, uint64_t x)
{
    atomic_store_explicit(v, x, memory_order_relaxed);
}

static uint64_t window_of(const sc__load_stats *s, uint64_t now_ms)
{
    return now_ms > s->start_ms ? (now_ms - s->start_ms) / s->window_ms : 0;
}

/* The owner, inside its write: moves CURRENT forward to the window holding
 * now_ms (a comparison while it is still there: no division per hit). */
static inline void roll(const sc__load_stats *s, record *r, uint64_t now_ms)
{
    if (now_ms < get(&r->cur_end_ms))
        return;
    uint64_t idx = window_of(s, now_ms), cur = get(&r->cur_idx);
    put(&r->cur_end_ms, s->start_ms + (idx + 1) * s->window_ms);
    if (idx <= cur)
        return;
    /* The window before idx is LAST: the current one if it just ended,
     * else an empty one (nothing happened in it). */
    for (int f = 0; f < NFIELDS; f++) {
        put(&r->last[f], idx == cur + 1 ? get(&r->cur[f]) : 0);
        put(&r->cur[f], 0);
    }
    put(&r->cur_idx, idx);
}

static inline void bump(counts k, int field, uint64_t by)
{
    put(&k[field], get(&k[field]) + by);
}

static void add(counts k, const uint64_t n[SC__LOAD_OUTCOMES], uint64_t ns)
{
    bump(k, HITS, n[SC__LOAD_HIT]);
    bump(k, MISSES, n[SC__LOAD_MISS]);
    bump(k, ERRORS, n[SC__LOAD_ERROR]);
    bump(k, MANUAL, n[SC__LOAD_MANUAL]);
    bump(k, HIT_NS, n[SC__LOAD_HIT] * ns);
    bump(k, MISS_NS, n[SC__LOAD_MISS] * ns);
}

/* A write of r: its owner's, or the spill record's under the mutex. A
 * sequence-lock write (Boehm, "Can seqlocks get along with programming
 * language memory models?"): the count odd, then the fields, then the
 * count even again; dated inside, so outcomes enter windows in order. */
static inline uint64_t write_begin(const sc__load_stats *s, record *r)
{
    uint64_t seq = get(&r->seq);
    put(&r->seq, seq + 1);
    atomic_thread_fence(memory_order_release);
    roll(s, r, sc__now_ms());
    return seq;
}

static inline void write_end(record *r, uint64_t seq)
{
    atomic_store_explicit(&r->seq, seq + 2, memory_order_release);
}

/* n outcomes, each hit and miss taking ns, into r. */
static void record_add(const sc__load_stats *s, record *r, const uint64_t n[SC__LOAD_OUTCOMES], uint64_t ns)
{
    uint64_t seq = write_begin(s, r);
    add(r->total, n, ns);
    add(r->cur, n, ns);
    write_end(r, seq);
}

/* This thread's record in s, made (or adopted from an exited thread with
 * the same id) on first use; NULL when none could be made. */
static record *mine_slow(sc__load_stats *s)
{
    pthread_t self = pthread_self();
    for (record *r = atomic_load_explicit(&s->records, memory_order_acquire); r; r = r->next)
        if (pthread_equal(r->owner, self))
            return r;
    /* None: no other thread can add one with this id meanwhile. */
    record *r = aligned_alloc(_Alignof(record), sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->owner = self;
    pthread_mutex_lock(&s->mu);
    r->next = atomic_load_explicit(&s->records, memory_order_relaxed);
    atomic_store_explicit(&s->records, r, memory_order_release);
    pthread_mutex_unlock(&s->mu);
    return r;
}

static inline record *mine(sc__load_stats *s)
{
    static _Thread_local __attribute__((tls_model("initial-exec"))) struct {
        uint64_t id;
        record *r;
    } cache[CACHED];
    unsigned i = (unsigned)(s->id % CACHED);
    if (__builtin_expect(cache[i].id == s->id, 1))
        return cache[i].r;
    record *r = mine_slow(s);
    if (r) {
        cache[i].id = s->id;
        cache[i].r = r;
    }
    return r;
}

/* A thread without a record of its own (none could be allocated). */
static void spill_add(sc__load_stats *s, const uint64_t n[SC__LOAD_OUTCOMES], uint64_t ns)
{
    pthread_mutex_lock(&s->mu);
    record_add(s, &s->spill, n, ns);
    pthread_mutex_unlock(&s->mu);
}

void sc__load_stats_add(sc__load_stats *s, const uint64_t n[SC__LOAD_OUTCOMES], uint64_t since_ns)
{
    if (!s)
        return;
    uint64_t ns = 0;
    if (n[SC__LOAD_HIT] || n[SC__LOAD_MISS]) { /* the only outcomes with a time */
        uint64_t now = sc__mono_ns();
        ns = now > since_ns ? now - since_ns : 0;
    }
    record *r = mine(s);
    if (__builtin_expect(r != NULL, 1))
        record_add(s, r, n, ns);
    else
        spill_add(s, n, ns);
}

uint64_t sc__load_stats_hit_begin(void)
{
    static _Thread_local __attribute__((tls_model("initial-exec"))) unsigned hits;
    return hits++ % HIT_SAMPLE == 0 ? sc__mono_ns() : 0;
}

void sc__load_stats_hit(sc__load_stats *s, uint64_t began_ns)
{
    if (!s)
        return;
    uint64_t ns = 0;
    if (began_ns) {
        uint64_t now = sc__mono_ns();
        ns = (now > began_ns ? now - began_ns : 0) * HIT_SAMPLE;
    }
    record *r = mine(s);
    if (__builtin_expect(r == NULL, 0)) {
        static const uint64_t one_hit[SC__LOAD_OUTCOMES] = {[SC__LOAD_HIT] = 1};
        spill_add(s, one_hit, ns);
        return;
    }
    /* The common case, written out: one hit (82 instructions a hit, against
     * 150 through record_add and add; callgrind). */
    uint64_t seq = write_begin(s, r);
    bump(r->total, HITS, 1);
    bump(r->cur, HITS, 1);
    if (ns) {
        bump(r->total, HIT_NS, ns);
        bump(r->cur, HIT_NS, ns);
    }
    write_end(r, seq);
}

/* Adds record r's counts of window w, as of window idx, to sum; 0, or -1
 * when r has moved past idx (its thread read the clock after the reader:
 * the reader reads the clock again). */
static int record_sum(const record *r, sc_window w, uint64_t idx, uint64_t sum[NFIELDS])
{
    uint64_t copy[NFIELDS], at;
    for (;;) {
        uint64_t seq = atomic_load_explicit(&r->seq, memory_order_acquire);
        if (!(seq & 1)) {
            at = get(&r->cur_idx);
            for (int f = 0; f < NFIELDS; f++) {
                /* CURRENT and LAST of window idx: CURRENT if the record is
                 * in it, LAST from the record's CURRENT if it just ended;
                 * nothing happened in the others. */
                const _Atomic uint64_t *v = w == SC_WINDOW_TOTAL                   ? &r->total[f]
                                            : at == idx && w == SC_WINDOW_CURRENT  ? &r->cur[f]
                                            : at == idx                            ? &r->last[f]
                                            : at + 1 == idx && w == SC_WINDOW_LAST ? &r->cur[f]
                                                                                   : NULL;
                copy[f] = v ? get(v) : 0;
            }
            atomic_thread_fence(memory_order_acquire);
            if (get(&r->seq) == seq)
                break;
        }
        sched_yield(); /* its thread is writing (or was preempted inside) */
    }
    if (at > idx)
        return -1;
    for (int f = 0; f < NFIELDS; f++)
        sum[f] += copy[f];
    return 0;
}

void sc__load_stats_read(sc__load_stats *s, sc_window w, sc_load_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s || (w != SC_WINDOW_TOTAL && w != SC_WINDOW_CURRENT && w != SC_WINDOW_LAST))
        return;
    uint64_t k[NFIELDS];
    pthread_mutex_lock(&s->mu);
    for (int again = 1; again;) {
        memset(k, 0, sizeof k);
        uint64_t idx = window_of(s, sc__now_ms());
        again = record_sum(&s->spill, w, idx, k);
        for (const record *r = atomic_load(&s->records); r && !again; r = r->next)
            again = record_sum(r, w, idx, k);
    }
    pthread_mutex_unlock(&s->mu);
    out->hits = k[HITS];
    out->misses = k[MISSES];
    out->errors = k[ERRORS];
    out->manual_misses = k[MANUAL];
    out->hit_ns = k[HIT_NS];
    out->miss_ns = k[MISS_NS];
    uint64_t all = k[HITS] + k[MISSES] + k[ERRORS];
    if (all) {
        out->hit_rate = (double)k[HITS] / (double)all;
        out->error_rate = (double)k[ERRORS] / (double)all;
    }
    if (k[HITS])
        out->hit_avg_ns = (double)k[HIT_NS] / (double)k[HITS];
    if (k[MISSES])
        out->miss_avg_ns = (double)k[MISS_NS] / (double)k[MISSES];
}
