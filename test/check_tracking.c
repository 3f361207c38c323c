/* Server-assisted invalidation (redis_tracking, lib/tracking.c) against a
 * real redis-server: writes that bypass synccache, made from a plain
 * hiredis connection as redis-cli would make them (HSET, DEL, EXPIRE and
 * expiry, FLUSHALL), drop every pod's copy; synccache's own writes keep the
 * other pods' fresh copies; a killed tracking connection is repaired; the
 * option off sends no tracking command; tracking refused by an ACL leaves a
 * working pod without it; and the same on a one-master Redis Cluster.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#include "support/pods.h"

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
    sc_close(a);
}
END_TEST

START_TEST(test_foreign_hset_drops_copies)
{
    sc_cache *a = test_pod("t1", "a");
    sc_cache *b = test_pod("t1", "b");
    both_hold(a, b, "k", "v1");

    plain_cmd("HSET {t1}:k:k value foreign");
    WAIT_UNTIL(!local_has(a, "k", "v1") && !local_has(b, "k", "v1"), 2000);
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
    WAIT_UNTIL(!local_has(b, "e", "v2"), 2000);
    ck_assert(!local_has(b, "e", "v2"));
    WAIT_UNTIL(value_is(b, "e", "<none>"), 2000);
    ck_assert(value_is(b, "e", "<none>"));
    ck_assert(value_is(a, "e", "<none>"));

    both_hold(a, b, "f", "v3");
    uint64_t flushes = test_stats(b).flushes;
    plain_cmd("FLUSHALL");
    WAIT_UNTIL(!local_has(b, "f", "v3") && !local_has(a, "f", "v3"), 2000);
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
    /* An own heartbeat round trip later, the copy is still served: nothing
     * told the pod. */
    uint64_t last = test_stats(a).events_received;
    (void)last;
    test_sleep_ms(600);
    ck_assert(local_has(a, "k", "v1"));
    ck_assert(value_is(a, "k", "v1"));
    ck_assert_uint_eq(test_stats(a).tracking_invalidations, 0);
    ck_assert_uint_eq(test_stats(a).tracking_failures, 0);
    ck_assert_int_eq(tracking_clients(&g_redis), 0);
    sc_close(a);
}
END_TEST

/* An ACL that refuses CLIENT: a warning, no tracking, a working pod. */
START_TEST(test_refused_runs_without)
{
    plain_cmd("ACL SETUSER t6user on >t6pw ~* &* +@all -client");
    sc_options o = test_options("t6", "a");
    o.redis_username = "t6user";
    o.redis_password = "t6pw";
    sc_cache *a = test_open(&o);
    sc_cache *b = test_pod("t6", "b");
    ck_assert_uint_eq(test_stats(a).tracking_active, 0);
    ck_assert_uint_ge(test_stats(a).tracking_failures, 1);
    /* Events still flow. */
    ck_assert_int_eq(sc_set(b, "k", "v1", 2, 0), SC_OK);
    WAIT_UNTIL(local_has(a, "k", "v1"), 2000);
    ck_assert(local_has(a, "k", "v1"));
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK);
    WAIT_UNTIL(local_has(b, "k", "v2"), 2000);
    ck_assert(value_is(b, "k", "v2"));
    sc_close(a);
    sc_close(b);
    plain_cmd("ACL DELUSER t6user");
}
END_TEST

/* An ACL that allows CLIENT but not the channel __redis__:invalidate. */
START_TEST(test_channel_refused_runs_without)
{
    plain_cmd("ACL SETUSER t7user on >t7pw ~* resetchannels &{t7}:events +@all");
    sc_options o = test_options("t7", "a");
    o.redis_username = "t7user";
    o.redis_password = "t7pw";
    sc_cache *a = test_open(&o);
    sc_cache *b = test_pod("t7", "b");
    ck_assert_uint_eq(test_stats(a).tracking_active, 0);
    ck_assert_uint_ge(test_stats(a).tracking_failures, 1);
    ck_assert_int_eq(sc_set(b, "k", "v1", 2, 0), SC_OK);
    WAIT_UNTIL(local_has(a, "k", "v1"), 2000);
    ck_assert(local_has(a, "k", "v1"));
    sc_close(a);
    sc_close(b);
    plain_cmd("ACL DELUSER t7user");
}
END_TEST

/* A one-master Redis Cluster: the subscriber SSUBSCRIBEs and subscribes to
 * __redis__:invalidate on the namespace's master. */
START_TEST(test_cluster)
{
    sc_test_redis node;
    ck_assert_int_eq(sc_test_redis_start(&node, "--cluster-enabled yes --cluster-config-file nodes.conf"), 0);
    plain_cmd_on(&node, "CLUSTER ADDSLOTSRANGE 0 16383");
    redisContext *rc = sc_test_redis_connect(&node);
    for (int i = 0; i < 200; i++) {
        redisReply *rep = redisCommand(rc, "CLUSTER INFO");
        int ok = rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, "cluster_state:ok");
        freeReplyObject(rep);
        if (ok)
            break;
        test_sleep_ms(20);
    }
    redisFree(rc);
    char seeds[64];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d", node.port);
    sc_cache *pods[2];
    for (int i = 0; i < 2; i++) {
        sc_options o = test_options("tc", i ? "b" : "a");
        o.redis_cluster_nodes = seeds;
        pods[i] = test_open(&o);
        WAIT_UNTIL(test_stats(pods[i]).tracking_active == 1, 3000);
        ck_assert_uint_eq(test_stats(pods[i]).tracking_active, 1);
    }
    sc_cache *a = pods[0], *b = pods[1];
    both_hold(a, b, "k", "v1");
    plain_cmd_on(&node, "HSET {tc}:k:k value foreign");
    WAIT_UNTIL(!local_has(a, "k", "v1") && !local_has(b, "k", "v1"), 2000);
    ck_assert(value_is(a, "k", "foreign"));
    ck_assert(value_is(b, "k", "foreign"));

    /* Own writes keep the other pod's copy. */
    uint64_t confirmed = test_stats(b).tracking_confirmed;
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).tracking_confirmed > confirmed, 2000);
    ck_assert(local_has(b, "k", "v2"));
    sc_close(a);
    sc_close(b);
    sc_test_redis_stop(&node);
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
    tcase_add_test(tc, test_own_writes_keep_copies);
    tcase_add_test(tc, test_killed_tracking_connection_repaired);
    tcase_add_test(tc, test_option_off_sends_nothing);
    tcase_add_test(tc, test_refused_runs_without);
    tcase_add_test(tc, test_channel_refused_runs_without);
    tcase_add_test(tc, test_cluster);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(tracking_suite(), NULL);
}
