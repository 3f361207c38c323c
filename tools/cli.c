/* synccache-cli: operate a synccache namespace with nothing but a Redis
 * address.
 *
 * Read-only commands (stats, tail, get) talk to Redis with plain commands,
 * the library's own read script and its event decoder, so what they show is
 * what a pod would see. invalidate publishes the JSON event any outside
 * service may send. delete and clear change data, so they go through the
 * library: the CLI opens an sc_cache on the namespace as a writer and calls
 * sc_delete / sc_clear, which keeps versions, the event log, tombstones,
 * the clear floor and the events exactly right.
 *
 * Exit status: 0 done, 1 get: not found, 2 bad usage or argument (an invalid
 * namespace too), 3 Redis unreachable, refused (authentication, ACL) or failed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <synccache/synccache.h>

#include "lib/internal.h"
#include "remote/remote.h"
#include "sync/sync.h"

#define EXIT_NOT_FOUND 1
#define EXIT_USAGE 2
#define EXIT_REDIS 3

#define CLI_SENDER "synccache-cli"

typedef struct cli {
    const char *host;
    int port;
    const char *sock;
    const char *user;
    const char *pass;
    int db;
    unsigned timeout_ms;
    const char *channel_opt;
    /* command options */
    int raw;        /* get: the value's bytes only */
    long count;     /* tail: stop after this many lines (0: never) */
    double seconds; /* tail: stop after this long (0: never); stats: how long to listen */
    int heartbeats; /* tail: show heartbeats too */
    int all_ns;     /* tail: every namespace on the channel */
    /* derived */
    char addr[300];
    char channel[320]; /* {ns#p}:events, ns up to 299 bytes in the buffers below */
} cli;

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("synccache-cli: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

/* ---------------------------------------------------------------- help -- */

typedef struct command {
    const char *name;
    int nargs; /* after the command name */
    const char *args;
    const char *summary;
    const char *help;
    int (*run)(cli *o, char **args);
} command;

static const command *find_command(const char *name);

static const char overall_help[] =
    "usage: synccache-cli [connection options] COMMAND [command options] ARGS...\n"
    "\n"
    "Looks into and operates a synccache namespace with only a Redis address.\n"
    "\n"
    "commands:\n"
    "%s"
    "  help [COMMAND]      this text, or one command's\n"
    "\n"
    "connection options:\n"
    "  -h, --host HOST     Redis host (default 127.0.0.1)\n"
    "  -p, --port PORT     Redis port (default 6379)\n"
    "  -s, --socket PATH   Redis unix socket, instead of host and port\n"
    "      --user USER     ACL user name (needs a password)\n"
    "      --pass PASSWORD password (default: $SYNCCACHE_REDIS_PASSWORD, which keeps\n"
    "                      it out of the process list)\n"
    "      --db N          database number (default 0)\n"
    "      --channel NAME  the namespace's channel when its pods set one (default {NS}:events)\n"
    "      --timeout MS    bound on each Redis call (default 2000)\n"
    "      --help          this text; with a command, that command's\n"
    "\n"
    "A pod's own counters (hits, latencies) live in its process: expose them with\n"
    "sc_metrics_text (README, \"Metrics\"); this tool sees what Redis sees.\n"
    "\n"
    "exit status: 0 done; 1 get: not found; 2 bad usage, argument or namespace;\n"
    "3 Redis unreachable, refused the login or a command, or failed.\n";

static void print_overall_help(FILE *f);

static void print_command_help(FILE *f, const command *cmd)
{
    fprintf(f, "usage: synccache-cli [connection options] %s %s\n\n%s\n", cmd->name, cmd->args, cmd->help);
    fprintf(f, "\nConnection options: see synccache-cli --help.\n");
}

/* ------------------------------------------------------------- output -- */

/* Prints n bytes as a double-quoted C-style string, at most max bytes of
 * them ("..." marks a cut). */
static void print_quoted(FILE *f, const void *data, size_t n, size_t max)
{
    const unsigned char *p = data;
    fputc('"', f);
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch == '\r')
            fputs("\\r", f);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
    if (n > max)
        fputs("...", f);
}

/* An identifier (instance id, epoch, a version or counter read from Redis)
 * as it is when it is plain printable ASCII without spaces or quotes, as
 * pods send and write them; anything else an outside publisher (or anyone
 * with Redis access) put there is quoted and escaped, so it can neither
 * split the line nor reach the terminal as control bytes. Every such text
 * the tool prints goes through here. */
static void print_token(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            print_quoted(f, s, n, 80);
            return;
        }
    }
    fwrite(s, 1, n, f);
}

static void print_utc_ms(FILE *f, uint64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "%s.%03uZ", buf, (unsigned)(ms % 1000));
}

static uint64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------- arguments -- */

