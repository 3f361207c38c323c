/* The synchronizer's brain: what the pod does with each message on the
 * channel, on (re)subscription, on loss and on every tick. All of it runs on
 * the loop thread (the subscriber's callbacks), so the sequence state needs
 * no lock; only `synced`, `proof_ms` and the counters are shared.
 *
 * The namespace sequence makes loss visible: every write takes the next
 * number and events reach the channel in that order, so a pod that applied
 * everything up to N expects N + 1. A jump is a gap; a heartbeat carries the
 * sequence at the time it was sent, which exposes a gap even when nothing
 * follows the lost event. A gap, and every re-subscription, is closed from
 * the event log in Redis; when the log no longer covers it (trimmed, or Redis
 * restarted and lost it) the local tier is flushed instead. */
#include <string.h>

#include "lib/internal.h"

static void publish_seq(sc_cache *c)
{
    atomic_store_explicit(&c->last_seq, c->seq.last_seq, memory_order_relaxed);
}

static void flush_local(sc_cache *c, const char *why)
{
    size_t n = sc__local_clear(c->local, 0);
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
        flush_local(c, "disconnect policy flush");
}

/* Applies one decoded cache event to the local tier and tells the event
 * hook. Returns 1 if the local tier changed. */
static int apply_event(sc_cache *c, const sc__event *ev, int replayed)
{
    uint64_t hash = ev->key_len ? sc__local_hash(ev->key, ev->key_len) : 0;
    sc_value *v = NULL;
    int changed = 0;
    switch (ev->action) {
    case SC__ACT_SET:
        if (ev->version) {
            /* Touch the stripe first, so a Redis read racing this event
             * cannot install its (older) value afterwards. */
            /* The epoch is read before seen_hw: a Redis read that raises
             * seen_hw past this event and then removes older copies either
             * is seen here, or bumps the stripe and so refuses the put. */
            v = sc__value_new_keyed(ev->key, ev->key_len, ev->value, ev->value_len, ev->version);
            if (v && ev->version >= atomic_load_explicit(sc__seen_hw(c, hash), memory_order_acquire)) {
                sc_status s = sc__local_put(c->local, ev->key, ev->key_len, hash, v, ev->ttl_ms, ev->version, 0);
                if (s == SC_ERR_CONFLICT) {
                    sc__atomic_inc(&c->events_stale);
                } else {
                    /* Too big for the local bound: no copy rather than an
                     * old one. */
                    if (s != SC_OK)
                        sc__local_remove(c->local, ev->key, ev->key_len, hash, UINT64_MAX, ev->version);
                    changed = 1;
                }
                break;
            }
            /* This pod already served or wrote a newer version of some key
             * (possibly this one, since evicted): installing this older
             * value could move a caller's view backwards. Drop older
             * copies instead; the next get reads Redis. */
            changed = sc__local_remove(c->local, ev->key, ev->key_len, hash, ev->version, ev->version);
            break;
        }
        /* A set without a version comes from an outside publisher; with no
         * way to order it, the safe reading is "the key changed": drop the
         * copy and let the next get read Redis. */
        /* fall through */
    case SC__ACT_INVALIDATE:
    case SC__ACT_DELETE:
        changed = sc__local_remove(c->local, ev->key, ev->key_len, hash, ev->version ? ev->version : UINT64_MAX, ev->version);
        if (changed)
            sc__atomic_inc(&c->invalidations);
        break;
    case SC__ACT_CLEAR:
        changed = sc__local_clear(c->local, 0) > 0;
        break;
    case SC__ACT_HEARTBEAT:
        break;
    }
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

static int is_own(const sc_cache *c, const sc__event *ev)
{
    return ev->sender_len == strlen(c->opt.pod_id) && memcmp(ev->sender, c->opt.pod_id, ev->sender_len) == 0;
}

typedef struct replay {
    sc_cache *c;
    uint64_t expect;
    int broken;
} replay;

static int replay_one(uint64_t seq, const char *data, size_t len, void *ud)
{
    replay *r = ud;
    sc__event ev;
    if (seq != r->expect || sc__event_decode(data, len, r->c->opt.max_event_bytes, &ev) != SC_OK) {
        r->broken = 1;
        return 1;
    }
    /* Own writes were applied (or dropped) locally when they were made, as
     * on the live stream. */
    if (is_own(r->c, &ev))
        sc__atomic_inc(&r->c->events_ignored_self);
    else
        apply_event(r->c, &ev, 1);
    sc__event_free(&ev);
    sc__atomic_inc(&r->c->events_replayed);
    r->c->seq.last_seq = seq;
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
    if (s != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        sc__log(c, SC_LOG_WARN, "pod %s: catch-up read failed: %s", c->opt.pod_id, err);
        publish_seq(c);
        return -1;
    }
    if (r.broken || r.expect != upto + 1) {
        flush_local(c, "the event log does not cover the missed events");
        c->seq.last_seq = upto;
    } else {
        sc__log(c, SC_LOG_INFO, "pod %s: caught up to %llu from the event log", c->opt.pod_id,
                (unsigned long long)upto);
    }
    publish_seq(c);
    return 0;
}

static void drop_stream(sc_cache *c, const char *why)
{
    syncer_lost(c, why);
    sc__sub_reconnect(c->sub, why);
}

static void on_heartbeat(sc_cache *c, const sc__event *ev)
{
    if (is_own(c, ev) && c->hb_sent_ms) {
        /* Our own heartbeat is back: everything published before we sent it
         * has been delivered and applied. */
        atomic_store_explicit(&c->proof_ms, c->hb_sent_ms, memory_order_relaxed);
        c->hb_sent_ms = 0;
    }
    if (sc__seq_heartbeat_gap(&c->seq, ev->version)) {
        sc__atomic_inc(&c->gaps);
        sc__log(c, SC_LOG_WARN, "pod %s: heartbeat shows events up to %llu, applied only %llu", c->opt.pod_id,
                (unsigned long long)ev->version, (unsigned long long)c->seq.last_seq);
        if (catch_up(c, ev->version) < 0)
            drop_stream(c, "catch-up failed");
    }
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
    if (ev.action == SC__ACT_HEARTBEAT) {
        on_heartbeat(c, &ev);
        sc__event_free(&ev);
        return;
    }
    sc__atomic_inc(&c->events_received);
    switch (sc__seq_classify(&c->seq, &ev)) {
    case SC__EXTERNAL:
        apply_event(c, &ev, 0);
        break;
    case SC__SELF:
        sc__atomic_inc(&c->events_ignored_self);
        sc__seq_advance(&c->seq, ev.version);
        break;
    case SC__STALE:
        sc__atomic_inc(&c->events_stale);
        break;
    case SC__GAP:
        sc__atomic_inc(&c->gaps);
        sc__log(c, SC_LOG_WARN, "pod %s: gap before event %llu (applied up to %llu)", c->opt.pod_id,
                (unsigned long long)ev.version, (unsigned long long)c->seq.last_seq);
        if (catch_up(c, ev.version - 1) < 0) {
            drop_stream(c, "catch-up failed");
            break;
        }
        /* The missed events are in; this one is next (and may be ours). */
        if (sc__seq_classify(&c->seq, &ev) == SC__SELF)
            sc__atomic_inc(&c->events_ignored_self);
        else
            apply_event(c, &ev, 0);
        sc__seq_advance(&c->seq, ev.version);
        break;
    case SC__APPLY:
        apply_event(c, &ev, 0);
        sc__seq_advance(&c->seq, ev.version);
        break;
    }
    publish_seq(c);
    sc__event_free(&ev);
}

static void on_subscribed(void *ud)
{
    sc_cache *c = ud;
    uint64_t cur;
    char err[SC__ERRLEN];
    sc_status s = sc__remote_seq(c->remote, &cur, err, sizeof err);
    if (s != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        drop_stream(c, err);
        return;
    }
    if (!c->ever_synced || c->seq.last_seq == 0) {
        c->seq.last_seq = cur;
    } else if (cur < c->seq.last_seq) {
        /* The counter went back: Redis lost its data (a restart without
         * persistence). Nothing local can be trusted. */
        flush_local(c, "the namespace sequence went backwards (Redis lost its data)");
        c->seq.last_seq = cur;
    } else if (c->opt.disconnect_policy == SC_DISCONNECT_FLUSH) {
        /* Flushed when the stream was lost and nothing was installed since:
         * there is nothing to bring up to date. */
        c->seq.last_seq = cur;
    } else if (catch_up(c, cur) < 0) {
        drop_stream(c, "catch-up failed");
        return;
    }
    publish_seq(c);
    if (c->ever_synced)
        sc__atomic_inc(&c->reconnects);
    c->ever_synced = 1;
    c->hb_sent_ms = 0;
    c->hb_next_ms = 0;
    atomic_store_explicit(&c->proof_ms, sc__now_ms(), memory_order_relaxed);
    atomic_store_explicit(&c->synced, 1, memory_order_release);
    sc__log(c, SC_LOG_INFO, "pod %s: synced at sequence %llu", c->opt.pod_id, (unsigned long long)cur);

    pthread_mutex_lock(&c->open_mu);
    c->open_state = 1;
    pthread_cond_broadcast(&c->open_cv);
    pthread_mutex_unlock(&c->open_mu);
}

static void on_lost(const char *why, void *ud)
{
    syncer_lost(ud, why);
}

static void on_tick(void *ud)
{
    sc_cache *c = ud;
    if (!atomic_load(&c->synced) || !c->opt.heartbeat_interval_ms)
        return;
    uint64_t now = sc__now_ms();
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
    if (sc__remote_heartbeat(c->remote, err, sizeof err) != SC_OK) {
        sc__atomic_inc(&c->heartbeat_misses);
        sc__atomic_inc(&c->remote_errors);
        drop_stream(c, err);
        return;
    }
    /* The proof a returning heartbeat gives dates from before it was sent. */
    c->hb_sent_ms = now;
    c->hb_next_ms = now + c->opt.heartbeat_interval_ms;
}

void sc__syncer_callbacks(sc_cache *c, sc__sub_callbacks *cb)
{
    cb->on_message = on_message;
    cb->on_subscribed = on_subscribed;
    cb->on_lost = on_lost;
    cb->on_tick = on_tick;
    cb->ud = c;
}
