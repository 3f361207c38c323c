/* Integration tests of cache-aside loading (sc_fetch, sc_fetch_batch,
 * sc_tag_deleted, load statistics) against a private redis-server: several
 * pods in one process, and pods in forked processes (one killed mid-load).
 * Each test uses its own namespace. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pods.h"

sc_test_redis g_redis;

#define NS(name) "f_" name

/* ------------------------------------------------------- a fake source -- */

/* A "database" with one value per test, a call counter (in-process and, for
 * loaders in other processes, a Redis counter) and knobs. */
typedef struct source {
    pthread_mutex_t mu;
    char value[256];      /* "" with missing = 1: not found */
    int missing;
    atomic_int calls;
    int delay_ms;         /* every call sleeps this long */
    int first_delay_ms;   /* the first call sleeps this long instead */
    sc_status fail;       /* != SC_OK: the loader fails with this */
    const char *msg;      /* its message */
    const char *redis_counter; /* INCR this Redis key on every call (NULL: no) */
    atomic_int started;   /* set when a call began */
} source;

static void source_init(source *s, const char *value)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    if (value)
        snprintf(s->value, sizeof s->value, "%s", value);
    else
        s->missing = 1;
}

static void source_put(source *s, const char *value)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->value, sizeof s->value, "%s", value);
    s->missing = 0;
    pthread_mutex_unlock(&s->mu);
}

static void redis_incr(const char *key)
{
    redisContext *rc = sc_test_redis_connect(&g_redis);
    if (!rc)
        return;
    redisReply *r = redisCommand(rc, "INCR %s", key);
    if (r)
        freeReplyObject(r);
    redisFree(rc);
}

static long long redis_int(const char *fmt, ...)
{
    redisContext *rc = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(rc);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer
                  : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                  : -999;
    freeReplyObject(r);
    redisFree(rc);
    return v;
}

/* HGET of a field of the key's hash, malloc'd ("<none>"). */
static char *redis_field(const char *ns, const char *key, const char *field)
{
    return test_redis_field_on(&g_redis, ns, key, field);
}

/* Assertions on the key's hash in Redis. Macros, so a failure names the
 * test's line. */
#define ASSERT_REDIS_FIELD(ns, key, field, want)                                                                       \
    do {                                                                                                               \
        char *got_ = redis_field((ns), (key), (field));                                                                \
        ck_assert_msg(strcmp(got_, (want)) == 0, "redis %s.%s: got %s, want %s", (key), (field), got_, (want));        \
        free(got_);                                                                                                    \
    } while (0)

/* Some pod holds the key's load lock (any holder). */
#define ASSERT_REDIS_LOCKED(ns, key)                                                                                   \
    do {                                                                                                               \
        char *got_ = redis_field((ns), (key), "lock");                                                                 \
        ck_assert_msg(strcmp(got_, "<none>") != 0, "redis %s.lock: no lock held", (key));                              \
        free(got_);                                                                                                    \
    } while (0)

/* The key's hash expires within (lo, hi] ms: no key is ever left without a
 * TTL, and none outlives what it was stored for. */
#define ASSERT_PTTL_WITHIN(ns, key, lo, hi)                                                                            \
    do {                                                                                                               \
        long long pttl_ = redis_int("PTTL {%s}:k:%s", (ns), (key));                                                    \
        ck_assert_msg(pttl_ > (lo) && pttl_ <= (hi), "PTTL %s: %lld, want (%lld, %lld]", (key), pttl_,                 \
                      (long long)(lo), (long long)(hi));                                                               \
    } while (0)

static sc_status load_source(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    source *s = ud;
    int n = atomic_fetch_add(&s->calls, 1);
    atomic_store(&s->started, 1);
    if (s->redis_counter)
        redis_incr(s->redis_counter);
    /* Read the database first, then take time: a slow query whose answer
     * may be outdated by the time it returns. */
    pthread_mutex_lock(&s->mu);
    char val[256];
    int missing = s->missing;
    snprintf(val, sizeof val, "%s", s->value);
    pthread_mutex_unlock(&s->mu);
    int d = n == 0 && s->first_delay_ms ? s->first_delay_ms : s->delay_ms;
    if (d)
        test_sleep_ms(d);
    if (s->fail != SC_OK) {
        if (s->msg)
            sc_loaded_error(slot, "%s (call %d)", s->msg, n + 1);
        return s->fail;
    }
    if (missing)
        return SC_NOT_FOUND;
    sc_loaded_set(slot, val, strlen(val));
    return SC_OK;
}

/* sc_fetch's value as a malloc'd string: "<none>", "<error:STATUS>". */
static char *fetch_str(sc_cache *c, const char *key, uint64_t ttl, source *s)
{
    sc_value *v = NULL;
    sc_status st = sc_fetch(c, key, ttl, load_source, s, &v);
    if (st == SC_NOT_FOUND)
        return strdup("<none>");
    if (st != SC_OK) {
        char buf[128];
        snprintf(buf, sizeof buf, "<error:%s>", sc_strerror(st));
        return strdup(buf);
    }
    char *out = strndup(sc_value_data(v), sc_value_size(v));
    sc_value_release(v);
    return out;
}

static sc_load_stats load_stats(sc_cache *c, sc_window w)
{
    sc_load_stats ls;
    sc_load_stats_get(c, w, &ls);
    return ls;
}

/* Two pods with o's settings, pod ids "a" and "b". */
static void open_a_and_b(const sc_options *o, sc_cache **a, sc_cache **b)
{
    sc_options ob = *o;
    ob.pod_id = "a";
    *a = test_open(&ob);
    ob.pod_id = "b";
    *b = test_open(&ob);
}

#define ASSERT_FETCH(c, key, ttl, src, want)                                    \
    do {                                                                        \
        char *got_ = fetch_str((c), (key), (ttl), (src));                       \
        ck_assert_msg(strcmp(got_, (want)) == 0, "fetch %s: got %s, want %s (%s)", (key), got_, (want), \
                      sc_errmsg(c));                                            \
        free(got_);                                                             \
    } while (0)

/* ---------------------------------------------------- one load, pods -- */

typedef struct fetcher {
    sc_cache *pod;
    const char *key;
    source *src;
    atomic_int *go;
    long long start_at;   /* test_now_ms() to start at (0: on go) */
    sc_status st;
    char got[64];
    long long took_ms;
    long long done_at;    /* test_now_ms() when sc_fetch returned */
} fetcher;

static void *fetcher_main(void *p)
{
    fetcher *f = p;
    while (f->go && !atomic_load(f->go))
        test_sleep_ms(1);
    while (f->start_at && test_now_ms() < f->start_at)
        test_sleep_ms(1);
    long long t0 = test_now_ms();
    sc_value *v = NULL;
    f->st = sc_fetch(f->pod, f->key, 60000, load_source, f->src, &v);
    f->done_at = test_now_ms();
    f->took_ms = f->done_at - t0;
    if (v) {
        snprintf(f->got, sizeof f->got, "%.*s", (int)sc_value_size(v), (const char *)sc_value_data(v));
        sc_value_release(v);
    }
    return NULL;
}

/* Runs f on a thread of its own and returns once its loader has begun (so
 * its pod holds the key's lock), or after 3 s: the tests that follow act
 * while the load is in flight. */
static pthread_t start_fetcher(fetcher *f)
{
    pthread_t t;
    pthread_create(&t, NULL, fetcher_main, f);
    WAIT_UNTIL(atomic_load(&f->src->started), 3000);
    return t;
}

static long long realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(one_load_across_pods_and_threads)
{
    enum { PODS = 3, THREADS = 4 };
    const char *counter = "f_one_calls";
    sc_test_redis_cmd(&g_redis, "DEL %s", counter);
    /* A fourth pod in another process joins the stampede at the same
     * (wall-clock) moment; its loader counts in Redis too. */
    long long start_rt = realtime_ms() + 800;
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        sc_options o = test_options(NS("one"), "child");
        sc_cache *c = NULL;
        if (sc_open(&o, &c) != SC_OK)
            _exit(2);
        source s;
        source_init(&s, "from-db");
        s.delay_ms = 300;
        s.redis_counter = counter;
        fetcher f[THREADS];
        pthread_t t[THREADS];
        while (realtime_ms() < start_rt)
            test_sleep_ms(1);
        for (int i = 0; i < THREADS; i++) {
            f[i] = (fetcher){.pod = c, .key = "hot", .src = &s};
            pthread_create(&t[i], NULL, fetcher_main, &f[i]);
        }
        int bad = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            bad += f[i].st != SC_OK || strcmp(f[i].got, "from-db") != 0;
        }
        sc_close(c);
        _exit(bad ? 1 : 0);
    }

    sc_cache *pods[PODS];
    source src[PODS];
    for (int p = 0; p < PODS; p++) {
        char id[8];
        snprintf(id, sizeof id, "p%d", p);
        pods[p] = test_pod(NS("one"), id);
        source_init(&src[p], "from-db");
        src[p].delay_ms = 300;
        src[p].redis_counter = counter;
    }
    fetcher f[PODS * THREADS];
    pthread_t t[PODS * THREADS];
    long long start_mono = test_now_ms() + (start_rt - realtime_ms());
    for (int i = 0; i < PODS * THREADS; i++) {
        f[i] = (fetcher){.pod = pods[i / THREADS], .key = "hot", .src = &src[i / THREADS], .start_at = start_mono};
        pthread_create(&t[i], NULL, fetcher_main, &f[i]);
    }
    for (int i = 0; i < PODS * THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(f[i].st == SC_OK, "fetcher %d: %s", i, sc_strerror(f[i].st));
        ck_assert_str_eq(f[i].got, "from-db");
    }
    int status = 0;
    waitpid(child, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child pod failed (%d)", status);
    /* One loader call in all: 4 pods (two processes) x 4 threads. */
    ck_assert_int_eq(redis_int("GET %s", counter), 1);
    /* The value is stored like a set: version, TTL, no lock left. */
    ASSERT_REDIS_FIELD(NS("one"), "hot", "lock", "<none>");
    ASSERT_PTTL_WITHIN(NS("one"), "hot", 50000, 60000);
    /* Every pod now answers from its local tier without a load. */
    for (int p = 0; p < PODS; p++) {
        ASSERT_FETCH(pods[p], "hot", 60000, &src[p], "from-db");
    }
    int calls = 0;
    for (int p = 0; p < PODS; p++)
        calls += atomic_load(&src[p].calls);
    ck_assert_int_le(calls, 1);
    ck_assert_int_eq(redis_int("GET %s", counter), 1); /* still the one load: a reload here counts there too */
    sc_load_stats ls;
    sc_load_stats_get(pods[0], SC_WINDOW_TOTAL, &ls);
    ck_assert_uint_eq(ls.hits + ls.misses, THREADS + 1);
    ck_assert_uint_eq(ls.errors, 0);
    for (int p = 0; p < PODS; p++)
        sc_close(pods[p]);
}
END_TEST

