/* Cache-aside loading: sc_fetch, sc_fetch_batch, sc_tag_deleted.
 *
 * A fetch reads the local tier, then Redis, and loads only when neither
 * holds the key. Three layers keep loads single:
 *  - in one pod, a flight per key: the first fetch leads, later ones follow
 *    and take its result (the loader of a follower is never called);
 *  - across pods, a load lock in the key's Redis hash, taken in the same
 *    script that reads the value (remote/lua/fetch_lock.lua), with a
 *    random-free token that doubles as a fencing token: the result is stored
 *    only while the token still holds the lock (fetch_store.lua), and
 *    sc_set, sc_delete, sc_tag_deleted and sc_clear revoke it;
 *  - a pod that finds another's lock waits for the result: the sync thread
 *    calls sc__fetch_event for every event it applies, which wakes the
 *    waiters of that key; a short poll (lock_ttl_ms / 10, 5..250 ms, and
 *    never past the lock's end) is the fallback, and a lock that lapsed
 *    (lock_ttl_ms, Redis' clock) is taken over by the next waiter's read.
 *
 * Every local install keeps docs/protocol.md rule 6: a value read by
 * fetch_lock installs with known = the counter read in that script; a value
 * stored by fetch_store installs with known = its new version. A cached
 * "not found" (the empty marker) lives in Redis and, per pod, in a small
 * direct-mapped table here that obeys the same rule: an entry is believed
 * only while the key's floor is at most the counter it was read at, so any
 * event, eviction, delete or flush that touches the key since (all raise
 * the floor, or install a value the local tier answers first) retires it.
 *
 * Consistency (option `consistency`):
 *  - SC_EVENTUAL: a local hit is served at once; while another pod reloads
 *    a tagged key, its outdated value is served instead of waiting.
 *  - SC_STRONG: a local hit (or cached "not found") is confirmed with Redis
 *    (fetch_lock with the copy's version: one round trip, no value), an
 *    outdated value is never served, a follower accepts a flight's result
 *    only if it came from a round trip that started after the follower
 *    joined, and a load whose lock was revoked (fenced) is loaded again.
 *    So once sc_tag_deleted returned, no fetch that starts afterwards on any
 *    pod returns the outdated value.
 *
 * Choices where the issue is silent:
 *  - a fenced load under SC_EVENTUAL returns its value to its caller
 *    without caching it (rockscache does the same); under SC_STRONG it loads
 *    again;
 *  - a fetch (leader or follower) gives up with SC_ERR_LOCKED after
 *    2 x lock_ttl_ms + 2 x redis_timeout_ms without a result;
 *  - a loader slower than lock_ttl_ms loses its lock to a waiter (that is
 *    what the lapse is for); its own result is then fenced;
 *  - a plain reader pod (no Redis writes) cannot fetch: SC_ERR_INVALID;
 *  - with a caller's event_base, a fetch made on the loop's own thread that
 *    waits for another pod's load cannot be woken by the event (the loop is
 *    blocked in it): the poll answers it;
 *  - in-pod sharing uses its own flight table here rather than flight.c's:
 *    a load flight carries a loader, locks, strong-mode round-trip counts and
 *    the recursion check, which a get's Redis read has no use for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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

    pthread_mutex_t neg_mu;
    neg_entry neg[NEG_SLOTS];

    pthread_mutex_t grace_mu;
    grace_entry grace[GRACE_SLOTS];
    size_t grace_bytes;          /* value bytes held in grace[] */
    size_t grace_max_bytes;      /* 0: no bound */

    bg_share *bg;

    atomic_uint_fast64_t tokens;
    sc__load_stats *stats;
};

/* ------------------------------------------------------------ helpers -- */

static int writes_redis(const sc_cache *c)
{
    return c->opt.role == SC_ROLE_WRITER || c->opt.reader_can_set_to_redis;
}

static int is_synced(const sc_cache *c)
{
    return atomic_load_explicit(&c->synced, memory_order_acquire);
}

static sc_status check_key(const sc_cache *c, const char *key, size_t *klen, const char *call)
{
    if (!key)
        return sc__fail(c, SC_ERR_INVALID, "%s: key is NULL", call);
    size_t n = strnlen(key, c->opt.max_key_bytes + 1);
    if (n == 0)
        return sc__fail(c, SC_ERR_INVALID, "%s: key is empty", call);
    if (n > c->opt.max_key_bytes)
        return sc__fail(c, SC_ERR_TOO_LARGE, "%s: key longer than max_key_bytes (%zu)", call,
                        c->opt.max_key_bytes);
    *klen = n;
    return SC_OK;
}

static void abs_deadline(struct timespec *ts, uint64_t mono_ms)
{
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

static uint64_t mono_ms(void)
{
    return sc__mono_ns() / 1000000u;
}

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* A per-thread xorshift for TTL jitter, seeded from the kernel. */
static uint64_t rnd64(void)
{
    static _Thread_local uint64_t x;
    if (!x) {
        if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x)
            x = sc__mono_ns() ^ (uint64_t)(uintptr_t)&x;
        x |= 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* ttl shortened by a random 0..pct %. */
static uint64_t jitter(uint64_t ttl, unsigned pct)
{
    if (!ttl || !pct)
        return ttl;
    uint64_t span = ttl / 100 * pct + ttl % 100 * pct / 100;
    uint64_t cut = span ? rnd64() % (span + 1) : 0;
    return ttl - cut > 0 ? ttl - cut : 1;
}

/* ------------------------------------------------------- lifecycle -- */

sc_status sc__fetch_new(sc_cache *c)
{
    sc__fetch *f = calloc(1, sizeof *f);
    if (!f)
        return SC_ERR_NOMEM;
    f->stats = sc__load_stats_new(c->opt.stats_window_ms);
    if (!f->stats) {
        free(f);
        return SC_ERR_NOMEM;
    }
    pthread_mutex_init(&f->mu, NULL);
    cond_init_mono(&f->done_cv);
    pthread_mutex_init(&f->wake_mu, NULL);
    cond_init_mono(&f->wake_cv);
    pthread_mutex_init(&f->neg_mu, NULL);
    pthread_mutex_init(&f->grace_mu, NULL);
    /* The grace table holds at most a quarter of the local tier's byte
     * bound (values are not shared with the tier once it dropped them). */
    f->grace_max_bytes = c->opt.local_max_bytes / 4;
    f->bg = calloc(1, sizeof *f->bg);
    if (!f->bg) {
        sc__load_stats_free(f->stats);
        free(f);
        return SC_ERR_NOMEM;
    }
    pthread_mutex_init(&f->bg->mu, NULL);
    cond_init_mono(&f->bg->cv);
    f->bg->refs = 1;
    f->bg->c = c;
    c->fetch = f;
    return SC_OK;
}

static void bg_unref_locked(bg_share *b)
{
    /* Called with b->mu held; frees b (and unlocks) on the last reference. */
    if (--b->refs == 0) {
        pthread_mutex_unlock(&b->mu);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
        return;
    }
    pthread_mutex_unlock(&b->mu);
}

void sc__fetch_stop(sc_cache *c)
{
    sc__fetch *f = c->fetch;
    if (!f || !f->bg)
        return;
    bg_share *b = f->bg;
    pthread_mutex_lock(&b->mu);
    b->closing = 1;
    /* A store is one Redis round trip (bounded by redis_timeout_ms). */
    while (b->storing > 0)
        pthread_cond_wait(&b->cv, &b->mu);
    f->bg = NULL;
    bg_unref_locked(b);
}

void sc__fetch_free(sc_cache *c)
{
    sc__fetch *f = c->fetch;
    if (!f)
        return;
    sc__fetch_stop(c);
    for (unsigned i = 0; i < NEG_SLOTS; i++)
        free(f->neg[i].key);
    for (unsigned i = 0; i < GRACE_SLOTS; i++) {
        free(f->grace[i].key);
        sc_value_release(f->grace[i].v);
    }
    pthread_mutex_destroy(&f->grace_mu);
    sc__load_stats_free(f->stats);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->done_cv);
    pthread_mutex_destroy(&f->wake_mu);
    pthread_cond_destroy(&f->wake_cv);
    pthread_mutex_destroy(&f->neg_mu);
    free(f);
    c->fetch = NULL;
}

/* ------------------------------------------------------------ waking -- */

void sc__fetch_event(sc_cache *c, const char *key, size_t klen)
{
    sc__fetch *f = c->fetch;
    if (!f || atomic_load(&f->waiters) == 0)
        return;
    pthread_mutex_lock(&f->wake_mu);
    if (klen == 0) {
        for (unsigned i = 0; i < WAKE_BUCKETS; i++)
            f->gens[i]++;
    } else {
        f->gens[sc__local_hash(key, klen) % WAKE_BUCKETS]++;
    }
    pthread_cond_broadcast(&f->wake_cv);
    pthread_mutex_unlock(&f->wake_mu);
}

/* ---------------------------------------------------- not-found cache -- */

static void neg_put(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t version, uint64_t known,
                    uint64_t ttl_ms)
{
    if (c->opt.local_ttl_ms && (ttl_ms == 0 || ttl_ms > c->opt.local_ttl_ms))
        ttl_ms = c->opt.local_ttl_ms;
    if (!ttl_ms || !is_synced(c) || known < sc__local_floor(c->local, hash))
        return;
    char *k = malloc(klen + 1);
    if (!k)
        return;
    memcpy(k, key, klen);
    k[klen] = '\0';
    sc__fetch *f = c->fetch;
    pthread_mutex_lock(&f->neg_mu);
    neg_entry *e = &f->neg[hash % NEG_SLOTS];
    free(e->key);
    *e = (neg_entry){k, klen, hash, version, known, sc__now_ms() + ttl_ms};
    pthread_mutex_unlock(&f->neg_mu);
}

/* 1 with *version when a believable "not found" is cached for key. */
static int neg_get(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t *version)
{
    sc__fetch *f = c->fetch;
    int found = 0;
    uint64_t floor = sc__local_floor(c->local, hash);
    pthread_mutex_lock(&f->neg_mu);
    neg_entry *e = &f->neg[hash % NEG_SLOTS];
    if (e->key && e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0) {
        if (e->expire > sc__now_ms() && e->known >= floor) {
            found = 1;
            *version = e->version;
        } else {
            free(e->key);
            memset(e, 0, sizeof *e);
        }
    }
    pthread_mutex_unlock(&f->neg_mu);
    return found;
}

/* ------------------------------------------------------ grace table -- */

/* Keeps v (a new reference) as key's graced value: fresh for fresh_ms more
 * (0: its TTL already ended, past_ms ago), available until_ms from now.
 * Same belief rule as neg_put. */
static void grace_put(sc_cache *c, const char *key, size_t klen, uint64_t hash, sc_value *v, uint64_t known,
                      int64_t fresh_ms, uint64_t past_ms, uint64_t until_ms)
{
    sc__fetch *f = c->fetch;
    if (!v || !until_ms || !is_synced(c) || known < sc__local_floor(c->local, hash))
        return;
    size_t sz = sc_value_size(v) + klen;
    if (f->grace_max_bytes && sz > f->grace_max_bytes / 16)
        return; /* one value may take a sixteenth of the table's bytes */
    char *k = malloc(klen + 1);
    if (!k)
        return;
    memcpy(k, key, klen);
    k[klen] = '\0';
    uint64_t now = sc__now_ms();
    pthread_mutex_lock(&f->grace_mu);
    grace_entry *e = &f->grace[hash % GRACE_SLOTS];
    if (e->key && e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0 && e->v &&
        sc_value_version(e->v) > sc_value_version(v)) {
        pthread_mutex_unlock(&f->grace_mu);
        free(k);
        return; /* never older over newer */
    }
    if (e->key) {
        f->grace_bytes -= sc_value_size(e->v) + e->klen;
        free(e->key);
        sc_value_release(e->v);
        memset(e, 0, sizeof *e);
    }
    if (f->grace_max_bytes && f->grace_bytes + sz > f->grace_max_bytes) {
        pthread_mutex_unlock(&f->grace_mu);
        free(k);
        return;
    }
    uint64_t fresh_end = fresh_ms > 0 ? now + (uint64_t)fresh_ms : now - (past_ms < now ? past_ms : 0);
    *e = (grace_entry){k, klen, hash, sc__value_ref(v), known, fresh_end, now + until_ms};
    f->grace_bytes += sz;
    pthread_mutex_unlock(&f->grace_mu);
}

/* 1 with *out (a new reference) and *past when key has a believable graced
 * value at most grace ms past its TTL. */
static int grace_get(sc_cache *c, const char *key, size_t klen, uint64_t hash, uint64_t grace, sc_value **out,
                     uint64_t *past)
{
    sc__fetch *f = c->fetch;
    int found = 0;
    uint64_t floor = sc__local_floor(c->local, hash);
    uint64_t now = sc__now_ms();
    pthread_mutex_lock(&f->grace_mu);
    grace_entry *e = &f->grace[hash % GRACE_SLOTS];
    if (e->key && e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0) {
        if (e->until > now && e->known >= floor) {
            if (now < e->fresh_end + grace) {
                found = 1;
                *out = sc__value_ref(e->v);
                *past = now > e->fresh_end ? now - e->fresh_end : 0;
            }
        } else {
            f->grace_bytes -= sc_value_size(e->v) + e->klen;
            free(e->key);
            sc_value_release(e->v);
            memset(e, 0, sizeof *e);
        }
    }
    pthread_mutex_unlock(&f->grace_mu);
    return found;
}

/* ---------------------------------------------------------- one call -- */

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
    /* leader loop */
    int active;           /* in this round trip */
    sc_value *local;      /* strong: the local copy being confirmed */
    int local_empty;      /* strong: a cached not-found being confirmed */
    uint64_t have;
    sc__fetch_item it;
    sc_loaded slot;
    /* sc_fetch_ex: the graced value this call read from Redis (if any) */
    sc_value *graced;
    uint64_t graced_fresh_end;  /* sc__now_ms() when its TTL ended */
    uint64_t graced_until;      /* sc__now_ms() when its grace ends */
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
    int local_checked;    /* eventual: run() already asked the local tier */
    /* sc_fetch_ex */
    uint64_t grace;       /* stored with loaded values, and how stale an answer may be */
    unsigned soft, hard;  /* timeouts (0: none) */
    const char *tags;     /* "\n"-joined, tags_len bytes */
    size_t tags_len;
    int left_running;     /* the loader was left running past a timeout */
    sc_status fail;       /* first failure */
    char err[SC__ERRLEN];
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
    char token[48];
    /* settle: the loaded values on their way to Redis (st_nst of st_n) */
    sc__store_item *st_items;
    fkey **st_keys;
    size_t st_n, st_nst;
} call;

