/* Server-assisted invalidation (redis_tracking, lib/tracking.c) against a
 * real redis-server: writes that bypass synccache, made with the redis-cli
 * binary (HSET) or a plain hiredis connection (DEL, EXPIRE and expiry,
 * FLUSHALL), drop every pod's copy; synccache's own writes keep the
 * other pods' fresh copies; a killed tracking connection is repaired; the
 * option off sends no tracking command; tracking refused by an ACL leaves a
 * working pod without it; and the same on a 3-master Redis Cluster.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#include "support/pods.h"
#include "support/redis_cluster.h"

sc_test_redis g_redis;

/* Runs a command on a fresh plain connection (what redis-cli does). */
static long long plain_cmd_on(const sc_test_redis *r, const char *fmt, ...)
{
    redisContext *rc = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(rc);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(rep);
    ck_assert_msg(rep->type != REDIS_REPLY_ERROR, "%s: %s", fmt, rep->str);
    long long n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    redisFree(rc);
    return n;
}
#define plain_cmd(...) plain_cmd_on(&g_redis, __VA_ARGS__)

static int value_is(sc_cache *c, const char *key, const char *want)
{
    char *got = test_get(c, key);
    int same = strcmp(got, want) == 0;
    free(got);
    return same;
}

/* Whether c serves key from its local tier (a peek: counts nothing). */
static int local_has(sc_cache *c, const char *key, const char *want)
{
    sc_value *v = NULL;
    if (sc_peek(c, key, &v) != SC_OK)
        return 0;
    int same = sc_value_size(v) == strlen(want) && memcmp(sc_value_data(v), want, strlen(want)) == 0;
    sc_value_release(v);
    return same;
}

/* Whether c no longer holds key = val and has counted at least want
 * tracking_invalidations. A copy goes before it is counted (only a removal
 * that happened counts, lib/tracking.c), so a test that saw the copy go may
 * read the counter a moment early: wait for both, then assert. */
static int dropped_counted(sc_cache *c, const char *key, const char *val, uint64_t want)
{
    return !local_has(c, key, val) && test_stats(c).tracking_invalidations >= want;
}

/* Connections in CLIENT LIST of r whose flags hold t (tracking). */
static int tracking_clients(const sc_test_redis *r)
{
    redisContext *rc = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(rc);
    redisReply *rep = redisCommand(rc, "CLIENT LIST");
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    int n = 0;
    for (const char *p = rep->str; (p = strstr(p, " flags=")) != NULL; p++) {
        const char *f = p + 7;
        size_t len = strcspn(f, " ");
        if (memchr(f, 't', len))
            n++;
    }
    freeReplyObject(rep);
    redisFree(rc);
    return n;
}

/* The id of the (one) tracking connection, redirecting to itself. */
static long long tracking_client_id(const sc_test_redis *r)
{
    redisContext *rc = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(rc);
    redisReply *rep = redisCommand(rc, "CLIENT LIST");
    ck_assert_ptr_nonnull(rep);
    long long id = -1;
    for (char *line = strtok(rep->str, "\n"); line; line = strtok(NULL, "\n")) {
        const char *f = strstr(line, " flags=");
        const char *redir = strstr(line, " redir=");
        long long lid = strtoll(line + 3, NULL, 10);
        if (f && redir && memchr(f + 7, 't', strcspn(f + 7, " "))) {
            ck_assert_int_eq(strtoll(redir + 7, NULL, 10), lid); /* REDIRECT to itself */
            id = lid;
        }
    }
    freeReplyObject(rep);
    redisFree(rc);
    return id;
}

/* How many keys match pattern in r. */
static size_t keys_matching(const sc_test_redis *r, const char *pattern)
{
    redisContext *rc = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(rc);
    redisReply *rep = redisCommand(rc, "KEYS %s", pattern);
    ck_assert_ptr_nonnull(rep);
    size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
    freeReplyObject(rep);
    redisFree(rc);
    return n;
}

/* Pods a and b hold key = val locally (b through its Redis read). */
static void both_hold(sc_cache *a, sc_cache *b, const char *key, const char *val)
{
    ck_assert_int_eq(sc_set(a, key, val, strlen(val), 0), SC_OK);
    WAIT_UNTIL(value_is(b, key, val) && local_has(b, key, val), 2000);
    ck_assert(local_has(a, key, val));
    ck_assert(local_has(b, key, val));
}

