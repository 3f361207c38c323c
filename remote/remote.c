/* The Redis tier as the rest of synccache sees it: the key layout of
 * remote.h, the arguments and replies of the Lua scripts, the batched clear
 * and the walk over the event log. Connections live in pool.c, the scripts in
 * scripts.c.
 *
 * Each call gets one deadline of timeout_ms from its start. The two calls
 * that take many round trips (clear over a large namespace, a long log walk)
 * give each round trip its own deadline instead: their length grows with the
 * data, and every single step still fails within timeout_ms.
 */
#include "remote/remote.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* Entries per SCAN / UNLINK batch and per XRANGE page. */
#define BATCH 1000
#define BATCH_STR "1000"

/* Largest TTL accepted: the msgpack event carries it as a Lua double. */
#define MAX_TTL_MS (UINT64_C(1) << 53)

struct sc__remote {
    sc__pool *pool;
    unsigned timeout_ms;
    char *ns;
    size_t ns_len;
    char *channel;
    char *sender;
    char *seq_key;
    char *log_key;
    char *scan_pattern;  /* "<ns with glob characters escaped>:k:*" */
    const char *fmt;     /* "msgpack" or "json", as the scripts expect */
    char log_len[24];    /* decimal; "0" disables the log */
    char shas[SC__SCRIPT_COUNT][41];
};

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

/* SCAN MATCH treats * ? [ ] \ as glob syntax; a namespace such as "a*b" must
 * match only itself. */
static char *glob_pattern(const char *ns)
{
    size_t n = strlen(ns);
    char *s = malloc(2 * n + sizeof ":k:*");
    if (!s)
        return NULL;
    char *w = s;
    for (const char *c = ns; *c; c++) {
        if (strchr("*?[]\\", *c))
            *w++ = '\\';
        *w++ = *c;
    }
    memcpy(w, ":k:*", sizeof ":k:*");
    return s;
}

/* Parses a whole decimal string (no sign, no spaces) into *out. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    char buf[24];
    memcpy(buf, s, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

sc_status sc__remote_open(const sc__remote_config *cfg, sc__remote **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg || !cfg->ns || !*cfg->ns || cfg->timeout_ms == 0 || cfg->pool_size == 0 ||
        (!cfg->unix_socket && (cfg->port <= 0 || cfg->port > 65535)) || cfg->db < 0 ||
        (cfg->wire_format != SC_WIRE_MSGPACK && cfg->wire_format != SC_WIRE_JSON)) {
        sc__remote_errf(err, errlen, "invalid Redis configuration (namespace, port, db, timeout or pool size)");
        return SC_ERR_INVALID;
    }
    sc__remote *r = calloc(1, sizeof *r);
    if (!r) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    r->timeout_ms = cfg->timeout_ms;
    r->ns = strdup(cfg->ns);
    r->ns_len = strlen(cfg->ns);
    r->channel = cfg->channel ? strdup(cfg->channel) : concat(cfg->ns, ":events");
    r->sender = strdup(cfg->sender ? cfg->sender : "");
    r->seq_key = concat(cfg->ns, ":seq");
    r->log_key = concat(cfg->ns, ":log");
    r->scan_pattern = glob_pattern(cfg->ns);
    r->fmt = cfg->wire_format == SC_WIRE_JSON ? "json" : "msgpack";
    snprintf(r->log_len, sizeof r->log_len, "%zu", cfg->log_len);
    if (!r->ns || !r->channel || !r->sender || !r->seq_key || !r->log_key || !r->scan_pattern) {
        sc__remote_close(r);
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    /* The first SCRIPT LOAD connects the first slot: it proves that Redis is
     * there and accepts our credentials. */
    sc_status st = sc__pool_create(cfg, &r->pool, err, errlen);
    if (st == SC_OK)
        st = sc__scripts_load(r->pool, r->timeout_ms, r->shas, err, errlen);
    if (st != SC_OK) {
        sc__remote_close(r);
        return st;
    }
    *out = r;
    return SC_OK;
}

void sc__remote_close(sc__remote *r)
{
    if (!r)
        return;
    sc__pool_destroy(r->pool);
    free(r->ns);
    free(r->channel);
    free(r->sender);
    free(r->seq_key);
    free(r->log_key);
    free(r->scan_pattern);
    free(r);
}

