/* The smallest useful synccache program: two pods in one process share a
 * namespace; a value written by one is served from the other's local tier.
 *
 *   minimal [--socket PATH | --port N]
 */
/* nanosleep is POSIX: ask for it explicitly so the
 * file builds with a strict -std=c11 -pedantic as well as with the defaults. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <synccache/synccache.h>

static sc_cache *open_pod(const char *id, const char *sock, int port)
{
    sc_options o;
    sc_options_init(&o);          /* always first: fills every default */
    o.pod_id = id;
    o.ns = "example";
    o.redis_unix_socket = sock;   /* NULL: TCP to redis_host:redis_port */
    if (port)
        o.redis_port = port;
    sc_cache *c;
    sc_status s = sc_open(&o, &c);
    if (s != SC_OK) {
        fprintf(stderr, "sc_open: %s: %s\n", sc_strerror(s), sc_errmsg(NULL));
        exit(1);
    }
    return c;
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
    }
    sc_cache *a = open_pod("pod-a", sock, port);
    sc_cache *b = open_pod("pod-b", sock, port);

    if (sc_set(a, "greeting", "hello", 5, 60000) != SC_OK) {
        fprintf(stderr, "sc_set: %s\n", sc_errmsg(a));
        return 1;
    }
    /* The event reaches pod-b in well under a millisecond on loopback; wait
     * until it has been applied so the read below is a local hit. */
    sc_stats st;
    for (int i = 0; i < 1000; i++) {
        sc_stats_get(b, &st);
        if (st.events_applied > 0)
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    sc_value *v;
    sc_get_info info;
    sc_status s = sc_get_ex(b, "greeting", &v, &info);
    if (s != SC_OK) {
        fprintf(stderr, "sc_get: %s\n", s == SC_NOT_FOUND ? "not found" : sc_errmsg(b));
        return 1;
    }
    printf("pod-b read \"%.*s\" (version %llu) from its %s tier\n", (int)sc_value_size(v),
           (const char *)sc_value_data(v), (unsigned long long)sc_value_version(v),
           info.source == SC_SOURCE_LOCAL ? "local" : "Redis");
    sc_value_release(v);
    sc_close(a);
    sc_close(b);
    return 0;
}
