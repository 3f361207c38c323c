/* lib/: the sc_cache object. This header is shared by the lib/ files only;
 * it is the one place that sees local/, remote/ and sync/ together. */
#ifndef SC_LIB_INTERNAL_H
#define SC_LIB_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

#include <synccache/synccache.h>

#include "local/local.h"
#include "remote/remote.h"
#include "sync/sync.h"

/* Most partitions of a namespace (option partitions): each costs a
 * subscription, a thread and a pool of its own. */
#define SC__PARTITIONS_MAX 256

/* Room for an error message from any layer. */
#define SC__ERRLEN 512

typedef struct sc__flight sc__flight;
typedef struct sc__tags sc__tags;
typedef struct sc__tracking sc__tracking;

/* Stripes of the tracking generation (tracking.c). */
#define SC__TRACKING_STRIPES 256

/* metrics.c: a lock-free histogram of durations with fixed buckets (the
 * upper bounds, in seconds, are those sc_metrics_text prints: 100 us to
 * 10 s). Each observation is two relaxed atomic adds; readers add the
 * buckets up, so the count always equals the sum of the buckets. */
#define SC__HIST_BOUNDS 16
typedef struct sc__hist {
    atomic_uint_fast64_t bucket[SC__HIST_BOUNDS + 1]; /* last: above every bound (+Inf) */
    atomic_uint_fast64_t sum_ns;
} sc__hist;

/* Single-flight table: concurrent misses on one key share one Redis read. */
typedef struct sc__flights {
    pthread_mutex_t mu;
    sc__flight *buckets[64];
} sc__flights;

struct sc_cache {
    sc_options opt;            /* copy; its strings point at the owned copies below */
    char *strings;             /* one block holding every copied option string */

    /* Partitions (partition.c): the cache the user holds when partitions > 1
     * is a router over part[0..nparts-1], each a complete cache of its own
     * namespace "<ns>#<p>"; then only opt, strings and these are set. A
     * partition points back at that router (its failures show in
     * sc_errmsg of it); NULL everywhere else. The partitions' fetches all
     * count into the router's load statistics: one set of windows, and a
     * thread keeps one record for the cache, not one per partition. */
    sc_cache **part;
    unsigned nparts;
    const sc_cache *outer;
    /* 1: a local hit of sc_get / sc_get_with takes the routed path, which
     * checks sc__synced: a router (part set), or a pod on a caller's
     * event_base with heartbeats (its sync needs a recent proof). The
     * inline hit path reads this flag and synced only. */
    int routed;
    struct sc__load_stats *part_stats;

    sc__local *local;
    sc__remote *remote;
    sc__sub *sub;
    sc__flights flights;

    char inst[17];               /* this process's instance id: 16 hex, random per open */
    sc__remote_event hb_event;   /* the heartbeat template (owned) */
    char secret[33];             /* the namespace's signing secret (docs/protocol.md
                                    rule 3); sync thread, and sc_open before it */

    /* Sync state. `synced`, `proof_ms`, `verified` and `redis_offset_ms` are
     * used by any thread; the rest belongs to the sync (loop) thread. */
    /* synced is read by every get; the padding keeps the fields the sync
     * thread writes all the time (proof_ms, last_seq, ...) off its cache
     * line, whatever the struct's alignment. */
    char synced_pad_before[64];
    atomic_int synced;           /* 1: stream live and caught up */
    char synced_pad_after[64];
    atomic_uint_fast64_t proof_ms; /* every event published before this time was applied */
    atomic_uint_fast64_t last_seq; /* copy of seq.last_seq for stats */
    atomic_uint_fast64_t verified; /* highest counter value read from Redis (or
                                      returned by an own write): versions up
                                      to it are real */
    _Atomic int64_t redis_offset_ms; /* Redis clock minus this host's realtime clock */
    sc__seq seq;
    uint64_t hb_sent_ms;         /* send time of the outstanding own heartbeat, 0 if none */
    uint64_t hb_next_ms;         /* when to send the next one */
    int ever_synced;             /* a later subscribe is a reconnect */
    atomic_int dup_warned;       /* the duplicate pod id warning was logged */

