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
 * reference-counted: the caller owns one reference and releases it, on any
 * thread. A pointer to one is an opaque handle, used only with the
 * sc_value_* calls: a local hit of sc_get, sc_get_ex, sc_get_many,
 * sc_fetch or sc_fetch_batch (eventual consistency) may hand out a handle
 * to a per-thread pin that holds the value (so the hit writes nothing other
 * threads read), and two gets of one entry may return different pointers.
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

#if defined(__GNUC__)
#define SC__PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SC__PRINTF(fmt, args)
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
    X(SC_ERR_REMOTE, "Redis call failed: connection, refusal or protocol (see sc_errmsg)") \
    X(SC_ERR_TIMEOUT, "timed out")                                          \
    X(SC_ERR_CLOSED, "cache is closed")                                     \
    X(SC_ERR_CONFLICT, "versioned write lost to a newer version")           \
    X(SC_ERR_TOO_LARGE, "key or value too large")                           \
    X(SC_ERR_CODEC, "event could not be encoded or decoded")                \
    X(SC_ERR_LOADER, "the loader reported a failure (see sc_errmsg)")        \
    X(SC_ERR_LOCKED, "another pod holds the key's load lock past the wait")

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

/* What a pod serves while its event stream is down (not yet re-synced). In
 * every policy, on resubscription the pod replays the events it missed from
 * the log in Redis and flushes only what that cannot prove current
 * (docs/protocol.md). */
typedef enum sc_disconnect_policy {
    SC_DISCONNECT_FLUSH,  /* drop the local tier at once; gets read Redis */
    SC_DISCONNECT_STALE,  /* serve local copies while the last proof of sync
                             is at most stale_max_ms old, flagged stale */
    SC_DISCONNECT_BYPASS  /* the default: keep the local tier but read Redis
                             until re-synced, then replay the log, so the
                             cache stays warm across a drop; when Redis
                             itself cannot be read, a local copy is served
                             (flagged stale) while the last proof of sync is
                             at most stale_max_ms old */
} sc_disconnect_policy;

/* How sc_fetch treats a key tagged with sc_tag_deleted (README, "Loading"). */
typedef enum sc_consistency {
    SC_EVENTUAL, /* while one pod reloads a tagged key, fetches elsewhere may
                    return the outdated value instead of waiting */
    SC_STRONG    /* once sc_tag_deleted returned, no fetch on any pod returns
                    the outdated value; a local hit is confirmed with Redis
                    (one round trip, no value transfer) */
} sc_consistency;

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
    const char *action;      /* "set", "invalidate", "delete", "clear" or
                                "tag" (key: the tag, sc_invalidate_tag) */
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

/* Transform hook (the Go original's OnSetLocalCache): called for every value
 * that enters the local tier from outside the calling thread's own write:
 * another pod's set event, a replayed event (catch-up from the log), a Redis
 * read (sc_get, sc_get_many). Never for the pod's own sc_set. key, val (len
 * bytes) and version are borrowed for the call; *out starts NULL.
 * Return 1 with *out (malloc'd, out_len bytes; the cache frees it) to store
 * those bytes instead (same key and version), 0 to store the value as
 * received, -1 to keep nothing locally (the next get reads Redis again). Any
 * other return, or 1 with *out NULL and *out_len > 0, keeps nothing. Whatever
 * the return, a buffer left in *out is freed by the cache.
 * A Redis read hands its caller what the local tier stores: with 1 the first
 * sc_get already returns the transformed bytes (so a hit and a miss return
 * the same thing), with 0 or -1 the bytes as read. For that reason the hook
 * also runs on reads that are not kept (the pod is not synced, the key is
 * about to expire). Event hooks (on_event) still see the value as carried.
 * Runs on the sync thread (events) or on the thread whose get read Redis
 * (with redis_tracking also on the pod's confirm thread, to tell whether a
 * copy it transformed is still what it makes of Redis' bytes: so the same
 * input must give the same output); must be thread-safe, quick, and must
 * not call back into the cache. */
typedef int (*sc_transform_fn)(const char *key, const void *val, size_t len, uint64_t version, void **out,
                               size_t *out_len, void *ud);

/* Write-behind: one write a durable store is asked to save (see
 * sc_set_behind). Everything is borrowed for the duration of the save call. */
