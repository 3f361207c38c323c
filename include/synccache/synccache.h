/* synccache: a two-tier cache for services that run as many instances.
 *
 * Each instance ("pod") keeps an in-process local tier (LRU or W-TinyLFU) in
 * front of a shared Redis. Writers store values in Redis with a fresh
 * per-namespace version and publish an event in the same atomic script; every
 * pod applies the events of the others to its local tier, so local copies
 * follow Redis. Versions make late, duplicated or replayed events harmless;
 * a sequence number on every event and a heartbeat through the channel let a
 * pod notice lost events and catch up (or flush) instead of serving stale data.
 *
 * Threads: every function here is thread-safe on one sc_cache unless its
 * comment says otherwise. Keys are NUL-terminated strings; values are byte
 * buffers (binary-safe). Returned sc_value objects are immutable and
 * reference-counted: the caller owns one reference and releases it.
 */
#ifndef SYNCCACHE_H
#define SYNCCACHE_H

#include <stddef.h>
#include <stdint.h>

#include <synccache/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SC_STATIC)
#define SC_EXPORT
#elif defined(__GNUC__)
#define SC_EXPORT __attribute__((visibility("default")))
#else
#define SC_EXPORT
#endif

struct event_base; /* libevent */

typedef struct sc_cache sc_cache; /* opaque */
typedef struct sc_value sc_value; /* opaque, immutable, reference-counted */

/* One list generates both the enum and sc_strerror(). New codes only ever go
 * at the end; none is ever removed or renumbered. */
#define SC_STATUS_MAP(X)                                                    \
    X(SC_OK, "success")                                                     \
    X(SC_NOT_FOUND, "key not found")                                        \
    X(SC_ERR_INVALID, "invalid argument or option")                         \
    X(SC_ERR_NOMEM, "out of memory")                                        \
    X(SC_ERR_REMOTE, "Redis unreachable, I/O or protocol error")            \
    X(SC_ERR_TIMEOUT, "timed out")                                          \
    X(SC_ERR_CLOSED, "cache is closed")                                     \
    X(SC_ERR_CONFLICT, "versioned write lost to a newer version")           \
    X(SC_ERR_TOO_LARGE, "key or value too large")                           \
    X(SC_ERR_CODEC, "event could not be encoded or decoded")

typedef enum sc_status {
#define SC__STATUS_ENUM(name, text) name,
    SC_STATUS_MAP(SC__STATUS_ENUM)
#undef SC__STATUS_ENUM
} sc_status;

/* A static English sentence for s; never NULL (unknown codes get one too). */
SC_EXPORT const char *sc_strerror(sc_status s);

typedef enum sc_local_policy { SC_LOCAL_LRU, SC_LOCAL_LFU } sc_local_policy;
typedef enum sc_role { SC_ROLE_WRITER, SC_ROLE_READER } sc_role;
typedef enum sc_wire_format { SC_WIRE_MSGPACK, SC_WIRE_JSON } sc_wire_format;

/* What a pod serves while its event stream is down (not yet re-synced). */
typedef enum sc_disconnect_policy {
    SC_DISCONNECT_FLUSH,  /* drop the local tier; gets read Redis directly */
    SC_DISCONNECT_STALE,  /* serve local copies while the last proof of sync
                             is at most stale_max_ms old, flagged stale */
    SC_DISCONNECT_BYPASS  /* keep the local tier but read Redis directly
                             until re-synced, then catch up */
} sc_disconnect_policy;

typedef enum sc_log_level {
    SC_LOG_ERROR,
    SC_LOG_WARN,
    SC_LOG_INFO,
    SC_LOG_DEBUG
} sc_log_level;

/* Called from any thread (often the sync thread); msg is borrowed for the
 * duration of the call. Must not call back into the cache. */
typedef void (*sc_log_fn)(sc_log_level level, const char *msg, void *ud);

/* What the event hook sees: one event from another pod (or an outside
 * publisher) after the pod handled it. Everything is borrowed for the call. */
