/* Tests of remote/ (pool, Lua scripts, key layout) against a real
 * redis-server. One private server is started in main() and shared by the
 * tests, each of which uses its own namespace; tests that stop, kill, pause
 * or reconfigure Redis start a server of their own. Events are checked with
 * plain msgpack-c and cJSON, not with sync/'s decoder, so a fault in one
 * cannot hide a fault in the other.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "redis_server.h"
#include "remote/remote.h"

static sc_test_redis g_redis;

static sc__remote_config config_for(const sc_test_redis *r, const char *ns)
{
    sc__remote_config c;
    memset(&c, 0, sizeof c);
    c.host = "127.0.0.1";
    c.port = r->port;
    c.timeout_ms = 1000;
    c.pool_size = 2;
    c.ns = ns;
    c.sender = "pod-test";
    c.wire_format = SC_WIRE_MSGPACK;
    c.log_len = 10000;
    return c;
}

static sc__remote *open_cfg(const sc__remote_config *c)
{
    sc__remote *r = NULL;
    char err[256] = "";
    sc_status st = sc__remote_open(c, &r, err, sizeof err);
    ck_assert_msg(st == SC_OK, "open: %d %s", st, err);
    return r;
}

static sc__remote *open_ns(const char *ns)
{
    sc__remote_config c = config_for(&g_redis, ns);
    return open_cfg(&c);
}

static uint64_t set_str(sc__remote *r, const char *key, const char *val, uint64_t ttl)
{
    uint64_t v = 0;
    char err[256] = "";
    sc_status st = sc__remote_set(r, key, strlen(key), val, strlen(val), NULL, ttl, SC__REMOTE_EV_SET, &v, err,
                                  sizeof err);
    ck_assert_msg(st == SC_OK, "set %s: %d %s", key, st, err);
    return v;
}

static int64_t now_ms_wall(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One command on a raw connection to r; the caller frees the reply. */
static redisReply *raw(const sc_test_redis *r, const char *fmt, ...)
{
    redisContext *c = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    ck_assert_ptr_nonnull(rep);
    return rep;
}

static long long raw_int(const sc_test_redis *r, const char *fmt, ...)
{
    redisContext *c = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_INTEGER);
    long long n = rep->integer;
    freeReplyObject(rep);
    return n;
}

/* calls= of one command in INFO commandstats (0 when never called). */
static long long cmd_calls(const sc_test_redis *r, const char *cmd)
{
    redisReply *rep = raw(r, "INFO commandstats");
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
    const char *p = strstr(rep->str, needle);
    long long n = p ? strtoll(p + strlen(needle), NULL, 10) : 0;
    freeReplyObject(rep);
    return n;
}

static redisContext *subscribe(const char *channel)
{
    redisContext *c = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(c);
    redisReply *rep = redisCommand(c, "SUBSCRIBE %s", channel);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    freeReplyObject(rep);
    return c;
}

/* The next message on a subscribed connection (malloc'd, NUL-terminated). */
static char *next_message(redisContext *c, size_t *len)
{
    redisReply *rep = NULL;
    ck_assert_int_eq(redisGetReply(c, (void **)&rep), REDIS_OK);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(rep->elements, 3);
    ck_assert_str_eq(rep->element[0]->str, "message");
    char *m = malloc(rep->element[2]->len + 1);
    memcpy(m, rep->element[2]->str, rep->element[2]->len);
    m[rep->element[2]->len] = '\0';
    *len = rep->element[2]->len;
    freeReplyObject(rep);
    return m;
}

/* The event stored in the log under "<seq>-0" (malloc'd). */
static char *log_entry(const char *ns, uint64_t seq, size_t *len)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64 "-0", seq);
    redisReply *rep = raw(&g_redis, "XRANGE %s:log %s %s", ns, id, id);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(rep->elements, 1);
    redisReply *fields = rep->element[0]->element[1];
    ck_assert_uint_eq(fields->elements, 2);
    ck_assert_str_eq(fields->element[0]->str, "e");
    char *m = malloc(fields->element[1]->len + 1);
    memcpy(m, fields->element[1]->str, fields->element[1]->len);
    *len = fields->element[1]->len;
    freeReplyObject(rep);
    return m;
}

/* ------------------------------------------------------------- msgpack -- */

