/* Cache-aside loading: sc_fetch, sc_fetch_batch, sc_tag_deleted.
 *
 * A fetch reads the local tier, then Redis, and loads only when neither
 * holds the key. Three layers keep loads single:
 *  - in one pod, a flight per key: the first fetch leads, later ones follow
 *    and take its result (the loader of a follower is never called);
 *  - across pods, a load lock in the key's Redis hash, taken in the same
 *    script that reads the value (remote/lua/fetch_lock.lua), with a
 *    random-free token that doubles as a fencing token: the result is stored
 *    only while the token still holds the lock (fetch_store.lua), and
 *    sc_set, sc_delete, sc_tag_deleted and sc_clear revoke it;
 *  - a pod that finds another's lock waits for the result: the sync thread
 *    calls sc__fetch_event for every event it applies, which wakes the
 *    waiters of that key; a short poll (lock_ttl_ms / 10, 5..250 ms, and
 *    never past the lock's end) is the fallback, and a lock that lapsed
 *    (lock_ttl_ms, Redis' clock) is taken over by the next waiter's read.
 *
 * Every local install keeps docs/protocol.md rule 6: a value read by
 * fetch_lock installs with known = the counter read in that script; a value
 * stored by fetch_store installs with known = its new version. A cached
 * "not found" (the empty marker) lives in Redis and, per pod, in a small
 * direct-mapped table here that obeys the same rule: an entry is believed
 * only while the key's floor is at most the counter it was read at, so any
 * event, eviction, delete or flush that touches the key since (all raise
 * the floor, or install a value the local tier answers first) retires it.
 *
 * Consistency (option `consistency`):
 *  - SC_EVENTUAL: a local hit is served at once; while another pod reloads
 *    a tagged key, its outdated value is served instead of waiting.
 *  - SC_STRONG: a local hit (or cached "not found") is confirmed with Redis
 *    (fetch_lock with the copy's version: one round trip, no value), an
 *    outdated value is never served, a follower accepts a flight's result
 *    only if it came from a round trip that started after the follower
 *    joined, and a load whose lock was revoked (fenced) is loaded again.
 *    So once sc_tag_deleted returned, no fetch that starts afterwards on any
 *    pod returns the outdated value.
 *
 * Choices where the issue is silent:
 *  - a fenced load under SC_EVENTUAL returns its value to its caller
 *    without caching it (rockscache does the same); under SC_STRONG it loads
 *    again;
 *  - a fetch (leader or follower) gives up with SC_ERR_LOCKED after
 *    2 x lock_ttl_ms + 2 x redis_timeout_ms without a result;
 *  - a loader slower than lock_ttl_ms loses its lock to a waiter (that is
 *    what the lapse is for); its own result is then fenced. With no waiter
 *    the lapsed lock is still the key's only claim and the result is stored
 *    (the lock's hash lives 10 x lock_ttl_ms: fetch_lock.lua);
 *  - a plain reader pod (no Redis writes) cannot fetch: SC_ERR_INVALID;
 *  - with a caller's event_base, a fetch made on the loop's own thread that
 *    waits for another pod's load cannot be woken by the event (the loop is
 *    blocked in it): the poll answers it;
 *  - in-pod sharing uses its own flight table (fetch/flight.c) rather than
 *    lib/flight.c's: a load flight carries a loader, locks, strong-mode
 *    round-trip counts and the recursion check, which a get's Redis read has
 *    no use for.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/fetch/fetch.h"

/* ------------------------------------------------------------ helpers -- */

static int writes_redis(const sc_cache *c)
{
    return c->opt.role == SC_ROLE_WRITER || c->opt.reader_can_set_to_redis;
}

static sc_status check_key(const sc_cache *c, const char *key, size_t *klen, const char *name)
{
    if (!key)
        return sc__fail(c, SC_ERR_INVALID, "%s: key is NULL", name);
    size_t n = strnlen(key, c->opt.max_key_bytes + 1);
    if (n == 0)
        return sc__fail(c, SC_ERR_INVALID, "%s: key is empty", name);
    if (n > c->opt.max_key_bytes)
        return sc__fail(c, SC_ERR_TOO_LARGE, "%s: key longer than max_key_bytes (%zu)", name,
                        c->opt.max_key_bytes);
    *klen = n;
    return SC_OK;
}

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* ------------------------------------------------------- lifecycle -- */

sc_status sc__fetch_new(sc_cache *c)
{
    sc__fetch *f = calloc(1, sizeof *f);
    if (!f)
        return SC_ERR_NOMEM;
    f->stats = c->outer ? c->outer->part_stats : sc__load_stats_new(c->opt.stats_window_ms);
    if (!f->stats) {
        free(f);
        return SC_ERR_NOMEM;
    }
    pthread_mutex_init(&f->mu, NULL);
    cond_init_mono(&f->done_cv);
    pthread_mutex_init(&f->wake_mu, NULL);
    cond_init_mono(&f->wake_cv);
    pthread_mutex_init(&f->neg_mu, NULL);
    pthread_mutex_init(&f->grace_mu, NULL);
    /* The grace table holds at most a quarter of the local tier's byte
     * bound (values are not shared with the tier once it dropped them). */
    f->grace_max_bytes = c->opt.local_max_bytes / 4;
    f->bg = calloc(1, sizeof *f->bg);
    if (!f->bg) {
        if (!c->outer)
            sc__load_stats_free(f->stats);
        free(f);
        return SC_ERR_NOMEM;
    }
    pthread_mutex_init(&f->bg->mu, NULL);
    cond_init_mono(&f->bg->cv);
    f->bg->refs = 1;
    f->bg->c = c;
    c->fetch = f;
    return SC_OK;
}

void sc__fetch_stop_begin(sc_cache *c)
{
    sc__fetch *f = c->fetch;
    if (!f || !f->bg)
        return;
    pthread_mutex_lock(&f->bg->mu);
    f->bg->closing = 1;
    pthread_mutex_unlock(&f->bg->mu);
}

void sc__fetch_stop(sc_cache *c)
{
    sc__fetch *f = c->fetch;
    if (!f || !f->bg)
        return;
    bg_share *b = f->bg;
    pthread_mutex_lock(&b->mu);
    b->closing = 1;
    /* A store is one Redis round trip (bounded by redis_timeout_ms). */
    while (b->storing > 0)
        pthread_cond_wait(&b->cv, &b->mu);
    f->bg = NULL;
    sc__fetch_bg_unref_locked(b);
}

