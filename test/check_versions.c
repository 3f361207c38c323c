/* Versions and compare-and-set (issue 9) against a private redis-server:
 * snapshots, conflicts, no ABA across delete and clear, tombstone expiry,
 * the classic lost-update race between pods and threads, and sc_get_many.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/pods.h"

sc_test_redis g_redis;

#define NS(name) "v_" name

static uint64_t version_of(sc_cache *c, const char *key)
{
    uint64_t v = 12345;
    sc_status s = sc_version_of(c, key, &v);
    ck_assert_msg(s == SC_OK, "sc_version_of: %s", sc_errmsg(c));
    return v;
}

/* The version c's local tier holds for key, 0 when it holds none. */
static uint64_t peek_version(sc_cache *c, const char *key)
{
    sc_value *v = NULL;
    if (sc_peek(c, key, &v) != SC_OK)
        return 0;
    uint64_t ver = sc_value_version(v);
    sc_value_release(v);
    return ver;
}

START_TEST(snapshot_set_conflict)
{
    sc_cache *a = test_pod(NS("cas"), "a");
    sc_cache *b = test_pod(NS("cas"), "b");
    ck_assert_uint_eq(version_of(a, "k"), 0); /* no history */
    /* "Set if absent": expected 0. */
    ck_assert_int_eq(sc_set_if_version(a, "k", "one", 3, 0, 0), SC_OK);
    uint64_t v1 = version_of(a, "k");
    ck_assert_uint_gt(v1, 0);
    sc_value *v;
    ck_assert_int_eq(sc_get(a, "k", &v), SC_OK);
    ck_assert_uint_eq(sc_value_version(v), v1);
    sc_value_release(v);
    /* A second "set if absent" loses. */
    ck_assert_int_eq(sc_set_if_version(b, "k", "two", 3, 0, 0), SC_ERR_CONFLICT);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(b), "version"));
    /* The right snapshot wins, and the write is a real write: version,
     * event, the other pod sees it. */
    ck_assert_int_eq(sc_set_if_version(b, "k", "two", 3, 0, v1), SC_OK);
    uint64_t v2 = version_of(b, "k");
    ck_assert_uint_gt(v2, v1);
    WAIT_UNTIL(peek_version(a, "k") == v2, 3000);
    char *s = test_get(a, "k");
    ck_assert_str_eq(s, "two");
    free(s);
    /* A stale snapshot loses, publishes nothing, writes nothing. */
    uint64_t published = test_stats(a).events_published;
    ck_assert_int_eq(sc_set_if_version(a, "k", "three", 5, 0, v1), SC_ERR_CONFLICT);
    ck_assert_uint_eq(test_stats(a).events_published, published);
    s = test_redis_value(NS("cas"), "k");
    ck_assert_str_eq(s, "two");
    free(s);
    ck_assert_uint_eq(version_of(a, "k"), v2);
    s = test_get(a, "k");
    ck_assert_str_eq(s, "two");
    free(s);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(no_aba_across_delete_and_clear)
{
    sc_cache *a = test_pod(NS("aba"), "a");
    /* absent -> written -> deleted: the first snapshot (0) never matches. */
    uint64_t snap = version_of(a, "k");
    ck_assert_uint_eq(snap, 0);
    ck_assert_int_eq(sc_set(a, "k", "x", 1, 0), SC_OK);
    ck_assert_int_eq(sc_delete(a, "k"), SC_OK);
    uint64_t tomb = version_of(a, "k");
    ck_assert_uint_gt(tomb, snap);
    ck_assert_int_eq(sc_set_if_version(a, "k", "y", 1, 0, snap), SC_ERR_CONFLICT);
    /* A tombstone is not a value for any call. */
    char *s = test_get(a, "k");
    ck_assert_str_eq(s, "<none>");
    free(s);
    /* ... but its version is the one to expect. */
    ck_assert_int_eq(sc_set_if_version(a, "k", "y", 1, 0, tomb), SC_OK);

    /* A clear moves every key's number, present or never written. */
    uint64_t before = version_of(a, "k"), never = version_of(a, "never");
    ck_assert_int_eq(sc_clear(a), SC_OK);
    ck_assert_uint_gt(version_of(a, "k"), before);
    ck_assert_uint_gt(version_of(a, "never"), never);
    ck_assert_int_eq(sc_set_if_version(a, "k", "z", 1, 0, before), SC_ERR_CONFLICT);
    ck_assert_int_eq(sc_set_if_version(a, "never", "z", 1, 0, never), SC_ERR_CONFLICT);
    ck_assert_int_eq(sc_set_if_version(a, "never", "z", 1, 0, version_of(a, "never")), SC_OK);
    sc_close(a);
}
END_TEST

