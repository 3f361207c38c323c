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

#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>
#include <inttypes.h>
#include <limits.h>
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
    sc__router *router;  /* Redis Cluster or Sentinel; NULL: one Redis */
    unsigned timeout_ms;
    char *ns;
    size_t ns_len;
    char *prefix;        /* "{ns}:k:" */
    size_t prefix_len;
    char *channel;
    char *seq_key;
    char *meta_key;
    char *log_key;
    char *scan_pattern;  /* "{<ns with glob characters escaped>}:k:*" */
    const char *fmt;     /* "m" or "j", as the scripts expect */
    char log_len[24];    /* decimal; "0" disables the log */
    char secret_candidate[33]; /* random: the namespace's signing secret if
                                  this process is the first to need one */
    char shas[SC__SCRIPT_COUNT][41];
    _Atomic uint64_t seen; /* the highest version Redis has shown this remote
                              (or the pod applied): see takes_version */
};

/* "{ns}" followed by suffix. */
static char *tagged(const char *ns, const char *suffix)
{
    size_t ln = strlen(ns), ls = strlen(suffix);
    char *s = malloc(ln + ls + 3);
    if (s) {
        s[0] = '{';
        memcpy(s + 1, ns, ln);
        s[ln + 1] = '}';
        memcpy(s + ln + 2, suffix, ls + 1);
    }
    return s;
}

/* SCAN MATCH treats * ? [ ] \ as glob syntax; a namespace such as "a*b" must
 * match only itself. */
static char *glob_pattern(const char *ns)
{
    size_t n = strlen(ns);
    char *s = malloc(2 * n + sizeof "{}:k:*");
    if (!s)
        return NULL;
    char *w = s;
    *w++ = '{';
    for (const char *c = ns; *c; c++) {
        if (strchr("*?[]\\", *c))
            *w++ = '\\';
        *w++ = *c;
    }
    memcpy(w, "}:k:*", sizeof "}:k:*");
    return s;
}

/* n random bytes from the kernel as 2n hex digits and a NUL. The clock and
 * the address of out stand in when the kernel has no randomness to give
 * (they are weak; the secret then only keeps out careless publishers). */
static void random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[64];
    if (n > sizeof b)
        n = sizeof b;
    if (getrandom(b, n, GRND_NONBLOCK) != (ssize_t)n) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[i] = (unsigned char)x;
        }
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int sc__remote_ns_valid(const char *ns)
{
    if (!ns || !*ns || strlen(ns) > 256)
        return 0;
    for (const unsigned char *c = (const unsigned char *)ns; *c; c++)
        if (*c == '{' || *c == '}' || *c < 0x20 || *c == 0x7f)
            return 0;
    return 1;
}