START_TEST(test_on_by_default)
{
    sc_options o;
    sc_options_init(&o);
    ck_assert_int_eq(o.redis_tracking, 1);
    o.ns = "t0";
    o.redis_port = g_redis.port;
    o.redis_tracking = 2;
    sc_cache *c = NULL;
    ck_assert_int_eq(sc_open(&o, &c), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(NULL), "redis_tracking"));

    sc_cache *a = test_pod("t0", "a");
    WAIT_UNTIL(test_stats(a).tracking_active == 1, 2000);
    ck_assert_uint_eq(test_stats(a).tracking_active, 1);
    ck_assert_int_ge(tracking_client_id(&g_redis), 1);
    /* The heartbeats write the canary, one key per pod (its instance id). */
    sc_cache *b = test_pod("t0", "b");
    WAIT_UNTIL(keys_matching(&g_redis, "{t0}:canary:*") == 2, 2000);
    ck_assert_uint_eq(keys_matching(&g_redis, "{t0}:canary:*"), 2);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(test_foreign_hset_drops_copies)
{
    sc_cache *a = test_pod("t1", "a");
    sc_cache *b = test_pod("t1", "b");
    both_hold(a, b, "k", "v1");

    /* The redis-cli binary itself, as an operator would type it. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d HSET '{t1}:k:k' value foreign > /dev/null", g_redis.port);
    ck_assert_int_eq(system(cmd), 0);
    WAIT_UNTIL(!local_has(a, "k", "v1") && dropped_counted(b, "k", "v1", 1), 2000);
    ck_assert(value_is(a, "k", "foreign"));
    ck_assert(value_is(b, "k", "foreign"));
    ck_assert_uint_ge(test_stats(b).tracking_invalidations, 1);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(test_foreign_del_expire_flushall)
{
    sc_cache *a = test_pod("t2", "a");
    sc_cache *b = test_pod("t2", "b");

    both_hold(a, b, "d", "v1");
    plain_cmd("DEL {t2}:k:d");
    WAIT_UNTIL(!local_has(b, "d", "v1") && !local_has(a, "d", "v1"), 2000);
    ck_assert(value_is(a, "d", "<none>"));
    ck_assert(value_is(b, "d", "<none>"));

    /* An EXPIRE is a write too; the expiry itself is reported again. */
    both_hold(a, b, "e", "v2");
    plain_cmd("PEXPIRE {t2}:k:e 50");
    WAIT_UNTIL(!local_has(b, "e", "v2") && !local_has(a, "e", "v2"), 2000);
    ck_assert(!local_has(b, "e", "v2") && !local_has(a, "e", "v2"));
    WAIT_UNTIL(value_is(b, "e", "<none>") && value_is(a, "e", "<none>"), 2000);
    ck_assert(value_is(b, "e", "<none>"));
    ck_assert(value_is(a, "e", "<none>"));

    both_hold(a, b, "f", "v3");
    uint64_t flushes = test_stats(b).flushes;
    plain_cmd("FLUSHALL");
    /* The nil invalidation clears the tiers (counted as a flush). */
    WAIT_UNTIL(test_stats(b).flushes > flushes && !local_has(b, "f", "v3") && !local_has(a, "f", "v3"), 2000);
    ck_assert(!local_has(b, "f", "v3"));
    ck_assert_uint_gt(test_stats(b).flushes, flushes);
    ck_assert(value_is(b, "f", "<none>"));
    /* The flush took the namespace's history too: once both pods have
     * noticed the new epoch (at a heartbeat), they are in sync again. */
    WAIT_UNTIL(test_stats(a).epoch_changes > 0 && test_stats(b).epoch_changes > 0, 3000);
    both_hold(a, b, "f", "v4");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Anyone may PUBLISH to __redis__:invalidate, and such a message can only
 * drop the copy it names: a string is never Redis' own payload (an array of
 * keys, or nil for a flush), so it is not taken for a FLUSHALL. */
