/* Server-assisted invalidation (issue 12): the second path by which a pod
 * learns that a key changed, for writes that bypass synccache (redis-cli,
 * another service, expiry, eviction, FLUSHALL). The subscriber connection
 * turns on CLIENT TRACKING with REDIRECT to its own client id, BCAST and two
 * prefixes, `{ns}:k:` (the value hashes) and `{ns}:canary:` (below), and
 * receives the invalidations as Pub/Sub messages on __redis__:invalidate,
 * interleaved with the events (sync/subscriber.c).
 *
 * What Redis 7.0 does, measured (docs/protocol.md, "Server-assisted
 * invalidation"): the subscriber may redirect to its own id, and it must
 * turn tracking on before it subscribes (a RESP2 connection in Pub/Sub mode
 * takes no CLIENT command). Nothing is delivered to a connection whose only
 * subscription is a shard channel, so it subscribes to __redis__:invalidate
 * too. With BCAST the keys modified during one turn of Redis' event loop are
 * collected and sent as one message per prefix just before Redis sleeps: a
 * script's PUBLISH reaches the stream first, and the invalidation of the key
 * it wrote follows, in the next invalidation message of the prefix, merged
 * with every other write of that turn. So a write by another client right
 * after the script, in the same turn, arrives as the very same key in the
 * very same message: adjacency alone cannot tell a synccache write from a
 * foreign one. The rule below therefore proves a copy against Redis instead.
 *
 * The rule. `pending` holds the live write events received since the last
 * invalidation message of the value prefix: key, version and the SHA-1 of
 * the value the write stored (a set's value, or the `digest` an invalidate
 * names; none for a delete). For each key of the next such message:
 *  - a pending entry with a digest: the key goes to the confirm script
 *    (remote/lua/confirm.lua) with that version and digest, run by a
 *    thread of its own once the messages already read are applied (one
 *    round trip for all of them, and no event waits for it; until then
 *    the copy is served, as it would be while the message was in flight);
 *    when Redis answers that the hash still holds that version and those
 *    bytes, nothing happens; otherwise copies up to that version go;
 *  - no entry (a foreign write, the pod's own load lock, a clear's
 *    unlinking): a copy from up to the stream's position (last_seq) goes;
 *    a newer copy, whose write's event is still to come (an own write, a
 *    load installed before the lock's message was read, a Redis read of
 *    another pod's write), goes to the confirm script with its own version
 *    and digest instead, so a load keeps the copy it just made. Only a
 *    copy that goes counts in tracking_invalidations: a lock on a key the
 *    pod does not hold is not a foreign write it could tell;
 *  - a delete or a digest-less invalidate: the copy goes, whatever its
 *    version, as for an invalidate.
 * A failed confirm drops the stream instead (below).
 * The pod's own write is confirmed like any other: its reply and the
 * stream race, so the copy sc_set installs may come after the message.
 * Proof that no foreign write is swallowed: a copy survives a message only
 * when the confirm script, which runs after Redis produced the message,
 * found Redis holding the copy's version and bytes. A foreign write made
 * before that moment either changed them (the copy goes) or left them equal
 * (the copy is what Redis holds); one made after it is reported in a later
 * message, which is judged the same way. pending only decides which keys
 * are worth a round trip, never what is kept, so even a wrong guess (an
 * outside publisher's invalidate, a lost event) costs a miss at most.
 *
 * A Redis read that ran before a foreign write must not install its value
 * after the invalidation was applied. Foreign writes take no version, so
 * the version floors cannot order them; a generation per key stripe does:
 * a read notes its stripe's generation before it asks Redis
 * (sc__tracking_mark), the invalidation raises the generation before it
 * removes the copy, and the read checks the generation again after its
 * install (sc__tracking_put): whichever runs second removes the value.
 * The pod's own write overwrote whatever came before it, so a generation
 * would undo it for nothing (a load's own lock write, reported while the
 * loader runs); it checks the stripe's invalidated version instead
 * (sc__tracking_put_own): an invalidation raises it to last_seq (an own
 * write whose event was applied before the message came before the
 * foreign write) or to the version a confirm disproved.
 *
 * The canary: every heartbeat script also sets `{ns}:canary:<inst>`, so the
 * pod's own canary key comes back as an invalidation right after its own
 * heartbeat. When it is not back within heartbeat_timeout_ms the
 * invalidation path is broken: the pod treats the interval as lost and
 * resubscribes, which re-establishes tracking under the new client id.
 * Every (re)subscription starts tracking afresh and, since a foreign write
 * while no connection listened is lost for good, confirms every local copy
 * with Redis (the same script, in batches) before its catch-up, and the
 * values the catch-up replays after it: what changed goes, the rest stays
 * warm. A confirm Redis cannot answer drops the stream: the pod stays
 * unsynced until a subscription has confirmed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/internal.h"

/* A write of one key the pod saw as an event: what a confirm compares. */
typedef struct written {
    struct written *next;
    uint64_t hash, version;
    char sha1[41];        /* of the value the write stored: a set's, or the
                             digest an invalidate names; "" for none */
    size_t klen;
    char key[];
} written;

