/* Resilience of loading (issue 13) against a private redis-server, with
 * several pods in one process: sc_fetch_ex's grace period (stale-if-error:
 * a failing loader, Redis stopped), soft and hard timeouts (the load left
 * running stores its result, but never over a newer write), and tags
 * (sc_set_tagged, tags on sc_fetch_ex, sc_invalidate_tag across pods and in
 * Redis, a key in several tags, re-tagging, a tag event lost while a pod was
 * disconnected, 100,000 keys under one tag). Each test has its own
 * namespace. Timing bounds here are loose sanity bounds on behaviour (a
 * caller is back at its timeout, not at the loader's end); the costs are
 * measured in bench/tags.c. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "lib/internal.h"
#include "pods.h"
#include "sync/sync.h"

sc_test_redis g_redis;

#define NS(name) "r_" name

/* ------------------------------------------------------- a fake source -- */

typedef struct source {
    pthread_mutex_t mu;
    char value[64];
    atomic_int calls;
    atomic_int returned;  /* calls that returned */
    int delay_ms;
    sc_status fail;       /* != SC_OK: fail with this */
} source;

static void source_init(source *s, const char *value)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->value, sizeof s->value, "%s", value);
}

static void source_put(source *s, const char *value)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->value, sizeof s->value, "%s", value);
    pthread_mutex_unlock(&s->mu);
}

static sc_status load_source(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    source *s = ud;
    atomic_fetch_add(&s->calls, 1);
    pthread_mutex_lock(&s->mu);
    char val[64];
    snprintf(val, sizeof val, "%s", s->value);
    sc_status fail = s->fail;
    int d = s->delay_ms;
    pthread_mutex_unlock(&s->mu);
    if (d)
        test_sleep_ms(d);
    atomic_fetch_add(&s->returned, 1);
    if (fail != SC_OK) {
        sc_loaded_error(slot, "the source is down");
        return fail;
    }
    sc_loaded_set(slot, val, strlen(val));
    return SC_OK;
}

typedef struct result {
    sc_status st;
    char got[64];
    sc_get_info info;
    long long took_ms;
} result;

static result fetch_ex(sc_cache *c, const char *key, const sc_fetch_opts *o, source *s)
{
    result r;
    memset(&r, 0, sizeof r);
    sc_value *v = NULL;
    long long t0 = test_now_ms();
    r.st = sc_fetch_ex(c, key, o, load_source, s, &v, &r.info);
    r.took_ms = test_now_ms() - t0;
    if (r.st == SC_OK) {
        snprintf(r.got, sizeof r.got, "%.*s", (int)sc_value_size(v), (const char *)sc_value_data(v));
        sc_value_release(v);
    } else {
        ck_assert_ptr_null(v);
        snprintf(r.got, sizeof r.got, "<%s>", sc_strerror(r.st));
    }
    return r;
}

static sc_options opts(const char *ns, const char *id)
{
    sc_options o = test_options(ns, id);
    o.ttl_jitter_pct = 0;
    return o;
}

#define ASSERT_REDIS_FIELD(ns, key, field, want)                                                                       \
    do {                                                                                                               \
        char *got_ = test_redis_field_on(&g_redis, (ns), (key), (field));                                              \
        ck_assert_msg(strcmp(got_, (want)) == 0, "redis %s.%s: got %s, want %s", (key), (field), got_, (want));        \
        free(got_);                                                                                                    \
    } while (0)

static int redis_value_is(const char *ns, const char *key, const char *want)
{
    char *got = test_redis_field_on(&g_redis, ns, key, "value");
    int same = strcmp(got, want) == 0;
    free(got);
    return same;
}

/* A load left running in the background stores after its caller returned:
 * poll Redis for up to 3 s, then assert, so a store that never lands fails
 * with the value Redis holds. */
#define ASSERT_REDIS_VALUE_SOON(ns, key, want)                                                                         \
    do {                                                                                                               \
        WAIT_UNTIL(redis_value_is((ns), (key), (want)), 3000);                                                         \
        ASSERT_REDIS_FIELD((ns), (key), "value", (want));                                                              \
    } while (0)

/* A fetch that answered SC_OK with want, stale or not. A macro, so a
 * failure names the test's line. */
#define ASSERT_SERVED(c, r, want, is_stale)                                                                            \
    do {                                                                                                               \
        ck_assert_msg((r).st == SC_OK, "%s: %s", (r).got, sc_errmsg(c));                                               \
        ck_assert_msg(strcmp((r).got, (want)) == 0, "got %s, want %s", (r).got, (want));                               \
        ck_assert_msg((r).info.stale == (is_stale), "stale %d, want %d", (r).info.stale, (is_stale));                  \
    } while (0)

/* sc_get's answer on c ("<none>" when absent). */
#define ASSERT_VALUE(c, key, want) TEST_ASSERT_STR_FREED(test_get((c), (key)), (want), (key))

/* Fetch options with a TTL and everything else at its default (grace from
 * the pod's option, no timeouts, no tags). */
static sc_fetch_opts fetch_opts_ttl(uint64_t ttl_ms)
{
    sc_fetch_opts fo;
    sc_fetch_opts_init(&fo);
    fo.ttl_ms = ttl_ms;
    return fo;
}

/* -------------------------------------------------------------- grace -- */

START_TEST(fetch_opts_defaults)
{
    sc_fetch_opts o;
    memset(&o, 0x5a, sizeof o);
    sc_fetch_opts_init(&o);
    ck_assert_uint_eq(o.ttl_ms, 0);
    ck_assert(o.grace_ms == UINT64_MAX);
    ck_assert_uint_eq(o.soft_timeout_ms, 0);
    ck_assert_uint_eq(o.hard_timeout_ms, 0);
    ck_assert_ptr_null(o.tags);
    ck_assert_uint_eq(o.ntags, 0);
    sc_options so;
    sc_options_init(&so);
    ck_assert_uint_eq(so.grace_ms, 0);
    ck_assert_uint_eq(so.local_max_entries, 100000);
    ck_assert_uint_eq(so.local_max_bytes, (size_t)256 << 20);
    so.grace_ms = (UINT64_C(1) << 40) + 1;
    sc_cache *c = NULL;
    ck_assert_int_eq(sc_open(&so, &c), SC_ERR_INVALID);
}
END_TEST

/* A failing loader: the graced value, SC_OK and stale; gets never see it;
 * another pod reads it from Redis; a call with no grace, or past the grace,
 * gets the loader's failure. */
