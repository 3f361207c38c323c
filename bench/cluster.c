/* bench/cluster: synccache on a Redis Cluster against a single Redis, in one
 * run, and what a failover costs on a cluster and behind Sentinel.
 *
 * One process starts a private single redis-server and a private cluster of
 * three masters with one replica each (test/support/redis_cluster.h). Two
 * pods per backend share a namespace; every key of a namespace lives in the
 * one slot of its {ns} hash tag, so on the cluster all of a namespace's
 * traffic goes to one master and the figures show what the cluster adds
 * (routing, the slot map, the cluster's own pub/sub fan-out), not sharding.
 *
 * Steady state, per backend, --runs runs interleaved single / cluster (which
 * goes first alternates) so machine noise falls on both; each figure is the
 * median over the runs:
 *   propagation  sc_set on pod A -> pod B's on_event hook (the hook runs
 *                after B's local tier changed), --sets writes on a fixed
 *                schedule of one every --interval-us, as bench/propagation;
 *                p50 and p99 over every delivery of the run;
 *   sc_set       --ops back-to-back sc_set calls on A, microseconds per call;
 *   sc_get       remote hit: a reader pod with local_max_entries = 1 reads
 *                keys Redis holds, so (nearly) every get misses locally,
 *                reads Redis and installs the value; microseconds per call.
 *   get_many     sc_get_many of 48 keys on a namespace of 16 partitions
 *                (on the cluster spread over the 3 masters: one pipelined
 *                exchange per master), read by a pod whose local tier holds
 *                one entry per partition and that reads a different 48 of
 *                MANY_KEYS each call, so every key misses locally; the
 *                median per call. On the single Redis also the same 48 keys
 *                read as 3 sc_get_many of 16 one after the other: what 3
 *                sequential single-node exchanges cost.
 * Failover, --failovers runs of each kind, medians:
 *   manual       CLUSTER FAILOVER sent to the replica of the namespace's
 *                master while pod A writes without pause;
 *   killed       SIGKILL of that master (its replica is promoted after
 *                cluster-node-timeout);
 *   Sentinel     after the cluster is stopped, a master, one replica and
 *                three sentinels (test/support/redis_sentinel.h): SIGKILL
 *                of the master, promoted after down-after-milliseconds.
 * A killed node is started again and rejoins as a replica before the next
 * run. For each: when the replica took over (CLUSTER SLOTS, or what the
 * sentinels name and ROLE), when the first sc_set issued after that was
 * acknowledged, the longest time between two acknowledged writes, how many
 * writes failed, and when both pods had converged (synced, and every local
 * copy equal to Redis). All are ms from the failover command or the kill.
 * Acknowledged writes lost with a killed master are counted, with whether
 * the pods noticed (a flush or a new epoch).
 *
 * The machine's load (/proc/loadavg) is printed before and after: on a small
 * shared VM the absolute figures move with it, the ratios much less.
 *
 * Usage: cluster [--runs N] [--sets N] [--interval-us N] [--ops N]
 *                [--failovers N]
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#include "bench_util.h"
#include "redis_cluster.h"
#include "redis_sentinel.h"
#include "redis_server.h"

#define KEYS 1000
#define VALUE_LEN 100
#define FO_KEYS 16
#define MANY_PARTS 16
#define MANY_BATCH 48
#define MANY_KEYS (MANY_BATCH * 10)

static sc_test_redis g_single;
static sc_test_cluster g_cl;
static sc_test_sentinels g_sent;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
        ;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "cluster: %s: %s\n", what, detail ? detail : "");
    sc_test_redis_stop(&g_single);
    sc_test_cluster_stop(&g_cl);
    sc_test_sentinels_stop(&g_sent);
    exit(1);
}

static void print_load(const char *when)
{
    char buf[128] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            snprintf(buf, sizeof buf, "?");
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    printf("Machine load (/proc/loadavg) %s: %s\n", when, buf);
}

/* out->field = the median of runs[0..n-1].field. */
#define MEDIAN_OF(out, runs, n, field)           \
    do {                                         \
        double v_[MAX_RUNS];                     \
        for (int i_ = 0; i_ < (n); i_++)         \
            v_[i_] = (runs)[i_].field;           \
        (out)->field = median(v_, (n));          \
    } while (0)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Options for a pod of ns on the single Redis (cluster 0) or the cluster. */