static const msgpack_object *mp_get(const msgpack_object *map, const char *name)
{
    ck_assert_int_eq(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        ck_assert_int_eq(k->type, MSGPACK_OBJECT_STR);
        if (k->via.str.size == strlen(name) && memcmp(k->via.str.ptr, name, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static uint64_t mp_uint(const msgpack_object *map, const char *name)
{
    const msgpack_object *o = mp_get(map, name);
    ck_assert_msg(o != NULL, "field %s missing", name);
    ck_assert_msg(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "field %s is not an unsigned integer (%d)", name,
                  o->type);
    return o->via.u64;
}

static void mp_assert_str(const msgpack_object *map, const char *name, const void *want, size_t len)
{
    const msgpack_object *o = mp_get(map, name);
    ck_assert_msg(o != NULL, "field %s missing", name);
    ck_assert_msg(o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN, "field %s is not a string",
                  name);
    ck_assert_uint_eq(o->via.str.size, len);
    ck_assert(memcmp(o->via.str.ptr, want, len) == 0);
}

/* Checks a msgpack event: exactly one map, the listed fields, no others. */
static void check_mp_event(const char *buf, size_t len, const char *action, const char *key, uint64_t version,
                           const void *value, size_t vlen, uint64_t ttl)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, len);
    const msgpack_object *m = &u.data;
    ck_assert_int_eq(m->type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(mp_uint(m, "format"), 1);
    mp_assert_str(m, "action", action, strlen(action));
    mp_assert_str(m, "key", key, strlen(key));
    mp_assert_str(m, "sender", "pod-test", 8);
    ck_assert_uint_eq(mp_uint(m, "version"), version);
    ck_assert_uint_eq(mp_uint(m, "ttl"), ttl);
    int64_t t = (int64_t)mp_uint(m, "time");
    ck_assert_int_lt(llabs(t - now_ms_wall()), 10000);
    if (value) {
        mp_assert_str(m, "value", value, vlen);
        ck_assert_uint_eq(m->via.map.size, 8);
    } else {
        ck_assert_ptr_null(mp_get(m, "value"));
        ck_assert_uint_eq(m->via.map.size, 7);
    }
    msgpack_unpacked_destroy(&u);
}

/* ---------------------------------------------------------------- tests -- */

START_TEST(test_roundtrip_binary_and_empty)
{
    sc__remote *r = open_ns("rt");
    char err[256];
    static const char bin[] = {'a', 0, 'b', 0, 0, 'c'};
    uint64_t v1 = 0, v2 = 0;
    ck_assert_int_eq(sc__remote_set(r, "bin", 3, bin, sizeof bin, NULL, 0, SC__REMOTE_EV_SET, &v1, err, sizeof err),
                     SC_OK);
    ck_assert_int_eq(sc__remote_set(r, "empty", 5, "", 0, NULL, 0, SC__REMOTE_EV_SET, &v2, err, sizeof err), SC_OK);

    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "bin", 3, &it, err, sizeof err), SC_OK);
    ck_assert_uint_eq(it.len, sizeof bin);
    ck_assert(memcmp(it.data, bin, sizeof bin) == 0);
    ck_assert_int_eq(it.data[it.len], '\0');
    ck_assert_uint_eq(it.version, v1);
    ck_assert_int_eq(it.pttl_ms, -1);
    free(it.data);

    ck_assert_int_eq(sc__remote_get(r, "empty", 5, &it, err, sizeof err), SC_OK);
    ck_assert_uint_eq(it.len, 0);
    ck_assert_ptr_nonnull(it.data);
    ck_assert_int_eq(it.data[0], '\0');
    ck_assert_uint_eq(it.version, v2);
    free(it.data);

    ck_assert_int_eq(sc__remote_get(r, "missing", 7, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_ptr_null(it.data);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_versions_increase_from_time)
{
    sc__remote *r = open_ns("ver");
    char err[256];
    uint64_t seq0;
    ck_assert_int_eq(sc__remote_seq(r, &seq0, err, sizeof err), SC_OK);
    /* Seeded from Redis TIME in microseconds: close to the wall clock. */
    ck_assert_uint_gt(seq0, 1000000000000000ULL);
    int64_t now_us = now_ms_wall() * 1000;
    ck_assert_int_lt(llabs((long long)seq0 - now_us), 60LL * 1000000);

    uint64_t prev = seq0;
    for (int i = 0; i < 100; i++) {
        uint64_t v;
        sc_status st;
        if (i % 10 == 9)
            st = sc__remote_delete(r, "k", 1, &v, err, sizeof err);
        else if (i == 50)
            st = sc__remote_clear(r, &v, err, sizeof err);
        else
            st = sc__remote_set(r, "k", 1, "x", 1, NULL, 0, SC__REMOTE_EV_SET, &v, err, sizeof err);
        ck_assert_msg(st == SC_OK, "%s", err);
        ck_assert_uint_eq(v, prev + 1);
        prev = v;
    }
    uint64_t seq1;
    ck_assert_int_eq(sc__remote_seq(r, &seq1, err, sizeof err), SC_OK);
    ck_assert_uint_eq(seq1, prev);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_plain_commands_read_the_hash)
{
    sc__remote *r = open_ns("plain");
    uint64_t v = set_str(r, "user:1", "alice", 0);
    redisReply *rep = raw(&g_redis, "HGET plain:k:user:1 value");
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(rep->str, "alice");
    freeReplyObject(rep);
    rep = raw(&g_redis, "HGET plain:k:user:1 version");
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    char want[32];
    snprintf(want, sizeof want, "%" PRIu64, v);
    ck_assert_str_eq(rep->str, want); /* plain decimal, no exponent */
    freeReplyObject(rep);
    rep = raw(&g_redis, "GET plain:seq");
    ck_assert_str_eq(rep->str, want);
    freeReplyObject(rep);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_ttl_and_persist)
{
    sc__remote *r = open_ns("ttl");
    char err[256];
    set_str(r, "k", "v", 5000);
    long long pttl = raw_int(&g_redis, "PTTL ttl:k:k");
    ck_assert_int_gt(pttl, 3000);
    ck_assert_int_le(pttl, 5000);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_int_gt(it.pttl_ms, 3000);
    ck_assert_int_le(it.pttl_ms, 5000);
    free(it.data);

    set_str(r, "k", "v2", 0);
    ck_assert_int_eq(raw_int(&g_redis, "PTTL ttl:k:k"), -1);
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_int_eq(it.pttl_ms, -1);
    ck_assert_str_eq(it.data, "v2");
    free(it.data);

    uint64_t v;
    ck_assert_int_eq(sc__remote_set(r, "k", 1, "v", 1, NULL, UINT64_MAX, SC__REMOTE_EV_SET, &v, err, sizeof err),
                     SC_ERR_INVALID);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_msgpack_events_match_log)
{
    sc__remote *r = open_ns("mp");
    redisContext *sub = subscribe("mp:events");
    char err[256];
    static const char val[] = {'x', 0, (char)0xff, 'y'};
    uint64_t v;
    size_t mlen, llen;

    ck_assert_int_eq(sc__remote_set(r, "key one", 7, val, sizeof val, NULL, 7000, SC__REMOTE_EV_SET, &v, err,
                                    sizeof err),
                     SC_OK);
    char *msg = next_message(sub, &mlen);
    char *logged = log_entry("mp", v, &llen);
    ck_assert_uint_eq(mlen, llen);
    ck_assert(memcmp(msg, logged, mlen) == 0);
    check_mp_event(msg, mlen, "set", "key one", v, val, sizeof val, 7000);
    free(msg);
    free(logged);

    ck_assert_int_eq(sc__remote_set(r, "big", 3, "large value", 11, NULL, 0, SC__REMOTE_EV_INVALIDATE, &v, err,
                                    sizeof err),
                     SC_OK);
    msg = next_message(sub, &mlen);
    check_mp_event(msg, mlen, "invalidate", "big", v, NULL, 0, 0);
    free(msg);
    /* An invalidate still stores the value. */
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "big", 3, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "large value");
    free(it.data);

    ck_assert_int_eq(sc__remote_delete(r, "big", 3, &v, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    logged = log_entry("mp", v, &llen);
    ck_assert(mlen == llen && memcmp(msg, logged, mlen) == 0);
    check_mp_event(msg, mlen, "delete", "big", v, NULL, 0, 0);
    free(msg);
    free(logged);

    ck_assert_int_eq(sc__remote_clear(r, &v, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    logged = log_entry("mp", v, &llen);
    ck_assert(mlen == llen && memcmp(msg, logged, mlen) == 0);
    check_mp_event(msg, mlen, "clear", "", v, NULL, 0, 0);
    free(msg);
    free(logged);

    redisFree(sub);
    sc__remote_close(r);
}
END_TEST

static cJSON *parse_json_event(const char *msg, size_t len, const char *action, const char *key, uint64_t version,
                               uint64_t ttl)
{
    cJSON *j = cJSON_ParseWithLength(msg, len);
    ck_assert_msg(j != NULL, "not JSON: %s", msg);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "action")->valuestring, action);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "key")->valuestring, key);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "sender")->valuestring, "pod-test");
    ck_assert(cJSON_GetObjectItemCaseSensitive(j, "format")->valuedouble == 1);
    ck_assert(cJSON_GetObjectItemCaseSensitive(j, "ttl")->valuedouble == (double)ttl);
    double t = cJSON_GetObjectItemCaseSensitive(j, "time")->valuedouble;
    ck_assert(t > (double)(now_ms_wall() - 10000) && t < (double)(now_ms_wall() + 10000));
    /* The number must be printed in full: cjson.encode would give 1.7e+15. */
    char want[48];
    snprintf(want, sizeof want, "\"version\":%" PRIu64 ",", version);
    ck_assert_msg(strstr(msg, want) != NULL, "%s not in %s", want, msg);
    ck_assert(strstr(msg, "e+") == NULL);
    return j;
}

