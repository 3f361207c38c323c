/* Tests of remote/ (pool, Lua scripts, key layout; docs/protocol.md) against
 * a real redis-server. One private server is started in main() and shared by
 * the tests, each of which uses its own namespace; tests that stop, kill,
 * pause or reconfigure Redis (ACL users, maxmemory) start a server of their
 * own. Events are built the way lib/ builds them (sc__event_encode_template)
 * and checked on the way out twice: with plain msgpack-c and cJSON, so a
 * fault in sync/'s codec cannot hide a fault in the scripts, and with
 * sc__event_decode, so what a pod reads is what was meant.
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
#include "sync/sync.h"

#define POD "pod-test"
#define INST "a1b2c3d4e5f60718"

static sc_test_redis g_redis;

/* The namespace and wire format of each open sc__remote, so the helpers can
 * build its events the way lib/ does (remote/ does not say which namespace
 * it serves). Tests run forked, one at a time: a plain table will do. */
typedef struct opened {
    sc__remote *r;
    char ns[320];
    sc_wire_format fmt;
} opened;
static opened g_open[16];

static const opened *lookup(const sc__remote *r)
{
    for (size_t i = 0; i < sizeof g_open / sizeof g_open[0]; i++)
        if (g_open[i].r == r)
            return &g_open[i];
    ck_abort_msg("remote %p was not opened by open_cfg", (const void *)r);
    return NULL;
}

static sc__remote_config config_for(const sc_test_redis *r, const char *ns)
{
    sc__remote_config c;
    memset(&c, 0, sizeof c);
    c.host = "127.0.0.1";
    c.port = r->port;
    c.timeout_ms = 1000;
    c.pool_size = 2;
    c.ns = ns;
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
    for (size_t i = 0; i < sizeof g_open / sizeof g_open[0]; i++)
        if (!g_open[i].r || g_open[i].r == r) {
            g_open[i].r = r;
            snprintf(g_open[i].ns, sizeof g_open[i].ns, "%s", c->ns);
            g_open[i].fmt = c->wire_format;
            return r;
        }
    ck_abort_msg("too many open remotes");
    return NULL;
}

static sc__remote *open_ns(const char *ns)
{
    sc__remote_config c = config_for(&g_redis, ns);
    return open_cfg(&c);
}

static void close_remote(sc__remote *r)
{
    for (size_t i = 0; i < sizeof g_open / sizeof g_open[0]; i++)
        if (g_open[i].r == r)
            g_open[i].r = NULL;
    sc__remote_close(r);
}

/* The event template of one write (as lib/events.c's sc__own_event builds
 * it); free with free_event. */
static sc__remote_event make_event(const sc__remote *r, sc__action action, const char *key, size_t klen,
                                   const void *val, size_t len, uint64_t ttl_ms)
{
    const opened *o = lookup(r);
    sc__event ev;
    memset(&ev, 0, sizeof ev);
    ev.action = action;
    ev.key = key ? key : "";
    ev.key_len = key ? klen : 0;
    ev.sender = POD;
    ev.sender_len = strlen(POD);
    ev.has_ns = 1;
    ev.ns = o->ns;
    ev.ns_len = strlen(o->ns);
    ev.inst = INST;
    ev.inst_len = strlen(INST);
    ev.has_value = action == SC__ACT_SET;
    ev.value = ev.has_value ? (val ? val : "") : NULL;
    ev.value_len = ev.has_value ? len : 0;
    ev.ttl_ms = ttl_ms;
    sc__event_template t;
    ck_assert_int_eq(sc__event_encode_template(&ev, o->fmt, NULL, 0, &t), SC_OK);
    sc__remote_event e;
    e.buf = t.buf;
    e.len = t.len;
    memcpy(e.cut, t.cut, sizeof e.cut);
    return e;
}

static void free_event(sc__remote_event *e)
{
    free((char *)e->buf);
    e->buf = NULL;
}

/* sc__remote_set with the event of action (SC__ACT_SET or
 * SC__ACT_INVALIDATE). */
static sc_status do_set(sc__remote *r, const char *key, size_t klen, const void *val, size_t len, uint64_t ttl,
                        sc__action action, sc__remote_result *res, char *err, size_t errlen)
{
    sc__remote_event ev = make_event(r, action, key, klen, val, len, ttl);
    sc_status st = sc__remote_set(r, key, klen, val, len, ttl, &ev, res, err, errlen);
    free_event(&ev);
    return st;
}

static sc_status do_delete(sc__remote *r, const char *key, size_t klen, uint64_t tomb_ms, sc__remote_result *res,
                           char *err, size_t errlen)
{
    sc__remote_event ev = make_event(r, SC__ACT_DELETE, key, klen, NULL, 0, 0);
    sc_status st = sc__remote_delete(r, key, klen, tomb_ms, &ev, res, err, errlen);
    free_event(&ev);
    return st;
}

static sc_status do_clear(sc__remote *r, sc__remote_result *res, char *err, size_t errlen)
{
    sc__remote_event ev = make_event(r, SC__ACT_CLEAR, NULL, 0, NULL, 0, 0);
    sc_status st = sc__remote_clear(r, &ev, res, err, errlen);
    free_event(&ev);
    return st;
}

static sc_status do_heartbeat(sc__remote *r, sc__remote_state *st, char *err, size_t errlen)
{
    sc__remote_event ev = make_event(r, SC__ACT_HEARTBEAT, NULL, 0, NULL, 0, 0);
    sc_status s = sc__remote_heartbeat(r, &ev, NULL, 0, st, err, errlen);
    free_event(&ev);
    return s;
}

/* A write that must succeed and publish: its version. */
static uint64_t set_str(sc__remote *r, const char *key, const char *val, uint64_t ttl)
{
    sc__remote_result res;
    char err[256] = "";
    sc_status st = do_set(r, key, strlen(key), val, strlen(val), ttl, SC__ACT_SET, &res, err, sizeof err);
    ck_assert_msg(st == SC_OK, "set %s: %d %s", key, st, err);
    ck_assert_msg(res.published == 1, "set %s not published: %s", key, res.publish_error);
    ck_assert_uint_gt(res.version, 0);
    return res.version;
}

static uint64_t delete_key(sc__remote *r, const char *key, uint64_t tomb_ms)
{
    sc__remote_result res;
    char err[256] = "";
    sc_status st = do_delete(r, key, strlen(key), tomb_ms, &res, err, sizeof err);
    ck_assert_msg(st == SC_OK, "delete %s: %d %s", key, st, err);
    ck_assert_msg(res.published == 1, "delete %s not published: %s", key, res.publish_error);
    return res.version;
}

static uint64_t clear_ns(sc__remote *r)
{
    sc__remote_result res;
    char err[256] = "";
    sc_status st = do_clear(r, &res, err, sizeof err);
    ck_assert_msg(st == SC_OK, "clear: %d %s", st, err);
    ck_assert_msg(res.published == 1, "clear not published: %s", res.publish_error);
    return res.version;
}

/* sync_state with nothing asked of the log; event_at is freed. */
static sc__remote_state state_of(sc__remote *r)
{
    sc__remote_state st;
    char err[256] = "";
    sc_status s = sc__remote_sync_state(r, 0, &st, err, sizeof err);
    ck_assert_msg(s == SC_OK, "sync_state: %d %s", s, err);
    free(st.event_at);
    st.event_at = NULL;
    st.event_at_len = 0;
    return st;
}

static uint64_t counter_of(sc__remote *r)
{
    return state_of(r).counter;
}

/* A write's result: it took the namespace's latest version and published
 * its event without an error. A macro, so a failure names the test's line. */
#define ASSERT_PUBLISHED_AT_COUNTER(r, res)                                                                            \
    do {                                                                                                               \
        ck_assert_uint_eq((res).version, counter_of(r));                                                               \
        ck_assert_int_eq((res).published, 1);                                                                          \
        ck_assert_str_eq((res).publish_error, "");                                                                     \
    } while (0)

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

/* One command on a raw connection to r (its own, so the remote under test
 * is not involved); the reply, asserted present, which the caller frees. */
static redisReply *raw_v(const sc_test_redis *r, const char *fmt, va_list ap)
{
    redisContext *c = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(c);
    redisReply *rep = redisvCommand(c, fmt, ap);
    redisFree(c);
    ck_assert_ptr_nonnull(rep);
    return rep;
}

static redisReply *raw(const sc_test_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = raw_v(r, fmt, ap);
    va_end(ap);
    return rep;
}