sc_status sc__remote_open(const sc__remote_config *cfg, sc__remote **out, char *err, size_t errlen)
{
    *out = NULL;
    int routed = cfg && (cfg->cluster_nodes || cfg->sentinel_nodes);
    if (!cfg || !sc__remote_ns_valid(cfg->ns) || cfg->timeout_ms == 0 || cfg->pool_size == 0 ||
        (!routed && !cfg->unix_socket && (cfg->port <= 0 || cfg->port > 65535)) || cfg->db < 0 ||
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
    r->prefix = tagged(cfg->ns, ":k:");
    r->prefix_len = r->ns_len + 5;
    r->channel = cfg->channel ? strdup(cfg->channel) : tagged(cfg->ns, ":events");
    r->seq_key = tagged(cfg->ns, ":seq");
    r->meta_key = tagged(cfg->ns, ":meta");
    r->log_key = tagged(cfg->ns, ":log");
    r->scan_pattern = glob_pattern(cfg->ns);
    r->fmt = cfg->wire_format == SC_WIRE_JSON ? "j" : "m";
    snprintf(r->log_len, sizeof r->log_len, "%zu", cfg->log_len);
    random_hex(r->secret_candidate, 16);
    if (!r->ns || !r->prefix || !r->channel || !r->seq_key || !r->meta_key || !r->log_key || !r->scan_pattern) {
        sc__remote_close(r);
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    /* The first SCRIPT LOAD connects the first slot: it proves that Redis is
     * there and accepts our credentials. */
    sc_status st = sc__pool_create(cfg, &r->pool, err, errlen);
    if (st == SC_OK && routed) {
        /* Find the namespace's node first, so a wrong seed or sentinel list
         * fails here with every node's answer. */
        st = sc__router_create(cfg, &r->router, err, errlen);
        if (st == SC_OK)
            st = sc__router_refresh(r->router, sc__remote_now_ms() + r->timeout_ms, err, errlen);
        if (st == SC_OK)
            sc__pool_set_router(r->pool, r->router);
    }
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
    sc__router_destroy(r->router);
    free(r->ns);
    free(r->prefix);
    free(r->channel);
    free(r->seq_key);
    free(r->meta_key);
    free(r->log_key);
    free(r->scan_pattern);
    free(r);
}

/* "{ns}:k:<key>" (the key may hold any byte) into buf when it fits, else a
 * malloc'd string; *heap says which. NULL on out of memory. */
static char *value_key(const sc__remote *r, const char *key, size_t klen, char *buf, size_t cap, size_t *len,
                       int *heap)
{
    *len = r->prefix_len + klen;
    *heap = *len + 1 > cap;
    char *s = *heap ? malloc(*len + 1) : buf;
    if (s) {
        memcpy(s, r->prefix, r->prefix_len);
        memcpy(s + r->prefix_len, key, klen);
        s[*len] = '\0';
    }
    return s;
}

/* lens[i] for an argument that is a C string: script() measures it. */
#define CSTR SIZE_MAX

/* The scripts that take a version (prelude.lua take()) get, as their last
 * argument, the highest version this remote has seen: a counter found at
 * or below it means Redis lost writes, and the script starts a new history
 * past them instead of handing their versions out again (a compare-and-set
 * against a lost write would match a new one). So does sync.lua, which a
 * pod runs on every (re)subscription: a counter behind a version the pod
 * saw acknowledged (an own write whose event never came back) moves past
 * it there, before any pod's next write. fetch_store's command is built
 * whole in remote/fetch.c, which adds it there. */
static int takes_version(sc__script_id id)
{
    switch (id) {
    case SC__SCRIPT_SET:
    case SC__SCRIPT_DELETE:
    case SC__SCRIPT_CLEAR:
    case SC__SCRIPT_SET_BEHIND:
    case SC__SCRIPT_DELETE_BEHIND:
    case SC__SCRIPT_TAG:
    case SC__SCRIPT_TAG_INVALIDATE:
    case SC__SCRIPT_SYNC:
        return 1;
    default:
        return 0;
    }
}

#define MAX_TAKE_ARGS 16

/* Runs one of the loaded scripts; the binary arguments carry their lengths,
 * the rest are CSTR. */
static sc_status script(sc__remote *r, sc__script_id id, int nkeys, int argc, const char **args, size_t *lens,
                        int64_t deadline, redisReply **reply, char *err, size_t errlen)
{
    const char *with_seen[MAX_TAKE_ARGS + 1];
    size_t with_seen_lens[MAX_TAKE_ARGS + 1];
    char seen[24];
    if (takes_version(id)) {
        if (argc > MAX_TAKE_ARGS) {
            sc__remote_errf(err, errlen, "script %d: %d arguments, at most %d", (int)id, argc, MAX_TAKE_ARGS);
            return SC_ERR_INVALID;
        }
        memcpy(with_seen, args, (size_t)argc * sizeof *args);
        memcpy(with_seen_lens, lens, (size_t)argc * sizeof *lens);
        sc__remote_u64_str(sc__remote_seen(r), seen);
        with_seen[argc] = seen;
        with_seen_lens[argc] = CSTR;
        args = with_seen;
        lens = with_seen_lens;
        argc++;
    }
    for (int i = 0; i < argc; i++)
        if (lens[i] == CSTR)
            lens[i] = strlen(args[i]);
    return sc__script_run(r->pool, (const char(*)[41])r->shas, id, nkeys, argc, args, lens, deadline, r->timeout_ms,
                          reply, err, errlen);
}

void sc__remote_saw(sc__remote *r, uint64_t version)
{
    if (!r)
        return;
    uint64_t cur = atomic_load_explicit(&r->seen, memory_order_relaxed);
    while (version > cur &&
           !atomic_compare_exchange_weak_explicit(&r->seen, &cur, version, memory_order_relaxed, memory_order_relaxed))
        ;
}

uint64_t sc__remote_seen(sc__remote *r)
{
    return atomic_load_explicit(&r->seen, memory_order_relaxed);
}

static sc_status bad_reply(const sc__remote *r, redisReply *reply, const char *what, char *err, size_t errlen)
{
    sc__remote_errf(err, errlen, "redis %s: %s script returned an unexpected reply", sc__pool_addr(r->pool), what);
    freeReplyObject(reply);
    return SC_ERR_REMOTE;
}

static int reply_u64(const redisReply *e, uint64_t *out)
{
    return e->type == REDIS_REPLY_STRING && sc__remote_parse_u64(e->str, e->len, out) == 0;
}

/* A write script's reply {version, 1 | publish error}. */
static sc_status write_reply(sc__remote *r, redisReply *reply, const char *what, sc__remote_result *res, char *err,
                             size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || !reply_u64(reply->element[0], &res->version))
        return bad_reply(r, reply, what, err, errlen);
    sc__remote_saw(r, res->version);
    const redisReply *pub = reply->element[1];
    res->published = pub->type == REDIS_REPLY_INTEGER && pub->integer == 1;
    if (!res->published)
        snprintf(res->publish_error, sizeof res->publish_error, "%s%.*s",
                 pub->type == REDIS_REPLY_STRING ? sc__remote_explain(pub->str) : "",
                 pub->type == REDIS_REPLY_STRING ? (int)pub->len : 0, pub->type == REDIS_REPLY_STRING ? pub->str : "");
    freeReplyObject(reply);
    return SC_OK;
}

/* The four template parts around the three holes of ev, into args/lens. */
static void event_parts(const sc__remote_event *ev, const char **args, size_t *lens)
{
    size_t from = 0;
    for (int i = 0; i < 3; i++) {
        args[i] = ev->buf + from;
        lens[i] = ev->cut[i] - from;
        from = ev->cut[i];
    }
    args[3] = ev->buf + from;
    lens[3] = ev->len - from;
}

static int event_ok(const sc__remote_event *ev)
{
    return ev && ev->buf && ev->cut[0] <= ev->cut[1] && ev->cut[1] <= ev->cut[2] && ev->cut[2] <= ev->len;
}

sc_status sc__remote_get(sc__remote *r, const char *key, size_t klen, sc__remote_item *item, char *err,
                         size_t errlen)
{
    memset(item, 0, sizeof *item);
    int64_t deadline = sc__remote_now_ms() + r->timeout_ms;
    char kbuf[256];
    size_t vklen;
    int heap;
    char *vk = value_key(r, key, klen, kbuf, sizeof kbuf, &vklen, &heap);
    if (!vk) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    const char *args[3] = {vk, r->seq_key, r->meta_key};
    size_t lens[3] = {vklen, CSTR, CSTR};
    redisReply *reply;
    sc_status st = script(r, SC__SCRIPT_GET, 3, 3, args, lens, deadline, &reply, err, errlen);
    if (heap)
        free(vk);
    if (st != SC_OK)
        return st;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 4 || reply->elements > 5 ||
        !reply_u64(reply->element[3], &item->known))
        return bad_reply(r, reply, "get", err, errlen);
    sc__remote_saw(r, item->known);
    redisReply *val = reply->element[0];
    if (val->type == REDIS_REPLY_NIL) {
        freeReplyObject(reply);
        return SC_NOT_FOUND;
    }
    if (val->type != REDIS_REPLY_STRING || reply->element[2]->type != REDIS_REPLY_INTEGER)
        return bad_reply(r, reply, "get", err, errlen);
    if (!reply_u64(reply->element[1], &item->version)) {
        sc__remote_errf(err, errlen, "redis %s: %s%.*s has no valid version field", sc__pool_addr(r->pool), r->prefix,
                        (int)klen, key);
        freeReplyObject(reply);
        return SC_ERR_REMOTE;
    }
    const redisReply *tg = reply->elements > 4 && reply->element[4]->type == REDIS_REPLY_STRING ? reply->element[4]
                                                                                                : NULL;
    size_t tl = tg ? tg->len : 0;
    item->data = malloc(val->len + 1 + tl + 1);
    if (!item->data) {
        freeReplyObject(reply);
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    memcpy(item->data, val->str, val->len);
    item->data[val->len] = '\0';
    item->len = val->len;
    if (tl)
        memcpy(item->data + val->len + 1, tg->str, tl);
    item->data[val->len + 1 + tl] = '\0';
    item->tags = item->data + val->len + 1;
    item->tags_len = tl;
    /* PTTL says -1 for no TTL; -2 (gone) cannot happen inside the script. */
    item->pttl_ms = reply->element[2]->integer < 0 ? -1 : reply->element[2]->integer;
    freeReplyObject(reply);
    return SC_OK;
}

static sc_status set_script(sc__remote *r, const char *key, size_t klen, const void *val, size_t len,
                            uint64_t ttl_ms, const uint64_t *expected, const sc__remote_event *ev,
                            sc__remote_result *res, char *err, size_t errlen)
{
    if ((len && !val) || !event_ok(ev)) {
        sc__remote_errf(err, errlen, "invalid set arguments (value or event)");
        return SC_ERR_INVALID;
    }
    if (ttl_ms > MAX_TTL_MS) {
        sc__remote_errf(err, errlen, "TTL of %" PRIu64 " ms is too large (at most 2^53)", ttl_ms);
        return SC_ERR_INVALID;
    }
    int64_t deadline = sc__remote_now_ms() + r->timeout_ms;
    char kbuf[256];
    size_t vklen;
    int heap;
    char *vk = value_key(r, key, klen, kbuf, sizeof kbuf, &vklen, &heap);
    if (!vk) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    char ttl[24], want[24] = "";
    sc__remote_u64_str(ttl_ms, ttl);
    if (expected)
        sc__remote_u64_str(*expected, want);
    /* The tags ('' here: sc_set_tagged's path is remote/fetch.c) always
     * come, so the script's last argument is the seen version (script). */
    const char *args[15] = {vk,  r->seq_key, r->meta_key, r->log_key, len ? val : "",
                            ttl, r->fmt,     r->log_len,  r->channel};
    size_t lens[15] = {vklen, CSTR, CSTR, CSTR, len, CSTR, CSTR, CSTR, CSTR};
    event_parts(ev, args + 9, lens + 9);
    args[13] = want;
    lens[13] = CSTR;
    args[14] = "";
    lens[14] = 0;
    redisReply *reply;
    sc_status st = script(r, SC__SCRIPT_SET, 4, 15, args, lens, deadline, &reply, err, errlen);
    if (heap)
        free(vk);
    if (st != SC_OK)
        return st;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "conflict") == 0) {
        memset(res, 0, sizeof *res);
        if (!reply_u64(reply->element[1], &res->version))
            return bad_reply(r, reply, "set", err, errlen);
        freeReplyObject(reply);
        sc__remote_errf(err, errlen, "the key's version is %" PRIu64 ", not the expected %" PRIu64, res->version,
                        *expected);
        return SC_ERR_CONFLICT;
    }
    return write_reply(r, reply, "set", res, err, errlen);
}