START_TEST(test_json_events)
{
    sc__remote_config c = config_for(&g_redis, "js");
    c.wire_format = SC_WIRE_JSON;
    sc__remote *r = open_cfg(&c);
    redisContext *sub = subscribe("js:events");
    char err[256];
    uint64_t v;
    size_t mlen, llen;
    /* A key that needs escaping in JSON. */
    const char *key = "a\"b\\c\nd/e";
    static const char val[] = {0, 'b', 'c'};
    ck_assert_int_eq(sc__remote_set(r, key, strlen(key), val, sizeof val, "AGJj", 1234, SC__REMOTE_EV_SET, &v, err,
                                    sizeof err),
                     SC_OK);
    char *msg = next_message(sub, &mlen);
    char *logged = log_entry("js", v, &llen);
    ck_assert(mlen == llen && memcmp(msg, logged, mlen) == 0);
    ck_assert_msg(strncmp(msg, "{\"format\":1,\"action\":\"set\",\"key\":", 33) == 0, "%s", msg);
    cJSON *j = parse_json_event(msg, mlen, "set", key, v, 1234);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "value")->valuestring, "AGJj");
    cJSON_Delete(j);
    free(msg);
    free(logged);
    /* Redis holds the raw bytes, not the base64. */
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, key, strlen(key), &it, err, sizeof err), SC_OK);
    ck_assert(it.len == sizeof val && memcmp(it.data, val, sizeof val) == 0);
    free(it.data);

    ck_assert_int_eq(sc__remote_set(r, "k", 1, "v", 1, NULL, 0, SC__REMOTE_EV_INVALIDATE, &v, err, sizeof err),
                     SC_OK);
    msg = next_message(sub, &mlen);
    j = parse_json_event(msg, mlen, "invalidate", "k", v, 0);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "value"));
    cJSON_Delete(j);
    free(msg);

    ck_assert_int_eq(sc__remote_delete(r, "k", 1, &v, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    cJSON_Delete(parse_json_event(msg, mlen, "delete", "k", v, 0));
    free(msg);

    ck_assert_int_eq(sc__remote_clear(r, &v, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    cJSON_Delete(parse_json_event(msg, mlen, "clear", "", v, 0));
    free(msg);

    /* A JSON set event needs the caller's base64. */
    ck_assert_int_eq(sc__remote_set(r, "k", 1, "v", 1, NULL, 0, SC__REMOTE_EV_SET, &v, err, sizeof err),
                     SC_ERR_INVALID);
    redisFree(sub);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_heartbeat)
{
    sc__remote *r = open_ns("hb");
    char err[256];
    set_str(r, "k", "v", 0);
    uint64_t seq;
    ck_assert_int_eq(sc__remote_seq(r, &seq, err, sizeof err), SC_OK);
    long long xlen = raw_int(&g_redis, "XLEN hb:log");
    ck_assert_int_eq(xlen, 1);

    redisContext *sub = subscribe("hb:events");
    ck_assert_int_eq(sc__remote_heartbeat(r, err, sizeof err), SC_OK);
    size_t mlen;
    char *msg = next_message(sub, &mlen);
    check_mp_event(msg, mlen, "heartbeat", "", seq, NULL, 0, 0);
    free(msg);
    ck_assert_int_eq(raw_int(&g_redis, "XLEN hb:log"), xlen);
    uint64_t seq2;
    ck_assert_int_eq(sc__remote_seq(r, &seq2, err, sizeof err), SC_OK);
    ck_assert_uint_eq(seq2, seq);

    /* On a fresh namespace the heartbeat seeds the counter. */
    sc__remote *fresh = open_ns("hb2");
    redisContext *sub2 = subscribe("hb2:events");
    ck_assert_int_eq(sc__remote_heartbeat(fresh, err, sizeof err), SC_OK);
    msg = next_message(sub2, &mlen);
    ck_assert_int_eq(sc__remote_seq(fresh, &seq2, err, sizeof err), SC_OK);
    ck_assert_uint_gt(seq2, 1000000000000000ULL);
    check_mp_event(msg, mlen, "heartbeat", "", seq2, NULL, 0, 0);
    free(msg);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS hb2:log"), 0);

    redisFree(sub);
    redisFree(sub2);
    sc__remote_close(r);
    sc__remote_close(fresh);
}
END_TEST

START_TEST(test_delete)
{
    sc__remote *r = open_ns("del");
    char err[256];
    uint64_t v1 = set_str(r, "k", "v", 0), v2, v3;
    ck_assert_int_eq(sc__remote_delete(r, "k", 1, &v2, err, sizeof err), SC_OK);
    ck_assert_uint_gt(v2, v1);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS del:k:k"), 0);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_NOT_FOUND);
    /* Deleting a missing key still succeeds and takes a version. */
    ck_assert_int_eq(sc__remote_delete(r, "k", 1, &v3, err, sizeof err), SC_OK);
    ck_assert_uint_gt(v3, v2);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_clear_only_own_namespace)
{
    sc__remote *a = open_ns("cl");
    sc__remote *b = open_ns("cl2");
    char err[256];
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        set_str(a, k, "a", 0);
        set_str(b, k, "b", 0);
    }
    /* Plain keys of the namespace that are not values survive too. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET cl:other x"), 0);
    uint64_t seq_before;
    ck_assert_int_eq(sc__remote_seq(a, &seq_before, err, sizeof err), SC_OK);
    uint64_t v;
    ck_assert_int_eq(sc__remote_clear(a, &v, err, sizeof err), SC_OK);
    ck_assert_uint_eq(v, seq_before + 1);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(a, "k3", 2, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS cl:k:k0 cl:k:k19"), 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS cl2:k:k0 cl2:k:k19"), 2);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS cl:seq cl:log cl:other"), 3);
    ck_assert_int_eq(raw_int(&g_redis, "XLEN cl:log"), 21);
    sc__remote_close(a);
    sc__remote_close(b);
}
END_TEST

START_TEST(test_clear_escapes_glob_characters)
{
    sc__remote *glob = open_ns("a*b");
    sc__remote *lit = open_ns("axxb");
    sc__remote *q = open_ns("a?[x]\\b");
    sc__remote *q2 = open_ns("ay[x]\\b");
    char err[256];
    set_str(glob, "k", "1", 0);
    set_str(lit, "k", "2", 0);
    set_str(q, "k", "3", 0);
    set_str(q2, "k", "4", 0);
    uint64_t v;
    ck_assert_int_eq(sc__remote_clear(glob, &v, err, sizeof err), SC_OK);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS a*b:k:k"), 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS axxb:k:k"), 1);
    ck_assert_int_eq(sc__remote_clear(q, &v, err, sizeof err), SC_OK);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS %s", "a?[x]\\b:k:k"), 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS %s", "ay[x]\\b:k:k"), 1);
    sc__remote_close(glob);
    sc__remote_close(lit);
    sc__remote_close(q);
    sc__remote_close(q2);
}
END_TEST

START_TEST(test_clear_large_in_batches)
{
    sc__remote *r = open_ns("big");
    char err[256];
    long long dbsize0 = raw_int(&g_redis, "DBSIZE");
    /* Filled from a script in a few steps, on a connection patient enough
     * for a slow (sanitized, loaded) machine. */
    redisContext *filler = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(filler);
    struct timeval patient = {60, 0};
    redisSetTimeout(filler, patient);
    for (int from = 1; from <= 200000; from += 50000) {
        redisReply *rep = redisCommand(filler, "EVAL %s 0 %d",
                                       "for i = ARGV[1], ARGV[1] + 49999 do "
                                       "redis.call('HSET', 'big:k:' .. i, 'value', 'x', 'version', '1') end "
                                       "return 1",
                                       from);
        ck_assert_ptr_nonnull(rep);
        ck_assert_int_eq(rep->type, REDIS_REPLY_INTEGER);
        freeReplyObject(rep);
    }
    redisFree(filler);
    ck_assert_int_eq(raw_int(&g_redis, "DBSIZE"), dbsize0 + 200000);

    long long unlink0 = cmd_calls(&g_redis, "unlink"), scan0 = cmd_calls(&g_redis, "scan");
    long long keys0 = cmd_calls(&g_redis, "keys"), flushdb0 = cmd_calls(&g_redis, "flushdb");
    long long flushall0 = cmd_calls(&g_redis, "flushall"), del0 = cmd_calls(&g_redis, "del");
    uint64_t v;
    ck_assert_int_eq(sc__remote_clear(r, &v, err, sizeof err), SC_OK);
    /* Only the counter and the log are left of the namespace. */
    ck_assert_int_eq(raw_int(&g_redis, "DBSIZE"), dbsize0 + 2);
    long long unlinks = cmd_calls(&g_redis, "unlink") - unlink0;
    ck_assert_int_ge(unlinks, 150); /* about 200000 / 1000 */
    ck_assert_int_ge(cmd_calls(&g_redis, "scan") - scan0, unlinks);
    ck_assert_int_eq(cmd_calls(&g_redis, "keys"), keys0);
    ck_assert_int_eq(cmd_calls(&g_redis, "flushdb"), flushdb0);
    ck_assert_int_eq(cmd_calls(&g_redis, "flushall"), flushall0);
    ck_assert_int_eq(cmd_calls(&g_redis, "del"), del0);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_noscript_falls_back_to_eval)
{
    sc__remote *r = open_ns("nos");
    char err[256];
    set_str(r, "k", "before", 0);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SCRIPT FLUSH"), 0);
    long long eval0 = cmd_calls(&g_redis, "eval");
    set_str(r, "k", "after", 0);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "after");
    free(it.data);
    ck_assert_int_ge(cmd_calls(&g_redis, "eval") - eval0, 2);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_versions_grow_across_restart)
{
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    sc__remote_config c = config_for(&own, "rs");
    sc__remote *r = open_cfg(&c);
    uint64_t before = 0;
    for (int i = 0; i < 100; i++)
        before = set_str(r, "k", "v", 0);
    ck_assert_int_eq(sc_test_redis_restart(&own), 0);
    /* The pooled connection is dead; the call reconnects and retries. */
    uint64_t after = set_str(r, "k", "v2", 0);
    ck_assert_uint_gt(after, before);
    char err[256];
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "v2");
    free(it.data);
    sc__remote_close(r);
    sc_test_redis_stop(&own);
}
END_TEST

