/* Integration tests behind Redis Sentinel: a master, one replica and three
 * sentinels (redis-server --sentinel with a generated config), all on
 * loopback in temp dirs, started in main and always stopped. Pods find the
 * master through sentinel_nodes. Tests run in order: the switchover swaps
 * the roles and the last test kills whichever node is the master.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#include <sys/socket.h>

#include "converge.h"
#include "history.h"
#include "redis_cluster.h" /* sc_test_node_cmd, sc_test_node_replica_synced */
#include "redis_sentinel.h"

sc_test_redis g_redis; /* pods.h wants it; the tests use g_set */

static sc_test_sentinels g_set;

static int sentinel_master_port(void)
{
    return sc_test_sentinels_master_port(&g_set);
}

/* ----------------------------------------------------------- pods -- */

static sc_options sentinel_options(const char *ns, const char *id)
{
    sc_options o = test_options(ns, id);
    o.sentinel_nodes = g_set.list;
    o.redis_port = 1; /* ignored behind Sentinel */
    return o;
}

static sc_cache *sentinel_pod(const char *ns, const char *id)
{
    sc_options o = sentinel_options(ns, id);
    return test_open(&o);
}

/* {ns}:k:<key> on the current master ("<none>"). */
static char *master_value(const char *ns, const char *key)
{
    int port = sentinel_master_port();
    ck_assert_int_ne(port, 0);
    redisReply *r = sc_test_node_cmd(port, "HGET {%s}:k:%s value", ns, key);
    ck_assert_ptr_nonnull(r);
    char *out = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : strdup("<none>");
    freeReplyObject(r);
    return out;
}

static char *master_value_of(const char *ns, const char *key, void *ud)
{
    (void)ud;
    return master_value(ns, key);
}

static void assert_converged(sc_cache **pods, int npods, const char *ns, const char *key, long ms)
{
    test_assert_converged(pods, npods, ns, key, ms, master_value_of, NULL);
}

/* The history checker beside a failover test (test/support/history.h):
 * three pods of a namespace of their own recording random gets, sets,
 * deletes and clears through the failover. */
static redisContext *connect_master(const char *ns, void *ud)
{
    (void)ns;
    (void)ud;
    int port = sentinel_master_port();
    return port ? sc_test_redis_connect_addr("127.0.0.1", port) : NULL;
}

static void history_start(hist_run *h, const char *ns)
{
    sc_options o = sentinel_options(ns, NULL);
    test_history_start(h, &o, ns, connect_master);
}

static void history_check(hist_run *h, const char *tag)
{
    test_history_check(h, sentinel_options("x", NULL).redis_timeout_ms, tag);
}

/* ---------------------------------------------------------------- tests -- */

START_TEST(wrong_sentinel_address_or_name)
{
    sc_options o = sentinel_options("s_wrong", NULL);
    o.sentinel_nodes = "127.0.0.1:1";
    test_assert_open_fails_fast(&o, "sentinel");

    o = sentinel_options("s_wrong", NULL);
    o.sentinel_master = "nosuchmaster";
    sc_cache *c = NULL;
    sc_status s = sc_open(&o, &c);
    ck_assert_int_eq(s, SC_ERR_REMOTE);
    ck_assert_msg(strstr(sc_errmsg(NULL), "knows no master named \"nosuchmaster\""), "message: %s",
                  sc_errmsg(NULL));

    o = sentinel_options("s_wrong", NULL);
    o.sentinel_nodes = "127.0.0.1";
    ck_assert_int_eq(sc_open(&o, &c), SC_ERR_INVALID);
    ck_assert_msg(strstr(sc_errmsg(NULL), "sentinel_nodes"), "message: %s", sc_errmsg(NULL));
    o = sentinel_options("s_wrong", NULL);
    o.partitions = 100000;
    ck_assert_int_eq(sc_open(&o, &c), SC_ERR_INVALID);
    ck_assert_msg(strstr(sc_errmsg(NULL), "option partitions"), "message: %s", sc_errmsg(NULL));
}
END_TEST

