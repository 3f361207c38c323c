/* Write-behind: sc_set_behind / sc_delete_behind, the saver thread of a pod
 * with a save_fn, sc_flush_behind and the behind_* stats.
 *
 * The queue lives in Redis (remote/behind.c), never in a pod, so the only
 * state here is what one pod is doing with it. The saver thread loops:
 * take a batch (its own unacknowledged entries first after a failed save,
 * then entries other pods left idle for writeback_claim_ms, then new ones),
 * keep the newest write of each key, call save_fn, acknowledge on SC_OK.
 * Every failure (Redis or store) is followed by a backoff that doubles from
 * writeback_interval_ms up to BACKOFF_CAP_MS, and the entries stay in Redis:
 * nothing is dropped, only delayed.
 *
 * Closing: sc_close sets stop and waits. A thread that is between steps
 * exits at once; one inside a Redis call finishes it (bounded by
 * redis_timeout_ms); one inside save_fn is waited for up to
 * writeback_claim_ms, then abandoned: the state below is then owned by the
 * thread alone, which frees it when save_fn returns and never touches the
 * cache again. On its way out the thread hands back whatever it holds
 * unacknowledged, so another pod need not wait writeback_claim_ms for it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/internal.h"

#define BACKOFF_CAP_MS 30000u

typedef struct sc__behind {
    sc_cache *c;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* the thread waits on it; so does sc_close */
    int running;                /* a saver thread was started */
    int stop;                   /* sc_close: take no more batches */
    int kick;                   /* sc_flush_behind: take now */
    int in_save;                /* save_fn is running */
    int exited;                 /* the thread is done with the cache */
    int abandoned;              /* sc_close stopped waiting: the thread frees this */
    uint64_t stop_deadline;     /* monotonic ms: sc_close waits for save_fn until then */
    pthread_t thread;
    char consumer[300];         /* "<pod id>/<instance id>": unique per open */
    char cursor[64];            /* XAUTOCLAIM cursor */

    atomic_uint_fast64_t queued, saved, failures;
    atomic_uint_fast64_t pending, oldest_ms; /* gauges from the last state read */
    atomic_uint_fast64_t state_at;           /* monotonic ms of that read; 0: never */
} sc__behind;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timespec abs_time(uint64_t ms_from_now)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms_from_now / 1000);
    ts.tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

sc_status sc__behind_options_check(const sc_options *o, char *err, size_t errlen)
{
    const char *what = NULL;
    unsigned v = 0, max = 0;
    if (o->writeback_interval_ms < 1 || o->writeback_interval_ms > 3600000)
        what = "writeback_interval_ms", v = o->writeback_interval_ms, max = 3600000;
    else if (o->writeback_batch < 1 || o->writeback_batch > 10000)
        what = "writeback_batch", v = o->writeback_batch, max = 10000;
    else if (o->writeback_claim_ms < 1 || o->writeback_claim_ms > 86400000)
        what = "writeback_claim_ms", v = o->writeback_claim_ms, max = 86400000;
    if (!what)
        return SC_OK;
    snprintf(err, errlen, "option %s: %u is not in 1..%u", what, v, max);
    return SC_ERR_INVALID;
}

/* ---- the calls ---- */

SC_EXPORT sc_status sc_set_behind(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms)
{
    c = sc__route(c, key);
    sc_status s = sc__set_behind(c, key, val, len, ttl_ms);
    if (s == SC_OK)
        sc__atomic_inc(&c->behind->queued);
    return s;
}

SC_EXPORT sc_status sc_delete_behind(sc_cache *c, const char *key)
{
    c = sc__route(c, key);
    sc_status s = sc__delete_behind(c, key);
    if (s == SC_OK)
        sc__atomic_inc(&c->behind->queued);
    return s;
}

