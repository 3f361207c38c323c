/* Write-behind (issue 10) against a private redis-server and a real SQLite
 * database file: writes saved by another pod, coalescing of a hot key,
 * failing and locked stores, a saver killed with SIGKILL in the middle of a
 * save, writes queued while no pod saves, sc_close during a save (and a
 * save that outlives writeback_claim_ms), ordering of a delete after a set,
 * and bad input. Each test uses its own namespace and database file.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "support/pods.h"

sc_test_redis g_redis;

#define NS(name) "wb_" name

/* ---- a store: one SQLite file, one connection per saving pod ---- */

typedef struct store {
    sqlite3 *db;
    atomic_int calls;        /* save_fn calls */
    atomic_int saved_items;  /* items of successful calls */
    atomic_int hot_items;    /* of those, items for the key "hot" */
    atomic_int fail_first;   /* fail this many calls first */
    atomic_int failures;     /* calls that failed */
    atomic_int in_save;      /* a call is running */
    atomic_int delay_ms;     /* each call sleeps this long first */
    atomic_int hold;         /* while set, a call waits (after setting in_save) */
    atomic_int returned;     /* calls that returned */
    int notify_fd;           /* >= 0: one byte written when a call starts */
    int block_forever;       /* the call never returns (the SIGKILL test) */
} store;

static char g_dir[256];

static void db_path(const char *name, char *out, size_t cap)
{
    if (!g_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/sc-behind-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(g_dir));
    }
    snprintf(out, cap, "%s/%s.db", g_dir, name);
}

static sqlite3 *db_open(const char *path)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, "
                                  "version INTEGER NOT NULL)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    return db;
}

static void store_init(store *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->db = db_open(path);
    s->notify_fd = -1;
}

static void store_close(store *s)
{
    sqlite3_close(s->db);
    s->db = NULL;
}

/* The versioned upsert: a write older than what the row holds changes
 * nothing; a delete is kept as a tombstone (value NULL) with its version,
 * so an older set offered later cannot bring the key back. */
static const char *UPSERT = "INSERT INTO kv (key, value, version) VALUES (?1, ?2, ?3) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version "
                            "WHERE excluded.version > kv.version";

static sc_status store_save(const sc_dirty *items, size_t n, void *ud)
{
    store *s = ud;
    atomic_fetch_add(&s->calls, 1);
    atomic_store(&s->in_save, 1);
    if (s->notify_fd >= 0) {
        char b = 'x';
        ck_assert_int_eq(write(s->notify_fd, &b, 1), 1);
    }
    while (s->block_forever)
        pause();
    while (atomic_load(&s->hold))
        test_sleep_ms(5);
    if (atomic_load(&s->delay_ms))
        test_sleep_ms(atomic_load(&s->delay_ms));
    sc_status result = SC_OK;
    if (atomic_load(&s->fail_first) > 0) {
        atomic_fetch_sub(&s->fail_first, 1);
        result = SC_ERR_REMOTE;
        goto out;
    }
    /* BEGIN IMMEDIATE takes the write lock now: a locked file fails here
     * (busy timeout 0) and the whole batch counts as not saved. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        result = SC_ERR_TIMEOUT;
        goto out;
    }
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(s->db, UPSERT, -1, &st, NULL), SQLITE_OK);
    int hot = 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(st, 1, items[i].key, -1, SQLITE_TRANSIENT);
        if (items[i].value)
            sqlite3_bind_blob(st, 2, items[i].len ? items[i].value : "", (int)items[i].len, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)items[i].version);
        if (sqlite3_step(st) != SQLITE_DONE) {
            sqlite3_finalize(st);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            result = SC_ERR_REMOTE;
            goto out;
        }
        sqlite3_reset(st);
        hot += strcmp(items[i].key, "hot") == 0;
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        result = SC_ERR_TIMEOUT;
        goto out;
    }
    atomic_fetch_add(&s->saved_items, (int)n);
    atomic_fetch_add(&s->hot_items, hot);
out:
    if (result != SC_OK)
        atomic_fetch_add(&s->failures, 1);
    atomic_store(&s->in_save, 0);
    atomic_fetch_add(&s->returned, 1);
    return result;
}

/* The row of key in the database file: its value as a string (malloc'd),
 * "<deleted>" for a tombstone, "<none>" when there is no row. *version
 * gets the row's version (0 without a row). */
static char *db_get(const char *path, const char *key, uint64_t *version)
{
    sqlite3 *db = db_open(path);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT value, version FROM kv WHERE key = ?", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    char *out;
    uint64_t v = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = (uint64_t)sqlite3_column_int64(st, 1);
        if (sqlite3_column_type(st, 0) == SQLITE_NULL)
            out = strdup("<deleted>");
        else
            out = sqlite3_column_bytes(st, 0)
                      ? strndup((const char *)sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0))
                      : strdup(""); /* an empty blob reads as NULL */
    } else {
        out = strdup("<none>");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (version)
        *version = v;
    return out;
}

/* Whether c's sc_get of key answers want. */
static int get_is(sc_cache *c, const char *key, const char *want)
{
    char *got = test_get(c, key);
    int is = strcmp(got, want) == 0;
    free(got);
    return is;
}

static void expect_row(const char *path, const char *key, const char *want)
{
    char *got = db_get(path, key, NULL);
    ck_assert_msg(strcmp(got, want) == 0, "key %s: database has '%s', want '%s'", key, got, want);
    free(got);
}

/* One command on a fresh connection to g_redis: its reply, asserted
 * present (caller frees). */
static redisReply *redis_cmd(const char *fmt, ...)
{
    redisContext *rc = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(rc);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(rc, fmt, ap);
    va_end(ap);
    redisFree(rc);
    ck_assert_ptr_nonnull(rep);
    return rep;
}

/* The key's version in Redis (HGET; a tombstone keeps it). */
static uint64_t redis_version(const char *ns, const char *key)
{
    redisReply *rep = redis_cmd("HGET {%s}:k:%s version", ns, key);
    uint64_t v = rep->type == REDIS_REPLY_STRING ? strtoull(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    return v;
}

/* Entries of the queue still pending in the group (XPENDING count). */
static long long queue_pending(const char *ns)
{
    redisReply *rep = redis_cmd("XPENDING {%s}:wb synccache", ns);
    long long n = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 ? rep->element[0]->integer : -1;
    freeReplyObject(rep);
    return n;
}

static long long queue_len(const char *ns)
{
    redisReply *rep = redis_cmd("XLEN {%s}:wb", ns);
    long long n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    return n;
}

/* The key's value in Redis, read with plain commands ("<none>"). */
#define ASSERT_REDIS_VALUE(ns, key, want) TEST_ASSERT_STR_FREED(test_redis_value((ns), (key)), (want), (key))

/* Options of a pod that saves into s every interval_ms. */
static sc_options saver_options(const char *ns, const char *id, store *s, unsigned interval_ms)
{
    sc_options o = test_options(ns, id);
    o.save_fn = store_save;
    o.save_ud = s;
    o.writeback_interval_ms = interval_ms;
    return o;
}

/* A pod that saves into s. */
static sc_cache *saver_pod(const char *ns, const char *id, store *s, unsigned interval_ms, unsigned claim_ms)
{
    sc_options o = saver_options(ns, id, s, interval_ms);
    o.writeback_claim_ms = claim_ms;
    return test_open(&o);
}

static void flush_ok(sc_cache *c, unsigned ms)
{
    sc_status s = sc_flush_behind(c, ms);
    ck_assert_msg(s == SC_OK, "sc_flush_behind: %s: %s", sc_strerror(s), sc_errmsg(c));
}

static void set_behind_ok(sc_cache *c, const char *key, const char *val)
{
    sc_status s = sc_set_behind(c, key, val, strlen(val), 0);
    ck_assert_msg(s == SC_OK, "sc_set_behind(%s): %s: %s", key, sc_strerror(s), sc_errmsg(c));
}

/* Keys <kp>0..<kp>(n-1) with values <vp>0..: a batch of distinct keys whose
 * rows expect_numbered_rows can check one by one. */
static void set_behind_numbered(sc_cache *c, const char *kp, const char *vp, int n)
{
    char key[32], val[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s%d", kp, i);
        snprintf(val, sizeof val, "%s%d", vp, i);
        set_behind_ok(c, key, val);
    }
}

static void expect_numbered_rows(const char *path, const char *kp, const char *vp, int n)
{
    char key[32], val[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s%d", kp, i);
        snprintf(val, sizeof val, "%s%d", vp, i);
        expect_row(path, key, val);
    }
}

/* ---- tests ---- */

START_TEST(writes_saved_by_another_pod)
{
    char path[512];
    db_path("another", path, sizeof path);
    store s;
    store_init(&s, path);
    sc_cache *a = test_pod(NS("another"), "writer"); /* no save_fn */
    sc_cache *b = saver_pod(NS("another"), "saver", &s, 50, 30000);

    char key[32], val[32];
    set_behind_numbered(a, "user:", "value ", 50);
    /* Like sc_set: the value is in Redis and on the writer at once. */
    char *r = test_get(a, "user:7");
    ck_assert_str_eq(r, "value 7");
    free(r);
    ASSERT_REDIS_VALUE(NS("another"), "user:7", "value 7");

    flush_ok(a, 10000);
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "user:%d", i);
        snprintf(val, sizeof val, "value %d", i);
        uint64_t v;
        char *got = db_get(path, key, &v);
        ck_assert_str_eq(got, val);
        free(got);
        ck_assert_uint_eq(v, redis_version(NS("another"), key)); /* sc_dirty.version is the Redis version */
    }
    ck_assert_uint_eq(test_stats(a).behind_queued, 50);
    ck_assert_uint_eq(test_stats(a).behind_saved, 0);
    ck_assert_uint_eq(test_stats(b).behind_saved, 50);
    ck_assert_uint_eq(test_stats(b).behind_save_failures, 0);
    /* Acknowledged entries are trimmed. */
    WAIT_UNTIL(queue_len(NS("another")) == 0, 2000);
    ck_assert_int_eq(queue_len(NS("another")), 0);
    ck_assert_int_eq(queue_pending(NS("another")), 0);
    sc_stats st = test_stats(b);
    WAIT_UNTIL((st = test_stats(b)).behind_pending == 0, 2000);
    ck_assert_uint_eq(st.behind_pending, 0);
    ck_assert_uint_eq(st.behind_oldest_ms, 0);
    sc_close(a);
    sc_close(b);
    store_close(&s);
}
END_TEST