/* "<ns>:k:<key>" (the key may hold any byte). */
static char *value_key(const sc__remote *r, const char *key, size_t klen, size_t *len)
{
    *len = r->ns_len + 3 + klen;
    char *s = malloc(*len + 1);
    if (s) {
        memcpy(s, r->ns, r->ns_len);
        memcpy(s + r->ns_len, ":k:", 3);
        memcpy(s + r->ns_len + 3, key, klen);
        s[*len] = '\0';
    }
    return s;
}

/* A script that returns a version as a decimal bulk string. */
static sc_status version_reply(const sc__remote *r, redisReply *reply, const char *what, uint64_t *out,
                               char *err, size_t errlen)
{
    uint64_t v;
    if (reply->type != REDIS_REPLY_STRING || parse_u64(reply->str, reply->len, &v) != 0) {
        sc__remote_errf(err, errlen, "redis %s: %s script returned no valid version", sc__pool_addr(r->pool), what);
        freeReplyObject(reply);
        return SC_ERR_REMOTE;
    }
    freeReplyObject(reply);
    if (out)
        *out = v;
    return SC_OK;
}

/* lens[i] for an argument that is a C string: script() measures it. */
#define CSTR SIZE_MAX

/* Runs one of the loaded scripts; the binary arguments carry their lengths,
 * the rest are CSTR. */
static sc_status script(sc__remote *r, sc__script_id id, int nkeys, int argc, const char **args, size_t *lens,
                        int64_t deadline, redisReply **reply, char *err, size_t errlen)
{
    for (int i = 0; i < argc; i++)
        if (lens[i] == CSTR)
            lens[i] = strlen(args[i]);
    return sc__script_run(r->pool, (const char(*)[41])r->shas, id, nkeys, argc, args, lens, deadline, r->timeout_ms,
                          reply, err, errlen);
}

/* A script whose reply is a version (or sequence number). */
static sc_status versioned(sc__remote *r, sc__script_id id, int nkeys, int argc, const char **args, size_t *lens,
                           int64_t deadline, const char *what, uint64_t *out, char *err, size_t errlen)
{
    redisReply *reply;
    sc_status st = script(r, id, nkeys, argc, args, lens, deadline, &reply, err, errlen);
    return st != SC_OK ? st : version_reply(r, reply, what, out, err, errlen);
}

sc_status sc__remote_get(sc__remote *r, const char *key, size_t klen, sc__remote_item *item, char *err,
                         size_t errlen)
{
    memset(item, 0, sizeof *item);
    int64_t deadline = sc__remote_now_ms() + r->timeout_ms;
    size_t vklen;
    char *vk = value_key(r, key, klen, &vklen);
    if (!vk) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    const char *args[1] = {vk};
    size_t lens[1] = {vklen};
    redisReply *reply;
    sc_status st = script(r, SC__SCRIPT_GET, 1, 1, args, lens, deadline, &reply, err, errlen);
    free(vk);
    if (st != SC_OK)
        return st;
    if (reply->type == REDIS_REPLY_NIL) {
        freeReplyObject(reply);
        return SC_NOT_FOUND;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING || reply->element[2]->type != REDIS_REPLY_INTEGER) {
        sc__remote_errf(err, errlen, "redis %s: get script returned an unexpected reply", sc__pool_addr(r->pool));
        freeReplyObject(reply);
        return SC_ERR_REMOTE;
    }
    if (parse_u64(reply->element[1]->str, reply->element[1]->len, &item->version) != 0) {
        sc__remote_errf(err, errlen, "redis %s: %.*s:k:%.*s has no valid version field", sc__pool_addr(r->pool),
                 (int)r->ns_len, r->ns, (int)klen, key);
        freeReplyObject(reply);
        return SC_ERR_REMOTE;
    }
    redisReply *val = reply->element[0];
    item->data = malloc(val->len + 1);
    if (!item->data) {
        freeReplyObject(reply);
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    memcpy(item->data, val->str, val->len);
    item->data[val->len] = '\0';
    item->len = val->len;
    /* PTTL says -1 for no TTL; -2 (gone) cannot happen inside the script. */
    item->pttl_ms = reply->element[2]->integer < 0 ? -1 : reply->element[2]->integer;
    freeReplyObject(reply);
    return SC_OK;
}

sc_status sc__remote_set(sc__remote *r, const char *key, size_t klen, const void *val, size_t len,
                         const char *value_b64, uint64_t ttl_ms, sc__remote_event_kind kind,
                         uint64_t *version_out, char *err, size_t errlen)
{
    int json_value = kind == SC__REMOTE_EV_SET && r->fmt[0] == 'j';
    if ((kind != SC__REMOTE_EV_SET && kind != SC__REMOTE_EV_INVALIDATE) || (json_value && !value_b64) ||
        (len && !val)) {
        sc__remote_errf(err, errlen, "invalid set arguments (kind, value, or missing base64 value for JSON)");
        return SC_ERR_INVALID;
    }
    if (ttl_ms > MAX_TTL_MS) {
        sc__remote_errf(err, errlen, "TTL of %" PRIu64 " ms is too large (at most 2^53)", ttl_ms);
        return SC_ERR_INVALID;
    }
    int64_t deadline = sc__remote_now_ms() + r->timeout_ms;
    size_t vklen;
    char *vk = value_key(r, key, klen, &vklen);
    if (!vk) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms);
    const char *action = kind == SC__REMOTE_EV_SET ? "set" : "invalidate";
    const char *b64 = json_value ? value_b64 : "";
    const char *args[12] = {vk, r->seq_key, r->log_key, key, len ? val : "", ttl, action, r->sender,
                            r->channel, r->fmt, r->log_len, b64};
    /* The key, its Redis name and the value are binary. */
    size_t lens[12] = {vklen, CSTR, CSTR, klen, len, CSTR, CSTR, CSTR, CSTR, CSTR, CSTR, CSTR};
    sc_status st = versioned(r, SC__SCRIPT_SET, 3, 12, args, lens, deadline, "set", version_out, err, errlen);
    free(vk);
    return st;
}

