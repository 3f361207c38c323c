/* Integration tests behind Redis Sentinel: a master, one replica and three
 * sentinels (redis-server --sentinel with a generated config), all on
 * loopback in temp dirs, started in main and always stopped. Pods find the
 * master through sentinel_nodes. Tests run in order: the switchover swaps
 * the roles and the last test kills whichever node is the master.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "converge.h"

sc_test_redis g_redis; /* pods.h wants it; the tests use g_data */

#define SENTINELS 3
static sc_test_redis g_data[2]; /* [0] starts as the master, [1] as its replica */
static struct sentinel {
    pid_t pid;
    int port;
    char dir[256];
} g_sent[SENTINELS];
static char g_sentinel_list[128];

/* ------------------------------------------------------------ harness -- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static redisReply *cmd_at(int port, const char *fmt, ...)
{
    redisContext *c = sc_test_redis_connect_addr("127.0.0.1", port);
    if (!c)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static int sentinel_start(struct sentinel *s, int master_port)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/sc-sentinel-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir))
        return -1;
    s->port = free_port();
    char conf[400];
    snprintf(conf, sizeof conf, "%s/sentinel.conf", s->dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir %s\nlogfile %s/sentinel.log\n"
            "sentinel monitor mymaster 127.0.0.1 %d 2\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n"
            "sentinel parallel-syncs mymaster 1\n",
            s->port, s->dir, s->dir, master_port);
    fclose(f);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        const char *bin = getenv("SC_REDIS_SERVER");
        execlp(bin && *bin ? bin : "redis-server", "redis-server", conf, "--sentinel", (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 250; i++) {
        redisReply *r = cmd_at(s->port, "PING");
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (ok)
            return 0;
        test_sleep_ms(20);
    }
    return -1;
}

static void sentinel_stop(struct sentinel *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        for (int i = 0; i < 500 && waitpid(s->pid, NULL, WNOHANG) != s->pid; i++)
            test_sleep_ms(10);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, WNOHANG);
        s->pid = 0;
    }
    if (s->dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "check_sentinel: cannot remove %s\n", s->dir);
        s->dir[0] = '\0';
    }
}

/* The master port a sentinel names now (0 if none answers). */
static int sentinel_master_port(void)
{
    for (int i = 0; i < SENTINELS; i++) {
        redisReply *r = cmd_at(g_sent[i].port, "SENTINEL get-master-addr-by-name mymaster");
        int port = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? atoi(r->element[1]->str) : 0;
        if (r)
            freeReplyObject(r);
        if (port)
            return port;
    }
    return 0;
}

/* Each sentinel knows the replica and the two other sentinels. */
static int sentinels_ready(void)
{
    for (int i = 0; i < SENTINELS; i++) {
        redisReply *a = cmd_at(g_sent[i].port, "SENTINEL replicas mymaster");
        redisReply *b = cmd_at(g_sent[i].port, "SENTINEL sentinels mymaster");
        int ok = a && b && a->type == REDIS_REPLY_ARRAY && a->elements >= 1 && b->type == REDIS_REPLY_ARRAY &&
                 b->elements >= SENTINELS - 1;
        if (a)
            freeReplyObject(a);
        if (b)
            freeReplyObject(b);
        if (!ok)
            return 0;
    }
    return 1;
}

static int role_is(int port, const char *role)
{
    redisReply *r = cmd_at(port, "ROLE");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && strcmp(r->element[0]->str, role) == 0;
    if (r)
        freeReplyObject(r);
    return ok;
}

/* The replica at port finished its sync with its master. */
static int replica_synced(int port)
{
    redisReply *r = cmd_at(port, "INFO replication");
    int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up") &&
             !strstr(r->str, "master_sync_in_progress:1");
    if (r)
        freeReplyObject(r);
    return ok;
}

