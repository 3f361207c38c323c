/* Every public call with bad input: a table of calls swept over a NULL
 * cache, NULL / empty / over-long keys, NULL out pointers, out-of-range
 * lengths, TTLs and counts, on a writer, a plain reader and a partitioned
 * pod. Each must return the documented status, leave a message in sc_errmsg
 * naming the call and the argument, set its out parameters to NULL / 0, and
 * write nothing to Redis or the local tier. */
#include <limits.h>
#include <pthread.h>

#include "pods.h"

sc_test_redis g_redis;

#define NS(name) "t_" name

static char g_fail[16384];

#define SENT ((sc_value *)(uintptr_t)0x10)

static void note(const char *fmt, ...) SC__PRINTF(1, 2);
static void note(const char *fmt, ...)
{
    size_t l = strlen(g_fail);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_fail + l, sizeof g_fail - l, fmt, ap);
    va_end(ap);
    l = strlen(g_fail);
    if (l + 1 < sizeof g_fail)
        strcat(g_fail, "\n");
}

/* Failures are collected (all of them reported at once), not asserted one
 * by one. */
/* s must be want, and c's message (this thread) must name call and word. */
static void expect(int line, const char *what, sc_status s, sc_status want, const sc_cache *c, const char *call,
                   const char *word)
{
    const char *m = sc_errmsg(c);
    if (s != want)
        note("line %d %s: got %s, want %s (%s)", line, what, sc_strerror(s), sc_strerror(want), m);
    else if (want != SC_OK && want != SC_NOT_FOUND && (!strstr(m, call) || (word && !strstr(m, word))))
        note("line %d %s: message \"%s\" does not name %s / %s", line, what, m, call, word ? word : "");
}
#define EXPECT(stmt, want, c, call, word) expect(__LINE__, #stmt, (stmt), want, c, call, word)

static sc_status load_one(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)ud;
    sc_loaded_set(slot, "L", 1);
    return SC_OK;
}

static sc_status load_many(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    (void)keys;
    (void)ud;
    for (size_t i = 0; i < n; i++)
        sc_loaded_set(slots[i], "L", 1);
    return SC_OK;
}

static void read_fn(const void *d, size_t l, uint64_t v, void *ud)
{
    (void)d;
    (void)l;
    (void)v;
    ++*(int *)ud;
}

