/* bench/localhit: what a local hit costs through the public API, next to a
 * raw lock-free table of the same keys measured in the same run, and what an
 * entry costs in heap (issue 11's table).
 *
 * Raw baseline: an open-addressing table of 8-byte tagged slots (16-bit tag,
 * 48-bit pointer) pointing at one allocation per key holding its key and
 * value, looked up with no lock, no policy, no counters: the least a hash
 * lookup that returns the value's bytes can cost on this machine.
 * Library: a reader pod (its sc_set fills only the local tier, so 1M keys
 * load in a second) holding every key with local_max_entries = 2 x keys, so
 * the policy really runs and nothing is evicted; keys are read uniformly at
 * random. The raw table is measured twice: inlined into the loop, and
 * behind a call the compiler cannot inline that measures the key with
 * strlen and hands the bytes to a callback, as a library call must. The
 * library's local store alone (the same keys, policy and bound, looked up
 * with sc__local_get_with after strlen and the hash) shows what a hit
 * costs below the public call.
 * sc_get takes and releases a reference and reads the first byte;
 * sc_get_with's callback reads the first byte; raw reads the first byte;
 * sc_get_many takes 16 keys a call and reads each value's first byte (its
 * figures are per key, its lookups prefetched in groups: lib/versions.c);
 * so does sc_fetch_batch, on a writer pod of its own holding the same keys
 * (filled through sc_fetch_batch; a loader call during the run aborts it).
 * Each run measures every call on one thread in CHUNKS turns of
 * ops / CHUNKS gets, the calls taking turns in rotating order, so every
 * ratio is taken within one run and a burst of noise from a neighbour
 * lands on all calls alike; the scaling columns come from one long turn
 * per call on one thread and then on two. At 1M keys every turn starts
 * with the caches wiped (wipe_caches). The tables show the median over
 * --runs runs of each figure and of each ratio.
 * Scaling: total gets per wall second with two threads / with one, and
 * the same from CPU time (2 x CPU ns per get on one thread / on two), which
 * a noisy neighbour on this shared 2-vCPU machine disturbs less.
 * Heap: mallinfo2() bytes in use from before sc_open to after writing 1M
 * keys (key 11 B, value 16 B) per entry held, minus the key and value
 * bytes, in a fresh child per policy (median of 3 children): in a full
 * store (bound 1M: its shards evict the few keys beyond their share) and
 * in one at 80% of its bound (1.25M), whose frequency sketch is sized for
 * the bound.
 *
 * Usage: localhit [--runs N] [--ops N (0: heap only)] [--policy lru|lfu]
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <synccache/synccache.h>

#include "bench_util.h"
#include "local/local.h"
#include "redis_server.h"

#define KEY_LEN 11
#define KEY_STRIDE 16
#define VALUE_LEN 100
/* A run measures every call on one thread in this many short turns, in
 * rotating order, so a noisy neighbour's burst on this shared machine
 * lands on all calls of the run alike instead of on one call's figure. */
#define CHUNKS 8

static sc_test_redis g_redis;
static char *g_keys;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "localhit: %s: %s\n", what, detail ? detail : "");
    sc_test_redis_stop(&g_redis);
    exit(1);
}

static inline const char *pick(uint64_t *rng, size_t nkeys)
{
    return g_keys + rng_below(rng, nkeys) * KEY_STRIDE;
}

/* ---------------------------------------------------------- raw table -- */

struct raw_entry {
    uint32_t klen, vlen;
    char data[]; /* key, value */
};

struct raw {
    uint32_t size;
    uint64_t *slots;
};

static inline uint32_t raw_home(uint64_t h, uint32_t n)
{
    return (uint32_t)(((uint64_t)(uint32_t)h * n) >> 32);
}

static void raw_build(struct raw *r, size_t nkeys)
{
    r->size = (uint32_t)(nkeys * 10 / 7 + 16);
    r->slots = calloc(r->size, sizeof *r->slots);
    if (!r->slots)
        die("raw", "out of memory");
    for (size_t i = 0; i < nkeys; i++) {
        const char *k = g_keys + i * KEY_STRIDE;
        struct raw_entry *e = malloc(sizeof *e + KEY_LEN + VALUE_LEN);
        if (!e)
            die("raw", "out of memory");
        e->klen = KEY_LEN;
        e->vlen = VALUE_LEN;
        memcpy(e->data, k, KEY_LEN);
        memset(e->data + KEY_LEN, 'v', VALUE_LEN);
        uint64_t h = sc__local_hash(k, KEY_LEN);
        uint32_t j = raw_home(h, r->size);
        while (r->slots[j])
            j = j + 1 == r->size ? 0 : j + 1;
        r->slots[j] = ((h >> 40) & 0xffff) << 48 | (uintptr_t)e;
    }
}

