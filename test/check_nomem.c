/* Out of memory where the cache allocates on first use, against a private
 * redis-server: what cannot be allocated is not kept, and nothing stale is
 * served because of it.
 *
 * This suite's executable is linked with -Wl,--wrap=calloc and
 * -Wl,--wrap=aligned_alloc (test/CMakeLists.txt): the library's calls of
 * both come here, and a test makes the next one of a given size fail.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "lib/fetch/fetch.h"
#include "pods.h"

sc_test_redis g_redis;

/* lib/tags.c's link buckets: 65536 chains, made by the first key a pod
 * indexes under a tag. */
#define TAG_LINK_BUCKETS_BYTES ((size_t)65536 * sizeof(void *))

static _Atomic size_t fail_size; /* 0: none */
static atomic_int failed;        /* calloc calls refused */

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size)
{
    size_t want = atomic_load(&fail_size);
    if (want && n && size && n * size / n == size && n * size == want &&
        atomic_compare_exchange_strong(&fail_size, &want, 0)) {
        atomic_fetch_add(&failed, 1);
        return NULL;
    }
    return __real_calloc(n, size);
}

static _Atomic size_t fail_aligned_size; /* 0: none */

void *__real_aligned_alloc(size_t align, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size)
{
    size_t want = atomic_load(&fail_aligned_size);
    if (want && size == want && atomic_compare_exchange_strong(&fail_aligned_size, &want, 0)) {
        atomic_fetch_add(&failed, 1);
        return NULL;
    }
    return __real_aligned_alloc(align, size);
}

static void set_tagged(sc_cache *c, const char *key, const char *val, const char *tag)
{
    const char *tags[1] = {tag};
    ck_assert_int_eq(sc_set_tagged(c, key, val, strlen(val), 0, tags, 1), SC_OK);
}

/* Waits until pod c has applied everything published before this call: a
 * marker written through another pod is an event after them. */
static void wait_applied(sc_cache *c, sc_cache *writer, const char *marker)
{
    ck_assert_int_eq(sc_set(writer, marker, "m", 1, 0), SC_OK);
    WAIT_UNTIL(test_held(c, marker), 3000);
    ck_assert_msg(test_held(c, marker), "the pod never applied %s", marker);
}

/* A pod that cannot build its tag index for its own tagged write does not
 * keep the key: a tag invalidation from another pod could not reach an
 * unindexed copy, which would then be served stale for ever. */
