/* bench/hitratio.c: replays a cache trace through the local store alone.
 *
 * usage: hitratio --policy lru|lfu|lfu-static --capacity N --format arc|lirs|u64be
 *                 [--sample N] TRACE
 *
 * lfu is the store's W-TinyLFU with its hill-climbed window; lfu-static
 * keeps the window at 1% (Caffeine's static split), for comparison.
 * --sample N: W-TinyLFU records 1 hit in N (default: the store's default).
 * LRU records every hit, so on one shard and one thread it is exact.
 *
 * One shard, a bound of N entries, empty values, and a fill on every miss,
 * which is how Caffeine's simulator produces the published hit ratios, so
 * the two can be compared directly. A TRACE ending in .gz is read through
 * "gzip -dc" so the traces never need unpacking.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local/local.h"

enum format { FMT_ARC, FMT_LIRS, FMT_U64BE };

struct replay {
    sc__local *store;
    sc_value *empty;
    uint64_t requests, hits;
};

static int access_key(struct replay *r, uint64_t key)
{
    char k[8];
    memcpy(k, &key, sizeof k);
    uint64_t h = sc__local_hash(k, sizeof k);
    sc_value *v;
    r->requests++;
    if (sc__local_get(r->store, k, sizeof k, h, &v) == SC_OK) {
        r->hits++;
        sc_value_release(v);
        return 0;
    }
    sc_status s = sc__local_put(r->store, k, sizeof k, h, r->empty, 0, 0, SC__PUT_FORCE);
    if (s != SC_OK) {
        fprintf(stderr, "hitratio: put failed (status %d)\n", (int)s);
        return -1;
    }
    return 0;
}

static int replay_text(struct replay *r, FILE *f, enum format fmt)
{
    char line[512];
    unsigned long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\n' || *p == '\r' || *p == '\0' || (fmt == FMT_LIRS && *p == '*'))
            continue;
        char *end;
        errno = 0;
        uint64_t start = strtoull(p, &end, 10);
        if (end == p || errno) {
            fprintf(stderr, "hitratio: line %lu: not a key\n", lineno);
            return -1;
        }
        uint64_t count = 1;
        if (fmt == FMT_ARC) {
            p = end;
            count = strtoull(p, &end, 10);
            if (end == p || errno) {
                fprintf(stderr, "hitratio: line %lu: no count\n", lineno);
                return -1;
            }
        }
        for (uint64_t i = 0; i < count; i++)
            if (access_key(r, start + i) != 0)
                return -1;
    }
    return ferror(f) ? -1 : 0;
}

static int replay_u64be(struct replay *r, FILE *f)
{
    unsigned char b[8];
    size_t n;
    while ((n = fread(b, 1, sizeof b, f)) == sizeof b) {
        uint64_t key = 0;
        for (int i = 0; i < 8; i++)
            key = key << 8 | b[i];
        if (access_key(r, key) != 0)
            return -1;
    }
    if (n != 0)
        fprintf(stderr, "hitratio: ignoring %zu trailing bytes\n", n);
    return ferror(f) ? -1 : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: hitratio --policy lru|lfu|lfu-static --capacity N --format arc|lirs|u64be "
                    "[--sample N] TRACE\n");
}

int main(int argc, char **argv)
{
    const char *policy = NULL, *format = NULL, *path = NULL;
    unsigned long long capacity = 0;
    unsigned sample = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--policy") && i + 1 < argc)
            policy = argv[++i];
        else if (!strcmp(argv[i], "--capacity") && i + 1 < argc)
            capacity = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--sample") && i + 1 < argc)
            sample = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--format") && i + 1 < argc)
            format = argv[++i];
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            usage();
            return 2;
        }
    }
    sc__local_config cfg = {0};
    enum format fmt;
    if (!policy || !format || !path || !capacity) {
        usage();
        return 2;
    }
    if (!strcmp(policy, "lru"))
        cfg.policy = SC_LOCAL_LRU;
    else if (!strcmp(policy, "lfu"))
        cfg.policy = SC_LOCAL_LFU;
    else if (!strcmp(policy, "lfu-static")) {
        cfg.policy = SC_LOCAL_LFU;
        cfg.static_window = 1;
    }
    else {
        usage();
        return 2;
    }
    if (!strcmp(format, "arc"))
        fmt = FMT_ARC;
    else if (!strcmp(format, "lirs"))
        fmt = FMT_LIRS;
    else if (!strcmp(format, "u64be"))
        fmt = FMT_U64BE;
    else {
        usage();
        return 2;
    }
    cfg.max_entries = (size_t)capacity;
    cfg.shards = 1;
    cfg.hit_sample = sample;

    FILE *f;
    int piped = 0;
    size_t plen = strlen(path);
    if (plen > 3 && !strcmp(path + plen - 3, ".gz")) {
        /* Quote the path for the shell: single quotes, each ' as '\''. */
        size_t cap = 16 + plen * 4;
        char *cmd = malloc(cap);
        if (!cmd)
            return 1;
        char *c = cmd + sprintf(cmd, "gzip -dc -- '");
        for (const char *p = path; *p; p++) {
            if (*p == '\'') {
                memcpy(c, "'\\''", 4);
                c += 4;
            } else {
                *c++ = *p;
            }
        }
        strcpy(c, "'");
        f = popen(cmd, "r");
        free(cmd);
        piped = 1;
    } else {
        f = fopen(path, "rb");
    }
    if (!f) {
        perror(path);
        return 1;
    }

    struct replay r = {0};
    r.store = sc__local_new(&cfg);
    r.empty = sc__value_new(NULL, 0, 0);
    if (!r.store || !r.empty) {
        fprintf(stderr, "hitratio: cannot create the store\n");
        return 1;
    }
    int rc = fmt == FMT_U64BE ? replay_u64be(&r, f) : replay_text(&r, f, fmt);
    int closed = piped ? pclose(f) : fclose(f);
    if (rc != 0 || closed != 0) {
        fprintf(stderr, "hitratio: cannot read %s\n", path);
        return 1;
    }
    printf("%.2f\n", r.requests ? 100.0 * (double)r.hits / (double)r.requests : 0.0);
    sc_value_release(r.empty);
    sc__local_free(r.store);
    return 0;
}