START_TEST(test_seed_stays_ahead_of_surviving_log)
{
    sc__remote *r = open_ns("sd");
    uint64_t v1 = set_str(r, "k", "v", 0);
    /* The counter is lost but the log survived with a later id (say, a
     * clock that went back): XADD would reject anything below it. */
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64 "-0", v1 + UINT64_C(1000000000));
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "XADD sd:log %s e x", id), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "DEL sd:seq"), 0);
    uint64_t v2 = set_str(r, "k", "v", 0);
    ck_assert_uint_gt(v2, v1 + UINT64_C(1000000000));
    sc__remote_close(r);
}
END_TEST

START_TEST(test_wrong_type_leaves_no_hole)
{
    sc__remote *r = open_ns("wt");
    char err[256] = "";
    uint64_t v1 = set_str(r, "ok", "v", 0), v;
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET wt:k:bad plain"), 0);
    ck_assert_int_eq(sc__remote_set(r, "bad", 3, "v", 1, NULL, 0, SC__REMOTE_EV_SET, &v, err, sizeof err),
                     SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "WRONGTYPE") != NULL, "%s", err);
    uint64_t seq;
    ck_assert_int_eq(sc__remote_seq(r, &seq, err, sizeof err), SC_OK);
    ck_assert_uint_eq(seq, v1);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "bad", 3, &it, err, sizeof err), SC_ERR_REMOTE);
    /* A hash without a version is not ours either. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET wt:k:nover value x"), 0);
    ck_assert_int_eq(sc__remote_get(r, "nover", 5, &it, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "version") != NULL, "%s", err);
    sc__remote_close(r);
}
END_TEST

typedef struct walk {
    uint64_t seqs[3000];
    size_t n;
    size_t stop_after;
    int bad_event;
} walk;

static int collect(uint64_t seq, const char *event, size_t len, void *ud)
{
    walk *w = ud;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, event, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        mp_uint(&u.data, "version") != seq)
        w->bad_event = 1;
    msgpack_unpacked_destroy(&u);
    w->seqs[w->n++] = seq;
    return w->stop_after && w->n == w->stop_after;
}

START_TEST(test_log_range)
{
    sc__remote *r = open_ns("lr");
    char err[256];
    static uint64_t v[2500];
    for (int i = 0; i < 2500; i++)
        v[i] = set_str(r, "k", "v", 0);
    static walk w;
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(sc__remote_log_range(r, v[10], v[2400], collect, &w, err, sizeof err), SC_OK);
    ck_assert_int_eq(w.bad_event, 0);
    ck_assert_uint_eq(w.n, 2390);
    for (size_t i = 0; i < w.n; i++)
        ck_assert_uint_eq(w.seqs[i], v[11 + i]);

    memset(&w, 0, sizeof w);
    w.stop_after = 5;
    ck_assert_int_eq(sc__remote_log_range(r, v[0], v[2499], collect, &w, err, sizeof err), SC_OK);
    ck_assert_uint_eq(w.n, 5);
    ck_assert_uint_eq(w.seqs[4], v[5]);

    memset(&w, 0, sizeof w);
    ck_assert_int_eq(sc__remote_log_range(r, v[100], v[100], collect, &w, err, sizeof err), SC_OK);
    ck_assert_int_eq(sc__remote_log_range(r, v[2499], UINT64_MAX, collect, &w, err, sizeof err), SC_OK);
    ck_assert_int_eq(sc__remote_log_range(r, UINT64_MAX, UINT64_MAX, collect, &w, err, sizeof err), SC_OK);
    ck_assert_uint_eq(w.n, 0);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_log_capped_and_disabled)
{
    sc__remote_config c = config_for(&g_redis, "cap");
    c.log_len = 100;
    sc__remote *r = open_cfg(&c);
    for (int i = 0; i < 1000; i++)
        set_str(r, "k", "v", 0);
    long long xlen = raw_int(&g_redis, "XLEN cap:log");
    ck_assert_int_ge(xlen, 100);
    ck_assert_int_lt(xlen, 1000);
    sc__remote_close(r);

    c = config_for(&g_redis, "nolog");
    c.log_len = 0;
    r = open_cfg(&c);
    redisContext *sub = subscribe("nolog:events");
    uint64_t v = set_str(r, "k", "v", 0);
    size_t mlen;
    char *msg = next_message(sub, &mlen);
    check_mp_event(msg, mlen, "set", "k", v, "v", 1, 0);
    free(msg);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS nolog:log"), 0);
    redisFree(sub);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_custom_channel)
{
    sc__remote_config c = config_for(&g_redis, "ch");
    c.channel = "my-channel";
    sc__remote *r = open_cfg(&c);
    redisContext *sub = subscribe("my-channel");
    uint64_t v = set_str(r, "k", "v", 0);
    size_t mlen;
    char *msg = next_message(sub, &mlen);
    check_mp_event(msg, mlen, "set", "k", v, "v", 1, 0);
    free(msg);
    redisFree(sub);
    sc__remote_close(r);
}
END_TEST

typedef struct hammer {
    sc__remote *r;
    int id;
    int failures;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    char err[256], key[32], val[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "t%d-%d", h->id, i % 10);
        snprintf(val, sizeof val, "%d", i);
        uint64_t v;
        if (sc__remote_set(h->r, key, strlen(key), val, strlen(val), NULL, 0, SC__REMOTE_EV_SET, &v, err,
                           sizeof err) != SC_OK)
            h->failures++;
        sc__remote_item it;
        if (sc__remote_get(h->r, key, strlen(key), &it, err, sizeof err) != SC_OK || strcmp(it.data, val) != 0 ||
            it.version != v)
            h->failures++;
        else
            free(it.data);
    }
    return NULL;
}

START_TEST(test_pool_many_threads)
{
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    sc__remote_config c = config_for(&own, "pool");
    c.pool_size = 2;
    sc__remote *r = open_cfg(&c);
    pthread_t th[8];
    hammer h[8];
    for (int i = 0; i < 8; i++) {
        h[i] = (hammer){r, i, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(h[i].failures, 0);
    }
    /* The pool never opened more than pool_size connections (plus ours). */
    redisReply *rep = raw(&own, "INFO stats");
    const char *p = strstr(rep->str, "total_connections_received:");
    ck_assert_ptr_nonnull(p);
    long conns = strtol(p + strlen("total_connections_received:"), NULL, 10);
    freeReplyObject(rep);
    ck_assert_int_le(conns, 2 + 2); /* pool + the harness' PING + this INFO */
    sc__remote_close(r);
    sc_test_redis_stop(&own);
}
END_TEST