static void raw_free(struct raw *r)
{
    for (uint32_t i = 0; i < r->size; i++)
        if (r->slots[i])
            free((void *)(uintptr_t)(r->slots[i] & ((1ull << 48) - 1)));
    free(r->slots);
}

/* The entry of key, NULL on a miss. The slots are read with acquire atomic
 * loads, as a lock-free reader must. Inlined into both raw_get and
 * raw_get_with, so the two differ only in the call boundary. */
static inline const struct raw_entry *raw_find(const struct raw *r, const char *key, size_t klen)
{
    uint64_t h = sc__local_hash(key, klen);
    uint64_t tag = (h >> 40) & 0xffff;
    for (uint32_t i = raw_home(h, r->size);; i = i + 1 == r->size ? 0 : i + 1) {
        uint64_t sl = __atomic_load_n(&r->slots[i], __ATOMIC_ACQUIRE);
        if (!sl)
            return NULL;
        if (sl >> 48 != tag)
            continue;
        const struct raw_entry *e = (const struct raw_entry *)(uintptr_t)(sl & ((1ull << 48) - 1));
        if (e->klen == klen && memcmp(e->data, key, klen) == 0)
            return e;
    }
}

/* Returns the value's first byte + 1, 0 on a miss. */
static inline unsigned raw_get(const struct raw *r, const char *key, size_t klen)
{
    const struct raw_entry *e = raw_find(r, key, klen);
    return e ? (unsigned char)e->data[klen] + 1u : 0;
}

/* The same lookup behind a call the compiler cannot inline, handing the
 * bytes to a callback through a pointer, as a library call must: how much
 * of a library hit's cost is the call boundary itself (the inlined loop
 * lets the CPU overlap several lookups' cache misses). */
typedef void (*raw_fn)(const void *data, size_t len, uint64_t version, void *ud);
static __attribute__((noinline)) int raw_get_with(const struct raw *r, const char *key, size_t klen, raw_fn fn,
                                                  void *ud)
{
    const struct raw_entry *e = raw_find(r, key, klen);
    if (!e)
        return 0;
    fn(e->data + klen, e->vlen, 0, ud);
    return 1;
}

/* The library's local store on its own, with the same keys, policy and
 * bound as the pod's: what a hit costs below the public call (its key
 * checks, the pod's synced flag and the call into the store). */
static sc__local *store_build(sc_local_policy policy, size_t nkeys)
{
    sc__local_config cfg = {.policy = policy, .max_entries = nkeys * 2};
    sc__local *l = sc__local_new(&cfg);
    char val[VALUE_LEN];
    memset(val, 'v', sizeof val);
    if (!l)
        die("store", "out of memory");
    for (size_t i = 0; i < nkeys; i++) {
        const char *k = g_keys + i * KEY_STRIDE;
        sc_value *v = sc__value_new_keyed(k, KEY_LEN, val, sizeof val, 1);
        if (!v || sc__local_put(l, k, KEY_LEN, sc__local_hash(k, KEY_LEN), v, 0, 0, 0) != SC_OK)
            die("store", "put failed");
        sc_value_release(v);
    }
    return l;
}

/* ------------------------------------------------------------ workers -- */

typedef enum mode { M_RAW, M_RAWCALL, M_STORE, M_GET, M_WITH, M_MANY, M_FETCH, M_FETCH1, M_NMODES } mode;
static const char *const mode_names[M_NMODES] = {"raw table",
                                                 "raw table, out of line + callback",
                                                 "local store alone (sc__local_get_with)",
                                                 "sc_get",
                                                 "sc_get_with",
                                                 "sc_get_many, 16 keys a call (per key)",
                                                 "sc_fetch_batch, 16 keys a call, all local (per key)",
                                                 "sc_fetch, all local"};
#define MANY_BATCH 16

