/* The data calls: get, set, set_invalidate, delete, clear.
 *
 * One rule orders every install (docs/protocol.md, rule 6; local/local.h):
 * a value goes into the local tier only with the version up to which it is
 * known current, and the local tier refuses it below the key's floor. Here
 * that means:
 *  - an own write installs its value with its own version, and only while
 *    the pod is synced (otherwise events it would need to keep the copy
 *    current may be missing);
 *  - a delete or clear raises the floor to its version, so an older set
 *    still in flight from another pod is never installed afterwards;
 *  - a failed write drops the local copy, so no pod serves a value Redis may
 *    not hold (if the write did happen, its own event removes anything older
 *    when it comes back).
 * A write whose PUBLISH was refused is still a write: it is in Redis and in
 * the log, SC_OK is returned, and pods catch it from the log at the next
 * heartbeat. */
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"

__attribute__((cold)) sc_status sc__key_error(const sc_cache *c, const char *key, size_t n, const char *call)
{
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "%s: cache is NULL", call);
    if (!key)
        return sc__fail(c, SC_ERR_INVALID, "%s: key is NULL", call);
    if (n == 0)
        return sc__fail(c, SC_ERR_INVALID, "%s: key is empty", call);
    return sc__fail(c, SC_ERR_TOO_LARGE, "%s: key longer than max_key_bytes (%zu)", call, c->opt.max_key_bytes);
}

static int writes_redis(const sc_cache *c)
{
    return c->opt.role == SC_ROLE_WRITER || c->opt.reader_can_set_to_redis;
}

static int is_synced(const sc_cache *c)
{
    return sc__synced(c);
}

/* Milliseconds since the last proof that the pod had every event. */
static uint64_t sync_age_ms(sc_cache *c)
{
    uint64_t proof = atomic_load_explicit(&c->proof_ms, memory_order_relaxed);
    uint64_t now = sc__now_ms();
    return now > proof ? now - proof : 0;
}

void sc__wrote(sc_cache *c, const sc__remote_result *res, const char *call)
{
    sc__verified(c, res->version);
    sc__atomic_inc(&c->events_published);
    if (!res->published) {
        sc__atomic_inc(&c->publish_failures);
        sc__log(c, SC_LOG_WARN,
                "pod %s: %s: version %llu is stored and logged, but PUBLISH failed (pods will read it from "
                "the log): %s",
                c->opt.pod_id, call, (unsigned long long)res->version, res->publish_error);
    }
}

sc_status sc__check_ttl(const sc_cache *c, uint64_t ttl_ms, const char *call)
{
    if (ttl_ms > (UINT64_C(1) << 53))
        return sc__fail(c, SC_ERR_INVALID, "%s: ttl_ms %llu is over 2^53", call, (unsigned long long)ttl_ms);
    return SC_OK;
}

static sc_status remote_failed(sc_cache *c, sc_status s, const char *call, const char *err)
{
    sc__atomic_inc(&c->remote_errors);
    return sc__fail(c, s, "%s: %s", call, err);
}

/* Everything but a synced pod's local hit: the stale-serving policy of an
 * unsynced pod, the Redis read, stale-if-error. synced is what the caller
 * read once for the whole call; when it is 1 the local tier was already
 * looked up (and counted a miss). */
static __attribute__((noinline)) sc_status get_slow(sc_cache *c, const char *key, size_t klen, uint64_t hash,
                                                    sc_value **out, sc_get_info *info, int synced)
{
    uint64_t age = 0;
    if (!synced && c->opt.disconnect_policy == SC_DISCONNECT_STALE) {
        age = sync_age_ms(c);
        if (age <= c->opt.stale_max_ms && sc__local_get_pinned(c->local, key, klen, hash, out, NULL) == SC_OK) {
            if (info) {
                info->source = SC_SOURCE_LOCAL;
                info->stale = 1;
                info->sync_age_ms = age;
            }
            sc__atomic_inc(&c->stale_served);
            return SC_OK;
        }
    }
    sc_status s = sc__load(c, key, klen, hash, synced, out);
    if (info && s == SC_OK) {
        info->source = SC_SOURCE_REMOTE;
        info->stale = 0;
        info->sync_age_ms = 0;
    }
    if ((s == SC_ERR_REMOTE || s == SC_ERR_TIMEOUT) && !synced && c->opt.disconnect_policy != SC_DISCONNECT_FLUSH) {
        /* Redis itself is away (not just the event stream): a short outage
         * is ridden out on the local copy, flagged stale, while the last
         * proof of sync is at most stale_max_ms old (stale-if-error). */
        age = sync_age_ms(c);
        if (age <= c->opt.stale_max_ms && sc__local_peek(c->local, key, klen, hash, out) == SC_OK) {
            if (info) {
                info->source = SC_SOURCE_LOCAL;
                info->stale = 1;
                info->sync_age_ms = age;
            }
            sc__atomic_inc(&c->stale_served);
            return SC_OK;
        }
    }
    return s;
}