START_TEST(tombstone_expires)
{
    sc_options o = test_options(NS("tomb"), "a");
    o.tombstone_ttl_ms = 1000; /* outlives the HGETALL below on a sanitizer build */
    sc_cache *a = test_open(&o);
    ck_assert_int_eq(sc_set(a, "k", "x", 1, 0), SC_OK);
    ck_assert_int_eq(sc_delete(a, "k"), SC_OK);
    ck_assert_uint_gt(version_of(a, "k"), 0);
    redisContext *rc = sc_test_redis_connect(&g_redis);
    redisReply *r = redisCommand(rc, "HGETALL {%s}:k:k", NS("tomb"));
    ck_assert_uint_eq(r->elements, 2); /* version only */
    freeReplyObject(r);
    WAIT_UNTIL(version_of(a, "k") == 0, 3000);
    ck_assert_uint_eq(version_of(a, "k"), 0);
    r = redisCommand(rc, "EXISTS {%s}:k:k", NS("tomb"));
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    redisFree(rc);
    /* tombstone_ttl_ms 0: a delete keeps nothing. */
    o = test_options(NS("tomb0"), "a");
    o.tombstone_ttl_ms = 0;
    sc_cache *b = test_open(&o);
    ck_assert_int_eq(sc_set(b, "k", "x", 1, 0), SC_OK);
    ck_assert_int_eq(sc_delete(b, "k"), SC_OK);
    ck_assert_uint_eq(version_of(b, "k"), 0);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* The classic lost update: two pods, four threads each, incrementing one
 * counter with get + sc_set_if_version + retry. */
#define INCREMENTS 100

typedef struct incr_arg {
    sc_cache *c;
    int conflicts;
    int errors;
} incr_arg;

static void *incrementer(void *p)
{
    incr_arg *a = p;
    for (int i = 0; i < INCREMENTS; i++) {
        for (;;) {
            /* The README's loop: the number is read before the value, so
             * an absent value is paired with a number it had (a deleted
             * key keeps one; 0 would conflict for ever). Read after the
             * value, it could be a later write's. */
            sc_value *v = NULL;
            long n = 0;
            uint64_t expected = 0;
            if (sc_version_of(a->c, "counter", &expected) != SC_OK) {
                a->errors++;
                continue;
            }
            sc_status s = sc_get(a->c, "counter", &v);
            if (s == SC_OK) {
                n = strtol(sc_value_data(v), NULL, 10);
                expected = sc_value_version(v);
                sc_value_release(v);
            } else if (s != SC_NOT_FOUND) {
                a->errors++;
                continue;
            }
            char buf[32];
            int len = snprintf(buf, sizeof buf, "%ld", n + 1);
            s = sc_set_if_version(a->c, "counter", buf, (size_t)len, 0, expected);
            if (s == SC_OK)
                break;
            if (s == SC_ERR_CONFLICT)
                a->conflicts++;
            else
                a->errors++;
        }
    }
    return NULL;
}

START_TEST(lost_update_never_happens)
{
    sc_cache *pods[2] = {test_pod(NS("lost"), "a"), test_pod(NS("lost"), "b")};
    /* The counter starts deleted: absent, with a tombstone's number. */
    ck_assert_int_eq(sc_set(pods[0], "counter", "41", 2, 0), SC_OK);
    ck_assert_int_eq(sc_delete(pods[0], "counter"), SC_OK);
    ck_assert_uint_gt(version_of(pods[1], "counter"), 0);
    pthread_t t[8];
    incr_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (incr_arg){pods[i % 2], 0, 0};
        pthread_create(&t[i], NULL, incrementer, &args[i]);
    }
    int conflicts = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        conflicts += args[i].conflicts;
        ck_assert_int_eq(args[i].errors, 0);
    }
    char *s = test_redis_value(NS("lost"), "counter");
    ck_assert_int_eq(atoi(s), 8 * INCREMENTS);
    free(s);
    ck_assert_int_gt(conflicts, 0);
    sc_close(pods[0]);
    sc_close(pods[1]);
}
END_TEST

/* sc_version_of, then sc_get, on one pod: once the number says the key was
 * written, the get must not answer from a Redis read that ran before that
 * write (one another thread of the pod had in flight, which the get
 * joined). The README's compare-and-set loop pairs an absent answer with
 * the number read before it, so such an answer is a lost update:
 * lost_update_never_happens failed that way once in about forty runs. Here
 * readers keep a read of each new key in flight while another pod writes
 * it, and the main thread asks in the README's order. */
#define FRESH_KEYS 1500

typedef struct key_readers {
    sc_cache *c;
    atomic_int round; /* the key k<round> the readers read; -1: stop */
} key_readers;

static void *key_reader(void *p)
{
    key_readers *r = p;
    char key[32];
    int round;
    while ((round = atomic_load(&r->round)) >= 0) {
        snprintf(key, sizeof key, "k%d", round);
        sc_value *v = NULL;
        if (sc_get(r->c, key, &v) == SC_OK)
            sc_value_release(v);
    }
    return NULL;
}

