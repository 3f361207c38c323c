/* podsim --write-behind DB_FILE: every pod saves the namespace's
 * write-behind queue into one SQLite file (each pod its own connection, WAL,
 * a versioned upsert per item, one transaction per batch), writers write
 * with sc_set_behind, and at the end the parent compares the database with
 * Redis for every key.
 *
 * Built only when SQLite is found; otherwise the option says so.
 */
#include "podsim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PS_HAVE_SQLITE
#include <sqlite3.h>

int ps_wb_available(void)
{
    return 1;
}

static const char *SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, "
                            "version INTEGER NOT NULL)";
static const char *UPSERT = "INSERT INTO kv (key, value, version) VALUES (?1, ?2, ?3) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version "
                            "WHERE excluded.version > version";

void *ps_wb_open(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    /* Several processes write the file: WAL, and wait for the lock rather
     * than fail at once (a failure is retried by the library anyway). */
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

void ps_wb_close(void *db)
{
    sqlite3_close(db);
}

sc_status ps_wb_save(const sc_dirty *items, size_t n, void *ud)
{
    sqlite3 *db = ud;
    sqlite3_stmt *st = NULL;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return SC_ERR_TIMEOUT;
    if (sqlite3_prepare_v2(db, UPSERT, -1, &st, NULL) != SQLITE_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(st, 1, items[i].key, -1, SQLITE_STATIC);
        if (items[i].value)
            sqlite3_bind_blob(st, 2, items[i].len ? items[i].value : "", (int)items[i].len, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)items[i].version);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto fail;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return SC_OK;
    st = NULL;
fail:
    sqlite3_finalize(st);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return SC_ERR_REMOTE;
}

void ps_wb_end_check(const ps_config *cfg, ps_run *run)
{
    run->wb_checked = 1;
    char err[200];
    sqlite3 *db = ps_wb_open(cfg->write_behind_db, err, sizeof err);
    redisContext *rc = ps_redis_connect(cfg);
    sqlite3_stmt *st = NULL;
    if (!db || !rc || sqlite3_prepare_v2(db, "SELECT value, version FROM kv WHERE key = ?", -1, &st, NULL) != SQLITE_OK) {
        snprintf(run->wb_note, sizeof run->wb_note, "cannot run the check: %.150s",
                 !db ? err : !rc ? "Redis unreachable" : sqlite3_errmsg(db));
        run->wb_mismatch = 1;
        goto out;
    }
    /* Pipelined in chunks: one round trip per 500 keys. */
    const unsigned chunk = 500;
    for (unsigned from = 0; from < cfg->keys; from += chunk) {
        unsigned to = from + chunk < cfg->keys ? from + chunk : cfg->keys;
        for (unsigned rank = from; rank < to; rank++) {
            char key[32], ns[128];
            snprintf(key, sizeof key, "k%u", rank);
            ps_key_ns(cfg, key, ns, sizeof ns);
            redisAppendCommand(rc, "HMGET {%s}:k:%s value version", ns, key);
        }
        for (unsigned rank = from; rank < to; rank++) {
            redisReply *r = NULL;
            if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                snprintf(run->wb_note, sizeof run->wb_note, "Redis read failed at key k%u", rank);
                run->wb_mismatch++;
                if (r)
                    freeReplyObject(r);
                goto out;
            }
            char key[32];
            snprintf(key, sizeof key, "k%u", rank);
            const redisReply *val = r->element[0], *ver = r->element[1];
            int in_redis = val->type == REDIS_REPLY_STRING;
            uint64_t rv = ver->type == REDIS_REPLY_STRING ? strtoull(ver->str, NULL, 10) : 0;
            sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
            int row = sqlite3_step(st) == SQLITE_ROW;
            int in_db = row && sqlite3_column_type(st, 0) != SQLITE_NULL;
            uint64_t dv = row ? (uint64_t)sqlite3_column_int64(st, 1) : 0;
            int same = in_redis == in_db;
            if (same && in_redis)
                same = dv == rv && (size_t)sqlite3_column_bytes(st, 0) == val->len &&
                       memcmp(sqlite3_column_blob(st, 0), val->str, val->len) == 0;
            if (in_redis)
                run->wb_keys++;
            if (same) {
                run->wb_equal += in_redis; /* keys in neither are not counted */
            } else if (!in_redis) {
                run->wb_redis_missing++; /* e.g. a Redis restart lost it; not a store failure */
            } else if (run->wb_mismatch++ == 0) {
                snprintf(run->wb_note, sizeof run->wb_note,
                         "%s: Redis version %" PRIu64 ", database %s version %" PRIu64, key, rv,
                         in_db ? "value with" : "no value,", dv);
            }
            sqlite3_reset(st);
            freeReplyObject(r);
        }
    }
out:
    sqlite3_finalize(st);
    if (db)
        sqlite3_close(db);
    if (rc)
        redisFree(rc);
}

#else /* !PS_HAVE_SQLITE */

int ps_wb_available(void)
{
    return 0;
}

void *ps_wb_open(const char *path, char *err, size_t errlen)
{
    (void)path;
    snprintf(err, errlen, "podsim was built without SQLite (libsqlite3-dev)");
    return NULL;
}

void ps_wb_close(void *db)
{
    (void)db;
}

sc_status ps_wb_save(const sc_dirty *items, size_t n, void *ud)
{
    (void)items;
    (void)n;
    (void)ud;
    return SC_ERR_INVALID;
}

void ps_wb_end_check(const ps_config *cfg, ps_run *run)
{
    (void)cfg;
    run->wb_checked = 1;
    run->wb_mismatch = 1;
    snprintf(run->wb_note, sizeof run->wb_note, "built without SQLite");
}

#endif
