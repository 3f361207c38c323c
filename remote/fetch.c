/* The Redis side of cache-aside loading: the arguments and replies of
 * remote/lua/fetch_lock.lua, fetch_store.lua, fetch_unlock.lua and tag.lua.
 * Each call is one round trip for all of its keys (a namespace is one hash
 * slot, so a multi-key script is fine in a cluster too) and gets one
 * deadline of timeout_ms. Thread-safe like the rest of remote/.
 */
#include "remote/remote.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#define CSTR SIZE_MAX

static sc_status nomem(char *err, size_t errlen)
{
    sc__remote_errf(err, errlen, "out of memory");
    return SC_ERR_NOMEM;
}

static sc_status bad(const sc__remote_layout *l, redisReply *reply, const char *what, char *err, size_t errlen)
{
    sc__remote_errf(err, errlen, "redis %s: %s script returned an unexpected reply", l->addr, what);
    freeReplyObject(reply);
    return SC_ERR_REMOTE;
}

static int u64_of(const redisReply *e, uint64_t *out)
{
    if (e->type == REDIS_REPLY_INTEGER && e->integer >= 0) {
        *out = (uint64_t)e->integer;
        return 1;
    }
    if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < e->len; i++) {
        if (e->str[i] < '0' || e->str[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(e->str[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* One block holding "{ns}:k:<key>" for each of n keys; keys[i] point into it. */
static char *value_keys(const sc__remote_layout *l, const char *const *key, size_t kstride, const size_t *klen,
                        size_t lstride, size_t n, const char **keys, size_t *lens)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += l->prefix_len + *(const size_t *)((const char *)klen + i * lstride) + 1;
    char *block = malloc(total ? total : 1);
    if (!block)
        return NULL;
    char *w = block;
    for (size_t i = 0; i < n; i++) {
        const char *k = *(const char *const *)((const char *)key + i * kstride);
        size_t kl = *(const size_t *)((const char *)klen + i * lstride);
        memcpy(w, l->prefix, l->prefix_len);
        memcpy(w + l->prefix_len, k, kl);
        w[l->prefix_len + kl] = '\0';
        keys[i] = w;
        lens[i] = l->prefix_len + kl;
        w += l->prefix_len + kl + 1;
    }
    return block;
}

static char *dup_bytes(const redisReply *e, size_t *len)
{
    char *p = malloc(e->len + 1);
    if (p) {
        memcpy(p, e->str, e->len);
        p[e->len] = '\0';
        *len = e->len;
    }
    return p;
}

static void free_items(sc__fetch_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].data);
        items[i].data = NULL;
        free(items[i].tags);
        items[i].tags = NULL;
    }
}

/* One result {kind, ...} of fetch_lock.lua into it. 0, or -1 malformed, -2 no memory. */
static int parse_lock_result(const redisReply *e, sc__fetch_item *it)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[0]->len != 1)
        return -1;
    redisReply *const *f = e->element;
    it->kind = (sc__fetch_kind)f[0]->str[0];
    it->graced = 0;
    it->grace_pttl_ms = -2;
    size_t base = 0;
    switch (it->kind) {
    case SC__FETCH_CONFIRMED:
        return 0;
    case SC__FETCH_LOCKED:
        base = 1;
        break;
    case SC__FETCH_WAIT:
        if (e->elements < 2 || !u64_of(f[1], &it->lock_until_ms))
            return -1;
        base = 2;
        break;
    case SC__FETCH_EMPTY:
        if (e->elements != 3 || !u64_of(f[1], &it->version) || f[2]->type != REDIS_REPLY_INTEGER)
            return -1;
        it->pttl_ms = f[2]->integer < 0 ? -1 : f[2]->integer;
        return 0;
    case SC__FETCH_VALUE:
        if (e->elements != 6 || f[1]->type != REDIS_REPLY_STRING || !u64_of(f[2], &it->version) ||
            f[3]->type != REDIS_REPLY_INTEGER || f[4]->type != REDIS_REPLY_INTEGER ||
            f[5]->type != REDIS_REPLY_STRING)
            return -1;
        it->pttl_ms = f[3]->integer < 0 ? -1 : f[3]->integer;
        it->grace_pttl_ms = f[4]->integer < -1 ? -2 : f[4]->integer;
        if (f[5]->len && !(it->tags = dup_bytes(f[5], &it->tags_len)))
            return -2;
        return (it->data = dup_bytes(f[1], &it->len)) ? 0 : -2;
    case SC__FETCH_STALE:
        if (e->elements != 4 || f[1]->type != REDIS_REPLY_STRING || !u64_of(f[2], &it->version) ||
            !u64_of(f[3], &it->lock_until_ms))
            return -1;
        return (it->data = dup_bytes(f[1], &it->len)) ? 0 : -2;
    default:
        return -1;
    }
    /* LOCKED / WAIT: a graced value may follow (value, version, gpttl, past_ms). */
    if (e->elements == base)
        return 0;
    if (e->elements != base + 5 || f[base]->type != REDIS_REPLY_STRING || !u64_of(f[base + 1], &it->version) ||
        f[base + 2]->type != REDIS_REPLY_INTEGER || !u64_of(f[base + 3], &it->past_ms) ||
        f[base + 4]->type != REDIS_REPLY_STRING)
        return -1;
    it->grace_pttl_ms = f[base + 2]->integer;
    it->graced = 1;
    if (f[base + 4]->len && !(it->tags = dup_bytes(f[base + 4], &it->tags_len)))
        return -2;
    return (it->data = dup_bytes(f[base], &it->len)) ? 0 : -2;
}

