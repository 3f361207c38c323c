/* Redis Sentinel: asking a sentinel where the master is, and a watcher
 * thread that follows +switch-master so the pod moves as soon as the
 * sentinels have promoted a replica (without it, the pod would only move at
 * its next error: a refused connection or a READONLY reply from the demoted
 * master). The watcher is an optimisation; correctness never depends on it.
 */
#include "remote/remote.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <hiredis/hiredis.h>

sc_status sc__sentinel_master(redisContext *c, const char *name, sc__addr *a, char *err, size_t errlen)
{
    redisReply *reply = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
    if (!reply) {
        sc__remote_errf(err, errlen, "SENTINEL get-master-addr-by-name: %s", c->errstr[0] ? c->errstr : "I/O error");
        return SC_ERR_REMOTE;
    }
    sc_status st = SC_OK;
    if (reply->type == REDIS_REPLY_NIL) {
        sc__remote_errf(err, errlen, "the sentinel knows no master named \"%s\"", name);
        st = SC_NOT_FOUND;
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
               reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING ||
               reply->element[0]->len >= sizeof a->host || atoi(reply->element[1]->str) <= 0 ||
               atoi(reply->element[1]->str) > 65535) {
        sc__remote_errf(err, errlen, "SENTINEL get-master-addr-by-name: %s",
                        reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        st = SC_ERR_REMOTE;
    } else {
        snprintf(a->host, sizeof a->host, "%s", reply->element[0]->str);
        a->port = atoi(reply->element[1]->str);
    }
    freeReplyObject(reply);
    return st;
}

struct sc__sentinel_watch {
    sc__router *rt;
    sc__addr *sentinels;
    size_t n;
    char *name;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    redisContext *ctx; /* the current subscription; shut down to stop */
};

/* Waits ms or until stop; returns stop. */
static int pause_ms(sc__sentinel_watch *w, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &ts) != ETIMEDOUT)
        ;
    int stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

/* "<name> <old ip> <old port> <new ip> <new port>" */
static void on_switch(sc__sentinel_watch *w, const char *msg)
{
    char name[257], oldip[256], newip[256];
    int oldport, newport;
    if (sscanf(msg, "%256s %255s %d %255s %d", name, oldip, &oldport, newip, &newport) == 5 &&
        strcmp(name, w->name) == 0 && newport > 0 && newport <= 65535)
        sc__router_moved(w->rt, newip, newport);
}

static void *watch_main(void *arg)
{
    sc__sentinel_watch *w = arg;
    for (size_t i = 0;; i = (i + 1) % w->n) {
        char err[256];
        redisContext *c = sc__router_connect(w->rt, &w->sentinels[i], 0, sc__remote_now_ms() + 1000, err, sizeof err);
        if (!c) {
            if (pause_ms(w, 200))
                return NULL;
            continue;
        }
        pthread_mutex_lock(&w->mu);
        int stop = w->stop;
        if (!stop)
            w->ctx = c;
        pthread_mutex_unlock(&w->mu);
        if (stop) {
            redisFree(c);
            return NULL;
        }
        /* Block on the subscription: sc__sentinel_watch_stop shuts the
         * socket down to wake this thread. */
        struct timeval none = {0, 0};
        redisReply *r = redisCommand(c, "SUBSCRIBE +switch-master");
        if (r && redisSetTimeout(c, none) == REDIS_OK) {
            for (;;) {
                freeReplyObject(r);
                r = NULL;
                if (redisGetReply(c, (void **)&r) != REDIS_OK || !r)
                    break;
                if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
                    strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
                    on_switch(w, r->element[2]->str);
            }
        }
        if (r)
            freeReplyObject(r);
        pthread_mutex_lock(&w->mu);
        w->ctx = NULL;
        pthread_mutex_unlock(&w->mu);
        redisFree(c);
        if (pause_ms(w, 200))
            return NULL;
    }
}

sc_status sc__sentinel_watch_start(sc__router *rt, const sc__addr *sentinels, size_t n, const char *name,
                                   sc__sentinel_watch **out, char *err, size_t errlen)
{
    *out = NULL;
    sc__sentinel_watch *w = calloc(1, sizeof *w);
    if (!w || n == 0 || !(w->sentinels = malloc(n * sizeof *sentinels)) || !(w->name = strdup(name))) {
        if (w)
            free(w->sentinels);
        free(w);
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    memcpy(w->sentinels, sentinels, n * sizeof *sentinels);
    w->n = n;
    w->rt = rt;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* No signals on this thread: a SIGPIPE from a write to a sentinel that
     * went away must not reach the application. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, watch_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w->sentinels);
        free(w->name);
        free(w);
        sc__remote_errf(err, errlen, "cannot start the sentinel watcher: %s", strerror(rc));
        return SC_ERR_NOMEM;
    }
    pthread_setname_np(w->thread, "sc-sentinel");
    *out = w;
    return SC_OK;
}

void sc__sentinel_watch_stop(sc__sentinel_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    if (w->ctx)
        shutdown(w->ctx->fd, SHUT_RDWR);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->sentinels);
    free(w->name);
    free(w);
}