typedef struct timed_get {
    sc__remote *r;
    sc_status st;
    int64_t ms;
    char err[256];
} timed_get;

static void *timed_get_main(void *arg)
{
    timed_get *t = arg;
    sc__remote_item it;
    int64_t t0 = mono_ms();
    t->st = sc__remote_get(t->r, "k", 1, &it, t->err, sizeof t->err);
    t->ms = mono_ms() - t0;
    if (t->st == SC_OK)
        free(it.data);
    return NULL;
}

START_TEST(test_timeout_on_stopped_redis)
{
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    sc__remote_config c = config_for(&own, "to");
    c.timeout_ms = 300;
    c.pool_size = 1;
    sc__remote *r = open_cfg(&c);
    set_str(r, "k", "v", 0);

    kill(own.pid, SIGSTOP);
    /* One caller holds the only connection, two wait for it: all three give
     * up after about timeout_ms, none hangs. */
    timed_get t[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].r = r;
        ck_assert_int_eq(pthread_create(&th[i], NULL, timed_get_main, &t[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    /* A fresh connection to the stopped server (the old one was dropped). */
    timed_get again = {.r = r};
    timed_get_main(&again);
    kill(own.pid, SIGCONT);

    for (int i = 0; i < 3; i++) {
        ck_assert_msg(t[i].st == SC_ERR_TIMEOUT, "status %d: %s", t[i].st, t[i].err);
        ck_assert_msg(strstr(t[i].err, "timeout") != NULL, "%s", t[i].err);
        ck_assert_int_le(t[i].ms, 300 + 400);
    }
    ck_assert_msg(again.st == SC_ERR_TIMEOUT, "status %d: %s", again.st, again.err);
    ck_assert_int_ge(again.ms, 250);
    ck_assert_int_le(again.ms, 300 + 400);

    /* The pool recovers once Redis runs again. */
    char err[256];
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "v");
    free(it.data);
    set_str(r, "k", "v2", 0);
    sc__remote_close(r);
    sc_test_redis_stop(&own);
}
END_TEST

START_TEST(test_timeout_on_client_pause)
{
    sc__remote_config c = config_for(&g_redis, "pause");
    c.timeout_ms = 300;
    sc__remote *r = open_cfg(&c);
    set_str(r, "k", "v", 0);
    /* The pause covers every client, an UNPAUSE included: let it run out. */
    int64_t paused_at = mono_ms();
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "CLIENT PAUSE 1500 ALL"), 0);
    timed_get t = {.r = r};
    timed_get_main(&t);
    char err[256];
    uint64_t v;
    int64_t t0 = mono_ms();
    sc_status st = sc__remote_set(r, "k", 1, "v2", 2, NULL, 0, SC__REMOTE_EV_SET, &v, err, sizeof err);
    int64_t set_ms = mono_ms() - t0;
    while (mono_ms() - paused_at < 1700) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(t.st == SC_ERR_TIMEOUT, "%d %s", t.st, t.err);
    ck_assert_int_le(t.ms, 300 + 400);
    ck_assert_int_eq(st, SC_ERR_TIMEOUT);
    ck_assert_int_le(set_ms, 300 + 400);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    free(it.data);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_redis_down)
{
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    sc__remote_config c = config_for(&own, "down");
    sc__remote *r = open_cfg(&c);
    sc_test_redis_kill(&own);

    /* A large write to the dead connection meets EPIPE: it must fail, not
     * kill the process with SIGPIPE. */
    char err[256] = "";
    size_t big = 8u << 20;
    char *val = calloc(1, big);
    uint64_t v;
    ck_assert_int_eq(sc__remote_set(r, "k", 1, val, big, NULL, 0, SC__REMOTE_EV_SET, &v, err, sizeof err),
                     SC_ERR_REMOTE);
    free(val);
    ck_assert_msg(strstr(err, "127.0.0.1:") != NULL, "%s", err);

    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "refused") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "127.0.0.1:") != NULL, "%s", err);
    sc__remote_close(r);

    sc__remote *none = NULL;
    err[0] = '\0';
    ck_assert_int_eq(sc__remote_open(&c, &none, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_ptr_null(none);
    ck_assert_msg(strstr(err, "refused") != NULL, "%s", err);

    /* It comes back: a new open and the pool work again. */
    ck_assert_int_eq(sc_test_redis_start_again(&own), 0);
    r = open_cfg(&c);
    set_str(r, "k", "v", 0);
    sc__remote_close(r);
    sc_test_redis_stop(&own);
}
END_TEST

START_TEST(test_auth)
{
    sc_test_redis own;
    /* The harness waits for an unauthenticated PING, so the credentials are
     * set once the server runs. */
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&own, "ACL SETUSER alice on >pw ~* &* +@all"), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&own, "CONFIG SET requirepass secret"), 0);
    sc__remote_config c = config_for(&own, "auth");
    char err[256] = "";
    sc__remote *r = NULL;

    ck_assert_int_eq(sc__remote_open(&c, &r, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "NOAUTH") != NULL, "%s", err);

    c.password = "wrong";
    ck_assert_int_eq(sc__remote_open(&c, &r, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "AUTH failed") && strstr(err, "WRONGPASS"), "%s", err);

    c.password = "secret";
    r = open_cfg(&c);
    set_str(r, "k", "default-user", 0);
    sc__remote_close(r);

    c.username = "alice";
    c.password = "secret";
    ck_assert_int_eq(sc__remote_open(&c, &r, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "WRONGPASS"), "%s", err);

    c.password = "pw";
    r = open_cfg(&c);
    set_str(r, "k", "alice", 0);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "alice");
    free(it.data);
    sc__remote_close(r);
    sc_test_redis_stop(&own);
}
END_TEST