typedef struct sc_dirty {
    const char *key;      /* NUL-terminated */
    const void *value;    /* NULL: the key was deleted */
    size_t len;
    uint64_t version;     /* Redis version of this write; a store keeps the
                             highest it has seen per key and refuses older
                             ones (UPDATE ... WHERE version < ?), and keeps
                             a delete as a tombstone row with its version */
} sc_dirty;

/* Saves a batch to the durable store as one transaction. SC_OK: all saved.
 * Anything else: nothing counts as saved; the batch is retried later, by
 * this pod or another. Items hold one write per key (the newest of the
 * batch), in version order. Runs on the pod's write-behind thread, one call
 * at a time per pod (pods of one process call theirs concurrently; with
 * partitions each partition has its own thread and queue, so up to P calls
 * run at once, never two with the same key). Saves
 * are at least once: a write may be offered again (after a takeover, or a
 * save whose acknowledgement was lost), possibly after a newer write of the
 * key was saved, which is what the version is for. Must not call back into
 * the cache (sc_close may have returned while a hung call still runs). */
typedef sc_status (*sc_save_fn)(const sc_dirty *items, size_t n, void *ud);

typedef struct sc_options {
    const char *pod_id;            /* NULL: generated, unique per process */
    const char *ns;                /* namespace: every Redis key is "{ns}:..." (one
                                      hash slot; "{ns#p}:..." with partitions);
                                      default "sc"; no '{', '}', '#' or control
                                      characters, at most 256 bytes */
    const char *channel;           /* NULL: derived from ns ("{ns}:events");
                                      namespaces may share one */
    const char *redis_host;        /* default "127.0.0.1" */
    int redis_port;                /* default 6379 */
    const char *redis_unix_socket; /* when set, used instead of host/port */
    const char *redis_username;    /* ACL user, may be NULL */
    const char *redis_password;    /* may be NULL */
    int redis_db;                  /* default 0 */
    unsigned redis_timeout_ms;     /* per command; default 1000 */
    const char *redis_cluster_nodes; /* "host:port,host:port": seed nodes of a
                                      Redis Cluster (the namespace is one hash
                                      slot; events use sharded pub/sub); NULL:
                                      one Redis (host/port/socket) */
    const char *sentinel_nodes;    /* "host:port,...": find the master through
                                      these sentinels; NULL: no Sentinel */
    const char *sentinel_master;   /* the master's name at the sentinels;
                                      default (and NULL) "mymaster" */
    unsigned partitions;           /* partitions of the namespace, 1..256;
                                      default 1 (0 means 1). P > 1: keys are
                                      spread by hash over P namespaces
                                      "{ns#p}" (each its own hash slot,
                                      counter, log and channel); every pod of
                                      the namespace must use the same P
                                      (else SC_ERR_INVALID); channel must be
                                      NULL; see README, "Partitioned
                                      namespaces" */
    sc_local_policy local_policy;  /* default SC_LOCAL_LFU */
    size_t local_max_entries;      /* default 100000; 0 = no entry bound, on purpose */
    size_t local_max_bytes;        /* default 256 MiB (key + value bytes); 0 = no
                                      byte bound, on purpose. Both defaults keep
                                      a cache from growing with the key space. */
    uint64_t local_ttl_ms;         /* longest life of a local copy; 0 = none */
    uint64_t default_ttl_ms;       /* Redis TTL when a set passes 0; 0 = none;
                                      at most 2^53 */
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
                                      leave room for the event in max_event_bytes
                                      (sc_open checks the largest one: a
                                      max_key_bytes key, this value, a 256-byte
                                      pod id, the namespace, and in JSON every
                                      byte of them escaped) */
    unsigned local_shards;         /* 0 = automatic; else a power of two <= 256.
                                      Each shard bounds its share of
                                      local_max_bytes, and an item (key +
                                      value) above the share is not kept
                                      locally (gets read it from Redis; a
                                      plain reader's sc_set: SC_ERR_TOO_LARGE).
                                      Automatic keeps a share >= 4 MiB */

    /* --- consistency under faults --- */
    sc_disconnect_policy disconnect_policy; /* default SC_DISCONNECT_BYPASS */
    uint64_t stale_max_ms;         /* how long after the last proof of sync a
                                      local copy may still be served while
                                      unsynced (STALE always, BYPASS when Redis
                                      cannot be read); default 5000 */
    unsigned heartbeat_interval_ms;/* default 250; 0 disables heartbeats */
    unsigned heartbeat_timeout_ms; /* own heartbeat not back after this: the
                                      stream counts as lost; default 1000 */
    unsigned reconnect_min_ms;     /* first backoff step; default 50 */
    unsigned reconnect_max_ms;     /* backoff cap; default 2000 */
    size_t event_log_len;          /* events kept in Redis for catch-up;
                                      default 10000, 0 disables the log (then
                                      every lost event means a flush); at
                                      most 2^53 */
    uint64_t tombstone_ttl_ms;     /* how long a delete is remembered in Redis
                                      (a tombstone holding its version);
                                      default 86400000 (1 day), 0: not at all;
                                      at most 2^53 */
    int redis_tracking;            /* default 1: server-assisted invalidation
                                      (Redis >= 6 CLIENT TRACKING, BCAST,
                                      redirected to the subscriber): writes
                                      that bypass synccache (other clients,
                                      expiry, eviction, FLUSHALL) drop the
                                      pods' copies too; refused or an older
                                      Redis: a warning, and the pod runs
                                      without. 0: no tracking command is sent */

    /* --- hooks --- */
    sc_event_fn on_event;          /* NULL: none */
    void *on_event_ud;             /* passed to on_event */
    sc_transform_fn on_set_local;  /* NULL: none (see sc_transform_fn) */
    void *on_set_local_ud;         /* passed to on_set_local */

    /* --- logging --- */
    sc_log_fn log_fn;              /* NULL: no logging */
    void *log_ud;                  /* passed to log_fn */
    sc_log_level log_level;        /* most verbose level passed; default WARN */

    /* --- write-behind (sc_set_behind) --- */
    sc_save_fn save_fn;            /* NULL: this pod saves nothing (it may
                                      still queue writes for others) */
    void *save_ud;                 /* passed to save_fn; must outlive it (see
                                      sc_close) */
    unsigned writeback_interval_ms;/* how often the queue is read when the
                                      last batch was not full; default 1000,
                                      1..3600000 */
    unsigned writeback_batch;      /* most queue entries per save call;
                                      default 256, 1..10000 */
    unsigned writeback_claim_ms;   /* a batch taken and not acknowledged for
                                      this long (its pod died, hung or is
                                      retrying too slowly) is taken over by
                                      another pod; default 30000, 1..86400000 */

    /* --- cache-aside loading (sc_fetch) --- */
    sc_consistency consistency;    /* default SC_EVENTUAL */
    uint64_t empty_ttl_ms;         /* how long a loader's "not found" is cached
                                      (every pod); default 60000; 0: never */
    unsigned ttl_jitter_pct;       /* loaded TTLs shortened by a random 0..pct %;
                                      default 10; at most 100 */
    uint64_t lock_ttl_ms;          /* a pod's load lock on a key lapses after
                                      this (Redis clock): another pod may then
                                      take the load over. A slower loader's
                                      result is still stored when none did
                                      (within 10 x this); default 3000 */
    uint64_t tag_delete_delay_ms;  /* a tagged value stays readable (to eventual
                                      fetches) this long; default 10000 */
    uint64_t stats_window_ms;      /* length of a load-stats window; default 60000 */
    uint64_t grace_ms;             /* how long a loaded value stays available
                                      past its TTL (in Redis, and in this pod's
                                      grace table) for stale-if-error answers
                                      of sc_fetch_ex; default 0 (none); at most
                                      2^40 */
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
 * running. No other call may be in progress on c.
 * Write-behind: a pod with a save_fn first stops taking batches, waits for
 * the save in progress (at most writeback_claim_ms), acknowledges it and
 * hands what it took but did not save back to the other pods (any pod's next
 * take claims it at once): at most writeback_claim_ms + 3 x redis_timeout_ms
 * in all. A save_fn still running after writeback_claim_ms is left to
 * finish on its own (detached) thread, which then exits without touching
 * the cache; its batch is taken over by another pod. save_fn and save_ud
 * must stay valid until that call returns. */
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
    int stale;           /* 1: served from the local tier while unsynced
                            (SC_DISCONNECT_STALE, or BYPASS with Redis away);
                            sc_fetch_ex: a graced value (stale-if-error) */
    uint64_t sync_age_ms;/* with stale: ms since the last proof of sync
                            (sc_fetch_ex: ms past the value's TTL) */
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
 * needed, *version set); SC_NOT_FOUND or an error as sc_get (*len = 0,
 * buf and *version untouched). buf may be NULL when cap is 0; len must
 * not be NULL. Thread-safe. */
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
 * may survive it. A plain reader clears only its local tier. With
 * partitions, each partition is cleared in turn (not one atomic step); the
 * first failure is returned after the others ran. */
