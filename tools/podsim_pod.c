/* One simulated pod: a forked process with its own sc_cache. It runs a
 * zipf-skewed read/write workload, measures propagation delay through the
 * library's event hook (every value starts with its write time), checks a
 * sample of reads against Redis with its own hiredis connection, and reports
 * to the parent once a second through a pipe. At the end it waits until it
 * has caught up with Redis' sequence and compares every local entry it can
 * reach with the version Redis holds.
 */
#include "podsim.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct pod {
    const ps_config *cfg;
    int index;
    int reader;
    char id[32];
    sc_cache *cache;
    redisContext *raw;         /* the verifier's own view of Redis */
    uint64_t raw_retry_us;     /* no reconnect attempt before this */
    int ctrl_fd, report_fd;
    FILE *log;
    double *cdf;               /* zipf: cdf[i] = P(rank <= i) */
    uint64_t rng;
    char *valbuf;
    /* Written by the sync thread (event hook), drained by the main thread. */
    _Atomic uint32_t hist[PS_HIST_BUCKETS];
    /* This interval's counters, main thread only. */
    uint64_t ops, gets, sets, errors, verified, stale_reads;
    /* The sync state, sampled every PS_SYNC_SAMPLE_MS by a thread of its
     * own (the main thread may sit in a Redis call for a whole outage). */
    _Atomic uint32_t sync_samples, unsynced_samples;
    atomic_int sampler_stop;
    pthread_t sampler;
    int sampler_running;
    sc_stats prev;             /* library counters at the last report */
    void *wb_db;               /* --write-behind: this pod's SQLite connection */
} pod;

static volatile sig_atomic_t g_term;

static void on_term(int sig)
{
    (void)sig;
    g_term = 1;
}

static uint64_t rng_next(pod *p)
{
    /* xorshift64*: fast, and one stream per pod is all the workload needs. */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * 2685821657736338717ull;
}

static double rng_unit(pod *p)
{
    return (double)(rng_next(p) >> 11) * (1.0 / 9007199254740992.0);
}

static int build_zipf(pod *p)
{
    unsigned n = p->cfg->keys;
    p->cdf = malloc(n * sizeof *p->cdf);
    if (!p->cdf)
        return -1;
    double sum = 0;
    for (unsigned i = 0; i < n; i++) {
        sum += p->cfg->zipf > 0 ? 1.0 / pow(i + 1.0, p->cfg->zipf) : 1.0;
        p->cdf[i] = sum;
    }
    for (unsigned i = 0; i < n; i++)
        p->cdf[i] /= sum;
    return 0;
}