static void call_fail(call *cl, sc_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void call_fail(call *cl, sc_status s, const char *fmt, ...)
{
    if (cl->fail != SC_OK)
        return;
    cl->fail = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->err, sizeof cl->err, fmt, ap);
    va_end(ap);
}

static void key_done(fkey *k, sc_status st, sc_value *val)
{
    k->state = K_DONE;
    k->st = st;
    k->val = val;
    k->outcome = st != SC_OK && st != SC_NOT_FOUND ? SC__LOAD_ERROR : k->waited ? SC__LOAD_MISS : SC__LOAD_HIT;
    if (k->local) {
        sc_value_release(k->local);
        k->local = NULL;
    }
}

static void key_fail(call *cl, fkey *k, sc_status st)
{
    key_done(k, st, NULL);
    if (cl->fail == SC_OK)
        call_fail(cl, st, "%s: %s", cl->name, sc_strerror(st));
}

/* ---- the flight table ---- */

static flight **bucket_of(sc__fetch *f, uint64_t hash)
{
    return &f->flights[hash % FLIGHT_BUCKETS];
}

static void flight_unref(sc__fetch *f, flight *fl)
{
    (void)f;
    if (--fl->refs == 0) {
        sc_value_release(fl->val);
        free(fl);
    }
}

/* Makes every pending key a leader or a follower. A key whose flight this
 * very thread leads (a loader fetching the key it is loading) fails. */
static void join_flights(call *cl)
{
    sc__fetch *f = cl->c->fetch;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < cl->m; i++) {
        fkey *k = &cl->k[i];
        if (k->state != K_PENDING)
            continue;
        flight **b = bucket_of(f, k->hash);
        flight *fl = *b;
        while (fl && !(fl->hash == k->hash && fl->klen == k->klen && memcmp(fl->key, k->key, k->klen) == 0))
            fl = fl->next;
        if (fl && pthread_equal(fl->leader, self)) {
            key_done(k, SC_ERR_INVALID, NULL);
            call_fail(cl, SC_ERR_INVALID, "%s: key \"%.*s\" is being loaded by this thread (a loader fetched its own key)",
                      cl->name, (int)(k->klen > 64 ? 64 : k->klen), k->key);
            continue;
        }
        if (fl) {
            fl->refs++;
            k->fl = fl;
            k->joined_at = fl->rt;
            k->state = K_FOLLOW;
            continue;
        }
        fl = calloc(1, sizeof *fl + k->klen);
        if (!fl) {
            key_done(k, SC_ERR_NOMEM, NULL);
            call_fail(cl, SC_ERR_NOMEM, "%s: out of memory", cl->name);
            continue;
        }
        fl->hash = k->hash;
        fl->klen = k->klen;
        memcpy(fl->key, k->key, k->klen);
        fl->leader = self;
        fl->refs = 1;
        fl->next = *b;
        *b = fl;
        k->fl = fl;
        k->state = K_LEAD;
    }
    pthread_mutex_unlock(&f->mu);
}

/* Counts a round trip for every led key still without a result (see
 * result_rt: a settled key's count must stay at the round trip its result
 * came from, or a strong follower that joined later would take it). */
static void bump_rt(call *cl)
{
    sc__fetch *f = cl->c->fetch;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < cl->m; i++)
        if (cl->k[i].active && cl->k[i].state != K_DONE && cl->k[i].fl)
            cl->k[i].fl->rt++;
    pthread_mutex_unlock(&f->mu);
}

/* The leader publishes its results and leaves the table. */
static void finish_flights(call *cl)
{
    sc__fetch *f = cl->c->fetch;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < cl->m; i++) {
        fkey *k = &cl->k[i];
        if (k->state != K_DONE || !k->fl || !pthread_equal(k->fl->leader, pthread_self()) || k->fl->done)
            continue;
        flight *fl = k->fl;
        for (flight **p = bucket_of(f, fl->hash); *p; p = &(*p)->next) {
            if (*p == fl) {
                *p = fl->next;
                break;
            }
        }
        fl->done = 1;
        fl->result_rt = fl->rt;
        fl->st = k->st;
        fl->val = k->val ? sc__value_ref(k->val) : NULL;
        fl->outcome = k->outcome;
        if (k->st != SC_OK && k->st != SC_NOT_FOUND)
            snprintf(fl->err, sizeof fl->err, "%s", cl->err);
        k->fl = NULL;
        flight_unref(f, fl);
    }
    pthread_cond_broadcast(&f->done_cv);
    pthread_mutex_unlock(&f->mu);
}

/* Followers take their flights' results. Returns how many keys must start
 * over (strong: the result predates the follower). */
