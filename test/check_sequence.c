/* Check suite for the namespace sequence rules (sync/sequence.c,
 * docs/protocol.md rules 1-5): every verdict of sc__seq_classify, whose an
 * event is (foreign namespace, own instance, duplicate pod id), the ring of
 * recent digests that exposes two different events claiming one version,
 * record / reset, and the digest. Pure functions: no Redis, no loop.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/sync.h"

#define NS "orders"
#define POD "pod-a"
#define INST "0123456789abcdef"

/* An event as the decoder hands it over: every string NUL-terminated, ""
 * when absent. */
static sc__event ev_full(const char *ns, const char *sender, const char *inst, uint64_t version)
{
    sc__event ev;

    memset(&ev, 0, sizeof ev);
    ev.format = 1;
    ev.action = SC__ACT_SET;
    ev.key = "k";
    ev.key_len = 1;
    ev.has_ns = ns != NULL;
    ev.ns = ns ? ns : "";
    ev.ns_len = strlen(ev.ns);
    ev.sender = sender ? sender : "";
    ev.sender_len = strlen(ev.sender);
    ev.inst = inst ? inst : "";
    ev.inst_len = strlen(ev.inst);
    ev.epoch = "";
    ev.version = version;
    return ev;
}

static sc__seq seq_at(uint64_t last)
{
    sc__seq s;

    sc__seq_init(&s, NS, POD, INST);
    s.last_seq = last;
    return s;
}

/* ----------------------------------------------------------------- init -- */

START_TEST(init_starts_unknown)
{
    static sc__seq s;
    size_t i;

    memset(&s, 0xa5, sizeof s);
    sc__seq_init(&s, NS, POD, INST);
    ck_assert_uint_eq(s.last_seq, 0);
    ck_assert_uint_eq(s.last_digest, 0);
    ck_assert_str_eq(s.epoch, "");
    ck_assert_str_eq(s.ns, NS);
    ck_assert_uint_eq(s.ns_len, strlen(NS));
    ck_assert_str_eq(s.pod_id, POD);
    ck_assert_uint_eq(s.pod_len, strlen(POD));
    ck_assert_str_eq(s.inst, INST);
    ck_assert_uint_eq(s.inst_len, 16);
    for (i = 0; i < SC__SEQ_RECENT; i++) {
        ck_assert_uint_eq(s.recent[i].version, 0);
        ck_assert_uint_eq(s.recent[i].digest, 0);
    }
    /* The strings are borrowed, not copied. */
    ck_assert_ptr_eq(s.ns, NS);

    sc__seq_init(&s, NULL, NULL, NULL);
    ck_assert_str_eq(s.ns, "");
    ck_assert_uint_eq(s.ns_len, 0);
    ck_assert_uint_eq(s.pod_len, 0);
    ck_assert_uint_eq(s.inst_len, 0);
}
END_TEST

/* ------------------------------------------------------------- classify -- */

START_TEST(external_without_version)
{
    sc__seq s = seq_at(10);

    ck_assert_int_eq(sc__seq_classify(&s, 0), SC__EXTERNAL);
    /* No version means no sequence to judge, whatever the state. */
    s.last_seq = 0;
    ck_assert_int_eq(sc__seq_classify(&s, 0), SC__EXTERNAL);
    s.last_seq = UINT64_MAX;
    ck_assert_int_eq(sc__seq_classify(&s, 0), SC__EXTERNAL);
}
END_TEST

START_TEST(next_in_sequence)
{
    sc__seq s = seq_at(10);

    ck_assert_int_eq(sc__seq_classify(&s, 11), SC__NEXT);
    s.last_seq = 1;
    ck_assert_int_eq(sc__seq_classify(&s, 2), SC__NEXT);
    s.last_seq = UINT64_MAX - 1;
    ck_assert_int_eq(sc__seq_classify(&s, UINT64_MAX), SC__NEXT);
}
END_TEST

START_TEST(unknown_last_seq_takes_anything)
{
    sc__seq s = seq_at(0);

    ck_assert_int_eq(sc__seq_classify(&s, 1), SC__NEXT);
    ck_assert_int_eq(sc__seq_classify(&s, 987654321), SC__NEXT);
    ck_assert_int_eq(sc__seq_classify(&s, UINT64_MAX), SC__NEXT);
}
END_TEST

