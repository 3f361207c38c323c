/* Load statistics of sc_fetch (singleflight_cache's cycles, made exact).
 *
 * Exact counts: the counters live in stripes (a thread always uses the
 * same one, so hits on many threads do not share a lock or a cache line),
 * each with its own mutex and its own copy of the window state; the time
 * that decides an outcome's window is read inside the stripe's lock, so
 * within a stripe outcomes enter windows in timestamp order and none lands
 * in a window that already ended. A reader takes every stripe's lock (always in the same
 * order), reads the clock once, rolls every stripe to that moment and sums:
 * a consistent cut in which no outcome is missing or counted twice
 * (singleflight_cache rolls its cycle from a timer racing the counters, so
 * an outcome can fall between two cycles or be counted in both). Windows are
 * stats_window_ms long, numbered from the creation (sc_open); a window with
 * no outcome still ends on time: the reader rolls it too.
 *
 * Windows are dated with the coarse clock (sc__now_ms: one scheduler tick,
 * read without the hardware counter), durations with sc__mono_ns. A hit of
 * sc_fetch is timed one time in HIT_SAMPLE on each thread, and that hit's
 * time stands for HIT_SAMPLE hits: the two precise clock reads cost more
 * than the hit itself and, in a VM, stop the CPU from overlapping the
 * lookup's cache misses with anything (bench/localhit). Hit counts stay
 * exact; hit_ns is an estimate, rough below a few hundred hits.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/internal.h"

typedef struct counts {
    uint64_t hits, misses, errors, manual, hit_ns, miss_ns;
} counts;

#define STRIPES 16
#define HIT_SAMPLE 16

typedef struct stripe {
    pthread_mutex_t mu;
    uint64_t cur_idx;   /* index of this stripe's CURRENT window */
    counts total, cur, last;
    char pad[64];       /* keeps neighbouring stripes off one cache line */
} stripe;

struct sc__load_stats {
    uint64_t start_ms, window_ms; /* sc__now_ms() */
    stripe s[STRIPES];
};

sc__load_stats *sc__load_stats_new(uint64_t window_ms)
{
    sc__load_stats *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&s->s[i].mu, NULL);
    s->start_ms = sc__now_ms();
    s->window_ms = window_ms ? window_ms : 1;
    return s;
}

void sc__load_stats_free(sc__load_stats *s)
{
    if (!s)
        return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&s->s[i].mu);
    free(s);
}

/* Under the stripe's lock: moves its CURRENT forward to the window holding now. */
static void roll(const sc__load_stats *s, stripe *st, uint64_t now)
{
    uint64_t idx = now > s->start_ms ? (now - s->start_ms) / s->window_ms : 0;
    if (idx <= st->cur_idx)
        return;
    /* The window before idx is LAST: the current one if it just ended,
     * else an empty one (nothing happened in it). */
    if (idx == st->cur_idx + 1)
        st->last = st->cur;
    else
        memset(&st->last, 0, sizeof st->last);
    memset(&st->cur, 0, sizeof st->cur);
    st->cur_idx = idx;
}

static void add(counts *k, const uint64_t n[SC__LOAD_OUTCOMES], uint64_t ns)
{
    k->hits += n[SC__LOAD_HIT];
    k->hit_ns += n[SC__LOAD_HIT] * ns;
    k->misses += n[SC__LOAD_MISS];
    k->miss_ns += n[SC__LOAD_MISS] * ns;
    k->errors += n[SC__LOAD_ERROR];
    k->manual += n[SC__LOAD_MANUAL];
}

static void sum(counts *to, const counts *k)
{
    to->hits += k->hits;
    to->misses += k->misses;
    to->errors += k->errors;
    to->manual += k->manual;
    to->hit_ns += k->hit_ns;
    to->miss_ns += k->miss_ns;
}

/* This thread's stripe: handed out round-robin on first use. */
static unsigned my_stripe(void)
{
    static atomic_uint next;
    static _Thread_local unsigned mine;
    if (!mine)
        mine = atomic_fetch_add(&next, 1) % STRIPES + 1;
    return mine - 1;
}

/* n outcomes, each hit and miss taking ns, into stripe st: dated inside its
 * lock, so they enter its windows in order. */
static void stripe_add(sc__load_stats *s, stripe *st, const uint64_t n[SC__LOAD_OUTCOMES], uint64_t ns)
{
    pthread_mutex_lock(&st->mu);
    roll(s, st, sc__now_ms());
    add(&st->total, n, ns);
    add(&st->cur, n, ns);
    pthread_mutex_unlock(&st->mu);
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
    stripe_add(s, &s->s[my_stripe()], n, ns);
}

uint64_t sc__load_stats_hit_begin(void)
{
    static _Thread_local unsigned hits;
    return hits++ % HIT_SAMPLE == 0 ? sc__mono_ns() : 0;
}

void sc__load_stats_hit(sc__load_stats *s, uint64_t began_ns)
{
    if (!s)
        return;
    static const uint64_t one_hit[SC__LOAD_OUTCOMES] = {[SC__LOAD_HIT] = 1};
    uint64_t ns = 0;
    if (began_ns) {
        uint64_t now = sc__mono_ns();
        ns = (now > began_ns ? now - began_ns : 0) * HIT_SAMPLE;
    }
    stripe_add(s, &s->s[my_stripe()], one_hit, ns);
}

void sc__load_stats_read(sc__load_stats *s, sc_window w, sc_load_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s || (w != SC_WINDOW_TOTAL && w != SC_WINDOW_CURRENT && w != SC_WINDOW_LAST))
        return;
    counts k = {0};
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_lock(&s->s[i].mu);
    uint64_t now = sc__now_ms();
    for (int i = 0; i < STRIPES; i++) {
        stripe *st = &s->s[i];
        roll(s, st, now);
        sum(&k, w == SC_WINDOW_TOTAL ? &st->total : w == SC_WINDOW_CURRENT ? &st->cur : &st->last);
    }
    for (int i = STRIPES - 1; i >= 0; i--)
        pthread_mutex_unlock(&s->s[i].mu);
    out->hits = k.hits;
    out->misses = k.misses;
    out->errors = k.errors;
    out->manual_misses = k.manual;
    out->hit_ns = k.hit_ns;
    out->miss_ns = k.miss_ns;
    uint64_t all = k.hits + k.misses + k.errors;
    if (all) {
        out->hit_rate = (double)k.hits / (double)all;
        out->error_rate = (double)k.errors / (double)all;
    }
    if (k.hits)
        out->hit_avg_ns = (double)k.hit_ns / (double)k.hits;
    if (k.misses)
        out->miss_avg_ns = (double)k.miss_ns / (double)k.misses;
}
