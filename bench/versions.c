/* bench/versions: what compare-and-set and batch reads cost (issue 9).
 *
 * Against a private redis-server on loopback, in one run:
 *  - per write: sc_set, sc_set_if_version (one script: check + write +
 *    event), and the raw hiredis baseline for a check-and-set, WATCH / GET /
 *    MULTI / SET / EXEC on a plain key;
 *  - per 100 keys that miss the local tier: sc_get_many (one round trip),
 *    100 sc_get calls, and a raw pipelined HMGET of the 100 hashes;
 *  - the same 100 keys in a namespace of 16 partitions: sc_get_many
 *    (grouped by node: one pipelined round trip on one Redis) against the
 *    per-partition path it replaced (one sc_get_many per partition's keys,
 *    one round trip each, one after the other).
 * Each figure is the median over --runs runs of the mean per operation.
 *
 * Usage: versions [--ops N] [--runs N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#include "bench_util.h"
#include "redis_cluster.h"

#define BATCH 100
#define PARTS 16

static sc_test_redis g_redis;
static sc_test_cluster g_cl;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "versions: %s: %s\n", what, detail ? detail : "");
    sc_test_redis_stop(&g_redis);
    sc_test_cluster_stop(&g_cl);
    exit(1);
}

static sc_cache *pod(const char *ns, size_t local_entries, unsigned partitions)
{
    sc_options o;
    sc_options_init(&o);
    o.ns = ns;
    o.redis_port = g_redis.port;
    o.local_max_entries = local_entries;
    o.partitions = partitions;
    if (g_cl.nodes) {
        o.redis_cluster_nodes = g_cl.seeds;
        o.redis_port = 1; /* ignored in cluster mode */
    }
    sc_cache *c;
    if (sc_open(&o, &c) != SC_OK)
        die("sc_open", sc_errmsg(NULL));
    return c;
}

static double bench_set(sc_cache *c, int ops)
{
    double t0 = now_us();
    for (int i = 0; i < ops; i++)
        if (sc_set(c, "k", "value-0123456789", 16, 0) != SC_OK)
            die("sc_set", sc_errmsg(c));
    return (now_us() - t0) / ops;
}

static double bench_cas(sc_cache *c, int ops)
{
    uint64_t v;
    if (sc_version_of(c, "k", &v) != SC_OK)
        die("sc_version_of", sc_errmsg(c));
    double t0 = now_us();
    for (int i = 0; i < ops; i++) {
        /* The expected version is known from the previous write, as an
         * application holding the value it read would know it. */
        if (sc_set_if_version(c, "k", "value-0123456789", 16, 0, v) != SC_OK)
            die("sc_set_if_version", sc_errmsg(c));
        sc_value *got;
        if (sc_get(c, "k", &got) != SC_OK)
            die("sc_get", sc_errmsg(c));
        v = sc_value_version(got);
        sc_value_release(got);
    }
    return (now_us() - t0) / ops;
}

static double bench_watch(redisContext *rc, int ops)
{
    double t0 = now_us();
    for (int i = 0; i < ops; i++) {
        redisReply *r;
        redisAppendCommand(rc, "WATCH rawcas");
        redisAppendCommand(rc, "GET rawcas");
        for (int k = 0; k < 2; k++) {
            if (redisGetReply(rc, (void **)&r) != REDIS_OK)
                die("WATCH/GET", rc->errstr);
            freeReplyObject(r);
        }
        redisAppendCommand(rc, "MULTI");
        redisAppendCommand(rc, "SET rawcas value-0123456789");
        redisAppendCommand(rc, "EXEC");
        for (int k = 0; k < 3; k++) {
            if (redisGetReply(rc, (void **)&r) != REDIS_OK)
                die("MULTI/SET/EXEC", rc->errstr);
            freeReplyObject(r);
        }
    }
    return (now_us() - t0) / ops;
}

/* 100 keys written by w, read by r whose local tier cannot hold them
 * (local_max_entries 1), so every read misses. */