START_TEST(hot_key_is_coalesced)
{
    char path[512];
    db_path("hot", path, sizeof path);
    store s;
    store_init(&s, path);
    sc_cache *a = test_pod(NS("hot"), "writer");
    char val[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(val, sizeof val, "v%d", i);
        set_behind_ok(a, "hot", val);
    }
    /* The saver comes after the writes: one running beside them would take
     * a batch (and save an item) every interval for as long as the writes
     * last, which a slow build stretches without bound. */
    sc_cache *b = saver_pod(NS("hot"), "saver", &s, 200, 30000);
    flush_ok(a, 20000);
    expect_row(path, "hot", "v999");
    uint64_t v;
    free(db_get(path, "hot", &v));
    ck_assert_uint_eq(v, redis_version(NS("hot"), "hot"));
    /* 1,000 writes queued, at most 256 per batch and one item per key per
     * batch: a handful of items. */
    int items = atomic_load(&s.hot_items);
    ck_assert_msg(items >= 1 && items <= 16, "the hot key was saved as %d items", items);
    printf("hot key: 1000 writes saved as %d items in %d save calls\n", items, atomic_load(&s.calls));
    ck_assert_uint_eq(test_stats(b).behind_saved, 1000);
    sc_close(a);
    sc_close(b);
    store_close(&s);
}
END_TEST

START_TEST(failing_store_loses_nothing)
{
    char path[512];
    db_path("failing", path, sizeof path);
    store s;
    store_init(&s, path);
    atomic_store(&s.fail_first, 3);
    sc_cache *a = test_pod(NS("failing"), "writer");
    sc_cache *b = saver_pod(NS("failing"), "saver", &s, 20, 30000);
    set_behind_numbered(a, "k", "v", 20);
    flush_ok(a, 20000);
    ck_assert_int_eq(atomic_load(&s.failures), 3);
    ck_assert_uint_eq(test_stats(b).behind_save_failures, 3);
    expect_numbered_rows(path, "k", "v", 20);
    ck_assert_uint_eq(test_stats(b).behind_saved, 20);
    sc_close(a);
    sc_close(b);
    store_close(&s);
}
END_TEST

START_TEST(locked_database_loses_nothing)
{
    char path[512];
    db_path("locked", path, sizeof path);
    store s;
    store_init(&s, path);
    sc_cache *a = test_pod(NS("locked"), "writer");
    sc_cache *b = saver_pod(NS("locked"), "saver", &s, 20, 30000);

    /* Another connection holds the database file's write lock. */
    sqlite3 *locker = db_open(path);
    ck_assert_int_eq(sqlite3_exec(locker, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    set_behind_ok(a, "x", "1");
    set_behind_ok(a, "y", "2");
    ck_assert_int_eq(sc_delete_behind(a, "y"), SC_OK);
    WAIT_UNTIL(atomic_load(&s.failures) >= 2, 5000);
    ck_assert_int_ge(atomic_load(&s.failures), 2);
    ck_assert_int_eq(sc_flush_behind(a, 200), SC_ERR_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(a), "unsaved"));
    sc_stats st = test_stats(a);
    ck_assert_uint_eq(st.behind_pending, 3);
    ck_assert_uint_gt(st.behind_oldest_ms, 0);
    ck_assert_uint_ge(test_stats(b).behind_save_failures, 2);

    ck_assert_int_eq(sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(locker);
    flush_ok(a, 40000); /* the backoff may have grown to a few seconds */
    expect_row(path, "x", "1");
    expect_row(path, "y", "<deleted>");
    sc_close(a);
    sc_close(b);
    store_close(&s);
}
END_TEST

/* The child: a pod whose save_fn tells the parent it started and then
 * blocks until the process is killed. */
static void blocked_saver_child(const char *ns, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char path[512];
    db_path("killed", path, sizeof path);
    store s;
    store_init(&s, path);
    s.notify_fd = fd;
    s.block_forever = 1;
    sc_options o = saver_options(ns, "doomed", &s, 20);
    sc_cache *c = NULL;
    if (sc_open(&o, &c) != SC_OK)
        _exit(2);
    for (;;)
        pause();
}

START_TEST(killed_saver_batch_is_taken_over)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    /* Fork before this process has any threads. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        blocked_saver_child(NS("killed"), fds[1]);
    }
    close(fds[1]);
    char path[512];
    db_path("killed", path, sizeof path);

    sc_cache *a = test_pod(NS("killed"), "writer");
    set_behind_numbered(a, "k", "v", 10);
    /* Wait until the child is inside save_fn with the batch, then kill it. */
    struct pollfd pfd = {fds[0], POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
    char b;
    ck_assert_int_eq(read(fds[0], &b, 1), 1);
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    close(fds[0]);
    ck_assert_int_gt(queue_pending(NS("killed")), 0); /* the dead pod's batch */
    expect_row(path, "k0", "<none>");

    store s;
    store_init(&s, path);
    long long t0 = test_now_ms();
    sc_cache *taker = saver_pod(NS("killed"), "taker", &s, 20, 300);
    flush_ok(a, 10000);
    long long took = test_now_ms() - t0;
    expect_numbered_rows(path, "k", "v", 10);
    ck_assert_uint_eq(test_stats(taker).behind_saved, 10);
    ck_assert_int_eq(queue_pending(NS("killed")), 0);
    printf("killed saver: batch taken over and saved %lld ms after the taker opened\n", took);
    sc_close(taker);
    sc_close(a);
    store_close(&s);
}
END_TEST

START_TEST(queued_while_no_pod_saves)
{
    char path[512];
    db_path("nosaver", path, sizeof path);
    sc_cache *a = test_pod(NS("nosaver"), "writer");
    set_behind_numbered(a, "k", "v", 30);
    long long t0 = test_now_ms();
    ck_assert_int_eq(sc_flush_behind(a, 300), SC_ERR_TIMEOUT);
    ck_assert_int_ge(test_now_ms() - t0, 290);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(a), "no pod with a save_fn"));
    sc_stats st = test_stats(a);
    ck_assert_uint_eq(st.behind_pending, 30);
    ck_assert_uint_ge(st.behind_oldest_ms, 250);
    sc_close(a);

    /* Nobody is left; then a saver starts and finds everything. */
    store s;
    store_init(&s, path);
    sc_cache *b = saver_pod(NS("nosaver"), "late", &s, 20, 30000);
    flush_ok(b, 10000);
    expect_numbered_rows(path, "k", "v", 30);
    sc_close(b);
    store_close(&s);
}
END_TEST

static void *release_after_300ms(void *arg)
{
    store *s = arg;
    test_sleep_ms(300);
    atomic_store(&s->hold, 0);
    return NULL;
}

