/* test/check_read.c: sc_get_with and sc_get_copy against a private
 * redis-server: local hits lent without a reference, misses read through
 * Redis like sc_get, counters, and bad arguments; and the pins that
 * sc_get, sc_get_ex and sc_fetch answer a local hit with. */
#include <pthread.h>
#include <stdatomic.h>

#include "pods.h"

sc_test_redis g_redis;

#define NS(name) "r_" name

struct seen {
    char buf[256];
    size_t len;
    uint64_t version;
    int calls;
};

static void seen_fn(const void *data, size_t len, uint64_t version, void *ud)
{
    struct seen *s = ud;
    s->calls++;
    s->len = len;
    s->version = version;
    memcpy(s->buf, data, len < sizeof s->buf - 1 ? len : sizeof s->buf - 1);
    s->buf[len < sizeof s->buf - 1 ? len : sizeof s->buf - 1] = '\0';
    ck_assert_int_eq(((const char *)data)[len], '\0');
}

START_TEST(get_with_local_and_remote)
{
    sc_cache *a = test_pod(NS("with"), NULL);
    sc_cache *b = test_pod(NS("with"), NULL);
    ck_assert_int_eq(sc_set(a, "k", "hello", 5, 0), SC_OK);
    sc_value *v;
    ck_assert_int_eq(sc_get(a, "k", &v), SC_OK);
    uint64_t version = sc_value_version(v);
    sc_value_release(v);

    /* On the writer: a local hit. */
    sc_stats before = test_stats(a);
    struct seen s = {0};
    ck_assert_int_eq(sc_get_with(a, "k", seen_fn, &s), SC_OK);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_str_eq(s.buf, "hello");
    ck_assert_uint_eq(s.version, version);
    sc_stats after = test_stats(a);
    ck_assert_uint_eq(after.local_hits, before.local_hits + 1);
    ck_assert_uint_eq(after.remote_hits, before.remote_hits);

    /* On the other pod: either its copy from the event or a Redis read;
     * both hand the same bytes and version. */
    struct seen t = {0};
    ck_assert_int_eq(sc_get_with(b, "k", seen_fn, &t), SC_OK);
    ck_assert_int_eq(t.calls, 1);
    ck_assert_str_eq(t.buf, "hello");
    ck_assert_uint_eq(t.version, version);

    /* A key no tier has: fn is not called, one miss is counted. */
    before = test_stats(a);
    ck_assert_int_eq(sc_get_with(a, "absent", seen_fn, &s), SC_NOT_FOUND);
    ck_assert_int_eq(s.calls, 1);
    after = test_stats(a);
    ck_assert_uint_eq(after.local_misses, before.local_misses + 1);
    ck_assert_uint_eq(after.remote_misses, before.remote_misses + 1);

    ck_assert_int_eq(sc_get_with(a, "k", NULL, NULL), SC_ERR_INVALID);
    ck_assert_int_eq(sc_get_with(a, NULL, seen_fn, &s), SC_ERR_INVALID);
    ck_assert_int_eq(sc_get_with(a, "", seen_fn, &s), SC_ERR_INVALID);
    ck_assert_int_eq(sc_get_with(NULL, "k", seen_fn, &s), SC_ERR_INVALID);
    ck_assert_int_eq(s.calls, 1);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* sc_get's hit path (one call into the store, lib/ops.c): a local hit and a
 * miss are each counted once, and every bad argument gets its message. */
START_TEST(get_counts_once_and_names_bad_arguments)
{
    sc_options o = test_options(NS("get"), NULL);
    o.max_key_bytes = 8;
    sc_cache *a = test_open(&o);
    ck_assert_int_eq(sc_set(a, "k", "hello", 5, 0), SC_OK);
    sc_stats before = test_stats(a);
    sc_value *v = NULL;
    ck_assert_int_eq(sc_get(a, "k", &v), SC_OK);
    ck_assert_int_eq(memcmp(sc_value_data(v), "hello", 5), 0);
    sc_value_release(v);
    sc_stats after = test_stats(a);
    ck_assert_uint_eq(after.local_hits, before.local_hits + 1);
    ck_assert_uint_eq(after.local_misses, before.local_misses);

    before = after;
    v = (sc_value *)&o;
    ck_assert_int_eq(sc_get(a, "absent", &v), SC_NOT_FOUND);
    ck_assert_ptr_null(v);
    after = test_stats(a);
    ck_assert_uint_eq(after.local_hits, before.local_hits);
    ck_assert_uint_eq(after.local_misses, before.local_misses + 1);
    ck_assert_uint_eq(after.remote_misses, before.remote_misses + 1);

    const struct {
        const char *key;
        sc_status status;
        const char *msg;
    } bad[] = {{NULL, SC_ERR_INVALID, "sc_get: key is NULL"},
               {"", SC_ERR_INVALID, "sc_get: key is empty"},
               {"123456789", SC_ERR_TOO_LARGE, "sc_get: key longer than max_key_bytes (8)"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = (sc_value *)&o;
        ck_assert_int_eq(sc_get(a, bad[i].key, &v), bad[i].status);
        ck_assert_ptr_null(v);
        ck_assert_str_eq(sc_errmsg(a), bad[i].msg);
    }
    ck_assert_int_eq(sc_get(a, "k", NULL), SC_ERR_INVALID);
    ck_assert_str_eq(sc_errmsg(a), "sc_get: out is NULL");
    ck_assert_int_eq(sc_get(NULL, "k", &v), SC_ERR_INVALID);
    ck_assert_ptr_null(v);
    after = test_stats(a);
    ck_assert_uint_eq(after.local_hits, before.local_hits);
    ck_assert_uint_eq(after.local_misses, before.local_misses + 1);
    sc_close(a);
}
END_TEST

START_TEST(get_with_reads_redis_on_a_local_miss)
{
    sc_options o = test_options(NS("miss"), NULL);
    o.local_max_entries = 1; /* the second key pushes the first out */
    sc_cache *a = test_open(&o);
    ck_assert_int_eq(sc_set(a, "one", "1", 1, 0), SC_OK);
    ck_assert_int_eq(sc_set(a, "two", "22", 2, 0), SC_OK);
    sc_stats before = test_stats(a);
    struct seen s = {0};
    ck_assert_int_eq(sc_get_with(a, "one", seen_fn, &s), SC_OK);
    ck_assert_str_eq(s.buf, "1");
    sc_stats after = test_stats(a);
    ck_assert_uint_eq(after.remote_hits, before.remote_hits + 1);
    ck_assert_uint_eq(after.local_misses, before.local_misses + 1);
    sc_close(a);
}
END_TEST

START_TEST(get_copy)
{
    sc_cache *a = test_pod(NS("copy"), NULL);
    ck_assert_int_eq(sc_set(a, "k", "0123456789", 10, 0), SC_OK);
    char buf[16];
    memset(buf, '#', sizeof buf);
    size_t len = 0;
    uint64_t version = 0;
    ck_assert_int_eq(sc_get_copy(a, "k", buf, sizeof buf, &len, &version), SC_OK);
    ck_assert_uint_eq(len, 10);
    ck_assert_uint_gt(version, 0);
    ck_assert_int_eq(memcmp(buf, "0123456789", 10), 0);
    ck_assert_int_eq(buf[10], '#'); /* no NUL added */

    /* Too small: buf untouched, the size needed reported. */
    char small[4];
    memset(small, '#', sizeof small);
    len = 0;
    ck_assert_int_eq(sc_get_copy(a, "k", small, sizeof small, &len, NULL), SC_ERR_TOO_LARGE);
    ck_assert_uint_eq(len, 10);
    ck_assert_int_eq(memcmp(small, "####", 4), 0);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(a), "does not fit"));
    /* cap 0 with no buffer asks for the size. */
    ck_assert_int_eq(sc_get_copy(a, "k", NULL, 0, &len, NULL), SC_ERR_TOO_LARGE);
    ck_assert_uint_eq(len, 10);
    /* An empty value fits anywhere. */
    ck_assert_int_eq(sc_set(a, "e", "", 0, 0), SC_OK);
    ck_assert_int_eq(sc_get_copy(a, "e", NULL, 0, &len, &version), SC_OK);
    ck_assert_uint_eq(len, 0);

    /* Keys past the 32 bytes the fast length scan covers, and too long. */
    char longkey[2048];
    memset(longkey, 'L', 100);
    longkey[100] = '\0';
    ck_assert_int_eq(sc_set(a, longkey, "long", 4, 0), SC_OK);
    ck_assert_int_eq(sc_get_copy(a, longkey, buf, sizeof buf, &len, NULL), SC_OK);
    ck_assert_uint_eq(len, 4);
    memset(longkey, 'L', 1500);
    longkey[1500] = '\0'; /* max_key_bytes is 1024 by default */
    ck_assert_int_eq(sc_get_copy(a, longkey, buf, sizeof buf, &len, NULL), SC_ERR_TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(a), "max_key_bytes"));
    len = 99; /* a failed read leaves no size from an earlier call behind */
    ck_assert_int_eq(sc_get_copy(a, "absent", buf, sizeof buf, &len, NULL), SC_NOT_FOUND);
    ck_assert_uint_eq(len, 0);
    len = 99;
    ck_assert_int_eq(sc_get_copy(a, longkey, buf, sizeof buf, &len, NULL), SC_ERR_TOO_LARGE);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(sc_get_copy(a, "k", buf, sizeof buf, NULL, NULL), SC_ERR_INVALID);
    ck_assert_int_eq(sc_get_copy(a, "k", NULL, 4, &len, NULL), SC_ERR_INVALID);
    sc_close(a);
}
END_TEST

