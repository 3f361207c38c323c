/* Check suite for sync/subscriber.c, run against real redis-servers: one
 * shared server started in main() for the tests that leave it intact, and a
 * private one inside each test that kills it or changes its password. Most
 * tests run twice (the loop index): once with the subscriber's own thread,
 * once on a caller's event_base that the test itself runs. Waits are for
 * correctness with generous deadlines; only the backoff test looks at
 * timestamps, and it checks bounds the schedule guarantees, not speed.
 */
#include <check.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "redis_server.h"
#include "sync/sync.h"

#define MAX_LOST 64
#define WAIT_MS 10000

static sc_test_redis g_redis;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------ recorder --
 * What the callbacks saw, behind a mutex: with the own thread they run on
 * another thread than the test. */
typedef struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct event_base *base; /* the caller's base the test runs; NULL: own thread */
    pthread_t test_thread;
    sc__sub *sub;

    char **msg;
    size_t *msg_len;
    size_t nmsg, cap;
    int subscribed;
    int lost;
    char why[MAX_LOST][256];
    double lost_at[MAX_LOST];
    int ticks;
    const char *reconnect_on; /* a message with this text calls sc__sub_reconnect */

    int stopped;         /* sc__sub_stop has returned */
    int after_stop;      /* callbacks that ran after that */
    int on_wrong_thread; /* callbacks on the test thread (own) or off it (caller's base) */
} rec;

/* Common to every callback, with r->mu held. */
static void seen(rec *r)
{
    if (r->stopped)
        r->after_stop++;
    int on_test = pthread_equal(pthread_self(), r->test_thread);
    if (on_test != (r->base != NULL))
        r->on_wrong_thread++;
}

static void cb_message(const char *data, size_t len, void *ud)
{
    rec *r = ud;
    pthread_mutex_lock(&r->mu);
    seen(r);
    if (r->nmsg == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->msg = realloc(r->msg, r->cap * sizeof *r->msg);
        r->msg_len = realloc(r->msg_len, r->cap * sizeof *r->msg_len);
        ck_assert(r->msg && r->msg_len);
    }
    r->msg[r->nmsg] = malloc(len + 1);
    ck_assert_ptr_nonnull(r->msg[r->nmsg]);
    memcpy(r->msg[r->nmsg], data, len);
    r->msg[r->nmsg][len] = '\0';
    r->msg_len[r->nmsg++] = len;
    int reconnect = r->reconnect_on && len == strlen(r->reconnect_on) && memcmp(data, r->reconnect_on, len) == 0;
    sc__sub *sub = r->sub;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    /* on_lost runs inside this call; the mutex is not recursive. */
    if (reconnect)
        sc__sub_reconnect(sub, "asked by the test");
}

/* Counts a callback that carries nothing else, under the recorder's lock,
 * and wakes wait_for. */