START_TEST(grace_with_failing_loader)
{
    const char *ns = NS("grace_fail");
    sc_options o = opts(ns, "a");
    o.grace_ms = 1500; /* the option; the calls below use it */
    sc_cache *a = test_open(&o);
    sc_cache *b = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = fetch_opts_ttl(300);
    result r = fetch_ex(a, "k", &fo, &s);
    ASSERT_SERVED(a, r, "v1", 0);
    ck_assert_int_eq(r.info.source, SC_SOURCE_REMOTE);
    /* In Redis: fresh_until set, TTL = ttl + grace. */
    redisContext *rc = sc_test_redis_connect(&g_redis);
    redisReply *rep = redisCommand(rc, "PTTL {%s}:k:k", ns);
    ck_assert_int_gt(rep->integer, 1000);
    freeReplyObject(rep);
    redisFree(rc);

    test_sleep_ms(450); /* past the TTL, within the grace */
    s.fail = SC_ERR_LOADER;
    r = fetch_ex(a, "k", &fo, &s);
    ASSERT_SERVED(a, r, "v1", 1);
    ck_assert_uint_ge(r.info.sync_age_ms, 100);
    ck_assert_int_eq(atomic_load(&s.calls), 2); /* it did try to reload */
    ck_assert_uint_eq(test_stats(a).stale_served, 1);
    /* The graced value is not fresh: gets treat it as absent. */
    ASSERT_VALUE(a, "k", "<none>");
    ASSERT_REDIS_FIELD(ns, "k", "value", "v1");
    /* Pod b never held it: it reads the graced value from Redis. */
    r = fetch_ex(b, "k", &fo, &s);
    ASSERT_SERVED(b, r, "v1", 1);
    /* A call without grace gets the failure. */
    sc_fetch_opts none = fo;
    none.grace_ms = 0;
    r = fetch_ex(b, "k", &none, &s);
    ck_assert_int_eq(r.st, SC_ERR_LOADER);
    ck_assert(strstr(sc_errmsg(b), "the source is down") != NULL);
    /* A call with a shorter grace than the value's age gets it too. */
    sc_fetch_opts shorter = fo;
    shorter.grace_ms = 50;
    r = fetch_ex(a, "k", &shorter, &s);
    ck_assert_int_eq(r.st, SC_ERR_LOADER);
    /* Past its grace: never served. */
    test_sleep_ms(1500);
    r = fetch_ex(a, "k", &fo, &s);
    ck_assert_int_eq(r.st, SC_ERR_LOADER);
    r = fetch_ex(b, "k", &fo, &s);
    ck_assert_int_eq(r.st, SC_ERR_LOADER);
    /* The source back: a fresh value, not stale. */
    s.fail = SC_OK;
    source_put(&s, "v2");
    r = fetch_ex(b, "k", &fo, &s);
    ASSERT_SERVED(b, r, "v2", 0);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A graced value that a write replaced is never served stale. */
START_TEST(grace_never_older_than_a_write)
{
    const char *ns = NS("grace_write");
    sc_options o = opts(ns, "a");
    o.grace_ms = 5000;
    sc_cache *a = test_open(&o);
    sc_cache *b = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = fetch_opts_ttl(200);
    ck_assert_int_eq(fetch_ex(a, "k", &fo, &s).st, SC_OK);
    ck_assert_int_eq(sc_delete(b, "k"), SC_OK);
    /* a applied the delete (its copy also expires with the TTL, so waiting
     * for the copy to go would not say the delete's event arrived). */
    TEST_WAIT_APPLIED(a, ns, 3000);
    test_sleep_ms(300);
    s.fail = SC_ERR_LOADER;
    result r = fetch_ex(a, "k", &fo, &s);
    ck_assert_int_eq(r.st, SC_ERR_LOADER); /* v1 was deleted: no grace for it */
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Redis stopped: a fetch past the TTL answers the graced value (stale); a
 * key never loaded fails; nothing past the grace. */
START_TEST(grace_with_redis_stopped)
{
    sc_test_redis red;
    ck_assert_int_eq(sc_test_redis_start(&red, "--save \"\" --appendonly no"), 0);
    sc_options o = opts(NS("grace_down"), "a");
    o.redis_port = red.port;
    o.redis_timeout_ms = 300;
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 200;
    sc_cache *a = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = fetch_opts_ttl(200);
    fo.grace_ms = 4000;
    ck_assert_int_eq(fetch_ex(a, "k", &fo, &s).st, SC_OK);
    sc_fetch_opts longer = fetch_opts_ttl(60000);
    ck_assert_int_eq(fetch_ex(a, "long", &longer, &s).st, SC_OK);
    sc_test_redis_kill(&red);
    WAIT_UNTIL(test_stats(a).synced == 0, 3000);
    ck_assert_uint_eq(test_stats(a).synced, 0);
    test_sleep_ms(300); /* past the TTL */
    result r = fetch_ex(a, "k", &fo, &s);
    ASSERT_SERVED(a, r, "v1", 1);
    ck_assert_int_eq(atomic_load(&s.calls), 2); /* no lock, no load */
    /* Without a grace, a local copy within its TTL is served as sc_get
     * serves it during an outage (stale_max_ms after the last proof). */
    r = fetch_ex(a, "long", &longer, &s);
    ASSERT_SERVED(a, r, "v1", 1);
    ck_assert_int_eq(r.info.source, SC_SOURCE_LOCAL);
    r = fetch_ex(a, "never", &fo, &s);
    ck_assert(r.st == SC_ERR_REMOTE || r.st == SC_ERR_TIMEOUT);
    sc_fetch_opts none = fo;
    none.grace_ms = 0;
    r = fetch_ex(a, "k", &none, &s);
    ck_assert(r.st == SC_ERR_REMOTE || r.st == SC_ERR_TIMEOUT);
    test_sleep_ms(4000); /* past the grace */
    r = fetch_ex(a, "k", &fo, &s);
    ck_assert(r.st == SC_ERR_REMOTE || r.st == SC_ERR_TIMEOUT);
    ck_assert_int_eq(sc_test_redis_start_again(&red), 0);
    WAIT_UNTIL(test_stats(a).synced == 1, 10000);
    r = fetch_ex(a, "k", &fo, &s);
    ck_assert_int_eq(r.st, SC_OK);
    ck_assert_int_eq(r.info.stale, 0);
    sc_close(a);
    sc_test_redis_stop(&red);
}
END_TEST

/* The hook of grace_copy_never_outlives_its_redis_grace: the install of
 * "late" (after its load stored it) waits until Redis no longer holds the
 * key, so every ms of its grace is spent between the store and the install. */
static sc_test_redis *g_late_redis;
static atomic_int g_late_armed;

static int wait_for_redis_expiry(const char *key, const void *val, size_t len, uint64_t version, void **out,
                                 size_t *out_len, void *ud)
{
    (void)val, (void)len, (void)version, (void)out, (void)out_len, (void)ud;
    if (strcmp(key, "late") != 0 || !atomic_exchange(&g_late_armed, 0))
        return 0;
    for (int i = 0; i < 1000; i++) {
        char *v = test_redis_value_on(g_late_redis, NS("grace_late"), "late");
        int gone = strcmp(v, "<none>") == 0;
        free(v);
        if (gone)
            break;
        test_sleep_ms(10);
    }
    return 0;
}

/* A graced copy never outlives the grace Redis gave the key: like a local
 * copy's TTL, its fresh time and grace count from before the Redis call
 * that reported them, not from its install. Here the install (held in the
 * on_set_local hook) comes after Redis expired the key: with Redis then
 * down, the fetch must not answer the grace table's copy. */
START_TEST(grace_copy_never_outlives_its_redis_grace)
{
    sc_test_redis red;
    ck_assert_int_eq(sc_test_redis_start(&red, "--save \"\" --appendonly no"), 0);
    g_late_redis = &red;
    sc_options o = opts(NS("grace_late"), "a");
    o.redis_port = red.port;
    o.redis_timeout_ms = 300;
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 200;
    o.on_set_local = wait_for_redis_expiry;
    sc_cache *a = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = fetch_opts_ttl(200);
    fo.grace_ms = 3000;
    atomic_store(&g_late_armed, 1);
    ck_assert_int_eq(fetch_ex(a, "late", &fo, &s).st, SC_OK);
    char *in_redis = test_redis_value_on(&red, NS("grace_late"), "late");
    ck_assert_str_eq(in_redis, "<none>"); /* its grace ended in the hook */
    free(in_redis);
    sc_test_redis_kill(&red);
    WAIT_UNTIL(test_stats(a).synced == 0, 3000);
    ck_assert_uint_eq(test_stats(a).synced, 0);
    result r = fetch_ex(a, "late", &fo, &s);
    ck_assert_msg(r.st == SC_ERR_REMOTE || r.st == SC_ERR_TIMEOUT,
                  "a graced copy outlived its grace in Redis: the fetch answered %s", r.got);
    sc_close(a);
    sc_test_redis_stop(&red);
}
END_TEST

/* ----------------------------------------------------------- timeouts -- */

/* Where the soft-timeout tests start: k loaded on a with a 200 ms TTL and a
 * 10 s grace, then left past its TTL, so the next fetch reloads and has a
 * graced value to fall back on. Returns the fetch options used. */
static sc_fetch_opts graced_past_ttl(sc_cache *a, source *s, uint64_t soft_timeout_ms)
{
    sc_fetch_opts fo = fetch_opts_ttl(200);
    fo.grace_ms = 10000;
    fo.soft_timeout_ms = soft_timeout_ms;
    ck_assert_int_eq(fetch_ex(a, "k", &fo, s).st, SC_OK);
    test_sleep_ms(300);
    return fo;
}

/* Soft timeout: the caller is back at about the soft timeout with the
 * graced value; the load finishes in the background and stores. */
START_TEST(soft_timeout_serves_graced_and_stores_later)
{
    const char *ns = NS("soft");
    sc_options o = opts(ns, "a");
    sc_cache *a = test_open(&o);
    sc_cache *b = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = graced_past_ttl(a, &s, 100);
    source_put(&s, "v2");
    s.delay_ms = 1000;
    result r = fetch_ex(a, "k", &fo, &s);
    ASSERT_SERVED(a, r, "v1", 1);
    ck_assert_int_ge(r.took_ms, 90);
    ck_assert_int_lt(r.took_ms, 700); /* not the loader's second */
    printf("soft timeout 100 ms: caller back after %lld ms\n", r.took_ms);
    ck_assert_int_eq(atomic_load(&s.returned), 1);
    /* A fetch on the other pod meanwhile waits at most its soft timeout
     * too (the lock is held by the background load). */
    r = fetch_ex(b, "k", &fo, &s);
    ASSERT_SERVED(b, r, "v1", 1);
    ck_assert_int_lt(r.took_ms, 700);
    /* The background load stores v2 (and every pod gets it). */
    WAIT_UNTIL(atomic_load(&s.returned) == 2, 3000);
    ASSERT_REDIS_VALUE_SOON(ns, "k", "v2");
    s.delay_ms = 0;
    r = fetch_ex(b, "k", &fo, &s);
    ck_assert_str_eq(r.got, "v2");
    ck_assert_int_eq(r.info.stale, 0);
    ck_assert_int_eq(atomic_load(&s.calls), 2); /* nobody loaded again */
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A newer write while the background load runs: the load stores nothing. */
START_TEST(soft_timeout_background_load_never_over_newer_write)
{
    const char *ns = NS("soft_fenced");
    sc_options o = opts(ns, "a");
    sc_cache *a = test_open(&o);
    sc_cache *b = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = graced_past_ttl(a, &s, 50);
    source_put(&s, "old-from-slow-query");
    s.delay_ms = 600;
    result r = fetch_ex(a, "k", &fo, &s);
    ck_assert_str_eq(r.got, "v1");
    ck_assert_int_eq(r.info.stale, 1);
    /* The application writes the new value while the slow query runs. */
    ck_assert_int_eq(sc_set(b, "k", "v3", 2, 0), SC_OK);
    WAIT_UNTIL(atomic_load(&s.returned) == 2, 3000);
    test_sleep_ms(200); /* time for a (wrong) store to land */
    ASSERT_REDIS_FIELD(ns, "k", "value", "v3");
    ASSERT_VALUE(a, "k", "v3");
    ASSERT_VALUE(b, "k", "v3");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Hard timeout: no graced value, SC_ERR_TIMEOUT at the hard timeout; the
 * load finishes and stores. */
START_TEST(hard_timeout)
{
    const char *ns = NS("hard");
    sc_options o = opts(ns, "a");
    sc_cache *a = test_open(&o);
    source s;
    source_init(&s, "late");
    s.delay_ms = 700;
    sc_fetch_opts fo = fetch_opts_ttl(60000);
    fo.hard_timeout_ms = 150;
    fo.soft_timeout_ms = 50; /* no graced value: the soft timeout does not apply */
    result r = fetch_ex(a, "k", &fo, &s);
    ck_assert_int_eq(r.st, SC_ERR_TIMEOUT);
    ck_assert_int_ge(r.took_ms, 140);
    ck_assert_int_lt(r.took_ms, 600);
    printf("hard timeout 150 ms: caller back after %lld ms\n", r.took_ms);
    ck_assert(strstr(sc_errmsg(a), "hard timeout") != NULL);
    WAIT_UNTIL(atomic_load(&s.returned) == 1, 3000);
    ASSERT_REDIS_VALUE_SOON(ns, "k", "late");
    s.delay_ms = 0;
    r = fetch_ex(a, "k", &fo, &s);
    ck_assert_int_eq(r.st, SC_OK);
    ck_assert_str_eq(r.got, "late");
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    /* A loader that is still running when the pod closes stores nothing
     * and does not crash. */
    s.delay_ms = 400;
    ck_assert_int_eq(fetch_ex(a, "k2", &fo, &s).st, SC_ERR_TIMEOUT);
    sc_close(a);
    test_sleep_ms(500);
    ASSERT_REDIS_FIELD(ns, "k2", "value", "<none>");
}
END_TEST

/* ---------------------------------------------------------------- tags -- */

static void set_tagged(sc_cache *c, const char *key, const char *val, const char *t1, const char *t2)
{
    const char *tags[2] = {t1, t2};
    ck_assert_int_eq(sc_set_tagged(c, key, val, strlen(val), 0, tags, t2 ? 2 : (t1 ? 1 : 0)), SC_OK);
}

START_TEST(tags_across_pods_and_in_redis)
{
    const char *ns = NS("tags");
    sc_options o = opts(ns, NULL);
    sc_cache *a = test_open(&o), *b = test_open(&o), *c3 = test_open(&o);
    set_tagged(a, "k1", "one", "t1", NULL);
    set_tagged(a, "k2", "two", "t1", "t2"); /* a key in two tags */
    set_tagged(a, "k3", "three", "t2", NULL);
    ck_assert_int_eq(sc_set(a, "k4", "four", 4, 0), SC_OK);
    ASSERT_REDIS_FIELD(ns, "k2", "tags", "t1\nt2");
    sc_cache *pods[] = {a, b, c3};
    const char *keys[] = {"k1", "k2", "k3", "k4"};
    const char *vals[] = {"one", "two", "three", "four"};
    for (int p = 0; p < 3; p++)
        for (int k = 0; k < 4; k++)
            ASSERT_VALUE(pods[p], keys[k], vals[k]);
    for (int p = 0; p < 3; p++)
        ck_assert(test_held(pods[p], "k1") && test_held(pods[p], "k2"));

    ck_assert_int_eq(sc_invalidate_tag(b, "t1"), SC_OK);
    /* b at once; the others on the event. */
    ck_assert(!test_held(b, "k1") && !test_held(b, "k2"));
    for (int p = 0; p < 3; p++) {
        WAIT_UNTIL(!test_held(pods[p], "k1") && !test_held(pods[p], "k2"), 2000);
        ck_assert(!test_held(pods[p], "k1") && !test_held(pods[p], "k2"));
        ck_assert(test_held(pods[p], "k3"));
        ASSERT_VALUE(pods[p], "k1", "<none>");
        ASSERT_VALUE(pods[p], "k2", "<none>");
        ASSERT_VALUE(pods[p], "k3", "three");
        ASSERT_VALUE(pods[p], "k4", "four");
    }
    /* Redis still holds the bytes; every read treats them as absent. */
    ASSERT_REDIS_FIELD(ns, "k1", "value", "one");
    sc_value *many[4];
    ck_assert_int_eq(sc_get_many(c3, keys, 4, many), SC_OK);
    ck_assert_ptr_null(many[0]);
    ck_assert_ptr_null(many[1]);
    ck_assert_ptr_nonnull(many[2]);
    ck_assert_ptr_nonnull(many[3]);
    sc_value_release(many[2]);
    sc_value_release(many[3]);
    /* The second tag of k3. */
    ck_assert_int_eq(sc_invalidate_tag(a, "t2"), SC_OK);
    for (int p = 0; p < 3; p++) {
        WAIT_UNTIL(!test_held(pods[p], "k3"), 2000);
        ASSERT_VALUE(pods[p], "k3", "<none>");
        ASSERT_VALUE(pods[p], "k4", "four");
    }
    /* Re-tagging after the invalidation: written later, unaffected. */
    set_tagged(c3, "k1", "one-again", "t1", NULL);
    for (int p = 0; p < 3; p++)
        ASSERT_VALUE(pods[p], "k1", "one-again");
    ck_assert_int_eq(sc_invalidate_tag(a, "unused-tag"), SC_OK);
    for (int p = 0; p < 3; p++)
        ASSERT_VALUE(pods[p], "k1", "one-again");
    ck_assert_int_eq(sc_invalidate_tag(a, "t1"), SC_OK);
    for (int p = 0; p < 3; p++) {
        WAIT_UNTIL(!test_held(pods[p], "k1"), 2000);
        ASSERT_VALUE(pods[p], "k1", "<none>");
    }
    /* An untagged write drops the key's tags. */
    set_tagged(a, "k5", "five", "t5", NULL);
    ck_assert_int_eq(sc_set(a, "k5", "five-plain", 10, 0), SC_OK);
    ASSERT_REDIS_FIELD(ns, "k5", "tags", "<none>");
    ck_assert_int_eq(sc_invalidate_tag(a, "t5"), SC_OK);
    ASSERT_VALUE(b, "k5", "five-plain");
    /* Bad tags. */
    const char *bad[] = {"a\nb"};
    ck_assert_int_eq(sc_set_tagged(a, "k6", "x", 1, 0, bad, 1), SC_ERR_INVALID);
    ck_assert_int_eq(sc_invalidate_tag(a, ""), SC_ERR_INVALID);
    ck_assert_int_eq(sc_invalidate_tag(a, NULL), SC_ERR_INVALID);
    sc_stats st = test_stats(b);
    ck_assert_uint_ge(st.invalidations, 2);
    sc_close(a);
    sc_close(b);
    sc_close(c3);
}
END_TEST

/* Tags on sc_fetch_ex: a loaded value carries them; an invalidation makes
 * the next fetch load again, on every pod. */
START_TEST(tags_on_fetch)
{
    const char *ns = NS("tags_fetch");
    sc_options o = opts(ns, NULL);
    sc_cache *a = test_open(&o), *b = test_open(&o);
    source s;
    source_init(&s, "u1");
    const char *tags[] = {"user:1", "team:7"};
    sc_fetch_opts fo;
    sc_fetch_opts_init(&fo);
    fo.tags = tags;
    fo.ntags = 2;
    ck_assert_str_eq(fetch_ex(a, "profile:1", &fo, &s).got, "u1");
    ck_assert_str_eq(fetch_ex(b, "profile:1", &fo, &s).got, "u1");
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    ASSERT_REDIS_FIELD(ns, "profile:1", "tags", "user:1\nteam:7");
    WAIT_UNTIL(test_held(a, "profile:1") && test_held(b, "profile:1"), 2000);
    ck_assert(test_held(a, "profile:1") && test_held(b, "profile:1"));
    source_put(&s, "u2");
    ck_assert_int_eq(sc_invalidate_tag(a, "team:7"), SC_OK);
    WAIT_UNTIL(!test_held(b, "profile:1"), 2000);
    ck_assert(!test_held(a, "profile:1") && !test_held(b, "profile:1"));
    ck_assert_str_eq(fetch_ex(b, "profile:1", &fo, &s).got, "u2");
    ck_assert_int_eq(atomic_load(&s.calls), 2);
    ck_assert_str_eq(fetch_ex(a, "profile:1", &fo, &s).got, "u2");
    ck_assert_int_eq(atomic_load(&s.calls), 2);
    sc_close(a);
    sc_close(b);
}
END_TEST

typedef struct bg_fetch {
    sc_cache *c;
    const char *key;
    const sc_fetch_opts *o;
    source *s;
    result r;
} bg_fetch;

static void *bg_fetch_main(void *p)
{
    bg_fetch *b = p;
    b->r = fetch_ex(b->c, b->key, b->o, b->s);
    return NULL;
}

/* Starts a's sc_fetch_ex of "k", tagged "t", on thread th; returns once
 * the source was called (the load is in flight). */
static void tagged_load_in_flight(sc_cache *a, source *s, sc_fetch_opts *fo, bg_fetch *bf, pthread_t *th)
{
    static const char *const tags[] = {"t"};
    sc_fetch_opts_init(fo);
    fo->tags = tags;
    fo->ntags = 1;
    *bf = (bg_fetch){a, "k", fo, s, {0}};
    ck_assert_int_eq(pthread_create(th, NULL, bg_fetch_main, bf), 0);
    WAIT_UNTIL(atomic_load(&s->calls) == 1, 2000);
}

/* A load that took its lock before an invalidation of one of its tags read
 * its source before it: its result is not stored. */
START_TEST(tag_invalidation_fences_a_load_in_flight)
{
    const char *ns = NS("tags_fence");
    sc_options o = opts(ns, NULL);
    sc_cache *a = test_open(&o), *b = test_open(&o);
    source s;
    source_init(&s, "before");
    s.delay_ms = 300;
    sc_fetch_opts fo;
    bg_fetch bf;
    pthread_t th;
    tagged_load_in_flight(a, &s, &fo, &bf, &th);
    test_sleep_ms(50);
    ck_assert_int_eq(sc_invalidate_tag(b, "t"), SC_OK);
    pthread_join(th, NULL);
    /* Its caller gets what it loaded; nothing is cached. */
    ck_assert_int_eq(bf.r.st, SC_OK);
    ck_assert_str_eq(bf.r.got, "before");
    ASSERT_REDIS_FIELD(ns, "k", "value", "<none>");
    ck_assert(!test_held(a, "k"));
    s.delay_ms = 0;
    source_put(&s, "after");
    result r = fetch_ex(b, "k", &fo, &s);
    ck_assert_str_eq(r.got, "after");
    ck_assert_int_lt(r.took_ms, 1000); /* the fenced lock was freed, not left to lapse (3 s) */
    ck_assert_int_eq(atomic_load(&s.calls), 2);
    ASSERT_REDIS_FIELD(ns, "k", "value", "after");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* The same for a load whose answer is "not found": it read its source
 * before the invalidation, so its empty marker must not be stored either
 * (else every pod answers "not found" for empty_ttl_ms though the tag was
 * invalidated after the source changed). Found by the tag audit: the
 * empty marker was stored without its tags, so fetch_store.lua never
 * fenced it. */
START_TEST(tag_invalidation_fences_a_not_found_load)
{
    const char *ns = NS("tags_fence_nf");
    sc_options o = opts(ns, NULL);
    sc_cache *a = test_open(&o), *b = test_open(&o);
    source s;
    source_init(&s, "unused");
    s.delay_ms = 300;
    s.fail = SC_NOT_FOUND; /* the source has no such entity yet */
    sc_fetch_opts fo;
    bg_fetch bf;
    pthread_t th;
    tagged_load_in_flight(a, &s, &fo, &bf, &th);
    /* the entity appears in the source, then its tag is invalidated */
    pthread_mutex_lock(&s.mu);
    s.fail = SC_OK;
    s.delay_ms = 0;
    snprintf(s.value, sizeof s.value, "%s", "created");
    pthread_mutex_unlock(&s.mu);
    ck_assert_int_eq(sc_invalidate_tag(b, "t"), SC_OK);
    pthread_join(th, NULL);
    ck_assert_int_eq(bf.r.st, SC_NOT_FOUND); /* its caller gets what it loaded */
    ASSERT_REDIS_FIELD(ns, "k", "empty", "<none>");
    result r = fetch_ex(b, "k", &fo, &s);
    ck_assert_msg(r.st == SC_OK && strcmp(r.got, "created") == 0, "b: %s after the invalidation", r.got);
    r = fetch_ex(a, "k", &fo, &s);
    ck_assert_msg(r.st == SC_OK && strcmp(r.got, "created") == 0, "a: %s after the invalidation", r.got);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A graced value whose local copy expired, then a tag invalidation applied
 * after the pod's tag index was pruned (many tagged keys since): the
 * invalidation must still retire the graced value, so a fetch while Redis
 * is down does not answer the value written before it. Found by the tag
 * audit: pruning dropped the index links of keys the local tier no longer
 * held, though the grace table still held them, so the tag event raised
 * no floor for them. */
START_TEST(grace_after_invalidate_tag_pruned)
{
    sc_test_redis red;
    ck_assert_int_eq(sc_test_redis_start(&red, "--save \"\" --appendonly no"), 0);
    const char *ns = NS("grace_tag_pruned");
    sc_options o = opts(ns, "a");
    o.redis_port = red.port;
    o.redis_timeout_ms = 300;
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 200;
    o.local_max_entries = 2048; /* the index prunes past 65536 links */
    sc_cache *a = test_open(&o);
    source s;
    source_init(&s, "old");
    const char *tags[] = {"t"};
    sc_fetch_opts fo = fetch_opts_ttl(200);
    fo.grace_ms = 60000;
    fo.tags = tags;
    fo.ntags = 1;
    ck_assert_int_eq(fetch_ex(a, "g", &fo, &s).st, SC_OK);
    test_sleep_ms(300); /* past the TTL: the local copy is gone, the graced value stays */
    ck_assert(!test_held(a, "g"));

    /* More tagged links than the index keeps without pruning (65536 with
     * this local_max_entries: 64 tags a key). */
    const char *many[64];
    char names[64][8];
    for (int i = 0; i < 64; i++) {
        snprintf(names[i], sizeof names[i], "x%d", i);
        many[i] = names[i];
    }
    for (int i = 0; i < 1100; i++) {
        char k[16];
        snprintf(k, sizeof k, "f%d", i);
        ck_assert_int_eq(sc_set_tagged(a, k, "v", 1, 0, many, 64), SC_OK);
    }
    ck_assert_int_eq(sc_invalidate_tag(a, "t"), SC_OK);

    sc_test_redis_kill(&red);
    WAIT_UNTIL(test_stats(a).synced == 0, 3000);
    s.fail = SC_ERR_LOADER;
    result r = fetch_ex(a, "g", &fo, &s);
    ck_assert_msg(r.st != SC_OK, "after sc_invalidate_tag a served %s (stale %d)", r.got, r.info.stale);
    sc_close(a);
    sc_test_redis_stop(&red);
}
END_TEST

/* sc_set_tagged with ntags 0 is "plain sc_set semantics with an invalidate
 * event" (synccache.h): other pods see an invalidate, not a set. Found by
 * the tag audit: the write published a set event carrying the value. */
static atomic_int g_seen_set, g_seen_invalidate;

static void count_actions(const sc_event_info *ev, void *ud)
{
    (void)ud;
    if (strcmp(ev->key, "untagged") != 0)
        return;
    if (strcmp(ev->action, "set") == 0)
        atomic_fetch_add(&g_seen_set, 1);
    else if (strcmp(ev->action, "invalidate") == 0)
        atomic_fetch_add(&g_seen_invalidate, 1);
}

START_TEST(set_tagged_without_tags_publishes_invalidate)
{
    const char *ns = NS("tags_none");
    sc_options o = opts(ns, "a");
    sc_cache *a = test_open(&o);
    o.pod_id = "b";
    o.on_event = count_actions;
    sc_cache *b = test_open(&o);
    ck_assert_int_eq(sc_set_tagged(a, "untagged", "v", 1, 0, NULL, 0), SC_OK);
    WAIT_UNTIL(atomic_load(&g_seen_set) + atomic_load(&g_seen_invalidate) == 1, 3000);
    int sets = atomic_load(&g_seen_set), invalidates = atomic_load(&g_seen_invalidate);
    ck_assert_msg(sets == 0 && invalidates == 1, "b saw %d set and %d invalidate events", sets, invalidates);
    ASSERT_VALUE(b, "untagged", "v");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A tag invalidation while a pod's subscription is down: the pod catches
 * the event up from the log and drops its copies. */
START_TEST(tag_event_lost_while_disconnected)
{
    const char *ns = NS("tags_lost");
    sc_options o = opts(ns, "w");
    o.redis_timeout_ms = 400;
    o.heartbeat_interval_ms = 100;
    o.heartbeat_timeout_ms = 400;
    sc_cache *w = test_open(&o);
    sc_options ro = o;
    ro.pod_id = "r";
    ro.reconnect_min_ms = 600; /* stays away while w invalidates */
    ro.reconnect_max_ms = 2400;
    sc_cache *r = test_open(&ro);
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        set_tagged(w, k, "v", i % 2 ? "odd" : "even", NULL);
        ASSERT_VALUE(r, k, "v");
    }
    ck_assert(test_held(r, "k1") && test_held(r, "k2"));
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "CLIENT KILL TYPE pubsub"), 0);
    WAIT_UNTIL(test_stats(r).synced == 0, 2000);
    ck_assert_uint_eq(test_stats(r).synced, 0);
    ck_assert_int_eq(sc_invalidate_tag(w, "odd"), SC_OK);
    uint64_t replayed = test_stats(r).events_replayed;
    WAIT_UNTIL(test_stats(r).synced == 1, 5000);
    ck_assert_uint_eq(test_stats(r).synced, 1);
    sc_stats st = test_stats(r);
    ck_assert_uint_ge(st.events_replayed, replayed + 1);
    ck_assert_uint_eq(st.flushes, 0);
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(test_held(r, k), i % 2 ? 0 : 1);
        ASSERT_VALUE(r, k, i % 2 ? "<none>" : "v");
    }
    sc_close(w);
    sc_close(r);
}
END_TEST

/* The codec carries the tag action both ways, and outside publishers may
 * send it as JSON. */
START_TEST(tag_event_codec)
{
    const char *json = "{\"action\":\"tag\",\"key\":\"team:7\",\"sender\":\"svc\"}";
    sc__event ev;
    ck_assert_int_eq(sc__event_decode(json, strlen(json), 4096, &ev), SC_OK);
    ck_assert_int_eq(ev.action, SC__ACT_TAG);
    ck_assert_str_eq(ev.key, "team:7");
    ck_assert_str_eq(sc__action_name(ev.action), "tag");
    char *out = NULL;
    size_t len = 0;
    ck_assert_int_eq(sc__event_encode(&ev, SC_WIRE_MSGPACK, &out, &len), SC_OK);
    sc__event back;
    ck_assert_int_eq(sc__event_decode(out, len, 4096, &back), SC_OK);
    ck_assert_int_eq(back.action, SC__ACT_TAG);
    ck_assert_str_eq(back.key, "team:7");
    free(out);
    sc__event_free(&back);
    sc__event_free(&ev);
    const char *nokey = "{\"action\":\"tag\",\"sender\":\"svc\"}";
    ck_assert_int_eq(sc__event_decode(nokey, strlen(nokey), 4096, &ev), SC_ERR_CODEC);
}
END_TEST

/* 100,000 keys under one tag: one call makes all of them not found on
 * every pod (its cost is measured in bench/tags.c, not asserted here). */
enum { TAGGED_KEYS = 100000, TAG_WRITERS = 4 };

typedef struct tag_writer {
    sc_cache *c;
    int first;
    sc_status st;
    char failed[256]; /* the key and sc_errmsg of a failed write */
} tag_writer;

/* Writes keys first, first + TAG_WRITERS, ... tagged "big": the writers
 * overlap their round trips (the pod's pool has 4 connections), which
 * keeps the test well inside its timeout on a loaded sanitizer build. */
static void *tag_writer_main(void *arg)
{
    tag_writer *w = arg;
    const char *tags[] = {"big"};
    char k[32];
    w->st = SC_OK;
    for (int i = w->first; i < TAGGED_KEYS && w->st == SC_OK; i += TAG_WRITERS) {
        snprintf(k, sizeof k, "k%d", i);
        w->st = sc_set_tagged(w->c, k, "v", 1, 0, tags, 1);
        if (w->st != SC_OK)
            snprintf(w->failed, sizeof w->failed, "%s: %s", k, sc_errmsg(w->c));
    }
    return NULL;
}

START_TEST(tag_with_100k_keys)
{
    const char *ns = NS("tags_100k");
    sc_options o = opts(ns, NULL);
    o.local_max_entries = 200000;
    o.redis_timeout_ms = 5000; /* a bulk load on a loaded (sanitizer) build */
    /* Server-assisted invalidation off: confirming 100,000 own writes on two
     * pods is a tenth of this test's time under TSan, and the test is about
     * tags (check_tracking covers tracking). */
    o.redis_tracking = 0;
    sc_cache *a = test_open(&o), *b = test_open(&o);
    enum { N = TAGGED_KEYS };
    const char *tags[] = {"big"};
    char k[32];
    tag_writer w[TAG_WRITERS];
    pthread_t th[TAG_WRITERS];
    for (int i = 0; i < TAG_WRITERS; i++) {
        w[i] = (tag_writer){.c = a, .first = i};
        pthread_create(&th[i], NULL, tag_writer_main, &w[i]);
    }
    for (int i = 0; i < TAG_WRITERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < TAG_WRITERS; i++)
        ck_assert_msg(w[i].st == SC_OK, "%s: %s", sc_strerror(w[i].st), w[i].failed);
    /* b holds a tenth of them locally. */
    for (int i = 0; i < N; i += 10) {
        snprintf(k, sizeof k, "k%d", i);
        ASSERT_VALUE(b, k, "v");
    }
    ck_assert_uint_ge(test_stats(b).local_entries, N / 10);
    long long t0 = test_now_ms();
    ck_assert_int_eq(sc_invalidate_tag(a, "big"), SC_OK);
    long long took = test_now_ms() - t0;
    WAIT_UNTIL(test_stats(b).local_entries == 0 && test_stats(a).local_entries == 0, 5000);
    printf("sc_invalidate_tag over %d keys: %lld ms for the call; pods dropped their copies\n", N, took);
    ck_assert_uint_eq(test_stats(a).local_entries, 0);
    ck_assert_uint_eq(test_stats(b).local_entries, 0);
    /* Every key is not found, read in batches from Redis. */
    const char *ks[1000];
    char names[1000][16];
    sc_value *out[1000];
    for (int base = 0; base < N; base += 1000) {
        for (int j = 0; j < 1000; j++) {
            snprintf(names[j], sizeof names[j], "k%d", base + j);
            ks[j] = names[j];
        }
        ck_assert_int_eq(sc_get_many(b, ks, 1000, out), SC_OK);
        for (int j = 0; j < 1000; j++)
            ck_assert_msg(out[j] == NULL, "%s still found", ks[j]);
    }
    /* Written afterwards: unaffected. */
    ck_assert_int_eq(sc_set_tagged(a, "k7", "new", 3, 0, tags, 1), SC_OK);
    ASSERT_VALUE(b, "k7", "new");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A pod remembers each invalidated tag's version (to drop a copy read
 * before the invalidation and installed after it); a service that tags per
 * entity invalidates a new tag every time. Those records must not pile up:
 * each one cost memory for the pod's whole life, and with a fixed bucket
 * array every tag event walked longer chains under the index's lock. */
enum { MANY_TAGS = 10000 };

static void invalidate_many_tags(sc_cache *c, const char *prefix)
{
    char tag[32];
    for (int i = 0; i < MANY_TAGS; i++) {
        snprintf(tag, sizeof tag, "%s%d", prefix, i);
        ck_assert_msg(sc_invalidate_tag(c, tag) == SC_OK, "%s: %s", tag, sc_errmsg(c));
    }
}

START_TEST(tag_records_stay_bounded)
{
    const char *ns = NS("tags_records");
    sc_options o = opts(ns, NULL);
    sc_cache *a = test_open(&o), *b = test_open(&o);
    set_tagged(a, "kept", "v", "live", NULL);
    ASSERT_VALUE(b, "kept", "v");
    invalidate_many_tags(a, "gone-");
    TEST_WAIT_APPLIED(b, ns, 10000);
    size_t on_a = sc__tags_records(a), on_b = sc__tags_records(b);
    ck_assert_msg(on_a <= MANY_TAGS / 2 && on_b <= MANY_TAGS / 2, "tag records after %d invalidations: a %zu, b %zu",
                  MANY_TAGS, on_a, on_b);
    /* The tag of a key the pods hold is still indexed and still works. */
    ck_assert(test_held(a, "kept") && test_held(b, "kept"));
    ck_assert_int_eq(sc_invalidate_tag(a, "live"), SC_OK);
    WAIT_UNTIL(!test_held(b, "kept"), 2000);
    ck_assert(!test_held(a, "kept"));
    ASSERT_VALUE(b, "kept", "<none>");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* The record of an invalidated tag is what drops a copy read from Redis
 * before the invalidation and installed after its event: once the pod has
 * forgotten the record (many other tags since), such a read still must not
 * stay. The read is held in the on_set_local hook (it runs before the
 * install) while the invalidation and the other tags go by. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int holding, release;
} g_hold = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static int hold_read_of_k(const char *key, const void *val, size_t len, uint64_t version, void **out, size_t *out_len,
                          void *ud)
{
    (void)val, (void)len, (void)version, (void)out, (void)out_len, (void)ud;
    if (strcmp(key, "k") != 0)
        return 0;
    pthread_mutex_lock(&g_hold.mu);
    g_hold.holding = 1;
    pthread_cond_broadcast(&g_hold.cv);
    while (!g_hold.release)
        pthread_cond_wait(&g_hold.cv, &g_hold.mu);
    pthread_mutex_unlock(&g_hold.mu);
    return 0;
}

typedef struct {
    sc_cache *c;
    char *got;
} bg_get;

static void *bg_get_main(void *p)
{
    bg_get *g = p;
    g->got = test_get(g->c, "k");
    return NULL;
}

START_TEST(forgotten_tag_still_fences_a_read_in_flight)
{
    const char *ns = NS("tags_forgotten");
    sc_options o = opts(ns, "a");
    sc_cache *a = test_open(&o);
    o.pod_id = "b";
    o.on_set_local = hold_read_of_k;
    sc_cache *b = test_open(&o);
    set_tagged(a, "k", "before", "t", NULL);
    bg_get g = {b, NULL};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, bg_get_main, &g), 0);
    pthread_mutex_lock(&g_hold.mu);
    while (!g_hold.holding)
        pthread_cond_wait(&g_hold.cv, &g_hold.mu);
    pthread_mutex_unlock(&g_hold.mu);
    /* b read "before"; now the tag is invalidated, b applies the event, and
     * enough other tags follow for b to forget "t"'s record. */
    ck_assert_int_eq(sc_invalidate_tag(a, "t"), SC_OK);
    invalidate_many_tags(a, "other-");
    TEST_WAIT_APPLIED(b, ns, 10000);
    ck_assert_uint_le(sc__tags_records(b), MANY_TAGS / 2);
    pthread_mutex_lock(&g_hold.mu);
    g_hold.release = 1;
    pthread_cond_broadcast(&g_hold.cv);
    pthread_mutex_unlock(&g_hold.mu);
    pthread_join(th, NULL);
    /* Nothing of the read may stay: dropping it raised the key's floor past
     * the read, so the get itself read again and found the key tag-dead. */
    ck_assert_str_eq(g.got, "<none>");
    free(g.got);
    ck_assert(!test_held(b, "k"));
    ASSERT_VALUE(b, "k", "<none>");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* ------------------------------------------ sixth audit: interactions -- */

/* A loader that, while it runs, has another pod overwrite the key, waits
 * until the loading pod holds the new value (and reads it with sc_get),
 * then fails. */
typedef struct overwrite_then_fail {
    sc_cache *a, *b;
    char seen[64]; /* what sc_get on a answered inside the loader */
} overwrite_then_fail;

static sc_status load_overwrite_then_fail(const char *key, sc_loaded *slot, void *ud)
{
    overwrite_then_fail *x = ud;
    ck_assert_int_eq(sc_set(x->b, key, "v2", 2, 0), SC_OK);
    WAIT_UNTIL(test_held(x->a, key), 3000);
    char *got = test_get(x->a, key);
    snprintf(x->seen, sizeof x->seen, "%s", got);
    free(got);
    sc_loaded_error(slot, "the source is down");
    return SC_ERR_LOADER;
}

/* A graced value is never answered once the pod holds (and served) a newer
 * write of the key: another pod's sc_set applied while the failing load ran
 * must not be followed by the older graced copy (monotonic reads). */
START_TEST(grace_never_older_than_a_write_applied_during_the_load)
{
    const char *ns = NS("grace_write_during");
    sc_options o = opts(ns, "a");
    o.grace_ms = 10000;
    sc_cache *a = test_open(&o);
    sc_cache *b = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = fetch_opts_ttl(200);
    ck_assert_int_eq(fetch_ex(a, "k", &fo, &s).st, SC_OK);
    test_sleep_ms(300); /* past the TTL, within the grace */
    overwrite_then_fail x = {a, b, ""};
    sc_value *v = NULL;
    sc_get_info info;
    sc_status st = sc_fetch_ex(a, "k", &fo, load_overwrite_then_fail, &x, &v, &info);
    ck_assert_str_eq(x.seen, "v2"); /* the pod already answered v2 */
    if (st == SC_OK) {
        ck_assert_msg(sc_value_size(v) == 2 && memcmp(sc_value_data(v), "v2", 2) == 0,
                      "answered %.*s (stale %d) after the pod served v2", (int)sc_value_size(v),
                      (const char *)sc_value_data(v), info.stale);
        sc_value_release(v);
    } else {
        ck_assert_int_eq(st, SC_ERR_LOADER);
    }
    ASSERT_VALUE(a, "k", "v2");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* SC_STRONG: once sc_tag_deleted returned, no fetch that starts afterwards
 * returns the outdated value, and local copies are confirmed with Redis. A
 * pod that missed the invalidate (its stream down) and then cannot read
 * Redis has nothing to confirm its copy with: it must not answer it. */
START_TEST(strong_never_serves_an_unconfirmed_copy_while_redis_is_away)
{
    sc_test_redis red;
    ck_assert_int_eq(sc_test_redis_start(&red, "--save \"\" --appendonly no"), 0);
    sc_options o = opts(NS("strong_down"), "a");
    o.redis_port = red.port;
    o.redis_timeout_ms = 300;
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 200;
    o.consistency = SC_STRONG;
    sc_options ao = o;
    ao.reconnect_min_ms = 10000; /* stays away once its stream is dropped */
    ao.reconnect_max_ms = 10000;
    sc_cache *a = test_open(&ao);
    sc_cache *b = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_value *v = NULL;
    ck_assert_int_eq(sc_fetch(a, "k", 60000, load_source, &s, &v), SC_OK);
    sc_value_release(v);
    ck_assert(test_held(a, "k"));
    ck_assert_int_eq(sc_test_redis_cmd(&red, "CLIENT KILL TYPE pubsub"), 0);
    WAIT_UNTIL(test_stats(a).synced == 0, 3000);
    ck_assert_uint_eq(test_stats(a).synced, 0);
    ck_assert_int_eq(sc_tag_deleted(b, "k"), SC_OK); /* the source changed */
    sc_test_redis_kill(&red);
    v = NULL;
    sc_status st = sc_fetch(a, "k", 60000, load_source, &s, &v);
    ck_assert_msg(st != SC_OK, "a strong fetch answered %.*s, the value tagged deleted, unconfirmed",
                  v ? (int)sc_value_size(v) : 0, v ? (const char *)sc_value_data(v) : "");
    ck_assert(st == SC_ERR_REMOTE || st == SC_ERR_TIMEOUT);
    sc_close(a);
    sc_close(b);
    sc_test_redis_stop(&red);
}
END_TEST

/* A slow loader that says when it began (its fetch_lock read is done). */
typedef struct slow_load {
    atomic_int started;
    int delay_ms;
} slow_load;

static sc_status load_slowly(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    slow_load *x = ud;
    atomic_store(&x->started, 1);
    test_sleep_ms(x->delay_ms);
    sc_loaded_set(slot, "v2", 2);
    return SC_OK;
}

typedef struct fetch_thread {
    sc_cache *c;
    sc_fetch_opts fo;
    slow_load *load;
    result r;
} fetch_thread;

static void *fetch_thread_main(void *arg)
{
    fetch_thread *t = arg;
    sc_value *v = NULL;
    memset(&t->r, 0, sizeof t->r);
    t->r.st = sc_fetch_ex(t->c, "k", &t->fo, load_slowly, t->load, &v, &t->r.info);
    if (v)
        snprintf(t->r.got, sizeof t->r.got, "%.*s", (int)sc_value_size(v), (const char *)sc_value_data(v));
    sc_value_release(v);
    return NULL;
}

/* A deleted key's graced copy is never answered stale, even by a pod that
 * missed the delete's event: once a fetch of the pod read Redis and found no
 * graced value, a fetch that shares its load (and gives up at its soft
 * timeout) must not answer the pod's grace-table copy either. */
START_TEST(follower_never_serves_a_graced_copy_redis_disowned)
{
    const char *ns = NS("grace_follower");
    sc_options o = opts(ns, "a");
    o.redis_timeout_ms = 400;
    o.heartbeat_interval_ms = 100;
    o.heartbeat_timeout_ms = 400;
    sc_options ao = o;
    ao.reconnect_min_ms = 10000; /* misses the delete's event */
    ao.reconnect_max_ms = 10000;
    sc_cache *a = test_open(&ao);
    sc_cache *b = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = fetch_opts_ttl(200);
    fo.grace_ms = 10000;
    ck_assert_int_eq(fetch_ex(a, "k", &fo, &s).st, SC_OK); /* v1, in a's grace table */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "CLIENT KILL TYPE pubsub"), 0);
    WAIT_UNTIL(test_stats(a).synced == 0, 3000);
    ck_assert_uint_eq(test_stats(a).synced, 0);
    ck_assert_int_eq(sc_delete(b, "k"), SC_OK);
    test_sleep_ms(300); /* past v1's TTL, within its grace */
    /* The leader: reads Redis (no graced value: deleted), then loads slowly. */
    slow_load sl = {0, 800};
    fetch_thread lead = {a, fo, &sl, {0}};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, fetch_thread_main, &lead), 0);
    WAIT_UNTIL(atomic_load(&sl.started), 3000);
    ck_assert(atomic_load(&sl.started));
    /* A follower with a soft timeout gives up before the load ends. */
    fetch_thread follow = {a, fo, &sl, {0}};
    follow.fo.soft_timeout_ms = 100;
    fetch_thread_main(&follow);
    ck_assert_msg(!(follow.r.st == SC_OK && strcmp(follow.r.got, "v1") == 0),
                  "the follower answered v1 (stale %d), which was deleted", follow.r.info.stale);
    pthread_join(th, NULL);
    ck_assert_int_eq(lead.r.st, SC_OK);
    ck_assert_str_eq(lead.r.got, "v2");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A loader that fetches its own key (sc_load_fn: that fetch fails with
 * SC_ERR_INVALID), recording how that inner fetch ended. */