START_TEST(old_or_duplicate_is_stale)
{
    sc__seq s = seq_at(10);

    ck_assert_int_eq(sc__seq_classify(&s, 10), SC__STALE);
    ck_assert_int_eq(sc__seq_classify(&s, 9), SC__STALE);
    ck_assert_int_eq(sc__seq_classify(&s, 1), SC__STALE);
    s.last_seq = UINT64_MAX;
    ck_assert_int_eq(sc__seq_classify(&s, UINT64_MAX), SC__STALE);
    ck_assert_int_eq(sc__seq_classify(&s, 1), SC__STALE);
}
END_TEST

START_TEST(skipped_numbers_are_a_gap)
{
    sc__seq s = seq_at(10);

    ck_assert_int_eq(sc__seq_classify(&s, 12), SC__GAP);
    ck_assert_int_eq(sc__seq_classify(&s, 1000), SC__GAP);
    ck_assert_int_eq(sc__seq_classify(&s, UINT64_MAX), SC__GAP);
}
END_TEST

/* ------------------------------------------------------- whose an event -- */

START_TEST(foreign_namespace)
{
    sc__seq s = seq_at(10);
    sc__event ev = ev_full(NS, "pod-b", "fedcba9876543210", 11);

    ck_assert_int_eq(sc__seq_foreign(&s, &ev), 0);
    ev = ev_full("billing", "pod-b", "fedcba9876543210", 11);
    ck_assert_int_eq(sc__seq_foreign(&s, &ev), 1);
    /* Byte-exact: prefixes either way and case are other namespaces. */
    ev = ev_full("orders2", "pod-b", "", 11);
    ck_assert_int_eq(sc__seq_foreign(&s, &ev), 1);
    ev = ev_full("order", "pod-b", "", 11);
    ck_assert_int_eq(sc__seq_foreign(&s, &ev), 1);
    ev = ev_full("ORDERS", "pod-b", "", 11);
    ck_assert_int_eq(sc__seq_foreign(&s, &ev), 1);
    /* Present but empty is a namespace too, and not ours. */
    ev = ev_full("", "pod-b", "", 11);
    ck_assert_int_eq(sc__seq_foreign(&s, &ev), 1);
    /* Absent: meant for every namespace on the channel. */
    ev = ev_full(NULL, "svc", "", 0);
    ck_assert_int_eq(sc__seq_foreign(&s, &ev), 0);
    /* Compared as bytes, not as pointers. */
    {
        char copy[] = NS;
        ev = ev_full(copy, "pod-b", "", 11);
        ck_assert_int_eq(sc__seq_foreign(&s, &ev), 0);
    }
    /* Our own instance naming another namespace is still foreign. */
    ev = ev_full("billing", POD, INST, 11);
    ck_assert_int_eq(sc__seq_foreign(&s, &ev), 1);
}
END_TEST

START_TEST(own_is_the_instance_id)
{
    sc__seq s = seq_at(10);
    sc__event ev = ev_full(NS, POD, INST, 11);

    ck_assert_int_eq(sc__seq_own(&s, &ev), 1);
    /* The instance decides, not the pod id. */
    ev = ev_full(NS, "someone-else", INST, 11);
    ck_assert_int_eq(sc__seq_own(&s, &ev), 1);
    ev = ev_full(NS, POD, "fedcba9876543210", 11);
    ck_assert_int_eq(sc__seq_own(&s, &ev), 0);
    ev = ev_full(NS, POD, "0123456789abcde", 11); /* a prefix */
    ck_assert_int_eq(sc__seq_own(&s, &ev), 0);
    ev = ev_full(NS, POD, "0123456789abcdef0", 11); /* longer */
    ck_assert_int_eq(sc__seq_own(&s, &ev), 0);
    ev = ev_full(NS, POD, "0123456789ABCDEF", 11);
    ck_assert_int_eq(sc__seq_own(&s, &ev), 0);
    ev = ev_full(NS, POD, "", 11);
    ck_assert_int_eq(sc__seq_own(&s, &ev), 0);
    {
        char copy[] = INST;
        ev = ev_full(NS, POD, copy, 11);
        ck_assert_int_eq(sc__seq_own(&s, &ev), 1);
    }
    /* Whether an event is own does not depend on its version. */
    ev = ev_full(NS, POD, INST, 0);
    ck_assert_int_eq(sc__seq_own(&s, &ev), 1);
}
END_TEST

START_TEST(empty_inst_is_never_own)
{
    sc__seq s, n;
    sc__event ev = ev_full(NS, POD, "", 11);

    /* An outside publisher names no instance: that must not make every
     * pod without one (or with an empty one) take the event as its own. */
    sc__seq_init(&s, NS, POD, "");
    sc__seq_init(&n, NS, POD, NULL);
    ck_assert_int_eq(sc__seq_own(&s, &ev), 0);
    ck_assert_int_eq(sc__seq_own(&n, &ev), 0);
    ev = ev_full(NS, POD, INST, 11);
    ck_assert_int_eq(sc__seq_own(&s, &ev), 0);
    ck_assert_int_eq(sc__seq_own(&n, &ev), 0);
}
END_TEST