static int setup_start(void)
{
    /* No delay before a full sync: a replica promoted before its first sync
     * finished would hold nothing. */
    if (sc_test_redis_start(&g_data[0], "--repl-diskless-sync-delay 0") != 0)
        return -1;
    char extra[128];
    snprintf(extra, sizeof extra, "--repl-diskless-sync-delay 0 --replicaof 127.0.0.1 %d", g_data[0].port);
    if (sc_test_redis_start(&g_data[1], extra) != 0)
        return -1;
    int n = 0;
    for (int i = 0; i < SENTINELS; i++) {
        if (sentinel_start(&g_sent[i], g_data[0].port) != 0)
            return -1;
        n += snprintf(g_sentinel_list + n, sizeof g_sentinel_list - (size_t)n, "%s127.0.0.1:%d", i ? "," : "",
                      g_sent[i].port);
    }
    long long deadline = test_now_ms() + 30000;
    while (!(sentinels_ready() && replica_synced(g_data[1].port)) && test_now_ms() < deadline)
        test_sleep_ms(100);
    if (!sentinels_ready()) {
        fprintf(stderr, "check_sentinel: the sentinels did not find each other and the replica\n");
        return -1;
    }
    return 0;
}

static void setup_stop(void)
{
    for (int i = 0; i < SENTINELS; i++)
        sentinel_stop(&g_sent[i]);
    for (int i = 0; i < 2; i++)
        sc_test_redis_stop(&g_data[i]);
}

/* ----------------------------------------------------------- pods -- */

