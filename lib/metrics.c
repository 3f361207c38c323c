/* Metrics: the fixed-bucket histograms the data paths feed, and
 * sc_metrics_text, which prints them with every field of sc_stats in the
 * Prometheus text exposition format 0.0.4.
 *
 * A histogram is an array of atomic counters, one per bucket, and the sum of
 * every observation in nanoseconds: observing is two relaxed adds and no
 * lock, so it can sit on the get and set paths. The printer turns the
 * per-bucket counts into Prometheus' cumulative ones and takes _count as their
 * total, so a scrape is always self-consistent (cumulative buckets never
 * decrease, and the +Inf bucket equals _count) even while observations land.
 *
 * The text is written like snprintf: a small writer keeps counting past the
 * end of the buffer, so one call with cap 0 measures and a second one fills.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/internal.h"

/* Upper bounds in nanoseconds, and the same bounds as Prometheus `le`
 * labels (written out, so no float formatting can make "0.001" read as
 * "0.0010000000000000002"). */
static const uint64_t hist_bound_ns[SC__HIST_BOUNDS] = {
    100000ull,   250000ull,    500000ull,    1000000ull,   2500000ull,    5000000ull,    10000000ull,   25000000ull,
    50000000ull, 100000000ull, 250000000ull, 500000000ull, 1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull,
};
static const char *const hist_le[SC__HIST_BOUNDS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10",
};