typedef struct worker {
    mode m;
    sc_cache *c;
    sc_cache *fetcher; /* a writer pod holding the same keys (sc_fetch_batch, sc_fetch) */
    const struct raw *raw;
    sc__local *store;
    size_t nkeys;
    long ops;
    uint64_t seed;
    pthread_barrier_t *start;
    bench_span span;
    long misses;
    uint64_t sink;
} worker;

static void read_first(const void *data, size_t len, uint64_t version, void *ud)
{
    (void)version;
    if (len)
        *(uint64_t *)ud += *(const unsigned char *)data;
}

/* The loaders of the sc_fetch_batch and sc_fetch rows, whose keys are all local: a call
 * means the row measured something else. */
static sc_status load_never(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    (void)keys;
    (void)n;
    (void)slots;
    (void)ud;
    die("sc_fetch_batch", "the loader was called: a key was not local");
    return SC_ERR_INVALID;
}

static sc_status load_never1(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)slot;
    (void)ud;
    die("sc_fetch", "the loader was called: a key was not local");
    return SC_ERR_INVALID;
}

/* Fills the writer pod of the sc_fetch_batch row through sc_fetch_batch
 * itself (a writer's sc_set would take a Redis round trip per key). */
static sc_status load_fill(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    (void)keys;
    (void)ud;
    char val[VALUE_LEN];
    memset(val, 'v', sizeof val);
    for (size_t i = 0; i < n; i++)
        sc_loaded_set(slots[i], val, sizeof val);
    return SC_OK;
}

static sc_cache *fetcher_build(sc_local_policy policy, size_t nkeys)
{
    sc_options o = bench_reader_options(g_redis.port, "localhit-fetch", policy, nkeys * 2);
    o.role = SC_ROLE_WRITER;
    sc_cache *c;
    if (sc_open(&o, &c) != SC_OK)
        die("sc_open (fetcher)", sc_errmsg(NULL));
    const char *keys[SC_FETCH_BATCH_MAX];
    sc_value *out[SC_FETCH_BATCH_MAX];
    for (size_t at = 0; at < nkeys; at += SC_FETCH_BATCH_MAX) {
        size_t n = nkeys - at < SC_FETCH_BATCH_MAX ? nkeys - at : SC_FETCH_BATCH_MAX;
        for (size_t i = 0; i < n; i++)
            keys[i] = g_keys + (at + i) * KEY_STRIDE;
        if (sc_fetch_batch(c, keys, n, 0, load_fill, NULL, out) != SC_OK)
            die("sc_fetch_batch (fill)", sc_errmsg(c));
        for (size_t i = 0; i < n; i++)
            sc_value_release(out[i]);
    }
    return c;
}

/* One call's loop, inlined with m a constant (LOOP_OF), so every call
 * is measured in a loop of its own, as a caller would write it: one loop
 * shared by all calls through a switch measured the inlined raw table at
 * 1M keys 15% slower (docs/benchmarks.md, issue 11, fifteenth pass). */
static inline __attribute__((always_inline)) void run_loop(worker *w, const mode m)
{
    uint64_t rng = w->seed, sink = 0;
    long misses = 0;
    const char *batch[MANY_BATCH];
    size_t nb = 0;
    uint64_t cpu0 = bench_span_begin(&w->span, w->start);
    for (long i = 0; i < w->ops; i++) {
        const char *key = pick(&rng, w->nkeys);
        switch (m) {
        case M_RAW: {
            unsigned b = raw_get(w->raw, key, KEY_LEN);
            misses += !b;
            sink += b;
            break;
        }
        case M_RAWCALL:
            if (!raw_get_with(w->raw, key, strlen(key), read_first, &sink))
                misses++;
            break;
        case M_STORE: {
            size_t klen = strlen(key);
            if (sc__local_get_with(w->store, key, klen, sc__local_hash(key, klen), read_first, &sink) != SC_OK)
                misses++;
            break;
        }
        case M_GET: {
            sc_value *v;
            if (sc_get(w->c, key, &v) == SC_OK) {
                sink += *(const unsigned char *)sc_value_data(v);
                sc_value_release(v);
            } else {
                misses++;
            }
            break;
        }
        case M_WITH:
            if (sc_get_with(w->c, key, read_first, &sink) != SC_OK)
                misses++;
            break;
        case M_FETCH1: {
            sc_value *v;
            if (sc_fetch(w->fetcher, key, 0, load_never1, NULL, &v) != SC_OK)
                die("sc_fetch", sc_errmsg(w->fetcher));
            sink += *(const unsigned char *)sc_value_data(v);
            sc_value_release(v);
            break;
        }
        case M_MANY:
        case M_FETCH:
            batch[nb++] = key;
            if (nb == MANY_BATCH || i + 1 == w->ops) {
                sc_value *out[MANY_BATCH];
                if (m == M_MANY ? sc_get_many(w->c, batch, nb, out) != SC_OK
                                : sc_fetch_batch(w->fetcher, batch, nb, 0, load_never, NULL, out) != SC_OK)
                    die(m == M_MANY ? "sc_get_many" : "sc_fetch_batch", sc_errmsg(m == M_MANY ? w->c : w->fetcher));
                for (size_t j = 0; j < nb; j++) {
                    if (out[j]) {
                        sink += *(const unsigned char *)sc_value_data(out[j]);
                        sc_value_release(out[j]);
                    } else {
                        misses++;
                    }
                }
                nb = 0;
            }
            break;
        default:
            break;
        }
    }
    bench_span_end(&w->span, cpu0);
    w->misses = misses;
    w->sink = sink;
}