static sc_options pod_options(int cluster, const char *ns)
{
    sc_options o;
    sc_options_init(&o);
    o.ns = ns;
    if (cluster)
        o.redis_cluster_nodes = g_cl.seeds;
    else
        o.redis_port = g_single.port;
    return o;
}

static sc_cache *open_pod(const sc_options *o)
{
    sc_cache *c = NULL;
    if (sc_open(o, &c) != SC_OK)
        die("sc_open", sc_errmsg(NULL));
    return c;
}

/* ------------------------------------------------------ steady state -- */

/* Pod B's deliveries: recv[i] is stamped by B's sync thread before the
 * release increment of count; the main thread reads after an acquire. */
typedef struct deliveries {
    uint64_t *recv;
    long sets;
    _Atomic long count;
    _Atomic int run; /* deliveries of another run are ignored */
} deliveries;

typedef struct stamp {
    uint32_t run, idx;
} stamp;

static void on_event(const sc_event_info *ev, void *ud)
{
    deliveries *d = ud;
    if (!ev->value || strcmp(ev->action, "set") != 0 || sc_value_size(ev->value) < sizeof(stamp))
        return;
    stamp s;
    memcpy(&s, sc_value_data(ev->value), sizeof s);
    if ((int)s.run != atomic_load_explicit(&d->run, memory_order_relaxed) || s.idx >= (uint32_t)d->sets ||
        d->recv[s.idx])
        return;
    d->recv[s.idx] = now_ns();
    atomic_fetch_add_explicit(&d->count, 1, memory_order_release);
}

typedef struct steady {
    double p50, p99, set_us, get_us;
    double many_us;  /* one sc_get_many of MANY_BATCH keys, median */
    double split_us; /* the same as 3 sc_get_many of a third each, median */
    long missing;
} steady;

typedef struct backend {
    int cluster;
    sc_cache *a, *b, *reader;
    sc_cache *pw, *pr; /* the partitioned namespace's writer and reader */
    int many_masters;  /* masters holding its partitions (cluster) */
    deliveries d;
} backend;

/* A partitioned namespace whose 16 partitions fall on all 3 masters (any
 * on the single Redis); how many masters hold them into *masters. */
static const char *many_ns(int cluster, char *buf, size_t cap, int *masters)
{
    *masters = 1;
    for (int n = 0; n < 100; n++) {
        snprintf(buf, cap, "bench-many-%s-%d", cluster ? "cl" : "single", n);
        if (!cluster)
            return buf;
        int port[3] = {0}, np = 0;
        for (unsigned p = 0; p < MANY_PARTS; p++) {
            char tag[80];
            snprintf(tag, sizeof tag, "{%s#%u}", buf, p);
            int at = sc_test_cluster_master_of(&g_cl, tag), known = 0;
            for (int j = 0; j < np; j++)
                known |= port[j] == at;
            if (!known && np < 3)
                port[np++] = at;
        }
        *masters = np;
        if (np == 3)
            return buf;
    }
    die("get_many", "no namespace with partitions on all 3 masters");
    return NULL;
}

