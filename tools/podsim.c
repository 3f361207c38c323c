/* podsim: the project's demo and soak tool. The parent parses the options,
 * starts a private redis-server (unless --redis names one), forks one process
 * per pod before any cache exists (the library runs threads, and threads do
 * not survive fork), then drives the run: it tells the pods when to start and
 * stop, injects the requested faults on schedule, gathers the per-second
 * records the pods send through pipes into a live terminal view, and at the
 * end has every pod quiesce and check its local tier against Redis. The
 * exit status is non-zero when any pod still holds a stale entry.
 */
#include "podsim.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_server.h"

typedef struct child {
    pid_t pid;
    int ctrl_fd;               /* parent -> pod commands */
    int report_fd;             /* pod -> parent records; -1 once closed */
    size_t have;               /* bytes of a partial record in buf */
    ps_record buf;
    ps_record last;            /* the latest PS_REC_SECOND */
    int ready, prefilled, stopped, failed;
} child;

typedef struct sim {
    ps_config cfg;
    sc_test_redis redis;
    child kids[PS_MAX_PODS];
    ps_run run;
    uint64_t (*sec_hist)[PS_HIST_BUCKETS]; /* merged delays per second */
    uint64_t t0;               /* workload start, monotonic µs */
    int live;                  /* draw the ANSI view */
    char report_buf[4096];     /* the default --report path */
    int drawn_lines;
} sim;

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: podsim [options]\n"
            "  --pods N               pods (processes), default 4\n"
            "  --readers N            how many of them are readers, default 1\n"
            "  --keys N               key space, default 10000\n"
            "  --zipf S               key skew, default 0.99 (0 = uniform)\n"
            "  --write-ratio F        share of a writer's ops that are sets, default 0.05\n"
            "  --value-min B          smallest value in bytes, default 32 (at least 24)\n"
            "  --value-max B          largest value in bytes, default 512\n"
            "  --duration SEC         workload length, default 20\n"
            "  --policy lru|lfu       local tier policy, default lfu\n"
            "  --disconnect bypass|flush|stale  disconnect policy, default bypass\n"
            "  --tracking on|off      server-assisted invalidation (redis_tracking), default on\n"
            "  --partitions N         partitions of the namespace (1..256), default 1\n"
            "  --local-size N         local entries per pod, default 5000\n"
            "  --rate OPS             ops/s per pod, default 2000 (0 = as fast as possible)\n"
            "  --verify-ratio F       share of reads checked against Redis, default 0.02\n"
            "  --report FILE          HTML report, default podsim-report.html next to\n"
            "                         the podsim binary (the build folder), else in $TMPDIR\n"
            "  --log FILE             append every pod's library log (info level) to FILE\n"
            "  --seed N               workload seed, default 1\n"
            "  --no-prefill           start with an empty Redis instead of writing every key first\n"
            "  --quiet                one line per second instead of the live view\n"
            "  --redis HOST:PORT      use this Redis instead of a private one\n"
            "  --fault-kill-sub SEC   every SEC s: CLIENT KILL TYPE pubsub\n"
            "  --fault-restart-redis AT  at second AT restart the private Redis (data lost)\n"
            "  --fault-outage-redis AT:MS at second AT stop the private Redis (SHUTDOWN SAVE: data kept)\n"
            "                         and start it again MS ms later\n"
            "  --fault-pause-redis AT:MS at second AT: CLIENT PAUSE MS ALL\n"
            "  --metrics-port N       pod-i serves its Prometheus metrics (sc_metrics_text) on\n"
            "                         http://127.0.0.1:N+i-1/metrics while it runs\n"
            "  --write-behind DB_FILE writers use sc_set_behind; every pod saves the queue into this\n"
            "                         SQLite file; the end check compares it with Redis for every key\n"

            "  --workload fetch       cache-aside loading from SQLite instead (podsim --workload fetch --help)\n");
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, ps_config *c)
{
    enum {
        O_PODS = 256, O_READERS, O_KEYS, O_ZIPF, O_WRATIO, O_VMIN, O_VMAX, O_DUR, O_POLICY, O_LOCAL,
        O_RATE, O_VERIFY, O_REPORT, O_LOG, O_SEED, O_NOPREFILL, O_QUIET, O_REDIS, O_KILLSUB, O_RESTART, O_PAUSE, O_OUTAGE, O_HELP,
        O_DISCONNECT, O_METRICS, O_WB, O_TRACKING, O_PARTS
    };
    static const struct option opts[] = {
        {"pods", 1, 0, O_PODS}, {"readers", 1, 0, O_READERS}, {"keys", 1, 0, O_KEYS},
        {"zipf", 1, 0, O_ZIPF}, {"write-ratio", 1, 0, O_WRATIO}, {"value-min", 1, 0, O_VMIN},
        {"value-max", 1, 0, O_VMAX}, {"duration", 1, 0, O_DUR}, {"policy", 1, 0, O_POLICY},
        {"local-size", 1, 0, O_LOCAL}, {"rate", 1, 0, O_RATE}, {"verify-ratio", 1, 0, O_VERIFY},
        {"report", 1, 0, O_REPORT}, {"log", 1, 0, O_LOG}, {"seed", 1, 0, O_SEED},
        {"no-prefill", 0, 0, O_NOPREFILL}, {"quiet", 0, 0, O_QUIET},
        {"redis", 1, 0, O_REDIS}, {"fault-kill-sub", 1, 0, O_KILLSUB},
        {"fault-restart-redis", 1, 0, O_RESTART}, {"fault-pause-redis", 1, 0, O_PAUSE}, {"fault-outage-redis", 1, 0, O_OUTAGE},
        {"help", 0, 0, O_HELP}, {"disconnect", 1, 0, O_DISCONNECT}, {"metrics-port", 1, 0, O_METRICS},
        {"write-behind", 1, 0, O_WB}, {"tracking", 1, 0, O_TRACKING}, {"partitions", 1, 0, O_PARTS},
        {0, 0, 0, 0}};

    memset(c, 0, sizeof *c);
    c->pods = 4;
    c->readers = 1;
    c->keys = 10000;
    c->zipf = 0.99;
    c->write_ratio = 0.05;
    c->value_min = 32;
    c->value_max = 512;
    c->duration_s = 20;
    c->policy = SC_LOCAL_LFU;
    c->disconnect = SC_DISCONNECT_BYPASS;
    c->tracking = 1;
    c->partitions = 1;
    c->local_size = 5000;
    c->rate = 2000;
    c->verify_ratio = 0.02;
    c->report_path = NULL; /* main: ps_default_report_path */
    c->seed = 1;
    c->restart_at_s = -1;
    c->pause_at_s = -1;
    c->outage_at_s = -1;
    c->quiesce_s = 10;
    c->private_redis = 1;
    c->prefill = 1;
    for (int i = 0; i < PS_MAX_PODS; i++)
        c->metrics_fd[i] = -1;

    int o;
    unsigned long long u;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case O_PODS: bad = parse_uint(optarg, PS_MAX_PODS, &u) || u < 1; c->pods = (int)u; break;
        case O_READERS: bad = parse_uint(optarg, PS_MAX_PODS, &u); c->readers = (int)u; break;
        case O_KEYS: bad = parse_uint(optarg, 10000000, &u) || u < 1; c->keys = (unsigned)u; break;
        case O_ZIPF: bad = parse_double(optarg, 0, 10, &c->zipf); break;
        case O_WRATIO: bad = parse_double(optarg, 0, 1, &c->write_ratio); break;
        case O_VMIN: bad = parse_uint(optarg, 1 << 24, &u); c->value_min = u; break;
        case O_VMAX: bad = parse_uint(optarg, 1 << 24, &u); c->value_max = u; break;
        case O_DUR: bad = parse_uint(optarg, 86400, &u) || u < 1; c->duration_s = (unsigned)u; break;
        case O_POLICY:
            if (strcmp(optarg, "lru") == 0)
                c->policy = SC_LOCAL_LRU;
            else if (strcmp(optarg, "lfu") == 0)
                c->policy = SC_LOCAL_LFU;
            else
                bad = 1;
            break;
        case O_DISCONNECT:
            if (strcmp(optarg, "bypass") == 0)
                c->disconnect = SC_DISCONNECT_BYPASS;
            else if (strcmp(optarg, "flush") == 0)
                c->disconnect = SC_DISCONNECT_FLUSH;
            else if (strcmp(optarg, "stale") == 0)
                c->disconnect = SC_DISCONNECT_STALE;
            else
                bad = 1;
            break;
        case O_TRACKING:
            if (strcmp(optarg, "on") == 0 || strcmp(optarg, "off") == 0)
                c->tracking = strcmp(optarg, "on") == 0;
            else
                bad = 1;
            break;
        case O_LOCAL: bad = parse_uint(optarg, 1u << 30, &u); c->local_size = u; break;
        case O_RATE: bad = parse_uint(optarg, 10000000, &u); c->rate = (unsigned)u; break;
        case O_VERIFY: bad = parse_double(optarg, 0, 1, &c->verify_ratio); break;
        case O_REPORT: c->report_path = optarg; break;
        case O_LOG: c->log_path = optarg; break;
        case O_SEED: bad = parse_uint(optarg, UINT64_MAX, &u); c->seed = u; break;
        case O_NOPREFILL: c->prefill = 0; break;
        case O_QUIET: c->quiet = 1; break;
        case O_REDIS: {
            const char *colon = strrchr(optarg, ':');
            bad = !colon || colon == optarg || (size_t)(colon - optarg) >= sizeof c->redis_host ||
                  parse_uint(colon + 1, 65535, &u) || u == 0;
            if (!bad) {
                memcpy(c->redis_host, optarg, (size_t)(colon - optarg));
                c->redis_host[colon - optarg] = '\0';
                c->redis_port = (int)u;
                c->private_redis = 0;
            }
            break;
        }
        case O_KILLSUB: bad = parse_uint(optarg, 86400, &u) || u < 1; c->kill_sub_every_s = (unsigned)u; break;
        case O_RESTART: bad = parse_uint(optarg, 86400, &u); c->restart_at_s = (int)u; break;
        case O_PAUSE: {
            char *colon = strchr(optarg, ':');
            unsigned long long ms = 0;
            bad = !colon;
            if (!bad) {
                *colon = '\0';
                bad = parse_uint(optarg, 86400, &u) || parse_uint(colon + 1, 3600000, &ms) || ms == 0;
                *colon = ':';
            }
            c->pause_at_s = (int)u;
            c->pause_ms = (unsigned)ms;
            break;
        }
        case O_OUTAGE: {
            char *colon = strchr(optarg, ':');
            unsigned long long ms = 0;
            bad = !colon;
            if (!bad) {
                *colon = '\0';
                bad = parse_uint(optarg, 86400, &u) || parse_uint(colon + 1, 3600000, &ms) || ms == 0;
                *colon = ':';
            }
            c->outage_at_s = (int)u;
            c->outage_ms = (unsigned)ms;
            break;
        }
        case O_METRICS: bad = parse_uint(optarg, 65535, &u) || u == 0; c->metrics_port = (int)u; break;
        case O_WB:
            c->write_behind_db = optarg;
            if (!ps_wb_available()) {
                fprintf(stderr, "podsim: --write-behind: podsim was built without SQLite (libsqlite3-dev)\n");
                return -1;
            }
            break;
        case O_PARTS: bad = parse_uint(optarg, 256, &u) || u == 0; c->partitions = (unsigned)u; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (bad) {
            fprintf(stderr, "podsim: bad value for --%s: %s\n", opts[o - O_PODS].name, optarg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "podsim: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (c->readers > c->pods) {
        fprintf(stderr, "podsim: --readers %d is more than --pods %d\n", c->readers, c->pods);
        return -1;
    }
    /* A value opens with "<16-digit µs>:pod-NN:"; smaller sizes would only
     * be rounded up, so say so instead. */
    if (c->value_min < 24 || c->value_max < c->value_min) {
        fprintf(stderr, "podsim: need 24 <= --value-min <= --value-max\n");
        return -1;
    }
    if (c->outage_at_s >= 0 && !c->private_redis) {
        fprintf(stderr, "podsim: --fault-outage-redis needs the private Redis (drop --redis)\n");
        return -1;
    }
    if (c->restart_at_s >= 0 && !c->private_redis) {
        fprintf(stderr, "podsim: --fault-restart-redis needs the private Redis (drop --redis)\n");
        return -1;
    }
    return 0;
}

/* ---- talking to the pods ---- */

static void send_cmd(child *k, char cmd)
{
    if (k->ctrl_fd >= 0 && write(k->ctrl_fd, &cmd, 1) != 1) {
        close(k->ctrl_fd);
        k->ctrl_fd = -1;
    }
}

static ps_second *second_slot(sim *s, uint32_t second)
{
    ps_run *run = &s->run;
    if (second == 0)
        return NULL;
    if (second > run->cap_seconds) {
        size_t cap = run->cap_seconds ? run->cap_seconds * 2 : 64;
        while (cap < second)
            cap *= 2;
        ps_second *ns = realloc(run->seconds, cap * sizeof *ns);
        uint64_t(*nh)[PS_HIST_BUCKETS] = realloc(s->sec_hist, cap * sizeof *nh);
        if (ns)
            run->seconds = ns;
        if (nh)
            s->sec_hist = nh;
        if (!ns || !nh)
            return NULL;
        memset(ns + run->cap_seconds, 0, (cap - run->cap_seconds) * sizeof *ns);
        memset(nh + run->cap_seconds, 0, (cap - run->cap_seconds) * sizeof *nh);
        for (size_t i = run->cap_seconds; i < cap; i++) {
            for (int p = 0; p < PS_MAX_PODS; p++)
                ns[i].pod_hit[p] = -1;
            ns[i].synced_pods = -1;
        }
        run->cap_seconds = cap;
    }
    if (second > run->nseconds)
        run->nseconds = second;
    return &run->seconds[second - 1];
}

static void absorb(sim *s, child *k, const ps_record *r)
{
    if (r->pod >= (uint32_t)s->cfg.pods)
        return;
    ps_pod_summary *ps = &s->run.pod[r->pod];
    switch (r->kind) {
    case PS_REC_READY: k->ready = 1; return;
    case PS_REC_PREFILLED:
        k->prefilled = 1;
        if (r->msg[0])
            fprintf(stderr, "podsim: prefill: %s\n", r->msg);
        return;
    case PS_REC_FAILED:
        k->failed = 1;
        fprintf(stderr, "podsim: pod-%u: %s\n", r->pod + 1, r->msg);
        return;
    case PS_REC_STOPPED: k->stopped = 1; break;
    case PS_REC_FINAL:
        ps->final_seen = 1;
        ps->final = *r;
        s->run.wb_flushed |= r->behind_flushed != 0;
        break;
    case PS_REC_SECOND: k->last = *r; break;
    default: return;
    }
    ps->ops += r->ops_delta;
    ps->gets += r->gets_delta;
    ps->sets += r->sets_delta;
    ps->errors += r->errors_delta;
    ps->local_hits += r->local_hits_delta;
    ps->local_misses += r->local_misses_delta;
    ps->remote_hits += r->remote_hits_delta;
    ps->applied += r->events_applied_delta;
    ps->verified += r->verified_delta;
    ps->stale_reads += r->stale_reads_delta;
    s->run.wb_saved += r->behind_saved_delta;
    ps->reconnects = r->reconnects;
    ps->gaps = r->gaps;
    ps->flushes = r->flushes;
    ps->heartbeat_misses = r->heartbeat_misses;
    ps->replayed = r->replayed;
    ps->synced = r->synced;
    ps->last_seq = r->last_seq;
    for (unsigned i = 0; i < PS_HIST_BUCKETS; i++)
        ps->hist[i] += r->hist[i];

    ps_second *sec = r->kind == PS_REC_SECOND ? second_slot(s, r->second) : NULL;
    if (!sec)
        return;
    sec->ops += r->ops_delta;
    sec->gets += r->gets_delta;
    sec->local_hits += r->local_hits_delta;
    sec->local_misses += r->local_misses_delta;
    sec->errors += r->errors_delta;
    sec->stale_reads += r->stale_reads_delta;
    sec->verified += r->verified_delta;
    sec->applied += r->events_applied_delta;
    if (r->sync_samples) {
        double synced = (double)(r->sync_samples - r->unsynced_samples) / (double)r->sync_samples;
        sec->synced_pods = (sec->pods_reported ? sec->synced_pods : 0) + synced;
        sec->pods_unsynced += r->unsynced_samples > 0;
        sec->pod_unsynced[r->pod] = r->unsynced_samples;
        sec->pods_reported++;
    }
    sec->pod_ops[r->pod] = r->ops_delta;
    sec->wb_saved += r->behind_saved_delta;
    if (r->behind_pending > sec->wb_pending)
        sec->wb_pending = r->behind_pending;
    uint64_t lookups = r->local_hits_delta + r->local_misses_delta;
    sec->pod_hit[r->pod] = lookups ? 100.0 * (double)r->local_hits_delta / (double)lookups : -1;
    for (unsigned i = 0; i < PS_HIST_BUCKETS; i++)
        s->sec_hist[r->second - 1][i] += r->hist[i];
}

/* Reads what the pods sent, waiting at most timeout_ms. */
static void pump(sim *s, int timeout_ms)
{
    struct pollfd pfd[PS_MAX_PODS];
    int map[PS_MAX_PODS], n = 0;
    for (int i = 0; i < s->cfg.pods; i++) {
        if (s->kids[i].report_fd >= 0) {
            pfd[n].fd = s->kids[i].report_fd;
            pfd[n].events = POLLIN;
            map[n++] = i;
        }
    }
    if (n == 0) {
        if (timeout_ms > 0)
            usleep((useconds_t)timeout_ms * 1000);
        return;
    }
    if (poll(pfd, (nfds_t)n, timeout_ms) <= 0)
        return;
    for (int j = 0; j < n; j++) {
        if (!(pfd[j].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        child *k = &s->kids[map[j]];
        ssize_t got = read(k->report_fd, (char *)&k->buf + k->have, sizeof k->buf - k->have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            close(k->report_fd);
            k->report_fd = -1;
            s->run.pod[map[j]].alive = 0;
            continue;
        }
        k->have += (size_t)got;
        if (k->have == sizeof k->buf) {
            k->have = 0;
            absorb(s, k, &k->buf);
        }
    }
}

static double elapsed_s(const sim *s)
{
    return s->t0 ? (double)(ps_now_mono_us() - s->t0) / 1e6 : 0;
}

/* ---- faults ---- */

static void add_fault_span(sim *s, double at_s, double dur_s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A fault that began at at_s (seconds into the workload) and lasted dur_s
 * (0: instantaneous). */
static void add_fault_span(sim *s, double at_s, double dur_s, const char *fmt, ...)
{
    ps_run *run = &s->run;
    if (run->nfaults == PS_MAX_FAULTS)
        return;
    ps_fault *f = &run->faults[run->nfaults++];
    f->at_s = at_s;
    f->dur_s = dur_s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->what, sizeof f->what, fmt, ap);
    va_end(ap);
    if (!s->live)
        printf("[%6.2f s] fault: %s\n", f->at_s, f->what);
}

static void redis_fault(sim *s, double dur_s, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void redis_fault(sim *s, double dur_s, const char *label, const char *fmt, ...)
{
    double at = elapsed_s(s);
    redisContext *c = ps_redis_connect(&s->cfg);
    if (!c) {
        add_fault_span(s, at, 0, "%s: cannot connect to Redis", label);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r)
        add_fault_span(s, at, 0, "%s: %s", label, c->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        add_fault_span(s, at, 0, "%s: %s", label, r->str);
    else if (r->type == REDIS_REPLY_INTEGER)
        add_fault_span(s, at, dur_s, "%s: %lld killed", label, r->integer);
    else
        add_fault_span(s, at, dur_s, "%s", label);
    if (r)
        freeReplyObject(r);
    redisFree(c);
}

typedef struct fault_plan {
    uint64_t next_kill_s;      /* 0: none pending */
    int restart_done, pause_done, outage_done;
} fault_plan;

static void run_faults(sim *s, fault_plan *fp)
{
    const ps_config *cfg = &s->cfg;
    double t = elapsed_s(s);
    if (fp->next_kill_s && t >= (double)fp->next_kill_s) {
        redis_fault(s, 0, "CLIENT KILL TYPE pubsub", "CLIENT KILL TYPE pubsub");
        fp->next_kill_s += cfg->kill_sub_every_s;
    }
    if (cfg->restart_at_s >= 0 && !fp->restart_done && t >= cfg->restart_at_s) {
        fp->restart_done = 1;
        double at = elapsed_s(s);
        uint64_t t1 = ps_now_mono_us();
        int rc = sc_test_redis_restart(&s->redis);
        uint64_t took = (ps_now_mono_us() - t1) / 1000;
        if (rc == 0)
            add_fault_span(s, at, (double)took / 1e3, "Redis killed and restarted, data lost (down %" PRIu64 " ms)",
                           took);
        else
            add_fault_span(s, at, (double)took / 1e3, "Redis killed; restart FAILED after %" PRIu64 " ms", took);
    }
    if (cfg->outage_at_s >= 0 && !fp->outage_done && t >= cfg->outage_at_s) {
        /* A short outage with the data kept: Redis saves and exits, stays
         * away outage_ms, and starts again from its snapshot. */
        fp->outage_done = 1;
        double at = elapsed_s(s);
        uint64_t t1 = ps_now_mono_us();
        redisContext *c = ps_redis_connect(cfg);
        if (c) {
            redisReply *r = redisCommand(c, "SHUTDOWN SAVE");
            if (r)
                freeReplyObject(r);
            redisFree(c);
        }
        sc_test_redis_kill(&s->redis); /* reaps it (already gone after the save) */
        uint64_t down_from = ps_now_mono_us();
        struct timespec ts = {(time_t)(cfg->outage_ms / 1000), (long)(cfg->outage_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        int rc = sc_test_redis_start_again(&s->redis);
        uint64_t took = (ps_now_mono_us() - down_from) / 1000, save = (down_from - t1) / 1000;
        if (rc == 0)
            add_fault_span(s, at, (double)(took + save) / 1e3,
                           "Redis stopped (saved in %" PRIu64 " ms) and back from its snapshot after %" PRIu64 " ms",
                           save, took);
        else
            add_fault_span(s, at, (double)took / 1e3, "Redis stopped; start FAILED after %" PRIu64 " ms", took);
    }
    if (cfg->pause_at_s >= 0 && !fp->pause_done && t >= cfg->pause_at_s) {
        fp->pause_done = 1;
        char label[64];
        snprintf(label, sizeof label, "CLIENT PAUSE %u ALL", cfg->pause_ms);
        redis_fault(s, cfg->pause_ms / 1e3, label, "CLIENT PAUSE %u ALL", cfg->pause_ms);
    }
}

/* ---- the live view ---- */

static void fmt_us(char *buf, size_t len, double us)
{
    if (us <= 0)
        snprintf(buf, len, "-");
    else if (us < 1000)
        snprintf(buf, len, "%.0fus", us);
    else if (us < 1e6)
        snprintf(buf, len, "%.1fms", us / 1e3);
    else
        snprintf(buf, len, "%.2fs", us / 1e6);
}

static void hist_of(const ps_record *r, uint64_t *h)
{
    for (unsigned i = 0; i < PS_HIST_BUCKETS; i++)
        h[i] = r->hist[i];
}

static void draw(sim *s, const char *phase)
{
    const ps_config *cfg = &s->cfg;
    uint64_t total_h[PS_HIST_BUCKETS] = {0}, h[PS_HIST_BUCKETS];
    uint64_t ops = 0, hits = 0, lookups = 0, remote = 0, applied = 0, stale = 0, errs = 0;
    uint64_t rec = 0, gaps = 0, flushes = 0, synced = 0;
    uint64_t wbq = 0, wbsaved = 0, wbfail = 0;
    double t = elapsed_s(s);

    for (int i = 0; i < cfg->pods; i++) {
        const ps_record *r = &s->kids[i].last;
        ops += r->ops_delta;
        hits += r->local_hits_delta;
        lookups += r->local_hits_delta + r->local_misses_delta;
        remote += r->remote_hits_delta;
        applied += r->events_applied_delta;
        errs += r->errors_delta;
        stale += s->run.pod[i].stale_reads;
        rec += r->reconnects;
        gaps += r->gaps;
        flushes += r->flushes;
        synced += r->synced;
        wbq = r->behind_pending > wbq ? r->behind_pending : wbq;
        wbsaved += r->behind_saved_delta;
        wbfail += r->behind_failures;
        for (unsigned b = 0; b < PS_HIST_BUCKETS; b++)
            total_h[b] += r->hist[b];
    }
    char p50[16], p99[16];
    fmt_us(p50, sizeof p50, ps_hist_quantile(total_h, 0.50));
    fmt_us(p99, sizeof p99, ps_hist_quantile(total_h, 0.99));
    char wb[96] = "";
    if (cfg->write_behind_db)
        snprintf(wb, sizeof wb, " wb_queue=%" PRIu64 " wb_saved/s=%" PRIu64 " wb_fail=%" PRIu64, wbq, wbsaved, wbfail);

    if (!s->live) {
        /* Per-second rates and this second's propagation quantiles, then
         * counts since the start (stale reads, reconnects, gaps, flushes). */
        printf("t=%5.1fs %-8s ops/s=%-7" PRIu64 " hit=%5.1f%% events/s=%-6" PRIu64 " prop_p50=%-7s prop_p99=%-7s"
               " err/s=%" PRIu64 " stale_reads_total=%" PRIu64 " synced=%" PRIu64 "/%d reconnects=%" PRIu64
               " gaps=%" PRIu64 " flushes=%" PRIu64 "%s\n",
               t, phase, ops, lookups ? 100.0 * (double)hits / (double)lookups : 0.0, applied, p50, p99, errs,
               stale, synced, cfg->pods, rec, gaps, flushes, wb);
        fflush(stdout);
        return;
    }

    /* The view fits an 80-column terminal: 79 characters at most per line.
     * Columns: pod, role | this second: ops/s, local hit %, Redis reads/s,
     * events applied/s, errors/s | this second's propagation delay p50,
     * p99 | since the start: stale reads; sync state now; reconnects /
     * gaps / flushes since the start. */
    printf("\033[H\033[J");
    printf("\033[1mpodsim\033[0m %s t=%.0f/%us redis %.28s:%d%s ns %.16s\n", phase, t, cfg->duration_s,
           cfg->redis_host, cfg->redis_port, cfg->private_redis ? " (private)" : "", cfg->ns);
    char rate[32];
    if (cfg->rate)
        snprintf(rate, sizeof rate, "%u ops/s per pod", cfg->rate);
    else
        snprintf(rate, sizeof rate, "unlimited rate");
    printf("%d pods (%d readers), %u keys zipf %.2f, %.0f%% writes, %s %zu, %s\n\n", cfg->pods, cfg->readers,
           cfg->keys, cfg->zipf, cfg->write_ratio * 100, cfg->policy == SC_LOCAL_LRU ? "LRU" : "LFU",
           cfg->local_size, rate);
    printf("%-13s %-30s %-13s %s\n", "", "--------- per second ---------", "-propagation-",
           "totals (sync: now)");
    printf("\033[4m%-6s %-6s %6s %5s %5s %5s %5s %6s %6s %5s %4s %9s\033[0m\n", "pod", "role", "ops/s", "hit%",
           "rem/s", "ev/s", "err/s", "p50", "p99", "stale", "sync", "rc/gp/fl");
    for (int i = 0; i < cfg->pods; i++) {
        const ps_record *r = &s->kids[i].last;
        const ps_pod_summary *ps = &s->run.pod[i];
        uint64_t lk = r->local_hits_delta + r->local_misses_delta;
        hist_of(r, h);
        char a[16], b[16], name[16], rgf[32];
        fmt_us(a, sizeof a, ps_hist_quantile(h, 0.50));
        fmt_us(b, sizeof b, ps_hist_quantile(h, 0.99));
        snprintf(name, sizeof name, "pod-%d", i + 1);
        snprintf(rgf, sizeof rgf, "%" PRIu64 "/%" PRIu64 "/%" PRIu64, r->reconnects, r->gaps, r->flushes);
        const char *sync = !ps->alive ? "gone" : r->synced ? " yes" : "\033[31m  no\033[0m";
        printf("%-6s %-6s %6" PRIu64 " %5.1f %5" PRIu64 " %5" PRIu64 " %5" PRIu64 " %6s %6s %5" PRIu64 " %4s %9s\n",
               name, ps->role_reader ? "reader" : "writer", r->ops_delta,
               lk ? 100.0 * (double)r->local_hits_delta / (double)lk : 0.0, r->remote_hits_delta,
               r->events_applied_delta, r->errors_delta, a, b, ps->stale_reads, sync, rgf);
    }
    char rgf[32], sy[16];
    snprintf(rgf, sizeof rgf, "%" PRIu64 "/%" PRIu64 "/%" PRIu64, rec, gaps, flushes);
    snprintf(sy, sizeof sy, "%" PRIu64 "/%d", synced, cfg->pods);
    printf("\033[1m%-6s %-6s %6" PRIu64 " %5.1f %5" PRIu64 " %5" PRIu64 " %5" PRIu64 " %6s %6s %5" PRIu64
           " %4s %9s\033[0m\n",
           "total", "", ops, lookups ? 100.0 * (double)hits / (double)lookups : 0.0, remote, applied, errs, p50, p99,
           stale, sy, rgf);
    if (cfg->write_behind_db)
        printf("\nwrite-behind: queue %" PRIu64 " writes, saved %" PRIu64 "/s, failed saves %" PRIu64 "\n", wbq,
               wbsaved, wbfail);
    printf("\nfaults:%s\n", s->run.nfaults ? "" : " none");
    size_t from = s->run.nfaults > 6 ? s->run.nfaults - 6 : 0;
    for (size_t i = from; i < s->run.nfaults; i++)
        printf("  [%6.2f s] %.66s\n", s->run.faults[i].at_s, s->run.faults[i].what);
    printf("\nhit%%: local hits / lookups; rem/s: gets answered by Redis; ev/s: events\n"
           "applied; p50/p99: propagation delay (a write to its apply on another pod),\n"
           "not operation latency; stale: sampled reads older than Redis, total;\n"
           "sync: synced now; rc/gp/fl: reconnects/gaps/flushes, total. Ctrl-C stops.\n");
    fflush(stdout);
}

/* ---- the run ---- */

static int all(const sim *s, int (*pred)(const child *))
{
    for (int i = 0; i < s->cfg.pods; i++)
        if (s->kids[i].report_fd >= 0 && !pred(&s->kids[i]))
            return 0;
    return 1;
}

static int is_ready(const child *k) { return k->ready || k->failed; }
static int is_prefilled(const child *k) { return k->prefilled; }
static int is_stopped(const child *k) { return k->stopped; }
static int never(const child *k) { (void)k; return 0; }

/* Pumps until pred holds for every live pod, the deadline or a signal. */
static void wait_all(sim *s, int (*pred)(const child *), unsigned seconds)
{
    uint64_t deadline = ps_now_mono_us() + (uint64_t)seconds * 1000000;
    while (!all(s, pred) && !g_interrupted && ps_now_mono_us() < deadline)
        pump(s, 100);
}

static int spawn_pods(sim *s)
{
    for (int i = 0; i < s->cfg.pods; i++) {
        int ctrl[2], rep[2];
        if (pipe(ctrl) != 0 || pipe(rep) != 0) {
            perror("podsim: pipe");
            return -1;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("podsim: fork");
            return -1;
        }
        if (pid == 0) {
            /* Only this pod's own ends: a pod holding another's write end
             * would keep the parent from ever seeing that pod's EOF. */
            for (int j = 0; j < i; j++) {
                if (s->kids[j].ctrl_fd >= 0)
                    close(s->kids[j].ctrl_fd);
                if (s->kids[j].report_fd >= 0)
                    close(s->kids[j].report_fd);
            }
            close(ctrl[1]);
            close(rep[0]);
            ps_pod_main(&s->cfg, i, ctrl[0], rep[1]);
        }
        close(ctrl[0]);
        close(rep[1]);
        s->kids[i].pid = pid;
        s->kids[i].ctrl_fd = ctrl[1];
        s->kids[i].report_fd = rep[0];
        s->run.pod[i].alive = 1;
        s->run.pod[i].exit_status = -1;
        s->run.pod[i].role_reader = i >= s->cfg.pods - s->cfg.readers;
    }
    /* The pods serve the metrics sockets; the parent needs them no more. */
    for (int i = 0; i < PS_MAX_PODS; i++) {
        if (s->cfg.metrics_fd[i] >= 0) {
            close(s->cfg.metrics_fd[i]);
            s->cfg.metrics_fd[i] = -1;
        }
    }
    return 0;
}

static void reap_pods(sim *s, unsigned grace_s)
{
    uint64_t deadline = ps_now_mono_us() + (uint64_t)grace_s * 1000000;
    int left = 1;
    while (left) {
        left = 0;
        pump(s, 20);
        for (int i = 0; i < s->cfg.pods; i++) {
            child *k = &s->kids[i];
            if (k->pid <= 0)
                continue;
            int st;
            pid_t r = waitpid(k->pid, &st, WNOHANG);
            if (r == k->pid) {
                s->run.pod[i].exit_status = st;
                k->pid = 0;
            } else if (ps_now_mono_us() >= deadline) {
                kill(k->pid, SIGKILL);
                waitpid(k->pid, &st, 0);
                s->run.pod[i].exit_status = st;
                k->pid = 0;
            } else {
                left = 1;
            }
        }
    }
    /* Whatever is still buffered in the pipes. */
    for (int i = 0; i < s->cfg.pods; i++)
        while (s->kids[i].report_fd >= 0)
            pump(s, 100);
}

static void terminate_pods(sim *s)
{
    for (int i = 0; i < s->cfg.pods; i++)
        if (s->kids[i].pid > 0)
            kill(s->kids[i].pid, SIGTERM);
}

static void finish_seconds(sim *s)
{
    for (size_t i = 0; i < s->run.nseconds; i++) {
        ps_second *sec = &s->run.seconds[i];
        int any = 0;
        for (unsigned b = 0; b < PS_HIST_BUCKETS && !any; b++)
            any = s->sec_hist[i][b] != 0;
        sec->p50_us = any ? ps_hist_quantile(s->sec_hist[i], 0.50) : -1;
        sec->p99_us = any ? ps_hist_quantile(s->sec_hist[i], 0.99) : -1;
    }
}

static uint64_t read_seq(const sim *s)
{
    redisContext *c = ps_redis_connect(&s->cfg);
    if (!c)
        return 0;
    uint64_t seq = 0;
    if (ps_read_seq(c, &s->cfg, &seq) != 0)
        seq = 0;
    redisFree(c);
    return seq;
}

static int run(sim *s)
{
    ps_config *cfg = &s->cfg;
    if (spawn_pods(s) != 0) {
        terminate_pods(s);
        return -1;
    }
    /* Opening a cache waits for its subscription; generous for a busy box. */
    wait_all(s, is_ready, 30);
    for (int i = 0; i < cfg->pods; i++) {
        if (!s->kids[i].ready) {
            if (!s->kids[i].failed && !g_interrupted)
                fprintf(stderr, "podsim: pod-%d did not open its cache\n", i + 1);
            return -1;
        }
    }

    /* Pod 1 is a writer whenever there is one (readers come last). */
    if (cfg->prefill && cfg->readers < cfg->pods) {
        uint64_t t1 = ps_now_mono_us();
        send_cmd(&s->kids[0], PS_CMD_PREFILL);
        /* Only pod 1 takes part: the others count as done. */
        for (int i = 1; i < cfg->pods; i++)
            s->kids[i].prefilled = 1;
        wait_all(s, is_prefilled, 600);
        if (g_interrupted || !s->kids[0].prefilled)
            return -1;
        s->run.prefill_s = (double)(ps_now_mono_us() - t1) / 1e6;
        if (!s->live)
            printf("prefilled %u keys through pod-1 in %.2f s\n", cfg->keys, s->run.prefill_s);
    }

    fault_plan fp = {cfg->kill_sub_every_s, 0, 0, 0};
    s->t0 = ps_now_mono_us();
    for (int i = 0; i < cfg->pods; i++)
        send_cmd(&s->kids[i], PS_CMD_GO);

    /* The pods stop on their own after the duration; a pod stuck in a call
     * gets a few seconds more before the run goes on without it. */
    uint64_t give_up = s->t0 + (uint64_t)(cfg->duration_s + 10) * 1000000;
    uint64_t next_draw = s->t0 + 1000000;
    /* Records for second N arrive just after the pods' second N ends; drawing
     * 150 ms later shows every pod's second N side by side. */
    const uint64_t draw_lag = 150000;
    while (!g_interrupted && !all(s, is_stopped) && ps_now_mono_us() < give_up) {
        if (elapsed_s(s) < cfg->duration_s)
            run_faults(s, &fp);
        if (ps_now_mono_us() >= next_draw + draw_lag && elapsed_s(s) < cfg->duration_s) {
            draw(s, "running");
            next_draw += 1000000;
        }
        pump(s, 50);
    }
    s->run.elapsed_s = elapsed_s(s) < cfg->duration_s ? elapsed_s(s) : cfg->duration_s;
    if (g_interrupted)
        return 0;
    draw(s, "stopped");
    if (!s->live)
        printf("workload stopped after %.1f s; quiescing (up to %u s) and checking every pod's local tier\n",
               s->run.elapsed_s, cfg->quiesce_s);
    else
        printf("\nworkload stopped; quiescing (up to %u s) and checking every pod's local tier...\n", cfg->quiesce_s);
    fflush(stdout);
    for (int i = 0; i < cfg->pods; i++)
        send_cmd(&s->kids[i], PS_CMD_FINISH);
    /* The pods exit after their final record; the check reads every key. */
    wait_all(s, never, cfg->quiesce_s + 120);
    return 0;
}

int main(int argc, char **argv)
{
    static sim s;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--workload") == 0 && strcmp(argv[i + 1], "fetch") == 0)
            return ps_fetch_main(argc, argv); /* podsim_fetch.c */
    if (parse_args(argc, argv, &s.cfg) != 0)
        return 2;
    if (!s.cfg.report_path) {
        ps_default_report_path("podsim-report.html", s.report_buf, sizeof s.report_buf);
        s.cfg.report_path = s.report_buf;
    }
    ps_config *cfg = &s.cfg;
    s.run.cfg = cfg;
    s.live = !cfg->quiet && isatty(STDOUT_FILENO);
    for (int i = 0; i < PS_MAX_PODS; i++) {
        s.kids[i].ctrl_fd = -1;
        s.kids[i].report_fd = -1;
    }

    if (cfg->private_redis) {
        if (sc_test_redis_start(&s.redis, NULL) != 0)
            return 1;
        snprintf(cfg->redis_host, sizeof cfg->redis_host, "127.0.0.1");
        cfg->redis_port = s.redis.port;
        snprintf(cfg->ns, sizeof cfg->ns, "podsim");
    } else {
        /* A shared Redis may hold earlier runs: a fresh namespace keeps
         * their keys and sequence out of this one. */
        snprintf(cfg->ns, sizeof cfg->ns, "podsim-%ld-%d", (long)time(NULL), (int)getpid());
    }

    if (cfg->metrics_port) {
        char err[160];
        if (cfg->metrics_port + cfg->pods - 1 > 65535) {
            fprintf(stderr, "podsim: --metrics-port: ports %d..%d do not fit below 65536\n", cfg->metrics_port,
                    cfg->metrics_port + cfg->pods - 1);
            if (cfg->private_redis)
                sc_test_redis_stop(&s.redis);
            return 1;
        }
        for (int i = 0; i < cfg->pods; i++) {
            cfg->metrics_fd[i] = ps_metrics_listen(cfg->metrics_port + i, err, sizeof err);
            if (cfg->metrics_fd[i] < 0) {
                fprintf(stderr, "podsim: --metrics-port: %s\n", err);
                for (int k = 0; k < i; k++)
                    close(cfg->metrics_fd[k]);
                if (cfg->private_redis)
                    sc_test_redis_stop(&s.redis);
                return 1;
            }
        }
        printf("podsim: pod-N's metrics on http://127.0.0.1:%d+(N-1)/metrics (pod-1 at %d, pod-%d at %d)\n",
               cfg->metrics_port, cfg->metrics_port, cfg->pods, cfg->metrics_port + cfg->pods - 1);
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (!s.live)
        printf("podsim: %d pods (%d readers) on %s:%d%s ns %s, %u s, %s %zu entries, rate %u/s per pod\n",
               cfg->pods, cfg->readers, cfg->redis_host, cfg->redis_port, cfg->private_redis ? " (private)" : "",
               cfg->ns, cfg->duration_s, cfg->policy == SC_LOCAL_LRU ? "lru" : "lfu", cfg->local_size, cfg->rate);
    int rc = run(&s);
    if (rc != 0 || g_interrupted)
        terminate_pods(&s);
    reap_pods(&s, 5);
    s.run.interrupted = g_interrupted;
    s.run.ansi = isatty(STDOUT_FILENO);
    s.run.redis_seq = read_seq(&s);
    if (cfg->write_behind_db && rc == 0 && !g_interrupted)
        ps_wb_end_check(cfg, &s.run);
    if (cfg->private_redis)
        sc_test_redis_stop(&s.redis);
    if (rc != 0)
        return 1;

    finish_seconds(&s);
    ps_print_summary(&s.run);
    if (ps_write_report(&s.run, cfg->report_path) != 0)
        fprintf(stderr, "podsim: cannot write %s: %s\n", cfg->report_path, strerror(errno));
    else
        printf("report: %s\n", cfg->report_path);

    if (s.run.interrupted)
        return 130;
    int failed = 0;
    for (int i = 0; i < cfg->pods; i++) {
        const ps_pod_summary *p = &s.run.pod[i];
        if (!p->final_seen || p->final.end_stale || p->final.end_unreadable || !p->final.quiesced)
            failed = 1;
        if (p->exit_status != 0)
            failed = 1;
    }
    if (cfg->write_behind_db && (s.run.wb_mismatch || !s.run.wb_flushed))
        failed = 1;
    return failed;
}