typedef struct reentrant {
    sc_cache *c;
    atomic_int done;
    sc_status inner;
    long long inner_ms;
} reentrant;

static sc_status load_inner(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)ud;
    sc_loaded_set(slot, "inner", 5);
    return SC_OK;
}

static sc_status load_reentrant(const char *key, sc_loaded *slot, void *ud)
{
    reentrant *x = ud;
    sc_value *v = NULL;
    long long t0 = test_now_ms();
    x->inner = sc_fetch(x->c, key, 60000, load_inner, NULL, &v);
    x->inner_ms = test_now_ms() - t0;
    sc_value_release(v);
    sc_loaded_set(slot, "outer", 5);
    atomic_store(&x->done, 1);
    return SC_OK;
}

/* With a timeout the loader runs on a thread of its own; a fetch of its own
 * key from there must not wait for the load it is part of (until the lock
 * lapses, blocking the key on every pod) and then load the key a second
 * time: it fails at once, as from any loader, and the load stores. */
START_TEST(timed_loader_fetching_its_own_key)
{
    const char *ns = NS("reentrant_timed");
    sc_options o = opts(ns, "a");
    sc_cache *a = test_open(&o);
    reentrant x = {a, 0, SC_OK, 0};
    sc_fetch_opts fo = fetch_opts_ttl(60000);
    fo.hard_timeout_ms = 2000; /* the loader runs on a thread of its own */
    sc_value *v = NULL;
    sc_status st = sc_fetch_ex(a, "k", &fo, load_reentrant, &x, &v, NULL);
    WAIT_UNTIL(atomic_load(&x.done), 8000);
    ck_assert(atomic_load(&x.done));
    ck_assert_msg(x.inner == SC_ERR_INVALID, "the loader's fetch of its own key: %s after %lld ms",
                  sc_strerror(x.inner), x.inner_ms);
    ck_assert_int_lt(x.inner_ms, 1000);
    ck_assert_int_eq(st, SC_OK);
    ck_assert_int_eq(sc_value_size(v), 5);
    ck_assert(memcmp(sc_value_data(v), "outer", 5) == 0);
    sc_value_release(v);
    ASSERT_REDIS_FIELD(ns, "k", "value", "outer");
    sc_close(a);
}
END_TEST