static void count_callback(rec *r, int *counter)
{
    pthread_mutex_lock(&r->mu);
    seen(r);
    (*counter)++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void cb_subscribed(void *ud)
{
    rec *r = ud;
    count_callback(r, &r->subscribed);
}

static void cb_lost(const char *why, void *ud)
{
    rec *r = ud;
    pthread_mutex_lock(&r->mu);
    seen(r);
    if (r->lost < MAX_LOST) {
        snprintf(r->why[r->lost], sizeof r->why[0], "%s", why);
        r->lost_at[r->lost] = now_ms();
    }
    r->lost++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void cb_tick(void *ud)
{
    rec *r = ud;
    count_callback(r, &r->ticks);
}

static void rec_init(rec *r, int caller_base)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->test_thread = pthread_self();
    if (caller_base) {
        r->base = event_base_new();
        ck_assert_ptr_nonnull(r->base);
    }
}

typedef int (*pred_fn)(const rec *r, int n);
static int have_msgs(const rec *r, int n) { return r->nmsg >= (size_t)n; }
static int have_subscribed(const rec *r, int n) { return r->subscribed >= n; }
static int have_lost(const rec *r, int n) { return r->lost >= n; }
static int have_ticks(const rec *r, int n) { return r->ticks >= n; }
static int never(const rec *r, int n) { (void)r; (void)n; return 0; }

/* Waits until pred holds or ms pass; with a caller's base, runs that base
 * meanwhile in short slices. Returns whether pred holds. */
static int wait_for(rec *r, pred_fn pred, int n, int ms)
{
    double deadline = now_ms() + ms;
    pthread_mutex_lock(&r->mu);
    while (!pred(r, n)) {
        double left = deadline - now_ms();
        if (left <= 0)
            break;
        if (r->base) {
            pthread_mutex_unlock(&r->mu);
            struct timeval slice = {0, 10000};
            event_base_loopexit(r->base, &slice);
            event_base_dispatch(r->base);
            pthread_mutex_lock(&r->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            long long ns = ts.tv_nsec + (long long)(left < 50 ? left : 50) * 1000000LL;
            ts.tv_sec += ns / 1000000000LL;
            ts.tv_nsec = ns % 1000000000LL;
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
    }
    int ok = pred(r, n);
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void pause_ms(rec *r, int ms)
{
    wait_for(r, never, 0, ms);
}

static int get_int(rec *r, const int *field)
{
    pthread_mutex_lock(&r->mu);
    int v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}

static void default_config(sc__sub_config *cfg, rec *r, int port, const char *channel)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = port;
    cfg->timeout_ms = 3000;
    cfg->channel = channel;
    cfg->base = r->base;
    cfg->reconnect_min_ms = 20;
    cfg->reconnect_max_ms = 200;
}

/* A fresh recorder (see rec_init) and default_config for it. */
static sc__sub_config fresh_rec(rec *r, int caller_base, int port, const char *channel)
{
    rec_init(r, caller_base);
    sc__sub_config cfg;
    default_config(&cfg, r, port, channel);
    return cfg;
}

static void start(rec *r, const sc__sub_config *cfg)
{
    sc__sub_callbacks cb = {cb_message, cb_subscribed, cb_lost, cb_tick, NULL, NULL, NULL, r};
    char err[256] = "";
    /* &r->sub is written before the own thread exists (see sc__sub_start),
     * so cb_message may read it. */
    sc_status st = sc__sub_start(cfg, &cb, &r->sub, err, sizeof err);
    ck_assert_msg(st == SC_OK, "sc__sub_start: status %d (%s)", (int)st, err);
    ck_assert_ptr_nonnull(r->sub);
}

/* Stops the subscriber, checks that nothing runs afterwards (running the
 * caller's base a while), and that every callback ran on the right thread. */
static void stop_and_check(rec *r)
{
    sc__sub_stop(r->sub);
    pthread_mutex_lock(&r->mu);
    r->stopped = 1;
    pthread_mutex_unlock(&r->mu);
    pause_ms(r, 300);
    ck_assert_int_eq(get_int(r, &r->after_stop), 0);
    ck_assert_int_eq(get_int(r, &r->on_wrong_thread), 0);
    for (size_t i = 0; i < r->nmsg; i++)
        free(r->msg[i]);
    free(r->msg);
    free(r->msg_len);
    if (r->base)
        event_base_free(r->base);
}

/* stop_and_check, which must return at once: the subscriber never makes
 * its caller wait out a connect attempt or a backoff. */
static void stop_promptly(rec *r)
{
    double t0 = now_ms();
    stop_and_check(r);
    double took = now_ms() - t0 - 300; /* stop_and_check waits 300 ms */
    ck_assert_msg(took < 5000, "stop took %.0f ms", took);
}

static void channel_name(char *buf, size_t len, const char *what, int mode)
{
    snprintf(buf, len, "sc-test-%s-%s-%d", what, mode ? "base" : "thread", (int)getpid());
}

/* The common case: default_config on g_redis and a channel of the test's
 * own (its name left in ch), started, and the subscription confirmed. */
static void start_subscribed(rec *r, int mode, const char *what, char *ch, size_t chlen)
{
    channel_name(ch, chlen, what, mode);
    sc__sub_config cfg;
    default_config(&cfg, r, g_redis.port, ch);
    start(r, &cfg);
    ck_assert_msg(wait_for(r, have_subscribed, 1, WAIT_MS), "no subscribe confirmation");
}

/* Publishes one message on a fresh connection and checks how many
 * subscribers Redis delivered it to. */
static void publish(const sc_test_redis *srv, const char *channel, const void *data, size_t len, long long receivers)
{
    redisContext *c = sc_test_redis_connect(srv);
    ck_assert_ptr_nonnull(c);
    redisReply *rep = redisCommand(c, "PUBLISH %s %b", channel, data, len);
    ck_assert_msg(rep && rep->type == REDIS_REPLY_INTEGER, "PUBLISH failed: %s", rep ? rep->str : c->errstr);
    ck_assert_int_eq(rep->integer, receivers);
    freeReplyObject(rep);
    redisFree(c);
}

/* Runs a command on a server that needs AUTH. */
static int cmd_auth(const sc_test_redis *srv, const char *password, const char *fmt, ...)
{
    redisContext *c = sc_test_redis_connect(srv);
    if (!c)
        return -1;
    redisReply *rep = redisCommand(c, "AUTH %s", password);
    int rc = rep && rep->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rep)
        freeReplyObject(rep);
    if (rc == 0) {
        va_list ap;
        va_start(ap, fmt);
        rep = redisvCommand(c, fmt, ap);
        va_end(ap);
        rc = rep && rep->type != REDIS_REPLY_ERROR ? 0 : -1;
        if (rep)
            freeReplyObject(rep);
    }
    redisFree(c);
    return rc;
}

/* A loopback port nothing listens on (bound, then released). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A listener that never accepts (sc_test_black_hole). */
static int black_hole(int *port)
{
    int fd = sc_test_black_hole(port);
    ck_assert_int_ge(fd, 0);
    return fd;
}

static int contains_ci(const char *hay, const char *needle)
{
    return strcasestr(hay, needle) != NULL;
}

/* --------------------------------------------------------------- tests -- */

START_TEST(test_start_errors)
{
    rec r;
    rec_init(&r, 0);
    sc__sub_callbacks cb = {cb_message, cb_subscribed, cb_lost, cb_tick, NULL, NULL, NULL, &r};
    /* Each case breaks one field of a config that works. */
    sc__sub_config good;
    default_config(&good, &r, g_redis.port, "ch");

    sc__sub_config bad[8];
    const char *names[8];
    int n = 0;
    names[n] = "NULL channel";            bad[n] = good; bad[n++].channel = NULL;
    names[n] = "empty channel";           bad[n] = good; bad[n++].channel = "";
    names[n] = "no host, no socket";      bad[n] = good; bad[n++].host = NULL;
    names[n] = "port 0";                  bad[n] = good; bad[n++].port = 0;
    names[n] = "username, no password";   bad[n] = good; bad[n++].username = "alice";
    names[n] = "timeout 0";               bad[n] = good; bad[n++].timeout_ms = 0;
    names[n] = "reconnect_min_ms 0";      bad[n] = good; bad[n++].reconnect_min_ms = 0;
    names[n] = "max < min";               bad[n] = good; bad[n++].reconnect_max_ms = 10;
    for (int i = 0; i < n; i++) {
        sc__sub *s = (sc__sub *)&r; /* must be reset to NULL */
        char err[256] = "";
        sc_status st = sc__sub_start(&bad[i], &cb, &s, err, sizeof err);
        ck_assert_msg(st == SC_ERR_INVALID, "%s: got status %d", names[i], (int)st);
        ck_assert_msg(s == NULL, "%s: *out not reset", names[i]);
        ck_assert_msg(err[0] != '\0', "%s: no message", names[i]);
    }
    sc__sub *s = NULL;
    ck_assert_int_eq(sc__sub_start(NULL, &cb, &s, NULL, 0), SC_ERR_INVALID);
    /* No callback may have run for a failed start. */
    pause_ms(&r, 100);
    ck_assert_int_eq(r.lost + r.subscribed + r.ticks + (int)r.nmsg, 0);
    sc__sub_stop(NULL);
}
END_TEST

/* Subscribe, then messages in publish order with their exact bytes: text,
 * binary with NUL bytes, empty, 1 MiB. */
START_TEST(test_messages)
{
    rec r;
    rec_init(&r, _i);
    char ch[128];
    start_subscribed(&r, _i, "messages", ch, sizeof ch);

    size_t big_len = 1024 * 1024;
    char *big = malloc(big_len);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 131 + (i >> 8));
    const struct {
        const char *data;
        size_t len;
    } want[] = {
        {"first", 5}, {"a\0b\0\xff\x01", 6}, {"", 0}, {big, big_len}, {"\0", 1}, {"last", 4},
    };
    size_t n = sizeof want / sizeof want[0];
    for (size_t i = 0; i < n; i++)
        publish(&g_redis, ch, want[i].data, want[i].len, 1);
    ck_assert_msg(wait_for(&r, have_msgs, (int)n, WAIT_MS), "only %zu of %zu messages", r.nmsg, n);
    pause_ms(&r, 100);
    pthread_mutex_lock(&r.mu);
    ck_assert_uint_eq(r.nmsg, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(r.msg_len[i] == want[i].len, "message %zu: %zu bytes, want %zu", i, r.msg_len[i], want[i].len);
        ck_assert_msg(memcmp(r.msg[i], want[i].data, want[i].len) == 0, "message %zu: bytes differ", i);
    }
    ck_assert_int_eq(r.subscribed, 1);
    ck_assert_int_eq(r.lost, 0);
    pthread_mutex_unlock(&r.mu);
    free(big);
    stop_and_check(&r);
}
END_TEST

/* The server drops the connection: on_lost, subscribed again, and messages
 * published after that arrive. */
START_TEST(test_client_kill)
{
    rec r;
    rec_init(&r, _i);
    char ch[128];
    start_subscribed(&r, _i, "kill", ch, sizeof ch);

    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "CLIENT KILL TYPE pubsub"), 0);
    ck_assert_msg(wait_for(&r, have_lost, 1, WAIT_MS), "no on_lost after CLIENT KILL");
    ck_assert_msg(wait_for(&r, have_subscribed, 2, WAIT_MS), "not subscribed again");
    ck_assert_int_eq(get_int(&r, &r.lost), 1);
    publish(&g_redis, ch, "after", 5, 1);
    ck_assert(wait_for(&r, have_msgs, 1, WAIT_MS));
    ck_assert_str_eq(r.msg[0], "after");
    stop_and_check(&r);
}
END_TEST

