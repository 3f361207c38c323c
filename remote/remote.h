/* remote/: the Redis tier. A small pool of blocking hiredis connections (one
 * caller per connection at a time), the Lua scripts (one .lua file each in remote/lua) that
 * write a value, its version, the event log entry and the event in one step,
 * and the key layout.
 *
 * Knows nothing of the local tier or of event decoding: the caller encodes
 * each event as a template (the bytes around version, time and epoch, which
 * only the script knows) and the script splices those in. Every function is
 * thread-safe. Every call fails within about timeout_ms (connect + command
 * share one deadline) with SC_ERR_REMOTE or SC_ERR_TIMEOUT and a message in
 * err; a Redis out of memory or an ACL refusal is named as such in err.
 *
 * Key layout (docs/protocol.md): every key carries the hash tag {ns}, so a
 * namespace is one hash slot and every script is single-slot.
 *   {ns}:k:<key>  hash  value=<bytes> version=<decimal>; a tombstone has only
 *                 version (PEXPIRE for TTLs); loading adds lock, lock_until,
 *                 lock_seq, empty and outdated (see remote/fetch.c below)
 *   {ns}:seq      string counter: the namespace sequence = version source,
 *                 seeded from Redis TIME in microseconds when absent
 *   {ns}:meta     hash  epoch=<16 hex> floor=<version of the last clear>
 *                 partitions=<count> (sc__remote_partitions)
 *   {ns}:log      stream, entry id "<seq>-0", field "e" = the encoded event,
 *                 capped with MAXLEN ~ log_len
 *   channel       default "{ns}:events"
 * A namespace must not hold '{' or '}' (sc__remote_open refuses it), which
 * makes the layout injective.
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
    const char *ns;            /* no '{' or '}' */
    const char *channel;
    sc_wire_format wire_format;
    size_t log_len;            /* 0: no event log */
    /* Scale (route.c): at most one of these; both NULL: one Redis at
     * host/port/unix_socket. */
    const char *cluster_nodes;   /* "host:port,...": Redis Cluster seeds */
    const char *sentinel_nodes;  /* "host:port,...": sentinels */
    const char *sentinel_master; /* the master's name at the sentinels */
} sc__remote_config;

/* Whether ns can name a namespace in the key layout: 1..256 bytes, no '{',
 * '}' or control byte. */
int sc__remote_ns_valid(const char *ns);

/* Connects one connection (proving Redis is there), loads the scripts.
 * Strings are copied. */
sc_status sc__remote_open(const sc__remote_config *cfg, sc__remote **out, char *err, size_t errlen);
void sc__remote_close(sc__remote *r); /* NULL is a no-op */

typedef struct sc__remote_item {
    char *data;        /* malloc'd copy, NUL-terminated; caller frees */
    size_t len;
    uint64_t version;
    int64_t pttl_ms;   /* -1: no TTL */
    uint64_t known;    /* the namespace counter when the read ran: the value
                          (or its absence) is known current up to it */
    const char *tags;  /* the key's "\n"-joined tags (sc_set_tagged), inside
                          the data block (freed with it); tags_len 0: none */
    size_t tags_len;
} sc__remote_item;

/* Value, version, remaining TTL and the counter in one round trip. SC_OK
 * (caller frees item->data), SC_NOT_FOUND (item->known is set), or an error.
 * A tombstone or a key below the namespace's clear floor is not found. */
sc_status sc__remote_get(sc__remote *r, const char *key, size_t klen, sc__remote_item *item, char *err,
                         size_t errlen);

/* An encoded event with holes for version, time and epoch (the bytes of
 * sync/'s sc__event_template). */
typedef struct sc__remote_event {
    const char *buf;
    size_t len;
    size_t cut[3];
} sc__remote_event;

/* What a write did. */
typedef struct sc__remote_result {
    uint64_t version;
    int published;             /* 0: stored and logged, but PUBLISH failed */
    char publish_error[128];   /* why, when published is 0 */
} sc__remote_result;

/* One script: the next version, HSET value+version, PEXPIRE ttl_ms (or
 * PERSIST when 0), the log entry and the event. */
sc_status sc__remote_set(sc__remote *r, const char *key, size_t klen, const void *val, size_t len, uint64_t ttl_ms,
                         const sc__remote_event *ev, sc__remote_result *res, char *err, size_t errlen);

/* sc__remote_set only if the key's version (sc__remote_version) is still
 * expected, checked in the same script; else SC_ERR_CONFLICT with
 * res->version = the current version, nothing written or published. */
sc_status sc__remote_set_if(sc__remote *r, const char *key, size_t klen, const void *val, size_t len,
                            uint64_t ttl_ms, uint64_t expected, const sc__remote_event *ev, sc__remote_result *res,
                            char *err, size_t errlen);

/* The key's version for compare-and-set: its version (a tombstone's too),
 * never below the namespace's clear floor; 0 for a key with no remembered
 * history. One round trip. */
