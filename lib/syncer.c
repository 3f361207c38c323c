/* The synchronizer's brain: what the pod does with each message on the
 * channel, on (re)subscription, on loss and on every tick. All of it runs on
 * the loop thread (the subscriber's callbacks), so the sequence state needs
 * no lock; only `synced`, `proof_ms`, `verified` and the counters are shared.
 * The rules are those of docs/protocol.md:
 *
 *  - events of other namespaces are counted and ignored; the pod's own
 *    events (its instance id) never install anything but still remove older
 *    copies, so an own write whose reply was lost cannot leave one behind;
 *  - no sequence number from the channel is believed on its own: only an
 *    event signed by a script (the namespace's secret, checked with no round
 *    trip) may carry one, anything else with a version is forged (dropped,
 *    changes nothing); a gap is still checked against Redis' counter before
 *    the pod replays or flushes; two different events for one version flush
 *    the tier;
 *  - a gap, and every resubscription, is closed from the event log in Redis
 *    (the log's copies, not the channel's); when the log cannot cover it, or
 *    Redis' history is no longer the one the pod followed (new epoch, counter
 *    behind, a different event at the pod's last sequence), the pod flushes
 *    with a floor at the counter it resynchronised at, so no Redis read that
 *    was in flight before can install an older value afterwards.
 * Every install, whatever its path, goes through the local tier's version
 * floors (local/local.h); this file decides only which floor each event
 * raises.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"

static void publish_seq(sc_cache *c)
{
    atomic_store_explicit(&c->last_seq, c->seq.last_seq, memory_order_relaxed);
}

static void flush_local(sc_cache *c, uint64_t floor, const char *why)
{
    size_t n = sc__local_clear(c->local, floor);
    sc__atomic_inc(&c->flushes);
    sc__log(c, SC_LOG_WARN, "pod %s: local tier flushed (%zu entries): %s", c->opt.pod_id, n, why);
}

/* Marks the pod unsynced and applies the disconnect policy. Loop thread
 * only (it resets the heartbeat state). */
static void syncer_lost(sc_cache *c, const char *why)
{
    int was = atomic_exchange(&c->synced, 0);
    c->hb_sent_ms = 0;
    if (was)
        sc__log(c, SC_LOG_WARN, "pod %s: event stream lost: %s", c->opt.pod_id, why);
    if (was && c->opt.disconnect_policy == SC_DISCONNECT_FLUSH)
        flush_local(c, 0, "disconnect policy flush");
}

static void drop_stream(sc_cache *c, const char *why)
{
    syncer_lost(c, why);
    sc__sub_reconnect(c->sub, why);
}

/* Applies one event to the local tier and tells the event hook. own: this
 * process sent it. Returns 1 if the local tier changed. */