START_TEST(close_during_save)
{
    char path[512];
    db_path("closing", path, sizeof path);
    store s;
    store_init(&s, path);
    atomic_store(&s.hold, 1);
    sc_cache *a = test_pod(NS("closing"), "writer");
    set_behind_ok(a, "k1", "v1"); /* queued before the saver starts: one batch */
    set_behind_ok(a, "k2", "v2");
    sc_cache *b = saver_pod(NS("closing"), "saver", &s, 20, 10000);
    WAIT_UNTIL(atomic_load(&s.in_save), 5000);
    ck_assert(atomic_load(&s.in_save));

    /* The save is released 300 ms into sc_close: close waits for it,
     * acknowledges it, and takes nothing more. */
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, release_after_300ms, &s), 0);
    long long t0 = test_now_ms();
    sc_close(b);
    long long took = test_now_ms() - t0;
    pthread_join(t, NULL);
    ck_assert_msg(took >= 250 && took < 5000, "sc_close took %lld ms", took);
    ck_assert_int_eq(atomic_load(&s.returned), 1);
    expect_row(path, "k1", "v1");
    expect_row(path, "k2", "v2");
    ck_assert_int_eq(queue_pending(NS("closing")), 0);

    /* What is queued after the close waits for the next saver. */
    set_behind_ok(a, "k3", "v3");
    ck_assert_int_eq(sc_flush_behind(a, 100), SC_ERR_TIMEOUT);
    store s2;
    store_init(&s2, path);
    sc_cache *c = saver_pod(NS("closing"), "next", &s2, 20, 10000);
    flush_ok(a, 10000);
    expect_row(path, "k3", "v3");
    ck_assert_int_eq(atomic_load(&s.calls), 1);
    sc_close(c);
    sc_close(a);
    store_close(&s);
    store_close(&s2);
}
END_TEST

START_TEST(close_abandons_a_save_that_outlives_claim_ms)
{
    char path[512];
    db_path("hung", path, sizeof path);
    store s;
    store_init(&s, path);
    atomic_store(&s.hold, 1);
    sc_cache *a = test_pod(NS("hung"), "writer");
    sc_cache *b = saver_pod(NS("hung"), "hung", &s, 20, 300);
    set_behind_ok(a, "k", "v");
    WAIT_UNTIL(atomic_load(&s.in_save), 5000);
    ck_assert(atomic_load(&s.in_save));
    long long t0 = test_now_ms();
    sc_close(b); /* bounded by writeback_claim_ms although save_fn hangs */
    long long took = test_now_ms() - t0;
    ck_assert_msg(took >= 250 && took < 3000, "sc_close took %lld ms", took);
    ck_assert_int_eq(atomic_load(&s.returned), 0);

    /* Another pod takes the hung batch over. */
    store s2;
    store_init(&s2, path);
    sc_cache *c = saver_pod(NS("hung"), "taker", &s2, 20, 300);
    flush_ok(a, 10000);
    expect_row(path, "k", "v");
    set_behind_ok(a, "k", "v2");
    flush_ok(a, 10000);
    expect_row(path, "k", "v2");

    /* The hung call returns at last: its thread exits without touching the
     * closed cache (ASan would see it), and its save carries the version it
     * was given, older than the row's, so the row keeps v2. */
    atomic_store(&s.hold, 0);
    WAIT_UNTIL(atomic_load(&s.returned) == 1, 5000);
    ck_assert_int_eq(atomic_load(&s.returned), 1);
    test_sleep_ms(100);
    expect_row(path, "k", "v2");
    sc_close(c);
    sc_close(a);
    store_close(&s);
    store_close(&s2);
}
END_TEST

/* A save_fn that outlives writeback_claim_ms and then returns by itself,
 * with nothing from the closing thread telling it to. sc_close has handed
 * the saver's state over to the saver thread, which frees it as soon as
 * save_fn returns: sc_close must not touch it after the hand-over (under
 * ThreadSanitizer, and under AddressSanitizer whenever the free wins, a
 * read of the thread handle after it is a use of freed memory). */
START_TEST(close_touches_nothing_after_abandoning_a_save)
{
    char path[512];
    db_path("abandoned", path, sizeof path);
    store s;
    store_init(&s, path);
    atomic_store(&s.delay_ms, 1000); /* far past writeback_claim_ms */
    sc_cache *a = test_pod(NS("abandoned"), "writer");
    sc_cache *b = saver_pod(NS("abandoned"), "slow", &s, 20, 100);
    set_behind_ok(a, "k", "v");
    WAIT_UNTIL(atomic_load(&s.in_save), 5000);
    ck_assert(atomic_load(&s.in_save));
    sc_close(b); /* abandons the save after writeback_claim_ms */
    WAIT_UNTIL(atomic_load(&s.returned) == 1, 10000);
    ck_assert_int_eq(atomic_load(&s.returned), 1);
    test_sleep_ms(100); /* the saver thread frees its state and exits */

    /* Nothing is lost: the batch is the next saver's (or already saved). */
    store s2;
    store_init(&s2, path);
    sc_cache *c = saver_pod(NS("abandoned"), "taker", &s2, 20, 100);
    flush_ok(a, 10000);
    expect_row(path, "k", "v");
    sc_close(c);
    sc_close(a);
    store_close(&s);
    store_close(&s2);
}
END_TEST

START_TEST(close_hands_back_unsaved_entries)
{
    char path[512];
    db_path("handback", path, sizeof path);
    store bad;
    store_init(&bad, path);
    atomic_store(&bad.fail_first, 1000000);
    sc_cache *a = test_pod(NS("handback"), "writer");
    /* A long claim time: only the hand-back lets the next pod in quickly. */
    set_behind_ok(a, "k1", "v1");
    set_behind_ok(a, "k2", "v2");
    sc_cache *f = saver_pod(NS("handback"), "failing", &bad, 20, 60000);
    WAIT_UNTIL(atomic_load(&bad.failures) >= 1, 5000);
    ck_assert_int_ge(atomic_load(&bad.failures), 1);
    sc_close(f);
    ck_assert_int_eq(queue_pending(NS("handback")), 2);

    store good;
    store_init(&good, path);
    sc_cache *g = saver_pod(NS("handback"), "good", &good, 20, 60000);
    flush_ok(a, 5000);
    expect_row(path, "k1", "v1");
    expect_row(path, "k2", "v2");
    sc_close(g);
    sc_close(a);
    store_close(&bad);
    store_close(&good);
}
END_TEST

/* A delete after a set of one key ends deleted in the store, and a set
 * after that delete ends set, whether the writes share a batch (coalesced)
 * or each is a batch of its own. */
static void ordering(const char *ns, const char *file, unsigned batch)
{
    char path[512];
    db_path(file, path, sizeof path);
    store s;
    store_init(&s, path);
    sc_cache *a = test_pod(ns, "writer");
    sc_options o = saver_options(ns, "saver", &s, 20);
    o.writeback_batch = batch;
    sc_cache *b = test_open(&o);
    set_behind_ok(a, "gone", "v1");
    set_behind_ok(a, "gone", "v2");
    ck_assert_int_eq(sc_delete_behind(a, "gone"), SC_OK);
    set_behind_ok(a, "back", "v1");
    ck_assert_int_eq(sc_delete_behind(a, "back"), SC_OK);
    set_behind_ok(a, "back", "v3");
    ck_assert_int_eq(sc_delete_behind(a, "never-set"), SC_OK);
    flush_ok(a, 10000);
    expect_row(path, "gone", "<deleted>");
    expect_row(path, "back", "v3");
    expect_row(path, "never-set", "<deleted>");
    uint64_t v;
    free(db_get(path, "gone", &v));
    ck_assert_uint_eq(v, redis_version(ns, "gone")); /* the tombstone's version */
    /* Redis agrees: deleted and set. */
    ASSERT_REDIS_VALUE(ns, "gone", "<none>");
    sc_close(b);
    sc_close(a);
    store_close(&s);
}

START_TEST(delete_after_set_ends_deleted)
{
    ordering(NS("order1"), "order1", 1);
    ordering(NS("order256"), "order256", 256);
}
END_TEST

typedef struct writer_arg {
    sc_cache *c;
    int id;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *w = p;
    char key[32], val[48];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "c%d", (i * 7 + w->id) % 50);
        if (i % 10 == 9) {
            ck_assert_int_eq(sc_delete_behind(w->c, key), SC_OK);
        } else {
            snprintf(val, sizeof val, "w%d-%d", w->id, i);
            ck_assert_int_eq(sc_set_behind(w->c, key, val, strlen(val), 0), SC_OK);
        }
    }
    return NULL;
}

