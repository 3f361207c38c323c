/* Partitioned namespaces (option partitions, issue 12) against a private
 * redis-server: keys of one namespace spread over 16 partitions
 * ({ns#p}:...), set/get/delete/clear and propagation between pods, batch
 * calls and versions across partitions, write-behind and tags, the
 * partition count every pod must agree on, and a lost event of one
 * partition handled in that partition only.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "support/converge.h"
#include "support/redis_cluster.h"

sc_test_redis g_redis;

#define NS(name) "pt_" name
#define P 16

/* docs/protocol.md, "Partitions": FNV-1a 32 of the key's bytes mod P. */
static uint32_t fnv1a(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
        h ^= *k;
        h *= 16777619u;
    }
    return h;
}

static unsigned partition_of(const char *key, unsigned nparts)
{
    return fnv1a(key) % nparts;
}

static sc_options part_options(const char *ns, const char *id, unsigned nparts)
{
    sc_options o = test_options(ns, id);
    o.partitions = nparts;
    return o;
}

static sc_cache *part_pod(const char *ns, const char *id)
{
    sc_options o = part_options(ns, id, P);
    return test_open(&o);
}

/* The partition's value of key in Redis, read with plain commands. */
static char *redis_value(const char *ns, const char *key)
{
    char pns[300];
    snprintf(pns, sizeof pns, "%s#%u", ns, partition_of(key, P));
    return test_redis_value(pns, key);
}

static redisReply *cmd(const char *fmt, ...)
{
    redisContext *rc = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(rc);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    redisFree(rc);
    ck_assert_ptr_nonnull(r);
    return r;
}

static long long cmd_int(const char *fmt, const char *arg)
{
    redisReply *r = cmd(fmt, arg);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static int has_local(sc_cache *c, const char *key, const char *want)
{
    sc_value *v = NULL;
    if (sc_peek(c, key, &v) != SC_OK)
        return want == NULL;
    int ok = want && strcmp(sc_value_data(v), want) == 0;
    sc_value_release(v);
    return ok;
}

/* The sum of the partitions' counters {ns#p}:seq: a pod's summed last_seq
 * reaches it exactly when it has applied every event (lib/partition.c). */
static uint64_t counters_sum(const char *ns)
{
    uint64_t sum = 0;
    for (int p = 0; p < P; p++) {
        redisReply *r = cmd("GET {%s#%d}:seq", ns, p);
        if (r->type == REDIS_REPLY_STRING)
            sum += strtoull(r->str, NULL, 10);
        freeReplyObject(r);
    }
    return sum;
}

static int get_is(sc_cache *c, const char *key, const char *want)
{
    char *s = test_get(c, key);
    int ok = strcmp(s, want) == 0;
    free(s);
    return ok;
}

START_TEST(hash_vector)
{
    /* The test vector of docs/protocol.md. */
    ck_assert_uint_eq(fnv1a("foo"), 0xa9f37ed7u);
    ck_assert_uint_eq(partition_of("foo", 16), 7);
    /* The library puts "foo" there too: its key is in {ns#7}. */
    sc_cache *a = part_pod(NS("vector"), "a");
    ck_assert_int_eq(sc_set(a, "foo", "bar", 3, 0), SC_OK);
    char *s = test_redis_value(NS("vector") "#7", "foo");
    ck_assert_str_eq(s, "bar");
    free(s);
    sc_close(a);
}
END_TEST

START_TEST(keys_spread_over_partitions)
{
    sc_cache *a = part_pod(NS("spread"), "a");
    sc_cache *b = part_pod(NS("spread"), "b");
    ck_assert_str_eq(sc_pod_id(a), "a");
    int used[P] = {0};
    char key[32], val[32];
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        ck_assert_int_eq(sc_set(a, key, val, strlen(val), 0), SC_OK);
        used[partition_of(key, P)]++;
        /* In its partition's hash tag, nowhere else. */
        char *s = redis_value(NS("spread"), key);
        ck_assert_str_eq(s, val);
        free(s);
        s = test_redis_value(NS("spread"), key);
        ck_assert_str_eq(s, "<none>");
        free(s);
    }
    int partitions_used = 0;
    for (int p = 0; p < P; p++)
        partitions_used += used[p] > 0;
    ck_assert_int_ge(partitions_used, 12);
    for (int p = 0; p < P; p++) {
        char k[64];
        snprintf(k, sizeof k, "{%s#%d}:meta", NS("spread"), p);
        redisReply *r = cmd("HGET %s partitions", k);
        ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
        ck_assert_str_eq(r->str, "16");
        freeReplyObject(r);
    }
    redisReply *r = cmd("HGET {%s}:meta partitions", NS("spread"));
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->str, "16");
    freeReplyObject(r);
    /* Only the count lives under {ns}; no counter or log. */
    ck_assert_int_eq(cmd_int("EXISTS {%s}:seq", NS("spread")), 0);
    /* Every value reaches b, whose local tier then answers. */
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        ck_assert(get_is(b, key, val));
    }
    sc_stats st = test_stats(b);
    ck_assert_uint_eq(st.local_entries, 64);
    ck_assert_uint_eq(st.synced, 1);
    ck_assert_uint_eq(test_stats(a).events_published, 64);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(set_delete_clear_propagate)
{
    sc_cache *pods[3] = {part_pod(NS("prop"), "a"), part_pod(NS("prop"), "b"), part_pod(NS("prop"), "c")};
    char key[32], val[32];
    for (int i = 0; i < 32; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        ck_assert_int_eq(sc_set(pods[0], key, "old", 3, 0), SC_OK);
        ck_assert(get_is(pods[1], key, "old"));
        ck_assert(get_is(pods[2], key, "old"));
    }
    /* New values from another pod reach the local tiers by events. */
    for (int i = 0; i < 32; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(val, sizeof val, "new-%d", i);
        ck_assert_int_eq(sc_set(pods[i % 3], key, val, strlen(val), 0), SC_OK);
    }
    for (int i = 0; i < 32; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(val, sizeof val, "new-%d", i);
        for (int p = 0; p < 3; p++) {
            WAIT_UNTIL(has_local(pods[p], key, val) || has_local(pods[p], key, NULL), 3000);
            ck_assert(get_is(pods[p], key, val));
        }
    }
    /* Deletes. */
    for (int i = 0; i < 32; i += 2) {
        snprintf(key, sizeof key, "key-%d", i);
        ck_assert_int_eq(sc_delete(pods[1], key), SC_OK);
    }
    for (int i = 0; i < 32; i += 2) {
        snprintf(key, sizeof key, "key-%d", i);
        for (int p = 0; p < 3; p++) {
            WAIT_UNTIL(has_local(pods[p], key, NULL), 3000);
            ck_assert(get_is(pods[p], key, "<none>"));
        }
        char *s = redis_value(NS("prop"), key);
        ck_assert_str_eq(s, "<none>");
        free(s);
    }
    /* A clear reaches every partition, in Redis and on every pod. */
    ck_assert_int_eq(sc_clear(pods[2]), SC_OK);
    for (int i = 1; i < 32; i += 2) {
        snprintf(key, sizeof key, "key-%d", i);
        for (int p = 0; p < 3; p++) {
            WAIT_UNTIL(has_local(pods[p], key, NULL), 3000);
            ck_assert(get_is(pods[p], key, "<none>"));
        }
    }
    for (int p = 0; p < 3; p++)
        WAIT_UNTIL(test_stats(pods[p]).local_entries == 0, 3000);
    for (int p = 0; p < 3; p++)
        ck_assert_uint_eq(test_stats(pods[p]).local_entries, 0);
    /* And the namespace works on after it. */
    ck_assert_int_eq(sc_set(pods[0], "after", "x", 1, 0), SC_OK);
    ck_assert(get_is(pods[1], "after", "x"));
    for (int p = 0; p < 3; p++)
        sc_close(pods[p]);
}
END_TEST

/* keys[i] = <prefix><i> and kp[i] = keys[i] for i < n; a (unless NULL)
 * writes each key as its own value except every fourth (i % 4 == 3), which
 * stays absent. */
static void batch_keys(sc_cache *a, char (*keys)[16], const char **kp, int n, const char *prefix)
{
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "%s%d", prefix, i);
        kp[i] = keys[i];
        if (a && i % 4 != 3)
            ck_assert_int_eq(sc_set(a, keys[i], keys[i], strlen(keys[i]), 0), SC_OK);
    }
}

