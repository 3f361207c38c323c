/* Options: defaults, range checks with a message that names the field, and
 * the copy the cache keeps (strings are copied, so the caller's may go away).
 * Pod ids are generated here when the caller gives none: host, pid, a
 * per-process counter and random bits, so no two pods ever share one. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/internal.h"

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)

SC_EXPORT void sc_options_init(sc_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->ns = "sc";
    o->redis_host = "127.0.0.1";
    o->redis_port = 6379;
    o->redis_timeout_ms = 1000;
    o->local_policy = SC_LOCAL_LFU;
    /* Bounded unless asked otherwise: a cache that grows with the key space
     * is an outage waiting to happen. */
    o->local_max_entries = 100000;
    o->local_max_bytes = 256 * MIB;
    o->role = SC_ROLE_WRITER;
    o->wire_format = SC_WIRE_MSGPACK;
    o->redis_pool_size = 4;
    o->max_key_bytes = 1024;
    o->max_value_bytes = 64 * MIB;
    o->max_event_bytes = 1 * MIB;
    o->event_value_max = 256 * KIB;
    o->disconnect_policy = SC_DISCONNECT_BYPASS;
    o->stale_max_ms = 5000;
    o->heartbeat_interval_ms = 250;
    o->heartbeat_timeout_ms = 1000;
    o->redis_tracking = 1;
    o->reconnect_min_ms = 50;
    o->reconnect_max_ms = 2000;
    o->event_log_len = 10000;
    o->tombstone_ttl_ms = 86400000;
    o->log_level = SC_LOG_WARN;
    o->writeback_interval_ms = 1000;
    o->writeback_batch = 256;
    o->writeback_claim_ms = 30000;
    o->consistency = SC_EVENTUAL;
    o->empty_ttl_ms = 60000;
    o->ttl_jitter_pct = 10;
    o->lock_ttl_ms = 3000;
    o->tag_delete_delay_ms = 10000;
    o->stats_window_ms = 60000;
    o->sentinel_master = "mymaster";
    o->partitions = 1;
    o->grace_ms = 0;
}

/* The longest sender id an event from another pod may carry (pod_id is at
 * most 256 bytes), and what a partition adds to the namespace ("#255"). */
#define EVENT_SENDER_MAX 256
#define EVENT_NS_SUFFIX 4

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return 1;
}

static int bad_string(const char *name, const char *s, int required, char *err, size_t errlen)
{
    if (!s)
        return required ? bad(err, errlen, "option %s: required", name) : 0;
    size_t n = strlen(s);
    if (n == 0)
        return bad(err, errlen, "option %s: must not be empty", name);
    if (n > 256)
        return bad(err, errlen, "option %s: longer than 256 bytes", name);
    return 0;
}

