/* A private Redis behind Sentinel for tests and benchmarks: a master, one
 * replica (sc_test_redis each) and three sentinels (redis-server --sentinel
 * with a generated config: down-after-milliseconds 1000, failover-timeout
 * 5000, quorum 2), all on loopback in temp dirs and always stopped. The
 * master is named "mymaster". Not thread-safe; one owner per setup.
 */
#ifndef SC_TEST_REDIS_SENTINEL_H
#define SC_TEST_REDIS_SENTINEL_H

#include "redis_server.h"

#define SC_TEST_SENTINELS 3

typedef struct sc_test_sentinel {
    pid_t pid;
    int port;
    char dir[256];
} sc_test_sentinel;

typedef struct sc_test_sentinels {
    sc_test_redis data[2];                  /* [0] starts as the master, [1] as its replica */
    sc_test_sentinel sent[SC_TEST_SENTINELS];
    char list[128];                         /* "127.0.0.1:p,...": pass as sentinel_nodes */
} sc_test_sentinels;

/* Starts the two data nodes and the sentinels and waits until every
 * sentinel knows the replica and the other sentinels and the replica has
 * synced. Returns 0, or -1 with a message on stderr (call
 * sc_test_sentinels_stop either way). */
int sc_test_sentinels_start(sc_test_sentinels *s);
/* Stops the sentinels and both data nodes. Safe to call twice. */
void sc_test_sentinels_stop(sc_test_sentinels *s);
/* The master port a sentinel names now (0 if none answers). */
int sc_test_sentinels_master_port(const sc_test_sentinels *s);
/* The node at port says ROLE role ("master" or "slave"). */
int sc_test_node_role_is(int port, const char *role);

#endif
