/* bench/hotpath: what one sc_get or sc_set costs, next to what the same work
 * costs on a raw hiredis connection, measured in the same run.
 *
 * Local hits: a reader pod (its sc_set fills only the local tier, so 1M keys
 * load in a second) holding every key, read at uniformly random keys by one
 * and by two threads, for both local policies. The local bound is twice the
 * key count so W-TinyLFU really runs (an unbounded store never evicts and
 * both policies reduce to one list) and no shard overflows.
 * Remote: one writer pod with local_max_entries = 1, so its gets miss locally
 * and read Redis (then install, evicting the previous key), and its sc_set
 * runs the real write script. Baselines on one blocking hiredis connection:
 * GET, SET, PUBLISH, EVALSHA of a script doing HSET + INCR + PUBLISH (the
 * minimum a versioned, published write needs) and EVALSHA of a script doing
 * everything synccache's write script does (type check, seed check, INCR,
 * HSET, PERSIST, TIME, msgpack event, XADD to the log, PUBLISH), which tells
 * Redis-side cost from client-side cost.
 *
 * Timing: CLOCK_MONOTONIC around batches, never per operation. Every figure
 * is the median over --runs runs; remote figures are interleaved run by run
 * so a noisy neighbour hits baseline and synccache alike. Beside each remote
 * figure, the mean time Redis spent in scripts per operation (EVALSHA's
 * usec in INFO commandstats, which holds the commands a script calls, read
 * before and after each batch): what a write costs on the server, apart
 * from the round trip. It also holds the pods' own scripts that ran during
 * the batch (heartbeats; with tracking, the confirms of the writer's own
 * writes).
 *
 * Usage: hotpath [--runs N] [--ops N (0: remote figures only)] [--remote-ops N]
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#include "bench_util.h"
#include "local/local.h"
#include "redis_server.h"

#define KEY_LEN 11    /* "key:%07d" */
#define KEY_STRIDE 16 /* "key:%07d" is 11 bytes + NUL; fixed stride keeps keys in one flat array */
#define VALUE_LEN 100
#define REMOTE_KEYS 10000
#define ROUNDS 20

static sc_test_redis g_redis;
static char *g_keys; /* key i at g_keys + i * KEY_STRIDE */

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "hotpath: %s: %s\n", what, detail ? detail : "");
    sc_test_redis_stop(&g_redis);
    exit(1);
}

static inline const char *pick(uint64_t *rng, size_t nkeys)
{
    return g_keys + rng_below(rng, nkeys) * KEY_STRIDE;
}

/* ------------------------------------------------------------ local hits -- */

/* What a worker loop calls per key. The store-alone modes run the same
 * local tier sc_get uses, built directly, to split a hit's cost into the
 * public call's own work, the lookup, and the policy update on a hit (peek
 * looks up without touching recency or frequency). */
typedef enum mode { M_PICK, M_SC_GET, M_STORE_GET, M_STORE_PEEK } mode;

typedef struct target {
    mode m;
    sc_cache *c;
    sc__local *store;
} target;

typedef struct worker {
    target tg;
    size_t nkeys;
    long ops;
    uint64_t seed;
    pthread_barrier_t *start;
    bench_span span;
    long misses;
    uint64_t sink; /* keeps the key-pick-only loop from being optimized away */
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    uint64_t rng = w->seed;
    long misses = 0;
    uint64_t sink = 0;
    uint64_t cpu0 = bench_span_begin(&w->span, w->start);
    for (long i = 0; i < w->ops; i++) {
        const char *key = pick(&rng, w->nkeys);
        sc_value *v = NULL;
        sc_status s = SC_OK;
        switch (w->tg.m) {
        case M_PICK:
            sink += (unsigned char)key[10];
            continue;
        case M_SC_GET:
            s = sc_get(w->tg.c, key, &v);
            break;
        case M_STORE_GET:
            s = sc__local_get(w->tg.store, key, KEY_LEN, sc__local_hash(key, KEY_LEN), &v);
            break;
        case M_STORE_PEEK:
            s = sc__local_peek(w->tg.store, key, KEY_LEN, sc__local_hash(key, KEY_LEN), &v);
            break;
        }
        if (s == SC_OK)
            sc_value_release(v);
        else
            misses++;
    }
    bench_span_end(&w->span, cpu0);
    w->misses = misses;
    w->sink = sink;
    return NULL;
}