/* Redis Cluster and Sentinel (README "Redis Cluster and Sentinel"). */
static int bad_scale(const sc_options *o, char *err, size_t errlen)
{
    /* 0 (a struct not filled by sc_options_init) means the default, 1. */
    if (o->partitions > SC__PARTITIONS_MAX)
        return bad(err, errlen, "option partitions: %u is not in 1..%d", o->partitions, SC__PARTITIONS_MAX);
    if (o->partitions > 1 && o->channel)
        return bad(err, errlen,
                   "option channel: must be NULL with partitions > 1 (each partition has its channel "
                   "{ns#p}:events)");
    /* Each partition is the namespace "<ns>#<p>", itself at most 256 bytes. */
    if (o->partitions > 1 && o->ns && strlen(o->ns) + 1 + (size_t)snprintf(NULL, 0, "%u", o->partitions - 1) > 256)
        return bad(err, errlen, "option ns: at most %zu bytes with partitions = %u",
                   256 - 1 - (size_t)snprintf(NULL, 0, "%u", o->partitions - 1), o->partitions);
    if (o->redis_cluster_nodes && o->sentinel_nodes)
        return bad(err, errlen, "options redis_cluster_nodes and sentinel_nodes: give one, not both");
    if (bad_string("redis_cluster_nodes", o->redis_cluster_nodes, 0, err, errlen) ||
        bad_string("sentinel_nodes", o->sentinel_nodes, 0, err, errlen) ||
        bad_string("sentinel_master", o->sentinel_master, 0, err, errlen))
        return 1;
    const char *which = o->redis_cluster_nodes ? "redis_cluster_nodes" : "sentinel_nodes";
    const char *list = o->redis_cluster_nodes ? o->redis_cluster_nodes : o->sentinel_nodes;
    if (!list)
        return 0;
    sc__addr *a;
    size_t n;
    if (sc__addr_list_parse(list, &a, &n) != 0)
        return bad(err, errlen, "option %s: \"%s\" is not a list of host:port", which, list);
    free(a);
    if (o->redis_unix_socket)
        return bad(err, errlen, "option redis_unix_socket: not with %s", which);
    if (o->redis_cluster_nodes && o->redis_db != 0)
        return bad(err, errlen, "option redis_db: Redis Cluster has only database 0");
    if (o->redis_cluster_nodes) {
        /* The scripts publish with SPUBLISH from the namespace's slot; Redis
         * refuses a shard channel of another slot inside them. */
        char tag[300];
        snprintf(tag, sizeof tag, "{%s}", o->ns);
        const char *ch = o->channel ? o->channel : tag;
        if (sc__cluster_keyslot(ch, strlen(ch)) != sc__cluster_keyslot(tag, strlen(tag)))
            return bad(err, errlen,
                       "option channel: \"%s\" is not in the namespace's hash slot; on Redis Cluster the channel "
                       "must carry the tag {%s} (or be left NULL)",
                       ch, o->ns);
    }
    return 0;
}