sc_status sc__remote_set(sc__remote *r, const char *key, size_t klen, const void *val, size_t len, uint64_t ttl_ms,
                         const sc__remote_event *ev, sc__remote_result *res, char *err, size_t errlen)
{
    return set_script(r, key, klen, val, len, ttl_ms, NULL, ev, res, err, errlen);
}

sc_status sc__remote_set_if(sc__remote *r, const char *key, size_t klen, const void *val, size_t len,
                            uint64_t ttl_ms, uint64_t expected, const sc__remote_event *ev, sc__remote_result *res,
                            char *err, size_t errlen)
{
    return set_script(r, key, klen, val, len, ttl_ms, &expected, ev, res, err, errlen);
}

sc_status sc__remote_version(sc__remote *r, const char *key, size_t klen, uint64_t *version, char *err,
                             size_t errlen)
{
    char kbuf[256];
    size_t vklen;
    int heap;
    char *vk = value_key(r, key, klen, kbuf, sizeof kbuf, &vklen, &heap);
    if (!vk) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    const char *args[2] = {vk, r->meta_key};
    size_t lens[2] = {vklen, CSTR};
    redisReply *reply;
    sc_status st = script(r, SC__SCRIPT_VERSION, 2, 2, args, lens, sc__remote_now_ms() + r->timeout_ms, &reply, err,
                          errlen);
    if (heap)
        free(vk);
    if (st != SC_OK)
        return st;
    if (!reply_u64(reply, version))
        return bad_reply(r, reply, "version", err, errlen);
    sc__remote_saw(r, *version);
    freeReplyObject(reply);
    return SC_OK;
}

/* The EVALSHA of get_many.lua over n keys into g: argv[0..2] are EVALSHA,
 * the SHA and the key count, so the same arguments serve the script runner
 * (from argv + 3) and a pipeline (whole). */
typedef struct get_many_cmd {
    const char **argv;
    size_t *lens;
    char **owned;  /* the n value keys */
    size_t n;
    char numkeys[24];
} get_many_cmd;

static void get_many_cmd_free(get_many_cmd *g)
{
    if (g->owned)
        for (size_t i = 0; i < g->n; i++)
            free(g->owned[i]);
    free(g->owned);
    free(g->argv);
    free(g->lens);
    memset(g, 0, sizeof *g);
}