void sc__fetch_free(sc_cache *c)
{
    sc__fetch *f = c->fetch;
    if (!f)
        return;
    sc__fetch_stop(c);
    for (unsigned i = 0; f->neg && i < NEG_SLOTS; i++)
        free(f->neg[i].key);
    free(f->neg);
    for (unsigned i = 0; f->grace && i < GRACE_SLOTS; i++) {
        free(f->grace[i].key);
        sc_value_release(f->grace[i].v);
    }
    free(f->grace);
    pthread_mutex_destroy(&f->grace_mu);
    if (!c->outer)
        sc__load_stats_free(f->stats);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->done_cv);
    pthread_mutex_destroy(&f->wake_mu);
    pthread_cond_destroy(&f->wake_cv);
    pthread_mutex_destroy(&f->neg_mu);
    free(f);
    c->fetch = NULL;
}

/* ---------------------------------------------------------- one call -- */

void sc__fetch_call_fail(call *cl, sc_status s, const char *fmt, ...)
{
    if (cl->fail != SC_OK)
        return;
    cl->fail = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->err, sizeof cl->err, fmt, ap);
    va_end(ap);
}

void sc__fetch_key_gave_up(call *cl, fkey *k, sc_status st, const char *what, const char *when, const char *why)
{
    k->waited = 1;
    k->deadline_hit = 1;
    sc__fetch_key_done(k, st, NULL);
    sc__fetch_call_fail(cl, st, "%s: %s\"%.*s\"%s%llu%s", cl->name, what, (int)(k->klen > 64 ? 64 : k->klen), k->key,
                        when, (unsigned long long)(sc__fetch_mono_ms() - cl->t0_ns / 1000000u), why);
}

void sc__fetch_key_done(fkey *k, sc_status st, sc_value *val)
{
    k->state = K_DONE;
    k->st = st;
    k->val = val;
    k->outcome = st != SC_OK && st != SC_NOT_FOUND ? SC__LOAD_ERROR : k->waited ? SC__LOAD_MISS : SC__LOAD_HIT;
    if (k->local) {
        sc_value_release(k->local);
        k->local = NULL;
    }
}

void sc__fetch_key_fail(call *cl, fkey *k, sc_status st)
{
    sc__fetch_key_done(k, st, NULL);
    if (cl->fail == SC_OK)
        sc__fetch_call_fail(cl, st, "%s: %s", cl->name, sc_strerror(st));
}

/* fetch_lock found a graced value for k (past its TTL, within its grace):
 * kept for this call's stale-if-error answer and in the grace table; with
 * a soft timeout, the call waits no longer than that from now on. */
static void note_graced(call *cl, fkey *k, sc__fetch_item *it, uint64_t known)
{
    sc_cache *c = cl->c;
    sc_value *v = sc__value_new_keyed(k->key, k->klen, it->data, it->len, it->version);
    free(it->data);
    it->data = NULL;
    it->len = 0;
    it->graced = 0;
    if (!v)
        return;
    v = sc__fetch_hooked(c, k, v);
    /* (its grace counts from the read, not from after the hook) */
    uint64_t since = cl->sent_ms, now = sc__now_ms();
    sc_value_release(k->graced);
    k->graced = v;
    k->graced_fresh_end = since - (it->past_ms < since ? it->past_ms : 0);
    k->graced_until = it->grace_pttl_ms >= 0 ? since + (uint64_t)it->grace_pttl_ms : UINT64_MAX;
    k->graced_known = known;
    sc__fetch_grace_put(c, k->key, k->klen, k->hash, v, known, 0, it->past_ms,
                        it->grace_pttl_ms >= 0 ? (uint64_t)it->grace_pttl_ms : UINT64_MAX / 2, since);
    sc__tags_note(c, k->key, k->klen, k->hash, it->version, known, it->tags, it->tags_len);
    /* (only a value this call may answer: at most its grace past its TTL) */
    if (cl->soft && cl->grace && now < k->graced_fresh_end + cl->grace) {
        uint64_t soft_end = cl->t0_ns / 1000000u + cl->soft;
        if (soft_end < cl->deadline_ms)
            cl->deadline_ms = soft_end;
    }
}

/* ---- the leader loop, in passes run in lockstep over many calls ----
 *
 * A pass of a call: its local tier, one fetch_lock round trip, the loader
 * for the keys it locked, one fetch_store round trip, a wait for the keys
 * other pods lock. The calls of a partitioned batch (one per partition)
 * make their passes together, so that each Redis phase is one pipelined
 * exchange per node and the batch loader is called once per pass; a single
 * call is the same loop over one call. */

static void lead_end(call *cl)
{
    for (size_t i = 0; i < cl->m; i++) {
        sc_value_release(cl->k[i].local);
        cl->k[i].local = NULL;
    }
    free(cl->snap);
    free(cl->items);
    free(cl->act);
    free(cl->tl);
    cl->snap = NULL;
    cl->items = NULL;
    cl->act = cl->tl = NULL;
    cl->leading = 0;
}

static void lead_start(call *cl)
{
    cl->snap = malloc(cl->m * sizeof *cl->snap);
    cl->items = malloc(cl->m * sizeof *cl->items);
    cl->act = malloc(cl->m * sizeof *cl->act);
    cl->tl = malloc(cl->m * sizeof *cl->tl);
    cl->leading = 1;
    cl->iter = 0;
    if (!cl->snap || !cl->items || !cl->act || !cl->tl) {
        for (size_t i = 0; i < cl->m; i++)
            if (cl->k[i].state == K_LEAD)
                sc__fetch_key_fail(cl, &cl->k[i], SC_ERR_NOMEM);
        lead_end(cl);
        return;
    }
    for (size_t i = 0; i < cl->m; i++)
        cl->k[i].active = cl->k[i].state == K_LEAD;
}

/* A pass's start: the local tier first (eventual serves a hit, strong
 * confirms it), then the fetch_lock items of the keys left. 1: a read is
 * due (cl->items[0 .. na)), 0: the loop is over. */