/* Every keyed call with a bad key on c (its messages read through msgc). */
static void sweep_keys(sc_cache *c, const sc_cache *msgc, const char *key, sc_status want, const char *word,
                       int plain_reader)
{
    /* What a plain reader refuses before looking at the key. */
    sc_status wwant = plain_reader ? SC_ERR_INVALID : want;
    const char *wword = plain_reader ? "Redis" : word;
    sc_value *v = SENT;
    sc_get_info info;
    uint64_t ver = 7;
    size_t len = 9;
    int called = 0;
    char buf[4];
    sc_fetch_opts fo;
    sc_fetch_opts_init(&fo);
    const char *tags[] = {"t"};
    v = SENT;
    EXPECT(sc_get(c, key, &v), want, msgc, "sc_get", word);
    if (v)
        note("sc_get: out not NULL");
    v = SENT;
    EXPECT(sc_get_ex(c, key, &v, &info), want, msgc, "sc_get_ex", word);
    if (v)
        note("sc_get_ex: out not NULL");
    v = SENT;
    EXPECT(sc_peek(c, key, &v), want, msgc, "sc_peek", word);
    if (v)
        note("sc_peek: out not NULL");
    EXPECT(sc_get_with(c, key, read_fn, &called), want, msgc, "sc_get_with", word);
    EXPECT(sc_get_copy(c, key, buf, sizeof buf, &len, &ver), want, msgc, "sc_get_copy", word);
    EXPECT(sc_set(c, key, "x", 1, 0), want, msgc, "sc_set", word);
    EXPECT(sc_set_invalidate(c, key, "x", 1, 0), want, msgc, "sc_set_invalidate", word);
    EXPECT(sc_set_if_version(c, key, "x", 1, 0, 0), want, msgc, "sc_set_if_version", word);
    EXPECT(sc_set_behind(c, key, "x", 1, 0), want, msgc, "sc_set_behind", word);
    EXPECT(sc_set_tagged(c, key, "x", 1, 0, tags, 1), wwant, msgc, "sc_set_tagged", wword);
    EXPECT(sc_delete(c, key), want, msgc, "sc_delete", word);
    EXPECT(sc_delete_behind(c, key), want, msgc, "sc_delete_behind", word);
    ver = 7;
    EXPECT(sc_version_of(c, key, &ver), want, msgc, "sc_version_of", word);
    if (ver)
        note("sc_version_of: version not 0");
    EXPECT(sc_tag_deleted(c, key), want, msgc, "sc_tag_deleted", word);
    v = SENT;
    EXPECT(sc_fetch(c, key, 0, load_one, NULL, &v), wwant, msgc, "sc_fetch", wword);
    if (v)
        note("sc_fetch: out not NULL");
    v = SENT;
    EXPECT(sc_fetch_ex(c, key, &fo, load_one, NULL, &v, &info), wwant, msgc, "sc_fetch_ex", wword);
    if (v)
        note("sc_fetch_ex: out not NULL");
    const char *keys[3] = {"ok1", key, "ok1"};
    sc_value *outs[3] = {SENT, SENT, SENT};
    EXPECT(sc_get_many(c, keys, 3, outs), want, msgc, "sc_get_many", word);
    for (int i = 0; i < 3; i++)
        if (outs[i])
            note("sc_get_many: out[%d] not NULL", i);
    outs[0] = outs[1] = outs[2] = SENT;
    EXPECT(sc_fetch_batch(c, keys, 3, 0, load_many, NULL, outs), wwant, msgc, "sc_fetch_batch", wword);
    for (int i = 0; i < 3; i++)
        if (outs[i])
            note("sc_fetch_batch: out[%d] not NULL", i);
    if (called)
        note("sc_get_with: fn called");
}