static int apply_event(sc_cache *c, const sc__event *ev, int replayed, int own)
{
    uint64_t hash = ev->key_len ? sc__local_hash(ev->key, ev->key_len) : 0;
    int external = ev->version == 0;
    /* An outside publisher's event has no version: it is ordered after
     * everything the pod has applied so far, and after every read and own
     * write in flight (sc__tracking_outside). */
    uint64_t floor = external ? c->seq.last_seq : ev->version;
    uint64_t below = external ? UINT64_MAX : ev->version;
    sc_value *v = NULL;
    int changed = 0;
    switch (ev->action) {
    case SC__ACT_SET:
        if (!own && !external) {
            uint64_t left, since_ms = sc__now_ms();
            if (!sc__ttl_left(c, ev->ttl_ms, ev->time_ms, &left)) {
                /* Expired in Redis already (a late or replayed event). */
                changed = sc__local_remove(c->local, ev->key, ev->key_len, hash, ev->version + 1, floor);
                break;
            }
            v = sc__value_new_keyed(ev->key, ev->key_len, ev->value, ev->value_len, ev->version);
            /* The on_set_local hook picks what is stored (NULL: nothing,
             * which is then a refused install); v stays the value as
             * carried, for the event hook. */
            sc_value *keep = NULL;
            sc_status s = v ? sc__transform(c, ev->key, ev->key_len, v, &keep) : SC_ERR_NOMEM;
            /* What is left counts from here, not from after the hook. */
            if (s == SC_OK)
                s = keep && sc__ttl_since(left, since_ms, &left)
                        ? sc__local_put(c->local, ev->key, ev->key_len, hash, keep, left, ev->version, 0)
                        : SC_NOT_FOUND;
            sc_value_release(keep);
            if (s == SC_OK) {
                changed = 1;
                break;
            }
            if (s == SC_ERR_CONFLICT)
                sc__atomic_inc(&c->events_stale);
            /* Not installed (the key holds this or a newer version, a floor
             * is above it, too big, no memory): no older copy may stay. */
            changed = sc__local_remove(c->local, ev->key, ev->key_len, hash, ev->version, floor);
            break;
        }
        /* An own set is already in the local tier (or deliberately not);
         * an outside set cannot be ordered: both only remove. */
        /* fall through */
    case SC__ACT_INVALIDATE:
    case SC__ACT_DELETE:
        changed = external ? sc__tracking_outside(c, ev->key, ev->key_len, hash) > 0
                           : sc__local_remove(c->local, ev->key, ev->key_len, hash, below, floor);
        if (changed)
            sc__atomic_inc(&c->invalidations);
        break;
    case SC__ACT_CLEAR:
        changed = (external ? sc__tracking_outside(c, NULL, 0, 0) : sc__local_clear(c->local, floor)) > 0;
        /* A clear starts a new epoch (remote/lua/clear.lua): follow it. */
        if (!external && ev->epoch_len == sizeof c->seq.epoch - 1)
            memcpy(c->seq.epoch, ev->epoch, sizeof c->seq.epoch);
        break;
    case SC__ACT_HEARTBEAT:
        break;
    case SC__ACT_TAG: {
        /* Every key this pod indexed under the tag below the version goes
         * (own events too: sc_invalidate_tag already did, it is idempotent). */
        size_t n = sc__tags_event(c, ev->key, ev->key_len, external ? 0 : ev->version, floor);
        changed = n > 0;
        for (size_t i = 0; i < n; i++)
            sc__atomic_inc(&c->invalidations);
        break;
    }
    }
    sc__tracking_event(c, ev, hash, replayed);
    sc__fetch_event(c, ev->key, ev->key_len); /* wakes fetches waiting for this key's load */
    if (own) {
        sc__atomic_inc(&c->events_ignored_self);
        sc_value_release(v);
        return changed;
    }
    if (!external && ev->time_ms && ev->action != SC__ACT_HEARTBEAT)
        sc__metrics_propagated(c, ev->time_ms);
    if (changed)
        sc__atomic_inc(&c->events_applied);
    if (c->opt.on_event) {
        sc_event_info info = {
            .action = sc__action_name(ev->action),
            .key = ev->key,
            .sender = ev->sender,
            .version = ev->version,
            .publish_time_ms = ev->time_ms,
            .value = v,
            .applied = changed,
            .replayed = replayed,
        };
        c->opt.on_event(&info, c->opt.on_event_ud);
    }
    sc_value_release(v);
    return changed;
}

/* Reads the log's event at seq (the one the pod's history now ends with)
 * and starts over there: a flush with a floor at seq, so nothing read from
 * Redis before this moment installs. */
static void restart_at(sc_cache *c, const sc__remote_state *st, const char *why)
{
    flush_local(c, st->counter, why);
    /* Versions above the counter belonged to the history that was lost. */
    atomic_store_explicit(&c->verified, st->counter, memory_order_release);
    uint64_t digest = 0;
    sc__remote_state top;
    char err[SC__ERRLEN];
    if (sc__remote_sync_state(c->remote, st->counter, &top, err, sizeof err) == SC_OK) {
        if (top.event_at && top.counter == st->counter)
            digest = sc__seq_digest(top.event_at, top.event_at_len);
        free(top.event_at);
    }
    sc__seq_reset(&c->seq, st->counter, digest, st->epoch);
    publish_seq(c);
}

/* A namespace state read from Redis: remember the counter and the clock;
 * a new epoch means a new history. Returns 1 when the pod restarted. */
static int state_seen(sc_cache *c, const sc__remote_state *st)
{
    if (st->secret[0])
        memcpy(c->secret, st->secret, sizeof c->secret);
    sc__verified(c, st->counter);
    sc__redis_clock_seen(c, st->time_ms);
    if (c->seq.epoch[0] && strcmp(c->seq.epoch, st->epoch) != 0) {
        sc__atomic_inc(&c->epoch_changes);
        restart_at(c, st, "the namespace epoch changed (Redis lost or rewrote its history, or a clear)");
        return 1;
    }
    return 0;
}

