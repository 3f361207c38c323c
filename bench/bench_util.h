/* Helpers every benchmark shares: the median of a few runs, a nanosecond
 * clock, a cheap random number generator, the timing of a batch of
 * worker threads, and a reader pod filled with a benchmark's keys. Header-only, so each benchmark stays one translation
 * unit the compiler can inline these into. */
#ifndef SC_BENCH_UTIL_H
#define SC_BENCH_UTIL_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <synccache/synccache.h>

#define MAX_RUNS 64

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n <= MAX_RUNS values; v is left as it was. */
static inline double median(const double *v, int n)
{
    double s[MAX_RUNS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* Nanoseconds on clock id: CLOCK_MONOTONIC for wall intervals,
 * CLOCK_THREAD_CPUTIME_ID for what one thread spent on a CPU. */
static inline uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

/* xorshift64*: a few cycles per key pick, so a loop that picks a key per
 * operation measures the cache, not the generator. s must not start at 0. */
static inline uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* A uniform index below n: a multiply and a shift instead of a division,
 * which would cost more than the rest of a key pick. */
static inline size_t rng_below(uint64_t *s, size_t n)
{
    return (size_t)(((__uint128_t)rng_next(s) * n) >> 64);
}

/* A distinct odd seed per worker per run (a Weyl sequence), so that no two
 * threads pick the same keys in step and xorshift never starts at 0. */
static inline uint64_t bench_next_seed(void)
{
    static uint64_t seed = 0x9e3779b97f4a7c15ull;
    seed += 0x632be59bd9b4e019ull;
    return seed | 1;
}

/* What one worker thread measures around its loop: wall stamps, and the
 * CPU time the thread itself spent in it. */
typedef struct bench_span {
    uint64_t t0, t1, cpu;
} bench_span;

/* Right before a worker's loop: the threads leave the barrier together,
 * then each stamps its start. Returns the thread's CPU clock, for
 * bench_span_end. */
static inline uint64_t bench_span_begin(bench_span *s, pthread_barrier_t *start)
{
    pthread_barrier_wait(start);
    uint64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    s->t0 = now_ns();
    return cpu0;
}

static inline void bench_span_end(bench_span *s, uint64_t cpu0)
{
    s->t1 = now_ns();
    s->cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
}

/* One timed batch: wall ns per operation per thread, CPU ns per operation
 * (the mean of the threads' own CPU time, which leaves out time the
 * scheduler gave to other processes on a shared machine) and total
 * operations per wall second. */
typedef struct bench_timing {
    double wall_ns, cpu_ns, ops_s;
} bench_timing;

/* The timing of n threads that ran ops operations each, from the first
 * start to the last end. */
static inline bench_timing bench_timing_of(const bench_span *s, int n, long ops)
{
    uint64_t t0 = UINT64_MAX, t1 = 0, cpu = 0;
    for (int i = 0; i < n; i++) {
        t0 = s[i].t0 < t0 ? s[i].t0 : t0;
        t1 = s[i].t1 > t1 ? s[i].t1 : t1;
        cpu += s[i].cpu;
    }
    double wall = (double)(t1 - t0);
    return (bench_timing){
        .wall_ns = wall / (double)ops, .cpu_ns = (double)cpu / n / (double)ops, .ops_s = (double)ops * n / wall * 1e9};
}

/* A reader pod on the Redis at port: its sc_set fills only its local tier,
 * so a million keys load in a second; policy and bound as given. */
static inline sc_options bench_reader_options(int port, const char *ns, sc_local_policy policy, size_t max_entries)
{
    sc_options o;
    sc_options_init(&o);
    o.redis_port = port;
    o.ns = ns;
    o.role = SC_ROLE_READER;
    o.local_policy = policy;
    o.local_max_entries = max_entries;
    return o;
}

/* Sets the n keys at keys, stride bytes apart, on c, each to value_len
 * bytes of 'v'. Returns how many were set: n, or the index of the first
 * sc_set that failed (its message is in sc_errmsg(c)). */
static inline size_t bench_fill(sc_cache *c, const char *keys, size_t stride, size_t n, size_t value_len)
{
    char *val = malloc(value_len ? value_len : 1);
    if (!val)
        return 0;
    memset(val, 'v', value_len);
    size_t i = 0;
    while (i < n && sc_set(c, keys + i * stride, val, value_len, 0) == SC_OK)
        i++;
    free(val);
    return i;
}

#endif
