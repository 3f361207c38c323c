/* Metrics and the transform hook, against a private redis-server.
 *
 * sc_metrics_text: after some traffic every family has # HELP and # TYPE,
 * each sample equals the sc_stats field it prints, histogram buckets are
 * cumulative and end in +Inf = _count, counts match the calls made,
 * snprintf semantics hold, label values are escaped, and the whole text
 * parses with the official Prometheus client's parser (python3 with
 * prometheus_client: Debian python3-prometheus-client; the test fails when it
 * is missing).
 *
 * on_set_local: applied to set events, Redis reads (sc_get, sc_get_many) and
 * replayed events; never to the pod's own writes; -1 keeps nothing (and
 * removes an older copy), 1 stores the hook's bytes with the same version. */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pods.h"

sc_test_redis g_redis;

#define NS(name) "m_" name

/* ------------------------------------------------------------ helpers -- */

/* The whole text, sized by a first call. A heartbeat or event landing
 * between the two calls may change a number's width; then try again. */
static char *metrics(sc_cache *c)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        size_t n = sc_metrics_text(c, NULL, 0);
        ck_assert_uint_gt(n, 0);
        char *buf = malloc(n + 1);
        ck_assert_ptr_nonnull(buf);
        size_t m = sc_metrics_text(c, buf, n + 1);
        if (m == n) {
            ck_assert_uint_eq(strlen(buf), n);
            return buf;
        }
        free(buf);
    }
    ck_abort_msg("the text's length never stood still");
    return NULL;
}

/* The value of the sample line that starts with `prefix` (name and labels
 * up to the closing brace). Fails the test when there is none. */
static double sample(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, prefix, pl) == 0 && line[pl] == ' ')
            return strtod(line + pl + 1, NULL);
    }
    ck_abort_msg("no sample %s in:\n%s", prefix, text);
    return 0;
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

typedef struct field {
    const char *name;
    size_t offset;
    int gauge;
} field;

#define C(f)                                                                                                           \
    {                                                                                                                  \
#f, offsetof(sc_stats, f), 0                                                                                   \
    }
#define G(f)                                                                                                           \
    {                                                                                                                  \
#f, offsetof(sc_stats, f), 1                                                                                   \
    }
static const field fields[] = {
    C(local_hits),      C(local_misses),     C(remote_hits),         C(remote_misses), C(events_published),
    C(events_received), C(events_applied),   C(events_ignored_self), C(events_stale),  C(events_malformed),
    C(invalidations),   C(evictions),        G(local_entries),       G(local_bytes),   C(remote_errors),
    C(loads_shared),    C(expirations),      C(reconnects),          C(gaps),          C(events_replayed),
    C(flushes),         C(heartbeat_misses), C(stale_served),        G(synced),        G(last_seq),
    C(events_foreign),  C(events_forged),    C(duplicate_pod_ids),   C(epoch_changes), C(publish_failures),
    C(behind_queued),   C(behind_saved),     C(behind_save_failures), G(behind_pending), G(behind_oldest_ms),
    G(tracking_active), C(tracking_invalidations), C(tracking_confirmed), C(tracking_failures),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static uint64_t field_value(const sc_stats *st, const field *f)
{
    uint64_t v;
    memcpy(&v, (const char *)st + f->offset, sizeof v);
    return v;
}

static void metric_name(char *buf, size_t len, const field *f)
{
    snprintf(buf, len, "synccache_%s%s", f->name, f->gauge ? "" : "_total");
}

static const char *const histograms[] = {
    "synccache_remote_get_duration_seconds",
    "synccache_remote_set_duration_seconds",
    "synccache_propagation_delay_seconds",
};

/* Checks one histogram: HELP/TYPE, cumulative buckets ending in +Inf equal
 * to _count, a _sum; returns _count. labels is `ns="..",pod=".."`. */
static uint64_t check_histogram(const char *text, const char *name, const char *labels)
{
    char line[512];
    snprintf(line, sizeof line, "# TYPE %s histogram", name);
    ck_assert_msg(has_line(text, line), "missing %s", line);
    snprintf(line, sizeof line, "# HELP %s ", name);
    ck_assert_msg(strstr(text, line) != NULL, "missing %s", line);
    static const char *const le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                     "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf"};
    double prev = 0;
    for (size_t i = 0; i < sizeof le / sizeof le[0]; i++) {
        snprintf(line, sizeof line, "%s_bucket{%s,le=\"%s\"}", name, labels, le[i]);
        double v = sample(text, line);
        ck_assert_msg(v >= prev, "%s: bucket le=%s (%g) below the previous (%g)", name, le[i], v, prev);
        prev = v;
    }
    snprintf(line, sizeof line, "%s_count{%s}", name, labels);
    double count = sample(text, line);
    ck_assert_msg(count == prev, "%s: _count %g != +Inf bucket %g", name, count, prev);
    snprintf(line, sizeof line, "%s_sum{%s}", name, labels);
    double sum = sample(text, line);
    ck_assert(sum >= 0);
    if (count == 0)
        ck_assert(sum == 0);
    return (uint64_t)count;
}