/* Redis dies: the attempts fail with delays that grow by 2 and stop at the
 * cap, whatever the jitter (each delay is in [d/2, d]); when Redis is back
 * the subscriber is too. */
START_TEST(test_backoff)
{
    const int min_ms = 25, max_ms = 200, attempts = 10;
    sc_test_redis srv;
    ck_assert_int_eq(sc_test_redis_start(&srv, NULL), 0);
    rec r;
    sc__sub_config cfg = fresh_rec(&r, _i, srv.port, "backoff");
    cfg.reconnect_min_ms = min_ms;
    cfg.reconnect_max_ms = max_ms;
    start(&r, &cfg);
    ck_assert(wait_for(&r, have_subscribed, 1, WAIT_MS));

    sc_test_redis_kill(&srv);
    ck_assert_msg(wait_for(&r, have_lost, attempts + 1, 30000), "only %d losses", get_int(&r, &r.lost));
    pthread_mutex_lock(&r.mu);
    /* lost_at[0] is the broken connection; each later one a refused attempt
     * made delay_i after the one before. */
    for (int i = 0; i < attempts; i++) {
        double d = min_ms * (double)(1u << i);
        if (d > max_ms)
            d = max_ms;
        double gap = r.lost_at[i + 1] - r.lost_at[i];
        /* 5 ms for timer granularity; the upper slack is for a slow machine
         * and still far below the uncapped delays of the later attempts. */
        ck_assert_msg(gap >= d / 2 - 5, "attempt %d came after %.1f ms, before %.1f ms", i, gap, d / 2);
        ck_assert_msg(gap <= d + 1000, "attempt %d came after %.1f ms, the cap is %d ms", i, gap, max_ms);
        ck_assert_msg(contains_ci(r.why[i + 1], "connect"), "why: %s", r.why[i + 1]);
    }
    pthread_mutex_unlock(&r.mu);

    ck_assert_int_eq(sc_test_redis_start_again(&srv), 0);
    ck_assert_msg(wait_for(&r, have_subscribed, 2, WAIT_MS), "not subscribed after Redis came back");
    publish(&srv, "backoff", "back", 4, 1);
    ck_assert(wait_for(&r, have_msgs, 1, WAIT_MS));
    ck_assert_str_eq(r.msg[0], "back");
    stop_and_check(&r);
    sc_test_redis_stop(&srv);
}
END_TEST