/* Two threads read while a third keeps rewriting the keys: every lent value
 * is whole (run under TSan and ASan too). */
struct rw {
    sc_cache *c;
    atomic_int stop;
    atomic_ulong bad, hits;
};

static void check_fn(const void *data, size_t len, uint64_t version, void *ud)
{
    (void)version;
    struct rw *rw = ud;
    const char *p = data;
    /* Values are one repeated letter. */
    for (size_t i = 1; i < len; i++)
        if (p[i] != p[0]) {
            atomic_fetch_add(&rw->bad, 1);
            return;
        }
}

static void *rw_reader(void *arg)
{
    struct rw *rw = arg;
    char key[16], buf[64];
    unsigned i = 0;
    while (!atomic_load(&rw->stop)) {
        snprintf(key, sizeof key, "k%u", i++ % 32);
        size_t len;
        sc_status s = i % 2 ? sc_get_with(rw->c, key, check_fn, rw) : sc_get_copy(rw->c, key, buf, sizeof buf, &len, NULL);
        if (s == SC_OK && i % 2 == 0)
            check_fn(buf, len, 0, rw);
        else if (s != SC_OK && s != SC_NOT_FOUND)
            atomic_fetch_add(&rw->bad, 1);
        if (s == SC_OK)
            atomic_fetch_add(&rw->hits, 1);
    }
    return NULL;
}

