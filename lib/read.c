/* Reads that write nothing shared: sc_get_with and sc_get_copy.
 *
 * While the pod is synced, a local hit is served inside the local store's
 * read section: no lock, no reference count, hits counted per thread (see
 * local/store.c). Everything else (a local miss, an expired entry, an
 * unsynced pod with its stale-serving policy) goes through sc_get_ex, so
 * these calls install, count and fail exactly as sc_get does; the value it
 * returns is handed to the callback and released. A local miss is counted
 * once: sc__local_get_with counts only hits, and sc_get_ex's own local
 * lookup counts the miss.
 */
#include <string.h>

#include "lib/internal.h"

static sc_status read_with(sc_cache *c, const char *key, sc_read_fn fn, void *ud, const char *call)
{
    c = sc__route(c, key);
    size_t klen = 0;
    sc_status s = sc__check_key(c, key, &klen, call);
    if (s != SC_OK)
        return s;
    if (atomic_load_explicit(&c->synced, memory_order_acquire) &&
        sc__local_get_with(c->local, key, klen, sc__local_hash(key, klen), fn, ud) == SC_OK)
        return SC_OK;
    sc_value *v = NULL;
    s = sc_get_ex(c, key, &v, NULL);
    if (s != SC_OK)
        return s;
    fn(sc_value_data(v), sc_value_size(v), sc_value_version(v), ud);
    sc_value_release(v);
    return SC_OK;
}

SC_EXPORT sc_status sc_get_with(sc_cache *c, const char *key, sc_read_fn fn, void *ud)
{
    if (c && !fn)
        return sc__fail(c, SC_ERR_INVALID, "sc_get_with: fn is NULL");
    return read_with(c, key, fn, ud, "sc_get_with");
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
    sc_status s = read_with(c, key, copy_fn, &o, "sc_get_copy");
    if (s != SC_OK)
        return s;
    *len = o.len;
    if (version)
        *version = o.version;
    if (o.len > cap)
        return sc__fail(c, SC_ERR_TOO_LARGE, "sc_get_copy: value of %zu bytes does not fit in %zu", o.len, cap);
    return SC_OK;
}
