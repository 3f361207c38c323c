/* Load statistics of sc_fetch (singleflight_cache's cycles, made exact).
 *
 * One mutex guards everything, and the time that decides an outcome's window
 * is read inside it, so outcomes enter windows in the order of their
 * timestamps: no outcome lands in a window that already ended, and a reader
 * never sees a half-rolled window (singleflight_cache rolls its cycle from a
 * timer racing the counters, so an outcome can fall between two cycles or
 * be counted in both). Windows are stats_window_ms long, numbered from the
 * creation (sc_open); a window with no outcome still ends on time: the
 * reader rolls it too.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/internal.h"

typedef struct counts {
    uint64_t hits, misses, errors, manual, hit_ns, miss_ns;
} counts;

struct sc__load_stats {
    pthread_mutex_t mu;
    uint64_t start_ns, window_ns;
    uint64_t cur_idx;   /* index of the CURRENT window */
    counts total, cur, last;
};

uint64_t sc__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

sc__load_stats *sc__load_stats_new(uint64_t window_ms)
{
    sc__load_stats *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->start_ns = sc__mono_ns();
    s->window_ns = (window_ms ? window_ms : 1) * 1000000u;
    return s;
}

void sc__load_stats_free(sc__load_stats *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Under mu: moves CURRENT forward to the window holding now. */
static void roll(sc__load_stats *s, uint64_t now)
{
    uint64_t idx = (now - s->start_ns) / s->window_ns;
    if (idx == s->cur_idx)
        return;
    /* The window before idx is LAST: the current one if it just ended,
     * else an empty one (nothing happened in it). */
    if (idx == s->cur_idx + 1)
        s->last = s->cur;
    else
        memset(&s->last, 0, sizeof s->last);
    memset(&s->cur, 0, sizeof s->cur);
    s->cur_idx = idx;
}

static void add(counts *k, sc__load_outcome o, uint64_t ns)
{
    switch (o) {
    case SC__LOAD_HIT:
        k->hits++;
        k->hit_ns += ns;
        break;
    case SC__LOAD_MISS:
        k->misses++;
        k->miss_ns += ns;
        break;
    case SC__LOAD_ERROR:
        k->errors++;
        break;
    case SC__LOAD_MANUAL:
        k->manual++;
        break;
    }
}

void sc__load_stats_add(sc__load_stats *s, sc__load_outcome o, uint64_t ns)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    roll(s, sc__mono_ns());
    add(&s->total, o, ns);
    add(&s->cur, o, ns);
    pthread_mutex_unlock(&s->mu);
}

void sc__load_stats_read(sc__load_stats *s, sc_window w, sc_load_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    counts k;
    pthread_mutex_lock(&s->mu);
    roll(s, sc__mono_ns());
    k = w == SC_WINDOW_TOTAL ? s->total : w == SC_WINDOW_CURRENT ? s->cur : w == SC_WINDOW_LAST ? s->last : (counts){0};
    pthread_mutex_unlock(&s->mu);
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