static sc_status get_many_cmd_build(sc__remote *r, const char *const *keys, const size_t *klens, size_t n,
                                    get_many_cmd *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    if (n > INT32_MAX - 5) {
        sc__remote_errf(err, errlen, "too many keys");
        return SC_ERR_INVALID;
    }
    size_t argc = n + 5;
    g->n = n;
    g->argv = malloc(argc * sizeof *g->argv);
    g->lens = malloc(argc * sizeof *g->lens);
    g->owned = calloc(n ? n : 1, sizeof *g->owned);
    if (!g->argv || !g->lens || !g->owned) {
        get_many_cmd_free(g);
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    snprintf(g->numkeys, sizeof g->numkeys, "%zu", n + 2);
    const char *head[5] = {"EVALSHA", r->shas[SC__SCRIPT_GET_MANY], g->numkeys, r->seq_key, r->meta_key};
    for (size_t i = 0; i < 5; i++) {
        g->argv[i] = head[i];
        g->lens[i] = strlen(head[i]);
    }
    for (size_t i = 0; i < n; i++) {
        int heap;
        g->owned[i] = value_key(r, keys[i], klens[i], NULL, 0, &g->lens[i + 5], &heap);
        if (!g->owned[i]) {
            get_many_cmd_free(g);
            sc__remote_errf(err, errlen, "out of memory");
            return SC_ERR_NOMEM;
        }
        g->argv[i + 5] = g->owned[i];
    }
    return SC_OK;
}

/* Parses (and frees) get_many.lua's reply for n keys into items and *known.
 * On failure no item holds data. */
static sc_status get_many_reply(sc__remote *r, redisReply *reply, size_t n, sc__remote_item *items, uint64_t *known,
                                char *err, size_t errlen)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n + 1 || !reply_u64(reply->element[0], known))
        return bad_reply(r, reply, "get_many", err, errlen);
    /* The counter the values were read at, as sc__remote_get notes it: a
     * value handed out here whose write Redis later loses (a rollback, a
     * failover) must never have its number handed out again (take()). */
    sc__remote_saw(r, *known);
    sc_status st = SC_OK;
    for (size_t i = 0; i < n && st == SC_OK; i++) {
        const redisReply *e = reply->element[i + 1];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->elements > 4) {
            st = SC_ERR_REMOTE;
            break;
        }
        if (e->element[0]->type != REDIS_REPLY_STRING)
            continue; /* absent: data stays NULL */
        if (!reply_u64(e->element[1], &items[i].version) || e->element[2]->type != REDIS_REPLY_INTEGER) {
            st = SC_ERR_REMOTE;
            break;
        }
        const redisReply *tg = e->elements > 3 && e->element[3]->type == REDIS_REPLY_STRING ? e->element[3] : NULL;
        size_t tl = tg ? tg->len : 0;
        items[i].data = malloc(e->element[0]->len + 1 + tl + 1);
        if (!items[i].data) {
            st = SC_ERR_NOMEM;
            break;
        }
        memcpy(items[i].data, e->element[0]->str, e->element[0]->len);
        items[i].data[e->element[0]->len] = '\0';
        items[i].len = e->element[0]->len;
        if (tl)
            memcpy(items[i].data + e->element[0]->len + 1, tg->str, tl);
        items[i].data[e->element[0]->len + 1 + tl] = '\0';
        items[i].tags = items[i].data + e->element[0]->len + 1;
        items[i].tags_len = tl;
        items[i].pttl_ms = e->element[2]->integer < 0 ? -1 : e->element[2]->integer;
        items[i].known = *known;
    }
    if (st != SC_OK)
        for (size_t i = 0; i < n; i++) {
            free(items[i].data);
            items[i].data = NULL;
        }
    if (st == SC_ERR_REMOTE)
        return bad_reply(r, reply, "get_many", err, errlen);
    freeReplyObject(reply);
    if (st == SC_ERR_NOMEM)
        sc__remote_errf(err, errlen, "out of memory");
    return st;
}

sc_status sc__remote_get_many(sc__remote *r, const char *const *keys, const size_t *klens, size_t n,
                              sc__remote_item *items, uint64_t *known, char *err, size_t errlen)
{
    memset(items, 0, n * sizeof *items);
    get_many_cmd g;
    sc_status st = get_many_cmd_build(r, keys, klens, n, &g, err, errlen);
    if (st != SC_OK)
        return st;
    redisReply *reply;
    st = script(r, SC__SCRIPT_GET_MANY, (int)n + 2, (int)n + 2, g.argv + 3, g.lens + 3,
                sc__remote_now_ms() + r->timeout_ms, &reply, err, errlen);
    if (st == SC_OK)
        st = get_many_reply(r, reply, n, items, known, err, errlen);
    get_many_cmd_free(&g);
    return st;
}

/* The calls whose remotes talk to one node, pipelined on a connection of
 * one of their pools: the exchange is begun (commands written) for every
 * node before any is ended (replies read), so the nodes answer at the same
 * time. */
typedef struct piped_group {
    sc__remote_piped **calls; /* n calls, a range of the runner's array */
    size_t n;
    sc__pool_cmd *cmds;
    redisReply **replies;
    size_t built;             /* calls holding a built command */
    int ok;                   /* every command built */
    sc__remote *via;          /* whose pool carries the exchange */
    sc__pool_exchange x;
    int begun;                /* x holds a connection until ended */
    sc_status st;             /* of the begin, then of the end */
    char err[sizeof ((sc__remote_piped *)0)->err];
} piped_group;

static void piped_prepare(piped_group *g)
{
    g->cmds = calloc(g->n, sizeof *g->cmds);
    g->replies = calloc(g->n, sizeof *g->replies);
    g->ok = g->cmds && g->replies;
    for (g->built = 0; g->ok && g->built < g->n; g->built++)
        g->ok = g->calls[g->built]->build(g->calls[g->built], &g->cmds[g->built]) == SC_OK;
    if (!g->ok && g->built)
        g->built--; /* the one that failed holds nothing */
    /* Any pool of the group talks to the node; each holds only its share of
     * redis_pool_size, so concurrent batches take turns over them rather
     * than queue on the first one's. */
    static atomic_uint turn;
    g->via = g->calls[atomic_fetch_add_explicit(&turn, 1, memory_order_relaxed) % g->n]->r;
    g->st = SC_ERR_REMOTE;
}

static void piped_begin(piped_group *g)
{
    if (!g->ok)
        return;
    sc__remote *via = g->via;
    g->st = sc__pool_begin(via->pool, sc__remote_now_ms() + via->timeout_ms, via->timeout_ms, g->calls[0]->what,
                           g->n, g->cmds, &g->x, g->err, sizeof g->err);
    g->begun = g->st == SC_OK;
}

/* Reads the group's replies (when its exchange was begun) and gives each
 * call its answer. A call whose reply is no answer keeps status
 * SC_ERR_REMOTE with no message, for the caller's fallback; so does every
 * call of the group when the connection failed (its own path may reach the
 * node that serves it now), except a write whose exchange was sent (see
 * below). A timeout (the deadline is spent: a retry would only double it) or
 * out of memory is every call's answer. */
static void piped_end(piped_group *g)
{
    int sent = g->begun;
    if (g->begun) {
        g->st = sc__pool_end(&g->x, g->replies, g->err, sizeof g->err);
        g->begun = 0;
    }
    for (size_t i = 0; i < g->n; i++) {
        sc__remote_piped *k = g->calls[i];
        if (g->st == SC_ERR_TIMEOUT || g->st == SC_ERR_NOMEM) {
            k->status = g->st;
            snprintf(k->err, sizeof k->err, "%s", g->err);
        } else if (g->st != SC_OK) {
            /* Sent (sc__pool_begin succeeded), the commands may have run
             * in Redis before the connection dropped. A write's
             * outcome is unknown, and running it again alone is a second
             * run (fetch_lock would find the caller's own lock and wait for
             * it to lapse); a read may run again. */
            if (sent && k->writes) {
                k->status = g->st;
                snprintf(k->err, sizeof k->err, "%.200s (outcome unknown)", g->err[0] ? g->err : "connection lost");
            }
            continue;
        } else if (g->replies[i]->type == REDIS_REPLY_ERROR) {
            /* MOVED, ASK, NOSCRIPT, TRYAGAIN...: the call's own path knows
             * what to do about each. */
            freeReplyObject(g->replies[i]);
        } else
            k->status = k->parse(k, g->replies[i]);
    }
}