static int lead_prepare(call *cl)
{
    sc_cache *c = cl->c;
    sc__fetch *f = c->fetch;
    int strong = c->opt.consistency == SC_STRONG;
    size_t na = 0;
    int synced = sc__fetch_synced(c) && !(cl->iter == 0 && cl->local_checked);
    if (cl->iter > 0 && sc__fetch_mono_ms() >= cl->deadline_ms) {
        /* Still waiting for another pod's lock, or (strong) our loads
         * were revoked again and again. */
        for (size_t i = 0; i < cl->m; i++)
            if (cl->k[i].active && cl->k[i].state != K_DONE) {
                sc__fetch_key_gave_up(cl, &cl->k[i], SC_ERR_LOCKED, "no result for ", " within ",
                                      " ms (another pod's load lock still held, or every load revoked by a write or "
                                      "outlived by its lock, 10 x lock_ttl_ms)");
            }
        return 0;
    }
    for (size_t i = 0; i < cl->m; i++) {
        fkey *k = &cl->k[i];
        if (!k->active)
            continue;
        if (k->state == K_DONE) {
            k->active = 0;
            continue;
        }
        sc_value_release(k->local);
        k->local = NULL;
        k->local_empty = 0;
        k->have = 0;
        uint64_t nv;
        if (synced && sc__local_get(c->local, k->key, k->klen, k->hash, &k->local) == SC_OK) {
            if (!strong) {
                sc_value *v = k->local;
                k->local = NULL;
                sc__fetch_key_done(k, SC_OK, v);
                k->active = 0;
                continue;
            }
            k->have = sc_value_version(k->local);
        } else if (synced && sc__fetch_neg_get(c, k->key, k->klen, k->hash, &nv)) {
            if (!strong) {
                sc__fetch_key_done(k, SC_NOT_FOUND, NULL);
                k->active = 0;
                continue;
            }
            k->local_empty = 1;
            k->have = nv;
        }
        cl->act[na++] = k;
    }
    cl->na = na;
    if (na == 0)
        return 0;

    snprintf(cl->token, sizeof cl->token, "%s-%llu", c->inst,
             (unsigned long long)(atomic_fetch_add(&f->tokens, 1) + 1));
    atomic_fetch_add(&f->waiters, 1);
    pthread_mutex_lock(&f->wake_mu);
    for (size_t i = 0; i < cl->m; i++)
        cl->snap[i] = f->gens[cl->k[i].hash % WAKE_BUCKETS];
    pthread_mutex_unlock(&f->wake_mu);
    for (size_t i = 0; i < na; i++) {
        cl->items[i].key = cl->act[i]->key;
        cl->items[i].klen = cl->act[i]->klen;
        cl->items[i].have_version = cl->act[i]->have;
        cl->act[i]->mark = sc__tracking_mark(c, cl->act[i]->hash);
    }
    sc__fetch_bump_rt(cl);
    return 1;
}

/* The fetch_lock reads of n calls: one pipelined exchange per node (one
 * call: its own read, as an unpartitioned cache makes it). */
static void lock_all(call **cls, size_t n, sc__remote_fetch_call *rc)
{
    for (size_t j = 0; j < n; j++) {
        call *cl = cls[j];
        cl->sent_ms = sc__now_ms(); /* the TTLs read count from here */
        rc[j] = (sc__remote_fetch_call){.r = cl->c->remote,
                                        .lock = cl->items,
                                        .n = cl->na,
                                        .token = cl->token,
                                        .lock_ttl_ms = cl->c->opt.lock_ttl_ms,
                                        .serve_stale = cl->c->opt.consistency != SC_STRONG};
    }
    if (n == 1)
        rc[0].status = sc__remote_fetch_lock(rc[0].r, rc[0].lock, rc[0].n, rc[0].token, rc[0].lock_ttl_ms,
                                             rc[0].serve_stale, &rc[0].known, &rc[0].now_ms, rc[0].err,
                                             sizeof rc[0].err);
    else
        sc__remote_fetch_pipelined(rc, n);
}

/* A full Redis (maxmemory, noeviction) refuses fetch_lock.lua before it
 * runs, since the script may write a lock; but what Redis holds can still
 * be read, and is answered as sc_get answers it (the read-only script, the
 * same install rules). A key Redis does not hold cannot be loaded (its
 * value could not be stored): it fails with the refusal. */
static void lead_read_full(call *cl, const sc__remote_fetch_call *rc)
{
    sc_cache *c = cl->c;
    int synced = sc__fetch_synced(c);
    for (size_t i = 0; i < cl->na; i++) {
        fkey *k = cl->act[i];
        sc_value *v = NULL;
        sc_status s = sc__load(c, k->key, k->klen, k->hash, synced, &v);
        if (s == SC_OK) {
            sc__fetch_key_done(k, SC_OK, v);
            continue;
        }
        sc_status st = s == SC_NOT_FOUND ? rc->status : s;
        sc__fetch_key_done(k, st, NULL);
        sc__fetch_call_fail(cl, st, "%s: %s", cl->name, s == SC_NOT_FOUND ? rc->err : sc_errmsg(c));
    }
}

/* The pass's fetch_lock answer, key by key: the keys it locked go to
 * cl->tl for the loader, the keys another pod locked wait. 0: the read
 * failed and the loop is over. */
