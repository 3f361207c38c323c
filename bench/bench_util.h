/* Helpers every benchmark shares: the median of a few runs, a nanosecond
 * clock and a cheap random number generator. Header-only, so each benchmark
 * stays one translation unit the compiler can inline these into. */
#ifndef SC_BENCH_UTIL_H
#define SC_BENCH_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

#endif
