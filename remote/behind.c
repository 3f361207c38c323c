/* The write-behind queue in Redis: the write scripts that append to it in
 * the same step as the write, and the consumer side (take a batch, ack and
 * trim, read the queue's state, hand a closing consumer's entries back).
 *
 * The queue is the stream {ns}:wb with one consumer group (SC__WB_GROUP);
 * its layout is described in remote.h. Everything a consumer does is one Lua
 * script per step (remote/lua/wb_*.lua), so each step is atomic: a trim can
 * never remove an entry that another consumer took in between, and a
 * consumer's removal can never drop entries it was given meanwhile.
 *
 * Every call gets one deadline of timeout_ms from its start, like the rest
 * of the Redis tier.
 */
#include "remote/remote.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* lens[i] for a C-string argument: sc__remote_script measures it. */
#define CSTR SIZE_MAX

/* Largest TTL accepted (as sc__remote_set: the msgpack event carries it as
 * a Lua double). */
#define MAX_TTL_MS (UINT64_C(1) << 53)

/* How long a handed-back entry looks idle: a year, far beyond any
 * writeback_claim_ms, so every pod's next take claims it. */
#define HANDBACK_IDLE_MS "31536000000"

/* "{ns}:wb" into buf (ns is at most 256 bytes, checked at open). */
static void wb_key(const sc__remote_layout *p, char buf[300])
{
    snprintf(buf, 300, "{%s}:wb", p->ns);
}

static sc_status nomem(char *err, size_t errlen)
{
    sc__remote_errf(err, errlen, "out of memory");
    return SC_ERR_NOMEM;
}

/* "<ms>-<seq>" */
static int parse_id(const char *s, size_t len, sc__wb_id *id)
{
    const char *dash = memchr(s, '-', len);
    if (!dash)
        return -1;
    return sc__remote_parse_u64(s, (size_t)(dash - s), &id->ms) == 0 &&
                   sc__remote_parse_u64(dash + 1, len - (size_t)(dash - s) - 1, &id->seq) == 0
               ? 0
               : -1;
}

int sc__wb_id_cmp(sc__wb_id a, sc__wb_id b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    return a.seq < b.seq ? -1 : a.seq > b.seq;
}

static sc_status bad_reply(const sc__remote_layout *p, redisReply *reply, const char *what, char *err,
                           size_t errlen)
{
    sc__remote_errf(err, errlen, "redis %s: %s script returned an unexpected reply", p->addr, what);
    freeReplyObject(reply);
    return SC_ERR_REMOTE;
}

sc_status sc__remote_set_behind(sc__remote *r, const char *key, size_t klen, const void *val, size_t len,
                                uint64_t ttl_ms, const sc__remote_event *ev, sc__remote_result *res, char *err,
                                size_t errlen)
{
    const char *args[15];
    size_t lens[15];
    if ((len && !val) || sc__remote_event_split(ev, args + 10, lens + 10) != 0) {
        sc__remote_errf(err, errlen, "invalid set arguments (value or event)");
        return SC_ERR_INVALID;
    }
    if (ttl_ms > MAX_TTL_MS) {
        sc__remote_errf(err, errlen, "TTL of %" PRIu64 " ms is too large (at most 2^53)", ttl_ms);
        return SC_ERR_INVALID;
    }
    sc__remote_layout p;
    sc__remote_layout_get(r, &p);
    int64_t deadline = sc__remote_now_ms() + p.timeout_ms;
    char kbuf[256], wb[300], ttl[24];
    size_t vklen;
    int heap;
    char *vk = sc__remote_value_key(r, key, klen, kbuf, sizeof kbuf, &vklen, &heap);
    if (!vk)
        return nomem(err, errlen);
    wb_key(&p, wb);
    sc__remote_u64_str(ttl_ms, ttl);
    const char *head[10] = {vk, p.seq_key, p.meta_key, p.log_key, wb, len ? val : "", ttl, p.fmt, p.log_len,
                            p.channel};
    size_t head_lens[10] = {vklen, CSTR, CSTR, CSTR, CSTR, len, CSTR, CSTR, CSTR, CSTR};
    memcpy(args, head, sizeof head);
    memcpy(lens, head_lens, sizeof head_lens);
    args[14] = key;
    lens[14] = klen;
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_SET_BEHIND, 5, 15, args, lens, deadline, &reply, err, errlen);
    if (heap)
        free(vk);
    return st != SC_OK ? st : sc__remote_write_reply(r, reply, "set_behind", res, err, errlen);
}