/* A synced pod's local hit is the whole of this function; the rest is
 * get_slow, so the hit saves and restores almost no registers. call: the
 * public call whose arguments are checked (sc_get or sc_get_ex), named by
 * its messages. */
static inline __attribute__((always_inline)) sc_status get_ex_as(sc_cache *c, const char *key, sc_value **out,
                                                                 sc_get_info *info, const char *call)
{
    c = sc__route(c, key);
    size_t klen = 0;
    if (out)
        *out = NULL;
    sc_status s = sc__check_key(c, key, &klen, call);
    if (s != SC_OK)
        return s;
    if (!out)
        return sc__fail(c, SC_ERR_INVALID, "%s: out is NULL", call);

    uint64_t hash = sc__local_hash(key, klen);
    int synced = is_synced(c);
    if (synced && sc__local_get_pinned(c->local, key, klen, hash, out, NULL) == SC_OK) {
        if (info) {
            info->source = SC_SOURCE_LOCAL;
            info->stale = 0;
            info->sync_age_ms = 0;
        }
        return SC_OK;
    }
    return get_slow(c, key, klen, hash, out, info, synced);
}

SC_EXPORT sc_status sc_get_ex(sc_cache *c, const char *key, sc_value **out, sc_get_info *info)
{
    return get_ex_as(c, key, out, info, "sc_get_ex");
}

static sc_status get_missed(void *c, const char *key, sc_value **out)
{
    return get_ex_as(c, key, out, NULL, "sc_get");
}

/* Routing (partitioned caches), a pod on a caller's event_base (c->routed),
 * an unsynced pod, NULL arguments: what the hit path below leaves to a call
 * of its own. */
static __attribute__((noinline)) sc_status get_routed(sc_cache *c, const char *key, sc_value **out)
{
    c = sc__route(c, key);
    if (!c || !out || !is_synced(c))
        return get_ex_as(c, key, out, NULL, "sc_get");
    return sc__local_get_str(c->local, key, out, get_missed, c);
}

/* A synced pod's local hit is one call into the store, which measures,
 * checks and hashes the key and hands a miss or a bad key to get_missed
 * (sc_get_ex: the checks, the counted miss, Redis), as tail calls, as
 * sc_get_with's does (lib/read.c). */
SC_EXPORT sc_status sc_get(sc_cache *c, const char *key, sc_value **out)
{
    if (!c || c->routed || !out || !atomic_load_explicit(&c->synced, memory_order_acquire))
        return get_routed(c, key, out);
    return sc__local_get_str(c->local, key, out, get_missed, c);
}

SC_EXPORT sc_status sc_peek(sc_cache *c, const char *key, sc_value **out)
{
    c = sc__route(c, key);
    size_t klen = 0;
    if (out)
        *out = NULL;
    sc_status s = sc__check_key(c, key, &klen, "sc_peek");
    if (s != SC_OK)
        return s;
    if (!out)
        return sc__fail(c, SC_ERR_INVALID, "sc_peek: out is NULL");
    return sc__local_peek(c->local, key, klen, sc__local_hash(key, klen), out);
}

/* expected: NULL, or the version the key must still have (compare-and-set).
 * behind: the same script also queues the write for the store (behind.c). */