static size_t follow_flights(call *cl)
{
    sc__fetch *f = cl->c->fetch;
    size_t redo = 0;
    struct timespec dl;
    abs_deadline(&dl, cl->deadline_ms);
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < cl->m; i++) {
        fkey *k = &cl->k[i];
        if (k->state != K_FOLLOW)
            continue;
        flight *fl = k->fl;
        int rc = 0;
        while (!fl->done && rc == 0)
            rc = pthread_cond_timedwait(&f->done_cv, &f->mu, &dl);
        k->fl = NULL;
        if (!fl->done) {
            k->waited = 1;
            key_done(k, SC_ERR_LOCKED, NULL);
            call_fail(cl, SC_ERR_LOCKED, "%s: another fetch of this pod was still loading \"%.*s\" after the wait",
                      cl->name, (int)(k->klen > 64 ? 64 : k->klen), k->key);
        } else if (cl->c->opt.consistency == SC_STRONG && fl->result_rt <= k->joined_at) {
            k->state = K_PENDING;
            redo++;
        } else {
            k->waited = fl->outcome == SC__LOAD_MISS;
            key_done(k, fl->st, fl->val ? sc__value_ref(fl->val) : NULL);
            if (fl->st != SC_OK && fl->st != SC_NOT_FOUND)
                call_fail(cl, fl->st, "%s", fl->err);
        }
        flight_unref(f, fl);
    }
    pthread_mutex_unlock(&f->mu);
    return redo;
}

/* ---- installs (docs/protocol.md rule 6) ---- */

/* Both installs pass the on_set_local hook first, as every value from
 * outside the calling thread's own write does (a loaded value included), and
 * return what the caller gets: what the local tier stores, as a later hit
 * would return it (or the value as it came when the hook keeps nothing).
 * They take v. */
static sc_value *transformed(sc_cache *c, fkey *k, sc_value *v, sc_value **keep)
{
    if (sc__transform(c, k->key, k->klen, v, keep) != SC_OK)
        *keep = NULL;
    return *keep;
}

static sc_value *handed_out(sc_value *v, sc_value *keep)
{
    if (!keep)
        return v;
    sc_value_release(v);
    return keep;
}

/* A value fetch_lock read, known current up to `known`. */
static sc_value *install_read(sc_cache *c, fkey *k, sc_value *v, int64_t pttl, uint64_t known)
{
    sc_value *keep;
    int ok = transformed(c, k, v, &keep) && pttl != 0 && is_synced(c) &&
             sc__tracking_put(c, k->key, k->klen, k->hash, keep, pttl > 0 ? (uint64_t)pttl : 0, known, k->mark) ==
                 SC_OK;
    if (!ok)
        sc__local_remove(c->local, k->key, k->klen, k->hash, sc_value_version(v), sc_value_version(v));
    return handed_out(v, keep);
}

/* A value this pod stored with version `version` (its own write). */
static sc_value *install_stored(sc_cache *c, fkey *k, sc_value *v, uint64_t ttl, uint64_t version)
{
    sc_value *keep;
    if (!transformed(c, k, v, &keep) || !is_synced(c) ||
        sc__tracking_put_own(c, k->key, k->klen, k->hash, keep, ttl) != SC_OK)
        sc__local_remove(c->local, k->key, k->klen, k->hash, version, version);
    return handed_out(v, keep);
}

/* ---- loading ---- */

static void slot_reset(sc_loaded *s, size_t max)
{
    free(s->data);
    memset(s, 0, sizeof *s);
    s->max = max;
}

static void settle_begin(call *cl, fkey **ks, size_t n, sc_status ls);
static void store_one(call *cl);

/* A single loader's result as the rest of the call wants it. */
static sc_status load1_result(sc_cache *c, sc_loaded *slot, sc_status ls)
{
    if (ls == SC_NOT_FOUND) /* whatever it set: "not found" is the answer */
        slot_reset(slot, c->opt.max_value_bytes);
    if (ls == SC_OK && !slot->set && !slot->refused_len && !slot->nomem) {
        ls = SC_ERR_LOADER;
        snprintf(slot->msg, sizeof slot->msg, "the loader returned SC_OK without sc_loaded_set");
    }
    return ls;
}

/* ---- loads left running past a timeout (sc_fetch_ex) ---- */

typedef struct bg_job {
    bg_share *sh;
    int refs;            /* the thread, and the caller until it stops waiting */
    int done;            /* the loader returned */
    int abandoned;       /* the caller left: the thread stores */
    sc_status ls;
    sc_loaded slot;
    sc_load_fn load;
    void *ud;
    char token[48];
    uint64_t ttl, grace;
    char *tags;
    size_t tags_len;
    size_t klen;
    uint64_t hash;
    char key[];
} bg_job;

static void job_unref_locked(bg_job *j)
{
    if (--j->refs == 0) {
        free(j->slot.data);
        free(j->tags);
        free(j);
    }
}

/* Stores the result of a load its caller left (on the job's thread). */
static void bg_store(sc_cache *c, bg_job *j)
{
    call cl;
    memset(&cl, 0, sizeof cl);
    cl.c = c;
    cl.name = "sc_fetch_ex (load left running)";
    cl.ttl = j->ttl;
    cl.grace = j->grace;
    cl.tags = j->tags;
    cl.tags_len = j->tags_len;
    cl.t0_ns = sc__mono_ns();
    cl.deadline_ms = cl.t0_ns / 1000000u + (uint64_t)c->opt.redis_timeout_ms;
    fkey k;
    memset(&k, 0, sizeof k);
    k.key = j->key;
    k.klen = j->klen;
    k.hash = j->hash;
    k.state = K_LEAD;
    k.active = 1;
    k.slot = j->slot;
    memset(&j->slot, 0, sizeof j->slot);
    fkey *ks[1] = {&k};
    snprintf(cl.token, sizeof cl.token, "%s", j->token);
    settle_begin(&cl, ks, 1, load1_result(c, &k.slot, j->ls));
    store_one(&cl);
    if (cl.fail != SC_OK)
        sc__log(c, SC_LOG_WARN, "%s", cl.err);
    sc_value_release(k.val);
    free(k.slot.data);
}

static void *bg_main(void *arg)
{
    bg_job *j = arg;
    sc_status ls = j->load(j->key, &j->slot, j->ud);
    bg_share *b = j->sh;
    pthread_mutex_lock(&b->mu);
    j->done = 1;
    j->ls = ls;
    pthread_cond_broadcast(&b->cv);
    if (j->abandoned && !b->closing) {
        b->storing++;
        pthread_mutex_unlock(&b->mu);
        bg_store(b->c, j);
        pthread_mutex_lock(&b->mu);
        b->storing--;
        pthread_cond_broadcast(&b->cv);
    }
    job_unref_locked(j);
    bg_unref_locked(b);
    return NULL;
}

/* Runs the single loader of k on a thread of its own and waits for it until
 * the call's limit: the soft timeout when a graced value is at hand, else
 * the hard timeout. 0: the loader returned (*ls, k->slot filled); 1: it is
 * still running and will store its result itself (the lock goes with it). */
static int load_timed(call *cl, fkey *k, const char *token, sc_status *ls)
{
    sc_cache *c = cl->c;
    uint64_t t0 = cl->t0_ns / 1000000u, limit = UINT64_MAX, past;
    sc_value *g = NULL;
    if (cl->hard)
        limit = t0 + cl->hard;
    if (cl->soft && cl->grace &&
        ((k->graced && sc__now_ms() < k->graced_until) || grace_get(c, k->key, k->klen, k->hash, cl->grace, &g, &past)))
        limit = t0 + cl->soft < limit ? t0 + cl->soft : limit;
    sc_value_release(g);
    bg_share *b = c->fetch->bg;
    bg_job *j = limit == UINT64_MAX || !b ? NULL : calloc(1, sizeof *j + k->klen + 1);
    if (j && cl->tags_len && !(j->tags = malloc(cl->tags_len))) {
        free(j);
        j = NULL;
    }
    if (!j) {
        *ls = cl->load1(k->key, &k->slot, cl->ud);
        return 0;
    }
    j->sh = b;
    j->refs = 2;
    j->load = cl->load1;
    j->ud = cl->ud;
    snprintf(j->token, sizeof j->token, "%s", token);
    j->ttl = cl->ttl;
    j->grace = cl->grace;
    if (cl->tags_len)
        memcpy(j->tags, cl->tags, cl->tags_len);
    j->tags_len = cl->tags_len;
    j->klen = k->klen;
    j->hash = k->hash;
    memcpy(j->key, k->key, k->klen);
    j->slot.max = c->opt.max_value_bytes;
    pthread_mutex_lock(&b->mu);
    b->refs++;
    pthread_mutex_unlock(&b->mu);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &at, bg_main, j);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        pthread_mutex_lock(&b->mu);
        b->refs--;
        pthread_mutex_unlock(&b->mu);
        free(j->tags);
        free(j);
        *ls = cl->load1(k->key, &k->slot, cl->ud);
        return 0;
    }
    struct timespec dl;
    abs_deadline(&dl, limit);
    pthread_mutex_lock(&b->mu);
    while (!j->done && pthread_cond_timedwait(&b->cv, &b->mu, &dl) == 0)
        ;
    int left = !j->done;
    if (left) {
        j->abandoned = 1;
    } else {
        *ls = j->ls;
        free(k->slot.data);
        k->slot = j->slot;
        memset(&j->slot, 0, sizeof j->slot);
    }
    job_unref_locked(j);
    pthread_mutex_unlock(&b->mu);
    return left;
}

/* Loads the locked key of a single-key call (cl->tl[0], under cl->token)
 * and settles it up to its store. */
