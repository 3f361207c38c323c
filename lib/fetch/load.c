/* Calling the loader and keeping its result: installs into the local tier
 * (docs/protocol.md rule 6), the single and batch loaders, loads left
 * running past a timeout (sc_fetch_ex), settling and the fetch_store round
 * trip, and the loader's slot (sc_loaded_set, sc_loaded_error). The design
 * is the header comment of lib/fetch/fetch.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lib/fetch/fetch.h"

/* A per-thread xorshift for TTL jitter, seeded from the kernel. */
static uint64_t rnd64(void)
{
    static _Thread_local uint64_t x;
    if (!x) {
        if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x)
            x = sc__mono_ns() ^ (uint64_t)(uintptr_t)&x;
        x |= 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* ttl shortened by a random 0..pct %. */
static uint64_t jitter(uint64_t ttl, unsigned pct)
{
    if (!ttl || !pct)
        return ttl;
    uint64_t span = ttl / 100 * pct + ttl % 100 * pct / 100;
    uint64_t cut = span ? rnd64() % (span + 1) : 0;
    return ttl - cut > 0 ? ttl - cut : 1;
}

void sc__fetch_bg_unref_locked(bg_share *b)
{
    /* Called with b->mu held; frees b (and unlocks) on the last reference. */
    if (--b->refs == 0) {
        pthread_mutex_unlock(&b->mu);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
        return;
    }
    pthread_mutex_unlock(&b->mu);
}

/* ---- installs (docs/protocol.md rule 6) ---- */

/* Both installs pass the on_set_local hook first, as every value from
 * outside the calling thread's own write does (a loaded value included), and
 * return what the caller gets: what the local tier stores, as a later hit
 * would return it (or the value as it came when the hook keeps nothing).
 * They take v. */
static sc_value *transformed(sc_cache *c, fkey *k, sc_value *v, sc_value **keep)
{
    if (sc__transform(c, k->key, k->klen, v, keep) != SC_OK)
        *keep = NULL;
    return *keep;
}

static sc_value *handed_out(sc_value *v, sc_value *keep)
{
    if (!keep)
        return v;
    sc_value_release(v);
    return keep;
}

sc_value *sc__fetch_hooked(sc_cache *c, fkey *k, sc_value *v)
{
    sc_value *keep;
    return handed_out(v, transformed(c, k, v, &keep));
}

/* A value fetch_lock read, known current up to `known`. */
sc_value *sc__fetch_install_read(sc_cache *c, fkey *k, sc_value *v, int64_t pttl, uint64_t since_ms, uint64_t known)
{
    sc_value *keep;
    int ok = transformed(c, k, v, &keep) && pttl != 0 && sc__fetch_synced(c) &&
             sc__tracking_put(c, k->key, k->klen, k->hash, keep, pttl > 0 ? (uint64_t)pttl : 0, since_ms, known,
                              k->mark) == SC_OK;
    if (!ok)
        sc__local_remove(c->local, k->key, k->klen, k->hash, sc_value_version(v), sc_value_version(v));
    return handed_out(v, keep);
}

/* A value this pod stored with version `version` (its own write). */
static sc_value *install_stored(sc_cache *c, fkey *k, sc_value *v, uint64_t ttl, uint64_t since_ms, uint64_t version)
{
    sc_value *keep;
    if (!transformed(c, k, v, &keep) || !sc__fetch_synced(c) ||
        sc__tracking_put_own(c, k->key, k->klen, k->hash, keep, ttl, since_ms) != SC_OK)
        sc__local_remove(c->local, k->key, k->klen, k->hash, version, version);
    return handed_out(v, keep);
}

/* ---- loading ---- */

static void slot_reset(sc_loaded *s, size_t max)
{
    free(s->data);
    memset(s, 0, sizeof *s);
    s->max = max;
}

/* Gives k an empty result slot for its loader: 0, or -1 out of memory. */
static int slot_open(fkey *k, size_t max)
{
    if (!k->slot && !(k->slot = calloc(1, sizeof *k->slot)))
        return -1;
    slot_reset(k->slot, max);
    return 0;
}

static void settle_begin(call *cl, fkey **ks, size_t n, sc_status ls);
static void store_one(call *cl);

/* A single loader's result as the rest of the call wants it. */
static sc_status load1_result(sc_cache *c, sc_loaded *slot, sc_status ls)
{
    if (!slot) /* none could be made: the loader did not run */
        return SC_ERR_NOMEM;
    if (ls == SC_NOT_FOUND) /* whatever it set: "not found" is the answer */
        slot_reset(slot, c->opt.max_value_bytes);
    if (ls == SC_OK && !slot->set && !slot->refused_len && !slot->null_len && !slot->nomem) {
        ls = SC_ERR_LOADER;
        snprintf(slot->msg, sizeof slot->msg, "the loader returned SC_OK without sc_loaded_set");
    }
    return ls;
}

/* ---- loads left running past a timeout (sc_fetch_ex) ---- */

typedef struct bg_job {
    bg_share *sh;
    int refs;            /* the thread, and the caller until it stops waiting */
    int done;            /* the loader returned */
    int abandoned;       /* the caller left: the thread stores */
    sc_status ls;
    sc_loaded slot;
    sc_load_fn load;
    void *ud;
    char token[48];
    uint64_t ttl, grace;
    char *tags;
    size_t tags_len;
    size_t klen;
    uint64_t hash;
    char key[];
} bg_job;

static void job_unref_locked(bg_job *j)
{
    if (--j->refs == 0) {
        free(j->slot.data);
        free(j->tags);
        free(j);
    }
}

/* Stores the result of a load its caller left (on the job's thread). */
static void bg_store(sc_cache *c, bg_job *j)
{
    call cl;
    memset(&cl, 0, sizeof cl);
    cl.c = c;
    cl.name = "sc_fetch_ex (load left running)";
    cl.ttl = j->ttl;
    cl.grace = j->grace;
    cl.tags = j->tags;
    cl.tags_len = j->tags_len;
    cl.t0_ns = sc__mono_ns();
    cl.deadline_ms = cl.t0_ns / 1000000u + (uint64_t)c->opt.redis_timeout_ms;
    fkey k;
    memset(&k, 0, sizeof k);
    k.key = j->key;
    k.klen = j->klen;
    k.hash = j->hash;
    k.state = K_LEAD;
    k.active = 1;
    sc_loaded slot = j->slot;
    memset(&j->slot, 0, sizeof j->slot);
    k.slot = &slot;
    fkey *ks[1] = {&k};
    snprintf(cl.token, sizeof cl.token, "%s", j->token);
    settle_begin(&cl, ks, 1, load1_result(c, &slot, j->ls));
    store_one(&cl);
    if (cl.fail != SC_OK)
        sc__log(c, SC_LOG_WARN, "%s", cl.err);
    sc_value_release(k.val);
    free(slot.data);
}

/* The load a bg thread runs (for sc__fetch_bg_loading): set around its
 * loader call only. */
static _Thread_local const bg_job *bg_loading;

int sc__fetch_bg_loading(const sc_cache *c, const char *key, size_t klen)
{
    const bg_job *j = bg_loading;
    return j && j->sh->c == c && j->klen == klen && memcmp(j->key, key, klen) == 0;
}

static void *bg_main(void *arg)
{
    bg_job *j = arg;
    bg_loading = j;
    sc_status ls = j->load(j->key, &j->slot, j->ud);
    bg_loading = NULL;
    bg_share *b = j->sh;
    pthread_mutex_lock(&b->mu);
    j->done = 1;
    j->ls = ls;
    pthread_cond_broadcast(&b->cv);
    if (j->abandoned && !b->closing) {
        b->storing++;
        pthread_mutex_unlock(&b->mu);
        bg_store(b->c, j);
        pthread_mutex_lock(&b->mu);
        b->storing--;
        pthread_cond_broadcast(&b->cv);
    }
    job_unref_locked(j);
    sc__fetch_bg_unref_locked(b);
    return NULL;
}

/* Runs the single loader of k on a thread of its own and waits for it until
 * the call's limit: the soft timeout when a graced value is at hand, else
 * the hard timeout. 0: the loader returned (*ls, k->slot filled); 1: it is
 * still running and will store its result itself (the lock goes with it). */
static int load_timed(call *cl, fkey *k, const char *token, sc_status *ls)
{
    sc_cache *c = cl->c;
    uint64_t t0 = cl->t0_ns / 1000000u, limit = UINT64_MAX, past;
    sc_value *g = NULL;
    if (cl->hard)
        limit = t0 + cl->hard;
    uint64_t now = sc__now_ms();
    /* (a graced value this call may answer: within its grace and the call's) */
    if (cl->soft && cl->grace &&
        ((k->graced && now < k->graced_until && now < k->graced_fresh_end + cl->grace) ||
         (!k->redis_ungraced && sc__fetch_grace_get(c, k->key, k->klen, k->hash, cl->grace, &g, &past))))
        limit = t0 + cl->soft < limit ? t0 + cl->soft : limit;
    sc_value_release(g);
    bg_share *b = c->fetch->bg;
    bg_job *j = limit == UINT64_MAX || !b ? NULL : calloc(1, sizeof *j + k->klen + 1);
    if (j && cl->tags_len && !(j->tags = malloc(cl->tags_len))) {
        free(j);
        j = NULL;
    }
    if (!j) {
        *ls = cl->load1(k->key, k->slot, cl->ud);
        return 0;
    }
    j->sh = b;
    j->refs = 2;
    j->load = cl->load1;
    j->ud = cl->ud;
    snprintf(j->token, sizeof j->token, "%s", token);
    j->ttl = cl->ttl;
    j->grace = cl->grace;
    if (cl->tags_len)
        memcpy(j->tags, cl->tags, cl->tags_len);
    j->tags_len = cl->tags_len;
    j->klen = k->klen;
    j->hash = k->hash;
    memcpy(j->key, k->key, k->klen);
    j->slot.max = c->opt.max_value_bytes;
    pthread_mutex_lock(&b->mu);
    b->refs++;
    pthread_mutex_unlock(&b->mu);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &at, bg_main, j);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        pthread_mutex_lock(&b->mu);
        b->refs--;
        pthread_mutex_unlock(&b->mu);
        free(j->tags);
        free(j);
        *ls = cl->load1(k->key, k->slot, cl->ud);
        return 0;
    }
    uint64_t hard_limit = cl->hard ? t0 + cl->hard : UINT64_MAX;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        struct timespec dl;
        sc__fetch_abs_deadline(&dl, limit);
        while (!j->done && pthread_cond_timedwait(&b->cv, &b->mu, &dl) == 0)
            ;
        if (j->done || limit >= hard_limit)
            break;
        /* The soft timeout passed: it applies only while the call still has
         * a graced value to answer (a write, delete, tag or flush that
         * reached the pod meanwhile retires it); else the call waits on as
         * without one, up to the hard timeout. */
        pthread_mutex_unlock(&b->mu);
        int answerable = sc__fetch_graced_answerable(cl, k);
        pthread_mutex_lock(&b->mu);
        if (answerable)
            break;
        limit = hard_limit;
    }
    int left = !j->done;
    if (left) {
        j->abandoned = 1;
    } else {
        *ls = j->ls;
        free(k->slot->data);
        *k->slot = j->slot;
        memset(&j->slot, 0, sizeof j->slot);
    }
    job_unref_locked(j);
    pthread_mutex_unlock(&b->mu);
    return left;
}

