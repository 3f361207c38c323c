/* The pool of blocking hiredis connections behind the Redis tier.
 *
 * A fixed number of slots, each holding at most one connected context; a
 * caller takes a whole slot (mutex + condition variable), so no context is
 * ever used by two threads. Slots connect lazily and a context that saw any
 * I/O error or timeout is freed at once: hiredis contexts are unusable after
 * an error, and the next caller of the slot connects afresh. Every call runs
 * against one absolute deadline that covers waiting for a slot, connecting
 * (AUTH, SELECT included) and the command, so a stopped or paused Redis costs
 * a caller about timeout_ms, never more.
 */
#include "remote/remote.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

typedef struct slot {
    redisContext *ctx; /* NULL: connect on next use */
    int busy;          /* owned by a caller; only that caller touches ctx */
    int64_t set_ms;    /* socket timeout now applied to ctx; 0 = none yet */
} slot;

struct sc__pool {
    char *host;
    int port;
    char *unix_socket;
    char *username;
    char *password;
    int db;
    char addr[300]; /* "host:port" or the socket path, for messages */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when a slot is released */
    unsigned size;
    slot *slots;
};

int64_t sc__remote_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sc__remote_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *sc__pool_addr(const sc__pool *p)
{
    return p->addr;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

sc_status sc__pool_create(const sc__remote_config *cfg, sc__pool **out, char *err, size_t errlen)
{
    *out = NULL;
    sc__pool *p = calloc(1, sizeof *p);
    if (!p) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    /* Deadlines are monotonic, so the condition variable must be too. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    p->port = cfg->port;
    p->db = cfg->db;
    p->size = cfg->pool_size;
    p->host = dup_or_null(cfg->host ? cfg->host : "127.0.0.1");
    p->unix_socket = dup_or_null(cfg->unix_socket);
    p->username = dup_or_null(cfg->username);
    p->password = dup_or_null(cfg->password);
    p->slots = calloc(p->size, sizeof *p->slots);
    if (!p->host || (cfg->unix_socket && !p->unix_socket) || (cfg->username && !p->username) ||
        (cfg->password && !p->password) || !p->slots) {
        sc__pool_destroy(p);
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    if (p->unix_socket)
        snprintf(p->addr, sizeof p->addr, "%s", p->unix_socket);
    else
        snprintf(p->addr, sizeof p->addr, "%s:%d", p->host, p->port);

    *out = p;
    return SC_OK;
}

void sc__pool_destroy(sc__pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; p->slots && i < p->size; i++)
        if (p->slots[i].ctx)
            redisFree(p->slots[i].ctx);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p->host);
    free(p->unix_socket);
    free(p->username);
    free(p->password);
    free(p);
}

static struct timeval remaining_tv(int64_t deadline)
{
    int64_t left = deadline - sc__remote_now_ms();
    if (left < 1)
        left = 1; /* hiredis reads 0 as "no timeout" */
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000)};
    return tv;
}

/* Takes a free slot, preferring one that is already connected. */
static sc_status acquire(sc__pool *p, int64_t deadline, unsigned timeout_ms, const char *what, slot **out,
                         char *err, size_t errlen)
{
    struct timespec ts = {(time_t)(deadline / 1000), (long)(deadline % 1000) * 1000000L};
    pthread_mutex_lock(&p->mu);
    for (;;) {
        slot *idle = NULL;
        for (unsigned i = 0; i < p->size; i++) {
            if (p->slots[i].busy)
                continue;
            if (!idle || (!idle->ctx && p->slots[i].ctx))
                idle = &p->slots[i];
        }
        if (idle) {
            idle->busy = 1;
            pthread_mutex_unlock(&p->mu);
            *out = idle;
            return SC_OK;
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->mu);
            sc__remote_errf(err, errlen, "redis %s: timeout after %u ms waiting for a free connection (%s)", p->addr,
                     timeout_ms, what);
            return SC_ERR_TIMEOUT;
        }
    }
}