static void sweep_args(sc_cache *c, const char *ns)
{
    sc_value *v = SENT;
    size_t len = 9;
    uint64_t ver = 7;
    char buf[4];
    sc_fetch_opts fo;
    sc_fetch_opts_init(&fo);
    sc_get_info info;
    EXPECT(sc_get(c, "k", NULL), SC_ERR_INVALID, c, "sc_get", "out");
    EXPECT(sc_get_ex(c, "k", NULL, &info), SC_ERR_INVALID, c, "sc_get_ex", "out");
    EXPECT(sc_peek(c, "k", NULL), SC_ERR_INVALID, c, "sc_peek", "out");
    EXPECT(sc_get_with(c, "k", NULL, NULL), SC_ERR_INVALID, c, "sc_get_with", "fn");
    EXPECT(sc_get_copy(c, "k", buf, sizeof buf, NULL, &ver), SC_ERR_INVALID, c, "sc_get_copy", "len");
    EXPECT(sc_get_copy(c, "k", NULL, 4, &len, &ver), SC_ERR_INVALID, c, "sc_get_copy", "buf");
    EXPECT(sc_version_of(c, "k", NULL), SC_ERR_INVALID, c, "sc_version_of", "version");
    EXPECT(sc_set(c, "k", NULL, 3, 0), SC_ERR_INVALID, c, "sc_set", "value");
    EXPECT(sc_set(c, "k", "x", (size_t)512 << 20, 0), SC_ERR_TOO_LARGE, c, "sc_set", "max_value_bytes");
    EXPECT(sc_set(c, "k", "x", SIZE_MAX, 0), SC_ERR_TOO_LARGE, c, "sc_set", "max_value_bytes");
    EXPECT(sc_set(c, "k", "x", 1, UINT64_MAX), SC_ERR_INVALID, c, "sc_set", "ttl_ms");
    EXPECT(sc_set_invalidate(c, "k", "x", 1, UINT64_MAX), SC_ERR_INVALID, c, "sc_set_invalidate", "ttl_ms");
    EXPECT(sc_set_if_version(c, "k", "x", 1, UINT64_MAX, 0), SC_ERR_INVALID, c, "sc_set_if_version", "ttl_ms");
    EXPECT(sc_set_behind(c, "k", "x", 1, UINT64_MAX), SC_ERR_INVALID, c, "sc_set_behind", "ttl_ms");
    const char *tags[] = {"t"};
    EXPECT(sc_set_tagged(c, "k", "x", 1, UINT64_MAX, tags, 1), SC_ERR_INVALID, c, "sc_set_tagged", "ttl_ms");
    EXPECT(sc_set_tagged(c, "k", "x", 1, 0, NULL, 1), SC_ERR_INVALID, c, "sc_set_tagged", "tags");
    const char *badtags[] = {"t", NULL};
    EXPECT(sc_set_tagged(c, "k", "x", 1, 0, badtags, 2), SC_ERR_INVALID, c, "sc_set_tagged", "tag 1");
    const char *nltags[] = {"a\nb"};
    EXPECT(sc_set_tagged(c, "k", "x", 1, 0, nltags, 1), SC_ERR_INVALID, c, "sc_set_tagged", "newline");
    EXPECT(sc_set_tagged(c, "k", "x", 1, 0, tags, 65), SC_ERR_INVALID, c, "sc_set_tagged", "tags");
    EXPECT(sc_invalidate_tag(c, NULL), SC_ERR_INVALID, c, "sc_invalidate_tag", "tag");
    EXPECT(sc_invalidate_tag(c, ""), SC_ERR_INVALID, c, "sc_invalidate_tag", "tag");
    EXPECT(sc_invalidate_tag(c, "a\nb"), SC_ERR_INVALID, c, "sc_invalidate_tag", "newline");
    v = SENT;
    EXPECT(sc_fetch(c, "k", 0, NULL, NULL, &v), SC_ERR_INVALID, c, "sc_fetch", "loader");
    if (v)
        note("sc_fetch NULL loader: out not NULL");
    EXPECT(sc_fetch(c, "k", 0, load_one, NULL, NULL), SC_ERR_INVALID, c, "sc_fetch", "out");
    v = SENT;
    EXPECT(sc_fetch(c, "k", UINT64_MAX, load_one, NULL, &v), SC_ERR_INVALID, c, "sc_fetch", "ttl_ms");
    v = SENT;
    fo.grace_ms = UINT64_MAX - 1;
    EXPECT(sc_fetch_ex(c, "k", &fo, load_one, NULL, &v, &info), SC_ERR_INVALID, c, "sc_fetch_ex", "grace_ms");
    sc_fetch_opts_init(&fo);
    fo.ttl_ms = UINT64_MAX;
    EXPECT(sc_fetch_ex(c, "k", &fo, load_one, NULL, &v, &info), SC_ERR_INVALID, c, "sc_fetch_ex", "ttl_ms");
    sc_fetch_opts_init(&fo);
    fo.ntags = 2;
    EXPECT(sc_fetch_ex(c, "k", &fo, load_one, NULL, &v, &info), SC_ERR_INVALID, c, "sc_fetch_ex", "tags");
    EXPECT(sc_fetch_ex(c, "k", NULL, NULL, NULL, &v, &info), SC_ERR_INVALID, c, "sc_fetch_ex", "loader");
    EXPECT(sc_fetch_ex(c, "k", NULL, load_one, NULL, NULL, &info), SC_ERR_INVALID, c, "sc_fetch_ex", "out");

    const char *keys[2] = {"a", "b"};
    sc_value *outs[2] = {SENT, SENT};
    EXPECT(sc_get_many(c, keys, 0, outs), SC_OK, c, "sc_get_many", NULL);
    EXPECT(sc_get_many(c, NULL, 0, NULL), SC_OK, c, "sc_get_many", NULL);
    EXPECT(sc_get_many(c, NULL, 2, outs), SC_ERR_INVALID, c, "sc_get_many", "keys");
    EXPECT(sc_get_many(c, keys, 2, NULL), SC_ERR_INVALID, c, "sc_get_many", "out");
    EXPECT(sc_fetch_batch(c, keys, 0, 0, load_many, NULL, outs), SC_OK, c, "sc_fetch_batch", NULL);
    EXPECT(sc_fetch_batch(c, NULL, 2, 0, load_many, NULL, outs), SC_ERR_INVALID, c, "sc_fetch_batch", "keys");
    EXPECT(sc_fetch_batch(c, keys, 2, 0, load_many, NULL, NULL), SC_ERR_INVALID, c, "sc_fetch_batch", "out");
    EXPECT(sc_fetch_batch(c, keys, 2, 0, NULL, NULL, outs), SC_ERR_INVALID, c, "sc_fetch_batch", "loader");
    EXPECT(sc_fetch_batch(c, keys, 2, UINT64_MAX, load_many, NULL, outs), SC_ERR_INVALID, c, "sc_fetch_batch",
           "ttl_ms");
    /* (out has n slots, as the call's contract says; batch_over_limit_clears_out
     * looks at them) */
    const char **many = calloc(SC_FETCH_BATCH_MAX + 1, sizeof *many);
    sc_value **mout = calloc(SC_FETCH_BATCH_MAX + 1, sizeof *mout);
    EXPECT(sc_fetch_batch(c, many, SC_FETCH_BATCH_MAX + 1, 0, load_many, NULL, mout), SC_ERR_INVALID, c,
           "sc_fetch_batch", "SC_FETCH_BATCH_MAX");
    free(many);
    free(mout);
    EXPECT(sc_get_many(c, keys, ((size_t)1 << 20) + 1, NULL), SC_ERR_INVALID, c, "sc_get_many", NULL);

    /* nothing reached Redis or the local tier */
    char *r = test_redis_value(ns, "k");
    if (strcmp(r, "<none>"))
        note("Redis holds k = %s", r);
    free(r);
    if (test_held(c, "k"))
        note("local tier holds k");
}