typedef enum belief { BELIEVED, FORGED, RESTARTED, UNKNOWN } belief;

/* Whether Redis' counter has reached version (docs/protocol.md, rule 3). */
static belief believe(sc_cache *c, uint64_t version)
{
    if (version <= atomic_load_explicit(&c->verified, memory_order_acquire))
        return BELIEVED;
    sc__remote_state st;
    char err[SC__ERRLEN];
    if (sc__remote_sync_state(c->remote, c->seq.last_seq, &st, err, sizeof err) != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        sc__log(c, SC_LOG_WARN, "pod %s: cannot check a sequence number with Redis: %s", c->opt.pod_id, err);
        return UNKNOWN;
    }
    free(st.event_at);
    if (state_seen(c, &st))
        return RESTARTED;
    return version <= st.counter ? BELIEVED : FORGED;
}

static void forged(sc_cache *c, const sc__event *ev, const char *what)
{
    sc__atomic_inc(&c->events_forged);
    sc__log(c, SC_LOG_WARN, "pod %s: dropped a forged %s (%s, version %llu, sender \"%s\")", c->opt.pod_id,
            sc__action_name(ev->action), what, (unsigned long long)ev->version, ev->sender);
}

typedef struct replay {
    sc_cache *c;
    uint64_t expect;
    int broken;
} replay;

static int replay_one(uint64_t seq, const char *data, size_t len, void *ud)
{
    replay *r = ud;
    sc_cache *c = r->c;
    sc__event ev;
    if (seq != r->expect || sc__event_decode(data, len, c->opt.max_event_bytes, &ev) != SC_OK) {
        r->broken = 1;
        return 1;
    }
    apply_event(c, &ev, 1, sc__seq_own(&c->seq, &ev));
    sc__event_free(&ev);
    sc__atomic_inc(&c->events_replayed);
    sc__seq_record(&c->seq, seq, sc__seq_digest(data, len));
    sc__remote_saw(c->remote, seq);
    r->expect = seq + 1;
    return 0;
}

/* Brings the pod from last_seq up to `upto` from the event log, or flushes
 * when the log cannot. Returns 0, or -1 when Redis could not be read (the
 * caller drops the stream; the next subscription retries). */
static int catch_up(sc_cache *c, uint64_t upto)
{
    if (upto <= c->seq.last_seq)
        return 0;
    replay r = {c, c->seq.last_seq + 1, 0};
    char err[SC__ERRLEN];
    sc_status s = sc__remote_log_range(c->remote, c->seq.last_seq, upto, replay_one, &r, err, sizeof err);
    publish_seq(c);
    if (s != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        sc__log(c, SC_LOG_WARN, "pod %s: catch-up read failed: %s", c->opt.pod_id, err);
        return -1;
    }
    /* With tracking, what the replay installed may have been overwritten
     * by another client since its (long gone) invalidation. */
    if (sc__tracking_replayed(c) < 0)
        return -1;
    if (r.broken || r.expect != upto + 1) {
        flush_local(c, upto, "the event log does not cover the missed events");
        sc__seq_reset(&c->seq, upto, 0, NULL);
        publish_seq(c);
    } else {
        sc__log(c, SC_LOG_INFO, "pod %s: caught up to %llu from the event log", c->opt.pod_id,
                (unsigned long long)upto);
    }
    return 0;
}

/* A version ahead of the pod (a gap, or a heartbeat): believed, then closed
 * from the log. Returns 0, or -1 when the stream must be dropped. */
static int close_gap(sc_cache *c, const sc__event *ev)
{
    switch (believe(c, ev->version)) {
    case FORGED:
        forged(c, ev, "its sequence number is ahead of Redis");
        return 0;
    case RESTARTED:
        return 0;
    case UNKNOWN:
        return -1;
    case BELIEVED:
        break;
    }
    sc__atomic_inc(&c->gaps);
    sc__log(c, SC_LOG_WARN, "pod %s: events up to %llu announced, applied only %llu", c->opt.pod_id,
            (unsigned long long)ev->version, (unsigned long long)c->seq.last_seq);
    return catch_up(c, ev->version);
}

