/* Regression tests for issue 7 (docs/protocol.md, protocol version 2): one
 * test (or a few) per defect of the issue, each against the private
 * redis-server. Every check compares what a pod holds (sc_peek: no Redis
 * read) or serves (sc_get) with what Redis holds under the v2 layout, read
 * with plain commands; waits are WAIT_UNTIL with generous bounds, never
 * assertions on speed.
 *
 * Tests that restart Redis, change its configuration or fill its memory start
 * their own server, because in fork mode the next test would not see the
 * change undone. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#include "pods.h"

sc_test_redis g_redis;

/* ------------------------------------------------------------- layout -- */

/* A Redis key name of the v2 layout (docs/protocol.md), held by value so that
 * it can be used inline: rk(ns, "k", key).s is "{ns}:k:<key>", rk(ns, "seq",
 * NULL).s is "{ns}:seq" (likewise "meta", "log", "events"). */
typedef struct rkey {
    char s[600];
} rkey;

static rkey rk(const char *ns, const char *kind, const char *key)
{
    rkey r;
    if (key)
        snprintf(r.s, sizeof r.s, "{%s}:%s:%s", ns, kind, key);
    else
        snprintf(r.s, sizeof r.s, "{%s}:%s", ns, kind);
    return r;
}

/* ---------------------------------------------------- reading Redis -- */

static redisReply *rcmd(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(rep != NULL, "Redis command failed: %s", rc->errstr);
    return rep;
}

/* A connection for reading Redis, with more patience than the harness's
 * 1 s: under a sanitizer on a loaded machine, Redis copying the 16 MiB
 * values of d6 can take longer than that to answer. */
static redisContext *connect_to(const sc_test_redis *r)
{
    redisContext *rc = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(rc);
    redisSetTimeout(rc, (struct timeval){10, 0});
    return rc;
}

/* An integer held as a string in Redis (0 when absent). */
static uint64_t redis_u64(const sc_test_redis *r, const char *fmt, const char *arg1, const char *arg2)
{
    redisContext *rc = connect_to(r);
    redisReply *rep = arg2 ? rcmd(rc, fmt, arg1, arg2) : rcmd(rc, fmt, arg1);
    uint64_t v = rep->type == REDIS_REPLY_STRING ? strtoull(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    redisFree(rc);
    return v;
}

/* The namespace counter {ns}:seq. */
static uint64_t redis_seq(const sc_test_redis *r, const char *ns)
{
    return redis_u64(r, "GET %s", rk(ns, "seq", NULL).s, NULL);
}

/* The floor of {ns}:meta (0 when absent). */
static uint64_t redis_floor(const sc_test_redis *r, const char *ns)
{
    return redis_u64(r, "HGET %s %s", rk(ns, "meta", NULL).s, "floor");
}

/* What Redis says the value of key is, by the contract: "<none>" when the
 * hash is missing, a tombstone (no value) or below the namespace floor.
 * Caller frees. */
static char *truth_on(const sc_test_redis *r, const char *ns, const char *key)
{
    uint64_t floor = redis_floor(r, ns);
    redisContext *rc = connect_to(r);
    redisReply *rep = rcmd(rc, "HMGET %s value version", rk(ns, "k", key).s);
    char *out = NULL;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_STRING) {
        uint64_t version =
            rep->element[1]->type == REDIS_REPLY_STRING ? strtoull(rep->element[1]->str, NULL, 10) : 0;
        if (version >= floor)
            out = strndup(rep->element[0]->str, rep->element[0]->len);
    }
    freeReplyObject(rep);
    redisFree(rc);
    return out ? out : strdup("<none>");
}

static char *truth(const char *ns, const char *key)
{
    return truth_on(&g_redis, ns, key);
}

/* ------------------------------------------------------ reading pods -- */

/* What c holds locally for key ("<none>", "<error>"). Caller frees. */
static char *peek_str(sc_cache *c, const char *key)
{
    sc_value *v = NULL;
    sc_status s = sc_peek(c, key, &v);
    if (s == SC_NOT_FOUND)
        return strdup("<none>");
    if (s != SC_OK)
        return strdup("<error>");
    char *out = strndup(sc_value_data(v), sc_value_size(v));
    sc_value_release(v);
    return out;
}

static int peek_is(sc_cache *c, const char *key, const char *want)
{
    char *got = peek_str(c, key);
    int eq = strcmp(got, want) == 0;
    free(got);
    return eq;
}

static int synced(sc_cache *c)
{
    return test_stats(c).synced == 1;
}

/* Every pod is synced and has applied everything up to the namespace counter. */
static int quiet_on(const sc_test_redis *r, const char *ns, sc_cache **pods, int n)
{
    uint64_t seq = redis_seq(r, ns);
    for (int i = 0; i < n; i++) {
        sc_stats st = test_stats(pods[i]);
        if (st.synced != 1 || st.last_seq != seq)
            return 0;
    }
    return 1;
}

/* Waits (generously) for quiescence and a little more; returns whether it
 * came. Callers do not assert on it: the data checks that follow say what is
 * wrong, and their message tells whether the pods were quiet. */
static int wait_quiet_on(const sc_test_redis *r, const char *ns, sc_cache **pods, int n, long long ms)
{
    WAIT_UNTIL(quiet_on(r, ns, pods, n), ms);
    test_sleep_ms(250);
    return quiet_on(r, ns, pods, n);
}

/* A growing report of mismatches, failed once at the end with all of them. */
typedef struct report {
    char text[4096];
    size_t len;
    int count;
} report;

