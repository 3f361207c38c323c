/* Small pieces both sides of podsim use: clocks, the propagation-delay
 * histogram and the raw Redis connection the verifier and the fault
 * injector talk through (deliberately not the library's, so they see Redis
 * as any other client would). */
#include "podsim.h"
#include "redis_server.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t ps_now_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t ps_now_real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void ps_default_report_path(const char *name, char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash && slash != exe) {
            *slash = 0;
            if (access(exe, W_OK) == 0 && (size_t)snprintf(buf, len, "%s/%s", exe, name) < len)
                return;
        }
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, len, "%s/%s", tmp && *tmp ? tmp : "/tmp", name);
}

unsigned ps_hist_bucket(uint64_t us)
{
    if (us < PS_HIST_LINEAR)
        return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* >= 4 */
    unsigned sub = (unsigned)(us >> (e - 3)) & (PS_HIST_SUB - 1);
    unsigned b = PS_HIST_LINEAR + (e - 4) * PS_HIST_SUB + sub;
    return b < PS_HIST_BUCKETS ? b : PS_HIST_BUCKETS - 1;
}

double ps_hist_value(unsigned bucket)
{
    if (bucket < PS_HIST_LINEAR)
        return bucket;
    unsigned e = (bucket - PS_HIST_LINEAR) / PS_HIST_SUB + 4;
    unsigned sub = (bucket - PS_HIST_LINEAR) % PS_HIST_SUB;
    double width = ldexp(1.0, (int)e - 3);
    return ldexp(1.0, (int)e) + (sub + 0.5) * width;
}

double ps_hist_quantile(const uint64_t *hist, double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < PS_HIST_BUCKETS; i++)
        total += hist[i];
    if (total == 0)
        return 0;
    /* The smallest bucket whose cumulative count reaches ceil(q * total). */
    uint64_t rank = (uint64_t)ceil(q * (double)total);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < PS_HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank)
            return ps_hist_value(i);
    }
    return ps_hist_value(PS_HIST_BUCKETS - 1);
}

redisContext *ps_redis_connect(const ps_config *cfg)
{
    return sc_test_redis_connect_addr(cfg->redis_host, cfg->redis_port);
}

void ps_key_ns(const ps_config *cfg, const char *key, char *out, size_t cap)
{
    if (cfg->partitions <= 1) {
        snprintf(out, cap, "%s", cfg->ns);
        return;
    }
    uint32_t h = 2166136261u; /* FNV-1a 32 */
    for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
        h ^= *k;
        h *= 16777619u;
    }
    snprintf(out, cap, "%s#%u", cfg->ns, h % cfg->partitions);
}

int ps_read_seq(redisContext *c, const ps_config *cfg, uint64_t *out)
{
    unsigned n = cfg->partitions > 1 ? cfg->partitions : 1;
    uint64_t sum = 0;
    for (unsigned p = 0; p < n; p++) {
        redisReply *r =
            n > 1 ? redisCommand(c, "GET {%s#%u}:seq", cfg->ns, p) : redisCommand(c, "GET {%s}:seq", cfg->ns);
        if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        if (r->type == REDIS_REPLY_STRING)
            sum += strtoull(r->str, NULL, 10);
        freeReplyObject(r);
    }
    *out = sum;
    return 0;
}
