/* podsim --workload fetch: cache-aside loading in front of a real database.
 *
 * A SQLite file (WAL mode) holds the rows items(id, val, ver). Pod processes
 * read through sc_fetch with a loader that runs SELECT on their own
 * connection; a writer process updates random rows (ver + 1, then
 * sc_tag_deleted of the key: "update the database, then delete the cache").
 * A share of the requests asks for ids that have no row, so not-found
 * caching shows too.
 *
 * Stale reads are judged against what the writer had finished: after each
 * tag returns, the writer publishes the row's new version in shared memory;
 * a pod reads that version before a fetch starts, and a fetch that returns
 * an older version is stale. With --consistency strong there must be none
 * (the exit status is 1 otherwise); eventual may serve some, by design.
 *
 * The report: one line per second (requests/s, database reads/s, writes/s,
 * stale reads) and a summary on stdout, and the same as a self-contained
 * HTML page with a chart (--report). Counters travel through a shared
 * memory page (each pod writes only its own slot).
 *
 * Usage: podsim --workload fetch [--pods N] [--threads N] [--keys N]
 *        [--duration SEC] [--rate OPS] [--write-rate N]
 *        [--consistency strong|eventual] [--missing-ratio F] [--db FILE]
 *        [--report FILE]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <sqlite3.h>

#include "podsim.h"
#include "redis_server.h"

#define PF_MAX_PODS 32

typedef struct pf_pod_counters {
    atomic_ullong requests, db_reads, stale, errors, not_found;
} pf_pod_counters;

typedef struct pf_shared {
    atomic_int stop;
    atomic_ullong writes;
    pf_pod_counters pod[PF_MAX_PODS];
    atomic_ullong committed[]; /* per key: the version the writer finished */
} pf_shared;

typedef struct pf_config {
    int pods, threads;
    unsigned keys;
    unsigned duration_s;
    unsigned rate;        /* requests/s per pod; 0 = unlimited */
    unsigned write_rate;  /* row updates/s */
    double missing_ratio; /* share of requests for ids with no row */
    sc_consistency consistency;
    char db[512];
    char report[512];     /* HTML report path ("" : none) */
    int redis_port;
} pf_config;

static uint64_t pf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pf_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

static uint64_t pf_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* ---- the database ---- */