static void sweep_null_cache(void)
{
    sc_value *v = SENT;
    char buf[8] = "zzz";
    EXPECT(sc_flush_behind(NULL, 0), SC_ERR_INVALID, NULL, "sc_flush_behind", "cache");
    EXPECT(sc_clear(NULL), SC_ERR_INVALID, NULL, "sc_clear", "cache");
    EXPECT(sc_invalidate_tag(NULL, "t"), SC_ERR_INVALID, NULL, "sc_invalidate_tag", "cache");
    if (strcmp(sc_pod_id(NULL), ""))
        note("sc_pod_id(NULL) not \"\"");
    sc_stats st;
    memset(&st, 0xff, sizeof st);
    sc_stats_get(NULL, &st);
    if (st.local_hits || st.synced)
        note("sc_stats_get(NULL) not zeroed");
    sc_stats_get(NULL, NULL);
    if (sc_metrics_text(NULL, buf, sizeof buf) != 0 || buf[0])
        note("sc_metrics_text(NULL) not \"\"");
    if (sc_metrics_text(NULL, NULL, 0) != 0)
        note("sc_metrics_text(NULL, NULL, 0) not 0");
    sc_load_stats ls;
    memset(&ls, 0xff, sizeof ls);
    sc_load_stats_get(NULL, SC_WINDOW_TOTAL, &ls);
    if (ls.hits || ls.hit_rate != 0)
        note("sc_load_stats_get(NULL) not zeroed");
    sc_load_stats_get(NULL, SC_WINDOW_TOTAL, NULL);
    sc_fetch_opts_init(NULL);
    sc_options_init(NULL);
    sc_loaded_set(NULL, "x", 1);
    sc_loaded_error(NULL, "x");
    if (sc_value_data(NULL) || sc_value_size(NULL) || sc_value_version(NULL) || sc_value_ref(NULL))
        note("sc_value_*(NULL) not NULL / 0");
    sc_value_release(NULL);
    sc_close(NULL);
    if (!sc_strerror((sc_status)999) || !sc_strerror((sc_status)-1))
        note("sc_strerror of unknown code is NULL");
    v = SENT;
    EXPECT(sc_open(NULL, (sc_cache **)&v), SC_ERR_INVALID, NULL, "options", NULL);
    if (v)
        note("sc_open(NULL, &out): out not NULL");
    sc_options o = test_options(NS("nullopen"), NULL);
    EXPECT(sc_open(&o, NULL), SC_ERR_INVALID, NULL, "sc_open", "out");
}