/* ------------------------------------------------------- not found -- */

START_TEST(not_found_is_cached_then_expires)
{
    sc_options o = test_options(NS("nf"), "a");
    o.empty_ttl_ms = 2000; /* outlives the checks below on a sanitizer build */
    sc_cache *a, *b;
    open_a_and_b(&o, &a, &b);
    source s;
    source_init(&s, NULL);
    ASSERT_FETCH(a, "ghost", 0, &s, "<none>");
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    /* The marker: a version, empty=1, no value, a TTL of empty_ttl_ms. */
    ASSERT_REDIS_FIELD(NS("nf"), "ghost", "empty", "1");
    ASSERT_REDIS_FIELD(NS("nf"), "ghost", "value", "<none>");
    ASSERT_PTTL_WITHIN(NS("nf"), "ghost", 0, 2000);
    /* Both pods answer "not found" without loading; sc_get agrees. */
    for (int i = 0; i < 5; i++) {
        ASSERT_FETCH(a, "ghost", 0, &s, "<none>");
        ASSERT_FETCH(b, "ghost", 0, &s, "<none>");
    }
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    sc_value *v;
    ck_assert_int_eq(sc_get(b, "ghost", &v), SC_NOT_FOUND);
    sc_load_stats ls = load_stats(b, SC_WINDOW_TOTAL);
    ck_assert_uint_eq(ls.hits, 5);
    ck_assert_uint_eq(ls.misses, 0);
    /* Once it lapses the loader runs again, and a value then replaces it on
     * every pod (its set event retires the cached "not found"). */
    test_sleep_ms(2100);
    source_put(&s, "born");
    ASSERT_FETCH(b, "ghost", 0, &s, "born");
    ck_assert_int_eq(atomic_load(&s.calls), 2);
    WAIT_UNTIL(test_held(a, "ghost"), 3000);
    ASSERT_FETCH(a, "ghost", 0, &s, "born");
    ck_assert_int_eq(atomic_load(&s.calls), 2);

    /* A write to a key cached as "not found" is seen at once. */
    source_init(&s, NULL);
    ASSERT_FETCH(a, "later", 0, &s, "<none>");
    ck_assert_int_eq(sc_set(b, "later", "written", 7, 0), SC_OK);
    WAIT_UNTIL(test_held(a, "later"), 3000);
    ASSERT_FETCH(a, "later", 0, &s, "written");
    ck_assert_int_eq(atomic_load(&s.calls), 1);

    /* An empty value from the loader is a value. */
    source_init(&s, "");
    sc_value *e = NULL;
    ck_assert_int_eq(sc_fetch(a, "blank", 0, load_source, &s, &e), SC_OK);
    ck_assert_uint_eq(sc_value_size(e), 0);
    sc_value_release(e);
    ck_assert_int_eq(sc_fetch(b, "blank", 0, load_source, &s, &e), SC_OK);
    ck_assert_uint_eq(sc_value_size(e), 0);
    sc_value_release(e);
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    sc_close(a);
    sc_close(b);

    /* empty_ttl_ms = 0: nothing cached, every fetch asks the source. */
    o = test_options(NS("nf0"), "z");
    o.empty_ttl_ms = 0;
    sc_cache *z = test_open(&o);
    source_init(&s, NULL);
    ASSERT_FETCH(z, "ghost", 0, &s, "<none>");
    ASSERT_FETCH(z, "ghost", 0, &s, "<none>");
    ck_assert_int_eq(atomic_load(&s.calls), 2);
    ck_assert_int_eq(redis_int("EXISTS {%s}:k:ghost", NS("nf0")), 0);
    sc_close(z);
}
END_TEST

/* A cached "not found" read from Redis in the last millisecond of its
 * marker (PTTL 0: Redis still holds the key, with nothing left) was kept
 * by the reading pod for its own empty_ttl_ms, since a PTTL of 0 was taken
 * as "no TTL": that pod answered "not found" long after the marker was
 * gone (here up to ten minutes, for a marker another pod stored for 1 ms).
 * The marker's end must bound every pod's copy, as it bounds a value's.
 * Without redis_tracking (off, refused, or an older Redis) nothing else
 * drops that copy when the marker expires. */
START_TEST(not_found_read_at_its_last_ms_is_not_kept_longer)
{
    sc_options o = test_options(NS("nflast"), "a");
    o.empty_ttl_ms = 1;
    sc_cache *a = test_open(&o);
    o.pod_id = "b";
    o.empty_ttl_ms = 600000;
    o.redis_tracking = 0;
    sc_cache *b = test_open(&o);
    /* About one read in five of a 1 ms marker lands in its last
     * millisecond (PTTL 0): a hundred reads, each of a fresh key. */
    int boundary = 0;
    for (int i = 0; i < 300 && boundary < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "g%d", i);
        source sa, sb;
        source_init(&sa, NULL);
        source_init(&sb, NULL);
        ASSERT_FETCH(a, key, 0, &sa, "<none>");
        ASSERT_FETCH(b, key, 0, &sb, "<none>");
        if (atomic_load(&sb.calls) != 0)
            continue; /* the marker was gone: b loaded (and stored its own) */
        /* b read the marker; now it lapses in Redis, and the coarse clock
         * (a scheduler tick) passes its end too. */
        WAIT_UNTIL(redis_int("EXISTS {%s}:k:%s", NS("nflast"), key) == 0, 1000);
        ck_assert_int_eq(redis_int("EXISTS {%s}:k:%s", NS("nflast"), key), 0);
        test_sleep_ms(15);
        boundary++;
        source_put(&sb, "born");
        ASSERT_FETCH(b, key, 0, &sb, "born");
        ck_assert_int_eq(atomic_load(&sb.calls), 1);
    }
    ck_assert_int_eq(boundary, 100);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* ------------------------------------------------------ loader failure -- */

START_TEST(loader_failure_caches_nothing_and_retries_at_once)
{
    sc_options o = test_options(NS("fail"), "a");
    o.lock_ttl_ms = 5000;
    sc_cache *a, *b;
    open_a_and_b(&o, &a, &b);
    source s;
    source_init(&s, "v");
    s.fail = SC_ERR_REMOTE;
    s.msg = "database down";
    sc_value *v = (sc_value *)&s;
    ck_assert_int_eq(sc_fetch(a, "k", 0, load_source, &s, &v), SC_ERR_LOADER);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(sc_errmsg(a), "database down (call 1)"), "%s", sc_errmsg(a));
    /* Nothing cached, and the lock is gone: no key at all. */
    ck_assert_int_eq(redis_int("EXISTS {%s}:k:k", NS("fail")), 0);
    /* The next fetch (another pod) loads at once, not after lock_ttl_ms. */
    s.fail = SC_OK;
    long long t0 = test_now_ms();
    ASSERT_FETCH(b, "k", 0, &s, "v");
    ck_assert_int_lt(test_now_ms() - t0, 2500); /* half the lock's 5000 ms */
    ck_assert_int_eq(atomic_load(&s.calls), 2);
    sc_load_stats ls = load_stats(a, SC_WINDOW_TOTAL);
    ck_assert_uint_eq(ls.errors, 1);
    ck_assert_double_eq_tol(ls.error_rate, 1.0, 1e-9);
    /* A failure without a message still says what failed. */
    source_init(&s, "x");
    s.fail = SC_ERR_TIMEOUT;
    ck_assert_int_eq(sc_fetch(a, "k2", 0, load_source, &s, &v), SC_ERR_LOADER);
    ck_assert_msg(strstr(sc_errmsg(a), "k2"), "%s", sc_errmsg(a));
    sc_close(a);
    sc_close(b);
}
END_TEST

/* --------------------------------------------------------------- jitter -- */

