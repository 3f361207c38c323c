/* The parts of cache-aside loading that the fetch files share (internal,
 * not installed): the per-pod state, a call and its keys, and the
 * functions that cross files. The design of loading is the header comment
 * of lib/fetch/fetch.c; lib/internal.h holds what the rest of lib/ calls. */
#ifndef SC_LIB_FETCH_H
#define SC_LIB_FETCH_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "lib/internal.h"

#define FLIGHT_BUCKETS 256u
#define WAKE_BUCKETS 256u
#define NEG_SLOTS 1024u
#define GRACE_SLOTS 4096u
#define LOADED_MSG 256

struct sc_loaded {
    char *data;
    size_t len;
    size_t max;          /* max_value_bytes */
    size_t refused_len;  /* a value over max was offered (0: none) */
    size_t null_len;     /* a NULL value with this length was offered (0: none) */
    int set;
    int nomem;
    char msg[LOADED_MSG];
};

typedef struct flight {
    struct flight *next;
    uint64_t hash;
    size_t klen;
    pthread_t leader;
    int refs;            /* the leader and every follower still holding it */
    int done;
    uint64_t rt;         /* Redis round trips the leader started for the key */
    uint64_t result_rt;  /* the round trip the result came from */
    sc_status st;
    sc_value *val;
    sc__load_outcome outcome;
    int redo;     /* the result is the leader's own only (a load a write
                     fenced, or a timeout of the leader's call): followers
                     start over */
    int ungraced; /* the leader's last read: Redis held no graced value */
    char err[SC__ERRLEN];
    char key[];
} flight;

typedef struct neg_entry {
    char *key;           /* NULL: free slot */
    size_t klen;
    uint64_t hash;
    uint64_t version;    /* of the marker in Redis */
    uint64_t known;      /* the counter it was read (or written) at */
    uint64_t expire;     /* sc__now_ms() deadline */
} neg_entry;

/* A graced value (sc_fetch_ex): kept past its TTL for stale-if-error
 * answers, believed under the same rule as a neg_entry (the key's floor at
 * most `known`), and never past `until`. */
typedef struct grace_entry {
    char *key;           /* NULL: free slot */
    size_t klen;
    uint64_t hash;
    sc_value *v;
    uint64_t known;
    uint64_t fresh_end;  /* sc__now_ms() when its TTL ended (or ends) */
    uint64_t until;      /* sc__now_ms() when its grace ends */
} grace_entry;

/* Loads left running past a caller's timeout (sc_fetch_ex) hold this, not
 * the cache: sc_close marks it closing and waits only for the loads that
 * are storing; a loader still running then finds `closing` when it returns
 * and drops its result. */
typedef struct bg_share {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* a job finished loading or storing (CLOCK_MONOTONIC) */
    int refs;            /* the cache and every job */
    int closing;
    int storing;
    sc_cache *c;
} bg_share;

typedef struct sc__fetch sc__fetch;
struct sc__fetch {
    pthread_mutex_t mu;          /* flights */
    pthread_cond_t done_cv;      /* a flight finished (CLOCK_MONOTONIC) */
    flight *flights[FLIGHT_BUCKETS];

    pthread_mutex_t wake_mu;     /* gens */
    pthread_cond_t wake_cv;      /* a gen moved (CLOCK_MONOTONIC) */
    atomic_int waiters;          /* fetches waiting for another pod's load */
    uint64_t gens[WAKE_BUCKETS]; /* events applied per key bucket */

    /* The two side tables are made at their first entry (tables.c): a
     * cache that never caches a "not found" or serves a grace period does
     * not pay their 280 KiB. */
    pthread_mutex_t neg_mu;
    neg_entry *neg; /* NEG_SLOTS, or NULL */

    pthread_mutex_t grace_mu;
    grace_entry *grace;          /* GRACE_SLOTS, or NULL */
    size_t grace_bytes;          /* value bytes held in grace[] */
    size_t grace_max_bytes;      /* 0: no bound */

    bg_share *bg;

    atomic_uint_fast64_t tokens;
    sc__load_stats *stats; /* a partition's: its router's (not owned) */
};

enum { K_PENDING, K_DONE, K_FOLLOW, K_LEAD };

typedef struct fkey {
    const char *key;
    size_t klen;
    uint64_t hash;
    uint64_t mark;        /* sc__tracking_mark before its fetch_lock read */
    int state;
    flight *fl;
    uint64_t joined_at;   /* follower: fl->rt when it joined */
    sc_status st;
    sc_value *val;
    sc__load_outcome outcome;
    int waited;           /* a wait or a load happened: a miss */
    int fenced;           /* eventual: its value is a load a write fenced (for its own caller only) */
    int deadline_hit;     /* it ended at its call's own deadline (a timeout of that call only) */
    /* leader loop */
    int active;           /* in this round trip */
    sc_value *local;      /* strong: the local copy being confirmed */
    int local_empty;      /* strong: a cached not-found being confirmed */
    uint64_t have;
    sc__fetch_kind read; /* what its last fetch_lock read found */
    /* The loader's result slot: made when the key is loaded (load.c), so
     * a batch answered by the local tier does not clear 300 bytes a key. */
    sc_loaded *slot;
    /* sc_fetch_ex: the graced value this call read from Redis (if any) */
    sc_value *graced;
    uint64_t graced_fresh_end;  /* sc__now_ms() when its TTL ended */
    uint64_t graced_until;      /* sc__now_ms() when its grace ends */
    uint64_t graced_known;      /* the counter of the read that found it */
    /* The last fetch_lock read answered and Redis held no graced value for
     * the key (deleted, tagged, invalidated, overwritten or gone): no copy
     * this pod kept may be answered stale-if-error. */
    int redis_ungraced;
} fkey;