static void many_open(backend *be)
{
    static char ns[2][64];
    const char *name = many_ns(be->cluster, ns[be->cluster], sizeof ns[0], &be->many_masters);
    sc_options o = pod_options(be->cluster, name);
    o.partitions = MANY_PARTS;
    be->pw = open_pod(&o);
    o.local_max_entries = MANY_PARTS; /* one entry per partition */
    o.local_policy = SC_LOCAL_LRU;    /* the newest: never this call's keys */
    be->pr = open_pod(&o);
    char key[32], val[VALUE_LEN];
    memset(val, 'm', sizeof val);
    for (int i = 0; i < MANY_KEYS; i++) {
        snprintf(key, sizeof key, "m:%04d", i);
        if (sc_set(be->pw, key, val, sizeof val, 0) != SC_OK)
            die("sc_set", sc_errmsg(be->pw));
    }
}

/* sc_get_many of keys[0..n-1] on c; every key must be found. */
static void many_read(sc_cache *c, const char *const *kp, size_t n)
{
    sc_value *out[MANY_BATCH];
    if (sc_get_many(c, kp, n, out) != SC_OK)
        die("sc_get_many", sc_errmsg(c));
    for (size_t i = 0; i < n; i++) {
        if (!out[i] || sc_value_size(out[i]) != VALUE_LEN)
            die("sc_get_many", "a key not found or of the wrong size");
        sc_value_release(out[i]);
    }
}

static double median_u64_us(uint64_t *lat, long n)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    return n ? (double)lat[(n - 1) / 2] / 1e3 : 0;
}

/* The median sc_get_many of MANY_BATCH keys, and (split) of the same keys
 * as 3 calls one after the other; each call reads the next 48 keys, so no
 * key of it is in the reader's local tier (one entry per partition, the
 * last batch's). */
static void many_run(backend *be, long calls, double *many_us, double *split_us)
{
    uint64_t *lat = malloc((size_t)calls * sizeof *lat), *split = malloc((size_t)calls * sizeof *split);
    if (!lat || !split)
        die("malloc", "latencies");
    char keys[MANY_BATCH][32];
    const char *kp[MANY_BATCH];
    long batch = 0;
    for (int pass = 0; pass < 2; pass++)
        for (long c = 0; c < calls; c++, batch++) {
            for (int i = 0; i < MANY_BATCH; i++) {
                snprintf(keys[i], sizeof keys[i], "m:%04ld", (batch * MANY_BATCH + i) % MANY_KEYS);
                kp[i] = keys[i];
            }
            uint64_t t = now_ns();
            if (pass == 0)
                many_read(be->pr, kp, MANY_BATCH);
            else
                for (int third = 0; third < 3; third++)
                    many_read(be->pr, kp + third * (MANY_BATCH / 3), MANY_BATCH / 3);
            (pass == 0 ? lat : split)[c] = now_ns() - t;
        }
    *many_us = median_u64_us(lat, calls);
    *split_us = median_u64_us(split, calls);
    free(lat);
    free(split);
}

static void backend_open(backend *be, int cluster, long sets)
{
    memset(be, 0, sizeof *be);
    be->cluster = cluster;
    const char *ns = cluster ? "bench-cluster" : "bench-single";
    sc_options o = pod_options(cluster, ns);
    be->a = open_pod(&o);
    be->d.sets = sets;
    be->d.recv = calloc((size_t)sets, sizeof *be->d.recv);
    if (!be->d.recv)
        die("malloc", "delivery stamps");
    atomic_init(&be->d.run, -1);
    o.on_event = on_event;
    o.on_event_ud = &be->d;
    be->b = open_pod(&o);
    o = pod_options(cluster, ns);
    o.local_max_entries = 1; /* every get of another key misses locally */
    be->reader = open_pod(&o);
    many_open(be);
}

static void backend_close(backend *be)
{
    sc_close(be->a);
    sc_close(be->b);
    sc_close(be->reader);
    sc_close(be->pw);
    sc_close(be->pr);
    free(be->d.recv);
}

