/* Tags: sc_set_tagged, tags on sc_fetch_ex, sc_invalidate_tag.
 *
 * Redis is the authority (remote/lua/tag_invalidate.lua, prelude.lua's
 * tag_dead): a tagged key's hash lists its tags, {ns}:tags holds each tag's
 * invalidation version, and every read compares the two, so an
 * invalidation is one script however many keys carry the tag, and nothing
 * scans the key space.
 *
 * Pods drop their local copies through a local tag index: tag -> the keys
 * this pod holds (or held) with that tag, learnt from its own tagged writes
 * and from its Redis reads (which return the key's tags). The "tag" event
 * takes a sequence number and a log entry like any write, so a lost one is
 * replayed from the log (or, when the log cannot cover the gap, the pod
 * flushes): the index only has to be right for the events the pod applies.
 *
 * Ordering (docs/protocol.md rule 6): the event raises the floor of every
 * indexed key to the invalidation version, so no read older than the
 * invalidation installs afterwards. An install that raced the event (read
 * before, indexed after) is caught by the tag's invalidation version kept
 * here: a key is indexed after its install, under the index's lock, and
 * dropped at once when one of its tags was invalidated above its version.
 *
 * Other pods learn a tagged value's tags from Redis, so a tagged write is
 * announced with an invalidate event (no value carried): their next read
 * fetches value and tags together.
 *
 * The index is bounded loosely: links to keys that left the local tier (and
 * whose value the grace table of sc_fetch_ex does not hold) are pruned when
 * the index has grown past twice the local tier's entry bound since the
 * last pruning (they are harmless meanwhile: dropping a key that is not
 * there changes nothing but its floor, which only costs a Redis read).
 *
 * Tag records are bounded too (a service that tags per entity invalidates a
 * new tag every time): past FORGET_MIN, and past twice what is left since
 * the last time, the records that index no key are forgotten. Their
 * invalidation versions only matter to a read that ran on Redis before the
 * invalidation and is installed after its event, and such a read's counter
 * ("known") is below that version: so the index keeps the highest version
 * it forgot, and a tagged install read below it is not kept (the next get
 * reads Redis, which answers by the tag's real version). Reads issued after
 * the forgetting see a counter at or above it, so only reads in flight at
 * that moment pay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"

#define TAG_BUCKETS_MIN 1024u
#define FORGET_MIN 4096u
#define LINK_BUCKETS 65536u
#define MAX_TAGS 64

typedef struct link link;
typedef struct tag_rec {
    struct tag_rec *next;  /* bucket chain */
    uint64_t h;
    uint64_t inv;          /* highest invalidation version seen */
    link *head;            /* the keys indexed under the tag */
    size_t len;
    char name[];
} tag_rec;

struct link {
    link *hnext;           /* bucket chain (by tag and key) */
    link *tprev, *tnext;   /* the tag's list */
    tag_rec *t;
    uint64_t khash;
    uint64_t version;
    size_t klen;
    char key[];
};

struct sc__tags {
    pthread_mutex_t mu;
    tag_rec **tags; /* nbuckets chains, doubled past two records a chain */
    size_t nbuckets;
    size_t nrecs;
    size_t forget_at;
    uint64_t forgotten; /* the highest invalidation version forgotten */
    /* LINK_BUCKETS chains, made by the first key indexed: 512 KiB a cache
     * that never sees a tagged key does not pay. */
    link **links;
    size_t nlinks;
    size_t prune_at;
};

static uint64_t name_hash(const char *p, size_t n)
{
    return sc__local_hash(p, n);
}

static size_t prune_threshold(const sc_cache *c, size_t left);

sc_status sc__tags_new(sc_cache *c)
{
    sc__tags *t = calloc(1, sizeof *t);
    if (!t)
        return SC_ERR_NOMEM;
    if (!(t->tags = calloc(TAG_BUCKETS_MIN, sizeof *t->tags))) {
        free(t);
        return SC_ERR_NOMEM;
    }
    t->nbuckets = TAG_BUCKETS_MIN;
    t->forget_at = FORGET_MIN;
    pthread_mutex_init(&t->mu, NULL);
    t->prune_at = prune_threshold(c, 0);
    c->tags = t;
    return SC_OK;
}