/* A script's whole command: argv[0..2] are EVALSHA, the SHA and the key
 * count, so the same arguments serve the script runner (from argv + 3) and
 * a pipeline (whole). */
typedef struct script_cmd {
    const char **argv;
    size_t *lens;
    int argc;            /* all of argv */
    int nkeys;
    char *block;         /* the value keys */
    char (*nums)[24];    /* decimal arguments */
    char numkeys[24];
} script_cmd;

static void cmd_free(script_cmd *c)
{
    free(c->argv);
    free(c->lens);
    free(c->block);
    free(c->nums);
    memset(c, 0, sizeof *c);
}

/* Room for the head, nkeys keys (value keys from `first` on, the fixed ones
 * before) and argc arguments in all, and nnums decimal numbers. */
static int cmd_alloc(script_cmd *c, const sc__remote_layout *l, sc__script_id id, int nkeys, int argc,
                     size_t nnums)
{
    memset(c, 0, sizeof *c);
    c->argc = argc + 3;
    c->nkeys = nkeys;
    c->argv = malloc((size_t)c->argc * sizeof *c->argv);
    c->lens = malloc((size_t)c->argc * sizeof *c->lens);
    c->nums = malloc((nnums ? nnums : 1) * sizeof *c->nums);
    if (!c->argv || !c->lens || !c->nums) {
        cmd_free(c);
        return -1;
    }
    snprintf(c->numkeys, sizeof c->numkeys, "%d", nkeys);
    c->argv[0] = "EVALSHA";
    c->argv[1] = l->shas[id];
    c->argv[2] = c->numkeys;
    for (int i = 0; i < 3; i++)
        c->lens[i] = strlen(c->argv[i]);
    return 0;
}

static void put(script_cmd *c, size_t *a, const char *arg, size_t len)
{
    c->argv[*a] = arg;
    c->lens[(*a)++] = len == CSTR ? strlen(arg) : len;
}

/* KEYS: seq, meta, n value keys; ARGV: token, ttl, stale, n versions. */
static sc_status lock_cmd(const sc__remote_layout *l, const sc__fetch_item *items, size_t n, const char *token,
                          uint64_t lock_ttl_ms, int serve_stale, script_cmd *c, char *err, size_t errlen)
{
    if (n == 0 || n > 1000000) {
        sc__remote_errf(err, errlen, "fetch_lock: bad key count %zu", n);
        return SC_ERR_INVALID;
    }
    if (cmd_alloc(c, l, SC__SCRIPT_FETCH_LOCK, (int)(2 + n), (int)(2 + n + 3 + n), n + 1) != 0 ||
        !(c->block = value_keys(l, &items[0].key, sizeof items[0], &items[0].klen, sizeof items[0], n, c->argv + 5,
                                c->lens + 5))) {
        cmd_free(c);
        return nomem(err, errlen);
    }
    size_t a = 3;
    put(c, &a, l->seq_key, CSTR);
    put(c, &a, l->meta_key, CSTR);
    a += n;
    put(c, &a, token, CSTR);
    sc__remote_u64_str(lock_ttl_ms, c->nums[n]);
    put(c, &a, c->nums[n], CSTR);
    put(c, &a, serve_stale ? "1" : "0", 1);
    for (size_t i = 0; i < n; i++) {
        sc__remote_u64_str(items[i].have_version, c->nums[i]);
        put(c, &a, c->nums[i], CSTR);
    }
    return SC_OK;
}