static int lead_locked(call *cl, const sc__remote_fetch_call *rc)
{
    sc_cache *c = cl->c;
    sc__fetch *f = c->fetch;
    if (rc->status != SC_OK) {
        atomic_fetch_sub(&f->waiters, 1);
        sc__atomic_inc(&c->remote_errors);
        if (rc->status == SC_ERR_REMOTE && sc__remote_is_oom(rc->err)) {
            lead_read_full(cl, rc);
            return 0;
        }
        sc__fetch_call_fail(cl, rc->status, "%s: %s", cl->name, rc->err);
        for (size_t i = 0; i < cl->na; i++)
            sc__fetch_key_done(cl->act[i], rc->status, NULL);
        return 0;
    }
    uint64_t known = rc->known, rnow = rc->now_ms;
    sc__verified(c, known);
    sc__redis_clock_seen(c, rnow);
    /* The fallback poll: the holder's set event (live, or replayed from the
     * log after a gap) wakes a waiter at once; the poll covers a holder
     * whose loader failed (its unlock sends no event) and a pod whose
     * stream is down. A lapsing lock is never waited on past its end. */
    uint64_t poll = c->opt.lock_ttl_ms / 10;
    cl->wait_ms = poll < 5 ? 5 : poll > 250 ? 250 : poll;
    cl->ntl = cl->nwait = 0;
    for (size_t i = 0; i < cl->na; i++) {
        fkey *k = cl->act[i];
        sc__fetch_item *it = &cl->items[i];
        k->read = it->kind;
        if (it->graced) {
            k->redis_ungraced = 0;
            note_graced(cl, k, it, known);
        } else if (it->kind == SC__FETCH_LOCKED || it->kind == SC__FETCH_WAIT || it->kind == SC__FETCH_STALE) {
            /* Redis answered and holds no graced value for the key: a copy
             * this pod kept (the grace table, an earlier read) predates a
             * write, delete, tag or invalidation it may not have applied
             * yet, and is never answered stale; without one, the soft
             * timeout does not apply. */
            k->redis_ungraced = 1;
            sc_value_release(k->graced);
            k->graced = NULL;
            sc__fetch_grace_forget(c, k->key, k->klen, k->hash, UINT64_MAX);
            if (cl->deadline_unsoft > cl->deadline_ms)
                cl->deadline_ms = cl->deadline_unsoft;
        }
        switch (it->kind) {
        case SC__FETCH_CONFIRMED:
            sc__atomic_inc(&c->remote_hits);
            if (k->local_empty) {
                sc__fetch_key_done(k, SC_NOT_FOUND, NULL);
            } else {
                sc_value *v = k->local;
                k->local = NULL;
                sc__fetch_key_done(k, SC_OK, v);
            }
            break;
        case SC__FETCH_VALUE:
        case SC__FETCH_STALE: {
            sc__atomic_inc(&c->remote_hits);
            sc_value *v = sc__value_new_keyed(k->key, k->klen, it->data, it->len, it->version);
            free(it->data);
            it->data = NULL;
            if (!v) {
                sc__fetch_key_fail(cl, k, SC_ERR_NOMEM);
                break;
            }
            if (it->kind == SC__FETCH_VALUE) {
                v = sc__fetch_install_read(c, k, v, it->pttl_ms, cl->sent_ms, known);
                if (it->grace_pttl_ms >= 0)
                    sc__fetch_grace_put(c, k->key, k->klen, k->hash, v, known, it->pttl_ms, 0,
                                        (uint64_t)it->grace_pttl_ms, cl->sent_ms);
                sc__tags_note(c, k->key, k->klen, k->hash, it->version, known, it->tags, it->tags_len);
            } else { /* outdated: served, never kept */
                sc__local_remove(c->local, k->key, k->klen, k->hash, it->version, it->version);
                v = sc__fetch_hooked(c, k, v);
            }
            sc__fetch_key_done(k, SC_OK, v);
            break;
        }
        case SC__FETCH_EMPTY:
            sc__atomic_inc(&c->remote_misses);
            /* Absent at `known`: no copy up to it may stay (as a get's miss). */
            sc__local_remove(c->local, k->key, k->klen, k->hash, known + 1, known);
            /* Kept no longer than Redis keeps the marker; one with 0 ms left
             * is about to go (as a value read then is not kept either). */
            if (it->pttl_ms != 0)
                sc__fetch_neg_put(c, k->key, k->klen, k->hash, it->version, known,
                                  it->pttl_ms > 0 ? (uint64_t)it->pttl_ms : c->opt.empty_ttl_ms);
            sc__fetch_key_done(k, SC_NOT_FOUND, NULL);
            break;
        case SC__FETCH_LOCKED:
            sc__atomic_inc(&c->remote_misses);
            cl->tl[cl->ntl++] = k;
            break;
        case SC__FETCH_WAIT: {
            cl->nwait++;
            uint64_t left = it->lock_until_ms > rnow ? it->lock_until_ms - rnow + 1 : 1;
            if (left < cl->wait_ms)
                cl->wait_ms = left;
            break;
        }
        }
        free(it->tags);
        it->tags = NULL;
        it->tags_len = 0;
    }
    if (cl->ntl && cl->fail != SC_OK) {
        /* The call already failed: give the locks back unused. */
        const char **rk = malloc(cl->ntl * sizeof *rk);
        size_t *rl = malloc(cl->ntl * sizeof *rl);
        char err[SC__ERRLEN];
        if (rk && rl) {
            for (size_t i = 0; i < cl->ntl; i++) {
                rk[i] = cl->tl[i]->key;
                rl[i] = cl->tl[i]->klen;
            }
            sc__remote_fetch_unlock(c->remote, rk, rl, cl->ntl, cl->token, err, sizeof err);
        }
        free(rk);
        free(rl);
        for (size_t i = 0; i < cl->ntl; i++)
            sc__fetch_key_fail(cl, cl->tl[i], cl->fail);
        cl->ntl = 0;
    }
    return 1;
}

/* The waits of n calls for keys other pods are loading: until the first
 * wake or the shortest poll among them. Each partition wakes its own
 * waiters, so the wait blocks on the first waiting call's partition and
 * only looks at the others': a wake there is seen at the poll. */
static void wait_all(call **cls, size_t n)
{
    uint64_t until = UINT64_MAX;
    for (size_t j = 0; j < n; j++) {
        call *cl = cls[j];
        if (!cl->nwait || cl->fail != SC_OK)
            continue;
        if (sc__fetch_mono_ms() >= cl->deadline_ms) {
            for (size_t i = 0; i < cl->na; i++) {
                fkey *k = cl->act[i];
                if (k->state != K_DONE && k->read == SC__FETCH_WAIT) {
                    k->waited = 1;
                    k->deadline_hit = 1;
                    sc__fetch_key_done(k, SC_ERR_LOCKED, NULL);
                    sc__fetch_call_fail(cl, SC_ERR_LOCKED,
                                        "%s: another pod still held the load lock of \"%.*s\" after %llu ms", cl->name,
                                        (int)(k->klen > 64 ? 64 : k->klen), k->key,
                                        (unsigned long long)(sc__fetch_mono_ms() - cl->t0_ns / 1000000u));
                }
            }
            continue;
        }
        if (sc__fetch_mono_ms() + cl->wait_ms < until)
            until = sc__fetch_mono_ms() + cl->wait_ms;
    }
    int woken = 0;
    for (size_t j = 0; j < n; j++) {
        call *cl = cls[j];
        if (!cl->nwait || cl->fail != SC_OK)
            continue;
        uint64_t now = sc__fetch_mono_ms();
        woken |= sc__fetch_wait_wake(cl->c->fetch, cl, cl->snap, woken || until <= now ? 0 : until - now);
        for (size_t i = 0; i < cl->na; i++)
            if (cl->act[i]->read == SC__FETCH_WAIT)
                cl->act[i]->waited = 1;
    }
}

/* A pass's end. 0: the call failed and the loop is over. */
static int lead_next(call *cl)
{
    atomic_fetch_sub(&cl->c->fetch->waiters, 1);
    if (cl->fail != SC_OK) {
        /* Settle what is left so followers are released. */
        for (size_t i = 0; i < cl->m; i++)
            if (cl->k[i].active && cl->k[i].state != K_DONE)
                sc__fetch_key_fail(cl, &cl->k[i], cl->fail);
        return 0;
    }
    cl->iter++;
    return 1;
}