/* The soft timeout applies only with a graced value this call may answer:
 * one further past its TTL than the call's grace is not "at hand", so the
 * fetch waits for its loader (no hard timeout: never SC_ERR_TIMEOUT). */
START_TEST(soft_timeout_ignores_a_graced_value_past_the_calls_grace)
{
    const char *ns = NS("soft_past_grace");
    sc_options o = opts(ns, "a");
    sc_cache *a = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = fetch_opts_ttl(100);
    fo.grace_ms = 10000;
    ck_assert_int_eq(fetch_ex(a, "k", &fo, &s).st, SC_OK);
    test_sleep_ms(400); /* 300 ms past its TTL, well within its stored grace */
    source_put(&s, "v2");
    s.delay_ms = 500;
    sc_fetch_opts call = fo;
    call.grace_ms = 50; /* this call answers nothing more than 50 ms past its TTL */
    call.soft_timeout_ms = 100;
    result r = fetch_ex(a, "k", &call, &s);
    ck_assert_msg(r.st == SC_OK, "%s after %lld ms: %s", r.got, r.took_ms, sc_errmsg(a));
    ASSERT_SERVED(a, r, "v2", 0);
    sc_close(a);
}
END_TEST

/* A slow loader during which another pod deletes the key (and the loading
 * pod applies the delete). */