/* Loads the locked key of a single-key call (cl->tl[0], under cl->token)
 * and settles it up to its store. */
void sc__fetch_load_one(call *cl)
{
    sc_cache *c = cl->c;
    fkey *k = cl->tl[0];
    sc_status ls;
    if (slot_open(k, c->opt.max_value_bytes) != 0) {
        ls = SC_ERR_NOMEM;
        sc__fetch_call_fail(cl, ls, "%s: out of memory for the loader's result (the loader did not run)", cl->name);
    } else if (cl->soft || cl->hard) {
        if (load_timed(cl, k, cl->token, &ls)) {
            /* The loader goes on; its thread stores the result (or
             * releases the lock) when it returns. */
            cl->left_running = 1;
            sc__fetch_key_gave_up(cl, k, SC_ERR_TIMEOUT, "the loader of ", " still runs after ",
                                  " ms (its result is stored when it returns)");
            return;
        }
    } else {
        ls = cl->load1(k->key, k->slot, cl->ud);
    }
    settle_begin(cl, cl->tl, 1, load1_result(c, k->slot, ls));
}

/* One call of the batch loader for the keys every call locked (each one's
 * tl), then each call settles its own keys up to their store. */
void sc__fetch_load_batch(call **cls, size_t n)
{
    size_t total = 0;
    int slots_made = 1;
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < cls[j]->ntl; i++, total++)
            if (slot_open(cls[j]->tl[i], cls[j]->c->opt.max_value_bytes) != 0)
                slots_made = 0;
    if (!total)
        return;
    const char **keys = malloc(total * sizeof *keys);
    sc_loaded **slots = malloc(total * sizeof *slots);
    sc_status ls = SC_ERR_NOMEM;
    if (keys && slots && slots_made) {
        size_t at = 0;
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < cls[j]->ntl; i++, at++) {
                keys[at] = cls[j]->tl[i]->key;
                slots[at] = cls[j]->tl[i]->slot;
            }
        ls = cls[0]->loadn(keys, total, (sc_loaded *const *)slots, cls[0]->ud);
    } else {
        for (size_t j = 0; j < n; j++)
            sc__fetch_call_fail(cls[j], ls, "%s: out of memory for the loader's results (the loader did not run)",
                                cls[j]->name);
    }
    free(keys);
    free(slots);
    if (ls != SC_OK && ls != SC_NOT_FOUND && n > 1 && slots_made) {
        /* The loader's message (sc_loaded_error) may sit on a slot of any
         * call (partition); each call reports the failure with a message
         * found among its own slots, so the first one goes to every call
         * whose slots hold none. */
        const char *msg = NULL;
        for (size_t j = 0; j < n && !msg; j++)
            for (size_t i = 0; i < cls[j]->ntl && !msg; i++)
                if (cls[j]->tl[i]->slot->msg[0])
                    msg = cls[j]->tl[i]->slot->msg;
        for (size_t j = 0; msg && j < n; j++) {
            int has = 0;
            for (size_t i = 0; i < cls[j]->ntl && !has; i++)
                has = cls[j]->tl[i]->slot->msg[0] != '\0';
            if (!has && cls[j]->ntl)
                snprintf(cls[j]->tl[0]->slot->msg, sizeof cls[j]->tl[0]->slot->msg, "%s", msg);
        }
    }
    for (size_t j = 0; j < n; j++)
        if (cls[j]->ntl)
            settle_begin(cls[j], cls[j]->tl, cls[j]->ntl, ls);
}

