/* Single-flight loading: concurrent misses on one key share one Redis read.
 * The first caller (the leader) reads Redis; the others wait on the flight's
 * condition variable and take a reference to the same value. The table is
 * small (a flight lives only while a read is in progress), so one mutex is
 * enough.
 *
 * A shared read may have begun before something the caller must not go back
 * from: the pod's own write that completed before this caller's get began, or
 * a newer version the pod already served and then dropped. Both leave a
 * trace in the local tier: a newer entry, or a floor above the counter the
 * read saw. So before a read's result is served it is checked against them
 * (sc__load): a newer local entry is served instead, and a read below the
 * floor is read again (a fresh read sees a counter at or above every floor,
 * because floors only ever rise to versions Redis has handed out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"

struct sc__flight {
    sc__flight *next;
    uint64_t hash;
    size_t klen;
    int waiters;        /* followers still to take the result */
    int done;
    sc_status status;
    uint64_t known;     /* the counter when the read ran */
    sc_value *value;    /* the leader's reference, dropped by the last one out */
    char err[SC__ERRLEN];
    pthread_cond_t cv;
    char key[];
};

void sc__flights_init(sc__flights *f)
{
    pthread_mutex_init(&f->mu, NULL);
    memset(f->buckets, 0, sizeof f->buckets);
}

void sc__flights_destroy(sc__flights *f)
{
    pthread_mutex_destroy(&f->mu);
}

sc_status sc__install_read(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc__remote_item *item, int found,
                           int install, uint64_t mark, uint64_t since_ms, sc_value **out)
{
    sc__verified(c, item->known);
    if (!found) {
        sc__atomic_inc(&c->remote_misses);
        /* Absent at item->known: any copy up to that version is stale. */
        sc__local_remove(c->local, key, klen, hash, item->known + 1, item->known);
        return SC_NOT_FOUND;
    }
    sc__atomic_inc(&c->remote_hits);
    sc_value *v = sc__value_new_keyed(key, klen, item->data, item->len, item->version);
    /* The key's tags (item->tags points into the same block as data). */
    char *tags = NULL;
    size_t tags_len = item->tags_len;
    if (tags_len && (tags = malloc(tags_len)) != NULL)
        memcpy(tags, item->tags, tags_len);
    free(item->data);
    item->data = NULL;
    item->tags = NULL;
    if (!v) {
        free(tags);
        return SC_ERR_NOMEM;
    }
    /* The on_set_local hook says what the local tier stores, and the caller
     * gets that same value (as a later hit would), or the value as read when
     * the hook keeps nothing. It runs even when the value will not be kept,
     * so what a get returns does not depend on the sync state. */
    sc_value *keep = NULL;
    if (sc__transform(c, key, klen, v, &keep) != SC_OK) {
        free(tags);
        sc_value_release(v);
        sc__local_remove(c->local, key, klen, hash, item->version, item->version);
        return SC_ERR_NOMEM;
    }
    /* Redis will expire the key; the local copy must not outlive it. A key
     * with 0 ms left is about to go, so it is not worth keeping. */
    int installed = keep && install && item->pttl_ms != 0 && sc__synced(c) &&
                    sc__tracking_put(c, key, klen, hash, keep, item->pttl_ms > 0 ? (uint64_t)item->pttl_ms : 0,
                                     since_ms, item->known, mark) == SC_OK;
    if (!installed)
        sc__local_remove(c->local, key, klen, hash, item->version, item->version);
    else if (tags)
        sc__tags_note(c, key, klen, hash, item->version, item->known, tags, tags_len);
    free(tags);
    if (keep) {
        sc_value_release(v);
        v = keep;
    }
    *out = v;
    return SC_OK;
}

/* Reads Redis and installs the value when allowed. The leader's work. */
static sc_status read_remote(sc_cache *c, const char *key, size_t klen, uint64_t hash, int install,
                             sc_value **out, uint64_t *known, char *err, size_t errlen)
{
    sc__remote_item item;
    uint64_t mark = sc__tracking_mark(c, hash);
    uint64_t since_ms = sc__now_ms();
    uint64_t t0 = sc__mono_ns();
    sc_status s = sc__remote_get(c->remote, key, klen, &item, err, errlen);
    sc__hist_since(&c->hist_get, t0);
    if (s != SC_OK && s != SC_NOT_FOUND) {
        sc__atomic_inc(&c->remote_errors);
        return s;
    }
    *known = item.known;
    s = sc__install_read(c, key, klen, hash, &item, s == SC_OK, install, mark, since_ms, out);
    if (s == SC_ERR_NOMEM)
        snprintf(err, errlen, "out of memory");
    return s;
}