static sc_status load_batch_named(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    atomic_int *calls = ud;
    atomic_fetch_add(calls, 1);
    for (size_t i = 0; i < n; i++)
        sc_loaded_set(slots[i], keys[i], strlen(keys[i]));
    return SC_OK;
}

/* sc_fetch_batch refuses a TTL over 2^53 as sc_fetch_ex does, before its
 * loader runs: it used to call the loader, and then the store refused the
 * TTL or took it cut below 2^53 by the jitter, so the same call failed with
 * SC_ERR_INVALID after its callback ran, or succeeded uncached, at random. */
START_TEST(ttl_out_of_range_refused)
{
    sc_cache *a = test_pod(NS("bigttl"), "a");
    const char *keys[] = {"b1", "b2"};
    sc_value *out[2] = {NULL, NULL};
    atomic_int calls = 0;
    const uint64_t bad[] = {UINT64_MAX, (UINT64_C(1) << 53) + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sc_status st = sc_fetch_batch(a, keys, 2, bad[i], load_batch_named, &calls, out);
        ck_assert_msg(st == SC_ERR_INVALID, "sc_fetch_batch, ttl %llu: %s (%s)", (unsigned long long)bad[i],
                      sc_strerror(st), sc_errmsg(a));
        ck_assert_ptr_null(out[0]);
        ck_assert_ptr_null(out[1]);
    }
    ck_assert_int_eq(atomic_load(&calls), 0);
    TEST_ASSERT_STR_FREED(test_redis_value(NS("bigttl"), "b1"), "<none>", "b1 in Redis");
    TEST_ASSERT_STR_FREED(test_redis_value(NS("bigttl"), "b2"), "<none>", "b2 in Redis");
    /* The largest TTL allowed works. */
    ck_assert_int_eq(sc_fetch_batch(a, keys, 2, UINT64_C(1) << 53, load_batch_named, &calls, out), SC_OK);
    ck_assert_str_eq(sc_value_data(out[0]), "b1");
    ck_assert_str_eq(sc_value_data(out[1]), "b2");
    sc_value_release(out[0]);
    sc_value_release(out[1]);
    sc_close(a);
}
END_TEST

/* A batch with a key Redis holds as another type fails, and leaves no load
 * lock behind on the keys before it in the batch: fetch_lock.lua took their
 * locks and then stopped at the foreign key, so locks nobody held made every
 * pod wait lock_ttl_ms for those keys (a script's writes before an error
 * stay: it must fail before its first write, as the write scripts do). */
START_TEST(batch_with_a_foreign_key_leaves_no_lock)
{
    sc_cache *a = test_pod(NS("foreign"), "a");
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET {%s}:k:bad oops", NS("foreign")), 0);
    const char *keys[] = {"good", "bad"};
    sc_value *out[2] = {NULL, NULL};
    atomic_int calls = 0;
    sc_status st = sc_fetch_batch(a, keys, 2, 0, load_batch_named, &calls, out);
    ck_assert_int_eq(st, SC_ERR_REMOTE);
    ck_assert_msg(strstr(sc_errmsg(a), "WRONGTYPE"), "%s", sc_errmsg(a));
    ck_assert_int_eq(atomic_load(&calls), 0);
    TEST_ASSERT_STR_FREED(test_redis_field_on(&g_redis, NS("foreign"), "good", "lock"), "<none>",
                          "the lock on good after the failed batch");
    /* Alone, the good key loads at once. */
    ck_assert_int_eq(sc_fetch_batch(a, keys, 1, 0, load_batch_named, &calls, out), SC_OK);
    ck_assert_str_eq(sc_value_data(out[0]), "good");
    sc_value_release(out[0]);
    sc_close(a);
}
END_TEST

START_TEST(ttl_jitter_spreads_expiry_in_redis)
{
    enum { N = 200 };
    sc_options o = test_options(NS("jit"), "a");
    o.ttl_jitter_pct = 20;
    sc_cache *a = test_open(&o);
    char names[N][16];
    const char *keys[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "j%d", i);
        keys[i] = names[i];
    }
    sc_value *out[N];
    atomic_int calls = 0;
    ck_assert_int_eq(sc_fetch_batch(a, keys, N, 100000, load_batch_named, &calls, out), SC_OK);
    ck_assert_int_eq(atomic_load(&calls), 1);
    long long lo = LLONG_MAX, hi = 0, below95 = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_nonnull(out[i]);
        sc_value_release(out[i]);
        long long p = redis_int("PTTL {%s}:k:%s", NS("jit"), keys[i]);
        ck_assert_int_gt(p, 79000);
        ck_assert_int_le(p, 100000);
        lo = p < lo ? p : lo;
        hi = p > hi ? p : hi;
        below95 += p < 95000;
    }
    /* Uniform over 80..100 s: the spread covers most of the range. */
    ck_assert_int_gt(hi - lo, 15000);
    ck_assert_int_gt(below95, N / 2);
    sc_close(a);

    o = test_options(NS("jit0"), "z");
    o.ttl_jitter_pct = 0;
    sc_cache *z = test_open(&o);
    ck_assert_int_eq(sc_fetch_batch(z, keys, 20, 100000, load_batch_named, &calls, out), SC_OK);
    for (int i = 0; i < 20; i++) {
        sc_value_release(out[i]);
        ck_assert_int_gt(redis_int("PTTL {%s}:k:%s", NS("jit0"), keys[i]), 98000);
    }
    sc_close(z);
}
END_TEST

/* ---------------------------------------------------------------- batch -- */

typedef struct batch_src {
    atomic_int calls;
    char seen[16][32];
    size_t nseen;
} batch_src;

/* Values "db:<key>" for keys starting with 'm', not found for the rest. */
static sc_status load_batch_mixed(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    batch_src *b = ud;
    atomic_fetch_add(&b->calls, 1);
    for (size_t i = 0; i < n; i++) {
        if (b->nseen < 16)
            snprintf(b->seen[b->nseen++], sizeof b->seen[0], "%s", keys[i]);
        if (keys[i][0] == 'm') {
            char v[64];
            int len = snprintf(v, sizeof v, "db:%s", keys[i]);
            sc_loaded_set(slots[i], v, (size_t)len);
        }
    }
    return SC_OK;
}

static int seen(const batch_src *b, const char *key)
{
    for (size_t i = 0; i < b->nseen; i++)
        if (strcmp(b->seen[i], key) == 0)
            return 1;
    return 0;
}