static void load_one(call *cl)
{
    sc_cache *c = cl->c;
    fkey *k = cl->tl[0];
    slot_reset(&k->slot, c->opt.max_value_bytes);
    sc_status ls;
    if (cl->soft || cl->hard) {
        if (load_timed(cl, k, cl->token, &ls)) {
            /* The loader goes on; its thread stores the result (or
             * releases the lock) when it returns. */
            cl->left_running = 1;
            k->waited = 1;
            key_done(k, SC_ERR_TIMEOUT, NULL);
            call_fail(cl, SC_ERR_TIMEOUT,
                      "%s: the loader of \"%.*s\" still runs after %llu ms (its result is stored when it "
                      "returns)",
                      cl->name, (int)(k->klen > 64 ? 64 : k->klen), k->key,
                      (unsigned long long)(mono_ms() - cl->t0_ns / 1000000u));
            return;
        }
    } else {
        ls = cl->load1(k->key, &k->slot, cl->ud);
    }
    settle_begin(cl, cl->tl, 1, load1_result(c, &k->slot, ls));
}

/* One call of the batch loader for the keys every call locked (each one's
 * tl), then each call settles its own keys up to their store. */
static void load_batch(call **cls, size_t n)
{
    size_t total = 0;
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < cls[j]->ntl; i++, total++)
            slot_reset(&cls[j]->tl[i]->slot, cls[j]->c->opt.max_value_bytes);
    if (!total)
        return;
    const char **keys = malloc(total * sizeof *keys);
    sc_loaded **slots = malloc(total * sizeof *slots);
    sc_status ls = SC_ERR_NOMEM;
    if (keys && slots) {
        size_t at = 0;
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < cls[j]->ntl; i++, at++) {
                keys[at] = cls[j]->tl[i]->key;
                slots[at] = &cls[j]->tl[i]->slot;
            }
        ls = cls[0]->loadn(keys, total, (sc_loaded *const *)slots, cls[0]->ud);
    }
    free(keys);
    free(slots);
    for (size_t j = 0; j < n; j++)
        if (cls[j]->ntl)
            settle_begin(cls[j], cls[j]->tl, cls[j]->ntl, ls);
}

/* The loader returned ls for the n keys of ks (slots filled): releases
 * the locks of what it did not find (or of everything, on a failure),
 * settles those keys, and leaves what goes to Redis under cl->token in
 * cl->st_items for the store (settle_end after it). */
static void settle_begin(call *cl, fkey **ks, size_t n, sc_status ls)
{
    const char *token = cl->token;
    sc_cache *c = cl->c;
    sc_status fail = SC_OK;
    if (ls != SC_OK && ls != SC_NOT_FOUND) {
        fail = SC_ERR_LOADER;
        const char *msg = "";
        for (size_t i = 0; i < n && !*msg; i++)
            msg = ks[i]->slot.msg;
        call_fail(cl, fail, "%s: the loader failed for \"%.*s\"%s (%s)%s%s", cl->name,
                  (int)(ks[0]->klen > 64 ? 64 : ks[0]->klen), ks[0]->key, n > 1 ? " and others" : "",
                  sc_strerror(ls), *msg ? ": " : "", msg);
    }
    for (size_t i = 0; i < n && fail == SC_OK; i++) {
        if (ks[i]->slot.refused_len) {
            fail = SC_ERR_TOO_LARGE;
            call_fail(cl, fail, "%s: the loader's value for \"%.*s\" is %zu bytes, over max_value_bytes (%zu)",
                      cl->name, (int)(ks[i]->klen > 64 ? 64 : ks[i]->klen), ks[i]->key, ks[i]->slot.refused_len,
                      c->opt.max_value_bytes);
        } else if (ks[i]->slot.nomem) {
            fail = SC_ERR_NOMEM;
            call_fail(cl, fail, "%s: out of memory copying a loaded value", cl->name);
        }
    }

    /* Keys whose lock goes back unused: all of them on failure, and the
     * not-found ones when empty markers are off. */
    const char **rel = malloc(n * sizeof *rel);
    size_t *rell = malloc(n * sizeof *rell);
    sc__store_item *items = calloc(n, sizeof *items);
    fkey **sk = malloc(n * sizeof *sk);
    if (!rel || !rell || !items || !sk) {
        free(rel);
        free(rell);
        free(items);
        free(sk);
        for (size_t i = 0; i < n; i++)
            key_fail(cl, ks[i], SC_ERR_NOMEM);
        return;
    }
    size_t nrel = 0, nst = 0;
    for (size_t i = 0; i < n; i++) {
        fkey *k = ks[i];
        if (fail != SC_OK || (!k->slot.set && !c->opt.empty_ttl_ms)) {
            rel[nrel] = k->key;
            rell[nrel++] = k->klen;
            continue;
        }
        sc__store_item *it = &items[nst];
        it->key = k->key;
        it->klen = k->klen;
        sc_status es;
        if (k->slot.set) {
            it->val = k->slot.data;
            it->len = k->slot.len;
            it->ttl_ms = jitter(cl->ttl, c->opt.ttl_jitter_pct);
            it->grace_ms = it->ttl_ms ? cl->grace : 0;
            it->tags = cl->tags;
            it->tags_len = cl->tags_len;
            /* A tagged value is announced as an invalidate: pods learn its
             * tags from their Redis read (README, "Tags"). */
            int carry = it->len <= c->opt.event_value_max && !cl->tags_len;
            es = sc__own_event(c, carry ? SC__ACT_SET : SC__ACT_INVALIDATE, k->key, k->klen, it->val, it->len,
                               it->ttl_ms, &it->ev);
        } else {
            it->empty = 1;
            it->ttl_ms = c->opt.empty_ttl_ms;
            es = sc__own_event(c, SC__ACT_INVALIDATE, k->key, k->klen, NULL, 0, 0, &it->ev);
        }
        if (es != SC_OK) {
            fail = es;
            call_fail(cl, es, "%s: cannot encode the event: %s", cl->name, sc_strerror(es));
            rel[nrel] = k->key;
            rell[nrel++] = k->klen;
            continue;
        }
        sk[nst++] = k;
    }
    char err[SC__ERRLEN] = "";
    if (fail != SC_OK) {
        /* Nothing is cached; every lock goes back at once so the next fetch
         * loads without waiting for a lapse. */
        for (size_t i = 0; i < nst; i++) {
            rel[nrel] = sk[i]->key;
            rell[nrel++] = sk[i]->klen;
        }
        nst = 0;
    }
    if (nrel && sc__remote_fetch_unlock(c->remote, rel, rell, nrel, token, err, sizeof err) != SC_OK)
        sc__atomic_inc(&c->remote_errors);
    if (fail != SC_OK) {
        for (size_t i = 0; i < n; i++) {
            ks[i]->waited = 1;
            if (ks[i]->state != K_DONE)
                key_fail(cl, ks[i], fail);
        }
        for (size_t i = 0; i < n; i++)
            free((char *)items[i].ev.buf);
        free(rel);
        free(rell);
        free(items);
        free(sk);
        return;
    }
    /* Not-found keys with markers off: answered, nothing stored. */
    for (size_t i = 0; i < n; i++) {
        if (!ks[i]->slot.set && !c->opt.empty_ttl_ms) {
            ks[i]->waited = 1;
            key_done(ks[i], SC_NOT_FOUND, NULL);
        }
    }
    free(rel);
    free(rell);
    cl->st_items = items;
    cl->st_keys = sk;
    cl->st_n = n;
    cl->st_nst = nst;
}

/* After the store of cl->st_items (s; err: its message): installs what was
 * stored, settles every key that went to Redis. */
static void settle_end(call *cl, sc_status s, const char *err)
{
    sc_cache *c = cl->c;
    sc__store_item *items = cl->st_items;
    fkey **sk = cl->st_keys;
    size_t nst = cl->st_nst, n = cl->st_n;
    if (!items)
        return;
    for (size_t i = 0; i < nst; i++) {
        fkey *k = sk[i];
        sc__store_item *it = &items[i];
        k->waited = 1;
        if (s != SC_OK) {
            sc__atomic_inc(&c->remote_errors);
            key_done(k, s, NULL);
            call_fail(cl, s, "%s: storing the loaded value: %s", cl->name, err);
            continue;
        }
        sc_value *v = it->empty ? NULL : sc__value_new_keyed(k->key, k->klen, it->val, it->len, it->res.version);
        if (!it->empty && !v) {
            key_done(k, SC_ERR_NOMEM, NULL);
            call_fail(cl, SC_ERR_NOMEM, "%s: out of memory", cl->name);
            continue;
        }
        if (!it->stored) {
            /* Fenced: a write, tag or clear revoked the lock while loading. */
            if (c->opt.consistency == SC_STRONG) {
                sc_value_release(v);
                k->active = 1; /* load again */
            } else {
                key_done(k, v ? SC_OK : SC_NOT_FOUND, v);
            }
            continue;
        }
        sc__wrote(c, &it->res, cl->name);
        if (v) {
            v = install_stored(c, k, v, it->ttl_ms, it->res.version);
            if (it->grace_ms)
                grace_put(c, k->key, k->klen, k->hash, v, it->res.version, (int64_t)it->ttl_ms, 0,
                          it->ttl_ms + it->grace_ms);
            sc__tags_note(c, k->key, k->klen, k->hash, it->res.version, cl->tags, cl->tags_len);
        } else {
            sc__local_remove(c->local, k->key, k->klen, k->hash, it->res.version, it->res.version);
            neg_put(c, k->key, k->klen, k->hash, it->res.version, it->res.version, it->ttl_ms);
        }
        sc__fetch_event(c, k->key, k->klen);
        key_done(k, v ? SC_OK : SC_NOT_FOUND, v);
    }
    for (size_t i = 0; i < n; i++)
        free((char *)items[i].ev.buf);
    free(items);
    free(sk);
    cl->st_items = NULL;
    cl->st_keys = NULL;
    cl->st_n = cl->st_nst = 0;
}