START_TEST(batches_and_versions)
{
    sc_cache *a = part_pod(NS("batch"), "a");
    sc_cache *b = part_pod(NS("batch"), "b");
    enum { N = 40 };
    char keys[N][16];
    const char *kp[N + 1];
    batch_keys(a, keys, kp, N, "b");
    kp[N] = keys[5]; /* a key given twice */
    sc_value *out[N + 1];
    ck_assert_int_eq(sc_get_many(b, kp, N + 1, out), SC_OK);
    for (int i = 0; i <= N; i++) {
        const char *k = kp[i];
        if (i < N && i % 4 == 3) {
            ck_assert_ptr_null(out[i]);
            continue;
        }
        ck_assert_ptr_nonnull(out[i]);
        ck_assert_str_eq(sc_value_data(out[i]), k);
        sc_value_release(out[i]);
    }
    /* sc_get_copy (and so sc_get_with, which shares its path) routes too:
     * a's own writes are local hits in their partitions, the others miss,
     * a bad key is named. */
    for (int i = 0; i < N; i++) {
        char buf[16];
        size_t len = 0;
        sc_status s = sc_get_copy(a, keys[i], buf, sizeof buf, &len, NULL);
        if (i % 4 == 3) {
            ck_assert_int_eq(s, SC_NOT_FOUND);
            continue;
        }
        ck_assert_int_eq(s, SC_OK);
        ck_assert_uint_eq(len, strlen(keys[i]));
        ck_assert(memcmp(buf, keys[i], len) == 0);
    }
    size_t nolen = 0;
    ck_assert_int_eq(sc_get_copy(a, "", NULL, 0, &nolen, NULL), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(a), "sc_get_copy: key is empty"));
    /* A bad key fails the whole batch, every slot NULL, with a message. */
    kp[7] = "";
    ck_assert_int_eq(sc_get_many(b, kp, N, out), SC_ERR_INVALID);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_null(out[i]);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(b), "empty"));
    kp[7] = keys[7];

    /* Versions: per key, from its partition's counter. */
    uint64_t v1 = 0, v2 = 0;
    ck_assert_int_eq(sc_version_of(b, keys[0], &v1), SC_OK);
    ck_assert_int_eq(sc_version_of(b, keys[1], &v2), SC_OK);
    ck_assert_uint_gt(v1, 0);
    ck_assert_uint_gt(v2, 0);
    ck_assert_int_eq(sc_set_if_version(b, keys[0], "cas", 3, 0, v1), SC_OK);
    ck_assert_int_eq(sc_set_if_version(a, keys[0], "lost", 4, 0, v1), SC_ERR_CONFLICT);
    ck_assert_int_eq(sc_set_if_version(a, keys[1], "cas", 3, 0, v2), SC_OK);
    ck_assert_int_eq(sc_set_if_version(a, keys[3], "new", 3, 0, 0), SC_OK); /* absent: 0 */
    /* Each pod's older copy goes on the other's event. */
    WAIT_UNTIL(has_local(a, keys[0], "cas") || has_local(a, keys[0], NULL), 3000);
    WAIT_UNTIL(has_local(b, keys[1], "cas") || has_local(b, keys[1], NULL), 3000);
    ck_assert(get_is(a, keys[0], "cas"));
    ck_assert(get_is(b, keys[1], "cas"));
    ck_assert(get_is(b, keys[3], "new"));
    sc_close(a);
    sc_close(b);
}
END_TEST

/* ---- sc_get_many: one pipelined exchange per node ----
 * MONITOR on a node shows every command with the connection it came on
 * ("[db addr]"; a script's own commands show as "[db lua]"). The
 * get_many script's EVALSHA is the one whose first key is {ns#p}:seq and
 * whose next keys are values ({ns#p}:k:...); fetch_lock's has the same
 * keys (a pod's sc_fetch_batch sends no get_many), fetch_store's has
 * {ns#p}:log among them. */

enum { MON_READ, MON_STORE }; /* which EVALSHAs a monitored counts */

typedef struct monitored {
    int calls;             /* get_many EVALSHAs of the namespace */
    int keys;              /* value keys they read */
    int parts[P];          /* of each partition */
    int nclients;          /* distinct connections they came on */
    char client[P][64];
    int first;             /* line number of the first */
    int between;           /* other connections' commands between the
                              first and the last (scripts' own not counted) */
} monitored;

static redisContext *monitor_open(int port)
{
    redisContext *m = sc_test_redis_connect_addr("127.0.0.1", port);
    ck_assert_ptr_nonnull(m);
    struct timeval tv = {10, 0}; /* a missing marker fails, never hangs */
    redisSetTimeout(m, tv);
    redisReply *r = redisCommand(m, "MONITOR");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    return m;
}

/* Reads m's lines up to an ECHO of a marker sent now, into *s (the
 * EVALSHAs of that kind); closes m. */
static void monitor_close_kind(redisContext *m, int port, const char *ns, int kind, monitored *s)
{
    memset(s, 0, sizeof *s);
    s->first = -1;
    char marker[64], head[320];
    int others = 0;
    snprintf(marker, sizeof marker, "bynode-marker-%d", port);
    redisReply *e = sc_test_node_cmd(port, "ECHO %s", marker);
    ck_assert_ptr_nonnull(e);
    freeReplyObject(e);
    for (int line = 0;; line++) {
        void *rv = NULL;
        ck_assert_msg(redisGetReply(m, &rv) == REDIS_OK, "MONITOR: %s", m->errstr);
        redisReply *r = rv;
        ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
        if (strstr(r->str, marker)) {
            freeReplyObject(r);
            break;
        }
        const char *at = strchr(r->str, '[');
        const char *sp = at ? strchr(at, ' ') : NULL;
        const char *end = sp ? strchr(sp, ']') : NULL;
        snprintf(head, sizeof head, "\"{%s#", ns);
        const char *evalsha = strstr(r->str, "] \"EVALSHA\" \"");
        /* "EVALSHA" "<sha>" "<numkeys>" "{ns#p}:seq" "{ns#p}:meta" "{ns#p}:k:..." */
        const char *k = evalsha ? strstr(evalsha, head) : NULL;
        unsigned p = 0;
        int is_get_many = k && sscanf(k + strlen(head), "%u", &p) == 1 && p < P &&
                          strncmp(strchr(k, '}'), "}:seq\" ", 7) == 0 && strstr(k, "}:k:");
        int stores = k && strstr(k, "}:log\" ") != NULL;
        if (end && is_get_many && stores == (kind == MON_STORE)) {
            char client[64];
            snprintf(client, sizeof client, "%.*s", (int)(end - sp - 1), sp + 1);
            int known = 0;
            for (int i = 0; i < s->nclients; i++)
                known |= strcmp(s->client[i], client) == 0;
            if (!known && s->nclients < P)
                snprintf(s->client[s->nclients++], sizeof s->client[0], "%s", client);
            s->calls++;
            s->parts[p]++;
            for (const char *q = k; (q = strstr(q, "}:k:")); q++)
                s->keys++;
            if (s->first < 0)
                s->first = line;
            s->between = others;
        } else if (end && s->first >= 0 && strncmp(sp + 1, "lua]", 4) != 0)
            others++;
        freeReplyObject(r);
    }
    redisFree(m);
}

static void monitor_close(redisContext *m, int port, const char *ns, monitored *s)
{
    monitor_close_kind(m, port, ns, MON_READ, s);
}

/* The reference answer for key: sc_get on a pod of its own (one key, one
 * partition), with the key's version in Redis. */
static void reference(sc_cache *ref, const char *key, char **val, uint64_t *version)
{
    *val = test_get(ref, key);
    ck_assert_int_eq(sc_version_of(ref, key, version), SC_OK);
}

/* out[i] is what the reference pod says of kp[i]: the same value and
 * version, or NULL for a key that is not found. */
static void assert_same_answers(sc_cache *ref, const char *const *kp, size_t n, sc_value **out)
{
    for (size_t i = 0; i < n; i++) {
        char *want;
        uint64_t version;
        reference(ref, kp[i], &want, &version);
        if (strcmp(want, "<none>") == 0)
            ck_assert_msg(out[i] == NULL, "%s: found, reference: not found", kp[i]);
        else {
            ck_assert_msg(out[i] != NULL, "%s: not found, reference: %s", kp[i], want);
            ck_assert_str_eq(sc_value_data(out[i]), want);
            ck_assert_uint_eq(sc_value_version(out[i]), version);
        }
        free(want);
    }
}

START_TEST(get_many_by_node)
{
    const char *ns = NS("bynode");
    sc_cache *a = part_pod(ns, "a");
    enum { N = 100, LOCAL = 10 };
    char keys[N][16];
    const char *kp[N + 1];
    batch_keys(a, keys, kp, N, "g");
    kp[N] = keys[LOCAL + 1]; /* a key given twice */
    /* b opens after the writes, so it holds no copies from their events;
     * it holds the first LOCAL keys (and their absence when missing) locally. */
    sc_cache *b = part_pod(ns, "b");
    sc_cache *ref = part_pod(ns, "ref");
    for (int i = 0; i < LOCAL; i++)
        free(test_get(b, keys[i]));
    int miss_parts = 0, misses = 0, in[P] = {0};
    for (int i = 0; i < N; i++) {
        int local = i < LOCAL && has_local(b, keys[i], keys[i]) && i % 4 != 3;
        if (local)
            continue;
        misses++;
        if (!in[partition_of(keys[i], P)]++)
            miss_parts++;
    }
    ck_assert_int_eq(miss_parts, P);

    redisContext *m = monitor_open(g_redis.port);
    sc_value *out[N + 1];
    ck_assert_int_eq(sc_get_many(b, kp, N + 1, out), SC_OK);
    monitored s;
    monitor_close(m, g_redis.port, ns, &s);
    /* One script per partition with misses, every one on one connection,
     * back to back (the whole pipeline arrived in one read), reading each
     * missed key once. */
    ck_assert_int_eq(s.calls, P);
    for (unsigned p = 0; p < P; p++)
        ck_assert_int_eq(s.parts[p], 1);
    ck_assert_int_eq(s.nclients, 1);
    ck_assert_int_eq(s.between, 0);
    ck_assert_int_eq(s.keys, misses);
    assert_same_answers(ref, kp, N + 1, out);

    /* The per-partition path (one sc_get_many per partition's keys, one
     * partition each) gives the same answers on a fresh pod. */
    sc_cache *c = part_pod(ns, "c");
    sc_value *one[N];
    for (unsigned p = 0; p < P; p++) {
        const char *sub[N];
        size_t idx[N], k = 0;
        for (int i = 0; i < N; i++)
            if (partition_of(keys[i], P) == p) {
                idx[k] = (size_t)i;
                sub[k++] = keys[i];
            }
        ck_assert_int_eq(sc_get_many(c, sub, k, one), SC_OK);
        for (size_t j = 0; j < k; j++) {
            sc_value *got = out[idx[j]];
            ck_assert_int_eq(one[j] == NULL, got == NULL);
            if (got) {
                ck_assert_str_eq(sc_value_data(one[j]), sc_value_data(got));
                ck_assert_uint_eq(sc_value_version(one[j]), sc_value_version(got));
            }
            sc_value_release(one[j]);
        }
    }
    for (int i = 0; i <= N; i++)
        sc_value_release(out[i]);

    /* A script unknown to Redis (SCRIPT FLUSH): every partition's EVALSHA
     * answers NOSCRIPT and falls back to its own path, with the same
     * answers. */
    redisReply *f = cmd("SCRIPT FLUSH");
    freeReplyObject(f);
    sc_cache *d = part_pod(ns, "d");
    f = cmd("SCRIPT FLUSH");
    freeReplyObject(f);
    ck_assert_int_eq(sc_get_many(d, kp, N + 1, out), SC_OK);
    assert_same_answers(ref, kp, N + 1, out);
    for (int i = 0; i <= N; i++)
        sc_value_release(out[i]);
    sc_close(a);
    sc_close(b);
    sc_close(c);
    sc_close(d);
    sc_close(ref);
}
END_TEST