static double bench_get_many(sc_cache *r, const char *const *keys, int rounds)
{
    sc_value *out[BATCH];
    double t0 = now_us();
    for (int i = 0; i < rounds; i++) {
        if (sc_get_many(r, keys, BATCH, out) != SC_OK)
            die("sc_get_many", sc_errmsg(r));
        for (int k = 0; k < BATCH; k++)
            sc_value_release(out[k]);
    }
    return (now_us() - t0) / rounds;
}

/* docs/protocol.md, "Partitions": FNV-1a 32 of the key mod the count. */
static unsigned partition_of(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
        h ^= *k;
        h *= 16777619u;
    }
    return h % PARTS;
}

/* The per-partition path: one sc_get_many per partition holding keys, in
 * turn (what a partitioned sc_get_many did before it grouped by node). */
static double bench_get_many_per_part(sc_cache *r, const char *const *keys, int rounds)
{
    const char *sub[PARTS][BATCH];
    size_t n[PARTS] = {0};
    for (int k = 0; k < BATCH; k++) {
        unsigned p = partition_of(keys[k]);
        sub[p][n[p]++] = keys[k];
    }
    sc_value *out[BATCH];
    double t0 = now_us();
    for (int i = 0; i < rounds; i++)
        for (unsigned p = 0; p < PARTS; p++) {
            if (n[p] == 0)
                continue;
            if (sc_get_many(r, sub[p], n[p], out) != SC_OK)
                die("sc_get_many", sc_errmsg(r));
            for (size_t k = 0; k < n[p]; k++)
                sc_value_release(out[k]);
        }
    return (now_us() - t0) / rounds;
}

static double bench_get_loop(sc_cache *r, const char *const *keys, int rounds)
{
    double t0 = now_us();
    for (int i = 0; i < rounds; i++)
        for (int k = 0; k < BATCH; k++) {
            sc_value *v;
            if (sc_get(r, keys[k], &v) != SC_OK)
                die("sc_get", sc_errmsg(r));
            sc_value_release(v);
        }
    return (now_us() - t0) / rounds;
}

static double bench_hmget(redisContext *rc, const char *ns, const char *const *keys, int rounds)
{
    double t0 = now_us();
    for (int i = 0; i < rounds; i++) {
        for (int k = 0; k < BATCH; k++)
            redisAppendCommand(rc, "HMGET {%s}:k:%s value version", ns, keys[k]);
        for (int k = 0; k < BATCH; k++) {
            redisReply *r;
            if (redisGetReply(rc, (void **)&r) != REDIS_OK)
                die("HMGET", rc->errstr);
            freeReplyObject(r);
        }
    }
    return (now_us() - t0) / rounds;
}