/* Each call's loop as a function of its own. */
#define LOOP_OF(m)                                                                                                     \
    static void loop_##m(worker *w)                                                                                    \
    {                                                                                                                  \
        run_loop(w, m);                                                                                                \
    }
LOOP_OF(M_RAW)
LOOP_OF(M_RAWCALL)
LOOP_OF(M_STORE)
LOOP_OF(M_GET)
LOOP_OF(M_WITH)
LOOP_OF(M_MANY)
LOOP_OF(M_FETCH)
LOOP_OF(M_FETCH1)
static void (*const loops[M_NMODES])(worker *) = {loop_M_RAW,  loop_M_RAWCALL, loop_M_STORE, loop_M_GET,
                                                  loop_M_WITH, loop_M_MANY,    loop_M_FETCH, loop_M_FETCH1};

static void *worker_run(void *arg)
{
    worker *w = arg;
    loops[w->m](w);
    return NULL;
}

/* Far larger than the last-level cache a core reaches on these machines
 * (under 8 MB measured by a pointer chase, docs/benchmarks.md, fourteenth
 * pass), so a line left by the turn before is gone. */
#define WIPE_BYTES ((size_t)128 << 20)
static unsigned char *g_wipe;

/* Evicts every call's data from the caches: at 1M keys no call's data fits,
 * and a turn that followed one on the same keys (the inlined and called raw
 * table, sc_get and sc_get_with on one pod) would start with part of them
 * cached that the turn before it left there. */
static void wipe_caches(void)
{
    if (!g_wipe && !(g_wipe = malloc(WIPE_BYTES)))
        die("wipe buffer", "out of memory");
    for (size_t i = 0; i < WIPE_BYTES; i += 64)
        g_wipe[i]++;
    __asm__ volatile("" : : "r"(g_wipe) : "memory");
}

static bench_timing run_threads(worker proto, int nthreads, long *misses)
{
    if (proto.nkeys > 100000)
        wipe_caches();
    pthread_t th[2];
    worker w[2];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads);
    for (int t = 0; t < nthreads; t++) {
        w[t] = proto;
        w[t].seed = bench_next_seed();
        w[t].start = &start;
        pthread_create(&th[t], NULL, worker_run, &w[t]);
    }
    bench_span span[2];
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        span[t] = w[t].span;
        *misses += w[t].misses;
    }
    pthread_barrier_destroy(&start);
    return bench_timing_of(span, nthreads, proto.ops);
}

typedef struct result {
    size_t nkeys;
    double ns1[M_NMODES], scale[M_NMODES], ratio[M_NMODES];         /* wall */
    double cns1[M_NMODES], cscale[M_NMODES], cratio[M_NMODES];      /* CPU */
    long misses;
} result;