sc_status sc__remote_version(sc__remote *r, const char *key, size_t klen, uint64_t *version, char *err,
                             size_t errlen);

/* Reads n keys in one round trip: items[i].data is NULL for a key that is
 * absent (tombstone, below the clear floor, missing); *known is the counter
 * when the read ran (also in every found item). On SC_OK the caller frees
 * every items[i].data. */
sc_status sc__remote_get_many(sc__remote *r, const char *const *keys, const size_t *klens, size_t n,
                              sc__remote_item *items, uint64_t *known, char *err, size_t errlen);

/* One script call of a sc__remote_run_piped: how to build its command,
 * read its answer, and run it alone. Embedded first in the caller's own
 * call record, which the hooks reach by a cast. */
struct redisReply;
struct sc__pool_cmd;
typedef struct sc__remote_piped sc__remote_piped;
struct sc__remote_piped {
    sc__remote *r;             /* in: whose pool reaches the call's node */
    const char *what;          /* in: names the exchange in messages */
    int writes;                /* in: the script writes: once its exchange
                                  was sent, a dropped connection is its
                                  answer (SC_ERR_REMOTE, outcome unknown),
                                  and it is never run again alone */
    /* The whole command (EVALSHA, SHA, key count, ...) into *cmd; on a
     * failure nothing is held and the call runs alone. */
    sc_status (*build)(sc__remote_piped *p, struct sc__pool_cmd *cmd);
    void (*unbuild)(sc__remote_piped *p); /* frees what build made */
    /* Reads (and frees) a reply that is no error reply: the call's status
     * (a message in err when not SC_OK). */
    sc_status (*parse)(sc__remote_piped *p, struct redisReply *reply);
    /* The call through its own path (follows redirections). */
    sc_status (*alone)(sc__remote_piped *p);
    sc_status status;          /* out */
    char err[256];             /* out, when status is not SC_OK */
    int skipped;               /* out: not run (SC_ERR_REMOTE) because
                                  another call failed first */
};

/* Runs n script calls (each on its own remote, whose keys may live
 * anywhere) in about one round trip: the calls whose remotes talk to the
 * same node are pipelined on one connection, and every node's commands are
 * written before any node's replies are read, so the nodes answer at the
 * same time. A call whose reply is an error (MOVED, ASK, NOSCRIPT,
 * TRYAGAIN ...) or whose node's exchange failed runs again alone, which
 * follows redirections. Once a call fails (a timeout is not retried) no
 * further exchange is begun and the calls not yet answered are skipped, so
 * the whole takes about timeout_ms per failure at most. Each call ends with
 * its own status. Holds one pooled connection per node at once, taken in a
 * fixed order (no deadlock between threads, whatever redis_pool_size). */
void sc__remote_run_piped(sc__remote_piped **calls, size_t n);

/* One sc__remote_get_many of a sc__remote_get_many_pipelined. */
typedef struct sc__remote_get_many_call {
    sc__remote *r;             /* in */
    const char *const *keys;   /* in */
    const size_t *klens;
    size_t n;
    sc__remote_item *items;    /* out: n items, as sc__remote_get_many */
    uint64_t known;            /* out */
    sc_status status;          /* out: what sc__remote_get_many returned */
    char err[256];             /* out, when status is not SC_OK */
    int skipped;               /* out: not read (SC_ERR_REMOTE) because
                                  another call failed first */
} sc__remote_get_many_call;

/* Runs n sc__remote_get_many calls through sc__remote_run_piped (one round
 * trip per node, sc__remote_get_many alone as the fallback). Each call
 * ends with its own status; on SC_OK the caller frees its items' data. */
void sc__remote_get_many_pipelined(sc__remote_get_many_call *calls, size_t n);

/* One script: the next version, the key deleted (a tombstone holding the
 * version for tombstone_ttl_ms when not 0), the log entry and the event. */
sc_status sc__remote_delete(sc__remote *r, const char *key, size_t klen, uint64_t tombstone_ttl_ms,
                            const sc__remote_event *ev, sc__remote_result *res, char *err, size_t errlen);

/* One script first: the next version becomes the namespace floor (every key
 * below it is absent from then on), a new epoch, the log entry and the
 * event. Then SCAN MATCH {ns}:k:* in batches, each batch unlinking its keys
 * below the floor. If only the collection fails, the clear has happened: SC_OK
 * (res filled) and the next clear collects the rest. Each round trip gets
 * its own timeout_ms. */
sc_status sc__remote_clear(sc__remote *r, const sc__remote_event *ev, sc__remote_result *res, char *err,
                           size_t errlen);

/* The namespace as a pod sees it when it (re)joins. */
typedef struct sc__remote_state {
    uint64_t counter;
    char epoch[17];
    uint64_t time_ms;          /* Redis clock */
    char secret[33];           /* the namespace's signing secret (hex) */
    char *event_at;            /* the log's event at the asked sequence (malloc'd, caller frees) or NULL */
    size_t event_at_len;
} sc__remote_state;