START_TEST(test_published_string_drops_only_its_key)
{
    sc_cache *a = test_pod("tpub", "a");
    sc_cache *b = test_pod("tpub", "b");
    both_hold(a, b, "k1", "v1");
    both_hold(a, b, "k2", "v2");
    uint64_t flushes = test_stats(b).flushes;
    plain_cmd("PUBLISH __redis__:invalidate unrelated-key");
    plain_cmd("PUBLISH __redis__:invalidate {tpub}:k:k1");
    WAIT_UNTIL(!local_has(a, "k1", "v1") && !local_has(b, "k1", "v1"), 2000);
    ck_assert(!local_has(a, "k1", "v1") && !local_has(b, "k1", "v1"));
    /* Both messages were handled in order: the first dropped nothing. */
    ck_assert(local_has(a, "k2", "v2") && local_has(b, "k2", "v2"));
    ck_assert_uint_eq(test_stats(b).flushes, flushes);
    ck_assert(value_is(b, "k1", "v1"));
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Pod A's writes produce an invalidation on every pod; B proves it
 * belongs to A's write and keeps the copy the event gave it. */
START_TEST(test_own_writes_keep_copies)
{
    sc_cache *a = test_pod("t3", "a");
    sc_cache *b = test_pod("t3", "b");
    char val[32];
    for (int i = 0; i < 20; i++) {
        snprintf(val, sizeof val, "v%d", i);
        uint64_t confirmed = test_stats(b).tracking_confirmed;
        ck_assert_int_eq(sc_set(a, "k", val, strlen(val), 0), SC_OK);
        WAIT_UNTIL(test_stats(b).tracking_confirmed > confirmed, 2000);
        ck_assert_uint_gt(test_stats(b).tracking_confirmed, confirmed);
        sc_stats before = test_stats(b);
        ck_assert(value_is(b, "k", val));
        sc_stats after = test_stats(b);
        ck_assert_uint_eq(after.local_hits, before.local_hits + 1);
        ck_assert_uint_eq(after.remote_hits, before.remote_hits);
    }
    ck_assert_uint_eq(test_stats(b).tracking_invalidations, 0);
    ck_assert_uint_eq(test_stats(a).tracking_invalidations, 0);
    /* A's own copy too. */
    ck_assert(local_has(a, "k", val));
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Writes back to back, faster than a pod's confirms: by the time a write's
 * confirm runs, Redis holds a later synccache version. That copy is stale
 * and goes, but no other client wrote the key, so neither pod counts a
 * foreign invalidation (CI once saw an own write counted so in
 * test_own_writes_keep_copies, when pod a's confirm ran after the test's
 * next write). */
START_TEST(test_burst_of_own_writes_counts_nothing_foreign)
{
    sc_cache *a = test_pod("t11", "a");
    sc_cache *b = test_pod("t11", "b");
    char val[32] = "";
    for (int i = 0; i < 50; i++) {
        snprintf(val, sizeof val, "v%d", i);
        ck_assert_int_eq(sc_set(a, "k", val, strlen(val), 0), SC_OK);
    }
    /* Until both pods hold the last write and have confirmed a copy: most
     * of the burst's verdicts are in by then (a build that counted a later
     * version as foreign counted 49 here), and none may count. */
    WAIT_UNTIL(test_stats(a).tracking_confirmed > 0 && test_stats(b).tracking_confirmed > 0 && local_has(a, "k", val) &&
                   local_has(b, "k", val),
               3000);
    ck_assert(local_has(a, "k", val));
    ck_assert(local_has(b, "k", val));
    ck_assert_uint_eq(test_stats(a).tracking_invalidations, 0);
    ck_assert_uint_eq(test_stats(b).tracking_invalidations, 0);
    /* A foreign write after the burst is still counted (once or twice:
     * a confirm of the last write still in flight disproves it too). */
    plain_cmd("HSET {t11}:k:k value foreign");
    WAIT_UNTIL(!local_has(b, "k", val) && test_stats(b).tracking_invalidations > 0, 2000);
    ck_assert_uint_gt(test_stats(b).tracking_invalidations, 0);
    ck_assert(!local_has(b, "k", val));
    ck_assert(value_is(b, "k", "foreign"));
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Loads by sc_fetch take a lock before they store, and the lock is a write
 * of the key's hash that Redis reports like another client's: no event
 * vouches for it. It may neither cost the pod the copy its load made nor
 * count as a foreign write. (Before: every load counted one, and a load
 * installed before the subscriber read the lock's message lost its copy at
 * once; most of a batch did.) */
static sc_status load_one(const char *key, sc_loaded *out, void *ud)
{
    (void)ud;
    sc_loaded_set(out, key, strlen(key));
    return SC_OK;
}

static sc_status load_many(const char *const *keys, size_t n, sc_loaded *const *out, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < n; i++)
        sc_loaded_set(out[i], keys[i], strlen(keys[i]));
    return SC_OK;
}

START_TEST(test_own_loads_keep_copies)
{
    sc_cache *a = test_pod("t12", "a");
    enum { ONE = 30, BATCH = 64 };
    char names[ONE + BATCH][16];
    const char *batch[BATCH];
    sc_value *v, *out[BATCH];
    for (int i = 0; i < ONE + BATCH; i++)
        snprintf(names[i], sizeof names[i], "load%d", i);
    for (int i = 0; i < ONE; i++) {
        ck_assert_int_eq(sc_fetch(a, names[i], 0, load_one, NULL, &v), SC_OK);
        sc_value_release(v);
    }
    for (int i = 0; i < BATCH; i++)
        batch[i] = names[ONE + i];
    ck_assert_int_eq(sc_fetch_batch(a, batch, BATCH, 0, load_many, NULL, out), SC_OK);
    for (int i = 0; i < BATCH; i++)
        sc_value_release(out[i]);
    /* Every store's event applied, so every lock's message read (a lock's
     * message comes before its store's event), and every store's own
     * invalidation confirmed. */
    TEST_WAIT_APPLIED(a, "t12", 3000);
    WAIT_UNTIL(test_stats(a).tracking_confirmed >= ONE + BATCH, 3000);
    ck_assert_uint_ge(test_stats(a).tracking_confirmed, ONE + BATCH);
    ck_assert_uint_eq(test_stats(a).tracking_invalidations, 0);
    for (int i = 0; i < ONE + BATCH; i++)
        ck_assert_msg(local_has(a, names[i], names[i]), "%s is not held", names[i]);
    /* A foreign write is still seen. */
    plain_cmd("HSET {t12}:k:load0 value foreign");
    WAIT_UNTIL(dropped_counted(a, "load0", "load0", 1), 2000);
    ck_assert(!local_has(a, "load0", "load0"));
    ck_assert(value_is(a, "load0", "foreign"));
    ck_assert_uint_eq(test_stats(a).tracking_invalidations, 1);
    sc_close(a);
}
END_TEST

/* A synccache write and a foreign write of one key released together from
 * a CLIENT PAUSE, so Redis usually runs both in one turn and reports them in
 * one invalidation message: pod b, which took the write's value from its
 * event, must not keep it unless Redis still holds it (the confirm, gathered
 * over 1 ms, must disprove it when the foreign write came second). */
typedef struct racing_write {
    sc_cache *c;      /* NULL: the foreign writer */
    const char *key;
    sc_status st;
} racing_write;

static void *racing_write_main(void *arg)
{
    racing_write *w = arg;
    if (w->c)
        w->st = sc_set(w->c, w->key, "mine", 4, 0);
    else
        plain_cmd("HSET {t10}:k:%s value foreign", w->key);
    return NULL;
}

/* b serves key only if Redis holds those very bytes. */
static int copy_matches_redis(sc_cache *b, const char *key)
{
    sc_value *v = NULL;
    if (sc_peek(b, key, &v) != SC_OK)
        return 1;
    char *held = test_redis_value_on(&g_redis, "t10", key);
    int same = sc_value_size(v) == strlen(held) && memcmp(sc_value_data(v), held, strlen(held)) == 0;
    free(held);
    sc_value_release(v);
    return same;
}

/* Confirm verdicts so far on copies held: proven current or disproved. */
static uint64_t verdicts(sc_cache *c)
{
    sc_stats st = test_stats(c);
    return st.tracking_confirmed + st.tracking_invalidations;
}

/* Whether c holds a copy of key (a peek). */
static int holds(sc_cache *c, const char *key)
{
    sc_value *v = NULL;
    if (sc_peek(c, key, &v) != SC_OK)
        return 0;
    sc_value_release(v);
    return 1;
}

START_TEST(test_write_raced_by_foreign_write)
{
    sc_cache *a = test_pod("t10", "a");
    sc_cache *b = test_pod("t10", "b");
    WAIT_UNTIL(test_stats(a).tracking_active && test_stats(b).tracking_active, 3000);
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "r%d", i);
        uint64_t before[2] = {verdicts(a), verdicts(b)};
        plain_cmd("CLIENT PAUSE 300 WRITE");
        racing_write w[2] = {{a, key, SC_ERR_INVALID}, {NULL, key, SC_OK}};
        pthread_t th[2];
        for (int j = 0; j < 2; j++)
            pthread_create(&th[j], NULL, racing_write_main, &w[j]);
        for (int j = 0; j < 2; j++)
            pthread_join(th[j], NULL);
        ck_assert_int_eq(w[0].st, SC_OK);
        /* Each pod has had a verdict on a's write (its event's message is
         * confirmed or disproved): only then does a copy that matches
         * Redis say something (no copy at all matches trivially). b takes
         * its copy from the event, before the message; a's install may
         * lose the race to the verdict, which then counts nothing (no copy
         * went) and keeps the install out: sc_set has returned, so a copy
         * a does not hold now it never gets. */
        WAIT_UNTIL((verdicts(a) > before[0] || !holds(a, key)) && verdicts(b) > before[1], 3000);
        ck_assert(verdicts(a) > before[0] || !holds(a, key));
        ck_assert_uint_gt(verdicts(b), before[1]);
        WAIT_UNTIL(copy_matches_redis(b, key) && copy_matches_redis(a, key), 3000);
        ck_assert_msg(copy_matches_redis(b, key), "b keeps a copy of %s Redis no longer holds", key);
        ck_assert_msg(copy_matches_redis(a, key), "a keeps a copy of %s Redis no longer holds", key);
    }
    sc_close(a);
    sc_close(b);
}
END_TEST