START_TEST(get_after_version_of_never_older)
{
    sc_cache *a = test_pod(NS("fresh"), "a"), *b = test_pod(NS("fresh"), "b");
    key_readers r = {.c = b};
    atomic_init(&r.round, 0);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, key_reader, &r);
    int older = 0, first = -1;
    char key[32];
    for (int round = 0; round < FRESH_KEYS; round++) {
        snprintf(key, sizeof key, "k%d", round);
        atomic_store(&r.round, round);
        ck_assert_int_eq(sc_set(a, key, "v", 1, 0), SC_OK);
        uint64_t n = version_of(b, key);
        ck_assert_uint_gt(n, 0);
        sc_value *v = NULL;
        sc_status s = sc_get(b, key, &v);
        ck_assert_msg(s == SC_OK || s == SC_NOT_FOUND, "%s: %s", key, sc_errmsg(b));
        if (s == SC_NOT_FOUND) {
            older++;
            if (first < 0)
                first = round;
        } else {
            ck_assert_uint_ge(sc_value_version(v), n);
            sc_value_release(v);
        }
    }
    atomic_store(&r.round, -1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    ck_assert_msg(older == 0, "%d of %d gets after sc_version_of answered older than its number (first: k%d)", older,
                  FRESH_KEYS, first);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(get_many_mixed)
{
    /* This checks sc_get_many's install rule; a's tracking is off because
     * the invalidation messages of the writes below may still be in flight
     * when it reads, and their handling may drop the install (a miss, never
     * stale: check_tracking covers that path). */
    sc_options oa = test_options(NS("many"), "a");
    oa.redis_tracking = 0;
    sc_cache *a = test_open(&oa);
    sc_cache *b = test_pod(NS("many"), "b");
    ck_assert_int_eq(sc_set(a, "local", "L", 1, 0), SC_OK);       /* a holds it locally */
    ck_assert_int_eq(sc_set(b, "remote", "R", 1, 0), SC_OK);      /* a reads it from Redis */
    ck_assert_int_eq(sc_set(a, "gone", "G", 1, 0), SC_OK);
    ck_assert_int_eq(sc_delete(a, "gone"), SC_OK);                /* tombstone */
    /* (Comparing a's last_seq with b's could pass before either applied
     * b's set, whose event then made "remote" a local hit mid-test.) */
    TEST_WAIT_APPLIED(a, NS("many"), 3000);
    sc_value *v;
    if (sc_peek(a, "remote", &v) == SC_OK) { /* the event installed it; make it a miss */
        sc_value_release(v);
        ck_assert_int_eq(sc_set(b, "remote", "R", 1, 0), SC_OK);
        ck_assert_int_eq(sc_set_invalidate(b, "remote", "R", 1, 0), SC_OK);
        TEST_WAIT_APPLIED(a, NS("many"), 3000);
    }
    ck_assert_uint_eq(peek_version(a, "remote"), 0);
    const char *keys[] = {"local", "remote", "missing", "gone", "remote", "local"};
    sc_value *out[6];
    uint64_t hits = test_stats(a).local_hits, rhits = test_stats(a).remote_hits;
    ck_assert_int_eq(sc_get_many(a, keys, 6, out), SC_OK);
    ck_assert_ptr_nonnull(out[0]);
    ck_assert_str_eq(sc_value_data(out[0]), "L");
    ck_assert_ptr_nonnull(out[1]);
    ck_assert_str_eq(sc_value_data(out[1]), "R");
    ck_assert_ptr_null(out[2]);
    ck_assert_ptr_null(out[3]);
    ck_assert_ptr_nonnull(out[4]);
    ck_assert_str_eq(sc_value_data(out[4]), "R");
    ck_assert_ptr_nonnull(out[5]);
    ck_assert_uint_eq(test_stats(a).local_hits - hits, 2);
    ck_assert_uint_eq(test_stats(a).remote_hits - rhits, 1); /* "remote" read once */
    for (int i = 0; i < 6; i++)
        sc_value_release(out[i]);
    /* The Redis read was installed like sc_get's. */
    ck_assert_int_eq(sc_peek(a, "remote", &v), SC_OK);
    sc_value_release(v);
    /* One key. */
    ck_assert_int_eq(sc_get_many(a, keys + 1, 1, out), SC_OK);
    ck_assert_str_eq(sc_value_data(out[0]), "R");
    sc_value_release(out[0]);
    sc_close(a);
    sc_close(b);
}
END_TEST

START_TEST(get_many_ten_thousand)
{
    sc_cache *a = test_pod(NS("big"), "a");
    sc_options o = test_options(NS("big"), "b");
    o.local_max_entries = 20000;
    sc_cache *b = test_open(&o);
    enum { N = 10000 };
    static char names[N][16];
    static const char *keys[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i);
        keys[i] = names[i];
        if (i % 2 == 0)
            ck_assert_int_eq(sc_set_invalidate(a, keys[i], names[i], strlen(names[i]), 0), SC_OK);
    }
    WAIT_UNTIL(test_stats(b).last_seq == test_stats(a).last_seq, 5000);
    static sc_value *out[N];
    uint64_t rhits = test_stats(b).remote_hits, rmiss = test_stats(b).remote_misses;
    ck_assert_int_eq(sc_get_many(b, keys, N, out), SC_OK);
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            ck_assert_ptr_nonnull(out[i]);
            ck_assert_str_eq(sc_value_data(out[i]), names[i]);
        } else {
            ck_assert_ptr_null(out[i]);
        }
        sc_value_release(out[i]);
    }
    ck_assert_uint_eq(test_stats(b).remote_hits - rhits, N / 2);
    ck_assert_uint_eq(test_stats(b).remote_misses - rmiss, N / 2);
    /* All installed: a second call is all local. */
    uint64_t hits = test_stats(b).local_hits;
    ck_assert_int_eq(sc_get_many(b, keys, N, out), SC_OK);
    ck_assert_uint_eq(test_stats(b).local_hits - hits, N / 2);
    for (int i = 0; i < N; i++)
        sc_value_release(out[i]);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* sc_get_many looks keys up in groups of 16 (their lookups prefetched
 * together): a bad key in a later group, after earlier groups took
 * references to local hits, fails the call and leaves nothing held (ASan's
 * leak check sees a reference kept). */