static void piped_free(piped_group *g)
{
    for (size_t i = 0; i < g->built; i++)
        g->calls[i]->unbuild(g->calls[i]);
    free(g->cmds);
    free(g->replies);
}

static int failed_group(const piped_group *g)
{
    return g->st == SC_ERR_TIMEOUT || g->st == SC_ERR_NOMEM;
}

/* Groups in the order of their pools' addresses (see below). */
static int by_pool(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(piped_group *const *)a)->via->pool;
    uintptr_t y = (uintptr_t)(*(piped_group *const *)b)->via->pool;
    return (x > y) - (x < y);
}

/* A call with SC_ERR_REMOTE and no message has no answer yet. */
static int unanswered(const sc__remote_piped *k)
{
    return k->status == SC_ERR_REMOTE && !k->err[0];
}

void sc__remote_run_piped(sc__remote_piped **calls, size_t n)
{
    char (*node)[300] = calloc(n ? n : 1, sizeof *node);
    sc__remote_piped **member = calloc(n ? n : 1, sizeof *member);
    piped_group *groups = calloc(n ? n : 1, sizeof *groups);
    piped_group **order = calloc(n ? n : 1, sizeof *order);
    unsigned char *done = calloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) {
        calls[i]->status = SC_ERR_REMOTE;
        calls[i]->err[0] = '\0';
        calls[i]->skipped = 0;
        if (node && sc__pool_node(calls[i]->r->pool, node[i], sizeof node[i]) != SC_OK)
            node[i][0] = '\0'; /* no node known yet: its own path finds one */
    }
    /* One pipelined exchange per node. Out of memory leaves every call to
     * its own path. */
    size_t ng = 0, nm = 0;
    int mem = node && member && groups && order && done;
    for (size_t i = 0; mem && i < n; i++) {
        if (done[i] || !node[i][0])
            continue;
        piped_group *g = &groups[ng];
        order[ng++] = g;
        g->calls = &member[nm];
        for (size_t j = i; j < n; j++)
            if (!done[j] && strcmp(node[j], node[i]) == 0) {
                member[nm++] = calls[j];
                g->n++;
                done[j] = 1;
            }
        piped_prepare(g);
    }
    /* Every node's commands are written before any node's replies are
     * read, so the batch costs about one round trip however many nodes it
     * spans. Meanwhile it holds a connection of one pool per node, and
     * threads running batches at once compete for them (redis_pool_size per
     * pool, possibly 1). Two rules keep them from waiting on each other for
     * ever (or until the deadline): the pools are taken in one order, that
     * of their addresses, the same in every thread, so no cycle of waits
     * can form (a thread waiting for a pool only holds pools before it,
     * and the holders of that pool wait, if at all, only for pools after
     * it); and a thread never waits for a second connection of a pool it
     * holds one of (two groups on one pool: the node's routing changed
     * while the batch was being grouped), as with a pool of one connection
     * it would wait for itself: the exchanges held are ended first. A
     * connection is taken in sc__pool_begin only, and nothing between
     * begin and end takes another, so these are all the waits there are.
     *
     * Once an exchange fails (a timeout, out of memory) the batch has
     * failed: no further exchange is begun, as a batch read one exchange
     * after the other would stop, so the whole takes about timeout_ms per
     * failure at most. Those already begun are ended and keep their
     * answers. */
    qsort(order, ng, sizeof *order, by_pool);
    int failed = 0;
    size_t begun = 0, ended = 0;
    for (; begun < ng && !failed; begun++) {
        if (begun > 0 && order[begun]->via->pool == order[begun - 1]->via->pool)
            for (; ended < begun; ended++) {
                piped_end(order[ended]);
                failed |= failed_group(order[ended]);
            }
        if (failed)
            break;
        piped_begin(order[begun]);
        failed |= failed_group(order[begun]);
    }
    for (; ended < begun; ended++)
        piped_end(order[ended]);
    for (size_t i = 0; i < ng; i++) {
        for (size_t j = 0; j < groups[i].n; j++)
            failed |= groups[i].calls[j]->status != SC_OK && !unanswered(groups[i].calls[j]);
        piped_free(&groups[i]);
    }
    for (size_t i = 0; i < n; i++) {
        sc__remote_piped *k = calls[i];
        if (!unanswered(k))
            continue;
        if (failed) {
            k->skipped = 1;
            snprintf(k->err, sizeof k->err, "not run: another part of the batch failed first");
            continue;
        }
        k->status = k->alone(k);
        failed = k->status != SC_OK;
    }
    free(node);
    free(member);
    free(groups);
    free(order);
    free(done);
}

/* A get_many call as a pipelined script call. */
typedef struct get_many_piped {
    sc__remote_piped base; /* first: the runner hands back &base */
    sc__remote_get_many_call *call;
    get_many_cmd g;
} get_many_piped;

static sc_status get_many_piped_build(sc__remote_piped *p, sc__pool_cmd *cmd)
{
    get_many_piped *gp = (get_many_piped *)p;
    sc__remote_get_many_call *k = gp->call;
    char ignored[8]; /* the fallback says it again if it matters */
    sc_status st = get_many_cmd_build(k->r, k->keys, k->klens, k->n, &gp->g, ignored, sizeof ignored);
    if (st == SC_OK)
        *cmd = (sc__pool_cmd){(int)k->n + 5, gp->g.argv, gp->g.lens};
    return st;
}

static void get_many_piped_unbuild(sc__remote_piped *p)
{
    get_many_cmd_free(&((get_many_piped *)p)->g);
}

static sc_status get_many_piped_parse(sc__remote_piped *p, redisReply *reply)
{
    sc__remote_get_many_call *k = ((get_many_piped *)p)->call;
    return get_many_reply(k->r, reply, k->n, k->items, &k->known, p->err, sizeof p->err);
}

static sc_status get_many_piped_alone(sc__remote_piped *p)
{
    sc__remote_get_many_call *k = ((get_many_piped *)p)->call;
    return sc__remote_get_many(k->r, k->keys, k->klens, k->n, k->items, &k->known, p->err, sizeof p->err);
}

