/* bench/propagation: how long a set on one pod takes to reach the others.
 *
 * All pods live in this process, each with its own sync thread, so one
 * CLOCK_MONOTONIC serves both ends: the writer stamps send[i] just before
 * sc_set, and every other pod's on_event hook stamps the moment it has
 * applied the event (the hook runs after the local tier changed). The value
 * carries the run and the write's index. Writes go out on a fixed schedule
 * (one every --interval-us) so the figure is latency, not queueing behind a
 * flood. The baseline, measured in the same run on the same schedule, is
 * raw hiredis: PUBLISH on one connection, one blocking SUBSCRIBE thread per
 * receiving pod; it is the floor any Redis pub/sub design can reach here.
 *
 * Each percentile is taken over all (pods - 1) x sets deliveries of a run;
 * the table prints the median of each percentile over --runs runs.
 *
 * --tracking 0 runs the pods with redis_tracking = 0 (no CLIENT TRACKING,
 * no confirm of each write's invalidation): the price of the second path.
 *
 * Usage: propagation [--pods 2,8] [--sets N] [--interval-us N] [--runs N] [--tracking 0|1]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#include "bench_util.h"
#include "redis_server.h"

#define MAX_PODS 32
#define VALUE_LEN 100
#define KEYS 1000
#define RAW_CHANNEL "rawprop:events"

static sc_test_redis g_redis;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "propagation: %s: %s\n", what, detail ? detail : "");
    sc_test_redis_stop(&g_redis);
    exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}


/* One receiving end (a pod's hook or a raw subscriber thread). recv[i] is
 * written by that end's thread before the release increment of count, so
 * the main thread reads it after an acquire load that saw the count. */
typedef struct rx {
    uint64_t *recv;      /* per write index; 0 = not (yet) seen */
    _Atomic long count;
    _Atomic int run;     /* deliveries tagged with another run are ignored */
    long replayed;
    redisContext *sub;   /* raw baseline only */
} rx;

typedef struct tag {
    uint32_t run, idx;
} tag;

static long g_sets;
static int g_tracking = 1; /* redis_tracking of every pod (--tracking) */

static void record(rx *x, const void *data, size_t len, int replayed)
{
    tag t;
    if (len < sizeof t)
        return;
    memcpy(&t, data, sizeof t);
    if ((int)t.run != atomic_load_explicit(&x->run, memory_order_relaxed) || t.idx >= (uint32_t)g_sets ||
        x->recv[t.idx])
        return;
    x->recv[t.idx] = now_ns();
    x->replayed += replayed;
    atomic_fetch_add_explicit(&x->count, 1, memory_order_release);
}

static void on_event(const sc_event_info *ev, void *ud)
{
    if (ev->value && !strcmp(ev->action, "set"))
        record(ud, sc_value_data(ev->value), sc_value_size(ev->value), ev->replayed);
}

static void *raw_sub_run(void *arg)
{
    rx *x = arg;
    redisReply *r;
    while (redisGetReply(x->sub, (void **)&r) == REDIS_OK) {
        int stop = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
            if (r->element[2]->len == 4 && !memcmp(r->element[2]->str, "stop", 4))
                stop = 1;
            else
                record(x, r->element[2]->str, r->element[2]->len, 0);
        }
        freeReplyObject(r);
        if (stop)
            break;
    }
    return NULL;
}

typedef struct pcts {
    double p50, p99, p999, max, set_us;
    long missing, replayed;
} pcts;

/* Percentiles (nearest rank) of every delivery of the run, in microseconds. */
static void summarize(rx *rxs, int nrx, const uint64_t *send, pcts *out)
{
    uint64_t *lat = malloc((size_t)nrx * (size_t)g_sets * sizeof *lat);
    if (!lat)
        die("malloc", "latencies");
    size_t n = 0;
    out->missing = out->replayed = 0;
    for (int r = 0; r < nrx; r++) {
        (void)atomic_load_explicit(&rxs[r].count, memory_order_acquire);
        for (long i = 0; i < g_sets; i++) {
            if (rxs[r].recv[i])
                lat[n++] = rxs[r].recv[i] - send[i];
            else
                out->missing++;
        }
        out->replayed += rxs[r].replayed;
    }
    qsort(lat, n, sizeof *lat, cmp_u64);
#define PCT(p) (n ? (double)lat[(size_t)((p) * (double)n + 0.999999) - 1] / 1e3 : 0)
    out->p50 = PCT(0.50);
    out->p99 = PCT(0.99);
    out->p999 = PCT(0.999);
    out->max = n ? (double)lat[n - 1] / 1e3 : 0;
#undef PCT
    free(lat);
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
        ;
}

