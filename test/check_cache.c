/* Integration tests of the sc_cache API: several pods in one process against
 * a private redis-server. Each test uses its own namespace. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <event2/event.h>

#include "pods.h"

sc_test_redis g_redis;

#define NS(name) "t_" name

START_TEST(open_close_and_pod_ids)
{
    sc_cache *a = test_pod(NS("open"), NULL);
    sc_cache *b = test_pod(NS("open"), NULL);
    ck_assert_str_ne(sc_pod_id(a), sc_pod_id(b));
    ck_assert_uint_gt(strlen(sc_pod_id(a)), 0);
    sc_stats st = test_stats(a);
    ck_assert_uint_eq(st.synced, 1);
    ck_assert_uint_gt(st.last_seq, 1000000000000000ULL); /* seeded from Redis time in µs */
    sc_close(a);
    sc_close(b);
    sc_close(NULL);
}
END_TEST

START_TEST(open_without_redis_fails_fast)
{
    sc_options o = test_options(NS("down"), NULL);
    o.redis_port = 1; /* nothing listens there */
    sc_cache *c = (sc_cache *)&o; /* must be reset to NULL */
    long long t0 = test_now_ms();
    sc_status s = sc_open(&o, &c);
    long long took = test_now_ms() - t0;
    ck_assert_msg(s == SC_ERR_REMOTE || s == SC_ERR_TIMEOUT, "got %s", sc_strerror(s));
    ck_assert_ptr_null(c);
    ck_assert_uint_gt(strlen(sc_errmsg(NULL)), 0);
    ck_assert_msg(took < 5000, "sc_open took %lld ms", took);
}
END_TEST

START_TEST(bad_options_are_rejected)
{
    sc_options o;
    sc_cache *c;
#define EXPECT_INVALID(stmt, word)                                                                                     \
    do {                                                                                                               \
        o = test_options(NS("opts"), NULL);                                                                            \
        stmt;                                                                                                          \
        TEST_ASSERT_OPEN_INVALID(&o, word);                                                                            \
    } while (0)
    EXPECT_INVALID(o.redis_port = 0, "redis_port");
    EXPECT_INVALID(o.redis_port = 70000, "redis_port");
    EXPECT_INVALID(o.ns = "", "ns");
    EXPECT_INVALID(o.ns = NULL, "ns");
    EXPECT_INVALID(o.pod_id = "", "pod_id");
    EXPECT_INVALID(o.redis_timeout_ms = 0, "redis_timeout_ms");
    EXPECT_INVALID(o.local_policy = (sc_local_policy)7, "local_policy");
    EXPECT_INVALID(o.role = (sc_role)9, "role");
    EXPECT_INVALID(o.wire_format = (sc_wire_format)3, "wire_format");
    EXPECT_INVALID(o.redis_pool_size = 0, "redis_pool_size");
    EXPECT_INVALID(o.max_key_bytes = 100000, "max_key_bytes");
    EXPECT_INVALID(o.local_shards = 3, "local_shards");
    EXPECT_INVALID(o.event_value_max = o.max_event_bytes, "event_value_max");
    EXPECT_INVALID((o.heartbeat_interval_ms = 500, o.heartbeat_timeout_ms = 100), "heartbeat_timeout_ms");
    EXPECT_INVALID(o.redis_username = "alice", "redis_username");
    ck_assert_int_eq(sc_open(NULL, &c), SC_ERR_INVALID);
    o = test_options(NS("opts"), NULL);
    ck_assert_int_eq(sc_open(&o, NULL), SC_ERR_INVALID);
}
END_TEST

/* A numeric option Redis cannot take (a tombstone TTL or a log length past
 * what PEXPIRE / XADD MAXLEN accept) must be refused by sc_open, naming the
 * field. Accepted, it made every delete (log length: every write) fail with
 * an opaque Redis error after the script had already changed the key and
 * taken a version: a write reported as failed that half happened (no log
 * entry, no event), so a pod without tracking kept serving the old value. */
static void half_write_check(sc_options *o, const char *field, int via_set)
{
    sc_cache *c = NULL;
    sc_status s = sc_open(o, &c);
    if (s != SC_OK) {
        ck_assert_int_eq(s, SC_ERR_INVALID);
        ck_assert_msg(strstr(sc_errmsg(NULL), field) != NULL, "message %s does not name %s", sc_errmsg(NULL), field);
        return;
    }
    /* Opened: then the writes it governs must work, or fail whole. */
    redisContext *rc = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(rc);
    redisReply *r = redisCommand(rc, "HSET {%s}:k:hw value old version 1", o->ns);
    freeReplyObject(r);
    r = redisCommand(rc, "GET {%s}:seq", o->ns);
    char before[64] = "";
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(before, sizeof before, "%s", r->str);
    freeReplyObject(r);
    s = via_set ? sc_set(c, "hw", "new", 3, 0) : sc_delete(c, "hw");
    r = redisCommand(rc, "HGET {%s}:k:hw value", o->ns);
    int value_old = r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "old") == 0;
    freeReplyObject(r);
    r = redisCommand(rc, "GET {%s}:seq", o->ns);
    int seq_same = r && r->type == REDIS_REPLY_STRING && strcmp(r->str, before) == 0;
    freeReplyObject(r);
    redisFree(rc);
    ck_assert_msg(s == SC_OK || (value_old && seq_same),
                  "%s = huge: the %s failed (%s: %s) but changed the key and took a version", field,
                  via_set ? "set" : "delete", sc_strerror(s), sc_errmsg(c));
    sc_close(c);
}

START_TEST(huge_numeric_options_never_half_write)
{
    sc_options o = test_options(NS("huge_tomb"), NULL);
    o.redis_tracking = 0;
    o.tombstone_ttl_ms = UINT64_MAX;
    half_write_check(&o, "tombstone_ttl_ms", 0);
    o = test_options(NS("huge_log"), NULL);
    o.redis_tracking = 0;
    o.event_log_len = SIZE_MAX;
    half_write_check(&o, "event_log_len", 1);
}
END_TEST

/* heartbeat_timeout_ms has no upper bound; the canary's TTL (twice the
 * timeout) was computed in unsigned int, so 2^31 made it 0: Redis refused
 * every heartbeat script (PX 0) and the pod dropped its stream at every tick
 * (heartbeat_misses and reconnects climbing, synced flapping). */
START_TEST(huge_heartbeat_timeout_keeps_stream)
{
    sc_options o = test_options(NS("huge_hb"), NULL);
    o.heartbeat_interval_ms = 20;
    o.heartbeat_timeout_ms = 2147483648u;
    sc_cache *c = test_open(&o);
    sc_stats st = test_stats(c);
    /* Some forty heartbeat ticks. */
    for (long long end = test_now_ms() + 800; test_now_ms() < end && st.heartbeat_misses == 0;) {
        usleep(20000);
        st = test_stats(c);
    }
    ck_assert_msg(st.heartbeat_misses == 0 && st.reconnects == 0, "heartbeat misses %llu, reconnects %llu",
                  (unsigned long long)st.heartbeat_misses, (unsigned long long)st.reconnects);
    sc_close(c);
}
END_TEST