static void check_ns(const char *ns)
{
    if (!sc__remote_ns_valid(ns)) {
        fputs("synccache-cli: invalid namespace ", stderr);
        print_quoted(stderr, ns, strlen(ns), 80);
        fputs(": a namespace is 1 to 256 bytes with no '{', '}' or control characters\n", stderr);
        exit(EXIT_USAGE);
    }
}

static void check_key(const char *key)
{
    size_t n = strlen(key);
    if (n == 0)
        die(EXIT_USAGE, "the key is empty");
    if (n > 65535)
        die(EXIT_USAGE, "the key is longer than 65535 bytes");
}

/* The namespace's partition count, as its first sc_open recorded it in
 * {ns}:meta (README, "Partitioned namespaces"); 1 when none is. */
static unsigned partitions_of(redisContext *c, const cli *o, const char *ns);

/* The namespace that holds key: ns itself, or with P > 1 partitions its
 * partition "ns#p" (p from the key's hash, as every pod computes it). */
static void key_namespace(char *out, size_t len, const char *ns, unsigned parts, const char *key)
{
    if (parts > 1)
        snprintf(out, len, "%s#%u", ns, sc__partition_of(key, 65535, parts));
    else
        snprintf(out, len, "%s", ns);
}

static void set_channel(cli *o, const char *ns)
{
    if (o->channel_opt)
        snprintf(o->channel, sizeof o->channel, "%s", o->channel_opt);
    else
        snprintf(o->channel, sizeof o->channel, "{%s}:events", ns);
}

/* ------------------------------------------------------------- Redis -- */

static redisReply *command_or_die(redisContext *c, const cli *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r)
        die(EXIT_REDIS, "Redis at %s: %s", o->addr, c->errstr[0] ? c->errstr : "no reply");
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOAUTH", 6) == 0)
            die(EXIT_REDIS, "Redis at %s needs a login: give --pass (and --user for an ACL user): %s", o->addr, r->str);
        if (strncmp(r->str, "NOPERM", 6) == 0)
            die(EXIT_REDIS, "Redis at %s: permission denied by the ACL: %s", o->addr, r->str);
        die(EXIT_REDIS, "Redis at %s refused a command: %s", o->addr, r->str);
    }
    return r;
}

static unsigned partitions_of(redisContext *c, const cli *o, const char *ns)
{
    redisReply *r = command_or_die(c, o, "HGET {%s}:meta partitions", ns);
    unsigned long long p = 1;
    if (r->type == REDIS_REPLY_STRING) {
        char *end = NULL;
        errno = 0;
        p = strtoull(r->str, &end, 10);
        if (errno || end == r->str || *end || p < 1 || p > 256) {
            fprintf(stderr, "synccache-cli: Redis at %s: {%s}:meta holds a bad partitions field: ", o->addr, ns);
            print_token(stderr, r->str, r->len);
            fputc('\n', stderr);
            exit(EXIT_REDIS);
        }
    }
    freeReplyObject(r);
    if (p > 1 && o->channel_opt)
        die(EXIT_USAGE,
            "namespace %s has %llu partitions, each with its own channel {%s#p}:events: --channel does "
            "not apply",
            ns, p, ns);
    return (unsigned)p;
}

/* A blocking connection: connected, logged in, database selected, PING
 * answered. Dies with a message naming what failed. */
static redisContext *connect_or_die(const cli *o)
{
    struct timeval tv = {(time_t)(o->timeout_ms / 1000), (suseconds_t)(o->timeout_ms % 1000) * 1000};
    redisContext *c =
        o->sock ? redisConnectUnixWithTimeout(o->sock, tv) : redisConnectWithTimeout(o->host, o->port, tv);
    if (!c)
        die(EXIT_REDIS, "cannot connect to Redis at %s: out of memory", o->addr);
    if (c->err)
        die(EXIT_REDIS, "cannot connect to Redis at %s: %s (is Redis running there? see -h/-p/-s)", o->addr, c->errstr);
    redisSetTimeout(c, tv);
    if (o->pass) {
        redisReply *r = o->user ? redisCommand(c, "AUTH %s %s", o->user, o->pass) : redisCommand(c, "AUTH %s", o->pass);
        if (!r)
            die(EXIT_REDIS, "Redis at %s: login failed: %s", o->addr, c->errstr);
        if (r->type == REDIS_REPLY_ERROR)
            die(EXIT_REDIS, "Redis at %s refused the login%s%s: %s", o->addr, o->user ? " of user " : "",
                o->user ? o->user : "", r->str);
        freeReplyObject(r);
    }
    if (o->db)
        freeReplyObject(command_or_die(c, o, "SELECT %d", o->db));
    freeReplyObject(command_or_die(c, o, "PING"));
    return c;
}