/* The tracking connection killed: the pod resubscribes under a new client
 * id, re-establishes tracking, and sees foreign writes again. */
START_TEST(test_killed_tracking_connection_repaired)
{
    sc_cache *a = test_pod("t4", "a");
    WAIT_UNTIL(test_stats(a).tracking_active == 1, 2000);
    long long id = tracking_client_id(&g_redis);
    ck_assert_int_ge(id, 1);
    uint64_t reconnects = test_stats(a).reconnects;
    plain_cmd("CLIENT KILL ID %lld", id);
    WAIT_UNTIL(test_stats(a).reconnects > reconnects && test_stats(a).tracking_active == 1, 5000);
    ck_assert_uint_eq(test_stats(a).tracking_active, 1);
    long long id2 = tracking_client_id(&g_redis);
    ck_assert_int_ne(id2, id);
    ck_assert_int_ge(id2, 1);

    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    ck_assert(local_has(a, "k", "v1"));
    plain_cmd("HSET {t4}:k:k value foreign");
    WAIT_UNTIL(!local_has(a, "k", "v1"), 2000);
    ck_assert(value_is(a, "k", "foreign"));
    /* The canary keeps coming back: no failure over several heartbeats. */
    uint64_t hb = test_stats(a).heartbeat_misses;
    test_sleep_ms(1200);
    ck_assert_uint_eq(test_stats(a).tracking_failures, 0);
    ck_assert_uint_eq(test_stats(a).heartbeat_misses, hb);
    ck_assert_uint_eq(test_stats(a).tracking_active, 1);
    sc_close(a);
}
END_TEST

START_TEST(test_option_off_sends_nothing)
{
    ck_assert_int_eq(tracking_clients(&g_redis), 0);
    sc_options o = test_options("t5", "a");
    o.redis_tracking = 0;
    sc_cache *a = test_open(&o);
    ck_assert_int_eq(tracking_clients(&g_redis), 0);
    ck_assert_uint_eq(test_stats(a).tracking_active, 0);
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    plain_cmd("HSET {t5}:k:k value foreign");
    /* Heartbeats later (every 250 ms by default), the copy is still
     * served: nothing told the pod. */
    test_sleep_ms(600);
    ck_assert(local_has(a, "k", "v1"));
    ck_assert(value_is(a, "k", "v1"));
    ck_assert_uint_eq(test_stats(a).tracking_invalidations, 0);
    ck_assert_uint_eq(test_stats(a).tracking_failures, 0);
    ck_assert_int_eq(tracking_clients(&g_redis), 0);
    ck_assert_uint_eq(keys_matching(&g_redis, "{t5}:canary:*"), 0); /* no canary either */
    sc_close(a);
}
END_TEST

/* A pod of namespace ns logged in as a user with the four ACL rules r:
 * tracking refused with a warning, and a working pod whose events still
 * flow both ways. */
