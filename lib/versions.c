/* Versions applications can build on (cascache without its ABA): the key's
 * version read from Redis, and batch reads. sc_set_if_version lives with the
 * other writes in ops.c.
 *
 * The number sc_version_of returns changes whenever the key is written,
 * deleted (a tombstone keeps the delete's version for tombstone_ttl_ms) or
 * its namespace cleared (the clear's version is a floor under every key), so
 * "snapshot, read the source, set if unchanged" never overwrites a newer
 * write, and a key that was absent, written and deleted does not match its
 * first snapshot. The retention window: once a tombstone expires the key's
 * number is 0 again (or the clear floor), so a snapshot older than
 * tombstone_ttl_ms of a deleted key may match again (cascache's GenRetention).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"

/* Most keys one sc_get_many takes: one script's argument list. */
#define GET_MANY_MAX ((size_t)1 << 20)

SC_EXPORT sc_status sc_version_of(sc_cache *c, const char *key, uint64_t *version)
{
    c = sc__route(c, key);
    size_t klen = 0;
    if (version)
        *version = 0;
    sc_status s = sc__check_key(c, key, &klen, "sc_version_of");
    if (s != SC_OK)
        return s;
    if (!version)
        return sc__fail(c, SC_ERR_INVALID, "sc_version_of: version is NULL");
    char err[SC__ERRLEN];
    s = sc__remote_version(c->remote, key, klen, version, err, sizeof err);
    if (s != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        return sc__fail(c, s, "sc_version_of: %s", err);
    }
    /* A get that follows must not answer older than this number: a read
     * another thread has in flight (which the get may join) or a local copy
     * may predate it, and the compare-and-set loop pairs an absent answer
     * with this number (a lost update). The key's floor rises to it, as
     * for a version the pod served: older copies go, and older reads are
     * read again (docs/protocol.md, rule 6). */
    if (*version)
        sc__local_remove(c->local, key, klen, sc__local_hash(key, klen), *version, *version);
    return SC_OK;
}

struct sc__miss {
    uint64_t hash;
    uint64_t mark; /* sc__tracking_mark before the Redis read */
    const char *key;
    size_t klen;
    size_t index; /* into keys and out */
};
typedef struct sc__miss miss;

static int miss_cmp(const void *a, const void *b)
{
    const miss *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    int d = memcmp(x->key, y->key, x->klen);
    if (d)
        return d;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void release_all(sc_value **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sc_value_release(out[i]);
        out[i] = NULL;
    }
}

void sc__get_many_free(sc__get_many *g)
{
    free(g->uk);
    free(g->ul);
    free(g->first);
    free(g->m);
    if (g->call)
        free(g->call->items);
    memset(g, 0, sizeof *g);
}

sc_status sc__get_many_begin(sc_cache *c, const char *const *keys, size_t n, sc_value **out,
                             sc__remote_get_many_call *call, sc__get_many *g)
{
    memset(g, 0, sizeof *g);
    memset(call, 0, sizeof *call);
    g->c = c;
    g->out = out;
    g->n = n;
    g->call = call;
    g->synced = sc__synced(c);
    g->since_ms = sc__now_ms();
    int pins_left = 1; /* local hits are pinned while the thread has pins free */
    /* In groups: the keys are checked and hashed, their lines prefetched
     * (their cache misses overlap), then looked up. */
    for (size_t base = 0; base < n; base += SC__PREFETCH_GROUP) {
        size_t k = n - base < SC__PREFETCH_GROUP ? n - base : SC__PREFETCH_GROUP;
        uint64_t hash[SC__PREFETCH_GROUP];
        size_t klen[SC__PREFETCH_GROUP];
        for (size_t j = 0; j < k; j++) {
            sc_status s = sc__check_key(c, keys[base + j], &klen[j], "sc_get_many");
            if (s != SC_OK) {
                release_all(out, base + j);
                sc__get_many_free(g);
                return s;
            }
            hash[j] = sc__local_hash(keys[base + j], klen[j]);
        }
        if (g->synced)
            sc__local_prefetch(c->local, hash, k);
        for (size_t j = 0; j < k; j++) {
            size_t i = base + j;
            if (g->synced && sc__local_get_pinned(c->local, keys[i], klen[j], hash[j], &out[i], &pins_left) == SC_OK)
                continue;
            /* Made at the first miss: a batch served locally allocates nothing. */
            if (!g->m && !(g->m = malloc(n * sizeof *g->m))) {
                release_all(out, i);
                sc__get_many_free(g);
                return sc__fail(c, SC_ERR_NOMEM, "sc_get_many: out of memory");
            }
            g->m[g->nm++] = (miss){hash[j], sc__tracking_mark(c, hash[j]), keys[i], klen[j], i};
        }
    }
    if (g->nm == 0)
        return SC_OK;

    /* Duplicates are read once: sort the misses so equal keys sit side by
     * side, and keep the first of each run. */
    miss *m = g->m;
    size_t nm = g->nm;
    qsort(m, nm, sizeof *m, miss_cmp);
    g->uk = malloc(nm * sizeof *g->uk);
    g->ul = malloc(nm * sizeof *g->ul);
    g->first = malloc(nm * sizeof *g->first); /* run start in m of each unique key */
    call->items = calloc(nm, sizeof *call->items);
    if (!g->uk || !g->ul || !g->first || !call->items) {
        release_all(out, n);
        sc__get_many_free(g);
        return sc__fail(c, SC_ERR_NOMEM, "sc_get_many: out of memory");
    }
    size_t nu = 0;
    for (size_t i = 0; i < nm; i++) {
        if (i > 0 && m[i].hash == m[i - 1].hash && m[i].klen == m[i - 1].klen &&
            memcmp(m[i].key, m[i - 1].key, m[i].klen) == 0)
            continue;
        g->first[nu] = i;
        g->uk[nu] = m[i].key;
        g->ul[nu] = m[i].klen;
        nu++;
    }
    call->r = c->remote;
    call->keys = g->uk;
    call->klens = g->ul;
    call->n = nu;
    return SC_OK;
}