START_TEST(get_many_bad_key_after_local_hits)
{
    sc_cache *a = test_pod(NS("groups"), "a");
    enum { N = 40, BAD = 37 };
    char names[N][16];
    const char *keys[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "g%d", i);
        keys[i] = names[i];
        ck_assert_int_eq(sc_set(a, keys[i], names[i], strlen(names[i]), 0), SC_OK);
    }
    sc_value *out[N];
    uint64_t hits = test_stats(a).local_hits;
    ck_assert_int_eq(sc_get_many(a, keys, N, out), SC_OK);
    ck_assert_uint_eq(test_stats(a).local_hits - hits, N);
    for (int i = 0; i < N; i++) {
        ck_assert_str_eq(sc_value_data(out[i]), names[i]);
        sc_value_release(out[i]);
    }
    keys[BAD] = "";
    ck_assert_int_eq(sc_get_many(a, keys, N, out), SC_ERR_INVALID);
    ck_assert_str_eq(sc_errmsg(a), "sc_get_many: key is empty");
    for (int i = 0; i < N; i++)
        ck_assert_ptr_null(out[i]);
    sc_close(a);
}
END_TEST

START_TEST(bad_input)
{
    sc_cache *a = test_pod(NS("bad"), "a");
    uint64_t v;
    ck_assert_int_eq(sc_version_of(NULL, "k", &v), SC_ERR_INVALID);
    ck_assert_int_eq(sc_version_of(a, NULL, &v), SC_ERR_INVALID);
    ck_assert_int_eq(sc_version_of(a, "", &v), SC_ERR_INVALID);
    ck_assert_int_eq(sc_version_of(a, "k", NULL), SC_ERR_INVALID);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(sc_version_of(a, big, &v), SC_ERR_TOO_LARGE);
    ck_assert_int_eq(sc_set_if_version(a, NULL, "x", 1, 0, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc_set_if_version(a, "k", NULL, 1, 0, 0), SC_ERR_INVALID);
    sc_value *out[3] = {(sc_value *)1, (sc_value *)1, (sc_value *)1};
    const char *keys[] = {"a", NULL, "c"};
    ck_assert_int_eq(sc_get_many(a, keys, 3, out), SC_ERR_INVALID);
    ck_assert_ptr_null(out[0]);
    ck_assert_ptr_null(out[2]);
    ck_assert_int_eq(sc_get_many(a, NULL, 3, out), SC_ERR_INVALID);
    ck_assert_int_eq(sc_get_many(a, keys, 0, out), SC_OK);
    ck_assert_int_eq(sc_get_many(NULL, keys, 1, out), SC_ERR_INVALID);

    /* A plain reader cannot write Redis, so it cannot compare-and-set. */
    sc_options o = test_options(NS("bad"), "r");
    o.role = SC_ROLE_READER;
    sc_cache *r = test_open(&o);
    ck_assert_int_eq(sc_set_if_version(r, "k", "x", 1, 0, 0), SC_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(sc_errmsg(r), "reader"));
    char *s = test_redis_value(NS("bad"), "k");
    ck_assert_str_eq(s, "<none>");
    free(s);
    sc_close(r);
    sc_close(a);
}
END_TEST

/* An invalidated tag makes its keys absent, as a delete does, and moves
 * their number: a snapshot taken before the invalidation never matches. */
/* A delete's number is kept for tombstone_ttl_ms: a fetch that loads "not
 * found" in that time replaces the tombstone with an empty marker that
 * lives only empty_ttl_ms, and once the marker went the key's number was 0
 * again, so a snapshot taken before "write, delete" (0) matched (ABA)
 * long before tombstone_ttl_ms. */
static sc_status none_load(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)slot;
    (void)ud;
    return SC_NOT_FOUND;
}

static sc_status counting_none_load(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)slot;
    ++*(int *)ud;
    return SC_NOT_FOUND;
}