static void refused_runs_without(const char *ns, const char *const r[4])
{
    char user[32];
    snprintf(user, sizeof user, "%suser", ns);
    plain_cmd("ACL SETUSER %s on >pw %s %s %s %s", user, r[0], r[1], r[2], r[3]);
    sc_options o = test_options(ns, "a");
    o.redis_username = user;
    o.redis_password = "pw";
    sc_cache *a = test_open(&o);
    sc_cache *b = test_pod(ns, "b");
    ck_assert_uint_eq(test_stats(a).tracking_active, 0);
    ck_assert_uint_ge(test_stats(a).tracking_failures, 1);
    ck_assert_int_eq(sc_set(b, "k", "v1", 2, 0), SC_OK);
    WAIT_UNTIL(local_has(a, "k", "v1"), 2000);
    ck_assert(local_has(a, "k", "v1"));
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK);
    WAIT_UNTIL(local_has(b, "k", "v2"), 2000);
    ck_assert(value_is(b, "k", "v2"));
    sc_close(a);
    sc_close(b);
    plain_cmd("ACL DELUSER %s", user);
}

/* An ACL that refuses CLIENT. */
START_TEST(test_refused_runs_without)
{
    refused_runs_without("t6", (const char *const[4]){"~*", "&*", "+@all", "-client"});
}
END_TEST

/* An ACL that allows CLIENT but not the channel __redis__:invalidate. */
START_TEST(test_channel_refused_runs_without)
{
    refused_runs_without("t7", (const char *const[4]){"~*", "resetchannels", "&{t7}:events", "+@all"});
}
END_TEST

/* ---- a TCP proxy that can lose the invalidations ----
 * A broken redirect cannot be made from outside without killing the
 * connection (the subscriber redirects to itself), so the test puts a proxy
 * between the pod and Redis that forwards everything but, when told to,
 * drops the __redis__:invalidate messages Redis sends: the events and
 * heartbeats still flow, only the invalidation path is broken. */
typedef struct proxy {
    int listen_fd, port, redis_port;
    atomic_int drop;        /* drop invalidation messages */
    atomic_int drop_events; /* drop the messages of every other channel */
    atomic_int hold;        /* keep what Redis sends until released, then
                               forward it in one write */
} proxy;

/* Length of the complete RESP frame at b, or -1 when more bytes are needed. */
static long frame_len(const char *b, size_t n)
{
    const char *eol = memchr(b, '\n', n);
    if (!eol)
        return -1;
    long head = eol - b + 1;
    long v = strtol(b + 1, NULL, 10);
    if (b[0] == '$')
        return v < 0 ? head : ((size_t)(head + v + 2) <= n ? head + v + 2 : -1);
    if (b[0] != '*' && b[0] != '>')
        return head;
    long at = head;
    for (long i = 0; i < v; i++) {
        long e = frame_len(b + at, n - (size_t)at);
        if (e < 0)
            return -1;
        at += e;
    }
    return at;
}

static int write_all(int fd, const char *b, size_t n)
{
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct pipe_pair {
    proxy *p;
    int client, server;
} pipe_pair;

static void *proxy_conn(void *arg)
{
    pipe_pair pp = *(pipe_pair *)arg;
    free(arg);
    static const char inval[] = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n";
    static const char message[] = "*3\r\n$7\r\nmessage\r\n"; /* any channel's */
    size_t cap = 1 << 20, have = 0;
    char *buf = malloc(cap), tmp[65536];
    struct pollfd fds[2] = {{pp.client, POLLIN, 0}, {pp.server, POLLIN, 0}};
    for (;;) {
        fds[1].events = atomic_load(&pp.p->hold) ? 0 : POLLIN;
        if (poll(fds, 2, 10) < 0)
            break;
        if (fds[0].revents) {
            ssize_t r = read(pp.client, tmp, sizeof tmp);
            if (r <= 0 || write_all(pp.server, tmp, (size_t)r) < 0)
                break;
        }
        if (fds[1].revents) {
            ssize_t r = read(pp.server, buf + have, cap - have);
            if (r <= 0)
                break;
            have += (size_t)r;
            /* The frames kept are packed in place, so what is forwarded
             * goes out in one write (and one read on the other side). */
            size_t at = 0, kept = 0;
            long len;
            while (at < have && (len = frame_len(buf + at, have - at)) > 0) {
                int invalidation = (size_t)len >= sizeof inval - 1 && memcmp(buf + at, inval, sizeof inval - 1) == 0;
                int event = (size_t)len >= sizeof message - 1 && memcmp(buf + at, message, sizeof message - 1) == 0;
                int drop = invalidation ? atomic_load(&pp.p->drop) : event && atomic_load(&pp.p->drop_events);
                if (!drop) {
                    memmove(buf + kept, buf + at, (size_t)len);
                    kept += (size_t)len;
                }
                at += (size_t)len;
            }
            if (kept && write_all(pp.client, buf, kept) < 0)
                goto out;
            memmove(buf, buf + at, have - at);
            have -= at;
        }
    }
out:
    close(pp.client);
    close(pp.server);
    free(buf);
    return NULL;
}

static void *proxy_accept(void *arg)
{
    proxy *p = arg;
    for (;;) {
        int c = accept(p->listen_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->redis_port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
            close(c);
            close(s);
            continue;
        }
        pipe_pair *pp = malloc(sizeof *pp);
        *pp = (pipe_pair){p, c, s};
        pthread_t t;
        pthread_create(&t, NULL, proxy_conn, pp);
        pthread_detach(t);
    }
}

/* Starts a proxy to redis_port on a free loopback port (the test's process
 * exits with its threads). */
static void proxy_start(proxy *p, int redis_port)
{
    p->redis_port = redis_port;
    atomic_init(&p->drop, 0);
    atomic_init(&p->drop_events, 0);
    atomic_init(&p->hold, 0);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(p->listen_fd, 16), 0);
    socklen_t len = sizeof a;
    getsockname(p->listen_fd, (struct sockaddr *)&a, &len);
    p->port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, proxy_accept, p);
    pthread_detach(t);
}