static long long raw_int(const sc_test_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = raw_v(r, fmt, ap);
    va_end(ap);
    ck_assert_msg(rep->type == REDIS_REPLY_INTEGER, "reply type %d: %s", rep->type,
                  rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    long long n = rep->integer;
    freeReplyObject(rep);
    return n;
}

/* A bulk-string reply as a malloc'd string, NULL for nil. */
static char *raw_str(const sc_test_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = raw_v(r, fmt, ap);
    va_end(ap);
    ck_assert_msg(rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_NIL, "reply type %d: %s", rep->type,
                  rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    char *s = NULL;
    if (rep->type == REDIS_REPLY_STRING) {
        s = malloc(rep->len + 1);
        memcpy(s, rep->str, rep->len);
        s[rep->len] = '\0';
    }
    freeReplyObject(rep);
    return s;
}

static uint64_t raw_u64(const sc_test_redis *r, const char *fmt, const char *arg)
{
    char *s = raw_str(r, fmt, arg);
    ck_assert_msg(s != NULL, "%s %s: nil", fmt, arg);
    uint64_t v = strtoull(s, NULL, 10);
    free(s);
    return v;
}

/* The epoch in {ns}:meta (static buffer). */
static const char *meta_epoch(const sc_test_redis *r, const char *ns)
{
    static char e[64];
    char *s = raw_str(r, "HGET {%s}:meta epoch", ns);
    ck_assert_ptr_nonnull(s);
    snprintf(e, sizeof e, "%s", s);
    free(s);
    return e;
}

static int is_epoch(const char *e)
{
    if (strlen(e) != 16)
        return 0;
    for (const char *c = e; *c; c++)
        if (!strchr("0123456789abcdef", *c))
            return 0;
    return 1;
}

/* How many keys of namespace ns ({ns}:*) the shared server holds (by SCAN;
 * ns must hold no glob character). */
static long long ns_keys(const char *ns)
{
    redisContext *c = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(c);
    char cursor[32] = "0", match[300];
    snprintf(match, sizeof match, "{%s}:*", ns);
    long long n = 0;
    do {
        redisReply *rep = redisCommand(c, "SCAN %s MATCH %s COUNT 10000", cursor, match);
        ck_assert_ptr_nonnull(rep);
        ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        n += (long long)rep->element[1]->elements;
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
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

/* A raw hiredis subscription (1 s read timeout). */
static redisContext *subscribe_on(const sc_test_redis *r, const char *channel)
{
    redisContext *c = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(c);
    redisReply *rep = redisCommand(c, "SUBSCRIBE %s", channel);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    freeReplyObject(rep);
    return c;
}

static redisContext *subscribe(const char *channel)
{
    return subscribe_on(&g_redis, channel);
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

/* The event stored in the log of ns under "<seq>-0" (malloc'd). */
static char *log_entry_on(const sc_test_redis *r, const char *ns, uint64_t seq, size_t *len)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64 "-0", seq);
    redisReply *rep = raw(r, "XRANGE {%s}:log %s %s", ns, id, id);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    ck_assert_msg(rep->elements == 1, "no log entry %s in {%s}:log", id, ns);
    redisReply *fields = rep->element[0]->element[1];
    ck_assert_uint_eq(fields->elements, 2);
    ck_assert_str_eq(fields->element[0]->str, "e");
    char *m = malloc(fields->element[1]->len + 1);
    memcpy(m, fields->element[1]->str, fields->element[1]->len);
    m[fields->element[1]->len] = '\0';
    *len = fields->element[1]->len;
    freeReplyObject(rep);
    return m;
}

static char *log_entry(const char *ns, uint64_t seq, size_t *len)
{
    return log_entry_on(&g_redis, ns, seq, len);
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
    ck_assert_msg(o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN, "field %s is not a string", name);
    ck_assert_uint_eq(o->via.str.size, len);
    ck_assert_msg(memcmp(o->via.str.ptr, want, len) == 0, "field %s differs", name);
}

/* Checks a msgpack event: exactly one map, the listed fields, no others.
 * epoch NULL: any 16 hex characters. */
static void check_mp_event(const char *buf, size_t len, const char *action, const char *ns, const char *key,
                           uint64_t version, const void *value, size_t vlen, uint64_t ttl, const char *epoch)
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
    mp_assert_str(m, "ns", ns, strlen(ns));
    mp_assert_str(m, "key", key, strlen(key));
    mp_assert_str(m, "sender", POD, strlen(POD));
    mp_assert_str(m, "inst", INST, strlen(INST));
    ck_assert_uint_eq(mp_uint(m, "version"), version);
    ck_assert_uint_eq(mp_uint(m, "ttl"), ttl);
    int64_t t = (int64_t)mp_uint(m, "time");
    ck_assert_int_lt(llabs(t - now_ms_wall()), 10000);
    const msgpack_object *e = mp_get(m, "epoch");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(e->via.str.size, 16);
    char got[17];
    memcpy(got, e->via.str.ptr, 16);
    got[16] = '\0';
    ck_assert_msg(is_epoch(got), "epoch %s", got);
    if (epoch)
        ck_assert_str_eq(got, epoch);
    /* Signed: the last field is the 40-digit code (sync/event.c checks it). */
    const msgpack_object *mac = mp_get(m, "mac");
    ck_assert_ptr_nonnull(mac);
    ck_assert_int_eq(mac->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(mac->via.str.size, 40);
    if (value) {
        mp_assert_str(m, "value", value, vlen);
        ck_assert_uint_eq(m->via.map.size, 12);
    } else {
        ck_assert_ptr_null(mp_get(m, "value"));
        ck_assert_uint_eq(m->via.map.size, 11);
    }
    msgpack_unpacked_destroy(&u);
}

/* Decodes an event with sync/'s decoder (what every pod does) and checks the
 * fields a pod relies on. The caller frees ev. */
static void decode_event(const char *buf, size_t len, sc__event *ev, sc__action action, const char *ns, const char *key,
                         uint64_t version, const char *epoch)
{
    ck_assert_int_eq(sc__event_decode(buf, len, 0, ev), SC_OK);
    ck_assert_int_eq(ev->format, 1);
    ck_assert_int_eq(ev->action, action);
    ck_assert_int_eq(ev->has_ns, 1);
    ck_assert_str_eq(ev->ns, ns);
    ck_assert_uint_eq(ev->ns_len, strlen(ns));
    ck_assert_str_eq(ev->inst, INST);
    ck_assert_str_eq(ev->sender, POD);
    ck_assert_str_eq(ev->key, key);
    ck_assert_uint_eq(ev->version, version);
    ck_assert_uint_eq(ev->epoch_len, 16);
    if (epoch)
        ck_assert_str_eq(ev->epoch, epoch);
}

/* ---------------------------------------------------------------- tests -- */

/* The decimal numbers every script call sends, and the ones replies carry
 * back: both ways, the extremes, and what the parser refuses. */
START_TEST(test_decimal_numbers_both_ways)
{
    const uint64_t nums[] = {0, 9, 10, 99, 100, 1234567890123ull, (1ull << 53), UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char mine[21], want[32];
        snprintf(want, sizeof want, "%" PRIu64, nums[i]);
        ck_assert_ptr_eq(sc__remote_u64_str(nums[i], mine), mine);
        ck_assert_str_eq(mine, want);
        uint64_t back = 7;
        ck_assert_int_eq(sc__remote_parse_u64(mine, strlen(mine), &back), 0);
        ck_assert_uint_eq(back, nums[i]);
    }
    const char *bad[] = {
        "", "-1", "+1", " 1", "1 ", "1a", "18446744073709551616", "99999999999999999999", "000000000000000000001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t out = 7;
        ck_assert_msg(sc__remote_parse_u64(bad[i], strlen(bad[i]), &out) == -1, "\"%s\" parsed", bad[i]);
        ck_assert_uint_eq(out, 7);
    }
    /* Only len bytes are read: a number inside a longer reply. */
    uint64_t out = 0;
    ck_assert_int_eq(sc__remote_parse_u64("12345-0", 5, &out), 0);
    ck_assert_uint_eq(out, 12345);
}
END_TEST

START_TEST(test_roundtrip_binary_and_empty)
{
    sc__remote *r = open_ns("rt");
    char err[256];
    static const char bin[] = {'a', 0, 'b', 0, 0, 'c'};
    sc__remote_result r1, r2;
    ck_assert_int_eq(do_set(r, "bin", 3, bin, sizeof bin, 0, SC__ACT_SET, &r1, err, sizeof err), SC_OK);
    ck_assert_int_eq(do_set(r, "empty", 5, "", 0, 0, SC__ACT_SET, &r2, err, sizeof err), SC_OK);
    ck_assert_uint_eq(r2.version, r1.version + 1);

    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "bin", 3, &it, err, sizeof err), SC_OK);
    ck_assert_uint_eq(it.len, sizeof bin);
    ck_assert(memcmp(it.data, bin, sizeof bin) == 0);
    ck_assert_int_eq(it.data[it.len], '\0');
    ck_assert_uint_eq(it.version, r1.version);
    ck_assert_int_eq(it.pttl_ms, -1);
    ck_assert_uint_eq(it.known, r2.version);
    free(it.data);

    ck_assert_int_eq(sc__remote_get(r, "empty", 5, &it, err, sizeof err), SC_OK);
    ck_assert_uint_eq(it.len, 0);
    ck_assert_ptr_nonnull(it.data);
    ck_assert_int_eq(it.data[0], '\0');
    ck_assert_uint_eq(it.version, r2.version);
    free(it.data);

    ck_assert_int_eq(sc__remote_get(r, "missing", 7, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_ptr_null(it.data);
    ck_assert_uint_eq(it.known, r2.version);

    /* A key longer than the on-stack key buffer. */
    static char longkey[1000];
    memset(longkey, 'L', sizeof longkey - 1);
    uint64_t v = set_str(r, longkey, "long", 0);
    ck_assert_int_eq(sc__remote_get(r, longkey, strlen(longkey), &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "long");
    ck_assert_uint_eq(it.version, v);
    free(it.data);
    close_remote(r);
}
END_TEST

START_TEST(test_get_known_is_the_counter)
{
    sc__remote *r = open_ns("kn");
    sc__remote *other = open_ns("kn2");
    char err[256];
    sc__remote_item it;
    /* A namespace nobody wrote to: no counter yet, and the read seeds none. */
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_uint_eq(it.known, 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {kn}:seq"), 0);

    uint64_t v1 = set_str(r, "k", "v", 0);
    uint64_t v2 = set_str(r, "j", "w", 0);
    set_str(other, "k", "x", 0); /* another namespace's counter */
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_uint_eq(it.version, v1);
    ck_assert_uint_eq(it.known, v2);
    ck_assert_uint_eq(it.known, counter_of(r));
    free(it.data);
    ck_assert_int_eq(sc__remote_get(r, "nope", 4, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_uint_eq(it.known, v2);
    uint64_t v3 = delete_key(r, "j", 0);
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_uint_eq(it.known, v3);
    free(it.data);
    close_remote(r);
    close_remote(other);
}
END_TEST

START_TEST(test_versions_increase_from_time)
{
    sc__remote *r = open_ns("ver");
    int64_t now_us = now_ms_wall() * 1000;
    sc__remote_state st = state_of(r);
    uint64_t seq0 = st.counter;
    /* Seeded from Redis TIME in microseconds: close to the wall clock. */
    ck_assert_uint_gt(seq0, 1000000000000000ULL);
    ck_assert_int_lt(llabs((long long)seq0 - now_us), 60LL * 1000000);

    uint64_t prev = seq0;
    for (int i = 0; i < 100; i++) {
        uint64_t v;
        if (i % 10 == 9)
            v = delete_key(r, "k", i % 20 == 9 ? 1000 : 0);
        else if (i == 50)
            v = clear_ns(r);
        else
            v = set_str(r, "k", "x", 0);
        ck_assert_uint_eq(v, prev + 1);
        prev = v;
    }
    ck_assert_uint_eq(counter_of(r), prev);
    close_remote(r);
}
END_TEST

START_TEST(test_plain_commands_read_the_hash)
{
    sc__remote *r = open_ns("plain");
    uint64_t v = set_str(r, "user:1", "alice", 0);
    redisReply *rep = raw(&g_redis, "HGET {plain}:k:user:1 value");
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(rep->str, "alice");
    freeReplyObject(rep);
    rep = raw(&g_redis, "HGET {plain}:k:user:1 version");
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    char want[32];
    snprintf(want, sizeof want, "%" PRIu64, v);
    ck_assert_str_eq(rep->str, want); /* plain decimal, no exponent */
    freeReplyObject(rep);
    rep = raw(&g_redis, "GET {plain}:seq");
    ck_assert_str_eq(rep->str, want);
    freeReplyObject(rep);
    /* The whole namespace: value hash, counter, meta, log; nothing else. */
    rep = raw(&g_redis, "KEYS *plain*");
    ck_assert_uint_eq(rep->elements, 4);
    freeReplyObject(rep);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {plain}:k:user:1 {plain}:seq {plain}:meta {plain}:log"), 4);
    rep = raw(&g_redis, "TYPE {plain}:meta");
    ck_assert_str_eq(rep->str, "hash");
    freeReplyObject(rep);
    rep = raw(&g_redis, "TYPE {plain}:log");
    ck_assert_str_eq(rep->str, "stream");
    freeReplyObject(rep);
    ck_assert(is_epoch(meta_epoch(&g_redis, "plain")));
    close_remote(r);
}
END_TEST

/* The SHA-1 (hex) of s, as Redis computes it. */
static void redis_sha1(const char *s, char out[41])
{
    redisReply *rep = raw(&g_redis, "EVAL %s 0 %s", "return redis.sha1hex(ARGV[1])", s);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(rep->len, 40);
    memcpy(out, rep->str, 41);
    freeReplyObject(rep);
}

/* confirm.lua's verdicts (lib/tracking.c): the same version and bytes, a
 * later version (compared as decimal strings: at 2^64 - 1 against 2^64 - 2
 * a Lua number cannot tell them apart, and "10" sorts before "9" as text),
 * or anything else, including another client's bytes at that version, a
 * version that is not a number, and no hash at all. */
START_TEST(test_confirm_verdicts)
{
    sc__remote *r = open_ns("conf");
    ck_assert_int_eq(raw_int(&g_redis, "HSET {conf}:k:a version 10 value x"), 2);
    ck_assert_int_eq(raw_int(&g_redis, "HSET {conf}:k:big version 18446744073709551615 value x"), 2);
    ck_assert_int_eq(raw_int(&g_redis, "HSET {conf}:k:odd version 9e9 value x"), 2);
    char x[41], y[41];
    redis_sha1("x", x);
    redis_sha1("y", y);
    const struct {
        const char *key;
        uint64_t version;
        const char *sha1;
        int want;
    } cases[] = {
        {"a", 10, x, SC__CONFIRM_SAME},
        {"a", 9, x, SC__CONFIRM_LATER},
        {"a", 2, y, SC__CONFIRM_LATER},
        {"a", 10, y, SC__CONFIRM_CHANGED},
        {"a", 11, x, SC__CONFIRM_CHANGED},
        {"a", 100, x, SC__CONFIRM_CHANGED},
        {"big", UINT64_MAX, x, SC__CONFIRM_SAME},
        {"big", UINT64_MAX - 1, x, SC__CONFIRM_LATER},
        {"odd", 5, x, SC__CONFIRM_CHANGED},
        {"gone", 1, x, SC__CONFIRM_CHANGED},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    const char *keys[N];
    size_t lens[N];
    uint64_t versions[N];
    char sha1[N][41];
    int verdict[N];
    for (size_t i = 0; i < N; i++) {
        keys[i] = cases[i].key;
        lens[i] = strlen(cases[i].key);
        versions[i] = cases[i].version;
        memcpy(sha1[i], cases[i].sha1, 41);
        verdict[i] = -1;
    }
    char err[256] = "";
    ck_assert_int_eq(
        sc__remote_confirm(r, keys, lens, versions, (const char(*)[41])sha1, N, verdict, NULL, NULL, err, sizeof err),
        SC_OK);
    for (size_t i = 0; i < N; i++)
        ck_assert_msg(verdict[i] == cases[i].want, "%s at %" PRIu64 ": verdict %d, want %d", cases[i].key,
                      cases[i].version, verdict[i], cases[i].want);
    close_remote(r);
}
END_TEST

START_TEST(test_key_layout_is_injective)
{
    /* ns "a" key "k:x" and ns "a:k" key "x" would both be "a:k:k:x" without
     * the hash tag; with it they are {a}:k:k:x and {a:k}:k:x. */
    sc__remote *a = open_ns("a");
    sc__remote *ak = open_ns("a:k");
    char err[256];
    uint64_t va = set_str(a, "k:x", "from a", 0);
    uint64_t vak = set_str(ak, "x", "from a:k", 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {a}:k:k:x"), 1);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {a:k}:k:x"), 1);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS a:k:k:x"), 0);
    /* Separate counters too. */
    ck_assert_uint_eq(raw_u64(&g_redis, "GET %s", "{a}:seq"), va);
    ck_assert_uint_eq(raw_u64(&g_redis, "GET %s", "{a:k}:seq"), vak);

    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(a, "k:x", 3, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "from a");
    free(it.data);
    ck_assert_int_eq(sc__remote_get(ak, "x", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "from a:k");
    free(it.data);
    ck_assert_int_eq(sc__remote_get(a, "x", 1, &it, err, sizeof err), SC_NOT_FOUND);

    /* Clearing "a" leaves "a:k" alone: neither its keys nor its floor. */
    uint64_t vak_before = counter_of(ak);
    clear_ns(a);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {a}:k:k:x"), 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {a:k}:k:x"), 1);
    ck_assert_int_eq(sc__remote_get(a, "k:x", 3, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_int_eq(sc__remote_get(ak, "x", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "from a:k");
    free(it.data);
    ck_assert_int_eq(raw_int(&g_redis, "HEXISTS {a:k}:meta floor"), 0);
    ck_assert_uint_eq(counter_of(ak), vak_before);
    close_remote(a);
    close_remote(ak);
}
END_TEST

START_TEST(test_ns_valid)
{
    ck_assert_int_eq(sc__remote_ns_valid("orders"), 1);
    ck_assert_int_eq(sc__remote_ns_valid("a:k"), 1);
    ck_assert_int_eq(sc__remote_ns_valid("a*b?[x]\\ y"), 1);
    ck_assert_int_eq(sc__remote_ns_valid("caf\xc3\xa9"), 1); /* UTF-8 */
    ck_assert_int_eq(sc__remote_ns_valid("x"), 1);

    ck_assert_int_eq(sc__remote_ns_valid(NULL), 0);
    ck_assert_int_eq(sc__remote_ns_valid(""), 0);
    ck_assert_int_eq(sc__remote_ns_valid("{"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("}"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("a{b"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("a}b"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("{ab}"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("ab}"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("a\nb"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("a\tb"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("\x01"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("ab\x1f"), 0);
    ck_assert_int_eq(sc__remote_ns_valid("a\rb"), 0);

    char ns[300];
    memset(ns, 'n', sizeof ns);
    ns[256] = '\0';
    ck_assert_int_eq(sc__remote_ns_valid(ns), 1);
    ns[256] = 'n';
    ns[257] = '\0';
    ck_assert_int_eq(sc__remote_ns_valid(ns), 0);
    ns[299] = '\0';
    ck_assert_int_eq(sc__remote_ns_valid(ns), 0);

    /* open refuses what ns_valid refuses, before touching Redis. */
    const char *bad[] = {"", "a{b", "a}b", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sc__remote_config c = config_for(&g_redis, bad[i]);
        sc__remote *r = NULL;
        char err[256] = "";
        ck_assert_int_eq(sc__remote_open(&c, &r, err, sizeof err), SC_ERR_INVALID);
        ck_assert_ptr_null(r);
        ck_assert_str_ne(err, "");
    }
    sc__remote_config c = config_for(&g_redis, ns);
    sc__remote *r = NULL;
    char err[256] = "";
    ck_assert_int_eq(sc__remote_open(&c, &r, err, sizeof err), SC_ERR_INVALID);
    ns[256] = '\0';
    c = config_for(&g_redis, ns);
    r = open_cfg(&c);
    set_str(r, "k", "v", 0);
    close_remote(r);
}
END_TEST

START_TEST(test_ttl_and_persist)
{
    sc__remote *r = open_ns("ttl");
    char err[256];
    set_str(r, "k", "v", 5000);
    long long pttl = raw_int(&g_redis, "PTTL {ttl}:k:k");
    ck_assert_int_gt(pttl, 3000);
    ck_assert_int_le(pttl, 5000);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_int_gt(it.pttl_ms, 3000);
    ck_assert_int_le(it.pttl_ms, 5000);
    free(it.data);

    set_str(r, "k", "v2", 0);
    ck_assert_int_eq(raw_int(&g_redis, "PTTL {ttl}:k:k"), -1);
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_int_eq(it.pttl_ms, -1);
    ck_assert_str_eq(it.data, "v2");
    free(it.data);

    uint64_t before = counter_of(r);
    sc__remote_result res;
    sc__remote_event ev = make_event(r, SC__ACT_SET, "k", 1, "v", 1, 0);
    ck_assert_int_eq(sc__remote_set(r, "k", 1, "v", 1, UINT64_MAX, &ev, &res, err, sizeof err), SC_ERR_INVALID);
    ck_assert_int_eq(sc__remote_set(r, "k", 1, "v", 1, (UINT64_C(1) << 53) + 1, &ev, &res, err, sizeof err),
                     SC_ERR_INVALID);
    /* Nor a template whose cuts are out of order or past its end. */
    sc__remote_event bad = ev;
    bad.cut[2] = bad.len + 1;
    ck_assert_int_eq(sc__remote_set(r, "k", 1, "v", 1, 0, &bad, &res, err, sizeof err), SC_ERR_INVALID);
    bad = ev;
    bad.cut[0] = bad.cut[1] + 1;
    ck_assert_int_eq(sc__remote_set(r, "k", 1, "v", 1, 0, &bad, &res, err, sizeof err), SC_ERR_INVALID);
    ck_assert_int_eq(sc__remote_set(r, "k", 1, "v", 1, 0, NULL, &res, err, sizeof err), SC_ERR_INVALID);
    ck_assert_int_eq(sc__remote_delete(r, "k", 1, 0, NULL, &res, err, sizeof err), SC_ERR_INVALID);
    ck_assert_int_eq(sc__remote_clear(r, &bad, &res, err, sizeof err), SC_ERR_INVALID);
    free_event(&ev);
    ck_assert_uint_eq(counter_of(r), before);
    close_remote(r);
}
END_TEST

START_TEST(test_set_result)
{
    sc__remote *r = open_ns("res");
    char err[256] = "";
    sc__remote_result res;
    memset(&res, 0xa5, sizeof res);
    ck_assert_int_eq(do_set(r, "k", 1, "v", 1, 0, SC__ACT_SET, &res, err, sizeof err), SC_OK);
    ASSERT_PUBLISHED_AT_COUNTER(r, res);
    ck_assert_uint_eq(res.version, raw_u64(&g_redis, "HGET %s version", "{res}:k:k"));

    memset(&res, 0xa5, sizeof res);
    ck_assert_int_eq(do_delete(r, "k", 1, 0, &res, err, sizeof err), SC_OK);
    ASSERT_PUBLISHED_AT_COUNTER(r, res);

    memset(&res, 0xa5, sizeof res);
    ck_assert_int_eq(do_clear(r, &res, err, sizeof err), SC_OK);
    ASSERT_PUBLISHED_AT_COUNTER(r, res);
    close_remote(r);
}
END_TEST

START_TEST(test_msgpack_events_match_log)
{
    sc__remote *r = open_ns("mp");
    redisContext *sub = subscribe("{mp}:events");
    char err[256];
    static const char val[] = {'x', 0, (char)0xff, 'y'};
    sc__remote_result res;
    size_t mlen, llen;

    ck_assert_int_eq(do_set(r, "key one", 7, val, sizeof val, 7000, SC__ACT_SET, &res, err, sizeof err), SC_OK);
    char *msg = next_message(sub, &mlen);
    char *logged = log_entry("mp", res.version, &llen);
    ck_assert_uint_eq(mlen, llen);
    ck_assert(memcmp(msg, logged, mlen) == 0);
    const char *epoch = meta_epoch(&g_redis, "mp");
    char ep[64];
    snprintf(ep, sizeof ep, "%s", epoch);
    check_mp_event(msg, mlen, "set", "mp", "key one", res.version, val, sizeof val, 7000, ep);
    free(msg);
    free(logged);

    ck_assert_int_eq(do_set(r, "big", 3, "large value", 11, 0, SC__ACT_INVALIDATE, &res, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    check_mp_event(msg, mlen, "invalidate", "mp", "big", res.version, NULL, 0, 0, ep);
    free(msg);
    /* An invalidate still stores the value. */
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "big", 3, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "large value");
    ck_assert_uint_eq(it.version, res.version);
    free(it.data);

    ck_assert_int_eq(do_delete(r, "big", 3, 0, &res, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    logged = log_entry("mp", res.version, &llen);
    ck_assert(mlen == llen && memcmp(msg, logged, mlen) == 0);
    check_mp_event(msg, mlen, "delete", "mp", "big", res.version, NULL, 0, 0, ep);
    free(msg);
    free(logged);

    ck_assert_int_eq(do_clear(r, &res, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    logged = log_entry("mp", res.version, &llen);
    ck_assert(mlen == llen && memcmp(msg, logged, mlen) == 0);
    /* A clear starts a new epoch, and its event carries the new one. */
    epoch = meta_epoch(&g_redis, "mp");
    ck_assert_str_ne(epoch, ep);
    check_mp_event(msg, mlen, "clear", "mp", "", res.version, NULL, 0, 0, epoch);
    free(msg);
    free(logged);

    redisFree(sub);
    close_remote(r);
}
END_TEST

START_TEST(test_published_event_decodes)
{
    static const sc_wire_format fmts[2] = {SC_WIRE_MSGPACK, SC_WIRE_JSON};
    for (int f = 0; f < 2; f++) {
        const char *ns = f ? "dec-j" : "dec-m";
        sc__remote_config c = config_for(&g_redis, ns);
        c.wire_format = fmts[f];
        sc__remote *r = open_cfg(&c);
        char chan[64], err[256];
        snprintf(chan, sizeof chan, "{%s}:events", ns);
        redisContext *sub = subscribe(chan);
        sc__remote_state before = state_of(r); /* seeds the namespace */
        static const char val[] = {'v', 0, 'w'};
        sc__remote_result res;
        ck_assert_int_eq(do_set(r, "the key", 7, val, sizeof val, 60000, SC__ACT_SET, &res, err, sizeof err), SC_OK);
        sc__remote_state after = state_of(r);
        size_t mlen;
        char *msg = next_message(sub, &mlen);
        sc__event ev;
        decode_event(msg, mlen, &ev, SC__ACT_SET, ns, "the key", res.version, before.epoch);
        ck_assert_uint_eq(res.version, before.counter + 1);
        ck_assert_str_eq(before.epoch, after.epoch);
        /* time is Redis' clock at the write. */
        ck_assert_uint_ge(ev.time_ms, before.time_ms);
        ck_assert_uint_le(ev.time_ms, after.time_ms);
        ck_assert_int_eq(ev.has_value, 1);
        ck_assert_uint_eq(ev.value_len, sizeof val);
        ck_assert(memcmp(ev.value, val, sizeof val) == 0);
        ck_assert_uint_eq(ev.ttl_ms, 60000);
        sc__event_free(&ev);
        free(msg);

        uint64_t dv = delete_key(r, "the key", 0);
        msg = next_message(sub, &mlen);
        decode_event(msg, mlen, &ev, SC__ACT_DELETE, ns, "the key", dv, before.epoch);
        ck_assert_int_eq(ev.has_value, 0);
        sc__event_free(&ev);
        free(msg);

        uint64_t cv = clear_ns(r);
        msg = next_message(sub, &mlen);
        sc__remote_state cleared = state_of(r);
        decode_event(msg, mlen, &ev, SC__ACT_CLEAR, ns, "", cv, cleared.epoch);
        ck_assert_str_ne(cleared.epoch, before.epoch);
        sc__event_free(&ev);
        free(msg);

        /* The log holds the same bytes, which decode the same way. */
        size_t llen;
        char *logged = log_entry(ns, dv, &llen);
        decode_event(logged, llen, &ev, SC__ACT_DELETE, ns, "the key", dv, before.epoch);
        sc__event_free(&ev);
        free(logged);
        redisFree(sub);
        close_remote(r);
    }
}
END_TEST

static cJSON *parse_json_event(const char *msg, size_t len, const char *action, const char *ns, const char *key,
                               uint64_t version, uint64_t ttl, const char *epoch)
{
    cJSON *j = cJSON_ParseWithLength(msg, len);
    ck_assert_msg(j != NULL, "not JSON: %s", msg);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "action")->valuestring, action);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "ns")->valuestring, ns);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "key")->valuestring, key);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "sender")->valuestring, POD);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "inst")->valuestring, INST);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "epoch")->valuestring, epoch);
    ck_assert(cJSON_GetObjectItemCaseSensitive(j, "format")->valuedouble == 1);
    ck_assert(cJSON_GetObjectItemCaseSensitive(j, "ttl")->valuedouble == (double)ttl);
    double t = cJSON_GetObjectItemCaseSensitive(j, "time")->valuedouble;
    ck_assert(t > (double)(now_ms_wall() - 10000) && t < (double)(now_ms_wall() + 10000));
    /* The numbers must be printed in full: Lua would give 1.7e+15. */
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
    redisContext *sub = subscribe("{js}:events");
    char err[256];
    sc__remote_result res;
    size_t mlen, llen;
    /* A key that needs escaping in JSON. */
    const char *key = "a\"b\\c\nd/e";
    static const char val[] = {0, 'b', 'c'};
    ck_assert_int_eq(do_set(r, key, strlen(key), val, sizeof val, 1234, SC__ACT_SET, &res, err, sizeof err), SC_OK);
    char ep[64];
    snprintf(ep, sizeof ep, "%s", meta_epoch(&g_redis, "js"));
    char *msg = next_message(sub, &mlen);
    char *logged = log_entry("js", res.version, &llen);
    ck_assert(mlen == llen && memcmp(msg, logged, mlen) == 0);
    ck_assert_msg(strncmp(msg, "{\"format\":1,\"action\":\"set\",\"ns\":\"js\",\"key\":", 41) == 0, "%s", msg);
    cJSON *j = parse_json_event(msg, mlen, "set", "js", key, res.version, 1234, ep);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "value")->valuestring, "AGJj");
    cJSON_Delete(j);
    free(msg);
    free(logged);
    /* Redis holds the raw bytes, not the base64. */
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, key, strlen(key), &it, err, sizeof err), SC_OK);
    ck_assert(it.len == sizeof val && memcmp(it.data, val, sizeof val) == 0);
    free(it.data);

    ck_assert_int_eq(do_set(r, "k", 1, "v", 1, 0, SC__ACT_INVALIDATE, &res, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    j = parse_json_event(msg, mlen, "invalidate", "js", "k", res.version, 0, ep);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "value"));
    cJSON_Delete(j);
    free(msg);

    ck_assert_int_eq(do_delete(r, "k", 1, 0, &res, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    cJSON_Delete(parse_json_event(msg, mlen, "delete", "js", "k", res.version, 0, ep));
    free(msg);

    ck_assert_int_eq(do_clear(r, &res, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    snprintf(ep, sizeof ep, "%s", meta_epoch(&g_redis, "js"));
    cJSON_Delete(parse_json_event(msg, mlen, "clear", "js", "", res.version, 0, ep));
    free(msg);

    sc__remote_state st;
    ck_assert_int_eq(do_heartbeat(r, &st, err, sizeof err), SC_OK);
    msg = next_message(sub, &mlen);
    cJSON_Delete(parse_json_event(msg, mlen, "heartbeat", "js", "", st.counter, 0, st.epoch));
    free(msg);
    redisFree(sub);
    close_remote(r);
}
END_TEST

START_TEST(test_heartbeat)
{
    sc__remote *r = open_ns("hb");
    char err[256];
    uint64_t v = set_str(r, "k", "v", 0);
    ck_assert_int_eq(raw_int(&g_redis, "XLEN {hb}:log"), 1);
    char ep[64];
    snprintf(ep, sizeof ep, "%s", meta_epoch(&g_redis, "hb"));

    redisContext *sub = subscribe("{hb}:events");
    sc__remote_state st;
    int64_t t0 = now_ms_wall();
    ck_assert_int_eq(do_heartbeat(r, &st, err, sizeof err), SC_OK);
    ck_assert_uint_eq(st.counter, v);
    ck_assert_str_eq(st.epoch, ep);
    ck_assert_ptr_null(st.event_at);
    ck_assert_int_lt(llabs((int64_t)st.time_ms - t0), 10000);
    size_t mlen;
    char *msg = next_message(sub, &mlen);
    check_mp_event(msg, mlen, "heartbeat", "hb", "", v, NULL, 0, 0, ep);
    sc__event ev;
    decode_event(msg, mlen, &ev, SC__ACT_HEARTBEAT, "hb", "", v, ep);
    ck_assert_uint_eq(ev.time_ms, st.time_ms);
    sc__event_free(&ev);
    free(msg);
    /* Nothing taken, nothing logged. */
    ck_assert_int_eq(raw_int(&g_redis, "XLEN {hb}:log"), 1);
    ck_assert_uint_eq(counter_of(r), v);

    /* On a fresh namespace the heartbeat seeds the counter and the epoch. */
    sc__remote *fresh = open_ns("hb2");
    redisContext *sub2 = subscribe("{hb2}:events");
    ck_assert_int_eq(do_heartbeat(fresh, &st, err, sizeof err), SC_OK);
    msg = next_message(sub2, &mlen);
    ck_assert_uint_gt(st.counter, 1000000000000000ULL);
    ck_assert_uint_eq(counter_of(fresh), st.counter);
    ck_assert(is_epoch(st.epoch));
    ck_assert_str_eq(st.epoch, meta_epoch(&g_redis, "hb2"));
    check_mp_event(msg, mlen, "heartbeat", "hb2", "", st.counter, NULL, 0, 0, st.epoch);
    free(msg);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {hb2}:log"), 0);

    redisFree(sub);
    redisFree(sub2);
    close_remote(r);
    close_remote(fresh);
}
END_TEST

START_TEST(test_sync_state)
{
    sc__remote *r = open_ns("ss");
    char err[256];
    sc__remote_state st;
    /* A fresh namespace: seeded, and no log entry at the seed. */
    int64_t t0 = now_ms_wall();
    ck_assert_int_eq(sc__remote_sync_state(r, 0, &st, err, sizeof err), SC_OK);
    uint64_t seed = st.counter;
    ck_assert_int_lt(llabs((long long)seed - t0 * 1000), 60LL * 1000000);
    ck_assert(is_epoch(st.epoch));
    char ep[64];
    snprintf(ep, sizeof ep, "%s", st.epoch);
    ck_assert_str_eq(ep, meta_epoch(&g_redis, "ss"));
    ck_assert_int_lt(llabs((int64_t)st.time_ms - t0), 10000);
    ck_assert_ptr_null(st.event_at);
    ck_assert_uint_eq(raw_u64(&g_redis, "GET %s", "{ss}:seq"), seed);

    uint64_t v1 = set_str(r, "a", "1", 0);
    uint64_t v2 = set_str(r, "b", "2", 0);
    uint64_t v3 = delete_key(r, "a", 0);
    ck_assert_uint_eq(v1, seed + 1);

    /* 0: the event at the counter. */
    ck_assert_int_eq(sc__remote_sync_state(r, 0, &st, err, sizeof err), SC_OK);
    ck_assert_uint_eq(st.counter, v3);
    ck_assert_str_eq(st.epoch, ep);
    size_t llen;
    char *logged = log_entry("ss", v3, &llen);
    ck_assert_ptr_nonnull(st.event_at);
    ck_assert_uint_eq(st.event_at_len, llen);
    ck_assert(memcmp(st.event_at, logged, llen) == 0);
    ck_assert_int_eq(st.event_at[st.event_at_len], '\0');
    free(logged);
    free(st.event_at);

    /* A given sequence: that event, with the current counter. */
    ck_assert_int_eq(sc__remote_sync_state(r, v2, &st, err, sizeof err), SC_OK);
    ck_assert_uint_eq(st.counter, v3);
    logged = log_entry("ss", v2, &llen);
    ck_assert_ptr_nonnull(st.event_at);
    ck_assert(st.event_at_len == llen && memcmp(st.event_at, logged, llen) == 0);
    sc__event ev;
    decode_event(st.event_at, st.event_at_len, &ev, SC__ACT_SET, "ss", "b", v2, ep);
    sc__event_free(&ev);
    free(logged);
    free(st.event_at);

    /* Nothing logged there: NULL, not an error. */
    ck_assert_int_eq(sc__remote_sync_state(r, seed, &st, err, sizeof err), SC_OK);
    ck_assert_ptr_null(st.event_at);
    ck_assert_uint_eq(st.event_at_len, 0);

    /* The log was trimmed away (a rollback looks like this): NULL. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "DEL {ss}:log"), 0);
    ck_assert_int_eq(sc__remote_sync_state(r, v2, &st, err, sizeof err), SC_OK);
    ck_assert_ptr_null(st.event_at);
    ck_assert_str_eq(st.epoch, ep);

    /* A lost epoch is replaced (history not provably continuous). */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HDEL {ss}:meta epoch"), 0);
    ck_assert_int_eq(sc__remote_sync_state(r, 0, &st, err, sizeof err), SC_OK);
    free(st.event_at);
    ck_assert(is_epoch(st.epoch));
    ck_assert_str_ne(st.epoch, ep);
    ck_assert_str_eq(st.epoch, meta_epoch(&g_redis, "ss"));
    ck_assert_uint_eq(st.counter, v3);

    /* A pod whose last sequence is past the counter saw writes Redis lost:
     * a new history starts past it, so none of their versions is handed
     * out again. */
    snprintf(ep, sizeof ep, "%s", st.epoch);
    ck_assert_int_eq(sc__remote_sync_state(r, v3 + 1000, &st, err, sizeof err), SC_OK);
    ck_assert_ptr_null(st.event_at);
    ck_assert_uint_ge(st.counter, v3 + 1000);
    ck_assert_str_ne(st.epoch, ep);
    ck_assert_uint_gt(set_str(r, "c", "3", 0), v3 + 1000);
    close_remote(r);
}
END_TEST

START_TEST(test_delete)
{
    sc__remote *r = open_ns("del");
    char err[256];
    sc__remote_item it;
    uint64_t v1 = set_str(r, "k", "v", 0);
    uint64_t v2 = delete_key(r, "k", 0);
    ck_assert_uint_eq(v2, v1 + 1);
    /* Without a tombstone TTL the key is gone. */
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {del}:k:k"), 0);
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_uint_eq(it.known, v2);
    /* Deleting a missing key still succeeds and takes a version. */
    uint64_t v3 = delete_key(r, "k", 0);
    ck_assert_uint_gt(v3, v2);
    close_remote(r);
}
END_TEST

START_TEST(test_delete_leaves_a_tombstone)
{
    sc__remote *r = open_ns("tomb");
    char err[256];
    sc__remote_item it;
    set_str(r, "k", "v", 0);
    uint64_t v = delete_key(r, "k", 5000);
    /* The hash keeps the version and nothing else, for the tombstone TTL. */
    ck_assert_uint_eq(raw_u64(&g_redis, "HGET %s version", "{tomb}:k:k"), v);
    ck_assert_ptr_null(raw_str(&g_redis, "HGET %s value", "{tomb}:k:k"));
    ck_assert_int_eq(raw_int(&g_redis, "HLEN {tomb}:k:k"), 1);
    long long pttl = raw_int(&g_redis, "PTTL {tomb}:k:k");
    ck_assert_int_gt(pttl, 3000);
    ck_assert_int_le(pttl, 5000);
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_ptr_null(it.data);
    ck_assert_uint_eq(it.known, v);

    /* A delete of a key that was never there leaves one too. */
    uint64_t w = delete_key(r, "never", 5000);
    ck_assert_uint_eq(raw_u64(&g_redis, "HGET %s version", "{tomb}:k:never"), w);
    ck_assert_int_eq(sc__remote_get(r, "never", 5, &it, err, sizeof err), SC_NOT_FOUND);

    /* A set over a tombstone is a value again, without the tombstone's TTL. */
    uint64_t s = set_str(r, "k", "back", 0);
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "back");
    ck_assert_uint_eq(it.version, s);
    ck_assert_int_eq(it.pttl_ms, -1);
    free(it.data);

    /* The tombstone expires. */
    delete_key(r, "short", 1000); /* outlives the EXISTS below on a sanitizer build */
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {tomb}:k:short"), 1);
    struct timespec ts = {1, 200000000};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {tomb}:k:short"), 0);
    close_remote(r);
}
END_TEST

START_TEST(test_clear_only_own_namespace)
{
    sc__remote *a = open_ns("cl");
    sc__remote *b = open_ns("cl2");
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        set_str(a, k, "a", 0);
        set_str(b, k, "b", 0);
    }
    /* Plain keys of the namespace that are not values survive too. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET {cl}:other x"), 0);
    uint64_t seq_before = counter_of(a);
    uint64_t v = clear_ns(a);
    ck_assert_uint_eq(v, seq_before + 1);
    char err[256];
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(a, "k3", 2, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_int_eq(sc__remote_get(b, "k3", 2, &it, err, sizeof err), SC_OK);
    free(it.data);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {cl}:k:k0 {cl}:k:k19"), 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {cl2}:k:k0 {cl2}:k:k19"), 2);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {cl}:seq {cl}:log {cl}:meta {cl}:other"), 4);
    ck_assert_int_eq(raw_int(&g_redis, "XLEN {cl}:log"), 21);
    close_remote(a);
    close_remote(b);
}
END_TEST

START_TEST(test_clear_floor_and_epoch)
{
    sc__remote *r = open_ns("fl");
    char err[256];
    sc__remote_item it;
    set_str(r, "a", "1", 0);
    set_str(r, "b", "2", 0);
    sc__remote_state before = state_of(r);
    /* Written by hand, below any floor a clear will set. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {fl}:k:old value x version 1"), 0);
    /* Written by hand with a version above the coming floor: a write that
     * happened after the clear, as far as the collection can tell. */
    char hv[32];
    snprintf(hv, sizeof hv, "%" PRIu64, before.counter + 1000);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {fl}:k:newer value y version %s", hv), 0);

    redisContext *sub = subscribe("{fl}:events");
    sc__remote_result res;
    ck_assert_int_eq(do_clear(r, &res, err, sizeof err), SC_OK);
    ck_assert_int_eq(res.published, 1);
    ck_assert_uint_eq(res.version, before.counter + 1);
    /* floor = the clear's version, a new epoch, the counter is the floor. */
    ck_assert_uint_eq(raw_u64(&g_redis, "HGET %s floor", "{fl}:meta"), res.version);
    sc__remote_state after = state_of(r);
    ck_assert_uint_eq(after.counter, res.version);
    ck_assert(is_epoch(after.epoch));
    ck_assert_str_ne(after.epoch, before.epoch);
    ck_assert_str_eq(after.epoch, meta_epoch(&g_redis, "fl"));
    size_t mlen;
    char *msg = next_message(sub, &mlen);
    sc__event ev;
    decode_event(msg, mlen, &ev, SC__ACT_CLEAR, "fl", "", res.version, after.epoch);
    sc__event_free(&ev);
    free(msg);

    /* The collection unlinked what was below the floor... */
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {fl}:k:a {fl}:k:b {fl}:k:old"), 0);
    ck_assert_int_eq(sc__remote_get(r, "old", 3, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_uint_eq(it.known, res.version);
    /* ...and left what was above it. */
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {fl}:k:newer"), 1);
    ck_assert_int_eq(sc__remote_get(r, "newer", 5, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "y");
    free(it.data);

    /* A key below the floor that Redis still holds (written by hand after
     * the clear, as a half-finished collection would leave it) is absent. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {fl}:k:old value x version 1"), 0);
    ck_assert_int_eq(sc__remote_get(r, "old", 3, &it, err, sizeof err), SC_NOT_FOUND);
    ck_assert_ptr_null(it.data);
    char fv[32];
    snprintf(fv, sizeof fv, "%" PRIu64, res.version - 1);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {fl}:k:justbelow value x version %s", fv), 0);
    ck_assert_int_eq(sc__remote_get(r, "justbelow", 9, &it, err, sizeof err), SC_NOT_FOUND);
    /* At the floor is not below it. */
    snprintf(fv, sizeof fv, "%" PRIu64, res.version);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {fl}:k:at value x version %s", fv), 0);
    ck_assert_int_eq(sc__remote_get(r, "at", 2, &it, err, sizeof err), SC_OK);
    free(it.data);

    /* A key written after the clear survives, and a later clear collects
     * the leftovers. */
    uint64_t w = set_str(r, "after", "survives", 0);
    ck_assert_uint_eq(w, res.version + 1);
    ck_assert_int_eq(sc__remote_get(r, "after", 5, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "survives");
    ck_assert_uint_eq(it.version, w);
    free(it.data);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {fl}:k:old"), 1);
    uint64_t c2 = clear_ns(r);
    ck_assert_uint_eq(raw_u64(&g_redis, "HGET %s floor", "{fl}:meta"), c2);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {fl}:k:old {fl}:k:justbelow {fl}:k:at {fl}:k:after"), 0);
    ck_assert_int_eq(sc__remote_get(r, "after", 5, &it, err, sizeof err), SC_NOT_FOUND);
    redisFree(sub);
    close_remote(r);
}
END_TEST

START_TEST(test_clear_escapes_glob_characters)
{
    sc__remote *glob = open_ns("a*b");
    sc__remote *lit = open_ns("axxb");
    sc__remote *q = open_ns("a?[x]\\b");
    sc__remote *q2 = open_ns("ay[x]\\b");
    set_str(glob, "k", "1", 0);
    set_str(lit, "k", "2", 0);
    set_str(q, "k", "3", 0);
    set_str(q2, "k", "4", 0);
    clear_ns(glob);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS %s", "{a*b}:k:k"), 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS %s", "{axxb}:k:k"), 1);
    clear_ns(q);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS %s", "{a?[x]\\b}:k:k"), 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS %s", "{ay[x]\\b}:k:k"), 1);
    close_remote(glob);
    close_remote(lit);
    close_remote(q);
    close_remote(q2);
}
END_TEST

START_TEST(test_clear_large_in_batches)
{
    sc__remote *r = open_ns("big");
    /* A write first, so the clear below does not seed the counter. */
    set_str(r, "seeded", "x", 0);
    /* Filled from a script in a few steps, on a connection patient enough
     * for a slow (sanitized, loaded) machine. */
    redisContext *filler = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(filler);
    struct timeval patient = {60, 0};
    redisSetTimeout(filler, patient);
    for (int from = 1; from <= 200000; from += 50000) {
        redisReply *rep = redisCommand(filler, "EVAL %s 0 %d",
                                       "for i = ARGV[1], ARGV[1] + 49999 do "
                                       "redis.call('HSET', '{big}:k:' .. i, 'value', 'x', 'version', '1') end "
                                       "return 1",
                                       from);
        ck_assert_ptr_nonnull(rep);
        ck_assert_int_eq(rep->type, REDIS_REPLY_INTEGER);
        freeReplyObject(rep);
    }
    redisFree(filler);
    /* seq, meta, log, {big}:k:seeded and the 200000. */
    ck_assert_int_eq(ns_keys("big"), 4 + 200000);

    long long unlink0 = cmd_calls(&g_redis, "unlink"), scan0 = cmd_calls(&g_redis, "scan");
    long long evalsha0 = cmd_calls(&g_redis, "evalsha");
    long long keys0 = cmd_calls(&g_redis, "keys"), flushdb0 = cmd_calls(&g_redis, "flushdb");
    long long flushall0 = cmd_calls(&g_redis, "flushall"), del0 = cmd_calls(&g_redis, "del");
    clear_ns(r);
    /* Batches of SCAN + one script each: about 200000 / 1000 round trips,
     * not one per key, and nothing that blocks Redis on the whole keyspace. */
    long long scans = cmd_calls(&g_redis, "scan") - scan0;
    long long scripts = cmd_calls(&g_redis, "evalsha") - evalsha0;
    ck_assert_int_ge(scans, 150);
    ck_assert_int_lt(scans, 2000);
    ck_assert_int_ge(scripts, 150);
    ck_assert_int_le(scripts, scans + 1);
    ck_assert_int_ge(cmd_calls(&g_redis, "unlink") - unlink0, 200001);
    ck_assert_int_eq(cmd_calls(&g_redis, "keys"), keys0);
    ck_assert_int_eq(cmd_calls(&g_redis, "flushdb"), flushdb0);
    ck_assert_int_eq(cmd_calls(&g_redis, "flushall"), flushall0);
    ck_assert_int_eq(cmd_calls(&g_redis, "del"), del0);
    /* Only the counter, the meta hash and the log are left of the
     * namespace. */
    ck_assert_int_eq(ns_keys("big"), 3);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {big}:seq {big}:meta {big}:log"), 3);
    close_remote(r);
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
    /* Every script survives the flush, not only set and get. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SCRIPT FLUSH"), 0);
    delete_key(r, "k", 1000);
    sc__remote_state st;
    ck_assert_int_eq(do_heartbeat(r, &st, err, sizeof err), SC_OK);
    ck_assert_int_eq(sc__remote_sync_state(r, 0, &st, err, sizeof err), SC_OK);
    free(st.event_at);
    clear_ns(r);
    close_remote(r);
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
    char ep[64];
    snprintf(ep, sizeof ep, "%s", meta_epoch(&own, "rs"));
    ck_assert_int_eq(sc_test_redis_restart(&own), 0);
    /* The pooled connection is dead; the call reconnects and retries. */
    uint64_t after = set_str(r, "k", "v2", 0);
    ck_assert_uint_gt(after, before);
    /* The counter started again: a new history, a new epoch. */
    sc__remote_state st = state_of(r);
    ck_assert_str_ne(st.epoch, ep);
    ck_assert_uint_eq(st.counter, after);
    char err[256];
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "v2");
    free(it.data);
    close_remote(r);
    sc_test_redis_stop(&own);
}
END_TEST

START_TEST(test_seed_stays_ahead_of_surviving_log)
{
    sc__remote *r = open_ns("sd");
    uint64_t v1 = set_str(r, "k", "v", 0);
    char ep[64];
    snprintf(ep, sizeof ep, "%s", meta_epoch(&g_redis, "sd"));
    /* The counter is lost but the log survived with a later id (say, a
     * clock that went back): XADD would reject anything below it. */
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64 "-0", v1 + UINT64_C(1000000000));
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "XADD {sd}:log %s e x", id), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "DEL {sd}:seq"), 0);
    uint64_t v2 = set_str(r, "k", "v", 0);
    ck_assert_uint_gt(v2, v1 + UINT64_C(1000000000));
    /* A reseeded counter is a new history. */
    ck_assert_str_ne(meta_epoch(&g_redis, "sd"), ep);
    close_remote(r);
}
END_TEST

/* A counter behind a version this remote has seen (Redis lost writes: an
 * older snapshot, a replica promoted without them) is not taken again: the
 * write starts a new history past every version handed out (take() in
 * prelude.lua). Every write script passes the seen version. */
START_TEST(test_counter_behind_seen_starts_new_history)
{
    sc__remote *r = open_ns("bh");
    uint64_t v1 = set_str(r, "k", "v", 0);
    ck_assert_uint_eq(sc__remote_seen(r), v1);
    char ep[64];
    snprintf(ep, sizeof ep, "%s", meta_epoch(&g_redis, "bh"));
    char err[256];
    sc__remote_result res;
    for (int step = 0; step < 4; step++) {
        uint64_t seen = sc__remote_seen(r);
        ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET {bh}:seq %" PRIu64, seen - 3), 0);
        sc_status st;
        if (step == 0) {
            st = do_set(r, "k", 1, "v", 1, 0, SC__ACT_SET, &res, err, sizeof err);
        } else if (step == 1) {
            st = do_delete(r, "k", 1, 0, &res, err, sizeof err);
        } else if (step == 2) {
            sc__remote_event ev = make_event(r, SC__ACT_TAG, "t", 1, NULL, 0, 0);
            st = sc__remote_tag_invalidate(r, "t", 1, &ev, &res, err, sizeof err);
            free_event(&ev);
        } else {
            st = do_clear(r, &res, err, sizeof err);
        }
        ck_assert_msg(st == SC_OK, "step %d: %s", step, err);
        ck_assert_uint_gt(res.version, seen);
        ck_assert_str_ne(meta_epoch(&g_redis, "bh"), ep);
        snprintf(ep, sizeof ep, "%s", meta_epoch(&g_redis, "bh"));
        ck_assert_uint_eq(sc__remote_seen(r), res.version);
    }
    /* One below the version seen would hand that version out again; at
     * it, the next version is a new one. */
    uint64_t seen = sc__remote_seen(r);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET {bh}:seq %" PRIu64, seen - 1), 0);
    ck_assert_uint_gt(set_str(r, "k", "v", 0), seen);
    ck_assert_str_ne(meta_epoch(&g_redis, "bh"), ep);
    snprintf(ep, sizeof ep, "%s", meta_epoch(&g_redis, "bh"));
    seen = sc__remote_seen(r);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET {bh}:seq %" PRIu64, seen), 0);
    ck_assert_uint_eq(set_str(r, "k", "v", 0), seen + 1);
    ck_assert_str_eq(meta_epoch(&g_redis, "bh"), ep);
    close_remote(r);
}
END_TEST

START_TEST(test_wrong_type_leaves_no_hole)
{
    sc__remote *r = open_ns("wt");
    char err[256] = "";
    uint64_t v1 = set_str(r, "ok", "v", 0);
    sc__remote_result res;
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET {wt}:k:bad plain"), 0);
    ck_assert_int_eq(do_set(r, "bad", 3, "v", 1, 0, SC__ACT_SET, &res, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "WRONGTYPE") != NULL, "%s", err);
    ck_assert_int_eq(do_delete(r, "bad", 3, 0, &res, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "WRONGTYPE") != NULL, "%s", err);
    ck_assert_int_eq(do_delete(r, "bad", 3, 1000, &res, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_uint_eq(counter_of(r), v1);
    ck_assert_int_eq(raw_int(&g_redis, "XLEN {wt}:log"), 1);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "bad", 3, &it, err, sizeof err), SC_ERR_REMOTE);
    /* A version that is not a number is not ours either. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {wt}:k:badver value x version abc"), 0);
    ck_assert_int_eq(sc__remote_get(r, "badver", 6, &it, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "version") != NULL, "%s", err);
    /* A hash with a value but no version is never served as a value. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET {wt}:k:nover value x"), 0);
    ck_assert_int_ne(sc__remote_get(r, "nover", 5, &it, err, sizeof err), SC_OK);
    close_remote(r);
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
    close_remote(r);
}
END_TEST

START_TEST(test_log_capped_and_disabled)
{
    sc__remote_config c = config_for(&g_redis, "cap");
    c.log_len = 100;
    sc__remote *r = open_cfg(&c);
    for (int i = 0; i < 1000; i++)
        set_str(r, "k", "v", 0);
    long long xlen = raw_int(&g_redis, "XLEN {cap}:log");
    ck_assert_int_ge(xlen, 100);
    ck_assert_int_lt(xlen, 1000);
    close_remote(r);

    c = config_for(&g_redis, "nolog");
    c.log_len = 0;
    r = open_cfg(&c);
    redisContext *sub = subscribe("{nolog}:events");
    uint64_t v = set_str(r, "k", "v", 0);
    size_t mlen;
    char *msg = next_message(sub, &mlen);
    check_mp_event(msg, mlen, "set", "nolog", "k", v, "v", 1, 0, NULL);
    free(msg);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {nolog}:log"), 0);
    /* Without a log, sync_state finds no event anywhere. */
    char err[256];
    sc__remote_state st;
    ck_assert_int_eq(sc__remote_sync_state(r, v, &st, err, sizeof err), SC_OK);
    ck_assert_ptr_null(st.event_at);
    ck_assert_uint_eq(st.counter, v);
    redisFree(sub);
    close_remote(r);
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
    check_mp_event(msg, mlen, "set", "ch", "k", v, "v", 1, 0, NULL);
    free(msg);
    redisFree(sub);
    close_remote(r);
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
        sc__remote_result res;
        memset(&res, 0, sizeof res);
        if (do_set(h->r, key, strlen(key), val, strlen(val), 0, SC__ACT_SET, &res, err, sizeof err) != SC_OK ||
            !res.published)
            h->failures++;
        uint64_t v = res.version;
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
    close_remote(r);
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
    close_remote(r);
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
    sc__remote_result res;
    int64_t t0 = mono_ms();
    sc_status st = do_set(r, "k", 1, "v2", 2, 0, SC__ACT_SET, &res, err, sizeof err);
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
    close_remote(r);
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
    sc__remote_result res;
    ck_assert_int_eq(do_set(r, "k", 1, val, big, 0, SC__ACT_SET, &res, err, sizeof err), SC_ERR_REMOTE);
    free(val);
    ck_assert_msg(strstr(err, "127.0.0.1:") != NULL, "%s", err);

    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "refused") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "127.0.0.1:") != NULL, "%s", err);
    close_remote(r);

    sc__remote *none = NULL;
    err[0] = '\0';
    ck_assert_int_eq(sc__remote_open(&c, &none, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_ptr_null(none);
    ck_assert_msg(strstr(err, "refused") != NULL, "%s", err);

    /* It comes back: a new open and the pool work again. */
    ck_assert_int_eq(sc_test_redis_start_again(&own), 0);
    r = open_cfg(&c);
    set_str(r, "k", "v", 0);
    close_remote(r);
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
    close_remote(r);

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
    close_remote(r);
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
    redisReply *rep = raw(&g_redis, "HGET {unix}:k:k value");
    ck_assert_str_eq(rep->str, "via socket");
    freeReplyObject(rep);

    c.unix_socket = "/nonexistent/redis.sock";
    char err[256] = "";
    sc__remote *bad = NULL;
    ck_assert_int_eq(sc__remote_open(&c, &bad, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "/nonexistent/redis.sock") != NULL, "%s", err);
    close_remote(r);
}
END_TEST

START_TEST(test_select_db)
{
    sc__remote_config c = config_for(&g_redis, "db3");
    c.db = 3;
    sc__remote *r = open_cfg(&c);
    set_str(r, "k", "in three", 0);
    ck_assert_int_eq(raw_int(&g_redis, "EXISTS {db3}:k:k"), 0);
    redisContext *raw3 = sc_test_redis_connect(&g_redis);
    redisReply *rep = redisCommand(raw3, "SELECT 3");
    freeReplyObject(rep);
    rep = redisCommand(raw3, "HGET {db3}:k:k value");
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(rep->str, "in three");
    freeReplyObject(rep);
    redisFree(raw3);
    char err[256];
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    free(it.data);
    close_remote(r);
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
    close_remote(NULL);
}
END_TEST

START_TEST(test_publish_denied_still_stores_and_logs)
{
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&own, "ACL SETUSER nopub on >pw ~* &* +@all -publish"), 0);
    sc__remote_config c = config_for(&own, "np");
    c.username = "nopub";
    c.password = "pw";
    sc__remote *r = open_cfg(&c);
    sc__remote_config dflt = config_for(&own, "np"); /* the default user may publish */
    sc__remote *ok = open_cfg(&dflt);
    redisContext *sub = subscribe_on(&own, "{np}:events");
    char err[256] = "";
    sc__remote_result res;
    memset(&res, 0xa5, sizeof res);
    ck_assert_int_eq(do_set(r, "k", 1, "stored", 6, 0, SC__ACT_SET, &res, err, sizeof err), SC_OK);
    ck_assert_int_eq(res.published, 0);
    ck_assert_msg(strstr(res.publish_error, "permission") != NULL, "%s", res.publish_error);
    ck_assert_uint_gt(res.version, 0);
    uint64_t v = res.version;
    /* Stored and logged: pods catch it from the log. */
    char *val = raw_str(&own, "HGET %s value", "{np}:k:k");
    ck_assert_ptr_nonnull(val);
    ck_assert_str_eq(val, "stored");
    free(val);
    ck_assert_uint_eq(raw_u64(&own, "HGET %s version", "{np}:k:k"), v);
    size_t llen;
    char *logged = log_entry_on(&own, "np", v, &llen);
    sc__event ev;
    decode_event(logged, llen, &ev, SC__ACT_SET, "np", "k", v, NULL);
    sc__event_free(&ev);
    free(logged);
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "stored");
    free(it.data);

    /* The same for delete and clear. */
    ck_assert_int_eq(do_delete(r, "k", 1, 0, &res, err, sizeof err), SC_OK);
    ck_assert_int_eq(res.published, 0);
    ck_assert_uint_eq(res.version, v + 1);
    ck_assert_msg(strstr(res.publish_error, "permission") != NULL, "%s", res.publish_error);
    ck_assert_int_eq(do_clear(r, &res, err, sizeof err), SC_OK);
    ck_assert_int_eq(res.published, 0);
    ck_assert_uint_eq(res.version, v + 2);
    ck_assert_int_eq(raw_int(&own, "XLEN {np}:log"), 3);

    /* None of the three reached the channel: the first message is the next
     * write of a user that may publish. */
    uint64_t w = set_str(ok, "k2", "v", 0);
    ck_assert_uint_eq(w, v + 3);
    size_t mlen;
    char *msg = next_message(sub, &mlen);
    decode_event(msg, mlen, &ev, SC__ACT_SET, "np", "k2", w, NULL);
    sc__event_free(&ev);
    free(msg);

    /* A heartbeat only publishes: refused, and named as such. */
    sc__remote_state st;
    ck_assert_int_eq(do_heartbeat(r, &st, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "permission") != NULL, "%s", err);
    redisFree(sub);
    close_remote(r);
    close_remote(ok);
    sc_test_redis_stop(&own);
}
END_TEST