static void lock_items_clear(sc__fetch_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        items[i].data = NULL;
        items[i].len = 0;
        items[i].version = 0;
        items[i].pttl_ms = -1;
        items[i].lock_until_ms = 0;
        items[i].grace_pttl_ms = -2;
        items[i].graced = 0;
        items[i].past_ms = 0;
        items[i].tags = NULL;
        items[i].tags_len = 0;
    }
}

/* Parses (and frees) fetch_lock.lua's reply. On failure no item holds data. */
static sc_status lock_reply(sc__remote *r, const sc__remote_layout *l, redisReply *reply, sc__fetch_item *items,
                            size_t n, uint64_t *known, uint64_t *now_ms, char *err, size_t errlen)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n + 2 || !u64_of(reply->element[0], known) ||
        !u64_of(reply->element[1], now_ms))
        return bad(l, reply, "fetch_lock", err, errlen);
    /* The counter the values were read at counts as seen (remote.c,
     * takes_version): a value handed out here whose write Redis later loses
     * must never have its number handed out again. */
    sc__remote_saw(r, *known);
    for (size_t i = 0; i < n; i++) {
        int rc = parse_lock_result(reply->element[i + 2], &items[i]);
        if (rc != 0) {
            free_items(items, n);
            if (rc == -2) {
                freeReplyObject(reply);
                return nomem(err, errlen);
            }
            return bad(l, reply, "fetch_lock", err, errlen);
        }
    }
    freeReplyObject(reply);
    return SC_OK;
}

/* Runs a built command alone (the script runner: redirections, NOSCRIPT). */
static sc_status cmd_run(sc__remote *r, sc__script_id id, script_cmd *c, redisReply **reply, char *err,
                         size_t errlen)
{
    sc__remote_layout l;
    sc__remote_layout_get(r, &l);
    return sc__remote_script(r, id, c->nkeys, c->argc - 3, c->argv + 3, c->lens + 3,
                             sc__remote_now_ms() + l.timeout_ms, reply, err, errlen);
}

sc_status sc__remote_fetch_lock(sc__remote *r, sc__fetch_item *items, size_t n, const char *token,
                                uint64_t lock_ttl_ms, int serve_stale, uint64_t *known, uint64_t *now_ms, char *err,
                                size_t errlen)
{
    sc__remote_layout l;
    sc__remote_layout_get(r, &l);
    lock_items_clear(items, n);
    script_cmd c;
    sc_status st = lock_cmd(&l, items, n, token, lock_ttl_ms, serve_stale, &c, err, errlen);
    if (st != SC_OK)
        return st;
    redisReply *reply;
    st = cmd_run(r, SC__SCRIPT_FETCH_LOCK, &c, &reply, err, errlen);
    cmd_free(&c);
    return st == SC_OK ? lock_reply(r, &l, reply, items, n, known, now_ms, err, errlen) : st;
}

