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

int sc_test_node_cut_off_replica(int master, int replica, char *err, size_t errlen)
{
    redisReply *r = sc_test_node_cmd(replica, "CONFIG SET masterauth wrong-password");
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "CONFIG SET masterauth on %d: %s", replica, r ? r->str : "no reply");
        if (r)
            freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    r = sc_test_node_cmd(master, "CLIENT KILL TYPE replica");
    if (!r) {
        snprintf(err, errlen, "CLIENT KILL TYPE replica on %d: no reply", master);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

void sc_test_node_restore_replica_auth(int replica)
{
    redisReply *r = sc_test_node_cmd(replica, "CONFIG SET masterauth %s", "");
    if (r)
        freeReplyObject(r);
}

/* CLUSTER MYID of the node at port into id; -1 when it does not answer. */
static int node_id(int port, char id[64])
{
    redisReply *r = sc_test_node_cmd(port, "CLUSTER MYID");
    int ok = r && r->type == REDIS_REPLY_STRING;
    if (ok)
        snprintf(id, 64, "%s", r->str);
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* The command's reply is not an error (and is freed). */
static int node_ok(redisReply *r)
{
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    return ok;
}

int sc_test_cluster_migrate_begin(unsigned slot, int src, int dst)
{
    char src_id[64], dst_id[64];
    if (node_id(src, src_id) != 0 || node_id(dst, dst_id) != 0)
        return -1;
    if (!node_ok(sc_test_node_cmd(dst, "CLUSTER SETSLOT %u IMPORTING %s", slot, src_id)))
        return -1;
    return node_ok(sc_test_node_cmd(src, "CLUSTER SETSLOT %u MIGRATING %s", slot, dst_id)) ? 0 : -1;
}

int sc_test_cluster_migrate_keys(unsigned slot, int src, int dst)
{
    enum { PAGE = 100 };
    for (;;) {
        redisReply *r = sc_test_node_cmd(src, "CLUSTER GETKEYSINSLOT %u %d", slot, PAGE);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        size_t n = r->elements;
        if (n == 0) {
            freeReplyObject(r);
            return 0;
        }
        const char *argv[7 + PAGE];
        size_t lens[7 + PAGE];
        char port[16];
        snprintf(port, sizeof port, "%d", dst);
        const char *head[7] = {"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS"};
        for (int i = 0; i < 7; i++) {
            argv[i] = head[i];
            lens[i] = strlen(head[i]);
        }
        for (size_t i = 0; i < n; i++) {
            argv[7 + i] = r->element[i]->str;
            lens[7 + i] = r->element[i]->len;
        }
        redisContext *c = sc_test_redis_connect_addr("127.0.0.1", src);
        int ok = c && node_ok(redisCommandArgv(c, (int)(7 + n), argv, lens));
        if (c)
            redisFree(c);
        freeReplyObject(r);
        if (!ok)
            return -1;
    }
}

int sc_test_cluster_migrate_finish(const sc_test_cluster *cl, unsigned slot, int src, int dst)
{
    char dst_id[64];
    if (node_id(dst, dst_id) != 0)
        return -1;
    /* The new owner first, then the old one, then everybody else. */
    int order[SC_TEST_CLUSTER_MAX + 2];
    int n = 0;
    order[n++] = dst;
    order[n++] = src;
    for (int i = 0; i < cl->nodes; i++)
        if (cl->node[i].port != src && cl->node[i].port != dst && node_ok(sc_test_node_cmd(cl->node[i].port, "PING")))
            order[n++] = cl->node[i].port;
    for (int i = 0; i < n; i++) {
        redisReply *r = sc_test_node_cmd(order[i], "CLUSTER SETSLOT %u NODE %s", slot, dst_id);
        if (r)
            freeReplyObject(r); /* a replica refuses; it learns from its master */
    }
    return 0;
}