static void on_heartbeat(sc_cache *c, const sc__event *ev)
{
    if (sc__seq_own(&c->seq, ev) && c->hb_sent_ms) {
        /* Our own heartbeat is back: everything published before we sent it
         * has been delivered and applied. */
        atomic_store_explicit(&c->proof_ms, c->hb_sent_ms, memory_order_relaxed);
        c->hb_sent_ms = 0;
    }
    if (ev->epoch_len && c->seq.epoch[0] && strcmp(ev->epoch, c->seq.epoch) != 0) {
        /* Either Redis started a new history or someone is lying: ask. */
        sc__remote_state st;
        char err[SC__ERRLEN];
        if (sc__remote_sync_state(c->remote, c->seq.last_seq, &st, err, sizeof err) != SC_OK) {
            sc__atomic_inc(&c->remote_errors);
            drop_stream(c, err);
            return;
        }
        free(st.event_at);
        if (!state_seen(c, &st))
            forged(c, ev, "its epoch is not the namespace's");
        return;
    }
    if (ev->version > c->seq.last_seq && c->seq.last_seq && close_gap(c, ev) < 0)
        drop_stream(c, "catch-up failed");
}

static void handle_event(sc_cache *c, const sc__event *ev, uint64_t digest)
{
    int own = sc__seq_own(&c->seq, ev);
    if (!own && sc__seq_same_pod_id(&c->seq, ev)) {
        sc__atomic_inc(&c->duplicate_pod_ids);
        if (!atomic_exchange(&c->dup_warned, 1))
            sc__log(c, SC_LOG_WARN,
                    "pod %s: another process publishes with this pod id (instance %s); pod ids should be "
                    "unique, but events are told apart by instance id",
                    c->opt.pod_id, ev->inst);
    }
    switch (sc__seq_classify(&c->seq, ev->version)) {
    case SC__EXTERNAL:
        apply_event(c, ev, 0, own);
        return;
    case SC__STALE:
        if (sc__seq_conflict(&c->seq, ev->version, digest)) {
            /* Two different events claim one version: one was forged, and
             * the pod cannot tell which keys the other touched. */
            forged(c, ev, "another event already holds its sequence number");
            flush_local(c, c->seq.last_seq, "two different events claimed one sequence number");
        } else {
            sc__atomic_inc(&c->events_stale);
        }
        return;
    case SC__GAP:
        if (close_gap(c, ev) < 0) {
            drop_stream(c, "catch-up failed");
            return;
        }
        /* The log's copy of this event was applied (or the pod flushed);
         * a channel copy that differs from it was forged. */
        if (c->seq.last_seq >= ev->version && sc__seq_conflict(&c->seq, ev->version, digest))
            forged(c, ev, "it differs from the log's event of that sequence number");
        return;
    case SC__NEXT:
        break;
    }
    /* The next number, signed by a script (on_message checked the code):
     * applied with no round trip. */
    apply_event(c, ev, 0, own);
    sc__seq_record(&c->seq, ev->version, digest);
    sc__remote_saw(c->remote, ev->version);
}

static void on_message(const char *data, size_t len, void *ud)
{
    sc_cache *c = ud;
    sc__event ev;
    sc_status s = sc__event_decode(data, len, c->opt.max_event_bytes, &ev);
    if (s != SC_OK) {
        sc__atomic_inc(&c->events_received);
        sc__atomic_inc(&c->events_malformed);
        sc__log(c, SC_LOG_WARN, "pod %s: dropped a %s event of %zu bytes", c->opt.pod_id,
                s == SC_ERR_TOO_LARGE ? "too large" : "malformed", len);
        return;
    }
    /* Only the namespace's scripts can sign (docs/protocol.md rule 3): an
     * unsigned event may remove (an outside publisher's invalidate), but a
     * sequence number or an epoch on it is not believed. */
    int signed_ok = sc__event_authentic(data, len, c->secret);
    if (sc__seq_foreign(&c->seq, &ev)) {
        sc__atomic_inc(&c->events_foreign);
    } else if (!signed_ok && (ev.version || ev.action == SC__ACT_HEARTBEAT)) {
        if (ev.action != SC__ACT_HEARTBEAT)
            sc__atomic_inc(&c->events_received);
        forged(c, &ev, "it carries a sequence number but no valid signature");
    } else if (ev.action == SC__ACT_HEARTBEAT) {
        on_heartbeat(c, &ev);
    } else {
        sc__atomic_inc(&c->events_received);
        handle_event(c, &ev, sc__seq_digest(data, len));
    }
    publish_seq(c);
    sc__event_free(&ev);
}