typedef struct sc_event_info {
    const char *action;      /* "set", "invalidate", "delete" or "clear" */
    const char *key;         /* "" for clear */
    const char *sender;      /* the publishing pod's id */
    uint64_t version;        /* namespace sequence; 0 from outside publishers */
    uint64_t publish_time_ms;/* Redis clock, ms since the Unix epoch */
    const sc_value *value;   /* set only (else NULL); take a reference with
                                sc_value_ref to keep it */
    int applied;             /* 1 if the local tier changed */
    int replayed;            /* 1 if it came from the event log (catch-up) */
} sc_event_info;

/* Called on the sync thread after each event from another pod was handled.
 * Must be quick and must not call back into the cache. */
typedef void (*sc_event_fn)(const sc_event_info *ev, void *ud);

typedef struct sc_options {
    const char *pod_id;            /* NULL: generated, unique per process */
    const char *ns;                /* namespace: prefixes every Redis key; default "sc" */
    const char *channel;           /* NULL: derived from ns ("<ns>:events") */
    const char *redis_host;        /* default "127.0.0.1" */
    int redis_port;                /* default 6379 */
    const char *redis_unix_socket; /* when set, used instead of host/port */
    const char *redis_username;    /* ACL user, may be NULL */
    const char *redis_password;    /* may be NULL */
    int redis_db;                  /* default 0 */
    unsigned redis_timeout_ms;     /* per command; default 1000 */
    sc_local_policy local_policy;  /* default SC_LOCAL_LFU */
    size_t local_max_entries;      /* 0 = no entry bound */
    size_t local_max_bytes;        /* 0 = no byte bound (key + value bytes) */
    uint64_t local_ttl_ms;         /* longest life of a local copy; 0 = none */
    uint64_t default_ttl_ms;       /* Redis TTL when a set passes 0; 0 = none */
    sc_role role;                  /* default SC_ROLE_WRITER */
    int reader_can_set_to_redis;   /* default 0 */
    sc_wire_format wire_format;    /* what this pod publishes; default msgpack */
    struct event_base *event_base; /* NULL: the cache runs its own sync thread */

    /* --- limits --- */
    unsigned redis_pool_size;      /* blocking connections; default 4, 1..64 */
    size_t max_key_bytes;          /* default 1024; at most 65535 */
    size_t max_value_bytes;        /* default 64 MiB; at most 512 MiB */
    size_t max_event_bytes;        /* largest event accepted from the channel;
                                      default 1 MiB */
    size_t event_value_max;        /* a set whose value is larger publishes an
                                      invalidate instead; default 256 KiB, must
                                      leave room for the event in max_event_bytes */
    unsigned local_shards;         /* 0 = automatic; else a power of two <= 256 */

    /* --- consistency under faults --- */
    sc_disconnect_policy disconnect_policy; /* default SC_DISCONNECT_FLUSH */
    uint64_t stale_max_ms;         /* SC_DISCONNECT_STALE bound; default 5000 */
    unsigned heartbeat_interval_ms;/* default 250; 0 disables heartbeats */
    unsigned heartbeat_timeout_ms; /* own heartbeat not back after this: the
                                      stream counts as lost; default 1000 */
    unsigned reconnect_min_ms;     /* first backoff step; default 50 */
    unsigned reconnect_max_ms;     /* backoff cap; default 2000 */
    size_t event_log_len;          /* events kept in Redis for catch-up;
                                      default 10000, 0 disables the log */

    /* --- hooks --- */
    sc_event_fn on_event;          /* NULL: none */
    void *on_event_ud;             /* passed to on_event */

    /* --- logging --- */
    sc_log_fn log_fn;              /* NULL: no logging */
    void *log_ud;                  /* passed to log_fn */
    sc_log_level log_level;        /* most verbose level passed; default WARN */
} sc_options;

/* Fills every field with its default. Always call before setting fields, so
 * programs keep working when fields are added. */
SC_EXPORT void sc_options_init(sc_options *o);