SC_EXPORT sc_status sc_clear(sc_cache *c);

/* ---- versions (compare-and-set without ABA) ----
 * Every key has a number in Redis that changes whenever the key is written,
 * deleted, tagged deleted or its namespace cleared: its version, kept by a
 * delete as a tombstone for tombstone_ttl_ms, and never below the version of
 * the namespace's last clear. It is 0 only for a key with no remembered
 * history. Retention window: once a delete's tombstone expires, the number
 * of a deleted key falls back to the clear floor (or 0), so a snapshot older
 * than tombstone_ttl_ms may match again; choose tombstone_ttl_ms longer than
 * any snapshot-to-write interval (cascache's GenRetention). */

/* The key's number, read from Redis (one round trip, never the local tier).
 * An absent key may have one (a tombstone, an invalidated tag, a clear
 * floor): read it before the value to pair the two for sc_set_if_version
 * (a get of the key on this pod afterwards never answers older than it).
 * SC_OK with *version, SC_ERR_INVALID / SC_ERR_TOO_LARGE for a bad key,
 * SC_ERR_REMOTE / SC_ERR_TIMEOUT. */
SC_EXPORT sc_status sc_version_of(sc_cache *c, const char *key, uint64_t *version);

/* sc_set (version, event, local tier), but only if the key's number still
 * equals expected; the check and the write are one script. SC_ERR_CONFLICT
 * when it does not: nothing written or published, and the pod's copy of the
 * key is dropped if it was older than the winning version. A plain reader
 * (no reader_can_set_to_redis) gets SC_ERR_INVALID: it cannot write Redis.
 * SC_ERR_REMOTE / SC_ERR_TIMEOUT: the outcome is unknown (the connection
 * went, or the time ran out, after the script was sent: it may have run);
 * read the number again before deciding. The script is never sent twice. */
