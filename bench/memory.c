/* bench/memory: what the local tier costs per entry beyond the key and value
 * bytes themselves, at 1M entries.
 *
 * A reader pod's sc_set stores into the local tier only (no Redis write), so
 * 1M entries load in about a second and land in exactly the structures a
 * writer's sets or a pod's Redis reads would fill. Keys are "key:%07d"
 * (11 bytes), values 16 bytes. Two measures, both taken from before sc_open
 * to after the fill, so per-pod costs that scale with the bound (the
 * W-TinyLFU sketch) are counted and fixed costs (connections, threads) are
 * spread over 1M entries:
 *  - heap: mallinfo2() bytes in use (all arenas), what the allocator handed
 *    out including its per-chunk header and rounding;
 *  - RSS: /proc/self/statm resident pages, what the process really holds
 *    (adds free-but-kept memory and page granularity).
 * Configurations: each policy bounded at 1.25M entries (so W-TinyLFU runs
 * and no shard evicts: the per-shard bound is the global one divided by the
 * shard count) and unbounded (where both policies are one list, so only LRU
 * is shown). Each is measured in a fresh child process so one configuration's
 * freed memory cannot hide the next one's growth; the table shows the median
 * over --runs children.
 *
 * The last column is the heap in use right after sc_open, before any entry:
 * what a cache costs however little it holds (the W-TinyLFU sketch, sized
 * for the bound, is most of it; the tables of tags, grace periods and
 * cached "not found"s are only made at their first use).
 *
 * Usage: memory [--entries N] [--runs N]
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <synccache/synccache.h>

#include "bench_util.h"
#include "redis_server.h"

#define VALUE_LEN 16
#define KEY_LEN 11

static sc_test_redis g_redis;

typedef struct sample {
    double heap, rss; /* bytes per entry beyond key + value */
    double open_kib;  /* heap in use right after sc_open: the cache's fixed cost */
    uint64_t entries, evictions;
} sample;

static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Runs in a child: open, fill, measure, report through the pipe. */
static int measure(sc_local_policy policy, size_t bound, size_t entries, int fd)
{
    sample s = {0};
    size_t heap0 = heap_bytes();
    long rss0 = rss_bytes();

    sc_options o = bench_reader_options(g_redis.port, "mem", policy, bound);
    sc_cache *c;
    if (sc_open(&o, &c) != SC_OK) {
        fprintf(stderr, "memory: sc_open: %s\n", sc_errmsg(NULL));
        return 1;
    }
    s.open_kib = (double)(heap_bytes() - heap0) / 1024.0;
    char key[32], val[VALUE_LEN];
    memset(val, 'm', sizeof val);
    for (size_t i = 0; i < entries; i++) {
        snprintf(key, sizeof key, "key:%07zu", i);
        if (sc_set(c, key, val, sizeof val, 0) != SC_OK) {
            fprintf(stderr, "memory: sc_set: %s\n", sc_errmsg(c));
            return 1;
        }
    }
    sc_stats st;
    sc_stats_get(c, &st);
    double payload = (double)(KEY_LEN + VALUE_LEN);
    s.heap = (double)(heap_bytes() - heap0) / (double)entries - payload;
    s.rss = (double)(rss_bytes() - rss0) / (double)entries - payload;
    s.entries = st.local_entries;
    s.evictions = st.evictions;
    sc_close(c);
    return write(fd, &s, sizeof s) == (ssize_t)sizeof s ? 0 : 1;
}

static int run_child(sc_local_policy policy, size_t bound, size_t entries, sample *out)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        _exit(measure(policy, bound, entries, p[1]));
    }
    close(p[1]);
    ssize_t n = pid > 0 ? read(p[0], out, sizeof *out) : -1;
    close(p[0]);
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    return n == (ssize_t)sizeof *out && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}


int main(int argc, char **argv)
{
    size_t entries = 1000000;
    int runs = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--entries"))
            entries = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
    }
    if (entries < 1 || entries > 9999999 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: memory [--entries 1..9999999] [--runs 1..%d]\n", MAX_RUNS);
        return 2;
    }
    if (sc_test_redis_start(&g_redis, NULL) != 0)
        return 1;

    static const struct {
        const char *name;
        sc_local_policy policy;
        int bounded;
    } cfgs[] = {
        {"LFU (W-TinyLFU), bound 1.25 x entries", SC_LOCAL_LFU, 1},
        {"LRU, bound 1.25 x entries", SC_LOCAL_LRU, 1},
        {"LRU = LFU, unbounded", SC_LOCAL_LRU, 0},
    };
    printf("## memory: local-tier overhead per entry at %zu entries (key %d B + value %d B excluded)\n\n", entries,
           KEY_LEN, VALUE_LEN);
    printf("Median of %d fresh processes per row.\n\n", runs);
    printf("| configuration | heap B/entry overhead | RSS B/entry overhead | entries held | evictions | "
           "target <= 64 B (heap) | heap after sc_open, KiB |\n|---|---|---|---|---|---|---|\n");
    int failed = 0;
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        double heap[MAX_RUNS], rss[MAX_RUNS], open[MAX_RUNS];
        sample s = {0};
        for (int r = 0; r < runs; r++) {
            if (run_child(cfgs[k].policy, cfgs[k].bounded ? entries + entries / 4 : 0, entries, &s) != 0) {
                fprintf(stderr, "memory: %s: child failed\n", cfgs[k].name);
                failed = 1;
                break;
            }
            heap[r] = s.heap;
            rss[r] = s.rss;
            open[r] = s.open_kib;
        }
        if (failed)
            break;
        double h = median(heap, runs);
        printf("| %s | %.1f | %.1f | %llu | %llu | %s | %.0f |\n", cfgs[k].name, h, median(rss, runs),
               (unsigned long long)s.entries, (unsigned long long)s.evictions, h <= 64 ? "met" : "MISSED",
               median(open, runs));
    }
    sc_test_redis_stop(&g_redis);
    return failed;
}
