/* The subscription to the cache channel: one hiredis async connection that
 * SUBSCRIBEs and hands every message to lib/, on a libevent loop that is
 * either the caller's or one this file runs on a thread of its own. hiredis
 * 0.14 has no reconnect and no async timeouts, so this file owns both: a
 * deadline timer per connection attempt, and a capped exponential backoff
 * with jitter between attempts. It also drives the periodic tick lib/ uses
 * for heartbeats.
 *
 * Lifetime of a connection. hiredis frees a context by itself when the
 * connect fails (right after onConnect with REDIS_ERR) and when an open
 * connection breaks (right after onDisconnect). Freeing one from inside a
 * hiredis callback is either deferred by hiredis (reply callbacks, which
 * run under REDIS_IN_CALLBACK) or a use-after-free (onConnect: hiredis goes
 * on using the context after it returns; onDisconnect: the context is
 * already being freed). So this file never frees a context from inside any
 * hiredis callback: a connection it gives up on moves from `ac` to `doomed`
 * and is freed by reap_ev, a libevent event activated at once, which runs
 * outside every hiredis frame. A hiredis callback for a context other than
 * `ac` belongs to a connection that was already reported and is ignored
 * (forgetting `doomed` when hiredis frees it first); that is what makes
 * on_lost fire exactly once per attempt.
 *
 * Redis Cluster and Sentinel: a locate callback names the node before every
 * attempt, and on a cluster the subscription is sharded (SSUBSCRIBE). A
 * slot migration ends it with an unsolicited sunsubscribe; that is handled
 * like a lost connection (reconnect, locate again, and lib/ catches up from
 * the log on the next confirmation).
 */
#include "sync.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

struct sc__sub {
    char *host;
    int port;
    char *unix_socket;
    char *username;
    char *password;
    char *channel;
    unsigned timeout_ms;
    unsigned backoff_min_ms;
    unsigned backoff_max_ms;
    sc__sub_callbacks cb;
    sc_status (*locate)(void *ud, char *host, size_t cap, int *port, unsigned *gen, char *err, size_t errlen);
    unsigned (*route_gen)(void *ud);
    void *locate_ud;
    int sharded;
    unsigned gen;              /* routing generation of the current node */
    char **prefixes;           /* CLIENT TRACKING prefixes; NULL: no tracking */
    size_t nprefixes;
    int tracking;              /* this connection: tracking on and its
                                  invalidation subscription confirmed */
    int awaiting;              /* confirmations still due before
                                  on_subscribed (AWAIT_*) */
    int skip_tracking;         /* the invalidation channel was refused: no
                                  tracking for the rest of this subscriber */

    struct event_base *base;
    int own_base; /* base and thread are ours */
    pthread_t thread;

    struct event *connect_ev;  /* timer: the next connection attempt */
    struct event *deadline_ev; /* timer: the attempt must be subscribed by then */
    struct event *reap_ev;     /* activated: frees `doomed` outside hiredis */
    struct event *tick_ev;     /* persistent timer; NULL without a tick */
    struct event *stop_ev;     /* activated from sc__sub_stop; own thread only */
    struct event *defer_ev;    /* activated by sc__sub_defer */

