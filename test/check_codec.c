/* Check suite for the event codec (sync/event.c) and base64 (sync/base64.c):
 * round trips in both encodings, the exact bytes real publishers send (Redis'
 * cmsgpack and a Lua script that concatenates JSON), and malformed input of
 * every kind. Needs no Redis: the publisher vectors were captured once from
 * redis-server 7 and are spelled out below. Inputs under test are copied into
 * buffers of their exact size so that a sanitizer build catches any read past
 * the end.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/sync.h"

/* ------------------------------------------------------------- helpers -- */

/* Decodes a copy of buf held in a heap block of exactly len bytes. */
static sc_status decode_exact(const void *buf, size_t len, size_t max_bytes, sc__event *ev)
{
    void *copy = malloc(len ? len : 1);
    sc_status st;

    ck_assert_ptr_nonnull(copy);
    if (len)
        memcpy(copy, buf, len);
    st = sc__event_decode(copy, len, max_bytes, ev);
    free(copy);
    return st;
}

static sc_status decode_str(const char *s, sc__event *ev)
{
    return decode_exact(s, strlen(s), 0, ev);
}

/* Expects s to be rejected as malformed. */
static void expect_codec_error(const void *buf, size_t len)
{
    sc__event ev;

    ck_assert_int_eq(decode_exact(buf, len, 0, &ev), SC_ERR_CODEC);
    ck_assert_ptr_null(ev.storage_);
}

static void expect_json_error(const char *s)
{
    expect_codec_error(s, strlen(s));
}

/* A byte builder for hand-made msgpack. */
typedef struct mb {
    unsigned char b[4096];
    size_t n;
} mb;

static void mb_byte(mb *m, unsigned c)
{
    ck_assert_uint_lt(m->n, sizeof m->b);
    m->b[m->n++] = (unsigned char)c;
}

