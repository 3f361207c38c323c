/* A master, a replica and three sentinels on loopback: see redis_sentinel.h. */
#include "redis_sentinel.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_cluster.h" /* sc_test_node_cmd, sc_test_node_replica_synced */

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

static int sentinel_start(sc_test_sentinel *s, int master_port)
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
        redisReply *r = sc_test_node_cmd(s->port, "PING");
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (ok)
            return 0;
        usleep(20000);
    }
    return -1;
}

static void sentinel_stop(sc_test_sentinel *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        for (int i = 0; i < 500 && waitpid(s->pid, NULL, WNOHANG) != s->pid; i++)
            usleep(10000);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, WNOHANG);
        s->pid = 0;
    }
    if (s->dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "redis_sentinel: cannot remove %s\n", s->dir);
        s->dir[0] = '\0';
    }
}

int sc_test_sentinels_master_port(const sc_test_sentinels *s)
{
    for (int i = 0; i < SC_TEST_SENTINELS; i++) {
        redisReply *r = sc_test_node_cmd(s->sent[i].port, "SENTINEL get-master-addr-by-name mymaster");
        int port = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? atoi(r->element[1]->str) : 0;
        if (r)
            freeReplyObject(r);
        if (port)
            return port;
    }
    return 0;
}

/* Each sentinel knows the replica and the other sentinels. */
static int sentinels_ready(const sc_test_sentinels *s)
{
    for (int i = 0; i < SC_TEST_SENTINELS; i++) {
        redisReply *a = sc_test_node_cmd(s->sent[i].port, "SENTINEL replicas mymaster");
        redisReply *b = sc_test_node_cmd(s->sent[i].port, "SENTINEL sentinels mymaster");
        int ok = a && b && a->type == REDIS_REPLY_ARRAY && a->elements >= 1 && b->type == REDIS_REPLY_ARRAY &&
                 b->elements >= SC_TEST_SENTINELS - 1;
        if (a)
            freeReplyObject(a);
        if (b)
            freeReplyObject(b);
        if (!ok)
            return 0;
    }
    return 1;
}

int sc_test_node_role_is(int port, const char *role)
{
    redisReply *r = sc_test_node_cmd(port, "ROLE");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && strcmp(r->element[0]->str, role) == 0;
    if (r)
        freeReplyObject(r);
    return ok;
}

int sc_test_sentinels_start(sc_test_sentinels *s)
{
    memset(s, 0, sizeof *s);
    /* No delay before a full sync: a replica promoted before its first sync
     * finished would hold nothing. */
    if (sc_test_redis_start(&s->data[0], "--repl-diskless-sync-delay 0") != 0)
        return -1;
    char extra[128];
    snprintf(extra, sizeof extra, "--repl-diskless-sync-delay 0 --replicaof 127.0.0.1 %d", s->data[0].port);
    if (sc_test_redis_start(&s->data[1], extra) != 0)
        return -1;
    int n = 0;
    for (int i = 0; i < SC_TEST_SENTINELS; i++) {
        if (sentinel_start(&s->sent[i], s->data[0].port) != 0) {
            fprintf(stderr, "redis_sentinel: sentinel %d did not start (log in %s)\n", i, s->sent[i].dir);
            return -1;
        }
        n += snprintf(s->list + n, sizeof s->list - (size_t)n, "%s127.0.0.1:%d", i ? "," : "", s->sent[i].port);
    }
    for (int i = 0; i < 300 && !(sentinels_ready(s) && sc_test_node_replica_synced(s->data[1].port)); i++)
        usleep(100000); /* up to 30 s */
    if (!sentinels_ready(s)) {
        fprintf(stderr, "redis_sentinel: the sentinels did not find each other and the replica\n");
        return -1;
    }
    return 0;
}

void sc_test_sentinels_stop(sc_test_sentinels *s)
{
    for (int i = 0; i < SC_TEST_SENTINELS; i++)
        sentinel_stop(&s->sent[i]);
    for (int i = 0; i < 2; i++)
        sc_test_redis_stop(&s->data[i]);
}