sc_status sc__remote_delete_behind(sc__remote *r, const char *key, size_t klen, uint64_t tombstone_ttl_ms,
                                   const sc__remote_event *ev, sc__remote_result *res, char *err, size_t errlen)
{
    const char *args[14];
    size_t lens[14];
    if (sc__remote_event_split(ev, args + 9, lens + 9) != 0) {
        sc__remote_errf(err, errlen, "invalid delete arguments (event)");
        return SC_ERR_INVALID;
    }
    sc__remote_layout p;
    sc__remote_layout_get(r, &p);
    int64_t deadline = sc__remote_now_ms() + p.timeout_ms;
    char kbuf[256], wb[300], tomb[24];
    size_t vklen;
    int heap;
    char *vk = sc__remote_value_key(r, key, klen, kbuf, sizeof kbuf, &vklen, &heap);
    if (!vk)
        return nomem(err, errlen);
    wb_key(&p, wb);
    sc__remote_u64_str(tombstone_ttl_ms, tomb);
    const char *head[9] = {vk, p.seq_key, p.meta_key, p.log_key, wb, tomb, p.fmt, p.log_len, p.channel};
    size_t head_lens[9] = {vklen, CSTR, CSTR, CSTR, CSTR, CSTR, CSTR, CSTR, CSTR};
    memcpy(args, head, sizeof head);
    memcpy(lens, head_lens, sizeof head_lens);
    args[13] = key;
    lens[13] = klen;
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_DELETE_BEHIND, 5, 14, args, lens, deadline, &reply, err, errlen);
    if (heap)
        free(vk);
    return st != SC_OK ? st : sc__remote_write_reply(r, reply, "delete_behind", res, err, errlen);
}

void sc__wb_batch_free(sc__wb_batch *b)
{
    if (!b)
        return;
    free(b->e);
    if (b->reply)
        freeReplyObject(b->reply);
    memset(b, 0, sizeof *b);
}

/* One entry [id, [field, value, ...] | nil] of a take reply. An entry the
 * stream no longer holds, or one without a key and a version, keeps
 * key NULL: the consumer acknowledges it without saving anything. */
static int parse_entry(const redisReply *x, sc__wb_entry *e)
{
    memset(e, 0, sizeof *e);
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 || x->element[0]->type != REDIS_REPLY_STRING ||
        parse_id(x->element[0]->str, x->element[0]->len, &e->id) != 0)
        return -1;
    e->idstr = x->element[0]->str;
    const redisReply *f = x->element[1];
    if (f->type != REDIS_REPLY_ARRAY)
        return 0;
    const redisReply *k = NULL, *v = NULL, *val = NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *name = f->element[i], *value = f->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || name->len != 1 || value->type != REDIS_REPLY_STRING)
            continue;
        if (name->str[0] == 'k')
            k = value;
        else if (name->str[0] == 'v')
            v = value;
        else if (name->str[0] == 'x')
            val = value;
    }
    if (!k || !v || k->len == 0 || memchr(k->str, '\0', k->len) ||
        sc__remote_parse_u64(v->str, v->len, &e->version) != 0)
        return 0;
    e->key = k->str; /* hiredis strings are NUL-terminated */
    e->klen = k->len;
    if (val) {
        e->value = val->str;
        e->len = val->len;
    }
    return 0;
}

sc_status sc__remote_wb_take(sc__remote *r, const char *consumer, unsigned count, unsigned min_idle_ms, int mine,
                             char cursor[64], sc__wb_batch *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    sc__remote_layout p;
    sc__remote_layout_get(r, &p);
    char wb[300], n[16], idle[16];
    wb_key(&p, wb);
    snprintf(n, sizeof n, "%u", count);
    snprintf(idle, sizeof idle, "%u", min_idle_ms);
    char budget[24];
    snprintf(budget, sizeof budget, "%u", SC__WB_BATCH_BYTES);
    const char *args[8] = {wb, SC__WB_GROUP, consumer, n, idle, cursor, mine ? "1" : "0", budget};
    size_t lens[8] = {CSTR, CSTR, CSTR, CSTR, CSTR, CSTR, CSTR, CSTR};
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_WB_TAKE, 1, 8, args, lens, sc__remote_now_ms() + p.timeout_ms,
                                     &reply, err, errlen);
    if (st != SC_OK)
        return st;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING || reply->element[1]->len >= 64 ||
        (reply->element[2]->type != REDIS_REPLY_ARRAY && reply->element[2]->type != REDIS_REPLY_NIL))
        return bad_reply(&p, reply, "wb_take", err, errlen);
    const char *src = reply->element[0]->str;
    b->source = strcmp(src, "mine") == 0 ? SC__WB_MINE : strcmp(src, "claimed") == 0 ? SC__WB_CLAIMED : SC__WB_NEW;
    memcpy(cursor, reply->element[1]->str, reply->element[1]->len);
    cursor[reply->element[1]->len] = '\0';
    const redisReply *list = reply->element[2];
    size_t total = list->type == REDIS_REPLY_ARRAY ? list->elements : 0;
    if (total) {
        b->e = calloc(total, sizeof *b->e);
        if (!b->e) {
            freeReplyObject(reply);
            return nomem(err, errlen);
        }
    }
    for (size_t i = 0; i < total; i++) {
        if (parse_entry(list->element[i], &b->e[b->n]) != 0) {
            free(b->e);
            b->e = NULL;
            b->n = 0;
            return bad_reply(&p, reply, "wb_take", err, errlen);
        }
        /* A version handed to save_fn counts as seen (remote.c,
         * takes_version): once in the store, a write Redis then loses must
         * never have its number handed out again, or the store's "only if
         * newer" rule would refuse the next write of that number. */
        if (b->e[b->n].key)
            sc__remote_saw(r, b->e[b->n].version);
        b->n++;
    }
    b->reply = reply;
    return SC_OK;
}