/* A failed AUTH (wrong password, no password, wrong ACL user password) is
 * a loss that says so, and is retried; the right credentials subscribe. */
START_TEST(test_auth)
{
    sc_test_redis srv;
    /* The harness checks a new server with an unauthenticated PING, so the
     * password is set once it is up. */
    ck_assert_int_eq(sc_test_redis_start(&srv, NULL), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&srv, "CONFIG SET requirepass secret"), 0);
    ck_assert_int_eq(cmd_auth(&srv, "secret", "ACL SETUSER alice on >alicepw ~* &* +@all"), 0);

    const struct {
        const char *user, *password;
        int ok;
    } cases[] = {
        {NULL, "wrong", 0}, {NULL, NULL, 0}, {"alice", "secret", 0}, {NULL, "secret", 1}, {"alice", "alicepw", 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rec r;
        sc__sub_config cfg = fresh_rec(&r, _i, srv.port, "auth");
        cfg.username = cases[c].user;
        cfg.password = cases[c].password;
        start(&r, &cfg);
        if (cases[c].ok) {
            ck_assert_msg(wait_for(&r, have_subscribed, 1, WAIT_MS), "case %zu: not subscribed", c);
            redisContext *pc = sc_test_redis_connect(&srv);
            ck_assert_ptr_nonnull(pc);
            redisReply *rep = redisCommand(pc, "AUTH secret");
            freeReplyObject(rep);
            rep = redisCommand(pc, "PUBLISH auth hello");
            ck_assert(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1);
            freeReplyObject(rep);
            redisFree(pc);
            ck_assert(wait_for(&r, have_msgs, 1, WAIT_MS));
            ck_assert_int_eq(get_int(&r, &r.lost), 0);
        } else {
            ck_assert_msg(wait_for(&r, have_lost, 3, WAIT_MS), "case %zu: no retries", c);
            pthread_mutex_lock(&r.mu);
            for (int i = 0; i < 3; i++)
                ck_assert_msg(contains_ci(r.why[i], "auth"), "case %zu: why does not say auth: %s", c, r.why[i]);
            ck_assert_int_eq(r.subscribed, 0);
            pthread_mutex_unlock(&r.mu);
        }
        stop_and_check(&r);
    }
    sc_test_redis_stop(&srv);
}
END_TEST