START_TEST(tombstone_number_survives_a_not_found_fetch)
{
    sc_options o = test_options(NS("tombneg"), "a");
    o.empty_ttl_ms = 150;
    sc_cache *a = test_open(&o);
    uint64_t before = version_of(a, "k");
    ck_assert_uint_eq(before, 0);
    ck_assert_int_eq(sc_set(a, "k", "x", 1, 0), SC_OK);
    ck_assert_int_eq(sc_delete(a, "k"), SC_OK);
    uint64_t tomb = version_of(a, "k");
    ck_assert_uint_gt(tomb, before);
    sc_value *v = NULL;
    ck_assert_int_eq(sc_fetch(a, "k", 0, none_load, NULL, &v), SC_NOT_FOUND);
    uint64_t marker = version_of(a, "k");
    ck_assert_uint_ge(marker, tomb);
    /* The marker's empty_ttl_ms passes (a time, nothing to poll): no fetch
     * believes it any more, and the key is absent throughout. */
    test_sleep_ms(300);
    ck_assert_int_eq(sc_get(a, "k", &v), SC_NOT_FOUND);
    uint64_t now = version_of(a, "k");
    ck_assert_msg(now >= marker, "the key's number fell from %llu back to %llu within tombstone_ttl_ms",
                  (unsigned long long)marker, (unsigned long long)now);
    ck_assert_int_eq(sc_set_if_version(a, "k", "stale", 5, 0, before), SC_ERR_CONFLICT);
    /* and the marker is no longer believed: the next fetch loads */
    int loads = 0;
    ck_assert_int_eq(sc_fetch(a, "k", 0, counting_none_load, &loads, &v), SC_NOT_FOUND);
    ck_assert_int_eq(loads, 1);
    ck_assert_uint_gt(version_of(a, "k"), now);
    sc_close(a);
}
END_TEST

START_TEST(tag_invalidation_moves_the_number)
{
    sc_cache *a = test_pod(NS("tag"), "a");
    const char *tags[] = {"t"};
    ck_assert_int_eq(sc_set_tagged(a, "k", "old", 3, 0, tags, 1), SC_OK);
    uint64_t snap = version_of(a, "k");
    ck_assert_uint_gt(snap, 0);
    ck_assert_int_eq(sc_invalidate_tag(a, "t"), SC_OK);
    char *s = test_get(a, "k");
    ck_assert_str_eq(s, "<none>");
    free(s);
    uint64_t after = version_of(a, "k");
    ck_assert_uint_gt(after, snap);
    ck_assert_int_eq(sc_set_if_version(a, "k", "stale", 5, 0, snap), SC_ERR_CONFLICT);
    sc_cache *b = test_pod(NS("tag"), "b"); /* reads Redis: still absent */
    s = test_get(b, "k");
    ck_assert_str_eq(s, "<none>");
    free(s);
    sc_close(b);
    /* The number it has now is the one to write against. */
    ck_assert_int_eq(sc_set_if_version(a, "k", "new", 3, 0, after), SC_OK);
    s = test_get(a, "k");
    ck_assert_str_eq(s, "new");
    free(s);
    sc_close(a);
}
END_TEST

static sc_status failing_load(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)ud;
    sc_loaded_error(slot, "source down");
    return SC_ERR_REMOTE;
}

/* A fetch of a key that an invalidated tag made absent must not give the
 * key its first number back: fetch_lock.lua used to delete the dead hash
 * (and its number) before taking the lock, so a failed load left nothing,
 * and a snapshot taken before "write, invalidate" (0) matched again. */
START_TEST(tag_invalidation_number_survives_a_failed_fetch)
{
    sc_cache *a = test_pod(NS("tagf"), "a");
    uint64_t before = version_of(a, "k"); /* no history yet */
    ck_assert_uint_eq(before, 0);
    const char *tags[] = {"t"};
    ck_assert_int_eq(sc_set_tagged(a, "k", "old", 3, 0, tags, 1), SC_OK);
    ck_assert_int_eq(sc_invalidate_tag(a, "t"), SC_OK);
    uint64_t after = version_of(a, "k");
    ck_assert_uint_gt(after, before);
    sc_value *v = NULL;
    ck_assert_int_eq(sc_fetch(a, "k", 0, failing_load, NULL, &v), SC_ERR_LOADER);
    ck_assert_ptr_null(v);
    uint64_t now = version_of(a, "k");
    ck_assert_msg(now == after, "a failed fetch moved the number from %llu back to %llu", (unsigned long long)after,
                  (unsigned long long)now);
    ck_assert_int_eq(sc_set_if_version(a, "k", "stale", 5, 0, before), SC_ERR_CONFLICT);
    /* The number it has is still the one to write against. */
    ck_assert_int_eq(sc_set_if_version(a, "k", "new", 3, 0, after), SC_OK);
    char *s = test_get(a, "k");
    ck_assert_str_eq(s, "new");
    free(s);
    sc_close(a);
}
END_TEST

/* A pod of ns on Redis r (a test's own server, which it may crash). */
static sc_cache *pod_on(const sc_test_redis *r, const char *ns, const char *id)
{
    sc_options o = test_options(ns, id);
    o.redis_port = r->port;
    return test_open(&o);
}

/* Crashes r after a SAVE and one more write, and brings it back from the
 * snapshot: the write's version, which Redis no longer knows. */
