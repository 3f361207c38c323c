/* Check suite for the namespace sequence rules (sync/sequence.c): every
 * verdict of sc__seq_classify, the order in which the rules apply, the
 * heartbeat gap test and advance. Pure functions: no Redis, no loop.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sync/sync.h"

static sc__event ev_from(const char *sender, uint64_t version)
{
    sc__event ev;

    memset(&ev, 0, sizeof ev);
    ev.format = 1;
    ev.action = SC__ACT_SET;
    ev.key = "k";
    ev.key_len = 1;
    ev.sender = sender;
    ev.sender_len = strlen(sender);
    ev.version = version;
    return ev;
}

static sc__seq seq_at(const char *own, uint64_t last)
{
    sc__seq s;

    sc__seq_init(&s, own);
    s.last_seq = last;
    return s;
}

START_TEST(init_starts_unknown)
{
    sc__seq s;

    memset(&s, 0xa5, sizeof s);
    sc__seq_init(&s, "pod-a");
    ck_assert_uint_eq(s.last_seq, 0);
    ck_assert_str_eq(s.own_id, "pod-a");
    ck_assert_uint_eq(s.own_len, 5);
    sc__seq_init(&s, NULL);
    ck_assert_uint_eq(s.own_len, 0);
}
END_TEST

START_TEST(external_without_version)
{
    sc__seq s = seq_at("pod-a", 10);
    sc__event other = ev_from("svc", 0), own = ev_from("pod-a", 0);

    ck_assert_int_eq(sc__seq_classify(&s, &other), SC__EXTERNAL);
    /* No version means no sequence to judge, whoever sent it. */
    ck_assert_int_eq(sc__seq_classify(&s, &own), SC__EXTERNAL);
    s.last_seq = 0;
    ck_assert_int_eq(sc__seq_classify(&s, &other), SC__EXTERNAL);
}
END_TEST

START_TEST(next_in_sequence_applies)
{
    sc__seq s = seq_at("pod-a", 10);
    sc__event ev = ev_from("pod-b", 11);

    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__APPLY);
}
END_TEST

START_TEST(unknown_last_seq_applies_anything)
{
    sc__seq s = seq_at("pod-a", 0);
    sc__event ev = ev_from("pod-b", 987654321);

    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__APPLY);
    ev.version = UINT64_MAX;
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__APPLY);
}
END_TEST

START_TEST(old_or_duplicate_is_stale)
{
    sc__seq s = seq_at("pod-a", 10);
    sc__event ev = ev_from("pod-b", 10);

    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__STALE);
    ev.version = 1;
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__STALE);
}
END_TEST

START_TEST(skipped_numbers_are_a_gap)
{
    sc__seq s = seq_at("pod-a", 10);
    sc__event ev = ev_from("pod-b", 12);

    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__GAP);
    ev.version = UINT64_MAX;
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__GAP);
}
END_TEST

START_TEST(own_event)
{
    sc__seq s = seq_at("pod-a", 10);
    sc__event ev = ev_from("pod-a", 11);

    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__SELF);
    s.last_seq = 0;
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__SELF);
}
END_TEST

START_TEST(own_duplicate_is_stale)
{
    sc__seq s = seq_at("pod-a", 10);
    sc__event ev = ev_from("pod-a", 10);

    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__STALE);
    ev.version = 3;
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__STALE);
}
END_TEST

START_TEST(own_event_after_lost_events_is_a_gap)
{
    sc__seq s = seq_at("pod-a", 10);
    sc__event ev = ev_from("pod-a", 13);

    /* 11 and 12 were lost; skipping to 13 as SELF would hide them. */
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__GAP);
}
END_TEST

START_TEST(own_id_is_an_exact_byte_compare)
{
    sc__seq s = seq_at("pod-a", 10);
    sc__event ev = ev_from("pod-a", 11);

    ev.sender = "pod-ab";
    ev.sender_len = 6; /* own id is a prefix */
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__APPLY);
    ev.sender = "pod-";
    ev.sender_len = 4; /* sender is a prefix */
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__APPLY);
    ev.sender = "POD-A";
    ev.sender_len = 5;
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__APPLY);
    ev.sender = "pod-a";
    ev.sender_len = 5;
    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__SELF);
    /* The id is compared as stored bytes, not as the pointer. */
    {
        char copy[] = "pod-a";
        ev.sender = copy;
        ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__SELF);
    }
}
END_TEST