/* Why the pod's history cannot continue from Redis' (NULL: it can). seen:
 * the highest version the pod knew real before it read st (its own
 * acknowledged writes included). */
static const char *diverged(const sc_cache *c, const sc__remote_state *st, uint64_t seen)
{
    if (strcmp(st->epoch, c->seq.epoch) != 0)
        return "the namespace epoch changed (Redis lost or rewrote its history, or a clear)";
    if (st->counter < c->seq.last_seq)
        return "the namespace counter went back (Redis lost writes)";
    /* An own write whose event never came back (a promoted replica that
     * lacks it, and the subscription was gone before the event): only the
     * version the write returned shows that Redis had been further. */
    if (st->counter < seen)
        return "the namespace counter is behind a version this pod saw acknowledged (Redis lost writes)";
    if (c->seq.last_digest && st->event_at &&
        sc__seq_digest(st->event_at, st->event_at_len) != c->seq.last_digest)
        return "the log holds another event at the pod's last sequence (Redis was rolled back)";
    if (c->seq.last_digest && !st->event_at && st->counter > c->seq.last_seq)
        return "the log no longer holds the pod's last event";
    return NULL;
}

static void on_subscribed(void *ud)
{
    sc_cache *c = ud;
    sc__remote_state st;
    char err[SC__ERRLEN];
    /* Read before the counter: a write acknowledged later may be above it. */
    uint64_t seen = atomic_load_explicit(&c->verified, memory_order_acquire);
    sc_status s = sc__remote_sync_state(c->remote, c->ever_synced ? c->seq.last_seq : 0, &st, err, sizeof err);
    if (s != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        drop_stream(c, err);
        return;
    }
    sc__verified(c, st.counter);
    sc__redis_clock_seen(c, st.time_ms);
    if (st.secret[0])
        memcpy(c->secret, st.secret, sizeof c->secret);
    if (!c->ever_synced) {
        sc__seq_reset(&c->seq, st.counter, st.event_at ? sc__seq_digest(st.event_at, st.event_at_len) : 0,
                      st.epoch);
    } else {
        const char *why = diverged(c, &st, seen);
        if (why) {
            if (strcmp(st.epoch, c->seq.epoch) != 0)
                sc__atomic_inc(&c->epoch_changes);
            restart_at(c, &st, why);
        } else if (c->opt.disconnect_policy == SC_DISCONNECT_FLUSH) {
            /* Flushed when the stream was lost; the floor stops a Redis read
             * that began before the loss from installing now. The event at
             * the old last sequence is the new one when nothing happened. */
            uint64_t digest = st.counter == c->seq.last_seq && st.event_at
                                  ? sc__seq_digest(st.event_at, st.event_at_len)
                                  : 0;
            sc__local_clear(c->local, st.counter);
            sc__seq_reset(&c->seq, st.counter, digest, st.epoch);
            /* The graced copies outlive the flush: with tracking they are
             * confirmed (writes by other clients while nothing listened). */
            if (sc__tracking_resynced(c) < 0) {
                free(st.event_at);
                drop_stream(c, "confirming the graced copies failed");
                return;
            }
        } else if (sc__tracking_resynced(c) < 0 || catch_up(c, st.counter) < 0) {
            /* With tracking, writes by other clients while nothing listened
             * are unknown: every local copy is confirmed with Redis first
             * (the catch-up confirms what it replays). */
            free(st.event_at);
            drop_stream(c, "catch-up failed");
            return;
        }
    }
    free(st.event_at);
    publish_seq(c);
    if (c->ever_synced)
        sc__atomic_inc(&c->reconnects);
    c->ever_synced = 1;
    c->hb_sent_ms = 0;
    c->hb_next_ms = 0;
    atomic_store_explicit(&c->proof_ms, sc__now_ms(), memory_order_relaxed);
    atomic_store_explicit(&c->synced, 1, memory_order_release);
    sc__log(c, SC_LOG_INFO, "pod %s: synced at sequence %llu", c->opt.pod_id, (unsigned long long)st.counter);

    pthread_mutex_lock(&c->open_mu);
    c->open_state = 1;
    pthread_cond_broadcast(&c->open_cv);
    pthread_mutex_unlock(&c->open_mu);
}