START_TEST(pods_through_sentinel)
{
    sc_cache *a = sentinel_pod("s_basic", "a");
    sc_cache *b = sentinel_pod("s_basic", "b");
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    TEST_ASSERT_STR_FREED(master_value("s_basic", "k"), "v1", "k");
    TEST_ASSERT_STR_FREED(test_get(b, "k"), "v1", "k");
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK);
    TEST_ASSERT_PEEK_SOON(b, "k", "v2", 3000);
    ck_assert_int_eq(sc_delete(b, "k"), SC_OK);
    TEST_ASSERT_PEEK_SOON(a, "k", "<none>", 3000);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Server-assisted invalidation behind Sentinel: a write that bypasses
 * synccache, made on the master, drops both pods' copies. */
START_TEST(tracking_through_sentinel)
{
    sc_cache *a = sentinel_pod("s_trk", "a");
    sc_cache *b = sentinel_pod("s_trk", "b");
    WAIT_UNTIL(test_stats(a).tracking_active && test_stats(b).tracking_active, 3000);
    ck_assert_uint_eq(test_stats(a).tracking_active, 1);
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    TEST_ASSERT_PEEK_SOON(b, "k", "v1", 3000);
    redisReply *r = sc_test_node_cmd(sentinel_master_port(), "HSET {s_trk}:k:k value foreign");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    TEST_ASSERT_PEEK_SOON(b, "k", "<none>", 3000);
    /* Each pod hears the invalidation on its own connection, so a's copy
     * goes at its own time: wait for it too. */
    TEST_ASSERT_PEEK_SOON(a, "k", "<none>", 3000);
    TEST_ASSERT_STR_FREED(test_get(b, "k"), "foreign", "k");
    /* The copy goes before it is counted (lib/tracking.c): wait for the count. */
    WAIT_UNTIL(test_stats(b).tracking_invalidations >= 1, 3000);
    ck_assert_uint_ge(test_stats(b).tracking_invalidations, 1);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A partitioned namespace (option partitions) behind Sentinel: every
 * partition on the master, values and deletes propagate. */
START_TEST(partitioned_through_sentinel)
{
    sc_options o = sentinel_options("s_part", "a");
    o.partitions = 4;
    sc_cache *a = test_open(&o);
    o.pod_id = "b";
    sc_cache *b = test_open(&o);
    char key[16], *v;
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(sc_set(a, key, key, strlen(key), 0), SC_OK);
        v = test_get(b, key);
        ck_assert_str_eq(v, key);
        free(v);
    }
    int port = sentinel_master_port();
    for (int p = 0; p < 4; p++) {
        redisReply *r = sc_test_node_cmd(port, "HGET {s_part#%d}:meta partitions", p);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
        ck_assert_str_eq(r->str, "4");
        freeReplyObject(r);
    }
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(sc_delete(b, key), SC_OK);
        TEST_ASSERT_PEEK_SOON(a, key, "<none>", 3000);
    }
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(sentinel_failover_while_running)
{
    int old_master = sentinel_master_port();
    ck_assert_int_ne(old_master, 0);
    sc_cache *pods[2] = {sentinel_pod("s_fo", "a"), sentinel_pod("s_fo", "b")};
    hist_run h;
    history_start(&h, "s_foh");
    test_writer w = {.c = pods[0]};
    pthread_t t = test_writer_start(&w, 0);
    test_read_writer_keys(pods + 1, 1, 20);
    redisReply *r = sc_test_node_cmd(g_set.sent[0].port, "SENTINEL FAILOVER mymaster");
    ck_assert_msg(r && r->type != REDIS_REPLY_ERROR, "SENTINEL FAILOVER: %s", r ? r->str : "no reply");
    freeReplyObject(r);
    long long t0 = test_now_ms();
    uint64_t t_cmd = now_ns();
    WAIT_UNTIL(sentinel_master_port() != old_master, 15000);
    int new_master = sentinel_master_port();
    ck_assert_int_ne(new_master, old_master);
    WAIT_UNTIL(sc_test_node_role_is(new_master, "master"), 5000);
    uint64_t t_promoted = now_ns();
    long long back = test_writer_stop_once_resumed(&w, t, atomic_load(&w.ok), 10000) - t0;
    for (int p = 0; p < 2; p++)
        WAIT_UNTIL(test_stats(pods[p]).synced, 8000);
    int lost = test_check_writer(&w, pods, 2, "s_fo", 8000, master_value_of, NULL);
    /* The pods write to the new master now. */
    ck_assert_int_eq(sc_set(pods[1], "after", "x", 1, 0), SC_OK);
    redisReply *after = sc_test_node_cmd(new_master, "HGET {s_fo}:k:after value");
    ck_assert_ptr_nonnull(after);
    ck_assert_int_eq(after->type, REDIS_REPLY_STRING);
    freeReplyObject(after);
    /* A forced failover promotes the replica without waiting for it: the
     * old master's last writes may be lost. The pods follow +switch-master,
     * so from the promotion (and the checker's grace after it) on, every
     * rule holds again. */
    hist_add_window(&h.x, t_cmd, t_promoted, 0);
    history_check(&h, "sentinel failover");
    /* Tracking follows the subscription to the new master. */
    for (int p = 0; p < 2; p++)
        WAIT_UNTIL(test_stats(pods[p]).tracking_active, 5000);
    free(test_get(pods[1], "after"));
    char *held = test_peek(pods[1], "after");
    ck_assert_str_eq(held, "x");
    free(held);
    after = sc_test_node_cmd(new_master, "HSET {s_fo}:k:after value foreign");
    ck_assert_ptr_nonnull(after);
    freeReplyObject(after);
    TEST_ASSERT_PEEK_SOON(pods[1], "after", "<none>", 3000);      /* the foreign write's invalidation */
    WAIT_UNTIL(sc_test_node_role_is(old_master, "slave"), 10000); /* it rejoins before the next test */
    fprintf(stderr, "sentinel failover: writes back %lld ms after SENTINEL FAILOVER; %ld ok, %ld failed%s%s; %d lost\n",
            back, atomic_load(&w.ok), w.failed, w.failed ? " (first: " : "", w.failed ? w.first_error : "", lost);
    for (int p = 0; p < 2; p++)
        sc_close(pods[p]);
}
END_TEST