/* Waits up to timeout_ms (< 0: without bound) for the next reply on a
 * subscribed connection. 1 with *out, 0 when the time ran out or a signal
 * came, -1 when the connection failed (message in c->errstr). */
static int next_reply(redisContext *c, int timeout_ms, redisReply **out)
{
    for (;;) {
        void *r = NULL;
        if (redisGetReplyFromReader(c, &r) != REDIS_OK)
            return -1;
        if (r) {
            *out = r;
            return 1;
        }
        struct pollfd p = {c->fd, POLLIN, 0};
        int n = poll(&p, 1, timeout_ms);
        if (n == 0 || (n < 0 && errno == EINTR))
            return 0;
        if (n < 0) {
            snprintf(c->errstr, sizeof c->errstr, "poll: %s", strerror(errno));
            return -1;
        }
        if (redisBufferRead(c) != REDIS_OK)
            return -1;
    }
}

static redisContext *subscribe_or_die(const cli *o)
{
    redisContext *c = connect_or_die(o);
    redisReply *r = command_or_die(c, o, "SUBSCRIBE %s", o->channel);
    freeReplyObject(r);
    return c;
}

/* A pub/sub message's payload, or NULL for any other reply. */
static const redisReply *message_payload(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return NULL;
    if (r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0)
        return NULL;
    return r->element[2]->type == REDIS_REPLY_STRING ? r->element[2] : NULL;
}

static const char *encoding_of(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')
            continue;
        return data[i] == '{' ? "json" : "msgpack";
    }
    return "empty";
}

/* ------------------------------------------------------------- stats -- */

typedef struct seen_pod {
    char sender[260];
    char inst[20];
    uint64_t version;
    uint64_t time_ms;
    unsigned heartbeats;
    const char *encoding;
} seen_pod;

static int run_stats(cli *o, char **args)
{
    const char *ns = args[0];
    check_ns(ns);
    set_channel(o, ns);
    redisContext *c = connect_or_die(o);
    unsigned parts = partitions_of(c, o, ns);
    if (parts > 1) {
        printf("namespace      %s\n", ns);
        printf("partitions     %u: each is a namespace of its own, %s#0 to %s#%u (run stats on each)\n", parts, ns, ns,
               parts - 1);
        redisFree(c);
        return 0;
    }
    /* Subscribe first, so the listening window starts while the rest is
     * read. */
    redisContext *sub = subscribe_or_die(o);

    printf("namespace      %s\n", ns);
    redisReply *r = command_or_die(c, o, "GET {%s}:seq", ns);
    if (r->type == REDIS_REPLY_STRING) {
        printf("counter        ");
        print_token(stdout, r->str, r->len);
        printf(" (the last version handed out)\n");
    } else
        printf("counter        none (no pod has opened this namespace on this Redis)\n");
    freeReplyObject(r);

    r = command_or_die(c, o, "HMGET {%s}:meta epoch floor", ns);
    const redisReply *epoch = r->element[0]->type == REDIS_REPLY_STRING ? r->element[0] : NULL;
    const redisReply *floor = r->element[1]->type == REDIS_REPLY_STRING ? r->element[1] : NULL;
    printf("epoch          ");
    if (epoch)
        print_token(stdout, epoch->str, epoch->len);
    else
        printf("none");
    putchar('\n');
    if (floor) {
        printf("clear floor    ");
        print_token(stdout, floor->str, floor->len);
        printf(" (keys with a lower version are absent)\n");
    } else
        printf("clear floor    none (never cleared)\n");
    freeReplyObject(r);

    r = command_or_die(c, o, "XLEN {%s}:log", ns);
    long long loglen = r->integer;
    freeReplyObject(r);
    if (loglen > 0) {
        redisReply *first = command_or_die(c, o, "XRANGE {%s}:log - + COUNT 1", ns);
        redisReply *last = command_or_die(c, o, "XREVRANGE {%s}:log + - COUNT 1", ns);
        const char *fid = first->elements ? first->element[0]->element[0]->str : "?";
        const char *lid = last->elements ? last->element[0]->element[0]->str : "?";
        printf("event log      %lld entries, first %s, last %s (catch-up reaches back to the first)\n", loglen, fid,
               lid);
        freeReplyObject(first);
        freeReplyObject(last);
    } else {
        printf("event log      empty\n");
    }
    /* Hook for write-behind (lib/behind.c): once its queue's key is in
     * docs/protocol.md, print its depth (XLEN) and the pending entries of
     * its consumer group (XPENDING) here. */
    redisFree(c);

    /* Live pods: every pod of the namespace sends a heartbeat through the
     * channel every heartbeat_interval_ms (250 by default). */
    double listen_s = o->seconds > 0 ? o->seconds : 1.0;
    seen_pod pods[256];
    size_t npods = 0;
    unsigned events = 0, malformed = 0;
    int64_t deadline = mono_ms() + (int64_t)(listen_s * 1000);
    for (int64_t now = mono_ms(); now < deadline && !g_stop; now = mono_ms()) {
        redisReply *m = NULL;
        int got = next_reply(sub, (int)(deadline - now), &m);
        if (got < 0)
            die(EXIT_REDIS, "Redis at %s: subscription failed: %s", o->addr, sub->errstr);
        if (got == 0)
            continue;
        const redisReply *payload = message_payload(m);
        sc__event ev;
        if (payload && sc__event_decode(payload->str, payload->len, 0, &ev) == SC_OK) {
            int mine = !ev.has_ns || strcmp(ev.ns, ns) == 0;
            if (mine && ev.action == SC__ACT_HEARTBEAT) {
                size_t i = 0;
                while (i < npods && !(strcmp(pods[i].inst, ev.inst) == 0 && strcmp(pods[i].sender, ev.sender) == 0))
                    i++;
                if (i == npods && npods < sizeof pods / sizeof pods[0]) {
                    memset(&pods[i], 0, sizeof pods[i]);
                    snprintf(pods[i].sender, sizeof pods[i].sender, "%s", ev.sender);
                    snprintf(pods[i].inst, sizeof pods[i].inst, "%s", ev.inst);
                    npods++;
                }
                if (i < npods) {
                    pods[i].heartbeats++;
                    pods[i].version = ev.version;
                    pods[i].time_ms = ev.time_ms;
                    pods[i].encoding = encoding_of(payload->str, payload->len);
                }
            } else if (mine) {
                events++;
            }
            sc__event_free(&ev);
        } else if (payload) {
            malformed++;
        }
        freeReplyObject(m);
    }
    redisFree(sub);

    printf("live pods      %zu (heartbeats on %s in %.1f s)\n", npods, o->channel, listen_s);
    for (size_t i = 0; i < npods; i++) {
        printf("  sender ");
        print_quoted(stdout, pods[i].sender, strlen(pods[i].sender), 80);
        printf("  inst ");
        print_token(stdout, pods[i].inst, strlen(pods[i].inst));
        printf("  at sequence %" PRIu64 "  %s  %u heartbeat%s\n", pods[i].version, pods[i].encoding, pods[i].heartbeats,
               pods[i].heartbeats == 1 ? "" : "s");
    }
    printf("events seen    %u cache events, %u undecodable messages while listening\n", events, malformed);
    if (npods == 0)
        printf("               (pods with heartbeat_interval_ms = 0 send no heartbeats and do not show)\n");
    return 0;
}