static void gauges(sc__behind *b, const sc__wb_state *st)
{
    uint64_t age = 0;
    if (st->has_oldest && st->now_ms > st->oldest.ms)
        age = st->now_ms - st->oldest.ms;
    atomic_store_explicit(&b->pending, st->unsaved, memory_order_relaxed);
    atomic_store_explicit(&b->oldest_ms, st->unsaved ? age : 0, memory_order_relaxed);
    atomic_store_explicit(&b->state_at, mono_ms(), memory_order_relaxed);
}

/* Every write queued up to target is saved: the group was delivered
 * everything up to it and holds no unacknowledged entry at or below it. */
static int flushed(const sc__wb_state *st, sc__wb_id target)
{
    return st->has_group && sc__wb_id_cmp(st->delivered, target) >= 0 &&
           (!st->has_pmin || sc__wb_id_cmp(st->pmin, target) > 0);
}

SC_EXPORT sc_status sc_flush_behind(sc_cache *c, unsigned timeout_ms)
{
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "sc_flush_behind: cache is NULL");
    if (c->part)
        return sc__parts_flush_behind(c, timeout_ms);
    sc__behind *b = c->behind;
    uint64_t deadline = mono_ms() + timeout_ms;
    char err[SC__ERRLEN];
    sc__wb_state st;
    sc_status s = sc__remote_wb_state(c->remote, &st, err, sizeof err);
    if (s != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        return sc__fail(c, s, "sc_flush_behind: %s", err);
    }
    gauges(b, &st);
    sc__wb_id target = st.last;
    if (target.ms == 0 && target.seq == 0)
        return SC_OK; /* nothing was ever queued */
    if (b->running) {
        pthread_mutex_lock(&b->mu);
        b->kick = 1;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
    }
    uint64_t step = 10;
    for (;;) {
        if (s == SC_OK && flushed(&st, target))
            return SC_OK;
        uint64_t now = mono_ms();
        if (now >= deadline)
            break;
        struct timespec ts = {0, (long)((step < deadline - now ? step : deadline - now) * 1000000u)};
        nanosleep(&ts, NULL);
        step = step * 2 > 100 ? 100 : step * 2;
        s = sc__remote_wb_state(c->remote, &st, err, sizeof err);
        if (s == SC_OK)
            gauges(b, &st);
        else
            sc__atomic_inc(&c->remote_errors);
    }
    if (s != SC_OK)
        return sc__fail(c, SC_ERR_TIMEOUT, "sc_flush_behind: not flushed within %u ms; the queue cannot be read: %s",
                        timeout_ms, err);
    return sc__fail(c, SC_ERR_TIMEOUT,
                    "sc_flush_behind: not flushed within %u ms: %" PRIu64 " writes unsaved, the oldest %" PRIu64
                    " ms old%s",
                    timeout_ms, st.unsaved, atomic_load(&b->oldest_ms),
                    st.has_group ? "" : " (no pod with a save_fn has read the queue yet)");
}

void sc__behind_stats(sc_cache *c, sc_stats *out)
{
    sc__behind *b = c->behind;
    if (!b)
        return;
    /* A pod without a saver refreshes the queue gauges itself, at most
     * every writeback_interval_ms, and only once it has queued something. */
    uint64_t at = atomic_load_explicit(&b->state_at, memory_order_relaxed);
    if (!b->running && atomic_load_explicit(&b->queued, memory_order_relaxed) &&
        (at == 0 || mono_ms() - at >= c->opt.writeback_interval_ms)) {
        sc__wb_state st;
        char err[SC__ERRLEN];
        if (sc__remote_wb_state(c->remote, &st, err, sizeof err) == SC_OK)
            gauges(b, &st);
        else
            sc__atomic_inc(&c->remote_errors);
    }
    out->behind_queued = atomic_load_explicit(&b->queued, memory_order_relaxed);
    out->behind_saved = atomic_load_explicit(&b->saved, memory_order_relaxed);
    out->behind_save_failures = atomic_load_explicit(&b->failures, memory_order_relaxed);
    out->behind_pending = atomic_load_explicit(&b->pending, memory_order_relaxed);
    out->behind_oldest_ms = atomic_load_explicit(&b->oldest_ms, memory_order_relaxed);
}

