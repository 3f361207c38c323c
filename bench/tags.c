/* bench/tags: what a tag invalidation costs (issue 13).
 *
 * Against a private redis-server on loopback, for N keys written with one
 * tag (N = 1,000, 10,000, 100,000 by default):
 *  - the sc_invalidate_tag call, from a pod that holds none of the keys
 *    locally (the Redis side alone: one script, whatever N) and from a pod
 *    that holds all N (it also drops its own copies before returning);
 *  - how long after the call returned another pod holding all N copies has
 *    dropped them (the event, then one index walk);
 *  - the price on the read path: a Redis read (sc_get on a local miss) of a
 *    key with one tag against an untagged key.
 * Each figure is the median over --runs runs.
 *
 * Usage: tags [--max N] [--runs N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#include "bench_util.h"
#include "redis_server.h"

static sc_test_redis g_redis;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "tags: %s: %s\n", what, detail ? detail : "");
    sc_test_redis_stop(&g_redis);
    exit(1);
}

static sc_cache *pod(const char *ns, size_t local_entries)
{
    sc_options o;
    sc_options_init(&o);
    o.ns = ns;
    o.redis_port = g_redis.port;
    o.local_max_entries = local_entries;
    o.local_max_bytes = 0;
    sc_cache *c;
    if (sc_open(&o, &c) != SC_OK)
        die("sc_open", sc_errmsg(NULL));
    return c;
}

static uint64_t entries(sc_cache *c)
{
    sc_stats st;
    sc_stats_get(c, &st);
    return st.local_entries;
}

/* Writes n keys with the tag from w; every pod in hold reads them all. */
static void fill(sc_cache *w, sc_cache **hold, int nhold, int n, const char *tag)
{
    const char *tags[] = {tag};
    char k[32];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "k%d", i);
        if (sc_set_tagged(w, k, "value-0123456789", 16, 0, tags, 1) != SC_OK)
            die("sc_set_tagged", sc_errmsg(w));
    }
    for (int p = 0; p < nhold; p++)
        for (int i = 0; i < n; i++) {
            sc_value *v;
            snprintf(k, sizeof k, "k%d", i);
            if (sc_get(hold[p], k, &v) != SC_OK)
                die("sc_get", sc_errmsg(hold[p]));
            sc_value_release(v);
        }
}

static void one_size(int n, int runs)
{
    double call_cold[MAX_RUNS], call_warm[MAX_RUNS], drop[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        char ns[64], tag[32];
        snprintf(ns, sizeof ns, "bench_tags_%d_%d", n, r);
        snprintf(tag, sizeof tag, "t%d", r);
        /* cold: the caller holds nothing (its local tier is off). */
        sc_cache *cold = pod(ns, 1);
        sc_cache *warm = pod(ns, (size_t)n * 2);
        sc_cache *other = pod(ns, (size_t)n * 2);
        sc_cache *hold[] = {warm, other};
        fill(warm, hold, 2, n, tag);
        double t0 = now_us();
        if (sc_invalidate_tag(cold, tag) != SC_OK)
            die("sc_invalidate_tag", sc_errmsg(cold));
        call_cold[r] = now_us() - t0;
        /* The others drop theirs on the event. */
        while (entries(warm) || entries(other)) {
            if (now_us() - t0 > 30e6)
                die("drop", "copies still held after 30 s");
        }
        drop[r] = now_us() - t0 - call_cold[r];
        /* warm: the caller holds all n copies and drops them itself. */
        fill(warm, hold, 1, n, tag);
        t0 = now_us();
        if (sc_invalidate_tag(warm, tag) != SC_OK)
            die("sc_invalidate_tag", sc_errmsg(warm));
        call_warm[r] = now_us() - t0;
        sc_close(cold);
        sc_close(warm);
        sc_close(other);
    }
    printf("| %d | %.0f | %.0f | %.0f |\n", n, median(call_cold, runs), median(call_warm, runs),
           median(drop, runs));
}

/* Mean us per sc_get cycling over n keys "<prefix><i>" on a pod whose local
 * tier holds one entry: nearly every get is a Redis read. */
static double read_cost(sc_cache *c, const char *prefix, int n, int ops)
{
    char k[32];
    double t0 = now_us();
    for (int i = 0; i < ops; i++) {
        sc_value *v;
        snprintf(k, sizeof k, "%s%d", prefix, i % n);
        if (sc_get(c, k, &v) != SC_OK)
            die("sc_get", sc_errmsg(c));
        sc_value_release(v);
    }
    return (now_us() - t0) / ops;
}

int main(int argc, char **argv)
{
    int max = 100000, runs = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--max") == 0)
            max = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
    }
    if (runs < 1 || runs > MAX_RUNS || max < 1)
        die("usage", "tags [--max N] [--runs 1..64]");
    if (sc_test_redis_start(&g_redis, "--save \"\" --appendonly no") != 0)
        die("redis-server", "cannot start");
    printf("| keys under the tag | sc_invalidate_tag, caller holds none (us) | caller holds all (us) | "
           "another pod holding all has dropped them, after the call returned (us) |\n|---|---|---|---|\n");
    for (int n = 1000; n <= max; n *= 10)
        one_size(n, runs);

    /* The read path: a local miss read from Redis, tagged or not. */
    sc_cache *w = pod("bench_tags_read", 1);
    const char *tags[] = {"t"};
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "tagged%d", i);
        if (sc_set_tagged(w, k, "value-0123456789", 16, 0, tags, 1) != SC_OK)
            die("set", sc_errmsg(w));
        snprintf(k, sizeof k, "plain%d", i);
        if (sc_set(w, k, "value-0123456789", 16, 0) != SC_OK)
            die("set", sc_errmsg(w));
    }
    double plain[MAX_RUNS], tagged[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        plain[r] = read_cost(w, "plain", 1000, 5000);
        tagged[r] = read_cost(w, "tagged", 1000, 5000);
    }
    sc_stats st;
    sc_stats_get(w, &st);
    printf("\n| Redis read (sc_get, local miss) | us per op |\n|---|---|\n| untagged key | %.1f |\n"
           "| key with one tag | %.1f |\n(local hits: %llu of %d gets)\n",
           median(plain, runs), median(tagged, runs), (unsigned long long)st.local_hits, 2 * 5000 * runs);
    sc_close(w);
    sc_test_redis_stop(&g_redis);
    return 0;
}
