/* sync/: everything about the event stream. Three parts, one file each:
 *   event.c     the event codec (msgpack and JSON, both accepted on input)
 *   sequence.c  the apply rules: own events, duplicates, gaps
 *   subscriber.c the libevent + hiredis async subscription: its own thread or
 *               the caller's event_base, reconnect with capped backoff and
 *               jitter, a periodic tick
 *
 * Knows nothing of the local tier or the blocking Redis pool; lib/ wires them
 * through the callbacks below.
 */
#ifndef SC_SYNC_H
#define SC_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include <synccache/synccache.h>

struct event_base;

/* ---------------------------------------------------------------- codec --
 * An event is a map with these fields (same names in both encodings):
 *   format  integer, 1
 *   action  "set" | "invalidate" | "delete" | "clear" | "heartbeat" | "tag"
 *           ("tag": key is the tag whose keys written below version go)
 *   ns      string: the namespace; absent = every namespace on the channel
 *   key     string (absent or "" for clear and heartbeat)
 *   sender  string, the pod id (a label; replicas may share one)
 *   inst    string, the sending process's instance id (random per open)
 *   value   set only: msgpack str or bin / JSON base64 string
 *   ttl     unsigned ms counted from time, 0 or absent = none
 *   version unsigned integer: the namespace sequence of the write (for a
 *           heartbeat: the sequence when it was sent); absent or 0 for an
 *           event from an outside publisher
 *   time    unsigned ms since the Unix epoch when published (Redis clock)
 *   epoch   string: the namespace epoch when published (docs/protocol.md)
 *   digest  string, optional: SHA-1 (40 hex digits) of the value the write
 *           stored, on an invalidate that stored one (a tagged, large or
 *           sc_set_invalidate write), for server-assisted invalidation
 * The encoder writes them in this order, version and time as msgpack uint64
 * (0xcf) so a template can leave room for them (sc__event_encode_template).
 * msgpack is a map with string keys; JSON is an object. Unknown fields are
 * ignored. In JSON, numbers may also be decimal strings (Redis' cjson cannot
 * print integers above 2^53 exactly). */

typedef enum sc__action {
    SC__ACT_SET = 1,
    SC__ACT_INVALIDATE,
    SC__ACT_DELETE,
    SC__ACT_CLEAR,
    SC__ACT_HEARTBEAT,
    SC__ACT_TAG          /* sc_invalidate_tag: key holds the tag; every key
                            written with it below version goes */
} sc__action;

typedef struct sc__event {
    int format;
    sc__action action;
    const char *key;     /* NUL-terminated; "" when absent */
    size_t key_len;
    const char *sender;  /* NUL-terminated; "" when absent */
    size_t sender_len;
    int has_ns;          /* 0: meant for every namespace on the channel */
    const char *ns;      /* NUL-terminated; "" when absent */
    size_t ns_len;
    const char *inst;    /* NUL-terminated; "" when absent */
    size_t inst_len;
    const char *epoch;   /* NUL-terminated; "" when absent */
    size_t epoch_len;
    const char *digest;  /* NUL-terminated; "" when absent */
    size_t digest_len;
    uint64_t version;
    int has_value;
    const void *value;   /* NUL-terminated too */
    size_t value_len;
    uint64_t ttl_ms;
    uint64_t time_ms;
    void *storage_;      /* owned copy of the strings; sc__event_free frees */
} sc__event;

/* Decodes one message (msgpack when the first byte is a map marker, JSON when
 * it starts with '{' after whitespace). Rejects with SC_ERR_TOO_LARGE a
 * message longer than max_bytes (0 = no limit), with SC_ERR_CODEC anything
 * malformed: wrong types, unknown action, missing key for set / invalidate /
 * delete, a key with a NUL byte, set without value, bad base64, trailing
 * bytes. On success the caller calls sc__event_free. On failure nothing needs
 * freeing. Never reads past len.
 * Also rejected: a known field given twice, format other than 1 (absent
 * means 1), a NUL byte in sender, negative or fractional numbers, in JSON
 * any string holding \u0000. A value on an action other than set must be
 * well-formed but is dropped (has_value 0). ev is zeroed first, so after a
 * failure it is a zeroed event. buf need not be NUL-terminated. */