sc_status sc__get_many_finish(sc__get_many *g)
{
    sc_cache *c = g->c;
    sc__remote_get_many_call *call = g->call;
    const miss *m = g->m;
    size_t nu = call->n, nm = g->nm;
    sc_status s = call->status;
    char err[SC__ERRLEN];
    snprintf(err, sizeof err, "%s", call->err);
    if (nu == 0)
        s = SC_OK;
    else if (s != SC_OK && !call->skipped)
        sc__atomic_inc(&c->remote_errors);
    for (size_t u = 0; u < nu && s == SC_OK; u++) {
        size_t at = g->first[u];
        size_t end = u + 1 < nu ? g->first[u + 1] : nm;
        sc_value *v = NULL;
        sc_status r = sc__install_read(c, g->uk[u], g->ul[u], m[at].hash, &call->items[u], call->items[u].data != NULL,
                                       g->synced, m[at].mark, g->since_ms, &v);
        /* As for sc_get: never serve a read older than what the pod already
         * served or wrote (a rare second read, one key at a time). */
        if (r != SC_ERR_NOMEM && sc__settle_read(c, g->uk[u], g->ul[u], m[at].hash, call->known, &v) < 0) {
            sc_value_release(v);
            v = NULL;
            r = sc__load(c, g->uk[u], g->ul[u], m[at].hash, g->synced, &v);
            if (r != SC_OK && r != SC_NOT_FOUND) {
                s = r;
                snprintf(err, sizeof err, "%s", sc_errmsg(c));
            }
        } else if (r == SC_ERR_NOMEM) {
            s = r;
            snprintf(err, sizeof err, "out of memory");
        }
        if (s != SC_OK) {
            for (size_t k = u + 1; k < nu; k++)
                free(call->items[k].data);
            break;
        }
        for (size_t k = at; k < end; k++)
            g->out[m[k].index] = v ? sc_value_ref(v) : NULL;
        sc_value_release(v);
    }
    if (s != SC_OK)
        release_all(g->out, g->n);
    sc__get_many_free(g);
    return s == SC_OK ? SC_OK : sc__fail(c, s, "sc_get_many: %s", err);
}

SC_EXPORT sc_status sc_get_many(sc_cache *c, const char *const *keys, size_t n, sc_value **out)
{
    if (out)
        for (size_t i = 0; i < n && i < GET_MANY_MAX; i++)
            out[i] = NULL;
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "sc_get_many: cache is NULL");
    if (n == 0)
        return SC_OK;
    if (!keys || !out)
        return sc__fail(c, SC_ERR_INVALID, "sc_get_many: %s is NULL", keys ? "out" : "keys");
    if (n > GET_MANY_MAX)
        return sc__fail(c, SC_ERR_INVALID, "sc_get_many: %zu keys (at most %zu per call)", n, GET_MANY_MAX);
    if (c->part)
        return sc__parts_get_many(c, keys, n, out);

    sc__get_many g;
    sc__remote_get_many_call call;
    sc_status s = sc__get_many_begin(c, keys, n, out, &call, &g);
    if (s != SC_OK)
        return s;
    if (call.n)
        call.status = sc__remote_get_many(call.r, call.keys, call.klens, call.n, call.items, &call.known, call.err,
                                          sizeof call.err);
    return sc__get_many_finish(&g);
}