START_TEST(batch_mixes_cached_loading_elsewhere_and_missing)
{
    sc_cache *a = test_pod(NS("batch"), "a");
    sc_cache *b = test_pod(NS("batch"), "b");
    /* c1 in a's local tier, c2 only in Redis (written by b, dropped on a). */
    ck_assert_int_eq(sc_set(a, "c1", "one", 3, 0), SC_OK);
    ck_assert_int_eq(sc_set(b, "c2", "two", 3, 0), SC_OK);
    /* l1 is being loaded by pod b (slow). */
    source sl;
    source_init(&sl, "from-b");
    sl.delay_ms = 600;
    fetcher fb = {.pod = b, .key = "l1", .src = &sl};
    pthread_t tb = start_fetcher(&fb);
    ASSERT_REDIS_LOCKED(NS("batch"), "l1");
    /* A lock on a missing key never leaves a key without a TTL (10 x
     * lock_ttl_ms: fetch_lock.lua). */
    ASSERT_PTTL_WITHIN(NS("batch"), "l1", 0, 30000);

    const char *keys[] = {"m1", "c1", "n1", "l1", "m2", "c2", "m1", "n2", "c1"};
    enum { N = sizeof keys / sizeof keys[0] };
    sc_value *out[N];
    batch_src bs;
    memset(&bs, 0, sizeof bs);
    long long t0 = test_now_ms();
    ck_assert_int_eq(sc_fetch_batch(a, keys, N, 0, load_batch_mixed, &bs, out), SC_OK);
    long long took = test_now_ms() - t0;
    pthread_join(tb, NULL);
    ck_assert_int_eq(fb.st, SC_OK);
    /* One loader call with exactly the missing keys not loading elsewhere. */
    ck_assert_int_eq(atomic_load(&bs.calls), 1);
    ck_assert_uint_eq(bs.nseen, 4);
    ck_assert(seen(&bs, "m1") && seen(&bs, "m2") && seen(&bs, "n1") && seen(&bs, "n2"));
    const char *want[N] = {"db:m1", "one", NULL, "from-b", "db:m2", "two", "db:m1", NULL, "one"};
    for (int i = 0; i < N; i++) {
        if (!want[i]) {
            ck_assert_msg(out[i] == NULL, "%s should be not found", keys[i]);
            continue;
        }
        ck_assert_msg(out[i] != NULL, "%s missing", keys[i]);
        ck_assert_str_eq(sc_value_data(out[i]), want[i]);
        sc_value_release(out[i]);
    }
    /* l1 was waited for (woken by b's set event), not loaded here. */
    ck_assert_int_lt(took, 3000);
    ck_assert_int_eq(atomic_load(&sl.calls), 1);
    /* Each unique key counted once, by its outcome: c1 (local) and c2
     * (Redis) hits; m1, m2, n1, n2 (loaded) and l1 (waited for) misses. */
    sc_load_stats ls = load_stats(a, SC_WINDOW_TOTAL);
    ck_assert_uint_eq(ls.hits, 2);
    ck_assert_uint_eq(ls.misses, 5);
    ck_assert_uint_eq(ls.errors, 0);
    ck_assert(ls.hit_avg_ns > 0 && ls.miss_avg_ns >= ls.hit_avg_ns);
    /* A second batch: all answered by tiers, no loader call. */
    memset(&bs, 0, sizeof bs);
    ck_assert_int_eq(sc_fetch_batch(b, keys, N, 0, load_batch_mixed, &bs, out), SC_OK);
    ck_assert_int_eq(atomic_load(&bs.calls), 0);
    for (int i = 0; i < N; i++)
        sc_value_release(out[i]);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* --------------------------------------------------------- tag / fence -- */

static void tag_case(sc_consistency mode, const char *ns)
{
    sc_options o = test_options(ns, "a");
    o.consistency = mode;
    sc_cache *a, *b;
    open_a_and_b(&o, &a, &b);
    source db;
    source_init(&db, "v1");
    ASSERT_FETCH(a, "k", 0, &db, "v1");
    ASSERT_FETCH(b, "k", 0, &db, "v1"); /* b holds v1 locally now */
    sc_value *v;
    ck_assert_int_eq(sc_peek(b, "k", &v), SC_OK);
    sc_value_release(v);

    /* The database changes, then the key is tagged (from a). */
    source_put(&db, "v2");
    ck_assert_int_eq(sc_tag_deleted(a, "k"), SC_OK);
    ASSERT_REDIS_FIELD(ns, "k", "outdated", "1");
    ASSERT_PTTL_WITHIN(ns, "k", 0, 10000);
    WAIT_UNTIL(!test_held(b, "k"), 3000);                  /* the tag's invalidate reached b */
    ck_assert_int_eq(sc_get(b, "k", &v), SC_NOT_FOUND);    /* gets never see outdated values */
    ck_assert_int_eq(atomic_load(&db.calls), 1);

    /* a reloads slowly; meanwhile b fetches. */
    source slow;
    source_init(&slow, "v2");
    slow.delay_ms = 700;
    fetcher fa = {.pod = a, .key = "k", .src = &slow};
    pthread_t ta = start_fetcher(&fa);
    long long t0 = test_now_ms();
    char *got = fetch_str(b, "k", 0, &db);
    long long took = test_now_ms() - t0;
    if (mode == SC_EVENTUAL) {
        /* The outdated value at once, instead of waiting for a's load. */
        ck_assert_str_eq(got, "v1");
        ck_assert_int_lt(took, 650); /* a's load takes 700 ms */
    } else {
        ck_assert_str_eq(got, "v2");
    }
    free(got);
    pthread_join(ta, NULL);
    ck_assert_int_eq(fa.st, SC_OK);
    ck_assert_str_eq(fa.got, "v2");
    ck_assert_int_eq(atomic_load(&db.calls), 1); /* b never loaded */
    ck_assert_int_eq(atomic_load(&slow.calls), 1);
    ASSERT_FETCH(b, "k", 0, &db, "v2");

    /* Fencing: a slow load that read the database before an update must not
     * store after the tag that follows the update. */
    source racing;
    source_init(&racing, "old");
    racing.first_delay_ms = 600;
    fetcher fr = {.pod = a, .key = "f", .src = &racing};
    pthread_t tr = start_fetcher(&fr);
    test_sleep_ms(50);
    source_put(&racing, "new");
    ck_assert_int_eq(sc_tag_deleted(b, "f"), SC_OK);
    pthread_join(tr, NULL);
    ck_assert_int_eq(fr.st, SC_OK);
    char *f = redis_field(ns, "f", "value");
    ck_assert_str_ne(f, "old");
    free(f);
    if (mode == SC_STRONG) {
        /* The fenced load is loaded again: the caller sees the new state. */
        ck_assert_str_eq(fr.got, "new");
        ck_assert_int_eq(atomic_load(&racing.calls), 2);
    } else {
        /* Returned to its own caller, never cached. */
        ck_assert_str_eq(fr.got, "old");
        ck_assert_int_eq(atomic_load(&racing.calls), 1);
    }
    ASSERT_FETCH(b, "f", 0, &racing, "new");
    ASSERT_FETCH(a, "f", 0, &racing, "new");

    /* sc_set and sc_delete revoke a lock the same way. */
    source s2;
    source_init(&s2, "stale-load");
    s2.delay_ms = 400;
    fetcher fs = {.pod = a, .key = "s", .src = &s2};
    pthread_t ts = start_fetcher(&fs);
    ck_assert_int_eq(sc_set(b, "s", "written", 7, 0), SC_OK);
    pthread_join(ts, NULL);
    ASSERT_REDIS_FIELD(ns, "s", "value", "written");
    fetcher fd = {.pod = a, .key = "d", .src = &s2};
    atomic_store(&s2.started, 0);
    ts = start_fetcher(&fd);
    pthread_mutex_lock(&s2.mu);
    s2.missing = 1; /* the row is deleted, then the cache entry */
    pthread_mutex_unlock(&s2.mu);
    ck_assert_int_eq(sc_delete(b, "d"), SC_OK);
    pthread_join(ts, NULL);
    ASSERT_REDIS_FIELD(ns, "d", "value", "<none>");

    sc_load_stats ls = load_stats(a, SC_WINDOW_TOTAL);
    ck_assert_uint_eq(ls.manual_misses, 1);
    sc_close(a);
    sc_close(b);
}

START_TEST(tag_deleted_eventual)
{
    tag_case(SC_EVENTUAL, NS("tag_ev"));
}
END_TEST

START_TEST(tag_deleted_strong)
{
    tag_case(SC_STRONG, NS("tag_st"));
}
END_TEST

/* Strong: a local copy is confirmed before it is served, so right after a
 * tag returns no pod serves the outdated value, even before the event. */
START_TEST(strong_never_serves_after_tag)
{
    sc_options o = test_options(NS("strong"), "a");
    o.consistency = SC_STRONG;
    sc_cache *a, *b;
    open_a_and_b(&o, &a, &b);
    source db;
    source_init(&db, "v0");
    for (int round = 1; round <= 20; round++) {
        char want[16], old[16];
        snprintf(old, sizeof old, "v%d", round - 1);
        snprintf(want, sizeof want, "v%d", round);
        char *got = fetch_str(b, "k", 0, &db);
        ck_assert_str_eq(got, old);
        free(got);
        source_put(&db, want);
        ck_assert_int_eq(sc_tag_deleted(a, "k"), SC_OK);
        got = fetch_str(b, "k", 0, &db);
        ck_assert_msg(strcmp(got, want) == 0, "round %d: got %s", round, got);
        free(got);
    }
    sc_stats st = test_stats(b);
    ck_assert_uint_gt(st.remote_hits, 0);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* ------------------------------------------------------------ dead pod -- */

START_TEST(lock_of_a_dead_pod_lapses)
{
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(pipefd[0]);
        sc_options o = test_options(NS("dead"), "doomed");
        o.lock_ttl_ms = 800;
        sc_cache *c = NULL;
        if (sc_open(&o, &c) != SC_OK)
            _exit(2);
        source s;
        source_init(&s, "never");
        s.delay_ms = 60000;
        /* The loader tells the parent it holds the lock, then hangs. */
        s.redis_counter = "f_dead_started";
        sc_value *v;
        if (write(pipefd[1], "x", 1) != 1)
            _exit(3);
        sc_fetch(c, "k", 0, load_source, &s, &v);
        _exit(4);
    }
    close(pipefd[1]);
    char ch;
    ck_assert_int_eq(read(pipefd[0], &ch, 1), 1);
    WAIT_UNTIL(redis_int("GET f_dead_started") == 1, 5000);
    ASSERT_REDIS_LOCKED(NS("dead"), "k");
    kill(child, SIGKILL);
    int status;
    waitpid(child, &status, 0);
    long long lock_killed = test_now_ms();
    /* The lock-only hash expires on its own (no key without a TTL), kept
     * 10 x lock_ttl_ms for a slow load nobody took over; the lock itself
     * lapses after lock_ttl_ms (the survivor below does not wait longer). */
    ASSERT_PTTL_WITHIN(NS("dead"), "k", 0, 8000);

    sc_cache *a = test_pod(NS("dead"), "survivor");
    source s;
    source_init(&s, "alive");
    ASSERT_FETCH(a, "k", 0, &s, "alive");
    long long waited = test_now_ms() - lock_killed;
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    ck_assert_int_lt(waited, 2500);
    ASSERT_REDIS_FIELD(NS("dead"), "k", "value", "alive");
    sc_close(a);
}
END_TEST

/* A lock held by a live pod in this process lapses too (a stuck loader):
 * one waiter takes over, the stuck load is fenced. */
START_TEST(stuck_loader_is_taken_over)
{
    sc_options o = test_options(NS("stuck"), "a");
    o.lock_ttl_ms = 300;
    sc_cache *a, *b;
    open_a_and_b(&o, &a, &b);
    source stuck;
    source_init(&stuck, "slow-value");
    stuck.delay_ms = 1200;
    fetcher fa = {.pod = a, .key = "k", .src = &stuck};
    pthread_t ta = start_fetcher(&fa);
    source quick;
    source_init(&quick, "quick-value");
    long long t0 = test_now_ms();
    ASSERT_FETCH(b, "k", 0, &quick, "quick-value");
    long long took = test_now_ms() - t0;
    ck_assert_int_lt(took, 1100);
    ck_assert_int_eq(atomic_load(&quick.calls), 1);
    pthread_join(ta, NULL);
    ck_assert_int_eq(fa.st, SC_OK);
    ASSERT_REDIS_FIELD(NS("stuck"), "k", "value", "quick-value");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A loader slower than lock_ttl_ms that no other pod displaced still holds
 * the only claim on the key: its result is stored (every pod gets it), and
 * SC_STRONG does not call the loader again. The lapse lets a waiter take
 * over (stuck_loader_is_taken_over); with no waiter it must not throw the
 * load away. */
static void slow_loader_with_no_rival(sc_consistency mode, const char *ns)
{
    sc_options o = test_options(ns, "a");
    o.lock_ttl_ms = 200;
    o.consistency = mode;
    sc_cache *a, *b;
    open_a_and_b(&o, &a, &b);
    source slow;
    source_init(&slow, "slow-but-alone");
    slow.delay_ms = 700;
    ASSERT_FETCH(a, "k", 0, &slow, "slow-but-alone");
    ck_assert_int_eq(atomic_load(&slow.calls), 1);
    ASSERT_REDIS_FIELD(ns, "k", "value", "slow-but-alone");
    source none;
    source_init(&none, "must-not-load");
    ASSERT_FETCH(b, "k", 0, &none, "slow-but-alone");
    ck_assert_int_eq(atomic_load(&none.calls), 0);
    sc_close(a);
    sc_close(b);
}

START_TEST(slow_loader_alone_stores_eventual)
{
    slow_loader_with_no_rival(SC_EVENTUAL, NS("slow_ev"));
}
END_TEST

START_TEST(slow_loader_alone_stores_strong)
{
    slow_loader_with_no_rival(SC_STRONG, NS("slow_st"));
}
END_TEST

/* A value marked outdated by sc_tag_deleted is readable to eventual fetches
 * for tag_delete_delay_ms, then removed: a load lock taken on it (a load
 * that outlived lock_ttl_ms, then another pod's after the lapse) must not
 * keep it answerable past that. lock_ttl_ms < tag_delete_delay_ms <
 * 10 x lock_ttl_ms: the lock-only hash's longer life must not become the
 * outdated value's. */
START_TEST(outdated_value_not_served_past_its_delay)
{
    const char *ns = NS("outdated_delay");
    sc_options o = test_options(ns, "a");
    o.lock_ttl_ms = 400;
    o.tag_delete_delay_ms = 1000;
    o.consistency = SC_EVENTUAL;
    sc_cache *a = test_open(&o);
    o.pod_id = "b";
    sc_cache *b = test_open(&o);
    o.pod_id = "d";
    sc_cache *d = test_open(&o);
    ck_assert_int_eq(sc_set(a, "k", "old", 3, 0), SC_OK);
    ck_assert_int_eq(sc_tag_deleted(a, "k"), SC_OK);
    long long tagged = test_now_ms();
    /* b's load takes the lock on the outdated value and outlives it. */
    source sb;
    source_init(&sb, "from-b");
    sb.delay_ms = 2500;
    fetcher fb = {.pod = b, .key = "k", .src = &sb};
    pthread_t tb = start_fetcher(&fb);
    while (test_now_ms() < tagged + 1200)
        test_sleep_ms(10); /* past tag_delete_delay_ms and b's lock */
    /* d takes the lapsed lock: a load in flight again. */
    source sd;
    source_init(&sd, "from-d");
    sd.delay_ms = 1500;
    fetcher fd = {.pod = d, .key = "k", .src = &sd};
    pthread_t td = start_fetcher(&fd);
    sc_fetch_opts fo;
    sc_fetch_opts_init(&fo);
    fo.hard_timeout_ms = 200;
    source sa;
    source_init(&sa, "from-a");
    sc_value *v = NULL;
    sc_status st = sc_fetch_ex(a, "k", &fo, load_source, &sa, &v, NULL);
    char got[64] = "";
    if (v)
        snprintf(got, sizeof got, "%.*s", (int)sc_value_size(v), (const char *)sc_value_data(v));
    sc_value_release(v);
    ck_assert_msg(!(st == SC_OK && strcmp(got, "old") == 0),
                  "the outdated value was served %lld ms after sc_tag_deleted (tag_delete_delay_ms 1000)",
                  test_now_ms() - tagged);
    pthread_join(tb, NULL);
    pthread_join(td, NULL);
    sc_close(a);
    sc_close(b);
    sc_close(d);
}
END_TEST

/* ------------------------------------------------------- window stats -- */

static sc_status load_fail(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)ud;
    sc_loaded_error(slot, "nope");
    return SC_ERR_REMOTE;
}

/* A thread fetching "hot" n times from its caches in turn; with halfway
 * set, it counts itself there after n / 2 and waits for go. */
typedef struct hitter {
    sc_cache **c;
    int nc, n;
    source *s;
    atomic_int *halfway, *go;
} hitter;

static void *hitter_main(void *p)
{
    hitter *h = p;
    for (int i = 0; i < h->n; i++) {
        if (h->halfway && i == h->n / 2) {
            atomic_fetch_add(h->halfway, 1);
            while (!atomic_load(h->go))
                sched_yield();
        }
        sc_value *v = NULL;
        ck_assert_int_eq(sc_fetch(h->c[i % h->nc], "hot", 0, load_source, h->s, &v), SC_OK);
        sc_value_release(v);
    }
    return NULL;
}

START_TEST(load_stats_windows)
{
    sc_options o = test_options(NS("win"), "a");
    /* Windows start when sc_open starts, somewhere in [t_open, t_opened]:
     * a time before t_open + k W is in window k - 1 or earlier, one from
     * t_opened + k W on in window k or later. Each step checks both, so a
     * slow machine (sanitizers) fails only when a step itself takes a
     * window. */
    enum { W = 2000 };
    o.stats_window_ms = W;
    long long t_open = test_now_ms();
    sc_cache *a = test_open(&o);
    long long t_opened = test_now_ms();
    source s;
    source_init(&s, "x");
    sc_value *v;
    /* Window 0: 1 miss (the load) + 3 hits. */
    ASSERT_FETCH(a, "k", 0, &s, "x");
    for (int i = 0; i < 3; i++)
        ASSERT_FETCH(a, "k", 0, &s, "x");
    sc_load_stats cur, last, tot;
    sc_load_stats_get(a, SC_WINDOW_CURRENT, &cur);
    sc_load_stats_get(a, SC_WINDOW_LAST, &last);
    ck_assert_uint_eq(cur.hits, 3);
    ck_assert_uint_eq(cur.misses, 1);
    ck_assert_uint_gt(cur.miss_ns, 0);
    ck_assert_double_eq_tol(cur.hit_rate, 0.75, 1e-9);
    ck_assert_uint_eq(last.hits + last.misses, 0);
    ck_assert_int_lt(test_now_ms(), t_open + W);

    /* Window 1: the first window is LAST now. */
    while (test_now_ms() < t_opened + W + 50)
        test_sleep_ms(10);
    sc_load_stats_get(a, SC_WINDOW_LAST, &last);
    sc_load_stats_get(a, SC_WINDOW_CURRENT, &cur);
    ck_assert_uint_eq(last.hits, 3);
    ck_assert_uint_eq(last.misses, 1);
    ck_assert_double_eq_tol(last.hit_avg_ns, (double)last.hit_ns / 3, 1e-6);
    ck_assert_uint_eq(cur.hits + cur.misses + cur.errors, 0);
    ck_assert_int_eq(sc_fetch(a, "bad", 0, load_fail, NULL, &v), SC_ERR_LOADER);
    ck_assert_int_eq(sc_fetch(a, "bad", 0, load_fail, NULL, &v), SC_ERR_LOADER);
    ck_assert_int_eq(sc_tag_deleted(a, "k"), SC_OK);
    sc_load_stats_get(a, SC_WINDOW_CURRENT, &cur);
    ck_assert_uint_eq(cur.errors, 2);
    ck_assert_uint_eq(cur.manual_misses, 1);
    ck_assert_double_eq_tol(cur.error_rate, 1.0, 1e-9);
    ck_assert_int_lt(test_now_ms(), t_open + 2 * W);

    /* Window 3 (window 2 had nothing): LAST is empty, TOTAL keeps all. */
    while (test_now_ms() < t_opened + 3 * W + 50)
        test_sleep_ms(10);
    sc_load_stats_get(a, SC_WINDOW_LAST, &last);
    sc_load_stats_get(a, SC_WINDOW_CURRENT, &cur);
    sc_load_stats_get(a, SC_WINDOW_TOTAL, &tot);
    ck_assert_uint_eq(last.hits + last.misses + last.errors + last.manual_misses, 0);
    ck_assert_uint_eq(cur.hits + cur.misses + cur.errors + cur.manual_misses, 0);
    ck_assert_uint_eq(tot.hits, 3);
    ck_assert_uint_eq(tot.misses, 1);
    ck_assert_uint_eq(tot.errors, 2);
    ck_assert_uint_eq(tot.manual_misses, 1);
    ck_assert_double_eq_tol(tot.hit_rate, 3.0 / 6.0, 1e-9);

    /* Exact under threads: 4 x 500 hits all counted. */
    ASSERT_FETCH(a, "hot", 0, &s, "x");
    hitter h = {&a, 1, 500, &s, NULL, NULL};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hitter_main, &h);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    sc_load_stats_get(a, SC_WINDOW_TOTAL, &tot);
    ck_assert_uint_eq(tot.hits, 3 + 2000);
    ck_assert_uint_eq(tot.misses, 2);
    /* Hit times are sampled (one in 16 per thread, each standing for 16):
     * present, and an average a local hit can have. */
    ck_assert_uint_gt(tot.hit_ns, 0);
    ck_assert_msg(tot.hit_avg_ns > 0 && tot.hit_avg_ns < 1e6, "hit_avg_ns %f", tot.hit_avg_ns);
    sc_load_stats_get(a, (sc_window)9, &tot);
    ck_assert_uint_eq(tot.hits, 0);
    sc_load_stats_get(NULL, SC_WINDOW_TOTAL, &tot);
    ck_assert_uint_eq(tot.hits, 0);
    sc_close(a);
}
END_TEST

