/* A private redis-server for tests, tools and benchmarks: started on a free
 * loopback port in a fresh temp dir, waited for, and always stopped (also
 * when the owning process dies: the child gets SIGTERM via PR_SET_PDEATHSIG).
 * Not thread-safe; one owner per server.
 */
#ifndef SC_TEST_REDIS_SERVER_H
#define SC_TEST_REDIS_SERVER_H

#include <sys/types.h>

#include <hiredis/hiredis.h>

typedef struct sc_test_redis {
    pid_t pid;        /* 0 when not running */
    int port;
    char dir[256];    /* temp dir holding the log (and the socket) */
    char sock[320];   /* unix socket path inside dir */
    char conf_extra[512];
} sc_test_redis;

/* Starts redis-server (from PATH, or $SC_REDIS_SERVER) on a free port.
 * extra is appended to the command line as further "--name value" words
 * (may be NULL). Returns 0, or -1 with a message on stderr. */
int sc_test_redis_start(sc_test_redis *r, const char *extra);

/* SIGTERM, wait, remove the temp dir. Safe to call twice. */
void sc_test_redis_stop(sc_test_redis *r);

/* Kills the server (SIGKILL: with no persistence the data is lost, as in a
 * crash) and starts a new one on the same port. Returns 0 or -1. */
int sc_test_redis_restart(sc_test_redis *r);

/* Kills the server without stopping it cleanly (SIGKILL) and waits. The port
 * stays reserved for sc_test_redis_restart. */
void sc_test_redis_kill(sc_test_redis *r);

/* Starts a server on the port of a killed/stopped one. */
int sc_test_redis_start_again(sc_test_redis *r);

/* A new blocking connection (1 s timeout), or NULL. Caller frees. */
redisContext *sc_test_redis_connect(const sc_test_redis *r);

/* The same for any Redis (tools given an address). */
redisContext *sc_test_redis_connect_addr(const char *host, int port);

/* Runs one command on a fresh connection and returns 0 if Redis answered
 * without an error reply. */
int sc_test_redis_cmd(const sc_test_redis *r, const char *fmt, ...);

/* Makes r full: maxmemory a little above what it uses (at least 1 MB),
 * policy noeviction, filled with plain SETs until one is refused with OOM,
 * then the limit put a little below the filled level (what is used moves
 * with every client's buffers) so that it stays full. 0, or -1 when Redis
 * could not be filled. */
int sc_test_redis_fill(const sc_test_redis *r);

/* A loopback listener that never accepts: the kernel completes the
 * handshake from the backlog, so a client connects and then never hears
 * back (a hung host, a paused process). Its fd (close it when done) and
 * *port, or -1. */
int sc_test_black_hole(int *port);

#endif