sc_status sc__event_decode(const void *buf, size_t len, size_t max_bytes, sc__event *ev);
void sc__event_free(sc__event *ev);

/* Encodes ev (fields as above; value only for set) into a malloc'd buffer
 * the caller frees with free() (JSON output is also NUL-terminated). format
 * is always written as 1, msgpack values as bin, JSON numbers >= 2^53 as
 * decimal strings. SC_ERR_INVALID for an event the decoder would reject
 * (bad action, empty key where one is needed, NUL in key or sender, set
 * without value), SC_ERR_NOMEM. */
sc_status sc__event_encode(const sc__event *ev, sc_wire_format fmt, char **out, size_t *out_len);

/* An encoded event with three holes, for the Redis scripts: the bytes of
 * sc__event_encode with the version, time and epoch values left out; cut[i]
 * is where value i goes (cut[0] <= cut[1] <= cut[2] <= len). In msgpack the
 * version and time each take 8 big-endian bytes and the epoch its raw bytes
 * (the str header before cut[2] is for a 16-byte epoch); in JSON the numbers
 * are decimal and the epoch goes between its quotes. buf is the caller's
 * scratch when the event fits in its scratch_cap bytes (a write then
 * allocates nothing), else malloc'd: the caller frees it unless it is
 * scratch. */
typedef struct sc__event_template {
    char *buf;
    size_t len;
    size_t cut[3];
} sc__event_template;
/* ev's version, time and epoch are ignored (a 16-byte epoch is assumed).
 * The template ends with a "mac" field of SC__MAC_LEN '0's, which the script
 * replaces with the authentication code (sc__event_authentic). */
sc_status sc__event_encode_template(const sc__event *ev, sc_wire_format fmt, char *scratch, size_t scratch_cap,
                                    sc__event_template *t);

/* The most bytes an event of this pod's encoding can take (its template
 * with the mac filled in) for a key of key_len bytes, a carried value of
 * value_len, a sender id of sender_len and a namespace of ns_len: in JSON
 * every byte of a string may need 6 ("\u00XX"), the value 4/3 (base64). */
size_t sc__event_max_len(sc_wire_format fmt, size_t key_len, size_t value_len, size_t sender_len, size_t ns_len);

/* Event authentication. The write scripts end every event they publish
 * with a field "mac" (40 hex digits, always the last field) holding
 * sha1hex(secret .. sha1hex(secret .. event)), computed over the event with
 * the mac's digits as '0's; secret is the namespace's (in {ns}:meta, 32 hex
 * digits). Only a client that can read the namespace's keys can sign, so a
 * publish-only client (a misconfigured service, redis-cli, another
 * namespace) cannot make a pod believe a version. */
#define SC__MAC_LEN 40
/* 1 when msg ends with a "mac" field that is right for secret (NUL-
 * terminated, non-empty); 0 otherwise (no mac, a wrong one, no secret). */
int sc__event_authentic(const void *msg, size_t len, const char *secret);

/* SHA-1, for the authentication code (sync/sha1.c). */
typedef struct sc__sha1 {
    uint32_t h[5];
    uint64_t total;
    unsigned char buf[64];
    size_t used;
} sc__sha1;
void sc__sha1_init(sc__sha1 *s);
void sc__sha1_update(sc__sha1 *s, const void *data, size_t len);
void sc__sha1_hex(sc__sha1 *s, char out[41]); /* finishes s */

/* "set", "invalidate", ...; "unknown" for any other number. */
const char *sc__action_name(sc__action a);

/* Base64 (RFC 4648, with padding). decode returns -1 on bad input, else the
 * decoded length; out must hold base64_decoded_max(len) bytes. */
size_t sc__base64_encoded_len(size_t len);
void sc__base64_encode(const void *in, size_t len, char *out); /* writes a NUL */
size_t sc__base64_decoded_max(size_t len);
long long sc__base64_decode(const char *in, size_t len, void *out);