static bench_timing run_threads(target tg, size_t nkeys, long ops, int nthreads, long *misses)
{
    pthread_t th[2];
    worker w[2];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads);
    for (int t = 0; t < nthreads; t++) {
        w[t] = (worker){.tg = tg, .nkeys = nkeys, .ops = ops, .seed = bench_next_seed(), .start = &start};
        pthread_create(&th[t], NULL, worker_run, &w[t]);
    }
    bench_span span[2];
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        span[t] = w[t].span;
        *misses += w[t].misses;
    }
    pthread_barrier_destroy(&start);
    return bench_timing_of(span, nthreads, ops);
}

typedef struct local_result {
    const char *policy;
    size_t nkeys;
    bench_timing one, two, pick, store_get, store_peek; /* medians, field by field */
    long misses;
    sc_stats st;
} local_result;

static bench_timing median_timing(const bench_timing *t, int runs)
{
    double w[MAX_RUNS], c[MAX_RUNS], o[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        w[r] = t[r].wall_ns;
        c[r] = t[r].cpu_ns;
        o[r] = t[r].ops_s;
    }
    return (bench_timing){median(w, runs), median(c, runs), median(o, runs)};
}

static void bench_local(sc_local_policy policy, size_t nkeys, int runs, long ops, local_result *res)
{
    sc_options o =
        bench_reader_options(g_redis.port, policy == SC_LOCAL_LFU ? "hot-lfu" : "hot-lru", policy, nkeys * 2);
    sc_cache *c;
    if (sc_open(&o, &c) != SC_OK)
        die("sc_open (reader)", sc_errmsg(NULL));
    if (bench_fill(c, g_keys, KEY_STRIDE, nkeys, VALUE_LEN) != nkeys)
        die("sc_set (reader fill)", sc_errmsg(c));

    bench_timing one[MAX_RUNS], two[MAX_RUNS], pick[MAX_RUNS], sget[MAX_RUNS], speek[MAX_RUNS];
    long misses = 0, nomiss = 0;
    target tpick = {.m = M_PICK}, tget = {.m = M_SC_GET, .c = c};
    /* One untimed pass warms the caches and the W-TinyLFU segments. */
    run_threads(tget, nkeys, ops, 1, &misses);
    for (int r = 0; r < runs; r++) {
        pick[r] = run_threads(tpick, nkeys, ops, 1, &nomiss);
        one[r] = run_threads(tget, nkeys, ops, 1, &misses);
        two[r] = run_threads(tget, nkeys, ops, 2, &misses);
    }
    sc_stats_get(c, &res->st);
    sc_close(c);

    /* The same store on its own, after the pod is gone so the two never
     * share the caches or the memory. */
    sc__local_config lc = {.policy = policy, .max_entries = nkeys * 2};
    sc__local *store = sc__local_new(&lc);
    char val[VALUE_LEN];
    memset(val, 'v', sizeof val);
    sc_value *v = sc__value_new(val, sizeof val, 0);
    if (!store || !v)
        die("store", "out of memory");
    for (size_t i = 0; i < nkeys; i++) {
        const char *k = g_keys + i * KEY_STRIDE;
        if (sc__local_put(store, k, KEY_LEN, sc__local_hash(k, KEY_LEN), v, 0, 0, SC__PUT_FORCE) != SC_OK)
            die("store", "put failed");
    }
    sc_value_release(v);
    target tsget = {.m = M_STORE_GET, .store = store}, tspeek = {.m = M_STORE_PEEK, .store = store};
    run_threads(tsget, nkeys, ops, 1, &misses);
    for (int r = 0; r < runs; r++) {
        sget[r] = run_threads(tsget, nkeys, ops, 1, &misses);
        speek[r] = run_threads(tspeek, nkeys, ops, 1, &misses);
    }
    sc__local_free(store);

    res->policy = policy == SC_LOCAL_LFU ? "LFU" : "LRU";
    res->nkeys = nkeys;
    res->one = median_timing(one, runs);
    res->two = median_timing(two, runs);
    res->pick = median_timing(pick, runs);
    res->store_get = median_timing(sget, runs);
    res->store_peek = median_timing(speek, runs);
    res->misses = misses;
}

/* -------------------------------------------------------------- remote -- */