static void note(report *rp, const char *fmt, ...)
{
    rp->count++;
    if (rp->len >= sizeof rp->text - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(rp->text + rp->len, sizeof rp->text - rp->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        rp->len += (size_t)w < sizeof rp->text - rp->len ? (size_t)w : sizeof rp->text - rp->len - 1;
}

static void pod_state(report *rp, sc_cache *c, const sc_test_redis *r, const char *ns)
{
    sc_stats st = test_stats(c);
    note(rp, "[pod %s: synced %" PRIu64 " last_seq %" PRIu64 " (Redis %" PRIu64 ") flushes %" PRIu64 "] ",
         sc_pod_id(c), st.synced, st.last_seq, redis_seq(r, ns), st.flushes);
    rp->count--; /* context, not a mismatch */
}

/* Every key of keys[] that pod c holds (sc_peek) equals Redis; a key absent
 * in Redis is absent locally. With use_get, sc_get must return Redis' value
 * as well. */
static void check_pod(report *rp, const sc_test_redis *r, const char *ns, sc_cache *c, const char *const *keys,
                      int nkeys, int use_get)
{
    for (int i = 0; i < nkeys; i++) {
        char *want = truth_on(r, ns, keys[i]);
        char *held = peek_str(c, keys[i]);
        if (strcmp(held, "<none>") != 0 && strcmp(held, want) != 0)
            note(rp, "pod %s (ns %s) holds %s=%s, Redis %s; ", sc_pod_id(c), ns, keys[i], held, want);
        if (use_get) {
            char *got = test_get(c, keys[i]);
            if (strcmp(got, want) != 0)
                note(rp, "pod %s (ns %s) sc_get %s=%s, Redis %s; ", sc_pod_id(c), ns, keys[i], got, want);
            free(got);
        }
        free(held);
        free(want);
    }
}

static void check_pods(report *rp, const sc_test_redis *r, const char *ns, sc_cache **pods, int n,
                       const char *const *keys, int nkeys, int use_get)
{
    for (int p = 0; p < n; p++)
        check_pod(rp, r, ns, pods[p], keys, nkeys, use_get);
}

/* Notes every key of keys[] that pod c (named name in the report) still
 * holds locally or still serves from sc_get: after a clear, none may be. */
static void note_still_served(report *rp, sc_cache *c, const char *name, const char *const *keys, int nkeys)
{
    for (int i = 0; i < nkeys; i++) {
        char *held = peek_str(c, keys[i]);
        char *got = test_get(c, keys[i]);
        if (strcmp(held, "<none>") != 0 || strcmp(got, "<none>") != 0)
            note(rp, "%s: %s held %s, sc_get %s; ", name, keys[i], held, got);
        free(held);
        free(got);
    }
}

#define ASSERT_REPORT_CLEAN(rp, what)                                                                 \
    ck_assert_msg((rp).count == 0, "%s: %d mismatch(es): %s", what, (rp).count, (rp).text)

/* Key names k0..k(n-1). */
#define MAXKEYS 256
static char key_store[MAXKEYS][16];
static const char *key_names[MAXKEYS];

static const char *const *keys_k(int n)
{
    for (int i = 0; i < n && i < MAXKEYS; i++) {
        snprintf(key_store[i], sizeof key_store[i], "k%d", i);
        key_names[i] = key_store[i];
    }
    return key_names;
}

/* ------------------------------------------------------------ pods -- */

static sc_options opts_on(const sc_test_redis *r, const char *ns, const char *id)
{
    sc_options o = test_options(ns, id);
    o.redis_port = r->port;
    return o;
}

static sc_cache *pod_on(const sc_test_redis *r, const char *ns, const char *id)
{
    sc_options o = opts_on(r, ns, id);
    return test_open(&o);
}

static void publish(const sc_test_redis *r, const char *channel, const char *msg)
{
    ck_assert_int_eq(sc_test_redis_cmd(r, "PUBLISH %s %s", channel, msg), 0);
}

static void kill_pubsub(const sc_test_redis *r)
{
    redisContext *rc = connect_to(r);
    redisReply *rep = rcmd(rc, "CLIENT KILL TYPE pubsub");
    ck_assert_msg(rep->type == REDIS_REPLY_INTEGER, "CLIENT KILL: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
    freeReplyObject(rep);
    redisFree(rc);
}

/* Kills the subscription opened last (the highest client id among pubsub
 * clients): the pod opened last in this process, since sc_open returns
 * subscribed and tests run one at a time. */
static void kill_newest_subscriber(const sc_test_redis *r)
{
    redisContext *rc = connect_to(r);
    redisReply *rep = rcmd(rc, "CLIENT LIST TYPE pubsub");
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    unsigned long long newest = 0;
    for (const char *p = rep->str; (p = strstr(p, "id=")) != NULL; p += 3) {
        if (p != rep->str && p[-1] != '\n')
            continue;
        unsigned long long id = strtoull(p + 3, NULL, 10);
        if (id > newest)
            newest = id;
    }
    freeReplyObject(rep);
    ck_assert_msg(newest > 0, "no pubsub client to kill");
    freeReplyObject(rcmd(rc, "CLIENT KILL ID %llu", newest));
    redisFree(rc);
}

static uint64_t redis_time_ms(const sc_test_redis *r)
{
    redisContext *rc = connect_to(r);
    redisReply *rep = rcmd(rc, "TIME");
    uint64_t ms = strtoull(rep->element[0]->str, NULL, 10) * 1000 + strtoull(rep->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(rep);
    redisFree(rc);
    return ms;
}

/* ------------------------------------------------- racing workloads -- */

typedef struct worker {
    sc_cache *pod;
    const char *tag;     /* written into values */
    int nkeys;
    unsigned seed;
    int set_pct, inval_pct, del_pct; /* the rest are gets */
    int clear_per_mille;             /* sc_clear now and then */
    long long run_ms;
    int ops, errors;
    char first_error[256];
} worker;

#define WORKER_MIN_OPS 50

static void *worker_main(void *p)
{
    worker *w = p;
    long long end = test_now_ms() + w->run_ms;
    char key[16], val[64];
    /* At least run_ms and at least WORKER_MIN_OPS operations: a loaded
     * machine that stalls a thread for the whole window must not turn a
     * round into one where nothing raced. */
    for (int i = 0; test_now_ms() < end || w->ops < WORKER_MIN_OPS; i++) {
        int k = (int)(rand_r(&w->seed) % (unsigned)w->nkeys);
        int dice = (int)(rand_r(&w->seed) % 100);
        snprintf(key, sizeof key, "k%d", k);
        snprintf(val, sizeof val, "%s-%d", w->tag, i);
        sc_status s;
        const char *what;
        if (w->clear_per_mille && (int)(rand_r(&w->seed) % 1000) < w->clear_per_mille) {
            what = "clear";
            s = sc_clear(w->pod);
        } else if (dice < w->set_pct) {
            what = "set";
            s = sc_set(w->pod, key, val, strlen(val), 0);
        } else if (dice < w->set_pct + w->inval_pct) {
            what = "set_invalidate";
            s = sc_set_invalidate(w->pod, key, val, strlen(val), 0);
        } else if (dice < w->set_pct + w->inval_pct + w->del_pct) {
            what = "delete";
            s = sc_delete(w->pod, key);
        } else {
            what = "get";
            sc_value *v = NULL;
            s = sc_get(w->pod, key, &v);
            sc_value_release(v);
            if (s == SC_NOT_FOUND)
                s = SC_OK;
        }
        w->ops++;
        if (s != SC_OK && w->errors++ == 0)
            snprintf(w->first_error, sizeof w->first_error, "%s %s: %s: %s", what, key, sc_strerror(s),
                     sc_errmsg(w->pod));
    }
    return NULL;
}

static void run_workers(worker *w, int n)
{
    pthread_t t[16];
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(w[i].errors == 0, "worker %d: %d failed op(s), first: %s", i, w[i].errors, w[i].first_error);
    }
}

/* ============================================================ tests === */

/* 1. Two namespaces on one channel: each pod applies only its own namespace
 * (the other's events are counted in events_foreign and never touch its
 * sequence), so both converge under racing writers. */
START_TEST(shared_channel_namespaces_converge)
{
    const char *ns[2] = {"c1_alpha", "c1_beta"};
    sc_cache *pods[2][2];
    const char *ids[2][2] = {{"alpha1", "alpha2"}, {"beta1", "beta2"}};
    for (int n = 0; n < 2; n++)
        for (int p = 0; p < 2; p++) {
            sc_options o = test_options(ns[n], ids[n][p]);
            o.channel = "c1_shared_channel";
            pods[n][p] = test_open(&o);
        }
    /* The same key names in both namespaces, values that tell them apart. */
    worker w[4];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 4; i++) {
        w[i].pod = pods[i / 2][i % 2];
        w[i].tag = ids[i / 2][i % 2];
        w[i].nkeys = 16;
        w[i].seed = 1000u + (unsigned)i;
        w[i].set_pct = 60;
        w[i].del_pct = 15;
        w[i].run_ms = 1000;
    }
    run_workers(w, 4);

    report rp = {{0}, 0, 0};
    const char *const *keys = keys_k(16);
    for (int n = 0; n < 2; n++) {
        int q = wait_quiet_on(&g_redis, ns[n], pods[n], 2, 5000);
        if (!q)
            for (int p = 0; p < 2; p++)
                pod_state(&rp, pods[n][p], &g_redis, ns[n]);
        check_pods(&rp, &g_redis, ns[n], pods[n], 2, keys, 16, 0);
    }
    ASSERT_REPORT_CLEAN(rp, "pods hold values that differ from their namespace in Redis");
    for (int n = 0; n < 2; n++)
        for (int p = 0; p < 2; p++)
            ck_assert_msg(test_stats(pods[n][p]).events_foreign > 0,
                          "pod %s (ns %s) counted no foreign events though ns %s wrote on its channel", ids[n][p],
                          ns[n], ns[1 - n]);
    for (int n = 0; n < 2; n++)
        check_pods(&rp, &g_redis, ns[n], pods[n], 2, keys, 16, 1);
    ASSERT_REPORT_CLEAN(rp, "sc_get differs from Redis");
    for (int n = 0; n < 2; n++)
        for (int p = 0; p < 2; p++)
            sc_close(pods[n][p]);
}
END_TEST

/* A JSON event as an outside forger would publish it (docs/protocol.md):
 * version_json is the JSON text of the version (a number or a decimal
 * string), epoch and value_b64 may be NULL. */
static void forged_event(char *buf, size_t n, const char *action, const char *ns, const char *key,
                         const char *version_json, const char *epoch, const char *value_b64, uint64_t time_ms)
{
    size_t w = (size_t)snprintf(buf, n,
                                "{\"format\":1,\"action\":\"%s\",\"ns\":\"%s\",\"key\":\"%s\",\"sender\":\"evil\","
                                "\"inst\":\"00000000deadbeef\",\"version\":%s",
                                action, ns, key, version_json);
    if (epoch && *epoch)
        w += (size_t)snprintf(buf + w, n - w, ",\"epoch\":\"%s\"", epoch);
    if (value_b64)
        w += (size_t)snprintf(buf + w, n - w, ",\"value\":\"%s\"", value_b64);
    snprintf(buf + w, n - w, ",\"ttl\":0,\"time\":%" PRIu64 "}", time_ms);
}

static char *redis_epoch(const char *ns)
{
    redisContext *rc = connect_to(&g_redis);
    redisReply *rep = rcmd(rc, "HGET %s epoch", rk(ns, "meta", NULL).s);
    char *e = rep->type == REDIS_REPLY_STRING ? strndup(rep->str, rep->len) : strdup("");
    freeReplyObject(rep);
    redisFree(rc);
    return e;
}

/* Polls both pods for up to ms: 1 as soon as b holds want, -1 if either pod
 * ever held bad, 0 on time out. */
static int watch_for(sc_cache *a, sc_cache *b, const char *key, const char *want, const char *bad, long long ms)
{
    long long end = test_now_ms() + ms;
    while (test_now_ms() < end) {
        if (bad && (peek_is(a, key, bad) || peek_is(b, key, bad)))
            return -1;
        if (want && peek_is(b, key, want))
            return 1;
        test_sleep_ms(2);
    }
    return 0;
}

/* Pods a and b of ns with fast heartbeats, b already holding k = v1 from
 * a's write: where the forgery tests start, so that what b misses later is
 * the forgery's doing, not a slow first subscription. */
static void open_forgery_pair(const char *ns, sc_cache **a, sc_cache **b)
{
    sc_options o = test_options(ns, "a");
    o.heartbeat_interval_ms = 100;
    o.heartbeat_timeout_ms = 400;
    *a = test_open(&o);
    o.pod_id = "b";
    *b = test_open(&o);
    ck_assert_int_eq(sc_set(*a, "k", "v1", 2, 0), SC_OK);
    WAIT_UNTIL(peek_is(*b, "k", "v1"), 3000);
    ck_assert_msg(peek_is(*b, "k", "v1"), "b never received the first write (before any forgery)");
}

/* 2a. Nothing from the channel is believed on its own: huge forged versions
 * (an invalidate and a heartbeat) are counted as forged and must not make
 * pods deaf. */
START_TEST(forged_huge_versions_do_not_deafen)
{
    const char *ns = "c2_forge";
    sc_cache *a, *b;
    open_forgery_pair(ns, &a, &b);
    rkey chan = rk(ns, "events", NULL);

    /* A version Redis is far from reaching, as a JSON decimal string (the
     * form the codec takes for numbers above 2^53). */
    char ev[1024];
    char *epoch = redis_epoch(ns);
    forged_event(ev, sizeof ev, "invalidate", ns, "k", "\"99999999999999999\"", NULL, NULL, redis_time_ms(&g_redis));
    publish(&g_redis, chan.s, ev);
    forged_event(ev, sizeof ev, "heartbeat", ns, "", "\"99999999999999999\"", epoch, NULL, redis_time_ms(&g_redis));
    publish(&g_redis, chan.s, ev);
    WAIT_UNTIL(test_stats(b).events_forged >= 2, 2000);
    test_sleep_ms(300); /* a few heartbeats go by: the pod must not wait for 99999999999999999 */

    ck_assert_int_eq(sc_set(a, "k2", "after", 5, 0), SC_OK);
    int r = watch_for(a, b, "k2", "after", NULL, 3000);
    ck_assert_msg(r == 1, "after a forged version 99999999999999999, b never received a real write (holds k2=%s, "
                          "last_seq %" PRIu64 ", Redis seq %" PRIu64 ")",
                  peek_str(b, "k2"), test_stats(b).last_seq, redis_seq(&g_redis, ns));
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK);
    r = watch_for(a, b, "k", "v2", NULL, 3000);
    ck_assert_msg(r == 1, "b holds k=%s after a real write of v2", peek_str(b, "k"));
    ck_assert_msg(test_stats(b).events_forged >= 2, "events_forged is %" PRIu64 " after two forged versions",
                  test_stats(b).events_forged);
    free(epoch);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* 2b. A forged set claiming the next version, with a value Redis never held:
 * never installed, and the real write that later gets that version lands. */
START_TEST(forged_next_version_set_is_not_installed)
{
    const char *ns = "c2_forge_set";
    sc_cache *a, *b;
    open_forgery_pair(ns, &a, &b);
    rkey chan = rk(ns, "events", NULL);
    char ev[1024];
    int r;
    uint64_t forged_before = test_stats(b).events_forged;
    char vs[32];
    snprintf(vs, sizeof vs, "%" PRIu64, redis_seq(&g_redis, ns) + 1);
    char *epoch = redis_epoch(ns);
    forged_event(ev, sizeof ev, "set", ns, "k3", vs, epoch, "Zm9yZ2Vk" /* base64("forged") */,
                 redis_time_ms(&g_redis));
    publish(&g_redis, chan.s, ev);
    /* Handled (counted as forged), and never installed meanwhile. */
    long long end = test_now_ms() + 3000;
    while (test_now_ms() < end && test_stats(b).events_forged == forged_before) {
        ck_assert_msg(!peek_is(b, "k3", "forged") && !peek_is(a, "k3", "forged"),
                      "a pod installed a forged set that Redis never held");
        test_sleep_ms(2);
    }
    ck_assert_msg(test_stats(b).events_forged > forged_before,
                  "a set with version counter+1 that Redis never held was not counted as forged");
    /* The real write that gets that version lands; "forged" never shows. */
    ck_assert_int_eq(sc_set(a, "k3", "real", 4, 0), SC_OK);
    r = watch_for(a, b, "k3", "real", "forged", 3000);
    ck_assert_msg(r != -1, "a pod holds k3=forged, a value Redis never held");
    ck_assert_msg(r == 1, "the real write at the forged version never reached b (holds k3=%s)", peek_str(b, "k3"));
    TEST_ASSERT_STR_FREED(test_get(b, "k3"), "real", "k3");
    TEST_ASSERT_STR_FREED(test_get(a, "k3"), "real", "k3");
    free(epoch);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* 3. Own deletes and clears raise the pod's floors: another pod's older set
 * still in flight is never installed after them. Four pods (two threads
 * each) doing mixed operations on 16 keys, then quiescence: every held entry
 * equals Redis. A resurrection early in a round is usually overwritten by a
 * later write, so the check catches the ones near a round's end: many short
 * rounds catch far more than a few long ones (about one round in three
 * before the fix). */
#define RESURRECT_ROUNDS 10
#define RESURRECT_ROUND_MS 250

START_TEST(own_delete_and_clear_never_resurrect)
{
    const char *ns = "c3_resurrect";
    sc_cache *pods[4];
    const char *ids[4] = {"p0", "p1", "p2", "p3"};
    for (int i = 0; i < 4; i++)
        pods[i] = test_pod(ns, ids[i]);
    const char *const *keys = keys_k(16);
    for (int round = 0; round < RESURRECT_ROUNDS; round++) {
        worker w[8];
        memset(w, 0, sizeof w);
        for (int i = 0; i < 8; i++) {
            w[i].pod = pods[i % 4];
            w[i].tag = ids[i % 4];
            w[i].nkeys = 16;
            w[i].seed = 3000u + (unsigned)(round * 8 + i);
            w[i].set_pct = 40;
            w[i].inval_pct = 10;
            w[i].del_pct = 35;
            w[i].clear_per_mille = 1;
            w[i].run_ms = RESURRECT_ROUND_MS;
        }
        run_workers(w, 8);
        report rp = {{0}, 0, 0};
        if (!wait_quiet_on(&g_redis, ns, pods, 4, 5000))
            for (int i = 0; i < 4; i++)
                pod_state(&rp, pods[i], &g_redis, ns);
        check_pods(&rp, &g_redis, ns, pods, 4, keys, 16, 0);
        if (rp.count)
            ck_abort_msg("round %d (seeds %u..%u): %d held entr%s differ from Redis: %s", round, 3000u + round * 8,
                         3000u + round * 8 + 7, rp.count, rp.count == 1 ? "y" : "ies", rp.text);
    }
    for (int i = 0; i < 4; i++)
        sc_close(pods[i]);
}
END_TEST

/* a writes "pre" to every key, and b reads each so it holds a local copy:
 * what a clear must then take from both. */
static void write_pre_and_read(sc_cache *a, sc_cache *b, const char *const *keys, int nkeys)
{
    for (int i = 0; i < nkeys; i++)
        ck_assert_int_eq(sc_set(a, keys[i], "pre", 3, 0), SC_OK);
    for (int i = 0; i < nkeys; i++)
        free(test_get(b, keys[i]));
}

/* 4a. After sc_clear returns, no pod serves a pre-clear key, and Redis data
 * below the clear's floor is absent whatever Redis still holds. */
START_TEST(clear_sets_floor_and_empties_every_pod)
{
    const char *ns = "c4_clear";
    sc_cache *a = test_pod(ns, "a");
    sc_cache *b = test_pod(ns, "b");
    const char *const *keys = keys_k(20);
    write_pre_and_read(a, b, keys, 20);
    WAIT_UNTIL(test_stats(b).local_entries == 20, 3000);
    ck_assert_uint_eq(test_stats(b).local_entries, 20);
    uint64_t seq_before = redis_seq(&g_redis, ns);

    ck_assert_int_eq(sc_clear(a), SC_OK);
    uint64_t floor = redis_floor(&g_redis, ns);
    ck_assert_msg(floor > seq_before && floor <= redis_seq(&g_redis, ns),
                  "{ns}:meta floor is %" PRIu64 " after a clear; the counter went from %" PRIu64 " to %" PRIu64,
                  floor, seq_before, redis_seq(&g_redis, ns));
    WAIT_UNTIL(test_stats(b).local_entries == 0, 3000);
    report rp = {{0}, 0, 0};
    note_still_served(&rp, b, "b", keys, 20);
    ASSERT_REPORT_CLEAN(rp, "pre-clear keys still served after the clear");

    /* Written by hand with a version below the floor: absent by contract. */
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "HSET %s value old version 1", rk(ns, "k", "x").s), 0);
    char *got = test_get(b, "x");
    ck_assert_msg(strcmp(got, "<none>") == 0, "b serves x=%s, written with version 1 below the floor %" PRIu64, got,
                  floor);
    free(got);
    got = test_get(a, "x");
    ck_assert_msg(strcmp(got, "<none>") == 0, "a serves x=%s, written with version 1 below the floor %" PRIu64, got,
                  floor);
    free(got);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* 4b. A clear whose PUBLISH is refused (the permission was revoked after
 * sc_open) must not report failure after deleting: either it fails with
 * Redis untouched, or it succeeds (publish_failures counted) and the other
 * pods learn it from the log. */
START_TEST(clear_without_publish_permission_is_atomic)
{
    const char *ns = "c4_clear_perm";
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER c4user on >c4pw ~* &* +@all"), 0);
    sc_options o = test_options(ns, "a");
    o.redis_username = "c4user";
    o.redis_password = "c4pw";
    o.heartbeat_interval_ms = 100;
    o.heartbeat_timeout_ms = 400;
    sc_cache *a = test_open(&o);
    o = test_options(ns, "b");
    o.heartbeat_interval_ms = 100;
    o.heartbeat_timeout_ms = 400;
    sc_cache *b = test_open(&o);
    const char *const *keys = keys_k(10);
    write_pre_and_read(a, b, keys, 10);
    ck_assert_uint_eq(test_stats(b).local_entries, 10);

    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER c4user -publish"), 0);
    sc_status s = sc_clear(a);
    if (s != SC_OK) {
        const char *msg = sc_errmsg(a);
        report rp = {{0}, 0, 0};
        for (int i = 0; i < 10; i++) {
            char *want = truth(ns, keys[i]);
            if (strcmp(want, "pre") != 0)
                note(&rp, "%s=%s; ", keys[i], want);
            free(want);
        }
        ck_assert_msg(rp.count == 0, "sc_clear reported %s (%s) but Redis no longer holds the keys: %s",
                      sc_strerror(s), msg, rp.text);
    } else {
        ck_assert_msg(test_stats(a).publish_failures >= 1, "the clear's PUBLISH was refused but publish_failures "
                                                           "is 0");
        WAIT_UNTIL(test_stats(b).local_entries == 0, 5000);
        report rp = {{0}, 0, 0};
        note_still_served(&rp, b, "b", keys, 10);
        ASSERT_REPORT_CLEAN(rp, "a clear that succeeded without its PUBLISH never reached b");
    }
    sc_close(a);
    sc_close(b);
}
END_TEST

/* 5. Counter rollback: Redis restarts from an older snapshot, writers push
 * the counter past what pods had applied before they re-subscribe; the log
 * looks contiguous but its entry at the pod's last_seq is another write. No
 * pod may keep the lost writes. */
START_TEST(counter_rollback_is_detected)
{
    const char *ns = "c5_rollback";
    sc_test_redis r;
    ck_assert_int_eq(sc_test_redis_start(&r, NULL), 0);
    sc_cache *a = pod_on(&r, ns, "a");
    /* Holders that stay away long enough for the counter to pass them:
     * the default policy, and bypass and stale named explicitly. */
    sc_cache *h[3];
    const char *hid[3] = {"default", "bypass", "stale"};
    for (int i = 0; i < 3; i++) {
        sc_options o = opts_on(&r, ns, hid[i]);
        if (i == 1)
            o.disconnect_policy = SC_DISCONNECT_BYPASS;
        if (i == 2)
            o.disconnect_policy = SC_DISCONNECT_STALE;
        o.reconnect_min_ms = 3000;
        o.reconnect_max_ms = 3000;
        h[i] = test_open(&o);
    }
    const char *const *keys = keys_k(10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(sc_set(a, keys[i], "kept", 4, 0), SC_OK);
    ck_assert_int_eq(sc_test_redis_cmd(&r, "SAVE"), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(sc_set(a, keys[i], "lost", 4, 0), SC_OK);
    sc_cache *all[4] = {a, h[0], h[1], h[2]};
    WAIT_UNTIL(quiet_on(&r, ns, all, 4), 3000);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(peek_is(h[i], "k3", "lost"), "pod %s did not receive the write before the crash", hid[i]);
    uint64_t last_seq = redis_seq(&r, ns);

    /* Crash; come back from the snapshot (the same dir holds dump.rdb). */
    sc_test_redis_kill(&r);
    ck_assert_int_eq(sc_test_redis_start_again(&r), 0);
    /* (The counter cannot tell: a pod that resubscribes at once finds it
     * behind its last sequence and starts a new history past it.) */
    char *k3 = test_redis_value_on(&r, ns, "k3");
    ck_assert_msg(strcmp(k3, "kept") == 0, "the snapshot was not loaded (k3 is %s)", k3);
    free(k3);
    sc_cache *w = pod_on(&r, ns, "w");
    for (int i = 0; i < 30; i++) {
        char z[16];
        snprintf(z, sizeof z, "z%d", i);
        ck_assert_int_eq(sc_set(w, z, "new", 3, 0), SC_OK);
    }
    ck_assert_uint_gt(redis_seq(&r, ns), last_seq);
    for (int i = 0; i < 3; i++)
        if (synced(h[i]))
            fprintf(stderr, "counter_rollback_is_detected: pod %s re-subscribed before the counter passed it; "
                            "the case is weaker this run\n",
                    hid[i]);

    sc_cache *pods[5] = {a, h[0], h[1], h[2], w};
    report rp = {{0}, 0, 0};
    if (!wait_quiet_on(&r, ns, pods, 5, 10000))
        for (int i = 0; i < 5; i++)
            pod_state(&rp, pods[i], &r, ns);
    check_pods(&rp, &r, ns, pods, 5, keys, 10, 0);
    ASSERT_REPORT_CLEAN(rp, "pods keep writes that Redis lost in a rollback");
    check_pods(&rp, &r, ns, pods, 5, keys, 10, 1);
    ASSERT_REPORT_CLEAN(rp, "sc_get after a rollback");
    for (int i = 0; i < 5; i++)
        sc_close(pods[i]);
    sc_test_redis_stop(&r);
}
END_TEST

/* 6. Gets in flight while the subscription drops and another pod rewrites
 * the keys: none may install the value it read before the rewrite. Hard to
 * hit on purpose; many rounds, several getters, a tiny local tier (most gets
 * read Redis), and the end state must equal Redis. */
typedef struct getter {
    sc_cache *pod;
    atomic_int *stop;
    unsigned seed;
    int reads;
} getter;

static void *getter_main(void *p)
{
    getter *g = p;
    char key[16];
    while (!atomic_load(g->stop)) {
        snprintf(key, sizeof key, "k%u", rand_r(&g->seed) % 8);
        sc_value *v = NULL;
        if (sc_get(g->pod, key, &v) == SC_OK)
            g->reads++;
        sc_value_release(v);
    }
    return NULL;
}

static void get_across_reconnect_case(sc_disconnect_policy policy, const char *ns)
{
    sc_cache *w = test_pod(ns, "w");
    sc_options o = test_options(ns, "r");
    o.disconnect_policy = policy;
    o.local_max_entries = 4;
    o.reconnect_min_ms = 60;
    o.reconnect_max_ms = 120;
    sc_cache *rd = test_open(&o);
    const char *const *keys = keys_k(8);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(sc_set(w, keys[i], "v0", 2, 0), SC_OK);
    atomic_int stop = 0;
    getter g[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        g[i] = (getter){rd, &stop, 600u + (unsigned)i, 0};
        pthread_create(&t[i], NULL, getter_main, &g[i]);
    }
    report rp = {{0}, 0, 0};
    long long end = test_now_ms() + 5000;
    int rounds = 0;
    for (; rounds < 40 && test_now_ms() < end && rp.count == 0; rounds++) {
        kill_pubsub(&g_redis);
        WAIT_UNTIL(!synced(rd), 500);
        char v[16];
        snprintf(v, sizeof v, "v%d", rounds + 1);
        for (int i = 0; i < 8; i++)
            ck_assert_int_eq(sc_set(w, keys[i], v, strlen(v), 0), SC_OK);
        sc_cache *pods[2] = {w, rd};
        WAIT_UNTIL(quiet_on(&g_redis, ns, pods, 2), 3000);
        check_pod(&rp, &g_redis, ns, rd, keys, 8, 0);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    sc_cache *pods[2] = {w, rd};
    if (rp.count == 0) {
        if (!wait_quiet_on(&g_redis, ns, pods, 2, 3000))
            pod_state(&rp, rd, &g_redis, ns);
        check_pods(&rp, &g_redis, ns, pods, 2, keys, 8, 0);
    }
    ck_assert_msg(rp.count == 0, "policy %d, after %d round(s): a get in flight across a reconnect left: %s",
                  (int)policy, rounds, rp.text);
    ck_assert_int_gt(g[0].reads + g[1].reads + g[2].reads, 100);
    sc_close(w);
    sc_close(rd);
}

/* The same race made likely: the value is large enough that its transfer
 * outlasts the drop, the rewrite and the resubscription. The get's read ran
 * in Redis before the rewrite; whatever it installs must not outlive it. */
typedef struct bigget {
    sc_cache *pod;
    sc_status st;
    long long took_ms;
} bigget;

static void *bigget_main(void *p)
{
    bigget *g = p;
    long long t0 = test_now_ms();
    sc_value *v = NULL;
    g->st = sc_get(g->pod, "big", &v);
    sc_value_release(v);
    g->took_ms = test_now_ms() - t0;
    return NULL;
}

START_TEST(get_of_large_value_across_reconnect)
{
    const char *ns = "c6_large";
    /* 16 MiB through a script, the log and the channel: on a loaded
     * machine under a sanitizer a call can take more than the default
     * 1 s, and a timeout here would say nothing about the race. */
    sc_options wo = test_options(ns, "w");
    wo.redis_timeout_ms = 10000;
    sc_cache *w = test_open(&wo);
    sc_options o = test_options(ns, "r");
    o.redis_timeout_ms = 10000;
    o.disconnect_policy = SC_DISCONNECT_FLUSH;
    o.reconnect_min_ms = 100; /* back 50..100 ms after the drop: before the get ends */
    o.reconnect_max_ms = 100;
    o.local_max_bytes = (size_t)1 << 30; /* a shard's share holds the big value */
    sc_cache *rd = test_open(&o);
    sc_cache *pods[2] = {w, rd};
    size_t n = 16u << 20;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, 'o', n);
    /* Undisturbed, the reader keeps the big value it reads: a copy held
     * after a rewrite below is the race, not a value too big to keep. */
    ck_assert_int_eq(sc_set(w, "big", big, n, 0), SC_OK);
    WAIT_UNTIL(quiet_on(&g_redis, ns, pods, 2), 3000);
    sc_value *held = NULL;
    ck_assert_int_eq(sc_get(rd, "big", &held), SC_OK);
    sc_value_release(held);
    ck_assert_int_eq(sc_peek(rd, "big", &held), SC_OK);
    ck_assert_uint_eq(sc_value_size(held), n);
    sc_value_release(held);
    const long delays[] = {1, 1, 5, 5};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(sc_set(w, "big", big, n, 0), SC_OK);
        WAIT_UNTIL(quiet_on(&g_redis, ns, pods, 2) && !peek_is(rd, "big", "small"), 3000);
        bigget g = {rd, SC_OK, 0};
        pthread_t t;
        /* Odd rounds: the get starts while the subscription is down (and
         * the pod reads Redis directly); even rounds: just before the drop. */
        if (i % 2) {
            kill_pubsub(&g_redis);
            WAIT_UNTIL(!synced(rd), 1000);
        }
        pthread_create(&t, NULL, bigget_main, &g);
        test_sleep_ms(delays[i]);
        if (i % 2 == 0)
            kill_pubsub(&g_redis);
        ck_assert_int_eq(sc_set(w, "big", "small", 5, 0), SC_OK);
        long long t_write = test_now_ms();
        WAIT_UNTIL(quiet_on(&g_redis, ns, pods, 2), 3000);
        long long resynced = test_now_ms() - t_write;
        pthread_join(t, NULL);
        WAIT_UNTIL(quiet_on(&g_redis, ns, pods, 2), 3000);
        sc_value *v = NULL;
        int stale = sc_peek(rd, "big", &v) == SC_OK && sc_value_size(v) == n;
        sc_value_release(v);
        if (getenv("SC_TEST_VERBOSE"))
            fprintf(stderr, "round %d: get took %lld ms (%s), resynced %lld ms after the rewrite\n", i, g.took_ms,
                    sc_strerror(g.st), resynced);
        ck_assert_msg(!stale,
                      "round %d: the pod holds the %zu-byte value it read before the rewrite to \"small\" "
                      "(the get took %lld ms, the pod resynced %lld ms after the rewrite)",
                      i, n, g.took_ms, resynced);
        TEST_ASSERT_STR_FREED(test_get(rd, "big"), "small", "big");
    }
    free(big);
    sc_close(w);
    sc_close(rd);
}
END_TEST

START_TEST(get_in_flight_across_reconnect_flush)
{
    get_across_reconnect_case(SC_DISCONNECT_FLUSH, "c6_inflight_flush");
}
END_TEST

START_TEST(get_in_flight_across_reconnect_default)
{
    sc_options o;
    sc_options_init(&o);
    get_across_reconnect_case(o.disconnect_policy, "c6_inflight_default");
}
END_TEST

/* 7. The layout is injective: ns "a" key "k:x" and ns "a:k" key "x" are two
 * Redis keys, and clearing ns "a" leaves ns "a:k" alone. Namespaces that
 * could break the layout are refused. */
START_TEST(layout_is_injective)
{
    sc_cache *a = test_pod("a", "a1");
    sc_cache *ak = test_pod("a:k", "ak1");
    sc_cache *ak2 = test_pod("a:k", "ak2");
    ck_assert_int_eq(sc_set(a, "k:x", "from-a", 6, 0), SC_OK);
    ck_assert_int_eq(sc_set(ak, "x", "from-ak", 7, 0), SC_OK);
    char *s = truth("a", "k:x");
    ck_assert_msg(strcmp(s, "from-a") == 0, "ns a key k:x in Redis (%s) is %s", rk("a", "k", "k:x").s, s);
    free(s);
    s = truth("a:k", "x");
    ck_assert_msg(strcmp(s, "from-ak") == 0, "ns a:k key x in Redis (%s) is %s", rk("a:k", "k", "x").s, s);
    free(s);
    free(test_get(ak2, "x"));
    ck_assert(peek_is(ak2, "x", "from-ak"));
    uint64_t ak_seq = redis_seq(&g_redis, "a:k");
    ck_assert_uint_gt(ak_seq, 0);

    ck_assert_int_eq(sc_clear(a), SC_OK);
    s = truth("a", "k:x");
    ck_assert_str_eq(s, "<none>");
    free(s);
    s = truth("a:k", "x");
    ck_assert_msg(strcmp(s, "from-ak") == 0, "clearing ns a removed ns a:k's key x from Redis (now %s)", s);
    free(s);
    ck_assert_msg(redis_seq(&g_redis, "a:k") == ak_seq, "clearing ns a changed ns a:k's counter");
    test_sleep_ms(300); /* a clear event would have arrived by now */
    ck_assert_msg(peek_is(ak2, "x", "from-ak"), "ns a:k pod dropped x after ns a was cleared (holds %s)",
                  peek_str(ak2, "x"));
    TEST_ASSERT_STR_FREED(test_get(ak, "x"), "from-ak", "x");
    TEST_ASSERT_STR_FREED(test_get(a, "k:x"), "<none>", "k:x");
    sc_close(a);
    sc_close(ak);
    sc_close(ak2);

    char longns[300];
    memset(longns, 'n', sizeof longns - 1);
    longns[sizeof longns - 1] = '\0';
    const char *bad[] = {"a{b", "a}b", "{a}", "ctl\x01", longns};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sc_options o = test_options(bad[i], NULL);
        sc_cache *c = NULL;
        sc_status st = sc_open(&o, &c);
        if (c)
            sc_close(c);
        ck_assert_msg(st == SC_ERR_INVALID, "sc_open with ns \"%.20s\" returned %s, not SC_ERR_INVALID", bad[i],
                      sc_strerror(st));
        ck_assert_msg(strstr(sc_errmsg(NULL), "ns") != NULL, "refusing ns \"%.20s\": message '%s' does not name ns",
                      bad[i], sc_errmsg(NULL));
    }
}
END_TEST

/* 8. A set's TTL counts from the write: a pod that gets the event late (from
 * the log, after its subscription was down) keeps it only for what is left,
 * so no pod serves the key after Redis expired it. */
START_TEST(ttl_counts_from_the_write)
{
    const char *ns = "c8_ttl";
    sc_cache *a = test_pod(ns, "a");
    sc_cache *b = test_pod(ns, "b");
    sc_options o = test_options(ns, "late");
    o.disconnect_policy = SC_DISCONNECT_BYPASS; /* replays the log (the v2 default) */
    o.reconnect_min_ms = 1000; /* first attempt 0.5..1 s after the drop */
    o.reconnect_max_ms = 1000;
    sc_cache *late = test_open(&o);
    ck_assert_int_eq(sc_set(a, "warm", "w", 1, 0), SC_OK);
    sc_cache *all[3] = {a, b, late};
    WAIT_UNTIL(quiet_on(&g_redis, ns, all, 3), 3000);

    kill_newest_subscriber(&g_redis); /* the late pod's: opened last */
    WAIT_UNTIL(!synced(late), 1000);
    ck_assert_msg(!synced(late), "the late pod's subscription was not the one killed");
    ck_assert_msg(synced(a) && synced(b), "a or b lost its subscription");
    long long t_write = test_now_ms();
    ck_assert_int_eq(sc_set(a, "t", "v", 1, 1500), SC_OK);
    long long t_written = test_now_ms(); /* Redis ran the set (and started the TTL) by now */
    WAIT_UNTIL(peek_is(b, "t", "v"), 1000);
    ck_assert_msg(peek_is(b, "t", "v"), "b did not get the set from its event");
    /* The late pod catches up from the log 0.5..1 s after the write (on a
     * slow machine it may be later: then it must simply not install it). */
    WAIT_UNTIL(quiet_on(&g_redis, ns, all, 3), 1700);
    int late_held = peek_is(late, "t", "v");
    int late_synced = synced(late);
    long long caught_up = test_now_ms() - t_write;

    long long wait = t_written + 1850 - test_now_ms();
    if (wait > 0)
        test_sleep_ms(wait);
    char *r = truth(ns, "t");
    ck_assert_msg(strcmp(r, "<none>") == 0, "Redis still holds t 1.85 s after a 1.5 s TTL");
    free(r);
    report rp = {{0}, 0, 0};
    for (int i = 0; i < 3; i++) {
        char *held = peek_str(all[i], "t");
        if (strcmp(held, "<none>") != 0)
            note(&rp, "pod %s holds t=%s; ", sc_pod_id(all[i]), held);
        free(held);
    }
    ck_assert_msg(rp.count == 0,
                  "1.85 s after a write with a 1.5 s TTL (Redis expired it): %s(%lld ms after the write the "
                  "late pod was %s%s)",
                  rp.text, caught_up, late_synced ? "synced" : "not synced yet",
                  late_held ? " and held it" : "");
    /* And never after, once every pod has caught up. */
    WAIT_UNTIL(quiet_on(&g_redis, ns, all, 3), 3000);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(peek_is(all[i], "t", "<none>"), "pod %s holds t=%s after Redis expired it",
                      sc_pod_id(all[i]), peek_str(all[i], "t"));
    sc_close(a);
    sc_close(b);
    sc_close(late);
}
END_TEST

/* 9a. Permissions are checked at sc_open, with the NOPERM text. */
static void expect_open_noperm(report *rp, const char *ns, const char *user)
{
    sc_options o = test_options(ns, NULL);
    o.redis_username = user;
    o.redis_password = "pw9";
    sc_cache *c = NULL;
    sc_status s = sc_open(&o, &c);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sc_errmsg(NULL));
    if (c)
        sc_close(c);
    if (s == SC_OK)
        note(rp, "sc_open as %s (missing a permission) succeeded; ", user);
    else if (!strstr(msg, "NOPERM") && !strstr(msg, "no permissions"))
        note(rp, "sc_open as %s failed with %s, message '%s' lacks NOPERM; ", user, sc_strerror(s), msg);
}

START_TEST(open_checks_permissions)
{
    const char *ns = "c9_perm";
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER c9nopub on >pw9 ~* &* +@all -publish"), 0);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER c9nosub on >pw9 ~* resetchannels &c9_other +@all"), 0);
    report rp = {{0}, 0, 0};
    expect_open_noperm(&rp, ns, "c9nopub");
    expect_open_noperm(&rp, ns, "c9nosub");
    ASSERT_REPORT_CLEAN(rp, "permissions at sc_open");
}
END_TEST