/* -------------------------------------------------------------- tail -- */

static void print_event_line(const sc__event *ev, const char *encoding)
{
    print_utc_ms(stdout, ev->time_ms ? ev->time_ms : realtime_ms());
    printf(" %-10s %-7s", sc__action_name(ev->action), encoding);
    printf(" ns=");
    if (ev->has_ns)
        print_quoted(stdout, ev->ns, ev->ns_len, 80);
    else
        printf("*");
    if (ev->action != SC__ACT_CLEAR && ev->action != SC__ACT_HEARTBEAT) {
        printf(" key=");
        print_quoted(stdout, ev->key, ev->key_len, 120);
    }
    printf(" version=%" PRIu64, ev->version);
    printf(" sender=");
    print_quoted(stdout, ev->sender, ev->sender_len, 80);
    if (ev->inst_len) {
        printf(" inst=");
        print_token(stdout, ev->inst, ev->inst_len);
    }
    if (ev->epoch_len) {
        printf(" epoch=");
        print_token(stdout, ev->epoch, ev->epoch_len);
    }
    if (ev->ttl_ms)
        printf(" ttl=%" PRIu64 "ms", ev->ttl_ms);
    if (ev->has_value) {
        printf(" value(%zu)=", ev->value_len);
        print_quoted(stdout, ev->value, ev->value_len, 64);
    }
    if (!ev->time_ms)
        printf(" (no time: an outside publisher; received at the time shown)");
    putchar('\n');
}