/* One run: g_sets writes on schedule through sc_set (w != NULL) or raw
 * PUBLISH (pub != NULL), then waits up to 2 s for the stragglers. */
static void one_run(int run, sc_cache *w, redisContext *pub, rx *rxs, int nrx, uint64_t *send, long interval_ns,
                    pcts *out)
{
    for (int r = 0; r < nrx; r++) {
        memset(rxs[r].recv, 0, (size_t)g_sets * sizeof *rxs[r].recv);
        rxs[r].replayed = 0;
        atomic_store(&rxs[r].count, 0);
        atomic_store(&rxs[r].run, run);
    }
    unsigned char val[VALUE_LEN];
    memset(val, 'p', sizeof val);
    char key[32];
    uint64_t set_total = 0;
    uint64_t next = now_ns();
    for (long i = 0; i < g_sets; i++) {
        sleep_until(next);
        tag t = {(uint32_t)run, (uint32_t)i};
        memcpy(val, &t, sizeof t);
        snprintf(key, sizeof key, "p:%04ld", i % KEYS);
        send[i] = now_ns();
        if (w) {
            if (sc_set(w, key, val, sizeof val, 0) != SC_OK)
                die("sc_set", sc_errmsg(w));
        } else {
            redisReply *r = redisCommand(pub, "PUBLISH " RAW_CHANNEL " %b", val, sizeof val);
            if (!r)
                die("PUBLISH", pub->errstr);
            freeReplyObject(r);
        }
        uint64_t done = now_ns();
        set_total += done - send[i];
        next += (uint64_t)interval_ns;
        /* Fell behind (a stall on a busy machine): restart the schedule
         * instead of bursting to catch up, which would measure queueing. */
        if (done > next + (uint64_t)interval_ns)
            next = done;
    }
    uint64_t deadline = now_ns() + 2000000000u;
    for (int r = 0; r < nrx; r++)
        while (atomic_load_explicit(&rxs[r].count, memory_order_acquire) < g_sets && now_ns() < deadline)
            sleep_until(now_ns() + 1000000);
    summarize(rxs, nrx, send, out);
    out->set_us = (double)set_total / (double)g_sets / 1e3;
}

typedef struct row {
    int pods;
    pcts sc, raw; /* medians over runs */
    long sc_missing, raw_missing, sc_replayed;
} row;

static void bench_pods(int pods, int runs, long interval_ns, row *res)
{
    int nrx = pods - 1;
    rx sc_rx[MAX_PODS], raw_rx[MAX_PODS];
    sc_cache *c[MAX_PODS];
    pthread_t th[MAX_PODS];
    uint64_t *send = calloc((size_t)g_sets, sizeof *send);
    if (!send)
        die("malloc", "send stamps");
    char ns[32];
    snprintf(ns, sizeof ns, "prop%d", pods);
    for (int p = 0; p < pods; p++) {
        sc_options o;
        sc_options_init(&o);
        o.redis_port = g_redis.port;
        o.ns = ns;
        o.redis_tracking = g_tracking;
        if (p > 0) {
            rx *x = &sc_rx[p - 1];
            memset(x, 0, sizeof *x);
            x->recv = calloc((size_t)g_sets, sizeof *x->recv);
            atomic_init(&x->run, -1);
            o.on_event = on_event;
            o.on_event_ud = x;
        }
        if (sc_open(&o, &c[p]) != SC_OK)
            die("sc_open", sc_errmsg(NULL));
    }
    redisContext *pub = sc_test_redis_connect(&g_redis);
    if (!pub)
        die("connect", "raw publisher");
    for (int r = 0; r < nrx; r++) {
        rx *x = &raw_rx[r];
        memset(x, 0, sizeof *x);
        x->recv = calloc((size_t)g_sets, sizeof *x->recv);
        atomic_init(&x->run, -1);
        x->sub = sc_test_redis_connect(&g_redis);
        if (!x->sub || !x->recv || !sc_rx[r].recv)
            die("setup", "raw subscriber");
        redisReply *rep = redisCommand(x->sub, "SUBSCRIBE " RAW_CHANNEL);
        if (!rep)
            die("SUBSCRIBE", x->sub->errstr);
        freeReplyObject(rep);
        struct timeval forever = {0, 0};
        redisSetTimeout(x->sub, forever);
        pthread_create(&th[r], NULL, raw_sub_run, x);
    }

    pcts sc[MAX_RUNS], raw[MAX_RUNS];
    /* Run 0 warms connections and code paths and is not counted; then the
     * two paths alternate so machine noise falls on both. */
    for (int run = 0; run <= runs; run++) {
        pcts a, b;
        one_run(2 * run, c[0], NULL, sc_rx, nrx, send, interval_ns, &a);
        one_run(2 * run + 1, NULL, pub, raw_rx, nrx, send, interval_ns, &b);
        if (run > 0) {
            sc[run - 1] = a;
            raw[run - 1] = b;
        }
    }
    double v[MAX_RUNS];
    res->pods = pods;
    res->sc_missing = res->raw_missing = res->sc_replayed = 0;
#define MED(dst, src, field)                                                                                  \
    do {                                                                                                      \
        for (int i = 0; i < runs; i++)                                                                        \
            v[i] = src[i].field;                                                                              \
        dst.field = median(v, runs);                                                                          \
    } while (0)
    MED(res->sc, sc, p50);
    MED(res->sc, sc, p99);
    MED(res->sc, sc, p999);
    MED(res->sc, sc, max);
    MED(res->sc, sc, set_us);
    MED(res->raw, raw, p50);
    MED(res->raw, raw, p99);
    MED(res->raw, raw, p999);
    MED(res->raw, raw, max);
    MED(res->raw, raw, set_us);
#undef MED
    for (int i = 0; i < runs; i++) {
        res->sc_missing += sc[i].missing;
        res->raw_missing += raw[i].missing;
        res->sc_replayed += sc[i].replayed;
    }

    redisReply *rep = redisCommand(pub, "PUBLISH " RAW_CHANNEL " stop");
    freeReplyObject(rep);
    for (int r = 0; r < nrx; r++) {
        pthread_join(th[r], NULL);
        redisFree(raw_rx[r].sub);
        free(raw_rx[r].recv);
    }
    redisFree(pub);
    for (int p = 0; p < pods; p++)
        sc_close(c[p]);
    for (int r = 0; r < nrx; r++)
        free(sc_rx[r].recv);
    free(send);
}