/* Two writer pods on threads, two saver pods with small batches: every key
 * of the database ends with exactly Redis' value and version. */
START_TEST(concurrent_writers_and_savers_database_equals_redis)
{
    char path[512];
    db_path("concurrent", path, sizeof path);
    store s1, s2;
    store_init(&s1, path);
    store_init(&s2, path);
    sqlite3_busy_timeout(s1.db, 2000);
    sqlite3_busy_timeout(s2.db, 2000);
    sc_cache *w[2] = {test_pod(NS("concurrent"), "w1"), test_pod(NS("concurrent"), "w2")};
    sc_cache *sv[2];
    store *st[2] = {&s1, &s2};
    for (int i = 0; i < 2; i++) {
        sc_options o = saver_options(NS("concurrent"), i ? "s2" : "s1", st[i], 10);
        o.writeback_batch = 16;
        sv[i] = test_open(&o);
    }
    pthread_t t[2];
    writer_arg args[2] = {{w[0], 0}, {w[1], 1}};
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, writer_main, &args[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    flush_ok(w[0], 30000);

    redisContext *rc = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(rc);
    for (int k = 0; k < 50; k++) {
        char key[32];
        snprintf(key, sizeof key, "c%d", k);
        redisReply *r = redisCommand(rc, "HMGET {%s}:k:%s value version", NS("concurrent"), key);
        ck_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_STRING); /* a value or a tombstone */
        uint64_t dv;
        char *got = db_get(path, key, &dv);
        const char *want = r->element[0]->type == REDIS_REPLY_STRING ? r->element[0]->str : "<deleted>";
        ck_assert_msg(strcmp(got, want) == 0, "%s: database '%s', Redis '%s'", key, got, want);
        ck_assert_uint_eq(dv, strtoull(r->element[1]->str, NULL, 10));
        free(got);
        freeReplyObject(r);
    }
    redisFree(rc);
    ck_assert_uint_eq(test_stats(sv[0]).behind_saved + test_stats(sv[1]).behind_saved, 1000);
    ck_assert_uint_eq(test_stats(w[0]).behind_queued + test_stats(w[1]).behind_queued, 1000);
    printf("concurrent: saver 1 saved %d items in %d calls, saver 2 %d in %d\n", atomic_load(&s1.saved_items),
           atomic_load(&s1.calls), atomic_load(&s2.saved_items), atomic_load(&s2.calls));
    for (int i = 0; i < 2; i++) {
        sc_close(sv[i]);
        sc_close(w[i]);
    }
    store_close(&s1);
    store_close(&s2);
}
END_TEST

/* A writer pod and a pod saving into s (every 20 ms), on Redis r. */
static void pods_on(const sc_test_redis *r, const char *ns, store *s, sc_cache **writer, sc_cache **saver)
{
    sc_options o = test_options(ns, "writer");
    o.redis_port = r->port;
    *writer = test_open(&o);
    o = saver_options(ns, "saver", s, 20);
    o.redis_port = r->port;
    *saver = test_open(&o);
}

START_TEST(saver_rides_out_a_redis_restart)
{
    char path[512];
    db_path("restart", path, sizeof path);
    store s;
    store_init(&s, path);
    /* A Redis of its own: the restart must not take the suite's server. */
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    sc_cache *a, *b;
    pods_on(&own, NS("restart"), &s, &a, &b);
    set_behind_ok(a, "before", "1");
    flush_ok(a, 10000);
    /* No persistence: the queue and its group are gone with everything else. */
    ck_assert_int_eq(sc_test_redis_restart(&own), 0);
    sc_status st = SC_ERR_REMOTE;
    for (int i = 0; i < 100 && st != SC_OK; i++) {
        st = sc_set_behind(a, "after", "2", 1, 0);
        if (st != SC_OK)
            test_sleep_ms(50);
    }
    ck_assert_msg(st == SC_OK, "sc_set_behind after the restart: %s", sc_errmsg(a));
    flush_ok(a, 20000); /* the saver's backoff is short; the group is made again */
    expect_row(path, "before", "1");
    expect_row(path, "after", "2");
    sc_close(b);
    sc_close(a);
    store_close(&s);
    sc_test_redis_stop(&own);
}
END_TEST

static sc_status never_called(const sc_dirty *items, size_t n, void *ud)
{
    (void)items;
    (void)n;
    (void)ud;
    ck_abort_msg("save_fn called");
    return SC_OK;
}

START_TEST(bad_input)
{
    sc_cache *a = test_pod(NS("bad"), "a");
    ck_assert_int_eq(sc_set_behind(NULL, "k", "v", 1, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc_set_behind(a, NULL, "v", 1, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc_set_behind(a, "", "v", 1, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc_set_behind(a, "k", NULL, 5, 0), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(a), "sc_set_behind"));
    ck_assert_int_eq(sc_delete_behind(NULL, "k"), SC_ERR_INVALID);
    ck_assert_int_eq(sc_delete_behind(a, NULL), SC_ERR_INVALID);
    ck_assert_int_eq(sc_delete_behind(a, ""), SC_ERR_INVALID);
    ck_assert_int_eq(sc_flush_behind(NULL, 10), SC_ERR_INVALID);
    char huge[2000];
    memset(huge, 'k', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    ck_assert_int_eq(sc_set_behind(a, huge, "v", 1, 0), SC_ERR_TOO_LARGE);
    ck_assert_int_eq(sc_delete_behind(a, huge), SC_ERR_TOO_LARGE);
    /* Nothing was queued by any of that; an empty value is a value. */
    ck_assert_int_eq(sc_flush_behind(a, 0), SC_OK);
    ck_assert_int_eq(sc_set_behind(a, "empty", NULL, 0, 0), SC_OK);
    ck_assert_uint_eq(test_stats(a).behind_queued, 1);
    ck_assert_int_eq(queue_len(NS("bad")), 1);

    /* A queue key of the wrong type: refused before anything is written. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET {%s}:wb oops", NS("badtype")), 0);
    sc_cache *t = test_pod(NS("badtype"), "t");
    ck_assert_int_eq(sc_set_behind(t, "k", "v", 1, 0), SC_ERR_REMOTE);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(t), "WRONGTYPE"));
    ASSERT_REDIS_VALUE(NS("badtype"), "k", "<none>");
    ck_assert_int_eq(sc_delete_behind(t, "k"), SC_ERR_REMOTE);
    ck_assert_uint_eq(test_stats(t).behind_queued, 0);
    sc_close(t);

    /* A plain reader cannot queue: it does not write Redis. */
    sc_options o = test_options(NS("bad"), "reader");
    o.role = SC_ROLE_READER;
    sc_cache *rd = test_open(&o);
    ck_assert_int_eq(sc_set_behind(rd, "k", "v", 1, 0), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(rd), "reader"));
    ck_assert_int_eq(sc_delete_behind(rd, "k"), SC_ERR_INVALID);
    sc_close(rd);

    /* Options out of range are refused at open, naming the field. */
#define EXPECT_INVALID(stmt, word)                                                                                     \
    do {                                                                                                               \
        o = test_options(NS("bad"), NULL);                                                                             \
        o.save_fn = never_called;                                                                                      \
        stmt;                                                                                                          \
        TEST_ASSERT_OPEN_INVALID(&o, word);                                                                            \
    } while (0)
    EXPECT_INVALID(o.writeback_interval_ms = 0, "writeback_interval_ms");
    EXPECT_INVALID(o.writeback_interval_ms = 3600001, "writeback_interval_ms");
    EXPECT_INVALID(o.writeback_batch = 0, "writeback_batch");
    EXPECT_INVALID(o.writeback_batch = 10001, "writeback_batch");
    EXPECT_INVALID(o.writeback_claim_ms = 0, "writeback_claim_ms");
    EXPECT_INVALID(o.writeback_claim_ms = 86400001, "writeback_claim_ms");
#undef EXPECT_INVALID
    sc_options d;
    sc_options_init(&d);
    ck_assert_ptr_null(d.save_fn);
    ck_assert_uint_eq(d.writeback_interval_ms, 1000);
    ck_assert_uint_eq(d.writeback_batch, 256);
    ck_assert_uint_eq(d.writeback_claim_ms, 30000);
    sc_close(a);
}
END_TEST

/* An event log key of the wrong type: the write fails with nothing of it
 * in Redis (no value, no queue entry, no version taken), as with a queue
 * key of the wrong type. The log's XADD ran last, after the value and the
 * queue entry were written, and a script's writes before an error stay: a
 * failed sc_set_behind left its write queued and its value in Redis with
 * no event, so other pods kept their old copy. */
START_TEST(log_of_the_wrong_type_writes_nothing)
{
    sc_cache *t = test_pod(NS("badlog"), "t");
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "SET {%s}:log oops", NS("badlog")), 0);
    uint64_t v0 = 0;
    ck_assert_int_eq(sc_version_of(t, "k", &v0), SC_OK);
    ck_assert_int_eq(sc_set_behind(t, "k", "v", 1, 0), SC_ERR_REMOTE);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(t), "WRONGTYPE"));
    ASSERT_REDIS_VALUE(NS("badlog"), "k", "<none>");
    ck_assert_int_eq(queue_len(NS("badlog")), 0);
    ck_assert_int_eq(sc_delete_behind(t, "k"), SC_ERR_REMOTE);
    ck_assert_int_eq(queue_len(NS("badlog")), 0);
    ck_assert_int_eq(sc_set(t, "k2", "v", 1, 0), SC_ERR_REMOTE);
    ASSERT_REDIS_VALUE(NS("badlog"), "k2", "<none>");
    uint64_t v1 = 1;
    ck_assert_int_eq(sc_version_of(t, "k", &v1), SC_OK);
    ck_assert_uint_eq(v1, v0);
    ck_assert_uint_eq(test_stats(t).behind_queued, 0);
    sc_close(t);
}
END_TEST