SC_EXPORT sc_status sc_set_if_version(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                                      uint64_t expected);

/* Reads n keys: the local tier first, then ONE Redis round trip for all the
 * misses (a key given twice is read once; with partitions, one pipelined
 * exchange per Redis node holding some of the keys, every node's written
 * before any node's read: about one round trip in all). out[i] gets a
 * reference (caller releases) or NULL for a key not found; values read from
 * Redis are installed under the same rules as sc_get. While the pod is
 * unsynced every key is read from Redis: sc_get_many has no way to flag a
 * local copy stale, so it never serves one (with Redis down it fails where
 * sc_get_ex may answer a stale copy under disconnect_policy).
 * SC_OK, or an error with every
 * out[i] NULL: SC_ERR_INVALID (a NULL, empty or too long key; n above 2^20,
 * then only the first 2^20 slots are set NULL), SC_ERR_REMOTE /
 * SC_ERR_TIMEOUT, SC_ERR_NOMEM. */
SC_EXPORT sc_status sc_get_many(sc_cache *c, const char *const *keys, size_t n, sc_value **out);

/* ---- write-behind (lazywritercache, without its data loss) ----
 * The queue of writes waiting for the durable store lives in Redis, not in
 * a pod: the stream {ns}:wb with one consumer group ("synccache"). Every pod
 * of the namespace with a save_fn consumes it on a thread of its own: every
 * writeback_interval_ms (at once again when a batch was full) it takes up
 * to writeback_batch entries, keeps the newest write of each key, calls
 * save_fn, and on SC_OK acknowledges the entries; the queue is trimmed of
 * acknowledged entries only. A failed save is counted and retried with
 * backoff (writeback_interval_ms doubling up to 30 s), never dropped; a
 * batch left unacknowledged for writeback_claim_ms (its pod died, hung, or
 * retries slower than that) is taken over by another pod (XAUTOCLAIM). So a
 * pod crash loses nothing; what a Redis crash loses depends on its
 * persistence (README, "Write-behind"). Before anything else a pod reads the
 * entries that are its own and unacknowledged, then those to take over,
 * then new ones. Only the _behind calls reach the store: an sc_set,
 * sc_delete or sc_clear of the same keys changes the cache, not the store. */