    /* sc_open waits on this until the first sync (own-thread mode). */
    pthread_mutex_t open_mu;
    pthread_cond_t open_cv;
    int open_state;              /* 0 waiting, 1 synced, -1 refused (open_why) */
    char open_why[SC__ERRLEN];   /* the last reason the subscription failed */

    /* Counters not kept by the local store. */
    atomic_uint_fast64_t remote_hits, remote_misses, remote_errors, loads_shared;
    atomic_uint_fast64_t events_published, events_received, events_applied;
    atomic_uint_fast64_t events_ignored_self, events_stale, events_malformed;
    atomic_uint_fast64_t invalidations, reconnects, gaps, events_replayed;
    atomic_uint_fast64_t flushes, heartbeat_misses, stale_served;
    atomic_uint_fast64_t events_foreign, events_forged, duplicate_pod_ids, epoch_changes, publish_failures;

    /* Histograms for sc_metrics_text (metrics.c). */
    sc__hist hist_get;           /* the Redis read of a get (flight.c) */
    sc__hist hist_set;           /* the write script of a set (ops.c) */
    sc__hist hist_prop;          /* publish (Redis time) to applied (syncer.c) */
    struct sc__behind *behind;   /* write-behind state (behind.c) */
    struct sc__fetch *fetch;     /* cache-aside loading (lib/fetch/) */
    sc__tags *tags;              /* the local tag index (tags.c) */

    /* Server-assisted invalidation (tracking.c). tracking is NULL with the
     * option off; the generations are read and raised by any thread. */
    sc__tracking *tracking;
    atomic_uint_fast64_t tracking_gen[SC__TRACKING_STRIPES];
    atomic_uint_fast64_t tracking_poison[SC__TRACKING_STRIPES];
    atomic_int tracking_active;  /* CLIENT TRACKING on for the current subscription */
    uint64_t canary_sent_ms;     /* loop thread: own canary outstanding since, 0 if none */
    atomic_uint_fast64_t tracking_invalidations, tracking_confirmed, tracking_failures;
};

/* Whether the local tier may answer: `synced`, and, on a caller's
 * event_base, a proof of sync recent enough. Only the loop notices a
 * stalled stream (on_tick: the own heartbeat not back within
 * heartbeat_timeout_ms), and a caller's loop runs only when the
 * application runs it: while it is not run, nothing applies events or
 * clears `synced`, so past the point where the tick would have dropped the
 * stream (one interval to the next heartbeat, the timeout, one interval of
 * tick granularity, and one of slack) the pod counts as unsynced. */
static inline int sc__synced(const sc_cache *c)
{
    if (!atomic_load_explicit(&c->synced, memory_order_acquire))
        return 0;
    if (!c->opt.event_base || !c->opt.heartbeat_interval_ms)
        return 1;
    uint64_t proof = atomic_load_explicit(&c->proof_ms, memory_order_relaxed);
    uint64_t now = sc__now_ms();
    return now <= proof ||
           now - proof <= (uint64_t)c->opt.heartbeat_timeout_ms + 3 * (uint64_t)c->opt.heartbeat_interval_ms;
}

/* cache.c: opens one complete cache from checked options: a partition of
 * outer, or (outer NULL) a whole unpartitioned namespace. */
sc_status sc__cache_open(const sc_options *o, sc_cache *outer, sc_cache **out);
/* cache.c: the partition count the namespace of r (opt->ns) records, with
 * opt->partitions recorded when it records none; SC_ERR_INVALID with a
 * message naming both counts when they differ. r NULL: a connection of its
 * own for the check. The message goes to err. */
sc_status sc__partitions_agree(const sc_options *opt, sc__remote *r, char *err, size_t errlen);

/* partition.c: the router of a partitioned cache. Every keyed call goes to
 * the partition of its key (sc__route); the calls that are not keyed go
 * to every partition. */
