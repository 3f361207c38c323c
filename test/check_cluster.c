/* Integration tests on a real Redis Cluster: six cluster-enabled
 * redis-servers on loopback (three masters, three replicas) joined with
 * `redis-cli --cluster create`, started in main and always stopped. Each
 * test uses its own namespaces; tests that change the topology (a slot
 * migration, a manual failover, a killed master) find the owners afresh
 * with CLUSTER SLOTS, so their order does not matter for correctness. The
 * killed-master test runs last because it leaves one node down.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"
#include "history.h"
#include "redis_cluster.h"
#include "remote/remote.h"

sc_test_redis g_redis; /* pods.h wants it; every test here uses the cluster */

static sc_test_cluster g_cl;

/* ------------------------------------------------------------ harness -- */

static unsigned ns_slot(const char *ns)
{
    char tag[300];
    snprintf(tag, sizeof tag, "{%s}", ns);
    return sc__cluster_keyslot(tag, strlen(tag));
}

static int master_of_ns(const char *ns)
{
    return sc_test_cluster_slot_owner(&g_cl, ns_slot(ns));
}

/* ----------------------------------------------------------- pods -- */

static sc_options cluster_options(const char *ns, const char *id)
{
    sc_options o = test_options(ns, id);
    o.redis_cluster_nodes = g_cl.seeds;
    o.redis_port = 1; /* ignored in cluster mode */
    return o;
}

static sc_cache *cluster_pod(const char *ns, const char *id)
{
    sc_options o = cluster_options(ns, id);
    return test_open(&o);
}

/* {ns}:k:<key> read on the slot's owner with a plain HGET ("<none>"). */
static char *cluster_value_of(const char *ns, const char *key, void *ud)
{
    (void)ud;
    for (int attempt = 0; attempt < 50; attempt++) {
        int port = master_of_ns(ns);
        redisReply *r = port ? sc_test_node_cmd(port, "HGET {%s}:k:%s value", ns, key) : NULL;
        if (r && r->type != REDIS_REPLY_ERROR) {
            char *out = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : strdup("<none>");
            freeReplyObject(r);
            return out;
        }
        if (r)
            freeReplyObject(r);
        test_sleep_ms(100); /* MOVED while the topology settles */
    }
    ck_abort_msg("cannot read {%s}:k:%s from the cluster", ns, key);
    return NULL;
}

static char *cluster_value(const char *ns, const char *key)
{
    return cluster_value_of(ns, key, NULL);
}

/* A namespace name "<prefix><n>" whose slot the master at port owns. */
static void ns_on_master(const char *prefix, int port, char *out, size_t cap)
{
    for (int n = 0; n < 10000; n++) {
        snprintf(out, cap, "%s%d", prefix, n);
        if (master_of_ns(out) == port)
            return;
    }
    ck_abort_msg("no namespace lands on %d", port);
}

static void assert_converged(sc_cache **pods, int npods, const char *ns, const char *key, long ms)
{
    test_assert_converged(pods, npods, ns, key, ms, cluster_value_of, NULL);
}

/* ---------------------------------------------------------------- tests -- */

START_TEST(keyslot_matches_redis)
{
    /* The CRC16 check value, and Redis' own examples of hash tags. */
    ck_assert_uint_eq(sc__cluster_keyslot("123456789", 9), 12739);
    ck_assert_uint_eq(sc__cluster_keyslot("{user1000}.following", 20), sc__cluster_keyslot("user1000", 8));
    ck_assert_uint_ne(sc__cluster_keyslot("foo{}{bar}", 10), sc__cluster_keyslot("bar", 3)); /* the whole key */
    ck_assert_uint_eq(sc__cluster_keyslot("foo{{bar}}zap", 13), sc__cluster_keyslot("{bar", 4));
    const char *keys[] = {"{ns}:k:a",       "a",           "{}x",        "x{y",          "{a}{b}", "{sc}:events",
                          "\xff\xfe{\x01}", "hello world", "foo{}{bar}", "foo{{bar}}zap"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        redisReply *r = sc_test_node_cmd(g_cl.node[0].port, "CLUSTER KEYSLOT %s", keys[i]);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
        ck_assert_uint_eq(sc__cluster_keyslot(keys[i], strlen(keys[i])), (unsigned)r->integer);
        freeReplyObject(r);
    }
}
END_TEST

START_TEST(options_are_checked)
{
    sc_options o;
    sc_cache *c;
#define EXPECT_INVALID(stmt, word)                                                                                     \
    do {                                                                                                               \
        o = cluster_options("c_opts", NULL);                                                                           \
        stmt;                                                                                                          \
        TEST_ASSERT_OPEN_INVALID(&o, word);                                                                            \
    } while (0)
    EXPECT_INVALID(o.partitions = 100000, "option partitions");
    EXPECT_INVALID(o.sentinel_nodes = "127.0.0.1:26379", "not both");
    EXPECT_INVALID(o.redis_cluster_nodes = "nope", "redis_cluster_nodes");
    EXPECT_INVALID(o.redis_cluster_nodes = "127.0.0.1:0", "redis_cluster_nodes");
    EXPECT_INVALID(o.redis_db = 2, "redis_db");
    EXPECT_INVALID(o.channel = "elsewhere", "{c_opts}");
#undef EXPECT_INVALID
    /* A channel carrying the namespace's tag is fine; so is partitions 1. */
    o = cluster_options("c_opts", NULL);
    o.channel = "{c_opts}:mine";
    o.partitions = 1;
    c = test_open(&o);
    sc_close(c);
}
END_TEST