static sc_options sentinel_options(const char *ns, const char *id)
{
    sc_options o = test_options(ns, id);
    o.sentinel_nodes = g_sentinel_list;
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
    redisReply *r = cmd_at(port, "HGET {%s}:k:%s value", ns, key);
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

/* ---------------------------------------------------------------- tests -- */

START_TEST(wrong_sentinel_address_or_name)
{
    sc_options o = sentinel_options("s_wrong", NULL);
    o.sentinel_nodes = "127.0.0.1:1";
    sc_cache *c = NULL;
    long long t0 = test_now_ms();
    sc_status s = sc_open(&o, &c);
    ck_assert_msg(s == SC_ERR_REMOTE || s == SC_ERR_TIMEOUT, "got %s", sc_strerror(s));
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(sc_errmsg(NULL), "sentinel"), "message: %s", sc_errmsg(NULL));
    ck_assert_int_lt(test_now_ms() - t0, 3000);

    o = sentinel_options("s_wrong", NULL);
    o.sentinel_master = "nosuchmaster";
    s = sc_open(&o, &c);
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
    char *v = master_value("s_basic", "k");
    ck_assert_str_eq(v, "v1");
    free(v);
    v = test_get(b, "k");
    ck_assert_str_eq(v, "v1");
    free(v);
    ck_assert_int_eq(sc_set(a, "k", "v2", 2, 0), SC_OK);
    WAIT_UNTIL((v = test_peek(b, "k"), strcmp(v, "v2") == 0 ? 1 : (free(v), 0)), 3000);
    ck_assert_str_eq(v, "v2");
    free(v);
    ck_assert_int_eq(sc_delete(b, "k"), SC_OK);
    WAIT_UNTIL((v = test_peek(a, "k"), strcmp(v, "<none>") == 0 ? 1 : (free(v), 0)), 3000);
    ck_assert_str_eq(v, "<none>");
    free(v);
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
        redisReply *r = cmd_at(port, "HGET {s_part#%d}:meta partitions", p);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
        ck_assert_str_eq(r->str, "4");
        freeReplyObject(r);
    }
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(sc_delete(b, key), SC_OK);
        WAIT_UNTIL((v = test_peek(a, key), strcmp(v, "<none>") == 0 ? 1 : (free(v), 0)), 3000);
        ck_assert_str_eq(v, "<none>");
        free(v);
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
    test_writer w = {.c = pods[0]};
    pthread_t t;
    pthread_create(&t, NULL, test_writer_main, &w);
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < TEST_WRITER_KEYS; k++) {
            char key[16];
            snprintf(key, sizeof key, "w%d", k);
            free(test_get(pods[1], key));
        }
        test_sleep_ms(10);
    }
    redisReply *r = cmd_at(g_sent[0].port, "SENTINEL FAILOVER mymaster");
    ck_assert_msg(r && r->type != REDIS_REPLY_ERROR, "SENTINEL FAILOVER: %s", r ? r->str : "no reply");
    freeReplyObject(r);
    long long t0 = test_now_ms();
    WAIT_UNTIL(sentinel_master_port() != old_master, 15000);
    int new_master = sentinel_master_port();
    ck_assert_int_ne(new_master, old_master);
    WAIT_UNTIL(role_is(new_master, "master"), 5000);
    long ok_at_switch = atomic_load(&w.ok);
    WAIT_UNTIL(atomic_load(&w.ok) > ok_at_switch + 50, 10000);
    long long back = test_now_ms() - t0;
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    ck_assert_msg(atomic_load(&w.ok) > ok_at_switch + 50, "writes stalled after the failover (%ld failed: %s)",
                  w.failed, w.first_error);
    for (int p = 0; p < 2; p++)
        WAIT_UNTIL(test_stats(pods[p]).synced, 8000);
    int lost = test_check_writer(&w, pods, 2, "s_fo", 8000, master_value_of, NULL);
    /* The pods write to the new master now. */
    ck_assert_int_eq(sc_set(pods[1], "after", "x", 1, 0), SC_OK);
    redisReply *h = cmd_at(new_master, "HGET {s_fo}:k:after value");
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(h->type, REDIS_REPLY_STRING);
    freeReplyObject(h);
    fprintf(stderr, "sentinel failover: writes back %lld ms after SENTINEL FAILOVER; %ld ok, %ld failed%s%s; %d lost\n",
            back, atomic_load(&w.ok), w.failed, w.failed ? " (first: " : "", w.failed ? w.first_error : "", lost);
    for (int p = 0; p < 2; p++)
        sc_close(pods[p]);
    /* The old master rejoins as a replica before the next test. */
    WAIT_UNTIL(role_is(old_master, "slave"), 10000);
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
    int mi = g_data[0].port == master ? 0 : 1;
    int replica = g_data[1 - mi].port;
    WAIT_UNTIL(role_is(replica, "slave") && replica_synced(replica), 10000);
    ck_assert_msg(replica_synced(replica), "the replica at %d is not in sync", replica);

    sc_cache *pods[2] = {sentinel_pod("s_lost", "a"), sentinel_pod("s_lost", "b")};
    test_writer w = {.c = pods[0]};
    pthread_t t;
    pthread_create(&t, NULL, test_writer_main, &w);
    test_sleep_ms(300);

    redisReply *r = cmd_at(replica, "CONFIG SET masterauth wrong-password");
    ck_assert_msg(r && r->type != REDIS_REPLY_ERROR, "%s", r ? r->str : "no reply");
    freeReplyObject(r);
    r = cmd_at(master, "CLIENT KILL TYPE replica");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    long ok_cut = atomic_load(&w.ok);
    WAIT_UNTIL(atomic_load(&w.ok) > ok_cut + 30, 3000); /* acknowledged, on the master only */
    /* No write after the kill: a later write to the same key would hide
     * the loss this test is about. */
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    kill(g_data[mi].pid, SIGKILL);
    r = cmd_at(replica, "CONFIG SET masterauth %s", "");
    if (r)
        freeReplyObject(r);
    long long t0 = test_now_ms();
    WAIT_UNTIL(sentinel_master_port() == replica && role_is(replica, "master"), 20000);
    ck_assert_int_eq(sentinel_master_port(), replica);
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
    ck_assert_int_gt(lost, 0); /* the scenario did lose writes... */
    ck_assert_uint_gt(noticed, 0); /* ...and the pods saw it */
    for (int p = 0; p < 2; p++)
        sc_close(pods[p]);
}
END_TEST

int main(void)
{
    if (setup_start() != 0) {
        setup_stop();
        return 1;
    }
    Suite *s = suite_create("sentinel");
    TCase *tc = tcase_create("sentinel");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, wrong_sentinel_address_or_name);
    tcase_add_test(tc, pods_through_sentinel);
    tcase_add_test(tc, partitioned_through_sentinel);
    tcase_add_test(tc, sentinel_failover_while_running);
    tcase_add_test(tc, promotion_that_lost_writes_is_detected);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    setup_stop();
    return failed ? 1 : 0;
}