/* The leader loop of n calls, pass by pass, until each call's loop is over. */
static void lead(call **cls, size_t n)
{
    sc__remote_fetch_call *rc = malloc(n * sizeof *rc);
    call **on = malloc(n * sizeof *on), **who = malloc(n * sizeof *who);
    for (size_t j = 0; j < n; j++) {
        if (!rc || !on || !who) {
            for (size_t i = 0; i < cls[j]->m; i++)
                if (cls[j]->k[i].state == K_LEAD)
                    sc__fetch_key_fail(cls[j], &cls[j]->k[i], SC_ERR_NOMEM);
        } else
            lead_start(cls[j]);
    }
    for (;;) {
        size_t non = 0;
        for (size_t j = 0; rc && on && who && j < n; j++) {
            if (!cls[j]->leading)
                continue;
            if (lead_prepare(cls[j]))
                on[non++] = cls[j];
            else
                lead_end(cls[j]);
        }
        if (!non)
            break;
        lock_all(on, non, rc);
        size_t still = 0;
        for (size_t j = 0; j < non; j++) {
            if (lead_locked(on[j], &rc[j]))
                on[still++] = on[j];
            else
                lead_end(on[j]);
        }
        non = still;
        /* The loaders run with the waiters counts still raised: harmless
         * (events only bump generations). */
        if (non && on[0]->load1) {
            for (size_t j = 0; j < non; j++)
                if (on[j]->ntl)
                    sc__fetch_load_one(on[j]);
        } else if (non)
            sc__fetch_load_batch(on, non);
        sc__fetch_store_all(on, non, rc, who);
        wait_all(on, non);
        for (size_t j = 0; j < non; j++)
            if (!lead_next(on[j]))
                lead_end(on[j]);
    }
    free(rc);
    free(on);
    free(who);
}

/* Runs n calls (each over cl->m unique keys, each on its own cache) in
 * lockstep; every key ends K_DONE. */
static void run_all(call **cls, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        call *cl = cls[j];
        sc_cache *c = cl->c;
        /* Eventual: the local tier answers without any flight or Redis,
         * its hits pinned while the thread has pins free (they go only to
         * the caller, duplicates by sc__value_ref). */
        if (cl->local_checked || c->opt.consistency != SC_EVENTUAL || !sc__fetch_synced(c))
            continue;
        cl->local_checked = 1;
        int pins_left = 1;
        /* In groups whose lines are prefetched first, so their cache
         * misses overlap (as sc_get_many's). */
        for (size_t base = 0; base < cl->m; base += SC__PREFETCH_GROUP) {
            size_t g = cl->m - base < SC__PREFETCH_GROUP ? cl->m - base : SC__PREFETCH_GROUP;
            uint64_t hash[SC__PREFETCH_GROUP];
            for (size_t i = 0; i < g; i++)
                hash[i] = cl->k[base + i].hash;
            sc__local_prefetch(c->local, hash, g);
            for (size_t i = base; i < base + g; i++) {
                fkey *k = &cl->k[i];
                sc_value *v;
                uint64_t nv;
                if (sc__local_get_pinned(c->local, k->key, k->klen, k->hash, &v, &pins_left) == SC_OK)
                    sc__fetch_key_done(k, SC_OK, v);
                else if (sc__fetch_neg_get(c, k->key, k->klen, k->hash, &nv))
                    sc__fetch_key_done(k, SC_NOT_FOUND, NULL);
            }
        }
    }
    call **busy = malloc((n ? n : 1) * sizeof *busy), *one[1];
    for (int round = 0;; round++) {
        size_t nb = 0;
        for (size_t j = 0; j < n; j++) {
            call *cl = cls[j];
            size_t pending = 0;
            for (size_t i = 0; i < cl->m; i++)
                pending += cl->k[i].state == K_PENDING;
            if (!pending)
                continue;
            if (round > 0 && sc__fetch_mono_ms() >= cl->deadline_ms) {
                for (size_t i = 0; i < cl->m; i++)
                    if (cl->k[i].state == K_PENDING) {
                        sc__fetch_key_done(&cl->k[i], SC_ERR_LOCKED, NULL);
                        sc__fetch_call_fail(cl, SC_ERR_LOCKED, "%s: no current result within the wait", cl->name);
                    }
                continue;
            }
            sc__fetch_join_flights(cl);
            if (cl->fail != SC_OK) {
                for (size_t i = 0; i < cl->m; i++)
                    if (cl->k[i].state == K_LEAD)
                        sc__fetch_key_fail(cl, &cl->k[i], cl->fail);
            } else if (busy)
                busy[nb++] = cl;
            else {
                one[0] = cl; /* out of memory for the list: one call at a time */
                lead(one, 1);
            }
            cl->in_round = 1;
        }
        if (nb)
            lead(busy, nb);
        int any = 0;
        for (size_t j = 0; j < n; j++) {
            if (!cls[j]->in_round)
                continue;
            cls[j]->in_round = 0;
            any = 1;
            sc__fetch_finish_flights(cls[j]);
            sc__fetch_follow_flights(cls[j]);
        }
        if (!any)
            break;
    }
    free(busy);
}

static void run(call *cl)
{
    run_all(&cl, 1);
}

/* Counts every key's outcome in one addition: a batch of 16 local hits paid a
 * statistics write and a clock read per key when each was added on its own. */
static void count(call *cl)
{
    uint64_t n[SC__LOAD_OUTCOMES] = {0};
    for (size_t i = 0; i < cl->m; i++)
        n[cl->k[i].outcome]++;
    sc__load_stats_add(cl->c->fetch->stats, n, cl->t0_ns);
}

static void call_init(call *cl, sc_cache *c, const char *name, uint64_t ttl_ms)
{
    memset(cl, 0, offsetof(call, err));
    cl->err[0] = '\0';
    cl->c = c;
    cl->name = name;
    cl->ttl = ttl_ms ? ttl_ms : c->opt.default_ttl_ms;
    cl->t0_ns = sc__mono_ns();
    cl->deadline_ms = cl->t0_ns / 1000000u + 2 * c->opt.lock_ttl_ms + 2 * (uint64_t)c->opt.redis_timeout_ms;
    cl->grace = c->opt.grace_ms;
}

static void call_free_slots(call *cl)
{
    for (size_t i = 0; i < cl->m; i++) {
        if (cl->k[i].slot) {
            free(cl->k[i].slot->data);
            free(cl->k[i].slot);
            cl->k[i].slot = NULL;
        }
        sc_value_release(cl->k[i].graced);
        cl->k[i].graced = NULL;
    }
}

