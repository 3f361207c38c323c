/* podsim --metrics-port N: pod i serves its sc_metrics_text over HTTP on
 * 127.0.0.1 port N + i - 1, the way a service exposes synccache's metrics to
 * Prometheus.
 *
 * The parent binds the sockets before it forks (so a port in use is an
 * error at start, not a silent pod); each pod serves its own from one thread
 * of its own process and closes the others'. The server is deliberately tiny:
 * one connection at a time, GET /metrics only, "Connection: close". A real
 * service would hang the same two sc_metrics_text calls (measure, then
 * fill) off the HTTP server it already has.
 */
#include "podsim.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int ps_metrics_listen(int port, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static struct {
    int fd;
    sc_cache *cache;
    pthread_t thread;
    atomic_int stop;
    int running;
} g_srv = {-1, NULL, 0, 0, 0};

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, const char *status, const char *type, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     type, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void serve_one(int fd)
{
    /* The request line is all we need; read until the headers end. */
    char req[4096];
    size_t used = 0;
    while (used < sizeof req - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0)
            break;
        ssize_t r = recv(fd, req + used, sizeof req - 1 - used, 0);
        if (r <= 0)
            break;
        used += (size_t)r;
        req[used] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[used] = '\0';
    char method[8] = "", path[256] = "";
    if (sscanf(req, "%7s %255s", method, path) != 2) {
        respond(fd, "400 Bad Request", "text/plain", "bad request\n", 12);
        return;
    }
    if (strcmp(method, "GET") != 0) {
        respond(fd, "405 Method Not Allowed", "text/plain", "GET only\n", 9);
        return;
    }
    if (strcmp(path, "/metrics") != 0) {
        static const char msg[] = "synccache metrics of pod-1: GET /metrics\n";
        respond(fd, "404 Not Found", "text/plain", msg, sizeof msg - 1);
        return;
    }
    /* snprintf semantics: measure, then fill (a little room for counters
     * that grow between the two calls). */
    size_t need = sc_metrics_text(g_srv.cache, NULL, 0) + 1024;
    char *body = malloc(need);
    if (!body) {
        respond(fd, "503 Service Unavailable", "text/plain", "out of memory\n", 14);
        return;
    }
    size_t len = sc_metrics_text(g_srv.cache, body, need);
    if (len >= need)
        len = need - 1;
    respond(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, len);
    free(body);
}

static void *serve(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_srv.stop)) {
        struct pollfd p = {g_srv.fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int c = accept4(g_srv.fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        serve_one(c);
        close(c);
    }
    return NULL;
}

int ps_metrics_start(int fd, sc_cache *cache)
{
    g_srv.fd = fd;
    g_srv.cache = cache;
    atomic_store(&g_srv.stop, 0);
    if (pthread_create(&g_srv.thread, NULL, serve, NULL) != 0)
        return -1;
    g_srv.running = 1;
    return 0;
}

void ps_metrics_stop(void)
{
    if (!g_srv.running)
        return;
    atomic_store(&g_srv.stop, 1);
    pthread_join(g_srv.thread, NULL);
    g_srv.running = 0;
    close(g_srv.fd);
    g_srv.fd = -1;
}
