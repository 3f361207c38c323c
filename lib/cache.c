/* The sc_cache lifecycle: open (check options, connect Redis, build the local
 * tier, start the synchronizer and wait for the first sync), close, and the
 * stats snapshot. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/internal.h"

static void cache_free(sc_cache *c)
{
    if (!c)
        return;
    if (c->part) {
        sc__parts_free(c);
        return;
    }
    /* Loads left running past a timeout store nothing once sc_close began
     * (synccache.h), also while it waits for the saver below. */
    sc__fetch_stop_begin(c);
    /* The saver first: it uses the Redis tier until it stops. */
    sc__behind_stop(c);
    /* ... and the stores already under way end. */
    sc__fetch_stop(c);
    /* The subscriber first: after it stops no callback touches the rest. */
    sc__sub_stop(c->sub);
    sc__tracking_stop(c); /* the confirm thread uses the Redis tier */
    sc__remote_close(c->remote);
    sc__local_free(c->local);
    sc__flights_destroy(&c->flights);
    sc__fetch_free(c);
    sc__tags_free(c);
    sc__tracking_free(c);
    sc__own_event_free(&c->hb_event, NULL);
    pthread_mutex_destroy(&c->open_mu);
    pthread_cond_destroy(&c->open_cv);
    free(c->strings);
    free(c);
}

/* Waits (own-thread mode) until the first subscription is synced. */
static sc_status wait_first_sync(sc_cache *c)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    /* The subscriber connects, subscribes and reads the sequence: up to a
     * connect and two round trips, each bounded by the timeout. */
    uint64_t ms = (uint64_t)c->opt.redis_timeout_ms * 3;
    deadline.tv_sec += (time_t)(ms / 1000);
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->open_mu);
    int rc = 0;
    while (c->open_state == 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->open_cv, &c->open_mu, &deadline);
    int state = c->open_state;
    pthread_mutex_unlock(&c->open_mu);
    return state == 1 ? SC_OK : state < 0 ? SC_ERR_REMOTE : SC_ERR_TIMEOUT;
}

/* 16 hex digits from the kernel's random source (the clock and the pid if
 * that fails): what tells this process's events from every other's. */
static void new_instance_id(char out[17])
{
    uint64_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)r);
}

/* Redis Cluster / Sentinel: the subscriber asks the Redis tier where the
 * channel is served. */
static sc_status locate_channel(void *ud, char *host, size_t cap, int *port, unsigned *gen, char *err,
                                size_t errlen)
{
    return sc__remote_locate_channel(ud, host, cap, port, gen, err, errlen);
}

static unsigned route_gen(void *ud)
{
    return sc__remote_route_gen(ud);
}

static void remote_config(const sc_options *opt, sc__remote_config *rc)
{
    *rc = (sc__remote_config){
        .host = opt->redis_host,
        .port = opt->redis_port,
        .unix_socket = opt->redis_unix_socket,
        .username = opt->redis_username,
        .password = opt->redis_password,
        .db = opt->redis_db,
        .timeout_ms = opt->redis_timeout_ms,
        .pool_size = opt->redis_pool_size,
        .ns = opt->ns,
        .channel = opt->channel,
        .wire_format = opt->wire_format,
        .log_len = opt->event_log_len,
        .cluster_nodes = opt->redis_cluster_nodes,
        .sentinel_nodes = opt->sentinel_nodes,
        .sentinel_master = opt->sentinel_master,
    };
}

/* A pod with partitions = 1 on a namespace that records no count and has
 * no history of its own: whether the namespace is partitioned all the
 * same, as its partition 0 (which every count > 1 has) shows. {ns}:meta of
 * a partitioned namespace holds only the count, and nothing writes it
 * again once it is lost (a Redis restarted empty or flushed while the pods
 * run seed their partitions, not it). *have: the count found, UINT_MAX for
 * a history without one, 0 for none. */