static int db_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "podsim: sqlite: %s: %s\n", sql, err ? err : "?");
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static int db_create(const pf_config *cfg)
{
    unlink(cfg->db);
    sqlite3 *db;
    if (sqlite3_open(cfg->db, &db) != SQLITE_OK) {
        fprintf(stderr, "podsim: cannot create %s: %s\n", cfg->db, sqlite3_errmsg(db));
        sqlite3_close(db);
        return -1;
    }
    int rc = db_exec(db, "PRAGMA journal_mode=WAL") || db_exec(db, "PRAGMA synchronous=NORMAL") ||
             db_exec(db, "CREATE TABLE items(id TEXT PRIMARY KEY, val TEXT NOT NULL, ver INTEGER NOT NULL)") ||
             db_exec(db, "BEGIN");
    sqlite3_stmt *st = NULL;
    if (!rc && sqlite3_prepare_v2(db, "INSERT INTO items VALUES(?, ?, 0)", -1, &st, NULL) != SQLITE_OK)
        rc = -1;
    for (unsigned i = 0; !rc && i < cfg->keys; i++) {
        char id[32], val[64];
        snprintf(id, sizeof id, "item:%u", i);
        snprintf(val, sizeof val, "0:%s", id);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, val, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = -1;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = db_exec(db, "COMMIT");
    sqlite3_close(db);
    return rc;
}

static sqlite3 *db_open(const pf_config *cfg, int readonly)
{
    sqlite3 *db;
    int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(cfg->db, &db, flags, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 2000);
    return db;
}

/* ---- a pod ---- */

typedef struct pf_thread {
    const pf_config *cfg;
    pf_shared *sh;
    pf_pod_counters *ctr;
    sc_cache *cache;
    sqlite3 *db;
    sqlite3_stmt *sel;
    uint64_t seed;
} pf_thread;

/* The loader: one SELECT on this thread's connection. */
static sc_status pf_load(const char *key, sc_loaded *slot, void *ud)
{
    pf_thread *t = ud;
    atomic_fetch_add(&t->ctr->db_reads, 1);
    sqlite3_reset(t->sel);
    sqlite3_bind_text(t->sel, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(t->sel);
    if (rc == SQLITE_DONE)
        return SC_NOT_FOUND;
    if (rc != SQLITE_ROW) {
        sc_loaded_error(slot, "sqlite: %s", sqlite3_errmsg(t->db));
        return SC_ERR_REMOTE;
    }
    const unsigned char *val = sqlite3_column_text(t->sel, 0);
    sc_loaded_set(slot, val, (size_t)sqlite3_column_bytes(t->sel, 0));
    sqlite3_reset(t->sel);
    return SC_OK;
}

/* 80% of requests go to 20% of the ids. */
static unsigned pf_pick(pf_thread *t)
{
    uint64_t r = pf_rand(&t->seed);
    unsigned hot = t->cfg->keys / 5 ? t->cfg->keys / 5 : 1;
    return (r % 100) < 80 ? (unsigned)((r >> 8) % hot) : (unsigned)((r >> 8) % t->cfg->keys);
}

static void *pf_reader(void *p)
{
    pf_thread *t = p;
    const pf_config *cfg = t->cfg;
    double per_thread = cfg->rate ? (double)cfg->rate / cfg->threads : 0;
    uint64_t start = pf_now_ms(), n = 0;
    while (!atomic_load(&t->sh->stop)) {
        char key[32];
        unsigned id;
        int missing = (double)(pf_rand(&t->seed) % 10000) / 10000.0 < cfg->missing_ratio;
        if (missing) {
            id = (unsigned)(pf_rand(&t->seed) % 1000);
            snprintf(key, sizeof key, "none:%u", id);
        } else {
            id = pf_pick(t);
            snprintf(key, sizeof key, "item:%u", id);
        }
        uint64_t before = missing ? 0 : atomic_load(&t->sh->committed[id]);
        sc_value *v = NULL;
        sc_status s = sc_fetch(t->cache, key, 30000, pf_load, t, &v);
        atomic_fetch_add(&t->ctr->requests, 1);
        if (s == SC_OK) {
            unsigned long long ver = strtoull(sc_value_data(v), NULL, 10);
            if (ver < before)
                atomic_fetch_add(&t->ctr->stale, 1);
        } else if (s == SC_NOT_FOUND) {
            atomic_fetch_add(&t->ctr->not_found, 1);
        } else {
            atomic_fetch_add(&t->ctr->errors, 1);
        }
        sc_value_release(v);
        n++;
        if (per_thread > 0) {
            uint64_t due = start + (uint64_t)((double)n * 1000.0 / per_thread);
            uint64_t now = pf_now_ms();
            if (due > now)
                pf_sleep_us((long)(due - now) * 1000);
        }
    }
    return NULL;
}

static sc_cache *pf_open(const pf_config *cfg, const char *id)
{
    sc_options o;
    sc_options_init(&o);
    o.ns = "podsim_fetch";
    o.pod_id = id;
    o.redis_port = cfg->redis_port;
    o.redis_pool_size = (unsigned)cfg->threads + 2;
    o.consistency = cfg->consistency;
    o.empty_ttl_ms = 5000;
    o.local_max_entries = cfg->keys;
    sc_cache *c = NULL;
    if (sc_open(&o, &c) != SC_OK) {
        fprintf(stderr, "podsim: %s: sc_open: %s\n", id, sc_errmsg(NULL));
        return NULL;
    }
    return c;
}

static int pf_pod_main(const pf_config *cfg, pf_shared *sh, int idx)
{
    char id[32];
    snprintf(id, sizeof id, "fetch-pod-%d", idx);
    sc_cache *c = pf_open(cfg, id);
    if (!c)
        return 1;
    pf_thread t[64];
    pthread_t th[64];
    for (int i = 0; i < cfg->threads; i++) {
        t[i] = (pf_thread){cfg, sh, &sh->pod[idx], c, db_open(cfg, 1), NULL, (uint64_t)(idx * 1000 + i) * 2654435761u + 1};
        if (!t[i].db || sqlite3_prepare_v2(t[i].db, "SELECT val FROM items WHERE id = ?", -1, &t[i].sel, NULL) != SQLITE_OK) {
            fprintf(stderr, "podsim: %s: cannot open %s\n", id, cfg->db);
            return 1;
        }
        pthread_create(&th[i], NULL, pf_reader, &t[i]);
    }
    for (int i = 0; i < cfg->threads; i++) {
        pthread_join(th[i], NULL);
        sqlite3_finalize(t[i].sel);
        sqlite3_close(t[i].db);
    }
    sc_close(c);
    return 0;
}

/* The writer: UPDATE a row (commit), then tag its key, then publish the
 * version as finished. */
static int pf_writer_main(const pf_config *cfg, pf_shared *sh)
{
    sc_cache *c = pf_open(cfg, "fetch-writer");
    sqlite3 *db = db_open(cfg, 0);
    sqlite3_stmt *up = NULL;
    if (!c || !db ||
        sqlite3_prepare_v2(db, "UPDATE items SET ver = ver + 1, val = (ver + 1) || ':' || id WHERE id = ? RETURNING ver",
                           -1, &up, NULL) != SQLITE_OK) {
        fprintf(stderr, "podsim: writer: %s\n", db ? sqlite3_errmsg(db) : "cannot open the database");
        return 1;
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull, start = pf_now_ms(), n = 0;
    while (!atomic_load(&sh->stop)) {
        unsigned i = (unsigned)(pf_rand(&seed) % 100) < 80 ? (unsigned)(pf_rand(&seed) % (cfg->keys / 5 ? cfg->keys / 5 : 1))
                                                         : (unsigned)(pf_rand(&seed) % cfg->keys);
        char key[32];
        snprintf(key, sizeof key, "item:%u", i);
        sqlite3_reset(up);
        sqlite3_bind_text(up, 1, key, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(up) == SQLITE_ROW) {
            unsigned long long ver = (unsigned long long)sqlite3_column_int64(up, 0);
            while (sqlite3_step(up) == SQLITE_ROW)
                ;
            sqlite3_reset(up);
            if (sc_tag_deleted(c, key) == SC_OK) {
                atomic_store(&sh->committed[i], ver);
                atomic_fetch_add(&sh->writes, 1);
            } else {
                fprintf(stderr, "podsim: writer: sc_tag_deleted: %s\n", sc_errmsg(c));
            }
        }
        n++;
        if (cfg->write_rate) {
            uint64_t due = start + n * 1000 / cfg->write_rate;
            uint64_t now = pf_now_ms();
            if (due > now)
                pf_sleep_us((long)(due - now) * 1000);
        }
    }
    sqlite3_finalize(up);
    sqlite3_close(db);
    sc_close(c);
    return 0;
}

/* ---- the report ---- */

typedef struct pf_second {
    double req, db, writes, not_found;
    unsigned long long stale;
} pf_second;

/* One SVG line chart of requests/s and database reads/s per second. */
static void pf_chart(FILE *f, const pf_second *sec, unsigned n)
{
    const int W = 900, H = 320, L = 70, R = 20, T = 20, B = 40;
    double top = 1;
    for (unsigned i = 0; i < n; i++)
        top = sec[i].req > top ? sec[i].req : top;
    double mag = 1;
    while (mag * 10 < top)
        mag *= 10;
    top = ((unsigned long long)(top / mag) + 1) * mag;
    fprintf(f, "<svg width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    for (int g = 0; g <= 4; g++) {
        double y = T + (H - T - B) * (1 - g / 4.0);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>", L, y, W - R, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", L - 6, y + 4, top * g / 4);
    }
    const char *colors[2] = {"#1f77b4", "#d62728"};
    for (int s2 = 0; s2 < 2; s2++) {
        fprintf(f, "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"%s\" points=\"", colors[s2]);
        for (unsigned i = 0; i < n; i++) {
            double v = s2 == 0 ? sec[i].req : sec[i].db;
            double x = L + (W - L - R) * (n > 1 ? (double)i / (n - 1) : 0.5);
            double y = T + (H - T - B) * (1 - v / top);
            fprintf(f, "%.1f,%.1f ", x, y);
        }
        fprintf(f, "\"/>\n");
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">second of the run (1..%u)</text>\n", (L + W - R) / 2,
            H - 8, n);
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"%s\">requests/s</text>", L + 10, T + 14, colors[0]);
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"%s\">database reads/s</text>\n", L + 110, T + 14, colors[1]);
    fprintf(f, "</svg>\n");
}

