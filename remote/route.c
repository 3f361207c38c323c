/* Where the namespace lives when it is not one fixed Redis: the router the
 * pool (and, through lib/, the subscriber) asks for the node to talk to.
 *
 * In a Redis Cluster a namespace is one hash slot, the slot of "{ns}", so
 * the router keeps one address: the master that owns that slot. It learns
 * it from CLUSTER SLOTS (asked of the node it knew last, then of the seeds),
 * and a MOVED reply moves it at once. Behind Sentinel the address is the
 * master the sentinels name; a watcher thread (sentinel.c) moves it on
 * +switch-master. Every change bumps a generation number: pool connections
 * and the subscription made under an older generation reconnect.
 *
 * Sentinels are asked without AUTH (the data nodes' credentials are for the
 * data nodes); cluster nodes get the same AUTH as any pool connection.
 */
#include "remote/remote.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

struct sc__router {
    sc__route_kind kind;
    sc__addr *seeds; /* cluster seeds or sentinels */
    size_t nseeds;
    char *master;    /* sentinel: the master's name */
    unsigned slot;   /* cluster: the namespace's slot */
    char *username;
    char *password;

    pthread_mutex_t mu; /* guards the five below */
    sc__addr cur;
    int has_cur;
    unsigned gen;
    size_t first;    /* sentinel: the one asked first (the last that answered) */
    size_t cur_from; /* sentinel: the one that named cur */

    sc__sentinel_watch *watch;
};

int sc__addr_list_parse(const char *list, sc__addr **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!list)
        return -1;
    size_t cap = 1;
    for (const char *c = list; *c; c++)
        cap += *c == ',';
    sc__addr *a = calloc(cap, sizeof *a);
    char *copy = strdup(list);
    if (!a || !copy) {
        free(a);
        free(copy);
        return -1;
    }
    size_t k = 0;
    int bad = 0;
    for (char *save = NULL, *w = strtok_r(copy, ",", &save); w && !bad; w = strtok_r(NULL, ",", &save)) {
        while (*w == ' ' || *w == '\t')
            w++;
        char *end = w + strlen(w);
        while (end > w && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        char *colon = strrchr(w, ':');
        if (!colon || colon == w || !colon[1]) {
            bad = 1;
            break;
        }
        *colon = '\0';
        char *host = w;
        size_t hl = strlen(host);
        if (host[0] == '[' && host[hl - 1] == ']') { /* [::1]:7000 */
            host[hl - 1] = '\0';
            host++;
        }
        char *pend;
        errno = 0;
        long port = strtol(colon + 1, &pend, 10);
        if (*pend || errno || port < 1 || port > 65535 || !*host || strlen(host) >= sizeof a->host) {
            bad = 1;
            break;
        }
        snprintf(a[k].host, sizeof a[k].host, "%s", host);
        a[k].port = (int)port;
        k++;
    }
    free(copy);
    if (bad || k == 0) {
        free(a);
        return -1;
    }
    *out = a;
    *n = k;
    return 0;
}