static void release(sc__pool *p, slot *s)
{
    pthread_mutex_lock(&p->mu);
    s->busy = 0;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* hiredis reports a timeout as REDIS_ERR_IO with errno EAGAIN (SO_RCVTIMEO /
 * SO_SNDTIMEO) or ETIMEDOUT (connect). errno is read right after the failed
 * call; an I/O error at or past the deadline is a timeout too. */
static int is_timeout(const redisContext *c, int saved_errno, int64_t deadline)
{
#ifdef REDIS_ERR_TIMEOUT
    if (c->err == REDIS_ERR_TIMEOUT)
        return 1;
#endif
    if (c->err != REDIS_ERR_IO)
        return 0;
    return saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT ||
           sc__remote_now_ms() >= deadline;
}

/* Redis went away under an idle connection (restart, idle kill): the command
 * never reached the server that answers now, so one retry on a fresh
 * connection is safe for our idempotent-in-effect commands. */
static int is_stale_connection(const redisContext *c, int saved_errno)
{
    return c->err == REDIS_ERR_EOF ||
           (c->err == REDIS_ERR_IO && (saved_errno == ECONNRESET || saved_errno == EPIPE));
}

/* Runs one command with SIGPIPE blocked on this thread: hiredis writes with
 * write(2), and a write to a connection Redis has closed would otherwise kill
 * the whole process. A SIGPIPE raised here is consumed before unblocking. */
static redisReply *command_nosigpipe(redisContext *c, int argc, const char **argv, const size_t *lens,
                                     int *saved_errno)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);

    errno = 0;
    redisReply *reply = redisCommandArgv(c, argc, argv, lens);
    *saved_errno = errno;

    /* Only a write that failed with EPIPE raised a SIGPIPE; checking for it
     * on every command would cost two system calls per round trip. */
    if (!reply && *saved_errno == EPIPE) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = *saved_errno;
    return reply;
}

/* Runs one command on s->ctx. On a NULL reply the context is freed (it is
 * dead) and the error is mapped; *stale tells whether a retry may help. */
static sc_status run(sc__pool *p, slot *s, int argc, const char **argv, const size_t *lens, int64_t deadline,
                     unsigned timeout_ms, const char *what, redisReply **reply, int *stale, char *err,
                     size_t errlen)
{
    *stale = 0;
    /* The socket timeout is re-applied only when what is left of the
     * deadline differs from the one set by more than 5%: a fresh call's
     * deadline is the full timeout, and two setsockopt calls per command
     * cost as much as a third of a loopback round trip. */
    int64_t left = deadline - sc__remote_now_ms();
    int64_t drift = left > s->set_ms ? left - s->set_ms : s->set_ms - left;
    if (s->set_ms == 0 || drift * 20 > s->set_ms) {
        if (redisSetTimeout(s->ctx, remaining_tv(deadline)) != REDIS_OK) {
            sc__remote_errf(err, errlen, "redis %s: cannot set the socket timeout: %s", p->addr, s->ctx->errstr);
            redisFree(s->ctx);
            s->ctx = NULL;
            return SC_ERR_REMOTE;
        }
        s->set_ms = left < 1 ? 1 : left;
    }
    int saved_errno;
    *reply = command_nosigpipe(s->ctx, argc, argv, lens, &saved_errno);
    if (*reply)
        return SC_OK;

    sc_status st;
    if (is_timeout(s->ctx, saved_errno, deadline)) {
        sc__remote_errf(err, errlen, "redis %s: timeout after %u ms on %s", p->addr, timeout_ms, what);
        st = SC_ERR_TIMEOUT;
    } else {
        sc__remote_errf(err, errlen, "redis %s: %s on %s", p->addr,
                 s->ctx->errstr[0] ? s->ctx->errstr : "I/O error", what);
        *stale = is_stale_connection(s->ctx, saved_errno);
        st = s->ctx->err == REDIS_ERR_OOM ? SC_ERR_NOMEM : SC_ERR_REMOTE;
    }
    redisFree(s->ctx);
    s->ctx = NULL;
    return st;
}