/* Every sc_stats field is a family with HELP and TYPE, and its sample equals
 * st. */
static void check_stats_families(const char *text, const char *labels, const sc_stats *st)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        char name[96], line[512];
        metric_name(name, sizeof name, &fields[i]);
        snprintf(line, sizeof line, "# TYPE %s %s", name, fields[i].gauge ? "gauge" : "counter");
        ck_assert_msg(has_line(text, line), "missing %s", line);
        snprintf(line, sizeof line, "# HELP %s ", name);
        ck_assert_msg(strstr(text, line) != NULL, "missing %s", line);
        snprintf(line, sizeof line, "%s{%s}", name, labels);
        double v = sample(text, line);
        ck_assert_msg(v == (double)field_value(st, &fields[i]), "%s: text says %g, sc_stats %llu", name, v,
                      (unsigned long long)field_value(st, &fields[i]));
    }
}

/* Stats and text taken while nothing moves: the same snapshot before and
 * after the text, else try again. */
static char *quiet_metrics(sc_cache *c, sc_stats *st)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        sc_stats a, b;
        sc_stats_get(c, &a);
        char *text = metrics(c);
        sc_stats_get(c, &b);
        if (memcmp(&a, &b, sizeof a) == 0) {
            *st = a;
            return text;
        }
        free(text);
        test_sleep_ms(20);
    }
    ck_abort_msg("stats never stood still");
    return NULL;
}

/* ------------------------------------------------------------- metrics -- */

#define SETS 20

/* A writes SETS keys; B receives them, reads them (hits), reads missing
 * keys (Redis misses) and keys it never held. */
static void traffic(sc_cache *a, sc_cache *b)
{
    for (int i = 0; i < SETS; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(sc_set(a, k, "value", 5, 0), SC_OK);
    }
    WAIT_UNTIL(test_stats(b).events_applied >= SETS, 3000);
    ck_assert_uint_ge(test_stats(b).events_applied, SETS);
    for (int i = 0; i < SETS; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        free(test_get(b, k)); /* local hits */
        snprintf(k, sizeof k, "absent%d", i);
        free(test_get(b, k)); /* Redis misses */
    }
}

START_TEST(every_family_matches_stats)
{
    sc_cache *a = test_pod(NS("fam"), "pod-a");
    sc_cache *b = test_pod(NS("fam"), "pod-b");
    traffic(a, b);

    sc_stats st;
    char *text = quiet_metrics(b, &st);
    const char *labels = "ns=\"" NS("fam") "\",pod=\"pod-b\"";
    check_stats_families(text, labels, &st);
    ck_assert_uint_eq(st.local_hits, SETS);
    ck_assert_uint_eq(st.remote_misses, SETS);

    /* Every Redis read of a get is one observation. */
    uint64_t gets = check_histogram(text, histograms[0], labels);
    ck_assert_uint_eq(gets, st.remote_hits + st.remote_misses);
    /* B wrote nothing. */
    ck_assert_uint_eq(check_histogram(text, histograms[1], labels), 0);
    /* One propagation per set event from A. */
    ck_assert_uint_eq(check_histogram(text, histograms[2], labels), SETS);
    free(text);

    /* A: one set observation per write, no propagation of its own events. */
    text = quiet_metrics(a, &st);
    labels = "ns=\"" NS("fam") "\",pod=\"pod-a\"";
    check_stats_families(text, labels, &st);
    ck_assert_uint_eq(check_histogram(text, histograms[1], labels), SETS);
    ck_assert_uint_eq(check_histogram(text, histograms[2], labels), 0);
    ck_assert_uint_eq(st.events_published, SETS);
    free(text);

    /* No family is printed twice, and every line is a comment or a sample
     * with both labels. */
    text = metrics(b);
    struct {
        const char *name;
        size_t len;
    } types[256];
    size_t ntypes = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') {
            ck_assert(strncmp(line, "# HELP synccache_", 17) == 0 || strncmp(line, "# TYPE synccache_", 17) == 0);
            if (strncmp(line, "# TYPE ", 7) == 0) {
                size_t len = strcspn(line + 7, " ");
                for (size_t i = 0; i < ntypes; i++)
                    ck_assert_msg(types[i].len != len || strncmp(types[i].name, line + 7, len) != 0,
                                  "family printed twice: %s", line);
                ck_assert_uint_lt(ntypes, sizeof types / sizeof types[0]);
                types[ntypes].name = line + 7;
                types[ntypes++].len = len;
            }
            continue;
        }
        ck_assert_msg(strncmp(line, "synccache_", 10) == 0, "line %s", line);
        ck_assert_msg(strstr(line, "{ns=\"" NS("fam") "\",pod=\"pod-b\"") != NULL, "line %s", line);
    }
    free(text);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Checks sc_metrics_text's snprintf semantics against full (n bytes) on a
 * pod; returns what failed, or NULL. Not asserted here: a heartbeat may
 * change the text between calls, and the caller then tries again. */