/* Redis stops answering (CLIENT PAUSE) during a partitioned sc_get_many:
 * the pipelined exchange times out and the call fails with SC_ERR_TIMEOUT,
 * every slot NULL, naming a partition; afterwards it answers again. */
/* ---- sc_fetch_batch: one pipelined exchange per node per phase ---- */

/* A batch loader that counts its calls and keys: "L:<key>" for every key
 * but those ending in 3 (not found). */
typedef struct batch_loader {
    atomic_int calls;
    atomic_int keys;
} batch_loader;

static sc_status load_batch_counted(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    batch_loader *bl = ud;
    atomic_fetch_add(&bl->calls, 1);
    atomic_fetch_add(&bl->keys, (int)n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(keys[i]);
        if (keys[i][len - 1] == '3')
            continue;
        char v[64];
        snprintf(v, sizeof v, "L:%s", keys[i]);
        sc_loaded_set(slots[i], v, strlen(v));
    }
    return SC_OK;
}

/* got is the loader's value of key. */
static void assert_is_loaded(const char *got, const char *key)
{
    ck_assert_msg(got && strncmp(got, "L:", 2) == 0 && strcmp(got + 2, key) == 0, "%s: %s", key, got ? got : "NULL");
}

/* out[i] holds the loader's answer for kp[i]. */
static void assert_loaded(const char *const *kp, size_t n, sc_value **out)
{
    for (size_t i = 0; i < n; i++) {
        if (kp[i][strlen(kp[i]) - 1] == '3') {
            ck_assert_msg(out[i] == NULL, "%s: found", kp[i]);
            continue;
        }
        ck_assert_msg(out[i] != NULL, "%s: not found", kp[i]);
        assert_is_loaded(sc_value_data(out[i]), kp[i]);
    }
}

static void release_all(sc_value **out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sc_value_release(out[i]);
}

/* A slow loader of another pod, holding its load lock meanwhile. */
typedef struct slow_load {
    sc_cache *c;
    const char *key;
    atomic_int started;
    sc_status st;
    sc_value *v;
} slow_load;

static sc_status load_slowly(const char *key, sc_loaded *slot, void *ud)
{
    slow_load *sl = ud;
    atomic_store(&sl->started, 1);
    test_sleep_ms(300);
    char v[64];
    snprintf(v, sizeof v, "O:%s", key);
    sc_loaded_set(slot, v, strlen(v));
    return SC_OK;
}

static void *slow_fetch_main(void *arg)
{
    slow_load *sl = arg;
    sl->st = sc_fetch(sl->c, sl->key, 0, load_slowly, sl, &sl->v);
    return NULL;
}

/* A failing batch loader's message (sc_loaded_error) is what sc_errmsg
 * says, whichever key's slot it was left on: the loader is called once with
 * the keys of every partition, and the failure is reported for one of them
 * (the first), not necessarily the one whose slot holds the message. */
static sc_status fail_last_slot(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    (void)keys;
    (void)ud;
    sc_loaded_error(slots[n - 1], "the database is down (%zu keys)", n);
    return SC_ERR_REMOTE;
}

START_TEST(batch_loader_message)
{
    sc_cache *a = part_pod(NS("loadmsg"), "a");
    enum { N = 16 };
    char keys[N][16];
    const char *kp[N];
    batch_keys(NULL, keys, kp, N, "m");
    sc_value *out[N];
    ck_assert_int_eq(sc_fetch_batch(a, kp, N, 0, fail_last_slot, NULL, out), SC_ERR_LOADER);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_null(out[i]);
    const char *msg = sc_errmsg(a);
    ck_assert_msg(strstr(msg, "the database is down (16 keys)") != NULL, "sc_errmsg: %s", msg);
    /* Unpartitioned, the same. */
    sc_options o = part_options(NS("loadmsg1"), "b", 1);
    sc_cache *b = test_open(&o);
    ck_assert_int_eq(sc_fetch_batch(b, kp, N, 0, fail_last_slot, NULL, out), SC_ERR_LOADER);
    msg = sc_errmsg(b);
    ck_assert_msg(strstr(msg, "the database is down (16 keys)") != NULL, "sc_errmsg: %s", msg);
    sc_close(b);
    sc_close(a);
}
END_TEST

START_TEST(fetch_batch_by_node)
{
    const char *ns = NS("fbnode");
    sc_cache *b = part_pod(ns, "b");
    enum { N = 64 };
    char keys[N][16];
    const char *kp[N + 1];
    batch_keys(NULL, keys, kp, N, "f");
    kp[N] = keys[7]; /* a key given twice */
    int in[P] = {0}, parts = 0;
    for (int i = 0; i < N; i++)
        if (!in[partition_of(keys[i], P)]++)
            parts++;
    ck_assert_int_eq(parts, P);

    /* Two MONITORs: one counts the fetch_lock EVALSHAs, one the
     * fetch_store ones. */
    redisContext *ml = monitor_open(g_redis.port), *ms = monitor_open(g_redis.port);
    batch_loader bl = {0};
    sc_value *out[N + 1];
    ck_assert_int_eq(sc_fetch_batch(b, kp, N + 1, 0, load_batch_counted, &bl, out), SC_OK);
    monitored lk, st;
    monitor_close_kind(ml, g_redis.port, ns, MON_READ, &lk);
    monitor_close_kind(ms, g_redis.port, ns, MON_STORE, &st);
    /* One loader call with every missing key once, whatever its partition. */
    ck_assert_int_eq(atomic_load(&bl.calls), 1);
    ck_assert_int_eq(atomic_load(&bl.keys), N);
    assert_loaded(kp, N + 1, out);
    release_all(out, N + 1);
    /* One lock script and one store script per partition, each kind on
     * one connection, back to back; every key locked and stored once
     * (a not-found one as the empty marker). */
    monitored *ph[2] = {&lk, &st};
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(ph[k]->calls, P);
        for (unsigned p = 0; p < P; p++)
            ck_assert_int_eq(ph[k]->parts[p], 1);
        ck_assert_int_eq(ph[k]->nclients, 1);
        ck_assert_int_eq(ph[k]->between, 0);
        ck_assert_int_eq(ph[k]->keys, N);
    }
    sc_load_stats ls;
    sc_load_stats_get(b, SC_WINDOW_TOTAL, &ls);
    ck_assert_uint_eq(ls.misses, N);
    ck_assert_uint_eq(ls.errors, 0);

    /* Stored in Redis: the values in their partitions, and a second pod
     * answers every key, the not-found ones too, without loading. */
    for (int i = 0; i < N; i++) {
        char *v = redis_value(ns, keys[i]);
        if (i % 10 == 3)
            ck_assert_msg(strncmp(v, "L:", 2) != 0, "%s: %s", keys[i], v); /* the marker: checked below */
        else
            assert_is_loaded(v, keys[i]);
        free(v);
    }
    sc_cache *c = part_pod(ns, "c");
    batch_loader none = {0};
    ck_assert_int_eq(sc_fetch_batch(c, kp, N + 1, 0, load_batch_counted, &none, out), SC_OK);
    ck_assert_int_eq(atomic_load(&none.calls), 0);
    assert_loaded(kp, N + 1, out);
    release_all(out, N + 1);
    sc_load_stats_get(c, SC_WINDOW_TOTAL, &ls);
    ck_assert_uint_eq(ls.hits, N);
    ck_assert_uint_eq(ls.misses, 0);

    /* A key another pod is loading is waited for (its value, not ours),
     * while the keys of the other partitions load in the meantime. */
    sc_cache *o = part_pod(ns, "o");
    enum { W = 32 };
    char wk[W][16];
    const char *wp[W];
    batch_keys(NULL, wk, wp, W, "w");
    slow_load sl = {.c = o, .key = wk[0]};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, slow_fetch_main, &sl), 0);
    WAIT_UNTIL(atomic_load(&sl.started), 3000);
    batch_loader wl = {0};
    sc_value *wout[W];
    ck_assert_int_eq(sc_fetch_batch(b, wp, W, 0, load_batch_counted, &wl, wout), SC_OK);
    pthread_join(t, NULL);
    ck_assert_int_eq(sl.st, SC_OK);
    ck_assert_str_eq(sc_value_data(sl.v), "O:w0");
    ck_assert_str_eq(sc_value_data(wout[0]), "O:w0");
    ck_assert_int_eq(atomic_load(&wl.calls), 1);
    ck_assert_int_eq(atomic_load(&wl.keys), W - 1);
    assert_loaded(wp + 1, W - 1, wout + 1);
    release_all(wout, W);
    sc_value_release(sl.v);
    sc_close(o);
    sc_close(c);
    sc_close(b);
}
END_TEST

