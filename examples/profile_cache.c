/* A typed wrapper over synccache, the way most services embed it: the rest
 * of the application calls profile_get(uid, &profile) and never sees keys,
 * byte buffers or sc_status. The wrapper owns
 *   - its namespace ("profiles") and key scheme ("profile:<uid>");
 *   - a small versioned binary codec for struct profile;
 *   - the loader that reads the database on a miss (sc_fetch: at most one
 *     loader per key runs across all pods);
 *   - the mapping of sc_status to the application's own error enum.
 * The "database" here is an in-memory table; uid 13 simulates a database
 * failure so the error path shows.
 *
 *   profile_cache [--socket PATH | --host HOST --port N]
 *   (or SYNCCACHE_REDIS_SOCKET / SYNCCACHE_REDIS_HOST / SYNCCACHE_REDIS_PORT)
 *
 * Exits 0 when every step behaved as described, 1 otherwise.
 */
/* strnlen is POSIX: ask for it explicitly so the
 * file builds with a strict -std=c11 -pedantic as well as with the defaults. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <synccache/synccache.h>

/* ------------------------------------------------ the application's types */

typedef struct profile {
    uint64_t uid;
    uint32_t age;
    char name[64];
    char email[96];
} profile;

typedef enum profile_err {
    PROFILE_OK,
    PROFILE_NOT_FOUND,   /* no such user */
    PROFILE_INVALID,     /* bad argument (uid 0) */
    PROFILE_UNAVAILABLE, /* the cache or Redis cannot answer now: retry later */
    PROFILE_DB_ERROR,    /* the database failed while loading */
    PROFILE_CORRUPT      /* the cached bytes are not a profile */
} profile_err;

static const char *profile_strerror(profile_err e)
{
    switch (e) {
    case PROFILE_OK: return "ok";
    case PROFILE_NOT_FOUND: return "no such user";
    case PROFILE_INVALID: return "invalid argument";
    case PROFILE_UNAVAILABLE: return "profile service unavailable";
    case PROFILE_DB_ERROR: return "database error";
    case PROFILE_CORRUPT: return "corrupt profile record";
    }
    return "unknown error";
}

/* ------------------------------------------------ the "database" */

typedef struct db_row {
    profile p;
    int present;
} db_row;

typedef struct database {
    db_row rows[64]; /* indexed by uid */
    unsigned reads;  /* how often the cache had to come here */
} database;

/* 0: found (*out filled), 1: no such row, -1: failure (uid 13 always fails). */
static int db_read(database *db, uint64_t uid, profile *out)
{
    db->reads++;
    if (uid == 13)
        return -1;
    if (uid >= sizeof db->rows / sizeof db->rows[0] || !db->rows[uid].present)
        return 1;
    *out = db->rows[uid].p;
    return 0;
}

static void db_write(database *db, const profile *p)
{
    if (p->uid < sizeof db->rows / sizeof db->rows[0]) {
        db->rows[p->uid].p = *p;
        db->rows[p->uid].present = 1;
    }
}

/* ------------------------------------------------ codec
 * version byte (1), uid (8, big-endian), age (4), name length (1), name,
 * email length (1), email. A reader refuses what it does not understand
 * rather than guessing: a new layout gets a new version byte. */

enum { PROFILE_CODEC_V1 = 1, PROFILE_WIRE_MAX = 1 + 8 + 4 + 1 + 63 + 1 + 95 };

static size_t profile_encode(const profile *p, unsigned char *buf)
{
    size_t n = 0, nl = strnlen(p->name, sizeof p->name - 1), el = strnlen(p->email, sizeof p->email - 1);
    buf[n++] = PROFILE_CODEC_V1;
    for (int i = 7; i >= 0; i--)
        buf[n++] = (unsigned char)(p->uid >> (8 * i));
    for (int i = 3; i >= 0; i--)
        buf[n++] = (unsigned char)(p->age >> (8 * i));
    buf[n++] = (unsigned char)nl;
    memcpy(buf + n, p->name, nl);
    n += nl;
    buf[n++] = (unsigned char)el;
    memcpy(buf + n, p->email, el);
    n += el;
    return n;
}