static void mb_bytes(mb *m, const void *p, size_t n)
{
    ck_assert_uint_le(m->n + n, sizeof m->b);
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void mb_be(mb *m, int width, uint64_t v)
{
    int i;

    for (i = width - 1; i >= 0; i--)
        mb_byte(m, (unsigned)(v >> (8 * i)) & 0xff);
}

/* A str in its smallest form, as cmsgpack writes it. */
static void mb_strn(mb *m, const char *s, size_t n)
{
    if (n < 32) {
        mb_byte(m, 0xa0 | (unsigned)n);
    } else if (n < 256) {
        mb_byte(m, 0xd9);
        mb_be(m, 1, n);
    } else {
        mb_byte(m, 0xda);
        mb_be(m, 2, n);
    }
    mb_bytes(m, s, n);
}

static void mb_str(mb *m, const char *s)
{
    mb_strn(m, s, strlen(s));
}

/* Starts a fixmap of n pairs with "action" and "key" already in it. */
static void mb_start(mb *m, unsigned pairs, const char *action, const char *key)
{
    m->n = 0;
    mb_byte(m, 0x80 | pairs);
    mb_str(m, "action");
    mb_str(m, action);
    mb_str(m, "key");
    mb_str(m, key);
}

static sc__event make_event(sc__action a, const char *key, const char *sender, uint64_t version)
{
    sc__event ev;

    memset(&ev, 0, sizeof ev);
    ev.format = 1;
    ev.action = a;
    ev.key = key;
    ev.key_len = strlen(key);
    ev.sender = sender;
    ev.sender_len = strlen(sender);
    ev.version = version;
    return ev;
}

static void assert_same_event(const sc__event *want, const sc__event *got)
{
    ck_assert_int_eq(got->format, 1);
    ck_assert_int_eq(got->action, want->action);
    ck_assert_uint_eq(got->key_len, want->key_len);
    ck_assert_mem_eq(got->key, want->key, want->key_len);
    ck_assert_int_eq(got->key[got->key_len], '\0');
    ck_assert_uint_eq(got->sender_len, want->sender_len);
    ck_assert_mem_eq(got->sender, want->sender, want->sender_len);
    ck_assert_int_eq(got->sender[got->sender_len], '\0');
    ck_assert_uint_eq(got->version, want->version);
    ck_assert_uint_eq(got->ttl_ms, want->ttl_ms);
    ck_assert_uint_eq(got->time_ms, want->time_ms);
    ck_assert_int_eq(got->has_value, want->action == SC__ACT_SET);
    if (want->action == SC__ACT_SET) {
        ck_assert_uint_eq(got->value_len, want->value_len);
        if (want->value_len)
            ck_assert_mem_eq(got->value, want->value, want->value_len);
        ck_assert_int_eq(((const char *)got->value)[got->value_len], '\0');
    } else {
        ck_assert_ptr_null(got->value);
        ck_assert_uint_eq(got->value_len, 0);
    }
}

/* Encodes ev in fmt, decodes the result and compares; returns the encoding
 * (caller frees) for tests that look at the bytes. */
static char *round_trip(const sc__event *ev, sc_wire_format fmt, size_t *len)
{
    sc__event back;
    char *buf = NULL;

    ck_assert_int_eq(sc__event_encode(ev, fmt, &buf, len), SC_OK);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(decode_exact(buf, *len, 0, &back), SC_OK);
    assert_same_event(ev, &back);
    sc__event_free(&back);
    return buf;
}

static void round_trip_both(const sc__event *ev)
{
    size_t len;

    free(round_trip(ev, SC_WIRE_MSGPACK, &len));
    free(round_trip(ev, SC_WIRE_JSON, &len));
}

/* -------------------------------------------------------------- base64 -- */

static const char *const rfc4648[][2] = {
    { "", "" },         { "f", "Zg==" },         { "fo", "Zm8=" },         { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};

START_TEST(base64_rfc4648_vectors)
{
    size_t i;

    for (i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        const char *plain = rfc4648[i][0], *enc = rfc4648[i][1];
        char out[16], dec[16];

        ck_assert_uint_eq(sc__base64_encoded_len(strlen(plain)), strlen(enc));
        sc__base64_encode(plain, strlen(plain), out);
        ck_assert_str_eq(out, enc);
        ck_assert_uint_ge(sc__base64_decoded_max(strlen(enc)), strlen(plain));
        ck_assert_int_eq(sc__base64_decode(enc, strlen(enc), dec), (long long)strlen(plain));
        ck_assert_mem_eq(dec, plain, strlen(plain));
    }
}
END_TEST

START_TEST(base64_all_bytes)
{
    unsigned char in[256], back[256];
    char enc[400];
    int i;

    for (i = 0; i < 256; i++)
        in[i] = (unsigned char)i;
    /* Every length 0..256 exercises all three tail shapes. */
    for (i = 0; i <= 256; i++) {
        sc__base64_encode(in, (size_t)i, enc);
        ck_assert_uint_eq(strlen(enc), sc__base64_encoded_len((size_t)i));
        ck_assert_int_eq(sc__base64_decode(enc, strlen(enc), back), i);
        ck_assert_mem_eq(back, in, (size_t)i);
    }
    sc__base64_encode(in + 250, 6, enc);
    ck_assert_str_eq(enc, "+vv8/f7/");
}
END_TEST

START_TEST(base64_rejects_bad_input)
{
    static const char *const bad[] = {
        "Zg",       /* no padding */
        "Zg=",      /* length not a multiple of 4 */
        "Zm9vY",    /* length not a multiple of 4 */
        "Z===",     /* three pad characters */
        "====",     /* nothing but padding */
        "=Zg=",     /* padding first */
        "Zg=A",     /* data after padding */
        "Zg==Zg==", /* padding before the last quantum */
        "Zm9v\nYmFy", /* whitespace */
        "Zm9*",     /* not in the alphabet */
        "Zm9-",     /* the URL-safe alphabet */
        "Zh==",     /* non-zero bits under the padding */
        "Zm9=",     /* non-zero bits under the padding */
    };
    char out[16];
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(sc__base64_decode(bad[i], strlen(bad[i]), out) == -1, "accepted %s", bad[i]);
    /* Only len bytes are read: a valid prefix decodes, a cut one fails. */
    ck_assert_int_eq(sc__base64_decode("Zm9vYmFy", 4, out), 3);
    ck_assert_int_eq(sc__base64_decode("Zm9vYmFy", 6, out), -1);
    ck_assert_int_eq(sc__base64_decode("Zm9vYmFy", 7, out), -1);
    /* A NUL inside the given length is just another bad character. */
    ck_assert_int_eq(sc__base64_decode("Zm\0v", 4, out), -1);
}
END_TEST

/* ---------------------------------------------------------- round trips -- */

START_TEST(round_trip_every_action)
{
    static const sc__action actions[] = { SC__ACT_SET, SC__ACT_INVALIDATE, SC__ACT_DELETE, SC__ACT_CLEAR,
                                          SC__ACT_HEARTBEAT };
    size_t i;

    for (i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        int keyed = actions[i] != SC__ACT_CLEAR && actions[i] != SC__ACT_HEARTBEAT;
        sc__event ev = make_event(actions[i], keyed ? "user:42" : "", "pod-a", 12345);
        ev.ttl_ms = 60000;
        ev.time_ms = 1763689000123ULL;
        if (actions[i] == SC__ACT_SET) {
            ev.has_value = 1;
            ev.value = "hello";
            ev.value_len = 5;
        }
        round_trip_both(&ev);
    }
}
END_TEST

START_TEST(round_trip_binary_values)
{
    static const unsigned char bin[] = { 0x00, 0xff, 'a', 0x00, 0x00, 0xfe, 0x80, 0x7f, 0xff };
    sc__event ev = make_event(SC__ACT_SET, "k", "pod", 1);
    size_t big = 1u << 20, i;
    unsigned char *v = malloc(big);

    ev.has_value = 1;
    ev.value = bin;
    ev.value_len = sizeof bin;
    round_trip_both(&ev);

    ev.value = "";
    ev.value_len = 0; /* an empty value is still a value */
    round_trip_both(&ev);

    ck_assert_ptr_nonnull(v);
    for (i = 0; i < big; i++)
        v[i] = (unsigned char)(i * 7 + (i >> 8));
    ev.value = v;
    ev.value_len = big;
    round_trip_both(&ev);
    free(v);
}
END_TEST

START_TEST(round_trip_awkward_strings)
{
    static const char *const keys[] = {
        "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x94\x91", /* ключ/日本/🔑 */
        "quote\" backslash\\ slash/ tab\t nl\n cr\r bell\x07 esc\x1b del\x7f",
        "\\u0000 is six characters here",
        "not utf-8: \xff\xfe\xc3",
        "\x01",
    };
    size_t i;

    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        sc__event ev = make_event(SC__ACT_INVALIDATE, keys[i], keys[i], 9);
        round_trip_both(&ev);
    }
}
END_TEST

START_TEST(round_trip_large_numbers)
{
    static const uint64_t numbers[] = { 0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295ULL, 4294967296ULL,
                                        (1ULL << 53) - 1, 1ULL << 53, (1ULL << 53) + 1, UINT64_MAX };
    size_t i;

    for (i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        sc__event ev = make_event(SC__ACT_DELETE, "k", "p", numbers[i]);
        ev.ttl_ms = numbers[i];
        ev.time_ms = numbers[i];
        round_trip_both(&ev);
    }
}
END_TEST

START_TEST(json_numbers_switch_to_strings_at_2_53)
{
    sc__event ev = make_event(SC__ACT_INVALIDATE, "k", "p", (1ULL << 53) - 1);
    size_t len;
    char *s;

    ev.ttl_ms = 1ULL << 53;
    ev.time_ms = UINT64_MAX;
    s = round_trip(&ev, SC_WIRE_JSON, &len);
    ck_assert_uint_eq(strlen(s), len);
    ck_assert_ptr_nonnull(strstr(s, "\"version\":9007199254740991,"));
    ck_assert_ptr_nonnull(strstr(s, "\"ttl\":\"9007199254740992\""));
    ck_assert_ptr_nonnull(strstr(s, "\"time\":\"18446744073709551615\""));
    free(s);
}
END_TEST

START_TEST(encoding_shape)
{
    sc__event ev = make_event(SC__ACT_SET, "k", "p", 5);
    size_t len;
    char *s;

    ev.has_value = 1;
    ev.value = "\x00\xff";
    ev.value_len = 2;
    s = round_trip(&ev, SC_WIRE_JSON, &len);
    ck_assert_str_eq(s, "{\"format\":1,\"action\":\"set\",\"key\":\"k\",\"sender\":\"p\","
                        "\"value\":\"AP8=\",\"ttl\":0,\"version\":5,\"time\":0,\"epoch\":\"\"}");
    free(s);
    /* msgpack: a fixmap of 9 whose value travels as bin 8. */
    s = round_trip(&ev, SC_WIRE_MSGPACK, &len);
    ck_assert_uint_eq((unsigned char)s[0], 0x89);
    ck_assert_ptr_nonnull(memmem(s, len, "\xa5value\xc4\x02\x00\xff", 9));
    free(s);
    /* Only set carries a value, whatever the event holds. */
    ev.action = SC__ACT_INVALIDATE;
    s = round_trip(&ev, SC_WIRE_JSON, &len);
    ck_assert_ptr_null(strstr(s, "value"));
    free(s);
    s = round_trip(&ev, SC_WIRE_MSGPACK, &len);
    ck_assert_uint_eq((unsigned char)s[0], 0x88);
    ck_assert_ptr_null(memmem(s, len, "value", 5));
    free(s);
}
END_TEST

/* An invalidate's digest (server-assisted invalidation) survives both
 * encodings and both decoders; without one, none is written. */
START_TEST(digest_round_trip)
{
    sc__event ev = make_event(SC__ACT_INVALIDATE, "k", "p", 9);
    ev.digest = "0123456789abcdef0123456789abcdef01234567";
    ev.digest_len = 40;
    for (int f = 0; f < 2; f++) {
        size_t len;
        sc__event back;
        char *buf = round_trip(&ev, f ? SC_WIRE_JSON : SC_WIRE_MSGPACK, &len);
        ck_assert_int_eq(sc__event_decode(buf, len, 0, &back), SC_OK);
        ck_assert_uint_eq(back.digest_len, 40);
        ck_assert_str_eq(back.digest, ev.digest);
        sc__event_free(&back);
        free(buf);
    }
    ev.digest = NULL;
    ev.digest_len = 0;
    size_t len;
    char *buf = round_trip(&ev, SC_WIRE_JSON, &len);
    ck_assert_ptr_null(memmem(buf, len, "digest", 6));
    free(buf);
}
END_TEST

/* A template built in the caller's scratch is the same bytes as one built
 * in a fresh allocation: a write's event then costs no malloc. An event that
 * does not fit the scratch (nor a NULL scratch) gets an allocation of its
 * own, and the scratch is left as it was. */
START_TEST(template_in_scratch)
{
    static char big[4096];
    memset(big, 'b', sizeof big);
    for (int f = 0; f < 2; f++) {
        sc_wire_format fmt = f ? SC_WIRE_JSON : SC_WIRE_MSGPACK;
        for (int large = 0; large < 2; large++) {
            sc__event ev = make_event(SC__ACT_SET, "key:1", "pod-a", 0);
            ev.has_value = 1;
            ev.value = large ? big : "0123456789";
            ev.value_len = large ? sizeof big : 10;
            char scratch[1024];
            memset(scratch, 0x5a, sizeof scratch);
            sc__event_template heap, in;
            ck_assert_int_eq(sc__event_encode_template(&ev, fmt, NULL, 0, &heap), SC_OK);
            ck_assert_int_eq(sc__event_encode_template(&ev, fmt, scratch, sizeof scratch, &in), SC_OK);
            ck_assert(large ? in.buf != scratch : in.buf == scratch);
            if (large)
                for (size_t i = 0; i < sizeof scratch; i++)
                    ck_assert_int_eq(scratch[i], 0x5a);
            ck_assert_uint_eq(in.len, heap.len);
            ck_assert_mem_eq(in.buf, heap.buf, heap.len);
            for (int k = 0; k < 3; k++)
                ck_assert_uint_eq(in.cut[k], heap.cut[k]);
            if (in.buf != scratch)
                free(in.buf);
            free(heap.buf);
        }
    }
}
END_TEST

/* Namespace, instance and epoch survive both encodings; a template with the
 * version, time and epoch spliced in (as the write script does) decodes to
 * the full event. */
START_TEST(namespaced_fields_and_template)
{
    sc__event ev = make_event(SC__ACT_SET, "k", "p", 0);
    ev.has_value = 1;
    ev.value = "xyz";
    ev.value_len = 3;
    ev.ns = "users";
    ev.ns_len = 5;
    ev.inst = "00112233aabbccdd";
    ev.inst_len = 16;
    ev.ttl_ms = 700;
    for (int f = 0; f < 2; f++) {
        sc_wire_format fmt = f ? SC_WIRE_JSON : SC_WIRE_MSGPACK;
        sc__event_template t;
        ck_assert_int_eq(sc__event_encode_template(&ev, fmt, NULL, 0, &t), SC_OK);
        ck_assert(t.cut[0] <= t.cut[1] && t.cut[1] <= t.cut[2] && t.cut[2] <= t.len);
        char num1[24], num2[24];
        size_t n1, n2;
        if (fmt == SC_WIRE_MSGPACK) {
            uint64_t a = 1234567890123ull, b = 1764000000123ull;
            for (int k = 0; k < 8; k++) {
                num1[k] = (char)(a >> (56 - 8 * k));
                num2[k] = (char)(b >> (56 - 8 * k));
            }
            n1 = n2 = 8;
        } else {
            n1 = (size_t)snprintf(num1, sizeof num1, "1234567890123");
            n2 = (size_t)snprintf(num2, sizeof num2, "1764000000123");
        }
        const char *epoch = "0123456789abcdef";
        char *buf = malloc(t.len + 64);
        size_t w = 0;
        memcpy(buf + w, t.buf, t.cut[0]);
        w += t.cut[0];
        memcpy(buf + w, num1, n1);
        w += n1;
        memcpy(buf + w, t.buf + t.cut[0], t.cut[1] - t.cut[0]);
        w += t.cut[1] - t.cut[0];
        memcpy(buf + w, num2, n2);
        w += n2;
        memcpy(buf + w, t.buf + t.cut[1], t.cut[2] - t.cut[1]);
        w += t.cut[2] - t.cut[1];
        memcpy(buf + w, epoch, 16);
        w += 16;
        memcpy(buf + w, t.buf + t.cut[2], t.len - t.cut[2]);
        w += t.len - t.cut[2];
        sc__event back;
        ck_assert_int_eq(sc__event_decode(buf, w, 0, &back), SC_OK);
        ck_assert_uint_eq(back.version, 1234567890123ull);
        ck_assert_uint_eq(back.time_ms, 1764000000123ull);
        ck_assert_str_eq(back.epoch, epoch);
        ck_assert_str_eq(back.ns, "users");
        ck_assert_int_eq(back.has_ns, 1);
        ck_assert_str_eq(back.inst, "00112233aabbccdd");
        ck_assert_str_eq(back.key, "k");
        ck_assert_uint_eq(back.ttl_ms, 700);
        ck_assert_mem_eq(back.value, "xyz", 3);
        sc__event_free(&back);
        free(buf);
        free(t.buf);
    }
    /* Without ns the event is meant for every namespace. */
    sc__event out;
    ck_assert_int_eq(decode_str("{\"action\":\"invalidate\",\"key\":\"k\"}", &out), SC_OK);
    ck_assert_int_eq(out.has_ns, 0);
    sc__event_free(&out);
    ck_assert_int_eq(decode_str("{\"action\":\"invalidate\",\"key\":\"k\",\"ns\":\"a\\u0000b\"}", &out),
                     SC_ERR_CODEC);
}
END_TEST

/* The authentication code: what the write scripts compute in Lua with
 * redis.sha1hex, checked here against a hand-built signature; a changed
 * byte, another secret, a missing or misplaced mac all fail. */
static void sign_like_lua(char *msg, size_t len, size_t at, const char *secret)
{
    sc__sha1 h;
    char inner[41], outer[41];
    sc__sha1_init(&h);
    sc__sha1_update(&h, secret, strlen(secret));
    sc__sha1_update(&h, msg, len);
    sc__sha1_hex(&h, inner);
    sc__sha1_init(&h);
    sc__sha1_update(&h, secret, strlen(secret));
    sc__sha1_update(&h, inner, 40);
    sc__sha1_hex(&h, outer);
    memcpy(msg + at, outer, 40);
}

START_TEST(authentication_code)
{
    /* SHA-1 itself, against the FIPS 180 examples. */
    sc__sha1 h;
    char hex[41];
    sc__sha1_init(&h);
    sc__sha1_update(&h, "abc", 3);
    sc__sha1_hex(&h, hex);
    ck_assert_str_eq(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sc__sha1_init(&h);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sc__sha1_update(&h, two, strlen(two));
    sc__sha1_hex(&h, hex);
    ck_assert_str_eq(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");

    const char *secret = "0123456789abcdef0123456789abcdef";
    sc__event ev = make_event(SC__ACT_SET, "k", "p", 0);
    ev.has_value = 1;
    ev.value = "v";
    ev.value_len = 1;
    for (int f = 0; f < 2; f++) {
        sc_wire_format fmt = f ? SC_WIRE_JSON : SC_WIRE_MSGPACK;
        sc__event_template t;
        ck_assert_int_eq(sc__event_encode_template(&ev, fmt, NULL, 0, &t), SC_OK);
        /* Fill the holes with zeros' worth of bytes: a complete event. */
        size_t n = t.len + 8 + 8 + 16 + 2;
        char *msg = calloc(1, n + 1);
        size_t w = 0;
        memcpy(msg, t.buf, t.cut[0]);
        w = t.cut[0];
        memcpy(msg + w, fmt == SC_WIRE_JSON ? "7" : "\0\0\0\0\0\0\0\7", fmt == SC_WIRE_JSON ? 1 : 8);
        w += fmt == SC_WIRE_JSON ? 1 : 8;
        memcpy(msg + w, t.buf + t.cut[0], t.cut[1] - t.cut[0]);
        w += t.cut[1] - t.cut[0];
        memcpy(msg + w, fmt == SC_WIRE_JSON ? "9" : "\0\0\0\0\0\0\0\11", fmt == SC_WIRE_JSON ? 1 : 8);
        w += fmt == SC_WIRE_JSON ? 1 : 8;
        memcpy(msg + w, t.buf + t.cut[1], t.cut[2] - t.cut[1]);
        w += t.cut[2] - t.cut[1];
        memcpy(msg + w, "fedcba9876543210", 16);
        w += 16;
        memcpy(msg + w, t.buf + t.cut[2], t.len - t.cut[2]);
        w += t.len - t.cut[2];
        size_t at = fmt == SC_WIRE_JSON ? w - 42 : w - 40;
        ck_assert_int_eq(sc__event_authentic(msg, w, secret), 0); /* zeros are no code */
        sign_like_lua(msg, w, at, secret);
        ck_assert_int_eq(sc__event_authentic(msg, w, secret), 1);
        sc__event back;
        ck_assert_int_eq(sc__event_decode(msg, w, 0, &back), SC_OK); /* mac is an extra field */
        ck_assert_uint_eq(back.version, 7);
        sc__event_free(&back);
        ck_assert_int_eq(sc__event_authentic(msg, w, "another secret"), 0);
        ck_assert_int_eq(sc__event_authentic(msg, w, ""), 0);
        ck_assert_int_eq(sc__event_authentic(msg, w, NULL), 0);
        for (size_t i = 0; i < w; i += 7) {
            msg[i] ^= 1;
            ck_assert_msg(sc__event_authentic(msg, w, secret) == 0, "byte %zu changed, still authentic", i);
            msg[i] ^= 1;
        }
        ck_assert_int_eq(sc__event_authentic(msg, w - 1, secret), 0);
        ck_assert_int_eq(sc__event_authentic(msg, 10, secret), 0);
        free(msg);
        free(t.buf);
    }
    /* An outside publisher's event has no code. */
    const char *plain = "{\"action\":\"invalidate\",\"key\":\"k\"}";
    ck_assert_int_eq(sc__event_authentic(plain, strlen(plain), secret), 0);
}
END_TEST

START_TEST(encoder_rejects_what_decoder_would)
{
    sc__event ev = make_event(SC__ACT_SET, "k", "p", 1);
    char *out = NULL;
    size_t len;

    /* set without a value */
    ck_assert_int_eq(sc__event_encode(&ev, SC_WIRE_MSGPACK, &out, &len), SC_ERR_INVALID);
    ev = make_event(SC__ACT_DELETE, "", "p", 1);
    ck_assert_int_eq(sc__event_encode(&ev, SC_WIRE_JSON, &out, &len), SC_ERR_INVALID);
    ev = make_event(SC__ACT_DELETE, "k", "p", 1);
    ev.key_len = 2; /* takes in the terminating NUL */
    ck_assert_int_eq(sc__event_encode(&ev, SC_WIRE_JSON, &out, &len), SC_ERR_INVALID);
    ev = make_event(SC__ACT_DELETE, "k", "p", 1);
    ev.sender_len = 2;
    ck_assert_int_eq(sc__event_encode(&ev, SC_WIRE_MSGPACK, &out, &len), SC_ERR_INVALID);
    ev = make_event((sc__action)0, "k", "p", 1);
    ck_assert_int_eq(sc__event_encode(&ev, SC_WIRE_MSGPACK, &out, &len), SC_ERR_INVALID);
    ev = make_event((sc__action)(SC__ACT_TAG + 1), "k", "p", 1);
    ck_assert_int_eq(sc__event_encode(&ev, SC_WIRE_MSGPACK, &out, &len), SC_ERR_INVALID);
    ev = make_event(SC__ACT_DELETE, "k", "p", 1);
    ck_assert_int_eq(sc__event_encode(&ev, (sc_wire_format)7, &out, &len), SC_ERR_INVALID);
    ck_assert_ptr_null(out);
}
END_TEST

START_TEST(action_names)
{
    ck_assert_str_eq(sc__action_name(SC__ACT_SET), "set");
    ck_assert_str_eq(sc__action_name(SC__ACT_INVALIDATE), "invalidate");
    ck_assert_str_eq(sc__action_name(SC__ACT_DELETE), "delete");
    ck_assert_str_eq(sc__action_name(SC__ACT_CLEAR), "clear");
    ck_assert_str_eq(sc__action_name(SC__ACT_HEARTBEAT), "heartbeat");
    ck_assert_str_eq(sc__action_name((sc__action)0), "unknown");
    ck_assert_str_eq(sc__action_name((sc__action)99), "unknown");
}
END_TEST

START_TEST(free_is_safe_on_zeroed_event)
{
    sc__event ev;

    memset(&ev, 0, sizeof ev);
    sc__event_free(&ev);
    sc__event_free(&ev);
    sc__event_free(NULL);
    ck_assert_ptr_null(ev.storage_);
}
END_TEST

/* ------------------------------------------------ what publishers send -- */

START_TEST(json_design_form)
{
    sc__event ev;

    ck_assert_int_eq(decode_str("{\"action\":\"invalidate\",\"key\":\"k\",\"sender\":\"svc\"}", &ev), SC_OK);
    ck_assert_int_eq(ev.format, 1);
    ck_assert_int_eq(ev.action, SC__ACT_INVALIDATE);
    ck_assert_str_eq(ev.key, "k");
    ck_assert_uint_eq(ev.key_len, 1);
    ck_assert_str_eq(ev.sender, "svc");
    ck_assert_uint_eq(ev.sender_len, 3);
    ck_assert_uint_eq(ev.version, 0);
    ck_assert_int_eq(ev.has_value, 0);
    sc__event_free(&ev);

    /* sender may be absent; whitespace around the object is fine. */
    ck_assert_int_eq(decode_str(" \t\r\n{ \"action\" : \"delete\" , \"key\" : \"a b\" }\n ", &ev), SC_OK);
    ck_assert_int_eq(ev.action, SC__ACT_DELETE);
    ck_assert_str_eq(ev.key, "a b");
    ck_assert_str_eq(ev.sender, "");
    ck_assert_uint_eq(ev.sender_len, 0);
    sc__event_free(&ev);

    ck_assert_int_eq(decode_str("{\"action\":\"clear\"}", &ev), SC_OK);
    ck_assert_int_eq(ev.action, SC__ACT_CLEAR);
    ck_assert_str_eq(ev.key, "");
    sc__event_free(&ev);

    ck_assert_int_eq(decode_str("{\"action\":\"set\",\"key\":\"k\",\"value\":\"aGk=\",\"ttl\":1000}", &ev), SC_OK);
    ck_assert_int_eq(ev.has_value, 1);
    ck_assert_uint_eq(ev.value_len, 2);
    ck_assert_mem_eq(ev.value, "hi", 3);
    ck_assert_uint_eq(ev.ttl_ms, 1000);
    sc__event_free(&ev);
}
END_TEST

START_TEST(json_from_lua_concatenation)
{
    /* Built in Redis with cjson.encode() for strings and %d for numbers:
     * cjson escapes '/' and passes bytes >= 0x80 through unescaped. */
    static const char lua[] = "{\"format\":1,\"action\":\"delete\",\"key\":\"a\\/b\\\"\\\\\",\"sender\":\"svc\","
                              "\"version\":9007199254740991,\"time\":1763689000123}";
    sc__event ev;

    ck_assert_int_eq(decode_str(lua, &ev), SC_OK);
    ck_assert_int_eq(ev.action, SC__ACT_DELETE);
    ck_assert_str_eq(ev.key, "a/b\"\\");
    ck_assert_uint_eq(ev.version, 9007199254740991ULL);
    ck_assert_uint_eq(ev.time_ms, 1763689000123ULL);
    sc__event_free(&ev);

    ck_assert_int_eq(decode_str("{\"action\":\"invalidate\",\"key\":\"\xff\xfe\",\"sender\":\"x\"}", &ev), SC_OK);
    ck_assert_str_eq(ev.key, "\xff\xfe");
    sc__event_free(&ev);

    /* Above 2^53 a publisher sends decimal strings. */
    ck_assert_int_eq(decode_str("{\"action\":\"invalidate\",\"key\":\"k\",\"version\":\"18446744073709551615\","
                                "\"ttl\":\"0\",\"time\":\"9007199254740993\"}",
                                &ev),
                     SC_OK);
    ck_assert_uint_eq(ev.version, UINT64_MAX);
    ck_assert_uint_eq(ev.ttl_ms, 0);
    ck_assert_uint_eq(ev.time_ms, 9007199254740993ULL);
    sc__event_free(&ev);

    /* Integral numbers in other spellings are still integers. */
    ck_assert_int_eq(decode_str("{\"action\":\"invalidate\",\"key\":\"k\",\"version\":12.0,\"ttl\":1e3}", &ev), SC_OK);
    ck_assert_uint_eq(ev.version, 12);
    ck_assert_uint_eq(ev.ttl_ms, 1000);
    sc__event_free(&ev);

    /* Unknown fields of any shape are ignored, duplicates among them too. */
    ck_assert_int_eq(decode_str("{\"x\":{\"y\":[1,{\"z\":null}]},\"action\":\"delete\",\"x\":true,\"key\":\"k\","
                                "\"Key\":5,\"formats\":\"?\"}",
                                &ev),
                     SC_OK);
    ck_assert_str_eq(ev.key, "k");
    sc__event_free(&ev);

    /* An escaped backslash followed by u0000 is not a NUL. */
    ck_assert_int_eq(decode_str("{\"action\":\"delete\",\"key\":\"a\\\\u0000\"}", &ev), SC_OK);
    ck_assert_str_eq(ev.key, "a\\u0000");
    sc__event_free(&ev);
}
END_TEST

/* cmsgpack.pack({format=1, action='set', key='user:42', sender='pod-a',
 * version=1763689000000123, value=string.rep('v',40), ttl=60000,
 * time=1763689000123}) from redis-server 7: uint64 time and version, a str8
 * value, uint16 ttl, in Lua's hash order. */
static const unsigned char cmsgpack_set[] =
    "\x88\xa4\x74\x69\x6d\x65\xcf\x00\x00\x01\x9a\xa4\x0e\x6c\xbb\xa6\x73\x65\x6e\x64\x65\x72\xa5\x70\x6f\x64"
    "\x2d\x61\xa6\x61\x63\x74\x69\x6f\x6e\xa3\x73\x65\x74\xa7\x76\x65\x72\x73\x69\x6f\x6e\xcf\x00\x06\x44\x10"
    "\xd8\x56\xda\x7b\xa5\x76\x61\x6c\x75\x65\xd9\x28\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76"
    "\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76\x76"
    "\xa6\x66\x6f\x72\x6d\x61\x74\x01\xa3\x74\x74\x6c\xcd\xea\x60\xa3\x6b\x65\x79\xa7\x75\x73\x65\x72\x3a\x34"
    "\x32";

/* cmsgpack.pack({format=1, action='invalidate', key='k', sender='pod-c',
 * version=2^53+2, x1=1, ..., x10=10, x11={1,2,{a='b'}}}): 16 pairs make a
 * map16, version is a uint64 above 2^53, and x11 nests an array and a map. */
static const unsigned char cmsgpack_map16[] =
    "\xde\x00\x10\xa2\x78\x37\x07\xa6\x73\x65\x6e\x64\x65\x72\xa5\x70\x6f\x64\x2d\x63\xa6\x61\x63\x74\x69\x6f"
    "\x6e\xaa\x69\x6e\x76\x61\x6c\x69\x64\x61\x74\x65\xa2\x78\x34\x04\xa2\x78\x32\x02\xa2\x78\x33\x03\xa2\x78"
    "\x35\x05\xa2\x78\x31\x01\xa3\x78\x31\x30\x0a\xa2\x78\x39\x09\xa3\x6b\x65\x79\xa1\x6b\xa2\x78\x36\x06\xa2"
    "\x78\x38\x08\xa6\x66\x6f\x72\x6d\x61\x74\x01\xa3\x78\x31\x31\x93\x01\x02\x81\xa1\x61\xa1\x62\xa7\x76\x65"
    "\x72\x73\x69\x6f\x6e\xcf\x00\x20\x00\x00\x00\x00\x00\x02";

START_TEST(cmsgpack_vectors)
{
    sc__event ev;

    ck_assert_int_eq(decode_exact(cmsgpack_set, sizeof cmsgpack_set - 1, 0, &ev), SC_OK);
    ck_assert_int_eq(ev.action, SC__ACT_SET);
    ck_assert_str_eq(ev.key, "user:42");
    ck_assert_str_eq(ev.sender, "pod-a");
    ck_assert_uint_eq(ev.version, 1763689000000123ULL);
    ck_assert_uint_eq(ev.ttl_ms, 60000);
    ck_assert_uint_eq(ev.time_ms, 1763689000123ULL);
    ck_assert_int_eq(ev.has_value, 1);
    ck_assert_uint_eq(ev.value_len, 40);
    ck_assert_mem_eq(ev.value, "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", 41);
    sc__event_free(&ev);

    ck_assert_int_eq(decode_exact(cmsgpack_map16, sizeof cmsgpack_map16 - 1, 0, &ev), SC_OK);
    ck_assert_int_eq(ev.action, SC__ACT_INVALIDATE);
    ck_assert_str_eq(ev.key, "k");
    ck_assert_str_eq(ev.sender, "pod-c");
    ck_assert_uint_eq(ev.version, (1ULL << 53) + 2);
    sc__event_free(&ev);
}
END_TEST

START_TEST(cmsgpack_binary_value_as_str16)
{
    /* cmsgpack packs string.char(0,255,1,0)..string.rep('z',296) as str16. */
    unsigned char value[300];
    sc__event ev;
    mb m;

    memset(value, 'z', sizeof value);
    memcpy(value, "\x00\xff\x01\x00", 4);
    mb_start(&m, 4, "set", "bin");
    mb_str(&m, "value");
    mb_strn(&m, (const char *)value, sizeof value);
    ck_assert_uint_eq(m.b[m.n - 303], 0xda);
    mb_str(&m, "version");
    mb_byte(&m, 7);
    ck_assert_int_eq(decode_exact(m.b, m.n, 0, &ev), SC_OK);
    ck_assert_uint_eq(ev.value_len, sizeof value);
    ck_assert_mem_eq(ev.value, value, sizeof value);
    ck_assert_uint_eq(ev.version, 7);
    sc__event_free(&ev);
}
END_TEST

/* Every integer and float encoding for version, with what it must yield. */
START_TEST(msgpack_number_encodings)
{
    static const struct {
        const char *bytes;
        size_t n;
        int ok;
        uint64_t want;
    } cases[] = {
        { "\x00", 1, 1, 0 },
        { "\x7f", 1, 1, 127 },
        { "\xcc\xff", 2, 1, 255 },
        { "\xcd\x01\x00", 3, 1, 256 },
        { "\xce\xff\xff\xff\xff", 5, 1, 4294967295ULL },
        { "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, 1, UINT64_MAX },
        { "\xd0\x7f", 2, 1, 127 },
        { "\xd1\x7f\xff", 3, 1, 32767 },
        { "\xd2\x7f\xff\xff\xff", 5, 1, 2147483647 },
        { "\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", 9, 1, INT64_MAX },
        { "\xd3\x00\x20\x00\x00\x00\x00\x00\x02", 9, 1, (1ULL << 53) + 2 },
        { "\xcb\x40\x14\x00\x00\x00\x00\x00\x00", 9, 1, 5 },                 /* 5.0 */
        { "\xcb\x43\x3f\xff\xff\xff\xff\xff\xff", 9, 1, (1ULL << 53) - 1 }, /* 2^53-1 */
        { "\xca\x40\xa0\x00\x00", 5, 1, 5 },                                 /* 5.0f */
        { "\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 9, 1, 0 },                 /* -0.0 */
        { "\xcb\x43\x40\x00\x00\x00\x00\x00\x00", 9, 0, 0 },                 /* 2^53 */
        { "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 9, 0, 0 },                 /* 1.5 */
        { "\xcb\xbf\xf0\x00\x00\x00\x00\x00\x00", 9, 0, 0 },                 /* -1.0 */
        { "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9, 0, 0 },                 /* NaN */
        { "\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", 9, 0, 0 },                 /* inf */
        { "\xca\x5f\x80\x00\x00", 5, 0, 0 },                                 /* 2^64 as cmsgpack sends it */
        { "\xca\x3f\x00\x00\x00", 5, 0, 0 },                                 /* 0.5f */
        { "\xff", 1, 0, 0 },                                                 /* -1 */
        { "\xe0", 1, 0, 0 },                                                 /* -32 */
        { "\xd0\xff", 2, 0, 0 },
        { "\xd1\x80\x00", 3, 0, 0 },
        { "\xd2\x80\x00\x00\x00", 5, 0, 0 },
        { "\xd3\xff\xff\xff\xff\xff\xff\xff\xff", 9, 0, 0 },
        { "\xc0", 1, 0, 0 },     /* nil */
        { "\xc3", 1, 0, 0 },     /* true */
        { "\xa1\x35", 2, 0, 0 }, /* "5": decimal strings are JSON only */
        { "\x90", 1, 0, 0 },     /* [] */
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc__event ev;
        sc_status st;
        mb m;

        mb_start(&m, 3, "delete", "k");
        mb_str(&m, "version");
        mb_bytes(&m, cases[i].bytes, cases[i].n);
        st = decode_exact(m.b, m.n, 0, &ev);
        ck_assert_msg(st == (cases[i].ok ? SC_OK : SC_ERR_CODEC), "case %zu: status %d", i, (int)st);
        if (cases[i].ok) {
            ck_assert_uint_eq(ev.version, cases[i].want);
            sc__event_free(&ev);
        }
    }
}
END_TEST

START_TEST(msgpack_string_encodings)
{
    sc__event ev;
    mb m;

    /* Field names and values as bin 8, the value as str 32. */
    m.n = 0;
    mb_byte(&m, 0x83);
    mb_bytes(&m, "\xc4\x06" "action\xc4\x03" "set", 13);
    mb_bytes(&m, "\xc5\x00\x03key\xc6\x00\x00\x00\x02kk", 13);
    mb_bytes(&m, "\xdb\x00\x00\x00\x05value\xdb\x00\x00\x00\x01x", 16);
    ck_assert_int_eq(decode_exact(m.b, m.n, 0, &ev), SC_OK);
    ck_assert_int_eq(ev.action, SC__ACT_SET);
    ck_assert_str_eq(ev.key, "kk");
    ck_assert_mem_eq(ev.value, "x", 2);
    sc__event_free(&ev);

    /* map 32 holding two pairs */
    m.n = 0;
    mb_bytes(&m, "\xdf\x00\x00\x00\x02", 5);
    mb_str(&m, "action");
    mb_str(&m, "heartbeat");
    mb_str(&m, "version");
    mb_bytes(&m, "\xcd\x12\x34", 3);
    ck_assert_int_eq(decode_exact(m.b, m.n, 0, &ev), SC_OK);
    ck_assert_int_eq(ev.action, SC__ACT_HEARTBEAT);
    ck_assert_uint_eq(ev.version, 0x1234);
    sc__event_free(&ev);
}
END_TEST

START_TEST(msgpack_skips_unknown_values)
{
    static const struct {
        const char *bytes;
        size_t n;
    } values[] = {
        { "\xc0", 1 }, { "\xc2", 1 }, { "\xe5", 1 }, { "\xcc\x01", 2 }, { "\xd1\x01\x02", 3 },
        { "\xca\x00\x00\x00\x00", 5 }, { "\xcb\x00\x00\x00\x00\x00\x00\x00\x00", 9 },
        { "\x92\x01\x81\xa1x\x90", 6 },                      /* [1, {"x": []}] */
        { "\xdc\x00\x02\xc3\xc2", 5 },                       /* array 16 */
        { "\xdd\x00\x00\x00\x01\xc0", 6 },                   /* array 32 */
        { "\xde\x00\x01\x01\x02", 5 },                       /* map 16 */
        { "\xd4\x01\x02", 3 }, { "\xd5\x01\x02\x03", 4 },    /* fixext 1, 2 */
        { "\xd8\x01" "0123456789abcdef", 18 },               /* fixext 16 */
        { "\xc7\x03\x05xyz", 6 }, { "\xc8\x00\x00\x05", 4 }, /* ext 8, ext 16 empty */
        { "\xc9\x00\x00\x00\x01\x05z", 7 },                  /* ext 32 */
        { "\xc4\x00", 2 }, { "\xd9\x01z", 3 },
    };
    size_t i;

    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        sc__event ev;
        mb m;

        mb_start(&m, 4, "delete", "k");
        mb_str(&m, "unknown");
        mb_bytes(&m, values[i].bytes, values[i].n);
        /* A pair whose key is not a string is skipped too. */
        mb_bytes(&m, values[i].bytes, values[i].n);
        mb_byte(&m, 0x01);
        ck_assert_msg(decode_exact(m.b, m.n, 0, &ev) == SC_OK, "value %zu", i);
        ck_assert_str_eq(ev.key, "k");
        sc__event_free(&ev);
    }
}
END_TEST

START_TEST(deep_nesting_is_harmless)
{
    size_t depth = 200000, i;
    unsigned char *m = malloc(depth + 32);
    char *j = malloc(depth * 6 + 64);
    size_t n = 0;

    /* msgpack: an unknown field nested 200000 arrays deep. */
    ck_assert_ptr_nonnull(m);
    memcpy(m, "\x83\xa6" "action\xa6" "delete\xa3key\xa1k\xa1x", 22);
    n = 22;
    for (i = 0; i < depth; i++)
        m[n++] = 0x91;
    m[n++] = 0xc0;
    {
        sc__event ev;
        ck_assert_int_eq(decode_exact(m, n, 0, &ev), SC_OK);
        sc__event_free(&ev);
    }
    expect_codec_error(m, n - 1); /* the innermost value missing */
    free(m);

    /* JSON: cJSON refuses very deep nesting; it must fail, not crash. */
    ck_assert_ptr_nonnull(j);
    n = (size_t)sprintf(j, "{\"action\":\"delete\",\"key\":\"k\",\"x\":");
    for (i = 0; i < depth; i++)
        j[n++] = '[';
    for (i = 0; i < depth; i++)
        j[n++] = ']';
    j[n++] = '}';
    expect_codec_error(j, n);
    free(j);
}
END_TEST

/* -------------------------------------------------------------- malformed -- */

/* Every proper prefix of a valid message must fail cleanly. */
static void all_prefixes_fail(const void *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        sc__event ev;
        sc_status st = decode_exact(buf, i, 0, &ev);
        ck_assert_msg(st == SC_ERR_CODEC, "prefix of %zu/%zu bytes: status %d", i, len, (int)st);
    }
}

START_TEST(truncation_at_every_offset)
{
    sc__event ev = make_event(SC__ACT_SET, "user:42", "pod-a", (1ULL << 53) + 7);
    char *buf;
    size_t len;

    ev.has_value = 1;
    ev.value = "\x00\xffvalue";
    ev.value_len = 7;
    ev.ttl_ms = 300000;
    ev.time_ms = 1763689000123ULL;
    buf = round_trip(&ev, SC_WIRE_MSGPACK, &len);
    all_prefixes_fail(buf, len);
    free(buf);
    buf = round_trip(&ev, SC_WIRE_JSON, &len);
    all_prefixes_fail(buf, len);
    free(buf);
    all_prefixes_fail(cmsgpack_set, sizeof cmsgpack_set - 1);
    all_prefixes_fail(cmsgpack_map16, sizeof cmsgpack_map16 - 1);
}
END_TEST

START_TEST(json_wrong_types_and_values)
{
    static const char *const bad[] = {
        "{\"action\":5,\"key\":\"k\"}",
        "{\"action\":null,\"key\":\"k\"}",
        "{\"action\":\"delete\",\"key\":5}",
        "{\"action\":\"delete\",\"key\":[\"k\"]}",
        "{\"action\":\"delete\",\"key\":\"k\",\"sender\":7}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":-1}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":1.5}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":9007199254740992}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":1e300}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":true}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":null}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":\"\"}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":\"-1\"}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":\"+1\"}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":\" 1\"}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":\"12a\"}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":\"1.0\"}",
        "{\"action\":\"delete\",\"key\":\"k\",\"version\":\"18446744073709551616\"}",
        "{\"action\":\"delete\",\"key\":\"k\",\"ttl\":\"99999999999999999999\"}",
        "{\"action\":\"delete\",\"key\":\"k\",\"time\":{}}",
        "{\"action\":\"set\",\"key\":\"k\",\"value\":12}",
        "{\"action\":\"set\",\"key\":\"k\",\"value\":\"aGk\"}",
        "{\"action\":\"set\",\"key\":\"k\",\"value\":\"a Gk=\"}",
        "{\"action\":\"set\",\"key\":\"k\",\"value\":\"aGk=\\n\"}",
        "{\"action\":\"invalidate\",\"key\":\"k\",\"value\":\"!!!!\"}", /* a dropped value is still checked */
        "{\"action\":\"delete\",\"key\":\"k\",\"format\":2}",
        "{\"action\":\"delete\",\"key\":\"k\",\"format\":0}",
        "{\"action\":\"delete\",\"key\":\"k\",\"format\":\"x\"}",
        "[{\"action\":\"delete\",\"key\":\"k\"}]",
        "\"{\\\"action\\\":\\\"delete\\\"}\"",
        "{\"action\":\"delete\",\"key\":\"k\",}",
        "{\"action\":\"delete\" \"key\":\"k\"}",
        "{'action':'delete','key':'k'}",
        "{\"action\":\"delete\",\"key\":\"k\"",
        "{",
        "{}",
        "",
        "   ",
        "x{\"action\":\"clear\"}",
        "\xef\xbb\xbf{\"action\":\"clear\"}",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sc__event ev;
        sc_status st = decode_str(bad[i], &ev);
        ck_assert_msg(st == SC_ERR_CODEC, "accepted %s (status %d)", bad[i], (int)st);
    }
}
END_TEST

START_TEST(missing_fields_and_unknown_actions)
{
    static const char *const bad[] = {
        "{\"key\":\"k\",\"sender\":\"svc\"}",
        "{\"action\":\"set\",\"value\":\"aGk=\"}",
        "{\"action\":\"set\",\"key\":\"\",\"value\":\"aGk=\"}",
        "{\"action\":\"set\",\"key\":\"k\"}",
        "{\"action\":\"invalidate\"}",
        "{\"action\":\"invalidate\",\"key\":\"\"}",
        "{\"action\":\"delete\"}",
        "{\"action\":\"Delete\",\"key\":\"k\"}",
        "{\"action\":\"purge\",\"key\":\"k\"}",
        "{\"action\":\"\",\"key\":\"k\"}",
        "{\"action\":\"set \",\"key\":\"k\",\"value\":\"\"}",
    };
    size_t i;
    sc__event ev;
    mb m;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_json_error(bad[i]);

    /* The same in msgpack. */
    m.n = 0;
    mb_byte(&m, 0x81);
    mb_str(&m, "key");
    mb_str(&m, "k");
    expect_codec_error(m.b, m.n);
    mb_start(&m, 2, "set", "k");
    expect_codec_error(m.b, m.n);
    mb_start(&m, 2, "delete", "");
    expect_codec_error(m.b, m.n);
    mb_start(&m, 2, "remove", "k");
    expect_codec_error(m.b, m.n);

    /* clear and heartbeat need no key; a set's value may be empty. */
    ck_assert_int_eq(decode_str("{\"action\":\"heartbeat\",\"version\":9}", &ev), SC_OK);
    ck_assert_int_eq(ev.action, SC__ACT_HEARTBEAT);
    ck_assert_uint_eq(ev.version, 9);
    sc__event_free(&ev);
    ck_assert_int_eq(decode_str("{\"action\":\"set\",\"key\":\"k\",\"value\":\"\"}", &ev), SC_OK);
    ck_assert_int_eq(ev.has_value, 1);
    ck_assert_uint_eq(ev.value_len, 0);
    sc__event_free(&ev);
    /* A value on another action is checked but dropped. */
    ck_assert_int_eq(decode_str("{\"action\":\"invalidate\",\"key\":\"k\",\"value\":\"aGk=\"}", &ev), SC_OK);
    ck_assert_int_eq(ev.has_value, 0);
    ck_assert_ptr_null(ev.value);
    sc__event_free(&ev);
}
END_TEST

START_TEST(nul_bytes_in_strings)
{
    static const char json_escaped[] = "{\"action\":\"delete\",\"key\":\"a\\u0000b\"}";
    static const char json_sender[] = "{\"action\":\"delete\",\"key\":\"k\",\"sender\":\"p\\u0000\"}";
    static const char json_value[] = "{\"action\":\"set\",\"key\":\"k\",\"value\":\"aGk=\\u0000QUJD\"}";
    static const char json_raw[] = "{\"action\":\"delete\",\"key\":\"a\0b\"}";
    static const char json_raw_outside[] = "{\"action\":\"delete\",\"key\":\"ab\"}\0";
    mb m;

    expect_json_error(json_escaped);
    expect_json_error(json_sender);
    expect_json_error(json_value);
    expect_codec_error(json_raw, sizeof json_raw - 1);
    expect_codec_error(json_raw_outside, sizeof json_raw_outside - 1);

    mb_start(&m, 2, "delete", "k");
    m.n -= 2;
    mb_bytes(&m, "\xa3" "a\0b", 4);
    expect_codec_error(m.b, m.n);

    mb_start(&m, 3, "delete", "k");
    mb_str(&m, "sender");
    mb_bytes(&m, "\xa2p\0", 3);
    expect_codec_error(m.b, m.n);
}
END_TEST

START_TEST(trailing_bytes_and_duplicates)
{
    sc__event ev = make_event(SC__ACT_DELETE, "k", "p", 3);
    char *buf, *longer;
    size_t len;
    mb m;

    buf = round_trip(&ev, SC_WIRE_MSGPACK, &len);
    longer = malloc(len + 1);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, buf, len);
    longer[len] = 0;
    expect_codec_error(longer, len + 1);
    longer[len] = (char)0xc0;
    expect_codec_error(longer, len + 1);
    free(longer);
    free(buf);

    expect_json_error("{\"action\":\"clear\"}x");
    expect_json_error("{\"action\":\"clear\"} {}");
    expect_json_error("{\"action\":\"clear\"}}");
    expect_json_error("{\"action\":\"clear\"}\x01");

    /* A known field twice, even with equal values, is ambiguous. */
    expect_json_error("{\"action\":\"delete\",\"key\":\"k\",\"key\":\"k\"}");
    expect_json_error("{\"action\":\"delete\",\"key\":\"k\",\"version\":1,\"version\":2}");
    expect_json_error("{\"action\":\"delete\",\"action\":\"clear\",\"key\":\"k\"}");
    mb_start(&m, 3, "delete", "k");
    mb_str(&m, "key");
    mb_str(&m, "k");
    expect_codec_error(m.b, m.n);
    mb_start(&m, 4, "set", "k");
    mb_str(&m, "value");
    mb_str(&m, "a");
    mb_str(&m, "value");
    mb_str(&m, "b");
    expect_codec_error(m.b, m.n);
}
END_TEST

START_TEST(huge_declared_lengths)
{
    static const struct {
        const char *bytes;
        size_t n;
    } lies[] = {
        { "\xdb\xff\xff\xff\xff", 5 },      /* str 32 */
        { "\xc6\xff\xff\xff\xff", 5 },      /* bin 32 */
        { "\xda\xff\xff", 3 },              /* str 16 */
        { "\xd9\xff", 2 },                  /* str 8 */
        { "\xbf", 1 },                      /* fixstr 31 */
        { "\xdd\xff\xff\xff\xff", 5 },      /* array 32 */
        { "\xdf\xff\xff\xff\xff", 5 },      /* map 32 */
        { "\xdc\xff\xff\x01", 4 },          /* array 16 */
        { "\xc9\xff\xff\xff\xff\x01", 6 },  /* ext 32 */
        { "\xc9\x00\x00\x00\x01\x01", 6 },  /* ext 32 without its payload */
        { "\xc7\x05\x01zz", 5 },            /* ext 8, short */
        { "\xd8\x01zz", 4 },                /* fixext 16, short */
        { "\xc1", 1 },                      /* never used */
    };
    size_t i;
    mb m;

    /* Each lie ends the message, so no length can be satisfied: */
    for (i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        /* ...as the value of a known field, where that type is allowed... */
        mb_start(&m, 3, "set", "k");
        mb_str(&m, "value");
        mb_bytes(&m, lies[i].bytes, lies[i].n);
        expect_codec_error(m.b, m.n);
        /* ...of an unknown field, which must be skipped... */
        mb_start(&m, 3, "delete", "k");
        mb_str(&m, "x");
        mb_bytes(&m, lies[i].bytes, lies[i].n);
        expect_codec_error(m.b, m.n);
        /* ...and as a map key. */
        mb_start(&m, 3, "delete", "k");
        mb_bytes(&m, lies[i].bytes, lies[i].n);
        expect_codec_error(m.b, m.n);
    }
    /* The outer map itself. */
    expect_codec_error("\xdf\xff\xff\xff\xff\xa1k\xa1k", 9);
    expect_codec_error("\xde\xff\xff\xa1k\xa1k", 7);
    expect_codec_error("\x8f\xa1k\xa1k", 5);
    expect_codec_error("\x80", 1);
    expect_codec_error("\x91\x80", 2); /* an array is not a map */
}
END_TEST

START_TEST(max_bytes_limit)
{
    sc__event ev = make_event(SC__ACT_INVALIDATE, "k", "p", 3), back;
    char *buf;
    size_t len;

    buf = round_trip(&ev, SC_WIRE_MSGPACK, &len);
    ck_assert_int_eq(decode_exact(buf, len, len, &back), SC_OK);
    sc__event_free(&back);
    ck_assert_int_eq(decode_exact(buf, len, len - 1, &back), SC_ERR_TOO_LARGE);
    ck_assert_ptr_null(back.storage_);
    ck_assert_int_eq(decode_exact(buf, len, 0, &back), SC_OK); /* 0 = no limit */
    sc__event_free(&back);
    free(buf);
    /* The limit comes before any parsing: garbage too long is TOO_LARGE. */
    ck_assert_int_eq(decode_exact("garbage", 7, 6, &back), SC_ERR_TOO_LARGE);
    ck_assert_int_eq(decode_exact("garbage", 7, 7, &back), SC_ERR_CODEC);
    ck_assert_int_eq(sc__event_decode(NULL, 0, 0, &back), SC_ERR_CODEC);
    ck_assert_int_eq(sc__event_decode("{}", 2, 0, NULL), SC_ERR_INVALID);
}
END_TEST

START_TEST(failure_leaves_zeroed_event)
{
    sc__event ev;

    memset(&ev, 0xa5, sizeof ev);
    ck_assert_int_eq(decode_str("{\"action\":\"nope\"}", &ev), SC_ERR_CODEC);
    ck_assert_ptr_null(ev.storage_);
    ck_assert_ptr_null(ev.key);
    ck_assert_uint_eq(ev.version, 0);
    sc__event_free(&ev);
}
END_TEST

static Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *b64 = tcase_create("base64"), *rt = tcase_create("round_trip"), *pub = tcase_create("publishers"),
          *bad = tcase_create("malformed");

    tcase_add_test(b64, base64_rfc4648_vectors);
    tcase_add_test(b64, base64_all_bytes);
    tcase_add_test(b64, base64_rejects_bad_input);
    suite_add_tcase(s, b64);

    tcase_add_test(rt, round_trip_every_action);
    tcase_add_test(rt, round_trip_binary_values);
    tcase_add_test(rt, round_trip_awkward_strings);
    tcase_add_test(rt, round_trip_large_numbers);
    tcase_add_test(rt, json_numbers_switch_to_strings_at_2_53);
    tcase_add_test(rt, encoding_shape);
    tcase_add_test(rt, namespaced_fields_and_template);
    tcase_add_test(rt, template_in_scratch);
    tcase_add_test(rt, digest_round_trip);
    tcase_add_test(rt, authentication_code);
    tcase_add_test(rt, encoder_rejects_what_decoder_would);
    tcase_add_test(rt, action_names);
    tcase_add_test(rt, free_is_safe_on_zeroed_event);
    suite_add_tcase(s, rt);

    tcase_add_test(pub, json_design_form);
    tcase_add_test(pub, json_from_lua_concatenation);
    tcase_add_test(pub, cmsgpack_vectors);
    tcase_add_test(pub, cmsgpack_binary_value_as_str16);
    tcase_add_test(pub, msgpack_number_encodings);
    tcase_add_test(pub, msgpack_string_encodings);
    tcase_add_test(pub, msgpack_skips_unknown_values);
    suite_add_tcase(s, pub);

    tcase_add_test(bad, truncation_at_every_offset);
    tcase_add_test(bad, json_wrong_types_and_values);
    tcase_add_test(bad, missing_fields_and_unknown_actions);
    tcase_add_test(bad, nul_bytes_in_strings);
    tcase_add_test(bad, trailing_bytes_and_duplicates);
    tcase_add_test(bad, huge_declared_lengths);
    tcase_add_test(bad, max_bytes_limit);
    tcase_add_test(bad, failure_leaves_zeroed_event);
    tcase_add_test(bad, deep_nesting_is_harmless);
    /* Sanitizer builds are slow on the deep-nesting and 1 MB cases. */
    tcase_set_timeout(bad, 60);
    tcase_set_timeout(rt, 60);
    suite_add_tcase(s, bad);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(codec_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