static sc_status partition0_count(const sc_options *opt, unsigned *have, char *err, size_t errlen)
{
    char ns0[300];
    snprintf(ns0, sizeof ns0, "%s#0", opt->ns);
    sc__remote_config rc;
    remote_config(opt, &rc);
    rc.ns = ns0;
    rc.channel = NULL;
    rc.pool_size = 1;
    sc__remote *r0 = NULL;
    sc_status s = sc__remote_open(&rc, &r0, err, errlen);
    if (s == SC_OK)
        s = sc__remote_partitions(r0, 1, SC__PARTITIONS_LOOK, have, err, errlen);
    sc__remote_close(r0);
    return s;
}

sc_status sc__partitions_agree(const sc_options *opt, sc__remote *r, char *err, size_t errlen)
{
    sc__remote *own = NULL;
    sc_status s = SC_OK;
    if (!r) {
        sc__remote_config rc;
        remote_config(opt, &rc);
        rc.pool_size = 1;
        if ((s = sc__remote_open(&rc, &own, err, errlen)) != SC_OK)
            return s;
        r = own;
    }
    unsigned want = opt->partitions ? opt->partitions : 1, have = 0;
    /* A '#' is refused in the user's ns: only a partition's name has one. */
    int partition = strchr(opt->ns, '#') != NULL;
    if (want == 1 && !partition) {
        /* Neither a count nor a history in {ns}:meta: a new namespace, or
         * a partitioned one whose count was lost. */
        s = sc__remote_partitions(r, want, SC__PARTITIONS_LOOK, &have, err, errlen);
        if (s == SC_OK && have == 0) {
            /* Best effort: a user whose ACL covers {ns}:... only cannot
             * look, and opens as before. */
            char ignored[SC__ERRLEN];
            if (partition0_count(opt, &have, ignored, sizeof ignored) != SC_OK)
                have = 0;
            if (have == UINT_MAX) {
                sc__remote_close(own);
                snprintf(err, errlen,
                         "namespace \"%s\" is used partitioned ({%s#0}:meta holds a history, its count is lost), "
                         "this pod was opened with partitions = 1 (every pod of a namespace must use the same count)",
                         opt->ns, opt->ns);
                return SC_ERR_INVALID;
            }
        }
        /* A count holds as it is; otherwise 1 is recorded as before (a
         * history without a count counts as 1). */
        if (s == SC_OK && (have == 0 || have == UINT_MAX))
            s = sc__remote_partitions(r, want, SC__PARTITIONS_RECORD, &have, err, errlen);
    } else {
        s = sc__remote_partitions(r, want, partition ? SC__PARTITIONS_PART : SC__PARTITIONS_RECORD, &have, err, errlen);
    }
    sc__remote_close(own);
    if (s == SC_OK && have != want) {
        snprintf(err, errlen,
                 "namespace \"%s\" is used with partitions = %u, this pod was opened with partitions = %u "
                 "(every pod of a namespace must use the same count)",
                 opt->ns, have, want);
        s = SC_ERR_INVALID;
    }
    return s;
}

SC_EXPORT sc_status sc_open(const sc_options *o, sc_cache **out)
{
    char err[SC__ERRLEN];
    if (!out)
        return sc__fail(NULL, SC_ERR_INVALID, "sc_open: out is NULL");
    *out = NULL;
    if (sc__options_check(o, err, sizeof err) != SC_OK)
        return sc__fail(NULL, SC_ERR_INVALID, "%s", err);
    if (o->partitions > 1)
        return sc__parts_open(o, out);
    return sc__cache_open(o, NULL, out);
}

/* Nothing refuses a Redis that may evict any key, but what it costs
 * (README, "Redis' eviction policy") is worth one line at open. */
void sc__warn_eviction_policy(sc_cache *c)
{
    char policy[64];
    if (sc__remote_eviction_policy(c->remote, policy, sizeof policy) == 0 && strncmp(policy, "allkeys-", 8) == 0)
        sc__log(c, SC_LOG_WARN,
                "pod %s: Redis maxmemory-policy is %s: Redis may evict synccache's own keys and values without a "
                "TTL (compare-and-set numbers fall back, write-behind writes are lost); use noeviction or "
                "volatile-* (README, \"Redis' eviction policy\")",
                c->opt.pod_id, policy);
}