static uint64_t crash_after_save(sc_test_redis *r, sc_cache *writer, const char *ns)
{
    ck_assert_int_eq(sc_set(writer, "k", "base", 4, 0), SC_OK);
    ck_assert_int_eq(sc_test_redis_cmd(r, "SAVE"), 0);
    ck_assert_int_eq(sc_set(writer, "k", "lost", 4, 0), SC_OK);
    uint64_t lost = version_of(writer, "k");
    sc_test_redis_kill(r);
    ck_assert_int_eq(sc_test_redis_start_again(r), 0);
    char *s = test_redis_value_on(r, ns, "k");
    ck_assert_str_eq(s, "base"); /* the rollback really happened */
    free(s);
    return lost;
}

/* Redis restarted from an older snapshot hands out no version twice: a
 * compare-and-set made against a write Redis lost must not match a later
 * write (ABA). Pod a saw the lost version (its own write), so its next
 * write, or its resubscription, starts a new history; pod b's snapshot of
 * the lost write conflicts. */
START_TEST(no_aba_across_rollback)
{
    sc_test_redis r;
    ck_assert_int_eq(sc_test_redis_start(&r, NULL), 0);
    sc_cache *a = pod_on(&r, NS("rb"), "a");
    sc_cache *b = pod_on(&r, NS("rb"), "b");
    uint64_t lost = crash_after_save(&r, a, NS("rb"));
    ck_assert_uint_eq(version_of(b, "k") > 0, 1);
    sc_status st = SC_ERR_REMOTE;
    for (int i = 0; i < 300 && st != SC_OK; i++)
        if ((st = sc_set(a, "k", "new", 3, 0)) != SC_OK)
            test_sleep_ms(10);
    ck_assert_int_eq(st, SC_OK);
    ck_assert_uint_gt(version_of(b, "k"), lost);
    ck_assert_int_eq(sc_set_if_version(b, "k", "from-lost", 9, 0, lost), SC_ERR_CONFLICT);
    char *s = test_redis_value_on(&r, NS("rb"), "k");
    ck_assert_str_eq(s, "new");
    free(s);
    sc_close(a);
    sc_close(b);
    sc_test_redis_stop(&r);
}
END_TEST

/* The same when no pod writes before one resubscribes: the pod that finds
 * the counter behind its last sequence starts the new history (sync.lua),
 * so even a pod that never saw the lost version (c, opened after the
 * restart) writes past it. */
START_TEST(no_aba_across_rollback_resync_first)
{
    sc_test_redis r;
    ck_assert_int_eq(sc_test_redis_start(&r, NULL), 0);
    sc_cache *a = pod_on(&r, NS("rb2"), "a");
    uint64_t lost = crash_after_save(&r, a, NS("rb2"));
    /* a resubscribes, finds the counter behind, flushes. */
    WAIT_UNTIL(test_stats(a).synced && test_stats(a).flushes > 0, 5000);
    ck_assert_uint_gt(test_stats(a).flushes, 0);
    sc_cache *c = pod_on(&r, NS("rb2"), "c");
    ck_assert_int_eq(sc_set(c, "k", "new", 3, 0), SC_OK);
    ck_assert_uint_gt(version_of(c, "k"), lost);
    ck_assert_int_eq(sc_set_if_version(a, "k", "from-lost", 9, 0, lost), SC_ERR_CONFLICT);
    sc_close(c);
    sc_close(a);
    sc_test_redis_stop(&r);
}
END_TEST

/* A namespace counter near 2^53 (set by hand, or seeded there from a
 * version a pod saw): Lua numbers are doubles, so a version above 2^53 - 1
 * is not exact in the scripts. No two writes may share a version (a
 * compare-and-set made against one would match the other: ABA), and a
 * write refused at the limit must change nothing in Redis. */
static void counter_set_on(const char *ns, const char *value)
{
    redisContext *rc = sc_test_redis_connect(&g_redis);
    ck_assert_ptr_nonnull(rc);
    redisReply *r = redisCommand(rc, "SET {%s}:seq %s", ns, value);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    redisFree(rc);
}

START_TEST(counter_at_2_53_hands_out_no_version_twice)
{
    counter_set_on(NS("big"), "9007199254740988"); /* 2^53 - 4 */
    sc_cache *a = test_pod(NS("big"), "a");
    /* Every write that succeeds takes a version above the one before; one
     * that fails leaves Redis' value as it was; the limit is named. */
    uint64_t prev = 0;
    char held[8] = "<none>";
    int refused = 0;
    for (int i = 0; i < 6; i++) {
        char val[8];
        snprintf(val, sizeof val, "v%d", i);
        if (sc_set(a, "k", val, strlen(val), 0) == SC_OK) {
            uint64_t v = version_of(a, "k");
            ck_assert_msg(v > prev, "write %d took version %llu after %llu", i, (unsigned long long)v,
                          (unsigned long long)prev);
            prev = v;
            strcpy(held, val);
        } else {
            ck_assert_msg(strstr(sc_errmsg(a), "2^53"), "write %d: %s", i, sc_errmsg(a));
            refused++;
        }
        TEST_ASSERT_STR_FREED(test_redis_value(NS("big"), "k"), held, "Redis' value");
    }
    ck_assert_int_gt(refused, 0);
    ck_assert_uint_lt(prev, UINT64_C(1) << 53);
    sc_close(a);

    /* Without the event log (no XADD to trip over), a compare-and-set
     * against a version a later write replaced never matches. */
    counter_set_on(NS("big0"), "9007199254740991"); /* 2^53 - 1 */
    sc_options o = test_options(NS("big0"), "b");
    o.event_log_len = 0;
    sc_cache *b = test_open(&o);
    sc_status one = sc_set(b, "k", "one", 3, 0);
    uint64_t snap = version_of(b, "k");
    sc_status two = sc_set(b, "k", "two", 3, 0);
    if (one == SC_OK && two == SC_OK)
        ck_assert_uint_gt(version_of(b, "k"), snap);
    if (two == SC_OK)
        ck_assert_int_ne(sc_set_if_version(b, "k", "aba", 3, 0, snap), SC_OK);
    sc_close(b);
}
END_TEST