/* ---------------------------------------------------------- faults -- */

/* Maxmemory reached while the store was down: does the queue drain? */
START_TEST(queue_drains_after_maxmemory)
{
    char path[512];
    db_path("oom", path, sizeof path);
    store s;
    store_init(&s, path);
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, "--maxmemory 8mb --maxmemory-policy noeviction"), 0);
    sc_options o = test_options(NS("oom"), "writer");
    o.redis_port = own.port;
    sc_cache *a = test_open(&o);
    sc_cache *b = NULL;
    o = saver_options(NS("oom"), "saver", &s, 20);
    o.redis_port = own.port;
    atomic_store(&s.fail_first, 1000000000); /* the database is down */
    static char val[64 * 1024];
    memset(val, 'x', sizeof val);
    char key[32];
    int acked = 0;
    sc_status st = SC_OK;
    for (int i = 0; i < 10000 && st == SC_OK; i++) {
        snprintf(key, sizeof key, "k%d", i);
        st = sc_set_behind(a, key, val, sizeof val, 0);
        if (st == SC_OK)
            acked++;
    }
    printf("oom: %d writes acknowledged, then %s: %s\n", acked, sc_strerror(st), sc_errmsg(a));
    ck_assert_int_eq(st, SC_ERR_REMOTE);
    /* Keep filling with small writes until Redis refuses for good. */
    for (int i = 0, fails = 0; i < 200000 && fails < 50; i++) {
        snprintf(key, sizeof key, "s%d", i);
        st = sc_set_behind(a, key, val, 1024, 0);
        if (st == SC_OK) {
            acked++;
            fails = 0;
        } else {
            fails++;
            test_sleep_ms(10);
        }
    }
    printf("oom: %d acknowledged in all; last: %s\n", acked, sc_errmsg(a));
    /* A saver opened while Redis is full (its scripts run under allow-oom). */
    sc_status so = sc_open(&o, &b);
    ck_assert_msg(so == SC_OK, "sc_open of a saver: %s", sc_errmsg(NULL));
    /* The database comes back. The documented promise: nothing queued is lost
     * and the savers save it; the queue (the only thing using the memory) drains. */
    atomic_store(&s.fail_first, 0);
    st = sc_flush_behind(a, 15000);
    printf("oom: flush after the database came back: %s: %s (saved %d items)\n", sc_strerror(st),
           st == SC_OK ? "" : sc_errmsg(a), atomic_load(&s.saved_items));
    ck_assert_msg(st == SC_OK, "queue never drained: %s", sc_errmsg(a));
    ck_assert_int_eq(atomic_load(&s.saved_items) >= acked, 1);
    st = sc_set_behind(a, "after", "1", 1, 0);
    ck_assert_msg(st == SC_OK, "writes still refused after draining: %s", sc_errmsg(a));
    sc_close(b);
    sc_close(a);
    store_close(&s);
    sc_test_redis_stop(&own);
}
END_TEST

/* Saver SIGKILLed after its COMMIT, before the ack */
static volatile int g_die_after_commit;
static sc_status commit_then_die(const sc_dirty *items, size_t n, void *ud)
{
    sc_status r = store_save(items, n, ud);
    if (r == SC_OK && g_die_after_commit)
        raise(SIGKILL);
    return r;
}

START_TEST(saver_killed_after_commit_before_ack)
{
    char path[512];
    db_path("commitkill", path, sizeof path);
    {
        store s0;
        store_init(&s0, path);
        store_close(&s0);
    }
    for (int round = 0; round < 3; round++) {
        /* The writer is closed before the fork: a child of a process
         * running threads may find a lock held for ever. */
        sc_cache *w = test_pod(NS("commitkill"), "writer");
        char key[32], val[32];
        for (int i = 0; i < 50; i++) {
            snprintf(key, sizeof key, "k%d", i % 20);
            snprintf(val, sizeof val, "r%d-%d", round, i);
            set_behind_ok(w, key, val);
        }
        sc_close(w);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            store s;
            store_init(&s, path);
            g_die_after_commit = 1;
            sc_options o = saver_options(NS("commitkill"), "dier", &s, 20);
            o.save_fn = commit_then_die;
            o.writeback_claim_ms = 300;
            sc_cache *c = NULL;
            if (sc_open(&o, &c) != SC_OK)
                _exit(3);
            for (;;)
                pause();
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status), "child status %d", status);
    }
    store s;
    store_init(&s, path);
    sc_cache *taker = saver_pod(NS("commitkill"), "taker", &s, 20, 300);
    flush_ok(taker, 15000);
    for (int i = 0; i < 20; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        uint64_t dv;
        char *got = db_get(path, key, &dv);
        char *want = test_redis_value(NS("commitkill"), key);
        ck_assert_msg(strcmp(got, want) == 0 && dv == redis_version(NS("commitkill"), key),
                      "%s: db '%s' v%llu, redis '%s' v%llu", key, got, (unsigned long long)dv, want,
                      (unsigned long long)redis_version(NS("commitkill"), key));
        free(got);
        free(want);
    }
    ck_assert_int_eq(queue_pending(NS("commitkill")), 0);
    sc_close(taker);
    store_close(&s);
}
END_TEST

/* Writer SIGKILLed at a random point: every acknowledged write saved */
START_TEST(writer_killed_every_acked_write_saved)
{
    char path[512];
    db_path("writerkill", path, sizeof path);
    {
        store s0;
        store_init(&s0, path);
        store_close(&s0);
    }
    int *acked = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(acked, MAP_FAILED);
    for (int round = 0; round < 5; round++) {
        *acked = 0;
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            store s;
            store_init(&s, path);
            sc_options o = saver_options(NS("writerkill"), NULL, &s, 5);
            o.writeback_claim_ms = 300;
            sc_cache *c = NULL;
            if (sc_open(&o, &c) != SC_OK)
                _exit(3);
            char key[32], val[32];
            for (int i = 0;; i++) {
                snprintf(key, sizeof key, "r%d-%d", round, i);
                snprintf(val, sizeof val, "v%d", i);
                if (sc_set_behind(c, key, val, strlen(val), 0) == SC_OK)
                    __atomic_store_n(acked, i + 1, __ATOMIC_SEQ_CST);
            }
        }
        /* The kill lands a varying time after the first acknowledged write
         * (a slow build may take longer than that to fork and open). */
        for (int waited = 0; !__atomic_load_n(acked, __ATOMIC_SEQ_CST) && waited < 10000; waited += 10)
            test_sleep_ms(10);
        test_sleep_ms(100 + 137 * round);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        int n = __atomic_load_n(acked, __ATOMIC_SEQ_CST);
        printf("writer kill round %d: %d acknowledged writes\n", round, n);
        ck_assert_int_gt(n, 0);
        store s;
        store_init(&s, path);
        sc_cache *taker = saver_pod(NS("writerkill"), "taker", &s, 20, 300);
        flush_ok(taker, 15000);
        char key[32], val[32];
        for (int i = 0; i < n; i++) {
            snprintf(key, sizeof key, "r%d-%d", round, i);
            snprintf(val, sizeof val, "v%d", i);
            expect_row(path, key, val);
        }
        sc_close(taker);
        store_close(&s);
    }
    munmap(acked, sizeof(int));
}
END_TEST