/* sc_set plus an entry in the write-behind queue, in the same Redis script:
 * when it returns SC_OK the value is in Redis (every pod sees it as after
 * sc_set) and queued for the store. Same arguments, statuses and local-tier
 * rules as sc_set; a plain reader (no reader_can_set_to_redis) gets
 * SC_ERR_INVALID, since it cannot write Redis. The queue entry holds its own
 * copy of the value, so a TTL, an eviction or a clear of the key in Redis
 * does not change what is saved. */
SC_EXPORT sc_status sc_set_behind(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms);

/* sc_delete plus a queue entry that tells the store to delete the key (an
 * sc_dirty with value NULL), in the same script. SC_ERR_INVALID for a plain
 * reader. */
SC_EXPORT sc_status sc_delete_behind(sc_cache *c, const char *key);

/* Returns SC_OK once every write queued before the call (by any pod) was
 * saved by some pod and acknowledged; SC_ERR_TIMEOUT when that did not
 * happen within timeout_ms (for instance because no pod has a save_fn, or
 * the store keeps failing); SC_ERR_REMOTE / SC_ERR_TIMEOUT when Redis cannot
 * be read; SC_ERR_INVALID for a NULL cache. Polls the queue's state (one
 * round trip every 10..100 ms) and wakes this pod's own saver. Any pod may
 * call it, with or without a save_fn. */
SC_EXPORT sc_status sc_flush_behind(sc_cache *c, unsigned timeout_ms);

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
    uint64_t stale_served;         /* answers flagged stale: gets served from the
                                      local tier while unsynced, fetches answered
                                      with a graced or local value (sc_fetch_ex) */
    uint64_t synced;               /* 1 while the event stream is live and caught up */
    uint64_t last_seq;             /* highest namespace sequence applied (with
                                      partitions: the sum of the partitions') */
    uint64_t events_foreign;       /* events of other namespaces on the channel, ignored */
    uint64_t events_forged;        /* events claiming a sequence Redis had not reached,
                                      or a second different event for one sequence:
                                      dropped (their keys dropped locally) */
    uint64_t duplicate_pod_ids;    /* events from another process using this pod id */
    uint64_t epoch_changes;        /* the namespace history restarted (counter lost,
                                      rollback, clear) */
    uint64_t publish_failures;     /* writes stored and logged whose PUBLISH failed
                                      (pods catch them from the log) */
    /* write-behind */
    uint64_t behind_queued;        /* writes this pod queued (sc_set_behind,
                                      sc_delete_behind) */
    uint64_t behind_saved;         /* queued writes this pod's save_fn saved
                                      (a write coalesced into a newer one of its
                                      key counts as saved with it) */
    uint64_t behind_save_failures; /* save_fn calls that did not return SC_OK */
    uint64_t behind_pending;       /* the namespace's queue: writes no pod has
                                      saved yet (taken or not); a gauge read
                                      from Redis at most every
                                      writeback_interval_ms */
    uint64_t behind_oldest_ms;     /* age of the oldest of them (Redis clock);
                                      0 when none */
    /* server-assisted invalidation (redis_tracking) */
    uint64_t tracking_active;      /* 1 while CLIENT TRACKING delivers to this pod */
    uint64_t tracking_invalidations; /* local copies that went because
                                      another client wrote their key (or
                                      Redis expired, evicted, flushed it); a
                                      key the pod did not hold counts nothing */
    uint64_t tracking_confirmed;   /* local copies proven current by the
                                      confirm script: invalidations of
                                      synccache's own writes, and every copy
                                      at a resubscription */
    uint64_t tracking_failures;    /* tracking refused, or the canary not back
                                      in time (the pod resubscribed and
                                      confirmed every copy with Redis) */
} sc_stats;

/* A consistent-enough snapshot of the counters (each read atomically). */
SC_EXPORT void sc_stats_get(sc_cache *c, sc_stats *out);