START_TEST(same_pod_id_other_instance)
{
    sc__seq s = seq_at(10);
    sc__event ev = ev_full(NS, POD, "fedcba9876543210", 11);

    ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 1);
    /* An event without an instance under our pod id is another process
     * too. */
    ev = ev_full(NS, POD, "", 11);
    ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 1);
    /* Our own event is not a duplicate pod id. */
    ev = ev_full(NS, POD, INST, 11);
    ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 0);
    /* Another pod id, byte-exact. */
    ev = ev_full(NS, "pod-b", "fedcba9876543210", 11);
    ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 0);
    ev = ev_full(NS, "pod-ab", "fedcba9876543210", 11);
    ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 0);
    ev = ev_full(NS, "pod-", "fedcba9876543210", 11);
    ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 0);
    ev = ev_full(NS, "POD-A", "fedcba9876543210", 11);
    ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 0);
    {
        char copy[] = POD;
        ev = ev_full(NS, copy, "fedcba9876543210", 11);
        ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 1);
    }
}
END_TEST

START_TEST(empty_pod_id_matches_nothing)
{
    sc__seq s, n;
    sc__event ev = ev_full(NS, "", "fedcba9876543210", 11);

    sc__seq_init(&s, NS, "", INST);
    sc__seq_init(&n, NS, NULL, INST);
    ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 0);
    ck_assert_int_eq(sc__seq_same_pod_id(&n, &ev), 0);
    ev = ev_full(NULL, "", "", 0);
    ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), 0);
}
END_TEST

/* ----------------------------------------------- conflict, record, reset -- */

START_TEST(record_moves_last_seq_forward_only)
{
    sc__seq s = seq_at(0);

    sc__seq_record(&s, 5, 55);
    ck_assert_uint_eq(s.last_seq, 5);
    ck_assert_uint_eq(s.last_digest, 55);
    /* An older event (a replayed one) is remembered but moves nothing. */
    sc__seq_record(&s, 3, 33);
    ck_assert_uint_eq(s.last_seq, 5);
    ck_assert_uint_eq(s.last_digest, 55);
    /* The same version again keeps the first digest as last_digest. */
    sc__seq_record(&s, 5, 56);
    ck_assert_uint_eq(s.last_seq, 5);
    ck_assert_uint_eq(s.last_digest, 55);
    sc__seq_record(&s, 6, 66);
    ck_assert_uint_eq(s.last_seq, 6);
    ck_assert_uint_eq(s.last_digest, 66);
    sc__seq_record(&s, UINT64_MAX, 77);
    ck_assert_uint_eq(s.last_seq, UINT64_MAX);
    ck_assert_uint_eq(s.last_digest, 77);
}
END_TEST

START_TEST(conflict_is_another_digest_at_a_recent_version)
{
    sc__seq s = seq_at(0);

    /* Nothing recorded: nothing to conflict with. */
    ck_assert_int_eq(sc__seq_conflict(&s, 7, 1234), 0);
    sc__seq_record(&s, 7, 1234);
    ck_assert_int_eq(sc__seq_conflict(&s, 7, 1234), 0); /* the same event again */
    ck_assert_int_eq(sc__seq_conflict(&s, 7, 4321), 1); /* another one */
    ck_assert_int_eq(sc__seq_conflict(&s, 8, 4321), 0);
    ck_assert_int_eq(sc__seq_conflict(&s, 6, 4321), 0);
    /* Older versions recorded later are remembered too. */
    sc__seq_record(&s, 8, 88);
    sc__seq_record(&s, 3, 33);
    ck_assert_int_eq(sc__seq_conflict(&s, 3, 34), 1);
    ck_assert_int_eq(sc__seq_conflict(&s, 7, 4321), 1);
    ck_assert_int_eq(sc__seq_conflict(&s, 8, 89), 1);
}
END_TEST