/* The replica misses the last writes (its link is cut and cannot come
 * back: a wrong masterauth), then the master dies: the sentinels promote a
 * replica without those writes. The pods must notice (the counter went
 * back, or the log holds other events at their sequence numbers), flush,
 * and converge on what the new master holds. */
START_TEST(promotion_that_lost_writes_is_detected)
{
    int master = sentinel_master_port();
    ck_assert_int_ne(master, 0);
    int mi = g_set.data[0].port == master ? 0 : 1;
    int replica = g_set.data[1 - mi].port;
    WAIT_UNTIL(sc_test_node_role_is(replica, "slave") && sc_test_node_replica_synced(replica), 10000);
    ck_assert_msg(sc_test_node_replica_synced(replica), "the replica at %d is not in sync", replica);

    sc_cache *pods[2] = {sentinel_pod("s_lost", "a"), sentinel_pod("s_lost", "b")};
    hist_run h;
    history_start(&h, "s_losth");
    test_writer w = {.c = pods[0]};
    pthread_t t = test_writer_start(&w, 300);
    uint64_t cut_off = now_ns();

    test_cut_off_replica(master, replica);
    long ok_cut = atomic_load(&w.ok);
    WAIT_UNTIL(atomic_load(&w.ok) > ok_cut + 30, 3000); /* acknowledged, on the master only */
    /* No write after the kill: a later write to the same key would hide
     * the loss this test is about. */
    test_writer_stop(&w, t);
    kill(g_set.data[mi].pid, SIGKILL);
    sc_test_node_restore_replica_auth(replica);
    long long t0 = test_now_ms();
    WAIT_UNTIL(sentinel_master_port() == replica && sc_test_node_role_is(replica, "master"), 20000);
    ck_assert_int_eq(sentinel_master_port(), replica);
    hist_add_window(&h.x, cut_off, now_ns(), 0); /* the writes since the cut-off are gone */
    /* The pods resubscribe at the new master and notice the loss. */
    for (int p = 0; p < 2; p++)
        WAIT_UNTIL(test_stats(pods[p]).synced && test_stats(pods[p]).reconnects > 0, 10000);
    long long back = test_now_ms() - t0;
    int lost = test_check_writer(&w, pods, 2, "s_lost", 8000, master_value_of, NULL);
    /* And writing goes on. */
    ck_assert_int_eq(sc_set(pods[0], "w0", "again", 5, 0), SC_OK);
    assert_converged(pods, 2, "s_lost", "w0", 3000);
    uint64_t noticed = 0;
    for (int p = 0; p < 2; p++)
        noticed += test_stats(pods[p]).epoch_changes + test_stats(pods[p]).flushes;
    fprintf(stderr,
            "promotion with lost writes: pods resynced %lld ms after the kill; %ld writes ok, %ld failed; %d keys "
            "lost acknowledged writes; pods noticed %llu times\n",
            back, atomic_load(&w.ok), w.failed, lost, (unsigned long long)noticed);
    history_check(&h, "promotion with lost writes");
    ck_assert_int_gt(lost, 0); /* the scenario did lose writes... */
    ck_assert_uint_gt(noticed, 0); /* ...and the pods saw it */
    for (int p = 0; p < 2; p++)
        sc_close(pods[p]);
}
END_TEST

