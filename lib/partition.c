/* Partitioned namespaces (option partitions = P > 1; docs/protocol.md,
 * "Partitions").
 *
 * A partitioned cache is a router over P complete caches, one per
 * partition, each exactly an unpartitioned cache of the namespace
 * "<ns>#<p>" (its own counter, epoch, log, channel, write-behind queue, tags
 * and local tier). Versions of two partitions come from two counters and
 * are not comparable, so no rule may mix them; keeping every rule inside
 * one partition's cache keeps each exact as it stands. The router only
 * picks the partition of a key (a hash every pod computes alike), fans the
 * calls that are not keyed out to every partition, splits batches by
 * partition and adds the statistics up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"

/* FNV-1a 32 of the key's bytes, modulo the count. The key is read up to
 * max_key_bytes + 1 bytes: a longer one is refused by its partition. */
unsigned sc__partition_of(const char *key, size_t max_key_bytes, unsigned nparts)
{
    uint32_t h = 2166136261u;
    if (key)
        for (size_t i = 0; key[i] && i <= max_key_bytes; i++) {
            h ^= (unsigned char)key[i];
            h *= 16777619u;
        }
    return h % nparts;
}

/* A partition's share of a bound: the bound over the count, rounded up (0,
 * no bound, stays 0). */
static size_t share(size_t total, unsigned nparts)
{
    return total ? (total + nparts - 1) / nparts : 0;
}

/* Partition p's share of a local bound: the bound over the count, the
 * first total % nparts partitions one more, so the shares add up to the
 * bound (rounding every share up kept up to nparts - 1 more than it). At
 * least 1, since 0 means no bound: a bound below the count keeps one per
 * partition. 0 (no bound) stays 0. */
static size_t bound_share(size_t total, unsigned nparts, unsigned p)
{
    if (!total)
        return 0;
    size_t n = total / nparts + (p < total % nparts);
    return n ? n : 1;
}

void sc__parts_free(sc_cache *c)
{
    /* Every saver stops at once: closed one after another, P hung save_fn
     * calls would each be waited for writeback_claim_ms in turn. */
    for (unsigned p = 0; c->part && p < c->nparts; p++)
        if (c->part[p]) {
            sc__fetch_stop_begin(c->part[p]);
            sc__behind_stop_begin(c->part[p]);
        }
    for (unsigned p = 0; c->part && p < c->nparts; p++)
        sc_close(c->part[p]);
    sc__load_stats_free(c->part_stats);
    free(c->part);
    free(c->strings);
    free(c);
}

sc_status sc__parts_open(const sc_options *o, sc_cache **out)
{
    char err[SC__ERRLEN];
    sc_cache *c = calloc(1, sizeof *c);
    if (!c)
        return sc__fail(NULL, SC_ERR_NOMEM, "sc_open: out of memory");
    c->nparts = o->partitions;
    c->part = calloc(c->nparts, sizeof *c->part);
    c->routed = 1;
    if (!c->part || sc__options_copy(c, o) != SC_OK ||
        !(c->part_stats = sc__load_stats_new(c->opt.stats_window_ms))) {
        sc__parts_free(c);
        return sc__fail(NULL, SC_ERR_NOMEM, "sc_open: out of memory");
    }
    /* The count in {ns}:meta too, so that a pod with partitions = 1 (which
     * reads only {ns}) and one with another count both see it. */
    sc_status s = sc__partitions_agree(&c->opt, NULL, err, sizeof err);
    if (s != SC_OK) {
        sc__parts_free(c);
        return sc__fail(NULL, s, "sc_open: %s", err);
    }
    /* Every partition shares the pod id (generated once, above) and the
     * hooks; the bounds are split so the pod as a whole keeps the user's:
     * keys spread evenly over the partitions by hash. */
    sc_options po = c->opt;
    char ns[300];
    po.ns = ns;
    po.channel = NULL;
    po.redis_pool_size = (unsigned)share(o->redis_pool_size, c->nparts);
    for (unsigned p = 0; p < c->nparts; p++) {
        snprintf(ns, sizeof ns, "%s#%u", c->opt.ns, p);
        po.local_max_entries = bound_share(o->local_max_entries, c->nparts, p);
        po.local_max_bytes = bound_share(o->local_max_bytes, c->nparts, p);
        s = sc__cache_open(&po, c, &c->part[p]);
        if (s != SC_OK) {
            snprintf(err, sizeof err, "%s", sc_errmsg(NULL));
            sc__parts_free(c);
            return sc__fail(NULL, s, "%s (partition %u of %u)", err, p, o->partitions);
        }
    }
    sc__warn_eviction_policy(c->part[0]);
    *out = c;
    return SC_OK;
}

/* Runs fn on every partition; the first failure is returned, with its
 * message naming the partition. The others still run: a clear or a tag
 * invalidation reaches every partition it can. */
typedef sc_status (*each_fn)(sc_cache *part, void *arg);