START_TEST(conflict_ring_remembers_the_recent_ones)
{
    sc__seq s = seq_at(0);
    uint64_t base = 1000000, v;

    for (v = base; v < base + 3 * SC__SEQ_RECENT; v++)
        sc__seq_record(&s, v, sc__seq_digest(&v, sizeof v));
    ck_assert_uint_eq(s.last_seq, base + 3 * SC__SEQ_RECENT - 1);
    /* The last SC__SEQ_RECENT versions are all remembered... */
    for (v = base + 2 * SC__SEQ_RECENT; v < base + 3 * SC__SEQ_RECENT; v++) {
        uint64_t d = sc__seq_digest(&v, sizeof v);
        ck_assert_int_eq(sc__seq_conflict(&s, v, d), 0);
        ck_assert_msg(sc__seq_conflict(&s, v, d ^ 1) == 1, "version %llu forgotten", (unsigned long long)v);
    }
    /* ...older ones have been overwritten by their slot's successor, and a
     * forgotten version is no conflict (the log decides then). */
    for (v = base; v < base + 2 * SC__SEQ_RECENT; v++)
        ck_assert_int_eq(sc__seq_conflict(&s, v, 42), 0);
}
END_TEST

START_TEST(reset_starts_a_new_history)
{
    sc__seq s = seq_at(0);

    sc__seq_record(&s, 10, 100);
    sc__seq_record(&s, 11, 110);
    sc__seq_reset(&s, 500, 5000, "00000000000000ab");
    ck_assert_uint_eq(s.last_seq, 500);
    ck_assert_uint_eq(s.last_digest, 5000);
    ck_assert_str_eq(s.epoch, "00000000000000ab");
    /* What was remembered belonged to the old history. */
    ck_assert_int_eq(sc__seq_conflict(&s, 10, 999), 0);
    ck_assert_int_eq(sc__seq_conflict(&s, 11, 999), 0);
    for (size_t i = 0; i < SC__SEQ_RECENT; i++)
        ck_assert_uint_eq(s.recent[i].version, 0);
    ck_assert_int_eq(sc__seq_classify(&s, 501), SC__NEXT);
    ck_assert_int_eq(sc__seq_classify(&s, 500), SC__STALE);
    ck_assert_int_eq(sc__seq_classify(&s, 502), SC__GAP);
    /* The identity is kept. */
    ck_assert_str_eq(s.ns, NS);
    ck_assert_str_eq(s.inst, INST);

    /* NULL keeps the epoch; the digest may be unknown. */
    sc__seq_reset(&s, 600, 0, NULL);
    ck_assert_uint_eq(s.last_seq, 600);
    ck_assert_uint_eq(s.last_digest, 0);
    ck_assert_str_eq(s.epoch, "00000000000000ab");
    /* Back to unknown. */
    sc__seq_reset(&s, 0, 0, "");
    ck_assert_uint_eq(s.last_seq, 0);
    ck_assert_str_eq(s.epoch, "");
    ck_assert_int_eq(sc__seq_classify(&s, 12345), SC__NEXT);
    /* An over-long epoch is cut to 16 characters, never overflows. */
    sc__seq_reset(&s, 1, 0, "0123456789abcdef-and-more");
    ck_assert_str_eq(s.epoch, "0123456789abcdef");
}
END_TEST

/* --------------------------------------------------------------- digest -- */

START_TEST(digest_is_fnv1a_and_never_zero)
{
    char buf[64];
    uint64_t i;
    int zeros = 0;

    /* FNV-1a 64 reference values. */
    ck_assert_uint_eq(sc__seq_digest("", 0), UINT64_C(0xcbf29ce484222325));
    ck_assert_uint_eq(sc__seq_digest("a", 1), UINT64_C(0xaf63dc4c8601ec8c));
    ck_assert_uint_eq(sc__seq_digest("foobar", 6), UINT64_C(0x85944171f73967e8));
    /* NUL bytes count; it never reads past len. */
    ck_assert_uint_ne(sc__seq_digest("a\0b", 3), sc__seq_digest("a", 1));
    ck_assert_uint_eq(sc__seq_digest("abcdef", 3), sc__seq_digest("abc", 3));
    ck_assert_uint_ne(sc__seq_digest("abd", 3), sc__seq_digest("abc", 3));
    /* 0 means "unknown" in the state, so no event may digest to it: these
     * 8 bytes are an input whose FNV-1a 64 is 0, which becomes 1. */
    ck_assert_uint_eq(sc__seq_digest("\xd5\x6b\xb9\x53\x42\x87\x08\x36", 8), 1);
    for (i = 0; i < 200000; i++) {
        int n = snprintf(buf, sizeof buf, "event-%llu", (unsigned long long)i);
        if (sc__seq_digest(buf, (size_t)n) == 0 || sc__seq_digest(&i, sizeof i) == 0)
            zeros++;
    }
    ck_assert_int_eq(zeros, 0);
}
END_TEST

/* ------------------------------------------------------ the rules in use -- */

