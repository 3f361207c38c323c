/* The event codec: turns the bytes of one pub/sub message into an sc__event
 * and back. Two encodings share one field set (see sync.h): msgpack, which
 * pods and the Redis Lua scripts (cmsgpack) publish, and JSON, which any
 * outside service or redis-cli can publish.
 *
 * Every byte decoded here comes from the network, so the decoder is written to
 * be fuzzed: msgpack is read by a small bounds-checked reader (every length is
 * checked against the bytes that remain before it is used, nested unknown
 * values are skipped iteratively, so no input can recurse or allocate beyond
 * its own size), and JSON goes through cJSON on a private NUL-terminated copy.
 * Both decoders collect the raw fields first and share one validation step, so
 * the two encodings cannot drift apart in what they accept.
 *
 * Choices where the contract is silent: a known field given twice is rejected
 * (two decoders that keep the first and the last copy would otherwise disagree
 * on what the event says); format must be 1 when present (0 is no format);
 * sender may not hold a NUL byte either (pod ids are compared as C strings
 * elsewhere); in JSON, a string holding an escaped NUL ("\u0000") anywhere
 * rejects the message, because cJSON would silently cut the string there; a
 * value sent with an action other than set must still be well-formed but is
 * dropped (has_value is 0). msgpack map keys that are not strings are skipped
 * like unknown fields, and integral floats (float32 or float64, < 2^53) are
 * accepted as integers because cmsgpack emits floats for Lua numbers it cannot
 * pack as integers.
 */
#include "sync/sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msgpack.h>

/* Integers at or above 2^53 are not exact in a double: JSON readers built on
 * doubles (Redis' cjson among them) would round them, so they travel as
 * decimal strings, and no float can stand for them. */
#define SC__EXACT_DOUBLE_LIMIT 9007199254740992.0 /* 2^53 */
#define SC__EXACT_DOUBLE_LIMIT_U ((uint64_t)1 << 53)

/* What the mac field holds while the code is computed (and in templates). */
#define MAC_PLACEHOLDER "0000000000000000000000000000000000000000"

/* The tails a signed event ends with: msgpack "mac" as str8 of 40 bytes,
 * JSON ,"mac":"<40>"} (the encoder writes the mac last, with no space). */
static const unsigned char MP_MAC_HEAD[] = {0xa3, 'm', 'a', 'c', 0xd9, SC__MAC_LEN};
#define JSON_MAC_HEAD ",\"mac\":\""

static const char *const action_names[] = {
    [SC__ACT_SET] = "set",
    [SC__ACT_INVALIDATE] = "invalidate",
    [SC__ACT_DELETE] = "delete",
    [SC__ACT_CLEAR] = "clear",
    [SC__ACT_HEARTBEAT] = "heartbeat",
    [SC__ACT_TAG] = "tag",
};

static int action_valid(sc__action a)
{
    return a >= SC__ACT_SET && a <= SC__ACT_TAG;
}

const char *sc__action_name(sc__action a)
{
    return action_valid(a) ? action_names[a] : "unknown";
}

static int action_needs_key(sc__action a)
{
    return a == SC__ACT_SET || a == SC__ACT_INVALIDATE || a == SC__ACT_DELETE || a == SC__ACT_TAG;
}

/* ------------------------------------------------------------ raw fields -- */

enum field_id {
    F_FORMAT, F_ACTION, F_KEY, F_SENDER, F_VERSION, F_VALUE, F_TTL, F_TIME, F_NS, F_INST, F_EPOCH, F_DIGEST, F_COUNT
};

static const char *const field_names[F_COUNT] = {
    [F_FORMAT] = "format", [F_ACTION] = "action", [F_KEY] = "key",  [F_SENDER] = "sender",
    [F_VERSION] = "version", [F_VALUE] = "value", [F_TTL] = "ttl", [F_TIME] = "time",
    [F_NS] = "ns", [F_INST] = "inst", [F_EPOCH] = "epoch", [F_DIGEST] = "digest",
};

/* Returns the field a map key names, or F_COUNT for an unknown one. */
static enum field_id field_lookup(const char *name, size_t len)
{
    int f;

    for (f = 0; f < F_COUNT; f++)
        if (strlen(field_names[f]) == len && memcmp(field_names[f], name, len) == 0)
            return (enum field_id)f;
    return F_COUNT;
}

typedef struct raw_str {
    const char *p;
    size_t len;
} raw_str;

/* What either decoder found, still pointing into its input. */
typedef struct raw_event {
    unsigned seen; /* bit per field_id */
    uint64_t num[F_COUNT]; /* format, version, ttl, time */
    raw_str str[F_COUNT];  /* action, key, sender, value, ns, inst, epoch */
    int value_is_base64;
} raw_event;