/* ------------------------------------------------------------ public -- */

static sc_status check_call(sc_cache *c, int has_loader, const char *name)
{
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "%s: cache is NULL", name);
    if (!has_loader)
        return sc__fail(c, SC_ERR_INVALID, "%s: loader is NULL", name);
    if (!writes_redis(c))
        return sc__fail(c, SC_ERR_INVALID,
                        "%s: this pod does not write Redis (role reader without reader_can_set_to_redis)", name);
    return SC_OK;
}

SC_EXPORT void sc_fetch_opts_init(sc_fetch_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->grace_ms = UINT64_MAX;
}

/* The stale-if-error answer of a failed fetch: the graced value the call
 * read, a local copy (Redis could not be read while the pod is unsynced),
 * or the grace table's, at most cl->grace past its TTL. Without a grace, a
 * local copy is still served when Redis cannot be read, under the rule
 * sc_get follows (the disconnect policy is not flush and the last proof of
 * sync is at most stale_max_ms old). *age: how long past its TTL the value
 * is (a local copy: 0 with grace, else the sync age). */
static int serve_graced(call *cl, fkey *k, sc_status st, sc_value **out, uint64_t *age)
{
    sc_cache *c = cl->c;
    if (k->redis_ungraced)
        return 0;
    int redis_away = (st == SC_ERR_REMOTE || st == SC_ERR_TIMEOUT) && !cl->left_running && !sc__fetch_synced(c);
    /* SC_STRONG confirms every local copy with Redis before answering it:
     * with Redis away there is nothing to confirm it with (the pod may have
     * missed a sc_tag_deleted), so no local copy is answered. */
    if (c->opt.consistency == SC_STRONG)
        redis_away = 0;
    if (!cl->grace) {
        if (!redis_away || c->opt.disconnect_policy == SC_DISCONNECT_FLUSH)
            return 0;
        uint64_t proof = atomic_load_explicit(&c->proof_ms, memory_order_relaxed), now = sc__now_ms();
        *age = now > proof ? now - proof : 0;
        return *age <= c->opt.stale_max_ms && sc__local_peek(c->local, k->key, k->klen, k->hash, out) == SC_OK;
    }
    /* A copy in the local tier is a write the pod applied (and may have
     * served) since: a graced value older than it is never answered, even
     * though installing it raised no floor (an entry leaving does). The
     * peek comes first: an expired copy it drops raises the floor. */
    sc_value *held = NULL;
    sc__local_peek(c->local, k->key, k->klen, k->hash, &held);
    uint64_t held_version = held ? sc_value_version(held) : 0;
    uint64_t now = sc__now_ms();
    if (k->graced && now < k->graced_until && now < k->graced_fresh_end + cl->grace &&
        k->graced_known >= sc__local_floor(c->local, k->hash) && k->graced->version >= held_version) {
        sc_value_release(held);
        *out = sc__value_ref(k->graced);
        *age = now > k->graced_fresh_end ? now - k->graced_fresh_end : 0;
        return 1;
    }
    if (redis_away && held) {
        *out = held;
        *age = 0;
        return 1;
    }
    sc_value_release(held);
    sc_value *g = NULL;
    if (!sc__fetch_grace_get(c, k->key, k->klen, k->hash, cl->grace, &g, age))
        return 0;
    if (sc_value_version(g) < held_version) {
        sc_value_release(g);
        return 0;
    }
    *out = g;
    return 1;
}

int sc__fetch_graced_answerable(call *cl, fkey *k)
{
    sc_value *g = NULL;
    uint64_t age;
    /* (as after a loader left running: no local copy for Redis being away) */
    int ok = serve_graced(cl, k, SC_ERR_LOADER, &g, &age);
    sc_value_release(g);
    return ok;
}

/* sc_fetch_ex as the public call name (sc_fetch or sc_fetch_ex), which its
 * messages name. */