/* Prometheus text exposition format 0.0.4 of every field of sc_stats
 * (counters as "synccache_<field>_total"; local_entries, local_bytes, synced,
 * last_seq, behind_pending, behind_oldest_ms and tracking_active as
 * gauges), with # HELP and # TYPE for each family and the labels ns and pod
 * (values escaped; a byte that is not UTF-8 there becomes U+FFFD), plus
 * three histograms in seconds:
 *   synccache_remote_get_duration_seconds  the Redis read of a get;
 *   synccache_remote_set_duration_seconds  the write script of a set;
 *   synccache_propagation_delay_seconds    an event's Redis publish time to
 *                                          its apply on this pod (on this
 *                                          pod's estimate of the Redis clock).
 * Like snprintf: writes at most cap bytes including the terminating NUL
 * (buf may be NULL when cap is 0) and returns the length the whole text
 * needs, without the NUL; a return >= cap means it was cut. Nothing to free.
 * Thread-safe, not lock-free: it takes each local shard's lock and the
 * statistics' locks briefly, as writers do (never a hit's path); each
 * number is read atomically (the text is not one snapshot). A NULL cache gives "" (returns 0). */
SC_EXPORT size_t sc_metrics_text(sc_cache *c, char *buf, size_t cap);

/* ------------------------------------------------ cache-aside loading --
 * sc_fetch reads the local tier, then Redis, and only then calls the loader;
 * across all pods of the namespace at most one loader runs for a key at a
 * time (a load lock in the key's Redis hash, times from Redis' clock). The
 * others wait for its result (woken by its set event, with a short poll as
 * a fallback) and load themselves only when the lock lapses (lock_ttl_ms).
 * Fetches need a pod that writes Redis (SC_ROLE_WRITER or
 * reader_can_set_to_redis): locks and results are Redis writes. With a
 * caller's event_base, a fetch on the loop's thread that waits for another
 * pod is answered by the poll (the loop cannot deliver the event). */

typedef struct sc_loaded sc_loaded; /* a loader's result slot; opaque */

/* Sets the slot's value (copied; a second call replaces it). A value longer
 * than max_value_bytes makes the fetch fail with SC_ERR_TOO_LARGE; a NULL val
 * with len > 0, with SC_ERR_INVALID. */
SC_EXPORT void sc_loaded_set(sc_loaded *slot, const void *val, size_t len);
/* A message for a failing loader to leave: the fetch's sc_errmsg carries it
 * (truncated to 255 bytes). */
SC_EXPORT void sc_loaded_error(sc_loaded *slot, const char *fmt, ...) SC__PRINTF(2, 3);

/* Called on the thread of the sc_fetch that leads the load (never after that
 * sc_fetch returned; sc_fetch_ex with a soft or hard timeout is the
 * exception: there it runs on a thread of its own and may outlive the call). May block, and may call the cache for other keys (a
 * fetch of the key being loaded, from the loader, fails with
 * SC_ERR_INVALID). Returns SC_OK after sc_loaded_set, SC_NOT_FOUND when the
 * source has no such key, anything else for a failure (nothing is cached). */
typedef sc_status (*sc_load_fn)(const char *key, sc_loaded *slot, void *ud);
/* Fills slots[i] for keys[i] (both borrowed for the call); a slot left unset
 * is "not found". SC_OK or SC_NOT_FOUND: the slots count; anything else: the
 * whole batch failed. */
typedef sc_status (*sc_load_batch_fn)(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud);

/* Local tier, then Redis, else load (see above). The loaded value is stored
 * like sc_set (version, event, every pod installs it) with TTL ttl_ms (0:
 * default_ttl_ms) shortened by 0..ttl_jitter_pct %. A loader's SC_NOT_FOUND
 * stores an empty marker for empty_ttl_ms: fetches on every pod return
 * SC_NOT_FOUND without a load until it lapses. Concurrent fetches of a key in
 * one pod share one load (and one loader call).
 * Returns SC_OK with *out (caller releases), SC_NOT_FOUND (*out NULL), or
 * SC_ERR_LOADER (the loader failed; nothing cached, the lock released at
 * once; sc_errmsg holds the loader's message), SC_ERR_LOCKED (another pod's
 * lock was still held after about 2 x lock_ttl_ms), SC_ERR_TOO_LARGE,
 * SC_ERR_INVALID, SC_ERR_REMOTE, SC_ERR_TIMEOUT, SC_ERR_NOMEM. */
SC_EXPORT sc_status sc_fetch(sc_cache *c, const char *key, uint64_t ttl_ms, sc_load_fn load, void *ud,
                             sc_value **out);

/* Per-call loading options of sc_fetch_ex. Initialise with
 * sc_fetch_opts_init, then change fields. */