sc_status sc__remote_wb_ack(sc__remote *r, const sc__wb_entry *e, size_t n, char *err, size_t errlen)
{
    if (n == 0)
        return SC_OK;
    sc__remote_layout p;
    sc__remote_layout_get(r, &p);
    char wb[300];
    wb_key(&p, wb);
    const char **args = malloc((n + 2) * sizeof *args);
    size_t *lens = malloc((n + 2) * sizeof *lens);
    if (!args || !lens) {
        free(args);
        free(lens);
        return nomem(err, errlen);
    }
    args[0] = wb;
    args[1] = SC__WB_GROUP;
    lens[0] = lens[1] = CSTR;
    for (size_t i = 0; i < n; i++) {
        args[i + 2] = e[i].idstr;
        lens[i + 2] = CSTR;
    }
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_WB_ACK, 1, (int)(n + 2), args, lens,
                                     sc__remote_now_ms() + p.timeout_ms, &reply, err, errlen);
    free(args);
    free(lens);
    if (st == SC_OK)
        freeReplyObject(reply);
    return st;
}

static int reply_id(const redisReply *x, sc__wb_id *id, int *has)
{
    if (x->type != REDIS_REPLY_STRING)
        return -1;
    if (has)
        *has = x->len > 0;
    if (x->len == 0) {
        id->ms = id->seq = 0;
        return has ? 0 : -1;
    }
    return parse_id(x->str, x->len, id);
}

sc_status sc__remote_wb_state(sc__remote *r, sc__wb_state *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    sc__remote_layout p;
    sc__remote_layout_get(r, &p);
    char wb[300];
    wb_key(&p, wb);
    const char *args[2] = {wb, SC__WB_GROUP};
    size_t lens[2] = {CSTR, CSTR};
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_WB_STATE, 1, 2, args, lens, sc__remote_now_ms() + p.timeout_ms,
                                     &reply, err, errlen);
    if (st != SC_OK)
        return st;
    redisReply **x = reply->element;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 8 || reply_id(x[0], &s->last, NULL) != 0 ||
        reply_id(x[1], &s->delivered, NULL) != 0 || x[2]->type != REDIS_REPLY_INTEGER ||
        x[3]->type != REDIS_REPLY_INTEGER || reply_id(x[4], &s->pmin, &s->has_pmin) != 0 ||
        reply_id(x[5], &s->oldest, &s->has_oldest) != 0 || x[6]->type != REDIS_REPLY_INTEGER ||
        x[7]->type != REDIS_REPLY_INTEGER || x[3]->integer < 0 || x[6]->integer < 0 || x[7]->integer < 0)
        return bad_reply(&p, reply, "wb_state", err, errlen);
    s->has_group = x[2]->integer != 0;
    s->pending = (uint64_t)x[3]->integer;
    s->unsaved = (uint64_t)x[6]->integer;
    s->now_ms = (uint64_t)x[7]->integer;
    freeReplyObject(reply);
    return SC_OK;
}

sc_status sc__remote_wb_release(sc__remote *r, const char *consumer, uint64_t *handed, char *err, size_t errlen)
{
    *handed = 0;
    sc__remote_layout p;
    sc__remote_layout_get(r, &p);
    char wb[300];
    wb_key(&p, wb);
    const char *args[4] = {wb, SC__WB_GROUP, consumer, HANDBACK_IDLE_MS};
    size_t lens[4] = {CSTR, CSTR, CSTR, CSTR};
    redisReply *reply;
    sc_status st = sc__remote_script(r, SC__SCRIPT_WB_RELEASE, 1, 4, args, lens, sc__remote_now_ms() + p.timeout_ms,
                                     &reply, err, errlen);
    if (st != SC_OK)
        return st;
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 0)
        return bad_reply(&p, reply, "wb_release", err, errlen);
    *handed = (uint64_t)reply->integer;
    freeReplyObject(reply);
    return SC_OK;
}
