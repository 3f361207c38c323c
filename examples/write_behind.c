/* Write-behind into SQLite: a "web" pod writes with sc_set_behind and
 * sc_delete_behind (fast: one Redis script, the database is not touched on
 * the request path); a "saver" pod, which could be any other process of the
 * service, saves the namespace's queue into a SQLite file in batches. The
 * store refuses older writes by version, so a batch offered twice (after a
 * takeover) or late never moves a row backwards, and a delete is kept as a
 * tombstone row so a late older set cannot bring the key back.
 *
 *   write_behind [--socket PATH | --port N] [--db FILE]   (default kv.db)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <synccache/synccache.h>

static const char *SCHEMA = "CREATE TABLE IF NOT EXISTS kv ("
                            "  key     TEXT PRIMARY KEY,"
                            "  value   BLOB,"              /* NULL: deleted (a tombstone) */
                            "  version INTEGER NOT NULL)"; /* the Redis version of the write */

/* The versioned upsert: a row only ever moves to a newer version. */
static const char *UPSERT = "INSERT INTO kv (key, value, version) VALUES (?1, ?2, ?3) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version "
                            "WHERE excluded.version > version";

typedef struct store {
    sqlite3 *db;
    sqlite3_stmt *upsert;
} store;

/* sc_save_fn: one transaction per batch. Anything but SC_OK means nothing
 * counts as saved: synccache keeps the writes queued in Redis and retries. */
static sc_status save(const sc_dirty *items, size_t n, void *ud)
{
    store *s = ud;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return SC_ERR_TIMEOUT; /* locked or busy: try again later */
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(s->upsert, 1, items[i].key, -1, SQLITE_STATIC);
        if (items[i].value)
            sqlite3_bind_blob(s->upsert, 2, items[i].len ? items[i].value : "", (int)items[i].len, SQLITE_STATIC);
        else
            sqlite3_bind_null(s->upsert, 2);
        sqlite3_bind_int64(s->upsert, 3, (sqlite3_int64)items[i].version);
        int rc = sqlite3_step(s->upsert);
        sqlite3_reset(s->upsert);
        if (rc != SQLITE_DONE) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return SC_ERR_REMOTE;
        }
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return SC_ERR_TIMEOUT;
    }
    printf("  saver: saved a batch of %zu\n", n);
    return SC_OK;
}

static sc_cache *open_pod(const char *id, const char *sock, int port, store *s)
{
    sc_options o;
    sc_options_init(&o);
    o.pod_id = id;
    o.ns = "example-wb";
    o.redis_unix_socket = sock;
    if (port)
        o.redis_port = port;
    if (s) {
        o.save_fn = save;      /* this pod saves the namespace's queue */
        o.save_ud = s;
        o.writeback_interval_ms = 100;
    }
    sc_cache *c;
    sc_status st = sc_open(&o, &c);
    if (st != SC_OK) {
        fprintf(stderr, "sc_open: %s: %s\n", sc_strerror(st), sc_errmsg(NULL));
        exit(1);
    }
    return c;
}

static void check(sc_status s, sc_cache *c, const char *what)
{
    if (s != SC_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, sc_strerror(s), sc_errmsg(c));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *path = "kv.db";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--db") == 0)
            path = argv[i + 1];
    }
    store s = {0};
    if (sqlite3_open(path, &s.db) != SQLITE_OK || sqlite3_exec(s.db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s.db, UPSERT, -1, &s.upsert, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite %s: %s\n", path, sqlite3_errmsg(s.db));
        return 1;
    }
    sc_cache *web = open_pod("web", sock, port, NULL);
    sc_cache *saver = open_pod("saver", sock, port, &s);

    /* The request path: each call returns once Redis has the value and the
     * queue entry; every pod can read the value at once. */
    char key[32], val[64];
    for (int i = 1; i <= 5; i++) {
        snprintf(key, sizeof key, "user:%d", i);
        snprintf(val, sizeof val, "{\"name\":\"user %d\"}", i);
        check(sc_set_behind(web, key, val, strlen(val), 0), web, "sc_set_behind");
    }
    for (int i = 0; i < 100; i++) { /* a hot key: saved once per batch */
        snprintf(val, sizeof val, "{\"visits\":%d}", i + 1);
        check(sc_set_behind(web, "counter", val, strlen(val), 0), web, "sc_set_behind");
    }
    check(sc_delete_behind(web, "user:3"), web, "sc_delete_behind");

    /* Wait until everything queued so far is in the database. */
    check(sc_flush_behind(web, 10000), web, "sc_flush_behind");

    printf("database %s:\n", path);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(s.db, "SELECT key, value, version FROM kv ORDER BY key", -1, &q, NULL);
    while (sqlite3_step(q) == SQLITE_ROW)
        printf("  %-10s %-24s version %lld\n", (const char *)sqlite3_column_text(q, 0),
               sqlite3_column_type(q, 1) == SQLITE_NULL ? "(deleted)" : (const char *)sqlite3_column_text(q, 1),
               (long long)sqlite3_column_int64(q, 2));
    sqlite3_finalize(q);

    sc_stats st;
    sc_stats_get(saver, &st);
    printf("saver: %llu writes saved, %llu failed saves, %llu still queued\n", (unsigned long long)st.behind_saved,
           (unsigned long long)st.behind_save_failures, (unsigned long long)st.behind_pending);
    sc_close(web);
    sc_close(saver); /* before the database: save_fn may run until here */
    sqlite3_finalize(s.upsert);
    sqlite3_close(s.db);
    return 0;
}