/* 9b. A write whose PUBLISH is refused after open never leaves the value in
 * Redis while reporting failure. */
START_TEST(set_without_publish_permission_is_atomic)
{
    const char *ns = "c9_setperm";
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER c9w on >pw9 ~* &* +@all"), 0);
    sc_options o = test_options(ns, "a");
    o.redis_username = "c9w";
    o.redis_password = "pw9";
    sc_cache *a = test_open(&o);
    sc_cache *b = test_pod(ns, "b");
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "ACL SETUSER c9w -publish"), 0);
    sc_status s = sc_set(a, "k", "v2", 2, 0);
    char *r = truth(ns, "k");
    if (s != SC_OK)
        ck_assert_msg(strcmp(r, "v1") == 0, "sc_set reported %s (%s) but Redis holds k=%s", sc_strerror(s),
                      sc_errmsg(a), r);
    else {
        ck_assert_str_eq(r, "v2");
        ck_assert_uint_ge(test_stats(a).publish_failures, 1);
        /* b catches the write from the log at a heartbeat. */
        char *got = test_get(b, "k");
        for (long long end = test_now_ms() + 5000; strcmp(got, "v2") != 0 && test_now_ms() < end;) {
            test_sleep_ms(20);
            free(got);
            got = test_get(b, "k");
        }
        ck_assert_msg(strcmp(got, "v2") == 0, "b serves k=%s after a write whose PUBLISH failed", got);
        free(got);
    }
    free(r);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* 9c. Out of memory says so, not "unreachable". */