typedef struct delete_while_loading {
    sc_cache *a, *b;
    const char *ns;
} delete_while_loading;

static sc_status load_while_deleted(const char *key, sc_loaded *slot, void *ud)
{
    delete_while_loading *x = ud;
    ck_assert_int_eq(sc_delete(x->b, key), SC_OK);
    TEST_WAIT_APPLIED(x->a, x->ns, 3000);
    test_sleep_ms(300); /* past the caller's soft timeout */
    sc_loaded_set(slot, "v2", 2);
    return SC_OK;
}

/* The graced value the soft timeout would answer is retired while the load
 * runs (a delete reached the pod): the call has nothing to answer at the
 * soft timeout, so it waits for its loader as without a graced value; it
 * never fails with SC_ERR_TIMEOUT when it set no hard timeout. */
START_TEST(soft_timeout_with_the_graced_value_retired_meanwhile)
{
    const char *ns = NS("soft_retired");
    sc_options o = opts(ns, "a");
    sc_cache *a = test_open(&o);
    sc_cache *b = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = graced_past_ttl(a, &s, 100);
    delete_while_loading x = {a, b, ns};
    sc_value *v = NULL;
    sc_get_info info;
    sc_status st = sc_fetch_ex(a, "k", &fo, load_while_deleted, &x, &v, &info);
    ck_assert_msg(st != SC_ERR_TIMEOUT, "SC_ERR_TIMEOUT without a hard timeout: %s", sc_errmsg(a));
    if (st == SC_OK) {
        ck_assert_msg(!(sc_value_size(v) == 2 && memcmp(sc_value_data(v), "v1", 2) == 0), "answered the deleted v1");
        sc_value_release(v);
    }
    sc_close(a);
    sc_close(b);
}
END_TEST

