/* Convergence checks shared by the multi-server suites (cluster, sentinel,
 * partitions, tracking): what every pod serves against what Redis holds,
 * and a writer thread whose acknowledged writes must survive a failover
 * unless the pods noticed the loss, and the history checker run beside
 * them. Value readers return malloc'd strings,
 * "<none>" when the key is absent.
 */
#ifndef SC_TEST_CONVERGE_H
#define SC_TEST_CONVERGE_H

#include <pthread.h>
#include <stdatomic.h>

#include "history.h"
#include "pods.h"
#include "redis_cluster.h"

/* Redis' value of key in namespace ns (the suite knows where to ask). */
typedef char *(*test_value_fn)(const char *ns, const char *key, void *ud);

/* The pod's local copy of key, or "<none>". */
static inline char *test_peek(sc_cache *c, const char *key)
{
    sc_value *v = NULL;
    if (sc_peek(c, key, &v) != SC_OK)
        return strdup("<none>");
    char *out = strndup(sc_value_data(v), sc_value_size(v));
    sc_value_release(v);
    return out;
}

/* Waits up to ms for c's local copy of key to be want ("<none>": dropped),
 * then asserts the last copy seen. A macro, so a failure names the test's
 * line. */
#define TEST_ASSERT_PEEK_SOON(c, key, want, ms)                                                                        \
    do {                                                                                                               \
        char *peek_ = NULL;                                                                                            \
        WAIT_UNTIL((free(peek_), peek_ = test_peek((c), (key)), strcmp(peek_, (want)) == 0), (ms));                    \
        ck_assert_msg(strcmp(peek_, (want)) == 0, "%s: holds %s, want %s", (key), peek_, (want));                      \
        free(peek_);                                                                                                   \
    } while (0)

/* Waits up to ms for c's local copy of key to be anything but old (also
 * none), then asserts the last copy seen. */
#define TEST_ASSERT_PEEK_LEAVES(c, key, old, ms)                                                                       \
    do {                                                                                                               \
        char *peek_ = NULL;                                                                                            \
        WAIT_UNTIL((free(peek_), peek_ = test_peek((c), (key)), strcmp(peek_, (old)) != 0), (ms));                     \
        ck_assert_msg(strcmp(peek_, (old)) != 0, "%s: still holds %s", (key), peek_);                                  \
        free(peek_);                                                                                                   \
    } while (0)

/* Every pod's local copy of key (when it has one) and its sc_get equal
 * Redis'; waits up to ms for the pods to converge. */
static inline void test_assert_converged(sc_cache **pods, int npods, const char *ns, const char *key, long ms,
                                         test_value_fn redis_value, void *ud)
{
    long long deadline = test_now_ms() + ms;
    for (;;) {
        char *want = redis_value(ns, key, ud);
        int ok = 1;
        char detail[512] = "";
        for (int p = 0; p < npods && ok; p++) {
            char *local = test_peek(pods[p], key);
            char *got = test_get(pods[p], key);
            if ((strcmp(local, "<none>") != 0 && strcmp(local, want) != 0) || strcmp(got, want) != 0) {
                ok = 0;
                snprintf(detail, sizeof detail, "pod %d: local %s, get %s, redis %s", p, local, got, want);
            }
            free(local);
            free(got);
        }
        free(want);
        if (ok)
            return;
        if (test_now_ms() > deadline)
            ck_abort_msg("{%s} %s did not converge: %s", ns, key, detail);
        test_sleep_ms(20);
    }
}

/* Opening a pod with o, whose addresses reach no usable server, fails
 * within 3 s with SC_ERR_REMOTE or SC_ERR_TIMEOUT and a message containing
 * word (the address or what was wrong), never hangs on a dead address. */
static inline void test_assert_open_fails_fast(const sc_options *o, const char *word)
{
    sc_cache *c = NULL;
    long long t0 = test_now_ms();
    sc_status s = sc_open(o, &c);
    ck_assert_msg(s == SC_ERR_REMOTE || s == SC_ERR_TIMEOUT, "got %s", sc_strerror(s));
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(sc_errmsg(NULL), word), "message: %s", sc_errmsg(NULL));
    ck_assert_int_lt(test_now_ms() - t0, 3000);
}

/* A writer thread: sets w0..w(TEST_WRITER_KEYS-1) round robin with
 * increasing numbers, remembering per key the last acknowledged number and
 * the last tried. */
#define TEST_WRITER_KEYS 16
typedef struct test_writer {
    sc_cache *c;
    atomic_int stop;
    long last_ok[TEST_WRITER_KEYS];
    long last_try[TEST_WRITER_KEYS];
    atomic_long ok;
    long failed;
    char first_error[256];
} test_writer;

