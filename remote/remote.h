/* remote/: the Redis tier. A small pool of blocking hiredis connections (one
 * caller per connection at a time), the Lua scripts that write a value, its
 * version, the event log entry and the event in one step, and the key layout.
 *
 * Knows nothing of the local tier or of event decoding: events are built by
 * the Lua scripts (cmsgpack / cjson inside Redis) because the version is only
 * known there. Every function is thread-safe. Every call fails within about
 * timeout_ms (connect + command share one deadline) with SC_ERR_REMOTE or
 * SC_ERR_TIMEOUT and a message in err.
 *
 * Key layout (ns = namespace):
 *   <ns>:k:<key>  hash  value=<bytes> version=<decimal>   (PEXPIRE for TTLs)
 *   <ns>:seq      string counter: the namespace sequence = version source.
 *                 Seeded from Redis TIME in microseconds when absent, so
 *                 versions keep growing across a Redis restart that lost it.
 *   <ns>:log      stream, entry id "<seq>-0", field "e" = the encoded event,
 *                 capped with MAXLEN ~ log_len
 *   channel       default "<ns>:events"
 */
#ifndef SC_REMOTE_H
#define SC_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include <synccache/synccache.h>

typedef struct sc__remote sc__remote;

typedef struct sc__remote_config {
    const char *host;          /* used when unix_socket is NULL */
    int port;
    const char *unix_socket;
    const char *username;      /* NULL: AUTH <password> */
    const char *password;      /* NULL: no AUTH */
    int db;
    unsigned timeout_ms;
    unsigned pool_size;
    const char *ns;
    const char *channel;
    const char *sender;        /* pod id written into events */
    sc_wire_format wire_format;
    size_t log_len;            /* 0: no event log */
} sc__remote_config;

/* Connects one connection (proving Redis is there), loads the scripts.
 * Strings are copied. */
sc_status sc__remote_open(const sc__remote_config *cfg, sc__remote **out, char *err, size_t errlen);
void sc__remote_close(sc__remote *r); /* NULL is a no-op */

typedef struct sc__remote_item {
    char *data;        /* malloc'd copy, NUL-terminated; caller frees */
    size_t len;
    uint64_t version;
    int64_t pttl_ms;   /* -1: no TTL */
} sc__remote_item;

/* Value, version and remaining TTL in one round trip. SC_OK (caller frees
 * item->data), SC_NOT_FOUND, or an error. */
sc_status sc__remote_get(sc__remote *r, const char *key, size_t klen, sc__remote_item *item, char *err,
                         size_t errlen);

typedef enum sc__remote_event_kind {
    SC__REMOTE_EV_SET,        /* the event carries the value */
    SC__REMOTE_EV_INVALIDATE  /* the event carries no value */
} sc__remote_event_kind;

/* One script: seed/INCR <ns>:seq -> v, HSET value+version, PEXPIRE ttl_ms (or
 * PERSIST when 0), XADD the event to the log, PUBLISH it. *version_out = v.
 * With SC_WIRE_JSON and kind SET, value_b64 is the value in base64 (the
 * caller encodes it; Redis' Lua has no base64); otherwise it is ignored. */
sc_status sc__remote_set(sc__remote *r, const char *key, size_t klen, const void *val, size_t len,
                         const char *value_b64, uint64_t ttl_ms, sc__remote_event_kind kind,
                         uint64_t *version_out, char *err, size_t errlen);

/* One script: INCR, DEL the key, log and publish a delete event. */
sc_status sc__remote_delete(sc__remote *r, const char *key, size_t klen, uint64_t *version_out, char *err,
                            size_t errlen);

/* SCAN MATCH <ns>:k:* in batches with UNLINK per batch (never one command
 * over the whole namespace), then one script: INCR, log and publish a clear
 * event. Each round trip (SCAN, UNLINK, the script) gets its own timeout_ms:
 * the whole call grows with the namespace. */
sc_status sc__remote_clear(sc__remote *r, uint64_t *version_out, char *err, size_t errlen);

/* Seeds <ns>:seq when absent and returns its value. */
sc_status sc__remote_seq(sc__remote *r, uint64_t *seq_out, char *err, size_t errlen);

/* Publishes a heartbeat event whose version is the current <ns>:seq (read in
 * the same script, so every event up to it was published before it). */
sc_status sc__remote_heartbeat(sc__remote *r, char *err, size_t errlen);

/* Calls fn for each log entry with after < seq <= upto, in order, reading in
 * batches. fn returns 0 to go on, nonzero to stop. SC_OK when the walk ended
 * (the caller checks that the sequence numbers were contiguous). Each
 * XRANGE page gets its own timeout_ms; fn runs with no connection held, so
 * it may call into the Redis tier. */
typedef int (*sc__remote_log_fn)(uint64_t seq, const char *event, size_t len, void *ud);
sc_status sc__remote_log_range(sc__remote *r, uint64_t after, uint64_t upto, sc__remote_log_fn fn, void *ud,
                               char *err, size_t errlen);

/* ------------------------------------------------ internal to remote/ --
 * pool.c: the connection pool; scripts.c: the Lua scripts. Deadlines are
 * absolute CLOCK_MONOTONIC milliseconds (sc__remote_now_ms). */

struct redisReply;
typedef struct sc__pool sc__pool;

int64_t sc__remote_now_ms(void);
/* snprintf into err (when err is not NULL and errlen > 0). */
void sc__remote_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Copies the connection settings of cfg; connects nothing yet. */
sc_status sc__pool_create(const sc__remote_config *cfg, sc__pool **out, char *err, size_t errlen);
void sc__pool_destroy(sc__pool *p); /* NULL is a no-op */
const char *sc__pool_addr(const sc__pool *p); /* "host:port" or the socket path */

/* Takes a free connection (waiting until deadline), connects it if needed
 * (AUTH, SELECT) and runs one command. what names the command in messages.
 * SC_OK with *reply (caller frees; it may be an error reply), or
 * SC_ERR_TIMEOUT / SC_ERR_REMOTE / SC_ERR_NOMEM with *reply NULL. A pooled
 * connection found dead (Redis restarted) is replaced and the command
 * retried once within the same deadline. */
sc_status sc__pool_command(sc__pool *p, int64_t deadline, unsigned timeout_ms, const char *what, int argc,
                           const char **argv, const size_t *lens, struct redisReply **reply, char *err,
                           size_t errlen);

typedef enum sc__script_id {
    SC__SCRIPT_GET,
    SC__SCRIPT_SET,
    SC__SCRIPT_DELETE,
    SC__SCRIPT_CLEAR,
    SC__SCRIPT_HEARTBEAT,
    SC__SCRIPT_SEQ,
    SC__SCRIPT_COUNT
} sc__script_id;

/* SCRIPT LOAD of every script; shas[i] gets the hex SHA1 of script i. */
sc_status sc__scripts_load(sc__pool *p, unsigned timeout_ms, char shas[SC__SCRIPT_COUNT][41], char *err,
                           size_t errlen);

/* EVALSHA (EVAL after NOSCRIPT) of script id with args = nkeys keys then the
 * ARGV. SC_OK with a reply that is not an error (caller frees); an error
 * reply becomes SC_ERR_REMOTE with its text in err. */
sc_status sc__script_run(sc__pool *p, const char shas[SC__SCRIPT_COUNT][41], sc__script_id id, int nkeys,
                         int nargs, const char **args, const size_t *lens, int64_t deadline, unsigned timeout_ms,
                         struct redisReply **reply, char *err, size_t errlen);

#endif