/* Counter and epoch (seeded when absent), the Redis clock, and the log's
 * event at sequence `at` (0: none asked). */
sc_status sc__remote_sync_state(sc__remote *r, uint64_t at, sc__remote_state *st, char *err, size_t errlen);

/* Publishes a heartbeat from the template ev whose version, time and epoch
 * are the current counter, Redis clock and epoch (read in the same script, so
 * every event up to the counter was published before it). st gets them
 * (event_at is NULL). canary (NULL: none) is a key the same script sets for
 * canary_ttl_ms (the tracking canary). */
sc_status sc__remote_heartbeat(sc__remote *r, const sc__remote_event *ev, const char *canary, unsigned canary_ttl_ms,
                               sc__remote_state *st, char *err, size_t errlen);

/* Checks (remote/lua/perms.lua, Redis >= 7) that the user may run every
 * command the writing scripts run, and with saver the write-behind saver's
 * too, so a refusal fails sc_open instead of leaving a write half done.
 * SC_ERR_REMOTE with Redis' NOPERM words when one is refused. */
sc_status sc__remote_check_perms(sc__remote *r, int saver, char *err, size_t errlen);

/* Redis' maxmemory-policy (CONFIG GET) into buf, for sc_open's warning about
 * policies that evict synccache's own keys. Best effort: 0 with buf, or -1
 * (CONFIG refused by an ACL, renamed away, Redis down): nothing to say. */
int sc__remote_eviction_policy(sc__remote *r, char *buf, size_t cap);

/* What a confirm found in a key's value hash. */
enum {
    SC__CONFIRM_CHANGED, /* other bytes at that version, or gone */
    SC__CONFIRM_SAME,    /* exactly that version and those bytes */
    SC__CONFIRM_LATER,   /* a later version: a later synccache write */
    SC__CONFIRM_BYTES    /* (sc__remote_confirm with vals only) that version
                            with other bytes: vals[i] holds them */
};

/* What each of n keys' value hash holds against version[i] and the SHA-1
 * (hex) sha1[i] of a value: verdict[i] = SC__CONFIRM_*. One script, reads
 * only. With vals (copies whose bytes may differ from Redis': an
 * on_set_local hook transformed them), a key that holds version[i] with
 * other bytes gets SC__CONFIRM_BYTES and those bytes in vals[i] / vlens[i]
 * (malloc'd, the caller frees; NULL for every other verdict); vals and
 * vlens NULL: such a key is SC__CONFIRM_CHANGED. */
sc_status sc__remote_confirm(sc__remote *r, const char *const *keys, const size_t *klens, const uint64_t *version,
                             const char (*sha1)[41], size_t n, int *verdict, char **vals, size_t *vlens, char *err,
                             size_t errlen);

/* The namespace's partition count (docs/protocol.md, "Partitions"): the
 * field partitions of {ns}:meta. SC__PARTITIONS_RECORD: when it holds none,
 * want is recorded, except that a namespace with a history (an epoch) and
 * no count was used before counts were recorded, unpartitioned: it counts
 * as 1. SC__PARTITIONS_PART: r is one partition "ns#p" of a partitioned
 * namespace, whose history without a count was seeded again by running
 * pods after its data was lost: want is recorded there too.
 * SC__PARTITIONS_LOOK: nothing is recorded; *have is the count, UINT_MAX
 * for a history without one, 0 for neither. *have gets the count that
 * holds. One round trip (an atomic EVAL). */
typedef enum sc__partitions_mode { SC__PARTITIONS_RECORD, SC__PARTITIONS_PART, SC__PARTITIONS_LOOK } sc__partitions_mode;
sc_status sc__remote_partitions(sc__remote *r, unsigned want, sc__partitions_mode mode, unsigned *have, char *err,
                                size_t errlen);

/* Calls fn for each log entry with after < seq <= upto, in order, reading in
 * batches. fn returns 0 to go on, nonzero to stop. SC_OK when the walk ended
 * (the caller checks that the sequence numbers were contiguous); it ends
 * before an entry that holds no event (no field e). Each
 * XRANGE page gets its own timeout_ms; fn runs with no connection held, so
 * it may call into the Redis tier. */
typedef int (*sc__remote_log_fn)(uint64_t seq, const char *event, size_t len, void *ud);
sc_status sc__remote_log_range(sc__remote *r, uint64_t after, uint64_t upto, sc__remote_log_fn fn, void *ud,
                               char *err, size_t errlen);

/* ------------------------------------------ write-behind (behind.c) --
 * The namespace's write-behind queue {ns}:wb: a stream whose entries have
 * the fields k (the key), v (the version of the write, decimal) and x (the
 * value; absent for a delete), read by one consumer group, "synccache".
 * The write scripts below append to it in the same step as the write; a
 * consumer takes batches, acknowledges what it saved, and the queue is
 * trimmed of acknowledged entries only. The queue is never capped. */

#define SC__WB_GROUP "synccache"

