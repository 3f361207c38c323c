/* bench/local_bench.c: micro-benchmark of the local store alone.
 *
 * usage: local_bench [--policy lru|lfu] [--keys N] [--value-size B]
 *                    [--threads T] [--rounds R]
 *
 * Fills a store bounded to 9N/8 entries with N keys, reports the memory the
 * fill took beyond the key and value bytes (malloc's own accounting via
 * mallinfo2, and the RSS growth), then times get hits on uniformly random
 * keys: hash + get + release, as the library does per local hit. Each round
 * is 1M gets per thread; the median round is reported, as ns per get for one
 * thread and as aggregate Mops/s for each thread count from 1 to T.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "local/local.h"

#define OPS_PER_ROUND 1000000ul

static size_t nkeys = 1000000;

/* Keys are "key:" plus 8 hex digits, built on the fly so the benchmark
 * touches no key array of its own. */
static size_t make_key(char *buf, uint64_t i)
{
    static const char hex[] = "0123456789abcdef";
    memcpy(buf, "key:", 4);
    for (int d = 0; d < 8; d++)
        buf[4 + d] = hex[(i >> (28 - 4 * d)) & 15];
    return 12;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * 4;
}

struct worker {
    sc__local *l;
    unsigned rounds;
    uint64_t seed;
    double *secs; /* one per round */
    pthread_barrier_t *barrier;
    unsigned long misses;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    uint64_t r = w->seed;
    char k[16];
    for (unsigned round = 0; round < w->rounds; round++) {
        pthread_barrier_wait(w->barrier);
        double t0 = now_s();
        for (unsigned long i = 0; i < OPS_PER_ROUND; i++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            size_t kl = make_key(k, (uint64_t)(((unsigned __int128)r * nkeys) >> 64));
            sc_value *v;
            if (sc__local_get(w->l, k, kl, sc__local_hash(k, kl), &v) == SC_OK)
                sc_value_release(v);
            else
                w->misses++;
        }
        w->secs[round] = now_s() - t0;
    }
    return NULL;
}

/* Median over rounds of the slowest thread's time: aggregate throughput. */
static double median_round(struct worker *w, unsigned threads, unsigned rounds)
{
    double *m = calloc(rounds, sizeof *m);
    for (unsigned r = 0; r < rounds; r++)
        for (unsigned t = 0; t < threads; t++)
            if (w[t].secs[r] > m[r])
                m[r] = w[t].secs[r];
    double med = median(m, (int)rounds);
    free(m);
    return med;
}

int main(int argc, char **argv)
{
    sc_local_policy policy = SC_LOCAL_LFU;
    size_t vsize = 16;
    unsigned threads = 2, rounds = 11;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--policy"))
            policy = strcmp(argv[i + 1], "lru") ? SC_LOCAL_LFU : SC_LOCAL_LRU;
        else if (!strcmp(argv[i], "--keys"))
            nkeys = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--value-size"))
            vsize = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--threads"))
            threads = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: local_bench [--policy lru|lfu] [--keys N] [--value-size B] "
                            "[--threads T] [--rounds R]\n");
            return 2;
        }
    }
    if (!nkeys || !threads || !rounds || rounds > MAX_RUNS)
        return 2;

    char *val = calloc(1, vsize + 1);
    memset(val, 'v', vsize);
    /* Bounds are enforced per shard (a shard gets its share of
     * max_entries), so the bound leaves room for the uneven spread of N keys
     * over the shards; every timed get is then a hit. */
    sc__local_config cfg = {.policy = policy, .max_entries = nkeys + nkeys / 8};
    struct mallinfo2 m0 = mallinfo2();
    long rss0 = rss_kb();
    sc__local *l = sc__local_new(&cfg);
    if (!l)
        return 1;
    char k[16];
    uint64_t payload = 0;
    double t0 = now_s();
    for (size_t i = 0; i < nkeys; i++) {
        size_t kl = make_key(k, i);
        sc_value *v = sc__value_new(val, vsize, 1);
        if (!v || sc__local_put(l, k, kl, sc__local_hash(k, kl), v, 0, 0, SC__PUT_FORCE) != SC_OK)
            return 1;
        sc_value_release(v);
        payload += kl + vsize;
    }
    double fill = now_s() - t0;
    struct mallinfo2 m1 = mallinfo2();
    long rss1 = rss_kb();
    sc__local_stats st;
    sc__local_stats(l, &st);
    double heap = (double)(m1.uordblks + m1.hblkhd) - (double)(m0.uordblks + m0.hblkhd);
    printf("policy %s keys %zu value %zu B: entries %llu, put %.0f ns/op\n",
           policy == SC_LOCAL_LRU ? "lru" : "lfu", nkeys, vsize, (unsigned long long)st.entries,
           fill * 1e9 / (double)nkeys);
    printf("overhead beyond key+value: %.1f B/entry (malloc'd, chunk headers included), "
           "%.1f B/entry (RSS)\n",
           (heap - (double)payload) / (double)st.entries,
           ((double)(rss1 - rss0) * 1024.0 - (double)payload) / (double)st.entries);

    double one = 0;
    for (unsigned n = 1; n <= threads; n++) {
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, n);
        struct worker *w = calloc(n, sizeof *w);
        pthread_t *tid = calloc(n, sizeof *tid);
        for (unsigned t = 0; t < n; t++) {
            w[t] = (struct worker){.l = l, .rounds = rounds, .seed = 88172645463325252ull + t * 7919,
                                   .secs = calloc(rounds, sizeof(double)), .barrier = &barrier};
            pthread_create(&tid[t], NULL, run, &w[t]);
        }
        unsigned long misses = 0;
        for (unsigned t = 0; t < n; t++) {
            pthread_join(tid[t], NULL);
            misses += w[t].misses;
        }
        double med = median_round(w, n, rounds);
        double mops = (double)n * OPS_PER_ROUND / med / 1e6;
        if (n == 1) {
            one = mops;
            printf("get hit, 1 thread: %.1f ns/op median (%.2f Mops/s)\n", med * 1e9 / OPS_PER_ROUND, mops);
        } else {
            printf("get hit, %u threads: %.2f Mops/s total, %.2fx one thread\n", n, mops, mops / one);
        }
        if (misses)
            printf("  (unexpected misses: %lu)\n", misses);
        for (unsigned t = 0; t < n; t++)
            free(w[t].secs);
        free(w);
        free(tid);
        pthread_barrier_destroy(&barrier);
    }
    sc__local_free(l);
    free(val);
    return 0;
}