/* Connects to Redis, checks the options and starts the synchronizer. With
 * event_base == NULL it waits (up to 3 x redis_timeout_ms: connect,
 * subscribe, read the sequence) until the pod is subscribed, so no event
 * published after sc_open returns is missed. With a
 * caller's event_base the pod starts unsynced (gets read Redis directly) and
 * syncs once the caller runs the loop.
 * Strings in *o are copied; o may be freed afterwards.
 * Returns SC_OK and *out, or SC_ERR_INVALID (bad option), SC_ERR_REMOTE or
 * SC_ERR_TIMEOUT (no Redis), SC_ERR_NOMEM; then *out is NULL and
 * sc_errmsg(NULL) on this thread says why. */
SC_EXPORT sc_status sc_open(const sc_options *o, sc_cache **out);

/* Detail of this thread's last failed call on c (or of the last failed
 * sc_open when c is NULL). Static or thread-local storage, valid until this
 * thread's next call; never NULL ("" when there is nothing to say). */
SC_EXPORT const char *sc_errmsg(const sc_cache *c);

/* Stops the synchronizer, closes connections and frees the cache. Values the
 * caller still holds stay valid until released. NULL is a no-op. With a
 * caller's event_base, call it from the loop's thread or while the loop is not
 * running. No other call may be in progress on c. */
SC_EXPORT void sc_close(sc_cache *c);

/* The pod id in use (generated when the options left it NULL). Borrowed;
 * valid until sc_close. */
SC_EXPORT const char *sc_pod_id(const sc_cache *c);

/* Looks the key up locally, then in Redis (one round trip; concurrent misses
 * on one key share it) and fills the local tier.
 * Returns SC_OK with *out (caller releases it), SC_NOT_FOUND (not an error,
 * *out is NULL), or an error with *out NULL. */
SC_EXPORT sc_status sc_get(sc_cache *c, const char *key, sc_value **out);

/* Looks at the local tier only: no Redis read, and recency, frequency and
 * stats are left alone (for verifiers and debugging). SC_OK with *out
 * (caller releases it), SC_NOT_FOUND, or SC_ERR_INVALID / SC_ERR_TOO_LARGE
 * for a bad key. */
SC_EXPORT sc_status sc_peek(sc_cache *c, const char *key, sc_value **out);

typedef enum sc_source { SC_SOURCE_LOCAL, SC_SOURCE_REMOTE } sc_source;

typedef struct sc_get_info {
    sc_source source;    /* where the value came from */
    int stale;           /* 1: served by SC_DISCONNECT_STALE while unsynced */
    uint64_t sync_age_ms;/* with stale: ms since the last proof of sync */
} sc_get_info;

/* sc_get that also says where the value came from. info may be NULL. */
SC_EXPORT sc_status sc_get_ex(sc_cache *c, const char *key, sc_value **out, sc_get_info *info);

/* Reads that write nothing shared. A local hit through either call takes no
 * lock and no reference, and writes no cache line that another reader of
 * the same key also writes (hits are counted per thread and fed to the
 * eviction policy through per-thread buffers), so it scales with threads.
 * The local tier answers only while the pod is synced; otherwise, and on a
 * local miss, both behave exactly as sc_get_ex (Redis read, single-flight,
 * stale serving per disconnect_policy) and then hand over that value. */

/* Called with the value's bytes (data[len] is a NUL), borrowed for the
 * duration of the call only, its version, and the caller's ud. */
typedef void (*sc_read_fn)(const void *data, size_t len, uint64_t version, void *ud);

/* Calls fn once with the value of key. The bytes are borrowed: no reference
 * is taken, and they must not be used after fn returns (copy what you
 * keep). fn must not call back into the cache, and should be short: on a
 * local hit it runs inside a read section, which delays the freeing of
 * evicted entries (never other threads' reads or writes).
 * Returns SC_OK (fn was called exactly once), SC_NOT_FOUND (fn not
 * called), or an error as sc_get (fn not called); SC_ERR_INVALID when fn is
 * NULL. Thread-safe. */
SC_EXPORT sc_status sc_get_with(sc_cache *c, const char *key, sc_read_fn fn, void *ud);