START_TEST(test_unix_socket)
{
    rec r;
    rec_init(&r, _i);
    char ch[128];
    channel_name(ch, sizeof ch, "unix", _i);
    sc__sub_config cfg;
    default_config(&cfg, &r, 0, ch);
    cfg.host = NULL;
    cfg.unix_socket = g_redis.sock;
    start(&r, &cfg);
    ck_assert(wait_for(&r, have_subscribed, 1, WAIT_MS));
    publish(&g_redis, ch, "over unix", 9, 1);
    ck_assert(wait_for(&r, have_msgs, 1, WAIT_MS));
    ck_assert_str_eq(r.msg[0], "over unix");
    stop_and_check(&r);

    /* A socket path that does not exist fails at connect(2), inside
     * redisAsyncConnectUnix: still a loss and a retry, not a start error. */
    rec_init(&r, _i);
    char path[400];
    snprintf(path, sizeof path, "%s/nothing.sock", g_redis.dir);
    cfg.base = r.base;
    cfg.unix_socket = path;
    start(&r, &cfg);
    ck_assert(wait_for(&r, have_lost, 3, WAIT_MS));
    ck_assert_msg(contains_ci(r.why[0], "connect"), "why: %s", r.why[0]);
    ck_assert_int_eq(get_int(&r, &r.subscribed), 0);
    stop_and_check(&r);
}
END_TEST