sc_status sc__options_check(const sc_options *o, char *err, size_t errlen)
{
    int fail = 0;
    if (!o)
        fail = bad(err, errlen, "options: NULL");
    else if (bad_string("pod_id", o->pod_id, 0, err, errlen) || bad_string("ns", o->ns, 1, err, errlen) ||
             bad_string("channel", o->channel, 0, err, errlen) ||
             bad_string("redis_unix_socket", o->redis_unix_socket, 0, err, errlen) ||
             bad_string("redis_username", o->redis_username, 0, err, errlen))
        fail = 1;
    else if (!o->redis_unix_socket && bad_string("redis_host", o->redis_host, 1, err, errlen))
        fail = 1;
    else if (bad_scale(o, err, errlen))
        fail = 1;
    else if (strchr(o->ns, '#'))
        fail = bad(err, errlen,
                   "option ns: \"%s\" may not hold '#' (reserved: partition p of namespace ns is {ns#p})", o->ns);
    else if (!sc__remote_ns_valid(o->ns))
        fail = bad(err, errlen,
                   "option ns: \"%s\" may not hold '{', '}' or control characters (the namespace is a Redis "
                   "hash tag: {ns})",
                   o->ns);
    else if (!o->redis_unix_socket && (o->redis_port < 1 || o->redis_port > 65535))
        fail = bad(err, errlen, "option redis_port: %d is not in 1..65535", o->redis_port);
    else if (o->redis_username && !o->redis_password)
        fail = bad(err, errlen, "option redis_username: needs redis_password");
    else if (o->redis_db < 0)
        fail = bad(err, errlen, "option redis_db: %d is negative", o->redis_db);
    else if (o->redis_timeout_ms < 1 || o->redis_timeout_ms > 600000)
        fail = bad(err, errlen, "option redis_timeout_ms: %u is not in 1..600000", o->redis_timeout_ms);
    else if (o->local_policy != SC_LOCAL_LRU && o->local_policy != SC_LOCAL_LFU)
        fail = bad(err, errlen, "option local_policy: unknown value %d", (int)o->local_policy);
    else if (o->role != SC_ROLE_WRITER && o->role != SC_ROLE_READER)
        fail = bad(err, errlen, "option role: unknown value %d", (int)o->role);
    else if (o->wire_format != SC_WIRE_MSGPACK && o->wire_format != SC_WIRE_JSON)
        fail = bad(err, errlen, "option wire_format: unknown value %d", (int)o->wire_format);
    else if (o->disconnect_policy != SC_DISCONNECT_FLUSH && o->disconnect_policy != SC_DISCONNECT_STALE &&
             o->disconnect_policy != SC_DISCONNECT_BYPASS)
        fail = bad(err, errlen, "option disconnect_policy: unknown value %d", (int)o->disconnect_policy);
    else if ((unsigned)o->log_level > SC_LOG_DEBUG)
        fail = bad(err, errlen, "option log_level: unknown value %d", (int)o->log_level);
    else if (o->redis_pool_size < 1 || o->redis_pool_size > 64)
        fail = bad(err, errlen, "option redis_pool_size: %u is not in 1..64", o->redis_pool_size);
    else if (o->max_key_bytes < 1 || o->max_key_bytes > 65535)
        fail = bad(err, errlen, "option max_key_bytes: %zu is not in 1..65535", o->max_key_bytes);
    else if (o->max_value_bytes < 1 || o->max_value_bytes > 512 * MIB)
        fail = bad(err, errlen, "option max_value_bytes: %zu is not in 1..536870912", o->max_value_bytes);
    else if (o->max_event_bytes < 4 * KIB || o->max_event_bytes > 512 * MIB)
        fail = bad(err, errlen, "option max_event_bytes: %zu is not in 4096..536870912", o->max_event_bytes);
    /* Every event of a pod of the namespace must fit in every pod's
     * max_event_bytes: the longest key and carried value, a sender id of
     * any length a pod may have, and JSON's escapes. */
    else if (sc__event_max_len(o->wire_format, o->max_key_bytes, o->event_value_max, EVENT_SENDER_MAX,
                               strlen(o->ns) + EVENT_NS_SUFFIX) > o->max_event_bytes)
        fail = bad(err, errlen,
                   "option event_value_max: %zu does not fit in max_event_bytes %zu with a %zu-byte key "
                   "(an event of this namespace may take %zu bytes%s)",
                   o->event_value_max, o->max_event_bytes, o->max_key_bytes,
                   sc__event_max_len(o->wire_format, o->max_key_bytes, o->event_value_max, EVENT_SENDER_MAX,
                                     strlen(o->ns) + EVENT_NS_SUFFIX),
                   o->wire_format == SC_WIRE_JSON ? ": JSON escapes and base64" : "");
    else if (o->local_shards > 256 || (o->local_shards & (o->local_shards - 1)) != 0)
        fail = bad(err, errlen, "option local_shards: %u is not 0 or a power of two <= 256", o->local_shards);
    else if (o->heartbeat_interval_ms && o->heartbeat_timeout_ms < o->heartbeat_interval_ms)
        fail = bad(err, errlen, "option heartbeat_timeout_ms: %u is shorter than heartbeat_interval_ms %u",
                   o->heartbeat_timeout_ms, o->heartbeat_interval_ms);
    else if (o->reconnect_min_ms < 1 || o->reconnect_max_ms < o->reconnect_min_ms)
        fail = bad(err, errlen, "option reconnect_min_ms/reconnect_max_ms: need 1 <= min (%u) <= max (%u)",
                   o->reconnect_min_ms, o->reconnect_max_ms);
    else if (o->redis_tracking != 0 && o->redis_tracking != 1)
        fail = bad(err, errlen, "option redis_tracking: %d is not 0 or 1", o->redis_tracking);
    else if (o->consistency != SC_EVENTUAL && o->consistency != SC_STRONG)
        fail = bad(err, errlen, "option consistency: unknown value %d", (int)o->consistency);
    else if (o->ttl_jitter_pct > 100)
        fail = bad(err, errlen, "option ttl_jitter_pct: %u is not in 0..100", o->ttl_jitter_pct);
    else if (o->lock_ttl_ms < 1 || o->lock_ttl_ms > (UINT64_C(1) << 40))
        fail = bad(err, errlen, "option lock_ttl_ms: %llu is not in 1..2^40", (unsigned long long)o->lock_ttl_ms);
    else if (o->stats_window_ms < 1 || o->stats_window_ms > (UINT64_C(1) << 40))
        fail = bad(err, errlen, "option stats_window_ms: %llu is not in 1..2^40",
                   (unsigned long long)o->stats_window_ms);
    else if (o->empty_ttl_ms > (UINT64_C(1) << 53) || o->tag_delete_delay_ms > (UINT64_C(1) << 53))
        fail = bad(err, errlen, "option empty_ttl_ms/tag_delete_delay_ms: at most 2^53");
    /* Redis takes these inside the write scripts (PEXPIRE, XADD MAXLEN ~): a
     * value it refuses would fail each write after the script had already
     * changed the key and taken a version. */
    else if (o->tombstone_ttl_ms > (UINT64_C(1) << 53))
        fail = bad(err, errlen, "option tombstone_ttl_ms: %llu is over 2^53", (unsigned long long)o->tombstone_ttl_ms);
    else if ((uint64_t)o->event_log_len > (UINT64_C(1) << 53))
        fail = bad(err, errlen, "option event_log_len: %zu is over 2^53", o->event_log_len);
    else if (o->default_ttl_ms > (UINT64_C(1) << 53))
        fail = bad(err, errlen, "option default_ttl_ms: %llu is over 2^53", (unsigned long long)o->default_ttl_ms);
    else if (o->grace_ms > (UINT64_C(1) << 40))
        fail = bad(err, errlen, "option grace_ms: %llu is over 2^40", (unsigned long long)o->grace_ms);
    if (!fail && sc__behind_options_check(o, err, errlen) != SC_OK)
        fail = 1;
    return fail ? SC_ERR_INVALID : SC_OK;
}

