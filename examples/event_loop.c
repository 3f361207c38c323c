/* A cache attached to the application's own libevent loop.
 *
 * With options.event_base set, synccache starts no sync thread: its
 * subscription, heartbeats and reconnects are events on the caller's base,
 * and they run only while the caller runs that loop. So sc_open returns at
 * once with the pod *unsynced* (gets go to Redis, which is always correct),
 * and the pod syncs once the loop runs. Event hooks (on_event) then run on
 * the loop's thread, next to the application's own events.
 *
 * This program opens one such pod ("looped") and, for contrast, a writer
 * pod with its own sync thread, then drives a small scenario from a timer
 * on its loop: wait until synced, have the writer set a key, wait for the
 * event, read the key from the local tier, stop the loop.
 *
 *   event_loop [--socket PATH | --host HOST --port N]
 *   (or SYNCCACHE_REDIS_SOCKET / SYNCCACHE_REDIS_HOST / SYNCCACHE_REDIS_PORT)
 *
 * Exits 0 when every step behaved as described, 1 otherwise.
 */
/* clock_gettime and pthread_* are POSIX: ask for them explicitly so the
 * file builds with a strict -std=c11 -pedantic as well as with the defaults. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <synccache/synccache.h>

typedef struct app {
    struct event_base *base;
    struct event *timer;
    sc_cache *looped; /* runs on base */
    sc_cache *writer; /* runs its own sync thread */
    pthread_t loop_thread;
    long long start_ms, synced_ms;
    int step;
    int events_seen;    /* written by on_event, on the loop's thread */
    int hook_on_loop;   /* 1 if every on_event ran on the loop's thread */
    int failures;
} app;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void expect(app *a, int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok)
        a->failures++;
}

static sc_cache *open_pod(const char *id, struct event_base *base, sc_event_fn hook, void *ud, const char *sock,
                          const char *host, int port)
{
    sc_options o;
    sc_options_init(&o);
    o.pod_id = id;
    o.ns = "example-loop";
    o.redis_unix_socket = sock;
    if (host)
        o.redis_host = host;
    if (port)
        o.redis_port = port;
    o.event_base = base;  /* NULL: the cache runs its own sync thread */
    o.on_event = hook;
    o.on_event_ud = ud;
    sc_cache *c;
    sc_status s = sc_open(&o, &c);
    if (s != SC_OK) {
        fprintf(stderr, "sc_open %s: %s: %s\n", id, sc_strerror(s), sc_errmsg(NULL));
        return NULL;
    }
    return c;
}

/* Runs on the loop's thread (the base belongs to this application). */
static void on_event(const sc_event_info *ev, void *ud)
{
    app *a = ud;
    if (!pthread_equal(pthread_self(), a->loop_thread))
        a->hook_on_loop = 0;
    a->events_seen++;
    printf("     event on the loop thread: %s \"%s\" version %" PRIu64 " from %s\n", ev->action, ev->key,
           ev->version, ev->sender);
}

static uint64_t synced(sc_cache *c)
{
    sc_stats st;
    sc_stats_get(c, &st);
    return st.synced;
}

/* The application's own timer: every 10 ms, one step of the scenario. */
static void on_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    app *a = ud;
    long long t = now_ms() - a->start_ms;
    if (t > 10000) {
        expect(a, 0, "scenario finished within 10 s of loop time");
        event_base_loopbreak(a->base);
        return;
    }
    switch (a->step) {
    case 0: /* wait for the first sync: subscribe, read the counter */
        if (!synced(a->looped))
            return;
        a->synced_ms = t;
        printf("     synced after %lld ms of running the loop\n", t);
        expect(a, 1, "the pod syncs once the application runs its loop");
        /* A blocking Redis call from a loop callback is fine for a demo;
         * a service would hand it to a worker thread. */
        expect(a, sc_set(a->writer, "greeting", "hello from the writer", 21, 60000) == SC_OK,
               "writer pod: sc_set");
        a->step = 1;
        return;
    case 1: /* wait for the writer's event to be applied */
        if (a->events_seen < 1)
            return;
        {
            sc_value *v;
            sc_get_info info;
            sc_status s = sc_get_ex(a->looped, "greeting", &v, &info);
            expect(a, s == SC_OK && info.source == SC_SOURCE_LOCAL,
                   "after the event, the looped pod serves the key from its local tier");
            if (s == SC_OK) {
                printf("     read \"%.*s\" from the %s tier\n", (int)sc_value_size(v),
                       (const char *)sc_value_data(v), info.source == SC_SOURCE_LOCAL ? "local" : "Redis");
                sc_value_release(v);
            }
        }
        a->step = 2;
        event_base_loopbreak(a->base);
        return;
    }
}

int main(int argc, char **argv)
{
    const char *sock = getenv("SYNCCACHE_REDIS_SOCKET");
    const char *host = getenv("SYNCCACHE_REDIS_HOST");
    int port = getenv("SYNCCACHE_REDIS_PORT") ? atoi(getenv("SYNCCACHE_REDIS_PORT")) : 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
    }

    app a;
    memset(&a, 0, sizeof a);
    a.hook_on_loop = 1;
    a.loop_thread = pthread_self(); /* this thread runs the loop below */
    a.base = event_base_new();
    if (!a.base) {
        fprintf(stderr, "event_base_new failed\n");
        return 1;
    }
    a.writer = open_pod("writer", NULL, NULL, NULL, sock, host, port);
    if (!a.writer)
        return 1;
    sc_clear(a.writer); /* a rerun against the same Redis starts clean */
    sc_set(a.writer, "before", "written before the loop ran", 27, 60000);

    a.looped = open_pod("looped", a.base, on_event, &a, sock, host, port);
    if (!a.looped)
        return 1;
    /* sc_open returned without running the loop: not synced yet. Gets are
     * still correct: they read Redis. */
    expect(&a, synced(a.looped) == 0, "sc_open returns at once, unsynced (the loop has not run)");
    sc_value *v;
    sc_get_info info;
    sc_status s = sc_get_ex(a.looped, "before", &v, &info);
    expect(&a, s == SC_OK && info.source == SC_SOURCE_REMOTE, "an unsynced get reads Redis");
    if (s == SC_OK)
        sc_value_release(v);

    a.timer = event_new(a.base, -1, EV_PERSIST, on_tick, &a);
    struct timeval tick = {0, 10000};
    event_add(a.timer, &tick);
    a.start_ms = now_ms();
    event_base_dispatch(a.base); /* the application's loop; on_tick stops it */

    expect(&a, a.step == 2, "every step ran");
    expect(&a, a.hook_on_loop, "on_event ran on the loop's thread");
    /* With a caller's base, close from the loop's thread or while the loop
     * is not running (here: it returned), and before freeing the base. */
    sc_close(a.looped);
    sc_close(a.writer);
    event_free(a.timer);
    event_base_free(a.base);
    printf("%s\n", a.failures ? "event_loop: FAILED" : "event_loop: all steps behaved as described");
    return a.failures ? 1 : 0;
}
