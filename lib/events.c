/* What this pod puts into its events, and the Redis clock.
 *
 * Events are encoded here, in C, with sync/'s encoder; the write script only
 * splices in what Redis alone knows (version, time, epoch). Every event
 * names its namespace and this process's instance id, so pods sharing a
 * channel ignore each other and a pod recognises its own events even when
 * several processes were given the same pod id.
 *
 * TTLs count from the write (docs/protocol.md, rule 7): an event carries the
 * Redis time of its write, and a pod judges what is left of the TTL against
 * its estimate of the Redis clock (its own realtime clock plus the offset
 * last measured from a script reply), so a late or replayed event never
 * outlives the key in Redis.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/internal.h"

sc_status sc__own_event(const sc_cache *c, sc__action action, const char *key, size_t klen, const void *val, size_t len,
                        uint64_t ttl_ms, char *scratch, size_t scratch_cap, sc__remote_event *t)
{
    sc__event ev;
    memset(&ev, 0, sizeof ev);
    ev.action = action;
    ev.key = key ? key : "";
    ev.key_len = key ? klen : 0;
    ev.sender = c->opt.pod_id;
    ev.sender_len = strlen(c->opt.pod_id);
    ev.has_ns = 1;
    ev.ns = c->opt.ns;
    ev.ns_len = strlen(c->opt.ns);
    ev.inst = c->inst;
    ev.inst_len = strlen(c->inst);
    ev.has_value = action == SC__ACT_SET;
    ev.value = ev.has_value ? (val ? val : "") : NULL;
    ev.value_len = ev.has_value ? len : 0;
    ev.ttl_ms = ttl_ms;
    /* An invalidate that stores a value names its SHA-1, so pods can prove
     * the invalidation Redis reports for the write is this one's
     * (lib/tracking.c). */
    char sha1[41];
    if (action == SC__ACT_INVALIDATE && val) {
        sc__sha1 h;
        sc__sha1_init(&h);
        sc__sha1_update(&h, val, len);
        sc__sha1_hex(&h, sha1);
        ev.digest = sha1;
        ev.digest_len = 40;
    }
    sc__event_template tmpl;
    sc_status s = sc__event_encode_template(&ev, c->opt.wire_format, scratch, scratch_cap, &tmpl);
    if (s != SC_OK)
        return s;
    t->buf = tmpl.buf;
    t->len = tmpl.len;
    memcpy(t->cut, tmpl.cut, sizeof t->cut);
    return SC_OK;
}

void sc__own_event_free(sc__remote_event *t, const char *scratch)
{
    if (t->buf != scratch)
        free((char *)t->buf);
    t->buf = NULL;
}

uint64_t sc__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t sc__redis_now_ms(const sc_cache *c)
{
    int64_t t = realtime_ms() + atomic_load_explicit(&c->redis_offset_ms, memory_order_relaxed);
    return t > 0 ? (uint64_t)t : 0;
}

void sc__redis_clock_seen(sc_cache *c, uint64_t redis_ms)
{
    /* The reading is from some moment during the round trip that just
     * ended; taking it as "now" errs towards an earlier Redis clock, which
     * shortens TTLs by at most one round trip. */
    atomic_store_explicit(&c->redis_offset_ms, (int64_t)redis_ms - realtime_ms(), memory_order_relaxed);
}

int sc__ttl_left(const sc_cache *c, uint64_t ttl_ms, uint64_t write_ms, uint64_t *left)
{
    *left = ttl_ms;
    if (!ttl_ms || !write_ms)
        return 1;
    uint64_t now = sc__redis_now_ms(c);
    uint64_t age = now > write_ms ? now - write_ms : 0;
    if (age >= ttl_ms)
        return 0;
    *left = ttl_ms - age;
    return 1;
}

int sc__ttl_since(uint64_t ttl_ms, uint64_t since_ms, uint64_t *left)
{
    *left = ttl_ms;
    if (!ttl_ms)
        return 1;
    uint64_t now = sc__now_ms();
    uint64_t spent = now > since_ms ? now - since_ms : 0;
    if (spent >= ttl_ms)
        return 0;
    *left = ttl_ms - spent;
    return 1;
}

void sc__verified(sc_cache *c, uint64_t v)
{
    sc__atomic_max(&c->verified, v);
}