void sc__remote_get_many_pipelined(sc__remote_get_many_call *calls, size_t n)
{
    get_many_piped *gp = calloc(n ? n : 1, sizeof *gp);
    sc__remote_piped **run = calloc(n ? n : 1, sizeof *run);
    for (size_t i = 0; i < n; i++) {
        memset(calls[i].items, 0, calls[i].n * sizeof *calls[i].items);
        calls[i].status = SC_ERR_REMOTE;
        calls[i].skipped = 0;
        if (gp && run) {
            gp[i].base = (sc__remote_piped){.r = calls[i].r,
                                            .what = "EVALSHA (get_many script, pipelined)",
                                            .build = get_many_piped_build,
                                            .unbuild = get_many_piped_unbuild,
                                            .parse = get_many_piped_parse,
                                            .alone = get_many_piped_alone};
            gp[i].call = &calls[i];
            run[i] = &gp[i].base;
        } else {
            calls[i].status = SC_ERR_NOMEM;
            snprintf(calls[i].err, sizeof calls[i].err, "out of memory");
        }
    }
    if (gp && run) {
        sc__remote_run_piped(run, n);
        for (size_t i = 0; i < n; i++) {
            calls[i].status = gp[i].base.status;
            calls[i].skipped = gp[i].base.skipped;
            snprintf(calls[i].err, sizeof calls[i].err, "%s", gp[i].base.err);
        }
    }
    free(gp);
    free(run);
}

sc_status sc__remote_delete(sc__remote *r, const char *key, size_t klen, uint64_t tombstone_ttl_ms,
                            const sc__remote_event *ev, sc__remote_result *res, char *err, size_t errlen)
{
    if (!event_ok(ev)) {
        sc__remote_errf(err, errlen, "invalid delete arguments (event)");
        return SC_ERR_INVALID;
    }
    int64_t deadline = sc__remote_now_ms() + r->timeout_ms;
    char kbuf[256];
    size_t vklen;
    int heap;
    char *vk = value_key(r, key, klen, kbuf, sizeof kbuf, &vklen, &heap);
    if (!vk) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    char tomb[24];
    sc__remote_u64_str(tombstone_ttl_ms, tomb);
    const char *args[12] = {vk, r->seq_key, r->meta_key, r->log_key, tomb, r->fmt, r->log_len, r->channel};
    size_t lens[12] = {vklen, CSTR, CSTR, CSTR, CSTR, CSTR, CSTR, CSTR};
    event_parts(ev, args + 8, lens + 8);
    redisReply *reply;
    sc_status st = script(r, SC__SCRIPT_DELETE, 4, 12, args, lens, deadline, &reply, err, errlen);
    if (heap)
        free(vk);
    return st != SC_OK ? st : write_reply(r, reply, "delete", res, err, errlen);
}

/* One SCAN step: *cursor is updated in place; the batch of matching keys
 * goes to the clear_batch script, which unlinks those below the floor. */
static sc_status clear_batch(sc__remote *r, char cursor[32], const char *floor, char *err, size_t errlen)
{
    const char *scan[6] = {"SCAN", cursor, "MATCH", r->scan_pattern, "COUNT", BATCH_STR};
    redisReply *reply;
    sc_status st = sc__pool_command(r->pool, sc__remote_now_ms() + r->timeout_ms, r->timeout_ms, "SCAN", SC__POOL_READ,
                                    6, scan, NULL, &reply, err, errlen);
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
        for (size_t i = 0; i < keys->elements; i++) {
            argv[i] = keys->element[i]->str;
            lens[i] = keys->element[i]->len;
        }
        argv[keys->elements] = floor;
        lens[keys->elements] = CSTR;
        redisReply *done;
        st = script(r, SC__SCRIPT_CLEAR_BATCH, (int)keys->elements, (int)argc, argv, lens,
                    sc__remote_now_ms() + r->timeout_ms, &done, err, errlen);
        free(argv);
        free(lens);
        if (st == SC_OK)
            freeReplyObject(done);
    }
    freeReplyObject(reply);
    return st;
}

sc_status sc__remote_clear(sc__remote *r, const sc__remote_event *ev, sc__remote_result *res, char *err,
                           size_t errlen)
{
    if (!event_ok(ev)) {
        sc__remote_errf(err, errlen, "invalid clear arguments (event)");
        return SC_ERR_INVALID;
    }
    const char *args[10] = {r->seq_key, r->meta_key, r->log_key, r->fmt, r->log_len, r->channel};
    size_t lens[10] = {CSTR, CSTR, CSTR, CSTR, CSTR, CSTR};
    event_parts(ev, args + 6, lens + 6);
    redisReply *reply;
    sc_status st = script(r, SC__SCRIPT_CLEAR, 3, 10, args, lens, sc__remote_now_ms() + r->timeout_ms, &reply, err,
                          errlen);
    if (st == SC_OK)
        st = write_reply(r, reply, "clear", res, err, errlen);
    if (st != SC_OK)
        return st;
    /* The clear has happened; what follows only frees memory. */
    char floor[24], cursor[32] = "0", ignored[8];
    sc__remote_u64_str(res->version, floor);
    do {
        if (clear_batch(r, cursor, floor, ignored, sizeof ignored) != SC_OK)
            break;
    } while (strcmp(cursor, "0") != 0);
    return SC_OK;
}

/* {counter, epoch, time_ms, ...} shared by the sync and heartbeat replies. */
static sc_status state_reply(sc__remote *r, redisReply *reply, size_t n, const char *what, sc__remote_state *st,
                             char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n || !reply_u64(reply->element[0], &st->counter) ||
        reply->element[1]->type != REDIS_REPLY_STRING || reply->element[1]->len != 16 ||
        !reply_u64(reply->element[2], &st->time_ms))
        return bad_reply(r, reply, what, err, errlen);
    sc__remote_saw(r, st->counter);
    memcpy(st->epoch, reply->element[1]->str, 16);
    st->epoch[16] = '\0';
    /* The secret comes last; a Redis that has none (cannot happen after the
     * HSETNX, unless a script of another version ran) leaves it empty. */
    const redisReply *sec = reply->element[n - 1];
    if (sec->type == REDIS_REPLY_STRING && sec->len < sizeof st->secret) {
        memcpy(st->secret, sec->str, sec->len);
        st->secret[sec->len] = '\0';
    }
    if (n == 5 && reply->element[3]->type == REDIS_REPLY_STRING) {
        st->event_at = malloc(reply->element[3]->len + 1);
        if (!st->event_at) {
            freeReplyObject(reply);
            sc__remote_errf(err, errlen, "out of memory");
            return SC_ERR_NOMEM;
        }
        memcpy(st->event_at, reply->element[3]->str, reply->element[3]->len);
        st->event_at[reply->element[3]->len] = '\0';
        st->event_at_len = reply->element[3]->len;
    }
    freeReplyObject(reply);
    return SC_OK;
}