/* A pod's sync thread held in its on_event hook on key "x" while g_stall. */
static atomic_int g_stall, g_stalled;

static void stall_on_x(const sc_event_info *ev, void *ud)
{
    (void)ud;
    if (strcmp(ev->key, "x") != 0)
        return;
    atomic_store(&g_stalled, 1);
    long long until = test_now_ms() + 10000;
    while (atomic_load(&g_stall) && test_now_ms() < until)
        test_sleep_ms(5);
    atomic_store(&g_stalled, 0);
}

/* b's sync thread held in stall_on_x (a's write of "x" delivered to it) and
 * every subscription on r dropped: b misses what is published from now on. */
static void stall_subscriber(sc_test_redis *r, sc_cache *a)
{
    atomic_store(&g_stall, 1);
    ck_assert_int_eq(sc_set(a, "x", "1", 1, 0), SC_OK);
    WAIT_UNTIL(atomic_load(&g_stalled), 3000);
    ck_assert_int_eq(atomic_load(&g_stalled), 1);
    ck_assert_int_eq(sc_test_redis_cmd(r, "CLIENT KILL TYPE pubsub"), 0);
}

/* The rollback: r restarted from its last SAVE (k back to "base"), then b's
 * sync thread let go, and b resubscribed. */
static void roll_back_and_resync(sc_test_redis *r, const char *ns, sc_cache *b)
{
    sc_test_redis_kill(r);
    ck_assert_int_eq(sc_test_redis_start_again(r), 0);
    TEST_ASSERT_STR_FREED(test_redis_value_on(r, ns, "k"), "base", "k");
    uint64_t reconnects = test_stats(b).reconnects;
    atomic_store(&g_stall, 0);
    WAIT_UNTIL(test_stats(b).synced && test_stats(b).reconnects > reconnects, 5000);
    ck_assert(test_stats(b).synced && test_stats(b).reconnects > reconnects);
}

static sc_status load_nothing(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)slot;
    (void)ud;
    return SC_ERR_LOADER; /* k is in Redis: the fetch never loads */
}

/* A version a pod read through sc_get_many or sc_fetch counts as seen, as
 * one read by sc_get does: b read the lost write (its number V) from
 * Redis, not from the channel (its subscription was gone and its sync
 * thread busy), and the writer is gone. After the rollback (a replica
 * promoted without the last write, here a restart from the older
 * snapshot) b's resubscription must start a new history past V, or the
 * next write hands V out again: b's compare-and-set against the lost write
 * matches it (ABA). b reads k with sc_get_many (fetch 0) or sc_fetch
 * (fetch 1). */
static void no_aba_after_a_read_of_a_lost_write(const char *ns, int fetch)
{
    sc_test_redis r;
    ck_assert_int_eq(sc_test_redis_start(&r, NULL), 0);
    sc_cache *a = pod_on(&r, ns, "a");
    sc_options o = test_options(ns, "b");
    o.redis_port = r.port;
    o.on_event = stall_on_x;
    sc_cache *b = test_open(&o);
    stall_subscriber(&r, a);
    ck_assert_int_eq(sc_set(a, "k", "base", 4, 0), SC_OK);
    ck_assert_int_eq(sc_test_redis_cmd(&r, "SAVE"), 0);
    ck_assert_int_eq(sc_set(a, "k", "lost", 4, 0), SC_OK);
    uint64_t lost = version_of(a, "k");
    sc_close(a);
    const char *keys[1] = {"k"};
    sc_value *out[1] = {NULL};
    if (fetch)
        ck_assert_int_eq(sc_fetch(b, "k", 0, load_nothing, NULL, &out[0]), SC_OK);
    else
        ck_assert_int_eq(sc_get_many(b, keys, 1, out), SC_OK);
    ck_assert_ptr_nonnull(out[0]);
    ck_assert_uint_eq(sc_value_version(out[0]), lost);
    sc_value_release(out[0]);
    roll_back_and_resync(&r, ns, b);
    sc_cache *c = pod_on(&r, ns, "c");
    ck_assert_int_eq(sc_set(c, "k", "new", 3, 0), SC_OK);
    ck_assert_uint_gt(version_of(c, "k"), lost);
    ck_assert_int_eq(sc_set_if_version(b, "k", "from-lost", 9, 0, lost), SC_ERR_CONFLICT);
    char *v = NULL;
    for (int i = 0; i < 100; i++) {
        free(v);
        v = test_get(b, "k");
        if (strcmp(v, "new") == 0)
            break;
        test_sleep_ms(20);
    }
    ck_assert_str_eq(v, "new");
    free(v);
    sc_close(c);
    sc_close(b);
    sc_test_redis_stop(&r);
}