/* Marks f as seen; 0 if it was already there (a duplicate). */
static int mark_seen(raw_event *r, enum field_id f)
{
    if (r->seen & (1u << f))
        return 0;
    r->seen |= 1u << f;
    return 1;
}

static int has_field(const raw_event *r, enum field_id f)
{
    return (r->seen >> f) & 1;
}

static int has_nul(const raw_str *s)
{
    return s->len && memchr(s->p, '\0', s->len);
}

static int is_numeric_field(enum field_id f)
{
    return f == F_FORMAT || f == F_VERSION || f == F_TTL || f == F_TIME;
}

/* A double is taken as an integer only when it is one exactly and below
 * 2^53; the comparisons are false for NaN. */
static int double_to_u64(double d, uint64_t *out)
{
    if (!(d >= 0.0 && d < SC__EXACT_DOUBLE_LIMIT))
        return 0;
    if ((double)(uint64_t)d != d)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Validates the collected fields and builds ev with its own copy of the
 * strings (and the decoded base64 value). */
static sc_status finish_event(const raw_event *r, sc__event *ev)
{
    sc__action action = 0;
    const raw_str *key = &r->str[F_KEY], *sender = &r->str[F_SENDER], *value = &r->str[F_VALUE];
    size_t value_room, total;
    char *mem;
    int a;


    if (has_field(r, F_FORMAT) && r->num[F_FORMAT] != 1)
        return SC_ERR_CODEC;
    if (!has_field(r, F_ACTION))
        return SC_ERR_CODEC;
    for (a = SC__ACT_SET; a <= SC__ACT_TAG; a++)
        if (strlen(action_names[a]) == r->str[F_ACTION].len &&
            memcmp(action_names[a], r->str[F_ACTION].p, r->str[F_ACTION].len) == 0)
            action = (sc__action)a;
    if (!action_valid(action))
        return SC_ERR_CODEC;
    if (action_needs_key(action) && key->len == 0)
        return SC_ERR_CODEC;
    if (has_nul(key) || has_nul(sender) || has_nul(&r->str[F_NS]) || has_nul(&r->str[F_INST]) ||
        has_nul(&r->str[F_EPOCH]) || has_nul(&r->str[F_DIGEST]))
        return SC_ERR_CODEC;
    if (action == SC__ACT_SET && !has_field(r, F_VALUE))
        return SC_ERR_CODEC;

    /* Every length is bounded by the input's size, so the sum cannot
     * overflow and the allocation is never larger than the message plus the
     * terminators. The strings are laid out one after another, each with
     * its NUL: key, sender, ns, inst, epoch, digest, then the value. */
    static const enum field_id strs[] = {F_KEY, F_SENDER, F_NS, F_INST, F_EPOCH, F_DIGEST};
    const char *copies[6];
    value_room = r->value_is_base64 ? sc__base64_decoded_max(value->len) : value->len;
    total = value_room + 1;
    for (size_t i = 0; i < 6; i++)
        total += r->str[strs[i]].len + 1;
    mem = malloc(total);
    if (!mem)
        return SC_ERR_NOMEM;

    char *w = mem;
    for (size_t i = 0; i < 6; i++) {
        const raw_str *f = &r->str[strs[i]];
        if (f->len)
            memcpy(w, f->p, f->len);
        w[f->len] = '\0';
        copies[i] = w;
        w += f->len + 1;
    }
    char *v = w;
    size_t vlen = value->len;
    if (r->value_is_base64) {
        long long n = sc__base64_decode(value->p, value->len, v);
        if (n < 0) {
            free(mem);
            return SC_ERR_CODEC;
        }
        vlen = (size_t)n;
    } else if (vlen) {
        memcpy(v, value->p, vlen);
    }
    v[vlen] = '\0';

    ev->format = 1;
    ev->action = action;
    ev->key = copies[0];
    ev->key_len = key->len;
    ev->sender = copies[1];
    ev->sender_len = sender->len;
    ev->has_ns = has_field(r, F_NS);
    ev->ns = copies[2];
    ev->ns_len = r->str[F_NS].len;
    ev->inst = copies[3];
    ev->inst_len = r->str[F_INST].len;
    ev->epoch = copies[4];
    ev->epoch_len = r->str[F_EPOCH].len;
    ev->digest = copies[5];
    ev->digest_len = r->str[F_DIGEST].len;
    ev->version = r->num[F_VERSION];
    ev->has_value = action == SC__ACT_SET;
    ev->value = ev->has_value ? v : NULL;
    ev->value_len = ev->has_value ? vlen : 0;
    ev->ttl_ms = r->num[F_TTL];
    ev->time_ms = r->num[F_TIME];
    ev->storage_ = mem;
    return SC_OK;
}

/* --------------------------------------------------------------- msgpack -- */

typedef struct mp_reader {
    const unsigned char *p;
    const unsigned char *end;
} mp_reader;

static size_t mp_left(const mp_reader *r)
{
    return (size_t)(r->end - r->p);
}

/* Reads an n-byte (1, 2, 4 or 8) big-endian unsigned integer. */
static int mp_be(mp_reader *r, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (mp_left(r) < n)
        return 0;
    for (i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    *out = v;
    return 1;
}

/* A length prefix followed by that many bytes: the length must fit in what
 * remains, which is what keeps every later copy bounded by the input. */
static int mp_body(mp_reader *r, size_t len_bytes, raw_str *out)
{
    uint64_t n;

    if (!mp_be(r, len_bytes, &n) || n > mp_left(r))
        return 0;
    out->p = (const char *)r->p;
    out->len = (size_t)n;
    r->p += n;
    return 1;
}

/* A str or bin of any width (cmsgpack sends binary Lua strings as str). */
static int mp_string(mp_reader *r, raw_str *out)
{
    unsigned char c;

    if (mp_left(r) < 1)
        return 0;
    c = *r->p++;
    if (c >= 0xa0 && c <= 0xbf) {
        if ((size_t)(c & 0x1f) > mp_left(r))
            return 0;
        out->p = (const char *)r->p;
        out->len = c & 0x1f;
        r->p += out->len;
        return 1;
    }
    switch (c) {
    case 0xd9: case 0xc4: return mp_body(r, 1, out);
    case 0xda: case 0xc5: return mp_body(r, 2, out);
    case 0xdb: case 0xc6: return mp_body(r, 4, out);
    default: return 0;
    }
}

/* Any non-negative integer (unsigned or signed encodings of any width), or
 * an integral float below 2^53. */
static int mp_uint(mp_reader *r, uint64_t *out)
{
    unsigned char c;
    uint64_t v;

    if (mp_left(r) < 1)
        return 0;
    c = *r->p++;
    if (c <= 0x7f) {
        *out = c;
        return 1;
    }
    switch (c) {
    case 0xcc: return mp_be(r, 1, out);
    case 0xcd: return mp_be(r, 2, out);
    case 0xce: return mp_be(r, 4, out);
    case 0xcf: return mp_be(r, 8, out);
    /* Signed encodings: the sign bit of the given width must be clear. */
    case 0xd0:
        if (!mp_be(r, 1, &v) || (v & 0x80))
            return 0;
        break;
    case 0xd1:
        if (!mp_be(r, 2, &v) || (v & 0x8000))
            return 0;
        break;
    case 0xd2:
        if (!mp_be(r, 4, &v) || (v & 0x80000000u))
            return 0;
        break;
    case 0xd3:
        if (!mp_be(r, 8, &v) || (v >> 63))
            return 0;
        break;
    case 0xca: {
        float f;
        uint32_t bits;
        if (!mp_be(r, 4, &v))
            return 0;
        bits = (uint32_t)v;
        memcpy(&f, &bits, sizeof f);
        return double_to_u64(f, out);
    }
    case 0xcb: {
        double d;
        if (!mp_be(r, 8, &v))
            return 0;
        memcpy(&d, &v, sizeof d);
        return double_to_u64(d, out);
    }
    default:
        return 0;
    }
    *out = v;
    return 1;
}

/* Reads a map header: fixmap, map16 or map32. */
static int mp_map_header(mp_reader *r, uint64_t *n)
{
    unsigned char c;

    if (mp_left(r) < 1)
        return 0;
    c = *r->p++;
    if (c >= 0x80 && c <= 0x8f) {
        *n = c & 0x0f;
        return 1;
    }
    if (c == 0xde)
        return mp_be(r, 2, n);
    if (c == 0xdf)
        return mp_be(r, 4, n);
    return 0;
}

/* Skips one complete value of any type. Containers are not recursed into:
 * their element count joins a running count of values still to skip. Every
 * value takes at least one byte, so a count larger than the bytes left is a
 * lie and is rejected at once, which also bounds the loop by the input. */
static int mp_skip(mp_reader *r)
{
    uint64_t todo = 1;

    while (todo > 0) {
        unsigned char c;
        uint64_t n = 0;
        raw_str body;

        todo--;
        if (mp_left(r) < 1)
            return 0;
        c = *r->p;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            r->p++; /* fixint, negative fixint, nil, false, true */
            continue;
        }
        if ((c >= 0xa0 && c <= 0xbf) || c == 0xd9 || c == 0xda || c == 0xdb || c == 0xc4 || c == 0xc5 ||
            c == 0xc6) {
            if (!mp_string(r, &body))
                return 0;
            continue;
        }
        r->p++;
        switch (c) {
        case 0x80: case 0x81: case 0x82: case 0x83: case 0x84: case 0x85: case 0x86: case 0x87:
        case 0x88: case 0x89: case 0x8a: case 0x8b: case 0x8c: case 0x8d: case 0x8e: case 0x8f:
            n = (uint64_t)(c & 0x0f) * 2;
            break;
        case 0x90: case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
        case 0x98: case 0x99: case 0x9a: case 0x9b: case 0x9c: case 0x9d: case 0x9e: case 0x9f:
            n = c & 0x0f;
            break;
        case 0xdc: if (!mp_be(r, 2, &n)) return 0; break;
        case 0xdd: if (!mp_be(r, 4, &n)) return 0; break;
        case 0xde: if (!mp_be(r, 2, &n)) return 0; n *= 2; break;
        case 0xdf: if (!mp_be(r, 4, &n)) return 0; n *= 2; break;
        case 0xcc: case 0xd0: if (!mp_be(r, 1, &n)) return 0; n = 0; break;
        case 0xcd: case 0xd1: if (!mp_be(r, 2, &n)) return 0; n = 0; break;
        case 0xca: case 0xce: case 0xd2: if (!mp_be(r, 4, &n)) return 0; n = 0; break;
        case 0xcb: case 0xcf: case 0xd3: if (!mp_be(r, 8, &n)) return 0; n = 0; break;
        /* fixext 1..16: a type byte and a fixed-size payload. */
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
            size_t size = (size_t)1 << (c - 0xd4);
            if (mp_left(r) < 1 + size)
                return 0;
            r->p += 1 + size;
            break;
        }
        /* ext 8/16/32: a length, a type byte, the payload. */
        case 0xc7: case 0xc8: case 0xc9: {
            size_t width = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
            if (!mp_be(r, width, &n) || mp_left(r) < 1 || n > mp_left(r) - 1)
                return 0;
            r->p += 1 + n;
            n = 0;
            break;
        }
        default: /* 0xc1 is never used */
            return 0;
        }
        if (n > mp_left(r) || todo + n > mp_left(r))
            return 0;
        todo += n;
    }
    return 1;
}

