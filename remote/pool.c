/* The pool of blocking hiredis connections behind the Redis tier.
 *
 * A fixed number of slots, each holding at most one connected context; a
 * caller takes a whole slot (mutex + condition variable), so no context is
 * ever used by two threads. Slots connect lazily and a context that saw any
 * I/O error or timeout is freed at once: hiredis contexts are unusable after
 * an error, and the next caller of the slot connects afresh. Every call runs
 * against one absolute deadline that covers waiting for a slot, connecting
 * (AUTH, SELECT included) and the command, so a stopped or paused Redis costs
 * a caller about timeout_ms, never more. A pipeline can be run in two
 * halves (sc__pool_begin writes, sc__pool_end reads), so that a caller
 * overlaps its exchanges with several nodes.
 *
 * With a router (Redis Cluster or Sentinel, route.c) the address is the
 * router's: a connection made under an older routing generation is dropped
 * on its next use, and the answers that mean "not here" (MOVED, ASK,
 * TRYAGAIN, CLUSTERDOWN, READONLY, LOADING, MASTERDOWN, a node that refuses
 * or drops the connection) re-route and retry within the same deadline.
 * None of them means the command ran. A connection dropped after the
 * command was sent may mean it did (Redis ran it, then the connection went
 * before the reply): a write is then never retried, but reported
 * (recv_pipeline), since a second run of a write is not the same call (a
 * compare-and-set would report a conflict with its own first run); a
 * command the caller says writes nothing (SC__POOL_READ) is retried as a
 * stale connection is, since running it again changes nothing. An idle
 * connection that Redis closed is found before the command is sent
 * (ensure_connected).
 */
#include "remote/remote.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
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
    unsigned gen;      /* routing generation ctx was connected under */
    char addr[300];    /* the node ctx talks to, for messages */
    char *obuf;        /* the last commands' RESP bytes (see command()) */
    size_t ocap;
} slot;