START_TEST(wrong_cluster_address_fails_fast)
{
    sc_options o = cluster_options("c_wrong", NULL);
    o.redis_cluster_nodes = "127.0.0.1:1,127.0.0.1:2";
    test_assert_open_fails_fast(&o, "127.0.0.1:2");

    /* A Redis that is not a cluster node is named as such. */
    sc_test_redis plain;
    ck_assert_int_eq(sc_test_redis_start(&plain, NULL), 0);
    char seed[64];
    snprintf(seed, sizeof seed, "127.0.0.1:%d", plain.port);
    o.redis_cluster_nodes = seed;
    sc_cache *c = NULL;
    sc_status s = sc_open(&o, &c);
    sc_test_redis_stop(&plain);
    ck_assert_int_eq(s, SC_ERR_REMOTE);
    ck_assert_msg(strstr(sc_errmsg(NULL), "cluster support disabled"), "message: %s", sc_errmsg(NULL));
}
END_TEST

/* A caller that times out waiting for a free connection of a cluster pool
 * learns which node the pool's connections are stuck on: all of them talk
 * to the namespace's master. The only connection is held by a begun
 * exchange, so the wait runs out without any node misbehaving. */
START_TEST(pool_wait_names_the_node)
{
    const char *ns = "c_poolwait";
    sc__remote_config cfg = {.timeout_ms = 300, .pool_size = 1, .ns = ns, .cluster_nodes = g_cl.seeds};
    char err[512] = "";
    sc__router *rt = NULL;
    sc__pool *p = NULL;
    ck_assert_int_eq(sc__router_create(&cfg, &rt, err, sizeof err), SC_OK);
    ck_assert_msg(sc__router_refresh(rt, sc__remote_now_ms() + 2000, err, sizeof err) == SC_OK, "%s", err);
    ck_assert_int_eq(sc__pool_create(&cfg, &p, err, sizeof err), SC_OK);
    sc__pool_set_router(p, rt);

    const char *ping[] = {"PING"};
    sc__pool_cmd cmd = {1, ping, NULL};
    sc__pool_exchange x;
    ck_assert_msg(sc__pool_begin(p, sc__remote_now_ms() + 2000, 2000, "PING", 1, &cmd, &x, err, sizeof err) == SC_OK,
                  "%s", err);
    redisReply *reply = NULL;
    sc_status st = sc__pool_command(p, sc__remote_now_ms() + 200, 200, "PING", SC__POOL_READ, 1, ping, NULL, &reply,
                                    err, sizeof err);
    ck_assert_int_eq(st, SC_ERR_TIMEOUT);
    ck_assert_ptr_null(reply);
    char port[16];
    snprintf(port, sizeof port, ":%d", master_of_ns(ns));
    ck_assert_msg(strstr(err, "waiting for a free connection") && strstr(err, port), "%s (master %s)", err, port);

    redisReply *replies[1] = {NULL};
    ck_assert_msg(sc__pool_end(&x, replies, err, sizeof err) == SC_OK, "%s", err);
    ck_assert_str_eq(replies[0]->str, "PONG");
    freeReplyObject(replies[0]);
    sc__pool_destroy(p);
    sc__router_destroy(rt);
}
END_TEST