static sc_status set_common_tags(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                                 int invalidate, const uint64_t *expected, int behind, const char *tags,
                                 size_t tags_len, const char *call)
{
    size_t klen = 0;
    sc_status s = sc__check_key(c, key, &klen, call);
    if (s != SC_OK)
        return s;
    if (!val && len)
        return sc__fail(c, SC_ERR_INVALID, "%s: value is NULL with length %zu", call, len);
    if (len > c->opt.max_value_bytes)
        return sc__fail(c, SC_ERR_TOO_LARGE, "%s: value of %zu bytes exceeds max_value_bytes (%zu)", call, len,
                        c->opt.max_value_bytes);
    uint64_t hash = sc__local_hash(key, klen);

    if (!writes_redis(c) && (expected || behind))
        return sc__fail(c, SC_ERR_INVALID, "%s: a reader pod cannot write Redis (set reader_can_set_to_redis)",
                        call);
    if (!writes_redis(c)) {
        /* A plain reader keeps its write to itself (version 0: any event or
         * Redis read for the key replaces it). */
        sc_value *v = sc__value_new_keyed(key, klen, val, len, 0);
        if (!v)
            return sc__fail(c, SC_ERR_NOMEM, "%s: out of memory", call);
        s = sc__local_put(c->local, key, klen, hash, v, ttl_ms, 0, SC__PUT_FORCE);
        sc_value_release(v);
        /* Not stored (too big for local_max_bytes): like every failed set,
         * it leaves the key out of the local tier, not its older value. */
        if (s != SC_OK)
            sc__local_remove(c->local, key, klen, hash, UINT64_MAX, 0);
        if (s == SC_ERR_TOO_LARGE)
            return sc__fail(c, s,
                            "%s: key and value (%zu bytes) exceed a local shard's share of local_max_bytes (%zu bytes: "
                            "%zu over %u shards; fewer local_shards hold larger items)",
                            call, klen + len, sc__local_item_limit(c->local), (size_t)c->opt.local_max_bytes,
                            sc__local_shard_count(c->local));
        return s == SC_OK ? SC_OK : sc__fail(c, s, "%s: %s", call, sc_strerror(s));
    }

    uint64_t ttl = ttl_ms ? ttl_ms : c->opt.default_ttl_ms;
    if ((s = sc__check_ttl(c, ttl, call)) != SC_OK)
        return s;
    /* A tagged write is announced as an invalidate: other pods learn its
     * tags with their next Redis read (lib/tags.c). */
    int carry = !invalidate && !tags_len && len <= c->opt.event_value_max;
    sc__remote_event ev;
    char evbuf[SC__EVENT_SCRATCH];
    s = sc__own_event(c, carry ? SC__ACT_SET : SC__ACT_INVALIDATE, key, klen, val, len, ttl, evbuf, sizeof evbuf, &ev);
    if (s != SC_OK)
        return sc__fail(c, s, "%s: cannot encode the event: %s", call, sc_strerror(s));
    sc__remote_result res;
    char err[SC__ERRLEN];
    uint64_t since_ms = sc__now_ms();
    uint64_t t0 = sc__mono_ns();
    s = tags_len ? sc__remote_set_tagged(c->remote, key, klen, val, len, ttl, tags, tags_len, &ev, &res, err,
                                         sizeof err)
        : expected ? sc__remote_set_if(c->remote, key, klen, val, len, ttl, *expected, &ev, &res, err, sizeof err)
        : behind   ? sc__remote_set_behind(c->remote, key, klen, val, len, ttl, &ev, &res, err, sizeof err)
                   : sc__remote_set(c->remote, key, klen, val, len, ttl, &ev, &res, err, sizeof err);
    sc__hist_since(&c->hist_set, t0);
    sc__own_event_free(&ev, evbuf);
    if (s == SC_ERR_CONFLICT) {
        /* Nothing was written; the local copy may be older than the version
         * that won, so it goes (and nothing older may come back). */
        sc__verified(c, res.version);
        sc__local_remove(c->local, key, klen, hash, res.version, res.version);
        return sc__fail(c, s, "%s: %s", call, err);
    }
    if (s != SC_OK) {
        sc__local_remove(c->local, key, klen, hash, UINT64_MAX, 0);
        return remote_failed(c, s, call, err);
    }
    sc__wrote(c, &res, call);

    sc_value *v = is_synced(c) ? sc__value_new_keyed(key, klen, val, len, res.version) : NULL;
    if (!v || sc__tracking_put_own(c, key, klen, hash, v, ttl, since_ms) != SC_OK) {
        /* Not installed (unsynced, a newer version or floor is there, no
         * memory, too big for the local bound): no older copy may stay. */
        sc__local_remove(c->local, key, klen, hash, res.version, res.version);
    } else if (tags_len) {
        sc__tags_note(c, key, klen, hash, res.version, res.version, tags, tags_len);
    }
    sc_value_release(v);
    return SC_OK;
}

static sc_status set_common(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                            int invalidate, const uint64_t *expected, int behind, const char *call)
{
    return set_common_tags(c, key, val, len, ttl_ms, invalidate, expected, behind, NULL, 0, call);
}