static sc_status decode_msgpack(const unsigned char *buf, size_t len, sc__event *ev)
{
    mp_reader r = { buf, buf + len };
    raw_event raw;
    uint64_t pairs, i;

    memset(&raw, 0, sizeof raw);
    if (!mp_map_header(&r, &pairs) || pairs > mp_left(&r) / 2)
        return SC_ERR_CODEC;
    for (i = 0; i < pairs; i++) {
        raw_str name;
        enum field_id f;
        const unsigned char *at = r.p;

        if (!mp_string(&r, &name)) {
            /* A key of another type cannot name a known field: skip the
             * pair like any unknown field. */
            r.p = at;
            if (!mp_skip(&r) || !mp_skip(&r))
                return SC_ERR_CODEC;
            continue;
        }
        f = field_lookup(name.p, name.len);
        if (f == F_COUNT) {
            if (!mp_skip(&r))
                return SC_ERR_CODEC;
            continue;
        }
        if (!mark_seen(&raw, f))
            return SC_ERR_CODEC;
        if (is_numeric_field(f) ? !mp_uint(&r, &raw.num[f]) : !mp_string(&r, &raw.str[f]))
            return SC_ERR_CODEC;
    }
    if (r.p != r.end)
        return SC_ERR_CODEC; /* trailing bytes after the map */
    return finish_event(&raw, ev);
}