static sc_status each(sc_cache *c, each_fn fn, void *arg)
{
    sc_status first = SC_OK;
    unsigned at = 0;
    char msg[SC__ERRLEN] = "";
    for (unsigned p = 0; p < c->nparts; p++) {
        sc_status s = fn(c->part[p], arg);
        if (s != SC_OK && first == SC_OK) {
            first = s;
            at = p;
            snprintf(msg, sizeof msg, "%s", sc_errmsg(c));
        }
    }
    if (first != SC_OK)
        return sc__fail(c, first, "%s (partition %u of %u)", msg, at, c->nparts);
    return SC_OK;
}

static sc_status clear_one(sc_cache *part, void *arg)
{
    (void)arg;
    return sc_clear(part);
}

sc_status sc__parts_clear(sc_cache *c)
{
    return each(c, clear_one, NULL);
}

static sc_status invalidate_one(sc_cache *part, void *arg)
{
    return sc_invalidate_tag(part, arg);
}

sc_status sc__parts_invalidate_tag(sc_cache *c, const char *tag)
{
    return each(c, invalidate_one, (void *)tag);
}

static sc_status flush_one(sc_cache *part, void *arg)
{
    uint64_t now = sc__mono_ns() / 1000000u, deadline = *(uint64_t *)arg;
    return sc_flush_behind(part, deadline > now ? (unsigned)(deadline - now) : 0);
}

sc_status sc__parts_flush_behind(sc_cache *c, unsigned timeout_ms)
{
    /* One deadline for the whole call: each partition gets what is left. */
    uint64_t deadline = sc__mono_ns() / 1000000u + timeout_ms;
    return each(c, flush_one, &deadline);
}

/* The keys of a batch call sorted by partition (a counting sort): sub holds
 * them partition by partition, in their order; partition p's run is
 * sub[start[p] .. start[p + 1]) and order[j] is the caller's index of
 * sub[j]. */
typedef struct split {
    size_t *start;
    size_t *order;
    const char **sub;
    sc_value **got; /* the answers, in sub's order */
} split;

static void split_free(split *sp)
{
    free(sp->start);
    free(sp->order);
    free(sp->sub);
    free(sp->got);
}

static sc_status split_keys(sc_cache *c, const char *const *keys, size_t n, split *sp, const char *call)
{
    sp->start = calloc(c->nparts + 1, sizeof *sp->start);
    sp->order = malloc(n * sizeof *sp->order);
    sp->sub = malloc(n * sizeof *sp->sub);
    sp->got = calloc(n, sizeof *sp->got);
    unsigned *of = malloc(n * sizeof *of);
    if (!sp->start || !sp->order || !sp->sub || !sp->got || !of) {
        free(of);
        split_free(sp);
        return sc__fail(c, SC_ERR_NOMEM, "%s: out of memory", call);
    }
    size_t *start = sp->start;
    for (size_t i = 0; i < n; i++) {
        of[i] = sc__partition_of(keys[i], c->opt.max_key_bytes, c->nparts);
        start[of[i] + 1]++;
    }
    for (unsigned p = 0; p < c->nparts; p++)
        start[p + 1] += start[p];
    /* Filling moves start[p] up to the end of p's run (the old start[p +
     * 1]); shifted back by one partition afterwards. */
    for (size_t i = 0; i < n; i++) {
        size_t at = start[of[i]]++;
        sp->order[at] = i;
        sp->sub[at] = keys[i];
    }
    for (unsigned p = c->nparts; p > 0; p--)
        start[p] = start[p - 1];
    start[0] = 0;
    free(of);
    return SC_OK;
}

/* The answers back to the caller's slots on success; else released. */
static void split_deliver(split *sp, size_t n, sc_status s, sc_value **out)
{
    for (size_t j = 0; j < n; j++) {
        if (s == SC_OK)
            out[sp->order[j]] = sp->got[j];
        else
            sc_value_release(sp->got[j]);
    }
}

/* Names the partition in the message of a failure. */
static sc_status part_fail(sc_cache *c, sc_status s, unsigned p)
{
    char msg[SC__ERRLEN];
    snprintf(msg, sizeof msg, "%s", sc_errmsg(c));
    return sc__fail(c, s, "%s (partition %u of %u)", msg, p, c->nparts);
}

/* Every partition's local lookups first, then one Redis read per node for
 * all their misses (sc__remote_get_many_pipelined: the partitions a node
 * serves go out together on one connection), then each partition installs
 * its own answers by its own rules (its counter, floors, hooks, metrics),
 * exactly as sc_get_many on that partition alone would. */