sc_status sc__remote_delete(sc__remote *r, const char *key, size_t klen, uint64_t *version_out, char *err,
                            size_t errlen)
{
    int64_t deadline = sc__remote_now_ms() + r->timeout_ms;
    size_t vklen;
    char *vk = value_key(r, key, klen, &vklen);
    if (!vk) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    const char *args[8] = {vk, r->seq_key, r->log_key, key, r->sender, r->channel, r->fmt, r->log_len};
    size_t lens[8] = {vklen, CSTR, CSTR, klen, CSTR, CSTR, CSTR, CSTR};
    sc_status st = versioned(r, SC__SCRIPT_DELETE, 3, 8, args, lens, deadline, "delete", version_out, err, errlen);
    free(vk);
    return st;
}

/* One SCAN step: *cursor is updated in place; the batch of matching keys is
 * unlinked with one UNLINK. */
static sc_status clear_batch(sc__remote *r, char cursor[32], char *err, size_t errlen)
{
    const char *scan[6] = {"SCAN", cursor, "MATCH", r->scan_pattern, "COUNT", BATCH_STR};
    redisReply *reply;
    sc_status st = sc__pool_command(r->pool, sc__remote_now_ms() + r->timeout_ms, r->timeout_ms, "SCAN", 6, scan, NULL,
                                    &reply, err, errlen);
    if (st != SC_OK)
        return st;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[0]->len >= 32 || reply->element[1]->type != REDIS_REPLY_ARRAY) {
        sc__remote_errf(err, errlen, "redis %s: SCAN failed: %s", sc__pool_addr(r->pool),
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        freeReplyObject(reply);
        return SC_ERR_REMOTE;
    }
    memcpy(cursor, reply->element[0]->str, reply->element[0]->len);
    cursor[reply->element[0]->len] = '\0';

    redisReply *keys = reply->element[1];
    if (keys->elements > 0) {
        size_t argc = keys->elements + 1;
        const char **argv = malloc(argc * sizeof *argv);
        size_t *lens = malloc(argc * sizeof *lens);
        if (!argv || !lens) {
            free(argv);
            free(lens);
            freeReplyObject(reply);
            sc__remote_errf(err, errlen, "out of memory");
            return SC_ERR_NOMEM;
        }
        argv[0] = "UNLINK";
        lens[0] = 6;
        for (size_t i = 0; i < keys->elements; i++) {
            argv[i + 1] = keys->element[i]->str;
            lens[i + 1] = keys->element[i]->len;
        }
        redisReply *unlinked;
        st = sc__pool_command(r->pool, sc__remote_now_ms() + r->timeout_ms, r->timeout_ms, "UNLINK", (int)argc, argv,
                              lens, &unlinked, err, errlen);
        free(argv);
        free(lens);
        if (st == SC_OK) {
            if (unlinked->type == REDIS_REPLY_ERROR) {
                sc__remote_errf(err, errlen, "redis %s: UNLINK failed: %s", sc__pool_addr(r->pool), unlinked->str);
                st = SC_ERR_REMOTE;
            }
            freeReplyObject(unlinked);
        }
    }
    freeReplyObject(reply);
    return st;
}