/* The least a versioned, published write needs. */
static const char MIN_WRITE_LUA[] =
    "local v = redis.call('INCR', KEYS[2])\n"
    "redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', v)\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[1])\n"
    "return v\n";

/* What synccache's get script does: value, version and remaining TTL. */
static const char GET_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'value', 'version')\n"
    "if not h[1] then return false end\n"
    "return {h[1], h[2] or '', redis.call('PTTL', KEYS[1])}\n";

/* Everything synccache's set script does, without its helpers' generality:
 * same commands, same msgpack event, same log entry. */
static const char FULL_WRITE_LUA[] =
    "local ty = redis.call('TYPE', KEYS[1]).ok\n"
    "if ty ~= 'none' and ty ~= 'hash' then return redis.error_reply('WRONGTYPE') end\n"
    "if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], '1000000') end\n"
    "local vs = string.format('%d', redis.call('INCR', KEYS[2]))\n"
    "redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', vs)\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "local t = redis.call('TIME')\n"
    "local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ev = cmsgpack.pack({format = 1, action = 'set', key = ARGV[3], sender = 'bench',\n"
    "                          version = tonumber(vs), ttl = 0, time = ms, value = ARGV[1]})\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', '10000', vs .. '-0', 'e', ev)\n"
    "redis.call('PUBLISH', ARGV[2], ev)\n"
    "return vs\n";

#define RAW_CHANNEL "rawbench:events"