sc_status sc__cache_open(const sc_options *o, sc_cache *outer, sc_cache **out)
{
    char err[SC__ERRLEN];
    *out = NULL;
    sc_cache *c = calloc(1, sizeof *c);
    if (!c)
        return sc__fail(NULL, SC_ERR_NOMEM, "sc_open: out of memory");
    pthread_mutex_init(&c->open_mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&c->open_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    c->outer = outer;
    sc__flights_init(&c->flights);
    if (sc__options_copy(c, o) != SC_OK || sc__fetch_new(c) != SC_OK || sc__tags_new(c) != SC_OK) {
        cache_free(c);
        return sc__fail(NULL, SC_ERR_NOMEM, "sc_open: out of memory");
    }
    const sc_options *opt = &c->opt;
    c->routed = opt->event_base && opt->heartbeat_interval_ms;
    new_instance_id(c->inst);
    sc__seq_init(&c->seq, opt->ns, opt->pod_id, c->inst);
    /* After the instance id: it names the pod's canary key. */
    if (sc__tracking_new(c) != SC_OK) {
        cache_free(c);
        return sc__fail(NULL, SC_ERR_NOMEM, "sc_open: out of memory");
    }
    if (sc__own_event(c, SC__ACT_HEARTBEAT, NULL, 0, NULL, 0, 0, NULL, 0, &c->hb_event) != SC_OK) {
        cache_free(c);
        return sc__fail(NULL, SC_ERR_NOMEM, "sc_open: out of memory");
    }

    sc__local_config lc = {
        .policy = opt->local_policy,
        .max_entries = opt->local_max_entries,
        .max_bytes = opt->local_max_bytes,
        .max_ttl_ms = opt->local_ttl_ms,
        .shards = opt->local_shards,
        .max_key_bytes = opt->max_key_bytes,
    };
    c->local = sc__local_new(&lc);
    if (!c->local) {
        cache_free(c);
        return sc__fail(NULL, SC_ERR_NOMEM, "sc_open: cannot create the local tier");
    }

    sc__remote_config rc;
    remote_config(opt, &rc);
    sc_status s = sc__remote_open(&rc, &c->remote, err, sizeof err);
    /* Every pod of the namespace splits it alike (docs/protocol.md). */
    if (s == SC_OK)
        s = sc__partitions_agree(opt, c->remote, err, sizeof err);
    if (s != SC_OK) {
        cache_free(c);
        return sc__fail(NULL, s, "sc_open: %s", err);
    }
    /* Loading the scripts proved that they may run; one heartbeat proves
     * that this user may write the namespace's counter and publish on the
     * channel, so a missing permission fails here, with Redis' words, and
     * not later as a write that half happened. */
    sc__remote_state st;
    s = sc__remote_heartbeat(c->remote, &c->hb_event, NULL, 0, &st, err, sizeof err);
    if (s != SC_OK) {
        cache_free(c);
        return sc__fail(NULL, s, "sc_open: %s", err);
    }
    sc__redis_clock_seen(c, st.time_ms);
    memcpy(c->secret, st.secret, sizeof c->secret);
    /* A pod that writes: every command of the writing scripts too (a
     * refusal after a script's first write would leave that write half
     * done). */
    if (opt->role == SC_ROLE_WRITER || opt->reader_can_set_to_redis) {
        s = sc__remote_check_perms(c->remote, opt->save_fn != NULL, err, sizeof err);
        if (s != SC_OK) {
            cache_free(c);
            return sc__fail(NULL, s, "sc_open: %s", err);
        }
    }

    sc__sub_config sub = {
        .host = opt->redis_host,
        .port = opt->redis_port,
        .unix_socket = opt->redis_unix_socket,
        .username = opt->redis_username,
        .password = opt->redis_password,
        .timeout_ms = opt->redis_timeout_ms,
        .channel = opt->channel,
        .base = opt->event_base,
        .reconnect_min_ms = opt->reconnect_min_ms,
        .reconnect_max_ms = opt->reconnect_max_ms,
        .tick_ms = opt->heartbeat_interval_ms,
    };
    const char *prefixes[2];
    sub.ntracking = sc__tracking_prefixes(c, prefixes);
    sub.tracking_prefixes = prefixes;
    if (opt->redis_cluster_nodes || opt->sentinel_nodes) {
        sub.locate = locate_channel;
        sub.route_gen = route_gen;
        sub.locate_ud = c->remote;
        sub.sharded = sc__remote_sharded(c->remote);
    }
    sc__sub_callbacks cb;
    sc__syncer_callbacks(c, &cb);
    s = sc__sub_start(&sub, &cb, &c->sub, err, sizeof err);
    if (s != SC_OK) {
        cache_free(c);
        return sc__fail(NULL, s, "sc_open: synchronizer: %s", err);
    }
    if (!opt->event_base && (s = wait_first_sync(c)) != SC_OK) {
        /* The message first: it reads options that cache_free releases. */
        pthread_mutex_lock(&c->open_mu);
        if (s == SC_ERR_REMOTE)
            sc__fail(NULL, s, "sc_open: cannot subscribe to %s: %s", opt->channel, c->open_why);
        else
            sc__fail(NULL, s, "sc_open: not subscribed to %s within %u ms%s%s", opt->channel,
                     opt->redis_timeout_ms * 3, c->open_why[0] ? ": " : "", c->open_why);
        pthread_mutex_unlock(&c->open_mu);
        cache_free(c);
        return s;
    }
    if ((s = sc__behind_start(c, err, sizeof err)) != SC_OK) {
        cache_free(c);
        return sc__fail(NULL, s, "sc_open: write-behind: %s", err);
    }
    sc__log(c, SC_LOG_INFO, "pod %s open on namespace %s", opt->pod_id, opt->ns);
    if (!outer)
        sc__warn_eviction_policy(c);
    *out = c;
    return SC_OK;
}

SC_EXPORT void sc_close(sc_cache *c)
{
    cache_free(c);
}

SC_EXPORT const char *sc_pod_id(const sc_cache *c)
{
    return c ? c->opt.pod_id : "";
}

#define LOAD(x) atomic_load_explicit(&c->x, memory_order_relaxed)

SC_EXPORT void sc_stats_get(sc_cache *c, sc_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    if (c->part) {
        sc__parts_stats(c, out);
        return;
    }
    sc__local_stats ls;
    sc__local_stats(c->local, &ls);
    out->local_hits = ls.hits;
    out->local_misses = ls.misses;
    out->evictions = ls.evictions;
    out->expirations = ls.expirations;
    out->local_entries = ls.entries;
    out->local_bytes = ls.bytes;
    out->remote_hits = LOAD(remote_hits);
    out->remote_misses = LOAD(remote_misses);
    out->remote_errors = LOAD(remote_errors);
    out->loads_shared = LOAD(loads_shared);
    out->events_published = LOAD(events_published);
    out->events_received = LOAD(events_received);
    out->events_applied = LOAD(events_applied);
    out->events_ignored_self = LOAD(events_ignored_self);
    out->events_stale = LOAD(events_stale);
    out->events_malformed = LOAD(events_malformed);
    out->invalidations = LOAD(invalidations);
    out->reconnects = LOAD(reconnects);
    out->gaps = LOAD(gaps);
    out->events_replayed = LOAD(events_replayed);
    out->flushes = LOAD(flushes);
    out->heartbeat_misses = LOAD(heartbeat_misses);
    out->stale_served = LOAD(stale_served);
    out->synced = (uint64_t)sc__synced(c);
    out->last_seq = LOAD(last_seq);
    out->events_foreign = LOAD(events_foreign);
    out->events_forged = LOAD(events_forged);
    out->duplicate_pod_ids = LOAD(duplicate_pod_ids);
    out->epoch_changes = LOAD(epoch_changes);
    out->publish_failures = LOAD(publish_failures);
    sc__behind_stats(c, out);
    out->tracking_active = (uint64_t)atomic_load(&c->tracking_active);
    out->tracking_invalidations = LOAD(tracking_invalidations);
    out->tracking_confirmed = LOAD(tracking_confirmed);
    out->tracking_failures = LOAD(tracking_failures);
}