/* sc__sub_reconnect from inside on_message: on_lost with the given reason,
 * nothing more from the dropped connection (a message pipelined right
 * behind the trigger), subscribed again, later messages arrive. */
START_TEST(test_reconnect_in_message)
{
    rec r;
    rec_init(&r, _i);
    r.reconnect_on = "reconnect";
    char ch[128];
    start_subscribed(&r, _i, "reconnect", ch, sizeof ch);

    redisContext *c = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(c);
    redisAppendCommand(c, "PUBLISH %s reconnect", ch);
    redisAppendCommand(c, "PUBLISH %s stale", ch);
    for (int i = 0; i < 2; i++) {
        redisReply *rep = NULL;
        ck_assert_int_eq(redisGetReply(c, (void **)&rep), REDIS_OK);
        freeReplyObject(rep);
    }
    redisFree(c);

    ck_assert(wait_for(&r, have_lost, 1, WAIT_MS));
    ck_assert_str_eq(r.why[0], "asked by the test");
    ck_assert(wait_for(&r, have_subscribed, 2, WAIT_MS));
    publish(&g_redis, ch, "fresh", 5, 1);
    ck_assert(wait_for(&r, have_msgs, 2, WAIT_MS));
    pthread_mutex_lock(&r.mu);
    ck_assert_uint_eq(r.nmsg, 2);
    ck_assert_str_eq(r.msg[0], "reconnect");
    ck_assert_str_eq(r.msg[1], "fresh");
    ck_assert_int_eq(r.lost, 1);
    pthread_mutex_unlock(&r.mu);
    stop_and_check(&r);
}
END_TEST

/* A server that accepts and never answers: each attempt ends at timeout_ms
 * as a loss. */
START_TEST(test_subscribe_timeout)
{
    int port;
    int fd = black_hole(&port);
    rec r;
    sc__sub_config cfg = fresh_rec(&r, _i, port, "timeout");
    cfg.timeout_ms = 100;
    start(&r, &cfg);
    ck_assert(wait_for(&r, have_lost, 2, WAIT_MS));
    ck_assert_msg(strstr(r.why[0], "within 100 ms"), "why: %s", r.why[0]);
    ck_assert_int_eq(get_int(&r, &r.subscribed), 0);
    stop_and_check(&r);
    close(fd);
}
END_TEST

/* Stop while an attempt hangs (no reply for 60 s) returns at once, reports
 * nothing, and nothing runs afterwards. */
START_TEST(test_stop_while_connecting)
{
    int port;
    int fd = black_hole(&port);
    rec r;
    sc__sub_config cfg = fresh_rec(&r, _i, port, "connecting");
    cfg.timeout_ms = 60000;
    cfg.tick_ms = 10;
    start(&r, &cfg);
    /* Ticks prove the loop has run, so the attempt is under way. */
    ck_assert(wait_for(&r, have_ticks, 5, WAIT_MS));
    stop_promptly(&r);
    ck_assert_int_eq(r.lost, 0);
    ck_assert_int_eq(r.subscribed, 0);
    close(fd);
}
END_TEST

/* Stop while waiting out a long backoff returns at once. */
START_TEST(test_stop_while_disconnected)
{
    rec r;
    sc__sub_config cfg = fresh_rec(&r, _i, closed_port(), "disconnected");
    cfg.reconnect_min_ms = 60000;
    cfg.reconnect_max_ms = 60000;
    start(&r, &cfg);
    ck_assert(wait_for(&r, have_lost, 1, WAIT_MS));
    stop_promptly(&r);
    ck_assert_int_eq(r.lost, 1);
}
END_TEST

/* The tick runs while disconnected and while subscribed. */
START_TEST(test_tick)
{
    rec r;
    sc__sub_config cfg = fresh_rec(&r, _i, closed_port(), "tick");
    cfg.tick_ms = 20;
    start(&r, &cfg);
    ck_assert_msg(wait_for(&r, have_ticks, 5, WAIT_MS), "ticks while disconnected: %d", get_int(&r, &r.ticks));
    ck_assert(get_int(&r, &r.lost) >= 1);
    stop_and_check(&r);

    cfg = fresh_rec(&r, _i, g_redis.port, "tick");
    cfg.tick_ms = 20;
    start(&r, &cfg);
    ck_assert(wait_for(&r, have_subscribed, 1, WAIT_MS));
    int before = get_int(&r, &r.ticks);
    ck_assert_msg(wait_for(&r, have_ticks, before + 5, WAIT_MS), "ticks while subscribed stopped at %d",
                  get_int(&r, &r.ticks));
    stop_and_check(&r);
}
END_TEST