unsigned sc__partition_of(const char *key, size_t max_key_bytes, unsigned nparts);
static inline sc_cache *sc__route(sc_cache *c, const char *key)
{
    if (c && c->part)
        return c->part[sc__partition_of(key, c->opt.max_key_bytes, c->nparts)];
    return c;
}
sc_status sc__parts_open(const sc_options *o, sc_cache **out);
void sc__parts_free(sc_cache *c);
sc_status sc__parts_clear(sc_cache *c);
sc_status sc__parts_invalidate_tag(sc_cache *c, const char *tag);
sc_status sc__parts_flush_behind(sc_cache *c, unsigned timeout_ms);
sc_status sc__parts_get_many(sc_cache *c, const char *const *keys, size_t n, sc_value **out);
/* sc_fetch_batch over the partitions' caches part[0 .. nparts): partition
 * p's keys are keys[start[p] .. start[p + 1]) (checked, not unique) and its
 * answers go to out at the same places. The calls run in lockstep (one
 * Redis exchange per node per phase, one loader call per pass). The first
 * failure is returned with *at its partition (its message set). */
sc_status sc__fetch_batch_split(sc_cache *const *part, unsigned nparts, const char *const *keys, const size_t *start,
                                uint64_t ttl_ms, sc_load_batch_fn load, void *ud, sc_value **out, unsigned *at);
sc_status sc__parts_fetch_batch(sc_cache *c, const char *const *keys, size_t n, uint64_t ttl_ms,
                                sc_load_batch_fn load, void *ud, sc_value **out);
/* versions.c: one unpartitioned sc_get_many in the steps the partitioned
 * one shares: begin (the keys checked, the local hits into out, the
 * distinct misses as a Redis read in *call, call->n of them; on failure
 * nothing is held), the read (the caller's: alone, or pipelined with other
 * partitions' by sc__remote_get_many_pipelined, filling call's results),
 * finish (the read installed and settled by c's own rules, every slot of
 * out released on failure, everything freed; the failure recorded for
 * sc_errmsg). */
typedef struct sc__get_many {
    sc_cache *c;
    sc_value **out;
    size_t n;
    int synced;
    uint64_t since_ms; /* sc__now_ms before the Redis read */
    struct sc__miss *m;
    size_t nm;
    const char **uk;
    size_t *ul;
    size_t *first;
    sc__remote_get_many_call *call;
} sc__get_many;
sc_status sc__get_many_begin(sc_cache *c, const char *const *keys, size_t n, sc_value **out,
                             sc__remote_get_many_call *call, sc__get_many *g);
sc_status sc__get_many_finish(sc__get_many *g);
void sc__get_many_free(sc__get_many *g);
void sc__parts_stats(sc_cache *c, sc_stats *out);