/* sc__remote_set plus the queue entry, in the same script. */
sc_status sc__remote_set_behind(sc__remote *r, const char *key, size_t klen, const void *val, size_t len,
                                uint64_t ttl_ms, const sc__remote_event *ev, sc__remote_result *res, char *err,
                                size_t errlen);

/* sc__remote_delete plus the queue entry (a delete), in the same script. */
sc_status sc__remote_delete_behind(sc__remote *r, const char *key, size_t klen, uint64_t tombstone_ttl_ms,
                                   const sc__remote_event *ev, sc__remote_result *res, char *err, size_t errlen);

/* A stream entry id "<ms>-<seq>". */
typedef struct sc__wb_id {
    uint64_t ms, seq;
} sc__wb_id;

/* <0, 0, >0 as a is below, equal to or above b. */
int sc__wb_id_cmp(sc__wb_id a, sc__wb_id b);

typedef struct sc__wb_entry {
    sc__wb_id id;
    const char *idstr;         /* the id as Redis wrote it (NUL-terminated) */
    const char *key;           /* NUL-terminated; NULL: no write (the entry was
                                  trimmed, or not written by synccache) */
    size_t klen;
    const char *value;         /* NULL: a delete */
    size_t len;
    uint64_t version;
} sc__wb_entry;

typedef enum sc__wb_source {
    SC__WB_MINE,     /* the consumer's own unacknowledged entries */
    SC__WB_CLAIMED,  /* taken over from an idle consumer */
    SC__WB_NEW       /* never delivered before */
} sc__wb_source;

/* A batch taken from the queue; the entries point into reply. */
typedef struct sc__wb_batch {
    sc__wb_entry *e;
    size_t n;
    sc__wb_source source;
    struct redisReply *reply;
} sc__wb_batch;

/* Most bytes of queue entries one take returns (at least one entry): a
 * batch of large values must come back within redis_timeout_ms. */
#define SC__WB_BATCH_BYTES 4194304

/* One take (one script, one round trip): with mine, the consumer's own
 * unacknowledged entries if it has any; else up to count entries idle for
 * min_idle_ms under other consumers (cursor: the XAUTOCLAIM cursor, "0-0" to
 * start, updated in place); else up to count new ones; a batch stops
 * growing at SC__WB_BATCH_BYTES. Creates the group at
 * the start of the queue when it is missing. SC_OK with *b (possibly empty;
 * free with sc__wb_batch_free) or an error. */
sc_status sc__remote_wb_take(sc__remote *r, const char *consumer, unsigned count, unsigned min_idle_ms, int mine,
                             char cursor[64], sc__wb_batch *b, char *err, size_t errlen);
void sc__wb_batch_free(sc__wb_batch *b); /* NULL or empty: no-op */

/* Acknowledges the n entries (XACK) and trims the queue below the oldest
 * entry still pending (or up to the last delivered when none is). */
sc_status sc__remote_wb_ack(sc__remote *r, const sc__wb_entry *e, size_t n, char *err, size_t errlen);

typedef struct sc__wb_state {
    sc__wb_id last;        /* last id ever queued (0-0: none) */
    sc__wb_id delivered;   /* last id delivered to the group (0-0: none) */
    int has_group;
    uint64_t pending;      /* delivered, not acknowledged */
    int has_pmin;
    sc__wb_id pmin;        /* oldest pending */
    int has_oldest;
    sc__wb_id oldest;      /* oldest unsaved entry (its ms is Redis time) */
    uint64_t unsaved;      /* pending + not yet delivered */
    uint64_t now_ms;       /* Redis clock */
} sc__wb_state;

/* The queue's state in one read-only script. */
sc_status sc__remote_wb_state(sc__remote *r, sc__wb_state *st, char *err, size_t errlen);

/* Hands the consumer's unacknowledged entries back (any pod's next take
 * claims them at once) and removes the consumer when it holds none.
 * *handed gets the number handed back. */
sc_status sc__remote_wb_release(sc__remote *r, const char *consumer, uint64_t *handed, char *err, size_t errlen);

/* Redis Cluster and Sentinel (route.c), for the subscription. Where the
 * channel is served: in a cluster the master owning the channel's slot (read
 * fresh from the cluster), behind Sentinel the master (asked fresh from the
 * sentinels); *gen is the routing generation it belongs to. Blocks for at
 * most timeout_ms. SC_ERR_INVALID on a single Redis (nothing to locate). */
sc_status sc__remote_locate_channel(sc__remote *r, char *host, size_t cap, int *port, unsigned *gen, char *err,
                                    size_t errlen);
/* The routing generation: changes whenever the namespace's node changes
 * (MOVED, a failover seen, +switch-master). 0 on a single Redis. */
unsigned sc__remote_route_gen(sc__remote *r);
/* 1 in Redis Cluster mode: events go out with SPUBLISH, pods SSUBSCRIBE. */
int sc__remote_sharded(const sc__remote *r);