static int run_tail(cli *o, char **args)
{
    const char *ns = args[0];
    check_ns(ns);
    set_channel(o, ns);
    redisContext *pc = connect_or_die(o);
    unsigned parts = partitions_of(pc, o, ns);
    redisFree(pc);
    if (parts > 1)
        die(EXIT_USAGE, "namespace %s has %u partitions, each a namespace with its own channel: tail %s#0 to %s#%u", ns,
            parts, ns, ns, parts - 1);
    redisContext *sub = subscribe_or_die(o);
    fprintf(stderr, "synccache-cli: listening on %s (Ctrl-C stops)\n", o->channel);
    long lines = 0;
    int64_t deadline = o->seconds > 0 ? mono_ms() + (int64_t)(o->seconds * 1000) : 0;
    while (!g_stop && (o->count == 0 || lines < o->count)) {
        int64_t now = mono_ms();
        if (deadline && now >= deadline)
            break;
        int wait = deadline ? (int)(deadline - now) : -1;
        redisReply *m = NULL;
        int got = next_reply(sub, wait, &m);
        if (got < 0)
            die(EXIT_REDIS, "Redis at %s: subscription lost: %s", o->addr, sub->errstr);
        if (got == 0)
            continue;
        const redisReply *payload = message_payload(m);
        if (payload) {
            sc__event ev;
            sc_status s = sc__event_decode(payload->str, payload->len, 0, &ev);
            if (s != SC_OK) {
                print_utc_ms(stdout, realtime_ms());
                printf(" malformed  %-7s %zu bytes: ", encoding_of(payload->str, payload->len), payload->len);
                print_quoted(stdout, payload->str, payload->len, 64);
                printf(" (%s)\n", sc_strerror(s));
                lines++;
            } else {
                int shown = (o->all_ns || !ev.has_ns || strcmp(ev.ns, ns) == 0) &&
                            (o->heartbeats || ev.action != SC__ACT_HEARTBEAT);
                if (shown) {
                    print_event_line(&ev, encoding_of(payload->str, payload->len));
                    lines++;
                }
                sc__event_free(&ev);
            }
        }
        freeReplyObject(m);
    }
    redisFree(sub);
    return 0;
}

/* --------------------------------------------------------------- get -- */

static sc__remote *remote_or_die(const cli *o, const char *ns)
{
    sc__remote_config rc = {
        .host = o->host,
        .port = o->port,
        .unix_socket = o->sock,
        .username = o->user,
        .password = o->pass,
        .db = o->db,
        .timeout_ms = o->timeout_ms,
        .pool_size = 1,
        .ns = ns,
        .channel = o->channel,
        .wire_format = SC_WIRE_JSON,
        .log_len = 0,
    };
    sc__remote *r = NULL;
    char err[512];
    if (sc__remote_open(&rc, &r, err, sizeof err) != SC_OK)
        die(EXIT_REDIS, "Redis at %s: %s", o->addr, err);
    return r;
}

static int run_get(cli *o, char **args)
{
    const char *key = args[1];
    check_ns(args[0]);
    check_key(key);
    /* The plain connection proves the address and the login with clear
     * words before the library's read script runs. */
    redisContext *c = connect_or_die(o);
    char ns[300];
    key_namespace(ns, sizeof ns, args[0], partitions_of(c, o, args[0]), key);
    set_channel(o, ns);
    sc__remote *r = remote_or_die(o, ns);
    sc__remote_item item;
    char err[512];
    sc_status s = sc__remote_get(r, key, strlen(key), &item, err, sizeof err);
    sc__remote_close(r);
    if (s == SC_OK) {
        if (o->raw) {
            fwrite(item.data, 1, item.len, stdout);
        } else {
            printf("value    ");
            print_quoted(stdout, item.data, item.len, 4096);
            printf("\nsize     %zu bytes\nversion  %" PRIu64 "\n", item.len, item.version);
            if (item.pttl_ms >= 0)
                printf("ttl      %" PRId64 " ms\n", item.pttl_ms);
            else
                printf("ttl      none\n");
        }
        free(item.data);
        redisFree(c);
        return 0;
    }
    if (s != SC_NOT_FOUND)
        die(EXIT_REDIS, "Redis at %s: %s", o->addr, err);
    /* Say why when it is one of these two (the library treats every reason
     * alike; a tag invalidation, a value past its fresh time or an
     * sc_tag_deleted value also read as "not found", at any version). */
    redisReply *h = command_or_die(c, o, "HMGET {%s}:k:%b value version empty", ns, key, strlen(key));
    redisReply *f = command_or_die(c, o, "HGET {%s}:meta floor", ns);
    const redisReply *val = h->element[0], *ver = h->element[1], *empty = h->element[2];
    unsigned long long v = ver->type == REDIS_REPLY_STRING ? strtoull(ver->str, NULL, 10) : 0;
    unsigned long long fl = f->type == REDIS_REPLY_STRING ? strtoull(f->str, NULL, 10) : 0;
    if (ver->type == REDIS_REPLY_STRING && val->type != REDIS_REPLY_STRING && empty->type == REDIS_REPLY_STRING) {
        printf("not found (a \"not found\" sc_fetch loaded and cached, version ");
        print_token(stdout, ver->str, ver->len);
        printf(")\n");
    } else if (ver->type == REDIS_REPLY_STRING && val->type != REDIS_REPLY_STRING) {
        printf("not found (deleted: a tombstone holds version ");
        print_token(stdout, ver->str, ver->len);
        printf(")\n");
    } else if (ver->type == REDIS_REPLY_STRING && f->type == REDIS_REPLY_STRING && v < fl) {
        printf("not found (cleared: version ");
        print_token(stdout, ver->str, ver->len);
        printf(" is below the clear floor ");
        print_token(stdout, f->str, f->len);
        printf(")\n");
    } else {
        printf("not found\n");
    }
    freeReplyObject(h);
    freeReplyObject(f);
    redisFree(c);
    return EXIT_NOT_FOUND;
}