/* Huge values */
START_TEST(huge_values_are_saved)
{
    char path[512];
    db_path("huge", path, sizeof path);
    store s;
    store_init(&s, path);
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    sc_options o = test_options(NS("huge"), "writer");
    o.redis_port = own.port;
    sc_cache *a = test_open(&o);
    int mb = 1, n = 300;
    size_t len = (size_t)mb << 20;
    char *val = malloc(len);
    memset(val, 'h', len);
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "big%d", i);
        sc_status st = sc_set_behind(a, key, val, len, 0);
        ck_assert_msg(st == SC_OK, "sc_set_behind %d: %s", i, sc_errmsg(a));
    }
    free(val);
    o = saver_options(NS("huge"), "saver", &s, 50);
    o.redis_port = own.port;
    o.writeback_claim_ms = 2000;
    sc_cache *b = test_open(&o);
    long long t0 = test_now_ms();
    sc_status st = SC_ERR_TIMEOUT;
    while (st != SC_OK && test_now_ms() - t0 < 60000) {
        st = sc_flush_behind(a, 2000);
        if (st != SC_OK) {
            printf("huge: +%lld ms flush: %s\n", test_now_ms() - t0, sc_errmsg(a));
            test_sleep_ms(500);
        }
    }
    printf("huge: %d x %d MiB: flush %s after %lld ms (save calls %d, items %d) %s\n", n, mb, sc_strerror(st),
           test_now_ms() - t0, atomic_load(&s.calls), atomic_load(&s.saved_items), st == SC_OK ? "" : sc_errmsg(a));
    ck_assert_msg(st == SC_OK, "huge values never saved: %s", sc_errmsg(a));
    sc_close(b);
    sc_close(a);
    store_close(&s);
    sc_test_redis_stop(&own);
}
END_TEST

/* Redis SIGKILLed with AOF (appendfsync always) while writes pending */
START_TEST(redis_crash_with_aof_loses_nothing)
{
    char path[512];
    db_path("aof", path, sizeof path);
    store s;
    store_init(&s, path);
    sc_test_redis own;
    ck_assert_int_eq(sc_test_redis_start(&own, "--appendonly yes --appendfsync always"), 0);
    sc_options o = test_options(NS("aof"), "writer");
    o.redis_port = own.port;
    sc_cache *a = test_open(&o);
    o = saver_options(NS("aof"), "saver", &s, 20);
    o.redis_port = own.port;
    sc_cache *b = test_open(&o);
    atomic_store(&s.fail_first, 1000000000);
    set_behind_numbered(a, "k", "v", 300);
    test_sleep_ms(200); /* the saver has taken a batch (pending) */
    sc_test_redis_kill(&own);
    ck_assert_int_eq(sc_test_redis_start_again(&own), 0);
    atomic_store(&s.fail_first, 0);
    flush_ok(a, 40000);
    expect_numbered_rows(path, "k", "v", 300);
    sc_close(b);
    sc_close(a);
    store_close(&s);
    sc_test_redis_stop(&own);
}
END_TEST

/* Redis restarted from an older snapshot: writes acknowledged after the
 * restart still reach the store (their versions are above every saved
 * row's: no version is handed out twice). */
static int own_cmd(const sc_test_redis *r, const char *cmd)
{
    return sc_test_redis_cmd(r, "%s", cmd);
}

START_TEST(writes_after_restart_from_older_snapshot_are_saved)
{
    char path[512];
    db_path("rollback", path, sizeof path);
    store s;
    store_init(&s, path);
    sc_test_redis own;
    /* RDB only, snapshots taken explicitly (SAVE): the README's
     * "RDB snapshots only: everything since the last snapshot" case. */
    ck_assert_int_eq(sc_test_redis_start(&own, NULL), 0);
    sc_cache *a, *b;
    pods_on(&own, NS("rollback"), &s, &a, &b);
    set_behind_ok(a, "k", "old-0");
    flush_ok(a, 10000);
    ck_assert_int_eq(own_cmd(&own, "SAVE"), 0); /* the snapshot */
    char val[32];
    for (int i = 1; i <= 20; i++) {
        snprintf(val, sizeof val, "old-%d", i);
        set_behind_ok(a, "k", val);
    }
    flush_ok(a, 10000);
    uint64_t dbv;
    free(db_get(path, "k", &dbv));
    printf("rollback: before the crash the database holds k at version %llu\n", (unsigned long long)dbv);
    /* Redis crashes and comes back from the snapshot (the documented loss:
     * the 20 writes since it; they are in the database already). */
    sc_test_redis_kill(&own);
    ck_assert_int_eq(sc_test_redis_start_again(&own), 0);
    /* New writes, acknowledged after the restart. */
    sc_status st = SC_ERR_REMOTE;
    for (int i = 0; i < 100 && st != SC_OK; i++) {
        st = sc_set_behind(a, "k", "new", 3, 0);
        if (st != SC_OK)
            test_sleep_ms(50);
    }
    ck_assert_msg(st == SC_OK, "sc_set_behind after the restart: %s", sc_errmsg(a));
    st = SC_ERR_REMOTE;
    for (int i = 0; i < 100 && st != SC_OK; i++) {
        st = sc_set_behind(a, "k2", "new2", 4, 0);
        if (st != SC_OK)
            test_sleep_ms(50);
    }
    flush_ok(a, 20000);
    uint64_t rv = 0;
    {
        redisContext *rc = sc_test_redis_connect(&own);
        redisReply *rep = redisCommand(rc, "HGET {%s}:k:k version", NS("rollback"));
        rv = rep && rep->type == REDIS_REPLY_STRING ? strtoull(rep->str, NULL, 10) : 0;
        freeReplyObject(rep);
        redisFree(rc);
    }
    char *got = db_get(path, "k", &dbv);
    printf("rollback: after the restart Redis holds k='new' at version %llu; the database holds '%s' at %llu\n",
           (unsigned long long)rv, got, (unsigned long long)dbv);
    ck_assert_msg(strcmp(got, "new") == 0,
                  "acknowledged write after the restart never reached the store: db '%s' v%llu, Redis 'new' v%llu", got,
                  (unsigned long long)dbv, (unsigned long long)rv);
    free(got);
    expect_row(path, "k2", "new2");
    /* Both pods converge on Redis after the jump. */
    WAIT_UNTIL(test_stats(a).synced && test_stats(b).synced, 10000);
    TEST_ASSERT_STR_FREED(test_get(a, "k"), "new", "k on a");
    TEST_ASSERT_STR_FREED(test_get(b, "k"), "new", "k on b");
    set_behind_ok(a, "k", "newer");
    flush_ok(a, 10000);
    expect_row(path, "k", "newer");
    WAIT_UNTIL(get_is(b, "k", "newer"), 5000);
    ck_assert(get_is(b, "k", "newer"));
    sc_close(b);
    sc_close(a);
    store_close(&s);
    sc_test_redis_stop(&own);
}
END_TEST

/* Chaos: savers with random delays SIGKILLed and restarted while a writer
 * sets and deletes 40 keys; at the end the database equals Redis. */
static sc_status slow_random_save(const sc_dirty *items, size_t n, void *ud)
{
    store *st = ud;
    int r = rand() % 10;
    if (r < 3)
        test_sleep_ms(rand() % 400); /* sometimes longer than claim_ms */
    if (r == 9)
        return SC_ERR_REMOTE; /* sometimes the database fails */
    return store_save(items, n, st);
}

static pid_t chaos_saver(const char *path, int seed)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    srand((unsigned)seed);
    store s;
    store_init(&s, path);
    sqlite3_busy_timeout(s.db, 50);
    sc_options o = saver_options(NS("chaos"), NULL, &s, 10);
    o.save_fn = slow_random_save;
    o.writeback_claim_ms = 150;
    o.writeback_batch = 16;
    sc_cache *c = NULL;
    if (sc_open(&o, &c) != SC_OK)
        _exit(3);
    for (;;)
        pause();
}