/* The leader's loader of the next test: once the follower began, another
 * pod deletes the key and the loading pod applies the delete; then it loads
 * past the follower's soft timeout. */
typedef struct delete_under_follower {
    sc_cache *a, *b;
    const char *ns;
    atomic_int started, follower_began;
} delete_under_follower;

static sc_status load_delete_under_follower(const char *key, sc_loaded *slot, void *ud)
{
    delete_under_follower *x = ud;
    atomic_store(&x->started, 1);
    WAIT_UNTIL(atomic_load(&x->follower_began), 3000);
    ck_assert_int_eq(sc_delete(x->b, key), SC_OK);
    TEST_WAIT_APPLIED(x->a, x->ns, 3000);
    test_sleep_ms(300);
    sc_loaded_set(slot, "v2", 2);
    return SC_OK;
}

typedef struct lead_thread {
    sc_cache *c;
    sc_fetch_opts fo;
    delete_under_follower *x;
    sc_status st;
} lead_thread;

static void *lead_thread_main(void *arg)
{
    lead_thread *t = arg;
    sc_value *v = NULL;
    t->st = sc_fetch_ex(t->c, "k", &t->fo, load_delete_under_follower, t->x, &v, NULL);
    sc_value_release(v);
    return NULL;
}

/* A fetch that shares another thread's load, with a soft timeout and a
 * graced value at hand when it began: the value is retired while it waits
 * (a delete reached the pod), so at its soft timeout it has nothing to
 * answer and waits on as without one; it never fails with SC_ERR_LOCKED
 * (no other pod holds the lock) at the soft timeout. */