/* On a caller's base nothing happens until the caller runs it: not even
 * the report of a connection that fails inside connect(2) itself (a
 * missing unix socket) or a 1 ms tick. */
START_TEST(test_nothing_before_loop)
{
    rec r;
    sc__sub_config cfg = fresh_rec(&r, 1, 0, "idle");
    char path[400];
    snprintf(path, sizeof path, "%s/nothing.sock", g_redis.dir);
    cfg.host = NULL;
    cfg.unix_socket = path;
    cfg.tick_ms = 1;
    start(&r, &cfg);
    usleep(50 * 1000);
    ck_assert_int_eq(r.lost + r.subscribed + r.ticks + (int)r.nmsg, 0);
    ck_assert(wait_for(&r, have_lost, 1, WAIT_MS));
    ck_assert(wait_for(&r, have_ticks, 1, WAIT_MS));
    stop_and_check(&r);
}
END_TEST

/* Stop from inside the base's own loop (another event's callback), the
 * documented way to stop on a running caller's base. */
static void stop_from_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rec *r = arg;
    sc__sub_stop(r->sub);
    pthread_mutex_lock(&r->mu);
    r->stopped = 1;
    pthread_mutex_unlock(&r->mu);
}

START_TEST(test_stop_inside_loop)
{
    rec r;
    sc__sub_config cfg = fresh_rec(&r, 1, g_redis.port, "inside");
    cfg.tick_ms = 5;
    start(&r, &cfg);
    ck_assert(wait_for(&r, have_subscribed, 1, WAIT_MS));
    struct event *ev = evtimer_new(r.base, stop_from_loop, &r);
    struct timeval zero = {0, 0};
    evtimer_add(ev, &zero);
    pause_ms(&r, 300);
    ck_assert_int_eq(r.stopped, 1);
    ck_assert_int_eq(r.after_stop, 0);
    event_free(ev);
    /* The subscriber left nothing on the base. */
    ck_assert_int_eq(event_base_get_num_events(r.base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
    event_base_free(r.base);
}
END_TEST

static Suite *subscriber_suite(void)
{
    Suite *s = suite_create("subscriber");
    TCase *tc = tcase_create("subscriber");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_start_errors);
    /* Loop index 0: own thread; 1: the caller's base. */
    tcase_add_loop_test(tc, test_messages, 0, 2);
    tcase_add_loop_test(tc, test_client_kill, 0, 2);
    tcase_add_loop_test(tc, test_backoff, 0, 2);
    tcase_add_loop_test(tc, test_auth, 0, 2);
    tcase_add_loop_test(tc, test_unix_socket, 0, 2);
    tcase_add_loop_test(tc, test_reconnect_in_message, 0, 2);
    tcase_add_loop_test(tc, test_subscribe_timeout, 0, 2);
    tcase_add_loop_test(tc, test_stop_while_connecting, 0, 2);
    tcase_add_loop_test(tc, test_stop_while_disconnected, 0, 2);
    tcase_add_loop_test(tc, test_tick, 0, 2);
    tcase_add_test(tc, test_nothing_before_loop);
    tcase_add_test(tc, test_stop_inside_loop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* hiredis writes with write(2); the subscriber blocks SIGPIPE around
     * its own writes (check_cache tests that it never reaches the loop's
     * thread), and this keeps one from the tests' own connections away. */
    signal(SIGPIPE, SIG_IGN);
    /* Catches use of freed or never-assigned events in the subscriber. */
    event_enable_debug_mode();
    if (sc_test_redis_start(&g_redis, NULL) != 0)
        return EXIT_FAILURE;
    SRunner *sr = srunner_create(subscriber_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    sc_test_redis_stop(&g_redis);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