/* errors.c: record a failure for sc_errmsg and return s. */
sc_status sc__fail(const sc_cache *c, sc_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void sc__log(const sc_cache *c, sc_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* sc_open's one WARN line when Redis' maxmemory-policy is allkeys-* (once
 * per pod: cache.c for an unpartitioned one, partition.c on partition 0). */
void sc__warn_eviction_policy(sc_cache *c);

/* options.c */
sc_status sc__options_check(const sc_options *o, char *err, size_t errlen);
/* Copies o into c->opt with owned strings and generated defaults (pod id,
 * channel). */
sc_status sc__options_copy(sc_cache *c, const sc_options *o);

/* syncer.c: the callbacks the subscriber runs on the loop thread. */
void sc__syncer_callbacks(sc_cache *c, sc__sub_callbacks *cb);

/* Keys whose local lookups a batch read prefetches together
 * (sc__local_prefetch; sc_get_many, sc_fetch_batch): enough to keep the
 * memory system busy (a core tracks 20-40 outstanding misses), few enough
 * that the first key's lines are still in cache when it is looked up. */
#define SC__PREFETCH_GROUP 16

/* events.c: the template of an event this pod publishes (version, time and
 * epoch are spliced in by the script), built in scratch (scratch_cap bytes;
 * NULL, 0: none) when it fits there, else in one allocation, so a write of a
 * value up to a few hundred bytes allocates nothing for its event.
 * sc__own_event_free releases it. */
#define SC__EVENT_SCRATCH 1024
sc_status sc__own_event(const sc_cache *c, sc__action action, const char *key, size_t klen, const void *val, size_t len,
                        uint64_t ttl_ms, char *scratch, size_t scratch_cap, sc__remote_event *t);
void sc__own_event_free(sc__remote_event *t, const char *scratch);
/* CLOCK_MONOTONIC in ns (timing Redis calls, load statistics). */
uint64_t sc__mono_ns(void);
/* This host's estimate of the Redis clock in ms since the Unix epoch. */
uint64_t sc__redis_now_ms(const sc_cache *c);
/* Records a Redis clock reading taken around now. */
void sc__redis_clock_seen(sc_cache *c, uint64_t redis_ms);
/* How long a value written at write_ms (Redis clock) with ttl_ms has left:
 * ttl_ms when either is 0 (no TTL, or an outside publisher's event), 0 when
 * it has expired, else the rest. The caller treats "expired" separately. */
int sc__ttl_left(const sc_cache *c, uint64_t ttl_ms, uint64_t write_ms, uint64_t *left);
/* What is left now of a TTL measured at since_ms (sc__now_ms taken before
 * the Redis call, or at the event, that reported it): a local copy's life
 * counts from there, never from its install, so however long the install
 * took (an on_set_local hook, a descheduled thread) the copy does not
 * outlive the key in Redis. 1 with *left (0 for ttl_ms 0: none), 0 when it
 * has run out (nothing to install). */
int sc__ttl_since(uint64_t ttl_ms, uint64_t since_ms, uint64_t *left);
/* Raises verified to v. */
void sc__verified(sc_cache *c, uint64_t v);

/* flight.c */
void sc__flights_init(sc__flights *f);
void sc__flights_destroy(sc__flights *f);
/* Reads key from Redis once for every concurrent caller; installs the value
 * locally when allowed. Returns SC_OK with *out, SC_NOT_FOUND or an error. */
sc_status sc__load(sc_cache *c, const char *key, size_t klen, uint64_t hash, int install, sc_value **out);

/* A value (found) or its absence read from Redis with the counter
 * item->known, as the read-populate rule wants it: installed when install is
 * set, the pod is synced and no floor is above known; otherwise older copies
 * go and the floor rises to what the caller is about to see (the value read
 * is known current up to item->known, which is what orders it against
 * events). mark: sc__tracking_mark before the read; since_ms: sc__now_ms
 * before it (the key's TTL counts from there). Takes item->data. SC_OK
 * with *out, SC_NOT_FOUND, SC_ERR_NOMEM. */
sc_status sc__install_read(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc__remote_item *item, int found,
                           int install, uint64_t mark, uint64_t since_ms, sc_value **out);

/* Before a value (or NULL: not found) read from Redis with the counter
 * `known` is served: -1 when the key's floor has risen above known (the
 * read is older than something the pod already served or removed: read
 * again); else 0, with *v replaced by the local entry when that is newer
 * (the pod's own completed write, an event applied meanwhile). */
int sc__settle_read(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t known, sc_value **v);

/* ops.c: records why a key argument is bad (NULL cache or key, empty, too
 * long; n = its measured length) for sc_errmsg under the name call, and
 * returns the status. */
sc_status sc__key_error(const sc_cache *c, const char *key, size_t n, const char *call);

/* Checks a key argument (NULL, empty, too long) and measures it; the
 * failure is recorded for sc_errmsg under the name call. Inline, with the
 * messages out of line: it runs on every get, where a call and its
 * register saves were a tenth of a local hit's instructions. */
static inline sc_status sc__check_key(const sc_cache *c, const char *key, size_t *klen, const char *call)
{
    size_t n = 0;
    if (c && key)
        n = strnlen(key, c->opt.max_key_bytes + 1);
    *klen = n;
    if (!c || !key || n == 0 || n > c->opt.max_key_bytes)
        return sc__key_error(c, key, n, call);
    return SC_OK;
}

/* ops.c: refuses a TTL the Redis scripts cannot take (over 2^53, where a
 * Lua number stops being exact) as a bad argument, before any Redis call,
 * recorded for sc_errmsg under the name call. */
sc_status sc__check_ttl(const sc_cache *c, uint64_t ttl_ms, const char *call);

/* ops.c: the pod's own write reached Redis with this result: count it, note
 * a failed PUBLISH, and raise verified. */
void sc__wrote(sc_cache *c, const sc__remote_result *res, const char *call);

/* partition.c: the histogram at offset in sc_cache added up over the
 * partitions into sum. */
void sc__parts_hist(const sc_cache *c, size_t offset, sc__hist *sum);

/* metrics.c: one observation of a duration (ns, from sc__mono_ns). */
void sc__hist_observe(sc__hist *h, uint64_t ns);
/* The time since start (a sc__mono_ns reading) goes into h. */
void sc__hist_since(sc__hist *h, uint64_t start);
/* An event published at time_ms (Redis clock) was applied now. */
void sc__metrics_propagated(sc_cache *c, uint64_t time_ms);

/* transform.c: the on_set_local hook, the one place every value from outside
 * the calling thread's own write passes before the local tier (a Redis read,
 * another pod's set event, a replayed event). in is the value as received
 * for key. SC_OK with *keep: what the local tier should store, a new
 * reference the caller releases: in itself (no hook, or it said 0), a new
 * value with the hook's bytes and in's version (1), or NULL (-1: store
 * nothing, and the caller removes older copies as for any refused install).
 * SC_ERR_NOMEM with *keep NULL. Values a loader produced (sc_fetch) are
 * meant to pass here too before their install (issue 14 lists them). */
sc_status sc__transform(sc_cache *c, const char *key, size_t klen, sc_value *in, sc_value **keep);

/* ops.c, for behind.c: sc_set / sc_delete whose script also queues the
 * write (a plain reader gets SC_ERR_INVALID). */
sc_status sc__set_behind(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms);
sc_status sc__delete_behind(sc_cache *c, const char *key);

/* behind.c: write-behind. The option check (called by sc__options_check);
 * start (after the pod synced: the saver thread when there is a save_fn);
 * stop (first thing in close; bounded as sc_close says); the stats. */
sc_status sc__behind_options_check(const sc_options *o, char *err, size_t errlen);
sc_status sc__behind_start(sc_cache *c, char *err, size_t errlen);
void sc__behind_stop_begin(sc_cache *c);
void sc__behind_stop(sc_cache *c);
void sc__behind_stats(sc_cache *c, sc_stats *out);

/* fetch/: cache-aside loading (sc_fetch, sc_fetch_batch, sc_tag_deleted)
 * in fetch.c, tables.c, flight.c (sc__fetch_event) and load.c, which
 * share fetch/fetch.h.
 * sc__fetch_new sets c->fetch (and starts the load-stats windows);
 * sc__fetch_free accepts a cache without one. */
sc_status sc__fetch_new(sc_cache *c);
void sc__fetch_free(sc_cache *c);
/* Before the Redis tier closes: loads left running past a caller's timeout
 * (sc_fetch_ex) store nothing from now on; waits for the stores under way.
 * _begin only says so (no wait): the first thing sc_close does, so that a
 * load returning while close waits for the saver stores nothing either. */
void sc__fetch_stop_begin(sc_cache *c);
void sc__fetch_stop(sc_cache *c);
/* An event for key was applied (any thread; the sync thread calls it for
 * every event, own ones too): wakes fetches waiting for another load of the
 * key. klen 0 (a clear) wakes every waiter. */
void sc__fetch_event(sc_cache *c, const char *key, size_t klen);
/* 1 while the grace table (tables.c) holds a value of key whose grace has
 * not ended (the tag index does not prune its links). */
int sc__fetch_grace_holds(sc_cache *c, const char *key, size_t klen, uint64_t hash);
/* A write no event vouches for (lib/tracking.c) reached key: its cached
 * "not found" goes when its marker's version is at most upto (the pod's
 * last_seq: a newer marker is the pod's own store, whose event is still to
 * come after the lock write being reported). klen 0: every cached "not
 * found" goes (a resubscription: writes made meanwhile were not reported). */
void sc__fetch_neg_forget(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t upto);
/* The grace table's copy of key goes when its version is at most upto:
 * Redis answered a fetch and holds no graced value for the key (UINT64_MAX:
 * the copy predates a write, delete, tag or invalidation; a fetch that
 * shares the load, or comes later, must not answer it stale), or a confirm
 * (lib/tracking.c) found Redis no longer holding that version and bytes. */
void sc__fetch_grace_forget(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t upto);
/* 1 with *out (a new reference) while the grace table keeps a value of key
 * (whatever its windows): what tracking confirms with Redis. */
int sc__fetch_grace_peek(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc_value **out);
/* Calls fn for every value the grace table keeps (under its lock; the
 * values carry their keys): what a resubscription confirms with Redis. */
void sc__fetch_grace_each(sc_cache *c, void (*fn)(sc_value *v, void *ud), void *ud);

/* tags.c: the local tag index (sc_set_tagged, sc_fetch_ex tags,
 * sc_invalidate_tag). */
sc_status sc__tags_new(sc_cache *c);
void sc__tags_free(sc_cache *c); /* a cache without one is fine */
/* Checks and joins ntags tags with "\n" into *out (malloc'd; NULL with
 * *out_len 0 when ntags is 0); failures are recorded for sc_errmsg. */
sc_status sc__tags_join(const sc_cache *c, const char *const *tags, size_t ntags, char **out, size_t *out_len,
                        const char *call);
/* After key (version, read when Redis' counter was known) entered the local
 * tier with these tags: indexes it, or drops it at once when one of them was
 * invalidated above version (or the read ran before an invalidation the
 * index has forgotten since). */
void sc__tags_note(sc_cache *c, const char *key, size_t klen, uint64_t khash, uint64_t version, uint64_t known,
                   const char *tags, size_t tags_len);
/* A tag invalidation at version (0: an outside publisher's): drops every
 * indexed key of the tag below it, raising their floors to floor. Returns
 * how many local copies went. */
size_t sc__tags_event(sc_cache *c, const char *tag, size_t tag_len, uint64_t version, uint64_t floor);
/* How many tags the index keeps a record of (for tests). */
size_t sc__tags_records(sc_cache *c);
/* ops.c: sc_set with tags (joined), announced as an invalidate. */
sc_status sc__set_tagged(sc_cache *c, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                         const char *tags, size_t tags_len);

/* tracking.c: server-assisted invalidation (CLIENT TRACKING). new does
 * nothing with the option off; free accepts a cache without it. */
sc_status sc__tracking_new(sc_cache *c);
void sc__tracking_free(sc_cache *c);
/* The BCAST prefixes for the subscriber (0 with the option off). */
size_t sc__tracking_prefixes(const sc_cache *c, const char *out[2]);
/* The canary key the heartbeat sets, or NULL (tracking not active). */
const char *sc__tracking_canary(const sc_cache *c);
/* Any thread: the key stripe's generation before a Redis read or write... */
uint64_t sc__tracking_mark(sc_cache *c, uint64_t hash);
/* ...and sc__local_put of what it returned, undone (SC_ERR_CONFLICT) when an
 * invalidation of the stripe was applied since the mark. ttl_ms counts
 * from since_ms (sc__ttl_since): SC_NOT_FOUND, nothing installed, once it
 * has run out. */
sc_status sc__tracking_put(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc_value *v, uint64_t ttl_ms,
                           uint64_t since_ms, uint64_t known, uint64_t mark);
/* sc__local_put of the pod's own write (v's version is the one the write
 * took), undone (SC_ERR_CONFLICT) when an invalidation applied to the
 * stripe covers that version. ttl_ms counts from since_ms, as above. */
sc_status sc__tracking_put_own(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc_value *v, uint64_t ttl_ms,
                               uint64_t since_ms);
/* Loop thread: after a catch-up, the replayed values installed are
 * confirmed with Redis; on a resubscription, before its catch-up, every
 * local copy is (a copy the on_set_local hook transformed cannot match
 * and goes). Nonzero: Redis could not be asked (the caller resubscribes). */
int sc__tracking_replayed(sc_cache *c);
int sc__tracking_resynced(sc_cache *c);
/* Loop thread, once the messages already read are applied: hands the
 * copies the invalidation messages named to the confirm thread. */
void sc__tracking_flush(sc_cache *c);
/* Stops the confirm thread (sc_close, before the Redis tier closes). */
void sc__tracking_stop(sc_cache *c);
/* Loop thread (syncer.c): a live or replayed event applied; an
 * invalidation message (nonzero: copies wait for a confirm, the caller
 * schedules sc__tracking_flush); tracking came up (active) or was refused
 * (why); the tick (non-NULL: why the caller must resubscribe: the canary is
 * late, or the confirm thread could not ask Redis). */
void sc__tracking_event(sc_cache *c, const sc__event *ev, uint64_t hash, int replayed);
/* Loop thread (syncer.c): an outside publisher's event (no version) that
 * removes key (NULL: every key, a clear). It reports a write that bypassed
 * the scripts, which the counter cannot order (a read that ran before it
 * carries the same counter as one after it), so it is applied as an
 * invalidation message is: the copy goes, and neither a read in flight for
 * the key's stripe nor an own write already applied installs afterwards,
 * with tracking on or off. Returns how many copies went. */
size_t sc__tracking_outside(sc_cache *c, const char *key, size_t klen, uint64_t hash);
int sc__tracking_invalidate(sc_cache *c, const char *const *keys, const size_t *lens, size_t n, int all);
void sc__tracking_state(sc_cache *c, int active, const char *why);
const char *sc__tracking_tick(sc_cache *c, uint64_t now);

/* load_stats.c: exact windowed load statistics (a record per thread). */
typedef struct sc__load_stats sc__load_stats;
typedef enum sc__load_outcome {
    SC__LOAD_HIT,
    SC__LOAD_MISS,
    SC__LOAD_ERROR,
    SC__LOAD_MANUAL,
    SC__LOAD_OUTCOMES
} sc__load_outcome;
sc__load_stats *sc__load_stats_new(uint64_t window_ms); /* NULL on out of memory */
void sc__load_stats_free(sc__load_stats *s);            /* NULL is a no-op */
/* Adds n[o] outcomes of each kind o, of a fetch that began at since_ns
 * (sc__mono_ns()): each hit and miss took from then to now. One write of
 * the thread's record and one precise clock read for a whole batch. */
void sc__load_stats_add(sc__load_stats *s, const uint64_t n[SC__LOAD_OUTCOMES], uint64_t since_ns);
/* sc_fetch's hit path: hit_begin before the lookup (0 when this hit is not
 * timed, see load_stats.c), then hit(s, what it returned) for a hit. */
uint64_t sc__load_stats_hit_begin(void);
void sc__load_stats_hit(sc__load_stats *s, uint64_t began_ns);
void sc__load_stats_read(sc__load_stats *s, sc_window w, sc_load_stats *out);

static inline uint64_t sc__atomic_inc(atomic_uint_fast64_t *a)
{
    return atomic_fetch_add_explicit(a, 1, memory_order_relaxed) + 1;
}

static inline void sc__atomic_max(atomic_uint_fast64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_release, memory_order_relaxed))
        ;
}

#endif