START_TEST(get_many_timeout)
{
    sc_options o = part_options(NS("bynode_to"), "a", P);
    o.redis_timeout_ms = 200;
    sc_cache *a = test_open(&o);
    enum { N = 40 };
    char keys[N][16];
    const char *kp[N];
    batch_keys(NULL, keys, kp, N, "t");
    sc_value *out[N];
    redisReply *r = cmd("CLIENT PAUSE 1000 ALL");
    freeReplyObject(r);
    ck_assert_int_eq(sc_get_many(a, kp, N, out), SC_ERR_TIMEOUT);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_null(out[i]);
    ck_assert_msg(strstr(sc_errmsg(a), "timeout") && strstr(sc_errmsg(a), "partition"), "%s", sc_errmsg(a));
    test_sleep_ms(1100);
    ck_assert_int_eq(sc_get_many(a, kp, N, out), SC_OK);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_null(out[i]);
    sc_close(a);
}
END_TEST

/* Threads calling sc_get_many at once on one partitioned pod share the
 * partitions' pools (the pipelined exchanges take turns over them): every
 * call answers, and right. */
typedef struct many_reader {
    sc_cache *c;
    const char *const *kp;
    int n;
    int bad; /* calls that failed or answered wrong */
} many_reader;

static void *many_reader_main(void *arg)
{
    many_reader *m = arg;
    sc_value *out[64];
    for (int round = 0; round < 50; round++) {
        if (sc_get_many(m->c, m->kp, (size_t)m->n, out) != SC_OK) {
            m->bad++;
            continue;
        }
        for (int i = 0; i < m->n; i++) {
            /* batch_keys: every fourth key absent, the others their own value */
            int want = i % 4 != 3;
            if ((out[i] != NULL) != want || (out[i] && strcmp(sc_value_data(out[i]), m->kp[i]) != 0))
                m->bad++;
            sc_value_release(out[i]);
        }
    }
    return NULL;
}

START_TEST(get_many_threads)
{
    const char *ns = NS("bynode_mt");
    sc_cache *a = part_pod(ns, "a");
    enum { N = 40, T = 4 };
    char keys[N][16];
    const char *kp[N];
    batch_keys(a, keys, kp, N, "m");
    /* Local tiers of one entry per partition: nearly every read goes to Redis. */
    sc_options o = part_options(ns, "b", P);
    o.local_max_entries = P;
    sc_cache *b = test_open(&o);
    many_reader r[T];
    pthread_t t[T];
    for (int i = 0; i < T; i++) {
        r[i] = (many_reader){b, kp, N, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, many_reader_main, &r[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(r[i].bad, 0);
    }
    sc_close(a);
    sc_close(b);
}
END_TEST

/* ---- write-behind and tags ---- */

typedef struct saved {
    pthread_mutex_t mu;
    int n;
    char keys[64][16];
    int deleted[64];
} saved;

static sc_status save(const sc_dirty *items, size_t n, void *ud)
{
    saved *s = ud;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n && s->n < 64; i++) {
        snprintf(s->keys[s->n], sizeof s->keys[s->n], "%s", items[i].key);
        s->deleted[s->n] = items[i].value == NULL;
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
    return SC_OK;
}

START_TEST(behind_and_tags)
{
    static saved sv = {.mu = PTHREAD_MUTEX_INITIALIZER};
    sc_options o = part_options(NS("behind"), "saver", P);
    o.save_fn = save;
    o.save_ud = &sv;
    o.writeback_interval_ms = 50;
    sc_cache *saver = test_open(&o);
    sc_cache *w = part_pod(NS("behind"), "writer");
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "w%d", i);
        ck_assert_int_eq(sc_set_behind(w, key, "x", 1, 0), SC_OK);
    }
    ck_assert_int_eq(sc_delete_behind(w, "w0"), SC_OK);
    ck_assert_int_eq(sc_flush_behind(w, 10000), SC_OK);
    pthread_mutex_lock(&sv.mu);
    ck_assert_int_ge(sv.n, 20); /* w0's set and delete may share a batch */
    int seen[20] = {0}, del0 = 0;
    for (int i = 0; i < sv.n; i++) {
        int k = atoi(sv.keys[i] + 1);
        seen[k]++;
        del0 |= k == 0 && sv.deleted[i];
    }
    pthread_mutex_unlock(&sv.mu);
    for (int i = 0; i < 20; i++)
        ck_assert_int_ge(seen[i], 1);
    ck_assert(del0);
    ck_assert_uint_eq(test_stats(w).behind_queued, 21);
    ck_assert_uint_eq(test_stats(saver).behind_saved, 21);
    ck_assert_uint_eq(test_stats(w).behind_pending, 0);

    /* A tag spans partitions: one call invalidates it in every one. */
    const char *tags[] = {"t"};
    int used[P] = {0};
    for (int i = 0; i < 24; i++) {
        snprintf(key, sizeof key, "t%d", i);
        ck_assert_int_eq(sc_set_tagged(w, key, "tagged", 6, 0, tags, 1), SC_OK);
        used[partition_of(key, P)] = 1;
        ck_assert(get_is(saver, key, "tagged"));
    }
    int n_used = 0;
    for (int p = 0; p < P; p++)
        n_used += used[p];
    ck_assert_int_ge(n_used, 8);
    ck_assert_int_eq(sc_set(w, "untagged", "u", 1, 0), SC_OK);
    ck_assert_int_eq(sc_invalidate_tag(w, "t"), SC_OK);
    for (int i = 0; i < 24; i++) {
        snprintf(key, sizeof key, "t%d", i);
        ck_assert(get_is(w, key, "<none>"));
        WAIT_UNTIL(has_local(saver, key, NULL), 3000);
        ck_assert(get_is(saver, key, "<none>"));
    }
    ck_assert(get_is(saver, "untagged", "u"));
    sc_close(w);
    sc_close(saver);
}
END_TEST

/* A clear makes every tag invalidation moot (each key written before it is
 * below the floor, each one after it above every invalidation version), so
 * it drops the tag hash of each partition: {ns}:tags grows only between
 * clears. Checked with one partition and with P. */
static void clear_drops_tags(const char *ns, unsigned nparts)
{
    sc_options o = part_options(ns, "a", nparts);
    sc_cache *a = test_open(&o);
    const char *tags[] = {"t"};
    ck_assert_int_eq(sc_set_tagged(a, "old", "1", 1, 0, tags, 1), SC_OK);
    ck_assert_int_eq(sc_invalidate_tag(a, "t"), SC_OK);
    ck_assert(get_is(a, "old", "<none>"));
    char tk[300];
    unsigned with_field = 0;
    for (unsigned p = 0; p < nparts; p++) {
        if (nparts == 1)
            snprintf(tk, sizeof tk, "{%s}:tags", ns);
        else
            snprintf(tk, sizeof tk, "{%s#%u}:tags", ns, p);
        with_field += cmd_int("HEXISTS %s t", tk) == 1;
    }
    ck_assert_uint_eq(with_field, nparts);
    ck_assert_int_eq(sc_set_tagged(a, "kept", "2", 1, 0, tags, 1), SC_OK);
    ck_assert_int_eq(sc_clear(a), SC_OK);
    for (unsigned p = 0; p < nparts; p++) {
        if (nparts == 1)
            snprintf(tk, sizeof tk, "{%s}:tags", ns);
        else
            snprintf(tk, sizeof tk, "{%s#%u}:tags", ns, p);
        ck_assert_int_eq(cmd_int("EXISTS %s", tk), 0);
    }
    /* Before the clear: absent (the floor); after it: the tag is alive. */
    ck_assert(get_is(a, "kept", "<none>"));
    ck_assert_int_eq(sc_set_tagged(a, "new", "3", 1, 0, tags, 1), SC_OK);
    sc_options ob = part_options(ns, "b", nparts);
    sc_cache *b = test_open(&ob);
    ck_assert(get_is(b, "new", "3"));
    ck_assert(get_is(b, "old", "<none>"));
    ck_assert_int_eq(sc_invalidate_tag(b, "t"), SC_OK);
    ck_assert(get_is(b, "new", "<none>"));
    sc_close(a);
    sc_close(b);
}

START_TEST(clear_drops_tag_hash)
{
    clear_drops_tags(NS("tagclear1"), 1);
    clear_drops_tags(NS("tagclear"), P);
}
END_TEST

/* ---- every pod uses the same count ---- */

static sc_status open_status(const sc_options *o, const char **msg)
{
    sc_cache *c = NULL;
    sc_status s = sc_open(o, &c);
    *msg = sc_errmsg(NULL);
    if (c)
        sc_close(c);
    return s;
}

START_TEST(count_agreement)
{
    const char *msg;
    sc_cache *a = part_pod(NS("agree"), "a");
    sc_options o = part_options(NS("agree"), "b", 8);
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 16"));
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 8"));
    o.partitions = 1;
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 16"));
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 1 "));
    sc_close(a);

    /* A namespace used unpartitioned refuses a partitioned pod, and the
     * other way round, even one whose history predates the count. */
    sc_cache *u = test_pod(NS("plain"), "u");
    o = part_options(NS("plain"), "b", 4);
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 1,"));
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 4"));
    sc_close(u);
    redisReply *r = cmd("HDEL {%s}:meta partitions", NS("plain"));
    freeReplyObject(r);
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 1,"));
    u = test_pod(NS("plain"), "u"); /* records 1 again */
    sc_close(u);

    /* One partition's own record disagreeing is enough, and the message
     * names that partition. */
    r = cmd("HSET {%s#3}:meta partitions 8", NS("half"));
    freeReplyObject(r);
    o = part_options(NS("half"), "x", P);
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 8"));
    ck_assert_ptr_nonnull(strstr(msg, "partition 3 of 16"));

    /* Bad options. */
    o = part_options("a#b", "x", 1);
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "'#'"));
    o = part_options(NS("chan"), "x", 4);
    o.channel = "mine";
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "channel"));
    o = part_options(NS("many"), "x", 100000);
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "partitions"));
}
END_TEST