/* A command during connection setup whose error reply fails the connect. */
static sc_status setup_command(sc__pool *p, slot *s, int argc, const char **argv, const size_t *lens,
                               int64_t deadline, unsigned timeout_ms, char *err, size_t errlen)
{
    redisReply *reply;
    int stale;
    sc_status st = run(p, s, argc, argv, lens, deadline, timeout_ms, argv[0], &reply, &stale, err, errlen);
    if (st != SC_OK)
        return st;
    if (reply->type == REDIS_REPLY_ERROR) {
        sc__remote_errf(err, errlen, "redis %s: %s failed: %.*s", p->addr, argv[0], (int)reply->len, reply->str);
        freeReplyObject(reply);
        redisFree(s->ctx);
        s->ctx = NULL;
        return SC_ERR_REMOTE;
    }
    freeReplyObject(reply);
    return SC_OK;
}

static sc_status connect_slot(sc__pool *p, slot *s, int64_t deadline, unsigned timeout_ms, char *err,
                              size_t errlen)
{
    if (sc__remote_now_ms() >= deadline) {
        sc__remote_errf(err, errlen, "redis %s: timeout after %u ms before connecting", p->addr, timeout_ms);
        return SC_ERR_TIMEOUT;
    }
    struct timeval tv = remaining_tv(deadline);
    errno = 0;
    redisContext *c = p->unix_socket ? redisConnectUnixWithTimeout(p->unix_socket, tv)
                                     : redisConnectWithTimeout(p->host, p->port, tv);
    int saved_errno = errno;
    if (!c) {
        sc__remote_errf(err, errlen, "redis %s: out of memory while connecting", p->addr);
        return SC_ERR_NOMEM;
    }
    if (c->err) {
        sc_status st = is_timeout(c, saved_errno, deadline) ? SC_ERR_TIMEOUT : SC_ERR_REMOTE;
        if (st == SC_ERR_TIMEOUT)
            sc__remote_errf(err, errlen, "redis %s: timeout after %u ms while connecting", p->addr, timeout_ms);
        else
            sc__remote_errf(err, errlen, "redis %s: cannot connect: %s", p->addr, c->errstr);
        redisFree(c);
        return st;
    }
    s->ctx = c;
    s->set_ms = 0;

    if (p->password) {
        const char *argv[3] = {"AUTH", p->username ? p->username : p->password, p->password};
        int argc = p->username ? 3 : 2;
        sc_status st = setup_command(p, s, argc, argv, NULL, deadline, timeout_ms, err, errlen);
        if (st != SC_OK)
            return st;
    }
    if (p->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", p->db);
        const char *argv[2] = {"SELECT", db};
        sc_status st = setup_command(p, s, 2, argv, NULL, deadline, timeout_ms, err, errlen);
        if (st != SC_OK)
            return st;
    }
    return SC_OK;
}

sc_status sc__pool_command(sc__pool *p, int64_t deadline, unsigned timeout_ms, const char *what, int argc,
                           const char **argv, const size_t *lens, redisReply **reply, char *err, size_t errlen)
{
    *reply = NULL;
    slot *s;
    sc_status st = acquire(p, deadline, timeout_ms, what, &s, err, errlen);
    if (st != SC_OK)
        return st;
    for (int attempt = 0;; attempt++) {
        int reused = s->ctx != NULL;
        if (!reused) {
            st = connect_slot(p, s, deadline, timeout_ms, err, errlen);
            if (st != SC_OK)
                break;
        }
        int stale;
        st = run(p, s, argc, argv, lens, deadline, timeout_ms, what, reply, &stale, err, errlen);
        if (st == SC_OK || !(reused && stale && attempt == 0))
            break;
    }
    release(p, s);
    return st;
}