/* The store of one call's loaded values on its own. */
static void store_one(call *cl)
{
    char err[SC__ERRLEN] = "";
    sc_status s = SC_OK;
    if (cl->st_nst) {
        bump_rt(cl);
        s = sc__remote_fetch_store(cl->c->remote, cl->st_items, cl->st_nst, cl->token, err, sizeof err);
    }
    settle_end(cl, s, err);
}

/* The stores of n calls: one pipelined exchange per node (one call: its
 * own store, as an unpartitioned cache makes it). */
static void store_all(call **cls, size_t n, sc__remote_fetch_call *rc, call **who)
{
    size_t nr = 0;
    for (size_t j = 0; j < n; j++)
        if (cls[j]->st_nst)
            who[nr++] = cls[j];
    if (nr <= 1) {
        for (size_t j = 0; j < n; j++)
            store_one(cls[j]);
        return;
    }
    for (size_t j = 0; j < nr; j++) {
        bump_rt(who[j]);
        rc[j] = (sc__remote_fetch_call){
            .r = who[j]->c->remote, .store = who[j]->st_items, .n = who[j]->st_nst, .token = who[j]->token};
    }
    sc__remote_fetch_pipelined(rc, nr);
    for (size_t j = 0; j < nr; j++)
        settle_end(who[j], rc[j].status, rc[j].err);
    for (size_t j = 0; j < n; j++)
        settle_end(cls[j], SC_OK, ""); /* the ones with nothing to store */
}

/* Waits until an event touches one of the waiting keys' buckets (against
 * the generations snapped before the round trip) or ms passed. */
static int wait_wake(sc__fetch *f, call *cl, const uint64_t *snap, uint64_t ms)
{
    int moved = 0;
    uint64_t until = mono_ms() + ms;
    if (until > cl->deadline_ms)
        until = cl->deadline_ms;
    struct timespec dl;
    abs_deadline(&dl, until);
    pthread_mutex_lock(&f->wake_mu);
    for (;;) {
        for (size_t i = 0; i < cl->m && !moved; i++)
            if (cl->k[i].active && cl->k[i].it.kind == SC__FETCH_WAIT &&
                f->gens[cl->k[i].hash % WAKE_BUCKETS] != snap[i])
                moved = 1;
        if (moved || pthread_cond_timedwait(&f->wake_cv, &f->wake_mu, &dl) != 0)
            break;
    }
    pthread_mutex_unlock(&f->wake_mu);
    return moved;
}

/* fetch_lock found a graced value for k (past its TTL, within its grace):
 * kept for this call's stale-if-error answer and in the grace table; with
 * a soft timeout, the call waits no longer than that from now on. */
static void note_graced(call *cl, fkey *k, sc__fetch_item *it, uint64_t known)
{
    sc_cache *c = cl->c;
    sc_value *v = sc__value_new_keyed(k->key, k->klen, it->data, it->len, it->version);
    free(it->data);
    it->data = NULL;
    it->len = 0;
    it->graced = 0;
    if (!v)
        return;
    uint64_t now = sc__now_ms();
    sc_value_release(k->graced);
    k->graced = v;
    k->graced_fresh_end = now - (it->past_ms < now ? it->past_ms : 0);
    k->graced_until = it->grace_pttl_ms >= 0 ? now + (uint64_t)it->grace_pttl_ms : UINT64_MAX;
    grace_put(c, k->key, k->klen, k->hash, v, known, 0, it->past_ms,
              it->grace_pttl_ms >= 0 ? (uint64_t)it->grace_pttl_ms : UINT64_MAX / 2);
    sc__tags_note(c, k->key, k->klen, k->hash, it->version, it->tags, it->tags_len);
    if (cl->soft && cl->grace) {
        uint64_t soft_end = cl->t0_ns / 1000000u + cl->soft;
        if (soft_end < cl->deadline_ms)
            cl->deadline_ms = soft_end;
    }
}

/* ---- the leader loop, in passes run in lockstep over many calls ----
 *
 * A pass of a call: its local tier, one fetch_lock round trip, the loader
 * for the keys it locked, one fetch_store round trip, a wait for the keys
 * other pods lock. The calls of a partitioned batch (one per partition)
 * make their passes together, so that each Redis phase is one pipelined
 * exchange per node and the batch loader is called once per pass; a single
 * call is the same loop over one call. */

static void lead_end(call *cl)
{
    for (size_t i = 0; i < cl->m; i++) {
        sc_value_release(cl->k[i].local);
        cl->k[i].local = NULL;
    }
    free(cl->snap);
    free(cl->items);
    free(cl->act);
    free(cl->tl);
    cl->snap = NULL;
    cl->items = NULL;
    cl->act = cl->tl = NULL;
    cl->leading = 0;
}

static void lead_start(call *cl)
{
    cl->snap = malloc(cl->m * sizeof *cl->snap);
    cl->items = malloc(cl->m * sizeof *cl->items);
    cl->act = malloc(cl->m * sizeof *cl->act);
    cl->tl = malloc(cl->m * sizeof *cl->tl);
    cl->leading = 1;
    cl->iter = 0;
    if (!cl->snap || !cl->items || !cl->act || !cl->tl) {
        for (size_t i = 0; i < cl->m; i++)
            if (cl->k[i].state == K_LEAD)
                key_fail(cl, &cl->k[i], SC_ERR_NOMEM);
        lead_end(cl);
        return;
    }
    for (size_t i = 0; i < cl->m; i++)
        cl->k[i].active = cl->k[i].state == K_LEAD;
}

/* A pass's start: the local tier first (eventual serves a hit, strong
 * confirms it), then the fetch_lock items of the keys left. 1: a read is
 * due (cl->items[0 .. na)), 0: the loop is over. */
static int lead_prepare(call *cl)
{
    sc_cache *c = cl->c;
    sc__fetch *f = c->fetch;
    int strong = c->opt.consistency == SC_STRONG;
    size_t na = 0;
    int synced = is_synced(c) && !(cl->iter == 0 && cl->local_checked);
    if (cl->iter > 0 && mono_ms() >= cl->deadline_ms) {
        /* Still waiting for another pod's lock, or (strong) our loads
         * were revoked again and again. */
        for (size_t i = 0; i < cl->m; i++)
            if (cl->k[i].active && cl->k[i].state != K_DONE) {
                fkey *k = &cl->k[i];
                k->waited = 1;
                key_done(k, SC_ERR_LOCKED, NULL);
                call_fail(cl, SC_ERR_LOCKED,
                          "%s: no result for \"%.*s\" within %llu ms (another pod's load lock still held, "
                          "or every load revoked by a write)",
                          cl->name, (int)(k->klen > 64 ? 64 : k->klen), k->key,
                          (unsigned long long)(mono_ms() - cl->t0_ns / 1000000u));
            }
        return 0;
    }
    for (size_t i = 0; i < cl->m; i++) {
        fkey *k = &cl->k[i];
        if (!k->active)
            continue;
        if (k->state == K_DONE) {
            k->active = 0;
            continue;
        }
        sc_value_release(k->local);
        k->local = NULL;
        k->local_empty = 0;
        k->have = 0;
        uint64_t nv;
        if (synced && sc__local_get(c->local, k->key, k->klen, k->hash, &k->local) == SC_OK) {
            if (!strong) {
                sc_value *v = k->local;
                k->local = NULL;
                key_done(k, SC_OK, v);
                k->active = 0;
                continue;
            }
            k->have = sc_value_version(k->local);
        } else if (synced && neg_get(c, k->key, k->klen, k->hash, &nv)) {
            if (!strong) {
                key_done(k, SC_NOT_FOUND, NULL);
                k->active = 0;
                continue;
            }
            k->local_empty = 1;
            k->have = nv;
        }
        cl->act[na++] = k;
    }
    cl->na = na;
    if (na == 0)
        return 0;

    snprintf(cl->token, sizeof cl->token, "%s-%llu", c->inst,
             (unsigned long long)(atomic_fetch_add(&f->tokens, 1) + 1));
    atomic_fetch_add(&f->waiters, 1);
    pthread_mutex_lock(&f->wake_mu);
    for (size_t i = 0; i < cl->m; i++)
        cl->snap[i] = f->gens[cl->k[i].hash % WAKE_BUCKETS];
    pthread_mutex_unlock(&f->wake_mu);
    for (size_t i = 0; i < na; i++) {
        cl->items[i].key = cl->act[i]->key;
        cl->items[i].klen = cl->act[i]->klen;
        cl->items[i].have_version = cl->act[i]->have;
        cl->act[i]->mark = sc__tracking_mark(c, cl->act[i]->hash);
    }
    bump_rt(cl);
    return 1;
}

/* The fetch_lock reads of n calls: one pipelined exchange per node (one
 * call: its own read, as an unpartitioned cache makes it). */
static void lock_all(call **cls, size_t n, sc__remote_fetch_call *rc)
{
    for (size_t j = 0; j < n; j++) {
        call *cl = cls[j];
        rc[j] = (sc__remote_fetch_call){.r = cl->c->remote,
                                        .lock = cl->items,
                                        .n = cl->na,
                                        .token = cl->token,
                                        .lock_ttl_ms = cl->c->opt.lock_ttl_ms,
                                        .serve_stale = cl->c->opt.consistency != SC_STRONG};
    }
    if (n == 1)
        rc[0].status = sc__remote_fetch_lock(rc[0].r, rc[0].lock, rc[0].n, rc[0].token, rc[0].lock_ttl_ms,
                                             rc[0].serve_stale, &rc[0].known, &rc[0].now_ms, rc[0].err,
                                             sizeof rc[0].err);
    else
        sc__remote_fetch_pipelined(rc, n);
}

/* The pass's fetch_lock answer, key by key: the keys it locked go to
 * cl->tl for the loader, the keys another pod locked wait. 0: the read
 * failed and the loop is over. */