static void on_lost(const char *why, void *ud)
{
    sc_cache *c = ud;
    sc__tracking_state(c, 0, NULL);
    syncer_lost(c, why);
    /* Until the first sync, sc_open waits: tell it why, and give up at once
     * when Redis refused (a permission is missing, or a key of the
     * namespace holds another type; retrying cannot help). */
    pthread_mutex_lock(&c->open_mu);
    if (c->open_state == 0) {
        snprintf(c->open_why, sizeof c->open_why, "%s", why);
        if (strstr(why, "NOPERM") || strstr(why, "no permissions") || strstr(why, "WRONGTYPE")) {
            c->open_state = -1;
            pthread_cond_broadcast(&c->open_cv);
        }
    }
    pthread_mutex_unlock(&c->open_mu);
}

static void on_tick(void *ud)
{
    sc_cache *c = ud;
    if (!atomic_load(&c->synced) || !c->opt.heartbeat_interval_ms)
        return;
    uint64_t now = sc__now_ms();
    const char *why = sc__tracking_tick(c, now);
    if (why) {
        drop_stream(c, why);
        return;
    }
    if (c->hb_sent_ms) {
        if (now - c->hb_sent_ms > c->opt.heartbeat_timeout_ms) {
            sc__atomic_inc(&c->heartbeat_misses);
            drop_stream(c, "own heartbeat did not come back in time");
        }
        return;
    }
    if (now < c->hb_next_ms)
        return;
    char err[SC__ERRLEN];
    sc__remote_state st;
    const char *canary = sc__tracking_canary(c);
    /* Twice the timeout, saturated: the timeout has no upper bound, and a
     * wrapped product (0 at 2^31) is a TTL Redis refuses. */
    unsigned canary_ttl = c->opt.heartbeat_timeout_ms > UINT_MAX / 2 ? UINT_MAX : c->opt.heartbeat_timeout_ms * 2u;
    /* Read before the counter: a write acknowledged later may be above it. */
    uint64_t seen = atomic_load_explicit(&c->verified, memory_order_acquire);
    if (sc__remote_heartbeat(c->remote, &c->hb_event, canary, canary_ttl, &st, err, sizeof err) != SC_OK) {
        sc__atomic_inc(&c->heartbeat_misses);
        sc__atomic_inc(&c->remote_errors);
        drop_stream(c, err);
        return;
    }
    /* The proof a returning heartbeat gives dates from before it was sent. */
    c->hb_sent_ms = now;
    c->hb_next_ms = now + c->opt.heartbeat_interval_ms;
    if (canary && !c->canary_sent_ms)
        c->canary_sent_ms = now; /* the oldest canary still out counts */
    if (!state_seen(c, &st) && (st.counter < c->seq.last_seq || st.counter < seen))
        /* Redis went back under a live subscription, its epoch unchanged
         * (a snapshot reloaded with DEBUG RELOAD, keys restored): the
         * counter is behind what this pod applied or saw. The
         * resubscription's sync (rule 5) moves it past them with a new
         * epoch and flushes, before a write hands those versions out
         * again (ABA). */
        drop_stream(c, "the namespace counter went back under the subscription (Redis lost writes)");
}

static void on_invalidate(const char *const *keys, const size_t *lens, size_t n, int all, void *ud)
{
    sc_cache *c = ud;
    if (sc__tracking_invalidate(c, keys, lens, n, all))
        sc__sub_defer(c->sub);
}

static void on_deferred(void *ud)
{
    sc__tracking_flush(ud);
}

static void on_tracking(int active, const char *why, void *ud)
{
    sc__tracking_state(ud, active, why);
}

void sc__syncer_callbacks(sc_cache *c, sc__sub_callbacks *cb)
{
    cb->on_invalidate = on_invalidate;
    cb->on_tracking = on_tracking;
    cb->on_deferred = on_deferred;
    cb->on_message = on_message;
    cb->on_subscribed = on_subscribed;
    cb->on_lost = on_lost;
    cb->on_tick = on_tick;
    cb->ud = c;
}