/* Each thread counts into a record of its own per cache, read without
 * stopping it: a read while four live threads wait halfway has exactly
 * their hits; totals read while they fetch from two caches in turn never
 * go back and never overshoot; at the end every hit is counted once, in
 * its own cache, also from threads that exited (and from new threads that
 * may reuse their ids). */
static void run_two_cache_hitters(sc_cache *a, sc_cache *b, source *s, int per_thread, uint64_t before_a)
{
    sc_cache *both[2] = {a, b};
    atomic_int halfway = 0, go = 0;
    hitter h = {both, 2, per_thread, s, &halfway, &go};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hitter_main, &h);
    while (atomic_load(&halfway) < 4)
        sched_yield();
    sc_load_stats mid;
    sc_load_stats_get(a, SC_WINDOW_TOTAL, &mid);
    ck_assert_uint_eq(mid.hits, before_a + 4 * (uint64_t)(per_thread / 2) / 2);
    atomic_store(&go, 1);
    uint64_t seen = mid.hits;
    for (;;) {
        sc_load_stats tot;
        sc_load_stats_get(a, SC_WINDOW_TOTAL, &tot);
        ck_assert_uint_ge(tot.hits, seen);
        ck_assert_uint_le(tot.hits, before_a + 4 * (uint64_t)per_thread / 2);
        ck_assert_uint_eq(tot.misses, 1);
        seen = tot.hits;
        if (seen == before_a + 4 * (uint64_t)per_thread / 2)
            break;
        sched_yield();
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

START_TEST(load_stats_exact_under_threads_and_caches)
{
    sc_options oa = test_options(NS("lsa"), "a"), ob = test_options(NS("lsb"), "b");
    sc_cache *a = test_open(&oa), *b = test_open(&ob);
    source s;
    source_init(&s, "x");
    ASSERT_FETCH(a, "hot", 0, &s, "x");
    ASSERT_FETCH(b, "hot", 0, &s, "x");
    run_two_cache_hitters(a, b, &s, 2000, 0);
    run_two_cache_hitters(a, b, &s, 200, 4000);
    sc_load_stats ta, tb;
    sc_load_stats_get(a, SC_WINDOW_TOTAL, &ta);
    sc_load_stats_get(b, SC_WINDOW_TOTAL, &tb);
    ck_assert_uint_eq(ta.hits, 4400);
    ck_assert_uint_eq(tb.hits, 4400);
    ck_assert_uint_eq(ta.misses, 1);
    ck_assert_uint_eq(tb.misses, 1);
    ck_assert_uint_eq(atomic_load(&s.calls), 2);
    /* The same counts in the window in progress (60 s long). */
    sc_load_stats cur;
    sc_load_stats_get(a, SC_WINDOW_CURRENT, &cur);
    ck_assert_uint_eq(cur.hits + cur.misses, 4401);
    ck_assert_msg(ta.hit_avg_ns > 0 && ta.hit_avg_ns < 1e6, "hit_avg_ns %f", ta.hit_avg_ns);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* More caches than a thread keeps records for in its thread-local slots
 * (8): the thread finds its record in each cache's list, and every hit
 * still counts once, in its own cache. */
enum { MANY_CACHES = 11, ROUNDS = 200 };

START_TEST(load_stats_more_caches_than_thread_slots)
{
    sc_cache *c[MANY_CACHES];
    char ns[32];
    source s;
    source_init(&s, "x");
    for (int i = 0; i < MANY_CACHES; i++) {
        snprintf(ns, sizeof ns, "%s%d", NS("many"), i);
        sc_options o = test_options(ns, "a");
        c[i] = test_open(&o);
        ASSERT_FETCH(c[i], "hot", 0, &s, "x");
    }
    hitter h = {c, MANY_CACHES, ROUNDS * MANY_CACHES, &s, NULL, NULL};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hitter_main, &h);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < MANY_CACHES; i++) {
        sc_load_stats tot;
        sc_load_stats_get(c[i], SC_WINDOW_TOTAL, &tot);
        ck_assert_uint_eq(tot.hits, 2 * ROUNDS);
        ck_assert_uint_eq(tot.misses, 1);
        sc_close(c[i]);
    }
    ck_assert_int_eq(atomic_load(&s.calls), MANY_CACHES);
}
END_TEST

