/* A seeded, randomized history checker (issue 7, docs/protocol.md).
 *
 * Each seed builds a run from its number alone: several pods of namespace A
 * (and, with the "foreign" fault, pods of namespace B sharing A's channel),
 * each driven by 1-2 threads doing random get / set / set_invalidate /
 * delete / (rarely) clear over a small key space, with unique values
 * ("n<ns>.p<pod>.t<thread>.c<counter>"). The main thread injects, at random
 * times, the faults the seed enabled:
 *   subkill   CLIENT KILL TYPE pubsub
 *   connkill  CLIENT KILL TYPE normal SKIPME yes (the pods' command connections)
 *   restart   Redis killed (SIGKILL) and started again empty
 *   rollback  SAVE, more writes, SIGKILL, started again: it reloads the older
 *             snapshot, so the counter goes back and versions are reused
 *   pause     CLIENT PAUSE <ms> ALL, or SIGSTOP/SIGCONT of the server
 *   forged    raw PUBLISH of JSON events: invalidates and heartbeats with a
 *             huge version, a set carrying <counter>+1 and a value Redis
 *             never held, and plain outside invalidates
 *   foreign   (a setup) a second namespace on the same channel, writing
 *   dupid     (a setup) two pods opened with the same pod_id
 * In mode "procs" every pod runs in its own process (fork; results come back
 * through files in a temp dir), in mode "threads" all pods share this one.
 *
 * Then quiescence: writers and faults stop, Redis is up and unpaused, every
 * pod must report synced within 10 s, a settle time passes (20 heartbeats).
 * The checks:
 *   (a) convergence: for every pod and key, sc_peek is NOT_FOUND or equals
 *       Redis (value and version, read by truth_get(); rkey() is the one
 *       place that knows the key layout), polled for 3 s; then a sc_get
 *       equals Redis too;
 *   (b) monotonic reads: per pod and key, a get that started after another
 *       get of the same pod completed returns a version >= that one (gets
 *       that found nothing are not compared);
 *   (c) read-your-writes: a thread's next get of a key after its sc_set of
 *       that key returned SC_OK returns its own value or a value whose
 *       version is greater than its write's (learned from any observation of
 *       the unique value, or from sc_peek right after the write; unknown:
 *       not checked), and is not NOT_FOUND unless some delete or clear of the
 *       key (by anyone, whatever it returned) could have come after the write;
 *   (d) every value a get returns was written to that namespace (or is a
 *       forged one); a value that was not is reported once, and left out of
 *       (b) and (c).
 * Restarts and rollbacks legitimately move Redis back (data lost, versions
 * reused): (b) and (c) never compare reads across one (see hist_era()). Values
 * from forged set events are left out of (b) and (c): the protocol lets a
 * pod hold one briefly (a forged set whose version Redis has already reached
 * is only caught when the real event at that version arrives), but (a)
 * still requires that none survives quiescence. The test checker_selftest
 * runs the offline checks on hand-made histories.
 *
 * The recording (hist_worker) and the checks (hist_converge, hist_analyse)
 * live in test/support/history.c, where check_cluster and check_sentinel run
 * them through failovers; this file adds the seeds, the faults, the process
 * mode and the self-test.
 *
 * Running: the default ctest run does a fixed list of seeds (about a minute).
 *   SC_HISTORY_SEED=S          one seed (the reproducer printed on failure)
 *   SC_HISTORY_SEEDS=N         seeds 1..N;  =a,b,c  those;  =random:N  N new
 *                              ones;  =0  the self-test only
 *   SC_HISTORY_SECONDS=x       length of the faulty phase per seed (default 3)
 *   SC_HISTORY_MODE=threads|procs   force the mode (default: by seed, every
 *                              third seed runs processes)
 *   SC_HISTORY_FAULTS=a,b|none|all  force the faults (default: by seed)
 *   SC_HISTORY_DUMP=file       write the whole history, by start time
 *   SC_TEST_LOG=1              pods log to stderr
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "history.h"
#include "pods.h"

sc_test_redis g_redis; /* pods.h wants it; every seed starts its own server */

#define MAX_PODS HIST_MAX_PODS
#define MAX_WORKERS 16
#define HB_INTERVAL_MS 50 /* hist_converge's settle time is 20 of these */
#define HB_TIMEOUT_MS 500

enum { MODE_THREADS, MODE_PROCS };
static const char *const mode_names[] = {"threads", "procs"};

enum {
    F_SUBKILL,
    F_CONNKILL,
    F_RESTART,
    F_ROLLBACK,
    F_PAUSE,
    F_FORGED,
    F_FOREIGN, /* setup, not timed */
    F_DUPID,   /* setup, not timed */
    F_NKINDS
};
static const char *const fault_names[] = {"subkill", "connkill", "restart", "rollback",
                                          "pause",   "forged",   "foreign", "dupid"};
#define TIMED_FAULTS ((1u << F_SUBKILL) | (1u << F_CONNKILL) | (1u << F_RESTART) | (1u << F_ROLLBACK) | \
                      (1u << F_PAUSE) | (1u << F_FORGED))

/* One run's shape, all derived from the seed. */
typedef struct hconf {
    uint64_t seed;
    int mode;
    unsigned faults; /* bit per F_* */
    int npods;       /* pods of namespace 0, then nforeign pods of namespace 1 */
    int nforeign;
    int threads[MAX_PODS];
    sc_disconnect_policy policy[MAX_PODS];
    sc_wire_format wire[MAX_PODS];
    size_t max_entries[MAX_PODS];
    int nkeys;
    uint64_t run_ms;
    char ns[2][40];
    char channel[48];
} hconf;

static int pod_ns(const hconf *cf, int pod)
{
    return pod < cf->npods ? 0 : 1;
}

static int total_pods(const hconf *cf)
{
    return cf->npods + cf->nforeign;
}