START_TEST(oom_is_reported_as_oom)
{
    const char *ns = "c9_oom";
    sc_test_redis r;
    ck_assert_int_eq(sc_test_redis_start(&r, NULL), 0);
    sc_cache *a = pod_on(&r, ns, "a");
    ck_assert_int_eq(sc_set(a, "before", "x", 1, 0), SC_OK);
    ck_assert_msg(sc_test_redis_fill(&r) == 0, "could not fill Redis up to maxmemory");
    redisContext *rc = connect_to(&r);
    redisReply *rep = rcmd(rc, "SET probe x");
    ck_assert_msg(rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "OOM"), "Redis is not full: SET gives %s",
                  rep->type == REDIS_REPLY_ERROR ? rep->str : "success");
    freeReplyObject(rep);
    uint64_t seq = redis_seq(&r, ns);
    sc_status s = sc_set(a, "k", "v", 1, 0);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sc_errmsg(a));
    ck_assert_msg(s != SC_OK, "sc_set succeeded on a full Redis");
    ck_assert_msg(strstr(msg, "OOM") || strstr(msg, "out of memory"),
                  "sc_set on a full Redis: %s, message '%s' does not say out of memory", sc_strerror(s), msg);
    ck_assert_msg(!strstr(msg, "unreachable") && !strstr(sc_strerror(s), "unreachable"),
                  "OOM reported as unreachable: %s: '%s'", sc_strerror(s), msg);
    char *t = truth_on(&r, ns, "k");
    ck_assert_msg(strcmp(t, "<none>") == 0, "sc_set failed but Redis holds k=%s", t);
    free(t);
    ck_assert_msg(redis_seq(&r, ns) == seq, "sc_set failed but took a version (%" PRIu64 " -> %" PRIu64 ")", seq,
                  redis_seq(&r, ns));
    redisFree(rc);
    sc_close(a);
    sc_test_redis_stop(&r);
}
END_TEST