    redisAsyncContext *ac;     /* the current attempt or connection, or NULL */
    redisAsyncContext *doomed; /* given up on, waiting for reap_ev */
    unsigned failures;         /* attempts since the last subscribe: the backoff exponent */
    uint64_t rng;              /* jitter state */
    char where[300];           /* "host:port" or the socket path, for messages */
    char why[600];             /* on_lost text, built here so callers get one string */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *format_why(sc__sub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *format_why(sc__sub *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    return s->why;
}

/* Copies an optional string: 0 on success (also for NULL), -1 when out of memory. */
static int copy_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

/* splitmix64: the jitter only has to keep pods from reconnecting in step,
 * so a per-subscriber generator seeded from the clock and the address is
 * enough, and unlike rand() it touches no shared state. */
static uint64_t next_random(sc__sub *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static struct timeval ms_to_tv(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* delay_n = min(max, min * 2^n), scaled by a random factor in [0.5, 1]. */
static void schedule_attempt(sc__sub *s)
{
    unsigned shift = s->failures < 32 ? s->failures : 32;
    uint64_t d = (uint64_t)s->backoff_min_ms << shift;
    if (d > s->backoff_max_ms)
        d = s->backoff_max_ms;
    d = d / 2 + next_random(s) % (d - d / 2 + 1);
    if (s->failures < 32)
        s->failures++;
    struct timeval tv = ms_to_tv(d);
    evtimer_add(s->connect_ev, &tv);
}

/* The attempt is over and `ac` no longer refers to it: report it once and
 * schedule the next one. on_lost runs last so that a callback that looks at
 * the subscriber finds it consistent. */
static void report_lost(sc__sub *s, const char *why)
{
    event_del(s->deadline_ev);
    schedule_attempt(s);
    if (s->cb.on_lost)
        s->cb.on_lost(why, s->cb.ud);
}

/* Gives up on the current context; it is freed by reap_ev, since we may be
 * inside one of its callbacks. */
static void give_up(sc__sub *s, const char *why)
{
    s->doomed = s->ac;
    s->ac = NULL;
    event_active(s->reap_ev, EV_TIMEOUT, 0);
    report_lost(s, why);
}

/* hiredis' libevent adapter, with the read event kept armed. hiredis asks
 * for the read event again after every read (addRead); the stock adapter's
 * event is one-shot, so every message cost an event_add, a change to the
 * epoll set. Here the read event is persistent and added once; addRead on
 * an armed event does nothing. */
typedef struct sub_events {
    redisAsyncContext *ac;
    struct event *rev, *wev;
    int reading;
} sub_events;

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisAsyncHandleRead(((sub_events *)arg)->ac);
}

/* hiredis 0.14 writes with write(2). On a caller's base that runs on the
 * application's thread, where a write to a connection Redis has closed
 * (maxclients, CLIENT KILL or a restart during the handshake) would raise
 * SIGPIPE and, by default, end the process; the own loop thread blocks
 * every signal already. So SIGPIPE is blocked around the write and one it
 * raised is consumed (the write fails with EPIPE, which hiredis reports).
 * Writes are rare: the handshake only. The context may be freed inside
 * redisAsyncHandleWrite, so nothing of it is touched after. */
static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sigset_t sp, old, pending;
    sigemptyset(&sp);
    sigaddset(&sp, SIGPIPE);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sp, &old);
    redisAsyncHandleWrite(((sub_events *)arg)->ac);
    if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        int saved = errno;
        struct timespec zero = {0, 0};
        while (sigtimedwait(&sp, NULL, &zero) < 0 && errno == EINTR)
            ;
        errno = saved;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void add_read(void *data)
{
    sub_events *e = data;
    if (!e->reading && event_add(e->rev, NULL) == 0)
        e->reading = 1;
}

static void del_read(void *data)
{
    sub_events *e = data;
    if (e->reading) {
        event_del(e->rev);
        e->reading = 0;
    }
}

static void add_write(void *data)
{
    event_add(((sub_events *)data)->wev, NULL);
}

static void del_write(void *data)
{
    event_del(((sub_events *)data)->wev);
}

static void free_events(void *data)
{
    sub_events *e = data;
    if (e->rev)
        event_free(e->rev);
    if (e->wev)
        event_free(e->wev);
    free(e);
}

/* -1 on out of memory (nothing attached). */
static int attach_events(redisAsyncContext *ac, struct event_base *base)
{
    sub_events *e = calloc(1, sizeof *e);
    if (!e)
        return -1;
    e->ac = ac;
    e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_readable, e);
    e->wev = event_new(base, ac->c.fd, EV_WRITE, on_writable, e);
    if (!e->rev || !e->wev) {
        free_events(e);
        return -1;
    }
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = free_events;
    ac->ev.data = e;
    add_read(e);
    add_write(e);
    return 0;
}

/* Frees a given-up context. Runs only from libevent callbacks of this file
 * or from sc__sub_stop, never inside a hiredis callback. redisAsyncFree runs
 * the pending reply callbacks with a NULL reply and onDisconnect; all of
 * them see a context that is not `ac` and do nothing. */
static void reap(sc__sub *s)
{
    redisAsyncContext *ac = s->doomed;
    if (ac) {
        redisAsyncFree(ac);
        s->doomed = NULL;
    }
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reap(arg);
}

/* Activated events run after the callback that activated them returns, so
 * after hiredis has handed over every reply of the read in progress. */
static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc__sub *s = arg;
    if (s->cb.on_deferred)
        s->cb.on_deferred(s->cb.ud);
}