/* The namespace counter, or 0 when absent or unreadable. */
static uint64_t redis_counter(redisContext *rc, const char *ns)
{
    char k[200];
    rkey(k, sizeof k, ns, "seq");
    redisReply *rep = redisCommand(rc, "GET %s", k);
    uint64_t v = rep && rep->type == REDIS_REPLY_STRING ? strtoull(rep->str, NULL, 10) : 0;
    if (rep)
        freeReplyObject(rep);
    return v;
}

/* ------------------------------------------------------------------- pods */

static sc_cache *open_pod(const hconf *cf, int port, int pod, char *err, size_t errlen)
{
    sc_options o;
    sc_options_init(&o);
    char id[32];
    if ((cf->faults & (1u << F_DUPID)) && pod < 2)
        snprintf(id, sizeof id, "dup");
    else
        snprintf(id, sizeof id, "p%d", pod);
    o.pod_id = id;
    o.ns = cf->ns[pod_ns(cf, pod)];
    o.channel = cf->channel;
    o.redis_port = port;
    o.redis_timeout_ms = 400;
    o.disconnect_policy = cf->policy[pod];
    o.wire_format = cf->wire[pod];
    o.local_max_entries = cf->max_entries[pod];
    o.heartbeat_interval_ms = HB_INTERVAL_MS;
    o.heartbeat_timeout_ms = HB_TIMEOUT_MS;
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 200;
    if (getenv("SC_TEST_LOG")) {
        o.log_fn = test_log;
        o.log_level = SC_LOG_DEBUG;
    }
    sc_cache *c = NULL;
    sc_status s = sc_open(&o, &c);
    if (s != SC_OK) {
        snprintf(err, errlen, "sc_open pod %d: %s: %s", pod, sc_strerror(s), sc_errmsg(NULL));
        return NULL;
    }
    return c;
}

/* ----------------------------------------------------------------- faults */

typedef struct faulter {
    const hconf *cf;
    sc_test_redis *r;
    hctx *x;         /* holds t0 and the windows where Redis moved back */
    uint64_t end_ns;
    uint64_t rng;
    int counts[F_NKINDS];
    char *log;       /* timeline, for failure reports */
    size_t loglen;
    int infra_error; /* Redis could not be brought back */
} faulter;

