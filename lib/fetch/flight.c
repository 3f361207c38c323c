/* The in-pod side of single loads: the flight table (one leader per key,
 * followers take its result) and the waking of fetches that wait for
 * another pod's load (sc__fetch_event, the wait for a wake). The design
 * is the header comment of lib/fetch/fetch.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fetch/fetch.h"

/* ------------------------------------------------------------ waking -- */

void sc__fetch_event(sc_cache *c, const char *key, size_t klen)
{
    sc__fetch *f = c->fetch;
    if (!f || atomic_load(&f->waiters) == 0)
        return;
    pthread_mutex_lock(&f->wake_mu);
    if (klen == 0) {
        for (unsigned i = 0; i < WAKE_BUCKETS; i++)
            f->gens[i]++;
    } else {
        f->gens[sc__local_hash(key, klen) % WAKE_BUCKETS]++;
    }
    pthread_cond_broadcast(&f->wake_cv);
    pthread_mutex_unlock(&f->wake_mu);
}

/* ---- the flight table ---- */

static flight **bucket_of(sc__fetch *f, uint64_t hash)
{
    return &f->flights[hash % FLIGHT_BUCKETS];
}

static void flight_unref(sc__fetch *f, flight *fl)
{
    (void)f;
    if (--fl->refs == 0) {
        sc_value_release(fl->val);
        free(fl);
    }
}

/* Makes every pending key a leader or a follower. A key whose flight this
 * very thread leads (a loader fetching the key it is loading) fails. */
void sc__fetch_join_flights(call *cl)
{
    sc__fetch *f = cl->c->fetch;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < cl->m; i++) {
        fkey *k = &cl->k[i];
        if (k->state != K_PENDING)
            continue;
        flight **b = bucket_of(f, k->hash);
        flight *fl = *b;
        while (fl && !(fl->hash == k->hash && fl->klen == k->klen && memcmp(fl->key, k->key, k->klen) == 0))
            fl = fl->next;
        if ((fl && pthread_equal(fl->leader, self)) || sc__fetch_bg_loading(cl->c, k->key, k->klen)) {
            sc__fetch_key_done(k, SC_ERR_INVALID, NULL);
            sc__fetch_call_fail(cl, SC_ERR_INVALID,
                                "%s: key \"%.*s\" is being loaded by this thread (a loader fetched its own key)",
                                cl->name, (int)(k->klen > 64 ? 64 : k->klen), k->key);
            continue;
        }
        if (fl) {
            fl->refs++;
            k->fl = fl;
            k->joined_at = fl->rt;
            k->state = K_FOLLOW;
            continue;
        }
        fl = calloc(1, sizeof *fl + k->klen);
        if (!fl) {
            sc__fetch_key_done(k, SC_ERR_NOMEM, NULL);
            sc__fetch_call_fail(cl, SC_ERR_NOMEM, "%s: out of memory", cl->name);
            continue;
        }
        fl->hash = k->hash;
        fl->klen = k->klen;
        memcpy(fl->key, k->key, k->klen);
        fl->leader = self;
        fl->refs = 1;
        fl->next = *b;
        *b = fl;
        k->fl = fl;
        k->state = K_LEAD;
    }
    pthread_mutex_unlock(&f->mu);
}

/* Counts a round trip for every led key still without a result (see
 * result_rt: a settled key's count must stay at the round trip its result
 * came from, or a strong follower that joined later would take it). */
void sc__fetch_bump_rt(call *cl)
{
    sc__fetch *f = cl->c->fetch;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < cl->m; i++)
        if (cl->k[i].active && cl->k[i].state != K_DONE && cl->k[i].fl)
            cl->k[i].fl->rt++;
    pthread_mutex_unlock(&f->mu);
}

/* The leader publishes its results and leaves the table. */
void sc__fetch_finish_flights(call *cl)
{
    sc__fetch *f = cl->c->fetch;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < cl->m; i++) {
        fkey *k = &cl->k[i];
        if (k->state != K_DONE || !k->fl || !pthread_equal(k->fl->leader, pthread_self()) || k->fl->done)
            continue;
        flight *fl = k->fl;
        for (flight **p = bucket_of(f, fl->hash); *p; p = &(*p)->next) {
            if (*p == fl) {
                *p = fl->next;
                break;
            }
        }
        fl->done = 1;
        fl->result_rt = fl->rt;
        fl->st = k->st;
        fl->val = k->val ? sc__value_ref(k->val) : NULL;
        fl->outcome = k->outcome;
        fl->redo = k->fenced || k->deadline_hit || cl->left_running;
        fl->ungraced = k->redis_ungraced;
        if (k->st != SC_OK && k->st != SC_NOT_FOUND)
            snprintf(fl->err, sizeof fl->err, "%s", cl->err);
        k->fl = NULL;
        flight_unref(f, fl);
    }
    pthread_cond_broadcast(&f->done_cv);
    pthread_mutex_unlock(&f->mu);
}