/* ------------------------------------------------------------------ JSON -- */

static int json_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* True when a JSON string holds the escape \u0000. Tracks only quotes and
 * backslashes, which is exact for well-formed JSON (the only kind cJSON will
 * accept afterwards). */
static int json_has_escaped_nul(const char *s, size_t n)
{
    int in_string = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (!in_string) {
            in_string = s[i] == '"';
        } else if (s[i] == '"') {
            in_string = 0;
        } else if (s[i] == '\\') {
            if (n - i > 5 && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0)
                return 1;
            i++; /* the escaped character cannot end the string */
        }
    }
    return 0;
}

/* A decimal string of a uint64: digits only, no sign, no overflow. */
static int parse_decimal_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        unsigned d;
        if (*s < '0' || *s > '9')
            return 0;
        d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static int json_uint(const cJSON *item, uint64_t *out)
{
    if (cJSON_IsNumber(item))
        return double_to_u64(item->valuedouble, out);
    if (cJSON_IsString(item))
        return parse_decimal_u64(item->valuestring, out);
    return 0;
}

static sc_status decode_json(const char *buf, size_t len, sc__event *ev)
{
    raw_event raw;
    const cJSON *item;
    const char *end = NULL;
    cJSON *root;
    char *copy;
    sc_status st = SC_ERR_CODEC;

    /* A raw NUL can only be an error in JSON, and cJSON would read a string
     * holding one as ending there; reject both spellings of NUL up front. */
    if (memchr(buf, '\0', len) || json_has_escaped_nul(buf, len))
        return SC_ERR_CODEC;
    /* cJSON is not built with sanitizers here, so rather than trust its
     * length checks, give it a NUL-terminated copy it cannot read past. */
    copy = malloc(len + 1);
    if (!copy)
        return SC_ERR_NOMEM;
    memcpy(copy, buf, len);
    copy[len] = '\0';
    root = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
    if (!root || !cJSON_IsObject(root) || !end)
        goto out;
    while (end < copy + len && json_space((unsigned char)*end))
        end++;
    if (end != copy + len)
        goto out; /* trailing bytes after the object */

    memset(&raw, 0, sizeof raw);
    raw.value_is_base64 = 1;
    for (item = root->child; item; item = item->next) {
        enum field_id f = field_lookup(item->string, strlen(item->string));
        if (f == F_COUNT)
            continue;
        if (!mark_seen(&raw, f))
            goto out;
        if (is_numeric_field(f)) {
            if (!json_uint(item, &raw.num[f]))
                goto out;
        } else {
            if (!cJSON_IsString(item))
                goto out;
            raw.str[f].p = item->valuestring;
            raw.str[f].len = strlen(item->valuestring);
        }
    }
    st = finish_event(&raw, ev);
out:
    cJSON_Delete(root);
    free(copy);
    return st;
}