START_TEST(every_call_refuses_bad_input)
{
    g_fail[0] = '\0';
    sc_cache *w = test_pod(NS("in_w"), "w");
    sc_options o = test_options(NS("in_r"), "r");
    o.role = SC_ROLE_READER;
    sc_cache *rd = test_open(&o);
    o = test_options(NS("in_p"), "p");
    o.partitions = 4;
    sc_cache *p = test_open(&o);

    char *huge = malloc((1u << 20) + 1);
    memset(huge, 'k', 1u << 20);
    huge[1u << 20] = '\0';
    sweep_keys(NULL, NULL, "k", SC_ERR_INVALID, "cache", 0);
    o = test_options(NS("in_pr"), "pr");
    o.partitions = 3;
    o.role = SC_ROLE_READER;
    sc_cache *pr = test_open(&o);
    o = test_options(NS("in_rw"), "rw");
    o.role = SC_ROLE_READER;
    o.reader_can_set_to_redis = 1;
    sc_cache *rw = test_open(&o);
    sc_cache *pods[5] = {w, rd, p, pr, rw};
    for (int i = 0; i < 5; i++) {
        sc_cache *c = pods[i];
        sweep_keys(c, c, NULL, SC_ERR_INVALID, "key", c == rd || c == pr);
        sweep_keys(c, c, "", SC_ERR_INVALID, "key", c == rd || c == pr);
        sweep_keys(c, c, huge, SC_ERR_TOO_LARGE, "max_key_bytes", c == rd || c == pr);
    }
    sweep_args(w, NS("in_w"));
    sweep_args(p, NS("in_p"));
    sweep_args(rw, NS("in_rw"));
    sweep_null_cache();
    free(huge);
    sc_close(w);
    sc_close(rd);
    sc_close(p);
    sc_close(pr);
    sc_close(rw);
    ck_assert_msg(g_fail[0] == '\0', "%s", g_fail);
}
END_TEST

static sc_status load_null_value(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)ud;
    sc_loaded_set(slot, NULL, 5);
    return SC_OK;
}

static sc_status load_null_values(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    (void)keys;
    (void)ud;
    for (size_t i = 0; i < n; i++)
        sc_loaded_set(slots[i], NULL, 3);
    return SC_OK;
}

/* A loader that hands sc_loaded_set a NULL value with a length passed a bad
 * argument, as sc_set(c, k, NULL, 5, 0) does: SC_ERR_INVALID with a message
 * saying so, nothing stored. It was reported as SC_ERR_TOO_LARGE, "the
 * loader's value is 5 bytes, over max_value_bytes (67108864)". */
START_TEST(loader_null_value_is_invalid)
{
    sc_cache *w = test_pod(NS("in_loadnull"), "w");
    sc_value *v = SENT;
    sc_status s = sc_fetch(w, "k", 0, load_null_value, NULL, &v);
    ck_assert_msg(s == SC_ERR_INVALID, "sc_fetch: %s (%s)", sc_strerror(s), sc_errmsg(w));
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(sc_errmsg(w), "sc_fetch") && strstr(sc_errmsg(w), "NULL"), "%s", sc_errmsg(w));
    const char *keys[3] = {"b1", "b2", "b1"};
    sc_value *outs[3] = {SENT, SENT, SENT};
    s = sc_fetch_batch(w, keys, 3, 0, load_null_values, NULL, outs);
    ck_assert_msg(s == SC_ERR_INVALID, "sc_fetch_batch: %s (%s)", sc_strerror(s), sc_errmsg(w));
    ck_assert_msg(strstr(sc_errmsg(w), "sc_fetch_batch") && strstr(sc_errmsg(w), "NULL"), "%s", sc_errmsg(w));
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_null(outs[i]);
    const char *stored[] = {"k", "b1", "b2"};
    for (int i = 0; i < 3; i++) {
        char *r = test_redis_value(NS("in_loadnull"), stored[i]);
        ck_assert_msg(strcmp(r, "<none>") == 0, "%s: %s", stored[i], r);
        free(r);
        ck_assert(!test_held(w, stored[i]));
    }
    /* The locks went back at once: a good loader loads now. */
    v = NULL;
    ck_assert_int_eq(sc_fetch(w, "k", 0, load_one, NULL, &v), SC_OK);
    ck_assert_str_eq(sc_value_data(v), "L");
    sc_value_release(v);
    sc_close(w);
}
END_TEST