static void one_steady_run(backend *be, int run, long interval_ns, long ops, steady *out)
{
    deliveries *d = &be->d;
    memset(d->recv, 0, (size_t)d->sets * sizeof *d->recv);
    atomic_store(&d->count, 0);
    atomic_store(&d->run, run);
    uint64_t *send = calloc((size_t)d->sets, sizeof *send);
    unsigned char val[VALUE_LEN];
    memset(val, 'c', sizeof val);
    char key[32];
    uint64_t next = now_ns();
    for (long i = 0; i < d->sets; i++) {
        sleep_until(next);
        stamp s = {(uint32_t)run, (uint32_t)i};
        memcpy(val, &s, sizeof s);
        snprintf(key, sizeof key, "p:%04ld", i % KEYS);
        send[i] = now_ns();
        if (sc_set(be->a, key, val, sizeof val, 0) != SC_OK)
            die("sc_set", sc_errmsg(be->a));
        uint64_t done = now_ns();
        next += (uint64_t)interval_ns;
        if (done > next + (uint64_t)interval_ns) /* fell behind: no catch-up burst */
            next = done;
    }
    uint64_t deadline = now_ns() + 2000000000u;
    while (atomic_load_explicit(&d->count, memory_order_acquire) < d->sets && now_ns() < deadline)
        sleep_ms(1);
    uint64_t *lat = malloc((size_t)d->sets * sizeof *lat);
    size_t n = 0;
    for (long i = 0; i < d->sets; i++)
        if (d->recv[i])
            lat[n++] = d->recv[i] - send[i];
    qsort(lat, n, sizeof *lat, cmp_u64);
    out->missing = d->sets - (long)n;
    out->p50 = n ? (double)lat[(n - 1) / 2] / 1e3 : 0;
    out->p99 = n ? (double)lat[(size_t)(0.99 * (double)n + 0.999999) - 1] / 1e3 : 0;
    free(lat);
    free(send);

    /* sc_set back to back. */
    uint64_t t = now_ns();
    for (long i = 0; i < ops; i++) {
        snprintf(key, sizeof key, "p:%04ld", i % KEYS);
        if (sc_set(be->a, key, val, sizeof val, 0) != SC_OK)
            die("sc_set", sc_errmsg(be->a));
    }
    out->set_us = (double)(now_ns() - t) / (double)ops / 1e3;

    /* Remote hits: the reader holds one entry, so each key read in turn is
     * a local miss that Redis answers. */
    t = now_ns();
    for (long i = 0; i < ops; i++) {
        snprintf(key, sizeof key, "p:%04ld", i % KEYS);
        sc_value *v = NULL;
        if (sc_get(be->reader, key, &v) != SC_OK)
            die("sc_get", sc_errmsg(be->reader));
        sc_value_release(v);
    }
    out->get_us = (double)(now_ns() - t) / (double)ops / 1e3;

    many_run(be, ops / 10 > 0 ? ops / 10 : 1, &out->many_us, &out->split_us);
}

static void steady_median(const steady *r, int runs, steady *out)
{
    MEDIAN_OF(out, r, runs, p50);
    MEDIAN_OF(out, r, runs, p99);
    MEDIAN_OF(out, r, runs, set_us);
    MEDIAN_OF(out, r, runs, get_us);
    MEDIAN_OF(out, r, runs, many_us);
    MEDIAN_OF(out, r, runs, split_us);
    out->missing = 0;
    for (int i = 0; i < runs; i++)
        out->missing += r[i].missing;
}

/* ---------------------------------------------------------- failover -- */

/* Pod A's writer: sets f0..f15 round robin with increasing numbers, as fast
 * as it can, until told to stop. */
typedef struct writer {
    sc_cache *c;
    atomic_int stop;
    _Atomic uint64_t switched_ns;  /* set by main when the replica took over */
    _Atomic uint64_t first_ok_ns;  /* first ack of a write issued after it */
    _Atomic uint64_t t0;           /* the failover's moment (UINT64_MAX before) */
    uint64_t last_ok_at, max_gap;
    long last_ok[FO_KEYS];
    long ok, failed;
} writer;