START_TEST(test_out_of_memory_writes_nothing)
{
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    sc__remote_config c = config_for(&own, "oom");
    sc__remote *r = open_cfg(&c);
    uint64_t v = set_str(r, "k", "before", 0);
    /* Fill, then cap memory well below what is used. */
    size_t big = 1u << 20;
    char *filler = malloc(big);
    memset(filler, 'f', big);
    redisContext *rc = sc_test_redis_connect(&own);
    ck_assert_ptr_nonnull(rc);
    for (int i = 0; i < 8; i++) {
        redisReply *rep = redisCommand(rc, "SET filler:%d %b", i, filler, big);
        ck_assert_ptr_nonnull(rep);
        ck_assert_int_ne(rep->type, REDIS_REPLY_ERROR);
        freeReplyObject(rep);
    }
    redisFree(rc);
    free(filler);
    ck_assert_int_eq(sc_test_redis_cmd(&own, "CONFIG SET maxmemory-policy noeviction"), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&own, "CONFIG SET maxmemory 2mb"), 0);
    long long xlen = raw_int(&own, "XLEN {oom}:log");
    redisContext *sub = subscribe_on(&own, "{oom}:events");

    char err[256] = "";
    sc__remote_result res;
    ck_assert_int_eq(do_set(r, "new", 3, "value", 5, 0, SC__ACT_SET, &res, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "out of memory") != NULL, "%s", err);
    ck_assert_int_eq(do_set(r, "k", 1, "after", 5, 0, SC__ACT_SET, &res, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "out of memory") != NULL, "%s", err);
    ck_assert_int_eq(do_delete(r, "k", 1, 1000, &res, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "out of memory") != NULL, "%s", err);
    ck_assert_int_eq(do_clear(r, &res, err, sizeof err), SC_ERR_REMOTE);
    ck_assert_msg(strstr(err, "out of memory") != NULL, "%s", err);
    /* Nothing written: counter, values and log as they were. */
    ck_assert_uint_eq(raw_u64(&own, "GET %s", "{oom}:seq"), v);
    ck_assert_int_eq(raw_int(&own, "EXISTS {oom}:k:new"), 0);
    char *val = raw_str(&own, "HGET %s value", "{oom}:k:k");
    ck_assert_str_eq(val, "before");
    free(val);
    ck_assert_int_eq(raw_int(&own, "XLEN {oom}:log"), xlen);
    ck_assert_int_eq(raw_int(&own, "HEXISTS {oom}:meta floor"), 0);
    /* Reads still work. */
    sc__remote_item it;
    ck_assert_int_eq(sc__remote_get(r, "k", 1, &it, err, sizeof err), SC_OK);
    ck_assert_str_eq(it.data, "before");
    ck_assert_uint_eq(it.known, v);
    free(it.data);

    /* Memory back: writes work again, and the sequence has no hole (the
     * first event after the refusals is v + 1). */
    ck_assert_int_eq(sc_test_redis_cmd(&own, "CONFIG SET maxmemory 0"), 0);
    uint64_t w = set_str(r, "k", "after", 0);
    ck_assert_uint_eq(w, v + 1);
    size_t mlen;
    char *msg = next_message(sub, &mlen);
    sc__event ev;
    decode_event(msg, mlen, &ev, SC__ACT_SET, "oom", "k", w, NULL);
    sc__event_free(&ev);
    free(msg);
    redisFree(sub);
    close_remote(r);
    sc_test_redis_stop(&own);
}
END_TEST