/* One partition's data is lost while pods run (its master lost with its
 * slot, a Redis restarted empty, an operator's DEL): the running pods
 * resynchronise it, which seeds the partition's counter and epoch again.
 * The namespace is still the same partitioned namespace: a pod (re)started
 * afterwards with the same count must open, not be told the namespace is
 * used unpartitioned. */
START_TEST(partition_lost_then_pod_opens)
{
    sc_cache *a = part_pod(NS("lostpart"), "a");
    ck_assert_int_eq(sc_set(a, "foo", "bar", 3, 0), SC_OK); /* partition 7 */
    uint64_t changes = test_stats(a).epoch_changes;
    redisReply *r = cmd("DEL {%s#7}:meta {%s#7}:seq {%s#7}:log {%s#7}:k:foo", NS("lostpart"), NS("lostpart"),
                        NS("lostpart"), NS("lostpart"));
    freeReplyObject(r);
    /* a's heartbeat finds the partition gone and starts a new history. */
    WAIT_UNTIL(cmd_int("HEXISTS {" NS("lostpart") "#7}:meta %s", "epoch") == 1 &&
                   test_stats(a).epoch_changes > changes && test_stats(a).synced == 1,
               5000);
    ck_assert_int_eq(cmd_int("HEXISTS {" NS("lostpart") "#7}:meta %s", "epoch"), 1);
    sc_options o = part_options(NS("lostpart"), "b", P);
    sc_cache *b = NULL;
    sc_status s = sc_open(&o, &b);
    ck_assert_msg(s == SC_OK, "sc_open: %s: %s", sc_strerror(s), sc_errmsg(NULL));
    ck_assert_int_eq(sc_set(b, "foo", "again", 5, 0), SC_OK);
    ck_assert(get_is(a, "foo", "again"));
    /* And the count stays enforced for that partition. */
    o = part_options(NS("lostpart"), "c", 8);
    const char *msg;
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    sc_close(b);
    sc_close(a);
}
END_TEST

/* {ns}:meta of a partitioned namespace holds only the count, and nothing
 * writes it again once it is lost (a Redis restarted empty or flushed while
 * the pods run: they seed their partitions again, not {ns}:meta). A pod
 * opened with partitions = 1 (or synccache-cli, which takes the count from
 * {ns}:meta) must still be refused: the namespace's partitions are in use,
 * and it would read and write {ns}:... that no partitioned pod sees. */
START_TEST(count_lost_unpartitioned_refused)
{
    sc_cache *a = part_pod(NS("countlost"), "a");
    ck_assert_int_eq(sc_set(a, "foo", "bar", 3, 0), SC_OK);
    redisReply *r = cmd("DEL {%s}:meta", NS("countlost"));
    freeReplyObject(r);
    const char *msg;
    sc_options o = part_options(NS("countlost"), "b", 1);
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 16"));
    ck_assert_ptr_nonnull(strstr(msg, "partitions = 1 "));
    /* Nothing was recorded: a pod with the namespace's count still opens
     * (and records it again). */
    ck_assert_int_eq(cmd_int("EXISTS {%s}:meta", NS("countlost")), 0);
    sc_cache *c = part_pod(NS("countlost"), "c");
    ck_assert(get_is(c, "foo", "bar"));
    sc_close(c);
    r = cmd("HGET {%s}:meta partitions", NS("countlost"));
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->str, "16");
    freeReplyObject(r);
    /* The same once only the partitions' seeded histories are left (their
     * counts lost too): the namespace is still partitioned. */
    for (int p = 0; p < P; p++) {
        r = cmd("HDEL {%s#%d}:meta partitions", NS("countlost"), p);
        freeReplyObject(r);
    }
    r = cmd("DEL {%s}:meta", NS("countlost"));
    freeReplyObject(r);
    ck_assert_int_eq(open_status(&o, &msg), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(msg, "partitioned"));
    sc_close(a);
}
END_TEST

/* ---- one partition loses an event ---- */

START_TEST(lost_event_in_one_partition)
{
    sc_cache *a = part_pod(NS("lost"), "a");
    sc_cache *b = part_pod(NS("lost"), "b");
    const char *victim = "victim";
    unsigned pv = partition_of(victim, P);
    /* A key of another partition, to see that it stays warm. */
    char other[16];
    for (int i = 0;; i++) {
        snprintf(other, sizeof other, "o%d", i);
        if (partition_of(other, P) != pv)
            break;
    }
    ck_assert_int_eq(sc_set(a, victim, "old", 3, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, other, "kept", 4, 0), SC_OK);
    ck_assert(get_is(b, victim, "old"));
    ck_assert(get_is(b, other, "kept"));
    ck_assert(has_local(b, victim, "old"));
    uint64_t flushes = test_stats(b).flushes;

    /* A write in the victim's partition that no pod hears of and the log
     * does not hold: the counter moves, the value changes. */
    char pns[300];
    snprintf(pns, sizeof pns, "%s#%u", NS("lost"), pv);
    redisReply *r = cmd("INCR {%s}:seq", pns);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    r = cmd("HSET {%s}:k:%s value fresh version %lld", pns, victim, v);
    freeReplyObject(r);

    /* The next heartbeat shows b the gap; the log cannot fill it, so b drops
     * that partition's copies (and only those) and reads Redis again.
     * (Server-assisted invalidation may drop the victim's copy before, at
     * the HSET: the flush still comes with the heartbeat.) */
    WAIT_UNTIL(has_local(b, victim, NULL) && test_stats(b).flushes > flushes, 5000);
    ck_assert(has_local(b, victim, NULL));
    ck_assert(get_is(b, victim, "fresh"));
    ck_assert_uint_gt(test_stats(b).flushes, flushes);
    ck_assert(has_local(b, other, "kept"));
    WAIT_UNTIL(test_stats(b).synced == 1, 5000);
    ck_assert_uint_eq(test_stats(b).synced, 1);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* The keys of one partition go back to an earlier state (its seq, meta, log
 * and value restored: what DEBUG RELOAD of an older snapshot or a restore
 * from a backup does) while every pod stays subscribed and the other
 * partitions keep going: its epoch is unchanged, only its counter is
 * behind what the pods applied. They must notice (at their next
 * heartbeat), flush that partition's copies only, and move its counter
 * past the lost versions, so that a compare-and-set made against a lost
 * write cannot match a later write given the same number (ABA). */
static void dump_or_restore(const char *const *keys, int n, redisReply **dumps, int restore)
{
    redisContext *rc = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(rc);
    for (int i = 0; i < n; i++) {
        if (!restore) {
            dumps[i] = redisCommand(rc, "DUMP %s", keys[i]);
            ck_assert_int_eq(dumps[i]->type, REDIS_REPLY_STRING);
            continue;
        }
        redisReply *r = redisCommand(rc, "RESTORE %s 0 %b REPLACE", keys[i], dumps[i]->str, dumps[i]->len);
        ck_assert_msg(r->type == REDIS_REPLY_STATUS, "RESTORE %s: %s", keys[i], r->str);
        freeReplyObject(r);
        freeReplyObject(dumps[i]);
    }
    redisFree(rc);
}

START_TEST(partition_rolled_back_under_subscription)
{
    const char *ns = NS("rollback");
    unsigned pf = partition_of("foo", P);
    char other[16];
    for (int i = 0;; i++) {
        snprintf(other, sizeof other, "o%d", i);
        if (partition_of(other, P) != pf)
            break;
    }
    sc_cache *a = part_pod(ns, "a");
    sc_cache *b = part_pod(ns, "b");
    ck_assert_int_eq(sc_set(a, "foo", "one", 3, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, other, "kept", 4, 0), SC_OK);
    ck_assert(get_is(b, "foo", "one"));
    ck_assert(get_is(b, other, "kept"));
    char k[4][64];
    const char *kp[4];
    const char *suffix[4] = {"seq", "meta", "log", "k:foo"};
    for (int i = 0; i < 4; i++) {
        snprintf(k[i], sizeof k[i], "{%s#%u}:%s", ns, pf, suffix[i]);
        kp[i] = k[i];
    }
    redisReply *dumps[4];
    dump_or_restore(kp, 4, dumps, 0);
    ck_assert_int_eq(sc_set(a, "foo", "two", 3, 0), SC_OK);
    uint64_t lost;
    ck_assert_int_eq(sc_version_of(a, "foo", &lost), SC_OK);
    WAIT_UNTIL(has_local(b, "foo", "two"), 3000);
    ck_assert(has_local(b, "foo", "two"));
    uint64_t fa = test_stats(a).flushes, fb = test_stats(b).flushes;
    dump_or_restore(kp, 4, dumps, 1);

    WAIT_UNTIL(test_stats(a).flushes > fa && test_stats(b).flushes > fb, 3000);
    ck_assert_uint_gt(test_stats(a).flushes, fa);
    ck_assert_uint_gt(test_stats(b).flushes, fb);
    ck_assert(get_is(a, "foo", "one"));
    ck_assert(get_is(b, "foo", "one"));
    ck_assert(has_local(b, other, "kept")); /* that partition only */
    /* A pod that never saw the lost version writes the key: its version is
     * a new one, so the compare-and-set against the lost write fails. */
    sc_cache *c = part_pod(ns, "c");
    ck_assert_int_eq(sc_set(c, "foo", "three", 5, 0), SC_OK);
    uint64_t now_v;
    ck_assert_int_eq(sc_version_of(c, "foo", &now_v), SC_OK);
    ck_assert_uint_ne(now_v, lost);
    ck_assert_int_eq(sc_set_if_version(a, "foo", "cas", 3, 0, lost), SC_ERR_CONFLICT);
    ck_assert(get_is(c, "foo", "three"));
    sc_close(c);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(subscribers_killed)
{
    sc_cache *a = part_pod(NS("kill"), "a");
    sc_cache *b = part_pod(NS("kill"), "b");
    char key[16];
    for (int i = 0; i < 32; i++) {
        snprintf(key, sizeof key, "s%d", i);
        ck_assert_int_eq(sc_set(a, key, "one", 3, 0), SC_OK);
        ck_assert(get_is(b, key, "one"));
    }
    uint64_t reconnects = test_stats(b).reconnects;
    /* Every subscriber of every pod goes; writes go on meanwhile. */
    redisReply *r = cmd("CLIENT KILL TYPE pubsub");
    freeReplyObject(r);
    for (int i = 0; i < 32; i++) {
        snprintf(key, sizeof key, "s%d", i);
        ck_assert_int_eq(sc_set(a, key, "two", 3, 0), SC_OK);
    }
    /* Once every partition resubscribed and applied every write (from its
     * log what its stream missed, live what came after: a partition that
     * resubscribed during the writes gets the rest as events in flight), no
     * old value anywhere. */
    WAIT_UNTIL(test_stats(b).synced == 1 && test_stats(b).reconnects >= reconnects + P &&
                   test_stats(b).last_seq == counters_sum(NS("kill")),
               5000);
    ck_assert_uint_ge(test_stats(b).reconnects, reconnects + P);
    ck_assert_uint_eq(test_stats(b).synced, 1);
    ck_assert_uint_eq(test_stats(b).last_seq, counters_sum(NS("kill")));
    for (int i = 0; i < 32; i++) {
        snprintf(key, sizeof key, "s%d", i);
        ck_assert(get_is(b, key, "two"));
    }
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(stats_metrics_errmsg)
{
    sc_cache *a = part_pod(NS("metrics"), "a");
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "m%d", i);
        ck_assert_int_eq(sc_set(a, key, "v", 1, 0), SC_OK);
        sc_value *v;
        ck_assert_int_eq(sc_get(a, key, &v), SC_OK);
        sc_value_release(v);
    }
    sc_stats st = test_stats(a);
    ck_assert_uint_eq(st.local_hits, 10);
    ck_assert_uint_eq(st.local_entries, 10);
    ck_assert_uint_eq(st.events_published, 10);
    static char buf[1 << 16];
    size_t n = sc_metrics_text(a, buf, sizeof buf);
    ck_assert_uint_lt(n, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "synccache_local_hits_total{ns=\"" NS("metrics") "\",pod=\"a\"} 10\n"));
    ck_assert_ptr_null(strstr(buf, "#0"));
    ck_assert_ptr_nonnull(
        strstr(buf, "synccache_remote_set_duration_seconds_count{ns=\"" NS("metrics") "\",pod=\"a\"} 10\n"));
    /* A partition's failure shows on the cache the caller holds. */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(sc_set(a, big, "v", 1, 0), SC_ERR_TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(a), "max_key_bytes"));
    ck_assert_int_eq(sc_set(a, NULL, "v", 1, 0), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(a), "NULL"));
    sc_close(a);
}
END_TEST