#define TRACKING_CHANNEL "__redis__:invalidate"
#define AWAIT_CHANNEL 1
#define AWAIT_INVALIDATIONS 2

/* An error reply (err) while subscribing: when it is the refusal of
 * __redis__:invalidate (an ACL without that channel), tracking is given up
 * for good and reported; returns 1 then. The replies come in the order the
 * subscriptions were sent: first the invalidation channel's, except on a
 * cluster, where it follows the SSUBSCRIBE. */
static int invalidations_refused(sc__sub *s, const char *err)
{
    if (!err || !strstr(err, "NOPERM") || !(s->awaiting & AWAIT_INVALIDATIONS) ||
        (s->sharded && (s->awaiting & AWAIT_CHANNEL)))
        return 0;
    s->skip_tracking = 1;
    if (s->cb.on_tracking) {
        char why[sizeof s->why];
        snprintf(why, sizeof why, "SUBSCRIBE %s at %s refused: %s", TRACKING_CHANNEL, s->where, err);
        s->cb.on_tracking(0, why, s->cb.ud);
    }
    return 1;
}

/* A confirmation (or the refusal of the invalidation channel) came; the
 * subscription counts as made once none is due. */
static void confirmed(sc__sub *s, int what)
{
    int was = s->awaiting;
    s->awaiting &= ~what;
    if (!was || s->awaiting)
        return;
    event_del(s->deadline_ev);
    s->failures = 0;
    if (s->cb.on_subscribed)
        s->cb.on_subscribed(s->cb.ud);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    sc__sub *s = ac->data;
    if (status == REDIS_OK)
        return;
    /* hiredis frees the context when this returns. */
    if (ac == s->doomed) {
        s->doomed = NULL;
    } else if (ac == s->ac) {
        s->ac = NULL;
        report_lost(s, format_why(s, "cannot connect to Redis at %s: %s", s->where,
                                  ac->errstr ? ac->errstr : "unknown error"));
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    sc__sub *s = ac->data;
    /* hiredis frees the context when this returns. */
    if (ac == s->doomed) {
        s->doomed = NULL;
    } else if (ac == s->ac) {
        s->ac = NULL;
        if (invalidations_refused(s, status == REDIS_OK ? NULL : ac->errstr)) {
            /* hiredis 0.14 closes a subscribed connection on an error
             * reply: the next attempt subscribes without tracking. */
            report_lost(s, format_why(s, "retrying at %s without CLIENT TRACKING", s->where));
            return;
        }
        report_lost(s, format_why(s, "subscription connection to %s lost: %s", s->where,
                                  status == REDIS_OK || !ac->errstr ? "closed" : ac->errstr));
    }
}

static void on_auth_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    sc__sub *s = ac->data;
    redisReply *reply = r;
    if (!reply || ac != s->ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR)
        give_up(s, format_why(s, "AUTH to %s failed: %s", s->where, reply->str));
}

static int is_kind(const redisReply *e, const char *kind)
{
    size_t n = strlen(kind);
    return e->type == REDIS_REPLY_STRING && e->len == n && memcmp(e->str, kind, n) == 0;
}

/* An invalidation message's payload: an array of keys (one prefix's keys
 * of one turn of Redis' event loop), or nil for a FLUSHALL / FLUSHDB. */