/* A loopback listener (sc_test_black_hole: it never accepts unless the
 * test does) and its port. */
static int listener(int *port)
{
    int fd = sc_test_black_hole(port);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* Pod "a" of ns opened with 127.0.0.1:port listed before the real
 * sentinels. */
static sc_status open_with_first_sentinel(int port, const char *ns, sc_cache **c)
{
    char list[256];
    snprintf(list, sizeof list, "127.0.0.1:%d,%s", port, g_set.list);
    sc_options o = sentinel_options(ns, "a");
    o.sentinel_nodes = list;
    return sc_open(&o, c);
}
/* A sentinel that accepts connections and never answers (a hung host, a
 * paused process: the kernel completes the handshake) is listed first: the
 * pod must still find the master through the other sentinels within its
 * redis_timeout_ms, as "the pod asks the sentinels in turn" promises. */
START_TEST(hung_sentinel_listed_first)
{
    int port;
    int fd = listener(&port);
    sc_cache *c = NULL;
    sc_status s = open_with_first_sentinel(port, "s_hung", &c);
    ck_assert_msg(s == SC_OK, "sc_open with one hung sentinel of four: %s: %s", sc_strerror(s), sc_errmsg(NULL));
    ck_assert_int_eq(sc_set(c, "k", "v", 1, 0), SC_OK);
    sc_close(c);
    close(fd);
}
END_TEST

/* Every sentinel paused: pods already open go on with the master they know;
 * a new pod's sc_open fails within about redis_timeout_ms with
 * SC_ERR_TIMEOUT (each sentinel had its share of the deadline), and works
 * once they are back. */
START_TEST(all_sentinels_paused)
{
    sc_cache *a = sentinel_pod("s_paused", "a");
    ck_assert_int_eq(sc_set(a, "k", "v1", 2, 0), SC_OK);
    for (int i = 0; i < SC_TEST_SENTINELS; i++)
        kill(g_set.sent[i].pid, SIGSTOP);
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK);
    TEST_ASSERT_STR_FREED(test_get(a, "k"), "v2", "k");
    sc_options o = sentinel_options("s_paused", "b");
    sc_cache *b = NULL;
    long long t0 = test_now_ms();
    sc_status s = sc_open(&o, &b);
    long long took = test_now_ms() - t0;
    for (int i = 0; i < SC_TEST_SENTINELS; i++)
        kill(g_set.sent[i].pid, SIGCONT);
    ck_assert_msg(s == SC_ERR_TIMEOUT, "got %s", sc_strerror(s));
    ck_assert_msg(took < 5000, "sc_open took %lld ms with every sentinel paused",
                  took); /* no hang: about redis_timeout_ms */
    b = sentinel_pod("s_paused", "b");
    TEST_ASSERT_STR_FREED(test_get(b, "k"), "v2", "k");
    ck_assert_int_eq(sc_set(b, "k", "v3", 2, 0), SC_OK);
    TEST_ASSERT_PEEK_SOON(a, "k", "v3", 3000);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A sentinel with a stale view (cut off from the others during a failover)
 * keeps naming the old master, now a replica. Listed first, it must not
 * keep the pod from the master the other sentinels name: the ROLE check
 * refuses the replica, and the pod has to ask the next sentinel rather than
 * the same one again. The stale sentinel is a thread answering every
 * command with the replica's address. */
typedef struct liar {
    int fd;
    int replica_port;
    pthread_t thread;
} liar;

typedef struct liar_conn {
    int fd;
    const char *reply;
    size_t n;
} liar_conn;

/* One connection: one answer per read (the few commands sent are small). */
static void *liar_conn_main(void *arg)
{
    liar_conn *k = arg;
    char buf[512];
    while (read(k->fd, buf, sizeof buf) > 0)
        if (send(k->fd, k->reply, k->n, MSG_NOSIGNAL) < 0)
            break;
    close(k->fd);
    free(k);
    return NULL;
}

static void *liar_main(void *arg)
{
    liar *l = arg;
    static char reply[64];
    char port[8];
    snprintf(port, sizeof port, "%d", l->replica_port);
    int n = snprintf(reply, sizeof reply, "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n", strlen(port), port);
    for (;;) {
        int c = accept(l->fd, NULL, NULL);
        if (c < 0)
            return NULL; /* the listener was shut down */
        liar_conn *k = malloc(sizeof *k);
        ck_assert_ptr_nonnull(k);
        *k = (liar_conn){c, reply, (size_t)n};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, liar_conn_main, k), 0);
        pthread_detach(t);
    }
}