/* local_max_entries is split over the partitions' local tiers so that the
 * pod as a whole keeps it: 10 over 4 partitions is 3 + 3 + 2 + 2, not
 * 4 x 3 = 12. */
START_TEST(local_bound_split_exactly)
{
    sc_options o = part_options(NS("bound"), "a", 4);
    o.local_max_entries = 10;
    sc_cache *a = test_open(&o);
    char key[16];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "b%d", i);
        ck_assert_int_eq(sc_set(a, key, "v", 1, 0), SC_OK);
    }
    sc_stats st = test_stats(a);
    ck_assert_uint_le(st.local_entries, 10);
    ck_assert_uint_ge(st.local_entries, 8);
    sc_close(a);
}
END_TEST

/* The application's loop carries every partition's subscription. */
START_TEST(caller_event_base)
{
    struct event_base *base = event_base_new();
    sc_options o = part_options(NS("base"), "looped", P);
    o.event_base = base;
    sc_cache *l = test_open(&o);
    sc_cache *a = part_pod(NS("base"), "a");
    ck_assert_uint_eq(test_stats(l).synced, 0);
    /* Unsynced: reads go to Redis. */
    ck_assert_int_eq(sc_set(a, "early", "e", 1, 0), SC_OK);
    ck_assert(get_is(l, "early", "e"));
    long long deadline = test_now_ms() + 5000;
    while (!test_stats(l).synced && test_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_uint_eq(test_stats(l).synced, 1);
    char key[16];
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "e%d", i);
        ck_assert_int_eq(sc_set(a, key, "v", 1, 0), SC_OK);
    }
    deadline = test_now_ms() + 5000;
    while (test_stats(l).events_applied < 16 && test_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_uint_eq(test_stats(l).events_applied, 16);
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "e%d", i);
        ck_assert(has_local(l, key, "v"));
    }
    sc_close(l);
    sc_close(a);
    event_base_free(base);
}
END_TEST

/* ---- Redis Cluster: one namespace over several masters ---- */

static sc_test_cluster g_cl;

/* The master owning partition p's slot. */
static int master_of_part(const char *ns, unsigned p)
{
    char tag[300];
    snprintf(tag, sizeof tag, "{%s#%u}", ns, p);
    return sc_test_cluster_master_of(&g_cl, tag);
}

/* The value of key in its partition, read on the slot's owner. */
static char *cluster_value(const char *ns, const char *key, void *ud)
{
    (void)ud;
    unsigned p = partition_of(key, P);
    for (int attempt = 0; attempt < 50; attempt++) {
        int port = master_of_part(ns, p);
        redisReply *r = port ? sc_test_node_cmd(port, "HGET {%s#%u}:k:%s value", ns, p, key) : NULL;
        if (r && r->type != REDIS_REPLY_ERROR) {
            char *out = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : strdup("<none>");
            freeReplyObject(r);
            return out;
        }
        if (r)
            freeReplyObject(r);
        test_sleep_ms(100);
    }
    return strdup("<unreachable>");
}

static sc_cache *cluster_pod(const char *ns, const char *id)
{
    sc_options o = part_options(ns, id, P);
    o.redis_cluster_nodes = g_cl.seeds;
    o.redis_port = 1; /* ignored in cluster mode */
    return test_open(&o);
}

/* The distinct masters of the partitions into port: how many. */
static int masters_of_parts(const char *ns, int port[P])
{
    int nports = 0;
    for (unsigned p = 0; p < P; p++) {
        int at = master_of_part(ns, p), known = 0;
        for (int j = 0; j < nports; j++)
            known |= port[j] == at;
        if (!known)
            port[nports++] = at;
    }
    return nports;
}

/* sc_get_many of keys in every partition on a pod that holds none of them:
 * each master gets one connection carrying the EVALSHAs of exactly the
 * partitions it owns, back to back, and the answers are the per-key
 * path's. */
static void cluster_get_many_by_node(const char *ns, const char *id)
{
    sc_cache *g = cluster_pod(ns, id);
    sc_cache *ref = cluster_pod(ns, "ref");
    enum { N = 64 };
    char keys[N][16];
    const char *kp[N];
    int in[P] = {0};
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "c%d", i); /* c48..c63: never written */
        kp[i] = keys[i];
        in[partition_of(keys[i], P)] = 1;
    }
    int port[P], nports = masters_of_parts(ns, port);
    ck_assert_int_ge(nports, 2);
    redisContext *m[P];
    for (int j = 0; j < nports; j++)
        m[j] = monitor_open(port[j]);
    sc_value *out[N];
    ck_assert_int_eq(sc_get_many(g, kp, N, out), SC_OK);
    for (int j = 0; j < nports; j++) {
        monitored s;
        monitor_close(m[j], port[j], ns, &s);
        int owned = 0;
        for (unsigned p = 0; p < P; p++) {
            int here = in[p] && master_of_part(ns, p) == port[j];
            owned += here;
            ck_assert_int_eq(s.parts[p], here);
        }
        ck_assert_int_eq(s.calls, owned);
        ck_assert_int_eq(s.nclients, owned > 0);
        ck_assert_int_eq(s.between, 0);
    }
    assert_same_answers(ref, kp, N, out);
    for (int i = 0; i < N; i++)
        sc_value_release(out[i]);
    sc_close(g);
    sc_close(ref);
}

/* A partition's slot moves to another master under a pod whose routing
 * still names the old one: its part of the pipelined exchange answers ASK
 * (keys moved, slot not yet reassigned) or MOVED, falls back to its own
 * path, and sc_get_many still answers as the per-key path does. */
static void cluster_get_many_moved(const char *ns)
{
    /* Two pods that hold none of the keys, one for each step. */
    sc_cache *h[2] = {cluster_pod(ns, "h1"), cluster_pod(ns, "h2")};
    sc_cache *ref = cluster_pod(ns, "ref");
    enum { N = 48 };
    char keys[N][16];
    const char *kp[N];
    batch_keys(NULL, keys, kp, N, "c");
    unsigned p = partition_of(keys[1], P);
    char tag[300];
    snprintf(tag, sizeof tag, "{%s#%u}", ns, p);
    unsigned slot = sc_test_cluster_keyslot(&g_cl, tag);
    int src = master_of_part(ns, p), dst = 0;
    for (unsigned q = 0; q < P && !dst; q++)
        if (master_of_part(ns, q) != src)
            dst = master_of_part(ns, q);
    ck_assert_int_ne(dst, 0);
    sc_value *out[N];
    ck_assert_int_eq(sc_test_cluster_migrate_begin(slot, src, dst), 0);
    ck_assert_int_eq(sc_test_cluster_migrate_keys(slot, src, dst), 0);
    ck_assert_int_eq(sc_get_many(h[0], kp, N, out), SC_OK); /* ASK */
    assert_same_answers(ref, kp, N, out);
    for (int i = 0; i < N; i++)
        sc_value_release(out[i]);
    ck_assert_int_eq(sc_test_cluster_migrate_finish(&g_cl, slot, src, dst), 0);
    ck_assert_int_eq(sc_get_many(h[1], kp, N, out), SC_OK); /* MOVED */
    assert_same_answers(ref, kp, N, out);
    for (int i = 0; i < N; i++)
        sc_value_release(out[i]);
    ck_assert_int_eq(master_of_part(ns, p), dst);
    sc_close(h[0]);
    sc_close(h[1]);
    sc_close(ref);
}