static sc_status fetch_ex_as(sc_cache *c, const char *key, const sc_fetch_opts *o, sc_load_fn load, void *ud,
                             sc_value **out, sc_get_info *info, const char *name)
{
    c = sc__route(c, key);
    if (out)
        *out = NULL;
    if (info)
        memset(info, 0, sizeof *info);
    sc_status s = check_call(c, load != NULL, name);
    if (s != SC_OK)
        return s;
    size_t klen = 0;
    if ((s = check_key(c, key, &klen, name)) != SC_OK)
        return s;
    if (!out)
        return sc__fail(c, SC_ERR_INVALID, "%s: out is NULL", name);
    sc_fetch_opts def;
    if (!o) {
        sc_fetch_opts_init(&def);
        o = &def;
    }
    if (o->grace_ms != UINT64_MAX && o->grace_ms > (UINT64_C(1) << 40))
        return sc__fail(c, SC_ERR_INVALID, "%s: grace_ms %llu is over 2^40", name,
                        (unsigned long long)o->grace_ms);
    /* Refused before the loader runs: a call that fails never calls its
     * loader, and a TTL the jitter happened to cut below the bound must not
     * decide whether a load is cached. */
    if ((s = sc__check_ttl(c, o->ttl_ms, name)) != SC_OK)
        return s;
    char *tags = NULL;
    size_t tags_len = 0;
    if (o->ntags && (s = sc__tags_join(c, o->tags, o->ntags, &tags, &tags_len, name)) != SC_OK)
        return s;
    uint64_t hash = sc__local_hash(key, klen);
    int checked = 0;
    if (c->opt.consistency == SC_EVENTUAL && sc__fetch_synced(c)) {
        /* The hit path: the local tier (or a cached "not found") answers,
         * nothing else is set up. */
        uint64_t t0 = sc__load_stats_hit_begin(), nv;
        sc_status hit = sc__local_get_pinned(c->local, key, klen, hash, out, NULL) == SC_OK ? SC_OK
                        : sc__fetch_neg_get(c, key, klen, hash, &nv)                        ? SC_NOT_FOUND
                                                                                            : SC_ERR_INVALID;
        if (hit != SC_ERR_INVALID) {
            sc__load_stats_hit(c->fetch->stats, t0);
            free(tags);
            return hit;
        }
        checked = 1;
    }
    call cl;
    call_init(&cl, c, name, o->ttl_ms);
    cl.local_checked = checked;
    if (o->grace_ms != UINT64_MAX)
        cl.grace = o->grace_ms;
    cl.soft = o->soft_timeout_ms;
    cl.hard = o->hard_timeout_ms;
    cl.tags = tags;
    cl.tags_len = tags_len;
    if (cl.hard) {
        uint64_t hard_end = cl.t0_ns / 1000000u + cl.hard;
        if (hard_end < cl.deadline_ms)
            cl.deadline_ms = hard_end;
    }
    cl.deadline_unsoft = cl.deadline_ms;
    if (cl.soft && cl.grace) {
        /* A graced value already at hand bounds every wait by the soft
         * timeout (one read later does the same: note_graced). */
        sc_value *g = NULL;
        uint64_t past;
        if (sc__fetch_grace_get(c, key, klen, hash, cl.grace, &g, &past)) {
            uint64_t soft_end = cl.t0_ns / 1000000u + cl.soft;
            if (soft_end < cl.deadline_ms)
                cl.deadline_ms = soft_end;
        }
        sc_value_release(g);
    }
    fkey k;
    memset(&k, 0, sizeof k);
    k.key = key;
    k.klen = klen;
    k.hash = hash;
    cl.k = &k;
    cl.m = 1;
    cl.load1 = load;
    cl.ud = ud;
    run(&cl);
    sc_status st = k.st;
    int stale = 0;
    uint64_t past = 0;
    if (st != SC_OK && st != SC_NOT_FOUND &&
        (st == SC_ERR_LOADER || st == SC_ERR_REMOTE || st == SC_ERR_TIMEOUT || st == SC_ERR_LOCKED)) {
        sc_value *g = NULL;
        if (serve_graced(&cl, &k, st, &g, &past)) {
            sc_value_release(k.val);
            k.val = g;
            k.st = st = SC_OK;
            k.outcome = SC__LOAD_MISS;
            stale = 1;
            sc__atomic_inc(&c->stale_served);
        } else if (cl.hard && sc__fetch_mono_ms() >= cl.t0_ns / 1000000u + cl.hard &&
                   (st == SC_ERR_LOCKED || st == SC_ERR_TIMEOUT)) {
            st = SC_ERR_TIMEOUT;
            cl.fail = SC_OK;
            sc__fetch_call_fail(&cl, SC_ERR_TIMEOUT,
                                "%s: no answer for \"%.*s\" within the hard timeout (%u ms)%s", name,
                                (int)(klen > 64 ? 64 : klen), key, cl.hard,
                                cl.left_running ? "; the loader still runs and stores its result when it returns" : "");
        }
    }
    count(&cl);
    call_free_slots(&cl);
    free(tags);
    if (st == SC_OK || st == SC_NOT_FOUND) {
        *out = k.val;
        if (info) {
            info->source = stale || k.outcome == SC__LOAD_HIT ? SC_SOURCE_LOCAL : SC_SOURCE_REMOTE;
            info->stale = stale;
            info->sync_age_ms = stale ? past : 0;
        }
        return st;
    }
    sc_value_release(k.val);
    return sc__fail(c, cl.fail != SC_OK ? cl.fail : st, "%s", cl.err[0] ? cl.err : sc_strerror(st));
}

SC_EXPORT sc_status sc_fetch_ex(sc_cache *c, const char *key, const sc_fetch_opts *o, sc_load_fn load, void *ud,
                                sc_value **out, sc_get_info *info)
{
    return fetch_ex_as(c, key, o, load, ud, out, info, "sc_fetch_ex");
}

SC_EXPORT sc_status sc_fetch(sc_cache *c, const char *key, uint64_t ttl_ms, sc_load_fn load, void *ud,
                             sc_value **out)
{
    sc_fetch_opts o;
    sc_fetch_opts_init(&o);
    o.ttl_ms = ttl_ms;
    return fetch_ex_as(c, key, &o, load, ud, out, NULL, "sc_fetch");
}

/* A sc_fetch_batch call on one (unpartitioned) cache: its unique keys
 * (idx[i]: the unique key of keys[i], numbered in order of first
 * appearance) and its call. ks and idx share one allocation. */
typedef struct batch {
    call cl;
    fkey *ks;
    size_t *idx;
    size_t n;
} batch;

/* Each key is checked as it is measured for its hash (an unrouted batch is
 * measured once; a routed one's keys were checked before routing too). */
static sc_status batch_open(sc_cache *c, const char *const *keys, size_t n, uint64_t ttl_ms, sc_load_batch_fn load,
                            void *ud, batch *b)
{
    b->ks = NULL; /* not open (sc__fetch_batch_split closes only what opened) */
    /* Unique keys (an open-addressing map over the input), so a duplicate
     * is loaded once and both slots get the value. One allocation holds
     * the keys' state, idx and the map (the map is not needed after). */
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    fkey *ks = calloc(1, n * sizeof *ks + (n + cap) * sizeof(size_t));
    if (!ks)
        return sc__fail(c, SC_ERR_NOMEM, "sc_fetch_batch: out of memory");
    size_t *idx = (size_t *)(ks + n), *map = idx + n;
    for (size_t i = 0; i < cap; i++)
        map[i] = SIZE_MAX;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t kl = 0;
        sc_status s = check_key(c, keys[i], &kl, "sc_fetch_batch");
        if (s != SC_OK) {
            free(ks);
            return s;
        }
        uint64_t h = sc__local_hash(keys[i], kl);
        size_t p = (size_t)(h & (cap - 1));
        while (map[p] != SIZE_MAX && !(ks[map[p]].hash == h && ks[map[p]].klen == kl &&
                                       memcmp(ks[map[p]].key, keys[i], kl) == 0))
            p = (p + 1) & (cap - 1);
        if (map[p] == SIZE_MAX) {
            map[p] = m;
            ks[m].key = keys[i];
            ks[m].klen = kl;
            ks[m].hash = h;
            m++;
        }
        idx[i] = map[p];
    }
    call_init(&b->cl, c, "sc_fetch_batch", ttl_ms);
    b->cl.k = ks;
    b->cl.m = m;
    b->cl.loadn = load;
    b->cl.ud = ud;
    b->ks = ks;
    b->idx = idx;
    b->n = n;
    return SC_OK;
}

/* Counts the outcomes of a call that ran, hands its answers out (on
 * success) and frees it: the call's status. A key's first slot in out gets
 * the call's reference, a duplicate's a new one. */