/* ---- the saver thread ---- */

/* Entries of one key next to each other, newest first. */
static int by_key_newest(const void *pa, const void *pb)
{
    const sc__wb_entry *a = *(const sc__wb_entry *const *)pa, *b = *(const sc__wb_entry *const *)pb;
    int k = strcmp(a->key, b->key);
    if (k)
        return k;
    return a->version > b->version ? -1 : a->version < b->version;
}

static int by_version(const void *pa, const void *pb)
{
    const sc_dirty *a = pa, *b = pb;
    return a->version < b->version ? -1 : a->version > b->version;
}

/* The newest write of each key in the batch, in version order, into
 * *items (malloc'd, caller frees). Returns the number of items, or -1 when
 * out of memory. */
static long coalesce(const sc__wb_batch *batch, sc_dirty **items)
{
    *items = NULL;
    const sc__wb_entry **v = malloc((batch->n ? batch->n : 1) * sizeof *v);
    sc_dirty *out = malloc((batch->n ? batch->n : 1) * sizeof *out);
    if (!v || !out) {
        free(v);
        free(out);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < batch->n; i++)
        if (batch->e[i].key)
            v[n++] = &batch->e[i];
    qsort(v, n, sizeof *v, by_key_newest);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i]->key, v[i - 1]->key) == 0)
            continue;
        out[m].key = v[i]->key;
        out[m].value = v[i]->value;
        out[m].len = v[i]->len;
        out[m].version = v[i]->version;
        m++;
    }
    qsort(out, m, sizeof *out, by_version);
    free(v);
    *items = out;
    return (long)m;
}

static void log_batch_trouble(sc_cache *c, const sc__wb_batch *batch)
{
    size_t bad = 0;
    for (size_t i = 0; i < batch->n; i++)
        bad += batch->e[i].key == NULL;
    if (bad)
        sc__log(c, SC_LOG_WARN,
                "pod %s: write-behind: %zu queue entries hold no write (trimmed, or not written by synccache); "
                "acknowledged without saving",
                c->opt.pod_id, bad);
}

/* What happened to a batch. */
enum { SAVED, FAILED, ABANDONED };

/* Coalesces and saves one batch. ABANDONED: sc_close gave up on this
 * thread during save_fn; the caller frees its batch and b and returns. */
static int save(sc__behind *b, const sc__wb_batch *batch, sc_save_fn fn, void *ud)
{
    sc_cache *c = b->c;
    sc_dirty *items;
    long n = coalesce(batch, &items);
    if (n < 0) {
        sc__log(c, SC_LOG_ERROR, "pod %s: write-behind: out of memory for a batch of %zu", c->opt.pod_id, batch->n);
        return FAILED;
    }
    if (n == 0) {
        log_batch_trouble(c, batch);
        free(items);
        return SAVED;
    }
    pthread_mutex_lock(&b->mu);
    b->in_save = 1;
    pthread_mutex_unlock(&b->mu);

    sc_status s = fn(items, (size_t)n, ud);

    pthread_mutex_lock(&b->mu);
    b->in_save = 0;
    int abandoned = b->abandoned;
    pthread_mutex_unlock(&b->mu);
    free(items);
    if (abandoned)
        return ABANDONED;
    if (s != SC_OK) {
        sc__atomic_inc(&b->failures);
        sc__log(c, SC_LOG_WARN, "pod %s: write-behind: save_fn failed (%s) for %ld writes; they stay queued",
                c->opt.pod_id, sc_strerror(s), n);
        return FAILED;
    }
    log_batch_trouble(c, batch);
    size_t writes = 0;
    for (size_t i = 0; i < batch->n; i++)
        writes += batch->e[i].key != NULL;
    atomic_fetch_add_explicit(&b->saved, writes, memory_order_relaxed);
    return SAVED;
}