static const char *truncation_failure(sc_cache *a, const char *full, size_t n)
{
    char small[16];
    /* cap 0 with a buffer: nothing written. */
    memset(small, 'X', sizeof small);
    if (sc_metrics_text(a, small, 0) != n || small[0] != 'X')
        return "cap 0";
    /* cap 1: only the NUL. */
    if (sc_metrics_text(a, small, 1) != n || small[0] != '\0' || small[1] != 'X')
        return "cap 1";
    /* cap 10: nine bytes of the text, a NUL, and nothing past cap. */
    memset(small, 'X', sizeof small);
    if (sc_metrics_text(a, small, 10) != n || small[9] != '\0' || memcmp(small, full, 9) != 0 || small[10] != 'X')
        return "cap 10";
    /* Exactly n: cut by one byte (the NUL takes the last). */
    char *buf = malloc(n + 2);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'X', n + 2);
    const char *failed = NULL;
    if (sc_metrics_text(a, buf, n) != n || buf[n - 1] != '\0' || memcmp(buf, full, n - 1) != 0 || buf[n] != 'X')
        failed = "cap n";
    /* n + 1: the whole text. */
    else if (sc_metrics_text(a, buf, n + 1) != n || strcmp(buf, full) != 0 || buf[n + 1] != 'X')
        failed = "cap n + 1";
    free(buf);
    return failed;
}

START_TEST(snprintf_semantics)
{
    sc_cache *a = test_pod(NS("snp"), "pod-a");
    const char *failed = "not run";
    for (int attempt = 0; attempt < 50 && failed; attempt++) {
        sc_stats before, after;
        sc_stats_get(a, &before);
        char *full = metrics(a);
        size_t n = strlen(full);
        ck_assert_uint_gt(n, 1000);
        failed = truncation_failure(a, full, n);
        free(full);
        sc_stats_get(a, &after);
        /* A failure while the stats stood still is the library's. */
        ck_assert_msg(!failed || memcmp(&before, &after, sizeof before) != 0, "%s", failed ? failed : "");
    }
    ck_assert_msg(!failed, "stats never stood still: %s", failed);

    /* A NULL cache: an empty text. */
    char small[16];
    memset(small, 'X', sizeof small);
    ck_assert_uint_eq(sc_metrics_text(NULL, small, sizeof small), 0);
    ck_assert_int_eq(small[0], '\0');
    ck_assert_uint_eq(sc_metrics_text(NULL, NULL, 0), 0);
    sc_close(a);
}
END_TEST

START_TEST(label_values_are_escaped)
{
    const char *id = "we\"ird\\pod\nx";
    sc_cache *a = test_pod(NS("esc"), id);
    char *text = metrics(a);
    ck_assert_msg(strstr(text, "synccache_synced{ns=\"" NS("esc") "\",pod=\"we\\\"ird\\\\pod\\nx\"} 1\n") != NULL,
                  "escaped labels not found in:\n%s", text);
    /* The raw newline of the pod id never reaches the text: every line is
     * a comment or starts with a metric name. */
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        ck_assert_msg(line[0] == '#' || strncmp(line, "synccache_", 10) == 0, "line %s", line);
    free(text);
    sc_close(a);
}
END_TEST

/* Whether s is well-formed UTF-8 (no overlongs, surrogates or code points
 * past U+10FFFF). */
static int utf8_valid(const unsigned char *s)
{
    while (*s) {
        unsigned char b = *s;
        size_t n = b < 0x80 ? 0 : (b & 0xe0) == 0xc0 ? 1 : (b & 0xf0) == 0xe0 ? 2 : (b & 0xf8) == 0xf0 ? 3 : 9;
        if (n == 9 || (n == 1 && b < 0xc2) || (n == 3 && b > 0xf4))
            return 0;
        for (size_t i = 1; i <= n; i++)
            if ((s[i] & 0xc0) != 0x80)
                return 0;
        if ((b == 0xe0 && s[1] < 0xa0) || (b == 0xed && s[1] > 0x9f) || (b == 0xf0 && s[1] < 0x90) ||
            (b == 0xf4 && s[1] > 0x8f))
            return 0;
        s += n + 1;
    }
    return 1;
}

/* The exposition format's label values are UTF-8 (Prometheus refuses a
 * scrape with one that is not, losing every sample of the pod). sc_open takes
 * pod ids and namespaces with any bytes but control characters, so bytes
 * that are not UTF-8 must not reach the text as they are. */