/* ------------------------------------------------------------ bad input -- */

typedef struct nested {
    sc_cache *c;
    sc_status inner;
    source *other;
} nested;

static sc_status load_nested(const char *key, sc_loaded *slot, void *ud)
{
    nested *n = ud;
    sc_value *v = NULL;
    /* A loader may fetch other keys, but not the one it loads. */
    if (strcmp(key, "outer") == 0) {
        n->inner = sc_fetch(n->c, "outer", 0, load_nested, n, &v);
        sc_value_release(v);
        ck_assert_int_eq(sc_fetch(n->c, "inner", 0, load_source, n->other, &v), SC_OK);
        sc_loaded_set(slot, sc_value_data(v), sc_value_size(v));
        sc_value_release(v);
        return SC_OK;
    }
    return SC_NOT_FOUND;
}

static sc_status load_big(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)ud;
    static char big[200];
    sc_loaded_set(slot, big, sizeof big);
    return SC_OK;
}

static sc_status load_nothing(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)slot;
    (void)ud;
    return SC_OK;
}

START_TEST(bad_input)
{
    sc_options o = test_options(NS("bad"), "a");
    o.max_value_bytes = 100;
    sc_cache *a = test_open(&o);
    sc_value *v = (sc_value *)&o;
    source s;
    source_init(&s, "x");
    ck_assert_int_eq(sc_fetch(a, "k", 0, NULL, NULL, &v), SC_ERR_INVALID);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(sc_errmsg(a), "loader"), "%s", sc_errmsg(a));
    ck_assert_int_eq(sc_fetch(NULL, "k", 0, load_source, &s, &v), SC_ERR_INVALID);
    ck_assert_int_eq(sc_fetch(a, NULL, 0, load_source, &s, &v), SC_ERR_INVALID);
    ck_assert_int_eq(sc_fetch(a, "", 0, load_source, &s, &v), SC_ERR_INVALID);
    ck_assert_int_eq(sc_fetch(a, "k", 0, load_source, &s, NULL), SC_ERR_INVALID);
    ck_assert_int_eq(sc_tag_deleted(a, NULL), SC_ERR_INVALID);
    ck_assert_int_eq(sc_tag_deleted(NULL, "k"), SC_ERR_INVALID);
    ck_assert_int_eq(atomic_load(&s.calls), 0);

    /* Batches: NULL loader, too many keys, a bad key among good ones. */
    const char *keys[] = {"a", "b", ""};
    sc_value *out[3] = {(sc_value *)&o, (sc_value *)&o, (sc_value *)&o};
    atomic_int calls = 0;
    ck_assert_int_eq(sc_fetch_batch(a, keys, 2, 0, NULL, NULL, out), SC_ERR_INVALID);
    ck_assert_int_eq(sc_fetch_batch(a, keys, 3, 0, load_batch_named, &calls, out), SC_ERR_INVALID);
    ck_assert_ptr_null(out[0]);
    size_t huge = SC_FETCH_BATCH_MAX + 1;
    const char **many = calloc(huge, sizeof *many);
    sc_value **mout = calloc(huge, sizeof *mout);
    for (size_t i = 0; i < huge; i++)
        many[i] = "same";
    ck_assert_int_eq(sc_fetch_batch(a, many, huge, 0, load_batch_named, &calls, mout), SC_ERR_INVALID);
    ck_assert_msg(strstr(sc_errmsg(a), "SC_FETCH_BATCH_MAX"), "%s", sc_errmsg(a));
    /* The largest batch allowed, all duplicates: one key loaded once. */
    ck_assert_int_eq(sc_fetch_batch(a, many, SC_FETCH_BATCH_MAX, 0, load_batch_named, &calls, mout), SC_OK);
    ck_assert_int_eq(atomic_load(&calls), 1);
    ck_assert_ptr_eq(mout[0], mout[SC_FETCH_BATCH_MAX - 1]);
    for (size_t i = 0; i < SC_FETCH_BATCH_MAX; i++)
        sc_value_release(mout[i]);
    free(many);
    free(mout);
    ck_assert_int_eq(sc_fetch_batch(a, keys, 0, 0, load_batch_named, &calls, out), SC_OK);

    /* A value over max_value_bytes: refused, nothing cached, lock released. */
    ck_assert_int_eq(sc_fetch(a, "big", 0, load_big, NULL, &v), SC_ERR_TOO_LARGE);
    ck_assert_msg(strstr(sc_errmsg(a), "max_value_bytes"), "%s", sc_errmsg(a));
    ck_assert_int_eq(redis_int("EXISTS {%s}:k:big", NS("bad")), 0);
    /* SC_OK without a value is a loader bug, reported as such. */
    ck_assert_int_eq(sc_fetch(a, "nothing", 0, load_nothing, NULL, &v), SC_ERR_LOADER);
    ck_assert_msg(strstr(sc_errmsg(a), "sc_loaded_set"), "%s", sc_errmsg(a));

    /* A loader fetching other keys works; fetching its own key fails. */
    source other;
    source_init(&other, "inner-value");
    nested n = {a, SC_OK, &other};
    ck_assert_int_eq(sc_fetch(a, "outer", 0, load_nested, &n, &v), SC_OK);
    ck_assert_str_eq(sc_value_data(v), "inner-value");
    sc_value_release(v);
    ck_assert_int_eq(n.inner, SC_ERR_INVALID);

    /* sc_loaded calls tolerate NULL. */
    sc_loaded_set(NULL, "x", 1);
    sc_loaded_error(NULL, "x");
    sc_close(a);

    /* A plain reader cannot take locks or store: refused up front. */
    o = test_options(NS("bad"), "reader");
    o.role = SC_ROLE_READER;
    sc_cache *r = test_open(&o);
    ck_assert_int_eq(sc_fetch(r, "k", 0, load_source, &s, &v), SC_ERR_INVALID);
    ck_assert_int_eq(sc_tag_deleted(r, "k"), SC_ERR_INVALID);
    ck_assert_int_eq(atomic_load(&s.calls), 0);
    sc_close(r);

    /* Options out of range. */
    sc_cache *c = NULL;
    o = test_options(NS("bad"), "o");
    o.ttl_jitter_pct = 101;
    ck_assert_int_eq(sc_open(&o, &c), SC_ERR_INVALID);
    ck_assert_msg(strstr(sc_errmsg(NULL), "ttl_jitter_pct"), "%s", sc_errmsg(NULL));
    o = test_options(NS("bad"), "o");
    o.lock_ttl_ms = 0;
    ck_assert_int_eq(sc_open(&o, &c), SC_ERR_INVALID);
    o = test_options(NS("bad"), "o");
    o.consistency = (sc_consistency)5;
    ck_assert_int_eq(sc_open(&o, &c), SC_ERR_INVALID);
    o = test_options(NS("bad"), "o");
    o.stats_window_ms = 0;
    ck_assert_int_eq(sc_open(&o, &c), SC_ERR_INVALID);
    ck_assert_str_eq(sc_strerror(SC_ERR_LOADER), "the loader reported a failure (see sc_errmsg)");
}
_Static_assert(SC_ERR_LOCKED == SC_ERR_LOADER + 1, "SC_ERR_LOCKED follows SC_ERR_LOADER");
END_TEST