START_TEST(follower_waits_on_when_its_graced_value_is_retired)
{
    const char *ns = NS("grace_follower_waits");
    sc_options o = opts(ns, "a");
    sc_cache *a = test_open(&o);
    sc_cache *b = test_open(&o);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = graced_past_ttl(a, &s, 0); /* v1 graced, past its TTL */
    delete_under_follower x = {a, b, ns, 0, 0};
    lead_thread lead = {a, fo, &x, SC_OK};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, lead_thread_main, &lead), 0);
    WAIT_UNTIL(atomic_load(&x.started), 3000);
    ck_assert(atomic_load(&x.started));
    sc_fetch_opts ff = fo;
    ff.soft_timeout_ms = 100;
    source_put(&s, "v3");
    atomic_store(&x.follower_began, 1);
    result r = fetch_ex(a, "k", &ff, &s);
    pthread_join(th, NULL);
    ck_assert_msg(r.st == SC_OK, "the follower: %s after %lld ms (%s)", r.got, r.took_ms, sc_errmsg(a));
    ck_assert_str_ne(r.got, "v1");
    ck_assert_int_eq(r.info.stale, 0);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A loader of a 2,000-byte value ('a'..), or a failure once told to. */
static atomic_int big_fails;

static sc_status load_big(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)ud;
    if (atomic_load(&big_fails)) {
        sc_loaded_error(slot, "the source is down");
        return SC_ERR_LOADER;
    }
    char buf[2000];
    memset(buf, 'a', sizeof buf);
    sc_loaded_set(slot, buf, sizeof buf);
    return SC_OK;
}

/* A graced value Redis still holds is answered stale-if-error after the pod
 * flushed its local tier (here: disconnect_policy flush and a dropped
 * stream): the fetch's own Redis read, after the flush, shows it current.
 * The value is too large for the grace table (a sixteenth of a quarter of
 * local_max_bytes), so only that read can answer it. */
START_TEST(grace_survives_a_flush_before_the_read)
{
    const char *ns = NS("grace_after_flush");
    sc_options o = opts(ns, "a");
    o.grace_ms = 10000;
    sc_options ao = o;
    ao.disconnect_policy = SC_DISCONNECT_FLUSH;
    ao.local_max_bytes = 64 << 10;
    sc_cache *a = test_open(&ao);
    sc_cache *b = test_open(&o);
    atomic_store(&big_fails, 0);
    sc_fetch_opts fo = fetch_opts_ttl(200);
    sc_value *v = NULL;
    ck_assert_int_eq(sc_fetch_ex(a, "k", &fo, load_big, NULL, &v, NULL), SC_OK);
    sc_value_release(v);
    ck_assert_int_eq(sc_set(b, "other", "x", 1, 0), SC_OK); /* the counter moves past k's version */
    TEST_WAIT_APPLIED(a, ns, 3000);
    uint64_t flushes = test_stats(a).flushes;
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "CLIENT KILL TYPE pubsub"), 0);
    WAIT_UNTIL(test_stats(a).flushes > flushes && test_stats(a).synced == 1, 3000);
    ck_assert_uint_gt(test_stats(a).flushes, flushes);
    ck_assert_uint_eq(test_stats(a).synced, 1);
    test_sleep_ms(300); /* past k's TTL, within its grace */
    atomic_store(&big_fails, 1);
    v = NULL;
    sc_get_info info;
    sc_status st = sc_fetch_ex(a, "k", &fo, load_big, NULL, &v, &info);
    ck_assert_msg(st == SC_OK, "%s: %s", sc_strerror(st), sc_errmsg(a));
    ck_assert_int_eq(sc_value_size(v), 2000);
    ck_assert_int_eq(info.stale, 1);
    sc_value_release(v);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* lib/fetch/fetch.h (not included: its internal names are common words). */