START_TEST(namespaces_across_masters)
{
    /* One namespace on each master, two pods on each. */
    int masters[3] = {0};
    int nm = 0;
    for (unsigned slot = 0; slot < 16384 && nm < 3; slot += 997) {
        int port = sc_test_cluster_slot_owner(&g_cl, slot);
        int seen = 0;
        for (int i = 0; i < nm; i++)
            seen |= masters[i] == port;
        if (port && !seen)
            masters[nm++] = port;
    }
    ck_assert_int_eq(nm, 3);
    char ns[3][32];
    sc_cache *a[3], *b[3];
    for (int i = 0; i < 3; i++) {
        ns_on_master("c_many", masters[i], ns[i], sizeof ns[i]);
        a[i] = cluster_pod(ns[i], "a");
        b[i] = cluster_pod(ns[i], "b");
    }
    for (int i = 0; i < 3; i++) {
        /* The keys live on the namespace's master, tagged {ns}. */
        ck_assert_int_eq(sc_set(a[i], "k", "v1", 2, 0), SC_OK);
        redisReply *r = sc_test_node_cmd(masters[i], "HGET {%s}:k:k value", ns[i]);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
        ck_assert_str_eq(r->str, "v1");
        freeReplyObject(r);
        TEST_ASSERT_STR_FREED(test_get(b[i], "k"), "v1", "k");
        /* Propagation: b holds v1 locally; a's write reaches it by SPUBLISH. */
        uint64_t applied = test_stats(b[i]).events_applied;
        ck_assert_int_eq(sc_set(a[i], "k", "v2", 2, 0), SC_OK);
        TEST_ASSERT_PEEK_SOON(b[i], "k", "v2", 3000);
        /* The subscriber counts the event after it installed the value. */
        WAIT_UNTIL(test_stats(b[i]).events_applied > applied, 3000);
        ck_assert_uint_gt(test_stats(b[i]).events_applied, applied);
        /* Delete and clear propagate too. */
        ck_assert_int_eq(sc_delete(a[i], "k"), SC_OK);
        TEST_ASSERT_PEEK_SOON(b[i], "k", "<none>", 3000);
        TEST_ASSERT_STR_FREED(test_get(b[i], "k"), "<none>", "k");
        ck_assert_int_eq(sc_set(a[i], "x", "1", 1, 0), SC_OK);
        ck_assert_int_eq(sc_set(a[i], "y", "2", 1, 0), SC_OK);
        TEST_ASSERT_STR_FREED(test_get(b[i], "x"), "1", "x");
        ck_assert_int_eq(sc_clear(b[i]), SC_OK);
        TEST_ASSERT_PEEK_SOON(a[i], "x", "<none>", 3000);
        TEST_ASSERT_STR_FREED(cluster_value(ns[i], "y"), "<none>", "y");
        /* get_many and versions work on the cluster as well. */
        ck_assert_int_eq(sc_set(a[i], "m1", "A", 1, 0), SC_OK);
        const char *keys[2] = {"m1", "m2"};
        sc_value *out[2];
        ck_assert_int_eq(sc_get_many(b[i], keys, 2, out), SC_OK);
        ck_assert_ptr_nonnull(out[0]);
        ck_assert_ptr_null(out[1]);
        sc_value_release(out[0]);
        uint64_t ver;
        ck_assert_int_eq(sc_version_of(b[i], "m1", &ver), SC_OK);
        ck_assert_int_eq(sc_set_if_version(b[i], "m1", "B", 1, 0, ver), SC_OK);
        ck_assert_int_eq(sc_set_if_version(a[i], "m1", "C", 1, 0, ver), SC_ERR_CONFLICT);
        assert_converged((sc_cache *[]){a[i], b[i]}, 2, ns[i], "m1", 3000);
        ck_assert_uint_eq(test_stats(a[i]).publish_failures, 0);
    }
    for (int i = 0; i < 3; i++) {
        sc_close(a[i]);
        sc_close(b[i]);
    }
}
END_TEST

static int check_writer(test_writer *w, sc_cache **pods, int npods, const char *ns)
{
    return test_check_writer(w, pods, npods, ns, 5000, cluster_value_of, NULL);
}

/* The history checker beside a failover test (test/support/history.h):
 * three pods of a namespace of their own on the same master, recording
 * random gets, sets, deletes and clears through the failover. */
static redisContext *connect_owner(const char *ns, void *ud)
{
    (void)ud;
    int port = master_of_ns(ns);
    return port ? sc_test_redis_connect_addr("127.0.0.1", port) : NULL;
}

static void history_start(hist_run *h, const char *prefix, int master)
{
    char ns[32];
    ns_on_master(prefix, master, ns, sizeof ns);
    sc_options o = cluster_options(ns, NULL);
    test_history_start(h, &o, ns, connect_owner);
}

static void history_check(hist_run *h, const char *tag)
{
    test_history_check(h, cluster_options("x", NULL).redis_timeout_ms, tag);
}

/* The steps of sc_test_cluster_migrate_*, each asserted. */
static void migrate_begin(unsigned slot, int src, int dst)
{
    ck_assert_int_eq(sc_test_cluster_migrate_begin(slot, src, dst), 0);
}

static void migrate_keys(unsigned slot, int src, int dst)
{
    ck_assert_int_eq(sc_test_cluster_migrate_keys(slot, src, dst), 0);
}

static void migrate_finish(unsigned slot, int src, int dst)
{
    ck_assert_int_eq(sc_test_cluster_migrate_finish(&g_cl, slot, src, dst), 0);
}

static void migrate_slot(unsigned slot, int src, int dst)
{
    migrate_begin(slot, src, dst);
    migrate_keys(slot, src, dst);
    migrate_finish(slot, src, dst);
}

/* A master other than port (0 if none). */
static int other_master(int port)
{
    for (unsigned s = 0; s < 16384; s += 500) {
        int p = sc_test_cluster_slot_owner(&g_cl, s);
        if (p && p != port)
            return p;
    }
    return 0;
}

/* A namespace of prefix (in ns) on the master owning slot near (*src), the
 * other master its slot can move to (*dst), and that slot. */
static unsigned ns_to_migrate(unsigned near, const char *prefix, char ns[32], int *src, int *dst)
{
    *src = sc_test_cluster_slot_owner(&g_cl, near);
    ns_on_master(prefix, *src, ns, 32);
    *dst = other_master(*src);
    ck_assert_int_ne(*dst, 0);
    return ns_slot(ns);
}