static int profile_decode(const unsigned char *b, size_t len, profile *p)
{
    memset(p, 0, sizeof *p);
    if (len < 14 || b[0] != PROFILE_CODEC_V1)
        return -1;
    size_t n = 1;
    for (int i = 0; i < 8; i++)
        p->uid = p->uid << 8 | b[n++];
    for (int i = 0; i < 4; i++)
        p->age = p->age << 8 | b[n++];
    size_t nl = b[n++];
    if (nl >= sizeof p->name || n + nl + 1 > len)
        return -1;
    memcpy(p->name, b + n, nl);
    n += nl;
    size_t el = b[n++];
    if (el >= sizeof p->email || n + el != len)
        return -1;
    memcpy(p->email, b + n, el);
    return 0;
}

/* ------------------------------------------------ the wrapper */

typedef struct profile_cache {
    sc_cache *cache;
    database *db;
    char detail[256]; /* the last failure's detail, for logs */
} profile_cache;

static void profile_key(uint64_t uid, char key[32])
{
    snprintf(key, 32, "profile:%" PRIu64, uid);
}

/* The loader: runs on the calling thread of the sc_fetch that leads the load
 * (on a miss in every tier), never after that sc_fetch returned. */
static sc_status load_profile(const char *key, sc_loaded *slot, void *ud)
{
    database *db = ud;
    uint64_t uid = strtoull(key + strlen("profile:"), NULL, 10);
    profile p;
    switch (db_read(db, uid, &p)) {
    case 0: {
        unsigned char buf[PROFILE_WIRE_MAX];
        sc_loaded_set(slot, buf, profile_encode(&p, buf)); /* copied */
        return SC_OK;
    }
    case 1:
        return SC_NOT_FOUND; /* cached on every pod as "not found" for empty_ttl_ms */
    default:
        sc_loaded_error(slot, "db: connection reset while reading uid %" PRIu64, uid);
        return SC_ERR_LOADER; /* any status but SC_OK / SC_NOT_FOUND: nothing is cached */
    }
}

static profile_err map_status(profile_cache *pc, sc_status s)
{
    if (s != SC_OK && s != SC_NOT_FOUND)
        snprintf(pc->detail, sizeof pc->detail, "%s: %s", sc_strerror(s), sc_errmsg(pc->cache));
    switch (s) {
    case SC_OK: return PROFILE_OK;
    case SC_NOT_FOUND: return PROFILE_NOT_FOUND;
    case SC_ERR_LOADER: return PROFILE_DB_ERROR;
    case SC_ERR_INVALID:
    case SC_ERR_TOO_LARGE: return PROFILE_INVALID;
    case SC_ERR_CODEC: return PROFILE_CORRUPT;
    default: return PROFILE_UNAVAILABLE; /* REMOTE, TIMEOUT, LOCKED, CLOSED, NOMEM */
    }
}

static profile_err profile_cache_open(profile_cache *pc, database *db, const char *sock, const char *host,
                                      int port)
{
    memset(pc, 0, sizeof *pc);
    pc->db = db;
    sc_options o;
    sc_options_init(&o);
    o.ns = "profiles";              /* the wrapper's own namespace */
    o.redis_unix_socket = sock;
    if (host)
        o.redis_host = host;
    if (port)
        o.redis_port = port;
    o.local_max_entries = 10000;
    sc_status s = sc_open(&o, &pc->cache);
    if (s != SC_OK) {
        snprintf(pc->detail, sizeof pc->detail, "%s: %s", sc_strerror(s), sc_errmsg(NULL));
        return s == SC_ERR_INVALID ? PROFILE_INVALID : PROFILE_UNAVAILABLE;
    }
    return PROFILE_OK;
}

static void profile_cache_close(profile_cache *pc)
{
    sc_close(pc->cache); /* NULL is a no-op */
    pc->cache = NULL;
}

/* The one call the application makes. Local tier, then Redis, then the
 * database (once across all pods); *out is filled on PROFILE_OK. */
static profile_err profile_get(profile_cache *pc, uint64_t uid, profile *out)
{
    if (uid == 0)
        return PROFILE_INVALID;
    char key[32];
    profile_key(uid, key);
    sc_value *v;
    sc_status s = sc_fetch(pc->cache, key, 600000 /* 10 min */, load_profile, pc->db, &v);
    if (s != SC_OK)
        return map_status(pc, s);
    size_t len = sc_value_size(v);
    int bad = profile_decode(sc_value_data(v), len, out);
    sc_value_release(v);
    if (bad) {
        snprintf(pc->detail, sizeof pc->detail, "%s holds %zu bytes that are not a v1 profile", key, len);
        return PROFILE_CORRUPT;
    }
    return PROFILE_OK;
}

