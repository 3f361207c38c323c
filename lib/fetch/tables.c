/* The per-pod side tables of cache-aside loading: the not-found cache
 * (neg_*) and the grace table (grace_*) of sc_fetch_ex. Both believe an
 * entry only under docs/protocol.md rule 6, as the header comment of
 * lib/fetch/fetch.c explains. */
#include <stdlib.h>
#include <string.h>

#include "lib/fetch/fetch.h"

/* ---------------------------------------------------- not-found cache -- */

void sc__fetch_neg_put(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t version, uint64_t known,
                       uint64_t ttl_ms)
{
    if (c->opt.local_ttl_ms && (ttl_ms == 0 || ttl_ms > c->opt.local_ttl_ms))
        ttl_ms = c->opt.local_ttl_ms;
    if (!ttl_ms || !sc__fetch_synced(c) || known < sc__local_floor(c->local, hash))
        return;
    char *k = malloc(klen + 1);
    if (!k)
        return;
    memcpy(k, key, klen);
    k[klen] = '\0';
    sc__fetch *f = c->fetch;
    pthread_mutex_lock(&f->neg_mu);
    if (!f->neg && !(f->neg = calloc(NEG_SLOTS, sizeof *f->neg))) {
        pthread_mutex_unlock(&f->neg_mu);
        free(k);
        return; /* not cached: the next fetch asks Redis */
    }
    neg_entry *e = &f->neg[hash % NEG_SLOTS];
    free(e->key);
    *e = (neg_entry){k, klen, hash, version, known, sc__now_ms() + ttl_ms};
    pthread_mutex_unlock(&f->neg_mu);
}

/* 1 with *version when a believable "not found" is cached for key. */
int sc__fetch_neg_get(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t *version)
{
    sc__fetch *f = c->fetch;
    int found = 0;
    uint64_t floor = sc__local_floor(c->local, hash);
    pthread_mutex_lock(&f->neg_mu);
    neg_entry *e = f->neg ? &f->neg[hash % NEG_SLOTS] : NULL;
    if (e && e->key && e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0) {
        if (e->expire > sc__now_ms() && e->known >= floor) {
            found = 1;
            *version = e->version;
        } else {
            free(e->key);
            memset(e, 0, sizeof *e);
        }
    }
    pthread_mutex_unlock(&f->neg_mu);
    return found;
}

void sc__fetch_neg_forget(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t upto)
{
    sc__fetch *f = c->fetch;
    if (!f)
        return;
    pthread_mutex_lock(&f->neg_mu);
    for (unsigned i = 0; f->neg && i < NEG_SLOTS; i++) {
        neg_entry *e = klen ? &f->neg[hash % NEG_SLOTS] : &f->neg[i];
        if (e->key &&
            (!klen || (e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0 && e->version <= upto))) {
            free(e->key);
            memset(e, 0, sizeof *e);
        }
        if (klen)
            break; /* one key: its one slot */
    }
    pthread_mutex_unlock(&f->neg_mu);
}

/* ------------------------------------------------------ grace table -- */

/* key's entry of the grace table, or NULL (under grace_mu). */
static grace_entry *grace_of(sc__fetch *f, const char *key, size_t klen, uint64_t hash)
{
    grace_entry *e = f->grace ? &f->grace[hash % GRACE_SLOTS] : NULL;
    if (e && e->key && e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0)
        return e;
    return NULL;
}

/* Keeps v (a new reference) as key's graced value: fresh for fresh_ms more
 * (0: its TTL already ended, past_ms ago), available until_ms more, both
 * counted from since_ms (sc__now_ms before the Redis call that reported
 * them: like a local copy's TTL, sc__ttl_since, the time the install took
 * never adds to the grace). Same belief rule as sc__fetch_neg_put. */