/* A user whose ACL refuses a command a write script needs after its first
 * write (XADD to the event log; UNLINK of the tag hash in a clear) got a
 * failed status for a write that half happened: the version taken, the
 * value stored (or the clear floor raised), no log entry, no event. The
 * write must fail whole, with Redis' NOPERM words. (sc_open refuses such a
 * user, acl_each_missing_permission_refused_at_open; here the permission is
 * revoked after the open.) */
static char *redis_str(redisContext *rc, const char *fmt, const char *a)
{
    redisReply *r = redisCommand(rc, fmt, a);
    char *out = strdup(r && r->type == REDIS_REPLY_STRING ? r->str : "<nil>");
    freeReplyObject(r);
    return out;
}

START_TEST(acl_refusal_never_half_writes)
{
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER hw_noxadd on >pw ~* &* +@all"), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER hw_nounlink on >pw ~* &* +@all"), 0);
    redisContext *rc = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(rc);

    sc_options o = test_options(NS("acl_hw"), NULL);
    sc_cache *admin = test_open(&o);
    ck_assert_int_eq(sc_set(admin, "k", "old", 3, 0), SC_OK);
    o.redis_username = "hw_noxadd";
    o.redis_password = "pw";
    sc_cache *c = test_open(&o);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER hw_noxadd -xadd"), 0);
    char *seq0 = redis_str(rc, "GET {%s}:seq", NS("acl_hw"));
    sc_status s = sc_set(c, "k", "new", 3, 0);
    char *val = redis_str(rc, "HGET {%s}:k:k value", NS("acl_hw"));
    char *seq1 = redis_str(rc, "GET {%s}:seq", NS("acl_hw"));
    ck_assert_msg(s == SC_OK || (strcmp(val, "old") == 0 && strcmp(seq0, seq1) == 0),
                  "set without XADD: %s (%s) but Redis holds %s, seq %s -> %s", sc_strerror(s), sc_errmsg(c), val, seq0,
                  seq1);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(c), "NOPERM"));
    free(seq0);
    free(seq1);
    free(val);
    sc_close(c);

    o.redis_username = "hw_nounlink";
    c = test_open(&o);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER hw_nounlink -unlink"), 0);
    char *floor0 = redis_str(rc, "HGET {%s}:meta floor", NS("acl_hw"));
    s = sc_clear(c);
    char *floor1 = redis_str(rc, "HGET {%s}:meta floor", NS("acl_hw"));
    ck_assert_msg(s == SC_OK || strcmp(floor0, floor1) == 0,
                  "clear without UNLINK: %s (%s) but the floor moved %s -> %s", sc_strerror(s), sc_errmsg(c), floor0,
                  floor1);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(c), "NOPERM"));
    free(floor0);
    free(floor1);
    sc_close(c);
    sc_close(admin);
    redisFree(rc);
}
END_TEST

/* An event log of another type than a stream: Redis answers at once, and no
 * retry can help, so sc_open fails at once with SC_ERR_REMOTE and names the
 * key; it used to retry the subscription for 3 x redis_timeout_ms and
 * return SC_ERR_TIMEOUT ("no Redis") when the namespace's counter existed. */
static void expect_log_refused(const char *ns)
{
    char cmd[128], key[64];
    snprintf(key, sizeof key, "{%s}:log", ns);
    snprintf(cmd, sizeof cmd, "SET %s x", key);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, cmd), 0);
    sc_options o = test_options(ns, NULL);
    sc_cache *c = (sc_cache *)&o;
    long long t0 = test_now_ms();
    sc_status s = sc_open(&o, &c);
    long long took = test_now_ms() - t0;
    ck_assert_ptr_null(c);
    ck_assert_msg(s == SC_ERR_REMOTE, "%s: got %s after %lld ms: %s", ns, sc_strerror(s), took, sc_errmsg(NULL));
    ck_assert_msg(took < 1000, "%s: sc_open took %lld ms", ns, took);
    ck_assert_msg(strstr(sc_errmsg(NULL), key) && strstr(sc_errmsg(NULL), "WRONGTYPE"), "%s: %s", ns,
                  sc_errmsg(NULL));
}

START_TEST(event_log_of_the_wrong_type_fails_open_at_once)
{
    /* The counter exists (a pod ran before): the first sync reads the log. */
    sc_close(test_pod(NS("logtype"), NULL));
    char cmd[64];
    snprintf(cmd, sizeof cmd, "DEL {%s}:log", NS("logtype"));
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, cmd), 0);
    expect_log_refused(NS("logtype"));
    /* A fresh namespace: seeding the counter reads the log. */
    expect_log_refused(NS("logtype_new"));
}
END_TEST