static sc_status batch_close(batch *b, sc_value **out, int ran)
{
    call *cl = &b->cl;
    if (ran)
        count(cl);
    call_free_slots(cl);
    sc_status res = ran ? cl->fail : SC_ERR_INVALID;
    for (size_t i = 0; i < cl->m && res == SC_OK; i++)
        if (b->ks[i].st != SC_OK && b->ks[i].st != SC_NOT_FOUND)
            res = b->ks[i].st;
    if (res == SC_OK) {
        size_t first = 0; /* the next unique key not yet handed out */
        for (size_t i = 0; i < b->n; i++) {
            sc_value *v = b->ks[b->idx[i]].val;
            if (b->idx[i] == first)
                first++;
            else if (v)
                v = sc__value_ref(v);
            out[i] = v;
        }
    } else {
        for (size_t i = 0; i < cl->m; i++)
            sc_value_release(b->ks[i].val);
    }
    free(b->ks);
    b->ks = NULL;
    if (ran && res != SC_OK)
        return sc__fail(cl->c, res, "%s", cl->err[0] ? cl->err : sc_strerror(res));
    return res;
}

SC_EXPORT sc_status sc_fetch_batch(sc_cache *c, const char *const *keys, size_t n, uint64_t ttl_ms,
                                   sc_load_batch_fn load, void *ud, sc_value **out)
{
    /* Over the limit, only the first SC_FETCH_BATCH_MAX slots: a count
     * that large may not be the size of out (as sc_get_many). */
    if (out)
        memset(out, 0, (n < SC_FETCH_BATCH_MAX ? n : SC_FETCH_BATCH_MAX) * sizeof *out);
    sc_status s = check_call(c, load != NULL, "sc_fetch_batch");
    if (s == SC_OK)
        s = sc__check_ttl(c, ttl_ms, "sc_fetch_batch");
    if (s != SC_OK)
        return s;
    if (n > SC_FETCH_BATCH_MAX)
        return sc__fail(c, SC_ERR_INVALID, "sc_fetch_batch: %zu keys, more than SC_FETCH_BATCH_MAX (%d)", n,
                        SC_FETCH_BATCH_MAX);
    if (n == 0)
        return SC_OK;
    if (!keys || !out)
        return sc__fail(c, SC_ERR_INVALID, "sc_fetch_batch: keys or out is NULL");
    if (c->part) {
        for (size_t i = 0; i < n; i++) {
            size_t kl;
            if ((s = check_key(c, keys[i], &kl, "sc_fetch_batch")) != SC_OK)
                return s;
        }
        return sc__parts_fetch_batch(c, keys, n, ttl_ms, load, ud, out);
    }
    batch b;
    if ((s = batch_open(c, keys, n, ttl_ms, load, ud, &b)) != SC_OK)
        return s;
    call *cl = &b.cl;
    run_all(&cl, 1);
    return batch_close(&b, out, 1);
}

sc_status sc__fetch_batch_split(sc_cache *const *part, unsigned nparts, const char *const *keys, const size_t *start,
                                uint64_t ttl_ms, sc_load_batch_fn load, void *ud, sc_value **out, unsigned *at)
{
    batch *b = calloc(nparts, sizeof *b);
    call **cls = calloc(nparts, sizeof *cls);
    *at = 0;
    if (!b || !cls) {
        free(b);
        free(cls);
        return sc__fail(part[0], SC_ERR_NOMEM, "sc_fetch_batch: out of memory");
    }
    sc_status s = SC_OK;
    size_t nc = 0;
    for (unsigned p = 0; p < nparts && s == SC_OK; p++) {
        size_t m = start[p + 1] - start[p];
        if (!m)
            continue;
        s = batch_open(part[p], keys + start[p], m, ttl_ms, load, ud, &b[p]);
        if (s != SC_OK)
            *at = p;
        else
            cls[nc++] = &b[p].cl;
    }
    if (s == SC_OK)
        run_all(cls, nc);
    /* Every call closes (frees what it holds); the first failure is the one
     * reported. */
    sc_status res = s;
    char first[SC__ERRLEN] = "";
    for (unsigned p = 0; p < nparts; p++) {
        if (!b[p].ks)
            continue;
        sc_status r = batch_close(&b[p], out + start[p], s == SC_OK);
        if (r != SC_OK && res == SC_OK) {
            res = r;
            *at = p;
            snprintf(first, sizeof first, "%s", sc_errmsg(part[p]));
        }
    }
    if (res != SC_OK && s == SC_OK)
        sc__fail(part[*at], res, "%s", first);
    free(b);
    free(cls);
    return res;
}

SC_EXPORT sc_status sc_tag_deleted(sc_cache *c, const char *key)
{
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "sc_tag_deleted: cache is NULL");
    c = sc__route(c, key);
    size_t klen = 0;
    sc_status s = check_key(c, key, &klen, "sc_tag_deleted");
    if (s != SC_OK)
        return s;
    if (!writes_redis(c))
        return sc__fail(c, SC_ERR_INVALID, "sc_tag_deleted: this pod does not write Redis");
    uint64_t hash = sc__local_hash(key, klen);
    uint64_t one_manual[SC__LOAD_OUTCOMES] = {[SC__LOAD_MANUAL] = 1};
    sc__load_stats_add(c->fetch->stats, one_manual, 0); /* no hit or miss: no clock read */
    /* Stop serving the key at once; the floor follows with the version. */
    sc__local_remove(c->local, key, klen, hash, UINT64_MAX, 0);
    sc__remote_event ev;
    char evbuf[SC__EVENT_SCRATCH];
    s = sc__own_event(c, SC__ACT_INVALIDATE, key, klen, NULL, 0, 0, evbuf, sizeof evbuf, &ev);
    if (s != SC_OK)
        return sc__fail(c, s, "sc_tag_deleted: cannot encode the event: %s", sc_strerror(s));
    sc__remote_result res;
    char err[SC__ERRLEN];
    s = sc__remote_tag(c->remote, key, klen, c->opt.tag_delete_delay_ms, c->opt.tombstone_ttl_ms, &ev, &res, err,
                       sizeof err);
    sc__own_event_free(&ev, evbuf);
    if (s != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        return sc__fail(c, s, "sc_tag_deleted: %s", err);
    }
    sc__wrote(c, &res, "sc_tag_deleted");
    sc__local_remove(c->local, key, klen, hash, res.version, res.version);
    sc__fetch_event(c, key, klen);
    return SC_OK;
}

SC_EXPORT void sc_load_stats_get(sc_cache *c, sc_window w, sc_load_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (c && c->part)
        sc__load_stats_read(c->part_stats, w, out);
    else if (c && c->fetch)
        sc__load_stats_read(c->fetch->stats, w, out);
}