void sc__fetch_grace_put(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc_value *v, uint64_t known,
                         int64_t fresh_ms, uint64_t past_ms, uint64_t until_ms, uint64_t since_ms)
{
    sc__fetch *f = c->fetch;
    if (!v || !until_ms || since_ms + until_ms <= sc__now_ms() || !sc__fetch_synced(c) ||
        known < sc__local_floor(c->local, hash))
        return; /* (or its grace ended already) */
    size_t sz = sc_value_size(v) + klen;
    if (f->grace_max_bytes && sz > f->grace_max_bytes / 16)
        return; /* one value may take a sixteenth of the table's bytes */
    char *k = malloc(klen + 1);
    if (!k)
        return;
    memcpy(k, key, klen);
    k[klen] = '\0';
    pthread_mutex_lock(&f->grace_mu);
    if (!f->grace && !(f->grace = calloc(GRACE_SLOTS, sizeof *f->grace))) {
        pthread_mutex_unlock(&f->grace_mu);
        free(k);
        return; /* not kept: no grace for this key */
    }
    grace_entry *same = grace_of(f, key, klen, hash), *e = &f->grace[hash % GRACE_SLOTS];
    if (same && same->v && sc_value_version(same->v) > sc_value_version(v)) {
        pthread_mutex_unlock(&f->grace_mu);
        free(k);
        return; /* never older over newer */
    }
    if (e->key) {
        f->grace_bytes -= sc_value_size(e->v) + e->klen;
        free(e->key);
        sc_value_release(e->v);
        memset(e, 0, sizeof *e);
    }
    if (f->grace_max_bytes && f->grace_bytes + sz > f->grace_max_bytes) {
        pthread_mutex_unlock(&f->grace_mu);
        free(k);
        return;
    }
    uint64_t fresh_end = fresh_ms > 0 ? since_ms + (uint64_t)fresh_ms : since_ms - (past_ms < since_ms ? past_ms : 0);
    *e = (grace_entry){k, klen, hash, sc__value_ref(v), known, fresh_end, since_ms + until_ms};
    f->grace_bytes += sz;
    pthread_mutex_unlock(&f->grace_mu);
}

/* 1 with *out (a new reference) and *past when key has a believable graced
 * value at most grace ms past its TTL. */
int sc__fetch_grace_get(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t grace, sc_value **out,
                        uint64_t *past)
{
    sc__fetch *f = c->fetch;
    int found = 0;
    uint64_t floor = sc__local_floor(c->local, hash);
    uint64_t now = sc__now_ms();
    pthread_mutex_lock(&f->grace_mu);
    grace_entry *e = grace_of(f, key, klen, hash);
    if (e) {
        if (e->until > now && e->known >= floor) {
            if (now < e->fresh_end + grace) {
                found = 1;
                *out = sc__value_ref(e->v);
                *past = now > e->fresh_end ? now - e->fresh_end : 0;
            }
        } else {
            f->grace_bytes -= sc_value_size(e->v) + e->klen;
            free(e->key);
            sc_value_release(e->v);
            memset(e, 0, sizeof *e);
        }
    }
    pthread_mutex_unlock(&f->grace_mu);
    return found;
}

void sc__fetch_grace_forget(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t upto)
{
    sc__fetch *f = c->fetch;
    if (!f)
        return;
    pthread_mutex_lock(&f->grace_mu);
    grace_entry *e = grace_of(f, key, klen, hash);
    if (e && sc_value_version(e->v) <= upto) {
        f->grace_bytes -= sc_value_size(e->v) + e->klen;
        free(e->key);
        sc_value_release(e->v);
        memset(e, 0, sizeof *e);
    }
    pthread_mutex_unlock(&f->grace_mu);
}

int sc__fetch_grace_peek(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc_value **out)
{
    sc__fetch *f = c->fetch;
    if (!f)
        return 0;
    pthread_mutex_lock(&f->grace_mu);
    grace_entry *e = grace_of(f, key, klen, hash);
    if (e)
        *out = sc__value_ref(e->v);
    pthread_mutex_unlock(&f->grace_mu);
    return e != NULL;
}

void sc__fetch_grace_each(sc_cache *c, void (*fn)(sc_value *v, void *ud), void *ud)
{
    sc__fetch *f = c->fetch;
    if (!f)
        return;
    pthread_mutex_lock(&f->grace_mu);
    for (unsigned i = 0; f->grace && i < GRACE_SLOTS; i++)
        if (f->grace[i].key)
            fn(f->grace[i].v, ud);
    pthread_mutex_unlock(&f->grace_mu);
}

/* 1 while the grace table holds a value of key and its grace has not ended:
 * the tag index keeps such a key's links when it prunes (lib/tags.c), so a
 * tag invalidation still retires the value. */
int sc__fetch_grace_holds(sc_cache *c, const char *key, size_t klen, uint64_t hash)
{
    sc__fetch *f = c->fetch;
    if (!f)
        return 0;
    int held = 0;
    pthread_mutex_lock(&f->grace_mu);
    grace_entry *e = grace_of(f, key, klen, hash);
    if (e)
        held = e->until > sc__now_ms();
    pthread_mutex_unlock(&f->grace_mu);
    return held;
}