START_TEST(readers_while_writing)
{
    sc_options o = test_options(NS("rw"), NULL);
    o.local_max_entries = 16; /* evictions too */
    struct rw rw = {.c = test_open(&o)};
    atomic_init(&rw.stop, 0);
    atomic_init(&rw.bad, 0);
    atomic_init(&rw.hits, 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, rw_reader, &rw), 0);
    char key[16], val[48];
    for (int n = 0; n < 600; n++) {
        snprintf(key, sizeof key, "k%d", n % 32);
        size_t len = 1 + (size_t)(n % 40);
        memset(val, 'a' + n % 26, len);
        ck_assert_int_eq(sc_set(rw.c, key, val, len, 0), SC_OK);
    }
    /* Values exist only once writing began, so these hits ran beside it. */
    unsigned long hits_while_writing = atomic_load(&rw.hits);
    atomic_store(&rw.stop, 1);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_uint_eq(atomic_load(&rw.bad), 0);
    ck_assert_uint_gt(hits_while_writing, 0);
    sc_close(rw.c);
}
END_TEST

static sc_status load_fails(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)slot;
    (void)ud;
    ck_abort_msg("the loader ran on a local hit");
    return SC_ERR_INVALID;
}

static void expect(const sc_value *v, const char *data, uint64_t version)
{
    ck_assert_uint_eq(sc_value_size(v), strlen(data));
    ck_assert_str_eq(sc_value_data(v), data);
    ck_assert_uint_eq(sc_value_version(v), version);
}