START_TEST(ask_redirection_mid_migration)
{
    char ns[32];
    int src, dst;
    unsigned slot = ns_to_migrate(3000, "c_ask", ns, &src, &dst);
    sc_cache *a = cluster_pod(ns, "a");
    sc_cache *b = cluster_pod(ns, "b");
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);

    /* Every key of the namespace has moved, the slot has not: the old
     * owner answers ASK, and only a client that sends ASKING first is
     * served by the new one. */
    migrate_begin(slot, src, dst);
    migrate_keys(slot, src, dst);
    redisReply *r = sc_test_node_cmd(src, "HGET {%s}:k:k value", ns);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0, "expected ASK, got %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "a value");
    freeReplyObject(r);
    char *v = test_get(b, "k"); /* a local miss: read through ASK */
    ck_assert_str_eq(v, "v1");
    free(v);
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK); /* a write through ASK */
    uint64_t ver;
    ck_assert_int_eq(sc_version_of(b, "k", &ver), SC_OK);
    ck_assert_int_gt(ver, 0);

    migrate_finish(slot, src, dst);
    ck_assert_int_eq(sc_test_cluster_slot_owner(&g_cl, slot), dst);
    ck_assert_int_eq(sc_set(a, "new", "n", 1, 0), SC_OK); /* MOVED, then the new owner */
    assert_converged((sc_cache *[]){a, b}, 2, ns, "k", 5000);
    assert_converged((sc_cache *[]){a, b}, 2, ns, "new", 5000);
    TEST_ASSERT_STR_FREED(cluster_value(ns, "k"), "v2", "k");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A slot marked MIGRATING whose keys have not moved yet is still served by
 * its old owner, key by key: a command on a key the node holds runs there,
 * one on a key it does not hold is answered ASK, also inside a script
 * (which then stops with an error, its writes so far kept). A write that
 * deleted the key's hash and then wrote it again met that ASK half-way:
 * the value was gone from Redis (the version taken, no log entry, no
 * event) and the call failed. Writes to keys the old owner holds must go
 * through there, and nothing may be lost. */
START_TEST(writes_while_the_slot_is_migrating)
{
    char ns[32];
    int src, dst;
    unsigned slot = ns_to_migrate(9000, "c_mid", ns, &src, &dst);
    sc_cache *a = cluster_pod(ns, "a");
    sc_cache *b = cluster_pod(ns, "b");
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "d", "x", 1, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "t", "t1", 2, 0), SC_OK);
    TEST_ASSERT_STR_FREED(test_get(b, "k"), "v1", "k");

    migrate_begin(slot, src, dst); /* no key has moved */
    sc_status s = sc_set(a, "k", "v2", 2, 0);
    redisReply *r = sc_test_node_cmd(src, "HGET {%s}:k:k value", ns);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_STRING, "sc_set returned %s (%s); Redis' value of k: %s", sc_strerror(s),
                  s == SC_OK ? "" : sc_errmsg(a), r->type == REDIS_REPLY_ERROR ? r->str : "none");
    ck_assert_msg(s == SC_OK, "sc_set while the slot migrates: %s: %s", sc_strerror(s), sc_errmsg(a));
    ck_assert_str_eq(r->str, "v2");
    freeReplyObject(r);
    /* A delete leaves its tombstone (the key's number); an invalidated tag
     * likewise. */
    s = sc_delete(a, "d");
    ck_assert_msg(s == SC_OK, "sc_delete while the slot migrates: %s: %s", sc_strerror(s), sc_errmsg(a));
    r = sc_test_node_cmd(src, "HGET {%s}:k:d version", ns);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);

    migrate_keys(slot, src, dst);
    migrate_finish(slot, src, dst);
    ck_assert_int_eq(sc_test_cluster_slot_owner(&g_cl, slot), dst);
    TEST_ASSERT_STR_FREED(cluster_value(ns, "k"), "v2", "k");
    TEST_ASSERT_STR_FREED(cluster_value(ns, "d"), "<none>", "d");
    ck_assert_int_eq(sc_set(a, "after", "x", 1, 0), SC_OK);
    sc_cache *pods[2] = {a, b};
    assert_converged(pods, 2, ns, "k", 5000);
    assert_converged(pods, 2, ns, "d", 5000);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* {ns}:seq on the node at port (0 when absent or redirected). */
static uint64_t counter_on(int port, const char *ns)
{
    redisReply *r = sc_test_node_cmd(port, "GET {%s}:seq", ns);
    uint64_t v = r && r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;
    if (r)
        freeReplyObject(r);
    return v;
}

/* On the migrating slot's old owner, {ns}:tags does not exist (no tag was
 * ever invalidated), so a script that reads it is stopped by ASK there. A
 * write that fails that way must fail whole: a counter moved without a log
 * entry or an event makes every pod find a gap the log cannot close and
 * flush its local tier. */