static inline void *test_writer_main(void *p)
{
    test_writer *w = p;
    for (long n = 1; !atomic_load(&w->stop); n++) {
        int k = (int)(n % TEST_WRITER_KEYS);
        char key[16], val[32];
        snprintf(key, sizeof key, "w%d", k);
        snprintf(val, sizeof val, "%ld", n);
        w->last_try[k] = n;
        sc_status s = sc_set(w->c, key, val, strlen(val), 0);
        if (s == SC_OK) {
            w->last_ok[k] = n;
            atomic_fetch_add(&w->ok, 1);
        } else {
            /* A failure is a clear status with a message, never a hang. */
            if (!w->failed)
                snprintf(w->first_error, sizeof w->first_error, "%s: %s", sc_strerror(s), sc_errmsg(w->c));
            w->failed++;
            test_sleep_ms(5);
        }
        test_sleep_ms(1);
    }
    return NULL;
}

/* Starts w (its c set) writing on a thread of its own and lets it run for
 * warmup_ms, so that a fault injected next hits a writer in full swing. */
static inline pthread_t test_writer_start(test_writer *w, long warmup_ms)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, test_writer_main, w), 0);
    if (warmup_ms)
        test_sleep_ms(warmup_ms);
    return t;
}

/* Stops the writer started on t and waits for its last call to return, so
 * last_ok and last_try are final. */
static inline void test_writer_stop(test_writer *w, pthread_t t)
{
    atomic_store(&w->stop, 1);
    pthread_join(t, NULL);
}

/* Readers keep local copies of the writer's keys: every round one of them
 * reads them all, so the events of the writes have copies to update. */
static inline void test_read_writer_keys(sc_cache **readers, int nreaders, int rounds)
{
    for (int round = 0; round < rounds; round++) {
        for (int k = 0; k < TEST_WRITER_KEYS; k++) {
            char key[16];
            snprintf(key, sizeof key, "w%d", k);
            free(test_get(readers[round % nreaders], key));
        }
        test_sleep_ms(10);
    }
}

/* After a failover: waits up to ms for the writer to have 50 more writes
 * acknowledged than at the switch (since_ok), stops it, and asserts that
 * writing resumed. Returns test_now_ms() when it had (or the wait ended),
 * for the test's report. */
static inline long long test_writer_stop_once_resumed(test_writer *w, pthread_t t, long since_ok, long ms)
{
    WAIT_UNTIL(atomic_load(&w->ok) > since_ok + 50, ms);
    long long back = test_now_ms();
    test_writer_stop(w, t);
    ck_assert_msg(atomic_load(&w->ok) > since_ok + 50, "writes stalled after the failover (%ld failed: %s)", w->failed,
                  w->first_error);
    return back;
}

/* sc_test_node_cut_off_replica, asserted: from here on the master's
 * acknowledged writes are lost if it dies. */
static inline void test_cut_off_replica(int master, int replica)
{
    char err[256];
    ck_assert_msg(sc_test_node_cut_off_replica(master, replica, err, sizeof err) == 0, "%s", err);
}

/* The history checker (history.h) beside a failover test: three pods with
 * o's options in namespace ns, recording random gets, sets, deletes and
 * clears until test_history_check; connect finds the Redis holding ns. */
static inline void test_history_start(hist_run *h, const sc_options *o, const char *ns,
                                      redisContext *(*connect)(const char *ns, void *ud))
{
    char err[256];
    ck_assert_msg(hist_run_start(h, o, ns, 3, (uint64_t)time(NULL), connect, NULL, err, sizeof err) == 0, "%s", err);
}

/* Every rule of the checker holds, and every call returned within twice
 * redis_timeout_ms (one deadline of about the timeout bounds a call; the
 * margin is for a loaded machine) with a value or a clear status. */
static inline void test_history_check(hist_run *h, unsigned redis_timeout_ms, const char *tag)
{
    char first[512];
    size_t n = hist_run_finish(h, 2 * redis_timeout_ms, tag, first, sizeof first);
    ck_assert_msg(n == 0, "%s: %zu history violation(s), first: %s", tag, n, first);
}

/* After the writer stopped: every pod agrees with Redis (within ms), and no
 * acknowledged write was lost unless some pod noticed (a new epoch or a
 * flush). Convergence first: a pod may notice only when it resubscribes.
 * Returns how many keys lost an acknowledged write. */
static inline int test_check_writer(test_writer *w, sc_cache **pods, int npods, const char *ns, long ms,
                                    test_value_fn redis_value, void *ud)
{
    for (int k = 0; k < TEST_WRITER_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "w%d", k);
        test_assert_converged(pods, npods, ns, key, ms, redis_value, ud);
    }
    uint64_t noticed = 0;
    for (int p = 0; p < npods; p++)
        noticed += test_stats(pods[p]).epoch_changes + test_stats(pods[p]).flushes;
    int lost = 0;
    for (int k = 0; k < TEST_WRITER_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "w%d", k);
        char *v = redis_value(ns, key, ud);
        long have = strcmp(v, "<none>") == 0 ? 0 : atol(v);
        free(v);
        ck_assert_msg(have <= w->last_try[k], "%s holds %ld, never written", key, have);
        ck_assert_msg(have >= w->last_ok[k] || noticed, "%s lost acknowledged write %ld (holds %ld) unnoticed", key,
                      w->last_ok[k], have);
        lost += have < w->last_ok[k];
    }
    return lost;
}

#endif