START_TEST(label_values_are_utf8)
{
    const char *id = "pod-\xff\xfe-\xc3";
    const char *ns = NS("utf8\xe2\x82");
    sc_cache *a = test_pod(ns, id);
    char *text = metrics(a);
    ck_assert_msg(utf8_valid((const unsigned char *)text), "the text is not UTF-8");
    /* Valid UTF-8 passes unchanged. */
    sc_close(a);
    free(text);
    a = test_pod(NS("utf8ok"), "p\xc3\xa9-\xe2\x82\xac");
    text = metrics(a);
    ck_assert_ptr_nonnull(strstr(text, "pod=\"p\xc3\xa9-\xe2\x82\xac\""));
    free(text);
    sc_close(a);
}
END_TEST

/* ------------------------------------------------- the Prometheus parser -- */

/* The interpreter that has prometheus_client: $SC_PYTHON, else Debian's
 * /usr/bin/python3 (where python3-prometheus-client installs), else the
 * python3 on PATH. NULL when none of them can import it. */
static const char *find_python(char *why, size_t len)
{
    static const char *cands[3];
    int n = 0;
    const char *env = getenv("SC_PYTHON");
    if (env && *env)
        cands[n++] = env;
    if (access("/usr/bin/python3", X_OK) == 0)
        cands[n++] = "/usr/bin/python3";
    cands[n++] = "python3";
    for (int i = 0; i < n; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "'%s' -c 'import prometheus_client.parser' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0)
            return cands[i];
    }
    snprintf(why, len,
             "no python3 with the prometheus_client module (tried $SC_PYTHON, /usr/bin/python3, python3 on PATH): "
             "install the Debian packages python3 and python3-prometheus-client");
    return NULL;
}

static const char parser_script[] =
    "import sys\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "text = open(sys.argv[1], encoding='utf-8').read()\n"
    "out = open(sys.argv[2], 'w')\n"
    "for f in text_string_to_metric_families(text):\n"
    "    out.write('F %s %s\\n' % (f.name, f.type))\n"
    "    if not f.documentation:\n"
    "        raise SystemExit('family %s has no HELP' % f.name)\n"
    "    for s in f.samples:\n"
    "        out.write('S %s %s %s %s %r\\n' % (s.name, s.labels['ns'].encode().hex(),\n"
    "                  s.labels['pod'].encode().hex(), s.labels.get('le', '-'), float(s.value)))\n";

static void hex(char *out, const char *s)
{
    for (; *s; s++, out += 2)
        sprintf(out, "%02x", (unsigned char)*s);
    *out = '\0';
}

/* The whole text through text_string_to_metric_families: every family has
 * the right type, every sample its labels (unescaped back to the pod id) and
 * the value of sc_stats. */