sc_status sc__parts_get_many(sc_cache *c, const char *const *keys, size_t n, sc_value **out)
{
    split sp;
    sc_status s = split_keys(c, keys, n, &sp, "sc_get_many");
    if (s != SC_OK)
        return s;
    sc__get_many *job = calloc(c->nparts, sizeof *job);
    sc__remote_get_many_call *calls = calloc(c->nparts, sizeof *calls);
    sc__remote_get_many_call *reads = calloc(c->nparts, sizeof *reads);
    unsigned *read_of = calloc(c->nparts, sizeof *read_of);
    unsigned nreads = 0;
    if (!job || !calls || !reads || !read_of) {
        s = sc__fail(c, SC_ERR_NOMEM, "sc_get_many: out of memory");
        goto out;
    }
    for (unsigned p = 0; p < c->nparts && s == SC_OK; p++) {
        size_t begin = sp.start[p], m = sp.start[p + 1] - begin;
        if (m == 0)
            continue;
        s = sc__get_many_begin(c->part[p], sp.sub + begin, m, sp.got + begin, &calls[p], &job[p]);
        if (s != SC_OK)
            s = part_fail(c, s, p);
        else if (calls[p].n)
            read_of[nreads++] = p;
    }
    if (s != SC_OK) {
        /* A job not begun (or failed) is all zeros: freeing it is a no-op. */
        for (unsigned p = 0; p < c->nparts; p++)
            sc__get_many_free(&job[p]);
        goto out;
    }
    /* The pipelined call wants the reads side by side; they go back after. */
    for (unsigned i = 0; i < nreads; i++)
        reads[i] = calls[read_of[i]];
    sc__remote_get_many_pipelined(reads, nreads);
    for (unsigned i = 0; i < nreads; i++)
        calls[read_of[i]] = reads[i];
    /* Every partition finishes (frees what it holds); the first failure is
     * the one reported. */
    char first[SC__ERRLEN];
    for (unsigned p = 0; p < c->nparts; p++) {
        if (sp.start[p + 1] == sp.start[p])
            continue;
        sc_status r = sc__get_many_finish(&job[p]);
        if (r != SC_OK && s == SC_OK) {
            s = part_fail(c, r, p);
            snprintf(first, sizeof first, "%s", sc_errmsg(c));
        }
    }
    if (s != SC_OK)
        sc__fail(c, s, "%s", first);
out:
    split_deliver(&sp, n, s, out);
    split_free(&sp);
    free(job);
    free(calls);
    free(reads);
    free(read_of);
    return s;
}

/* One sc_fetch_batch call per partition with keys, run in lockstep by
 * sc__fetch_batch_split: each Redis phase is one pipelined exchange per
 * node and the loader is called once per pass with every partition's keys;
 * each partition settles its own keys by its own rules. */
sc_status sc__parts_fetch_batch(sc_cache *c, const char *const *keys, size_t n, uint64_t ttl_ms, sc_load_batch_fn load,
                                void *ud, sc_value **out)
{
    split sp;
    sc_status s = split_keys(c, keys, n, &sp, "sc_fetch_batch");
    if (s != SC_OK)
        return s;
    unsigned at;
    s = sc__fetch_batch_split(c->part, c->nparts, sp.sub, sp.start, ttl_ms, load, ud, sp.got, &at);
    if (s != SC_OK)
        s = part_fail(c, s, at);
    split_deliver(&sp, n, s, out);
    split_free(&sp);
    return s;
}

/* Counters and sizes add up; synced (and tracking_active) holds when every
 * partition's does;
 * the age of the oldest unsaved write is the highest. last_seq adds up too:
 * a partition's never exceeds its counter, so the sum equals the sum of the
 * partitions' counters exactly when every partition applied everything
 * (and the difference is how many events are still to apply). */
_Static_assert(sizeof(sc_stats) % sizeof(uint64_t) == 0, "sc_stats holds uint64_t fields only");
#define STATS_FIELDS (sizeof(sc_stats) / sizeof(uint64_t))

void sc__parts_stats(sc_cache *c, sc_stats *out)
{
    uint64_t sum[STATS_FIELDS] = {0}, one[STATS_FIELDS];
    uint64_t synced = 1, oldest = 0, tracking = 1;
    for (unsigned p = 0; p < c->nparts; p++) {
        sc_stats st;
        sc_stats_get(c->part[p], &st);
        memcpy(one, &st, sizeof st);
        for (size_t i = 0; i < STATS_FIELDS; i++)
            sum[i] += one[i];
        synced &= st.synced;
        tracking &= st.tracking_active;
        oldest = st.behind_oldest_ms > oldest ? st.behind_oldest_ms : oldest;
    }
    memcpy(out, sum, sizeof *out);
    out->synced = synced;
    out->tracking_active = tracking;
    out->behind_oldest_ms = oldest;
}

void sc__parts_hist(const sc_cache *c, size_t offset, sc__hist *sum)
{
    for (size_t i = 0; i <= SC__HIST_BOUNDS; i++)
        atomic_init(&sum->bucket[i], 0);
    atomic_init(&sum->sum_ns, 0);
    for (unsigned p = 0; p < c->nparts; p++) {
        const sc__hist *h = (const sc__hist *)((const char *)c->part[p] + offset);
        for (size_t i = 0; i <= SC__HIST_BOUNDS; i++)
            atomic_fetch_add_explicit(&sum->bucket[i], atomic_load_explicit(&h->bucket[i], memory_order_relaxed),
                                      memory_order_relaxed);
        atomic_fetch_add_explicit(&sum->sum_ns, atomic_load_explicit(&h->sum_ns, memory_order_relaxed),
                                  memory_order_relaxed);
    }
}
