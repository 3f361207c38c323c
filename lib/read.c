/* Reads that write nothing shared: sc_get_with and sc_get_copy.
 *
 * While the pod is synced, a local hit is served inside the local store's
 * read section: no lock, no reference count, hits counted per thread (see
 * local/store.c). Everything else (a local miss, an expired entry, an
 * unsynced pod with its stale-serving policy) goes through sc_get_ex, so
 * these calls install, count and fail exactly as sc_get does; the value it
 * returns is handed to the callback and released. A local miss is counted
 * once: sc__local_get_with_str counts only hits, and sc_get_ex's own local
 * lookup counts the miss.
 */
#include <string.h>

#include "lib/internal.h"

/* Everything but a synced pod's local hit: the key's checks and their
 * messages, then sc_get_ex (which looks the key up locally again and
 * counts the miss). */
static sc_status read_slow(sc_cache *c, const char *key, sc_read_fn fn, void *ud, const char *call)
{
    size_t klen = 0;
    sc_status s = sc__check_key(c, key, &klen, call);
    if (s != SC_OK)
        return s;
    sc_value *v = NULL;
    s = sc_get_ex(c, key, &v, NULL);
    if (s != SC_OK)
        return s;
    fn(sc_value_data(v), sc_value_size(v), sc_value_version(v), ud);
    sc_value_release(v);
    return SC_OK;
}

static sc_status get_with_missed(void *c, const char *key, sc_read_fn fn, void *ud)
{
    return read_slow(c, key, fn, ud, "sc_get_with");
}

static sc_status get_copy_missed(void *c, const char *key, sc_read_fn fn, void *ud)
{
    return read_slow(c, key, fn, ud, "sc_get_copy");
}

/* Routing (partitioned caches), a pod on a caller's event_base (its sync
 * needs a recent proof, sc__synced), an unsynced pod and a NULL cache: what
 * the hit path below leaves to a call of its own (fn is never NULL here:
 * sc_get_with refuses that, sc_get_copy passes its own). */
static __attribute__((noinline)) sc_status read_routed(sc_cache *c, const char *key, sc_read_fn fn, void *ud,
                                                      sc__local_miss_fn missed)
{
    c = sc__route(c, key);
    if (!c || !sc__synced(c))
        return missed(c, key, fn, ud);
    return sc__local_get_with_str(c->local, key, fn, ud, missed, c);
}

/* A synced pod's local hit is one call into the store, which measures,
 * checks and hashes the key and hands a miss or a bad key to missed, as
 * tail calls (see sc__local_get_with_str for why). */
static inline sc_status read_with(sc_cache *c, const char *key, sc_read_fn fn, void *ud,
                                  sc__local_miss_fn missed)
{
    if (!c || c->routed || !atomic_load_explicit(&c->synced, memory_order_acquire))
        return read_routed(c, key, fn, ud, missed);
    return sc__local_get_with_str(c->local, key, fn, ud, missed, c);
}

SC_EXPORT sc_status sc_get_with(sc_cache *c, const char *key, sc_read_fn fn, void *ud)
{
    if (c && !fn)
        return sc__fail(c, SC_ERR_INVALID, "sc_get_with: fn is NULL");
    return read_with(c, key, fn, ud, get_with_missed);
}

struct copy_out {
    void *buf;
    size_t cap, len;
    uint64_t version;
};

static void copy_fn(const void *data, size_t len, uint64_t version, void *ud)
{
    struct copy_out *o = ud;
    o->len = len;
    o->version = version;
    if (len <= o->cap && len)
        memcpy(o->buf, data, len);
}

SC_EXPORT sc_status sc_get_copy(sc_cache *c, const char *key, void *buf, size_t cap, size_t *len,
                                uint64_t *version)
{
    if (c && !len)
        return sc__fail(c, SC_ERR_INVALID, "sc_get_copy: len is NULL");
    if (c && !buf && cap)
        return sc__fail(c, SC_ERR_INVALID, "sc_get_copy: buf is NULL with cap %zu", cap);
    struct copy_out o = {.buf = buf, .cap = cap};
    sc_status s = read_with(c, key, copy_fn, &o, get_copy_missed);
    if (s != SC_OK) {
        if (len)
            *len = 0;
        return s;
    }
    *len = o.len;
    if (version)
        *version = o.version;
    if (o.len > cap)
        return sc__fail(c, SC_ERR_TOO_LARGE, "sc_get_copy: value of %zu bytes does not fit in %zu", o.len, cap);
    return SC_OK;
}