static sc_status load_batch_fail(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    (void)keys;
    atomic_fetch_add((atomic_int *)ud, 1);
    for (size_t i = 0; i < n; i++)
        sc_loaded_set(slots[i], "partial", 7); /* set, but the batch fails */
    sc_loaded_error(slots[n - 1], "batch source down");
    return SC_ERR_REMOTE;
}

/* A failing batch loader: SC_ERR_LOADER, nothing cached, every lock freed;
 * a clear revokes a load in progress like a write does. */
START_TEST(batch_failure_and_clear_revoke)
{
    sc_cache *a = test_pod(NS("bfail"), "a");
    sc_cache *b = test_pod(NS("bfail"), "b");
    ck_assert_int_eq(sc_set(a, "have", "h", 1, 0), SC_OK);
    const char *keys[] = {"x1", "have", "x2", "x3"};
    sc_value *out[4];
    atomic_int calls = 0;
    ck_assert_int_eq(sc_fetch_batch(a, keys, 4, 0, load_batch_fail, &calls, out), SC_ERR_LOADER);
    ck_assert_msg(strstr(sc_errmsg(a), "batch source down"), "%s", sc_errmsg(a));
    ck_assert_int_eq(atomic_load(&calls), 1);
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_null(out[i]);
    ck_assert_int_eq(redis_int("EXISTS {%s}:k:x1 {%s}:k:x2 {%s}:k:x3", NS("bfail"), NS("bfail"), NS("bfail")), 0);
    /* Retried at once from another pod. */
    ck_assert_int_eq(sc_fetch_batch(b, keys, 4, 0, load_batch_named, &calls, out), SC_OK);
    ck_assert_str_eq(sc_value_data(out[0]), "x1");
    ck_assert_str_eq(sc_value_data(out[1]), "h");
    for (int i = 0; i < 4; i++)
        sc_value_release(out[i]);

    source s;
    source_init(&s, "before-clear");
    s.delay_ms = 2000; /* long enough for the clear and b's load on a loaded sanitizer build */
    fetcher f = {.pod = a, .key = "c", .src = &s};
    pthread_t t = start_fetcher(&f);
    ck_assert_int_eq(sc_clear(b), SC_OK);
    /* The clear revoked a's lock: b loads at once, while a's loader still
     * runs, instead of waiting for the lock to lapse. */
    source s2;
    source_init(&s2, "after-clear");
    ASSERT_FETCH(b, "c", 0, &s2, "after-clear");
    long long b_done = test_now_ms();
    pthread_join(t, NULL);
    ck_assert_int_eq(f.st, SC_OK);
    ck_assert_int_lt(b_done, f.done_at);
    /* a's load was fenced: it stored nothing over b's. */
    ASSERT_REDIS_FIELD(NS("bfail"), "c", "value", "after-clear");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* {ns}:meta evicted while a load is in flight (allkeys-*; a DEL does what
 * eviction does): the namespace counts as cleared at its counter, so the
 * load, locked before, is fenced like one a clear revoked; its lock goes
 * with it, and the next fetch loads at once instead of waiting for the
 * lock to lapse. */
START_TEST(meta_evicted_during_a_load_frees_its_lock)
{
    const char *ns = NS("metaload");
    sc_cache *a = test_pod(ns, "a");
    sc_cache *b = test_pod(ns, "b");
    source s;
    source_init(&s, "before-loss");
    s.delay_ms = 1000;
    fetcher f = {.pod = a, .key = "m", .src = &s};
    pthread_t t = start_fetcher(&f);
    ck_assert_int_eq(sc_set(b, "o1", "1", 1, 0), SC_OK);
    ck_assert_int_eq(redis_int("DEL {%s}:meta", ns), 1);
    ck_assert_int_eq(sc_set(b, "o2", "2", 1, 0), SC_OK); /* makes the meta again */
    pthread_join(t, NULL);
    ck_assert_int_eq(f.st, SC_OK);
    ck_assert_msg(redis_int("HEXISTS {%s}:k:m lock", ns) == 0,
                  "the fenced load's lock is still held after its store was refused");
    ck_assert_msg(redis_int("HEXISTS {%s}:k:m value", ns) == 0, "a load begun before the loss stored");
    source s2;
    source_init(&s2, "after-loss");
    ASSERT_FETCH(b, "m", 0, &s2, "after-loss");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A lock that does not lapse within the wait (here: one planted far in the
 * future): SC_ERR_LOCKED after about 2 x lock_ttl_ms + 2 x redis_timeout_ms,
 * and the loader is never called. */
START_TEST(locked_past_the_wait)
{
    sc_options o = test_options(NS("locked"), "a");
    o.lock_ttl_ms = 200;
    o.redis_timeout_ms = 200;
    sc_cache *a = test_open(&o);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {%s}:k:k lock other-pod lock_until 99999999999999 lock_seq 1",
                                       NS("locked")), 0);
    source s;
    source_init(&s, "x");
    long long t0 = test_now_ms();
    sc_value *v = (sc_value *)&s;
    ck_assert_int_eq(sc_fetch(a, "k", 0, load_source, &s, &v), SC_ERR_LOCKED);
    long long took = test_now_ms() - t0;
    ck_assert_ptr_null(v);
    ck_assert_int_ge(took, 700);
    ck_assert_int_lt(took, 3000);
    ck_assert_msg(strstr(sc_errmsg(a), "lock"), "%s", sc_errmsg(a));
    ck_assert_int_eq(atomic_load(&s.calls), 0);
    /* A write revokes it; the next fetch gets the written value. */
    ck_assert_int_eq(sc_set(a, "k", "w", 1, 0), SC_OK);
    ASSERT_FETCH(a, "k", 0, &s, "w");
    sc_close(a);
}
END_TEST

/* A waiter is woken by the holder's set event, not by its fallback poll
 * (every 250 ms with this lock_ttl_ms): it returns within a few ms of the
 * holder (the 100 ms bound leaves room for a sanitizer build's slow
 * wake-ups). With the poll alone, 6 of 8 waits under 100 ms would happen
 * about 5% of the time. */