/* ------------------------------------------------ internal to remote/ --
 * pool.c: the connection pool; scripts.c: the Lua scripts. Deadlines are
 * absolute CLOCK_MONOTONIC milliseconds (sc__remote_now_ms). */

struct redisReply;
typedef struct sc__pool sc__pool;

int64_t sc__remote_now_ms(void);
/* snprintf into err (when err is not NULL and errlen > 0). */
void sc__remote_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A whole decimal number of len bytes (no sign, no spaces, no overflow)
 * into *out: 0, or -1. */
int sc__remote_parse_u64(const char *s, size_t len, uint64_t *out);
/* v in decimal, NUL-terminated, into out; returns out. Every write sends
 * numbers, and snprintf spends more parsing its format than converting. */
char *sc__remote_u64_str(uint64_t v, char out[21]);

/* Copies the connection settings of cfg; connects nothing yet. */
sc_status sc__pool_create(const sc__remote_config *cfg, sc__pool **out, char *err, size_t errlen);
void sc__pool_destroy(sc__pool *p); /* NULL is a no-op */
const char *sc__pool_addr(const sc__pool *p); /* "host:port" or the socket path */

/* Takes a free connection (waiting until deadline), connects it if needed
 * (AUTH, SELECT) and runs one command. what names the command in messages.
 * SC_OK with *reply (caller frees; it may be an error reply), or
 * SC_ERR_TIMEOUT / SC_ERR_REMOTE / SC_ERR_NOMEM with *reply NULL. A pooled
 * connection found dead (Redis restarted) is replaced and the command
 * retried once within the same deadline. writes says whether the command
 * may change anything in Redis: a write (SC__POOL_WRITE) whose connection
 * drops after it was sent is never sent again (SC_ERR_REMOTE, outcome
 * unknown); a read (SC__POOL_READ: a no-writes script, SCAN, XRANGE...) is,
 * as after a failed send. */
enum { SC__POOL_READ = 0, SC__POOL_WRITE = 1 };
sc_status sc__pool_command(sc__pool *p, int64_t deadline, unsigned timeout_ms, const char *what, int writes, int argc,
                           const char **argv, const size_t *lens, struct redisReply **reply, char *err, size_t errlen);

/* One command of a pipeline: argv[0..argc-1] (lens NULL: C strings). */
typedef struct sc__pool_cmd {
    int argc;
    const char **argv;
    const size_t *lens;
} sc__pool_cmd;

/* Runs the ncmd commands on one connection of p: all sent in one write,
 * then the replies read in order into replies[0..ncmd-1] (one round trip).
 * SC_OK with every reply set (caller frees; any may be an error reply: no
 * redirection is followed here, the caller decides), or an error with none
 * set. The connection's node is the one sc__pool_node names; an idle
 * connection Redis closed is retried once, as in sc__pool_command. */
sc_status sc__pool_pipeline(sc__pool *p, int64_t deadline, unsigned timeout_ms, const char *what, size_t ncmd,
                            const sc__pool_cmd *cmds, struct redisReply **replies, char *err, size_t errlen);

/* n in decimal into buf (room for 21 bytes), NUL-terminated, without
 * snprintf's cost (commands and script calls format one per argument);
 * returns the length. */
size_t sc__decimal(char *buf, size_t n);

/* sc__pool_pipeline in two halves, so that exchanges with several nodes
 * overlap: sc__pool_begin takes a connection of p (waiting until deadline),
 * connects it if needed and writes the commands; sc__pool_end reads their
 * replies and gives the connection back. cmds must stay valid until the
 * end. On SC_OK from begin the caller must call end exactly once (on an
 * error nothing is held and end is not called); end returns what
 * sc__pool_pipeline would: an idle connection found closed before or on
 * the write is replaced at once; one that drops once the commands were sent
 * is reported, never run again (they may have run; a caller whose commands
 * only read runs them again itself). Holding a begun
 * exchange holds one of p's redis_pool_size connections: a caller that
 * begins several must never wait for a second connection of a pool while
 * holding one of it, and must take pools in one fixed order (see
 * sc__remote_run_piped). */
typedef struct sc__pool_exchange {
    sc__pool *pool;            /* private to pool.c from here on */
    void *slot;
    int64_t deadline;
    unsigned timeout_ms;
    const char *what;
    size_t ncmd;
    const sc__pool_cmd *cmds;
} sc__pool_exchange;
sc_status sc__pool_begin(sc__pool *p, int64_t deadline, unsigned timeout_ms, const char *what, size_t ncmd,
                         const sc__pool_cmd *cmds, sc__pool_exchange *x, char *err, size_t errlen);
sc_status sc__pool_end(sc__pool_exchange *x, struct redisReply **replies, char *err, size_t errlen);
/* The node p's next command goes to ("host:port" or the socket path), as
 * far as the router knows now. SC_ERR_REMOTE: no node known yet. */
sc_status sc__pool_node(sc__pool *p, char *buf, size_t cap);