START_TEST(empty_own_id_matches_nothing)
{
    sc__seq s = seq_at("", 10), n = seq_at(NULL, 10);
    sc__event ev = ev_from("", 11);

    ck_assert_int_eq(sc__seq_classify(&s, &ev), SC__APPLY);
    ck_assert_int_eq(sc__seq_classify(&n, &ev), SC__APPLY);
}
END_TEST

START_TEST(heartbeat_gap)
{
    sc__seq s = seq_at("pod-a", 10);

    ck_assert_int_eq(sc__seq_heartbeat_gap(&s, 11), 1);
    ck_assert_int_eq(sc__seq_heartbeat_gap(&s, UINT64_MAX), 1);
    ck_assert_int_eq(sc__seq_heartbeat_gap(&s, 10), 0);
    ck_assert_int_eq(sc__seq_heartbeat_gap(&s, 9), 0);
    ck_assert_int_eq(sc__seq_heartbeat_gap(&s, 0), 0);
    s.last_seq = 0; /* unknown: nothing can be judged missing */
    ck_assert_int_eq(sc__seq_heartbeat_gap(&s, 5), 0);
}
END_TEST

START_TEST(advance_only_moves_forward)
{
    sc__seq s = seq_at("pod-a", 0);

    sc__seq_advance(&s, 5);
    ck_assert_uint_eq(s.last_seq, 5);
    sc__seq_advance(&s, 3);
    ck_assert_uint_eq(s.last_seq, 5);
    sc__seq_advance(&s, 5);
    ck_assert_uint_eq(s.last_seq, 5);
    sc__seq_advance(&s, 0);
    ck_assert_uint_eq(s.last_seq, 5);
    sc__seq_advance(&s, UINT64_MAX);
    ck_assert_uint_eq(s.last_seq, UINT64_MAX);
}
END_TEST

START_TEST(a_stream_of_events)
{
    /* A pod that starts cold, follows the stream, sees its own event,
     * a duplicate, and a loss. */
    sc__seq s = seq_at("me", 0);
    struct {
        const char *sender;
        uint64_t version;
        sc__verdict want;
    } stream[] = {
        { "a", 40, SC__APPLY },  { "a", 41, SC__APPLY },  { "me", 42, SC__SELF }, { "b", 42, SC__STALE },
        { "svc", 0, SC__EXTERNAL }, { "b", 43, SC__APPLY }, { "a", 45, SC__GAP },
    };
    size_t i;

    for (i = 0; i < sizeof stream / sizeof stream[0]; i++) {
        sc__event ev = ev_from(stream[i].sender, stream[i].version);
        sc__verdict v = sc__seq_classify(&s, &ev);
        ck_assert_msg(v == stream[i].want, "event %zu: verdict %d", i, (int)v);
        if (v == SC__APPLY || v == SC__SELF)
            sc__seq_advance(&s, ev.version);
    }
    ck_assert_uint_eq(s.last_seq, 43);
}
END_TEST

static Suite *sequence_suite(void)
{
    Suite *s = suite_create("sequence");
    TCase *tc = tcase_create("verdicts");

    tcase_add_test(tc, init_starts_unknown);
    tcase_add_test(tc, external_without_version);
    tcase_add_test(tc, next_in_sequence_applies);
    tcase_add_test(tc, unknown_last_seq_applies_anything);
    tcase_add_test(tc, old_or_duplicate_is_stale);
    tcase_add_test(tc, skipped_numbers_are_a_gap);
    tcase_add_test(tc, own_event);
    tcase_add_test(tc, own_duplicate_is_stale);
    tcase_add_test(tc, own_event_after_lost_events_is_a_gap);
    tcase_add_test(tc, own_id_is_an_exact_byte_compare);
    tcase_add_test(tc, empty_own_id_matches_nothing);
    tcase_add_test(tc, heartbeat_gap);
    tcase_add_test(tc, advance_only_moves_forward);
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