static int lead_locked(call *cl, const sc__remote_fetch_call *rc)
{
    sc_cache *c = cl->c;
    sc__fetch *f = c->fetch;
    if (rc->status != SC_OK) {
        atomic_fetch_sub(&f->waiters, 1);
        sc__atomic_inc(&c->remote_errors);
        call_fail(cl, rc->status, "%s: %s", cl->name, rc->err);
        for (size_t i = 0; i < cl->na; i++)
            key_done(cl->act[i], rc->status, NULL);
        return 0;
    }
    uint64_t known = rc->known, rnow = rc->now_ms;
    sc__verified(c, known);
    sc__redis_clock_seen(c, rnow);
    /* The fallback poll: the holder's set event (live, or replayed from the
     * log after a gap) wakes a waiter at once; the poll covers a holder
     * whose loader failed (its unlock sends no event) and a pod whose
     * stream is down. A lapsing lock is never waited on past its end. */
    uint64_t poll = c->opt.lock_ttl_ms / 10;
    cl->wait_ms = poll < 5 ? 5 : poll > 250 ? 250 : poll;
    cl->ntl = cl->nwait = 0;
    for (size_t i = 0; i < cl->na; i++) {
        fkey *k = cl->act[i];
        k->it = cl->items[i];
        sc__fetch_item *it = &k->it;
        if (it->graced)
            note_graced(cl, k, it, known);
        switch (it->kind) {
        case SC__FETCH_CONFIRMED:
            sc__atomic_inc(&c->remote_hits);
            if (k->local_empty) {
                key_done(k, SC_NOT_FOUND, NULL);
            } else {
                sc_value *v = k->local;
                k->local = NULL;
                key_done(k, SC_OK, v);
            }
            break;
        case SC__FETCH_VALUE:
        case SC__FETCH_STALE: {
            sc__atomic_inc(&c->remote_hits);
            sc_value *v = sc__value_new_keyed(k->key, k->klen, it->data, it->len, it->version);
            free(it->data);
            it->data = NULL;
            if (!v) {
                key_fail(cl, k, SC_ERR_NOMEM);
                break;
            }
            if (it->kind == SC__FETCH_VALUE) {
                v = install_read(c, k, v, it->pttl_ms, known);
                if (it->grace_pttl_ms >= 0)
                    grace_put(c, k->key, k->klen, k->hash, v, known, it->pttl_ms, 0, (uint64_t)it->grace_pttl_ms);
                sc__tags_note(c, k->key, k->klen, k->hash, it->version, it->tags, it->tags_len);
            } else /* outdated: served, never kept */
                sc__local_remove(c->local, k->key, k->klen, k->hash, it->version, it->version);
            key_done(k, SC_OK, v);
            break;
        }
        case SC__FETCH_EMPTY:
            sc__atomic_inc(&c->remote_misses);
            /* Absent at `known`: no copy up to it may stay (as a get's miss). */
            sc__local_remove(c->local, k->key, k->klen, k->hash, known + 1, known);
            neg_put(c, k->key, k->klen, k->hash, it->version, known,
                    it->pttl_ms > 0 ? (uint64_t)it->pttl_ms : c->opt.empty_ttl_ms);
            key_done(k, SC_NOT_FOUND, NULL);
            break;
        case SC__FETCH_LOCKED:
            sc__atomic_inc(&c->remote_misses);
            cl->tl[cl->ntl++] = k;
            break;
        case SC__FETCH_WAIT: {
            cl->nwait++;
            uint64_t left = it->lock_until_ms > rnow ? it->lock_until_ms - rnow + 1 : 1;
            if (left < cl->wait_ms)
                cl->wait_ms = left;
            break;
        }
        }
        free(it->tags);
        it->tags = NULL;
        it->tags_len = 0;
    }
    if (cl->ntl && cl->fail != SC_OK) {
        /* The call already failed: give the locks back unused. */
        const char **rk = malloc(cl->ntl * sizeof *rk);
        size_t *rl = malloc(cl->ntl * sizeof *rl);
        char err[SC__ERRLEN];
        if (rk && rl) {
            for (size_t i = 0; i < cl->ntl; i++) {
                rk[i] = cl->tl[i]->key;
                rl[i] = cl->tl[i]->klen;
            }
            sc__remote_fetch_unlock(c->remote, rk, rl, cl->ntl, cl->token, err, sizeof err);
        }
        free(rk);
        free(rl);
        for (size_t i = 0; i < cl->ntl; i++)
            key_fail(cl, cl->tl[i], cl->fail);
        cl->ntl = 0;
    }
    return 1;
}

/* The waits of n calls for keys other pods are loading: until the first
 * wake or the shortest poll among them. Each partition wakes its own
 * waiters, so the wait blocks on the first waiting call's partition and
 * only looks at the others': a wake there is seen at the poll. */
static void wait_all(call **cls, size_t n)
{
    uint64_t until = UINT64_MAX;
    for (size_t j = 0; j < n; j++) {
        call *cl = cls[j];
        if (!cl->nwait || cl->fail != SC_OK)
            continue;
        if (mono_ms() >= cl->deadline_ms) {
            for (size_t i = 0; i < cl->na; i++) {
                fkey *k = cl->act[i];
                if (k->state != K_DONE && k->it.kind == SC__FETCH_WAIT) {
                    k->waited = 1;
                    key_done(k, SC_ERR_LOCKED, NULL);
                    call_fail(cl, SC_ERR_LOCKED, "%s: another pod still held the load lock of \"%.*s\" after %llu ms",
                              cl->name, (int)(k->klen > 64 ? 64 : k->klen), k->key,
                              (unsigned long long)(mono_ms() - cl->t0_ns / 1000000u));
                }
            }
            continue;
        }
        if (mono_ms() + cl->wait_ms < until)
            until = mono_ms() + cl->wait_ms;
    }
    int woken = 0;
    for (size_t j = 0; j < n; j++) {
        call *cl = cls[j];
        if (!cl->nwait || cl->fail != SC_OK)
            continue;
        uint64_t now = mono_ms();
        woken |= wait_wake(cl->c->fetch, cl, cl->snap, woken || until <= now ? 0 : until - now);
        for (size_t i = 0; i < cl->na; i++)
            if (cl->act[i]->it.kind == SC__FETCH_WAIT)
                cl->act[i]->waited = 1;
    }
}

/* A pass's end. 0: the call failed and the loop is over. */
static int lead_next(call *cl)
{
    atomic_fetch_sub(&cl->c->fetch->waiters, 1);
    if (cl->fail != SC_OK) {
        /* Settle what is left so followers are released. */
        for (size_t i = 0; i < cl->m; i++)
            if (cl->k[i].active && cl->k[i].state != K_DONE)
                key_fail(cl, &cl->k[i], cl->fail);
        return 0;
    }
    cl->iter++;
    return 1;
}

/* The leader loop of n calls, pass by pass, until each call's loop is over. */
static void lead(call **cls, size_t n)
{
    sc__remote_fetch_call *rc = malloc(n * sizeof *rc);
    call **on = malloc(n * sizeof *on), **who = malloc(n * sizeof *who);
    for (size_t j = 0; j < n; j++) {
        if (!rc || !on || !who) {
            for (size_t i = 0; i < cls[j]->m; i++)
                if (cls[j]->k[i].state == K_LEAD)
                    key_fail(cls[j], &cls[j]->k[i], SC_ERR_NOMEM);
        } else
            lead_start(cls[j]);
    }
    for (;;) {
        size_t non = 0;
        for (size_t j = 0; rc && on && who && j < n; j++) {
            if (!cls[j]->leading)
                continue;
            if (lead_prepare(cls[j]))
                on[non++] = cls[j];
            else
                lead_end(cls[j]);
        }
        if (!non)
            break;
        lock_all(on, non, rc);
        size_t still = 0;
        for (size_t j = 0; j < non; j++) {
            if (lead_locked(on[j], &rc[j]))
                on[still++] = on[j];
            else
                lead_end(on[j]);
        }
        non = still;
        /* The loaders run with the waiters counts still raised: harmless
         * (events only bump generations). */
        if (non && on[0]->load1) {
            for (size_t j = 0; j < non; j++)
                if (on[j]->ntl)
                    load_one(on[j]);
        } else if (non)
            load_batch(on, non);
        store_all(on, non, rc, who);
        wait_all(on, non);
        for (size_t j = 0; j < non; j++)
            if (!lead_next(on[j]))
                lead_end(on[j]);
    }
    free(rc);
    free(on);
    free(who);
}

/* Runs n calls (each over cl->m unique keys, each on its own cache) in
 * lockstep; every key ends K_DONE. */
static void run_all(call **cls, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        call *cl = cls[j];
        sc_cache *c = cl->c;
        /* Eventual: the local tier answers without any flight or Redis. */
        if (cl->local_checked || c->opt.consistency != SC_EVENTUAL || !is_synced(c))
            continue;
        cl->local_checked = 1;
        for (size_t i = 0; i < cl->m; i++) {
            fkey *k = &cl->k[i];
            sc_value *v;
            uint64_t nv;
            if (sc__local_get(c->local, k->key, k->klen, k->hash, &v) == SC_OK)
                key_done(k, SC_OK, v);
            else if (neg_get(c, k->key, k->klen, k->hash, &nv))
                key_done(k, SC_NOT_FOUND, NULL);
        }
    }
    call **busy = malloc((n ? n : 1) * sizeof *busy), *one[1];
    for (int round = 0;; round++) {
        size_t nb = 0;
        for (size_t j = 0; j < n; j++) {
            call *cl = cls[j];
            size_t pending = 0;
            for (size_t i = 0; i < cl->m; i++)
                pending += cl->k[i].state == K_PENDING;
            if (!pending)
                continue;
            if (round > 0 && mono_ms() >= cl->deadline_ms) {
                for (size_t i = 0; i < cl->m; i++)
                    if (cl->k[i].state == K_PENDING) {
                        key_done(&cl->k[i], SC_ERR_LOCKED, NULL);
                        call_fail(cl, SC_ERR_LOCKED, "%s: no current result within the wait", cl->name);
                    }
                continue;
            }
            join_flights(cl);
            if (cl->fail != SC_OK) {
                for (size_t i = 0; i < cl->m; i++)
                    if (cl->k[i].state == K_LEAD)
                        key_fail(cl, &cl->k[i], cl->fail);
            } else if (busy)
                busy[nb++] = cl;
            else {
                one[0] = cl; /* out of memory for the list: one call at a time */
                lead(one, 1);
            }
            cl->in_round = 1;
        }
        if (nb)
            lead(busy, nb);
        int any = 0;
        for (size_t j = 0; j < n; j++) {
            if (!cls[j]->in_round)
                continue;
            cls[j]->in_round = 0;
            any = 1;
            finish_flights(cls[j]);
            follow_flights(cls[j]);
        }
        if (!any)
            break;
    }
    free(busy);
}