void sc__tags_free(sc_cache *c)
{
    sc__tags *t = c->tags;
    if (!t)
        return;
    for (unsigned i = 0; t->links && i < LINK_BUCKETS; i++)
        for (link *l = t->links[i], *n; l; l = n) {
            n = l->hnext;
            free(l);
        }
    free(t->links);
    for (size_t i = 0; i < t->nbuckets; i++)
        for (tag_rec *r = t->tags[i], *n; r; r = n) {
            n = r->next;
            free(r);
        }
    free(t->tags);
    pthread_mutex_destroy(&t->mu);
    free(t);
    c->tags = NULL;
}

/* ---------------------------------------------------------- checking -- */

sc_status sc__tags_join(const sc_cache *c, const char *const *tags, size_t ntags, char **out, size_t *out_len,
                        const char *call)
{
    *out = NULL;
    *out_len = 0;
    if (ntags == 0)
        return SC_OK;
    if (!tags)
        return sc__fail(c, SC_ERR_INVALID, "%s: tags is NULL with ntags %zu", call, ntags);
    if (ntags > MAX_TAGS)
        return sc__fail(c, SC_ERR_INVALID, "%s: %zu tags, at most %d", call, ntags, MAX_TAGS);
    size_t total = 0;
    for (size_t i = 0; i < ntags; i++) {
        if (!tags[i] || !tags[i][0])
            return sc__fail(c, SC_ERR_INVALID, "%s: tag %zu is NULL or empty", call, i);
        size_t n = strnlen(tags[i], c->opt.max_key_bytes + 1);
        if (n > c->opt.max_key_bytes)
            return sc__fail(c, SC_ERR_TOO_LARGE, "%s: tag %zu is longer than max_key_bytes", call, i);
        if (memchr(tags[i], '\n', n))
            return sc__fail(c, SC_ERR_INVALID, "%s: tag %zu holds a newline", call, i);
        total += n + 1;
    }
    char *buf = malloc(total);
    if (!buf)
        return sc__fail(c, SC_ERR_NOMEM, "%s: out of memory", call);
    size_t o = 0;
    for (size_t i = 0; i < ntags; i++) {
        size_t n = strlen(tags[i]);
        if (o)
            buf[o++] = '\n';
        memcpy(buf + o, tags[i], n);
        o += n;
    }
    *out = buf;
    *out_len = o;
    return SC_OK;
}

/* ------------------------------------------------------------ index -- */

/* Doubles the bucket array (nothing changes when there is no memory: the
 * chains only get longer). */
static void tags_grow(sc__tags *t)
{
    size_t n = t->nbuckets * 2;
    tag_rec **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (tag_rec *r = t->tags[i], *next; r; r = next) {
            next = r->next;
            r->next = b[r->h % n];
            b[r->h % n] = r;
        }
    free(t->tags);
    t->tags = b;
    t->nbuckets = n;
}

static tag_rec *tag_find(sc__tags *t, const char *name, size_t n, int create)
{
    uint64_t h = name_hash(name, n);
    for (tag_rec *r = t->tags[h % t->nbuckets]; r; r = r->next)
        if (r->h == h && r->len == n && memcmp(r->name, name, n) == 0)
            return r;
    if (!create)
        return NULL;
    tag_rec *r = calloc(1, sizeof *r + n + 1);
    if (!r)
        return NULL;
    r->h = h;
    r->len = n;
    memcpy(r->name, name, n);
    if (t->nrecs >= 2 * t->nbuckets)
        tags_grow(t);
    tag_rec **b = &t->tags[h % t->nbuckets];
    r->next = *b;
    *b = r;
    t->nrecs++;
    return r;
}

/* Forgets the records that index no key (see the top of the file), once
 * there are more than FORGET_MIN and twice as many as the last time left:
 * a walk of every bucket paid for by at least as many new records. */
static void forget_unindexed(sc__tags *t)
{
    if (t->nrecs <= t->forget_at)
        return;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (tag_rec **p = &t->tags[i]; *p;) {
            tag_rec *r = *p;
            if (r->head) {
                p = &r->next;
                continue;
            }
            if (r->inv > t->forgotten)
                t->forgotten = r->inv;
            *p = r->next;
            free(r);
            t->nrecs--;
        }
    t->forget_at = 2 * t->nrecs > FORGET_MIN ? 2 * t->nrecs : FORGET_MIN;
}