START_TEST(failed_write_while_migrating_moves_no_counter)
{
    char ns[32];
    int src, dst;
    unsigned slot = ns_to_migrate(9000, "c_midt", ns, &src, &dst);
    sc_cache *a = cluster_pod(ns, "a");
    sc_cache *b = cluster_pod(ns, "b");
    const char *tags[1] = {"tg"};
    ck_assert_int_eq(sc_set_tagged(a, "t", "v", 1, 0, tags, 1), SC_OK);
    ck_assert_int_eq(sc_set(a, "k", "v", 1, 0), SC_OK);
    TEST_ASSERT_STR_FREED(test_get(b, "k"), "v", "k");
    WAIT_UNTIL(test_stats(b).last_seq == counter_on(src, ns), 3000);
    ck_assert_uint_eq(test_stats(b).last_seq, counter_on(src, ns));
    uint64_t flushes = test_stats(b).flushes;

    migrate_begin(slot, src, dst); /* no key has moved */
    uint64_t before = counter_on(src, ns);
    ck_assert_uint_gt(before, 0);
    sc_status s = sc_tag_deleted(a, "t");
    uint64_t after = counter_on(src, ns);
    if (s != SC_OK)
        ck_assert_msg(after == before, "sc_tag_deleted failed (%s) but moved the counter from %llu to %llu",
                      sc_errmsg(a), (unsigned long long)before, (unsigned long long)after);
    else
        ck_assert_uint_eq(after, before + 1);

    migrate_keys(slot, src, dst);
    migrate_finish(slot, src, dst);
    ck_assert_int_eq(sc_set(a, "after", "x", 1, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).synced && test_stats(b).last_seq == counter_on(dst, ns), 5000);
    if (s != SC_OK) /* nothing happened: b keeps its copies */
        ck_assert_uint_eq(test_stats(b).flushes, flushes);
    sc_close(a);
    sc_close(b);
}
END_TEST

static sc_status load_fails(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)ud;
    sc_loaded_error(slot, "the loader ran");
    return SC_ERR_LOADER;
}

/* While the slot is MIGRATING and its keys are still on the old owner, an
 * sc_fetch of a value Redis holds is answered there, as an sc_get is: the
 * fetch does not fail on the namespace's write-behind table ({ns}:wbq),
 * which the old owner does not hold when nothing is queued. */