START_TEST(official_parser_accepts_it)
{
    char why[512];
    const char *py = find_python(why, sizeof why);
    ck_assert_msg(py != NULL, "%s", why);

    const char *id = "pod \"q\" \\ new\nline";
    sc_cache *a = test_pod(NS("prom"), "writer");
    sc_cache *b = test_pod(NS("prom"), id);
    traffic(a, b);
    sc_stats st;
    char *text = quiet_metrics(b, &st);

    char dir[] = "/tmp/sc-metrics-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char in[128], out[128], script[128];
    snprintf(in, sizeof in, "%s/metrics.txt", dir);
    snprintf(out, sizeof out, "%s/parsed.txt", dir);
    snprintf(script, sizeof script, "%s/parse.py", dir);
    FILE *f = fopen(in, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fputs(parser_script, f);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s'", py, script, in, out);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "the Prometheus parser rejected the text (exit %d):\n%s", rc, text);

    char ns_hex[64], pod_hex[128];
    hex(ns_hex, NS("prom"));
    hex(pod_hex, id);
    f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    size_t families = 0, samples = 0, matched = 0, hist_samples = 0;
    while (fgets(line, sizeof line, f)) {
        char name[128], type[32], nsh[64], podh[128], le[32];
        double v;
        if (sscanf(line, "F %127s %31s", name, type) == 2) {
            families++;
            /* Counters lose _total in the family name; histograms keep
             * theirs; everything else is a gauge. */
            for (size_t i = 0; i < NFIELDS; i++) {
                char want[96];
                snprintf(want, sizeof want, "synccache_%s", fields[i].name);
                if (strcmp(name, want) == 0)
                    ck_assert_str_eq(type, fields[i].gauge ? "gauge" : "counter");
            }
            for (size_t i = 0; i < 3; i++)
                if (strcmp(name, histograms[i]) == 0)
                    ck_assert_str_eq(type, "histogram");
            continue;
        }
        ck_assert_int_eq(sscanf(line, "S %127s %63s %127s %31s %lf", name, nsh, podh, le, &v), 5);
        samples++;
        ck_assert_str_eq(nsh, ns_hex);
        ck_assert_str_eq(podh, pod_hex);
        for (size_t i = 0; i < NFIELDS; i++) {
            char want[96];
            metric_name(want, sizeof want, &fields[i]);
            if (strcmp(name, want) == 0) {
                ck_assert_msg(v == (double)field_value(&st, &fields[i]), "%s: parsed %g, sc_stats %llu", name, v,
                              (unsigned long long)field_value(&st, &fields[i]));
                matched++;
            }
        }
        if (strstr(name, "_seconds_") && strncmp(name, "synccache_load_", 15) != 0)
            hist_samples++;
    }
    fclose(f);
    /* The stats, the three histograms and six load-statistics counters. */
    ck_assert_uint_eq(families, NFIELDS + 3 + 6);
    ck_assert_uint_eq(matched, NFIELDS);
    ck_assert_uint_eq(hist_samples, 3 * (17 + 2));
    ck_assert_uint_eq(samples, NFIELDS + 6 + 3 * (17 + 2));

    unlink(in);
    unlink(out);
    unlink(script);
    rmdir(dir);
    free(text);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* ------------------------------------------------------ transform hook -- */

/* "t:" keys are upper-cased (1), "n:" keys are not kept (-1), the rest are
 * stored as received (0). Every call is counted per key prefix. */
typedef struct hook_log {
    pthread_mutex_t mu;
    char keys[64][64];
    int n;
} hook_log;

static hook_log g_log = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};

static int upper_hook(const char *key, const void *val, size_t len, uint64_t version, void **out, size_t *out_len,
                      void *ud)
{
    (void)version;
    ck_assert_ptr_eq(ud, &g_log);
    pthread_mutex_lock(&g_log.mu);
    if (g_log.n < 64)
        snprintf(g_log.keys[g_log.n++], sizeof g_log.keys[0], "%s", key);
    pthread_mutex_unlock(&g_log.mu);
    if (strncmp(key, "n:", 2) == 0)
        return -1;
    if (strncmp(key, "t:", 2) != 0)
        return 0;
    char *b = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        b[i] = (char)(((const char *)val)[i] >= 'a' && ((const char *)val)[i] <= 'z' ? ((const char *)val)[i] - 32
                                                                                     : ((const char *)val)[i]);
    b[len] = '!';
    *out = b;
    *out_len = len + 1;
    return 1;
}

static int hook_calls(const char *key)
{
    pthread_mutex_lock(&g_log.mu);
    int n = 0;
    for (int i = 0; i < g_log.n; i++)
        n += strcmp(g_log.keys[i], key) == 0;
    pthread_mutex_unlock(&g_log.mu);
    return n;
}

static sc_cache *hooked_pod(const char *ns, const char *id)
{
    sc_options o = test_options(ns, id);
    o.on_set_local = upper_hook;
    o.on_set_local_ud = &g_log;
    return test_open(&o);
}

/* The local copy of key on c, as a string ("<none>"), and its version. */
static char *peek(sc_cache *c, const char *key, uint64_t *version)
{
    sc_value *v = NULL;
    if (sc_peek(c, key, &v) != SC_OK)
        return strdup("<none>");
    if (version)
        *version = sc_value_version(v);
    char *s = strndup(sc_value_data(v), sc_value_size(v));
    sc_value_release(v);
    return s;
}

static int local_has(sc_cache *c, const char *key)
{
    sc_value *v = NULL;
    if (sc_peek(c, key, &v) != SC_OK)
        return 0;
    sc_value_release(v);
    return 1;
}

#define ASSERT_PEEK(c, key, want)                                                                                      \
    do {                                                                                                               \
        char *got_ = peek((c), (key), NULL);                                                                           \
        ck_assert_msg(strcmp(got_, (want)) == 0, "local %s: %s, want %s", (key), got_, (want));                        \
        free(got_);                                                                                                    \
    } while (0)

START_TEST(transform_set_events)
{
    sc_cache *a = test_pod(NS("tev"), "a");
    sc_cache *b = hooked_pod(NS("tev"), "b");

    /* B holds an own copy of n:k; A's newer set is not kept by the hook,
     * and the older copy must go with it. */
    ck_assert_int_eq(sc_set(b, "n:k", "own", 3, 0), SC_OK);
    ASSERT_PEEK(b, "n:k", "own");
    ck_assert_int_eq(hook_calls("n:k"), 0); /* never on own writes */

    ck_assert_int_eq(sc_set(a, "t:k", "abc", 3, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "n:k", "new", 3, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "p:k", "plain", 5, 0), SC_OK);
    /* Events apply in order: once the last is in, so are the others
     * (events_received counts an event before it is applied). */
    WAIT_UNTIL(local_has(b, "p:k"), 3000);

    uint64_t version = 0, want = 0;
    char *got = peek(b, "t:k", &version);
    ck_assert_str_eq(got, "ABC!"); /* 1: the hook's bytes */
    free(got);
    ck_assert_int_eq(sc_version_of(a, "t:k", &want), SC_OK);
    ck_assert_uint_eq(version, want); /* with the event's version */
    ASSERT_PEEK(b, "n:k", "<none>");  /* -1: nothing, and the old copy gone */
    ASSERT_PEEK(b, "p:k", "plain");   /* 0: as received */
    ck_assert_int_eq(hook_calls("t:k"), 1);
    ck_assert_int_eq(hook_calls("n:k"), 1);

    /* A get of the key the hook refused reads Redis and returns the value
     * as read, still keeping nothing. */
    char *v = test_get(b, "n:k");
    ck_assert_str_eq(v, "new");
    free(v);
    ASSERT_PEEK(b, "n:k", "<none>");

    /* B's own write of a t: key is stored as written, hook not called. */
    ck_assert_int_eq(sc_set(b, "t:own", "xyz", 3, 0), SC_OK);
    ASSERT_PEEK(b, "t:own", "xyz");
    test_sleep_ms(100); /* its own event comes back: still untouched */
    ASSERT_PEEK(b, "t:own", "xyz");
    ck_assert_int_eq(hook_calls("t:own"), 0);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(transform_redis_reads)
{
    sc_cache *a = test_pod(NS("trd"), "a");
    ck_assert_int_eq(sc_set(a, "t:1", "one", 3, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "t:2", "two", 3, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "n:3", "three", 5, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "p:4", "four", 4, 0), SC_OK);
    /* B opens afterwards: it only knows these keys through Redis reads. */
    sc_cache *b = hooked_pod(NS("trd"), "b");

    /* The first get already returns what the local tier stores. */
    char *v = test_get(b, "t:1");
    ck_assert_str_eq(v, "ONE!");
    free(v);
    ASSERT_PEEK(b, "t:1", "ONE!");
    v = test_get(b, "t:1"); /* a hit: the same */
    ck_assert_str_eq(v, "ONE!");
    free(v);
    ck_assert_int_eq(hook_calls("t:1"), 1);

    /* sc_get_many goes through the same install. */
    const char *keys[] = {"t:2", "n:3", "p:4", "absent"};
    sc_value *out[4];
    ck_assert_int_eq(sc_get_many(b, keys, 4, out), SC_OK);
    ck_assert_str_eq(sc_value_data(out[0]), "TWO!");
    ck_assert_str_eq(sc_value_data(out[1]), "three"); /* -1: returned as read */
    ck_assert_str_eq(sc_value_data(out[2]), "four");
    ck_assert_ptr_null(out[3]);
    for (int i = 0; i < 4; i++)
        sc_value_release(out[i]);
    ASSERT_PEEK(b, "t:2", "TWO!");
    ASSERT_PEEK(b, "n:3", "<none>");
    ASSERT_PEEK(b, "p:4", "four");
    ck_assert_int_eq(hook_calls("t:2"), 1);
    ck_assert_int_eq(hook_calls("n:3"), 1);
    ck_assert_int_eq(hook_calls("absent"), 0);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A hook may fill *out and then answer 0, -1 or something unknown: the
 * buffer is the cache's whatever the answer (synccache.h), and the answer
 * still decides what is kept. The leak this guards against shows under
 * LeakSanitizer (the ASan build): the buffer was freed only with 1. */
static int allocating_hook(const char *key, const void *val, size_t len, uint64_t version, void **out, size_t *out_len,
                           void *ud)
{
    (void)version, (void)ud;
    char *b = malloc(len + 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, val, len);
    b[len] = 'X';
    *out = b;
    *out_len = len + 1;
    return key[0] == 'z' ? 0 : key[0] == 'm' ? -1 : 7;
}

START_TEST(transform_buffer_freed_whatever_the_answer)
{
    sc_cache *a = test_pod(NS("tfree"), "a");
    sc_options o = test_options(NS("tfree"), "b");
    o.on_set_local = allocating_hook;
    sc_cache *b = test_open(&o);
    const char *keys[] = {"z:as-received", "m:not-kept", "q:unknown-answer"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(sc_set(a, keys[i], "v", 1, 0), SC_OK);
        char *v = test_get(b, keys[i]); /* a Redis read, through the hook */
        ck_assert_msg(strcmp(v, "v") == 0, "%s: got %s", keys[i], v);
        free(v);
    }
    ASSERT_PEEK(b, "z:as-received", "v");
    ASSERT_PEEK(b, "m:not-kept", "<none>");
    ASSERT_PEEK(b, "q:unknown-answer", "<none>");
    /* And on set events. */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sc_set(a, keys[i], "w", 1, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "z:last", "w", 1, 0), SC_OK);
    WAIT_UNTIL(local_has(b, "z:last"), 3000);
    ASSERT_PEEK(b, "z:as-received", "w");
    ASSERT_PEEK(b, "m:not-kept", "<none>");
    ASSERT_PEEK(b, "q:unknown-answer", "<none>");
    sc_close(a);
    sc_close(b);
}
END_TEST

static sc_status load_abc(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (*(int *)ud)++;
    sc_loaded_set(slot, "abc", 3);
    return SC_OK;
}

/* Loaded values enter the local tier through the hook too, on the pod that
 * loaded (the caller gets the stored bytes, as a later hit would) and on a
 * pod that reads the loaded value from Redis through sc_fetch. */
START_TEST(transform_loaded_values)
{
    sc_cache *a = hooked_pod(NS("tld"), "a");
    sc_cache *b = hooked_pod(NS("tld"), "b");
    int loads = 0;
    sc_value *v = NULL;
    ck_assert_int_eq(sc_fetch(a, "t:x", 0, load_abc, &loads, &v), SC_OK);
    ck_assert_int_eq(loads, 1);
    ck_assert_str_eq(sc_value_data(v), "ABC!");
    sc_value_release(v);
    ASSERT_PEEK(a, "t:x", "ABC!");
    char *r = test_redis_value(NS("tld"), "t:x");
    ck_assert_str_eq(r, "abc"); /* Redis keeps what the loader gave */
    free(r);
    /* b: either the set event or its own fetch brings it in, transformed. */
    ck_assert_int_eq(sc_fetch(b, "t:x", 0, load_abc, &loads, &v), SC_OK);
    ck_assert_int_eq(loads, 1);
    ck_assert_str_eq(sc_value_data(v), "ABC!");
    sc_value_release(v);
    ASSERT_PEEK(b, "t:x", "ABC!");

    /* The load statistics are in the metrics text, equal to the TOTAL window. */
    sc_load_stats ls;
    sc_load_stats_get(a, SC_WINDOW_TOTAL, &ls);
    ck_assert_uint_eq(ls.misses, 1);
    char *text = metrics(a);
    char line[256];
    snprintf(line, sizeof line, "synccache_load_misses_total{ns=\"%s\",pod=\"a\"}", NS("tld"));
    ck_assert_uint_eq((uint64_t)sample(text, line), ls.misses);
    snprintf(line, sizeof line, "synccache_load_hits_total{ns=\"%s\",pod=\"a\"}", NS("tld"));
    ck_assert_uint_eq((uint64_t)sample(text, line), ls.hits);
    snprintf(line, sizeof line, "synccache_load_miss_seconds_total{ns=\"%s\",pod=\"a\"}", NS("tld"));
    ck_assert(sample(text, line) > 0);
    free(text);
    sc_close(a);
    sc_close(b);
}
END_TEST

static int synced(sc_cache *c)
{
    return test_stats(c).synced == 1;
}

START_TEST(transform_replayed_events)
{
    sc_cache *a = test_pod(NS("trp"), "a");
    sc_options o = test_options(NS("trp"), "b");
    o.on_set_local = upper_hook;
    o.on_set_local_ud = &g_log;
    o.heartbeat_interval_ms = 100;
    o.heartbeat_timeout_ms = 400;
    o.reconnect_min_ms = 600; /* stay away while A writes */
    o.reconnect_max_ms = 1200;
    sc_cache *b = test_open(&o);

    ck_assert_int_eq(sc_test_redis_cmd(&g_redis, "CLIENT KILL TYPE pubsub"), 0);
    WAIT_UNTIL(!synced(b), 2000);
    ck_assert(!synced(b));
    uint64_t replayed = test_stats(b).events_replayed;
    ck_assert_int_eq(sc_set(a, "t:r", "missed", 6, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "n:r", "missed", 6, 0), SC_OK);
    WAIT_UNTIL(synced(b), 5000);
    ck_assert(synced(b));
    ck_assert_uint_ge(test_stats(b).events_replayed, replayed + 2);
    ASSERT_PEEK(b, "t:r", "MISSED!");
    ASSERT_PEEK(b, "n:r", "<none>");
    ck_assert_int_eq(hook_calls("t:r"), 1);
    ck_assert_int_eq(hook_calls("n:r"), 1);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A loader for the stale answers below: sleeps delay_ms, then fails or
 * sets "xyz". entered counts its calls. */
typedef struct slow_src {
    atomic_int entered;
    int delay_ms;
    int fail;
} slow_src;

static sc_status load_slow(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    slow_src *s = ud;
    atomic_fetch_add(&s->entered, 1);
    if (s->delay_ms)
        test_sleep_ms(s->delay_ms);
    if (s->fail) {
        sc_loaded_error(slot, "source down");
        return SC_ERR_LOADER;
    }
    sc_loaded_set(slot, "xyz", 3);
    return SC_OK;
}

typedef struct fetch_arg {
    sc_cache *c;
    const char *key;
    slow_src *s;
    sc_status st;
    sc_value *v; /* fetch_thread_keep: the answer */
} fetch_arg;

static void *fetch_thread_keep(void *p)
{
    fetch_arg *f = p;
    f->st = sc_fetch(f->c, f->key, 0, load_slow, f->s, &f->v);
    return NULL;
}

static void *fetch_thread(void *p)
{
    fetch_arg *f = p;
    sc_value *v = NULL;
    f->st = sc_fetch(f->c, f->key, 0, load_slow, f->s, &v);
    sc_value_release(v);
    return NULL;
}

/* Fetch answers that are not kept locally are Redis reads too: the hook
 * runs on them, so they return what a hit returns. Found by the tag and
 * transform audit: the outdated value of a tag-deleted key (served by an
 * eventual fetch while another pod reloads it) and a graced value
 * (stale-if-error) were answered as read, without the hook. */
START_TEST(transform_stale_fetch_answers)
{
    sc_cache *a = hooked_pod(NS("tsf"), "a");
    sc_cache *b = hooked_pod(NS("tsf"), "b");

    /* The outdated value while a reloads the key. */
    ck_assert_int_eq(sc_set(a, "t:o", "abc", 3, 0), SC_OK);
    char *v = test_get(b, "t:o");
    ck_assert_str_eq(v, "ABC!");
    free(v);
    ck_assert_int_eq(sc_tag_deleted(a, "t:o"), SC_OK);
    WAIT_UNTIL(!local_has(b, "t:o"), 3000);
    ck_assert(!local_has(b, "t:o"));
    slow_src hold = {.delay_ms = 400};
    fetch_arg fa = {a, "t:o", &hold, SC_OK, NULL};
    pthread_t th;
    pthread_create(&th, NULL, fetch_thread, &fa);
    WAIT_UNTIL(atomic_load(&hold.entered) == 1, 3000);
    slow_src quick = {0};
    sc_value *got = NULL;
    sc_status st = sc_fetch(b, "t:o", 0, load_slow, &quick, &got);
    pthread_join(th, NULL);
    ck_assert_int_eq(fa.st, SC_OK);
    ck_assert_int_eq(st, SC_OK);
    ck_assert_int_eq(atomic_load(&quick.entered), 0); /* the outdated value was served */
    ck_assert_msg(strcmp(sc_value_data(got), "ABC!") == 0, "outdated answer %s, want ABC!",
                  (const char *)sc_value_data(got));
    sc_value_release(got);

    /* A graced value (past its TTL) when the loader fails. */
    sc_fetch_opts fo;
    sc_fetch_opts_init(&fo);
    fo.ttl_ms = 150;
    fo.grace_ms = 60000;
    slow_src ok = {0};
    sc_get_info info;
    ck_assert_int_eq(sc_fetch_ex(b, "t:g", &fo, load_slow, &ok, &got, &info), SC_OK);
    ck_assert_str_eq(sc_value_data(got), "XYZ!");
    sc_value_release(got);
    test_sleep_ms(300); /* past its TTL, within its grace */
    slow_src down = {.fail = 1};
    ck_assert_int_eq(sc_fetch_ex(b, "t:g", &fo, load_slow, &down, &got, &info), SC_OK);
    ck_assert_int_eq(info.stale, 1);
    ck_assert_msg(strcmp(sc_value_data(got), "XYZ!") == 0, "graced answer %s, want XYZ!",
                  (const char *)sc_value_data(got));
    sc_value_release(got);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A load fenced by a write (its lock revoked while the loader ran) answers
 * its own caller under SC_EVENTUAL without caching: through the hook as
 * well, as a stored load's answer is. Found by the tag and transform
 * audit: the fenced answer was the loader's bytes as given. */
START_TEST(transform_fenced_load_answer)
{
    sc_cache *a = hooked_pod(NS("tfl"), "a");
    sc_cache *b = hooked_pod(NS("tfl"), "b");
    slow_src slow = {.delay_ms = 300};
    fetch_arg fa = {a, "t:f", &slow, SC_OK, NULL};
    sc_value *got = NULL;
    pthread_t th;
    pthread_create(&th, NULL, fetch_thread_keep, &fa);
    WAIT_UNTIL(atomic_load(&slow.entered) == 1, 3000);
    ck_assert_int_eq(sc_set(b, "t:f", "other", 5, 0), SC_OK); /* revokes a's lock */
    pthread_join(th, NULL);
    ck_assert_int_eq(fa.st, SC_OK);
    got = fa.v;
    ck_assert_msg(strcmp(sc_value_data(got), "XYZ!") == 0, "fenced load answered %s, want XYZ!",
                  (const char *)sc_value_data(got));
    sc_value_release(got);
    char *r = test_redis_value(NS("tfl"), "t:f");
    ck_assert_str_eq(r, "other"); /* the load was fenced: not stored */
    free(r);
    sc_close(a);
    sc_close(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_family_matches_stats);
    tcase_add_test(tc, snprintf_semantics);
    tcase_add_test(tc, label_values_are_escaped);
    tcase_add_test(tc, label_values_are_utf8);
    tcase_add_test(tc, official_parser_accepts_it);
    suite_add_tcase(s, tc);
    tc = tcase_create("transform");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, transform_set_events);
    tcase_add_test(tc, transform_redis_reads);
    tcase_add_test(tc, transform_buffer_freed_whatever_the_answer);
    tcase_add_test(tc, transform_replayed_events);
    tcase_add_test(tc, transform_loaded_values);
    tcase_add_test(tc, transform_stale_fetch_answers);
    tcase_add_test(tc, transform_fenced_load_answer);
    suite_add_tcase(s, tc);
    return test_run_suite(s, NULL);
}
