/* Starts, restarts and stops a private redis-server for tests and tools.
 * The port is found by binding port 0 and releasing it just before Redis
 * takes it; a lost race shows up as a server that never answers PING, and
 * the start is retried on another port. */
#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int spawn(sc_test_redis *r)
{
    char port[16], logfile[400];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(logfile, sizeof logfile, "%s/redis.log", r->dir);

    const char *argv[64];
    int n = 0;
    const char *bin = getenv("SC_REDIS_SERVER");
    argv[n++] = bin && *bin ? bin : "redis-server";
    argv[n++] = "--port";           argv[n++] = port;
    argv[n++] = "--bind";           argv[n++] = "127.0.0.1";
    argv[n++] = "--unixsocket";     argv[n++] = r->sock;
    argv[n++] = "--dir";            argv[n++] = r->dir;
    argv[n++] = "--logfile";        argv[n++] = logfile;
    argv[n++] = "--save";           argv[n++] = "";
    argv[n++] = "--appendonly";     argv[n++] = "no";
    argv[n++] = "--daemonize";      argv[n++] = "no";
    argv[n++] = "--protected-mode"; argv[n++] = "no";
    /* Split the extra words in a copy; the child execs before it matters. */
    char extra[sizeof r->conf_extra];
    snprintf(extra, sizeof extra, "%s", r->conf_extra);
    for (char *save = NULL, *w = strtok_r(extra, " ", &save); w && n < 62; w = strtok_r(NULL, " ", &save))
        argv[n++] = w;
    argv[n] = NULL;

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Never outlive the test: a crashed test must not leave Redis behind. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "redis_server: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    r->pid = pid;

    /* Wait up to 5 s for PING. */
    for (int i = 0; i < 250; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            return -1;
        }
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
        if (c && !c->err) {
            redisReply *rep = redisCommand(c, "PING");
            int ok = rep && rep->type == REDIS_REPLY_STATUS;
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return 0;
        } else if (c) {
            redisFree(c);
        }
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    r->pid = 0;
    return -1;
}

int sc_test_redis_start(sc_test_redis *r, const char *extra)
{
    memset(r, 0, sizeof *r);
    snprintf(r->conf_extra, sizeof r->conf_extra, "%s", extra ? extra : "");
    const char *tmp = getenv("TMPDIR");
    snprintf(r->dir, sizeof r->dir, "%s/sc-redis-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(r->dir)) {
        fprintf(stderr, "redis_server: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = free_port();
        if (r->port > 0 && spawn(r) == 0)
            return 0;
    }
    fprintf(stderr, "redis_server: could not start redis-server (is it installed?) log in %s\n", r->dir);
    return -1;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[600];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void reap(sc_test_redis *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    /* Give a clean shutdown 5 s, then force it. */
    for (int i = 0; i < 500; i++) {
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
            r->pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

void sc_test_redis_stop(sc_test_redis *r)
{
    reap(r, SIGTERM);
    if (r->dir[0]) {
        remove_dir(r->dir);
        r->dir[0] = '\0';
    }
}

void sc_test_redis_kill(sc_test_redis *r)
{
    reap(r, SIGKILL);
}

int sc_test_redis_start_again(sc_test_redis *r)
{
    /* The old server may still hold the port for a moment after exiting. */
    for (int i = 0; i < 50; i++) {
        if (spawn(r) == 0)
            return 0;
        sleep_ms(100);
    }
    return -1;
}

int sc_test_redis_restart(sc_test_redis *r)
{
    sc_test_redis_kill(r);
    return sc_test_redis_start_again(r);
}

redisContext *sc_test_redis_connect(const sc_test_redis *r)
{
    return sc_test_redis_connect_addr("127.0.0.1", r->port);
}

redisContext *sc_test_redis_connect_addr(const char *host, int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

int sc_test_redis_cmd(const sc_test_redis *r, const char *fmt, ...)
{
    redisContext *c = sc_test_redis_connect(r);
    if (!c)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    int rc = rep && rep->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return rc;
}

static unsigned long long used_memory(redisContext *c)
{
    redisReply *rep = redisCommand(c, "INFO memory");
    const char *um = rep && rep->type == REDIS_REPLY_STRING ? strstr(rep->str, "used_memory:") : NULL;
    unsigned long long used = um ? strtoull(um + strlen("used_memory:"), NULL, 10) : 0;
    if (rep)
        freeReplyObject(rep);
    return used;
}

int sc_test_redis_fill(const sc_test_redis *r)
{
    redisContext *c = sc_test_redis_connect(r);
    if (!c)
        return -1;
    unsigned long long limit = used_memory(c) + 256 * 1024;
    if (limit < 1024 * 1024)
        limit = 1024 * 1024;
    static const char fill[8192] = {'f'};
    int full = 0;
    redisReply *rep = redisCommand(c, "CONFIG SET maxmemory-policy noeviction");
    int ok = rep && rep->type != REDIS_REPLY_ERROR;
    if (rep)
        freeReplyObject(rep);
    rep = ok ? redisCommand(c, "CONFIG SET maxmemory %llu", limit) : NULL;
    ok = rep && rep->type != REDIS_REPLY_ERROR;
    if (rep)
        freeReplyObject(rep);
    for (int i = 0; ok && i < 100000 && !full; i++) {
        rep = redisCommand(c, "SET fill:%d %b", i, fill, sizeof fill);
        if (!rep)
            break;
        full = rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "OOM");
        freeReplyObject(rep);
    }
    unsigned long long used = full ? used_memory(c) : 0;
    if (used > 128 * 1024)
        freeReplyObject(redisCommand(c, "CONFIG SET maxmemory %llu", used - 128 * 1024));
    redisFree(c);
    return full && used > 128 * 1024 ? 0 : -1;
}

int sc_test_black_hole(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}