size_t sc__tags_records(sc_cache *c)
{
    sc__tags *t = c->tags;
    pthread_mutex_lock(&t->mu);
    size_t n = t->nrecs;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static link **link_bucket(sc__tags *t, const tag_rec *r, uint64_t khash)
{
    return &t->links[(khash ^ (r->h * 0x9e3779b97f4a7c15ULL)) % LINK_BUCKETS];
}

static void link_drop(sc__tags *t, link *l)
{
    for (link **p = link_bucket(t, l->t, l->khash); *p; p = &(*p)->hnext)
        if (*p == l) {
            *p = l->hnext;
            break;
        }
    if (l->tprev)
        l->tprev->tnext = l->tnext;
    else
        l->t->head = l->tnext;
    if (l->tnext)
        l->tnext->tprev = l->tprev;
    t->nlinks--;
    free(l);
}

/* When to prune next: past twice what is left, twice the local tier's
 * entry bound and the bucket count, so a pruning (a walk of every bucket)
 * is paid for by at least as many inserts. */
static size_t prune_threshold(const sc_cache *c, size_t left)
{
    size_t bound = c->opt.local_max_entries ? c->opt.local_max_entries : 100000;
    size_t at = 2 * bound > 2 * left ? 2 * bound : 2 * left;
    return at > LINK_BUCKETS ? at : LINK_BUCKETS;
}

/* Drops the links to keys the local tier no longer holds, and whose value
 * the grace table of sc_fetch_ex does not keep either (a tag event must
 * still retire that one: its floor rises with the event). */
static void prune(sc_cache *c, sc__tags *t)
{
    for (unsigned i = 0; t->links && i < LINK_BUCKETS; i++) {
        link *l = t->links[i];
        while (l) {
            link *n = l->hnext;
            sc_value *v = NULL;
            int keep = sc__local_peek(c->local, l->key, l->klen, l->khash, &v) == SC_OK ||
                       sc__fetch_grace_holds(c, l->key, l->klen, l->khash);
            sc_value_release(v);
            if (!keep)
                link_drop(t, l);
            l = n;
        }
    }
    t->prune_at = prune_threshold(c, t->nlinks);
}

void sc__tags_note(sc_cache *c, const char *key, size_t klen, uint64_t khash, uint64_t version, uint64_t known,
                   const char *tags, size_t tags_len)
{
    sc__tags *t = c->tags;
    if (!t || !tags || !tags_len)
        return;
    uint64_t dead_at = 0;
    /* A copy the index cannot hold (out of memory) would outlive a tag
     * event that should drop it: it goes instead. */
    int unindexed = 0;
    pthread_mutex_lock(&t->mu);
    if (known < t->forgotten)
        dead_at = t->forgotten; /* read before an invalidation forgotten since */
    else if (!t->links && !(t->links = calloc(LINK_BUCKETS, sizeof *t->links)))
        unindexed = 1;
    const char *end = tags + tags_len, *p = dead_at ? end : tags; /* dropped below: nothing to index */
    while (!unindexed && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        tag_rec *r = n ? tag_find(t, p, n, 1) : NULL;
        p += n + 1;
        if (!r) {
            unindexed = n > 0; /* no memory for the tag's record */
            continue;
        }
        if (r->inv > version) {
            /* The tag was invalidated after this value was written (the
             * event ran between the read and this note). */
            if (r->inv > dead_at)
                dead_at = r->inv;
            continue;
        }
        link **b = link_bucket(t, r, khash);
        link *l = *b;
        while (l && !(l->t == r && l->khash == khash && l->klen == klen && memcmp(l->key, key, klen) == 0))
            l = l->hnext;
        if (l) {
            if (version > l->version)
                l->version = version;
            continue;
        }
        l = malloc(sizeof *l + klen + 1);
        if (!l) {
            unindexed = 1;
            break;
        }
        l->t = r;
        l->khash = khash;
        l->version = version;
        l->klen = klen;
        memcpy(l->key, key, klen);
        l->key[klen] = '\0';
        l->hnext = *b;
        *b = l;
        l->tprev = NULL;
        l->tnext = r->head;
        if (r->head)
            r->head->tprev = l;
        r->head = l;
        t->nlinks++;
    }
    if (t->nlinks > t->prune_at)
        prune(c, t);
    forget_unindexed(t);
    pthread_mutex_unlock(&t->mu);
    if (dead_at)
        sc__local_remove(c->local, key, klen, khash, dead_at, dead_at);
    if (unindexed)
        sc__local_remove(c->local, key, klen, khash, version + 1, 0);
}

size_t sc__tags_event(sc_cache *c, const char *tag, size_t tag_len, uint64_t version, uint64_t floor)
{
    sc__tags *t = c->tags;
    if (!t || !tag_len)
        return 0;
    size_t dropped = 0;
    uint64_t below = version ? version : UINT64_MAX;
    pthread_mutex_lock(&t->mu);
    tag_rec *r = tag_find(t, tag, tag_len, version != 0);
    if (!r && version) {
        /* No memory to remember the invalidation, so a copy read before it
         * and indexed after it would not be caught: everything older goes
         * instead, with a floor at the event (as a flush does). */
        pthread_mutex_unlock(&t->mu);
        return sc__local_clear(c->local, version);
    }
    if (r) {
        /* An outside publisher's event (version 0) cannot be ordered: it
         * drops what the pod holds, and leaves no mark for later installs. */
        if (version > r->inv)
            r->inv = version;
        link *l = r->head;
        while (l) {
            link *n = l->tnext;
            if (l->version < below) {
                dropped += sc__local_remove(c->local, l->key, l->klen, l->khash, below, floor) > 0;
                link_drop(t, l);
            }
            l = n;
        }
    }
    forget_unindexed(t);
    pthread_mutex_unlock(&t->mu);
    return dropped;
}

/* ------------------------------------------------------------ public -- */

SC_EXPORT sc_status sc_set_tagged(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                                  const char *const *tags, size_t ntags)
{
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "sc_set_tagged: cache is NULL");
    c = sc__route(c, key);
    char *joined = NULL;
    size_t jl = 0;
    sc_status s = sc__tags_join(c, tags, ntags, &joined, &jl, "sc_set_tagged");
    if (s != SC_OK)
        return s;
    s = sc__set_tagged(c, key, val, len, ttl_ms, joined, jl);
    free(joined);
    return s;
}