static void *release_elsewhere(void *v)
{
    sc_value_release(v);
    return NULL;
}

/* 300 sets of fresh keys f0..f299: a local tier bounded well below that
 * evicts and reclaims many times over. */
static void fill(sc_cache *c)
{
    char key[16];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "f%d", i);
        ck_assert_int_eq(sc_set(c, key, "fill", 4, 0), SC_OK);
    }
}

/* sc_get, sc_get_ex and sc_fetch answer a local hit with a pin (a handle
 * to the value, not the value: lib/ops.c, local/reclaim.c). The values
 * outlive their entries' replacement, eviction and the pod itself, and are
 * released on any thread. */
START_TEST(local_hits_pin_and_outlive)
{
    sc_options o = test_options(NS("pin"), NULL);
    o.local_max_entries = 16;
    sc_cache *c = test_open(&o);
    ck_assert_int_eq(sc_set(c, "k", "one", 3, 0), SC_OK);
    sc_value *got, *got_ex, *fetched;
    sc_get_info info;
    ck_assert_int_eq(sc_get(c, "k", &got), SC_OK);
    ck_assert_int_eq(sc_get_ex(c, "k", &got_ex, &info), SC_OK);
    ck_assert_int_eq(info.source, SC_SOURCE_LOCAL);
    ck_assert_int_eq(sc_fetch(c, "k", 0, load_fails, NULL, &fetched), SC_OK);
    ck_assert((uintptr_t)got & 1);
    ck_assert((uintptr_t)got_ex & 1);
    ck_assert((uintptr_t)fetched & 1);
    uint64_t one = sc_value_version(got);
    ck_assert_ptr_eq(sc_value_ref(got), got);

    ck_assert_int_eq(sc_set(c, "k", "two", 3, 0), SC_OK);
    fill(c);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, release_elsewhere, got), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    expect(got, "one", one); /* the hold sc_value_ref took */
    expect(got_ex, "one", one);
    expect(fetched, "one", one);
    sc_value_release(got);
    sc_value_release(got_ex);
    sc_value_release(fetched);

    sc_value *last;
    ck_assert_int_eq(sc_get(c, "f299", &last), SC_OK);
    ck_assert((uintptr_t)last & 1);
    uint64_t version = sc_value_version(last);
    sc_close(c);
    expect(last, "fill", version);
    sc_value_release(last);
}
END_TEST

/* sc_get_many's local hits are pins too, while the thread has pins free
 * (16), and counted references after that; every value outlives its
 * entry's replacement and eviction. */
START_TEST(get_many_hits_pin_and_outlive)
{
    sc_options o = test_options(NS("pinmany"), NULL);
    o.local_max_entries = 64;
    sc_cache *c = test_open(&o);
    enum { N = 20 };
    char names[N][16], vals[N][16];
    const char *keys[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "m%d", i);
        snprintf(vals[i], sizeof vals[i], "value %d", i);
        keys[i] = names[i];
        ck_assert_int_eq(sc_set(c, keys[i], vals[i], strlen(vals[i]), 0), SC_OK);
    }
    uint64_t versions[N];
    sc_value *out[N];
    ck_assert_int_eq(sc_get_many(c, keys, N, out), SC_OK);
    int pins = 0;
    for (int i = 0; i < N; i++) {
        pins += (int)((uintptr_t)out[i] & 1);
        versions[i] = sc_value_version(out[i]);
        expect(out[i], vals[i], versions[i]);
    }
    ck_assert_int_eq(pins, 16);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(sc_set(c, keys[i], "new", 3, 0), SC_OK);
    fill(c);
    for (int i = 0; i < N; i++) {
        expect(out[i], vals[i], versions[i]);
        if (i % 2) {
            sc_value_release(out[i]);
        } else {
            pthread_t t;
            ck_assert_int_eq(pthread_create(&t, NULL, release_elsewhere, out[i]), 0);
            ck_assert_int_eq(pthread_join(t, NULL), 0);
        }
    }
    sc_close(c);
}
END_TEST