/* ---- routing (route.c, cluster.c, sentinel.c) ----
 * A router knows which node serves the namespace: in a cluster the master
 * of the namespace's hash slot (the slot of "{ns}"), behind Sentinel the
 * master the sentinels name. The pool connects to its current address and
 * reconnects whenever the generation changes. Thread-safe. */
typedef struct sc__router sc__router;
typedef enum sc__route_kind { SC__ROUTE_CLUSTER = 1, SC__ROUTE_SENTINEL } sc__route_kind;
typedef struct sc__addr {
    char host[256];
    int port;
} sc__addr;

/* From cfg->cluster_nodes or cfg->sentinel_nodes; connects nothing yet.
 * SC_ERR_INVALID for an unparsable list. */
sc_status sc__router_create(const sc__remote_config *cfg, sc__router **out, char *err, size_t errlen);
void sc__router_destroy(sc__router *rt); /* NULL is a no-op */
sc__route_kind sc__router_kind(const sc__router *rt);
/* The current address (when known: else SC_ERR_REMOTE) and its generation. */
sc_status sc__router_current(sc__router *rt, sc__addr *a, unsigned *gen);
unsigned sc__router_gen(sc__router *rt);
/* Asks the cluster (CLUSTER SLOTS from the known nodes and the seeds) or
 * the sentinels again and moves the current address when it changed. */
sc_status sc__router_refresh(sc__router *rt, int64_t deadline, char *err, size_t errlen);
/* A node answered MOVED for the namespace's slot (or a sentinel announced
 * +switch-master): the new address, effective at once. */
void sc__router_moved(sc__router *rt, const char *host, int port);
/* Behind Sentinel: the node at host:port, named by a sentinel, is not a
 * master (ROLE). When it is the current address, the next refresh asks the
 * sentinels from the one after the sentinel that named it, so one sentinel
 * with a stale view cannot keep the pod from the master the others name. */
void sc__router_not_master(sc__router *rt, const char *host, int port);
/* Where a channel is served (see sc__remote_locate_channel). */
sc_status sc__router_locate(sc__router *rt, const char *channel, int64_t deadline, sc__addr *a, unsigned *gen,
                            char *err, size_t errlen);
/* A blocking connection to a, with AUTH when auth is set (cluster nodes
 * share the data nodes' credentials; sentinels get none). NULL with err. */
struct redisContext *sc__router_connect(const sc__router *rt, const sc__addr *a, int auth, int64_t deadline,
                                        char *err, size_t errlen);
/* "host:port" lists: parses into a malloc'd array. -1 on a bad list. */
int sc__addr_list_parse(const char *list, sc__addr **out, size_t *n);

/* cluster.c: CRC16 (XMODEM) of the hash tag, or of the whole key. */
unsigned sc__cluster_keyslot(const char *key, size_t len);
/* CLUSTER SLOTS on c: the master serving slot into *a (its host is
 * node_host when the node does not know its own address). SC_NOT_FOUND: no
 * node serves it. */
sc_status sc__cluster_slot_owner(struct redisContext *c, const char *node_host, unsigned slot, sc__addr *a,
                                 char *err, size_t errlen);

/* sentinel.c: SENTINEL get-master-addr-by-name on c. SC_NOT_FOUND: this
 * sentinel knows no master of that name. */
sc_status sc__sentinel_master(struct redisContext *c, const char *name, sc__addr *a, char *err, size_t errlen);
/* A thread subscribed to +switch-master at the sentinels; moves rt at once
 * when name's master moves. */
typedef struct sc__sentinel_watch sc__sentinel_watch;
sc_status sc__sentinel_watch_start(sc__router *rt, const sc__addr *sentinels, size_t n, const char *name,
                                   sc__sentinel_watch **out, char *err, size_t errlen);
void sc__sentinel_watch_stop(sc__sentinel_watch *w); /* NULL is a no-op */

/* pool.c: routes every command through rt (borrowed; set before the first
 * command): MOVED, ASK, TRYAGAIN, CLUSTERDOWN, READONLY and connection
 * errors re-route and retry within the same deadline. */
void sc__pool_set_router(sc__pool *p, sc__router *rt);
/* 1 when the pool talks to a Redis Cluster (scripts use SPUBLISH). */
int sc__pool_sharded(const sc__pool *p);

typedef enum sc__script_id {
    SC__SCRIPT_GET,
    SC__SCRIPT_SET,
    SC__SCRIPT_DELETE,
    SC__SCRIPT_CLEAR,
    SC__SCRIPT_CLEAR_BATCH,
    SC__SCRIPT_HEARTBEAT,
    SC__SCRIPT_SYNC,
    SC__SCRIPT_VERSION,
    SC__SCRIPT_GET_MANY,
    SC__SCRIPT_SET_BEHIND,
    SC__SCRIPT_DELETE_BEHIND,
    SC__SCRIPT_WB_TAKE,
    SC__SCRIPT_WB_ACK,
    SC__SCRIPT_WB_STATE,
    SC__SCRIPT_WB_RELEASE,
    SC__SCRIPT_FETCH_LOCK, /* remote/fetch.c */
    SC__SCRIPT_FETCH_STORE,
    SC__SCRIPT_FETCH_UNLOCK,
    SC__SCRIPT_TAG,
    SC__SCRIPT_TAG_INVALIDATE, /* remote/fetch.c: sc_invalidate_tag */
    SC__SCRIPT_CONFIRM,        /* sc__remote_confirm */
    SC__SCRIPT_PERMS,          /* sc__remote_check_perms */
    SC__SCRIPT_COUNT
} sc__script_id;