/* ------------------------------------------------------------- sequence --
 * The per-pod ordering state (docs/protocol.md). Events with a version
 * belong to the namespace sequence: each write takes the next number and
 * events reach the channel in that order, so a pod that has applied
 * everything up to last_seq expects exactly last_seq + 1 next. The state also
 * remembers the digest of the recent events it applied, so a second,
 * different event claiming a version already applied is noticed (one of the
 * two is forged), and the digest of the event at last_seq, so a pod can tell
 * on resubscription whether Redis' history still contains it. Not
 * thread-safe: used from the sync thread only. */
typedef enum sc__verdict {
    SC__NEXT,      /* version == last_seq + 1 (or last_seq unknown): apply */
    SC__STALE,     /* version <= last_seq: a duplicate or a replay */
    SC__GAP,       /* events were skipped: catch up to version first */
    SC__EXTERNAL   /* no version (outside publisher): removals only */
} sc__verdict;

#define SC__SEQ_RECENT 256

typedef struct sc__seq {
    uint64_t last_seq;      /* 0: not yet known */
    uint64_t last_digest;   /* digest of the event applied at last_seq; 0: unknown */
    char epoch[17];         /* the epoch of this history; "" before the first sync */
    const char *ns, *pod_id, *inst; /* borrowed */
    size_t ns_len, pod_len, inst_len;
    struct sc__seq_recent {
        uint64_t version, digest;
    } recent[SC__SEQ_RECENT];
} sc__seq;

/* The strings are borrowed and must outlive s. */
void sc__seq_init(sc__seq *s, const char *ns, const char *pod_id, const char *inst);
/* 64-bit digest (FNV-1a) of an event's bytes; never 0. */
uint64_t sc__seq_digest(const void *data, size_t len);
/* An event that names another namespace (one without ns is for every one). */
int sc__seq_foreign(const sc__seq *s, const sc__event *ev);
/* An event this very process sent (its instance id). */
int sc__seq_own(const sc__seq *s, const sc__event *ev);
/* An event from another process that uses this pod's id. */
int sc__seq_same_pod_id(const sc__seq *s, const sc__event *ev);
sc__verdict sc__seq_classify(const sc__seq *s, uint64_t version);
/* 1 when an event with this version but another digest was applied
 * recently: two different events claim one version. */
int sc__seq_conflict(const sc__seq *s, uint64_t version, uint64_t digest);
/* The event at version (digest) was handled: last_seq moves to it. */
void sc__seq_record(sc__seq *s, uint64_t version, uint64_t digest);
/* A new starting point (first sync, flush): nothing before seq is known;
 * digest is that of the log's event at seq (0: unknown). */
void sc__seq_reset(sc__seq *s, uint64_t seq, uint64_t digest, const char *epoch);

/* ----------------------------------------------------------- subscriber --
 * Threads. With cfg->base == NULL the subscriber runs its own event_base on
 * its own thread; every callback runs there, and that thread blocks every
 * signal (so a SIGPIPE from a write to a closed socket cannot kill the
 * process). With a caller's base, the callbacks run on the thread that runs
 * that base, and sc__sub_start / sc__sub_stop must be called on that thread
 * or while the base is not running; SIGPIPE is then the application's to
 * ignore, as with any hiredis use. In both modes: never call sc__sub_stop
 * from inside one of the callbacks below. */

typedef struct sc__sub sc__sub;