int sc__fetch_grace_get(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t grace, sc_value **out,
                        uint64_t *past);

/* Whether c's grace table would answer key stale (lib/fetch/tables.c). */
static int graced_kept(sc_cache *c, const char *key)
{
    sc_value *v = NULL;
    uint64_t past;
    size_t klen = strlen(key);
    int kept = sc__fetch_grace_get(c, key, klen, sc__local_hash(key, klen), UINT64_C(1) << 40, &v, &past);
    sc_value_release(v);
    return kept;
}

/* A write that bypasses synccache and reaches the pod through redis_tracking
 * (here redis-cli DEL) retires the pod's graced copy of the key like any
 * write that reaches it: once Redis is away, the fetch does not answer the
 * deleted value stale. A load's lock on the key (reported the same way)
 * leaves it: Redis still holds that value. */
START_TEST(foreign_write_retires_the_graced_copy)
{
    sc_test_redis red;
    ck_assert_int_eq(sc_test_redis_start(&red, "--save \"\" --appendonly no"), 0);
    const char *ns = NS("grace_foreign");
    sc_options o = opts(ns, "a");
    o.redis_port = red.port;
    o.redis_timeout_ms = 300;
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 200;
    sc_cache *a = test_open(&o);
    WAIT_UNTIL(test_stats(a).tracking_active, 2000);
    ck_assert(test_stats(a).tracking_active);
    source s;
    source_init(&s, "v1");
    sc_fetch_opts fo = fetch_opts_ttl(200);
    fo.grace_ms = 60000;
    ck_assert_int_eq(fetch_ex(a, "k", &fo, &s).st, SC_OK);
    TEST_WAIT_APPLIED_ON(&red, a, ns, 3000);
    test_sleep_ms(300); /* past its TTL */
    /* A failing load: its lock and unlock are writes no event vouches for. */
    uint64_t confirmed = test_stats(a).tracking_confirmed;
    s.fail = SC_ERR_LOADER;
    ASSERT_SERVED(a, fetch_ex(a, "k", &fo, &s), "v1", 1);
    WAIT_UNTIL(test_stats(a).tracking_confirmed > confirmed, 2000); /* Redis still holds v1 */
    ck_assert(graced_kept(a, "k"));
    /* An outside delete: the graced copy goes (once a confirm, on the pod's
     * own thread, found Redis no longer holding it). */
    ck_assert_int_eq(sc_test_redis_cmd(&red, "DEL {%s}:k:k", ns), 0);
    WAIT_UNTIL(!graced_kept(a, "k"), 2000);
    sc_test_redis_kill(&red);
    WAIT_UNTIL(test_stats(a).synced == 0, 3000);
    result r = fetch_ex(a, "k", &fo, &s);
    ck_assert_msg(r.st != SC_OK, "answered %s (stale %d), deleted in Redis before it went away", r.got, r.info.stale);
    sc_close(a);
    sc_test_redis_stop(&red);
}
END_TEST

/* The same for a write made while the pod's stream (and with it tracking)
 * was down: the resubscription confirms the graced copies like the local
 * ones (bypass), or drops them as the local tier was (flush), so once Redis
 * is away the deleted value is not answered stale. */
START_TEST(foreign_write_while_away_retires_the_graced_copy)
{
    const sc_disconnect_policy policies[] = {SC_DISCONNECT_BYPASS, SC_DISCONNECT_FLUSH};
    for (int p = 0; p < 2; p++) {
        sc_test_redis red;
        ck_assert_int_eq(sc_test_redis_start(&red, "--save \"\" --appendonly no"), 0);
        char ns[64];
        snprintf(ns, sizeof ns, "%s%d", NS("grace_foreign_away"), p);
        sc_options o = opts(ns, "a");
        o.redis_port = red.port;
        o.redis_timeout_ms = 300;
        o.heartbeat_interval_ms = 50;
        o.heartbeat_timeout_ms = 200;
        o.disconnect_policy = policies[p];
        o.reconnect_min_ms = 600; /* stays away while the key goes */
        o.reconnect_max_ms = 1200;
        sc_cache *a = test_open(&o);
        WAIT_UNTIL(test_stats(a).tracking_active, 2000);
        ck_assert(test_stats(a).tracking_active);
        source s;
        source_init(&s, "v1");
        sc_fetch_opts fo = fetch_opts_ttl(200);
        fo.grace_ms = 60000;
        ck_assert_int_eq(fetch_ex(a, "k", &fo, &s).st, SC_OK);
        TEST_WAIT_APPLIED_ON(&red, a, ns, 3000);
        test_sleep_ms(300); /* past its TTL: only the graced copy is left */
        ck_assert(!test_held(a, "k"));
        ck_assert(graced_kept(a, "k"));
        ck_assert_int_eq(sc_test_redis_cmd(&red, "CLIENT KILL TYPE pubsub"), 0);
        WAIT_UNTIL(test_stats(a).synced == 0, 2000);
        ck_assert_uint_eq(test_stats(a).synced, 0);
        ck_assert_uint_eq(test_stats(a).tracking_active, 0);
        ck_assert_int_eq(sc_test_redis_cmd(&red, "DEL {%s}:k:k", ns), 0);
        WAIT_UNTIL(test_stats(a).synced == 1, 5000);
        ck_assert_uint_eq(test_stats(a).synced, 1);
        sc_test_redis_kill(&red);
        WAIT_UNTIL(test_stats(a).synced == 0, 3000);
        result r = fetch_ex(a, "k", &fo, &s);
        ck_assert_msg(r.st != SC_OK, "policy %d: answered %s (stale %d), deleted in Redis before it went away", p,
                      r.got, r.info.stale);
        sc_close(a);
        sc_test_redis_stop(&red);
    }
}
END_TEST

static Suite *resilience_suite(void)
{
    Suite *s = suite_create("resilience");
    TCase *tc = tcase_create("resilience");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fetch_opts_defaults);
    tcase_add_test(tc, grace_with_failing_loader);
    tcase_add_test(tc, grace_never_older_than_a_write);
    tcase_add_test(tc, grace_with_redis_stopped);
    tcase_add_test(tc, grace_copy_never_outlives_its_redis_grace);
    tcase_add_test(tc, soft_timeout_serves_graced_and_stores_later);
    tcase_add_test(tc, soft_timeout_background_load_never_over_newer_write);
    tcase_add_test(tc, hard_timeout);
    tcase_add_test(tc, tags_across_pods_and_in_redis);
    tcase_add_test(tc, tags_on_fetch);
    tcase_add_test(tc, tag_invalidation_fences_a_load_in_flight);
    tcase_add_test(tc, tag_invalidation_fences_a_not_found_load);
    tcase_add_test(tc, tag_event_lost_while_disconnected);
    tcase_add_test(tc, set_tagged_without_tags_publishes_invalidate);
    tcase_add_test(tc, grace_after_invalidate_tag_pruned);
    tcase_add_test(tc, tag_event_codec);
    tcase_add_test(tc, tag_with_100k_keys);
    tcase_add_test(tc, tag_records_stay_bounded);
    tcase_add_test(tc, forgotten_tag_still_fences_a_read_in_flight);
    suite_add_tcase(s, tc);
    /* Interactions of loading with the other features (sixth audit). */
    TCase *ti = tcase_create("interactions");
    tcase_set_timeout(ti, 60);
    tcase_add_test(ti, grace_never_older_than_a_write_applied_during_the_load);
    tcase_add_test(ti, strong_never_serves_an_unconfirmed_copy_while_redis_is_away);
    tcase_add_test(ti, follower_never_serves_a_graced_copy_redis_disowned);
    tcase_add_test(ti, timed_loader_fetching_its_own_key);
    tcase_add_test(ti, soft_timeout_ignores_a_graced_value_past_the_calls_grace);
    tcase_add_test(ti, soft_timeout_with_the_graced_value_retired_meanwhile);
    tcase_add_test(ti, follower_waits_on_when_its_graced_value_is_retired);
    tcase_add_test(ti, grace_survives_a_flush_before_the_read);
    tcase_add_test(ti, foreign_write_retires_the_graced_copy);
    tcase_add_test(ti, foreign_write_while_away_retires_the_graced_copy);
    suite_add_tcase(s, ti);
    return s;
}

int main(void)
{
    return test_run_suite(resilience_suite(), "--save \"\" --appendonly no");
}