START_TEST(stale_sentinel_listed_first)
{
    int master = sentinel_master_port();
    int replica = g_set.data[0].port == master ? g_set.data[1].port : g_set.data[0].port;
    ck_assert_msg(sc_test_node_role_is(replica, "slave"), "port %d is not a replica", replica);
    int port;
    liar l = {.fd = listener(&port), .replica_port = replica};
    ck_assert_int_eq(pthread_create(&l.thread, NULL, liar_main, &l), 0);
    sc_cache *c = NULL;
    sc_status s = open_with_first_sentinel(port, "s_stale", &c);
    if (s == SC_OK) {
        s = sc_set(c, "k", "v", 1, 0);
        sc_close(c);
    }
    shutdown(l.fd, SHUT_RDWR);
    close(l.fd);
    pthread_join(l.thread, NULL);
    ck_assert_msg(s == SC_OK, "with a stale sentinel first: %s: %s", sc_strerror(s), sc_errmsg(NULL));
    TEST_ASSERT_STR_FREED(master_value("s_stale", "k"), "v", "k");
}
END_TEST

int main(void)
{
    if (sc_test_sentinels_start(&g_set) != 0) {
        sc_test_sentinels_stop(&g_set);
        return 1;
    }
    Suite *s = suite_create("sentinel");
    TCase *stale = tcase_create("stale_sentinel"); /* first: it needs the replica alive */
    tcase_set_timeout(stale, 30);
    tcase_add_test(stale, stale_sentinel_listed_first);
    suite_add_tcase(s, stale);
    TCase *tc = tcase_create("sentinel");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, wrong_sentinel_address_or_name);
    tcase_add_test(tc, pods_through_sentinel);
    tcase_add_test(tc, tracking_through_sentinel);
    tcase_add_test(tc, partitioned_through_sentinel);
    tcase_add_test(tc, sentinel_failover_while_running);
    tcase_add_test(tc, promotion_that_lost_writes_is_detected);
    suite_add_tcase(s, tc);
    TCase *hung = tcase_create("hung_sentinel");
    tcase_set_timeout(hung, 30);
    tcase_add_test(hung, hung_sentinel_listed_first);
    suite_add_tcase(s, hung);
    TCase *paused = tcase_create("paused_sentinels");
    tcase_set_timeout(paused, 30);
    tcase_add_test(paused, all_sentinels_paused);
    suite_add_tcase(s, paused);
    int rc = test_run_suite_on(s);
    sc_test_sentinels_stop(&g_set);
    return rc;
}