START_TEST(waiters_wake_on_the_set_event)
{
    sc_options o = test_options(NS("wake"), "a");
    o.lock_ttl_ms = 10000;
    sc_cache *a, *b;
    open_a_and_b(&o, &a, &b);
    int quick = 0;
    long long lag[8];
    for (int i = 0; i < 8; i++) {
        char key[8];
        snprintf(key, sizeof key, "w%d", i);
        source slow;
        source_init(&slow, "v");
        slow.delay_ms = 700 + 37 * i;
        fetcher fa = {.pod = a, .key = key, .src = &slow};
        pthread_t ta = start_fetcher(&fa);
        source other;
        source_init(&other, "never");
        ASSERT_FETCH(b, key, 0, &other, "v");
        long long b_done = test_now_ms();
        pthread_join(ta, NULL);
        ck_assert_int_eq(atomic_load(&other.calls), 0);
        lag[i] = b_done - fa.done_at;
        quick += lag[i] < 100;
    }
    ck_assert_msg(quick >= 6, "waiter lag behind the holder: %lld %lld %lld %lld %lld %lld %lld %lld ms", lag[0],
                  lag[1], lag[2], lag[3], lag[4], lag[5], lag[6], lag[7]);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* sc_get keeps treating markers, locks and tagged values as absent. */
START_TEST(get_ignores_markers_locks_and_tags)
{
    sc_cache *a = test_pod(NS("get"), "a");
    sc_cache *b = test_pod(NS("get"), "b");
    source s;
    source_init(&s, NULL);
    ASSERT_FETCH(a, "nf", 0, &s, "<none>");
    sc_value *v;
    ck_assert_int_eq(sc_get(b, "nf", &v), SC_NOT_FOUND);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {%s}:k:locked lock t lock_until 1 lock_seq 1", NS("get")), 0);
    ck_assert_int_eq(sc_get(b, "locked", &v), SC_NOT_FOUND);
    ck_assert_int_eq(sc_set(a, "t", "val", 3, 0), SC_OK);
    /* b holds a copy before the tag, so its going is the tag's invalidate
     * (waiting for "not held" alone passed before the set's event arrived,
     * which then put the value back). */
    TEST_ASSERT_STR_FREED(test_get(b, "t"), "val", "t on b before the tag");
    ck_assert(test_held(b, "t"));
    ck_assert_int_eq(sc_tag_deleted(a, "t"), SC_OK);
    /* (b drops its copy on the tag's invalidate; its get then reads Redis) */
    WAIT_UNTIL(!test_held(b, "t"), 3000);
    ck_assert_int_eq(sc_get(b, "t", &v), SC_NOT_FOUND);
    ck_assert_int_eq(sc_get(a, "t", &v), SC_NOT_FOUND);
    /* A set after the tag is a plain value again. */
    ck_assert_int_eq(sc_set(a, "t", "val2", 4, 0), SC_OK);
    ASSERT_REDIS_FIELD(NS("get"), "t", "outdated", "<none>");
    char *g = test_get(b, "t");
    ck_assert_str_eq(g, "val2");
    free(g);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* ------------------------------------------ sixth audit: interactions -- */

/* Polls (up to 2 s) until sc_fetch of key on c answers want. */
static int fetch_soon(sc_cache *c, const char *key, source *s, const char *want)
{
    long long end = test_now_ms() + 2000;
    for (;;) {
        char *got = fetch_str(c, key, 60000, s);
        int same = strcmp(got, want) == 0;
        free(got);
        if (same || test_now_ms() >= end)
            return same;
        test_sleep_ms(5);
    }
}

/* A cached "not found" is a copy like any other: with redis_tracking (the
 * default) a write that bypasses synccache (here redis-cli DEL of the
 * marker) drops it on every pod, and the next fetch loads again instead of
 * answering "not found" until empty_ttl_ms ends. */
START_TEST(foreign_write_drops_cached_not_found)
{
    const char *ns = NS("neg_foreign");
    sc_cache *a = test_pod(ns, "a");
    sc_cache *b = test_pod(ns, "b");
    WAIT_UNTIL(test_stats(a).tracking_active && test_stats(b).tracking_active, 2000);
    ck_assert(test_stats(a).tracking_active && test_stats(b).tracking_active);
    source s;
    source_init(&s, NULL); /* not in the database */
    TEST_ASSERT_STR_FREED(fetch_str(a, "nf", 60000, &s), "<none>", "a");
    TEST_ASSERT_STR_FREED(fetch_str(b, "nf", 60000, &s), "<none>", "b"); /* b read the marker */
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    ASSERT_REDIS_FIELD(ns, "nf", "empty", "1");
    TEST_WAIT_APPLIED(a, ns, 3000);
    TEST_WAIT_APPLIED(b, ns, 3000);
    /* The row appears; an operator drops the marker so that pods reload. */
    source_put(&s, "row");
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "DEL {%s}:k:nf", ns), 0);
    ck_assert_msg(fetch_soon(a, "nf", &s, "row"), "a still answers its cached not-found");
    ck_assert_msg(fetch_soon(b, "nf", &s, "row"), "b still answers its cached not-found");

    sc_close(a);
    sc_close(b);
}
END_TEST

/* The same for a write made while the pod's stream was down: a
 * resubscription confirms every local copy with Redis (docs/protocol.md,
 * "Canary and resubscription"), and a cached "not found" whose marker is
 * gone is no exception, whatever the disconnect policy. */
START_TEST(foreign_write_while_away_drops_cached_not_found)
{
    const sc_disconnect_policy policies[] = {SC_DISCONNECT_BYPASS, SC_DISCONNECT_FLUSH};
    for (int p = 0; p < 2; p++) {
        char ns[64];
        snprintf(ns, sizeof ns, "%s%d", NS("neg_foreign_away"), p);
        sc_options o = test_options(ns, "a");
        o.disconnect_policy = policies[p];
        o.reconnect_min_ms = 600; /* stays away while the marker goes */
        o.reconnect_max_ms = 1200;
        sc_cache *a = test_open(&o);
        WAIT_UNTIL(test_stats(a).tracking_active, 2000);
        ck_assert(test_stats(a).tracking_active);
        source s;
        source_init(&s, NULL);
        TEST_ASSERT_STR_FREED(fetch_str(a, "nf", 60000, &s), "<none>", "a");
        TEST_WAIT_APPLIED(a, ns, 3000);
        ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "CLIENT KILL TYPE pubsub"), 0);
        WAIT_UNTIL(test_stats(a).synced == 0, 2000);
        ck_assert_uint_eq(test_stats(a).synced, 0);
        source_put(&s, "row");
        ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "DEL {%s}:k:nf", ns), 0);
        WAIT_UNTIL(test_stats(a).synced == 1, 5000);
        ck_assert_uint_eq(test_stats(a).synced, 1);
        char *got = fetch_str(a, "nf", 60000, &s);
        ck_assert_msg(strcmp(got, "row") == 0, "policy %d: a after resubscribing: got %s, want row", p, got);
        free(got);
        sc_close(a);
    }
}
END_TEST

static Suite *fetch_suite(void)
{
    Suite *s = suite_create("fetch");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, one_load_across_pods_and_threads);
    tcase_add_test(tc, not_found_is_cached_then_expires);
    tcase_add_test(tc, not_found_read_at_its_last_ms_is_not_kept_longer);
    tcase_add_test(tc, loader_failure_caches_nothing_and_retries_at_once);
    tcase_add_test(tc, ttl_jitter_spreads_expiry_in_redis);
    tcase_add_test(tc, batch_mixes_cached_loading_elsewhere_and_missing);
    tcase_add_test(tc, tag_deleted_eventual);
    tcase_add_test(tc, tag_deleted_strong);
    tcase_add_test(tc, strong_never_serves_after_tag);
    tcase_add_test(tc, lock_of_a_dead_pod_lapses);
    tcase_add_test(tc, stuck_loader_is_taken_over);
    tcase_add_test(tc, load_stats_windows);
    tcase_add_test(tc, load_stats_exact_under_threads_and_caches);
    tcase_add_test(tc, load_stats_more_caches_than_thread_slots);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, ttl_out_of_range_refused);
    tcase_add_test(tc, batch_with_a_foreign_key_leaves_no_lock);
    tcase_add_test(tc, get_ignores_markers_locks_and_tags);
    tcase_add_test(tc, batch_failure_and_clear_revoke);
    tcase_add_test(tc, meta_evicted_during_a_load_frees_its_lock);
    tcase_add_test(tc, locked_past_the_wait);
    tcase_add_test(tc, waiters_wake_on_the_set_event);
    suite_add_tcase(s, tc);
    /* Interactions of loading with the other features (sixth audit). */
    TCase *ti = tcase_create("interactions");
    tcase_set_timeout(ti, 60);
    tcase_add_test(ti, foreign_write_drops_cached_not_found);
    tcase_add_test(ti, foreign_write_while_away_drops_cached_not_found);
    suite_add_tcase(s, ti);
    /* A lapsed lock nobody took over (a slow loader alone). */
    TCase *tl = tcase_create("lapse");
    tcase_set_timeout(tl, 60);
    tcase_add_test(tl, slow_loader_alone_stores_eventual);
    tcase_add_test(tl, slow_loader_alone_stores_strong);
    tcase_add_test(tl, outdated_value_not_served_past_its_delay);
    suite_add_tcase(s, tl);
    return s;
}

int main(void)
{
    return test_run_suite(fetch_suite(), NULL);
}