typedef struct sc__sub_callbacks {
    /* A message on the channel. data is borrowed for the call. */
    void (*on_message)(const char *data, size_t len, void *ud);
    /* The SUBSCRIBE was confirmed (first time or after a reconnect). */
    void (*on_subscribed)(void *ud);
    /* The connection was lost or refused; a reconnect is scheduled. Exactly
     * once per connection attempt (refused, failed AUTH, no subscribe
     * confirmation within timeout_ms, dropped, sc__sub_reconnect). why is
     * borrowed for the call. */
    void (*on_lost)(const char *why, void *ud);
    /* Every tick_ms while running, connected or not. */
    void (*on_tick)(void *ud);
    /* Server-assisted invalidation (only with tracking prefixes): keys
     * (borrowed for the call) that Redis reports modified, or all = 1 with
     * n = 0 for a FLUSHALL / FLUSHDB (everything). Delivered in stream
     * order with the messages, only after on_subscribed. */
    void (*on_invalidate)(const char *const *keys, const size_t *lens, size_t n, int all, void *ud);
    /* Whether Redis accepted CLIENT TRACKING on this connection (before its
     * on_subscribed); why (borrowed) says why not. */
    void (*on_tracking)(int active, const char *why, void *ud);
    /* Asked for with sc__sub_defer: runs once on the loop, after every
     * message already read has been delivered. */
    void (*on_deferred)(void *ud);
    void *ud;
} sc__sub_callbacks;

typedef struct sc__sub_config {
    const char *host;
    int port;
    const char *unix_socket;
    const char *username;
    const char *password;
    unsigned timeout_ms;       /* connect timeout: connect + AUTH + SUBSCRIBE; >= 1 */
    const char *channel;
    struct event_base *base;   /* NULL: own base on an own thread */
    unsigned reconnect_min_ms; /* delay n = min(max, min * 2^n) * [0.5, 1], */
    unsigned reconnect_max_ms; /* n resets on subscribe; 1 <= min <= max */
    unsigned tick_ms;          /* 0: no tick */
    /* Redis Cluster / Sentinel. locate (NULL: host/port above) runs on the
     * loop thread before each connection attempt and names the node to
     * connect to (it may block up to about timeout_ms); *gen is the routing
     * generation that answer belongs to. route_gen (may be NULL) is read on
     * every tick: when it differs from that generation (the master moved),
     * the subscription reconnects. sharded: SSUBSCRIBE (smessage), and an
     * unsolicited sunsubscribe (the slot migrated) reconnects. */
    sc_status (*locate)(void *ud, char *host, size_t cap, int *port, unsigned *gen, char *err, size_t errlen);
    unsigned (*route_gen)(void *ud);
    void *locate_ud;
    int sharded;
    /* CLIENT TRACKING (Redis >= 6): with ntracking > 0 the connection asks
     * for its client id, turns tracking on with REDIRECT to itself, BCAST
     * and these key prefixes (copied; they must not overlap), and also
     * SUBSCRIBEs to __redis__:invalidate, where RESP2 delivers the
     * invalidations. 0: no tracking command is sent. */
    const char *const *tracking_prefixes;
    size_t ntracking;
} sc__sub_config;

/* Starts connecting (asynchronously). All callbacks run on the loop thread,
 * never before sc__sub_start returns (*out is set before the own thread
 * starts, so callbacks may read it). Strings are copied. username needs a
 * password; with a password the connection sends AUTH first. Returns
 * SC_ERR_INVALID for a bad config (no channel, neither host and port nor
 * unix_socket, ranges above) and SC_ERR_NOMEM, with a message in err (may be
 * NULL) and *out set to NULL; no callback runs then. An unreachable Redis is
 * not an error here: it becomes on_lost and retries. */
sc_status sc__sub_start(const sc__sub_config *cfg, const sc__sub_callbacks *cb, sc__sub **out, char *err,
                        size_t errlen);

/* Drops the current connection and reconnects after the backoff (for a stall
 * found by the heartbeat). Loop thread only (call it from a callback).
 * on_lost(why) runs before it returns; messages the dropped connection had
 * already read are not delivered. Without a connection (already lost and
 * waiting to retry) it does nothing. */
void sc__sub_reconnect(sc__sub *s, const char *why);

/* Schedules cb.on_deferred (once, however often this is called before it
 * runs). Loop thread only. */
void sc__sub_defer(sc__sub *s);

/* Stops the loop thread (own base) or removes every event from the caller's
 * base, and frees. No callback runs after it returns, and it calls none
 * (no on_lost for the connection it closes). NULL is a no-op. */
void sc__sub_stop(sc__sub *s);

#endif
