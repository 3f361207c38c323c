/* bench/behind: what write-behind costs a writer, against writing the
 * database directly (issue 10).
 *
 * Against a private redis-server on loopback and a SQLite file in its temp
 * dir, in one run, per write of a 100-byte value to a distinct key:
 *  - sc_set;
 *  - sc_set_behind with no saver running (the request path alone);
 *  - sc_set_behind while a saver pod in the same process saves the queue into
 *    SQLite (the saver competes for the same CPUs);
 *  - a direct SQLite write: one autocommit versioned upsert per write, with
 *    the default rollback journal (synchronous=FULL) and with WAL
 *    (synchronous=NORMAL);
 *  - the saver's drain: time from the first queued write until
 *    sc_flush_behind saw every write saved, per write.
 * Each figure is the median over --runs runs of the mean per operation.
 * Also printed: Redis memory per queued entry (MEMORY USAGE of the queue
 * holding --ops unsaved writes), what a database outage costs per write.
 *
 * Usage: behind [--ops N] [--runs N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <sqlite3.h>
#include <synccache/synccache.h>

#include "bench_util.h"
#include "redis_server.h"

static sc_test_redis g_redis;
static char g_value[101];

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "behind: %s: %s\n", what, detail ? detail : "");
    sc_test_redis_stop(&g_redis);
    exit(1);
}

static const char *UPSERT = "INSERT INTO kv (key, value, version) VALUES (?1, ?2, ?3) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version "
                            "WHERE excluded.version > version";

typedef struct db {
    sqlite3 *h;
    sqlite3_stmt *up;
} db;

static void db_open(db *d, const char *path, int wal)
{
    if (sqlite3_open(path, &d->h) != SQLITE_OK)
        die("sqlite3_open", sqlite3_errmsg(d->h));
    sqlite3_exec(d->h, wal ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
                           : "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL",
                 NULL, NULL, NULL);
    if (sqlite3_exec(d->h, "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, version INTEGER NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(d->h, UPSERT, -1, &d->up, NULL) != SQLITE_OK)
        die("sqlite", sqlite3_errmsg(d->h));
}

static void db_close(db *d)
{
    sqlite3_finalize(d->up);
    sqlite3_close(d->h);
}

static int db_upsert(db *d, const char *key, const void *val, size_t len, uint64_t version)
{
    sqlite3_bind_text(d->up, 1, key, -1, SQLITE_STATIC);
    if (val)
        sqlite3_bind_blob(d->up, 2, len ? val : "", (int)len, SQLITE_STATIC);
    else
        sqlite3_bind_null(d->up, 2);
    sqlite3_bind_int64(d->up, 3, (sqlite3_int64)version);
    int rc = sqlite3_step(d->up);
    sqlite3_reset(d->up);
    return rc == SQLITE_DONE ? 0 : -1;
}

static sc_status save(const sc_dirty *items, size_t n, void *ud)
{
    db *d = ud;
    if (sqlite3_exec(d->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return SC_ERR_TIMEOUT;
    for (size_t i = 0; i < n; i++)
        if (db_upsert(d, items[i].key, items[i].value, items[i].len, items[i].version) != 0) {
            sqlite3_exec(d->h, "ROLLBACK", NULL, NULL, NULL);
            return SC_ERR_REMOTE;
        }
    return sqlite3_exec(d->h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? SC_OK : SC_ERR_TIMEOUT;
}

static sc_cache *pod(const char *ns, db *saver_db)
{
    sc_options o;
    sc_options_init(&o);
    o.ns = ns;
    o.redis_port = g_redis.port;
    if (saver_db) {
        o.save_fn = save;
        o.save_ud = saver_db;
        o.writeback_interval_ms = 50;
    }
    sc_cache *c;
    if (sc_open(&o, &c) != SC_OK)
        die("sc_open", sc_errmsg(NULL));
    return c;
}

static double bench_writes(sc_cache *c, int ops, int run, int behind)
{
    char key[48];
    double t0 = now_us();
    for (int i = 0; i < ops; i++) {
        snprintf(key, sizeof key, "r%d:k%d", run, i);
        sc_status s = behind ? sc_set_behind(c, key, g_value, 100, 0) : sc_set(c, key, g_value, 100, 0);
        if (s != SC_OK)
            die(behind ? "sc_set_behind" : "sc_set", sc_errmsg(c));
    }
    return (now_us() - t0) / ops;
}

static double bench_sqlite(const char *path, int wal, int ops, int run)
{
    db d;
    db_open(&d, path, wal);
    char key[48];
    double t0 = now_us();
    for (int i = 0; i < ops; i++) {
        snprintf(key, sizeof key, "r%d:k%d", run, i);
        if (db_upsert(&d, key, g_value, 100, (uint64_t)i + 1) != 0)
            die("sqlite upsert", sqlite3_errmsg(d.h));
    }
    double us = (now_us() - t0) / ops;
    db_close(&d);
    return us;
}

static long long redis_int(const char *fmt, const char *arg)
{
    redisContext *rc = sc_test_redis_connect(&g_redis);
    if (!rc)
        die("connect", "");
    redisReply *r = redisCommand(rc, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return v;
}

int main(int argc, char **argv)
{
    int ops = 2000, runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ops") == 0)
            ops = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
    }
    if (ops < 1 || runs < 1 || runs > MAX_RUNS)
        die("usage", "behind [--ops N >= 1] [--runs 1..64]");
    memset(g_value, 'v', 100);
    if (sc_test_redis_start(&g_redis, NULL) != 0)
        die("redis-server", "cannot start");
    char path_journal[400], path_wal[400], path_saver[400];
    snprintf(path_journal, sizeof path_journal, "%s/direct-journal.db", g_redis.dir);
    snprintf(path_wal, sizeof path_wal, "%s/direct-wal.db", g_redis.dir);
    snprintf(path_saver, sizeof path_saver, "%s/saver.db", g_redis.dir);

    double set[MAX_RUNS], behind_alone[MAX_RUNS], behind_saving[MAX_RUNS], drain[MAX_RUNS], journal[MAX_RUNS],
        wal[MAX_RUNS];
    long long queue_bytes = -1;
    for (int r = 0; r < runs; r++) {
        char ns[32];
        snprintf(ns, sizeof ns, "bench-set-%d", r);
        sc_cache *c = pod(ns, NULL);
        set[r] = bench_writes(c, ops, r, 0);
        sc_close(c);

        /* No saver: the request path alone, and the queue it leaves. */
        snprintf(ns, sizeof ns, "bench-alone-%d", r);
        c = pod(ns, NULL);
        behind_alone[r] = bench_writes(c, ops, r, 1);
        if (r == 0) {
            char key[64];
            snprintf(key, sizeof key, "{%s}:wb", ns);
            queue_bytes = redis_int("MEMORY USAGE %s SAMPLES 0", key);
        }
        sc_close(c);

        /* A saver in the same process saves into SQLite (WAL) meanwhile. */
        snprintf(ns, sizeof ns, "bench-saving-%d", r);
        db sd;
        db_open(&sd, path_saver, 1);
        sc_cache *saver = pod(ns, &sd);
        c = pod(ns, NULL);
        double t0 = now_us();
        behind_saving[r] = bench_writes(c, ops, r, 1);
        if (sc_flush_behind(c, 60000) != SC_OK)
            die("sc_flush_behind", sc_errmsg(c));
        drain[r] = (now_us() - t0) / ops;
        sc_close(c);
        sc_close(saver);
        db_close(&sd);

        journal[r] = bench_sqlite(path_journal, 0, ops, r);
        wal[r] = bench_sqlite(path_wal, 1, ops, r);
    }
    sc_test_redis_stop(&g_redis);

    printf("## Write-behind: per write of a 100-byte value (%d writes, median of %d runs)\n\n", ops, runs);
    printf("| write | us per write |\n|---|---:|\n");
    printf("| sc_set | %.1f |\n", median(set, runs));
    printf("| sc_set_behind, no saver running | %.1f |\n", median(behind_alone, runs));
    printf("| sc_set_behind, a saver saving into SQLite meanwhile | %.1f |\n", median(behind_saving, runs));
    printf("| ... and until sc_flush_behind saw all saved (drain) | %.1f |\n", median(drain, runs));
    printf("| direct SQLite upsert, rollback journal, synchronous=FULL | %.1f |\n", median(journal, runs));
    printf("| direct SQLite upsert, WAL, synchronous=NORMAL | %.1f |\n", median(wal, runs));
    if (queue_bytes > 0)
        printf("\nRedis memory per unsaved write in the queue (100-byte value, ~10-byte key): %.0f bytes "
               "(MEMORY USAGE of %d entries)\n",
               (double)queue_bytes / ops, ops);
    return 0;
}