/* "Redis is out of memory ...: " for an OOM error reply, "permission denied
 * by the Redis ACL: " for NOPERM, ... or "" (a prefix for messages). */
const char *sc__remote_explain(const char *reply);
/* 1 when an error reply (or a message quoting one) is Redis refusing a
 * write for maxmemory (OOM): a script that may write was not run at all. */
int sc__remote_is_oom(const char *reply);

/* SCRIPT LOAD of every script; shas[i] gets the hex SHA1 of script i. */
sc_status sc__scripts_load(sc__pool *p, unsigned timeout_ms, char shas[SC__SCRIPT_COUNT][41], char *err,
                           size_t errlen);

/* EVALSHA (EVAL after NOSCRIPT) of script id with args = nkeys keys then the
 * ARGV. SC_OK with a reply that is not an error (caller frees); an error
 * reply becomes SC_ERR_REMOTE with its text in err. */
sc_status sc__script_run(sc__pool *p, const char shas[SC__SCRIPT_COUNT][41], sc__script_id id, int nkeys,
                         int nargs, const char **args, const size_t *lens, int64_t deadline, unsigned timeout_ms,
                         struct redisReply **reply, char *err, size_t errlen);

/* The layout and the script runner of an open remote, for remote/fetch.c
 * and remote/behind.c (lens[i] == SIZE_MAX: args[i] is a C string). */
typedef struct sc__remote_layout {
    const char *ns;
    const char *prefix;      /* "{ns}:k:" */
    size_t prefix_len;
    const char *seq_key, *meta_key, *log_key, *channel;
    const char *fmt;         /* "m" | "j" */
    const char *log_len;     /* decimal */
    unsigned timeout_ms;
    const char *addr;        /* for messages */
    const char (*shas)[41];  /* of every script, by sc__script_id */
} sc__remote_layout;
void sc__remote_layout_get(const sc__remote *r, sc__remote_layout *out);
/* "{ns}:k:<key>" into buf when it fits, else malloc'd (*heap = 1). */
char *sc__remote_value_key(const sc__remote *r, const char *key, size_t klen, char *buf, size_t cap, size_t *len,
                           int *heap);
/* Raises the highest version Redis has shown this remote to version: the
 * pod calls it for every event it applies. The scripts that take a version
 * get it (remote.c, takes_version) and start a new history when Redis'
 * counter is not past it. */
void sc__remote_saw(sc__remote *r, uint64_t version);
uint64_t sc__remote_seen(sc__remote *r);
sc_status sc__remote_script(sc__remote *r, sc__script_id id, int nkeys, int argc, const char **args, size_t *lens,
                            int64_t deadline, struct redisReply **reply, char *err, size_t errlen);
/* Parses (and frees) a write script's reply {version, 1 | publish error}. */
sc_status sc__remote_write_reply(sc__remote *r, struct redisReply *reply, const char *what, sc__remote_result *res,
                                 char *err, size_t errlen);
/* The four parts of an event template into args/lens; -1 if ev is malformed. */
int sc__remote_event_split(const sc__remote_event *ev, const char **args, size_t *lens);

/* ------------------------------------ cache-aside loading (remote/fetch.c) --
 * The load lock lives in the key's hash: lock = token, lock_until = Redis ms,
 * lock_seq = the counter when taken; a not-found marker is a hash with
 * version and empty=1 and no value; a tagged value has outdated=1. See
 * remote/lua/fetch_*.lua and tag.lua. Every call is one round trip for all
 * its keys (they share the {ns} slot). */

typedef enum sc__fetch_kind {
    SC__FETCH_CONFIRMED = 'c', /* the caller's copy (have_version) is current */
    SC__FETCH_VALUE = 'v',     /* data, version, pttl_ms */
    SC__FETCH_EMPTY = 'e',     /* a cached not-found: version, pttl_ms */
    SC__FETCH_LOCKED = 'l',    /* the caller holds the load lock now */
    SC__FETCH_WAIT = 'w',      /* another load holds it until lock_until_ms */
    SC__FETCH_STALE = 's'      /* outdated data, version (serve_stale), lock held elsewhere */
} sc__fetch_kind;

