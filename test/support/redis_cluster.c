#include "redis_cluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

redisReply *sc_test_node_cmd(int port, const char *fmt, ...)
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

int sc_test_cluster_ok(const sc_test_cluster *cl)
{
    for (int i = 0; i < cl->nodes; i++) {
        if (!cl->node[i].pid)
            continue;
        redisReply *r = sc_test_node_cmd(cl->node[i].port, "CLUSTER INFO");
        int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
        if (r)
            freeReplyObject(r);
        if (!ok)
            return 0;
    }
    return 1;
}

int sc_test_cluster_wait_ok(const sc_test_cluster *cl, long ms)
{
    long long deadline = now_ms() + ms;
    while (!sc_test_cluster_ok(cl) && now_ms() < deadline)
        sleep_ms(100);
    return sc_test_cluster_ok(cl);
}

int sc_test_cluster_start(sc_test_cluster *cl, int masters, int replicas)
{
    memset(cl, 0, sizeof *cl);
    cl->nodes = masters * (1 + replicas);
    if (masters < 3 || replicas < 0 || cl->nodes > SC_TEST_CLUSTER_MAX) {
        fprintf(stderr, "sc_test_cluster_start: %d masters x %d replicas: need >= 3 masters, <= %d nodes\n", masters,
                replicas, SC_TEST_CLUSTER_MAX);
        return -1;
    }
    for (int i = 0; i < cl->nodes; i++)
        if (sc_test_redis_start(&cl->node[i], "--cluster-enabled yes --cluster-config-file nodes.conf "
                                              "--cluster-node-timeout 2000") != 0)
            goto fail;
    char cmd[1024];
    int n = snprintf(cmd, sizeof cmd, "redis-cli --cluster create");
    for (int i = 0; i < cl->nodes; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " 127.0.0.1:%d", cl->node[i].port);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " --cluster-replicas %d --cluster-yes > %s/create.log 2>&1", replicas,
             cl->node[0].dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "sc_test_cluster_start: %s failed (log in %s)\n", cmd, cl->node[0].dir);
        goto fail;
    }
    if (!sc_test_cluster_wait_ok(cl, 20000)) {
        fprintf(stderr, "sc_test_cluster_start: the cluster did not become ok\n");
        goto fail;
    }
    /* redis-cli makes the first `masters` nodes the masters. */
    n = 0;
    for (int i = 0; i < masters; i++)
        n += snprintf(cl->seeds + n, sizeof cl->seeds - (size_t)n, "%s127.0.0.1:%d", i ? "," : "", cl->node[i].port);
    return 0;
fail:
    sc_test_cluster_stop(cl);
    return -1;
}

void sc_test_cluster_stop(sc_test_cluster *cl)
{
    for (int i = 0; i < cl->nodes; i++)
        sc_test_redis_stop(&cl->node[i]);
}

unsigned sc_test_cluster_keyslot(const sc_test_cluster *cl, const char *key)
{
    for (int i = 0; i < cl->nodes; i++) {
        redisReply *r = sc_test_node_cmd(cl->node[i].port, "CLUSTER KEYSLOT %s", key);
        int ok = r && r->type == REDIS_REPLY_INTEGER;
        unsigned slot = ok ? (unsigned)r->integer : 0;
        if (r)
            freeReplyObject(r);
        if (ok)
            return slot;
    }
    return 0;
}

/* CLUSTER SLOTS: [[start, end, [ip, port, id], replicas...], ...]. */
int sc_test_cluster_slot_owner(const sc_test_cluster *cl, unsigned slot)
{
    for (int i = 0; i < cl->nodes; i++) {
        redisReply *r = sc_test_node_cmd(cl->node[i].port, "CLUSTER SLOTS");
        int port = 0;
        for (size_t j = 0; r && r->type == REDIS_REPLY_ARRAY && j < r->elements && !port; j++) {
            redisReply *range = r->element[j];
            if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
                range->element[2]->type != REDIS_REPLY_ARRAY || range->element[2]->elements < 2)
                continue;
            if ((long long)slot >= range->element[0]->integer && (long long)slot <= range->element[1]->integer)
                port = (int)range->element[2]->element[1]->integer;
        }
        if (r)
            freeReplyObject(r);
        if (port)
            return port;
    }
    return 0;
}

int sc_test_cluster_master_of(const sc_test_cluster *cl, const char *key)
{
    return sc_test_cluster_slot_owner(cl, sc_test_cluster_keyslot(cl, key));
}

int sc_test_cluster_replica_of(const sc_test_cluster *cl, int master_port)
{
    for (int i = 0; i < cl->nodes; i++) {
        if (!cl->node[i].pid)
            continue;
        redisReply *r = sc_test_node_cmd(cl->node[i].port, "ROLE");
        int match = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
                    strcmp(r->element[0]->str, "slave") == 0 && r->element[2]->type == REDIS_REPLY_INTEGER &&
                    r->element[2]->integer == master_port;
        if (r)
            freeReplyObject(r);
        if (match)
            return cl->node[i].port;
    }
    return 0;
}

int sc_test_cluster_index_of(const sc_test_cluster *cl, int port)
{
    for (int i = 0; i < cl->nodes; i++)
        if (cl->node[i].port == port)
            return i;
    return -1;
}

int sc_test_node_replica_synced(int port)
{
    redisReply *r = sc_test_node_cmd(port, "INFO replication");
    int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up") &&
             !strstr(r->str, "master_sync_in_progress:1");
    if (r)
        freeReplyObject(r);
    return ok;
}