static Suite *remote_suite(void)
{
    Suite *s = suite_create("remote");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_decimal_numbers_both_ways);
    tcase_add_test(tc, test_roundtrip_binary_and_empty);
    tcase_add_test(tc, test_get_known_is_the_counter);
    tcase_add_test(tc, test_versions_increase_from_time);
    tcase_add_test(tc, test_plain_commands_read_the_hash);
    tcase_add_test(tc, test_confirm_verdicts);
    tcase_add_test(tc, test_key_layout_is_injective);
    tcase_add_test(tc, test_ns_valid);
    tcase_add_test(tc, test_ttl_and_persist);
    tcase_add_test(tc, test_set_result);
    tcase_add_test(tc, test_msgpack_events_match_log);
    tcase_add_test(tc, test_published_event_decodes);
    tcase_add_test(tc, test_json_events);
    tcase_add_test(tc, test_heartbeat);
    tcase_add_test(tc, test_sync_state);
    tcase_add_test(tc, test_delete);
    tcase_add_test(tc, test_delete_leaves_a_tombstone);
    tcase_add_test(tc, test_clear_only_own_namespace);
    tcase_add_test(tc, test_clear_floor_and_epoch);
    tcase_add_test(tc, test_clear_escapes_glob_characters);
    tcase_add_test(tc, test_clear_large_in_batches);
    tcase_add_test(tc, test_noscript_falls_back_to_eval);
    tcase_add_test(tc, test_versions_grow_across_restart);
    tcase_add_test(tc, test_seed_stays_ahead_of_surviving_log);
    tcase_add_test(tc, test_counter_behind_seen_starts_new_history);
    tcase_add_test(tc, test_wrong_type_leaves_no_hole);
    tcase_add_test(tc, test_log_range);
    tcase_add_test(tc, test_log_capped_and_disabled);
    tcase_add_test(tc, test_custom_channel);
    tcase_add_test(tc, test_publish_denied_still_stores_and_logs);
    tcase_add_test(tc, test_out_of_memory_writes_nothing);
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