/* KEYS: seq, meta, log, n value keys; ARGV: fmt, log_len, channel, token, 9 per key, seen. */
static sc_status store_cmd(const sc__remote_layout *l, sc__store_item *items, size_t n, const char *token,
                           uint64_t seen, script_cmd *c, char *err, size_t errlen)
{
    if (n == 0 || n > 1000000) {
        sc__remote_errf(err, errlen, "fetch_store: bad key count %zu", n);
        return SC_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        const sc__remote_event *ev = &items[i].ev;
        const char *parts[4];
        size_t part_lens[4];
        if ((items[i].len && !items[i].val) || sc__remote_event_split(ev, parts, part_lens) != 0 ||
            items[i].ttl_ms > (UINT64_C(1) << 53) || items[i].grace_ms > (UINT64_C(1) << 53) ||
            (items[i].tags_len && !items[i].tags)) {
            sc__remote_errf(err, errlen, "invalid store arguments (value, TTL or event)");
            return SC_ERR_INVALID;
        }
        items[i].stored = 0;
        memset(&items[i].res, 0, sizeof items[i].res);
    }
    if (cmd_alloc(c, l, SC__SCRIPT_FETCH_STORE, (int)(3 + n), (int)(3 + n + 4 + 9 * n + 1), 2 * n + 1) != 0 ||
        !(c->block = value_keys(l, &items[0].key, sizeof items[0], &items[0].klen, sizeof items[0], n, c->argv + 6,
                                c->lens + 6))) {
        cmd_free(c);
        return nomem(err, errlen);
    }
    size_t a = 3;
    put(c, &a, l->seq_key, CSTR);
    put(c, &a, l->meta_key, CSTR);
    put(c, &a, l->log_key, CSTR);
    a += n;
    put(c, &a, l->fmt, CSTR);
    put(c, &a, l->log_len, CSTR);
    put(c, &a, l->channel, CSTR);
    put(c, &a, token, CSTR);
    for (size_t i = 0; i < n; i++) {
        sc__remote_u64_str(items[i].ttl_ms, c->nums[2 * i]);
        sc__remote_u64_str(items[i].grace_ms, c->nums[2 * i + 1]);
        put(c, &a, items[i].empty ? "e" : "v", 1);
        put(c, &a, items[i].len ? items[i].val : "", items[i].empty ? 0 : items[i].len);
        put(c, &a, c->nums[2 * i], CSTR);
        sc__remote_event_split(&items[i].ev, c->argv + a, c->lens + a); /* checked above */
        a += 4;
        put(c, &a, c->nums[2 * i + 1], CSTR);
        put(c, &a, items[i].tags_len ? items[i].tags : "", items[i].tags_len);
    }
    /* Last, the highest version the remote has seen (remote.c, takes_version). */
    sc__remote_u64_str(seen, c->nums[2 * n]);
    put(c, &a, c->nums[2 * n], CSTR);
    return SC_OK;
}

/* Parses (and frees) fetch_store.lua's reply into items. */
static sc_status store_reply(sc__remote *r, const sc__remote_layout *l, redisReply *reply, sc__store_item *items,
                             size_t n, char *err, size_t errlen)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n)
        return bad(l, reply, "fetch_store", err, errlen);
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = reply->element[i];
        uint64_t v;
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !u64_of(e->element[0], &v))
            return bad(l, reply, "fetch_store", err, errlen);
        if (v == 0)
            continue;
        items[i].stored = 1;
        items[i].res.version = v;
        sc__remote_saw(r, v);
        const redisReply *pub = e->element[1];
        items[i].res.published = pub->type == REDIS_REPLY_INTEGER && pub->integer == 1;
        if (!items[i].res.published)
            snprintf(items[i].res.publish_error, sizeof items[i].res.publish_error, "%.*s",
                     pub->type == REDIS_REPLY_STRING ? (int)pub->len : 0,
                     pub->type == REDIS_REPLY_STRING ? pub->str : "");
    }
    freeReplyObject(reply);
    return SC_OK;
}

sc_status sc__remote_fetch_store(sc__remote *r, sc__store_item *items, size_t n, const char *token, char *err,
                                 size_t errlen)
{
    sc__remote_layout l;
    sc__remote_layout_get(r, &l);
    script_cmd c;
    sc_status st = store_cmd(&l, items, n, token, sc__remote_seen(r), &c, err, errlen);
    if (st != SC_OK)
        return st;
    redisReply *reply;
    st = cmd_run(r, SC__SCRIPT_FETCH_STORE, &c, &reply, err, errlen);
    cmd_free(&c);
    return st == SC_OK ? store_reply(r, &l, reply, items, n, err, errlen) : st;
}

/* ---- both scripts pipelined over many remotes (sc__remote_run_piped) ---- */

typedef struct fetch_piped {
    sc__remote_piped base; /* first: the runner hands back &base */
    sc__remote_fetch_call *call;
    script_cmd cmd;
} fetch_piped;

static sc_status piped_build(sc__remote_piped *p, struct sc__pool_cmd *cmd)
{
    fetch_piped *fp = (fetch_piped *)p;
    sc__remote_fetch_call *k = fp->call;
    sc__remote_layout l;
    sc__remote_layout_get(k->r, &l);
    char ignored[8]; /* the fallback says it again if it matters */
    sc_status st =
        k->lock
            ? lock_cmd(&l, k->lock, k->n, k->token, k->lock_ttl_ms, k->serve_stale, &fp->cmd, ignored, sizeof ignored)
            : store_cmd(&l, k->store, k->n, k->token, sc__remote_seen(k->r), &fp->cmd, ignored, sizeof ignored);
    if (st == SC_OK)
        *cmd = (sc__pool_cmd){fp->cmd.argc, fp->cmd.argv, fp->cmd.lens};
    return st;
}