static void *writer_main(void *p)
{
    writer *w = p;
    w->last_ok_at = now_ns();
    for (long n = 1; !atomic_load(&w->stop); n++) {
        int k = (int)(n % FO_KEYS);
        char key[16], val[32];
        snprintf(key, sizeof key, "f%d", k);
        snprintf(val, sizeof val, "%ld", n);
        uint64_t start = now_ns();
        sc_status s = sc_set(w->c, key, val, strlen(val), 0);
        uint64_t done = now_ns();
        if (s == SC_OK) {
            w->last_ok[k] = n;
            w->ok++;
            /* Gaps are only counted from the failover on. */
            uint64_t t0 = atomic_load(&w->t0);
            uint64_t from = w->last_ok_at > t0 ? w->last_ok_at : t0;
            if (done > from && done - from > w->max_gap)
                w->max_gap = done - from;
            w->last_ok_at = done;
            uint64_t sw = atomic_load(&w->switched_ns);
            if (sw && start >= sw && !atomic_load(&w->first_ok_ns))
                atomic_store(&w->first_ok_ns, done);
        } else {
            w->failed++;
            sleep_ms(1);
        }
    }
    return NULL;
}

typedef struct fo_result {
    double switched_ms, first_ok_ms, max_gap_ms, converged_ms;
    long failed, lost;
    int noticed;   /* some pod flushed or saw a new epoch */
    int lost_runs; /* medians: runs that lost an acknowledged write */
} fo_result;

enum { FO_MANUAL, FO_KILL, FO_SENTINEL, FO_KINDS };
static const char *const fo_names[FO_KINDS] = {"cluster: manual CLUSTER FAILOVER", "cluster: master killed (SIGKILL)",
                                               "Sentinel: master killed (SIGKILL)"};

/* The port of the master holding ns now (0 if unknown). */
static int master_now(int kind, const char *ns)
{
    if (kind == FO_SENTINEL)
        return sc_test_sentinels_master_port(&g_sent);
    char tag[48];
    snprintf(tag, sizeof tag, "{%s}", ns);
    return sc_test_cluster_master_of(&g_cl, tag);
}

/* The value of {ns}:k:<key> on its master now ("" when absent). */
static void value_now(int kind, const char *ns, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    int port = master_now(kind, ns);
    redisReply *r = port ? sc_test_node_cmd(port, "HGET {%s}:k:%s value", ns, key) : NULL;
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(out, cap, "%.*s", (int)r->len, r->str);
    if (r)
        freeReplyObject(r);
}

/* Both pods synced and every local copy of f0..f15 equal to Redis. */
static int converged(int kind, sc_cache **pods, int n, const char *ns)
{
    for (int p = 0; p < n; p++) {
        sc_stats st;
        sc_stats_get(pods[p], &st);
        if (!st.synced)
            return 0;
    }
    for (int k = 0; k < FO_KEYS; k++) {
        char key[16], want[64];
        snprintf(key, sizeof key, "f%d", k);
        value_now(kind, ns, key, want, sizeof want);
        for (int p = 0; p < n; p++) {
            sc_value *v = NULL;
            if (sc_peek(pods[p], key, &v) != SC_OK)
                continue; /* absent locally: the next get reads Redis */
            int same = sc_value_size(v) == strlen(want) && memcmp(sc_value_data(v), want, strlen(want)) == 0;
            sc_value_release(v);
            if (!same)
                return 0;
        }
    }
    return 1;
}

/* The data node at port (cluster or Sentinel setup). */
static sc_test_redis *node_at(int kind, int port)
{
    if (kind == FO_SENTINEL)
        return &g_sent.data[g_sent.data[0].port == port ? 0 : 1];
    int i = sc_test_cluster_index_of(&g_cl, port);
    if (i < 0)
        die("cluster", "a port that is no node of ours");
    return &g_cl.node[i];
}