/* 10. Two processes given one pod id see each other's writes (self-skip
 * compares the instance id), and the duplicate is counted. */
START_TEST(duplicate_pod_ids_see_each_other)
{
    const char *ns = "c10_dup";
    sc_cache *a = test_pod(ns, "same");
    sc_cache *b = test_pod(ns, "same");
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    free(test_get(b, "k"));
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK);
    WAIT_UNTIL(peek_is(b, "k", "v2"), 3000);
    ck_assert_msg(peek_is(b, "k", "v2"), "b (same pod id) holds k=%s after a's write of v2", peek_str(b, "k"));
    ck_assert_int_eq(sc_set(b, "j", "from-b", 6, 0), SC_OK);
    WAIT_UNTIL(peek_is(a, "j", "from-b"), 3000);
    ck_assert_msg(peek_is(a, "j", "from-b"), "a (same pod id) holds j=%s after b's write", peek_str(a, "j"));
    TEST_ASSERT_STR_FREED(test_get(b, "k"), "v2", "k");
    ck_assert_msg(test_stats(a).duplicate_pod_ids + test_stats(b).duplicate_pod_ids > 0,
                  "two caches with pod id \"same\" saw each other's events, duplicate_pod_ids is 0 on both");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* 11. The default policy keeps the cache warm across a subscription drop
 * that the log covers, and still catches the write made during the drop. */