static void piped_unbuild(sc__remote_piped *p)
{
    cmd_free(&((fetch_piped *)p)->cmd);
}

static sc_status piped_parse(sc__remote_piped *p, redisReply *reply)
{
    sc__remote_fetch_call *k = ((fetch_piped *)p)->call;
    sc__remote_layout l;
    sc__remote_layout_get(k->r, &l);
    return k->lock ? lock_reply(k->r, &l, reply, k->lock, k->n, &k->known, &k->now_ms, p->err, sizeof p->err)
                   : store_reply(k->r, &l, reply, k->store, k->n, p->err, sizeof p->err);
}

static sc_status piped_alone(sc__remote_piped *p)
{
    sc__remote_fetch_call *k = ((fetch_piped *)p)->call;
    return k->lock ? sc__remote_fetch_lock(k->r, k->lock, k->n, k->token, k->lock_ttl_ms, k->serve_stale, &k->known,
                                           &k->now_ms, p->err, sizeof p->err)
                   : sc__remote_fetch_store(k->r, k->store, k->n, k->token, p->err, sizeof p->err);
}

void sc__remote_fetch_pipelined(sc__remote_fetch_call *calls, size_t n)
{
    fetch_piped *fp = calloc(n ? n : 1, sizeof *fp);
    sc__remote_piped **run = calloc(n ? n : 1, sizeof *run);
    for (size_t i = 0; i < n; i++) {
        if (calls[i].lock)
            lock_items_clear(calls[i].lock, calls[i].n);
        if (fp && run) {
            fp[i].base = (sc__remote_piped){.r = calls[i].r,
                                            .writes = 1,
                                            .what = calls[i].lock ? "EVALSHA (fetch_lock script, pipelined)"
                                                                  : "EVALSHA (fetch_store script, pipelined)",
                                            .build = piped_build,
                                            .unbuild = piped_unbuild,
                                            .parse = piped_parse,
                                            .alone = piped_alone};
            fp[i].call = &calls[i];
            run[i] = &fp[i].base;
        }
    }
    if (fp && run)
        sc__remote_run_piped(run, n);
    for (size_t i = 0; i < n; i++) {
        calls[i].status = fp && run ? fp[i].base.status : SC_ERR_NOMEM;
        calls[i].skipped = fp && run ? fp[i].base.skipped : 0;
        snprintf(calls[i].err, sizeof calls[i].err, "%s", fp && run ? fp[i].base.err : "out of memory");
    }
    free(fp);
    free(run);
}

sc_status sc__remote_fetch_unlock(sc__remote *r, const char *const *keys, const size_t *klens, size_t n,
                                  const char *token, char *err, size_t errlen)
{
    sc__remote_layout l;
    sc__remote_layout_get(r, &l);
    if (n == 0)
        return SC_OK;
    size_t argc = n + 1;
    const char **args = malloc(argc * sizeof *args);
    size_t *lens = malloc(argc * sizeof *lens);
    char *block = args && lens ? value_keys(&l, keys, sizeof keys[0], klens, sizeof klens[0], n, args, lens) : NULL;
    if (!block) {
        free(args);
        free(lens);
        return nomem(err, errlen);
    }
    args[n] = token;
    lens[n] = CSTR;
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_FETCH_UNLOCK, (int)n, (int)argc, args, lens,
                                     sc__remote_now_ms() + l.timeout_ms, &reply, err, errlen);
    free(block);
    free(args);
    free(lens);
    if (st == SC_OK)
        freeReplyObject(reply);
    return st;
}