static void deliver_invalidation(sc__sub *s, const redisReply *keys)
{
    if (!s->cb.on_invalidate)
        return;
    if (keys->type == REDIS_REPLY_NIL) {
        s->cb.on_invalidate(NULL, NULL, 0, 1, s->cb.ud);
        return;
    }
    if (keys->type == REDIS_REPLY_STRING) {
        /* Never Redis' own (its payload is an array or nil): someone's
         * PUBLISH. It may drop the copy it names, not the whole tier. */
        const char *k1 = keys->str;
        size_t l1 = keys->len;
        s->cb.on_invalidate(&k1, &l1, 1, 0, s->cb.ud);
        return;
    }
    if (keys->type != REDIS_REPLY_ARRAY)
        return;
    const char **k = malloc((keys->elements + 1) * sizeof *k);
    size_t *l = malloc((keys->elements + 1) * sizeof *l);
    size_t n = 0;
    if (!k || !l) {
        /* Cannot say which keys: everything. */
        s->cb.on_invalidate(NULL, NULL, 0, 1, s->cb.ud);
    } else {
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *e = keys->element[i];
            if (e->type == REDIS_REPLY_STRING) {
                k[n] = e->str;
                l[n++] = e->len;
            }
        }
        s->cb.on_invalidate(k, l, n, 0, s->cb.ud);
    }
    free(k);
    free(l);
}

/* Every reply on the subscription: the confirmation and then the messages.
 * A message that arrives on a context we gave up on (after
 * sc__sub_reconnect, in the same read) is not delivered. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    sc__sub *s = ac->data;
    redisReply *reply = r;
    if (!reply || ac != s->ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR && invalidations_refused(s, reply->str)) {
        /* On a cluster the refusal reaches this callback: go on without. */
        confirmed(s, AWAIT_INVALIDATIONS);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        /* Refused (an ACL without this channel): say so in Redis' words. */
        give_up(s, format_why(s, "%s %s at %s refused: %s", s->sharded ? "SSUBSCRIBE" : "SUBSCRIBE", s->channel,
                              s->where, reply->str));
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return;
    if (is_kind(reply->element[0], "message") && is_kind(reply->element[1], TRACKING_CHANNEL)) {
        if (s->tracking)
            deliver_invalidation(s, reply->element[2]);
    } else if (is_kind(reply->element[0], "message") || is_kind(reply->element[0], "smessage")) {
        /* Events before the subscription counts as made are left to the
         * catch-up that follows it (the counter it reads covers them). */
        const redisReply *payload = reply->element[2];
        if (payload->type == REDIS_REPLY_STRING && s->cb.on_message && !s->awaiting)
            s->cb.on_message(payload->str, payload->len, s->cb.ud);
    } else if (is_kind(reply->element[0], "sunsubscribe")) {
        /* Redis dropped the shard channel: its slot moved to another node. */
        give_up(s, format_why(s, "shard channel %s left %s (slot migrated)", s->channel, s->where));
    } else if (is_kind(reply->element[0], "subscribe") && is_kind(reply->element[1], TRACKING_CHANNEL)) {
        /* Every invalidation from here on reaches this connection; the
         * pod counts as subscribed once the channel is confirmed too. */
        s->tracking = 1;
        if (s->cb.on_tracking)
            s->cb.on_tracking(1, NULL, s->cb.ud);
        if (ac == s->ac)
            confirmed(s, AWAIT_INVALIDATIONS);
    } else if (is_kind(reply->element[0], "subscribe") || is_kind(reply->element[0], "ssubscribe")) {
        if (s->sharded) {
            /* hiredis 0.14 predates sharded pub/sub: it files SSUBSCRIBE as
             * an ordinary command, whose one callback is used up by this
             * confirmation, and would abort on the first smessage. In
             * MONITOR mode it hands every further reply to the callback
             * that ran last, which is this one: exactly what a
             * subscription needs (nothing else is ever sent on it). */
            ac->c.flags |= REDIS_MONITORING;
        }
        confirmed(s, AWAIT_CHANNEL);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc__sub *s = arg;
    if (s->ac)
        give_up(s, format_why(s, "no subscription confirmed by Redis at %s within %u ms", s->where, s->timeout_ms));
}