/* ---------------------------------------------------------------- decode -- */

sc_status sc__event_decode(const void *buf, size_t len, size_t max_bytes, sc__event *ev)
{
    const unsigned char *p = buf;
    size_t i = 0;

    if (!ev)
        return SC_ERR_INVALID;
    memset(ev, 0, sizeof *ev);
    if (max_bytes && len > max_bytes)
        return SC_ERR_TOO_LARGE;
    if (!buf || len == 0)
        return SC_ERR_CODEC;
    if ((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf)
        return decode_msgpack(p, len, ev);
    while (i < len && json_space(p[i]))
        i++;
    if (i < len && p[i] == '{')
        return decode_json((const char *)p + i, len - i, ev);
    return SC_ERR_CODEC;
}

void sc__event_free(sc__event *ev)
{
    if (!ev)
        return;
    free(ev->storage_);
    memset(ev, 0, sizeof *ev);
}

/* ---------------------------------------------------------------- encode -- */

/* The encoder refuses what the decoder would refuse, so anything it emits
 * decodes again. */
static sc_status check_encodable(const sc__event *ev)
{
    if (!action_valid(ev->action))
        return SC_ERR_INVALID;
    if ((!ev->key && ev->key_len) || (!ev->sender && ev->sender_len))
        return SC_ERR_INVALID;
    if (action_needs_key(ev->action) && ev->key_len == 0)
        return SC_ERR_INVALID;
    if ((ev->key_len && memchr(ev->key, '\0', ev->key_len)) ||
        (ev->sender_len && memchr(ev->sender, '\0', ev->sender_len)))
        return SC_ERR_INVALID;
    if (ev->action == SC__ACT_SET && (!ev->has_value || (!ev->value && ev->value_len)))
        return SC_ERR_INVALID;
    return SC_OK;
}

/* The packers return 0 or -1; chains of them use || so that they run in
 * order and stop at the first failure. */
static int mp_put_str(msgpack_packer *pk, const char *s, size_t len)
{
    return msgpack_pack_str(pk, len) || (len && msgpack_pack_str_body(pk, s, len));
}

static int mp_put_uint_field(msgpack_packer *pk, const char *name, uint64_t v)
{
    return mp_put_str(pk, name, strlen(name)) || msgpack_pack_uint64(pk, v);
}

static int mp_put_str_field(msgpack_packer *pk, const char *name, const char *s, size_t len)
{
    return mp_put_str(pk, name, strlen(name)) || mp_put_str(pk, s, len);
}

/* The three values only the Redis script knows (version, time, epoch) are
 * written at fixed places, so the encoder can also produce a template: the
 * event without those values and the offsets where they go (the write script
 * splices them in; see remote/). In msgpack the two numbers are always
 * uint64 (0xcf and 8 bytes) and the epoch a str; in JSON they are decimal
 * and a string. */
typedef struct cuts {
    size_t at[3], len[3];
} cuts;

/* Where an encoder writes: a buffer sized for the event up front (the
 * caller's scratch when it fits, else one malloc), which a write past its
 * end fails instead of growing. */
typedef struct out_buf {
    char *data;
    size_t size, cap;
} out_buf;

static int out_write(void *data, const char *p, size_t n)
{
    out_buf *o = data;
    if (n > o->cap - o->size)
        return -1;
    memcpy(o->data + o->size, p, n);
    o->size += n;
    return 0;
}

/* Points o at scratch when cap bytes fit there, else at a new allocation.
 * Returns -1 when out of memory. */
static int out_open(out_buf *o, size_t cap, char *scratch, size_t scratch_cap)
{
    o->size = 0;
    o->cap = cap;
    o->data = cap <= scratch_cap ? scratch : malloc(cap);
    return o->data ? 0 : -1;
}

static void out_drop(out_buf *o, const char *scratch)
{
    if (o->data != scratch)
        free(o->data);
    o->data = NULL;
}

static int mp_put_u64_fixed(out_buf *sb, msgpack_packer *pk, const char *name, uint64_t v, cuts *c, int i)
{
    unsigned char b[9];
    b[0] = 0xcf;
    for (int k = 0; k < 8; k++)
        b[1 + k] = (unsigned char)(v >> (56 - 8 * k));
    if (mp_put_str(pk, name, strlen(name)) || out_write(sb, (const char *)b, 1))
        return -1;
    c->at[i] = sb->size;
    c->len[i] = 8;
    return out_write(sb, (const char *)b + 1, 8);
}

static sc_status encode_msgpack(const sc__event *ev, char **out, size_t *out_len, cuts *c, int with_mac, char *scratch,
                                size_t scratch_cap)
{
    out_buf sb;
    msgpack_packer pk;
    const char *action = action_names[ev->action];
    int set = ev->action == SC__ACT_SET;
    int with_ns = ev->ns_len || ev->has_ns, with_inst = ev->inst_len > 0, with_digest = ev->digest_len > 0;
    int err;

    /* msgpack str, bin and map lengths are 32-bit. */
    if (ev->key_len > UINT32_MAX || ev->sender_len > UINT32_MAX || ev->ns_len > UINT32_MAX ||
        ev->inst_len > UINT32_MAX || ev->epoch_len > UINT32_MAX || ev->digest_len > UINT32_MAX ||
        (set && ev->value_len > UINT32_MAX))
        return SC_ERR_TOO_LARGE;
    /* Sized up front: field names and headers stay under 256 bytes. */
    size_t cap = 256 + SC__MAC_LEN + ev->key_len + ev->sender_len + ev->ns_len + ev->inst_len + ev->epoch_len +
                 ev->digest_len + (set ? ev->value_len : 0);
    if (out_open(&sb, cap, scratch, scratch_cap) != 0)
        return SC_ERR_NOMEM;
    msgpack_packer_init(&pk, &sb, out_write);
    err = msgpack_pack_map(&pk, (size_t)(8 + set + with_ns + with_inst + with_digest + (with_mac != 0))) ||
          mp_put_uint_field(&pk, "format", 1) ||
          mp_put_str_field(&pk, "action", action, strlen(action)) ||
          (with_ns && mp_put_str_field(&pk, "ns", ev->ns, ev->ns_len)) ||
          mp_put_str_field(&pk, "key", ev->key, ev->key_len) ||
          mp_put_str_field(&pk, "sender", ev->sender, ev->sender_len) ||
          (with_inst && mp_put_str_field(&pk, "inst", ev->inst, ev->inst_len));
    /* The value goes as bin, not str: values are arbitrary bytes. */
    if (!err && set)
        err = mp_put_str(&pk, "value", 5) || msgpack_pack_bin(&pk, ev->value_len) ||
              (ev->value_len && msgpack_pack_bin_body(&pk, ev->value, ev->value_len));
    if (!err && with_digest)
        err = mp_put_str_field(&pk, "digest", ev->digest, ev->digest_len);
    err = err || mp_put_uint_field(&pk, "ttl", ev->ttl_ms) ||
          mp_put_u64_fixed(&sb, &pk, "version", ev->version, c, 0) ||
          mp_put_u64_fixed(&sb, &pk, "time", ev->time_ms, c, 1) || mp_put_str(&pk, "epoch", 5) ||
          msgpack_pack_str(&pk, ev->epoch_len);
    if (!err) {
        c->at[2] = sb.size;
        c->len[2] = ev->epoch_len;
        err = ev->epoch_len && msgpack_pack_str_body(&pk, ev->epoch, ev->epoch_len);
    }
    if (!err && with_mac)
        err = mp_put_str_field(&pk, "mac", MAC_PLACEHOLDER, SC__MAC_LEN);
    if (err) {
        /* Only a wrong size bound could fail a write: a bug, not a state. */
        out_drop(&sb, scratch);
        return SC_ERR_NOMEM;
    }
    *out_len = sb.size;
    *out = sb.data;
    return SC_OK;
}

/* JSON is written by hand into a buffer sized for the worst case up front:
 * cJSON would need NUL-terminated strings and print integers through a
 * double. Only what JSON requires is escaped (quote, backslash, and control
 * characters as \u00XX); other bytes pass through as they are, as Redis'
 * cjson does, so a key that is not UTF-8 still round-trips. */
static size_t json_escaped_max(size_t len)
{
    return len * 6 + 2; /* "\u00XX" per byte, plus the quotes */
}

static char *json_put_raw(char *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o, s, n);
    return o + n;
}