typedef struct sc_fetch_opts {
    uint64_t ttl_ms;              /* 0: default_ttl_ms */
    uint64_t grace_ms;            /* UINT64_MAX (the default): the grace_ms
                                     option; 0: none. How long past its TTL the
                                     loaded value stays available, and how far
                                     past its TTL a value may be to be served
                                     stale by this call */
    unsigned soft_timeout_ms;     /* 0: none. With a graced value at hand, the
                                     fetch answers it (stale) once the load (or
                                     the wait for another pod's load) has taken
                                     this long; the load goes on in the
                                     background and stores its result */
    unsigned hard_timeout_ms;     /* 0: none. With no graced value to serve,
                                     the fetch returns SC_ERR_TIMEOUT after this
                                     long; the load goes on in the background
                                     and may still store its result */
    const char *const *tags;      /* the loaded value's tags (see
                                     sc_set_tagged); borrowed for the call */
    size_t ntags;
} sc_fetch_opts;

/* Every field its default: ttl 0, grace UINT64_MAX (the option), no
 * timeouts, no tags. NULL is a no-op. */
SC_EXPORT void sc_fetch_opts_init(sc_fetch_opts *o);

/* sc_fetch with per-call options (o NULL: the defaults; sc_fetch is this
 * with o->ttl_ms = ttl_ms) and info (may be NULL) saying where the answer
 * came from.
 *
 * Grace (stale-if-error): a value loaded with grace g > 0 lives g ms past
 * its TTL in Redis (marked no longer fresh: sc_get and sc_get_many treat it
 * as absent) and in a bounded grace table of the pod that loaded or read it
 * (never past the rules of docs/protocol.md: any write, delete, tag, clear
 * or flush that reaches the pod retires it). A fetch of an expired key loads
 * as usual; when the load fails (SC_ERR_LOADER), the soft timeout passes, the
 * wait for another pod's load runs out (SC_ERR_LOCKED) or Redis cannot be
 * read (SC_ERR_REMOTE / SC_ERR_TIMEOUT), the fetch answers SC_OK with the
 * graced value and info->stale = 1 (info->sync_age_ms: how long past its TTL
 * the value is), provided the value is at most the call's grace past its TTL.
 * Never a value past its grace. When Redis cannot be read while the pod is
 * unsynced, a local copy (not yet expired; never under SC_STRONG, which
 * answers no copy it cannot confirm) is served the same way, flagged
 * stale; without a grace only under sc_get's rule (disconnect_policy not
 * SC_DISCONNECT_FLUSH, last proof of sync at most stale_max_ms old; then
 * info->sync_age_ms is that age).
 *
 * Timeouts: with soft_timeout_ms or hard_timeout_ms set, the loader runs on
 * a thread of its own, and the calling fetch waits for it at most until the
 * soft timeout (when a graced value is at hand) or the hard timeout. A load
 * left running stores its result when it returns, under the same rules as
 * any load: only while its load lock still holds (a set, delete, tag, clear
 * or tag invalidation since revokes it, so it never overwrites a newer
 * write), and not at all once sc_close began. Such a loader may therefore
 * run after sc_fetch_ex returned and even after sc_close returned: load and
 * ud must stay valid until it returns. A loader that fetches its own key
 * from that thread gets SC_ERR_INVALID at once, as from any loader.
 *
 * Tags: the stored value carries o->tags (see sc_set_tagged).
 *
 * Returns as sc_fetch, plus SC_ERR_TIMEOUT at the hard timeout. */
SC_EXPORT sc_status sc_fetch_ex(sc_cache *c, const char *key, const sc_fetch_opts *o, sc_load_fn load, void *ud,
                                sc_value **out, sc_get_info *info);

/* Most keys in one sc_fetch_batch. */
#define SC_FETCH_BATCH_MAX 4096

/* sc_fetch for n keys (in any order, duplicates allowed): one Redis round
 * trip for the keys no local tier holds; the batch loader is called once with
 * the keys that are missing and not being loaded elsewhere (again only if a
 * lock it waited for lapsed); keys other pods are loading are waited for;
 * the loaded values are stored in one round trip. With partitions, the
 * same: one loader call with the keys of every partition, and each round
 * trip is one pipelined exchange per Redis node (the partitions' scripts
 * for a node on one connection), the nodes' exchanges overlapping. out has
 * n slots: out[i] is
 * the value of keys[i] (caller releases each) or NULL when not found.
 * Returns SC_OK when every key was answered (found or not), else the first
 * failure, with every out[i] NULL (with n over SC_FETCH_BATCH_MAX,
 * SC_ERR_INVALID and the first SC_FETCH_BATCH_MAX slots NULL). */