/* sc_fetch_batch of keys in every partition over the cluster: each
 * master gets the fetch_lock EVALSHAs, then the fetch_store ones, of
 * exactly the partitions it owns, each kind back to back on one
 * connection; the loader runs once and every value lands on its master. */
static void cluster_fetch_batch_by_node(const char *ns)
{
    sc_cache *g = cluster_pod(ns, "fb");
    enum { N = 64 };
    char keys[N][16];
    const char *kp[N];
    int in[P] = {0};
    batch_keys(NULL, keys, kp, N, "fb");
    for (int i = 0; i < N; i++)
        in[partition_of(keys[i], P)] = 1;
    int port[P], nports = masters_of_parts(ns, port);
    ck_assert_int_ge(nports, 2);
    redisContext *ml[P], *ms[P];
    for (int j = 0; j < nports; j++) {
        ml[j] = monitor_open(port[j]);
        ms[j] = monitor_open(port[j]);
    }
    batch_loader bl = {0};
    sc_value *out[N];
    ck_assert_int_eq(sc_fetch_batch(g, kp, N, 0, load_batch_counted, &bl, out), SC_OK);
    for (int j = 0; j < nports; j++) {
        monitored s[2];
        monitor_close_kind(ml[j], port[j], ns, MON_READ, &s[0]);
        monitor_close_kind(ms[j], port[j], ns, MON_STORE, &s[1]);
        for (int k = 0; k < 2; k++) {
            int owned = 0;
            for (unsigned p = 0; p < P; p++) {
                int here = in[p] && master_of_part(ns, p) == port[j];
                owned += here;
                ck_assert_int_eq(s[k].parts[p], here);
            }
            ck_assert_int_eq(s[k].calls, owned);
            ck_assert_int_eq(s[k].nclients, owned > 0);
            ck_assert_int_eq(s[k].between, 0);
        }
    }
    ck_assert_int_eq(atomic_load(&bl.calls), 1);
    ck_assert_int_eq(atomic_load(&bl.keys), N);
    assert_loaded(kp, N, out);
    release_all(out, N);
    for (int i = 0; i < N; i++) {
        if (i % 10 == 3)
            continue;
        char *v = cluster_value(ns, keys[i], NULL);
        assert_is_loaded(v, keys[i]);
        free(v);
    }
    sc_close(g);
}

START_TEST(cluster_spread_and_converge)
{
    ck_assert_int_eq(sc_test_cluster_start(&g_cl, 3, 0), 0);
    const char *ns = NS("cl");
    /* The partitions' slots fall on several masters. */
    int masters[3] = {0}, nm = 0;
    for (unsigned p = 0; p < P; p++) {
        int port = master_of_part(ns, p);
        ck_assert_int_ne(port, 0);
        int known = 0;
        for (int i = 0; i < nm; i++)
            known |= masters[i] == port;
        if (!known && nm < 3)
            masters[nm++] = port;
    }
    ck_assert_int_ge(nm, 2);

    sc_cache *pods[3] = {cluster_pod(ns, "a"), cluster_pod(ns, "b"), cluster_pod(ns, "c")};
    /* Plain writes from every pod, read back everywhere and on the right
     * master; the keys' masters differ. */
    char key[16], val[16];
    int key_masters[3] = {0}, nk = 0;
    for (int i = 0; i < 48; i++) {
        snprintf(key, sizeof key, "c%d", i);
        snprintf(val, sizeof val, "v%d", i);
        ck_assert_int_eq(sc_set(pods[i % 3], key, val, strlen(val), 0), SC_OK);
        char *s = cluster_value(ns, key, NULL);
        ck_assert_str_eq(s, val);
        free(s);
        int port = master_of_part(ns, partition_of(key, P)), known = 0;
        for (int m = 0; m < nk; m++)
            known |= key_masters[m] == port;
        if (!known && nk < 3)
            key_masters[nk++] = port;
    }
    ck_assert_int_ge(nk, 2);
    for (int i = 0; i < 48; i++) {
        snprintf(key, sizeof key, "c%d", i);
        test_assert_converged(pods, 3, ns, key, 5000, cluster_value, NULL);
    }
    for (int i = 0; i < 48; i += 3) {
        snprintf(key, sizeof key, "c%d", i);
        ck_assert_int_eq(sc_delete(pods[1], key), SC_OK);
    }
    for (int i = 0; i < 48; i++) {
        snprintf(key, sizeof key, "c%d", i);
        test_assert_converged(pods, 3, ns, key, 5000, cluster_value, NULL);
    }

    cluster_get_many_by_node(ns, "g");
    cluster_get_many_moved(ns);
    cluster_fetch_batch_by_node(ns);

    /* A writer over keys of many partitions while the others read. */
    test_writer w;
    memset(&w, 0, sizeof w);
    w.c = pods[0];
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, test_writer_main, &w), 0);
    for (int round = 0; round < 100; round++) {
        snprintf(key, sizeof key, "w%d", round % TEST_WRITER_KEYS);
        char *s = test_get(pods[1 + round % 2], key);
        free(s);
        test_sleep_ms(5);
    }
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    ck_assert_msg(w.failed == 0, "writer failures: %ld (%s)", w.failed, w.first_error);
    ck_assert_int_gt(atomic_load(&w.ok), 0);
    ck_assert_int_eq(test_check_writer(&w, pods, 3, ns, 5000, cluster_value, NULL), 0);

    /* A clear reaches every partition on every master. */
    ck_assert_int_eq(sc_clear(pods[2]), SC_OK);
    for (int i = 0; i < TEST_WRITER_KEYS; i++) {
        snprintf(key, sizeof key, "w%d", i);
        test_assert_converged(pods, 3, ns, key, 5000, cluster_value, NULL);
        char *s = test_get(pods[0], key);
        ck_assert_str_eq(s, "<none>");
        free(s);
    }
    for (int p = 0; p < 3; p++)
        sc_close(pods[p]);
    sc_test_cluster_stop(&g_cl);
}
END_TEST

/* ---- the per-node exchanges of a batch overlap ---- */

/* A namespace (into buf) whose P partitions fall on all 3 masters. */
static const char *ns_on_all_masters(const char *base, char *buf, size_t cap)
{
    for (int n = 0; n < 100; n++) {
        snprintf(buf, cap, "%s%d", base, n);
        int port[P];
        if (masters_of_parts(buf, port) == 3)
            return buf;
    }
    ck_abort_msg("no namespace with partitions on all 3 masters");
    return NULL;
}

static sc_cache *cluster_pod_with(const char *ns, const char *id, unsigned pool_size, unsigned timeout_ms)
{
    sc_options o = part_options(ns, id, P);
    o.redis_cluster_nodes = g_cl.seeds;
    o.redis_port = 1; /* ignored in cluster mode */
    o.redis_pool_size = pool_size;
    if (timeout_ms)
        o.redis_timeout_ms = timeout_ms;
    o.local_max_entries = P; /* one entry per partition: reads go to Redis */
    o.local_policy = SC_LOCAL_LRU;
    return test_open(&o);
}

/* out[0..n-1] are batch_keys' values of kp: every fourth absent, the others
 * their own key. 0 when one is not. */
static int many_right(const char *const *kp, int n, sc_value **out)
{
    int right = 1;
    for (int i = 0; i < n; i++) {
        int want = i % 4 != 3;
        if ((out[i] != NULL) != want || (out[i] && strcmp(sc_value_data(out[i]), kp[i]) != 0))
            right = 0;
    }
    return right;
}

/* out[0..n-1] are load_batch_counted's values of kp. 0 when one is not. */
static int loaded_right(const char *const *kp, int n, sc_value **out)
{
    int right = 1;
    for (int i = 0; i < n; i++) {
        const char *k = kp[i];
        if (k[strlen(k) - 1] == '3')
            right &= out[i] == NULL;
        else
            right &= out[i] != NULL && strncmp(sc_value_data(out[i]), "L:", 2) == 0 &&
                     strcmp((const char *)sc_value_data(out[i]) + 2, k) == 0;
    }
    return right;
}

/* A thread of sc_get_many and sc_fetch_batch rounds on a pod shared with
 * others, over the keys of the partitions from `from` on only: a batch's
 * exchanges are grouped in partition order, so threads starting at
 * partitions of different masters meet the nodes in different orders (the
 * case where taking one connection per node at once could deadlock). */
typedef struct overlap_worker {
    sc_cache *c;
    const char *const *kp; /* n keys written as batch_keys does */
    int n;
    int id;
    unsigned from;
    int rounds;
    int bad;               /* calls that failed or answered wrong */
    sc_status first_st;
    char first_err[256];
} overlap_worker;

static void overlap_bad(overlap_worker *w, sc_status st)
{
    if (!w->bad++) {
        w->first_st = st;
        snprintf(w->first_err, sizeof w->first_err, "%s", sc_errmsg(w->c));
    }
}