START_TEST(tag_index_out_of_memory_keeps_no_copy)
{
    sc_options o = test_options("nomem_tags", NULL);
    sc_cache *a = test_open(&o), *b = test_open(&o);

    atomic_store(&failed, 0);
    atomic_store(&fail_size, TAG_LINK_BUCKETS_BYTES);
    set_tagged(a, "k", "v1", "t");
    atomic_store(&fail_size, 0);
    ck_assert_int_eq(atomic_load(&failed), 1); /* the index's first allocation was refused */
    ck_assert(!test_held(a, "k"));
    TEST_ASSERT_STR_FREED(test_get(b, "k"), "v1", "k on b");

    ck_assert_int_eq(sc_invalidate_tag(b, "t"), SC_OK);
    wait_applied(a, b, "marker1");
    TEST_ASSERT_STR_FREED(test_get(a, "k"), "<none>", "k on a after the tag's invalidation");

    /* The index is made by the next tagged key, and works. */
    set_tagged(a, "k2", "v2", "t2");
    ck_assert(test_held(a, "k2"));
    ck_assert_int_eq(sc_invalidate_tag(b, "t2"), SC_OK);
    wait_applied(a, b, "marker2");
    ck_assert(!test_held(a, "k2"));
    TEST_ASSERT_STR_FREED(test_get(a, "k2"), "<none>", "k2 on a after the tag's invalidation");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* lib/tags.c's record of a tag: five 8-byte fields, then the name and a NUL. */
#define TAG_RECORD_BYTES(name) (5 * sizeof(uint64_t) + strlen(name) + 1)

/* A pod that cannot record a tag's invalidation (no memory for the tag's
 * record) could not catch a copy read before it and indexed after it: it
 * drops every older copy instead, with a floor at the event's version. */
START_TEST(tag_event_out_of_memory_drops_older_copies)
{
    sc_options o = test_options("nomem_tagev", NULL);
    sc_cache *a = test_open(&o), *b = test_open(&o);
    ck_assert_int_eq(sc_set(b, "x", "1", 1, 0), SC_OK);
    WAIT_UNTIL(test_held(a, "x"), 3000);
    ck_assert(test_held(a, "x"));
    /* b knows the tag (its own tagged write); a only heard an invalidate for
     * y, so its record of the tag is made by the tag's event. */
    set_tagged(b, "y", "v", "fresh");

    atomic_store(&failed, 0);
    atomic_store(&fail_size, TAG_RECORD_BYTES("fresh"));
    ck_assert_int_eq(sc_invalidate_tag(b, "fresh"), SC_OK);
    WAIT_UNTIL(atomic_load(&failed) == 1, 3000);
    atomic_store(&fail_size, 0);
    ck_assert_int_eq(atomic_load(&failed), 1);
    WAIT_UNTIL(!test_held(a, "x"), 3000);
    ck_assert(!test_held(a, "x"));
    TEST_ASSERT_STR_FREED(test_get(a, "x"), "1", "x on a, read again");
    TEST_ASSERT_STR_FREED(test_get(a, "y"), "<none>", "y on a");
    sc_close(a);
    sc_close(b);
}
END_TEST

/* lib/fetch/fetch.h's struct sc_loaded, a loader's result slot: the size
 * its allocation fails at. */
#define LOADED_SLOT_BYTES sizeof(struct sc_loaded)

typedef struct counting_loader {
    atomic_int calls;
} counting_loader;

static sc_status load_one(const char *key, sc_loaded *slot, void *ud)
{
    atomic_fetch_add(&((counting_loader *)ud)->calls, 1);
    sc_loaded_set(slot, key, strlen(key));
    return SC_OK;
}

static sc_status load_many(const char *const *keys, size_t n, sc_loaded *const *slots, void *ud)
{
    atomic_fetch_add(&((counting_loader *)ud)->calls, 1);
    for (size_t i = 0; i < n; i++)
        sc_loaded_set(slots[i], keys[i], strlen(keys[i]));
    return SC_OK;
}

/* A fetch that cannot make its loader's result slot (made only for a key
 * that is loaded) fails with SC_ERR_NOMEM without calling the loader,
 * caches nothing and gives its load lock back: the next fetch, on another
 * pod, loads at once instead of waiting for the lock to lapse. */
START_TEST(loader_slot_out_of_memory_fails_cleanly)
{
    sc_options o = test_options("nomem_slot", NULL);
    o.lock_ttl_ms = 20000;
    sc_cache *a = test_open(&o), *b = test_open(&o);
    counting_loader db = {0};
    sc_value *v = NULL;

    atomic_store(&failed, 0);
    atomic_store(&fail_size, LOADED_SLOT_BYTES);
    ck_assert_int_eq(sc_fetch(a, "k", 0, load_one, &db, &v), SC_ERR_NOMEM);
    atomic_store(&fail_size, 0);
    ck_assert_int_eq(atomic_load(&failed), 1);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(atomic_load(&db.calls), 0);
    ck_assert_msg(strstr(sc_errmsg(a), "out of memory") && strstr(sc_errmsg(a), "did not run"), "%s", sc_errmsg(a));
    ck_assert(!test_held(a, "k"));
    long long t0 = test_now_ms();
    ck_assert_int_eq(sc_fetch(b, "k", 0, load_one, &db, &v), SC_OK);
    ck_assert_int_lt(test_now_ms() - t0, 5000);
    ck_assert_int_eq(atomic_load(&db.calls), 1);
    ck_assert_str_eq(sc_value_data(v), "k");
    sc_value_release(v);

    /* The same for a batch: one slot refused, the loader not called. */
    const char *keys[3] = {"b1", "b2", "b3"};
    sc_value *out[3];
    atomic_store(&fail_size, LOADED_SLOT_BYTES);
    ck_assert_int_eq(sc_fetch_batch(a, keys, 3, 0, load_many, &db, out), SC_ERR_NOMEM);
    atomic_store(&fail_size, 0);
    ck_assert_int_eq(atomic_load(&failed), 2);
    ck_assert_int_eq(atomic_load(&db.calls), 1);
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_null(out[i]);
        ck_assert(!test_held(a, keys[i]));
    }
    t0 = test_now_ms();
    ck_assert_int_eq(sc_fetch_batch(b, keys, 3, 0, load_many, &db, out), SC_OK);
    ck_assert_int_lt(test_now_ms() - t0, 5000);
    ck_assert_int_eq(atomic_load(&db.calls), 2);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(sc_value_data(out[i]), keys[i]);
        sc_value_release(out[i]);
    }
    sc_close(a);
    sc_close(b);
}
END_TEST