/* Copies the value of key into buf (cap bytes; no NUL is added). SC_OK with
 * *len = its size and, when version is not NULL, *version = its version;
 * SC_ERR_TOO_LARGE when cap is smaller (buf untouched, *len = the size
 * needed, *version set); SC_NOT_FOUND; or an error as sc_get. buf may be
 * NULL when cap is 0; len must not be NULL. Thread-safe. */
SC_EXPORT sc_status sc_get_copy(sc_cache *c, const char *key, void *buf, size_t cap, size_t *len,
                                uint64_t *version);

/* Stores val (copied) under key. A writer (or a reader with
 * reader_can_set_to_redis) runs one Lua script in Redis that stores the value
 * with a fresh version, applies the TTL (ttl_ms, or default_ttl_ms when 0) and
 * publishes a set event; then it fills its local tier. A plain reader stores
 * the value in its local tier only. Values larger than event_value_max
 * publish an invalidate event instead of carrying the value.
 * Returns SC_OK, SC_ERR_INVALID, SC_ERR_TOO_LARGE, SC_ERR_REMOTE,
 * SC_ERR_TIMEOUT. On failure the local tier no longer holds the key (so no
 * pod can serve a value Redis may not have). */
SC_EXPORT sc_status sc_set(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms);

/* Like sc_set, but the event is an invalidate: other pods drop the key and
 * read Redis on their next get (for large values). */
SC_EXPORT sc_status sc_set_invalidate(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms);

/* Removes the key locally and (writers) from Redis, and publishes a delete
 * event. Deleting a missing key is SC_OK. */
SC_EXPORT sc_status sc_delete(sc_cache *c, const char *key);

/* Removes this namespace's keys from Redis (in batches, never FLUSHDB), the
 * local tier, and publishes a clear event. Keys written while the clear runs
 * may survive it. A plain reader clears only its local tier. */
SC_EXPORT sc_status sc_clear(sc_cache *c);

/* Borrowed view of the bytes; valid while the caller holds v. A NUL byte
 * follows the data (not counted in the size) so text values can be used as
 * C strings. */
SC_EXPORT const void *sc_value_data(const sc_value *v);
SC_EXPORT size_t sc_value_size(const sc_value *v);
/* The Redis version of this value (0 for a reader's local-only set). */
SC_EXPORT uint64_t sc_value_version(const sc_value *v);
/* Adds a reference (for values borrowed from the event hook); returns v. */
SC_EXPORT sc_value *sc_value_ref(const sc_value *v);
/* Drops one reference. NULL is a no-op. */
SC_EXPORT void sc_value_release(sc_value *v);

typedef struct sc_stats {
    uint64_t local_hits, local_misses, remote_hits, remote_misses;
    uint64_t events_published, events_received, events_applied;
    uint64_t events_ignored_self, events_stale, events_malformed;
    uint64_t invalidations, evictions;
    uint64_t local_entries, local_bytes;
    /* synccache additions */
    uint64_t remote_errors;        /* Redis calls that failed (timeouts too) */
    uint64_t loads_shared;         /* gets that waited for another's Redis read */
    uint64_t expirations;          /* local copies dropped because their TTL passed */
    uint64_t reconnects;           /* event stream re-established after a loss */
    uint64_t gaps;                 /* sequence gaps detected on the channel */
    uint64_t events_replayed;      /* events applied from the Redis event log */
    uint64_t flushes;              /* local tier dropped because catch-up was impossible
                                      (or by SC_DISCONNECT_FLUSH) */
    uint64_t heartbeat_misses;     /* own heartbeat not back in time */
    uint64_t stale_served;         /* gets answered by SC_DISCONNECT_STALE */
    uint64_t synced;               /* 1 while the event stream is live and caught up */
    uint64_t last_seq;             /* highest namespace sequence applied */
} sc_stats;

/* A consistent-enough snapshot of the counters (each read atomically). */
SC_EXPORT void sc_stats_get(sc_cache *c, sc_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* SYNCCACHE_H */
