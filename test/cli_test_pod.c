/* A pod for test/cli_test.sh: opens namespace NS on 127.0.0.1:PORT with the
 * given pod id and wire format, writes the KEY VALUE pairs given (a value
 * "-" deletes the key instead), prints "ready", and stays open (sending
 * heartbeats) for SECONDS before it closes.
 *
 * usage: cli_test_pod PORT NS POD_ID msgpack|json SECONDS [KEY VALUE]...
 * ($SC_TEST_PARTITIONS: the partitions option; $SC_TEST_LOG_LEN: event_log_len) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <synccache/synccache.h>

int main(int argc, char **argv)
{
    if (argc < 6 || (argc - 6) % 2) {
        fprintf(stderr, "usage: cli_test_pod PORT NS POD_ID msgpack|json SECONDS [KEY VALUE]...\n");
        return 2;
    }
    sc_options o;
    sc_options_init(&o);
    o.redis_port = atoi(argv[1]);
    o.ns = argv[2];
    o.pod_id = argv[3];
    o.wire_format = strcmp(argv[4], "json") == 0 ? SC_WIRE_JSON : SC_WIRE_MSGPACK;
    o.heartbeat_interval_ms = 100;
    /* A partitioned namespace: $SC_TEST_PARTITIONS partitions. */
    if (getenv("SC_TEST_PARTITIONS"))
        o.partitions = (unsigned)atoi(getenv("SC_TEST_PARTITIONS"));
    /* A namespace whose pods keep a longer event log than the default. */
    if (getenv("SC_TEST_LOG_LEN"))
        o.event_log_len = (size_t)strtoull(getenv("SC_TEST_LOG_LEN"), NULL, 10);
    sc_cache *c = NULL;
    sc_status s = sc_open(&o, &c);
    if (s != SC_OK) {
        fprintf(stderr, "cli_test_pod: sc_open: %s: %s\n", sc_strerror(s), sc_errmsg(NULL));
        return 1;
    }
    for (int i = 6; i + 1 < argc; i += 2) {
        s = strcmp(argv[i + 1], "-") == 0 ? sc_delete(c, argv[i])
                                          : sc_set(c, argv[i], argv[i + 1], strlen(argv[i + 1]), 0);
        if (s != SC_OK) {
            fprintf(stderr, "cli_test_pod: write %s: %s: %s\n", argv[i], sc_strerror(s), sc_errmsg(c));
            sc_close(c);
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    double secs = atof(argv[5]);
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    sc_close(c);
    return 0;
}