sc_status sc__remote_tag(sc__remote *r, const char *key, size_t klen, uint64_t delay_ms, uint64_t tombstone_ttl_ms,
                         const sc__remote_event *ev, sc__remote_result *res, char *err, size_t errlen)
{
    sc__remote_layout l;
    sc__remote_layout_get(r, &l);
    memset(res, 0, sizeof *res);
    const char *parts[4];
    size_t part_lens[4];
    if (!ev || sc__remote_event_split(ev, parts, part_lens) != 0) {
        sc__remote_errf(err, errlen, "invalid tag arguments (event)");
        return SC_ERR_INVALID;
    }
    const char *args[13];
    size_t lens[13];
    char *block = value_keys(&l, &key, 0, &klen, 0, 1, args, lens);
    if (!block)
        return nomem(err, errlen);
    char delay[24], tomb[24];
    sc__remote_u64_str(delay_ms, delay);
    sc__remote_u64_str(tombstone_ttl_ms, tomb);
    const char *rest[8] = {l.seq_key, l.meta_key, l.log_key, delay, tomb, l.fmt, l.log_len, l.channel};
    for (int i = 0; i < 8; i++) {
        args[1 + i] = rest[i];
        lens[1 + i] = CSTR;
    }
    sc__remote_event_split(ev, args + 9, lens + 9); /* checked above */
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_TAG, 4, 13, args, lens, sc__remote_now_ms() + l.timeout_ms, &reply,
                                     err, errlen);
    free(block);
    if (st != SC_OK)
        return st;
    return sc__remote_write_reply(r, reply, "tag", res, err, errlen);
}

sc_status sc__remote_set_tagged(sc__remote *r, const char *key, size_t klen, const void *val, size_t len,
                                uint64_t ttl_ms, const char *tags, size_t tags_len, const sc__remote_event *ev,
                                sc__remote_result *res, char *err, size_t errlen)
{
    sc__remote_layout l;
    sc__remote_layout_get(r, &l);
    memset(res, 0, sizeof *res);
    const char *args[15];
    size_t lens[15];
    if ((len && !val) || sc__remote_event_split(ev, args + 9, lens + 9) != 0 || ttl_ms > (UINT64_C(1) << 53) ||
        (tags_len && !tags)) {
        sc__remote_errf(err, errlen, "invalid set arguments (value, TTL, tags or event)");
        return SC_ERR_INVALID;
    }
    char *block = value_keys(&l, &key, 0, &klen, 0, 1, args, lens);
    if (!block)
        return nomem(err, errlen);
    char ttl[24];
    sc__remote_u64_str(ttl_ms, ttl);
    /* KEYS: value key, seq, meta, log; ARGV: value, ttl, fmt, log_len,
     * channel, p0..p3, expected ('': none), tags. */
    args[1] = l.seq_key;
    args[2] = l.meta_key;
    args[3] = l.log_key;
    lens[1] = lens[2] = lens[3] = CSTR;
    args[4] = len ? val : "";
    lens[4] = len;
    args[5] = ttl;
    args[6] = l.fmt;
    args[7] = l.log_len;
    args[8] = l.channel;
    lens[5] = lens[6] = lens[7] = lens[8] = CSTR;
    args[13] = "";
    lens[13] = 0;
    args[14] = tags_len ? tags : "";
    lens[14] = tags_len;
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_SET, 4, 15, args, lens, sc__remote_now_ms() + l.timeout_ms, &reply,
                                     err, errlen);
    free(block);
    if (st != SC_OK)
        return st;
    return sc__remote_write_reply(r, reply, "set", res, err, errlen);
}

sc_status sc__remote_tag_invalidate(sc__remote *r, const char *tag, size_t tag_len, const sc__remote_event *ev,
                                    sc__remote_result *res, char *err, size_t errlen)
{
    sc__remote_layout l;
    sc__remote_layout_get(r, &l);
    memset(res, 0, sizeof *res);
    const char *parts[4];
    size_t part_lens[4];
    if (!tag || !tag_len || sc__remote_event_split(ev, parts, part_lens) != 0) {
        sc__remote_errf(err, errlen, "invalid tag invalidation arguments (tag or event)");
        return SC_ERR_INVALID;
    }
    /* {ns}:tags, named like {ns}:meta. */
    size_t ml = strlen(l.meta_key);
    char *tk = malloc(ml + 1);
    if (!tk)
        return nomem(err, errlen);
    memcpy(tk, l.meta_key, ml - 4);
    memcpy(tk + ml - 4, "tags", 5);
    const char *args[12] = {tk, l.seq_key, l.meta_key, l.log_key, tag, l.fmt, l.log_len, l.channel};
    size_t lens[12] = {CSTR, CSTR, CSTR, CSTR, tag_len, CSTR, CSTR, CSTR};
    sc__remote_event_split(ev, args + 8, lens + 8); /* checked above */
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_TAG_INVALIDATE, 4, 12, args, lens,
                                     sc__remote_now_ms() + l.timeout_ms, &reply, err, errlen);
    free(tk);
    if (st != SC_OK)
        return st;
    return sc__remote_write_reply(r, reply, "tag_invalidate", res, err, errlen);
}
