/* The on_set_local transform hook (the Go original's OnSetLocalCache), in
 * one place for every path a value from outside takes into the local tier:
 * a Redis read (flight.c sc__install_read, which also serves sc_get_many)
 * and another pod's set event, live or replayed from the log (syncer.c
 * apply_event). The pod's own sc_set never comes here: what it wrote is what
 * it keeps.
 *
 * The hook decides what the tier stores; whether the tier takes it is still
 * the install rule's business (version floors, bounds), and a "keep nothing"
 * answer is handled by the caller exactly like a refused install: older
 * copies of the key go and the floor rises to the value's version, so
 * nothing older can come back in its place.
 */
#include <stdlib.h>

#include "lib/internal.h"

sc_status sc__transform(sc_cache *c, const char *key, size_t klen, sc_value *in, sc_value **keep)
{
    *keep = NULL;
    if (!c->opt.on_set_local) {
        *keep = sc__value_ref(in);
        return SC_OK;
    }
    void *out = NULL;
    size_t out_len = 0;
    int rc = c->opt.on_set_local(key, sc_value_data(in), sc_value_size(in), sc_value_version(in), &out, &out_len,
                                 c->opt.on_set_local_ud);
    sc_status s = SC_OK;
    if (rc == 0) {
        *keep = sc__value_ref(in);
    } else if (rc == 1 && (out || out_len == 0)) {
        *keep = sc__value_new_keyed(key, klen, out, out_len, sc_value_version(in));
        s = *keep ? SC_OK : SC_ERR_NOMEM;
    } else if (rc != -1) {
        /* An answer the contract does not know: keeping nothing is always
         * safe (the next get reads Redis). */
        sc__log(c, SC_LOG_WARN, "pod %s: on_set_local returned %d%s for key %s; nothing kept locally", c->opt.pod_id,
                rc, rc == 1 ? " without a buffer" : "", key);
    }
    /* Whatever the answer, a buffer the hook left in *out is the cache's
     * (synccache.h): a hook that allocated and then answered 0 or -1 does
     * not leak it. */
    free(out);
    return s;
}