static char *json_put_str(char *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    *o++ = '"';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            o = json_put_raw(o, "\\u00");
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    return o;
}

/* A number when a double holds it exactly, else a decimal string. */
static char *json_put_uint(char *o, uint64_t v)
{
    int n = snprintf(o, 23, v < SC__EXACT_DOUBLE_LIMIT_U ? "%" PRIu64 : "\"%" PRIu64 "\"", v);
    return o + n;
}

static sc_status encode_json(const sc__event *ev, char **out, size_t *out_len, cuts *c, int with_mac, char *scratch,
                             size_t scratch_cap)
{
    int set = ev->action == SC__ACT_SET;
    size_t b64 = set ? sc__base64_encoded_len(ev->value_len) : 0;
    size_t cap;
    out_buf ob;
    char *buf, *o;

    if (ev->key_len > SIZE_MAX / 8 || ev->sender_len > SIZE_MAX / 8 || ev->ns_len > SIZE_MAX / 8 ||
        ev->inst_len > SIZE_MAX / 8 || ev->epoch_len > SIZE_MAX / 8 || ev->digest_len > SIZE_MAX / 8 ||
        (set && ev->value_len > SIZE_MAX / 4))
        return SC_ERR_TOO_LARGE;
    /* Field names and punctuation stay under 160 bytes; three numbers take
     * at most 22 bytes each (20 digits and quotes). */
    cap = 160 + 8 + SC__MAC_LEN + 3 * 22 + json_escaped_max(ev->key_len) + json_escaped_max(ev->sender_len) +
          json_escaped_max(ev->ns_len) + json_escaped_max(ev->inst_len) + json_escaped_max(ev->epoch_len) +
          json_escaped_max(ev->digest_len) + 12 + b64 + 3;
    if (out_open(&ob, cap, scratch, scratch_cap) != 0)
        return SC_ERR_NOMEM;
    buf = ob.data; /* written through o: every write fits in cap */
    o = json_put_raw(buf, "{\"format\":1,\"action\":\"");
    o = json_put_raw(o, action_names[ev->action]);
    o = json_put_raw(o, "\"");
    if (ev->ns_len || ev->has_ns) {
        o = json_put_raw(o, ",\"ns\":");
        o = json_put_str(o, ev->ns, ev->ns_len);
    }
    o = json_put_raw(o, ",\"key\":");
    o = json_put_str(o, ev->key, ev->key_len);
    o = json_put_raw(o, ",\"sender\":");
    o = json_put_str(o, ev->sender, ev->sender_len);
    if (ev->inst_len) {
        o = json_put_raw(o, ",\"inst\":");
        o = json_put_str(o, ev->inst, ev->inst_len);
    }
    if (set) {
        o = json_put_raw(o, ",\"value\":\"");
        sc__base64_encode(ev->value, ev->value_len, o);
        o += b64;
        *o++ = '"';
    }
    if (ev->digest_len) {
        o = json_put_raw(o, ",\"digest\":");
        o = json_put_str(o, ev->digest, ev->digest_len);
    }
    o = json_put_raw(o, ",\"ttl\":");
    o = json_put_uint(o, ev->ttl_ms);
    o = json_put_raw(o, ",\"version\":");
    c->at[0] = (size_t)(o - buf);
    o = json_put_uint(o, ev->version);
    c->len[0] = (size_t)(o - buf) - c->at[0];
    o = json_put_raw(o, ",\"time\":");
    c->at[1] = (size_t)(o - buf);
    o = json_put_uint(o, ev->time_ms);
    c->len[1] = (size_t)(o - buf) - c->at[1];
    o = json_put_raw(o, ",\"epoch\":");
    c->at[2] = (size_t)(o - buf) + 1;
    o = json_put_str(o, ev->epoch, ev->epoch_len);
    c->len[2] = (size_t)(o - buf) - 1 - c->at[2];
    if (with_mac) {
        o = json_put_raw(o, ",\"mac\":\"");
        o = json_put_raw(o, MAC_PLACEHOLDER);
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    *out_len = (size_t)(o - buf);
    *out = buf;
    return SC_OK;
}

size_t sc__event_max_len(sc_wire_format fmt, size_t key_len, size_t value_len, size_t sender_len, size_t ns_len)
{
    /* The encoders' own up-front bounds (encode_msgpack, encode_json) for
     * the largest event: a set carrying the value, with an instance id and
     * an epoch of 16 bytes, a digest of 40, and the mac. */
    const size_t inst = 16, epoch = 16, digest = 40;
    if (fmt == SC_WIRE_JSON)
        return 160 + 8 + SC__MAC_LEN + 3 * 22 + json_escaped_max(key_len) + json_escaped_max(sender_len) +
               json_escaped_max(ns_len) + json_escaped_max(inst) + json_escaped_max(epoch) +
               json_escaped_max(digest) + 12 + sc__base64_encoded_len(value_len) + 3;
    return 256 + SC__MAC_LEN + key_len + sender_len + ns_len + inst + epoch + digest + value_len;
}

static sc_status encode(const sc__event *ev, sc_wire_format fmt, char **out, size_t *out_len, cuts *c, int with_mac,
                        char *scratch, size_t scratch_cap)
{
    sc_status st;

    if (!ev || !out || !out_len || (fmt != SC_WIRE_MSGPACK && fmt != SC_WIRE_JSON))
        return SC_ERR_INVALID;
    st = check_encodable(ev);
    if (st != SC_OK)
        return st;
    return fmt == SC_WIRE_MSGPACK ? encode_msgpack(ev, out, out_len, c, with_mac, scratch, scratch_cap)
                                  : encode_json(ev, out, out_len, c, with_mac, scratch, scratch_cap);
}

sc_status sc__event_encode(const sc__event *ev, sc_wire_format fmt, char **out, size_t *out_len)
{
    cuts c;
    return encode(ev, fmt, out, out_len, &c, 0, NULL, 0);
}

sc_status sc__event_encode_template(const sc__event *ev, sc_wire_format fmt, char *scratch, size_t scratch_cap,
                                    sc__event_template *t)
{
    sc__event e;
    cuts c;
    char *buf;
    size_t len;

    if (!ev || !t)
        return SC_ERR_INVALID;
    /* Placeholders of the right width (the msgpack str header depends on
     * the epoch's length), cut out again below. */
    e = *ev;
    e.epoch = "0000000000000000";
    e.epoch_len = 16;
    e.version = 0;
    e.time_ms = 0;
    sc_status st = encode(&e, fmt, &buf, &len, &c, 1, scratch, scratch_cap);
    if (st != SC_OK)
        return st;
    size_t w = 0, from = 0;
    for (int i = 0; i < 3; i++) {
        memmove(buf + w, buf + from, c.at[i] - from);
        w += c.at[i] - from;
        t->cut[i] = w;
        from = c.at[i] + c.len[i];
    }
    memmove(buf + w, buf + from, len - from);
    w += len - from;
    t->buf = buf;
    t->len = w;
    return SC_OK;
}

/* ------------------------------------------------------ authentication -- */

static void keyed_sha1(const char *secret, size_t slen, const void *data, size_t len, char out[41])
{
    sc__sha1 h;
    sc__sha1_init(&h);
    sc__sha1_update(&h, secret, slen);
    sc__sha1_update(&h, data, len);
    sc__sha1_hex(&h, out);
}

int sc__event_authentic(const void *msg, size_t len, const char *secret)
{
    const unsigned char *p = msg;
    size_t slen = secret ? strlen(secret) : 0;
    size_t at;
    if (!p || slen == 0)
        return 0;
    size_t jhead = sizeof JSON_MAC_HEAD - 1;
    if (len >= sizeof MP_MAC_HEAD + SC__MAC_LEN &&
        memcmp(p + len - SC__MAC_LEN - sizeof MP_MAC_HEAD, MP_MAC_HEAD, sizeof MP_MAC_HEAD) == 0)
        at = len - SC__MAC_LEN;
    else if (len >= jhead + SC__MAC_LEN + 2 && memcmp(p + len - 2, "\"}", 2) == 0 &&
             memcmp(p + len - 2 - SC__MAC_LEN - jhead, JSON_MAC_HEAD, jhead) == 0)
        at = len - 2 - SC__MAC_LEN;
    else
        return 0;
    /* The code was computed with the mac's digits as '0's: hash the message
     * in three pieces rather than copy it. */
    sc__sha1 h;
    char inner[41], outer[41];
    sc__sha1_init(&h);
    sc__sha1_update(&h, secret, slen);
    sc__sha1_update(&h, p, at);
    sc__sha1_update(&h, MAC_PLACEHOLDER, SC__MAC_LEN);
    sc__sha1_update(&h, p + at + SC__MAC_LEN, len - at - SC__MAC_LEN);
    sc__sha1_hex(&h, inner);
    keyed_sha1(secret, slen, inner, SC__MAC_LEN, outer);
    /* Compared in constant time: how far a guess matched must not show. */
    unsigned char diff = 0;
    for (size_t i = 0; i < SC__MAC_LEN; i++)
        diff |= (unsigned char)(outer[i] ^ p[at + i]);
    return diff == 0;
}