/* -------------------------------------------------------- invalidate -- */

static int run_invalidate(cli *o, char **args)
{
    const char *key = args[1];
    check_ns(args[0]);
    check_key(key);
    redisContext *c = connect_or_die(o);
    char ns[300];
    key_namespace(ns, sizeof ns, args[0], partitions_of(c, o, args[0]), key);
    set_channel(o, ns);
    /* What any outside service may publish: no version, so pods order it
     * after everything they applied and only ever remove. */
    cJSON *j = cJSON_CreateObject();
    if (!j || !cJSON_AddStringToObject(j, "action", "invalidate") || !cJSON_AddStringToObject(j, "ns", ns) ||
        !cJSON_AddStringToObject(j, "key", key) || !cJSON_AddStringToObject(j, "sender", CLI_SENDER))
        die(EXIT_REDIS, "out of memory");
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text)
        die(EXIT_REDIS, "out of memory");
    redisReply *r = command_or_die(c, o, "PUBLISH %s %s", o->channel, text);
    printf("published %s on %s: %lld subscriber%s received it\n", text, o->channel, r->integer,
           r->integer == 1 ? "" : "s");
    printf("(pods drop their local copy; the value in Redis is unchanged)\n");
    freeReplyObject(r);
    cJSON_free(text);
    redisFree(c);
    return 0;
}

/* ---------------------------------------------------- delete and clear -- */

/* The most entries one of the namespace's event logs holds (each
 * partition has its own). Every write trims the log to its pod's
 * event_log_len, which pods of the namespace may have raised: the tool does
 * not know theirs, so its writes keep at least what the logs hold now, and
 * room for what pods add meanwhile. */
static size_t longest_log(redisContext *c, const cli *o, const char *ns, unsigned parts)
{
    long long most = 0;
    for (unsigned p = 0; p < parts; p++) {
        redisReply *r =
            parts > 1 ? command_or_die(c, o, "XLEN {%s#%u}:log", ns, p) : command_or_die(c, o, "XLEN {%s}:log", ns);
        if (r->type == REDIS_REPLY_INTEGER && r->integer > most)
            most = r->integer;
        freeReplyObject(r);
    }
    return (size_t)most;
}

static sc_cache *open_or_die(const cli *o, const char *ns, unsigned parts, size_t log_len)
{
    sc_options opt;
    sc_options_init(&opt);
    opt.pod_id = CLI_SENDER;
    opt.ns = ns;
    opt.channel = o->channel_opt;
    /* Every pod of a namespace must use its partition count. */
    opt.partitions = parts;
    opt.redis_host = o->host;
    opt.redis_port = o->port;
    opt.redis_unix_socket = o->sock;
    opt.redis_username = o->user;
    opt.redis_password = o->pass;
    opt.redis_db = o->db;
    opt.redis_timeout_ms = o->timeout_ms;
    opt.redis_pool_size = 1;
    opt.local_max_entries = 16;
    /* Every key check_key accepts: pods may raise max_key_bytes that far. */
    opt.max_key_bytes = 65535;
    opt.role = SC_ROLE_WRITER;
    /* Never shorter than the log is (longest_log), plus the default's room. */
    opt.event_log_len += log_len;
    sc_cache *c = NULL;
    sc_status s = sc_open(&opt, &c);
    if (s != SC_OK)
        die(s == SC_ERR_INVALID ? EXIT_USAGE : EXIT_REDIS, "cannot open namespace %s on %s: %s: %s", ns, o->addr,
            sc_strerror(s), sc_errmsg(NULL));
    return c;
}

static int run_delete(cli *o, char **args)
{
    const char *ns = args[0], *key = args[1];
    check_ns(ns);
    check_key(key);
    set_channel(o, ns);
    redisContext *rc = connect_or_die(o);
    unsigned parts = partitions_of(rc, o, ns);
    size_t log_len = longest_log(rc, o, ns, parts);
    redisFree(rc);
    sc_cache *c = open_or_die(o, ns, parts, log_len);
    sc_status s = sc_delete(c, key);
    if (s != SC_OK)
        die(EXIT_REDIS, "delete failed: %s: %s", sc_strerror(s), sc_errmsg(c));
    uint64_t version = 0;
    printf("deleted ");
    print_quoted(stdout, key, strlen(key), 120);
    if (sc_version_of(c, key, &version) == SC_OK)
        printf(" in %s (version %" PRIu64 "; pods drop their copies)\n", ns, version);
    else
        printf(" in %s\n", ns);
    sc_close(c);
    return 0;
}