START_TEST(chaos_database_equals_redis)
{
    char path[512];
    db_path("chaos", path, sizeof path);
    {
        store s0;
        store_init(&s0, path);
        store_close(&s0);
    }
    pid_t kids[2];
    int seed = 1;
    for (int i = 0; i < 2; i++)
        kids[i] = chaos_saver(path, seed * 10 + i);
    sc_cache *a = test_pod(NS("chaos"), "writer");
    srand((unsigned)seed);
    char key[32], val[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "c%d", rand() % 40);
        if (rand() % 7 == 0) {
            ck_assert_int_eq(sc_delete_behind(a, key), SC_OK);
        } else {
            snprintf(val, sizeof val, "w%d", i);
            set_behind_ok(a, key, val);
        }
        if (i % 300 == 299) {
            int k = rand() % 2;
            kill(kids[k], SIGKILL);
            waitpid(kids[k], NULL, 0);
            kids[k] = chaos_saver(path, seed * 100 + i);
        }
    }
    for (int i = 0; i < 2; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    store s;
    store_init(&s, path);
    sqlite3_busy_timeout(s.db, 1000);
    sc_cache *taker = saver_pod(NS("chaos"), "taker", &s, 10, 200);
    flush_ok(a, 30000);
    int bad = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "c%d", i);
        uint64_t dv;
        char *got = db_get(path, key, &dv);
        char *want = test_redis_value(NS("chaos"), key);
        uint64_t rv = redis_version(NS("chaos"), key);
        int ok = (strcmp(want, "<none>") == 0 ? strcmp(got, "<deleted>") == 0 || strcmp(got, "<none>") == 0
                                              : strcmp(got, want) == 0);
        if (!ok || (rv && dv != rv)) {
            printf("chaos: %s: db '%s' v%llu, redis '%s' v%llu\n", key, got, (unsigned long long)dv, want,
                   (unsigned long long)rv);
            bad++;
        }
        free(got);
        free(want);
    }
    ck_assert_int_eq(bad, 0);
    sc_close(taker);
    sc_close(a);
    store_close(&s);
}
END_TEST

/* Many keys, empty values, deletes of never-set keys */
START_TEST(many_keys_all_saved)
{
    char path[512];
    db_path("many", path, sizeof path);
    store s;
    store_init(&s, path);
    sc_cache *a = test_pod(NS("many"), "writer");
    int n = 20000;
    char key[32], val[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "m%d", i);
        snprintf(val, sizeof val, "v%d", i);
        set_behind_ok(a, key, i % 1000 == 0 ? "" : val);
    }
    ck_assert_int_eq(sc_delete_behind(a, "never-set"), SC_OK);
    sc_cache *b = saver_pod(NS("many"), "saver", &s, 20, 30000);
    flush_ok(a, 60000);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(s.db, "SELECT count(*) FROM kv", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int rows = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    ck_assert_int_eq(rows, n + 1);
    expect_row(path, "m0", "");
    expect_row(path, "m1", "v1");
    expect_row(path, "never-set", "<deleted>");
    char k2[32];
    snprintf(k2, sizeof k2, "m%d", n - 1);
    snprintf(val, sizeof val, "v%d", n - 1);
    expect_row(path, k2, val);
    ck_assert_int_eq(queue_len(NS("many")), 0);
    sc_close(b);
    sc_close(a);
    store_close(&s);
}
END_TEST

/* ---- loading a key whose write is still queued ---- */

/* A loader that reads the database file (ud: its path), like a cache-aside
 * application reading the table write-behind saves into. */
static atomic_int g_loads;
static sc_status db_loader(const char *key, sc_loaded *slot, void *ud)
{
    atomic_fetch_add(&g_loads, 1);
    char *row = db_get(ud, key, NULL);
    sc_status st = SC_NOT_FOUND;
    if (strcmp(row, "<none>") != 0 && strcmp(row, "<deleted>") != 0) {
        sc_loaded_set(slot, row, strlen(row));
        st = SC_OK;
    }
    free(row);
    return st;
}