static sc_status load_batch_fails(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    (void)keys;
    (void)n;
    (void)slots;
    (void)ud;
    ck_abort_msg("the batch loader ran on local hits");
    return SC_ERR_INVALID;
}

/* sc_fetch_batch's local hits are pins as well; a key asked twice gets the
 * same pin twice (two holds), and each hold is released on its own. */
START_TEST(fetch_batch_hits_pin_and_outlive)
{
    sc_options o = test_options(NS("pinbatch"), NULL);
    o.local_max_entries = 64;
    sc_cache *c = test_open(&o);
    ck_assert_int_eq(sc_set(c, "a", "first", 5, 0), SC_OK);
    ck_assert_int_eq(sc_set(c, "b", "second", 6, 0), SC_OK);
    const char *keys[] = {"a", "b", "a"};
    sc_value *out[3];
    ck_assert_int_eq(sc_fetch_batch(c, keys, 3, 0, load_batch_fails, NULL, out), SC_OK);
    for (int i = 0; i < 3; i++)
        ck_assert((uintptr_t)out[i] & 1);
    ck_assert_ptr_eq(out[0], out[2]);
    uint64_t va = sc_value_version(out[0]), vb = sc_value_version(out[1]);
    ck_assert_int_eq(sc_set(c, "a", "new", 3, 0), SC_OK);
    ck_assert_int_eq(sc_set(c, "b", "new", 3, 0), SC_OK);
    fill(c);
    expect(out[0], "first", va);
    expect(out[1], "second", vb);
    sc_value_release(out[0]);
    expect(out[2], "first", va); /* the other hold */
    sc_value_release(out[2]);
    sc_value_release(out[1]);
    sc_close(c);
}
END_TEST

/* A hook slower than the key's TTL: every call counts, and keys named
 * "slow*" take 300 ms (the thread descheduled between Redis' answer and the
 * install, made certain). */
static atomic_int slow_hook_calls;

static int slow_hook(const char *key, const void *val, size_t len, uint64_t version, void **out, size_t *out_len,
                     void *ud)
{
    (void)val;
    (void)len;
    (void)version;
    (void)out;
    (void)out_len;
    (void)ud;
    if (strncmp(key, "slow", 4) == 0)
        test_sleep_ms(300);
    atomic_fetch_add(&slow_hook_calls, 1);
    return 0;
}

/* key is gone from Redis (its TTL ended) and pod c does not answer it from
 * a local copy either; what names the path that installed the copy. */
static void assert_expired_on(sc_cache *c, const char *key, const char *what)
{
    char *in_redis = test_redis_value(NS("ttlfrom"), key);
    ck_assert_str_eq(in_redis, "<none>");
    free(in_redis);
    sc_value *v = NULL;
    sc_status s = sc_get(c, key, &v);
    sc_value_release(v);
    ck_assert_msg(s == SC_NOT_FOUND, "%s's copy outlived the key: sc_get answered %s", what, sc_strerror(s));
}

/* A local copy never outlives its key in Redis: its TTL counts from the
 * Redis read (or the event) that reported it, not from its install, so
 * time spent in between (here an on_set_local hook slower than the TTL)
 * comes off it. Tracking is off, so only the copy's own TTL can end it. */