sc_status sc__remote_sync_state(sc__remote *r, uint64_t at, sc__remote_state *st, char *err, size_t errlen)
{
    char seq[24];
    sc__remote_u64_str(at, seq);
    const char *args[5] = {r->seq_key, r->meta_key, r->log_key, seq, r->secret_candidate};
    size_t lens[5] = {CSTR, CSTR, CSTR, CSTR, CSTR};
    redisReply *reply;
    memset(st, 0, sizeof *st);
    sc_status s =
        script(r, SC__SCRIPT_SYNC, 3, 5, args, lens, sc__remote_now_ms() + r->timeout_ms, &reply, err, errlen);
    return s != SC_OK ? s : state_reply(r, reply, 5, "sync", st, err, errlen);
}

sc_status sc__remote_heartbeat(sc__remote *r, const sc__remote_event *ev, const char *canary, unsigned canary_ttl_ms,
                               sc__remote_state *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    if (!event_ok(ev)) {
        sc__remote_errf(err, errlen, "invalid heartbeat arguments (event)");
        return SC_ERR_INVALID;
    }
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%u", canary_ttl_ms);
    const char *args[12] = {r->seq_key, r->meta_key, r->log_key};
    size_t lens[12];
    for (size_t i = 0; i < 12; i++)
        lens[i] = CSTR;
    int n = 3;
    if (canary)
        args[n++] = canary;
    int nkeys = n;
    args[n++] = r->fmt;
    args[n++] = r->channel;
    event_parts(ev, args + n, lens + n);
    n += 4;
    args[n++] = r->secret_candidate;
    if (canary)
        args[n++] = ttl;
    redisReply *reply;
    sc_status s = script(r, SC__SCRIPT_HEARTBEAT, nkeys, n, args, lens, sc__remote_now_ms() + r->timeout_ms, &reply, err,
                         errlen);
    return s != SC_OK ? s : state_reply(r, reply, 4, "heartbeat", st, err, errlen);
}

sc_status sc__remote_check_perms(sc__remote *r, int saver, char *err, size_t errlen)
{
    const char *args[5] = {r->meta_key, r->prefix, r->seq_key, r->log_key, saver ? "1" : "0"};
    size_t lens[5] = {CSTR, CSTR, CSTR, CSTR, CSTR};
    redisReply *reply;
    sc_status s =
        script(r, SC__SCRIPT_PERMS, 1, 5, args, lens, sc__remote_now_ms() + r->timeout_ms, &reply, err, errlen);
    if (s == SC_OK)
        freeReplyObject(reply);
    return s;
}

int sc__remote_eviction_policy(sc__remote *r, char *buf, size_t cap)
{
    const char *argv[3] = {"CONFIG", "GET", "maxmemory-policy"};
    redisReply *reply;
    char ignored[256];
    if (sc__pool_command(r->pool, sc__remote_now_ms() + r->timeout_ms, r->timeout_ms, "CONFIG GET", SC__POOL_READ, 3,
                         argv, NULL, &reply, ignored, sizeof ignored) != SC_OK)
        return -1;
    int ok = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
             reply->element[1]->type == REDIS_REPLY_STRING && cap > 0;
    if (ok)
        snprintf(buf, cap, "%s", reply->element[1]->str);
    freeReplyObject(reply);
    return ok ? 0 : -1;
}

sc_status sc__remote_confirm(sc__remote *r, const char *const *keys, const size_t *klens, const uint64_t *version,
                             const char (*sha1)[41], size_t n, int *verdict, char **vals, size_t *vlens, char *err,
                             size_t errlen)
{
    for (size_t i = 0; vals && i < n; i++) {
        vals[i] = NULL;
        vlens[i] = 0;
    }
    if (n == 0)
        return SC_OK;
    const char **args = calloc(2 * n + 1, sizeof *args);
    size_t *lens = calloc(2 * n + 1, sizeof *lens);
    char *expect = malloc(n * 64);
    int *heap = calloc(n, sizeof *heap);
    sc_status s = SC_ERR_NOMEM;
    size_t built = 0;
    if (!args || !lens || !expect || !heap) {
        sc__remote_errf(err, errlen, "out of memory");
        goto out;
    }
    for (; built < n; built++) {
        char *vk = value_key(r, keys[built], klens[built], NULL, 0, &lens[built], &heap[built]);
        if (!vk) {
            sc__remote_errf(err, errlen, "out of memory");
            goto out;
        }
        args[built] = vk;
        char *e = expect + built * 64;
        snprintf(e, 64, "%" PRIu64 ":%s", version[built], sha1[built]);
        args[n + built] = e;
        lens[n + built] = CSTR;
    }
    if (vals) {
        args[2 * n] = "1";
        lens[2 * n] = CSTR;
    }
    redisReply *reply;
    s = script(r, SC__SCRIPT_CONFIRM, (int)n, (int)(2 * n + (vals ? 1 : 0)), args, lens,
               sc__remote_now_ms() + r->timeout_ms, &reply, err, errlen);
    if (s != SC_OK)
        goto out;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n) {
        s = bad_reply(r, reply, "confirm", err, errlen);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = reply->element[i];
        int known =
            e->type == REDIS_REPLY_INTEGER && (e->integer == SC__CONFIRM_SAME || e->integer == SC__CONFIRM_LATER);
        verdict[i] = known ? (int)e->integer : SC__CONFIRM_CHANGED;
        if (vals && e->type == REDIS_REPLY_ARRAY && e->elements == 2 && e->element[0]->type == REDIS_REPLY_INTEGER &&
            e->element[0]->integer == SC__CONFIRM_BYTES && e->element[1]->type == REDIS_REPLY_STRING &&
            (vals[i] = malloc(e->element[1]->len + 1)) != NULL) {
            memcpy(vals[i], e->element[1]->str, e->element[1]->len);
            vals[i][e->element[1]->len] = '\0';
            vlens[i] = e->element[1]->len;
            verdict[i] = SC__CONFIRM_BYTES;
        }
    }
    freeReplyObject(reply);