/* The loader returned ls for the n keys of ks (slots filled): releases
 * the locks of what it did not find (or of everything, on a failure),
 * settles those keys, and leaves what goes to Redis under cl->token in
 * cl->st_items for the store (settle_end after it). */
static void settle_begin(call *cl, fkey **ks, size_t n, sc_status ls)
{
    const char *token = cl->token;
    sc_cache *c = cl->c;
    sc_status fail = SC_OK;
    if (ls != SC_OK && ls != SC_NOT_FOUND) {
        fail = SC_ERR_LOADER;
        const char *msg = "";
        for (size_t i = 0; i < n && !*msg; i++)
            msg = ks[i]->slot ? ks[i]->slot->msg : "";
        sc__fetch_call_fail(cl, fail, "%s: the loader failed for \"%.*s\"%s (%s)%s%s", cl->name,
                            (int)(ks[0]->klen > 64 ? 64 : ks[0]->klen), ks[0]->key, n > 1 ? " and others" : "",
                            sc_strerror(ls), *msg ? ": " : "", msg);
    }
    for (size_t i = 0; i < n && fail == SC_OK; i++) {
        if (ks[i]->slot->null_len) {
            fail = SC_ERR_INVALID;
            sc__fetch_call_fail(cl, fail,
                                "%s: the loader's sc_loaded_set for \"%.*s\" passed a NULL value with length %zu",
                                cl->name, (int)(ks[i]->klen > 64 ? 64 : ks[i]->klen), ks[i]->key,
                                ks[i]->slot->null_len);
        } else if (ks[i]->slot->refused_len) {
            fail = SC_ERR_TOO_LARGE;
            sc__fetch_call_fail(cl, fail,
                                "%s: the loader's value for \"%.*s\" is %zu bytes, over max_value_bytes (%zu)",
                                cl->name, (int)(ks[i]->klen > 64 ? 64 : ks[i]->klen), ks[i]->key,
                                ks[i]->slot->refused_len, c->opt.max_value_bytes);
        } else if (ks[i]->slot->nomem) {
            fail = SC_ERR_NOMEM;
            sc__fetch_call_fail(cl, fail, "%s: out of memory copying a loaded value", cl->name);
        }
    }

    /* Keys whose lock goes back unused: all of them on failure, and the
     * not-found ones when empty markers are off. */
    const char **rel = malloc(n * sizeof *rel);
    size_t *rell = malloc(n * sizeof *rell);
    sc__store_item *items = calloc(n, sizeof *items);
    fkey **sk = malloc(n * sizeof *sk);
    if (!rel || !rell || !items || !sk) {
        free(rel);
        free(rell);
        free(items);
        free(sk);
        for (size_t i = 0; i < n; i++)
            sc__fetch_key_fail(cl, ks[i], SC_ERR_NOMEM);
        return;
    }
    size_t nrel = 0, nst = 0;
    for (size_t i = 0; i < n; i++) {
        fkey *k = ks[i];
        if (fail != SC_OK || (!k->slot->set && !c->opt.empty_ttl_ms)) {
            rel[nrel] = k->key;
            rell[nrel++] = k->klen;
            continue;
        }
        sc__store_item *it = &items[nst];
        it->key = k->key;
        it->klen = k->klen;
        sc_status es;
        if (k->slot->set) {
            it->val = k->slot->data;
            it->len = k->slot->len;
            it->ttl_ms = jitter(cl->ttl, c->opt.ttl_jitter_pct);
            it->grace_ms = it->ttl_ms ? cl->grace : 0;
            it->tags = cl->tags;
            it->tags_len = cl->tags_len;
            /* A tagged value is announced as an invalidate: pods learn its
             * tags from their Redis read (README, "Tags"). */
            int carry = it->len <= c->opt.event_value_max && !cl->tags_len;
            es = sc__own_event(c, carry ? SC__ACT_SET : SC__ACT_INVALIDATE, k->key, k->klen, it->val, it->len,
                               it->ttl_ms, NULL, 0, &it->ev);
        } else {
            it->empty = 1;
            it->ttl_ms = c->opt.empty_ttl_ms;
            /* Not stored with the marker, but fenced by them: a "not found"
             * read from the source before an invalidation of one of its
             * tags is as old as a value would be (fetch_store.lua). */
            it->tags = cl->tags;
            it->tags_len = cl->tags_len;
            es = sc__own_event(c, SC__ACT_INVALIDATE, k->key, k->klen, NULL, 0, 0, NULL, 0, &it->ev);
        }
        if (es != SC_OK) {
            fail = es;
            sc__fetch_call_fail(cl, es, "%s: cannot encode the event: %s", cl->name, sc_strerror(es));
            rel[nrel] = k->key;
            rell[nrel++] = k->klen;
            continue;
        }
        sk[nst++] = k;
    }
    char err[SC__ERRLEN] = "";
    if (fail != SC_OK) {
        /* Nothing is cached; every lock goes back at once so the next fetch
         * loads without waiting for a lapse. */
        for (size_t i = 0; i < nst; i++) {
            rel[nrel] = sk[i]->key;
            rell[nrel++] = sk[i]->klen;
        }
        nst = 0;
    }
    if (nrel && sc__remote_fetch_unlock(c->remote, rel, rell, nrel, token, err, sizeof err) != SC_OK)
        sc__atomic_inc(&c->remote_errors);
    if (fail != SC_OK) {
        for (size_t i = 0; i < n; i++) {
            ks[i]->waited = 1;
            if (ks[i]->state != K_DONE)
                sc__fetch_key_fail(cl, ks[i], fail);
        }
        for (size_t i = 0; i < n; i++)
            sc__own_event_free(&items[i].ev, NULL);
        free(rel);
        free(rell);
        free(items);
        free(sk);
        return;
    }
    /* Not-found keys with markers off: answered, nothing stored. */
    for (size_t i = 0; i < n; i++) {
        if (!ks[i]->slot->set && !c->opt.empty_ttl_ms) {
            ks[i]->waited = 1;
            sc__fetch_key_done(ks[i], SC_NOT_FOUND, NULL);
        }
    }
    free(rel);
    free(rell);
    cl->st_items = items;
    cl->st_keys = sk;
    cl->st_n = n;
    cl->st_nst = nst;
}