sc_status sc__remote_clear(sc__remote *r, uint64_t *version_out, char *err, size_t errlen)
{
    char cursor[32] = "0";
    do {
        sc_status st = clear_batch(r, cursor, err, errlen);
        if (st != SC_OK)
            return st;
    } while (strcmp(cursor, "0") != 0);

    const char *args[6] = {r->seq_key, r->log_key, r->sender, r->channel, r->fmt, r->log_len};
    size_t lens[6] = {CSTR, CSTR, CSTR, CSTR, CSTR, CSTR};
    return versioned(r, SC__SCRIPT_CLEAR, 2, 6, args, lens, sc__remote_now_ms() + r->timeout_ms, "clear",
                     version_out, err, errlen);
}

sc_status sc__remote_seq(sc__remote *r, uint64_t *seq_out, char *err, size_t errlen)
{
    const char *args[2] = {r->seq_key, r->log_key};
    size_t lens[2] = {CSTR, CSTR};
    return versioned(r, SC__SCRIPT_SEQ, 2, 2, args, lens, sc__remote_now_ms() + r->timeout_ms, "seq", seq_out, err,
                     errlen);
}

sc_status sc__remote_heartbeat(sc__remote *r, char *err, size_t errlen)
{
    const char *args[5] = {r->seq_key, r->log_key, r->sender, r->channel, r->fmt};
    size_t lens[5] = {CSTR, CSTR, CSTR, CSTR, CSTR};
    return versioned(r, SC__SCRIPT_HEARTBEAT, 2, 5, args, lens, sc__remote_now_ms() + r->timeout_ms, "heartbeat",
                     NULL, err, errlen);
}

/* The sequence number of a log entry id "<seq>-0". */
static int entry_seq(const redisReply *id, uint64_t *seq)
{
    if (id->type != REDIS_REPLY_STRING)
        return -1;
    const char *dash = memchr(id->str, '-', id->len);
    return dash ? parse_u64(id->str, (size_t)(dash - id->str), seq) : -1;
}

/* Finds field "e" of one XRANGE entry [id, [field, value, ...]]. */
static const redisReply *entry_event(const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *fields = entry->element[1];
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i];
        if (f->type == REDIS_REPLY_STRING && f->len == 1 && f->str[0] == 'e' &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    }
    return NULL;
}

sc_status sc__remote_log_range(sc__remote *r, uint64_t after, uint64_t upto, sc__remote_log_fn fn, void *ud,
                               char *err, size_t errlen)
{
    uint64_t next = after + 1; /* first sequence still wanted */
    char start[32], end[32];
    snprintf(end, sizeof end, "%" PRIu64 "-0", upto);
    while (next != 0 && next <= upto) {
        snprintf(start, sizeof start, "%" PRIu64 "-0", next);
        const char *argv[6] = {"XRANGE", r->log_key, start, end, "COUNT", BATCH_STR};
        redisReply *reply;
        /* The connection goes back to the pool before fn runs, so fn may use
         * the Redis tier itself. */
        sc_status st = sc__pool_command(r->pool, sc__remote_now_ms() + r->timeout_ms, r->timeout_ms, "XRANGE", 6, argv,
                                        NULL, &reply, err, errlen);
        if (st != SC_OK)
            return st;
        if (reply->type != REDIS_REPLY_ARRAY) {
            sc__remote_errf(err, errlen, "redis %s: XRANGE failed: %s", sc__pool_addr(r->pool),
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
            freeReplyObject(reply);
            return SC_ERR_REMOTE;
        }
        if (reply->elements == 0) {
            freeReplyObject(reply);
            break;
        }
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *entry = reply->element[i];
            const redisReply *ev = entry_event(entry);
            uint64_t seq;
            if (!ev || entry_seq(entry->element[0], &seq) != 0) {
                sc__remote_errf(err, errlen, "redis %s: malformed entry in %s", sc__pool_addr(r->pool), r->log_key);
                freeReplyObject(reply);
                return SC_ERR_REMOTE;
            }
            if (fn(seq, ev->str, ev->len, ud) != 0) {
                freeReplyObject(reply);
                return SC_OK;
            }
            next = seq + 1;
        }
        int short_page = reply->elements < BATCH;
        freeReplyObject(reply);
        if (short_page)
            break;
    }
    return SC_OK;
}