int main(int argc, char **argv)
{
    int ops = 2000, runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ops"))
            ops = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
    }
    if (ops < 1 || runs < 1 || runs > MAX_RUNS)
        die("usage", "versions [--ops N] [--runs 1..64]");
    if (sc_test_redis_start(&g_redis, NULL) != 0)
        die("redis-server", "cannot start");
    sc_cache *w = pod("bench_v", 10000, 1), *r = pod("bench_v", 1, 1);
    /* Partitioned: every partition's local tier holds one entry, so nearly
     * every read misses (at most one key per partition hits). */
    sc_cache *pw = pod("bench_vp", 10000, PARTS), *pr = pod("bench_vp", 1, PARTS);
    redisContext *rc = sc_test_redis_connect(&g_redis);
    if (!rc)
        die("connect", "");
    static char names[BATCH][16];
    const char *keys[BATCH];
    for (int k = 0; k < BATCH; k++) {
        snprintf(names[k], sizeof names[k], "m%d", k);
        keys[k] = names[k];
        if (sc_set(w, keys[k], "value-0123456789", 16, 0) != SC_OK ||
            sc_set(pw, keys[k], "value-0123456789", 16, 0) != SC_OK)
            die("sc_set", sc_errmsg(w));
    }
    int rounds = ops / 20 > 0 ? ops / 20 : 1;
    double set[MAX_RUNS], cas[MAX_RUNS], watch[MAX_RUNS], many[MAX_RUNS], loop[MAX_RUNS], hmget[MAX_RUNS];
    double pmany[MAX_RUNS], pper[MAX_RUNS];
    for (int i = 0; i < runs; i++) {
        set[i] = bench_set(w, ops);
        cas[i] = bench_cas(w, ops);
        watch[i] = bench_watch(rc, ops);
        many[i] = bench_get_many(r, keys, rounds);
        loop[i] = bench_get_loop(r, keys, rounds);
        hmget[i] = bench_hmget(rc, "bench_v", keys, rounds);
        pper[i] = bench_get_many_per_part(pr, keys, rounds);
        pmany[i] = bench_get_many(pr, keys, rounds);
    }
    double ms = median(set, runs), mc = median(cas, runs), mw = median(watch, runs);
    double mm = median(many, runs), ml = median(loop, runs), mh = median(hmget, runs);
    printf("| operation | median µs | ratio |\n|---|---|---|\n");
    printf("| `sc_set` | %.1f | 1.00x |\n", ms);
    printf("| `sc_set_if_version` (+ `sc_get` for the next expected version) | %.1f | %.2fx of sc_set |\n", mc,
           mc / ms);
    printf("| raw WATCH/GET/MULTI/SET/EXEC | %.1f | %.2fx of sc_set |\n", mw, mw / ms);
    printf("| `sc_get_many`, %d local misses | %.1f | 1.00x |\n", BATCH, mm);
    printf("| %d x `sc_get`, local misses | %.1f | %.2fx of sc_get_many |\n", BATCH, ml, ml / mm);
    printf("| raw pipelined HMGET x %d | %.1f | %.2fx of sc_get_many |\n", BATCH, mh, mh / mm);
    redisFree(rc);
    sc_close(w);
    sc_close(r);
    sc_close(pw);
    sc_close(pr);
    sc_test_redis_stop(&g_redis);

    /* The partitioned rows again on a cluster of three masters. */
    double cper[MAX_RUNS], cmany[MAX_RUNS];
    int cluster = sc_test_cluster_start(&g_cl, 3, 0) == 0;
    if (cluster) {
        sc_cache *cw = pod("bench_vc", 10000, PARTS), *cr = pod("bench_vc", 1, PARTS);
        for (int k = 0; k < BATCH; k++)
            if (sc_set(cw, keys[k], "value-0123456789", 16, 0) != SC_OK)
                die("sc_set", sc_errmsg(cw));
        for (int i = 0; i < runs; i++) {
            cper[i] = bench_get_many_per_part(cr, keys, rounds);
            cmany[i] = bench_get_many(cr, keys, rounds);
        }
        sc_close(cw);
        sc_close(cr);
        sc_test_cluster_stop(&g_cl);
    }

    double mp = median(pper, runs), mg = median(pmany, runs);
    printf("| %u partitions: per-partition path (%u x `sc_get_many`, one round trip each) | %.1f | 1.00x |\n", PARTS,
           PARTS, mp);
    printf("| %u partitions: `sc_get_many` grouped by node (one pipelined round trip) | %.1f | %.2fx of "
           "per-partition |\n",
           PARTS, mg, mg / mp);
    if (cluster) {
        double cp = median(cper, runs), cg = median(cmany, runs);
        printf("| cluster, 3 masters, %u partitions: per-partition path | %.1f | 1.00x |\n", PARTS, cp);
        printf("| cluster, 3 masters, %u partitions: `sc_get_many` grouped by node (one round trip per master) "
               "| %.1f | %.2fx of per-partition |\n",
               PARTS, cg, cg / cp);
    } else
        printf("| cluster rows | skipped: the cluster did not start | |\n");
    printf("\n(%d runs, %d writes and %d batches per run; medians of per-operation means)\n", runs, ops, rounds);
    return 0;
}