START_TEST(no_aba_after_a_get_many_of_a_lost_write)
{
    no_aba_after_a_read_of_a_lost_write(NS("rbm"), 0);
}
END_TEST

START_TEST(no_aba_after_a_fetch_of_a_lost_write)
{
    no_aba_after_a_read_of_a_lost_write(NS("rbf"), 1);
}
END_TEST

/* A store of one row, key "k", kept the way the README asks: a write is
 * applied only when its version is newer than the row's. */
static pthread_mutex_t g_row_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_row[16];
static uint64_t g_row_version;

static sc_status save_row(const sc_dirty *items, size_t n, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&g_row_mu);
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].key, "k") == 0 && items[i].version > g_row_version && items[i].value &&
            items[i].len < sizeof g_row) {
            memcpy(g_row, items[i].value, items[i].len);
            g_row[items[i].len] = '\0';
            g_row_version = items[i].version;
        }
    pthread_mutex_unlock(&g_row_mu);
    return SC_OK;
}

static uint64_t row_version(char value[16])
{
    pthread_mutex_lock(&g_row_mu);
    uint64_t v = g_row_version;
    if (value)
        memcpy(value, g_row, sizeof g_row);
    pthread_mutex_unlock(&g_row_mu);
    return v;
}

/* The same for a version a pod's save_fn was handed: b saved the lost
 * write-behind write (number V) into the store and saw it nowhere else. If
 * V is handed out again, the store's "only if newer" rule keeps the lost
 * write's row and refuses the new, acknowledged write for good. */
START_TEST(no_aba_after_a_save_of_a_lost_write)
{
    const char *ns = NS("rbs");
    sc_test_redis r;
    ck_assert_int_eq(sc_test_redis_start(&r, NULL), 0);
    sc_cache *a = pod_on(&r, ns, "a");
    sc_options o = test_options(ns, "b");
    o.redis_port = r.port;
    o.on_event = stall_on_x;
    o.save_fn = save_row;
    o.writeback_interval_ms = 20;
    sc_cache *b = test_open(&o);
    stall_subscriber(&r, a);
    ck_assert_int_eq(sc_set_behind(a, "k", "base", 4, 0), SC_OK);
    uint64_t base = version_of(a, "k");
    WAIT_UNTIL(row_version(NULL) == base, 3000);
    ck_assert_int_eq(sc_test_redis_cmd(&r, "SAVE"), 0);
    ck_assert_int_eq(sc_set_behind(a, "k", "lost", 4, 0), SC_OK);
    uint64_t lost = version_of(a, "k");
    sc_close(a);
    WAIT_UNTIL(row_version(NULL) == lost, 3000); /* saved by b */
    ck_assert_uint_eq(row_version(NULL), lost);
    roll_back_and_resync(&r, ns, b);
    sc_cache *c = pod_on(&r, ns, "c");
    ck_assert_int_eq(sc_set_behind(c, "k", "new", 3, 0), SC_OK);
    ck_assert_uint_gt(version_of(c, "k"), lost);
    ck_assert_int_eq(sc_flush_behind(c, 3000), SC_OK);
    char row[16];
    row_version(row);
    ck_assert_str_eq(row, "new"); /* the store holds what Redis holds */
    sc_close(c);
    sc_close(b);
    sc_test_redis_stop(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("versions");
    TCase *tc = tcase_create("cas");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, snapshot_set_conflict);
    tcase_add_test(tc, no_aba_across_delete_and_clear);
    tcase_add_test(tc, tombstone_expires);
    tcase_add_test(tc, lost_update_never_happens);
    tcase_add_test(tc, get_after_version_of_never_older);
    tcase_add_test(tc, tag_invalidation_moves_the_number);
    tcase_add_test(tc, tombstone_number_survives_a_not_found_fetch);
    tcase_add_test(tc, tag_invalidation_number_survives_a_failed_fetch);
    tcase_add_test(tc, no_aba_across_rollback);
    tcase_add_test(tc, no_aba_across_rollback_resync_first);
    tcase_add_test(tc, no_aba_after_a_get_many_of_a_lost_write);
    tcase_add_test(tc, no_aba_after_a_fetch_of_a_lost_write);
    tcase_add_test(tc, no_aba_after_a_save_of_a_lost_write);
    tcase_add_test(tc, get_many_mixed);
    tcase_add_test(tc, get_many_ten_thousand);
    tcase_add_test(tc, get_many_bad_key_after_local_hits);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, counter_at_2_53_hands_out_no_version_twice);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(suite(), NULL);
}