static void flog(faulter *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void flog(faulter *f, const char *fmt, ...)
{
    char line[300];
    int n = snprintf(line, sizeof line, "  +%5" PRIu64 " ms  ", (now_ns() - f->x->t0) / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    f->log = realloc(f->log, f->loglen + len + 2);
    memcpy(f->log + f->loglen, line, len);
    f->loglen += len;
    f->log[f->loglen++] = '\n';
    f->log[f->loglen] = '\0';
}

static int fcmd(faulter *f, const char *fmt, ...)
{
    redisContext *rc = sc_test_redis_connect(f->r);
    if (!rc)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(rc, fmt, ap);
    va_end(ap);
    int ok = rep && rep->type != REDIS_REPLY_ERROR;
    if (rep)
        freeReplyObject(rep);
    redisFree(rc);
    return ok ? 0 : -1;
}

static void b64(const char *in, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned b = (unsigned char)in[i] << 16;
        if (i + 1 < n)
            b |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            b |= (unsigned char)in[i + 2];
        out[o++] = tab[(b >> 18) & 63];
        out[o++] = tab[(b >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(b >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[b & 63] : '=';
    }
    out[o] = '\0';
}

static void wall_ms(uint64_t *ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fault_forged(faulter *f)
{
    const hconf *cf = f->cf;
    redisContext *rc = sc_test_redis_connect(f->r);
    if (!rc)
        return;
    const char *ns = cf->ns[0];
    static atomic_int forged_n;
    int n = 1 + (int)rnd_below(&f->rng, 3);
    for (int i = 0; i < n; i++) {
        uint64_t seq = redis_counter(rc, ns), t;
        wall_ms(&t);
        uint64_t huge = (seq ? seq : 1000000000000000ull) + 1000000000000ull;
        char key[16], ev[512];
        key_name(key, sizeof key, (int)rnd_below(&f->rng, (unsigned)cf->nkeys));
        const char *inst = "f0f0f0f0f0f0f0f0";
        unsigned kind = rnd_below(&f->rng, 5);
        switch (kind) {
        case 0: /* invalidate with a version Redis has not reached */
            snprintf(ev, sizeof ev,
                     "{\"format\":1,\"action\":\"invalidate\",\"ns\":\"%s\",\"key\":\"%s\",\"sender\":\"forger\","
                     "\"inst\":\"%s\",\"version\":%" PRIu64 ",\"time\":%" PRIu64 "}",
                     ns, key, inst, huge, t);
            break;
        case 1: /* the same without ns (meant for every namespace) */
            snprintf(ev, sizeof ev,
                     "{\"action\":\"invalidate\",\"key\":\"%s\",\"sender\":\"forger\",\"version\":%" PRIu64 "}",
                     key, huge);
            break;
        case 2: /* heartbeat ahead of the counter */
            snprintf(ev, sizeof ev,
                     "{\"format\":1,\"action\":\"heartbeat\",\"ns\":\"%s\",\"key\":\"\",\"sender\":\"forger\","
                     "\"inst\":\"%s\",\"version\":%" PRIu64 ",\"epoch\":\"0123456789abcdef\",\"time\":%" PRIu64 "}",
                     ns, inst, huge, t);
            break;
        case 3: { /* a set Redis never held, at the next version */
            if (!seq) {
                i--;
                continue;
            }
            char val[32], enc[64];
            snprintf(val, sizeof val, "FORGED.%d", atomic_fetch_add(&forged_n, 1));
            b64(val, enc);
            snprintf(ev, sizeof ev,
                     "{\"format\":1,\"action\":\"set\",\"ns\":\"%s\",\"key\":\"%s\",\"sender\":\"forger\","
                     "\"inst\":\"%s\",\"version\":%" PRIu64 ",\"value\":\"%s\",\"ttl\":0,\"time\":%" PRIu64 "}",
                     ns, key, inst, seq + 1, enc, t);
            break;
        }
        default: /* an outside publisher's plain invalidate: only ever removes */
            snprintf(ev, sizeof ev, "{\"action\":\"invalidate\",\"key\":\"%s\"}", key);
            break;
        }
        redisReply *rep = redisCommand(rc, "PUBLISH %s %s", cf->channel, ev);
        if (rep)
            freeReplyObject(rep);
        flog(f, "forged: %s", ev);
    }
    redisFree(rc);
}

/* Brings Redis back after a kill: empty (dump removed) or from the dump. */
static void redis_back(faulter *f, int keep_dump)
{
    if (!keep_dump) {
        char p[600];
        snprintf(p, sizeof p, "%s/dump.rdb", f->r->dir);
        unlink(p);
    }
    if (sc_test_redis_start_again(f->r) != 0) {
        f->infra_error = 1;
        flog(f, "INFRA: redis-server did not start again");
    }
}

static void fault_once(faulter *f, int kind)
{
    f->counts[kind]++;
    switch (kind) {
    case F_SUBKILL:
        fcmd(f, "CLIENT KILL TYPE pubsub");
        flog(f, "subkill: CLIENT KILL TYPE pubsub");
        break;
    case F_CONNKILL:
        fcmd(f, "CLIENT KILL TYPE normal SKIPME yes");
        flog(f, "connkill: CLIENT KILL TYPE normal SKIPME yes");
        break;
    case F_RESTART: {
        uint64_t s = now_ns();
        flog(f, "restart: SIGKILL, start again empty");
        sc_test_redis_kill(f->r);
        redis_back(f, 0);
        hist_add_window(f->x, s, now_ns(), kind);
        flog(f, "restart: Redis back");
        break;
    }
    case F_ROLLBACK: {
        uint64_t s = now_ns();
        if (fcmd(f, "SAVE") != 0) {
            flog(f, "rollback: SAVE failed, skipped");
            break;
        }
        unsigned ms = 50 + rnd_below(&f->rng, 300);
        flog(f, "rollback: SAVE done, %u ms of writes to lose", ms);
        test_sleep_ms(ms);
        sc_test_redis_kill(f->r);
        redis_back(f, 1);
        hist_add_window(f->x, s, now_ns(), kind);
        flog(f, "rollback: Redis back from the snapshot");
        break;
    }
    case F_PAUSE: {
        unsigned ms = 100 + rnd_below(&f->rng, 600);
        if (rnd_below(&f->rng, 2)) {
            fcmd(f, "CLIENT PAUSE %u ALL", ms);
            flog(f, "pause: CLIENT PAUSE %u ALL", ms);
            test_sleep_ms(ms + 20);
        } else {
            flog(f, "pause: SIGSTOP the server for %u ms", ms);
            kill(f->r->pid, SIGSTOP);
            test_sleep_ms(ms);
            kill(f->r->pid, SIGCONT);
        }
        break;
    }
    case F_FORGED:
        fault_forged(f);
        break;
    }
}

/* Injects the enabled timed faults until end_ns, then leaves Redis up,
 * running and unpaused. */
static void faulter_run(faulter *f)
{
    /* Restarts and rollbacks are rarer (weight 1 against 3, at most two a
     * run): each one takes its reads out of the monotonic and
     * read-your-writes checks (see hist_era()). */
    unsigned kinds[F_NKINDS * 3];
    int nk = 0, restarts = 0;
    for (int k = 0; k < F_NKINDS; k++)
        if ((f->cf->faults & TIMED_FAULTS) & (1u << k))
            for (int w = 0; w < (k == F_RESTART || k == F_ROLLBACK ? 1 : 3); w++)
                kinds[nk++] = (unsigned)k;
    while (nk && !f->infra_error) {
        unsigned gap = 50 + rnd_below(&f->rng, 350);
        if (now_ns() + gap * 1000000ull + 100000000ull >= f->end_ns)
            break;
        test_sleep_ms(gap);
        int kind = (int)kinds[rnd_below(&f->rng, (unsigned)nk)];
        if ((kind == F_RESTART || kind == F_ROLLBACK) && restarts++ >= 2)
            continue;
        fault_once(f, kind);
    }
    if (f->r->pid > 0)
        kill(f->r->pid, SIGCONT);
    fcmd(f, "CLIENT UNPAUSE");
    for (int i = 0; i < 100 && fcmd(f, "PING") != 0; i++)
        test_sleep_ms(50);
}

/* SC_HISTORY_DUMP=<file>: every operation as text, by start time (for
 * reading a failure). */
static int cmp_rec_ts(const void *a, const void *b)
{
    const hrec *x = *(const hrec *const *)a, *y = *(const hrec *const *)b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

static void dump_history(const hconf *cf, hist *hs, int nh, const faulter *f)
{
    static const char *const ops[] = {"get", "set", "setinv", "delete", "clear"};
    const char *path = getenv("SC_HISTORY_DUMP");
    if (!path || !*path)
        return;
    FILE *fp = fopen(path, "w");
    if (!fp)
        return;
    size_t n = 0;
    for (int i = 0; i < nh; i++)
        n += hs[i].n;
    const hrec **all = malloc((n + 1) * sizeof *all);
    n = 0;
    for (int i = 0; i < nh; i++)
        for (size_t j = 0; j < hs[i].n; j++)
            all[n++] = &hs[i].r[j];
    qsort(all, n, sizeof *all, cmp_rec_ts);
    fprintf(fp, "# seed %" PRIu64 ", ms from the start of the faulty phase\n%s", cf->seed, f->log ? f->log : "");
    for (size_t i = 0; i < n; i++) {
        const hrec *r = all[i];
        fprintf(fp, "%10.3f %10.3f pod %d t%d %-6s k%-2d %-10s %-24s %" PRIu64 "\n", hist_rel_ms(f->x, r->ts), hist_rel_ms(f->x, r->te),
                r->pod, r->thr, ops[r->op], r->key, sc_strerror((sc_status)r->status), r->val, r->version);
    }
    free(all);
    fclose(fp);
}

/* ------------------------------------------------------------------ setup */

static unsigned g_force_faults; /* with g_force_faults_set */
static int g_force_faults_set;
static int g_force_mode = -1;
static uint64_t g_run_ms = 3000;

static void make_conf(hconf *cf, uint64_t seed)
{
    memset(cf, 0, sizeof *cf);
    uint64_t rng = seed * 0x2545f4914f6cdd1dull + 17;
    cf->seed = seed;
    cf->mode = g_force_mode >= 0 ? g_force_mode : (seed % 3 == 0 ? MODE_PROCS : MODE_THREADS);
    for (int k = 0; k < F_NKINDS; k++)
        if (rnd_below(&rng, 100) < 55)
            cf->faults |= 1u << k;
    if (g_force_faults_set) /* after the draws, so the rest of the shape stays the seed's */
        cf->faults = g_force_faults;
    cf->npods = 3 + (int)rnd_below(&rng, 2);
    cf->nforeign = (cf->faults & (1u << F_FOREIGN)) ? 1 + (int)rnd_below(&rng, 2) : 0;
    for (int p = 0; p < total_pods(cf); p++) {
        cf->threads[p] = 1 + (int)rnd_below(&rng, 2);
        cf->policy[p] = rnd_below(&rng, 2) ? SC_DISCONNECT_BYPASS : SC_DISCONNECT_FLUSH;
        cf->wire[p] = rnd_below(&rng, 2) ? SC_WIRE_JSON : SC_WIRE_MSGPACK;
        cf->max_entries[p] = rnd_below(&rng, 3) == 0 ? 4 : 0;
    }
    cf->nkeys = 8 + (int)rnd_below(&rng, 9);
    cf->run_ms = g_run_ms;
    snprintf(cf->ns[0], sizeof cf->ns[0], "h%" PRIu64, seed);
    snprintf(cf->ns[1], sizeof cf->ns[1], "h%" PRIu64 "x", seed);
    snprintf(cf->channel, sizeof cf->channel, "hch%" PRIu64, seed);
}

static void describe(const hconf *cf, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "mode %s, faults [", mode_names[cf->mode]);
    int first = 1;
    for (int k = 0; k < F_NKINDS && o < n; k++)
        if (cf->faults & (1u << k)) {
            o += (size_t)snprintf(buf + o, n - o, "%s%s", first ? "" : ",", fault_names[k]);
            first = 0;
        }
    if (o < n)
        o += (size_t)snprintf(buf + o, n - o, "], %d pods + %d foreign, %d keys, pods:", cf->npods, cf->nforeign,
                              cf->nkeys);
    for (int p = 0; p < total_pods(cf) && o < n; p++)
        o += (size_t)snprintf(buf + o, n - o, " %d=%dt/%s/%s%s", p, cf->threads[p],
                              cf->policy[p] == SC_DISCONNECT_FLUSH ? "flush" : "bypass",
                              cf->wire[p] == SC_WIRE_JSON ? "json" : "msgpack", cf->max_entries[p] ? "/max4" : "");
}

/* ----------------------------------------------------------- mode threads */

static void run_threads(const hconf *cf, sc_test_redis *r, faulter *f, hist **hs_out, int *nh_out, vlist *V)
{
    int np = total_pods(cf);
    sc_cache *pods[MAX_PODS];
    int idx[MAX_PODS];
    char err[512];
    for (int p = 0; p < np; p++) {
        idx[p] = p;
        pods[p] = open_pod(cf, r->port, p, err, sizeof err);
        if (!pods[p]) {
            viol(V, "open: %s", err);
            for (int q = 0; q < p; q++)
                sc_close(pods[q]);
            *hs_out = NULL;
            *nh_out = 0;
            return;
        }
    }
    hist_worker *ws = calloc(MAX_WORKERS, sizeof *ws);
    int nw = 0;
    uint64_t end = now_ns() + cf->run_ms * 1000000ull;
    f->x->t0 = now_ns();
    f->end_ns = end;
    for (int p = 0; p < np; p++)
        for (int t = 0; t < cf->threads[p]; t++)
            ws[nw++] = (hist_worker){pods[p], f->x, p, t, end, NULL, {0}};
    pthread_t th[MAX_WORKERS];
    for (int i = 0; i < nw; i++)
        pthread_create(&th[i], NULL, hist_worker_main, &ws[i]);
    /* Faults from this thread: redis_server.c starts the server with
     * PR_SET_PDEATHSIG, which fires when the starting *thread* exits, so a
     * server restarted from a short-lived thread would die with it. */
    faulter_run(f);
    for (int i = 0; i < nw; i++)
        pthread_join(th[i], NULL);
    hist_converge(f->x, pods, idx, np, V);
    for (int p = 0; p < np; p++)
        sc_close(pods[p]);
    hist *hs = calloc((size_t)nw, sizeof *hs);
    for (int i = 0; i < nw; i++)
        hs[i] = ws[i].h;
    free(ws);
    *hs_out = hs;
    *nh_out = nw;
}

/* ------------------------------------------------------------- mode procs */

static int read_byte(int fd, char *c, int timeout_ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return -1;
    return read(fd, c, 1) == 1 ? 0 : -1;
}

static int write_all_fd(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One pod in a child process: open, say 'R', get the end time, run the
 * threads, say 'D', wait for 'Q' (faults over), check convergence, write the
 * history and the violations to dir, exit. */
static void child_main(const hconf *cf, const hctx *x, int port, int pod, int up, int down, const char *dir)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char err[512], path[600];
    sc_cache *c = open_pod(cf, port, pod, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        write_all_fd(up, "E", 1);
        _exit(2);
    }
    write_all_fd(up, "R", 1);
    uint64_t end = 0;
    size_t got = 0;
    while (got < sizeof end) {
        ssize_t n = read(down, (char *)&end + got, sizeof end - got);
        if (n <= 0)
            _exit(3);
        got += (size_t)n;
    }
    int nt = cf->threads[pod];
    hist_worker ws[2];
    pthread_t th[2];
    for (int t = 0; t < nt; t++) {
        ws[t] = (hist_worker){c, x, pod, t, end, NULL, {0}};
        pthread_create(&th[t], NULL, hist_worker_main, &ws[t]);
    }
    for (int t = 0; t < nt; t++)
        pthread_join(th[t], NULL);
    write_all_fd(up, "D", 1);
    char q;
    if (read_byte(down, &q, 120000) != 0)
        _exit(4);
    vlist V = {0};
    hist_converge(x, &c, &pod, 1, &V);
    for (int t = 0; t < nt; t++) {
        snprintf(path, sizeof path, "%s/pod%d.t%d.hist", dir, pod, t);
        FILE *fp = fopen(path, "wb");
        if (fp) {
            fwrite(ws[t].h.r, sizeof(hrec), ws[t].h.n, fp);
            fclose(fp);
        }
    }
    snprintf(path, sizeof path, "%s/pod%d.viol", dir, pod);
    FILE *fp = fopen(path, "w");
    if (fp) {
        for (int k = 0; k < V.nkinds; k++) {
            for (int m = 0; m < V.k[k].nmsg; m++)
                fprintf(fp, "%s\n", V.k[k].msg[m]);
            if (V.k[k].count > (size_t)V.k[k].nmsg) /* the rest, counted: "#more <n> <kind>" */
                fprintf(fp, "#more %zu %s\n", V.k[k].count - (size_t)V.k[k].nmsg, V.k[k].name);
        }
        fclose(fp);
    }
    sc_close(c);
    _exit(0);
}

static void run_procs(const hconf *cf, sc_test_redis *r, faulter *f, hist **hs_out, int *nh_out, vlist *V)
{
    int np = total_pods(cf);
    char dir[300];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sc-history-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    pid_t pids[MAX_PODS];
    int up[MAX_PODS], down[MAX_PODS];
    for (int p = 0; p < np; p++) {
        int u[2], d[2];
        ck_assert_int_eq(pipe(u), 0);
        ck_assert_int_eq(pipe(d), 0);
        fflush(NULL);
        pids[p] = fork();
        ck_assert_int_ge(pids[p], 0);
        if (pids[p] == 0) {
            close(u[0]);
            close(d[1]);
            for (int q = 0; q < p; q++) {
                close(up[q]);
                close(down[q]);
            }
            child_main(cf, f->x, r->port, p, u[1], d[0], dir);
        }
        close(u[1]);
        close(d[0]);
        up[p] = u[0];
        down[p] = d[1];
    }
    int ok = 1;
    for (int p = 0; p < np; p++) {
        char c = 0;
        if (read_byte(up[p], &c, 15000) != 0 || c != 'R') {
            viol(V, "open: pod process %d could not open its pod (sc_open's message is on stderr)", p);
            ok = 0;
        }
    }
    uint64_t end = now_ns() + cf->run_ms * 1000000ull;
    f->x->t0 = now_ns();
    f->end_ns = end;
    if (ok) {
        for (int p = 0; p < np; p++)
            write_all_fd(down[p], &end, sizeof end);
        faulter_run(f);
        for (int p = 0; p < np; p++) {
            char c = 0;
            if (read_byte(up[p], &c, 60000) != 0 || c != 'D')
                viol(V, "pod process %d: writers did not stop (a call hung?)", p);
        }
        for (int p = 0; p < np; p++)
            write_all_fd(down[p], "Q", 1);
    }
    for (int p = 0; p < np; p++)
        close(down[p]); /* a child still waiting for its start reads EOF and exits */
    for (int p = 0; p < np; p++) {
        int status = 0;
        long long deadline = test_now_ms() + 60000;
        pid_t w;
        while ((w = waitpid(pids[p], &status, WNOHANG)) == 0 && test_now_ms() < deadline)
            test_sleep_ms(20);
        if (w == 0) {
            kill(pids[p], SIGKILL);
            waitpid(pids[p], &status, 0);
            viol(V, "pod process %d did not finish its checks within 60 s (killed)", p);
        } else if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            viol(V, "pod process %d exited abnormally (status 0x%x)", p, status);
        }
        close(up[p]);
    }
    /* Collect. */
    hist *hs = calloc((size_t)np * 2, sizeof *hs);
    int nh = 0;
    char path[700];
    for (int p = 0; p < np; p++) {
        for (int t = 0; t < cf->threads[p]; t++) {
            snprintf(path, sizeof path, "%s/pod%d.t%d.hist", dir, p, t);
            FILE *fp = fopen(path, "rb");
            if (!fp)
                continue;
            struct stat st;
            fstat(fileno(fp), &st);
            hist h = {0};
            h.n = h.cap = (size_t)st.st_size / sizeof(hrec);
            h.r = malloc((h.n + 1) * sizeof(hrec));
            h.n = fread(h.r, sizeof(hrec), h.n, fp);
            fclose(fp);
            unlink(path);
            hs[nh++] = h;
        }
        snprintf(path, sizeof path, "%s/pod%d.viol", dir, p);
        FILE *fp = fopen(path, "r");
        if (fp) {
            char line[1024];
            while (fgets(line, sizeof line, fp)) {
                line[strcspn(line, "\n")] = '\0';
                size_t more = 0;
                int off = 0;
                if (sscanf(line, "#more %zu %n", &more, &off) == 1 && off > 0) {
                    for (size_t i = 0; i < more; i++)
                        viol(V, "%s: (not kept)", line + off);
                    continue;
                }
                viol(V, "%s", line);
            }
            fclose(fp);
            unlink(path);
        }
    }
    rmdir(dir);
    *hs_out = hs;
    *nh_out = nh;
}

/* ------------------------------------------------------------------- test */

static uint64_t *g_seeds;
static int g_nseeds;

static redisContext *connect_single(const char *ns, void *ud)
{
    (void)ns; /* one Redis holds every namespace */
    return sc_test_redis_connect((const sc_test_redis *)ud);
}

/* What the checks need of the run (r: NULL for the self-test). */
static void make_ctx(const hconf *cf, sc_test_redis *r, hctx *x)
{
    memset(x, 0, sizeof *x);
    x->npods = total_pods(cf);
    for (int p = 0; p < x->npods; p++)
        x->nsi[p] = pod_ns(cf, p);
    memcpy(x->ns, cf->ns, sizeof x->ns);
    x->nkeys = cf->nkeys;
    x->seed = cf->seed;
    x->connect = connect_single;
    x->connect_ud = r;
}

/* Runs one seed; returns whether the checks (b) and (c) compared anything
 * (violations and infrastructure errors fail the test here). */
static int run_seed(uint64_t seed)
{
    hconf cf;
    make_conf(&cf, seed);
    char desc[1024];
    describe(&cf, desc, sizeof desc);
    /* The seed alone fixes the run's shape; the forced settings go along. */
    char repro[512];
    size_t ro = (size_t)snprintf(repro, sizeof repro, "SC_HISTORY_SEED=%" PRIu64, seed);
    if (g_force_mode >= 0)
        ro += (size_t)snprintf(repro + ro, sizeof repro - ro, " SC_HISTORY_MODE=%s", mode_names[g_force_mode]);
    if (getenv("SC_HISTORY_FAULTS") && *getenv("SC_HISTORY_FAULTS"))
        ro += (size_t)snprintf(repro + ro, sizeof repro - ro, " SC_HISTORY_FAULTS=%s", getenv("SC_HISTORY_FAULTS"));
    if (getenv("SC_HISTORY_SECONDS") && *getenv("SC_HISTORY_SECONDS"))
        ro += (size_t)snprintf(repro + ro, sizeof repro - ro, " SC_HISTORY_SECONDS=%s", getenv("SC_HISTORY_SECONDS"));
    snprintf(repro + ro, sizeof repro - ro, " ./build/test/check_history");
    sc_test_redis r;
    ck_assert_msg(sc_test_redis_start(&r, NULL) == 0, "seed %" PRIu64 ": cannot start redis-server", seed);
    hctx x;
    make_ctx(&cf, &r, &x);
    faulter *f = calloc(1, sizeof *f);
    f->cf = &cf;
    f->x = &x;
    f->r = &r;
    f->rng = seed * 7919 + 3;
    vlist V = {0};
    hist *hs = NULL;
    int nh = 0;
    if (cf.mode == MODE_PROCS)
        run_procs(&cf, &r, f, &hs, &nh, &V);
    else
        run_threads(&cf, &r, f, &hs, &nh, &V);
    sc_test_redis_stop(&r);
    hist_stats so = {0};
    hist_analyse(&x, hs, nh, &V, &so);
    dump_history(&cf, hs, nh, f);
    char fc[256] = "";
    size_t o = 0;
    for (int k = 0; k < F_NKINDS; k++)
        if (f->counts[k])
            o += (size_t)snprintf(fc + o, sizeof fc - o, " %s=%d", fault_names[k], f->counts[k]);
    printf("history seed %" PRIu64 " (%s): %zu ops, %zu gets with a value, %zu reads checked for monotonicity, "
           "%zu read-your-writes checked (%zu unknown versions), %zu forged values served; faults:%s; "
           "violations: %zu\n",
           seed, desc, so.ops, so.gets_ok, so.mono_checked, so.ryw_checked, so.ryw_unknown, so.forged_seen,
           o ? fc : " none", V.total);
    fflush(stdout);
    if (V.total) {
        fprintf(stderr, "=== history seed %" PRIu64 ": %zu violation(s); %s\n", seed, V.total, desc);
        for (int k = 0; k < V.nkinds; k++) {
            fprintf(stderr, "[seed %" PRIu64 " mode %s] %zu x %s, e.g.:\n", seed, mode_names[cf.mode],
                    V.k[k].count, V.k[k].name);
            for (int m = 0; m < V.k[k].nmsg; m++)
                fprintf(stderr, "[seed %" PRIu64 " mode %s]   %s\n", seed, mode_names[cf.mode], V.k[k].msg[m]);
        }
        fprintf(stderr, "fault timeline (ms from the start of the faulty phase):\n%s",
                f->log ? f->log : "  (none)\n");
        fprintf(stderr, "reproduce: %s\n", repro);
    }
    int infra = f->infra_error;
    size_t nv = V.total;
    char first[1024];
    snprintf(first, sizeof first, "%s", V.nkinds && V.k[0].nmsg ? V.k[0].msg[0] : "");
    char kinds[512] = "";
    for (int k = 0, ko = 0; k < V.nkinds && ko < (int)sizeof kinds; k++)
        ko += snprintf(kinds + ko, sizeof kinds - (size_t)ko, "%s%zu %s", k ? ", " : "", V.k[k].count, V.k[k].name);
    for (int i = 0; i < nh; i++)
        free(hs[i].r);
    free(hs);
    free(f->log);
    free(f);
    vlist_free(&V);
    ck_assert_msg(!infra, "seed %" PRIu64 " mode %s: redis-server could not be restarted (not a synccache fault)",
                  seed, mode_names[cf.mode]);
    ck_assert_msg(nv == 0, "seed %" PRIu64 " mode %s: %zu violation(s) (%s), first: %s -- reproduce: %s", seed,
                  mode_names[cf.mode], nv, kinds, first, repro);
    if (so.mono_checked == 0 || so.ryw_checked == 0)
        printf("seed %" PRIu64 " mode %s: nothing compared (%zu reads for monotonicity, %zu read-your-writes)\n", seed,
               mode_names[cf.mode], so.mono_checked, so.ryw_checked);
    return so.mono_checked > 0 && so.ryw_checked > 0;
}

/* A history with nothing compared would pass whatever the pods did, so it
 * fails; but on a loaded machine a restart or rollback window (each read
 * overlapping one, plus HIST_GRACE_NS, is left out) can cover the whole
 * 3 s phase, so the seed gets two more runs before that counts. */
START_TEST(history)
{
    int compared = 0;
    for (int run = 0; run < 3 && !compared; run++)
        compared = run_seed(g_seeds[_i]);
    ck_assert_msg(compared, "seed %" PRIu64 ": nothing compared in 3 runs (see the lines above)", g_seeds[_i]);
}
END_TEST

/* The offline checks on hand-made histories: each violation they must
 * find, and the look-alikes they must not report. */
static hrec mk(int op, int pod, int thr, int key, double ts_ms, double te_ms, int status, const char *val,
               uint64_t version)
{
    hrec r;
    memset(&r, 0, sizeof r);
    r.op = (uint8_t)op;
    r.pod = (uint8_t)pod;
    r.thr = (uint8_t)thr;
    r.key = (uint8_t)key;
    r.ts = (uint64_t)(ts_ms * 1e6) + 1000000000ull;
    r.te = (uint64_t)(te_ms * 1e6) + 1000000000ull;
    r.status = status;
    snprintf(r.val, sizeof r.val, "%s", val ? val : "");
    r.version = version;
    return r;
}

static size_t kind_count(const vlist *v, const char *name)
{
    for (int i = 0; i < v->nkinds; i++)
        if (strcmp(v->k[i].name, name) == 0)
            return v->k[i].count;
    return 0;
}

START_TEST(checker_selftest)
{
    hconf cf;
    memset(&cf, 0, sizeof cf);
    cf.seed = 1;
    cf.nkeys = 16;
    snprintf(cf.ns[0], sizeof cf.ns[0], "h1");
    snprintf(cf.ns[1], sizeof cf.ns[1], "h1x");
    cf.npods = 2;
    cf.nforeign = 1;
    hctx x;
    make_ctx(&cf, NULL, &x);
    x.t0 = 1000000000ull;
    /* A restart window from 100 to 110 ms (+ grace). */
    hist_add_window(&x, x.t0 + 100000000ull, x.t0 + 110000000ull, F_RESTART);
    hist h[4] = {{0}};
    hrec r;
    /* pod 0 thread 0 */
    r = mk(OP_SET, 0, 0, 0, 0, 1, SC_OK, "n0.p0.t0.c1", 10); hist_push(&h[0], &r);
    r = mk(OP_GET, 0, 0, 0, 2, 3, SC_OK, "n0.p0.t0.c1", 10); hist_push(&h[0], &r);    /* ryw ok */
    r = mk(OP_SET, 0, 0, 1, 4, 5, SC_OK, "n0.p0.t0.c2", 20); hist_push(&h[0], &r);
    r = mk(OP_GET, 0, 0, 1, 6, 7, SC_OK, "n0.p1.t0.c1", 19); hist_push(&h[0], &r);    /* ryw VIOLATION */
    r = mk(OP_SET, 0, 0, 2, 8, 9, SC_OK, "n0.p0.t0.c3", 30); hist_push(&h[0], &r);
    r = mk(OP_GET, 0, 0, 2, 10, 11, SC_NOT_FOUND, NULL, 0); hist_push(&h[0], &r);     /* ryw VIOLATION: no delete */
    r = mk(OP_SET, 0, 0, 3, 12, 13, SC_OK, "n0.p0.t0.c4", 40); hist_push(&h[0], &r);
    r = mk(OP_GET, 0, 0, 3, 14, 15, SC_NOT_FOUND, NULL, 0); hist_push(&h[0], &r);     /* excused by pod 1's delete */
    r = mk(OP_SET, 0, 0, 4, 16, 17, SC_OK, "n0.p0.t0.c5", 0); hist_push(&h[0], &r);   /* version never seen */
    r = mk(OP_GET, 0, 0, 4, 18, 19, SC_OK, "n0.p1.t0.c2", 1); hist_push(&h[0], &r);   /* unknown: not checked */
    r = mk(OP_SET, 0, 0, 5, 20, 21, SC_OK, "n0.p0.t0.c6", 60); hist_push(&h[0], &r);
    r = mk(OP_GET, 0, 0, 5, 22, 23, SC_OK, "FORGED.1", 59); hist_push(&h[0], &r);     /* forged: left out */
    /* monotonic on key 6: 50 then 45 (violation); 45 overlapping 50 is fine */
    r = mk(OP_GET, 0, 0, 6, 30, 31, SC_OK, "n0.p1.t0.c3", 50); hist_push(&h[0], &r);
    r = mk(OP_GET, 0, 0, 6, 32, 33, SC_OK, "n0.p1.t0.c4", 45); hist_push(&h[0], &r);  /* mono VIOLATION */
    /* across the restart window: 70 before, 65 after the grace: no violation */
    r = mk(OP_GET, 0, 0, 7, 90, 91, SC_OK, "n0.p1.t0.c5", 70); hist_push(&h[0], &r);
    r = mk(OP_GET, 0, 0, 7, 2000, 2001, SC_OK, "n0.p1.t0.c6", 65); hist_push(&h[0], &r);
    /* pod 0 thread 1 */
    r = mk(OP_GET, 0, 1, 6, 30.5, 34, SC_OK, "n0.p1.t0.c4", 45); hist_push(&h[1], &r); /* overlaps: fine */
    r = mk(OP_GET, 0, 1, 6, 35, 36, SC_OK, "n0.p1.t0.c3", 50); hist_push(&h[1], &r);
    r = mk(OP_GET, 0, 1, 8, 37, 38, SC_OK, "n1.p2.t0.c1", 5); hist_push(&h[1], &r);   /* foreign VIOLATION */
    r = mk(OP_GET, 0, 1, 8, 39, 40, SC_OK, "n0.p9.t0.c1", 5); hist_push(&h[1], &r);   /* never written: VIOLATION */
    /* pod 1 thread 0: the writes the gets above saw */
    r = mk(OP_SET, 1, 0, 1, 0, 1, SC_OK, "n0.p1.t0.c1", 0); hist_push(&h[2], &r);
    r = mk(OP_SET, 1, 0, 4, 0, 1, SC_OK, "n0.p1.t0.c2", 0); hist_push(&h[2], &r);
    r = mk(OP_SET, 1, 0, 6, 0, 1, SC_OK, "n0.p1.t0.c3", 0); hist_push(&h[2], &r);
    r = mk(OP_SET, 1, 0, 6, 0, 1, SC_OK, "n0.p1.t0.c4", 0); hist_push(&h[2], &r);
    r = mk(OP_SET, 1, 0, 7, 0, 1, SC_OK, "n0.p1.t0.c5", 0); hist_push(&h[2], &r);
    r = mk(OP_SET, 1, 0, 7, 0, 1, SC_OK, "n0.p1.t0.c6", 0); hist_push(&h[2], &r);
    r = mk(OP_DEL, 1, 0, 3, 12.5, 14.5, SC_ERR_TIMEOUT, NULL, 0); hist_push(&h[2], &r);
    /* pod 2 (namespace 1) */
    r = mk(OP_SET, 2, 0, 8, 0, 1, SC_OK, "n1.p2.t0.c1", 0); hist_push(&h[3], &r);
    vlist V = {0};
    hist_stats so = {0};
    hist_analyse(&x, h, 4, &V, &so);
    VLIST_EACH(&V, m, printf("selftest found: %s\n", m));
    ck_assert_uint_eq(kind_count(&V, "read-your-writes"), 2);
    ck_assert_uint_eq(kind_count(&V, "monotonic reads"), 1);
    ck_assert_uint_eq(kind_count(&V, "foreign value"), 2);
    ck_assert_uint_eq(V.total, 5);
    ck_assert_uint_eq(so.ryw_unknown, 1);
    vlist_free(&V);
    for (int i = 0; i < 4; i++)
        free(h[i].r);
}
END_TEST

static void parse_env(void)
{
    const char *m = getenv("SC_HISTORY_MODE");
    if (m && *m)
        g_force_mode = strcmp(m, "procs") == 0 ? MODE_PROCS : MODE_THREADS;
    const char *s = getenv("SC_HISTORY_SECONDS");
    if (s && *s && atof(s) > 0)
        g_run_ms = (uint64_t)(atof(s) * 1000);
    const char *fs = getenv("SC_HISTORY_FAULTS");
    if (fs && *fs) {
        g_force_faults_set = 1;
        if (strcmp(fs, "all") == 0)
            g_force_faults = (1u << F_NKINDS) - 1;
        char *copy = strdup(fs), *save = NULL;
        for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save))
            for (int k = 0; k < F_NKINDS; k++)
                if (strcmp(w, fault_names[k]) == 0)
                    g_force_faults |= 1u << k;
        free(copy);
    }
    static uint64_t defaults[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const char *one = getenv("SC_HISTORY_SEED");
    const char *list = getenv("SC_HISTORY_SEEDS");
    if (one && *one) {
        g_seeds = malloc(sizeof *g_seeds);
        g_seeds[0] = strtoull(one, NULL, 10);
        g_nseeds = 1;
    } else if (list && strncmp(list, "random:", 7) == 0) {
        g_nseeds = atoi(list + 7);
        g_seeds = malloc((size_t)(g_nseeds > 0 ? g_nseeds : 1) * sizeof *g_seeds);
        uint64_t base = (uint64_t)time(NULL) * 1000 + (uint64_t)getpid() % 1000;
        for (int i = 0; i < g_nseeds; i++)
            g_seeds[i] = base + (uint64_t)i;
    } else if (list && strchr(list, ',')) {
        g_seeds = malloc((strlen(list) + 1) * sizeof *g_seeds);
        char *copy = strdup(list), *save = NULL;
        for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save))
            g_seeds[g_nseeds++] = strtoull(w, NULL, 10);
        free(copy);
    } else if (list && strcmp(list, "0") == 0) {
        g_nseeds = 0; /* the self-test only */
        g_seeds = defaults;
    } else if (list && atoi(list) > 0) {
        g_nseeds = atoi(list);
        g_seeds = malloc((size_t)g_nseeds * sizeof *g_seeds);
        for (int i = 0; i < g_nseeds; i++)
            g_seeds[i] = (uint64_t)i + 1;
    } else {
        g_seeds = defaults;
        g_nseeds = (int)(sizeof defaults / sizeof defaults[0]);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    parse_env();
    Suite *s = suite_create("history");
    TCase *tc = tcase_create("history");
    /* Per seed (up to three runs of it): the faulty phase, opening,
     * quiescence and a failing convergence poll, with a wide margin for a
     * loaded machine. */
    tcase_set_timeout(tc, 3 * ((double)g_run_ms / 1000.0 + 40));
    tcase_add_test(tc, checker_selftest);
    tcase_add_loop_test(tc, history, 0, g_nseeds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