START_TEST(bad_keys_and_values)
{
    sc_cache *a = test_pod(NS("badkeys"), "a");
    sc_value *v = (sc_value *)a;
    ck_assert_int_eq(sc_get(a, NULL, &v), SC_ERR_INVALID);
    ck_assert_ptr_null(v);
    ck_assert_uint_gt(strlen(sc_errmsg(a)), 0);
    ck_assert_int_eq(sc_get(a, "", &v), SC_ERR_INVALID);
    ck_assert_int_eq(sc_get(a, "k", NULL), SC_ERR_INVALID);
    ck_assert_int_eq(sc_get(NULL, "k", &v), SC_ERR_INVALID);
    ck_assert_int_eq(sc_set(a, NULL, "x", 1, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc_set(a, "", "x", 1, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc_set(a, "k", NULL, 5, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc_set(NULL, "k", "x", 1, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc_delete(a, NULL), SC_ERR_INVALID);
    ck_assert_int_eq(sc_delete(a, ""), SC_ERR_INVALID);
    ck_assert_int_eq(sc_clear(NULL), SC_ERR_INVALID);

    char *huge = malloc(5000);
    memset(huge, 'k', 4999);
    huge[4999] = '\0';
    ck_assert_int_eq(sc_set(a, huge, "x", 1, 0), SC_ERR_TOO_LARGE);
    ck_assert_msg(strstr(sc_errmsg(a), "max_key_bytes"), "%s", sc_errmsg(a));
    ck_assert_int_eq(sc_get(a, huge, &v), SC_ERR_TOO_LARGE);
    free(huge);

    /* An empty value is a value, not a miss. */
    ck_assert_int_eq(sc_set(a, "empty", NULL, 0, 0), SC_OK);
    ck_assert_int_eq(sc_get(a, "empty", &v), SC_OK);
    ck_assert_uint_eq(sc_value_size(v), 0);
    sc_value_release(v);
    sc_value_release(NULL);

    /* A TTL over 2^53 (what Redis' scripts take) is a bad argument, refused
     * before any Redis call: no remote error is counted, nothing stored. */
    uint64_t errors = test_stats(a).remote_errors;
    ck_assert_int_eq(sc_set(a, "far", "x", 1, (UINT64_C(1) << 53) + 1), SC_ERR_INVALID);
    ck_assert_msg(strstr(sc_errmsg(a), "ttl_ms"), "%s", sc_errmsg(a));
    ck_assert_uint_eq(test_stats(a).remote_errors, errors);
    ck_assert_int_eq(sc_set(a, "far", "x", 1, UINT64_C(1) << 53), SC_OK);
    TEST_ASSERT_STR_FREED(test_redis_value(NS("badkeys"), "far"), "x", "far");

    /* A value over max_value_bytes is refused and nothing is stored. */
    sc_close(a);
    sc_options o = test_options(NS("badkeys"), "a2");
    o.max_value_bytes = 100;
    a = test_open(&o);
    char big[101] = {0};
    ck_assert_int_eq(sc_set(a, "big", big, sizeof big, 0), SC_ERR_TOO_LARGE);
    char *r = test_redis_value(NS("badkeys"), "big");
    ck_assert_str_eq(r, "<none>");
    free(r);
    sc_close(a);
}
END_TEST

START_TEST(set_propagates_value_to_other_pods)
{
    sc_cache *a = test_pod(NS("prop"), "a");
    sc_cache *b = test_pod(NS("prop"), "b");
    sc_cache *c = test_pod(NS("prop"), "c");
    ck_assert_int_eq(sc_set(a, "user:1", "alice", 5, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).events_applied >= 1 && test_stats(c).events_applied >= 1, 3000);

    /* b and c hold it locally: a get is a local hit, no Redis read. */
    sc_stats before = test_stats(b);
    sc_value *v;
    sc_get_info info;
    ck_assert_int_eq(sc_get_ex(b, "user:1", &v, &info), SC_OK);
    ck_assert_int_eq(info.source, SC_SOURCE_LOCAL);
    ck_assert_int_eq(info.stale, 0);
    ck_assert_mem_eq(sc_value_data(v), "alice", 5);
    ck_assert_uint_gt(sc_value_version(v), 0);
    uint64_t ver = sc_value_version(v);
    sc_value_release(v);
    sc_stats after = test_stats(b);
    ck_assert_uint_eq(after.local_hits, before.local_hits + 1);
    ck_assert_uint_eq(after.remote_hits, before.remote_hits);

    /* The writer ignored its own event; Redis holds the same version. */
    WAIT_UNTIL(test_stats(a).events_ignored_self >= 1, 3000);
    ck_assert_uint_eq(test_stats(a).events_ignored_self, 1);
    ck_assert_uint_eq(test_stats(a).events_applied, 0);
    ck_assert_uint_eq(test_stats(a).events_published, 1);
    redisContext *rc = sc_test_redis_connect(&g_redis);
    redisReply *r = redisCommand(rc, "HGET {%s}:k:user:1 version", NS("prop"));
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(strtoull(r->str, NULL, 10), ver);
    freeReplyObject(r);
    redisFree(rc);

    /* An update replaces it everywhere with a higher version. */
    ck_assert_int_eq(sc_set(a, "user:1", "alice2", 6, 0), SC_OK);
    WAIT_UNTIL(test_stats(c).events_applied >= 2, 3000);
    ck_assert_int_eq(sc_get(c, "user:1", &v), SC_OK);
    ck_assert_mem_eq(sc_value_data(v), "alice2", 6);
    ck_assert_uint_gt(sc_value_version(v), ver);
    sc_value_release(v);
    /* The events came signed and in order through the channel: nothing was
     * taken for forged, nothing had to be replayed from the log. */
    for (sc_cache *p = b; p; p = p == b ? c : NULL) {
        sc_stats st = test_stats(p);
        ck_assert_uint_eq(st.events_forged, 0);
        ck_assert_uint_eq(st.events_replayed, 0);
        ck_assert_uint_eq(st.gaps, 0);
    }
    sc_close(a);
    sc_close(b);
    sc_close(c);
}
END_TEST

START_TEST(miss_reads_redis_and_fills_local)
{
    /* x is written by hand before the pod subscribes: written after, its
     * invalidation (redis_tracking) could reach the pod while the read
     * below is in flight and keep that read from installing (a miss, by
     * the rule in lib/tracking.c), which is not what this test is about. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {%s}:k:x value hello version 5", NS("miss")), 0);
    sc_cache *a = test_pod(NS("miss"), "a");
    sc_value *v;
    ck_assert_int_eq(sc_get(a, "nope", &v), SC_NOT_FOUND);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(sc_get(a, "x", &v), SC_OK);
    ck_assert_str_eq(sc_value_data(v), "hello");
    ck_assert_uint_eq(sc_value_version(v), 5);
    sc_value_release(v);
    sc_stats st = test_stats(a);
    ck_assert_uint_eq(st.remote_hits, 1);
    ck_assert_uint_eq(st.remote_misses, 1);
    /* sc_peek sees only the local tier and counts nothing. */
    ck_assert_int_eq(sc_peek(a, "x", &v), SC_OK);
    ck_assert_uint_eq(sc_value_version(v), 5);
    sc_value_release(v);
    ck_assert_int_eq(sc_peek(a, "nope", &v), SC_NOT_FOUND);
    ck_assert_int_eq(sc_peek(a, "", &v), SC_ERR_INVALID);
    ck_assert_uint_eq(test_stats(a).local_hits, 0);
    ck_assert_int_eq(sc_get(a, "x", &v), SC_OK);
    sc_value_release(v);
    ck_assert_uint_eq(test_stats(a).local_hits, 1);
    ck_assert_uint_eq(test_stats(a).local_entries, 1);
    sc_close(a);
}
END_TEST

START_TEST(set_invalidate_makes_others_reread)
{
    sc_cache *a = test_pod(NS("inval"), "a");
    sc_cache *b = test_pod(NS("inval"), "b");
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).events_applied >= 1, 3000);
    ck_assert_uint_eq(test_stats(b).local_entries, 1);
    ck_assert_int_eq(sc_set_invalidate(a, "k", "v2", 2, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).invalidations >= 1, 3000);
    ck_assert_uint_eq(test_stats(b).local_entries, 0);
    char *s = test_get(b, "k");
    ck_assert_str_eq(s, "v2");
    free(s);
    ck_assert_uint_eq(test_stats(b).remote_hits, 1);
    /* The writer keeps its own value locally. */
    sc_stats before = test_stats(a);
    s = test_get(a, "k");
    ck_assert_str_eq(s, "v2");
    free(s);
    ck_assert_uint_eq(test_stats(a).local_hits, before.local_hits + 1);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(large_values_publish_invalidate)
{
    sc_options o = test_options(NS("large"), "a");
    o.event_value_max = 1000;
    sc_cache *a = test_open(&o);
    sc_cache *b = test_pod(NS("large"), "b");
    size_t n = 200000;
    unsigned char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i * 7);
    ck_assert_int_eq(sc_set(b, "big", "old", 3, 0), SC_OK);
    WAIT_UNTIL(test_stats(a).events_applied >= 1, 3000);
    ck_assert_int_eq(sc_set(a, "big", big, n, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).invalidations >= 1, 3000);
    sc_value *v;
    ck_assert_int_eq(sc_get(b, "big", &v), SC_OK);
    ck_assert_uint_eq(sc_value_size(v), n);
    ck_assert_mem_eq(sc_value_data(v), big, n);
    sc_value_release(v);
    free(big);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(binary_values_round_trip)
{
    sc_options o = test_options(NS("bin"), "json");
    o.wire_format = SC_WIRE_JSON;
    sc_cache *j = test_open(&o);
    sc_cache *m = test_pod(NS("bin"), "msgpack");
    const unsigned char val[] = {0, 1, 2, 0xff, 0xfe, 0, '"', '\\', 'z'};
    ck_assert_int_eq(sc_set(j, "bj", val, sizeof val, 0), SC_OK);
    ck_assert_int_eq(sc_set(m, "bm", val, sizeof val, 0), SC_OK);
    WAIT_UNTIL(test_stats(m).events_applied >= 1 && test_stats(j).events_applied >= 1, 3000);
    sc_cache *pods[] = {j, m};
    const char *keys[] = {"bj", "bm"};
    for (int p = 0; p < 2; p++) {
        for (int k = 0; k < 2; k++) {
            sc_value *v;
            sc_get_info info;
            ck_assert_int_eq(sc_get_ex(pods[p], keys[k], &v, &info), SC_OK);
            ck_assert_int_eq(info.source, SC_SOURCE_LOCAL); /* came by event, both encodings */
            ck_assert_uint_eq(sc_value_size(v), sizeof val);
            ck_assert_mem_eq(sc_value_data(v), val, sizeof val);
            sc_value_release(v);
        }
        /* Both encodings carry a signature the other pod accepts. */
        ck_assert_uint_eq(test_stats(pods[p]).events_forged, 0);
        ck_assert_uint_eq(test_stats(pods[p]).events_replayed, 0);
    }
    sc_close(j);
    sc_close(m);
}
END_TEST

START_TEST(delete_and_clear)
{
    sc_cache *a = test_pod(NS("del"), "a");
    sc_cache *b = test_pod(NS("del"), "b");
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET {%s}:other keep", NS("del")), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {t_otherns}:k:x value keep version 1"), 0);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(sc_set(a, k, "v", 1, 0), SC_OK);
    }
    WAIT_UNTIL(test_stats(b).local_entries == 50, 3000);
    ck_assert_int_eq(sc_delete(a, "k0"), SC_OK);
    ck_assert_int_eq(sc_delete(a, "never-existed"), SC_OK);
    WAIT_UNTIL(test_stats(b).local_entries == 49, 3000);
    char *s = test_redis_value(NS("del"), "k0");
    ck_assert_str_eq(s, "<none>");
    free(s);
    s = test_get(b, "k0");
    ck_assert_str_eq(s, "<none>");
    free(s);

    ck_assert_int_eq(sc_clear(b), SC_OK);
    WAIT_UNTIL(test_stats(a).local_entries == 0, 3000);
    ck_assert_uint_eq(test_stats(b).local_entries, 0);
    redisContext *rc = sc_test_redis_connect(&g_redis);
    redisReply *r = redisCommand(rc, "KEYS {%s}:k:*", NS("del"));
    ck_assert_uint_eq(r->elements, 0);
    freeReplyObject(r);
    /* Other keys of the namespace and other namespaces survive. */
    r = redisCommand(rc, "EXISTS {%s}:other {t_otherns}:k:x {%s}:seq", NS("del"), NS("del"));
    ck_assert_int_eq(r->integer, 3);
    freeReplyObject(r);
    redisFree(rc);
    s = test_get(a, "k5");
    ck_assert_str_eq(s, "<none>");
    free(s);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(reader_policy)
{
    sc_options o = test_options(NS("reader"), "reader");
    o.role = SC_ROLE_READER;
    sc_cache *r = test_open(&o);
    o.pod_id = "reader-writes";
    o.reader_can_set_to_redis = 1;
    sc_cache *rw = test_open(&o);
    sc_cache *w = test_pod(NS("reader"), "writer");

    /* A plain reader's set stays local: no Redis write, no event. */
    ck_assert_int_eq(sc_set(r, "k", "local", 5, 0), SC_OK);
    char *s = test_get(r, "k");
    ck_assert_str_eq(s, "local");
    free(s);
    s = test_redis_value(NS("reader"), "k");
    ck_assert_str_eq(s, "<none>");
    free(s);
    ck_assert_uint_eq(test_stats(r).events_published, 0);
    s = test_get(w, "k");
    ck_assert_str_eq(s, "<none>");
    free(s);

    /* reader_can_set_to_redis behaves as a writer. */
    ck_assert_int_eq(sc_set(rw, "k2", "shared", 6, 0), SC_OK);
    s = test_redis_value(NS("reader"), "k2");
    ck_assert_str_eq(s, "shared");
    free(s);
    WAIT_UNTIL(test_stats(w).events_applied >= 1, 3000);
    s = test_get(w, "k2");
    ck_assert_str_eq(s, "shared");
    free(s);

    /* Readers still apply writers' events (the local-only value is replaced). */
    ck_assert_int_eq(sc_set(w, "k", "fromwriter", 10, 0), SC_OK);
    WAIT_UNTIL(test_stats(r).events_applied >= 2, 3000);
    s = test_get(r, "k");
    ck_assert_str_eq(s, "fromwriter");
    free(s);
    sc_close(r);
    sc_close(rw);
    sc_close(w);
}
END_TEST

/* A plain reader's set that does not fit in local_max_bytes fails, and
 * like every failed set leaves the key out of the local tier (synccache.h,
 * sc_set): the reader's earlier value, which the caller just asked to
 * replace, is not served afterwards. */
START_TEST(reader_set_too_large_for_local_drops_key)
{
    sc_options o = test_options(NS("readerbig"), "reader");
    o.role = SC_ROLE_READER;
    o.local_max_bytes = 64;
    sc_cache *r = test_open(&o);
    ck_assert_int_eq(sc_set(r, "k", "small", 5, 0), SC_OK);
    char *s = test_get(r, "k");
    ck_assert_str_eq(s, "small");
    free(s);
    char big[100];
    memset(big, 'b', sizeof big);
    ck_assert_int_eq(sc_set(r, "k", big, sizeof big, 0), SC_ERR_TOO_LARGE);
    sc_value *v = NULL;
    ck_assert_int_eq(sc_peek(r, "k", &v), SC_NOT_FOUND);
    ck_assert_ptr_null(v);
    sc_stats st = test_stats(r);
    ck_assert_uint_eq(st.local_entries, 0);
    ck_assert_uint_eq(st.local_bytes, 0);
    sc_close(r);
}
END_TEST

static void publish_raw(const char *channel, const void *data, size_t len)
{
    redisContext *rc = sc_test_redis_connect(&g_redis);
    redisReply *r = redisCommand(rc, "PUBLISH %s %b", channel, data, len);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    redisFree(rc);
}

START_TEST(malformed_events_are_counted_and_dropped)
{
    sc_cache *a = test_pod(NS("bad"), "a");
    sc_cache *b = test_pod(NS("bad"), "b");
    const char *junk[] = {"", "hello", "{", "{\"action\":\"explode\",\"key\":\"k\"}", "\x85\xa1", "[1,2,3]",
                          "{\"action\":\"set\",\"key\":\"k\",\"value\":\"!!notbase64\"}"};
    size_t n = sizeof junk / sizeof junk[0];
    for (size_t i = 0; i < n; i++)
        publish_raw("{" NS("bad") "}:events", junk[i], strlen(junk[i]));
    WAIT_UNTIL(test_stats(b).events_malformed >= n, 3000);
    ck_assert_uint_eq(test_stats(b).events_malformed, n);
    ck_assert_uint_eq(test_stats(b).events_received, n);
    /* Sync keeps working afterwards. */
    ck_assert_int_eq(sc_set(a, "after", "ok", 2, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).events_applied >= 1, 3000);
    char *s = test_get(b, "after");
    ck_assert_str_eq(s, "ok");
    free(s);
    ck_assert_uint_eq(test_stats(b).synced, 1);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(json_invalidate_from_any_publisher)
{
    sc_cache *a = test_pod(NS("json"), "a");
    sc_cache *b = test_pod(NS("json"), "b");
    ck_assert_int_eq(sc_set(a, "k", "v", 1, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).local_entries == 1, 3000);
    const char *ev = "{\"action\":\"invalidate\",\"key\":\"k\",\"sender\":\"svc\"}";
    publish_raw("{" NS("json") "}:events", ev, strlen(ev));
    WAIT_UNTIL(test_stats(b).local_entries == 0 && test_stats(a).local_entries == 0, 3000);
    ck_assert_uint_eq(test_stats(b).local_entries, 0);
    ck_assert_uint_eq(test_stats(a).local_entries, 0);
    /* Redis still has it; the next get reads it. */
    char *s = test_get(b, "k");
    ck_assert_str_eq(s, "v");
    free(s);
    ck_assert_uint_eq(test_stats(b).remote_hits, 1);
    /* A JSON clear from outside empties every pod's local tier. */
    ev = "{\"action\":\"clear\",\"sender\":\"ops\"}";
    publish_raw("{" NS("json") "}:events", ev, strlen(ev));
    WAIT_UNTIL(test_stats(b).local_entries == 0, 3000);
    ck_assert_uint_eq(test_stats(b).local_entries, 0);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(replayed_old_events_are_stale)
{
    sc_cache *a = test_pod(NS("stale"), "a");
    sc_cache *b = test_pod(NS("stale"), "b");
    ck_assert_int_eq(sc_set(a, "k", "old", 3, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "k", "new", 3, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).events_applied >= 2, 3000);
    /* Re-publish every logged event (a duplicate delivery of old writes). */
    redisContext *rc = sc_test_redis_connect(&g_redis);
    redisReply *r = redisCommand(rc, "XRANGE {%s}:log - +", NS("stale"));
    ck_assert_uint_eq(r->elements, 2);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        publish_raw("{" NS("stale") "}:events", fields->element[1]->str, fields->element[1]->len);
    }
    freeReplyObject(r);
    redisFree(rc);
    WAIT_UNTIL(test_stats(b).events_stale >= 2, 3000);
    ck_assert_uint_eq(test_stats(b).events_stale, 2);
    char *s = test_get(b, "k");
    ck_assert_str_eq(s, "new");
    free(s);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(ttl_applies_in_redis_and_locally)
{
    sc_cache *a = test_pod(NS("ttl"), "a");
    sc_cache *b = test_pod(NS("ttl"), "b");
    long long t_set = test_now_ms();
    ck_assert_int_eq(sc_set(a, "short", "v", 1, 1500), SC_OK); /* outlives the checks on a sanitizer build */
    redisContext *rc = sc_test_redis_connect(&g_redis);
    redisReply *r = redisCommand(rc, "PTTL {%s}:k:short", NS("ttl"));
    ck_assert_int_gt(r->integer, 0);
    ck_assert_int_le(r->integer, 1500);
    freeReplyObject(r);
    redisFree(rc);
    WAIT_UNTIL(test_stats(b).events_applied >= 1, 3000);
    char *s = test_get(b, "short");
    ck_assert_str_eq(s, "v");
    free(s);
    while (test_now_ms() < t_set + 1650)
        test_sleep_ms(10);
    s = test_get(b, "short");
    ck_assert_str_eq(s, "<none>");
    free(s);
    s = test_get(a, "short");
    ck_assert_str_eq(s, "<none>");
    free(s);

    /* default_ttl_ms applies when a set passes 0. */
    sc_options o = test_options(NS("ttl"), "c");
    o.default_ttl_ms = 60000;
    sc_cache *c = test_open(&o);
    ck_assert_int_eq(sc_set(c, "dflt", "v", 1, 0), SC_OK);
    rc = sc_test_redis_connect(&g_redis);
    r = redisCommand(rc, "PTTL {%s}:k:dflt", NS("ttl"));
    ck_assert_int_gt(r->integer, 50000);
    freeReplyObject(r);
    redisFree(rc);
    sc_close(a);
    sc_close(b);
    sc_close(c);
}
END_TEST

typedef struct writer_arg {
    sc_cache *pod;
    int id;
    int rounds;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *w = p;
    char val[32];
    for (int i = 0; i < w->rounds; i++) {
        snprintf(val, sizeof val, "w%d-%d", w->id, i);
        ck_assert_int_eq(sc_set(w->pod, "hot", val, strlen(val), 0), SC_OK);
    }
    return NULL;
}

START_TEST(concurrent_writers_converge)
{
    enum { PODS = 3, THREADS = 6 };
    sc_cache *pods[PODS];
    char id[8];
    for (int i = 0; i < PODS; i++) {
        snprintf(id, sizeof id, "p%d", i);
        pods[i] = test_pod(NS("race"), id);
    }
    pthread_t t[THREADS];
    writer_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (writer_arg){pods[i % PODS], i, 300};
        pthread_create(&t[i], NULL, writer_main, &args[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *want = test_redis_value(NS("race"), "hot");
    /* Every pod has applied everything once its sequence reaches Redis'. */
    for (int i = 0; i < PODS; i++)
        TEST_WAIT_APPLIED(pods[i], NS("race"), 3000);
    for (int i = 0; i < PODS; i++) {
        char *got = test_get(pods[i], "hot");
        ck_assert_msg(strcmp(got, want) == 0, "pod %d holds %s, Redis %s", i, got, want);
        free(got);
    }
    free(want);
    for (int i = 0; i < PODS; i++)
        sc_close(pods[i]);
}
END_TEST

typedef struct getter_arg {
    sc_cache *pod;
    atomic_int *go;
    sc_status status;
    char got[16];
} getter_arg;

static void *getter_main(void *p)
{
    getter_arg *g = p;
    while (!atomic_load(g->go))
        ;
    sc_value *v = NULL;
    g->status = sc_get(g->pod, "sf", &v);
    if (v) {
        snprintf(g->got, sizeof g->got, "%s", (const char *)sc_value_data(v));
        sc_value_release(v);
    }
    return NULL;
}

START_TEST(concurrent_misses_share_one_read)
{
    enum { N = 8 };
    sc_cache *a = test_pod(NS("sf"), "a");
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {%s}:k:sf value shared version 7", NS("sf")), 0);
    /* Hold Redis still so every getter arrives while the first read waits. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "CLIENT PAUSE 400 ALL"), 0);
    atomic_int go = 0;
    pthread_t t[N];
    getter_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (getter_arg){a, &go, SC_ERR_INVALID, ""};
        pthread_create(&t[i], NULL, getter_main, &args[i]);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(args[i].status, SC_OK);
        ck_assert_str_eq(args[i].got, "shared");
    }
    sc_stats st = test_stats(a);
    ck_assert_uint_ge(st.loads_shared, 1);
    ck_assert_uint_eq(st.remote_hits + st.loads_shared + st.local_hits, N);
    ck_assert_uint_lt(st.remote_hits, N);
    sc_close(a);
}
END_TEST

/* A get on one pod racing a set on another, many rounds: the get reads
 * the old value from Redis while the set's new value and event are on their
 * way, and whatever the interleaving, once the set's event is applied the
 * reader holds the new value, never the old one (the read-populate race). */
typedef struct racing_get {
    sc_cache *r;
    const char *key, *old;
    pthread_barrier_t *go;
    sc_status status;
    int read_old;
} racing_get;

static void *racing_get_main(void *arg)
{
    racing_get *g = arg;
    sc_value *v = NULL;
    pthread_barrier_wait(g->go);
    g->status = sc_get(g->r, g->key, &v);
    g->read_old = g->status == SC_OK && sc_value_size(v) == strlen(g->old) &&
                  memcmp(sc_value_data(v), g->old, strlen(g->old)) == 0;
    sc_value_release(v);
    return NULL;
}

START_TEST(get_racing_set_never_installs_old_value)
{
    sc_cache *w = test_pod(NS("rp"), "w");
    sc_cache *r = test_pod(NS("rp"), "r");
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    int read_old = 0;
    for (int round = 0; round < 300; round++) {
        char key[32], old[32], val[32];
        snprintf(key, sizeof key, "k%d", round % 7);
        snprintf(old, sizeof old, "old%d", round);
        snprintf(val, sizeof val, "v%d", round);
        /* Redis holds old and r no copy, so r's get reads Redis. */
        ck_assert_int_eq(sc_set_invalidate(w, key, old, strlen(old), 0), SC_OK);
        TEST_WAIT_APPLIED(r, NS("rp"), 2000);
        ck_assert(!test_held(r, key));
        racing_get g = {.r = r, .key = key, .old = old, .go = &go};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, racing_get_main, &g), 0);
        pthread_barrier_wait(&go);
        ck_assert_int_eq(sc_set(w, key, val, strlen(val), 0), SC_OK);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_int_eq(g.status, SC_OK);
        read_old += g.read_old;
        TEST_WAIT_APPLIED(r, NS("rp"), 2000);
        char *got = test_get(r, key);
        ck_assert_msg(strcmp(got, val) == 0, "round %d: reader holds %s, wrote %s", round, got, val);
        free(got);
    }
    /* The race was run: some gets read the old value while the set was on
     * its way (both start together; a read is the shorter round trip). */
    printf("read-populate race: %d of 300 gets read the old value\n", read_old);
    ck_assert_int_gt(read_old, 0);
    pthread_barrier_destroy(&go);
    sc_close(w);
    sc_close(r);
}
END_TEST

START_TEST(values_outlive_close)
{
    sc_cache *a = test_pod(NS("life"), "a");
    ck_assert_int_eq(sc_set(a, "k", "kept", 4, 0), SC_OK);
    sc_value *v;
    ck_assert_int_eq(sc_get(a, "k", &v), SC_OK);
    sc_close(a);
    ck_assert_str_eq(sc_value_data(v), "kept");
    sc_value_release(v);
}
END_TEST

/* sc_close's bound with write-behind (synccache.h): at most
 * writeback_claim_ms + 3 x redis_timeout_ms, however long save_fn hangs.
 * A partitioned pod has a saver per partition; closing the partitions one
 * after another waited writeback_claim_ms for each hung save in turn. */
static atomic_int hung_in_save, hung_release;

static sc_status hung_save(const sc_dirty *items, size_t n, void *ud)
{
    (void)items;
    (void)n;
    (void)ud;
    atomic_fetch_add(&hung_in_save, 1);
    while (!atomic_load(&hung_release))
        test_sleep_ms(5);
    atomic_fetch_sub(&hung_in_save, 1);
    return SC_OK;
}

START_TEST(partitioned_close_keeps_the_save_bound)
{
    sc_options o = test_options(NS("pclose"), NULL);
    o.partitions = 4;
    o.save_fn = hung_save;
    o.writeback_interval_ms = 10;
    o.writeback_claim_ms = 600;
    o.redis_timeout_ms = 200;
    sc_cache *c = test_open(&o);
    char k[16];
    for (int i = 0; i < 64; i++) { /* every partition gets some */
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(sc_set_behind(c, k, "v", 1, 0), SC_OK);
    }
    long long t0 = test_now_ms();
    while (atomic_load(&hung_in_save) < 4 && test_now_ms() - t0 < 5000)
        test_sleep_ms(5);
    ck_assert_int_eq(atomic_load(&hung_in_save), 4);
    t0 = test_now_ms();
    sc_close(c);
    long long took = test_now_ms() - t0;
    /* The bound plus a margin; one partition after another takes 4 x 600. */
    ck_assert_msg(took < 600 + 3 * 200 + 500, "sc_close took %lld ms (writeback_claim_ms 600, 4 hung saves)", took);
    /* The abandoned calls return and their threads exit on their own. */
    atomic_store(&hung_release, 1);
    t0 = test_now_ms();
    while (atomic_load(&hung_in_save) > 0 && test_now_ms() - t0 < 5000)
        test_sleep_ms(5);
    ck_assert_int_eq(atomic_load(&hung_in_save), 0);
    test_sleep_ms(50);
}
END_TEST

/* The application runs the loop: the pod starts unsynced, reads go to Redis,
 * and it syncs once the loop runs. */
START_TEST(caller_event_base)
{
    struct event_base *base = event_base_new();
    sc_options o = test_options(NS("base"), "looped");
    o.event_base = base;
    sc_cache *l = test_open(&o);
    sc_cache *a = test_pod(NS("base"), "a");
    ck_assert_uint_eq(test_stats(l).synced, 0);
    long long deadline = test_now_ms() + 3000;
    while (!test_stats(l).synced && test_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_uint_eq(test_stats(l).synced, 1);
    ck_assert_int_eq(sc_set(a, "k", "v", 1, 0), SC_OK);
    deadline = test_now_ms() + 3000;
    while (test_stats(l).events_applied < 1 && test_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    sc_get_info info;
    sc_value *v;
    ck_assert_int_eq(sc_get_ex(l, "k", &v, &info), SC_OK);
    ck_assert_int_eq(info.source, SC_SOURCE_LOCAL);
    sc_value_release(v);
    sc_close(l);
    sc_close(a);
    event_base_free(base);
}
END_TEST

/* Runs a caller's loop until pod l on it is synced. */
static void loop_until_synced(struct event_base *base, sc_cache *l)
{
    long long deadline = test_now_ms() + 3000;
    while (!test_stats(l).synced && test_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_uint_eq(test_stats(l).synced, 1);
}

/* Runs a caller's loop until pod l applied an event, then 200 ms more for
 * the loop to settle (tracking's confirm of the value included). */
static void loop_until_applied(struct event_base *base, sc_cache *l)
{
    long long deadline = test_now_ms() + 3000;
    while (test_stats(l).events_applied < 1 && test_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    long long t0 = test_now_ms();
    while (test_now_ms() - t0 < 200)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

/* A pod on the caller's event_base whose loop is not run (the application is
 * busy) cannot apply events, send heartbeats or notice that its stream
 * stalled. It kept saying synced and serving its local copy of a key that
 * another pod had overwritten seconds before, past any heartbeat bound
 * (README, "Bounded staleness while synced": a stalled stream is noticed
 * within heartbeat_timeout_ms, after which the pod reads Redis). */
START_TEST(caller_event_base_not_run_stops_serving_local)
{
    struct event_base *base = event_base_new();
    sc_options o = test_options(NS("idle_base"), "idle");
    o.event_base = base;
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 200;
    sc_cache *l = test_open(&o);
    sc_cache *a = test_pod(NS("idle_base"), "a");
    loop_until_synced(base, l);
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    loop_until_applied(base, l);
    sc_value *v = NULL;
    sc_get_info info;
    ck_assert_int_eq(sc_get_ex(l, "k", &v, &info), SC_OK);
    ck_assert_int_eq(info.source, SC_SOURCE_LOCAL);
    ck_assert_int_eq(memcmp(sc_value_data(v), "v1", 2), 0);
    sc_value_release(v);
    char *got;
    /* The application stops running the loop; another pod writes. */
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK);
    test_sleep_ms(4 * (o.heartbeat_interval_ms + o.heartbeat_timeout_ms));
    got = test_get(l, "k");
    sc_stats st = test_stats(l);
    ck_assert_msg(strcmp(got, "v2") == 0,
                  "loop idle for %u ms: served \"%s\" while synced = %llu (the key is v2 in Redis)",
                  4 * (o.heartbeat_interval_ms + o.heartbeat_timeout_ms), got, (unsigned long long)st.synced);
    free(got);
    ck_assert_uint_eq(st.synced, 0);
    char buf[8];
    size_t len = 0;
    ck_assert_int_eq(sc_get_copy(l, "k", buf, sizeof buf, &len, NULL), SC_OK);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(memcmp(buf, "v2", 2), 0);
    /* Once the loop runs again the pod catches up and syncs. */
    loop_until_synced(base, l);
    got = test_get(l, "k");
    ck_assert_str_eq(got, "v2");
    free(got);
    sc_close(l);
    sc_close(a);
    event_base_free(base);
}
END_TEST

/* Redis restarted (its data lost) while the application's loop is blocked:
 * the pod must not serve its copy from the old history, and once the loop
 * runs it resynchronises. */
START_TEST(caller_event_base_redis_restarted_while_loop_blocked)
{
    sc_test_redis r;
    ck_assert_int_eq(sc_test_redis_start(&r, NULL), 0);
    struct event_base *base = event_base_new();
    sc_options o = test_options(NS("idle_restart"), "idle");
    o.redis_port = r.port;
    o.event_base = base;
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 200;
    o.reconnect_min_ms = 5;
    o.reconnect_max_ms = 50;
    sc_cache *l = test_open(&o);
    sc_options ow = test_options(NS("idle_restart"), "w");
    ow.redis_port = r.port;
    ow.reconnect_min_ms = 5;
    ow.reconnect_max_ms = 50;
    sc_cache *w = test_open(&ow);
    loop_until_synced(base, l);
    ck_assert_int_eq(sc_set(w, "k", "v1", 2, 0), SC_OK);
    loop_until_applied(base, l);
    char *got = test_get(l, "k");
    ck_assert_str_eq(got, "v1");
    free(got);
    /* The loop is blocked; Redis restarts empty; w writes again. */
    ck_assert_int_eq(sc_test_redis_restart(&r), 0);
    sc_status s = SC_ERR_REMOTE;
    long long deadline = test_now_ms() + 5000;
    while ((s = sc_set(w, "k", "v2", 2, 0)) != SC_OK && test_now_ms() < deadline)
        test_sleep_ms(20);
    ck_assert_int_eq(s, SC_OK);
    test_sleep_ms(4 * (o.heartbeat_interval_ms + o.heartbeat_timeout_ms));
    got = test_get(l, "k");
    ck_assert_msg(strcmp(got, "v2") == 0, "served %s after the restart", got);
    free(got);
    deadline = test_now_ms() + 5000;
    while (!test_stats(l).synced && test_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_uint_eq(test_stats(l).synced, 1);
    got = test_get(l, "k");
    ck_assert_str_eq(got, "v2");
    free(got);
    ck_assert_int_eq(sc_delete(w, "k"), SC_OK);
    deadline = test_now_ms() + 3000;
    while (test_now_ms() < deadline) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        sc_value *pv = NULL;
        if (sc_peek(l, "k", &pv) == SC_NOT_FOUND)
            break;
        sc_value_release(pv);
    }
    got = test_get(l, "k");
    ck_assert_str_eq(got, "<none>");
    free(got);
    sc_close(l);
    sc_close(w);
    event_base_free(base);
    sc_test_redis_stop(&r);
}
END_TEST

/* With a caller's event_base the subscription's hiredis context writes on
 * the application's loop thread. Redis that drops the connection during the
 * handshake (here: maxclients reached; also CLIENT KILL or a restart at the
 * wrong moment) made the next write raise SIGPIPE there, which kills a
 * process that does not ignore it; the pool and the own sync thread never
 * let one reach the application. */
START_TEST(caller_event_base_survives_a_dropped_handshake)
{
    sc_test_redis r;
    ck_assert_int_eq(sc_test_redis_start(&r, "--maxclients 1"), 0);
    struct event_base *base = event_base_new();
    sc_options o = test_options(NS("sigpipe"), NULL);
    o.redis_port = r.port;
    o.event_base = base;
    o.redis_timeout_ms = 300;
    o.reconnect_min_ms = 5;
    o.reconnect_max_ms = 20;
    sc_cache *c = test_open(&o); /* its pool connection is Redis' only client */
    /* Every subscription attempt is refused; a dozen of them or more. */
    long long t0 = test_now_ms();
    while (test_now_ms() - t0 < 500)
        event_base_loop(base, EVLOOP_NONBLOCK);
    sigset_t pending;
    sigpending(&pending);
    ck_assert_msg(!sigismember(&pending, SIGPIPE), "a SIGPIPE is left pending on the loop's thread");
    ck_assert_uint_eq(test_stats(c).synced, 0);
    sc_close(c);
    event_base_free(base);
    sc_test_redis_stop(&r);
}
END_TEST

START_TEST(strerror_covers_every_status)
{
    for (int s = SC_OK; s <= SC_ERR_CODEC; s++)
        ck_assert_uint_gt(strlen(sc_strerror((sc_status)s)), 0);
    ck_assert_str_eq(sc_strerror((sc_status)999), "unknown status");
}
END_TEST

/* "Permissions are checked at sc_open": a user missing any one command the
 * writing scripts run after their first write (the counter's INCR) opened
 * fine, then every sc_set, sc_delete, sc_set_tagged, sc_tag_deleted or
 * sc_clear failed with NOPERM after the script had taken a version and
 * replaced or deleted the value: no log entry, no event, and a status that
 * says nothing was done. With -hset an sc_set deleted the key; with
 * -pexpire an sc_delete removed it without a tombstone. Such a user must be
 * refused by sc_open, naming the command; Redis must be left as it was. */
START_TEST(acl_each_missing_permission_refused_at_open)
{
    static const char *const cmds[] = {"pexpire", "persist", "hkeys", "del",  "hset",  "hdel",
                                       "hget",    "pttl",    "incr",  "xadd", "unlink"};
    redisContext *rc = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(rc);
    sc_options o = test_options(NS("acl_each"), "admin");
    sc_cache *admin = test_open(&o);
    const char *tags[] = {"t"};
    ck_assert_int_eq(sc_set_tagged(admin, "k", "old", 3, 0, tags, 1), SC_OK);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char user[32], acl[128];
        snprintf(user, sizeof user, "each_%s", cmds[i]);
        snprintf(acl, sizeof acl, "ACL SETUSER %s on >pw ~* &* +@all -%s", user, cmds[i]);
        ck_assert_int_eq(sc_test_redis_cmd(&g_redis, acl), 0);
        o = test_options(NS("acl_each"), user);
        o.redis_username = user;
        o.redis_password = "pw";
        char *seq0 = redis_str(rc, "GET {%s}:seq", NS("acl_each"));
        sc_cache *c = NULL;
        sc_status s = sc_open(&o, &c);
        if (s == SC_OK) {
            /* Opened: then every write must succeed or leave Redis as it was. */
            sc_status w[4] = {sc_set(c, "k", "new", 3, 60000), sc_set_tagged(c, "k", "new", 3, 60000, tags, 1),
                              sc_tag_deleted(c, "k"), sc_delete(c, "k")};
            char *seq1 = redis_str(rc, "GET {%s}:seq", NS("acl_each"));
            char *val = redis_str(rc, "HGET {%s}:k:k value", NS("acl_each"));
            for (int j = 0; j < 4; j++)
                ck_assert_msg(w[j] == SC_OK || (strcmp(seq0, seq1) == 0 && strcmp(val, "old") == 0),
                              "without %s: sc_open succeeded, write %d failed (%s: %s) but Redis changed: seq %s -> "
                              "%s, k = %s",
                              cmds[i], j, sc_strerror(w[j]), sc_errmsg(c), seq0, seq1, val);
            free(seq1);
            free(val);
            sc_close(c);
        } else {
            ck_assert_msg(strstr(sc_errmsg(NULL), "NOPERM") && strstr(sc_errmsg(NULL), cmds[i]),
                          "without %s: sc_open %s, message '%s' does not name NOPERM and the command", cmds[i],
                          sc_strerror(s), sc_errmsg(NULL));
        }
        free(seq0);
    }
    TEST_ASSERT_STR_FREED(test_get(admin, "k"), "old", "k after the refused users");
    sc_close(admin);
    redisFree(rc);
}
END_TEST

/* sc_clear "takes effect at once through the namespace floor, then collects
 * {ns}:k:* in batches (SCAN + a script)". A user whose ACL refuses SCAN
 * opened fine and every sc_clear returned SC_OK while collecting nothing,
 * silently: the cleared values (absent to every reader) stayed in Redis for
 * good. Such a user must be refused by sc_open, or its clear must collect. */
START_TEST(acl_without_scan_refused_at_open)
{
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER noscan on >pw ~* &* +@all -scan"), 0);
    sc_options o = test_options(NS("acl_scan"), "u");
    o.redis_username = "noscan";
    o.redis_password = "pw";
    sc_cache *c = NULL;
    sc_status s = sc_open(&o, &c);
    if (s != SC_OK) {
        ck_assert_msg(strstr(sc_errmsg(NULL), "NOPERM") && strstr(sc_errmsg(NULL), "scan"),
                      "sc_open %s, message '%s' does not name NOPERM and scan", sc_strerror(s), sc_errmsg(NULL));
        return;
    }
    ck_assert_int_eq(sc_set(c, "k", "v", 1, 0), SC_OK);
    s = sc_clear(c);
    redisContext *rc = sc_test_redis_connect(&g_redis);
    redisReply *e = redisCommand(rc, "EXISTS {%s}:k:k", NS("acl_scan"));
    long long left = e->integer;
    freeReplyObject(e);
    redisFree(rc);
    ck_assert_msg(s != SC_OK || left == 0,
                  "sc_clear returned SC_OK without SCAN, and the cleared key is still in Redis");
    sc_close(c);
}
END_TEST

static Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, open_close_and_pod_ids);
    tcase_add_test(tc, open_without_redis_fails_fast);
    tcase_add_test(tc, bad_options_are_rejected);
    tcase_add_test(tc, huge_numeric_options_never_half_write);
    tcase_add_test(tc, huge_heartbeat_timeout_keeps_stream);
    tcase_add_test(tc, acl_refusal_never_half_writes);
    tcase_add_test(tc, acl_each_missing_permission_refused_at_open);
    tcase_add_test(tc, acl_without_scan_refused_at_open);
    tcase_add_test(tc, event_log_of_the_wrong_type_fails_open_at_once);
    tcase_add_test(tc, bad_keys_and_values);
    tcase_add_test(tc, set_propagates_value_to_other_pods);
    tcase_add_test(tc, miss_reads_redis_and_fills_local);
    tcase_add_test(tc, set_invalidate_makes_others_reread);
    tcase_add_test(tc, large_values_publish_invalidate);
    tcase_add_test(tc, binary_values_round_trip);
    tcase_add_test(tc, delete_and_clear);
    tcase_add_test(tc, reader_policy);
    tcase_add_test(tc, reader_set_too_large_for_local_drops_key);
    tcase_add_test(tc, malformed_events_are_counted_and_dropped);
    tcase_add_test(tc, json_invalidate_from_any_publisher);
    tcase_add_test(tc, replayed_old_events_are_stale);
    tcase_add_test(tc, ttl_applies_in_redis_and_locally);
    tcase_add_test(tc, concurrent_writers_converge);
    tcase_add_test(tc, concurrent_misses_share_one_read);
    tcase_add_test(tc, get_racing_set_never_installs_old_value);
    tcase_add_test(tc, values_outlive_close);
    tcase_add_test(tc, partitioned_close_keeps_the_save_bound);
    tcase_add_test(tc, caller_event_base);
    tcase_add_test(tc, caller_event_base_survives_a_dropped_handshake);
    tcase_add_test(tc, caller_event_base_not_run_stops_serving_local);
    tcase_add_test(tc, caller_event_base_redis_restarted_while_loop_blocked);
    tcase_add_test(tc, strerror_covers_every_status);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(cache_suite(), NULL);
}