/* Followers take their flights' results. Returns how many keys must start
 * over (strong: the result predates the follower). */
size_t sc__fetch_follow_flights(call *cl)
{
    sc__fetch *f = cl->c->fetch;
    size_t redo = 0;
    struct timespec dl;
    sc__fetch_abs_deadline(&dl, cl->deadline_ms);
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < cl->m; i++) {
        fkey *k = &cl->k[i];
        if (k->state != K_FOLLOW)
            continue;
        flight *fl = k->fl;
        int rc = 0;
        while (!fl->done && rc == 0)
            rc = pthread_cond_timedwait(&f->done_cv, &f->mu, &dl);
        if (!fl->done && cl->deadline_ms < cl->deadline_unsoft) {
            /* The soft timeout passed: it applies only while the call still
             * has a graced value to answer (a write, delete, tag or flush
             * that reached the pod meanwhile retires it); else the call
             * waits on as without one. */
            pthread_mutex_unlock(&f->mu);
            int answerable = sc__fetch_graced_answerable(cl, k);
            pthread_mutex_lock(&f->mu);
            if (!answerable) {
                cl->deadline_ms = cl->deadline_unsoft;
                sc__fetch_abs_deadline(&dl, cl->deadline_ms);
                rc = 0;
                while (!fl->done && rc == 0)
                    rc = pthread_cond_timedwait(&f->done_cv, &f->mu, &dl);
            }
        }
        k->fl = NULL;
        if (!fl->done) {
            k->waited = 1;
            sc__fetch_key_done(k, SC_ERR_LOCKED, NULL);
            sc__fetch_call_fail(cl, SC_ERR_LOCKED,
                                "%s: another fetch of this pod was still loading \"%.*s\" after the wait", cl->name,
                                (int)(k->klen > 64 ? 64 : k->klen), k->key);
        } else if ((cl->c->opt.consistency == SC_STRONG && fl->result_rt <= k->joined_at) || fl->redo) {
            /* (a fenced load's value is its own caller's only: a follower
             * may have begun after the write that fenced it; a leader's
             * timeout or deadline is its own call's, not the follower's,
             * which starts over under its own) */
            k->state = K_PENDING;
            redo++;
        } else {
            k->waited = fl->outcome == SC__LOAD_MISS;
            k->redis_ungraced = fl->ungraced;
            sc__fetch_key_done(k, fl->st, fl->val ? sc__value_ref(fl->val) : NULL);
            if (fl->st != SC_OK && fl->st != SC_NOT_FOUND)
                sc__fetch_call_fail(cl, fl->st, "%s", fl->err);
        }
        flight_unref(f, fl);
    }
    pthread_mutex_unlock(&f->mu);
    return redo;
}

/* Waits until an event touches one of the waiting keys' buckets (against
 * the generations snapped before the round trip) or ms passed. */
int sc__fetch_wait_wake(sc__fetch *f, call *cl, const uint64_t *snap, uint64_t ms)
{
    int moved = 0;
    uint64_t until = sc__fetch_mono_ms() + ms;
    if (until > cl->deadline_ms)
        until = cl->deadline_ms;
    struct timespec dl;
    sc__fetch_abs_deadline(&dl, until);
    pthread_mutex_lock(&f->wake_mu);
    for (;;) {
        for (size_t i = 0; i < cl->m && !moved; i++)
            if (cl->k[i].active && cl->k[i].read == SC__FETCH_WAIT && f->gens[cl->k[i].hash % WAKE_BUCKETS] != snap[i])
                moved = 1;
        if (moved || pthread_cond_timedwait(&f->wake_cv, &f->wake_mu, &dl) != 0)
            break;
    }
    pthread_mutex_unlock(&f->wake_mu);
    return moved;
}