static int pf_report(const pf_config *cfg, const pf_second *sec, unsigned n, const char *summary)
{
    FILE *f = fopen(cfg->report, "w");
    if (!f)
        return -1;
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>podsim fetch</title></head>"
               "<body style=\"font-family:sans-serif\">\n<h1>podsim --workload fetch</h1>\n");
    fprintf(f, "<p>%d pods x %d threads, %u rows (SQLite), %s consistency, %u requests/s per pod, %u writes + tags/s, "
               "%.0f%% requests for missing ids.</p>\n",
            cfg->pods, cfg->threads, cfg->keys, cfg->consistency == SC_STRONG ? "strong" : "eventual", cfg->rate,
            cfg->write_rate, cfg->missing_ratio * 100);
    pf_chart(f, sec, n);
    fprintf(f, "<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\"><tr><th>second</th>"
               "<th>requests/s</th><th>db reads/s</th><th>db reads / request</th><th>writes/s</th>"
               "<th>not found/s</th><th>stale reads (total)</th></tr>\n");
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "<tr><td>%u</td><td>%.0f</td><td>%.0f</td><td>%.3f</td><td>%.0f</td><td>%.0f</td><td>%llu</td></tr>\n",
                i + 1, sec[i].req, sec[i].db, sec[i].req > 0 ? sec[i].db / sec[i].req : 0.0, sec[i].writes,
                sec[i].not_found, sec[i].stale);
    fprintf(f, "</table>\n<p>%s</p>\n</body></html>\n", summary);
    return fclose(f);
}