/* Whether replica has taken over from master. */
static int switched(int kind, const char *ns, int master, int replica)
{
    if (kind == FO_SENTINEL)
        return sc_test_sentinels_master_port(&g_sent) == replica && sc_test_node_role_is(replica, "master");
    (void)master;
    return master_now(kind, ns) == replica;
}

/* One failover of the namespace's master while pod A writes. */
static void one_failover(int kind, int run, fo_result *res)
{
    char ns[32];
    snprintf(ns, sizeof ns, "bfo-%d-%d", kind, run);
    int master = master_now(kind, ns);
    int replica = 0;
    if (kind == FO_SENTINEL)
        replica = g_sent.data[g_sent.data[0].port == master ? 1 : 0].port;
    else if (master)
        replica = sc_test_cluster_replica_of(&g_cl, master);
    if (!replica)
        die("failover", "the namespace's master has no live replica");
    for (int i = 0; i < 200 && !sc_test_node_replica_synced(replica); i++)
        sleep_ms(50);
    sc_options o = pod_options(kind != FO_SENTINEL, ns);
    if (kind == FO_SENTINEL) {
        o.sentinel_nodes = g_sent.list;
        o.redis_port = 1; /* ignored behind Sentinel */
    }
    o.redis_timeout_ms = 1000;
    sc_cache *pods[2] = {open_pod(&o), open_pod(&o)};
    writer *w = calloc(1, sizeof *w);
    w->c = pods[0];
    atomic_init(&w->t0, UINT64_MAX);
    pthread_t th;
    pthread_create(&th, NULL, writer_main, w);
    sleep_ms(300);
    uint64_t t0 = now_ns();
    atomic_store(&w->t0, t0);
    if (kind != FO_MANUAL) {
        sc_test_redis_kill(node_at(kind, master));
    } else {
        redisReply *r = sc_test_node_cmd(replica, "CLUSTER FAILOVER");
        if (!r || r->type == REDIS_REPLY_ERROR)
            die("CLUSTER FAILOVER", r ? r->str : "no reply");
        freeReplyObject(r);
    }
    uint64_t deadline = t0 + 30000000000ull;
    while (!switched(kind, ns, master, replica) && now_ns() < deadline)
        sleep_ms(5);
    if (!switched(kind, ns, master, replica))
        die("failover", "the replica did not take over within 30 s");
    uint64_t sw = now_ns();
    atomic_store(&w->switched_ns, sw);
    while (!atomic_load(&w->first_ok_ns) && now_ns() < deadline)
        sleep_ms(1);
    if (!atomic_load(&w->first_ok_ns))
        die("failover", "no write succeeded within 30 s");
    atomic_store(&w->stop, 1);
    pthread_join(th, NULL);
    while (!converged(kind, pods, 2, ns) && now_ns() < deadline)
        sleep_ms(2);
    uint64_t conv = now_ns();
    if (!converged(kind, pods, 2, ns))
        die("failover", "the pods did not converge within 30 s");
    res->switched_ms = (double)(sw - t0) / 1e6;
    res->first_ok_ms = (double)(atomic_load(&w->first_ok_ns) - t0) / 1e6;
    res->max_gap_ms = (double)w->max_gap / 1e6;
    res->converged_ms = (double)(conv - t0) / 1e6;
    res->failed = w->failed;
    res->lost = 0;
    for (int k = 0; k < FO_KEYS; k++) {
        char key[16], have[64];
        snprintf(key, sizeof key, "f%d", k);
        value_now(kind, ns, key, have, sizeof have);
        res->lost += atol(have) < w->last_ok[k];
    }
    res->noticed = 0;
    for (int p = 0; p < 2; p++) {
        sc_stats st;
        sc_stats_get(pods[p], &st);
        res->noticed |= st.flushes + st.epoch_changes > 0;
    }
    sc_close(pods[0]);
    sc_close(pods[1]);
    free(w);
    /* Back to full strength: the killed node rejoins (as a replica of the
     * new master: the cluster or the sentinels reconfigure it), the old
     * master has synced as a replica. */
    if (kind != FO_MANUAL && sc_test_redis_start_again(node_at(kind, master)) != 0)
        die("failover", "the killed node did not start again");
    if (kind != FO_SENTINEL && !sc_test_cluster_wait_ok(&g_cl, 30000))
        die("failover", "the cluster did not become ok again");
    int rejoined = 0;
    for (int i = 0; i < 600 && !rejoined; i++) {
        rejoined = sc_test_node_role_is(master, "slave") && sc_test_node_replica_synced(master);
        if (!rejoined)
            sleep_ms(50);
    }
    if (!rejoined)
        die("failover", "the old master did not rejoin as a synced replica within 30 s");
}