START_TEST(test_unix_socket)
{
    sc__remote_config c = config_for(&g_redis, "unix");
    /* No TCP route exists: only the socket can work. */
    c.host = "203.0.113.1";
    c.port = 1;
    c.unix_socket = g_redis.sock;
    sc__remote *r = open_cfg(&c);
    set_str(r, "k", "via socket", 0);
    redisReply *rep = raw(&g_redis, "HGET unix:k:k value");
    ck_assert_str_eq(rep->str, "via socket");
    freeReplyObject(rep);

    c.unix_socket = "/nonexistent/redis.sock";
    char err[256] = "";
    sc__remote *bad = NULL;
    ck_assert_int_eq(sc__remote_open(&c, &bad, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "/nonexistent/redis.sock") != NULL, "%s", err);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_select_db)
{
    sc__remote_config c = config_for(&g_redis, "db3");
    c.db = 3;
    sc__remote *r = open_cfg(&c);
    set_str(r, "k", "in three", 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS db3:k:k"), 0);
    redisContext *raw3 = sc_test_redis_connect(&g_redis);
    redisReply *rep = redisCommand(raw3, "SELECT 3");
    freeReplyObject(rep);
    rep = redisCommand(raw3, "HGET db3:k:k value");
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(rep->str, "in three");
    freeReplyObject(rep);
    redisFree(raw3);
    char err[256];
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    free(it.data);
    sc__remote_close(r);
}
END_TEST

START_TEST(test_invalid_config)
{
    sc__remote_config c = config_for(&g_redis, "inv");
    sc__remote *r = NULL;
    char err[256] = "";
    c.pool_size = 0;
    ck_assert_int_eq(sc__remote_open(&c, &r, err, sizeof err), SC_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_assert_str_ne(err, "");
    c = config_for(&g_redis, "");
    ck_assert_int_eq(sc__remote_open(&c, &r, err, sizeof err), SC_ERR_INVALID);
    c = config_for(&g_redis, "inv");
    c.timeout_ms = 0;
    ck_assert_int_eq(sc__remote_open(&c, &r, err, sizeof err), SC_ERR_INVALID);
    sc__remote_close(NULL);
}
END_TEST

static Suite *remote_suite(void)
{
    Suite *s = suite_create("remote");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roundtrip_binary_and_empty);
    tcase_add_test(tc, test_versions_increase_from_time);
    tcase_add_test(tc, test_plain_commands_read_the_hash);
    tcase_add_test(tc, test_ttl_and_persist);
    tcase_add_test(tc, test_msgpack_events_match_log);
    tcase_add_test(tc, test_json_events);
    tcase_add_test(tc, test_heartbeat);
    tcase_add_test(tc, test_delete);
    tcase_add_test(tc, test_clear_only_own_namespace);
    tcase_add_test(tc, test_clear_escapes_glob_characters);
    tcase_add_test(tc, test_clear_large_in_batches);
    tcase_add_test(tc, test_noscript_falls_back_to_eval);
    tcase_add_test(tc, test_versions_grow_across_restart);
    tcase_add_test(tc, test_seed_stays_ahead_of_surviving_log);
    tcase_add_test(tc, test_wrong_type_leaves_no_hole);
    tcase_add_test(tc, test_log_range);
    tcase_add_test(tc, test_log_capped_and_disabled);
    tcase_add_test(tc, test_custom_channel);
    tcase_add_test(tc, test_pool_many_threads);
    tcase_add_test(tc, test_timeout_on_stopped_redis);
    tcase_add_test(tc, test_timeout_on_client_pause);
    tcase_add_test(tc, test_redis_down);
    tcase_add_test(tc, test_auth);
    tcase_add_test(tc, test_unix_socket);
    tcase_add_test(tc, test_select_db);
    tcase_add_test(tc, test_invalid_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (sc_test_redis_start(&g_redis, NULL) != 0)
        return 1;
    SRunner *sr = srunner_create(remote_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    sc_test_redis_stop(&g_redis);
    return failed == 0 ? 0 : 1;
}