static void generate_pod_id(char *buf, size_t len)
{
    static atomic_uint counter;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    uint32_t rnd;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rnd = (uint32_t)(ts.tv_nsec ^ ts.tv_sec);
    }
    snprintf(buf, len, "%s-%ld-%u-%08x", host, (long)getpid(), atomic_fetch_add(&counter, 1) + 1, rnd);
}

sc_status sc__options_copy(sc_cache *c, const sc_options *o)
{
    char pod[128];
    char channel[300];
    if (!o->pod_id)
        generate_pod_id(pod, sizeof pod);
    if (!o->channel)
        snprintf(channel, sizeof channel, "{%s}:events", o->ns);

    const char *src[] = {o->pod_id ? o->pod_id : pod, o->ns, o->channel ? o->channel : channel,
                         o->redis_host, o->redis_unix_socket, o->redis_username, o->redis_password,
                         o->redis_cluster_nodes, o->sentinel_nodes, o->sentinel_master};
    size_t total = 0;
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++)
        total += src[i] ? strlen(src[i]) + 1 : 0;
    char *block = malloc(total ? total : 1);
    if (!block)
        return SC_ERR_NOMEM;

    const char *dst[sizeof src / sizeof src[0]];
    char *p = block;
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        if (!src[i]) {
            dst[i] = NULL;
            continue;
        }
        size_t n = strlen(src[i]) + 1;
        memcpy(p, src[i], n);
        dst[i] = p;
        p += n;
    }
    c->opt = *o;
    c->strings = block;
    c->opt.pod_id = dst[0];
    c->opt.ns = dst[1];
    c->opt.channel = dst[2];
    c->opt.redis_host = dst[3];
    c->opt.redis_unix_socket = dst[4];
    c->opt.redis_username = dst[5];
    c->opt.redis_password = dst[6];
    c->opt.redis_cluster_nodes = dst[7];
    c->opt.sentinel_nodes = dst[8];
    c->opt.sentinel_master = dst[9];
    return SC_OK;
}