/* lib/fetch/fetch.h's not-found cache and grace table, each made by its
 * first entry: NEG_SLOTS neg_entry of six 8-byte fields, GRACE_SLOTS
 * grace_entry of seven. */
#define NOT_FOUND_TABLE_BYTES (1024 * (sizeof(char *) + sizeof(size_t) + 4 * sizeof(uint64_t)))
#define GRACE_TABLE_BYTES                                                                                              \
    (4096 * (sizeof(char *) + sizeof(size_t) + sizeof(uint64_t) + sizeof(void *) + 3 * sizeof(uint64_t)))

static sc_status load_nothing(const char *key, sc_loaded *slot, void *ud)
{
    (void)key;
    (void)slot;
    atomic_fetch_add(&((counting_loader *)ud)->calls, 1);
    return SC_NOT_FOUND;
}

/* A pod that cannot make its not-found cache still answers "not found"
 * from the marker in Redis, without loading again, and a later write of the
 * key is seen at once. The table is made by the next "not found" it caches,
 * after which the answer is local. */
START_TEST(not_found_table_out_of_memory_still_answers)
{
    sc_options o = test_options("nomem_neg", NULL);
    o.empty_ttl_ms = 30000;
    sc_cache *a = test_open(&o), *b = test_open(&o);
    counting_loader db = {0};
    sc_value *v = NULL;
    sc_get_info info;

    atomic_store(&failed, 0);
    atomic_store(&fail_size, NOT_FOUND_TABLE_BYTES);
    ck_assert_int_eq(sc_fetch(a, "ghost", 0, load_nothing, &db, &v), SC_NOT_FOUND);
    atomic_store(&fail_size, 0);
    ck_assert_int_eq(atomic_load(&failed), 1);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(atomic_load(&db.calls), 1);
    /* Not cached on a: Redis answers (its marker), the loader is not called. */
    ck_assert_int_eq(sc_fetch_ex(a, "ghost", NULL, load_nothing, &db, &v, &info), SC_NOT_FOUND);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(atomic_load(&db.calls), 1);
    /* That answer was cached (the table made now): the next is local. */
    ck_assert_int_eq(sc_fetch_ex(a, "ghost", NULL, load_nothing, &db, &v, &info), SC_NOT_FOUND);
    ck_assert_int_eq(atomic_load(&db.calls), 1);
    ck_assert_int_eq(atomic_load(&failed), 1);
    sc_load_stats ls;
    sc_load_stats_get(a, SC_WINDOW_TOTAL, &ls);
    ck_assert_uint_eq(ls.misses, 1);
    ck_assert_uint_eq(ls.hits, 2);

    /* A write replaces the marker on every pod, whichever way a held it. */
    ck_assert_int_eq(sc_set(b, "ghost", "born", 4, 0), SC_OK);
    WAIT_UNTIL(test_held(a, "ghost"), 3000);
    ck_assert_int_eq(sc_fetch(a, "ghost", 0, load_nothing, &db, &v), SC_OK);
    ck_assert_str_eq(sc_value_data(v), "born");
    sc_value_release(v);
    ck_assert_int_eq(atomic_load(&db.calls), 1);
    sc_close(a);
    sc_close(b);
}
END_TEST

/* A pod that cannot make its grace table keeps no graced copy: with Redis
 * gone, a value past its TTL is an error, never served from nowhere; a
 * value loaded once the table could be made is served stale as usual. */