static void fo_median(const fo_result *r, int n, fo_result *out)
{
    MEDIAN_OF(out, r, n, switched_ms);
    MEDIAN_OF(out, r, n, first_ok_ms);
    MEDIAN_OF(out, r, n, max_gap_ms);
    MEDIAN_OF(out, r, n, converged_ms);
    out->failed = out->lost = out->noticed = out->lost_runs = 0;
    for (int i = 0; i < n; i++) {
        out->failed += r[i].failed;
        out->lost += r[i].lost;
        out->lost_runs += r[i].lost > 0;
        out->noticed += r[i].lost && r[i].noticed;
    }
}

int main(int argc, char **argv)
{
    int runs = 5, failovers = 3;
    long sets = 2000, interval_us = 200, ops = 2000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sets"))
            sets = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--interval-us"))
            interval_us = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--ops"))
            ops = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--failovers"))
            failovers = atoi(argv[i + 1]);
        else
            runs = -1;
    }
    if (runs < 1 || runs >= MAX_RUNS || sets < 1 || interval_us < 0 || ops < 1 || failovers < 0 ||
        failovers >= MAX_RUNS || argc % 2 == 0) {
        fprintf(stderr, "usage: cluster [--runs 1..%d] [--sets N] [--interval-us N] [--ops N] [--failovers 0..%d]\n",
                MAX_RUNS - 1, MAX_RUNS - 1);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    print_load("at the start");
    if (sc_test_redis_start(&g_single, NULL) != 0 || sc_test_cluster_start(&g_cl, 3, 1) != 0)
        die("setup", "could not start the single Redis or the cluster");

    backend be[2];
    backend_open(&be[0], 0, sets);
    backend_open(&be[1], 1, sets);
    steady r[2][MAX_RUNS], med[2];
    /* Run 0 warms connections and code paths and is not counted; the
     * backend that goes first alternates run by run. */
    for (int run = 0; run <= runs; run++)
        for (int i = 0; i < 2; i++) {
            int b = (run + i) % 2;
            steady s;
            one_steady_run(&be[b], 2 * run + b, interval_us * 1000, ops, &s);
            if (run > 0)
                r[b][run - 1] = s;
        }
    for (int b = 0; b < 2; b++) {
        steady_median(r[b], runs, &med[b]);
        backend_close(&be[b]);
    }
    sc_test_redis_stop(&g_single);

    fo_result fo[FO_KINDS][MAX_RUNS], fmed[FO_KINDS];
    for (int i = 0; i < failovers; i++)
        for (int k = FO_MANUAL; k <= FO_KILL; k++)
            one_failover(k, i, &fo[k][i]);
    sc_test_cluster_stop(&g_cl);
    if (failovers && sc_test_sentinels_start(&g_sent) != 0)
        die("setup", "could not start the Sentinel setup");
    for (int i = 0; i < failovers; i++)
        one_failover(FO_SENTINEL, i, &fo[FO_SENTINEL][i]);
    sc_test_sentinels_stop(&g_sent);
    for (int k = 0; k < FO_KINDS && failovers; k++)
        fo_median(fo[k], failovers, &fmed[k]);

    printf("\n## cluster: synccache on a 3-master Redis Cluster (1 replica each) against a single Redis\n\n");
    printf("One process, loopback; medians over %d runs (interleaved single / cluster). Propagation: %ld sets "
           "per run, one every %ld us, sc_set on pod A -> on_event on pod B. sc_set: %ld calls back to back. "
           "sc_get remote hit: %ld calls on a pod holding one entry.\n\n",
           runs, sets, interval_us, ops, ops);
    printf("| measure | single Redis | cluster | cluster / single |\n|---|---|---|---|\n");
    printf("| propagation p50 us | %.0f | %.0f | %.2fx |\n", med[0].p50, med[1].p50, med[1].p50 / med[0].p50);
    printf("| propagation p99 us | %.0f | %.0f | %.2fx |\n", med[0].p99, med[1].p99, med[1].p99 / med[0].p99);
    printf("| sc_set us per call | %.1f | %.1f | %.2fx |\n", med[0].set_us, med[1].set_us,
           med[1].set_us / med[0].set_us);
    printf("| sc_get remote hit us per call | %.1f | %.1f | %.2fx |\n", med[0].get_us, med[1].get_us,
           med[1].get_us / med[0].get_us);
    printf("| deliveries missing (all runs) | %ld | %ld | |\n", med[0].missing, med[1].missing);
    printf("\n### sc_get_many across masters\n\n");
    printf("sc_get_many of %d keys of a namespace of %d partitions (on the cluster held by %d masters), every key "
           "a local miss; median us per call of %ld calls per run, median over the runs. The last row reads the "
           "same keys on the single Redis as 3 sc_get_many of %d keys one after the other: 3 sequential "
           "single-node exchanges.\n\n",
           MANY_BATCH, MANY_PARTS, be[1].many_masters, ops / 10 > 0 ? ops / 10 : 1, MANY_BATCH / 3);
    printf("| measure | us | / single Redis |\n|---|---|---|\n");
    printf("| sc_get_many %d keys, single Redis | %.0f | 1.00x |\n", MANY_BATCH, med[0].many_us);
    printf("| sc_get_many %d keys, cluster (%d masters) | %.0f | %.2fx |\n", MANY_BATCH, be[1].many_masters,
           med[1].many_us, med[1].many_us / med[0].many_us);
    printf("| 3 sequential sc_get_many of %d keys, single Redis | %.0f | %.2fx |\n", MANY_BATCH / 3,
           med[0].split_us, med[0].split_us / med[0].many_us);
    if (failovers) {
        printf("\n### failover recovery (medians over %d runs of each)\n\n", failovers);
        printf("ms from CLUSTER FAILOVER (sent to the replica) or from SIGKILL of the master, while pod A writes "
               "without pause (redis_timeout_ms 1000, other options default). Cluster: cluster-node-timeout 2000. "
               "Sentinel: a master, one replica, three sentinels, down-after-milliseconds 1000. Converged = both "
               "pods synced and every local copy equal to Redis. A killed node is started again and has rejoined "
               "as a synced replica before the next run.\n\n");
        printf("| failover | replica took over ms | first sc_set ok after ms | longest write gap ms | converged ms | "
               "failed writes (all runs) | keys with an acked write lost (all runs) | runs with a loss / of them "
               "noticed by the pods |\n|---|---|---|---|---|---|---|---|\n");
        for (int k = 0; k < FO_KINDS; k++)
            printf("| %s | %.0f | %.0f | %.0f | %.0f | %ld | %ld | %d / %d |\n", fo_names[k], fmed[k].switched_ms,
                   fmed[k].first_ok_ms, fmed[k].max_gap_ms, fmed[k].converged_ms, fmed[k].failed, fmed[k].lost,
                   fmed[k].lost_runs, fmed[k].noticed);
    }
    printf("\n");
    print_load("at the end");
    return 0;
}