void sc__hist_observe(sc__hist *h, uint64_t ns)
{
    size_t i = 0;
    while (i < SC__HIST_BOUNDS && ns > hist_bound_ns[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void sc__hist_since(sc__hist *h, uint64_t start)
{
    uint64_t now = sc__mono_ns();
    sc__hist_observe(h, now > start ? now - start : 0);
}

void sc__metrics_propagated(sc_cache *c, uint64_t time_ms)
{
    /* Both ends are on the Redis clock (the event's time was taken by the
     * write script, now is this pod's estimate of it), so hosts with skewed
     * clocks still measure the real delay, to within the millisecond
     * resolution of the event time and one round trip of the estimate. A
     * negative result is estimate error, counted as 0. */
    uint64_t now = sc__redis_now_ms(c);
    sc__hist_observe(&c->hist_prop, now > time_ms ? (now - time_ms) * 1000000ull : 0);
}

/* ------------------------------------------------------------- writer -- */

typedef struct writer {
    char *buf;
    size_t cap;
    size_t len; /* what the whole text needs so far; may exceed cap */
} writer;

static void put(writer *w, const char *s, size_t n)
{
    if (w->len < w->cap) {
        /* Keep the last byte of the buffer for the NUL. */
        size_t room = w->cap - 1 - w->len;
        memcpy(w->buf + w->len, s, n < room ? n : room);
    }
    w->len += n;
}

static void puts_(writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static void putf(writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(writer *w, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(w, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The length of the well-formed UTF-8 sequence at s (1..4), or 0 when the
 * bytes there are not one (stray continuation, truncated, overlong,
 * surrogate, past U+10FFFF). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char b = s[0];
    if (b < 0x80)
        return 1;
    size_t n = (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || (n == 2 && b < 0xc2) || (n == 4 && b > 0xf4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
            return 0;
    if ((b == 0xe0 && s[1] < 0xa0) || (b == 0xed && s[1] > 0x9f) || (b == 0xf0 && s[1] < 0x90) ||
        (b == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* A label value as the format wants it: backslash, double quote and line
 * feed escaped, and UTF-8 (the format's label values are; Prometheus refuses
 * a scrape that is not): a byte that does not start a well-formed sequence
 * becomes U+FFFD. Pod ids and namespaces may hold any such byte. */
static void put_label_value(writer *w, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (*p == '\\')
            puts_(w, "\\\\");
        else if (*p == '"')
            puts_(w, "\\\"");
        else if (*p == '\n')
            puts_(w, "\\n");
        else if (n == 0)
            puts_(w, "\xef\xbf\xbd");
        else
            put(w, (const char *)p, n);
        p += n ? n : 1;
    }
}

/* `{ns="...",pod="..."` without the closing brace, so a histogram can add
 * its le label. */
static void put_labels_open(writer *w, const sc_cache *c)
{
    puts_(w, "{ns=\"");
    put_label_value(w, c->opt.ns);
    puts_(w, "\",pod=\"");
    put_label_value(w, c->opt.pod_id);
    puts_(w, "\"");
}

static void put_family_head(writer *w, const char *name, const char *type, const char *help)
{
    /* HELP texts are constants below: no backslash or line feed to escape. */
    putf(w, "# HELP %s ", name);
    puts_(w, help);
    putf(w, "\n# TYPE %s %s\n", name, type);
}

static void put_sample(writer *w, const sc_cache *c, const char *name, uint64_t v)
{
    puts_(w, name);
    put_labels_open(w, c);
    putf(w, "} %" PRIu64 "\n", v);
}

/* Nanoseconds as decimal seconds, exactly (no rounding through a double). */
static void put_seconds(writer *w, uint64_t ns)
{
    putf(w, "%" PRIu64 ".%09" PRIu64, ns / UINT64_C(1000000000), ns % UINT64_C(1000000000));
}

static void put_seconds_family(writer *w, const sc_cache *c, const char *name, const char *help, uint64_t ns)
{
    put_family_head(w, name, "counter", help);
    puts_(w, name);
    put_labels_open(w, c);
    puts_(w, "} ");
    put_seconds(w, ns);
    puts_(w, "\n");
}

static void put_histogram(writer *w, const sc_cache *c, const char *name, const char *help, const sc__hist *h)
{
    uint64_t counts[SC__HIST_BOUNDS + 1];
    for (size_t i = 0; i <= SC__HIST_BOUNDS; i++)
        counts[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    uint64_t sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);

    put_family_head(w, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i <= SC__HIST_BOUNDS; i++) {
        cum += counts[i];
        putf(w, "%s_bucket", name);
        put_labels_open(w, c);
        putf(w, ",le=\"%s\"} %" PRIu64 "\n", i < SC__HIST_BOUNDS ? hist_le[i] : "+Inf", cum);
    }
    putf(w, "%s_sum", name);
    put_labels_open(w, c);
    puts_(w, "} ");
    put_seconds(w, sum_ns);
    putf(w, "\n%s_count", name);
    put_labels_open(w, c);
    putf(w, "} %" PRIu64 "\n", cum);
}

/* ------------------------------------------------------------- families -- */

typedef struct family {
    const char *name; /* the full metric name */
    int gauge;        /* 0: counter */
    size_t offset;    /* of the uint64_t in sc_stats */
    const char *help;
} family;

#define COUNTER(field, help)                                                                                           \
    {                                                                                                                  \
        "synccache_" #field "_total", 0, offsetof(sc_stats, field), help                                               \
    }
#define GAUGE(field, help)                                                                                             \
    {                                                                                                                  \
        "synccache_" #field, 1, offsetof(sc_stats, field), help                                                        \
    }

/* Every field of sc_stats, in its order. */
static const family families[] = {
    COUNTER(local_hits, "Gets answered by the local tier."),
    COUNTER(local_misses, "Gets the local tier could not answer."),
    COUNTER(remote_hits, "Redis reads that found the key."),
    COUNTER(remote_misses, "Redis reads that did not find the key (absent, tombstone or below the clear floor)."),
    COUNTER(events_published, "Writes this pod stored in Redis with an event (set, invalidate, delete, clear)."),
    COUNTER(events_received, "Cache events read from the channel (own, stale and malformed included; heartbeats not)."),
    COUNTER(events_applied, "Events from other pods that changed the local tier."),
    COUNTER(events_ignored_self, "Own events seen on the channel or in the log (never installed)."),
    COUNTER(events_stale, "Events older than what the pod already held."),
    COUNTER(events_malformed, "Messages on the channel that could not be decoded (dropped)."),
    COUNTER(invalidations, "Local entries removed by invalidate or delete events."),
    COUNTER(evictions, "Entries that left the local tier to respect a bound (admission refusals included)."),
    GAUGE(local_entries, "Entries in the local tier."),
    GAUGE(local_bytes, "Bytes (key + value) in the local tier."),
    COUNTER(remote_errors, "Redis calls that failed (timeouts included)."),
    COUNTER(loads_shared, "Gets that waited for another thread's Redis read of the same key."),
    COUNTER(expirations, "Local copies dropped because their TTL passed."),
    COUNTER(reconnects, "Times the event stream was re-established after a loss."),
    COUNTER(gaps, "Sequence gaps detected on the channel."),
    COUNTER(events_replayed, "Events applied from the Redis event log (catch-up)."),
    COUNTER(flushes, "Times the local tier was dropped because catch-up was impossible (or by the flush policy)."),
    COUNTER(heartbeat_misses, "Own heartbeats that did not come back in time."),
    COUNTER(stale_served, "Answers flagged stale: gets from the local tier while unsynced, fetches answered with a graced value."),
    GAUGE(synced, "1 while the event stream is live and caught up, else 0."),
    GAUGE(last_seq, "Highest namespace sequence number applied."),
    COUNTER(events_foreign, "Events of other namespaces on the channel (ignored)."),
    COUNTER(events_forged,
            "Events claiming a sequence number Redis had not reached, or a second event for one (dropped)."),
    COUNTER(duplicate_pod_ids, "Events from another process using this pod id."),
    COUNTER(epoch_changes, "Times the namespace history restarted (counter lost, rollback, clear)."),
    COUNTER(publish_failures, "Writes stored and logged whose PUBLISH failed (pods catch them from the log)."),
    COUNTER(behind_queued, "Writes this pod queued for write-behind (sc_set_behind, sc_delete_behind)."),
    COUNTER(behind_saved, "Queued writes this pod's save_fn saved."),
    COUNTER(behind_save_failures, "save_fn calls that did not return SC_OK (the batch is retried)."),
    GAUGE(behind_pending, "Writes in the namespace's write-behind queue that no pod has saved yet."),
    GAUGE(behind_oldest_ms, "Age in ms of the oldest unsaved write in the write-behind queue."),
    GAUGE(tracking_active, "1 while Redis CLIENT TRACKING delivers invalidations to this pod, else 0."),
    COUNTER(tracking_invalidations,
            "Keys written past synccache (other clients, expiry, eviction, FLUSHALL) whose local copy went."),
    COUNTER(tracking_confirmed,
            "Local copies proven current with Redis (own writes' invalidations, every copy at a resubscription)."),
    COUNTER(tracking_failures, "CLIENT TRACKING refused, or the tracking canary not back in time."),
};

SC_EXPORT size_t sc_metrics_text(sc_cache *c, char *buf, size_t cap)
{
    writer w = {buf, buf ? cap : 0, 0};
    if (c) {
        sc_stats st;
        sc_stats_get(c, &st);
        for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
            const family *f = &families[i];
            uint64_t v;
            memcpy(&v, (const char *)&st + f->offset, sizeof v);
            put_family_head(&w, f->name, f->gauge ? "gauge" : "counter", f->help);
            put_sample(&w, c, f->name, v);
        }
        /* The load statistics (sc_fetch), whole-run totals; the windows,
         * rates and averages are the scraper's to derive. */
        sc_load_stats ls;
        sc_load_stats_get(c, SC_WINDOW_TOTAL, &ls);
        static const struct {
            const char *name, *help;
            size_t offset;
        } loads[] = {
            {"synccache_load_hits_total", "Fetches answered by a tier (a cached not-found too).",
             offsetof(sc_load_stats, hits)},
            {"synccache_load_misses_total", "Fetches that loaded, or waited for another's load.",
             offsetof(sc_load_stats, misses)},
            {"synccache_load_errors_total", "Fetches that failed.", offsetof(sc_load_stats, errors)},
            {"synccache_load_manual_misses_total", "sc_tag_deleted calls.", offsetof(sc_load_stats, manual_misses)},
        };
        for (size_t i = 0; i < sizeof loads / sizeof loads[0]; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&ls + loads[i].offset, sizeof v);
            put_family_head(&w, loads[i].name, "counter", loads[i].help);
            put_sample(&w, c, loads[i].name, v);
        }
        put_seconds_family(&w, c, "synccache_load_hit_seconds_total",
                           "Time spent in fetches answered by a tier (single hits sampled one in 16).", ls.hit_ns);
        put_seconds_family(&w, c, "synccache_load_miss_seconds_total",
                           "Time spent in fetches that loaded or waited for a load.", ls.miss_ns);
        /* A partitioned cache reports its partitions' sums. */
        sc__hist hist[3];
        const size_t at[3] = {offsetof(sc_cache, hist_get), offsetof(sc_cache, hist_set),
                              offsetof(sc_cache, hist_prop)};
        for (size_t i = 0; i < 3 && c->part; i++)
            sc__parts_hist(c, at[i], &hist[i]);
        put_histogram(&w, c, "synccache_remote_get_duration_seconds",
                      "Time of the Redis read behind a local miss (one round trip, errors included).",
                      c->part ? &hist[0] : &c->hist_get);
        put_histogram(&w, c, "synccache_remote_set_duration_seconds",
                      "Time of the Redis write script of a set (store, version, log, publish).",
                      c->part ? &hist[1] : &c->hist_set);
        put_histogram(&w, c, "synccache_propagation_delay_seconds",
                      "Delay from an event's publish time (Redis clock) to its apply on this pod, replays included.",
                      c->part ? &hist[2] : &c->hist_prop);
    }
    if (cap > 0 && buf)
        buf[w.len < cap ? w.len : cap - 1] = '\0';
    return w.len;
}