START_TEST(grace_table_out_of_memory_keeps_no_grace)
{
    sc_test_redis red;
    ck_assert_int_eq(sc_test_redis_start(&red, "--save \"\" --appendonly no"), 0);
    sc_options o = test_options("nomem_grace", NULL);
    o.redis_port = red.port;
    o.redis_timeout_ms = 300;
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 200;
    sc_cache *a = test_open(&o);
    counting_loader db = {0};
    sc_fetch_opts fo;
    sc_fetch_opts_init(&fo);
    fo.ttl_ms = 200;
    fo.grace_ms = 10000;
    sc_value *v = NULL;
    sc_get_info info;

    atomic_store(&failed, 0);
    atomic_store(&fail_size, GRACE_TABLE_BYTES);
    ck_assert_int_eq(sc_fetch_ex(a, "lost", &fo, load_one, &db, &v, &info), SC_OK);
    atomic_store(&fail_size, 0);
    ck_assert_int_eq(atomic_load(&failed), 1);
    ck_assert_str_eq(sc_value_data(v), "lost");
    sc_value_release(v);
    ck_assert_int_eq(sc_fetch_ex(a, "kept", &fo, load_one, &db, &v, &info), SC_OK);
    sc_value_release(v);
    ck_assert_int_eq(atomic_load(&db.calls), 2);

    sc_test_redis_kill(&red);
    WAIT_UNTIL(test_stats(a).synced == 0, 3000);
    ck_assert_uint_eq(test_stats(a).synced, 0);
    test_sleep_ms(300); /* past both TTLs */
    v = NULL;
    sc_status st = sc_fetch_ex(a, "lost", &fo, load_one, &db, &v, &info);
    ck_assert_msg(st == SC_ERR_REMOTE || st == SC_ERR_TIMEOUT, "lost: %s (%s)", sc_strerror(st), sc_errmsg(a));
    ck_assert_ptr_null(v);
    ck_assert_int_eq(sc_fetch_ex(a, "kept", &fo, load_one, &db, &v, &info), SC_OK);
    ck_assert_int_eq(info.stale, 1);
    ck_assert_str_eq(sc_value_data(v), "kept");
    sc_value_release(v);
    ck_assert_int_eq(atomic_load(&db.calls), 2);
    sc_close(a);
    sc_test_redis_stop(&red);
}
END_TEST

/* lib/load_stats.c's per-thread record: three 8-byte fields, three windows
 * of six counters, a thread id and a link, on 64-byte lines. */
#define LOAD_STATS_RECORD_BYTES ((3 * 8 + 3 * 6 * 8 + sizeof(pthread_t) + sizeof(void *) + 63) / 64 * 64)

typedef struct stats_thread {
    sc_cache *c;
    counting_loader *db;
} stats_thread;

static void *fetch_hot_ten_times(void *p)
{
    stats_thread *t = p;
    for (int i = 0; i < 10; i++) {
        sc_value *v = NULL;
        ck_assert_int_eq(sc_fetch(t->c, "hot", 0, load_one, t->db, &v), SC_OK);
        sc_value_release(v);
    }
    return NULL;
}

/* A thread that cannot make its load-statistics record counts into the
 * cache's shared one, a miss or a hit: nothing is lost, and its next
 * outcome gets a record of its own. */
START_TEST(load_stats_record_out_of_memory_counts_all)
{
    sc_options o = test_options("nomem_stats", NULL);
    sc_cache *a = test_open(&o);
    counting_loader db = {0};
    stats_thread st = {a, &db};
    pthread_t t;

    atomic_store(&failed, 0);
    atomic_store(&fail_aligned_size, LOAD_STATS_RECORD_BYTES);
    pthread_create(&t, NULL, fetch_hot_ten_times, &st);
    pthread_join(t, NULL);
    ck_assert_int_eq(atomic_load(&failed), 1);
    /* Again for this thread (a new thread could adopt the first one's
     * record), whose first outcome is a hit: the hit path's own way to the
     * shared record. */
    atomic_store(&fail_aligned_size, LOAD_STATS_RECORD_BYTES);
    fetch_hot_ten_times(&st);
    ck_assert_int_eq(atomic_load(&failed), 2);
    atomic_store(&fail_aligned_size, 0);
    sc_load_stats tot, cur;
    sc_load_stats_get(a, SC_WINDOW_TOTAL, &tot);
    sc_load_stats_get(a, SC_WINDOW_CURRENT, &cur);
    ck_assert_uint_eq(tot.misses, 1);
    ck_assert_uint_eq(tot.hits, 19);
    ck_assert_uint_eq(cur.hits + cur.misses, 20);
    ck_assert_int_eq(atomic_load(&db.calls), 1);
    sc_close(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nomem");
    TCase *tc = tcase_create("first_use");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tag_index_out_of_memory_keeps_no_copy);
    tcase_add_test(tc, tag_event_out_of_memory_drops_older_copies);
    tcase_add_test(tc, loader_slot_out_of_memory_fails_cleanly);
    tcase_add_test(tc, not_found_table_out_of_memory_still_answers);
    tcase_add_test(tc, grace_table_out_of_memory_keeps_no_grace);
    tcase_add_test(tc, load_stats_record_out_of_memory_counts_all);
    suite_add_tcase(s, tc);
    return test_run_suite(s, NULL);
}