struct sc__pool {
    char *host;
    int port;
    char *unix_socket;
    char *username;
    char *password;
    int db;
    char addr[300]; /* "host:port" or the socket path, for messages */
    sc__router *router; /* NULL: one Redis at host/port/unix_socket */

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

int sc__remote_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

char *sc__remote_u64_str(uint64_t v, char out[21])
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return out;
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
    for (unsigned i = 0; p->slots && i < p->size; i++) {
        if (p->slots[i].ctx)
            redisFree(p->slots[i].ctx);
        free(p->slots[i].obuf);
    }
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
            /* A routed pool's connections all talk to its namespace's
             * node: name it, as a timed-out exchange with it would. */
            char node[300] = "";
            if (p->router && sc__pool_node(p, node + 1, sizeof node - 1) == SC_OK)
                node[0] = ' ';
            sc__remote_errf(err, errlen, "redis %s%s: timeout after %u ms waiting for a free connection (%s)", p->addr,
                            node, timeout_ms, what);
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

/* Redis went away under an idle connection (restart, idle kill) and the
 * command could not be sent: it never reached the server that answers now,
 * so one retry on a fresh connection is safe. */
static int is_stale_connection(const redisContext *c, int saved_errno)
{
    return c->err == REDIS_ERR_EOF ||
           (c->err == REDIS_ERR_IO && (saved_errno == ECONNRESET || saved_errno == EPIPE));
}

/* Commands up to this size are formatted into the slot's own buffer, kept
 * between calls; a larger one (a big value, SCRIPT LOAD) gets a buffer of
 * its own for the call, so a slot never holds more than this for long. */
#define OBUF_KEEP 65536

static size_t decimal_len(size_t n)
{
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

size_t sc__decimal(char *buf, size_t n)
{
    size_t d = decimal_len(n), k = d;
    do {
        buf[--k] = (char)('0' + n % 10);
        n /= 10;
    } while (k);
    buf[d] = '\0';
    return d;
}

static char *put_header(char *o, char kind, size_t n)
{
    *o++ = kind;
    o += sc__decimal(o, n);
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

/* The RESP size of one command. */
static size_t command_size(int argc, const char **argv, const size_t *lens)
{
    size_t need = 1 + decimal_len((size_t)argc) + 2;
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        need += 1 + decimal_len(n) + 2 + n + 2;
    }
    return need;
}

/* Formats one command in RESP at o (what redisFormatCommandArgv does,
 * without its malloc); returns the end. */
static char *format_command(char *o, int argc, const char **argv, const size_t *lens)
{
    o = put_header(o, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        o = put_header(o, '$', n);
        memcpy(o, argv[i], n);
        o += n;
        *o++ = '\r';
        *o++ = '\n';
    }
    return o;
}

/* A buffer of need bytes: the slot's own when it fits (kept between calls,
 * grown up to OBUF_KEEP), else one for the caller to free. NULL: out of
 * memory, with the context marked as hiredis would. */
static char *out_buffer(slot *s, size_t need, int *saved_errno)
{
    if (need <= s->ocap)
        return s->obuf;
    char *buf = malloc(need);
    if (!buf) {
        s->ctx->err = REDIS_ERR_OOM;
        snprintf(s->ctx->errstr, sizeof s->ctx->errstr, "out of memory");
        *saved_errno = ENOMEM;
        return NULL;
    }
    if (need <= OBUF_KEEP) {
        free(s->obuf);
        s->obuf = buf;
        s->ocap = need;
    }
    return buf;
}

/* Sends len bytes with send(MSG_NOSIGNAL). hiredis 0.14 writes with
 * write(2), which raises SIGPIPE on a connection Redis has closed and would
 * kill the process; MSG_NOSIGNAL returns EPIPE instead, so no signal mask is
 * touched per command. A failed send marks the context as an I/O error, as
 * hiredis would, and leaves errno for the caller's timeout check. -1 on
 * failure. */
static int send_all(redisContext *c, const char *buf, size_t len, int *saved_errno)
{
    for (size_t off = 0; off < len;) {
        ssize_t k = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            *saved_errno = errno;
            c->err = REDIS_ERR_IO;
            snprintf(c->errstr, sizeof c->errstr, "%s", strerror(errno));
            errno = *saved_errno;
            return -1;
        }
        off += (size_t)k;
    }
    return 0;
}

static redisReply *read_reply(redisContext *c, int *saved_errno)
{
    errno = 0;
    void *reply = NULL;
    if (redisGetReply(c, &reply) != REDIS_OK)
        reply = NULL;
    *saved_errno = errno;
    return reply;
}

/* Sends the ncmd commands in one write. 0, or -1 with the context failed. */
static int pipe_send(slot *s, size_t ncmd, const sc__pool_cmd *cmds, int *saved_errno)
{
    size_t need = 0;
    for (size_t i = 0; i < ncmd; i++)
        need += command_size(cmds[i].argc, cmds[i].argv, cmds[i].lens);
    char *buf = out_buffer(s, need, saved_errno);
    if (!buf)
        return -1;
    char *o = buf;
    for (size_t i = 0; i < ncmd; i++)
        o = format_command(o, cmds[i].argc, cmds[i].argv, cmds[i].lens);
    int failed = send_all(s->ctx, buf, need, saved_errno);
    if (buf != s->obuf)
        free(buf);
    return failed ? -1 : 0;
}

/* Reads the replies of ncmd commands sent into replies[0..ncmd-1], in
 * order. 0, or -1 with every reply freed and the context failed. */
static int pipe_recv(slot *s, size_t ncmd, redisReply **replies, int *saved_errno)
{
    size_t got = 0;
    int failed = 0;
    while (!failed && got < ncmd) {
        replies[got] = read_reply(s->ctx, saved_errno);
        if (!replies[got])
            failed = 1;
        else
            got++;
    }
    if (failed)
        while (got > 0)
            freeReplyObject(replies[--got]);
    return failed ? -1 : 0;
}

/* Applies what is left of the deadline as s->ctx's socket timeout. The
 * timeout is re-applied only when it differs from the one set by more than
 * 5%: a fresh call's deadline is the full timeout, and two setsockopt calls
 * per command cost as much as a third of a loopback round trip. On failure
 * the context is freed. */
static sc_status apply_timeout(slot *s, int64_t deadline, char *err, size_t errlen)
{
    int64_t left = deadline - sc__remote_now_ms();
    int64_t drift = left > s->set_ms ? left - s->set_ms : s->set_ms - left;
    if (s->set_ms == 0 || drift * 20 > s->set_ms) {
        if (redisSetTimeout(s->ctx, remaining_tv(deadline)) != REDIS_OK) {
            sc__remote_errf(err, errlen, "redis %s: cannot set the socket timeout: %s", s->addr, s->ctx->errstr);
            redisFree(s->ctx);
            s->ctx = NULL;
            return SC_ERR_REMOTE;
        }
        s->set_ms = left < 1 ? 1 : left;
    }
    return SC_OK;
}

/* Maps the failure of a send or a read on s->ctx to a status and a message,
 * and frees the context (it is dead); *stale tells whether a retry may
 * help. */
static sc_status failed_io(slot *s, int saved_errno, int64_t deadline, unsigned timeout_ms, const char *what,
                           int *stale, char *err, size_t errlen)
{
    sc_status st;
    if (is_timeout(s->ctx, saved_errno, deadline)) {
        sc__remote_errf(err, errlen, "redis %s: timeout after %u ms on %s", s->addr, timeout_ms, what);
        st = SC_ERR_TIMEOUT;
    } else {
        sc__remote_errf(err, errlen, "redis %s: %s on %s", s->addr,
                 s->ctx->errstr[0] ? s->ctx->errstr : "I/O error", what);
        *stale = is_stale_connection(s->ctx, saved_errno);
        st = s->ctx->err == REDIS_ERR_OOM ? SC_ERR_NOMEM : SC_ERR_REMOTE;
    }
    redisFree(s->ctx);
    s->ctx = NULL;
    return st;
}

/* The sending half of run_pipeline: the timeout applied and the commands
 * written; their replies are still to be read (recv_pipeline). */
static sc_status send_pipeline(slot *s, size_t ncmd, const sc__pool_cmd *cmds, int64_t deadline,
                               unsigned timeout_ms, const char *what, int *stale, char *err, size_t errlen)
{
    *stale = 0;
    sc_status st = apply_timeout(s, deadline, err, errlen);
    if (st != SC_OK)
        return st;
    int saved_errno;
    if (pipe_send(s, ncmd, cmds, &saved_errno) == 0)
        return SC_OK;
    return failed_io(s, saved_errno, deadline, timeout_ms, what, stale, err, errlen);
}

/* The reading half of run_pipeline. A connection that drops once the
 * commands were sent is never retried when they write (*stale stays 0):
 * Redis may have run them and dropped the connection before their replies
 * left (CLIENT KILL, a crash right after), and a second run is no longer the
 * same call (a compare-and-set would conflict with its own first run). An
 * idle connection Redis closed is found before anything is sent
 * (ensure_connected). Commands that write nothing (writes ==
 * SC__POOL_READ) may be run again, as after a failed send. */
static sc_status recv_pipeline(slot *s, size_t ncmd, redisReply **replies, int64_t deadline, unsigned timeout_ms,
                               const char *what, int writes, int *stale, char *err, size_t errlen)
{
    *stale = 0;
    int saved_errno, ignored = 0;
    if (pipe_recv(s, ncmd, replies, &saved_errno) == 0)
        return SC_OK;
    return failed_io(s, saved_errno, deadline, timeout_ms, what, writes ? &ignored : stale, err, errlen);
}

/* Runs the ncmd commands on s->ctx (pipelined: all sent in one write, then
 * the replies read in order into replies[0..ncmd-1]). On failure the
 * context is freed (it is dead) and the error is mapped; *stale tells
 * whether a retry may help. */
static sc_status run_pipeline(slot *s, size_t ncmd, const sc__pool_cmd *cmds, int64_t deadline, unsigned timeout_ms,
                              const char *what, int writes, redisReply **replies, int *stale, char *err, size_t errlen)
{
    sc_status st = send_pipeline(s, ncmd, cmds, deadline, timeout_ms, what, stale, err, errlen);
    if (st != SC_OK)
        return st;
    return recv_pipeline(s, ncmd, replies, deadline, timeout_ms, what, writes, stale, err, errlen);
}

/* Runs one command on s->ctx (see run_pipeline). */
static sc_status run(slot *s, int argc, const char **argv, const size_t *lens, int64_t deadline, unsigned timeout_ms,
                     const char *what, int writes, redisReply **reply, int *stale, char *err, size_t errlen)
{
    sc__pool_cmd one = {argc, argv, lens};
    *reply = NULL;
    return run_pipeline(s, 1, &one, deadline, timeout_ms, what, writes, reply, stale, err, errlen);
}

/* A command during connection setup whose error reply fails the connect. */
static sc_status setup_command(slot *s, int argc, const char **argv, const size_t *lens,
                               int64_t deadline, unsigned timeout_ms, char *err, size_t errlen)
{
    redisReply *reply;
    int stale;
    sc_status st = run(s, argc, argv, lens, deadline, timeout_ms, argv[0], SC__POOL_WRITE, &reply, &stale, err, errlen);
    if (st != SC_OK)
        return st;
    if (reply->type == REDIS_REPLY_ERROR) {
        sc__remote_errf(err, errlen, "redis %s: %s failed: %.*s", s->addr, argv[0], (int)reply->len, reply->str);
        freeReplyObject(reply);
        redisFree(s->ctx);
        s->ctx = NULL;
        return SC_ERR_REMOTE;
    }
    freeReplyObject(reply);
    return SC_OK;
}

/* Connects s to host:port (NULL host: the unix socket), or to the router's
 * current address when to is NULL and there is a router. */
/* Behind Sentinel, a connection must reach the master: right after a
 * failover the sentinels may still name the old one, now a replica, which
 * would answer reads from a history that is no longer the namespace's
 * (the sentinel client guidelines: check ROLE after connecting). */
static sc_status check_master(sc__pool *p, slot *s, const char *host, int port, int64_t deadline,
                              unsigned timeout_ms, char *err, size_t errlen)
{
    const char *argv[1] = {"ROLE"};
    redisReply *reply;
    int stale;
    sc_status st = run(s, 1, argv, NULL, deadline, timeout_ms, "ROLE", SC__POOL_READ, &reply, &stale, err, errlen);
    if (st != SC_OK)
        return st;
    int master = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                 reply->element[0]->type == REDIS_REPLY_STRING && strcmp(reply->element[0]->str, "master") == 0;
    if (!master) {
        sc__remote_errf(err, errlen, "redis %s: not the master (ROLE: %s); the sentinels are failing over?", s->addr,
                        reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                                reply->element[0]->type == REDIS_REPLY_STRING
                            ? reply->element[0]->str
                            : reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        freeReplyObject(reply);
        redisFree(s->ctx);
        s->ctx = NULL;
        sc__router_not_master(p->router, host, port);
        return SC_ERR_REMOTE;
    }
    freeReplyObject(reply);
    return SC_OK;
}

static sc_status connect_to(sc__pool *p, slot *s, const sc__addr *to, int64_t deadline, unsigned timeout_ms,
                            char *err, size_t errlen)
{
    const char *host = p->host;
    int port = p->port;
    sc__addr cur;
    if (to) {
        host = to->host;
        port = to->port;
    } else if (p->router) {
        if (sc__router_current(p->router, &cur, &s->gen) != SC_OK) {
            sc__remote_errf(err, errlen, "redis %s: no node known for the namespace", p->addr);
            return SC_ERR_REMOTE;
        }
        host = cur.host;
        port = cur.port;
    }
    int unix_socket = p->unix_socket && !to && !p->router;
    if (unix_socket)
        snprintf(s->addr, sizeof s->addr, "%s", p->unix_socket);
    else
        snprintf(s->addr, sizeof s->addr, "%s:%d", host, port);
    if (sc__remote_now_ms() >= deadline) {
        sc__remote_errf(err, errlen, "redis %s: timeout after %u ms before connecting", s->addr, timeout_ms);
        return SC_ERR_TIMEOUT;
    }
    struct timeval tv = remaining_tv(deadline);
    errno = 0;
    redisContext *c = unix_socket ? redisConnectUnixWithTimeout(p->unix_socket, tv)
                                  : redisConnectWithTimeout(host, port, tv);
    int saved_errno = errno;
    if (!c) {
        sc__remote_errf(err, errlen, "redis %s: out of memory while connecting", s->addr);
        return SC_ERR_NOMEM;
    }
    if (c->err) {
        sc_status st = is_timeout(c, saved_errno, deadline) ? SC_ERR_TIMEOUT : SC_ERR_REMOTE;
        if (st == SC_ERR_TIMEOUT)
            sc__remote_errf(err, errlen, "redis %s: timeout after %u ms while connecting", s->addr, timeout_ms);
        else
            sc__remote_errf(err, errlen, "redis %s: cannot connect: %s", s->addr, c->errstr);
        redisFree(c);
        return st;
    }
    s->ctx = c;
    s->set_ms = 0;

    if (p->password) {
        const char *argv[3] = {"AUTH", p->username ? p->username : p->password, p->password};
        int argc = p->username ? 3 : 2;
        sc_status st = setup_command(s, argc, argv, NULL, deadline, timeout_ms, err, errlen);
        if (st != SC_OK)
            return st;
    }
    if (p->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", p->db);
        const char *argv[2] = {"SELECT", db};
        sc_status st = setup_command(s, 2, argv, NULL, deadline, timeout_ms, err, errlen);
        if (st != SC_OK)
            return st;
    }
    if (p->router && sc__router_kind(p->router) == SC__ROUTE_SENTINEL)
        return check_master(p, s, host, port, deadline, timeout_ms, err, errlen);
    return SC_OK;
}

void sc__pool_set_router(sc__pool *p, sc__router *rt)
{
    p->router = rt;
    snprintf(p->addr, sizeof p->addr, "%s", rt && sc__router_kind(rt) == SC__ROUTE_CLUSTER ? "(cluster)" : "(sentinel master)");
}

int sc__pool_sharded(const sc__pool *p)
{
    return p->router && sc__router_kind(p->router) == SC__ROUTE_CLUSTER;
}

/* Redirections followed by one command before its error is returned. */
#define MAX_HOPS 16

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* "MOVED <slot> <host>:<port>" / "ASK ...": the target node. An empty host
 * (a node that does not know its address) means the one just asked. */
static int parse_redirect(const redisReply *r, const char *asked, sc__addr *a)
{
    const char *sp = memchr(r->str, ' ', r->len);
    sp = sp ? memchr(sp + 1, ' ', r->len - (size_t)(sp + 1 - r->str)) : NULL;
    if (!sp)
        return -1;
    const char *target = sp + 1;
    const char *colon = strrchr(target, ':');
    if (!colon || !colon[1])
        return -1;
    size_t hl = (size_t)(colon - target);
    if (hl == 0) {
        const char *ac = strrchr(asked, ':');
        hl = ac ? (size_t)(ac - asked) : 0;
        target = asked;
    }
    if (hl == 0 || hl >= sizeof a->host)
        return -1;
    memcpy(a->host, target, hl);
    a->host[hl] = '\0';
    a->port = atoi(colon + 1);
    return a->port > 0 && a->port <= 65535 ? 0 : -1;
}

/* Error replies that mean "not now or not here": the command did not run. */
static int is_transient(const redisReply *r)
{
    static const char *const words[] = {"TRYAGAIN", "CLUSTERDOWN", "READONLY", "LOADING", "MASTERDOWN"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strncmp(r->str, words[i], strlen(words[i])) == 0)
            return 1;
    return 0;
}

/* Waits a little (more each time, never past the deadline) and asks the
 * cluster or the sentinels again. 0 when the deadline leaves no room. */
static int reroute(sc__pool *p, int64_t deadline, int *tries)
{
    int64_t wait = (int64_t)10 << (*tries < 4 ? *tries : 4); /* 10 .. 160 ms */
    (*tries)++;
    int64_t left = deadline - sc__remote_now_ms();
    if (left <= 5)
        return 0;
    sleep_ms(wait < left / 2 ? wait : left / 2);
    char ignored[256];
    sc__router_refresh(p->router, deadline, ignored, sizeof ignored);
    return sc__remote_now_ms() < deadline;
}

/* ASK: the slot is being migrated and this key already lives at a; one
 * command there, after ASKING, on a connection of its own. */
static sc_status ask(sc__pool *p, const sc__addr *a, int argc, const char **argv, const size_t *lens, int64_t deadline,
                     unsigned timeout_ms, const char *what, int writes, redisReply **reply, char *err, size_t errlen)
{
    slot tmp;
    memset(&tmp, 0, sizeof tmp);
    sc_status st = connect_to(p, &tmp, a, deadline, timeout_ms, err, errlen);
    if (st == SC_OK) {
        const char *asking[1] = {"ASKING"};
        st = setup_command(&tmp, 1, asking, NULL, deadline, timeout_ms, err, errlen);
    }
    if (st == SC_OK) {
        int stale;
        st = run(&tmp, argc, argv, lens, deadline, timeout_ms, what, writes, reply, &stale, err, errlen);
    }
    if (tmp.ctx)
        redisFree(tmp.ctx);
    free(tmp.obuf);
    return st;
}

/* Whether Redis closed (or wrote to) an idle connection: its FIN or RST is
 * already here (a restart, CLIENT KILL, the idle timeout), or bytes no
 * command asked for. Looked at without blocking before a command is sent. */
static int closed_while_idle(const redisContext *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Drops s's connection when the routing moved since it was made or Redis
 * closed it while idle, and connects s when it has none; *reused says
 * whether it had one. */
static sc_status ensure_connected(sc__pool *p, slot *s, int64_t deadline, unsigned timeout_ms, int *reused,
                                  char *err, size_t errlen)
{
    if (p->router && s->ctx && s->gen != sc__router_gen(p->router)) {
        /* The namespace moved since this connection was made. */
        redisFree(s->ctx);
        s->ctx = NULL;
    }
    if (s->ctx && closed_while_idle(s->ctx)) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
    *reused = s->ctx != NULL;
    return *reused ? SC_OK : connect_to(p, s, NULL, deadline, timeout_ms, err, errlen);
}

sc_status sc__pool_command(sc__pool *p, int64_t deadline, unsigned timeout_ms, const char *what, int writes, int argc,
                           const char **argv, const size_t *lens, redisReply **reply, char *err, size_t errlen)
{
    *reply = NULL;
    slot *s;
    sc_status st = acquire(p, deadline, timeout_ms, what, &s, err, errlen);
    if (st != SC_OK)
        return st;
    int hops = 0, tries = 0;
    for (int attempt = 0;; attempt++) {
        int reused;
        st = ensure_connected(p, s, deadline, timeout_ms, &reused, err, errlen);
        if (st == SC_ERR_REMOTE && p->router && reroute(p, deadline, &tries))
            continue;
        if (st != SC_OK)
            break;
        int stale;
        st = run(s, argc, argv, lens, deadline, timeout_ms, what, writes, reply, &stale, err, errlen);
        if (st == SC_OK && p->router && (*reply)->type == REDIS_REPLY_ERROR && hops < MAX_HOPS) {
            sc__addr to;
            int moved = strncmp((*reply)->str, "MOVED ", 6) == 0;
            if ((moved || strncmp((*reply)->str, "ASK ", 4) == 0) && parse_redirect(*reply, s->addr, &to) == 0) {
                freeReplyObject(*reply);
                *reply = NULL;
                hops++;
                if (moved) {
                    sc__router_moved(p->router, to.host, to.port);
                    continue;
                }
                st = ask(p, &to, argc, argv, lens, deadline, timeout_ms, what, writes, reply, err, errlen);
                if (st != SC_OK || (*reply)->type != REDIS_REPLY_ERROR || !is_transient(*reply))
                    break;
            }
            /* Past the deadline the error reply itself is the answer. */
            if (is_transient(*reply) && reroute(p, deadline, &tries)) {
                freeReplyObject(*reply);
                *reply = NULL;
                hops++;
                continue;
            }
        }
        if (st == SC_OK)
            break;
        if (p->router && st == SC_ERR_REMOTE && stale && reroute(p, deadline, &tries))
            continue;
        if (!(reused && stale && attempt == 0))
            break;
    }
    release(p, s);
    return st;
}

/* sc__pool_exchange is declared in remote.h with its slot as void *; the
 * slot type stays private to this file. */
sc_status sc__pool_begin(sc__pool *p, int64_t deadline, unsigned timeout_ms, const char *what, size_t ncmd,
                         const sc__pool_cmd *cmds, sc__pool_exchange *x, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    slot *s;
    sc_status st = acquire(p, deadline, timeout_ms, what, &s, err, errlen);
    if (st != SC_OK)
        return st;
    for (int attempt = 0;; attempt++) {
        int reused, stale;
        st = ensure_connected(p, s, deadline, timeout_ms, &reused, err, errlen);
        if (st != SC_OK)
            break;
        st = send_pipeline(s, ncmd, cmds, deadline, timeout_ms, what, &stale, err, errlen);
        if (st == SC_OK) {
            *x = (sc__pool_exchange){p, s, deadline, timeout_ms, what, ncmd, cmds};
            return SC_OK;
        }
        /* As in sc__pool_command: a connection Redis closed while it sat
         * idle gets one retry on a fresh one. */
        if (!(reused && stale && attempt == 0))
            break;
    }
    release(p, s);
    return st;
}

sc_status sc__pool_end(sc__pool_exchange *x, redisReply **replies, char *err, size_t errlen)
{
    sc__pool *p = x->pool;
    slot *s = x->slot;
    int stale;
    /* Never retried here: the commands were sent, and a caller whose
     * commands only read runs them again on its own (remote.c, piped_end). */
    sc_status st =
        recv_pipeline(s, x->ncmd, replies, x->deadline, x->timeout_ms, x->what, SC__POOL_WRITE, &stale, err, errlen);
    release(p, s);
    x->slot = NULL;
    return st;
}

sc_status sc__pool_pipeline(sc__pool *p, int64_t deadline, unsigned timeout_ms, const char *what, size_t ncmd,
                            const sc__pool_cmd *cmds, redisReply **replies, char *err, size_t errlen)
{
    sc__pool_exchange x;
    sc_status st = sc__pool_begin(p, deadline, timeout_ms, what, ncmd, cmds, &x, err, errlen);
    return st == SC_OK ? sc__pool_end(&x, replies, err, errlen) : st;
}

sc_status sc__pool_node(sc__pool *p, char *buf, size_t cap)
{
    if (p->router) {
        sc__addr a;
        unsigned gen;
        if (sc__router_current(p->router, &a, &gen) != SC_OK)
            return SC_ERR_REMOTE;
        snprintf(buf, cap, "%s:%d", a.host, a.port);
    } else
        snprintf(buf, cap, "%s", p->addr);
    return SC_OK;
}