/* Whether c is synced with tracking active and stays so, with no tracking
 * failure, for hold_ms in a row, within ms. */
static int tracking_settles(sc_cache *c, long hold_ms, long ms)
{
    long long deadline = test_now_ms() + ms;
    while (test_now_ms() < deadline) {
        sc_stats st = test_stats(c);
        if (st.synced == 1 && st.tracking_active == 1) {
            test_sleep_ms(hold_ms);
            sc_stats after = test_stats(c);
            if (after.synced == 1 && after.tracking_active == 1 && after.tracking_failures == st.tracking_failures &&
                after.reconnects == st.reconnects)
                return 1;
        } else {
            test_sleep_ms(5);
        }
    }
    return 0;
}

/* Pod id "a" of namespace ns, talking to Redis through proxy px (started
 * here), with the given heartbeat interval and timeout. */
static sc_cache *proxied_pod(proxy *px, const char *ns, unsigned heartbeat_ms, unsigned heartbeat_timeout_ms)
{
    proxy_start(px, g_redis.port);
    sc_options o = test_options(ns, "a");
    o.redis_port = px->port;
    o.heartbeat_interval_ms = heartbeat_ms;
    o.heartbeat_timeout_ms = heartbeat_timeout_ms;
    return test_open(&o);
}

/* The invalidations stop reaching the pod while its events still do: the
 * canary is missed, the pod counts a failure, resubscribes (a new client
 * id, tracking again) and confirms its copies; once the path works again a
 * foreign write is seen. */
START_TEST(test_lost_invalidations_detected_by_canary)
{
    static proxy px;
    sc_cache *a = proxied_pod(&px, "t8", 50, 300);
    sc_cache *b = test_pod("t8", "b");
    WAIT_UNTIL(test_stats(a).tracking_active == 1, 2000);
    ck_assert_int_eq(sc_set(b, "k", "v1", 2, 0), SC_OK);
    WAIT_UNTIL(local_has(a, "k", "v1"), 2000);
    ck_assert(local_has(a, "k", "v1"));

    atomic_store(&px.drop, 1);
    uint64_t reconnects = test_stats(a).reconnects;
    plain_cmd("HSET {t8}:k:k value foreign");
    WAIT_UNTIL(test_stats(a).tracking_failures >= 1, 3000);
    ck_assert_uint_ge(test_stats(a).tracking_failures, 1);
    ck_assert_uint_eq(test_stats(a).heartbeat_misses, 0); /* the events still flowed */
    /* The resubscription (invalidations still lost, so it keeps failing)
     * confirmed the copy with Redis: the foreign write is not served. */
    WAIT_UNTIL(test_stats(a).reconnects > reconnects, 3000);
    ck_assert_uint_gt(test_stats(a).reconnects, reconnects);
    WAIT_UNTIL(!local_has(a, "k", "v1"), 3000);
    ck_assert(!local_has(a, "k", "v1"));

    atomic_store(&px.drop, 0);
    /* A subscription made while the proxy dropped may look healthy until its
     * canary is overdue: wait until one has lasted a whole canary timeout. */
    ck_assert(tracking_settles(a, 400, 5000));
    ck_assert(value_is(a, "k", "foreign"));
    ck_assert(local_has(a, "k", "foreign"));
    plain_cmd("HSET {t8}:k:k value foreign2");
    WAIT_UNTIL(!local_has(a, "k", "foreign"), 2000);
    ck_assert(value_is(a, "k", "foreign2"));
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A copy newer than the pod's stream is kept through an invalidation only
 * if Redis still holds it. Here the event of b's write never reaches a (the
 * proxy drops it, and heartbeats are too far apart to notice the gap), so
 * a's copy read from Redis stays newer than a's last_seq; another client's
 * write must still take it (a build that kept newer copies without the
 * confirm served the old value until the next heartbeat). */