static void seed_row(const char *path, const char *key, const char *val)
{
    sqlite3 *db = db_open(path);
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO kv (key, value, version) VALUES ('%s', '%s', 1)", key, val);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* What c's sc_fetch of key answers: the value, or "<not found>". */
static char *fetch_str(sc_cache *c, const char *key, const char *path)
{
    sc_value *v = NULL;
    sc_status st = sc_fetch(c, key, 0, db_loader, (void *)path, &v);
    if (st == SC_NOT_FOUND)
        return strdup("<not found>");
    ck_assert_msg(st == SC_OK, "sc_fetch(%s): %s: %s", key, sc_strerror(st), sc_errmsg(c));
    char *out = strndup(sc_value_data(v), sc_value_size(v));
    sc_value_release(v);
    return out;
}

static int redis_has_value(const char *ns, const char *key)
{
    redisReply *rep = redis_cmd("HEXISTS {%s}:k:%s value", ns, key);
    int has = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return has;
}

/* A write the pod acknowledged and write-behind has not saved yet: a fetch
 * must not load the database's older row in its place (a deleted value
 * coming back, an overwritten one going back). Once saved, loading works as
 * before. */
START_TEST(fetch_never_loads_past_a_queued_write)
{
    const char *ns = NS("fetch_queued");
    char path[512];
    db_path("fetch_queued", path, sizeof path);
    store s;
    store_init(&s, path);
    seed_row(path, "gone", "old-gone");
    seed_row(path, "short", "old-short");
    sc_cache *w = test_pod(ns, "w"); /* no pod saves yet */
    sc_cache *r = test_pod(ns, "r");
    ck_assert_int_eq(sc_delete_behind(w, "gone"), SC_OK);
    ck_assert_int_eq(sc_set_behind(w, "short", "new-short", 9, 200), SC_OK);
    WAIT_UNTIL(!redis_has_value(ns, "short"), 5000);
    ck_assert(!redis_has_value(ns, "short"));
    atomic_store(&g_loads, 0);
    TEST_ASSERT_STR_FREED(fetch_str(r, "gone", path), "<not found>", "gone");
    TEST_ASSERT_STR_FREED(fetch_str(r, "short", path), "new-short", "short");
    TEST_ASSERT_STR_FREED(fetch_str(w, "short", path), "new-short", "short");
    ck_assert_int_eq(atomic_load(&g_loads), 0);
    /* saved: the database answers the newest write, and loads again */
    sc_cache *sv = saver_pod(ns, "sv", &s, 20, 30000);
    flush_ok(w, 5000);
    expect_row(path, "gone", "<deleted>");
    expect_row(path, "short", "new-short");
    WAIT_UNTIL(!redis_has_value(ns, "short"), 5000);
    ck_assert(!redis_has_value(ns, "short"));
    sc_close(r);
    r = test_pod(ns, "r2");
    TEST_ASSERT_STR_FREED(fetch_str(r, "short", path), "new-short", "short");
    ck_assert_int_eq(atomic_load(&g_loads), 1);
    sc_close(sv);
    sc_close(r);
    sc_close(w);
    store_close(&s);
}
END_TEST

static sc_status db_batch_loader(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    for (size_t i = 0; i < n; i++)
        db_loader(keys[i], slots[i], ud); /* a slot left unset: not found */
    return SC_OK;
}

/* {ns}:wbq evicted (maxmemory-policy allkeys-*: any key may go; a DEL does
 * what eviction does) while the queue {ns}:wb keeps an unsaved write whose
 * value's TTL has ended: a fetch must still answer the queued write, not
 * load (and cache) the database row it replaced; and the index must come
 * back whole, whether a fetch or another queued write notices first. */
START_TEST(fetch_after_the_queue_index_was_evicted)
{
    const char *ns = NS("fetch_wbq_lost");
    char path[512];
    db_path("fetch_wbq_lost", path, sizeof path);
    store s;
    store_init(&s, path);
    seed_row(path, "k", "old-k");
    seed_row(path, "j", "old-j");
    sc_cache *w = test_pod(ns, "w"); /* no pod saves yet */
    ck_assert_int_eq(sc_set_behind(w, "k", "new-k", 5, 200), SC_OK);
    ck_assert_int_eq(sc_set_behind(w, "j", "new-j", 5, 200), SC_OK);
    WAIT_UNTIL(!redis_has_value(ns, "k") && !redis_has_value(ns, "j"), 5000);
    ck_assert(!redis_has_value(ns, "k"));
    freeReplyObject(redis_cmd("DEL {%s}:wbq", ns));
    /* another write queued first, then the fetches */
    ck_assert_int_eq(sc_set_behind(w, "x", "new-x", 5, 0), SC_OK);
    atomic_store(&g_loads, 0);
    TEST_ASSERT_STR_FREED(fetch_str(w, "k", path), "new-k", "k, after {ns}:wbq was evicted");
    TEST_ASSERT_STR_FREED(fetch_str(w, "j", path), "new-j", "j, after {ns}:wbq was evicted");
    /* evicted again, a fetch noticing first */
    freeReplyObject(redis_cmd("DEL {%s}:wbq", ns));
    TEST_ASSERT_STR_FREED(fetch_str(w, "j", path), "new-j", "j, after {ns}:wbq was evicted again");
    TEST_ASSERT_STR_FREED(fetch_str(w, "k", path), "new-k", "k, after {ns}:wbq was evicted again");
    ck_assert_int_eq(atomic_load(&g_loads), 0);
    /* saved: loading works as before */
    sc_cache *sv = saver_pod(ns, "sv", &s, 20, 30000);
    flush_ok(w, 5000);
    expect_row(path, "k", "new-k");
    sc_close(sv);
    sc_close(w);
    store_close(&s);
}
END_TEST

/* The same through sc_clear (documented to clear the cache, not the queue)
 * and sc_fetch_batch: queued keys answer their queued write, a key with
 * nothing queued is loaded. */
START_TEST(fetch_batch_after_clear_answers_queued_writes)
{
    const char *ns = NS("fetch_queued_clear");
    char path[512];
    db_path("fetch_queued_clear", path, sizeof path);
    seed_row(path, "a", "old-a");
    seed_row(path, "b", "old-b");
    seed_row(path, "c", "old-c");
    sc_cache *w = test_pod(ns, "w");
    ck_assert_int_eq(sc_set_behind(w, "a", "new-a", 5, 0), SC_OK);
    ck_assert_int_eq(sc_delete_behind(w, "b"), SC_OK);
    ck_assert_int_eq(sc_clear(w), SC_OK);
    atomic_store(&g_loads, 0);
    const char *keys[3] = {"a", "b", "c"};
    sc_value *out[3] = {NULL, NULL, NULL};
    sc_status st = sc_fetch_batch(w, keys, 3, 0, db_batch_loader, path, out);
    ck_assert_msg(st == SC_OK, "sc_fetch_batch: %s: %s", sc_strerror(st), sc_errmsg(w));
    ck_assert_ptr_nonnull(out[0]);
    ck_assert_int_eq(sc_value_size(out[0]), 5);
    ck_assert(memcmp(sc_value_data(out[0]), "new-a", 5) == 0);
    ck_assert_ptr_null(out[1]);
    ck_assert_ptr_nonnull(out[2]);
    ck_assert(memcmp(sc_value_data(out[2]), "old-c", 5) == 0);
    ck_assert_int_eq(atomic_load(&g_loads), 1);
    for (int i = 0; i < 3; i++)
        if (out[i])
            sc_value_release(out[i]);
    TEST_ASSERT_STR_FREED(fetch_str(w, "a", path), "new-a", "a");
    TEST_ASSERT_STR_FREED(fetch_str(w, "b", path), "<not found>", "b");
    sc_close(w);
}
END_TEST

/* The README's read-modify-write loop with sc_fetch in place of sc_get, on
 * a key whose queued write's TTL ended: the fetched value's number is the
 * key's, so the compare-and-set goes through (no saver runs: waiting for a
 * save would loop for ever). */
START_TEST(compare_and_set_over_a_queued_write)
{
    const char *ns = NS("fetch_queued_cas");
    char path[512];
    db_path("fetch_queued_cas", path, sizeof path);
    seed_row(path, "n", "0");
    sc_cache *w = test_pod(ns, "w");
    ck_assert_int_eq(sc_set_behind(w, "n", "1", 1, 100), SC_OK);
    WAIT_UNTIL(!redis_has_value(ns, "n"), 5000);
    ck_assert(!redis_has_value(ns, "n"));
    sc_status s = SC_ERR_CONFLICT;
    int tries = 0;
    while (s == SC_ERR_CONFLICT && tries++ < 20) {
        uint64_t expected;
        ck_assert_int_eq(sc_version_of(w, "n", &expected), SC_OK);
        sc_value *v = NULL;
        long n = 0;
        if (sc_fetch(w, "n", 0, db_loader, path, &v) == SC_OK) {
            n = strtol(sc_value_data(v), NULL, 10);
            expected = sc_value_version(v);
            sc_value_release(v);
        }
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld", n + 1);
        s = sc_set_if_version(w, "n", buf, (size_t)len, 0, expected);
    }
    ck_assert_msg(s == SC_OK, "sc_set_if_version: %s after %d tries", sc_strerror(s), tries);
    ASSERT_REDIS_VALUE(ns, "n", "2");
    sc_close(w);
}
END_TEST

/* A saver killed in the middle of the batch holding a delete and a set:
 * until another pod took the batch over and saved it, fetches answer the
 * queued writes, never the rows they replaced; afterwards they load. */
START_TEST(fetch_while_the_saver_of_the_batch_is_killed)
{
    const char *ns = NS("fetch_killed");
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork(); /* before this process has any threads */
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        blocked_saver_child(ns, fds[1]);
    }
    close(fds[1]);
    char path[512];
    db_path("fetch_killed", path, sizeof path);
    seed_row(path, "gone", "old-gone");
    seed_row(path, "set", "old-set");
    sc_cache *w = test_pod(ns, "w");
    sc_cache *r = test_pod(ns, "r");
    ck_assert_int_eq(sc_delete_behind(w, "gone"), SC_OK);
    ck_assert_int_eq(sc_set_behind(w, "set", "new-set", 7, 100), SC_OK);
    struct pollfd pfd = {fds[0], POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
    char b;
    ck_assert_int_eq(read(fds[0], &b, 1), 1);
    atomic_store(&g_loads, 0);
    TEST_ASSERT_STR_FREED(fetch_str(r, "gone", path), "<not found>", "gone");
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    close(fds[0]);
    WAIT_UNTIL(!redis_has_value(ns, "set"), 5000);
    TEST_ASSERT_STR_FREED(fetch_str(r, "set", path), "new-set", "set");
    TEST_ASSERT_STR_FREED(fetch_str(r, "gone", path), "<not found>", "gone");
    ck_assert_int_eq(atomic_load(&g_loads), 0);
    store s;
    store_init(&s, path);
    sc_cache *taker = saver_pod(ns, "taker", &s, 20, 300);
    flush_ok(w, 10000);
    expect_row(path, "gone", "<deleted>");
    expect_row(path, "set", "new-set");
    TEST_ASSERT_STR_FREED(fetch_str(r, "set", path), "new-set", "set");
    ck_assert_int_eq(atomic_load(&g_loads), 1);
    sc_close(taker);
    sc_close(r);
    sc_close(w);
    store_close(&s);
}
END_TEST

static Suite *behind_suite(void)
{
    Suite *s = suite_create("behind");
    TCase *tc = tcase_create("behind");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, writes_saved_by_another_pod);
    tcase_add_test(tc, hot_key_is_coalesced);
    tcase_add_test(tc, failing_store_loses_nothing);
    tcase_add_test(tc, locked_database_loses_nothing);
    tcase_add_test(tc, killed_saver_batch_is_taken_over);
    tcase_add_test(tc, queued_while_no_pod_saves);
    tcase_add_test(tc, close_during_save);
    tcase_add_test(tc, close_abandons_a_save_that_outlives_claim_ms);
    tcase_add_test(tc, close_touches_nothing_after_abandoning_a_save);
    tcase_add_test(tc, close_hands_back_unsaved_entries);
    tcase_add_test(tc, delete_after_set_ends_deleted);
    tcase_add_test(tc, concurrent_writers_and_savers_database_equals_redis);
    tcase_add_test(tc, saver_rides_out_a_redis_restart);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, log_of_the_wrong_type_writes_nothing);
    tcase_add_test(tc, queue_drains_after_maxmemory);
    tcase_add_test(tc, saver_killed_after_commit_before_ack);
    tcase_add_test(tc, writer_killed_every_acked_write_saved);
    tcase_add_test(tc, huge_values_are_saved);
    tcase_add_test(tc, redis_crash_with_aof_loses_nothing);
    tcase_add_test(tc, writes_after_restart_from_older_snapshot_are_saved);
    if (!SC_TEST_SANITIZED) /* forks beside a live pod (support/pods.h) */
        tcase_add_test(tc, chaos_database_equals_redis);
    tcase_add_test(tc, many_keys_all_saved);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("loading");
    tcase_set_timeout(tl, 60);
    tcase_add_test(tl, fetch_never_loads_past_a_queued_write);
    tcase_add_test(tl, fetch_batch_after_clear_answers_queued_writes);
    tcase_add_test(tl, fetch_after_the_queue_index_was_evicted);
    tcase_add_test(tl, compare_and_set_over_a_queued_write);
    if (!SC_TEST_SANITIZED) /* forks */
        tcase_add_test(tl, fetch_while_the_saver_of_the_batch_is_killed);
    suite_add_tcase(s, tl);
    return s;
}

int main(void)
{
    return test_run_suite(behind_suite(), NULL);
}