START_TEST(local_copy_never_outlives_its_redis_ttl)
{
    sc_options o = test_options(NS("ttlfrom"), NULL);
    o.redis_tracking = 0;
    o.on_set_local = slow_hook;
    sc_cache *a = test_open(&o);
    sc_options ob = test_options(NS("ttlfrom"), NULL);
    ob.redis_tracking = 0;
    sc_cache *b = test_open(&ob);

    /* A Redis read: b's invalidate makes a read Redis, 100 ms left. */
    ck_assert_int_eq(sc_set_invalidate(b, "slow-read", "v", 1, 100), SC_OK);
    sc_value *v = NULL;
    ck_assert_int_eq(sc_get(a, "slow-read", &v), SC_OK); /* read in time */
    sc_value_release(v);
    assert_expired_on(a, "slow-read", "a Redis read"); /* its TTL ended in the hook */

    /* An event: b's set, 100 ms left, installed after the hook. */
    int calls = atomic_load(&slow_hook_calls);
    ck_assert_int_eq(sc_set(b, "slow-event", "w", 1, 100), SC_OK);
    while (atomic_load(&slow_hook_calls) == calls)
        test_sleep_ms(5);
    assert_expired_on(a, "slow-event", "an event");

    /* sc_fetch's read of a value Redis holds. */
    ck_assert_int_eq(sc_set_invalidate(b, "slow-fetch", "x", 1, 100), SC_OK);
    v = NULL;
    ck_assert_int_eq(sc_fetch(a, "slow-fetch", 0, load_fails, NULL, &v), SC_OK);
    sc_value_release(v);
    assert_expired_on(a, "slow-fetch", "a fetch");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* Each local shard bounds its share of local_max_bytes (here 1 MiB: 4 MiB
 * over four shards). An item within the share is kept and hit; a larger
 * one is not kept, and a plain reader's sc_set of it says why, naming the
 * share (it said "does not fit in local_max_bytes", which it did). */
START_TEST(item_above_a_shard_share_is_refused_with_the_share_named)
{
    enum { SMALL = 900 << 10, BIG = 2 << 20 };
    char *big = calloc(1, BIG);
    ck_assert_ptr_nonnull(big);
    sc_options o = test_options(NS("share"), NULL);
    o.local_shards = 4;
    o.local_max_bytes = 4 << 20;
    sc_cache *w = test_open(&o);
    ck_assert_int_eq(sc_set(w, "small", big, SMALL, 0), SC_OK);
    ck_assert_msg(test_held(w, "small"), "a 900 KiB value under a 1 MiB shard share was not kept locally");
    ck_assert_int_eq(sc_set(w, "big", big, BIG, 0), SC_OK);
    ck_assert(!test_held(w, "big"));
    sc_value *v = NULL;
    ck_assert_int_eq(sc_get(w, "big", &v), SC_OK);
    ck_assert_uint_eq(sc_value_size(v), BIG);
    sc_value_release(v);

    o.role = SC_ROLE_READER;
    sc_cache *r = test_open(&o);
    ck_assert_int_eq(sc_set(r, "mine", big, BIG, 0), SC_ERR_TOO_LARGE);
    ck_assert_msg(strstr(sc_errmsg(r), "share of local_max_bytes (1048576 bytes") != NULL, "message: %s", sc_errmsg(r));
    ck_assert(!test_held(r, "mine"));
    ck_assert_int_eq(sc_set(r, "mine", big, SMALL, 0), SC_OK);
    ck_assert(test_held(r, "mine"));
    free(big);
    sc_close(w);
    sc_close(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("read");
    TCase *tc = tcase_create("read");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, get_with_local_and_remote);
    tcase_add_test(tc, get_counts_once_and_names_bad_arguments);
    tcase_add_test(tc, get_with_reads_redis_on_a_local_miss);
    tcase_add_test(tc, get_copy);
    tcase_add_test(tc, readers_while_writing);
    tcase_add_test(tc, local_hits_pin_and_outlive);
    tcase_add_test(tc, get_many_hits_pin_and_outlive);
    tcase_add_test(tc, fetch_batch_hits_pin_and_outlive);
    tcase_add_test(tc, local_copy_never_outlives_its_redis_ttl);
    tcase_add_test(tc, item_above_a_shard_share_is_refused_with_the_share_named);
    suite_add_tcase(s, tc);
    return test_run_suite(s, NULL);
}
