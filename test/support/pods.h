/* Helpers for integration tests that run several pods in one process against
 * the private Redis of test/support/redis_server.h. Header-only: each test
 * program includes it once. */
#ifndef SC_TEST_PODS_H
#define SC_TEST_PODS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <synccache/synccache.h>

#include "redis_server.h"

/* A child forked from a process that runs threads may find a lock another
 * thread held at the fork held for ever: glibc guards its own (malloc),
 * the sanitizers' runtimes do not always (ThreadSanitizer kills such a
 * child, AddressSanitizer's allocator can hang it). Tests that must fork a
 * pod beside live pods of the parent run only in builds without them. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SC_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SC_TEST_SANITIZED 1
#endif
#endif
#ifndef SC_TEST_SANITIZED
#define SC_TEST_SANITIZED 0
#endif

/* The server every test in the program shares (started in main). */
extern sc_test_redis g_redis;

static inline void test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline long long test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* With SC_TEST_LOG set, pods log to stderr (debugging a failing test). */
static inline void test_log(sc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    fprintf(stderr, "[%lld %d] %s\n", test_now_ms() % 100000, (int)level, msg);
}

/* Options for a pod on g_redis in namespace ns with pod id id (NULL: generated). */
static inline sc_options test_options(const char *ns, const char *id)
{
    sc_options o;
    sc_options_init(&o);
    o.ns = ns;
    o.pod_id = id;
    o.redis_port = g_redis.port;
    o.redis_timeout_ms = 1000;
    if (getenv("SC_TEST_LOG")) {
        o.log_fn = test_log;
        o.log_level = SC_LOG_DEBUG;
    }
    return o;
}

static inline sc_cache *test_open(const sc_options *o)
{
    sc_cache *c = NULL;
    sc_status s = sc_open(o, &c);
    ck_assert_msg(s == SC_OK, "sc_open: %s: %s", sc_strerror(s), sc_errmsg(NULL));
    return c;
}

static inline sc_cache *test_pod(const char *ns, const char *id)
{
    sc_options o = test_options(ns, id);
    return test_open(&o);
}

/* The value of key on c as a malloc'd string ("<none>" when missing,
 * "<error>" on error). Caller frees. */
static inline char *test_get(sc_cache *c, const char *key)
{
    sc_value *v = NULL;
    sc_status s = sc_get(c, key, &v);
    if (s == SC_NOT_FOUND)
        return strdup("<none>");
    if (s != SC_OK)
        return strdup("<error>");
    char *out = malloc(sc_value_size(v) + 1);
    memcpy(out, sc_value_data(v), sc_value_size(v));
    out[sc_value_size(v)] = '\0';
    sc_value_release(v);
    return out;
}

/* Whether c's local tier holds key (sc_peek: nothing counted; the
 * reference is dropped at once). */
static inline int test_held(sc_cache *c, const char *key)
{
    sc_value *v = NULL;
    int ok = sc_peek(c, key, &v) == SC_OK;
    sc_value_release(v);
    return ok;
}

/* A field (value, version, lock, tags, ...) of {ns}:k:<key> in Redis r, read
 * with plain commands ("<none>"). Caller frees. */
static inline char *test_redis_field_on(const sc_test_redis *r, const char *ns, const char *key, const char *field)
{
    redisContext *rc = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(rc);
    redisReply *rep = redisCommand(rc, "HGET {%s}:k:%s %s", ns, key, field);
    ck_assert_ptr_nonnull(rep);
    char *out = rep->type == REDIS_REPLY_STRING ? strndup(rep->str, rep->len) : strdup("<none>");
    freeReplyObject(rep);
    redisFree(rc);
    return out;
}

/* The value of {ns}:k:<key> in Redis r ("<none>"). Caller frees. */
static inline char *test_redis_value_on(const sc_test_redis *r, const char *ns, const char *key)
{
    return test_redis_field_on(r, ns, key, "value");
}

static inline char *test_redis_value(const char *ns, const char *key)
{
    return test_redis_value_on(&g_redis, ns, key);
}

/* The namespace's counter {ns}:seq in Redis r (0: none). A pod has applied
 * every write of the namespace once its last_seq reaches it. */
static inline uint64_t test_redis_counter_on(const sc_test_redis *r, const char *ns)
{
    redisContext *rc = sc_test_redis_connect(r);
    ck_assert_ptr_nonnull(rc);
    redisReply *rep = redisCommand(rc, "GET {%s}:seq", ns);
    ck_assert_ptr_nonnull(rep);
    uint64_t out = rep->type == REDIS_REPLY_STRING ? strtoull(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    redisFree(rc);
    return out;
}

/* Waits up to ms for c to have applied every write of namespace ns on Redis
 * r so far (events from every pod, its own included), then asserts it has. */
#define TEST_WAIT_APPLIED_ON(r, c, ns, ms)                                                                             \
    do {                                                                                                               \
        uint64_t want_ = test_redis_counter_on((r), (ns));                                                             \
        WAIT_UNTIL(test_stats(c).last_seq >= want_, (ms));                                                             \
        ck_assert_msg(test_stats(c).last_seq >= want_, "last_seq %llu, Redis' counter %llu",                           \
                      (unsigned long long)test_stats(c).last_seq, (unsigned long long)want_);                          \
    } while (0)
#define TEST_WAIT_APPLIED(c, ns, ms) TEST_WAIT_APPLIED_ON(&g_redis, c, ns, ms)

/* Asserts that got_expr, a malloc'd string such as test_get or
 * test_redis_value return, equals want, then frees it. A macro, so a failure
 * names the test's line; what says which value it was. */
#define TEST_ASSERT_STR_FREED(got_expr, want, what)                                                                    \
    do {                                                                                                               \
        char *got_ = (got_expr);                                                                                       \
        ck_assert_msg(strcmp(got_, (want)) == 0, "%s: got %s, want %s", (what), got_, (want));                         \
        free(got_);                                                                                                    \
    } while (0)

/* Opening with options o fails with SC_ERR_INVALID, leaves no handle, and
 * the message names word (the option at fault). A macro, so a failure names
 * the test's line. */
#define TEST_ASSERT_OPEN_INVALID(o, word)                                                                              \
    do {                                                                                                               \
        sc_cache *c_ = NULL;                                                                                           \
        ck_assert_int_eq(sc_open((o), &c_), SC_ERR_INVALID);                                                           \
        ck_assert_ptr_null(c_);                                                                                        \
        ck_assert_msg(strstr(sc_errmsg(NULL), (word)), "message '%s' lacks '%s'", sc_errmsg(NULL), (word));            \
    } while (0)

/* Polls cond (an expression) every 5 ms for up to ms milliseconds. */
#define WAIT_UNTIL(cond, ms)                                               \
    do {                                                                   \
        long long wait_deadline_ = test_now_ms() + (ms);                   \
        while (!(cond) && test_now_ms() < wait_deadline_)                  \
            test_sleep_ms(5);                                              \
    } while (0)

static inline sc_stats test_stats(sc_cache *c)
{
    sc_stats st;
    sc_stats_get(c, &st);
    return st;
}

/* Runs the suite in fork mode against servers the caller started and will
 * stop; returns the exit code. */
static inline int test_run_suite_on(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* Runs the suite in fork mode against a private Redis; returns the exit code. */
static inline int test_run_suite(Suite *s, const char *redis_extra)
{
    if (sc_test_redis_start(&g_redis, redis_extra) != 0)
        return 1;
    int rc = test_run_suite_on(s);
    sc_test_redis_stop(&g_redis);
    return rc;
}

#endif