static void *overlap_worker_main(void *arg)
{
    overlap_worker *w = arg;
    enum { F = 48 };
    const char *mine[64];
    int idx[64], m = 0;
    for (int i = 0; i < w->n && m < 64; i++)
        if (partition_of(w->kp[i], P) >= w->from) {
            idx[m] = i;
            mine[m++] = w->kp[i];
        }
    char fk[F][32];
    const char *fp[F];
    sc_value *out[64];
    for (int round = 0; round < w->rounds; round++) {
        sc_status st = sc_get_many(w->c, mine, (size_t)m, out);
        if (st != SC_OK)
            overlap_bad(w, st);
        else {
            for (int i = 0; i < m; i++) {
                int want = idx[i] % 4 != 3; /* batch_keys */
                if ((out[i] != NULL) != want || (out[i] && strcmp(sc_value_data(out[i]), mine[i]) != 0))
                    overlap_bad(w, SC_OK);
            }
            release_all(out, (size_t)m);
        }
        /* Keys no pod has loaded yet: the lock and the store exchanges. */
        for (int i = 0, j = 0; i < F; j++) {
            snprintf(fk[i], sizeof fk[i], "t%d_%d_%d", w->id, round, j);
            if (partition_of(fk[i], P) >= w->from) {
                fp[i] = fk[i];
                i++;
            }
        }
        batch_loader bl = {0};
        st = sc_fetch_batch(w->c, fp, F, 0, load_batch_counted, &bl, out);
        if (st != SC_OK)
            overlap_bad(w, st);
        else {
            if (!loaded_right(fp, F, out))
                overlap_bad(w, SC_OK);
            release_all(out, F);
        }
    }
    return NULL;
}

/* Starts the cluster of 3 masters, names (into buf) a namespace whose
 * partitions fall on all of them, opens pod pods[0], which writes n keys as
 * batch_keys does, spanning every master, and pods[1] with one connection
 * per pool and redis_timeout_ms timeout_ms (0: the default). */
static void overlap_start(const char *base, char *buf, size_t cap, char (*keys)[16], const char **kp, int n,
                          const char *prefix, unsigned timeout_ms, sc_cache *pods[2])
{
    ck_assert_int_eq(sc_test_cluster_start(&g_cl, 3, 0), 0);
    const char *ns = ns_on_all_masters(base, buf, cap);
    sc_cache *a = pods[0] = cluster_pod(ns, "a");
    pods[1] = cluster_pod_with(ns, "b", 1, timeout_ms);
    batch_keys(a, keys, kp, n, prefix);
    int port[P], on[P] = {0}, nports = masters_of_parts(ns, port), hit = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < nports; j++)
            if (master_of_part(ns, partition_of(keys[i], P)) == port[j] && !on[j]++)
                hit++;
    ck_assert_int_eq(hit, 3);
}

/* sc_get_many of kp (written by batch_keys) and sc_fetch_batch of fp on c
 * both answer every key right; the batch loader's calls. */
static int batches_answer(sc_cache *c, const char *const *kp, const char *const *fp, int n)
{
    sc_value *out[64];
    ck_assert_int_le(n, 64);
    ck_assert_int_eq(sc_get_many(c, kp, (size_t)n, out), SC_OK);
    ck_assert(many_right(kp, n, out));
    release_all(out, (size_t)n);
    batch_loader bl = {0};
    ck_assert_int_eq(sc_fetch_batch(c, fp, (size_t)n, 0, load_batch_counted, &bl, out), SC_OK);
    ck_assert(loaded_right(fp, n, out));
    release_all(out, (size_t)n);
    return atomic_load(&bl.calls);
}

/* sc_get_many and sc_fetch_batch over keys on all three masters (every
 * node's pipeline is written before any node's replies are read) answer
 * every key right, alone and from several threads at once on one pod whose
 * pools have a single connection each (a batch holds one connection per
 * node at once: no deadlock, no timeout). */
START_TEST(cluster_batches_overlap)
{
    enum { N = 48, T = 4 };
    char nsbuf[64], keys[N][16], fk[N][16];
    const char *kp[N], *fp[N];
    sc_cache *pods[2];
    overlap_start(NS("ov"), nsbuf, sizeof nsbuf, keys, kp, N, "o", 0, pods);
    const char *ns = nsbuf;
    sc_cache *b = pods[1];
    batch_keys(NULL, fk, fp, N, "of");
    ck_assert_int_eq(batches_answer(b, kp, fp, N), 1);
    /* Stored on their masters: the other pod, which never held them, reads
     * them from Redis. */
    sc_value *out[N];
    ck_assert_int_eq(sc_get_many(pods[0], fp, N, out), SC_OK);
    ck_assert(loaded_right(fp, N, out));
    release_all(out, N);

    /* Thread i < 3 starts at the lowest partition of master i, thread 3 at
     * partition 0. */
    int port[P];
    masters_of_parts(ns, port);
    unsigned from[T] = {0};
    for (int i = 0; i < 3; i++)
        for (unsigned q = P; q-- > 0;)
            if (master_of_part(ns, q) == port[i])
                from[i] = q;
    overlap_worker w[T];
    pthread_t t[T];
    for (int i = 0; i < T; i++) {
        w[i] = (overlap_worker){.c = b, .kp = kp, .n = N, .id = i, .from = from[i], .rounds = 25};
        ck_assert_int_eq(pthread_create(&t[i], NULL, overlap_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(w[i].bad == 0, "thread %d: %d bad calls, first %s: %s", i, w[i].bad,
                      sc_strerror(w[i].first_st), w[i].first_err);
    }
    sc_close(pods[0]);
    sc_close(b);
    sc_test_cluster_stop(&g_cl);
}
END_TEST

/* A batch that ended with st after starting at t0 timed out within about
 * timeout_ms (not the pause's 3000 ms), with every out[i] NULL and a
 * message naming the paused node (":port"), also when the time ran out
 * waiting for one of the partition's connections, all held by exchanges
 * with that node (seen under TSan). */
static void assert_batch_timed_out(sc_cache *c, sc_status st, long long t0, long timeout_ms, const char *port,
                                   sc_value **out, int n)
{
    long long took = test_now_ms() - t0;
    ck_assert_int_eq(st, SC_ERR_TIMEOUT);
    for (int i = 0; i < n; i++)
        ck_assert_ptr_null(out[i]);
    ck_assert_msg(strstr(sc_errmsg(c), "timeout") && strstr(sc_errmsg(c), port), "%s", sc_errmsg(c));
    ck_assert_msg(took >= timeout_ms - 50 && took < 2000, "took %lld ms", took);
}

/* One master paused: the batch's exchange with it times out after about
 * redis_timeout_ms (the others, begun at the same time, have answered
 * meanwhile) and the batch fails with SC_ERR_TIMEOUT naming that node, as
 * a batch read one node after the other did; once the node is back, the
 * same batches answer. */
START_TEST(cluster_batch_node_paused)
{
    enum { N = 48, TIMEOUT_MS = 300 };
    char nsbuf[64], keys[N][16], fk[N][16];
    const char *kp[N], *fp[N];
    sc_cache *pods[2];
    overlap_start(NS("ovp"), nsbuf, sizeof nsbuf, keys, kp, N, "p", TIMEOUT_MS, pods);
    const char *ns = nsbuf;
    sc_cache *b = pods[1];
    sc_value *out[N];
    ck_assert_int_eq(sc_get_many(b, kp, N, out), SC_OK); /* connections made */
    release_all(out, N);

    int paused = master_of_part(ns, partition_of(keys[0], P));
    char port_str[16];
    snprintf(port_str, sizeof port_str, ":%d", paused);
    long long paused_at = test_now_ms();
    redisReply *r = sc_test_node_cmd(paused, "CLIENT PAUSE 3000 ALL");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_ne(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);

    long long t0 = test_now_ms();
    sc_status st = sc_get_many(b, kp, N, out);
    assert_batch_timed_out(b, st, t0, TIMEOUT_MS, port_str, out, N);
    batch_keys(NULL, fk, fp, N, "pf");
    batch_loader bl = {0};
    t0 = test_now_ms();
    st = sc_fetch_batch(b, fp, N, 0, load_batch_counted, &bl, out);
    assert_batch_timed_out(b, st, t0, TIMEOUT_MS, port_str, out, N);

    /* A paused node holds CLIENT UNPAUSE too: wait the pause out. The
     * timed-out connections were dropped; fresh ones answer. */
    long long left = paused_at + 3100 - test_now_ms();
    if (left > 0)
        test_sleep_ms(left);
    batches_answer(b, kp, fp, N);
    sc_close(pods[0]);
    sc_close(b);
    sc_test_cluster_stop(&g_cl);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("partitions");
    TCase *tc = tcase_create("single");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hash_vector);
    tcase_add_test(tc, keys_spread_over_partitions);
    tcase_add_test(tc, set_delete_clear_propagate);
    tcase_add_test(tc, batches_and_versions);
    tcase_add_test(tc, get_many_by_node);
    tcase_add_test(tc, fetch_batch_by_node);
    tcase_add_test(tc, batch_loader_message);
    tcase_add_test(tc, get_many_timeout);
    tcase_add_test(tc, get_many_threads);
    tcase_add_test(tc, behind_and_tags);
    tcase_add_test(tc, clear_drops_tag_hash);
    tcase_add_test(tc, count_agreement);
    tcase_add_test(tc, partition_lost_then_pod_opens);
    tcase_add_test(tc, count_lost_unpartitioned_refused);
    tcase_add_test(tc, lost_event_in_one_partition);
    tcase_add_test(tc, partition_rolled_back_under_subscription);
    tcase_add_test(tc, subscribers_killed);
    tcase_add_test(tc, stats_metrics_errmsg);
    tcase_add_test(tc, local_bound_split_exactly);
    tcase_add_test(tc, caller_event_base);
    suite_add_tcase(s, tc);
    TCase *cl = tcase_create("cluster");
    tcase_set_timeout(cl, 180);
    tcase_add_test(cl, cluster_spread_and_converge);
    tcase_add_test(cl, cluster_batches_overlap);
    tcase_add_test(cl, cluster_batch_node_paused);
    suite_add_tcase(s, cl);
    return s;
}

int main(void)
{
    return test_run_suite(suite(), NULL);
}