/* Queues the subscription: with tracking, __redis__:invalidate too (RESP2
 * delivers a redirected client's invalidations there, and only to a
 * connection in Pub/Sub mode). on_subscribed waits for both confirmations,
 * so every invalidation is flowing before the pod counts as synced.
 * Redis 7.0 delivers nothing to a connection whose only subscription is a
 * shard channel, so the plain SUBSCRIBE is needed beside SSUBSCRIBE too;
 * there it goes second, because hiredis 0.14 would file the SSUBSCRIBE
 * sent after a SUBSCRIBE under its Pub/Sub callbacks and drop its reply.
 * Both come to on_sub_reply either way. */
static int send_subscribe(sc__sub *s, redisAsyncContext *ac, int tracking)
{
    const char *inval[2] = {"SUBSCRIBE", TRACKING_CHANNEL};
    const char *argv[2] = {s->sharded ? "SSUBSCRIBE" : "SUBSCRIBE", s->channel};
    s->awaiting = AWAIT_CHANNEL | (tracking ? AWAIT_INVALIDATIONS : 0);
    if (tracking && !s->sharded && redisAsyncCommandArgv(ac, on_sub_reply, NULL, 2, inval, NULL) != REDIS_OK)
        return -1;
    if (redisAsyncCommandArgv(ac, on_sub_reply, NULL, 2, argv, NULL) != REDIS_OK)
        return -1;
    if (tracking && s->sharded && redisAsyncCommandArgv(ac, on_sub_reply, NULL, 2, inval, NULL) != REDIS_OK)
        return -1;
    return 0;
}

/* An error reply that says "not now" rather than "not allowed": Redis busy
 * with a script, loading its data set, a replica without its master, a
 * cluster not serving. Tracking is then not refused: the attempt is given
 * up and the next one asks again (running without it until the next
 * resubscription would miss every write that bypasses synccache). */
static int transient_error(const char *err)
{
    static const char *const kinds[] = {"BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i]);
        if (strncmp(err, kinds[i], n) == 0 && (err[n] == ' ' || err[n] == '\0'))
            return 1;
    }
    return 0;
}

static void tracking_refused(sc__sub *s, redisAsyncContext *ac, const char *what, const char *detail)
{
    if (transient_error(detail)) {
        give_up(s, format_why(s, "%s at %s answered %s", what, s->where, detail));
        return;
    }
    if (s->cb.on_tracking)
        s->cb.on_tracking(0, format_why(s, "%s at %s refused: %s", what, s->where, detail), s->cb.ud);
    if (send_subscribe(s, ac, 0) != 0)
        give_up(s, "cannot queue SUBSCRIBE: out of memory");
}

static void on_tracking_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    sc__sub *s = ac->data;
    redisReply *reply = r;
    if (!reply || ac != s->ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        tracking_refused(s, ac, "CLIENT TRACKING", reply->str);
        return;
    }
    if (send_subscribe(s, ac, 1) != 0)
        give_up(s, "cannot queue SUBSCRIBE: out of memory");
}

/* The connection's own id, for CLIENT TRACKING ... REDIRECT <id>: RESP2
 * has no push messages, so the invalidations are redirected to this very
 * connection, which receives them as Pub/Sub messages. One connection
 * carries events and invalidations, in the order Redis produced them. */