/* Write path: the database first, then the cache is told (sc_tag_deleted:
 * a new version, an invalidate to every pod, and any load that read the
 * database before this update is fenced off and not stored). */
static profile_err profile_put(profile_cache *pc, const profile *p)
{
    db_write(pc->db, p);
    char key[32];
    profile_key(p->uid, key);
    return map_status(pc, sc_tag_deleted(pc->cache, key));
}

/* ------------------------------------------------ the demo */

static int failures;

static void expect(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok)
        failures++;
}

int main(int argc, char **argv)
{
    const char *sock = getenv("SYNCCACHE_REDIS_SOCKET");
    const char *host = getenv("SYNCCACHE_REDIS_HOST");
    int port = getenv("SYNCCACHE_REDIS_PORT") ? atoi(getenv("SYNCCACHE_REDIS_PORT")) : 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
    }

    static database db;
    db_write(&db, &(profile){.uid = 42, .age = 36, .name = "Alice", .email = "alice@example.com"});
    db_write(&db, &(profile){.uid = 7, .age = 29, .name = "Bob", .email = "bob@example.com"});

    profile_cache pc;
    profile_err e = profile_cache_open(&pc, &db, sock, host, port);
    if (e != PROFILE_OK) {
        fprintf(stderr, "profile_cache_open: %s (%s)\n", profile_strerror(e), pc.detail);
        return 1;
    }
    /* Start from a clean namespace so a rerun against the same Redis
     * behaves the same (a real service would not clear on start). */
    sc_clear(pc.cache);

    profile p;
    e = profile_get(&pc, 42, &p);
    printf("get 42: %s: %s, %" PRIu32 ", %s (database reads: %u)\n", profile_strerror(e), p.name, p.age,
           p.email, db.reads);
    expect(e == PROFILE_OK && strcmp(p.name, "Alice") == 0 && db.reads == 1, "first get loads from the database");

    e = profile_get(&pc, 42, &p);
    expect(e == PROFILE_OK && strcmp(p.name, "Alice") == 0 && db.reads == 1,
           "second get is served by the cache (no database read)");

    e = profile_get(&pc, 99, &p);
    printf("get 99: %s (database reads: %u)\n", profile_strerror(e), db.reads);
    expect(e == PROFILE_NOT_FOUND && db.reads == 2, "a missing user is PROFILE_NOT_FOUND");
    e = profile_get(&pc, 99, &p);
    expect(e == PROFILE_NOT_FOUND && db.reads == 2, "... and the \"not found\" is cached too");

    e = profile_get(&pc, 13, &p);
    printf("get 13: %s (%s)\n", profile_strerror(e), pc.detail);
    expect(e == PROFILE_DB_ERROR && strstr(pc.detail, "connection reset") != NULL,
           "a database failure maps to PROFILE_DB_ERROR with the loader's message");

    expect(profile_get(&pc, 0, &p) == PROFILE_INVALID, "uid 0 is PROFILE_INVALID");

    e = profile_put(&pc, &(profile){.uid = 42, .age = 37, .name = "Alice", .email = "alice@example.org"});
    expect(e == PROFILE_OK, "update: database written, cache entry tagged deleted");
    e = profile_get(&pc, 42, &p);
    printf("get 42 after the update: %s: %s, %" PRIu32 ", %s (database reads: %u)\n", profile_strerror(e),
           p.name, p.age, p.email, db.reads);
    expect(e == PROFILE_OK && p.age == 37 && strcmp(p.email, "alice@example.org") == 0,
           "the next get returns the updated profile");

    sc_load_stats ls;
    sc_load_stats_get(pc.cache, SC_WINDOW_TOTAL, &ls);
    printf("load stats: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " errors, %" PRIu64 " manual misses\n",
           ls.hits, ls.misses, ls.errors, ls.manual_misses);

    profile_cache_close(&pc);
    printf("%s\n", failures ? "profile_cache: FAILED" : "profile_cache: all steps behaved as described");
    return failures ? 1 : 0;
}