static void run(call *cl)
{
    run_all(&cl, 1);
}

/* Counts each key's outcome. */
static void count(call *cl)
{
    uint64_t ns = sc__mono_ns() - cl->t0_ns;
    for (size_t i = 0; i < cl->m; i++)
        sc__load_stats_add(cl->c->fetch->stats, cl->k[i].outcome, cl->k[i].outcome == SC__LOAD_ERROR ? 0 : ns);
}

static void call_init(call *cl, sc_cache *c, const char *name, uint64_t ttl_ms)
{
    memset(cl, 0, sizeof *cl);
    cl->c = c;
    cl->name = name;
    cl->ttl = ttl_ms ? ttl_ms : c->opt.default_ttl_ms;
    cl->t0_ns = sc__mono_ns();
    cl->deadline_ms = cl->t0_ns / 1000000u + 2 * c->opt.lock_ttl_ms + 2 * (uint64_t)c->opt.redis_timeout_ms;
    cl->grace = c->opt.grace_ms;
}

static void call_free_slots(call *cl)
{
    for (size_t i = 0; i < cl->m; i++) {
        free(cl->k[i].slot.data);
        cl->k[i].slot.data = NULL;
        sc_value_release(cl->k[i].graced);
        cl->k[i].graced = NULL;
    }
}

/* ------------------------------------------------------------ public -- */

SC_EXPORT void sc_loaded_set(sc_loaded *slot, const void *val, size_t len)
{
    if (!slot)
        return;
    free(slot->data);
    slot->data = NULL;
    slot->len = 0;
    slot->set = 0;
    slot->refused_len = 0;
    slot->nomem = 0;
    if (len > slot->max || (!val && len)) {
        slot->refused_len = len ? len : 1;
        return;
    }
    slot->data = malloc(len ? len : 1);
    if (!slot->data) {
        slot->nomem = 1;
        return;
    }
    if (len)
        memcpy(slot->data, val, len);
    slot->len = len;
    slot->set = 1;
}

SC_EXPORT void sc_loaded_error(sc_loaded *slot, const char *fmt, ...)
{
    if (!slot || !fmt)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot->msg, sizeof slot->msg, fmt, ap);
    va_end(ap);
}

static sc_status check_call(sc_cache *c, int has_loader, const char *name)
{
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "%s: cache is NULL", name);
    if (!has_loader)
        return sc__fail(c, SC_ERR_INVALID, "%s: loader is NULL", name);
    if (!writes_redis(c))
        return sc__fail(c, SC_ERR_INVALID,
                        "%s: this pod does not write Redis (role reader without reader_can_set_to_redis)", name);
    return SC_OK;
}

SC_EXPORT void sc_fetch_opts_init(sc_fetch_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->grace_ms = UINT64_MAX;
}

/* The stale-if-error answer of a failed fetch: the graced value the call
 * read, a local copy (Redis could not be read while the pod is unsynced),
 * or the grace table's, at most cl->grace past its TTL. Without a grace, a
 * local copy is still served when Redis cannot be read, under the rule
 * sc_get follows (the disconnect policy is not flush and the last proof of
 * sync is at most stale_max_ms old). *age: how long past its TTL the value
 * is (a local copy: 0 with grace, else the sync age). */
static int serve_graced(call *cl, fkey *k, sc_status st, sc_value **out, uint64_t *age)
{
    sc_cache *c = cl->c;
    int redis_away = (st == SC_ERR_REMOTE || st == SC_ERR_TIMEOUT) && !cl->left_running && !is_synced(c);
    if (!cl->grace) {
        if (!redis_away || c->opt.disconnect_policy == SC_DISCONNECT_FLUSH)
            return 0;
        uint64_t proof = atomic_load_explicit(&c->proof_ms, memory_order_relaxed), now = sc__now_ms();
        *age = now > proof ? now - proof : 0;
        return *age <= c->opt.stale_max_ms && sc__local_peek(c->local, k->key, k->klen, k->hash, out) == SC_OK;
    }
    uint64_t now = sc__now_ms();
    if (k->graced && now < k->graced_until && now < k->graced_fresh_end + cl->grace &&
        k->graced->version >= sc__local_floor(c->local, k->hash)) {
        *out = sc__value_ref(k->graced);
        *age = now > k->graced_fresh_end ? now - k->graced_fresh_end : 0;
        return 1;
    }
    if (redis_away && sc__local_peek(c->local, k->key, k->klen, k->hash, out) == SC_OK) {
        *age = 0;
        return 1;
    }
    return grace_get(c, k->key, k->klen, k->hash, cl->grace, out, age);
}

SC_EXPORT sc_status sc_fetch_ex(sc_cache *c, const char *key, const sc_fetch_opts *o, sc_load_fn load, void *ud,
                                sc_value **out, sc_get_info *info)
{
    c = sc__route(c, key);
    if (out)
        *out = NULL;
    if (info)
        memset(info, 0, sizeof *info);
    sc_status s = check_call(c, load != NULL, "sc_fetch");
    if (s != SC_OK)
        return s;
    size_t klen = 0;
    if ((s = check_key(c, key, &klen, "sc_fetch")) != SC_OK)
        return s;
    if (!out)
        return sc__fail(c, SC_ERR_INVALID, "sc_fetch: out is NULL");
    sc_fetch_opts def;
    if (!o) {
        sc_fetch_opts_init(&def);
        o = &def;
    }
    if (o->grace_ms != UINT64_MAX && o->grace_ms > (UINT64_C(1) << 40))
        return sc__fail(c, SC_ERR_INVALID, "sc_fetch_ex: grace_ms %llu is over 2^40",
                        (unsigned long long)o->grace_ms);
    if (o->ttl_ms > (UINT64_C(1) << 53))
        return sc__fail(c, SC_ERR_INVALID, "sc_fetch_ex: ttl_ms is over 2^53");
    char *tags = NULL;
    size_t tags_len = 0;
    if ((s = sc__tags_join(c, o->tags, o->ntags, &tags, &tags_len, "sc_fetch_ex")) != SC_OK)
        return s;
    uint64_t hash = sc__local_hash(key, klen);
    int checked = 0;
    if (c->opt.consistency == SC_EVENTUAL && is_synced(c)) {
        /* The hit path: the local tier (or a cached "not found") answers,
         * nothing else is set up. */
        uint64_t t0 = sc__mono_ns(), nv;
        sc_status hit = sc__local_get(c->local, key, klen, hash, out) == SC_OK ? SC_OK
                        : neg_get(c, key, klen, hash, &nv)                    ? SC_NOT_FOUND
                                                                               : SC_ERR_INVALID;
        if (hit != SC_ERR_INVALID) {
            sc__load_stats_add(c->fetch->stats, SC__LOAD_HIT, sc__mono_ns() - t0);
            free(tags);
            return hit;
        }
        checked = 1;
    }
    call cl;
    call_init(&cl, c, "sc_fetch", o->ttl_ms);
    cl.local_checked = checked;
    if (o->grace_ms != UINT64_MAX)
        cl.grace = o->grace_ms;
    cl.soft = o->soft_timeout_ms;
    cl.hard = o->hard_timeout_ms;
    cl.tags = tags;
    cl.tags_len = tags_len;
    if (cl.hard) {
        uint64_t hard_end = cl.t0_ns / 1000000u + cl.hard;
        if (hard_end < cl.deadline_ms)
            cl.deadline_ms = hard_end;
    }
    if (cl.soft && cl.grace) {
        /* A graced value already at hand bounds every wait by the soft
         * timeout (one read later does the same: note_graced). */
        sc_value *g = NULL;
        uint64_t past;
        if (grace_get(c, key, klen, hash, cl.grace, &g, &past)) {
            uint64_t soft_end = cl.t0_ns / 1000000u + cl.soft;
            if (soft_end < cl.deadline_ms)
                cl.deadline_ms = soft_end;
        }
        sc_value_release(g);
    }
    fkey k;
    memset(&k, 0, sizeof k);
    k.key = key;
    k.klen = klen;
    k.hash = hash;
    cl.k = &k;
    cl.m = 1;
    cl.load1 = load;
    cl.ud = ud;
    run(&cl);
    sc_status st = k.st;
    int stale = 0;
    uint64_t past = 0;
    if (st != SC_OK && st != SC_NOT_FOUND &&
        (st == SC_ERR_LOADER || st == SC_ERR_REMOTE || st == SC_ERR_TIMEOUT || st == SC_ERR_LOCKED)) {
        sc_value *g = NULL;
        if (serve_graced(&cl, &k, st, &g, &past)) {
            sc_value_release(k.val);
            k.val = g;
            k.st = st = SC_OK;
            k.outcome = SC__LOAD_MISS;
            stale = 1;
            sc__atomic_inc(&c->stale_served);
        } else if (cl.hard && mono_ms() >= cl.t0_ns / 1000000u + cl.hard &&
                   (st == SC_ERR_LOCKED || st == SC_ERR_TIMEOUT)) {
            st = SC_ERR_TIMEOUT;
            cl.fail = SC_OK;
            call_fail(&cl, SC_ERR_TIMEOUT, "sc_fetch_ex: no answer for \"%.*s\" within the hard timeout (%u ms)%s",
                      (int)(klen > 64 ? 64 : klen), key, cl.hard,
                      cl.left_running ? "; the loader still runs and stores its result when it returns" : "");
        }
    }
    count(&cl);
    call_free_slots(&cl);
    free(tags);
    if (st == SC_OK || st == SC_NOT_FOUND) {
        *out = k.val;
        if (info) {
            info->source = stale || k.outcome == SC__LOAD_HIT ? SC_SOURCE_LOCAL : SC_SOURCE_REMOTE;
            info->stale = stale;
            info->sync_age_ms = stale ? past : 0;
        }
        return st;
    }
    sc_value_release(k.val);
    return sc__fail(c, cl.fail != SC_OK ? cl.fail : st, "%s", cl.err[0] ? cl.err : sc_strerror(st));
}