sc_status sc__set_tagged(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                         const char *tags, size_t tags_len)
{
    if (!writes_redis(c) && tags_len)
        return sc__fail(c, SC_ERR_INVALID, "sc_set_tagged: a reader pod cannot write Redis (set "
                                           "reader_can_set_to_redis)");
    /* Announced as an invalidate with or without tags (ntags 0 too, as
     * synccache.h says). */
    return set_common_tags(c, key, val, len, ttl_ms, 1, NULL, 0, tags, tags_len, "sc_set_tagged");
}

SC_EXPORT sc_status sc_set(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms)
{
    return set_common(sc__route(c, key), key, val, len, ttl_ms, 0, NULL, 0, "sc_set");
}

SC_EXPORT sc_status sc_set_if_version(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                                      uint64_t expected)
{
    return set_common(sc__route(c, key), key, val, len, ttl_ms, 0, &expected, 0, "sc_set_if_version");
}

SC_EXPORT sc_status sc_set_invalidate(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms)
{
    return set_common(sc__route(c, key), key, val, len, ttl_ms, 1, NULL, 0, "sc_set_invalidate");
}

sc_status sc__set_behind(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms)
{
    return set_common(c, key, val, len, ttl_ms, 0, NULL, 1, "sc_set_behind");
}

static sc_status delete_common(sc_cache *c, const char *key, int behind, const char *call)
{
    size_t klen = 0;
    sc_status s = sc__check_key(c, key, &klen, call);
    if (s != SC_OK)
        return s;
    if (behind && !writes_redis(c))
        return sc__fail(c, SC_ERR_INVALID, "%s: a reader pod cannot write Redis (set reader_can_set_to_redis)",
                        call);
    uint64_t hash = sc__local_hash(key, klen);
    /* Stop serving the key at once; the floor follows once the delete has
     * its version. */
    sc__local_remove(c->local, key, klen, hash, UINT64_MAX, 0);
    if (!writes_redis(c))
        return SC_OK;
    sc__remote_event ev;
    char evbuf[SC__EVENT_SCRATCH];
    s = sc__own_event(c, SC__ACT_DELETE, key, klen, NULL, 0, 0, evbuf, sizeof evbuf, &ev);
    if (s != SC_OK)
        return sc__fail(c, s, "%s: cannot encode the event: %s", call, sc_strerror(s));
    sc__remote_result res;
    char err[SC__ERRLEN];
    s = behind ? sc__remote_delete_behind(c->remote, key, klen, c->opt.tombstone_ttl_ms, &ev, &res, err, sizeof err)
               : sc__remote_delete(c->remote, key, klen, c->opt.tombstone_ttl_ms, &ev, &res, err, sizeof err);
    sc__own_event_free(&ev, evbuf);
    if (s != SC_OK)
        return remote_failed(c, s, call, err);
    sc__wrote(c, &res, call);
    /* Nothing older than the delete may be installed from now on: not a
     * Redis read that was in flight, not another pod's older set. */
    sc__local_remove(c->local, key, klen, hash, res.version, res.version);
    return SC_OK;
}

SC_EXPORT sc_status sc_delete(sc_cache *c, const char *key)
{
    return delete_common(sc__route(c, key), key, 0, "sc_delete");
}

sc_status sc__delete_behind(sc_cache *c, const char *key)
{
    return delete_common(c, key, 1, "sc_delete_behind");
}

SC_EXPORT sc_status sc_clear(sc_cache *c)
{
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "sc_clear: cache is NULL");
    if (c->part)
        return sc__parts_clear(c);
    sc__local_clear(c->local, 0);
    if (!writes_redis(c))
        return SC_OK;
    sc__remote_event ev;
    char evbuf[SC__EVENT_SCRATCH];
    sc_status s = sc__own_event(c, SC__ACT_CLEAR, NULL, 0, NULL, 0, 0, evbuf, sizeof evbuf, &ev);
    if (s != SC_OK)
        return sc__fail(c, s, "sc_clear: cannot encode the event: %s", sc_strerror(s));
    sc__remote_result res;
    char err[SC__ERRLEN];
    s = sc__remote_clear(c->remote, &ev, &res, err, sizeof err);
    sc__own_event_free(&ev, evbuf);
    if (s != SC_OK)
        return remote_failed(c, s, "sc_clear", err);
    sc__wrote(c, &res, "sc_clear");
    sc__local_clear(c->local, res.version);
    return SC_OK;
}