static int run_clear(cli *o, char **args)
{
    const char *ns = args[0];
    check_ns(ns);
    set_channel(o, ns);
    redisContext *rc = connect_or_die(o);
    unsigned parts = partitions_of(rc, o, ns);
    sc_cache *c = open_or_die(o, ns, parts, longest_log(rc, o, ns, parts));
    sc_status s = sc_clear(c);
    if (s != SC_OK)
        die(EXIT_REDIS, "clear failed: %s: %s", sc_strerror(s), sc_errmsg(c));
    sc_close(c);
    if (parts > 1) {
        printf("cleared namespace %s (all %u partitions; pods drop their local tiers)\n", ns, parts);
        redisFree(rc);
        return 0;
    }
    redisReply *r = command_or_die(rc, o, "HGET {%s}:meta floor", ns);
    printf("cleared namespace %s (clear floor ", ns);
    if (r->type == REDIS_REPLY_STRING)
        print_token(stdout, r->str, r->len);
    else
        putchar('?');
    printf("; pods drop their local tiers)\n");
    freeReplyObject(r);
    redisFree(rc);
    return 0;
}

/* -------------------------------------------------------------- table -- */

static const command commands[] = {
    {"stats", 1, "NS", "counter, epoch, clear floor, event log, live pods",
     "Shows the namespace as Redis holds it: the counter (the last version\n"
     "handed out), the epoch, the clear floor, the event log's length and its\n"
     "first and last entry (how far back a reconnecting pod can catch up), and\n"
     "the live pods, seen through the heartbeats they send on the channel\n"
     "(sender = pod id, inst = the process's instance id).\n"
     "\n"
     "options:\n"
     "  --seconds S   listen for heartbeats this long (default 1)",
     run_stats},
    {"tail", 1, "NS", "print the namespace's events as they arrive",
     "Subscribes to the namespace's channel and prints each event on one line,\n"
     "decoded from either encoding (msgpack or JSON): time (the event's Redis\n"
     "time; the arrival time for outside publishers), action, encoding, ns, key,\n"
     "version, sender, inst, ttl, and the value's size and first bytes.\n"
     "Undecodable messages are printed as such. Ctrl-C stops.\n"
     "\n"
     "options:\n"
     "  --heartbeats  show heartbeats too\n"
     "  --all         show events of every namespace on the channel\n"
     "  --count N     stop after N lines\n"
     "  --seconds S   stop after S seconds",
     run_tail},
    {"get", 2, "NS KEY", "a key's value and version, as the library sees it",
     "Reads the key with the library's own read script: a tombstone (a delete)\n"
     "or a version below the clear floor is \"not found\", as for every pod; the\n"
     "output says which. Prints the value (quoted, escaped), its size, version\n"
     "and remaining TTL. Exit status 1 when not found.\n"
     "\n"
     "options:\n"
     "  --raw         print only the value's bytes",
     run_get},
    {"invalidate", 2, "NS KEY", "publish an invalidate (pods drop their copy)",
     "Publishes {\"action\":\"invalidate\",\"ns\":NS,\"key\":KEY,\"sender\":\"synccache-cli\"}\n"
     "on the channel, as any outside service may. It carries no version: pods\n"
     "drop their local copy and read Redis on the next get. The value in Redis\n"
     "is not touched (use delete for that).",
     run_invalidate},
    {"delete", 2, "NS KEY", "delete a key (version, tombstone, event)",
     "Deletes the key through the library (it opens the namespace as a writer\n"
     "named synccache-cli and calls sc_delete): the key gets a new version, a\n"
     "tombstone, an event log entry and a delete event, so every pod drops it\n"
     "and compare-and-set snapshots see the change.",
     run_delete},
    {"clear", 1, "NS", "clear a namespace (floor, new epoch, event)",
     "Clears the namespace through the library (sc_clear as a writer named\n"
     "synccache-cli): a new clear floor makes every key absent at once, a new\n"
     "epoch and a clear event make every pod drop its local tier, and the keys\n"
     "are then unlinked in batches. Only this namespace's keys: never FLUSHDB.",
     run_clear},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_overall_help(FILE *f)
{
    char list[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char left[40];
        snprintf(left, sizeof left, "%s %s", commands[i].name, commands[i].args);
        int n = snprintf(list + used, sizeof list - used, "  %-19s %s\n", left, commands[i].summary);
        if (n > 0 && (size_t)n < sizeof list - used)
            used += (size_t)n;
    }
    fprintf(f, overall_help, list);
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    cli o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.port = 6379;
    o.timeout_ms = 2000;
    o.pass = getenv("SYNCCACHE_REDIS_PASSWORD");
    if (o.pass && !*o.pass)
        o.pass = NULL;

    /* "-h" alone is a request for help, not a host without a value. */
    if (argc == 2 && strcmp(argv[1], "-h") == 0) {
        print_overall_help(stdout);
        return 0;
    }
    enum { O_USER = 256, O_PASS, O_DB, O_CHANNEL, O_TIMEOUT, O_HELP, O_RAW, O_COUNT, O_SECONDS, O_HB, O_ALL };
    static const struct option opts[] = {
        {"host", 1, 0, 'h'},          {"port", 1, 0, 'p'},          {"socket", 1, 0, 's'},
        {"user", 1, 0, O_USER},       {"pass", 1, 0, O_PASS},       {"db", 1, 0, O_DB},
        {"channel", 1, 0, O_CHANNEL}, {"timeout", 1, 0, O_TIMEOUT}, {"help", 0, 0, O_HELP},
        {"raw", 0, 0, O_RAW},         {"count", 1, 0, O_COUNT},     {"seconds", 1, 0, O_SECONDS},
        {"heartbeats", 0, 0, O_HB},   {"all", 0, 0, O_ALL},         {0, 0, 0, 0}};
    int help = 0, opt;
    long long v;
    while ((opt = getopt_long(argc, argv, "h:p:s:", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            o.host = optarg;
            break;
        case 'p':
            if (parse_int(optarg, 1, 65535, &v))
                die(EXIT_USAGE, "bad port %s (1..65535)", optarg);
            o.port = (int)v;
            break;
        case 's':
            o.sock = optarg;
            break;
        case O_USER:
            o.user = optarg;
            break;
        case O_PASS:
            o.pass = optarg;
            break;
        case O_DB:
            if (parse_int(optarg, 0, 1 << 20, &v))
                die(EXIT_USAGE, "bad database number %s", optarg);
            o.db = (int)v;
            break;
        case O_CHANNEL:
            /* What a pod's channel option may be: anything else reaches no
             * pod (and would not fit o.channel). */
            if (!*optarg || strlen(optarg) > 256)
                die(EXIT_USAGE, "bad --channel: a channel is 1 to 256 bytes");
            o.channel_opt = optarg;
            break;
        case O_TIMEOUT:
            /* The library's bound (redis_timeout_ms), which delete and
             * clear open it with. */
            if (parse_int(optarg, 1, 600000, &v))
                die(EXIT_USAGE, "bad timeout %s (1..600000 ms)", optarg);
            o.timeout_ms = (unsigned)v;
            break;
        case O_HELP:
            help = 1;
            break;
        case O_RAW:
            o.raw = 1;
            break;
        case O_COUNT:
            if (parse_int(optarg, 1, 1000000000, &v))
                die(EXIT_USAGE, "bad count %s", optarg);
            o.count = (long)v;
            break;
        case O_SECONDS: {
            char *end = NULL;
            o.seconds = strtod(optarg, &end);
            if (end == optarg || *end || !(o.seconds > 0 && o.seconds <= 86400 * 365))
                die(EXIT_USAGE, "bad --seconds %s", optarg);
            break;
        }
        case O_HB:
            o.heartbeats = 1;
            break;
        case O_ALL:
            o.all_ns = 1;
            break;
        default:
            fprintf(stderr, "synccache-cli: see synccache-cli --help\n");
            return EXIT_USAGE;
        }
    }
    char **rest = argv + optind;
    int nrest = argc - optind;
    if (nrest > 0 && strcmp(rest[0], "help") == 0) {
        help = 1;
        rest++;
        nrest--;
    }
    if (nrest == 0) {
        print_overall_help(help ? stdout : stderr);
        return help ? 0 : EXIT_USAGE;
    }
    const command *cmd = find_command(rest[0]);
    if (!cmd) {
        fprintf(stderr, "synccache-cli: unknown command %s; commands: stats, tail, get, invalidate, delete, clear\n",
                rest[0]);
        return EXIT_USAGE;
    }
    if (help) {
        print_command_help(stdout, cmd);
        return 0;
    }
    if (nrest - 1 != cmd->nargs) {
        fprintf(stderr, "synccache-cli: %s takes %s\n", cmd->name, cmd->args);
        print_command_help(stderr, cmd);
        return EXIT_USAGE;
    }
    if (o.user && !o.pass)
        die(EXIT_USAGE, "--user needs a password (--pass or $SYNCCACHE_REDIS_PASSWORD)");
    if (o.sock)
        snprintf(o.addr, sizeof o.addr, "%s", o.sock);
    else
        snprintf(o.addr, sizeof o.addr, "%s:%d", o.host, o.port);

    /* Ctrl-C ends tail (and a stats listening window) cleanly; a write to a
     * closed pipe (tail | head) ends the process quietly. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    return cmd->run(&o, rest + 1);
}