SC_EXPORT sc_status sc_fetch(sc_cache *c, const char *key, uint64_t ttl_ms, sc_load_fn load, void *ud,
                             sc_value **out)
{
    sc_fetch_opts o;
    sc_fetch_opts_init(&o);
    o.ttl_ms = ttl_ms;
    return sc_fetch_ex(c, key, &o, load, ud, out, NULL);
}

/* A sc_fetch_batch call on one (unpartitioned) cache: its unique keys
 * (idx[i]: the unique key of keys[i]) and its call. */
typedef struct batch {
    call cl;
    fkey *ks;
    size_t *idx;
    size_t n;
} batch;

static sc_status batch_open(sc_cache *c, const char *const *keys, size_t n, uint64_t ttl_ms, sc_load_batch_fn load,
                            void *ud, batch *b)
{
    memset(b, 0, sizeof *b);
    /* Unique keys (an open-addressing map over the input), so a duplicate
     * is loaded once and both slots get the value. */
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    size_t *map = malloc(cap * sizeof *map);
    size_t *idx = malloc(n * sizeof *idx);
    fkey *ks = calloc(n, sizeof *ks);
    if (!map || !idx || !ks) {
        free(map);
        free(idx);
        free(ks);
        return sc__fail(c, SC_ERR_NOMEM, "sc_fetch_batch: out of memory");
    }
    for (size_t i = 0; i < cap; i++)
        map[i] = SIZE_MAX;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(keys[i]);
        uint64_t h = sc__local_hash(keys[i], kl);
        size_t p = (size_t)(h & (cap - 1));
        while (map[p] != SIZE_MAX && !(ks[map[p]].hash == h && ks[map[p]].klen == kl &&
                                       memcmp(ks[map[p]].key, keys[i], kl) == 0))
            p = (p + 1) & (cap - 1);
        if (map[p] == SIZE_MAX) {
            map[p] = m;
            ks[m].key = keys[i];
            ks[m].klen = kl;
            ks[m].hash = h;
            m++;
        }
        idx[i] = map[p];
    }
    free(map);
    call_init(&b->cl, c, "sc_fetch_batch", ttl_ms);
    b->cl.k = ks;
    b->cl.m = m;
    b->cl.loadn = load;
    b->cl.ud = ud;
    b->ks = ks;
    b->idx = idx;
    b->n = n;
    return SC_OK;
}

/* Counts the outcomes of a call that ran, hands its answers out (on
 * success) and frees it: the call's status. */
static sc_status batch_close(batch *b, sc_value **out, int ran)
{
    call *cl = &b->cl;
    if (ran)
        count(cl);
    call_free_slots(cl);
    sc_status res = ran ? cl->fail : SC_ERR_INVALID;
    for (size_t i = 0; i < cl->m && res == SC_OK; i++)
        if (b->ks[i].st != SC_OK && b->ks[i].st != SC_NOT_FOUND)
            res = b->ks[i].st;
    if (res == SC_OK)
        for (size_t i = 0; i < b->n; i++)
            out[i] = b->ks[b->idx[i]].val ? sc__value_ref(b->ks[b->idx[i]].val) : NULL;
    for (size_t i = 0; i < cl->m; i++)
        sc_value_release(b->ks[i].val);
    free(b->ks);
    free(b->idx);
    b->ks = NULL;
    if (ran && res != SC_OK)
        return sc__fail(cl->c, res, "%s", cl->err[0] ? cl->err : sc_strerror(res));
    return res;
}

SC_EXPORT sc_status sc_fetch_batch(sc_cache *c, const char *const *keys, size_t n, uint64_t ttl_ms,
                                   sc_load_batch_fn load, void *ud, sc_value **out)
{
    if (out && n <= SC_FETCH_BATCH_MAX)
        memset(out, 0, n * sizeof *out);
    sc_status s = check_call(c, load != NULL, "sc_fetch_batch");
    if (s != SC_OK)
        return s;
    if (n > SC_FETCH_BATCH_MAX)
        return sc__fail(c, SC_ERR_INVALID, "sc_fetch_batch: %zu keys, more than SC_FETCH_BATCH_MAX (%d)", n,
                        SC_FETCH_BATCH_MAX);
    if (n == 0)
        return SC_OK;
    if (!keys || !out)
        return sc__fail(c, SC_ERR_INVALID, "sc_fetch_batch: keys or out is NULL");
    for (size_t i = 0; i < n; i++) {
        size_t kl;
        if ((s = check_key(c, keys[i], &kl, "sc_fetch_batch")) != SC_OK)
            return s;
    }
    if (c->part)
        return sc__parts_fetch_batch(c, keys, n, ttl_ms, load, ud, out);
    batch b;
    if ((s = batch_open(c, keys, n, ttl_ms, load, ud, &b)) != SC_OK)
        return s;
    call *cl = &b.cl;
    run_all(&cl, 1);
    return batch_close(&b, out, 1);
}

sc_status sc__fetch_batch_split(sc_cache *const *part, unsigned nparts, const char *const *keys, const size_t *start,
                                uint64_t ttl_ms, sc_load_batch_fn load, void *ud, sc_value **out, unsigned *at)
{
    batch *b = calloc(nparts, sizeof *b);
    call **cls = calloc(nparts, sizeof *cls);
    *at = 0;
    if (!b || !cls) {
        free(b);
        free(cls);
        return sc__fail(part[0], SC_ERR_NOMEM, "sc_fetch_batch: out of memory");
    }
    sc_status s = SC_OK;
    size_t nc = 0;
    for (unsigned p = 0; p < nparts && s == SC_OK; p++) {
        size_t m = start[p + 1] - start[p];
        if (!m)
            continue;
        s = batch_open(part[p], keys + start[p], m, ttl_ms, load, ud, &b[p]);
        if (s != SC_OK)
            *at = p;
        else
            cls[nc++] = &b[p].cl;
    }
    if (s == SC_OK)
        run_all(cls, nc);
    /* Every call closes (frees what it holds); the first failure is the one
     * reported. */
    sc_status res = s;
    char first[SC__ERRLEN] = "";
    for (unsigned p = 0; p < nparts; p++) {
        if (!b[p].ks)
            continue;
        sc_status r = batch_close(&b[p], out + start[p], s == SC_OK);
        if (r != SC_OK && res == SC_OK) {
            res = r;
            *at = p;
            snprintf(first, sizeof first, "%s", sc_errmsg(part[p]));
        }
    }
    if (res != SC_OK && s == SC_OK)
        sc__fail(part[*at], res, "%s", first);
    free(b);
    free(cls);
    return res;
}

SC_EXPORT sc_status sc_tag_deleted(sc_cache *c, const char *key)
{
    if (!c)
        return sc__fail(c, SC_ERR_INVALID, "sc_tag_deleted: cache is NULL");
    c = sc__route(c, key);
    size_t klen = 0;
    sc_status s = check_key(c, key, &klen, "sc_tag_deleted");
    if (s != SC_OK)
        return s;
    if (!writes_redis(c))
        return sc__fail(c, SC_ERR_INVALID, "sc_tag_deleted: this pod does not write Redis");
    uint64_t hash = sc__local_hash(key, klen);
    sc__load_stats_add(c->fetch->stats, SC__LOAD_MANUAL, 0);
    /* Stop serving the key at once; the floor follows with the version. */
    sc__local_remove(c->local, key, klen, hash, UINT64_MAX, 0);
    sc__remote_event ev;
    s = sc__own_event(c, SC__ACT_INVALIDATE, key, klen, NULL, 0, 0, &ev);
    if (s != SC_OK)
        return sc__fail(c, s, "sc_tag_deleted: cannot encode the event: %s", sc_strerror(s));
    sc__remote_result res;
    char err[SC__ERRLEN];
    s = sc__remote_tag(c->remote, key, klen, c->opt.tag_delete_delay_ms, c->opt.tombstone_ttl_ms, &ev, &res, err,
                       sizeof err);
    free((char *)ev.buf);
    if (s != SC_OK) {
        sc__atomic_inc(&c->remote_errors);
        return sc__fail(c, s, "sc_tag_deleted: %s", err);
    }
    sc__wrote(c, &res, "sc_tag_deleted");
    sc__local_remove(c->local, key, klen, hash, res.version, res.version);
    sc__fetch_event(c, key, klen);
    return SC_OK;
}

SC_EXPORT void sc_load_stats_get(sc_cache *c, sc_window w, sc_load_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (c && c->part) {
        sc__parts_load_stats(c, w, out);
        return;
    }
    if (!c || !c->fetch)
        return;
    sc__load_stats_read(c->fetch->stats, w, out);
}
