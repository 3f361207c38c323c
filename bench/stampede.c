/* bench/stampede: a cache stampede on cold keys, with and without sc_fetch.
 *
 * 4 pods (in this process, each with its own sync thread and Redis pool)
 * x --threads threads each fetch the same --keys cold keys in the same order
 * (--shuffle 1: each thread in its own order), all starting together: each
 * key is asked for pods x threads times at about the same moment. The "database" is a read
 * that sleeps --db-us and counts its calls per key.
 *
 *  - fetch:    sc_fetch with the database read as the loader.
 *  - get+db:   the hand-written cache-aside that sc_fetch replaces: sc_get,
 *              and on SC_NOT_FOUND the database read, then sc_set.
 *
 * Reported per mode: database reads per key (mean and max; fetch must be
 * exactly 1), p50 / p99 latency of one fetch, and fetches per second; each
 * figure is the median over --runs runs (a fresh namespace per run).
 *
 * Usage: stampede [--keys N] [--threads N] [--db-us N] [--runs N] [--shuffle 0|1]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <synccache/synccache.h>

#include "bench_util.h"
#include "redis_server.h"

#define PODS 4

static sc_test_redis g_redis;
static int g_keys = 200, g_threads = 4, g_db_us = 2000, g_runs = 5, g_shuffle = 0;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "stampede: %s: %s\n", what, detail ? detail : "");
    sc_test_redis_stop(&g_redis);
    exit(1);
}

typedef struct run_state {
    atomic_int *db_reads;  /* per key */
    char (*names)[24];
    atomic_int go;
    int use_fetch;
} run_state;

typedef struct worker {
    run_state *rs;
    sc_cache *pod;
    unsigned seed;
    uint64_t *lat;         /* g_keys latencies in ns */
    int errors;
} worker;

static int key_index(const char *key)
{
    return atoi(key + 1);
}

/* The database: a read takes db_us and returns "row:<key>". */
static int db_read(run_state *rs, const char *key, char *out, size_t cap)
{
    atomic_fetch_add(&rs->db_reads[key_index(key)], 1);
    struct timespec ts = {0, (long)g_db_us * 1000L};
    nanosleep(&ts, NULL);
    return snprintf(out, cap, "row:%s", key);
}

static sc_status loader(const char *key, sc_loaded *slot, void *ud)
{
    char buf[64];
    int n = db_read(ud, key, buf, sizeof buf);
    sc_loaded_set(slot, buf, (size_t)n);
    return SC_OK;
}