sc_status sc__router_create(const sc__remote_config *cfg, sc__router **out, char *err, size_t errlen)
{
    *out = NULL;
    int cluster = cfg->cluster_nodes != NULL;
    const char *list = cluster ? cfg->cluster_nodes : cfg->sentinel_nodes;
    sc__router *rt = calloc(1, sizeof *rt);
    if (!rt) {
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    pthread_mutex_init(&rt->mu, NULL);
    rt->kind = cluster ? SC__ROUTE_CLUSTER : SC__ROUTE_SENTINEL;
    rt->gen = 1;
    if (sc__addr_list_parse(list, &rt->seeds, &rt->nseeds) != 0) {
        sc__router_destroy(rt);
        sc__remote_errf(err, errlen, "option %s: \"%s\" is not a list of host:port",
                        cluster ? "redis_cluster_nodes" : "sentinel_nodes", list ? list : "");
        return SC_ERR_INVALID;
    }
    if (cluster) {
        size_t n = strlen(cfg->ns);
        char *tag = malloc(n + 3);
        if (!tag) {
            sc__router_destroy(rt);
            sc__remote_errf(err, errlen, "out of memory");
            return SC_ERR_NOMEM;
        }
        snprintf(tag, n + 3, "{%s}", cfg->ns);
        rt->slot = sc__cluster_keyslot(tag, n + 2);
        free(tag);
    }
    rt->master = strdup(cfg->sentinel_master ? cfg->sentinel_master : "mymaster");
    rt->username = cfg->username ? strdup(cfg->username) : NULL;
    rt->password = cfg->password ? strdup(cfg->password) : NULL;
    if (!rt->master || (cfg->username && !rt->username) || (cfg->password && !rt->password)) {
        sc__router_destroy(rt);
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    if (!cluster) {
        sc_status st = sc__sentinel_watch_start(rt, rt->seeds, rt->nseeds, rt->master, &rt->watch, err, errlen);
        if (st != SC_OK) {
            sc__router_destroy(rt);
            return st;
        }
    }
    *out = rt;
    return SC_OK;
}

void sc__router_destroy(sc__router *rt)
{
    if (!rt)
        return;
    sc__sentinel_watch_stop(rt->watch);
    pthread_mutex_destroy(&rt->mu);
    free(rt->seeds);
    free(rt->master);
    free(rt->username);
    free(rt->password);
    free(rt);
}

sc__route_kind sc__router_kind(const sc__router *rt)
{
    return rt->kind;
}

sc_status sc__router_current(sc__router *rt, sc__addr *a, unsigned *gen)
{
    pthread_mutex_lock(&rt->mu);
    int has = rt->has_cur;
    if (has)
        *a = rt->cur;
    if (gen)
        *gen = rt->gen;
    pthread_mutex_unlock(&rt->mu);
    return has ? SC_OK : SC_ERR_REMOTE;
}

unsigned sc__router_gen(sc__router *rt)
{
    pthread_mutex_lock(&rt->mu);
    unsigned g = rt->gen;
    pthread_mutex_unlock(&rt->mu);
    return g;
}

void sc__router_moved(sc__router *rt, const char *host, int port)
{
    if (!host || strlen(host) >= sizeof rt->cur.host || port < 1 || port > 65535)
        return;
    pthread_mutex_lock(&rt->mu);
    if (!rt->has_cur || rt->cur.port != port || strcmp(rt->cur.host, host) != 0) {
        snprintf(rt->cur.host, sizeof rt->cur.host, "%s", host);
        rt->cur.port = port;
        rt->has_cur = 1;
        rt->gen++;
    }
    pthread_mutex_unlock(&rt->mu);
}

redisContext *sc__router_connect(const sc__router *rt, const sc__addr *a, int auth, int64_t deadline, char *err,
                                 size_t errlen)
{
    int64_t left = deadline - sc__remote_now_ms();
    if (left < 1) {
        sc__remote_errf(err, errlen, "%s:%d: timeout", a->host, a->port);
        return NULL;
    }
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000)};
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    if (!c || c->err) {
        sc__remote_errf(err, errlen, "%s:%d: %s", a->host, a->port, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (auth && rt->password) {
        redisReply *r = rt->username ? redisCommand(c, "AUTH %s %s", rt->username, rt->password)
                                     : redisCommand(c, "AUTH %s", rt->password);
        int ok = r && r->type != REDIS_REPLY_ERROR;
        sc__remote_errf(err, errlen, "%s:%d: AUTH failed: %s", a->host, a->port,
                        r ? (r->type == REDIS_REPLY_ERROR ? r->str : "") : c->errstr);
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Appends "; <what>" to err (the reasons every candidate gave). */
static void add_reason(char *err, size_t errlen, const char *what)
{
    size_t used = strlen(err);
    if (used + 3 < errlen)
        sc__remote_errf(err + used, errlen - used, "%s%s", used ? "; " : "", what);
}

/* The deadline for asking the i-th of n candidates: an even share of what
 * is left (at least 50 ms, never past the call's deadline), so a candidate
 * that accepts the connection and never answers (a hung host, a paused
 * process) cannot spend the whole call and leave the others unasked. The
 * last candidate gets all that is left. */
static int64_t candidate_deadline(int64_t deadline, size_t i, size_t n)
{
    int64_t now = sc__remote_now_ms();
    int64_t left = deadline - now;
    if (i + 1 >= n || left <= 50)
        return deadline;
    int64_t share = left / (int64_t)(n - i);
    return now + (share < 50 ? 50 : share);
}

/* Asks cluster nodes (the current one first, then the seeds) which master
 * owns slot. */
static sc_status ask_cluster(sc__router *rt, unsigned slot, int64_t deadline, sc__addr *out, char *err,
                             size_t errlen)
{
    sc__addr cands[1 + 64];
    size_t n = 0;
    if (sc__router_current(rt, &cands[0], NULL) == SC_OK)
        n++;
    for (size_t i = 0; i < rt->nseeds && n < sizeof cands / sizeof cands[0]; i++)
        cands[n++] = rt->seeds[i];
    char reasons[512] = "";
    sc_status last = SC_ERR_REMOTE;
    for (size_t i = 0; i < n; i++) {
        if (sc__remote_now_ms() >= deadline) {
            last = SC_ERR_TIMEOUT;
            add_reason(reasons, sizeof reasons, "timeout");
            break;
        }
        char why[300];
        redisContext *c = sc__router_connect(rt, &cands[i], 1, candidate_deadline(deadline, i, n), why, sizeof why);
        if (!c) {
            add_reason(reasons, sizeof reasons, why);
            continue;
        }
        sc_status st = sc__cluster_slot_owner(c, cands[i].host, slot, out, why, sizeof why);
        redisFree(c);
        if (st == SC_OK)
            return SC_OK;
        char both[600];
        sc__remote_errf(both, sizeof both, "%s:%d: %s", cands[i].host, cands[i].port, why);
        add_reason(reasons, sizeof reasons, both);
    }
    /* Every candidate had its share and the deadline is spent: a timeout,
     * whichever candidates merely timed out on theirs. */
    if (sc__remote_now_ms() >= deadline)
        last = SC_ERR_TIMEOUT;
    sc__remote_errf(err, errlen, "no cluster node could name the master of slot %u: %s", slot, reasons);
    return last;
}

void sc__router_not_master(sc__router *rt, const char *host, int port)
{
    if (rt->kind != SC__ROUTE_SENTINEL)
        return;
    pthread_mutex_lock(&rt->mu);
    if (rt->has_cur && rt->cur.port == port && strcmp(rt->cur.host, host) == 0 && rt->first == rt->cur_from)
        rt->first = (rt->cur_from + 1) % rt->nseeds;
    pthread_mutex_unlock(&rt->mu);
}

/* Asks the sentinels in turn, from rt->first (the last one that answered,
 * unless the master it named proved not to be one); *from is the one that
 * answered. */
static sc_status ask_sentinels(sc__router *rt, int64_t deadline, sc__addr *out, size_t *from, char *err,
                               size_t errlen)
{
    char reasons[512] = "";
    sc_status last = SC_ERR_REMOTE;
    pthread_mutex_lock(&rt->mu);
    size_t first = rt->first;
    pthread_mutex_unlock(&rt->mu);
    for (size_t k = 0; k < rt->nseeds; k++) {
        size_t i = (first + k) % rt->nseeds;
        if (sc__remote_now_ms() >= deadline) {
            last = SC_ERR_TIMEOUT;
            add_reason(reasons, sizeof reasons, "timeout");
            break;
        }
        char why[300];
        redisContext *c =
            sc__router_connect(rt, &rt->seeds[i], 0, candidate_deadline(deadline, k, rt->nseeds), why, sizeof why);
        if (!c) {
            add_reason(reasons, sizeof reasons, why);
            continue;
        }
        sc_status st = sc__sentinel_master(c, rt->master, out, why, sizeof why);
        redisFree(c);
        if (st == SC_OK) {
            *from = i;
            return SC_OK;
        }
        char both[600];
        sc__remote_errf(both, sizeof both, "sentinel %s:%d: %s", rt->seeds[i].host, rt->seeds[i].port, why);
        add_reason(reasons, sizeof reasons, both);
    }
    /* Every candidate had its share and the deadline is spent: a timeout,
     * whichever candidates merely timed out on theirs. */
    if (sc__remote_now_ms() >= deadline)
        last = SC_ERR_TIMEOUT;
    sc__remote_errf(err, errlen, "no sentinel could name master \"%s\": %s", rt->master, reasons);
    return last;
}

sc_status sc__router_refresh(sc__router *rt, int64_t deadline, char *err, size_t errlen)
{
    sc__addr a;
    size_t from = 0;
    sc_status st = rt->kind == SC__ROUTE_CLUSTER ? ask_cluster(rt, rt->slot, deadline, &a, err, errlen)
                                                 : ask_sentinels(rt, deadline, &a, &from, err, errlen);
    if (st != SC_OK)
        return st;
    sc__router_moved(rt, a.host, a.port);
    if (rt->kind == SC__ROUTE_SENTINEL) {
        pthread_mutex_lock(&rt->mu);
        rt->first = rt->cur_from = from;
        pthread_mutex_unlock(&rt->mu);
    }
    return st;
}

sc_status sc__router_locate(sc__router *rt, const char *channel, int64_t deadline, sc__addr *a, unsigned *gen,
                            char *err, size_t errlen)
{
    if (rt->kind == SC__ROUTE_CLUSTER) {
        unsigned slot = sc__cluster_keyslot(channel, strlen(channel));
        if (slot != rt->slot) {
            *gen = sc__router_gen(rt);
            return ask_cluster(rt, slot, deadline, a, err, errlen);
        }
    }
    sc_status st = sc__router_refresh(rt, deadline, err, errlen);
    if (st == SC_OK)
        st = sc__router_current(rt, a, gen);
    return st;
}