static void destroy(sc__behind *b)
{
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

static int stopping(sc__behind *b)
{
    pthread_mutex_lock(&b->mu);
    int stop = b->stop;
    pthread_mutex_unlock(&b->mu);
    return stop;
}

/* Waits up to ms, or until stop or kick. Returns 1 when stopping. */
static int pause_for(sc__behind *b, uint64_t ms)
{
    struct timespec until = abs_time(ms);
    pthread_mutex_lock(&b->mu);
    int rc = 0;
    while (!b->stop && !b->kick && rc == 0)
        rc = pthread_cond_timedwait(&b->cv, &b->mu, &until);
    b->kick = 0;
    int stop = b->stop;
    pthread_mutex_unlock(&b->mu);
    return stop;
}

/* writeback_interval_ms doubled per failure in a row, at most
 * BACKOFF_CAP_MS (or the interval itself when that is longer). */
static uint64_t backoff_ms(const sc_cache *c, unsigned failures)
{
    uint64_t base = c->opt.writeback_interval_ms, ms = base;
    for (unsigned i = 1; i < failures && ms < BACKOFF_CAP_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_CAP_MS)
        ms = BACKOFF_CAP_MS;
    return ms > base ? ms : base;
}

/* A batch's bytes as wb_take.lua counts them against its bound: each
 * entry's id and fields (k, the key, v, the version, x, the value). */
static size_t batch_bytes(const sc__wb_batch *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        char v[24];
        n += strlen(b->e[i].idstr) + b->e[i].klen + b->e[i].len + 3 +
             (size_t)snprintf(v, sizeof v, "%" PRIu64, b->e[i].version);
    }
    return n;
}