static void on_client_id(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    sc__sub *s = ac->data;
    redisReply *reply = r;
    if (!reply || ac != s->ac)
        return;
    if (reply->type != REDIS_REPLY_INTEGER) {
        tracking_refused(s, ac, "CLIENT ID", reply->type == REDIS_REPLY_ERROR ? reply->str : "not an integer");
        return;
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", reply->integer);
    size_t argc = 6 + 2 * s->nprefixes;
    const char **argv = malloc(argc * sizeof *argv);
    if (!argv) {
        give_up(s, "cannot queue CLIENT TRACKING: out of memory");
        return;
    }
    argv[0] = "CLIENT";
    argv[1] = "TRACKING";
    argv[2] = "on";
    argv[3] = "REDIRECT";
    argv[4] = id;
    argv[5] = "BCAST";
    for (size_t i = 0; i < s->nprefixes; i++) {
        argv[6 + 2 * i] = "PREFIX";
        argv[7 + 2 * i] = s->prefixes[i];
    }
    int rc = redisAsyncCommandArgv(ac, on_tracking_reply, NULL, (int)argc, argv, NULL);
    free(argv);
    if (rc != REDIS_OK)
        give_up(s, "cannot queue CLIENT TRACKING: out of memory");
}

/* Queues AUTH (when configured) and SUBSCRIBE; hiredis sends them once the
 * connection is up, so one round trip covers both. */
static int send_commands(sc__sub *s, redisAsyncContext *ac)
{
    if (s->password) {
        const char *argv[3] = {"AUTH", s->username ? s->username : s->password, s->password};
        int argc = s->username ? 3 : 2;
        if (redisAsyncCommandArgv(ac, on_auth_reply, NULL, argc, argv, NULL) != REDIS_OK)
            return -1;
    }
    if (s->nprefixes && !s->skip_tracking) {
        const char *argv[2] = {"CLIENT", "ID"};
        return redisAsyncCommandArgv(ac, on_client_id, NULL, 2, argv, NULL) == REDIS_OK ? 0 : -1;
    }
    return send_subscribe(s, ac, 0);
}

static void on_connect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc__sub *s = arg;
    /* A connection given up on in this loop iteration may not be freed yet;
     * free it now so that at most one context is ever in flight. */
    reap(s);

    if (s->locate) {
        char host[256], why[400];
        int port;
        unsigned gen = 0;
        if (s->locate(s->locate_ud, host, sizeof host, &port, &gen, why, sizeof why) != SC_OK) {
            report_lost(s, format_why(s, "cannot locate the channel's node: %s", why));
            return;
        }
        char *h = strdup(host);
        if (!h) {
            report_lost(s, "cannot connect to Redis: out of memory");
            return;
        }
        free(s->host);
        s->host = h;
        s->port = port;
        s->gen = gen;
        snprintf(s->where, sizeof s->where, "%s:%d", s->host, s->port);
    }

    redisAsyncContext *ac = s->unix_socket ? redisAsyncConnectUnix(s->unix_socket)
                                           : redisAsyncConnect(s->host, s->port);
    if (!ac) {
        report_lost(s, "cannot connect to Redis: out of memory");
        return;
    }
    /* Keepalive lets the kernel notice a peer that vanished without a FIN;
     * the heartbeat in lib/ notices it sooner, this catches it regardless. */
    if (!ac->err && !s->unix_socket)
        redisEnableKeepAlive(&ac->c);
    if (ac->err || ac->c.err) {
        /* Failed before any callback was set or event attached: free here. */
        format_why(s, "cannot connect to Redis at %s: %s", s->where, ac->err ? ac->errstr : ac->c.errstr);
        redisAsyncFree(ac);
        report_lost(s, s->why);
        return;
    }
    if (attach_events(ac, s->base) != 0) {
        redisAsyncFree(ac);
        report_lost(s, "cannot connect to Redis: out of memory");
        return;
    }
    ac->data = s;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    s->tracking = 0;
    s->awaiting = 0;
    struct timeval tv = ms_to_tv(s->timeout_ms);
    evtimer_add(s->deadline_ev, &tv);
    if (send_commands(s, ac) != 0)
        give_up(s, "cannot queue AUTH/SUBSCRIBE: out of memory");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc__sub *s = arg;
    if (s->ac && s->route_gen && s->route_gen(s->locate_ud) != s->gen)
        give_up(s, format_why(s, "the namespace's node moved away from %s", s->where));
    s->cb.on_tick(s->cb.ud);
}