static void bench_keys(sc_local_policy policy, size_t nkeys, int runs, long ops, result *res)
{
    sc_options o = bench_reader_options(g_redis.port, "localhit", policy, nkeys * 2);
    sc_cache *c;
    if (sc_open(&o, &c) != SC_OK)
        die("sc_open (reader)", sc_errmsg(NULL));
    if (bench_fill(c, g_keys, KEY_STRIDE, nkeys, VALUE_LEN) != nkeys)
        die("sc_set (reader fill)", sc_errmsg(c));
    struct raw raw;
    raw_build(&raw, nkeys);
    sc__local *store = store_build(policy, nkeys);
    sc_cache *fetcher = fetcher_build(policy, nkeys);

    double ns1[M_NMODES][MAX_RUNS], scale[M_NMODES][MAX_RUNS], ratio[M_NMODES][MAX_RUNS];
    double cns1[M_NMODES][MAX_RUNS], cscale[M_NMODES][MAX_RUNS], cratio[M_NMODES][MAX_RUNS];
    long misses = 0, warm = 0;
    for (int m = 0; m < M_NMODES; m++) {
        worker w = {.m = (mode)m, .c = c, .fetcher = fetcher, .raw = &raw, .store = store, .nkeys = nkeys, .ops = ops};
        run_threads(w, 1, &warm); /* warms the caches and the policy's segments */
    }
    for (int r = 0; r < runs; r++) {
        /* One thread: ns per get summed over the turns (each has the
         * same gets), the calls in rotating order. */
        double w1[M_NMODES] = {0}, c1[M_NMODES] = {0};
        for (int ch = 0; ch < CHUNKS; ch++)
            for (int i = 0; i < M_NMODES; i++) {
                int m = (ch + i) % M_NMODES;
                worker w = {.m = (mode)m,
                            .c = c,
                            .fetcher = fetcher,
                            .raw = &raw,
                            .store = store,
                            .nkeys = nkeys,
                            .ops = ops / CHUNKS};
                bench_timing one = run_threads(w, 1, &misses);
                w1[m] += one.wall_ns;
                c1[m] += one.cpu_ns;
            }
        /* Scaling: one long turn per call on one thread, then on two (in
         * short turns, one thread's late start would weigh on the figure). */
        for (int m = 0; m < M_NMODES; m++) {
            worker w = {
                .m = (mode)m, .c = c, .fetcher = fetcher, .raw = &raw, .store = store, .nkeys = nkeys, .ops = ops};
            bench_timing one = run_threads(w, 1, &misses);
            bench_timing two = run_threads(w, 2, &misses);
            scale[m][r] = two.ops_s / one.ops_s;
            /* Two threads each doing as many gets as one: 2x per CPU. */
            cscale[m][r] = 2.0 * one.cpu_ns / two.cpu_ns;
        }
        for (int m = 0; m < M_NMODES; m++) {
            ns1[m][r] = w1[m] / CHUNKS;
            cns1[m][r] = c1[m] / CHUNKS;
            ratio[m][r] = w1[m] / w1[M_RAW];
            cratio[m][r] = c1[m] / c1[M_RAW];
        }
    }
    sc_close(c);
    sc_close(fetcher);
    raw_free(&raw);
    sc__local_free(store);
    res->nkeys = nkeys;
    res->misses = misses;
    for (int m = 0; m < M_NMODES; m++) {
        res->ns1[m] = median(ns1[m], runs);
        res->scale[m] = median(scale[m], runs);
        res->ratio[m] = median(ratio[m], runs);
        res->cns1[m] = median(cns1[m], runs);
        res->cscale[m] = median(cscale[m], runs);
        res->cratio[m] = median(cratio[m], runs);
    }
}

/* --------------------------------------------------------------- heap -- */

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* In a child: heap bytes per entry held beyond key (11) and value (16),
 * after writing `entries` keys into a store bounded at `bound` entries. */
static double heap_child(sc_local_policy policy, size_t entries, size_t bound)
{
    int fd[2];
    if (pipe(fd) != 0)
        die("pipe", NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        size_t heap0 = heap_bytes();
        sc_options o;
        sc_options_init(&o);
        o.redis_port = g_redis.port;
        o.ns = "localhit-mem";
        o.role = SC_ROLE_READER;
        o.local_policy = policy;
        o.local_max_entries = bound;
        sc_cache *c;
        if (sc_open(&o, &c) != SC_OK)
            _exit(1);
        char key[32], val[16];
        memset(val, 'v', sizeof val);
        for (size_t i = 0; i < entries; i++) {
            snprintf(key, sizeof key, "key:%07zu", i);
            if (sc_set(c, key, val, sizeof val, 0) != SC_OK)
                _exit(1);
        }
        sc_stats st;
        sc_stats_get(c, &st);
        double per = ((double)heap_bytes() - (double)heap0) / (double)st.local_entries - 11.0 - 16.0;
        /* A full store's shards evict their overflow (keys do not spread
         * exactly evenly): a handful, never more than 1%. */
        if (st.local_entries > entries || st.local_entries < entries - entries / 100)
            per = -1;
        if (write(fd[1], &per, sizeof per) != (ssize_t)sizeof per)
            _exit(1);
        _exit(0); /* the measure is taken; skip sc_close's teardown */
    }
    close(fd[1]);
    double per = -1;
    if (read(fd[0], &per, sizeof per) != (ssize_t)sizeof per)
        per = -1;
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    return per;
}