typedef struct sc__fetch_item {
    const char *key;           /* in */
    size_t klen;
    uint64_t have_version;     /* in: 0, or the version of the caller's copy to confirm */
    sc__fetch_kind kind;       /* out */
    char *data;                /* VALUE / STALE: malloc'd, NUL-terminated; caller frees */
    size_t len;
    uint64_t version;
    int64_t pttl_ms;           /* -1: no TTL; VALUE: until it stops being fresh */
    uint64_t lock_until_ms;    /* WAIT / STALE */
    int64_t grace_pttl_ms;     /* VALUE: until its grace ends (-2: no grace);
                                  LOCKED / WAIT with graced data: the same */
    int graced;                /* LOCKED / WAIT: data, version hold the key's
                                  graced value (past its fresh time) */
    uint64_t past_ms;          /* with graced: how long past its fresh time */
    char *tags;                /* VALUE / graced: its "\n"-joined tags, malloc'd
                                  (NULL: none); freed with data by the caller */
    size_t tags_len;
} sc__fetch_item;

/* fetch_lock.lua over n keys. *known: the counter read in the same script
 * (what every VALUE / EMPTY / CONFIRMED is known current up to); *now_ms:
 * the Redis clock. On failure no item holds data. */
sc_status sc__remote_fetch_lock(sc__remote *r, sc__fetch_item *items, size_t n, const char *token,
                                uint64_t lock_ttl_ms, int serve_stale, uint64_t *known, uint64_t *now_ms, char *err,
                                size_t errlen);

typedef struct sc__store_item {
    const char *key;           /* in */
    size_t klen;
    int empty;                 /* in: store the not-found marker instead of val */
    const void *val;
    size_t len;
    uint64_t ttl_ms;           /* in: 0 none */
    uint64_t grace_ms;         /* in: kept this long past ttl_ms (0: none) */
    const char *tags;          /* in: "\n"-joined tags, tags_len bytes (0: none) */
    size_t tags_len;
    sc__remote_event ev;       /* in: set (or invalidate) event template */
    int stored;                /* out: 0 = fenced (the lock was no longer ours) */
    sc__remote_result res;     /* out, when stored */
} sc__store_item;

/* fetch_store.lua over n keys, each only while token still holds its lock. */
sc_status sc__remote_fetch_store(sc__remote *r, sc__store_item *items, size_t n, const char *token, char *err,
                                 size_t errlen);

/* One fetch_lock (lock set) or fetch_store (store set) of a
 * sc__remote_fetch_pipelined, with the arguments of the plain call. */
typedef struct sc__remote_fetch_call {
    sc__remote *r;             /* in */
    sc__fetch_item *lock;      /* in/out: n items of a fetch_lock */
    sc__store_item *store;     /* in/out: n items of a fetch_store */
    size_t n;
    const char *token;
    uint64_t lock_ttl_ms;      /* fetch_lock */
    int serve_stale;           /* fetch_lock */
    uint64_t known, now_ms;    /* out: fetch_lock */
    sc_status status;          /* out: what the plain call returned */
    char err[256];             /* out, when status is not SC_OK */
    int skipped;               /* out: not run (another call failed first) */
} sc__remote_fetch_call;

/* Runs n fetch_lock / fetch_store calls through sc__remote_run_piped: one
 * round trip per node, the plain call alone as the fallback. */
void sc__remote_fetch_pipelined(sc__remote_fetch_call *calls, size_t n);

/* fetch_unlock.lua: releases the locks token still holds on the n keys. */
sc_status sc__remote_fetch_unlock(sc__remote *r, const char *const *keys, const size_t *klens, size_t n,
                                  const char *token, char *err, size_t errlen);

/* tag.lua: new version, value kept delay_ms marked outdated, lock revoked,
 * log entry and (invalidate) event. */
sc_status sc__remote_tag(sc__remote *r, const char *key, size_t klen, uint64_t delay_ms, uint64_t tombstone_ttl_ms,
                         const sc__remote_event *ev, sc__remote_result *res, char *err, size_t errlen);

/* ---- tags (sc_set_tagged, sc_invalidate_tag) ----
 * A tagged key's hash lists its tags in the field tags ("\n" between them);
 * {ns}:tags is a hash: tag -> the version its last invalidation took. Every
 * read script treats a key whose version is below the invalidation version
 * of one of its tags as absent (remote/lua/prelude.lua, tag_dead). */

/* set.lua with tags (tags_len bytes, "\n"-joined; 0: none, as sc__remote_set). */
sc_status sc__remote_set_tagged(sc__remote *r, const char *key, size_t klen, const void *val, size_t len,
                                uint64_t ttl_ms, const char *tags, size_t tags_len, const sc__remote_event *ev,
                                sc__remote_result *res, char *err, size_t errlen);
/* tag_invalidate.lua: a fresh version becomes the tag's invalidation
 * version; the log entry and the event (a "tag" event naming the tag). */
sc_status sc__remote_tag_invalidate(sc__remote *r, const char *tag, size_t tag_len, const sc__remote_event *ev,
                                    sc__remote_result *res, char *err, size_t errlen);

#endif