typedef struct call {
    sc_cache *c;
    const char *name;
    uint64_t ttl;
    sc_load_fn load1;
    sc_load_batch_fn loadn;
    void *ud;
    fkey *k;
    size_t m;
    uint64_t t0_ns;
    uint64_t deadline_ms; /* mono */
    uint64_t deadline_unsoft; /* mono: deadline_ms before a soft timeout shortened it */
    int local_checked;    /* eventual: run() already asked the local tier */
    /* sc_fetch_ex */
    uint64_t grace;       /* stored with loaded values, and how stale an answer may be */
    unsigned soft, hard;  /* timeouts (0: none) */
    const char *tags;     /* "\n"-joined, tags_len bytes */
    size_t tags_len;
    int left_running;     /* the loader was left running past a timeout */
    sc_status fail;       /* first failure */
    /* lead(): one pass of the leader loop, run in lockstep with the other
     * calls of a partitioned batch */
    int in_round;         /* run_all: the call has keys in this round */
    int leading;
    int iter;
    uint64_t *snap;       /* wake generations of the keys before the read */
    sc__fetch_item *items;
    fkey **act;           /* the keys read this pass (na) */
    fkey **tl;            /* the keys locked for the loader (ntl) */
    size_t na, ntl, nwait;
    uint64_t wait_ms;
    uint64_t sent_ms; /* sc__now_ms before the last Redis call: the TTLs it
                         reported count from there */
    char token[48];
    /* settle: the loaded values on their way to Redis (st_nst of st_n) */
    sc__store_item *st_items;
    fkey **st_keys;
    size_t st_n, st_nst;
    /* Last: call_init clears the fields above and only err's first byte
     * (a batch answered locally has no use for 512 cleared bytes). */
    char err[SC__ERRLEN];
} call;
_Static_assert(offsetof(call, err) + SC__ERRLEN == sizeof(call), "call_init clears every field before err");

/* ------------------------------------------------------------ helpers -- */

static inline int sc__fetch_synced(const sc_cache *c)
{
    return sc__synced(c);
}

static inline void sc__fetch_abs_deadline(struct timespec *ts, uint64_t mono_ms)
{
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

static inline uint64_t sc__fetch_mono_ms(void)
{
    return sc__mono_ns() / 1000000u;
}

/* fetch.c: a call's failures and its keys' results. */
void sc__fetch_call_fail(call *cl, sc_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Key k of cl ends with st, unanswered ("waited"), and the call fails with
 * "<name>: <what>"<key>"<when><ms since the call began><why>". */
void sc__fetch_key_gave_up(call *cl, fkey *k, sc_status st, const char *what, const char *when, const char *why);
void sc__fetch_key_done(fkey *k, sc_status st, sc_value *val);
void sc__fetch_key_fail(call *cl, fkey *k, sc_status st);

/* tables.c: the not-found cache and the grace table. */
void sc__fetch_neg_put(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t version, uint64_t known,
                       uint64_t ttl_ms);
int sc__fetch_neg_get(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t *version);
void sc__fetch_grace_put(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc_value *v, uint64_t known,
                         int64_t fresh_ms, uint64_t past_ms, uint64_t until_ms, uint64_t since_ms);
int sc__fetch_grace_get(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t grace, sc_value **out,
                        uint64_t *past);

/* fetch.c: 1 when a failure of k's load would be answered with a graced
 * value now (the soft timeout's condition, checked again when it passes). */
int sc__fetch_graced_answerable(call *cl, fkey *k);

/* flight.c: the in-pod flight table and the wait for a wake. */
void sc__fetch_join_flights(call *cl);
void sc__fetch_bump_rt(call *cl);
void sc__fetch_finish_flights(call *cl);
size_t sc__fetch_follow_flights(call *cl);
int sc__fetch_wait_wake(sc__fetch *f, call *cl, const uint64_t *snap, uint64_t ms);

/* load.c: installs, the loader calls, settling and storing, and the
 * loads left running past a timeout. */
sc_value *sc__fetch_install_read(sc_cache *c, fkey *k, sc_value *v, int64_t pttl, uint64_t since_ms, uint64_t known);
/* v through the on_set_local hook, for a value answered without being kept
 * locally (a graced value, an outdated tagged one, a fenced load's): what a
 * hit would return, v itself when the hook keeps nothing. Takes v. */
sc_value *sc__fetch_hooked(sc_cache *c, fkey *k, sc_value *v);
void sc__fetch_load_one(call *cl);
void sc__fetch_load_batch(call **cls, size_t n);
void sc__fetch_store_all(call **cls, size_t n, sc__remote_fetch_call *rc, call **who);
void sc__fetch_bg_unref_locked(bg_share *b);
/* 1 when the calling thread is a load left running past a timeout (its own
 * thread) that loads key of c: a fetch of that key from its loader fails
 * as from any loader (the flight it would follow is its caller's). */
int sc__fetch_bg_loading(const sc_cache *c, const char *key, size_t klen);

#endif