/* --------------------------------------------------------------- main -- */

int main(int argc, char **argv)
{
    int runs = 5;
    long ops = 1000000;
    sc_local_policy policy = SC_LOCAL_LFU;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
            ops = atol(argv[++i]);
        else if (!strcmp(argv[i], "--policy") && i + 1 < argc) {
            i++;
            policy = !strcmp(argv[i], "lru") ? SC_LOCAL_LRU : SC_LOCAL_LFU;
        } else {
            fprintf(stderr, "usage: localhit [--runs N] [--ops N (0: heap only)] [--policy lru|lfu]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || ops < 0 || (ops > 0 && ops < CHUNKS)) {
        fprintf(stderr, "localhit: bad --runs or --ops (--ops is 0 or at least %d)\n", CHUNKS);
        return 2;
    }
    if (sc_test_redis_start(&g_redis, NULL) != 0)
        die("redis-server", "cannot start");
    const size_t sizes[2] = {10000, 1000000};
    g_keys = malloc(sizes[1] * KEY_STRIDE);
    if (!g_keys)
        die("keys", "out of memory");
    for (size_t i = 0; i < sizes[1]; i++)
        snprintf(g_keys + i * KEY_STRIDE, KEY_STRIDE, "key:%07u", (unsigned)(i % 10000000));

    result res[2] = {{0}};
    for (int k = 0; k < 2 && ops > 0; k++)
        bench_keys(policy, sizes[k], runs, k == 0 ? ops * 4 : ops, &res[k]);
    /* Heap: a full store (bound 1M, 1M keys written) and one at 80% of its
     * bound (1.25M), whose frequency sketch is sized for the bound. */
    const size_t bounds[2] = {1000000, 1250000};
    double heap[2][2][3];
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < 2; p++)
            for (int r = 0; r < 3; r++)
                heap[b][p][r] = heap_child(p ? SC_LOCAL_LFU : SC_LOCAL_LRU, 1000000, bounds[b]);

    printf("## localhit: %s, medians of %d runs (%ld gets per thread per run at 1M keys, x4 at 10k), "
           "100 B values\n\n",
           policy == SC_LOCAL_LFU ? "LFU (W-TinyLFU, the default)" : "LRU", runs, ops);
    printf("| keys | call | 1T wall ns | 1T CPU ns | / raw (wall) | / raw (CPU) | 2T / 1T (wall gets/s) | "
           "2T / 1T (per CPU ns) |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < 2 && ops > 0; k++)
        for (int m = 0; m < M_NMODES; m++)
            printf("| %zu | %s | %.1f | %.1f | %.2fx | %.2fx | %.2fx | %.2fx |\n", res[k].nkeys, mode_names[m],
                   res[k].ns1[m], res[k].cns1[m], res[k].ratio[m], res[k].cratio[m], res[k].scale[m],
                   res[k].cscale[m]);
    printf("\n| policy | heap B per entry beyond key and value, 1M keys, bound 1M (full) | the same, bound 1.25M "
           "(80%% full) |\n|---|---|---|\n");
    printf("| LRU | %.1f | %.1f |\n| LFU | %.1f | %.1f |\n(median of 3 children each)\n", median(heap[0][0], 3),
           median(heap[1][0], 3), median(heap[0][1], 3), median(heap[1][1], 3));
    if (res[0].misses || res[1].misses)
        printf("\nmisses: %ld / %ld (should be 0)\n", res[0].misses, res[1].misses);
    sc_test_redis_stop(&g_redis);
    free(g_keys);
    free(g_wipe);
    return 0;
}