/* A count over SC_FETCH_BATCH_MAX is refused, and the header's "else the
 * first failure, with every out[i] NULL" holds for the slots it can vouch
 * for, as sc_get_many does for its own limit: out was left as it was, so a
 * caller that releases out[i] after any failure released garbage. */
START_TEST(batch_over_limit_clears_out)
{
    sc_cache *w = test_pod(NS("in_batchmax"), "w");
    size_t n = SC_FETCH_BATCH_MAX + 1;
    const char **keys = calloc(n, sizeof *keys);
    sc_value **out = malloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        keys[i] = "k";
        out[i] = SENT;
    }
    sc_status s = sc_fetch_batch(w, keys, n, 0, load_many, NULL, out);
    ck_assert_int_eq(s, SC_ERR_INVALID);
    ck_assert_msg(strstr(sc_errmsg(w), "sc_fetch_batch") && strstr(sc_errmsg(w), "SC_FETCH_BATCH_MAX"), "%s",
                  sc_errmsg(w));
    for (size_t i = 0; i < SC_FETCH_BATCH_MAX; i++)
        ck_assert_msg(out[i] == NULL, "out[%zu] not NULL", i);
    /* sc_get_many: the same at its limit (2^20). */
    size_t gn = ((size_t)1 << 20) + 1;
    const char **gkeys = malloc(gn * sizeof *gkeys);
    sc_value **gout = malloc(gn * sizeof *gout);
    for (size_t i = 0; i < gn; i++) {
        gkeys[i] = "k";
        gout[i] = SENT;
    }
    ck_assert_int_eq(sc_get_many(w, gkeys, gn, gout), SC_ERR_INVALID);
    for (size_t i = 0; i < gn - 1; i++)
        ck_assert_msg(gout[i] == NULL, "sc_get_many out[%zu] not NULL", i);
    char *r = test_redis_value(NS("in_batchmax"), "k");
    ck_assert_str_eq(r, "<none>");
    free(r);
    free(gkeys);
    free(gout);
    free(keys);
    free(out);
    sc_close(w);
}
END_TEST

struct failer {
    sc_cache *c;
    char msg[512];
    char null_msg[512];
};

static void *fail_on_thread(void *arg)
{
    struct failer *f = arg;
    sc_value *v;
    sc_get(f->c, NULL, &v);
    snprintf(f->msg, sizeof f->msg, "%s", sc_errmsg(f->c));
    snprintf(f->null_msg, sizeof f->null_msg, "%s", sc_errmsg(NULL));
    return NULL;
}

/* sc_errmsg is this thread's last failure on that cache (read, as the
 * header says, before the thread's next call): another thread's failure on
 * the same cache neither shows nor overwrites it; another cache, or NULL
 * after a failure on a cache, has nothing to say. */
START_TEST(errmsg_is_per_thread_and_per_cache)
{
    sc_options o = test_options(NS("in_errmsg"), NULL);
    o.redis_port = 0;
    sc_cache *bad = (sc_cache *)&o;
    ck_assert_int_eq(sc_open(&o, &bad), SC_ERR_INVALID);
    ck_assert_ptr_null(bad);
    ck_assert_msg(strstr(sc_errmsg(NULL), "redis_port"), "%s", sc_errmsg(NULL));

    sc_cache *a = test_pod(NS("in_errmsg"), "a");
    sc_cache *b = test_pod(NS("in_errmsg"), "b");
    sc_value *v;
    ck_assert_int_eq(sc_get(a, "", &v), SC_ERR_INVALID);
    ck_assert_str_eq(sc_errmsg(a), "sc_get: key is empty");
    ck_assert_str_eq(sc_errmsg(b), "");
    ck_assert_str_eq(sc_errmsg(NULL), "");

    struct failer f = {.c = a};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, fail_on_thread, &f), 0);
    pthread_join(th, NULL);
    ck_assert_str_eq(f.msg, "sc_get: key is NULL");
    ck_assert_str_eq(f.null_msg, "");
    ck_assert_str_eq(sc_errmsg(a), "sc_get: key is empty");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* The pair of pods of tightest_event_options_carry_every_event: options
 * with the smallest max_event_bytes sc_open accepts for this key and value
 * bound, a pod id of 256 control bytes (6 bytes each in JSON). */