/* Drops the connection without reporting it: the subscriber is stopping. */
static void close_connection(sc__sub *s)
{
    reap(s);
    if (s->ac) {
        s->doomed = s->ac;
        s->ac = NULL;
        reap(s);
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc__sub *s = arg;
    close_connection(s);
    event_base_loopbreak(s->base);
}

static void *loop_main(void *arg)
{
    sc__sub *s = arg;
    event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void free_sub(sc__sub *s)
{
    struct event *evs[] = {s->connect_ev, s->deadline_ev, s->reap_ev, s->tick_ev, s->stop_ev, s->defer_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (s->own_base && s->base)
        event_base_free(s->base);
    free(s->host);
    free(s->unix_socket);
    free(s->username);
    free(s->password);
    free(s->channel);
    for (size_t i = 0; i < s->nprefixes; i++)
        free(s->prefixes[i]);
    free(s->prefixes);
    free(s);
}

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static int threads_rc;

static void use_pthreads(void)
{
    threads_rc = evthread_use_pthreads();
}

static sc_status check_config(const sc__sub_config *cfg, const sc__sub_callbacks *cb, char *err, size_t errlen)
{
    if (!cfg || !cb) {
        set_err(err, errlen, "no config or callbacks");
        return SC_ERR_INVALID;
    }
    if (!cfg->channel || !*cfg->channel) {
        set_err(err, errlen, "no channel to subscribe to");
        return SC_ERR_INVALID;
    }
    int tcp = !cfg->locate && (!cfg->unix_socket || !*cfg->unix_socket);
    if (tcp && (!cfg->host || !*cfg->host)) {
        set_err(err, errlen, "neither a Redis host nor a unix socket");
        return SC_ERR_INVALID;
    }
    if (tcp && (cfg->port < 1 || cfg->port > 65535)) {
        set_err(err, errlen, "Redis port %d is not in 1..65535", cfg->port);
        return SC_ERR_INVALID;
    }
    if (cfg->username && !cfg->password) {
        set_err(err, errlen, "a Redis username needs a password");
        return SC_ERR_INVALID;
    }
    if (cfg->timeout_ms < 1) {
        set_err(err, errlen, "timeout_ms must be at least 1");
        return SC_ERR_INVALID;
    }
    if (cfg->reconnect_min_ms < 1 || cfg->reconnect_max_ms < cfg->reconnect_min_ms) {
        set_err(err, errlen, "need 1 <= reconnect_min_ms (%u) <= reconnect_max_ms (%u)", cfg->reconnect_min_ms,
                cfg->reconnect_max_ms);
        return SC_ERR_INVALID;
    }
    return SC_OK;
}

sc_status sc__sub_start(const sc__sub_config *cfg, const sc__sub_callbacks *cb, sc__sub **out, char *err,
                        size_t errlen)
{
    if (!out) {
        set_err(err, errlen, "no place for the subscriber");
        return SC_ERR_INVALID;
    }
    *out = NULL;
    sc_status st = check_config(cfg, cb, err, errlen);
    if (st != SC_OK)
        return st;

    sc__sub *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    s->port = cfg->port;
    s->timeout_ms = cfg->timeout_ms;
    s->backoff_min_ms = cfg->reconnect_min_ms;
    s->backoff_max_ms = cfg->reconnect_max_ms;
    s->cb = *cb;
    s->locate = cfg->locate;
    s->route_gen = cfg->route_gen;
    s->locate_ud = cfg->locate_ud;
    s->sharded = cfg->sharded;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->rng = ((uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec) ^ (uint64_t)(uintptr_t)s;
    int nomem = copy_opt(&s->channel, cfg->channel) || copy_opt(&s->username, cfg->username) ||
                copy_opt(&s->password, cfg->password);
    if (cfg->ntracking) {
        s->prefixes = calloc(cfg->ntracking, sizeof *s->prefixes);
        nomem = nomem || !s->prefixes;
        for (size_t i = 0; !nomem && i < cfg->ntracking; i++) {
            nomem = copy_opt(&s->prefixes[i], cfg->tracking_prefixes[i]) || !s->prefixes[i];
            s->nprefixes = i + 1;
        }
    }
    if (cfg->locate)
        nomem = nomem || copy_opt(&s->host, "(not located yet)");
    else if (cfg->unix_socket && *cfg->unix_socket)
        nomem = nomem || copy_opt(&s->unix_socket, cfg->unix_socket);
    else
        nomem = nomem || copy_opt(&s->host, cfg->host);
    if (nomem) {
        free_sub(s);
        set_err(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    if (s->unix_socket)
        snprintf(s->where, sizeof s->where, "%s", s->unix_socket);
    else
        snprintf(s->where, sizeof s->where, "%s:%d", s->host, s->port);

    if (cfg->base) {
        s->base = cfg->base;
    } else {
        /* A base that another thread can wake (event_active from
         * sc__sub_stop) needs libevent's locking, switched on before the
         * base is created. */
        pthread_once(&threads_once, use_pthreads);
        if (threads_rc != 0) {
            free_sub(s);
            set_err(err, errlen, "libevent: cannot enable pthreads support");
            return SC_ERR_NOMEM;
        }
        s->own_base = 1;
        s->base = event_base_new();
        if (!s->base) {
            free_sub(s);
            set_err(err, errlen, "libevent: cannot create an event base");
            return SC_ERR_NOMEM;
        }
    }

    s->connect_ev = evtimer_new(s->base, on_connect_timer, s);
    s->deadline_ev = evtimer_new(s->base, on_deadline, s);
    s->reap_ev = event_new(s->base, -1, 0, on_reap, s);
    s->defer_ev = event_new(s->base, -1, 0, on_defer, s);
    nomem = !s->connect_ev || !s->deadline_ev || !s->reap_ev || !s->defer_ev;
    if (cfg->tick_ms && cb->on_tick) {
        s->tick_ev = event_new(s->base, -1, EV_PERSIST, on_tick, s);
        nomem = nomem || !s->tick_ev;
    }
    if (s->own_base) {
        s->stop_ev = event_new(s->base, -1, 0, on_stop, s);
        nomem = nomem || !s->stop_ev;
    }
    if (nomem) {
        free_sub(s);
        set_err(err, errlen, "libevent: out of memory");
        return SC_ERR_NOMEM;
    }
    /* The first attempt runs from the loop, so no callback can run inside
     * this function, and a caller's base sees nothing until it runs. */
    struct timeval zero = {0, 0};
    evtimer_add(s->connect_ev, &zero);
    if (s->tick_ev) {
        struct timeval tv = ms_to_tv(cfg->tick_ms);
        event_add(s->tick_ev, &tv);
    }

    /* *out is written before the loop thread exists, so callbacks on that
     * thread may read it (creating the thread orders the two). */
    *out = s;
    if (s->own_base) {
        /* The loop thread takes no signals: they belong to the application,
         * and a SIGPIPE from a write to a closed socket stays pending on the
         * thread instead of killing the process (hiredis 0.14 writes with
         * plain write()). */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&s->thread, NULL, loop_main, s);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            *out = NULL;
            free_sub(s);
            set_err(err, errlen, "cannot start the sync thread: %s", strerror(rc));
            return SC_ERR_NOMEM;
        }
        pthread_setname_np(s->thread, "sc-sync");
    }
    return SC_OK;
}

void sc__sub_defer(sc__sub *s)
{
    if (s)
        event_active(s->defer_ev, EV_TIMEOUT, 0);
}

void sc__sub_reconnect(sc__sub *s, const char *why)
{
    /* Without a connection, the loss is already reported and the next
     * attempt already scheduled. */
    if (s && s->ac)
        give_up(s, why ? why : "reconnect requested");
}

void sc__sub_stop(sc__sub *s)
{
    if (!s)
        return;
    if (s->own_base) {
        event_active(s->stop_ev, EV_TIMEOUT, 0);
        pthread_join(s->thread, NULL);
    }
    /* With an own base, on_stop has closed the connection on the loop
     * thread and this does nothing, unless the loop ended on an error
     * before on_stop could run; with the caller's base this is the close. */
    close_connection(s);
    free_sub(s);
}