SC_EXPORT sc_status sc_invalidate_tag(sc_cache *c, const char *tag)
{
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "sc_invalidate_tag: cache is NULL");
    if (c->part)
        return sc__parts_invalidate_tag(c, tag);
    char *joined = NULL;
    size_t tl = 0;
    sc_status s = sc__tags_join(c, &tag, 1, &joined, &tl, "sc_invalidate_tag");
    if (s != SC_OK)
        return s;
    if (c->opt.role != SC_ROLE_WRITER && !c->opt.reader_can_set_to_redis) {
        /* A plain reader drops its own copies only. */
        sc__tags_event(c, joined, tl, 0, atomic_load(&c->last_seq));
        free(joined);
        return SC_OK;
    }
    sc__remote_event ev;
    char evbuf[SC__EVENT_SCRATCH];
    s = sc__own_event(c, SC__ACT_TAG, joined, tl, NULL, 0, 0, evbuf, sizeof evbuf, &ev);
    if (s != SC_OK) {
        free(joined);
        return sc__fail(c, s, "sc_invalidate_tag: cannot encode the event: %s", sc_strerror(s));
    }
    sc__remote_result res;
    char err[SC__ERRLEN];
    s = sc__remote_tag_invalidate(c->remote, joined, tl, &ev, &res, err, sizeof err);
    sc__own_event_free(&ev, evbuf);
    if (s != SC_OK) {
        free(joined);
        sc__atomic_inc(&c->remote_errors);
        return sc__fail(c, s, "sc_invalidate_tag: %s", err);
    }
    sc__wrote(c, &res, "sc_invalidate_tag");
    /* This pod at once; the others on the event (or from the log). */
    size_t n = sc__tags_event(c, joined, tl, res.version, res.version);
    for (size_t i = 0; i < n; i++)
        sc__atomic_inc(&c->invalidations);
    free(joined);
    return SC_OK;
}