#define PENDING_BUCKETS 256
#define CONFIRM_GATHER_NS 1000000 /* 1 ms: see confirm_main */

struct sc__tracking {
    char *value_prefix;   /* "{ns}:k:" */
    char *canary_prefix;  /* "{ns}:canary:" */
    char *canary_key;     /* "{ns}:canary:<inst>" */
    size_t value_prefix_len, canary_key_len;
    written *pending[PENDING_BUCKETS];
    size_t npending;
    written *replayed; /* set events replayed since the last check */
    written *queued;   /* entries whose key a message named: to confirm */
    /* The confirm thread: the loop hands it `todo` and never waits for
     * Redis itself; a failed confirm sets `failed` for the next tick. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started, stop;
    written *todo;
    atomic_int failed;
    int warned;           /* "tracking unavailable" logged */
};

static char *joined(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

static void *confirm_main(void *arg);

sc_status sc__tracking_new(sc_cache *c)
{
    if (!c->opt.redis_tracking)
        return SC_OK;
    sc__tracking *t = calloc(1, sizeof *t);
    if (!t)
        return SC_ERR_NOMEM;
    char *ns = joined("{", c->opt.ns, "}:");
    t->value_prefix = ns ? joined(ns, "k:", "") : NULL;
    t->canary_prefix = ns ? joined(ns, "canary:", "") : NULL;
    t->canary_key = t->canary_prefix ? joined(t->canary_prefix, c->inst, "") : NULL;
    free(ns);
    c->tracking = t;
    if (!t->value_prefix || !t->canary_prefix || !t->canary_key)
        return SC_ERR_NOMEM;
    t->value_prefix_len = strlen(t->value_prefix);
    t->canary_key_len = strlen(t->canary_key);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    /* The thread takes no signals: they belong to the application. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    t->started = pthread_create(&t->thread, NULL, confirm_main, c) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return t->started ? SC_OK : SC_ERR_NOMEM;
}

void sc__tracking_stop(sc_cache *c)
{
    sc__tracking *t = c->tracking;
    if (!t || !t->started)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    t->started = 0;
}

static void pending_clear(sc__tracking *t)
{
    if (!t->npending)
        return;
    for (size_t i = 0; i < PENDING_BUCKETS; i++) {
        while (t->pending[i]) {
            written *p = t->pending[i];
            t->pending[i] = p->next;
            free(p);
        }
    }
    t->npending = 0;
}

static void list_free(written **list)
{
    while (*list) {
        written *p = *list;
        *list = p->next;
        free(p);
    }
}

void sc__tracking_free(sc_cache *c)
{
    sc__tracking *t = c->tracking;
    if (!t)
        return;
    sc__tracking_stop(c);
    pending_clear(t);
    list_free(&t->replayed);
    list_free(&t->queued);
    list_free(&t->todo);
    if (t->value_prefix_len) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
    }
    free(t->value_prefix);
    free(t->canary_prefix);
    free(t->canary_key);
    free(t);
    c->tracking = NULL;
}

size_t sc__tracking_prefixes(const sc_cache *c, const char *out[2])
{
    if (!c->tracking)
        return 0;
    out[0] = c->tracking->value_prefix;
    out[1] = c->tracking->canary_prefix;
    return 2;
}

const char *sc__tracking_canary(const sc_cache *c)
{
    return c->tracking && atomic_load_explicit(&c->tracking_active, memory_order_relaxed) ? c->tracking->canary_key
                                                                                           : NULL;
}

/* ---- reads and installs (any thread) ---- */

static atomic_uint_fast64_t *stripe(sc_cache *c, uint64_t hash)
{
    return &c->tracking_gen[hash % SC__TRACKING_STRIPES];
}

uint64_t sc__tracking_mark(sc_cache *c, uint64_t hash)
{
    return atomic_load(stripe(c, hash));
}

sc_status sc__tracking_put(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc_value *v, uint64_t ttl_ms,
                           uint64_t since_ms, uint64_t known, uint64_t mark)
{
    if (!sc__ttl_since(ttl_ms, since_ms, &ttl_ms))
        return SC_NOT_FOUND;
    sc_status s = sc__local_put(c->local, key, klen, hash, v, ttl_ms, known, 0);
    /* seq_cst with the bump in drop_key: if this load misses the bump, the
     * removal that follows the bump sees this install. */
    if (s == SC_OK && atomic_load(stripe(c, hash)) != mark) {
        uint64_t version = sc_value_version(v);
        sc__local_remove(c->local, key, klen, hash, version + 1, version);
        return SC_ERR_CONFLICT;
    }
    return s;
}

sc_status sc__tracking_put_own(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc_value *v, uint64_t ttl_ms,
                               uint64_t since_ms)
{
    if (!sc__ttl_since(ttl_ms, since_ms, &ttl_ms))
        return SC_NOT_FOUND;
    uint64_t version = sc_value_version(v);
    sc_status s = sc__local_put(c->local, key, klen, hash, v, ttl_ms, version, 0);
    if (s == SC_OK && atomic_load(&c->tracking_poison[hash % SC__TRACKING_STRIPES]) >= version) {
        sc__local_remove(c->local, key, klen, hash, version + 1, version);
        return SC_ERR_CONFLICT;
    }
    return s;
}

/* ---- the stream (loop thread) ---- */

/* An invalidation of the stripe covers own writes up to version: one whose
 * install comes later undoes it (sc__tracking_put_own). seq_cst, like the
 * generations. */
static void poison(sc_cache *c, uint64_t hash, uint64_t version)
{
    atomic_uint_fast64_t *p = &c->tracking_poison[hash % SC__TRACKING_STRIPES];
    uint64_t cur = atomic_load(p);
    while (cur < version && !atomic_compare_exchange_weak(p, &cur, version))
        ;
}

static void bump_all(sc_cache *c)
{
    for (size_t i = 0; i < SC__TRACKING_STRIPES; i++) {
        atomic_fetch_add(&c->tracking_gen[i], 1);
        poison(c, i, c->seq.last_seq);
    }
}

/* The local tier and every read in flight lose their standing. */
static void clear_unproven(sc_cache *c, const char *why)
{
    bump_all(c);
    size_t n = sc__local_clear(c->local, c->seq.last_seq);
    if (n)
        sc__log(c, SC_LOG_INFO, "pod %s: local tier cleared (%zu entries): %s", c->opt.pod_id, n, why);
}

/* The key's copy goes if its version is below `below` (UINT64_MAX: any
 * copy, one that cannot be proven current); either way reads in flight for
 * its stripe do not install, nor do own writes whose event the pod has
 * applied (a later own write's event comes after this message: that write
 * came after the foreign one). */
static int drop_below(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t below)
{
    atomic_fetch_add(stripe(c, hash), 1);
    poison(c, hash, c->seq.last_seq);
    return sc__local_remove(c->local, key, klen, hash, below, c->seq.last_seq);
}

static int drop_key(sc_cache *c, const char *key, size_t klen, uint64_t hash)
{
    return drop_below(c, key, klen, hash, UINT64_MAX);
}

size_t sc__tracking_outside(sc_cache *c, const char *key, size_t klen, uint64_t hash)
{
    if (!key) {
        bump_all(c);
        return sc__local_clear(c->local, c->seq.last_seq);
    }
    return drop_key(c, key, klen, hash) > 0;
}

static void digest(const void *data, size_t len, char out[41])
{
    sc__sha1 s;
    sc__sha1_init(&s);
    sc__sha1_update(&s, data, len);
    sc__sha1_hex(&s, out);
}

static written *entry_new(const char *key, size_t klen, uint64_t hash)
{
    written *p = malloc(sizeof *p + klen + 1);
    if (!p)
        return NULL;
    p->hash = hash;
    p->klen = klen;
    memcpy(p->key, key, klen);
    p->key[klen] = '\0';
    return p;
}

static void entry_set(written *p, const sc__event *ev)
{
    p->version = ev->version;
    p->sha1[0] = '\0';
    if (ev->action == SC__ACT_SET)
        digest(ev->value, ev->value_len, p->sha1);
    else if (ev->digest_len == 40)
        memcpy(p->sha1, ev->digest, sizeof p->sha1);
}

void sc__tracking_event(sc_cache *c, const sc__event *ev, uint64_t hash, int replayed)
{
    sc__tracking *t = c->tracking;
    /* Only a write of one key's value hash is followed by its
     * invalidation; a tag or a clear writes other keys (a clear's unlinking
     * comes as foreign invalidations of keys the pod no longer holds). */
    int writes_key = ev->action == SC__ACT_SET || ev->action == SC__ACT_INVALIDATE || ev->action == SC__ACT_DELETE;
    if (!t || !ev->version || !writes_key || !atomic_load_explicit(&c->tracking_active, memory_order_relaxed))
        return;
    if (replayed) {
        /* Its invalidation went by long ago, and another client may have
         * written the key since: the value it installed is confirmed after
         * the catch-up (a failed allocation: the key's copy goes). */
        if (ev->action != SC__ACT_SET)
            return;
        written *p = entry_new(ev->key, ev->key_len, hash);
        if (!p) {
            drop_key(c, ev->key, ev->key_len, hash);
            return;
        }
        entry_set(p, ev);
        p->next = t->replayed;
        t->replayed = p;
        return;
    }
    written **b = &t->pending[hash % PENDING_BUCKETS];
    written *p = *b;
    while (p && !(p->hash == hash && p->klen == ev->key_len && memcmp(p->key, ev->key, p->klen) == 0))
        p = p->next;
    if (!p) {
        p = entry_new(ev->key, ev->key_len, hash);
        if (!p)
            return; /* not pending: its invalidation drops the copy, a miss */
        p->next = *b;
        *b = p;
        t->npending++;
    }
    entry_set(p, ev);
}

/* The keys worth a confirm round trip, gathered from one message. */
typedef struct confirm_list {
    const char **keys;
    size_t *lens;
    uint64_t *hash, *version;
    char (*sha1)[41];
    int *verdict;
    char **vals; /* SC__CONFIRM_BYTES: Redis' bytes (on_set_local only) */
    size_t *vlens;
    size_t n;
} confirm_list;

static void confirm_free(confirm_list *l)
{
    free(l->keys);
    free(l->lens);
    free(l->hash);
    free(l->version);
    free(l->sha1);
    free(l->verdict);
    free(l->vals);
    free(l->vlens);
}

static int confirm_alloc(confirm_list *l, size_t n)
{
    memset(l, 0, sizeof *l);
    l->keys = malloc(n * sizeof *l->keys);
    l->lens = malloc(n * sizeof *l->lens);
    l->hash = malloc(n * sizeof *l->hash);
    l->version = malloc(n * sizeof *l->version);
    l->sha1 = malloc(n * sizeof *l->sha1);
    l->verdict = malloc(n * sizeof *l->verdict);
    l->vals = malloc(n * sizeof *l->vals);
    l->vlens = malloc(n * sizeof *l->vlens);
    return l->keys && l->lens && l->hash && l->version && l->sha1 && l->verdict && l->vals && l->vlens ? 0 : -1;
}

/* A copy of key at that version whose bytes are not Redis' (val): the
 * on_set_local hook may have stored other bytes for it. The copy is
 * current when the hook makes of Redis' bytes exactly the copy's (sha1). */
static int transformed_same(sc_cache *c, const char *key, size_t klen, uint64_t version, const char *val, size_t vlen,
                            const char sha1[41])
{
    /* (the hook gets the key NUL-terminated: a confirm list's keys may
     * point into a value's block) */
    char *k = malloc(klen + 1);
    sc_value *raw = k ? sc__value_new_keyed(key, klen, val, vlen, version) : NULL, *keep = NULL;
    if (!raw) {
        free(k);
        return 0;
    }
    memcpy(k, key, klen);
    k[klen] = '\0';
    int same = 0;
    if (sc__transform(c, k, klen, raw, &keep) == SC_OK && keep) {
        char d[41];
        digest(sc_value_data(keep), sc_value_size(keep), d);
        same = strcmp(d, sha1) == 0;
    }
    sc_value_release(keep);
    sc_value_release(raw);
    free(k);
    return same;
}

/* Queues a confirm that Redis still holds v's version and bytes of key;
 * -1 out of memory. */
static int queue_confirm(sc_cache *c, const char *key, size_t klen, uint64_t hash, const sc_value *v)
{
    written *p = entry_new(key, klen, hash);
    if (!p)
        return -1;
    p->version = sc_value_version(v);
    digest(sc_value_data(v), sc_value_size(v), p->sha1);
    p->next = c->tracking->queued;
    c->tracking->queued = p;
    return 0;
}

/* Queues the copy c holds of key for a confirm of its own version and
 * bytes (none held: nothing to prove). Out of memory: the copy goes. */
static void confirm_held(sc_cache *c, const char *key, size_t klen, uint64_t hash)
{
    sc_value *v = NULL;
    if (sc__local_peek(c->local, key, klen, hash, &v) != SC_OK)
        return;
    if (queue_confirm(c, key, klen, hash, v) != 0 && drop_key(c, key, klen, hash)) {
        sc__atomic_inc(&c->invalidations);
        sc__atomic_inc(&c->tracking_invalidations);
    }
    sc_value_release(v);
}

/* Queues the graced copy c keeps of key (the grace table, lib/fetch) for a
 * confirm of its version and bytes, like a local copy: confirm_apply drops
 * it unless Redis still holds it. Out of memory: it goes. */
static void confirm_graced(sc_cache *c, const char *key, size_t klen, uint64_t hash)
{
    sc_value *v = NULL;
    if (!sc__fetch_grace_peek(c, key, klen, hash, &v))
        return;
    if (queue_confirm(c, key, klen, hash, v) != 0)
        sc__fetch_grace_forget(c, key, klen, hash, UINT64_MAX);
    sc_value_release(v);
}

/* A write no event vouches for (the file's comment, "no entry"). */
static void foreign(sc_cache *c, const char *key, size_t klen, uint64_t hash)
{
    if (drop_below(c, key, klen, hash, c->seq.last_seq + 1)) {
        sc__atomic_inc(&c->invalidations);
        sc__atomic_inc(&c->tracking_invalidations);
    } else {
        confirm_held(c, key, klen, hash);
    }
    /* A cached "not found" is a copy too (the floor just raised to last_seq
     * does not retire one read at last_seq). */
    sc__fetch_neg_forget(c, key, klen, hash, c->seq.last_seq);
    /* So is a graced copy kept for stale-if-error answers, but the write
     * may be a load's lock on the graced key (a synccache script that
     * publishes no event): it goes only if Redis no longer holds it. */
    confirm_graced(c, key, klen, hash);
    sc__fetch_event(c, key, klen);
}

/* Asks Redis about the listed copies; the ones it does not hold any more
 * (another version, other bytes, gone) are dropped, up to their version.
 * SC_OK, or the Redis error (nothing dropped: the caller decides). */
static sc_status confirm_apply(sc_cache *c, confirm_list *l)
{
    char err[SC__ERRLEN];
    /* With an on_set_local hook a copy holds what the hook made of Redis'
     * bytes: one at the same version with other bytes is asked for them. */
    int hooked = c->opt.on_set_local != NULL;
    sc_status s = sc__remote_confirm(c->remote, l->keys, l->lens, l->version, (const char(*)[41])l->sha1, l->n,
                                     l->verdict, hooked ? l->vals : NULL, hooked ? l->vlens : NULL, err, sizeof err);
    if (s != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        sc__log(c, SC_LOG_WARN, "pod %s: cannot confirm %zu local copies with Redis: %s", c->opt.pod_id, l->n, err);
        return s;
    }
    for (size_t i = 0; hooked && i < l->n; i++) {
        if (l->verdict[i] != SC__CONFIRM_BYTES)
            continue;
        l->verdict[i] = transformed_same(c, l->keys[i], l->lens[i], l->version[i], l->vals[i], l->vlens[i], l->sha1[i])
                            ? SC__CONFIRM_SAME
                            : SC__CONFIRM_CHANGED;
        free(l->vals[i]);
        l->vals[i] = NULL;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (l->verdict[i] == SC__CONFIRM_SAME) {
            sc__atomic_inc(&c->tracking_confirmed);
            continue;
        }
        /* Changed since: only this version or older goes. A later version
         * is a later synccache write, which brings its own event: the copy
         * is stale, but nothing says another client wrote the key. */
        atomic_fetch_add(stripe(c, l->hash[i]), 1);
        poison(c, l->hash[i], l->version[i]);
        /* Only a copy that went counts: two reports of one key can queue
         * two confirms of the same copy, and the second finds it gone. */
        if (sc__local_remove(c->local, l->keys[i], l->lens[i], l->hash[i], l->version[i] + 1, l->version[i])) {
            sc__atomic_inc(&c->invalidations);
            if (l->verdict[i] != SC__CONFIRM_LATER)
                sc__atomic_inc(&c->tracking_invalidations);
        }
        /* (a graced copy of that version or older goes as well) */
        sc__fetch_grace_forget(c, l->keys[i], l->lens[i], l->hash[i], l->version[i]);
        sc__fetch_event(c, l->keys[i], l->lens[i]);
    }
    return SC_OK;
}

static int value_keys(sc_cache *c, const char *const *keys, const size_t *lens, size_t n)
{
    sc__tracking *t = c->tracking;
    for (size_t i = 0; i < n; i++) {
        const char *key = keys[i] + t->value_prefix_len;
        size_t klen = lens[i] - t->value_prefix_len;
        uint64_t hash = sc__local_hash(key, klen);
        written **at = &t->pending[hash % PENDING_BUCKETS];
        while (*at && !((*at)->hash == hash && (*at)->klen == klen && memcmp((*at)->key, key, klen) == 0))
            at = &(*at)->next;
        written *p = *at;
        if (!p) {
            foreign(c, key, klen, hash);
        } else if (!p->sha1[0]) {
            /* A delete, or a write that named no value: nothing to prove. */
            drop_key(c, key, klen, hash);
        } else {
            /* Confirmed once the messages already read are applied: one
             * round trip however many came in, and no event waits for it. */
            *at = p->next;
            t->npending--;
            p->next = t->queued;
            t->queued = p;
        }
    }
    pending_clear(t);
    return t->queued != NULL;
}

int sc__tracking_invalidate(sc_cache *c, const char *const *keys, const size_t *lens, size_t n, int all)
{
    sc__tracking *t = c->tracking;
    if (!t || !atomic_load_explicit(&c->tracking_active, memory_order_relaxed))
        return 0;
    if (all) {
        /* FLUSHALL / FLUSHDB: nothing the pod holds is known to exist. */
        sc__atomic_inc(&c->tracking_invalidations);
        clear_unproven(c, "Redis was flushed (FLUSHALL / FLUSHDB)");
        sc__atomic_inc(&c->flushes);
        sc__fetch_event(c, NULL, 0);
        pending_clear(t);
        list_free(&t->queued);
        return 0;
    }
    /* One message holds the keys of one prefix. */
    if (n && lens[0] >= t->value_prefix_len && memcmp(keys[0], t->value_prefix, t->value_prefix_len) == 0)
        return value_keys(c, keys, lens, n);
    for (size_t i = 0; i < n; i++)
        if (lens[i] == t->canary_key_len && memcmp(keys[i], t->canary_key, lens[i]) == 0)
            c->canary_sent_ms = 0;
    return 0;
}

typedef struct snapshot {
    sc_value **v;
    size_t n, cap;
    int nomem;
} snapshot;

static void take(sc_value *v, void *ud)
{
    snapshot *s = ud;
    /* Version 0 is a reader's local-only value: nothing in Redis to match. */
    if (s->nomem || !v->version)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        sc_value **grown = realloc(s->v, cap * sizeof *grown);
        if (!grown) {
            s->nomem = 1;
            return;
        }
        s->v = grown;
        s->cap = cap;
    }
    s->v[s->n++] = sc__value_ref(v);
}

#define CONFIRM_BATCH 512

/* Tracking (re)started: a foreign write made while no invalidation could
 * reach the pod (before the first subscription, or while it was lost) is
 * unknown, so every copy is confirmed with Redis (version and bytes) and
 * the ones Redis no longer holds go. Reads in flight do not install. The
 * copies confirmed stay current from here on: tracking is active, so a
 * later write is reported. */
static int reconfirm(sc_cache *c)
{
    snapshot snap = {0};
    sc__local_each(c->local, take, &snap);
    /* The graced copies too (sc_fetch_ex): a write made while nothing
     * listened may have taken them away (confirm_apply drops them). */
    sc__fetch_grace_each(c, take, &snap);
    confirm_list l = {0};
    int ok = !snap.nomem && confirm_alloc(&l, CONFIRM_BATCH) == 0;
    for (size_t at = 0; ok && at < snap.n; at += l.n) {
        l.n = 0;
        for (size_t i = at; i < snap.n && l.n < CONFIRM_BATCH; i++) {
            sc_value *v = snap.v[i];
            l.keys[l.n] = v->data;
            l.lens[l.n] = v->klen;
            l.hash[l.n] = sc__local_hash(v->data, v->klen);
            l.version[l.n] = v->version;
            digest(sc_value_data(v), sc_value_size(v), l.sha1[l.n]);
            l.n++;
        }
        ok = confirm_apply(c, &l) == SC_OK;
    }
    if (snap.nomem)
        clear_unproven(c, "out of memory while confirming the local copies");
    else if (ok && snap.n)
        sc__log(c, SC_LOG_INFO, "pod %s: %zu local copies confirmed with Redis", c->opt.pod_id, snap.n);
    confirm_free(&l);
    for (size_t i = 0; i < snap.n; i++)
        sc_value_release(snap.v[i]);
    free(snap.v);
    return ok || snap.nomem ? 0 : -1;
}

/* Confirms the entries of list with Redis (CONFIRM_BATCH keys a call) and
 * frees them. 0, or -1 when Redis could not be asked. */
static int confirm_list_of(sc_cache *c, written **list)
{
    confirm_list l = {0};
    int rc = *list && confirm_alloc(&l, CONFIRM_BATCH) != 0 ? -1 : 0;
    while (rc == 0 && *list) {
        l.n = 0;
        for (written *p = *list; p && l.n < CONFIRM_BATCH; p = p->next) {
            l.keys[l.n] = p->key;
            l.lens[l.n] = p->klen;
            l.hash[l.n] = p->hash;
            l.version[l.n] = p->version;
            memcpy(l.sha1[l.n], p->sha1, sizeof l.sha1[0]);
            l.n++;
        }
        rc = confirm_apply(c, &l) == SC_OK ? 0 : -1;
        for (size_t i = 0; i < l.n; i++) {
            written *p = *list;
            *list = p->next;
            free(p);
        }
    }
    confirm_free(&l);
    list_free(list);
    return rc;
}

int sc__tracking_replayed(sc_cache *c)
{
    return c->tracking ? confirm_list_of(c, &c->tracking->replayed) : 0;
}

static void *confirm_main(void *arg)
{
    sc_cache *c = arg;
    sc__tracking *t = c->tracking;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->todo && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
        if (t->stop)
            break;
        /* Gather what else arrives within CONFIRM_GATHER_NS into the same
         * round trip: a pod writing steadily gets one message per write,
         * and one confirm script and two thread wake-ups per write cost
         * it a third of its write rate (bench/hotpath). The copies wait
         * that much longer for their verdict, as if the message had been
         * that much slower on the wire. */
        pthread_mutex_unlock(&t->mu);
        nanosleep(&(struct timespec){.tv_nsec = CONFIRM_GATHER_NS}, NULL);
        pthread_mutex_lock(&t->mu);
        if (t->stop)
            break;
        written *list = t->todo;
        t->todo = NULL;
        pthread_mutex_unlock(&t->mu);
        /* Only removals of versions it disproved, thread-safe like every
         * local tier call; the stripes' generations and invalidated
         * versions are atomics. */
        if (confirm_list_of(c, &list) < 0)
            atomic_store(&t->failed, 1);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

void sc__tracking_flush(sc_cache *c)
{
    sc__tracking *t = c->tracking;
    if (!t || !t->queued)
        return;
    written *last = t->queued;
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&t->mu);
    last->next = t->todo;
    t->todo = t->queued;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    t->queued = NULL;
}

int sc__tracking_resynced(sc_cache *c)
{
    if (!c->tracking || !atomic_load_explicit(&c->tracking_active, memory_order_relaxed))
        return 0;
    return reconfirm(c);
}

void sc__tracking_state(sc_cache *c, int active, const char *why)
{
    sc__tracking *t = c->tracking;
    if (!t)
        return;
    pending_clear(t);
    list_free(&t->replayed);
    list_free(&t->queued);
    c->canary_sent_ms = 0;
    atomic_store_explicit(&c->tracking_active, active, memory_order_relaxed);
    if (active) {
        t->warned = 0;
        atomic_store(&t->failed, 0); /* the resubscription confirms everything */
        /* Reads in flight began while no invalidation could reach the pod;
         * the copies are confirmed once the subscription has caught up
         * (sc__tracking_resynced). */
        bump_all(c);
        /* A cached "not found" cannot be confirmed like a copy (it has no
         * bytes): one whose marker a write made while nothing listened took
         * away would answer for empty_ttl_ms, whatever the disconnect
         * policy. They go (none is made while the pod is unsynced); the
         * next fetch reads the marker again. */
        sc__fetch_neg_forget(c, NULL, 0, 0, UINT64_MAX);
        sc__log(c, SC_LOG_INFO, "pod %s: CLIENT TRACKING active", c->opt.pod_id);
    } else if (why) {
        sc__atomic_inc(&c->tracking_failures);
        if (!t->warned)
            sc__log(c, SC_LOG_WARN,
                    "pod %s: running without server-assisted invalidation (writes that bypass synccache are not "
                    "seen): %s",
                    c->opt.pod_id, why);
        t->warned = 1;
    }
}

const char *sc__tracking_tick(sc_cache *c, uint64_t now)
{
    sc__tracking *t = c->tracking;
    if (!t)
        return NULL;
    if (atomic_exchange(&t->failed, 0))
        return "cannot confirm local copies with Redis";
    if (!c->canary_sent_ms || now - c->canary_sent_ms <= c->opt.heartbeat_timeout_ms)
        return NULL;
    /* The caller resubscribes: the interval is treated as lost (reads go
     * to Redis while unsynced) and the new subscription confirms every
     * copy before the pod counts as synced again. */
    sc__atomic_inc(&c->tracking_failures);
    c->canary_sent_ms = 0;
    return "the tracking canary did not come back in time (CLIENT TRACKING broken)";
}