/* ---- the run ---- */

static void pf_usage(void)
{
    fprintf(stderr,
            "usage: podsim --workload fetch [options]\n"
            "  --pods N               reading pods (processes), default 4\n"
            "  --threads N            fetching threads per pod, default 2\n"
            "  --keys N               rows in the database, default 1000\n"
            "  --duration SEC         default 10\n"
            "  --rate OPS             requests/s per pod, default 2000 (0 = as fast as possible)\n"
            "  --write-rate N         row updates (+ tag) per second, default 50\n"
            "  --missing-ratio F      share of requests for ids with no row, default 0.05\n"
            "  --consistency strong|eventual   default strong\n"
            "  --db FILE              SQLite file, default a temp file\n"
            "  --report FILE          HTML report, default podsim-fetch-report.html next to the\n"
            "                         podsim binary (else in $TMPDIR) (\"\": none)\n");
}

static int pf_parse(int argc, char **argv, pf_config *c)
{
    *c = (pf_config){.pods = 4, .threads = 2, .keys = 1000, .duration_s = 10, .rate = 2000, .write_rate = 50,
                     .missing_ratio = 0.05, .consistency = SC_STRONG};
    ps_default_report_path("podsim-fetch-report.html", c->report, sizeof c->report);
    enum { O_PODS = 1, O_THREADS, O_KEYS, O_DURATION, O_RATE, O_WRATE, O_MISSING, O_CONS, O_DB, O_WORKLOAD, O_REPORT };
    static const struct option opts[] = {
        {"pods", required_argument, NULL, O_PODS},
        {"threads", required_argument, NULL, O_THREADS},
        {"keys", required_argument, NULL, O_KEYS},
        {"duration", required_argument, NULL, O_DURATION},
        {"rate", required_argument, NULL, O_RATE},
        {"write-rate", required_argument, NULL, O_WRATE},
        {"missing-ratio", required_argument, NULL, O_MISSING},
        {"consistency", required_argument, NULL, O_CONS},
        {"db", required_argument, NULL, O_DB},
        {"workload", required_argument, NULL, O_WORKLOAD},
        {"report", required_argument, NULL, O_REPORT},
        {NULL, 0, NULL, 0},
    };
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_PODS: c->pods = atoi(optarg); break;
        case O_THREADS: c->threads = atoi(optarg); break;
        case O_KEYS: c->keys = (unsigned)strtoul(optarg, NULL, 10); break;
        case O_DURATION: c->duration_s = (unsigned)strtoul(optarg, NULL, 10); break;
        case O_RATE: c->rate = (unsigned)strtoul(optarg, NULL, 10); break;
        case O_WRATE: c->write_rate = (unsigned)strtoul(optarg, NULL, 10); break;
        case O_MISSING: c->missing_ratio = strtod(optarg, NULL); break;
        case O_CONS:
            if (strcmp(optarg, "strong") == 0)
                c->consistency = SC_STRONG;
            else if (strcmp(optarg, "eventual") == 0)
                c->consistency = SC_EVENTUAL;
            else
                return -1;
            break;
        case O_DB: snprintf(c->db, sizeof c->db, "%s", optarg); break;
        case O_REPORT: snprintf(c->report, sizeof c->report, "%s", optarg); break;
        case O_WORKLOAD:
            if (strcmp(optarg, "fetch") != 0)
                return -1;
            break;
        default: return -1;
        }
    }
    if (optind < argc || c->pods < 1 || c->pods > PF_MAX_PODS || c->threads < 1 || c->threads > 64 ||
        c->keys < 1 || c->keys > 10000000 || c->duration_s < 1 || c->missing_ratio < 0 || c->missing_ratio > 1)
        return -1;
    return 0;
}

