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
 *   action  "set" | "invalidate" | "delete" | "clear" | "heartbeat"
 *   key     string (absent or "" for clear and heartbeat)
 *   sender  string, the pod id
 *   version unsigned integer: the namespace sequence of the write (for a
 *           heartbeat: the sequence when it was sent); absent or 0 for an
 *           event from an outside publisher
 *   value   set only: msgpack str or bin / JSON base64 string
 *   ttl     unsigned ms, 0 or absent = none
 *   time    unsigned ms since the Unix epoch when published (Redis clock)
 * msgpack is a map with string keys; JSON is an object. Unknown fields are
 * ignored. In JSON, numbers may also be decimal strings (Redis' cjson cannot
 * print integers above 2^53 exactly). */

typedef enum sc__action {
    SC__ACT_SET = 1,
    SC__ACT_INVALIDATE,
    SC__ACT_DELETE,
    SC__ACT_CLEAR,
    SC__ACT_HEARTBEAT
} sc__action;

typedef struct sc__event {
    int format;
    sc__action action;
    const char *key;     /* NUL-terminated; "" when absent */
    size_t key_len;
    const char *sender;  /* NUL-terminated; "" when absent */
    size_t sender_len;
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

/* "set", "invalidate", ...; "unknown" for any other number. */
const char *sc__action_name(sc__action a);

/* Base64 (RFC 4648, with padding). decode returns -1 on bad input, else the
 * decoded length; out must hold base64_decoded_max(len) bytes. */
size_t sc__base64_encoded_len(size_t len);
void sc__base64_encode(const void *in, size_t len, char *out); /* writes a NUL */
size_t sc__base64_decoded_max(size_t len);
long long sc__base64_decode(const char *in, size_t len, void *out);

/* ------------------------------------------------------------- sequence --
 * The per-pod ordering state. Events with a version belong to the namespace
 * sequence: each write takes the next number and events reach the channel
 * in that order. So a pod that has applied everything up to last_seq expects
 * exactly last_seq + 1 next. Not thread-safe: used from the sync thread only.
 */
typedef enum sc__verdict {
    SC__APPLY,     /* apply it, then sc__seq_advance */
    SC__SELF,      /* own event: do not apply, but advance */
    SC__STALE,     /* version <= last_seq: already applied (duplicate, replay) */
    SC__GAP,       /* events were skipped: catch up to version - 1 first */
    SC__EXTERNAL   /* no version (outside publisher): apply without sequencing */
} sc__verdict;

typedef struct sc__seq {
    uint64_t last_seq;      /* 0: not yet known (nothing can be judged a gap) */
    const char *own_id;
    size_t own_len;
} sc__seq;

/* own_id is borrowed and must outlive s; NULL means none. */
void sc__seq_init(sc__seq *s, const char *own_id);
/* Decides what to do with a decoded cache event (not a heartbeat), in this
 * order: version 0 is SC__EXTERNAL; version <= last_seq is SC__STALE (own
 * duplicates too); a known last_seq and version != last_seq + 1 is SC__GAP
 * (own events too: skipping past them would hide the lost events); sender
 * equal to own_id (byte compare; an empty own id matches nothing) is
 * SC__SELF; otherwise SC__APPLY. */
sc__verdict sc__seq_classify(const sc__seq *s, const sc__event *ev);
/* For a heartbeat carrying seq: 1 if events up to seq were missed. */
int sc__seq_heartbeat_gap(const sc__seq *s, uint64_t seq);
void sc__seq_advance(sc__seq *s, uint64_t version);

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

/* Stops the loop thread (own base) or removes every event from the caller's
 * base, and frees. No callback runs after it returns, and it calls none
 * (no on_lost for the connection it closes). NULL is a no-op. */
void sc__sub_stop(sc__sub *s);

#endif