START_TEST(fetch_while_the_slot_is_migrating)
{
    char ns[32];
    int src, dst;
    unsigned slot = ns_to_migrate(9000, "c_midf", ns, &src, &dst);
    sc_cache *a = cluster_pod(ns, "a");
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    migrate_begin(slot, src, dst); /* no key has moved */
    sc_cache *b = cluster_pod(ns, "b");
    sc_value *v = NULL;
    sc_status s = sc_fetch(b, "k", 0, load_fails, NULL, &v);
    ck_assert_msg(s == SC_OK, "sc_fetch while the slot migrates: %s: %s", sc_strerror(s), sc_errmsg(b));
    ck_assert_str_eq(sc_value_data(v), "v1");
    sc_value_release(v);
    migrate_keys(slot, src, dst);
    migrate_finish(slot, src, dst);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Tagged keys and clears while the slot is MIGRATING, its keys still on
 * the old owner: a namespace that never invalidated a tag has no tag hash
 * ({ns}:tags), which the old owner answers ASK for inside a script. Reads
 * of a tagged key and a clear must not depend on it. */
START_TEST(tags_while_the_slot_is_migrating)
{
    char ns[32];
    int src, dst;
    unsigned slot = ns_to_migrate(9000, "c_midg", ns, &src, &dst);
    sc_cache *a = cluster_pod(ns, "a");
    const char *tags[1] = {"tg"};
    ck_assert_int_eq(sc_set_tagged(a, "t", "v", 1, 0, tags, 1), SC_OK);
    migrate_begin(slot, src, dst); /* no key has moved */
    sc_cache *b = cluster_pod(ns, "b");
    sc_value *v = NULL;
    sc_status s = sc_get(b, "t", &v);
    ck_assert_msg(s == SC_OK, "sc_get of a tagged key while the slot migrates: %s: %s", sc_strerror(s), sc_errmsg(b));
    ck_assert_str_eq(sc_value_data(v), "v");
    sc_value_release(v);
    uint64_t ver = 0;
    s = sc_version_of(b, "t", &ver);
    ck_assert_msg(s == SC_OK, "sc_version_of while the slot migrates: %s: %s", sc_strerror(s), sc_errmsg(b));
    s = sc_clear(a);
    ck_assert_msg(s == SC_OK, "sc_clear while the slot migrates: %s: %s", sc_strerror(s), sc_errmsg(a));
    migrate_keys(slot, src, dst);
    migrate_finish(slot, src, dst);
    TEST_ASSERT_PEEK_SOON(b, "t", "<none>", 3000);
    TEST_ASSERT_STR_FREED(test_get(b, "t"), "<none>", "t");
    /* Tags still work after the move. */
    ck_assert_int_eq(sc_set_tagged(a, "t", "w", 1, 0, tags, 1), SC_OK);
    TEST_ASSERT_STR_FREED(test_get(b, "t"), "w", "t");
    ck_assert_int_eq(sc_invalidate_tag(a, "tg"), SC_OK);
    TEST_ASSERT_STR_FREED(test_get(b, "t"), "<none>", "t");
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(slot_migration_while_running)
{
    char ns[32];
    int src, dst;
    unsigned slot = ns_to_migrate(0, "c_mig", ns, &src, &dst);

    sc_cache *pods[3] = {cluster_pod(ns, "a"), cluster_pod(ns, "b"), cluster_pod(ns, "c")};
    test_writer w = {.c = pods[0]};
    pthread_t t = test_writer_start(&w, 0);
    /* b and c read everything so they hold local copies the events update. */
    test_read_writer_keys(pods + 1, 2, 20);
    uint64_t reconnects_before = test_stats(pods[1]).reconnects;
    migrate_slot(slot, src, dst);
    ck_assert_int_eq(sc_test_cluster_slot_owner(&g_cl, slot), dst);
    /* Writes go on at the new owner; readers keep reading. */
    long ok_at_move = w.ok;
    test_read_writer_keys(pods + 1, 2, 40);
    WAIT_UNTIL(w.ok > ok_at_move + 50, 5000);
    test_writer_stop(&w, t);
    ck_assert_msg(w.ok > ok_at_move + 50, "writes stalled after the migration (%ld ok, %ld failed: %s)", w.ok,
                  w.failed, w.first_error);
    /* The subscriptions followed the slot (sunsubscribe, resubscribe at the
     * new owner) and the pods are synced again. */
    WAIT_UNTIL(test_stats(pods[1]).reconnects > reconnects_before && test_stats(pods[1]).synced, 5000);
    ck_assert_uint_gt(test_stats(pods[1]).reconnects, reconnects_before);
    for (int p = 0; p < 3; p++)
        WAIT_UNTIL(test_stats(pods[p]).synced, 5000);
    ck_assert_int_eq(check_writer(&w, pods, 3, ns), 0); /* a migration loses no write */
    /* A fresh write after the move propagates by the new shard's channel. */
    ck_assert_int_eq(sc_set(pods[0], "after", "moved", 5, 0), SC_OK);
    free(test_get(pods[2], "after"));
    ck_assert_int_eq(sc_set(pods[0], "after", "moved2", 6, 0), SC_OK);
    TEST_ASSERT_PEEK_SOON(pods[2], "after", "moved2", 3000);
    /* The namespace's keys are on the new owner now. */
    redisReply *r = sc_test_node_cmd(dst, "EXISTS {%s}:seq", ns);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    fprintf(stderr, "slot migration: %ld writes ok, %ld failed%s%s\n", w.ok, w.failed, w.failed ? ": " : "",
            w.first_error);
    for (int p = 0; p < 3; p++)
        sc_close(pods[p]);
}
END_TEST

/* The master owning slot, a namespace of prefix on it (in ns) and the
 * master's replica (*replica, asserted present): what a failover test
 * needs. */
static int master_with_replica(unsigned slot, const char *prefix, char ns[32], int *replica)
{
    int master = sc_test_cluster_slot_owner(&g_cl, slot);
    ns_on_master(prefix, master, ns, 32);
    *replica = sc_test_cluster_replica_of(&g_cl, master);
    ck_assert_msg(*replica, "master %d has no replica", master);
    return master;
}

START_TEST(manual_failover_while_running)
{
    char ns[32];
    int replica;
    int master = master_with_replica(5000, "c_fo", ns, &replica);

    sc_cache *pods[2] = {cluster_pod(ns, "a"), cluster_pod(ns, "b")};
    hist_run h;
    history_start(&h, "c_foh", master);
    test_writer w = {.c = pods[0]};
    pthread_t t = test_writer_start(&w, 300);
    redisReply *r = sc_test_node_cmd(replica, "CLUSTER FAILOVER");
    ck_assert_msg(r && r->type != REDIS_REPLY_ERROR, "CLUSTER FAILOVER: %s", r ? r->str : "no reply");
    freeReplyObject(r);
    long long t_fo = test_now_ms();
    WAIT_UNTIL(sc_test_cluster_slot_owner(&g_cl, ns_slot(ns)) == replica, 10000);
    ck_assert_int_eq(sc_test_cluster_slot_owner(&g_cl, ns_slot(ns)), replica);
    long long switched = test_now_ms() - t_fo;
    test_writer_stop_once_resumed(&w, t, w.ok, 5000);
    for (int p = 0; p < 2; p++)
        WAIT_UNTIL(test_stats(pods[p]).synced, 5000);
    ck_assert_int_eq(check_writer(&w, pods, 2, ns), 0);
    /* CLUSTER FAILOVER waits for the replica to catch up: nothing is lost,
     * so no read may go back and no write may vanish (no fault window). */
    history_check(&h, "manual failover");
    fprintf(stderr, "manual failover: slot owned by the replica %lld ms after CLUSTER FAILOVER; %ld writes ok, %ld "
            "failed%s%s\n", switched, w.ok, w.failed, w.failed ? ": " : "", w.first_error);
    for (int p = 0; p < 2; p++)
        sc_close(pods[p]);
    /* Wait until every node agrees again before the next test. */
    WAIT_UNTIL(sc_test_cluster_ok(&g_cl), 10000);
}
END_TEST

START_TEST(killed_master_while_running)
{
    char ns[32];
    int replica;
    int master = master_with_replica(10000, "c_kill", ns, &replica);
    int victim = sc_test_cluster_index_of(&g_cl, master);
    ck_assert_int_ge(victim, 0);

    sc_cache *pods[2] = {cluster_pod(ns, "a"), cluster_pod(ns, "b")};
    hist_run h;
    history_start(&h, "c_killh", master);
    test_writer w = {.c = pods[0]};
    pthread_t t = test_writer_start(&w, 300);
    /* Make the crash lose acknowledged writes: cut the replica off (its
     * link is killed and cannot come back with a wrong masterauth), then
     * write probe keys that nothing rewrites later, so a loss stays
     * visible. */
    uint64_t cut_off = now_ns();
    test_cut_off_replica(master, replica);
    for (int i = 0; i < 8; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        ck_assert_int_eq(sc_set(pods[0], key, "doomed", 6, 0), SC_OK);
        free(test_get(pods[1], key));
    }
    /* A crash: SIGKILL, no persistence. The parent process reaps it. */
    kill(g_cl.node[victim].pid, SIGKILL);
    sc_test_node_restore_replica_auth(replica);
    long long t_kill = test_now_ms();
    WAIT_UNTIL(sc_test_cluster_slot_owner(&g_cl, ns_slot(ns)) == replica, 15000);
    ck_assert_int_eq(sc_test_cluster_slot_owner(&g_cl, ns_slot(ns)), replica);
    /* From the cut-off to the promotion Redis' state moves back: reads on
     * either side of that window (and its grace) are not compared. */
    hist_add_window(&h.x, cut_off, now_ns(), 0);
    long long t_back = test_writer_stop_once_resumed(&w, t, w.ok, 8000);
    /* Writes failed during the outage, each with a status and a message. */
    ck_assert_int_gt(w.failed, 0);
    ck_assert_msg(strstr(w.first_error, "timed out") || strstr(w.first_error, "Redis call failed"), "%s", w.first_error);
    for (int p = 0; p < 2; p++)
        WAIT_UNTIL(test_stats(pods[p]).synced, 8000);
    int lost = check_writer(&w, pods, 2, ns);
    /* The probes are gone from Redis; the pods noticed and dropped them. */
    for (int i = 0; i < 8; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        char *v = cluster_value(ns, key);
        ck_assert_str_eq(v, "<none>");
        free(v);
        assert_converged(pods, 2, ns, key, 5000);
    }
    ck_assert_uint_gt(test_stats(pods[0]).flushes + test_stats(pods[0]).epoch_changes, 0);
    ck_assert_uint_gt(test_stats(pods[1]).flushes + test_stats(pods[1]).epoch_changes, 0);
    history_check(&h, "killed master");
    fprintf(stderr, "killed master: writes back %lld ms after the kill; %ld ok, %ld failed (first: %s); 8 probes and "
            "%d keys lost an acknowledged write; pods flushed or saw a new epoch %llu times\n",
            t_back - t_kill, w.ok, w.failed, w.first_error, lost,
            (unsigned long long)(test_stats(pods[0]).flushes + test_stats(pods[0]).epoch_changes +
                                 test_stats(pods[1]).flushes + test_stats(pods[1]).epoch_changes));
    for (int p = 0; p < 2; p++)
        sc_close(pods[p]);
}
END_TEST

/* The narrowest loss: the writer's own acknowledged write dies with the
 * master, and so does its event, which the writer never got back (its
 * subscription had been dropped while its sync thread was busy, so it still
 * counted itself synced and kept the value). The new master's counter and
 * log match everything the pod applied from the channel; only the version
 * its own write returned shows that Redis had been further. */
static atomic_int g_stall;   /* 1: the hook blocks on key "x" */
static atomic_int g_stalled; /* the hook is blocking */

static void stall_hook(const sc_event_info *ev, void *ud)
{
    (void)ud;
    if (strcmp(ev->key, "x") != 0)
        return;
    atomic_store(&g_stalled, 1);
    long long until = test_now_ms() + 20000;
    while (atomic_load(&g_stall) && test_now_ms() < until)
        test_sleep_ms(5);
    atomic_store(&g_stalled, 0);
}

START_TEST(own_write_lost_with_its_event)
{
    int master = 0, replica = 0;
    for (unsigned slot = 0; slot < 16384 && !replica; slot += 700) {
        master = sc_test_cluster_slot_owner(&g_cl, slot);
        replica = master ? sc_test_cluster_replica_of(&g_cl, master) : 0;
    }
    ck_assert_msg(replica, "no master with a replica left");
    int victim = sc_test_cluster_index_of(&g_cl, master);
    char ns[32];
    ns_on_master("c_own", master, ns, sizeof ns);
    sc_options o = cluster_options(ns, "a");
    o.on_event = stall_hook;
    sc_cache *a = test_open(&o);
    sc_cache *b = cluster_pod(ns, "b");
    ck_assert_int_eq(sc_set(a, "k", "old", 3, 0), SC_OK);
    char *v;
    TEST_ASSERT_PEEK_SOON(b, "k", "old", 3000);

    /* b writes x; a's sync thread stops inside its hook for x. */
    atomic_store(&g_stall, 1);
    ck_assert_int_eq(sc_set(b, "x", "1", 1, 0), SC_OK);
    WAIT_UNTIL(atomic_load(&g_stalled), 3000);
    ck_assert_int_eq(atomic_load(&g_stalled), 1);
    WAIT_UNTIL(sc_test_node_replica_synced(replica), 3000);
    ck_assert(sc_test_node_replica_synced(replica));
    test_sleep_ms(100); /* x reaches the replica */
    test_cut_off_replica(master, replica);
    redisReply *r = sc_test_node_cmd(master, "CLIENT KILL TYPE pubsub");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    uint64_t a_reconnects = test_stats(a).reconnects, b_reconnects = test_stats(b).reconnects;
    /* a still counts itself synced: its own write is kept locally. */
    ck_assert_uint_eq(test_stats(a).synced, 1);
    ck_assert_int_eq(sc_set(a, "k", "lost", 4, 0), SC_OK);
    v = test_peek(a, "k");
    ck_assert_str_eq(v, "lost");
    free(v);
    kill(g_cl.node[victim].pid, SIGKILL);
    sc_test_node_restore_replica_auth(replica);
    atomic_store(&g_stall, 0);

    WAIT_UNTIL(sc_test_cluster_slot_owner(&g_cl, ns_slot(ns)) == replica, 15000);
    ck_assert_int_eq(sc_test_cluster_slot_owner(&g_cl, ns_slot(ns)), replica);
    /* Both resubscribed since the kill and are synced (whether a first
     * resubscription still reached the old master is not told here; the
     * writes below show that they follow the new one). */
    WAIT_UNTIL(test_stats(a).synced && test_stats(a).reconnects > a_reconnects, 10000);
    WAIT_UNTIL(test_stats(b).synced && test_stats(b).reconnects > b_reconnects, 10000);
    ck_assert(test_stats(a).synced && test_stats(a).reconnects > a_reconnects);
    ck_assert(test_stats(b).synced && test_stats(b).reconnects > b_reconnects);
    v = cluster_value(ns, "k");
    ck_assert_str_eq(v, "old"); /* the write is gone... */
    free(v);
    TEST_ASSERT_STR_FREED(cluster_value(ns, "x"), "1", "x");
    sc_cache *pods[2] = {a, b};
    assert_converged(pods, 2, ns, "k", 5000); /* ...and no pod serves it */
    /* Writing goes on, and the next versions reach both pods. */
    ck_assert_int_eq(sc_set(b, "k", "new", 3, 0), SC_OK);
    TEST_ASSERT_PEEK_LEAVES(a, "k", "lost", 3000);
    assert_converged(pods, 2, ns, "k", 5000);
    sc_close(a);
    sc_close(b);
}
END_TEST


/* A seed that accepts connections and never answers (a hung host, a paused
 * process: the kernel completes the handshake) listed first: the pod must
 * still learn the slot's master from the other seeds within its
 * redis_timeout_ms ("any few nodes; the rest is learned"). */
START_TEST(hung_seed_listed_first)
{
    int port;
    int fd = sc_test_black_hole(&port);
    ck_assert_int_ge(fd, 0);
    char seeds[512];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%d,%s", port, g_cl.seeds);
    sc_options o = cluster_options("c_hung", "a");
    o.redis_cluster_nodes = seeds;
    sc_cache *c = NULL;
    sc_status s = sc_open(&o, &c);
    ck_assert_msg(s == SC_OK, "sc_open with a hung first seed: %s: %s", sc_strerror(s), sc_errmsg(NULL));
    ck_assert_int_eq(sc_set(c, "k", "v", 1, 0), SC_OK);
    sc_close(c);
    close(fd);
}
END_TEST

int main(void)
{
    /* A failed start still stops every node already running. */
    if (sc_test_cluster_start(&g_cl, 3, 1) != 0) {
        sc_test_cluster_stop(&g_cl);
        return 1;
    }
    Suite *s = suite_create("cluster");
    TCase *hung = tcase_create("hung_seed"); /* first: before a test leaves a node down */
    tcase_set_timeout(hung, 30);
    tcase_add_test(hung, hung_seed_listed_first);
    suite_add_tcase(s, hung);
    TCase *mig = tcase_create("migrating"); /* its own case: CK_RUN_CASE=migrating */
    tcase_set_timeout(mig, 30);
    tcase_add_test(mig, writes_while_the_slot_is_migrating);
    tcase_add_test(mig, failed_write_while_migrating_moves_no_counter);
    tcase_add_test(mig, fetch_while_the_slot_is_migrating);
    tcase_add_test(mig, tags_while_the_slot_is_migrating);
    suite_add_tcase(s, mig);
    TCase *tc = tcase_create("cluster");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, keyslot_matches_redis);
    tcase_add_test(tc, options_are_checked);
    tcase_add_test(tc, wrong_cluster_address_fails_fast);
    tcase_add_test(tc, pool_wait_names_the_node);
    tcase_add_test(tc, namespaces_across_masters);
    tcase_add_test(tc, ask_redirection_mid_migration);
    tcase_add_test(tc, slot_migration_while_running);
    tcase_add_test(tc, manual_failover_while_running);
    tcase_add_test(tc, killed_master_while_running);
    tcase_add_test(tc, own_write_lost_with_its_event);
    suite_add_tcase(s, tc);
    int rc = test_run_suite_on(s);
    sc_test_cluster_stop(&g_cl);
    return rc;
}