START_TEST(default_policy_keeps_cache_warm)
{
    const char *ns = "c11_warm";
    sc_cache *a = test_pod(ns, "a");
    sc_options o = test_options(ns, "b");
    o.reconnect_min_ms = 500; /* stay away 250..500 ms: long enough to miss a write */
    sc_cache *b = test_open(&o);
    const char *const *keys = keys_k(200);
    for (int i = 0; i < 200; i++) {
        char v[16];
        snprintf(v, sizeof v, "old-%d", i);
        ck_assert_int_eq(sc_set(a, keys[i], v, strlen(v), 0), SC_OK);
    }
    for (int i = 0; i < 200; i++)
        free(test_get(b, keys[i]));
    sc_cache *pods[2] = {a, b};
    WAIT_UNTIL(quiet_on(&g_redis, ns, pods, 2), 3000);
    ck_assert_uint_eq(test_stats(b).local_entries, 200);
    uint64_t reconnects = test_stats(b).reconnects;

    kill_pubsub(&g_redis);
    WAIT_UNTIL(!synced(b), 1000);
    ck_assert_int_eq(sc_set(a, "k7", "during", 6, 0), SC_OK);
    WAIT_UNTIL(test_stats(b).reconnects > reconnects && quiet_on(&g_redis, ns, pods, 2), 5000);
    ck_assert_msg(test_stats(b).reconnects > reconnects, "b did not re-subscribe");
    test_sleep_ms(200);
    sc_stats st = test_stats(b);
    int held = 0;
    for (int i = 0; i < 200; i++) {
        sc_value *v = NULL;
        if (sc_peek(b, keys[i], &v) == SC_OK)
            held++;
        sc_value_release(v);
    }
    ck_assert_msg(!peek_is(b, "k7", "old-7"), "b still holds k7=old-7, rewritten while its subscription was down");
    TEST_ASSERT_STR_FREED(test_get(b, "k7"), "during", "k7");
    ck_assert_msg(st.flushes == 0, "the default policy flushed (%" PRIu64 " flushes) on a drop the log covers",
                  st.flushes);
    ck_assert_msg(held >= 190, "b holds only %d of the 200 keys after a drop the log covers", held);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* 12. An own write whose event the pod never got back (its subscription was
 * down), then lost by Redis (a restart from an older snapshot): the pod's
 * resubscription finds the counter behind the version its write returned
 * and flushes (rule 5), and must also move the counter past that version
 * (README: "a counter behind a version the pod saw ... is first moved past
 * it, with a new epoch: no version is handed out twice"). Otherwise the
 * next write of a pod that never saw the lost version takes the very same
 * number, and a compare-and-set against the lost write matches it (ABA). */
START_TEST(own_lost_write_version_not_reused)
{
    const char *ns = "c12_lost_own";
    sc_test_redis r;
    ck_assert_int_eq(sc_test_redis_start(&r, NULL), 0);
    sc_options o = opts_on(&r, ns, "a");
    o.reconnect_min_ms = 1500; /* away long enough to write and crash */
    o.reconnect_max_ms = 1500;
    sc_cache *a = test_open(&o);
    ck_assert_int_eq(sc_set(a, "k", "base", 4, 0), SC_OK);
    sc_cache *pa[1] = {a};
    WAIT_UNTIL(quiet_on(&r, ns, pa, 1), 3000);
    ck_assert(quiet_on(&r, ns, pa, 1));
    ck_assert_int_eq(sc_test_redis_cmd(&r, "SAVE"), 0);
    uint64_t reconnects = test_stats(a).reconnects;
    kill_pubsub(&r);
    WAIT_UNTIL(!synced(a), 1000);
    ck_assert(!synced(a));
    /* Acknowledged; its event goes nowhere (a is not subscribed). */
    ck_assert_int_eq(sc_set(a, "k", "lost", 4, 0), SC_OK);
    uint64_t lost = 0;
    ck_assert_int_eq(sc_version_of(a, "k", &lost), SC_OK);
    sc_test_redis_kill(&r);
    ck_assert_int_eq(sc_test_redis_start_again(&r), 0);
    TEST_ASSERT_STR_FREED(test_redis_value_on(&r, ns, "k"), "base", "k after the rollback");
    ck_assert_uint_eq(test_stats(a).reconnects, reconnects); /* still away: the case holds */

    /* a comes back, finds the counter behind its write: a flush. */
    WAIT_UNTIL(synced(a) && test_stats(a).reconnects > reconnects, 6000);
    ck_assert(synced(a) && test_stats(a).reconnects > reconnects);
    ck_assert_uint_gt(test_stats(a).flushes, 0);
    /* A pod that never saw the lost version writes the key. */
    sc_cache *c = pod_on(&r, ns, "c");
    ck_assert_int_eq(sc_set(c, "k", "new", 3, 0), SC_OK);
    uint64_t now = 0;
    ck_assert_int_eq(sc_version_of(c, "k", &now), SC_OK);
    ck_assert_msg(now > lost, "version %" PRIu64 " handed out again after a rollback a pod had noticed", lost);
    ck_assert_int_eq(sc_set_if_version(a, "k", "from-lost", 9, 0, lost), SC_ERR_CONFLICT);
    TEST_ASSERT_STR_FREED(test_redis_value_on(&r, ns, "k"), "new", "k");
    sc_close(c);
    sc_close(a);
    sc_test_redis_stop(&r);
}
END_TEST

/* One case per defect of issue 7, so that CK_RUN_CASE=d3 runs one. */
/* 13. An outside publisher's invalidate (no version) is how a pod learns
 * of a write that bypassed the scripts when tracking is off (README,
 * "What is not guaranteed"). A get whose Redis read ran before that write
 * and whose install comes after the event was applied must not keep the
 * old value: nothing would ever remove it. The pod's on_set_local hook runs
 * between the read and the install: it makes the outside write, publishes
 * the invalidate and waits until the pod has handled it. */
static atomic_int outside_handled;
static atomic_int outside_armed;

static void outside_event(const sc_event_info *e, void *ud)
{
    (void)ud;
    if (e->version == 0 && strcmp(e->action, "invalidate") == 0 && strcmp(e->key, "k") == 0)
        atomic_store(&outside_handled, 1);
}

static int outside_write_during_read(const char *key, const void *val, size_t len, uint64_t version, void **out,
                                     size_t *out_len, void *ud)
{
    (void)val, (void)len, (void)version, (void)out, (void)out_len;
    const char *ns = ud;
    if (strcmp(key, "k") != 0 || !atomic_exchange(&outside_armed, 0))
        return 0;
    redisContext *rc = sc_test_redis_connect(&g_redis);
    if (!rc)
        return 0;
    freeReplyObject(redisCommand(rc, "HSET %s value new", rk(ns, "k", "k").s));
    char ev[256];
    snprintf(ev, sizeof ev, "{\"action\":\"invalidate\",\"ns\":\"%s\",\"key\":\"k\"}", ns);
    freeReplyObject(redisCommand(rc, "PUBLISH %s %s", rk(ns, "events", NULL).s, ev));
    redisFree(rc);
    for (int i = 0; i < 5000 && !atomic_load(&outside_handled); i++)
        test_sleep_ms(1);
    return 0;
}

START_TEST(outside_invalidate_fences_a_read_in_flight)
{
    const char *ns = "c13_outside";
    sc_cache *w = test_pod(ns, "w");
    ck_assert_int_eq(sc_set(w, "k", "old", 3, 0), SC_OK);
    sc_options o = test_options(ns, "r");
    o.redis_tracking = 0;
    o.on_event = outside_event;
    o.on_set_local = outside_write_during_read;
    o.on_set_local_ud = (void *)ns;
    sc_cache *r = test_open(&o);
    atomic_store(&outside_handled, 0);
    atomic_store(&outside_armed, 1);
    free(test_get(r, "k")); /* read "old"; the outside write and its event come before the install */
    ck_assert_msg(atomic_load(&outside_handled), "the pod never handled the outside invalidate");
    TEST_ASSERT_STR_FREED(truth(ns, "k"), "new", "k in Redis");
    char *held = peek_str(r, "k");
    ck_assert_msg(strcmp(held, "old") != 0,
                  "a read from before an outside write was installed after the outside invalidate: the pod "
                  "holds k=%s, Redis new",
                  held);
    free(held);
    TEST_ASSERT_STR_FREED(test_get(r, "k"), "new", "k");
    sc_close(r);
    sc_close(w);
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *t1, const TTest *t2, const TTest *t3)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t1);
    if (t2)
        tcase_add_test(tc, t2);
    if (t3)
        tcase_add_test(tc, t3);
    suite_add_tcase(s, tc);
}