/* One shared read: joins the flight in progress or leads a new one. */
static sc_status load_once(sc_cache *c, const char *key, size_t klen, uint64_t hash, int install, sc_value **out,
                           uint64_t *known)
{
    sc__flights *f = &c->flights;
    sc__flight **bucket = &f->buckets[hash % (sizeof f->buckets / sizeof f->buckets[0])];

    pthread_mutex_lock(&f->mu);
    for (sc__flight *fl = *bucket; fl; fl = fl->next) {
        if (fl->hash != hash || fl->klen != klen || memcmp(fl->key, key, klen) != 0)
            continue;
        /* Follow the read in progress. */
        fl->waiters++;
        while (!fl->done)
            pthread_cond_wait(&fl->cv, &f->mu);
        sc_status s = fl->status;
        *out = s == SC_OK ? sc__value_ref(fl->value) : NULL;
        *known = fl->known;
        char err[SC__ERRLEN];
        memcpy(err, fl->err, sizeof err);
        int last = --fl->waiters == 0;
        if (last) {
            sc_value_release(fl->value);
            pthread_cond_destroy(&fl->cv);
            free(fl);
        }
        pthread_mutex_unlock(&f->mu);
        sc__atomic_inc(&c->loads_shared);
        return s == SC_OK || s == SC_NOT_FOUND ? s : sc__fail(c, s, "sc_get: %s", err);
    }

    sc__flight *fl = calloc(1, sizeof *fl + klen);
    if (!fl) {
        pthread_mutex_unlock(&f->mu);
        return sc__fail(c, SC_ERR_NOMEM, "sc_get: out of memory");
    }
    fl->hash = hash;
    fl->klen = klen;
    memcpy(fl->key, key, klen);
    pthread_cond_init(&fl->cv, NULL);
    fl->next = *bucket;
    *bucket = fl;
    pthread_mutex_unlock(&f->mu);

    sc_value *v = NULL;
    char err[SC__ERRLEN] = "";
    *known = 0;
    sc_status s = read_remote(c, key, klen, hash, install, &v, known, err, sizeof err);

    pthread_mutex_lock(&f->mu);
    for (sc__flight **p = bucket; *p; p = &(*p)->next) {
        if (*p == fl) {
            *p = fl->next;
            break;
        }
    }
    fl->done = 1;
    fl->status = s;
    fl->known = *known;
    memcpy(fl->err, err, sizeof err);
    if (fl->waiters > 0) {
        fl->value = v ? sc__value_ref(v) : NULL;
        pthread_cond_broadcast(&fl->cv);
    } else {
        pthread_cond_destroy(&fl->cv);
        free(fl);
    }
    pthread_mutex_unlock(&f->mu);

    *out = v;
    return s == SC_OK || s == SC_NOT_FOUND ? s : sc__fail(c, s, "sc_get: %s", err);
}

/* Reads beyond the first that a result below the key's floor may cost. Each
 * fresh read sees the counter as it is, which is at or above every floor at
 * that moment, so one more is nearly always enough; the bound only stops a
 * key rewritten faster than it can be read from spinning. */
#define MAX_REREADS 8

int sc__settle_read(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t known, sc_value **v)
{
    if (sc__local_floor(c->local, hash) > known)
        return -1;
    /* The pod's own completed write, or an event applied while the read was
     * in flight, may hold something newer than the read. */
    sc_value *local = NULL;
    if (sc__local_peek(c->local, key, klen, hash, &local) == SC_OK &&
        (!*v || sc_value_version(local) > sc_value_version(*v))) {
        sc_value_release(*v);
        *v = local;
        return 0;
    }
    sc_value_release(local);
    return 0;
}

sc_status sc__load(sc_cache *c, const char *key, size_t klen, uint64_t hash, int install, sc_value **out)
{
    for (int attempt = 0;; attempt++) {
        uint64_t known = 0;
        sc_value *v = NULL;
        sc_status s = load_once(c, key, klen, hash, install, &v, &known);
        if (s != SC_OK && s != SC_NOT_FOUND)
            return s;
        if (sc__settle_read(c, key, klen, hash, known, &v) < 0 && attempt < MAX_REREADS) {
            sc_value_release(v);
            continue;
        }
        *out = v;
        return v ? SC_OK : SC_NOT_FOUND;
    }
}