out:
    for (size_t i = 0; i < built; i++)
        free((char *)args[i]);
    free(args);
    free(lens);
    free(expect);
    free(heap);
    return s;
}

/* The sequence number of a log entry id "<seq>-0". */
static int entry_seq(const redisReply *id, uint64_t *seq)
{
    if (id->type != REDIS_REPLY_STRING)
        return -1;
    const char *dash = memchr(id->str, '-', id->len);
    return dash ? sc__remote_parse_u64(id->str, (size_t)(dash - id->str), seq) : -1;
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
        sc_status st = sc__pool_command(r->pool, sc__remote_now_ms() + r->timeout_ms, r->timeout_ms, "XRANGE",
                                        SC__POOL_READ, 6, argv, NULL, &reply, err, errlen);
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
                /* An entry that holds no event (another program's) covers
                 * nothing: the range ends before it, as at a trimmed log,
                 * and the caller flushes. An error would fail every later
                 * catch-up on the same entry, so the pod never synced. */
                freeReplyObject(reply);
                return SC_OK;
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

/* Atomic, so two pods opening a new namespace with different counts cannot
 * both record theirs. Not a loaded script: it runs once per open. ARGV[2]
 * 'p': the meta of a partition "ns#p", which only partitioned pods ever
 * use; an epoch there without a count is a partition whose data was lost
 * and seeded again by running pods, not a namespace used unpartitioned.
 * ARGV[2] 'l': only look (nothing recorded): the count, else 'e' for a
 * history without one, else '0'. */
static const char partitions_lua[] =
    "local m = redis.call('HMGET', KEYS[1], 'partitions', 'epoch')\n"
    "if m[1] then return m[1] end\n"
    "if ARGV[2] == 'l' then if m[2] then return 'e' end return '0' end\n"
    "if m[2] and ARGV[1] ~= '1' and ARGV[2] ~= 'p' then return '1' end\n"
    "redis.call('HSET', KEYS[1], 'partitions', ARGV[1])\n"
    "return ARGV[1]\n";

sc_status sc__remote_partitions(sc__remote *r, unsigned want, sc__partitions_mode mode, unsigned *have, char *err,
                                size_t errlen)
{
    char w[16];
    snprintf(w, sizeof w, "%u", want);
    const char *argv[6] = {"EVAL", partitions_lua, "1", r->meta_key, w,
                           mode == SC__PARTITIONS_PART ? "p" : mode == SC__PARTITIONS_LOOK ? "l" : "n"};
    redisReply *reply = NULL;
    sc_status st = sc__pool_command(r->pool, sc__remote_now_ms() + r->timeout_ms, r->timeout_ms, "EVAL", SC__POOL_WRITE,
                                    6, argv, NULL, &reply, err, errlen);
    if (st != SC_OK)
        return st;
    uint64_t v = 0;
    if (reply->type == REDIS_REPLY_ERROR) {
        sc__remote_errf(err, errlen, "redis %s: reading the partition count: %s%.*s", sc__pool_addr(r->pool),
                        sc__remote_explain(reply->str), (int)reply->len, reply->str);
        st = SC_ERR_REMOTE;
    } else if (mode == SC__PARTITIONS_LOOK && reply->type == REDIS_REPLY_STRING && reply->len == 1 &&
               (reply->str[0] == 'e' || reply->str[0] == '0')) {
        v = reply->str[0] == 'e' ? UINT_MAX : 0;
    } else if (!reply_u64(reply, &v) || v == 0 || v > UINT32_MAX) {
        sc__remote_errf(err, errlen, "redis %s: %s holds a bad partitions field", sc__pool_addr(r->pool),
                        r->meta_key);
        st = SC_ERR_REMOTE;
    }
    *have = (unsigned)v;
    freeReplyObject(reply);
    return st;
}

/* ------------------------------------------------------------------------
 * What remote/fetch.c and remote/behind.c build their calls from: the same
 * key layout, script runner, event parts and write reply as the calls above,
 * so the kinds of write cannot drift apart. */

void sc__remote_layout_get(const sc__remote *r, sc__remote_layout *out)
{
    out->ns = r->ns;
    out->prefix = r->prefix;
    out->prefix_len = r->prefix_len;
    out->seq_key = r->seq_key;
    out->meta_key = r->meta_key;
    out->log_key = r->log_key;
    out->channel = r->channel;
    out->fmt = r->fmt;
    out->log_len = r->log_len;
    out->timeout_ms = r->timeout_ms;
    out->addr = sc__pool_addr(r->pool);
    out->shas = (const char(*)[41])r->shas;
}

char *sc__remote_value_key(const sc__remote *r, const char *key, size_t klen, char *buf, size_t cap, size_t *len,
                           int *heap)
{
    return value_key(r, key, klen, buf, cap, len, heap);
}

sc_status sc__remote_script(sc__remote *r, sc__script_id id, int nkeys, int argc, const char **args, size_t *lens,
                            int64_t deadline, redisReply **reply, char *err, size_t errlen)
{
    return script(r, id, nkeys, argc, args, lens, deadline, reply, err, errlen);
}

sc_status sc__remote_write_reply(sc__remote *r, redisReply *reply, const char *what, sc__remote_result *res, char *err,
                                 size_t errlen)
{
    return write_reply(r, reply, what, res, err, errlen);
}

int sc__remote_event_split(const sc__remote_event *ev, const char **args, size_t *lens)
{
    if (!event_ok(ev))
        return -1;
    event_parts(ev, args, lens);
    return 0;
}

sc_status sc__remote_locate_channel(sc__remote *r, char *host, size_t cap, int *port, unsigned *gen, char *err,
                                    size_t errlen)
{
    if (!r->router) {
        sc__remote_errf(err, errlen, "not routed: one Redis");
        return SC_ERR_INVALID;
    }
    sc__addr a;
    sc_status st = sc__router_locate(r->router, r->channel, sc__remote_now_ms() + r->timeout_ms, &a, gen, err, errlen);
    if (st != SC_OK)
        return st;
    if (strlen(a.host) >= cap) {
        sc__remote_errf(err, errlen, "host name too long");
        return SC_ERR_INVALID;
    }
    snprintf(host, cap, "%s", a.host);
    *port = a.port;
    return SC_OK;
}

unsigned sc__remote_route_gen(sc__remote *r)
{
    return r->router ? sc__router_gen(r->router) : 0;
}

int sc__remote_sharded(const sc__remote *r)
{
    return r->router && sc__router_kind(r->router) == SC__ROUTE_CLUSTER;
}