START_TEST(test_newer_copy_confirmed_against_redis)
{
    static proxy px;
    sc_cache *a = proxied_pod(&px, "t13", 30000, 60000);
    sc_cache *b = test_pod("t13", "b");
    WAIT_UNTIL(test_stats(a).synced == 1 && test_stats(a).tracking_active == 1, 3000);
    ck_assert_uint_eq(test_stats(a).tracking_active, 1);

    atomic_store(&px.drop_events, 1);
    uint64_t confirmed = test_stats(a).tracking_confirmed;
    ck_assert_int_eq(sc_set(b, "k", "v1", 2, 0), SC_OK);
    /* a's Redis read installs v1, newer than anything a applied. */
    WAIT_UNTIL(value_is(a, "k", "v1") && local_has(a, "k", "v1"), 3000);
    ck_assert(local_has(a, "k", "v1"));
    uint64_t version = 0;
    ck_assert_int_eq(sc_version_of(a, "k", &version), SC_OK);
    ck_assert_uint_gt(version, test_stats(a).last_seq);
    /* A write to the hash that leaves its value and version alone is
     * reported like any other; no event vouches for the copy, so the
     * confirm proves it against Redis and it stays. (b's own write was
     * reported before a's read installed the copy: nothing to confirm
     * then.) */
    plain_cmd("HSET {t13}:k:k other x");
    WAIT_UNTIL(test_stats(a).tracking_confirmed > confirmed, 3000);
    ck_assert_uint_gt(test_stats(a).tracking_confirmed, confirmed);
    ck_assert(local_has(a, "k", "v1"));
    ck_assert_uint_eq(test_stats(a).tracking_invalidations, 0);

    plain_cmd("HSET {t13}:k:k value foreign");
    WAIT_UNTIL(dropped_counted(a, "k", "v1", 1), 3000);
    ck_assert(!local_has(a, "k", "v1"));
    ck_assert_uint_eq(test_stats(a).tracking_invalidations, 1);
    ck_assert(value_is(a, "k", "foreign"));
    ck_assert_uint_gt(version, test_stats(a).last_seq); /* no event arrived meanwhile */
    atomic_store(&px.drop_events, 0);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Two reports of one key read at once (a write that left the copy alone,
 * then one that changed it): both queue a confirm of the same copy, Redis
 * disproves both, and the copy, gone once, counts once. */
START_TEST(test_two_reports_drop_a_copy_once)
{
    static proxy px;
    sc_cache *a = proxied_pod(&px, "t15", 30000, 60000);
    sc_cache *b = test_pod("t15", "b");
    WAIT_UNTIL(test_stats(a).synced == 1 && test_stats(a).tracking_active == 1, 3000);
    ck_assert_uint_eq(test_stats(a).tracking_active, 1);

    atomic_store(&px.drop_events, 1);
    ck_assert_int_eq(sc_set(b, "k", "v1", 2, 0), SC_OK);
    WAIT_UNTIL(value_is(a, "k", "v1") && local_has(a, "k", "v1"), 3000);
    ck_assert(local_has(a, "k", "v1"));
    /* No event vouches for the copy: every report of k is confirmed. */
    atomic_store(&px.hold, 1);
    test_sleep_ms(100); /* the proxy's poll takes it up within 10 ms */
    plain_cmd("HSET {t15}:k:k other x");
    plain_cmd("HSET {t15}:k:k value foreign");
    test_sleep_ms(100);
    atomic_store(&px.hold, 0);
    WAIT_UNTIL(test_stats(a).tracking_invalidations >= 1, 3000);
    test_sleep_ms(300); /* a second count would follow within the same confirm */
    ck_assert(!local_has(a, "k", "v1"));
    ck_assert_uint_eq(test_stats(a).tracking_invalidations, 1);
    ck_assert(value_is(a, "k", "foreign"));
    atomic_store(&px.drop_events, 0);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A partitioned namespace: each partition tracks its own prefixes. The
 * partition of a key is FNV-1a 32 of its bytes mod the count
 * (docs/protocol.md, "Partitions"). */
START_TEST(test_partitions)
{
    sc_cache *pods[2];
    for (int i = 0; i < 2; i++) {
        sc_options o = test_options("t9", i ? "b" : "a");
        o.partitions = 4;
        pods[i] = test_open(&o);
        WAIT_UNTIL(test_stats(pods[i]).tracking_active == 1, 3000);
        ck_assert_uint_eq(test_stats(pods[i]).tracking_active, 1);
    }
    sc_cache *a = pods[0], *b = pods[1];
    both_hold(a, b, "k", "v1");
    uint32_t h = 2166136261u;
    for (const char *p = "k"; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 16777619u;
    }
    plain_cmd("HSET {t9#%u}:k:k value foreign", h % 4);
    WAIT_UNTIL(!local_has(a, "k", "v1") && dropped_counted(b, "k", "v1", 1), 2000);
    ck_assert(value_is(a, "k", "foreign"));
    ck_assert(value_is(b, "k", "foreign"));
    ck_assert_uint_ge(test_stats(b).tracking_invalidations, 1);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A Redis Cluster (three masters, the shared harness): the subscriber
 * SSUBSCRIBEs and subscribes to __redis__:invalidate on the namespace's
 * master, where the foreign write lands. */
START_TEST(test_cluster)
{
    sc_test_cluster cl;
    ck_assert_int_eq(sc_test_cluster_start(&cl, 3, 0), 0);
    sc_cache *pods[2];
    for (int i = 0; i < 2; i++) {
        sc_options o = test_options("tc", i ? "b" : "a");
        o.redis_cluster_nodes = cl.seeds;
        pods[i] = test_open(&o);
        WAIT_UNTIL(test_stats(pods[i]).tracking_active == 1, 3000);
        ck_assert_uint_eq(test_stats(pods[i]).tracking_active, 1);
    }
    sc_cache *a = pods[0], *b = pods[1];
    int master = sc_test_cluster_master_of(&cl, "{tc}");
    ck_assert_int_ne(master, 0);
    both_hold(a, b, "k", "v1");
    redisReply *r = sc_test_node_cmd(master, "HSET {tc}:k:k value foreign");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    WAIT_UNTIL(!local_has(a, "k", "v1") && dropped_counted(b, "k", "v1", 1), 2000);
    ck_assert(value_is(a, "k", "foreign"));
    ck_assert(value_is(b, "k", "foreign"));

    /* Own writes keep the other pod's copy: confirmed, not counted as
     * another client's write. On a cluster the invalidation (on
     * __redis__:invalidate) and the event (on the shard channel) now and
     * then reach b in the other order (seen under load), and b, which
     * cannot tell yet, counts it: ten writes may count a couple, a pod that
     * counted own writes would count ten. */
    uint64_t foreign = test_stats(b).tracking_invalidations;
    ck_assert_uint_ge(foreign, 1);
    for (int i = 2; i < 12; i++) {
        char v[8];
        snprintf(v, sizeof v, "v%d", i);
        uint64_t confirmed = test_stats(b).tracking_confirmed;
        ck_assert_int_eq(sc_set(a, "k", v, strlen(v), 0), SC_OK);
        WAIT_UNTIL(local_has(b, "k", v) && test_stats(b).tracking_confirmed > confirmed, 2000);
        ck_assert(local_has(b, "k", v));
    }
    ck_assert_uint_le(test_stats(b).tracking_invalidations, foreign + 3);
    sc_close(a);
    sc_close(b);
    sc_test_cluster_stop(&cl);
}
END_TEST

/* on_set_local (README, "Transform hook") makes the local tier hold other
 * bytes than Redis. The confirm script compares a copy's version and bytes
 * with Redis: a resubscription confirms every copy, and a transformed one
 * never matched, so every copy the hook had changed went at each
 * reconnection (the cache did not "stay warm"), each counted in
 * tracking_invalidations as if another client had written its key. */
static int upper_hook(const char *key, const void *val, size_t len, uint64_t version, void **out, size_t *out_len,
                      void *ud)
{
    (void)key;
    (void)version;
    (void)ud;
    char *b = malloc(len ? len : 1);
    if (!b)
        return -1;
    for (size_t i = 0; i < len; i++)
        b[i] = (char)(((const char *)val)[i] >= 'a' && ((const char *)val)[i] <= 'z' ? ((const char *)val)[i] - 32
                                                                                     : ((const char *)val)[i]);
    *out = b;
    *out_len = len;
    return 1;
}

START_TEST(test_transformed_copies_survive_a_resubscription)
{
    sc_options oa = test_options("t_xf", "a");
    oa.redis_tracking = 0; /* only b's connection tracks */
    sc_cache *a = test_open(&oa);
    sc_options ob = test_options("t_xf", "b");
    ob.on_set_local = upper_hook;
    sc_cache *b = test_open(&ob);
    WAIT_UNTIL(test_stats(b).tracking_active == 1, 2000);
    ck_assert_int_eq(sc_set(a, "ev", "abc", 3, 0), SC_OK); /* b gets it from the event */
    ck_assert_int_eq(sc_set(a, "rd", "def", 3, 0), SC_OK);
    WAIT_UNTIL(local_has(b, "ev", "ABC"), 2000);
    ck_assert(local_has(b, "ev", "ABC"));
    sc_value *v = NULL;
    ck_assert_int_eq(sc_get(b, "rd", &v), SC_OK); /* b reads it from Redis */
    sc_value_release(v);
    ck_assert(local_has(b, "rd", "DEF"));
    long long id = tracking_client_id(&g_redis);
    ck_assert_int_ge(id, 1);
    uint64_t reconnects = test_stats(b).reconnects, inv = test_stats(b).tracking_invalidations;
    plain_cmd("CLIENT KILL ID %lld", id);
    WAIT_UNTIL(test_stats(b).reconnects > reconnects && test_stats(b).tracking_active == 1 && test_stats(b).synced,
               5000);
    ck_assert_uint_eq(test_stats(b).tracking_active, 1);
    test_sleep_ms(200);
    ck_assert_msg(local_has(b, "ev", "ABC") && local_has(b, "rd", "DEF"),
                  "the transformed copies went at the resubscription (ev %d, rd %d)", local_has(b, "ev", "ABC"),
                  local_has(b, "rd", "DEF"));
    ck_assert_uint_eq(test_stats(b).tracking_invalidations, inv);
    /* A foreign write that keeps the version still takes a copy away: at
     * the next resubscription (made while nothing listened) or at once. */
    id = tracking_client_id(&g_redis);
    reconnects = test_stats(b).reconnects;
    plain_cmd("CLIENT KILL ID %lld", id);
    plain_cmd("HSET {t_xf}:k:ev value foreign");
    WAIT_UNTIL(test_stats(b).reconnects > reconnects && test_stats(b).tracking_active == 1 && test_stats(b).synced,
               5000);
    WAIT_UNTIL(!local_has(b, "ev", "ABC"), 2000);
    ck_assert(!local_has(b, "ev", "ABC"));
    ck_assert(value_is(b, "ev", "FOREIGN"));
    ck_assert(local_has(b, "rd", "DEF"));
    sc_close(a);
    sc_close(b);
}
END_TEST

static Suite *tracking_suite(void)
{
    Suite *s = suite_create("tracking");
    TCase *tc = tcase_create("tracking");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_on_by_default);
    tcase_add_test(tc, test_foreign_hset_drops_copies);
    tcase_add_test(tc, test_foreign_del_expire_flushall);
    tcase_add_test(tc, test_published_string_drops_only_its_key);
    tcase_add_test(tc, test_write_raced_by_foreign_write);
    tcase_add_test(tc, test_own_writes_keep_copies);
    tcase_add_test(tc, test_burst_of_own_writes_counts_nothing_foreign);
    tcase_add_test(tc, test_own_loads_keep_copies);
    tcase_add_test(tc, test_killed_tracking_connection_repaired);
    tcase_add_test(tc, test_option_off_sends_nothing);
    tcase_add_test(tc, test_refused_runs_without);
    tcase_add_test(tc, test_channel_refused_runs_without);
    tcase_add_test(tc, test_lost_invalidations_detected_by_canary);
    tcase_add_test(tc, test_newer_copy_confirmed_against_redis);
    tcase_add_test(tc, test_two_reports_drop_a_copy_once);
    tcase_add_test(tc, test_partitions);
    tcase_add_test(tc, test_cluster);
    tcase_add_test(tc, test_transformed_copies_survive_a_resubscription);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(tracking_suite(), NULL);
}
