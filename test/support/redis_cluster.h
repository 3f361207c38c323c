/* A private Redis Cluster for tests, benchmarks and tools: cluster-enabled
 * redis-servers on loopback (sc_test_redis each), joined with
 * `redis-cli --cluster create`, always stopped. Helpers ask the nodes
 * themselves (CLUSTER KEYSLOT, CLUSTER SLOTS, ROLE), so they share no code
 * with the library's own routing. Not thread-safe; one owner per cluster.
 */
#ifndef SC_TEST_REDIS_CLUSTER_H
#define SC_TEST_REDIS_CLUSTER_H

#include "redis_server.h"

#define SC_TEST_CLUSTER_MAX 6

typedef struct sc_test_cluster {
    sc_test_redis node[SC_TEST_CLUSTER_MAX];
    int nodes;       /* masters * (1 + replicas) */
    char seeds[256]; /* "127.0.0.1:p,..." of the first masters: redis_cluster_nodes */
} sc_test_cluster;

/* Starts masters * (1 + replicas) nodes (at most SC_TEST_CLUSTER_MAX, node
 * timeout 2 s), creates the cluster and waits until every node says
 * cluster_state:ok. Returns 0, or -1 with a message on stderr (the nodes
 * started are stopped). */
int sc_test_cluster_start(sc_test_cluster *cl, int masters, int replicas);
/* Stops every node (also the killed ones' temp dirs). Safe to call twice. */
void sc_test_cluster_stop(sc_test_cluster *cl);

/* One command on a fresh connection to the node at port: the reply (caller
 * frees) or NULL. */
redisReply *sc_test_node_cmd(int port, const char *fmt, ...);
/* Every running node says cluster_state:ok. */
int sc_test_cluster_ok(const sc_test_cluster *cl);
/* Polls sc_test_cluster_ok for up to ms; its last answer. */
int sc_test_cluster_wait_ok(const sc_test_cluster *cl, long ms);
/* CLUSTER KEYSLOT of key, asked of a live node (0 if none answers). */
unsigned sc_test_cluster_keyslot(const sc_test_cluster *cl, const char *key);
/* The port of the master owning slot per the first live node that knows, or 0. */
int sc_test_cluster_slot_owner(const sc_test_cluster *cl, unsigned slot);
/* The master owning key's slot, or 0. */
int sc_test_cluster_master_of(const sc_test_cluster *cl, const char *key);
/* A live replica of the master at master_port (by ROLE), or 0. */
int sc_test_cluster_replica_of(const sc_test_cluster *cl, int master_port);
/* The index in cl->node of the node at port, or -1. */
int sc_test_cluster_index_of(const sc_test_cluster *cl, int port);
/* The replica at port has its link to the master up and no sync running. */
int sc_test_node_replica_synced(int port);
/* Cuts the replica at replica off its master at master for good: a wrong
 * masterauth, so its link cannot come back, then CLIENT KILL TYPE replica
 * on the master. Writes acknowledged from then on live on the master only,
 * so a crash of the master loses them. 0, or -1 with what failed in err. */
int sc_test_node_cut_off_replica(int master, int replica, char *err, size_t errlen);
/* Clears the replica's masterauth again, so that once promoted or pointed at
 * a new master it can sync (best effort: the node may be gone). */
void sc_test_node_restore_replica_auth(int replica);

/* Moving a slot from the master at src to the one at dst with MIGRATE, as
 * redis-cli --cluster reshard does, in three steps so a test can act
 * between them: IMPORTING / MIGRATING, every key moved, the slot assigned
 * (to dst, src, then every other running node). 0, or -1 when a node
 * refused or did not answer. */
int sc_test_cluster_migrate_begin(unsigned slot, int src, int dst);
int sc_test_cluster_migrate_keys(unsigned slot, int src, int dst);
int sc_test_cluster_migrate_finish(const sc_test_cluster *cl, unsigned slot, int src, int dst);

#endif