static unsigned pick_rank(pod *p)
{
    double u = rng_unit(p);
    unsigned lo = 0, hi = p->cfg->keys - 1;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (p->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void key_name(char *buf, size_t len, unsigned rank)
{
    snprintf(buf, len, "k%u", rank);
}

/* Runs on the library's sync thread: only atomics, no cache calls. */
static void on_event(const sc_event_info *ev, void *ud)
{
    pod *p = ud;
    if (!ev->applied || !ev->value || strcmp(ev->action, "set") != 0)
        return;
    /* The value starts with its write time in decimal µs; the library puts
     * a NUL after the data, so strtoull cannot run past it. */
    const char *data = sc_value_data(ev->value);
    char *end = NULL;
    uint64_t written = strtoull(data, &end, 10);
    if (end == data)
        return;
    uint64_t now = ps_now_real_us();
    uint64_t delay = now > written ? now - written : 0;
    atomic_fetch_add_explicit(&p->hist[ps_hist_bucket(delay)], 1, memory_order_relaxed);
}

static void on_log(sc_log_level level, const char *msg, void *ud)
{
    pod *p = ud;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, p->id, names[level <= SC_LOG_DEBUG ? level : SC_LOG_DEBUG], msg);
    /* One write on an O_APPEND stream keeps the pods' lines whole. */
    if (n > 0)
        (void)!write(fileno(p->log), line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void send_record(pod *p, ps_record *r)
{
    r->pod = (uint32_t)p->index;
    const char *b = (const char *)r;
    size_t left = sizeof *r;
    while (left) {
        ssize_t n = write(p->report_fd, b, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the parent is gone; nothing left to report to */
        b += n;
        left -= (size_t)n;
    }
}

static void send_failure(pod *p, const char *fmt, const char *detail)
{
    ps_record r;
    memset(&r, 0, sizeof r);
    r.kind = PS_REC_FAILED;
    snprintf(r.msg, sizeof r.msg, fmt, detail);
    send_record(p, &r);
}

/* Fills r with this interval's counters and starts the next interval. */
static void take_interval(pod *p, ps_record *r, ps_record_kind kind)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    sc_stats st;
    sc_stats_get(p->cache, &st);
    r->ops_delta = p->ops;
    r->gets_delta = p->gets;
    r->sets_delta = p->sets;
    r->errors_delta = p->errors;
    r->verified_delta = p->verified;
    r->stale_reads_delta = p->stale_reads;
    r->local_hits_delta = st.local_hits - p->prev.local_hits;
    r->local_misses_delta = st.local_misses - p->prev.local_misses;
    r->remote_hits_delta = st.remote_hits - p->prev.remote_hits;
    r->events_applied_delta = st.events_applied - p->prev.events_applied;
    r->synced = st.synced;
    r->reconnects = st.reconnects;
    r->gaps = st.gaps;
    r->flushes = st.flushes;
    r->heartbeat_misses = st.heartbeat_misses;
    r->replayed = st.events_replayed;
    r->last_seq = st.last_seq;
    r->local_entries = st.local_entries;
    r->behind_pending = st.behind_pending;
    r->behind_saved_delta = st.behind_saved - p->prev.behind_saved;
    r->behind_failures = st.behind_save_failures;
    r->sync_samples = atomic_exchange(&p->sync_samples, 0);
    r->unsynced_samples = atomic_exchange(&p->unsynced_samples, 0);
    if (r->unsynced_samples > r->sync_samples) /* a sample between the two exchanges */
        r->unsynced_samples = r->sync_samples;
    if (!r->sync_samples) { /* the interval was shorter than a sample */
        r->sync_samples = 1;
        r->unsynced_samples = !st.synced;
    }
    for (unsigned i = 0; i < PS_HIST_BUCKETS; i++)
        r->hist[i] = atomic_exchange_explicit(&p->hist[i], 0, memory_order_relaxed);
    p->prev = st;
    p->ops = p->gets = p->sets = p->errors = p->verified = p->stale_reads = 0;
}

/* The sampler thread: the sync state every PS_SYNC_SAMPLE_MS, so the report
 * sees outages shorter than the one-second records, including those during
 * which the workload thread is stuck in a Redis call. */
static void *sync_sampler(void *arg)
{
    pod *p = arg;
    const struct timespec tick = {0, PS_SYNC_SAMPLE_MS * 1000000L};
    while (!atomic_load(&p->sampler_stop)) {
        sc_stats st;
        sc_stats_get(p->cache, &st);
        atomic_fetch_add(&p->sync_samples, 1);
        if (!st.synced)
            atomic_fetch_add(&p->unsynced_samples, 1);
        nanosleep(&tick, NULL);
    }
    return NULL;
}

static void sampler_start(pod *p)
{
    /* Signals stay with the main thread, whose waits they must interrupt. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    p->sampler_running = pthread_create(&p->sampler, NULL, sync_sampler, p) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void sampler_stop(pod *p)
{
    if (!p->sampler_running)
        return;
    atomic_store(&p->sampler_stop, 1);
    pthread_join(p->sampler, NULL);
    p->sampler_running = 0;
}

/* The raw connection, reconnecting at most every 200 ms while Redis is away
 * so a restart or pause does not turn every sampled read into a connect. */
static redisContext *raw_conn(pod *p)
{
    if (p->raw)
        return p->raw;
    uint64_t now = ps_now_mono_us();
    if (now < p->raw_retry_us)
        return NULL;
    p->raw = ps_redis_connect(p->cfg);
    if (!p->raw)
        p->raw_retry_us = now + 200000;
    return p->raw;
}

static void raw_drop(pod *p)
{
    redisFree(p->raw);
    p->raw = NULL;
    p->raw_retry_us = ps_now_mono_us() + 200000;
}

/* The version Redis holds for key (0: no such key). Returns 0, or -1 when
 * Redis could not be asked. */
/* Runs a command whose reply is a decimal string or nil (read as 0). */
static int redis_uint(pod *p, uint64_t *out, const char *fmt, ...)
{
    redisContext *c = raw_conn(p);
    if (!c)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        raw_drop(p);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING)
        *out = strtoull(r->str, NULL, 10);
    else if (r->type == REDIS_REPLY_NIL)
        *out = 0;
    else
        rc = -1;
    freeReplyObject(r);
    return rc;
}

static int redis_version(pod *p, const char *key, uint64_t *version)
{
    char ns[128];
    ps_key_ns(p->cfg, key, ns, sizeof ns);
    return redis_uint(p, version, "HGET {%s}:k:%s version", ns, key);
}

static int redis_seq(pod *p, uint64_t *seq)
{
    redisContext *c = raw_conn(p);
    if (!c)
        return -1;
    if (ps_read_seq(c, p->cfg, seq) != 0) {
        raw_drop(p);
        return -1;
    }
    return 0;
}

/* Returns the sc_set status; counts nothing (the caller decides). */
static sc_status write_value(pod *p, const char *key)
{
    const ps_config *cfg = p->cfg;
    size_t len = cfg->value_min;
    if (cfg->value_max > cfg->value_min)
        len += rng_next(p) % (cfg->value_max - cfg->value_min + 1);
    /* Write time first (what the hook parses), then the writer, then
     * filler, so a value read with redis-cli explains itself. The prefix is
     * at most 24 bytes ("pod-64"), and --value-min is at least that. */
    size_t n = (size_t)snprintf(p->valbuf, cfg->value_max + 1, "%016" PRIu64 ":%s:", ps_now_real_us(), p->id);
    memset(p->valbuf + n, 'x', len - n);
    if (cfg->write_behind_db && !p->reader)
        return sc_set_behind(p->cache, key, p->valbuf, len, 0);
    return sc_set(p->cache, key, p->valbuf, len, 0);
}

static void do_write(pod *p, const char *key)
{
    p->sets++;
    if (write_value(p, key) != SC_OK)
        p->errors++;
}

/* Every key once, as a service's cache-aside loads would have filled Redis
 * long before: without it the first seconds mostly read keys nobody wrote. */
static void prefill(pod *p)
{
    ps_record r;
    memset(&r, 0, sizeof r);
    r.kind = PS_REC_PREFILLED;
    uint32_t failed = 0;
    for (unsigned rank = 0; rank < p->cfg->keys && !g_term; rank++) {
        char key[32];
        key_name(key, sizeof key, rank);
        if (write_value(p, key) == SC_OK)
            r.prefilled++;
        else
            failed++;
    }
    if (failed)
        snprintf(r.msg, sizeof r.msg, "%u sets failed", failed);
    send_record(p, &r);
}

static void do_read(pod *p, const char *key)
{
    uint64_t before = 0;
    int verify = rng_unit(p) < p->cfg->verify_ratio && redis_version(p, key, &before) == 0;
    sc_value *v = NULL;
    sc_status s = sc_get(p->cache, key, &v);
    p->gets++;
    if (s != SC_OK && s != SC_NOT_FOUND) {
        p->errors++;
        return;
    }
    uint64_t got = v ? sc_value_version(v) : 0;
    sc_value_release(v);
    if (!verify)
        return;
    p->verified++;
    if (v && got < before) {
        p->stale_reads++;
    } else if (!v != !before) {
        /* Present on one side only. The workload never deletes, but a Redis
         * restart does, and a writer may create the key meanwhile: only a
         * disagreement that still holds after the read is stale. */
        uint64_t after = 0;
        if (redis_version(p, key, &after) == 0 && (v ? after == 0 : after != 0))
            p->stale_reads++;
    }
}

static void do_op(pod *p)
{
    char key[32];
    key_name(key, sizeof key, pick_rank(p));
    if (!p->reader && rng_unit(p) < p->cfg->write_ratio)
        do_write(p, key);
    else
        do_read(p, key);
    p->ops++;
}

/* Waits up to timeout_us for a command byte. Returns it, 0 on timeout or
 * signal, -1 when the parent closed the pipe. */
static int wait_cmd(pod *p, uint64_t timeout_us)
{
    struct pollfd pfd = {p->ctrl_fd, POLLIN, 0};
    struct timespec ts = {(time_t)(timeout_us / 1000000), (long)(timeout_us % 1000000) * 1000};
    int n = ppoll(&pfd, 1, &ts, NULL);
    if (n <= 0)
        return 0;
    char cmd;
    ssize_t r = read(p->ctrl_fd, &cmd, 1);
    if (r == 1)
        return (unsigned char)cmd;
    if (r < 0 && errno == EINTR)
        return 0;
    return -1;
}

/* The workload for the configured duration, until SIGTERM or until the
 * parent goes away. The pod keeps time itself so that every pod's last
 * second is a whole one. */
static void run_workload(pod *p)
{
    const uint64_t start = ps_now_mono_us();
    uint64_t next_second = start + 1000000;
    uint32_t second = 1;
    /* Nanoseconds keep rates that do not divide a microsecond exact. */
    const uint64_t interval_ns = p->cfg->rate ? 1000000000u / p->cfg->rate : 0;
    uint64_t next_op_ns = start * 1000;
    unsigned since_poll = 0;

    while (!g_term) {
        uint64_t now = ps_now_mono_us();
        while (now >= next_second && second <= p->cfg->duration_s) {
            ps_record r;
            take_interval(p, &r, PS_REC_SECOND);
            r.second = second++;
            send_record(p, &r);
            next_second += 1000000;
        }
        if (second > p->cfg->duration_s)
            break;
        int cmd = 0;
        if (interval_ns) {
            uint64_t due = next_op_ns / 1000;
            if (now < due) {
                uint64_t until = due < next_second ? due : next_second;
                cmd = wait_cmd(p, until - now);
                if (cmd == 0)
                    continue;
            } else {
                /* After a stall (a paused Redis) resume the pace instead of
                 * bursting to make up for the lost operations. */
                if (now - due > 100000)
                    next_op_ns = now * 1000;
                next_op_ns += interval_ns;
            }
        }
        if (cmd == 0 && ++since_poll >= 64) {
            since_poll = 0;
            cmd = wait_cmd(p, 0);
        }
        if (cmd < 0)
            break;
        if (cmd == 0)
            do_op(p);
    }
}

/* Until this pod applied everything Redis sequenced and is synced. */
static int quiesce(pod *p, uint64_t *waited_ms)
{
    const uint64_t start = ps_now_mono_us();
    const uint64_t deadline = start + (uint64_t)p->cfg->quiesce_s * 1000000;
    int ok = 0;
    while (!g_term) {
        uint64_t seq = 0;
        sc_stats st;
        sc_stats_get(p->cache, &st);
        if (st.synced && redis_seq(p, &seq) == 0 && st.last_seq == seq) {
            ok = 1;
            break;
        }
        if (ps_now_mono_us() >= deadline)
            break;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    *waited_ms = (ps_now_mono_us() - start) / 1000;
    return ok;
}

/* Compares every local entry with Redis. sc_peek looks at the local tier
 * without loading or evicting anything, so every entry held is checked. */
static void end_check(pod *p, ps_record *r)
{
    sc_stats st;
    sc_stats_get(p->cache, &st);
    r->entries_before_check = st.local_entries;
    for (unsigned rank = 0; rank < p->cfg->keys && !g_term; rank++) {
        char key[32];
        key_name(key, sizeof key, rank);
        sc_value *v = NULL;
        if (sc_peek(p->cache, key, &v) != SC_OK)
            continue;
        uint64_t in_redis = 0;
        if (redis_version(p, key, &in_redis) != 0) {
            r->end_unreadable++;
        } else {
            r->end_checked++;
            if (sc_value_version(v) != in_redis) {
                if (r->end_stale++ == 0)
                    snprintf(r->msg, sizeof r->msg, "%s: local version %" PRIu64 ", Redis %" PRIu64, key,
                             sc_value_version(v), in_redis);
            }
        }
        sc_value_release(v);
    }
}

static int open_cache(pod *p)
{
    const ps_config *cfg = p->cfg;
    sc_options o;
    sc_options_init(&o);
    o.pod_id = p->id;
    o.ns = cfg->ns;
    o.redis_host = cfg->redis_host;
    o.redis_port = cfg->redis_port;
    o.local_policy = cfg->policy;
    o.disconnect_policy = cfg->disconnect;
    o.redis_tracking = cfg->tracking;
    o.partitions = cfg->partitions;
    o.local_max_entries = cfg->local_size;
    o.role = p->reader ? SC_ROLE_READER : SC_ROLE_WRITER;
    o.max_value_bytes = cfg->value_max + 1;
    o.on_event = on_event;
    o.on_event_ud = p;
    if (cfg->write_behind_db) {
        /* Every pod saves the queue, readers too: any pod may. */
        char err[200];
        if (!(p->wb_db = ps_wb_open(cfg->write_behind_db, err, sizeof err))) {
            send_failure(p, "%s", err);
            return -1;
        }
        o.save_fn = ps_wb_save;
        o.save_ud = p->wb_db;
        o.writeback_interval_ms = 100;
    }
    if (p->log) {
        o.log_fn = on_log;
        o.log_ud = p;
        o.log_level = SC_LOG_INFO;
    }
    sc_status s = sc_open(&o, &p->cache);
    if (s != SC_OK) {
        char detail[140];
        snprintf(detail, sizeof detail, "%s: %s", sc_strerror(s), sc_errmsg(NULL));
        send_failure(p, "sc_open: %s", detail);
        return -1;
    }
    return 0;
}

void ps_pod_main(const ps_config *cfg, int index, int ctrl_fd, int report_fd)
{
    /* Ctrl-C reaches the whole process group; the parent decides, and tells
     * the pods with SIGTERM. */
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: waits wake up */

    static pod p; /* static: the hook may run until sc_close returns */
    p.cfg = cfg;
    p.index = index;
    p.reader = index >= cfg->pods - cfg->readers;
    snprintf(p.id, sizeof p.id, "pod-%d", index + 1);
    p.ctrl_fd = ctrl_fd;
    p.report_fd = report_fd;
    p.rng = (cfg->seed + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(index + 1) * 0xD1B54A32D192ED03ull;
    if (!p.rng)
        p.rng = 1;
    if (cfg->log_path) {
        p.log = fopen(cfg->log_path, "a");
        if (!p.log) {
            send_failure(&p, "cannot open the log file %s", cfg->log_path);
            _exit(1);
        }
    }
    p.valbuf = malloc(cfg->value_max + 1);
    if (!p.valbuf || build_zipf(&p) != 0) {
        send_failure(&p, "%s", "out of memory");
        _exit(1);
    }
    if (open_cache(&p) != 0)
        _exit(1);
    /* Each pod serves its own socket (port + index) and closes the others'. */
    for (int i = 0; i < cfg->pods; i++)
        if (cfg->metrics_fd[i] >= 0 && (i != index || ps_metrics_start(cfg->metrics_fd[i], p.cache) != 0))
            close(cfg->metrics_fd[i]);
    sc_stats_get(p.cache, &p.prev);
    sampler_start(&p);

    ps_record r;
    memset(&r, 0, sizeof r);
    r.kind = PS_REC_READY;
    send_record(&p, &r);

    int cmd = 0;
    while (!g_term && (cmd == 0 || cmd == PS_CMD_PREFILL)) {
        if (cmd == PS_CMD_PREFILL)
            prefill(&p);
        cmd = wait_cmd(&p, 200000);
    }
    if (cmd == PS_CMD_GO) {
        /* The prefill and its events are not part of the first second. */
        take_interval(&p, &r, PS_REC_SECOND);
        run_workload(&p);
        take_interval(&p, &r, PS_REC_STOPPED);
        send_record(&p, &r);
        cmd = 0;
        while (!g_term && cmd == 0)
            cmd = wait_cmd(&p, 200000);
        if (cmd == PS_CMD_FINISH) {
            uint64_t waited = 0;
            int ok = quiesce(&p, &waited);
            /* Every write is queued by now (the workload stopped): wait
             * until some pod saved them all. */
            uint32_t flushed = cfg->write_behind_db && sc_flush_behind(p.cache, cfg->quiesce_s * 1000u) == SC_OK;
            ps_record fin;
            take_interval(&p, &fin, PS_REC_FINAL);
            fin.quiesced = (uint32_t)ok;
            fin.quiesce_ms = waited;
            fin.behind_flushed = flushed;
            end_check(&p, &fin);
            send_record(&p, &fin);
        }
    }
    ps_metrics_stop();
    sampler_stop(&p);
    sc_close(p.cache);
    ps_wb_close(p.wb_db); /* after sc_close: save_fn may run until then */
    redisFree(p.raw);
    _exit(g_term ? 2 : 0);
}