int ps_fetch_main(int argc, char **argv)
{
    pf_config cfg;
    if (pf_parse(argc, argv, &cfg) != 0) {
        pf_usage();
        return 2;
    }
    sc_test_redis redis;
    if (sc_test_redis_start(&redis, NULL) != 0)
        return 1;
    cfg.redis_port = redis.port;
    if (!cfg.db[0])
        snprintf(cfg.db, sizeof cfg.db, "%s/podsim-fetch.db", redis.dir);
    if (db_create(&cfg) != 0) {
        sc_test_redis_stop(&redis);
        return 1;
    }
    size_t shsize = sizeof(pf_shared) + cfg.keys * sizeof(atomic_ullong);
    pf_shared *sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("podsim: mmap");
        sc_test_redis_stop(&redis);
        return 1;
    }
    memset(sh, 0, shsize);
    printf("podsim fetch: %d pods x %d threads, %u rows in %s, %s consistency, %u req/s per pod, %u writes/s, "
           "%.0f%% requests for missing ids, %u s\n",
           cfg.pods, cfg.threads, cfg.keys, cfg.db, cfg.consistency == SC_STRONG ? "strong" : "eventual", cfg.rate,
           cfg.write_rate, cfg.missing_ratio * 100, cfg.duration_s);
    fflush(stdout);

    pid_t kids[PF_MAX_PODS + 1];
    int nkids = 0;
    for (int i = 0; i <= cfg.pods; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("podsim: fork");
            atomic_store(&sh->stop, 1);
            break;
        }
        if (pid == 0)
            _exit(i == cfg.pods ? pf_writer_main(&cfg, sh) : pf_pod_main(&cfg, sh, i));
        kids[nkids++] = pid;
    }

    printf("%4s %10s %10s %8s %8s %10s %7s\n", "sec", "req/s", "db reads/s", "db/req", "writes/s", "not found/s",
           "stale");
    unsigned long long prev_req = 0, prev_db = 0, prev_w = 0, prev_nf = 0;
    pf_second *secs = calloc(cfg.duration_s, sizeof *secs);
    unsigned nsec = 0;
    for (unsigned s = 1; s <= cfg.duration_s && !atomic_load(&sh->stop); s++) {
        sleep(1);
        unsigned long long req = 0, db = 0, nf = 0, stale = 0;
        for (int i = 0; i < cfg.pods; i++) {
            req += atomic_load(&sh->pod[i].requests);
            db += atomic_load(&sh->pod[i].db_reads);
            nf += atomic_load(&sh->pod[i].not_found);
            stale += atomic_load(&sh->pod[i].stale);
        }
        unsigned long long w = atomic_load(&sh->writes);
        printf("%4u %10llu %10llu %8.3f %8llu %10llu %7llu\n", s, req - prev_req, db - prev_db,
               req > prev_req ? (double)(db - prev_db) / (double)(req - prev_req) : 0.0, w - prev_w, nf - prev_nf,
               stale);
        fflush(stdout);
        if (secs)
            secs[nsec++] = (pf_second){(double)(req - prev_req), (double)(db - prev_db), (double)(w - prev_w),
                                       (double)(nf - prev_nf), stale};
        prev_req = req;
        prev_db = db;
        prev_w = w;
        prev_nf = nf;
    }
    atomic_store(&sh->stop, 1);
    int failed = 0;
    for (int i = 0; i < nkids; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    unsigned long long req = 0, db = 0, stale = 0, errors = 0, nf = 0;
    for (int i = 0; i < cfg.pods; i++) {
        req += atomic_load(&sh->pod[i].requests);
        db += atomic_load(&sh->pod[i].db_reads);
        stale += atomic_load(&sh->pod[i].stale);
        errors += atomic_load(&sh->pod[i].errors);
        nf += atomic_load(&sh->pod[i].not_found);
    }
    unsigned long long writes = atomic_load(&sh->writes);
    char summary[512];
    snprintf(summary, sizeof summary,
             "summary: %llu requests, %llu database reads (%.4f per request), %llu not found, %llu writes + tags, "
             "%llu errors, %llu stale reads%s, %d process failures",
             req, db, req ? (double)db / (double)req : 0.0, nf, writes, errors, stale,
             cfg.consistency == SC_STRONG ? " (strong: must be 0)" : " (eventual: allowed while a tagged key reloads)",
             failed);
    printf("\n%s\n", summary);
    if (cfg.report[0] && secs) {
        if (pf_report(&cfg, secs, nsec, summary) == 0)
            printf("report: %s\n", cfg.report);
        else
            fprintf(stderr, "podsim: cannot write %s: %s\n", cfg.report, strerror(errno));
    }
    free(secs);
    munmap(sh, shsize);
    sc_test_redis_stop(&redis);
    return failed || (cfg.consistency == SC_STRONG && stale) ? 1 : 0;
}