static void *saver_main(void *arg)
{
    sc__behind *b = arg;
    sc_cache *c = b->c;
    sc_save_fn fn = c->opt.save_fn;
    void *ud = c->opt.save_ud;
    unsigned failures = 0; /* in a row, Redis or store */
    int mine = 0;          /* own unacknowledged entries may exist */
    char err[SC__ERRLEN];

    for (;;) {
        /* A kick that came during this cycle is left set: pause_for then
         * returns at once and the next cycle runs without waiting. */
        if (stopping(b))
            break;

        sc__wb_batch batch;
        uint64_t wait = c->opt.writeback_interval_ms;
        sc_status s = sc__remote_wb_take(c->remote, b->consumer, c->opt.writeback_batch, c->opt.writeback_claim_ms,
                                         mine, b->cursor, &batch, err, sizeof err);
        if (s != SC_OK) {
            /* A take whose answer was lost (a timeout) may have handed
             * entries to this consumer: the next take asks for them first
             * instead of leaving them until writeback_claim_ms. */
            mine = 1;
            sc__atomic_inc(&c->remote_errors);
            wait = backoff_ms(c, ++failures);
            sc__log(c, SC_LOG_WARN, "pod %s: write-behind: cannot read the queue (retry in %" PRIu64 " ms): %s",
                    c->opt.pod_id, wait, err);
        } else if (batch.n > 0) {
            int r = save(b, &batch, fn, ud);
            if (r == ABANDONED) {
                sc__wb_batch_free(&batch);
                destroy(b);
                return NULL;
            }
            if (r == SAVED && (s = sc__remote_wb_ack(c->remote, batch.e, batch.n, err, sizeof err)) != SC_OK) {
                /* Saved but not acknowledged: saved again later (by this pod,
                 * or by another after writeback_claim_ms). */
                sc__atomic_inc(&c->remote_errors);
                sc__log(c, SC_LOG_WARN, "pod %s: write-behind: saved %zu entries but cannot acknowledge them: %s",
                        c->opt.pod_id, batch.n, err);
            }
            if (r == SAVED && s == SC_OK) {
                failures = 0;
                mine = batch.source == SC__WB_MINE;
                if (batch.n >= c->opt.writeback_batch || batch_bytes(&batch) >= SC__WB_BATCH_BYTES)
                    wait = 0; /* full: more is likely waiting */
            } else {
                mine = 1;
                wait = backoff_ms(c, ++failures);
            }
        } else {
            failures = 0;
            mine = 0;
        }
        sc__wb_batch_free(&batch);

        /* The gauges, at most every interval (also while a backlog keeps
         * every batch full). */
        uint64_t at = atomic_load_explicit(&b->state_at, memory_order_relaxed);
        if ((at == 0 || mono_ms() - at >= c->opt.writeback_interval_ms) && !stopping(b)) {
            sc__wb_state st;
            if (sc__remote_wb_state(c->remote, &st, err, sizeof err) == SC_OK)
                gauges(b, &st);
        }
        if (wait > 0 && pause_for(b, wait))
            break;
    }

    uint64_t handed = 0;
    if (sc__remote_wb_release(c->remote, b->consumer, &handed, err, sizeof err) != SC_OK)
        sc__log(c, SC_LOG_WARN,
                "pod %s: write-behind: cannot hand back unsaved entries (another pod takes them after "
                "writeback_claim_ms): %s",
                c->opt.pod_id, err);
    else if (handed)
        sc__log(c, SC_LOG_INFO, "pod %s: write-behind: handed %" PRIu64 " unsaved entries back", c->opt.pod_id,
                handed);
    pthread_mutex_lock(&b->mu);
    b->exited = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

sc_status sc__behind_start(sc_cache *c, char *err, size_t errlen)
{
    sc__behind *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    b->c = c;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(b->consumer, sizeof b->consumer, "%s/%s", c->opt.pod_id, c->inst);
    snprintf(b->cursor, sizeof b->cursor, "0-0");
    c->behind = b;
    if (!c->opt.save_fn)
        return SC_OK;
    if (pthread_create(&b->thread, NULL, saver_main, b) != 0) {
        snprintf(err, errlen, "cannot start the saver thread");
        return SC_ERR_NOMEM;
    }
    pthread_setname_np(b->thread, "sc-behind");
    b->running = 1;
    return SC_OK;
}

/* Tells the saver to take no more batches; the wait for its save_fn
 * (writeback_claim_ms) counts from the first call. A partitioned pod calls
 * this on every partition before closing any, so their savers stop
 * together and sc_close keeps the one bound of the header. */
void sc__behind_stop_begin(sc_cache *c)
{
    sc__behind *b = c->behind;
    if (!b || !b->running)
        return;
    pthread_mutex_lock(&b->mu);
    if (!b->stop) {
        b->stop = 1;
        b->stop_deadline = mono_ms() + c->opt.writeback_claim_ms;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
}

void sc__behind_stop(sc_cache *c)
{
    sc__behind *b = c->behind;
    if (!b)
        return;
    if (!b->running) {
        c->behind = NULL;
        destroy(b);
        return;
    }
    sc__behind_stop_begin(c);
    c->behind = NULL;
    pthread_mutex_lock(&b->mu);
    uint64_t deadline = b->stop_deadline;
    while (!b->exited) {
        uint64_t now = mono_ms();
        if (now >= deadline && b->in_save) {
            /* save_fn outlived writeback_claim_ms: leave it running. The
             * thread sees this when it returns, frees b, and exits: b is
             * its own from the unlock on, so it is detached before. */
            b->abandoned = 1;
            pthread_detach(b->thread);
            pthread_mutex_unlock(&b->mu);
            sc__log(c, SC_LOG_WARN,
                    "pod %s: write-behind: sc_close stopped waiting for save_fn after writeback_claim_ms (%u ms); "
                    "its batch will be taken over by another pod",
                    c->opt.pod_id, c->opt.writeback_claim_ms);
            return;
        }
        /* Outside save_fn the thread is in a Redis call, bounded by
         * redis_timeout_ms, or about to exit: keep waiting (polling, since
         * entering save_fn signals nothing). */
        struct timespec t = abs_time(now >= deadline ? 5 : deadline - now);
        pthread_cond_timedwait(&b->cv, &b->mu, &t);
    }
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    destroy(b);
}