static sc_options tight_options(const char *ns, sc_wire_format fmt, const char *pod_id, size_t meb)
{
    sc_options o = test_options(ns, pod_id);
    o.wire_format = fmt;
    o.max_key_bytes = 1024;
    o.event_value_max = 8192;
    o.max_event_bytes = meb;
    o.redis_tracking = 0; /* the event stream alone keeps the copies */
    return o;
}

/* sc_open checks that event_value_max leaves room for the event in
 * max_event_bytes; the check budgeted the key's raw bytes and 512 bytes for
 * the rest, but an event also carries the sender's pod id (up to 256
 * bytes), the namespace, instance, epoch and mac, and JSON escapes a
 * control byte of a key or pod id as 6. With the tightest options sc_open
 * accepted, a write of a legal key was an event every other pod dropped as
 * too large: a gap, and each of them flushed its whole local tier. */
START_TEST(tightest_event_options_carry_every_event)
{
    const sc_wire_format fmts[2] = {SC_WIRE_MSGPACK, SC_WIRE_JSON};
    char pod_id[257];
    memset(pod_id, 1, 256);
    pod_id[256] = '\0';
    char *key = malloc(1025);
    memset(key, 1, 1024);
    key[1024] = '\0';
    char *val = calloc(1, 8192);
    for (int f = 0; f < 2; f++) {
        /* A long namespace (at most 256 bytes): every event carries it. */
        char ns[256];
        snprintf(ns, sizeof ns, "%s", f ? NS("in_tight_json_") : NS("in_tight_mp_"));
        memset(ns + strlen(ns), 'n', 200 - strlen(ns));
        ns[200] = '\0';
        /* The smallest max_event_bytes accepted (options are checked before
         * any connection; an accepted one opens a pod, closed at once). */
        size_t lo = 4096, hi = 1 << 20;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            sc_options o = tight_options(ns, fmts[f], pod_id, mid);
            sc_cache *c = NULL;
            sc_status s = sc_open(&o, &c);
            ck_assert_msg(s == SC_OK || s == SC_ERR_INVALID, "%s", sc_errmsg(NULL));
            if (s == SC_OK)
                hi = mid;
            else
                lo = mid + 1;
            sc_close(c);
        }
        sc_options o = tight_options(ns, fmts[f], pod_id, lo);
        sc_cache *a = test_open(&o);
        o = tight_options(ns, fmts[f], "b", lo);
        sc_cache *b = test_open(&o);
        ck_assert_int_eq(sc_set(b, "other", "o", 1, 0), SC_OK);
        ck_assert_int_eq(sc_set(a, key, val, 8192, 0), SC_OK);
        ck_assert_int_eq(sc_set_invalidate(a, key, val, 8192, 0), SC_OK);
        ck_assert_int_eq(sc_invalidate_tag(a, key), SC_OK);
        ck_assert_int_eq(sc_delete(a, key), SC_OK);
        TEST_WAIT_APPLIED(b, ns, 3000);
        sc_stats st = test_stats(b);
        ck_assert_msg(st.events_malformed == 0 && st.flushes == 0,
                      "%s, max_event_bytes %zu: pod b dropped %llu events, flushed %llu times",
                      f ? "json" : "msgpack", lo, (unsigned long long)st.events_malformed,
                      (unsigned long long)st.flushes);
        ck_assert(test_held(b, "other"));
        sc_close(a);
        sc_close(b);
    }
    free(key);
    free(val);
}
END_TEST

static Suite *inputs_suite(void)
{
    Suite *s = suite_create("inputs");
    TCase *tc = tcase_create("inputs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_call_refuses_bad_input);
    tcase_add_test(tc, loader_null_value_is_invalid);
    tcase_add_test(tc, batch_over_limit_clears_out);
    tcase_add_test(tc, errmsg_is_per_thread_and_per_cache);
    tcase_add_test(tc, tightest_event_options_carry_every_event);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(inputs_suite(), NULL);
}