static void *worker_main(void *p)
{
    worker *w = p;
    run_state *rs = w->rs;
    int *order = malloc((size_t)g_keys * sizeof *order);
    for (int i = 0; i < g_keys; i++)
        order[i] = i;
    for (int i = g_keys - 1; g_shuffle && i > 0; i--) {
        int j = (int)(rand_r(&w->seed) % (unsigned)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    while (!atomic_load(&rs->go)) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < g_keys; i++) {
        const char *key = rs->names[order[i]];
        sc_value *v = NULL;
        uint64_t t0 = now_ns();
        if (rs->use_fetch) {
            if (sc_fetch(w->pod, key, 600000, loader, rs, &v) != SC_OK)
                w->errors++;
        } else {
            sc_status s = sc_get(w->pod, key, &v);
            if (s == SC_NOT_FOUND) {
                char buf[64];
                int n = db_read(rs, key, buf, sizeof buf);
                if (sc_set(w->pod, key, buf, (size_t)n, 600000) != SC_OK)
                    w->errors++;
            } else if (s != SC_OK) {
                w->errors++;
            }
        }
        w->lat[i] = now_ns() - t0;
        sc_value_release(v);
    }
    free(order);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    double reads_mean, reads_max, p50_us, p99_us, per_sec;
    int errors;
} result;

static result one_run(int use_fetch, int run)
{
    char ns[64];
    snprintf(ns, sizeof ns, "stampede_%s_%d", use_fetch ? "fetch" : "get", run);
    sc_cache *pods[PODS];
    for (int p = 0; p < PODS; p++) {
        sc_options o;
        sc_options_init(&o);
        o.ns = ns;
        o.redis_port = g_redis.port;
        o.redis_pool_size = (unsigned)g_threads + 1;
        if (sc_open(&o, &pods[p]) != SC_OK)
            die("sc_open", sc_errmsg(NULL));
    }
    run_state rs = {0};
    rs.use_fetch = use_fetch;
    rs.db_reads = calloc((size_t)g_keys, sizeof *rs.db_reads);
    rs.names = calloc((size_t)g_keys, sizeof *rs.names);
    for (int i = 0; i < g_keys; i++)
        snprintf(rs.names[i], sizeof rs.names[i], "k%d", i);
    int nw = PODS * g_threads;
    worker *w = calloc((size_t)nw, sizeof *w);
    pthread_t *t = calloc((size_t)nw, sizeof *t);
    for (int i = 0; i < nw; i++) {
        w[i] = (worker){&rs, pods[i % PODS], (unsigned)(run * 7919 + i * 104729 + 1),
                        calloc((size_t)g_keys, sizeof(uint64_t)), 0};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    uint64_t t0 = now_ns();
    atomic_store(&rs.go, 1);
    for (int i = 0; i < nw; i++)
        pthread_join(t[i], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;

    size_t total = (size_t)nw * (size_t)g_keys;
    uint64_t *all = malloc(total * sizeof *all);
    result r = {0};
    for (int i = 0; i < nw; i++) {
        memcpy(all + (size_t)i * (size_t)g_keys, w[i].lat, (size_t)g_keys * sizeof *all);
        r.errors += w[i].errors;
        free(w[i].lat);
    }
    qsort(all, total, sizeof *all, cmp_u64);
    r.p50_us = (double)all[total / 2] / 1000.0;
    r.p99_us = (double)all[total * 99 / 100] / 1000.0;
    r.per_sec = (double)total / secs;
    long sum = 0;
    int mx = 0;
    for (int i = 0; i < g_keys; i++) {
        int n = atomic_load(&rs.db_reads[i]);
        sum += n;
        mx = n > mx ? n : mx;
    }
    r.reads_mean = (double)sum / g_keys;
    r.reads_max = mx;
    free(all);
    free(w);
    free(t);
    free(rs.db_reads);
    free(rs.names);
    for (int p = 0; p < PODS; p++)
        sc_close(pods[p]);
    return r;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--keys"))
            g_keys = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            g_threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--db-us"))
            g_db_us = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--shuffle"))
            g_shuffle = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            g_runs = atoi(argv[i + 1]);
        else
            die("unknown argument", argv[i]);
    }
    if (g_keys < 1 || g_threads < 1 || g_threads > 64 || g_runs < 1 || g_runs > MAX_RUNS || g_db_us < 0)
        die("bad arguments", "keys >= 1, threads 1..64, runs 1..64, db-us >= 0");
    if (sc_test_redis_start(&g_redis, NULL) != 0)
        die("redis-server", "cannot start");

    printf("stampede: %d pods x %d threads, %d cold keys each (%s order), database read %d us, median of %d runs\n\n",
           PODS, g_threads, g_keys, g_shuffle ? "shuffled" : "same", g_db_us, g_runs);
    printf("| mode | db reads / key (mean) | db reads / key (max) | p50 us | p99 us | fetches/s | errors |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (int mode = 1; mode >= 0; mode--) {
        double m[5][MAX_RUNS];
        int errors = 0;
        for (int r = 0; r < g_runs; r++) {
            result x = one_run(mode, r);
            m[0][r] = x.reads_mean;
            m[1][r] = x.reads_max;
            m[2][r] = x.p50_us;
            m[3][r] = x.p99_us;
            m[4][r] = x.per_sec;
            errors += x.errors;
        }
        printf("| %s | %.2f | %.0f | %.1f | %.0f | %.0f | %d |\n", mode ? "sc_fetch" : "sc_get + db + sc_set",
               median(m[0], g_runs), median(m[1], g_runs), median(m[2], g_runs), median(m[3], g_runs),
               median(m[4], g_runs), errors);
        fflush(stdout);
    }
    sc_test_redis_stop(&g_redis);
    return 0;
}