static Suite *consistency_suite(void)
{
    Suite *s = suite_create("consistency");
    add_case(s, "d1", shared_channel_namespaces_converge, NULL, NULL);
    add_case(s, "d2", forged_huge_versions_do_not_deafen, forged_next_version_set_is_not_installed, NULL);
    add_case(s, "d3", own_delete_and_clear_never_resurrect, NULL, NULL);
    add_case(s, "d4", clear_sets_floor_and_empties_every_pod, clear_without_publish_permission_is_atomic, NULL);
    add_case(s, "d5", counter_rollback_is_detected, NULL, NULL);
    add_case(s, "d6", get_of_large_value_across_reconnect, get_in_flight_across_reconnect_flush,
             get_in_flight_across_reconnect_default);
    add_case(s, "d7", layout_is_injective, NULL, NULL);
    add_case(s, "d8", ttl_counts_from_the_write, NULL, NULL);
    add_case(s, "d9", open_checks_permissions, set_without_publish_permission_is_atomic, oom_is_reported_as_oom);
    add_case(s, "d10", duplicate_pod_ids_see_each_other, NULL, NULL);
    add_case(s, "d11", default_policy_keeps_cache_warm, NULL, NULL);
    add_case(s, "d12", own_lost_write_version_not_reused, NULL, NULL);
    add_case(s, "d13", outside_invalidate_fences_a_read_in_flight, NULL, NULL);
    return s;
}

int main(void)
{
    return test_run_suite(consistency_suite(), NULL);
}