int main(int argc, char **argv)
{
    int runs = 5;
    long interval_us = 200;
    const char *podlist = "2,8";
    g_sets = 5000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sets"))
            g_sets = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--interval-us"))
            interval_us = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--pods"))
            podlist = argv[i + 1];
        else if (!strcmp(argv[i], "--tracking"))
            g_tracking = atoi(argv[i + 1]) != 0;
    }
    int pods[8], npods = 0;
    for (const char *p = podlist; *p && npods < 8;) {
        pods[npods++] = atoi(p);
        p += strcspn(p, ",");
        p += *p == ',';
    }
    for (int i = 0; i < npods; i++)
        if (pods[i] < 2 || pods[i] > MAX_PODS)
            npods = -1;
    if (runs < 1 || runs >= MAX_RUNS || g_sets < 1 || interval_us < 0 || npods < 1) {
        fprintf(stderr, "usage: propagation [--pods 2,8 (2..%d)] [--sets N] [--interval-us N] [--runs 1..%d] "
                        "[--tracking 0|1]\n",
                MAX_PODS, MAX_RUNS - 1);
        return 2;
    }
    if (sc_test_redis_start(&g_redis, NULL) != 0)
        return 1;

    row rows[8];
    for (int i = 0; i < npods; i++)
        bench_pods(pods[i], runs, interval_us * 1000, &rows[i]);

    printf("## propagation: set on one pod -> applied on every other pod (one process, loopback)\n\n");
    printf("Medians over %d runs of each run's percentile; %ld sets per run, one every %ld us; redis_tracking = %d.\n\n",
           runs, g_sets, interval_us, g_tracking);
    printf("| pods | path | p50 us | p99 us | p99.9 us | max us | writer call us | missing | p99 vs raw |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < npods; i++) {
        row *r = &rows[i];
        printf("| %d | synccache sc_set -> on_event | %.0f | %.0f | %.0f | %.0f | %.1f | %ld | %.2fx |\n", r->pods,
               r->sc.p50, r->sc.p99, r->sc.p999, r->sc.max, r->sc.set_us, r->sc_missing, r->sc.p99 / r->raw.p99);
        printf("| %d | raw PUBLISH -> SUBSCRIBE | %.0f | %.0f | %.0f | %.0f | %.1f | %ld | 1.00x |\n", r->pods,
               r->raw.p50, r->raw.p99, r->raw.p999, r->raw.max, r->raw.set_us, r->raw_missing);
    }
    for (int i = 0; i < npods; i++)
        if (rows[i].pods == 8)
            printf("\n| target | measured | met |\n|---|---|---|\n| p99 < 1 ms, 8 pods | %.0f us | %s |\n",
                   rows[i].sc.p99, rows[i].sc.p99 < 1000 ? "yes" : "NO");
    for (int i = 0; i < npods; i++)
        if (rows[i].sc_replayed)
            printf("\nNOTE: %d pods: %ld deliveries came from the event log (catch-up), not the channel\n",
                   rows[i].pods, rows[i].sc_replayed);
    sc_test_redis_stop(&g_redis);
    return 0;
}