SC_EXPORT sc_status sc_fetch_batch(sc_cache *c, const char *const *keys, size_t n, uint64_t ttl_ms,
                                   sc_load_batch_fn load, void *ud, sc_value **out);

/* rockscache's delayed delete: the key's Redis value gets a new version and
 * is marked outdated (kept tag_delete_delay_ms for eventual fetches, then
 * removed), any load lock on it is revoked (that load's result is not
 * stored), and an invalidate event goes to every pod. Tagging a missing key
 * is SC_OK. Counts a manual miss. */
SC_EXPORT sc_status sc_tag_deleted(sc_cache *c, const char *key);

/* ---- tags ----
 * A tagged write records its tags (at most 64, each a non-empty string of at
 * most max_key_bytes without a newline) in the key's Redis hash.
 * sc_invalidate_tag makes every key written with the tag before the call not
 * found, on every pod, in one Redis step whatever their number: the tag's
 * invalidation version goes into {ns}:tags and every Redis read compares it
 * with the key's version (no scan of the key space); pods drop their local
 * copies of the tag's keys on the "tag" event (through a local index of the
 * tags of what they hold), and a lost event is caught up from the event log
 * like any other. Keys written with the tag afterwards are unaffected, as is
 * a load (sc_fetch_ex) that began after the call. A load that began before
 * it stores nothing (its result would predate the invalidation).
 * A tagged write is announced to other pods as an invalidate (they read the
 * value, with its tags, from Redis on their next get). */

/* sc_set with tags (borrowed; ntags 0 is plain sc_set semantics with an
 * invalidate event). A later untagged write of the key drops its tags.
 * Returns as sc_set; SC_ERR_INVALID for a bad tag or a plain reader. */
SC_EXPORT sc_status sc_set_tagged(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                                  const char *const *tags, size_t ntags);

/* Every key written with tag before this call becomes not found on every
 * pod (see above). One Redis script (one per partition, in turn, with
 * partitions); the local copies of this pod go before
 * it returns, other pods' on the event. Invalidating a tag no key carries is
 * SC_OK. A plain reader drops its own local copies only. SC_OK,
 * SC_ERR_INVALID / SC_ERR_TOO_LARGE (bad tag), SC_ERR_REMOTE, SC_ERR_TIMEOUT. */
SC_EXPORT sc_status sc_invalidate_tag(sc_cache *c, const char *tag);

typedef enum sc_window { SC_WINDOW_TOTAL, SC_WINDOW_CURRENT, SC_WINDOW_LAST } sc_window;

/* Load statistics of sc_fetch / sc_fetch_batch (each distinct key of a
 * batch counts as one fetch; a key given twice counts once). Windows are stats_window_ms long counted from sc_open
 * (dated with the coarse monotonic clock: to the scheduler tick, 1-4 ms);
 * CURRENT is the one in progress, LAST the previous complete one (zero
 * before the first ends, and zero when nothing happened in it). */
typedef struct sc_load_stats {
    uint64_t hits;           /* fetches answered by a tier (a cached "not found" too) */
    uint64_t misses;         /* fetches that loaded, or waited for another's load */
    uint64_t errors;         /* fetches that failed */
    uint64_t manual_misses;  /* sc_tag_deleted calls */
    uint64_t hit_ns, miss_ns; /* total time spent in hits / misses; a single
                                 sc_fetch hit is timed one time in 16 per thread
                                 and stands for 16 (the clock costs more than
                                 the hit), so hit_ns is an estimate */
    double hit_rate;         /* hits / (hits + misses + errors); 0 when none */
    double error_rate;       /* errors / (hits + misses + errors) */
    double hit_avg_ns, miss_avg_ns;
} sc_load_stats;

/* A snapshot of one window. Each thread's counts are read whole (hits,
 * misses and times of one moment, so they agree with each other); the
 * threads are read one after another, so an outcome still in progress on
 * one thread may show in the next snapshot instead. No outcome is counted
 * twice or lost. */
SC_EXPORT void sc_load_stats_get(sc_cache *c, sc_window w, sc_load_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* SYNCCACHE_H */