START_TEST(classify_ignores_who_sent_it)
{
    sc__seq s = seq_at(10);

    /* An own event after lost ones is still a gap: skipping to it as "own"
     * would hide 11 and 12. Own / foreign are separate questions. */
    ck_assert_int_eq(sc__seq_classify(&s, 13), SC__GAP);
    ck_assert_int_eq(sc__seq_classify(&s, 10), SC__STALE);
    ck_assert_int_eq(sc__seq_classify(&s, 11), SC__NEXT);
}
END_TEST

START_TEST(a_stream_of_events)
{
    /* A pod that starts cold, follows the stream, sees its own event, a
     * replay, a forged duplicate, another namespace's event, an outside
     * publisher, a duplicate pod id and a loss -- in the order the syncer
     * asks the questions (docs/protocol.md rules 1-4). */
    sc__seq s = seq_at(0);
    enum { APPLY, OWN, DROP_FOREIGN, DROP_STALE, FORGED, EXTERNAL, GAP };
    struct {
        const char *ns, *sender, *inst, *body;
        uint64_t version;
        int want, dup_pod;
    } stream[] = {
        {NS, "a", "aaaaaaaaaaaaaaaa", "one", 40, APPLY, 0},
        {NS, "a", "aaaaaaaaaaaaaaaa", "two", 41, APPLY, 0},
        {NS, POD, INST, "mine", 42, OWN, 0},
        {NS, "b", "bbbbbbbbbbbbbbbb", "two", 41, DROP_STALE, 0},        /* a replay of 41 */
        {NS, "b", "bbbbbbbbbbbbbbbb", "other", 41, FORGED, 0},          /* another event as 41 */
        {"billing", "c", "cccccccccccccccc", "x", 43, DROP_FOREIGN, 0}, /* never touches the sequence */
        {NULL, "svc", "", "inval", 0, EXTERNAL, 0},
        {NS, POD, "dddddddddddddddd", "dup", 43, APPLY, 1},
        {NS, "a", "aaaaaaaaaaaaaaaa", "later", 45, GAP, 0},
    };
    size_t i;

    for (i = 0; i < sizeof stream / sizeof stream[0]; i++) {
        sc__event ev = ev_full(stream[i].ns, stream[i].sender, stream[i].inst, stream[i].version);
        uint64_t d = sc__seq_digest(stream[i].body, strlen(stream[i].body));
        int got;

        ck_assert_int_eq(sc__seq_same_pod_id(&s, &ev), stream[i].dup_pod);
        if (sc__seq_foreign(&s, &ev)) {
            got = DROP_FOREIGN;
        } else {
            sc__verdict v = sc__seq_classify(&s, ev.version);
            if (v == SC__EXTERNAL)
                got = EXTERNAL;
            else if (v == SC__GAP)
                got = GAP;
            else if (sc__seq_conflict(&s, ev.version, d))
                got = FORGED;
            else if (v == SC__STALE)
                got = DROP_STALE;
            else
                got = sc__seq_own(&s, &ev) ? OWN : APPLY;
            if (got == APPLY || got == OWN)
                sc__seq_record(&s, ev.version, d);
        }
        ck_assert_msg(got == stream[i].want, "event %zu: got %d, want %d", i, got, stream[i].want);
    }
    ck_assert_uint_eq(s.last_seq, 43);
    ck_assert_uint_eq(s.last_digest, sc__seq_digest("dup", 3));
}
END_TEST

static Suite *sequence_suite(void)
{
    Suite *s = suite_create("sequence");
    TCase *tc = tcase_create("rules");

    tcase_add_test(tc, init_starts_unknown);
    tcase_add_test(tc, external_without_version);
    tcase_add_test(tc, next_in_sequence);
    tcase_add_test(tc, unknown_last_seq_takes_anything);
    tcase_add_test(tc, old_or_duplicate_is_stale);
    tcase_add_test(tc, skipped_numbers_are_a_gap);
    tcase_add_test(tc, foreign_namespace);
    tcase_add_test(tc, own_is_the_instance_id);
    tcase_add_test(tc, empty_inst_is_never_own);
    tcase_add_test(tc, same_pod_id_other_instance);
    tcase_add_test(tc, empty_pod_id_matches_nothing);
    tcase_add_test(tc, record_moves_last_seq_forward_only);
    tcase_add_test(tc, conflict_is_another_digest_at_a_recent_version);
    tcase_add_test(tc, conflict_ring_remembers_the_recent_ones);
    tcase_add_test(tc, reset_starts_a_new_history);
    tcase_add_test(tc, digest_is_fnv1a_and_never_zero);
    tcase_add_test(tc, classify_ignores_who_sent_it);
    tcase_add_test(tc, a_stream_of_events);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sequence_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