static redisReply *cmd(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    if (!r)
        die("redis", rc->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        die("redis error reply", r->str);
    return r;
}

/* A subscriber on the baseline channel, so raw PUBLISH delivers to one
 * socket just as synccache's publish reaches the writer pod's own
 * subscriber. It only drains. */
static void *drain_run(void *arg)
{
    redisContext *rc = arg;
    redisReply *r;
    while (redisGetReply(rc, (void **)&r) == REDIS_OK)
        freeReplyObject(r);
    return NULL;
}

enum { R_GET, R_SET, R_PUBLISH, R_EVAL_MIN, R_EVAL_FULL, R_EVAL_GET, R_SC_SET, R_SC_SET_NT, R_SC_GET, R_COUNT };
enum { SHA_MIN, SHA_FULL, SHA_GET, SHA_COUNT };
static const char *const remote_names[R_COUNT] = {
    [R_GET] = "raw GET (100 B string)",
    [R_SET] = "raw SET (100 B)",
    [R_PUBLISH] = "raw PUBLISH (100 B, 1 subscriber)",
    [R_EVAL_MIN] = "raw EVALSHA HSET+INCR+PUBLISH",
    [R_EVAL_FULL] = "raw EVALSHA same work as sc write (+TYPE, seed, PERSIST, TIME, msgpack, XADD)",
    [R_EVAL_GET] = "raw EVALSHA same work as sc get (HMGET value+version, PTTL)",
    [R_SC_SET] = "sc_set (100 B, writer)",
    [R_SC_SET_NT] = "sc_set (100 B, writer, redis_tracking = 0)",
    [R_SC_GET] = "sc_get remote hit (local miss -> Redis -> install)",
};

/* usec= of one command in INFO commandstats (0 when never called). */
static double command_usec(redisContext *rc, const char *name)
{
    redisReply *r = cmd(rc, "INFO commandstats");
    char pat[64];
    snprintf(pat, sizeof pat, "cmdstat_%s:", name);
    const char *at = strstr(r->str, pat);
    const char *u = at ? strstr(at, "usec=") : NULL;
    double usec = u ? strtod(u + 5, NULL) : 0;
    freeReplyObject(r);
    return usec;
}

/* pods[0]: the writer as configured by default; pods[1]: the same with
 * redis_tracking = 0 (no confirm of its own writes, see lib/tracking.c). */
static double time_remote(int which, redisContext *rc, sc_cache *const pods[2], const char sha[SHA_COUNT][41],
                          long ops, uint64_t *rng)
{
    char val[VALUE_LEN];
    memset(val, 'w', sizeof val);
    char rkey[32];
    uint64_t t0 = now_ns();
    for (long i = 0; i < ops; i++) {
        const char *k = pick(rng, REMOTE_KEYS);
        redisReply *r = NULL;
        sc_value *v = NULL;
        switch (which) {
        case R_GET:
            snprintf(rkey, sizeof rkey, "raw:%s", k);
            r = cmd(rc, "GET %s", rkey);
            break;
        case R_SET:
            snprintf(rkey, sizeof rkey, "raw:%s", k);
            r = cmd(rc, "SET %s %b", rkey, val, sizeof val);
            break;
        case R_PUBLISH:
            r = cmd(rc, "PUBLISH " RAW_CHANNEL " %b", val, sizeof val);
            break;
        case R_EVAL_MIN:
            snprintf(rkey, sizeof rkey, "rawh:%s", k);
            r = cmd(rc, "EVALSHA %s 2 %s rawbench:seq %b " RAW_CHANNEL, sha[SHA_MIN], rkey, val, sizeof val);
            break;
        case R_EVAL_FULL:
            snprintf(rkey, sizeof rkey, "rawh:%s", k);
            r = cmd(rc, "EVALSHA %s 3 %s rawbench:seq2 rawbench:log %b " RAW_CHANNEL " %s", sha[SHA_FULL], rkey, val,
                    sizeof val, k);
            break;
        case R_EVAL_GET:
            snprintf(rkey, sizeof rkey, "hot-remote:k:%s", k);
            r = cmd(rc, "EVALSHA %s 1 %s", sha[SHA_GET], rkey);
            break;
        case R_SC_SET:
        case R_SC_SET_NT: {
            sc_cache *c = pods[which == R_SC_SET_NT];
            if (sc_set(c, k, val, sizeof val, 0) != SC_OK)
                die("sc_set", sc_errmsg(c));
            break;
        }
        case R_SC_GET:
            if (sc_get(pods[0], k, &v) != SC_OK)
                die("sc_get (remote)", sc_errmsg(pods[0]));
            sc_value_release(v);
            break;
        }
        freeReplyObject(r);
    }
    return (double)(now_ns() - t0) / (double)ops;
}

/* --------------------------------------------------------------- main -- */

static void print_stats_note(const local_result *r)
{
    if (r->misses || r->st.flushes || r->st.evictions)
        printf("\nWARNING: %s %zu keys: %ld misses, %llu flushes, %llu evictions during the run\n", r->policy,
               r->nkeys, r->misses, (unsigned long long)r->st.flushes, (unsigned long long)r->st.evictions);
}

int main(int argc, char **argv)
{
    int runs = 7;
    long ops = 2000000, remote_ops = 4000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ops"))
            ops = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--remote-ops"))
            remote_ops = atol(argv[i + 1]);
    }
    if (runs < 1 || runs > MAX_RUNS || ops < 0 || remote_ops < ROUNDS) {
        fprintf(stderr, "usage: hotpath [--runs 1..%d] [--ops N (0: no local hits)] [--remote-ops N >= %d]\n",
                MAX_RUNS, ROUNDS);
        return 2;
    }
    if (sc_test_redis_start(&g_redis, NULL) != 0)
        return 1;

    const size_t maxkeys = 1000000;
    g_keys = malloc(maxkeys * KEY_STRIDE);
    if (!g_keys)
        die("malloc", "keys");
    for (size_t i = 0; i < maxkeys; i++)
        snprintf(g_keys + i * KEY_STRIDE, KEY_STRIDE, "key:%07zu", i);

    /* Remote first, while the machine is quiet of our own threads. */
    redisContext *rc = sc_test_redis_connect(&g_redis);
    redisContext *sub = sc_test_redis_connect(&g_redis);
    if (!rc || !sub)
        die("connect", "raw hiredis");
    char sha[SHA_COUNT][41];
    const char *srcs[SHA_COUNT] = {[SHA_MIN] = MIN_WRITE_LUA, [SHA_FULL] = FULL_WRITE_LUA, [SHA_GET] = GET_LUA};
    for (int i = 0; i < SHA_COUNT; i++) {
        redisReply *r = cmd(rc, "SCRIPT LOAD %s", srcs[i]);
        snprintf(sha[i], sizeof sha[i], "%s", r->str);
        freeReplyObject(r);
    }
    freeReplyObject(cmd(sub, "SUBSCRIBE " RAW_CHANNEL));
    struct timeval forever = {0, 0};
    redisSetTimeout(sub, forever);
    pthread_t drainer;
    pthread_create(&drainer, NULL, drain_run, sub);

    char val[VALUE_LEN];
    memset(val, 'w', sizeof val);
    for (size_t i = 0; i < REMOTE_KEYS; i++)
        redisAppendCommand(rc, "SET raw:%s %b", g_keys + i * KEY_STRIDE, val, sizeof val);
    for (size_t i = 0; i < REMOTE_KEYS; i++) {
        redisReply *r;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK)
            die("redis", rc->errstr);
        freeReplyObject(r);
    }

    sc_options o;
    sc_options_init(&o);
    o.redis_port = g_redis.port;
    o.ns = "hot-remote";
    o.local_policy = SC_LOCAL_LRU;
    o.local_max_entries = 1;
    sc_cache *w, *w_nt;
    if (sc_open(&o, &w) != SC_OK)
        die("sc_open (writer)", sc_errmsg(NULL));
    o.redis_tracking = 0;
    o.ns = "hot-remote-nt"; /* its own namespace: w neither hears nor confirms its writes */
    if (sc_open(&o, &w_nt) != SC_OK)
        die("sc_open (writer, redis_tracking = 0)", sc_errmsg(NULL));
    sc_cache *const pods[2] = {w, w_nt};
    for (size_t i = 0; i < REMOTE_KEYS; i++)
        if (sc_set(w, g_keys + i * KEY_STRIDE, val, sizeof val, 0) != SC_OK)
            die("sc_set (fill)", sc_errmsg(w));

    double rem[R_COUNT][MAX_RUNS], script_us[R_COUNT] = {0};
    long script_ops[R_COUNT] = {0};
    uint64_t rng = 0x2545f4914f6cdd1dull;
    for (int k = 0; k < R_COUNT; k++) /* warm-up */
        time_remote(k, rc, pods, sha, remote_ops / 10 + 1, &rng);
    /* Each run is ROUNDS rounds of every operation in turn, so a burst of
     * load from a neighbour lands on all of them instead of on whichever
     * happened to be running. */
    for (int r = 0; r < runs; r++) {
        for (int k = 0; k < R_COUNT; k++)
            rem[k][r] = 0;
        for (int round = 0; round < ROUNDS; round++)
            for (int k = 0; k < R_COUNT; k++) {
                /* Redis' own time in scripts (EVALSHA's usec, which holds the
                 * commands the script calls), read outside the timed span. */
                double before = command_usec(rc, "evalsha");
                rem[k][r] += time_remote(k, rc, pods, sha, remote_ops / ROUNDS, &rng) / ROUNDS;
                script_us[k] += command_usec(rc, "evalsha") - before;
                script_ops[k] += remote_ops / ROUNDS;
            }
    }
    double remote_med[R_COUNT];
    for (int k = 0; k < R_COUNT; k++)
        remote_med[k] = median(rem[k], runs);
    sc_stats wst;
    sc_stats_get(w, &wst);
    sc_close(w);
    sc_close(w_nt);
    redisFree(rc); /* the drainer keeps its own connection until exit */

    local_result lr[4];
    int n = 0;
    const sc_local_policy pols[2] = {SC_LOCAL_LFU, SC_LOCAL_LRU};
    const size_t sizes[2] = {10000, maxkeys};
    for (int p = 0; p < 2 && ops > 0; p++)
        for (int s = 0; s < 2; s++)
            bench_local(pols[p], sizes[s], runs, ops, &lr[n++]);

    double raw_get = remote_med[R_GET];
    printf("## hotpath: medians of %d runs (%ld gets per thread per run; %ld remote ops per run)\n\n", runs, ops,
           remote_ops);
    printf("wall = elapsed CLOCK_MONOTONIC per get; CPU = the thread's own CPU time per get (leaves out time the "
           "scheduler gave other processes). Scaling: wall = 2-thread gets/s over 1-thread gets/s; CPU = "
           "2 x CPU ns (1 thread) / CPU ns (2 threads), i.e. the scaling two free cores would give.\n\n");
    printf("| local hit | 1T wall ns | 1T CPU ns | 1T Mgets/s | 2T wall ns | 2T CPU ns | 2T Mgets/s | scaling wall "
           "| scaling CPU | raw GET / hit (wall) | key pick alone CPU ns |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const local_result *r = &lr[i];
        printf("| %s, %zu keys | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.2fx | %.2fx | %.0fx | %.1f |\n", r->policy,
               r->nkeys, r->one.wall_ns, r->one.cpu_ns, r->one.ops_s / 1e6, r->two.wall_ns, r->two.cpu_ns,
               r->two.ops_s / 1e6, r->two.ops_s / r->one.ops_s, 2 * r->one.cpu_ns / r->two.cpu_ns,
               raw_get / r->one.wall_ns, r->pick.cpu_ns);
    }
    printf("\nWhere a 1-thread hit goes (CPU ns; store = the local tier alone, same configuration; peek = "
           "lookup without the recency/frequency update):\n\n");
    printf("| local hit | key pick | store peek | store get | policy update (get - peek) | sc_get | "
           "sc_get API layer (sc_get - store get) |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const local_result *r = &lr[i];
        printf("| %s, %zu keys | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", r->policy, r->nkeys, r->pick.cpu_ns,
               r->store_peek.cpu_ns, r->store_get.cpu_ns, r->store_get.cpu_ns - r->store_peek.cpu_ns,
               r->one.cpu_ns, r->one.cpu_ns - r->store_get.cpu_ns);
    }
    printf("\n| remote op (1 thread, wall) | us/op | ops/s | vs raw EVALSHA HSET+INCR+PUBLISH | scripts on Redis, us/op "
           "(mean) |\n|---|---|---|---|---|\n");
    for (int k = 0; k < R_COUNT; k++)
        printf("| %s | %.1f | %.0f | %.2fx | %.1f |\n", remote_names[k], remote_med[k] / 1e3, 1e9 / remote_med[k],
               remote_med[k] / remote_med[R_EVAL_MIN], script_us[k] / (double)script_ops[k]);
    printf("\nsc_get remote hit / raw GET: %.2fx; / raw EVALSHA of the same get script: %.2fx\n",
           remote_med[R_SC_GET] / raw_get, remote_med[R_SC_GET] / remote_med[R_EVAL_GET]);
    printf("sc_set / raw EVALSHA of the same full script: %.2fx\n", remote_med[R_SC_SET] / remote_med[R_EVAL_FULL]);

    printf("\n| target | measured (CPU / wall) | met (CPU / wall) |\n|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        double limit = lr[i].nkeys <= 10000 ? 60 : 150;
        printf("| %s local hit <= %.0f ns, %zu keys, 1 thread | %.1f / %.1f ns | %s / %s |\n", lr[i].policy, limit,
               lr[i].nkeys, lr[i].one.cpu_ns, lr[i].one.wall_ns, lr[i].one.cpu_ns <= limit ? "yes" : "NO",
               lr[i].one.wall_ns <= limit ? "yes" : "NO");
    }
    for (int i = 0; i < n; i++) {
        double rc_ = raw_get / lr[i].one.cpu_ns, rw = raw_get / lr[i].one.wall_ns;
        printf("| %s %zu keys: local hit >= 300x faster than raw GET | %.0fx / %.0fx | %s / %s |\n", lr[i].policy,
               lr[i].nkeys, rc_, rw, rc_ >= 300 ? "yes" : "NO", rw >= 300 ? "yes" : "NO");
    }
    for (int i = 0; i < n; i++) {
        double sc_ = 2 * lr[i].one.cpu_ns / lr[i].two.cpu_ns, sw = lr[i].two.ops_s / lr[i].one.ops_s;
        printf("| %s %zu keys: 2 threads >= 1.7x one thread | %.2fx / %.2fx | %s / %s |\n", lr[i].policy,
               lr[i].nkeys, sc_, sw, sc_ >= 1.7 ? "yes" : "NO", sw >= 1.7 ? "yes" : "NO");
    }
    double ratio = remote_med[R_SC_SET] / remote_med[R_EVAL_MIN];
    printf("| sc_set <= 1.3x raw EVALSHA HSET+INCR+PUBLISH | - / %.2fx | - / %s |\n", ratio,
           ratio <= 1.3 ? "yes" : "NO");
    for (int i = 0; i < n; i++)
        print_stats_note(&lr[i]);
    if (wst.remote_errors || wst.flushes)
        printf("\nWARNING: writer pod: %llu remote errors, %llu flushes\n", (unsigned long long)wst.remote_errors,
               (unsigned long long)wst.flushes);

    free(g_keys);
    sc_test_redis_stop(&g_redis);
    /* Stopping Redis closes the drainer's socket, which ends its loop. */
    pthread_join(drainer, NULL);
    redisFree(sub);
    return 0;
}