/* After the store of cl->st_items (s; err: its message): installs what was
 * stored, settles every key that went to Redis. */
static void settle_end(call *cl, sc_status s, const char *err)
{
    sc_cache *c = cl->c;
    sc__store_item *items = cl->st_items;
    fkey **sk = cl->st_keys;
    size_t nst = cl->st_nst, n = cl->st_n;
    if (!items)
        return;
    if (s != SC_OK && nst) {
        /* The store failed (refused, or its answer lost): the locks go back
         * at once, as after a failed loader. The token is still ours only
         * where nothing was stored, so a store that did happen is left as
         * it is. */
        const char **rel = malloc(nst * sizeof *rel);
        size_t *rell = malloc(nst * sizeof *rell);
        char uerr[SC__ERRLEN];
        if (rel && rell) {
            for (size_t i = 0; i < nst; i++) {
                rel[i] = sk[i]->key;
                rell[i] = sk[i]->klen;
            }
            if (sc__remote_fetch_unlock(c->remote, rel, rell, nst, cl->token, uerr, sizeof uerr) != SC_OK)
                sc__atomic_inc(&c->remote_errors);
        }
        free(rel);
        free(rell);
    }
    for (size_t i = 0; i < nst; i++) {
        fkey *k = sk[i];
        sc__store_item *it = &items[i];
        k->waited = 1;
        if (s != SC_OK) {
            sc__atomic_inc(&c->remote_errors);
            sc__fetch_key_done(k, s, NULL);
            sc__fetch_call_fail(cl, s, "%s: storing the loaded value: %s", cl->name, err);
            continue;
        }
        sc_value *v = it->empty ? NULL : sc__value_new_keyed(k->key, k->klen, it->val, it->len, it->res.version);
        if (!it->empty && !v) {
            sc__fetch_key_done(k, SC_ERR_NOMEM, NULL);
            sc__fetch_call_fail(cl, SC_ERR_NOMEM, "%s: out of memory", cl->name);
            continue;
        }
        if (!it->stored) {
            /* Fenced: a write, tag or clear revoked the lock while loading. */
            if (c->opt.consistency == SC_STRONG) {
                sc_value_release(v);
                k->active = 1; /* load again */
            } else {
                /* answered uncached, but as a stored load would be: through
                 * the on_set_local hook */
                if (v)
                    v = sc__fetch_hooked(c, k, v);
                sc__fetch_key_done(k, v ? SC_OK : SC_NOT_FOUND, v);
                k->fenced = 1;
            }
            continue;
        }
        sc__wrote(c, &it->res, cl->name);
        if (v) {
            v = install_stored(c, k, v, it->ttl_ms, cl->sent_ms, it->res.version);
            if (it->grace_ms)
                sc__fetch_grace_put(c, k->key, k->klen, k->hash, v, it->res.version, (int64_t)it->ttl_ms, 0,
                                    it->ttl_ms + it->grace_ms, cl->sent_ms);
            sc__tags_note(c, k->key, k->klen, k->hash, it->res.version, it->res.version, cl->tags, cl->tags_len);
        } else {
            sc__local_remove(c->local, k->key, k->klen, k->hash, it->res.version, it->res.version);
            sc__fetch_neg_put(c, k->key, k->klen, k->hash, it->res.version, it->res.version, it->ttl_ms);
        }
        sc__fetch_event(c, k->key, k->klen);
        sc__fetch_key_done(k, v ? SC_OK : SC_NOT_FOUND, v);
    }
    for (size_t i = 0; i < n; i++)
        sc__own_event_free(&items[i].ev, NULL);
    free(items);
    free(sk);
    cl->st_items = NULL;
    cl->st_keys = NULL;
    cl->st_n = cl->st_nst = 0;
}

/* The store of one call's loaded values on its own. */
static void store_one(call *cl)
{
    char err[SC__ERRLEN] = "";
    sc_status s = SC_OK;
    if (cl->st_nst) {
        sc__fetch_bump_rt(cl);
        cl->sent_ms = sc__now_ms();
        s = sc__remote_fetch_store(cl->c->remote, cl->st_items, cl->st_nst, cl->token, err, sizeof err);
    }
    settle_end(cl, s, err);
}

/* The stores of n calls: one pipelined exchange per node (one call: its
 * own store, as an unpartitioned cache makes it). */
void sc__fetch_store_all(call **cls, size_t n, sc__remote_fetch_call *rc, call **who)
{
    size_t nr = 0;
    for (size_t j = 0; j < n; j++)
        if (cls[j]->st_nst)
            who[nr++] = cls[j];
    if (nr <= 1) {
        for (size_t j = 0; j < n; j++)
            store_one(cls[j]);
        return;
    }
    for (size_t j = 0; j < nr; j++) {
        sc__fetch_bump_rt(who[j]);
        who[j]->sent_ms = sc__now_ms();
        rc[j] = (sc__remote_fetch_call){
            .r = who[j]->c->remote, .store = who[j]->st_items, .n = who[j]->st_nst, .token = who[j]->token};
    }
    sc__remote_fetch_pipelined(rc, nr);
    for (size_t j = 0; j < nr; j++)
        settle_end(who[j], rc[j].status, rc[j].err);
    for (size_t j = 0; j < n; j++)
        settle_end(cls[j], SC_OK, ""); /* the ones with nothing to store */
}

/* ------------------------------------------------------- the slot -- */

SC_EXPORT void sc_loaded_set(sc_loaded *slot, const void *val, size_t len)
{
    if (!slot)
        return;
    free(slot->data);
    slot->data = NULL;
    slot->len = 0;
    slot->set = 0;
    slot->refused_len = 0;
    slot->null_len = 0;
    slot->nomem = 0;
    if (!val && len) {
        slot->null_len = len;
        return;
    }
    if (len > slot->max) {
        slot->refused_len = len;
        return;
    }
    slot->data = malloc(len ? len : 1);
    if (!slot->data) {
        slot->nomem = 1;
        return;
    }
    if (len)
        memcpy(slot->data, val, len);
    slot->len = len;
    slot->set = 1;
}

SC_EXPORT void sc_loaded_error(sc_loaded *slot, const char *fmt, ...)
{
    if (!slot || !fmt)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot->msg, sizeof slot->msg, fmt, ap);
    va_end(ap);
}
